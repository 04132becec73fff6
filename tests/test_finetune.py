"""Two-stage fine-tuning on tiny models: freezing, BN statistics, learning
rates, stages, resume and repeatability."""

import dataclasses
import json
import os

import numpy as np
import pytest

import keras_tl
from keras_tl.tasks import get_task
from keras_tl.freezing import get_backbone, trainable_summary
from keras_tl.training import loop
from tests.helpers import colour_arrays, tiny_backbone, weights_of


def _finetune(tmp_path, stages, name="run", **kwargs):
    x, y, names = colour_arrays()
    options = dict(backbone=tiny_backbone(), stages=stages, batch_size=8,
                   output_dir=str(tmp_path / name), verbose=0, patience=0,
                   class_names=names)
    options.update(kwargs)
    return keras_tl.finetune((x, y), **options)


def _bn(model, block):
    return get_backbone(model).get_layer(f"block{block}_bn")


@pytest.mark.core
def test_stage_one_leaves_backbone_kernels_and_bn_statistics_unchanged(tmp_path):
    backbone = tiny_backbone()
    before = [weights_of(layer) for layer in backbone.layers]
    # on a random tiny backbone's features 1e-2 barely moved the loss in 4 epochs (JAX: up 1 %)
    stage = keras_tl.Stage("head", epochs=4, learning_rate=5e-2)
    result = _finetune(tmp_path, [stage], backbone=backbone)
    after = [weights_of(layer) for layer in get_backbone(result.model).layers]
    for old, new in zip(before, after):
        for a, b in zip(old, new):
            np.testing.assert_array_equal(a, b)
    head = result.model.get_layer("probabilities")
    assert not np.allclose(weights_of(head)[0], 0)
    assert result.histories["head"]["loss"][-1] < result.histories["head"]["loss"][0]


def _stage_two_bn_change(tmp_path, train_batchnorm):
    stages = [keras_tl.Stage("head", epochs=1),
              keras_tl.Stage("finetune", unfreeze="all", epochs=2, learning_rate=1e-3,
                             train_batchnorm=train_batchnorm)]
    backbone = tiny_backbone()
    bn_before = weights_of(backbone.get_layer("block1_bn"))
    conv_before = weights_of(backbone.get_layer("block1_conv"))[0]
    result = _finetune(tmp_path, stages, backbone=backbone)
    bn_after = weights_of(_bn(result.model, 1))
    conv_after = weights_of(get_backbone(result.model).get_layer("block1_conv"))[0]
    assert not np.allclose(conv_before, conv_after), "stage 2 must train the kernels"
    return bn_before, bn_after


@pytest.mark.core
def test_stage_two_keeps_bn_statistics_by_default(tmp_path):
    before, after = _stage_two_bn_change(tmp_path, train_batchnorm=False)
    for a, b in zip(before, after):  # gamma, beta, moving mean, moving variance
        np.testing.assert_array_equal(a, b)


@pytest.mark.core
def test_stage_two_updates_bn_statistics_when_asked(tmp_path):
    before, after = _stage_two_bn_change(tmp_path, train_batchnorm=True)
    moving_mean_before, moving_mean_after = before[2], after[2]
    assert not np.allclose(moving_mean_before, moving_mean_after)


def _count(model):
    rows = trainable_summary(model)
    return {r["block"]: r["trainable"] for r in rows}


def test_trainable_counts_per_stage_with_gradual_unfreezing(tmp_path):
    stages = keras_tl.gradual_stages(blocks=(2, "block1", "all"), epochs=1)
    x, y, names = colour_arrays()
    task = get_task("image_classification").prepare(
        (x, y), tiny_backbone(), class_names=names, batch_size=8, dropout=0.2)
    conv1, conv2 = 3 * 3 * 3 * 4 + 4, 3 * 3 * 4 * 8 + 8
    head = 8 * 3 + 3
    expected = [
        {"block1": 0, "block2": 0, "head": head},           # frozen
        {"block1": 0, "block2": conv2, "head": head},        # top 2 weighted layers (conv, BN)
        {"block1": conv1, "block2": conv2, "head": head},    # from block1
        {"block1": conv1, "block2": conv2, "head": head},    # all
    ]
    for stage, counts in zip(stages, expected):
        task.apply_stage(task.model, stage)
        assert _count(task.model) == counts, stage.name
    # BatchNorm stays frozen: its 4 weights per channel are never trainable
    non_trainable = {r["block"]: r["non_trainable"] for r in trainable_summary(task.model)}
    assert non_trainable == {"block1": 4 * 4, "block2": 4 * 8, "head": 0}
    result = _finetune(tmp_path, stages)
    assert list(result.histories) == [s.name for s in stages]


@pytest.mark.core
def test_stage_two_learning_rate_warms_up_then_decays(tmp_path):
    stages = keras_tl.default_stages(head_epochs=1, finetune_epochs=4, learning_rate=1e-3)
    result = _finetune(tmp_path, stages)
    head_rates = result.histories["head"]["learning_rate"]
    rates = result.histories["finetune"]["learning_rate"]
    assert head_rates == pytest.approx([1e-3])
    assert stages[1].learning_rate == pytest.approx(1e-4)
    assert max(rates) <= 1e-4 + 1e-9
    assert rates == sorted(rates, reverse=True), "cosine decay after warm-up"
    # the rate of the stage's last step, near the cosine's end (not its 0 after the end)
    assert 0 < rates[-1] < 0.05 * 1e-4
    schedule = loop.stage_learning_rate(stages[1], steps_per_epoch=10)
    warmup = [float(schedule(step)) for step in range(5)]  # 10 % of 40 steps
    # linear from 1e-4/5 to the peak: no step at rate 0 (it would change no weight)
    np.testing.assert_allclose(warmup, [2e-5, 4e-5, 6e-5, 8e-5, 1e-4], rtol=1e-5)


@pytest.mark.core
def test_interrupted_run_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    stages = keras_tl.default_stages(head_epochs=2, finetune_epochs=3)
    original = loop._EpochCheckpoint.on_epoch_end
    calls = []

    def interrupt_in_stage_two(self, epoch, logs=None):
        original(self, epoch, logs)
        calls.append((self.stage_name, epoch))
        if self.stage_name == "finetune" and epoch == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop._EpochCheckpoint, "on_epoch_end", interrupt_in_stage_two)
    # on the backbone, every epoch is checkpointed (a stage on cached features restarts)
    stages = [dataclasses.replace(s, unfreeze="all") for s in stages]
    with pytest.raises(KeyboardInterrupt):
        _finetune(tmp_path, stages)
    state = json.load(open(tmp_path / "run" / "checkpoint" / "state.json"))
    assert (state["stage_index"], state["epoch"]) == (1, 1)
    calls.clear()
    result = _finetune(tmp_path, stages)
    assert calls == [("finetune", 1), ("finetune", 2)], "only the missing epochs run"
    assert len(result.histories["head"]["loss"]) == 2
    assert len(result.histories["finetune"]["loss"]) == 3
    # a finished run is not trained again
    calls.clear()
    again = _finetune(tmp_path, stages)
    assert calls == []
    np.testing.assert_allclose(
        weights_of(again.model.get_layer("probabilities"))[0],
        weights_of(result.model.get_layer("probabilities"))[0])


def test_an_interrupted_stage_on_cached_features_restarts_from_its_beginning(
        tmp_path, monkeypatch):
    stages = [keras_tl.Stage("head", epochs=1),
              keras_tl.Stage("finetune", unfreeze=0.5, epochs=3)]
    original = loop._EpochCheckpoint.on_epoch_end
    calls, interrupted = [], []

    def interrupt_once(self, epoch, logs=None):
        original(self, epoch, logs)
        calls.append((self.stage_name, epoch))
        if self.stage_name == "finetune" and epoch == 1 and not interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt

    monkeypatch.setattr(loop._EpochCheckpoint, "on_epoch_end", interrupt_once)
    with pytest.raises(KeyboardInterrupt):
        _finetune(tmp_path, stages)
    state = json.load(open(tmp_path / "run" / "checkpoint" / "state.json"))
    assert (state["stage_index"], state["stage_done"]) == (0, True), "only stage ends are saved"
    calls.clear()
    result = _finetune(tmp_path, stages)
    assert calls == [("finetune", 0), ("finetune", 1), ("finetune", 2)]
    assert len(result.histories["finetune"]["loss"]) == 3


def test_fractional_unfreeze_trains_the_top_blocks(tmp_path):
    stage = keras_tl.Stage("finetune", unfreeze=0.5, epochs=1)
    backbone = tiny_backbone()
    bottom = weights_of(backbone.get_layer("block1_conv"))[0]
    top = weights_of(backbone.get_layer("block2_conv"))[0]
    result = _finetune(tmp_path, [stage], backbone=backbone)
    trained = get_backbone(result.model)
    np.testing.assert_array_equal(bottom, weights_of(trained.get_layer("block1_conv"))[0])
    assert not np.allclose(top, weights_of(trained.get_layer("block2_conv"))[0])
    with pytest.raises(ValueError, match="fractional unfreeze must be in"):
        keras_tl.Stage("finetune", unfreeze=1.5)


def test_same_output_folder_with_other_settings_is_refused(tmp_path):
    _finetune(tmp_path, [keras_tl.Stage("head", epochs=1)])
    with pytest.raises(ValueError, match=r"other settings \(stages differ\)"):
        _finetune(tmp_path, [keras_tl.Stage("head", epochs=2)])


@pytest.mark.core
def test_seed_makes_a_run_repeatable(tmp_path):
    import keras

    stages = keras_tl.default_stages(1, 1)
    runs = []
    for name in ("a", "b"):
        keras.utils.set_random_seed(1)  # the user's backbone is built by the user
        runs.append(_finetune(tmp_path, stages, name=name, seed=3, backbone=tiny_backbone()))
    first, second = runs
    np.testing.assert_allclose(
        weights_of(first.model.get_layer("probabilities"))[0],
        weights_of(second.model.get_layer("probabilities"))[0], rtol=1e-5, atol=1e-6)


def test_run_folder_holds_model_metrics_and_plots(tmp_path):
    x, y, names = colour_arrays()
    result = _finetune(tmp_path, keras_tl.default_stages(1, 1), test_data=(x[:6], y[:6]),
                       class_weight="balanced", augment=True)
    folder = tmp_path / "run"
    for name in ("model.keras", "metrics.json", "class_names.txt",
                 "training_curves.png", "confusion_matrix.png"):
        assert (folder / name).stat().st_size > 0, name
    assert (folder / "class_names.txt").read_text().split() == names
    metrics = json.load(open(folder / "metrics.json"))
    test_accuracy = metrics["test"]["accuracy"]
    loaded = keras_tl.FinetuneResult.load(str(folder))
    # metrics.json holds the saved model's accuracy on the 6 test images
    predicted = loaded.model.predict(x[:6], verbose=0).argmax(axis=1)
    assert test_accuracy == pytest.approx(float(np.mean(predicted == y[:6])))
    np.testing.assert_allclose(loaded.model.predict(x[:4], verbose=0),
                               result.model.predict(x[:4], verbose=0), atol=1e-6)
    probabilities = result.model.predict(x[:1], verbose=0)[0]
    best = np.argsort(-probabilities)[:2]
    top = result.predict(x[:1], top=2)[0]
    assert [name for name, _ in top] == [names[i] for i in best]
    np.testing.assert_allclose([p for _, p in top], probabilities[best], atol=1e-6)


def test_predict_takes_images_as_the_training_data_could_be(tmp_path, image_folder):
    result = keras_tl.finetune(image_folder, backbone=tiny_backbone(size=20), verbose=0,
                               stages=[keras_tl.Stage("head", epochs=1)],
                               output_dir=str(tmp_path / "run"), batch_size=8)
    folder = os.path.join(image_folder, "red")
    paths = [os.path.join(folder, f) for f in sorted(os.listdir(folder))[:2]]
    from keras_tl.data.images import read_image

    pixels = np.stack([read_image(p, (20, 20)) for p in paths])
    from_paths = result.predict(paths, top=3)
    from_arrays = result.predict(pixels, top=3)
    assert from_paths == from_arrays
    big_gray = np.repeat(np.repeat(pixels[..., 0], 2, axis=1), 2, axis=2)  # [2, 40, 40]
    assert result.predict(pixels[0], top=3) == from_arrays[:1]  # one [H, W, 3] image
    rows = result.predict(big_gray, top=3)  # grayscale, another size: converted, not refused
    assert len(rows) == 2 and all(sum(p for _, p in row) == pytest.approx(1, abs=1e-4) for row in rows)
