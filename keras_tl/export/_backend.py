"""The one place backend differences are handled.

SavedModel and LiteRT need TensorFlow graphs. Under the TensorFlow backend
they are built in-process. Under JAX or PyTorch the model is saved to a
`.keras` file and a subprocess with `KERAS_BACKEND=tensorflow` reloads it
(`safe_mode=True`; keras_tl's layers are registered serializable) and does the
TensorFlow steps there, verifying against the caller's predictions.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

_WORKER = "from keras_tl.export._backend import _worker_main; _worker_main()"


def current_backend():
    """The Keras backend name (`"tensorflow"`, `"jax"`, `"torch"`...)."""
    import keras

    return keras.backend.backend()


def run_tf_steps(model, stage_dir, class_names, image_size, images, reference,
                 saved_model=True, litert=True, onnx=False, onnx_properties=None):
    """Writes the SavedModel (and LiteRT files, and ONNX through tf2onnx when
    asked) into `stage_dir`; returns the verification report. LiteRT is
    converted from the SavedModel, so `litert` needs `saved_model`.

    Example:
    >>> run_tf_steps(model, "stage", ["cat", "dog"], (224, 224), images, ref)
    {'saved_model': {...}, 'litert': {...}}
    """
    job = dict(
        stage_dir=os.path.abspath(stage_dir),
        class_names=list(class_names),
        image_size=list(image_size),
        saved_model=saved_model,
        litert=litert,
        onnx=onnx,
        onnx_properties=onnx_properties or {},
    )
    if current_backend() == "tensorflow":
        return _tf_steps(model, images, reference, **job)
    with tempfile.TemporaryDirectory(prefix="keras_tl_export_") as tmp:
        job["model_path"] = os.path.join(tmp, "model.keras")
        job["arrays_path"] = os.path.join(tmp, "arrays.npz")
        job["report_path"] = os.path.join(tmp, "report.json")
        model.save(job["model_path"])
        np.savez(job["arrays_path"], images=images, reference=reference)
        job_path = os.path.join(tmp, "job.json")
        with open(job_path, "w") as f:
            json.dump(job, f)
        _run_worker(job_path)
        with open(job["report_path"]) as f:
            return json.load(f)


def _run_worker(job_path):
    import keras_tl

    package_root = os.path.dirname(os.path.dirname(os.path.abspath(keras_tl.__file__)))
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_root, env.get("PYTHONPATH")) if p
    )
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, job_path],
        env=env, capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(
            "The TensorFlow export subprocess failed (exit code "
            f"{done.returncode}):\n{done.stderr[-4000:]}"
        )


def _worker_main():
    """Entry point of the TensorFlow subprocess: `python -c ... job.json`."""
    import keras

    import keras_tl.layers  # noqa: F401  (registers keras_tl's layers)

    with open(sys.argv[1]) as f:
        job = json.load(f)
    model = keras.saving.load_model(job.pop("model_path"), compile=False, safe_mode=True)
    arrays = np.load(job.pop("arrays_path"))
    report_path = job.pop("report_path")
    report = _tf_steps(model, arrays["images"], arrays["reference"], **job)
    with open(report_path, "w") as f:
        json.dump(report, f)


def _tf_steps(model, images, reference, stage_dir, class_names, image_size,
              saved_model, litert, onnx, onnx_properties):
    from keras_tl.export import litert as litert_lib
    from keras_tl.export import onnx as onnx_lib
    from keras_tl.export import saved_model as saved_model_lib

    report = {}
    if current_backend() != "tensorflow":
        raise RuntimeError("The TensorFlow export steps need KERAS_BACKEND=tensorflow.")
    if saved_model:
        saved_model_lib.write_saved_model(model, stage_dir, class_names, image_size)
        report["saved_model"] = saved_model_lib.verify_saved_model(
            stage_dir, images, reference
        )
    if litert:
        paths = litert_lib.convert_litert(stage_dir, stage_dir)
        report["litert"] = litert_lib.verify_litert(paths, images, reference)
    if onnx:
        path = os.path.join(stage_dir, onnx_lib.ONNX_FILE)
        onnx_lib.export_onnx(model, path, class_names, onnx_properties)
    return report
