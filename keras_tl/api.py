"""`keras_tl.finetune` and `keras_tl.find_learning_rate`: one call from data
and a backbone to a trained model, or to a learning rate. Both drive a
`keras_tl.run.FinetuneRun`."""

from keras_tl.run import FinetuneRun


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
            `text_column`, `label_column`, `sequence_length`; for every
            classifier `calibrate` (default `True`: after the last stage a
            softmax temperature is fitted on the validation data and put in
            the model; `metrics.json` records it and the expected
            calibration error before and after)
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
    return FinetuneRun(
        data, backbone, task=task, stages=stages, output_dir=output_dir, weights=weights,
        batch_size=batch_size, validation_split=validation_split,
        validation_data=validation_data, test_data=test_data, class_names=class_names,
        class_weight=class_weight, dropout=dropout, patience=patience, seed=seed, export=export,
        verbose=verbose, optimizer=optimizer, weight_decay=weight_decay,
        label_smoothing=label_smoothing, callbacks=callbacks, cache_features=cache_features,
        precision=precision, distribute=distribute, **task_options).run()


def find_learning_rate(data, backbone=None, *, task=None, stage=None, output_dir=None,
                       weights="default", batch_size=32, validation_split=0.2,
                       class_names=None, dropout=None, seed=0, start_lr=1e-7, end_lr=10.0,
                       num_steps=100, optimizer="adam", weight_decay=None,
                       label_smoothing=0.0, cache_features="auto", verbose=True,
                       **task_options):
    """Runs the learning-rate finder for one stage (default: the task's
    first, the head) of a `keras_tl.finetune` job on `data`: the same data
    preparation, model and optimizer, on cached backbone features when the
    stage allows it. Writes `lr_find.png` (loss against learning rate, the
    suggestion marked) and `lr_find.json` into `output_dir` when given,
    prints "suggested learning rate: X" and returns an `LRFinderResult`.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 255, (16, 32, 32, 3))
    >>> result = keras_tl.find_learning_rate(
    ...     (images, [0, 1] * 8), "mobilenet_v2", weights=None, image_size=32,
    ...     num_steps=30, verbose=False)
    >>> len(result.learning_rates) <= 30 and result.suggestion in result.learning_rates
    True
    """
    run = FinetuneRun(data, backbone, task=task, output_dir=output_dir, weights=weights,
                      batch_size=batch_size, validation_split=validation_split,
                      class_names=class_names, dropout=dropout, seed=seed, optimizer=optimizer,
                      weight_decay=weight_decay, label_smoothing=label_smoothing,
                      cache_features=cache_features, verbose=0, **task_options)
    return run.find_learning_rate(stage, start_lr=start_lr, end_lr=end_lr, num_steps=num_steps,
                                  output_dir=output_dir, verbose=verbose)
