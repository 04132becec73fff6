"""Each kind of bad input gives an error that names the problem and the fix."""

import os

import numpy as np
import pytest

import keras_tl
from tests.helpers import colour_arrays, tiny_backbone, write_image_folder


def _run(data, tmp_path, **kwargs):
    options = dict(backbone=tiny_backbone(), stages=[keras_tl.Stage("head", epochs=1)],
                   output_dir=str(tmp_path / "run"), verbose=0, batch_size=8)
    options.update(kwargs)
    return keras_tl.finetune(data, **options)


def test_missing_data_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="Data folder not found: .*nowhere"):
        _run(str(tmp_path / "nowhere"), tmp_path)


def test_empty_data_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders.*sub-folder named after the class"):
        _run(str(tmp_path / "empty"), tmp_path)


def test_images_without_class_folders(tmp_path):
    root = write_image_folder(tmp_path / "data")
    flat = tmp_path / "flat"
    flat.mkdir()
    for cls in os.listdir(root):
        for f in os.listdir(os.path.join(root, cls)):
            os.rename(os.path.join(root, cls, f), flat / f"{cls}_{f}")
    with pytest.raises(ValueError, match="images but no class sub-folders"):
        _run(str(flat), tmp_path)


def test_class_folder_without_images_is_named(tmp_path):
    root = write_image_folder(tmp_path / "data")
    (tmp_path / "data" / "yellow").mkdir()
    (tmp_path / "data" / "yellow" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"Class folder .*yellow has no images"):
        _run(root, tmp_path)


def test_single_class_folder(tmp_path):
    root = write_image_folder(tmp_path / "data")
    for cls in ("green", "blue"):
        folder = tmp_path / "data" / cls
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    with pytest.raises(ValueError, match="single class \\('red'\\).*at least two"):
        _run(root, tmp_path)


def test_single_class_arrays(tmp_path):
    x, y, _ = colour_arrays()
    with pytest.raises(ValueError, match="same class.*at least two classes"):
        _run((x, np.zeros_like(y)), tmp_path)


def test_corrupt_image_is_named_or_skipped_when_asked(tmp_path, caplog):
    root = write_image_folder(tmp_path / "data")
    bad = tmp_path / "data" / "green" / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match=r"Cannot read image .*green/broken\.jpg.*skip_corrupt"):
        _run(root, tmp_path)
    result = _run(root, tmp_path, skip_corrupt=True)
    assert "broken.jpg" in caplog.text
    assert result.info["num_train"] + result.info["num_validation"] == 24


def test_labels_and_images_of_different_counts(tmp_path):
    x, y, _ = colour_arrays()
    with pytest.raises(ValueError, match="36 images but 35 labels"):
        _run((x, y[:-1]), tmp_path)


def test_image_size_too_small_for_the_backbone(tmp_path):
    x, y, _ = colour_arrays()
    with pytest.raises(ValueError, match="too small for backbone 'xception'.*at least 71x71"):
        _run((x, y), tmp_path, backbone="xception", weights=None, image_size=32)


def test_unknown_backbone_lists_close_names(tmp_path):
    x, y, _ = colour_arrays()
    with pytest.raises(ValueError, match="Unknown backbone 'efficentnet_b0'.*efficientnet_b0"):
        _run((x, y), tmp_path, backbone="efficentnet_b0")
    # typos that contain text-model words ("t5", "fnet") are still image-backbone typos
    for typo in ("resnet5O", "effnet_lite0"):
        with pytest.raises(ValueError, match=f"Unknown backbone '{typo}'"):
            _run((x, y), tmp_path, backbone=typo)


def test_weights_file_of_another_architecture_names_the_layer(tmp_path):
    import keras

    other = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.5)
    path = str(tmp_path / "other.weights.h5")
    other.save_weights(path)
    with pytest.raises(ValueError, match="does not match backbone.*layer 'Conv1'.*shapes"):
        keras_tl.load_backbone("mobilenet_v2", weights=path, image_size=32)
    good = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    good.save_weights(path)
    loaded = keras_tl.load_backbone("mobilenet_v2", weights=path, image_size=32)
    np.testing.assert_array_equal(loaded.model.get_layer("Conv1").get_weights()[0],
                                  good.get_layer("Conv1").get_weights()[0])


def test_imagenet_download_failure_says_what_to_do(monkeypatch, tmp_path):
    import keras

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example/weights.h5: no network")

    monkeypatch.setattr(keras.applications, "ResNet50", offline)
    with pytest.raises(ConnectionError, match="weights=None, a local weights file, or an offline"):
        keras_tl.load_backbone("resnet50")


@pytest.mark.parametrize("option, value, message", [
    ("class_weight", "balance", "class_weight must be None, 'balanced' or"),
    ("class_weight", {0: 1.0, 7: 2.0}, r"keys \[7\] that are not class indices 0..2"),
    ("augment", "flip", "augment must be False, True, a Keras preprocessing layer"),
])
def test_wrong_argument_values_list_the_valid_ones(tmp_path, option, value, message):
    from keras_tl.errors import ConfigError

    x, y, names = colour_arrays()
    with pytest.raises(ConfigError, match=message):
        _run((x, y), tmp_path, class_names=names, **{option: value})
