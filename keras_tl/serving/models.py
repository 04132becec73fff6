"""An export as TensorFlow Serving sees it: named signatures, each taking
and returning named tensors, for any of the three formats.

- SavedModel (`SavedModelSignatures`): the SavedModel's own signatures,
  run as TF Serving runs them (same inputs, same outputs, same errors).
- ONNX and LiteRT (`ConvertedSignatures`): the signatures the export's
  `keras_tl.json` documents (`signatures`, the SavedModel's contract),
  computed from the format's outputs (through `LoadedExport.outputs`), so
  a request body written for TF Serving works unchanged:

  - a numeric input (`images`, `waveforms`) is the format's model input
    as it is, checked against the documented shape;
  - a string input (`image_bytes`, `wav_bytes`: encoded files; `texts`)
    goes through the task's `prepare_inputs`, which decodes files as
    `keras-tl predict` does (the SavedModel's decoding ops);
  - the outputs are the documented ones: a classifier's `probabilities`
    plus the `class_ids` and `class_names` derived from them
    (`ExportSpec.served`); a detector's detections as its graph returns
    them (NMS inside), or its pre-NMS anchors (an export of
    `converted="raw_anchors"`) through the same NMS as `keras-tl predict`
    (`batched_nms` with the export's `info.nms`), padded to
    `max_detections` (-1, "" for padding), boxes in pixels of the image as
    given.

`open_model(path, format=None)` picks the class: a `.onnx` or `.tflite`
file, or a base or version folder with `format` naming the file inside;
then it replays the version's TF Serving warm-up file through the model
(`keras_tl.serving.warmup`), as TF Serving does on load, so the first
client request is not the slow one.
"""

import contextlib
import os
import re
import tempfile
import threading

import numpy as np

from keras_tl.errors import ExportError, KerasTLError, ServingError

DEFAULT_SIGNATURE = "serving_default"
FORMAT_FILES = {"onnx": ("model.onnx",),
                "litert": ("model_float32.tflite", "model_int8.tflite")}
_DTYPES = {"float16": "float16", "float32": "float32", "float64": "float64", "int8": "int8",
           "int16": "int16", "int32": "int32", "int64": "int64", "uint8": "uint8", "bool": "bool",
           "string": object}


def open_model(path, format=None, warmup=True):
    """The served model at `path` (`saved_models/NAME`, a version folder,
    a `.onnx` or `.tflite` file); `format` (`saved_model`, `onnx`,
    `litert`) picks the format inside a folder (default: the SavedModel).
    With `warmup`, the version's `assets.extra/tf_serving_warmup_requests`
    is replayed through it first (`served.warmup_requests`: how many ran).

    Example:
    >>> open_model("no/such/folder")
    Traceback (most recent call last):
    ...
    keras_tl.errors.ExportError: No export at 'no/such/folder': expected a model base folder with numbered versions, a version folder, a .onnx file or a .tflite file.
    """
    from keras_tl.serving.warmup import warm_up

    served = _open(path, format)
    return warm_up(served) if warmup else served


def _open(path, format):
    from keras_tl.exporters.predict import load_export, version_dir

    path = os.fspath(path)
    if not os.path.exists(path):
        load_export(path)  # raises the error `keras-tl predict` gives
    if os.path.isdir(path):
        folder = version_dir(path)
        if format in (None, "saved_model"):
            return SavedModelSignatures(folder)
        if format not in FORMAT_FILES:
            raise ExportError(f"Unknown format {format!r}: choose saved_model, onnx or litert.")
        files = [os.path.join(folder, f) for f in FORMAT_FILES[format]
                 if os.path.exists(os.path.join(folder, f))]
        if not files:
            raise ExportError(f"{folder} holds no {' or '.join(FORMAT_FILES[format])}: this "
                              f"export has no {format} model (its task may not support it).")
        path = files[0]
    if format == "saved_model":
        raise ExportError(f"{path} is a file; --format saved_model needs the export's folder.")
    return ConvertedSignatures(load_export(path))


def version_of(path):
    """The version number of an export path: its all-digit folder, else 1.

    Example:
    >>> version_of("saved_models/flowers/3/model.onnx"), version_of("model.onnx")
    (3, 1)
    """
    folder = os.path.dirname(os.path.abspath(path)) if _is_model_file(path) else path
    name = os.path.basename(os.path.normpath(folder))
    return int(name) if re.fullmatch(r"[0-9]+", name) else 1


def model_name_of(path):
    """The model name TF Serving would give an export: its base folder's name.

    Example:
    >>> model_name_of("saved_models/flowers/3/model.onnx"), model_name_of("saved_models/flowers")
    ('flowers', 'flowers')
    """
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path) if _is_model_file(path) else path
    if re.fullmatch(r"[0-9]+", os.path.basename(folder)):
        folder = os.path.dirname(folder)
    return os.path.basename(folder) or "model"


class ServedSignatures:
    """What the REST layer needs from a served model.

    Attributes: `path`, `format`, `version`, `metadata` (`keras_tl.json`),
    `signatures` (`{name: {"inputs": {key: {"dtype", "shape"}},
    "outputs": {...}}}`), `warmup_requests` and `warmup_seconds` (the
    warm-up records `open_model` replayed, and how long they took).
    `run(signature, inputs)` takes and returns `{key: numpy array}`
    (strings as bytes objects); bad inputs raise `ServingError`.

    Example:
    >>> ServedSignatures.dtype_of({"dtype": "string"})
    <class 'object'>
    """

    path = format = metadata = None
    version = 1
    signatures = {}
    warmup_requests, warmup_seconds = 0, 0.0

    def run(self, signature, inputs):
        raise NotImplementedError

    def signature(self, name):
        """The contract of signature `name` (TF Serving's error otherwise).

        Example:
        >>> served.signature("serving_bytes")["inputs"]  # doctest: +SKIP
        {'image_bytes': {'dtype': 'string', 'shape': [None]}}
        """
        name = name or DEFAULT_SIGNATURE
        if name not in self.signatures:
            raise ServingError(f'Serving signature name: "{name}" not found in signature def; '
                               f"this model has {sorted(self.signatures)}.")
        return self.signatures[name]

    @staticmethod
    def dtype_of(spec):
        """The NumPy dtype of a contract entry (strings: `object`, of bytes).

        Example:
        >>> ServedSignatures.dtype_of({"dtype": "float32"})
        'float32'
        """
        return _DTYPES.get(spec.get("dtype"), "float32")


class SavedModelSignatures(ServedSignatures):
    """A SavedModel version folder's signatures, run with TensorFlow
    (thread-safe: concurrent requests run concurrently).

    Example:
    >>> served = SavedModelSignatures("saved_models/flowers/1")  # doctest: +SKIP
    >>> sorted(served.signatures)  # doctest: +SKIP
    ['serving_bytes', 'serving_default']
    """

    format = "saved_model"

    def __init__(self, folder):
        from keras_tl.exporters.metadata import read_metadata
        from keras_tl.exporters.saved_model import load_saved_model

        self.path = folder
        self.version = version_of(folder)
        self.metadata = read_metadata(folder) or {}
        self._loaded = load_saved_model(folder)
        self._functions = dict(self._loaded.signatures)
        self.signatures = {name: _function_contract(fn) for name, fn in self._functions.items()}

    def run(self, signature, inputs):
        import tensorflow as tf

        self.signature(signature)
        function = self._functions[signature or DEFAULT_SIGNATURE]
        try:
            outputs = function(**{key: tf.constant(value) for key, value in inputs.items()})
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as error:
            raise ServingError(_tf_message(error)) from None
        return {key: value.numpy() for key, value in outputs.items()}


class ConvertedSignatures(ServedSignatures):
    """An ONNX or LiteRT file serving the signatures its `keras_tl.json`
    documents (see the module docstring). LiteRT interpreters are not
    thread-safe: their runs take a lock; ONNX Runtime sessions run
    concurrently.

    Example:
    >>> from keras_tl.exporters.predict import load_export
    >>> served = ConvertedSignatures(load_export("saved_models/flowers/1/model.onnx"))  # doctest: +SKIP
    >>> served.run("serving_default", {"images": pixels})["class_names"]  # doctest: +SKIP
    array(['roses'], dtype=object)
    """

    def __init__(self, loaded):
        self.loaded = loaded
        self.path = loaded.path
        self.format = loaded.format
        self.version = version_of(loaded.path)
        self.metadata = loaded.metadata
        documented = loaded.metadata.get("signatures") or loaded.spec.contract()
        self.signatures = {name: contract for name, contract in documented.items()
                           if len(contract["inputs"]) == 1}
        self._lock = threading.Lock() if loaded.format == "litert" else contextlib.nullcontext()

    def run(self, signature, inputs):
        contract = self.signature(signature)
        (key, spec), = contract["inputs"].items()
        if set(inputs) != {key}:
            raise ServingError(f"The signature takes one input, {key!r}; got {sorted(inputs)}.")
        value = inputs[key]
        with tempfile.TemporaryDirectory(prefix="keras_tl_serve_") as folder:
            given = None
            if spec.get("dtype") == "string":
                given = self._payloads(value, folder)
                model_inputs = self._prepared(given)
            else:
                model_inputs = np.asarray(value, dtype=self.dtype_of(spec))
                _check_shape(key, model_inputs.shape, spec.get("shape"))
            with self._lock:
                outputs = self.loaded.outputs(model_inputs)
            served = self._served(outputs, given)
        missing = [name for name in contract["outputs"] if name not in served]
        if missing:
            raise ExportError(f"{self.path} gave {sorted(served)}, not the documented {missing}.")
        return {name: np.asarray(served[name], dtype=self.dtype_of(out))
                for name, out in contract["outputs"].items()}

    def _payloads(self, value, folder):
        """String inputs as the task's `prepare_inputs` takes them: texts, or
        encoded files written into `folder` (read as `keras-tl predict` reads
        files)."""
        values = np.asarray(value, dtype=object)
        if values.ndim != 1:
            raise ServingError(f"A string input is a list [batch]; got shape {list(values.shape)}.")
        if self.loaded.task.modality == "text":
            try:
                return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
            except UnicodeDecodeError:
                raise ServingError("A text is not valid UTF-8.") from None
        paths = []
        for index, data in enumerate(values):
            path = os.path.join(folder, f"input_{index}")
            with open(path, "wb") as f:
                f.write(data if isinstance(data, bytes) else str(data).encode("utf-8"))
            paths.append(path)
        return paths

    def _prepared(self, given):
        try:
            return self.loaded.task.prepare_inputs(given, self.loaded.info)
        except (KerasTLError, ValueError) as error:
            message = str(error)
            if self.loaded.task.modality != "text":  # name the instance, not the temporary file
                message = message.replace(os.path.dirname(given[0]) + os.sep, "")
            raise ServingError(f"Cannot decode the input: {message}") from None

    def _served(self, outputs, given):
        from keras_tl.tasks import object_detector

        if not {"boxes", "scores"} <= set(outputs):  # a classifier's probabilities
            return self.loaded.spec.served(outputs)
        # a detector's detections (raw anchors through keras-tl predict's NMS first),
        # boxes to the images as given
        info = self.loaded.info
        found = object_detector.detections_of(outputs, info)
        scales = np.asarray(object_detector._scales(given, info, len(found["boxes"])))
        valid = found["class_ids"] >= 0
        found["boxes"] = np.where(valid[..., None], found["boxes"] * scales[:, None], -1.0)
        names = np.asarray([""] + list(self.loaded.class_names), dtype=object)
        found["class_names"] = names[found["class_ids"] + 1]
        return found


def _is_model_file(path):
    return os.path.isfile(path) or os.fspath(path).endswith((".onnx", ".tflite"))


def _check_shape(key, shape, documented):
    if documented is None:
        return
    wrong = len(shape) != len(documented) or any(
        want is not None and want != got for want, got in zip(documented, shape))
    if wrong:
        want = ", ".join("batch" if d is None else str(d) for d in documented)
        raise ServingError(f"Input {key!r} must have shape [{want}]; got {list(shape)}.")


def _function_contract(function):
    """`{"inputs": ..., "outputs": ...}` of a concrete function, in the
    contract's terms."""
    def entry(spec):
        dtype = spec.dtype.name
        return {"dtype": dtype, "shape": spec.shape.as_list() if spec.shape.rank is not None
                else None}

    inputs = function.structured_input_signature[1]
    return {"inputs": {key: entry(spec) for key, spec in inputs.items()},
            "outputs": {key: entry(spec) for key, spec in function.structured_outputs.items()}}


def _tf_message(error):
    """TensorFlow's message without its graph trace: the failed assertion's
    text, e.g. the size `serving_default` takes."""
    message = getattr(error, "message", None) or str(error)
    lines = [line.split("\t [[")[0].strip() for line in message.splitlines()]
    noise = ("Graph execution error", "Detected at node", "<stack traces", "[[")
    kept = [line for line in lines if line and not line.startswith(noise)]
    return re.sub(r"\s*\[Op:[^\]]*\]$", "", " ".join(kept)) or message
