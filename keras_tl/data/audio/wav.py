"""WAV files: decoding RIFF/WAVE bytes in TensorFlow ops, so the same
functions read training files here and WAV bytes inside an exported
SavedModel (`serving_wav_fn`): one path for both.

`decode_wav` reads 8-bit unsigned, 16/24/32-bit PCM and 32/64-bit float,
plain or WAVE_FORMAT_EXTENSIBLE, any channel count (mixed to mono by
averaging). A data chunk longer than the file (streamed or cut WAVs) is read
up to the end of the file. TensorFlow is imported inside the functions:
recognising audio data must not pay its start-up.
"""

import functools
import os

from keras_tl.data.audio.clips import ERROR_TAG, SAMPLE_RATE, fit_clip, resample
from keras_tl.errors import DataError, DataNotFoundError

WAV_EXTENSIONS = (".wav", ".wave")
# audio files keras_tl sees but cannot read: named in errors, not skipped silently
OTHER_AUDIO_EXTENSIONS = (".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aif", ".aiff")


def decode_wav(contents):
    """Decodes WAV bytes to `(waveform, sample_rate)`: float32 mono `[n]` on
    the int16 scale and an int32 scalar, both TensorFlow tensors.

    Works eagerly and inside `tf.function`/SavedModel signatures; a file that
    is not a readable WAV raises `tf.errors.InvalidArgumentError` (`read_wav`
    turns it into a `DataError` naming the file).

    Example:
    >>> import io, wave
    >>> buffer = io.BytesIO()
    >>> with wave.open(buffer, "wb") as w:
    ...     w.setnchannels(2); w.setsampwidth(2); w.setframerate(8000)
    ...     w.writeframes(np.array([[100, 300], [-50, -150]], "<i2").tobytes())
    >>> waveform, rate = decode_wav(buffer.getvalue())
    >>> waveform.numpy().tolist(), int(rate)
    ([200.0, -100.0], 8000)
    """
    import tensorflow as tf
    return _decode_function()(tf.convert_to_tensor(contents, tf.string))


def _decode_graph(contents):
    import tensorflow as tf
    size = tf.cast(tf.strings.length(contents), tf.int64)

    def check(condition, message):
        return tf.debugging.Assert(condition, [ERROR_TAG + message])

    with tf.control_dependencies([
        check(size >= 12, "file too short to be a WAV file"),
    ]):
        header = tf.strings.substr(contents, 0, 12)
    riff = tf.logical_and(
        tf.equal(tf.strings.substr(header, 0, 4), "RIFF"),
        tf.equal(tf.strings.substr(header, 8, 4), "WAVE"),
    )
    with tf.control_dependencies([check(riff, "not a RIFF/WAVE file")]):
        fmt_pos, fmt_len, data_pos, data_len = _find_chunks(contents, size)
    with tf.control_dependencies([
        check(fmt_pos >= 0, "no fmt chunk"),
        check(data_pos >= 0, "no data chunk"),
        check(tf.logical_or(fmt_pos < 0, fmt_pos + 16 <= size), "fmt chunk cut short"),
    ]):
        fmt_pos = tf.maximum(fmt_pos, 0)
        data_pos = tf.maximum(data_pos, 0)
    code = _uint(contents, fmt_pos, 2)
    channels = _uint(contents, fmt_pos + 2, 2)
    rate = _uint(contents, fmt_pos + 4, 4)
    block_align = _uint(contents, fmt_pos + 12, 2)
    extensible = tf.logical_and(tf.equal(code, 0xFFFE), fmt_len >= 26)
    code = tf.where(extensible, _uint(contents, tf.minimum(fmt_pos + 24, size - 2), 2), code)
    width = tf.math.floordiv(block_align, tf.maximum(channels, 1))
    pcm, floating = tf.equal(code, 1), tf.equal(code, 3)
    # branch: 0 uint8, 1 int16, 2 int24, 3 int32, 4 float32, 5 float64, -1 unsupported
    branch = tf.cast(tf.where(pcm, width - 1, tf.where(floating, width // 4 + 3, -1)), tf.int32)
    valid_width = tf.logical_or(
        tf.logical_and(pcm, tf.logical_and(width >= 1, width <= 4)),
        tf.logical_and(floating, tf.logical_or(tf.equal(width, 4), tf.equal(width, 8))),
    )
    with tf.control_dependencies([
        check(channels >= 1, "zero channels"),
        check(rate >= 1, "sample rate 0"),
        check(tf.equal(block_align, width * channels), "block size is not channels x sample size"),
        check(valid_width,
              "unsupported encoding (readable: 8-bit unsigned, 16/24/32-bit PCM, 32/64-bit float)"),
    ]):
        data_len = tf.minimum(data_len, size - data_pos)  # streamed or cut files
        frames = tf.math.floordiv(data_len, tf.maximum(block_align, 1))
        raw = tf.strings.substr(contents, data_pos, frames * block_align)
    samples = tf.switch_case(tf.maximum(branch, 0), [
        lambda: (tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.float32) - 128.0) * 256.0,
        lambda: tf.cast(tf.io.decode_raw(raw, tf.int16, little_endian=True), tf.float32),
        lambda: _int24(raw),
        lambda: tf.cast(tf.io.decode_raw(raw, tf.int32, little_endian=True), tf.float32) / 65536.0,
        lambda: tf.io.decode_raw(raw, tf.float32, little_endian=True) * 32768.0,
        lambda: tf.cast(tf.io.decode_raw(raw, tf.float64, little_endian=True) * 32768.0, tf.float32),
    ])
    samples = tf.reshape(samples, [-1, tf.cast(channels, tf.int32)])
    waveform = tf.reduce_mean(samples, axis=1)
    return waveform, tf.cast(rate, tf.int32)


def _uint(contents, pos, length):
    """Little-endian unsigned integer of `length` bytes at `pos`, as int64."""
    import tensorflow as tf
    raw = tf.io.decode_raw(tf.strings.substr(contents, pos, length), tf.uint8)
    raw = tf.cast(raw, tf.int64)
    value = tf.zeros([], tf.int64)
    for i in range(length):
        value += tf.bitwise.left_shift(raw[i], 8 * i)
    return value


def _int24(raw):
    import tensorflow as tf
    b = tf.reshape(tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.int32), [-1, 3])
    value = b[:, 0] + b[:, 1] * 256 + b[:, 2] * 65536
    value = tf.where(value >= 1 << 23, value - (1 << 24), value)
    return tf.cast(value, tf.float32) / 256.0


def _find_chunks(contents, size):
    """Walks the RIFF chunks: `(fmt offset, fmt length, data offset, data
    length)`, offsets of the chunk bodies, -1 when not found."""
    import tensorflow as tf
    minus_one = tf.constant(-1, tf.int64)

    def more(pos, fmt_pos, fmt_len, data_pos, data_len):
        missing = tf.logical_or(fmt_pos < 0, data_pos < 0)
        return tf.logical_and(pos + 8 <= size, missing)

    def step(pos, fmt_pos, fmt_len, data_pos, data_len):
        chunk = tf.strings.substr(contents, pos, 4)
        length = _uint(contents, pos + 4, 4)
        is_fmt = tf.logical_and(tf.equal(chunk, "fmt "), fmt_pos < 0)
        is_data = tf.logical_and(tf.equal(chunk, "data"), data_pos < 0)
        return (
            pos + 8 + length + length % 2,  # chunks are padded to even sizes
            tf.where(is_fmt, pos + 8, fmt_pos),
            tf.where(is_fmt, length, fmt_len),
            tf.where(is_data, pos + 8, data_pos),
            tf.where(is_data, length, data_len),
        )

    start = (tf.constant(12, tf.int64), minus_one, minus_one, minus_one, minus_one)
    _, fmt_pos, fmt_len, data_pos, data_len = tf.while_loop(more, step, start)
    return fmt_pos, fmt_len, data_pos, data_len


def wav_to_clip(contents, samples, sample_rate=SAMPLE_RATE):
    """WAV bytes to a float32 clip `[samples]` at `sample_rate`: decode, mix
    to mono, resample, fit (`decode_wav`, `resample`, `fit_clip`).

    Example:
    >>> import io, wave
    >>> buffer = io.BytesIO()
    >>> with wave.open(buffer, "wb") as w:
    ...     w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
    ...     w.writeframes(np.full(8000, 1000, "<i2").tobytes())
    >>> clip = wav_to_clip(buffer.getvalue(), 16000)
    >>> clip.shape, float(clip[0]), float(clip[8000])
    (TensorShape([16000]), 0.0, 1000.0)
    """
    waveform, rate = decode_wav(contents)
    return fit_clip(resample(waveform, rate, sample_rate), samples)


def serving_wav_fn(clip_samples, sample_rate=SAMPLE_RATE):
    """A `tf.function` from a `[batch]` string tensor of WAV files to
    float32 clips `[batch, clip_samples]`: the serving signature's input
    stage. Uses TensorFlow only, so it runs in TF Serving.

    Example:
    >>> import io, wave
    >>> buffer = io.BytesIO()
    >>> with wave.open(buffer, "wb") as w:
    ...     w.setnchannels(1); w.setsampwidth(1); w.setframerate(8000)
    ...     w.writeframes(bytes([128, 160] * 2000))
    >>> import tensorflow as tf
    >>> clips = serving_wav_fn(16000)(tf.constant([buffer.getvalue()] * 2))
    >>> tuple(clips.shape)
    (2, 16000)
    """
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def wav_batch_to_clips(wav_bytes):
        return tf.map_fn(
            lambda contents: wav_to_clip(contents, clip_samples, sample_rate),
            wav_bytes,
            fn_output_signature=tf.TensorSpec([clip_samples], tf.float32),
        )

    return wav_batch_to_clips


@functools.lru_cache(maxsize=None)
def _decode_function():
    """`_decode_graph` traced once per process."""
    import tensorflow as tf

    return tf.function(_decode_graph, input_signature=[tf.TensorSpec([], tf.string)])


def read_wav(path, clip_samples=None, sample_rate=SAMPLE_RATE):
    """Reads a WAV file as a float32 NumPy waveform at `sample_rate`
    (int16 scale), fitted to `clip_samples` when given.

    Raises `DataError` naming the file when it is not a readable WAV.

    Example:
    >>> read_wav("yes/001.wav", 16000).shape  # doctest: +SKIP
    (16000,)
    """
    waveform, reason = read_wav_or_reason(path, clip_samples, sample_rate)
    if reason is not None:
        raise unreadable_wavs_error([(os.fspath(path), reason)])
    return waveform


def read_wav_or_reason(path, clip_samples=None, sample_rate=SAMPLE_RATE):
    """`(waveform, None)` as `read_wav` reads it, or `(None, reason)` for a
    file that is not a readable WAV, so that a folder's bad files can be
    named at once (`unreadable_wavs_error`).

    Example:
    >>> _ = (tmp_path / "noise.wav").write_bytes(b"not audio at all")
    >>> read_wav_or_reason(tmp_path / "noise.wav")
    (None, 'not a RIFF/WAVE file')
    """
    import tensorflow as tf

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataNotFoundError(f"Audio file not found: {path}")
    with open(path, "rb") as f:
        contents = f.read()
    try:
        waveform, rate = decode_wav(contents)
        waveform = resample(waveform, rate, sample_rate)
        if clip_samples is not None:
            waveform = fit_clip(waveform, clip_samples)
        return waveform.numpy(), None
    except tf.errors.InvalidArgumentError as error:
        return None, _reason(error)


def unreadable_wavs_error(failures):
    """The `DataError` for files that are not readable WAVs, `failures` as
    `[(path, reason)]`: one file is named with its reason, several are
    listed in one line.

    Example:
    >>> str(unreadable_wavs_error([("a.wav", "no data chunk"), ("b.mp3", "not a RIFF/WAVE file")]))[:70]
    '2 files cannot be read as WAV: a.wav (no data chunk), b.mp3 (not a RIF'
    """
    from keras_tl.data.folders import unreadable_files_error

    hint = ""
    if any(path.lower().endswith(OTHER_AUDIO_EXTENSIONS) for path, _ in failures):
        hint = " keras_tl reads WAV only: convert it, e.g. `ffmpeg -i in.mp3 out.wav`."
    return unreadable_files_error(failures, "WAV file", "WAV", hint)


def _reason(error):
    message = str(getattr(error, "message", error))
    if ERROR_TAG in message:
        reason = message.split(ERROR_TAG, 1)[1]
        for end in ("]", "\n"):
            reason = reason.split(end, 1)[0]
        return reason.strip()
    return message.strip().splitlines()[0] if message.strip() else "unreadable"
