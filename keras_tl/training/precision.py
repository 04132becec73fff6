"""Mixed precision for a run: `"mixed_bfloat16"` or `"mixed_float16"`.

The model is built under the Keras dtype policy (float32 variables, 16-bit
computation), then its output layers are set back to float32 so the
softmax and the loss run in full precision. BatchNormalization computes in
float32 under every mixed policy and frozen BN layers stay frozen (inference
mode), as in float32 runs. With `"mixed_float16"`, Keras wraps the optimizer
in a `LossScaleOptimizer` when it compiles the model.
"""

import contextlib

from keras_tl import _compat
from keras_tl.errors import ConfigError

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def check_precision(precision):
    """`precision` as a policy name (`None` -> `"float32"`), or a `ConfigError`.

    Example:
    >>> check_precision(None)
    'float32'
    >>> check_precision("half")
    Traceback (most recent call last):
    ...
    keras_tl.errors.ConfigError: precision must be one of float32, mixed_bfloat16, mixed_float16; got 'half'.
    """
    precision = "float32" if precision is None else precision
    if precision not in PRECISIONS:
        raise ConfigError(
            f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}.")
    return precision


@contextlib.contextmanager
def precision_scope(precision):
    """Builds models under the `precision` dtype policy inside the block;
    the previous global policy is restored after it.

    Example:
    >>> import keras
    >>> with precision_scope("mixed_bfloat16"):
    ...     layer = keras.layers.Dense(2)
    >>> layer.compute_dtype, layer.variable_dtype, keras.config.dtype_policy().name
    ('bfloat16', 'float32', 'float32')
    """
    import keras

    precision = check_precision(precision)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield precision
    finally:
        keras.config.set_dtype_policy(previous)


def float32_outputs(model):
    """Sets the layers that produce `model`'s outputs to compute in float32
    (the classifier's softmax layer), whatever the policy they were built
    under. Returns their names.

    Example:
    >>> import keras
    >>> with precision_scope("mixed_bfloat16"):
    ...     inputs = keras.Input((4,))
    ...     model = keras.Model(inputs, keras.layers.Dense(2, name="probabilities")(inputs))
    >>> float32_outputs(model)
    ['probabilities']
    >>> model.get_layer("probabilities").compute_dtype
    'float32'
    """
    import keras

    names = []
    for tensor in keras.tree.flatten(model.outputs):
        layer = _compat.producing_layer(tensor)
        if layer.compute_dtype != "float32":
            layer.dtype_policy = "float32"
        names.append(layer.name)
    return names
