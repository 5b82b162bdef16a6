"""``cypool.show_config()``: what this build is and what it runs with."""

import ctypes
import os
import platform
import sys

import numpy as np

from cypool import _memory, _threads
from cypool._version import __version__

# The ``_OPENMP`` macro is a release date; users know the version number.
_OPENMP_VERSIONS = {
    200505: "2.5", 200805: "3.0", 201107: "3.1", 201307: "4.0", 201511: "4.5",
    201811: "5.0", 202011: "5.1", 202111: "5.2", 202411: "6.0",
}


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _posix_runtime_path():
    # dlsym on the kernel module's own handle resolves omp_* the way its calls do,
    # so this names the runtime cypool uses even when torch or scikit-learn load another.
    kernels = ctypes.CDLL(_threads.__file__)
    address = ctypes.cast(kernels.omp_get_max_threads, ctypes.c_void_p).value
    process = ctypes.CDLL(None)
    process.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    info = _DlInfo()
    if not process.dladdr(address, ctypes.byref(info)) or not info.dli_fname:
        return None
    return os.path.realpath(os.fsdecode(info.dli_fname))


def _windows_runtime_path():
    # delvewheel renames the vendored vcomp140.dll (vcomp140-<hash>.dll): list loaded modules.
    from ctypes import wintypes
    kernel32, psapi = ctypes.WinDLL("kernel32"), ctypes.WinDLL("psapi")
    kernel32.GetCurrentProcess.restype = wintypes.HANDLE
    kernel32.GetModuleFileNameW.argtypes = [wintypes.HMODULE, ctypes.c_wchar_p, wintypes.DWORD]
    psapi.EnumProcessModulesEx.argtypes = [wintypes.HANDLE, ctypes.POINTER(wintypes.HMODULE),
                                           wintypes.DWORD, ctypes.POINTER(wintypes.DWORD),
                                           wintypes.DWORD]
    modules = (wintypes.HMODULE * 4096)()
    needed = wintypes.DWORD()
    list_modules_all = 3
    if not psapi.EnumProcessModulesEx(kernel32.GetCurrentProcess(), modules,
                                      ctypes.sizeof(modules), ctypes.byref(needed),
                                      list_modules_all):
        return None
    path = ctypes.create_unicode_buffer(32768)
    runtimes = []
    for module in modules[:needed.value // ctypes.sizeof(wintypes.HMODULE)]:
        if (kernel32.GetModuleFileNameW(module, path, len(path))
                and os.path.basename(path.value).lower().startswith("vcomp")):
            runtimes.append(path.value)
    vendored = [runtime for runtime in runtimes if _is_vendored(runtime)]
    return (vendored or runtimes or [None])[0]


def runtime_library_path():
    """Path of the OpenMP runtime library cypool's kernels call, or None.

    Examples
    --------
    >>> from cypool import _config
    >>> path = _config.runtime_library_path()
    >>> path is None or "omp" in os.path.basename(path).lower()
    True
    """
    if not _threads.HAVE_OPENMP:
        return None
    try:
        if sys.platform == "win32":
            return _windows_runtime_path()
        return _posix_runtime_path()
    except (OSError, AttributeError, ValueError):
        return None


def _is_vendored(path):
    """True for a runtime a wheel repair tool copied in beside the package."""
    package_dir = os.path.dirname(os.path.realpath(__file__))
    site_dir = os.path.dirname(package_dir)
    bundles = (os.path.join(site_dir, "cypool.libs"), os.path.join(package_dir, ".dylibs"))
    return os.path.dirname(os.path.realpath(path)) in bundles


def openmp_runtime():
    """A one-line description of the OpenMP support of this build.

    Examples
    --------
    >>> from cypool import _config
    >>> _config.openmp_runtime()  # doctest: +ELLIPSIS
    '...'
    """
    if not _threads.HAVE_OPENMP:
        return "none (serial build)"
    date = _threads.openmp_version()
    version = f"OpenMP {_OPENMP_VERSIONS.get(date, date)}"
    path = runtime_library_path()
    if path is None:
        return f"{version} (runtime library not identified)"
    origin = "vendored in the wheel" if _is_vendored(path) else path
    return f"{version} ({os.path.basename(path)}, {origin})"


def config():
    """The build and runtime facts as a dict.

    Examples
    --------
    >>> from cypool import _config
    >>> sorted(_config.config())
    ['compiler', 'cypool', 'num_threads', 'numpy', 'openmp', 'platform', 'python', 'result_cache']
    """
    return {
        "cypool": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "compiler": _threads.compiler(),
        "openmp": openmp_runtime(),
        "num_threads": _threads.get_num_threads(),
        "result_cache": "{} MiB, holding {} MiB".format(
            *(round(n / 2**20, 1) for n in _memory.get_result_cache())),
    }


def show_config(file=None):
    """Print cypool's version, NumPy, compiler, OpenMP runtime and threads.

    Parameters
    ----------
    file : file-like, optional
        Where to print; standard output by default.

    Examples
    --------
    >>> import cypool
    >>> cypool.show_config()  # doctest: +ELLIPSIS
    cypool: ...
    """
    for key, value in config().items():
        print(f"{key}: {value}", file=file or sys.stdout)
