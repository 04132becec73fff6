"""LiteRT (TFLite) models converted from the spec's default signature when
a converter can carry its ops (`Signature.convertible`), else from the
spec's converted graph (its TensorFlow function when it has one, e.g. a
detector's detections with NMS by the converter's own NMS ops; else its
Keras model) when that graph takes the raw inputs alone;
a model whose feed reads assets beside it (a tokenizer) has no LiteRT file
(a LiteRT file ships to devices on its own).

Two files: `model_float32.tflite` and `model_int8.tflite`. Each has one
signature, `serving_default`, with the SavedModel's inputs and outputs
(float32 in and out). The int8 model has int8 weights (per channel) and,
when the spec has representative inputs (the run's training sample),
int8 activations calibrated on them; ops without an int8 kernel stay in
float. Without representative inputs it is weights-only (dynamic range).

The int8 model is not held to the tolerance (quantization changes its
outputs by design) but to the task's `QualityCheck` (`spec.quality`, e.g.
top-1 agreement with the Keras model >= 0.98) on the verification inputs:
the calibrated model when it passes, else the weights-only one when it
passes, else no int8 file and a warning saying why; its report's `gate`
records the decision (`keras_tl.json`: `formats.litert_int8`).
"""

import logging
import os
import tempfile
import warnings

import numpy as np

from keras_tl.export_spec import Signature
from keras_tl.exporters.base import Exporter, Runner, feed_by_name

FLOAT32_FILE = "model_float32.tflite"
INT8_FILE = "model_int8.tflite"
WEIGHTS_ONLY_FILE = "model_int8_weights_only.tflite"  # the fallback candidate, never kept by name
WEIGHTS_ONLY_KEY = "litert_int8_weights_only"
SIGNATURE = "serving_default"
log = logging.getLogger(__name__)


class LiteRTExporter(Exporter):
    """Writes the float32 and int8 `.tflite` files.

    Example:
    >>> from keras_tl.exporters import get_exporter
    >>> get_exporter("litert").suffixes
    ('.tflite',)
    """

    name = "litert"
    needs_tensorflow = True
    suffixes = (".tflite",)

    def supports(self, spec):
        return litert_source(spec) is not None

    def write(self, spec, stage_dir):
        source = litert_source(spec)
        if isinstance(source, Signature) and \
                os.path.exists(os.path.join(stage_dir, "saved_model.pb")):
            return convert_litert(stage_dir, stage_dir, representative_feeds(spec, stage_dir))
        from keras_tl.exporters.saved_model import write_saved_model

        with tempfile.TemporaryDirectory(prefix="keras_tl_litert_") as tmp:
            if isinstance(source, Signature):
                write_saved_model(spec, tmp)
            elif source.function is not None:
                write_function_signature(source.function(), tmp)
            else:
                write_keras_signature(source.model, tmp)
            return convert_litert(tmp, stage_dir, representative_feeds(spec, stage_dir))

    def open(self, path, spec):
        from ai_edge_litert.interpreter import Interpreter

        path = os.fspath(path)
        runner = Interpreter(model_path=path).get_signature_runner(SIGNATURE)
        names = list(runner.get_input_details())
        folder = os.path.dirname(os.path.abspath(path))
        source = litert_source(spec)

        def run(inputs):
            if isinstance(source, Signature):
                feed = source.feed_for(inputs)
            else:
                feed = feed_by_name(source.feed_for(inputs, folder), names)
            return dict(runner(**{key: np.asarray(value) for key, value in feed.items()}))

        return Runner(run, path, source)

    def runners(self, files, spec):
        runners = {"litert_float32": self.open(files["litert_float32"], spec)}
        if "litert_int8" in files:
            runners["litert_int8"] = self.open(files["litert_int8"], spec)
            runners["litert_int8"].enforced = False
        return runners

    def verify(self, files, spec):
        gate = self.choose_int8(files, spec) if spec.quality is not None else None
        reports = super().verify(files, spec)
        if gate is not None:
            reports.setdefault("litert_int8", {"skipped": "not written: " + gate.get("reason", ""),
                                               "enforced": False})["gate"] = gate
        return reports

    def choose_int8(self, files, spec):
        """Judges the int8 candidates (calibrated, then weights-only) by the
        spec's quality check on the verification inputs; keeps the first
        that passes as `model_int8.tflite`, removes the others (and the
        file itself when none passes, with a warning). Returns the decision."""
        quality = spec.quality
        candidates = [(key, label) for key, label in (
            ("litert_int8", "calibrated" if spec.representative_inputs is not None
             else "weights_only"), (WEIGHTS_ONLY_KEY, "weights_only")) if key in files]
        if not candidates:
            return None
        tried, chosen = {}, None
        for key, label in candidates:
            runner = self.open(files[key], spec)
            reference = (spec.converted_reference if runner.graph is spec.converted
                         else spec.reference)
            tried[label] = float(quality.measure(runner.run(spec.verification_inputs), reference))
            if tried[label] >= quality.threshold:
                chosen = (key, label)
                break
        int8_path = files["litert_int8"]
        kept = files[chosen[0]] if chosen else None
        for key, _ in candidates:
            path = files.pop(key)
            if path != kept:
                os.remove(path)
        if chosen:
            os.replace(kept, int8_path)
            files["litert_int8"] = int8_path
        label = chosen[1] if chosen else candidates[0][1]
        calibration = (f"{len(spec.representative_inputs)} training inputs"
                       if label == "calibrated" else "no inputs (weights-only int8)")
        gate = {"written": chosen is not None, "metric": quality.metric,
                quality.metric: tried[label], "threshold": quality.threshold,
                "quantization": label, "calibration": calibration, "tried": tried,
                "verification_inputs": len(spec.verification_inputs)}
        if chosen is None:
            gate["reason"] = (f"{quality.metric} with the Keras model "
                              + ", ".join(f"{value:.3f} ({name})" for name, value in tried.items())
                              + f" < threshold {quality.threshold} on "
                              f"{gate['verification_inputs']} verification inputs")
            message = f"{INT8_FILE} not written: {gate['reason']}"
            log.warning(message)
            warnings.warn(message, stacklevel=3)
        return gate

    def describe(self, files):
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=files["litert_float32"]).get_signature_runner(SIGNATURE)

        def specs(details):
            return {name: {"dtype": _dtype_name(d["dtype"]),
                           "shape": [None if s < 0 else int(s) for s in d["shape_signature"]]}
                    for name, d in details.items()}

        return {"signature": SIGNATURE, "inputs": specs(runner.get_input_details()),
                "outputs": specs(runner.get_output_details())}


def litert_source(spec):
    """What LiteRT converts for `spec`: its default `Signature` when a
    converter can carry its ops, else its `ConvertedGraph` when that takes
    the model inputs alone (reads no assets), else `None` (no LiteRT model).

    Example:
    >>> from keras_tl.tasks import get_task
    >>> litert_source(get_task("image_classification").export_spec(
    ...     None, {"input_size": [8, 8]}, ["a", "b"])).name
    'serving_default'
    >>> litert_source(get_task("text_classification").export_spec(None, {}, ["a", "b"])) is None
    True
    """
    if spec.signatures and spec.signatures[0].convertible:
        return spec.signatures[0]
    if spec.converted is not None and not spec.converted.reads_assets:
        return spec.converted
    return None


def write_keras_signature(model, path):
    """Writes a SavedModel whose one signature, `serving_default`, is the
    Keras `model`: its inputs under the model's input names, its outputs
    under its output names (dict keys for dict outputs). Returns `path`.

    Example:
    >>> write_keras_signature(raw_detection_model(detector), "tmp")  # doctest: +SKIP
    'tmp'
    """
    import keras
    import tensorflow as tf

    from keras_tl.exporters.onnx import input_names, output_names

    names = input_names(model)
    tensors = keras.tree.flatten(model.input)
    specs = [tf.TensorSpec(t.shape, t.dtype, name=name) for t, name in zip(tensors, names)]

    @tf.function(input_signature=specs)
    def serve(*args):
        if isinstance(model.input, dict):
            outputs = model(dict(zip(names, args)), training=False)
        else:
            outputs = model(args[0] if len(args) == 1 else list(args), training=False)
        if isinstance(outputs, dict):
            return dict(outputs)
        return dict(zip(output_names(model), keras.tree.flatten(outputs)))

    return write_function_signature(serve, path)


def write_function_signature(function, path):
    """Writes a SavedModel whose one signature, `serving_default`, is the
    `tf.function` `function` (with its input signature; the variables it
    captures are tracked). Returns `path`.

    Example:
    >>> import tensorflow as tf
    >>> fn = tf.function(lambda x: {"double": 2 * x},
    ...                  input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    >>> loaded = tf.saved_model.load(write_function_signature(fn, str(tmp_path / "sm")))
    >>> loaded.signatures[SIGNATURE](x=tf.ones([2]))["double"].numpy().tolist()
    [2.0, 2.0]
    """
    import tensorflow as tf

    concrete = function.get_concrete_function()
    module = tf.Module()
    module.serve = function
    module.captured_variables = list(concrete.variables)
    tf.saved_model.save(module, path, signatures={SIGNATURE: concrete})
    return path


def converted_input_names(graph):
    """The input names of a `ConvertedGraph`: its function's input
    signature's, else its Keras model's.

    Example:
    >>> import keras
    >>> from keras_tl.export_spec import ConvertedGraph
    >>> x = keras.Input((2,), name="x")
    >>> converted_input_names(ConvertedGraph(keras.Model(x, x)))
    ['x']
    """
    if graph.function is not None:
        return [spec.name for spec in graph.function().input_signature]
    from keras_tl.exporters.onnx import input_names

    return input_names(graph.model)


def representative_feeds(spec, folder):
    """`spec.representative_inputs` as the converter's calibration feed: a
    list of `{input_name: one-input batch}`, or `None` without them.

    Example:
    >>> from keras_tl.tasks import get_task
    >>> spec = get_task("image_classification").export_spec(
    ...     None, {"input_size": [8, 8]}, ["a", "b"])
    >>> spec.representative_inputs = np.zeros((3, 8, 8, 3), "float32")
    >>> feeds = representative_feeds(spec, ".")
    >>> len(feeds), {name: x.shape for name, x in feeds[0].items()}
    (3, {'images': (1, 8, 8, 3)})
    """
    if spec.representative_inputs is None:
        return None
    source = litert_source(spec)
    if isinstance(source, Signature):
        feed = source.feed_for(spec.representative_inputs)
    else:
        feed = feed_by_name(source.feed_for(spec.representative_inputs, folder),
                            converted_input_names(source))
    count = len(next(iter(feed.values())))
    return [{name: np.asarray(value[i:i + 1], "float32") for name, value in feed.items()}
            for i in range(count)]


def convert_litert(saved_model_dir, out_dir, representative=None):
    """Writes the float32 and int8 `.tflite` files of a SavedModel's
    `serving_default`; returns their paths. `representative` (a list of
    feeds, see `representative_feeds`) calibrates the int8 model's
    activations, and a weights-only int8 candidate is written beside it
    (`WEIGHTS_ONLY_KEY`, the verification's fallback); without it only
    the int8 model's weights are int8.

    Example:
    >>> convert_litert("saved_models/flowers/1", "saved_models/flowers/1")  # doctest: +SKIP
    {'litert_float32': '.../model_float32.tflite', 'litert_int8': '.../model_int8.tflite'}
    """
    import tensorflow as tf

    paths = {}
    variants = [("litert_float32", FLOAT32_FILE, None), ("litert_int8", INT8_FILE, representative)]
    if representative:  # the weights-only fallback, should calibrated activations lose too much
        variants.append((WEIGHTS_ONLY_KEY, WEIGHTS_ONLY_FILE, None))
    for key, filename, calibration in variants:
        converter = tf.lite.TFLiteConverter.from_saved_model(
            saved_model_dir, signature_keys=[SIGNATURE])
        if key != "litert_float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]  # per-channel int8 weights
            if calibration:
                converter.representative_dataset = lambda: iter(calibration)
        paths[key] = os.path.join(out_dir, filename)
        with open(paths[key], "wb") as f:
            f.write(converter.convert())
    return paths


def _dtype_name(dtype):
    name = np.dtype(dtype).name
    return "string" if name in ("bytes", "object", "str") else name
