"""Every error keras_tl raises on purpose.

Each subclasses `KerasTLError` (so `except keras_tl.KerasTLError` catches
them all, and the CLI prints them as one line) and the built-in type that
callers caught before the hierarchy existed (`ValueError`, `OSError`...).

Example:
>>> from keras_tl.errors import DataError, KerasTLError
>>> issubclass(DataError, KerasTLError), issubclass(DataError, ValueError)
(True, True)
"""

import pickle


class KerasTLError(Exception):
    """Base class of every error keras_tl raises on purpose."""


class ConfigError(KerasTLError, ValueError):
    """An argument or setting is invalid (a wrong value, an unknown name)."""


class DataError(KerasTLError, ValueError):
    """Training or prediction data is missing, empty, corrupt or inconsistent."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A data file or folder does not exist."""


class BackboneError(KerasTLError, ValueError):
    """A backbone cannot be found, built or given its weights."""


class UnsafeCheckpointError(KerasTLError, pickle.UnpicklingError):
    """A checkpoint file asks for something a plain state dict never needs."""


class ChecksumError(KerasTLError, ValueError):
    """A file's content does not match the checksum recorded for it."""


class CheckpointError(KerasTLError, RuntimeError):
    """A run folder's checkpoint is missing, corrupt, altered or inconsistent."""


class TrainingError(KerasTLError, RuntimeError):
    """Training cannot go on (for example the loss became NaN)."""


class ExportError(KerasTLError, RuntimeError):
    """An export cannot be written or read."""


class ExportVerificationError(ExportError):
    """An exported format disagrees with the Keras model beyond tolerance."""


class ServingError(KerasTLError, ValueError):
    """A request to `keras-tl serve` is malformed (answered with a 400)."""


def listing(items, limit=5):
    """The first `limit` of `items` joined by commas, then "and N more":
    how an error message names many bad files at once.

    Example:
    >>> listing(["a.wav", "b.wav", "c.wav"], limit=2)
    'a.wav, b.wav and 1 more'
    """
    items = [str(item) for item in items]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
