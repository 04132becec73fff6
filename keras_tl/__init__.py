"""keras_tl: transfer learning for Keras 3.

Example:
>>> import keras_tl
>>> result = keras_tl.finetune("photos/", backbone="efficientnet_lite0")
>>> keras_tl.export(result, "saved_models/flowers")
"""

from keras_tl.version import __version__
from keras_tl.errors import KerasTLError
from keras_tl.backbones import (
    BackboneSpec,
    Preprocessing,
    get_backbone_spec,
    list_backbones,
    load_backbone,
    register_backbone,
)
from keras_tl.freezing import (
    format_trainable_summary,
    freeze_backbone,
    trainable_summary,
    unfreeze_backbone,
)
from keras_tl.training.stages import Stage, default_stages, gradual_stages
from keras_tl.api import finetune
from keras_tl.result import FinetuneResult
from keras_tl.weights import UnsafeCheckpointError, decode_imagenet, imagenet_classifier, load_torch_state_dict
from keras_tl import export  # callable: keras_tl.export(result, path)
from keras_tl.export import ExportResult, predict_top

# Text helpers import keras_hub, so they load on first use.
_LAZY = {
    "default_text_stages": "keras_tl.tasks.text_classifier",
    "TextClassifierPipeline": "keras_tl.tasks.text_classifier",
    "load_text_encoder": "keras_tl.backbones.text_encoders",
    "load_texts": "keras_tl.data.text",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keras_tl' has no attribute {name!r}")
