"""`keras_tl.load_backbone`: one builder, each entry point and what it
refuses."""

import json

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.backbones import LoadedBackbone, builder
from keras_tl.errors import BackboneError
from keras_tl.tasks.image_classifier import build_image_classifier


def _classifier():
    return build_image_classifier(
        keras_tl.load_backbone("mobilenet_v2", weights=None, image_size=32), 3)


def test_a_registered_name_loads_each_modality():
    image = keras_tl.load_backbone("mobilenet_v2", weights=None, image_size=32)
    text = keras_tl.load_backbone("minilm", weights=None, input_size=(8,))
    audio = keras_tl.load_backbone("speech_embedding", weights=None)
    assert (image.spec.modality, image.input_size) == ("image", (32, 32))
    assert (text.spec.name, text.input_size, text.weights) == ("all_minilm_l6_v2", (8,), "None")
    assert text.preprocessor(["a text"])["token_ids"].shape == (1, 8)
    assert (audio.spec.modality, audio.model.output.shape) == ("audio", (None, 3, 96))


def test_a_loaded_backbone_is_returned_as_it_is():
    loaded = keras_tl.load_backbone("mobilenet_v2", weights=None, image_size=32)
    assert keras_tl.load_backbone(loaded) is loaded


def test_whatever_has_as_backbone_hands_itself_over():
    loaded = keras_tl.load_backbone("mobilenet_v2", weights=None, image_size=32)

    class Run:
        def as_backbone(self, input_size):
            self.asked = input_size
            return loaded

    run = Run()
    assert keras_tl.load_backbone(run, image_size=32) is loaded
    assert run.asked == 32


@pytest.mark.core
def test_a_finished_run_gives_its_trained_backbone(tmp_path):
    model = _classifier()
    result = keras_tl.FinetuneResult(model=model, class_names=["a", "b", "c"], histories={},
                                     metrics={}, info={"backbone": "mobilenet_v2"}, config={},
                                     output_dir="runs/x")
    from_result = keras_tl.load_backbone(result)
    (tmp_path / "run").mkdir()
    model.save(str(tmp_path / "run" / "model.keras"))
    (tmp_path / "run" / "run.json").write_text(json.dumps({"info": {"backbone": "mobilenet_v2"}}))
    from_folder = keras_tl.load_backbone(tmp_path / "run")
    for loaded in (from_result, from_folder):
        assert (loaded.spec.name, loaded.input_size) == ("mobilenet_v2", (32, 32))
        assert loaded.spec.preprocessing == keras_tl.Preprocessing.from_mode("tf")
        for a, b in zip(loaded.model.get_weights(), model.get_layer("backbone").get_weights()):
            np.testing.assert_array_equal(a, b)
    assert from_result.weights == "fine-tuned (run runs/x)"
    with pytest.raises(BackboneError, match="holds no model.keras"):
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "run.json").write_text("{}")
        keras_tl.load_backbone(str(tmp_path / "empty"))


def test_a_bare_keras_model_is_an_image_backbone_with_its_preprocessing():
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs), name="mine")
    loaded = keras_tl.load_backbone(model, preprocessing="torch")
    assert (loaded.spec.name, loaded.input_size, loaded.weights) == ("mine", (16, 16), "user")
    assert loaded.spec.preprocessing == keras_tl.Preprocessing.from_mode("torch")


def test_local_keras_hub_presets_load_by_their_kind(tmp_path):
    import keras_hub

    from tests.helpers import save_tiny_preset

    image = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64],
        stackwise_num_blocks=[1], stackwise_num_strides=[1], block_type="basic_block",
        image_shape=(None, None, 3))
    image.save_to_preset(str(tmp_path / "resnet"))
    text_folder = save_tiny_preset(tmp_path / "bert")
    loaded_image = keras_tl.load_backbone(str(tmp_path / "resnet"), image_size=32)
    loaded_text = keras_tl.load_backbone(text_folder, input_size=(8,))
    assert (loaded_image.spec.modality, loaded_image.input_size) == ("image", (32, 32))
    assert loaded_image.spec.source.startswith("keras_hub preset")
    assert (loaded_text.spec.modality, loaded_text.input_size) == ("text", (8,))
    assert loaded_text.input_names == ["padding_mask", "segment_ids", "token_ids"]
    with pytest.raises(BackboneError, match=r"is a text backbone \(BertBackbone\); pass text data"):
        keras_tl.load_backbone(text_folder, modality="image")
    with pytest.raises(BackboneError, match=r"not a text encoder \(ResNetBackbone\)"):
        keras_tl.load_text_encoder(str(tmp_path / "resnet"))


def test_what_it_cannot_load_is_one_line_error():
    with pytest.raises(BackboneError) as info:
        keras_tl.load_backbone(3.5)
    assert str(info.value) == (
        "Cannot load a backbone from a float: pass a registry name (keras_tl.list_backbones()), "
        "a keras_hub preset or model folder, a keras.Model, a finished run or a LoadedBackbone.")
    with pytest.raises(BackboneError, match=r"^'mobilenet_v2' is a image backbone") as info:
        keras_tl.load_backbone("mobilenet_v2", weights=None, image_size=32, modality="audio")
    assert "\n" not in str(info.value)


def test_the_builder_does_not_import_the_run_module():
    import ast
    import pathlib

    source = pathlib.Path(builder.__file__).read_text()
    imported = {node.module for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.ImportFrom)}
    assert "keras_tl.result" not in imported
    assert isinstance(keras_tl.load_backbone(
        "mobilenet_v2", weights=None, image_size=32), LoadedBackbone)
