"""`keras_tl.json`: what a deployed model needs beside its weights.

One file per export version, beside the SavedModel, ONNX and LiteRT files:
class names, input size and preprocessing, backbone and weights source,
training settings and metrics, versions, export date and verification.
"""

import datetime
import json
import os

METADATA_FILE = "keras_tl.json"
FORMAT_VERSION = 1


def build_metadata(
    model,
    class_names,
    image_size,
    info=None,
    metrics=None,
    config=None,
    extra=None,
    backend=None,
):
    """The metadata dict of an export (without `files` / `verification`,
    which the exporter adds).

    Example:
    >>> meta = build_metadata(model, ["cat", "dog"], (224, 224), info=result.info)
    >>> meta["input"]["name"]
    'images'
    """
    import keras

    from keras_tl.version import __version__

    info = dict(info or {})
    height, width = image_size
    return {
        "format_version": FORMAT_VERSION,
        "class_names": list(class_names),
        "num_classes": len(class_names),
        "input_size": [height, width],
        "input": {
            "name": "images",
            "dtype": "float32",
            "shape": [None, height, width, 3],
            "description": "RGB pixels in [0, 255]; preprocessing is inside the model",
        },
        "preprocessing": info.get("preprocessing") or preprocessing_of(model),
        "backbone": info.get("backbone"),
        "weights": info.get("weights"),
        "info": info,
        "training": config or {},
        "metrics": metrics or {},
        "user_metadata": extra or {},
        "keras_tl_version": __version__,
        "keras_version": keras.__version__,
        "keras_backend": backend or keras.backend.backend(),
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def preprocessing_of(model):
    """The config of the model's `PixelNormalization` layer, or None.

    Example:
    >>> preprocessing_of(model)
    {'mean': 127.5, 'std': 127.5, 'channel_order': 'rgb', 'input': 'RGB float32 in [0, 255]'}
    """
    from keras_tl.layers import PixelNormalization

    for layer in _walk(model):
        if isinstance(layer, PixelNormalization):
            return {
                "mean": layer.mean,
                "std": layer.std,
                "channel_order": layer.channel_order,
                "input": "RGB float32 in [0, 255]",
            }
    return None


def _walk(layer):
    yield layer
    for child in getattr(layer, "layers", []) or []:
        yield from _walk(child)


def write_metadata(directory, metadata):
    """Writes `directory/keras_tl.json`; returns its path.

    Example:
    >>> write_metadata("saved_models/flowers/1", meta)
    'saved_models/flowers/1/keras_tl.json'
    """
    path = os.path.join(directory, METADATA_FILE)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2, sort_keys=False, default=_jsonable)
        f.write("\n")
    return path


def read_metadata(path):
    """Reads `keras_tl.json` from a version folder or beside an exported file;
    returns None when there is none.

    Example:
    >>> read_metadata("saved_models/flowers/1/model.onnx")["class_names"]
    ['daisy', 'roses', 'tulips']
    """
    directory = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    file = os.path.join(directory, METADATA_FILE)
    if not os.path.exists(file):
        return None
    with open(file, encoding="utf-8") as f:
        return json.load(f)


def json_ready(value):
    """`value` through JSON and back: plain dicts, lists, str, numbers, None.

    Example:
    >>> json_ready({"size": (224, 224), "x": np.float32(0.5)})
    {'size': [224, 224], 'x': 0.5}
    """
    return json.loads(json.dumps(value, default=_jsonable))


def _jsonable(value):
    """json.dump fallback: NumPy scalars and arrays, tuples, paths, the rest as str."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "to_config"):
        return value.to_config()
    return str(value)
