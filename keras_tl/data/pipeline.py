"""Examples to batched `tf.data` pipelines, with optional augmentation."""

import numpy as np


def default_augmentation(seed=None):
    """Flip, small rotation and zoom: Keras preprocessing layers that run in
    `tf.data` on every backend.

    Example:
    >>> layers = default_augmentation(seed=0)
    """
    import keras

    return [
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(0.05, seed=seed),
        keras.layers.RandomZoom(0.1, seed=seed),
    ]


def make_dataset(images, labels, batch_size=32, shuffle=False, seed=0, augment=None):
    """Batched `(float32 images, int32 labels)` dataset from arrays.

    Args:
        augment: `None`/`False`, `True` (default augmentation) or a list of
            Keras preprocessing layers, applied to training batches only.

    Example:
    >>> x, y = np.zeros((10, 32, 32, 3), "uint8"), [0, 1] * 5
    >>> ds = make_dataset(x, y, batch_size=4, shuffle=True, augment=True)
    >>> [(batch.shape[0], batch.dtype.name, labels.dtype.name) for batch, labels in ds]
    [(4, 'float32', 'int32'), (4, 'float32', 'int32'), (2, 'float32', 'int32')]
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((images, np.asarray(labels, "int32")))
    if shuffle:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return batch_examples(dataset, batch_size, seed, augment)


def batch_examples(dataset, batch_size, seed=0, augment=None):
    """Batches a dataset of `(image, label)` examples as `make_dataset` does:
    float32 images, augmentation (as in `make_dataset`) on the batches,
    prefetched.

    Example:
    >>> import tensorflow as tf
    >>> pairs = tf.data.Dataset.from_tensor_slices((np.zeros((5, 8, 8, 3), "uint8"), [0] * 5))
    >>> [x.dtype.name for x, _ in batch_examples(pairs, 4)]
    ['float32', 'float32']
    """
    import tensorflow as tf

    dataset = dataset.batch(batch_size)
    dataset = dataset.map(lambda x, y: (tf.cast(x, "float32"), y))
    layers = _augmentation_layers(augment, seed)
    if layers:

        def apply(x, y):
            for layer in layers:
                x = layer(x, training=True)
            return x, y

        dataset = dataset.map(apply, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _augmentation_layers(augment, seed):
    if augment is None or augment is False:
        return []
    if augment is True:
        return default_augmentation(seed)
    layers = list(augment) if isinstance(augment, (list, tuple)) else [augment]
    if not all(callable(layer) and not isinstance(layer, str) for layer in layers):
        from keras_tl.errors import ConfigError

        raise ConfigError(
            f"augment must be False, True, a Keras preprocessing layer or a list of them; "
            f"got {augment!r}.")
    return layers
