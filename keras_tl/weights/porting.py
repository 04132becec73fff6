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
another architecture fails on the first tensor that does not fit.
"""

import re

import numpy as np

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

    Returns `[(variable, array), ...]` ready to assign; raises `ValueError`
    naming the first tensor that is missing or does not fit, or listing the
    tensors nothing used. Arguments are those of `port_state_dict`.

    Example:
    >>> plan = plan_port(model, state_dict, {"stem_conv": "_conv_stem"})
    >>> len(plan)
    1
    """
    layers = [l for l in model._flatten_layers(include_self=False) if l.weights]
    names = {l.name for l in layers}
    unknown = [name for name in mapping if name not in names]
    if unknown:
        raise ValueError(
            f"The mapping names layers that model {model.name!r} does not have: "
            f"{', '.join(unknown[:5])}."
        )
    skip_patterns = [re.compile(p) for p in tuple(DEFAULT_SKIP) + tuple(skip)]
    used = set()
    plan = []
    for layer in layers:
        prefix = mapping.get(layer.name)
        if prefix is None:
            raise ValueError(
                f"Layer {layer.name!r} of model {model.name!r} holds weights but the "
                "mapping gives it no PyTorch module."
            )
        for suffix, attr, convert, rank in _rules(layer):
            key = f"{prefix}.{suffix}" if prefix else suffix
            variable = getattr(layer, attr)
            want = tuple(int(d) for d in variable.shape)
            if key not in state_dict:
                raise ValueError(
                    f"{source} has no tensor {key!r} for layer {layer.name!r} "
                    f"{attr} {_fmt(want)}."
                )
            if key in used:
                raise ValueError(f"tensor {key!r} of {source} would be used twice.")
            tensor = np.asarray(state_dict[key])
            array = None
            if tensor.ndim == rank:
                try:
                    array = convert(tensor) if convert else tensor
                except ValueError:  # reshape of a depthwise kernel that cannot fit
                    array = None
            if array is None or tuple(array.shape) != want:
                raise ValueError(
                    f"tensor {key!r} of shape {_fmt(tensor.shape)} does not fit layer "
                    f"{layer.name!r} {attr} {_fmt(want)} ({source} is probably for "
                    "another architecture)."
                )
            used.add(key)
            plan.append((variable, np.ascontiguousarray(array, dtype="float32")))
    unused = [
        key
        for key in state_dict
        if key not in used and not any(p.search(key) for p in skip_patterns)
    ]
    if unused:
        listed = ", ".join(unused[:10]) + (f", ... ({len(unused)} in all)" if len(unused) > 10 else "")
        raise ValueError(
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
    >>> sd = load_torch_state_dict("efficientnet-lite0-57934424.pth")
    >>> port_state_dict(model, sd, {"stem_conv": "_conv_stem", ...}, skip=[r"^_fc\\."])
    """
    plan = plan_port(model, state_dict, mapping, skip=skip, source=source)
    for variable, array in plan:
        variable.assign(array)
    return len(plan)
