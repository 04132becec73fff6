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
from typing import Any, Dict, List, Optional

from keras_tl.errors import ConfigError


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

    def __post_init__(self):
        self.info = dict(task=self.task.name, modality=self.task.modality, **self.info)

    def apply_stage(self, model, stage):
        """Sets `trainable` flags for `stage` (the loop recompiles after); a
        fractional `unfreeze` counts the backbone's blocks as the loop does.

        Example:
        >>> prepared.apply_stage(prepared.model, Stage("head"))  # doctest: +SKIP
        """
        from keras_tl.training.loop import resolve_unfreeze

        self.task.apply_stage(model, resolve_unfreeze(model, stage), self.info)


class Task:
    """Base class of keras_tl's tasks; see the module docstring.

    Subclasses set the class attributes and implement the methods that
    raise `NotImplementedError`. `options` maps each task-specific keyword
    of `keras_tl.finetune` to its default.

    Example:
    >>> from keras_tl.tasks import get_task
    >>> task = get_task("image_classification")
    >>> task.modality, "image_size" in task.options
    ('image', True)
    """

    name = ""
    modality = ""
    default_backbone = None
    options: Dict[str, Any] = {}

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
        keras_tl.errors.ConfigError: Unknown option 'colour' for image_classification data; valid: augment, data_dir, image_size, preprocessing, skip_corrupt.
        """
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            valid = ", ".join(sorted(self.options)) or "none"
            raise ConfigError(
                f"Unknown option {unknown[0]!r} for {self.name} data; valid: {valid}."
            )
        return {**self.options, **options}

    def prepare(self, data, backbone=None, **kwargs):
        """Loads and splits `data`, builds the model; returns a `PreparedTask`."""
        raise NotImplementedError

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
