"""Text runs through the command line: finetune a CSV, export, then reload
and predict in fresh processes."""

import json
import os
import subprocess
import sys

import pytest

import keras_tl
from keras_tl import cli
from tests.helpers import save_tiny_preset, sentiment_texts, write_text_csv


def _keras_tl(*args):
    """Runs `python -m keras_tl ARGS` in a fresh process."""
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    done = subprocess.run([sys.executable, "-m", "keras_tl", *args], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_text_csv_finetune_export_predict(tmp_path):
    preset = save_tiny_preset(tmp_path / "tiny_bert")
    texts, labels = sentiment_texts(per_class=16)
    data = write_text_csv(tmp_path / "reviews.csv", texts, labels,
                          text_column="review", label_column="stars")
    run = tmp_path / "run"
    assert cli.main(["finetune", data, "--backbone", preset, "--text-column", "review",
                     "--label-column", "stars", "--output", str(run), "--head-epochs", "1",
                     "--finetune-epochs", "1", "--sequence-length", "16",
                     "--batch-size", "8"]) == 0
    info = json.loads((run / "run.json").read_text())["info"]
    assert info["modality"] == "text" and (run / "model.keras").exists()
    root = tmp_path / "exports"
    # a fresh process reloads the text run (safe mode) and exports it
    _keras_tl("export", str(run), "--name", "reviews", "--root", str(root),
              "--formats", "saved_model")
    assert (root / "reviews" / "1" / "saved_model.pb").exists()
    out = _keras_tl("predict", str(root / "reviews"), "Great tasty coffee!", "--top", "2")
    given, _, printed = out.strip().splitlines()[-1].partition(": ")
    assert given == "Great tasty coffee!"
    (expected,) = keras_tl.load(str(run)).predict(["Great tasty coffee!"], top=2)
    printed = [pair.rsplit(" ", 1) for pair in printed.split(", ")]  # "positive 0.612, ..."
    assert [name for name, _ in printed] == [name for name, _ in expected]
    assert [float(p) for _, p in printed] == pytest.approx([p for _, p in expected], abs=6e-4)
