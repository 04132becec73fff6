"""Image classifier: preprocessing, backbone, pooling, dropout, softmax head."""

import os

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


def prepare_image_task(
    data,
    backbone=None,
    *,
    weights="default",
    image_size=None,
    batch_size=32,
    validation_split=0.2,
    validation_data=None,
    test_data=None,
    class_names=None,
    augment=False,
    dropout=0.2,
    seed=0,
    skip_corrupt=False,
    data_dir=None,
):
    """Loads the backbone and the data, and builds the classifier.

    See `keras_tl.finetune` for the arguments. Returns a `PreparedTask`.

    Example:
    >>> task = prepare_image_task("flowers/", "mobilenet_v2", weights=None)
    """
    from keras_tl.backbones import load_backbone
    from keras_tl.data.image_sources import load_image_data
    from keras_tl.data.pipeline import make_dataset
    from keras_tl.data.splits import stratified_split
    from keras_tl.freezing import freeze_backbone, unfreeze_backbone
    from keras_tl.tasks.base import PreparedTask

    for source_data in (data, validation_data, test_data):  # fail fast, before any download
        if isinstance(source_data, (str, os.PathLike)) and not str(source_data).startswith("tfds:"):
            if not os.path.exists(source_data):
                raise FileNotFoundError(f"Data folder not found: {os.fspath(source_data)}")
    loaded = load_backbone(backbone, weights=weights, image_size=image_size)
    source = dict(image_size=loaded.input_size, skip_corrupt=skip_corrupt, data_dir=data_dir)
    x, y, names = load_image_data(data, class_names=class_names, **source)
    if validation_data is not None:
        x_val, y_val, _ = load_image_data(validation_data, class_names=names, min_classes=1,
                                          **source)
    elif validation_split:
        train_idx, val_idx = stratified_split(y, validation_split, seed)
        x, x_val, y, y_val = x[train_idx], x[val_idx], y[train_idx], y[val_idx]
    else:
        x_val = y_val = None
    test = None
    if test_data is not None:
        x_test, y_test, _ = load_image_data(test_data, class_names=names, min_classes=1,
                                            **source)
        test = make_dataset(x_test, y_test, batch_size)

    model = build_image_classifier(loaded, len(names), dropout=dropout)

    def apply_stage(model, stage):
        if stage.unfreeze is None or stage.unfreeze == "none":
            freeze_backbone(model)
        else:
            unfreeze_backbone(model, stage.unfreeze, train_batchnorm=stage.train_batchnorm)

    return PreparedTask(
        model=model,
        class_names=names,
        train=make_dataset(x, y, batch_size, shuffle=True, seed=seed, augment=augment),
        validation=None if x_val is None else make_dataset(x_val, y_val, batch_size),
        test=test,
        apply_stage=apply_stage,
        info=dict(
            modality="image",
            backbone=loaded.spec.name,
            backbone_source=loaded.spec.source,
            weights=loaded.weights,
            input_size=list(loaded.input_size),
            preprocessing=loaded.spec.preprocessing.to_config(),
            num_train=int(len(y)),
            num_validation=0 if y_val is None else int(len(y_val)),
        ),
    )
