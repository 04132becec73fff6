"""The backbone registry: coverage of keras.applications, preprocessing that
matches each family's own `preprocess_input`, keras_hub preset folders."""

import numpy as np
import pytest

import keras_tl
from keras_tl.backbones import Preprocessing, get_backbone_spec


def test_every_keras_applications_model_is_registered():
    import keras

    constructors = {
        name for name in dir(keras.applications)
        if name[0].isupper() and callable(getattr(keras.applications, name))
    }
    registered = {get_backbone_spec(name).source.split(".")[-1] for name in constructors}
    assert registered == constructors
    # and the other way round: nothing registered that this Keras lacks
    # (Keras 3 has no RegNet, which tf.keras had)
    claimed = {get_backbone_spec(name).source.split(".")[-1] for name in keras_tl.list_backbones()
               if get_backbone_spec(name).source.startswith("keras.applications.")}
    assert claimed <= constructors, sorted(claimed - constructors)


@pytest.mark.parametrize("name, module", [
    ("resnet50", "resnet50"), ("mobilenet_v2", "mobilenet_v2"),
    ("densenet121", "densenet"), ("vgg16", "vgg16"), ("xception", "xception"),
])
def test_preprocessing_matches_keras_preprocess_input(name, module):
    import keras

    pixels = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    expected = getattr(keras.applications, module).preprocess_input(pixels.copy())
    layer = get_backbone_spec(name).preprocessing.layer()
    np.testing.assert_allclose(np.asarray(layer(pixels)), expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name, size, channels", [
    ("mobilenet_v2", 32, 1280), ("efficientnet_b0", 32, 1280), ("resnet50", 32, 2048),
])
def test_builds_feature_extractor_without_top(name, size, channels):
    loaded = keras_tl.load_backbone(name, weights=None, image_size=size)
    assert loaded.model.output.shape[-1] == channels
    assert loaded.input_size == (size, size)


def test_aliases_and_case_are_ignored():
    assert get_backbone_spec("EfficientNetV2B0").name == "efficientnet_v2_b0"
    assert get_backbone_spec("mobilenet-v2").name == "mobilenet_v2"


def test_registering_a_name_twice_needs_overwrite():
    spec = get_backbone_spec("resnet50")
    with pytest.raises(ValueError, match="already registered"):
        keras_tl.register_backbone(spec)


def test_preprocessing_modes():
    assert Preprocessing.from_mode("caffe").channel_order == "bgr"
    with pytest.raises(ValueError, match="Unknown preprocessing mode 'zca'"):
        Preprocessing.from_mode("zca")


@pytest.fixture
def resnet_preset(tmp_path):
    import keras_hub

    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16], stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2], block_type="basic_block", image_shape=(None, None, 3))
    folder = str(tmp_path / "tiny_resnet")
    backbone.save_to_preset(folder)
    converter = keras_hub.layers.ResNetImageConverter(
        image_size=(40, 40), scale=1 / 255.0, offset=0.0)
    keras_hub.models.ResNetImageClassifierPreprocessor(image_converter=converter).save_to_preset(folder)
    return folder, backbone


def test_keras_hub_preset_folder_trains_with_its_preprocessing(resnet_preset, tmp_path):
    from tests.helpers import colour_arrays

    folder, original = resnet_preset
    x, y, names = colour_arrays(per_class=6)
    result = keras_tl.finetune(
        (x, y), backbone=folder, stages=[keras_tl.Stage("head", epochs=1)], batch_size=8,
        output_dir=str(tmp_path / "run"), verbose=0, class_names=names)
    assert result.info["input_size"] == [40, 40]
    assert result.info["preprocessing"]["std"] == pytest.approx(255.0)
    assert result.model.input_shape == (None, 40, 40, 3)
    backbone = keras_tl.freezing.get_backbone(result.model)
    for saved, loaded in zip(original.weights, backbone.weights):  # the preset's weights
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(loaded))
    assert len(backbone.weights) == len(original.weights) > 0


def test_a_text_preset_folder_is_refused_for_images(tmp_path):
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=20, num_layers=1, num_heads=1, hidden_dim=4,
        intermediate_dim=8, max_sequence_length=8)
    folder = str(tmp_path / "bert")
    backbone.save_to_preset(folder)
    with pytest.raises(ValueError, match="is a text backbone"):
        keras_tl.load_backbone(folder, modality="image")
