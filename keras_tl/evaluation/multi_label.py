"""Multi-label classification without a backend: per-class decision
thresholds chosen on validation data, and the metrics a multi-label run
reports (mAP, micro-F1, macro-F1). Label lists are read by
`keras_tl.data.multi_label`.

Example:
>>> targets = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
>>> scores = np.array([[0.9, 0.2], [0.8, 0.7], [0.3, 0.6], [0.1, 0.4]])
>>> average_precision(targets, scores).tolist()
[1.0, 1.0]
"""

import numpy as np

DEFAULT_THRESHOLD = 0.5
# below this many validation positives a class keeps DEFAULT_THRESHOLD: an
# F1-optimal threshold on 1-4 examples is noise
MIN_POSITIVES = 5


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
