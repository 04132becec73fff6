"""What keras_tl knows about a backbone: how to build it, how to feed it and
where its weights come from.

Like timm's `pretrained_cfg`, the preprocessing travels with the backbone, so
every model built from a spec takes raw RGB pixels in [0, 255]; and each
pretrained weights source is a tag of the spec (`"imagenet"`) carrying its
own location, checksum, format and, where they differ from the spec's, its
preprocessing and input size.
"""

import dataclasses
import types
from typing import Callable, Mapping, Optional, Tuple, Union

from keras_tl.backbones._weights_file import FILE_SUFFIXES
from keras_tl.errors import ConfigError

Number = Union[float, Tuple[float, ...]]

_MODES = {
    # x / 127.5 - 1
    "tf": dict(mean=127.5, std=127.5),
    # ImageNet mean/std on RGB 0-255
    "torch": dict(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375)),
    # BGR, ImageNet mean subtracted, no scaling
    "caffe": dict(mean=(103.939, 116.779, 123.68), std=1.0, channel_order="bgr"),
    # the backbone normalises by itself
    "none": dict(),
}

# Formats of pretrained weights: the weights file formats (which a spec may
# port, see `BackboneSpec.ports`), and sources only a build function loads.
WEIGHTS_FORMATS = tuple(FILE_SUFFIXES) + (
    "keras.applications",  # downloaded by the keras.applications constructor
    "keras_hub",  # a keras_hub preset (or a model folder keras_hub converts)
    "build",  # loaded by the spec's own `build`, nothing more known
)


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """Per-channel `(x - mean) / std` applied to RGB 0-255 pixels.

    Example:
    >>> Preprocessing.from_mode("tf")
    Preprocessing(mean=127.5, std=127.5, channel_order='rgb')
    """

    mean: Number = 0.0
    std: Number = 1.0
    channel_order: str = "rgb"

    @classmethod
    def from_mode(cls, mode):
        """Builds the preprocessing of a `keras.applications` mode.

        Example:
        >>> Preprocessing.from_mode("caffe").channel_order
        'bgr'
        """
        if mode not in _MODES:
            raise ValueError(
                f"Unknown preprocessing mode {mode!r}; use one of {sorted(_MODES)}."
            )
        return cls(**_MODES[mode])

    def layer(self, name="preprocessing"):
        """Returns the Keras layer that applies this preprocessing.

        Example:
        >>> Preprocessing.from_mode("tf").layer().name
        'preprocessing'
        """
        from keras_tl.layers import PixelNormalization

        return PixelNormalization(
            mean=self.mean, std=self.std, channel_order=self.channel_order, name=name
        )

    def to_config(self):
        """A JSON-ready dict, as written into metadata files.

        Example:
        >>> Preprocessing().to_config()["input"]
        'RGB float32 in [0, 255]'
        """
        config = dataclasses.asdict(self)
        config["input"] = "RGB float32 in [0, 255]"
        return config


@dataclasses.dataclass(frozen=True)
class PretrainedWeights:
    """One pretrained weights source of a backbone, under a tag.

    Attributes:
        tag: the name users pass as `weights=` (`"imagenet"`).
        format: one of `WEIGHTS_FORMATS`: a file format (`"torch"`,
            `"keras"`, `"onnx"`), which the spec's port of that format
            reads, or `"keras.applications"`, `"keras_hub"`, `"build"`:
            weights the spec's `build` loads itself.
        location: where the weights come from, in words (a pip package and
            file, a keras.applications constructor...).
        sha256: the file's digest, when it is pinned.
        locate: `() -> path` of the file on this machine, raising
            `ImportError`, `OSError` or `ValueError` when it is not there;
            `None` when the weights download on first use.
        preprocessing: what these weights expect, when it differs from the
            spec's.
        input_size: the input size these weights were trained at, when it
            differs from the spec's.

    Example:
    >>> source = PretrainedWeights("imagenet", "keras.applications",
    ...                            "keras.applications.ResNet50")
    >>> source.tag, source.available_offline
    ('imagenet', False)
    """

    tag: str
    format: str
    location: str = ""
    sha256: Optional[str] = None
    locate: Optional[Callable[[], str]] = None
    preprocessing: Optional[Preprocessing] = None
    input_size: Optional[Tuple[int, ...]] = None

    def __post_init__(self):
        if self.format not in WEIGHTS_FORMATS:
            raise ConfigError(
                f"Unknown weights format {self.format!r} for tag {self.tag!r}; use one "
                f"of {', '.join(WEIGHTS_FORMATS)}."
            )
        if self.sha256 is not None and not (
            len(self.sha256) == 64 and all(c in "0123456789abcdef" for c in self.sha256)
        ):
            raise ConfigError(
                f"sha256 of weights {self.tag!r} must be 64 lower-case hex digits; "
                f"got {self.sha256!r}."
            )

    @property
    def available_offline(self):
        """Whether the weights are on this machine (`locate` finds them).

        Example:
        >>> PretrainedWeights("mine", "torch", locate=lambda: "/tmp").available_offline
        True
        """
        return bool(self.locate and locatable(self.locate)())


class BuildReads:
    """The port of a weights file format the spec's own `build` reads: the
    tag or the file path is handed to `build(weights, input_shape)`.

    The speech encoder's `build` reads ONNX files this way
    (`ports={"onnx": BuildReads()}`).

    Example:
    >>> spec = BackboneSpec("echo", build=lambda weights, input_shape: (weights, input_shape),
    ...                     default_weights=None)
    >>> BuildReads().build(spec, "/data/encoder.onnx", (16000,))
    ('/data/encoder.onnx', (16000,))
    """

    def build(self, spec, checkpoint, input_shape):
        """Builds `spec` with `checkpoint` (a `PretrainedWeights` or a path).

        Example:
        >>> spec = BackboneSpec("echo", build=lambda weights, input_shape: weights,
        ...                     default_weights=None)
        >>> BuildReads().build(spec, PretrainedWeights("v1", "onnx"), (16000,))
        'v1'
        """
        weights = checkpoint.tag if isinstance(checkpoint, PretrainedWeights) else checkpoint
        return spec.build(weights=weights, input_shape=input_shape)

    def __repr__(self):
        return "BuildReads()"


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone.

    Attributes:
        name: the registry name (lower snake case, e.g. `"resnet50"`).
        build: `build(weights, input_shape) -> keras.Model` returning the
            feature extractor without its classification top, randomly
            initialised for `weights=None`; other `weights` it receives are
            tags it loads itself (those with no port for their format) or
            files of a `BuildReads` port. `keras_tl.backbones.builder`
            decides which; call that, not `build`, to load weights.
        input_size: default input size: `(height, width)` for images,
            `(samples,)` for audio, `(tokens,)` for text.
        input_channels: channels appended to `input_size` to make the
            input shape (3 for RGB images; `None` for audio and text).
        preprocessing: what the backbone expects of RGB 0-255 pixels.
        default_weights: the tag used when the caller asks for
            `"default"` weights (`None`: random initialisation).
        min_input_size: smallest height/width the architecture accepts.
        fixed_input_size: whether only `input_size` works with the default
            pretrained weights.
        modality: `"image"`, `"text"` or `"audio"`.
        source: where the weights come from, for metadata.
        aliases: other names that find this spec.
        pretrained: the weights sources, `{tag: PretrainedWeights}` (or a
            sequence of `PretrainedWeights`). When none is given,
            `default_weights` is declared as a `"build"` source: one the
            spec's `build` loads itself.
        ports: `{file format: port}` for the weights file formats this
            backbone reads beyond Keras weights files (which every backbone
            reads), e.g. `{"torch": TorchPort(...)}`; a port has
            `build(spec, checkpoint, input_shape) -> model`, `checkpoint`
            being a `PretrainedWeights` of that format or a file path.
        classifier: `classifier(weights, input_shape, classifier_activation)
            -> keras.Model`, the 1000-class ImageNet classifier taking RGB
            0-255 pixels, or `None`.

    Example:
    >>> from keras_tl.backbones import get_backbone_spec
    >>> spec = get_backbone_spec("resnet50")
    >>> spec.input_size, sorted(spec.pretrained), spec.default_weights
    ((224, 224), ['imagenet'], 'imagenet')
    """

    name: str
    build: Callable
    input_size: Tuple[int, ...] = (224, 224)
    input_channels: Optional[int] = 3
    preprocessing: Preprocessing = Preprocessing()
    default_weights: Optional[str] = "imagenet"
    min_input_size: int = 32
    fixed_input_size: bool = False
    modality: str = "image"
    source: str = "keras.applications"
    aliases: Tuple[str, ...] = ()
    pretrained: Mapping[str, PretrainedWeights] = dataclasses.field(default_factory=dict)
    ports: Mapping[str, object] = dataclasses.field(default_factory=dict)
    classifier: Optional[Callable] = None

    def __post_init__(self):
        sources = self.pretrained
        if not isinstance(sources, Mapping):
            sources = {source.tag: source for source in sources}
        if not sources and self.default_weights is not None:
            sources = {self.default_weights: PretrainedWeights(
                self.default_weights, "build", self.source)}
        for tag, source in sources.items():
            if not isinstance(source, PretrainedWeights) or source.tag != tag:
                raise ConfigError(
                    f"Backbone {self.name!r}: pretrained[{tag!r}] must be a "
                    f"PretrainedWeights with tag {tag!r}; got {source!r}.")
        if self.default_weights is not None and self.default_weights not in sources:
            raise ConfigError(
                f"Backbone {self.name!r}: default_weights {self.default_weights!r} is "
                f"not one of its weights tags {sorted(sources)}.")
        unknown = [fmt for fmt in self.ports if fmt not in FILE_SUFFIXES]
        if unknown:
            raise ConfigError(
                f"Backbone {self.name!r}: ports are for weights file formats "
                f"({', '.join(FILE_SUFFIXES)}); got {', '.join(map(repr, unknown))}.")
        object.__setattr__(self, "pretrained", types.MappingProxyType(dict(sources)))
        object.__setattr__(self, "ports", types.MappingProxyType(dict(self.ports)))

    def __hash__(self):  # the mapping fields are unhashable; equal specs share these
        return hash((self.name, self.source, self.input_size))

    def input_shape(self, size):
        """The model input shape for an input `size`.

        Example:
        >>> from keras_tl.backbones import get_backbone_spec
        >>> get_backbone_spec("resnet50").input_shape((64, 64))
        (64, 64, 3)
        """
        return tuple(size) + ((self.input_channels,) if self.input_channels else ())

    def for_weights(self, tag):
        """This spec as the weights `tag` want it fed: their preprocessing
        and input size where they declare their own (`tag=None`: as is).

        Example:
        >>> spec = BackboneSpec("net", build=print, pretrained=[
        ...     PretrainedWeights("imagenet", "build"),
        ...     PretrainedWeights("in21k", "build", input_size=(384, 384),
        ...                       preprocessing=Preprocessing.from_mode("tf"))])
        >>> spec.for_weights("in21k").input_size, spec.for_weights("imagenet").input_size
        ((384, 384), (224, 224))
        """
        source = self.pretrained.get(tag) if tag is not None else None
        changes = {}
        if source is not None and source.preprocessing is not None:
            changes["preprocessing"] = source.preprocessing
        if source is not None and source.input_size is not None:
            changes["input_size"] = tuple(source.input_size)
        return dataclasses.replace(self, **changes) if changes else self

    @property
    def readable_formats(self):
        """The weights file formats this backbone reads: Keras weights
        files, and those it has a port for.

        Example:
        >>> from keras_tl.backbones import get_backbone_spec
        >>> get_backbone_spec("efficientnet_lite0").readable_formats
        ('keras', 'torch')
        """
        return tuple(dict.fromkeys(("keras",) + tuple(self.ports)))

    @property
    def available_offline(self):
        """Whether the default weights are already on this machine.

        Example:
        >>> from keras_tl.backbones import get_backbone_spec
        >>> get_backbone_spec("resnet50").available_offline
        False
        """
        source = self.pretrained.get(self.default_weights)
        return bool(source and source.available_offline)


@dataclasses.dataclass
class LoadedBackbone:
    """A built backbone with what is needed to put a head on it: the Keras
    model (named `"backbone"`), its spec (preprocessing, modality...), the
    input size, the weights used and, for text, the preprocessor that turns
    strings into the model's int inputs.

    Example:
    >>> from keras_tl.backbones import load_backbone
    >>> loaded = load_backbone("resnet50", weights=None, image_size=64)
    >>> loaded.input_size, loaded.spec.preprocessing.channel_order
    ((64, 64), 'bgr')
    """

    model: object
    spec: BackboneSpec
    input_size: tuple
    weights: str
    preprocessor: object = None

    @property
    def tokenizer(self):
        """The text preprocessor's tokenizer (text backbones only).

        Example:
        >>> from keras_tl.backbones import load_backbone
        >>> load_backbone("resnet50", weights=None, image_size=64).tokenizer is None
        True
        """
        return getattr(self.preprocessor, "tokenizer", None)

    @property
    def input_names(self):
        """Names of the model's inputs, sorted (text: `padding_mask`, ...).

        Example:
        >>> from keras_tl.backbones import load_backbone
        >>> load_backbone("mobilenet_v2_torch", weights=None, image_size=32).input_names
        ['input_layer']
        """
        inputs = self.model.input
        if isinstance(inputs, dict):
            return sorted(inputs)
        return [tensor.name.split(":")[0] for tensor in self.model.inputs]


def locatable(locate):
    """A check that is true when `locate()` (a function that finds a
    weights file, raising when it is missing) succeeds.

    Example:
    >>> locatable(lambda: "/tmp")(), locatable(lambda: open("/no/such/file"))()
    (True, False)
    """

    def check():
        try:
            locate()
            return True
        except (ImportError, OSError, ValueError):
            return False

    return check
