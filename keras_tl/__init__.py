"""keras_tl: transfer learning for Keras 3.

Names load on first use, so `import keras_tl` (and `keras-tl -h`) imports
neither Keras nor TensorFlow. Once Keras is imported, before or after
keras_tl, every Keras object keras_tl saves in its models is registered, so
`keras.saving.load_model("runs/x/model.keras")` works after `import
keras_tl` (the detector's keras_hub classes once keras_hub is imported).

Example:
>>> import keras_tl
>>> keras_tl.list_backbones("audio")
['speech_embedding']
"""

import functools
import importlib
import importlib.util

from keras_tl import _import_hooks
from keras_tl.errors import KerasTLError
from keras_tl.version import __version__

# public name -> module that defines it
_PUBLIC = {
    "BackboneSpec": "keras_tl.backbones",
    "LoadedBackbone": "keras_tl.backbones",
    "Preprocessing": "keras_tl.backbones",
    "get_backbone_spec": "keras_tl.backbones",
    "list_backbones": "keras_tl.backbones",
    "load_backbone": "keras_tl.backbones",
    "register_backbone": "keras_tl.backbones",
    "format_trainable_summary": "keras_tl.freezing",
    "freeze_backbone": "keras_tl.freezing",
    "trainable_summary": "keras_tl.freezing",
    "unfreeze_backbone": "keras_tl.freezing",
    "Stage": "keras_tl.training.stages",
    "default_stages": "keras_tl.training.stages",
    "gradual_stages": "keras_tl.training.stages",
    "check_data": "keras_tl.check",
    "find_learning_rate": "keras_tl.api",
    "finetune": "keras_tl.api",
    "FinetuneResult": "keras_tl.result",
    "load": "keras_tl.result",
    "UnsafeCheckpointError": "keras_tl.errors",
    "decode_imagenet": "keras_tl.weights",
    "imagenet_classifier": "keras_tl.backbones.classifiers",
    "load_torch_state_dict": "keras_tl.weights",
    "ExportResult": "keras_tl.exporters",
    "predict_top": "keras_tl.exporters",
    "get_task": "keras_tl.tasks",
    "list_tasks": "keras_tl.tasks",
    "default_text_stages": "keras_tl.tasks.text_classifier",
    "TextClassifierPipeline": "keras_tl.tasks.text_pipeline",
    "load_text_encoder": "keras_tl.backbones.text_encoders",
    "load_texts": "keras_tl.data.text",
}
# modules that register keras_tl's serializable Keras objects, by the
# package they need imported first
_SERIALIZABLES = {
    "keras": ("keras_tl.layers", "keras_tl.backbones.speech_layers",
              "keras_tl.tasks.text_pipeline"),
    "keras_hub": ("keras_tl.models.retinanet",),
}

__all__ = sorted(_PUBLIC) + ["KerasTLError", "__version__", "export", "register_serializables"]


def __getattr__(name):
    if name == "export":  # the function; the package is keras_tl.exporters
        return importlib.import_module("keras_tl.exporters").export
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    if not name.startswith("_") and importlib.util.find_spec(f"keras_tl.{name}") is not None:
        return importlib.import_module(f"keras_tl.{name}")  # `keras_tl.tasks.get_task(...)`
    raise AttributeError(f"module 'keras_tl' has no attribute {name!r}")


def register_serializables():
    """Imports every module that registers a keras_tl Keras object (done by
    `import keras_tl` once Keras, or keras_hub, is imported; this imports
    both).

    Example:
    >>> register_serializables()
    >>> import keras
    >>> keras.saving.get_registered_object("keras_tl>PixelNormalization").__name__
    'PixelNormalization'
    """
    for modules in _SERIALIZABLES.values():
        for module in modules:
            importlib.import_module(module)


_import_hooks.after_import(
    {package: functools.partial(_import_hooks.import_all, modules)
     for package, modules in _SERIALIZABLES.items()})
