"""The `Exporter` interface, its uniform verification report and the one
tolerance rule every format is held to.

An exporter knows one file format and no task: what it writes, feeds and
compares comes from the model's `keras_tl.export_spec.ExportSpec` (the
task's `export_spec`): the signatures and their contracts, the Keras model
a converting format converts, its feed, and how its outputs are judged.

A verification report compares one way of running the export (a
SavedModel signature, an ONNX file, a LiteRT file) with the Keras model on
the same inputs, output by output:

    {"outputs": {"probabilities": {"max_abs_diff": 2e-07, "argmax_agreement": 1.0}},
     "max_abs_diff": 2e-07, "argmax_agreement": 1.0, "bytes": 12345, "enforced": True}

The rule (`check_tolerance`): in every enforced report, every float output
is within `tolerance` of the Keras model and every other output (ids,
names, counts) is identical. The spec says what is compared
(`ExportSpec.judged`; e.g. a detector's detections matched one to one,
boxes in units of the image size); a graph's `measures` add what is
recorded but not judged (a detector's box difference in pixels). Reports of lossy variants (int8 LiteRT) are
not enforced, only recorded.
"""

import dataclasses
import os
from typing import Any, Callable, Optional

import numpy as np

from keras_tl.errors import ExportError, ExportVerificationError


@dataclasses.dataclass
class Runner:
    """One way to run an exported file: `run(model_inputs) -> {output: array}`
    (or None when the spec gives no feed for it).

    `path` is the file or folder it runs; `graph` the spec's `Signature` or
    `ConvertedGraph` it holds (what its outputs are judged against);
    `size` its bytes in the report (default: the size of `path`);
    `enforced` says whether the tolerance rule applies to it.

    Example:
    >>> runner = Runner(lambda x: {"y": x * 2}, path=".")
    >>> runner.run(np.ones(2))["y"].tolist()
    [2.0, 2.0]
    """

    run: Callable
    path: str
    graph: Any = None
    enforced: bool = True
    size: Optional[int] = None


class Exporter:
    """One export format. Subclasses set `name` and implement `write`,
    `open` and, when a format has several files or entry points, `runners`;
    each reads only the `ExportSpec`.

    - `supports(spec) -> bool`: whether the spec's model can be written in
      this format (default: yes).
    - `write(spec, stage_dir) -> {file_key: path}` writes the format into
      `stage_dir`.
    - `open(path, spec) -> Runner` runs a written file the way
      `keras-tl predict` does (model inputs in, named outputs out).
    - `runners(files, spec) -> {report_key: Runner}`: everything `verify`
      checks (default: `open` on the file under `name`).
    - `verify(files, spec) -> {report_key: report}`, on the spec's
      verification inputs.
    - `describe(files) -> dict`: the inputs and outputs of the written
      files, for `keras_tl.json`.

    `needs_tensorflow`: the format is built with TensorFlow (under JAX or
    PyTorch, `keras_tl.exporters._backend` runs `write` in a TensorFlow
    subprocess). `suffixes`: file endings `keras-tl predict` opens with it.

    Example:
    >>> from keras_tl.exporters import get_exporter
    >>> get_exporter("onnx").suffixes
    ('.onnx',)
    """

    name = ""
    needs_tensorflow = False
    suffixes = ()

    def __repr__(self):
        return f"<keras_tl exporter {self.name}>"

    def supports(self, spec):
        return True

    def write(self, spec, stage_dir):
        raise NotImplementedError

    def open(self, path, spec):
        raise NotImplementedError

    def runners(self, files, spec):
        return {self.name: self.open(files[self.name], spec)}

    def verify(self, files, spec):
        reports = {}
        for key, runner in self.runners(files, spec).items():
            outputs = runner.run(spec.verification_inputs)
            if outputs is None:  # e.g. a signature on file bytes the spec cannot encode
                reports[key] = {"skipped": "the spec gives no feed for it", "enforced": False}
                continue
            got, expected = spec.judged(runner.graph, outputs)
            reports[key] = compare(got, expected, enforced=runner.enforced)
            for name, measure in (getattr(runner.graph, "measures", None) or {}).items():
                reports[key][name] = float(measure(outputs, spec.converted_reference))
            reports[key]["bytes"] = size_of(runner.path) if runner.size is None else runner.size
        return reports

    def describe(self, files):
        return {}


def feed_by_name(feed, names):
    """A feed keyed by input name: `feed` itself when it is a dict, else
    the one input `names` lists.

    Example:
    >>> feed_by_name([1, 2], ["images"])
    {'images': [1, 2]}
    """
    if isinstance(feed, dict):
        return feed
    if len(names) != 1:
        raise ExportError(f"A model with inputs {list(names)} needs a feed by name.")
    return {names[0]: feed}


def compare(outputs, reference, enforced=True):
    """The verification report of one format's `outputs` against the Keras
    model's `reference` (both `{name: array}`): outputs missing from either
    side are not compared; none in common is an error.

    Example:
    >>> report = compare({"p": np.array([[0.2, 0.8]], "float32")},
    ...                  {"p": np.array([[0.25, 0.75]], "float32")})
    >>> round(report["max_abs_diff"], 4), report["argmax_agreement"]
    (0.05, 1.0)
    >>> compare({"q": np.zeros(1)}, {"p": np.zeros(1)})["error"]
    "no output in common with the Keras model's ['p'] (got ['q'])"
    """
    per_output, errors = {}, []
    for name, expected in reference.items():
        if name not in outputs:
            continue
        got, expected = _plain(outputs[name]), _plain(expected)
        if got.shape != expected.shape:
            errors.append(f"{name}: shape {list(got.shape)}, expected {list(expected.shape)}")
            continue
        if expected.dtype.kind == "f":
            diff = np.abs(got.astype("float64") - expected.astype("float64"))
            diff[np.isnan(diff)] = np.inf
            entry = {"max_abs_diff": float(diff.max()) if diff.size else 0.0}
            if expected.ndim == 2 and expected.shape[1] > 1:
                entry["argmax_agreement"] = float(np.mean(got.argmax(-1) == expected.argmax(-1)))
        else:
            rows = (got == expected).reshape(len(expected), -1) if expected.ndim else got == expected
            entry = {"agreement": float(np.mean(np.all(rows, axis=-1)))}
        per_output[name] = entry
    report = {"outputs": per_output, "enforced": bool(enforced)}
    if not per_output and not errors:
        errors.append(f"no output in common with the Keras model's {sorted(reference)} "
                      f"(got {sorted(outputs)})")
    for key in ("max_abs_diff", "argmax_agreement", "agreement"):
        values = [entry[key] for entry in per_output.values() if key in entry]
        if values:
            report[key] = max(values) if key == "max_abs_diff" else min(values)
    if errors:
        report["error"] = "; ".join(errors)
    return report


def check_tolerance(verification, tolerance):
    """Raises `ExportVerificationError` unless every enforced report in
    `verification` has its float outputs within `tolerance` and its other
    outputs identical (`tolerance=None` skips the check).

    Example:
    >>> check_tolerance({"onnx": {"max_abs_diff": 0.5, "enforced": True}}, 1e-4)
    Traceback (most recent call last):
    ...
    keras_tl.errors.ExportVerificationError: Exported formats differ from the Keras model beyond tolerance 0.0001: onnx (max_abs_diff 0.5). Nothing was written; pass tolerance=None to export anyway.
    """
    if tolerance is None:
        return
    failed = []
    for key, report in verification.items():
        if not isinstance(report, dict) or not report.get("enforced", False):
            continue
        if report.get("error"):
            failed.append(f"{key} ({report['error']})")
        elif not report.get("max_abs_diff", 0.0) <= tolerance:
            failed.append(f"{key} (max_abs_diff {report['max_abs_diff']:.3g})")
        elif report.get("agreement", 1.0) < 1.0:
            failed.append(f"{key} (exact outputs agree on {report['agreement']:.1%} of inputs)")
    if failed:
        raise ExportVerificationError(
            f"Exported formats differ from the Keras model beyond tolerance {tolerance}: "
            f"{', '.join(failed)}. Nothing was written; pass tolerance=None to export anyway.")


def size_of(path):
    """Bytes of a file, or of every file under a folder.

    Example:
    >>> size_of(__file__) > 0
    True
    """
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(folder, name))
               for folder, _, names in os.walk(path) for name in names)


def _plain(value):
    """A NumPy array; byte strings decoded, so formats that return bytes
    compare equal to Python strings."""
    array = np.asarray(value)
    if array.dtype.name in ("bfloat16", "float16"):  # a 16-bit model's own outputs
        array = array.astype("float32")
    if array.dtype.kind in ("O", "S"):
        array = np.vectorize(lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v),
                             otypes=[object])(array) if array.size else array.astype(object)
    return array
