"""Fashion-MNIST: a 100-per-class sample that ships with keras_tl."""

import os

import numpy as np

CLASS_NAMES = [
    "t-shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle_boot",
]
_SAMPLE = os.path.join(os.path.dirname(__file__), "fashion_mnist_sample.npz")


def load_fashion_mnist_sample(train_per_class=100, test_per_class=100):
    """Returns `(x_train, y_train), (x_test, y_test), class_names`.

    Grayscale uint8 `[N, 28, 28]` images: a fixed, stratified sample of up
    to 100 training and 100 test images per class (no network needed).

    Example:
    >>> (x, y), (x_test, y_test), names = load_fashion_mnist_sample(20, 10)
    >>> x.shape, x_test.shape
    ((200, 28, 28), (100, 28, 28))
    """
    with np.load(_SAMPLE, allow_pickle=False) as data:
        train = _per_class(data["x_train"], data["y_train"], train_per_class)
        test = _per_class(data["x_test"], data["y_test"], test_per_class)
    return train, test, list(CLASS_NAMES)


def _per_class(x, y, count):
    if not 1 <= count <= 100:
        raise ValueError(f"The shipped sample has 1 to 100 images per class; asked {count}.")
    keep = np.concatenate([np.flatnonzero(y == c)[:count] for c in range(10)])
    keep.sort()
    return x[keep], y[keep].astype("int32")
