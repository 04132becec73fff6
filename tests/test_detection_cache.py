"""The detector's head stage on cached pyramid features (the frozen
backbone's P3-P5 maps computed once, the anchor targets encoded once): the
same steps as on the backbone, then fine-tuning and export from the same
detector."""

import logging

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.models.retinanet import (build_detector, detector_backbone, encode_targets,
                                       split_detector)
from tests.helpers import tiny_pyramid_backbone, voc_folder
from tests.test_detector_model import squares


def _weights(model):
    return [np.array(w) for w in model.trainable_weights]


@pytest.mark.core
def test_a_step_on_cached_pyramid_features_is_the_detectors_own_step():
    keras.utils.set_random_seed(0)
    detector = build_detector(keras_tl.load_backbone(tiny_pyramid_backbone()), num_classes=2,
                              head_conv_layers=1, anchor_size=2.0)
    detector_backbone(detector).trainable = False
    images, boxes, labels = squares(8)
    targets = {"boxes": boxes, "labels": labels}
    features, head = split_detector(detector)
    start = [np.array(w) for w in detector.weights]
    trainable_start = _weights(detector)

    def one_step(model, x, y):
        for weight, value in zip(detector.weights, start):
            weight.assign(value)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
        return history, _weights(detector)

    full, after_full = one_step(detector, images, targets)
    cached, after_cached = one_step(head, features(images),
                                    encode_targets(detector, images, targets))
    assert set(cached) == set(full)  # box and class losses logged under the same names
    for key in full:
        np.testing.assert_allclose(cached[key], full[key], rtol=1e-5)
    # the same update of every trainable weight: pyramid and both heads
    assert len(after_cached) == len(after_full) == len(detector.trainable_weights)
    for a, b in zip(after_cached, after_full):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert max(float(np.abs(a - s).max()) for a, s in zip(after_cached, trainable_start)) > 1e-3


def test_the_cached_head_stage_trains_what_the_backbone_stage_would_then_fine_tunes_and_exports(
        tmp_path, caplog, monkeypatch):
    folder = voc_folder(tmp_path / "voc")
    # one batch an epoch (12 images, batch 16): the same steps whatever the shuffling
    stages = [keras_tl.Stage("head", epochs=2, learning_rate=1e-3),
              keras_tl.Stage("finetune", unfreeze="all", epochs=1, learning_rate=1e-4)]

    def finetune(name, cache_features, stages=stages):
        keras.utils.set_random_seed(0)  # the same random backbone each time
        return keras_tl.finetune(folder, tiny_pyramid_backbone(), weights=None, image_size=64,
                                 batch_size=16, stages=stages, cache_features=cache_features,
                                 verbose=0, output_dir=str(tmp_path / name))

    with caplog.at_level(logging.INFO, logger="keras_tl"):
        cached = finetune("cached", True)
    assert "Stage 'head' trains on cached backbone features" in caplog.text
    plain = finetune("plain", False)
    for stage in ("head", "finetune"):
        for key in ("loss", "val_loss"):
            np.testing.assert_allclose(cached.histories[stage][key], plain.histories[stage][key],
                                       rtol=1e-4, err_msg=f"{stage} {key}")
    np.testing.assert_allclose(cached.metrics["validation"]["map"],
                               plain.metrics["validation"]["map"], atol=1e-3)
    # beyond the memory budget the features go to float16 shards on disk
    monkeypatch.setenv("KERAS_TL_CACHE_MEMORY", "2")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="keras_tl"):
        on_disk = finetune("on_disk", True, stages[:1])
    assert "writing them to" in caplog.text
    np.testing.assert_allclose(on_disk.histories["head"]["val_loss"],
                               cached.histories["head"]["val_loss"], rtol=1e-2)
    report = keras_tl.export(cached, str(tmp_path / "saved_models" / "det"),
                             formats=["saved_model"])
    assert report.verification["saved_model/serving_default"]["max_abs_diff"] < 1e-3
