"""TensorFlow Serving's REST API for one exported model, on Werkzeug.

- `POST /v1/models/NAME[/versions/N]:predict`: a JSON body with an
  optional `signature_name` and either `instances` (row format: one item
  per example, a bare value when the signature has one input, else an
  object of named inputs) answered `{"predictions": [...]}` (one item per
  example: a bare value when the signature has one output, else an object),
  or `inputs` (columnar: a value, or an object of named inputs) answered
  `{"outputs": ...}`. Binary strings are `{"b64": "..."}`; string outputs
  whose names end in `_bytes` are answered the same way.
- `GET /v1/models/NAME[/versions/N]`: the model status
  (`{"model_version_status": [...]}`); `GET .../metadata`: the signature
  definitions (`{"model_spec": ..., "metadata": {"signature_def": ...}}`).
- `GET /`: a page to try the model (`page.html`).

Errors are `{"error": "..."}`: 400 for a bad request, 404 for an unknown
model, version or path, 405 for a wrong method, 413 for a body over the
size limit, 500 (never a traceback) for a failure of the model itself.
The server is threaded; `keras_tl.serving.models` makes each format safe
under concurrent requests.
"""

import base64
import binascii
import gc
import importlib.resources
import json
import logging
import os
import re

import numpy as np
from werkzeug.exceptions import HTTPException
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from keras_tl.errors import ServingError
from keras_tl.serving.models import DEFAULT_SIGNATURE

DEFAULT_PORT = 8501
DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024
_MODEL_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?"
    r"(?P<verb>:predict|/metadata|:classify|:regress)?/?$")
_TF_DTYPES = {"float16": "DT_HALF", "float32": "DT_FLOAT", "float64": "DT_DOUBLE",
              "int8": "DT_INT8", "int16": "DT_INT16", "int32": "DT_INT32", "int64": "DT_INT64",
              "uint8": "DT_UINT8", "bool": "DT_BOOL", "string": "DT_STRING"}
_TF_NUMPY = {name: name for name in _TF_DTYPES if name != "string"}
logger = logging.getLogger(__name__)


class RestApp:
    """The WSGI application serving `served` (a
    `keras_tl.serving.models.ServedSignatures`) under `name`.

    Example:
    >>> from werkzeug.test import Client
    >>> client = Client(RestApp(served, "flowers"))  # doctest: +SKIP
    >>> client.get("/v1/models/flowers").json  # doctest: +SKIP
    {'model_version_status': [{'version': '1', 'state': 'AVAILABLE', 'status': {'error_code': 'OK', 'error_message': ''}}]}
    """

    def __init__(self, served, name, max_request_bytes=DEFAULT_MAX_REQUEST_BYTES):
        self.served, self.name = served, name
        self.max_request_bytes = int(max_request_bytes)
        self._metadata = None

    def __call__(self, environ, start_response):
        request = Request(environ)
        request.max_content_length = self.max_request_bytes
        try:
            response = self.dispatch(request)
        except HTTPException as error:  # 405, 413, a broken body...
            response = _error(error.description or error.name, error.code)
        except ServingError as error:
            response = _error(str(error), 400)
        except Exception as error:  # a failure of the model: JSON, never a traceback
            logger.exception("keras-tl serve: %s %s failed", request.method, request.path)
            response = _error(f"{type(error).__name__}: {error}", 500)
        return response(environ, start_response)

    def dispatch(self, request):
        if request.path in ("/", "/index.html"):
            _allow(request, "GET")
            return Response(self.page(), content_type="text/html; charset=utf-8")
        match = _MODEL_PATH.match(request.path)
        if match is None:
            return _error(f"Malformed request: {request.method} {request.path}", 404)
        name, version, verb = match.group("name", "version", "verb")
        if verb in (":classify", ":regress"):
            _allow(request, "POST")
            return _error(f"{verb[1:]} needs a signature on tf.Example inputs; this model "
                          "serves :predict only.", 400)
        if name != self.name or (version is not None and version != str(self.served.version)):
            spec = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            return _error(f"Servable not found for request: {spec}", 404)
        if verb == ":predict":
            _allow(request, "POST")
            return _json(self.predict(_body(request)))
        _allow(request, "GET")
        return _json(self.metadata() if verb == "/metadata" else self.status())

    def status(self):
        """TF Serving's `GetModelStatusResponse`: one available version.

        Example:
        >>> app.status()["model_version_status"][0]["state"]  # doctest: +SKIP
        'AVAILABLE'
        """
        return {"model_version_status": [{
            "version": str(self.served.version), "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}]}

    def metadata(self):
        """TF Serving's `GetModelMetadataResponse`: the signature defs (the
        SavedModel's own; for ONNX and LiteRT, the documented signatures in
        the same form).

        Example:
        >>> sorted(app.metadata()["metadata"]["signature_def"]["signature_def"])  # doctest: +SKIP
        ['__saved_model_init_op', 'serving_bytes', 'serving_default']
        """
        if self._metadata is None:
            defs = None
            if self.served.format == "saved_model":
                defs = saved_model_signature_defs(self.served.path)
            if defs is None:
                defs = {name: contract_signature_def(contract)
                        for name, contract in self.served.signatures.items()}
            self._metadata = {
                "model_spec": {"name": self.name, "signature_name": "",
                               "version": str(self.served.version)},
                "metadata": {"signature_def": {"signature_def": defs}}}
        return self._metadata

    def predict(self, body):
        """The answer to a `:predict` body (a decoded JSON object).

        Example:
        >>> app.predict({"instances": [{"texts": "tasty"}]})  # doctest: +SKIP
        {'predictions': [{'probabilities': [0.1, 0.9], 'class_ids': 1, 'class_names': 'good'}]}
        """
        if not isinstance(body, dict):
            raise ServingError("The request body must be a JSON object with \"instances\" or "
                               "\"inputs\".")
        signature_name = body.get("signature_name") or DEFAULT_SIGNATURE
        if not isinstance(signature_name, str):
            raise ServingError("\"signature_name\" must be a string.")
        contract = self.served.signature(signature_name)
        rows = "instances" in body
        if rows == ("inputs" in body):
            raise ServingError("Missing 'inputs' or 'instances' key" if not rows else
                               "Request has both 'inputs' and 'instances' keys: send one.")
        unknown = sorted(set(body) - {"signature_name", "instances", "inputs"})
        if unknown:
            raise ServingError(f"Unknown keys in the request: {unknown}.")
        specs = contract["inputs"]
        if rows:
            inputs = instances_to_inputs(body["instances"], specs)
        else:
            inputs = columns_to_inputs(body["inputs"], specs)
        outputs = self.served.run(signature_name, inputs)
        if rows:
            return {"predictions": outputs_to_predictions(outputs)}
        return {"outputs": outputs_to_columns(outputs)}

    def page(self):
        """The page at `/`, with what it needs about the model.

        Example:
        >>> "<canvas" in app.page()  # doctest: +SKIP
        True
        """
        meta = self.served.metadata or {}
        config = {"name": self.name, "version": self.served.version,
                  "format": self.served.format, "task": meta.get("task"),
                  "class_names": meta.get("class_names") or [],
                  "signatures": self.served.signatures}
        text = importlib.resources.files("keras_tl.serving").joinpath("page.html").read_text(
            encoding="utf-8")
        config = json.dumps(config).replace("<", "\\u003c")  # nothing closes the script
        return text.replace("__KERAS_TL_MODEL__", config)


def instances_to_inputs(instances, specs):
    """Row-format `instances` as `{input: array}` (see the module docstring).

    Example:
    >>> specs = {"x": {"dtype": "float32", "shape": [None, 2]}}
    >>> instances_to_inputs([[1, 2], [3, 4]], specs)["x"].tolist()
    [[1.0, 2.0], [3.0, 4.0]]
    >>> instances_to_inputs([{"b64": "aGk="}], {"s": {"dtype": "string"}})["s"].tolist()
    [b'hi']
    """
    if not isinstance(instances, list) or not instances:
        raise ServingError("\"instances\" must be a non-empty list, one item per example.")
    names = list(specs)
    named = [isinstance(item, dict) and not _is_b64(item) for item in instances]
    if any(named) and not all(named):
        raise ServingError("Mixing named and unnamed instances: give every instance as an "
                           "object of named inputs, or none.")
    if not named[0]:
        if len(names) != 1:
            raise ServingError(f"The signature takes {len(names)} named inputs {names}: each "
                               "instance must be an object of them.")
        return {names[0]: _array(names[0], instances, specs[names[0]])}
    columns = {}
    for index, item in enumerate(instances):
        if set(item) != set(names):
            raise ServingError(f"Instance {index} has inputs {sorted(item)}; the signature "
                               f"takes {sorted(names)}.")
    for key in names:
        columns[key] = _array(key, [item[key] for item in instances], specs[key])
    return columns


def columns_to_inputs(inputs, specs):
    """Columnar `inputs` as `{input: array}`: an object of named inputs, or
    one value when the signature has one input.

    Example:
    >>> columns_to_inputs({"x": [[1, 2]]}, {"x": {"dtype": "int32"}})["x"].dtype
    dtype('int32')
    """
    names = list(specs)
    if isinstance(inputs, dict) and not _is_b64(inputs):
        if set(inputs) != set(names):
            raise ServingError(f"\"inputs\" has {sorted(inputs)}; the signature takes "
                               f"{sorted(names)}.")
        return {key: _array(key, inputs[key], specs[key]) for key in names}
    if len(names) != 1:
        raise ServingError(f"The signature takes {len(names)} named inputs {names}: "
                           "\"inputs\" must be an object of them.")
    return {names[0]: _array(names[0], inputs, specs[names[0]])}


def outputs_to_predictions(outputs):
    """Outputs as row-format `predictions`: one item per example.

    Example:
    >>> outputs_to_predictions({"y": np.array([1, 2])})
    [1, 2]
    >>> outputs_to_predictions({"y": np.array([1]), "z": np.array([b"a"], dtype=object)})
    [{'y': 1, 'z': 'a'}]
    """
    batch = {len(value) if np.ndim(value) else None for value in outputs.values()}
    if len(batch) != 1 or None in batch:
        raise ServingError("The outputs have different batch sizes: send the request in the "
                           "columnar format (\"inputs\").")
    rows = {key: [_jsonable(key, row) for row in value] for key, value in outputs.items()}
    if len(rows) == 1:
        return next(iter(rows.values()))
    (count,) = batch
    return [{key: rows[key][i] for key in rows} for i in range(count)]


def outputs_to_columns(outputs):
    """Outputs as columnar `outputs`: an object of named outputs, or the one
    output's value.

    Example:
    >>> outputs_to_columns({"image_bytes": np.array([b"hi"], dtype=object)})
    [{'b64': 'aGk='}]
    """
    columns = {key: _jsonable(key, value) for key, value in outputs.items()}
    return next(iter(columns.values())) if len(columns) == 1 else columns


def contract_signature_def(contract):
    """A documented signature (`keras_tl.json`) as the JSON of TF
    Serving's `SignatureDef`.

    Example:
    >>> contract_signature_def({"inputs": {"x": {"dtype": "float32", "shape": [None, 2]}},
    ...                         "outputs": {}})["inputs"]["x"]["tensor_shape"]["dim"]
    [{'size': '-1', 'name': ''}, {'size': '2', 'name': ''}]
    """
    def tensor(key, spec):
        shape = spec.get("shape")
        return {"dtype": _TF_DTYPES.get(spec.get("dtype"), "DT_INVALID"),
                "tensor_shape": {"dim": [{"size": str(-1 if d is None else d), "name": ""}
                                         for d in (shape or [])],
                                 "unknown_rank": shape is None},
                "name": key}

    return {"inputs": {k: tensor(k, s) for k, s in contract["inputs"].items()},
            "outputs": {k: tensor(k, s) for k, s in contract["outputs"].items()},
            "method_name": "tensorflow/serving/predict"}


def saved_model_signature_defs(folder):
    """The signature defs of `folder/saved_model.pb` as TF Serving's
    metadata shows them (every field, default values included), or None
    when the file cannot be parsed.

    Example:
    >>> saved_model_signature_defs("no/such/folder") is None
    True
    """
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2

    try:
        with open(os.path.join(folder, "saved_model.pb"), "rb") as f:
            model = saved_model_pb2.SavedModel.FromString(f.read())
    except (OSError, ValueError):
        return None
    if not model.meta_graphs:
        return None
    defs = model.meta_graphs[0].signature_def
    try:
        as_dict = json_format.MessageToDict
        return {name: as_dict(defs[name], preserving_proto_field_name=True,
                              always_print_fields_with_no_presence=True) for name in defs}
    except TypeError:  # protobuf < 5 names the option differently
        return {name: json_format.MessageToDict(defs[name], preserving_proto_field_name=True,
                                                including_default_value_fields=True)
                for name in defs}


def serve(served, name, host="127.0.0.1", port=DEFAULT_PORT,
          max_request_bytes=DEFAULT_MAX_REQUEST_BYTES):
    """A threaded Werkzeug server for `served` (not started: call its
    `serve_forever()`, or `shutdown()` from another thread); `port=0`
    picks a free port (`server.port`). Serve a model `open_model` has
    loaded and warmed up: the objects alive now are frozen out of Python's
    garbage collection (`gc.freeze()`).

    Example:
    >>> server = serve(open_model("saved_models/flowers"), "flowers", port=0)  # doctest: +SKIP
    >>> threading.Thread(target=server.serve_forever, daemon=True).start()  # doctest: +SKIP
    """
    app = RestApp(served, name, max_request_bytes=max_request_bytes)
    server = make_server(host, port, app, threaded=True)
    gc.collect()
    gc.freeze()  # TensorFlow's many objects out of full GCs, whose scans of them paused 0.4 s
    return server


def _allow(request, method):
    if request.method != method:
        raise _MethodNotAllowed(method)


class _MethodNotAllowed(HTTPException):
    code = 405

    def __init__(self, method):
        super().__init__(f"This URL takes {method} requests only.")


def _body(request):
    data = request.get_data(cache=False)  # raises RequestEntityTooLarge over the limit
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ServingError(f"JSON Parse error: {error}") from None


def _is_b64(value):
    return isinstance(value, dict) and set(value) == {"b64"}


def _array(key, value, spec):
    """A JSON value as the NumPy array of a signature input."""
    if spec.get("dtype") == "string":
        return np.asarray(_strings(key, value), dtype=object)
    try:
        array = np.asarray(value, dtype=_TF_NUMPY.get(spec.get("dtype"), "float32"))
    except (TypeError, ValueError, OverflowError) as error:
        raise ServingError(f"Input {key!r} must be a (nested) list of "
                           f"{spec.get('dtype')} numbers of one shape: {error}") from None
    return array


def _strings(key, value):
    """Strings and `{"b64": ...}` objects, nested, as bytes."""
    if isinstance(value, list):
        return [_strings(key, v) for v in value]
    if _is_b64(value):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise ServingError(f"Input {key!r}: the \"b64\" value is not valid base64.") from None
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ServingError(f"Input {key!r} takes strings (binary ones as {{\"b64\": ...}}); got "
                       f"{type(value).__name__}.")


def _jsonable(key, value):
    """A NumPy output as JSON values: bytes as UTF-8 text, or `{"b64": ...}`
    for outputs named `*_bytes` and bytes that are not UTF-8."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value.tolist()
    if isinstance(value, (np.ndarray, list, tuple)):
        return [_jsonable(key, v) for v in value]
    if isinstance(value, bytes):
        if not key.endswith("_bytes"):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json(content, status=200):
    return Response(json.dumps(content), status=status, content_type="application/json")


def _error(message, status):
    return _json({"error": str(message)}, status)
