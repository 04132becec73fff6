"""The example notebooks run end to end on a reduced budget."""

import re

import pytest

from tests.helpers import execute_notebook, notebook_text

@pytest.mark.slow  # about 5 minutes: the demo's three runs on a reduced budget
def test_fashion_mnist_notebook(tmp_path, monkeypatch):
    notebook = execute_notebook("fashion_mnist_demo.ipynb", tmp_path, monkeypatch)
    text = notebook_text(notebook)
    # FAST mode tests on 5 images of each of 10 classes: a whole number right of 50
    found = re.search(r"'test': \{[^}]*'accuracy': ([0-9.]+)", text)
    assert found, text[-2000:]
    correct = float(found.group(1)) * 50
    assert abs(correct - round(correct)) < 1e-3
    assert "two_stage" in text and "from_scratch" in text
    assert (tmp_path / "two_stage" / "model.keras").exists()
