"""Test-time augmentation: `FinetuneResult.predict(tta=True)` averages an
image classifier's probabilities over each image and its horizontal flip;
`finetune(tta=True)` (`--tta`) adds `accuracy_tta` beside the plain accuracy."""

import json
import types

import keras
import numpy as np
import pytest

from keras_tl.errors import ConfigError
from keras_tl.result import FinetuneResult

core = pytest.mark.core  # the outcome depends on the Keras backend: also run under JAX and torch

SIZE = 8
CLASSES = ["a", "b", "c", "d"]


def _result(task="image_classification", model=None):
    """A run of an image classifier that is not flip-invariant (a dense
    layer on the flattened pixels, after its own rescaling)."""
    if model is None:
        keras.utils.set_random_seed(0)
        inputs = keras.Input((SIZE, SIZE, 3), name="images")
        x = keras.layers.Rescaling(1 / 64.0)(inputs)
        x = keras.layers.Flatten()(x)
        model = keras.Model(inputs, keras.layers.Dense(len(CLASSES), activation="softmax")(x))
    return FinetuneResult(model=model, class_names=CLASSES, histories={}, config={},
                          metrics={"validation": None, "test": None},
                          info={"task": task, "input_size": [SIZE, SIZE]})


def _probabilities(predictions):
    """`[n, classes]` from `predict`'s `[[(name, probability), ...], ...]`."""
    return np.array([[dict(row)[name] for name in CLASSES] for row in predictions])


def _images(n=3, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (n, SIZE, SIZE, 3)).astype("float32")


@core
def test_tta_is_the_mean_over_each_image_and_its_flip():
    result = _result()
    images = _images()
    plain = _probabilities(result.predict(images, top=len(CLASSES)))
    tta = _probabilities(result.predict(images, top=len(CLASSES), tta=True))
    model = result.model
    by_hand = (np.asarray(model.predict(images, verbose=0), "float64")
               + np.asarray(model.predict(images[:, :, ::-1], verbose=0), "float64")) / 2
    np.testing.assert_allclose(tta, by_hand, atol=1e-6)
    assert np.abs(tta - plain).max() > 1e-3  # the model is not flip-invariant
    np.testing.assert_allclose(tta.sum(axis=1), 1.0, atol=1e-5)


@core
def test_a_symmetric_image_gives_the_plain_probabilities():
    result = _result()
    half = _images(2, seed=1)[:, :, : SIZE // 2]
    symmetric = np.concatenate([half, half[:, :, ::-1]], axis=2)
    plain = _probabilities(result.predict(symmetric, top=len(CLASSES)))
    tta = _probabilities(result.predict(symmetric, top=len(CLASSES), tta=True))
    np.testing.assert_allclose(tta, plain, atol=1e-6)


@core
def test_a_single_file_predicts_with_tta(tmp_path):
    from PIL import Image

    result = _result()
    image = _images(1, seed=2)[0].astype("uint8")
    Image.fromarray(image).save(tmp_path / "one.png")
    from_file = _probabilities(result.predict([str(tmp_path / "one.png")], top=4, tta=True))
    from_array = _probabilities(result.predict(image, top=4, tta=True))
    np.testing.assert_allclose(from_file, from_array, atol=1e-6)


@core
@pytest.mark.parametrize("task", ["text_classification", "keyword_spotting"])
def test_tta_on_a_task_without_it_is_a_one_line_config_error(task):
    if task == "text_classification":
        inputs = ["tasty coffee"]
    else:
        inputs = np.zeros((1, 16000), "float32")
    result = _result(task=task, model=types.SimpleNamespace(
        predict=lambda *args, **kwargs: pytest.fail("predicted without views")))
    result.info["clip_samples"] = 16000
    with pytest.raises(ConfigError) as error:
        result.predict(inputs, tta=True)
    message = str(error.value)
    assert "\n" not in message
    assert message == (f"tta=True: test-time augmentation is for image_classification runs; "
                       f"this is a {task} run.")


def _finetune(tmp_path, name, **options):
    import keras_tl
    from tests.helpers import colour_arrays, tiny_backbone

    keras.utils.set_random_seed(0)  # the backbone's initial weights: the same in each run
    images, labels, names = colour_arrays(8, 16, seed=0)
    validation = colour_arrays(4, 16, seed=1)
    test = colour_arrays(3, 16, seed=2)
    return keras_tl.finetune(
        (images, labels), tiny_backbone(), weights=None, class_names=names, verbose=0,
        stages=[keras_tl.Stage("all", unfreeze="all", epochs=1, learning_rate=0.01)],
        validation_data=validation[:2], test_data=test[:2], patience=0,
        output_dir=str(tmp_path / name), **options)


@core
def test_tta_accuracy_is_the_accuracy_of_the_flip_averaged_probabilities():
    import tensorflow as tf

    from keras_tl.tasks import get_task

    model = _result().model
    images = _images(64, seed=3)
    plain = model.predict(images, verbose=0)
    averaged = (plain + model.predict(images[:, :, ::-1], verbose=0)) / 2
    changed = plain.argmax(-1) != averaged.argmax(-1)
    assert changed.any()  # else this test could not tell TTA from plain
    labels = averaged.argmax(-1)
    labels[:5] = (labels[:5] + 1) % len(CLASSES)  # five wrong
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(10)
    accuracy = get_task("image_classification").tta_accuracy(model, data, {})
    assert accuracy == pytest.approx(59 / 64, abs=1e-12)
    assert (plain.argmax(-1) == labels).mean() < 59 / 64


def test_finetune_tta_writes_accuracy_tta_beside_the_unchanged_accuracy(tmp_path, monkeypatch):
    from keras_tl.tasks.image_classifier import ImageClassification
    from tests.helpers import colour_arrays

    plain = _finetune(tmp_path, "plain")
    seen = []
    views = ImageClassification.tta_views

    def recorded(self, model_inputs, info):
        seen.append(np.shape(model_inputs))
        return views(self, model_inputs, info)

    monkeypatch.setattr(ImageClassification, "tta_views", recorded)
    with_tta = _finetune(tmp_path, "tta", tta=True)
    # every validation (12) and test (9) image, at the model's input size, went through the views
    assert sum(shape[0] for shape in seen) == 12 + 9
    assert {shape[1:] for shape in seen} == {(16, 16, 3)}
    written = {name: json.loads((tmp_path / name / "metrics.json").read_text())
               for name in ("plain", "tta")}
    for part in ("validation", "test"):
        assert "accuracy_tta" not in written["plain"][part]
        assert written["tta"][part]["accuracy"] == written["plain"][part]["accuracy"]
    # the number: the flip-averaged predictions of the run's own model, computed here
    for part, seed, per_class in (("validation", 1, 4), ("test", 2, 3)):
        images, labels, _ = colour_arrays(per_class, 16, seed=seed)
        images = images.astype("float32")
        model = with_tta.model
        probabilities = (model.predict(images, verbose=0)
                         + model.predict(images[:, :, ::-1], verbose=0)) / 2
        expected = float((probabilities.argmax(-1) == labels).mean())
        assert written["tta"][part]["accuracy_tta"] == pytest.approx(expected, abs=1e-9)
        assert with_tta.metrics[part]["accuracy_tta"] == written["tta"][part]["accuracy_tta"]
    assert plain.metrics["validation"].keys() | {"accuracy_tta"} == \
        with_tta.metrics["validation"].keys()


def test_tta_is_an_unknown_option_for_text_runs():
    import keras_tl

    with pytest.raises(ConfigError, match="Unknown option 'tta' for text_classification"):
        keras_tl.finetune((["tasty", "awful"] * 4, ["pos", "neg"] * 4), tta=True)


@core
def test_the_tta_flag_reaches_finetune(image_folder, tmp_path, monkeypatch):
    import keras_tl
    from keras_tl import cli

    calls = []

    def finetune(data, **kwargs):
        calls.append(kwargs)
        return types.SimpleNamespace(metrics={}, output_dir=str(tmp_path / "run"), exports=None)

    monkeypatch.setattr(keras_tl, "finetune", finetune)
    for flags in ([], ["--tta"]):
        assert cli.main(["finetune", image_folder, "--output", str(tmp_path / "run"),
                         "--weights", "none", "--verbose", "0"] + flags) == 0
    assert "tta" not in calls[0]
    assert calls[1]["tta"] is True

