"""Recall and precision of `keras-tl check`'s detectors on planted faults: a
train/validation/test folder of PNGs from the shipped Fashion-MNIST sample,
with planted duplicates (exact copies, JPEG re-encoded copies, resized
copies; within and across splits) and flipped labels (a share of every
training class moved into another class's folder). The features are computed
once; the duplicate threshold is swept over them.

    python benchmarks/data_health.py [--backbone mobilenet_v2_torch] [--out benchmarks/results/data_health.json]
"""

import argparse
import itertools
import os
import tempfile
import time

import numpy as np
from PIL import Image

from _results import write_results  # noqa: E402  (benchmarks/ is the script's folder)
from keras_tl.datasets.fashion_mnist import load_fashion_mnist_sample
from keras_tl import check
from keras_tl.evaluation import data_health

THRESHOLDS = (0.95, 0.96, 0.965, 0.97, 0.98, 0.99)
COPY_KINDS = ("exact", "jpeg", "resized")
# (split of the original, split of the copy): leakage across splits, and repeats within one
COPY_ROUTES = (("train", "train"), ("train", "validation"), ("train", "test"),
               ("validation", "test"))


def build_folder(root, per_class, copies_per_route, flip_fraction, seed):
    """Writes root/{train,validation,test}/<class>/*.png; returns the planted
    duplicate pairs and flipped files (path -> true class)."""
    rng = np.random.default_rng(seed)
    (x_train, y_train), (x_test, y_test), names = load_fashion_mnist_sample(
        per_class["train"] + per_class["validation"], per_class["test"])
    files = {split: [] for split in ("train", "validation", "test")}  # (path, image, class)

    def write(split, name, image, label, suffix=".png", **save):
        folder = os.path.join(root, split, names[label])
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, name + suffix)
        Image.fromarray(image).save(path, **save)
        return path

    for label in range(len(names)):
        members = np.flatnonzero(y_train == label)
        cut = per_class["train"]
        for split, chosen in (("train", members[:cut]), ("validation", members[cut:])):
            for i in chosen:
                files[split].append((write(split, f"{split}{i}", x_train[i], label), x_train[i], label))
        for i in np.flatnonzero(y_test == label):
            files["test"].append((write("test", f"test{i}", x_test[i], label), x_test[i], label))

    pairs = []  # (original, copy, kind)
    for (source, target), kind in itertools.product(COPY_ROUTES, COPY_KINDS):
        for index in rng.choice(len(files[source]), copies_per_route, replace=False):
            path, image, label = files[source][index]
            name = f"copy_{kind}_{os.path.splitext(os.path.basename(path))[0]}_{target}"
            if kind == "exact":
                copy = write(target, name, image, label)
            elif kind == "jpeg":
                copy = write(target, name, image, label, suffix=".jpg", quality=75)
            else:  # resized: upscaled 2x and written again
                big = np.asarray(Image.fromarray(image).resize((56, 56), Image.BILINEAR))
                copy = write(target, name, big, label)
            pairs.append((path, copy, kind))

    flipped = {}
    copied = {p for pair in pairs for p in pair[:2]}
    for label in range(len(names)):
        candidates = [f for f in files["train"] if f[2] == label and f[0] not in copied]
        count = max(1, round(flip_fraction * len(candidates)))
        for index in rng.choice(len(candidates), count, replace=False):
            path, _, _ = candidates[index]
            wrong = int(rng.choice([c for c in range(len(names)) if c != label]))
            moved = os.path.join(root, "train", names[wrong], os.path.basename(path))
            os.replace(path, moved)
            flipped[moved] = names[label]
    return pairs, flipped, names


def duplicate_scores(groups, pairs):
    """Pair-level recall (planted pairs in one group) and precision (pairs
    inside groups that were planted), per copy kind too."""
    group_of = {path: g for g, group in enumerate(groups) for path in group}
    found = [group_of.get(a, -1) == group_of.get(b, -2) for a, b, _ in pairs]
    predicted = {frozenset(p) for group in groups for p in itertools.combinations(group, 2)}
    planted = {frozenset((a, b)) for a, b, _ in pairs}
    true_positive = len(predicted & planted)
    return dict(
        recall=round(float(np.mean(found)), 3),
        precision=round(true_positive / len(predicted), 3) if predicted else None,
        predicted_pairs=len(predicted), planted_pairs=len(planted),
        recall_by_kind={kind: round(float(np.mean([f for f, p in zip(found, pairs) if p[2] == kind])), 3)
                        for kind in COPY_KINDS},
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenet_v2_torch")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--out", default="benchmarks/results/data_health.json")
    parser.add_argument("--train-per-class", type=int, default=60)
    parser.add_argument("--validation-per-class", type=int, default=20)
    parser.add_argument("--test-per-class", type=int, default=20)
    parser.add_argument("--copies-per-route", type=int, default=4,
                        help="planted copies of each kind on each route (4 routes, 3 kinds)")
    parser.add_argument("--flip-fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    per_class = dict(train=args.train_per_class, validation=args.validation_per_class,
                     test=args.test_per_class)
    root = tempfile.mkdtemp(prefix="data_health_")
    pairs, flipped, names = build_folder(root, per_class, args.copies_per_route,
                                         args.flip_fraction, args.seed)
    options = {} if args.image_size is None else dict(image_size=args.image_size)
    start = time.perf_counter()
    found = check.folder_features(
        os.path.join(root, "train"), args.backbone, validation_data=os.path.join(root, "validation"),
        test_data=os.path.join(root, "test"), **options)
    feature_seconds = time.perf_counter() - start

    # similarities: planted pairs against the closest distinct (unplanted) pairs
    index = {path: i for i, path in enumerate(found.paths)}
    unit = data_health._normalised(found.features)
    similarity = unit @ unit.T
    planted = np.zeros_like(similarity, dtype=bool)
    for a, b, _ in pairs:
        planted[index[a], index[b]] = planted[index[b], index[a]] = True
    upper = np.triu(np.ones_like(planted), 1) & ~planted
    distinct = np.sort(similarity[upper])[::-1]
    pixel_identical = 0  # unplanted pairs above the default threshold that are the same pixels
    measured = dict(
        planted_min_by_kind={kind: round(float(min(similarity[index[a], index[b]]
                                                   for a, b, k in pairs if k == kind)), 4)
                             for kind in COPY_KINDS},
        distinct_top10=[round(float(s), 4) for s in distinct[:10]],
        distinct_quantile_99_99=round(float(np.quantile(distinct, 0.9999)), 4),
    )
    for i, j in zip(*np.nonzero(upper & (similarity > data_health.DUPLICATE_THRESHOLD))):
        with Image.open(found.paths[i]) as a, Image.open(found.paths[j]) as b:
            pixel_identical += np.array_equal(np.asarray(a.convert("L")), np.asarray(b.convert("L")))
    measured["unplanted_pairs_above_default_pixel_identical"] = pixel_identical

    sweep = {}
    for threshold in THRESHOLDS:
        groups = [[found.paths[i] for i in g] for g in data_health.find_duplicates(found.features, threshold)]
        sweep[str(threshold)] = duplicate_scores(groups, pairs)

    start = time.perf_counter()
    report = data_health.data_health_report(found.features, found.labels, found.class_names,
                                            found.paths, found.splits, seed=args.seed)
    report_seconds = time.perf_counter() - start
    suspects = report["label_issues"]
    hits = [s for s in suspects if s["path"] in flipped]
    top = suspects[:len(flipped)]
    labels = dict(
        flipped=len(flipped), suspects=len(suspects), found=len(hits),
        recall=round(len(hits) / len(flipped), 3),
        precision=round(len(hits) / len(suspects), 3) if suspects else None,
        precision_at_flipped_count=round(sum(s["path"] in flipped for s in top) / len(flipped), 3),
        suggested_label_right=round(float(np.mean([flipped[s["path"]] == s["suggested_label"]
                                                   for s in hits])), 3) if hits else None,
    )
    default = sweep[str(data_health.DUPLICATE_THRESHOLD)]
    summary = dict(
        backbone=found.settings["backbone"], examples=len(found.paths),
        duplicate_threshold=data_health.DUPLICATE_THRESHOLD,
        duplicates_recall=default["recall"], duplicates_precision=default["precision"],
        label_issues_recall=labels["recall"], label_issues_precision=labels["precision"],
        suggested_label_right=labels["suggested_label_right"],
        feature_seconds=round(feature_seconds, 1), report_seconds=round(report_seconds, 1),
    )
    settings = dict(vars(args), folds=data_health.FOLDS, l2_penalty=data_health.L2_PENALTY,
                    input_size=found.settings["input_size"], weights=found.settings["weights"],
                    copy_routes=[list(r) for r in COPY_ROUTES], copy_kinds=list(COPY_KINDS),
                    flipped_per_class="flip_fraction of each training class, at least 1")
    write_results(args.out, summary, settings=settings, similarities=measured,
                  duplicates_by_threshold=sweep, label_issues=labels,
                  imbalance_ratio=report["imbalance_ratio"])


if __name__ == "__main__":
    main()
