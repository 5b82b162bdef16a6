"""cypool as a citizen of a process: its OpenMP runtime, threadpoolctl, fork, neighbours.

Also what a user gets from an installed wheel: the package (not a source tree),
the vendored runtime named by ``show_config()``, one version, and type stubs
that match the compiled modules.  Tests that depend on a fresh interpreter run
one in a subprocess, with a timeout so that a hang fails instead of stalling CI.
"""

import ast
import importlib
import importlib.machinery
import importlib.util
import inspect
import multiprocessing
import os
import re
import subprocess
import sys
import sysconfig
import textwrap
from importlib import metadata

import numpy as np
import pytest

import cypool
from cypool import _config, _threads

# Large enough that cypool uses a thread team (above its serial threshold).
BIG_SHAPE = (4, 16, 64, 64)
TIMEOUT = 120
PACKAGE_DIR = os.path.dirname(os.path.realpath(cypool.__file__))
# The checkout (or the copy of tests/, pyproject.toml and README.md a wheel check runs from).
PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

needs_openmp = pytest.mark.skipif(not _threads.HAVE_OPENMP, reason="serial build (no OpenMP)")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="counts threads in /proc/self/task")
in_wheel_check = pytest.mark.skipif(not os.environ.get("CYPOOL_EXPECT_WHEEL"),
                                    reason="set CYPOOL_EXPECT_WHEEL=1 to check an installed wheel")


def _big_input(seed=0):
    return np.random.default_rng(seed).standard_normal(BIG_SHAPE, dtype=np.float32)


def _pool_all(x, num_threads=None):
    """One threaded call of each kernel family the facade has had from the start."""
    y, idx = cypool.max_pool2d(x, 3, 2, 1, return_indices=True, num_threads=num_threads)
    a = cypool.avg_pool2d(x, 3, 2, 1, num_threads=num_threads)
    g = cypool.max_pool2d_backward(y, idx, x.shape, num_threads=num_threads)
    return y, idx, a, g


def _run_python(code, timeout=TIMEOUT):
    """Run ``code`` in a fresh interpreter that imports this same cypool; return its stdout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(PACKAGE_DIR)] + [p for p in [env.get("PYTHONPATH")] if p])
    try:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the subprocess hung for {timeout} s:\n{textwrap.dedent(code)}")
    assert done.returncode == 0, f"subprocess failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


# ------------------------------------------------------------ the installed wheel

@in_wheel_check
def test_imported_from_the_installed_wheel_not_a_source_tree():
    parts = PACKAGE_DIR.split(os.sep)
    assert "site-packages" in parts, PACKAGE_DIR
    assert not os.path.exists(os.path.join(os.path.dirname(PACKAGE_DIR), "setup.py"))
    assert _threads.HAVE_OPENMP, "a wheel must be built with OpenMP"


@in_wheel_check
@needs_openmp
def test_show_config_names_the_vendored_runtime():
    path = _config.runtime_library_path()
    assert path is not None and _config._is_vendored(path), path
    assert "vendored in the wheel" in _config.openmp_runtime()


def test_version_comes_from_one_place():
    from cypool._version import __version__
    assert cypool.__version__ == __version__ == _config.config()["cypool"]
    try:
        installed = metadata.version("cypool")
    except metadata.PackageNotFoundError:
        pytest.skip("cypool is not installed as a distribution (in-place build)")
    assert installed == __version__


def test_show_config_reports_every_fact(capsys):
    cypool.show_config()
    printed = capsys.readouterr().out
    for key in ("cypool", "numpy", "compiler", "openmp", "num_threads"):
        assert f"\n{key}: " in "\n" + printed
    assert f"numpy: {np.__version__}" in printed
    if not _threads.HAVE_OPENMP:
        assert "openmp: none (serial build)" in printed


# ------------------------------------------------------------------ threadpoolctl

@needs_openmp
def test_threadpool_info_lists_cypools_runtime():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    path = _config.runtime_library_path()
    assert path is not None
    found = [info for info in threadpoolctl.threadpool_info()
             if info["user_api"] == "openmp"
             and os.path.realpath(info["filepath"]) == os.path.realpath(path)]
    assert len(found) == 1, threadpoolctl.threadpool_info()


@needs_openmp
def test_threadpool_limits_one_makes_cypool_serial():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    x = _big_input()
    expected = _pool_all(x)
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert cypool.get_num_threads() == 1
        limited = _pool_all(x)
    assert cypool.get_num_threads() >= 1
    for want, got in zip(expected, limited):
        assert np.array_equal(want, got)


@needs_openmp
@linux_only
def test_threadpool_limits_one_starts_no_threads():
    """Observable: under the limit a fresh process gains no OS thread; without it, it does."""
    pytest.importorskip("threadpoolctl")
    out = _run_python(f"""
        import os
        import numpy as np
        import cypool
        from threadpoolctl import threadpool_limits

        def threads():
            return len(os.listdir("/proc/self/task"))

        x = np.random.default_rng(0).standard_normal({BIG_SHAPE}, dtype=np.float32)
        before = threads()
        with threadpool_limits(1, user_api="openmp"):
            default = cypool.get_num_threads()
            cypool.max_pool2d(x, 3, 2, 1)
            cypool.avg_pool2d(x, 3, 2, 1)
            limited = threads()
        cypool.max_pool2d(x, 3, 2, 1, num_threads=2)
        print(default, before, limited, threads())
    """)
    default, before, limited, unlimited = map(int, out.split())
    assert default == 1
    assert limited == before
    assert unlimited > before


# ------------------------------------------------------------------------- fork

def _work_in_forked_child(seed):
    x = _big_input(seed)
    serial = _pool_all(x, num_threads=1)
    threaded = _pool_all(x, num_threads=2)
    default = _pool_all(x)
    same = all(np.array_equal(a, b) and np.array_equal(a, c)
               for a, b, c in zip(serial, threaded, default))
    return same, cypool.get_num_threads(), _threads.in_forked_child(), float(default[2].sum())


@pytest.mark.skipif(sys.platform == "win32", reason="no fork on Windows")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_forked_children_work_after_parent_used_threads():
    # The parent starts a thread team first: GNU libgomp cannot start one in a forked child.
    parent = [_pool_all(_big_input(seed), num_threads=2) for seed in range(4)]
    assert not _threads.in_forked_child()
    pool = multiprocessing.get_context("fork").Pool(2)
    try:
        results = pool.map_async(_work_in_forked_child, range(4)).get(timeout=TIMEOUT)
    except multiprocessing.TimeoutError:
        pytest.fail(f"forked workers hung for {TIMEOUT} s after the parent used threads")
    finally:
        pool.terminate()
        pool.join()
    for (same, child_threads, forked, total), expected in zip(results, parent):
        assert same and forked and child_threads == 1
        assert total == pytest.approx(float(expected[2].sum()))
    # The parent keeps its threads.
    assert not _threads.in_forked_child()
    assert cypool.get_num_threads() >= 1


# ------------------------------------------------------------ neighbours in one process

_NEIGHBOUR_WORK = {
    "torch": """
        import torch
        torch.set_num_threads(2)
        t = torch.from_numpy(x)
        want = torch.nn.functional.max_pool2d(t, 3, 2, 1).numpy()
        assert np.array_equal(cypool.max_pool2d(x, 3, 2, 1, num_threads=2), want)
        want = torch.nn.functional.avg_pool2d(t, 3, 2, 1).numpy()
        np.testing.assert_allclose(cypool.avg_pool2d(x, 3, 2, 1, num_threads=2), want,
                                   rtol=1e-6, atol=1e-6)
    """,
    "sklearn": """
        from sklearn.cluster import KMeans
        points = x.reshape(-1, 64)[:2048].astype(np.float64)
        labels = KMeans(n_clusters=4, n_init=1, random_state=0).fit(points).labels_
        first = cypool.max_pool2d(x, 3, 2, 1, num_threads=2)
        again = KMeans(n_clusters=4, n_init=1, random_state=0).fit(points).labels_
        assert np.array_equal(labels, again)
        assert np.array_equal(first, cypool.max_pool2d(x, 3, 2, 1, num_threads=1))
    """,
}


@pytest.mark.parametrize("cypool_first", [True, False], ids=["cypool-first", "neighbour-first"])
@pytest.mark.parametrize("neighbour", ["torch", "sklearn"])
def test_loads_and_runs_beside(neighbour, cypool_first):
    if importlib.util.find_spec(neighbour) is None:
        pytest.skip(f"{neighbour} is not installed")
    imports = ["import cypool", f"import {neighbour}"]
    if not cypool_first:
        imports.reverse()
    out = _run_python("\n".join(imports) + "\n" + textwrap.dedent(f"""
        import numpy as np
        x = np.random.default_rng(0).standard_normal({BIG_SHAPE}, dtype=np.float32)
    """) + textwrap.dedent(_NEIGHBOUR_WORK[neighbour]) + textwrap.dedent("""
        from threadpoolctl import threadpool_info
        print(sum(info["user_api"] == "openmp" for info in threadpool_info()))
    """))
    assert int(out.split()[-1]) >= (1 if _threads.HAVE_OPENMP else 0)


# ----------------------------------------------------------------- free threading

@pytest.mark.skipif(not sysconfig.get_config_var("Py_GIL_DISABLED"),
                    reason="not a free-threaded Python")
def test_importing_cypool_keeps_the_gil_off():
    out = _run_python("import sys, cypool; print(sys._is_gil_enabled())")
    assert out.strip() == "False"


# ------------------------------------------------------------------------ typing

def _compiled_modules():
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return sorted({name.split(".")[0] for name in os.listdir(PACKAGE_DIR)
                   if name.endswith(suffixes)})


def _stub_functions(stub_path):
    """{name: [parameter names]} of the functions a ``.pyi`` declares."""
    with open(stub_path) as f:
        tree = ast.parse(f.read())
    return {node.name: [a.arg for a in node.args.args + node.args.kwonlyargs]
            for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_py_typed_is_shipped():
    assert os.path.exists(os.path.join(PACKAGE_DIR, "py.typed"))


@pytest.mark.parametrize("module_name", _compiled_modules())
def test_stub_matches_compiled_module(module_name):
    stub_path = os.path.join(PACKAGE_DIR, module_name + ".pyi")
    if not os.path.exists(stub_path):
        pytest.skip(f"no type stub yet for cypool.{module_name}")
    module = importlib.import_module(f"cypool.{module_name}")
    stubbed = _stub_functions(stub_path)
    compiled = {name: list(inspect.signature(obj).parameters)
                for name, obj in vars(module).items()
                if callable(obj) and not isinstance(obj, type) and not name.startswith("__")
                and getattr(obj, "__module__", None) == module.__name__}
    assert stubbed == compiled, f"update cypool/{module_name}.pyi to the compiled signatures"


# ------------------------------------------------------------------ the build list

def _readme_build_list():
    """Identifiers of the README's build table: a platform tag, then its CPython tags."""
    with open(os.path.join(PROJECT_DIR, "README.md"), encoding="utf-8") as f:
        section = f.read().split("## Building wheels", 1)[1].split("\n## ", 1)[0]
    listed = set()
    for line in section.splitlines():
        platform_tag, *pythons = line.split() or [""]
        if pythons and all(re.fullmatch(r"cp3\d+t?", tag) for tag in pythons):
            listed.update(f"{tag}-{platform_tag}" for tag in pythons)
    return listed


def test_readme_build_list_is_what_cibuildwheel_builds():
    pytest.importorskip("cibuildwheel")
    if not all(os.path.exists(os.path.join(PROJECT_DIR, name))
               for name in ("README.md", "pyproject.toml")):
        pytest.skip("needs the project's README.md and pyproject.toml")
    env = {key: value for key, value in os.environ.items() if not key.startswith("CIBW_")}
    built = set()
    for platform in ("linux", "macos", "windows"):
        done = subprocess.run(
            [sys.executable, "-m", "cibuildwheel", "--print-build-identifiers",
             "--platform", platform],
            cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert done.returncode == 0, done.stderr
        built.update(done.stdout.split())
    assert _readme_build_list() == built
