"""One entry point for every kind of image data a user may pass."""

import os

from keras_tl.data import images as _images


def load_image_data(data, image_size, class_names=None, skip_corrupt=False, data_dir=None,
                    min_classes=2):
    """Loads image data given as a folder path, `(images, labels)` arrays, a
    `tf.data.Dataset` of pairs, or a TFDS name (`"tfds:NAME[:SPLIT]"`, read
    from `data_dir`).

    `min_classes=1` accepts validation or test data of a single class.
    Returns uint8 images `[N, H, W, 3]` at `image_size`, int32 labels and the
    class names.

    Example:
    >>> from PIL import Image
    >>> for name in ("cat", "dog"):
    ...     (tmp_path / "animals" / name).mkdir(parents=True, exist_ok=True)
    ...     Image.new("RGB", (40, 30), "white").save(tmp_path / "animals" / name / "1.png")
    >>> x, y, names = load_image_data(str(tmp_path / "animals"), (32, 32))
    >>> x.shape, y.tolist(), names
    ((2, 32, 32, 3), [0, 1], ['cat', 'dog'])
    >>> pixels = np.full((4, 28, 28), 128, "uint8")  # grayscale arrays
    >>> x, y, names = load_image_data((pixels, ["cat", "dog", "cat", "dog"]), (32, 32))
    >>> x.shape, x.dtype, y.tolist(), names
    ((4, 32, 32, 3), dtype('uint8'), [0, 1, 0, 1], ['cat', 'dog'])
    """
    if isinstance(data, (str, os.PathLike)):
        text = os.fspath(data)
        if text.startswith("tfds:"):
            parts = text.split(":")
            split = parts[2] if len(parts) > 2 else "train"
            x, y, names = _images.load_tfds(parts[1], data_dir=data_dir, split=split)
            return _images.prepare_arrays(x, y, image_size, class_names or names, min_classes)
        x, y, names = _images.load_image_folder(text, image_size, skip_corrupt=skip_corrupt)
        if class_names is not None and list(class_names) != names:
            raise ValueError(
                f"Class folders of {text} ({names}) differ from the training "
                f"classes ({list(class_names)})."
            )
        return x, y, names
    if _is_tf_dataset(data):
        x, y = _images.dataset_to_arrays(data)
        return _images.prepare_arrays(x, y, image_size, class_names, min_classes)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return _images.prepare_arrays(data[0], data[1], image_size, class_names, min_classes)
    raise TypeError(
        "Image data must be a folder path, an (images, labels) pair, a "
        f"tf.data.Dataset or 'tfds:NAME'; got {type(data).__name__}."
    )


def _is_tf_dataset(data):
    return type(data).__module__.startswith("tensorflow") and hasattr(data, "element_spec")
