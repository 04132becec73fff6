"""The detector's NMS as a graph the converters carry (issue 15): TensorFlow
ops (`tensorflow_nms`) that keep what the detector's own NMS keeps, converted
by tf2onnx and the LiteRT converter into their own NMS ops, and the
verification that judges a format's detections against the SavedModel's."""

import numpy as np
import pytest

from keras_tl.tasks.object_detector import (batched_nms, box_difference_pixels,
                                            detection_view, detections_of)

SETTINGS = dict(iou_threshold=0.5, confidence_threshold=0.05, max_detections=12)
WIDTH = 64


def _raw(seed=0, batch=3, anchors=300, classes=3):
    """Pre-NMS outputs: boxes inside a 64 px image, crowded so that NMS
    suppresses, scores spread (no ties)."""
    rng = np.random.default_rng(seed)
    corner = rng.uniform(0, 48, (batch, anchors, 2))
    size = rng.uniform(4, 16, (batch, anchors, 2))
    boxes = np.concatenate([corner, np.minimum(corner + size, WIDTH)], -1).astype("float32")
    scores = rng.uniform(0, 0.5, (batch, anchors, classes)).astype("float32")
    return boxes, scores


def _tensorflow():
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the converted graphs are TensorFlow graphs")
    import tensorflow as tf

    return tf


def _nms_function():
    tf = _tensorflow()
    from keras_tl.tasks.object_detector import tensorflow_nms

    @tf.function(input_signature=[tf.TensorSpec([None, None, 4], tf.float32, name="anchor_boxes"),
                                  tf.TensorSpec([None, None, 3], tf.float32,
                                                name="anchor_scores")])
    def nms(boxes, scores):
        return tensorflow_nms(boxes, scores, image_width=WIDTH, **SETTINGS)

    return nms


def _assert_same(got, expected):
    for key in ("class_ids", "num_detections"):
        np.testing.assert_array_equal(np.asarray(got[key]), expected[key], err_msg=key)
    for key in ("boxes", "scores"):
        np.testing.assert_allclose(np.asarray(got[key]), expected[key], atol=1e-6, err_msg=key)


def test_tensorflow_nms_keeps_what_the_detectors_nms_keeps_image_by_image():
    """A batch in one NMS call: each image's detections are those of the
    NumPy twin of the detector's NMS on that image alone, cut at
    max_detections (12 here, fewer than the boxes NMS keeps)."""
    nms = _nms_function()
    boxes, scores = _raw()
    expected = batched_nms(boxes, scores, **SETTINGS)
    assert expected["num_detections"].tolist() == [12, 12, 12]
    _assert_same({k: v.numpy() for k, v in nms(boxes, scores).items()}, expected)
    # fewer candidates than max_detections: padded with -1
    low = np.where(scores > 0.497, scores, 0.0).astype("float32")
    expected = batched_nms(boxes, low, **SETTINGS)
    assert 0 < expected["num_detections"].min() < 12
    _assert_same({k: v.numpy() for k, v in nms(boxes, low).items()}, expected)
    # a batch of one, and images with no candidate at all
    _assert_same({k: v.numpy() for k, v in nms(boxes[:1], scores[:1]).items()},
                 batched_nms(boxes[:1], scores[:1], **SETTINGS))
    none = {k: v.numpy() for k, v in nms(boxes, scores * 0.01).items()}
    assert none["num_detections"].tolist() == [0, 0, 0] and (none["class_ids"] == -1).all()


def test_onnx_and_litert_carry_the_nms_as_their_own_ops(tmp_path):
    """tf2onnx and the LiteRT converter turn the NMS into ONNX
    NonMaxSuppression and LiteRT NON_MAX_SUPPRESSION_V4 (no loop, no
    TensorFlow op left), and both runtimes keep what the detector keeps,
    for any batch size."""
    import onnx
    import onnxruntime
    from ai_edge_litert.interpreter import Interpreter

    from keras_tl.exporters.litert import SIGNATURE, convert_litert, write_function_signature
    from keras_tl.exporters.onnx import export_onnx_function

    nms = _nms_function()
    path = export_onnx_function(nms, str(tmp_path / "nms.onnx"))
    ops = {node.op_type for node in onnx.load(path).graph.node}
    assert "NonMaxSuppression" in ops and "Loop" not in ops, ops
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    files = convert_litert(write_function_signature(nms, str(tmp_path / "sm")), str(tmp_path))
    interpreter = Interpreter(model_path=files["litert_float32"])
    litert_ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "NON_MAX_SUPPRESSION_V4" in litert_ops and "WHILE" not in litert_ops, litert_ops
    runner = interpreter.get_signature_runner(SIGNATURE)
    for seed, batch in ((1, 3), (2, 1), (3, 5)):
        boxes, scores = _raw(seed, batch)
        expected = batched_nms(boxes, scores, **SETTINGS)
        names = [o.name for o in session.get_outputs()]
        _assert_same(dict(zip(names, session.run(None, {"anchor_boxes": boxes,
                                                             "anchor_scores": scores}))),
                     expected)
        _assert_same(runner(anchor_boxes=boxes, anchor_scores=scores), expected)


INFO = {"input_size": [64, 64], "nms": dict(SETTINGS, confidence_threshold=0.05)}


def _detections(boxes, scores, ids):
    return {"boxes": np.asarray([boxes], "float32"), "scores": np.asarray([scores], "float32"),
            "class_ids": np.asarray([ids]), "num_detections": np.asarray([len(ids)])}


def test_detections_are_judged_as_sets_with_the_box_difference_in_pixels():
    from keras_tl.errors import ExportVerificationError
    from keras_tl.exporters.base import check_tolerance, compare

    reference = _detections([[0, 0, 32, 32], [8, 8, 16, 16], [40, 40, 60, 60]],
                            [0.9, 0.9, 0.35], [0, 1, 2])
    # the same detections, a tie in the other order, boxes off by 0.002 px
    got = _detections([[8, 8, 16, 16], [0, 0, 32.002, 32], [40, 40, 60, 60]],
                      [0.9, 0.9, 0.35], [1, 0, 2])
    report = compare(*detection_view(got, reference, INFO))
    check_tolerance({"onnx": report}, 1e-4)
    assert box_difference_pixels(got, reference, INFO) == pytest.approx(0.002, abs=1e-5)
    # a detection missing (not a near-tie): refused
    missing = _detections([[0, 0, 32, 32], [8, 8, 16, 16]], [0.9, 0.9], [0, 1])
    report = compare(*detection_view(missing, reference, INFO))
    with pytest.raises(ExportVerificationError, match="differ from the Keras model"):
        check_tolerance({"onnx": report}, 1e-4)
    # a detection at the report's score floor, kept on one side only by a last bit: left out
    edge = _detections([[0, 0, 32, 32], [8, 8, 16, 16], [40, 40, 60, 60]],
                       [0.9, 0.9, 0.30003], [0, 1, 2])
    got_edge = _detections([[0, 0, 32, 32], [8, 8, 16, 16]], [0.9, 0.9], [0, 1])
    check_tolerance({"onnx": compare(*detection_view(got_edge, edge, INFO))}, 1e-4)
    # another class at the same place: refused
    wrong = _detections([[0, 0, 32, 32], [8, 8, 16, 16], [40, 40, 60, 60]],
                        [0.9, 0.9, 0.35], [0, 1, 0])
    with pytest.raises(ExportVerificationError, match="differ from the Keras model"):
        check_tolerance({"onnx": compare(*detection_view(wrong, reference, INFO))}, 1e-4)


@pytest.mark.core
def test_detections_of_takes_raw_anchors_and_detections_alike():
    boxes, scores = _raw()
    found = batched_nms(boxes, scores, **SETTINGS)
    for outputs in ({"boxes": boxes, "scores": scores}, found,
                    {"boxes": found["boxes"], "confidence": found["scores"],
                     "labels": found["class_ids"], "num_detections": found["num_detections"]}):
        _assert_same(detections_of(outputs, INFO), found)
