"""A small object-detection dataset that ships with keras_tl (COCO layout).

500 JPEG images of 128x128 pixels (400 train, 100 test): objects cut out of
public-domain / CC0 photos (an astronaut, a cat, a cup, a rocket) pasted, 0 to
5 per image, at varying scale, overlapping and cut by the edges, onto crops of
real photos. Built by `tools/make_detection_data.py` (fixed seed); licences in
`LICENSE-detection-demo.txt`.
"""

import hashlib
import os
import shutil
import tarfile
import tempfile

from keras_tl.errors import ConfigError

CLASS_NAMES = ["astronaut", "cat", "cup", "rocket"]
SPLITS = ("train", "test")
_ARCHIVE = os.path.join(os.path.dirname(__file__), "detection_demo.tar.gz")


def detection_demo_path(split="train"):
    """The folder of one split, extracted on first use under the keras_tl
    cache (`$KERAS_TL_CACHE`, else `~/.cache/keras_tl`): `instances.json`
    (COCO) and `images/`.

    Example:
    >>> from keras_tl.data.detection import load_detection_data
    >>> data = load_detection_data(detection_demo_path("train"))
    >>> len(data.records), data.class_names
    (400, ['astronaut', 'cat', 'cup', 'rocket'])
    """
    if split not in SPLITS:
        raise ConfigError(f"The detection demo has splits {', '.join(SPLITS)}; got {split!r}.")
    with open(_ARCHIVE, "rb") as file:
        digest = hashlib.sha256(file.read()).hexdigest()[:12]
    root = os.path.join(_cache_root(), "datasets", f"detection_demo-{digest}")
    if not os.path.isdir(root):  # extract beside, then rename: never half a folder
        os.makedirs(os.path.dirname(root), exist_ok=True)
        staging = tempfile.mkdtemp(dir=os.path.dirname(root))
        try:
            with tarfile.open(_ARCHIVE) as archive:
                # our own archive; the "data" filter (Python >= 3.10.12) also refuses odd members
                safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                archive.extractall(staging, **safe)
            os.rename(os.path.join(staging, "detection_demo"), root)
        except OSError:
            if not os.path.isdir(root):  # another process may have won the race
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return os.path.join(root, split)


def _cache_root():
    return os.environ.get("KERAS_TL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "keras_tl")
