"""Pascal VOC: `Annotations/` (or `annotations/`) XML files beside
`JPEGImages/` (or `images/`), or XML files next to the images.

VOC pixel indices are 1-based and inclusive, so `xmin`/`ymin` lose 1 (as in
Detectron2); messages quote the numbers as the XML writes them. Every image
needs its XML: an image without one is refused, since it may be unlabelled
rather than empty (write an XML without `<object>` for a negative image).
`split="train"` reads the images listed in `ImageSets/Main/train.txt`.
"""

import os
import xml.etree.ElementTree as ElementTree

from keras_tl.data.detection.files import image_size, index_images, list_files
from keras_tl.data.detection.validation import BoxChecker, class_index, refuse_unpaired
from keras_tl.data.images import IMAGE_EXTENSIONS
from keras_tl.errors import DataError

_ANNOTATION_DIRS = ("Annotations", "annotations")
_IMAGE_DIRS = ("JPEGImages", "images")


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


def annotation_folder(root):
    """The folder holding the VOC XML files of `root`, or None.

    Example:
    >>> root = tmp_path / "voc_found"; (root / "Annotations").mkdir(parents=True)
    >>> _ = (root / "Annotations" / "a.xml").write_text("<annotation></annotation>")
    >>> os.path.basename(annotation_folder(str(root))), annotation_folder(str(tmp_path / "none"))
    ('Annotations', None)
    """
    for name in _ANNOTATION_DIRS:
        folder = os.path.join(root, name)
        xmls = list_files(folder, (".xml",))
        if xmls and _is_voc_xml(os.path.join(folder, xmls[0])):
            return folder
    xmls = list_files(root, (".xml",))
    if xmls and list_files(root, IMAGE_EXTENSIONS) and _is_voc_xml(os.path.join(root, xmls[0])):
        return root  # XML files next to the images
    return None


def read_voc(root, class_names, split):
    """Reads a VOC folder: `(records, class names, clipped boxes)`, with
    `class_names` and `split` as `load_detection_data` takes them.

    Example:
    >>> from PIL import Image
    >>> root = tmp_path / "voc_read"; (root / "JPEGImages").mkdir(parents=True)
    >>> (root / "Annotations").mkdir(); Image.new("RGB", (64, 48)).save(root / "JPEGImages" / "a.jpg")
    >>> _ = (root / "Annotations" / "a.xml").write_text(
    ...     "<annotation><filename>a.jpg</filename><object><name>cat</name><bndbox>"
    ...     "<xmin>5</xmin><ymin>7</ymin><xmax>20</xmax><ymax>30</ymax></bndbox></object></annotation>")
    >>> records, names, clipped = read_voc(str(root), None, None)
    >>> records[0].boxes.tolist(), records[0].width, names
    ([[4.0, 6.0, 20.0, 30.0]], 64, ['cat'])
    """
    annotation_dir = annotation_folder(root) if os.path.isdir(root) else None
    if annotation_dir is None:
        raise DataError(
            f"{root} has no VOC XML annotations (Annotations/*.xml); check the folder or format=.")
    image_dir = root if annotation_dir == root else _first_dir(root, _IMAGE_DIRS)
    if image_dir is None:
        raise DataError(
            f"{root} has VOC annotations but no JPEGImages/ or images/ folder; put the images there."
        )
    images = index_images(image_dir)
    xml_files = list_files(annotation_dir, (".xml",))
    if split is not None:
        listed = _split_ids(root, split)
        images = {key: value for key, value in images.items() if key in listed}
        xml_files = [f for f in xml_files if os.path.splitext(f)[0] in listed]
        refuse_unpaired(f"images listed in ImageSets/Main/{split}.txt have no XML in {annotation_dir}",
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
    refuse_unpaired("VOC annotations without their image in " + image_dir, missing,
                     "add the images or remove the XML files.")
    used = {relative for _, _, relative in parsed}
    refuse_unpaired(
        "images without a VOC annotation in " + image_dir, sorted(set(images.values()) - used),
        "add an XML for each (one without <object> for an image with no objects) or remove them.")

    objects = [[(obj.findtext("name") or "").strip() for obj in tree.iter("object")]
               for _, tree, _ in parsed]
    names = class_names or sorted({name for names in objects for name in names})
    index = class_index(names)
    records, clipped = [], []
    for (xml_path, tree, relative), object_names in zip(parsed, objects):
        image_path = os.path.join(image_dir, relative)
        width, height = (_int_text(tree, "size/width"), _int_text(tree, "size/height"))
        if not width or not height:  # some tools write 0
            width, height = image_size(image_path)
        boxes = BoxChecker(width, height, xml_path, clipped)
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
            # 1-based inclusive -> 0-based; messages quote the file's numbers
            boxes.add((xmin - 1, ymin - 1, xmax, ymax), index[name], written=(xmin, ymin, xmax, ymax))
        records.append(boxes.record(image_path))
    return records, names, clipped


def _split_ids(root, split):
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
