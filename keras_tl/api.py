"""`keras_tl.finetune`: one call from data and a backbone to a trained model."""

import datetime
import json
import os

from keras_tl.result import FinetuneResult


def finetune(
    data,
    backbone=None,
    *,
    task=None,
    stages=None,
    output_dir=None,
    weights="default",
    batch_size=32,
    validation_split=0.2,
    validation_data=None,
    test_data=None,
    class_names=None,
    class_weight=None,
    dropout=None,
    patience=3,
    seed=0,
    export=None,
    verbose="auto",
    optimizer="adam",
    weight_decay=None,
    label_smoothing=0.0,
    callbacks=None,
    cache_features="auto",
    precision=None,
    distribute=None,
    **task_options,
):
    """Fine-tunes a pretrained backbone on `data` and returns a `FinetuneResult`.

    The task (image, text or keyword classification, ...) is recognised
    from the data, or named with `task=`. Stage 1 trains a new head with
    the backbone frozen; stage 2 unfreezes the backbone (for images its top
    quarter; BatchNorm statistics stay frozen) and trains at a lower rate
    with warm-up and cosine decay (the task's `default_stages()`). What a
    stage keeps frozen is computed once when the data is not augmented
    (`cache_features`), so those epochs are cheap and the head trains until
    validation loss stops improving. Early stopping on validation loss
    restores the best weights of each stage. Checkpoints go under
    `output_dir` after every epoch (after the whole stage, for a stage on
    cached features); calling again with the same `output_dir` resumes
    where the run stopped, on the same data and settings only
    (docs/training.md).

    Args:
        data: image data (a folder with one sub-folder per class, an
            `(images, labels)` pair of arrays, a `tf.data.Dataset` of
            `(image, label)`, or `"tfds:NAME[:SPLIT]"` with `data_dir`);
            text data (a CSV file, a folder of `.txt` files per class, or
            `(texts, labels)`); see each task for its forms.
        backbone: a name from `keras_tl.list_backbones()`, a keras_hub
            preset (folder or handle), or a `keras.Model`. Default: the
            task's default backbone.
        task: a name from `keras_tl.tasks.list_tasks()`; default: recognised.
        stages: a list of `keras_tl.Stage`; default the task's stages.
        output_dir: where checkpoints, the model and reports go; default
            `runs/<time stamp>`.
        weights: `"default"`, `"imagenet"`, `None` or a weights file path.
        batch_size: training batch size.
        validation_split: fraction held out (stratified, seeded) when no
            `validation_data` is given.
        test_data: optional data in the same forms as `data`.
        class_names: names for integer labels of arrays.
        class_weight: `None`, `"balanced"` or `{class_index: weight}`.
        dropout: dropout before the classification layer (default: the
            task's, 0.2 for images, 0.1 for text).
        patience: early-stopping patience in epochs (0 disables it).
        seed: makes splits, shuffling and initialisation repeatable.
        export: a folder (e.g. `"saved_models/flowers"`) to export to at the
            end with `keras_tl.export`.
        verbose: Keras `fit` verbosity.
        optimizer: `"adam"` (default), `"adamw"` or `"sgd"` (Nesterov
            momentum 0.9); every stage gets a fresh one.
        weight_decay: AdamW's decoupled weight decay (default 1e-4).
        label_smoothing: label smoothing of the cross-entropy loss (0: none).
        callbacks: Keras callbacks passed to every stage's `fit` (e.g.
            `keras.callbacks.TensorBoard`); in a stage on cached features
            their `model` is the head model.
        cache_features: `"auto"` (default): a stage with the backbone
            frozen and no augmentation trains the head on backbone features
            computed once (train and validation), then puts the head back
            on the backbone; `True` forces it (an error with augmentation),
            `False` trains on the backbone every epoch.
        precision: `None`/`"float32"`, `"mixed_bfloat16"` or
            `"mixed_float16"` (16-bit compute, float32 variables; the
            output layer stays float32).
        distribute: `None`, `"auto"` (data-parallel when there are several
            devices) or `"data_parallel"` (JAX or TensorFlow; `batch_size`
            is the global batch, split between devices).
        **task_options: the task's own options, e.g. for images
            `image_size`, `augment`, `skip_corrupt`, `data_dir`; for text
            `text_column`, `label_column`, `sequence_length`
            (`keras_tl.tasks.get_task(name).options` lists them).

    Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 255, (16, 32, 32, 3))
    >>> result = keras_tl.finetune(
    ...     (images, [0, 1] * 8), "mobilenet_v2", weights=None, image_size=32,
    ...     stages=[keras_tl.Stage("head", epochs=1)], verbose=0,
    ...     output_dir=str(tmp_path / "run"))
    >>> result.class_names, sorted(result.metrics["validation"])
    (['0', '1'], ['accuracy', 'loss'])
    """
    import keras

    from keras_tl.tasks import find_task

    from keras_tl.training import distribution as distribution_lib
    from keras_tl.training import precision as precision_lib
    from keras_tl.training.loop import TrainingOptions, run_stages

    keras.utils.set_random_seed(seed)
    output_dir = output_dir or os.path.join(
        "runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    task = find_task(data, backbone, task)
    options = task.check_options(task_options)
    precision = precision_lib.check_precision(precision)
    from keras_tl.training.optimizers import check_optimizer

    check_optimizer(optimizer, weight_decay)  # before anything loads
    task.training_compile_options(label_smoothing)
    training = dict(optimizer=optimizer, weight_decay=weight_decay,
                    label_smoothing=label_smoothing, precision=precision,
                    cache_features=_resolve_cache_features(cache_features, task, options))
    common = dict(
        batch_size=batch_size, validation_split=validation_split,
        validation_data=validation_data, test_data=test_data, seed=seed,
        dropout=dropout,
    )
    with distribution_lib.distribution_scope(distribute) as distribution, \
            precision_lib.precision_scope(precision):
        prepared = task.prepare(data, backbone, weights=weights, class_names=class_names,
                                **common, **options)
        if precision != "float32":
            precision_lib.float32_outputs(prepared.model)
        distribution_lib.check_distributed(prepared.model, distribution)
        stages = list(stages or task.default_stages())
        if class_weight == "balanced":
            class_weight = balanced_class_weight(prepared)
        _check_class_weight(class_weight, prepared.class_names)
        settings = _settings(prepared, stages, common, class_weight, task_options,
                             data=data, validation_data=validation_data, training=training,
                             distribution=distribution)
        outcome = run_stages(
            prepared, stages, os.path.join(output_dir, "checkpoint"), settings,
            options=TrainingOptions(
                class_weight=class_weight, patience=patience, verbose=verbose,
                optimizer=optimizer, weight_decay=weight_decay,
                label_smoothing=label_smoothing, callbacks=list(callbacks or ()),
                cache_features=training["cache_features"], batch_size=batch_size,
                seed=seed, report_dir=output_dir),
        )
        histories = outcome.histories
        metrics = {
            "validation": task.evaluate(prepared.model, prepared.validation, prepared.class_names),
            "test": task.evaluate(prepared.model, prepared.test, prepared.class_names),
        }
    distribution_lib.for_single_device_inference(
        [prepared.model, prepared.inference_model], distribution)
    result = FinetuneResult(
        model=prepared.model, class_names=prepared.class_names, histories=histories,
        metrics=metrics, info=prepared.info, config=settings, output_dir=output_dir,
        stages=stages, task=prepared, verification_sample=prepared.sample,
    )
    from keras_tl.result import MODEL_FILE

    if outcome.reloaded and os.path.exists(os.path.join(output_dir, MODEL_FILE)):
        # a finished run's folder is left as it was: a reload never overwrites its model
        result.output_dir = output_dir
    else:
        result.save(output_dir)
    if export:
        from keras_tl.exporters import export as export_model

        result.exports = export_model(result, export)
    return result


def _check_class_weight(class_weight, class_names):
    from keras_tl.errors import ConfigError

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
    >>> import numpy as np, tensorflow as tf, types
    >>> train = tf.data.Dataset.from_tensor_slices((np.zeros(6), [0, 0, 0, 0, 1, 1])).batch(4)
    >>> balanced_class_weight(types.SimpleNamespace(train=train, class_names=["a", "b"]))
    {0: 0.75, 1: 1.5}
    """
    import numpy as np

    labels = np.concatenate([np.asarray(y) for _, y in prepared.train.as_numpy_iterator()])
    counts = np.bincount(labels, minlength=len(prepared.class_names))
    return {
        i: float(len(labels) / (len(counts) * c)) if c else 0.0
        for i, c in enumerate(counts)
    }


def _resolve_cache_features(cache_features, task, options):
    """`cache_features` for this task and its options: `"auto"` is off
    with augmentation; `True` with augmentation is a `ConfigError`."""
    from keras_tl.errors import ConfigError

    if cache_features not in ("auto", True, False):
        raise ConfigError(f"cache_features must be 'auto', True or False; got {cache_features!r}.")
    if cache_features and task.train_is_random(options):
        if cache_features is True:
            raise ConfigError("cache_features=True cannot be used with augmentation: the "
                              "backbone sees other inputs every epoch. Use 'auto' or False.")
        return False
    return cache_features


def _settings(prepared, stages, common, class_weight, task_options, data=None,
              validation_data=None, training=None, distribution=None):
    from keras_tl.training.fingerprint import data_fingerprint

    settings = dict(
        info={k: v for k, v in prepared.info.items() if not k.startswith("num_")},
        class_names=prepared.class_names,
        stages=[s.to_config() for s in stages],
        batch_size=common["batch_size"],
        seed=common["seed"], dropout=common["dropout"],
        class_weight=class_weight,
        task_options={k: v if isinstance(v, (bool, int, float, str, type(None))) else repr(v)
                      for k, v in task_options.items()},
        # what the model is trained on: a rerun on changed data is refused
        data=dict(train=data_fingerprint(data), validation=data_fingerprint(validation_data)),
    )
    if validation_data is None and common["validation_split"]:
        settings["validation_split"] = common["validation_split"]
    if training is not None:
        settings["training"] = training
    if distribution is not None:  # recorded, but a run may resume on other devices
        settings["distribution"] = distribution
    # round-trip through JSON so it compares equal to the saved copy
    return json.loads(json.dumps(settings, default=str))
