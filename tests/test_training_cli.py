"""The training options of `keras-tl finetune` reach the run."""

import json

import pytest

from keras_tl import cli


def test_training_flags_reach_run_json(image_folder, tmp_path):
    out = tmp_path / "run"
    code = cli.main([
        "finetune", image_folder, "--backbone", "mobilenet_v2", "--weights", "none",
        "--image-size", "32", "--batch-size", "8", "--output", str(out),
        "--head-epochs", "1", "--finetune-epochs", "1", "--verbose", "0",
        "--validation-data", image_folder, "--dropout", "0.3",
        "--optimizer", "adamw", "--weight-decay", "0.01", "--label-smoothing", "0.1",
        "--layer-decay", "0.8", "--cache-features", "off",
    ])
    assert code == 0
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["dropout"] == 0.3
    assert config["training"] == {"optimizer": "adamw", "weight_decay": 0.01,
                                  "label_smoothing": 0.1, "precision": "float32",
                                  "cache_features": False}
    assert [s["layer_decay"] for s in config["stages"]] == [None, 0.8]
    assert config["data"]["validation"]["kind"] == "files"
    assert "validation_split" not in config


def test_weight_decay_without_adamw_exits_2(image_folder, tmp_path, capsys):
    code = cli.main(["finetune", image_folder, "--weight-decay", "0.01",
                     "--output", str(tmp_path / "run")])
    assert code == 2
    assert "weight_decay needs optimizer='adamw'" in capsys.readouterr().err
