"""Export a fine-tuned model for serving: one module per format.

- `pipeline.export`: the `export()` function (staging, exporters,
  verification, metadata) and `ExportResult`;
- `base`: the `Exporter` interface, the verification report, the tolerance rule;
- `saved_model`, `onnx`, `litert`: one exporter each, listed in `registry`;
- `predict`: `predict()`, predictions from any exported format, for every task;
- `metadata`: the `keras_tl.json` schema;
- `tf_serving`: TF Serving's warm-up requests, model config and batching
  parameters; `model_card`: `MODEL_CARD.md` (every export writes both);
- `_versioning`: version folders built in owned staging folders;
- `_backend`: the TensorFlow subprocess for models trained under JAX or PyTorch;
- `_float32`: float32 clones of mixed-precision models.

What differs between tasks (inputs, signatures, the model converted,
tokenizer files) comes from the task's export spec (`Task.export_spec`, a
`keras_tl.export_spec.ExportSpec`); each exporter reads only that spec.
`keras_tl.export` is `export`.

Example:
>>> from keras_tl.exporters import list_formats
>>> list_formats()
['saved_model', 'onnx', 'litert']
"""

from keras_tl.errors import ExportError, ExportVerificationError
from keras_tl.exporters.base import Exporter
from keras_tl.exporters.pipeline import ExportResult, export
from keras_tl.exporters.predict import load_export, predict_top
from keras_tl.exporters.registry import get_exporter, list_formats, register_exporter

__all__ = ["ExportError", "ExportResult", "ExportVerificationError", "Exporter", "export",
           "get_exporter", "list_formats", "load_export", "predict_top",
           "register_exporter"]
