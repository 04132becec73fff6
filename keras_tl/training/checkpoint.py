"""Per-epoch checkpoints of a run, committed atomically, and resuming from them.

Layout under `<output_dir>/checkpoint/`:

- `weights-<n>.weights.h5`: the model's weights with its optimizer's
  variables, a new file for every save;
- `state.json`: which stage and epoch were last completed, the settings,
  and the name, size and SHA-256 of the weights file that goes with them.

A save writes (and syncs) the new weights file first, then replaces
`state.json` in one atomic rename: that rename is the commit. A crash
before it leaves the previous state pointing at the previous weights file,
which is deleted only after the commit. On resume the weights file must
match its recorded checksum; an altered, truncated or missing file, or a
`state.json` that is not a keras_tl state, is a `CheckpointError` naming
the file.
"""

import hashlib
import json
import os

import numpy as np

from keras_tl.errors import CheckpointError

STATE_FILE = "state.json"
FORMAT = 2
_WEIGHTS_PREFIX = "weights-"
_WEIGHTS_SUFFIX = ".weights.h5"
_REQUIRED = {"format": int, "settings": dict, "stage_index": int, "epoch": int,
             "stage_done": bool, "histories": dict, "weights": dict}


class RunState:
    """What a run has completed, persisted to `state.json`.

    Example:
    >>> import tempfile
    >>> state = RunState(tempfile.mkdtemp(), settings={"seed": 0})
    >>> state.stage_index, state.epoch, state.stage_done
    (0, 0, False)
    """

    def __init__(self, folder, settings=None):
        self.folder = folder
        self.settings = settings or {}
        self.stage_index = 0
        self.epoch = 0  # epochs completed in stage_index
        self.stage_done = False
        self.histories = {}
        self.learning_rates = {}  # stage name -> rate found by learning_rate="auto"
        self.weights = None  # {"file", "bytes", "sha256"} of the committed weights
        self.saves = 0

    @property
    def run_folder(self):
        """The run's output folder (the checkpoint folder's parent)."""
        return os.path.dirname(os.path.abspath(self.folder))

    @classmethod
    def load(cls, folder):
        """Reads the state of `folder`, or returns `None` if there is none;
        a state file that cannot be read is a `CheckpointError`.

        Example:
        >>> RunState.load("runs/never-started") is None
        True
        """
        path = os.path.join(folder, STATE_FILE)
        if not os.path.exists(path):
            return None
        try:
            with open(path) as f:
                raw = json.load(f)
        except (ValueError, UnicodeDecodeError) as error:
            raise CheckpointError(_corrupt(path, f"not JSON: {error}")) from None
        problem = _check_state(raw)
        if problem:
            raise CheckpointError(_corrupt(path, problem))
        state = cls(folder, raw["settings"])
        state.stage_index = raw["stage_index"]
        state.epoch = raw["epoch"]
        state.stage_done = raw["stage_done"]
        state.histories = raw["histories"]
        state.learning_rates = raw.get("learning_rates", {})
        state.weights = raw["weights"]
        state.saves = raw.get("saves", 0)
        return state

    def save(self, model):
        """Writes the weights (with optimizer variables) to a new file, then
        commits them with the state in one atomic rename of `state.json`.

        Example:
        >>> import keras, tempfile
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> state = RunState(tempfile.mkdtemp())
        >>> state.save(model)
        >>> RunState.load(state.folder).weights["file"]
        'weights-000001.weights.h5'
        """
        os.makedirs(self.folder, exist_ok=True)
        number = self.saves + 1
        name = f"{_WEIGHTS_PREFIX}{number:06d}{_WEIGHTS_SUFFIX}"
        final = os.path.join(self.folder, name)
        tmp = os.path.join(self.folder, f"partial-{name}")
        model.save_weights(tmp)
        _fsync(tmp)
        os.replace(tmp, final)
        weights = {"file": name, "bytes": os.path.getsize(final), "sha256": _sha256(final)}
        raw = dict(
            format=FORMAT, settings=self.settings, stage_index=self.stage_index,
            epoch=self.epoch, stage_done=self.stage_done, histories=self.histories,
            learning_rates=self.learning_rates, weights=weights, saves=number,
        )
        path = os.path.join(self.folder, STATE_FILE)
        tmp_state = path + ".partial"
        _write_json(tmp_state, raw)
        os.replace(tmp_state, path)  # the commit
        self.weights, self.saves = weights, number
        self._remove_stale_weights()

    def verify(self):
        """Checks the committed weights file against its recorded size and
        SHA-256; returns its path.

        Example:
        >>> import keras, os, tempfile
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> state = RunState(tempfile.mkdtemp())
        >>> state.save(model)
        >>> os.path.basename(state.verify())
        'weights-000001.weights.h5'
        """
        path = os.path.join(self.folder, self.weights["file"])
        if not os.path.exists(path):
            raise CheckpointError(
                f"{path} (named in {STATE_FILE}) is missing. {self._start_over()}")
        if (os.path.getsize(path) != self.weights["bytes"]
                or _sha256(path) != self.weights["sha256"]):
            raise CheckpointError(
                f"{path} does not match the checksum recorded in {STATE_FILE}: it was "
                f"altered or truncated after it was written. {self._start_over()}")
        return path

    def restore(self, model, optimizer_too=True):
        """Loads the verified weights (and optimizer variables) into `model`.

        Example:
        >>> import keras, numpy as np, tempfile
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> state = RunState(tempfile.mkdtemp())
        >>> state.save(model)
        >>> _ = model.layers[0].kernel.assign(np.zeros((2, 1)))
        >>> state.restore(model, optimizer_too=False)
        >>> bool(np.any(model.get_weights()[0] != 0))
        True
        """
        import warnings

        path = self.verify()
        if optimizer_too and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        with warnings.catch_warnings():
            if not optimizer_too:  # a new stage: the saved optimizer is the last stage's
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            try:
                model.load_weights(path)
            except Exception as error:  # h5py and Keras raise many kinds
                raise CheckpointError(
                    f"{path} cannot be loaded into this run's model ({error}). "
                    f"{self._start_over()}") from None

    def _start_over(self):
        return (f"Delete {self.run_folder} (or pass another output folder) to start over.")

    def _remove_stale_weights(self):
        for name in os.listdir(self.folder):
            stale = (name.endswith(_WEIGHTS_SUFFIX) and name != self.weights["file"]
                     and (name.startswith(_WEIGHTS_PREFIX) or name.startswith("partial-")
                          or name == "model.weights.h5"))
            if stale:
                try:
                    os.remove(os.path.join(self.folder, name))
                except OSError:
                    pass  # another process may be cleaning up too


def _check_state(raw):
    if not isinstance(raw, dict):
        return f"a JSON {type(raw).__name__}, not an object"
    if raw.get("format") != FORMAT and "stage_index" in raw and "weights" not in raw:
        return "written by an older keras_tl without checksums"
    for key, kind in _REQUIRED.items():
        if key not in raw:
            return f"no {key!r}"
        if not isinstance(raw[key], kind) or (kind is int and isinstance(raw[key], bool)):
            return f"{key!r} is not a {kind.__name__}"
    if raw["format"] != FORMAT:
        return f"format {raw['format']}, expected {FORMAT}"
    if not {"file", "bytes", "sha256"} <= set(raw["weights"]):
        return "'weights' lacks file, bytes or sha256"
    if os.path.basename(str(raw["weights"]["file"])) != raw["weights"]["file"]:
        return "'weights' names a file outside the checkpoint folder"
    return ""


def _corrupt(path, problem):
    run = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    return (f"{path} is not a usable keras_tl checkpoint state ({problem}). "
            f"Delete {run} (or pass another output folder) to start over.")


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path):
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f, indent=2, default=_jsonable)
        f.flush()
        os.fsync(f.fileno())


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)
