"""The keras-tl command as a user runs it: a separate process."""

import os
import re
import subprocess
import sys

import pytest

KERAS_TL = os.path.join(os.path.dirname(sys.executable), "keras-tl")
NATIVE_LOG = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} )", re.M)


def _run(*args, **kwargs):
    return subprocess.run([KERAS_TL, *args], capture_output=True, text=True, timeout=300,
                          **kwargs)


def test_help_and_version_do_not_import_tensorflow():
    code = ("import sys; sys.argv = ['keras-tl', '--version']\n"
            "from keras_tl import cli\n"
            "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split()[-2:] == ["False", "False"], done.stdout + done.stderr


def test_commands_that_load_tensorflow_print_no_native_log_lines():
    done = _run("backbones", "--modality", "image")
    assert done.returncode == 0
    assert "mobilenet_v2_torch" in done.stdout
    assert not NATIVE_LOG.search(done.stderr), done.stderr


def test_a_keras_tl_error_is_one_line_and_exit_2_and_debug_shows_the_traceback(tmp_path, image_folder):
    hostile = tmp_path / "weights.pth"
    hostile.write_bytes(b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.")
    args = ["finetune", image_folder, "--backbone", "mobilenet_v2_torch",
            "--weights", str(hostile), "--output", str(tmp_path / "run")]
    done = _run(*args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "os.system" in lines[0], done.stderr
    debug = _run("--debug", *args)
    assert "Traceback" in debug.stderr


def test_import_keras_tl_lets_keras_load_a_saved_model(tmp_path):
    from keras_tl.backbones import load_backbone
    from keras_tl.tasks.image_classifier import build_image_classifier

    model = build_image_classifier(load_backbone("mobilenet_v2", weights=None, image_size=32), 2)
    path = tmp_path / "model.keras"
    model.save(path)
    code = ("import keras, keras_tl\n"
            f"model = keras.saving.load_model({str(path)!r})\n"
            "print(model.layers[1].__class__.__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "PixelNormalization", done.stderr[-2000:]


def test_finetune_into_a_pipe_prints_one_line_per_epoch(tmp_path, image_folder):
    """Keras' progress bars, redrawn with escape codes, are unreadable in a
    log file: into a pipe the default is one line per epoch."""
    done = _run("finetune", image_folder, "--backbone", "mobilenet_v2", "--weights", "none",
                "--image-size", "32", "--head-epochs", "1", "--finetune-epochs", "1",
                "--head-cached-epochs", "1", "--output", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "\x1b[" not in done.stdout and "\u2501" not in done.stdout
    epochs = [line for line in done.stdout.splitlines() if " - loss: " in line]
    assert len(epochs) == 2, done.stdout  # one line for each stage's one epoch
