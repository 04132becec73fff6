"""Backbones: one registry of image, text and audio encoders, each with its
builder, input size, preprocessing and weights source."""

from keras_tl.backbones.builder import load_backbone
from keras_tl.backbones.registry import get_backbone_spec, list_backbones, register_backbone
from keras_tl.backbones.spec import BackboneSpec, LoadedBackbone, Preprocessing
from keras_tl.backbones import keras_applications  # noqa: F401  (registers)
from keras_tl.backbones import efficientnet_lite  # noqa: F401  (registers)
from keras_tl.backbones import torch_mobilenet_v2  # noqa: F401  (registers)
from keras_tl.backbones import text_encoders  # noqa: F401  (registers)
from keras_tl.backbones import speech_embedding  # noqa: F401  (registers)

__all__ = [
    "BackboneSpec",
    "LoadedBackbone",
    "Preprocessing",
    "get_backbone_spec",
    "list_backbones",
    "load_backbone",
    "register_backbone",
]
