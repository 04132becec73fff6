"""Class folders: `root/<class name>/<file>`, the layout every
classification task reads (images, WAV files, text files).

One walk for all of them, so they order classes, skip hidden entries,
name empty or unreadable classes, and honour `skip_corrupt` the same way.
"""

import logging
import os

import numpy as np

from keras_tl.data.splits import class_key, class_order
from keras_tl.errors import DataError, DataNotFoundError, listing

logger = logging.getLogger("keras_tl")


def class_folders(path, extensions, kind, example, min_classes=2):
    """`[(class_name, [file paths])]` of a class-folder tree, classes ordered
    like `check_labels` orders labels (`"2"` before `"10"`).

    Args:
        path: the data folder.
        extensions: lower-case file endings that count (e.g. `(".wav",)`).
        kind: what the files are, for messages (`"images"`, `"WAV files"`).
        example: an example file name for messages (`"cat/001.jpg"`).
        min_classes: how many classes a classifier needs.

    Example:
    >>> import pathlib
    >>> for name in ("b/1.txt", "a/2.txt", "a/.hidden.txt", "10/x.txt"):
    ...     f = pathlib.Path(tmp_path, "data", name); f.parent.mkdir(parents=True, exist_ok=True)
    ...     _ = f.write_text("hi")
    >>> [(name, [os.path.basename(f) for f in files])
    ...  for name, files in class_folders(tmp_path / "data", (".txt",), "texts", "a/1.txt")]
    [('10', ['x.txt']), ('a', ['2.txt']), ('b', ['1.txt'])]
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataNotFoundError(f"Data folder not found: {path}")
    if not os.path.isdir(path):
        raise DataError(f"{path} is a file; pass a folder with one sub-folder of {kind} per class.")
    entries = [e for e in os.listdir(path) if not e.startswith(".")]
    names = sorted((e for e in entries if os.path.isdir(os.path.join(path, e))),
                   key=lambda e: class_order(class_key(e)))
    if not names:
        loose = [e for e in entries if e.lower().endswith(tuple(extensions))]
        what = f"{len(loose)} {kind} but" if loose else "nothing:"
        raise DataError(
            f"Data folder {path} holds {what} no class sub-folders. Put the {kind} of each "
            f"class in a sub-folder named after the class, e.g. {os.path.join(path, example)}."
        )
    if len(names) < min_classes:
        raise DataError(
            f"Data folder {path} has a single class ({names[0]!r}); a classifier needs at "
            "least two class sub-folders."
        )
    classes = []
    for name in names:
        folder = os.path.join(path, name)
        files = sorted(f for f in os.listdir(folder)
                       if f.lower().endswith(tuple(extensions)) and not f.startswith("."))
        if not files:
            raise DataError(
                f"Class folder {folder} has no {kind} (looked for {', '.join(extensions)}). "
                "Add some or remove the folder."
            )
        classes.append((name, [os.path.join(folder, f) for f in files]))
    return classes


def read_class_folders(path, read, extensions, kind, example, skip_corrupt=False):
    """Reads every file of a class-folder tree with `read(file_path)`.

    Returns `(items, labels, class_names)`: the read items stacked into one
    array, int32 labels and the class names. A file `read` refuses with a
    `DataError` stops the run, or is skipped with a warning when
    `skip_corrupt`; a class left with no readable file is an error.

    Example:
    >>> import pathlib
    >>> for name in ("x/1.txt", "y/2.txt", "y/3.txt"):
    ...     f = pathlib.Path(tmp_path, "nums", name); f.parent.mkdir(parents=True, exist_ok=True)
    ...     _ = f.write_text(name[2])
    >>> items, labels, names = read_class_folders(
    ...     tmp_path / "nums", lambda f: float(open(f).read()), (".txt",), "numbers", "x/1.txt")
    >>> items.tolist(), labels.tolist(), names
    ([1.0, 2.0, 3.0], [0, 1, 1], ['x', 'y'])
    """
    items, labels, names = [], [], []
    for index, (name, files) in enumerate(class_folders(path, extensions, kind, example)):
        names.append(name)
        loaded = 0
        for file_path in files:
            try:
                items.append(read(file_path))
            except DataError:
                if not skip_corrupt:
                    raise
                logger.warning("Skipping unreadable file %s", file_path)
                continue
            labels.append(index)
            loaded += 1
        if loaded == 0:
            raise DataError(f"Class folder {os.path.join(path, name)} has no readable {kind}.")
    return np.stack(items), np.asarray(labels, dtype="int32"), names


def unreadable_files_error(failures, kind, read_as, hint=""):
    """The `DataError` for the files of a dataset that cannot be read,
    `failures` as `[(path, reason)]`, all named at once: one with its
    reason, several listed in one line. `kind` names one file ("image"),
    `read_as` what they failed to be read as ("images"); `hint` follows the
    reasons.

    Example:
    >>> str(unreadable_files_error([("a.jpg", "truncated"), ("b.jpg", "empty")], "image", "images"))[:66]
    '2 files cannot be read as images: a.jpg (truncated), b.jpg (empty)'
    """
    skip = ("when training, skip_corrupt=True (--skip-corrupt) skips unreadable files with a "
            "warning.")
    if len(failures) == 1:
        [(path, reason)] = failures
        return DataError(f"Cannot read {kind} {path}: {reason}.{hint} Remove or replace the "
                         f"file; {skip}")
    named = listing(f"{path} ({reason})" for path, reason in failures)
    return DataError(f"{len(failures)} files cannot be read as {read_as}: {named}.{hint} "
                     f"Remove or replace them; {skip}")
