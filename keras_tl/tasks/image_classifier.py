"""Image classifier: preprocessing, backbone, pooling, dropout, softmax head."""

import keras

from keras_tl.freezing import BACKBONE_LAYER

INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"


def build_image_classifier(loaded, num_classes, dropout=0.2, name="image_classifier"):
    """Puts a classification head on a loaded backbone.

    The model takes float32 RGB pixels in [0, 255], shape `[batch, H, W, 3]`
    (input `"images"`), and returns softmax `"probabilities"`.

    Args:
        loaded: a `keras_tl.backbones.LoadedBackbone`.
        num_classes: number of classes (>= 2).
        dropout: dropout rate before the final dense layer.

    Example:
    >>> loaded = load_backbone("mobilenet_v2", weights=None, image_size=96)
    >>> model = build_image_classifier(loaded, num_classes=3)
    """
    if num_classes < 2:
        raise ValueError(f"A classifier needs at least 2 classes, got {num_classes}.")
    height, width = loaded.input_size
    inputs = keras.Input(shape=(height, width, 3), name=INPUT_NAME, dtype="float32")
    x = loaded.spec.preprocessing.layer()(inputs)
    backbone = loaded.model
    if backbone.name != BACKBONE_LAYER:
        backbone = keras.Model(backbone.input, backbone.output, name=BACKBONE_LAYER)
    features = backbone(x)
    if len(features.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    elif len(features.shape) == 3:
        x = keras.layers.GlobalAveragePooling1D(name="pool")(features)
    else:
        x = features
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name=name)
