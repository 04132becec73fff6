"""`import keras_tl` stays light, and its sub-packages are reachable as
attributes without importing them first (as `make demo` does)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT)


def test_subpackages_load_on_attribute_access():
    done = _python("import sys, keras_tl\n"
                   "light = 'keras' not in sys.modules\n"
                   "print(light, keras_tl.tasks.get_task('image_classification').name)")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "image_classification"]


def test_unknown_attribute_is_an_attribute_error():
    done = _python("import keras_tl\n"
                   "try:\n    keras_tl.no_such_thing\nexcept AttributeError as e:\n    print(e)")
    assert done.stdout.strip() == "module 'keras_tl' has no attribute 'no_such_thing'"


def test_the_demo_script_starts():
    """`make demo` runs examples/fashion_mnist_demo.py: its arguments parse
    (the defaults ask the task registry) before anything trains."""
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "fashion_mnist_demo.py"),
                           "--help"], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--backbone" in done.stdout
