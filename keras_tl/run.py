"""`FinetuneRun`: one fine-tuning job, from data to a saved run folder.

`keras_tl.finetune`, `keras_tl.find_learning_rate` and the `keras-tl`
command all drive a `FinetuneRun`. It resolves the task and checks every
setting before anything loads (`__init__`), prepares the data and model
(`Task.prepare`, under the run's distribution and precision), trains the
stages with checkpoints (`keras_tl.training.loop`), evaluates, saves the
run folder (`FinetuneResult.save`) and exports.

On several processes (`distribute="multi_worker"`) every process runs the
same job; only process 0, the chief, writes the run folder. The others
resume from a copy of its checkpoint, write their checkpoints into a
temporary folder that is removed at the end, and save and export nothing.
"""

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import tempfile

import keras
import numpy as np

from keras_tl.errors import ConfigError
from keras_tl.result import MODEL_FILE, FinetuneResult
from keras_tl.tasks import calibration as calibration_lib
from keras_tl.tasks import find_task
from keras_tl.training import cache
from keras_tl.training import distribution as distribution_lib
from keras_tl.training import precision as precision_lib
from keras_tl.training.fingerprint import data_fingerprint
from keras_tl.training.loop import TrainingOptions, cache_split, run_stages, sweep_rate
from keras_tl.training.optimizers import check_optimizer
from keras_tl.training.stages import resolve_unfreeze


class FinetuneRun:
    """A fine-tuning job: its task, settings, prepared data, stages and run
    folder. See `keras_tl.finetune` for the arguments; `run()` does what
    `finetune` does, `find_learning_rate()` what `keras_tl.find_learning_rate`
    does. Every setting is checked on construction, before data or weights
    load.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 255, (16, 32, 32, 3))
    >>> run = FinetuneRun((images, [0, 1] * 8), "mobilenet_v2", weights=None, image_size=32,
    ...                   stages=[keras_tl.Stage("head", epochs=1)], verbose=0,
    ...                   output_dir=str(tmp_path / "finetune_run"))
    >>> run.task.name
    'image_classification'
    >>> result = run.run()
    >>> sorted(name for name in os.listdir(run.output_dir) if name.endswith(".json"))
    ['metrics.json', 'run.json']
    """

    def __init__(self, data, backbone=None, *, task=None, stages=None, output_dir=None,
                 weights="default", batch_size=32, validation_split=0.2, validation_data=None,
                 test_data=None, class_names=None, class_weight=None, dropout=None, patience=3,
                 seed=0, export=None, verbose="auto", optimizer="adam", weight_decay=None,
                 label_smoothing=0.0, callbacks=None, cache_features="auto", precision=None,
                 distribute=None, **task_options):
        # first: JAX can join a cluster only before it computes anything
        self.process_index, self.num_processes = distribution_lib.join_cluster(distribute)
        keras.utils.set_random_seed(seed)
        self.data, self.backbone = data, backbone
        self.output_dir = output_dir or os.path.join(
            "runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
        self.task = find_task(data, backbone, task)
        self.task_options = dict(task_options)
        self.options = self.task.check_options(task_options)
        self.precision = precision_lib.check_precision(precision)
        check_optimizer(optimizer, weight_decay)
        self.task.training_compile_options(label_smoothing)  # a loss with no smoothed form fails
        if class_weight is not None and self.task.class_weight_refused:
            raise ConfigError(f"class_weight={class_weight!r} does not apply to "
                              f"{self.task.name}: {self.task.class_weight_refused}.")
        self.stages = list(stages) if stages else None
        self.weights, self.class_names, self.class_weight = weights, class_names, class_weight
        self.common = dict(batch_size=batch_size, validation_split=validation_split,
                           validation_data=validation_data, test_data=test_data, seed=seed,
                           dropout=dropout)
        self.training = TrainingOptions(
            patience=patience, verbose=verbose, optimizer=optimizer, weight_decay=weight_decay,
            label_smoothing=label_smoothing, callbacks=list(callbacks or ()),
            cache_features=resolve_cache_features(cache_features, self.task, self.options),
            batch_size=batch_size, seed=seed, report_dir=self.output_dir)
        self.export_path, self.distribute = export, distribute
        self.chief = self.process_index == 0
        self.write_dir = self.output_dir  # the chief's; a worker's own temporary folder
        self.distribution = None
        self.prepared = None

    @contextlib.contextmanager
    def scope(self):
        """The run's distribution and precision, for preparing and training."""
        with distribution_lib.distribution_scope(self.distribute) as distribution, \
                precision_lib.precision_scope(self.precision):
            self.distribution = distribution
            yield

    def prepare(self):
        """Reads and splits the data and builds the model (`Task.prepare`);
        call inside `scope()`. Returns the `PreparedTask`."""
        prepared = self.task.prepare(self.data, self.backbone, weights=self.weights,
                                     class_names=self.class_names, **self.common, **self.options)
        if self.precision != "float32":
            precision_lib.float32_outputs(prepared.model)
        distribution_lib.check_distributed(prepared.model, self.distribution)
        if self.class_weight == "balanced":
            self.class_weight = balanced_class_weight(prepared)
        check_class_weight(self.class_weight, prepared.class_names)
        self.training.class_weight = self.class_weight
        self.stages = self.stages or list(self.task.default_stages())
        self.prepared = prepared
        return prepared

    def settings(self):
        """What the run folder's checkpoint is checked against on resume:
        a rerun with other settings or on other data is refused."""
        prepared, common = self.prepared, self.common
        settings = dict(
            info={k: v for k, v in prepared.info.items() if not k.startswith("num_")},
            class_names=prepared.class_names,
            stages=[s.to_config() for s in self.stages],
            batch_size=common["batch_size"], seed=common["seed"], dropout=common["dropout"],
            class_weight=self.class_weight,
            task_options={k: v if isinstance(v, (bool, int, float, str, type(None))) else repr(v)
                          for k, v in self.task_options.items()},
            data=dict(train=data_fingerprint(self.data),
                      validation=data_fingerprint(common["validation_data"])),
            training=dict(optimizer=self.training.optimizer,
                          weight_decay=self.training.weight_decay,
                          label_smoothing=self.training.label_smoothing,
                          precision=self.precision,
                          cache_features=self.training.cache_features),
        )
        if common["validation_data"] is None and common["validation_split"]:
            settings["validation_split"] = common["validation_split"]
        if self.distribution is not None:  # recorded, but a run may resume on other devices
            settings["distribution"] = self.distribution
        # round-trip through JSON so it compares equal to the saved copy
        return json.loads(json.dumps(settings, default=str))

    def evaluate(self):
        """`{"validation": metrics, "test": metrics}` of the prepared model;
        with the task option `tta` on (image classifiers), each measured
        part also has `accuracy_tta`, the accuracy with test-time
        augmentation (`Classification.tta_accuracy`)."""
        prepared = self.prepared
        metrics = {part: self.task.evaluate(prepared.model, getattr(prepared, part),
                                            prepared.class_names)
                   for part in ("validation", "test")}
        if self.options.get("tta"):
            for part, values in metrics.items():
                if values is not None:
                    values["accuracy_tta"] = self.task.tta_accuracy(
                        prepared.model, getattr(prepared, part), prepared.info)
        return metrics

    def calibrate(self, reloaded=False):
        """With the task option `calibrate` on (classifiers; the default),
        fits a softmax temperature on the validation data and composes it
        into the prepared model (`keras_tl.tasks.calibration.calibrate`);
        a finished run that is `reloaded` keeps the temperature its
        `metrics.json` records. Returns the `Calibration`, or `None` when
        the task or the option calibrates nothing."""
        if not self.options.get("calibrate"):
            return None
        temperature = None
        path = os.path.join(self.output_dir, "metrics.json")
        if reloaded and os.path.exists(path):
            with open(path) as f:
                temperature = calibration_lib.recorded_temperature(json.load(f))
        return calibration_lib.calibrate(self.prepared, temperature=temperature)

    def fit_thresholds(self, metrics):
        """For a task with the option `thresholds` (multi-label classifiers):
        its per-class decision thresholds, chosen on the validation data
        unless the option is off, go into the run's `info` (which predict
        and the exports read), and `metrics` gets the scores at them
        (`MultiLabelImageClassification.fit_thresholds`); other tasks'
        `metrics` are returned as they are."""
        if "thresholds" not in self.options:
            return metrics
        return self.task.fit_thresholds(self.prepared, metrics,
                                        choose=bool(self.options["thresholds"]))

    def run(self):
        """Prepares, trains every stage (resuming from the run folder),
        calibrates (classifiers), evaluates, chooses decision thresholds
        (multi-label classifiers), saves the run folder and exports; returns the
        `FinetuneResult`."""
        try:
            self.write_dir = self.output_dir if self.chief else self._worker_copy()
            self.training.report_dir = self.write_dir
            with self.scope():
                prepared = self.prepare()
                settings = self.settings()
                outcome = run_stages(prepared, self.stages,
                                     os.path.join(self.write_dir, "checkpoint"), settings,
                                     options=self.training)
                calibration = self.calibrate(reloaded=outcome.reloaded)
                metrics = self.evaluate()
                if calibration is not None:
                    metrics = calibration.add_to(metrics)
                metrics = self.fit_thresholds(metrics)
        finally:
            if not self.chief:
                shutil.rmtree(self.write_dir, ignore_errors=True)
        distribution_lib.for_single_device_inference(
            [prepared.model, prepared.inference_model], self.distribution)
        result = FinetuneResult(
            model=prepared.model, class_names=prepared.class_names, histories=outcome.histories,
            metrics=metrics, info=prepared.info, config=settings, output_dir=self.output_dir,
            stages=self.stages, task=prepared, verification_sample=prepared.sample,
            representative_sample=prepared.representative)
        if not self.chief:  # the chief saves and exports the same model
            return result
        # a finished run's folder is left as it was: a reload never overwrites its model
        if not (outcome.reloaded and os.path.exists(os.path.join(self.output_dir, MODEL_FILE))):
            result.save(self.output_dir)
        if self.export_path:
            from keras_tl.exporters import export  # the exporters import TensorFlow

            result.exports = export(result, self.export_path)
        return result

    def _worker_copy(self):
        """A non-chief process's temporary run folder, holding a copy of the
        chief's checkpoint (the output folder is shared): every process
        resumes from the same epoch and checks the same settings."""
        # named after the output folder: a relaunch replaces what a killed
        # process left there instead of adding a folder
        digest = hashlib.sha256(os.path.abspath(self.output_dir).encode()).hexdigest()[:12]
        folder = os.path.join(tempfile.gettempdir(),
                              f"keras_tl-worker{self.process_index}-{digest}")
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        checkpoint = os.path.join(self.output_dir, "checkpoint")
        if os.path.exists(checkpoint):
            shutil.copytree(checkpoint, os.path.join(folder, "checkpoint"))
        return folder

    def find_learning_rate(self, stage=None, start_lr=1e-7, end_lr=10.0, num_steps=100,
                           output_dir=None, verbose=True):
        """The learning-rate sweep of `stage` (default: the task's first),
        on the run's data and model, on cached features where the stage
        allows it; writes `lr_find.png`/`.json` into `output_dir` when
        given. Returns an `LRFinderResult`."""
        with self.scope():
            prepared = self.prepare()
            stage = resolve_unfreeze(prepared.model, stage or self.stages[0])
            prepared.apply_stage(prepared.model, stage)
            model, train = prepared.model, prepared.train
            split = cache_split(prepared, model, stage, self.training, with_validation=False)
            if split is not None:
                train, _, _ = cache.cached_datasets(split[0], prepared.train, None,
                                                    self.training.batch_size, self.training.seed)
                model = split[1]
            self.training.lr_find = dict(start_lr=start_lr, end_lr=end_lr, num_steps=num_steps)
            result = sweep_rate(prepared.task, model, train, stage, self.training,
                                rates_model=prepared.model)
        if output_dir and self.chief:
            result.save(output_dir)
        if verbose:
            print(f"suggested learning rate: {result.suggestion:.3g}")
        return result


def check_class_weight(class_weight, class_names):
    """A `ConfigError` unless `class_weight` is `None` or maps class indices
    to weights.

    Example:
    >>> check_class_weight({2: 1.0}, ["a", "b"])
    Traceback (most recent call last):
    ...
    keras_tl.errors.ConfigError: class_weight has keys [2] that are not class indices 0..1 (a, b).
    """
    if class_weight is None:
        return
    if not isinstance(class_weight, dict):
        raise ConfigError(
            f"class_weight must be None, 'balanced' or {{class_index: weight}}; got {class_weight!r}.")
    unknown = sorted(set(class_weight) - set(range(len(class_names))), key=str)
    if unknown:
        raise ConfigError(
            f"class_weight has keys {unknown} that are not class indices 0..{len(class_names) - 1} "
            f"({', '.join(class_names)}).")


def balanced_class_weight(prepared):
    """`{class: n / (k * n_class)}` from the training labels of a prepared task.

    Example:
    >>> import tensorflow as tf, types
    >>> train = tf.data.Dataset.from_tensor_slices((np.zeros(6), [0, 0, 0, 0, 1, 1])).batch(4)
    >>> balanced_class_weight(types.SimpleNamespace(train=train, class_names=["a", "b"]))
    {0: 0.75, 1: 1.5}
    """
    labels = np.concatenate([np.asarray(y) for _, y in prepared.train.as_numpy_iterator()])
    counts = np.bincount(labels, minlength=len(prepared.class_names))
    return {
        i: float(len(labels) / (len(counts) * c)) if c else 0.0
        for i, c in enumerate(counts)
    }


def resolve_cache_features(cache_features, task, options):
    """`cache_features` for this task and its options: `"auto"` is off
    with augmentation; `True` with augmentation is a `ConfigError`.

    Example:
    >>> from keras_tl.tasks import get_task
    >>> resolve_cache_features("auto", get_task("image_classification"), {"augment": True})
    False
    """
    if cache_features not in ("auto", True, False):
        raise ConfigError(f"cache_features must be 'auto', True or False; got {cache_features!r}.")
    if cache_features and task.train_is_random(options):
        if cache_features is True:
            raise ConfigError("cache_features=True cannot be used with augmentation: the "
                              "backbone sees other inputs every epoch. Use 'auto' or False.")
        return False
    return cache_features
