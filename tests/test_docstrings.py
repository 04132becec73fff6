"""Every public function and class of keras_tl has a docstring with an example."""

import importlib
import inspect
import os
import pkgutil

import keras_tl

SKIP_MODULES = ("keras_tl.__main__",)


def _public_objects():
    for info in pkgutil.walk_packages(keras_tl.__path__, "keras_tl."):
        if info.name in SKIP_MODULES or any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isclass(obj) and issubclass(obj, BaseException):
                continue  # exception classes explain themselves by their messages
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{module.__name__}.{name}", obj


def test_public_functions_have_a_docstring_with_an_example():
    missing = [
        name for name, obj in _public_objects()
        if "Example" not in (inspect.getdoc(obj) or "")
    ]
    assert not missing, "no docstring example: " + ", ".join(sorted(missing))


def _modules():
    for info in pkgutil.walk_packages(keras_tl.__path__, "keras_tl."):
        if info.name not in SKIP_MODULES:
            yield importlib.import_module(info.name)


def test_docstring_examples_run_as_doctests(tmp_path, monkeypatch):
    """Every `>>>` example runs and prints what it shows; examples that need
    data or downloads a test cannot have are marked `# doctest: +SKIP`."""
    import doctest

    import numpy as np

    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures = []
    environ = dict(os.environ)
    for module in _modules():
        # np, keras_tl and get_task are where every example may use them
        globs = dict(vars(module), np=np, keras_tl=keras_tl, get_task=keras_tl.get_task)
        for test in finder.find(module, module.__name__, globs=globs):
            # each example its own folder: files another example left must not change its output
            test.globs["tmp_path"] = tmp_path / test.name
            test.globs["tmp_path"].mkdir()
            monkeypatch.chdir(test.globs["tmp_path"])
            result = runner.run(test, out=lambda text: None)
            if result.failed:
                failures.append(test.name)
            os.environ.clear()  # an example may point a cache variable elsewhere
            os.environ.update(environ)
    assert not failures, f"{len(failures)} failing docstring examples: " + ", ".join(failures)
