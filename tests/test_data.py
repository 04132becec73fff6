"""Image data sources: folders, arrays, tf.data; grayscale, resizing, splits."""

import numpy as np
import pytest

from keras_tl.data.image_sources import read_image_source
from keras_tl.data.splits import stratified_split
from tests.helpers import colour_arrays, write_image_folder


def load_image_data(data, image_size, **options):
    """All of a source's images, labels and class names."""
    source = read_image_source(data, image_size, **options)
    return source.sample(len(source)), source.labels, source.class_names


def test_folder_grayscale_becomes_rgb_and_is_resized(tmp_path):
    root = write_image_folder(tmp_path / "data", size=20, grayscale_first=True)
    x, y, names = load_image_data(root, (24, 24))
    assert x.shape == (24, 24, 24, 3)
    assert x.dtype == np.uint8 and names == ["blue", "green", "red"]
    np.testing.assert_array_equal(np.bincount(y), [8, 8, 8])
    gray = x[np.flatnonzero(y == names.index("red"))[0]]
    assert (gray[..., 0] == gray[..., 1]).all()


def test_arrays_grayscale_and_string_labels():
    x, y, names = colour_arrays(per_class=4, size=8)
    gray = x[..., 0]
    labels = np.asarray(names)[y]
    images, labels_out, classes = load_image_data((gray, labels), (16, 16))
    assert images.shape == (12, 16, 16, 3) and classes == sorted(names)
    assert [classes[i] for i in labels_out] == list(labels)


def test_tf_dataset_batched_or_not():
    import tensorflow as tf

    x, y, names = colour_arrays(per_class=4, size=8)
    for ds in (tf.data.Dataset.from_tensor_slices((x, y)),
               tf.data.Dataset.from_tensor_slices((x, y)).batch(5)):
        images, labels, _ = load_image_data(ds, (8, 8), class_names=names)
        np.testing.assert_array_equal(images, x)
        np.testing.assert_array_equal(labels, y)


def test_stratified_split_is_seeded_and_keeps_proportions():
    labels = np.asarray([0] * 50 + [1] * 10)
    train, val = stratified_split(labels, 0.2, seed=1)
    assert sorted(np.bincount(labels[val])) == [2, 10]
    assert set(train).isdisjoint(val) and len(train) + len(val) == 60
    again_train, again_val = stratified_split(labels, 0.2, seed=1)
    np.testing.assert_array_equal(val, again_val)
    assert not np.array_equal(val, stratified_split(labels, 0.2, seed=2)[1])


def test_tfds_name_read_from_a_local_data_dir(tmp_path):
    import tensorflow_datasets as tfds

    x, y, names = colour_arrays(per_class=3, size=8)

    class KerasTlColours(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(8, 8, 3)),
                "label": tfds.features.ClassLabel(names=names)}),
                supervised_keys=("image", "label"))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for i, (image, label) in enumerate(zip(x, y)):
                yield i, {"image": image, "label": int(label)}

    KerasTlColours(data_dir=str(tmp_path)).download_and_prepare()
    images, labels, classes = load_image_data(
        "tfds:keras_tl_colours", (8, 8), data_dir=str(tmp_path))
    assert classes == names
    assert sorted(labels.tolist()) == sorted(y.tolist())
    assert images.shape == (9, 8, 8, 3)
    with pytest.raises(ValueError, match="Could not load TFDS dataset 'no_such_set'"):
        load_image_data("tfds:no_such_set", (8, 8), data_dir=str(tmp_path))
