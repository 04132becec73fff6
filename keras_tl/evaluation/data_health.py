"""Data health before training: near-duplicates within and across splits,
labels a cross-validated head disagrees with, class imbalance and corrupt
files, all on the frozen backbone's features.

- `data_health_report(features, labels, class_names, paths, splits)` works on
  features alone (no backbone; testable on synthetic ones).
- `keras_tl.check.check_data(data, ...)` computes the features the way
  training does and writes the report (`keras-tl check`).
"""

import numpy as np
import scipy.optimize

from keras_tl.errors import DataError

# Cosine similarity of L2-normalised pooled features above which two images
# are near-duplicates. Measured on the shipped Fashion-MNIST sample with
# mobilenet_v2_torch and planted copies (benchmarks/data_health.py, results in
# benchmarks/results/data_health.json): exact copies score 1.0, distinct
# images up to 0.979, JPEG re-encoded (quality 75) 28-pixel copies down to
# 0.91. 0.965 had the best F1 of the sweep (pair recall 0.71, precision 0.85);
# 0.95 finds more re-encoded copies (0.83) at precision 0.56.
DUPLICATE_THRESHOLD = 0.965
FOLDS = 5
L2_PENALTY = 1.0  # of the logistic regression, on standardised features
SPLITS = ("train", "validation", "test")


def find_duplicates(features, threshold=DUPLICATE_THRESHOLD, block=1024):
    """Groups of indices (each sorted, at least 2) whose features have a
    cosine similarity above `threshold`, chained: a ~ b and b ~ c put a, b
    and c in one group. Largest groups first.

    Example:
    >>> features = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.01], [-1.0, 0.0]])
    >>> find_duplicates(features)
    [[0, 2]]
    """
    unit = _normalised(features)
    parent = np.arange(len(unit))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, len(unit), block):  # blocks: memory grows with n, not n^2
        similarity = unit[start:start + block] @ unit.T
        rows, columns = np.nonzero(similarity > threshold)
        for i, j in zip(rows + start, columns):
            if i < j:
                parent[root(i)] = root(j)
    groups = {}
    for i in range(len(unit)):
        groups.setdefault(root(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))


def _normalised(features):
    features = np.asarray(features, dtype="float64").reshape(len(features), -1)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def out_of_fold_probabilities(features, labels, num_classes, folds=FOLDS, seed=0,
                              l2_penalty=L2_PENALTY):
    """Class probabilities of every example from an L2-regularised
    multinomial logistic regression fitted on the other folds (stratified
    `folds`-fold; fewer when a class has fewer examples, at least 2).

    Example:
    >>> x = np.array([[0.0], [0.1], [0.2], [1.0], [1.1], [1.2]])
    >>> p = out_of_fold_probabilities(x, [0, 0, 0, 1, 1, 1], 2, folds=3)
    >>> p.argmax(1).tolist()
    [0, 0, 0, 1, 1, 1]
    """
    features = np.asarray(features, dtype="float64").reshape(len(features), -1)
    labels = np.asarray(labels, dtype="int64")
    counts = np.bincount(labels, minlength=num_classes)
    folds = min(folds, int(counts[counts > 0].min()))
    if folds < 2:
        raise DataError("Every class needs at least 2 examples to cross-validate its labels.")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype="int64")
    for c in np.flatnonzero(counts):  # stratified: each class spread over the folds
        members = rng.permutation(np.flatnonzero(labels == c))
        fold_of[members] = (np.arange(len(members)) + rng.integers(folds)) % folds
    probabilities = np.zeros((len(labels), num_classes))
    for fold in range(folds):
        held = fold_of == fold
        probabilities[held] = _fit_predict(features[~held], labels[~held], features[held],
                                           num_classes, l2_penalty)
    return probabilities


def _fit_predict(x, y, x_new, num_classes, l2_penalty):
    """Softmax regression (weights L2-penalised, not the bias) by L-BFGS on
    features standardised with the training fold's statistics."""
    mean, scale = x.mean(0), x.std(0) + 1e-6
    x, x_new = (x - mean) / scale, (x_new - mean) / scale
    n, d = x.shape
    onehot = np.eye(num_classes)[y]

    def loss(theta):
        w, b = theta[:d * num_classes].reshape(d, num_classes), theta[d * num_classes:]
        logits = x @ w + b
        logits -= logits.max(1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        error = (np.exp(log_p) - onehot) / n
        value = -(onehot * log_p).sum() / n + 0.5 * l2_penalty / n * (w * w).sum()
        grad_w = x.T @ error + l2_penalty / n * w
        return value, np.concatenate([grad_w.ravel(), error.sum(0)])

    theta = scipy.optimize.minimize(loss, np.zeros(d * num_classes + num_classes), jac=True,
                                    method="L-BFGS-B", options=dict(maxiter=500)).x
    logits = x_new @ theta[:d * num_classes].reshape(d, num_classes) + theta[d * num_classes:]
    logits -= logits.max(1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True)


def find_label_issues(probabilities, labels):
    """`[(index, suggested class, score)]` of the examples whose label looks
    wrong, most suspicious first, from out-of-fold `probabilities`.

    Confident learning (Northcutt, Jiang & Chuang, "Confident Learning:
    Estimating Uncertainty in Dataset Labels", JAIR 2021): each class's
    threshold is the mean probability of that class over the examples
    labelled with it (its average self-confidence). An example is suspect
    when its given class's probability is below that class's threshold and
    another class's is at or above its own; the suggestion is the most
    probable such class, the score the suggestion's probability minus the
    given class's (the normalised margin used to rank them).

    Example:
    >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9], [0.88, 0.12]])
    >>> [(i, c, round(s, 2)) for i, c, s in find_label_issues(p, [0, 0, 1, 1, 1])]
    [(4, 0, 0.76)]
    """
    probabilities = np.asarray(probabilities, dtype="float64")
    labels = np.asarray(labels, dtype="int64")
    num_classes = probabilities.shape[1]
    thresholds = np.array([probabilities[labels == c, c].mean() if np.any(labels == c) else 1.0
                           for c in range(num_classes)])
    given = probabilities[np.arange(len(labels)), labels]
    above = probabilities >= thresholds
    above[np.arange(len(labels)), labels] = False
    issues = []
    for i in np.flatnonzero((given < thresholds[labels]) & above.any(1)):
        suggested = int(np.argmax(np.where(above[i], probabilities[i], -1.0)))
        issues.append((int(i), suggested, float(probabilities[i, suggested] - given[i])))
    # ties (margins near 1 round alike): the lower the given class's probability, the earlier
    return sorted(issues, key=lambda issue: (-round(issue[2], 4), given[issue[0]]))


def data_health_report(features, labels, class_names, paths, splits,
                       duplicate_threshold=DUPLICATE_THRESHOLD, folds=FOLDS, seed=0,
                       corrupt_files=()):
    """The report `check_data` writes, from features: `duplicates` (groups
    of `{"path", "split"}`), `label_issues` (`{"path", "split", "label",
    "suggested_label", "score"}`, most suspicious first), `class_counts`
    (of every split together, and per split), `imbalance_ratio` (largest
    class over smallest), `corrupt_files` and the `settings` used.

    Example:
    >>> features = np.array([[0, 1], [0.3, 1], [0.7, 1], [1, 0], [1, 0.3], [1, 0.7], [1, -0.3], [0, 1.01]])
    >>> report = data_health_report(features, [0, 0, 0, 1, 1, 1, 1, 1], ["a", "b"],
    ...                             [f"{i}.png" for i in range(8)], ["train"] * 7 + ["test"], folds=2)
    >>> report["duplicates"]
    [[{'path': '0.png', 'split': 'train'}, {'path': '7.png', 'split': 'test'}]]
    >>> report["label_issues"][0]["path"], report["label_issues"][0]["suggested_label"]
    ('7.png', 'a')
    >>> report["class_counts"], report["imbalance_ratio"]
    ({'a': 3, 'b': 5}, 1.67)
    """
    labels = np.asarray(labels, dtype="int64")
    paths, splits = [str(p) for p in paths], list(splits)
    counts = np.bincount(labels, minlength=len(class_names))
    duplicates = [[dict(path=paths[i], split=splits[i]) for i in group]
                  for group in find_duplicates(features, duplicate_threshold)]
    probabilities = out_of_fold_probabilities(features, labels, len(class_names), folds, seed)
    label_issues = [dict(path=paths[i], split=splits[i], label=class_names[labels[i]],
                         suggested_label=class_names[suggested], score=round(score, 4))
                    for i, suggested, score in find_label_issues(probabilities, labels)]
    present = counts[counts > 0]
    return dict(
        duplicates=duplicates,
        label_issues=label_issues,
        class_counts={name: int(n) for name, n in zip(class_names, counts)},
        class_counts_by_split={
            split: {name: int(np.sum((labels == c) & (np.asarray(splits) == split)))
                    for c, name in enumerate(class_names)}
            for split in dict.fromkeys(splits)},
        imbalance_ratio=round(float(present.max() / present.min()), 2),
        corrupt_files=list(corrupt_files),
        settings=dict(duplicate_threshold=duplicate_threshold, folds=folds, seed=seed,
                      l2_penalty=L2_PENALTY, examples=len(labels)),
    )
