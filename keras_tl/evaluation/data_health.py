"""Data health before training: near-duplicates within and across splits,
labels a cross-validated head disagrees with, class imbalance and corrupt
files, all on the frozen backbone's features.

- `data_health_report(features, labels, class_names, paths, splits)` works on
  features alone (no backbone; testable on synthetic ones).
- `check_data(data, ...)` computes the features the way training does (the
  task's `load_backbone`, `read`, `build_model`, `dataset` and `split_head`,
  then `keras_tl.training.cache.extract_features`) and writes
  `data_health.json` and a grid of the suspects (`keras-tl check`).
"""

import json
import os
import typing

import numpy as np
import scipy.optimize

from keras_tl.errors import ConfigError, DataError

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
REPORT_FILE = "data_health.json"
SUSPECTS_FILE = "label_issues.png"
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


def check_data(data, backbone=None, *, output_dir=None, validation_data=None, test_data=None,
               task=None, weights="default", batch_size=32, duplicate_threshold=DUPLICATE_THRESHOLD,
               folds=FOLDS, seed=0, **options):
    """Checks a class-folder image dataset (and its validation and test
    folders) on the frozen backbone's features (`folder_features`); returns
    the report of `data_health_report` and, with `output_dir`, writes it to
    `output_dir/data_health.json` with a grid of the suspects
    (`label_issues.png`). Unreadable files are reported, not fatal.
    `options` are the task's (`image_size`, ...), as `keras_tl.finetune`.

    Example:
    >>> from PIL import Image
    >>> rng = np.random.default_rng(0)
    >>> for name in ("dark", "light"):
    ...     (tmp_path / "data" / name).mkdir(parents=True, exist_ok=True)
    ...     for i in range(6):
    ...         pixels = rng.integers(0, 80, (32, 32, 3)) + (150 if name == "light" else 0)
    ...         Image.fromarray(pixels.astype("uint8")).save(tmp_path / "data" / name / f"{i}.png")
    >>> _ = (tmp_path / "data" / "dark" / "broken.png").write_bytes(b"not an image")
    >>> report = check_data(str(tmp_path / "data"), "mobilenet_v2", weights=None, image_size=32,
    ...                     folds=3, output_dir=str(tmp_path / "health"))
    >>> report["class_counts"], [os.path.basename(p) for p in report["corrupt_files"]]
    ({'dark': 6, 'light': 6}, ['broken.png'])
    >>> sorted(os.listdir(tmp_path / "health"))
    ['data_health.json', 'label_issues.png']
    """
    found = folder_features(data, backbone, validation_data=validation_data, test_data=test_data,
                            task=task, weights=weights, batch_size=batch_size, **options)
    report = data_health_report(found.features, found.labels, found.class_names, found.paths,
                                found.splits, duplicate_threshold, folds, seed,
                                found.corrupt_files)
    report["settings"].update(found.settings)
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
        with open(os.path.join(output_dir, REPORT_FILE), "w") as f:
            json.dump(report, f, indent=2)
        plot_suspects(report["label_issues"], os.path.join(output_dir, SUSPECTS_FILE))
    return report


class FolderFeatures(typing.NamedTuple):
    """What `folder_features` returns: one row per readable file of every
    split (`features` `[n, d]`, `labels`, `paths`, `splits`), the
    `class_names`, the `corrupt_files` left out and the `settings`
    (backbone, input size, weights).

    Example:
    >>> FolderFeatures(np.zeros((1, 2)), [0], ["a"], ["a/1.png"], ["train"], [], {}).splits
    ['train']
    """

    features: np.ndarray
    labels: typing.Any
    class_names: list
    paths: list
    splits: list
    corrupt_files: list
    settings: dict


def folder_features(data, backbone=None, *, validation_data=None, test_data=None, task=None,
                    weights="default", batch_size=32, **options):
    """The frozen backbone's features of every readable image of the class
    folders `data` (`"train"`), `validation_data` and `test_data`, computed
    as a cached training stage computes them: the task's `load_backbone`,
    `read`, `build_model`, `dataset` and `split_head`, then
    `keras_tl.training.cache.extract_features`. Returns `FolderFeatures`.

    Example:
    >>> from PIL import Image
    >>> for name in ("a", "b"):
    ...     (tmp_path / "pair" / name).mkdir(parents=True, exist_ok=True)
    ...     Image.new("RGB", (8, 8), name == "a" and "red" or "blue").save(tmp_path / "pair" / name / "1.png")
    >>> found = folder_features(str(tmp_path / "pair"), "mobilenet_v2", weights=None, image_size=32)
    >>> found.features.shape, found.splits, found.class_names
    ((2, 1280), ['train', 'train'], ['a', 'b'])
    """
    from keras_tl.freezing import freeze_backbone
    from keras_tl.tasks.base import check_data_path
    from keras_tl.tasks.registry import find_task
    from keras_tl.training.cache import extract_features

    for given in (data, validation_data, test_data):
        check_data_path(given)
    task = find_task(data, backbone, task)
    if task.modality != "image":
        raise ConfigError(f"check_data reads image class folders; {data} is {task.name} data.")
    options = task.check_options(options)
    loaded = task.load_backbone(backbone or task.default_backbone, weights, **options)
    parts, corrupt, class_names = {}, [], None
    for split, path in dict(train=data, validation=validation_data, test=test_data).items():
        if path is not None:
            parts[split], unreadable = _readable_examples(task, path, loaded, class_names, options)
            class_names = class_names or list(parts[split].class_names)
            corrupt += unreadable
    model, info = task.build_model(loaded, class_names, parts["train"], None, **options)
    feature_model, _ = task.split_head(freeze_backbone(model))
    features, labels, paths, splits = [], [], [], []
    for split, examples in parts.items():
        dataset = task.dataset(examples, loaded, info, batch_size, training=False, **options)
        part_features, part_labels = extract_features(feature_model, dataset)
        features.append(part_features.reshape(len(part_features), -1))
        labels.append(part_labels)
        paths += [str(p) for p in examples.paths]
        splits += [split] * len(examples)
    settings = dict(backbone=loaded.spec.name, input_size=list(loaded.input_size),
                    weights=str(loaded.weights))
    return FolderFeatures(np.concatenate(features), np.concatenate(labels), class_names, paths,
                          splits, corrupt, settings)


def _readable_examples(task, path, loaded, class_names, options):
    """The task's examples of the folder `path` without its unreadable
    files, and those files: the header check `read` makes, then a full PIL
    decode (a truncated file passes the header check)."""
    from PIL import Image

    from keras_tl.tasks.registry import class_folder_files

    if not (isinstance(path, (str, os.PathLike)) and os.path.isdir(path)):
        raise ConfigError(f"check_data needs a folder of class sub-folders; got {path!r}.")
    examples = task.read(path, loaded, class_names=class_names,
                         min_classes=2 if class_names is None else 1,
                         **dict(options, skip_corrupt=True))
    listed = {os.path.join(os.fspath(path), f) for f in class_folder_files(os.fspath(path))
              if f.lower().endswith(task.file_extensions)}
    unreadable = sorted(listed - {str(p) for p in examples.paths})
    keep = []
    for index, file_path in enumerate(examples.paths):
        try:
            with Image.open(file_path) as image:
                image.load()
            keep.append(index)
        except (OSError, ValueError, Image.DecompressionBombError):
            unreadable.append(str(file_path))
    examples = examples.subset(keep)
    examples.skip_corrupt = False  # every file left decodes: features stay aligned with paths
    return examples, unreadable


def plot_suspects(label_issues, path, limit=30, columns=6):
    """A grid of the suspect images (`data_health_report`'s `label_issues`,
    first `limit`), each titled with its given and suggested label and
    score; writes `path` (PNG). With no suspect, a figure that says so.

    Example:
    >>> from PIL import Image
    >>> Image.new("RGB", (20, 10), "red").save(tmp_path / "x.png")
    >>> issues = [dict(path=str(tmp_path / "x.png"), split="train", label="a",
    ...                suggested_label="b", score=0.9)]
    >>> plot_suspects(issues, str(tmp_path / "suspects.png"))
    >>> os.path.exists(tmp_path / "suspects.png")
    True
    """
    from PIL import Image

    from keras_tl.reports import _pyplot, image_grid, save_figure

    shown = label_issues[:limit]
    if not shown:
        fig = _pyplot().figure(figsize=(4, 1))
        fig.text(0.5, 0.5, "no label issues found", ha="center", va="center")
        save_figure(fig, path)
        return
    pictures = []
    for issue in shown:
        with Image.open(issue["path"]) as image:
            pictures.append(np.asarray(image.convert("RGB")))
    fig, axes = image_grid([p.shape[0] / p.shape[1] for p in pictures], columns=columns, width=2.0)
    for ax, picture, issue in zip(axes, pictures, shown):
        height, width = picture.shape[:2]
        ax.imshow(picture, extent=(0, width, height, 0))
        ax.set_title(f"{os.path.basename(issue['path'])} ({issue['split']})\n{issue['label']} -> "
                     f"{issue['suggested_label']} ({issue['score']:.2f})", fontsize=8)
    fig.suptitle(f"Label issues: {len(label_issues)} suspects, most suspicious first")
    save_figure(fig, path)
