"""Multi-label image data: which files, and which labels each one has.

Two layouts, both a CSV with a header row and one row per image:

- a file column (default `file`) and a labels column (default `labels`)
  holding the example's labels separated by `;` (`cat;dog`; empty: none);
- a file column and one 0/1 column per class (the column names are the
  class names), when there is no labels column.

Label names may hold spaces (`golden retriever;cat`); one separator only,
so a cell is never ambiguous.

`data` is the CSV itself, or a folder of images with a `labels.csv` beside
them. File paths are relative to the CSV's folder (or absolute).

Example:
>>> import pathlib
>>> _ = pathlib.Path(tmp_path, "a.png").write_bytes(b""), pathlib.Path(tmp_path, "b.png").write_bytes(b"")
>>> _ = pathlib.Path(tmp_path, "labels.csv").write_text("file,labels\\na.png,cat;dog\\nb.png,dog\\n")
>>> files, targets, names = read_multi_label_csv(str(tmp_path))
>>> [os.path.basename(f) for f in files], targets.tolist(), names
(['a.png', 'b.png'], [[1, 1], [0, 1]], ['cat', 'dog'])
"""

import csv
import os

import numpy as np

from keras_tl.errors import DataError, DataNotFoundError

LABELS_FILE = "labels.csv"
SEPARATOR = ";"
_OTHER_SEPARATORS = (",", "|")


def parse_label_lists(cells, column="labels"):
    """Each CSV cell of `column` as a list of label names (split on `;`,
    stripped, empty parts dropped); a cell that looks like another
    separator's list (a `,` or `|` in it, or a JSON list) is a `DataError`.

    Example:
    >>> parse_label_lists(["cat; dog", "bird", None])
    [['cat', 'dog'], ['bird'], []]
    >>> parse_label_lists(["cat,dog"])
    Traceback (most recent call last):
    ...
    keras_tl.errors.DataError: Column 'labels', row 1: 'cat,dog' - separate the labels of one example with ';' (e.g. 'cat;dog').
    """
    lists = []
    for row, cell in enumerate(cells, start=1):
        text = "" if cell is None or (isinstance(cell, float) and np.isnan(cell)) else str(cell)
        if text.strip().startswith("[") or any(sep in text for sep in _OTHER_SEPARATORS):
            raise DataError(f"Column {column!r}, row {row}: {text!r} - separate the labels of "
                            f"one example with {SEPARATOR!r} (e.g. 'cat{SEPARATOR}dog').")
        lists.append([part.strip() for part in text.split(SEPARATOR) if part.strip()])
    return lists


def label_matrix(label_lists, class_names=None):
    """`(targets, class_names)`: uint8 `[n, num_classes]` indicators of each
    example's labels; class names sorted unless given (validation and test
    data use the training classes, and an unknown label is a `DataError`).

    Example:
    >>> label_matrix([["b"], ["a", "b"]])[0].tolist()
    [[0, 1], [1, 1]]
    >>> label_matrix([["c"]], class_names=["a", "b"])
    Traceback (most recent call last):
    ...
    keras_tl.errors.DataError: Label 'c' (example 1) is not one of the training classes: a, b.
    """
    if class_names is None:
        class_names = sorted({label for labels in label_lists for label in labels})
    index = {name: i for i, name in enumerate(class_names)}
    targets = np.zeros((len(label_lists), len(class_names)), dtype="uint8")
    for row, labels in enumerate(label_lists):
        for label in labels:
            if label not in index:
                raise DataError(f"Label {label!r} (example {row + 1}) is not one of the "
                                f"training classes: {', '.join(class_names)}.")
            targets[row, index[label]] = 1
    return targets, list(class_names)


def multi_label_csv_path(data):
    """The CSV that describes `data` (a CSV path, or a folder holding
    `labels.csv`), or `None` when `data` is neither.

    Example:
    >>> multi_label_csv_path("photos.csv"), multi_label_csv_path(("x", "y"))
    ('photos.csv', None)
    """
    if not isinstance(data, (str, os.PathLike)):
        return None
    path = os.fspath(data)
    if os.path.isdir(path):
        beside = os.path.join(path, LABELS_FILE)
        return beside if os.path.isfile(beside) else None
    return path if path.lower().endswith(".csv") else None


def read_multi_label_csv(data, file_column="file", labels_column="labels", class_names=None):
    """`(files, targets, class_names)` of a multi-label CSV (see the module
    docstring): absolute file paths, uint8 `[n, num_classes]` targets and
    the class names (the training ones when `class_names` is given).

    Example:
    >>> read_multi_label_csv("no/such.csv")
    Traceback (most recent call last):
    ...
    keras_tl.errors.DataNotFoundError: Data file not found: no/such.csv
    """
    path = multi_label_csv_path(data) or os.fspath(data)
    if not os.path.isfile(path):
        kind = "folder without labels.csv" if os.path.isdir(path) else "file"
        raise DataNotFoundError(f"Data {kind} not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [name.strip() for name in reader.fieldnames or []]
        reader.fieldnames = header
        rows = [row for row in reader if any((cell or "").strip() for cell in row.values())]
    if file_column not in header:
        raise DataError(f"{path} has no column {file_column!r}; its columns are {header}. "
                        "Pass file_column= (CLI: --file-column).")
    folder = os.path.dirname(os.path.abspath(path))
    files = []
    for number, row in enumerate(rows, start=2):
        file = os.path.join(folder, row[file_column].strip())
        if not os.path.isfile(file):
            raise DataNotFoundError(f"{path} row {number}: image file not found: {file}")
        files.append(file)
    if labels_column in header:
        lists = parse_label_lists([row[labels_column] for row in rows], column=labels_column)
        targets, names = label_matrix(lists, class_names)
    else:
        targets, names = _indicator_columns(path, rows, header, file_column, labels_column)
        if class_names is not None and list(class_names) != names:
            raise DataError(f"{path}: class columns {names} differ from the training "
                            f"classes {list(class_names)}.")
    if not len(files):
        raise DataError(f"{path} has no rows.")
    return files, targets, names


def _indicator_columns(path, rows, header, file_column, labels_column):
    names = [name for name in header if name != file_column]
    values = np.zeros((len(rows), len(names)), dtype="uint8")
    for number, row in enumerate(rows, start=2):
        for k, name in enumerate(names):
            cell = (row[name] or "").strip()
            if cell not in ("0", "1"):
                raise DataError(
                    f"{path} row {number}, column {name!r}: {cell!r} is not 0 or 1. A "
                    f"multi-label CSV has a {labels_column!r} column of ';'-separated labels, "
                    "or one 0/1 column per class.")
            values[number - 2, k] = int(cell)
    if not names:
        raise DataError(f"{path} has no {labels_column!r} column and no 0/1 class columns.")
    return values, names
