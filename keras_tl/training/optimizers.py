"""Optimizers for a stage, with per-variable (layer-wise) learning rates.

Discriminative learning rates scale the *learning rate* of each variable in
the optimizer's update step, not its gradient: Adam divides the gradient by
its own running scale, so a scaled gradient would give the same step.
`with_rate_multipliers(keras.optimizers.Adam)` is Adam whose `update_step`
multiplies the (scheduled) rate by the variable's factor, on every backend
(Keras core's Muon scales per-variable rates the same way).

Factors come from a stage's `layer_decay` (each backbone block's rate times
`decay ** distance`, the head at distance 0 and full rate, the top block at
distance 1, the next one down at 2...) and `lr_multipliers` (`{block name or
layer-name prefix: factor}`, `"head"` for the new layers), multiplied.
Blocks are named by `keras_tl.freezing.block_name`; layers outside a named
block form a `"stem"` (before the first block) or `"top"` (after the last).
"""

import functools

from keras_tl import _compat
from keras_tl.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")
HEAD = "head"


# A backbone whose layer names give fewer blocks than this (InceptionV3,
# MobileNetV3, NASNet, a user's own model) is cut into POSITIONAL_PARTS
# runs of layers instead, so that a fractional `unfreeze` and `layer_decay`
# still have blocks to count.
MIN_NAMED_BLOCKS = 2
POSITIONAL_PARTS = 8


def backbone_groups(model):
    """The backbone's weighted top-level layers grouped into blocks, input to
    output: `[(block_name, [layers])]`. Blocks come from layer names
    (`keras_tl.freezing.block_name`); a backbone with fewer than 2 named
    blocks is cut into 8 runs of about as many layers, `part1` ... `part8`.

    Example:
    >>> import keras
    >>> x = images = keras.Input((16, 16, 3))
    >>> for block, filters in ((1, 4), (2, 8)):  # two blocks of convolution and BatchNorm
    ...     x = keras.layers.Conv2D(filters, 3, padding="same", name=f"block{block}_conv")(x)
    ...     x = keras.layers.BatchNormalization(name=f"block{block}_bn")(x)
    >>> backbone = keras.Model(images, x, name="backbone")
    >>> inputs = keras.Input((16, 16, 3))
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(backbone(inputs)))
    >>> [(name, [layer.name for layer in layers]) for name, layers in backbone_groups(model)]
    [('block1', ['block1_conv', 'block1_bn']), ('block2', ['block2_conv', 'block2_bn'])]
    >>> x = inputs
    >>> for i in range(4):  # no block names
    ...     x = keras.layers.Conv2D(4, 3, name=f"conv{i}")(x)
    >>> unnamed = keras.Model(inputs, keras.layers.Dense(2)(keras.Model(inputs, x, name="backbone")(inputs)))
    >>> [(name, [layer.name for layer in layers]) for name, layers in backbone_groups(unnamed)]
    [('part1', ['conv0']), ('part2', ['conv1']), ('part3', ['conv2']), ('part4', ['conv3'])]
    """
    from keras_tl.freezing import backbone_layers, block_name

    layers = list(backbone_layers(model))
    groups = []
    seen_block = False
    for layer in layers:
        name = block_name(layer.name)
        if name is None:
            name = "top" if seen_block else "stem"
        else:
            seen_block = True
        if groups and groups[-1][0] == name:
            groups[-1][1].append(layer)
        else:
            groups.append((name, [layer]))
    if sum(name not in ("stem", "top") for name, _ in groups) >= MIN_NAMED_BLOCKS:
        return groups
    parts = min(POSITIONAL_PARTS, len(layers))
    bounds = [round(i * len(layers) / parts) for i in range(parts + 1)]
    return [(f"part{i + 1}", layers[bounds[i]:bounds[i + 1]]) for i in range(parts)]


def rate_multipliers(model, layer_decay=None, lr_multipliers=None):
    """`{id(variable): factor}` for every weight of `model` whose factor is
    not 1 (missing variables train at the full rate).

    Raises `ConfigError` for an `lr_multipliers` key that names no block,
    layer prefix or `"head"`.

    Example:
    >>> import keras
    >>> x = images = keras.Input((16, 16, 3))
    >>> for block, filters in ((1, 4), (2, 8)):  # two blocks of convolution and BatchNorm
    ...     x = keras.layers.Conv2D(filters, 3, padding="same", name=f"block{block}_conv")(x)
    ...     x = keras.layers.BatchNormalization(name=f"block{block}_bn")(x)
    >>> backbone = keras.Model(images, x, name="backbone")
    >>> inputs = keras.Input((16, 16, 3))
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(backbone(inputs)))
    >>> factors = rate_multipliers(model, layer_decay=0.5)
    >>> sorted({round(f, 3) for f in factors.values()})
    [0.25, 0.5]
    """
    from keras_tl.freezing import BACKBONE_LAYER

    lr_multipliers = dict(lr_multipliers or {})
    groups = backbone_groups(model)
    check_multiplier_keys(lr_multipliers, groups)
    factors = {}
    for distance, (block, layers) in enumerate(reversed(groups), start=1):
        for layer in layers:
            factor = (layer_decay ** distance) if layer_decay else 1.0
            for key, value in lr_multipliers.items():
                if key != HEAD and (block == key or layer.name.startswith(key)):
                    factor *= value
            for variable in layer.weights:
                factors[id(variable)] = factor
    head_factor = lr_multipliers.get(HEAD, 1.0)
    for layer in model.layers:
        if layer.name != BACKBONE_LAYER:
            for variable in layer.weights:
                factors[id(variable)] = head_factor
    return {key: value for key, value in factors.items() if value != 1.0}


def check_multiplier_keys(lr_multipliers, groups):
    """Raises `ConfigError` unless every key of `lr_multipliers` is `"head"`,
    a block name of `groups` or a prefix of one of their layer names.

    Example:
    >>> check_multiplier_keys({"block9": 0.1}, [("block1", [])])
    Traceback (most recent call last):
    ...
    keras_tl.errors.ConfigError: lr_multipliers key 'block9' names no backbone block or layer; blocks: block1 (and 'head').
    """
    for key, value in (lr_multipliers or {}).items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"lr_multipliers[{key!r}] must be a number >= 0, got {value!r}.")
        if key == HEAD:
            continue
        known = any(block == key or any(layer.name.startswith(key) for layer in layers)
                    for block, layers in groups)
        if not known:
            names = ", ".join(block for block, _ in groups)
            raise ConfigError(
                f"lr_multipliers key {key!r} names no backbone block or layer; "
                f"blocks: {names} (and 'head').")


class _RateMultipliers:
    """Mixin: scales each variable's learning rate in `update_step`, and its
    decoupled weight decay with it."""

    def set_rate_multipliers(self, factors):
        self._rate_factors_by_id = dict(factors)

    def build(self, variables):
        super().build(variables)
        by_id = getattr(self, "_rate_factors_by_id", {})
        self._rate_factors = [float(by_id.get(id(v), 1.0)) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        factor = self._rate_factors[_compat.variable_index(self, variable)]
        if factor != 1.0:
            learning_rate = learning_rate * factor
        return super().update_step(gradient, variable, learning_rate)

    def _apply_weight_decay(self, variables):
        # AdamW's decoupled decay is lr * weight_decay: scaled with the rate,
        # as in timm's and PyTorch's parameter groups
        if self.weight_decay is None:
            return super()._apply_weight_decay(variables)
        groups = {}
        for variable in variables:
            factor = self._rate_factors[_compat.variable_index(self, variable)]
            groups.setdefault(factor, []).append(variable)
        base = self.weight_decay
        try:
            for factor, group in groups.items():
                self.weight_decay = base * factor
                super()._apply_weight_decay(group)
        finally:
            self.weight_decay = base


@functools.lru_cache(maxsize=None)
def with_rate_multipliers(optimizer_class):
    """`optimizer_class` with per-variable learning-rate factors (set with
    `set_rate_multipliers({id(variable): factor})` before it is built).

    Example:
    >>> import keras, numpy as np
    >>> Adam = with_rate_multipliers(keras.optimizers.Adam)
    >>> a, b = keras.Variable(np.ones(2)), keras.Variable(np.ones(2))
    >>> optimizer = Adam(0.1)
    >>> optimizer.set_rate_multipliers({id(b): 0.5})
    >>> optimizer.apply([np.ones(2), np.ones(2)], [a, b])
    >>> [np.round(1 - keras.ops.convert_to_numpy(v).astype("float64"), 4).tolist() for v in (a, b)]
    [[0.1, 0.1], [0.05, 0.05]]
    """
    import keras

    name = f"LayerRate{optimizer_class.__name__}"
    cls = type(name, (_RateMultipliers, optimizer_class), {"__module__": __name__})
    # registered so a model saved while compiled with it still loads (at full rates)
    return keras.saving.register_keras_serializable(package="keras_tl")(cls)


def check_optimizer(name, weight_decay=None):
    """Raises `ConfigError` for an unknown optimizer name, or weight decay
    without `"adamw"`.

    Example:
    >>> check_optimizer("adam", weight_decay=0.01)
    Traceback (most recent call last):
    ...
    keras_tl.errors.ConfigError: weight_decay needs optimizer='adamw' (got optimizer='adam').
    """
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {name!r}.")
    if weight_decay is not None and name != "adamw":
        raise ConfigError(f"weight_decay needs optimizer='adamw' (got optimizer={name!r}).")


def build_optimizer(name, learning_rate, weight_decay=None, multipliers=None):
    """A fresh Keras optimizer: `"adam"`, `"adamw"` (decoupled weight decay,
    `weight_decay`, default 1e-4) or `"sgd"` (Nesterov momentum 0.9), with
    per-variable rate factors when `multipliers` (`{id(variable): factor}`)
    is not empty. Weight decay runs at the stage's rate, unscaled.

    Example:
    >>> type(build_optimizer("adamw", 1e-3, weight_decay=0.01)).__name__
    'AdamW'
    >>> build_optimizer("lamb", 1e-3)
    Traceback (most recent call last):
    ...
    keras_tl.errors.ConfigError: optimizer must be one of adam, adamw, sgd; got 'lamb'.
    """
    import keras

    check_optimizer(name, weight_decay)
    kwargs = {}
    if name == "adamw":
        optimizer_class = keras.optimizers.AdamW
        kwargs["weight_decay"] = 1e-4 if weight_decay is None else weight_decay
    elif name == "sgd":
        optimizer_class = keras.optimizers.SGD
        kwargs.update(momentum=0.9, nesterov=True)
    else:
        optimizer_class = keras.optimizers.Adam
    if not multipliers:
        return optimizer_class(learning_rate, **kwargs)
    optimizer = with_rate_multipliers(optimizer_class)(learning_rate, **kwargs)
    optimizer.set_rate_multipliers(multipliers)
    return optimizer
