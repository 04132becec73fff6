"""A detector's ONNX and LiteRT exports: its detections, NMS inside (the
converters' own NMS op), verified against the SavedModel's; the pre-NMS form
(`converted="raw_anchors"`: `boxes` and `scores` of every anchor) verified
against the Keras model; and `keras-tl predict` giving the SavedModel's
detections from every format, without TensorFlow."""

import glob
import json
import os

import numpy as np
import pytest

import keras_tl
from tests.helpers import voc_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SIZE = 64
# A few head steps leave every anchor's score near the 1 % prior (0.01 to
# 0.035 here): the detector's NMS threshold is lowered to this so that
# the formats are compared on detections, not on empty lists.
CONFIDENCE = 0.02


@pytest.fixture(scope="module")
def detector_export(tmp_path_factory):
    import keras

    root = tmp_path_factory.mktemp("detection_export")
    folder = voc_folder(root / "voc")
    keras.utils.set_random_seed(0)
    result = keras_tl.finetune(
        folder, "mobilenet_v2", weights=None, image_size=SIZE, batch_size=4,
        stages=[keras_tl.Stage("head", epochs=3, learning_rate=1e-3)], verbose=0,
        output_dir=str(root / "run"))
    result.model.prediction_decoder.confidence_threshold = CONFIDENCE
    result.model.make_predict_function(force=True)  # predict traced with the old threshold
    exported = keras_tl.export(result, str(root / "saved_models" / "det"))
    return result, exported


@pytest.fixture(scope="module")
def photos():
    """Four real photos (the demo set's 128 px test images: twice the
    model's size, so boxes are mapped back to the image as given)."""
    from keras_tl.datasets.detection_demo import detection_demo_path

    return sorted(glob.glob(os.path.join(detection_demo_path("test"), "images", "*")))[:4]


def _outputs(path, images):
    from keras_tl.exporters.predict import load_export

    return load_export(path).outputs(images)


@pytest.mark.slow  # the fixture trains and exports: about 2 minutes
def test_onnx_and_litert_hold_the_detections_with_nms(detector_export, photos):
    from keras_tl.tasks.object_detector import detection_agreement

    result, exported = detector_export
    files = exported.files
    assert {"saved_model", "onnx", "litert_float32", "litert_int8"} <= set(files)
    described = exported.metadata["formats"]
    for fmt in ("onnx", "litert"):
        assert described[fmt]["inputs"] == {
            "images": {"dtype": "float32", "shape": [None, SIZE, SIZE, 3]}}, fmt
        assert described[fmt]["outputs"] == {
            "boxes": {"dtype": "float32", "shape": [None, 100, 4]},
            "scores": {"dtype": "float32", "shape": [None, 100]},
            "class_ids": {"dtype": "int64", "shape": [None, 100]},
            "num_detections": {"dtype": "int32", "shape": [None]}}, fmt
    # the NMS settings in the graphs come from the detector itself
    info = exported.metadata["info"]
    assert info["nms"] == {
        "iou_threshold": 0.5, "confidence_threshold": CONFIDENCE, "max_detections": 100}
    assert "converted" not in info
    # verified before the version appeared, on the run's validation images
    verification = exported.verification
    assert verification["inputs"] == len(result.verification_sample)
    for key in ("onnx", "litert_float32"):
        report = verification[key]
        assert report["enforced"] and not report.get("error"), (key, report)
        assert report["box_max_abs_diff_pixels"] <= 1e-4 * SIZE, (key, report)
        assert report["all_detections_agreement"] >= 0.9, (key, report)
    assert not verification["litert_int8"]["enforced"]

    # and on real photos: the SavedModel's detections (this detector's scores
    # crowd near its prior: near-ties may reorder a few of the tail)
    task = result.task_contract
    images = task.prepare_inputs(photos, result.info)
    reference = _outputs(exported.path, images)
    assert reference["num_detections"].sum() >= 10  # detections to compare, not empty lists
    for path in (files["onnx"], files["litert_float32"]):
        got = _outputs(path, images)
        assert detection_agreement(got, reference, info, min_score=0.0) >= 0.9, path


CLASSES = ["a", "b", "c"]


def _random_head_detector(num_classes, kernel_std, count):
    """A tiny detector whose head kernels are drawn from N(0, kernel_std) and
    class biases from N(-3, 1.5), so its scores spread with the image; and
    `count` random images for it (seeded: the same every call)."""
    import keras

    from keras_tl.models.retinanet import build_detector

    keras.utils.set_random_seed(0)
    loaded = keras_tl.load_backbone("mobilenet_v2", weights=None, image_size=SIZE)
    detector = build_detector(loaded, num_classes=num_classes, head_conv_layers=1)
    rng = np.random.default_rng(0)
    for head in (detector.classification_head, detector.box_head):
        for conv in list(head.conv_layers) + [head.prediction_layer]:
            conv.kernel.assign(rng.normal(0, kernel_std, tuple(conv.kernel.shape)).astype("float32"))
    bias = detector.classification_head.prediction_layer.bias
    bias.assign(rng.normal(-3, 1.5, tuple(bias.shape)).astype("float32"))
    return detector, rng.integers(0, 256, (count, SIZE, SIZE, 3)).astype("float32")


@pytest.fixture(scope="module")
def spread_exports(tmp_path_factory):
    """A tiny detector whose heads are drawn at random so that its scores
    spread with the image (no crowd of near-equal scores), exported twice:
    with NMS in every format (the default) and as raw anchors."""
    import types

    detector, images = _random_head_detector(len(CLASSES), kernel_std=0.3, count=4)
    run = types.SimpleNamespace(
        model=detector, class_names=CLASSES, verification_sample=images,
        info={"task": "object_detection", "input_size": [SIZE, SIZE], "max_detections": 100})
    root = tmp_path_factory.mktemp("spread")
    with_nms = keras_tl.export(run, str(root / "nms"))
    raw = keras_tl.export(run, str(root / "raw"), formats=["onnx", "litert"],
                          converted="raw_anchors")
    return types.SimpleNamespace(detector=detector, images=images, with_nms=with_nms, raw=raw,
                                 root=root, run=run)


def _same_predictions(got, expected, name):
    for have, want in zip(got, expected):
        assert [d["class_name"] for d in have] == [d["class_name"] for d in want], name
        np.testing.assert_allclose([d["score"] for d in have], [d["score"] for d in want],
                                   atol=2e-4, err_msg=name)
        np.testing.assert_allclose(np.reshape([d["box"] for d in have], (-1, 4)),
                                   np.reshape([d["box"] for d in want], (-1, 4)),
                                   atol=0.11, err_msg=name)


@pytest.mark.slow  # two exports of a detector: about 3 minutes
def test_onnx_and_litert_detections_are_the_saved_models(spread_exports, photos):
    """Every detection of the SavedModel (keras_hub's NMS) and none other,
    from ONNX and LiteRT (the converters' NMS), on the verification images
    and through `keras-tl predict` on photos, the latter without TensorFlow;
    the box difference in pixels is in the verification record."""
    from tests.test_predict_without_tensorflow import _predict_in_a_fresh_process

    exported = spread_exports.with_nms
    verification = exported.verification
    for key in ("onnx", "litert_float32"):
        report = verification[key]
        assert report["enforced"] and report["agreement"] == 1.0, (key, report)
        assert set(report["outputs"]) == {"boxes", "scores", "class_ids"}, key
        assert report["all_detections_agreement"] == 1.0, (key, report)
        assert report["box_max_abs_diff_pixels"] <= 1e-3, (key, report)
    # the int8 file is judged by the detection gate on its detections
    gate = exported.metadata["formats"]["litert_int8"]
    assert gate["metric"] == "detection_agreement" and gate["written"] == (
        "litert_int8" in exported.files), gate
    assert gate["detection_agreement"] >= 0.9 or not gate["written"]

    reference = _outputs(exported.path, spread_exports.images)
    assert reference["num_detections"].min() >= 20  # detections to compare
    for name in ("model.onnx", "model_float32.tflite"):
        got = _outputs(os.path.join(exported.path, name), spread_exports.images)
        np.testing.assert_array_equal(got["num_detections"], reference["num_detections"])
        np.testing.assert_array_equal(got["class_ids"], reference["class_ids"])
        np.testing.assert_allclose(got["boxes"], reference["boxes"], atol=1e-3)
        np.testing.assert_allclose(got["scores"], reference["scores"], atol=1e-5)

    from keras_tl.exporters.predict import load_export

    expected = load_export(exported.path).predict(photos)
    assert sum(len(found) for found in expected) >= 20
    for name in ("model.onnx", "model_float32.tflite"):
        source = os.path.join(exported.path, name)
        _same_predictions(load_export(source).predict(photos), expected, name)
        lines, last = _predict_in_a_fresh_process(source, *photos)
        assert last == "0 []", (source, last)  # neither TensorFlow nor Keras imported
        for line, found in zip(lines, expected):
            printed = json.loads(line.partition(": ")[2])
            assert [d["class_name"] for d in printed] == [d["class_name"] for d in found], name


@pytest.mark.slow  # two exports of a detector: about 3 minutes
def test_raw_anchors_stay_available_and_predict_applies_the_nms(spread_exports, photos):
    from keras_tl.errors import ConfigError
    from keras_tl.exporters.predict import load_export
    from keras_tl.models.retinanet import raw_detection_model

    raw = spread_exports.raw
    assert raw.metadata["info"]["converted"] == "raw_anchors"
    anchors = raw_detection_model(spread_exports.detector).output["boxes"].shape[1]
    for fmt in ("onnx", "litert"):
        assert raw.metadata["formats"][fmt]["outputs"] == {
            "boxes": {"dtype": "float32", "shape": [None, anchors, 4]},
            "scores": {"dtype": "float32", "shape": [None, anchors, len(CLASSES)]}}, fmt
    for key in ("onnx", "litert_float32"):
        report = raw.verification[key]
        assert report["enforced"] and set(report["outputs"]) == {"boxes", "scores"}, key
        assert report["max_abs_diff"] <= 1e-4, (key, report)
    expected = load_export(spread_exports.with_nms.path).predict(photos)
    for name in ("model.onnx", "model_float32.tflite"):
        _same_predictions(load_export(os.path.join(raw.path, name)).predict(photos), expected,
                          name)
    with pytest.raises(ConfigError, match="raw_anchors; not 'anchors'"):
        keras_tl.export(spread_exports.run, str(spread_exports.root / "refused"),
                        converted="anchors")


def _cli_predictions(path, photos, capsys):
    from keras_tl.cli import main

    capsys.readouterr()
    main(["predict", path] + list(photos))
    lines = capsys.readouterr().out.strip().splitlines()
    found = {}
    for line in lines:
        given, _, text = line.partition(": ")
        found[given] = json.loads(text)
    assert list(found) == list(photos), lines
    return found


@pytest.mark.slow  # the fixture trains and exports: about 2 minutes
def test_keras_tl_predict_gives_the_saved_models_detections_from_every_format(
        detector_export, photos, capsys):
    result, exported = detector_export
    version = exported.path
    expected = _cli_predictions(version, photos, capsys)
    assert sum(len(found) for found in expected.values()) >= 3
    # the SavedModel's detections are the Keras model's
    keras_predictions = result.predict(list(photos))
    for photo, keras_found in zip(photos, keras_predictions):
        assert [d["class_name"] for d in keras_found] == \
            [d["class_name"] for d in expected[photo]]
    for name in ("model.onnx", "model_float32.tflite"):
        got = _cli_predictions(os.path.join(version, name), photos, capsys)
        for photo in photos:
            want, have = expected[photo], got[photo]
            assert [d["class_name"] for d in have] == [d["class_name"] for d in want], \
                (name, photo)
            np.testing.assert_allclose([d["score"] for d in have],
                                       [d["score"] for d in want], atol=2e-4)
            # printed to 0.1 px at the photo's own 128 px (the model saw 64)
            np.testing.assert_allclose(np.reshape([d["box"] for d in have], (-1, 4)),
                                       np.reshape([d["box"] for d in want], (-1, 4)),
                                       atol=0.11, err_msg=f"{name} {photo}")
    boxes = np.concatenate([np.reshape([d["box"] for d in found], (-1, 4))
                            for found in expected.values()])
    assert boxes.max() > SIZE  # in pixels of the 128 px photos, not of the model's input


@pytest.mark.slow  # the fixture trains and exports: about 2 minutes
def test_serving_doc_onnx_snippet_prints_keras_tl_predicts_detections(
        detector_export, photos, tmp_path):
    """docs/serving.md's ONNX Runtime + NumPy snippet, as written, on a photo
    at the model's size (no resize, so the same pixels as keras_tl's)."""
    import re
    import subprocess
    import sys

    from PIL import Image

    from keras_tl.exporters.predict import predict

    result, exported = detector_export
    with open(os.path.join(ROOT, "docs", "serving.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index("## Object detectors")
    section = text[start:text.index("\n## ", start + 1)]
    (code,) = [block for block in re.findall(r"```python\n(.*?)```", section, flags=re.S)
               if "onnxruntime" in block]
    photo = str(tmp_path / "photo.png")
    Image.open(photos[0]).convert("RGB").resize((SIZE, SIZE)).save(photo)
    code = code.replace("saved_models/detector/1", exported.path).replace("street.jpg", photo)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=""), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = [line.split(" ", 2) for line in done.stdout.strip().splitlines()]
    (expected,) = predict(exported.path, [photo])
    assert len(expected) >= 3 and len(printed) == len(expected)
    for (name, score, box), want in zip(printed, expected):
        assert name == want["class_name"]
        assert abs(float(score) - want["score"]) <= 2e-4
        np.testing.assert_allclose(json.loads(box), want["box"], atol=0.11)


@pytest.mark.core
def test_nms_in_numpy_is_the_detectors_own():
    """On the same pre-NMS outputs (a tiny detector's, its heads drawn at
    random so that its scores spread), `non_max_suppression` takes exactly
    the anchors the detector's own NMS layer (keras_hub's) takes."""
    import keras

    from keras_tl.models.retinanet import ClippedNonMaxSuppression, raw_detection_model
    from keras_tl.tasks.object_detector import non_max_suppression

    detector, images = _random_head_detector(3, kernel_std=0.1, count=3)
    raw = raw_detection_model(detector).predict(images, verbose=0)
    # anchors of one shape at one place can score alike here; equal scores
    # are ordered by anchor in TensorFlow's kernel but not in keras_hub's
    # NMS (JAX, PyTorch), so ties are broken before both see them
    anchors = raw["scores"].shape[1]
    raw["scores"] = raw["scores"] + (np.arange(anchors) * 1e-7)[None, :, None].astype("float32")
    settings = dict(iou_threshold=0.5, confidence_threshold=0.05, max_detections=20)
    found = ClippedNonMaxSuppression(from_logits=False, **settings)(
        raw["boxes"], raw["scores"], images=images)
    for b in range(len(images)):
        taken = non_max_suppression(raw["boxes"][b], raw["scores"][b], **settings)
        count = int(found["num_detections"][b])
        assert count == len(taken) and count > 5
        np.testing.assert_array_equal(np.asarray(found["boxes"])[b, :count],
                                      raw["boxes"][b][taken])
        np.testing.assert_array_equal(np.asarray(found["labels"])[b, :count],
                                      raw["scores"][b][taken].argmax(-1))


def test_the_detectors_nms_in_a_tensorflow_graph_keeps_what_greedy_nms_keeps():
    """100 disjoint boxes, best first: greedy NMS keeps all of them."""
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the SavedModel's NMS runs in a TensorFlow graph")
    import tensorflow as tf

    from keras_tl.models.retinanet import ClippedNonMaxSuppression
    from keras_tl.tasks.object_detector import non_max_suppression

    corners = np.stack(np.meshgrid(np.arange(10) * 20.0, np.arange(10) * 20.0), -1).reshape(-1, 2)
    boxes = np.concatenate([corners, corners + 10], -1).astype("float32")[None]  # [1, 100, 4]
    scores = np.linspace(0.9, 0.1, 100, dtype="float32")[None, :, None]
    settings = dict(iou_threshold=0.5, confidence_threshold=0.05, max_detections=100)
    assert len(non_max_suppression(boxes[0], scores[0], **settings)) == 100
    layer = ClippedNonMaxSuppression(from_logits=False, **settings)
    images = np.zeros((1, 200, 200, 3), "float32")
    found = tf.function(lambda b, s: layer(b, s, images=images))(boxes, scores)
    assert int(found["num_detections"][0]) == 100
