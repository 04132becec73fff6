"""The example notebooks run end to end on a reduced budget."""

import os

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


def test_fashion_mnist_notebook(tmp_path, monkeypatch):
    notebook = execute("fashion_mnist_demo.ipynb", tmp_path, monkeypatch)
    text = _outputs(notebook)
    assert "'test': {" in text and "accuracy" in text
    assert "two_stage" in text and "from_scratch" in text
    assert (tmp_path / "two_stage" / "model.keras").exists()
