"""TensorFlow Serving's own files for an export, from its `ExportSpec`.

Inside the version folder (staged with it, so atomic like the rest):

- `assets.extra/tf_serving_warmup_requests`: TF Serving's warm-up file, a
  TFRecord of `PredictionLog` records that the server replays when it loads
  the version, before it takes traffic, so the first client request is not
  the slow one. One `PredictRequest` per signature the spec can feed, on
  the first verification input (batch 1) and on up to `WARMUP_BATCH_SIZE`
  of them (a batch the batcher forms under load; kept small, as the file is
  part of every version: 8 float32 images of 224x224 take 4.8 MB).

Beside the version folders (written only after the version is in place,
each by an atomic rename):

- `models.config`: a `ModelServerConfig` text proto naming the model (its
  folder's name), its absolute base path and the version policy (serve
  the latest version);
- `batching_parameters.txt`: a `BatchingParameters` text proto for CPU
  serving, as TF Serving's batching guide advises for CPU-only machines.

A config file whose first line is not `GENERATED_HEADER` was written or
edited by someone else and is left as it is.

The records are encoded here from TF Serving's `.proto` field numbers
(`prediction_log.proto`, `predict.proto`, `model.proto`) with TensorFlow's
own `TensorProto`, so an export needs no `tensorflow-serving-api`; the tests
parse them with it.
"""

import os
import tempfile

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MODEL_CONFIG_FILE = "models.config"
BATCHING_FILE = "batching_parameters.txt"
GENERATED_HEADER = "# Written by keras_tl export; a file without this line is left as it is."
# The largest batch the batcher forms; a warm-up request above it would make
# TF Serving refuse to load the version.
MAX_BATCH_SIZE = 32
WARMUP_BATCH_SIZE = 8

# Field numbers of TF Serving's messages (tensorflow_serving/apis/*.proto).
_PREDICTION_LOG_PREDICT_LOG = 6
_PREDICT_LOG_REQUEST = 1
_REQUEST_MODEL_SPEC, _REQUEST_INPUTS = 1, 2
_MODEL_SPEC_NAME, _MODEL_SPEC_SIGNATURE_NAME = 1, 3
_MAP_KEY, _MAP_VALUE = 1, 2


def warmup_requests(spec):
    """`[(signature name, feed)]`: the requests the warm-up file holds, for
    each signature of `spec` the verification inputs can feed, at batch 1
    and at up to `WARMUP_BATCH_SIZE`.

    Example:
    >>> from keras_tl.export_spec import ExportSpec, Signature
    >>> spec = ExportSpec("t", "m", [], {}, (Signature("serving_default", {"x": {}}, {}),),
    ...                   verification_inputs=[1, 2, 3])
    >>> warmup_requests(spec)
    [('serving_default', {'x': [1]}), ('serving_default', {'x': [1, 2, 3]})]
    """
    inputs = spec.verification_inputs
    sizes = sorted({1, min(len(inputs), WARMUP_BATCH_SIZE, MAX_BATCH_SIZE)})
    requests = []
    for signature in spec.signatures:
        for size in sizes:
            feed = signature.feed_for(inputs[:size])
            if feed is not None:
                requests.append((signature.name, feed))
    return requests


def prediction_log(model_name, signature_name, feed):
    """One serialized `PredictionLog` holding a `PredictRequest` for
    `signature_name` of model `model_name` with `feed` (`{input: array}`).

    Example:
    >>> record = prediction_log("flowers", "serving_default", {"x": [1.0]})
    >>> record[:1], b"flowers" in record and b"serving_default" in record
    (b'2', True)
    """
    import tensorflow as tf  # TensorProto encoding: exports run with TensorFlow at hand

    model_spec = (_field(_MODEL_SPEC_NAME, model_name.encode("utf-8"))
                  + _field(_MODEL_SPEC_SIGNATURE_NAME, signature_name.encode("utf-8")))
    request = _field(_REQUEST_MODEL_SPEC, model_spec)
    for key, value in feed.items():
        tensor = tf.make_tensor_proto(value).SerializeToString()
        request += _field(_REQUEST_INPUTS, _field(_MAP_KEY, key.encode("utf-8"))
                          + _field(_MAP_VALUE, tensor))
    return _field(_PREDICTION_LOG_PREDICT_LOG, _field(_PREDICT_LOG_REQUEST, request))


def write_warmup_requests(spec, version_dir, model_name):
    """Writes `assets.extra/tf_serving_warmup_requests` in `version_dir`;
    returns `{"tf_serving_warmup": path}` (empty when no signature can be fed).

    Example:
    >>> write_warmup_requests(spec, "stage", "flowers")  # doctest: +SKIP
    {'tf_serving_warmup': 'stage/assets.extra/tf_serving_warmup_requests'}
    """
    import tensorflow as tf

    requests = warmup_requests(spec)
    if not requests:
        return {}
    path = os.path.join(version_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, feed in requests:
            writer.write(prediction_log(model_name, signature_name, feed))
    return {"tf_serving_warmup": path}


def model_config(model_name, base_path):
    """`models.config`: TF Serving's `ModelServerConfig` for one model,
    serving its latest version.

    Example:
    >>> print(model_config("flowers", "/srv/saved_models/flowers"))  # doctest: +ELLIPSIS
    # Written by keras_tl export; ...
    model_config_list {
      config {
        name: "flowers"
        base_path: "/srv/saved_models/flowers"
        model_platform: "tensorflow"
        model_version_policy { latest { num_versions: 1 } }
      }
    }
    <BLANKLINE>
    """
    return (f"{GENERATED_HEADER}\n"
            "# base_path is absolute: after moving the folder, export again or edit it.\n"
            "model_config_list {\n"
            "  config {\n"
            f"    name: {_quoted(model_name)}\n"
            f"    base_path: {_quoted(base_path)}\n"
            '    model_platform: "tensorflow"\n'
            "    model_version_policy { latest { num_versions: 1 } }\n"
            "  }\n"
            "}\n")


def batching_parameters(num_batch_threads=None):
    """`batching_parameters.txt`: TF Serving's `BatchingParameters` for CPU
    serving (its batching guide's CPU-only starting point): one batch thread
    per core (default: this machine's), no waiting for a batch to fill
    (`batch_timeout_micros` 0: requests already queued are batched), batches
    of at most `MAX_BATCH_SIZE`, and a queue of one batch per thread, which
    bounds latency under overload.

    Example:
    >>> print(batching_parameters(4))  # doctest: +ELLIPSIS
    # Written by keras_tl export; ...
    max_batch_size { value: 32 }
    batch_timeout_micros { value: 0 }
    num_batch_threads { value: 4 }
    max_enqueued_batches { value: 4 }
    pad_variable_length_inputs: false
    <BLANKLINE>
    """
    threads = num_batch_threads or os.cpu_count() or 1
    return (f"{GENERATED_HEADER}\n"
            f"# num_batch_threads: the CPU cores of the serving machine ({threads} where "
            "this was exported).\n"
            "# Then try batch_timeout_micros from 1000 to 10000 under your real load.\n"
            f"max_batch_size {{ value: {MAX_BATCH_SIZE} }}\n"
            "batch_timeout_micros { value: 0 }\n"
            f"num_batch_threads {{ value: {threads} }}\n"
            f"max_enqueued_batches {{ value: {threads} }}\n"
            "pad_variable_length_inputs: false\n")


def write_server_configs(base_dir):
    """Writes `models.config` and `batching_parameters.txt` in the model's
    base folder (model name: the folder's name), each by an atomic rename;
    a file not written by keras_tl is kept. Returns `{key: path}` of the
    files that are keras_tl's.

    Example:
    >>> os.makedirs(tmp_path / "flowers", exist_ok=True)
    >>> files = write_server_configs(str(tmp_path / "flowers"))
    >>> sorted(os.path.basename(path) for path in files.values())
    ['batching_parameters.txt', 'models.config']
    """
    base_path = os.path.abspath(base_dir)
    contents = {
        "tf_serving_config": (MODEL_CONFIG_FILE,
                              model_config(os.path.basename(base_path), base_path)),
        "tf_serving_batching": (BATCHING_FILE, batching_parameters()),
    }
    files = {}
    for key, (name, text) in contents.items():
        path = os.path.join(base_path, name)
        if _written_by_someone_else(path):
            continue
        _replace(path, text)
        files[key] = path
    return files


def _field(number, payload):
    """A length-delimited protobuf field: its key, its length, its bytes."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value):
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _quoted(text):
    """A text-proto string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _written_by_someone_else(path):
    if not os.path.exists(path):
        return False
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.readline().rstrip("\n") != GENERATED_HEADER


def _replace(path, text):
    """Writes `path` through a temporary file renamed over it: a reader sees
    the old file or the new one, never half of one."""
    handle, partial = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.",
                                       dir=os.path.dirname(path))
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
