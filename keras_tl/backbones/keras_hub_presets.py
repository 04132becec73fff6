"""keras_hub image backbones, from a local preset folder or a remote handle."""

import os

from keras_tl.backbones.registry import LoadedBackbone
from keras_tl.backbones.spec import BackboneSpec, Preprocessing


def load_preset_backbone(preset, weights="default", image_size=None):
    """Loads a keras_hub image backbone and the preprocessing of its preset.

    Example:
    >>> loaded = load_preset_backbone("./presets/resnet_tiny")
    """
    import keras_hub

    if "://" not in preset and not os.path.exists(os.path.join(preset, "config.json")):
        raise ValueError(
            f"{preset!r} is a folder but not a keras_hub preset (no config.json). "
            "Save one with backbone.save_to_preset(folder)."
        )
    load_weights = weights is not None
    backbone = keras_hub.models.Backbone.from_preset(preset, load_weights=load_weights)
    if getattr(backbone, "token_embedding", None) is not None:
        raise ValueError(
            f"{preset!r} is a text backbone ({type(backbone).__name__}); pass text "
            "data to keras_tl.finetune to fine-tune it."
        )
    preprocessing, default_size = _preset_preprocessing(preset)
    size = image_size or default_size or (224, 224)
    if isinstance(size, int):
        size = (size, size)
    spec = BackboneSpec(
        name=os.path.basename(os.path.normpath(preset)),
        build=lambda weights, input_shape: backbone,
        input_size=tuple(size),
        preprocessing=preprocessing,
        default_weights="preset" if load_weights else None,
        source=f"keras_hub preset {preset}",
    )
    return LoadedBackbone(backbone, spec, tuple(size), spec.default_weights or "None")


def _preset_preprocessing(preset):
    """`x * scale + offset` of the preset's ImageConverter, as mean/std."""
    import keras_hub
    import numpy as np

    try:
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    except Exception:  # presets without a preprocessor: the backbone normalises
        return Preprocessing(), None
    scale = converter.scale if converter.scale is not None else 1.0
    offset = converter.offset if converter.offset is not None else 0.0
    scale = np.asarray(scale, dtype="float64")
    offset = np.asarray(offset, dtype="float64")
    mean = -offset / scale
    std = 1.0 / scale
    size = getattr(converter, "image_size", None)
    return (
        Preprocessing(mean=_plain(mean), std=_plain(std)),
        tuple(size) if size else None,
    )


def _plain(array):
    return float(array) if array.ndim == 0 else tuple(float(v) for v in array)
