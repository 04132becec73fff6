"""Multi-label image classification: RGB pixels in, one independent
probability per class out, and the labels at or above each class's own
decision threshold.

Composed of what exists: the image input path of image classification
(backbone loading, decoding, preprocessing inside the model, the
`serving_default`/`serving_bytes` signatures, verification images: an
`ImageClassification` instance does them), the label reading of
`keras_tl.data.multi_label` and the thresholds and metrics of
`keras_tl.evaluation.multi_label`. What is new here: a sigmoid head
(`sigmoid_head`), binary cross-entropy, a seeded random split (labels are
sets, not one class to stratify on), and the per-class thresholds, chosen
on the validation data after training (`fit_thresholds`), recorded in the
run's `info["thresholds"]` (`run.json`) and `metrics.json`, and read by
`predict` and every export.

Temperature scaling (`keras_tl.tasks.calibration`) rescales a softmax;
it does not apply to independent sigmoids, so this task declares no
`calibrate` option and its `metrics.json` records why under
`"calibration"`.

Data: a CSV (or a folder holding `labels.csv`) with an image-file column
and a column of `;`-separated labels, or one 0/1 column per class
(`keras_tl.data.multi_label`); or `(images, targets)` arrays, targets a
`[n, num_classes]` 0/1 matrix or a list of label lists.

Example:
>>> from keras_tl.tasks import get_task
>>> task = get_task("multi_label_image_classification")
>>> task.postprocess(np.array([[0.9, 0.2, 0.6]]), ["cat", "dog", "sky"],
...                  info={"thresholds": [0.5, 0.1, 0.7]})
[{'labels': [('cat', 0.9), ('dog', 0.2)], 'probabilities': {'cat': 0.9, 'dog': 0.2, 'sky': 0.6}}]
"""

import functools
import os

import numpy as np

from keras_tl.data.multi_label import label_matrix, multi_label_csv_path
from keras_tl.errors import ConfigError, DataError
from keras_tl.evaluation.multi_label import (DEFAULT_THRESHOLD, MIN_POSITIVES, choose_thresholds,
                                             multi_label_metrics)
from keras_tl.export_spec import ConvertedGraph, ExportSpec, QualityCheck, named_outputs
from keras_tl.tasks.base import Task
from keras_tl.tasks.classification import OUTPUT_NAME, classification_head
from keras_tl.tasks.image_classifier import (DEFAULT_BACKBONE, ImageClassification,
                                             build_image_classifier)
from keras_tl.tasks.image_serving import image_signatures, verification_images
from keras_tl.tasks.options import MULTI_LABEL_IMAGE_CLASSIFICATION

LABELS_NAME = "labels"  # the serving output of 0/1 indicators at the thresholds
NOT_CALIBRATED = ("sigmoid outputs: temperature scaling calibrates a softmax over classes, "
                  "not independent per-class probabilities")


def sigmoid_head(features, num_classes, dropout):
    """Pooling, dropout and a sigmoid `Dense` named `"probabilities"`: one
    independent probability per class.

    Example:
    >>> import keras
    >>> sigmoid_head(keras.Input((4, 4, 8)), 3, 0.2).shape
    (None, 3)
    """
    return classification_head(features, num_classes, dropout, activation="sigmoid")


def thresholds_of(info, num_classes):
    """The run's per-class thresholds (`info["thresholds"]`) as float32
    values, or `DEFAULT_THRESHOLD` for every class when it records none;
    float32, so NumPy and the serving graph compare alike.

    Example:
    >>> thresholds_of({}, 2).tolist(), thresholds_of({"thresholds": [0.25, 0.75]}, 2).tolist()
    ([0.5, 0.5], [0.25, 0.75])
    """
    values = (info or {}).get("thresholds")
    if values is None:
        return np.full(num_classes, DEFAULT_THRESHOLD, dtype="float32")
    values = np.asarray(values, dtype="float32")
    if values.shape != (num_classes,):
        raise ConfigError(f"info['thresholds'] has {values.size} values for {num_classes} "
                          "classes.")
    return values


def scores_and_targets(model, dataset):
    """`(probabilities, targets)` of `model` over a batched dataset of
    `(images, targets)`, batch by batch.

    Example:
    >>> import keras, tensorflow as tf
    >>> x = keras.Input((2,))
    >>> model = keras.Model(x, keras.layers.Dense(3, activation="sigmoid")(x))
    >>> data = tf.data.Dataset.from_tensor_slices((np.ones((5, 2)), np.eye(5, 3))).batch(2)
    >>> [array.shape for array in scores_and_targets(model, data)]
    [(5, 3), (5, 3)]
    """
    scores, targets = [], []
    for inputs, batch_targets in dataset.as_numpy_iterator():
        scores.append(np.asarray(model.predict_on_batch(inputs), dtype="float32"))
        targets.append(np.asarray(batch_targets))
    return np.concatenate(scores), np.concatenate(targets).astype("uint8")


def served_labels(model_outputs, thresholds):
    """The model's probabilities plus the int64 0/1 `labels` at
    `thresholds`: what every signature returns.

    Example:
    >>> served_labels({"probabilities": np.array([[0.2, 0.8]], "float32")},
    ...               np.array([0.1, 0.9], "float32"))["labels"].tolist()
    [[1, 0]]
    """
    probabilities = np.asarray(model_outputs[OUTPUT_NAME], dtype="float32")
    if probabilities.shape[-1] != len(thresholds):
        return model_outputs  # the exporter names the mismatch
    return {**model_outputs, LABELS_NAME: (probabilities >= thresholds).astype("int64")}


def labelled_model(model, thresholds):
    """The Keras model that ONNX and LiteRT convert: `model`'s input, its
    float32 `probabilities` and the int64 0/1 `labels` at `thresholds`
    (constants in the graph), as the SavedModel's signatures return them.

    Example:
    >>> import keras
    >>> x = keras.Input((2,), name="images")
    >>> model = keras.Model(x, keras.layers.Dense(2, activation="sigmoid")(x))
    >>> out = labelled_model(model, np.array([0.0, 1.0], "float32"))(np.ones((1, 2), "float32"))
    >>> sorted(out), np.asarray(out["labels"]).tolist()
    (['labels', 'probabilities'], [[1, 0]])
    """
    import keras

    tensor = model.input
    images = keras.Input(tuple(tensor.shape[1:]), dtype=tensor.dtype,
                         name=getattr(tensor, "name", None) or "images")
    probabilities = keras.ops.cast(model(images), "float32")
    labels = keras.ops.cast(
        keras.ops.greater_equal(probabilities, np.asarray(thresholds, "float32")), "int64")
    return keras.Model(images, {OUTPUT_NAME: probabilities, LABELS_NAME: labels},
                       name=f"{model.name}_with_labels")


def label_agreement(thresholds):
    """`(outputs, reference) -> float`: the fraction of examples whose set
    of labels a lossy format (int8 LiteRT) predicts exactly as the Keras
    model does.

    Example:
    >>> measure = label_agreement(np.array([0.5, 0.5], "float32"))
    >>> measure({"probabilities": np.array([[0.6, 0.4], [0.6, 0.6]])},
    ...         {"probabilities": np.array([[0.7, 0.3], [0.7, 0.3]])})
    0.5
    """
    def measure(outputs, reference):
        got = np.asarray(outputs[OUTPUT_NAME], "float32") >= thresholds
        expected = np.asarray(reference[OUTPUT_NAME], "float32") >= thresholds
        return float(np.mean(np.all(got == expected, axis=-1)))

    return measure


def _is_indicator_matrix(targets):
    try:
        array = np.asarray(targets)
    except ValueError:  # ragged label lists
        return False
    return array.ndim == 2 and array.dtype.kind in "biuf" and bool(np.isin(array, (0, 1)).all())


def _is_label_lists(targets):
    return (isinstance(targets, (list, tuple)) and len(targets) > 0
            and all(isinstance(labels, (list, tuple, set)) for labels in targets))


class MultiLabelImageClassification(Task):
    """Fine-tunes an image backbone to tag each image with any number of
    labels (see the module docstring).

    Example:
    >>> from keras_tl.tasks import get_task
    >>> task = get_task("multi_label_image_classification")
    >>> task.compile_options()["loss"], task.default_backbone
    ('binary_crossentropy', 'mobilenet_v2_torch')
    """

    name = "multi_label_image_classification"
    modality = "image"
    default_backbone = DEFAULT_BACKBONE
    options = MULTI_LABEL_IMAGE_CLASSIFICATION
    # no file_extensions: a folder of class sub-folders is single-label data
    # Keras weights an example by its largest target: for 0/1 rows, the first label
    class_weight_refused = ("Keras would weight each image by its first label only; leave "
                            "class_weight unset (the per-class thresholds chosen on validation "
                            "data already offset rare labels)")

    def __init__(self):
        # the image input path, shared with (not copied from) image classification
        self.images = ImageClassification()

    # -- data ---------------------------------------------------------------
    def recognizes(self, data, backbone=None):
        """A multi-label CSV (or a folder holding `labels.csv`) whose header
        has a `file` column and a `labels` column or 0/1 class columns; or
        `(images, targets)` with targets label lists or a 0/1 matrix in
        which some image has other than one label (a matrix of one-hot rows
        stays single-label data; `task=` chooses this task for it).

        Example:
        >>> task = get_task("multi_label_image_classification")
        >>> task.recognizes((np.zeros((2, 8, 8, 3)), [[1, 0], [1, 1]]))
        True
        >>> task.recognizes((np.zeros((2, 8, 8, 3)), [0, 1])), task.recognizes("reviews.csv")
        (False, False)
        """
        if isinstance(data, (tuple, list)) and len(data) == 2:
            targets = data[1]
            if not hasattr(targets, "__len__") or isinstance(targets, str) or not len(targets):
                return False
            if _is_label_lists(targets):
                return True
            return _is_indicator_matrix(targets) and bool(
                (np.asarray(targets).sum(axis=1) != 1).any())
        path = multi_label_csv_path(data)
        if path is None or not os.path.isfile(path):
            return False
        return _csv_is_multi_label(path)

    def load_backbone(self, backbone, weights, **options):
        """As image classification loads it (`image_size`, `preprocessing`)."""
        return self.images.load_backbone(backbone, weights, **options)

    def read(self, data, loaded, class_names=None, min_classes=1, skip_corrupt=False,
             file_column="file", labels_column="labels", **options):
        """A lazy image source (`keras_tl.data.image_sources`) whose
        `labels` are uint8 `[n, num_classes]` targets: the files of a
        multi-label CSV, each header checked as a class folder's are, or
        `(images, targets)` arrays; `class_names` (the training classes)
        for validation and test data.

        Example:
        >>> import types
        >>> examples = get_task("multi_label_image_classification").read(
        ...     (np.zeros((2, 28, 28)), [["shoe"], ["bag", "shoe"]]),
        ...     types.SimpleNamespace(input_size=(32, 32)))
        >>> examples.sample(2).shape, examples.labels.tolist(), examples.class_names
        ((2, 32, 32, 3), [[0, 1], [1, 1]], ['bag', 'shoe'])
        """
        from keras_tl.data import images as image_data
        from keras_tl.data.image_sources import ArraySource, FileSource
        from keras_tl.data.multi_label import read_multi_label_csv

        size = tuple(int(n) for n in loaded.input_size)
        if isinstance(data, (tuple, list)) and len(data) == 2:
            targets, names = _targets(data[1], class_names)
            if len(targets) != len(data[0]):
                raise DataError(f"Got {len(data[0])} images but {len(targets)} label rows; "
                                "one row of labels per image.")
            return ArraySource(image_data.prepare_images(data[0], size), targets, names)
        if multi_label_csv_path(data) is None:
            raise DataError(f"Multi-label data is a CSV (or a folder holding labels.csv) or "
                            f"(images, targets); got {data!r}.")
        files, targets, names = read_multi_label_csv(
            data, file_column=file_column, labels_column=labels_column, class_names=class_names)
        decodes, kept = [], []
        failures = []
        for index, path in enumerate(files):
            try:
                decodes.append(image_data.check_image_file(path))
                kept.append(index)
            except DataError as error:
                if not skip_corrupt:
                    failures.append((path, getattr(error, "reason", error)))
        if failures:
            from keras_tl.data.folders import unreadable_files_error

            raise unreadable_files_error(failures, "image", "images")
        if not kept:
            raise DataError(f"{multi_label_csv_path(data)}: no readable images.")
        kept = np.asarray(kept)
        return FileSource(np.asarray(files, dtype=object)[kept], targets[kept], names, size,
                          decodes, skip_corrupt)

    def split(self, examples, fraction, seed):
        """`(train, validation)`: a seeded random split (an image holds a set
        of labels: there is no one class to stratify on), at least one
        example on each side.

        Example:
        >>> from keras_tl.data.image_sources import ArraySource
        >>> data = ArraySource(np.zeros((8, 4, 4, 3), "uint8"), np.eye(8, 2), ["a", "b"])
        >>> train, validation = get_task("multi_label_image_classification").split(data, 0.25, 0)
        >>> len(train), len(validation)
        (6, 2)
        """
        count = len(examples)
        if count < 2:
            raise DataError(f"{count} example: a validation split needs at least 2.")
        held_out = min(max(int(round(count * fraction)), 1), count - 1)
        order = np.random.default_rng(seed).permutation(count)
        train, validation = np.sort(order[held_out:]), np.sort(order[:held_out])
        return examples.subset(train), examples.subset(validation)

    def build_model(self, loaded, class_names, train, dropout, **options):
        """The image classifier's model with `sigmoid_head`; `info` as
        image classification records it (input size, preprocessing)."""
        model = build_image_classifier(loaded, len(class_names),
                                       dropout=0.2 if dropout is None else dropout,
                                       name="multi_label_image_classifier", head=sigmoid_head)
        return model, dict(input_size=list(loaded.input_size),
                           preprocessing=loaded.spec.preprocessing.to_config())

    def dataset(self, examples, loaded, info, batch_size, training=False, seed=0,
                augment=False, **options):
        """The source's image pipeline (as image classification's), its
        targets float32 for the binary cross-entropy."""
        import tensorflow as tf

        batches = self.images.dataset(examples, loaded, info, batch_size, training=training,
                                      seed=seed, augment=augment)
        return batches.map(lambda x, y: (x, tf.cast(y, "float32")))

    def verification_sample(self, examples, info):
        return self.images.verification_sample(examples, info)

    # -- training -----------------------------------------------------------
    def compile_options(self):
        return dict(loss="binary_crossentropy", metrics=["binary_accuracy"])

    def split_head(self, model):
        return self.images.split_head(model)

    def evaluate(self, model, dataset, class_names=None, thresholds=None):
        """The loss, `binary_accuracy`, `mAP` and the micro and macro F1 of
        the labels at `thresholds` (default 0.5 for every class; a run
        measures them at its chosen thresholds, `fit_thresholds`); `None`
        for no data.

        Example:
        >>> get_task("multi_label_image_classification").evaluate(None, None) is None
        True
        """
        if dataset is None:
            return None
        values = super().evaluate(model, dataset, class_names)
        scores, targets = scores_and_targets(model, dataset)
        if thresholds is None:
            thresholds = np.full(scores.shape[1], DEFAULT_THRESHOLD, dtype="float32")
        return {**values, **multi_label_metrics(targets, scores, thresholds)}

    def fit_thresholds(self, prepared, metrics, choose=True):
        """After training (`keras_tl.run.FinetuneRun`): each class's decision
        threshold, the F1-best on `prepared.validation`
        (`keras_tl.evaluation.multi_label.choose_thresholds`; 0.5 for a
        class with fewer than `MIN_POSITIVES` validation positives, for
        every class with `choose=False` or no validation data), recorded in
        `prepared.info["thresholds"]` (which predict and the exports read).
        Returns `metrics` with each measured part scored at them, the
        thresholds under `"thresholds"` and why nothing was calibrated
        under `"calibration"`.

        Example:
        >>> metrics = task.fit_thresholds(prepared, metrics)  # doctest: +SKIP
        >>> metrics["thresholds"]["values"]  # doctest: +SKIP
        {'bag': 0.41, 'shoe': 0.62}
        """
        names = list(prepared.class_names)
        thresholds = np.full(len(names), DEFAULT_THRESHOLD, dtype="float32")
        record = {"method": "per-class F1-best on validation", "default": DEFAULT_THRESHOLD,
                  "min_positives": MIN_POSITIVES}
        if not choose:
            record["skipped"] = "thresholds=False: 0.5 for every class"
        elif prepared.validation is None:
            record["skipped"] = "no validation data to choose thresholds on"
        else:
            scores, targets = scores_and_targets(prepared.model, prepared.validation)
            thresholds = choose_thresholds(targets, scores).astype("float32")
            record["examples"] = int(len(targets))
            record["kept_default"] = [name for name, count in zip(names, targets.sum(axis=0))
                                      if count < MIN_POSITIVES]
        prepared.info["thresholds"] = [float(t) for t in thresholds]
        metrics = dict(metrics)
        for part in ("validation", "test"):
            if metrics.get(part) is not None and getattr(prepared, part) is not None:
                scores, targets = scores_and_targets(prepared.model, getattr(prepared, part))
                metrics[part] = {**metrics[part],
                                 **multi_label_metrics(targets, scores, thresholds)}
        metrics["thresholds"] = {**record, "values": dict(zip(names, prepared.info["thresholds"]))}
        metrics["calibration"] = {"temperature": None, "skipped": NOT_CALIBRATED}
        return metrics

    # -- inference ----------------------------------------------------------
    def prepare_inputs(self, inputs, info):
        """Images in any form image classification takes (file paths,
        arrays of any size), as float32 `[n, H, W, 3]`."""
        return self.images.prepare_inputs(inputs, info)

    def tta_views(self, model_inputs, info):
        """The images and their horizontal flips (as image classification;
        `predict(tta=True)` averages the probabilities over them)."""
        return self.images.tta_views(model_inputs, info)

    def postprocess(self, outputs, class_names, top=3, inputs=None, info=None):
        """One dict per image: `labels`, the `(class_name, probability)` at or
        above the class's threshold (`info["thresholds"]`, else 0.5), most
        probable first, and `probabilities`, every class's; `top` is not
        used (every label above its threshold is returned). `outputs` are
        the probabilities, or a format's named outputs.

        Example:
        >>> get_task("multi_label_image_classification").postprocess(
        ...     {"probabilities": np.array([[0.3, 0.2]])}, ["a", "b"])[0]["labels"]
        []
        """
        if isinstance(outputs, dict):
            outputs = outputs[OUTPUT_NAME]
        probabilities = np.asarray(outputs)
        # compared in float32, as the serving graph compares them
        above = probabilities.astype("float32") >= thresholds_of(info, len(class_names))
        predictions = []
        for row, keep in zip(probabilities, above):
            order = [i for i in np.argsort(-row, kind="stable") if keep[i]]
            predictions.append({
                "labels": [(str(class_names[i]), float(row[i])) for i in order],
                "probabilities": {str(name): float(p) for name, p in zip(class_names, row)}})
        return predictions

    # -- export -------------------------------------------------------------
    def output_contract(self, class_names):
        """The outputs of both signatures: every class's probability and its
        0/1 label at the run's threshold.

        Example:
        >>> get_task("multi_label_image_classification").output_contract(["a", "b"])["labels"]
        {'dtype': 'int64', 'shape': [None, 2]}
        """
        return {OUTPUT_NAME: {"dtype": "float32", "shape": [None, len(class_names)]},
                LABELS_NAME: {"dtype": "int64", "shape": [None, len(class_names)]}}

    def export_spec(self, model, info, class_names, sample=None):
        """`serving_default` on float32 pixels and `serving_bytes` on encoded
        image files (`keras_tl.tasks.image_serving`, as image
        classification's), both returning `probabilities` and `labels` (0/1
        per class at the run's thresholds, which the graph holds);
        converting formats (ONNX, LiteRT) convert `labelled_model`, which
        returns both too, the thresholds constants in it.

        Example:
        >>> spec = get_task("multi_label_image_classification").export_spec(
        ...     None, {"input_size": [32, 32], "thresholds": [0.3, 0.6]}, ["a", "b"])
        >>> sorted(spec.contract()["serving_bytes"]["outputs"])
        ['labels', 'probabilities']
        >>> spec.postprocess({"probabilities": np.array([[0.4, 0.5]])}, None, 3)[0]["labels"]
        [('a', 0.4)]
        """
        names = [str(name) for name in class_names]
        thresholds = thresholds_of(info, len(names))
        serve = converted = None
        if model is not None:
            converted = labelled_model(model, thresholds)

            def serve(images, original_sizes):
                import tensorflow as tf

                probabilities = tf.cast(model(images, training=False), tf.float32)
                labels = tf.cast(probabilities >= tf.constant(thresholds), tf.int64)
                return {OUTPUT_NAME: probabilities, LABELS_NAME: labels}

        signatures = image_signatures(info, self.output_contract(names), serve)
        return ExportSpec(
            self.name, self.modality, names, info, tuple(signatures),
            converted=ConvertedGraph(converted),
            verification_inputs=verification_images(info, sample),
            predict=None if model is None else functools.partial(named_outputs, model),
            served=functools.partial(served_labels, thresholds=thresholds),
            quality=QualityCheck("label_agreement", label_agreement(thresholds)),
            postprocess=lambda outputs, given, top: self.postprocess(
                outputs, names, top=top, info=info))

    # -- reports ------------------------------------------------------------
    def write_reports(self, result, output_dir):
        """The training curves (a confusion matrix is for one label each)."""
        from keras_tl import reports

        reports.plot_training_curves(result.histories,
                                     os.path.join(output_dir, "training_curves.png"),
                                     metric="binary_accuracy")


def _targets(targets, class_names):
    """`(uint8 [n, num_classes] targets, class names)` of a 0/1 matrix
    (classes named `class_names`, else "0", "1", ...) or of label lists."""
    if _is_label_lists(targets):
        return label_matrix([[str(label) for label in labels] for labels in targets],
                            None if class_names is None else list(class_names))
    if not _is_indicator_matrix(targets):
        raise DataError("Multi-label targets are a [n, num_classes] matrix of 0/1, or one list "
                        "of label names per image.")
    targets = np.asarray(targets).astype("uint8")
    names = ([str(k) for k in range(targets.shape[1])] if class_names is None
             else [str(name) for name in class_names])
    if len(names) != targets.shape[1]:
        raise DataError(f"{len(names)} class names for {targets.shape[1]} target columns.")
    return targets, names


def _csv_is_multi_label(path, file_column="file", labels_column="labels", rows=20):
    """Whether the CSV's header has `file_column` and `labels_column`, or
    `file_column` and only 0/1 cells in its other columns (first `rows`)."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [name.strip() for name in next(reader, [])]
            if file_column not in header or len(header) < 2:
                return False
            if labels_column in header:
                return True
            others = [i for i, name in enumerate(header) if name != file_column]
            for number, row in enumerate(reader):
                if number >= rows:
                    break
                if any(i < len(row) and row[i].strip() not in ("0", "1") for i in others):
                    return False
            return True
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
