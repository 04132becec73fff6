"""Fingerprints of a run's data, so a run folder is only resumed on the data
it was trained on.

Folders and files are fingerprinted by their listing (relative path, size
and modification time of every file, hidden files excepted): cheap even for
large image folders, and a diff of two listings names what changed. Arrays,
lists and DataFrames are fingerprinted by a SHA-256 of their content. A
`tf.data.Dataset` can only be described by its element spec (reading it
would consume a stream that may be random), and a `"tfds:NAME"` by its name.
"""

import hashlib
import json
import os

import numpy as np

LISTINGS_FILE = "data_files.json"


def data_fingerprint(data):
    """A JSON-ready summary of `data` that changes when the data does.

    Example:
    >>> import numpy as np
    >>> fingerprint = data_fingerprint((np.zeros((2, 4, 4, 3), "uint8"), [0, 1]))
    >>> fingerprint["kind"], fingerprint["shapes"]
    ('arrays', [[2, 4, 4, 3], [2]])
    >>> data_fingerprint(None) is None
    True
    """
    if data is None:
        return None
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if path.startswith("tfds:"):
            return {"kind": "tfds", "name": path}
        listing = file_listing(path)
        return {
            "kind": "files", "path": os.path.abspath(path), "files": len(listing),
            "bytes": sum(size for size, _ in listing.values()), "sha256": _digest(listing),
        }
    if type(data).__module__.startswith("tensorflow") and hasattr(data, "element_spec"):
        return {"kind": "tf.data.Dataset", "element_spec": repr(data.element_spec)}
    if hasattr(data, "columns") and hasattr(data, "iloc"):  # a pandas DataFrame
        import pandas as pd

        hashes = pd.util.hash_pandas_object(data, index=False).to_numpy()
        content = hashlib.sha256(hashes.tobytes())
        content.update(json.dumps([str(c) for c in data.columns]).encode())
        return {"kind": "dataframe", "shapes": [list(data.shape)],
                "sha256": content.hexdigest()}
    parts = list(data) if isinstance(data, (tuple, list)) and len(data) == 2 else [data]
    content = hashlib.sha256()
    shapes = []
    for part in parts:
        array = _as_array(part)
        shapes.append(list(array.shape))
        _hash_array(content, array)
    return {"kind": "arrays", "shapes": shapes, "sha256": content.hexdigest()}


def file_listing(path):
    """`{relative path: [size, mtime_ns]}` of every non-hidden file under
    `path` (or of the file `path` itself, by its base name).

    Example:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(folder, "cat"))
    >>> open(os.path.join(folder, "cat", "1.png"), "wb").write(b"1234")
    4
    >>> {name: entry[0] for name, entry in file_listing(folder).items()}
    {'cat/1.png': 4}
    """
    if os.path.isfile(path):
        stat = os.stat(path)
        return {os.path.basename(path): [stat.st_size, stat.st_mtime_ns]}
    listing = {}
    for root, folders, files in os.walk(path):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            full = os.path.join(root, name)
            stat = os.stat(full)
            relative = os.path.relpath(full, path).replace(os.sep, "/")
            listing[relative] = [stat.st_size, stat.st_mtime_ns]
    return listing


def describe_change(old, new, old_listing=None, new_listing=None):
    """How the fingerprint `new` differs from `old`, in words (`""` if it
    does not), naming files when both listings are known.

    Example:
    >>> describe_change({"kind": "files", "sha256": "a"}, {"kind": "files", "sha256": "b"},
    ...                 {"a.png": [1, 1]}, {"a.png": [1, 1], "b.png": [2, 2]})
    '1 added (b.png)'
    >>> describe_change({"kind": "arrays", "shapes": [[2]], "sha256": "a"},
    ...                 {"kind": "arrays", "shapes": [[3]], "sha256": "b"})
    'array shapes [[2]] -> [[3]]'
    """
    if old == new:
        return ""
    if old is None or new is None:
        return "given now" if old is None else "not given now"
    if old.get("kind") != new.get("kind"):
        return f"{old.get('kind')} data before, {new.get('kind')} now"
    if old["kind"] == "files":
        if old_listing is not None and new_listing is not None:
            return _listing_change(old_listing, new_listing) or "file listing changed"
        return f"{old.get('files')} files before, {new.get('files')} now"
    if old.get("shapes") != new.get("shapes"):
        return f"array shapes {old.get('shapes')} -> {new.get('shapes')}"
    if old["kind"] in ("arrays", "dataframe"):
        return f"{'array' if old['kind'] == 'arrays' else 'DataFrame'} content changed (same shapes)"
    return f"{old} -> {new}"


def write_listings(folder, fingerprints):
    """Saves the file listings of the `"files"` fingerprints among
    `fingerprints` (`{role: fingerprint}`) in `folder`, to name changed files
    later (`describe_changes`).

    Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> write_listings(folder, {"train": data_fingerprint(folder)})
    >>> sorted(os.listdir(folder))
    ['data_files.json']
    """
    listings = {role: file_listing(fp["path"]) for role, fp in fingerprints.items()
                if fp and fp.get("kind") == "files" and os.path.exists(fp["path"])}
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, LISTINGS_FILE + ".partial")
    with open(tmp, "w") as f:
        json.dump(listings, f)
    os.replace(tmp, os.path.join(folder, LISTINGS_FILE))


def describe_changes(folder, old, new):
    """What changed between the saved data fingerprints `old` and the
    current `new` (`{role: fingerprint}`), with file names where `folder`
    holds the listings saved by `write_listings`. `""` if nothing did.

    Example:
    >>> describe_changes("runs/none", {"train": None}, {"train": None})
    ''
    """
    saved = {}
    path = os.path.join(folder, LISTINGS_FILE)
    if os.path.exists(path):
        try:
            with open(path) as f:
                saved = json.load(f)
        except ValueError:
            saved = {}
    parts = []
    for role in sorted(set(old or {}) | set(new or {})):
        before, now = (old or {}).get(role), (new or {}).get(role)
        if before == now:
            continue
        current = None
        if now and now.get("kind") == "files" and role in saved:
            current = file_listing(now["path"])
        change = describe_change(before, now, saved.get(role), current)
        parts.append(f"{_ROLE_NAMES.get(role, role)}: {change}")
    return "; ".join(parts)


_ROLE_NAMES = {"train": "training data", "validation": "validation data"}


def _listing_change(old, new, shown=3):
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(name for name in set(old) & set(new) if old[name] != new[name])
    parts = []
    for label, names in (("added", added), ("removed", removed), ("changed", changed)):
        if names:
            more = f", {len(names) - shown} more" if len(names) > shown else ""
            parts.append(f"{len(names)} {label} ({', '.join(names[:shown])}{more})")
    return ", ".join(parts)


def _digest(listing):
    return hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()


def _as_array(part):
    if hasattr(part, "numpy") and not isinstance(part, np.ndarray):
        part = part.numpy()  # a tensor
    array = np.asarray(part)
    if array.dtype == object:
        array = np.asarray([str(v) for v in array.reshape(-1)]).reshape(array.shape)
    return array


def _hash_array(content, array):
    content.update(f"{array.dtype.str}{array.shape}".encode())
    if array.dtype.kind in "US":  # strings: hash the text, not the padded buffer
        for value in array.reshape(-1):
            text = str(value).encode("utf-8")
            content.update(len(text).to_bytes(8, "little") + text)
    else:
        content.update(np.ascontiguousarray(array).tobytes())
