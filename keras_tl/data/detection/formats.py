"""Recognising a detection layout and reading it: `detect_format`,
`is_detection_data` and `load_detection_data`, which dispatch to the VOC,
COCO and YOLO readers (`voc.py`, `coco.py`, `yolo.py`)."""

import os

from keras_tl.data.detection import coco, voc, yolo
from keras_tl.data.detection.records import DetectionData
from keras_tl.data.detection.validation import check_records
from keras_tl.errors import ConfigError, DataError, DataNotFoundError

# name: (whether a folder holds that layout, its reader)
_LAYOUTS = {
    "voc": (lambda root: voc.annotation_folder(root) is not None, voc.read_voc),
    "coco": (lambda root: bool(coco.json_files(root)), coco.read_coco),
    "yolo": (lambda root: yolo.layout_folders(root) is not None, yolo.read_yolo),
}
FORMATS = tuple(_LAYOUTS)


def detect_format(path):
    """Names the detection layout of `path`: `"voc"`, `"coco"` or `"yolo"`.

    `path` is a dataset folder, or a COCO JSON file. Raises a `DataError`
    when the folder is no detection layout, or looks like more than one.

    Example:
    >>> from keras_tl.datasets.detection_demo import detection_demo_path
    >>> detect_format(detection_demo_path("test"))
    'coco'
    """
    path = _existing(path)
    if os.path.isfile(path):
        if path.lower().endswith(".json") and coco.is_coco_json(path):
            return "coco"
        raise DataError(
            f"{path} is not a COCO JSON file (a dict with 'images' and 'annotations'); "
            "pass a COCO JSON file or a VOC/COCO/YOLO dataset folder."
        )
    found = [name for name, (holds, _) in _LAYOUTS.items() if holds(path)]
    if len(found) > 1:
        raise DataError(
            f"{path} looks like several detection layouts ({', '.join(found)}); "
            "pass format= one of them."
        )
    if not found:
        raise DataError(
            f"{path} holds no detection annotations: expected Annotations/ + JPEGImages/ "
            "(VOC XML), a COCO JSON file, or images/ + labels/ (YOLO .txt)."
        )
    return found[0]


def is_detection_data(path):
    """Whether `path` is a detection dataset in a layout keras_tl reads.

    A classification folder (one image sub-folder per class) is not.

    Example:
    >>> is_detection_data("no/such/folder")
    False
    """
    try:
        detect_format(path)
    except DataError:
        return False
    return True


def _existing(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataNotFoundError(f"Detection data not found: {path}")
    return path


def load_detection_data(path, format=None, class_names=None, split=None):
    """Reads a VOC, COCO or YOLO detection dataset.

    Args:
        path: the dataset folder (or a COCO JSON file).
        format: `"voc"`, `"coco"` or `"yolo"` to force a layout; by default
            it is recognised (`detect_format`).
        class_names: the classes, in order, when they must match another
            split's (validation or test data); a class not among them is a
            `DataError`. By default: VOC names sorted, COCO categories by id,
            YOLO names from `classes.txt`/`data.yaml`.
        split: one split of a dataset that holds several: VOC
            `ImageSets/Main/<split>.txt`, the COCO JSON whose name holds
            it, YOLO `images/<split>` with `labels/<split>`.

    Returns:
        `DetectionData(records, class_names, format)`.

    Example:
    >>> from keras_tl.datasets.detection_demo import detection_demo_path
    >>> data = load_detection_data(detection_demo_path("test"))
    >>> data.format, data.class_names
    ('coco', ['astronaut', 'cat', 'cup', 'rocket'])
    >>> data.records[0].boxes.shape[1], data.records[0].class_ids.dtype
    (4, dtype('int32'))
    """
    path = _existing(path)
    if format is None:
        format = detect_format(path)
    if format not in FORMATS:
        raise ConfigError(f"Unknown detection format {format!r}; use one of {', '.join(FORMATS)}.")
    if class_names is not None:
        class_names = [str(name) for name in class_names]
    _, read = _LAYOUTS[format]
    records, names, clipped = read(path, class_names, split)
    check_records(path, format, records, clipped)
    return DetectionData(records, names, format)
