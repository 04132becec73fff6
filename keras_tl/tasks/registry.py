"""Task name -> `Task`: the one place a task is looked up or recognised.

Entries name their module, which is imported on first use: `import
keras_tl` stays light, and a text task does not load keras_hub for an image
run.
"""

import collections
import logging
import os

from keras_tl.registry import Registry
from keras_tl.tasks import options as task_options

logger = logging.getLogger("keras_tl")

# name -> "module:Class", one instance each. Recognition tries them in this
# order: the most specific layouts first, images (the default) last.
_ENTRIES = Registry("Task", plural="tasks", instantiate=True)
# name -> the task's `options`, for tasks registered by module path: the
# command line reads them without importing the task's module.
_OPTIONS = {}


def register_task(name, target, overwrite=False, options=None):
    """Registers a task class (or its `"module:Class"` path) under `name`.
    `options`: the class's `options`, given with a module path so that
    `declared_options` need not import the module.

    Example:
    >>> register_task("image_classification", "keras_tl.tasks.image_classifier:ImageClassification")
    Traceback (most recent call last):
    ...
    keras_tl.errors.ConfigError: Task 'image_classification' is already registered; pass overwrite=True to replace it.
    """
    _ENTRIES.register(name, target, overwrite=overwrite)
    _OPTIONS.pop(name, None)
    if options is not None:
        _OPTIONS[name] = tuple(options)


def declared_options(name):
    """The `Option`s task `name` declares (without importing its module
    when they were given to `register_task`).

    Example:
    >>> [option.name for option in declared_options("keyword_spotting")]
    ['clip_seconds', 'augment', 'skip_corrupt', 'calibrate']
    """
    if name in _OPTIONS:
        return _OPTIONS[name]
    return tuple(get_task(name).options)


def tta_tasks():
    """The registered tasks with test-time augmentation: those declaring
    the `tta` option (read without importing their modules).

    Example:
    >>> tta_tasks()
    ['image_classification']
    """
    return [name for name in list_tasks()
            if any(option.name == "tta" for option in declared_options(name))]


def list_tasks():
    """Registered task names, in recognition order.

    Example:
    >>> list_tasks()
    ['object_detection', 'keyword_spotting', 'multi_label_image_classification', 'text_classification', 'image_classification']
    """
    return _ENTRIES.names()


def get_task(name):
    """The `Task` registered under `name` (a name, or a `Task` returned as is).

    Example:
    >>> get_task("text_classification").modality
    'text'
    """
    from keras_tl.tasks.base import Task

    if isinstance(name, Task):
        return name
    return _ENTRIES.get(name)


def find_task(data, backbone=None, task=None):
    """The task for `data`: `task` when given, else the first registered
    task that recognises the data (or the backbone); for a folder with one
    sub-folder per class, the task whose `file_extensions` most of its
    files have (the other files are named in a warning, and skipped);
    else image classification.

    Example:
    >>> find_task((["great", "awful"], ["pos", "neg"])).name
    'text_classification'
    >>> find_task("photos/", backbone="efficientnet_lite0").name
    'image_classification'
    """
    if task is not None:
        return get_task(task)
    candidates = [get_task(name) for name in _ENTRIES]
    for candidate in candidates:
        if candidate.recognizes(data, backbone):
            return candidate
    if isinstance(data, (str, os.PathLike)) and os.path.isdir(data):
        voted = _vote_by_files(os.fspath(data), candidates)
        if voted is not None:
            return voted
    return get_task("image_classification")


def _vote_by_files(folder, candidates):
    """The task most files in `folder`'s class sub-folders belong to (ties:
    registry order), warning about the files it will not read."""
    files = class_folder_files(folder)
    if not files:
        return None
    counts = {candidate.name: sum(f.lower().endswith(candidate.file_extensions) for f in files)
              for candidate in candidates if candidate.file_extensions}
    winner = max(counts, key=lambda name: counts[name])  # first of the largest
    if not counts[winner]:
        return None
    task = get_task(winner)
    skipped = [f for f in files if not f.lower().endswith(task.file_extensions)]
    if skipped:
        kinds = collections.Counter(os.path.splitext(f)[1].lower() or "no extension"
                                    for f in skipped)
        shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        logger.warning(
            "%s: %s data (%d of %d files); skipping the %d other files (%s): %s. --task NAME "
            "(task=) chooses another task.", folder, winner, counts[winner], len(files),
            len(skipped), ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())), shown)
    return task


def class_folder_files(folder):
    """Paths (relative to `folder`) of the files in its sub-folders, one
    level deep, hidden ones left out: the files a class-folder dataset holds.

    Example:
    >>> class_folder_files("no/such/folder")
    []
    """
    if not os.path.isdir(folder):
        return []
    files = []
    for entry in sorted(os.listdir(folder)):
        sub = os.path.join(folder, entry)
        if entry.startswith(".") or not os.path.isdir(sub):
            continue
        files += [os.path.join(entry, name) for name in sorted(os.listdir(sub))
                  if not name.startswith(".") and os.path.isfile(os.path.join(sub, name))]
    return files


def task_of(info):
    """The task a run or export was made with, from its `info` / metadata
    (runs made before tasks existed are image or text classifiers).

    Example:
    >>> task_of({"modality": "text"}).name
    'text_classification'
    """
    name = info.get("task") or {"text": "text_classification"}.get(
        info.get("modality"), "image_classification")
    return get_task(name)


register_task("object_detection", "keras_tl.tasks.object_detector:ObjectDetection",
              options=task_options.OBJECT_DETECTION)
register_task("keyword_spotting", "keras_tl.tasks.keyword_spotter:KeywordSpotting",
              options=task_options.KEYWORD_SPOTTING)
register_task("multi_label_image_classification",
              "keras_tl.tasks.multi_label_classifier:MultiLabelImageClassification",
              options=task_options.MULTI_LABEL_IMAGE_CLASSIFICATION)
register_task("text_classification", "keras_tl.tasks.text_classifier:TextClassification",
              options=task_options.TEXT_CLASSIFICATION)
register_task("image_classification", "keras_tl.tasks.image_classifier:ImageClassification",
              options=task_options.IMAGE_CLASSIFICATION)
