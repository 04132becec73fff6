"""Audio augmentation for `tf.data`: time shift, background noise and gain
on batches of clips (TensorFlow ops, imported inside the methods)."""

import numpy as np

from keras_tl.data.audio.clips import SAMPLE_RATE
from keras_tl.errors import ConfigError


class AudioAugmentation:
    """Random time shift, background noise and gain for batches of clips
    `[batch, samples]` inside `tf.data` (TensorFlow ops, any Keras backend).

    Per clip: a shift of up to `shift_ms` either way (zeros fill in),
    synthetic noise (white, pink or brown, chosen at random) mixed at an SNR
    drawn from `snr_db`, then a gain drawn from +-`gain_db`; the result is
    clipped to the int16 range. `noise`, an array `[K, n]` of background
    recordings (16 kHz, int16 scale, n >= clip samples), replaces the
    synthetic noise. Seeded: the same seed gives the same draws, each epoch
    new ones (a parallel `tf.data` map may hand them to batches in another
    order).

    Example:
    >>> import tensorflow as tf
    >>> augment = AudioAugmentation(seed=0)
    >>> out = augment(tf.fill([2, 16000], 1000.0))
    >>> tuple(out.shape), bool(tf.reduce_any(out != 1000.0))
    ((2, 16000), True)
    """

    def __init__(self, shift_ms=100, snr_db=(5.0, 20.0), gain_db=6.0, noise=None,
                 seed=0, sample_rate=SAMPLE_RATE):
        import tensorflow as tf
        low, high = snr_db
        if shift_ms < 0 or gain_db < 0 or low > high:
            raise ConfigError(
                f"AudioAugmentation needs shift_ms >= 0, gain_db >= 0 and snr_db as (low, high); "
                f"got shift_ms={shift_ms}, snr_db={snr_db}, gain_db={gain_db}."
            )
        self.max_shift = int(round(shift_ms * sample_rate / 1000))
        self.snr_db = (float(low), float(high))
        self.gain_db = float(gain_db)
        self.noise = None if noise is None else tf.constant(np.asarray(noise, "float32"))
        if self.noise is not None and len(self.noise.shape) != 2:
            raise ConfigError(f"noise must be an array [clips, samples]; got shape {tuple(self.noise.shape)}.")
        self._rng = tf.random.Generator.from_seed(int(seed))

    def __call__(self, waveforms, training=True):
        if not training:
            return waveforms
        import tensorflow as tf
        x = tf.convert_to_tensor(waveforms, tf.float32)
        batch, samples = tf.shape(x)[0], tf.shape(x)[1]
        x = self._shift(x, batch, samples)
        noise = self._noise(batch, samples)
        snr = self._rng.uniform([batch, 1], self.snr_db[0], self.snr_db[1])
        signal_rms = tf.sqrt(tf.reduce_mean(tf.square(x), axis=1, keepdims=True))
        x = x + noise * signal_rms * tf.pow(10.0, -snr / 20.0)
        gain = self._rng.uniform([batch, 1], -self.gain_db, self.gain_db)
        return tf.clip_by_value(x * tf.pow(10.0, gain / 20.0), -32768.0, 32767.0)

    def _shift(self, x, batch, samples):
        import tensorflow as tf
        if self.max_shift == 0:
            return x
        shift = self._rng.uniform([batch, 1], -self.max_shift, self.max_shift + 1, dtype=tf.int32)
        source = tf.range(samples)[None, :] - shift
        inside = (source >= 0) & (source < samples)
        moved = tf.gather(x, tf.clip_by_value(source, 0, samples - 1), batch_dims=1)
        return tf.where(inside, moved, 0.0)

    def _noise(self, batch, samples):
        """Unit-RMS noise `[batch, samples]`."""
        import tensorflow as tf
        if self.noise is not None:
            pick = self._rng.uniform([batch], 0, tf.shape(self.noise)[0], dtype=tf.int32)
            room = tf.maximum(tf.shape(self.noise)[1] - samples, 0)
            start = self._rng.uniform([batch], 0, room + 1, dtype=tf.int32)
            index = start[:, None] + tf.range(samples)[None, :]
            noise = tf.gather(tf.gather(self.noise, pick), index, batch_dims=1)
        else:
            white = self._rng.normal([batch, samples])
            spectrum = tf.signal.rfft(white)
            freqs = tf.cast(tf.range(tf.shape(spectrum)[1]), tf.float32)
            colour = tf.cast(self._rng.uniform([batch, 1], 0, 3, dtype=tf.int32), tf.float32)
            # power falls as 1/f^colour: 0 white, 1 pink, 2 brown
            scale = tf.pow(tf.maximum(freqs, 1.0)[None, :], -colour / 2.0)
            noise = tf.signal.irfft(spectrum * tf.cast(scale, tf.complex64), [samples])
        rms = tf.sqrt(tf.reduce_mean(tf.square(noise), axis=1, keepdims=True))
        return noise / tf.maximum(rms, 1e-6)
