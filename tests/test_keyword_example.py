"""The keyword-spotting example (script and notebook) on a reduced budget."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import EXAMPLES, execute_notebook, notebook_text



@pytest.mark.slow
def test_keyword_script_beats_chance_and_random_init_on_unseen_voices(tmp_path):
    results_file = tmp_path / "keyword_spotting.json"
    done = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "keyword_spotting.py"), "--epochs", "3",
         "--limit", "240", "--output", str(tmp_path / "runs"), "--results", str(results_file)],
        capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(results_file.read_text())
    assert results["setup"]["train_clips"] == 240
    assert results["machine"]["cpus"] == os.cpu_count()
    chance = 1 / 6
    # the pretrained encoder transfers to voices it never heard; random init does not
    assert results["two_stage"]["test_accuracy"] > 2 * chance
    assert results["two_stage"]["test_accuracy"] > results["from_scratch"]["test_accuracy"] + 0.1


@pytest.mark.slow
def test_keyword_notebook(tmp_path, monkeypatch):
    text = notebook_text(execute_notebook("keyword_spotting.ipynb", tmp_path, monkeypatch))
    assert "test voices:" in text and "two_stage" in text and "from_scratch" in text
    assert (tmp_path / "two_stage" / "model.keras").exists()
