"""Data-parallel training on several devices of one machine (or several).

`distribute="data_parallel"` copies the model to every device and splits
each batch between them: `batch_size` is the *global* batch size (each of N
devices gets `batch_size / N` examples per step), so results match a
one-device run with the same `batch_size`, up to floating-point order.

- JAX: `keras.distribution.DataParallel` over `keras.distribution.list_devices()`,
  or the `DataParallel` distribution already set. A `keras.Model` backbone
  you build yourself must be built after that distribution is set.
- TensorFlow: `tf.distribute.MirroredStrategy` over the GPUs (or the
  logical CPUs when there is no GPU), `MultiWorkerMirroredStrategy` when
  `TF_CONFIG` is set, or the strategy whose scope `finetune` is called in;
  the model is built and compiled in its scope. A `keras.Model` backbone
  you build yourself must be built in that scope too (call `finetune`
  inside `with strategy.scope():`); backbones named by keras_tl are.
  (`keras.distribution` does not distribute under TensorFlow.)
- PyTorch: not supported (`ConfigError`; `"auto"` trains on one device).

`distribute="auto"` distributes when there are at least two devices.
"""

import contextlib
import os

from keras_tl import _compat
from keras_tl.errors import ConfigError

MODES = ("auto", "data_parallel")


@contextlib.contextmanager
def distribution_scope(distribute):
    """Runs the block data-parallel; yields `{"strategy", "device_count"}`
    or `None` when it does not distribute.

    Example:
    >>> with distribution_scope(None) as distribution:
    ...     print(distribution)
    None
    """
    if distribute in (None, False, "none"):
        yield None
        return
    if distribute not in MODES:
        raise ConfigError(
            f"distribute must be None, 'auto' or 'data_parallel'; got {distribute!r}.")
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        with _jax_data_parallel(distribute) as description:
            yield description
    elif backend == "tensorflow":
        with _tf_mirrored(distribute) as description:
            yield description
    elif distribute == "auto":  # PyTorch: nothing to distribute with
        yield None
    else:
        raise ConfigError(
            f"distribute={distribute!r} is not supported with the {backend} backend; "
            "use KERAS_BACKEND=jax or tensorflow, or distribute=None.")


def check_distributed(model, distribution):
    """Raises `ConfigError` when `model` has variables made outside the
    distribution (a backbone built before `finetune` set it up), naming one
    and how to build it inside.

    Example:
    >>> check_distributed(None, None)
    """
    if not distribution:
        return
    for variable in model.weights:
        if not _is_distributed(variable, distribution):
            if distribution["strategy"] == "DataParallel":
                how = ("under JAX, build your keras.Model backbone after "
                       "keras.distribution.set_distribution(keras.distribution.DataParallel()) "
                       "(finetune then uses that distribution)")
            else:
                how = ("under TensorFlow, build your keras.Model backbone inside "
                       "`with strategy.scope():` and call finetune in that block")
            raise ConfigError(
                f"{variable.path} was created outside the {distribution['strategy']} "
                f"distribution: {how}, or pass a backbone name.")


def _is_distributed(variable, distribution):
    value = getattr(variable, "value", variable)
    if distribution["strategy"] == "DataParallel":
        sharding = getattr(value, "sharding", None)
        return sharding is not None and len(sharding.device_set) == distribution["device_count"]
    import tensorflow as tf

    return isinstance(value, tf.distribute.DistributedValues)


def for_single_device_inference(models, distribution):
    """After a TensorFlow strategy's run, lets `models` predict on one
    device: Keras' `predict_on_batch` under a strategy gives every replica
    the whole batch and concatenates their outputs (N times the rows), which
    breaks reports, pipelines and export checks. The variables stay mirrored
    (reading them outside a replica reads the first copy).

    Example:
    >>> for_single_device_inference([], None)
    """
    if not distribution or not distribution["strategy"].endswith("Strategy"):
        return
    for model in models:
        if model is not None and _compat.drop_distribute_strategy(model):
            model.predict_function = None  # rebuilt without the strategy on next use


@contextlib.contextmanager
def _jax_data_parallel(distribute):
    import keras

    previous = keras.distribution.distribution()
    if isinstance(previous, keras.distribution.DataParallel):  # the caller's: models live there
        yield {"strategy": "DataParallel",
               "device_count": int(previous.device_mesh.devices.size)}
        return
    devices = keras.distribution.list_devices()
    if distribute == "auto" and len(devices) < 2:
        yield None
        return
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    try:
        yield {"strategy": "DataParallel", "device_count": len(devices)}
    finally:
        keras.distribution.set_distribution(previous)


@contextlib.contextmanager
def _tf_mirrored(distribute):
    import tensorflow as tf

    if tf.distribute.has_strategy():  # the caller's own scope: its models live there
        strategy = tf.distribute.get_strategy()
    elif os.environ.get("TF_CONFIG"):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        if distribute == "auto" and len(devices) < 2:
            yield None
            return
        strategy = tf.distribute.MirroredStrategy([device.name for device in devices])
    with strategy.scope():
        yield {"strategy": type(strategy).__name__,
               "device_count": int(strategy.num_replicas_in_sync)}
