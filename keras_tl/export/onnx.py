"""ONNX export through Keras' own `model.export(format="onnx")`.

Keras converts with tf2onnx (TensorFlow), jax2onnx (JAX) or the PyTorch
exporter; the batch dimension stays dynamic. Afterwards the graph's input is
renamed `images` and its output `probabilities`, and the class names go into
the model's metadata (`metadata_props["class_names"]`, a JSON list).
"""

import contextlib
import io
import json
import os
import warnings

import numpy as np

ONNX_FILE = "model.onnx"
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"


def export_onnx(model, path, class_names, properties=None):
    """Exports `model` with Keras' exporter, then names and annotates it.

    Example:
    >>> export_onnx(model, "stage/model.onnx", ["cat", "dog"])
    'stage/model.onnx'
    """
    # Keras refuses models never called directly (e.g. only through predict
    # under JAX, or freshly loaded): call it once on zeros.
    sample = np.zeros((1,) + tuple(model.inputs[0].shape[1:]), dtype="float32")
    model(sample, training=False)
    with warnings.catch_warnings(), _quiet():
        warnings.simplefilter("ignore")
        model.export(path, format="onnx", verbose=False)
    finalize_onnx(path, class_names, properties)
    return path


def finalize_onnx(path, class_names, properties=None):
    """Renames the single input/output and stores class names as metadata.

    Example:
    >>> finalize_onnx("model.onnx", ["cat", "dog"], {"keras_tl_version": "0.1.0"})
    """
    import onnx

    proto = onnx.load(path)
    graph = proto.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ValueError(
            f"Expected one input and one output in {path}, got "
            f"{[i.name for i in inputs]} -> {[o.name for o in graph.output]}."
        )
    _rename(graph, inputs[0].name, INPUT_NAME)
    _rename(graph, graph.output[0].name, OUTPUT_NAME)
    props = {"class_names": json.dumps(list(class_names))}
    for key, value in (properties or {}).items():
        props[key] = value if isinstance(value, str) else json.dumps(value)
    onnx.helper.set_model_props(proto, props)
    onnx.checker.check_model(proto)
    onnx.save(proto, path)


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


def read_onnx_class_names(path):
    """The class names stored in an exported `.onnx` file, or None.

    Example:
    >>> read_onnx_class_names("saved_models/flowers/1/model.onnx")
    ['daisy', 'roses', 'tulips']
    """
    import onnx

    proto = onnx.load(path, load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    return json.loads(props["class_names"]) if "class_names" in props else None


def run_onnx(path, images):
    """ONNX Runtime probabilities for a batch of RGB 0-255 images.

    Example:
    >>> run_onnx("model.onnx", images).shape
    (8, 3)
    """
    import onnxruntime

    session = onnxruntime.InferenceSession(
        os.fspath(path), providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.asarray(images, dtype="float32")})[0]


def verify_onnx(path, images, reference):
    """Max abs difference to `reference`, argmax agreement and file size.

    Example:
    >>> verify_onnx("model.onnx", images, model.predict(images))["max_abs_diff"] < 1e-4
    True
    """
    out = run_onnx(path, images)
    return {
        "max_abs_diff": float(np.max(np.abs(out - reference))),
        "argmax_agreement": float(
            np.mean(np.argmax(out, -1) == np.argmax(reference, -1))
        ),
        "bytes": os.path.getsize(path),
    }


@contextlib.contextmanager
def _quiet():
    """Hides the exporters' progress prints (tracer warnings still go to logs)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
