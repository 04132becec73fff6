"""The checks every registered image backbone must pass (like keras-hub's
`run_backbone_test`): it builds without its top at a small size, a head
on it predicts, its layers fall into named blocks so that a fractional
`unfreeze` and `layer_decay` have something to count, freezing and
unfreezing set exactly the flags the stages promise (BatchNorm statistics
never train), and the model saves and reloads to the same outputs.

One backbone per weights family runs under TensorFlow, the default one
on every backend (`core`); every registered image backbone runs in the
slow suite. Text and audio encoders
pass the same checks through their tasks in tests/test_task_contract.py.
"""

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.backbones import get_backbone_spec
from keras_tl.freezing import freeze_backbone, get_backbone, unfreeze_backbone
from keras_tl.tasks.image_classifier import build_image_classifier
from keras_tl.training.stages import resolve_unfreeze
from keras_tl.training.optimizers import backbone_groups
from keras_tl.training.stages import Stage

# one per weights source: keras.applications, a PyTorch-ported Keras
# architecture, torchvision's MobileNetV2
FAMILIES = ("mobilenet_v2", "efficientnet_lite0", "mobilenet_v2_torch")


def _test_size(spec):
    if spec.fixed_input_size:
        return tuple(spec.input_size)
    side = max(32, spec.min_input_size or 32)
    return (side, side)


def _count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def _layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def run_backbone_test(name, tmp_path=None):
    """Builds `name` (random weights) at a small size under a 3-class head
    and checks the contract; with `tmp_path`, also a save/load round trip."""
    spec = get_backbone_spec(name)
    size = _test_size(spec)
    loaded = keras_tl.load_backbone(name, weights=None, image_size=size)
    assert loaded.input_size == size
    model = build_image_classifier(loaded, num_classes=3, dropout=0.0)
    images = np.random.default_rng(0).uniform(0, 255, (2,) + size + (3,)).astype("float32")
    probabilities = keras.ops.convert_to_numpy(model(images, training=False))
    assert probabilities.shape == (2, 3)
    # the backbone sees the image: two random images get two different
    # features (a preprocessing that zeroes the pixels gives the same twice;
    # the new head starts at zero, so its outputs are uniform until trained)
    features = keras.ops.convert_to_numpy(get_backbone(model)(images, training=False))
    assert not np.allclose(features[0], features[1], rtol=1e-3, atol=0), name  # random BN: tiny values

    groups = [group for group, _ in backbone_groups(model)]
    assert len(groups) >= 4, (name, groups)

    backbone = get_backbone(model)
    assert {w.path for w in loaded.model.weights} <= {w.path for w in backbone.weights}
    # BatchNorm stays frozen, scale and offset included (train_batchnorm=False)
    batchnorm = {id(w) for layer in _layers(backbone)
                 if isinstance(layer, keras.layers.BatchNormalization) for w in layer.weights}
    everything = _count([w for w in backbone.weights if w.trainable and id(w) not in batchnorm])
    freeze_backbone(model)
    assert not backbone.trainable_weights and model.trainable_weights
    stage = resolve_unfreeze(model, Stage("top", unfreeze=0.25))
    unfreeze_backbone(model, stage.unfreeze)
    top = _count(backbone.trainable_weights)
    assert 0 < top < everything, f"{name}: unfreeze=0.25 trains {top} of {everything}"
    unfreeze_backbone(model, "all")
    assert _count(backbone.trainable_weights) == everything
    assert not any("moving" in w.path for w in model.trainable_weights)

    if tmp_path is not None:
        path = tmp_path / f"{name}.keras"
        model.save(path)
        reloaded = keras.saving.load_model(path, safe_mode=True)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(reloaded(images, training=False)), probabilities,
            atol=1e-5)


# the default backbone on every backend; the other families under TensorFlow
@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.core) if name == "mobilenet_v2_torch" else name
    for name in FAMILIES])
def test_backbone_contract(name, tmp_path):
    run_backbone_test(name, tmp_path)


def _image_backbones():
    return [name for name in keras_tl.list_backbones("image") if name not in FAMILIES]


@pytest.mark.slow
@pytest.mark.parametrize("name", _image_backbones())
def test_every_registered_image_backbone(name):
    run_backbone_test(name)
    keras.backend.clear_session()
