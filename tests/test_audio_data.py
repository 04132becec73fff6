"""Audio data: WAV decoding in TF ops (also inside a SavedModel), resampling
against scipy, centred clips, folders, arrays, tf.data, augmentation and the
shipped keyword set."""

import logging
import struct

import numpy as np
import pytest
import tensorflow as tf

from keras_tl.data import audio
from keras_tl.errors import ConfigError, DataError

RNG = np.random.default_rng(0)
STEREO = RNG.integers(-32768, 32768, (200, 2))  # int16-scale reference samples


def _fmt(code, channels, rate, width, subformat=None):
    body = struct.pack("<HHIIHH", 0xFFFE if subformat else code, channels, rate,
                       rate * channels * width, channels * width, width * 8)
    if subformat:  # WAVE_FORMAT_EXTENSIBLE: cbSize, valid bits, channel mask, GUID
        body += struct.pack("<HHIH", 22, width * 8, 3, subformat) + bytes(14)
    return body


def _riff(fmt_body, data, data_size=None, extra=b""):
    chunks = (b"fmt " + struct.pack("<I", len(fmt_body)) + fmt_body + extra
              + b"data" + struct.pack("<I", len(data) if data_size is None else data_size) + data)
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def _int24(values):
    return b"".join(int(v).to_bytes(3, "little", signed=True) for v in np.ravel(values))


ENCODINGS = {
    "uint8": (_fmt(1, 2, 16000, 1), ((STEREO >> 8) + 128).astype("u1").tobytes(), (STEREO >> 8) * 256),
    "int16": (_fmt(1, 2, 16000, 2), STEREO.astype("<i2").tobytes(), STEREO),
    "int24": (_fmt(1, 2, 16000, 3), _int24(STEREO * 256), STEREO),
    "int32": (_fmt(1, 2, 16000, 4), (STEREO * 65536).astype("<i4").tobytes(), STEREO),
    "float32": (_fmt(3, 2, 16000, 4), (STEREO / 32768).astype("<f4").tobytes(), STEREO),
    "float64": (_fmt(3, 2, 16000, 8), (STEREO / 32768).astype("<f8").tobytes(), STEREO),
    "extensible int16": (_fmt(1, 2, 16000, 2, subformat=1), STEREO.astype("<i2").tobytes(), STEREO),
    "extensible float32": (_fmt(3, 2, 16000, 4, subformat=3), (STEREO / 32768).astype("<f4").tobytes(), STEREO),
}


def _mono_wav(samples, rate=16000):
    return _riff(_fmt(1, 1, rate, 2), np.asarray(samples).astype("<i2").tobytes())


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_every_encoding_decodes_to_int16_scale_mono(encoding):
    fmt_body, data, expected = ENCODINGS[encoding]
    # an odd-sized chunk before the data checks the RIFF padding rule
    contents = _riff(fmt_body, data, extra=b"LIST" + struct.pack("<I", 3) + b"abc\0")
    waveform, rate = audio.decode_wav(contents)
    assert int(rate) == 16000
    np.testing.assert_allclose(waveform.numpy(), expected.mean(axis=1), atol=1e-3)


def test_streamed_wav_reads_to_the_end_of_the_file():
    # espeak-ng --stdout and other streams write a huge placeholder size
    contents = _riff(_fmt(1, 1, 22050, 2), np.arange(101, dtype="<i2").tobytes(), data_size=0x7FFFF000)
    waveform, rate = audio.decode_wav(contents)
    assert int(rate) == 22050 and waveform.numpy().tolist() == list(range(101))


@pytest.mark.parametrize("contents, reason", [
    (b"", "file too short"),
    (b"ID3\x04" + bytes(60), "not a RIFF/WAVE file"),
    (_riff(_fmt(2, 1, 16000, 2), bytes(8)), "unsupported encoding"),  # ADPCM
    (_riff(_fmt(1, 1, 0, 2), bytes(8)), "sample rate 0"),
    (_mono_wav(np.zeros(10))[:36], "no data chunk"),
])
def test_unreadable_files_raise_data_error_naming_the_file(tmp_path, contents, reason):
    path = tmp_path / "clip.wav"
    path.write_bytes(contents)
    with pytest.raises(DataError, match=f"Cannot read WAV file {path}: {reason}.*skip_corrupt"):
        audio.read_wav(path)


def test_other_audio_formats_get_a_conversion_hint(tmp_path):
    path = tmp_path / "clip.mp3"
    path.write_bytes(b"ID3\x04" + bytes(60))
    with pytest.raises(DataError, match="reads WAV only.*ffmpeg"):
        audio.read_wav(path)


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000])
def test_resample_agrees_with_scipy_resample_poly(rate):
    from scipy.signal import resample_poly

    x = RNG.normal(0, 5000, rate // 2)  # 0.5 s of wide-band noise
    divisor = np.gcd(rate, 16000)
    expected = resample_poly(x, 16000 // divisor, rate // divisor)
    ours = audio.resample(x.astype("float32"), rate, 16000).numpy()
    diff = np.abs(ours - expected).max()
    print(f"{rate} Hz -> 16 kHz: max |ours - resample_poly| = {diff:.2e} (peak {np.abs(expected).max():.0f})")
    assert ours.shape == expected.shape
    assert diff <= 1e-6 * np.abs(expected).max()


def test_resample_keeps_a_tone_and_removes_what_16khz_cannot_hold():
    t = np.arange(44100) / 44100
    tones = 10000 * np.sin(2 * np.pi * 1000 * t) + 10000 * np.sin(2 * np.pi * 12000 * t)
    out = audio.resample(tones.astype("float32"), 44100, 16000).numpy()[1000:-1000]
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    freqs = np.fft.rfftfreq(len(out), 1 / 16000)
    kept = spectrum[np.abs(freqs - 1000) < 20].max()
    aliased = spectrum[np.abs(freqs - 4000) < 20].max()  # where 12 kHz would fold to
    assert aliased < kept * 1e-3


def test_fit_clip_centres_crops_and_pads():
    assert audio.fit_clip(np.arange(10, dtype="float32"), 4).numpy().tolist() == [3, 4, 5, 6]
    assert audio.fit_clip(np.arange(1, 4, dtype="float32"), 6).numpy().tolist() == [0, 1, 2, 3, 0, 0]
    batch = audio.fit_clip(np.ones((2, 5), "float32"), 3)
    assert tuple(batch.shape) == (2, 3)


def test_serving_function_in_a_saved_model_matches_training_loading(tmp_path):
    t = np.arange(22050) / 22050
    wav_44k = _riff(_fmt(1, 2, 44100, 2), np.repeat((8000 * np.sin(2 * np.pi * 440 * t))[:, None], 2, 1)
                    .astype("<i2").tobytes())
    wav_8k = _mono_wav(RNG.integers(-3000, 3000, 4000), rate=8000)
    files = []
    for i, contents in enumerate([wav_44k, wav_8k]):
        files.append(tmp_path / f"{i}.wav")
        files[-1].write_bytes(contents)
    training = np.stack([audio.read_wav(f, 16000) for f in files])

    module = tf.Module()
    module.clips = audio.serving_wav_fn(16000)
    tf.saved_model.save(module, str(tmp_path / "saved"))
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    served = loaded.clips(tf.constant([wav_44k, wav_8k])).numpy()
    assert served.shape == (2, 16000)
    np.testing.assert_array_equal(served, training)


def _write_folder(root, rates=(8000, 16000, 44100)):
    for label, frequency in (("no", 300), ("yes", 900)):
        (root / label).mkdir(parents=True)
        for rate in rates:
            t = np.arange(rate // 2) / rate
            (root / label / f"{rate}.wav").write_bytes(_mono_wav(6000 * np.sin(2 * np.pi * frequency * t), rate))
    return root


def test_folder_reads_every_rate_as_16khz_clips(tmp_path):
    root = _write_folder(tmp_path / "data")
    (root / "README.txt").write_text("not a class")
    x, y, names = audio.load_audio_folder(root, 16000)
    assert x.shape == (6, 16000) and x.dtype == np.float32
    assert y.tolist() == [0, 0, 0, 1, 1, 1] and names == ["no", "yes"]
    # half a second of tone in the middle of the clip, silence around it
    assert np.abs(x[:, :3900]).max() == 0 and np.abs(x[:, 5000:11000]).min(axis=1).max() < 6001
    assert np.abs(x[:, 8000 - 200:8000 + 200]).max(axis=1).min() > 5000


def test_folder_errors_and_skip_corrupt(tmp_path, caplog):
    root = _write_folder(tmp_path / "data", rates=(16000,))
    (root / "yes" / "broken.wav").write_bytes(b"not audio at all")
    with pytest.raises(DataError, match="broken.wav: not a RIFF/WAVE file"):
        audio.load_audio_folder(root, 16000)
    with caplog.at_level(logging.WARNING, logger="keras_tl"):
        x, y, _ = audio.load_audio_folder(root, 16000, skip_corrupt=True)
    assert len(x) == 2 and "broken.wav" in caplog.text
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(DataError, match="single class"):
        audio.load_audio_folder(tmp_path / "one", 16000)
    (root / "empty").mkdir()
    with pytest.raises(DataError, match="has no WAV files"):
        audio.load_audio_folder(root, 16000)


def test_every_unreadable_training_file_is_named_at_once(tmp_path):
    root = _write_folder(tmp_path / "data", rates=(16000,))
    (root / "no" / "cut.wav").write_bytes(b"RIFF")
    (root / "yes" / "broken.wav").write_bytes(b"not audio at all")
    (root / "yes" / "song.mp3").write_bytes(b"ID3\x04" + bytes(60))
    with pytest.raises(DataError) as raised:
        audio.load_audio_folder(root, 16000)
    message = str(raised.value)
    assert message.startswith("3 files cannot be read as WAV: ")
    assert f"{root / 'no' / 'cut.wav'} (file too short to be a WAV file)" in message
    assert f"{root / 'yes' / 'broken.wav'} (not a RIFF/WAVE file)" in message
    assert f"{root / 'yes' / 'song.mp3'} (not a RIFF/WAVE file)" in message
    assert "ffmpeg" in message and "skip_corrupt" in message and "\n" not in message


def test_arrays_of_any_length_and_rate():
    waves = [np.full(8000, 1000.0), np.full(24000, 2000.0), np.full(16000, 3000.0)]
    x, y, names = audio.prepare_audio_arrays(waves, ["up", "down", "up"], 16000)
    assert x.shape == (3, 16000) and names == ["down", "up"] and y.tolist() == [1, 0, 1]
    assert x[0, 4000:12000].min() == 1000 and x[0, :4000].max() == 0  # padded around the centre
    at_8k, _, _ = audio.prepare_audio_arrays(np.full((2, 4000), 500.0), [0, 1], 16000, sample_rate=8000)
    assert at_8k.shape == (2, 16000) and abs(at_8k[0, 8000] - 500) < 1
    with pytest.raises(DataError, match="3 waveforms but 2 labels"):
        audio.prepare_audio_arrays(waves, [0, 1], 16000)


def test_float_audio_in_unit_range_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="keras_tl"):
        audio.prepare_waveforms(np.full((2, 100), 0.5), 100)
    assert "multiply float audio by 32768" in caplog.text


def test_tf_data_batched_or_not():
    waves = np.arange(12, dtype="float32").reshape(4, 3)
    labels = np.array([0, 1, 0, 1])
    unbatched = tf.data.Dataset.from_tensor_slices((waves, labels))
    for dataset in (unbatched, unbatched.batch(3)):
        x, y = audio.audio_dataset_to_arrays(dataset)
        assert np.stack(x).tolist() == waves.tolist() and y.tolist() == labels.tolist()


def test_is_audio_data_claims_wav_folders_only(tmp_path, image_folder):
    assert audio.is_audio_data(_write_folder(tmp_path / "wavs", rates=(16000,)))
    assert not audio.is_audio_data(image_folder)
    (tmp_path / "texts" / "a").mkdir(parents=True)
    (tmp_path / "texts" / "a" / "1.txt").write_text("hello")
    assert not audio.is_audio_data(tmp_path / "texts")
    assert audio.is_audio_data(([np.zeros(100), np.zeros(50)], [0, 1]))
    assert not audio.is_audio_data((["a text", "another"], [0, 1]))
    assert not audio.is_audio_data((np.zeros((2, 8, 8, 3)), [0, 1]))


def test_augmentation_shift_noise_and_gain_stay_in_bounds():
    impulse = np.zeros((64, 16000), "float32")
    impulse[:, 8000] = 10000.0
    shifted = audio.AudioAugmentation(snr_db=(200, 200), gain_db=0, seed=1)(impulse).numpy()
    moved = shifted.argmax(axis=1) - 8000
    assert np.abs(moved).max() <= 1600 and len(set(moved)) > 10

    tone = (3000 * np.sin(np.arange(16000) * 0.05))[None].repeat(32, 0).astype("float32")
    noisy = audio.AudioAugmentation(shift_ms=0, snr_db=(10, 10), gain_db=0, seed=2)(tone).numpy()
    snr = 10 * np.log10(np.mean(tone ** 2, axis=1) / np.mean((noisy - tone) ** 2, axis=1))
    np.testing.assert_allclose(snr, 10, atol=0.01)

    gained = audio.AudioAugmentation(shift_ms=0, snr_db=(200, 200), gain_db=6, seed=3)(tone).numpy()
    gain_db = 20 * np.log10(np.abs(gained).max(axis=1) / 3000)
    assert np.abs(gain_db).max() <= 6.01 and gain_db.std() > 1


def test_audio_dataset_augments_differently_each_epoch_and_checks_augment():
    x = np.tile(np.sin(np.arange(16000) * 0.05) * 3000, (4, 1)).astype("float32")
    dataset = audio.make_audio_dataset(x, [0, 1, 0, 1], batch_size=4, augment=True, seed=0)
    first, second = (next(iter(dataset))[0].numpy() for _ in range(2))
    assert first.shape == (4, 16000) and not np.allclose(first, second)
    again = next(iter(audio.make_audio_dataset(x, [0, 1, 0, 1], batch_size=4, augment=True, seed=0)))[0]
    np.testing.assert_array_equal(again.numpy(), first)  # same seed, same draw
    plain = next(iter(audio.make_audio_dataset(x, [0, 1, 0, 1], batch_size=4)))[0].numpy()
    np.testing.assert_array_equal(plain, x)
    with pytest.raises(ConfigError, match="None, False, True or an AudioAugmentation"):
        audio.make_audio_dataset(x, [0, 1, 0, 1], augment="noise")


def test_shipped_keywords_hold_out_whole_voices():
    from keras_tl.datasets.keywords import load_keywords

    data = load_keywords()
    assert data["train_x"].shape == (600, 16000) and data["test_x"].shape == (180, 16000)
    assert data["class_names"] == ["yes", "no", "up", "down", "left", "right"]
    assert np.bincount(data["test_y"]).tolist() == [30] * 6
    train_voices, test_voices = set(data["train_voices"]), set(data["test_voices"])
    assert len(test_voices) >= 4 and not train_voices & test_voices
    assert np.abs(data["train_x"]).max() <= 32768 and np.abs(data["train_x"]).max() > 3000
    np.testing.assert_array_equal(load_keywords()["test_x"], data["test_x"])  # deterministic noise
