"""`keras_tl.json`: what a deployed model needs beside its weights, one
schema for every task.

One file per version folder:

- `format_version` (2), `task`, `modality`, `class_names`, `num_classes`;
- `signatures`: the export spec's contract (the SavedModel's
  signatures: input and output names, dtypes, shapes);
- `formats`: per format written, its files, where it was converted and the
  inputs and outputs of its files (e.g. the ONNX model's input names);
- `model_outputs`: the Keras model's output names;
- `preprocessing`, `backbone`, `weights` and the whole run `info` (input
  size, sequence length, tokenizer...); `training` (the run's settings),
  `metrics`, `user_metadata`;
- `verification`: each format against the Keras model (see
  `keras_tl.exporters.base`); `files`: file key -> path in the folder;
- `versions` (keras_tl, Keras, TensorFlow, ONNX Runtime...), `keras_backend`,
  `exported_at`.
"""

import datetime
import importlib.metadata
import json
import os

METADATA_FILE = "keras_tl.json"
FORMAT_VERSION = 2
_PACKAGES = ("keras", "keras-hub", "tensorflow", "tensorflow-text", "onnx", "onnxruntime",
             "tf2onnx", "ai-edge-litert", "jax", "torch", "numpy")


def build_metadata(spec, model_outputs, formats, files, verification, stage_dir,
                   config=None, metrics=None, user_metadata=None, backend=None):
    """The content of `keras_tl.json` for one export of `spec` (an
    `ExportSpec`) whose Keras model returns `model_outputs` (names).

    Example:
    >>> from keras_tl.tasks import get_task
    >>> spec = get_task("image_classification").export_spec(
    ...     None, {"input_size": [8, 8]}, ["cat", "dog"])
    >>> meta = build_metadata(spec, ["probabilities"], {}, {}, {}, ".")
    >>> meta["task"], meta["signatures"]["serving_default"]["inputs"]
    ('image_classification', {'images': {'dtype': 'float32', 'shape': [None, 8, 8, 3]}})
    """
    from keras_tl.version import __version__

    relative = {key: os.path.relpath(path, stage_dir) for key, path in files.items()}
    info, class_names = spec.info, spec.class_names
    return json_ready({
        "format_version": FORMAT_VERSION,
        "task": spec.task,
        "modality": spec.modality,
        "class_names": list(class_names),
        "num_classes": len(class_names),
        "signatures": spec.contract(),
        "formats": formats,
        "model_outputs": list(model_outputs),
        "preprocessing": info.get("preprocessing"),
        "backbone": info.get("backbone"),
        "weights": info.get("weights"),
        "info": info,
        "training": config or {},
        "metrics": metrics or {},
        "user_metadata": user_metadata or {},
        "verification": verification,
        "files": relative,
        "keras_tl_version": __version__,
        "versions": package_versions(),
        "keras_backend": backend,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    })


def package_versions():
    """Installed versions of the packages an export depends on.

    Example:
    >>> "keras" in package_versions()
    True
    """
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def write_metadata(directory, metadata):
    """Writes `directory/keras_tl.json`; returns its path.

    Example:
    >>> write_metadata("saved_models/flowers/1", meta)  # doctest: +SKIP
    'saved_models/flowers/1/keras_tl.json'
    """
    path = os.path.join(directory, METADATA_FILE)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2, default=_jsonable)
        f.write("\n")
    return path


def read_metadata(path):
    """`keras_tl.json` of a version folder (or of the folder holding an
    exported file), or None when there is none.

    Example:
    >>> read_metadata("no/such/folder") is None
    True
    """
    path = os.fspath(path)
    directory = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    file = os.path.join(directory, METADATA_FILE)
    if not os.path.exists(file):
        return None
    with open(file, encoding="utf-8") as f:
        return json.load(f)


def json_ready(value):
    """`value` through JSON and back: plain dicts, lists, str, numbers, None.

    Example:
    >>> import numpy as np
    >>> json_ready({"size": (224, 224), "x": np.float32(0.5)})
    {'size': [224, 224], 'x': 0.5}
    """
    return json.loads(json.dumps(value, default=_jsonable))


def _jsonable(value):
    """json.dump fallback: NumPy scalars and arrays, sets, paths, configs, the rest as str."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "to_config"):
        return value.to_config()
    return str(value)
