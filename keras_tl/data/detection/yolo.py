"""YOLO: `images/` and `labels/` mirroring each other (`images/a/b.jpg`
<-> `labels/a/b.txt`), normalised `class cx cy w h` lines (a polygon line
gives its bounding box), names from `classes.txt` or `data.yaml`.

As in Ultralytics, an image without a label file is a negative. Split
folders (`images/train`, `labels/train`, ...) need `split=`.
"""

import logging
import os
import re

from keras_tl.data.detection.files import image_size, index_images
from keras_tl.data.detection.validation import BoxChecker, class_index, refuse_unpaired
from keras_tl.errors import DataError

_NAME_FILES = ("data.yaml", "data.yml", "dataset.yaml", "classes.txt", "labels/classes.txt")
_SPLIT_NAMES = ("train", "val", "valid", "validation", "test")
logger = logging.getLogger("keras_tl")


def layout_folders(root):
    """`(images dir, labels dir)` of a YOLO layout, or None.

    Example:
    >>> root = tmp_path / "yolo_found"; (root / "images").mkdir(parents=True)
    >>> (root / "labels").mkdir(); _ = (root / "labels" / "a.txt").write_text("")
    >>> [os.path.basename(d) for d in layout_folders(str(root))], layout_folders(str(tmp_path / "none"))
    (['images', 'labels'], None)
    """
    images, labels = os.path.join(root, "images"), os.path.join(root, "labels")
    if not (os.path.isdir(images) and os.path.isdir(labels)):
        return None
    has_labels = any(
        f.endswith(".txt") and f != "classes.txt" for _, _, fs in os.walk(labels) for f in fs
    )
    return (images, labels) if has_labels else None


def read_yolo(root, class_names, split):
    """Reads a YOLO folder: `(records, class names, clipped boxes)`, with
    `class_names` and `split` as `load_detection_data` takes them.

    Example:
    >>> from PIL import Image
    >>> root = tmp_path / "yolo_read"; (root / "images").mkdir(parents=True)
    >>> (root / "labels").mkdir(); Image.new("RGB", (64, 48)).save(root / "images" / "a.jpg")
    >>> _ = (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.25 0.5\\n")
    >>> _ = (root / "classes.txt").write_text("cat\\n")
    >>> records, names, clipped = read_yolo(str(root), None, None)
    >>> records[0].boxes.tolist(), names
    ([[24.0, 12.0, 40.0, 36.0]], ['cat'])
    """
    dirs = layout_folders(root) if os.path.isdir(root) else None
    if dirs is None:
        raise DataError(f"{root} has no YOLO layout (images/ and labels/*.txt); check the folder or format=.")
    image_dir, label_dir = _split_folders(root, *dirs, split)
    file_names = _class_names_of(root)
    if file_names is None and class_names is None:
        raise DataError(
            f"{root} has no class names: add classes.txt (one name a line) or data.yaml "
            "(names: [...]) to the folder."
        )
    names = class_names or file_names
    # Label ids index the dataset's own names; map them onto `names`.
    own = file_names or names
    index = class_index(names)
    unknown = [n for n in own if n not in index]
    if unknown:
        raise DataError(f"Classes {unknown} of {root} are not among {names}; train with them or remove them.")
    images = index_images(image_dir, recursive=True)
    labels = {}
    for directory, _, files in os.walk(label_dir):
        for file in files:
            if file.endswith(".txt") and file != "classes.txt":
                relative = os.path.relpath(os.path.join(directory, file), label_dir)
                labels[os.path.splitext(relative)[0]] = os.path.join(directory, file)
    refuse_unpaired(f"YOLO label files without their image in {image_dir}",
                     sorted(os.path.relpath(labels[k], label_dir) for k in set(labels) - set(images)),
                     "add the images or remove the label files.")
    negatives = len(set(images) - set(labels))
    if negatives:
        logger.info("%d images of %s have no label file: taken as negatives (no objects).", negatives, root)
    records, clipped = [], []
    for key in sorted(images):
        image_path = os.path.join(image_dir, images[key])
        width, height = image_size(image_path)
        boxes = BoxChecker(width, height, image_path, clipped)
        if key in labels:
            _read_labels(labels[key], own, index, boxes)
        records.append(boxes.record(image_path))
    return records, names, clipped


def _split_folders(root, image_dir, label_dir, split):
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


def _read_labels(label_path, own_names, index, boxes):
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


def _class_names_of(root):
    for name in _NAME_FILES:
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
