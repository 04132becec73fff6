"""One image-reading path: training and predict (`read_image`) and the
SavedModel's `serving_bytes`, run in a TensorFlow-only process, read real
photos to the same pixels and the same probabilities."""

import io
import json
import logging

import numpy as np
import pytest

from keras_tl.data import image_decoding
from keras_tl.data.image_sources import read_image_source
from keras_tl.data.images import prepare_images, read_image
from keras_tl.errors import DataError
from tests.test_export import SERVING_CHECK, run_python

SIZE = 32
CLASSES = ["astronaut", "coffee", "chelsea"]
# Orientation -> the PIL transpose that turns the stored image upright.
UPRIGHT = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
           6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}
# The inverse transposes, to store an upright photo as a camera would.
STORED = {**UPRIGHT, 6: "ROTATE_90", 8: "ROTATE_270"}


def _photos():
    from skimage import data
    from sklearn.datasets import load_sample_image

    return {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea(),
            "china": load_sample_image("china.jpg"), "rocket": data.rocket(),
            "camera": data.camera()}


def _save(image, path, **options):
    image.save(path, **options)
    return str(path)


def _exif(orientation):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _sixteen_bit(photo):
    """16-bit values whose low byte is set too: round(v / 257) gives back photo."""
    return (photo.astype("int64") * 257 + np.where(photo < 255, 100, 0)).astype("uint16")


def _transpose(array, name):
    from PIL import Image

    return np.asarray(Image.fromarray(array).transpose(getattr(Image.Transpose, name)))


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    """{name: path}: real photos in every format read, JPEGs at several sizes."""
    import tensorflow as tf
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    photos = {name: Image.fromarray(array) for name, array in _photos().items()}
    files = {
        "jpeg_512x512": _save(photos["astronaut"], root / "astronaut.jpg", quality=90),
        "jpeg_400x600": _save(photos["coffee"], root / "coffee.jpg", quality=85),
        "jpeg_427x640": _save(photos["china"], root / "china.jpg"),
        "jpeg_151x226": _save(photos["chelsea"].resize((226, 151)), root / "chelsea.jpg"),
        "jpeg_97x145": _save(photos["rocket"].resize((145, 97)), root / "rocket.jpg"),
        "jpeg_20x30_upscaled": _save(photos["chelsea"].resize((30, 20)), root / "small.jpg"),
        "jpeg_progressive": _save(photos["coffee"], root / "progressive.jpg", progressive=True),
        "jpeg_grayscale": _save(photos["camera"], root / "camera.jpg"),
        "png_palette": _save(photos["coffee"].quantize(64), root / "palette.png"),
        "png_rgba": _save(photos["astronaut"].convert("RGBA"), root / "rgba.png"),
        "gif": _save(photos["chelsea"], root / "chelsea.gif"),
        "bmp_24_bit": _save(photos["rocket"], root / "rocket.bmp"),
        "bmp_palette": _save(photos["coffee"].quantize(64), root / "palette.bmp"),
        "webp_lossy": _save(photos["china"], root / "china.webp", quality=80),
        "webp_lossless": _save(photos["chelsea"], root / "chelsea.webp", lossless=True),
    }
    rgba = np.asarray(photos["astronaut"].convert("RGBA")).copy()
    rgba[..., 3] = np.linspace(0, 255, rgba.shape[1]).astype("uint8")  # alpha ramp
    files["png_rgba"] = _save(Image.fromarray(rgba), root / "rgba.png")
    for orientation in (3, 6, 8):
        stored = photos["chelsea"].transpose(getattr(Image.Transpose, STORED[orientation]))
        files[f"jpeg_exif_{orientation}"] = _save(
            stored, root / f"exif{orientation}.jpg", exif=_exif(orientation), quality=95)
    files["jpeg_upright"] = _save(photos["chelsea"], root / "upright.jpg", quality=95)
    files["png_16_bit_gray"] = _save(Image.fromarray(_sixteen_bit(_photos()["camera"])),
                                     root / "gray16.png")
    files["png_16_bit_rgb"] = str(root / "rgb16.png")  # PIL writes no 16-bit RGB
    tf.io.write_file(files["png_16_bit_rgb"],
                     tf.io.encode_png(tf.constant(_sixteen_bit(_photos()["coffee"]))))
    files["tiff"] = _save(photos["coffee"], root / "coffee.tiff")
    return files


def _decodable(photo_files):
    return {name: path for name, path in photo_files.items() if name != "tiff"}


@pytest.fixture(scope="module")
def finetuned():
    """A `FinetuneResult` of a small CNN trained on crops of three photos:
    confident, so probabilities move with the pixels (keras_tl.finetune's
    tiny test backbone stays near uniform on these)."""
    import keras

    from keras_tl.result import FinetuneResult

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    photos = _photos()
    crops, labels = [], []
    for label, name in enumerate(CLASSES):
        for _ in range(16):
            top, left = rng.integers(0, 200, size=2)
            crops.append(photos[name][top:top + 96, left:left + 96])
            labels.append(label)
    inputs = keras.Input((SIZE, SIZE, 3), name="images")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(len(CLASSES), activation="softmax")(x))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(prepare_images(np.stack(crops), (SIZE, SIZE)).astype("float32"),
              np.asarray(labels), epochs=30, batch_size=16, verbose=0)
    return FinetuneResult(model=model, class_names=CLASSES, histories={}, metrics={},
                          info={"input_size": [SIZE, SIZE]}, config={})


@pytest.fixture(scope="module")
def predicted(finetuned, photo_files):
    """FinetuneResult.predict's probabilities for each readable file, in
    class order."""
    top = finetuned.predict(list(_decodable(photo_files).values()), top=len(CLASSES))
    return np.asarray([[dict(row)[name] for name in finetuned.class_names] for row in top])


@pytest.fixture(scope="module")
def served(finetuned, photo_files, bomb_png, tmp_path_factory):
    """serving_bytes of two SavedModels, in one TensorFlow-only process
    (tests/serving_check.py --files): an identity model, whose outputs are
    the pixels it was given, and the fine-tuned classifier."""
    import keras

    from keras_tl.exporters.saved_model import write_saved_model
    from keras_tl.tasks import get_task

    def save(model, name, class_names):
        spec = get_task("image_classification").export_spec(
            model, {"input_size": [SIZE, SIZE]}, class_names)
        return write_saved_model(spec, str(root / name))

    root = tmp_path_factory.mktemp("served")
    inputs = keras.Input((SIZE, SIZE, 3))
    identity = keras.Model(inputs, keras.layers.Flatten()(inputs))
    models = {"pixels": save(identity, "pixels", [str(i) for i in range(SIZE * SIZE * 3)]),
              "classifier": save(finetuned.model, "classifier", finetuned.class_names)}
    request = root / "request.json"
    request.write_text(json.dumps({"models": list(models.values()),
                                   "files": list(photo_files.values()) + [bomb_png]}))
    answer = json.loads(run_python([SERVING_CHECK, "--files", str(request)])
                        .strip().splitlines()[-1])
    assert answer["keras_modules_loaded"] == []
    return {name: answer["reports"][path] for name, path in models.items()}


@pytest.fixture(scope="module")
def bomb_png(tmp_path_factory):
    """A valid 10000x10000 PNG (12 KB) over the decompression-bomb limit."""
    from PIL import Image

    return _save(Image.new("1", (10000, 10000)), tmp_path_factory.mktemp("bomb") / "bomb.png")


def test_serving_bytes_decodes_the_pixels_read_image_gives(served, photo_files, bomb_png):
    """The identity model's outputs are the pixels serving_bytes decoded."""
    report = served["pixels"]
    files = _decodable(photo_files)
    differences = {}
    for name, file in files.items():
        pixels = np.asarray(report["files"][file]["probabilities"]).reshape(SIZE, SIZE, 3)
        differences[name] = int(np.abs(pixels - read_image(file, (SIZE, SIZE))).max())
    print("max pixel difference, serving_bytes vs read_image:", differences)
    assert differences == {name: 0 for name in files}
    assert report["files"][photo_files["tiff"]]["error"].startswith("unsupported image format")
    assert read_image(photo_files["tiff"], (SIZE, SIZE)).shape == (SIZE, SIZE, 3)  # via PIL
    assert "over the decompression-bomb limit" in report["files"][bomb_png]["error"]


def test_serving_bytes_gives_the_probabilities_of_predict(served, predicted, photo_files):
    report = served["classifier"]
    files = _decodable(photo_files)
    expected = predicted
    probabilities = np.asarray([report["files"][f]["probabilities"] for f in files.values()])
    differences = np.abs(probabilities - expected).max(axis=1)
    print("max probability difference, serving_bytes vs predict:",
          {name: f"{gap:.1e}" for name, gap in zip(files, differences)})
    assert differences.max() <= 0.01
    assert np.array_equal(probabilities.argmax(1), expected.argmax(1))
    np.testing.assert_allclose(report["batch_probabilities"], probabilities, atol=1e-5)


def test_serving_default_refuses_a_batch_of_the_wrong_size(served):
    assert served["classifier"]["wrong_size_error"] == (
        f"serving_default takes images of shape [batch, {SIZE}, {SIZE}, 3] (the input size "
        f"of the model), got [2 {2 * SIZE} {2 * SIZE} 3]: resize them first, or send the "
        "encoded files to serving_bytes")


def test_the_former_serving_decode_was_far_from_predict(finetuned, predicted, photo_files):
    """What the checks above would catch: the decode serving_bytes had (no
    antialiasing, no EXIF orientation) against predict on the same photos."""
    import tensorflow as tf

    def former(file):
        image = tf.io.decode_image(tf.io.read_file(file), channels=3, expand_animations=False)
        return tf.image.resize(tf.cast(image, tf.float32), (SIZE, SIZE), method="bilinear")

    files = _decodable(photo_files)
    former_probabilities = finetuned.model.predict(
        np.stack([former(f) for f in files.values()]), verbose=0)
    gaps = np.abs(former_probabilities - predicted).max(axis=1)
    print("max probability difference, former serving decode vs predict:",
          dict(zip(files, gaps.round(3).tolist())))
    assert gaps.max() > 0.05


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_rotated_jpeg_reads_as_the_upright_photo(photo_files, orientation):
    from PIL import Image

    upright = read_image(photo_files["jpeg_upright"]).astype(int)
    rotated = read_image(photo_files[f"jpeg_exif_{orientation}"]).astype(int)
    assert rotated.shape == upright.shape == (300, 451, 3)
    noise = np.abs(rotated - upright).mean()
    print(f"orientation {orientation}: mean |difference| to upright {noise:.2f}")
    assert noise < 3  # JPEG noise
    if orientation == 3:  # the stored pixels, not turned, are far from upright
        with Image.open(photo_files["jpeg_exif_3"]) as image:
            assert np.abs(np.asarray(image).astype(int) - upright).mean() > 20


@pytest.mark.parametrize("orientation", range(1, 9))
def test_each_exif_orientation_turns_like_pil(orientation, tmp_path):
    """Same JPEG scan with and without the tag: exact; PNG eXIf and WebP
    EXIF chunks (lossless): exactly PIL's exif_transpose."""
    from PIL import Image, ImageOps

    photo = Image.fromarray(_photos()["chelsea"][:61, :97])  # odd, non-square
    plain = read_image(_save(photo, tmp_path / "plain.jpg", quality=90))
    tagged = read_image(_save(photo, tmp_path / "tagged.jpg", quality=90, exif=_exif(orientation)))
    turned = plain if orientation == 1 else _transpose(plain, UPRIGHT[orientation])
    np.testing.assert_array_equal(tagged, turned)
    for suffix, options in ((".png", {}), (".webp", {"lossless": True})):
        path = _save(photo, tmp_path / f"tagged{suffix}", exif=_exif(orientation), **options)
        with Image.open(path) as image:
            expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        np.testing.assert_array_equal(read_image(path), expected)


def test_lossless_formats_decode_exactly_as_pil(photo_files):
    from PIL import Image

    for name in ("png_palette", "png_rgba", "gif", "bmp_24_bit", "bmp_palette", "webp_lossless"):
        with Image.open(photo_files[name]) as image:
            expected = np.asarray(image.convert("RGB"))  # alpha dropped, palette applied
        np.testing.assert_array_equal(read_image(photo_files[name]), expected, err_msg=name)
    jpeg = photo_files["jpeg_400x600"]
    with Image.open(jpeg) as image:
        gap = np.abs(read_image(jpeg).astype(int) - np.asarray(image)).mean()
    assert gap < 1.0  # TensorFlow's and PIL's JPEG decoders differ by rounding


def test_16_bit_images_are_scaled_to_0_255_not_clipped(photo_files, tmp_path):
    from PIL import Image

    camera = np.repeat(_photos()["camera"][..., None], 3, axis=-1)
    np.testing.assert_array_equal(read_image(photo_files["png_16_bit_gray"]), camera)
    tiff = _save(Image.fromarray(_sixteen_bit(_photos()["camera"])), tmp_path / "gray16.tiff")
    np.testing.assert_array_equal(read_image(tiff), camera)  # PIL's path
    np.testing.assert_array_equal(read_image(photo_files["png_16_bit_rgb"]), _photos()["coffee"])
    scaled = image_decoding.scale_16_bit([65535, 257 * 200 + 128, 257 * 200 + 129])
    assert scaled.numpy().tolist() == [255, 200, 201]


def test_arrays_and_files_are_resized_alike(tmp_path):
    from PIL import Image

    photo = _photos()["coffee"]
    path = _save(Image.fromarray(photo), tmp_path / "coffee.png")
    np.testing.assert_array_equal(read_image(path, (SIZE, 48)),
                                  prepare_images(photo[None], (SIZE, 48))[0])
    # Antialiased: one-pixel stripes shrink to flat grey, not to stripes.
    stripes = np.zeros((2, 64, 64, 3), "uint8")
    stripes[:, :, ::2] = 255
    inside = prepare_images(stripes, (16, 16))[:, 1:-1, 1:-1]  # the border is weighted
    assert inside.min() >= 127 and inside.max() <= 128


def test_decompression_bomb_is_a_data_error_or_skipped(bomb_png, tmp_path, caplog):
    import shutil

    from PIL import Image

    from tests.helpers import write_image_folder

    root = write_image_folder(tmp_path / "data", per_class=2)
    shutil.copy(bomb_png, tmp_path / "data" / "red" / "bomb.png")
    with pytest.raises(DataError, match=r"red/bomb\.png: image of 10000x10000 pixels is over "
                                        r"the decompression-bomb limit of 89478485 pixels"):
        read_image_source(root, (8, 8))
    with caplog.at_level(logging.WARNING, logger="keras_tl"):
        source = read_image_source(root, (8, 8), skip_corrupt=True)
    assert len(source.sample(10)) == 6 and "bomb.png" in caplog.text
    tiff = _save(Image.new("1", (10000, 10000)), tmp_path / "bomb.tiff", compression="group4")
    with pytest.raises(DataError, match="bomb.tiff: image of 10000x10000 pixels is over"):
        read_image(tiff)


def test_truncated_or_unknown_files_are_named(photo_files, tmp_path):
    with open(photo_files["jpeg_400x600"], "rb") as f:
        data = f.read()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match=r"Cannot read image .*truncated\.jpg: .*skip_corrupt"):
        read_image(str(truncated))
    text = tmp_path / "text.jpg"
    text.write_bytes(b"plain text")
    with pytest.raises(DataError, match=r"Cannot read image .*text\.jpg: cannot identify"):
        read_image(str(text))
