"""The object-detection example (script and notebook) on a tiny budget: what
is checked is that everything runs and is written, not accuracy."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import EXAMPLES, execute_notebook, notebook_text



@pytest.mark.slow
def test_detection_script_writes_both_runs_and_the_machine(tmp_path):
    results_file = tmp_path / "object_detection.json"
    done = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "object_detection.py"), "--epochs", "1",
         "--limit", "40", "--output", str(tmp_path / "runs"), "--results", str(results_file)],
        capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(results_file.read_text())
    setup = results["setup"]
    # 40 images, 10% of them held out for validation
    assert (setup["train_images"], setup["validation_images"], setup["test_images"]) == (36, 4, 40)
    assert setup["backbone"] == "mobilenet_v2_torch" and setup["image_size"] == 128
    assert [s["name"] for s in setup["stages"]["two_stage"]] == ["head", "finetune"]
    scratch = setup["stages"]["from_scratch"]
    assert len(scratch) == 1 and scratch[0]["epochs"] == 2 and scratch[0]["train_batchnorm"]
    for name in ("two_stage", "from_scratch"):
        run = results[name]
        assert {"map_50", "map", "map_75", "seconds"} <= set(run)
        assert set(run["per_class_ap"]) == {"astronaut", "cat", "cup", "rocket"}
        assert os.path.exists(os.path.join(run["output_dir"], "model.keras"))
    assert results["machine"]["cpus"] == os.cpu_count()
    assert "two_stage" in done.stdout and "from_scratch" in done.stdout


@pytest.mark.slow
def test_detection_notebook(tmp_path, monkeypatch):
    text = notebook_text(execute_notebook("object_detection.ipynb", tmp_path, monkeypatch, timeout=1500))
    assert "coco 24 training images" in text
    assert "'map_50'" in text and "per_class_ap" in text
    assert text.count("detections") >= 2  # one line per test image
    assert "Exported version 1 to" in text and "serving_bytes" in text
    assert "two_stage" in text and "from_scratch" in text
    assert (tmp_path / "two_stage" / "model.keras").exists()
    assert os.path.isdir(tmp_path / "saved_models" / "detector" / "1")
