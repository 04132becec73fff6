"""Every export is float32: a model trained under a mixed (or 16-bit)
dtype policy is exported as a float32 clone.

tf2onnx and the LiteRT converter reject bfloat16, and serving clients
expect float32 outputs. The clone is rebuilt from the model's own `.keras`
file with every 16-bit or mixed dtype policy in its config replaced by
`"float32"` (the file also carries assets such as a tokenizer's vocabulary),
then its weights are loaded from the same file, cast to float32.
"""

import json
import os
import tempfile
import zipfile

from keras_tl import _compat

_LOW_PRECISION = ("mixed_bfloat16", "mixed_float16", "bfloat16", "float16")


def needs_float32_clone(model):
    """Whether any layer of `model` computes or stores weights in 16 bits.

    Example:
    >>> import keras
    >>> needs_float32_clone(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    False
    """
    return any(getattr(layer.dtype_policy, "name", None) in _LOW_PRECISION
               for layer in _compat.flatten_layers(model))


def as_float32(model):
    """`model` itself when it is float32 throughout, else a float32 clone
    with the same weights (safe-mode load of its own `.keras` file).

    Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> as_float32(model) is model
    True
    """
    import keras

    if not needs_float32_clone(model):
        return model
    with tempfile.TemporaryDirectory(prefix="keras_tl_float32_") as tmp:
        original = os.path.join(tmp, "model.keras")
        model.save(original)
        clone = os.path.join(tmp, "float32.keras")
        with zipfile.ZipFile(original) as source, zipfile.ZipFile(clone, "w") as target:
            for item in source.infolist():
                data = source.read(item.filename)
                if item.filename == "config.json":
                    data = json.dumps(_float32_config(json.loads(data))).encode("utf-8")
                target.writestr(item, data)
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("float32")  # layers built without an explicit dtype
        try:
            loaded = keras.saving.load_model(clone, compile=False, safe_mode=True)
        finally:
            keras.config.set_dtype_policy(previous)
    return loaded


def _float32_config(value):
    """The config with every 16-bit or mixed dtype policy made float32."""
    if isinstance(value, dict):
        if value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and \
                value.get("config", {}).get("name") in _LOW_PRECISION:
            return {**value, "config": {**value["config"], "name": "float32"}}
        return {key: ("float32" if key == "dtype" and item in _LOW_PRECISION
                      else _float32_config(item)) for key, item in value.items()}
    if isinstance(value, list):
        return [_float32_config(item) for item in value]
    return value
