"""Multi-label tiles of Fashion-MNIST items, built from the shipped sample:
each 56x56 image is a 2x2 grid holding 1 to 3 items of different classes
(the other cells black); its labels are the classes present. Generated
deterministically from a seed, so the example and its benchmark need no
download.
"""

import numpy as np

from keras_tl.datasets.fashion_mnist import load_fashion_mnist_sample


def make_fashion_tiles(count, seed=0, split="train", max_items=3):
    """`(images, targets, class_names)`: uint8 `[count, 56, 56]` tiles and
    uint8 `[count, 10]` indicators of the classes each holds. Items of the
    `train` tiles come from the sample's training images, those of `test`
    tiles from its test images, so the two never share an item.

    Example:
    >>> images, targets, names = make_fashion_tiles(4, seed=0)
    >>> images.shape, targets.shape, bool((targets.sum(axis=1) >= 1).all())
    ((4, 56, 56), (4, 10), True)
    """
    if split not in ("train", "test"):
        raise ValueError(f"split is 'train' or 'test', not {split!r}.")
    (x_train, y_train), (x_test, y_test), names = load_fashion_mnist_sample()
    items, labels = (x_train, y_train) if split == "train" else (x_test, y_test)
    rng = np.random.default_rng([seed, split == "test"])
    by_class = [np.flatnonzero(labels == c) for c in range(len(names))]
    images = np.zeros((count, 56, 56), dtype="uint8")
    targets = np.zeros((count, len(names)), dtype="uint8")
    for i in range(count):
        classes = rng.choice(len(names), size=rng.integers(1, max_items + 1), replace=False)
        cells = rng.choice(4, size=len(classes), replace=False)
        for c, cell in zip(classes, cells):
            row, col = divmod(int(cell), 2)
            images[i, row * 28:(row + 1) * 28, col * 28:(col + 1) * 28] = items[rng.choice(by_class[c])]
            targets[i, c] = 1
    return images, targets, names
