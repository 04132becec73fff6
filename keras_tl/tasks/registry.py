"""Task name -> `Task`: the one place a task is looked up or recognised.

Entries name their module, which is imported on first use: `import
keras_tl` stays light, and a text task does not load keras_hub for an image
run.
"""

from keras_tl.registry import Registry

# name -> "module:Class", one instance each. Recognition tries them in this
# order: the most specific layouts first, images (the default) last.
_ENTRIES = Registry("Task", plural="tasks", instantiate=True)


def register_task(name, target, overwrite=False):
    """Registers a task class (or its `"module:Class"` path) under `name`.

    Example:
    >>> register_task("image_classification", "keras_tl.tasks.image_classifier:ImageClassification")
    Traceback (most recent call last):
    ...
    keras_tl.errors.ConfigError: Task 'image_classification' is already registered; pass overwrite=True to replace it.
    """
    _ENTRIES.register(name, target, overwrite=overwrite)


def list_tasks():
    """Registered task names, in recognition order.

    Example:
    >>> list_tasks()
    ['object_detection', 'keyword_spotting', 'text_classification', 'image_classification']
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
    task that recognises the data (or the backbone), else image
    classification.

    Example:
    >>> find_task((["great", "awful"], ["pos", "neg"])).name
    'text_classification'
    >>> find_task("photos/", backbone="efficientnet_lite0").name
    'image_classification'
    """
    if task is not None:
        return get_task(task)
    for name in _ENTRIES:
        candidate = get_task(name)
        if candidate.recognizes(data, backbone):
            return candidate
    return get_task("image_classification")


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


register_task("object_detection", "keras_tl.tasks.object_detector:ObjectDetection")
register_task("keyword_spotting", "keras_tl.tasks.keyword_spotter:KeywordSpotting")
register_task("text_classification", "keras_tl.tasks.text_classifier:TextClassification")
register_task("image_classification", "keras_tl.tasks.image_classifier:ImageClassification")
