"""The record format every detection layout is read into."""

import dataclasses
from typing import List, NamedTuple

import numpy as np


@dataclasses.dataclass(eq=False)
class DetectionRecord:
    """One annotated image.

    Attributes:
        image_path: the image file.
        width, height: the image size in pixels.
        boxes: float32 `[n, 4]`, `xmin, ymin, xmax, ymax` in pixels.
        class_ids: int32 `[n]`, indices into the class names.

    Example:
    >>> record = DetectionRecord("a.jpg", 64, 48, [[4, 8, 20, 40]], [1])
    >>> record.boxes.dtype, record.class_ids.tolist(), record.num_objects
    (dtype('float32'), [1], 1)
    """

    image_path: str
    width: int
    height: int
    boxes: np.ndarray
    class_ids: np.ndarray

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype="float32").reshape(-1, 4)
        self.class_ids = np.asarray(self.class_ids, dtype="int32").reshape(-1)
        self.width, self.height = int(self.width), int(self.height)

    @property
    def num_objects(self):
        """How many boxes the image holds (0 for a negative image).

        Example:
        >>> DetectionRecord("a.jpg", 8, 8, np.zeros((0, 4)), []).num_objects
        0
        """
        return len(self.class_ids)


class DetectionData(NamedTuple):
    """What `load_detection_data` returns: the records, the class names and
    the layout they were read from.

    Example:
    >>> data = DetectionData([], ["cat"], "coco")
    >>> records, class_names, layout = data
    >>> class_names
    ['cat']
    """

    records: List[DetectionRecord]
    class_names: List[str]
    format: str
