"""The example notebooks run end to end on a reduced budget."""

import os
import re

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def execute(name, tmp_path, monkeypatch, timeout=900):
    """Runs examples/<name> in a fresh kernel (cwd examples/); returns the notebook."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("KERAS_TL_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("KERAS_TL_NOTEBOOK_OUTPUT", str(tmp_path))
    notebook = nbformat.read(os.path.join(EXAMPLES, name), as_version=4)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": EXAMPLES}}).execute()
    return notebook


def _outputs(notebook):
    text = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            text.append(output.get("text", "") or str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(text)


@pytest.mark.slow  # about 5 minutes: the demo's three runs on a reduced budget
def test_fashion_mnist_notebook(tmp_path, monkeypatch):
    notebook = execute("fashion_mnist_demo.ipynb", tmp_path, monkeypatch)
    text = _outputs(notebook)
    # FAST mode tests on 5 images of each of 10 classes: a whole number right of 50
    found = re.search(r"'test': \{[^}]*'accuracy': ([0-9.]+)", text)
    assert found, text[-2000:]
    correct = float(found.group(1)) * 50
    assert abs(correct - round(correct)) < 1e-3
    assert "two_stage" in text and "from_scratch" in text
    assert (tmp_path / "two_stage" / "model.keras").exists()
