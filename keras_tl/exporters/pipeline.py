"""`export()`: unpack a run, stage a new version, run each format's
exporter, verify every format against the Keras model, write metadata.

Layout of `export(result, "saved_models/NAME")`, one folder per export:

    saved_models/NAME/
      1/                        TF Serving loads all-digit folders only
        saved_model.pb          the task's signatures (e.g. serving_default)
        variables/  assets/class_names.txt  fingerprint.pb
        assets.extra/tf_serving_warmup_requests   replayed by TF Serving on load
        model.onnx              (formats the task supports)
        model_float32.tflite  model_int8.tflite
        tokenizer/ ...          the spec's assets (a text model's vocabulary)
        keras_tl.json           metadata and verification numbers
        MODEL_CARD.md           task, data, metrics, input contract, limitations
      2/ ...
      models.config  batching_parameters.txt      TF Serving's configs (tf_serving)
      .tmp-export-<random>/     only while an export runs
"""

import dataclasses
import os

from keras_tl.errors import ConfigError
from keras_tl.export_spec import use_converted, write_assets
from keras_tl.exporters import _backend, _float32, _versioning, model_card, tf_serving
from keras_tl.exporters import metadata as metadata_lib
from keras_tl.exporters.base import check_tolerance, compare
from keras_tl.exporters.registry import get_exporter, list_formats


class ExportResult(dict):
    """What `export` wrote and how well each format matched the Keras model.

    A dict (so `json.dumps(result)` works) whose keys are also attributes:

    - `path`: the version folder (`saved_models/NAME/<version>`), which is
      also the SavedModel's folder;
    - `version`: the version number;
    - `files`: file key (`"saved_model"`, `"onnx"`, `"litert_float32"`,
      `"litert_int8"`, the spec's assets, `"tf_serving_warmup"`, `"model_card"`,
      `"metadata"`, and beside the versions `"tf_serving_config"` and
      `"tf_serving_batching"`) -> path;
    - `verification`: one report per way of running the export
      (`"saved_model/serving_default"`, `"onnx"`, `"litert_int8"`...), see
      `keras_tl.exporters.base`, and `"inputs"`, how many were compared;
    - `metadata`: the content of `keras_tl.json`.

    Example:
    >>> result = ExportResult("saved_models/m/1", 1, {}, {"inputs": 8}, {})
    >>> result.version, result.verification["inputs"]
    (1, 8)
    """

    def __init__(self, path, version, files, verification, metadata):
        super().__init__(path=path, version=version, files=files,
                         verification=verification, metadata=metadata)

    path = property(lambda self: self["path"])
    version = property(lambda self: self["version"])
    files = property(lambda self: self["files"])
    verification = property(lambda self: self["verification"])
    metadata = property(lambda self: self["metadata"])

    def to_dict(self):
        """A plain dict copy of the result.

        Example:
        >>> ExportResult("p", 1, {}, {}, {}).to_dict()["version"]
        1
        """
        return dict(self)

    def summary(self):
        """A few human-readable lines: where the version went, how each
        format matched the Keras model.

        Example:
        >>> print(ExportResult("saved_models/m/1", 1, {}, {"inputs": 8, "onnx": {
        ...     "max_abs_diff": 2e-07, "argmax_agreement": 1.0, "bytes": 1000}}, {}).summary())
        Exported version 1 to saved_models/m/1 (verified on 8 inputs)
          onnx: max_abs_diff=2e-07, argmax_agreement=1, bytes=1000
        """
        lines = [f"Exported version {self.version} to {self.path} "
                 f"(verified on {self.verification.get('inputs')} inputs)"]
        for key, report in self.verification.items():
            if isinstance(report, dict):
                shown = {k: v for k, v in report.items() if k not in ("outputs", "enforced")}
                text = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in shown.items())
                lines.append(f"  {key}: {text}")
        return "\n".join(lines)


def export(model_or_result, path, formats=None, class_names=None, metadata=None, version=None,
           tolerance=1e-4, verification_inputs=None, task=None, verbose=False,
           int8_threshold=None, converted=None):
    """Exports a model as a new, verified version under `path`.

    Args:
        model_or_result: a `keras_tl.FinetuneResult` (or anything with
            `.model`, `.class_names`, `.info`, and optionally `.metrics`,
            `.config`, `.verification_sample`), or a bare `keras.Model`
            (then `class_names` is required; its task is recognised from
            the model, or given as `task`).
        path: the model's base folder, e.g. `"saved_models/flowers"`.
        formats: names of registered formats (`"saved_model"`, `"onnx"`,
            `"litert"`); default: every format the task supports. The
            SavedModel is always written, so every version is servable.
        class_names: required with a bare model; overrides the result's.
        metadata: a JSON-ready dict stored as `user_metadata`.
        version: an explicit version number, refused if it exists.
            Default: one more than the highest existing version.
        verification_inputs: raw inputs to compare the formats on (images,
            texts...); default: the run's verification sample (real
            validation inputs), else the task's fixed examples.
        tolerance: max abs difference allowed between any float output of
            a format and the Keras model (the int8 LiteRT model is only
            reported); `None` skips the check.
        task: a task name or `Task`, for a bare model.
        verbose: print a line on stderr per format as it is written and as
            it is verified, with its path (`keras-tl export` does).
        int8_threshold: the least quality (the task's metric, e.g. top-1
            agreement with the Keras model) the int8 LiteRT model needs to
            be written; default: the task's (0.98 for classifiers).
        converted: the name of another graph the task offers for the
            converting formats (ONNX, LiteRT) to convert instead of its
            default (`ExportSpec.alternatives`; a detector's
            `"raw_anchors"`: every anchor's boxes and scores, no NMS);
            recorded in the export's `info["converted"]`.

    Returns:
        An `ExportResult`. Raises `ExportVerificationError` (and writes no
        version) when a format differs beyond `tolerance`, `ExportError`
        when `path` cannot be written.

    Example:
    >>> import keras_tl
    >>> exported = keras_tl.export(result, "saved_models/flowers")  # doctest: +SKIP
    >>> exported.path  # doctest: +SKIP
    'saved_models/flowers/1'
    """
    model, task, class_names, info, extra, sample = _unpack(model_or_result, class_names, task)
    original, model = model, _float32.as_float32(model)
    if verification_inputs is not None:
        sample = verification_inputs
    spec = task.export_spec(model, info, class_names, sample)
    if converted is not None:
        if converted not in spec.alternatives:
            raise ConfigError(
                f"{spec.task} models convert their default graph"
                + (f" or one of {', '.join(sorted(spec.alternatives))}"
                   if spec.alternatives else "") + f"; not {converted!r}.")
        spec = use_converted(spec, converted)
    spec.representative_inputs = extra.pop("representative", None)
    if int8_threshold is not None and spec.quality is not None:
        spec.quality = dataclasses.replace(spec.quality, threshold=float(int8_threshold))
    exporters = [get_exporter(name) for name in _formats(formats, spec)]
    _check_outputs(spec)
    backend = _backend.current_backend()

    with _versioning.staged_version(path, version) as stage:
        model_name = os.path.basename(os.path.abspath(stage.base_dir))
        say = _progress(verbose, stage)
        files, formats_meta = _write(exporters, spec, model, stage.path, backend, say)
        files.update(write_assets(spec.assets, stage.path))
        files.update(tf_serving.write_warmup_requests(spec, stage.path, model_name))
        verification = {"inputs": len(spec.verification_inputs)}
        for exporter in exporters:
            reports = exporter.verify(files, spec)
            verification.update(reports)
            for key, report in reports.items():
                if "gate" in report:  # a lossy variant's write-or-not decision
                    formats_meta[key] = report["gate"]
                say(f"verified {key}", files.get(key, files.get(exporter.name)),
                    _report_line(report))
        if model is not original:  # how far the float32 export is from the 16-bit model
            original_outputs = task.export_spec(original, info, class_names, sample).model_outputs
            verification["float32_clone"] = compare(spec.model_outputs, original_outputs,
                                                    enforced=False)
        check_tolerance(verification, tolerance)
        for exporter in exporters:
            formats_meta[exporter.name].update(exporter.describe(files))
        meta = metadata_lib.build_metadata(
            spec, spec.model_outputs, formats_meta, files, verification, stage.path,
            config=extra.get("config"), metrics=extra.get("metrics"), user_metadata=metadata,
            backend=backend)
        files["model_card"] = model_card.write_model_card(stage.path, meta, model_name)
        meta["files"]["model_card"] = model_card.MODEL_CARD_FILE
        files["metadata"] = metadata_lib.write_metadata(stage.path, meta)

    final = {key: os.path.normpath(os.path.join(stage.final_path,
                                                os.path.relpath(value, stage.path)))
             for key, value in files.items()}
    final.update(tf_serving.write_server_configs(stage.base_dir))  # beside the versions
    return ExportResult(stage.final_path, stage.version, final, verification, meta)


def _unpack(model_or_result, class_names, task):
    """`(model, task, class_names, info, {"metrics", "config"}, sample)`."""
    import keras

    from keras_tl.tasks import get_task, list_tasks, task_of

    if isinstance(model_or_result, keras.Model):
        model, extra, sample = model_or_result, {}, None
        candidates = [get_task(task)] if task is not None else [get_task(n) for n in list_tasks()]
        for candidate in candidates:
            info = candidate.model_info(model)
            if info is not None:
                task = candidate
                break
        else:
            raise ConfigError(
                f"export() cannot tell which task {type(model).__name__} {model.name!r} is for"
                f"{'' if task is None else ' with task=' + repr(task)}; pass the run's "
                "FinetuneResult, or task= one of " + ", ".join(list_tasks()) + ".")
        info = {"task": task.name, "modality": task.modality, **info}
    elif hasattr(model_or_result, "model"):
        result = model_or_result
        model = getattr(result, "inference_model", None) or result.model
        class_names = class_names or getattr(result, "class_names", None)
        info = dict(getattr(result, "info", None) or {})
        task = get_task(task) if task is not None else task_of(info)
        info = {"task": task.name, "modality": task.modality, **info}
        extra = {key: dict(getattr(result, key, None) or {}) for key in ("metrics", "config")}
        sample = getattr(result, "verification_sample", None)
        if sample is None:
            sample = getattr(result, "sample", None)  # a PreparedTask
        extra["representative"] = getattr(result, "representative_sample", None)
        if extra["representative"] is None:
            extra["representative"] = getattr(result, "representative", None)
    else:
        raise ConfigError(
            "export() takes a keras.Model or a result with a .model attribute "
            f"(e.g. keras_tl.FinetuneResult); got {type(model_or_result).__name__}.")
    if not class_names:
        raise ConfigError("class_names is required when exporting a bare keras.Model.")
    class_names = [str(name) for name in class_names]
    if any("\n" in name or "\r" in name for name in class_names):
        raise ConfigError("Class names cannot contain line breaks.")
    return model, task, class_names, info, extra, sample


def _formats(formats, spec):
    """The formats to write, in registry order, the SavedModel first."""
    supported = [name for name in list_formats() if get_exporter(name).supports(spec)]
    if formats is None:
        wanted = supported
    else:
        wanted = [formats] if isinstance(formats, str) else list(formats)
        for name in wanted:
            get_exporter(name)  # an unknown name lists the registered ones
        refused = [name for name in wanted if name not in supported]
        if refused:
            raise ConfigError(
                f"{spec.task} models export to {', '.join(supported)}; not to "
                f"{', '.join(refused)}.")
    return [name for name in list_formats() if name == "saved_model" or name in wanted]


def _check_outputs(spec):
    """The model's outputs must have the shapes the spec's signatures
    declare (e.g. one probability per class name)."""
    declared = {}
    for signature in spec.signatures:
        declared.update(signature.outputs)
    for name, value in spec.reference.items():
        shape = declared.get(name, {}).get("shape")
        if shape is None:
            continue
        actual = list(getattr(value, "shape", ()))
        if len(actual) != len(shape) or any(d is not None and d != a
                                            for d, a in zip(shape, actual)):
            raise ConfigError(
                f"The model's output {name!r} has shape {actual}, but the {spec.task} "
                f"signatures declare {shape} for the {len(spec.class_names)} class names given "
                f"({spec.class_names[:10]}).")


def _progress(verbose, stage):
    """`say(what, path, detail="")`: one line on stderr (when `verbose`)
    naming a staged file by its final path."""
    import sys
    import time

    started = time.perf_counter()

    def say(what, path=None, detail=""):
        if not verbose:
            return
        where = ""
        if path is not None:
            where = " " + os.path.normpath(os.path.join(
                stage.final_path, os.path.relpath(path, stage.path)))
        detail = f" ({detail})" if detail else ""
        print(f"[{time.perf_counter() - started:5.1f} s] {what}{where}{detail}", file=sys.stderr,
              flush=True)

    return say


def _report_line(report):
    if "skipped" in report:
        return "skipped: " + report["skipped"]
    if report.get("error"):
        return "error: " + report["error"]
    parts = [f"{key} {report[key]:.3g}" for key in ("max_abs_diff", "argmax_agreement", "agreement")
             if key in report]
    return ", ".join(parts) + ("" if report.get("enforced", True) else ", not enforced")


def _write(exporters, spec, model, stage_dir, backend, say=lambda *args, **kwargs: None):
    """Writes every format: in this process when it can, else (SavedModel,
    LiteRT, or an ONNX conversion that failed under JAX/PyTorch) in one
    TensorFlow pass. Returns the files and, per format, where it was converted."""
    files, formats_meta, in_tensorflow = {}, {}, []
    for exporter in exporters:
        formats_meta[exporter.name] = {}
        if backend == "tensorflow" or not exporter.needs_tensorflow:
            try:
                say(f"writing {exporter.name}")
                written = exporter.write(spec, stage_dir)
                files.update(written)
                for key, written_path in written.items():
                    say(f"wrote {key}", written_path)
                formats_meta[exporter.name]["converted_in"] = f"{backend} (this process)"
                continue
            except Exception as error:  # noqa: BLE001  (any converter failure falls back)
                if backend == "tensorflow":
                    raise
                formats_meta[exporter.name]["fallback_reason"] = \
                    f"{type(error).__name__}: {error}"[:500]
        formats_meta[exporter.name]["converted_in"] = "tensorflow subprocess"
        in_tensorflow.append(exporter.name)
    if in_tensorflow:
        say(f"writing {', '.join(in_tensorflow)} in a TensorFlow subprocess")
        written = _backend.write_in_tensorflow(in_tensorflow, spec, model, stage_dir)
        files.update(written)
        for key, written_path in written.items():
            say(f"wrote {key}", written_path)
    return files, formats_meta
