"""keras_tl.export: SavedModel, ONNX and LiteRT, each checked against Keras."""

import json
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVING_CHECK = os.path.join(ROOT, "tests", "serving_check.py")
DOC = os.path.join(ROOT, "docs", "serving.md")
CLASS_NAMES = ["red", "green", "blue"]
SIZE = 16


def tiny_classifier(seed=0):
    """A 3-class keras_tl image classifier on a two-conv backbone, with
    "tf" preprocessing; its second conv (4608 weights) gets int8-quantized."""
    import dataclasses

    import keras

    from keras_tl.backbones import Preprocessing, load_backbone
    from keras_tl.tasks.image_classifier import build_image_classifier

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    loaded = load_backbone(keras.Model(inputs, x, name="tiny_backbone"))
    loaded.spec = dataclasses.replace(loaded.spec, preprocessing=Preprocessing.from_mode("tf"))
    return build_image_classifier(loaded, len(CLASS_NAMES))


def random_images(count, seed, size=SIZE):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, size, size, 3)).astype("float32")


def run_python(args, backend=None, timeout=600):
    """Runs `python args...` from the repo root; returns stdout."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    if backend:
        env["KERAS_BACKEND"] = backend
    done = subprocess.run([sys.executable] + list(args), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def serving_check(version_dir, images, reference, tmp_path):
    """The TensorFlow-only report of tests/serving_check.py."""
    arrays = os.path.join(tmp_path, "arrays.npz")
    np.savez(arrays, images=images, reference=reference)
    return json.loads(run_python([SERVING_CHECK, version_dir, arrays]).strip().splitlines()[-1])


def assert_serving_contract(report, count, classes=len(CLASS_NAMES), size=SIZE, tol=1e-5):
    outputs = {
        "probabilities": ["float32", [None, classes]],
        "class_ids": ["int64", [None]],
        "class_names": ["string", [None]],
    }
    assert report["signatures"] == {
        "serving_default": {"inputs": {"images": ["float32", [None, size, size, 3]]},
                            "outputs": outputs},
        "serving_bytes": {"inputs": {"image_bytes": ["string", [None]]},
                          "outputs": outputs},
    }
    for name in ("serving_default", "serving_bytes"):
        out = report["outputs"][name]
        assert out["max_abs_diff"] <= tol, (name, out)
        assert out["class_ids_match"] and out["class_names_match"], (name, out)
    assert report["jpeg_probabilities_shape"] == [count, classes]
    assert not report["keras_in_sys_modules"] and not report["keras_tl_in_sys_modules"]
    assert report["keras_modules_loaded"] == []


@pytest.fixture(scope="module")
def model():
    return tiny_classifier()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """One export of all formats, from a FinetuneResult-like object."""
    from keras_tl.export import export

    result = types.SimpleNamespace(
        model=model,
        class_names=CLASS_NAMES,
        info={"backbone": "tiny_backbone", "weights": None, "input_size": [SIZE, SIZE],
              "preprocessing": {"mean": 127.5, "std": 127.5, "channel_order": "rgb"}},
        metrics={"validation": {"accuracy": 0.5}, "test": None},
        config={"batch_size": 4, "seed": 0},
    )
    base = tmp_path_factory.mktemp("saved_models") / "tiny"
    return export(result, base, metadata={"owner": "tests"})


def test_layout_and_metadata(exported):
    import keras

    from keras_tl.version import __version__

    assert exported.version == 1 and os.path.basename(exported.path) == "1"
    base = os.path.dirname(exported.path)
    assert os.listdir(base) == ["1"]
    assert sorted(os.listdir(exported.path)) == [
        "assets", "fingerprint.pb", "keras_tl.json", "model.onnx",
        "model_float32.tflite", "model_int8.tflite", "saved_model.pb", "variables",
    ]
    with open(os.path.join(exported.path, "assets", "class_names.txt")) as f:
        assert f.read().splitlines() == CLASS_NAMES
    with open(exported.files["metadata"]) as f:
        meta = json.load(f)
    assert meta == json.loads(json.dumps(exported.metadata))
    assert meta["class_names"] == CLASS_NAMES and meta["input_size"] == [SIZE, SIZE]
    assert meta["preprocessing"]["mean"] == 127.5
    assert meta["backbone"] == "tiny_backbone" and meta["weights"] is None
    assert meta["training"] == {"batch_size": 4, "seed": 0}
    assert meta["metrics"]["validation"] == {"accuracy": 0.5}
    assert meta["user_metadata"] == {"owner": "tests"}
    assert meta["keras_tl_version"] == __version__ and meta["keras_version"] == keras.__version__
    assert re.match(r"\d{4}-\d\d-\d\dT", meta["exported_at"])
    assert meta["verification"]["onnx"]["max_abs_diff"] <= 1e-4
    assert meta["files"]["onnx"] == "model.onnx"
    assert set(meta["signatures"]) == {"serving_default", "serving_bytes"}


def test_result_is_json_and_package_is_callable(exported):
    import keras_tl
    import keras_tl.export

    assert json.loads(json.dumps(exported))["files"]["onnx"] == exported.files["onnx"]
    assert callable(keras_tl.export) and keras_tl.export.predict_top
    assert isinstance(keras_tl.export.ExportResult("p", 1, {}, {}, {}), dict)


def test_verification_numbers(exported, record_property):
    v = exported.verification
    assert v["saved_model_serving_default"]["max_abs_diff"] <= 1e-5
    assert v["saved_model_serving_bytes"]["max_abs_diff"] <= 1e-5
    assert v["onnx"]["max_abs_diff"] <= 1e-4
    assert v["onnx"]["converter"] == "keras model.export (tensorflow)"
    assert v["litert"]["float32_max_abs_diff"] <= 1e-4
    assert 0.0 <= v["litert"]["int8_argmax_agreement"] <= 1.0
    # the int8 file really is quantized
    assert v["litert"]["int8_bytes"] < v["litert"]["float32_bytes"]
    record_property("verification", json.dumps(v))
    print(exported.summary())


def test_saved_model_in_tensorflow_only_process(exported, model, tmp_path):
    images = random_images(5, seed=7)
    report = serving_check(exported.path, images, model.predict(images, verbose=0), tmp_path)
    assert_serving_contract(report, count=5)
    assert report["class_names"] == CLASS_NAMES


def test_onnx_and_litert_match_keras(exported, model, record_property):
    import onnxruntime
    from ai_edge_litert.interpreter import Interpreter

    images = random_images(5, seed=8)
    reference = model.predict(images, verbose=0)
    session = onnxruntime.InferenceSession(exported.files["onnx"])
    (model_input,) = session.get_inputs()
    assert model_input.name == "images" and model_input.shape[1:] == [SIZE, SIZE, 3]
    assert isinstance(model_input.shape[0], str)  # dynamic batch
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["class_names"]) == CLASS_NAMES
    for batch in (images, images[:1]):
        (out,) = session.run(["probabilities"], {"images": batch})
        assert np.max(np.abs(out - reference[: len(batch)])) <= 1e-4

    outputs = {}
    for kind in ("float32", "int8"):
        runner = Interpreter(model_path=exported.files[f"litert_{kind}"]).get_signature_runner()
        assert list(runner.get_input_details()) == ["images"]
        outputs[kind] = runner(images=images)
        assert outputs[kind]["probabilities"].shape == reference.shape
    assert np.max(np.abs(outputs["float32"]["probabilities"] - reference)) <= 1e-4
    top = np.argmax(reference, -1)
    assert [n.decode() for n in outputs["float32"]["class_names"]] == [CLASS_NAMES[i] for i in top]
    agreement = float(np.mean(np.argmax(outputs["int8"]["probabilities"], -1) == top))
    record_property("int8_argmax_agreement", agreement)
    print(f"int8 argmax agreement on 5 random images: {agreement}")


def test_predict_top_reads_every_format(exported, model, tmp_path):
    from PIL import Image

    from keras_tl.export.predict import load_images, predict_top

    rng = np.random.default_rng(9)
    paths = []
    for i, shape in enumerate([(SIZE, SIZE, 3), (24, 20, 3)]):
        path = str(tmp_path / f"image{i}.png")
        Image.fromarray(rng.integers(0, 256, shape).astype("uint8")).save(path)
        paths.append(path)
    expected = model.predict(load_images(paths, (SIZE, SIZE)), verbose=0)
    base = os.path.dirname(exported.path)
    for source in (base, exported.path, exported.files["onnx"], exported.files["litert_float32"]):
        results = predict_top(source, paths, top=2)
        assert [p for p, _ in results] == paths
        for (_, top), row in zip(results, expected):
            order = np.argsort(-row)[:2]
            assert [name for name, _ in top] == [CLASS_NAMES[i] for i in order], source
            assert np.allclose([p for _, p in top], row[order], atol=1e-4), source
    assert predict_top(exported.files["litert_int8"], paths[0], top=3)[0][0] == paths[0]


def test_versions_increment_and_existing_version_is_refused(model, tmp_path):
    from keras_tl.export import export

    base = tmp_path / "tiny"
    first = export(model, base, formats=("saved_model",), class_names=CLASS_NAMES)
    second = export(model, base, formats=(), class_names=CLASS_NAMES)
    assert (first.version, second.version) == (1, 2)
    assert sorted(os.listdir(base)) == ["1", "2"]
    assert "model.onnx" not in os.listdir(second.path)
    with pytest.raises(FileExistsError, match="Version 2 already exists"):
        export(model, base, class_names=CLASS_NAMES, version=2)
    assert export(model, base, formats=(), class_names=CLASS_NAMES, version=5).version == 5
    assert export(model, base, formats=(), class_names=CLASS_NAMES).version == 6


def test_failed_export_leaves_no_version(model, tmp_path, monkeypatch):
    from keras_tl.export import ExportVerificationError, export
    from keras_tl.export import litert, onnx

    base = tmp_path / "tiny"
    export(model, base, formats=(), class_names=CLASS_NAMES)
    # a temp folder left by a killed export (its process no longer exists)
    stale = base / ".tmp-export-999999999-deadbeef"
    stale.mkdir()
    (stale / "saved_model.pb").write_bytes(b"half")

    def crash(saved_model_dir, out_dir):
        with open(os.path.join(out_dir, litert.FLOAT32_FILE), "wb") as f:
            f.write(b"half-written")
        raise OSError("disk full")

    monkeypatch.setattr(litert, "convert_litert", crash)
    with pytest.raises(OSError, match="disk full"):
        export(model, base, formats=("litert",), class_names=CLASS_NAMES)
    assert os.listdir(base) == ["1"]

    monkeypatch.setattr(onnx, "verify_onnx", lambda *a: {"max_abs_diff": 0.5})
    with pytest.raises(ExportVerificationError, match="onnx"):
        export(model, base, formats=("onnx",), class_names=CLASS_NAMES)
    assert os.listdir(base) == ["1"]
    assert export(model, base, formats=(), class_names=CLASS_NAMES).version == 2


def test_bad_arguments_are_refused(model, tmp_path):
    from keras_tl.export import export

    with pytest.raises(ValueError, match="class_names is required"):
        export(model, tmp_path / "m")
    with pytest.raises(ValueError, match="3 outputs but 2 class names"):
        export(model, tmp_path / "m", class_names=["a", "b"])
    with pytest.raises(ValueError, match="looks like a version folder"):
        export(model, tmp_path / "m" / "3", class_names=CLASS_NAMES)
    with pytest.raises(ValueError, match="Unknown export formats"):
        export(model, tmp_path / "m", formats=("tfjs",), class_names=CLASS_NAMES)
    with pytest.raises(FileNotFoundError):
        from keras_tl.export import predict_top

        predict_top(tmp_path / "nothing", [])
    assert not os.path.exists(tmp_path / "m")


def _doc():
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def _blocks(text, language):
    return re.findall(r"```" + language + r"\n(.*?)```", text, flags=re.S)


def test_serving_doc_uses_the_real_names(exported):
    import tensorflow as tf

    loaded = tf.saved_model.load(exported.path)
    real = {
        name: (set(fn.structured_input_signature[1]), set(fn.structured_outputs))
        for name, fn in loaded.signatures.items()
    }
    text = _doc()
    used = set(re.findall(r'signature_name"?\s*:\s*"(\w+)"', text))
    assert used == set(real)
    requests = answers = 0
    for block in _blocks(text, "json"):
        body = json.loads(block)
        if "instances" in body:
            inputs, _ = real[body.get("signature_name", "serving_default")]
            for instance in body["instances"]:
                assert set(instance) == inputs
            requests += 1
        if "predictions" in body:
            for prediction in body["predictions"]:
                assert set(prediction) == real["serving_default"][1]
            answers += 1
    assert requests == 2 and answers == 2
    # the jq line builds the serving_bytes request with the real input key
    (jq,) = re.findall(r"instances: \[\{(\w+): \{b64", text)
    assert {jq} == real["serving_bytes"][0]
    assert "target=/models/NAME" not in text and "-e MODEL_NAME=flowers" in text


def test_serving_doc_python_snippets_run(exported, tmp_path):
    """The ONNX Runtime and LiteRT snippets of docs/serving.md, as written."""
    from PIL import Image

    image = str(tmp_path / "rose.jpg")
    Image.fromarray(random_images(1, seed=10, size=40)[0].astype("uint8")).save(image)
    snippets = [b for b in _blocks(_doc(), "python")
                if "onnxruntime.InferenceSession" in b or "Interpreter(" in b]
    assert len(snippets) == 2
    for code in snippets:
        code = code.replace("saved_models/flowers/1", exported.path).replace("rose.jpg", image)
        output = run_python(["-c", code])
        assert output.split()[0] in CLASS_NAMES, output


def test_subprocess_route_and_onnx_fallback(model, tmp_path, monkeypatch):
    """The JAX/PyTorch route, driven from this TensorFlow process: the model
    goes through a .keras file to a TensorFlow subprocess, and a failing
    native ONNX exporter falls back to tf2onnx there."""
    from keras_tl.export import _backend, export, onnx

    def fail(*args, **kwargs):
        raise RuntimeError("native exporter unavailable")

    monkeypatch.setattr(_backend, "current_backend", lambda: "torch")
    monkeypatch.setattr(onnx, "export_onnx", fail)
    result = export(model, tmp_path / "tiny", formats=("onnx",), class_names=CLASS_NAMES)
    v = result.verification
    assert v["saved_model_serving_default"]["max_abs_diff"] <= 1e-5
    assert v["saved_model_serving_bytes"]["max_abs_diff"] <= 1e-5
    assert "tf2onnx" in v["onnx"]["converter"]
    assert "native exporter unavailable" in v["onnx"]["fallback_reason"]
    assert v["onnx"]["max_abs_diff"] <= 1e-4
    assert onnx.read_onnx_class_names(result.files["onnx"]) == CLASS_NAMES


_BACKEND_SCRIPT = """
import json, sys
import numpy as np
import keras
from tests.test_export import CLASS_NAMES, random_images, tiny_classifier
from keras_tl.export import export

model = tiny_classifier(seed=1)
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(random_images(12, seed=3), np.arange(12) % 3, epochs=1, batch_size=4, verbose=0)
result = export(model, sys.argv[1], class_names=CLASS_NAMES)
images = random_images(5, seed=4)
np.savez(sys.argv[2], images=images, reference=model.predict(images, verbose=0))
print(json.dumps({"backend": keras.backend.backend(), "path": result.path,
                  "verification": result.verification}))
"""


@pytest.mark.parametrize("backend", [pytest.param("jax", marks=pytest.mark.slow), "torch"])
def test_export_from_other_backends(backend, tmp_path):
    """Trained under JAX / PyTorch, served by TensorFlow alone."""
    args = ["-c", _BACKEND_SCRIPT, str(tmp_path / "tiny"), str(tmp_path / "ref.npz")]
    report = json.loads(run_python(args, backend=backend).strip().splitlines()[-1])
    assert report["backend"] == backend
    v = report["verification"]
    assert v["onnx"]["converter"] == f"keras model.export ({backend})"
    assert v["onnx"]["max_abs_diff"] <= 1e-4
    assert v["litert"]["float32_max_abs_diff"] <= 1e-4
    arrays = np.load(tmp_path / "ref.npz")
    check = serving_check(report["path"], arrays["images"], arrays["reference"], tmp_path)
    assert_serving_contract(check, count=5)
