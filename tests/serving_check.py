"""Checks an exported SavedModel the way TF Serving sees it, importing only
TensorFlow: no keras, no keras_tl.

Usage: python tests/serving_check.py VERSION_DIR ARRAYS.npz
       python tests/serving_check.py --files REQUEST.json
       python tests/serving_check.py --texts VERSION_DIR TEXTS.json
       python tests/serving_check.py --warmup VERSION_DIR [--text-ops]

ARRAYS.npz holds `images` (float32 [n, H, W, 3], integer values 0-255) and
`reference` (the Keras model's probabilities for them). Prints one JSON
report line; tests/test_export.py asserts on it.

With --files, REQUEST.json holds `{"models": [VERSION_DIR...], "files":
[PATH...]}`: for each model, each file's bytes go to `serving_bytes` on
their own (its probabilities, or the error's message), then all the
readable ones in one batch; and a batch of twice the model's size goes to
`serving_default`. Prints `{"reports": {VERSION_DIR: report},
"keras_modules_loaded": [...]}`; tests/test_image_reading.py asserts on it.

With --texts (a text classifier's export, TEXTS.json a list of strings):
the SavedModel's `serving_default` on the raw strings (TensorFlow Text
registers the tokenizer's ops), and `model.onnx` in ONNX Runtime fed by the
export's own `tokenizer/wordpiece.py`, without keras_tl or keras_hub;
tests/test_text_export.py asserts on that report.

With --wav VERSION_DIR FILES.json (a keyword model's export): each WAV
file's bytes go to `serving_wav`; tests/test_keyword_task.py asserts on it.

With --warmup VERSION_DIR [--text-ops]: replays the export's
`assets.extra/tf_serving_warmup_requests` as TF Serving does on load: each
record parsed as a `PredictionLog` (tensorflow-serving-api), its request's
inputs fed to its signature. Prints `{"records": [{"log_type",
"model_name", "signature_name", "inputs", "outputs"}], ...}` (strings and
bytes base64-encoded); tests/tf_serving_helpers.py asserts on it.
`--text-ops` imports TensorFlow Text first (a text model's tokenizer ops).
"""

import sys

# `import tensorflow` imports Keras eagerly when it is installed (inside a
# try/except ImportError); a None entry makes any such import fail, so the
# checks below run on TensorFlow alone. The entries are removed at the end to
# show that no real keras / keras_tl module was loaded.
# TensorFlow Text (--texts) subclasses tf.keras layers, so Keras itself stays
# importable there; keras_tl and keras_hub never are.
_TEXT_OPS = "--texts" in sys.argv or "--text-ops" in sys.argv
_BLOCKED = ("keras_tl", "keras_hub") + (() if _TEXT_OPS else ("keras", "tf_keras"))
for _name in _BLOCKED:
    sys.modules[_name] = None

import base64  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402


def signature_defs(path):
    """{signature: {"inputs"|"outputs": {key: (dtype, shape)}}} from the
    SignatureDefs in saved_model.pb, which is what TF Serving reads."""
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    (meta_graph,) = proto.meta_graphs
    found = {}
    for name, sig in meta_graph.signature_def.items():
        if name.startswith("__"):  # TF's internal __saved_model_init_op
            continue
        found[name] = {
            side: {
                key: (
                    tf.dtypes.as_dtype(info.dtype).name,
                    [None if d.size == -1 else d.size for d in info.tensor_shape.dim],
                )
                for key, info in getattr(sig, side).items()
            }
            for side in ("inputs", "outputs")
        }
    return found


def main(path, arrays_path):
    arrays = np.load(arrays_path)
    images, reference = arrays["images"], arrays["reference"]
    loaded = tf.saved_model.load(path)
    with open(os.path.join(path, "assets", "class_names.txt"), encoding="utf-8") as f:
        class_names = f.read().splitlines()
    expected_ids = np.argmax(reference, axis=-1)
    expected_names = [class_names[i] for i in expected_ids]

    pngs = tf.constant([tf.io.encode_png(image).numpy() for image in images.astype("uint8")])
    # A JPEG twice the size: exercises decoding and resizing, not exactness.
    big = tf.image.resize(images, [2 * images.shape[1], 2 * images.shape[2]])
    jpegs = tf.constant([tf.io.encode_jpeg(tf.cast(i, tf.uint8)).numpy() for i in big])
    feeds = {
        "serving_default": {"images": tf.constant(images)},
        "serving_bytes": {"image_bytes": pngs},
    }
    outputs = {}
    for name, feed in feeds.items():
        out = loaded.signatures[name](**feed)
        outputs[name] = {
            "max_abs_diff": float(np.max(np.abs(out["probabilities"].numpy() - reference))),
            "class_ids_match": bool(np.array_equal(out["class_ids"].numpy(), expected_ids)),
            "class_names_match": [n.decode() for n in out["class_names"].numpy()]
            == expected_names,
        }
    jpeg_out = loaded.signatures["serving_bytes"](image_bytes=jpegs)["probabilities"]

    for name in _BLOCKED:
        del sys.modules[name]
    report = {
        "signatures": signature_defs(path),
        "outputs": outputs,
        "jpeg_probabilities_shape": list(jpeg_out.shape),
        "class_names": class_names,
        "keras_in_sys_modules": "keras" in sys.modules,
        "keras_tl_in_sys_modules": "keras_tl" in sys.modules,
        "keras_modules_loaded": sorted(
            m for m in sys.modules if m.split(".")[0] in _BLOCKED
        ),
    }
    print(json.dumps(report))


def _assertion_message(error):
    """The message given to tf.debugging.Assert, without TF's node names."""
    message = error.message.split("\n\t [[")[0].strip()
    return message.split("assertion failed: [", 1)[-1].removesuffix("]")


def files_report(path, files):
    loaded = tf.saved_model.load(path)
    serve_bytes = loaded.signatures["serving_bytes"]
    per_file, readable = {}, []
    for file in files:
        with open(file, "rb") as f:
            data = f.read()
        try:
            out = serve_bytes(image_bytes=tf.constant([data]))
        except tf.errors.InvalidArgumentError as error:
            per_file[file] = {"error": _assertion_message(error)}
            continue
        per_file[file] = {"probabilities": out["probabilities"].numpy()[0].tolist()}
        readable.append(data)
    batch = serve_bytes(image_bytes=tf.constant(readable))["probabilities"].numpy()
    (spec,) = loaded.signatures["serving_default"].structured_input_signature[1].values()
    height, width = spec.shape[1:3]
    try:
        loaded.signatures["serving_default"](images=tf.zeros([2, 2 * height, 2 * width, 3]))
        wrong_size = None
    except tf.errors.InvalidArgumentError as error:
        wrong_size = _assertion_message(error)
    return {
        "files": per_file,
        "batch_probabilities": batch.tolist(),
        "wrong_size_error": wrong_size,
    }


def files_main(request_path):
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    reports = {path: files_report(path, request["files"]) for path in request["models"]}
    for name in _BLOCKED:
        del sys.modules[name]
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in _BLOCKED)
    print(json.dumps({"reports": reports, "keras_modules_loaded": loaded}))


def wav_main(path, request_path):
    """`serving_wav` of a keyword model on each WAV file's bytes."""
    with open(request_path, encoding="utf-8") as f:
        files = json.load(f)
    serve_wav = tf.saved_model.load(path).signatures["serving_wav"]
    report = {}
    for file in files:
        with open(file, "rb") as f:
            out = serve_wav(wav_bytes=tf.constant([f.read()]))
        report[file] = {"probabilities": out["probabilities"].numpy()[0].tolist(),
                        "class_name": out["class_names"].numpy()[0].decode()}
    for name in _BLOCKED:
        del sys.modules[name]
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in _BLOCKED)
    print(json.dumps({"files": report, "keras_modules_loaded": loaded}))


def texts_report(path, texts_path):
    import importlib.util

    import onnxruntime
    import tensorflow_text  # noqa: F401  (registers the tokenizer's ops)

    with open(texts_path, encoding="utf-8") as f:
        texts = json.load(f)
    out = tf.saved_model.load(path).signatures["serving_default"](texts=tf.constant(texts))
    spec = importlib.util.spec_from_file_location(
        "wordpiece", os.path.join(path, "tokenizer", "wordpiece.py"))
    wordpiece = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wordpiece)
    arrays = wordpiece.load_tokenizer(os.path.join(path, "tokenizer")).encode(texts)
    session = onnxruntime.InferenceSession(os.path.join(path, "model.onnx"))
    feed = {name: np.asarray(rows, dtype="int32") for name, rows in arrays.items()}
    (onnx_probabilities,) = session.run(["probabilities"], feed)
    for name in _BLOCKED:
        del sys.modules[name]
    return {
        "signatures": signature_defs(path),
        "probabilities": out["probabilities"].numpy().tolist(),
        "class_ids": out["class_ids"].numpy().tolist(),
        "class_names": [n.decode() for n in out["class_names"].numpy()],
        "onnx_inputs": sorted(i.name for i in session.get_inputs()),
        "onnx_probabilities": onnx_probabilities.tolist(),
        "keras_modules_loaded": sorted(m for m in sys.modules if m.split(".")[0] in _BLOCKED),
    }


def _listed(array):
    """A JSON-ready array: numbers as they are, strings and bytes base64."""
    array = np.asarray(array)
    if array.dtype.kind in ("O", "S", "U"):
        encode = np.vectorize(lambda v: base64.b64encode(
            v if isinstance(v, bytes) else str(v).encode()).decode(), otypes=[object])
        return encode(array).tolist() if array.size else array.tolist()
    return array.tolist()


def warmup_report(path):
    from tensorflow_serving.apis import prediction_log_pb2

    if _TEXT_OPS:
        import tensorflow_text  # noqa: F401  (registers the tokenizer's ops)

    loaded = tf.saved_model.load(path)
    records = []
    warmup = os.path.join(path, "assets.extra", "tf_serving_warmup_requests")
    for raw in tf.data.TFRecordDataset(warmup):
        log = prediction_log_pb2.PredictionLog.FromString(raw.numpy())
        request = log.predict_log.request
        inputs = {key: tf.make_ndarray(tensor) for key, tensor in request.inputs.items()}
        signature = loaded.signatures[request.model_spec.signature_name]
        outputs = signature(**{key: tf.constant(value) for key, value in inputs.items()})
        records.append({
            "log_type": log.WhichOneof("log_type"),
            "model_name": request.model_spec.name,
            "signature_name": request.model_spec.signature_name,
            "inputs": {key: _listed(value) for key, value in inputs.items()},
            "outputs": {key: _listed(value.numpy()) for key, value in outputs.items()},
        })
    for name in _BLOCKED:
        del sys.modules[name]
    return {
        "records": records,
        "keras_modules_loaded": sorted(m for m in sys.modules if m.split(".")[0] in _BLOCKED),
    }


if __name__ == "__main__":
    if sys.argv[1] == "--texts":
        print(json.dumps(texts_report(sys.argv[2], sys.argv[3])))
    elif sys.argv[1] == "--files":
        files_main(sys.argv[2])
    elif sys.argv[1] == "--warmup":
        print(json.dumps(warmup_report(sys.argv[2])))
    elif sys.argv[1] == "--wav":
        wav_main(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1], sys.argv[2])
