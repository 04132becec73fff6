"""SavedModel for TensorFlow Serving: the spec's signatures, class names inside.

The signatures are `ExportSpec.signatures` (e.g. `serving_default` on
pixels and `serving_bytes` on encoded images for an image classifier;
`serving_default` on raw strings for a text classifier, its tokenizer in
the graph). The class names go to `assets/class_names.txt`, one per line.

Needs TensorFlow: under JAX or PyTorch `keras_tl.exporters._backend` runs
`write` in a TensorFlow subprocess.
"""

import os
import tempfile

from keras_tl.errors import ExportError
from keras_tl.exporters.base import Exporter, Runner, size_of

CLASS_NAMES_ASSET = "class_names.txt"
DEFAULT_SIGNATURE = "serving_default"


class SavedModelExporter(Exporter):
    """Writes the SavedModel into the version folder itself (TF Serving's layout).

    Example:
    >>> from keras_tl.exporters import get_exporter
    >>> get_exporter("saved_model").needs_tensorflow
    True
    """

    name = "saved_model"
    needs_tensorflow = True

    def write(self, spec, stage_dir):
        write_saved_model(spec, stage_dir)
        return {self.name: stage_dir}

    def open(self, path, spec, signature=DEFAULT_SIGNATURE):
        function = load_saved_model(path).signatures[signature]
        graph = _signature(spec, signature)
        return Runner(_signature_runner(function, graph), path, graph, size=saved_model_size(path))

    def runners(self, files, spec):
        """One runner per signature, in the spec's order."""
        path = files[self.name]
        loaded = load_saved_model(path)
        size = saved_model_size(path)
        return {f"{self.name}/{graph.name}": Runner(
                    _signature_runner(loaded.signatures[graph.name], graph), path, graph,
                    size=size)
                for graph in spec.signatures if graph.name in loaded.signatures}

    def describe(self, files):
        return {"signatures": sorted(load_saved_model(files[self.name]).signatures)}


def write_saved_model(spec, path):
    """Writes the spec's signatures as a SavedModel at `path`, with
    `assets/class_names.txt`; returns `path`.

    Only the variables the signatures read are saved (as `keras.export`
    does): the Keras object graph stays out, so LiteRT's converter can
    freeze the variables into constants.

    Example:
    >>> write_saved_model(get_task("image_classification").export_spec(
    ...     model, {"input_size": [224, 224]}, ["cat", "dog"]), "stage")  # doctest: +SKIP
    'stage'
    """
    import tensorflow as tf

    signatures, module, variables = {}, tf.Module(), {}
    for index, graph in enumerate(spec.signatures):
        function = graph.function()
        if hasattr(function, "get_concrete_function"):  # a tf.function with its input signature
            setattr(module, f"signature_{index}", function)
            function = function.get_concrete_function()
        signatures[graph.name] = function
        for variable in function.variables:
            variables[id(variable)] = variable
    module.model_variables = list(variables.values())
    with tempfile.TemporaryDirectory() as tmp:
        asset = os.path.join(tmp, CLASS_NAMES_ASSET)
        with open(asset, "w", encoding="utf-8") as f:
            f.write("".join(f"{name}\n" for name in spec.class_names))
        module.class_names_file = tf.saved_model.Asset(asset)
        tf.saved_model.save(module, path, signatures=signatures)
    return path


def load_saved_model(path):
    """`tf.saved_model.load(path)`, with TensorFlow Text's ops registered
    when it is installed (text SavedModels tokenize with them).

    Example:
    >>> load_saved_model("saved_models/flowers/1").signatures["serving_default"]  # doctest: +SKIP
    """
    import tensorflow as tf

    try:
        import tensorflow_text  # noqa: F401  (registers its ops)
    except ImportError:
        pass
    return tf.saved_model.load(os.fspath(path))


def saved_model_size(path):
    """Bytes of the SavedModel's own files in a version folder
    (`saved_model.pb`, `variables/`, `assets/`).

    Example:
    >>> saved_model_size("no/such/folder")
    0
    """
    parts = [os.path.join(path, name) for name in ("saved_model.pb", "variables", "assets")]
    return sum(size_of(part) for part in parts if os.path.exists(part))


def read_class_names(path):
    """Class names from a SavedModel's `assets/class_names.txt`.

    Example:
    >>> read_class_names("saved_models/flowers/1")  # doctest: +SKIP
    ['daisy', 'roses', 'tulips']
    """
    with open(os.path.join(path, "assets", CLASS_NAMES_ASSET), encoding="utf-8") as f:
        return f.read().splitlines()


def _signature(spec, name):
    for graph in spec.signatures:
        if graph.name == name:
            return graph
    raise ExportError(f"The {spec.task} spec has no signature {name!r}; it has "
                      f"{[graph.name for graph in spec.signatures]}.")


def _signature_runner(function, graph):
    import tensorflow as tf

    def run(inputs):
        feed = graph.feed_for(inputs)
        if feed is None:  # the spec cannot feed this signature from model inputs
            return None
        outputs = function(**{key: tf.constant(value) for key, value in feed.items()})
        return {key: value.numpy() for key, value in outputs.items()}

    return run
