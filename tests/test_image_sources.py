"""Image data that streams: folders are listed, not decoded, until training
reads them, with the SavedModel's decoding; tf.data inputs stay datasets."""

import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_tl.data import image_decoding
from keras_tl.data.image_sources import read_image_source
from keras_tl.data.images import read_image
from keras_tl.tasks import get_task
from tests.helpers import tiny_backbone, write_image_folder


def _jpeg_folder(root, per_class=6, colours=((200, 30, 30), (30, 30, 200)), size=(120, 90)):
    rng = np.random.default_rng(0)
    for name, colour in zip(("a", "b"), colours):
        os.makedirs(root / name, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(np.asarray(colour) + rng.normal(0, 20, size[::-1] + (3,)), 0, 255)
            Image.fromarray(pixels.astype("uint8")).save(root / name / f"{i:03d}.jpg", quality=90)
    return str(root)


def _truncate(path):
    """Cuts a JPEG in half: its header is sound, its data is not."""
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def test_a_folder_is_read_while_training_reads_it_not_up_front(tmp_path):
    root = _jpeg_folder(tmp_path / "data", per_class=40, colours=((200, 30, 30),) * 2)
    source = read_image_source(root, (16, 16))
    batches = iter(source.dataset(batch_size=4, shuffle=True, seed=1))
    first, _ = next(batches)
    assert first.numpy()[..., 0].mean() > 150  # red
    # Repainting the files now changes what later batches hold: they are
    # decoded as the pipeline reaches them, not held from before. Each file
    # is replaced whole: the prefetching pipeline may be reading it meanwhile.
    for name in ("a", "b"):
        for file in os.listdir(os.path.join(root, name)):
            path = os.path.join(root, name, file)
            Image.new("RGB", (40, 30), (0, 0, 250)).save(path + ".new", format="JPEG")
            os.replace(path + ".new", path)
    red = [x.numpy()[..., 0].mean() > 150 for x, _ in batches]
    assert len(red) == 19 and not all(red[-10:])


def test_listing_a_folder_decodes_no_image(tmp_path):
    """A file whose header is sound but whose data is truncated is only
    found when it is decoded: listing, labels and the split never decode."""
    root = _jpeg_folder(tmp_path / "data")
    _truncate(os.path.join(root, "b", "002.jpg"))
    source = read_image_source(root, (16, 16))
    assert source.labels.tolist() == [0] * 6 + [1] * 6 and source.class_names == ["a", "b"]
    with pytest.raises(tf.errors.InvalidArgumentError):
        list(source.dataset(batch_size=4))


def test_skip_corrupt_drops_an_undecodable_file_and_keeps_the_epoch_length(tmp_path, caplog):
    root = _jpeg_folder(tmp_path / "data")
    _truncate(os.path.join(root, "a", "001.jpg"))
    (tmp_path / "data" / "a" / "notes.jpg").write_text("not an image")
    with caplog.at_level(logging.WARNING, logger="keras_tl"):
        source = read_image_source(root, (16, 16), skip_corrupt=True)
    assert "notes.jpg" in caplog.text and len(source) == 12  # refused by its header
    dataset = source.dataset(batch_size=5, shuffle=True)
    assert int(dataset.cardinality()) == 3
    for _ in range(2):  # every epoch has the source's length
        assert sum(len(y) for _, y in dataset) == 12


def test_folder_pixels_are_those_of_the_savedmodel_decoding(tmp_path):
    root = _jpeg_folder(tmp_path / "data", per_class=3, size=(57, 41))
    Image.new("RGB", (30, 20), (10, 120, 250)).save(tmp_path / "data" / "a" / "z.webp")
    Image.new("RGB", (30, 20), (250, 120, 10)).save(tmp_path / "data" / "b" / "z.tiff")
    source = read_image_source(root, (24, 32))
    images = source.sample(len(source))
    assert images.dtype == np.uint8 and images.shape == (8, 24, 32, 3)
    for path, image in zip(source.paths, images):
        np.testing.assert_array_equal(image, read_image(path, (24, 32)), err_msg=path)
        if not path.endswith(".tiff"):  # the one format serving_bytes refuses
            with open(path, "rb") as f:
                served = image_decoding.decode_and_resize(f.read(), (24, 32)).numpy()
            np.testing.assert_array_equal(image, served, err_msg=path)
    batch, _ = next(iter(source.dataset(batch_size=8)))
    np.testing.assert_array_equal(batch.numpy(), images.astype("float32"))


def test_the_validation_split_is_stratified_over_the_file_list(tmp_path):
    root = write_image_folder(tmp_path / "data", per_class=10, size=16)
    os.remove(os.path.join(root, "blue", os.listdir(os.path.join(root, "blue"))[0]))
    prepared = get_task("image_classification").prepare(
        root, tiny_backbone(), batch_size=4, validation_split=0.2, seed=3)
    assert (prepared.info["num_train"], prepared.info["num_validation"]) == (23, 6)
    val_labels = np.concatenate([y for _, y in prepared.validation.as_numpy_iterator()])
    np.testing.assert_array_equal(np.bincount(val_labels), [2, 2, 2])
    train_labels = np.concatenate([y for _, y in prepared.train.as_numpy_iterator()])
    np.testing.assert_array_equal(np.bincount(train_labels), [7, 8, 8])
    assert prepared.sample.shape == (6, 16, 16, 3)


def test_a_tf_dataset_streams_and_is_never_held(tmp_path):
    """The images of a tf.data input are read as the source reads them:
    changing what the dataset yields after the source was made shows."""
    value = tf.Variable(10, dtype=tf.uint8)
    pairs = tf.data.Dataset.range(8).map(
        lambda i: (tf.fill([6, 6, 1], value.read_value()), tf.strings.as_string(i % 2)))
    source = read_image_source(pairs, (12, 12))
    assert source.class_names == ["0", "1"] and source.labels.tolist() == [0, 1] * 4
    value.assign(200)
    images = source.sample(8)
    assert images.shape == (8, 12, 12, 3) and (images == 200).all()
    train, validation = source.subset([0, 1, 2, 5, 6, 7]), source.subset([3, 4])
    assert [y.tolist() for _, y in validation.dataset(4).as_numpy_iterator()] == [[1, 0]]
    assert sorted(y for _, ys in train.dataset(2, shuffle=True).as_numpy_iterator()
                  for y in ys.tolist()) == [0, 0, 0, 1, 1, 1]
