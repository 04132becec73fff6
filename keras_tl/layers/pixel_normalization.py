"""The preprocessing layer every keras_tl image model starts with.

Models take raw RGB pixels in [0, 255]; this layer turns them into whatever
the backbone was trained on, so training, export and serving cannot disagree.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_tl")
class PixelNormalization(keras.layers.Layer):
    """Computes `(x[..., channel_order] - mean) / std` on RGB 0-255 pixels.

    Args:
        mean: per-channel (or scalar) value subtracted, in the backbone's
            channel order.
        std: per-channel (or scalar) divisor.
        channel_order: `"rgb"` (default) or `"bgr"` (Caffe-style backbones).

    Example:
    >>> layer = PixelNormalization(mean=127.5, std=127.5)
    >>> float(layer(np.full((1, 2, 2, 3), 255.0))[0, 0, 0, 0])
    1.0
    """

    def __init__(self, mean=0.0, std=1.0, channel_order="rgb", **kwargs):
        super().__init__(**kwargs)
        if channel_order not in ("rgb", "bgr"):
            raise ValueError(
                f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}."
            )
        self.mean = _as_list(mean)
        self.std = _as_list(std)
        self.channel_order = channel_order

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.channel_order == "bgr":
            x = ops.flip(x, axis=-1)
        mean = ops.convert_to_tensor(self.mean, dtype=self.compute_dtype)
        std = ops.convert_to_tensor(self.std, dtype=self.compute_dtype)
        return (x - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            mean=self.mean, std=self.std, channel_order=self.channel_order
        )
        return config


def _as_list(value):
    if isinstance(value, (int, float)):
        return float(value)
    return [float(v) for v in value]
