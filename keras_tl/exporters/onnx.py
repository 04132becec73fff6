"""ONNX through Keras' own `model.export(format="onnx")`.

Keras converts with tf2onnx (TensorFlow), jax2onnx (JAX) or the PyTorch
exporter; the batch dimension stays dynamic. The model converted is the
spec's `converted` Keras model (for a text classifier: the classifier on
token ids, its tokenizer written beside it as assets), or its TensorFlow
function when it has one (a detector's detections, NMS inside), which
tf2onnx converts under TensorFlow (under JAX or PyTorch, in the
TensorFlow subprocess); a spec without one has no ONNX model. Afterwards the graph's inputs
and outputs carry the Keras model's input and output names, and the model's
metadata (`metadata_props`) holds `class_names` (a JSON list), the
`keras_tl_task` and its `keras_tl_info` (JSON), so a copied `.onnx` file
still says what it is.
"""

import contextlib
import io
import json
import os
import warnings

import numpy as np

from keras_tl.errors import ExportError
from keras_tl.exporters.base import Exporter, Runner, feed_by_name

ONNX_FILE = "model.onnx"


class OnnxExporter(Exporter):
    """Writes `model.onnx`.

    Example:
    >>> from keras_tl.exporters import get_exporter
    >>> get_exporter("onnx").needs_tensorflow
    False
    """

    name = "onnx"
    suffixes = (".onnx",)

    def supports(self, spec):
        return spec.converted is not None

    def write(self, spec, stage_dir):
        from keras_tl.version import __version__

        path = os.path.join(stage_dir, ONNX_FILE)
        partial = os.path.join(stage_dir, "partial." + ONNX_FILE)  # never a half model.onnx
        properties = {"class_names": list(spec.class_names), "keras_tl_task": spec.task,
                      "keras_tl_info": spec.info, "keras_tl_version": __version__}
        if spec.converted.function is not None:
            export_onnx_function(spec.converted.function(), partial, properties)
        else:
            export_onnx(spec.converted.model, partial, properties)
        os.replace(partial, path)
        return {self.name: path}

    def open(self, path, spec):
        import onnxruntime

        path = os.fspath(path)
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        inputs = session.get_inputs()
        names = [output.name for output in session.get_outputs()]
        folder = os.path.dirname(os.path.abspath(path))
        graph = spec.converted

        def run(model_inputs):
            feed = feed_by_name(graph.feed_for(model_inputs, folder), [i.name for i in inputs])
            missing = [i.name for i in inputs if i.name not in feed]
            if missing:
                raise ExportError(f"{path} takes inputs {[i.name for i in inputs]}; the "
                                  f"{spec.task} spec gave {sorted(feed)}.")
            feed = {i.name: np.asarray(feed[i.name], dtype=_numpy_dtype(i.type)) for i in inputs}
            return dict(zip(names, session.run(None, feed)))

        return Runner(run, path, graph)

    def describe(self, files):
        return describe_onnx(files[self.name])


def export_onnx(model, path, properties=None):
    """Exports a Keras model with Keras' exporter, then names its inputs and
    outputs like the Keras model's and stores `properties` (JSON values) in
    its metadata. Returns `path`.

    Example:
    >>> export_onnx(model, "stage/model.onnx", {"class_names": ["cat", "dog"]})  # doctest: +SKIP
    'stage/model.onnx'
    """
    # Keras refuses models never called directly (e.g. only through predict
    # under JAX, or freshly loaded): call it once.
    model(_sample_inputs(model), training=False)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        model.export(path, format="onnx", verbose=False)
    finalize_onnx(path, input_names(model), output_names(model), properties)
    return path


def export_onnx_function(function, path, properties=None, opset=17):
    """Converts a `tf.function` (with its input signature, returning a
    dict) with tf2onnx; its ONNX inputs and outputs keep the signature's
    input names and the dict's keys. Needs the TensorFlow backend (the
    function runs Keras layers). Returns `path`.

    Example:
    >>> import tensorflow as tf
    >>> fn = tf.function(lambda x: {"double": 2 * x},
    ...                  input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    >>> path = export_onnx_function(fn, str(tmp_path / "double.onnx"), {"k": "v"})
    >>> describe_onnx(path)["outputs"], read_onnx_properties(path)["k"]
    ({'double': {'dtype': 'float32', 'shape': [None, 2]}}, 'v')
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ExportError("A TensorFlow function converts to ONNX under the TensorFlow backend "
                          f"only (this is {keras.backend.backend()}).")
    import tf2onnx

    concrete = function.get_concrete_function()
    inputs = [spec.name for spec in function.input_signature]
    outputs = sorted(concrete.structured_outputs)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        tf2onnx.convert.from_function(function, input_signature=function.input_signature,
                                      opset=opset, output_path=path)
    finalize_onnx(path, inputs, outputs, properties)
    return path


def input_names(model):
    """The Keras model's input names (dict keys for dict inputs).

    Example:
    >>> import keras
    >>> x = keras.Input((2,), name="x")
    >>> input_names(keras.Model(x, keras.layers.Dense(1)(x)))
    ['x']
    """
    import keras

    if isinstance(model.input, dict):
        return list(model.input)
    return [tensor.name for tensor in keras.tree.flatten(model.input)]


def output_names(model):
    """The Keras model's output names, in the flattened order exporters use.

    Example:
    >>> import keras
    >>> x = keras.Input((2,))
    >>> output_names(keras.Model(x, keras.layers.Dense(1, name="score")(x)))
    ['score']
    """
    if isinstance(model.output, dict):
        return sorted(model.output)
    return list(model.output_names)


def finalize_onnx(path, inputs, outputs, properties=None):
    """Renames the graph's inputs and outputs to `inputs` / `outputs` (in
    order, unless the input names already match) and stores `properties`.

    Example:
    >>> finalize_onnx("model.onnx", ["images"], ["probabilities"],
    ...               {"class_names": ["cat", "dog"]})  # doctest: +SKIP
    """
    import onnx

    proto = onnx.load(path)
    graph = proto.graph
    initializers = {init.name for init in graph.initializer}
    graph_inputs = [i.name for i in graph.input if i.name not in initializers]
    graph_outputs = [o.name for o in graph.output]
    if len(graph_inputs) != len(inputs) or len(graph_outputs) != len(outputs):
        raise ExportError(
            f"The ONNX graph has inputs {graph_inputs} and outputs {graph_outputs}; the Keras "
            f"model has {inputs} and {outputs}.")
    if set(graph_inputs) != set(inputs):
        for old, new in zip(graph_inputs, inputs):
            _rename(graph, old, new)
    if set(graph_outputs) != set(outputs):
        for old, new in zip(graph_outputs, outputs):
            _rename(graph, old, new)
    props = {key: value if isinstance(value, str) else json.dumps(value, default=str)
             for key, value in (properties or {}).items()}
    onnx.helper.set_model_props(proto, props)
    onnx.checker.check_model(proto)
    onnx.save(proto, path)


def read_onnx_properties(path):
    """The keras_tl metadata stored in an exported `.onnx` file (JSON
    values decoded).

    Example:
    >>> read_onnx_properties("saved_models/flowers/1/model.onnx")["class_names"]  # doctest: +SKIP
    ['daisy', 'roses', 'tulips']
    """
    import onnx

    proto = onnx.load(os.fspath(path), load_external_data=False)
    properties = {}
    for prop in proto.metadata_props:
        try:
            properties[prop.key] = json.loads(prop.value)
        except ValueError:
            properties[prop.key] = prop.value
    return properties


def describe_onnx(path):
    """`{"inputs": {name: {dtype, shape}}, "outputs": {...}}` of an ONNX
    file, `None` for dynamic dimensions.

    Example:
    >>> describe_onnx("saved_models/flowers/1/model.onnx")["inputs"]  # doctest: +SKIP
    {'images': {'dtype': 'float32', 'shape': [None, 224, 224, 3]}}
    """
    import onnx

    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}

    def spec(value):
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        return {"dtype": dtype, "shape": shape}

    return {
        "inputs": {i.name: spec(i) for i in graph.input if i.name not in initializers},
        "outputs": {o.name: spec(o) for o in graph.output},
    }


def _sample_inputs(model):
    """Ones shaped like the model's inputs (unknown dimensions 1)."""
    import keras

    def ones(tensor):
        shape = [1 if d is None else d for d in tensor.shape]
        return np.ones(shape, dtype=tensor.dtype)

    return keras.tree.map_structure(ones, model.input)


def _numpy_dtype(onnx_type):
    """`"tensor(int32)"` -> `"int32"` (float32 for anything unexpected)."""
    name = onnx_type.removeprefix("tensor(").removesuffix(")")
    return {"float": "float32", "double": "float64"}.get(name, name) if name else "float32"


def _rename(graph, old, new):
    if old == new:
        return
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.name == old:
            value.name = new
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
        for attribute in node.attribute:  # If / Loop bodies see outer names
            if attribute.HasField("g"):
                _rename(attribute.g, old, new)
            for subgraph in attribute.graphs:
                _rename(subgraph, old, new)
