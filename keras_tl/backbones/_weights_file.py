"""Weights files: their format, told by the file name, and Keras weights
loaded with a check of every layer."""

import os
import re

from keras_tl import _compat
from keras_tl.errors import BackboneError

# format -> file name endings, longest first within a format
FILE_SUFFIXES = {
    "keras": (".weights.h5", ".h5", ".keras"),
    "torch": (".pth", ".pt", ".bin", ".ckpt"),
    "onnx": (".onnx",),
}


def weights_file_format(path):
    """The format of a weights file by the end of its name (`"keras"`,
    `"torch"`, `"onnx"`), or `None` when the name says nothing.

    Example:
    >>> weights_file_format("ckpt.PTH"), weights_file_format("my.weights.h5")
    ('torch', 'keras')
    >>> weights_file_format("imagenet") is None
    True
    """
    name = os.fspath(path).lower()
    for fmt, suffixes in FILE_SUFFIXES.items():
        if name.endswith(suffixes):
            return fmt
    return None


def describe_formats(formats):
    """`"keras (.weights.h5, .h5, .keras)"` & co. for error messages.

    Example:
    >>> describe_formats(["torch"])
    'torch (.pth, .pt, .bin, .ckpt)'
    """
    return ", ".join(f"{fmt} ({', '.join(FILE_SUFFIXES[fmt])})" for fmt in formats)


def load_weights_checked(model, path):
    """Loads a Keras weights file, naming the first layer that does not fit.

    Example:
    >>> import keras, tempfile
    >>> def dense(units):
    ...     return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units, name="fc")])
    >>> path = os.path.join(tempfile.mkdtemp(), "fc.weights.h5")
    >>> dense(2).save_weights(path)
    >>> load_weights_checked(dense(2), path)
    >>> load_weights_checked(dense(4), path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_tl.errors.BackboneError: Weights file ... does not match backbone 'sequential...': layer 'fc' expects weights of shapes [(3, 4), (4,)] but the file holds [(3, 2), (2,)]. ...
    """
    if path.endswith(".weights.h5"):
        mismatch = _first_mismatch(model, path)
        if mismatch:
            raise BackboneError(
                f"Weights file {path} does not match backbone {model.name!r}: "
                f"{mismatch}. Check that the file was saved from the same "
                "architecture and input size."
            )
    try:
        model.load_weights(path)
    except Exception as error:  # Keras raises several types here
        raise BackboneError(
            f"Weights file {path} does not match backbone {model.name!r}: {error}"
        ) from error


def _first_mismatch(model, path):
    """Compares the file with the model layer by layer, the way Keras lays
    out `.weights.h5` files (layers keyed by class name and position)."""
    import h5py

    with h5py.File(path, "r") as f:
        if "layers" not in f:
            return None
        return _compare_layers(model, f["layers"])


def _compare_layers(model, group):
    import h5py

    counts = {}
    for layer in model.layers:
        base = _snake(type(layer).__name__)
        index = counts.get(base, 0)
        counts[base] = index + 1
        key = base if index == 0 else f"{base}_{index}"
        own = [tuple(v.shape) for v in _compat.own_variables(layer)]
        if hasattr(layer, "layers") and key in group and "layers" in group[key]:
            found = _compare_layers(layer, group[key]["layers"])
            if found:
                return found
            continue
        if not own:
            continue
        stored = group.get(f"{key}/vars")
        if not isinstance(stored, h5py.Group):
            return f"layer {layer.name!r} ({type(layer).__name__}) has no weights in the file"
        saved = [tuple(stored[str(i)].shape) for i in range(len(stored))]
        if saved != own:
            return (
                f"layer {layer.name!r} expects weights of shapes {own} but the "
                f"file holds {saved}"
            )
    return None


def _snake(name):
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
