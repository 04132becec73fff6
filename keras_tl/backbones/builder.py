"""The one place a backbone's `weights=` is resolved and its weights loaded.

`weights` is, for any backbone (image, text or audio):

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
import os
from typing import Optional

from keras_tl.backbones._weights_file import (
    describe_formats,
    load_weights_checked,
    weights_file_format,
)
from keras_tl.backbones.spec import LoadedBackbone, PretrainedWeights
from keras_tl.errors import BackboneError, KerasTLError


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
