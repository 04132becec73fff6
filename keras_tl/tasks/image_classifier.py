"""Image classification: RGB pixels in, class probabilities out.

The model takes float32 RGB pixels in [0, 255], `[batch, H, W, 3]` (input
`"images"`): the backbone's preprocessing is its first layer, so training,
export and serving cannot disagree.
"""

import os

from keras_tl.data.images import IMAGE_EXTENSIONS
from keras_tl.tasks.options import IMAGE_CLASSIFICATION
from keras_tl.tasks.classification import Classification, classification_head

INPUT_NAME = "images"
BYTES_NAME = "image_bytes"  # serving_bytes' input: encoded image files
DEFAULT_BACKBONE = "mobilenet_v2_torch"  # see benchmarks/results/default_backbone.json


def build_image_classifier(loaded, num_classes, dropout=0.2, name="image_classifier"):
    """Puts a classification head on a loaded backbone.

    Args:
        loaded: a `keras_tl.backbones.LoadedBackbone`.
        num_classes: number of classes (>= 2).
        dropout: dropout rate before the final dense layer.

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
    outputs = classification_head(backbone(x), num_classes, dropout)
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
                             preprocessing=preprocessing)

    def read(self, data, loaded, class_names=None, min_classes=2, skip_corrupt=False,
             data_dir=None, **options):
        """The images at the backbone's input size, with their labels.

        Example:
        >>> import types
        >>> examples = get_task("image_classification").read(
        ...     (np.zeros((2, 28, 28)), ["shoe", "bag"]), types.SimpleNamespace(input_size=(32, 32)))
        >>> examples.inputs.shape, examples.class_names
        ((2, 32, 32, 3), ['bag', 'shoe'])
        """
        from keras_tl.data.examples import LabelledArrays
        from keras_tl.data.image_sources import load_image_data

        x, y, names = load_image_data(data, class_names=class_names, min_classes=min_classes,
                                      image_size=loaded.input_size, skip_corrupt=skip_corrupt,
                                      data_dir=data_dir)
        return LabelledArrays(x, y, names)

    def build_model(self, loaded, class_names, train, dropout, **options):
        model = build_image_classifier(loaded, len(class_names),
                                       dropout=0.2 if dropout is None else dropout)
        return model, dict(input_size=list(loaded.input_size),
                           preprocessing=loaded.spec.preprocessing.to_config())

    def dataset(self, examples, loaded, info, batch_size, training=False, seed=0,
                augment=False, **options):
        from keras_tl.data.pipeline import make_dataset

        return make_dataset(examples.inputs, examples.labels, batch_size, shuffle=training,
                            seed=seed, augment=augment if training else False)

    def verification_sample(self, examples, info):
        return examples.inputs[:32]

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

    def serving_functions(self, model, info, class_names):
        """`serving_default` on float32 pixels `[batch, H, W, 3]` (RGB
        0-255; another size is refused with a message) and `serving_bytes`
        on encoded JPEG/PNG/GIF/BMP/WebP files, decoded, EXIF-rotated and
        resized in the graph by `keras_tl.data.image_decoding`, as training
        and predict read files. Both return `probabilities`, `class_ids`
        and `class_names`.

        Example:
        >>> functions = get_task("image_classification").serving_functions(
        ...     model, {"input_size": [96, 96]}, ["cat", "dog"])  # doctest: +SKIP
        >>> list(functions)  # doctest: +SKIP
        ['serving_default', 'serving_bytes']
        """
        import tensorflow as tf

        from keras_tl.data.image_decoding import decode_and_resize

        height, width = info["input_size"]

        def outputs(images):
            return self.classification_outputs(model(images, training=False), class_names)

        @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32,
                                                    name=INPUT_NAME)], autograph=False)
        def serve_images(images):
            # TF Serving does not check the signature's shape; the model would
            # answer for any size, so a wrong one is refused here.
            given = tf.shape(images)
            right_size = tf.equal(tf.size(given), 4) & tf.reduce_all(
                tf.equal(tf.pad(given, [[0, 3]])[1:4], [height, width, 3]))
            message = tf.strings.format(
                f"serving_default takes images of shape [batch, {height}, {width}, 3] "
                "(the input size of the model), got {}: resize them first, or send the "
                "encoded files to serving_bytes", given)
            with tf.control_dependencies([tf.debugging.Assert(right_size, [message])]):
                return outputs(tf.identity(images))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=BYTES_NAME)],
                     autograph=False)
        def serve_bytes(image_bytes):
            def decode(data):
                # The ops keras_tl.data.images.read_image runs for training and predict.
                return tf.cast(decode_and_resize(data, (height, width)), tf.float32)

            images = tf.map_fn(decode, image_bytes,
                               fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32))
            return outputs(images)

        return {"serving_default": serve_images, "serving_bytes": serve_bytes}

    def signature_inputs(self, signature, inputs, info):
        """`serving_default` takes the pixels; `serving_bytes` their PNG
        files (lossless, so both must match the Keras model).

        Example:
        >>> from keras_tl.tasks import get_task
        >>> import numpy as np
        >>> feed = get_task("image_classification").signature_inputs(
        ...     "serving_bytes", np.zeros((2, 8, 8, 3)), {"input_size": [8, 8]})
        >>> [data[:4] for data in feed["image_bytes"]]
        [b'\\x89PNG', b'\\x89PNG']
        """
        if signature == "serving_bytes":
            return {BYTES_NAME: encode_png(inputs)}
        return super().signature_inputs(signature, inputs, info)

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
        for layer in model._flatten_layers(include_self=False, recursive=True):
            if isinstance(layer, PixelNormalization):
                preprocessing = {"mean": layer.mean, "std": layer.std,
                                 "channel_order": layer.channel_order,
                                 "input": "RGB float32 in [0, 255]"}
                break
        return {"input_size": [int(shape[1]), int(shape[2])], "preprocessing": preprocessing}

    def signature_contract(self, info, class_names):
        """Example:
        >>> from keras_tl.tasks import get_task
        >>> get_task("image_classification").signature_contract(
        ...     {"input_size": [32, 32]}, ["a", "b"])["serving_default"]["inputs"]
        {'images': {'dtype': 'float32', 'shape': [None, 32, 32, 3]}}
        """
        height, width = info["input_size"]
        outputs = self.output_contract(class_names)
        return {
            "serving_default": {
                "inputs": {INPUT_NAME: {"dtype": "float32", "shape": [None, height, width, 3]}},
                "outputs": outputs,
            },
            "serving_bytes": {
                "inputs": {BYTES_NAME: {"dtype": "string", "shape": [None]}},
                "outputs": outputs,
            },
        }

    def verification_inputs(self, info, sample=None, count=8):
        """Real images (`sample`, e.g. validation images) when given, else
        `count` seeded random ones; rounded to integers like decoded pixels.

        Example:
        >>> from keras_tl.tasks import get_task
        >>> get_task("image_classification").verification_inputs(
        ...     {"input_size": [16, 16]}, count=2).shape
        (2, 16, 16, 3)
        """
        import numpy as np

        size = tuple(info["input_size"])
        if sample is None:
            sample = np.random.default_rng(0).integers(0, 256, (count,) + size + (3,))
        images = np.clip(np.round(np.asarray(sample, dtype="float32")), 0, 255)
        if images.ndim != 4 or images.shape[1:] != size + (3,):
            from keras_tl.errors import ConfigError

            raise ConfigError(
                f"verification images must have shape [n, {size[0]}, {size[1]}, 3]; "
                f"got {images.shape}.")
        return images.astype("float32")


def encode_png(images):
    """PNG bytes of each float32 RGB 0-255 image (values rounded to uint8).

    Example:
    >>> import numpy as np
    >>> encode_png(np.zeros((2, 8, 8, 3), "float32"))[0][:4]
    b'\\x89PNG'
    """
    import io

    import numpy as np
    from PIL import Image

    pixels = np.clip(np.round(np.asarray(images, dtype="float32")), 0, 255).astype("uint8")
    encoded = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return np.asarray(encoded, dtype=object)
