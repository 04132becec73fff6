"""Checks shared by the detection readers: boxes against their image,
files without their pair, and the loaded set as a whole.

A box reaching past the image by up to a pixel is clipped silently (VOC
tools disagree on the off-by-one); further out it is clipped with a warning,
and refused if nothing is left.
"""

import logging

import numpy as np

from keras_tl.data.detection.records import DetectionRecord
from keras_tl.errors import DataError, listing

logger = logging.getLogger("keras_tl")


class BoxChecker:
    """Collects one image's boxes and checks them against its size.

    `where` names the annotation in messages; boxes clipped by more than a
    pixel are described in the shared list `clipped`.

    Example:
    >>> clipped = []
    >>> boxes = BoxChecker(64, 48, "a.xml", clipped)
    >>> boxes.add((-1, 4, 70, 40), 0, written=(0, 5, 70, 40))  # VOC's 1-based numbers
    >>> boxes.record("a.jpg").boxes.tolist(), clipped
    ([[0.0, 4.0, 64.0, 40.0]], ['(0, 5, 70, 40) in a.xml'])
    """

    def __init__(self, width, height, where, clipped):
        self.width, self.height, self.where, self.clipped = width, height, where, clipped
        self.boxes, self.class_ids = [], []

    def add(self, box, class_id, written=None):
        """Adds `box` (pixel `xmin, ymin, xmax, ymax`) clipped to the image;
        messages quote `written`, the numbers as the annotation writes them
        (default: `box`)."""
        xmin, ymin, xmax, ymax = (float(v) for v in box)
        quoted = "(" + ", ".join(f"{float(v):g}" for v in (box if written is None else written)) + ")"
        if not all(np.isfinite((xmin, ymin, xmax, ymax))):
            raise DataError(f"Box {quoted} in {self.where} is not finite; fix the annotation.")
        if xmin >= xmax or ymin >= ymax:
            raise DataError(
                f"Box {quoted} in {self.where} has xmin >= xmax or ymin >= ymax; fix or remove "
                "the annotation."
            )
        inside = (max(xmin, 0.0), max(ymin, 0.0), min(xmax, self.width), min(ymax, self.height))
        if inside[0] >= inside[2] or inside[1] >= inside[3]:
            raise DataError(
                f"Box {quoted} in {self.where} lies outside the {self.width}x{self.height} image; "
                "fix or remove the annotation."
            )
        if max(abs(a - b) for a, b in zip(inside, (xmin, ymin, xmax, ymax))) > 1.0:
            self.clipped.append(f"{quoted} in {self.where}")
        self.boxes.append(inside)
        self.class_ids.append(class_id)

    def record(self, image_path):
        """The image's `DetectionRecord` with the boxes added so far."""
        return DetectionRecord(image_path, self.width, self.height,
                               np.asarray(self.boxes, "float32").reshape(-1, 4), self.class_ids)


def refuse_unpaired(what, paths, advice):
    """Raises a `DataError` naming `paths` (files without their image or
    annotation), if there are any.

    Example:
    >>> refuse_unpaired("annotations without their image", [], "add them.")
    >>> refuse_unpaired("annotations without their image", ["a.xml", "b.xml"], "add them.")
    Traceback (most recent call last):
    ...
    keras_tl.errors.DataError: 2 annotations without their image: a.xml, b.xml; add them.
    """
    if paths:
        raise DataError(f"{len(paths)} {what}: {listing(paths)}; {advice}")


def class_index(class_names):
    """`{class name: class id}`.

    Example:
    >>> class_index(["cat", "dog"])
    {'cat': 0, 'dog': 1}
    """
    return {name: i for i, name in enumerate(class_names)}


def check_records(path, format, records, clipped):
    """Refuses a dataset without images or without any box, and warns once
    about the boxes `clipped` to their image.

    Example:
    >>> check_records("data/", "voc", [DetectionRecord("a.jpg", 8, 8, [[0, 0, 4, 4]], [0])], [])
    >>> check_records("data/", "voc", [DetectionRecord("a.jpg", 8, 8, np.zeros((0, 4)), [])], [])
    Traceback (most recent call last):
    ...
    keras_tl.errors.DataError: data/ annotates no object in its 1 images; a detector needs boxes to learn from.
    """
    if not records:
        raise DataError(f"{path} holds no annotated images; add images with their {format} annotations.")
    if not any(record.num_objects for record in records):
        raise DataError(
            f"{path} annotates no object in its {len(records)} images; a detector needs "
            "boxes to learn from."
        )
    if clipped:
        logger.warning(
            "%d boxes of %s reach past their image and were clipped, e.g. %s.",
            len(clipped), path, clipped[0],
        )
