"""Runs the stages of a fine-tuning job on a `PreparedTask`."""

import dataclasses
import logging
import math
import os
import warnings

import keras

from keras_tl.errors import ConfigError, TrainingError
from keras_tl.training import fingerprint
from keras_tl.training.checkpoint import RunState
from keras_tl.training.schedules import stage_learning_rate

logger = logging.getLogger("keras_tl")


@dataclasses.dataclass
class StagesOutcome:
    """What `run_stages` did.

    Attributes:
        histories: `{stage_name: {metric: [per-epoch values]}}`.
        reloaded: the run had finished before: its weights were loaded and
            nothing was trained.

    Example:
    >>> StagesOutcome(histories={}, reloaded=True).reloaded
    True
    """

    histories: dict
    reloaded: bool = False


class _EpochCheckpoint(keras.callbacks.Callback):
    """Records the learning rate and checkpoints after every epoch; a
    non-finite loss stops the run before anything is saved."""

    def __init__(self, state, stage_name, model_to_save=None):
        super().__init__()
        self.state = state
        self.stage_name = stage_name
        self.model_to_save = model_to_save

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        for key in ("loss", "val_loss"):
            if key in logs and not math.isfinite(float(logs[key])):
                raise TrainingError(
                    f"The {key.replace('val_', 'validation ')} became {float(logs[key])} "
                    f"(NaN/inf) in stage {self.stage_name!r}, epoch {epoch + 1}: training "
                    f"diverged. The last good checkpoint, saved before this epoch, is kept in "
                    f"{self.state.folder}. Lower the "
                    "learning rate and run again in a new output folder.")
        rate = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        logs["learning_rate"] = float(rate)  # convert_to_numpy: works on GPU tensors too
        history = self.state.histories.setdefault(self.stage_name, {})
        for key, value in logs.items():
            history.setdefault(key, []).append(float(value))
        self.state.epoch = epoch + 1
        self.state.save(self.model_to_save or self.model)


def compile_for_stage(model, stage, steps_per_epoch, task):
    """Recompiles `model` with Adam at the stage's learning-rate schedule and
    the task's loss and metrics (a change of `trainable` only takes effect
    on compile).

    Example:
    >>> import keras
    >>> from keras_tl.tasks import get_task
    >>> from keras_tl.training.stages import Stage
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    >>> compile_for_stage(model, Stage("head"), 10, get_task("image_classification"))
    >>> type(model.optimizer).__name__
    'Adam'
    """
    model.compile(
        optimizer=keras.optimizers.Adam(stage_learning_rate(stage, steps_per_epoch)),
        **task.compile_options(),
    )


def run_stages(task, stages, checkpoint_dir, settings, class_weight=None,
               patience=3, verbose="auto"):
    """Fits `task.model` stage by stage, resuming from `checkpoint_dir`.

    A checkpoint made with other settings or on other data (`settings["data"]`,
    see `keras_tl.training.fingerprint`) is refused with a `ConfigError`
    naming what differs. Returns a `StagesOutcome`.

    Example:
    >>> outcome = run_stages(prepared, default_stages(), "runs/x/checkpoint", {})  # doctest: +SKIP
    """
    model = task.model
    state = RunState.load(checkpoint_dir)
    if state is not None:
        _check_same_run(state, settings, checkpoint_dir)
    if stages and all(stage.epochs == 0 for stage in stages):
        warnings.warn("Every stage has 0 epochs: the model is saved untrained.", UserWarning,
                      stacklevel=3)
    resuming = state is not None
    if state is None:
        state = RunState(checkpoint_dir, settings)
        fingerprint.write_listings(checkpoint_dir, settings.get("data") or {})
    steps = _steps_per_epoch(task.train)
    for index, stage in enumerate(stages):
        if index < state.stage_index or (index == state.stage_index and state.stage_done):
            continue
        task.apply_stage(model, stage)
        compile_for_stage(model, stage, steps, task.task)
        initial_epoch = state.epoch if index == state.stage_index else 0
        if resuming:
            state.restore(model, optimizer_too=initial_epoch > 0)
            logger.warning(
                "Resuming stage %r at epoch %d from %s", stage.name, initial_epoch, checkpoint_dir
            )
            resuming = False
        if index != state.stage_index or state.stage_done:
            state.stage_index, state.epoch, state.stage_done = index, 0, False
        if verbose:
            print(f"Stage {index + 1}/{len(stages)} {stage.name!r}: unfreeze={stage.unfreeze!r}, "
                  f"lr={stage.learning_rate:g}, epochs={stage.epochs}")
        callbacks = [_EpochCheckpoint(state, stage.name)]
        if task.validation is not None and patience:
            callbacks.insert(0, keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=patience, restore_best_weights=True))
        if stage.epochs > initial_epoch:
            with warnings.catch_warnings():  # our datasets are shuffled already
                warnings.filterwarnings("ignore", message=".*shuffle=True. was passed")
                model.fit(
                    task.train, validation_data=task.validation, epochs=stage.epochs,
                    initial_epoch=initial_epoch, class_weight=class_weight,
                    callbacks=callbacks, verbose=verbose,
                )
        state.stage_done = True
        state.save(model)  # with the best weights restored by early stopping
    if resuming:  # every stage was already done: load the final weights
        logger.warning("The run in %s had finished; loaded its weights.",
                       os.path.dirname(checkpoint_dir))
        task.apply_stage(model, stages[-1])
        compile_for_stage(model, stages[-1], steps, task.task)
        state.restore(model, optimizer_too=False)
    return StagesOutcome(state.histories, reloaded=resuming)


def _check_same_run(state, settings, checkpoint_dir):
    run = os.path.dirname(checkpoint_dir)
    changed = sorted(k for k in set(state.settings) | set(settings)
                     if k != "data" and state.settings.get(k) != settings.get(k))
    if changed:
        raise ConfigError(
            f"{run} holds a run with other settings ({', '.join(changed)} differ); pass a "
            "new output folder, or delete this one to start over."
        )
    data_change = fingerprint.describe_changes(
        checkpoint_dir, state.settings.get("data"), settings.get("data"))
    if data_change:
        raise ConfigError(
            f"{run} holds a run on other data ({data_change}); its model never saw this "
            "data. Pass a new output folder, or delete this one to start over."
        )


def _steps_per_epoch(dataset):
    steps = int(dataset.cardinality())
    if steps < 0:  # unknown or infinite
        steps = sum(1 for _ in dataset)
    return max(steps, 1)
