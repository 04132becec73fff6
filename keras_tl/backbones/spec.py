"""What keras_tl knows about a backbone: how to build it and how to feed it.

Like timm's `pretrained_cfg`, the preprocessing travels with the backbone, so
every model built from a spec takes raw RGB pixels in [0, 255].
"""

import dataclasses
from typing import Callable, Optional, Tuple, Union

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
        >>> layer = Preprocessing.from_mode("tf").layer()
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
class BackboneSpec:
    """A registered backbone.

    Attributes:
        name: the registry name (lower snake case, e.g. `"resnet50"`).
        build: `build(weights, input_shape) -> keras.Model` returning the
            feature extractor without its classification top.
        input_size: default input size: `(height, width)` for images,
            `(samples,)` for audio, `(tokens,)` for text.
        input_channels: channels appended to `input_size` to make the
            input shape (3 for RGB images; `None` for audio and text).
        preprocessing: what the backbone expects of RGB 0-255 pixels.
        default_weights: the weights used when the caller gives none.
        min_input_size: smallest height/width the architecture accepts.
        fixed_input_size: whether only `input_size` works with the default
            pretrained weights.
        modality: `"image"`, `"text"` or `"audio"`.
        source: where the weights come from, for metadata.
        aliases: other names that find this spec.
        offline_check: `() -> bool`, whether the default weights are on
            this machine (`None`: they download on first use).

    Example:
    >>> spec = get_backbone_spec("resnet50")
    >>> spec.input_size
    (224, 224)
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
    offline_check: Optional[Callable] = None

    def input_shape(self, size):
        """The model input shape for an input `size`.

        Example:
        >>> get_backbone_spec("resnet50").input_shape((64, 64))
        (64, 64, 3)
        """
        return tuple(size) + ((self.input_channels,) if self.input_channels else ())

    @property
    def available_offline(self):
        """Whether the default weights are already on this machine.

        Example:
        >>> get_backbone_spec("resnet50").available_offline
        False
        """
        return bool(self.offline_check and self.offline_check())


def locatable(locate):
    """An `offline_check` that is true when `locate()` (a function that
    finds a weights file, raising when it is missing) succeeds.

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
