"""What a newcomer meets first (issue 18): the flags the tasks declare, epoch
counts honoured, the task recognised by most files, answers before the heavy
imports, and one sentence for bad paths."""

import json
import logging
import os
import subprocess
import sys
import wave

import numpy as np
import pytest

from keras_tl import cli
from keras_tl.tasks import find_task, get_task, list_tasks

KERAS_TL = os.path.join(os.path.dirname(sys.executable), "keras-tl")


def _keras_tl(*args, cwd=None):
    return subprocess.run([KERAS_TL, *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


def _one_error_line(done, command):
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith(f"keras-tl {command}: error: "), done.stderr
    assert "Errno" not in lines[0] and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def _write_wav(path, seconds=0.5, rate=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = (np.sin(np.arange(int(seconds * rate)) / 5.0) * 3000).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


# -- 1. the flags come from the tasks' options ------------------------------
def test_every_declared_task_option_is_a_finetune_flag():
    parser = cli.build_parser()
    samples = {int: "3", float: "1.5", str: "x"}
    for name in list_tasks():
        for option in get_task(name).options:
            if not option.command_line:
                continue
            if option.type is bool:
                args = parser.parse_args(["finetune", "d", option.flag])
                assert getattr(args, option.name) is True, option.flag
                continue
            text = option.choices[-1] if option.choices else samples.get(option.type, "1,2")
            args = parser.parse_args(["finetune", "d", option.flag, str(text)])
            assert getattr(args, option.name) == option.parse(str(text)), option.flag


def test_a_flag_of_another_task_names_the_task_it_belongs_to(image_folder, capsys):
    assert cli.main(["finetune", image_folder, "--clip-seconds", "0.5"]) == 2
    error = capsys.readouterr().err
    assert "--clip-seconds does not apply to image_classification data" in error
    assert "keyword_spotting" in error


def test_clip_seconds_reaches_the_keyword_run(tmp_path):
    words = tmp_path / "words"
    for label in ("yes", "no"):
        for i in range(4):
            _write_wav(words / label / f"{i}.wav")
    out = tmp_path / "run"
    assert cli.main(["finetune", str(words), "--clip-seconds", "1.5", "--weights", "none",
                     "--head-epochs", "1", "--finetune-epochs", "0", "--batch-size", "4",
                     "--verbose", "0", "--output", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["info"]["task"] == "keyword_spotting"
    assert run["info"]["clip_samples"] == 24000  # the default is 1 s


# -- 2. epoch counts mean what they say -------------------------------------
def _history_lengths(run):
    histories = json.loads((run / "metrics.json").read_text())["histories"]
    return {stage: len(values["loss"]) for stage, values in histories.items()}


def _finetune_images(image_folder, out, *flags):
    assert cli.main(["finetune", image_folder, "--backbone", "mobilenet_v2", "--weights", "none",
                     "--image-size", "32", "--batch-size", "8", "--verbose", "0",
                     "--patience", "5", "--output", str(out), *flags]) == 0
    return json.loads((out / "run.json").read_text())["config"]["stages"]


def test_explicit_epochs_run_exactly_also_on_cached_features(image_folder, tmp_path):
    # Both stages train on cached features here (no augmentation); their caps
    # (50 and 10 epochs) used to replace the epochs asked for.
    stages = _finetune_images(image_folder, tmp_path / "run", "--head-epochs", "1",
                              "--finetune-epochs", "1")
    assert _history_lengths(tmp_path / "run") == {"head": 1, "finetune": 1}
    assert [(s["epochs"], s["cached_epochs"]) for s in stages] == [(1, None), (1, None)]


def test_the_cached_epoch_cap_is_its_own_flag(image_folder, tmp_path):
    (head,) = _finetune_images(image_folder, tmp_path / "run", "--head-cached-epochs", "2",
                               "--finetune-epochs", "0")
    assert _history_lengths(tmp_path / "run") == {"head": 2}
    assert head["cached_epochs"] == 2


# -- 3. the task goes by most of the files ----------------------------------
def test_a_stray_text_file_does_not_make_an_image_folder_text(image_folder, caplog):
    stray = os.path.join(image_folder, sorted(os.listdir(image_folder))[0], "readme.txt")
    with open(stray, "w") as f:
        f.write("photos from the garden")
    with caplog.at_level(logging.WARNING, logger="keras_tl"):
        assert find_task(image_folder).name == "image_classification"
    assert "readme.txt" in caplog.text and "skipping the 1 other files" in caplog.text


def test_most_wav_files_make_a_keyword_folder_despite_an_image(tmp_path, image_folder):
    words = tmp_path / "words"
    for label in ("yes", "no"):
        for i in range(3):
            _write_wav(words / label / f"{i}.wav", seconds=0.1)
    os.replace(os.path.join(image_folder, "red", sorted(os.listdir(os.path.join(image_folder, "red")))[0]),
               words / "yes" / "cover.png")
    assert find_task(str(words)).name == "keyword_spotting"


def test_task_flag_forces_the_task(image_folder, capsys):
    assert cli.main(["finetune", image_folder, "--task", "text_classification"]) == 2
    assert ".txt" in capsys.readouterr().err  # read as text: its class folders hold no .txt


# -- 4. answers before the heavy imports -------------------------------------
def _python(code, *flags):
    """`code` run by a fresh Python (so the imports it makes are its own)."""
    return subprocess.run([sys.executable, *flags, "-c", code], capture_output=True, text=True,
                          timeout=300)


def test_import_keras_tl_imports_neither_keras_nor_keras_hub_until_they_are_imported():
    code = ("import sys, keras_tl\n"
            "print(sorted(m for m in ('keras', 'keras_hub', 'tensorflow') if m in sys.modules))\n"
            "import keras\n"
            "print(keras.saving.get_registered_object('keras_tl>PixelNormalization').__name__)\n"
            "print(keras.saving.get_registered_object('keras_tl>PyramidImageEncoder'))\n"
            "import keras_hub\n"
            "print(keras.saving.get_registered_object('keras_tl>PyramidImageEncoder').__name__)\n")
    done = _python(code)
    assert done.stdout.split() == ["[]", "PixelNormalization", "None", "PyramidImageEncoder"], \
        done.stdout + done.stderr[-2000:]


def test_keras_objects_register_when_a_keras_tl_module_imported_keras_first():
    # keras_tl.freezing imports Keras while it is half-imported itself; the
    # text pipeline's module needs it, so its registration waits for it
    code = ("import keras_tl\n"
            "from keras_tl.freezing import freeze_backbone\n"
            "import keras\n"
            "print(keras.saving.get_registered_object('keras_tl>TextClassifierPipeline').__name__)\n")
    done = _python(code, "-W", "error::RuntimeWarning")
    assert done.stdout.split() == ["TextClassifierPipeline"], done.stdout + done.stderr[-2000:]


def test_backbone_names_specs_and_the_listing_come_without_keras():
    code = ("import contextlib, io, sys\n"
            "import keras_tl.backbones\n"
            "from keras_tl import cli, get_backbone_spec\n"
            "spec = get_backbone_spec('efficientnet_lite0')\n"
            "print(spec.modality, spec.input_size, spec.preprocessing.mean, sorted(spec.pretrained))\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert cli.main(['backbones']) == 0\n"
            "print(sorted(m for m in ('keras', 'keras_hub', 'tensorflow') if m in sys.modules))\n")
    done = _python(code)
    assert done.stdout.split("\n")[:2] == ["image (224, 224) 127.0 ['imagenet']", "[]"], \
        done.stdout + done.stderr[-2000:]


def test_a_missing_data_folder_is_reported_about_as_fast_as_python_starts(tmp_path):
    from tests.helpers import fastest

    bare, _ = fastest([sys.executable, "-c", "pass"])
    answered, done = fastest([KERAS_TL, "finetune", str(tmp_path / "nope")])
    assert "Data folder not found" in _one_error_line(done, "finetune")
    # TensorFlow's import alone is ~100x a bare start; before, this took 16-27 s
    assert answered < 10 * bare, (answered, bare)


def test_a_mistyped_backbone_is_reported_about_as_fast_as_python_starts(tmp_path):
    from tests.helpers import fastest

    photos = tmp_path / "photos"
    (photos / "cats").mkdir(parents=True)
    bare, _ = fastest([sys.executable, "-c", "pass"])
    answered, done = fastest([KERAS_TL, "finetune", str(photos), "--backbone", "mobilenetv9"])
    line = _one_error_line(done, "finetune")
    assert "Unknown backbone 'mobilenetv9'. Did you mean: mobilenet, mobilenet_v2" in line, line
    # before the backbone names were known without Keras: ~15-20 s, the missing
    # data folder's bound
    assert answered < 10 * bare, (answered, bare)


# -- 5. one sentence for bad paths ------------------------------------------
def test_an_output_that_is_a_file_is_one_sentence(image_folder, tmp_path):
    taken = tmp_path / "notes.txt"
    taken.write_text("x")
    line = _one_error_line(_keras_tl("finetune", image_folder, "--output", str(taken)), "finetune")
    assert f"--output {taken} is a file, not a folder" in line


def test_an_unwritable_output_is_one_sentence(image_folder, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):  # root writes anywhere: /proc/1 refuses it too
        locked = "/proc/1"
    done = _keras_tl("finetune", image_folder, "--output", os.path.join(locked, "run"))
    assert f"no permission to write in {locked}" in _one_error_line(done, "finetune")


def test_export_of_a_missing_run_folder_is_one_sentence(tmp_path):
    done = _keras_tl("export", "runs/nope", "--name", "x", cwd=tmp_path)
    assert "Run folder not found: runs/nope" in _one_error_line(done, "export")


def test_predict_on_a_run_folder_says_to_export_it_first(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"")
    done = _keras_tl("predict", str(run), "cat.jpg")
    assert f"keras-tl export {run} --name NAME" in _one_error_line(done, "predict")


def test_predict_top_below_one_is_one_sentence(tmp_path, capsys):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"")
    assert cli.main(["predict", str(model), "cat.jpg", "--top", "0"]) == 2
    assert "--top 0: print at least 1 class per input." in capsys.readouterr().err
