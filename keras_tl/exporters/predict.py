"""Predictions from any exported format, for every task.

`predict(export_path, inputs)` reads the export's `keras_tl.json`, gets its
task and its export spec (contracts and feeds, no model), turns raw inputs
(image files, texts, WAV files, arrays) into model inputs with the task's
`prepare_inputs`, runs the format the path names (the SavedModel of a
version or base folder, a `.onnx` or a `.tflite` file), and hands the
outputs to the spec's `postprocess`.
"""

import json
import os

from keras_tl.errors import ExportError
from keras_tl.export_spec import use_converted

_BATCH = 32


def predict(export_path, inputs, top=3):
    """The task's predictions for raw `inputs` from an exported model.

    Args:
        export_path: a model's base folder (`saved_models/NAME`: its latest
            version), a version folder, or an exported file (`.onnx`,
            `.tflite`).
        inputs: what the task's `prepare_inputs` takes (image or WAV file
            paths, arrays, texts); one path or text is a batch of one.
        top: for classifiers, how many classes per input.

    Returns:
        One prediction per input (for a classifier `[(class_name,
        probability), ...]`, most probable first).

    Example:
    >>> predict("saved_models/flowers", ["rose.jpg"], top=2)  # doctest: +SKIP
    [[('roses', 0.93), ('tulips', 0.05)]]
    """
    return load_export(export_path).predict(inputs, top=top)


def predict_top(export_path, image_paths, top=3):
    """`[(path, [(class_name, probability), ...]), ...]` for image (or
    other input) files: `predict` paired with its inputs.

    Example:
    >>> predict_top("saved_models/flowers", ["rose.jpg"], top=2)  # doctest: +SKIP
    [('rose.jpg', [('roses', 0.93), ('tulips', 0.05)])]
    """
    if isinstance(image_paths, (str, os.PathLike)):
        image_paths = [image_paths]
    image_paths = [os.fspath(p) for p in image_paths]
    return list(zip(image_paths, predict(export_path, image_paths, top=top)))


class LoadedExport:
    """One format of an export, ready to predict.

    Attributes: `path` (the file or folder run), `format`, `metadata`
    (`keras_tl.json`), `task`, `info`, `class_names`, `spec` (the
    export spec, without a model).

    Example:
    >>> exported = load_export("saved_models/flowers/1/model.onnx")  # doctest: +SKIP
    >>> exported.format, exported.task.name  # doctest: +SKIP
    ('onnx', 'image_classification')
    """

    def __init__(self, path, exporter, metadata):
        from keras_tl.tasks import task_of

        self.path = path
        self.format = exporter.name
        self.metadata = metadata
        self.task = task_of(metadata)
        self.info = dict(metadata.get("info") or {})
        if "input_size" in metadata:  # exports made before keras_tl.json format 2
            self.info.setdefault("input_size", metadata["input_size"])
        self.class_names = list(metadata.get("class_names") or [])
        self.spec = use_converted(self.task.export_spec(None, self.info, self.class_names))
        self._runner = exporter.open(path, self.spec)

    def outputs(self, model_inputs):
        """The format's named outputs for model inputs (prepared inputs).

        Example:
        >>> exported.outputs(images)["probabilities"].shape  # doctest: +SKIP
        (8, 5)
        """
        return self._runner.run(model_inputs)

    def predict(self, inputs, top=3, tta=False):
        """The task's predictions for raw inputs (see `predict`); `tta=True`
        (image classifiers): the mean probabilities over each image and its
        horizontal flip, as `FinetuneResult.predict(tta=True)` gives them.

        Example:
        >>> exported.predict(["rose.jpg"], top=1)  # doctest: +SKIP
        [[('roses', 0.93)]]
        """
        if isinstance(inputs, (str, bytes, os.PathLike)):
            inputs = [inputs]
        predictions = []
        if isinstance(inputs, (list, tuple)):  # files or texts: read a batch at a time
            batches = ((self.task.prepare_inputs(list(inputs[i:i + _BATCH]), self.info),
                        list(inputs[i:i + _BATCH])) for i in range(0, len(inputs), _BATCH))
        else:
            prepared = self.task.prepare_inputs(inputs, self.info)
            batches = ((prepared[i:i + _BATCH], inputs[i:i + _BATCH])
                       for i in range(0, len(prepared), _BATCH))
        for batch, given in batches:
            outputs = self._tta_outputs(batch) if tta else self.outputs(batch)
            predictions.extend(self.spec.postprocess(outputs, given, top))
        return predictions

    def _tta_outputs(self, batch):
        outputs = self.task.tta_outputs(self.outputs, batch, self.info)
        if outputs is None:
            from keras_tl.errors import ConfigError
            from keras_tl.tasks.registry import tta_tasks

            raise ConfigError(f"--tta: test-time augmentation is for {', '.join(tta_tasks())} "
                              f"models; this is a {self.task.name} model.")
        return outputs


def load_export(export_path):
    """A `LoadedExport` for the format at `export_path`.

    Example:
    >>> load_export("saved_models/flowers").format  # doctest: +SKIP
    'saved_model'
    """
    from keras_tl.exporters.metadata import read_metadata
    from keras_tl.exporters.registry import exporter_for_file, get_exporter

    path = os.fspath(export_path)
    if os.path.isfile(path):
        exporter = exporter_for_file(path)
        if exporter is None:
            raise ExportError(f"{path} is not an exported model file (.onnx, .tflite).")
    elif os.path.isdir(path):
        path, exporter = version_dir(path), get_exporter("saved_model")
    else:
        raise ExportError(
            f"No export at {path!r}: expected a model base folder with numbered versions, a "
            "version folder, a .onnx file or a .tflite file.")
    metadata = read_metadata(path)
    if metadata is None and exporter.name == "onnx":  # an .onnx file copied on its own
        metadata = _onnx_metadata(path)
    if metadata is None:
        raise ExportError(f"No keras_tl.json beside {path}: keras-tl predict reads the class "
                          "names and the task from it.")
    return LoadedExport(path, exporter, metadata)


def version_dir(path):
    """The version folder of `path`: itself when it holds a SavedModel,
    else its latest version that does.

    Example:
    >>> version_dir("saved_models/flowers")  # doctest: +SKIP
    'saved_models/flowers/2'
    """
    from keras_tl.exporters._versioning import list_versions

    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    for version in reversed(list_versions(path)):
        candidate = os.path.join(path, str(version))
        if os.path.exists(os.path.join(candidate, "saved_model.pb")):
            return candidate
    raise ExportError(f"No saved_model.pb in {path!r} nor in a numbered version folder.")


def format_prediction(prediction):
    """One line for a prediction: `"roses 0.930, tulips 0.050"` for a
    classifier's `(name, probability)` pairs, JSON otherwise.

    Example:
    >>> format_prediction([("roses", 0.93), ("tulips", 0.05)])
    'roses 0.930, tulips 0.050'
    """
    pairs = isinstance(prediction, (list, tuple)) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[1], float)
        for p in prediction)
    if pairs and prediction:
        return ", ".join(f"{name} {score:.3f}" for name, score in prediction)
    return json.dumps(prediction, default=str)


def _onnx_metadata(path):
    from keras_tl.exporters.onnx import read_onnx_properties

    properties = read_onnx_properties(path)
    if "keras_tl_task" not in properties:
        return None
    return {"task": properties["keras_tl_task"], "info": properties.get("keras_tl_info") or {},
            "class_names": properties.get("class_names") or []}
