"""Encoded image bytes to uint8 RGB pixels, in TensorFlow ops only.

The same functions read training and prediction images (eagerly, through
`keras_tl.data.images.read_image`) and run inside the exported SavedModel's
`serving_bytes` signature (no `tf.py_function`, so TensorFlow Serving runs
them), so one file gives the same pixels, hence the same probabilities, in
both.

What they do:

- Formats: JPEG (grayscale and CMYK too; the accurate integer IDCT, as
  Pillow), PNG (1- to 16-bit, grayscale,
  palette, with or without alpha), GIF (first frame), BMP (24- and 32-bit,
  8-bit palette) and WebP (first frame). Anything else (TIFF...) is refused
  with an "unsupported image format" error; `read_image` reads those with
  PIL instead, which the SavedModel cannot do.
- Alpha is dropped without blending, as PIL's `convert("RGB")` does;
  grayscale becomes RGB.
- 16-bit PNG values are scaled to 0-255: `round(v / 257)`.
- EXIF orientation (tag 0x0112 of IFD0, all 8 values, in a JPEG's APP1
  segment, a PNG's eXIf chunk or a WebP's EXIF chunk) is applied as PIL's
  `ImageOps.exif_transpose` does.
- An image over `MAX_IMAGE_PIXELS` (PIL's decompression-bomb limit), per its
  header, is refused before it is decoded.
- Resizing is `tf.image.resize(method="bilinear", antialias=True)` in
  float32, rounded to uint8; an image already at the size is left as it is.

Example:
>>> import tensorflow as tf
>>> png = tf.io.encode_png(tf.zeros([40, 30, 3], tf.uint8))
>>> decode_and_resize(png, (20, 15)).shape
TensorShape([20, 15, 3])
"""

import functools
import re

import tensorflow as tf

from keras_tl.data.numpy_inputs import MAX_IMAGE_PIXELS
RESIZE_METHOD = "bilinear"
RESIZE_ANTIALIAS = True

# (format, [(offset, magic bytes), ...]): the order gives each format's
# branch index in `decode_image`.
_SIGNATURES = (
    ("JPEG", ((0, b"\xff\xd8\xff"),)),
    ("PNG", ((0, b"\x89PNG\r\n\x1a\n"),)),
    ("GIF", ((0, b"GIF8"),)),
    ("BMP", ((0, b"BM"),)),
    ("WebP", ((0, b"RIFF"), (8, b"WEBP"))),
)
SUPPORTED_FORMATS = tuple(name for name, _ in _SIGNATURES)
_JPEG, _PNG, _GIF, _BMP, _WEBP = range(len(_SIGNATURES))
_HEADER_BYTES = 64
_PADDING = b"\0" * _HEADER_BYTES
_ORIENTATION_TAG = 0x0112
_MAX_SEGMENTS = 4096  # metadata segments/chunks scanned for EXIF
_MAX_IFD_ENTRIES = 1024


def sniff_format(data):
    """The name of an encoded image's format (one of `SUPPORTED_FORMATS`)
    from its first bytes, or `None` when `decode_image` cannot read it.

    Example:
    >>> sniff_format(b"\\x89PNG\\r\\n\\x1a\\n..."), sniff_format(b"II*\\x00...")
    ('PNG', None)
    """
    for name, magics in _SIGNATURES:
        if all(data[offset:offset + len(magic)] == magic for offset, magic in magics):
            return name
    return None


def decode_image(data):
    """Decodes one encoded image (a scalar string tensor) to uint8 RGB
    `[height, width, 3]`, upright per its EXIF orientation.

    Raises `tf.errors.InvalidArgumentError` (at run time inside a graph) for
    an unsupported format, a corrupt file or one over `MAX_IMAGE_PIXELS`.

    Example:
    >>> import tensorflow as tf
    >>> gray = tf.io.encode_png(tf.fill([2, 3, 1], tf.constant(7, tf.uint8)))
    >>> decode_image(gray).numpy()[0, 0].tolist()
    [7, 7, 7]
    """
    data = tf.convert_to_tensor(data, tf.string)
    read = _byte_reader(data)
    header = read(tf.range(_HEADER_BYTES, dtype=tf.int64))
    index = _format_index(header)
    branches = [
        lambda: _decode_jpeg(data),
        lambda: _decode_png(data, header, read),
        lambda: _decode_gif(data, header),
        lambda: _decode_bmp(data, header, read),
        lambda: _decode_webp(data, header),
    ]
    image = tf.switch_case(index, branches, default=_unsupported_format)
    orientation = tf.switch_case(index, [
        lambda: _orientation(read, _jpeg_exif_start(read)),
        lambda: _orientation(read, _png_exif_start(read)),
        lambda: tf.constant(1, tf.int64),
        lambda: tf.constant(1, tf.int64),
        lambda: _orientation(read, _webp_exif_start(read)),
    ], default=lambda: tf.constant(1, tf.int64))
    image = apply_orientation(image, orientation)
    image.set_shape([None, None, 3])
    return image


def resize_image(images, image_size):
    """Resizes uint8 `[H, W, C]` or `[N, H, W, C]` images to `(height,
    width)`: bilinear with antialiasing, rounded back to uint8.

    Example:
    >>> import tensorflow as tf
    >>> resize_image(tf.zeros([2, 28, 28, 3], tf.uint8), (32, 32)).shape
    TensorShape([2, 32, 32, 3])
    """
    images = tf.convert_to_tensor(images, tf.uint8)
    size = tf.convert_to_tensor(image_size, tf.int32)

    def resize():
        resized = tf.image.resize(tf.cast(images, tf.float32), size,
                                  method=RESIZE_METHOD, antialias=RESIZE_ANTIALIAS)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)

    at_size = tf.reduce_all(tf.equal(tf.shape(images)[-3:-1], size))
    resized = tf.cond(at_size, lambda: tf.identity(images), resize)
    if isinstance(image_size, (tuple, list)):
        resized.set_shape(images.shape[:-3].concatenate(image_size).concatenate(images.shape[-1:]))
    return resized


def decode_and_resize(data, image_size):
    """`decode_image` then `resize_image`: what `serving_bytes` and
    `read_image` do to each file.

    Example:
    >>> import tensorflow as tf
    >>> jpeg = tf.io.encode_jpeg(tf.zeros([48, 64, 3], tf.uint8))
    >>> decode_and_resize(jpeg, (24, 32)).dtype
    tf.uint8
    """
    return resize_image(decode_image(data), image_size)


def decode_to_array(data, image_size=None):
    """`decode_image` (and `resize_image` given `image_size`) on the CPU, as
    one compiled `tf.function`: the ops `serving_bytes` runs. Returns a NumPy
    uint8 array.

    Example:
    >>> import tensorflow as tf
    >>> png = tf.io.encode_png(tf.zeros([40, 30, 3], tf.uint8)).numpy()
    >>> decode_to_array(png, (20, 15)).shape, decode_to_array(png).shape
    ((20, 15, 3), (40, 30, 3))
    """
    with tf.device("/CPU:0"):
        size = tf.constant((0, 0) if image_size is None else image_size, tf.int32)
        return _compiled()(data, size).numpy()


@functools.lru_cache(maxsize=None)
def _compiled():
    """Traced once per process (a few seconds): size (0, 0) means as decoded."""

    def decode(data, size):
        image = decode_image(data)
        return tf.cond(tf.reduce_all(size > 0), lambda: resize_image(image, size),
                       lambda: image)

    signature = [tf.TensorSpec([], tf.string), tf.TensorSpec([2], tf.int32)]
    return tf.function(decode, input_signature=signature, autograph=False)


def error_reason(error):
    """The one-line reason in a `tf.errors.OpError` raised by these
    functions, without TensorFlow's node names and stack.

    Example:
    >>> import tensorflow as tf
    >>> try:
    ...     decode_to_array(b"not an image")
    ... except tf.errors.InvalidArgumentError as error:
    ...     print(error_reason(error))
    unsupported image format: expected JPEG, PNG, GIF, BMP, WebP (by their first bytes)
    """
    message = error.message.split("\n\t [[")[0].strip()  # the failing node follows
    asserted = re.search(r"assertion failed: \[(.*)\]$", message, re.DOTALL)
    if asserted:
        return asserted.group(1)
    line = message.splitlines()[-1]  # after a graph error's stack
    return re.sub(r"\{\{[^}]*\}\}|\[Op:[^\]]*\].*$", "", line).strip()


def apply_orientation(image, orientation):
    """Turns an `[H, W, C]` image upright for its EXIF orientation (1-8),
    exactly as PIL's `ImageOps.exif_transpose`.

    Example:
    >>> import tensorflow as tf
    >>> apply_orientation(tf.constant([[[1], [2]]]), 6).numpy()[..., 0].tolist()
    [[1], [2]]
    """
    orientation = tf.convert_to_tensor(orientation, tf.int64)
    # Orientations 5-8 swap the axes; then a flip of rows and/or columns.
    transpose = orientation >= 5
    flip_rows = tf.reduce_any(tf.equal(orientation, [3, 4, 7, 8]))
    flip_columns = tf.reduce_any(tf.equal(orientation, [2, 3, 6, 7]))
    image = tf.cond(transpose, lambda: tf.transpose(image, [1, 0, 2]), lambda: image)
    image = tf.cond(flip_rows, lambda: tf.reverse(image, [0]), lambda: image)
    return tf.cond(flip_columns, lambda: tf.reverse(image, [1]), lambda: image)


def _byte_reader(data):
    """A function reading the bytes of `data` at int64 positions (any shape)
    as int64, 0 outside the data, so malformed headers never fail a read."""
    raw = tf.io.decode_raw(tf.strings.join([data, _PADDING]), tf.uint8)
    size = tf.cast(tf.strings.length(data), tf.int64)

    def read(positions):
        positions = tf.convert_to_tensor(positions, tf.int64)
        inside = (positions >= 0) & (positions < size)
        values = tf.gather(raw, tf.where(inside, positions, tf.zeros_like(positions)))
        return tf.where(inside, tf.cast(values, tf.int64), tf.zeros_like(positions))

    read.size = size
    return read


def _uint(read, position, length, little_endian):
    """Unsigned integer of `length` bytes at `position` (int64 tensors)."""
    value = tf.zeros_like(tf.convert_to_tensor(position, tf.int64))
    for i in range(length):
        shift = tf.where(little_endian, 8 * i, 8 * (length - 1 - i))
        value += tf.bitwise.left_shift(read(position + i), tf.cast(shift, tf.int64))
    return value


def _matches(read, position, magic):
    return tf.reduce_all(tf.equal(read(position + tf.range(len(magic), dtype=tf.int64)),
                                  list(magic)))


def _format_index(header):
    index = tf.constant(len(_SIGNATURES), tf.int32)  # the unsupported branch
    for branch, (_, magics) in reversed(list(enumerate(_SIGNATURES))):
        found = tf.constant(True)
        for offset, magic in magics:
            found &= tf.reduce_all(tf.equal(header[offset:offset + len(magic)], list(magic)))
        index = tf.where(found, branch, index)
    return index


def _refuse_bombs(height, width):
    """An assertion that fails, before decoding, for an image over
    MAX_IMAGE_PIXELS."""
    pixels = tf.cast(height, tf.int64) * tf.cast(width, tf.int64)
    message = tf.strings.format(
        "image of {}x{} pixels is over the decompression-bomb limit of "
        f"{MAX_IMAGE_PIXELS} pixels (as in PIL); refused before decoding",
        (width, height))
    return tf.debugging.Assert(pixels <= MAX_IMAGE_PIXELS, [message])


def _unsupported_format():
    message = ("unsupported image format: expected " + ", ".join(SUPPORTED_FORMATS)
               + " (by their first bytes)")
    with tf.control_dependencies([tf.debugging.Assert(False, [message])]):
        return tf.zeros([0, 0, 3], tf.uint8)


def _decode_jpeg(data):
    shape = tf.io.extract_jpeg_shape(data)
    with tf.control_dependencies([_refuse_bombs(shape[0], shape[1])]):
        # the accurate integer IDCT, as Pillow and libjpeg decode by default
        # (TensorFlow's own default is the fast one): keras_tl.data.numpy_inputs
        # reads the same pixels without TensorFlow
        return tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")


def _decode_png(data, header, read):
    # IHDR: width and height (big-endian) at 16 and 20, bit depth at 24.
    # A file without an IHDR is left to the decoder to refuse.
    big_endian = tf.constant(False)
    has_header = _matches(read, 12, b"IHDR")
    width = tf.where(has_header, _uint(read, 16, 4, big_endian), 0)
    height = tf.where(has_header, _uint(read, 20, 4, big_endian), 0)
    with tf.control_dependencies([_refuse_bombs(height, width)]):
        return tf.cond(
            tf.equal(header[24], 16),
            lambda: scale_16_bit(tf.io.decode_png(data, channels=3, dtype=tf.uint16)),
            lambda: tf.io.decode_png(data, channels=3),
        )


def scale_16_bit(image):
    """16-bit pixel values to uint8 0-255: `round(v / 257)`, so 65535 gives
    255 and `257 * k` gives `k` exactly (not clipped, not truncated).

    Example:
    >>> scale_16_bit([0, 128, 129, 32896, 65535]).numpy().tolist()
    [0, 0, 1, 128, 255]
    """
    return tf.cast((tf.cast(image, tf.int32) + 128) // 257, tf.uint8)


def _decode_gif(data, header):
    # Logical screen width and height (little-endian) at 6 and 8; each frame
    # is decoded at that size.
    width = header[6] + 256 * header[7]
    height = header[8] + 256 * header[9]
    with tf.control_dependencies([_refuse_bombs(height, width)]):
        return tf.io.decode_gif(data)[0]


def _decode_bmp(data, header, read):
    # BITMAPINFOHEADER: width and height (signed, little-endian) at 18 and
    # 22, bits per pixel at 28, palette size at 46 (0: 2 ** bits).
    little_endian = tf.constant(True)
    width = _signed_32(_uint(read, 18, 4, little_endian))
    height = _signed_32(_uint(read, 22, 4, little_endian))
    bits = header[28] + 256 * header[29]
    with tf.control_dependencies([_refuse_bombs(tf.abs(height), tf.abs(width))]):
        return tf.cond(tf.equal(bits, 8),
                       lambda: _bmp_palette_lookup(data, read),
                       lambda: tf.io.decode_bmp(data, channels=3))


def _signed_32(value):
    return tf.where(value >= 2**31, value - 2**32, value)


def _bmp_palette_lookup(data, read):
    """An 8-bit BMP: tf.io.decode_bmp returns the palette indices."""
    little_endian = tf.constant(True)
    indices = tf.cast(tf.io.decode_bmp(data, channels=0)[..., 0], tf.int64)
    colours = _uint(read, 46, 4, little_endian)
    colours = tf.where(tf.equal(colours, 0), tf.constant(256, tf.int64), colours)
    start = 14 + _uint(read, 14, 4, little_endian)
    # Palette entries are blue, green, red, reserved.
    entries = start + 4 * tf.range(tf.minimum(colours, 256))
    palette = tf.stack([read(entries + 2), read(entries + 1), read(entries)], axis=-1)
    return tf.cast(tf.gather(palette, tf.minimum(indices, tf.shape(palette, tf.int64)[0] - 1)),
                   tf.uint8)


def _decode_webp(data, header):
    width, height = _webp_size(header)
    with tf.control_dependencies([_refuse_bombs(height, width)]):
        # channels=0: 3 or 4 as in the file; an animation gives all frames.
        return tf.io.decode_webp(data)[0, :, :, :3]


def _webp_size(header):
    """Canvas (VP8X), lossy (VP8) or lossless (VP8L) size, from the header."""
    chunk = header[12:16]
    vp8x = tf.reduce_all(tf.equal(chunk, list(b"VP8X")))
    vp8l = tf.reduce_all(tf.equal(chunk, list(b"VP8L")))
    extended = (header[24] + 256 * header[25] + 65536 * header[26] + 1,
                header[27] + 256 * header[28] + 65536 * header[29] + 1)
    bits = header[21] + 256 * header[22] + 65536 * header[23] + 16777216 * header[24]
    lossless = (bits % 16384 + 1, bits // 16384 % 16384 + 1)
    lossy = ((header[26] + 256 * header[27]) % 16384, (header[28] + 256 * header[29]) % 16384)
    width = tf.where(vp8x, extended[0], tf.where(vp8l, lossless[0], lossy[0]))
    height = tf.where(vp8x, extended[1], tf.where(vp8l, lossless[1], lossy[1]))
    return width, height


def _scan(read, start, step):
    """Walks metadata segments from `start`: `step(position)` gives
    `(exif_start or -1, next_position, stop)`. Returns the EXIF start or -1."""

    def keep_going(position, found, stop, steps):
        return (found < 0) & ~stop & (steps < _MAX_SEGMENTS) & (position + 8 <= read.size)

    def body(position, found, stop, steps):
        found, following, stop = step(position)
        # A malformed length must not loop back.
        return tf.maximum(following, position + 1), found, stop, steps + 1

    _, found, _, _ = tf.while_loop(
        keep_going, body,
        (tf.constant(start, tf.int64), tf.constant(-1, tf.int64), tf.constant(False),
         tf.constant(0)))
    return found


def _jpeg_exif_start(read):
    """After the APP1 marker, its length and "Exif\\0\\0"."""
    big_endian = tf.constant(False)

    def step(position):
        marker = read(position + 1)
        is_exif = tf.equal(marker, 0xE1) & _matches(read, position + 4, b"Exif\0\0")
        # Scanning stops at the first non-marker, start of scan or end of image.
        stop = tf.not_equal(read(position), 0xFF) | tf.equal(marker, 0xDA) | tf.equal(marker, 0xD9)
        following = tf.where(tf.equal(marker, 0xFF), position + 1,  # fill byte
                             position + 2 + _uint(read, position + 2, 2, big_endian))
        return tf.where(is_exif & ~stop, position + 10, -1), following, stop

    return _scan(read, 2, step)


def _png_exif_start(read):
    """The data of the eXIf chunk, which comes before the image data."""
    big_endian = tf.constant(False)

    def step(position):
        is_exif = _matches(read, position + 4, b"eXIf")
        stop = _matches(read, position + 4, b"IDAT") | _matches(read, position + 4, b"IEND")
        following = position + 12 + _uint(read, position, 4, big_endian)
        return tf.where(is_exif, position + 8, -1), following, stop

    return _scan(read, 8, step)


def _webp_exif_start(read):
    """The data of the RIFF "EXIF" chunk (chunks are padded to even sizes)."""
    little_endian = tf.constant(True)

    def step(position):
        is_exif = _matches(read, position, b"EXIF")
        size = _uint(read, position + 4, 4, little_endian)
        following = position + 8 + size + size % 2
        return tf.where(is_exif, position + 8, -1), following, tf.constant(False)

    return _scan(read, 12, step)


def _orientation(read, start):
    """EXIF orientation (1-8) from the TIFF structure at `start` (-1: none;
    1 for anything malformed), as PIL reads it: tag 0x0112 of IFD0."""
    # Some writers keep the "Exif\0\0" prefix in PNG and WebP chunks.
    start = tf.where(_matches(read, start, b"Exif\0\0"), start + 6, start)
    little_endian = _matches(read, start, b"II")
    valid = (start >= 0) & (little_endian | _matches(read, start, b"MM"))
    valid &= tf.equal(_uint(read, start + 2, 2, little_endian), 42)
    ifd = start + _uint(read, start + 4, 4, little_endian)
    count = tf.minimum(_uint(read, ifd, 2, little_endian), _MAX_IFD_ENTRIES)
    entries = ifd + 2 + 12 * tf.range(count)
    is_orientation = (tf.equal(_uint(read, entries, 2, little_endian), _ORIENTATION_TAG)
                      & tf.equal(_uint(read, entries + 2, 2, little_endian), 3))  # SHORT
    values = _uint(read, entries + 8, 2, little_endian)
    # The first orientation entry; 1 when there is none.
    value = tf.concat([tf.boolean_mask(values, is_orientation), [1]], 0)[0]
    valid &= (value >= 1) & (value <= 8)
    return tf.where(valid, value, tf.constant(1, tf.int64))
