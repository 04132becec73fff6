"""The speech encoder's Keras layers (`keras.ops` only: TensorFlow, JAX and
PyTorch) and its model; `keras_tl.backbones.speech_embedding` loads it with
its weights. Imported when a speech encoder is built (and, to register the
layers for `keras.saving.load_model`, once Keras is imported)."""

import keras
import numpy as np
from keras import ops

from keras_tl.backbones._speech_dsp import (
    ACTIVATION_FLOOR,
    CNN_BLOCKS,
    EMBEDDING_DIM,
    FFT_LENGTH,
    HOP_LENGTH,
    LEAKY_SLOPE,
    MEL_BINS,
    TOP_DB,
    WINDOW_FRAMES,
    WINDOW_STEP,
    embedding_steps,
    mel_filterbank,
    mel_frames,
    stft_kernel,
)


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

    def __init__(self, negative_slope=LEAKY_SLOPE, floor=ACTIVATION_FLOOR, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = float(negative_slope)
        self.floor = float(floor)

    def call(self, x):
        return ops.maximum(ops.leaky_relu(x, self.negative_slope), self.floor)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope, "floor": self.floor}


# ------------------------------------------------------------- the encoder


def build_encoder(samples):
    """The encoder for clips of `samples`, its convolutions zero (the
    caller sets their weights).

    Example:
    >>> build_encoder(16000).output.shape
    (None, 3, 96)
    """
    layers = keras.layers
    inputs = keras.Input(shape=(samples,), name="waveform")
    x = LogMelSpectrogram(name="log_mel")(inputs)
    x = MelWindows(name="mel_windows")(x)
    x = layers.ZeroPadding2D(((0, 0), (1, 1)), name="block1_pad")(x)
    x = _conv(x, 24, (3, 3), "valid", "block1_conv1")
    x = ClampedLeakyReLU(name="block1_act1")(x)
    for block, filters, pool in CNN_BLOCKS:
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


def conv_layers(model):
    """The encoder's convolutions, in order (those that hold weights).

    Example:
    >>> [layer.name for layer in conv_layers(build_encoder(16000))][:2]
    ['block1_conv1', 'block1_conv2']
    """
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def _conv(x, filters, kernel, padding, name, use_bias=True):
    # zeros: the weights are set at once (Keras' random init compiles per shape under JAX)
    return keras.layers.Conv2D(
        filters, kernel, padding=padding, use_bias=use_bias, kernel_initializer="zeros", name=name
    )(x)

