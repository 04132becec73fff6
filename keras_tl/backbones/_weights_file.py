"""Building a registered backbone with pretrained, random or file weights."""

import os


def build_with_weights(spec, weights, size):
    """Builds `spec` at `size` with `weights`: a name the builder knows
    (`"imagenet"`), `None`, or a Keras weights file checked layer by layer."""
    input_shape = tuple(size) + (3,)
    if weights is None or not _is_path(weights):
        try:
            return spec.build(weights=weights, input_shape=input_shape)
        except ValueError as error:
            raise ValueError(
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
    >>> load_weights_checked(model, "backbone.weights.h5")
    """
    if path.endswith(".weights.h5"):
        mismatch = _first_mismatch(model, path)
        if mismatch:
            raise ValueError(
                f"Weights file {path} does not match backbone {model.name!r}: "
                f"{mismatch}. Check that the file was saved from the same "
                "architecture and input size."
            )
    try:
        model.load_weights(path)
    except Exception as error:  # Keras raises several types here
        raise ValueError(
            f"Weights file {path} does not match backbone {model.name!r}: {error}"
        ) from error


def _first_mismatch(model, path):
    import h5py

    stored = {}
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and "/vars/" in name:
                layer_path, index = name.rsplit("/vars/", 1)
                layer = layer_path.rsplit("/", 1)[-1]
                stored.setdefault(layer, {})[int(index)] = tuple(obj.shape)

        f.visititems(visit)
    for layer in model._flatten_layers(include_self=False, recursive=True):
        own = [tuple(w.shape) for w in layer._trainable_variables + layer._non_trainable_variables]
        if not own:
            continue
        if layer.name not in stored:
            return f"layer {layer.name!r} is not in the file"
        saved = [stored[layer.name][i] for i in sorted(stored[layer.name])]
        if sorted(saved) != sorted(own):
            return (
                f"layer {layer.name!r} expects weights of shapes {own} but the "
                f"file holds {saved}"
            )
    return None
