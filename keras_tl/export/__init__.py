"""Export a classifier for serving: SavedModel (TF Serving), ONNX, LiteRT.

Layout of `export(model, "saved_models/NAME")`, one folder per export:

    saved_models/NAME/
      1/                        TF Serving loads all-digit folders only
        saved_model.pb          signatures serving_default, serving_bytes
        variables/
        assets/class_names.txt
        fingerprint.pb
        model.onnx              input "images", output "probabilities"
        model_float32.tflite
        model_int8.tflite       dynamic-range quantized
        keras_tl.json           metadata + verification numbers
      2/ ...
      .tmp-export-<pid>-<id>/   only while an export runs (TF Serving ignores it)

TF Serving ignores the extra files inside a version folder. Every version
holds a SavedModel, so the folder can always be served as it is.
"""

import os
import sys
import types

import numpy as np

from keras_tl.export.predict import predict_top

FORMATS = ("saved_model", "onnx", "litert")

__all__ = ["ExportResult", "ExportVerificationError", "export", "predict_top", "FORMATS"]


from keras_tl.errors import ExportVerificationError


class ExportResult(dict):
    """What `export` wrote and how well each format matched the Keras model.

    A dict (so `json.dumps(result)` works) whose keys are also attributes:

    - `path`: the version folder (`saved_models/NAME/<version>`), which is
      also the SavedModel's folder.
    - `version`: the version number.
    - `files`: `{"saved_model", "onnx", "litert_float32", "litert_int8",
      "metadata"}` -> path, for the formats written.
    - `verification`: max abs differences, argmax agreements, file sizes.
    - `metadata`: the content of `keras_tl.json`.

    Example:
    >>> result = export(model, "saved_models/flowers", class_names=names)
    >>> result.version, result.files["onnx"]
    (1, 'saved_models/flowers/1/model.onnx')
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
        >>> json.dumps(result.to_dict())
        """
        return dict(self)

    def summary(self):
        """A few human-readable lines: where each format went, how it matched.

        Example:
        >>> print(result.summary())
        """
        lines = [f"Exported version {self.version} to {self.path}"]
        for key, value in self.verification.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k}={_short(v)}" for k, v in _flat(value))
            lines.append(f"  {key}: {value}")
        return "\n".join(lines)


def export(model_or_result, path, formats=FORMATS, class_names=None, metadata=None,
           version=None, verification_images=None, tolerance=1e-4):
    """Exports a classifier as a new version under `path`, verified.

    Args:
        model_or_result: a `keras.Model` (images in, softmax out) or a
            result with `.model`, `.class_names`, `.info`, `.metrics` and
            `.config` (e.g. `keras_tl.FinetuneResult`).
        path: the model's base folder, e.g. `"saved_models/flowers"`.
        formats: any of `"saved_model"`, `"onnx"`, `"litert"`. The
            SavedModel is always written: every version folder stays
            servable and LiteRT is converted from it.
        class_names: required with a bare model; overrides the result's.
        metadata: extra JSON-ready dict stored as `user_metadata`.
        version: an explicit version number; refused if it exists. Default:
            one more than the highest existing version.
        verification_images: float32 `[n, H, W, 3]` RGB 0-255 images to
            compare formats on (rounded to integers); default: 8 random ones.
        tolerance: max abs difference of probabilities allowed for the
            float formats (int8 LiteRT is only reported); `None` to skip.

    Returns:
        An `ExportResult`. Raises `ExportVerificationError` (and writes no
        version) when a float format differs by more than `tolerance`.

    Text classifiers (a result whose `info["modality"]` is `"text"`, or a
    `TextClassifierPipeline`) go to `keras_tl.export.text.export_text`
    (SavedModel on raw strings, ONNX on token ids; no LiteRT).

    Example:
    >>> result = keras_tl.export(finetune_result, "saved_models/flowers")
    >>> result.path
    'saved_models/flowers/1'
    """
    from keras_tl.export import _backend, _versioning
    from keras_tl.export import metadata as metadata_lib
    from keras_tl.export import onnx as onnx_lib

    formats = _check_formats(formats)
    if _is_text(model_or_result):
        from keras_tl.export.text import export_text

        return export_text(model_or_result, path, formats=formats, version=version,
                           tolerance=tolerance, metadata=metadata)
    if verification_images is None:  # a run's real validation images
        verification_images = getattr(model_or_result, "verification_sample", None)
    model, class_names, info, metrics, config = _unpack(model_or_result, class_names)
    image_size = _check_model(model, class_names)
    base = _check_base_path(path)
    images = _verification_images(verification_images, image_size)
    reference = np.asarray(model.predict(images, verbose=0), dtype="float32")
    backend = _backend.current_backend()

    with _versioning.staged_version(base, version) as stage:
        files = {"saved_model": stage.path}
        onnx_route = {}
        if "onnx" in formats:
            files["onnx"] = os.path.join(stage.path, onnx_lib.ONNX_FILE)
            onnx_route = _export_onnx_native(model, files["onnx"], class_names, image_size)
        # SavedModel + LiteRT (+ the ONNX fallback) in one TensorFlow pass
        report = _backend.run_tf_steps(
            model, stage.path, class_names, image_size, images, reference,
            litert="litert" in formats, onnx="fallback_reason" in onnx_route,
            onnx_properties=_onnx_properties(image_size),
        )
        verification = {f"saved_model_{k}": v for k, v in report["saved_model"].items()}
        if "litert" in formats:
            files["litert_float32"] = os.path.join(stage.path, "model_float32.tflite")
            files["litert_int8"] = os.path.join(stage.path, "model_int8.tflite")
            verification["litert"] = report["litert"]
        if "onnx" in formats:
            verification["onnx"] = dict(
                onnx_lib.verify_onnx(files["onnx"], images, reference), **onnx_route
            )
        verification["images"] = int(len(images))
        _check_tolerance(verification, tolerance)

        meta = metadata_lib.build_metadata(
            model, class_names, image_size, info=info, metrics=metrics,
            config=config, extra=metadata, backend=backend,
        )
        meta["signatures"] = _signature_contract(len(class_names), image_size)
        meta["verification"] = verification
        meta["files"] = {k: os.path.relpath(v, stage.path) for k, v in files.items()}
        meta = metadata_lib.json_ready(meta)
        files["metadata"] = metadata_lib.write_metadata(stage.path, meta)

    final = {k: os.path.join(stage.final_path, os.path.relpath(v, stage.path))
             for k, v in files.items()}
    final["saved_model"] = stage.final_path
    return ExportResult(stage.final_path, stage.version, final, verification, meta)


def _onnx_properties(image_size):
    from keras_tl.version import __version__

    return {"keras_tl_version": __version__, "input_size": list(image_size)}


def _export_onnx_native(model, path, class_names, image_size):
    """Keras' own ONNX export for the model's backend. Under JAX/PyTorch a
    failure is recorded and tf2onnx runs in the TensorFlow subprocess instead.
    Returns how it was (or will be) converted."""
    from keras_tl.export import _backend
    from keras_tl.export import onnx as onnx_lib

    backend = _backend.current_backend()
    try:
        onnx_lib.export_onnx(model, path, class_names, _onnx_properties(image_size))
        return {"converter": f"keras model.export ({backend})"}
    except Exception as error:
        if backend == "tensorflow":
            raise
        if os.path.exists(path):
            os.remove(path)
        return {"converter": "keras model.export (tensorflow subprocess, tf2onnx)",
                "fallback_reason": f"{type(error).__name__}: {error}"[:500]}


def _is_text(obj):
    if (getattr(obj, "info", None) or {}).get("modality") == "text":
        return True
    try:
        from keras_tl.tasks.text_classifier import TextClassifierPipeline
    except ImportError:
        return False
    task = getattr(obj, "task", None)
    candidates = (obj, getattr(obj, "inference_model", None),
                  getattr(task, "inference_model", None))
    return any(isinstance(c, TextClassifierPipeline) for c in candidates)


def _unpack(model_or_result, class_names):
    import keras

    if isinstance(model_or_result, keras.Model):
        model, info, metrics, config = model_or_result, {}, {}, {}
    elif hasattr(model_or_result, "model"):
        result = model_or_result
        model = getattr(result, "inference_model", None) or result.model
        class_names = class_names or getattr(result, "class_names", None)
        info = dict(getattr(result, "info", None) or {})
        metrics = dict(getattr(result, "metrics", None) or {})
        config = dict(getattr(result, "config", None) or {})
    else:
        raise TypeError(
            "export() takes a keras.Model or a result with a .model attribute "
            f"(e.g. keras_tl.FinetuneResult); got {type(model_or_result).__name__}."
        )
    if not class_names:
        raise ValueError("class_names is required when exporting a bare keras.Model.")
    class_names = [str(name) for name in class_names]
    if any("\n" in name or "\r" in name for name in class_names):
        raise ValueError("Class names cannot contain line breaks.")
    return model, class_names, info, metrics, config


def _check_model(model, class_names):
    inputs = model.inputs
    shape = tuple(inputs[0].shape) if len(inputs) == 1 else None
    if shape is None or len(shape) != 4 or shape[-1] != 3 or None in shape[1:]:
        raise ValueError(
            "export() handles image classifiers with one input of shape "
            f"[batch, H, W, 3] (fixed H, W); this model takes "
            f"{[tuple(i.shape) for i in inputs]}."
        )
    classes = model.outputs[0].shape[-1] if len(model.outputs) == 1 else None
    if classes != len(class_names):
        raise ValueError(
            f"The model has {classes} outputs but {len(class_names)} class names "
            f"were given: {class_names[:10]}."
        )
    return int(shape[1]), int(shape[2])


def _check_formats(formats):
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"Unknown export formats {unknown}; use some of {list(FORMATS)}.")
    return ("saved_model",) + tuple(f for f in FORMATS[1:] if f in formats)


def _check_base_path(path):
    path = os.fspath(path)
    if os.path.basename(os.path.normpath(path)).isdigit():
        raise ValueError(
            f"{path!r} looks like a version folder. Pass the model's base folder "
            "(e.g. 'saved_models/flowers') and, if needed, version=N."
        )
    return path


def _verification_images(images, image_size, count=8):
    if images is None:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (count,) + tuple(image_size) + (3,))
    images = np.clip(np.round(np.asarray(images, dtype="float32")), 0, 255)
    if images.ndim != 4 or images.shape[1:] != tuple(image_size) + (3,):
        raise ValueError(
            f"verification_images must have shape [n, {image_size[0]}, "
            f"{image_size[1]}, 3]; got {images.shape}."
        )
    return images.astype("float32")


def _check_tolerance(verification, tolerance):
    if tolerance is None:
        return
    diffs = {
        "serving_default": verification["saved_model_serving_default"]["max_abs_diff"],
        "serving_bytes": verification["saved_model_serving_bytes"]["max_abs_diff"],
    }
    if "onnx" in verification:
        diffs["onnx"] = verification["onnx"]["max_abs_diff"]
    if "litert" in verification:
        diffs["litert_float32"] = verification["litert"]["float32_max_abs_diff"]
    bad = {k: v for k, v in diffs.items() if not v <= tolerance}
    if bad:
        raise ExportVerificationError(
            f"Exported outputs differ from the Keras model by more than "
            f"{tolerance}: {bad}. Nothing was written; pass tolerance=None to "
            "export anyway."
        )


def _signature_contract(num_classes, image_size):
    from keras_tl.export import saved_model

    height, width = image_size
    outputs = {
        "probabilities": {"dtype": "float32", "shape": [None, num_classes]},
        "class_ids": {"dtype": "int64", "shape": [None]},
        "class_names": {"dtype": "string", "shape": [None]},
    }
    return {
        saved_model.DEFAULT_SIGNATURE: {
            "inputs": {saved_model.IMAGES_KEY: {"dtype": "float32",
                                                "shape": [None, height, width, 3]}},
            "outputs": outputs,
        },
        saved_model.BYTES_SIGNATURE: {
            "inputs": {saved_model.BYTES_KEY: {"dtype": "string", "shape": [None]}},
            "outputs": outputs,
        },
    }


def _flat(value, prefix=""):
    for k, v in value.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _short(value):
    return f"{value:.3g}" if isinstance(value, float) else str(value)


class _CallableModule(types.ModuleType):
    """`keras_tl.export(...)` calls `export(...)` while `keras_tl.export`
    stays this package (so `keras_tl.export.predict_top` keeps working)."""

    def __call__(self, *args, **kwargs):
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
