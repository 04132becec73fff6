import keras
import numpy as np
import pytest

from keras_tl.layers.temperature import (
    TemperatureScaling, _softmax, apply_temperature, expected_calibration_error, fit_temperature)

pytestmark = pytest.mark.core


def _sampled(scale, n=4000, classes=6, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 2.5
    labels = np.array([rng.choice(classes, p=_softmax(z)) for z in logits])
    return _softmax(logits * scale), labels


def test_fit_recovers_known_scale():
    probabilities, labels = _sampled(3.0)
    assert fit_temperature(probabilities, labels) == pytest.approx(3.0, rel=0.1)


def test_fitting_lowers_ece_of_over_confident_probabilities():
    probabilities, labels = _sampled(4.0)
    before = expected_calibration_error(probabilities, labels)
    after = expected_calibration_error(
        apply_temperature(probabilities, fit_temperature(probabilities, labels)), labels)
    assert after < before / 2


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
