"""The RetinaNet detector on keras_tl backbones: builds, trains, predicts,
saves and reloads."""

import numpy as np
import pytest

import keras_tl
from keras_tl.errors import BackboneError, ConfigError
from tests.helpers import tiny_pyramid_backbone

SIZE = 64


def squares(count=8, seed=0):
    """Grey images with one or two filled squares: bright = class 0, dark = class 1."""
    rng = np.random.default_rng(seed)
    images = np.full((count, SIZE, SIZE, 3), 128, "float32")
    boxes = np.full((count, 2, 4), -1, "float32")
    labels = np.full((count, 2), -1, "int32")
    for i in range(count):
        for j in range(1 + i % 2):
            side = int(rng.integers(16, 28))
            x0 = int(rng.integers(0, SIZE - side)) if j == 0 else 0
            y0 = int(rng.integers(0, SIZE // 2 - side // 2)) if j == 0 else SIZE - side
            cls = int(rng.integers(2))
            images[i, y0:y0 + side, x0:x0 + side] = 240 if cls == 0 else 20
            boxes[i, j] = [x0, y0, x0 + side, y0 + side]
            labels[i, j] = cls
    return images, boxes, labels


def _build(**kwargs):
    from keras_tl.models.retinanet import build_detector

    loaded = keras_tl.load_backbone(tiny_pyramid_backbone())
    kwargs.setdefault("head_conv_layers", 1)
    kwargs.setdefault("anchor_size", 2.0)
    return loaded, build_detector(loaded, num_classes=2, **kwargs)


def test_pyramid_layers_are_found_by_output_stride():
    from keras_tl.models.retinanet import pyramid_layer_names

    assert pyramid_layer_names(tiny_pyramid_backbone()) == {
        "P3": "block3_relu", "P4": "block4_relu", "P5": "block5_relu"}


def test_pyramid_layers_of_the_default_backbone_skip_its_padding():
    from keras_tl.models.retinanet import pyramid_layer_names

    # padding layers (a few pixels larger) are skipped; TensorFlow only: a
    # random MobileNetV2 takes a minute to initialise under JAX
    loaded = keras_tl.load_backbone("mobilenet_v2_torch", weights=None, image_size=SIZE)
    assert pyramid_layer_names(loaded.model) == {
        "P3": "block_6_expand_relu", "P4": "block_13_expand_relu", "P5": "out_relu"}


def test_backbones_without_a_pyramid_and_bad_sizes_are_refused():
    import keras

    from keras_tl.models.retinanet import build_detector, pyramid_layer_names

    inputs = keras.Input((SIZE, SIZE, 3))
    flat = keras.Model(inputs, keras.layers.Conv2D(4, 3, strides=8, padding="same")(inputs), name="flat")
    with pytest.raises(BackboneError, match=r"'flat' at 64x64 has no feature map for P4 \(stride 16\)"):
        pyramid_layer_names(flat)
    loaded = keras_tl.load_backbone(tiny_pyramid_backbone())
    with pytest.raises(ConfigError, match=r"built for \(64, 64\) images, not \(96, 96\)"):
        build_detector(loaded, 2, image_size=96)
    odd = keras_tl.load_backbone(tiny_pyramid_backbone(48))
    with pytest.raises(ConfigError, match="divisible by 32"):
        build_detector(odd, 2)


def test_detector_trains_predicts_freezes_and_reloads(tmp_path):
    import keras

    from keras_tl.data.detection import make_detection_dataset
    from keras_tl.models.retinanet import detector_backbone

    keras.utils.set_random_seed(0)
    loaded, detector = _build()

    # The backbone is the loaded model's layers, inside the detector.
    backbone = detector_backbone(detector)
    assert backbone is detector.backbone.get_layer("backbone")
    assert backbone.get_layer("block1_conv") is loaded.model.get_layer("block1_conv")

    images, boxes, labels = squares()
    # RetinaNet's initialisation: every anchor starts at 1 % confidence, box
    # deltas near 0 (keras_hub's own gives 0.1-0.5 and deltas up to +-13)
    untrained = {key: keras.ops.convert_to_numpy(value) for key, value in detector(images[:2]).items()}
    confidence = 1 / (1 + np.exp(-untrained["cls_logits"].astype("float64")))
    assert 0.005 < confidence.mean() < 0.02 and confidence.max() < 0.05
    assert np.abs(untrained["bbox_regression"]).max() < 1.0

    detector.compile(optimizer=keras.optimizers.Adam(3e-4))
    history = detector.fit(images, {"boxes": boxes, "labels": labels}, batch_size=8, epochs=10,
                           verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.8 * losses[0], losses

    out = detector.predict(images[:3], verbose=0)
    assert out["boxes"].shape == (3, 100, 4) and out["confidence"].shape == (3, 100)
    assert out["labels"].shape == (3, 100) and out["num_detections"].shape == (3,)
    first = int(out["num_detections"][0])
    assert first > 0
    kept = out["boxes"][0, :first]
    # pixel xmin, ymin, xmax, ymax of the 64x64 input; padding is -1
    assert (kept[:, 2] > kept[:, 0]).all() and (kept[:, 3] > kept[:, 1]).all()
    # clipped to the image: the big anchors reach past it, and a coordinate
    # lands exactly on an edge only by clipping
    from keras_tl.models.retinanet import raw_detection_model

    every_anchor = raw_detection_model(detector).predict(images[:3], verbose=0)["boxes"]
    assert every_anchor.min() == 0 and every_anchor.max() == SIZE

    # Frozen backbone: only the pyramid and the heads train.
    trainable_before = len(detector.trainable_weights)
    in_backbone = len(loaded.model.trainable_weights)
    assert in_backbone == 10  # 5 convolutions, kernel and bias
    backbone.trainable = False
    assert len(detector.trainable_weights) == trainable_before - in_backbone
    frozen = [w.numpy().copy() for w in backbone.weights]
    heads = [w.numpy().copy() for w in detector.classification_head.weights]
    detector.compile(optimizer=keras.optimizers.Adam(1e-3))
    # make_detection_dataset's augmented batches are what fit takes
    dataset = make_detection_dataset(images.astype("uint8"), boxes, labels, batch_size=4,
                                     shuffle=True, augment=True, seed=0)
    history = detector.fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    for before, after in zip(frozen, backbone.weights):
        np.testing.assert_array_equal(before, after.numpy())
    assert any((before != after.numpy()).any()
               for before, after in zip(heads, detector.classification_head.weights))
    backbone.trainable = True

    current = detector.predict(images[:3], verbose=0)
    # a partial last batch (no static batch size in TensorFlow's predict)
    partial = detector.predict(images[:5], batch_size=2, verbose=0)
    assert partial["boxes"].shape == (5, 100, 4) and partial["num_detections"].shape == (5,)
    np.testing.assert_allclose(partial["boxes"][:3], current["boxes"], atol=1e-4)
    path = str(tmp_path / "detector.keras")
    detector.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    again = reloaded.predict(images[:3], verbose=0)
    for key in ("boxes", "confidence", "labels", "num_detections"):
        np.testing.assert_allclose(again[key], current[key], atol=1e-4)
    assert detector_backbone(reloaded).get_layer("block1_conv").name == "block1_conv"


def test_extra_aspect_ratios_give_more_anchors_per_place():
    import keras

    from keras_tl.models.retinanet import build_detector

    loaded = keras_tl.load_backbone(tiny_pyramid_backbone())
    detector = build_detector(loaded, 2, head_conv_layers=1, aspect_ratios=(0.5, 1.0, 2.0, 4.0))
    assert detector.anchor_generator.num_base_anchors == 12  # 3 scales x 4 shapes
    # P3..P7 of a 64x64 image: 64 + 16 + 4 + 1 + 1 places
    outputs = detector(np.zeros((1, SIZE, SIZE, 3), "float32"))
    assert tuple(keras.ops.shape(outputs["cls_logits"])) == (1, 86 * 12, 2)
