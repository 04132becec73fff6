"""What every image task serves alike: `serving_default` on float32 pixels
`[batch, H, W, 3]` (RGB 0-255 at the model's size; another size is refused
with a message) and `serving_bytes` on encoded JPEG/PNG/GIF/BMP/WebP files,
decoded, EXIF-rotated and resized in the graph by
`keras_tl.data.image_decoding` (as training and predict read files); the
PNG files `serving_bytes` is verified on; the verification images.

Image classification and object detection build their signatures here and
differ only in what they compute from the images (`serve`).
"""

import io

import numpy as np

from keras_tl.errors import ConfigError
from keras_tl.export_spec import Signature

INPUT_NAME = "images"
BYTES_NAME = "image_bytes"  # serving_bytes' input: encoded image files


def image_signatures(info, outputs, serve=None, convertible=True):
    """`(serving_default, serving_bytes)` `Signature`s of an image model.

    Args:
        info: the run's info (`input_size`).
        outputs: both signatures' output contract.
        serve: `(images, original_sizes) -> {output: tensor}` in
            TensorFlow ops, `images` float32 `[batch, H, W, 3]` at the
            model's size, `original_sizes` int32 `[batch, 2]` (height,
            width) of the images as given; `None` in a spec without a model.
        convertible: whether a converter can carry `serve`'s ops.

    Example:
    >>> default, encoded = image_signatures({"input_size": [32, 32]}, {})
    >>> default.inputs, encoded.inputs
    ({'images': {'dtype': 'float32', 'shape': [None, 32, 32, 3]}}, {'image_bytes': {'dtype': 'string', 'shape': [None]}})
    """
    size = tuple(int(v) for v in info["input_size"])
    pixels = {INPUT_NAME: {"dtype": "float32", "shape": [None, *size, 3]}}
    encoded = {BYTES_NAME: {"dtype": "string", "shape": [None]}}
    build_pixels = build_bytes = None
    if serve is not None:
        def build_pixels():
            return pixels_function(serve, size)

        def build_bytes():
            return bytes_function(serve, size)

    return (Signature("serving_default", pixels, outputs, build_pixels, convertible=convertible),
            Signature("serving_bytes", encoded, outputs, build_bytes, feed=png_feed,
                      convertible=False))


def pixels_function(serve, size):
    """`serving_default`'s `tf.function` on float32 pixels at `size`.

    Example:
    >>> import tensorflow as tf
    >>> fn = pixels_function(lambda images, sizes: {"sizes": sizes}, (8, 8))
    >>> fn(tf.zeros([2, 8, 8, 3]))["sizes"].numpy().tolist()
    [[8, 8], [8, 8]]
    """
    import tensorflow as tf  # serving graphs only: predict and reports need no TensorFlow

    height, width = size

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
            images = tf.identity(images)
        return serve(images, tf.tile([[height, width]], [tf.shape(images)[0], 1]))

    return serve_images


def bytes_function(serve, size):
    """`serving_bytes`' `tf.function` on encoded image files: each decoded
    once, by the ops `keras_tl.data.images.read_image` runs for training and
    predict, and resized to `size`; `serve` also gets each file's own size.

    Example:
    >>> import tensorflow as tf
    >>> fn = bytes_function(lambda images, sizes: {"sizes": sizes}, (8, 8))
    >>> fn(tf.constant(encode_png(np.zeros((1, 20, 10, 3)))))["sizes"].numpy().tolist()
    [[20, 10]]
    """
    import tensorflow as tf  # serving graphs only

    from keras_tl.data.image_decoding import decode_image, resize_image

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=BYTES_NAME)],
                 autograph=False)
    def serve_bytes(image_bytes):
        def decode(data):
            image = decode_image(data)
            return tf.cast(resize_image(image, size), tf.float32), tf.shape(image)[:2]

        images, sizes = tf.map_fn(decode, image_bytes, fn_output_signature=(
            tf.TensorSpec([*size, 3], tf.float32), tf.TensorSpec([2], tf.int32)))
        return serve(images, sizes)

    return serve_bytes


def png_feed(images):
    """`serving_bytes`' feed for verification images: their PNG files
    (lossless, so both signatures see the same pixels).

    Example:
    >>> [data[:4] for data in png_feed(np.zeros((2, 8, 8, 3)))[BYTES_NAME]]
    [b'\\x89PNG', b'\\x89PNG']
    """
    return {BYTES_NAME: encode_png(images)}


def encode_png(images):
    """PNG bytes of each float32 RGB 0-255 image (values rounded to uint8).

    Example:
    >>> encode_png(np.zeros((2, 8, 8, 3), "float32"))[0][:4]
    b'\\x89PNG'
    """
    from PIL import Image

    pixels = np.clip(np.round(np.asarray(images, dtype="float32")), 0, 255).astype("uint8")
    encoded = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return np.asarray(encoded, dtype=object)


def verification_images(info, sample=None, count=8):
    """Real images (`sample`, e.g. validation images) when given, else
    `count` seeded random ones; rounded to integers like decoded pixels.

    Example:
    >>> verification_images({"input_size": [16, 16]}, count=2).shape
    (2, 16, 16, 3)
    """
    size = tuple(int(v) for v in info["input_size"])
    if sample is None:
        sample = np.random.default_rng(0).integers(0, 256, (count,) + size + (3,))
    images = np.clip(np.round(np.asarray(sample, dtype="float32")), 0, 255)
    if images.ndim != 4 or images.shape[1:] != size + (3,):
        raise ConfigError(
            f"verification images must have shape [n, {size[0]}, {size[1]}, 3]; "
            f"got {images.shape}.")
    return images.astype("float32")
