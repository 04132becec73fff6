"""The one place backend differences are handled.

The SavedModel and LiteRT formats are TensorFlow graphs. Under the
TensorFlow backend their exporters run in this process. Under JAX or
PyTorch the model is saved to a `.keras` file and a subprocess with
`KERAS_BACKEND=tensorflow` reloads it (`safe_mode=True`), gets the task
from `info["task"]`, builds the same `ExportSpec` from it and runs the
same exporters' `write` there. Every
format is verified afterwards in the calling process, against the
caller's model.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from keras_tl.errors import ExportError

_WORKER = "from keras_tl.exporters._backend import _worker_main; _worker_main()"


def current_backend():
    """The Keras backend name (`"tensorflow"`, `"jax"`, `"torch"`...).

    Example:
    >>> current_backend() in ("tensorflow", "jax", "torch")
    True
    """
    import keras

    return keras.backend.backend()


def write_in_tensorflow(formats, spec, model, stage_dir):
    """Runs the `write` of each format in `formats` under TensorFlow (this
    process, with `spec`, under the TensorFlow backend; else a TensorFlow
    subprocess, which rebuilds the spec from `model`, `spec.info` and
    `spec.class_names`); returns the files written, `{file_key: path}`.

    Example:
    >>> write_in_tensorflow(["saved_model", "litert"], spec, model, "stage")  # doctest: +SKIP
    {'saved_model': 'stage', 'litert_float32': ..., 'litert_int8': ...}
    """
    if current_backend() == "tensorflow":
        return _write(formats, spec, stage_dir)
    with tempfile.TemporaryDirectory(prefix="keras_tl_export_") as tmp:
        job = dict(formats=list(formats), stage_dir=os.path.abspath(stage_dir), info=spec.info,
                   class_names=list(spec.class_names),
                   model_path=os.path.join(tmp, "model.keras"),
                   files_path=os.path.join(tmp, "files.json"))
        model.save(job["model_path"])
        if spec.representative_inputs is not None:  # int8 calibration inputs
            job["representative_path"] = os.path.join(tmp, "representative.npy")
            np.save(job["representative_path"], np.asarray(spec.representative_inputs))
        job_path = os.path.join(tmp, "job.json")
        with open(job_path, "w") as f:
            json.dump(job, f, default=str)
        _run_worker(job_path)
        with open(job["files_path"]) as f:
            return json.load(f)


def _write(formats, spec, stage_dir):
    from keras_tl.exporters.registry import get_exporter

    files = {}
    for name in formats:
        files.update(get_exporter(name).write(spec, stage_dir))
    return files


def _run_worker(job_path):
    import keras_tl

    package_root = os.path.dirname(os.path.dirname(os.path.abspath(keras_tl.__file__)))
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, "-c", _WORKER, job_path], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise ExportError("The TensorFlow export subprocess failed (exit code "
                          f"{done.returncode}):\n{done.stderr[-4000:]}")


def _worker_main():
    """Entry point of the TensorFlow subprocess: `python -c ... job.json`."""
    import keras

    import keras_tl  # noqa: F401  (registers keras_tl's serializable objects)
    from keras_tl.export_spec import use_converted
    from keras_tl.tasks import task_of

    with open(sys.argv[1]) as f:
        job = json.load(f)
    task = task_of(job["info"])  # imports the task's module: registers its layers
    model = keras.saving.load_model(job["model_path"], compile=False, safe_mode=True)
    spec = use_converted(task.export_spec(model, job["info"], job["class_names"]))
    if "representative_path" in job:
        spec.representative_inputs = np.load(job["representative_path"], allow_pickle=False)
    files = _write(job["formats"], spec, job["stage_dir"])
    with open(job["files_path"], "w") as f:
        json.dump(files, f)
