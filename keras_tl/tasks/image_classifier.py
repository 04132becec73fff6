"""Image classification: RGB pixels in, class probabilities out.

The model takes float32 RGB pixels in [0, 255], `[batch, H, W, 3]` (input
`"images"`): the backbone's preprocessing is its first layer, so training,
export and serving cannot disagree.
"""

import os

from keras_tl import _compat
from keras_tl.data.images import IMAGE_EXTENSIONS
from keras_tl.export_spec import ConvertedGraph
from keras_tl.tasks.classification import Classification, classification_head
from keras_tl.tasks.image_serving import INPUT_NAME, image_signatures, verification_images
from keras_tl.tasks.options import IMAGE_CLASSIFICATION

DEFAULT_BACKBONE = "mobilenet_v2_torch"  # see benchmarks/results/default_backbone.json


def build_image_classifier(loaded, num_classes, dropout=0.2, name="image_classifier",
                           head=classification_head):
    """Puts a classification head on a loaded backbone.

    Args:
        loaded: a `keras_tl.backbones.LoadedBackbone`.
        num_classes: number of classes (>= 2).
        dropout: dropout rate before the final dense layer.
        head: `(features, num_classes, dropout) -> outputs`, the head
            (default: `classification_head`'s softmax; a multi-label
            classifier passes its sigmoid head).

    Example:
    >>> from keras_tl.backbones import load_backbone
    >>> loaded = load_backbone("mobilenet_v2", weights=None, image_size=32)
    >>> build_image_classifier(loaded, num_classes=3).output.shape
    (None, 3)
    """
    import keras

    from keras_tl.freezing import BACKBONE_LAYER

    height, width = loaded.input_size
    inputs = keras.Input(shape=(height, width, 3), name=INPUT_NAME, dtype="float32")
    x = loaded.spec.preprocessing.layer()(inputs)
    backbone = loaded.model
    if backbone.name != BACKBONE_LAYER:
        backbone = keras.Model(backbone.input, backbone.output, name=BACKBONE_LAYER)
    outputs = head(backbone(x), num_classes, dropout)
    return keras.Model(inputs, outputs, name=name)


class ImageClassification(Classification):
    """Fine-tunes an ImageNet backbone into an image classifier.

    Example:
    >>> from keras_tl.tasks import get_task
    >>> task = get_task("image_classification")
    >>> task.default_backbone
    'mobilenet_v2_torch'
    """

    name = "image_classification"
    modality = "image"
    default_backbone = DEFAULT_BACKBONE
    options = IMAGE_CLASSIFICATION
    file_extensions = IMAGE_EXTENSIONS

    def recognizes(self, data, backbone=None):
        # images are the default: find_task falls back to this task
        return False

    def load_backbone(self, backbone, weights, image_size=None, preprocessing=None, **options):
        """The backbone at `image_size` (default: its own), with
        `preprocessing` overriding its pixel normalisation."""
        from keras_tl.backbones import load_backbone

        return load_backbone(backbone, weights=weights, image_size=image_size,
                             preprocessing=preprocessing, modality="image")

    def read(self, data, loaded, class_names=None, min_classes=2, skip_corrupt=False,
             data_dir=None, **options):
        """A lazy source of the images (`keras_tl.data.image_sources`),
        decoded at the backbone's input size as training reads them.

        Example:
        >>> import types
        >>> examples = get_task("image_classification").read(
        ...     (np.zeros((2, 28, 28)), ["shoe", "bag"]), types.SimpleNamespace(input_size=(32, 32)))
        >>> examples.sample(2).shape, examples.class_names
        ((2, 32, 32, 3), ['bag', 'shoe'])
        """
        from keras_tl.data.image_sources import read_image_source

        return read_image_source(data, loaded.input_size, class_names=class_names,
                                 skip_corrupt=skip_corrupt, data_dir=data_dir,
                                 min_classes=min_classes)

    def build_model(self, loaded, class_names, train, dropout, **options):
        model = build_image_classifier(loaded, len(class_names),
                                       dropout=0.2 if dropout is None else dropout)
        return model, dict(input_size=list(loaded.input_size),
                           preprocessing=loaded.spec.preprocessing.to_config())

    def dataset(self, examples, loaded, info, batch_size, training=False, seed=0,
                augment=False, **options):
        """The source's pipeline: decoded in parallel, shuffled (file list)
        and augmented for training."""
        return examples.dataset(batch_size, shuffle=training, seed=seed,
                                augment=augment if training else False)

    def verification_sample(self, examples, info):
        return examples.sample(32)

    def prepare_inputs(self, inputs, info):
        """Images in any form the training data could take (file paths,
        grayscale or RGB arrays of any size, pixels in [0, 255]; one
        `[H, W, 3]` image is a batch of one), as float32 `[n, H, W, 3]`.

        Example:
        >>> import numpy as np
        >>> get_task("image_classification").prepare_inputs(
        ...     np.zeros((2, 28, 28)), {"input_size": [32, 32]}).shape
        (2, 32, 32, 3)
        """
        from keras_tl.data.images import prepare_images

        if getattr(inputs, "ndim", 0) == 3 and inputs.shape[-1] in (3, 4):
            inputs = inputs[None]  # one RGB(A) image, not a grayscale batch
        return prepare_images(inputs, tuple(info["input_size"])).astype("float32")

    def tta_views(self, model_inputs, info):
        """The test-time augmentation views of a batch of model inputs
        (`[n, H, W, 3]` pixels, before the model's own preprocessing): the
        images and their horizontal flips. No zoomed centre crop: it cuts
        off objects away from the centre and, upscaled, blurs small ones,
        and which classes that helps depends on the data; a flip keeps
        every pixel, and training's `augment` flips too.

        Example:
        >>> images = np.arange(3, dtype="float32").reshape(1, 1, 3, 1)
        >>> views = get_task("image_classification").tta_views(images, {})
        >>> [view[0, 0, :, 0].tolist() for view in views]
        [[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]]
        """
        return [model_inputs, model_inputs[:, :, ::-1]]

    def export_spec(self, model, info, class_names, sample=None):
        """`serving_default` on float32 pixels and `serving_bytes` on encoded
        image files (`keras_tl.tasks.image_serving`), both returning
        `probabilities`, `class_ids` and `class_names`; converting formats
        convert the classifier itself. Verified on `sample` (real images)
        when given, else 8 seeded random ones.

        Example:
        >>> spec = get_task("image_classification").export_spec(
        ...     None, {"input_size": [32, 32]}, ["a", "b"])
        >>> spec.contract()["serving_default"]["inputs"], spec.verification_inputs.shape
        ({'images': {'dtype': 'float32', 'shape': [None, 32, 32, 3]}}, (8, 32, 32, 3))
        """
        serve = None
        if model is not None:
            def serve(images, original_sizes):
                return self.classification_outputs(model(images, training=False), class_names)

        signatures = image_signatures(info, self.output_contract(class_names), serve)
        return self.classification_spec(model, info, class_names, signatures,
                                        verification_images(info, sample), ConvertedGraph(model))

    def model_info(self, model):
        """For a bare image classifier (one `[batch, H, W, 3]` input): its
        input size and the preprocessing layer inside it; else `None`.

        Example:
        >>> import keras
        >>> x = keras.Input((32, 32, 3))
        >>> model = keras.Model(x, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
        >>> from keras_tl.tasks import get_task
        >>> get_task("image_classification").model_info(model)
        {'input_size': [32, 32], 'preprocessing': None}
        """
        from keras_tl.layers import PixelNormalization

        inputs = getattr(model, "inputs", None) or []
        shape = tuple(inputs[0].shape) if len(inputs) == 1 else ()
        if len(shape) != 4 or shape[-1] != 3 or None in shape[1:]:
            return None
        preprocessing = None
        for layer in _compat.flatten_layers(model, include_self=False):
            if isinstance(layer, PixelNormalization):
                preprocessing = {"mean": layer.mean, "std": layer.std,
                                 "channel_order": layer.channel_order,
                                 "input": "RGB float32 in [0, 255]"}
                break
        return {"input_size": [int(shape[1]), int(shape[2])], "preprocessing": preprocessing}
