"""The speech encoder's signal processing, in numbers: its sizes, and the
fixed STFT and mel matrices of its front end (NumPy, imported when they are
computed). Shared by `keras_tl.backbones.speech_embedding` (files, weights,
the registered spec), which imports no Keras, and
`keras_tl.backbones.speech_layers` (the Keras layers)."""

import math

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

# (block, output channels, pooling after the block) of the CNN; block 1 starts
# with a 3x3 convolution, the others with (1x3, 3x1) pairs.
CNN_BLOCKS = [(1, 24, (2, 2)), (2, 48, (1, 2)), (3, 72, (2, 2)), (4, 96, (1, 2)), (5, 96, (2, 2))]
LEAKY_SLOPE = 0.2
ACTIVATION_FLOOR = -0.4  # the ONNX graph clamps each LeakyReLU output at -0.4


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


# ------------------------------------------------------ the mel front end


def stft_kernel():
    """The STFT as a `[512, 1, 514]` convolution kernel (257 real parts, then
    257 imaginary parts), Hann window of 400 samples centred in 512.

    Example:
    >>> stft_kernel().shape
    (512, 1, 514)
    """
    import numpy as np

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
    import numpy as np

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
_MEL_LOG_STEP = math.log(6.4) / 27.0


def _hz_to_mel(hz):
    import numpy as np

    return np.where(
        hz >= 1000, 15.0 + np.log(np.maximum(hz, 1e-9) / 1000) / _MEL_LOG_STEP, hz / _MEL_LINEAR_HZ
    )


def _mel_to_hz(mel):
    import numpy as np

    return np.where(mel >= 15, 1000 * np.exp(_MEL_LOG_STEP * (mel - 15)), mel * _MEL_LINEAR_HZ)

