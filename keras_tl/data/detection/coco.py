"""COCO: a JSON file with `images`, `annotations` and `categories`.

Class ids follow the category ids in increasing order. The JSON is the
index: images it lists without annotations are negatives, files it does not
list are ignored. `iscrowd` annotations are skipped (COCO evaluation ignores
them). A folder with several JSON files (`instances_train2017.json`,
`instances_val2017.json`) needs `split=` (a part of the file name) or the
file itself.
"""

import json
import os
import re

import numpy as np

from keras_tl.data.detection.files import image_size, list_files
from keras_tl.data.detection.validation import BoxChecker, class_index, refuse_unpaired
from keras_tl.errors import DataError


def is_coco_json(path):
    """Whether the file at `path` starts like COCO JSON (a dict naming
    `images`, `annotations` or `categories`).

    Example:
    >>> from keras_tl.datasets.detection_demo import detection_demo_path
    >>> is_coco_json(os.path.join(detection_demo_path("test"), "instances.json"))
    True
    """
    try:
        with open(path, "rb") as file:
            head = file.read(1 << 16)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and (b'"images"' in head or b'"annotations"' in head
                                               or b'"categories"' in head)


def json_files(root):
    """The COCO JSON files in `root` and `root/annotations`.

    Example:
    >>> from keras_tl.datasets.detection_demo import detection_demo_path
    >>> [os.path.basename(path) for path in json_files(detection_demo_path("test"))]
    ['instances.json']
    """
    candidates = []
    for folder in (root, os.path.join(root, "annotations")):
        candidates += [os.path.join(folder, f) for f in list_files(folder, (".json",))]
    return [path for path in candidates if is_coco_json(path)]


def read_coco(path, class_names, split):
    """Reads a COCO folder or JSON file: `(records, class names, clipped
    boxes)`, with `class_names` and `split` as `load_detection_data` takes
    them.

    Example:
    >>> from keras_tl.datasets.detection_demo import detection_demo_path
    >>> records, names, clipped = read_coco(detection_demo_path("test"), None, None)
    >>> names, records[0].boxes.shape[1]
    (['astronaut', 'cat', 'cup', 'rocket'], 4)
    """
    if os.path.isdir(path):
        jsons = json_files(path)
        if split is not None:
            jsons = [j for j in jsons if split in os.path.basename(j)]
        if not jsons:
            which = f" for split {split!r}" if split is not None else ""
            raise DataError(f"{path} has no COCO JSON file{which}; check the folder, split= or format=.")
        if len(jsons) > 1:
            raise DataError(
                f"{path} holds several COCO JSON files ({', '.join(os.path.basename(j) for j in jsons)}); "
                "pass split= (part of a file name) or the file to read."
            )
        json_path, root = jsons[0], path
    else:
        json_path, root = path, os.path.dirname(path)
    try:
        with open(json_path, encoding="utf-8") as file:
            coco = json.load(file)
    except (OSError, ValueError) as error:
        raise DataError(f"Cannot read COCO JSON {json_path}: {error}; fix or replace it.") from None
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
        raise DataError(f"{json_path} is not COCO JSON (no 'images' list); pass a COCO annotation file.")
    categories = sorted(coco.get("categories") or [], key=lambda c: c["id"])
    if not categories:
        raise DataError(f"{json_path} has no 'categories'; COCO JSON names its classes there.")
    if any(not isinstance(image, dict) or "file_name" not in image or "id" not in image
           for image in coco["images"]):
        raise DataError(f"An entry of 'images' in {json_path} has no 'id' or 'file_name'; fix the JSON.")
    file_names = [image["file_name"] for image in coco["images"]]
    image_dir = _image_folder(json_path, root, file_names)
    missing = [f for f in file_names if not os.path.isfile(os.path.join(image_dir, f))]
    refuse_unpaired(f"images listed in {json_path} are missing from {image_dir}", missing,
                     "add them or remove them from the JSON.")

    category_names = [str(c["name"]) for c in categories]
    names = class_names or category_names
    index = class_index(names)
    unknown = [n for n in category_names if n not in index]
    if unknown:
        raise DataError(
            f"Categories {unknown} of {json_path} are not among the classes {names}; "
            "train with them or remove them."
        )
    class_of = {c["id"]: index[str(c["name"])] for c in categories}
    images = {image["id"]: image for image in coco["images"]}
    clipped, by_image = [], {image_id: None for image_id in images}
    for annotation in coco.get("annotations", []):
        image_id = annotation.get("image_id")
        where = f"{json_path} (annotation id {annotation.get('id')})"
        if image_id not in images:
            raise DataError(
                f"{where} refers to image id {image_id!r}, which 'images' does not list; fix the JSON.")
        if annotation.get("category_id") not in class_of:
            raise DataError(
                f"{where} has category_id {annotation.get('category_id')!r}, which 'categories' does "
                "not define; fix the JSON."
            )
        if annotation.get("iscrowd"):
            continue
        if len(annotation.get("bbox") or ()) != 4:
            raise DataError(f"{where} has no 'bbox' [x, y, width, height]; fix the JSON.")
        if by_image[image_id] is None:
            image = images[image_id]
            width, height = image.get("width"), image.get("height")
            if not width or not height:
                width, height = image_size(os.path.join(image_dir, image["file_name"]))
            by_image[image_id] = BoxChecker(width, height, where, clipped)
        x, y, w, h = (float(v) for v in annotation["bbox"])
        by_image[image_id].where = where
        by_image[image_id].add((x, y, x + w, y + h), class_of[annotation["category_id"]])
    records = []
    for image_id, image in images.items():
        image_path = os.path.join(image_dir, image["file_name"])
        boxes = by_image[image_id]
        if boxes is None:  # a negative image
            width, height = image.get("width"), image.get("height")
            if not width or not height:
                width, height = image_size(image_path)
            boxes = BoxChecker(width, height, json_path, clipped)
        records.append(boxes.record(image_path))
    return records, names, clipped


def _image_folder(json_path, root, file_names):
    """The folder in which most of the JSON's file names exist."""
    json_dir = os.path.dirname(json_path)
    parent = os.path.dirname(json_dir)
    split = re.sub(r"^instances_?", "", os.path.splitext(os.path.basename(json_path))[0])
    candidates = [json_dir, os.path.join(json_dir, "images"), root, os.path.join(root, "images"),
                  parent, os.path.join(parent, "images")]
    if split:
        candidates += [os.path.join(d, split) for d in (root, parent, os.path.join(root, "images"),
                                                        os.path.join(parent, "images"))]
    candidates = list(dict.fromkeys(os.path.normpath(c) for c in candidates))
    sample = file_names[:20]
    scores = [sum(os.path.isfile(os.path.join(c, f)) for f in sample) for c in candidates]
    if sample and max(scores) == 0:
        raise DataError(
            f"None of the images of {json_path} (e.g. {sample[0]}) is in "
            f"{', '.join(candidates[:4])}...; put them beside the JSON or in images/."
        )
    return candidates[int(np.argmax(scores))]
