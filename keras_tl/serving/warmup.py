"""TF Serving's warm-up file, read and replayed as TF Serving does on load.

An export's version folder holds `assets.extra/tf_serving_warmup_requests`
(written by `keras_tl.exporters.tf_serving`): a TFRecord of `PredictionLog`
records, each a `PredictRequest` for one signature on the export's
verification inputs (batch 1 and a small batch). TF Serving runs every
record once when it loads the version, before the version takes traffic,
so no client pays for the first run's graph tracing and allocations.

`replay_warmup(served)` does the same for any served format: the records
name the SavedModel's signatures and inputs, and the ONNX and LiteRT
servers serve those same signatures (the documented contract), so the
same records run through every format; a record for a signature a format
does not serve is skipped. A model file copied without its version folder
has no warm-up file: nothing is replayed.

The records are parsed here from the `.proto` field numbers, TFRecord
framing and `TensorProto` included, so reading them needs neither
`tensorflow-serving-api` nor TensorFlow (the ONNX and LiteRT servers do not
import it).
"""

import os
import struct
import time

import numpy as np

from keras_tl.errors import ExportError, ServingError
from keras_tl.exporters.tf_serving import WARMUP_FILE

# Field numbers (tensorflow_serving/apis/{prediction_log,predict,model}.proto and
# tensorflow/core/framework/{tensor,tensor_shape}.proto).
_PREDICTION_LOG_PREDICT_LOG = 6
_PREDICT_LOG_REQUEST = 1
_REQUEST_MODEL_SPEC, _REQUEST_INPUTS = 1, 2
_MODEL_SPEC_SIGNATURE_NAME = 3
_MAP_KEY, _MAP_VALUE = 1, 2
_TENSOR_DTYPE, _TENSOR_SHAPE, _TENSOR_CONTENT, _TENSOR_STRING_VAL = 1, 2, 4, 8
_SHAPE_DIM, _DIM_SIZE = 2, 1
# DataType -> (NumPy dtype, the TensorProto field holding its values, their wire encoding)
_DTYPES = {1: ("float32", 5, "f"), 2: ("float64", 6, "d"), 3: ("int32", 7, "varint"),
           4: ("uint8", 7, "varint"), 5: ("int16", 7, "varint"), 6: ("int8", 7, "varint"),
           9: ("int64", 10, "varint"), 10: ("bool", 11, "varint"), 17: ("uint16", 7, "varint"),
           19: ("float16", 13, "varint"), 22: ("uint32", 16, "varint"),
           23: ("uint64", 17, "varint")}
_DT_STRING = 7


def warmup_file(served):
    """The warm-up file of a served model's version folder (None when it has none).

    Example:
    >>> warmup_file(served)  # doctest: +SKIP
    'saved_models/flowers/1/assets.extra/tf_serving_warmup_requests'
    """
    path = os.fspath(served.path)
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    found = os.path.join(folder, WARMUP_FILE)
    return found if os.path.isfile(found) else None


def read_warmup_requests(path):
    """`[(signature name, {input: array})]`: the `PredictRequest`s of a
    warm-up file (strings as arrays of bytes objects).

    Example:
    >>> read_warmup_requests("saved_models/flowers/1/" + WARMUP_FILE)[0][0]  # doctest: +SKIP
    'serving_default'
    """
    requests = []
    for record in read_tfrecords(path):
        for log_field, log in _fields(record):
            if log_field != _PREDICTION_LOG_PREDICT_LOG:
                continue  # a classify, regress... log: TF Serving's warm-up replays those only
            for request_field, request in _fields(log):  # (TF Serving models; not this server)
                if request_field == _PREDICT_LOG_REQUEST:
                    requests.append(_predict_request(request))
    return requests


def replay_warmup(served, path=None):
    """Runs every warm-up request of `served`'s version (`path`: the file,
    default its `assets.extra/tf_serving_warmup_requests`) through
    `served.run`, as TF Serving does when it loads a version; returns how
    many ran. Records for a signature `served` does not serve are skipped;
    a request that fails is an `ExportError`, as TF Serving fails the load.

    Example:
    >>> replay_warmup(SavedModelSignatures("saved_models/flowers/1"))  # doctest: +SKIP
    4
    """
    path = path or warmup_file(served)
    if path is None:
        return 0
    count = 0
    for index, (signature, inputs) in enumerate(read_warmup_requests(path)):
        if signature not in served.signatures:
            continue
        try:
            served.run(signature, inputs)
        except ServingError as error:
            raise ExportError(f"Warm-up request {index} of {path} ({signature}) failed: "
                              f"{error}") from None
        count += 1
    return count


def warm_up(served):
    """Replays `served`'s warm-up file once; records the count and time as
    `served.warmup_requests` and `served.warmup_seconds`; returns `served`.

    Example:
    >>> warm_up(open_model("saved_models/flowers", warmup=False)).warmup_requests  # doctest: +SKIP
    4
    """
    start = time.perf_counter()
    served.warmup_requests = replay_warmup(served)
    served.warmup_seconds = time.perf_counter() - start
    return served


def read_tfrecords(path):
    """The records of a TFRecord file: each framed by its length (uint64),
    the length's masked CRC-32C (checked) and the data's (not checked: a
    pure-Python CRC of megabytes is slow; a broken record fails to parse).

    Example:
    >>> len(list(read_tfrecords("saved_models/flowers/1/" + WARMUP_FILE)))  # doctest: +SKIP
    4
    """
    with open(path, "rb") as f:
        data = f.read()
    offset = 0
    while offset < len(data):
        if offset + 12 > len(data):
            raise ExportError(f"{path} is not a TFRecord file: it ends inside a record header.")
        header = data[offset:offset + 8]
        (length,) = struct.unpack("<Q", header)
        (crc,) = struct.unpack("<I", data[offset + 8:offset + 12])
        if crc != _masked_crc32c(header) or offset + 12 + length + 4 > len(data):
            raise ExportError(f"{path} is not a TFRecord file (record at byte {offset}).")
        yield data[offset + 12:offset + 12 + length]
        offset += 12 + length + 4


def parse_tensor(data):
    """A serialized `TensorProto` as a NumPy array, as `tf.make_ndarray`
    reads it (values from `tensor_content` or the typed field; fewer values
    than the shape holds are padded with the last one).

    Example:
    >>> parse_tensor(bytes([8, 1, 18, 4, 18, 2, 8, 2, 42, 8]) + struct.pack("<2f", 1, 2)).tolist()
    [1.0, 2.0]
    """
    dtype, shape, content, strings, fields = None, [], None, [], {}
    for number, value in _fields(data):
        if number == _TENSOR_DTYPE:
            dtype = value
        elif number == _TENSOR_SHAPE:
            shape = _shape(value)
        elif number == _TENSOR_CONTENT:
            content = value
        elif number == _TENSOR_STRING_VAL:
            strings.append(bytes(value))
        else:
            fields.setdefault(number, []).append(value)
    size = int(np.prod(shape)) if shape else 1
    if dtype == _DT_STRING:
        values = strings
        array = np.empty(len(values), dtype=object)
        array[:] = values
    elif dtype in _DTYPES:
        name, field, encoding = _DTYPES[dtype]
        if content is not None:
            return np.frombuffer(content, dtype=name).reshape(shape).copy()
        array = _scalars(fields.get(field, []), encoding)
        array = array.astype("uint16").view("float16") if name == "float16" else array.astype(name)
    else:
        raise ExportError(f"A warm-up tensor has a data type this reader does not know ({dtype}).")
    if len(array) < size:  # TensorProto's short form: the last value repeats (none: zeros)
        if len(array):
            fill = array[-1:]
        else:
            fill = np.zeros(1, array.dtype)
            if dtype == _DT_STRING:
                fill[0] = b""
        array = np.concatenate([array, np.repeat(fill, size - len(array))])
    return array[:size].reshape(shape)


def _predict_request(request):
    signature, inputs = "", {}
    for number, value in _fields(request):
        if number == _REQUEST_MODEL_SPEC:
            for spec_field, spec in _fields(value):
                if spec_field == _MODEL_SPEC_SIGNATURE_NAME:
                    signature = bytes(spec).decode("utf-8")
        elif number == _REQUEST_INPUTS:
            entry = dict(_fields(value))
            key = bytes(entry.get(_MAP_KEY, b"")).decode("utf-8")
            inputs[key] = parse_tensor(entry.get(_MAP_VALUE, b""))
    return signature or "serving_default", inputs


def _shape(data):
    dims = []
    for number, dim in _fields(data):
        if number == _SHAPE_DIM:
            sizes = [_int64(v) for f, v in _fields(dim) if f == _DIM_SIZE]
            dims.append(sizes[-1] if sizes else 0)
    return dims


def _scalars(values, encoding):
    """The numbers of a repeated scalar field, packed or not."""
    out = []
    for value in values:
        if isinstance(value, int):  # one varint
            out.append(value)
        elif encoding == "varint":  # packed varints
            data, offset = bytes(value), 0
            while offset < len(data):
                number, offset = _varint(data, offset)
                out.append(number)
        else:  # packed (or one) fixed-width floats
            out.extend(np.frombuffer(bytes(value), dtype="<" + encoding).tolist())
    if encoding == "varint":
        return np.asarray([_int64(v) for v in out], dtype="int64")
    return np.asarray(out, dtype="float64")


def _int64(value):
    """A varint as a signed 64-bit integer (two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(data):
    """`(field number, value)` of a protobuf message: ints for varints,
    bytes for length-delimited and fixed-width fields."""
    data = memoryview(data) if not isinstance(data, memoryview) else data
    offset = 0
    while offset < len(data):
        key, offset = _varint(data, offset)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, offset = _varint(data, offset)
        elif wire == 1:
            value, offset = bytes(data[offset:offset + 8]), offset + 8
        elif wire == 2:
            length, offset = _varint(data, offset)
            value, offset = data[offset:offset + length], offset + length
        elif wire == 5:
            value, offset = bytes(data[offset:offset + 4]), offset + 4
        else:
            raise ExportError(f"A warm-up record is not a protobuf message (wire type {wire}).")
        if offset > len(data):
            raise ExportError("A warm-up record is truncated.")
        yield number, value


def _varint(data, offset):
    result, shift = 0, 0
    while True:
        if offset >= len(data):
            raise ExportError("A warm-up record is truncated.")
        byte = data[offset]
        offset += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, offset


def _crc32c_table():
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def _masked_crc32c(data):
    """TFRecord's masked CRC-32C of `data` (its length header only: 8 bytes)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
