"""``cypool.show_config()``: what this build is and what it runs with."""

import platform
import sys

import numpy as np

from cypool import _threads
from cypool._version import __version__


def _runtime_library():
    """File name of the OpenMP runtime loaded in this process (Linux), or None."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                name = line.rsplit("/", 1)[-1].strip()
                if name.startswith(("libgomp", "libomp", "libiomp")):
                    return name
    except OSError:
        pass
    return None


def openmp_runtime():
    """A one-line description of the OpenMP support of this build."""
    if not _threads.HAVE_OPENMP:
        return "none (serial build)"
    library = _runtime_library() or "runtime library not identified"
    return f"OpenMP {_threads.openmp_version()} ({library})"


def config():
    """The build and runtime facts as a dict."""
    return {
        "cypool": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "compiler": _threads.compiler(),
        "openmp": openmp_runtime(),
        "num_threads": _threads.get_num_threads(),
    }


def show_config(file=None):
    """Print cypool's version, NumPy, compiler, OpenMP runtime and threads.

    Examples
    --------
    >>> import cypool
    >>> cypool.show_config()  # doctest: +ELLIPSIS
    cypool: ...
    """
    for key, value in config().items():
        print(f"{key}: {value}", file=file or sys.stdout)
