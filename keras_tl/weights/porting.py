"""Copies a PyTorch state dict onto a Keras model, layer by layer.

A mapping names, for each Keras layer that holds weights, the PyTorch module
(key prefix) it comes from. Tensors are converted to Keras layouts:

=====================  =====================  ===========================
Keras layer            PyTorch tensor         Keras variable
=====================  =====================  ===========================
Conv2D                 weight (out,in,h,w)    kernel (h,w,in,out)
DepthwiseConv2D        weight (C*m,1,h,w)     kernel (h,w,C,m)
Dense                  weight (out,in)        kernel (in,out)
any of the above       bias (out,)            bias (out,)
BatchNormalization     weight, bias,          gamma, beta,
                       running_mean/var       moving_mean/variance
=====================  =====================  ===========================

Every shape is checked before anything is assigned, and every tensor must
be used exactly once (unless skipped explicitly), so a checkpoint for
another architecture fails on the first tensor that does not fit. A tensor
holding NaN or Inf is refused too: such weights are never right, and would
otherwise be cached.
"""

import re

import numpy as np

from keras_tl import _compat
from keras_tl.errors import BackboneError

# Buffers PyTorch keeps that have no Keras counterpart.
DEFAULT_SKIP = (r"\.num_batches_tracked$",)


def _fmt(shape):
    return "(" + ",".join(str(int(d)) for d in shape) + ")"


def _conv_kernel(w):
    return w.transpose(2, 3, 1, 0)


def _depthwise_kernel(w, channels):
    out, _, h, k = w.shape
    multiplier = out // channels if channels else 0
    return w.reshape(channels, multiplier, h, k).transpose(2, 3, 0, 1)


def _rules(layer):
    """(torch suffix, keras variable, converter, required) for one layer."""
    import keras

    if isinstance(layer, keras.layers.DepthwiseConv2D):
        channels = int(layer.kernel.shape[2])
        rules = [("weight", "kernel", lambda w: _depthwise_kernel(w, channels), 4)]
    elif isinstance(layer, keras.layers.Conv2D):
        rules = [("weight", "kernel", _conv_kernel, 4)]
    elif isinstance(layer, keras.layers.Dense):
        rules = [("weight", "kernel", lambda w: w.T, 2)]
    elif isinstance(layer, keras.layers.BatchNormalization):
        rules = [
            ("weight", "gamma", None, 1),
            ("bias", "beta", None, 1),
            ("running_mean", "moving_mean", None, 1),
            ("running_var", "moving_variance", None, 1),
        ]
        return [r for r in rules if getattr(layer, r[1], None) is not None]
    else:
        raise TypeError(
            f"Layer {layer.name!r} ({type(layer).__name__}) holds weights but "
            "keras_tl cannot port PyTorch tensors to it."
        )
    if getattr(layer, "bias", None) is not None:
        rules.append(("bias", "bias", None, 1))
    return rules


def plan_port(model, state_dict, mapping, skip=(), source="state dict"):
    """Checks a state dict against a model without changing it.

    Returns `[(variable, array), ...]` ready to assign; raises
    `BackboneError` (a `ValueError`) naming the first tensor that is missing,
    does not fit or holds NaN/Inf, or listing the tensors nothing used.
    Arguments are those of `port_state_dict`.

    Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="fc")])
    >>> sd = {"head.weight": np.ones((2, 3), "float32"), "head.bias": np.zeros(2, "float32")}
    >>> [tuple(array.shape) for _, array in plan_port(model, sd, {"fc": "head"})]
    [(3, 2), (2,)]
    >>> sd["head.bias"][0] = np.nan
    >>> plan_port(model, sd, {"fc": "head"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_tl.errors.BackboneError: tensor 'head.bias' of state dict holds 1 NaN or Inf value(s) of 2: ...
    """
    layers = [l for l in _compat.flatten_layers(model, include_self=False) if l.weights]
    names = {l.name for l in layers}
    unknown = [name for name in mapping if name not in names]
    if unknown:
        raise BackboneError(
            f"The mapping names layers that model {model.name!r} does not have: "
            f"{', '.join(unknown[:5])}."
        )
    skip_patterns = [re.compile(p) for p in tuple(DEFAULT_SKIP) + tuple(skip)]
    used = set()
    plan = []
    for layer in layers:
        prefix = mapping.get(layer.name)
        if prefix is None:
            raise BackboneError(
                f"Layer {layer.name!r} of model {model.name!r} holds weights but the "
                "mapping gives it no PyTorch module."
            )
        for suffix, attr, convert, rank in _rules(layer):
            key = f"{prefix}.{suffix}" if prefix else suffix
            variable = getattr(layer, attr)
            want = tuple(int(d) for d in variable.shape)
            if key not in state_dict:
                raise BackboneError(
                    f"{source} has no tensor {key!r} for layer {layer.name!r} "
                    f"{attr} {_fmt(want)}."
                )
            if key in used:
                raise BackboneError(f"tensor {key!r} of {source} would be used twice.")
            tensor = np.asarray(state_dict[key])
            array = None
            if tensor.ndim == rank:
                try:
                    array = convert(tensor) if convert else tensor
                except ValueError:  # reshape of a depthwise kernel that cannot fit
                    array = None
            if array is None or tuple(array.shape) != want:
                raise BackboneError(
                    f"tensor {key!r} of shape {_fmt(tensor.shape)} does not fit layer "
                    f"{layer.name!r} {attr} {_fmt(want)} ({source} is probably for "
                    "another architecture)."
                )
            array = np.ascontiguousarray(array, dtype="float32")
            bad = np.size(array) - np.count_nonzero(np.isfinite(array))
            if bad:
                raise BackboneError(
                    f"tensor {key!r} of {source} holds {bad} NaN or Inf value(s) of "
                    f"{np.size(array)}: the checkpoint is corrupt or from a diverged "
                    "training run, so it is refused (nothing was assigned or cached)."
                )
            used.add(key)
            plan.append((variable, array))
    unused = [
        key
        for key in state_dict
        if key not in used and not any(p.search(key) for p in skip_patterns)
    ]
    if unused:
        listed = ", ".join(unused[:10]) + (f", ... ({len(unused)} in all)" if len(unused) > 10 else "")
        raise BackboneError(
            f"{len(unused)} tensor(s) of {source} fit no layer of model "
            f"{model.name!r}: {listed}. The checkpoint is probably for a larger "
            "architecture."
        )
    return plan


def port_state_dict(model, state_dict, mapping, skip=(), source="state dict"):
    """Copies a PyTorch state dict onto a Keras model, all or nothing.

    Args:
        model: a built Keras model.
        state_dict: `dict[str, np.ndarray]`, e.g. from
            `load_torch_state_dict`.
        mapping: `{keras_layer_name: torch_module_prefix}` for every layer
            of `model` that holds weights.
        skip: regular expressions of tensor names deliberately left unused
            (`num_batches_tracked` always is), e.g. `[r"^_fc\\."]` for a
            backbone without its classifier.
        source: how to name the checkpoint in error messages.

    Returns:
        The number of variables assigned.

    Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="fc")])
    >>> sd = {"head.weight": np.arange(6, dtype="float32").reshape(2, 3),
    ...       "head.bias": np.zeros(2, "float32"), "aux.weight": np.ones(1, "float32")}
    >>> port_state_dict(model, sd, {"fc": "head"}, skip=[r"^aux\\."])
    2
    >>> keras.ops.convert_to_numpy(model.get_layer("fc").kernel)[:, 1].tolist()
    [3.0, 4.0, 5.0]
    """
    plan = plan_port(model, state_dict, mapping, skip=skip, source=source)
    for variable, array in plan:
        variable.assign(array)
    return len(plan)
