"""The keras-tl command line, run in-process."""

import json

import pytest

from keras_tl import cli
from keras_tl.tasks import get_task


def test_finetune_command_writes_the_run_folder(image_folder, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main([
        "finetune", image_folder, "--backbone", "mobilenet_v2", "--weights", "none",
        "--image-size", "32", "--output", str(out), "--head-epochs", "1",
        "--finetune-epochs", "1", "--batch-size", "8", "--unfreeze", "block_16",
    ])
    assert code == 0
    for name in ("model.keras", "metrics.json", "class_names.txt",
                 "training_curves.png", "confusion_matrix.png"):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["histories"]) == ["head", "finetune"]
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["stages"][1]["unfreeze"] == "block_16"
    assert run["info"]["input_size"] == [32, 32]
    out_text = capsys.readouterr().out
    assert "Run folder" in out_text
    # the summary printed before training: what was recognised, and how much
    assert "Task: image_classification (recognised from the data)" in out_text
    assert f"Data: {image_folder}: 24 files in 3 classes (blue, green, red)" in out_text
    assert "Backbone: mobilenet_v2, input 32x32, random initialisation" in out_text


def test_bad_input_exits_2_with_the_message(tmp_path, capsys):
    code = cli.main(["finetune", str(tmp_path / "missing"), "--backbone", "resnet50"])
    assert code == 2
    assert "Data folder not found" in capsys.readouterr().err


def test_unknown_backbone_message_lists_close_names(image_folder, capsys):
    assert cli.main(["finetune", image_folder, "--backbone", "mobilenetv9"]) == 2
    assert "Did you mean: mobilenet" in capsys.readouterr().err


def test_backbones_lists_registry(capsys):
    assert cli.main(["backbones"]) == 0
    names = capsys.readouterr().out.split()
    assert {"resnet50", "efficientnet_b0", "convnext_tiny"} <= set(names)


def test_cli_stages_default_to_the_tasks_own():
    # the text defaults once differed between the CLI (5 + 5 epochs) and the API
    args = cli.build_parser().parse_args(["finetune", "reviews.csv"])
    for name in ("image_classification", "text_classification"):
        task = get_task(name)
        assert cli._stages(args, task) == task.default_stages(), name


def test_gradual_option_builds_progressive_stages():
    args = cli.build_parser().parse_args(["finetune", "x", "--gradual", "10,block5,all",
                                          "--head-epochs", "1", "--finetune-epochs", "3",
                                          "--finetune-learning-rate", "2e-4"])
    stages = cli._stages(args, get_task("image_classification"))
    assert [s.unfreeze for s in stages] == [None, 10, "block5", "all"]
    assert [s.epochs for s in stages] == [1, 3, 3, 3]
    assert stages[1].learning_rate == pytest.approx(2e-4)
    rates = [s.learning_rate for s in stages]
    assert rates == sorted(rates, reverse=True)


def test_export_then_predict_commands(image_folder, tmp_path, capsys):
    import os

    import keras_tl
    from tests.helpers import tiny_backbone

    run = tmp_path / "run"
    result = keras_tl.finetune(image_folder, backbone=tiny_backbone(size=20), verbose=0,
                               stages=[keras_tl.Stage("head", epochs=1)],
                               output_dir=str(run), batch_size=8)
    root = tmp_path / "exports"
    assert cli.main(["export", str(run), "--name", "colours", "--root", str(root),
                     "--formats", "saved_model,onnx"]) == 0
    assert (root / "colours" / "1" / "saved_model.pb").exists()
    assert (root / "colours" / "1" / "model.onnx").exists()
    # the reloaded run is verified on its own validation images
    meta = json.loads((root / "colours" / "1" / "keras_tl.json").read_text())
    assert meta["verification"]["inputs"] == result.info["num_validation"]
    capsys.readouterr()
    image = os.path.join(image_folder, "green", sorted(os.listdir(os.path.join(image_folder, "green")))[0])
    expected = result.predict(keras_tl.data.images.read_image(image, (20, 20))[None], top=2)[0]
    for source in (root / "colours", root / "colours" / "1" / "model.onnx"):
        assert cli.main(["predict", str(source), image, "--top", "2"]) == 0
        line = capsys.readouterr().out.strip().splitlines()[-1]
        assert line.startswith(image) and f"{expected[0][0]} {expected[0][1]:.3f}" in line
    # --tta: each format gives the run's own flip-averaged probabilities, on
    # an image whose flip is another image (green | red)
    import numpy as np
    from PIL import Image

    from keras_tl.exporters.predict import load_export

    halves = np.zeros((20, 20, 3), "uint8")
    halves[:, :10, 1], halves[:, 10:, 0] = 255, 255
    lopsided = str(tmp_path / "lopsided.png")
    Image.fromarray(halves).save(lopsided)
    pixels = keras_tl.data.images.read_image(lopsided, (20, 20))[None]
    plain, averaged = (dict(result.predict(pixels, top=3, tta=tta)[0]) for tta in (False, True))
    assert max(abs(plain[name] - averaged[name]) for name in plain) > 1e-6
    for source in (root / "colours", root / "colours" / "1" / "model.onnx"):
        got = dict(load_export(str(source)).predict([lopsided], top=3, tta=True)[0])
        assert got == pytest.approx(averaged, abs=1e-5), source
        assert cli.main(["predict", str(source), lopsided, "--top", "1", "--tta"]) == 0
        best = max(averaged, key=averaged.get)
        assert capsys.readouterr().out.strip().endswith(f"{best} {averaged[best]:.3f}")
    # exporting again makes version 2 and never touches version 1
    assert cli.main(["export", str(run), "--name", "colours", "--root", str(root),
                     "--formats", "saved_model"]) == 0
    assert sorted(os.listdir(root / "colours")) == [
        "1", "2", "batching_parameters.txt", "models.config"]
    # --converted reaches the exporter, which names what a classifier offers
    capsys.readouterr()
    assert cli.main(["export", str(run), "--name", "colours", "--root", str(root),
                     "--converted", "raw_anchors"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "keras-tl export: error: image_classification models convert their default graph; "
        "not 'raw_anchors'.")
    assert not (root / "colours" / "3").exists()


def test_finetune_export_option_writes_a_verified_version(image_folder, tmp_path):
    import json

    import keras_tl
    from tests.helpers import tiny_backbone

    result = keras_tl.finetune(image_folder, backbone=tiny_backbone(size=20), verbose=0,
                               stages=[keras_tl.Stage("head", epochs=1)],
                               output_dir=str(tmp_path / "run"), batch_size=8,
                               export=str(tmp_path / "saved_models" / "colours"))
    version = tmp_path / "saved_models" / "colours" / "1"
    assert result.exports.path == str(version)
    meta = json.loads((version / "keras_tl.json").read_text())
    assert meta["class_names"] == ["blue", "green", "red"]
    assert meta["verification"]["onnx"]["max_abs_diff"] <= 1e-4
    # checked on the run's validation images, not on noise
    assert meta["verification"]["inputs"] == result.info["num_validation"]
