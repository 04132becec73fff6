"""Serializable Keras layers that keras_tl puts inside its models."""

from keras_tl.layers.pixel_normalization import PixelNormalization

__all__ = ["PixelNormalization"]
