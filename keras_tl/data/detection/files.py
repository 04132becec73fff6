"""Listing and sizing the files of a detection layout."""

import os

from keras_tl.data.images import IMAGE_EXTENSIONS
from keras_tl.errors import DataError


def list_files(folder, extensions):
    """The sorted names of the files in `folder` ending in one of
    `extensions` (lower-case); none when the folder does not exist.

    Example:
    >>> folder = tmp_path / "listed"; folder.mkdir()
    >>> for name in ("b.xml", "a.XML", "c.jpg"):
    ...     _ = (folder / name).write_text("")
    >>> list_files(folder, (".xml",)), list_files(folder / "missing", (".xml",))
    (['a.XML', 'b.xml'], [])
    """
    if not os.path.isdir(folder):
        return []
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(extensions))


def index_images(folder, recursive=False):
    """`{relative path without extension: relative path}` of the images.

    Example:
    >>> folder = tmp_path / "indexed"; (folder / "train").mkdir(parents=True)
    >>> for name in ("a.jpg", "train/b.png", "notes.txt"):
    ...     _ = (folder / name).write_bytes(b"")
    >>> index_images(folder), index_images(folder, recursive=True)["train/b"]
    ({'a': 'a.jpg'}, 'train/b.png')
    """
    found = {}
    for directory, _, files in os.walk(folder) if recursive else [(folder, None, os.listdir(folder))]:
        for file in sorted(files):
            if file.lower().endswith(IMAGE_EXTENSIONS):
                relative = os.path.relpath(os.path.join(directory, file), folder)
                found.setdefault(os.path.splitext(relative)[0], relative)
    return found


def image_size(path):
    """`(width, height)` from the image header, EXIF rotation applied.

    Example:
    >>> from PIL import Image
    >>> Image.new("RGB", (64, 48)).save(tmp_path / "sized.png")
    >>> image_size(tmp_path / "sized.png")
    (64, 48)
    """
    from PIL import Image, UnidentifiedImageError  # deferred: only readers without sizes need it

    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated by 90 degrees
                width, height = height, width
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(f"Cannot read image {path}: {error}. Remove or replace the file.") from error
    return width, height
