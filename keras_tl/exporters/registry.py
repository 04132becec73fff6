"""Format name -> `Exporter`: a new format is one module and one entry here.

Entries name their module, imported on first use (the ONNX and LiteRT
modules need their runtimes only when used). The order is the order
formats are written in: the SavedModel first, since LiteRT is converted
from it.
"""

from keras_tl.registry import Registry

# name -> "module:Class", one instance each
_ENTRIES = Registry("Export format", plural="formats", instantiate=True)


def register_exporter(name, target, overwrite=False):
    """Registers an `Exporter` class (or its `"module:Class"` path) as format `name`.

    Example:
    >>> register_exporter("onnx", "keras_tl.exporters.onnx:OnnxExporter")
    Traceback (most recent call last):
    ...
    keras_tl.errors.ConfigError: Export format 'onnx' is already registered; pass overwrite=True to replace it.
    """
    _ENTRIES.register(name, target, overwrite=overwrite)


def list_formats():
    """Registered format names, in the order they are written.

    Example:
    >>> list_formats()
    ['saved_model', 'onnx', 'litert']
    """
    return _ENTRIES.names()


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
    return _ENTRIES.get(name)


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


register_exporter("saved_model", "keras_tl.exporters.saved_model:SavedModelExporter")
register_exporter("onnx", "keras_tl.exporters.onnx:OnnxExporter")
register_exporter("litert", "keras_tl.exporters.litert:LiteRTExporter")
