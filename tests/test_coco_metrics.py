"""COCO detection metrics against cases computed by hand."""

import numpy as np
import pytest

from keras_tl.data.detection import DetectionRecord
from keras_tl.errors import ConfigError, DataError
from keras_tl.evaluation import coco_metrics, split_batched_predictions

pytest.importorskip("pycocotools")

NAMES = ["cat", "dog"]


def test_hand_checked_average_precision():
    # One 100x100 image, two cats. Three cat predictions, by score:
    #   0.9  [0, 0, 10, 8.8]    IoU 88/100 = 0.88 with cat 1
    #   0.8  [40, 40, 50, 50]   overlaps nothing: a false positive
    #   0.7  [20, 20, 30, 27.2] IoU 72/100 = 0.72 with cat 2
    # (IoUs chosen off COCO's thresholds .50, .55, ..., .95.)
    #
    # Thresholds .50-.70 (5 of 10): TP, FP, TP -> precision 1, 1/2, 2/3 at
    # recall 1/2, 1/2, 1. COCO takes the best precision at recall >= r on
    # 101 points r = 0, .01, ..., 1: the 51 points r <= .5 get 1, the 50
    # points above get 2/3, so AP = (51 + 50 * 2/3) / 101 = 253/303.
    # Thresholds .75-.85 (3): TP, FP, FP -> recall stops at 1/2: the 51
    # points r <= .5 get 1, the rest 0, so AP = 51/101 = 153/303.
    # Thresholds .90, .95 (2): no match, AP = 0.
    # mAP@[.5:.95] = (5 * 253/303 + 3 * 153/303) / 10 = 1724/3030.
    truth = [DetectionRecord("a.jpg", 100, 100, [[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0])]
    prediction = {
        "boxes": [[0, 0, 10, 8.8], [40, 40, 50, 50], [20, 20, 30, 27.2]],
        "scores": [0.9, 0.8, 0.7],
        "class_ids": [0, 0, 0],
    }
    metrics = coco_metrics(truth, [prediction], NAMES)
    assert metrics["map_50"] == pytest.approx(253 / 303, abs=1e-9)
    assert metrics["map_75"] == pytest.approx(153 / 303, abs=1e-9)
    assert metrics["map"] == pytest.approx(1724 / 3030, abs=1e-9)
    assert metrics["per_class_ap"] == {"cat": pytest.approx(1724 / 3030, abs=1e-9), "dog": None}


def _truth():
    return [
        DetectionRecord("a.jpg", 64, 48, [[4, 6, 20, 30], [32, 0, 64, 48]], [0, 1]),
        DetectionRecord("b.jpg", 32, 32, [[2, 4, 30, 16]], [1]),
        DetectionRecord("c.jpg", 64, 64, np.zeros((0, 4)), []),  # a negative
    ]


def _perfect(records, scale=(1.0, 1.0)):
    return [
        {"boxes": r.boxes * np.asarray(scale * 2, "float32"), "scores": np.linspace(0.9, 0.8, r.num_objects),
         "class_ids": r.class_ids}
        for r in records
    ]


def test_perfect_predictions_score_one_and_no_predictions_zero():
    truth = _truth()
    metrics = coco_metrics(truth, _perfect(truth), NAMES)
    assert metrics["map"] == metrics["map_50"] == metrics["map_75"] == pytest.approx(1.0)
    assert metrics["per_class_ap"] == {"cat": pytest.approx(1.0), "dog": pytest.approx(1.0)}

    empty = [{"boxes": np.zeros((0, 4)), "scores": [], "class_ids": []}] * 3
    metrics = coco_metrics(truth, empty, NAMES)
    assert metrics == {"map": 0.0, "map_50": 0.0, "map_75": 0.0, "per_class_ap": {"cat": 0.0, "dog": 0.0}}


def test_a_confident_false_positive_on_the_negative_image_costs_precision():
    truth = _truth()
    predictions = _perfect(truth)
    predictions[2] = {"boxes": [[0, 0, 10, 10]], "scores": [0.95], "class_ids": [0]}
    # cat: FP (0.95) then its one TP -> precision 1/2 at every recall: AP 0.5
    metrics = coco_metrics(truth, predictions, NAMES)
    assert metrics["per_class_ap"]["cat"] == pytest.approx(0.5)
    assert metrics["per_class_ap"]["dog"] == pytest.approx(1.0)
    assert metrics["map"] == pytest.approx(0.75)


def test_batched_keras_hub_output_at_the_model_size_is_scaled_back():
    truth = _truth()
    # the model saw 32x32 images: boxes of a.jpg (64x48) are x/2, y*2/3
    per_image = [_perfect([r], (32 / r.width, 32 / r.height))[0] for r in truth]
    batched = {
        "boxes": np.full((3, 4, 4), -1.0), "confidence": np.full((3, 4), -1.0),
        "labels": np.full((3, 4), -1), "num_detections": np.asarray([2, 1, 0]),
    }
    for i, p in enumerate(per_image):
        n = len(p["class_ids"])
        batched["boxes"][i, :n], batched["confidence"][i, :n], batched["labels"][i, :n] = (
            p["boxes"], p["scores"], p["class_ids"])
    assert [len(p["boxes"]) for p in split_batched_predictions(batched)] == [2, 1, 0]
    metrics = coco_metrics(truth, batched, NAMES, image_size=(32, 32))
    assert metrics["map"] == pytest.approx(1.0)
    unscaled = coco_metrics(truth, batched, NAMES)
    assert unscaled["map"] < 0.5


def test_inconsistent_inputs_are_refused():
    truth = _truth()
    with pytest.raises(ConfigError, match="Got 2 predictions for 3 images"):
        coco_metrics(truth, _perfect(truth)[:2], NAMES)
    bad = _perfect(truth)
    bad[1]["class_ids"] = np.asarray([5])
    with pytest.raises(ConfigError, match="class id 5"):
        coco_metrics(truth, bad, NAMES)
    with pytest.raises(DataError, match="not in 0..0"):
        coco_metrics(truth, _perfect(truth), ["cat"])
    nothing = [DetectionRecord("c.jpg", 8, 8, np.zeros((0, 4)), [])]
    with pytest.raises(DataError, match="holds no boxes"):
        coco_metrics(nothing, [{"boxes": [], "scores": [], "class_ids": []}], NAMES)
