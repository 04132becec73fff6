"""keras_tl.export on an image classifier: SavedModel, ONNX and LiteRT, each
verified against Keras on real validation images; versions, staging and
mixed precision."""

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
    import keras

    from keras_tl.backbones import load_backbone
    from keras_tl.tasks.image_classifier import build_image_classifier

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    loaded = load_backbone(keras.Model(inputs, x, name="tiny_backbone"), preprocessing="tf")
    return build_image_classifier(loaded, len(CLASS_NAMES))


def colour_images(per_class, seed):
    """Noisy images whose class is their dominant colour (tests.helpers)."""
    from tests.helpers import colour_arrays

    images, labels, names = colour_arrays(per_class, SIZE, seed=seed)
    assert names == CLASS_NAMES
    return images.astype("float32"), labels


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
    assert report["keras_modules_loaded"] == []


@pytest.fixture(scope="module")
def trained():
    """The tiny classifier trained a few epochs on colour images, and a
    FinetuneResult-like run whose verification sample is held-out images."""
    model = tiny_classifier()
    x, y = colour_images(per_class=12, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=8, batch_size=8, verbose=0)
    validation, labels = colour_images(per_class=8, seed=1)
    accuracy = float(np.mean(model.predict(validation, verbose=0).argmax(-1) == labels))
    run = types.SimpleNamespace(
        model=model, class_names=CLASS_NAMES, verification_sample=validation,
        info={"task": "image_classification", "backbone": "tiny_backbone", "weights": None,
              "input_size": [SIZE, SIZE],
              "preprocessing": {"mean": 127.5, "std": 127.5, "channel_order": "rgb"}},
        metrics={"validation": {"accuracy": accuracy}, "test": None},
        config={"batch_size": 8, "seed": 0},
    )
    return run


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    from keras_tl.exporters import export

    base = tmp_path_factory.mktemp("saved_models") / "tiny"
    return export(trained, base, metadata={"owner": "tests"})


def test_layout_and_metadata(exported, trained):
    import keras

    from keras_tl.version import __version__

    assert exported.version == 1 and os.path.basename(exported.path) == "1"
    # no staging folder left; TF Serving's configs beside the version
    assert sorted(os.listdir(os.path.dirname(exported.path))) == [
        "1", "batching_parameters.txt", "models.config"]
    assert sorted(os.listdir(exported.path)) == [
        "MODEL_CARD.md", "assets", "assets.extra", "fingerprint.pb", "keras_tl.json",
        "model.onnx", "model_float32.tflite", "model_int8.tflite", "saved_model.pb", "variables",
    ]
    with open(os.path.join(exported.path, "assets", "class_names.txt")) as f:
        assert f.read().splitlines() == CLASS_NAMES
    with open(exported.files["metadata"]) as f:
        meta = json.load(f)
    assert meta == json.loads(json.dumps(exported.metadata))
    assert meta["task"] == "image_classification" and meta["class_names"] == CLASS_NAMES
    assert meta["info"]["input_size"] == [SIZE, SIZE] and meta["preprocessing"]["mean"] == 127.5
    assert meta["backbone"] == "tiny_backbone" and meta["weights"] is None
    assert meta["training"] == {"batch_size": 8, "seed": 0}
    assert meta["metrics"]["validation"] == trained.metrics["validation"]
    assert meta["user_metadata"] == {"owner": "tests"}
    assert meta["keras_tl_version"] == __version__
    assert meta["versions"]["keras"] == keras.__version__
    assert re.match(r"\d{4}-\d\d-\d\dT", meta["exported_at"])
    assert meta["model_outputs"] == ["probabilities"]
    assert meta["signatures"]["serving_bytes"]["inputs"] == {
        "image_bytes": {"dtype": "string", "shape": [None]}}
    onnx_io = meta["formats"]["onnx"]
    assert onnx_io["inputs"] == {"images": {"dtype": "float32", "shape": [None, SIZE, SIZE, 3]}}
    assert onnx_io["outputs"] == {"probabilities": {"dtype": "float32", "shape": [None, 3]}}
    assert meta["formats"]["litert"]["outputs"]["class_names"]["dtype"] == "string"
    assert meta["files"]["onnx"] == "model.onnx" and meta["files"]["saved_model"] == "."


def test_verified_on_the_runs_validation_images(exported, trained, record_property):
    v = exported.verification
    assert v["inputs"] == len(trained.verification_sample) == 24
    for key in ("saved_model/serving_default", "saved_model/serving_bytes"):
        assert v[key]["enforced"] and v[key]["max_abs_diff"] <= 1e-5, key
    for key in ("onnx", "litert_float32"):
        assert v[key]["enforced"] and v[key]["max_abs_diff"] <= 1e-4, key
    # int8 is reported, not enforced; on real images it keeps the decisions
    assert not v["litert_int8"]["enforced"]
    assert v["litert_int8"]["argmax_agreement"] >= 0.95
    assert v["litert_int8"]["bytes"] < v["litert_float32"]["bytes"]  # really quantized
    record_property("verification", json.dumps(v))
    print(exported.summary())


def test_public_api(exported):
    import keras_tl
    from keras_tl.exporters import ExportResult, export, predict_top

    assert keras_tl.export is export and keras_tl.predict_top is predict_top
    assert keras_tl.ExportResult is ExportResult
    assert json.loads(json.dumps(exported))["files"]["onnx"] == exported.files["onnx"]


def test_saved_model_in_tensorflow_only_process(exported, trained, tmp_path):
    images, _ = colour_images(per_class=2, seed=7)
    report = serving_check(exported.path, images, trained.model.predict(images, verbose=0),
                           tmp_path)
    assert_serving_contract(report, count=6)
    assert report["class_names"] == CLASS_NAMES


def test_tf_serving_configs_and_warmup_replay(exported, trained):
    from keras_tl.tasks import get_task
    from tests.tf_serving_helpers import assert_server_configs, assert_warmup_replays

    assert_server_configs(exported)
    spec = get_task("image_classification").export_spec(
        trained.model, trained.info, CLASS_NAMES, trained.verification_sample)
    report = assert_warmup_replays(exported, spec)
    assert [(r["signature_name"], len(r["outputs"]["class_ids"])) for r in report["records"]] == [
        ("serving_default", 1), ("serving_default", 8), ("serving_bytes", 1),
        ("serving_bytes", 8)]


def test_model_card(exported, trained):
    with open(exported.files["model_card"], encoding="utf-8") as f:
        card = f.read()
    assert exported.metadata["files"]["model_card"] == "MODEL_CARD.md"
    assert card.startswith("# Model card: tiny\n")
    assert "image_classification (image inputs); 3 classes: `red`, `green`, `blue`." in card
    accuracy = trained.metrics["validation"]["accuracy"]
    assert f"| accuracy | {accuracy:.4g} |" in card and "No test set was given" in card
    assert "## Calibration\n\nNot calibrated" in card
    assert ("- `serving_default`: `images` float32[batch, 16, 16, 3] -> `probabilities` "
            "float32[batch, 3], `class_ids` int64[batch], `class_names` string[batch]") in card
    assert "- saved_model/serving_bytes: " in card


def test_onnx_and_litert_files_as_documented(exported, trained):
    import onnxruntime
    from ai_edge_litert.interpreter import Interpreter

    images, _ = colour_images(per_class=2, seed=8)
    reference = trained.model.predict(images, verbose=0)
    session = onnxruntime.InferenceSession(exported.files["onnx"])
    (model_input,) = session.get_inputs()
    assert model_input.name == "images" and model_input.shape[1:] == [SIZE, SIZE, 3]
    assert isinstance(model_input.shape[0], str)  # dynamic batch
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["class_names"]) == CLASS_NAMES
    assert meta["keras_tl_task"] == "image_classification"
    for batch in (images, images[:1]):
        (out,) = session.run(["probabilities"], {"images": batch})
        assert np.max(np.abs(out - reference[: len(batch)])) <= 1e-4

    runner = Interpreter(model_path=exported.files["litert_float32"]).get_signature_runner()
    assert list(runner.get_input_details()) == ["images"]
    out = runner(images=images)
    assert np.max(np.abs(out["probabilities"] - reference)) <= 1e-4
    top = np.argmax(reference, -1)
    assert [n.decode() for n in out["class_names"]] == [CLASS_NAMES[i] for i in top]


def test_predict_reads_every_format(exported, trained, tmp_path):
    from PIL import Image

    from keras_tl.data.images import prepare_images
    from keras_tl.exporters import predict_top
    from keras_tl.exporters.predict import predict

    rng = np.random.default_rng(9)
    paths = []
    for i, shape in enumerate([(SIZE, SIZE, 3), (24, 20, 3)]):
        path = str(tmp_path / f"image{i}.png")
        Image.fromarray(rng.integers(0, 256, shape).astype("uint8")).save(path)
        paths.append(path)
    expected = trained.model.predict(prepare_images(paths, (SIZE, SIZE)), verbose=0)
    base = os.path.dirname(exported.path)
    for source in (base, exported.path, exported.files["onnx"], exported.files["litert_float32"]):
        results = predict_top(source, paths, top=2)
        assert [p for p, _ in results] == paths
        for (_, top), row in zip(results, expected):
            order = np.argsort(-row)[:2]
            assert [name for name, _ in top] == [CLASS_NAMES[i] for i in order], source
            assert np.allclose([p for _, p in top], row[order], atol=1e-4), source
    # arrays work too, and one [H, W, 3] image is a batch of one
    images, _ = colour_images(per_class=1, seed=3)
    assert len(predict(exported.files["litert_int8"], images[0], top=1)) == 1


def test_versions_increment_and_existing_version_is_refused(trained, tmp_path):
    from keras_tl.errors import ExportError
    from keras_tl.exporters import export

    base = tmp_path / "tiny"
    model = trained.model
    first = export(model, base, formats=("saved_model",), class_names=CLASS_NAMES)
    assert first.version == 1 and "model.onnx" not in os.listdir(first.path)
    # a bare model's task and input size come from the model itself
    assert first.metadata["task"] == "image_classification"
    assert first.metadata["info"]["input_size"] == [SIZE, SIZE]
    assert export(model, base, formats=(), class_names=CLASS_NAMES, version=3).version == 3
    with pytest.raises(ExportError, match="Version 3 already exists"):
        export(model, base, formats=(), class_names=CLASS_NAMES, version=3)
    assert sorted(os.listdir(base)) == ["1", "3", "batching_parameters.txt", "models.config"]


def test_tampered_onnx_fails_verification(trained, tmp_path, monkeypatch):
    """An ONNX file that computes something else is caught before any version appears."""
    import onnx

    from keras_tl.errors import ExportVerificationError
    from keras_tl.exporters import export
    from keras_tl.exporters.onnx import OnnxExporter

    write = OnnxExporter.write

    def write_then_tamper(self, *args):
        files = write(self, *args)
        proto = onnx.load(files["onnx"])
        (bias,) = [i for i in proto.graph.initializer if tuple(i.dims) == (3,)]
        values = onnx.numpy_helper.to_array(bias) + np.asarray([0.0, 0.5, 0.0], "float32")
        bias.CopyFrom(onnx.numpy_helper.from_array(values, bias.name))
        onnx.save(proto, files["onnx"])
        return files

    monkeypatch.setattr(OnnxExporter, "write", write_then_tamper)
    base = tmp_path / "tiny"
    with pytest.raises(ExportVerificationError, match=r"onnx \(max_abs_diff 0\.\d+\)"):
        export(trained, base, formats=("onnx",))
    assert os.listdir(base) == []


def test_failed_export_leaves_no_version(trained, tmp_path, monkeypatch):
    from keras_tl.exporters import export, litert, pipeline

    base = tmp_path / "tiny"
    (base / "1").mkdir(parents=True)
    (base / "1" / "saved_model.pb").write_bytes(b"a good version")

    def half_written(saved_model_dir, out_dir, representative=None):
        with open(os.path.join(out_dir, litert.FLOAT32_FILE), "wb") as f:
            f.write(b"half-written")
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(litert, "convert_litert", half_written)
        with pytest.raises(OSError, match="disk full"):
            export(trained, base, formats=("litert",))
    assert os.listdir(base) == ["1"]

    def interrupt(*args):  # Ctrl-C at the very last step, after verification
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline.metadata_lib, "write_metadata", interrupt)
    with pytest.raises(KeyboardInterrupt):
        export(trained, base, formats=())
    assert os.listdir(base) == ["1"] and os.listdir(base / "1") == ["saved_model.pb"]
    assert (base / "1" / "saved_model.pb").read_bytes() == b"a good version"


def test_bad_arguments_and_paths_are_refused(trained, tmp_path):
    from keras_tl.errors import ConfigError, ExportError
    from keras_tl.exporters import export, predict_top

    model = trained.model
    with pytest.raises(ConfigError, match="class_names is required"):
        export(model, tmp_path / "m")
    with pytest.raises(ConfigError, match=r"output 'probabilities' has shape \[24, 3\].*\[None, 2\]"):
        export(trained, tmp_path / "m", class_names=["a", "b"])
    with pytest.raises(ConfigError, match="looks like a version folder"):
        export(trained, tmp_path / "m" / "3")
    with pytest.raises(ConfigError, match="Unknown export format 'tfjs'"):
        export(trained, tmp_path / "m", formats=("tfjs",))
    assert not os.path.exists(tmp_path / "m")
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ExportError, match="it is a file"):
        export(trained, tmp_path / "file", formats=())
    with pytest.raises(ExportError, match="Cannot create the export folder"):
        export(trained, tmp_path / "file" / "model", formats=())
    with pytest.raises(ExportError, match="No export at"):
        predict_top(tmp_path / "nothing", [])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_read_only_folder_is_refused(trained, tmp_path):
    from keras_tl.errors import ExportError
    from keras_tl.exporters import export

    folder = tmp_path / "read_only"
    folder.mkdir(mode=0o555)
    with pytest.raises(ExportError, match="not writable"):
        export(trained, folder, formats=())


def test_mixed_precision_model_exports_float32(tmp_path):
    """tf2onnx and LiteRT reject bfloat16: a mixed_bfloat16 model exports a float32 clone."""
    import keras

    from keras_tl.exporters import export

    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        model = tiny_classifier(seed=2)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert model.get_layer("backbone").layers[1].compute_dtype == "bfloat16"
    images, _ = colour_images(per_class=2, seed=4)
    result = export(model, tmp_path / "mixed", class_names=CLASS_NAMES,
                    verification_inputs=images)
    v = result.verification
    for key in ("saved_model/serving_default", "onnx", "litert_float32"):
        assert v[key]["max_abs_diff"] <= 1e-4, key
    # the float32 clone is the bfloat16 model up to bfloat16 rounding
    assert 0 < v["float32_clone"]["max_abs_diff"] < 0.05
    assert result.metadata["formats"]["onnx"]["outputs"]["probabilities"]["dtype"] == "float32"
    assert model.get_layer("backbone").layers[1].compute_dtype == "bfloat16"  # untouched


_BACKEND_EXPORT = """
import json, sys
import numpy as np
import keras
from tests.test_export import CLASS_NAMES, colour_images, tiny_classifier
from keras_tl.exporters import export

model = tiny_classifier(seed=1)
images, labels = colour_images(per_class=4, seed=3)
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(images, labels, epochs=1, batch_size=4, verbose=0)
result = export(model, sys.argv[1], class_names=CLASS_NAMES, verification_inputs=images)
np.savez(sys.argv[2], images=images, reference=model.predict(images, verbose=0))
print(json.dumps({"backend": keras.backend.backend(), "path": result.path,
                  "verification": result.verification, "formats": result.metadata["formats"]}))
"""


@pytest.mark.parametrize("backend", [pytest.param("jax", marks=pytest.mark.slow), "torch"])
def test_export_from_other_backends(backend, tmp_path):
    """Trained under JAX / PyTorch: the SavedModel and LiteRT files are built
    in a TensorFlow subprocess, ONNX natively; TensorFlow alone serves it."""
    args = ["-c", _BACKEND_EXPORT, str(tmp_path / "tiny"), str(tmp_path / "ref.npz")]
    report = json.loads(run_python(args, backend=backend).strip().splitlines()[-1])
    assert report["backend"] == backend
    assert report["formats"]["onnx"]["converted_in"] == f"{backend} (this process)"
    assert report["formats"]["litert"]["converted_in"] == "tensorflow subprocess"
    v = report["verification"]
    for key in ("saved_model/serving_default", "saved_model/serving_bytes", "onnx",
                "litert_float32"):
        assert v[key]["max_abs_diff"] <= 1e-4, key
    arrays = np.load(tmp_path / "ref.npz")
    check = serving_check(report["path"], arrays["images"], arrays["reference"], tmp_path)
    assert_serving_contract(check, count=12)


def test_onnx_falls_back_to_tensorflow_subprocess(trained, tmp_path, monkeypatch):
    """Under JAX/PyTorch a failing native ONNX conversion is redone with
    tf2onnx in the TensorFlow subprocess (driven here from TensorFlow)."""
    from keras_tl.exporters import _backend, export
    from keras_tl.exporters.onnx import OnnxExporter, read_onnx_properties

    def fail(*args, **kwargs):
        raise RuntimeError("native exporter unavailable")

    monkeypatch.setattr(_backend, "current_backend", lambda: "torch")
    monkeypatch.setattr(OnnxExporter, "write", fail)  # in this process only
    result = export(trained, tmp_path / "tiny", formats=("onnx",))
    formats = result.metadata["formats"]
    assert formats["onnx"]["converted_in"] == "tensorflow subprocess"
    assert "native exporter unavailable" in formats["onnx"]["fallback_reason"]
    assert formats["saved_model"]["converted_in"] == "tensorflow subprocess"
    assert result.verification["onnx"]["max_abs_diff"] <= 1e-4
    assert read_onnx_properties(result.files["onnx"])["class_names"] == CLASS_NAMES


def _doc():
    """The image classifiers' part of docs/serving.md."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    return text[text.index("## Image classifiers"):text.index("## Text classifiers")]


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


def test_serving_doc_tf_serving_commands_use_the_written_files(exported):
    """The tensorflow_model_server command lines (docs/serving.md, README)
    pass the config files an export writes, from the model's base folder."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    commands = [block for block in _blocks(_doc(), "bash") + _blocks(readme, "bash")
                if "--model_config_file" in block]
    assert len(commands) == 3  # docs: the binary and Docker; the README
    base = os.path.dirname(exported.path)
    for command in commands:
        flags = dict(re.findall(r"--(\w+)(?:=(\S+))?", command))
        assert "enable_batching" in flags
        # the REST port: Docker's entry point sets it, and -p publishes it
        assert flags.get("rest_api_port", "8501") == "8501" and (
            "docker" not in command or "-p 8501:8501" in command)
        folders = set()
        for flag, key in (("model_config_file", "tf_serving_config"),
                          ("batching_parameters_file", "tf_serving_batching")):
            folder, name = os.path.split(flags[flag])
            assert os.path.join(base, name) == exported.files[key]
            folders.add(folder)
        (folder,) = folders
        assert re.fullmatch(r"\$PWD/saved_models/\w+", folder), folder
        if "docker" in command:  # mounted where base_path points
            assert f"target={folder}" in command


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
