"""Waveforms at the model's rate: band-limited resampling and centred
fixed-length clips, in TensorFlow ops (the same in training and inside an
exported SavedModel).

- `resample` is band-limited: the Kaiser-windowed sinc (beta 5, 10 zero
  crossings) polyphase filter of `scipy.signal.resample_poly`, computed
  exactly that way, so both agree to float32 rounding.
- `fit_clip` centres: a longer waveform is cropped around its middle, a
  shorter one zero-padded equally on both sides (the extra sample, if any,
  at the end). Keyword recordings usually hold the word near the middle.

TensorFlow is imported inside the functions: recognising audio data must not
pay its start-up.
"""

import functools

import numpy as np

from keras_tl.data.numpy_inputs import KAISER_BETA as _KAISER_BETA
from keras_tl.data.numpy_inputs import RESAMPLE_BLOCK as _RESAMPLE_BLOCK
from keras_tl.data.numpy_inputs import SAMPLE_RATE
from keras_tl.data.numpy_inputs import ZERO_CROSSINGS as _ZERO_CROSSINGS

ERROR_TAG = "WAV: "  # starts the messages of keras_tl's asserts in the traced graphs


def resample(waveform, rate_in, rate_out=SAMPLE_RATE):
    """Resamples along the last axis from `rate_in` to `rate_out` Hz,
    band-limited (the same filter as `scipy.signal.resample_poly`); output
    length `ceil(n * rate_out / rate_in)`. TensorFlow ops; rates may be
    tensors.

    Example:
    >>> y = resample(np.ones(441, "float32"), 44100, 16000)
    >>> y.shape[-1], round(float(y[80]), 2)
    (160, 1.0)
    """
    import tensorflow as tf
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    rows = tf.reshape(waveform, [-1, tf.shape(waveform)[-1]])  # one traced graph for any rank
    out = _resample_function()(rows, tf.cast(rate_in, tf.int64), tf.cast(rate_out, tf.int64))
    return tf.reshape(out, tf.concat([tf.shape(waveform)[:-1], [-1]], axis=0))


def _resample_graph(waveform, rate_in, rate_out):
    import tensorflow as tf
    with tf.control_dependencies([
        tf.debugging.Assert(tf.logical_and(rate_in > 0, rate_out > 0), [ERROR_TAG + "sample rate 0"])
    ]):
        divisor = _gcd(rate_in, rate_out)
    up, down = rate_out // divisor, rate_in // divisor
    return tf.cond(
        tf.equal(up, down),
        lambda: tf.identity(waveform),
        lambda: _polyphase(waveform, up, down),
    )


@functools.lru_cache(maxsize=None)
def _resample_function():
    """`_resample_graph` traced once per process."""
    import tensorflow as tf

    return tf.function(_resample_graph, input_signature=[
        tf.TensorSpec([None, None], tf.float32),
        tf.TensorSpec([], tf.int64),
        tf.TensorSpec([], tf.int64),
    ])


def _gcd(a, b):
    import tensorflow as tf
    a, b = tf.while_loop(lambda a, b: b > 0, lambda a, b: (b, a % b), (a, b))
    return a


def _polyphase(x, up, down):
    """y[m] = sum_k x[k] h[m*down - k*up + half] along the last axis of x
    `[rows, n]`, h the Kaiser-windowed sinc with cutoff 1/max(up, down) at
    the upsampled rate, scaled to gain `up`."""
    import tensorflow as tf
    half = _ZERO_CROSSINGS * tf.maximum(up, down)
    taps = tf.range(-half, half + 1)
    cutoff = 1.0 / tf.cast(tf.maximum(up, down), tf.float64)
    t = tf.cast(taps, tf.float64)
    centre = tf.equal(taps, 0)
    angle = tf.where(centre, tf.ones_like(t), np.pi * cutoff * t)
    sinc = tf.where(centre, tf.ones_like(t), tf.sin(angle) / angle)
    ratio = t / tf.cast(half, tf.float64)
    window = tf.math.special.bessel_i0(_KAISER_BETA * tf.sqrt(tf.maximum(1.0 - ratio * ratio, 0.0)))
    h = sinc * window
    h = tf.cast(h / tf.reduce_sum(h) * tf.cast(up, tf.float64), tf.float32)

    n_in = tf.cast(tf.shape(x)[-1], tf.int64)
    n_out = (n_in * up + down - 1) // down
    n_taps = (2 * half) // up + 1
    blocks = (n_out + _RESAMPLE_BLOCK - 1) // _RESAMPLE_BLOCK
    def block(start):
        m = start + tf.range(_RESAMPLE_BLOCK, dtype=tf.int64)[:, None]
        first = -((half - m * down) // up)  # ceil((m*down - half) / up)
        k = first + tf.range(n_taps)[None, :]
        j = m * down - k * up + half
        inside = (k >= 0) & (k < n_in) & (j >= 0) & (j <= 2 * half)
        weights = tf.where(inside, tf.gather(h, tf.clip_by_value(j, 0, 2 * half)), 0.0)
        values = tf.gather(x, tf.clip_by_value(k, 0, tf.maximum(n_in - 1, 0)), axis=1)
        return tf.reduce_sum(values * weights, axis=-1)

    starts = tf.range(blocks, dtype=tf.int64) * _RESAMPLE_BLOCK
    out = tf.map_fn(block, starts, fn_output_signature=tf.float32)  # [blocks, rows, BLOCK]
    out = tf.reshape(tf.transpose(out, [1, 0, 2]), [tf.shape(x)[0], -1])
    return out[:, :n_out]


def fit_clip(waveform, samples):
    """Makes the last axis exactly `samples` long: a longer waveform is
    cropped around its centre, a shorter one zero-padded equally on both
    sides (any odd sample goes at the end). TensorFlow ops.

    Example:
    >>> fit_clip(np.array([1.0, 2.0, 3.0, 4.0, 5.0], "float32"), 3).numpy().tolist()
    [2.0, 3.0, 4.0]
    >>> fit_clip(np.array([1.0, 2.0], "float32"), 5).numpy().tolist()
    [0.0, 1.0, 2.0, 0.0, 0.0]
    """
    import tensorflow as tf
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    length = tf.shape(waveform)[-1]
    start = tf.maximum(length - samples, 0) // 2
    cropped = waveform[..., start:start + samples]
    missing = samples - tf.shape(cropped)[-1]
    before = missing // 2
    rank = len(waveform.shape)
    paddings = [[0, 0]] * (rank - 1) + [[before, missing - before]]
    out = tf.pad(cropped, paddings)
    return tf.ensure_shape(out, waveform.shape[:-1] + [samples])
