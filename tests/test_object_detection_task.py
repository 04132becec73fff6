"""Object detection on the task contract: a tiny VOC folder to a served
detector whose boxes are in pixels of the image as given."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import keras_tl
from keras_tl.data.detection import load_detection_data
from tests.helpers import voc_folder


def _best_iou(boxes, anchors):
    """Each `xyxy` box's highest IoU with any anchor."""
    left, top = np.maximum(boxes[:, None, :2], anchors[None, :, :2]).transpose(2, 0, 1)
    right, bottom = np.minimum(boxes[:, None, 2:], anchors[None, :, 2:]).transpose(2, 0, 1)
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    return (inter / (area(boxes)[:, None] + area(anchors)[None, :] - inter)).max(axis=1)


@pytest.fixture(scope="module")
def detector_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("det")
    folder = voc_folder(root / "voc")
    return keras_tl.finetune(
        folder, "mobilenet_v2", weights=None, image_size=64, batch_size=4,
        stages=[keras_tl.Stage("head", epochs=1)], verbose=0, output_dir=str(root / "run")), folder


def test_a_voc_folder_trains_a_detector_with_coco_metrics(detector_run):
    result, folder = detector_run
    assert result.info["task"] == "object_detection"
    assert result.info["annotation_format"] == "voc"
    assert result.class_names == ["blue", "red"]
    validation = result.metrics["validation"]
    assert {"map", "map_50", "map_75", "per_class_ap"} <= set(validation)
    assert set(validation["per_class_ap"]) == {"blue", "red"}
    # anchors chosen from the training boxes: every 24 px square overlaps an
    # anchor of the trained model with IoU >= 0.5 (RetinaNet's positive match)
    levels = result.model.anchor_generator(np.zeros((1, 64, 64, 3), "float32"))
    anchors = np.concatenate([np.asarray(level) for level in levels.values()])
    boxes = np.concatenate([r.boxes for r in load_detection_data(folder).records])
    assert _best_iou(boxes, anchors).min() >= 0.5
    assert result.info["anchor_recall"] == 1.0
    assert os.path.getsize(os.path.join(result.output_dir, "detections.png")) > 0
    # the backbone stayed frozen in the head stage: BN statistics untouched too
    from keras_tl.freezing import get_backbone

    assert not get_backbone(result.model).trainable


def test_predicted_boxes_are_in_pixels_of_the_image_as_given(detector_run, tmp_path):
    from PIL import Image

    result, folder = detector_run
    task = result.task_contract
    # the model's boxes are in its 64x64 input; a 256x128 image is 4x wider and 2x taller
    outputs = {"boxes": np.array([[[8.0, 8.0, 24.0, 40.0]]]), "scores": np.array([[0.9]]),
               "class_ids": np.array([[1]])}
    wide = np.zeros((128, 256, 3), "uint8")
    path = tmp_path / "wide.png"
    Image.fromarray(wide).save(path)
    for given in (wide[None], [str(path)]):
        (found,), = task.postprocess(outputs, result.class_names, inputs=given, info=result.info)
        assert found["class_name"] == "red"
        assert found["box"] == [32.0, 16.0, 96.0, 80.0]
    # every image of a batch gets the whole pipeline: one list of detections each
    assert len(result.predict(np.stack([wide, wide]))) == 2


def test_serving_bytes_returns_the_documented_outputs_in_a_tensorflow_only_process(
        detector_run, tmp_path):
    from PIL import Image

    result, folder = detector_run
    report = keras_tl.export(result, str(tmp_path / "saved_models" / "det"))
    assert report.verification["saved_model/serving_bytes"]["max_abs_diff"] == 0
    source = os.path.join(folder, "JPEGImages", "3.png")
    wide = tmp_path / "wide.png"
    Image.open(source).resize((192, 64)).save(wide)
    code = (
        "import sys, json\n"
        "for name in ('keras', 'keras_tl', 'keras_hub'): sys.modules[name] = None\n"
        "import tensorflow as tf\n"
        f"serve = tf.saved_model.load({report.path!r}).signatures['serving_bytes']\n"
        f"out = serve(image_bytes=tf.constant([open({str(wide)!r}, 'rb').read()]))\n"
        "print(json.dumps({k: [str(v.dtype.name), v.shape.as_list()] for k, v in out.items()}))\n"
        "print(json.dumps(out['boxes'].numpy()[0, :out['num_detections'].numpy()[0]].tolist()))\n"
        "print(json.dumps([n.decode() for n in out['class_names'].numpy()[0]]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    shapes, boxes, names = (json.loads(line) for line in done.stdout.strip().splitlines()[-3:])
    assert shapes == {"boxes": ["float32", [1, 100, 4]], "scores": ["float32", [1, 100]],
                      "class_ids": ["int64", [1, 100]], "class_names": ["string", [1, 100]],
                      "num_detections": ["int32", [1]]}
    expected = result.predict([str(wide)], top=100)[0]
    assert len(boxes) == len(expected)
    np.testing.assert_allclose(np.array(boxes), np.array([e["box"] for e in expected]), atol=0.2)
    assert names[len(boxes):] == [""] * (100 - len(boxes))
