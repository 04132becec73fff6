"""Label checks and seeded, stratified splits, shared by images and text."""

import numpy as np


def check_labels(labels, class_names=None, min_classes=2):
    """Turns labels (ints or strings) into int32 indices and class names.

    Training data must hold `min_classes` distinct classes; pass
    `min_classes=1` for validation or test data.

    Example:
    >>> check_labels(["dog", "cat", "dog"])
    (array([1, 0, 1], dtype=int32), ['cat', 'dog'])
    """
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:
        labels = labels.argmax(axis=1)  # one-hot
    labels = labels.reshape(-1)
    if labels.dtype.kind in "USO":
        names = sorted({str(v) for v in labels})
        if class_names is not None:
            missing = sorted(set(names) - set(class_names))
            if missing:
                raise ValueError(f"Labels {missing} are not in class_names {class_names}.")
            names = list(class_names)
        index = {name: i for i, name in enumerate(names)}
        labels = np.asarray([index[str(v)] for v in labels], dtype="int32")
    else:
        labels = labels.astype("int32")
        if labels.size and labels.min() < 0:
            raise ValueError("Integer labels must be >= 0.")
        count = int(labels.max()) + 1 if labels.size else 0
        if class_names is not None and count > len(class_names):
            raise ValueError(
                f"Labels go up to {count - 1}, which needs {count} class names, but "
                f"{len(class_names)} were given."
            )
        names = list(class_names) if class_names is not None else [str(i) for i in range(count)]
    present = np.unique(labels)
    if len(present) < min_classes:
        raise ValueError(
            f"All {len(labels)} labels are the same class; a classifier needs "
            "examples of at least two classes."
        )
    return labels, [str(n) for n in names]


def stratified_split(labels, fraction, seed=0):
    """Seeded split keeping class proportions; returns `(train_idx, val_idx)`.

    Each class with at least two examples gives at least one to validation.

    Example:
    >>> train, val = stratified_split(np.array([0, 0, 1, 1]), 0.5, seed=0)
    >>> len(val)
    2
    """
    if not 0 < fraction < 1:
        raise ValueError(f"validation_split must be in (0, 1), got {fraction}.")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * fraction))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        else:
            n_val = 0
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return np.sort(np.asarray(train, dtype="int64")), np.sort(np.asarray(val, dtype="int64"))
