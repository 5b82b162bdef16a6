"""Build script for cypool's compiled kernels.

One extension module per kernel family.  OpenMP is detected by compiling a
small probe; without it the build still succeeds, serial, and says so.
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNEL_MODULES = ["_geometry", "_threads", "_memory", "_max", "_avg", "_adaptive", "_lp",
                  "_unpool", "_fractional", "_stochastic"]

CYTHON_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "embedsignature": True,
    # No module state needs the GIL, so free-threaded CPython keeps it off (Cython >= 3.1).
    "freethreading_compatible": True,
}

_PROBE = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return omp_get_max_threads() > 0 && n > 0 ? 0 : 1;
}
"""


def _openmp_flags(compiler):
    """Return (compile_args, link_args) for OpenMP, or None if the compiler has none."""
    if os.environ.get("CYPOOL_DISABLE_OPENMP"):
        return None
    if sys.platform == "win32":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    include_args, lib_args = _openmp_prefix_args()
    candidates = [(include_args + compile_args, lib_args + link_args)
                  for compile_args, link_args in candidates]
    for compile_args, link_args in candidates:
        if _probe_compiles(compiler, compile_args, link_args):
            return compile_args, link_args
    return None


def _openmp_prefix_args():
    """-I/-L flags for an OpenMP runtime outside the compiler's search path.

    ``CYPOOL_OPENMP_PREFIX`` names its install prefix, e.g. Homebrew's keg-only
    libomp on macOS (``$(brew --prefix libomp)``), which clang does not search.
    """
    prefix = os.environ.get("CYPOOL_OPENMP_PREFIX")
    if not prefix or sys.platform == "win32":
        return [], []
    return [f"-I{os.path.join(prefix, 'include')}"], [f"-L{os.path.join(prefix, 'lib')}"]


def _probe_compiles(compiler, compile_args, link_args):
    tmp = tempfile.mkdtemp(prefix="cypool-omp-")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(_PROBE)
        devnull = open(os.devnull, "w")
        try:
            objects = compiler.compile([src], output_dir=tmp, extra_postargs=compile_args)
            compiler.link_executable(objects, "probe", output_dir=tmp, extra_postargs=link_args)
        except Exception:
            return False
        finally:
            devnull.close()
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    """build_ext that adds OpenMP flags when the compiler supports them."""

    def finalize_options(self):
        super().finalize_options()
        # The modules are independent: compile them side by side (pip and build pass no --parallel).
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        flags = _openmp_flags(self.compiler)
        if flags is None and os.environ.get("CYPOOL_REQUIRE_OPENMP"):
            # Wheel builds set this: a serial wheel would be a silent regression.
            raise RuntimeError("cypool: CYPOOL_REQUIRE_OPENMP is set but the C compiler has no OpenMP")
        if flags is None:
            sys.stderr.write(
                "\n*** cypool: WARNING: no OpenMP support found in the C compiler; "
                "building SERIAL kernels (every call runs on one thread). ***\n\n"
            )
            macros = [("CYPOOL_OPENMP", "0")]
            compile_args, link_args = [], []
        else:
            macros = [("CYPOOL_OPENMP", "1")]
            compile_args, link_args = flags
        for ext in self.extensions:
            ext.define_macros.extend(macros)
            ext.extra_compile_args.extend(compile_args)
            ext.extra_link_args.extend(link_args)
        super().build_extensions()


def _base_compile_args():
    if sys.platform == "win32":
        return ["/O2"]
    args = ["-O3", "-fno-math-errno", "-Wno-unused-function"]
    if os.environ.get("CYPOOL_OPT_REPORT"):
        args.append("-fopt-info-vec-optimized")
    return args


def _extensions():
    exts = []
    for name in KERNEL_MODULES:
        exts.append(
            Extension(
                f"cypool.{name}",
                [os.path.join("cypool", f"{name}.pyx")],
                include_dirs=[np.get_include(), "cypool"],
                depends=glob.glob(os.path.join("cypool", "*.h")),
                # Built against NumPy 2, loadable by NumPy 1.23+ (the runtime floor), whatever
                # default a newer NumPy's headers pick.
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                               ("NPY_TARGET_VERSION", "NPY_1_23_API_VERSION")],
                extra_compile_args=_base_compile_args(),
            )
        )
    return cythonize(exts, compiler_directives=CYTHON_DIRECTIVES, include_path=["cypool"])


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
