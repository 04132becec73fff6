"""`keras-tl predict` on ONNX and LiteRT files without TensorFlow or Keras
(issue 18): inputs read by NumPy twins of the TensorFlow ops (the same
pixels and samples), the same predictions as the Keras model, and a cold
start close to ONNX Runtime's own import."""

import io
import os
import subprocess
import sys
import types
import wave

import numpy as np
import pytest
from PIL import Image

from keras_tl.data import numpy_inputs
from tests.helpers import fastest
from tests.test_export import CLASS_NAMES, SIZE, colour_images, tiny_classifier

KERAS_TL = os.path.join(os.path.dirname(sys.executable), "keras-tl")
HEAVY = ("tensorflow", "keras", "keras_hub")


def _image_files(folder):
    """A JPEG with an EXIF rotation, PNG (RGBA, palette, 16-bit gray), BMP,
    GIF and WebP files of sizes around the model's."""
    rng = np.random.default_rng(4)
    files = []
    for i, (fmt, mode, shape) in enumerate([
            ("JPEG", "RGB", (37, 29)), ("JPEG", "L", (300, 200)), ("PNG", "RGBA", (16, 16)),
            ("PNG", "P", (20, 64)), ("PNG", "I;16", (33, 45)), ("BMP", "RGB", (9, 7)),
            ("GIF", "P", (40, 40)), ("WEBP", "RGB", (50, 60))]):
        if mode == "I;16":
            image = Image.fromarray(rng.integers(0, 65536, shape).astype("uint16"))
        else:
            image = Image.fromarray(rng.integers(0, 256, shape + (3,)).astype("uint8")).convert(mode)
        options = {}
        if fmt == "JPEG":
            exif = Image.Exif()
            exif[0x0112] = 6  # rotated 90 degrees
            options = dict(exif=exif.tobytes(), quality=90)
        path = os.path.join(folder, f"image{i}.{fmt.lower()}")
        image.save(path, format=fmt, **options)
        files.append(path)
    return files


def _wav_bytes(rate, width, channels, frames, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(-2 ** (8 * width - 1), 2 ** (8 * width - 1), (frames, channels))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        if width == 1:
            out.writeframes((x + 128).astype("u1").tobytes())
        elif width == 3:
            out.writeframes(np.frombuffer(x.astype("<i4").tobytes(), "u1").reshape(-1, 4)[:, :3]
                            .tobytes())
        else:
            out.writeframes(x.astype(f"<i{width}").tobytes())
    return buffer.getvalue()


def test_images_read_without_tensorflow_are_the_tensorflow_pixels(tmp_path):
    # JPEGs matched once TensorFlow decodes with the accurate IDCT (its
    # default fast one differs from Pillow by up to 9 levels)
    from keras_tl.data.images import read_image

    for path in _image_files(str(tmp_path)):
        for size in (None, (SIZE, SIZE), (224, 224), (30, 200)):
            expected = read_image(path, size)
            got = numpy_inputs.read_image(path, size)
            assert got.shape == expected.shape and np.array_equal(got, expected), (path, size)
    with open(path, "rb") as f:  # bytes and file objects too
        assert np.array_equal(numpy_inputs.read_image(f.read(), (8, 8)), read_image(path, (8, 8)))
    from keras_tl.data.image_decoding import resize_image

    arrays = np.random.default_rng(5).integers(0, 256, (3, 300, 200, 3)).astype("uint8")
    for size in ((224, 224), (16, 30), (480, 100)):  # shrink, grow, both
        assert np.array_equal(numpy_inputs.resize_image(arrays, size),
                              resize_image(arrays, size).numpy()), size


def test_wav_files_read_without_tensorflow_are_the_tensorflow_samples(tmp_path):
    from keras_tl.data.audio.wav import read_wav, read_wav_or_reason

    for rate, width, channels, frames in [(16000, 2, 1, 16000), (8000, 2, 2, 9000),
                                          (44100, 3, 1, 50000), (22050, 1, 1, 10000),
                                          (48000, 4, 2, 30000)]:
        path = tmp_path / f"{rate}_{width}_{channels}.wav"
        path.write_bytes(_wav_bytes(rate, width, channels, frames))
        expected = read_wav(path, 16000)
        got, _ = numpy_inputs.read_wav_or_reason(str(path), 16000)
        # float32 sums in another order: within 1e-6 of the int16 scale
        assert got.shape == expected.shape and np.abs(got - expected).max() < 0.04, path
    for junk in (b"RIFF\0\0\0\0WAVEfmt ", b"hello", b"\xff\xd8\xff\xe0 a JPEG"):
        path = tmp_path / "junk.wav"
        path.write_bytes(junk)
        assert numpy_inputs.read_wav_or_reason(str(path)) == read_wav_or_reason(path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The tiny image classifier of test_export, trained a little and
    exported in every format, and a JPEG and a PNG to predict."""
    from keras_tl.exporters import export

    model = tiny_classifier()
    x, y = colour_images(per_class=8, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    run = types.SimpleNamespace(
        model=model, class_names=CLASS_NAMES, verification_sample=x[:8], metrics={}, config={},
        info={"task": "image_classification", "backbone": "tiny_backbone", "weights": None,
              "input_size": [SIZE, SIZE],
              "preprocessing": {"mean": 127.5, "std": 127.5, "channel_order": "rgb"}})
    folder = tmp_path_factory.mktemp("predict")
    result = export(run, str(folder / "saved_models" / "tiny"))
    rng = np.random.default_rng(7)
    images = [str(folder / "photo.jpg"), str(folder / "drawing.png")]
    Image.fromarray(rng.integers(0, 256, (48, 40, 3)).astype("uint8")).save(images[0], quality=90)
    Image.fromarray(rng.integers(0, 256, (12, 20, 3)).astype("uint8")).save(images[1])
    return types.SimpleNamespace(result=result, model=model, images=images)


def _predict_in_a_fresh_process(*args):
    code = ("import sys\n"
            f"sys.argv = ['keras-tl', 'predict', *{list(args)!r}]\n"
            "from keras_tl import cli\n"
            "code = cli.main()\n"
            f"print(code, sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    *lines, last = done.stdout.strip().splitlines()
    return lines, last


def test_predict_on_onnx_and_litert_imports_neither_tensorflow_nor_keras(exported):
    from keras_tl.data.images import read_image

    pixels = np.stack([read_image(p, (SIZE, SIZE)) for p in exported.images]).astype("float32")
    expected = exported.model.predict(pixels, verbose=0)  # TensorFlow's pixels, Keras' outputs
    files = exported.result.files
    for source in (files["onnx"], files["litert_float32"]):
        lines, last = _predict_in_a_fresh_process(source, *exported.images, "--top", "3")
        assert last == "0 []", (source, last)
        for line, path, row in zip(lines, exported.images, expected):
            given, predicted = line.split(": ")
            pairs = [item.rsplit(" ", 1) for item in predicted.split(", ")]
            assert given == path
            assert [name for name, _ in pairs] == [CLASS_NAMES[i] for i in np.argsort(-row)], source
            assert np.allclose([float(p) for _, p in pairs], np.sort(row)[::-1], atol=1e-3)
    from keras_tl.exporters.predict import load_export

    for source in (files["onnx"], files["litert_float32"], exported.result.path):
        predictions = load_export(source).predict(exported.images, top=3)
        for prediction, row in zip(predictions, expected):
            assert [n for n, _ in prediction] == [CLASS_NAMES[i] for i in np.argsort(-row)]
            assert np.allclose([p for _, p in prediction], np.sort(row)[::-1], atol=1e-5), source


def test_cold_predict_on_onnx_is_within_three_times_importing_onnxruntime(exported, tmp_path,
                                                                          capsys):
    # both with compiled modules, as installed (the first of the runs compiles them)
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(tmp_path / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    bare, _ = fastest([sys.executable, "-c", "import onnxruntime"], env=env)
    predict, done = fastest([KERAS_TL, "predict", exported.result.files["onnx"],
                             exported.images[0]], env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    with capsys.disabled():
        print(f"\n  cold predict on ONNX {predict:.2f} s, bare onnxruntime import {bare:.2f} s "
              f"({predict / bare:.1f}x)")
    # before: TensorFlow read the image (~20x)
    assert predict <= 3 * bare, (predict, bare)


# -- wrong-kind inputs ----------------------------------------------------------
def test_an_image_model_given_a_wav_or_text_file_says_it_takes_images(exported, tmp_path):
    sound = tmp_path / "yes.wav"
    sound.write_bytes(_wav_bytes(16000, 2, 1, 1600))
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    for wrong in (sound, notes):
        done = subprocess.run([KERAS_TL, "predict", exported.result.files["onnx"],
                               exported.images[0], str(wrong)],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines() == [
            "keras-tl predict: error: This model takes images (.jpg, .png, .bmp, .gif, .webp, "
            f".tif): {wrong} is not one."]
        assert not done.stdout


def test_a_text_model_warns_about_a_file_and_reads_texts_from_one(tmp_path, monkeypatch, capsys):
    from keras_tl import cli
    from keras_tl.exporters import predict as predict_module

    given = []

    class TextExport:  # what load_export returns for a text model, without one
        task = types.SimpleNamespace(modality="text")

        def predict(self, inputs, top=3, tta=False):
            given.append(list(inputs))
            return [[("positive", 0.75)] for _ in inputs]

    monkeypatch.setattr(predict_module, "load_export", lambda path: TextExport())
    export = tmp_path / "model.onnx"
    export.write_bytes(b"")
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (4, 4)).save(photo)
    assert cli.main(["predict", str(export), str(photo)]) == 0
    assert f"{photo} is a file; this model takes texts" in capsys.readouterr().err
    (tmp_path / "reviews.csv").write_text("id,text\n1,great tea\n2,\n3,\"stale, bland\"\n")
    (tmp_path / "reviews.txt").write_text("great tea\n\nawful\n")
    assert cli.main(["predict", str(export), "--texts-from", str(tmp_path / "reviews.csv")]) == 0
    assert cli.main(["predict", str(export), "--texts-from", str(tmp_path / "reviews.txt")]) == 0
    assert given[1:] == [["great tea", "stale, bland"], ["great tea", "awful"]]
    assert capsys.readouterr().out.splitlines()[-1] == "awful: positive 0.750"
    TextExport.task = types.SimpleNamespace(modality="audio")  # a keyword model given a JPEG
    assert cli.main(["predict", str(export), str(photo)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"keras-tl predict: error: This model takes WAV files (.wav): {photo} is not one.")
    assert cli.main(["predict", str(export), "--texts-from", str(tmp_path / "reviews.txt")]) == 2
    assert "--texts-from is for text models; this model takes WAV files" in capsys.readouterr().err


# -- every unreadable training image named at once ------------------------------
def test_every_unreadable_image_of_a_class_folder_is_named_at_once(image_folder):
    from keras_tl.data.image_sources import FileSource
    from keras_tl.errors import DataError

    broken = []
    for name in sorted(os.listdir(image_folder))[:2]:
        path = os.path.join(image_folder, name, "broken.jpg")
        with open(path, "wb") as f:
            f.write(b"not a jpeg")
        broken.append(path)
    with pytest.raises(DataError) as error:
        FileSource.from_folder(image_folder, (SIZE, SIZE))
    message = str(error.value)
    assert message.startswith("2 files cannot be read as images: "), message
    assert all(f"{path} (cannot identify image file)" in message for path in broken), message
    assert "BytesIO" not in message


# -- progress lines: feature caching and export -----------------------------------
def test_caching_and_export_print_progress_lines_unless_silent(image_folder, tmp_path, capsys):
    from keras_tl import cli

    def finetune(out, verbose):
        assert cli.main(["finetune", image_folder, "--backbone", "mobilenet_v2", "--weights",
                         "none", "--image-size", "32", "--batch-size", "8", "--head-epochs", "1",
                         "--finetune-epochs", "0", "--verbose", verbose, "--output", out]) == 0
        return capsys.readouterr().err

    assert "Caching backbone features" not in finetune(str(tmp_path / "quiet"), "0")
    err = finetune(str(tmp_path / "run"), "2")
    # 24 images, 20 % held out per class: 18 + 6, in batches of 8
    assert "Caching backbone features of the training data: 3 batches" in err, err
    assert "Caching backbone features of the validation data: 1 batch\n" in err, err
    assert "  batch 2/3 (67%), 16 examples, " in err, err
    assert "  cached 18 examples in " in err and "  cached 6 examples in " in err, err

    root = tmp_path / "saved_models"
    assert cli.main(["export", str(tmp_path / "run"), "--name", "photos", "--root", str(root),
                     "--formats", "onnx"]) == 0
    lines = [line.split("] ", 1)[-1] for line in capsys.readouterr().err.splitlines()]
    version = root / "photos" / "1"
    assert f"wrote saved_model {version}" in lines, lines
    assert f"wrote onnx {version / 'model.onnx'}" in lines, lines
    verified = [line for line in lines if line.startswith(f"verified onnx {version / 'model.onnx'} (")]
    assert verified and "max_abs_diff" in verified[0], lines
    assert any(line.startswith(f"verified saved_model/serving_default {version} (") for line in lines)
