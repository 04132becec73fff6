"""How many ground-truth boxes of the shipped detection demo set get at least
one positive anchor in the detector's training targets, with keras_hub's
matching alone (IoU >= 0.5) and with the low-quality matches keras_tl adds
(each box keeps its best anchors; `keras_tl.models.retinanet.MatchingLabelEncoder`).

At each `--image-size` (224: the CLI's default; 128: the demo's own size,
which examples/object_detection.py trains at), the anchors are those the
object-detection task chooses from the training boxes (`choose_anchors`).
Each split's boxes are encoded as the training step encodes them; a box
counts as reached when some positive anchor carries its class and its
deltas decode back to it. No model, no training: seconds. Writes
`benchmarks/results/anchor_matching.json`.

    python benchmarks/anchor_matching.py [--image-size 224 128]
"""

import argparse
import time

import numpy as np
from keras import ops

from keras_tl.data.detection import load_detection_arrays, load_detection_data
from keras_tl.datasets.detection_demo import detection_demo_path
from keras_tl.models.retinanet import (BOX_FORMAT, AnchorGenerator, MatchingLabelEncoder,
                                       _anchor_array, choose_anchors)


def encoder_for(anchors, low_quality_matches):
    """The label encoder `build_detector` gives a detector with these anchors."""
    generator = AnchorGenerator(BOX_FORMAT, min_level=3, max_level=7, num_scales=3,
                                aspect_ratios=[float(r) for r in anchors["aspect_ratios"]],
                                anchor_size=anchors["anchor_size"])
    return MatchingLabelEncoder(generator, BOX_FORMAT, encoding_format="center_xywh",
                                low_quality_matches=low_quality_matches)


def decode(deltas, anchors):
    """`center_xywh` deltas (variance 1) on `xyxy` anchors back to `xyxy`."""
    width, height = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    cx = anchors[:, 0] + width / 2 + deltas[:, 0] * width
    cy = anchors[:, 1] + height / 2 + deltas[:, 1] * height
    w, h = width * np.exp(deltas[:, 2]), height * np.exp(deltas[:, 3])
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def reached(encoder, boxes, class_ids, image_size, batch_size=50, tolerance=0.01):
    """`{"boxes", "reached", "fraction", "positive_anchors_per_box"}` for
    the padded `boxes` and `class_ids` (-1 padding) under `encoder`."""
    anchors = _anchor_array(encoder.anchor_generator, image_size).astype("float64")
    total = found = positives = 0
    for start in range(0, len(boxes), batch_size):
        part_boxes, part_ids = boxes[start:start + batch_size], class_ids[start:start + batch_size]
        images = np.zeros((len(part_boxes),) + tuple(image_size) + (3,), "float32")
        deltas, classes = encoder(images=images, gt_boxes=part_boxes,
                                  gt_classes=part_ids.astype("float32"))
        deltas, classes = ops.convert_to_numpy(deltas), ops.convert_to_numpy(classes)
        for image in range(len(part_boxes)):
            positive = classes[image] >= 0
            positives += int(positive.sum())
            decoded = decode(deltas[image][positive].astype("float64"), anchors[positive])
            decoded_classes = classes[image][positive]
            for box, class_id in zip(part_boxes[image], part_ids[image]):
                if class_id < 0:
                    continue  # padding
                total += 1
                same = (decoded_classes == class_id) & (
                    np.abs(decoded - box).max(axis=-1) <= tolerance)
                found += bool(same.any())
    return dict(boxes=total, reached=found, fraction=round(found / max(total, 1), 4),
                positive_anchors_per_box=round(positives / max(total, 1), 2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, nargs="+", default=[224, 128])
    parser.add_argument("--out", default="benchmarks/results/anchor_matching.json")
    args = parser.parse_args()
    from _results import write_results  # benchmarks/ is the script's folder

    start = time.perf_counter()
    records = {split: load_detection_data(detection_demo_path(split)).records
               for split in ("train", "test")}
    runs, summary = {}, {}
    for size in args.image_size:
        image_size = (size, size)
        arrays = {split: load_detection_arrays(part, image_size)[1:]
                  for split, part in records.items()}
        anchors = choose_anchors(arrays["train"][0], image_size)  # as the task chooses them
        run = dict(anchors=anchors)
        for name, low_quality in (("keras_hub_matching", False), ("low_quality_matches", True)):
            encoder = encoder_for(anchors, low_quality)
            run[name] = {split: reached(encoder, boxes, ids, image_size)
                         for split, (boxes, ids) in arrays.items()}
        runs[str(size)] = run
        summary[f"train_boxes_reached_{size}px"] = {
            "before": run["keras_hub_matching"]["train"]["fraction"],
            "after": run["low_quality_matches"]["train"]["fraction"]}
    settings = dict(vars(args), data="keras_tl detection demo (COCO, 400 train and 100 test "
                    "images of 128 px, resized to the image size)",
                    matching="positive IoU >= 0.5, background < 0.4 (keras_hub's RetinaNet); "
                    "after: plus each box's highest-IoU anchors, ties included",
                    reached="some positive anchor has the box's class and its deltas decode to "
                    "the box within 0.01 px", seconds=round(time.perf_counter() - start, 1))
    write_results(args.out, summary, settings=settings, runs=runs)


if __name__ == "__main__":
    main()
