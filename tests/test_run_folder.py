"""A run folder describes exactly the run it holds: changed data is refused,
checkpoints commit weights and state as one unit, altered or corrupt files
are refused, a diverged run stops with the last good checkpoint kept."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

import keras_tl
from keras_tl.errors import CheckpointError, ConfigError, TrainingError
from keras_tl.training import checkpoint, loop
from tests.helpers import colour_arrays, tiny_backbone, weights_of


def _finetune(data, folder, stages=None, **kwargs):
    options = dict(backbone=tiny_backbone(size=kwargs.pop("size", 16)), batch_size=8,
                   output_dir=str(folder), verbose=0, patience=0,
                   stages=stages or [keras_tl.Stage("head", epochs=2)])
    options.update(kwargs)
    return keras_tl.finetune(data, **options)


def _arrays():
    x, y, names = colour_arrays()
    return (x, y), names


def _sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _state(folder):
    return json.load(open(folder / "checkpoint" / "state.json"))


def _weights_path(folder):
    # (runs written before checksums kept one fixed file name)
    return folder / "checkpoint" / _state(folder).get("weights", {}).get("file", "model.weights.h5")


# -- changed data -------------------------------------------------------------
# (the data fingerprint is backend-independent: these run under TensorFlow only)

def test_an_image_added_to_the_folder_is_refused_naming_it(tmp_path, image_folder):
    run = tmp_path / "run"
    _finetune(image_folder, run, size=20)
    shutil.copy(os.path.join(image_folder, "red", "000.png"),
                os.path.join(image_folder, "red", "new.png"))
    with pytest.raises(ConfigError, match=r"other data .*1 added \(red/new\.png\)"):
        _finetune(image_folder, run, size=20)


def test_an_image_moved_to_another_class_is_refused(tmp_path, image_folder):
    run = tmp_path / "run"
    _finetune(image_folder, run, size=20)
    os.replace(os.path.join(image_folder, "red", "000.png"),
               os.path.join(image_folder, "blue", "000.png"))
    with pytest.raises(ConfigError, match=r"1 added \(blue/000\.png\).*1 removed \(red/000\.png\)"):
        _finetune(image_folder, run, size=20)


def test_changed_array_content_is_refused(tmp_path):
    (x, y), names = _arrays()
    run = tmp_path / "run"
    _finetune((x, y), run, class_names=names)
    x = x.copy()
    x[0, 0, 0, 0] ^= 1
    with pytest.raises(ConfigError, match=r"other data \(training data: array content changed"):
        _finetune((x, y), run, class_names=names)


def test_the_data_fingerprint_is_recorded_and_the_same_data_resumes(tmp_path, image_folder):
    run = tmp_path / "run"
    _finetune(image_folder, run, size=20)
    config = json.load(open(run / "run.json"))["config"]
    assert config["data"]["train"]["kind"] == "files"
    assert config["data"]["train"]["files"] == 24
    _finetune(image_folder, run, size=20)  # unchanged: loads the finished run


# -- weights and state are one unit -----------------------------------------------

@pytest.mark.core
def test_a_crash_between_weights_and_state_keeps_them_consistent(tmp_path, monkeypatch):
    (x, y), names = _arrays()
    run = tmp_path / "run"
    saved = []
    original_save = checkpoint.RunState.save

    def record(self, model):
        saved.append((self.epoch, weights_of(model.get_layer("probabilities"))[0]))
        original_save(self, model)

    monkeypatch.setattr(checkpoint.RunState, "save", record)
    original_write = checkpoint._write_json
    writes = []

    def crash_on_second_state(path, data):
        writes.append(path) if "state.json" in str(path) else None
        if len(writes) == 2 and "state.json" in str(path):  # epoch 2's weights are written, its state is not
            raise KeyboardInterrupt
        original_write(path, data)

    monkeypatch.setattr(checkpoint, "_write_json", crash_on_second_state)
    with pytest.raises(KeyboardInterrupt):
        _finetune((x, y), run, stages=[keras_tl.Stage("head", epochs=3)], class_names=names,
                  cache_features=False)  # on the backbone: a checkpoint every epoch
    monkeypatch.setattr(checkpoint, "_write_json", original_write)
    state = checkpoint.RunState.load(str(run / "checkpoint"))
    assert state.epoch == 1
    prepared = keras_tl.tasks.get_task("image_classification").prepare(
        (x, y), tiny_backbone(), class_names=names, batch_size=8)
    state.restore(prepared.model, optimizer_too=False)
    epoch_one = [w for epoch, w in saved if epoch == 1][0]
    np.testing.assert_array_equal(
        weights_of(prepared.model.get_layer("probabilities"))[0], epoch_one)


# -- altered, truncated, garbage files --------------------------------------------

def _alter_weights(path):
    import h5py

    with h5py.File(path, "r+") as f:
        def change(name, item):
            # the head's kernel (saved under Keras' class-based names, not "probabilities")
            if isinstance(item, h5py.Dataset) and name.startswith("layers/dense/vars/"):
                item[...] = np.asarray(item) + 1.0

        f.visititems(change)


@pytest.mark.core
def test_altered_checkpoint_weights_are_refused_and_model_keras_kept(tmp_path):
    (x, y), names = _arrays()
    run = tmp_path / "run"
    _finetune((x, y), run, class_names=names)
    before = _sha256(run / "model.keras")
    weights = _weights_path(run)
    _alter_weights(weights)
    with pytest.raises(CheckpointError, match=rf"{weights.name}.*checksum.*Delete"):
        _finetune((x, y), run, class_names=names)
    assert _sha256(run / "model.keras") == before


@pytest.mark.core
def test_altered_weights_are_refused_on_resume(tmp_path, monkeypatch):
    (x, y), names = _arrays()
    run = tmp_path / "run"
    stages = [keras_tl.Stage("head", epochs=3)]
    original = loop._EpochCheckpoint.on_epoch_end

    def interrupt(self, epoch, logs=None):
        original(self, epoch, logs)
        raise KeyboardInterrupt

    monkeypatch.setattr(loop._EpochCheckpoint, "on_epoch_end", interrupt)
    with pytest.raises(KeyboardInterrupt):
        _finetune((x, y), run, stages=stages, class_names=names, cache_features=False)
    monkeypatch.setattr(loop._EpochCheckpoint, "on_epoch_end", original)
    _alter_weights(_weights_path(run))
    with pytest.raises(CheckpointError, match="checksum"):
        _finetune((x, y), run, stages=stages, class_names=names, cache_features=False)


def test_a_truncated_weights_file_is_named(tmp_path):
    (x, y), names = _arrays()
    run = tmp_path / "run"
    _finetune((x, y), run, class_names=names)
    weights = _weights_path(run)
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=weights.name):
        _finetune((x, y), run, class_names=names)


@pytest.mark.parametrize("content", ["{not json", "{}", "[]", '{"format": 2}'])
def test_a_garbage_state_file_is_named(tmp_path, content):
    (x, y), names = _arrays()
    run = tmp_path / "run"
    _finetune((x, y), run, class_names=names)
    (run / "checkpoint" / "state.json").write_text(content)
    with pytest.raises(CheckpointError, match=r"state\.json.*start over"):
        _finetune((x, y), run, class_names=names)


# -- divergence, empty stages, recorded settings -----------------------------------

@pytest.mark.core
def test_a_nan_loss_stops_with_training_error_keeping_the_last_good_checkpoint(tmp_path):
    (x, y), names = _arrays()
    run = tmp_path / "run"
    stages = [keras_tl.Stage("head", epochs=1),
              keras_tl.Stage("diverge", unfreeze="all", epochs=2, learning_rate=1e38)]
    with pytest.raises(TrainingError, match=r"NaN.*'diverge'.*epoch 1"):
        _finetune((x, y), run, stages=stages, class_names=names)
    state = _state(run)
    assert (state["stage_index"], state["stage_done"]) == (0, True)
    assert not (run / "model.keras").exists()
    prepared = keras_tl.tasks.get_task("image_classification").prepare(
        (x, y), tiny_backbone(), class_names=names, batch_size=8)
    checkpoint.RunState.load(str(run / "checkpoint")).restore(prepared.model, optimizer_too=False)
    assert all(np.isfinite(w).all() for w in prepared.model.get_weights())


def test_zero_epochs_in_every_stage_warns(tmp_path):
    (x, y), names = _arrays()
    with pytest.warns(UserWarning, match="0 epochs"):
        _finetune((x, y), tmp_path / "run", stages=[keras_tl.Stage("head", epochs=0)],
                  class_names=names)


def test_validation_split_is_recorded_only_when_used(tmp_path):
    (x, y), names = _arrays()
    _finetune((x, y), tmp_path / "given", class_names=names,
              validation_data=(x[:6], y[:6]))
    config = json.load(open(tmp_path / "given" / "run.json"))["config"]
    assert "validation_split" not in config
    assert config["data"]["validation"]["kind"] == "arrays"
    _finetune((x, y), tmp_path / "split", class_names=names, validation_split=0.25)
    config = json.load(open(tmp_path / "split" / "run.json"))["config"]
    assert config["validation_split"] == 0.25
