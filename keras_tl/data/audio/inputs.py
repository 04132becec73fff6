"""The audio inputs keras_tl takes, checked and made into clips: class
folders of WAV files, `(waveforms, labels)` arrays and `tf.data` datasets.

Waveforms are float32 at 16 kHz on the int16 scale (-32768..32767), the
speech encoder's input (`keras_tl.backbones.speech_embedding`).
"""

import logging
import os

import numpy as np

from keras_tl.data.audio.clips import SAMPLE_RATE
from keras_tl.data.audio.wav import (OTHER_AUDIO_EXTENSIONS, WAV_EXTENSIONS,
                                     read_wav_or_reason, unreadable_wavs_error)
from keras_tl.data.folders import read_class_folders
from keras_tl.data.splits import check_labels
from keras_tl.errors import DataError

_IMAGE_OR_TEXT = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".txt")
logger = logging.getLogger("keras_tl")


def load_audio_folder(path, clip_samples, skip_corrupt=False, sample_rate=SAMPLE_RATE):
    """Reads a folder with one sub-folder of WAV files per class.

    Returns `(waveforms, labels, class_names)`: float32 `[N, clip_samples]`
    at 16 kHz (int16 scale), int32 `[N]`, and the sorted sub-folder names.
    Files of other audio formats (.mp3, .flac...) count as unreadable; all
    unreadable files are named in one error.

    Args:
        path: the data folder.
        clip_samples: samples per clip (`fit_clip` centres).
        skip_corrupt: skip unreadable files with a warning instead of raising.

    Example:
    >>> x, y, names = load_audio_folder("keywords/", 16000)  # doctest: +SKIP
    """
    failures = []  # [(path, reason)]: every unreadable file is named at once

    def read(file):
        waveform, reason = read_wav_or_reason(file, clip_samples, sample_rate)
        if reason is None:
            return waveform
        if skip_corrupt:
            raise DataError(reason)  # read_class_folders skips it with a warning
        failures.append((file, reason))
        return np.zeros(clip_samples, "float32")  # a stand-in; the folder is refused below

    # other audio formats count as files, so they are named as unreadable, not ignored
    loaded = read_class_folders(path, read, WAV_EXTENSIONS + OTHER_AUDIO_EXTENSIONS, "WAV files",
                                os.path.join("yes", "001.wav"), skip_corrupt)
    if failures:
        raise unreadable_wavs_error(failures)
    return loaded


def prepare_waveforms(waveforms, clip_samples, sample_rate=SAMPLE_RATE):
    """Any batch of audio as the model takes it: float32 `[N, clip_samples]`
    at 16 kHz on the int16 scale.

    `waveforms` may be a 2-D array `[N, samples]`, a list of 1-D arrays of
    any lengths (all at `sample_rate`), or a list of WAV files (paths,
    bytes or binary file objects, each at its own rate). Values all within
    [-1, 1] log a warning: float audio must be multiplied by 32768 first.
    Read, resampled and fitted without TensorFlow
    (`keras_tl.data.numpy_inputs`, the values the TensorFlow ops give), so
    predicting needs none.

    Example:
    >>> prepare_waveforms([np.ones(8000), np.ones(20000)], 16000).shape
    (2, 16000)
    """
    from keras_tl.data import numpy_inputs
    from keras_tl.data.images import is_file_input

    if isinstance(waveforms, (list, tuple)) and waveforms and is_file_input(waveforms[0]):
        clips, failures = [], []  # every unreadable file is named at once
        for index, file in enumerate(waveforms):
            clip, reason = numpy_inputs.read_wav_or_reason(file, clip_samples)
            clips.append(clip)
            if reason is not None:
                name = os.fspath(file) if isinstance(file, (str, os.PathLike)) else f"input {index}"
                failures.append((name, reason))
        if failures:
            raise unreadable_wavs_error(failures)
        return np.stack(clips)
    if isinstance(waveforms, np.ndarray) and waveforms.dtype.kind in "fiu" and waveforms.ndim == 1:
        raise DataError(
            f"Got a single 1-D waveform of {waveforms.shape[0]} samples; pass a batch: "
            "a 2-D array [N, samples] or a list of 1-D arrays."
        )
    rows = _rows(waveforms)
    peak = max((float(np.max(np.abs(r))) for r in rows if r.size), default=0.0)
    if 0 < peak <= 1.0:
        logger.warning(
            "Audio values are all within [-1, 1]; keras_tl expects int16-scale samples "
            "(-32768..32767): multiply float audio by 32768."
        )
    return np.stack([numpy_inputs.fit_clip(numpy_inputs.resample(r, sample_rate, SAMPLE_RATE),
                                           clip_samples) for r in rows])


def _rows(waveforms):
    if isinstance(waveforms, np.ndarray) and waveforms.ndim == 2 and waveforms.dtype.kind in "fiu":
        return list(waveforms.astype("float32"))
    rows = []
    for i, row in enumerate(waveforms):
        row = np.asarray(row)
        if row.ndim != 1 or row.dtype.kind not in "fiu" or row.size == 0:
            raise DataError(
                f"Waveform {i} has shape {row.shape} and dtype {row.dtype}; each must be a "
                "non-empty 1-D numeric array (mono samples on the int16 scale)."
            )
        rows.append(row.astype("float32"))
    if not rows:
        raise DataError("The audio data holds no waveforms.")
    return rows


def prepare_audio_arrays(waveforms, labels, clip_samples, sample_rate=SAMPLE_RATE,
                         class_names=None, min_classes=2):
    """Validates and converts `(waveforms, labels)`: waveforms as for
    `prepare_waveforms`, labels ints or strings. Returns `(float32
    [N, clip_samples], int32 labels, class_names)`.

    Example:
    >>> x, y, names = prepare_audio_arrays(np.zeros((4, 12000)), ["no", "yes", "no", "yes"], 16000)
    >>> x.shape, y.tolist(), names
    ((4, 16000), [0, 1, 0, 1], ['no', 'yes'])
    """
    labels, class_names = check_labels(labels, class_names, min_classes)
    if len(waveforms) != len(labels):
        raise DataError(
            f"Got {len(waveforms)} waveforms but {len(labels)} labels; they must be "
            "the same length, one label per waveform."
        )
    return prepare_waveforms(waveforms, clip_samples, sample_rate), labels, class_names


def audio_dataset_to_arrays(dataset):
    """Materialises a `tf.data.Dataset` of `(waveform, label)` pairs, batched
    (`[batch, samples]`) or not (`[samples]`, lengths may differ), into a
    list of 1-D float32 arrays and a label array.

    Example:
    >>> import tensorflow as tf
    >>> ds = tf.data.Dataset.from_tensor_slices((np.zeros((3, 100), "float32"), [0, 1, 0]))
    >>> waves, labels = audio_dataset_to_arrays(ds)
    >>> len(waves), labels.tolist()
    (3, [0, 1, 0])
    """
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2) or len(spec[0].shape) not in (1, 2):
        raise DataError(
            "A tf.data.Dataset of audio must yield (waveform, label) pairs with waveforms "
            f"[samples] or [batch, samples]; got elements {spec}."
        )
    batched = len(spec[0].shape) == 2
    waves, labels = [], []
    for x, y in dataset.as_numpy_iterator():
        if batched:
            waves.extend(np.asarray(x, "float32"))
            labels.extend(np.asarray(y).reshape(len(x), *np.shape(y)[1:]))
        else:
            waves.append(np.asarray(x, "float32"))
            labels.append(y)
    if not waves:
        raise DataError("The tf.data.Dataset is empty.")
    return waves, np.asarray(labels)


def is_audio_data(data):
    """Whether `data` looks like audio: a folder whose class sub-folders hold
    mostly `.wav` files, a `(waveforms, labels)` pair with a 2-D numeric
    array or a list of 1-D numeric arrays, or a `tf.data.Dataset` of
    numeric `[samples]` / `[batch, samples]` waveforms.

    Example:
    >>> is_audio_data((np.zeros((4, 16000)), [0, 1, 0, 1])), is_audio_data((np.zeros((4, 28, 28)), [0, 1, 0, 1]))
    (True, False)
    """
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        return os.path.isdir(path) and is_wav_folder(path)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x = data[0]
        if isinstance(x, np.ndarray):
            return x.ndim == 2 and x.dtype.kind in "fiu"
        if isinstance(x, (list, tuple)) and x and not isinstance(x[0], (str, bytes, os.PathLike)):
            first = np.asarray(x[0])
            return first.ndim == 1 and first.dtype.kind in "fiu"
        return False
    spec = getattr(data, "element_spec", None)
    if isinstance(spec, tuple) and len(spec) == 2 and hasattr(spec[0], "shape"):
        dtype = spec[0].dtype
        return len(spec[0].shape) in (1, 2) and (dtype.is_floating or dtype.name == "int16")
    return False


def is_wav_folder(path):
    """Whether the class sub-folders of `path` hold WAV files, and no fewer
    of them than images or texts.

    Example:
    >>> for name in ("yes/1.wav", "no/2.wav", "no/notes.txt"):
    ...     f = tmp_path / "spoken" / name; f.parent.mkdir(parents=True, exist_ok=True)
    ...     _ = f.write_bytes(b"")
    >>> is_wav_folder(tmp_path / "spoken")
    True
    """
    wav = other = 0
    for entry in sorted(os.listdir(path)):
        sub = os.path.join(path, entry)
        if os.path.isdir(sub) and not entry.startswith("."):
            for name in os.listdir(sub):
                lower = name.lower()
                wav += lower.endswith(WAV_EXTENSIONS)
                other += lower.endswith(_IMAGE_OR_TEXT)
    return wav > 0 and wav >= other
