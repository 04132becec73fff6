"""Per-epoch checkpoints of a run, written atomically, and resuming from them.

Layout under `<output_dir>/checkpoint/`: `model.weights.h5` (the model's
weights and its optimizer's variables) and `state.json` (which stage and epoch were last completed). Each file is
written beside its final name and renamed over it.
"""

import json
import os

import numpy as np

STATE_FILE = "state.json"


class RunState:
    """What a run has completed, persisted to `state.json`.

    Example:
    >>> state = RunState.load("runs/flowers")
    >>> state.stage_index, state.epoch
    (1, 3)
    """

    def __init__(self, folder, settings=None):
        self.folder = folder
        self.settings = settings or {}
        self.stage_index = 0
        self.epoch = 0  # epochs completed in stage_index
        self.stage_done = False
        self.histories = {}

    @classmethod
    def load(cls, folder):
        """Reads the state of `folder`, or returns `None` if there is none.

        Example:
        >>> RunState.load("runs/never-started") is None
        True
        """
        path = os.path.join(folder, STATE_FILE)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            raw = json.load(f)
        state = cls(folder, raw["settings"])
        state.stage_index = raw["stage_index"]
        state.epoch = raw["epoch"]
        state.stage_done = raw["stage_done"]
        state.histories = raw["histories"]
        return state

    def save(self, model):
        """Writes weights with optimizer variables, then the state, atomically.

        Example:
        >>> state.save(model)
        """
        os.makedirs(self.folder, exist_ok=True)
        weights = os.path.join(self.folder, "model.weights.h5")
        _atomic(weights, lambda tmp: model.save_weights(tmp), suffix=".weights.h5")
        raw = dict(
            settings=self.settings, stage_index=self.stage_index, epoch=self.epoch,
            stage_done=self.stage_done, histories=self.histories,
        )
        _atomic(
            os.path.join(self.folder, STATE_FILE),
            lambda tmp: _write_json(tmp, raw),
        )

    def restore(self, model, optimizer_too=True):
        """Loads the saved weights (and optimizer variables) into `model`.

        Example:
        >>> state.restore(model)
        """
        import warnings

        if optimizer_too and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        with warnings.catch_warnings():
            if not optimizer_too:  # a new stage: the saved optimizer is the last stage's
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(os.path.join(self.folder, "model.weights.h5"))


def _write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f, indent=2, default=_jsonable)


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def _atomic(path, write, suffix=""):
    tmp = f"{path}.partial{suffix}"
    write(tmp)
    os.replace(tmp, path)
