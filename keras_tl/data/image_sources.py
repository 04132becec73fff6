"""Image data of every kind a user may pass, read lazily: a source knows its
examples' labels and class names without decoding a pixel, and decodes the
images in a `tf.data` pipeline while training reads them.

The interface, the same for every input:

- `read_image_source(data, image_size, class_names=None, skip_corrupt=False,
  data_dir=None, min_classes=2)` -> a source. `data` is a folder of class
  sub-folders, `(images, labels)` arrays (or a list of image paths and
  labels), a `tf.data.Dataset` of `(image, label)` pairs, batched or not,
  or `"tfds:NAME[:SPLIT]"` (read from `data_dir`).
- `source.class_names`: the class names (list of str); `class_names`
  given, they are those (e.g. the training classes for validation data).
- `source.labels`: int32 NumPy array, one class index per example, in the
  source's order.
- `len(source)`: the number of examples.
- `source.subset(indices)`: a source of those examples (same kind, same
  classes), e.g. the two sides of
  `keras_tl.data.splits.stratified_split(source.labels, fraction, seed)`.
- `source.dataset(batch_size, shuffle=False, seed=0, augment=False)`: a
  batched, prefetched `tf.data.Dataset` of `(float32 RGB images in [0, 255]
  [b, H, W, 3], int32 labels [b])`, of known cardinality. `shuffle`
  reshuffles every epoch; `augment` as `keras_tl.data.pipeline.make_dataset`.
- `source.sample(n)`: the first `n` images (all when fewer), decoded, as
  uint8 NumPy `[n, H, W, 3]` (e.g. to verify an export on real images).

How each input is read:

- A folder is listed (class order, hidden files, named errors as
  `keras_tl.data.folders.class_folders`) and each file's header is checked
  (`keras_tl.data.images.check_image_file`): a file that is not an image,
  or is over the decompression-bomb limit, is a one-line `DataError` naming
  it, or with `skip_corrupt` is left out with a warning. Decoding and
  resizing run in the pipeline, in parallel (`num_parallel_calls=AUTOTUNE`),
  with the ops of the SavedModel's `serving_bytes` signature
  (`keras_tl.data.image_decoding.decode_and_resize`), so training and
  serving see the same pixels; formats only PIL reads (TIFF...) go through
  `read_image`. Shuffling shuffles the file list, not decoded images, so
  memory does not grow with the number of files. A file whose header is
  sound but whose data is not (a truncated JPEG) fails when it is decoded,
  with TensorFlow's decoding error; with `skip_corrupt` it is dropped with
  TensorFlow's warning and the epoch is topped up from the next pass, so
  every epoch has `len(source)` examples.
- Arrays are checked and resized once, as before, and held in memory.
- A `tf.data.Dataset` or TFDS split is never materialised: one pass over
  its labels (for TFDS without decoding the images) gives the labels and
  class names; images are converted (grayscale to RGB, alpha dropped,
  clipped and rounded to uint8, resized as arrays are) as they stream.
  The labels are paired with the images by position, so the dataset must
  yield its elements in the same order on every pass (a dataset that
  reshuffles itself cannot be split: pass `validation_data`). Shuffling
  uses a buffer of at most `SHUFFLE_BUFFER_BYTES` of decoded images.

Example:
>>> from PIL import Image
>>> for name in ("cat", "dog"):
...     (tmp_path / "animals" / name).mkdir(parents=True, exist_ok=True)
...     for i in range(3):
...         Image.new("RGB", (40, 30), "white").save(tmp_path / "animals" / name / f"{i}.png")
>>> source = read_image_source(str(tmp_path / "animals"), (32, 32))
>>> source.class_names, source.labels.tolist(), len(source)
(['cat', 'dog'], [0, 0, 0, 1, 1, 1], 6)
>>> [(x.shape, x.dtype, y.tolist()) for x, y in source.subset([0, 5]).dataset(4).as_numpy_iterator()]
[((2, 32, 32, 3), dtype('float32'), [0, 1])]
>>> source.sample(2).shape
(2, 32, 32, 3)
>>> pixels = np.full((4, 28, 28), 128, "uint8")  # grayscale arrays
>>> source = read_image_source((pixels, ["cat", "dog", "cat", "dog"]), (32, 32))
>>> source.class_names, source.labels.tolist(), source.sample(1).shape
(['cat', 'dog'], [0, 1, 0, 1], (1, 32, 32, 3))
"""

import logging
import os

import numpy as np

from keras_tl.data import images as _images
from keras_tl.data.folders import class_folders, unreadable_files_error
from keras_tl.data.pipeline import batch_examples, make_dataset
from keras_tl.data.splits import check_labels
from keras_tl.errors import DataError

logger = logging.getLogger("keras_tl")

SHUFFLE_BUFFER_BYTES = 256 << 20  # decoded images held to shuffle a tf.data input


def read_image_source(data, image_size, class_names=None, skip_corrupt=False, data_dir=None,
                      min_classes=2):
    """A lazy source of the images and labels of `data`: see the module
    docstring for the inputs and the source's interface.

    `min_classes=1` accepts validation or test data of a single class.

    Example:
    >>> import tensorflow as tf
    >>> pairs = tf.data.Dataset.from_tensor_slices((np.zeros((4, 8, 8, 1), "uint8"), [1, 0, 1, 1]))
    >>> source = read_image_source(pairs.batch(3), (16, 16), class_names=["cat", "dog"])
    >>> source.labels.tolist(), source.sample(8).shape
    ([1, 0, 1, 1], (4, 16, 16, 3))
    """
    image_size = tuple(int(n) for n in image_size)
    if isinstance(data, (str, os.PathLike)):
        text = os.fspath(data)
        if text.startswith("tfds:"):
            parts = text.split(":")
            split = parts[2] if len(parts) > 2 else "train"
            dataset, labels, names = _load_tfds(parts[1], data_dir=data_dir, split=split)
            return _dataset_source(dataset, labels, image_size, class_names or names,
                                   min_classes)
        source = FileSource.from_folder(text, image_size, skip_corrupt, min_classes)
        if class_names is not None and list(class_names) != source.class_names:
            raise DataError(
                f"Class folders of {text} ({source.class_names}) differ from the training "
                f"classes ({list(class_names)})."
            )
        return source
    if _is_tf_dataset(data):
        dataset = _unbatched_pairs(data)
        labels = np.asarray(list(dataset.map(lambda x, y: y).as_numpy_iterator()))
        if not len(labels):
            raise DataError("The tf.data.Dataset is empty.")
        return _dataset_source(dataset, labels, image_size, class_names, min_classes)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels, names = _images.prepare_arrays(data[0], data[1], image_size,
                                                       class_names, min_classes)
        return ArraySource(images, labels, names)
    raise TypeError(
        "Image data must be a folder path, an (images, labels) pair, a "
        f"tf.data.Dataset or 'tfds:NAME'; got {type(data).__name__}."
    )


class ImageSource:
    """What every source has (see the module docstring); subclasses give
    `_examples(shuffle, seed)`, a dataset of `(uint8 image, int32 label)`.

    Example:
    >>> source = read_image_source((np.zeros((4, 8, 8, 3), "uint8"), [0, 1, 1, 0]), (8, 8))
    >>> source
    ArraySource(4 images, 2 classes, 8x8)
    """

    def __init__(self, labels, class_names, image_size):
        self.labels = np.asarray(labels, dtype="int32")
        self.class_names = list(class_names)
        self.image_size = tuple(image_size)

    def __len__(self):
        return len(self.labels)

    def __repr__(self):
        return (f"{type(self).__name__}({len(self)} images, {len(self.class_names)} classes, "
                f"{self.image_size[0]}x{self.image_size[1]})")

    def dataset(self, batch_size, shuffle=False, seed=0, augment=False):
        return batch_examples(self._examples(shuffle, seed), batch_size, seed, augment)

    def sample(self, n):
        batches = [x for x, _ in self._examples(False, 0).take(n).batch(max(n, 1))
                   .as_numpy_iterator()]
        height, width = self.image_size
        return batches[0] if batches else np.empty((0, height, width, 3), "uint8")


class ArraySource(ImageSource):
    """uint8 RGB images at the model's size, in memory.

    Example:
    >>> source = ArraySource(np.zeros((3, 8, 8, 3), "uint8"), [0, 1, 1], ["a", "b"])
    >>> len(source.subset([1, 2])), source.subset([1, 2]).labels.tolist()
    (2, [1, 1])
    """

    def __init__(self, images, labels, class_names):
        super().__init__(labels, class_names, images.shape[1:3])
        self.images = images

    def subset(self, indices):
        indices = np.asarray(indices, dtype="int64")
        return ArraySource(self.images[indices], self.labels[indices], self.class_names)

    def dataset(self, batch_size, shuffle=False, seed=0, augment=False):
        return make_dataset(self.images, self.labels, batch_size, shuffle, seed, augment)

    def sample(self, n):
        return self.images[:n]


class FileSource(ImageSource):
    """Image files, decoded and resized as they are read.

    `tensorflow_decodes[i]` says whether file `i` is decoded by the
    TensorFlow ops of `serving_bytes` (else by `read_image`, with PIL).

    Example:
    >>> from PIL import Image
    >>> path = str(tmp_path / "red.png")
    >>> Image.new("RGB", (40, 30), (200, 0, 0)).save(path)
    >>> source = FileSource([path], [0], ["red"], (15, 20))
    >>> source.sample(1)[0, 0, 0].tolist()
    [200, 0, 0]
    """

    def __init__(self, paths, labels, class_names, image_size, tensorflow_decodes=None,
                 skip_corrupt=False):
        super().__init__(labels, class_names, image_size)
        self.paths = np.asarray(paths, dtype=object)
        self.tensorflow_decodes = (np.ones(len(self.paths), bool) if tensorflow_decodes is None
                                   else np.asarray(tensorflow_decodes, bool))
        self.skip_corrupt = skip_corrupt

    @classmethod
    def from_folder(cls, path, image_size, skip_corrupt=False, min_classes=2):
        """Lists a class-folder tree and checks each file's header (see the
        module docstring)."""
        paths, labels, decodes, names = [], [], [], []
        failures = []  # [(path, reason)]: every unreadable image is named at once
        classes = class_folders(path, _images.IMAGE_EXTENSIONS, "images",
                                os.path.join("cat", "001.jpg"), min_classes)
        for index, (name, files) in enumerate(classes):
            names.append(name)
            readable = 0
            for file_path in files:
                try:
                    decodes.append(_images.check_image_file(file_path))
                except DataError as error:
                    if not skip_corrupt:
                        failures.append((file_path, getattr(error, "reason", error)))
                        continue
                    logger.warning("Skipping unreadable file %s", file_path)
                    continue
                paths.append(file_path)
                labels.append(index)
                readable += 1
            if readable == 0 and not failures:
                raise DataError(f"Class folder {os.path.join(path, name)} has no readable images.")
        if failures:
            raise unreadable_files_error(failures, "image", "images")
        return cls(paths, labels, names, image_size, decodes, skip_corrupt)

    def subset(self, indices):
        indices = np.asarray(indices, dtype="int64")
        return FileSource(self.paths[indices], self.labels[indices], self.class_names,
                          self.image_size, self.tensorflow_decodes[indices], self.skip_corrupt)

    def _examples(self, shuffle, seed):
        import tensorflow as tf

        files = tf.data.Dataset.from_tensor_slices(
            (self.paths.astype(str), self.labels, self.tensorflow_decodes))
        if shuffle:  # file names only: a full-size buffer costs bytes per file
            files = files.shuffle(len(self), seed=seed, reshuffle_each_iteration=True)
        decode = _file_decoder(self.image_size, pil_too=not self.tensorflow_decodes.all())
        examples = files.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        if self.skip_corrupt:
            # Dropping a file that fails to decode, and topping the epoch up
            # from the next pass, keeps the epoch's length known.
            examples = examples.ignore_errors(log_warning=True).repeat().take(len(self))
        return examples


def _file_decoder(image_size, pil_too):
    import tensorflow as tf

    from keras_tl.data.image_decoding import decode_and_resize

    height, width = image_size

    def with_pil(path):
        return _images.read_image(path.decode(), image_size)

    def decode(path, label, tensorflow_decodes):
        def tensorflow():
            return decode_and_resize(tf.io.read_file(path), image_size)

        if not pil_too:
            return tensorflow(), label

        def pil():
            image = tf.numpy_function(with_pil, [path], tf.uint8, stateful=False)
            return tf.ensure_shape(image, [height, width, 3])

        return tf.cond(tensorflow_decodes, tensorflow, pil), label

    # Graph ops already: autograph would take ~10x longer to trace them.
    return tf.autograph.experimental.do_not_convert(decode)


class DatasetSource(ImageSource):
    """A `tf.data.Dataset` of unbatched `(image, label)` pairs, streamed;
    `labels` (read from it once) are paired with its images by position.

    Example:
    >>> import tensorflow as tf
    >>> pairs = tf.data.Dataset.from_tensor_slices((np.arange(4, dtype="uint8").reshape(4, 1, 1, 1), [0, 1, 0, 1]))
    >>> source = DatasetSource(pairs, [0, 1, 0, 1], ["a", "b"], (1, 1)).subset([1, 2])
    >>> [(int(x[0, 0, 0, 0]), int(y[0])) for x, y in source.dataset(batch_size=1)]
    [(1, 1), (2, 0)]
    """

    def __init__(self, dataset, labels, class_names, image_size, positions=None):
        super().__init__(labels, class_names, image_size)
        self._dataset = dataset
        self.positions = positions  # of the examples in `dataset`; None: all

    def subset(self, indices):
        indices = np.asarray(indices, dtype="int64")
        positions = indices if self.positions is None else self.positions[indices]
        return DatasetSource(self._dataset, self.labels[indices], self.class_names,
                             self.image_size, positions)

    def _examples(self, shuffle, seed):
        import tensorflow as tf

        images = self._dataset.map(lambda x, y: x)
        if self.positions is not None:
            chosen = np.zeros(int(self.positions.max()) + 1 if len(self.positions) else 0, bool)
            chosen[self.positions] = True
            chosen = tf.constant(chosen)
            images = images.take(len(chosen)).enumerate()
            images = images.filter(lambda i, _: tf.gather(chosen, i)).map(lambda _, image: image)
        examples = tf.data.Dataset.zip(images, tf.data.Dataset.from_tensor_slices(self.labels))
        examples = examples.map(lambda x, y: (_standard_image(x, self.image_size), y),
                                num_parallel_calls=tf.data.AUTOTUNE)
        examples = examples.apply(tf.data.experimental.assert_cardinality(len(self)))
        if shuffle:
            height, width = self.image_size
            buffer = max(1, min(len(self), SHUFFLE_BUFFER_BYTES // (height * width * 3)))
            examples = examples.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        return examples


def _dataset_source(dataset, raw_labels, image_size, class_names, min_classes):
    labels, names = check_labels(raw_labels, class_names, min_classes)
    return DatasetSource(dataset, labels, names, image_size)


def _standard_image(image, image_size):
    """One image of a tf.data input as `prepare_images` makes arrays: uint8
    RGB at `image_size`."""
    import tensorflow as tf

    from keras_tl.data.image_decoding import resize_image

    if image.shape.rank == 2:
        image = image[..., None]
    if image.shape.rank != 3 or image.shape[-1] not in (1, 3, 4):
        raise DataError(
            f"Images of a tf.data.Dataset must have shape [H, W] or [H, W, C] with C in 1, "
            f"3, 4 (or be batches of them); got {image.shape}.")
    if image.shape[-1] == 1:
        image = tf.tile(image, [1, 1, 3])
    elif image.shape[-1] == 4:
        image = image[..., :3]
    if image.dtype != tf.uint8:
        image = tf.cast(tf.round(tf.clip_by_value(tf.cast(image, tf.float32), 0.0, 255.0)),
                        tf.uint8)
    return resize_image(image, image_size)


def _unbatched_pairs(dataset):
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise DataError(
            "A tf.data.Dataset must yield (image, label) pairs; got elements "
            f"{spec}. Use dataset.map(lambda d: (d['image'], d['label']))."
        )
    return dataset.unbatch() if len(spec[0].shape) == 4 else dataset


def _load_tfds(name, data_dir=None, split="train"):
    """A TFDS classification split as `(dataset of pairs, labels, class
    names)`, from `data_dir` when given (no download is attempted then); the
    labels are read without decoding the images."""
    import tensorflow_datasets as tfds  # optional: only for "tfds:" inputs

    options = dict(split=split, data_dir=data_dir, as_supervised=True,
                   download=data_dir is None, shuffle_files=False)
    try:
        dataset, info = tfds.load(name, with_info=True, **options)
    except Exception as error:
        raise DataError(
            f"Could not load TFDS dataset {name!r} (split {split!r}) from "
            f"data_dir={data_dir!r}: {error}. Prepare it there first with "
            "tfds.builder(name, data_dir=...).download_and_prepare()."
        ) from error
    image_key = (info.supervised_keys or (None,))[0]
    if isinstance(image_key, str):
        undecoded = tfds.load(name, decoders={image_key: tfds.decode.SkipDecoding()},
                              **dict(options, download=False))
    else:
        undecoded = dataset
    labels = np.asarray(list(undecoded.map(lambda x, y: y).as_numpy_iterator()))
    if not len(labels):
        raise DataError(f"TFDS split {name}:{split} is empty.")
    label = info.features["label"] if "label" in info.features else None
    names = list(label.names) if label is not None and hasattr(label, "names") else None
    return dataset, labels, names


def _is_tf_dataset(data):
    return type(data).__module__.startswith("tensorflow") and hasattr(data, "element_spec")
