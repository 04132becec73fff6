"""Cached warm-up: a frozen-backbone stage without augmentation trains the
head on backbone features computed once, then the head is back on the
backbone; the head stage runs to convergence on cheap epochs."""

import os

import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl.errors import ConfigError
from keras_tl.freezing import get_backbone
from keras_tl.tasks import get_task
from keras_tl.training import cache
from tests.helpers import colour_arrays, tiny_backbone, weights_of
from tests.helpers import sentiment_texts


def _count_caching(monkeypatch):
    calls = []
    original = cache.cached_datasets

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(cache, "cached_datasets", counting)
    return calls


@pytest.mark.core
def test_image_split_computes_what_the_model_computes():
    x, y, names = colour_arrays()
    prepared = get_task("image_classification").prepare(
        (x, y), tiny_backbone(), class_names=names, batch_size=8)
    prepared.apply_stage(prepared.model, keras_tl.Stage("head"))
    features, head = prepared.task.split_head(prepared.model)
    images = x[:5].astype("float32")
    np.testing.assert_allclose(head.predict(features.predict(images, verbose=0), verbose=0),
                               prepared.model.predict(images, verbose=0), atol=1e-6)
    assert [layer.name for layer in head.layers if layer.weights] == ["probabilities"]


@pytest.mark.core
def test_features_stay_aligned_with_labels_of_a_shuffled_dataset():
    import keras

    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2.0)(inputs))
    values = np.arange(20, dtype="float32")[:, None]
    data = tf.data.Dataset.from_tensor_slices((values, np.arange(20))).shuffle(
        20, seed=1, reshuffle_each_iteration=True).batch(6)
    features, labels = cache.extract_features(model, data)
    np.testing.assert_array_equal(features[:, 0], 2.0 * labels)
    assert labels.tolist() != list(range(20)), "the dataset was shuffled"


@pytest.mark.core
def test_cached_head_stage_trains_the_shared_head_and_leaves_the_backbone(tmp_path, monkeypatch):
    calls = _count_caching(monkeypatch)
    x, y, names = colour_arrays(per_class=16)
    backbone = tiny_backbone()
    before = [weights_of(layer) for layer in backbone.layers]
    result = keras_tl.finetune(
        (x, y), backbone, class_names=names, batch_size=8, verbose=0, dropout=0.0,
        stages=[keras_tl.Stage("head", epochs=3, learning_rate=5e-2, cached_epochs=40)],
        output_dir=str(tmp_path / "run"))
    assert calls == [1]
    for old, layer in zip(before, get_backbone(result.model).layers):
        for a, b in zip(old, weights_of(layer)):
            np.testing.assert_array_equal(a, b)
    # cheap epochs: cached_epochs (40) replace the stage's 3, and early
    # stopping (patience 3) ends the stage 3 epochs after its best one, or
    # the 40 run out with the best among the last 3
    val_loss = result.histories["head"]["val_loss"]
    since_best = len(val_loss) - 1 - int(np.argmin(val_loss))
    assert len(val_loss) > 3 and since_best <= 3, val_loss
    assert since_best == 3 or len(val_loss) == 40, val_loss
    assert result.metrics["validation"]["accuracy"] == 1.0  # colours are easy
    assert result.config["training"]["cache_features"] == "auto"


@pytest.mark.core
def test_cached_and_uncached_head_stages_learn_alike(tmp_path):
    x, y, names = colour_arrays(per_class=24)
    losses = []
    for cache_features in (True, False):
        result = keras_tl.finetune(
            (x, y), tiny_backbone(), class_names=names, batch_size=8, verbose=0, patience=0,
            stages=[keras_tl.Stage("head", epochs=12, learning_rate=5e-2)],
            cache_features=cache_features, output_dir=str(tmp_path / str(cache_features)))
        history = result.histories["head"]["val_loss"]
        assert history[-1] < 0.85 * history[0]
        losses.append(history[-1])
    cached, uncached = losses
    assert cached < 1.15 * uncached  # the same head on the same features, other shuffles


def test_augmentation_turns_auto_off_and_true_is_refused(tmp_path, monkeypatch):
    calls = _count_caching(monkeypatch)
    x, y, names = colour_arrays()
    options = dict(class_names=names, batch_size=8, verbose=0, patience=0, augment=True,
                   stages=[keras_tl.Stage("head", epochs=1)])
    keras_tl.finetune((x, y), tiny_backbone(), output_dir=str(tmp_path / "auto"), **options)
    assert calls == []
    with pytest.raises(ConfigError, match="cache_features=True cannot be used with augmentation"):
        keras_tl.finetune((x, y), tiny_backbone(), output_dir=str(tmp_path / "on"),
                          cache_features=True, **options)


def test_an_unfrozen_stage_is_never_cached(tmp_path, monkeypatch):
    calls = _count_caching(monkeypatch)
    x, y, names = colour_arrays()
    keras_tl.finetune((x, y), tiny_backbone(), class_names=names, batch_size=8, verbose=0,
                      stages=[keras_tl.Stage("ft", unfreeze="all", epochs=1)],
                      cache_features=True, output_dir=str(tmp_path / "run"))
    assert calls == []


@pytest.mark.core
def test_a_partly_unfrozen_backbone_trains_on_its_cached_frozen_bottom(tmp_path, monkeypatch):
    calls = _count_caching(monkeypatch)
    x, y, names = colour_arrays(per_class=16)
    backbone = tiny_backbone()
    frozen_before = weights_of(backbone.get_layer("block1_conv"))
    trained_before = weights_of(backbone.get_layer("block2_conv"))
    result = keras_tl.finetune(
        (x, y), backbone, class_names=names, batch_size=8, verbose=0, patience=0,
        stages=[keras_tl.Stage("ft", unfreeze="block2", epochs=2, learning_rate=1e-2)],
        output_dir=str(tmp_path / "run"))
    assert calls == [1]
    trained = get_backbone(result.model)
    for a, b in zip(frozen_before, weights_of(trained.get_layer("block1_conv"))):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(trained_before[0], weights_of(trained.get_layer("block2_conv"))[0])
    features, rest = get_task("image_classification").split_head(result.model)
    assert features.output.shape == (None, 16, 16, 4)  # block1's output: block2's input
    images = x[:3].astype("float32")
    np.testing.assert_allclose(rest.predict(features.predict(images, verbose=0), verbose=0),
                               result.model.predict(images, verbose=0), atol=1e-5)


@pytest.mark.core
def test_text_head_is_cached_over_the_padding_mask(tiny_preset, tmp_path, monkeypatch):
    calls = _count_caching(monkeypatch)
    texts, labels = sentiment_texts(12)
    prepared = get_task("text_classification").prepare(
        (texts, labels), tiny_preset, sequence_length=16, batch_size=8)
    prepared.apply_stage(prepared.model, keras_tl.Stage("head"))
    features, head = prepared.task.split_head(prepared.model)
    import keras

    batch = next(prepared.validation.as_numpy_iterator())[0]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(head(features(batch))),
                               keras.ops.convert_to_numpy(prepared.model(batch)), atol=1e-5)
    assert head.input.shape == (None, 16)  # pooled: the mask was applied before the cache
    result = keras_tl.finetune(
        (texts, labels), tiny_preset, sequence_length=16, batch_size=8, verbose=0, patience=2,
        stages=[keras_tl.Stage("head", epochs=2, learning_rate=1e-2, cached_epochs=30)],
        output_dir=str(tmp_path / "run"))
    assert calls == [1]
    assert len(result.histories["head"]["loss"]) > 2


def test_a_keyword_head_stage_trains_on_cached_speech_embeddings(tmp_path, monkeypatch):
    """The speech encoder runs once for a frozen stage, as an image backbone
    does; a partly unfrozen one trains as usual."""
    calls = _count_caching(monkeypatch)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1000, (12, 16000)).astype("float32")
    result = keras_tl.finetune(
        (x, ["yes", "no"] * 6), "speech_embedding", weights=None, batch_size=4, verbose=0,
        validation_split=0.25, stages=[keras_tl.Stage("head", epochs=1),
                                       keras_tl.Stage("top", unfreeze=0.25, epochs=1)],
        output_dir=str(tmp_path / "run"))
    assert result.info["task"] == "keyword_spotting"
    # the head stage only: the encoder folds frames into the batch, so its
    # frozen bottom's output cannot be cached row by row with the labels
    assert calls == [1]
    assert len(result.histories["top"]["loss"]) == 1


def test_a_frozen_part_that_reshapes_the_batch_is_refused_by_name():
    import keras

    from keras_tl.errors import TrainingError

    inputs = keras.Input((4,))
    folded = keras.layers.Lambda(lambda t: keras.ops.reshape(t, (-1, 2)))(inputs)
    model = keras.Model(inputs, folded)
    data = tf.data.Dataset.from_tensor_slices((np.ones((6, 4), "float32"), np.arange(6))).batch(3)
    with pytest.raises(TrainingError, match="12 feature rows for 6 examples"):
        cache.cached_datasets(model, data, None, batch_size=3)


def _feature_data():
    import keras

    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(5, activation="tanh")(inputs))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, np.arange(50))).batch(8)
    return model, data, cache.extract_features(model, data)[0]  # held in memory


@pytest.mark.core
def test_features_over_the_memory_budget_are_sharded_to_disk_and_read_back(tmp_path, monkeypatch):
    model, data, expected = _feature_data()
    monkeypatch.setattr(cache, "SHARD_BYTES", 28 * 16)  # 16 records of 5 floats and a label
    train, validation, size = cache.cached_datasets(
        model, data, data, batch_size=8, seed=0, memory_budget=500, directory=str(tmp_path))
    folders = [tmp_path / name for name in os.listdir(tmp_path)]
    assert [len(os.listdir(folder)) for folder in folders] == [4, 4]  # training, validation
    assert size == 2 * 50 * 5 * 4
    # Validation: in order, exactly the in-memory features.
    x_val, y_val = (np.concatenate(part) for part in zip(*validation.as_numpy_iterator()))
    np.testing.assert_array_equal(y_val, np.arange(50))
    np.testing.assert_array_equal(x_val, expected)
    # Training: every row once per epoch, reshuffled, aligned with its label.
    epochs = [list(train.as_numpy_iterator()) for _ in range(2)]
    assert int(train.cardinality()) == 7
    for batches in epochs:
        x, y = (np.concatenate(part) for part in zip(*batches))
        assert sorted(y.tolist()) == list(range(50))
        np.testing.assert_array_equal(x, expected[y])
    assert not np.array_equal(*(np.concatenate([b[1] for b in e]) for e in epochs))
    del train, validation, epochs
    import gc

    gc.collect()
    assert not any(folder.exists() for folder in folders), "the shards go with their dataset"


@pytest.mark.core
def test_float16_shards_halve_the_disk_size(tmp_path):
    model, data, expected = _feature_data()
    train, _, size = cache.cached_datasets(model, data, None, batch_size=50, memory_budget=0,
                                           shard_dtype="float16", directory=str(tmp_path))
    assert size == 50 * 5 * 2
    x, y = next(train.as_numpy_iterator())
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, expected[y], atol=1e-3)


@pytest.mark.core
def test_the_memory_budget_is_a_setting(monkeypatch):
    monkeypatch.setenv("KERAS_TL_CACHE_MEMORY", "0.5")
    half = cache.default_memory_budget()
    monkeypatch.setenv("KERAS_TL_CACHE_MEMORY", "0.25")
    assert abs(cache.default_memory_budget() - half / 2) < 0.05 * half
    monkeypatch.setenv("KERAS_TL_CACHE_MEMORY", "lots")
    with pytest.raises(ConfigError, match="KERAS_TL_CACHE_MEMORY must be a number"):
        cache.default_memory_budget()
