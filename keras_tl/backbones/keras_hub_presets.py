"""keras_hub image backbones, from a local preset folder or a remote handle."""

import functools
import os

from keras_tl.backbones.spec import BackboneSpec, PretrainedWeights, Preprocessing
from keras_tl.errors import BackboneError


def preset_spec(preset):
    """The `BackboneSpec` of a keras_hub image preset: its image size and
    preprocessing from the preset's image converter, and the weights tag
    `"preset"` (`keras_tl.load_backbone` builds it, with `weights`
    `"default"` / `"preset"`, `None` or a Keras weights file).

    Example:
    >>> preset_spec("/no/such/preset")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_tl.errors.BackboneError: '/no/such/preset' is a folder but not a keras_hub preset ...
    """
    if "://" not in preset and not os.path.exists(os.path.join(preset, "config.json")):
        raise BackboneError(
            f"{preset!r} is a folder but not a keras_hub preset (no config.json). "
            "Save one with backbone.save_to_preset(folder)."
        )
    preprocessing, size = _preset_preprocessing(preset)
    return BackboneSpec(
        name=os.path.basename(os.path.normpath(preset)),
        build=functools.partial(_build_preset, preset),
        input_size=tuple(size or (224, 224)),
        preprocessing=preprocessing,
        default_weights="preset",
        source=f"keras_hub preset {preset}",
        pretrained=[PretrainedWeights("preset", "keras_hub", preset)],
    )


def _build_preset(preset, weights, input_shape):
    """The preset's backbone (its weights unless `weights` is None); keras_hub
    image backbones take any input size, so `input_shape` is not needed."""
    import keras_hub

    backbone = keras_hub.models.Backbone.from_preset(preset, load_weights=weights is not None)
    if getattr(backbone, "token_embedding", None) is not None:
        raise BackboneError(
            f"{preset!r} is a text backbone ({type(backbone).__name__}); pass text "
            "data to keras_tl.finetune to fine-tune it."
        )
    return backbone


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
