"""Building a registered backbone with pretrained, random or file weights."""

import os

from keras_tl.errors import BackboneError


def build_with_weights(spec, weights, size):
    """Builds `spec` at `size` with `weights`: a name the builder knows
    (`"imagenet"`), `None`, or a Keras weights file checked layer by layer."""
    input_shape = tuple(size) + (3,)
    if weights is None or not _is_path(weights):
        try:
            return spec.build(weights=weights, input_shape=input_shape)
        except Exception as error:
            if "URL fetch failure" in str(error) or isinstance(error, OSError):
                raise ConnectionError(
                    f"Could not download the {weights!r} weights of backbone "
                    f"{spec.name!r}: {error}. Without network, pass weights=None, a "
                    "local weights file, or an offline backbone such as "
                    "'efficientnet_lite0' or 'mobilenet_v2_torch'."
                ) from error
            if not isinstance(error, ValueError):
                raise
            raise BackboneError(
                f"Could not build backbone {spec.name!r} with weights={weights!r} "
                f"at input shape {input_shape}: {error}"
            ) from error
    path = os.fspath(weights)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Weights file not found: {path}")
    if path.lower().endswith(getattr(spec.build, "torch_checkpoint_suffixes", ())):
        # a PyTorch checkpoint: the builder imports it (keras_tl.weights)
        return spec.build(weights=path, input_shape=input_shape)
    model = spec.build(weights=None, input_shape=input_shape)
    load_weights_checked(model, path)
    return model


def _is_path(weights):
    return isinstance(weights, os.PathLike) or (
        isinstance(weights, str) and (os.sep in weights or weights.endswith(".h5"))
    )


def load_weights_checked(model, path):
    """Loads a Keras weights file, naming the first layer that does not fit.

    Example:
    >>> load_weights_checked(model, "backbone.weights.h5")  # doctest: +SKIP
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
        own = [tuple(v.shape) for v in layer._trainable_variables + layer._non_trainable_variables]
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
    import re

    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
