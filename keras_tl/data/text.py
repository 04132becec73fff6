"""Text data from CSV files, folders of .txt files or lists of strings.

Every form becomes a `TextData`: a list of non-empty strings, int32 labels
and the class names. Splits are seeded and stratified (shared with images).

Nothing is read wrongly in silence: files are UTF-8 (or UTF-16/32 with a
byte-order mark), and a CSV row with more fields than the header (an
unquoted comma), an unterminated quote, NUL characters (UTF-16 without a
byte-order mark, binary files), an empty text or a missing label raise
`DataError` naming the file and row.
"""

import codecs
import csv
import dataclasses
import gzip
import io
import logging
import os
import zlib
from typing import List

import numpy as np

from keras_tl.data.splits import check_labels, class_key, class_order, stratified_split
from keras_tl.errors import DataError, DataNotFoundError, listing

CSV_EXTENSIONS = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
logger = logging.getLogger("keras_tl")


@dataclasses.dataclass
class TextData:
    """Texts with int32 labels indexing `class_names`.

    Example:
    >>> data = load_texts((["good", "bad"], ["pos", "neg"]))
    >>> data.class_names, data.labels.tolist()
    (['neg', 'pos'], [1, 0])
    """

    texts: List[str]
    labels: np.ndarray
    class_names: List[str]

    def __len__(self):
        return len(self.texts)

    def subset(self, indices):
        """The examples at `indices`, same class names.

        Example:
        >>> data = load_texts((["good", "bad", "great"], ["pos", "neg", "pos"]))
        >>> data.subset([0, 2]).texts
        ['good', 'great']
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
        fallback_encoding: for .txt files that are not UTF-8 (and have no
            UTF-16/32 byte-order mark), decode them with this encoding (e.g.
            `"latin-1"`) instead of raising.

    Labels follow `keras_tl.data.splits.check_labels`: integers are class
    indices; otherwise classes are ordered numbers first, numerically, then
    strings, and `"1"`, `"1.0"` and `1` are one class.

    Example:
    >>> data = load_texts("reviews.csv", text_column="review", label_column="score")  # doctest: +SKIP
    >>> load_texts((["a", "b", "c"], ["10", "2", "2.0"])).class_names
    ['2', '10']
    """
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if not os.path.exists(path):
            raise DataNotFoundError(f"Text data not found: {path}")
        if os.path.isdir(path):
            texts, labels, folders = read_text_folder(path, fallback_encoding)
            class_names = class_names or folders
        else:
            texts, labels = read_text_csv(path, text_column, label_column)
    elif hasattr(data, "columns") and hasattr(data, "iloc"):
        texts, labels = _from_columns(data, list(data.columns), text_column, label_column, "DataFrame")
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        texts = list(_values(data[0]))
        # tolist() keeps None/NaN as they are (np.asarray would make "nan" of a
        # NaN among strings)
        labels = data[1].tolist() if hasattr(data[1], "tolist") else list(data[1])
        if len(texts) != len(labels):
            raise DataError(f"Got {len(texts)} texts but {len(labels)} labels.")
        _check_texts(texts, lambda i: f"text {i}")
    else:
        raise TypeError(
            "Text data must be a CSV path, a folder of .txt files per class, a "
            f"(texts, labels) pair or a DataFrame; got {type(data).__name__}."
        )
    if not texts:
        raise DataError("The text data holds no examples.")
    label_array, names = check_labels(labels, class_names, min_classes)
    return TextData(texts, label_array, names)


_BYTE_ORDER_MARKS = (  # UTF-32 first: its little-endian mark starts like UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


def _encoding_of(raw):
    """UTF-16/32 when a byte-order mark says so, else UTF-8 (its mark optional)."""
    for mark, encoding in _BYTE_ORDER_MARKS:
        if raw.startswith(mark):
            return encoding
    return "utf-8-sig"


def _not_text_error(path, raw, error):
    line = raw.count(b"\n", 0, error.start) + 1
    return DataError(
        f"{path} is not UTF-8 text ({error.reason} at line {line}, byte {error.start}); "
        "re-save it as UTF-8."
    )


def _nul_error(where):
    return DataError(
        f"{where} holds NUL characters: the file is probably UTF-16 without a "
        "byte-order mark, or not text at all. Re-save it as UTF-8."
    )


def _read_bytes(path):
    if not path.lower().endswith(".gz"):
        with open(path, "rb") as f:
            return f.read()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise DataError(f"{path} is not a gzip file or is truncated ({error}).") from None


def read_text_csv(path, text_column="text", label_column="label"):
    """`(texts, labels)` from a CSV (or `.tsv`, optionally gzipped) with a
    header row; labels are returned as read (strings).

    The file is UTF-8 (or UTF-16/32 with a byte-order mark). Rows are
    numbered as in a spreadsheet (the header is row 1) in error messages,
    with the line where they start when a quoted text spans lines.

    Example:
    >>> texts, labels = read_text_csv("reviews.csv.gz")  # doctest: +SKIP
    """
    path = os.fspath(path)
    name = path.lower().removesuffix(".gz")
    delimiter = "\t" if name.endswith(".tsv") else ","
    raw = _read_bytes(path)
    encoding = _encoding_of(raw)
    try:
        content = raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise _not_text_error(path, raw, error) from None
    csv.field_size_limit(2**31 - 1)
    # strict: an unterminated quote is an error, not the rest of the file as one text
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter, strict=True)
    rows = []
    try:
        header = next(reader, None)
        last_line = reader.line_num
        for number, row in enumerate(reader, start=2):  # blank lines count, as in a spreadsheet
            rows.append((number, last_line + 1, row))
            last_line = reader.line_num
    except csv.Error as error:
        raise DataError(
            f"{path} line {reader.line_num}: malformed CSV ({error}). A text holding "
            "the delimiter, quotes or line breaks must be quoted, with \"\" for a quote."
        ) from None
    if not header:
        raise DataError(f"{path} is empty; expected a header row with "
                        f"{text_column!r} and {label_column!r} columns.")
    header = [h.strip() for h in header]
    columns = {}
    for column in (text_column, label_column):
        if column not in header:
            raise DataError(
                f"{path} has no column {column!r}; its columns are {header}. Pass "
                "text_column= / label_column= (CLI: --text-column / --label-column)."
            )
        if header.count(column) > 1:
            raise DataError(f"{path} has column {column!r} {header.count(column)} times; "
                            "rename or drop the copies.")
        columns[column] = header.index(column)
    texts, labels, places = [], [], []
    for number, line, row in rows:
        if not any(cell.strip() for cell in row):
            continue  # blank line
        place = f"{path} row {number}" + (f" (line {line})" if line != number else "")
        if len(row) > len(header):
            raise DataError(
                f"{place} has {len(row)} fields but the header has {len(header)}: a "
                f"text holding a {'tab' if delimiter == chr(9) else 'comma'} must be "
                'quoted, e.g. "good, really good",pos.'
            )
        if any("\x00" in cell for cell in row):
            raise _nul_error(place)
        cells = row + [""] * (len(header) - len(row))
        texts.append(cells[columns[text_column]])
        labels.append(cells[columns[label_column]].strip())
        places.append(place)
    _check_texts(texts, places.__getitem__)
    _check_labels_present(labels, places.__getitem__)
    return texts, labels


def read_text_folder(path, fallback_encoding=None):
    """`(texts, labels, class_names)` from a folder with one sub-folder of
    UTF-8 `.txt` files per class; labels are the sub-folder names, ordered
    like `check_labels` orders labels (`"2"` before `"10"`). Hidden files
    are skipped; files that are not UTF-8 (nor UTF-16/32 with a byte-order
    mark) raise, or are decoded with `fallback_encoding`.

    Example:
    >>> texts, labels, names = read_text_folder("bbc/")  # doctest: +SKIP
    """
    from keras_tl.data.folders import class_folders

    texts, labels, classes = [], [], []
    for name, files in class_folders(path, (".txt",), ".txt files",
                                     os.path.join("sport", "001.txt"), min_classes=1):
        classes.append(name)
        for file in files:
            texts.append(_read_txt(file, fallback_encoding))
            labels.append(name)
    return texts, labels, classes


def _read_txt(file, fallback_encoding=None):
    with open(file, "rb") as f:
        raw = f.read()
    encoding = _encoding_of(raw)
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        if not fallback_encoding or encoding != "utf-8-sig":
            raise _not_text_error(file, raw, error) from None
        logger.warning("%s is not UTF-8; read as %s.", file, fallback_encoding)
        try:
            text = raw.decode(fallback_encoding)
        except UnicodeDecodeError as fallback_error:
            raise DataError(f"{file} is neither UTF-8 nor {fallback_encoding} text "
                            f"({fallback_error.reason}).") from None
    if "\x00" in text:
        raise _nul_error(file)
    if not text.strip():
        raise DataError(f"{file} is empty; remove it or give it some text.")
    return text.strip()


def _from_columns(table, columns, text_column, label_column, what):
    for name in (text_column, label_column):
        if name not in columns:
            raise DataError(f"The {what} has no column {name!r}; its columns are {columns}.")
    texts = list(table[text_column])
    labels = table[label_column].tolist()  # keeps NaN a missing label, not "nan"
    _check_texts(texts, lambda i: f"{what} row {i}")
    return texts, labels


def _check_texts(texts, where):
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise DataError(
            f"{len(bad)} of {len(texts)} texts are empty or not strings: "
            f"{listing(where(i) for i in bad)}. "
            "Drop or fill them before training."
        )


def _check_labels_present(labels, where):
    bad = [i for i, label in enumerate(labels) if class_key(label) is None]
    if bad:
        raise DataError(f"{len(bad)} rows have no label: {listing(where(i) for i in bad)}.")


def split_texts(data, validation_split=0.2, seed=0):
    """Seeded, stratified `(train, validation)` split of a `TextData`.

    Example:
    >>> data = load_texts((["a", "b", "c", "d"], ["x", "y", "x", "y"]))
    >>> train, val = split_texts(data, 0.5, seed=0)
    >>> sorted(val.class_names[i] for i in val.labels)
    ['x', 'y']
    """
    train_idx, val_idx = stratified_split(data.labels, validation_split, seed=seed)
    return data.subset(train_idx), data.subset(val_idx)


def sample_texts(data, count, seed=0):
    """A seeded, stratified sample of `count` examples of a `TextData` (all
    of it when `count` is `None` or not smaller).

    Example:
    >>> data = load_texts((["a", "b", "c", "d"], ["x", "y", "x", "y"]))
    >>> sample_texts(data, 2).labels.tolist()
    [0, 1]
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
    >>> ds = make_text_dataset(tokenize(encoder, texts), labels, batch_size=16)  # doctest: +SKIP
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
    >>> for idx, batch in length_batches(tokenize(encoder, texts)):  # doctest: +SKIP
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
