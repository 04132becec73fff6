"""Backbones: a registry of names, each with its builder, size and preprocessing."""

from keras_tl.backbones.registry import (
    LoadedBackbone,
    get_backbone_spec,
    list_backbones,
    load_backbone,
    register_backbone,
)
from keras_tl.backbones.spec import BackboneSpec, Preprocessing
from keras_tl.backbones import keras_applications  # noqa: F401  (registers)
from keras_tl.backbones import efficientnet_lite  # noqa: F401  (registers)
from keras_tl.backbones import torch_mobilenet_v2  # noqa: F401  (registers)

__all__ = [
    "BackboneSpec",
    "LoadedBackbone",
    "Preprocessing",
    "get_backbone_spec",
    "list_backbones",
    "load_backbone",
    "register_backbone",
]
