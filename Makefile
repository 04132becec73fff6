PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider

.PHONY: install demo test test-fast test-slow benchmark clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt setup.cfg
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python tools/fetch_speech_encoder.py
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/fashion_mnist_demo.py

# The default suite: everything not marked slow under TensorFlow, then under
# JAX and PyTorch the core: the tests whose outcome depends on the backend
# (training, saving, exporting); reading data and checking options run once.
# A worker per core (pytest-xdist), a test file per worker so that each
# module-scoped fixture (a trained run, an export) is built once.
PARALLEL := -n auto --dist loadfile
test: $(STAMP)
	KERAS_BACKEND=tensorflow $(PYTEST) $(PARALLEL) -m "not slow" tests
	KERAS_BACKEND=jax $(PYTEST) $(PARALLEL) -m "core and not slow" tests
	KERAS_BACKEND=torch $(PYTEST) $(PARALLEL) -m "core and not slow" tests

test-slow: $(STAMP)
	KERAS_BACKEND=tensorflow $(PYTEST) $(PARALLEL) -m slow tests

# Numbers go to benchmarks/results/*.json; export fidelity and serving use the demo's model;
# vs_hand_keras: keras_tl's default against the job written by hand, cached warm-up.
benchmark: $(STAMP)
	$(BIN)/python benchmarks/run.py
	test -f runs/fashion_mnist_demo/two_stage/model.keras || $(MAKE) demo
	$(BIN)/python benchmarks/export_fidelity.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/vs_hand_keras.py

clean:
	rm -rf $(VENV) build *.egg-info
