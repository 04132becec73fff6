"""Losses keras_tl trains with beyond Keras' own."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_tl")
class SmoothedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy on integer labels with label smoothing
    (Keras' sparse cross-entropy has none): the one-hot target becomes
    `(1 - label_smoothing) * one_hot + label_smoothing / num_classes`.

    Example:
    >>> import numpy as np
    >>> loss = SmoothedSparseCategoricalCrossentropy(label_smoothing=0.1)
    >>> round(float(loss(np.array([1]), np.array([[0.05, 0.95]]))), 4)
    0.1985
    """

    def __init__(self, label_smoothing=0.1, name="smoothed_sparse_categorical_crossentropy",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        classes = ops.shape(y_pred)[-1]
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        targets = ops.one_hot(labels, classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            targets, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


SMOOTHED_LOSSES = {
    "sparse_categorical_crossentropy": SmoothedSparseCategoricalCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
}


def with_label_smoothing(loss, label_smoothing):
    """`loss` (a Keras loss name) with label smoothing; `loss` itself when
    `label_smoothing` is 0. A loss without a smoothed form is a `ValueError`.

    Example:
    >>> type(with_label_smoothing("sparse_categorical_crossentropy", 0.1)).__name__
    'SmoothedSparseCategoricalCrossentropy'
    >>> with_label_smoothing("mse", 0.0)
    'mse'
    """
    if not label_smoothing:
        return loss
    if not 0 < label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
    if not isinstance(loss, str) or loss not in SMOOTHED_LOSSES:
        raise ValueError(f"label smoothing needs a cross-entropy loss, not {loss!r}.")
    return SMOOTHED_LOSSES[loss](label_smoothing=label_smoothing)
