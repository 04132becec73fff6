"""Image data from folders, arrays, tf.data or TFDS, as uint8 RGB arrays.

keras_tl targets small datasets: images are decoded once, resized to the
backbone's size and held in memory, which makes stratified splits exact and
epochs cheap.
"""

import logging
import os

import numpy as np

from keras_tl.data.splits import check_labels

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
logger = logging.getLogger("keras_tl")


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
    >>> x, y, names = load_image_folder("flowers/", (224, 224))
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Data folder not found: {path}")
    if not os.path.isdir(path):
        raise ValueError(f"{path} is a file; pass a folder with one sub-folder per class.")
    entries = sorted(os.listdir(path))
    class_names = [e for e in entries if os.path.isdir(os.path.join(path, e)) and not e.startswith(".")]
    loose = [e for e in entries if e.lower().endswith(IMAGE_EXTENSIONS)]
    if not class_names:
        what = f"{len(loose)} images but" if loose else "nothing:"
        raise ValueError(
            f"Data folder {path} holds {what} no class sub-folders. Put the "
            "images of each class in a sub-folder named after the class, e.g. "
            f"{os.path.join(path, 'cat', '001.jpg')}."
        )
    if len(class_names) < 2:
        raise ValueError(
            f"Data folder {path} has a single class ({class_names[0]!r}); a "
            "classifier needs at least two class sub-folders."
        )
    images, labels = [], []
    for index, name in enumerate(class_names):
        folder = os.path.join(path, name)
        files = sorted(
            f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not files:
            raise ValueError(
                f"Class folder {folder} has no images (looked for "
                f"{', '.join(IMAGE_EXTENSIONS)}). Add images or remove the folder."
            )
        loaded = 0
        for file in files:
            file_path = os.path.join(folder, file)
            try:
                images.append(read_image(file_path, image_size))
            except ValueError:
                if not skip_corrupt:
                    raise
                logger.warning("Skipping unreadable image %s", file_path)
                continue
            labels.append(index)
            loaded += 1
        if loaded == 0:
            raise ValueError(f"Class folder {folder} has no readable images.")
    return np.stack(images), np.asarray(labels, dtype="int32"), class_names


def read_image(path, image_size=None):
    """Decodes an image file to uint8 RGB (EXIF rotation applied), resized to
    `(height, width)`.

    Raises a `ValueError` naming the file when it is not a readable image.

    Example:
    >>> read_image("cat.jpg", (224, 224)).shape
    (224, 224, 3)
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")  # camera rotation
            if image_size is not None:
                height, width = image_size
                if image.size != (width, height):
                    image = image.resize((width, height), Image.BILINEAR)
            return np.asarray(image, dtype="uint8")
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(
            f"Cannot read image {path}: {error}. Remove or replace the file; when "
            "training, skip_corrupt=True (--skip-corrupt) skips unreadable images "
            "with a warning."
        ) from error


def prepare_arrays(images, labels, image_size, class_names=None, min_classes=2):
    """Validates and converts `(images, labels)` arrays.

    Images as for `prepare_images`; labels ints or strings. Returns
    `(uint8 images resized to image_size, int32 labels, class_names)`.

    Example:
    >>> x, y, names = prepare_arrays(x_train, y_train, (96, 96))
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
    [0, 255], or a list of image file paths.

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
    """Resizes a uint8 `[N, H, W, 3]` batch to `(height, width)` (bilinear).

    Example:
    >>> resize_images(np.zeros((2, 28, 28, 3), "uint8"), (32, 32)).shape
    (2, 32, 32, 3)
    """
    from PIL import Image

    height, width = image_size
    if images.shape[1:3] == (height, width):
        return images
    out = np.empty((len(images), height, width, 3), dtype="uint8")
    for i, image in enumerate(images):
        out[i] = np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
    return out


def dataset_to_arrays(dataset):
    """Materialises a `tf.data.Dataset` of `(image, label)` pairs, batched
    or not, into NumPy arrays.

    Example:
    >>> x, y = dataset_to_arrays(tf.data.Dataset.from_tensor_slices((x, y)))
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
    >>> x, y, names = load_tfds("tf_flowers", data_dir="~/tensorflow_datasets")
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
