"""Box-aware augmentation: TensorFlow ops, for `tf.data` on any Keras backend.

Each function takes one image `[H, W, 3]` (0-255), its boxes `[n, 4]`
(pixel xmin, ymin, xmax, ymax) and class ids `[n]`, where a class id < 0
marks padding, and returns them transformed; boxes cut out are turned into
padding, so `n` never changes. `seed` is a stateless seed pair (a `[2]`
integer tensor) or None for stateful randomness. TensorFlow is imported in
each function: reading annotations must not pay its start-up.
"""

from keras_tl.data.detection.arrays import size_pair
from keras_tl.errors import ConfigError


def _split_seed(seed, count):
    import tensorflow as tf

    if seed is None:
        seed = tf.random.uniform([2], maxval=2**31 - 1, dtype="int64")
    return tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, "int64"), count))


def _uniform(seed, low=0.0, high=1.0, shape=()):
    import tensorflow as tf

    return tf.random.stateless_uniform(shape, seed=seed, minval=low, maxval=high)


def _keep_boxes(boxes, class_ids, keep):
    """Moves the kept boxes first and pads the rest with -1."""
    import tensorflow as tf

    keep = tf.logical_and(keep, class_ids >= 0)
    n = tf.shape(class_ids)[0]
    kept_boxes = tf.boolean_mask(boxes, keep)
    kept_ids = tf.boolean_mask(class_ids, keep)
    pad = n - tf.shape(kept_ids)[0]
    boxes = tf.concat([kept_boxes, -tf.ones([pad, 4], boxes.dtype)], axis=0)
    class_ids = tf.concat([kept_ids, -tf.ones([pad], class_ids.dtype)], axis=0)
    return boxes, class_ids


def flip_boxes_horizontally(boxes, class_ids, width):
    """The boxes of an image mirrored left-right (padding stays -1).

    Example:
    >>> import tensorflow as tf
    >>> b, c = flip_boxes_horizontally(tf.constant([[2., 1., 5., 3.]]), tf.constant([0]), 10)
    >>> b.numpy().tolist()
    [[5.0, 1.0, 8.0, 3.0]]
    """
    import tensorflow as tf

    width = tf.cast(width, boxes.dtype)
    xmin, ymin, xmax, ymax = tf.unstack(boxes, axis=-1)
    flipped = tf.stack([width - xmax, ymin, width - xmin, ymax], axis=-1)
    return tf.where((class_ids >= 0)[:, None], flipped, boxes), class_ids


def random_flip(image, boxes, class_ids, probability=0.5, seed=None):
    """Mirrors the image and its boxes left-right with `probability`.

    Example:
    >>> import tensorflow as tf
    >>> image = tf.zeros([8, 10, 3])
    >>> _, b, _ = random_flip(image, tf.constant([[2., 1., 5., 3.]]), tf.constant([0]),
    ...                       probability=1.0, seed=[1, 2])
    >>> b.numpy().tolist()
    [[5.0, 1.0, 8.0, 3.0]]
    """
    import tensorflow as tf

    (seed,) = _split_seed(seed, 1)
    flip = _uniform(seed) < probability
    width = tf.shape(image)[1]
    flipped_boxes, _ = flip_boxes_horizontally(boxes, class_ids, width)
    image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
    boxes = tf.cond(flip, lambda: flipped_boxes, lambda: boxes)
    return image, boxes, class_ids


def random_scale_crop(image, boxes, class_ids, output_size, scale=(0.7, 1.3),
                      min_visible=0.4, seed=None):
    """Zooms in or out at random and crops (or pads) to `output_size`.

    The image is resized to `scale_factor * output_size`, then a random
    `output_size` window is cut from it (zoom in) or it is placed at a random
    spot of a grey canvas (zoom out). Boxes move with the pixels, are clipped
    to the window, and become padding when less than `min_visible` of their
    area remains.

    Example:
    >>> import tensorflow as tf
    >>> image = tf.zeros([32, 32, 3])
    >>> out, b, c = random_scale_crop(image, tf.constant([[8., 8., 24., 24.]]),
    ...                               tf.constant([1]), (16, 16), scale=(1.0, 1.0), seed=[0, 0])
    >>> out.shape, b.numpy().tolist(), c.numpy().tolist()
    (TensorShape([16, 16, 3]), [[4.0, 4.0, 12.0, 12.0]], [1])
    """
    import tensorflow as tf

    out_h, out_w = size_pair(output_size)
    scale_seed, x_seed, y_seed = _split_seed(seed, 3)
    factor = _uniform(scale_seed, scale[0], scale[1])
    new_h = tf.maximum(tf.cast(tf.round(factor * out_h), "int32"), 1)
    new_w = tf.maximum(tf.cast(tf.round(factor * out_w), "int32"), 1)
    in_h, in_w = tf.shape(image)[0], tf.shape(image)[1]
    resized = tf.image.resize(tf.cast(image, "float32"), [new_h, new_w])
    # Offset of the window in the resized image (negative: padding).
    x0 = _random_offset(x_seed, new_w - out_w)
    y0 = _random_offset(y_seed, new_h - out_h)
    # Zoom out: grey canvas of output_size around the image; zoom in: no padding.
    canvas = tf.image.pad_to_bounding_box(
        resized - 127.5, tf.maximum(-y0, 0), tf.maximum(-x0, 0),
        tf.maximum(new_h, out_h), tf.maximum(new_w, out_w)) + 127.5
    top, left = tf.maximum(y0, 0), tf.maximum(x0, 0)
    window = canvas[top:top + out_h, left:left + out_w]
    window = tf.ensure_shape(window, [out_h, out_w, None])

    sx = tf.cast(new_w, "float32") / tf.cast(in_w, "float32")
    sy = tf.cast(new_h, "float32") / tf.cast(in_h, "float32")
    moved = tf.cast(boxes, "float32") * tf.stack([sx, sy, sx, sy]) - tf.cast(
        tf.stack([x0, y0, x0, y0]), "float32")
    clipped = tf.clip_by_value(moved, 0.0, tf.constant([out_w, out_h, out_w, out_h], "float32"))
    area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = (visible >= min_visible * area) & (clipped[:, 2] - clipped[:, 0] >= 1) & (
        clipped[:, 3] - clipped[:, 1] >= 1)
    boxes, class_ids = _keep_boxes(clipped, class_ids, keep)
    return tf.cast(window, image.dtype), boxes, class_ids


def _random_offset(seed, room):
    """Uniform in [0, room] if room >= 0, else in [room, 0]."""
    import tensorflow as tf

    low, high = tf.minimum(room, 0), tf.maximum(room, 0)
    return tf.random.stateless_uniform([], seed=seed, minval=low, maxval=high + 1, dtype="int32")


def color_jitter(image, brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, seed=None):
    """Random brightness, contrast, saturation and hue on 0-255 pixels; the
    boxes do not move, so it takes and returns the image only.

    Example:
    >>> import tensorflow as tf
    >>> out = color_jitter(tf.fill([4, 4, 3], 100.0), seed=[0, 1])
    >>> out.shape, bool(tf.reduce_all((out >= 0) & (out <= 255)))
    (TensorShape([4, 4, 3]), True)
    """
    import tensorflow as tf

    seeds = _split_seed(seed, 4)
    x = tf.cast(image, "float32") / 255.0
    x = tf.image.stateless_random_brightness(x, brightness, seed=seeds[0])
    x = tf.image.stateless_random_contrast(x, 1 - contrast, 1 + contrast, seed=seeds[1])
    x = tf.image.stateless_random_saturation(x, 1 - saturation, 1 + saturation, seed=seeds[2])
    x = tf.image.stateless_random_hue(tf.clip_by_value(x, 0.0, 1.0), hue, seed=seeds[3])
    x = tf.clip_by_value(x, 0.0, 1.0) * 255.0
    return tf.cast(x, image.dtype) if image.dtype.is_floating else tf.cast(tf.round(x), image.dtype)


def augment_detection(image, boxes, class_ids, seed=None, flip=True, scale=(0.7, 1.3),
                      color=True, min_visible=0.4):
    """Flip, zoom/crop back to the image's size and colour jitter together.

    Example:
    >>> import tensorflow as tf
    >>> image = tf.zeros([16, 16, 3])
    >>> out, b, c = augment_detection(image, tf.constant([[4., 4., 12., 12.]]),
    ...                               tf.constant([0]), seed=[3, 4])
    >>> out.shape, b.shape, c.shape
    (TensorShape([16, 16, 3]), TensorShape([1, 4]), TensorShape([1]))
    """
    import tensorflow as tf

    flip_seed, crop_seed, color_seed = _split_seed(seed, 3)
    size = (image.shape[0], image.shape[1])
    if None in size:
        raise ConfigError("augment_detection needs images of a known size; resize them first.")
    if flip:
        image, boxes, class_ids = random_flip(image, boxes, class_ids, seed=flip_seed)
    if scale:
        image, boxes, class_ids = random_scale_crop(image, boxes, class_ids, size, scale,
                                                    min_visible, seed=crop_seed)
    if color:
        image = color_jitter(image, seed=color_seed)
    return image, boxes, class_ids
