"""Staging folders of exports: owned, heartbeated, removed only when provably dead."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_tl.exporters import _versioning
from keras_tl.exporters.base import check_tolerance, compare


def _staging(base, name, owner=None, heartbeat_age=0.0):
    """A staging folder with an owner record whose heartbeat is `heartbeat_age` s old."""
    path = base / f"{_versioning.STAGING_PREFIX}{name}"
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"half")
    if owner is not None:
        owner_file = path / _versioning.OWNER_FILE
        owner_file.write_text(json.dumps(owner))
        past = time.time() - heartbeat_age
        os.utime(owner_file, (past, past))
    return path


def _dead_pid():
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.fixture
def other_process():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process.pid
    process.kill()
    process.wait()


def test_only_provably_dead_staging_folders_are_removed(tmp_path, other_process):
    here = _versioning.host_id()
    hour = _versioning.STALE_AFTER_SECONDS
    start = _versioning._process_start(other_process)
    live = dict(host=here, pid=other_process, process_start=start)
    _staging(tmp_path, "dead-here", dict(host=here, pid=_dead_pid()))
    _staging(tmp_path, "live-here-old-heartbeat", live, heartbeat_age=10 * hour)
    _staging(tmp_path, "pid-reused", dict(live, process_start=start - 1))
    _staging(tmp_path, "other-host-beating", dict(host="elsewhere|x|y", pid=1), heartbeat_age=60)
    _staging(tmp_path, "other-host-silent", dict(host="elsewhere|x|y", pid=1),
             heartbeat_age=hour + 60)
    fresh_no_owner = _staging(tmp_path, "just-created")
    old_no_owner = _staging(tmp_path, "old-keras-tl")
    past = time.time() - 2 * hour
    os.utime(old_no_owner, (past, past))
    (tmp_path / "1").mkdir()

    removed = _versioning.remove_stale_staging(str(tmp_path))
    prefix = _versioning.STAGING_PREFIX
    assert removed == [prefix + name for name in
                       ("dead-here", "old-keras-tl", "other-host-silent", "pid-reused")]
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["1", fresh_no_owner.name, prefix + "live-here-old-heartbeat",
         prefix + "other-host-beating"])


def test_owner_heartbeat_while_staging(tmp_path, monkeypatch):
    monkeypatch.setattr(_versioning, "HEARTBEAT_SECONDS", 0.05)
    with _versioning.staged_version(str(tmp_path)) as stage:
        owner_file = os.path.join(stage.path, _versioning.OWNER_FILE)
        with open(owner_file) as f:
            owner = json.load(f)
        assert owner["host"] == _versioning.host_id() and owner["pid"] == os.getpid()
        os.utime(owner_file, (0, 0))
        time.sleep(0.5)
        assert time.time() - os.path.getmtime(owner_file) < 5  # touched again
        with open(os.path.join(stage.path, "saved_model.pb"), "wb") as f:
            f.write(b"model")
    # the owner record is not part of the version
    assert os.listdir(tmp_path) == ["1"] and os.listdir(tmp_path / "1") == ["saved_model.pb"]


def test_failed_staging_is_removed_and_versions_never_replaced(tmp_path):
    with pytest.raises(RuntimeError):
        with _versioning.staged_version(str(tmp_path)):
            raise RuntimeError("converter failed")
    assert os.listdir(tmp_path) == []
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "saved_model.pb").write_bytes(b"good")
    with _versioning.staged_version(str(tmp_path)) as stage:
        os.makedirs(tmp_path / "2")  # another export took 2 meanwhile, still empty
        (tmp_path / "2" / "keep").write_bytes(b"theirs")
        open(os.path.join(stage.path, "mine"), "w").close()
    assert stage.version == 3 and os.listdir(tmp_path / "3") == ["mine"]
    assert (tmp_path / "1" / "saved_model.pb").read_bytes() == b"good"


def test_compare_and_the_one_tolerance_rule():
    from keras_tl.errors import ExportVerificationError

    reference = {"probabilities": np.array([[0.1, 0.9], [0.6, 0.4]], "float32"),
                 "class_names": np.array(["b", "a"], object)}
    same = compare({"probabilities": reference["probabilities"] + 1e-6,
                    "class_names": np.array([b"b", b"a"])}, reference)
    assert same["max_abs_diff"] < 2e-6 and same["agreement"] == 1.0
    flipped = compare({"probabilities": reference["probabilities"][::-1],
                       "class_names": np.array(["a", "b"], object)}, reference)
    assert flipped["argmax_agreement"] == 0.0 and flipped["agreement"] == 0.0
    lossy = dict(flipped, enforced=False)
    check_tolerance({"inputs": 2, "onnx": same, "litert_int8": lossy}, 1e-4)
    with pytest.raises(ExportVerificationError, match=r"onnx \(max_abs_diff 0\.5\)"):
        check_tolerance({"onnx": flipped}, 1e-4)
    nan = compare({"probabilities": np.full((2, 2), np.nan, "float32")}, reference)
    with pytest.raises(ExportVerificationError, match="max_abs_diff inf"):
        check_tolerance({"onnx": nan}, 1e-4)
    missing = compare({"logits": np.zeros((2, 2))}, reference)
    with pytest.raises(ExportVerificationError, match="no output in common"):
        check_tolerance({"onnx": missing}, 1e-4)
    check_tolerance({"onnx": missing}, None)  # tolerance=None exports anyway


def test_an_exporter_reads_only_the_spec(tmp_path):
    """ONNX written, run and verified for a model no task made, from a spec
    written by hand: the feed and the reference are the spec's."""
    import keras

    from keras_tl.export_spec import ConvertedGraph, ExportSpec, named_outputs
    from keras_tl.exporters import get_exporter
    from keras_tl.exporters.onnx import read_onnx_properties

    x = keras.Input((3,), name="features")
    model = keras.Model(x, keras.layers.Dense(2, name="scores")(x))
    inputs = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    # the model is fed twice the inputs: a runner that ignored the spec's feed would differ
    spec = ExportSpec("hand_made", "tabular", ["a", "b"], {"note": 1}, signatures=(),
                      converted=ConvertedGraph(model, feed=lambda x, folder: {"features": 2 * x}),
                      verification_inputs=inputs, predict=lambda x: named_outputs(model, 2 * x))
    onnx = get_exporter("onnx")
    assert onnx.supports(spec)
    files = onnx.write(spec, str(tmp_path))
    report = onnx.verify(files, spec)["onnx"]
    assert report["enforced"] and set(report["outputs"]) == {"scores"}
    assert report["max_abs_diff"] <= 1e-5
    properties = read_onnx_properties(files["onnx"])
    assert properties["keras_tl_task"] == "hand_made" and properties["keras_tl_info"] == {"note": 1}
