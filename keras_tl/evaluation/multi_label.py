"""Multi-label classification without a backend: label lists read from a
CSV column, per-class decision thresholds chosen on validation data, and
the metrics a multi-label run reports (mAP, micro-F1, macro-F1).

Labels in one CSV cell are separated by `;` (`"cat;dog"`, names may hold
spaces: `"golden retriever;cat"`); an empty cell is an example with no
label. One separator only, so a cell is never ambiguous.

Example:
>>> targets, names = label_matrix(parse_label_lists(["cat;dog", "dog", ""]))
>>> names, targets.tolist()
(['cat', 'dog'], [[1, 1], [0, 1], [0, 0]])
"""

import numpy as np

from keras_tl.errors import DataError

SEPARATOR = ";"
DEFAULT_THRESHOLD = 0.5
# below this many validation positives a class keeps DEFAULT_THRESHOLD: an
# F1-optimal threshold on 1-4 examples is noise
MIN_POSITIVES = 5
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


def _ranked_counts(truth, scores):
    """Cumulative true and false positives at each distinct score, highest
    first, and those scores (as sklearn's `precision_recall_curve`)."""
    order = np.argsort(-scores, kind="stable")
    scores, truth = scores[order], truth[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    true_positives = np.cumsum(truth)[last_of_each]
    false_positives = last_of_each + 1 - true_positives
    return true_positives, false_positives, scores[last_of_each]


def average_precision(targets, scores):
    """Average precision of each class (columns), sklearn's definition
    (`sum_n (R_n - R_{n-1}) P_n`); NaN for a class with no positive.

    Example:
    >>> average_precision(np.array([[1], [0], [1]]), np.array([[0.9], [0.8], [0.1]])).round(4).tolist()
    [0.8333]
    """
    targets, scores = np.asarray(targets, dtype="float64"), np.asarray(scores, dtype="float64")
    result = np.full(targets.shape[1], np.nan)
    for k in range(targets.shape[1]):
        if targets[:, k].sum() == 0:
            continue
        tp, fp, _ = _ranked_counts(targets[:, k], scores[:, k])
        precision, recall = tp / (tp + fp), tp / tp[-1]
        result[k] = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return result


def choose_thresholds(targets, scores, min_positives=MIN_POSITIVES, default=DEFAULT_THRESHOLD):
    """Per-class thresholds maximising each class's F1 on (validation)
    `targets` and `scores`: halfway between the lowest score kept positive
    and the next one below it; `default` for a class with fewer than
    `min_positives` positives.

    Example:
    >>> targets = np.array([[1], [1], [0], [0]])
    >>> choose_thresholds(targets, np.array([[0.3], [0.25], [0.2], [0.1]]), min_positives=2).tolist()
    [0.225]
    """
    targets, scores = np.asarray(targets, dtype="float64"), np.asarray(scores, dtype="float64")
    thresholds = np.full(targets.shape[1], float(default))
    for k in range(targets.shape[1]):
        positives = targets[:, k].sum()
        if positives < max(min_positives, 1):
            continue
        tp, fp, distinct = _ranked_counts(targets[:, k], scores[:, k])
        f1 = 2 * tp / (tp + fp + positives)
        best = int(np.argmax(f1))  # first best: the highest such threshold
        below = distinct[best + 1] if best + 1 < len(distinct) else 0.0
        thresholds[k] = float((distinct[best] + below) / 2)
    return thresholds


def multi_label_metrics(targets, scores, thresholds):
    """`mAP` (macro average precision over classes with a positive),
    `micro_f1` and `macro_f1` of the labels at `thresholds` (score >=
    threshold), as `metrics.json` records them.

    Example:
    >>> metrics = multi_label_metrics(np.array([[1, 0], [0, 1]]),
    ...                               np.array([[0.9, 0.2], [0.4, 0.6]]), [0.5, 0.5])
    >>> {name: round(value, 3) for name, value in metrics.items()}
    {'mAP': 1.0, 'micro_f1': 1.0, 'macro_f1': 1.0}
    """
    targets = np.asarray(targets).astype(bool)
    predicted = np.asarray(scores) >= np.asarray(thresholds, dtype="float64")
    tp = (targets & predicted).sum(axis=0)
    fp = (~targets & predicted).sum(axis=0)
    fn = (targets & ~predicted).sum(axis=0)
    per_class = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    micro = 2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1)
    precisions = average_precision(targets, scores)
    mean_ap = float(np.nanmean(precisions)) if np.isfinite(precisions).any() else float("nan")
    return {"mAP": mean_ap, "micro_f1": float(micro), "macro_f1": float(per_class.mean())}


def labels_above(probabilities, thresholds, class_names):
    """The class names at or above their threshold, per example, most
    probable first, with their probabilities.

    Example:
    >>> labels_above(np.array([[0.9, 0.2, 0.6]]), [0.5, 0.5, 0.5], ["cat", "dog", "sky"])
    [[('cat', 0.9), ('sky', 0.6)]]
    """
    probabilities = np.asarray(probabilities, dtype="float64")
    above = probabilities >= np.asarray(thresholds, dtype="float64")
    result = []
    for row, keep in zip(probabilities, above):
        idx = [i for i in np.argsort(-row, kind="stable") if keep[i]]
        result.append([(class_names[i], float(row[i])) for i in idx])
    return result
