"""`keras-tl check`: data health of a class-folder image dataset before
training. The features are computed the way training computes them (the
task's `load_backbone`, `read`, `build_model`, `dataset` and `split_head`,
then `keras_tl.training.cache.extract_features`); the report is
`keras_tl.evaluation.data_health.data_health_report` on them, written as
`data_health.json` with a grid of the suspects.
"""

import json
import os
import typing

import numpy as np

from keras_tl.errors import ConfigError
from keras_tl.evaluation.data_health import DUPLICATE_THRESHOLD, FOLDS, data_health_report

REPORT_FILE = "data_health.json"
SUSPECTS_FILE = "label_issues.png"


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
