"""Reads PyTorch state-dict files into numpy arrays, without torch and
without running code from the file.

Both formats `torch.save` writes are read:

- the zip format (torch >= 1.6): `<root>/data.pkl` plus one record per
  storage, `<root>/data/<key>`;
- the legacy format: five pickles in a row (magic number, protocol version,
  system info, the object, the storage keys), then each storage as an int64
  element count followed by its raw bytes.

A checkpoint may be hostile, so:

- every pickle goes through `_RestrictedUnpickler`, whose `find_class` only
  hands out this module's own immutable stand-ins for the few globals a
  state dict uses (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
  the `torch.*Storage` types, ...). Any other global, `os.system` say, raises
  `UnsafeCheckpointError` before anything is called;
- BUILD (`__setstate__`) is refused on everything but a fresh `OrderedDict`
  (torch stores module metadata there, which is dropped), so a file cannot
  change a stand-in, a function or any other state of this process;
- storage sizes, tensor sizes, strides and offsets are checked before
  anything is allocated: no tensor may hold more elements than its storage
  or reach past it, and all tensors together may hold at most
  `_MAX_UNPACK_RATIO` times the bytes of the storages (shared views of one
  storage are returned as one array), so memory stays proportional to the
  file's size.
"""

import collections
import hashlib
import io
import math
import os
import pickle
import struct
import typing
import zipfile

import numpy as np

from keras_tl.errors import BackboneError, ChecksumError, UnsafeCheckpointError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
# Tensors may unpack to at most this many times their storages' bytes (a
# tied weight saved twice is one array, so genuine files stay at 1).
_MAX_UNPACK_RATIO = 2
# Bounds far beyond any real tensor, so that no size arithmetic can overflow.
_MAX_DIMS = 32
_MAX_EXTENT = 1 << 48


# ---------------------------------------------------------------------------
# Stand-ins for the torch globals a state dict refers to.


class _StorageType(typing.NamedTuple):
    """Stands for `torch.FloatStorage` & co.: a name and a dtype, immutable."""

    name: str
    dtype: str

    def __repr__(self):
        return f"torch.{self.name}"


def _bfloat16():
    try:
        import ml_dtypes
    except ImportError:  # pragma: no cover - ml_dtypes comes with jax and TF
        raise BackboneError(
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


def _is_count(value):
    """A non-negative int within `_MAX_EXTENT` (bools are not counts)."""
    return type(value) is int and 0 <= value <= _MAX_EXTENT


class _Storage:
    """A flat buffer of `numel` elements; its bytes may arrive after the
    pickle (legacy format). A view's `base` is the storage it slices."""

    __slots__ = ("dtype", "numel", "data", "base", "offset")

    def __init__(self, dtype, numel, data=None, base=None, offset=0):
        self.dtype = dtype
        self.numel = numel
        self.data = data
        self.base = base
        self.offset = offset

    def root(self):
        """`(root storage, offset of this storage in it)`."""
        return (self.base, self.offset) if self.base is not None else (self, 0)

    def array(self, source):
        root, offset = self.root()
        if root.data is None:
            raise UnsafeCheckpointError(f"Corrupt checkpoint {source}: a storage's data is missing.")
        return root.data[offset : offset + self.numel]


class _PendingTensor:
    """What `_rebuild_tensor_v2` returns: checked at once, turned into an
    array once the storages' bytes are known."""

    __slots__ = ("storage", "offset", "size", "stride", "numel")

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _Storage):
            raise UnsafeCheckpointError("Corrupt checkpoint: a tensor is not backed by a storage.")
        if not (isinstance(size, tuple) and isinstance(stride, tuple)
                and len(size) == len(stride) <= _MAX_DIMS
                and all(map(_is_count, size)) and all(map(_is_count, stride))):
            raise UnsafeCheckpointError(
                f"Corrupt checkpoint: bad tensor size {size!r} / stride {stride!r} "
                f"(each must be a tuple of at most {_MAX_DIMS} ints in [0, 2**48])."
            )
        if not _is_count(offset) or offset > storage.numel:
            raise UnsafeCheckpointError(
                f"Corrupt checkpoint: storage offset {offset!r} runs past its storage "
                f"of {storage.numel} elements."
            )
        numel = math.prod(size)
        if numel > storage.numel:
            raise UnsafeCheckpointError(
                f"Checkpoint refused: a tensor of shape {size} holds more elements than "
                f"its storage ({numel} > {storage.numel}), e.g. an expanded view; reading "
                "it would take more memory than the file holds. Save .contiguous() tensors."
            )
        if numel and offset + sum((n - 1) * s for n, s in zip(size, stride)) >= storage.numel:
            raise UnsafeCheckpointError(
                f"Corrupt checkpoint: a tensor of shape {size}, stride {stride} at offset "
                f"{offset} runs past its storage of {storage.numel} elements."
            )
        self.storage = storage
        self.offset = offset
        self.size = size
        self.stride = stride
        self.numel = numel

    def key(self):
        """Identifies the elements this tensor views: equal keys, equal arrays."""
        root, base = self.storage.root()
        return (id(root), base + self.offset, self.size, self.stride)

    def materialize(self, source):
        dtype = self.storage.dtype
        if not self.numel:
            return np.zeros(self.size, dtype)
        view = np.lib.stride_tricks.as_strided(
            self.storage.array(source)[self.offset :],
            shape=self.size,
            strides=[s * dtype.itemsize for s in self.stride],
            writeable=False,
        )
        return np.array(view)


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


def _is_attribute_state(state):
    """BUILD state an OrderedDict may get: `{name: value}`, optionally
    paired with slot state as `(dict, dict)`."""
    if isinstance(state, tuple) and len(state) == 2:
        return all(s is None or _is_attribute_state(s) for s in state)
    return type(state) is dict and all(type(k) is str for k in state)


class _MalformedPickle(UnsafeCheckpointError):
    """The bytes are not a well-formed pickle (or use it wrongly)."""


class _RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that resolves only `_SAFE_GLOBALS`, refuses BUILD on
    anything but a fresh `OrderedDict`, and gets storages from
    `load_storage(storage_type, key, location, numel, ...)`.

    It is the pure-Python unpickler: unlike the C one, its BUILD opcode can
    be replaced. State-dict pickles are small, so speed does not matter.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, load_storage=None, source="checkpoint"):
        super().__init__(file, encoding="utf-8")
        self._load_storage = load_storage
        self._source = source

    def load(self):
        try:
            return super().load()
        except BackboneError:
            raise
        except UnsafeCheckpointError as error:
            if self._source in str(error):
                raise
            raise type(error)(f"{self._source}: {error}") from None
        except Exception as error:  # anything a malformed pickle raises
            raise _MalformedPickle(
                f"{self._source}: malformed state-dict pickle ({type(error).__name__}: "
                f"{error}). Load only files written by torch.save(model.state_dict())."
            ) from None

    def load_build(self):
        state = self.stack.pop()
        target = self.stack[-1]
        if type(target) is not collections.OrderedDict or not _is_attribute_state(state):
            raise UnsafeCheckpointError(
                f"{self._source}: refuses BUILD (setting the state) of "
                f"{type(target).__name__} {target!r:.60}: a state dict only sets "
                "attributes of OrderedDict, so this file may try to alter this "
                "process. Nothing from it was applied."
            )
        # The OrderedDict's attributes (torch's `_metadata`) hold no weights: dropped.

    dispatch[pickle.BUILD[0]] = load_build

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
            raise UnsafeCheckpointError(f"{self._source}: bad persistent id {saved_id!r:.80}.")
        kind = saved_id[0]
        if isinstance(kind, bytes):
            kind = kind.decode("ascii", "replace")
        if kind != "storage":
            raise UnsafeCheckpointError(
                f"{self._source}: refuses persistent id of kind {kind!r:.40} (only "
                "'storage' is allowed)."
            )
        return self._load_storage(*saved_id[1:])


# ---------------------------------------------------------------------------
# File formats.


class _Storages:
    """The storages one file declares, each checked as it is declared."""

    def __init__(self, source):
        self.source = source
        self.roots = {}

    def declare(self, storage_type, key, numel):
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"{self.source}: a storage's type is {storage_type!r:.60}.")
        if type(key) not in (str, int):
            raise UnsafeCheckpointError(f"{self.source}: bad storage key {key!r:.60}.")
        if not _is_count(numel):
            raise UnsafeCheckpointError(
                f"Corrupt checkpoint {self.source}: storage {key!r} declares "
                f"{numel!r:.40} elements."
            )
        dtype = _np_dtype(storage_type.dtype)
        key = str(key)
        known = self.roots.get(key)
        if known is None:
            known = self.roots[key] = _Storage(dtype, numel)
        elif known.dtype != dtype or known.numel != numel:
            raise UnsafeCheckpointError(
                f"Corrupt checkpoint {self.source}: storage {key!r} is declared twice, "
                "with different types or sizes."
            )
        return known

    def fill(self, key, raw, big_endian=False):
        """Gives storage `key` its bytes, which must be exactly its size."""
        storage = self.roots.get(key)
        if storage is None:
            raise UnsafeCheckpointError(f"Corrupt checkpoint {self.source}: unknown storage {key!r:.60}.")
        if storage.data is not None:
            raise UnsafeCheckpointError(f"Corrupt checkpoint {self.source}: storage {key!r} given twice.")
        if len(raw) != storage.numel * storage.dtype.itemsize:
            raise UnsafeCheckpointError(
                f"Corrupt checkpoint {self.source}: storage {key!r} holds {len(raw)} "
                f"bytes, but declares {storage.numel} elements of {storage.dtype.itemsize}."
            )
        order = ">" if big_endian else "<"
        storage.data = np.frombuffer(raw, storage.dtype.newbyteorder(order)).astype(
            storage.dtype, copy=False
        )

    def nbytes(self):
        return sum(s.numel * s.dtype.itemsize for s in self.roots.values())


def _load_zip(content, source):
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        names = set(zf.namelist())
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise BackboneError(
                f"{source} is a zip file but not a PyTorch checkpoint (no single "
                "'<name>/data.pkl' inside)."
            )
        root = pickles[0][: -len("data.pkl")]
        big_endian = False
        if root + "byteorder" in names:
            big_endian = zf.read(root + "byteorder").strip() == b"big"
        storages = _Storages(source)

        def read_record(name, nbytes=None):
            # torch writes records uncompressed; a compressed one could expand
            # to far more than the file's size.
            info = zf.getinfo(name)
            if info.compress_type != zipfile.ZIP_STORED:
                raise UnsafeCheckpointError(
                    f"{source}: record {name!r} is compressed; torch.save never "
                    "compresses, so the file was altered. Re-save it with torch.save."
                )
            if nbytes is not None and info.file_size != nbytes:
                raise UnsafeCheckpointError(
                    f"Corrupt checkpoint {source}: record {name!r} holds {info.file_size} "
                    f"bytes, but its storage declares {nbytes}."
                )
            return zf.read(info)

        def load_storage(storage_type, key, location, numel, *rest):
            storage = storages.declare(storage_type, key, numel)
            if storage.data is None:
                record = f"{root}data/{key}"
                if record not in names:
                    raise UnsafeCheckpointError(f"Corrupt checkpoint {source}: no record {record!r:.80}.")
                nbytes = storage.numel * storage.dtype.itemsize
                storages.fill(str(key), read_record(record, nbytes), big_endian)
            return storage

        payload = read_record(pickles[0])
        return _RestrictedUnpickler(io.BytesIO(payload), load_storage, source).load(), storages


def _load_legacy(content, source):
    f = io.BytesIO(content)

    def header():
        return _RestrictedUnpickler(f, source=source).load()

    try:
        magic = header()
    except _MalformedPickle:
        magic = None  # not a pickle at all
    if type(magic) is not int or magic != _LEGACY_MAGIC:
        raise BackboneError(
            f"{source} is not a PyTorch checkpoint (neither the zip format nor the "
            "legacy pickle format)."
        )
    if header() != _LEGACY_PROTOCOL:
        raise BackboneError(f"{source}: unsupported legacy checkpoint protocol.")
    sys_info = header()
    little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
    storages = _Storages(source)

    def load_storage(storage_type, root_key, location, numel, view_metadata=None):
        root = storages.declare(storage_type, root_key, numel)
        if view_metadata is None:
            return root
        if not (isinstance(view_metadata, tuple) and len(view_metadata) == 3
                and _is_count(view_metadata[1]) and _is_count(view_metadata[2])
                and view_metadata[1] + view_metadata[2] <= root.numel):
            raise UnsafeCheckpointError(
                f"Corrupt checkpoint {source}: storage view {view_metadata!r:.80} runs "
                f"past its storage of {root.numel} elements."
            )
        _, offset, view_size = view_metadata
        return _Storage(root.dtype, view_size, base=root, offset=offset)

    result = _RestrictedUnpickler(f, load_storage, source).load()
    keys = header()
    if not isinstance(keys, list):
        raise UnsafeCheckpointError(f"Corrupt checkpoint {source}: no list of storage keys.")
    data = memoryview(content)
    for key in keys:
        storage = storages.roots.get(str(key))
        start = f.tell()
        if storage is None or start + 8 > len(content):
            raise UnsafeCheckpointError(f"Corrupt checkpoint {source}: storage {key!r:.60} is missing.")
        (numel,) = struct.unpack("<q", data[start : start + 8])
        if numel != storage.numel:
            raise UnsafeCheckpointError(
                f"Corrupt checkpoint {source}: storage {key!r} holds {numel} elements "
                f"but was declared with {storage.numel}."
            )
        end = start + 8 + numel * storage.dtype.itemsize
        storages.fill(str(key), data[start + 8 : min(end, len(content))], not little)
        f.seek(end)
    return result, storages


def _state_dict_of(obj, source, depth=4):
    """The `name -> tensor` mapping in a loaded object, unwrapping the usual
    `{"state_dict": ...}` / `{"model": ...}` training checkpoints."""
    while isinstance(obj, dict) and depth:
        tensors = {k: v for k, v in obj.items() if isinstance(v, _PendingTensor)}
        if tensors and all(isinstance(k, str) for k in tensors):
            return tensors
        obj = next((obj[k] for k in ("state_dict", "model_state_dict", "model", "module")
                    if isinstance(obj.get(k), dict)), None)
        depth -= 1
    raise BackboneError(
        f"{source} holds no state dict (a mapping of names to tensors); got "
        f"{type(obj).__name__}."
    )


def _materialize(tensors, storages, source):
    """`{name: array}`; views of the same elements share one array, and the
    arrays together may hold at most `_MAX_UNPACK_RATIO` times the storages'
    bytes."""
    budget = _MAX_UNPACK_RATIO * storages.nbytes()
    arrays, shared, total = {}, {}, 0
    for name, tensor in tensors.items():
        key = tensor.key()
        if key not in shared:
            total += tensor.numel * tensor.storage.dtype.itemsize
            if total > budget:
                raise UnsafeCheckpointError(
                    f"Checkpoint refused: {source}'s tensors overlap so much that they "
                    f"would take more than {_MAX_UNPACK_RATIO} times the bytes of its "
                    "storages. Save .contiguous() tensors that do not overlap."
                )
            shared[key] = tensor.materialize(source)
        arrays[name] = shared[key]
    return arrays


def sha256_file(path, chunk_size=1 << 20):
    """The hex sha256 of a file.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "abc.bin")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(b"abc")
    >>> sha256_file(path)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_digest(path, actual, expected):
    expected = expected.lower()
    if len(expected) < 8:
        raise ValueError("An expected sha256 needs at least 8 hex characters.")
    if not actual.startswith(expected):
        raise ChecksumError(
            f"{path} has sha256 {actual}, expected {expected}: the file is corrupt "
            "or not the expected checkpoint. Reinstall it or pass the right file."
        )
    return actual


def check_sha256(path, expected):
    """Raises `ChecksumError` unless the file's sha256 starts with `expected`
    (a full hex digest, or a prefix of at least 8 characters as in torch.hub
    file names). Returns the full digest.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "abc.bin")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(b"abc")
    >>> check_sha256(path, "BA7816BF")[:16]
    'ba7816bf8f01cfea'
    >>> check_sha256(path, "00000000")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_tl.errors.ChecksumError: ... has sha256 ba7816bf..., expected 00000000: ...
    """
    return _check_digest(path, sha256_file(path), expected)


def load_torch_state_dict(path, expected_sha256=None, return_sha256=False):
    """Reads a PyTorch state-dict file (zip or legacy format) as numpy arrays.

    Needs no torch and runs no code from the file: the pickle may only name
    tensors, storages and `OrderedDict`; anything else, or a size, stride or
    offset that does not fit its storage, raises `UnsafeCheckpointError`.
    The file is read once: the bytes hashed are the bytes parsed.

    Args:
        path: a `.pth` / `.pt` / `.bin` file written by `torch.save`.
        expected_sha256: if given, the file's sha256 (or a prefix of at least
            8 hex characters) is checked first; `ChecksumError` if it differs.
        return_sha256: also return the full sha256 of the bytes parsed.

    Returns:
        `dict[str, np.ndarray]`, in the file's order (tensors that view the
        same elements are one array), or `(that dict, sha256)`.

    Example:
    >>> sd = load_torch_state_dict("mobilenet_v2-b0353104.pth", "b0353104")  # doctest: +SKIP
    >>> sd["features.0.0.weight"].shape  # doctest: +SKIP
    (32, 3, 3, 3)
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint file not found: {path}")
    with open(path, "rb") as f:
        content = f.read()
    digest = hashlib.sha256(content).hexdigest()
    if expected_sha256:
        _check_digest(path, digest, expected_sha256)
    load = _load_zip if content[:4] == b"PK\x03\x04" else _load_legacy
    obj, storages = load(content, path)
    state_dict = _materialize(_state_dict_of(obj, path), storages, path)
    return (state_dict, digest) if return_sha256 else state_dict
