"""Prediction inputs read without TensorFlow: the NumPy twins of the
TensorFlow ops that read training files and run inside the SavedModel.

`keras-tl predict` on an ONNX or LiteRT file, and any prediction on files or
arrays, reads its inputs here, so it needs neither TensorFlow nor Keras:

- images: Pillow decodes (upright per EXIF, alpha dropped, grayscale made
  RGB, 16-bit grayscale scaled by `round(v / 257)`), `resize_image` resizes
  exactly as `keras_tl.data.image_decoding.resize_image` does
  (`tf.image.resize(method="bilinear", antialias=True)` in float32, the
  same weights and summation order, rounded to uint8). The few files Pillow
  decodes otherwise than TensorFlow (16-bit colour PNGs, CMYK JPEGs) are
  read by the TensorFlow ops.
- WAV files: `decode_wav`, `resample` and `fit_clip` compute what
  `keras_tl.data.audio` computes in TensorFlow ops (the same encodings, the
  same messages for unreadable files, the same polyphase filter).

The tests compare both paths pixel for pixel and sample for sample.

Example:
>>> import io
>>> from PIL import Image
>>> buffer = io.BytesIO()
>>> Image.new("RGB", (40, 30), (200, 0, 0)).save(buffer, format="PNG")
>>> image = read_image(buffer.getvalue(), (15, 20))
>>> image.shape, image[0, 0].tolist()
((15, 20, 3), [200, 0, 0])
"""

import contextlib
import io
import os
import struct

import numpy as np

from keras_tl.errors import DataError, DataNotFoundError

# PIL.Image.MAX_IMAGE_PIXELS: PIL warns above it and refuses twice as much;
# keras_tl refuses anything above it (here, and in image_decoding's graphs).
MAX_IMAGE_PIXELS = 89_478_485
# The resampling filter of keras_tl.data.audio.clips (which imports these).
SAMPLE_RATE = 16000
KAISER_BETA = 5.0  # scipy.signal.resample_poly's default window
ZERO_CROSSINGS = 10  # per side, in units of the lower of the two rates
RESAMPLE_BLOCK = 8192  # output samples computed at once (bounds memory on long files)


# -- images -------------------------------------------------------------------
def read_image(source, image_size=None, name=None):
    """An image file (a path, its bytes or a binary file object) as uint8
    RGB `[H, W, 3]`, resized to `(height, width)` when given: the pixels
    `keras_tl.data.images.read_image` gives, without TensorFlow, for every
    file but those `decoded_otherwise_by_pillow` (which
    `keras_tl.data.images.prepare_images` reads with TensorFlow).

    Raises a `DataError` naming the file (`name`, default the path) when it
    is not an image Pillow reads.

    Example:
    >>> read_image(b"not an image", name="notes.txt")
    Traceback (most recent call last):
    ...
    keras_tl.errors.DataError: Cannot read image notes.txt: cannot identify image file. Remove or replace the file; when training, skip_corrupt=True (--skip-corrupt) skips unreadable files with a warning.
    """
    data, name = file_contents(source, name, "Image")
    image = read_with_pil(name, data)
    return image if image_size is None else resize_image(image, image_size)


def file_contents(source, name=None, kind="Image"):
    """`(bytes, name)` of a file given as a path, bytes or a binary file
    object; `name` (for messages) defaults to its path.

    Example:
    >>> file_contents(b"abc")
    (b'abc', '<3 bytes>')
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or f"<{len(source)} bytes>"
    if hasattr(source, "read"):
        return source.read(), name or getattr(source, "name", None) or "<file object>"
    path = os.fspath(source)
    try:
        with open(path, "rb") as f:
            return f.read(), name or path
    except FileNotFoundError as error:
        raise DataNotFoundError(f"{kind} file not found: {path}") from error
    except IsADirectoryError as error:
        raise DataError(f"{path} is a folder, not a file.") from error


def decoded_otherwise_by_pillow(data):
    """Whether Pillow decodes the image `data` otherwise than
    `keras_tl.data.image_decoding`: 16-bit colour PNGs (Pillow keeps the
    high byte, TensorFlow rounds v / 257) and CMYK JPEGs (other colour
    conversions).

    Example:
    >>> decoded_otherwise_by_pillow(b"GIF89a...")
    False
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 25:
        return data[24] == 16 and data[25] in (2, 4, 6)  # bit depth 16, not plain grayscale
    if data[:3] == b"\xff\xd8\xff":
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as image:
                return image.mode == "CMYK"
        except Exception:  # noqa: BLE001  (unreadable: Pillow's own error comes next)
            return False
    return False


def read_with_pil(path, data):
    """Encoded image `data` (of the file `path`, named in errors) decoded by
    PIL as uint8 RGB, upright per EXIF: the formats TensorFlow cannot decode,
    and every image `keras_tl.data.numpy_inputs` reads without TensorFlow.

    Example:
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("L", (3, 2), 7).save(buffer, format="PNG")
    >>> read_with_pil("gray.png", buffer.getvalue()).shape
    (2, 3, 3)
    """
    from PIL import ImageOps

    with opened_with_pil(path, io.BytesIO(data)) as image:
        try:
            image = ImageOps.exif_transpose(image)
            if image.mode.startswith("I;16") or image.mode == "I":
                gray = scale_16_bit(np.clip(np.asarray(image), 0, 65535))
                return np.repeat(gray[..., None], 3, axis=-1)
            return np.asarray(image.convert("RGB"), dtype="uint8")
        except (OSError, SyntaxError) as error:
            raise unreadable_image(path, error) from error


@contextlib.contextmanager
def opened_with_pil(path, file):
    """PIL's lazy open (the header only), refusing an image over
    `MAX_IMAGE_PIXELS` and anything PIL cannot identify with a `DataError`.

    Example:
    >>> with opened_with_pil("notes.txt", io.BytesIO(b"text")):
    ...     pass
    Traceback (most recent call last):
    ...
    keras_tl.errors.DataError: Cannot read image notes.txt: cannot identify image file. Remove or replace the file; when training, skip_corrupt=True (--skip-corrupt) skips unreadable files with a warning.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # PIL warns above the limit and raises above twice it; keras_tl
            # refuses anything above it, before decoding.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(file)
    except UnidentifiedImageError as error:  # its message names the buffer: <_io.BytesIO ...>
        raise unreadable_image(path, "cannot identify image file") from error
    except (Image.DecompressionBombError, OSError, SyntaxError) as error:
        raise unreadable_image(path, error) from error
    with image:
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise unreadable_image(
                path, f"image of {width}x{height} pixels is over the decompression-bomb "
                f"limit of {MAX_IMAGE_PIXELS} pixels (as in PIL); refused before decoding")
        yield image


def unreadable_image(path, reason):
    """The `DataError` for an image file that cannot be read; its `reason`
    attribute lets a folder's bad files be listed at once.

    Example:
    >>> unreadable_image("a.jpg", "truncated").reason
    'truncated'
    """
    from keras_tl.data.folders import unreadable_files_error

    error = unreadable_files_error([(path, reason)], "image", "images")
    error.reason = str(reason)  # a folder's bad files are listed at once, with their reasons
    return error


def scale_16_bit(values):
    """16-bit pixel values to uint8: `round(v / 257)`, as
    `keras_tl.data.image_decoding.scale_16_bit`.

    Example:
    >>> scale_16_bit(np.array([0, 128, 129, 32896, 65535])).tolist()
    [0, 0, 1, 128, 255]
    """
    return ((np.asarray(values, dtype=np.int64) + 128) // 257).astype(np.uint8)


def resize_image(images, image_size):
    """Resizes uint8 `[H, W, C]` or `[N, H, W, C]` images to `(height,
    width)` as `keras_tl.data.image_decoding.resize_image` does: TensorFlow's
    antialiased bilinear `scale_and_translate` (rows, then columns, float32
    sums in its order), rounded half to even back to uint8; an image at the
    size is returned as it is.

    Example:
    >>> resize_image(np.zeros((2, 28, 28, 3), "uint8"), (32, 32)).shape
    (2, 32, 32, 3)
    """
    images = np.asarray(images)
    height, width = (int(v) for v in image_size)
    if images.shape[-3:-1] == (height, width):
        return images
    pixels = images.astype(np.float32)
    pixels = _gather(pixels, pixels.ndim - 3, *_spans(height, pixels.shape[-3]))
    pixels = _gather(pixels, pixels.ndim - 2, *_spans(width, pixels.shape[-2]))
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


def _spans(output_size, input_size):
    """`(starts [out], weights [out, span])` of TensorFlow's triangle kernel
    (scale_and_translate_op.cc's ComputeSpans), in float32."""
    f32 = np.float32
    inv_scale = f32(1.0) / (f32(output_size) / f32(input_size))
    kernel_scale = max(inv_scale, f32(1.0))  # antialiasing widens the kernel when shrinking
    span = min(2 * int(np.ceil(kernel_scale)) + 1, input_size)
    starts = np.zeros(output_size, np.int64)
    weights = np.zeros((output_size, span), np.float32)
    for x in range(output_size):
        sample = f32(f32(x) + f32(0.5)) * inv_scale
        start = min(max(int(np.ceil(sample - kernel_scale - f32(0.5))), 0), input_size - 1)
        end = min(max(int(np.floor(sample + kernel_scale - f32(0.5))), 0), input_size - 1) + 1
        position = (np.arange(start, end, dtype=f32) + f32(0.5) - sample) * (f32(1.0) / kernel_scale)
        kernel = np.maximum(f32(0.0), f32(1.0) - np.abs(position)).astype(f32)
        total = f32(0.0)
        for value in kernel:  # TensorFlow's sequential float sum
            total = f32(total + value)
        if abs(total) >= 1000 * np.finfo(f32).tiny:
            kernel = kernel * (f32(1.0) / total)
        starts[x] = start
        weights[x, :end - start] = kernel
    return starts, weights


def _gather(pixels, axis, starts, weights):
    """`sum_k weights[:, k] * pixels[starts + k]` along `axis`, k in order."""
    size = pixels.shape[axis]
    shape = [1] * pixels.ndim
    shape[axis] = -1
    out = None
    for k in range(weights.shape[1]):
        inside = starts + k < size
        term = np.take(pixels, np.minimum(starts + k, size - 1), axis=axis) * \
            np.where(inside, weights[:, k], np.float32(0.0)).reshape(shape)
        out = term if out is None else out + term
    return out


# -- WAV files ----------------------------------------------------------------
def read_wav_or_reason(source, clip_samples=None):
    """`(waveform, None)` for a WAV file (path, bytes or binary file
    object): float32 mono at 16 kHz on the int16 scale, fitted to
    `clip_samples` when given, what `keras_tl.data.audio.read_wav` gives,
    without TensorFlow; `(None, reason)` for a file that is not a readable
    WAV (`keras_tl.data.audio.unreadable_wavs_error` names them at once).

    Example:
    >>> import wave
    >>> buffer = io.BytesIO()
    >>> with wave.open(buffer, "wb") as w:
    ...     w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
    ...     w.writeframes(np.full(8000, 1000, "<i2").tobytes())
    >>> clip, _ = read_wav_or_reason(buffer.getvalue(), 16000)
    >>> clip.shape, float(clip[0]), float(clip[8000])
    ((16000,), 0.0, 1000.0)
    >>> read_wav_or_reason(b"hello")
    (None, 'file too short to be a WAV file')
    """
    data, _ = file_contents(source, None, "Audio")
    try:
        waveform, rate = decode_wav(data)
    except ValueError as error:
        return None, str(error)
    waveform = resample(waveform, rate)
    return (waveform if clip_samples is None else fit_clip(waveform, clip_samples)), None


def decode_wav(data):
    """WAV bytes to `(float32 mono waveform on the int16 scale, sample
    rate)`, as `keras_tl.data.audio.decode_wav`: 8-bit unsigned, 16/24/32-bit
    PCM, 32/64-bit float, plain or WAVE_FORMAT_EXTENSIBLE, channels
    averaged, a data chunk longer than the file read to its end. A file it
    cannot read raises `ValueError` with the reason.

    Example:
    >>> decode_wav(b"RIFF....WAVEjunk")
    Traceback (most recent call last):
    ...
    ValueError: no fmt chunk
    """
    size = len(data)
    if size < 12:
        raise ValueError("file too short to be a WAV file")
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    fmt_pos = fmt_len = data_pos = data_len = -1
    pos = 12
    while pos + 8 <= size and (fmt_pos < 0 or data_pos < 0):
        chunk, length = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk == b"fmt " and fmt_pos < 0:
            fmt_pos, fmt_len = pos + 8, length
        elif chunk == b"data" and data_pos < 0:
            data_pos, data_len = pos + 8, length
        pos += 8 + length + length % 2  # chunks are padded to even sizes
    if fmt_pos < 0:
        raise ValueError("no fmt chunk")
    if data_pos < 0:
        raise ValueError("no data chunk")
    if fmt_pos + 16 > size:
        raise ValueError("fmt chunk cut short")
    code, channels, rate, _, block_align = struct.unpack_from("<HHIIH", data, fmt_pos)
    if code == 0xFFFE and fmt_len >= 26:
        code = struct.unpack_from("<H", data, min(fmt_pos + 24, size - 2))[0]
    width = block_align // max(channels, 1)
    if channels < 1:
        raise ValueError("zero channels")
    if rate < 1:
        raise ValueError("sample rate 0")
    if block_align != width * channels:
        raise ValueError("block size is not channels x sample size")
    if not ((code == 1 and 1 <= width <= 4) or (code == 3 and width in (4, 8))):
        raise ValueError("unsupported encoding (readable: 8-bit unsigned, 16/24/32-bit PCM, "
                         "32/64-bit float)")
    frames = min(data_len, size - data_pos) // block_align
    raw = data[data_pos:data_pos + frames * block_align]
    if code == 3:
        samples = (np.frombuffer(raw, "<f4") * np.float32(32768.0) if width == 4 else
                   (np.frombuffer(raw, "<f8") * 32768.0).astype(np.float32))
    elif width == 1:
        samples = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) * 256.0
    elif width == 2:
        samples = np.frombuffer(raw, "<i2").astype(np.float32)
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] + b[:, 1] * 256 + b[:, 2] * 65536
        samples = np.where(value >= 1 << 23, value - (1 << 24), value).astype(np.float32) / 256.0
    else:
        samples = np.frombuffer(raw, "<i4").astype(np.float32) / 65536.0
    waveform = samples.astype(np.float32).reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return waveform, int(rate)


def resample(waveform, rate_in, rate_out=SAMPLE_RATE):
    """Resamples a 1-D waveform as `keras_tl.data.audio.resample` does (the
    Kaiser-windowed sinc polyphase filter of `scipy.signal.resample_poly`).

    Example:
    >>> y = resample(np.ones(441, "float32"), 44100, 16000)
    >>> y.shape[-1], round(float(y[80]), 2)
    (160, 1.0)
    """
    x = np.asarray(waveform, np.float32)
    divisor = np.gcd(int(rate_in), int(rate_out))
    up, down = int(rate_out) // divisor, int(rate_in) // divisor
    if up == down:
        return x
    half = ZERO_CROSSINGS * max(up, down)
    t = np.arange(-half, half + 1, dtype=np.float64)
    angle = np.where(t == 0, 1.0, np.pi * t / max(up, down))
    sinc = np.where(t == 0, 1.0, np.sin(angle) / angle)
    window = np.i0(KAISER_BETA * np.sqrt(np.maximum(1.0 - (t / half) ** 2, 0.0)))
    h = sinc * window
    h = (h / h.sum() * up).astype(np.float32)
    n_in = x.shape[-1]
    n_out = (n_in * up + down - 1) // down
    n_taps = (2 * half) // up + 1
    parts = []
    for start in range(0, n_out, RESAMPLE_BLOCK):
        m = np.arange(start, min(start + RESAMPLE_BLOCK, n_out), dtype=np.int64)[:, None]
        k = -((half - m * down) // up) + np.arange(n_taps)[None, :]
        j = m * down - k * up + half
        inside = (k >= 0) & (k < n_in) & (j >= 0) & (j <= 2 * half)
        weights = np.where(inside, h[np.clip(j, 0, 2 * half)], np.float32(0.0))
        values = x[np.clip(k, 0, max(n_in - 1, 0))] if n_in else np.zeros_like(weights)
        parts.append((values * weights).sum(axis=-1, dtype=np.float32))
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def fit_clip(waveform, samples):
    """The last axis made exactly `samples` long, as
    `keras_tl.data.audio.fit_clip`: centre-cropped, or zero-padded equally
    on both sides (the odd sample at the end).

    Example:
    >>> fit_clip(np.array([1.0, 2.0, 3.0, 4.0, 5.0], "float32"), 3).tolist()
    [2.0, 3.0, 4.0]
    >>> fit_clip(np.array([1.0, 2.0], "float32"), 5).tolist()
    [0.0, 1.0, 2.0, 0.0, 0.0]
    """
    waveform = np.asarray(waveform, np.float32)
    start = max(waveform.shape[-1] - samples, 0) // 2
    cropped = waveform[..., start:start + samples]
    missing = samples - cropped.shape[-1]
    pad = [(0, 0)] * (waveform.ndim - 1) + [(missing // 2, missing - missing // 2)]
    return np.pad(cropped, pad)
