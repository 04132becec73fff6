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
    assert gate["calibration"] == "12 training inputs"
    assert os.path.exists(exported.files["litert_int8"])
    # calibrated: int8 activations, not only int8 weights
    assert "int8" in _interpreter_types(exported.files["litert_int8"])
    assert exported.verification["litert_int8"]["gate"] == gate


def test_a_failing_int8_model_is_not_written_and_the_rest_is(run, tmp_path):
    from keras_tl.exporters import export

    with pytest.warns(UserWarning, match="model_int8.tflite not written: top1_agreement"):
        exported = export(run, tmp_path / "m", int8_threshold=1.01)
    gate = exported.metadata["formats"]["litert_int8"]
    assert gate["written"] is False and gate["threshold"] == 1.01
    assert "< threshold 1.01 on 24 verification inputs" in gate["reason"]
    assert "litert_int8" not in exported.files
    assert not os.path.exists(os.path.join(exported.path, "model_int8.tflite"))
    assert "model_int8.tflite" not in json.dumps(exported.metadata["files"])
    for key in ("saved_model/serving_default", "onnx", "litert_float32"):
        assert exported.verification[key]["max_abs_diff"] <= 1e-4, key
    assert os.path.exists(exported.files["litert_float32"])
