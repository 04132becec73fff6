"""Audio data: WAV decoding, resampling to 16 kHz, fixed-length clips,
folders, arrays, `tf.data` and augmentation.

Waveforms are float32 at 16 kHz on the int16 scale (-32768..32767), the
speech encoder's input (`keras_tl.backbones.speech_embedding`). Decoding,
resampling and clip fitting are TensorFlow ops, so the same functions read
training files here and WAV bytes inside an exported SavedModel
(`serving_wav_fn`): one path for both.

- `decode_wav` reads RIFF/WAVE files: 8-bit unsigned, 16/24/32-bit PCM and
  32/64-bit float, plain or WAVE_FORMAT_EXTENSIBLE, any channel count (mixed
  to mono by averaging). A data chunk longer than the file (streamed or cut
  WAVs) is read up to the end of the file.
- `resample` is band-limited: the Kaiser-windowed sinc (beta 5, 10 zero
  crossings) polyphase filter of `scipy.signal.resample_poly`, computed
  exactly that way, so both agree to float32 rounding.
- `fit_clip` centres: a longer waveform is cropped around its middle, a
  shorter one zero-padded equally on both sides (the extra sample, if any,
  at the end). Keyword recordings usually hold the word near the middle.
"""

import logging
import os

import numpy as np

from keras_tl.data.pipeline import make_dataset
from keras_tl.data.splits import check_labels
from keras_tl.errors import ConfigError, DataError, DataNotFoundError

SAMPLE_RATE = 16000
WAV_EXTENSIONS = (".wav", ".wave")
# audio files keras_tl sees but cannot read: named in errors, not skipped silently
OTHER_AUDIO_EXTENSIONS = (".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aif", ".aiff")
_IMAGE_OR_TEXT = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".txt")
_KAISER_BETA = 5.0  # scipy.signal.resample_poly's default window
_ZERO_CROSSINGS = 10  # per side, in units of the lower of the two rates
_RESAMPLE_BLOCK = 8192  # output samples computed at once (bounds memory on long files)
_ERROR_TAG = "WAV: "
logger = logging.getLogger("keras_tl")


def _tf():
    import tensorflow as tf

    return tf


# ---------------------------------------------------------------- decoding


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
    tf = _tf()
    return _functions()["decode"](tf.convert_to_tensor(contents, tf.string))


def _decode_graph(contents):
    tf = _tf()
    size = tf.cast(tf.strings.length(contents), tf.int64)

    def check(condition, message):
        return tf.debugging.Assert(condition, [_ERROR_TAG + message])

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
    tf = _tf()
    raw = tf.io.decode_raw(tf.strings.substr(contents, pos, length), tf.uint8)
    raw = tf.cast(raw, tf.int64)
    value = tf.zeros([], tf.int64)
    for i in range(length):
        value += tf.bitwise.left_shift(raw[i], 8 * i)
    return value


def _int24(raw):
    tf = _tf()
    b = tf.reshape(tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.int32), [-1, 3])
    value = b[:, 0] + b[:, 1] * 256 + b[:, 2] * 65536
    value = tf.where(value >= 1 << 23, value - (1 << 24), value)
    return tf.cast(value, tf.float32) / 256.0


def _find_chunks(contents, size):
    """Walks the RIFF chunks: `(fmt offset, fmt length, data offset, data
    length)`, offsets of the chunk bodies, -1 when not found."""
    tf = _tf()
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


# -------------------------------------------------------------- resampling


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
    tf = _tf()
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    rows = tf.reshape(waveform, [-1, tf.shape(waveform)[-1]])  # one traced graph for any rank
    out = _functions()["resample"](rows, tf.cast(rate_in, tf.int64), tf.cast(rate_out, tf.int64))
    return tf.reshape(out, tf.concat([tf.shape(waveform)[:-1], [-1]], axis=0))


def _resample_graph(waveform, rate_in, rate_out):
    tf = _tf()
    with tf.control_dependencies([
        tf.debugging.Assert(tf.logical_and(rate_in > 0, rate_out > 0), [_ERROR_TAG + "sample rate 0"])
    ]):
        divisor = _gcd(rate_in, rate_out)
    up, down = rate_out // divisor, rate_in // divisor
    return tf.cond(
        tf.equal(up, down),
        lambda: tf.identity(waveform),
        lambda: _polyphase(waveform, up, down),
    )


def _gcd(a, b):
    tf = _tf()
    a, b = tf.while_loop(lambda a, b: b > 0, lambda a, b: (b, a % b), (a, b))
    return a


def _polyphase(x, up, down):
    """y[m] = sum_k x[k] h[m*down - k*up + half] along the last axis of x
    `[rows, n]`, h the Kaiser-windowed sinc with cutoff 1/max(up, down) at
    the upsampled rate, scaled to gain `up`."""
    tf = _tf()
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


# ------------------------------------------------------------------ clips


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
    tf = _tf()
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
    tf = _tf()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def wav_batch_to_clips(wav_bytes):
        return tf.map_fn(
            lambda contents: wav_to_clip(contents, clip_samples, sample_rate),
            wav_bytes,
            fn_output_signature=tf.TensorSpec([clip_samples], tf.float32),
        )

    return wav_batch_to_clips


_FUNCTIONS = {}


def _functions():
    """The traced decode and resample functions, built once per process."""
    if not _FUNCTIONS:
        tf = _tf()
        _FUNCTIONS["decode"] = tf.function(
            _decode_graph, input_signature=[tf.TensorSpec([], tf.string)]
        )
        _FUNCTIONS["resample"] = tf.function(_resample_graph, input_signature=[
            tf.TensorSpec([None, None], tf.float32),
            tf.TensorSpec([], tf.int64),
            tf.TensorSpec([], tf.int64),
        ])
    return _FUNCTIONS


# ------------------------------------------------------------------ files


def read_wav(path, clip_samples=None, sample_rate=SAMPLE_RATE):
    """Reads a WAV file as a float32 NumPy waveform at `sample_rate`
    (int16 scale), fitted to `clip_samples` when given.

    Raises `DataError` naming the file when it is not a readable WAV.

    Example:
    >>> read_wav("yes/001.wav", 16000).shape  # doctest: +SKIP
    (16000,)
    """
    tf = _tf()
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
        return waveform.numpy()
    except tf.errors.InvalidArgumentError as error:
        reason = _reason(error)
        hint = ""
        if path.lower().endswith(OTHER_AUDIO_EXTENSIONS):
            hint = " keras_tl reads WAV only: convert it, e.g. `ffmpeg -i in.mp3 out.wav`."
        raise DataError(
            f"Cannot read WAV file {path}: {reason}.{hint} Remove or replace the file; when "
            "training, skip_corrupt=True (--skip-corrupt) skips unreadable files with a warning."
        ) from None


def _reason(error):
    message = str(getattr(error, "message", error))
    if _ERROR_TAG in message:
        reason = message.split(_ERROR_TAG, 1)[1]
        for end in ("]", "\n"):
            reason = reason.split(end, 1)[0]
        return reason.strip()
    return message.strip().splitlines()[0] if message.strip() else "unreadable"


def load_audio_folder(path, clip_samples, skip_corrupt=False, sample_rate=SAMPLE_RATE):
    """Reads a folder with one sub-folder of WAV files per class.

    Returns `(waveforms, labels, class_names)`: float32 `[N, clip_samples]`
    at 16 kHz (int16 scale), int32 `[N]`, and the sorted sub-folder names.
    Files of other audio formats (.mp3, .flac...) count as unreadable.

    Args:
        path: the data folder.
        clip_samples: samples per clip (`fit_clip` centres).
        skip_corrupt: skip unreadable files with a warning instead of raising.

    Example:
    >>> x, y, names = load_audio_folder("keywords/", 16000)  # doctest: +SKIP
    """
    from keras_tl.data.folders import read_class_folders

    # other audio formats count as files, so they are named as unreadable, not ignored
    return read_class_folders(path, lambda file: read_wav(file, clip_samples, sample_rate),
                              WAV_EXTENSIONS + OTHER_AUDIO_EXTENSIONS, "WAV files",
                              os.path.join("yes", "001.wav"), skip_corrupt)


# ----------------------------------------------------------------- arrays


def prepare_waveforms(waveforms, clip_samples, sample_rate=SAMPLE_RATE):
    """Any batch of audio as the model takes it: float32 `[N, clip_samples]`
    at 16 kHz on the int16 scale.

    `waveforms` may be a 2-D array `[N, samples]`, a list of 1-D arrays of
    any lengths (all at `sample_rate`), or a list of WAV file paths (each at
    its own rate). Values all within [-1, 1] log a warning: float audio must
    be multiplied by 32768 first.

    Example:
    >>> prepare_waveforms([np.ones(8000), np.ones(20000)], 16000).shape
    (2, 16000)
    """
    if isinstance(waveforms, (list, tuple)) and waveforms and isinstance(waveforms[0], (str, os.PathLike)):
        return np.stack([read_wav(p, clip_samples) for p in waveforms])
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
    tf = _tf()
    lengths = {r.shape[0] for r in rows}
    if len(lengths) == 1:  # one batch through the TF ops
        batch = resample(np.stack(rows), sample_rate, SAMPLE_RATE)
        return fit_clip(batch, clip_samples).numpy()
    out = [fit_clip(resample(r, sample_rate, SAMPLE_RATE), clip_samples) for r in rows]
    return tf.stack(out).numpy()


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
        return os.path.isdir(path) and _folder_has_wav(path)
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


def _folder_has_wav(path):
    wav = other = 0
    for entry in sorted(os.listdir(path)):
        sub = os.path.join(path, entry)
        if os.path.isdir(sub) and not entry.startswith("."):
            for name in os.listdir(sub):
                lower = name.lower()
                wav += lower.endswith(WAV_EXTENSIONS)
                other += lower.endswith(_IMAGE_OR_TEXT)
    return wav > 0 and wav >= other


# ------------------------------------------------------------ augmentation


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
        tf = _tf()
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
        tf = _tf()
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
        tf = _tf()
        if self.max_shift == 0:
            return x
        shift = self._rng.uniform([batch, 1], -self.max_shift, self.max_shift + 1, dtype=tf.int32)
        source = tf.range(samples)[None, :] - shift
        inside = (source >= 0) & (source < samples)
        moved = tf.gather(x, tf.clip_by_value(source, 0, samples - 1), batch_dims=1)
        return tf.where(inside, moved, 0.0)

    def _noise(self, batch, samples):
        """Unit-RMS noise `[batch, samples]`."""
        tf = _tf()
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
