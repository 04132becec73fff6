"""Reading images: one file (`read_image`), the cheap check of a file's
header done while listing a folder (`check_image_file`), and arrays of any
shape or dtype made uint8 RGB at the model's size (`prepare_images`).

`keras_tl.data.image_sources` streams whole datasets through the same ops.
"""

import logging
import os
import sys

import numpy as np

from keras_tl.data import numpy_inputs
from keras_tl.data.numpy_inputs import (MAX_IMAGE_PIXELS, opened_with_pil, read_with_pil,
                                        unreadable_image)
from keras_tl.data.splits import check_labels
from keras_tl.errors import DataNotFoundError


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
logger = logging.getLogger("keras_tl")
_RESIZE_CHUNK_VALUES = 2**25  # float32 values resized at once


def read_image(path, image_size=None):
    """Decodes an image file to uint8 RGB `[H, W, 3]`, upright per its EXIF
    orientation, resized to `(height, width)` when given.

    JPEG, PNG, GIF, BMP and WebP are decoded and resized by
    `keras_tl.data.image_decoding`, the TensorFlow ops the exported
    SavedModel's `serving_bytes` signature runs, so both give the same
    pixels. Other formats PIL reads (TIFF...) are decoded by PIL, then
    resized the same way; `serving_bytes` refuses them. 16-bit images are
    scaled to 0-255 and alpha is dropped.

    Raises a `DataError` naming the file when it is not a readable image or
    is over the decompression-bomb limit (`MAX_IMAGE_PIXELS`).

    Example:
    >>> import os, tempfile
    >>> from PIL import Image
    >>> path = os.path.join(tempfile.mkdtemp(), "red.png")
    >>> Image.new("RGB", (40, 30), (200, 0, 0)).save(path)
    >>> image = read_image(path, (15, 20))
    >>> image.shape, image[0, 0].tolist()
    ((15, 20, 3), [200, 0, 0])
    """
    import tensorflow as tf

    from keras_tl.data import image_decoding

    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as error:
        raise DataNotFoundError(f"Image file not found: {path}") from error
    except OSError as error:
        raise unreadable_image(path, error.strerror or error) from error
    if image_decoding.sniff_format(data) is None:
        image = read_with_pil(path, data)
        return image if image_size is None else resize_images(image[None], image_size)[0]
    return _decoded_by_tensorflow(path, data, image_size)


def _decoded_by_tensorflow(name, data, image_size):
    import tensorflow as tf

    from keras_tl.data import image_decoding

    try:
        return image_decoding.decode_to_array(data, image_size)
    except tf.errors.OpError as error:
        raise unreadable_image(name, image_decoding.error_reason(error)) from error


def check_image_file(path):
    """The cheap check of an image file done while listing a folder: its
    header only (format and size), not its pixels. Returns `True` when the
    TensorFlow ops of `keras_tl.data.image_decoding` decode it (the
    SavedModel's formats), `False` for the other formats PIL reads.

    Raises a `DataError` naming the file, as `read_image` does, when it is
    not an image, or is over the decompression-bomb limit. A file whose
    header is sound but whose data is truncated passes; it fails when it is
    decoded.

    Example:
    >>> import os, tempfile
    >>> from PIL import Image
    >>> folder = tempfile.mkdtemp()
    >>> Image.new("RGB", (4, 4)).save(os.path.join(folder, "a.png"))
    >>> Image.new("RGB", (4, 4)).save(os.path.join(folder, "b.tiff"))
    >>> check_image_file(os.path.join(folder, "a.png")), check_image_file(os.path.join(folder, "b.tiff"))
    (True, False)
    """
    from keras_tl.data.image_decoding import sniff_format

    try:
        with open(path, "rb") as file:
            header = file.read(16)
            file.seek(0)
            with opened_with_pil(path, file):
                pass
    except FileNotFoundError as error:
        raise DataNotFoundError(f"Image file not found: {path}") from error
    except OSError as error:  # reading, not decoding
        raise unreadable_image(path, error.strerror or error) from error
    return sniff_format(header) is not None


def prepare_arrays(images, labels, image_size, class_names=None, min_classes=2):
    """Validates and converts `(images, labels)` arrays.

    Images as for `prepare_images`; labels ints or strings. Returns
    `(uint8 images resized to image_size, int32 labels, class_names)`.

    Example:
    >>> grayscale = np.full((3, 28, 28), 200, "uint8")
    >>> x, y, names = prepare_arrays(grayscale, ["cat", "dog", "dog"], (32, 32))
    >>> x.shape, y.tolist(), names
    ((3, 32, 32, 3), [0, 1, 1], ['cat', 'dog'])
    """
    labels, class_names = check_labels(labels, class_names, min_classes)
    if len(images) != len(labels):
        raise ValueError(
            f"Got {len(images)} images but {len(labels)} labels; they must be "
            "the same length, one label per image."
        )
    return prepare_images(images, image_size), labels, class_names


def prepare_images(images, image_size):
    """Any batch of images as the model takes them: uint8 RGB at `image_size`.

    `images` may be `[N, H, W]` or `[N, H, W, 1]` (grayscale, made RGB),
    `[N, H, W, 3]` or `[N, H, W, 4]` (alpha dropped), any numeric dtype in
    [0, 255], or a list of image files (paths, bytes or binary file
    objects). Files give the pixels `read_image` gives, arrays are resized
    as `resize_images` does, both without TensorFlow
    (`keras_tl.data.numpy_inputs`), so predicting needs none.

    Example:
    >>> prepare_images(np.zeros((2, 28, 28)), (96, 96)).shape
    (2, 96, 96, 3)
    """
    if isinstance(images, (list, tuple)) and images and is_file_input(images[0]):
        return np.stack([_read_for_model(image, image_size) for image in images])
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"Images must have shape [N, H, W] or [N, H, W, C] with C in 1, 3, "
            f"4; got {images.shape}."
        )
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    elif images.shape[-1] == 4:
        images = images[..., :3]
    if images.dtype != np.uint8:
        if images.size and images.max() <= 1.0:
            logger.warning("Image values are all <= 1; keras_tl expects pixels in [0, 255].")
        images = np.clip(images, 0, 255).round().astype("uint8")
    return resize_images(images, image_size)


def _read_for_model(image, image_size):
    """An image file as `read_image` reads it: with Pillow and NumPy, or,
    for the few files Pillow decodes otherwise, TensorFlow's ops."""
    data, name = numpy_inputs.file_contents(image)
    if numpy_inputs.decoded_otherwise_by_pillow(data):
        return _decoded_by_tensorflow(name, data, image_size)
    return numpy_inputs.read_image(data, image_size, name=name)


def is_file_input(value):
    """Whether `value` names or holds a file (a path, bytes or a binary
    file object), not an array.

    Example:
    >>> is_file_input("cat.jpg"), is_file_input(b"\\x89PNG"), is_file_input(np.zeros(3))
    (True, True, False)
    """
    return isinstance(value, (str, os.PathLike, bytes, bytearray)) or hasattr(value, "read")


def resize_images(images, image_size):
    """Resizes a uint8 `[N, H, W, 3]` batch to `(height, width)` with
    `keras_tl.data.image_decoding.resize_image` (bilinear, antialiased, as
    `read_image` and the SavedModel's `serving_bytes`) once TensorFlow is
    imported (training), else with its NumPy twin
    (`keras_tl.data.numpy_inputs.resize_image`, the same pixels, slower on
    large batches), so predicting needs no TensorFlow.

    Example:
    >>> resize_images(np.zeros((2, 28, 28, 3), "uint8"), (32, 32)).shape
    (2, 32, 32, 3)
    """
    height, width = image_size
    if images.shape[1:3] == (height, width):
        return images
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        from keras_tl.data.image_decoding import resize_image

        def resize(part):
            with tf.device("/CPU:0"):
                return resize_image(part, (height, width)).numpy()
    else:
        def resize(part):
            return numpy_inputs.resize_image(part, (height, width))
    # Bounded float32 memory for large batches of large images.
    pixels = max(images.shape[1] * images.shape[2], height * width) * 3
    chunk = max(1, _RESIZE_CHUNK_VALUES // pixels)
    parts = [resize(images[start:start + chunk]) for start in range(0, len(images), chunk)]
    return np.concatenate(parts) if parts else np.empty((0, height, width, 3), "uint8")
