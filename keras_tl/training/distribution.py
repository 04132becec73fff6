"""Data-parallel training on several devices of one machine (or several).

`distribute="data_parallel"` copies the model to every device and splits
each batch between them: `batch_size` is the *global* batch size (each of N
devices gets `batch_size / N` examples per step), so results match a
one-device run with the same `batch_size`, up to floating-point order.

- JAX: `keras.distribution.DataParallel` over `keras.distribution.list_devices()`,
  or the `DataParallel` distribution already set. A `keras.Model` backbone
  you build yourself must be built after that distribution is set.
- TensorFlow: `tf.distribute.MirroredStrategy` over the GPUs (or the
  logical CPUs when there is no GPU), or the strategy whose scope
  `finetune` is called in; the model is built and compiled in its scope.
  A `keras.Model` backbone you build yourself must be built in that scope
  too (call `finetune` inside `with strategy.scope():`); backbones named by
  keras_tl are. (`keras.distribution` does not distribute under
  TensorFlow.) With `TF_CONFIG` set: a `ConfigError` (below).
- PyTorch: not supported (`ConfigError`; `"auto"` trains on one device).

`distribute="auto"` distributes when there are at least two devices, and
across processes when a cluster is configured (below).

`distribute="multi_worker"` trains on several processes (machines), each
running the same command with the same output folder:

- JAX: `keras.distribution.initialize()` joins the cluster that Keras'
  environment variables describe (`KERAS_DISTRIBUTION_JOB_ADDRESSES`, the
  coordinator's `host:port` first; `KERAS_DISTRIBUTION_NUM_PROCESSES`;
  `KERAS_DISTRIBUTION_PROCESS_ID`), then `DataParallel` runs over every
  process's devices. `batch_size` is still the global batch: each process
  feeds its own slice of every global batch (the batch Keras would build
  on one process), so a run matches a one-process run with the same
  `batch_size`. A last batch whose size does not divide by the number of
  processes loses its remainder (at most `num_processes - 1` examples).
- TensorFlow: refused (`ConfigError`): `MultiWorkerMirroredStrategy` does
  not train with Keras 3 (keras-team/keras#20585).
- PyTorch: refused (`ConfigError`).

Only process 0 (the chief) writes the run folder; see `keras_tl.run`.
"""

import contextlib
import os

import keras

from keras_tl import _compat
from keras_tl.errors import ConfigError

MODES = ("auto", "data_parallel", "multi_worker")
CLUSTER_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                     "KERAS_DISTRIBUTION_PROCESS_ID")
_joined = []  # the (process_index, num_processes) of the cluster this process joined


def cluster_configured():
    """Whether Keras' cluster variables describe more than one process.

    Example:
    >>> cluster_configured()
    False
    """
    return int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES") or 1) > 1


def join_cluster(distribute):
    """Joins the multi-process cluster when `distribute` asks for one
    (`"multi_worker"`, or `"auto"` with a cluster configured); returns
    `(process_index, num_processes)`, `(0, 1)` on one process. Call it
    before anything runs on the backend: JAX can join only then.

    Example:
    >>> join_cluster(None)
    (0, 1)
    """
    if distribute not in ("multi_worker", "auto"):
        return 0, 1
    if distribute == "auto" and not cluster_configured():
        return 0, 1
    if _joined:
        return _joined[0]
    backend = keras.backend.backend()
    if backend != "jax":
        engine = ("TensorFlow's MultiWorkerMirroredStrategy does not train with Keras 3 "
                  "(keras-team/keras#20585)" if backend == "tensorflow"
                  else "Keras has no multi-process PyTorch training yet")
        raise ConfigError(
            f"distribute={distribute!r} needs the JAX backend: {engine}; run with "
            "KERAS_BACKEND=jax and the KERAS_DISTRIBUTION_* variables set on every process.")
    import jax  # the JAX backend is the one in use here

    if not jax.distributed.is_initialized():  # else the caller joined already
        missing = [name for name in CLUSTER_VARIABLES if not os.environ.get(name)]
        if missing:
            raise ConfigError(
                f"distribute={distribute!r} needs {', '.join(missing)} set on every process "
                "(the coordinator's host:port, the process count, this process's index 0..N-1).")
        try:
            keras.distribution.initialize()
        except RuntimeError as error:  # JAX computed before: too late to join
            raise ConfigError(
                f"cannot join the cluster ({str(error).split('.')[0]}): build no model before "
                "finetune, or call keras.distribution.initialize() first.") from None
    _joined.append((jax.process_index(), jax.process_count()))
    return _joined[0]


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
            f"distribute must be None, 'auto', 'data_parallel' or 'multi_worker'; "
            f"got {distribute!r}.")
    process_index, num_processes = join_cluster(distribute)
    if num_processes > 1:
        with _jax_multi_process(process_index, num_processes) as description:
            yield description
        return

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
    """After a multi-process run, moves `models` to this process's own
    device. After a TensorFlow strategy's run, lets `models` predict on one
    device: Keras' `predict_on_batch` under a strategy gives every replica
    the whole batch and concatenates their outputs (N times the rows), which
    breaks reports, pipelines and export checks. The variables stay mirrored
    (reading them outside a replica reads the first copy).

    Example:
    >>> for_single_device_inference([], None)
    """
    if distribution and distribution.get("num_processes", 1) > 1:
        _to_local_devices(models)
        return
    if not distribution or not distribution["strategy"].endswith("Strategy"):
        return
    for model in models:
        if model is not None and _compat.drop_distribute_strategy(model):
            model.predict_function = None  # rebuilt without the strategy on next use


@contextlib.contextmanager
def _jax_data_parallel(distribute):
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


class _ProcessSlicedDataParallel(keras.distribution.DataParallel):
    """`DataParallel` over several processes where process `i` of `n`
    feeds rows `[i * b/n, (i + 1) * b/n)` of every global batch of `b`, as
    Keras' own sharding does, except that a batch not divisible by `n` (the
    last one) loses its remainder instead of giving processes batches of
    different sizes, which JAX cannot assemble into one global batch."""

    def distribute_dataset(self, dataset):
        import tensorflow as tf

        count, index = self._num_processes, self._process_id

        def local_slice(*batch):
            rows = tf.shape(tf.nest.flatten(batch)[0])[0] // count
            sliced = tf.nest.map_structure(lambda t: t[index * rows:(index + 1) * rows], batch)
            return sliced if len(sliced) > 1 else sliced[0]

        def not_empty(*batch):
            return tf.shape(tf.nest.flatten(batch)[0])[0] >= count

        return dataset.filter(not_empty).map(local_slice).prefetch(tf.data.AUTOTUNE)


@contextlib.contextmanager
def _jax_multi_process(process_index, num_processes):
    previous = keras.distribution.distribution()
    devices = keras.distribution.list_devices()  # every process's devices
    keras.distribution.set_distribution(_ProcessSlicedDataParallel(devices=devices))
    try:
        yield {"strategy": "DataParallel", "device_count": len(devices),
               "num_processes": num_processes}
    finally:
        keras.distribution.set_distribution(previous)


def _to_local_devices(models):
    # Every process holds all of a replicated variable: after training, the
    # values move to this process's own device, and the global distribution
    # is dropped, so that the chief's reports and exports run on it alone
    # (a collective would wait for workers that have finished).
    keras.distribution.set_distribution(None)
    for model in models:
        for variable in (model.variables if model is not None else ()):
            value = keras.ops.convert_to_numpy(variable.value)
            variable._layout = None  # private: Keras has no public way to drop a layout
            variable.assign(value)
        if model is not None:
            model.predict_function = model.test_function = None


@contextlib.contextmanager
def _tf_mirrored(distribute):
    import tensorflow as tf

    if tf.distribute.has_strategy():  # the caller's own scope: its models live there
        strategy = tf.distribute.get_strategy()
    elif os.environ.get("TF_CONFIG"):  # Keras 3.15's fit fails on PerReplica batches
        raise ConfigError(
            "TF_CONFIG is set, but TensorFlow's MultiWorkerMirroredStrategy does not train with "
            "Keras 3 (keras-team/keras#20585): unset TF_CONFIG, or train on several machines "
            "with KERAS_BACKEND=jax and distribute='multi_worker'.")
    else:
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        if distribute == "auto" and len(devices) < 2:
            yield None
            return
        strategy = tf.distribute.MirroredStrategy([device.name for device in devices])
    with strategy.scope():
        yield {"strategy": type(strategy).__name__,
               "device_count": int(strategy.num_replicas_in_sync)}
