"""What every classification task shares, whatever its input: a softmax
head, sparse cross-entropy, top-k predictions, the serving outputs
(`probabilities`, `class_ids`, `class_names`) and a confusion matrix.

Image, text and keyword-spotting tasks subclass `Classification` and add
how their inputs are read, fed and served.
"""

import functools
import os

import numpy as np

from keras_tl.errors import ConfigError
from keras_tl.export_spec import ExportSpec, QualityCheck, named_outputs, top1_agreement
from keras_tl.tasks.base import Task

OUTPUT_NAME = "probabilities"


def classification_head(features, num_classes, dropout, pool_mask=None, normalize=False,
                        activation="softmax"):
    """Pooling (for sequence or spatial features), dropout and a softmax
    `Dense` named `"probabilities"`: the head every classifier puts on its
    backbone. `normalize=True` adds a `LayerNormalization` after pooling,
    for backbones whose features are not on a unit scale;
    `activation="sigmoid"` gives one independent probability per class
    (multi-label).

    Example:
    >>> import keras
    >>> x = keras.Input((4, 4, 8))
    >>> classification_head(x, 3, 0.2).shape
    (None, 3)
    """
    import keras

    if activation == "softmax" and num_classes < 2:
        raise ConfigError(f"A classifier needs at least 2 classes, got {num_classes}.")
    if num_classes < 1:
        raise ConfigError(f"A multi-label classifier needs at least 1 class, got {num_classes}.")
    if len(features.shape) == 4:
        features = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    elif len(features.shape) == 3:
        features = keras.layers.GlobalAveragePooling1D(name="pool")(features, mask=pool_mask)
    if normalize:
        features = keras.layers.LayerNormalization(name="head_norm")(features)
    x = keras.layers.Dropout(dropout, name="dropout")(features)
    return keras.layers.Dense(num_classes, activation=activation, name=OUTPUT_NAME)(x)


class Classification(Task):
    """The shared part of classification tasks (abstract).

    Example:
    >>> from keras_tl.tasks import get_task
    >>> isinstance(get_task("text_classification"), Classification)
    True
    """

    def compile_options(self):
        return dict(loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def split_head(self, model):
        """The frozen part (backbone and pooling, or the backbone's frozen
        bottom) / the part that trains, for stages on cached features (see
        `keras_tl.training.cache`); images and speech alike.

        Example:
        >>> from keras_tl.backbones import load_backbone
        >>> from keras_tl.freezing import freeze_backbone
        >>> from keras_tl.tasks import get_task
        >>> from keras_tl.tasks.image_classifier import build_image_classifier
        >>> model = build_image_classifier(load_backbone("mobilenet_v2", weights=None, image_size=32), 3)
        >>> features, head = get_task("image_classification").split_head(freeze_backbone(model))
        >>> features.output.shape, head.output.shape
        ((None, 1280), (None, 3))
        """
        from keras_tl.training.cache import split_frozen_part

        return split_frozen_part(model)

    def postprocess(self, outputs, class_names, top=3, inputs=None, info=None):
        """`[[(class_name, probability), ...], ...]`, most probable first.

        Example:
        >>> import numpy as np
        >>> from keras_tl.tasks import get_task
        >>> get_task("image_classification").postprocess(
        ...     np.array([[0.1, 0.7, 0.2]]), ["a", "b", "c"], top=2)
        [[('b', 0.7), ('c', 0.2)]]
        """
        probabilities = np.asarray(outputs)
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top]
        return [
            [(class_names[i], float(row[i])) for i in idx]
            for row, idx in zip(probabilities, order)
        ]

    def tta_accuracy(self, model, dataset, info):
        """The accuracy of `model` on a batched dataset of `(model inputs,
        labels)` with test-time augmentation (`tta_outputs`: the mean
        probabilities over `tta_views` of each batch), or `None` for no data.

        Example:
        >>> import keras, tensorflow as tf
        >>> x = keras.Input((1, 3, 3))  # its probabilities: softmax of pixel columns 0 and 1
        >>> model = keras.Model(x, keras.layers.Softmax()(x[:, 0, :2, 0]))
        >>> images = np.array([[0, 1, 5], [0, 1, 0]], "float32")[:, None, :, None] * np.ones(3)
        >>> data = tf.data.Dataset.from_tensor_slices((images, [0, 1])).batch(2)
        >>> model.predict(images, verbose=0).argmax(-1)  # without: the first is wrong
        array([1, 1])
        >>> get_task("image_classification").tta_accuracy(model, data, {})  # flipped: [5, 1]
        1.0
        """
        if dataset is None:
            return None
        correct = total = 0
        for batch in dataset.as_numpy_iterator():
            probabilities = self.tta_outputs(model.predict_on_batch, batch[0], info)
            labels = np.asarray(batch[1]).reshape(-1).astype(int)
            correct += int((probabilities.argmax(axis=-1) == labels).sum())
            total += len(labels)
        return correct / total if total else None

    def classification_outputs(self, probabilities, class_names):
        """The serving outputs of a classifier, in TensorFlow ops.

        Example:
        >>> import tensorflow as tf
        >>> out = get_task("image_classification").classification_outputs(
        ...     tf.constant([[0.2, 0.8]]), ["cat", "dog"])
        >>> out["class_names"].numpy()
        array([b'dog'], dtype=object)
        """
        import tensorflow as tf

        names = tf.constant([str(n) for n in class_names], dtype=tf.string)
        probabilities = tf.cast(probabilities, tf.float32)
        class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {
            "probabilities": probabilities,
            "class_ids": class_ids,
            "class_names": tf.gather(names, class_ids),
        }

    def classification_spec(self, model, info, class_names, signatures, inputs, converted,
                            predict=None, assets=()):
        """The `ExportSpec` every classifier shares: `signatures` (each
        returning `probabilities`, `class_ids` and `class_names`), verified
        on model `inputs` against the model's probabilities (`predict`,
        default `named_outputs`) and the class ids and names derived from
        them; `converted`, the `ConvertedGraph` (or `None`); predictions
        from any format's `probabilities`.

        Example:
        >>> from keras_tl.tasks.image_serving import image_signatures
        >>> spec = get_task("image_classification").classification_spec(
        ...     None, {"input_size": [8, 8]}, ["a", "b"],
        ...     image_signatures({"input_size": [8, 8]}, {}), np.zeros((1, 8, 8, 3)), None)
        >>> spec.postprocess({"probabilities": np.array([[0.3, 0.7]])}, None, 1)
        [[('b', 0.7)]]
        """
        names = [str(name) for name in class_names]
        if predict is None and model is not None:
            predict = functools.partial(named_outputs, model)
        return ExportSpec(
            self.name, self.modality, names, info, tuple(signatures),
            converted=converted,
            assets=tuple(assets), verification_inputs=inputs, predict=predict,
            served=functools.partial(served_classes, class_names=names),
            quality=QualityCheck("top1_agreement", top1_agreement(OUTPUT_NAME)),
            postprocess=lambda outputs, given, top: self.postprocess(
                outputs[OUTPUT_NAME], names, top=top))

    def output_contract(self, class_names):
        """The documented outputs of every classification signature.

        Example:
        >>> get_task("image_classification").output_contract(["a", "b"])["class_ids"]
        {'dtype': 'int64', 'shape': [None]}
        """
        return {
            "probabilities": {"dtype": "float32", "shape": [None, len(class_names)]},
            "class_ids": {"dtype": "int64", "shape": [None]},
            "class_names": {"dtype": "string", "shape": [None]},
        }

    def write_reports(self, result, output_dir):
        from keras_tl import reports

        super().write_reports(result, output_dir)
        validation = getattr(result.task, "validation", None)
        if validation is not None:
            reports.plot_confusion_matrix(
                result.model, validation, result.class_names,
                os.path.join(output_dir, "confusion_matrix.png"))


def served_classes(model_outputs, class_names):
    """The model's probabilities plus the `class_ids` and `class_names`
    every classification signature derives from them: what exported
    formats are verified against.

    Example:
    >>> served_classes({"probabilities": np.array([[0.2, 0.8]])}, ["cat", "dog"])["class_names"]
    array(['dog'], dtype=object)
    """
    probabilities = np.asarray(model_outputs[OUTPUT_NAME], dtype="float32")
    if probabilities.shape[-1] != len(class_names):
        return model_outputs  # the exporter names the mismatch
    ids = probabilities.argmax(axis=-1)
    return {**model_outputs, "class_ids": ids,
            "class_names": np.asarray(class_names, dtype=object)[ids]}
