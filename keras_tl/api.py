"""`keras_tl.finetune`: one call from data and a backbone to a trained model."""

import datetime
import json
import os

from keras_tl.result import FinetuneResult
from keras_tl.training.stages import default_stages

# Torchvision's ImageNet MobileNetV2, imported offline. On the Fashion-MNIST
# demo it beat EfficientNet-Lite0 on each of 3 seeds (mean test accuracy 0.847
# vs 0.829) and trained 24% faster: benchmarks/results/default_backbone.json.
DEFAULT_IMAGE_BACKBONE = "mobilenet_v2_torch"


def finetune(
    data,
    backbone=None,
    *,
    stages=None,
    output_dir=None,
    weights="default",
    image_size=None,
    batch_size=32,
    validation_split=0.2,
    validation_data=None,
    test_data=None,
    class_names=None,
    augment=False,
    class_weight=None,
    dropout=0.2,
    patience=3,
    seed=0,
    skip_corrupt=False,
    data_dir=None,
    export=None,
    verbose="auto",
    **text_options,
):
    """Fine-tunes a pretrained backbone on `data` and returns a `FinetuneResult`.

    Stage 1 trains a new head with the backbone frozen (Adam, 1e-3); stage 2
    unfreezes the backbone (BatchNorm statistics stay frozen) and trains at a
    10x lower rate with warm-up and cosine decay. Early stopping on
    validation loss restores the best weights of each stage. Every epoch is
    checkpointed under `output_dir`; calling again with the same
    `output_dir` resumes where the run stopped.

    Args:
        data: a folder with one sub-folder per class, an `(images, labels)`
            pair of arrays, a `tf.data.Dataset` of `(image, label)`, or
            `"tfds:NAME[:SPLIT]"` (with `data_dir`). Text data (a CSV file,
            a folder of `.txt` files per class, or `(texts, labels)`) trains
            a text classifier.
        backbone: a name from `keras_tl.list_backbones()`, a keras_hub
            preset (folder or handle), or a `keras.Model`. Default: the
            offline ImageNet default for images, MiniLM for text.
        stages: a list of `keras_tl.Stage`; default `default_stages()`.
        output_dir: where checkpoints, the model and reports go; default
            `runs/<time stamp>`.
        weights: `"default"`, `"imagenet"`, `None` or a weights file path.
        image_size: int or `(height, width)`; default the backbone's.
        batch_size: training batch size.
        validation_split: fraction held out (stratified, seeded) when no
            `validation_data` is given.
        test_data: optional data in the same forms as `data`.
        class_names: names for integer labels of arrays.
        augment: `True` for flips/rotation/zoom, or a list of Keras
            preprocessing layers.
        class_weight: `None`, `"balanced"` or `{class_index: weight}`.
        dropout: dropout before the classification layer.
        patience: early-stopping patience in epochs (0 disables it).
        seed: makes splits, shuffling and initialisation repeatable.
        skip_corrupt: skip unreadable images with a warning.
        export: a folder (e.g. `"saved_models/flowers"`) to export to at the
            end with `keras_tl.export`.
        verbose: Keras `fit` verbosity.
        **text_options: for text data: `text_column`, `label_column`,
            `sequence_length`.

    Example:
    >>> result = keras_tl.finetune("flowers/", backbone="efficientnet_b0",
    ...                            output_dir="runs/flowers")
    >>> result.metrics["validation"]["accuracy"]
    0.93
    """
    import keras

    keras.utils.set_random_seed(seed)
    output_dir = output_dir or os.path.join(
        "runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    common = dict(
        batch_size=batch_size, validation_split=validation_split,
        validation_data=validation_data, test_data=test_data, seed=seed,
        dropout=dropout,
    )
    task, stages = _prepare(data, backbone, stages, weights, image_size, class_names,
                            augment, skip_corrupt, data_dir, common, text_options)
    if class_weight == "balanced":
        class_weight = balanced_class_weight(task)
    settings = _settings(task, stages, common, augment, class_weight, text_options)

    from keras_tl.training.loop import evaluate, run_stages

    histories = run_stages(
        task, stages, os.path.join(output_dir, "checkpoint"), settings,
        class_weight=class_weight, patience=patience, verbose=verbose,
    )
    metrics = {
        "validation": evaluate(task.model, task.validation),
        "test": evaluate(task.model, task.test),
    }
    result = FinetuneResult(
        model=task.model, class_names=task.class_names, histories=histories,
        metrics=metrics, info=task.info, config=settings, output_dir=output_dir,
        stages=stages, task=task,
    )
    result.save(output_dir)
    if export:
        from keras_tl.export import export as export_model

        options = {}
        if task.info.get("modality") == "image" and task.validation is not None:
            options["verification_images"] = _first_images(task.validation, 32)
        result.exports = export_model(result, export, **options)
    return result


def _first_images(dataset, count):
    """Up to `count` input images of a batched dataset, for export checks."""
    import numpy as np

    images = []
    for x, _ in dataset.as_numpy_iterator():
        images.append(x)
        if sum(len(b) for b in images) >= count:
            break
    return np.concatenate(images)[:count]


def _prepare(data, backbone, stages, weights, image_size, class_names, augment,
             skip_corrupt, data_dir, common, text_options):
    if _is_text(data, backbone, text_options):
        from keras_tl.tasks import text_classifier

        task = text_classifier.prepare_text_task(
            data, backbone, weights=weights, class_names=class_names,
            **common, **text_options)
        return task, list(stages or text_classifier.default_text_stages())
    if text_options:
        raise TypeError(f"Unexpected options for image data: {sorted(text_options)}.")
    from keras_tl.tasks.image_classifier import prepare_image_task

    task = prepare_image_task(
        data, backbone or DEFAULT_IMAGE_BACKBONE, weights=weights,
        image_size=image_size, class_names=class_names, augment=augment,
        skip_corrupt=skip_corrupt, data_dir=data_dir, **common)
    return task, list(stages or default_stages())


def _is_text(data, backbone, text_options):
    if text_options:
        return True
    from keras_tl.data.text import is_text_data

    if is_text_data(data):
        return True
    if backbone is None:
        return False
    from keras_tl.backbones import text_encoders

    return text_encoders.is_text_backbone(backbone)


def balanced_class_weight(task):
    """`{class: n / (k * n_class)}` from the training labels of a task.

    Example:
    >>> balanced_class_weight(task)
    {0: 0.75, 1: 1.5}
    """
    import numpy as np

    labels = np.concatenate([np.asarray(y) for _, y in task.train.as_numpy_iterator()])
    counts = np.bincount(labels, minlength=len(task.class_names))
    return {
        i: float(len(labels) / (len(counts) * c)) if c else 0.0
        for i, c in enumerate(counts)
    }


def _settings(task, stages, common, augment, class_weight, text_options):
    settings = dict(
        info={k: v for k, v in task.info.items() if not k.startswith("num_")},
        class_names=task.class_names,
        stages=[s.to_config() for s in stages],
        batch_size=common["batch_size"], validation_split=common["validation_split"],
        seed=common["seed"], dropout=common["dropout"],
        augment=augment if isinstance(augment, bool) else repr(augment),
        class_weight=class_weight,
        text_options=text_options,
    )
    # round-trip through JSON so it compares equal to the saved copy
    return json.loads(json.dumps(settings, default=str))
