"""Keyword spotting: 16 kHz waveforms in, class probabilities out.

The model takes float32 waveforms `[batch, samples]` at 16 kHz on the int16
scale (input `"waveforms"`); the speech encoder's mel front end is inside
the model, so training, export and serving cannot disagree. The SavedModel
adds `serving_wav`: WAV file bytes of any length and common sample rate,
decoded, resampled and fitted to the clip by the same TensorFlow functions
that read the training files (`keras_tl.data.audio`).
"""

import io
import os
import wave

import numpy as np

from keras_tl.data import audio
from keras_tl.data.audio import is_audio_data, make_audio_dataset, prepare_waveforms, serving_wav_fn
from keras_tl.data.audio.wav import WAV_EXTENSIONS
from keras_tl.data.examples import LabelledArrays
from keras_tl.errors import DataError
from keras_tl.export_spec import ConvertedGraph, Signature
from keras_tl.tasks.classification import Classification, classification_head
from keras_tl.tasks.options import KEYWORD_SPOTTING
from keras_tl.training.stages import Stage

INPUT_NAME = "waveforms"
WAV_NAME = "wav_bytes"  # serving_wav's input: WAV file bytes
SAMPLE_RATE = 16000
DEFAULT_BACKBONE = "speech_embedding"


def build_keyword_spotter(encoder, num_classes, dropout=0.2, name="keyword_spotter"):
    """Puts a classification head on the speech encoder: the embeddings of
    the clip's windows are averaged and layer-normalised (they range over
    tens, with offsets; openWakeWord's own heads normalise them too), then
    dropout and a softmax layer.

    Example:
    >>> from keras_tl.backbones.speech_embedding import load_speech_encoder
    >>> model = build_keyword_spotter(load_speech_encoder(1.0, weights=None), 3)
    >>> tuple(model.input.shape), tuple(model.output.shape)
    ((None, 16000), (None, 3))
    """
    import keras

    inputs = keras.Input(shape=encoder.input.shape[1:], name=INPUT_NAME, dtype="float32")
    outputs = classification_head(encoder(inputs), num_classes, dropout, normalize=True)
    return keras.Model(inputs, outputs, name=name)


def load_audio_data(data, clip_samples, class_names=None, skip_corrupt=False, min_classes=2):
    """`(float32 clips [N, clip_samples], int32 labels, class_names)` from a
    folder of `.wav` files per class, `(waveforms, labels)` or a
    `tf.data.Dataset` of `(waveform, label)` (arrays at 16 kHz).

    Example:
    >>> import numpy as np
    >>> x, y, names = load_audio_data((np.zeros((2, 8000)), ["no", "yes"]), 16000)
    >>> x.shape, names
    ((2, 16000), ['no', 'yes'])
    """
    if isinstance(data, (str, os.PathLike)):
        x, y, names = audio.load_audio_folder(data, clip_samples, skip_corrupt=skip_corrupt)
        if class_names is not None:  # validation/test folders index the training classes
            y, names = _reindex(y, names, class_names)
        return x, y, names
    if hasattr(data, "element_spec"):
        data = audio.audio_dataset_to_arrays(data)
    waveforms, labels = data
    return audio.prepare_audio_arrays(waveforms, labels, clip_samples,
                                      class_names=class_names, min_classes=min_classes)


def _reindex(labels, names, class_names):
    unknown = sorted(set(names) - set(class_names))
    if unknown:
        raise DataError(f"Classes {unknown} are not among the training classes {list(class_names)}.")
    index = {name: i for i, name in enumerate(class_names)}
    return [index[names[label]] for label in labels], list(class_names)


class KeywordSpotting(Classification):
    """Fine-tunes the pretrained speech encoder into a keyword classifier.

    Example:
    >>> from keras_tl.tasks import get_task
    >>> task = get_task("keyword_spotting")
    >>> task.modality, [option.flag for option in task.options]
    ('audio', ['--clip-seconds', '--augment', '--skip-corrupt', '--calibrate'])
    """

    name = "keyword_spotting"
    modality = "audio"
    default_backbone = DEFAULT_BACKBONE
    options = KEYWORD_SPOTTING
    file_extensions = WAV_EXTENSIONS

    def default_stages(self, head_epochs=10, finetune_epochs=10):
        """Head warm-up at 1e-2 (a linear head on frozen, normalised
        embeddings converges in few epochs at that rate, as for text), then
        the encoder unfrozen at 1e-4 with 10% warm-up and cosine decay.

        Example:
        >>> [(s.name, s.learning_rate, s.unfreeze) for s in get_task("keyword_spotting").default_stages()]
        [('head', 0.01, None), ('finetune', 0.0001, 'all')]
        """
        return [
            Stage("head", unfreeze=None, epochs=head_epochs, learning_rate=1e-2),
            Stage("finetune", unfreeze="all", epochs=finetune_epochs, learning_rate=1e-4,
                  warmup=0.1, schedule="cosine"),
        ]

    def split_head(self, model):
        """Cached features only while the whole encoder is frozen: the
        speech embedding folds each clip's frames into the batch, so the
        output of a frozen bottom has more rows than there are clips.

        Example:
        >>> get_task("keyword_spotting").split_head(None) is None  # doctest: +SKIP
        """
        from keras_tl.freezing import get_backbone

        if get_backbone(model).trainable_weights:
            return None
        return super().split_head(model)

    def recognizes(self, data, backbone=None):
        """`(waveforms, labels)` with 1-D waveforms, or the speech encoder
        named as backbone; a folder of class sub-folders goes by its files
        (`find_task`: `.wav`, `file_extensions`).

        Example:
        >>> import numpy as np
        >>> task = get_task("keyword_spotting")
        >>> task.recognizes((np.zeros((4, 16000)), [0, 1, 0, 1])), task.recognizes("photos/")
        (True, False)
        """
        if isinstance(backbone, str) and backbone == DEFAULT_BACKBONE:
            return True
        return not isinstance(data, (str, os.PathLike)) and is_audio_data(data)

    def read(self, data, loaded, class_names=None, min_classes=2, skip_corrupt=False, **options):
        """The clips, padded or cropped (centred) to `clip_seconds`, as
        `LabelledArrays`.

        Example:
        >>> x = np.random.default_rng(0).normal(0, 1000, (8, 16000))
        >>> prepared = get_task("keyword_spotting").prepare(
        ...     (x, ["yes", "no"] * 4), weights=None, validation_split=0.25)
        >>> prepared.class_names, prepared.info["clip_samples"], prepared.info["num_validation"]
        (['no', 'yes'], 16000, 2)
        """
        x, y, names = load_audio_data(data, int(loaded.model.input.shape[1]), class_names,
                                      skip_corrupt, min_classes)
        return LabelledArrays(x, y, names)

    def load_backbone(self, backbone, weights, clip_seconds=1.0, **options):
        from keras_tl.backbones import load_backbone

        return load_backbone(backbone, weights=weights,
                             input_size=(int(round(clip_seconds * SAMPLE_RATE)),))

    def build_model(self, loaded, class_names, train, dropout, **options):
        model = build_keyword_spotter(loaded.model, len(class_names),
                                      dropout=0.2 if dropout is None else dropout)
        return model, dict(
            sample_rate=SAMPLE_RATE,
            clip_samples=int(loaded.model.input.shape[1]),
            preprocessing=dict(input="mono float32 at 16 kHz on the int16 scale",
                               clip="centred: longer cropped, shorter zero-padded"))

    def dataset(self, examples, loaded, info, batch_size, training=False, seed=0,
                augment=False, **options):
        return make_audio_dataset(examples.inputs, examples.labels, batch_size, shuffle=training,
                                  seed=seed, augment=augment if training else None)

    def verification_sample(self, examples, info):
        return examples.inputs[:32]

    def prepare_inputs(self, inputs, info):
        """WAV file paths, or waveforms (a 2-D array or a list of 1-D arrays
        at 16 kHz), as float32 clips `[n, clip_samples]`.

        Example:
        >>> import numpy as np
        >>> get_task("keyword_spotting").prepare_inputs(
        ...     [np.ones(8000)], {"clip_samples": 16000}).shape
        (1, 16000)
        """
        if isinstance(inputs, (str, os.PathLike)):
            inputs = [inputs]
        return prepare_waveforms(inputs, int(info["clip_samples"]))

    def export_spec(self, model, info, class_names, sample=None):
        """`serving_default` on float32 clips `[batch, clip_samples]` and
        `serving_wav` on WAV file bytes (decoded, resampled and fitted to
        the clip in the graph by `keras_tl.data.audio.serving_wav_fn`, as
        the training files were read; verified on the clips as 16-bit WAV
        files), both returning `probabilities`, `class_ids` and
        `class_names`; converting formats convert the classifier itself.
        Verified on `sample` (real clips) when given, else seeded chirps.

        Example:
        >>> spec = get_task("keyword_spotting").export_spec(None, {"clip_samples": 16000},
        ...                                                 ["no", "yes"])
        >>> [(s.name, s.inputs) for s in spec.signatures]
        [('serving_default', {'waveforms': {'dtype': 'float32', 'shape': [None, 16000]}}), ('serving_wav', {'wav_bytes': {'dtype': 'string', 'shape': [None]}})]
        >>> spec.signatures[1].feed_for(spec.verification_inputs[:2])["wav_bytes"][0][:4]
        b'RIFF'
        """
        samples = int(info["clip_samples"])
        outputs = self.output_contract(class_names)
        build_clips = build_wav = None
        if model is not None:
            def build_clips():
                import tensorflow as tf  # serving graphs only

                @tf.function(input_signature=[
                    tf.TensorSpec([None, samples], tf.float32, name=INPUT_NAME)])
                def serve_waveforms(waveforms):
                    return self.classification_outputs(model(waveforms, training=False),
                                                       class_names)

                return serve_waveforms.get_concrete_function()

            def build_wav():
                import tensorflow as tf  # serving graphs only


                wav_to_clips = serving_wav_fn(samples)

                @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=WAV_NAME)])
                def serve_wav(wav_bytes):
                    clips = wav_to_clips(wav_bytes)
                    return self.classification_outputs(model(clips, training=False), class_names)

                return serve_wav.get_concrete_function()

        signatures = (
            Signature("serving_default",
                      {INPUT_NAME: {"dtype": "float32", "shape": [None, samples]}}, outputs,
                      build_clips),
            Signature("serving_wav", {WAV_NAME: {"dtype": "string", "shape": [None]}}, outputs,
                      build_wav, feed=_wav_feed, convertible=False),
        )
        return self.classification_spec(model, info, class_names, signatures,
                                        _verification_clips(samples, sample), ConvertedGraph(model))

    def model_info(self, model):
        """For a bare keyword model given to `export`: its clip length, from
        a `[batch, samples]` input.

        Example:
        >>> import keras
        >>> x = keras.Input((16000,))
        >>> get_task("keyword_spotting").model_info(keras.Model(x, x))["clip_samples"]
        16000
        """
        inputs = getattr(model, "inputs", None) or []  # a text pipeline has none
        shape = tuple(inputs[0].shape) if len(inputs) == 1 else ()
        if len(shape) != 2 or shape[1] is None:
            return None
        return dict(clip_samples=int(shape[1]), sample_rate=SAMPLE_RATE)


def _wav_feed(clips):
    """`serving_wav`'s feed: each clip as a 16-bit mono WAV file (what a
    client sends)."""
    files = []
    for clip in np.asarray(clips):
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(np.clip(np.round(clip), -32768, 32767).astype("<i2").tobytes())
        files.append(buffer.getvalue())
    return {WAV_NAME: np.asarray(files, dtype=object)}


def _verification_clips(samples, sample=None, count=8):
    """Real clips (`sample`) when given, else `count` seeded chirps with
    noise on the int16 scale; rounded like 16-bit samples, so `serving_wav`
    gets the same clips."""
    if sample is not None:
        return np.round(np.asarray(sample, dtype="float32")[:, :samples])
    rng = np.random.default_rng(0)
    t = np.arange(samples) / SAMPLE_RATE
    chirps = [8000 * np.sin(2 * np.pi * (200 + 300 * i) * t * (1 + t)) for i in range(count)]
    return np.round(np.stack(chirps) + rng.normal(0, 300, (count, samples))).astype("float32")
