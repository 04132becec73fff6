"""Format name -> `Exporter`: a new format is one module and one entry here.

Entries name their module, imported on first use (the ONNX and LiteRT
modules need their runtimes only when used). The order is the order
formats are written in: the SavedModel first, since LiteRT is converted
from it.
"""

import importlib

from keras_tl.errors import ConfigError

_ENTRIES = {
    "saved_model": "keras_tl.exporters.saved_model:SavedModelExporter",
    "onnx": "keras_tl.exporters.onnx:OnnxExporter",
    "litert": "keras_tl.exporters.litert:LiteRTExporter",
}
_INSTANCES = {}


def register_exporter(name, target, overwrite=False):
    """Registers an `Exporter` class (or its `"module:Class"` path) as format `name`.

    Example:
    >>> register_exporter("onnx", "keras_tl.exporters.onnx:OnnxExporter")
    Traceback (most recent call last):
    ...
    keras_tl.errors.ConfigError: Export format 'onnx' is already registered; pass overwrite=True to replace it.
    """
    if name in _ENTRIES and not overwrite:
        raise ConfigError(
            f"Export format {name!r} is already registered; pass overwrite=True to replace it.")
    _ENTRIES[name] = target
    _INSTANCES.pop(name, None)


def list_formats():
    """Registered format names, in the order they are written.

    Example:
    >>> list_formats()
    ['saved_model', 'onnx', 'litert']
    """
    return list(_ENTRIES)


def get_exporter(name):
    """The `Exporter` registered as format `name`.

    Example:
    >>> get_exporter("litert").name
    'litert'
    >>> get_exporter("tfjs")
    Traceback (most recent call last):
    ...
    keras_tl.errors.ConfigError: Unknown export format 'tfjs'; registered formats: saved_model, onnx, litert.
    """
    if name not in _ENTRIES:
        raise ConfigError(
            f"Unknown export format {name!r}; registered formats: {', '.join(_ENTRIES)}.")
    if name not in _INSTANCES:
        target = _ENTRIES[name]
        if isinstance(target, str):
            module, _, attribute = target.partition(":")
            target = getattr(importlib.import_module(module), attribute)
        _INSTANCES[name] = target()
    return _INSTANCES[name]


def exporter_for_file(path):
    """The exporter whose files end like `path` (`.onnx`, `.tflite`), or None.

    Example:
    >>> exporter_for_file("saved_models/flowers/1/model_int8.tflite").name
    'litert'
    """
    for name in _ENTRIES:
        exporter = get_exporter(name)
        if any(str(path).endswith(suffix) for suffix in exporter.suffixes):
            return exporter
    return None
