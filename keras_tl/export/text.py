"""Export a text classifier: SavedModel on raw strings, ONNX on token ids.

Layout of `export_text(result, "saved_models/NAME")`, one folder per export:

    saved_models/NAME/<version>/
      saved_model.pb, variables/   serving_default: texts (string [batch]) ->
                                   probabilities, class_ids (int64), class_names
      assets/class_names.txt
      model.onnx                   inputs token_ids, padding_mask, (segment_ids)
                                   int32 [batch, sequence_length]; output probabilities
      vocabulary.txt               the tokenizer's assets (WordPiece vocabulary)
      tokenizer.json               tokenizer class and settings, sequence length
      keras_tl.json                metadata and verification numbers

The tokenizer runs inside the SavedModel graph (TensorFlow Text ops: load it
after `import tensorflow_text`; TF Serving's model server ships these ops).
Both formats are checked against the Keras model in fresh processes that
import only TensorFlow (+ TF Text) or only onnxruntime and NumPy.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

TEXTS_KEY = "texts"
ONNX_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
FORMATS = ("saved_model", "onnx")
VERIFICATION_TEXTS = [
    "Absolutely delicious, I will buy it again!",
    "Stale, bland and overpriced. Never again.",
    "The package arrived on time.",
    "Crème brûlée flavour, naïve café — ünïcödé text 😀",
    "ok",
    " ".join(["a very long text"] * 100),
]


def export_text(model_or_result, path, formats=FORMATS, version=None, verification_texts=None,
                tolerance=1e-4, metadata=None):
    """Exports a text classifier as a new version under `path`, verified in
    fresh processes.

    Args:
        model_or_result: a `TextClassifierPipeline` (the task's
            `inference_model`) or a result/task holding one.
        path: the model's base folder, e.g. `"saved_models/reviews"`.
        formats: `"saved_model"` (always written) and/or `"onnx"`.
        version: explicit version number (refused if it exists); default
            the next one.
        verification_texts: texts to compare the formats on.
        tolerance: max abs difference of probabilities allowed (`None` to
            skip the check).
        metadata: extra JSON-ready dict stored as `user_metadata`.

    Returns:
        A `keras_tl.export.ExportResult`; raises `ExportVerificationError`
        (writing no version) when a format differs beyond `tolerance`.

    Example:
    >>> export_text(result, "saved_models/reviews").path
    'saved_models/reviews/1'
    """
    from keras_tl.export import ExportResult, _versioning

    pipeline, info, extra = _unpack(model_or_result)
    formats = ("saved_model",) + tuple(f for f in FORMATS[1:] if f in formats)
    texts = list(verification_texts or VERIFICATION_TEXTS)
    reference = np.asarray(pipeline.predict(texts), "float32")
    arrays = pipeline.tokenize(texts)
    base = os.fspath(path)
    if os.path.basename(os.path.normpath(base)).isdigit():
        raise ValueError(f"{base!r} looks like a version folder; pass the model's base folder.")
    with _versioning.staged_version(base, version) as stage:
        files = write_text_formats(pipeline, stage.path, formats)
        verification = verify_text_export(stage.path, texts, arrays, reference, formats,
                                          pipeline.class_names)
        _check_tolerance(verification, tolerance)
        meta = _metadata(pipeline, info, extra, metadata, verification, files, stage.path)
        files["metadata"] = os.path.join(stage.path, "keras_tl.json")
        with open(files["metadata"], "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2, default=str)
    final = {k: os.path.join(stage.final_path, os.path.relpath(v, stage.path))
             for k, v in files.items()}
    final["saved_model"] = stage.final_path
    return ExportResult(stage.final_path, stage.version, final, verification, meta)


def _unpack(obj):
    from keras_tl.tasks.text_classifier import TextClassifierPipeline

    extra = {}
    if not isinstance(obj, TextClassifierPipeline):
        extra = {k: dict(getattr(obj, k, None) or {}) for k in ("metrics", "config")}
        info = dict(getattr(obj, "info", None) or {})
        task = getattr(obj, "task", obj)
        obj = getattr(obj, "inference_model", None) or getattr(task, "inference_model", None)
        if not isinstance(obj, TextClassifierPipeline):
            raise TypeError(
                "export_text() takes a TextClassifierPipeline or a result/task of a text "
                f"classifier; got {type(obj).__name__}."
            )
        return obj, info, extra
    return obj, {}, extra


def write_text_formats(pipeline, directory, formats=FORMATS):
    """Writes the SavedModel (and ONNX + tokenizer files) into `directory`,
    in this process under the TensorFlow backend, else in a TensorFlow
    subprocess. Returns `{format: path}`.

    Example:
    >>> write_text_formats(pipeline, "stage")
    {'saved_model': 'stage', 'onnx': 'stage/model.onnx', 'tokenizer': ...}
    """
    import keras

    if keras.backend.backend() == "tensorflow":
        return _write_tf(pipeline, directory, formats)
    with tempfile.TemporaryDirectory(prefix="keras_tl_text_export_") as tmp:
        model_path = os.path.join(tmp, "pipeline.keras")
        pipeline.save(model_path)
        code = ("import sys, json; from keras_tl.export.text import _worker; "
                "print(json.dumps(_worker(*sys.argv[1:])))")
        out = _run(code, [model_path, directory, ",".join(formats)],
                   dict(KERAS_BACKEND="tensorflow"))
        return json.loads(out.strip().splitlines()[-1])


def _worker(model_path, directory, formats):
    import keras

    import keras_tl.tasks.text_classifier  # noqa: F401  (registers the pipeline)

    pipeline = keras.saving.load_model(model_path, compile=False)
    return _write_tf(pipeline, directory, formats.split(","))


def _write_tf(pipeline, directory, formats):
    files = {"saved_model": write_text_saved_model(pipeline, directory)}
    if "onnx" in formats:
        files["onnx"] = write_text_onnx(pipeline, os.path.join(directory, ONNX_FILE))
        files.update(write_tokenizer_files(pipeline, directory))
    return files


def build_text_serving_module(pipeline):
    """A `tf.Module` whose `serving_default` tokenizes raw strings in the
    graph and classifies them. Returns `(module, signatures)`.

    Example:
    >>> module, signatures = build_text_serving_module(pipeline)
    >>> tf.saved_model.save(module, "out/1", signatures=signatures)
    """
    import tensorflow as tf

    classifier, preprocessor = pipeline.classifier, pipeline.preprocessor
    keys = sorted(classifier.input)
    names = tf.constant(pipeline.class_names, dtype=tf.string)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=TEXTS_KEY)])
    def serve(texts):
        features = preprocessor(texts)
        features = {key: tf.cast(features[key], tf.int32) for key in keys}
        probabilities = tf.cast(classifier(features, training=False), tf.float32)
        class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {"probabilities": probabilities, "class_ids": class_ids,
                "class_names": tf.gather(names, class_ids)}

    signatures = {"serving_default": serve.get_concrete_function()}
    module = tf.Module()
    module.serve = serve
    module.model_variables = list(signatures["serving_default"].variables)
    return module, signatures


def write_text_saved_model(pipeline, path):
    """Writes the string-input SavedModel (TensorFlow backend) to `path`.

    Example:
    >>> write_text_saved_model(pipeline, "stage")
    'stage'
    """
    import keras
    import tensorflow as tf

    from keras_tl.export.saved_model import CLASS_NAMES_ASSET

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("The string-input SavedModel needs KERAS_BACKEND=tensorflow; "
                           "export_text() switches to a TensorFlow subprocess itself.")
    module, signatures = build_text_serving_module(pipeline)
    with tempfile.TemporaryDirectory() as tmp:
        asset = os.path.join(tmp, CLASS_NAMES_ASSET)
        with open(asset, "w", encoding="utf-8") as f:
            f.write("".join(f"{name}\n" for name in pipeline.class_names))
        module.class_names_file = tf.saved_model.Asset(asset)
        tf.saved_model.save(module, path, signatures=signatures)
    return path


def write_text_onnx(pipeline, path):
    """ONNX of the classifier on token arrays (Keras' exporter, tf2onnx);
    output renamed `probabilities`, class names in the metadata.

    Example:
    >>> write_text_onnx(pipeline, "stage/model.onnx")
    'stage/model.onnx'
    """
    import contextlib
    import io
    import warnings

    import onnx

    from keras_tl.export.onnx import _rename

    classifier = pipeline.classifier
    classifier(pipeline.tokenize(["warm up"]), training=False)  # the exporter wants a called model
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        classifier.export(path, format="onnx", verbose=False)
    proto = onnx.load(path)
    _rename(proto.graph, proto.graph.output[0].name, "probabilities")
    onnx.helper.set_model_props(proto, {"class_names": json.dumps(pipeline.class_names)})
    onnx.checker.check_model(proto)
    onnx.save(proto, path)
    return path


def write_tokenizer_files(pipeline, directory):
    """The tokenizer's vocabulary (its keras_hub assets) and `tokenizer.json`
    (class, settings, sequence length, input names) in `directory`.

    Example:
    >>> write_tokenizer_files(pipeline, "stage")
    {'tokenizer': 'stage/tokenizer.json', 'vocabulary': 'stage/vocabulary.txt'}
    """
    tokenizer = pipeline.preprocessor.tokenizer
    before = set(os.listdir(directory))
    tokenizer.save_assets(directory)
    assets = sorted(set(os.listdir(directory)) - before)
    config = {k: v for k, v in tokenizer.get_config().items()
              if isinstance(v, (str, int, float, bool, list, type(None)))}
    special = {name: getattr(tokenizer, name) for name in
               ("cls_token", "sep_token", "pad_token", "start_token", "end_token")
               if isinstance(getattr(tokenizer, name, None), str)}
    info = dict(
        tokenizer=type(tokenizer).__name__, config=config, special_tokens=special,
        special_token_ids={k: int(tokenizer.token_to_id(v)) for k, v in special.items()},
        sequence_length=int(pipeline.preprocessor.sequence_length),
        inputs=sorted(pipeline.classifier.input), assets=assets,
        layout="[start] tokens [end] then padding; padding_mask 1 on real tokens; "
               "segment_ids 0",
    )
    files = {"tokenizer": os.path.join(directory, TOKENIZER_FILE)}
    with open(files["tokenizer"], "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
    for asset in assets:
        files["vocabulary" if asset.startswith("vocabulary") else asset] = os.path.join(directory, asset)
    return files


# Run in fresh interpreters: no keras, keras_hub or keras_tl.
_CHECK_SAVED_MODEL = """
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # registers the tokenizer ops
path, texts = sys.argv[1], json.loads(sys.argv[2])
out = tf.saved_model.load(path).signatures["serving_default"](texts=tf.constant(texts))
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"keras_tl", "keras_hub"})
print(json.dumps(dict(probabilities=out["probabilities"].numpy().tolist(),
                      class_ids=out["class_ids"].numpy().tolist(),
                      class_names=[n.decode() for n in out["class_names"].numpy()],
                      imported=loaded)))
"""
_CHECK_ONNX = """
import json, sys
import numpy as np
import onnxruntime as ort
arrays = np.load(sys.argv[2])
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
feed = {i.name: arrays[i.name] for i in session.get_inputs()}
probabilities = session.run(["probabilities"], feed)[0]
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"keras", "keras_tl", "keras_hub", "tensorflow"})
print(json.dumps(dict(probabilities=probabilities.tolist(), imported=loaded)))
"""


def verify_text_export(directory, texts, arrays, reference, formats=FORMATS, class_names=None):
    """Runs the exported formats in fresh processes and compares them with
    `reference` (the Keras model's probabilities for `texts`).

    Example:
    >>> verify_text_export("saved_models/reviews/1", texts, arrays, reference)
    {'saved_model': {'max_abs_diff': 2e-07, 'top_class_match': True, ...}, ...}
    """
    expected = np.argmax(reference, axis=-1)
    report = {"texts": len(texts)}
    out = json.loads(_run(_CHECK_SAVED_MODEL, [directory, json.dumps(list(texts))]).splitlines()[-1])
    probabilities = np.asarray(out["probabilities"])
    names_match = class_names is None or out["class_names"] == [class_names[i] for i in expected]
    report["saved_model"] = dict(
        max_abs_diff=float(np.max(np.abs(probabilities - reference))),
        top_class_match=bool(np.array_equal(out["class_ids"], expected) and names_match),
        fresh_process_imported=out["imported"],
    )
    if "onnx" in formats:
        with tempfile.TemporaryDirectory() as tmp:
            arrays_path = os.path.join(tmp, "arrays.npz")
            np.savez(arrays_path, **arrays)
            out = json.loads(_run(_CHECK_ONNX, [os.path.join(directory, ONNX_FILE),
                                                arrays_path]).splitlines()[-1])
        probabilities = np.asarray(out["probabilities"])
        report["onnx"] = dict(
            max_abs_diff=float(np.max(np.abs(probabilities - reference))),
            top_class_match=bool(np.array_equal(probabilities.argmax(-1), expected)),
            fresh_process_imported=out["imported"],
        )
    return report


def _run(code, args, env=None):
    import keras_tl

    root = os.path.dirname(os.path.dirname(os.path.abspath(keras_tl.__file__)))
    env = dict(os.environ, **(env or {}))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, "-c", code, *args], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"Export subprocess failed (exit {done.returncode}):\n"
                           f"{done.stderr[-4000:]}")
    return done.stdout


def _check_tolerance(verification, tolerance):
    from keras_tl.export import ExportVerificationError

    bad = {k: v for k, v in verification.items()
           if isinstance(v, dict) and not (v["top_class_match"] and
                                           (tolerance is None or v["max_abs_diff"] <= tolerance))}
    if bad:
        raise ExportVerificationError(
            f"Exported text model differs from the Keras model (tolerance {tolerance}): "
            f"{bad}. Nothing was written; pass tolerance=None to export anyway.")


def _metadata(pipeline, info, extra, user, verification, files, stage_path):
    import keras

    from keras_tl.version import __version__

    return dict(
        format_version=1, modality="text", class_names=pipeline.class_names,
        num_classes=len(pipeline.class_names),
        input={"name": TEXTS_KEY, "dtype": "string", "shape": [None],
               "description": "raw UTF-8 texts; the tokenizer is inside the SavedModel"},
        onnx_inputs={k: {"dtype": "int32", "shape": [None, int(pipeline.preprocessor.sequence_length)]}
                     for k in sorted(pipeline.classifier.input)},
        backbone=info.get("backbone"), weights=info.get("weights"), info=info,
        training=extra.get("config", {}), metrics=extra.get("metrics", {}),
        user_metadata=user or {}, verification=verification,
        files={k: os.path.relpath(v, stage_path) for k, v in files.items()},
        keras_tl_version=__version__, keras_version=keras.__version__,
        keras_backend=keras.backend.backend(),
    )


def predict_texts(export_path, texts, top=3):
    """Top classes of raw texts from an exported text SavedModel (a version
    folder, or the base folder: its latest version). Needs no Keras.

    Example:
    >>> predict_texts("saved_models/reviews", ["Tasty and fresh!"], top=1)
    [('Tasty and fresh!', [('great', 0.93)])]
    """
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

    from keras_tl.export.predict import saved_model_dir

    path = saved_model_dir(os.fspath(export_path))
    texts = [texts] if isinstance(texts, str) else list(texts)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    probabilities = serve(texts=tf.constant(texts))["probabilities"].numpy()
    with open(os.path.join(path, "assets", "class_names.txt"), encoding="utf-8") as f:
        names = f.read().splitlines()
    order = np.argsort(-probabilities, axis=1)[:, :top]
    return [(text, [(names[i], float(row[i])) for i in idx])
            for text, row, idx in zip(texts, probabilities, order)]
