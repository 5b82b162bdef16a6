# cypool: `make` builds in place inside a project virtual environment (.venv).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.cypool-deps
BUILD_DEPS := "numpy>=2" "Cython>=3.0.8" "setuptools>=77" wheel
TEST_DEPS  := pytest hypothesis threadpoolctl

.PHONY: all build test test-torch demo bench clean

all: build

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(BUILD_DEPS) $(TEST_DEPS)
	touch $(STAMP)

build: $(STAMP)
	$(PY) setup.py --quiet build_ext --inplace --parallel 2

# The test-suite plus the docstring examples of the public modules.
test: build
	$(PY) -m pytest -q tests cypool --doctest-modules

# The PyTorch cross-checks: `make test` runs them too when torch is installed.
test-torch: build
	$(PIP) install --quiet torch==2.13.0
	$(PY) -m pytest -q tests/test_torch.py tests/test_reference.py

demo: build
	$(PY) -m cypool demo

bench: build
	$(PIP) install --quiet torch==2.13.0 matplotlib
	PYTHONPATH=. $(PY) benchmarks/bench.py

clean:
	rm -rf build dist *.egg-info .pytest_cache
	rm -f cypool/*.c cypool/*.so cypool/*.html
	find . -name __pycache__ -prune -exec rm -rf {} +
