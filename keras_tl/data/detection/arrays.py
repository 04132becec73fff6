"""Detection records as arrays: the split by image, and the images decoded
and resized with their boxes scaled to the model's input size."""

import numpy as np

from keras_tl.data.images import read_image
from keras_tl.errors import ConfigError, DataError


def split_records(records, fraction, seed=0):
    """Seeded split by image: `(train_records, held_out_records)`.

    Holds out `round(fraction * len(records))` images (at least one when
    there are two or more), so all boxes of an image stay on one side.

    Example:
    >>> from keras_tl.data.detection import DetectionRecord
    >>> records = [DetectionRecord(f"{i}.jpg", 8, 8, [[0, 0, 4, 4]], [0]) for i in range(10)]
    >>> train, held_out = split_records(records, 0.2, seed=0)
    >>> len(train), len(held_out)
    (8, 2)
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"The validation fraction must be in (0, 1), got {fraction}.")
    order = np.random.default_rng(seed).permutation(len(records))
    count = int(round(len(records) * fraction))
    if len(records) >= 2:
        count = min(max(count, 1), len(records) - 1)
    held_out = sorted(order[:count].tolist())
    kept = sorted(order[count:].tolist())
    return [records[i] for i in kept], [records[i] for i in held_out]


def load_detection_arrays(records, image_size, max_boxes=None):
    """Decodes the images, resized to `image_size`, with their boxes scaled.

    Returns `(images, boxes, class_ids)`: uint8 `[N, H, W, 3]`, float32
    `[N, max_boxes, 4]` pixel `xmin, ymin, xmax, ymax` at `image_size`, and
    int32 `[N, max_boxes]`; padding is -1 in both (keras_hub's convention).
    `max_boxes` defaults to the most boxes of any image.

    Example:
    >>> from keras_tl.data.detection import load_detection_data
    >>> from keras_tl.datasets.detection_demo import detection_demo_path
    >>> records = load_detection_data(detection_demo_path("test")).records[:4]
    >>> images, boxes, class_ids = load_detection_arrays(records, (64, 64), max_boxes=6)
    >>> images.shape, boxes.shape, class_ids.shape
    ((4, 64, 64, 3), (4, 6, 4), (4, 6))
    """
    from PIL import Image  # deferred, as in keras_tl.data.images

    height, width = size_pair(image_size)
    most = max((r.num_objects for r in records), default=0)
    max_boxes = max(most, 1) if max_boxes is None else int(max_boxes)
    if most > max_boxes:
        raise ConfigError(f"An image has {most} boxes, more than max_boxes={max_boxes}; raise max_boxes.")
    images = np.zeros((len(records), height, width, 3), "uint8")
    boxes = np.full((len(records), max_boxes, 4), -1, "float32")
    class_ids = np.full((len(records), max_boxes), -1, "int32")
    for i, record in enumerate(records):
        try:
            original = read_image(record.image_path)
        except ValueError as error:
            raise DataError(str(error)) from None
        if original.shape[:2] != (record.height, record.width):
            raise DataError(
                f"{record.image_path} is {original.shape[1]}x{original.shape[0]} but its annotation "
                f"says {record.width}x{record.height}; fix the annotation's size."
            )
        if original.shape[:2] != (height, width):
            original = np.asarray(Image.fromarray(original).resize((width, height), Image.BILINEAR))
        images[i] = original
        n = record.num_objects
        scale = np.asarray([width / record.width, height / record.height] * 2, "float32")
        boxes[i, :n] = record.boxes * scale
        class_ids[i, :n] = record.class_ids
    return images, boxes, class_ids


def size_pair(size):
    """`(height, width)` of a size given as one int or a pair.

    Example:
    >>> size_pair(64), size_pair((48, 64))
    ((64, 64), (48, 64))
    """
    if isinstance(size, int):
        return size, size
    height, width = (int(v) for v in size)
    return height, width
