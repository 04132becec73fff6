"""keras_hub image backbones, from a local preset folder or a remote handle."""

import functools
import glob
import importlib.util
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


def may_be_builtin_preset(name):
    """Whether the installed keras_hub may know `name` as one of its
    built-in presets (`keras_hub.models.Backbone.from_preset(name)`), told
    without importing keras_hub (or Keras): `False` only when no preset
    file of the installed keras_hub holds `name` as a string; `True` when
    that cannot be told (keras_hub missing, or laid out otherwise).

    Example:
    >>> may_be_builtin_preset("bert_tiny_en_uncased"), may_be_builtin_preset("mobilenetv9")
    (True, False)
    """
    texts = _builtin_preset_files()
    if texts is None:
        return True
    return any(f'"{name}"' in text or f"'{name}'" in text for text in texts)


@functools.lru_cache(maxsize=None)
def _builtin_preset_files():
    """The text of keras_hub's `src/models/*/*_presets.py` files (read, not
    imported), or `None` when there are none to read."""
    spec = importlib.util.find_spec("keras_hub")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = list(spec.submodule_search_locations)[0]
    paths = sorted(glob.glob(os.path.join(root, "src", "models", "*", "*_presets.py")))
    texts = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                texts.append(f.read())
        except OSError:
            return None
    return tuple(texts) or None
