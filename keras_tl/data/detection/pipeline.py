"""Detection arrays as a batched `tf.data` pipeline for keras_hub's
detectors (in-memory today; a lazy reader of the annotation files belongs
beside `make_detection_dataset` here)."""

from keras_tl.data.detection.augmentation import augment_detection


def make_detection_dataset(images, boxes, class_ids, batch_size=8, shuffle=False, augment=False,
                           seed=0):
    """Batched `(float32 images, {"boxes", "labels"})` as keras_hub's
    detectors train on, from `load_detection_arrays`' arrays.

    `augment=True` applies `augment_detection` with per-image seeds drawn
    from `seed` (the same every run, different every epoch).

    Example:
    >>> import tensorflow as tf
    >>> ds = make_detection_dataset(np.zeros((3, 16, 16, 3), "uint8"),
    ...                             np.full((3, 2, 4), -1, "float32"),
    ...                             np.full((3, 2), -1, "int32"), batch_size=2)
    >>> x, y = next(iter(ds))
    >>> x.shape, y["boxes"].shape, y["labels"].shape
    (TensorShape([2, 16, 16, 3]), TensorShape([2, 2, 4]), TensorShape([2, 2]))
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((images, boxes, class_ids))
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(lambda x, b, c: (tf.cast(x, "float32"), b, c))
    if augment:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(
            lambda example, s: augment_detection(*example, seed=s),
            num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size).map(lambda x, b, c: (x, {"boxes": b, "labels": c}))
    return dataset.prefetch(tf.data.AUTOTUNE)
