"""Temperature scaling of a classifier's softmax output (post-hoc calibration).

The head's Dense already applies softmax, so `softmax(log(p) / T)` equals
`softmax(z / T)` for the logits `z`: the layer goes after the head without
restructuring it, and argmax is unchanged for any `T > 0`.
"""

import keras
import numpy as np
from keras import ops
from scipy import optimize

_EPSILON = 1e-12


@keras.saving.register_keras_serializable(package="keras_tl")
class TemperatureScaling(keras.layers.Layer):
    """Computes `softmax(log(clip(p, 1e-12)) / temperature)` on probabilities.

    Args:
        temperature: the positive scalar dividing the log-probabilities;
            stored as a non-trainable weight so it is saved with the model.

    Example:
    >>> layer = TemperatureScaling(temperature=2.0)
    >>> p = np.array([[0.8, 0.2]], dtype="float32")
    >>> [round(float(v), 4) for v in layer(p)[0]]
    [0.6667, 0.3333]
    """

    def __init__(self, temperature=1.0, **kwargs):
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}.")
        self._initial_temperature = float(temperature)
        self.temperature = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self._initial_temperature),
            trainable=False, name="temperature")

    def call(self, inputs):
        probabilities = ops.cast(inputs, self.compute_dtype)
        log_p = ops.log(ops.clip(probabilities, _EPSILON, 1.0))
        return ops.softmax(log_p / ops.cast(self.temperature, self.compute_dtype), axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(temperature=float(ops.convert_to_numpy(self.temperature)))
        return config


def fit_temperature(probabilities, labels, bounds=(0.05, 20.0)):
    """Returns the temperature minimising the negative log-likelihood.

    Searches `log T` in `log(bounds)` with `scipy.optimize.minimize_scalar`.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.normal(size=(2000, 5)) * 3
    >>> labels = np.array([rng.choice(5, p=_softmax(z)) for z in logits])
    >>> round(fit_temperature(_softmax(logits * 2), labels), 1)
    2.0
    """
    log_p = np.log(np.clip(np.asarray(probabilities, dtype="float64"), _EPSILON, 1.0))
    labels = np.asarray(labels).astype(int)

    def nll(log_t):
        scaled = log_p / np.exp(log_t)
        scaled -= scaled.max(axis=-1, keepdims=True)
        log_softmax = scaled - np.log(np.exp(scaled).sum(axis=-1, keepdims=True))
        return -log_softmax[np.arange(len(labels)), labels].mean()

    result = optimize.minimize_scalar(
        nll, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded")
    return float(np.exp(result.x))


def apply_temperature(probabilities, temperature):
    """Returns `softmax(log(p) / temperature)` in NumPy (what the layer computes).

    Example:
    >>> apply_temperature(np.array([[0.8, 0.2]]), 2.0).round(4).tolist()
    [[0.6667, 0.3333]]
    """
    log_p = np.log(np.clip(np.asarray(probabilities, dtype="float64"), _EPSILON, 1.0))
    return _softmax(log_p / temperature)


def expected_calibration_error(probabilities, labels, bins=15):
    """Returns the top-1 expected calibration error over equal-width bins.

    Example:
    >>> expected_calibration_error(np.array([[0.9, 0.1], [0.9, 0.1]]), [0, 1])
    0.4
    """
    probabilities = np.asarray(probabilities, dtype="float64")
    confidence = probabilities.max(axis=-1)
    correct = probabilities.argmax(axis=-1) == np.asarray(labels).astype(int)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            error += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return round(float(error), 6)


def _softmax(z):
    z = np.asarray(z, dtype="float64")
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
