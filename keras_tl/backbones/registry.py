"""Name -> backbone resolution: the one place a backbone name is looked up."""

import difflib
import os
import re

from keras_tl.backbones.builder import build_backbone, resolve_weights
from keras_tl.backbones.spec import BackboneSpec, LoadedBackbone, Preprocessing
from keras_tl.errors import BackboneError, ConfigError

_REGISTRY = {}
_ALIASES = {}


def name_key(name):
    """The form names are compared in: lower case, letters and digits only.

    Example:
    >>> name_key("EfficientNet-Lite0"), name_key("efficientnet_lite0")
    ('efficientnetlite0', 'efficientnetlite0')
    """
    return re.sub(r"[^a-z0-9]", "", name.lower())


def register_backbone(spec, overwrite=False):
    """Adds a `BackboneSpec` to the registry under its name and aliases.

    Example:
    >>> register_backbone(get_backbone_spec("resnet50"), overwrite=True).name
    'resnet50'
    """
    if not isinstance(spec, BackboneSpec):
        raise TypeError(f"Expected a BackboneSpec, got {type(spec).__name__}.")
    if spec.name in _REGISTRY and not overwrite:
        raise ValueError(
            f"Backbone {spec.name!r} is already registered; pass overwrite=True "
            "to replace it."
        )
    _REGISTRY[spec.name] = spec
    for alias in (spec.name,) + tuple(spec.aliases):
        _ALIASES[name_key(alias)] = spec.name
    return spec


def list_backbones(modality=None):
    """Sorted names of the registered backbones (of one modality: `"image"`,
    `"text"` or `"audio"`).

    Example:
    >>> "mobilenet_v2" in list_backbones("image"), list_backbones("text")
    (True, ['all_minilm_l6_v2'])
    """
    return sorted(
        name
        for name, spec in _REGISTRY.items()
        if modality is None or spec.modality == modality
    )


def get_backbone_spec(name):
    """Returns the `BackboneSpec` registered under `name` (case, `_` and `-`
    are ignored), or raises a `ValueError` listing the closest names.

    Example:
    >>> get_backbone_spec("ResNet50").name
    'resnet50'
    """
    canonical = _ALIASES.get(name_key(name))
    if canonical is not None:
        return _REGISTRY[canonical]
    close = difflib.get_close_matches(name.lower(), list(_REGISTRY), n=5, cutoff=0.5)
    close += [
        _ALIASES[k]
        for k in difflib.get_close_matches(name_key(name), list(_ALIASES), n=5, cutoff=0.6)
    ]
    close = list(dict.fromkeys(close))[:5]
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise BackboneError(
        f"Unknown backbone {name!r}.{hint} keras_tl.list_backbones() lists all "
        f"{len(_REGISTRY)} names; a keras_hub preset (a local folder, "
        "'kaggle://...' or 'hf://...') or a keras.Model also work."
    )


def load_backbone(backbone, weights="default", image_size=None, input_size=None,
                  preprocessing=None):
    """Builds the feature extractor named by `backbone`, image, text or audio.

    Args:
        backbone: a registry name (`keras_tl.list_backbones()`), a keras_hub
            preset (local folder or remote handle), a `keras.Model` whose
            input is an image (with `preprocessing`), a `LoadedBackbone`
            (returned as it is), or a fine-tuned keras_tl image classifier
            to start from (a run folder, a `FinetuneResult`, a `.keras`
            file or the model itself): its trained backbone and
            preprocessing are kept, its head dropped.
        weights: `"default"` (the spec's `default_weights`), one of the
            spec's tags (`spec.pretrained`, e.g. `"imagenet"`), `None`
            (random init) or the path of an existing weights file; see
            `keras_tl.backbones.builder`.
        image_size: for images, `(height, width)` or an int.
        input_size: the input size in the spec's terms (`(height, width)`,
            `(samples,)`, `(tokens,)`); defaults to the backbone's.
        preprocessing: with a bare `keras.Model`: what it expects of RGB
            0-255 pixels, a `Preprocessing` or a mode (`"tf"`, `"torch"`,
            `"caffe"`, `"none"` when the model normalises by itself).

    Example:
    >>> loaded = load_backbone("mobilenet_v2", weights=None, image_size=96)
    >>> loaded.model.output.shape
    (None, 3, 3, 1280)
    """
    import keras

    size = input_size if input_size is not None else image_size
    if isinstance(backbone, LoadedBackbone):  # already built, maybe customised
        return backbone
    trained = _trained_classifier(backbone)
    if trained is not None:
        return _from_trained_classifier(*trained, size)
    if isinstance(backbone, keras.Model):
        return _from_user_model(backbone, size, preprocessing)
    if isinstance(backbone, os.PathLike):
        backbone = os.fspath(backbone)
    if not isinstance(backbone, str):
        raise TypeError(
            "backbone must be a registry name, a keras_hub preset or a keras.Model; "
            f"got {type(backbone).__name__}."
        )
    if _looks_like_preset(backbone):
        from keras_tl.backbones import keras_hub_presets

        return keras_hub_presets.load_preset_backbone(backbone, weights, size)
    spec = get_backbone_spec(backbone)
    resolved = resolve_weights(spec, weights)
    spec = spec.for_weights(resolved.tag)  # the preprocessing and input size of those weights
    return build_backbone(spec, resolved, _check_input_size(spec, size))


def _looks_like_preset(name):
    return "://" in name or os.path.isdir(name)


def _check_input_size(spec, image_size):
    if image_size is None:
        return tuple(spec.input_size)
    if isinstance(image_size, int):
        image_size = (image_size,) * len(spec.input_size)
    size = tuple(int(v) for v in image_size)
    if len(size) != len(spec.input_size):
        raise ConfigError(
            f"The input size of backbone {spec.name!r} has {len(spec.input_size)} "
            f"value(s), e.g. {spec.input_size}; got {image_size!r}.")
    if min(size) < spec.min_input_size:
        raise ConfigError(
            f"Input size {size} is too small for backbone {spec.name!r}: it needs "
            f"at least {'x'.join([str(spec.min_input_size)] * len(size))}. Pass a larger "
            f"size (its default is {spec.input_size})."
        )
    if spec.fixed_input_size and size != tuple(spec.input_size):
        raise ConfigError(
            f"Backbone {spec.name!r} only takes {spec.input_size} images with its "
            f"pretrained weights; got image_size {size}."
        )
    return size


def _trained_classifier(backbone):
    """`(model, info, source)` when `backbone` is a fine-tuned keras_tl
    image classifier (a run folder, a `FinetuneResult`, a `.keras` file or
    the model), else `None`."""
    import keras

    from keras_tl.freezing import BACKBONE_LAYER

    if hasattr(backbone, "model") and hasattr(backbone, "info") and hasattr(backbone, "histories"):
        return backbone.model, dict(backbone.info), f"run {backbone.output_dir}"
    if isinstance(backbone, (str, os.PathLike)):
        path = os.fspath(backbone)
        if os.path.isfile(os.path.join(path, "run.json")):
            from keras_tl.result import FinetuneResult

            result = FinetuneResult.load(path)
            return result.model, dict(result.info), f"run {path}"
        if path.endswith(".keras") and os.path.isfile(path):
            import json

            model = keras.saving.load_model(path, compile=False, safe_mode=True)
            run_file = os.path.join(os.path.dirname(path), "run.json")
            info = {}
            if os.path.isfile(run_file):  # the model of a run folder
                with open(run_file, encoding="utf-8") as f:
                    info = json.load(f).get("info", {})
            return model, info, path
        return None
    if isinstance(backbone, keras.Model) and BACKBONE_LAYER in {l.name for l in backbone.layers}:
        return backbone, {}, f"model {backbone.name}"
    return None


def _from_trained_classifier(model, info, source, size):
    from keras_tl.freezing import BACKBONE_LAYER
    from keras_tl.layers import PixelNormalization

    if info.get("modality", "image") != "image" or len(model.inputs) != 1:
        raise BackboneError(
            f"Only image classifiers can be the start of another run; {source} is a "
            f"{info.get('task', 'model of another kind')}.")
    names = {layer.name: layer for layer in model.layers}
    if BACKBONE_LAYER not in names:
        raise BackboneError(f"{source} has no layer named {BACKBONE_LAYER!r}: it was not made by keras_tl.")
    normalisers = [layer for layer in model.layers if isinstance(layer, PixelNormalization)]
    preprocessing = Preprocessing.from_mode("none")
    if normalisers:
        config = normalisers[0].get_config()
        as_number = lambda v: tuple(v) if isinstance(v, list) else v  # noqa: E731
        preprocessing = Preprocessing(as_number(config["mean"]), as_number(config["std"]),
                                      config["channel_order"])
    trained = names[BACKBONE_LAYER]
    shape = tuple(model.input_shape[1:3])
    if size is not None and tuple(size) != shape:
        raise ConfigError(f"{source} takes {shape} images; image_size {tuple(size)} differs.")
    spec = BackboneSpec(
        name=str(info.get("backbone") or trained.name),
        build=lambda weights, input_shape: trained,
        input_size=shape,
        preprocessing=preprocessing,
        default_weights=None,
        source=f"fine-tuned keras_tl {source}",
    )
    return LoadedBackbone(trained, spec, shape, f"fine-tuned ({source})")


def _normalises_itself(model):
    """Whether the model's first layers scale its input (keras.applications
    models built with their preprocessing, or a `Rescaling` first layer)."""
    import keras

    from keras_tl.layers import PixelNormalization

    scalers = (keras.layers.Rescaling, keras.layers.Normalization, PixelNormalization)
    first = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)][:3]
    return any(isinstance(layer, scalers) for layer in first)


def _from_user_model(model, image_size, preprocessing=None):
    if preprocessing is None and _normalises_itself(model):
        preprocessing = "none"
    if preprocessing is None:
        raise ConfigError(
            f"A bare keras.Model backbone ({model.name!r}) needs its preprocessing: pass "
            "preprocessing='tf' (x/127.5-1), 'torch' (ImageNet mean/std), 'caffe', a "
            "keras_tl.Preprocessing(mean, std), or 'none' if the model normalises RGB 0-255 "
            "pixels itself. A fine-tuned keras_tl model or run folder brings its own.")
    if isinstance(preprocessing, str):
        preprocessing = Preprocessing.from_mode(preprocessing)
    shape = tuple(model.input_shape[1:3])
    if image_size is not None and None not in shape:
        wanted = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if wanted != shape:
            raise ValueError(
                f"image_size {wanted} does not match the given model's input {shape}."
            )
        size = shape
    elif None in shape:
        if image_size is None:
            raise ValueError(
                "The given keras.Model has no fixed input size; pass image_size."
            )
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    else:
        size = shape
    spec = BackboneSpec(
        name=model.name,
        build=lambda weights, input_shape: model,
        input_size=size,
        preprocessing=preprocessing,
        default_weights=None,
        source="user keras.Model",
    )
    return LoadedBackbone(model, spec, size, "user")
