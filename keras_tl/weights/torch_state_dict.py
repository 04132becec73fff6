"""Reads PyTorch state-dict files into numpy arrays, without torch and
without running code from the file.

Both formats `torch.save` writes are read:

- the zip format (torch >= 1.6): `<root>/data.pkl` plus one record per
  storage, `<root>/data/<key>`;
- the legacy format: five pickles in a row (magic number, protocol version,
  system info, the object, the storage keys), then each storage as an int64
  element count followed by its raw bytes.

Every pickle goes through `_RestrictedUnpickler`, whose `find_class` only
hands out this module's own stand-ins for the few globals a state dict
uses (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, the
`torch.*Storage` types, ...). Any other global, `os.system` say, raises
`UnsafeCheckpointError` before anything is called.
"""

import collections
import hashlib
import io
import os
import pickle
import struct
import zipfile

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint asked for a global outside the state-dict allowlist."""


class ChecksumError(ValueError):
    """A file's sha256 is not the expected one."""


# ---------------------------------------------------------------------------
# Stand-ins for the torch globals a state dict refers to.


class _StorageType:
    """Stands for `torch.FloatStorage` & co.: only carries a dtype."""

    __slots__ = ("name", "dtype")

    def __init__(self, name, dtype):
        self.name = name
        self.dtype = dtype

    def __repr__(self):
        return f"torch.{self.name}"


def _bfloat16():
    try:
        import ml_dtypes
    except ImportError:  # pragma: no cover - ml_dtypes comes with jax and TF
        raise ValueError(
            "This checkpoint holds bfloat16 tensors; reading them needs the "
            "ml_dtypes package (pip install ml_dtypes)."
        ) from None
    return np.dtype(ml_dtypes.bfloat16)


_STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    "UntypedStorage": "uint8",
}


def _np_dtype(name):
    return _bfloat16() if name == "bfloat16" else np.dtype(name)


class _Storage:
    """A flat buffer; its bytes may arrive after the pickle (legacy format)."""

    __slots__ = ("dtype", "numel", "data", "base", "offset")

    def __init__(self, dtype, numel, data=None, base=None, offset=0):
        self.dtype = dtype
        self.numel = numel
        self.data = data
        self.base = base
        self.offset = offset

    def array(self):
        if self.base is not None:
            return self.base.array()[self.offset : self.offset + self.numel]
        if self.data is None:
            raise ValueError("Corrupt checkpoint: a storage's data is missing.")
        return self.data

    def __setstate__(self, state):
        raise UnsafeCheckpointError("Corrupt checkpoint: BUILD applied to a storage.")


class _PendingTensor:
    """What `_rebuild_tensor_v2` returns: turned into an array after loading."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _Storage):
            raise UnsafeCheckpointError(
                "Corrupt checkpoint: a tensor is not backed by a storage."
            )
        if not _is_int_tuple(size) or not _is_int_tuple(stride) or len(size) != len(stride):
            raise ValueError(f"Corrupt checkpoint: bad tensor size {size!r} / stride {stride!r}.")
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"Corrupt checkpoint: bad storage offset {offset!r}.")
        self.storage = storage
        self.offset = offset
        self.size = tuple(size)
        self.stride = tuple(stride)

    def __setstate__(self, state):
        raise UnsafeCheckpointError("Corrupt checkpoint: BUILD applied to a tensor.")

    def materialize(self):
        dtype = self.storage.dtype
        if 0 in self.size:
            return np.zeros(self.size, dtype)
        flat = self.storage.array()
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if min(self.stride, default=0) < 0 or last >= flat.size:
            raise ValueError(
                f"Corrupt checkpoint: tensor of shape {self.size} runs past its "
                f"storage of {flat.size} elements."
            )
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :],
            shape=self.size,
            strides=[s * dtype.itemsize for s in self.stride],
            writeable=False,
        )
        return np.array(view)


def _is_int_tuple(value):
    return isinstance(value, tuple) and all(isinstance(v, int) and v >= 0 for v in value)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return data


class _TypeMarker:
    """Stands for `torch.Tensor` / `torch.nn.Parameter` in `_rebuild_from_type_v2`."""

    __slots__ = ()


_REBUILDERS = (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_parameter,
               _rebuild_parameter_with_state)


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in _REBUILDERS or not isinstance(new_type, _TypeMarker):
        raise UnsafeCheckpointError(
            "Checkpoint refused: _rebuild_from_type_v2 with a function outside the "
            "state-dict allowlist."
        )
    return func(*args)


def _size(*args):
    return tuple(*args)


_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): _TypeMarker(),
    ("torch.nn.parameter", "Parameter"): _TypeMarker(),
    ("torch", "Size"): _size,
}
for _name, _dtype in _STORAGE_DTYPES.items():
    _SAFE_GLOBALS[("torch", _name)] = _StorageType(_name, _dtype)
_SAFE_GLOBALS[("torch.storage", "UntypedStorage")] = _SAFE_GLOBALS[("torch", "UntypedStorage")]


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only `_SAFE_GLOBALS`; storages come from
    `load_storage(storage_type, key, numel, view)`."""

    def __init__(self, file, load_storage=None, source="checkpoint"):
        super().__init__(file)
        self._load_storage = load_storage
        self._source = source

    def find_class(self, module, name):
        found = _SAFE_GLOBALS.get((module, name))
        if found is None:
            raise UnsafeCheckpointError(
                f"{self._source}: refuses global '{module}.{name}': a PyTorch "
                "state dict only needs tensors, storages and OrderedDict, so this "
                "file may try to run code. Nothing from it was executed. Load "
                "only files you trust, and only state dicts (model.state_dict())."
            )
        return found

    def persistent_load(self, saved_id):
        if self._load_storage is None:
            raise UnsafeCheckpointError(f"{self._source}: unexpected persistent id.")
        if not isinstance(saved_id, tuple) or not saved_id:
            raise UnsafeCheckpointError(f"{self._source}: bad persistent id {saved_id!r}.")
        kind = saved_id[0]
        if isinstance(kind, bytes):
            kind = kind.decode("ascii")
        if kind != "storage":
            raise UnsafeCheckpointError(
                f"{self._source}: refuses persistent id of kind {kind!r} (only "
                "'storage' is allowed)."
            )
        return self._load_storage(*saved_id[1:])


# ---------------------------------------------------------------------------
# File formats.


def _storage_dtype(storage_type, source):
    if not isinstance(storage_type, _StorageType):
        raise UnsafeCheckpointError(f"{source}: a storage's type is {storage_type!r}.")
    return _np_dtype(storage_type.dtype)


def _load_zip(path):
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError(
                f"{path} is a zip file but not a PyTorch checkpoint (no single "
                "'<name>/data.pkl' inside)."
            )
        root = pickles[0][: -len("data.pkl")]
        big_endian = False
        if root + "byteorder" in names:
            big_endian = zf.read(root + "byteorder").strip() == b"big"
        loaded = {}

        def load_storage(storage_type, key, location, numel, *rest):
            dtype = _storage_dtype(storage_type, path)
            key = str(key)
            if key not in loaded:
                record = root + "data/" + key
                if record not in names:
                    raise ValueError(f"Corrupt checkpoint {path}: no record {record!r}.")
                raw = zf.read(record)
                if len(raw) % dtype.itemsize:
                    raise ValueError(f"Corrupt checkpoint {path}: record {record!r} size.")
                data = np.frombuffer(raw, dtype.newbyteorder(">" if big_endian else "<"))
                loaded[key] = _Storage(dtype, data.size, data=data.astype(dtype, copy=False))
            return loaded[key]

        with zf.open(pickles[0]) as f:
            return _RestrictedUnpickler(io.BytesIO(f.read()), load_storage, path).load()


def _load_legacy(path):
    with open(path, "rb") as f:
        def header():
            return _RestrictedUnpickler(f, source=path).load()

        try:
            magic = header()
        except UnsafeCheckpointError:
            raise
        except Exception:  # not a pickle at all
            magic = None
        if magic != _LEGACY_MAGIC:
            raise ValueError(
                f"{path} is not a PyTorch checkpoint (neither the zip format nor the "
                "legacy pickle format)."
            )
        if header() != _LEGACY_PROTOCOL:
            raise ValueError(f"{path}: unsupported legacy checkpoint protocol.")
        sys_info = header()
        little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
        storages = {}

        def load_storage(storage_type, root_key, location, numel, view_metadata=None):
            dtype = _storage_dtype(storage_type, path)
            root_key = str(root_key)
            if root_key not in storages:
                storages[root_key] = _Storage(dtype, int(numel))
            root = storages[root_key]
            if view_metadata is None:
                return root
            view_key, offset, view_size = view_metadata
            return _Storage(dtype, int(view_size), base=root, offset=int(offset))

        result = _RestrictedUnpickler(f, load_storage, path).load()
        keys = header()
        size = os.fstat(f.fileno()).st_size
        order = "<" if little else ">"
        for key in keys:
            storage = storages.get(str(key))
            if storage is None:
                raise ValueError(f"Corrupt checkpoint {path}: unknown storage {key!r}.")
            (numel,) = struct.unpack("<q", f.read(8))
            nbytes = numel * storage.dtype.itemsize
            if numel != storage.numel or f.tell() + nbytes > size:
                raise ValueError(f"Corrupt checkpoint {path}: storage {key!r} size.")
            data = np.frombuffer(f.read(nbytes), storage.dtype.newbyteorder(order))
            storage.data = data.astype(storage.dtype, copy=False)
        return result


def _materialize(obj):
    if isinstance(obj, _PendingTensor):
        return obj.materialize()
    if isinstance(obj, dict):
        return {k: _materialize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v) for v in obj)
    return obj


def _state_dict_of(obj, path):
    """The `name -> array` mapping in a loaded object, unwrapping the usual
    `{"state_dict": ...}` / `{"model": ...}` training checkpoints."""
    if isinstance(obj, dict):
        arrays = {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}
        if arrays and all(isinstance(k, str) for k in arrays):
            return arrays
        for key in ("state_dict", "model_state_dict", "model", "module"):
            if isinstance(obj.get(key), dict):
                return _state_dict_of(obj[key], path)
    raise ValueError(
        f"{path} holds no state dict (a mapping of names to tensors); got "
        f"{type(obj).__name__}."
    )


def sha256_file(path, chunk_size=1 << 20):
    """The hex sha256 of a file.

    Example:
    >>> sha256_file("efficientnet-lite0-57934424.pth")[:8]
    '57934424'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path, expected):
    """Raises `ChecksumError` unless the file's sha256 starts with `expected`
    (a full hex digest, or a prefix of at least 8 characters as in torch.hub
    file names). Returns the full digest.

    Example:
    >>> check_sha256("mobilenet_v2-b0353104.pth", "b0353104")
    'b03531047ffacf1e...'
    """
    expected = expected.lower()
    if len(expected) < 8:
        raise ValueError("An expected sha256 needs at least 8 hex characters.")
    actual = sha256_file(path)
    if not actual.startswith(expected):
        raise ChecksumError(
            f"{path} has sha256 {actual}, expected {expected}: the file is corrupt "
            "or not the expected checkpoint. Reinstall it or pass the right file."
        )
    return actual


def load_torch_state_dict(path, expected_sha256=None):
    """Reads a PyTorch state-dict file (zip or legacy format) as numpy arrays.

    Needs no torch and runs no code from the file: the pickle may only name
    tensors, storages and `OrderedDict`; anything else raises
    `UnsafeCheckpointError` naming the refused global.

    Args:
        path: a `.pth` / `.pt` / `.bin` file written by `torch.save`.
        expected_sha256: if given, the file's sha256 (or a prefix of at least
            8 hex characters) is checked first; `ChecksumError` if it differs.

    Returns:
        `dict[str, np.ndarray]`, in the file's order.

    Example:
    >>> sd = load_torch_state_dict("mobilenet_v2-b0353104.pth", "b0353104")
    >>> sd["features.0.0.weight"].shape
    (32, 3, 3, 3)
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint file not found: {path}")
    if expected_sha256:
        check_sha256(path, expected_sha256)
    with open(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    if is_zip:
        obj = _load_zip(path)
    else:
        obj = _load_legacy(path)
    return _state_dict_of(_materialize(obj), path)
