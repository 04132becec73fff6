"""Cached warm-up: a stage that trains only the head on a frozen backbone,
with no augmentation, sees the same backbone features every epoch. They are
computed once (training and validation data), the head is trained on them,
and since the head model shares its layers with the full model, the trained
head is back on the backbone when the stage ends.

The same holds for the frozen bottom of a partly unfrozen backbone: its
output is computed once and only the unfrozen top and the head train.

A task makes this possible by splitting its model (`Task.split_head`);
`split_frozen_part` does it for classifiers: backbone, weightless layers
(pooling, with its padding mask for text), then trainable or random ones
(dropout, dense).
"""

import logging

import numpy as np

from keras_tl.errors import TrainingError

logger = logging.getLogger("keras_tl")

# Above this, "auto" trains on the backbone as usual (features held in memory).
MAX_CACHE_BYTES = 4 << 30


def split_frozen_part(model):
    """`(feature_model, train_model)` sharing `model`'s layers: the feature
    model computes what cannot change while training (the frozen part), the
    train model the rest from its output. `None` when `model` cannot be
    split so; then it trains as usual.

    - Backbone frozen: the features are the backbone's output after the
      weightless layers that follow it (pooling, with its mask for text),
      up to the first layer that has weights or is random (dropout).
    - Backbone frozen up to some layer (`unfreeze=N` or a block name): the
      features are the input of the first trainable backbone layer, when
      that is one tensor the rest of the backbone depends on alone.
    - Backbone trainable from its first layer, or a head that needs other
      inputs: `None`.

    Call it after the stage's `trainable` flags are set.

    Example:
    >>> import keras, numpy as np
    >>> x = images = keras.Input((16, 16, 3))
    >>> for block, filters in ((1, 4), (2, 8)):  # two blocks of convolution and BatchNorm
    ...     x = keras.layers.Conv2D(filters, 3, padding="same", name=f"block{block}_conv")(x)
    ...     x = keras.layers.BatchNormalization(name=f"block{block}_bn")(x)
    >>> backbone = keras.Model(images, x, name="backbone")
    >>> inputs = keras.Input((16, 16, 3))
    >>> x = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(inputs))
    >>> x = keras.layers.Dropout(0.2, name="dropout")(x)
    >>> model = keras.Model(inputs, keras.layers.Dense(3, name="probabilities")(x))
    >>> backbone.trainable = False
    >>> features, head = split_frozen_part(model)
    >>> features.output.shape, [layer.name for layer in head.layers][1:]
    ((None, 8), ['dropout', 'probabilities'])
    >>> backbone.trainable = True
    >>> backbone.get_layer("block1_conv").trainable = backbone.get_layer("block1_bn").trainable = False
    >>> features, rest = split_frozen_part(model)
    >>> features.output.shape
    (None, 16, 16, 4)
    >>> x = np.ones((2, 16, 16, 3), "float32")
    >>> bool(np.allclose(rest(features(x)), model(x), atol=1e-6))
    True
    """
    from keras_tl.freezing import BACKBONE_LAYER

    names = [layer.name for layer in model.layers]
    if BACKBONE_LAYER not in names:
        return None
    backbone = model.get_layer(BACKBONE_LAYER)
    if not backbone.trainable_weights:
        return _split_after_backbone(model, names.index(BACKBONE_LAYER))
    return _split_inside_backbone(model, backbone, names.index(BACKBONE_LAYER))


def _split_after_backbone(model, index):
    import keras

    from keras_tl.freezing import BACKBONE_LAYER

    layers = list(model.layers)
    boundary = None
    for layer in layers[index + 1:]:
        if layer.weights or _is_random(layer):
            boundary = layer
            break
    if boundary is None or not isinstance(boundary.input, keras.KerasTensor):
        return None
    try:
        feature_model = keras.Model(model.input, boundary.input, name="cached_features")
        head_model = keras.Model(boundary.input, model.output, name="cached_head")
    except (ValueError, KeyError, TypeError):  # the head needs more than the features
        return None
    head_ids = {id(layer) for layer in head_model.layers}
    for layer in layers:  # every weight outside the backbone must train in the head model
        if layer.name != BACKBONE_LAYER and layer.weights and id(layer) not in head_ids:
            return None
    return feature_model, head_model


def _split_inside_backbone(model, backbone, index):
    import keras

    weighted = [layer for layer in backbone.layers if layer.weights]
    first = next((layer for layer in weighted if layer.trainable_weights), None)
    if first is None or first is weighted[0] or not isinstance(backbone, keras.Model):
        return None
    cut = first.input
    layers = list(model.layers)
    if not isinstance(cut, keras.KerasTensor) or index + 1 >= len(layers):
        return None
    before, after = layers[index - 1], layers[index + 1]
    try:
        bottom = keras.Model(backbone.input, cut, name="frozen_bottom")
        top = keras.Model(cut, backbone.output, name="trainable_top")
        rest = keras.Model(after.input, model.output, name="head")
        start = model.input if isinstance(before, keras.layers.InputLayer) else before.output
        feature_model = keras.Model(model.input, bottom(start), name="cached_features")
        inputs = keras.Input(cut.shape[1:], dtype=cut.dtype, name="cached_features")
        train_model = keras.Model(inputs, rest(top(inputs)), name="cached_train")
    except (ValueError, KeyError, TypeError, AttributeError):  # not one tensor, branches...
        return None
    if any(layer.trainable_weights for layer in bottom.layers):
        return None
    top_ids = {id(layer) for layer in top.layers}
    if any(layer.trainable_weights and id(layer) not in top_ids for layer in weighted):
        return None
    return feature_model, train_model


def _is_random(layer):
    import keras

    random_layers = (keras.layers.Dropout, keras.layers.GaussianNoise,
                     keras.layers.GaussianDropout, keras.layers.AlphaDropout,
                     keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D,
                     keras.layers.SpatialDropout3D)
    return isinstance(layer, random_layers)


def extract_features(feature_model, dataset, predict=None):
    """`(features, targets)` arrays of a batched `(inputs, targets)` dataset,
    read once (a shuffled dataset's order is kept), in inference mode.
    `predict` (from `feature_function`) is reused across datasets.

    Example:
    >>> import keras, numpy as np, tensorflow as tf
    >>> inputs = keras.Input((3,))
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    >>> data = tf.data.Dataset.from_tensor_slices((np.ones((5, 3), "float32"), np.arange(5))).batch(2)
    >>> features, targets = extract_features(model, data)
    >>> features.shape, targets.tolist()
    ((5, 2), [0, 1, 2, 3, 4])
    """
    predict = predict or feature_function(feature_model, dataset)
    features, targets = [], []
    for inputs, batch_targets in backend_batches(dataset):
        features.append(np.asarray(predict(inputs), dtype="float32"))
        targets.append(np.asarray(batch_targets))
    return np.concatenate(features), np.concatenate(targets)


def backend_batches(dataset):
    """Iterates a `tf.data` dataset as the backend's `*_on_batch` methods take
    it: TensorFlow tensors under TensorFlow, NumPy arrays under JAX and PyTorch.

    Example:
    >>> import tensorflow as tf
    >>> [int(x) for x in backend_batches(tf.data.Dataset.range(3))]
    [0, 1, 2]
    """
    import keras

    if keras.backend.backend() == "tensorflow":
        return iter(dataset)
    return dataset.as_numpy_iterator()


def feature_function(feature_model, dataset):
    """A compiled `inputs -> NumPy features` function of `feature_model` for
    the batches of `dataset` (under TensorFlow traced once, for any batch
    size and length, from the dataset's element spec).

    Example:
    >>> import keras, numpy as np, tensorflow as tf
    >>> inputs = keras.Input((3,))
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    >>> data = tf.data.Dataset.from_tensor_slices((np.ones((5, 3), "float32"), np.arange(5))).batch(2)
    >>> feature_function(model, data)(np.ones((4, 3), "float32")).shape
    (4, 2)
    """
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # a plain tf.function: predict_on_batch would replicate the batch
        # under a tf.distribute strategy instead of splitting it
        function = tf.function(lambda x: feature_model(x, training=False),
                               input_signature=[dataset.element_spec[0]])
        return lambda x: function(x).numpy()
    return lambda x: keras.ops.convert_to_numpy(feature_model.predict_on_batch(x))


def cached_datasets(feature_model, train, validation, batch_size, seed=0):
    """Training and validation datasets of backbone features: the training
    one reshuffled every epoch, both batched by `batch_size`. Returns
    `(train, validation, feature_bytes)`.

    Example:
    >>> import keras, numpy as np, tensorflow as tf
    >>> inputs = keras.Input((3,))
    >>> model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
    >>> data = tf.data.Dataset.from_tensor_slices((np.ones((6, 3), "float32"), np.arange(6))).batch(4)
    >>> train, validation, size = cached_datasets(model, data, None, batch_size=4)
    >>> [tuple(x.shape) for x, _ in train], validation, size
    ([(4, 4), (2, 4)], None, 96)
    """
    import tensorflow as tf

    predict = feature_function(feature_model, train)  # one trace for both datasets
    x, y = extract_features(feature_model, train, predict)
    if len(x) != len(y):
        raise TrainingError(
            f"The frozen part of the model gives {len(x)} feature rows for {len(y)} examples "
            "(it reshapes the batch), so its output cannot be cached; pass "
            "cache_features=False.")
    size = x.nbytes
    train_ds = (tf.data.Dataset.from_tensor_slices((x, y))
                .shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
                .batch(batch_size).prefetch(tf.data.AUTOTUNE))
    validation_ds = None
    if validation is not None:
        if validation.element_spec[0] != train.element_spec[0]:
            predict = feature_function(feature_model, validation)
        x_val, y_val = extract_features(feature_model, validation, predict)
        size += x_val.nbytes
        validation_ds = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(batch_size)
    return train_ds, validation_ds, size


def cache_fits_in_memory(feature_model, samples):
    """Whether `samples` float32 feature vectors of `feature_model` fit in
    the cache budget (4 GiB).

    Example:
    >>> import keras
    >>> inputs = keras.Input((3,))
    >>> cache_fits_in_memory(keras.Model(inputs, keras.layers.Dense(1280)(inputs)), 10_000)
    True
    """
    size = 4
    for dim in feature_model.output.shape[1:]:
        size *= int(dim) if dim is not None else 1
    return samples * size <= MAX_CACHE_BYTES
