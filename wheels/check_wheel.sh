#!/usr/bin/env bash
# Check a cypool wheel the way a user gets it: installed into a fresh virtual
# environment in a temporary directory, with no C compiler on PATH and no access
# to the source tree, the test-suite run from a copy of tests/ -- once with the
# oldest NumPy this Python can install and once with the newest.
#
# Usage: wheels/check_wheel.sh [WHEEL]
#   WHEEL      default: the newest wheels/cypool-<version>-<this Python's tag>-*.whl
#   PYTHON     the interpreter to build the venv from (default python3)
#   OLD_NUMPY  the oldest NumPy to test (default: from the table below)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}

# The first NumPy release with wheels for each CPython, at or above cypool's floor (numpy>=1.23).
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
case "$pyver" in
    3.9|3.10) oldest=1.23.0 ;;
    3.11) oldest=1.23.2 ;;
    3.12) oldest=1.26.0 ;;
    3.13) oldest=2.1.0 ;;
    *) oldest="" ;;
esac
old_numpy=${OLD_NUMPY:-$oldest}
if [ -z "$old_numpy" ]; then
    echo "check_wheel: no oldest NumPy known for Python $pyver; set OLD_NUMPY" >&2
    exit 2
fi

if [ $# -ge 1 ]; then
    wheel=$(realpath "$1")
else
    version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/cypool/_version.py")
    tag=$("$python" -c 'import sys; v = "%d%d" % sys.version_info[:2]; print(f"cp{v}-cp{v}")')
    wheel=$(ls -t "$root"/wheels/cypool-"$version"-"$tag"-*.whl 2>/dev/null | head -n 1 || true)
fi
if [ -z "${wheel:-}" ] || [ ! -f "$wheel" ]; then
    echo "check_wheel: no wheel found (run make wheel first)" >&2
    exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/cypool-wheel-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$python" -m venv "$work/venv"
# What cibuildwheel's test-sources copies: tests/ and the files they read.
"$python" "$root/wheels/test_sources.py" | (cd "$root" && xargs cp -r -t "$work")
find "$work/tests" -name __pycache__ -prune -exec rm -rf {} +

# The venv's bin is the whole PATH: no cc, gcc or clang, and CC points nowhere,
# so anything that tried to compile would fail; pip takes binary wheels only.
bare=(env -u PYTHONPATH -u PYTHONHOME -u VIRTUAL_ENV
      PATH="$work/venv/bin" CC=/bin/false CXX=/bin/false
      PIP_ONLY_BINARY=:all: PYTHONNOUSERSITE=1 CYPOOL_EXPECT_WHEEL=1)
for compiler in cc gcc clang; do
    if "${bare[@]}" /bin/sh -c "command -v $compiler" >/dev/null 2>&1; then
        echo "check_wheel: $compiler is on the bare PATH" >&2
        exit 1
    fi
done

cd "$work"
pip_install() {
    "${bare[@]}" "$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}
run_suite() {
    echo "== cypool wheel $(basename "$wheel") with NumPy $1 =="
    "${bare[@]}" "$work/venv/bin/python" -m cypool config
    "${bare[@]}" "$work/venv/bin/python" -m pytest -q -p no:cacheprovider tests
}

pip_install "$wheel[test]" "numpy==$old_numpy"
run_suite "$old_numpy (oldest for Python $pyver)"

# The newest NumPy, and scikit-learn so its own vendored OpenMP runtime meets cypool's.
pip_install --upgrade numpy scikit-learn
run_suite "$("$work/venv/bin/python" -c 'import numpy; print(numpy.__version__)') (newest)"
