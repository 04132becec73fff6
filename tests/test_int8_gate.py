"""The int8 LiteRT model: calibrated on the run's training inputs, judged by
the task's quality metric (a classifier's top-1 agreement with Keras) on the
held-out verification inputs, written only above the threshold."""

import json
import os
import types

import numpy as np
import pytest

from tests.test_export import CLASS_NAMES, SIZE, colour_images, tiny_classifier


@pytest.fixture(scope="module")
def run():
    """The tiny classifier trained on colour images: training inputs as the
    representative sample, other images as the verification sample."""
    model = tiny_classifier()
    x, y = colour_images(per_class=12, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=8, batch_size=8, verbose=0)
    validation, _ = colour_images(per_class=8, seed=1)
    return types.SimpleNamespace(
        model=model, class_names=CLASS_NAMES, verification_sample=validation,
        representative_sample=x[::3],
        info={"task": "image_classification", "input_size": [SIZE, SIZE],
              "preprocessing": {"mean": 127.5, "std": 127.5, "channel_order": "rgb"}},
        metrics={}, config={})


def _interpreter_types(path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    return {np.dtype(d["dtype"]).name for d in interpreter.get_tensor_details()}


def test_a_passing_int8_model_is_written_calibrated_with_its_agreement(run, tmp_path):
    from keras_tl.exporters import export

    exported = export(run, tmp_path / "m", formats=("litert",))
    gate = exported.metadata["formats"]["litert_int8"]
    assert gate["written"] and gate["threshold"] == 0.98
    assert gate["top1_agreement"] >= 0.98
    assert gate["quantization"] == "calibrated" and gate["calibration"] == "12 training inputs"
    # the weights-only fallback candidate is gone once the calibrated model passed
    assert sorted(os.listdir(exported.path)).count("model_int8_weights_only.tflite") == 0
    assert os.path.exists(exported.files["litert_int8"])
    # calibrated: int8 activations, not only int8 weights
    assert "int8" in _interpreter_types(exported.files["litert_int8"])
    assert exported.verification["litert_int8"]["gate"] == gate


def test_a_failing_int8_model_is_not_written_and_the_rest_is(run, tmp_path):
    from keras_tl.exporters import export

    with pytest.warns(UserWarning, match="model_int8.tflite not written: top1_agreement"):
        exported = export(run, tmp_path / "m", int8_threshold=1.01, verbose=True)
    gate = exported.metadata["formats"]["litert_int8"]
    assert gate["written"] is False and gate["threshold"] == 1.01
    assert set(gate["tried"]) == {"calibrated", "weights_only"}  # the fallback was tried too
    assert "< threshold 1.01 on 24 verification inputs" in gate["reason"]
    assert not [name for name in os.listdir(exported.path) if "int8" in name]
    assert "litert_int8" not in exported.files
    assert not os.path.exists(os.path.join(exported.path, "model_int8.tflite"))
    assert "model_int8.tflite" not in json.dumps(exported.metadata["files"])
    for key in ("saved_model/serving_default", "onnx", "litert_float32"):
        assert exported.verification[key]["max_abs_diff"] <= 1e-4, key
    assert os.path.exists(exported.files["litert_float32"])


def test_a_saved_run_keeps_its_representative_training_inputs(run, tmp_path):
    from keras_tl.result import FinetuneResult

    saved = FinetuneResult(model=run.model, class_names=CLASS_NAMES, histories={}, metrics={},
                           info=run.info, config={}, verification_sample=run.verification_sample,
                           representative_sample=run.representative_sample)
    saved.save(str(tmp_path / "run"))
    loaded = FinetuneResult.load(str(tmp_path / "run"))
    np.testing.assert_array_equal(loaded.representative_sample, run.representative_sample)
    np.testing.assert_array_equal(loaded.verification_sample, run.verification_sample)


def test_a_prepared_task_draws_its_representative_inputs_from_training_data():
    from keras_tl.tasks import get_task

    x = np.arange(10, dtype="uint8")[:, None, None, None] * np.ones((1, 32, 32, 3), "uint8")
    prepared = get_task("image_classification").prepare(
        (x, [0, 1] * 5), "mobilenet_v2", weights=None, image_size=32, validation_split=0.2)
    train_values = set(np.asarray(prepared.representative)[:, 0, 0, 0].tolist())
    validation_values = set(np.asarray(prepared.sample)[:, 0, 0, 0].tolist())
    assert len(train_values) == 8 and not train_values & validation_values
