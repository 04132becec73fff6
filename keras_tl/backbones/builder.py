"""The one builder: `load_backbone` turns whatever names a backbone into a
`LoadedBackbone`, and the one place a backbone's `weights=` is resolved and
its weights loaded.

`load_backbone` takes, checked in this order:

- a `LoadedBackbone`: returned as it is;
- anything with an `as_backbone(input_size)` method (a `FinetuneResult`):
  what it hands over;
- a finished keras_tl image classifier: a run folder (`run.json`), its
  `.keras` file, or the model itself: its trained backbone and
  preprocessing, its head dropped;
- what a registered source accepts (`SOURCES`: the text encoders' keras_hub
  presets, Hugging Face folders and `Backbone` objects);
- another `keras.Model`: an image backbone, given its `preprocessing`;
- a registered name (`keras_tl.list_backbones()`: image, text and audio);
- a keras_hub image preset: a local folder or a `kaggle://` / `hf://` handle.

Anything else is a one-line `BackboneError`.

`weights` is, for any registered backbone (image, text or audio):

- `None`: random initialisation;
- `"default"`: the spec's `default_weights` tag (or random when it has none);
- a tag of the spec (`spec.pretrained`, e.g. `"imagenet"`): loaded by the
  spec's port of the tag's format, or by the spec's own `build` (weights
  keras.applications downloads, keras_hub presets...);
- the path of an existing file, its format told by its name:
  `.weights.h5` / `.h5` / `.keras` (Keras weights, checked layer by layer;
  every backbone reads them), `.pth` / `.pt` / `.bin` / `.ckpt` (a PyTorch
  state dict, for backbones with a torch port), `.onnx` (for those that read
  ONNX).

A tag wins over a file of the same name. Anything else is a `BackboneError`
that lists the spec's tags.
"""

import dataclasses
import json
import os
from typing import Optional

from keras_tl.backbones._weights_file import (
    describe_formats,
    load_weights_checked,
    weights_file_format,
)
from keras_tl.backbones.keras_hub_presets import preset_spec
from keras_tl.backbones.registry import BACKBONES, get_backbone_spec
from keras_tl.backbones.spec import BackboneSpec, LoadedBackbone, Preprocessing, PretrainedWeights
from keras_tl.errors import BackboneError, ConfigError, KerasTLError
from keras_tl.registry import Registry

# Keras, and the keras_tl modules that import it, are imported by the
# functions that build: the names and specs of the backbones cost no Keras.

RUN_FILE = "run.json"  # what makes a folder a finished keras_tl run
RUN_MODEL_FILE = "model.keras"

# Entry points beyond names and image models, registered by the modules that
# load them, each with `accepts(backbone, modality)` and
# `load(backbone, weights, input_size, tokenizer) -> LoadedBackbone`;
# tried in registration order before the keras.Model and name cases.
SOURCES = Registry("Backbone source", plural="sources")


def load_backbone(backbone, weights="default", image_size=None, input_size=None,
                  preprocessing=None, tokenizer=None, modality=None):
    """Builds the feature extractor `backbone` names, image, text or audio.

    Args:
        backbone: a registry name (`keras_tl.list_backbones()`), a keras_hub
            preset (local folder or remote handle), a local Hugging Face
            text model folder, a `keras.Model` whose input is an image (with
            `preprocessing`), a keras_hub text `Backbone` (with
            `tokenizer`), a `LoadedBackbone` (returned as it is), or a
            fine-tuned keras_tl image classifier to start from (a run
            folder, a `FinetuneResult`, a `.keras` file or the model
            itself): its trained backbone and preprocessing are kept, its
            head dropped. See the module documentation for the order.
        weights: `"default"` (the spec's `default_weights`), one of the
            spec's tags (`spec.pretrained`, e.g. `"imagenet"`), `None`
            (random init) or the path of an existing weights file.
        image_size: for images, `(height, width)` or an int.
        input_size: the input size in the spec's terms (`(height, width)`,
            `(samples,)`, `(tokens,)`); defaults to the backbone's.
        preprocessing: with a bare `keras.Model`: what it expects of RGB
            0-255 pixels, a `Preprocessing` or a mode (`"tf"`, `"torch"`,
            `"caffe"`, `"none"` when the model normalises by itself).
        tokenizer: with a keras_hub text `Backbone` object: its tokenizer
            (or a text classifier preprocessor).
        modality: `"image"`, `"text"` or `"audio"` to refuse a backbone of
            another kind (`None`: any).

    Example:
    >>> loaded = load_backbone("mobilenet_v2", weights=None, image_size=96)
    >>> loaded.model.output.shape
    (None, 3, 3, 1280)
    >>> load_backbone("minilm", weights=None, input_size=(16,)).input_names
    ['padding_mask', 'segment_ids', 'token_ids']
    >>> load_backbone(42)
    Traceback (most recent call last):
    ...
    keras_tl.errors.BackboneError: Cannot load a backbone from a int: pass a registry name (keras_tl.list_backbones()), a keras_hub preset or model folder, a keras.Model, a finished run or a LoadedBackbone.
    """
    size = input_size if input_size is not None else image_size
    if isinstance(backbone, os.PathLike):
        backbone = os.fspath(backbone)
    loaded = _load(backbone, weights, size, preprocessing, tokenizer, modality)
    if modality is not None and loaded.spec.modality != modality:
        raise BackboneError(
            f"{_describe(backbone)} is a {loaded.spec.modality} backbone "
            f"({loaded.spec.name}); {modality} data needs a{'n' if modality[0] in 'aio' else ''} "
            f"{modality} backbone: keras_tl.list_backbones({modality!r}).")
    return loaded


def _load(backbone, weights, size, preprocessing, tokenizer, modality):
    if isinstance(backbone, LoadedBackbone):  # already built, maybe customised
        return backbone
    if callable(getattr(backbone, "as_backbone", None)):  # a FinetuneResult
        return backbone.as_backbone(size)
    trained = _trained_classifier(backbone)
    if trained is not None:
        return from_trained_classifier(*trained, size)
    import keras

    for name in SOURCES:
        source = SOURCES.get(name)
        if source.accepts(backbone, modality):
            return source.load(backbone, weights=weights, input_size=size, tokenizer=tokenizer)
    if isinstance(backbone, keras.Model):
        return _from_user_model(backbone, size, preprocessing)
    if not isinstance(backbone, str):
        raise BackboneError(
            f"Cannot load a backbone from a {type(backbone).__name__}: pass a registry name "
            "(keras_tl.list_backbones()), a keras_hub preset or model folder, a keras.Model, "
            "a finished run or a LoadedBackbone.")
    if "://" in backbone or os.path.isdir(backbone):
        return build_backbone(preset_spec(backbone), weights, size)
    spec = get_backbone_spec(backbone)
    resolved = resolve_weights(spec, weights)
    spec = spec.for_weights(resolved.tag)  # the preprocessing and input size of those weights
    return build_backbone(spec, resolved, _check_input_size(spec, size))


def check_backbone_name(backbone, modality=None):
    """Refuses, without importing Keras, a string `backbone` that
    `load_backbone(backbone, modality=modality)` could only refuse: no
    registered name, no file, folder or `scheme://` handle, and nothing a
    source (`SOURCES`) may load, such as a keras_hub text preset. Raises the
    registry's `BackboneError` naming the closest names; whatever else
    passes, for the loaders to judge.

    Example:
    >>> check_backbone_name("MobileNet-V2"), check_backbone_name("bert_tiny_en_uncased")
    (None, None)
    >>> check_backbone_name("mobilenetv9")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_tl.errors.BackboneError: Unknown backbone 'mobilenetv9'. Did you mean: mobilenet, ...
    """
    if not isinstance(backbone, str) or backbone in BACKBONES:
        return None
    if "://" in backbone or os.path.exists(backbone):
        return None  # a preset handle, a run, a folder or a file: their loaders tell
    for name in SOURCES:
        may_accept = getattr(SOURCES.get(name), "may_accept", None)
        if may_accept is None or may_accept(backbone, modality):
            return None  # a source that cannot tell without loading, or may load it
    get_backbone_spec(backbone)  # raises the registry's "Unknown backbone" error
    return None


def _describe(backbone):
    return repr(backbone) if isinstance(backbone, str) else f"The {type(backbone).__name__}"


@dataclasses.dataclass(frozen=True)
class ResolvedWeights:
    """What `weights=` names for one spec: nothing (random initialisation),
    one of its `PretrainedWeights`, or a weights file of a format it reads.

    Example:
    >>> from keras_tl.backbones import get_backbone_spec
    >>> resolved = resolve_weights(get_backbone_spec("resnet50"), "default")
    >>> resolved.tag, resolved.format, resolved.label
    ('imagenet', 'keras.applications', 'imagenet')
    """

    source: Optional[PretrainedWeights] = None
    path: Optional[str] = None
    format: Optional[str] = None

    @property
    def tag(self):
        """The tag of the weights source, or `None` (a file, random init).

        Example:
        >>> ResolvedWeights().tag is None
        True
        """
        return self.source.tag if self.source is not None else None

    @property
    def checkpoint(self):
        """What a port reads: the `PretrainedWeights`, the file path, or
        `None` for random initialisation.

        Example:
        >>> ResolvedWeights(path="my.weights.h5", format="keras").checkpoint
        'my.weights.h5'
        """
        return self.source if self.source is not None else self.path

    @property
    def value(self):
        """What a build function takes as `weights`: the tag, the path or
        `None`.

        Example:
        >>> ResolvedWeights(PretrainedWeights("imagenet", "build")).value
        'imagenet'
        """
        return self.tag if self.source is not None else self.path

    @property
    def label(self):
        """How the weights are named in metadata: the tag, the path or
        `"None"`.

        Example:
        >>> ResolvedWeights().label
        'None'
        """
        return str(self.value)


def resolve_weights(spec, weights):
    """Tells what `weights` means for `spec`, or raises a `BackboneError`
    saying what it accepts (see the module documentation).

    Example:
    >>> from keras_tl.backbones import get_backbone_spec
    >>> spec = get_backbone_spec("efficientnet_lite0")
    >>> resolve_weights(spec, None).checkpoint is None
    True
    >>> resolve_weights(spec, "imagenet").source.format
    'torch'
    >>> resolve_weights(spec, "imagenet21k")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_tl.errors.BackboneError: Unknown weights 'imagenet21k' for backbone 'efficientnet_lite0': ...
    """
    if isinstance(weights, ResolvedWeights):
        return weights
    if weights is None:
        return ResolvedWeights()
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    if not isinstance(weights, str):
        raise BackboneError(
            f"weights must be None, a weights tag or a file path; got {type(weights).__name__}."
        )
    if weights == "default":
        if spec.default_weights is None:
            return ResolvedWeights()
        weights = spec.default_weights
    if weights in spec.pretrained:
        source = spec.pretrained[weights]
        return ResolvedWeights(source=source, format=source.format)
    fmt = weights_file_format(weights)
    if os.path.isfile(weights):
        if fmt is None or fmt not in spec.readable_formats:
            what = f"a {fmt} file" if fmt else "a file whose name does not tell its format"
            raise BackboneError(
                f"Weights {weights} are {what}; backbone {spec.name!r} reads "
                f"{describe_formats(spec.readable_formats)}.")
        return ResolvedWeights(path=weights, format=fmt)
    accepted = (f"one of its weights tags ({_tags(spec)}), 'default', None for random "
                f"initialisation, or an existing file: {describe_formats(spec.readable_formats)}")
    if fmt is not None:
        raise BackboneError(
            f"Weights file not found: {os.path.abspath(weights)}. Backbone {spec.name!r} "
            f"takes {accepted}.")
    kind = "a folder, not a weights file" if os.path.isdir(weights) else "neither a weights tag nor a file"
    raise BackboneError(
        f"Unknown weights {weights!r} for backbone {spec.name!r}: {kind}. Pass {accepted}.")


def _tags(spec):
    return ", ".join(repr(tag) for tag in spec.pretrained) or "none"


def build_backbone(spec, weights, input_size=None):
    """Builds `spec` with `weights` (resolved by `resolve_weights`) at
    `input_size` (default: the weights' or the spec's), as a `LoadedBackbone`.

    Sizes are not checked here: `keras_tl.load_backbone` does that.

    Example:
    >>> from keras_tl.backbones import get_backbone_spec
    >>> loaded = build_backbone(get_backbone_spec("mobilenet_v2"), None, (64, 64))
    >>> loaded.model.output.shape, loaded.weights
    ((None, 2, 2, 1280), 'None')
    """
    resolved = resolve_weights(spec, weights)
    spec = spec.for_weights(resolved.tag)
    if input_size is None:
        input_size = spec.input_size
    elif isinstance(input_size, int):
        input_size = (input_size,) * len(spec.input_size)
    input_size = tuple(input_size)
    input_shape = spec.input_shape(input_size)
    port = _port(spec, resolved.format)
    if resolved.checkpoint is None:
        built = call_build(spec, None, input_shape)
    elif port is None:  # a tag only the spec's build loads
        built = call_build(spec, resolved.tag, input_shape,
                           downloads=resolved.source.locate is None)
    else:
        built = port.build(spec, resolved.checkpoint, input_shape)
    if isinstance(built, LoadedBackbone):  # text: with its preprocessor
        return built
    return LoadedBackbone(built, spec, input_size, resolved.label)


def _port(spec, fmt):
    if fmt == "keras":
        return spec.ports.get("keras", KERAS_WEIGHTS)
    return spec.ports.get(fmt)


def call_build(spec, weights, input_shape, downloads=False):
    """`spec.build(weights, input_shape)`, its errors made keras_tl's: a
    failed download (`downloads=True`) says how to work offline; another
    `ValueError` becomes a `BackboneError` naming the backbone.

    Example:
    >>> from keras_tl.backbones import get_backbone_spec
    >>> call_build(get_backbone_spec("mobilenet_v2"), None, (32, 32, 3)).name
    'mobilenetv2_1.00_32'
    """
    try:
        return spec.build(weights=weights, input_shape=input_shape)
    except KerasTLError:
        raise
    except Exception as error:
        if downloads and ("URL fetch failure" in str(error) or isinstance(error, OSError)):
            raise ConnectionError(
                f"Could not download the {weights!r} weights of backbone "
                f"{spec.name!r}: {error}. Without network, pass weights=None, a "
                "local weights file, or an offline backbone such as "
                "'efficientnet_lite0' or 'mobilenet_v2_torch'."
            ) from error
        if not isinstance(error, ValueError):
            raise
        raise BackboneError(
            f"Could not build backbone {spec.name!r} with weights={weights!r} "
            f"at input shape {input_shape}: {error}"
        ) from error


class KerasWeightsFile:
    """The port every backbone has: a Keras weights file (`.weights.h5`,
    `.h5`, `.keras`) loaded into the randomly initialised model, checked
    layer by layer.

    Example:
    >>> from keras_tl.backbones import get_backbone_spec
    >>> _port(get_backbone_spec("resnet50"), "keras")
    KerasWeightsFile()
    """

    def build(self, spec, checkpoint, input_shape):
        """Builds `spec` randomly initialised, then loads `checkpoint` (a
        path, or `PretrainedWeights` of format `"keras"` with a local file).

        Example:
        >>> import tempfile
        >>> from keras_tl.backbones import get_backbone_spec
        >>> spec = get_backbone_spec("mobilenet_v2")
        >>> path = os.path.join(tempfile.mkdtemp(), "mine.weights.h5")
        >>> call_build(spec, None, (32, 32, 3)).save_weights(path)
        >>> KERAS_WEIGHTS.build(spec, path, (32, 32, 3)).output.shape
        (None, 1, 1, 1280)
        """
        path = checkpoint
        if isinstance(checkpoint, PretrainedWeights):
            if checkpoint.locate is None:
                raise BackboneError(
                    f"The {checkpoint.tag!r} weights of backbone {spec.name!r} have no local "
                    "file; their PretrainedWeights need a `locate`.")
            path = checkpoint.locate()
            if checkpoint.sha256:
                from keras_tl.weights.torch_state_dict import check_sha256

                check_sha256(path, checkpoint.sha256)
        built = call_build(spec, None, input_shape)
        load_weights_checked(built.model if isinstance(built, LoadedBackbone) else built,
                             os.fspath(path))
        return built

    def __repr__(self):
        return "KerasWeightsFile()"


KERAS_WEIGHTS = KerasWeightsFile()


# ------------------------------------------------------- the entry points' checks


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
    image classifier (a run folder, a `.keras` file or the model), else
    `None`. A run folder is read here, not through `FinetuneResult`: the
    backbones sit below the run."""
    import keras

    from keras_tl.freezing import BACKBONE_LAYER

    if isinstance(backbone, str):
        model_file, run_file = backbone, os.path.join(os.path.dirname(backbone), RUN_FILE)
        if os.path.isfile(os.path.join(backbone, RUN_FILE)):
            model_file = os.path.join(backbone, RUN_MODEL_FILE)
            run_file = os.path.join(backbone, RUN_FILE)
        elif not (backbone.endswith(".keras") and os.path.isfile(backbone)):
            return None
        if not os.path.isfile(model_file):
            raise BackboneError(
                f"{backbone} holds no {RUN_MODEL_FILE}; is it the output folder of a "
                "finished keras_tl run?")
        model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
        info = {}
        if os.path.isfile(run_file):  # the model of a run folder
            with open(run_file, encoding="utf-8") as f:
                info = json.load(f).get("info", {})
        source = f"run {backbone}" if model_file != backbone else backbone
        return model, info, source
    if isinstance(backbone, keras.Model) and BACKBONE_LAYER in {l.name for l in backbone.layers}:
        return backbone, {}, f"model {backbone.name}"
    return None


def from_trained_classifier(model, info, source, size=None):
    """The trained backbone of a keras_tl image classifier `model` (its
    run's `info`; `source` names it in errors), with the preprocessing the
    model applied; what `FinetuneResult.as_backbone` hands over.

    Example:
    >>> from keras_tl.tasks.image_classifier import build_image_classifier
    >>> classifier = build_image_classifier(
    ...     load_backbone("mobilenet_v2", weights=None, image_size=32), 3)
    >>> trained = from_trained_classifier(classifier, {"backbone": "mobilenet_v2"}, "a model")
    >>> trained.spec.name, trained.input_size, trained.spec.preprocessing.mean
    ('mobilenet_v2', (32, 32), 127.5)
    """
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
            raise ConfigError(
                f"image_size {wanted} does not match the given model's input {shape}."
            )
        size = shape
    elif None in shape:
        if image_size is None:
            raise ConfigError(
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
