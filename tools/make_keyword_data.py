"""Regenerates keras_tl/datasets/keywords_espeak.npz with espeak-ng, and
measures what the speech encoder's embeddings are worth on it.

    apt-get install -y espeak-ng        # Debian; espeak-ng 1.51 made the shipped file
    python tools/make_keyword_data.py             # writes the .npz (fixed seed)
    python tools/make_keyword_data.py --evaluate  # logistic regression on frozen
                                                  # embeddings vs on log-mel features

Each of the 26 voices is an espeak-ng voice variant (m1, f3, klatt2...); every
clip draws an English accent, a pitch and a speed at random. Six variants
are held out whole for the test split. The file stores clean speech as 8-bit
mu-law with per-clip placement, gain, noise colour and SNR; `load_keywords`
mixes the noise in (deterministically), which keeps the file small.
"""

import argparse
import os
import subprocess
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

WORDS = ["yes", "no", "up", "down", "left", "right"]
ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
TRAIN_VOICES = ["m1", "m2", "m3", "m5", "m6", "m7", "f1", "f3", "f4", "klatt", "klatt2",
                "klatt4", "Alex", "Annie", "aunty", "benjamin", "david", "linda", "max", "paul"]
TEST_VOICES = ["m4", "f2", "f5", "klatt3", "Andy", "steph"]
TAKES = 5  # per voice and word
SEED = 20240607
PITCH = (20, 80)  # espeak-ng -p
SPEED = (120, 220)  # espeak-ng -s, words per minute
GAIN_DB = (-20.0, -2.0)  # relative to the stored peak of 30000
SNR_DB = (5.0, 20.0)
STORED_PEAK = 30000.0
SILENCE = 150.0  # int16-scale level below which leading/trailing samples are trimmed
OUTPUT = os.path.join(os.path.dirname(__file__), "..", "keras_tl", "datasets", "keywords_espeak.npz")


def speak(word, voice, accent, pitch, speed):
    """One espeak-ng rendition, 16 kHz float32, silence trimmed, peak-normalised."""
    from keras_tl.data.audio import SAMPLE_RATE, decode_wav, resample

    wav = subprocess.run(
        ["espeak-ng", "-v", f"{accent}+{voice}", "-p", str(pitch), "-s", str(speed), "--stdout", word],
        check=True, capture_output=True,
    ).stdout
    waveform, rate = decode_wav(wav)
    waveform = resample(waveform, rate, SAMPLE_RATE).numpy()
    loud = np.flatnonzero(np.abs(waveform) > SILENCE)
    margin = SAMPLE_RATE // 100  # 10 ms
    waveform = waveform[max(loud[0] - margin, 0):loud[-1] + margin]
    return waveform * (STORED_PEAK / np.abs(waveform).max())


def build(path=OUTPUT):
    from keras_tl.datasets.keywords import CLIP_SAMPLES, mu_law_encode

    rng = np.random.default_rng(SEED)
    voices = TRAIN_VOICES + TEST_VOICES
    arrays = {"class_names": np.array(WORDS), "voices": np.array(voices), "noise_seed": np.int64(SEED)}
    for split, names in (("train", TRAIN_VOICES), ("test", TEST_VOICES)):
        codes, bounds, rows = [], [0], []
        for voice in names:
            for label, word in enumerate(WORDS):
                for _ in range(TAKES):
                    accent = ACCENTS[rng.integers(len(ACCENTS))]
                    speech = speak(word, voice, accent, rng.integers(*PITCH), rng.integers(*SPEED))
                    speech = speech[:CLIP_SAMPLES]
                    codes.append(mu_law_encode(speech))
                    bounds.append(bounds[-1] + len(speech))
                    rows.append((
                        label, voices.index(voice), rng.integers(0, CLIP_SAMPLES - len(speech) + 1),
                        rng.uniform(*GAIN_DB), rng.uniform(*SNR_DB), rng.integers(0, 3),
                    ))
        label, voice, offset, gain, snr, colour = map(np.array, zip(*rows))
        arrays.update({
            f"{split}_speech": np.concatenate(codes), f"{split}_bounds": np.array(bounds, "int64"),
            f"{split}_y": label.astype("int8"), f"{split}_voice": voice.astype("int8"),
            f"{split}_offset": offset.astype("int32"), f"{split}_gain_db": gain.astype("float32"),
            f"{split}_snr_db": snr.astype("float32"), f"{split}_noise_colour": colour.astype("int8"),
        })
    np.savez_compressed(path, **arrays)  # numpy writes fixed zip timestamps: same arrays, same bytes
    print(f"wrote {os.path.normpath(path)}: {os.path.getsize(path) / 1e6:.2f} MB, "
          f"{len(arrays['train_y'])} train and {len(arrays['test_y'])} test clips")


def evaluate():
    """Frozen embeddings vs log-mel features, logistic regression, held-out voices."""
    import keras
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from keras_tl.backbones.speech_embedding import LogMelSpectrogram, load_speech_encoder
    from keras_tl.datasets.keywords import load_keywords

    data = load_keywords()
    encoder = load_speech_encoder(1.0)
    mel = LogMelSpectrogram()
    features = {
        "frozen speech embeddings": lambda x: encoder.predict(x, batch_size=64, verbose=0),
        "raw log-mel": lambda x: keras.ops.convert_to_numpy(mel(x)),
    }
    results = {}
    for name, extract in features.items():
        train = extract(data["train_x"]).reshape(len(data["train_x"]), -1)
        test = extract(data["test_x"]).reshape(len(data["test_x"]), -1)
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
        classifier.fit(train, data["train_y"])
        results[name] = float((classifier.predict(test) == data["test_y"]).mean())
        print(f"{name}: {train.shape[1]} features, test accuracy {results[name]:.3f} "
              f"({len(test)} clips, held-out voices {', '.join(sorted(set(data['test_voices'])))})")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluate", action="store_true", help="measure instead of writing the file")
    parser.add_argument("--output", default=OUTPUT)
    args = parser.parse_args(argv)
    if args.evaluate:
        evaluate()
    else:
        build(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
