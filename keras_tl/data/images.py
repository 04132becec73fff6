"""Image data from folders, arrays, tf.data or TFDS, as uint8 RGB arrays.

keras_tl targets small datasets: images are decoded once, resized to the
backbone's size and held in memory, which makes stratified splits exact and
epochs cheap.
"""

import logging
import os

import numpy as np

from keras_tl.data.splits import check_labels
from keras_tl.errors import DataError, DataNotFoundError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
logger = logging.getLogger("keras_tl")
_RESIZE_CHUNK_VALUES = 2**25  # float32 values resized at once


def load_image_folder(path, image_size, skip_corrupt=False):
    """Reads a folder with one sub-folder of images per class.

    Returns `(images, labels, class_names)`: uint8 `[N, H, W, 3]`, int32
    `[N]`, and the sorted sub-folder names.

    Args:
        path: the data folder.
        image_size: `(height, width)` to resize to.
        skip_corrupt: skip unreadable files with a warning instead of
            raising.

    Example:
    >>> from PIL import Image
    >>> for name in ("cat", "dog"):
    ...     (tmp_path / "pets" / name).mkdir(parents=True, exist_ok=True)
    ...     Image.new("RGB", (40, 30), "white").save(tmp_path / "pets" / name / "1.png")
    >>> x, y, names = load_image_folder(tmp_path / "pets", (32, 32))
    >>> x.shape, x.dtype, y.tolist(), names
    ((2, 32, 32, 3), dtype('uint8'), [0, 1], ['cat', 'dog'])
    """
    from keras_tl.data.folders import read_class_folders

    return read_class_folders(path, lambda file: read_image(file, image_size), IMAGE_EXTENSIONS,
                              "images", os.path.join("cat", "001.jpg"), skip_corrupt)


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
        raise _unreadable(path, error.strerror or error) from error
    if image_decoding.sniff_format(data) is None:
        image = _read_with_pil(path, data)
        return image if image_size is None else resize_images(image[None], image_size)[0]
    try:
        return image_decoding.decode_to_array(data, image_size)
    except tf.errors.OpError as error:
        raise _unreadable(path, image_decoding.error_reason(error)) from error


def _read_with_pil(path, data):
    """The formats TensorFlow cannot decode, as uint8 RGB (EXIF-rotated)."""
    import io
    import warnings

    from PIL import Image, ImageOps, UnidentifiedImageError

    from keras_tl.data.image_decoding import MAX_IMAGE_PIXELS, scale_16_bit

    try:
        with warnings.catch_warnings():
            # PIL warns above the limit and raises above twice it; keras_tl
            # refuses anything above it, before decoding.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        with image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise _unreadable(
                    path, f"image of {width}x{height} pixels is over the decompression-bomb "
                    f"limit of {MAX_IMAGE_PIXELS} pixels (as in PIL); refused before decoding")
            image = ImageOps.exif_transpose(image)
            if image.mode.startswith("I;16") or image.mode == "I":
                gray = scale_16_bit(np.clip(np.asarray(image), 0, 65535)).numpy()
                return np.repeat(gray[..., None], 3, axis=-1)
            return np.asarray(image.convert("RGB"), dtype="uint8")
    except (Image.DecompressionBombError, UnidentifiedImageError, OSError, SyntaxError) as error:
        raise _unreadable(path, error) from error


def _unreadable(path, reason):
    return DataError(
        f"Cannot read image {path}: {reason}. Remove or replace the file; when "
        "training, skip_corrupt=True (--skip-corrupt) skips unreadable images "
        "with a warning."
    )


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
    [0, 255], or a list of image file paths (read by `read_image`). Arrays
    are resized as `resize_images` does.

    Example:
    >>> prepare_images(np.zeros((2, 28, 28)), (96, 96)).shape
    (2, 96, 96, 3)
    """
    if isinstance(images, (list, tuple)) and images and isinstance(images[0], (str, os.PathLike)):
        return np.stack([read_image(path, image_size) for path in images])
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


def resize_images(images, image_size):
    """Resizes a uint8 `[N, H, W, 3]` batch to `(height, width)` with
    `keras_tl.data.image_decoding.resize_image` (bilinear, antialiased, as
    `read_image` and the SavedModel's `serving_bytes`).

    Example:
    >>> resize_images(np.zeros((2, 28, 28, 3), "uint8"), (32, 32)).shape
    (2, 32, 32, 3)
    """
    import tensorflow as tf

    from keras_tl.data.image_decoding import resize_image

    height, width = image_size
    if images.shape[1:3] == (height, width):
        return images
    # Bounded float32 memory for large batches of large images.
    pixels = max(images.shape[1] * images.shape[2], height * width) * 3
    chunk = max(1, _RESIZE_CHUNK_VALUES // pixels)
    with tf.device("/CPU:0"):
        parts = [resize_image(images[start:start + chunk], (height, width)).numpy()
                 for start in range(0, len(images), chunk)]
    return np.concatenate(parts) if parts else np.empty((0, height, width, 3), "uint8")


def dataset_to_arrays(dataset):
    """Materialises a `tf.data.Dataset` of `(image, label)` pairs, batched
    or not, into NumPy arrays.

    Example:
    >>> import tensorflow as tf
    >>> pairs = tf.data.Dataset.from_tensor_slices((np.zeros((5, 8, 8, 3)), np.arange(5)))
    >>> x, y = dataset_to_arrays(pairs.batch(2))
    >>> x.shape, y.tolist()
    ((5, 8, 8, 3), [0, 1, 2, 3, 4])
    """
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError(
            "A tf.data.Dataset must yield (image, label) pairs; got elements "
            f"{spec}. Use dataset.map(lambda d: (d['image'], d['label']))."
        )
    batched = len(spec[0].shape) == 4
    xs, ys = [], []
    for x, y in dataset.as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    if not xs:
        raise ValueError("The tf.data.Dataset is empty.")
    if batched:
        return np.concatenate(xs), np.concatenate(ys)
    return np.stack(xs), np.stack(ys)


def load_tfds(name, data_dir=None, split="train"):
    """Loads a TFDS image classification dataset, from `data_dir` when given
    (no download is attempted then).

    Returns `(images, labels, class_names)`.

    Example:
    >>> x, y, names = load_tfds("tf_flowers", data_dir="~/tensorflow_datasets")  # doctest: +SKIP
    >>> names  # doctest: +SKIP
    ['dandelion', 'daisy', 'tulips', 'sunflowers', 'roses']
    """
    import tensorflow_datasets as tfds

    try:
        dataset, info = tfds.load(
            name, split=split, data_dir=data_dir, as_supervised=True,
            with_info=True, download=data_dir is None,
        )
    except Exception as error:
        raise ValueError(
            f"Could not load TFDS dataset {name!r} (split {split!r}) from "
            f"data_dir={data_dir!r}: {error}. Prepare it there first with "
            "tfds.builder(name, data_dir=...).download_and_prepare()."
        ) from error
    x, y = dataset_to_arrays(dataset)
    label = info.features["label"] if "label" in info.features else None
    names = list(label.names) if label is not None and hasattr(label, "names") else None
    return x, y, names
