"""`run_task_test`: the contract every task passes, through the public API
only (like keras-hub's `TestCase.run_task_test`).

On tiny data and a tiny or random-weights backbone:

1. one fit step through `keras_tl.finetune` (the backbone unfrozen): the task
   is recognised from the data, the loss is finite, and the step changed
   the weights, the backbone's included;
2. the run's folder reloads with `keras_tl.load` to the same predictions;
3. per export format, `keras_tl.export` of the reloaded run verifies the
   format against Keras within the export's tolerance, and the exported file,
   run by `keras_tl.exporters.load_export`, predicts what the run predicts.

The pieces (`fit_one_step`, `check_save_load`, `check_export`) let a test
module share one fit between its per-format cases.
"""

import dataclasses
import time
from typing import Any, Callable, Dict, Tuple

import keras
import numpy as np

import keras_tl
from keras_tl.exporters import load_export

STAGE = "fit"
EXPORT_TOLERANCE = 1e-4  # keras_tl.export's default
# the file each format's predictions are read from (ExportResult.files keys)
FORMAT_FILES = {"saved_model": "saved_model", "onnx": "onnx", "litert": "litert_float32"}


@dataclasses.dataclass
class TaskCase:
    """A task's tiny contract case.

    `data(tmp_path)` returns what `keras_tl.finetune` takes, `inputs(tmp_path)`
    raw inputs for `result.predict` (what a client sends); `options` go to
    `keras_tl.finetune` (backbone, task options); `batch_size` covers the
    training split, so one epoch is one step.
    """

    task: str
    data: Callable[[Any], Any]
    inputs: Callable[[Any], Any]
    options: Dict[str, Any]
    formats: Tuple[str, ...]
    batch_size: int = 32


class _WeightChange(keras.callbacks.Callback):
    """Counts the training steps and which trainable variables they changed."""

    def on_train_begin(self, logs=None):
        self.steps = 0
        self.before = {v.path: np.array(v) for v in self.model.trainable_variables}

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def on_train_end(self, logs=None):
        after = {v.path: np.array(v) for v in self.model.trainable_variables}
        self.changed = sorted(path for path, value in self.before.items()
                              if not np.array_equal(value, after[path]))


def fit_one_step(case, tmp_path):
    """`keras_tl.finetune` for one step on the whole backbone; returns the result."""
    recorder = _WeightChange()
    result = keras_tl.finetune(
        case.data(tmp_path), batch_size=case.batch_size, validation_split=0.25, patience=0,
        stages=[keras_tl.Stage(STAGE, unfreeze="all", epochs=1, learning_rate=1e-3)],
        callbacks=[recorder], verbose=0, output_dir=str(tmp_path / "run"), **case.options)
    assert result.info["task"] == case.task, "the task is recognised from the data"
    assert recorder.steps == 1, f"{recorder.steps} steps: batch_size must cover the training split"
    losses = result.histories[STAGE]["loss"]
    assert len(losses) == 1 and np.isfinite(losses).all(), losses
    # one optimizer step moves every variable that has a gradient: not only
    # the head's (a stage that leaves the backbone frozen keeps most unchanged)
    total = len(recorder.before)
    assert len(recorder.changed) >= 0.5 * total, (
        f"one step changed {len(recorder.changed)} of {total} trainable variables")
    return result


def check_save_load(result, inputs):
    """The run's folder reloads (safe mode) to the same predictions."""
    expected = result.predict(inputs)
    assert len(expected) == len(inputs)
    reloaded = keras_tl.load(result.output_dir)
    assert reloaded.class_names == result.class_names
    assert_same_predictions(reloaded.predict(inputs), expected, atol=1e-6)
    return reloaded


def check_export(run, fmt, inputs, tmp_path, tolerance=EXPORT_TOLERANCE):
    """Exports `run` in `fmt`: the export verified the format (not skipped)
    within `tolerance`, and the exported file predicts what `run` does."""
    exported = keras_tl.export(run, str(tmp_path / "export" / fmt), formats=[fmt],
                               tolerance=tolerance)
    reports = {key: report for key, report in exported.verification.items()
               if isinstance(report, dict) and (key == fmt or key.startswith((fmt + "/", fmt + "_")))}
    enforced = {key: report for key, report in reports.items() if report.get("enforced")}
    assert enforced, f"{fmt} was not verified: {reports}"
    for key, report in enforced.items():
        assert report["max_abs_diff"] <= tolerance, (key, report)
    served = load_export(exported.files[FORMAT_FILES[fmt]]).predict(inputs)
    # every number a client reads: probabilities, scores, box pixels
    assert_same_predictions(served, run.predict(inputs), atol=tolerance, rtol=tolerance)
    return exported


def run_task_test(case, tmp_path, formats=None):
    """The whole contract for `case`; returns `{step: seconds}`."""
    seconds, start = {}, time.perf_counter()
    result = fit_one_step(case, tmp_path)
    seconds["fit"], start = time.perf_counter() - start, time.perf_counter()
    inputs = case.inputs(tmp_path)
    reloaded = check_save_load(result, inputs)
    seconds["save_load"] = time.perf_counter() - start
    for fmt in case.formats if formats is None else formats:
        start = time.perf_counter()
        check_export(reloaded, fmt, inputs, tmp_path)
        seconds[fmt] = time.perf_counter() - start
    return seconds


def assert_same_predictions(got, expected, atol, rtol=0.0, where="predictions"):
    """`got` and `expected` (lists, tuples, dicts of names and numbers) are
    the same: names equal, numbers within `atol + rtol * |expected|`."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(expected), (where, got, expected)
        for key in expected:
            assert_same_predictions(got[key], expected[key], atol, rtol, f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(expected), (where, got, expected)
        for i, (a, b) in enumerate(zip(got, expected)):
            assert_same_predictions(a, b, atol, rtol, f"{where}[{i}]")
    elif isinstance(expected, (float, np.floating)):
        assert abs(float(got) - float(expected)) <= atol + rtol * abs(float(expected)), (
            where, got, expected)
    else:
        assert got == expected, (where, got, expected)

