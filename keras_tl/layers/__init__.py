"""Serializable Keras layers that keras_tl puts inside its models."""

from keras_tl.layers.pixel_normalization import PixelNormalization
from keras_tl.layers.temperature import TemperatureScaling

__all__ = ["PixelNormalization", "TemperatureScaling"]
