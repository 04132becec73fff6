"""Detection annotations (VOC, COCO, YOLO), their checks, box-aware
augmentation and the split by image."""

import json
import logging
import os

import numpy as np
import pytest
from PIL import Image

from keras_tl.data import detection
from keras_tl.data.detection import yolo
from keras_tl.data.detection import (
    DetectionRecord,
    detect_format,
    is_detection_data,
    load_detection_arrays,
    load_detection_data,
    split_records,
)
from keras_tl.errors import ConfigError, DataError, DataNotFoundError


CLASSES = ["cat", "dog"]
# (file, width, height, [(class id, xmin, ymin, xmax, ymax)]); coordinates are
# multiples of 1/16 of the size, so YOLO's normalised decimals are exact.
IMAGES = [
    ("a.png", 64, 48, [(0, 4, 6, 20, 30), (1, 32, 0, 64, 48)]),
    ("b.png", 32, 32, [(1, 2, 4, 30, 16)]),
    ("c.png", 64, 64, []),  # a negative
]


def _write_images(folder, images=IMAGES):
    os.makedirs(folder, exist_ok=True)
    for name, width, height, _ in images:
        Image.new("RGB", (width, height), (90, 120, 150)).save(os.path.join(folder, name))


def write_voc(root, images=IMAGES, image_dir="JPEGImages", annotation_dir="Annotations",
              with_size=True, filename_tag=True):
    _write_images(os.path.join(root, image_dir), images)
    os.makedirs(os.path.join(root, annotation_dir), exist_ok=True)
    for name, width, height, objects in images:
        size = f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
        parts = [f"<filename>{name}</filename>" if filename_tag else "", size if with_size else ""]
        for class_id, xmin, ymin, xmax, ymax in objects:
            # VOC is 1-based and inclusive: xmin + 1
            parts.append(
                f"<object><name>{CLASSES[class_id]}</name><bndbox><xmin>{xmin + 1}</xmin>"
                f"<ymin>{ymin + 1}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
            )
        xml = "<annotation>" + "".join(parts) + "</annotation>"
        stem = os.path.splitext(name)[0]
        with open(os.path.join(root, annotation_dir, stem + ".xml"), "w") as file:
            file.write(xml)
    return str(root)


def write_coco(root, images=IMAGES, json_name="instances_train.json"):
    _write_images(os.path.join(root, "images"), images)
    coco = {"images": [], "annotations": [],
            # ids not 0-based and out of order: class ids follow the sorted ids
            "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]}
    category_id = {0: 3, 1: 7}
    for image_id, (name, width, height, objects) in enumerate(images, 1):
        coco["images"].append({"id": image_id, "file_name": name, "width": width, "height": height})
        for class_id, xmin, ymin, xmax, ymax in objects:
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": image_id,
                "category_id": category_id[class_id], "iscrowd": 0,
                "bbox": [xmin, ymin, xmax - xmin, ymax - ymin], "area": (xmax - xmin) * (ymax - ymin)})
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    with open(os.path.join(root, "annotations", json_name), "w") as file:
        json.dump(coco, file)
    return str(root)


def write_yolo(root, images=IMAGES, names_file="classes.txt"):
    _write_images(os.path.join(root, "images"), images)
    os.makedirs(os.path.join(root, "labels"), exist_ok=True)
    for name, width, height, objects in images:
        if not objects and name == "c.png":
            continue  # YOLO: no label file = a negative image
        lines = [
            f"{c} {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} "
            f"{(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}"
            for c, x0, y0, x1, y1 in objects
        ]
        with open(os.path.join(root, "labels", os.path.splitext(name)[0] + ".txt"), "w") as file:
            file.write("\n".join(lines) + "\n")
    with open(os.path.join(root, names_file), "w") as file:
        if names_file.endswith(".txt"):
            file.write("\n".join(CLASSES) + "\n")
        else:
            file.write("path: .\ntrain: images\nnames:\n  0: cat\n  1: dog\n")
    return str(root)


def _expected():
    return {
        name: (width, height, np.asarray([o[1:] for o in objects], "float32").reshape(-1, 4),
               [o[0] for o in objects])
        for name, width, height, objects in IMAGES
    }


def _assert_records_match(data):
    assert data.class_names == CLASSES
    assert sorted(os.path.basename(r.image_path) for r in data.records) == ["a.png", "b.png", "c.png"]
    expected = _expected()
    for record in data.records:
        width, height, boxes, class_ids = expected[os.path.basename(record.image_path)]
        assert (record.width, record.height) == (width, height)
        assert record.boxes.dtype == np.float32 and record.class_ids.dtype == np.int32
        np.testing.assert_array_equal(record.boxes, boxes)
        assert record.class_ids.tolist() == class_ids
        assert os.path.isfile(record.image_path)


@pytest.mark.parametrize("writer, layout", [(write_voc, "voc"), (write_coco, "coco"), (write_yolo, "yolo")])
def test_the_three_layouts_give_identical_records(tmp_path, writer, layout):
    root = writer(tmp_path / layout)
    assert detect_format(root) == layout
    assert is_detection_data(root)
    data = load_detection_data(root)
    assert data.format == layout
    _assert_records_match(data)
    # forcing the layout reads the same
    _assert_records_match(load_detection_data(root, format=layout))


def test_voc_variants_lowercase_folders_sizes_from_the_header_and_no_filename_tag(tmp_path):
    root = write_voc(tmp_path / "voc", image_dir="images", annotation_dir="annotations",
                     with_size=False, filename_tag=False)
    _assert_records_match(load_detection_data(root))


def test_voc_xml_next_to_the_images(tmp_path):
    root = tmp_path / "flat"
    write_voc(root, image_dir=".", annotation_dir=".")
    assert detect_format(root) == "voc"
    _assert_records_match(load_detection_data(root))


def test_coco_json_file_itself_and_images_beside_it(tmp_path):
    root = write_coco(tmp_path / "coco")
    _assert_records_match(load_detection_data(os.path.join(root, "annotations", "instances_train.json")))


def test_yolo_data_yaml_names_and_the_simple_parser(tmp_path):
    root = write_yolo(tmp_path / "yolo", names_file="data.yaml")
    _assert_records_match(load_detection_data(root))
    # the fallback used when PyYAML is not installed reads every `names:` form
    parse = yolo._simple_yaml_names
    assert parse("names: ['cat', \"dog\"]\nnc: 2\n") == ["cat", "dog"]
    assert parse("names: [cat, dog]  # two\n") == ["cat", "dog"]
    assert parse("train: x\nnames:\n  - cat\n  - dog\nval: y\n") == ["cat", "dog"]
    assert parse("names:\n  1: dog\n  0: cat\n") == {1: "dog", 0: "cat"}
    assert parse("nc: 2\n") is None


def test_yolo_polygon_lines_give_their_bounding_box(tmp_path):
    root = write_yolo(tmp_path / "yolo")
    with open(os.path.join(root, "labels", "b.txt"), "w") as file:
        file.write("1 0.0625 0.125 0.9375 0.125 0.5 0.5\n")  # triangle (2,4) (30,4) (16,16)
    record = [r for r in load_detection_data(root).records if r.image_path.endswith("b.png")][0]
    np.testing.assert_array_equal(record.boxes, [[2, 4, 30, 16]])


def test_class_names_of_another_split_reorder_the_ids(tmp_path):
    data = load_detection_data(write_coco(tmp_path / "coco"), class_names=["dog", "cat"])
    record = [r for r in data.records if r.image_path.endswith("a.png")][0]
    assert data.class_names == ["dog", "cat"] and record.class_ids.tolist() == [1, 0]


def test_classification_folders_and_other_folders_are_not_detection_data(image_folder, tmp_path):
    assert not is_detection_data(image_folder)
    assert not is_detection_data(tmp_path / "missing")
    with pytest.raises(DataError, match="holds no detection annotations"):
        detect_format(image_folder)
    with pytest.raises(DataNotFoundError):
        load_detection_data(tmp_path / "missing")
    with pytest.raises(ConfigError, match="Unknown detection format"):
        load_detection_data(image_folder, format="pascal")


def test_two_layouts_in_one_folder_ask_for_format(tmp_path):
    root = write_coco(tmp_path / "both")
    write_yolo(root)
    with pytest.raises(DataError, match="several detection layouts.*format="):
        detect_format(root)
    _assert_records_match(load_detection_data(root, format="yolo"))


def test_split_picks_one_split_of_each_layout(tmp_path):
    root = write_voc(tmp_path / "voc")
    os.makedirs(os.path.join(root, "ImageSets", "Main"))
    with open(os.path.join(root, "ImageSets", "Main", "train.txt"), "w") as file:
        file.write("a\nc\n")
    names = lambda data: sorted(os.path.basename(r.image_path) for r in data.records)  # noqa: E731
    assert names(load_detection_data(root, split="train")) == ["a.png", "c.png"]
    with pytest.raises(DataError, match="no ImageSets/Main/val.txt"):
        load_detection_data(root, split="val")

    root = write_coco(tmp_path / "coco", IMAGES[:2], json_name="instances_train2017.json")
    write_coco(root, IMAGES[2:] + [("d.png", 8, 8, [(0, 1, 1, 5, 5)])], json_name="instances_val2017.json")
    with pytest.raises(DataError, match="several COCO JSON files.*split="):
        load_detection_data(root)
    assert names(load_detection_data(root, split="val")) == ["c.png", "d.png"]
    assert names(load_detection_data(root, split="train")) == ["a.png", "b.png"]

    root = tmp_path / "yolo"
    for split, images in (("train", IMAGES[:2]), ("val", IMAGES[2:] + [("d.png", 8, 8, [(1, 0, 0, 4, 4)])])):
        write_yolo(tmp_path / split, images)
        for kind in ("images", "labels"):
            os.renames(tmp_path / split / kind, root / kind / split)
    os.rename(tmp_path / "train" / "classes.txt", root / "classes.txt")
    with pytest.raises(DataError, match="holds the splits train, val; pass split="):
        load_detection_data(root)
    assert names(load_detection_data(root, split="val")) == ["c.png", "d.png"]
    assert names(load_detection_data(root, split="train")) == ["a.png", "b.png"]
    with pytest.raises(DataError, match="no images/test and labels/test"):
        load_detection_data(root, split="test")


# --- bad input ---------------------------------------------------------------


def _with_objects(*objects, width=64, height=48):
    return [("a.png", width, height, list(objects))]


def test_a_box_past_the_edge_is_clipped_with_a_warning(tmp_path, caplog):
    root = write_coco(tmp_path / "c", _with_objects((0, -10, 5, 30, 60)))
    with caplog.at_level(logging.WARNING, logger="keras_tl"):
        data = load_detection_data(root)
    np.testing.assert_array_equal(data.records[0].boxes, [[0, 5, 30, 48]])
    assert "1 boxes" in caplog.text and "clipped" in caplog.text


def test_voc_off_by_one_is_clipped_silently(tmp_path, caplog):
    # a 0-based tool writes xmin=0 and xmax=width: -1 and width after conversion
    root = write_voc(tmp_path / "v", _with_objects((0, -1, 0, 64, 48)))
    with caplog.at_level(logging.WARNING, logger="keras_tl"):
        data = load_detection_data(root)
    np.testing.assert_array_equal(data.records[0].boxes, [[0, 0, 64, 48]])
    assert "clipped" not in caplog.text


@pytest.mark.parametrize("box, message", [
    ((0, 70, 5, 90, 30), "lies outside the 64x48 image"),
    ((0, 20, 5, 20, 30), "xmin >= xmax"),
    ((0, 20, 30, 40, 10), "xmin >= xmax or ymin >= ymax"),
])
def test_empty_or_inverted_boxes_are_refused(tmp_path, box, message):
    root = write_coco(tmp_path / "c", _with_objects(box))
    with pytest.raises(DataError, match=message) as raised:
        load_detection_data(root)
    assert "annotation id 1" in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("written, message", [
    ((40, 8, 12, 36), "has xmin >= xmax"),
    ((71, 6, 90, 30), "lies outside the 64x48 image"),
])
def test_voc_errors_quote_the_box_as_the_file_writes_it(tmp_path, written, message):
    xmin, ymin, xmax, ymax = written
    root = write_voc(tmp_path / "v", _with_objects((0, xmin - 1, ymin - 1, xmax, ymax)))
    with pytest.raises(DataError, match=message) as raised:
        load_detection_data(root)
    assert f"Box {written} in " in str(raised.value)


def test_voc_clipping_warning_quotes_the_box_as_the_file_writes_it(tmp_path, caplog):
    root = write_voc(tmp_path / "v", _with_objects((0, 9, 9, 80, 48)))  # the file says (10, 10, 80, 48)
    with caplog.at_level(logging.WARNING, logger="keras_tl"):
        data = load_detection_data(root)
    np.testing.assert_array_equal(data.records[0].boxes, [[9, 9, 64, 48]])
    assert "e.g. (10, 10, 80, 48) in " in caplog.text


def test_unknown_classes_are_refused(tmp_path):
    root = write_yolo(tmp_path / "y")
    with open(os.path.join(root, "labels", "b.txt"), "w") as file:
        file.write("2 0.5 0.5 0.2 0.2\n")
    with pytest.raises(DataError, match=r"Class id 2 at .*b.txt line 1 is not in 0..1"):
        load_detection_data(root)

    root = write_voc(tmp_path / "v")
    with pytest.raises(DataError, match=r"Class 'dog' in .*a.xml is not one of the classes \['cat'\]"):
        load_detection_data(root, class_names=["cat"])

    root = write_coco(tmp_path / "c")
    path = os.path.join(root, "annotations", "instances_train.json")
    coco = json.load(open(path))
    coco["annotations"][0]["category_id"] = 99
    json.dump(coco, open(path, "w"))
    with pytest.raises(DataError, match="category_id 99"):
        load_detection_data(root)


def test_annotations_without_their_image_are_listed(tmp_path):
    root = write_voc(tmp_path / "v")
    os.remove(os.path.join(root, "JPEGImages", "b.png"))
    with pytest.raises(DataError, match=r"1 VOC annotations without their image .*: b.xml"):
        load_detection_data(root)

    root = write_yolo(tmp_path / "y")
    os.remove(os.path.join(root, "images", "a.png"))
    with pytest.raises(DataError, match=r"1 YOLO label files without their image .*: a.txt"):
        load_detection_data(root)

    root = write_coco(tmp_path / "c")
    os.remove(os.path.join(root, "images", "c.png"))
    with pytest.raises(DataError, match=r"1 images listed in .* are missing from .*: c.png"):
        load_detection_data(root)


def test_voc_images_without_annotation_are_refused_but_yolo_takes_them_as_negatives(tmp_path):
    root = write_voc(tmp_path / "v")
    _write_images(os.path.join(root, "JPEGImages"), [("d.png", 8, 8, []), ("e.png", 8, 8, [])])
    with pytest.raises(DataError, match=r"2 images without a VOC annotation .*: d.png, e.png"):
        load_detection_data(root)

    root = write_yolo(tmp_path / "y")  # c.png has no label file
    data = load_detection_data(root)
    negative = [r for r in data.records if r.image_path.endswith("c.png")][0]
    assert negative.num_objects == 0 and negative.boxes.shape == (0, 4)


def test_empty_annotation_sets_are_refused(tmp_path):
    root = write_coco(tmp_path / "none", images=[("c.png", 8, 8, [])])
    with pytest.raises(DataError, match="annotates no object in its 1 images"):
        load_detection_data(root)
    root = write_coco(tmp_path / "empty", images=[])
    with pytest.raises(DataError, match="holds no annotated images"):
        load_detection_data(root)


def test_a_wrong_annotated_size_is_caught_when_decoding(tmp_path):
    root = write_coco(tmp_path / "c")
    path = os.path.join(root, "annotations", "instances_train.json")
    coco = json.load(open(path))
    coco["images"][0]["width"] = 640
    json.dump(coco, open(path, "w"))
    records = load_detection_data(root).records
    with pytest.raises(DataError, match=r"a.png is 64x48 but its annotation says 640x48"):
        load_detection_arrays(records, (32, 32))


# --- arrays, split -----------------------------------------------------------


def test_arrays_scale_boxes_to_the_model_size_and_pad_with_minus_one(tmp_path):
    records = load_detection_data(write_coco(tmp_path / "c")).records
    images, boxes, class_ids = load_detection_arrays(records, (24, 32), max_boxes=3)
    assert images.shape == (3, 24, 32, 3) and images.dtype == np.uint8
    # a.png is 64x48 -> x / 2, y / 2
    np.testing.assert_allclose(boxes[0, :2], [[2, 3, 10, 15], [16, 0, 32, 24]])
    assert class_ids.tolist() == [[0, 1, -1], [1, -1, -1], [-1, -1, -1]]
    assert (boxes[0, 2] == -1).all() and (boxes[2] == -1).all()
    with pytest.raises(ConfigError, match="more than max_boxes=1"):
        load_detection_arrays(records, (24, 32), max_boxes=1)


def test_split_by_image_is_seeded_and_disjoint():
    records = [DetectionRecord(f"{i}.jpg", 8, 8, [[0, 0, 4, 4]], [0]) for i in range(20)]
    train, held_out = split_records(records, 0.25, seed=1)
    assert (len(train), len(held_out)) == (15, 5)
    assert {id(r) for r in train}.isdisjoint(id(r) for r in held_out)
    again = split_records(records, 0.25, seed=1)[1]
    other = split_records(records, 0.25, seed=2)[1]
    assert [r.image_path for r in again] == [r.image_path for r in held_out]
    assert [r.image_path for r in other] != [r.image_path for r in held_out]
    assert len(split_records(records[:2], 0.1)[1]) == 1
    with pytest.raises(ConfigError):
        split_records(records, 1.0)


# --- augmentation keeps boxes on their pixels ----------------------------------


def _rectangle_image(size=(48, 64), box=(10, 6, 30, 20)):
    """A black image with one filled white rectangle; returns it and its box."""
    image = np.zeros(size + (3,), "float32")
    xmin, ymin, xmax, ymax = box
    image[ymin:ymax, xmin:xmax] = 255.0
    return image, np.asarray([box], "float32")


def _bounds_of_white(image, threshold=128):
    ys, xs = np.nonzero(np.asarray(image)[..., 0] > threshold)
    return np.asarray([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], "float32")


def test_flip_moves_the_box_with_the_rectangle():
    import tensorflow as tf

    image, boxes = _rectangle_image()
    out, out_boxes, ids = detection.random_flip(tf.constant(image), tf.constant(boxes),
                                                tf.constant([0]), probability=1.0, seed=[0, 1])
    np.testing.assert_array_equal(out_boxes[0].numpy(), _bounds_of_white(out))
    np.testing.assert_array_equal(out_boxes[0].numpy(), [34, 6, 54, 20])
    same, same_boxes, _ = detection.random_flip(tf.constant(image), tf.constant(boxes),
                                                tf.constant([0]), probability=0.0, seed=[0, 1])
    np.testing.assert_array_equal(same_boxes.numpy(), boxes)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("scale", [(1.0, 1.6), (0.5, 1.0)])
def test_scale_crop_keeps_the_box_on_the_rectangle(seed, scale):
    import tensorflow as tf

    image, boxes = _rectangle_image(box=(20, 14, 44, 34))
    out, out_boxes, ids = detection.random_scale_crop(
        tf.constant(image), tf.constant(boxes), tf.constant([1]), (48, 64), scale=scale,
        min_visible=0.0, seed=[seed, 7])
    assert out.shape == (48, 64, 3)
    assert ids.numpy().tolist() == [1]
    # bilinear resizing blurs the edge by at most a pixel
    np.testing.assert_allclose(out_boxes[0].numpy(), _bounds_of_white(out), atol=1.0)


def test_boxes_cut_out_of_the_crop_become_padding():
    import tensorflow as tf

    # a x2 zoom of a 48x64 image seen through a 48x64 window: boxes in the
    # corners fall out for most offsets, and are then padding, not empty boxes
    image = np.zeros((48, 64, 3), "float32")
    boxes = tf.constant([[0, 0, 8, 8], [56, 40, 64, 48], [-1, -1, -1, -1]], "float32")
    dropped = 0
    for seed in range(10):
        _, out_boxes, ids = detection.random_scale_crop(
            tf.constant(image), boxes, tf.constant([0, 1, -1]), (48, 64), scale=(2.0, 2.0),
            min_visible=0.5, seed=[seed, 0])
        ids = ids.numpy()
        kept = ids[ids >= 0]
        assert len(kept) <= 1  # a x2 zoom cannot keep both opposite corners
        assert ids.tolist()[len(kept):] == [-1] * (3 - len(kept))
        assert (out_boxes.numpy()[len(kept):] == -1).all()
        dropped += 2 - len(kept)
    # the window shows a corner box only for offsets <= 8 of 64 and 48
    assert dropped >= 15


def test_full_augmentation_in_tf_data_keeps_boxes_on_the_rectangle():
    image, boxes = _rectangle_image(box=(16, 12, 40, 36))
    images = np.stack([image.astype("uint8")] * 8)
    padded = np.concatenate([boxes, -np.ones((1, 4), "float32")])[None].repeat(8, axis=0)
    ids = np.asarray([[0, -1]] * 8, "int32")
    dataset = detection.make_detection_dataset(images, padded, ids, batch_size=4, augment=True, seed=3)
    batches = list(dataset)
    assert len(batches) == 2
    for x, y in batches:
        assert x.dtype.name == "float32" and y["boxes"].shape == (4, 2, 4)
        for picture, box, label in zip(x.numpy(), y["boxes"].numpy(), y["labels"].numpy()):
            if label[0] < 0:
                continue  # cut out by the crop
            # colour jitter moves the grey levels, not the rectangle: after it the
            # rectangle is the brightest, the grey zoom-out padding below 0.63 of it
            picture = picture - picture.min()
            np.testing.assert_allclose(box[0], _bounds_of_white(picture, 0.75 * picture.max()), atol=1.0)
            assert label[1] == -1 and (box[1] == -1).all()
    # the same seed gives the same epoch
    again = list(detection.make_detection_dataset(images, padded, ids, batch_size=4, augment=True, seed=3))
    np.testing.assert_array_equal(again[0][1]["boxes"].numpy(), batches[0][1]["boxes"].numpy())


# --- the shipped demo ----------------------------------------------------------


def test_the_shipped_demo_reads_as_coco_with_boxes_inside_its_images():
    from keras_tl.datasets.detection_demo import CLASS_NAMES, detection_demo_path

    for split, count in (("train", 400), ("test", 100)):
        data = load_detection_data(detection_demo_path(split))
        assert data.format == "coco" and data.class_names == CLASS_NAMES
        assert len(data.records) == count
        objects = np.concatenate([r.class_ids for r in data.records])
        assert set(objects.tolist()) == {0, 1, 2, 3}
        counts = [r.num_objects for r in data.records]
        assert min(counts) == 0 and max(counts) <= 5
        boxes = np.concatenate([r.boxes for r in data.records])
        assert (boxes[:, 2:] - boxes[:, :2] >= 4).all()
        # the annotations as shipped (the reader clips what reaches past an image)
        with open(os.path.join(detection_demo_path(split), "instances.json")) as f:
            coco = json.load(f)
        sizes = {image["id"]: (image["width"], image["height"]) for image in coco["images"]}
        for annotation in coco["annotations"]:
            x, y, w, h = annotation["bbox"]
            width, height = sizes[annotation["image_id"]]
            assert x >= 0 and y >= 0 and x + w <= width and y + h <= height, annotation


@pytest.mark.slow
def test_the_demo_generator_writes_the_shipped_annotations(tmp_path):
    import subprocess
    import sys
    import tarfile

    from keras_tl.datasets import detection_demo

    out = tmp_path / "demo.tar.gz"
    subprocess.run([sys.executable, "tools/make_detection_data.py", "--out", str(out)], check=True,
                   cwd=os.path.join(os.path.dirname(__file__), ".."), capture_output=True)
    with tarfile.open(out) as new, tarfile.open(detection_demo._ARCHIVE) as shipped:
        assert new.getnames() == shipped.getnames()
        for split in ("train", "test"):
            name = f"detection_demo/{split}/instances.json"
            assert new.extractfile(name).read() == shipped.extractfile(name).read()
