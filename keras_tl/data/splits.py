"""Label checks and seeded, stratified splits, shared by images and text."""

import math
import numbers
import re

import numpy as np

from keras_tl.errors import ConfigError, DataError, listing

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")


def class_key(value):
    """The class a label denotes: a number (`1`, `1.0` and `"1"` alike) or a
    stripped string; `None` for a missing label (None, NaN, blank, or the
    string `"nan"` that numpy makes of a NaN among strings).

    Example:
    >>> class_key("1.0"), class_key(1), class_key(" cat "), class_key(float("nan"))
    (1, 1, 'cat', None)
    """
    if value is None:
        return None
    if isinstance(value, bytes):  # e.g. labels from tf.data
        value = value.decode("utf-8")
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        if isinstance(value, numbers.Integral):
            return int(value)
        number = float(value)
        if math.isnan(number):
            return None
        return int(number) if number.is_integer() else number
    text = str(value).strip()
    if not text or text == "nan":
        return None
    if _INTEGER.fullmatch(text):
        return int(text)
    if _NUMBER.fullmatch(text):
        number = float(text)
        return int(number) if number.is_integer() else number
    return text


def class_order(key):
    """Sort key of class keys: numbers first, numerically, then strings.

    Example:
    >>> sorted(["b", "10", "a", "9"], key=lambda n: class_order(class_key(n)))
    ['9', '10', 'a', 'b']
    """
    return (1, key) if isinstance(key, str) else (0, key)


def _positions(indices, what="label"):
    return listing(f"{what} {i}" for i in indices)


def check_labels(labels, class_names=None, min_classes=2):
    """Turns labels into int32 class indices and class names.

    - Integer labels (and whole floats, booleans, one-hot rows) are class
      indices: label `k` is class `k`, named `class_names[k]` or `"k"`.
    - Labels with strings among them are class names. Labels equal as
      numbers are one class (`"1"`, `"1.0"` and `1`), surrounding spaces are
      ignored, and classes are ordered numbers first, numerically (`"2"`
      before `"10"`), then strings, sorted; or as in `class_names` when
      given (e.g. the training classes when reading test data).

    Missing labels (None, NaN, blank) and fractional float labels raise
    `DataError`. Training data must hold `min_classes` distinct classes;
    pass `min_classes=1` for validation or test data.

    Example:
    >>> check_labels(["dog", "cat", "dog"])
    (array([1, 0, 1], dtype=int32), ['cat', 'dog'])
    >>> check_labels(["10", "2", "2.0", 10])
    (array([1, 0, 0, 1], dtype=int32), ['2', '10'])
    >>> check_labels([2, 0, 2])
    (array([2, 0, 2], dtype=int32), ['0', '1', '2'])
    """
    raw, labels = labels, np.asarray(labels)
    if labels.dtype.kind in "US" and not isinstance(raw, np.ndarray):
        labels = np.asarray(raw, dtype=object)  # keeps None/NaN among strings as they are
    if labels.ndim == 2 and labels.shape[1] > 1:
        labels = labels.argmax(axis=1)  # one-hot
    labels = labels.reshape(-1)
    if labels.dtype.kind == "O" and all(
        isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in labels
    ):
        labels = labels.astype("float64")  # numbers only: indices, like a numeric array
    if labels.dtype.kind in "biuf":
        labels, names = _indices(labels, class_names)
    else:
        labels, names = _named(labels, class_names)
    present = np.unique(labels)
    if len(present) < min_classes:
        raise DataError(
            f"All {len(labels)} labels are the same class; a classifier needs "
            "examples of at least two classes."
        )
    return labels, names


def _indices(labels, class_names):
    if labels.dtype.kind == "f":
        missing = np.flatnonzero(np.isnan(labels)).tolist()
        if missing:
            raise DataError(
                f"{len(missing)} of {len(labels)} labels are missing (NaN): "
                f"{_positions(missing)}. Drop or fill them."
            )
        fractional = labels[labels != np.round(labels)]
        if fractional.size:
            raise DataError(
                f"Float labels must be whole numbers (class indices); got "
                f"{fractional[:5].tolist()}. Pass class indices, or the labels as strings."
            )
    if labels.size and labels.min() < 0:
        raise DataError("Integer labels must be >= 0 (class indices).")
    if labels.size and labels.max() > np.iinfo("int32").max:
        raise DataError(f"Label {labels.max()} is too large for a class index.")
    labels = labels.astype("int32")
    count = int(labels.max()) + 1 if labels.size else 0
    if class_names is not None and count > len(class_names):
        raise DataError(
            f"Labels go up to {count - 1}, which needs {count} class names, but "
            f"{len(class_names)} were given."
        )
    names = list(class_names) if class_names is not None else range(count)
    return labels, [str(n) for n in names]


def _named(labels, class_names):
    keys = [class_key(v) for v in labels]
    missing = [i for i, key in enumerate(keys) if key is None]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(keys)} labels are missing (None, NaN or blank): "
            f"{_positions(missing)}. Drop or fill them."
        )
    if class_names is None:
        distinct = sorted(set(keys), key=class_order)
        names = [str(key) for key in distinct]
    else:
        names = [str(n) for n in class_names]
        distinct = [class_key(n) for n in class_names]
        if len(set(distinct)) != len(distinct) or None in distinct:
            raise ConfigError(
                f"class_names {names} are blank or name a class twice (names equal as "
                "numbers, such as '1' and '1.0', are one class)."
            )
        unknown = sorted(set(keys) - set(distinct), key=class_order)
        if unknown:
            raise DataError(
                f"Labels {[str(k) for k in unknown[:10]]} are not in class_names {names}."
            )
    index = {key: i for i, key in enumerate(distinct)}
    return np.asarray([index[key] for key in keys], dtype="int32"), names


def stratified_split(labels, fraction, seed=0):
    """Seeded split keeping class proportions; returns `(train_idx, val_idx)`.

    Each class with at least two examples gives at least one to validation.

    Example:
    >>> train, val = stratified_split(np.array([0, 0, 1, 1]), 0.5, seed=0)
    >>> len(val)
    2
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"validation_split must be in (0, 1), got {fraction}.")
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
