"""Runs the stages of a fine-tuning job on a `PreparedTask`."""

import dataclasses
import logging
import math
import os
import warnings
from typing import Any, Optional, Sequence

import keras

from keras_tl import _compat
from keras_tl.errors import ConfigError, TrainingError
from keras_tl.training import cache, fingerprint
from keras_tl.training.checkpoint import RunState
from keras_tl.training.schedules import last_step_rate, stage_learning_rate
from keras_tl.training.stages import AUTO, resolve_unfreeze

logger = logging.getLogger("keras_tl")


@dataclasses.dataclass
class TrainingOptions:
    """How `run_stages` trains, beyond the stages themselves.

    Attributes:
        class_weight: `{class_index: weight}` or `None`.
        patience: early-stopping patience on validation loss (0: off).
        verbose: Keras `fit` verbosity.
        optimizer: `"adam"`, `"adamw"` or `"sgd"`.
        weight_decay: AdamW's decoupled weight decay (default 1e-4).
        label_smoothing: for the task's cross-entropy loss.
        callbacks: Keras callbacks given to every stage's `fit` (in a stage
            on cached features, their `model` is the head model).
        cache_features: train frozen-backbone stages on cached backbone
            features where the task can split its model: `True`, `False`
            or `"auto"` (only when the features fit in memory).
        batch_size: the batch size of cached-feature datasets.
        seed: shuffling of cached-feature datasets.
        lr_find: keyword arguments of `lr_sweep` for `learning_rate="auto"`.
        report_dir: where `learning_rate="auto"` writes its plots.

    Example:
    >>> TrainingOptions(optimizer="adamw", label_smoothing=0.1).patience
    3
    """

    class_weight: Any = None
    patience: int = 3
    verbose: Any = "auto"
    optimizer: str = "adam"
    weight_decay: Optional[float] = None
    label_smoothing: float = 0.0
    callbacks: Sequence = ()
    cache_features: bool = False
    batch_size: int = 32
    seed: int = 0
    lr_find: dict = dataclasses.field(default_factory=dict)
    report_dir: Optional[str] = None


@dataclasses.dataclass
class StagesOutcome:
    """What `run_stages` did.

    Attributes:
        histories: `{stage_name: {metric: [per-epoch values]}}`.
        reloaded: the run had finished before: its weights were loaded and
            nothing was trained.
        learning_rates: `{stage_name: rate}` found by `learning_rate="auto"`.
        cached_stages: names of the stages trained on cached features.

    Example:
    >>> StagesOutcome(histories={}, reloaded=True).reloaded
    True
    """

    histories: dict
    reloaded: bool = False
    learning_rates: dict = dataclasses.field(default_factory=dict)
    cached_stages: list = dataclasses.field(default_factory=list)


class _EpochCheckpoint(keras.callbacks.Callback):
    """Records the learning rate and checkpoints after every epoch; a
    non-finite loss stops the run before anything is saved. In a stage on
    cached features (`save_every_epoch=False`) only the stage's end is saved:
    its epochs are cheap, and it restarts from the stage's beginning."""

    def __init__(self, state, stage_name, model_to_save=None, save_every_epoch=True):
        super().__init__()
        self.state = state
        self.stage_name = stage_name
        self.model_to_save = model_to_save
        self.save_every_epoch = save_every_epoch

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
        logs["learning_rate"] = last_step_rate(self.model.optimizer)  # not the next step's
        history = self.state.histories.setdefault(self.stage_name, {})
        for key, value in logs.items():
            history.setdefault(key, []).append(float(value))
        self.state.epoch = epoch + 1
        if self.save_every_epoch:
            self.state.save(self.model_to_save or self.model)


def compile_for_stage(model, stage, steps_per_epoch, task, options=None, rates_model=None):
    """Recompiles `model` for `stage`: the run's optimizer at the stage's
    learning-rate schedule, with layer-wise rates when the stage asks
    (computed on `rates_model`, default `model`), and the task's loss (with
    label smoothing) and metrics. A change of `trainable` only takes effect
    on compile.

    Example:
    >>> import keras
    >>> from keras_tl.tasks import get_task
    >>> from keras_tl.training.stages import Stage
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    >>> compile_for_stage(model, Stage("head"), 10, get_task("image_classification"))
    >>> type(model.optimizer).__name__
    'Adam'
    """
    from keras_tl.training.optimizers import build_optimizer, rate_multipliers

    options = options or TrainingOptions()
    multipliers = None
    if stage.layer_decay or stage.lr_multipliers:
        multipliers = rate_multipliers(rates_model or model, stage.layer_decay,
                                       stage.lr_multipliers)
    optimizer = build_optimizer(options.optimizer, stage_learning_rate(stage, steps_per_epoch),
                                options.weight_decay, multipliers)
    model.compile(optimizer=optimizer, **task.training_compile_options(options.label_smoothing))


def validate_stages(prepared, stages):
    """Checks every stage against the model before anything trains: what
    it unfreezes exists, its `lr_multipliers` name real blocks, its
    `layer_decay` has a backbone to apply to. Raises `ConfigError` naming
    the stage; leaves the model's `trainable` flags as they were.

    Example:
    >>> validate_stages(prepared, [Stage("ft", unfreeze="block99")])  # doctest: +SKIP
    Traceback (most recent call last):
    ...
    keras_tl.errors.ConfigError: Stage 'ft': No backbone layer is named or starts with 'block99'...
    """
    from keras_tl.training.optimizers import backbone_groups, check_multiplier_keys

    model = prepared.model
    flags = [(layer, layer.trainable)
             for layer in _compat.flatten_layers(model)]
    try:
        for stage in stages:
            try:
                if stage.lora_rank:
                    if not hasattr(_backbone_or_none(model), "enable_lora"):
                        raise ConfigError("lora_rank needs a keras_hub backbone (enable_lora).")
                else:
                    prepared.apply_stage(model, resolve_unfreeze(model, stage))
                if stage.layer_decay or stage.lr_multipliers:
                    if _backbone_or_none(model) is None:
                        raise ConfigError("layer_decay and lr_multipliers need a backbone layer.")
                    check_multiplier_keys(stage.lr_multipliers, backbone_groups(model))
            except (ValueError, TypeError) as error:
                message = str(error)
                if not message.startswith(f"Stage {stage.name!r}"):
                    message = f"Stage {stage.name!r}: {message}"
                raise ConfigError(message) from None
    finally:
        for layer, trainable in flags:  # parents first: their setter resets the children
            layer.trainable = trainable


def _backbone_or_none(model):
    from keras_tl.freezing import BACKBONE_LAYER

    try:
        return model.get_layer(BACKBONE_LAYER)
    except ValueError:
        return None


def run_stages(task, stages, checkpoint_dir, settings, class_weight=None,
               patience=3, verbose="auto", options=None):
    """Fits `task.model` stage by stage, resuming from `checkpoint_dir`.

    Every stage is checked against the model first (`validate_stages`). A
    checkpoint made with other settings or on other data (`settings["data"]`,
    see `keras_tl.training.fingerprint`) is refused with a `ConfigError`
    naming what differs. `options` (a `TrainingOptions`) overrides
    `class_weight`, `patience` and `verbose`. Returns a `StagesOutcome`.

    Example:
    >>> outcome = run_stages(prepared, default_stages(), "runs/x/checkpoint", {})  # doctest: +SKIP
    """
    options = options or TrainingOptions(class_weight=class_weight, patience=patience,
                                         verbose=verbose)
    model = task.model
    validate_stages(task, stages)
    state = RunState.load(checkpoint_dir)
    if state is not None:
        _check_same_run(state, settings, checkpoint_dir)
    if stages and all(stage.epochs == 0 and not stage.cached_epochs for stage in stages):
        warnings.warn("Every stage has 0 epochs: the model is saved untrained.", UserWarning,
                      stacklevel=3)
    resuming = state is not None
    if state is None:
        state = RunState(checkpoint_dir, settings)
        fingerprint.write_listings(checkpoint_dir, settings.get("data") or {})
    outcome = StagesOutcome(state.histories)
    for index, stage in enumerate(stages):
        if index < state.stage_index or (index == state.stage_index and state.stage_done):
            continue
        stage = resolve_unfreeze(model, stage)
        task.apply_stage(model, stage)
        split = cache_split(task, model, stage, options)
        first_epoch = state.epoch if index == state.stage_index else 0
        if split is not None:
            first_epoch = 0  # stages on cached features restart: they are not saved per epoch
        rate = state.learning_rates.get(stage.name) if stage.learning_rate == AUTO \
            else stage.learning_rate
        keep_optimizer = resuming and first_epoch > 0 and rate is not None
        steps = _steps_per_epoch(task.train)
        if resuming:
            if keep_optimizer:
                compile_for_stage(model, dataclasses.replace(stage, learning_rate=rate), steps,
                                  task.task, options)
            state.restore(model, optimizer_too=keep_optimizer)
            logger.warning(
                "Resuming stage %r at epoch %d from %s", stage.name, first_epoch, checkpoint_dir
            )
            resuming = False
        if index != state.stage_index or state.stage_done:
            state.stage_index, state.epoch, state.stage_done = index, 0, False
        train_model, train, validation = model, task.train, task.validation
        if split is not None:
            train, validation, size = cache.cached_datasets(
                split[0], task.task.cache_targets(model, task.train),
                task.task.cache_targets(model, task.validation), options.batch_size,
                options.seed, shard_dtype=task.task.cached_feature_dtype,
                verbose=bool(options.verbose))
            train_model = split[1]
            outcome.cached_stages.append(stage.name)
            logger.info("Stage %r trains on cached backbone features (%.1f MB).",
                        stage.name, size / 1e6)
        early_stopping = validation is not None and options.patience
        epochs = stage.epochs
        if split is not None and early_stopping and stage.cached_epochs is not None:
            epochs = stage.cached_epochs
        if rate is None:
            found = sweep_rate(task.task, train_model, train, stage, options, rates_model=model)
            if options.report_dir:
                found.save(options.report_dir, name=f"lr_find_{stage.name}")
            if options.verbose:
                print(f"Stage {stage.name!r}: suggested learning rate: {found.suggestion:.3g}")
            rate = state.learning_rates[stage.name] = found.suggestion
        run_stage = dataclasses.replace(stage, learning_rate=rate, epochs=epochs)
        if not keep_optimizer:
            compile_for_stage(train_model, run_stage, steps, task.task, options, rates_model=model)
        if options.verbose:
            where = " on cached features" if split is not None else ""
            if epochs != stage.epochs:  # the stage's cheap-epoch cap, not its epochs
                where += f" (cached_epochs cap instead of epochs={stage.epochs})"
            print(f"Stage {index + 1}/{len(stages)} {stage.name!r}: unfreeze={stage.unfreeze!r}, "
                  f"lr={rate:g}, epochs={epochs}{where}")
        callbacks = [_EpochCheckpoint(state, stage.name, model_to_save=model,
                                      save_every_epoch=split is None)]
        if early_stopping:
            callbacks.insert(0, keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=options.patience, restore_best_weights=True))
        callbacks += list(options.callbacks or ())
        if epochs > first_epoch:
            with warnings.catch_warnings():  # our datasets are shuffled already
                warnings.filterwarnings("ignore", message=".*shuffle=True. was passed")
                train_model.fit(
                    train, validation_data=validation, epochs=epochs,
                    initial_epoch=first_epoch, class_weight=options.class_weight,
                    callbacks=callbacks, verbose=options.verbose,
                )
        state.stage_done = True
        state.save(model)  # with the best weights restored by early stopping
    if resuming:  # every stage was already done: load the final weights
        logger.warning("The run in %s had finished; loaded its weights.",
                       os.path.dirname(checkpoint_dir))
        task.apply_stage(model, resolve_unfreeze(model, stages[-1]))
        state.restore(model, optimizer_too=False)
        outcome.reloaded = True
    _compile_plain(model, task.task)
    outcome.learning_rates = dict(state.learning_rates)
    return outcome


def cache_split(prepared, model, stage, options, with_validation=True):
    """The task's `(feature model, train model)` when `stage` can train on
    cached features (its frozen part computed once), else `None`; with
    `cache_features="auto"` only when the features of the training (and
    validation) examples fit in memory.

    Example:
    >>> cache_split(prepared, prepared.model, Stage("head"), TrainingOptions())  # doctest: +SKIP
    """
    if not options.cache_features or stage.lora_rank:
        return None
    split = prepared.task.split_head(model)
    if split is not None and options.cache_features == "auto":
        samples = prepared.info.get("num_train", 0)
        if with_validation:
            samples += prepared.info.get("num_validation", 0)
        if not cache.cache_fits_in_memory(split[0], samples):
            logger.warning("Stage %r: the backbone features of %d examples would not fit the "
                           "cache; it trains on the backbone.", stage.name, samples)
            return None
    return split


def sweep_rate(task, train_model, train, stage, options, rates_model):
    """The learning-rate sweep (`lr_sweep`) of `train_model` on `train`
    with the run's optimizer and `stage`'s layer-wise rates (computed on
    `rates_model`), the task's training loss, `options.lr_find` as the
    sweep's settings. Returns an `LRFinderResult`.

    Example:
    >>> sweep_rate(task, model, train, Stage("head"), TrainingOptions(), model)  # doctest: +SKIP
    """
    from keras_tl.training.lr_finder import lr_sweep
    from keras_tl.training.optimizers import build_optimizer, rate_multipliers

    multipliers = None
    if stage.layer_decay or stage.lr_multipliers:
        multipliers = rate_multipliers(rates_model, stage.layer_decay, stage.lr_multipliers)
    return lr_sweep(
        train_model, train, task.training_compile_options(options.label_smoothing)["loss"],
        lambda rate: build_optimizer(options.optimizer, rate, options.weight_decay, multipliers),
        class_weight=options.class_weight, **options.lr_find)


def _compile_plain(model, task):
    """Leaves the model compiled with Keras' own Adam and the task's plain
    loss, so its saved `.keras` file loads anywhere (no keras_tl optimizer
    or loss classes in its compile config)."""
    model.compile(optimizer=keras.optimizers.Adam(), **task.compile_options())


def _check_same_run(state, settings, checkpoint_dir):
    run = os.path.dirname(checkpoint_dir)
    changed = sorted(k for k in set(state.settings) | set(settings)
                     if k not in ("data", "distribution")
                     and state.settings.get(k) != settings.get(k))
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
