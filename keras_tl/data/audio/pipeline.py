"""Clips as a batched `tf.data` pipeline (in-memory today; a lazy reader of
WAV folders belongs beside `make_audio_dataset` here)."""

import numpy as np

from keras_tl.data.audio.augmentation import AudioAugmentation
from keras_tl.data.pipeline import make_dataset
from keras_tl.errors import ConfigError, DataError


def make_audio_dataset(waveforms, labels, batch_size=32, shuffle=False, seed=0, augment=None):
    """Batched `(float32 [batch, samples], int32 labels)` dataset from clips
    of equal length (see `prepare_waveforms`).

    Args:
        augment: `None`/`False` (none), `True` (`AudioAugmentation(seed=seed)`:
            +-100 ms shift, noise at 5-20 dB SNR, +-6 dB gain) or an
            `AudioAugmentation` with your settings.

    Example:
    >>> ds = make_audio_dataset(np.zeros((4, 16000), "float32"), [0, 1, 0, 1], batch_size=2, augment=True)
    >>> [tuple(x.shape) for x, _ in ds]
    [(2, 16000), (2, 16000)]
    """
    if augment is None or augment is False:
        layers = None
    elif augment is True:
        layers = [AudioAugmentation(seed=seed)]
    elif isinstance(augment, AudioAugmentation):
        layers = [augment]
    else:
        raise ConfigError(
            f"augment for audio must be None, False, True or an AudioAugmentation(...); got {augment!r}."
        )
    waveforms = np.asarray(waveforms, dtype="float32")
    if waveforms.ndim != 2:
        raise DataError(f"Clips must be a 2-D array [N, samples]; got shape {waveforms.shape}.")
    return make_dataset(waveforms, labels, batch_size, shuffle, seed, augment=layers)
