#!/usr/bin/env bash
# Check that the sdist builds where the compiler has no OpenMP: the build warns
# and makes serial kernels, show_config() says so, and the tests pass.  The
# machine without OpenMP is simulated with CYPOOL_DISABLE_OPENMP=1, which takes
# the same path in setup.py as a failed OpenMP probe.
#
# Usage: wheels/check_sdist.sh [SDIST]   (default: wheels/cypool-<version>.tar.gz)
#   PYTHON  the interpreter to build and test with (default python3)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/cypool/_version.py")
sdist=$(realpath "${1:-$root/wheels/cypool-$version.tar.gz}")

work=$(mktemp -d "${TMPDIR:-/tmp}/cypool-sdist-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -xzf "$sdist" -C "$work"
# What cibuildwheel's test-sources copies: tests/ and the files they read.
"$python" "$root/wheels/test_sources.py" | (cd "$root" && xargs cp -r -t "$work")
find "$work/tests" -name __pycache__ -prune -exec rm -rf {} +

echo "== building $(basename "$sdist") without OpenMP =="
CYPOOL_DISABLE_OPENMP=1 "$python" -m build --wheel --outdir "$work/dist" "$work/cypool-$version" \
    > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
grep -F "building SERIAL kernels" "$work/build.log"

"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "$(ls "$work"/dist/cypool-*.whl)[test]"
cd "$work"
"$work/venv/bin/python" -m cypool config | tee "$work/config.txt"
grep -Fx "openmp: none (serial build)" "$work/config.txt"
grep -Fx "num_threads: 1" "$work/config.txt"
env -u PYTHONPATH "$work/venv/bin/python" -m pytest -q -p no:cacheprovider \
    tests/test_process.py tests/test_pool.py
