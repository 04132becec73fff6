"""Six spoken keywords synthesised with espeak-ng, shipped with keras_tl.

`keywords_espeak.npz` holds clean speech (8-bit mu-law, trimmed of silence)
for the words yes, no, up, down, left and right, spoken by 26 espeak-ng
voice variants with random English accents, pitch and speed. Six variants
are held out whole for the test split. `load_keywords` places each word in a
1 s clip and mixes in noise, both fixed by the file (offset, gain, SNR and a
seed per clip), so every call returns the same arrays. The noise is mixed
here rather than stored because noise does not compress: the file stays
small. `tools/make_keyword_data.py` regenerates the file; see
`LICENSE-keywords.txt`.
"""

import os

import numpy as np

_FILE = os.path.join(os.path.dirname(__file__), "keywords_espeak.npz")
_MU = 255.0
CLIP_SAMPLES = 16000


def mu_law_encode(waveform):
    """int16-scale audio to 8-bit mu-law codes (G.711's curve, mu = 255).

    Example:
    >>> mu_law_encode(np.array([-32768.0, 0.0, 32767.0])).tolist()
    [0, 128, 255]
    """
    x = np.clip(np.asarray(waveform, "float64") / 32768.0, -1.0, 1.0)
    y = np.sign(x) * np.log1p(_MU * np.abs(x)) / np.log1p(_MU)
    return np.round((y + 1) / 2 * 255).astype("uint8")


def mu_law_decode(codes):
    """8-bit mu-law codes back to float32 int16-scale audio.

    Example:
    >>> mu_law_decode(mu_law_encode(np.array([1000.0]))).round().tolist()
    [978.0]
    """
    y = np.asarray(codes, "float64") / 255 * 2 - 1
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(_MU)) / _MU * 32768.0).astype("float32")


def load_keywords():
    """The shipped keyword set, as a dict of arrays:

    - `train_x`, `test_x`: float32 `[N, 16000]`, 1 s at 16 kHz, int16 scale;
    - `train_y`, `test_y`: int32 class ids;
    - `class_names`: the six words;
    - `train_voices`, `test_voices`: the espeak-ng voice variant of each
      clip (no variant is in both splits).

    Example:
    >>> data = load_keywords()
    >>> data["train_x"].shape, data["test_x"].shape, data["class_names"]
    ((600, 16000), (180, 16000), ['yes', 'no', 'up', 'down', 'left', 'right'])
    >>> sorted(set(data["test_voices"]) & set(data["train_voices"]))
    []
    """
    with np.load(_FILE, allow_pickle=False) as data:
        stored = {key: data[key] for key in data.files}
    out = {"class_names": [str(name) for name in stored["class_names"]]}
    for split in ("train", "test"):
        out[f"{split}_x"] = _clips(stored, split, int(stored["noise_seed"]))
        out[f"{split}_y"] = stored[f"{split}_y"].astype("int32")
        out[f"{split}_voices"] = stored["voices"][stored[f"{split}_voice"]]
    return out


def _clips(stored, split, noise_seed):
    """Each word at its offset and gain in a 1 s clip, plus its noise."""
    codes, bounds = stored[f"{split}_speech"], stored[f"{split}_bounds"]
    offsets, gains_db = stored[f"{split}_offset"], stored[f"{split}_gain_db"]
    snrs_db, colours = stored[f"{split}_snr_db"], stored[f"{split}_noise_colour"]
    base = 0 if split == "train" else 1_000_000
    clips = np.zeros((len(offsets), CLIP_SAMPLES), "float32")
    for i in range(len(offsets)):
        speech = mu_law_decode(codes[bounds[i]:bounds[i + 1]]) * 10 ** (gains_db[i] / 20)
        clips[i, offsets[i]:offsets[i] + len(speech)] = speech
        noise = coloured_noise(CLIP_SAMPLES, colours[i], np.random.default_rng([noise_seed, base + i]))
        speech_rms = np.sqrt(np.mean(np.square(speech)))
        clips[i] += noise * speech_rms * 10 ** (-snrs_db[i] / 20)
    return np.clip(np.round(clips), -32768, 32767)


def coloured_noise(samples, colour, rng):
    """Unit-RMS noise whose power falls as 1/f^colour (0 white, 1 pink,
    2 brown).

    Example:
    >>> noise = coloured_noise(16000, 1, np.random.default_rng(0))
    >>> round(float(np.sqrt(np.mean(noise ** 2))), 3)
    1.0
    """
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    spectrum *= np.maximum(np.arange(len(spectrum)), 1) ** (-colour / 2)
    noise = np.fft.irfft(spectrum, samples)
    return (noise / np.sqrt(np.mean(noise ** 2))).astype("float32")
