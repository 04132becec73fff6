"""The text examples (scripts and notebooks) run end to end with the real
MiniLM on a reduced budget."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import EXAMPLES, execute_notebook, notebook_text

SMALL = ["--max-train", "48", "--max-test", "40", "--epochs", "1", "--sequence-length", "32"]


def _run_script(name, tmp_path, *extra):
    output = str(tmp_path / "out")
    done = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, name), *SMALL, "--output", output, *extra],
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 0, done.stderr[-3000:]
    with open(os.path.join(output, "results.json")) as f:
        return json.load(f), done.stdout


@pytest.mark.slow
def test_sentiment_script_reduced_budget(tmp_path):
    results, stdout = _run_script("sentiment_amazon_reviews.py", tmp_path,
                                  "--export", str(tmp_path / "saved_models" / "sentiment"))
    assert results["setup"]["train"] == 48 and results["setup"]["test"] == 40
    for name in ("two_stage_finetune", "frozen_baseline", "majority_class"):
        # an accuracy over the 40 test reviews: a whole number of them right
        correct = results[name]["test_accuracy"] * 40
        assert abs(correct - round(correct)) < 1e-3, (name, results[name])
    assert "Exported version 1" in stdout
    assert (tmp_path / "saved_models" / "sentiment" / "1" / "saved_model.pb").exists()


@pytest.mark.slow
def test_topic_script_reduced_budget(tmp_path):
    results, _ = _run_script("topic_bbc_news.py", tmp_path, "--no-baseline")
    assert results["setup"]["train"] == 48 and "frozen_baseline" not in results
    assert results["majority_class"]["test_accuracy"] < 0.5  # five topics


@pytest.mark.slow
def test_sentiment_notebook(tmp_path, monkeypatch):
    text = notebook_text(execute_notebook("sentiment_amazon_reviews.ipynb", tmp_path, monkeypatch))
    assert "two-stage fine-tuned MiniLM" in text and "frozen MiniLM" in text
    assert "Exported version 1" in text
    assert (tmp_path / "saved_models" / "sentiment" / "1" / "model.onnx").exists()


@pytest.mark.slow
def test_topic_notebook(tmp_path, monkeypatch):
    text = notebook_text(execute_notebook("topic_bbc_news.ipynb", tmp_path, monkeypatch))
    assert "is not UTF-8" in text  # the Latin-1 article is named
    assert "two-stage fine-tuned MiniLM" in text
