"""Keyword spotting on the task contract: train, predict and serve WAV files
of any common rate, width and channel count."""

import json
import os
import subprocess
import sys
import wave

import numpy as np
import pytest

import keras_tl

SERVING_CHECK = os.path.join(os.path.dirname(__file__), "serving_check.py")


def _tones(count=24, seed=0):
    """Two classes: a low and a high tone with noise, 1 s at 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    x = [8000 * np.sin(2 * np.pi * (300 if i % 2 else 1200) * t) + rng.normal(0, 400, 16000)
         for i in range(count)]
    return np.stack(x).astype("float32"), ["low" if i % 2 else "high" for i in range(count)]


def _write_wav(path, waveform, rate, channels=1, width=2):
    """`waveform` (16 kHz, int16 scale) written at another rate/width/channels."""
    n = int(len(waveform) * rate / 16000)
    resampled = np.interp(np.arange(n) * 16000 / rate, np.arange(len(waveform)), waveform)
    if width == 2:
        frames = np.round(resampled).astype("<i2")
    elif width == 3:
        scaled = np.round(resampled * 256).astype("<i4")
        frames = np.frombuffer(scaled.tobytes(), "u1").reshape(-1, 4)[:, :3]
    else:
        raise ValueError(width)
    frames = np.repeat(frames[:, None], channels, axis=1) if width == 2 else \
        np.repeat(frames[:, None, :], channels, axis=1)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(frames.tobytes())
    return str(path)


def _wav_folder(root):
    x, y = _tones(16)
    for i, (clip, label) in enumerate(zip(x, y)):
        os.makedirs(root / label, exist_ok=True)
        _write_wav(root / label / f"{i:02d}.wav", clip, 16000)
    return str(root)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("kws")
    x, y = _tones()
    return keras_tl.finetune(
        (x, y), stages=[keras_tl.Stage("head", epochs=6, learning_rate=1e-2)],
        batch_size=8, validation_split=0.25, verbose=0, output_dir=str(root / "run"))


def test_wav_folders_are_recognised_and_read_like_arrays(tmp_path):
    from keras_tl.tasks import find_task

    folder = _wav_folder(tmp_path / "sounds")
    task = find_task(folder)
    assert task.name == "keyword_spotting"
    prepared = task.prepare(folder, weights=None, validation_split=0)
    x, y = _tones(16)
    batches = list(prepared.train.as_numpy_iterator())
    batch_x = np.concatenate([b[0] for b in batches])
    batch_y = np.concatenate([b[1] for b in batches])
    assert prepared.class_names == ["high", "low"]
    assert sorted(batch_y.tolist()) == [0] * 8 + [1] * 8
    # 16-bit WAV files hold the arrays rounded to integers
    assert np.abs(np.sort(batch_x.sum(axis=1)) - np.sort(np.round(x).sum(axis=1))).max() < 1


def test_the_speech_run_learns_and_predicts_wav_files_of_any_rate(trained, tmp_path):
    assert trained.info["task"] == "keyword_spotting"
    assert trained.metrics["validation"]["accuracy"] == 1.0
    x, y = _tones(4, seed=1)
    paths = [_write_wav(tmp_path / "a.wav", x[0], 8000, channels=2),
             _write_wav(tmp_path / "b.wav", x[1], 44100, width=3)]
    predictions = trained.predict(paths, top=1)
    assert [p[0][0] for p in predictions] == y[:2]


def test_serving_wav_in_a_tensorflow_only_process_agrees_with_predict(trained, tmp_path):
    report = keras_tl.export(trained, str(tmp_path / "saved_models" / "kws"))
    assert set(report.files) >= {"saved_model", "onnx", "litert_float32"}
    assert report.verification["saved_model/serving_wav"]["max_abs_diff"] <= 1e-5
    x, _ = _tones(4, seed=2)
    files = [_write_wav(tmp_path / "c.wav", x[0], 8000), _write_wav(tmp_path / "d.wav", x[1], 48000, 2),
             _write_wav(tmp_path / "e.wav", x[2][:9000], 22050, width=3)]
    request = tmp_path / "files.json"
    request.write_text(json.dumps(files))
    done = subprocess.run([sys.executable, SERVING_CHECK, "--wav", report.path, str(request)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served["keras_modules_loaded"] == []
    expected = trained.predict(files, top=2)
    for file, top in zip(files, expected):
        probabilities = served["files"][file]["probabilities"]
        for name, probability in top:
            assert abs(probabilities[trained.class_names.index(name)] - probability) < 1e-4
        assert served["files"][file]["class_name"] == top[0][0]
