"""Every public function and class of keras_tl has a docstring with an example."""

import importlib
import inspect
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
