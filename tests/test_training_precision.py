"""Mixed precision: 16-bit compute, float32 output layer, frozen BatchNorm
stays frozen, the global dtype policy is restored."""

import json

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.errors import ConfigError
from keras_tl.freezing import get_backbone
from tests.helpers import colour_arrays, tiny_backbone, weights_of


@pytest.mark.core
def test_mixed_bfloat16_keeps_the_output_float32_and_frozen_bn_frozen(tmp_path):
    from keras_tl.training.precision import precision_scope

    with precision_scope("mixed_bfloat16"):  # a backbone of your own: build it under the policy
        backbone = tiny_backbone()
    bn_before = weights_of(backbone.get_layer("block1_bn"))
    conv_before = weights_of(backbone.get_layer("block1_conv"))[0]
    x, y, names = colour_arrays()
    stages = [keras_tl.Stage("head", epochs=1),
              keras_tl.Stage("ft", unfreeze="all", epochs=1, learning_rate=1e-3)]
    result = keras_tl.finetune((x, y), backbone, class_names=names, batch_size=8, verbose=0,
                               patience=0, stages=stages, precision="mixed_bfloat16",
                               output_dir=str(tmp_path / "run"))
    model = result.model
    assert get_backbone(model).get_layer("block1_conv").compute_dtype == "bfloat16"
    assert model.get_layer("probabilities").compute_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32", "global policy restored"
    probabilities = keras.ops.convert_to_numpy(model(x[:4].astype("float32")))
    assert probabilities.dtype == np.float32
    for a, b in zip(bn_before, weights_of(get_backbone(model).get_layer("block1_bn"))):
        np.testing.assert_array_equal(a, b)  # frozen BN: statistics and scale untouched
    conv_after = weights_of(get_backbone(model).get_layer("block1_conv"))[0]
    assert conv_after.dtype == np.float32
    assert not np.allclose(conv_before, conv_after), "stage 2 trained the kernels"
    config = json.load(open(tmp_path / "run" / "run.json"))["config"]
    assert config["training"]["precision"] == "mixed_bfloat16"


def test_a_named_backbone_is_built_under_the_policy(tmp_path):
    x, y, names = colour_arrays(size=32)
    result = keras_tl.finetune((x, y), "mobilenet_v2", weights=None, image_size=32,
                               class_names=names, batch_size=8, verbose=0, patience=0,
                               stages=[keras_tl.Stage("head", epochs=1)],
                               precision="mixed_bfloat16", output_dir=str(tmp_path / "run"))
    backbone = get_backbone(result.model)
    assert backbone.get_layer("Conv_1").compute_dtype == "bfloat16"
    assert backbone.get_layer("Conv_1").kernel.dtype == "float32"
    assert result.model.get_layer("probabilities").compute_dtype == "float32"


def test_mixed_float16_trains_with_loss_scaling(tmp_path):
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(type(self.model.optimizer).__name__)

    x, y, names = colour_arrays()
    result = keras_tl.finetune(
        (x, y), tiny_backbone(), class_names=names, batch_size=8, verbose=0, patience=0,
        stages=[keras_tl.Stage("head", epochs=1)], precision="mixed_float16",
        cache_features=False, callbacks=[Spy()], output_dir=str(tmp_path / "run"))
    assert seen == ["LossScaleOptimizer"]
    assert result.model.get_layer("probabilities").compute_dtype == "float32"
    assert np.isfinite(result.histories["head"]["loss"]).all()


def test_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match="precision must be one of"):
        keras_tl.finetune(colour_arrays()[:2], tiny_backbone(), precision="float8")
