"""Layer-wise learning rates, optimizers, label smoothing, callbacks, and
stages checked against the backbone before anything trains."""

import json
import os

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.errors import ConfigError
from keras_tl.freezing import get_backbone
from keras_tl.tasks import get_task
from keras_tl.training.optimizers import backbone_groups, build_optimizer, rate_multipliers
from tests.helpers import colour_arrays, tiny_backbone, weights_of


def _prepared():
    x, y, names = colour_arrays()
    return get_task("image_classification").prepare(
        (x, y), tiny_backbone(), class_names=names, batch_size=8, dropout=0.0)


def _first_adam_step(model, stage):
    """Each trainable weight's change after one Adam step of `stage`."""
    from keras_tl.training.loop import compile_for_stage

    prepared_task = get_task("image_classification")
    before = {id(v): np.array(v) for v in model.trainable_variables}
    compile_for_stage(model, stage, 10, prepared_task)
    x, y, _ = colour_arrays(per_class=4)
    model.train_on_batch(x.astype("float32"), y)
    return {id(v): np.abs(np.array(v) - before[id(v)]) for v in model.trainable_variables}


@pytest.mark.core
def test_first_adam_step_of_a_bottom_block_is_decay_to_the_k_of_the_top_one():
    prepared = _prepared()
    model = prepared.model
    stage = keras_tl.Stage("ft", unfreeze="all", learning_rate=1e-2, layer_decay=0.5)
    prepared.apply_stage(model, stage)
    steps = _first_adam_step(model, stage)
    bottom = get_backbone(model).get_layer("block1_conv").kernel
    top = get_backbone(model).get_layer("block2_conv").kernel
    head = model.get_layer("probabilities").kernel
    # Adam's first step is lr * g / (|g| + epsilon): lr itself for the largest gradients
    def typical(variable):
        return float(np.max(steps[id(variable)]))

    assert typical(head) == pytest.approx(1e-2, rel=1e-3)
    assert typical(top) == pytest.approx(0.5 * 1e-2, rel=1e-3)   # distance 1
    assert typical(bottom) == pytest.approx(0.25 * 1e-2, rel=1e-3)  # distance 2
    assert typical(bottom) / typical(top) == pytest.approx(0.5, rel=1e-3)


@pytest.mark.core
def test_lr_multipliers_scale_named_blocks_and_the_head():
    prepared = _prepared()
    model = prepared.model
    stage = keras_tl.Stage("ft", unfreeze="all", learning_rate=1e-2,
                           lr_multipliers={"block1": 0.1, "head": 2.0})
    prepared.apply_stage(model, stage)
    steps = _first_adam_step(model, stage)
    backbone = get_backbone(model)
    assert float(np.max(steps[id(backbone.get_layer("block1_conv").kernel)])) == \
        pytest.approx(1e-3, rel=1e-3)
    assert float(np.max(steps[id(backbone.get_layer("block2_conv").kernel)])) == \
        pytest.approx(1e-2, rel=1e-3)
    assert float(np.max(steps[id(model.get_layer("probabilities").kernel)])) == \
        pytest.approx(2e-2, rel=1e-3)


@pytest.mark.core
def test_blocks_come_from_block_names_and_multipliers_compose():
    prepared = _prepared()
    groups = backbone_groups(prepared.model)
    assert [name for name, _ in groups] == ["block1", "block2"]
    factors = rate_multipliers(prepared.model, layer_decay=0.5, lr_multipliers={"block2": 3.0})
    kernel = get_backbone(prepared.model).get_layer("block2_conv").kernel
    assert factors[id(kernel)] == pytest.approx(1.5)


@pytest.mark.core
def test_adamw_and_sgd_are_built_and_weight_decay_needs_adamw():
    assert type(build_optimizer("adamw", 1e-3, 0.05)).__name__ == "AdamW"
    assert float(build_optimizer("adamw", 1e-3, 0.05).weight_decay) == pytest.approx(0.05)
    assert type(build_optimizer("sgd", 1e-3)).__name__ == "SGD"
    with pytest.raises(ConfigError, match="weight_decay needs optimizer='adamw'"):
        build_optimizer("adam", 1e-3, 0.01)


@pytest.mark.core
def test_adamw_weight_decay_is_scaled_with_each_variable_rate():
    """Decoupled decay is lr * weight_decay, so a block at half the rate
    decays half as fast (zero gradients: the step is the decay alone)."""
    top, bottom = keras.Variable(np.ones(3)), keras.Variable(np.ones(3))
    optimizer = build_optimizer("adamw", 0.1, weight_decay=0.5,
                                multipliers={id(top): 1.0, id(bottom): 0.25})
    optimizer.apply([np.zeros(3), np.zeros(3)], [top, bottom])
    decayed = [1 - float(keras.ops.convert_to_numpy(v)[0]) for v in (top, bottom)]
    assert decayed == pytest.approx([0.05, 0.0125], rel=1e-5)


class _Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.fits = []

    def on_train_begin(self, logs=None):
        self.fits.append((type(self.model.optimizer).__name__, type(self.model.loss).__name__))


def test_optimizer_label_smoothing_and_callbacks_reach_every_stage(tmp_path):
    x, y, names = colour_arrays()
    recorder = _Recorder()
    tensorboard = keras.callbacks.TensorBoard(str(tmp_path / "logs"))
    result = keras_tl.finetune(
        (x, y), tiny_backbone(), class_names=names, batch_size=8, verbose=0, patience=0,
        stages=keras_tl.default_stages(1, 1, head_cached_epochs=None),
        optimizer="adamw", weight_decay=0.01, label_smoothing=0.1,
        callbacks=[recorder, tensorboard], output_dir=str(tmp_path / "run"))
    assert recorder.fits == [("AdamW", "SmoothedSparseCategoricalCrossentropy")] * 2
    assert os.listdir(tmp_path / "logs" / "train")  # TensorBoard wrote events
    training = json.load(open(tmp_path / "run" / "run.json"))["config"]["training"]
    assert training["optimizer"] == "adamw" and training["label_smoothing"] == 0.1
    # the saved model holds Keras' own optimizer and loss: it loads anywhere
    loaded = keras.saving.load_model(str(tmp_path / "run" / "model.keras"))
    np.testing.assert_allclose(loaded.predict(x[:2], verbose=0),
                               result.model.predict(x[:2], verbose=0), atol=1e-6)


@pytest.mark.core
def test_label_smoothing_raises_the_training_loss_of_a_confident_model():
    task = get_task("image_classification")
    assert task.training_compile_options(0.0)["loss"] == "sparse_categorical_crossentropy"
    plain = keras.losses.SparseCategoricalCrossentropy()
    smoothed = task.training_compile_options(0.2)["loss"]
    y, p = np.array([0, 1]), np.array([[0.98, 0.02], [0.01, 0.99]])
    assert float(smoothed(y, p)) > float(plain(y, p)) + 0.1


def _no_checkpoint(folder):
    return not os.path.exists(os.path.join(folder, "checkpoint", "state.json"))


@pytest.mark.parametrize("bad_stage, message", [
    (keras_tl.Stage("finetune", unfreeze="block9"), "Stage 'finetune': No backbone layer"),
    (keras_tl.Stage("finetune", unfreeze="all", lr_multipliers={"blok1": 0.1}),
     "Stage 'finetune': lr_multipliers key 'blok1' names no backbone block"),
])
def test_every_stage_is_checked_before_the_head_trains(tmp_path, bad_stage, message):
    x, y, names = colour_arrays()
    stages = [keras_tl.Stage("head", epochs=1), bad_stage]
    run = str(tmp_path / "run")
    with pytest.raises(ConfigError, match=message):
        keras_tl.finetune((x, y), tiny_backbone(), class_names=names, stages=stages,
                          output_dir=run, verbose=0)
    assert _no_checkpoint(run), "nothing may be trained or saved"
    # the corrected rerun in the same folder is accepted
    stages[1] = keras_tl.Stage("finetune", unfreeze="block2", epochs=1)
    keras_tl.finetune((x, y), tiny_backbone(), class_names=names, stages=stages,
                      output_dir=run, verbose=0)


@pytest.mark.core
def test_stage_checks_leave_trainable_flags_as_they_were():
    from keras_tl.training.loop import validate_stages

    prepared = _prepared()
    prepared.apply_stage(prepared.model, keras_tl.Stage("head"))
    before = [layer.trainable for layer in prepared.model._flatten_layers()]
    validate_stages(prepared, [keras_tl.Stage("ft", unfreeze="all", train_batchnorm=True)])
    assert [layer.trainable for layer in prepared.model._flatten_layers()] == before


@pytest.mark.core
def test_stage_arguments_are_checked_when_made():
    with pytest.raises(ConfigError, match="layer_decay must be in"):
        keras_tl.Stage("ft", layer_decay=1.5)
    with pytest.raises(ConfigError, match="learning_rate must be > 0 or 'auto'"):
        keras_tl.Stage("ft", learning_rate="fast")
    with pytest.raises(ConfigError, match=r"lr_multipliers\['block1'\] must be a number"):
        keras_tl.Stage("ft", lr_multipliers={"block1": "x"})


@pytest.mark.core
def test_layer_decay_in_a_full_run_changes_bottom_blocks_less(tmp_path):
    x, y, names = colour_arrays()

    def change(layer_decay):
        backbone = tiny_backbone()
        before = weights_of(backbone.get_layer("block1_conv"))[0]
        stage = keras_tl.Stage("ft", unfreeze="all", epochs=1, learning_rate=1e-2,
                               layer_decay=layer_decay)
        result = keras_tl.finetune((x, y), backbone, class_names=names, stages=[stage],
                                   batch_size=8, verbose=0, patience=0,
                                   output_dir=str(tmp_path / f"run{layer_decay}"))
        after = weights_of(get_backbone(result.model).get_layer("block1_conv"))[0]
        return float(np.abs(after - before).mean())

    assert change(0.1) < 0.2 * change(None)
