"""Chained fine-tuning: a fine-tuned model is the start of the next run."""

import numpy as np
import pytest

import keras_tl
from keras_tl.errors import ConfigError
from tests.helpers import colour_arrays


def _first_run(tmp_path):
    x, y, names = colour_arrays(per_class=12, size=32)
    return keras_tl.finetune(
        (x, y), "mobilenet_v2", weights=None, image_size=32, class_names=names,
        stages=[keras_tl.Stage("head", epochs=1)], batch_size=8, verbose=0,
        output_dir=str(tmp_path / "first"))


# the three forms share the backend code; one of them runs on every backend
@pytest.mark.parametrize("form", [
    "result", pytest.param("run_folder", marks=pytest.mark.core), "keras_file"])
def test_a_finished_run_passes_on_its_trained_backbone_and_preprocessing(tmp_path, form):
    first = _first_run(tmp_path)
    start = {"result": first, "run_folder": first.output_dir,
             "keras_file": str(tmp_path / "first" / "model.keras")}[form]
    loaded = keras_tl.load_backbone(start)
    trained = first.model.get_layer("backbone")
    assert loaded.spec.preprocessing == keras_tl.Preprocessing.from_mode("tf")
    assert loaded.input_size == (32, 32)
    for a, b in zip(loaded.model.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(a, b)
    # the next run, with other classes, starts from those weights
    x, y, _ = colour_arrays(per_class=6, size=32, seed=1)
    second = keras_tl.finetune(
        (x, (y > 0).astype(int)), start, class_names=["red", "not_red"],
        stages=[keras_tl.Stage("head", epochs=1)], batch_size=8, verbose=0,
        output_dir=str(tmp_path / "second"))
    assert second.info["backbone"] == "mobilenet_v2"
    assert second.model.output.shape[-1] == 2


def test_a_bare_model_without_its_preprocessing_is_refused(tmp_path):
    first = _first_run(tmp_path)
    inner = first.model.get_layer("backbone")  # starts with a convolution: needs [-1, 1] input
    with pytest.raises(ConfigError, match="needs its preprocessing"):
        keras_tl.load_backbone(inner)
    loaded = keras_tl.load_backbone(inner, preprocessing="tf")
    assert loaded.spec.preprocessing.mean == 127.5
