"""The README's command lines use only flags `keras-tl COMMAND -h` lists."""

import pathlib
import re

from keras_tl import cli

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _readme_commands(text):
    """`(command, flags)` of every `keras-tl COMMAND ...` line in the README's
    bash blocks and inline code, backslash continuations joined."""
    text = text.replace("\\\n", " ")
    for block in re.findall(r"```bash\n(.*?)```", text, re.S) + re.findall(r"`([^`\n]+)`", text):
        for command, rest in re.findall(r"keras-tl ([a-z][a-z-]*)([^\n#]*)", block):
            yield command, set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest))


def _subcommand_flags(parser):
    commands = next(action for action in parser._actions if action.dest == "command")
    return {name: {flag for action in sub._actions for flag in action.option_strings}
            for name, sub in commands.choices.items()}


def test_every_flag_the_readme_shows_is_in_the_commands_help():
    known = _subcommand_flags(cli.build_parser())
    shown = list(_readme_commands(README.read_text(encoding="utf-8")))
    assert {"finetune", "export", "predict", "serve"} <= {command for command, _ in shown}
    wrong = sorted({f"keras-tl {command} {flag}" for command, flags in shown
                    for flag in (flags - known.get(command, set()))}
                   | {f"keras-tl {command}" for command, _ in shown if command not in known})
    assert not wrong, "README shows what -h does not list: " + ", ".join(wrong)


def test_the_readme_check_finds_a_flag_no_command_has():
    shown = dict(_readme_commands("```bash\nkeras-tl export runs/x --name a \\\n  --no-such-flag\n```"))
    assert shown == {"export": {"--name", "--no-such-flag"}}
