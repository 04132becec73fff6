"""Object-detection data: Pascal VOC, COCO and YOLO layouts read into one
record format, box-aware augmentation for `tf.data`, and a split by image.

Every layout becomes a list of `DetectionRecord`s (image path, width, height,
float32 `[n, 4]` boxes as `xmin, ymin, xmax, ymax` in pixels of the image as
stored, int32 `[n]` class ids) plus the class names. Conventions:

- Pascal VOC: `Annotations/` (or `annotations/`) XML files beside
  `JPEGImages/` (or `images/`), or XML files next to the images. VOC pixel
  indices are 1-based and inclusive, so `xmin`/`ymin` lose 1 (as in
  Detectron2). Every image needs its XML: an image without one is refused,
  since it may be unlabelled rather than empty (write an XML without
  `<object>` for a negative image). `split="train"` reads the images
  listed in `ImageSets/Main/train.txt`.
- COCO: a JSON file with `images`, `annotations` and `categories`; class ids
  follow the category ids in increasing order. The JSON is the index: images
  it lists without annotations are negatives, files it does not list are
  ignored. `iscrowd` annotations are skipped (COCO evaluation ignores them).
  A folder with several JSON files (`instances_train2017.json`,
  `instances_val2017.json`) needs `split=` (a part of the file name) or the
  file itself.
- YOLO: `images/` and `labels/` mirroring each other (`images/a/b.jpg` <->
  `labels/a/b.txt`), normalised `class cx cy w h` lines (a polygon line
  gives its bounding box), names from `classes.txt` or `data.yaml`. As in
  Ultralytics, an image without a label file is a negative. Split folders
  (`images/train`, `labels/train`, ...) need `split=`.

A box reaching past the image by up to a pixel is clipped silently (VOC
tools disagree on the off-by-one); further out it is clipped with a warning,
and refused if nothing is left.
"""

import dataclasses
import json
import logging
import os
import re
import xml.etree.ElementTree as ElementTree
from typing import List, NamedTuple

import numpy as np

from keras_tl.data.images import IMAGE_EXTENSIONS
from keras_tl.errors import ConfigError, DataError, DataNotFoundError

FORMATS = ("voc", "coco", "yolo")
_VOC_ANNOTATION_DIRS = ("Annotations", "annotations")
_VOC_IMAGE_DIRS = ("JPEGImages", "images")
_YOLO_NAME_FILES = ("data.yaml", "data.yml", "dataset.yaml", "classes.txt", "labels/classes.txt")
_SPLIT_NAMES = ("train", "val", "valid", "validation", "test")
_LISTED = 5  # names quoted in an error message before "... and N more"
logger = logging.getLogger("keras_tl")


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


# ----------------------------------------------------------------------------
# Recognising a layout


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
        if path.lower().endswith(".json") and _is_coco_json(path):
            return "coco"
        raise DataError(
            f"{path} is not a COCO JSON file (a dict with 'images' and 'annotations'); "
            "pass a COCO JSON file or a VOC/COCO/YOLO dataset folder."
        )
    found = [name for name, test in _LAYOUT_TESTS if test(path)]
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


def _files(folder, extensions):
    if not os.path.isdir(folder):
        return []
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(extensions))


def _first_dir(root, names):
    for name in names:
        if os.path.isdir(os.path.join(root, name)):
            return os.path.join(root, name)
    return None


def _is_voc_xml(path):
    try:
        for _, element in ElementTree.iterparse(path, events=("start",)):
            return element.tag == "annotation"
    except ElementTree.ParseError:
        return False
    return False


def _voc_annotation_dir(root):
    """The folder holding the VOC XML files of `root`, or None."""
    for name in _VOC_ANNOTATION_DIRS:
        folder = os.path.join(root, name)
        xmls = _files(folder, (".xml",))
        if xmls and _is_voc_xml(os.path.join(folder, xmls[0])):
            return folder
    xmls = _files(root, (".xml",))
    if xmls and _files(root, IMAGE_EXTENSIONS) and _is_voc_xml(os.path.join(root, xmls[0])):
        return root  # XML files next to the images
    return None


def _is_coco_json(path):
    try:
        with open(path, "rb") as file:
            head = file.read(1 << 16)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and (b'"images"' in head or b'"annotations"' in head
                                               or b'"categories"' in head)


def _coco_jsons(root):
    candidates = []
    for folder in (root, os.path.join(root, "annotations")):
        candidates += [os.path.join(folder, f) for f in _files(folder, (".json",))]
    return [path for path in candidates if _is_coco_json(path)]


def _yolo_dirs(root):
    """`(images dir, labels dir)` of a YOLO layout, or None."""
    images, labels = os.path.join(root, "images"), os.path.join(root, "labels")
    if not (os.path.isdir(images) and os.path.isdir(labels)):
        return None
    has_labels = any(
        f.endswith(".txt") and f != "classes.txt" for _, _, fs in os.walk(labels) for f in fs
    )
    return (images, labels) if has_labels else None


_LAYOUT_TESTS = (
    ("voc", lambda root: _voc_annotation_dir(root) is not None),
    ("coco", lambda root: bool(_coco_jsons(root))),
    ("yolo", lambda root: _yolo_dirs(root) is not None),
)


# ----------------------------------------------------------------------------
# Loading


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
    reader = {"voc": _read_voc, "coco": _read_coco, "yolo": _read_yolo}[format]
    records, names, clipped = reader(path, class_names, split)
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
    return DetectionData(records, names, format)


class _Boxes:
    """Collects one image's boxes and checks them against its size."""

    def __init__(self, width, height, where, clipped):
        self.width, self.height, self.where, self.clipped = width, height, where, clipped
        self.boxes, self.class_ids = [], []

    def add(self, box, class_id):
        xmin, ymin, xmax, ymax = (float(v) for v in box)
        if not all(np.isfinite((xmin, ymin, xmax, ymax))):
            raise DataError(f"Box {box} in {self.where} is not finite; fix the annotation.")
        if xmin >= xmax or ymin >= ymax:
            raise DataError(
                f"Box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) in {self.where} has xmin >= xmax "
                "or ymin >= ymax; fix or remove the annotation."
            )
        inside = (max(xmin, 0.0), max(ymin, 0.0), min(xmax, self.width), min(ymax, self.height))
        if inside[0] >= inside[2] or inside[1] >= inside[3]:
            raise DataError(
                f"Box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) in {self.where} lies outside the "
                f"{self.width}x{self.height} image; fix or remove the annotation."
            )
        if max(abs(a - b) for a, b in zip(inside, (xmin, ymin, xmax, ymax))) > 1.0:
            self.clipped.append(f"({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) in {self.where}")
        self.boxes.append(inside)
        self.class_ids.append(class_id)

    def record(self, image_path):
        return DetectionRecord(image_path, self.width, self.height,
                               np.asarray(self.boxes, "float32").reshape(-1, 4), self.class_ids)


def _image_size(path):
    """`(width, height)` from the image header, EXIF rotation applied."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated by 90 degrees
                width, height = height, width
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(f"Cannot read image {path}: {error}. Remove or replace the file.") from error
    return width, height


def _refuse_unpaired(what, paths, advice):
    if paths:
        more = f" and {len(paths) - _LISTED} more" if len(paths) > _LISTED else ""
        shown = ", ".join(paths[:_LISTED]) + more
        raise DataError(f"{len(paths)} {what}: {shown}; {advice}")


def _class_index(class_names):
    return {name: i for i, name in enumerate(class_names)}


def _index_images(folder, recursive=False):
    """`{relative path without extension: relative path}` of the images."""
    found = {}
    for directory, _, files in os.walk(folder) if recursive else [(folder, None, os.listdir(folder))]:
        for file in sorted(files):
            if file.lower().endswith(IMAGE_EXTENSIONS):
                relative = os.path.relpath(os.path.join(directory, file), folder)
                found.setdefault(os.path.splitext(relative)[0], relative)
    return found


# --- VOC ---------------------------------------------------------------------


def _read_voc(root, class_names, split):
    annotation_dir = _voc_annotation_dir(root) if os.path.isdir(root) else None
    if annotation_dir is None:
        raise DataError(
            f"{root} has no VOC XML annotations (Annotations/*.xml); check the folder or format=.")
    image_dir = root if annotation_dir == root else _first_dir(root, _VOC_IMAGE_DIRS)
    if image_dir is None:
        raise DataError(
            f"{root} has VOC annotations but no JPEGImages/ or images/ folder; put the images there."
        )
    images = _index_images(image_dir)
    xml_files = _files(annotation_dir, (".xml",))
    if split is not None:
        listed = _voc_split_ids(root, split)
        images = {key: value for key, value in images.items() if key in listed}
        xml_files = [f for f in xml_files if os.path.splitext(f)[0] in listed]
        _refuse_unpaired(f"images listed in ImageSets/Main/{split}.txt have no XML in {annotation_dir}",
                         sorted(listed - {os.path.splitext(f)[0] for f in xml_files}),
                         "add their annotations or remove them from the list.")
    parsed, missing = [], []
    for xml_file in xml_files:
        xml_path = os.path.join(annotation_dir, xml_file)
        try:
            tree = ElementTree.parse(xml_path).getroot()
        except ElementTree.ParseError as error:
            raise DataError(f"Cannot parse {xml_path}: {error}; fix or remove the file.") from None
        file_name = (tree.findtext("filename") or "").strip()
        relative = None
        if file_name and os.path.isfile(os.path.join(image_dir, file_name)):
            relative = file_name
        else:  # no <filename>, or one with another extension: match by name
            relative = images.get(os.path.splitext(file_name or xml_file)[0]) or images.get(
                os.path.splitext(xml_file)[0])
        if relative is None:
            missing.append(xml_file)
            continue
        parsed.append((xml_path, tree, relative))
    _refuse_unpaired("VOC annotations without their image in " + image_dir, missing,
                     "add the images or remove the XML files.")
    used = {relative for _, _, relative in parsed}
    _refuse_unpaired(
        "images without a VOC annotation in " + image_dir, sorted(set(images.values()) - used),
        "add an XML for each (one without <object> for an image with no objects) or remove them.")

    objects = [[(obj.findtext("name") or "").strip() for obj in tree.iter("object")]
               for _, tree, _ in parsed]
    names = class_names or sorted({name for names in objects for name in names})
    index = _class_index(names)
    records, clipped = [], []
    for (xml_path, tree, relative), object_names in zip(parsed, objects):
        image_path = os.path.join(image_dir, relative)
        width, height = (_int_text(tree, "size/width"), _int_text(tree, "size/height"))
        if not width or not height:  # some tools write 0
            width, height = _image_size(image_path)
        boxes = _Boxes(width, height, xml_path, clipped)
        for obj, name in zip(tree.iter("object"), object_names):
            if name not in index:
                raise DataError(
                    f"Class {name!r} in {xml_path} is not one of the classes {names}; fix the "
                    "name or train with that class."
                )
            box = obj.find("bndbox")
            values = [None if box is None else box.findtext(tag) for tag in ("xmin", "ymin", "xmax", "ymax")]
            try:
                xmin, ymin, xmax, ymax = (float(v) for v in values)
            except (TypeError, ValueError):
                raise DataError(
                    f"Object {name!r} in {xml_path} has no valid <bndbox> (xmin, ymin, xmax, ymax); "
                    "fix the annotation."
                ) from None
            boxes.add((xmin - 1, ymin - 1, xmax, ymax), index[name])  # 1-based inclusive -> 0-based
        records.append(boxes.record(image_path))
    return records, names, clipped


def _voc_split_ids(root, split):
    path = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
    if not os.path.isfile(path):
        raise DataError(f"{root} has no ImageSets/Main/{split}.txt listing the {split!r} images; "
                        "pass another split or none.")
    with open(path, encoding="utf-8") as file:
        return {line.split()[0] for line in file if line.strip()}


def _int_text(tree, path):
    try:
        return int(float(tree.findtext(path)))
    except (TypeError, ValueError):
        return 0


# --- COCO --------------------------------------------------------------------


def _read_coco(path, class_names, split):
    if os.path.isdir(path):
        jsons = _coco_jsons(path)
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
    image_dir = _coco_image_dir(json_path, root, file_names)
    missing = [f for f in file_names if not os.path.isfile(os.path.join(image_dir, f))]
    _refuse_unpaired(f"images listed in {json_path} are missing from {image_dir}", missing,
                     "add them or remove them from the JSON.")

    category_names = [str(c["name"]) for c in categories]
    names = class_names or category_names
    index = _class_index(names)
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
                width, height = _image_size(os.path.join(image_dir, image["file_name"]))
            by_image[image_id] = _Boxes(width, height, where, clipped)
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
                width, height = _image_size(image_path)
            boxes = _Boxes(width, height, json_path, clipped)
        records.append(boxes.record(image_path))
    return records, names, clipped


def _coco_image_dir(json_path, root, file_names):
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


# --- YOLO --------------------------------------------------------------------


def _read_yolo(root, class_names, split):
    dirs = _yolo_dirs(root) if os.path.isdir(root) else None
    if dirs is None:
        raise DataError(f"{root} has no YOLO layout (images/ and labels/*.txt); check the folder or format=.")
    image_dir, label_dir = _yolo_split_dirs(root, *dirs, split)
    file_names = _yolo_class_names(root)
    if file_names is None and class_names is None:
        raise DataError(
            f"{root} has no class names: add classes.txt (one name a line) or data.yaml "
            "(names: [...]) to the folder."
        )
    names = class_names or file_names
    # Label ids index the dataset's own names; map them onto `names`.
    own = file_names or names
    index = _class_index(names)
    unknown = [n for n in own if n not in index]
    if unknown:
        raise DataError(f"Classes {unknown} of {root} are not among {names}; train with them or remove them.")
    images = _index_images(image_dir, recursive=True)
    labels = {}
    for directory, _, files in os.walk(label_dir):
        for file in files:
            if file.endswith(".txt") and file != "classes.txt":
                relative = os.path.relpath(os.path.join(directory, file), label_dir)
                labels[os.path.splitext(relative)[0]] = os.path.join(directory, file)
    _refuse_unpaired(f"YOLO label files without their image in {image_dir}",
                     sorted(os.path.relpath(labels[k], label_dir) for k in set(labels) - set(images)),
                     "add the images or remove the label files.")
    negatives = len(set(images) - set(labels))
    if negatives:
        logger.info("%d images of %s have no label file: taken as negatives (no objects).", negatives, root)
    records, clipped = [], []
    for key in sorted(images):
        image_path = os.path.join(image_dir, images[key])
        width, height = _image_size(image_path)
        boxes = _Boxes(width, height, image_path, clipped)
        if key in labels:
            _read_yolo_labels(labels[key], own, index, boxes)
        records.append(boxes.record(image_path))
    return records, names, clipped


def _yolo_split_dirs(root, image_dir, label_dir, split):
    if split is not None:
        image_dir, label_dir = os.path.join(image_dir, split), os.path.join(label_dir, split)
        if not (os.path.isdir(image_dir) and os.path.isdir(label_dir)):
            raise DataError(f"{root} has no images/{split} and labels/{split} folders; pass another "
                            "split or none.")
        return image_dir, label_dir
    splits = sorted(d for d in os.listdir(image_dir) if d.lower() in _SPLIT_NAMES
                    and os.path.isdir(os.path.join(image_dir, d)))
    if len(splits) > 1:
        raise DataError(
            f"{image_dir} holds the splits {', '.join(splits)}; pass split= one of them "
            "(reading all would mix them)."
        )
    return image_dir, label_dir


def _read_yolo_labels(label_path, own_names, index, boxes):
    with open(label_path, encoding="utf-8") as file:
        lines = file.read().splitlines()
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{label_path} line {number}"
        boxes.where = where
        try:
            class_id, values = int(fields[0]), [float(v) for v in fields[1:]]
        except ValueError:
            raise DataError(f"{where} is not 'class cx cy w h' numbers: {line!r}; fix the line.") from None
        if not 0 <= class_id < len(own_names):
            raise DataError(
                f"Class id {class_id} at {where} is not in 0..{len(own_names) - 1} "
                f"({len(own_names)} names); fix the id or the class names."
            )
        if len(values) == 4:
            cx, cy, w, h = values
            corners = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        elif len(values) >= 6 and len(values) % 2 == 0:  # a polygon: x1 y1 x2 y2 ...
            xs, ys = values[0::2], values[1::2]
            corners = (min(xs), min(ys), max(xs), max(ys))
        else:
            raise DataError(f"{where} has {len(values)} numbers after the class; expected 4 (cx cy w h).")
        scale = (boxes.width, boxes.height) * 2
        boxes.add([c * s for c, s in zip(corners, scale)], index[own_names[class_id]])


def _yolo_class_names(root):
    for name in _YOLO_NAME_FILES:
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as file:
            text = file.read()
        if name.endswith(".txt"):
            return [line.strip() for line in text.splitlines() if line.strip()]
        names = _yaml_names(text)
        if names is None:
            raise DataError(f"{path} has no 'names:' list or mapping; add the class names to it.")
        return names
    return None


def _yaml_names(text):
    """The `names:` of a YOLO data.yaml, as a list (with PyYAML if present)."""
    try:
        import yaml
    except ImportError:
        names = _simple_yaml_names(text)
    else:
        try:
            names = (yaml.safe_load(text) or {}).get("names")
        except yaml.YAMLError as error:
            raise DataError(f"Cannot parse YOLO data.yaml: {error}") from None
    if isinstance(names, dict):
        return [str(names[key]) for key in sorted(names, key=int)]
    if isinstance(names, list):
        return [str(name) for name in names]
    return None


def _simple_yaml_names(text):
    """`names:` as a flow list, a block list or an `id: name` mapping.

    Example:
    >>> _simple_yaml_names("nc: 2\\nnames:\\n  0: cat\\n  1: 'hot dog'\\n")
    {0: 'cat', 1: 'hot dog'}
    """
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^names\s*:\s*(.*?)\s*(#.*)?$", line)
        if not match:
            continue
        inline = match.group(1)
        if inline.startswith("["):
            return [_unquote(v) for v in inline.strip("[]").split(",") if v.strip()]
        items, mapping = [], {}
        for item in lines[i + 1:]:
            if not item.strip() or item.lstrip().startswith("#"):
                continue
            if not item[:1].isspace():
                break  # the next top-level key
            entry = item.strip()
            if entry.startswith("- "):
                items.append(_unquote(entry[2:]))
            elif ":" in entry:
                key, value = entry.split(":", 1)
                mapping[int(key)] = _unquote(value)
        return mapping or items
    return None


def _unquote(value):
    value = value.split(" #")[0].strip()
    return value[1:-1] if value[:1] in "'\"" and value[-1:] == value[:1] else value


# ----------------------------------------------------------------------------
# Splits and arrays


def split_records(records, fraction, seed=0):
    """Seeded split by image: `(train_records, held_out_records)`.

    Holds out `round(fraction * len(records))` images (at least one when
    there are two or more), so all boxes of an image stay on one side.

    Example:
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
    >>> from keras_tl.datasets.detection_demo import detection_demo_path
    >>> records = load_detection_data(detection_demo_path("test")).records[:4]
    >>> images, boxes, class_ids = load_detection_arrays(records, (64, 64), max_boxes=6)
    >>> images.shape, boxes.shape, class_ids.shape
    ((4, 64, 64, 3), (4, 6, 4), (4, 6))
    """
    from PIL import Image

    from keras_tl.data.images import read_image

    height, width = _pair(image_size)
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


def _pair(size):
    if isinstance(size, int):
        return size, size
    height, width = (int(v) for v in size)
    return height, width


# ----------------------------------------------------------------------------
# Box-aware augmentation (TensorFlow ops, for tf.data on any Keras backend)
#
# Each function takes one image `[H, W, 3]` (0-255), its boxes `[n, 4]`
# (pixel xmin, ymin, xmax, ymax) and class ids `[n]`, where a class id < 0
# marks padding, and returns them transformed; boxes cut out are turned into
# padding, so `n` never changes. `seed` is a stateless seed pair (a `[2]`
# integer tensor) or None for stateful randomness.


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

    out_h, out_w = _pair(output_size)
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
