"""The task contract: everything that differs between kinds of fine-tuning job.

`keras_tl.finetune`, the CLI, `FinetuneResult` and the exporters know no
modality. They ask the run's `Task` (found in `keras_tl.tasks.registry`):

- data: `recognizes` (is this my kind of data?), `prepare` (load, split,
  build the model on a backbone; returns a `PreparedTask`);
- training: `default_stages`, `compile_options` (loss, metrics),
  `apply_stage` (which backbone blocks train);
- inference: `prepare_inputs` (raw inputs to model inputs, the way training
  read them) and `postprocess` (model outputs to predictions);
- export: `export_spec` (what its exports serve: signatures and their
  contracts, the Keras model converting formats convert, assets, the
  verification inputs and reference, how a converted model is judged: a
  `keras_tl.export_spec.ExportSpec`, which each exporter reads; no hook
  names a format) and `model_info` (a bare model's info);
- reports: `write_reports` (plots beside a run).

A task instance holds no data: what a run needs later (input size,
preprocessing, class names) travels in `info`, so an export subprocess or a
reloaded run gets the same task back from `info["task"]`.
"""

import dataclasses
import os
from typing import Any, Dict, List, Optional, Tuple

from keras_tl.errors import ConfigError, DataNotFoundError
from keras_tl.tasks.options import Option, defaults


@dataclasses.dataclass
class PreparedTask:
    """A task's data and model, ready for `keras_tl.finetune`'s stages.

    Attributes:
        task: the `Task` that prepared it.
        model: an uncompiled `keras.Model` with a layer named `"backbone"`.
        class_names: class names, index i for class id i.
        train: batched `tf.data.Dataset` of `(inputs, targets)`.
        validation: the same for validation, or `None`.
        test: the same for test, or `None`.
        info: JSON-ready facts the task needs again at export or reload
            time (`task`, `modality`, `backbone`, input size, preprocessing...).
        inference_model: what export and predict use when it differs from
            `model` (e.g. a text model that takes raw strings); else `None`.
        sample: up to 32 raw validation inputs (images, texts...), kept
            with the run to verify exports on real data.
        representative: as many raw training inputs, kept with the run to
            calibrate quantized exports (int8 LiteRT) on real data.

    Example:
    >>> from keras_tl.tasks import get_task
    >>> task = get_task("image_classification")
    >>> prepared = PreparedTask(task, model=None, class_names=["a", "b"],
    ...                         train=None, validation=None, test=None)
    >>> prepared.info["task"]
    'image_classification'
    """

    task: Any
    model: Any
    class_names: List[str]
    train: Any
    validation: Optional[Any]
    test: Optional[Any]
    info: Dict[str, Any] = dataclasses.field(default_factory=dict)
    inference_model: Optional[Any] = None
    sample: Optional[Any] = None
    representative: Optional[Any] = None

    def __post_init__(self):
        self.info = dict(task=self.task.name, modality=self.task.modality, **self.info)

    def apply_stage(self, model, stage):
        """Sets `trainable` flags for `stage` (the loop recompiles after); a
        fractional `unfreeze` counts the backbone's blocks as the loop does.

        Example:
        >>> prepared.apply_stage(prepared.model, Stage("head"))  # doctest: +SKIP
        """
        from keras_tl.training.stages import resolve_unfreeze

        self.task.apply_stage(model, resolve_unfreeze(model, stage), self.info)


def check_data_path(data):
    """A `DataNotFoundError` when `data` names a file or folder that does
    not exist (checked before any backbone loads); other data passes.

    Example:
    >>> check_data_path("no/such/folder")
    Traceback (most recent call last):
    ...
    keras_tl.errors.DataNotFoundError: Data folder not found: no/such/folder
    """
    if isinstance(data, (str, os.PathLike)) and not str(data).startswith("tfds:"):
        if not os.path.exists(data):
            kind = "file" if os.path.splitext(os.fspath(data))[1] else "folder"
            raise DataNotFoundError(f"Data {kind} not found: {os.fspath(data)}")


class Task:
    """Base class of keras_tl's tasks; see the module docstring.

    Subclasses set the class attributes and implement the methods that
    raise `NotImplementedError`. `options` declares each task-specific
    keyword of `keras_tl.finetune` (a tuple of `keras_tl.tasks.options.Option`:
    name, type, default, help, choices); the `keras-tl finetune` flags are
    made from them. `file_extensions` are the files this task reads from a
    folder with one sub-folder per class (the most common kind there
    decides the task, `find_task`).

    Example:
    >>> from keras_tl.tasks import get_task
    >>> task = get_task("image_classification")
    >>> task.modality, [option.flag for option in task.options][:2]
    ('image', ['--image-size', '--augment'])
    """

    name = ""
    modality = ""
    default_backbone = None
    options: Tuple[Option, ...] = ()
    file_extensions: Tuple[str, ...] = ()
    # what a stage on cached features writes to disk beyond the cache's
    # memory budget (`keras_tl.training.cache.cached_datasets(shard_dtype=)`)
    cached_feature_dtype = "float32"
    # why `finetune(class_weight=...)` cannot weight this task's targets
    # (None: Keras's per-example class weighting applies)
    class_weight_refused = None

    def __repr__(self):
        return f"<keras_tl task {self.name}>"

    # -- data ---------------------------------------------------------------
    def recognizes(self, data, backbone=None):
        """Whether `data` (or the backbone named) is this task's kind."""
        return False

    def check_options(self, options):
        """`options` with this task's defaults filled in; an unknown name is
        a `ConfigError` listing the valid ones.

        Example:
        >>> from keras_tl.tasks import get_task
        >>> get_task("image_classification").check_options({"colour": 1})
        Traceback (most recent call last):
        ...
        keras_tl.errors.ConfigError: Unknown option 'colour' for image_classification data; valid: augment, calibrate, data_dir, image_size, preprocessing, skip_corrupt, tta.
        """
        declared = defaults(self.options)
        unknown = sorted(set(options) - set(declared))
        if unknown:
            valid = ", ".join(sorted(declared)) or "none"
            raise ConfigError(
                f"Unknown option {unknown[0]!r} for {self.name} data; valid: {valid}."
            )
        return {**declared, **options}

    def prepare(self, data, backbone=None, *, weights="default", batch_size=32,
                validation_split=0.2, validation_data=None, test_data=None,
                class_names=None, dropout=None, seed=0, **options):
        """Loads the backbone, reads and splits `data`, builds the model and
        batches every part; returns a `PreparedTask`. Every task runs this
        template and overrides its steps: `load_backbone`, `read`, `split`,
        `build_model`, `dataset`, `verification_sample`, `inference_model`.

        Paths are checked before anything loads; validation and test data
        are read with the training classes. See `keras_tl.finetune` for the
        arguments; `options` are the task's own (`Task.options`).

        Example:
        >>> x = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3))
        >>> prepared = get_task("image_classification").prepare(
        ...     (x, [0, 1] * 4), "mobilenet_v2", weights=None, image_size=32,
        ...     validation_split=0.25)
        >>> prepared.class_names, prepared.info["num_train"], prepared.info["num_validation"]
        (['0', '1'], 6, 2)
        """
        options = self.check_options(options)
        for given in (data, validation_data, test_data):
            check_data_path(given)
        loaded = self.load_backbone(backbone or self.default_backbone, weights, **options)
        train = self.read(data, loaded, class_names=class_names, **options)
        names = list(train.class_names)
        if validation_data is not None:
            validation = self.read(validation_data, loaded, class_names=names, min_classes=1,
                                   **options)
        elif validation_split:
            train, validation = self.split(train, validation_split, seed)
        else:
            validation = None
        test = None
        if test_data is not None:
            test = self.read(test_data, loaded, class_names=names, min_classes=1, **options)
        model, info = self.build_model(loaded, names, train, dropout, **options)
        parts = dict(train=train, validation=validation, test=test)
        info = dict(backbone=loaded.spec.name, backbone_source=loaded.spec.source,
                    weights=loaded.weights, **info,
                    **{f"num_{name}": len(part) if part is not None else 0
                       for name, part in parts.items()})

        def dataset(name):
            if parts[name] is None:
                return None
            return self.dataset(parts[name], loaded, info, batch_size, training=name == "train",
                                seed=seed, **options)

        return PreparedTask(
            task=self, model=model, class_names=names,
            train=dataset("train"), validation=dataset("validation"), test=dataset("test"),
            sample=None if validation is None else self.verification_sample(validation, info),
            representative=self.representative_sample(train, info),
            inference_model=self.inference_model(model, loaded, names),
            info=info)

    def read(self, data, loaded, class_names=None, min_classes=2, **options):
        """The examples of `data` for the backbone `loaded` (its input size):
        an object with `class_names` and a length that `split` and `dataset`
        take (e.g. `LabelledArrays`, a lazy image source); labels index
        `class_names` when given (validation and test data)."""
        raise NotImplementedError

    def split(self, examples, fraction, seed):
        """`(train, validation)`: a seeded split keeping class proportions
        (default: `stratified_split` on `examples.labels`, then
        `examples.subset`).

        Example:
        >>> from keras_tl.data.examples import LabelledArrays
        >>> data = LabelledArrays(np.arange(8), [0, 0, 0, 0, 1, 1, 1, 1], ["a", "b"])
        >>> train, validation = Task().split(data, 0.25, seed=0)
        >>> len(train), sorted(validation.labels.tolist())
        (6, [0, 1])
        """
        from keras_tl.data.splits import stratified_split

        train_idx, val_idx = stratified_split(examples.labels, fraction, seed)
        return examples.subset(train_idx), examples.subset(val_idx)

    def load_backbone(self, backbone, weights, **options):
        """The `LoadedBackbone` the model is built on."""
        from keras_tl.backbones import load_backbone

        return load_backbone(backbone, weights=weights)

    def build_model(self, loaded, class_names, train, dropout, **options):
        """`(model, info)`: the uncompiled model on `loaded` and the facts
        about it `info` records (input size, preprocessing...); `train` are
        the training examples (e.g. a detector chooses anchors from them)."""
        raise NotImplementedError

    def dataset(self, examples, loaded, info, batch_size, training=False, seed=0, **options):
        """A batched `tf.data.Dataset` of `(model inputs, targets)`; the
        training part shuffled (and augmented when the options say so)."""
        raise NotImplementedError

    def verification_sample(self, examples, info):
        """Up to 32 raw validation inputs, kept with the run to verify
        exports on real data (default: none).

        Example:
        >>> Task().verification_sample(None, {}) is None
        True
        """
        return None

    def representative_sample(self, examples, info):
        """Raw training inputs that calibrate quantized exports: what
        `verification_sample` picks, from the training part (on a copy of
        `info`, which a sample may annotate).

        Example:
        >>> Task().representative_sample(None, {}) is None
        True
        """
        return self.verification_sample(examples, dict(info))

    def inference_model(self, model, loaded, class_names):
        """The model export and predict use when it is not `model` (e.g. a
        text model that takes raw strings); default `None`.

        Example:
        >>> Task().inference_model("the model", None, []) is None
        True
        """
        return None

    # -- training -----------------------------------------------------------
    def default_stages(self):
        """The stages `finetune` runs when none are given."""
        from keras_tl.training.stages import default_stages

        return default_stages()

    def compile_options(self):
        """`loss` and `metrics` for `model.compile`."""
        raise NotImplementedError

    def training_compile_options(self, label_smoothing=0.0):
        """`compile_options()` for training, its cross-entropy loss with
        `label_smoothing` when > 0 (a `ConfigError` for a loss that has no
        smoothed form).

        Example:
        >>> from keras_tl.tasks import get_task
        >>> options = get_task("image_classification").training_compile_options(0.1)
        >>> type(options["loss"]).__name__, options["metrics"]
        ('SmoothedSparseCategoricalCrossentropy', ['accuracy'])
        """
        from keras_tl.training.losses import with_label_smoothing

        options = dict(self.compile_options())
        try:
            options["loss"] = with_label_smoothing(options["loss"], label_smoothing)
        except ValueError as error:
            raise ConfigError(f"{self.name}: {error}") from None
        return options

    def split_head(self, model):
        """`(feature_model, train_model)` sharing `model`'s layers, where the
        feature model computes the part frozen in the current stage (the
        backbone and weightless layers after it, or the backbone's frozen
        bottom) and the train model maps its output to the model's outputs;
        `None` when the model cannot be split (default). Lets a stage train
        on features computed once (`finetune(cache_features=)`).

        Example:
        >>> Task().split_head(None) is None
        True
        """
        return None

    def cache_targets(self, model, dataset):
        """`dataset` (batched `(inputs, targets)`, or `None`) with its targets
        as the train model of `split_head` takes them, for a stage on cached
        features (default: as they are; a detector encodes its anchor
        targets once here).

        Example:
        >>> Task().cache_targets(None, "the dataset")
        'the dataset'
        """
        return dataset

    def train_is_random(self, options):
        """Whether the training inputs change from epoch to epoch with these
        task `options` (augmentation): then backbone features cannot be
        cached (default: the `augment` option).

        Example:
        >>> Task().train_is_random({"augment": True})
        True
        """
        return bool(options.get("augment"))

    def apply_stage(self, model, stage, info):
        """Freezes/unfreezes backbone blocks for `stage`."""
        from keras_tl.freezing import freeze_backbone, unfreeze_backbone

        if stage.unfreeze is None or stage.unfreeze == "none":
            freeze_backbone(model)
        else:
            unfreeze_backbone(model, stage.unfreeze, train_batchnorm=stage.train_batchnorm)

    def evaluate(self, model, dataset, class_names=None):
        """Metrics of `model` on a batched dataset (`None` for no data).

        Example:
        >>> get_task("image_classification").evaluate(None, None) is None
        True
        """
        if dataset is None:
            return None
        values = model.evaluate(dataset, verbose=0, return_dict=True)
        return {key: float(value) for key, value in values.items()}

    # -- inference ----------------------------------------------------------
    def tta_views(self, model_inputs, info):
        """The views of a batch of model inputs (as `prepare_inputs` returns
        them) that test-time augmentation averages the model's outputs
        over, the inputs themselves first; `None` (default) when the task
        has no test-time augmentation.

        Example:
        >>> Task().tta_views(np.zeros((1, 4)), {}) is None
        True
        """
        return None

    def tta_outputs(self, predict, model_inputs, info):
        """Test-time augmentation: the mean of `predict` (a model's predict
        function, returning an array, or an export's, returning named
        outputs) over `tta_views` of `model_inputs`, as float32; `None`
        when the task has no views. Of named outputs, the float ones are
        averaged and the others (class ids, names) are those of the
        inputs as given.

        Example:
        >>> from keras_tl.tasks import get_task
        >>> images = np.arange(4, dtype="float32").reshape(1, 1, 4, 1) * np.ones(3)
        >>> get_task("image_classification").tta_outputs(
        ...     lambda x: x[:, 0, :2, 0], images, {})  # columns 0, 1 and, flipped, 3, 2
        array([[1.5, 1.5]], dtype=float32)
        >>> get_task("image_classification").tta_outputs(
        ...     lambda x: {"probabilities": x[:, 0, :2, 0], "class_ids": np.array([1])},
        ...     images, {})
        {'probabilities': array([[1.5, 1.5]], dtype=float32), 'class_ids': array([1])}
        """
        import numpy as np

        views = self.tta_views(model_inputs, info)
        if views is None:
            return None
        outputs = [predict(view) for view in views]

        def mean(values):
            return np.mean([np.asarray(v, dtype="float64") for v in values], axis=0).astype(
                "float32")

        if isinstance(outputs[0], dict):
            return {name: mean([o[name] for o in outputs])
                    if np.asarray(value).dtype.kind == "f" else value
                    for name, value in outputs[0].items()}
        return mean(outputs)

    def prepare_inputs(self, inputs, info):
        """Raw inputs (files, arrays...) as the model takes them."""
        return inputs

    def postprocess(self, outputs, class_names, top=3, inputs=None, info=None):
        """Model outputs to one prediction per input; `inputs` (the raw
        inputs as given) and `info` let a task map outputs back to them
        (e.g. boxes to each image's own size)."""
        raise NotImplementedError

    # -- export -------------------------------------------------------------
    def export_spec(self, model, info, class_names, sample=None):
        """The `keras_tl.export_spec.ExportSpec` of `model`: the graphs its
        exports serve, their contracts, what converting formats convert,
        the assets written beside, the verification inputs (from `sample`,
        real validation inputs, when given) and how outputs are judged.
        With `model=None` (reading an export back), the contracts, feeds
        and `postprocess` only.

        Example:
        >>> Task().export_spec(None, {}, [])
        Traceback (most recent call last):
        ...
        NotImplementedError
        """
        raise NotImplementedError

    def model_info(self, model):
        """For a bare model given to `export` (no run): the `info` its
        export needs (input size, preprocessing...), or `None` when the
        model is not this task's kind (default: `None`).

        Example:
        >>> Task().model_info(None) is None
        True
        """
        return None

    # -- reports ------------------------------------------------------------
    def write_reports(self, result, output_dir):
        """Writes the task's plots into `output_dir`."""
        import os

        from keras_tl import reports

        reports.plot_training_curves(result.histories, os.path.join(output_dir, "training_curves.png"))
