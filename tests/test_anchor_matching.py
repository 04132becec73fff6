"""The detector's anchor matching: keras_hub's (IoU >= 0.5 positive) plus
low-quality matches, each ground-truth box keeping its best anchor(s) as
Detectron2's and torchvision's RetinaNet do, so that no training box goes
without a positive anchor; padding matches nothing, and boxes already
matched keep their matches."""

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.models.retinanet import _anchor_array, build_detector, encode_targets
from tests.helpers import tiny_pyramid_backbone

SIZE = 64
THIN = [10.0, 10.0, 14.0, 60.0]  # 4 x 50 px: no anchor (ratios 1/2..2) reaches IoU 0.5
SQUARE = [30.0, 8.0, 62.0, 40.0]  # 32 x 32 px: some anchor does
PADDING = [-1.0, -1.0, -1.0, -1.0]


@pytest.fixture(scope="module")
def detector():
    return build_detector(keras_tl.load_backbone(tiny_pyramid_backbone(SIZE)), num_classes=3,
                          head_conv_layers=1)


def _encode(detector, boxes, labels, **options):
    targets = {"boxes": np.array([boxes], "float32"), "labels": np.array([labels], "int32")}
    if options:  # the same anchors and thresholds, another matching
        config = detector.label_encoder.get_config()
        config.update(options)
        encoder = type(detector.label_encoder).from_config(config)
        images = np.zeros((1, SIZE, SIZE, 3), "float32")
        deltas, classes = encoder(images=images, gt_boxes=targets["boxes"],
                                  gt_classes=targets["labels"])
        return np.asarray(deltas)[0], np.asarray(classes)[0]
    encoded = encode_targets(detector, np.zeros((1, SIZE, SIZE, 3), "float32"), targets)
    return encoded[0, :, :4], encoded[0, :, 4]


def _anchors(detector):
    return _anchor_array(detector.anchor_generator, (SIZE, SIZE)).astype("float64")


def _iou(box, anchors):
    box = np.asarray(box, "float64")
    width = np.clip(np.minimum(box[2], anchors[:, 2]) - np.maximum(box[0], anchors[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], anchors[:, 3]) - np.maximum(box[1], anchors[:, 1]), 0,
                     None)
    inter = width * height
    areas = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    return inter / ((box[2] - box[0]) * (box[3] - box[1]) + areas - inter)


def _decode(deltas, anchors):
    """`center_xywh` deltas (variance 1) on `xyxy` anchors back to `xyxy` boxes."""
    width, height = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    cx = anchors[:, 0] + width / 2 + deltas[:, 0] * width
    cy = anchors[:, 1] + height / 2 + deltas[:, 1] * height
    w, h = width * np.exp(deltas[:, 2]), height * np.exp(deltas[:, 3])
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def test_a_box_no_anchor_reaches_gets_exactly_its_best_anchors_with_its_class_and_box(detector):
    anchors = _anchors(detector)
    iou = _iou(THIN, anchors)
    assert iou.max() < detector.label_encoder.positive_threshold  # no ordinary match
    best = set(np.flatnonzero(iou >= iou.max() - 1e-6).tolist())
    deltas, classes = _encode(detector, [THIN, PADDING], [2, -1])
    assert set(np.flatnonzero(classes == 2).tolist()) == best
    assert set(np.flatnonzero(classes >= 0).tolist()) == best  # nothing else positive
    positive = sorted(best)
    np.testing.assert_allclose(_decode(deltas[positive], anchors[positive]),
                               np.tile(THIN, (len(positive), 1)), atol=1e-3)
    assert np.isfinite(deltas).all()


def test_the_default_detector_matches_low_quality_and_keras_hubs_matching_does_not(detector):
    _, classes = _encode(detector, [THIN, PADDING], [2, -1], low_quality_matches=False)
    assert not (classes >= 0).any()  # keras_hub's matching leaves the box without an anchor
    assert detector.label_encoder.get_config()["low_quality_matches"] is True


def test_padding_boxes_stay_unmatched(detector):
    deltas, classes = _encode(detector, [PADDING, PADDING], [-1, -1])
    assert set(classes.tolist()) == {-1.0}  # all background: nothing positive or ignored
    assert np.isfinite(deltas).all()
    # beside a real box, every positive is that box's
    deltas, classes = _encode(detector, [PADDING, THIN, PADDING], [-1, 1, -1])
    assert set(classes[classes >= 0].tolist()) == {1.0}
    assert np.isfinite(deltas).all()


def test_boxes_already_matched_keep_their_matches(detector):
    anchors = _anchors(detector)
    assert _iou(SQUARE, anchors).max() >= detector.label_encoder.positive_threshold
    before = _encode(detector, [SQUARE, THIN, PADDING], [0, 2, -1], low_quality_matches=False)
    after = _encode(detector, [SQUARE, THIN, PADDING], [0, 2, -1])
    square = before[1] == 0
    assert square.any() and not (before[1] == 2).any()
    np.testing.assert_array_equal(after[1] == 0, square)  # the same anchors, the same class
    np.testing.assert_allclose(after[0][square], before[0][square], atol=1e-6)
    np.testing.assert_allclose(_decode(after[0][square], anchors[square]),
                               np.tile(SQUARE, (int(square.sum()), 1)), atol=1e-3)
    assert (after[1] == 2).any()  # and the thin box got its own


def test_an_anchor_positive_for_one_box_stays_its_own_when_it_is_anothers_best():
    from keras_tl.models.retinanet import low_quality_matches

    # anchor 1 is box 0's best (0.45) but box 1's positive (0.7); anchor 2 is box 0's next best
    iou = np.array([[[0.1, 0.0], [0.45, 0.7], [0.3, 0.0]]], "float32")
    matched, positive = low_quality_matches(iou, np.array([[True, True]]),
                                            np.array([[0, 1, 0]]),
                                            np.array([[False, True, False]]))
    assert np.asarray(matched).tolist() == [[0, 1, 0]]
    assert np.asarray(positive).tolist() == [[False, True, False]]
    # two boxes whose best anchor is the same one: it goes to the one it overlaps most
    iou = np.array([[[0.3, 0.2], [0.1, 0.0]]], "float32")
    matched, positive = low_quality_matches(iou, np.array([[True, True]]), np.array([[0, 0]]),
                                            np.array([[False, False]]))
    assert np.asarray(matched).tolist()[0][0] == 0 and np.asarray(positive).tolist() == [
        [True, False]]


@pytest.mark.core
def test_the_training_step_trains_on_low_quality_matches(detector):
    keras.utils.set_random_seed(0)
    images = np.full((2, SIZE, SIZE, 3), 128, "float32")
    targets = {"boxes": np.array([[THIN, PADDING], [PADDING, PADDING]], "float32"),
               "labels": np.array([[2, -1], [-1, -1]], "int32")}
    detector.compile(optimizer=keras.optimizers.Adam(1e-4))
    history = detector.fit(images, targets, batch_size=2, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    # the thin box is positive: a box loss (keras_hub's matching alone gives 0 here)
    assert history["bbox_regression_loss"][0] > 0
