"""The TF Serving files and the model card of an export, on their own:
the card from an export's metadata, the configs' rewriting rules. The files
of real exports are checked in each task's export tests
(tests/tf_serving_helpers.py)."""

import os

import pytest

from keras_tl.exporters import tf_serving
from keras_tl.exporters.model_card import model_card

META = {
    "task": "text_classification", "modality": "text", "class_names": ["neg", "pos"],
    "info": {"num_train": 400, "num_validation": 50, "num_test": 200, "sequence_length": 64,
             "backbone": "bert_tiny_en_uncased"},
    "metrics": {"validation": {"loss": 0.41, "accuracy": 0.86},
                "test": {"loss": 0.45, "accuracy": 0.84}},
    "training": {"data": {"train": {"kind": "csv", "rows": 450}, "validation": None},
                 "validation_split": 0.1},
    "signatures": {"serving_default": {
        "inputs": {"texts": {"dtype": "string", "shape": [None]}},
        "outputs": {"probabilities": {"dtype": "float32", "shape": [None, 2]}}}},
    "verification": {"inputs": 8, "onnx": {"max_abs_diff": 2e-7, "enforced": True}},
}


@pytest.mark.core
def test_model_card_states_data_metrics_and_their_test_set():
    card = model_card(META, "reviews")
    assert card.startswith("# Model card: reviews\n")
    assert "2 classes: `neg`, `pos`." in card and "- backbone: bert_tiny_en_uncased" in card
    assert "- training: 400 examples\n- validation: 50 examples\n- test: 200 examples" in card
    assert "- training data: kind csv, rows 450" in card
    assert "- validation: 10% of the training data, held out before training" in card
    assert ("| metric | validation (50 examples) | test (200 examples) |\n|---|---|---|\n"
            "| loss | 0.41 | 0.45 |\n| accuracy | 0.86 | 0.84 |") in card
    # 168 of 200 right: the Wilson interval, not the point estimate alone
    assert "Test accuracy 0.84 on 200 examples: 95 % interval 0.78-0.88 (Wilson)." in card
    assert "No test set" not in card
    assert "- `serving_default`: `texts` string[batch] -> `probabilities` float32[batch, 2]" in card
    assert "- sequence_length: 64" in card
    assert "Trained on 400 examples" in card and "- onnx: 2e-07" in card
    assert "Not calibrated" in card


@pytest.mark.core
def test_model_card_reports_a_recorded_calibration():
    calibrated = dict(META, info=dict(META["info"], calibration={
        "method": "temperature", "temperature": 1.7, "fit_on": "validation"}))
    card = model_card(calibrated, "reviews")
    assert ("## Calibration\n\nCalibrated: method temperature, temperature 1.7, "
            "fit_on validation.") in card
    in_metrics = dict(META, metrics=dict(META["metrics"], calibration={"temperature": 0.9}))
    assert "Calibrated: temperature 0.9." in model_card(in_metrics, "reviews")


@pytest.mark.core
def test_server_configs_keep_a_users_file_and_replace_their_own(tmp_path):
    base = tmp_path / "reviews"
    base.mkdir()
    users = 'model_config_list { config { name: "reviews" base_path: "/srv/reviews" } }\n'
    (base / "models.config").write_text(users)
    (base / "batching_parameters.txt").write_text(tf_serving.batching_parameters(1))
    files = tf_serving.write_server_configs(str(base))
    assert (base / "models.config").read_text() == users  # edited by someone: kept
    assert list(files) == ["tf_serving_batching"]
    assert (base / "batching_parameters.txt").read_text() == tf_serving.batching_parameters()
    (base / "models.config").unlink()
    tf_serving.write_server_configs(str(base))
    assert f'base_path: "{base}"' in (base / "models.config").read_text()
    assert sorted(os.listdir(base)) == ["batching_parameters.txt", "models.config"]


@pytest.mark.core
def test_an_interrupted_config_write_leaves_the_old_file(tmp_path, monkeypatch):
    tf_serving.write_server_configs(str(tmp_path))
    before = (tmp_path / "models.config").read_text()

    def interrupted(source, target):
        raise KeyboardInterrupt

    monkeypatch.setattr(tf_serving.os, "replace", interrupted)
    monkeypatch.setattr(tf_serving, "model_config", lambda name, path: "# Written by ...\n")
    with pytest.raises(KeyboardInterrupt):
        tf_serving.write_server_configs(str(tmp_path))
    assert (tmp_path / "models.config").read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["batching_parameters.txt", "models.config"]


def test_server_configs_parse_with_tf_servings_protos(tmp_path):
    from tests.tf_serving_helpers import parse_server_configs

    base = tmp_path / 'odd "name"'
    base.mkdir()
    tf_serving.write_server_configs(str(base))
    config, batching = parse_server_configs(str(base))
    (model,) = config.model_config_list.config
    assert model.name == 'odd "name"' and model.base_path == str(base)
    assert batching.max_batch_size.value == tf_serving.MAX_BATCH_SIZE
    assert batching.num_batch_threads.value == batching.max_enqueued_batches.value == (
        os.cpu_count())
    assert not batching.pad_variable_length_inputs
