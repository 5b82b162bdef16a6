# cython: language_level=3
"""Thread count and OpenMP facts.

``get_num_threads()`` is the number of threads a call uses when it is not
given ``num_threads``: ``set_num_threads(n)`` if it was called, capped by the
OpenMP limit of the calling thread (``OMP_NUM_THREADS``,
``threadpoolctl.threadpool_limits``), else that limit.
"""

import os

cimport numpy as cnp
from cython.parallel cimport prange
from libc.string cimport memcpy

cnp.import_array()

cdef extern from *:
    """
    #if CYPOOL_OPENMP
    #include <omp.h>
    #define CYPOOL_HAVE_OPENMP 1
    #else
    #define CYPOOL_HAVE_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    static void omp_set_num_threads(int n) { (void)n; }
    #endif
    #define CYPOOL_STR2(x) #x
    #define CYPOOL_STR(x) CYPOOL_STR2(x)
    #if defined(__clang__)
    #define CYPOOL_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
    #define CYPOOL_COMPILER "gcc " __VERSION__
    #elif defined(_MSC_VER)
    #define CYPOOL_COMPILER "MSVC " CYPOOL_STR(_MSC_VER)
    #else
    #define CYPOOL_COMPILER "unknown"
    #endif
    #if defined(_OPENMP)
    #define CYPOOL_OPENMP_VERSION _OPENMP
    #else
    #define CYPOOL_OPENMP_VERSION 0
    #endif
    """
    int CYPOOL_HAVE_OPENMP
    const char* CYPOOL_COMPILER
    long CYPOOL_OPENMP_VERSION
    int omp_get_max_threads() nogil
    void omp_set_num_threads(int n) nogil

cdef int _requested = 0
# Set in a child process created by fork(): GNU libgomp cannot start a
# thread team there once the parent has used one, so the child runs serially.
cdef bint _forked_child = False


def _after_fork_in_child():
    global _forked_child
    _forked_child = True


os.register_at_fork(after_in_child=_after_fork_in_child)

HAVE_OPENMP = bool(CYPOOL_HAVE_OPENMP)


def openmp_max_threads():
    """OpenMP's limit for the calling thread (1 without OpenMP)."""
    return omp_get_max_threads()


def set_num_threads(n):
    """Set the default number of threads of every later call (from any thread)."""
    global _requested
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"num_threads must be a positive int, got {n!r}")
    if n > 4096:
        raise ValueError(f"num_threads must be at most 4096, got {n!r}")
    _requested = n
    omp_set_num_threads(n)


def get_num_threads():
    """Threads a call uses by default (see the module docstring)."""
    cdef int limit = omp_get_max_threads()
    if _forked_child:
        return 1
    if _requested > 0 and _requested < limit:
        return _requested
    return limit


def effective_threads(n):
    """Threads for a call given ``num_threads=n`` (None: the default)."""
    if _forked_child or not CYPOOL_HAVE_OPENMP:
        return 1
    if n is None:
        return get_num_threads()
    return n


def in_forked_child():
    return _forked_child


def compiler():
    """The C compiler this module was built with."""
    return CYPOOL_COMPILER.decode()


def openmp_version():
    """The ``_OPENMP`` date this module was compiled against (0: serial build)."""
    return CYPOOL_OPENMP_VERSION


cdef enum:
    MAX_DIMS = 64   # NumPy's NPY_MAXDIMS is 32 (64 since NumPy 2)


def contiguous_copy(cnp.ndarray src, cnp.ndarray dst, int nthreads):
    """Copy ``src`` into the C-contiguous ``dst`` (same shape and itemsize) a
    row at a time, rows over ``nthreads`` threads; ``src``'s last axis must be
    contiguous (its rows are whole runs of bytes).  The facade's copy of a
    strided view (a crop, a slice): NumPy's copy runs on one thread, and a
    fresh result's pages are first touched there."""
    cdef int nd = cnp.PyArray_NDIM(src)
    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(src)
    cdef Py_ssize_t shape[MAX_DIMS]
    cdef Py_ssize_t strides[MAX_DIMS]
    cdef Py_ssize_t rows = 1, row_bytes, r, rest, offset
    cdef int a
    cdef char* s = <char*> cnp.PyArray_DATA(src)
    cdef char* d = <char*> cnp.PyArray_DATA(dst)
    if (nd < 1 or nd > MAX_DIMS or cnp.PyArray_NDIM(dst) != nd
            or cnp.PyArray_ITEMSIZE(dst) != itemsize or not cnp.PyArray_IS_C_CONTIGUOUS(dst)):
        raise ValueError("contiguous_copy needs a C-contiguous dst of src's itemsize")
    for a in range(nd):
        shape[a] = cnp.PyArray_DIM(src, a)
        strides[a] = cnp.PyArray_STRIDE(src, a)
        if cnp.PyArray_DIM(dst, a) != shape[a]:
            raise ValueError("contiguous_copy needs src and dst of one shape")
        if a < nd - 1:
            rows *= shape[a]
    row_bytes = shape[nd - 1] * itemsize
    if rows == 0 or row_bytes == 0:
        return  # (NumPy gives an empty array strides of 0)
    if strides[nd - 1] != itemsize:
        raise ValueError("contiguous_copy needs src rows of whole items (last stride = itemsize)")
    with nogil:
        for r in prange(rows, schedule='static', num_threads=nthreads if nthreads > 0 else 1):
            # the row's offset in src from its index over the leading axes
            offset = 0
            rest = r
            for a in range(nd - 2, -1, -1):
                offset = offset + (rest % shape[a]) * strides[a]
                rest = rest // shape[a]
            memcpy(d + r * row_bytes, s + offset, row_bytes)
