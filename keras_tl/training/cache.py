"""Cached warm-up: a stage that trains only the head on a frozen backbone,
with no augmentation, sees the same backbone features every epoch. They are
computed once (training and validation data), the head is trained on them,
and since the head model shares its layers with the full model, the trained
head is back on the backbone when the stage ends.

The same holds for the frozen bottom of a partly unfrozen backbone: its
output is computed once and only the unfrozen top and the head train.

A task makes this possible by splitting its model (`Task.split_head`);
`split_frozen_part` does it for classifiers: backbone, weightless layers
(pooling, with its padding mask for text), then trainable or random ones
(dropout, dense).
"""

import logging

import numpy as np

from keras_tl.errors import TrainingError

logger = logging.getLogger("keras_tl")

# The memory budget of the cache where the available memory cannot be read.
MAX_CACHE_BYTES = 4 << 30


def split_frozen_part(model):
    """`(feature_model, train_model)` sharing `model`'s layers: the feature
    model computes what cannot change while training (the frozen part), the
    train model the rest from its output. `None` when `model` cannot be
    split so; then it trains as usual.

    - Backbone frozen: the features are the backbone's output after the
      weightless layers that follow it (pooling, with its mask for text),
      up to the first layer that has weights or is random (dropout).
    - Backbone frozen up to some layer (`unfreeze=N` or a block name): the
      features are the input of the first trainable backbone layer, when
      that is one tensor the rest of the backbone depends on alone.
    - Backbone trainable from its first layer, or a head that needs other
      inputs: `None`.

    Call it after the stage's `trainable` flags are set.

    Example:
    >>> import keras, numpy as np
    >>> x = images = keras.Input((16, 16, 3))
    >>> for block, filters in ((1, 4), (2, 8)):  # two blocks of convolution and BatchNorm
    ...     x = keras.layers.Conv2D(filters, 3, padding="same", name=f"block{block}_conv")(x)
    ...     x = keras.layers.BatchNormalization(name=f"block{block}_bn")(x)
    >>> backbone = keras.Model(images, x, name="backbone")
    >>> inputs = keras.Input((16, 16, 3))
    >>> x = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(inputs))
    >>> x = keras.layers.Dropout(0.2, name="dropout")(x)
    >>> model = keras.Model(inputs, keras.layers.Dense(3, name="probabilities")(x))
    >>> backbone.trainable = False
    >>> features, head = split_frozen_part(model)
    >>> features.output.shape, [layer.name for layer in head.layers][1:]
    ((None, 8), ['dropout', 'probabilities'])
    >>> backbone.trainable = True
    >>> backbone.get_layer("block1_conv").trainable = backbone.get_layer("block1_bn").trainable = False
    >>> features, rest = split_frozen_part(model)
    >>> features.output.shape
    (None, 16, 16, 4)
    >>> x = np.ones((2, 16, 16, 3), "float32")
    >>> bool(np.allclose(rest(features(x)), model(x), atol=1e-6))
    True
    """
    from keras_tl.freezing import BACKBONE_LAYER

    names = [layer.name for layer in model.layers]
    if BACKBONE_LAYER not in names:
        return None
    backbone = model.get_layer(BACKBONE_LAYER)
    if not backbone.trainable_weights:
        return _split_after_backbone(model, names.index(BACKBONE_LAYER))
    return _split_inside_backbone(model, backbone, names.index(BACKBONE_LAYER))


def _split_after_backbone(model, index):
    import keras

    from keras_tl.freezing import BACKBONE_LAYER

    layers = list(model.layers)
    boundary = None
    for layer in layers[index + 1:]:
        if layer.weights or _is_random(layer):
            boundary = layer
            break
    if boundary is None or not isinstance(boundary.input, keras.KerasTensor):
        return None
    try:
        feature_model = keras.Model(model.input, boundary.input, name="cached_features")
        head_model = keras.Model(boundary.input, model.output, name="cached_head")
    except (ValueError, KeyError, TypeError):  # the head needs more than the features
        return None
    head_ids = {id(layer) for layer in head_model.layers}
    for layer in layers:  # every weight outside the backbone must train in the head model
        if layer.name != BACKBONE_LAYER and layer.weights and id(layer) not in head_ids:
            return None
    return feature_model, head_model


def _split_inside_backbone(model, backbone, index):
    import keras

    weighted = [layer for layer in backbone.layers if layer.weights]
    first = next((layer for layer in weighted if layer.trainable_weights), None)
    if first is None or first is weighted[0] or not isinstance(backbone, keras.Model):
        return None
    cut = first.input
    layers = list(model.layers)
    if not isinstance(cut, keras.KerasTensor) or index + 1 >= len(layers):
        return None
    before, after = layers[index - 1], layers[index + 1]
    try:
        bottom = keras.Model(backbone.input, cut, name="frozen_bottom")
        top = keras.Model(cut, backbone.output, name="trainable_top")
        rest = keras.Model(after.input, model.output, name="head")
        start = model.input if isinstance(before, keras.layers.InputLayer) else before.output
        feature_model = keras.Model(model.input, bottom(start), name="cached_features")
        inputs = keras.Input(cut.shape[1:], dtype=cut.dtype, name="cached_features")
        train_model = keras.Model(inputs, rest(top(inputs)), name="cached_train")
    except (ValueError, KeyError, TypeError, AttributeError):  # not one tensor, branches...
        return None
    if any(layer.trainable_weights for layer in bottom.layers):
        return None
    top_ids = {id(layer) for layer in top.layers}
    if any(layer.trainable_weights and id(layer) not in top_ids for layer in weighted):
        return None
    return feature_model, train_model


def _is_random(layer):
    import keras

    random_layers = (keras.layers.Dropout, keras.layers.GaussianNoise,
                     keras.layers.GaussianDropout, keras.layers.AlphaDropout,
                     keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D,
                     keras.layers.SpatialDropout3D)
    return isinstance(layer, random_layers)


def extract_features(feature_model, dataset, predict=None):
    """`(features, targets)` arrays of a batched `(inputs, targets)` dataset,
    read once (a shuffled dataset's order is kept), in inference mode.
    `predict` (from `feature_function`) is reused across datasets.

    Example:
    >>> import keras, numpy as np, tensorflow as tf
    >>> inputs = keras.Input((3,))
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    >>> data = tf.data.Dataset.from_tensor_slices((np.ones((5, 3), "float32"), np.arange(5))).batch(2)
    >>> features, targets = extract_features(model, data)
    >>> features.shape, targets.tolist()
    ((5, 2), [0, 1, 2, 3, 4])
    """
    predict = predict or feature_function(feature_model, dataset)
    return _store_features(feature_model, dataset, predict, float("inf"), "float32",
                           None).arrays()


def backend_batches(dataset):
    """Iterates a `tf.data` dataset as the backend's `*_on_batch` methods take
    it: TensorFlow tensors under TensorFlow, NumPy arrays under JAX and PyTorch.

    Example:
    >>> import tensorflow as tf
    >>> [int(x) for x in backend_batches(tf.data.Dataset.range(3))]
    [0, 1, 2]
    """
    import keras

    if keras.backend.backend() == "tensorflow":
        return iter(dataset)
    return dataset.as_numpy_iterator()


def feature_function(feature_model, dataset):
    """A compiled `inputs -> NumPy features` function of `feature_model` for
    the batches of `dataset` (under TensorFlow traced once, for any batch
    size and length, from the dataset's element spec).

    Example:
    >>> import keras, numpy as np, tensorflow as tf
    >>> inputs = keras.Input((3,))
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    >>> data = tf.data.Dataset.from_tensor_slices((np.ones((5, 3), "float32"), np.arange(5))).batch(2)
    >>> feature_function(model, data)(np.ones((4, 3), "float32")).shape
    (4, 2)
    """
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # a plain tf.function: predict_on_batch would replicate the batch
        # under a tf.distribute strategy instead of splitting it
        function = tf.function(lambda x: feature_model(x, training=False),
                               input_signature=[dataset.element_spec[0]])
        return lambda x: function(x).numpy()
    return lambda x: keras.ops.convert_to_numpy(feature_model.predict_on_batch(x))


def cached_datasets(feature_model, train, validation, batch_size, seed=0, memory_budget=None,
                    shard_dtype="float32", directory=None, verbose=False):
    """Training and validation datasets of backbone features: the training
    one reshuffled every epoch, both batched by `batch_size`. Returns
    `(train, validation, feature_bytes)`.

    Features are held in memory up to `memory_budget` bytes (both datasets
    together; `None`: `default_memory_budget()`); beyond it they are written
    to disk in shards (`shard_dtype` `"float32"` or `"float16"`, half the
    size) under `directory` (default: the temporary folder) as they are
    computed, and read back by a `tf.data` pipeline that shuffles the shard
    order and rows within a bounded buffer. The shard folder is removed when
    its dataset is garbage-collected, or at exit. `verbose`: lines on
    stderr while the features are computed (`CacheProgress`).

    Example:
    >>> import keras, numpy as np, tensorflow as tf
    >>> inputs = keras.Input((3,))
    >>> model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
    >>> data = tf.data.Dataset.from_tensor_slices((np.ones((6, 3), "float32"), np.arange(6))).batch(4)
    >>> train, validation, size = cached_datasets(model, data, None, batch_size=4)
    >>> [tuple(x.shape) for x, _ in train], validation, size
    ([(4, 4), (2, 4)], None, 96)
    >>> train, _, size = cached_datasets(model, data, None, batch_size=4, memory_budget=0,
    ...                                  shard_dtype="float16")
    >>> sorted(int(y) for _, labels in train for y in labels), size
    ([0, 1, 2, 3, 4, 5], 48)
    """
    import tensorflow as tf

    if shard_dtype not in ("float32", "float16"):
        from keras_tl.errors import ConfigError

        raise ConfigError(f"shard_dtype must be 'float32' or 'float16'; got {shard_dtype!r}.")
    budget = default_memory_budget() if memory_budget is None else memory_budget
    predict = feature_function(feature_model, train)  # one trace for both datasets
    store = _store_features(feature_model, train, predict, budget, shard_dtype, directory,
                            CacheProgress("training", train) if verbose else None)
    train_ds = store.dataset(batch_size, shuffle=True, seed=seed)
    size = store.nbytes
    validation_ds = None
    if validation is not None:
        if validation.element_spec[0] != train.element_spec[0]:
            predict = feature_function(feature_model, validation)
        held = store.nbytes if store.shards is None else 0
        validation_store = _store_features(
            feature_model, validation, predict, budget - held, shard_dtype, directory,
            CacheProgress("validation", validation) if verbose else None)
        size += validation_store.nbytes
        validation_ds = validation_store.dataset(batch_size)
    return train_ds, validation_ds, size


def default_memory_budget():
    """Bytes of features `cached_datasets` holds in memory before it writes
    them to disk: `KERAS_TL_CACHE_MEMORY` when set (bytes, or a fraction of
    the available memory when at most 1), else a quarter of the memory
    available now (`MemAvailable` of `/proc/meminfo`; 4 GiB where that
    cannot be read).

    Example:
    >>> import os
    >>> os.environ["KERAS_TL_CACHE_MEMORY"] = "1e9"
    >>> default_memory_budget()
    1000000000
    """
    import os

    setting = os.environ.get("KERAS_TL_CACHE_MEMORY")
    if setting:
        try:
            value = float(setting)
        except ValueError:
            from keras_tl.errors import ConfigError

            raise ConfigError(f"KERAS_TL_CACHE_MEMORY must be a number of bytes or a fraction "
                              f"of the available memory; got {setting!r}.") from None
        if value > 1:
            return int(value)
        return int(value * _available_memory())
    return _available_memory() // 4


def _available_memory():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * MAX_CACHE_BYTES  # unknown: a budget of MAX_CACHE_BYTES


SHARD_BYTES = 256 << 20  # per shard file
SHUFFLE_BUFFER_BYTES = 128 << 20  # rows of an on-disk cache shuffled at once


class _FeatureStore:
    """Features and targets of one dataset: arrays in memory, or shards of
    fixed-length records (features then targets, raw bytes) on disk."""

    def __init__(self, feature_shape, target_shape, target_dtype, shard_dtype):
        self.feature_shape, self.target_shape = feature_shape, target_shape
        self.target_dtype, self.shard_dtype = np.dtype(target_dtype), np.dtype(shard_dtype)
        self.features, self.targets = [], []  # in memory
        self.shards, self.rows, self.nbytes = None, 0, 0
        self._file = None

    @property
    def feature_bytes(self):
        return int(np.prod(self.feature_shape)) * self.shard_dtype.itemsize

    @property
    def record_bytes(self):
        return self.feature_bytes + int(np.prod(self.target_shape)) * self.target_dtype.itemsize

    def spill(self, directory):
        import tempfile
        import weakref

        self.directory = tempfile.mkdtemp(prefix="keras_tl_features_", dir=directory)
        self.shards = []
        self._cleanup = weakref.finalize(self, _remove_folder, self.directory)
        held = list(zip(self.features, self.targets))
        self.features, self.targets, self.nbytes, self.rows = [], [], 0, 0
        for features, targets in held:
            self.write(features, targets)

    def add(self, features, targets):
        if self.shards is not None:
            return self.write(features, targets)
        self.features.append(features.astype("float32", copy=False))
        self.targets.append(targets)
        self.nbytes += self.features[-1].nbytes
        self.rows += len(features)

    def arrays(self):
        return np.concatenate(self.features), np.concatenate(self.targets)

    def write(self, features, targets):
        import os

        records = np.concatenate(
            [features.astype(self.shard_dtype).reshape(len(features), -1).view("uint8"),
             targets.astype(self.target_dtype).reshape(len(targets), -1).view("uint8")], axis=1)
        if self._file is None or self._file.tell() + records.nbytes > SHARD_BYTES:
            self.close()
            self.shards.append(os.path.join(self.directory, f"shard-{len(self.shards):05d}.bin"))
            self._file = open(self.shards[-1], "wb")
        self._file.write(records.tobytes())
        self.nbytes += len(features) * self.feature_bytes
        self.rows += len(features)

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def dataset(self, batch_size, shuffle=False, seed=0):
        import tensorflow as tf

        if self.shards is None:
            x, y = self.arrays()
            dataset = tf.data.Dataset.from_tensor_slices((x, y))
            if shuffle:
                dataset = dataset.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
            return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
        self.close()
        files = tf.data.Dataset.from_tensor_slices(self.shards)
        if shuffle:
            files = files.shuffle(len(self.shards), seed=seed, reshuffle_each_iteration=True)
        record_bytes = self.record_bytes
        # Shuffled, rows of a few shards at a time; else in order.
        rows = files.interleave(
            lambda file: tf.data.FixedLengthRecordDataset(file, record_bytes),
            cycle_length=min(4, len(self.shards)) if shuffle else 1)
        rows = rows.apply(tf.data.experimental.assert_cardinality(self.rows))
        if shuffle:
            buffer = max(1, min(self.rows, SHUFFLE_BUFFER_BYTES // record_bytes))
            rows = rows.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        feature_bytes, feature_shape, target_shape = (self.feature_bytes, self.feature_shape,
                                                      self.target_shape)
        shard_dtype, target_dtype = tf.as_dtype(self.shard_dtype), tf.as_dtype(self.target_dtype)

        def parse(records):
            features = tf.io.decode_raw(tf.strings.substr(records, 0, feature_bytes), shard_dtype)
            targets = tf.io.decode_raw(tf.strings.substr(records, feature_bytes,
                                                         record_bytes - feature_bytes),
                                       target_dtype)
            features = tf.reshape(tf.cast(features, tf.float32), (-1,) + feature_shape)
            return features, tf.reshape(targets, (-1,) + target_shape)

        dataset = rows.batch(batch_size).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.prefetch(tf.data.AUTOTUNE)
        _keep_until_collected(dataset, self)
        return dataset


def _keep_until_collected(dataset, store):
    """The store's shard folder lives as long as the dataset reading it."""
    try:
        dataset._keras_tl_feature_store = store
    except AttributeError:  # no attributes: kept until exit
        _KEPT.append(store)


_KEPT = []


def _remove_folder(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)


class CacheProgress:
    """Lines on stderr while the backbone features of a dataset are
    computed: one at the start with its batch count, one at each tenth done
    or after `interval` seconds without a line, whichever comes first, and
    one at the end.

    Example:
    >>> import io, tensorflow as tf
    >>> out = io.StringIO()
    >>> progress = CacheProgress("training", tf.data.Dataset.range(20).batch(2), out=out)
    >>> for batch in range(1, 11):
    ...     progress.update(batch, 2 * batch)
    >>> progress.done(20)
    >>> print(out.getvalue().splitlines()[0])
    Caching backbone features of the training data: 10 batches
    >>> len(out.getvalue().splitlines())
    12
    """

    def __init__(self, what, dataset, out=None, interval=10.0):
        import sys
        import time

        self.clock = time.perf_counter
        self.out = out or sys.stderr
        self.interval = interval
        self.total = int(dataset.cardinality()) if hasattr(dataset, "cardinality") else -1
        self.started = self.last = self.clock()
        self.next_tenth = 1
        size = (f"{self.total} batch{'es' if self.total > 1 else ''}" if self.total > 0
                else "batches of unknown number")
        self._line(f"Caching backbone features of the {what} data: {size}")

    def update(self, batches, examples):
        now = self.clock()
        tenth = batches * 10 // self.total if self.total > 0 else 0
        if tenth >= self.next_tenth or now - self.last >= self.interval:
            self.next_tenth = max(self.next_tenth, tenth + 1)
            share = f"/{self.total} ({batches / self.total:.0%})" if self.total > 0 else ""
            self._line(f"  batch {batches}{share}, {examples} examples, "
                       f"{now - self.started:.0f} s")
            self.last = now

    def done(self, examples):
        self._line(f"  cached {examples} examples in {self.clock() - self.started:.1f} s")

    def _line(self, text):
        print(text, file=self.out, flush=True)


def _store_features(feature_model, dataset, predict, budget, shard_dtype, directory,
                    progress=None):
    """Computes the features of `dataset` batch by batch into a store,
    spilling to disk once they exceed `budget` bytes."""
    store = None
    rows = examples = batches = 0
    for inputs, batch_targets in backend_batches(dataset):
        features = np.asarray(predict(inputs))
        targets = np.asarray(batch_targets)
        rows, examples = rows + len(features), examples + len(targets)
        if rows != examples:
            continue  # refused below, with the totals
        if store is None:
            store = _FeatureStore(features.shape[1:], targets.shape[1:], targets.dtype,
                                  shard_dtype)
        if store.shards is None and store.nbytes + features.size * 4 > budget:
            store.spill(directory)
            logger.info("Backbone features exceed the cache memory budget (%.0f MB): writing "
                        "them to %s.", budget / 1e6, store.directory)
        store.add(features, targets)
        batches += 1
        if progress is not None:
            progress.update(batches, examples)
    if rows != examples:
        raise TrainingError(
            f"The frozen part of the model gives {rows} feature rows for {examples} examples "
            "(it reshapes the batch), so its output cannot be cached; pass "
            "cache_features=False.")
    if store is None:
        raise TrainingError("The dataset to cache features of is empty.")
    store.close()
    if progress is not None:
        progress.done(examples)
    return store


def cache_fits_in_memory(feature_model, samples):
    """Whether `samples` float32 feature vectors of `feature_model` fit the
    cache: the memory budget (`default_memory_budget`), or half the free
    space of the temporary folder, where features beyond it are written.

    Example:
    >>> import keras
    >>> inputs = keras.Input((3,))
    >>> cache_fits_in_memory(keras.Model(inputs, keras.layers.Dense(1280)(inputs)), 10_000)
    True
    """
    import shutil
    import tempfile

    size = 4
    for dim in feature_model.output.shape[1:]:
        size *= int(dim) if dim is not None else 1
    disk = shutil.disk_usage(tempfile.gettempdir()).free // 2
    return samples * size <= max(default_memory_budget(), disk)
