"""Text data from CSV files, folders of .txt files or lists of strings.

Every form becomes a `TextData`: a list of non-empty strings, int32 labels
and the class names. Splits are seeded and stratified (shared with images).
"""

import csv
import dataclasses
import gzip
import logging
import os
from typing import List

import numpy as np

from keras_tl.data.splits import check_labels, stratified_split

CSV_EXTENSIONS = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
logger = logging.getLogger("keras_tl")


@dataclasses.dataclass
class TextData:
    """Texts with int32 labels indexing `class_names`.

    Example:
    >>> data = load_texts((["good", "bad"], ["pos", "neg"]))
    >>> data.class_names
    ['neg', 'pos']
    """

    texts: List[str]
    labels: np.ndarray
    class_names: List[str]

    def __len__(self):
        return len(self.texts)

    def subset(self, indices):
        """The examples at `indices`, same class names.

        Example:
        >>> data.subset([0, 2]).texts
        """
        return TextData([self.texts[i] for i in indices], self.labels[indices], self.class_names)


def is_text_data(data):
    """Whether `data` is text: a .csv/.tsv path, a folder whose class
    sub-folders hold .txt files, a `(texts, labels)` pair of strings, or a
    pandas DataFrame.

    Example:
    >>> is_text_data("reviews.csv"), is_text_data((["good", "bad"], [1, 0]))
    (True, True)
    """
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if path.lower().endswith(CSV_EXTENSIONS):
            return True
        return os.path.isdir(path) and _folder_has_txt(path)
    if hasattr(data, "columns") and hasattr(data, "iloc"):
        return True
    if isinstance(data, (tuple, list)) and len(data) == 2:
        texts = _values(data[0])
        if isinstance(texts, np.ndarray):
            return texts.dtype.kind in "US" or (texts.dtype.kind == "O" and _first_is_str(texts))
        return isinstance(texts, (list, tuple)) and _first_is_str(texts)
    return False


def _values(column):
    values = getattr(column, "values", column)  # a pandas Series' array
    return column if callable(values) else values


def _first_is_str(values):
    return len(values) > 0 and isinstance(values[0], str)


def _folder_has_txt(path):
    for entry in sorted(os.listdir(path)):
        sub = os.path.join(path, entry)
        if os.path.isdir(sub) and not entry.startswith("."):
            return any(f.lower().endswith(".txt") for f in os.listdir(sub))
    return False


def load_texts(data, text_column="text", label_column="label", class_names=None,
               min_classes=2, fallback_encoding=None):
    """Reads text data in any supported form into a `TextData`.

    Args:
        data: a CSV/TSV path (optionally .gz), a folder with one sub-folder
            of UTF-8 `.txt` files per class, a `(texts, labels)` pair, or a
            pandas DataFrame.
        text_column, label_column: the columns of a CSV or DataFrame.
        class_names: names for integer labels, or the class order for string
            labels (e.g. the training classes when reading test data).
        min_classes: distinct classes required (1 for validation/test data).
        fallback_encoding: for .txt files that are not UTF-8, decode them
            with this encoding (e.g. `"latin-1"`) instead of raising.

    Example:
    >>> data = load_texts("reviews.csv", text_column="review", label_column="score")
    """
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if not os.path.exists(path):
            raise FileNotFoundError(f"Text data not found: {path}")
        if os.path.isdir(path):
            texts, labels, folders = read_text_folder(path, fallback_encoding)
            class_names = class_names or folders
        else:
            texts, labels = read_text_csv(path, text_column, label_column)
    elif hasattr(data, "columns") and hasattr(data, "iloc"):
        texts, labels = _from_columns(data, list(data.columns), text_column, label_column, "DataFrame")
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        texts = list(_values(data[0]))
        labels = list(np.asarray(data[1]).tolist())
        if len(texts) != len(labels):
            raise ValueError(f"Got {len(texts)} texts but {len(labels)} labels.")
        _check_texts(texts, lambda i: f"text {i}")
    else:
        raise TypeError(
            "Text data must be a CSV path, a folder of .txt files per class, a "
            f"(texts, labels) pair or a DataFrame; got {type(data).__name__}."
        )
    if not texts:
        raise ValueError("The text data holds no examples.")
    label_array, names = check_labels(labels, class_names, min_classes)
    return TextData(texts, label_array, names)


def read_text_csv(path, text_column="text", label_column="label"):
    """`(texts, labels)` from a CSV (or `.tsv`, optionally gzipped) with a
    header row; labels are returned as read (strings).

    Example:
    >>> texts, labels = read_text_csv("reviews.csv.gz")
    """
    name = path.lower().removesuffix(".gz")
    delimiter = "\t" if name.endswith(".tsv") else ","
    opener = gzip.open if path.lower().endswith(".gz") else open
    csv.field_size_limit(2**31 - 1)
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            rows = list(reader)
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not UTF-8 text ({error.reason} at byte {error.start}); "
            "re-save it as UTF-8."
        ) from None
    if not header:
        raise ValueError(f"{path} is empty; expected a header row with "
                         f"{text_column!r} and {label_column!r} columns.")
    header = [h.strip() for h in header]
    columns = {}
    for name in (text_column, label_column):
        if name not in header:
            raise ValueError(
                f"{path} has no column {name!r}; its columns are {header}. Pass "
                "text_column= / label_column= (CLI: --text-column / --label-column)."
            )
        columns[name] = header.index(name)
    texts, labels = [], []
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue  # blank line
        cells = row + [""] * (len(header) - len(row))
        texts.append(cells[columns[text_column]])
        labels.append(cells[columns[label_column]].strip())
    # data rows start on line 2 of the file
    _check_texts(texts, lambda i: f"{path} row {i + 2}")
    _check_labels_present(labels, lambda i: f"{path} row {i + 2}")
    return texts, labels


def read_text_folder(path, fallback_encoding=None):
    """`(texts, labels, class_names)` from a folder with one sub-folder of
    UTF-8 `.txt` files per class; labels are the sub-folder names. Files
    that are not UTF-8 raise, or are decoded with `fallback_encoding`.

    Example:
    >>> texts, labels, names = read_text_folder("bbc/")
    """
    classes = sorted(
        e for e in os.listdir(path)
        if os.path.isdir(os.path.join(path, e)) and not e.startswith(".")
    )
    if not classes:
        raise ValueError(
            f"Text folder {path} has no class sub-folders; put the .txt files of "
            f"each class in a sub-folder named after it, e.g. {os.path.join(path, 'sport', '001.txt')}."
        )
    texts, labels = [], []
    for name in classes:
        folder = os.path.join(path, name)
        files = sorted(f for f in os.listdir(folder) if f.lower().endswith(".txt"))
        if not files:
            raise ValueError(f"Class folder {folder} holds no .txt files.")
        for file in files:
            texts.append(_read_txt(os.path.join(folder, file), fallback_encoding))
            labels.append(name)
    return texts, labels, classes


def _read_txt(file, fallback_encoding=None):
    with open(file, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        if fallback_encoding:
            logger.warning("%s is not UTF-8; read as %s.", file, fallback_encoding)
            return raw.decode(fallback_encoding).strip()
        raise ValueError(
            f"{file} is not UTF-8 text ({error.reason} at byte {error.start}); "
            "re-save it as UTF-8."
        ) from None
    if not text.strip():
        raise ValueError(f"{file} is empty; remove it or give it some text.")
    return text.strip()


def _from_columns(table, columns, text_column, label_column, what):
    for name in (text_column, label_column):
        if name not in columns:
            raise ValueError(f"The {what} has no column {name!r}; its columns are {columns}.")
    texts = list(table[text_column])
    labels = list(table[label_column])
    _check_texts(texts, lambda i: f"{what} row {i}")
    return texts, labels


def _check_texts(texts, where):
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        first = ", ".join(where(i) for i in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise ValueError(
            f"{len(bad)} of {len(texts)} texts are empty or not strings: {first}{more}. "
            "Drop or fill them before training."
        )


def _check_labels_present(labels, where):
    bad = [i for i, label in enumerate(labels) if label == ""]
    if bad:
        first = ", ".join(where(i) for i in bad[:5])
        raise ValueError(f"{len(bad)} rows have no label: {first}.")


def split_texts(data, validation_split=0.2, seed=0):
    """Seeded, stratified `(train, validation)` split of a `TextData`.

    Example:
    >>> train, val = split_texts(load_texts("reviews.csv"), 0.2, seed=0)
    """
    train_idx, val_idx = stratified_split(data.labels, validation_split, seed=seed)
    return data.subset(train_idx), data.subset(val_idx)


def sample_texts(data, count, seed=0):
    """A seeded, stratified sample of `count` examples of a `TextData` (all
    of it when `count` is `None` or not smaller).

    Example:
    >>> small = sample_texts(load_texts("reviews.csv"), 200)
    """
    if count is None or count >= len(data):
        return data
    classes, sizes = np.unique(data.labels, return_counts=True)
    quota = sizes * count / len(data)
    take = np.floor(quota).astype(int)
    extra = np.argsort(-(quota - take), kind="stable")[:count - take.sum()]
    take[extra] += 1  # largest remainders: exactly `count` in all
    rng = np.random.default_rng(seed)
    keep = [rng.choice(np.flatnonzero(data.labels == c), n, replace=False)
            for c, n in zip(classes, take)]
    return data.subset(np.sort(np.concatenate(keep)))


def make_text_dataset(features, labels, batch_size=32, shuffle=False, seed=0):
    """Batched `tf.data` of `(token dict, int32 labels)` from tokenized
    arrays (see `keras_tl.backbones.text_encoders.tokenize`).

    Each batch is cut to its longest text, rounded up to a quarter of the
    sequence length (at most 4 shapes to compile). Training batches
    (`shuffle=True`) come from windows of 8 shuffled batches sorted by
    length, so short texts cost less; the number of batches stays
    `ceil(n / batch_size)`. Other datasets keep their order.

    Example:
    >>> ds = make_text_dataset(tokenize(encoder, texts), labels, batch_size=16)
    """
    import tensorflow as tf

    labels = np.asarray(labels, "int32")
    length = int(np.asarray(features["padding_mask"]).shape[1])
    quantum = -(-length // 4)
    dataset = tf.data.Dataset.from_tensor_slices((dict(features), labels))
    if shuffle:
        window = 8

        @tf.autograph.experimental.do_not_convert
        def sort_window(x, y):
            order = tf.argsort(_lengths(x), stable=True)
            x = {key: tf.gather(value, order) for key, value in x.items()}
            return tf.data.Dataset.from_tensor_slices((x, tf.gather(y, order))).batch(batch_size)

        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size * window).flat_map(sort_window)
        dataset = dataset.shuffle(window, seed=seed, reshuffle_each_iteration=True)
        steps = -(-len(labels) // batch_size)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps))
    else:
        dataset = dataset.batch(batch_size)

    @tf.autograph.experimental.do_not_convert
    def trim(x, y):
        size = tf.minimum(-(-tf.reduce_max(_lengths(x)) // quantum) * quantum, length)
        return {key: value[:, :size] for key, value in x.items()}, y

    return dataset.map(trim).prefetch(tf.data.AUTOTUNE)


def _lengths(x):
    import tensorflow as tf

    return tf.reduce_sum(tf.cast(x["padding_mask"], tf.int32), axis=1)


def length_batches(features, batch_size=32):
    """`(indices, batch)` pairs over tokenized arrays, texts sorted by length
    and each batch cut like `make_text_dataset`'s; for fast inference.

    Example:
    >>> for idx, batch in length_batches(tokenize(encoder, texts)):
    ...     out[idx] = model.predict_on_batch(batch)
    """
    mask = np.asarray(features["padding_mask"])
    length = mask.shape[1]
    quantum = -(-length // 4)
    lengths = mask.astype(bool).sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        size = min(-(-int(lengths[idx].max()) // quantum) * quantum, length)
        yield idx, {key: np.asarray(value)[idx, :size] for key, value in features.items()}
