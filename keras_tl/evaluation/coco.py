"""COCO detection metrics (mAP@[.5:.95], mAP@.5, mAP@.75, AP per class),
computed by `pycocotools` from keras_tl's detection records.

pycocotools is imported on first use (`pip install pycocotools`).
"""

import contextlib
import io

import numpy as np

from keras_tl.errors import ConfigError, DataError


def coco_metrics(records, predictions, class_names, image_size=None):
    """Scores predicted boxes against the records' boxes with COCOeval.

    Args:
        records: the ground truth, `DetectionRecord`s (anything with `width`,
            `height`, `boxes` as pixel `xmin, ymin, xmax, ymax` and
            `class_ids`).
        predictions: one entry per record, each a dict with `"boxes"`
            (`[k, 4]`, pixel `xmin, ymin, xmax, ymax`), `"scores"` (or
            `"confidence"`) and `"class_ids"` (or `"labels"`); entries with a
            class id < 0 are padding. A keras_hub detector's batched output
            (with `"num_detections"`) is accepted as it is.
        class_names: the class names, indexed by class id.
        image_size: `(height, width)` the predicted boxes refer to when the
            images were resized for the model; they are scaled back to each
            record's size. `None`: they are in the records' pixels.

    Returns:
        A dict: `"map"` (mAP@[.5:.95]), `"map_50"`, `"map_75"` and
        `"per_class_ap"` (`{name: AP@[.5:.95]}`, `None` for a class without
        ground-truth boxes). COCO's limit of 100 detections per image
        applies.

    Example:
    >>> from keras_tl.data.detection import DetectionRecord
    >>> truth = [DetectionRecord("a.jpg", 100, 100, [[10, 10, 50, 50]], [0])]
    >>> guess = [{"boxes": [[10, 10, 50, 50]], "scores": [0.9], "class_ids": [0]}]
    >>> metrics = coco_metrics(truth, guess, ["cat", "dog"])
    >>> round(metrics["map"], 3), metrics["per_class_ap"]["dog"]
    (1.0, None)
    """
    predictions = split_batched_predictions(predictions)
    if len(predictions) != len(records):
        raise ConfigError(
            f"Got {len(predictions)} predictions for {len(records)} images; pass one per image, "
            "in the records' order."
        )
    class_names = [str(name) for name in class_names]
    truth = _ground_truth(records, len(class_names))
    detections = _detections(records, predictions, len(class_names), image_size)
    return _evaluate(truth, detections, class_names)


def split_batched_predictions(predictions):
    """A keras_hub detector's batched output as one dict per image, padding
    removed; a list of per-image predictions is returned as it is.

    Example:
    >>> batched = {"boxes": np.zeros((2, 3, 4)), "confidence": np.ones((2, 3)),
    ...            "labels": np.array([[1, -1, -1], [0, 2, -1]]), "num_detections": np.array([1, 2])}
    >>> [p["class_ids"].tolist() for p in split_batched_predictions(batched)]
    [[1], [0, 2]]
    """
    if not isinstance(predictions, dict):
        return list(predictions)
    boxes = np.asarray(predictions["boxes"])
    scores = np.asarray(predictions.get("scores", predictions.get("confidence")))
    labels = np.asarray(predictions.get("class_ids", predictions.get("labels")))
    counts = predictions.get("num_detections")
    counts = np.full(len(boxes), boxes.shape[1]) if counts is None else np.asarray(counts)
    return [
        {"boxes": boxes[i, :n], "scores": scores[i, :n], "class_ids": labels[i, :n]}
        for i, n in enumerate(counts.astype(int))
    ]


def _ground_truth(records, num_classes):
    images, annotations = [], []
    for image_id, record in enumerate(records, 1):  # pycocotools ids from 1
        images.append({"id": image_id, "width": int(record.width), "height": int(record.height)})
        for box, class_id in zip(np.asarray(record.boxes, "float64").reshape(-1, 4), record.class_ids):
            if not 0 <= class_id < num_classes:
                raise DataError(
                    f"Ground-truth class id {class_id} of {getattr(record, 'image_path', image_id)} is "
                    f"not in 0..{num_classes - 1}; pass the class names the records use."
                )
            width, height = box[2] - box[0], box[3] - box[1]
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": int(class_id) + 1,
                "bbox": [float(box[0]), float(box[1]), float(width), float(height)],
                "area": float(width * height), "iscrowd": 0,
            })
    if not annotations:
        raise DataError("The ground truth holds no boxes; COCO metrics need annotated objects.")
    categories = [{"id": i + 1, "name": str(i)} for i in range(num_classes)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _get(prediction, *keys):
    for key in keys:
        if key in prediction:
            return np.asarray(prediction[key])
    raise ConfigError(f"A prediction has no {' or '.join(map(repr, keys))}; got keys {sorted(prediction)}.")


def _detections(records, predictions, num_classes, image_size):
    """Rows of `[image id, x, y, w, h, score, category id]`."""
    rows = []
    for image_id, (record, prediction) in enumerate(zip(records, predictions), 1):
        boxes = _get(prediction, "boxes").astype("float64").reshape(-1, 4)
        scores = _get(prediction, "scores", "confidence").astype("float64").reshape(-1)
        class_ids = _get(prediction, "class_ids", "labels").astype("int64").reshape(-1)
        if not len(boxes) == len(scores) == len(class_ids):
            raise ConfigError(
                f"Prediction {image_id - 1} has {len(boxes)} boxes, {len(scores)} scores and "
                f"{len(class_ids)} class ids; they must match."
            )
        keep = class_ids >= 0
        if (class_ids[keep] >= num_classes).any():
            raise ConfigError(
                f"Prediction {image_id - 1} has class id {class_ids[keep].max()}, but there are "
                f"{num_classes} classes."
            )
        boxes, scores, class_ids = boxes[keep], scores[keep], class_ids[keep]
        if image_size is not None:
            height, width = image_size
            boxes = boxes * np.asarray([record.width / width, record.height / height] * 2)
        for box, score, class_id in zip(boxes, scores, class_ids):
            rows.append([image_id, box[0], box[1], box[2] - box[0], box[3] - box[1], score, class_id + 1])
    return np.asarray(rows, "float64").reshape(-1, 7)


def _evaluate(truth, detections, class_names):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    num_classes = len(class_names)
    has_truth = np.bincount([a["category_id"] - 1 for a in truth["annotations"]], minlength=num_classes) > 0
    if not len(detections):  # pycocotools cannot load an empty result
        per_class = {name: (0.0 if has_truth[i] else None) for i, name in enumerate(class_names)}
        return {"map": 0.0, "map_50": 0.0, "map_75": 0.0, "per_class_ap": per_class}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        ground_truth = COCO()
        ground_truth.dataset = truth
        ground_truth.createIndex()
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(detections), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    # precision: [IoU thresholds, recall points, classes, area ranges, max dets];
    # area "all" and 100 detections, -1 where a class has no ground truth.
    precision = evaluation.eval["precision"][:, :, :, 0, -1]
    per_class = {}
    for i, name in enumerate(class_names):
        values = precision[:, :, i]
        per_class[name] = float(values[values > -1].mean()) if has_truth[i] else None
    stats = evaluation.stats
    return {"map": float(stats[0]), "map_50": float(stats[1]), "map_75": float(stats[2]),
            "per_class_ap": per_class}
