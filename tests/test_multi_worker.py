"""`keras-tl finetune --distribute multi_worker`: two JAX processes on CPU
talking over 127.0.0.1, each with one CPU device, through the real command
(`python -m keras_tl`) with the same `--output`."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from keras_tl.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 480  # seconds a whole two-process job may take on a loaded 2-core machine

# The command itself, plus one line with a digest of the trained weights, so
# that the test can compare the two processes (the non-chief saves nothing).
COMMAND = """
import hashlib, json, sys
import numpy as np
from keras_tl import cli, run

trained = run.FinetuneRun.run

def run_and_report(self):
    result = trained(self)
    weights = b"".join(np.asarray(w).tobytes() for w in result.model.get_weights())
    print("TRAINED", json.dumps(dict(process=self.process_index, history=result.histories,
          digest=hashlib.sha256(weights).hexdigest(),
          validation=result.metrics["validation"])), flush=True)
    return result

run.FinetuneRun.run = run_and_report
sys.exit(cli.main(sys.argv[1:]))
"""


def _free_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


def _env(tmp, process=None, processes=2, port=None):
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
               XLA_FLAGS="--xla_force_host_platform_device_count=1", TF_CPP_MIN_LOG_LEVEL="3",
               TMPDIR=str(tmp))  # where a non-chief's temporary run folder goes
    for name in ("TF_CONFIG", "KERAS_DISTRIBUTION_JOB_ADDRESSES",
                 "KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID"):
        env.pop(name, None)
    if process is not None:
        env.update(KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
                   KERAS_DISTRIBUTION_NUM_PROCESSES=str(processes),
                   KERAS_DISTRIBUTION_PROCESS_ID=str(process))
    return env


def _args(images, output, extra=()):
    return [sys.executable, "-c", COMMAND, "finetune", images, "--backbone", "mobilenet_v2",
            "--weights", "none", "--image-size", "32", "--batch-size", "8",
            "--validation-split", "0.2", "--patience", "0", "--verbose", "0",
            "--output", output, *extra]


def _start(images, output, tmp, extra=(), processes=2):
    port = _free_port()
    return [subprocess.Popen(_args(images, output, ("--distribute", "multi_worker", *extra)),
                             env=_env(tmp, i, processes, port), cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for i in range(processes)]


def _finish(processes):
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
        assert process.returncode == 0, stderr[-3000:]
        line = [l for l in stdout.splitlines() if l.startswith("TRAINED ")][-1]
        outputs.append((json.loads(line[len("TRAINED "):]), stderr))
    return outputs


def _workers_left(tmp):
    return [name for name in os.listdir(tmp) if name.startswith("keras_tl-worker")]


@pytest.fixture
def worker_tmp(tmp_path):
    folder = tmp_path / "tmp"
    folder.mkdir()
    return folder


@pytest.fixture
def colour_folder(tmp_path):
    """30 images: 24 train (3 global batches of 8), 6 validation."""
    from tests.helpers import write_image_folder

    return str(write_image_folder(tmp_path / "images", per_class=10, size=32))


@pytest.mark.slow  # two training processes and a one-process reference (minutes here)
def test_two_processes_train_like_one(colour_folder, tmp_path, worker_tmp):
    stages = ("--head-epochs", "2", "--finetune-epochs", "1")
    output = str(tmp_path / "run")
    (chief, _), (worker, _) = _finish(_start(colour_folder, output, worker_tmp, stages))
    assert _workers_left(worker_tmp) == [], "the non-chief removed its temporary folder"
    single = subprocess.run(_args(colour_folder, str(tmp_path / "single"), stages),
                            env=_env(worker_tmp), cwd=ROOT, capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert single.returncode == 0, single.stderr[-3000:]
    reference = json.loads(single.stdout.split("TRAINED ")[-1].splitlines()[0])

    assert (chief["process"], worker["process"]) == (0, 1)
    assert chief["digest"] == worker["digest"], "both processes hold the same trained weights"
    assert chief["validation"] == worker["validation"]  # the same final evaluation
    assert chief["history"] == worker["history"]
    run = json.load(open(os.path.join(output, "run.json")))
    assert run["num_processes"] == 2
    assert run["config"]["distribution"] == {"strategy": "DataParallel", "device_count": 2,
                                             "num_processes": 2}
    for name in ("model.keras", "metrics.json", "class_names.txt", "checkpoint/state.json"):
        assert os.path.exists(os.path.join(output, name)), name
    # the same global batches as one process: the same losses up to float order
    assert sorted(chief["history"]) == sorted(reference["history"]) == ["finetune", "head"]
    for stage in ("head", "finetune"):
        two, one = chief["history"][stage]["loss"], reference["history"][stage]["loss"]
        assert two == pytest.approx(one, rel=0.05), (stage, two, one)
    assert abs(chief["validation"]["accuracy"] - reference["validation"]["accuracy"]) <= 1 / 6 + 1e-6


@pytest.mark.slow  # a killed two-process job and its relaunch (minutes here)
def test_killed_job_resumes_from_the_last_completed_epoch(colour_folder, tmp_path, worker_tmp):
    output = str(tmp_path / "run")
    epochs = 30
    stages = ("--head-epochs", str(epochs), "--finetune-epochs", "0", "--cache-features", "off")
    state_path = os.path.join(output, "checkpoint", "state.json")
    processes = _start(colour_folder, output, worker_tmp, stages)
    deadline = time.monotonic() + TIMEOUT
    completed = 0
    while completed < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        if os.path.exists(state_path):
            completed = json.load(open(state_path))["epoch"]
    for process in processes:  # the chief first: it is the one writing
        process.send_signal(signal.SIGKILL)
        process.communicate()
    assert completed >= 2, "the job never completed two epochs"
    assert not os.path.exists(os.path.join(output, "run.json")), "killed before the end"
    killed_at = json.load(open(state_path))["epoch"]
    assert killed_at < epochs

    outputs = _finish(_start(colour_folder, output, worker_tmp, stages))
    for (trained, stderr) in outputs:
        assert f"Resuming stage 'head' at epoch {killed_at}" in stderr
    (chief, _), (worker, _) = outputs
    assert chief["digest"] == worker["digest"]
    history = chief["history"]["head"]["loss"]
    assert len(history) == epochs, "every epoch once: none repeated, none lost"
    committed = json.load(open(state_path))["weights"]["file"]
    assert sorted(os.listdir(os.path.join(output, "checkpoint"))) == [
        "data_files.json", "state.json", committed], "no partial or stale file left"
    assert json.load(open(os.path.join(output, "run.json")))["num_processes"] == 2
    assert _workers_left(worker_tmp) == []


@pytest.mark.core
def test_multi_worker_is_refused_outside_jax_and_without_a_cluster(monkeypatch):
    import keras

    from keras_tl.training import distribution

    if keras.backend.backend() == "jax":
        for name in distribution.CLUSTER_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        with pytest.raises(ConfigError, match="needs KERAS_DISTRIBUTION_JOB_ADDRESSES"):
            distribution.join_cluster("multi_worker")
    else:
        with pytest.raises(ConfigError, match="needs the JAX backend: .*KERAS_BACKEND=jax"):
            distribution.join_cluster("multi_worker")
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "1")
    assert distribution.join_cluster("auto") == (0, 1)  # no cluster: one process


@pytest.mark.core
def test_tf_config_is_refused_naming_the_jax_path(monkeypatch):
    import keras

    from keras_tl.training import distribution

    if keras.backend.backend() != "tensorflow":
        pytest.skip("TF_CONFIG concerns the TensorFlow backend")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    with pytest.raises(ConfigError, match="MultiWorkerMirroredStrategy does not train with "
                                          "Keras 3.*KERAS_BACKEND=jax and distribute='multi_worker'"):
        with distribution.distribution_scope("data_parallel"):
            pass
