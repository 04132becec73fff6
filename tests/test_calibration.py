import os

import keras
import numpy as np
import pytest

from keras_tl.layers.temperature import (
    TemperatureScaling, _softmax, apply_temperature, expected_calibration_error, fit_temperature)

core = pytest.mark.core  # the outcome depends on the Keras backend: also run under JAX and torch


def _sampled(scale, n=4000, classes=6, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 2.5
    labels = np.array([rng.choice(classes, p=_softmax(z)) for z in logits])
    return _softmax(logits * scale), labels


@core
def test_fit_recovers_known_scale():
    probabilities, labels = _sampled(3.0)
    assert fit_temperature(probabilities, labels) == pytest.approx(3.0, rel=0.1)


@core
def test_fitting_lowers_ece_of_over_confident_probabilities():
    probabilities, labels = _sampled(4.0)
    before = expected_calibration_error(probabilities, labels)
    after = expected_calibration_error(
        apply_temperature(probabilities, fit_temperature(probabilities, labels)), labels)
    assert after < before / 2


@core
def test_layer_matches_numpy_keeps_argmax_and_reloads_in_safe_mode(tmp_path):
    probabilities, _ = _sampled(2.0, n=50)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, TemperatureScaling(temperature=1.7, name="probabilities")(inputs))
    out = keras.ops.convert_to_numpy(model(probabilities.astype("float32")))
    np.testing.assert_allclose(out, apply_temperature(probabilities, 1.7), atol=1e-5)
    assert (out.argmax(-1) == probabilities.argmax(-1)).all()
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(probabilities.astype("float32"))), out, atol=1e-6)


# -- wired into runs ---------------------------------------------------------

def _noisy_colours(per_class, seed, noise=0.3):
    """Colour images (their class is their colour) with a share of the labels
    moved to another class: a model that learns the colours is right about
    70 % of the time, however sure it is."""
    from tests.helpers import colour_arrays

    images, labels, names = colour_arrays(per_class, 16, seed=seed)
    rng = np.random.default_rng(seed)
    moved = rng.random(len(labels)) < noise
    labels = labels.copy()
    labels[moved] = (labels[moved] + rng.integers(1, 3, moved.sum())) % 3
    return images, labels, names


def _run(tmp_path, name="run", **kwargs):
    import keras_tl
    from tests.helpers import colour_arrays, tiny_backbone

    keras.utils.set_random_seed(0)
    images, labels, names = colour_arrays(12, 16, seed=0)
    options = dict(weights=None, class_names=names, verbose=0, patience=0,
                   stages=[keras_tl.Stage("all", unfreeze="all", epochs=15, learning_rate=0.02)],
                   validation_data=_noisy_colours(20, seed=2)[:2],
                   output_dir=os.path.join(tmp_path, name))
    options.update(kwargs)
    return keras_tl.finetune((images, labels), tiny_backbone(), **options)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """An over-confident run (every weight trains at a high rate on clean
    labels; validation and test labels are 30 % wrong), calibrated."""
    folder = tmp_path_factory.mktemp("calibrated")
    return _run(folder, test_data=_noisy_colours(20, seed=3)[:2])


def _assert_same_predictions(got, expected):
    assert [[name for name, _ in top] for top in got] == [[name for name, _ in top]
                                                          for top in expected]
    np.testing.assert_allclose([[p for _, p in top] for top in got],
                               [[p for _, p in top] for top in expected], atol=1e-6)


def _uncalibrated_model(result):
    return keras.Model(result.model.input,
                       result.model.get_layer("probabilities_uncalibrated").output)


@core
def test_run_fits_temperature_above_one_and_lowers_validation_ece(calibrated):
    import json
    import os

    assert calibrated.temperature > 1.5
    for part in ("validation", "test"):
        errors = calibrated.metrics[part]
        assert errors["ece"] < errors["ece_uncalibrated"] - 0.03, (part, errors)
    with open(os.path.join(calibrated.output_dir, "metrics.json")) as f:
        saved = json.load(f)
    assert saved["calibration"] == {"method": "temperature_scaling",
                                    "temperature": calibrated.temperature,
                                    "fitted_on": "validation", "examples": 60}
    assert {"ece", "ece_uncalibrated", "accuracy", "loss"} <= set(saved["validation"])
    assert {"ece", "ece_uncalibrated"} <= set(saved["test"])


@core
def test_predict_gives_the_temperature_scaled_probabilities(calibrated):
    images, _, _ = _noisy_colours(2, seed=5)
    raw = _uncalibrated_model(calibrated).predict(images.astype("float32"), verbose=0)
    expected = apply_temperature(raw, calibrated.temperature)
    predicted = calibrated.predict(images, top=3)
    for row, top in zip(expected, predicted):
        assert [p for _, p in top] == pytest.approx(sorted(row, reverse=True), abs=1e-5)
    assert np.abs(expected - raw).max() > 0.05  # the temperature changed them


@core
def test_reloaded_and_rerun_folders_keep_the_temperature(calibrated):
    import keras_tl

    images, _, _ = _noisy_colours(2, seed=6)
    expected = calibrated.predict(images, top=3)
    reloaded = keras_tl.load(calibrated.output_dir)  # safe mode
    assert isinstance(reloaded.model.get_layer("probabilities"), TemperatureScaling)
    assert reloaded.temperature == calibrated.temperature
    _assert_same_predictions(reloaded.predict(images, top=3), expected)
    rerun = _run(os.path.dirname(calibrated.output_dir), name=os.path.basename(
        calibrated.output_dir), test_data=_noisy_colours(20, seed=3)[:2])  # finished: reloaded
    assert rerun.temperature == calibrated.temperature
    _assert_same_predictions(rerun.predict(images, top=3), expected)


def test_calibrate_false_leaves_the_temperature_out(tmp_path):
    import json

    import keras_tl

    result = _run(tmp_path, calibrate=False,
                  stages=[keras_tl.Stage("head", epochs=1)])
    assert result.temperature is None
    assert result.model.get_layer("probabilities").__class__.__name__ == "Dense"
    with open(tmp_path / "run" / "metrics.json") as f:
        saved = json.load(f)
    assert "calibration" not in saved and "ece" not in saved["validation"]
    assert keras_tl.load(str(tmp_path / "run")).temperature is None  # an uncalibrated run loads


def test_too_little_validation_data_is_recorded_as_the_reason(tmp_path):
    import keras_tl
    from keras_tl.exporters.model_card import model_card

    images, labels, _ = _noisy_colours(2, seed=2)
    result = _run(tmp_path, validation_data=(images, labels),
                  stages=[keras_tl.Stage("head", epochs=1)])
    assert result.metrics["calibration"] == {
        "temperature": None,
        "skipped": "6 validation examples; a temperature is fitted on 20 or more"}
    assert isinstance(result.model.get_layer("probabilities"), keras.layers.Dense)
    card = model_card({"metrics": result.metrics, "info": result.info}, "tiny")
    assert "## Calibration\n\nNot calibrated (6 validation examples;" in card


def test_command_line_flag_turns_calibration_off():
    from keras_tl.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["finetune", "photos/", "--no-calibrate"]).calibrate is False
    assert parser.parse_args(["finetune", "photos/"]).calibrate is None  # the task's default


def test_every_classifier_task_declares_calibrate_on_by_default():
    from keras_tl.tasks import get_task

    for name in ("image_classification", "text_classification", "keyword_spotting"):
        assert get_task(name).check_options({})["calibrate"] is True
    assert "calibrate" not in get_task("object_detection").check_options({})


def test_every_export_serves_the_calibrated_probabilities(calibrated, tmp_path):
    """SavedModel, ONNX and LiteRT (float32) give `result.predict`'s
    probabilities, not the softmax before the temperature."""
    import onnxruntime
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    import keras_tl

    exported = keras_tl.export(calibrated, str(tmp_path / "tiny"))
    images = _noisy_colours(2, seed=7)[0].astype("float32")
    expected = calibrated.inference_model.predict(images, verbose=0)
    raw = _uncalibrated_model(calibrated).predict(images, verbose=0)
    assert np.abs(expected - raw).max() > 0.05
    served = tf.saved_model.load(exported.path).signatures["serving_default"]
    outputs = {"saved_model": served(images=tf.constant(images))["probabilities"].numpy()}
    session = onnxruntime.InferenceSession(exported.files["onnx"])
    outputs["onnx"] = session.run(["probabilities"], {"images": images})[0]
    runner = Interpreter(model_path=exported.files["litert_float32"]).get_signature_runner()
    outputs["litert"] = runner(images=images)["probabilities"]
    for name, probabilities in outputs.items():
        np.testing.assert_allclose(probabilities, expected, atol=1e-5, err_msg=name)
    with open(exported.files["model_card"], encoding="utf-8") as f:
        card = f.read()
    assert (f"## Calibration\n\nCalibrated: the probabilities are softmax(logits / T), "
            f"temperature scaling (T = {calibrated.temperature:.4g}) fitted on 60 validation "
            "examples; expected calibration error on validation ") in card


def test_a_text_run_calibrates_the_pipeline_that_predicts_and_is_saved(tiny_preset, tmp_path):
    import keras_tl
    from tests.helpers import sentiment_texts

    texts, labels = sentiment_texts(24)
    result = keras_tl.finetune(
        (texts, labels), tiny_preset, sequence_length=16, batch_size=8, validation_split=0.5,
        stages=[keras_tl.Stage("head", epochs=2, learning_rate=1e-2)], verbose=0,
        output_dir=str(tmp_path / "run"))
    assert result.metrics["calibration"]["examples"] == 24 and result.temperature > 0
    pipeline = result.inference_model
    assert pipeline.classifier is result.model
    assert isinstance(pipeline.classifier.get_layer("probabilities"), TemperatureScaling)
    raw = keras.Model(result.model.input,
                      result.model.get_layer("probabilities_uncalibrated").output)
    probabilities = pipeline.predict(texts[:6])
    np.testing.assert_allclose(
        probabilities, apply_temperature(raw.predict(pipeline.tokenize(texts[:6]), verbose=0),
                                         result.temperature), atol=1e-5)
    reloaded = keras_tl.load(str(tmp_path / "run"))
    assert reloaded.temperature == result.temperature
    np.testing.assert_allclose(reloaded.model.predict(texts[:6]), probabilities, atol=1e-6)


def test_a_keyword_run_is_calibrated_and_its_saved_model_serves_it(tmp_path):
    import tensorflow as tf

    import keras_tl

    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    labels = ["low" if i % 2 else "high" for i in range(48)]
    clips = np.stack([8000 * np.sin(2 * np.pi * (300 if i % 2 else 1200) * t)
                      + rng.normal(0, 400, 16000) for i in range(48)]).astype("float32")
    result = keras_tl.finetune(
        (clips, labels), stages=[keras_tl.Stage("head", epochs=2, learning_rate=1e-2)],
        batch_size=8, validation_split=0.5, verbose=0, output_dir=str(tmp_path / "run"))
    assert result.info["task"] == "keyword_spotting"
    assert result.metrics["calibration"]["examples"] == 24
    raw = keras.Model(result.model.input,
                      result.model.get_layer("probabilities_uncalibrated").output)
    expected = apply_temperature(raw.predict(clips[:4], verbose=0), result.temperature)
    np.testing.assert_allclose(result.model.predict(clips[:4], verbose=0), expected, atol=1e-5)
    exported = keras_tl.export(result, str(tmp_path / "kws"), formats=["saved_model"])
    served = tf.saved_model.load(exported.path).signatures["serving_default"]
    np.testing.assert_allclose(served(waveforms=tf.constant(clips[:4]))["probabilities"].numpy(),
                               expected, atol=1e-5)


def test_a_mixed_precision_run_scales_in_float32(tmp_path):
    import keras_tl

    result = _run(tmp_path, precision="mixed_bfloat16",
                  stages=[keras_tl.Stage("head", epochs=1)])
    layer = result.model.get_layer("probabilities")
    assert isinstance(layer, TemperatureScaling) and layer.compute_dtype == "float32"
    images = _noisy_colours(2, seed=5)[0].astype("float32")
    assert result.model.predict(images, verbose=0).dtype == np.float32
