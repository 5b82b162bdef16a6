# cython: language_level=3
"""Thread count and OpenMP facts, and the facade's threaded copies and casts.

``get_num_threads()`` is the number of threads a call uses when it is not
given ``num_threads``: ``set_num_threads(n)`` if it was called, capped by the
OpenMP limit of the calling thread (``OMP_NUM_THREADS``,
``threadpoolctl.threadpool_limits``), else that limit.
"""

import os

cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

from cypool._dtypes cimport int_t

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
        for r in prange(rows, schedule='guided', num_threads=nthreads if nthreads > 0 else 1):
            # the row's offset in src from its index over the leading axes
            offset = 0
            rest = r
            for a in range(nd - 2, -1, -1):
                offset = offset + (rest % shape[a]) * strides[a]
                rest = rest // shape[a]
            memcpy(d + r * row_bytes, s + offset, row_bytes)


# ------------------------------------------------------------------ casts
#
# The facade's dtype conversions of large arrays (float16 computed in float32
# and back, integers averaged in float64) on the call's threads: NumPy casts on
# one thread, and float16 in software at about 3 ns a value on this machine.
# Both float16 casts give NumPy's bits: float16 -> float32 reads a table of
# all 65536 halves made by NumPy's own cast; float32 -> float16 rounds to
# nearest even as NumPy does (checked against NumPy for all 2**32 floats once;
# the tests compare every float32 exponent, the ties and NaNs).

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    /* float bits to half bits, rounding to nearest even; NaNs stay NaNs with
       the top of their payload and sign, infinities and overflows give the
       signed infinity, underflows a subnormal or the signed zero */
    static inline uint16_t cypool_float_to_half(float value)
    {
        uint32_t f, exp, sig, sign, shift;
        memcpy(&f, &value, 4);
        sign = (f >> 16) & 0x8000u;
        exp = f & 0x7f800000u;
        sig = f & 0x007fffffu;
        if (exp >= 0x47800000u) {               /* |value| >= 65536, inf or NaN */
            if (exp == 0x7f800000u && sig != 0) {
                uint32_t h = 0x7c00u + (sig >> 13);
                return (uint16_t) (sign + (h == 0x7c00u ? 0x7c01u : h));
            }
            return (uint16_t) (sign + 0x7c00u);
        }
        if (exp <= 0x38000000u) {               /* below the smallest normal half */
            if (exp < 0x33000000u)
                return (uint16_t) sign;
            shift = 113 - (exp >> 23);          /* 1 to 11 more than the usual 13 */
            sig += 0x00800000u;
            {
                uint32_t kept = sig >> shift;   /* 13 bits more than the half's */
                uint32_t lost = sig & ((1u << shift) - 1u);
                /* round half to even on the bit below the half's last */
                if ((kept & 0x3fffu) != 0x1000u || lost != 0)
                    kept += 0x1000u;
                return (uint16_t) (sign + (kept >> 13));
            }
        }
        if ((sig & 0x3fffu) != 0x1000u)
            sig += 0x1000u;
        return (uint16_t) (sign + (((exp - 0x38000000u) >> 13) + (sig >> 13)));
    }
    """
    uint16_t cypool_float_to_half(float value) nogil


def _half_floats():
    """float32 of every float16 bit pattern, by NumPy's own cast: a lookup in
    it is faster here than the arithmetic, which gcc leaves scalar."""
    import numpy as np
    halves = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    return np.ascontiguousarray(halves.astype(np.float32))


# made at import, so that no two threads ever make it
cdef object _half_table_owner = _half_floats()
cdef const float* _half_table = <const float*> cnp.PyArray_DATA(_half_table_owner)


cdef void _ints_to_double(const int_t* src, double* dst, Py_ssize_t n,
                          int nthreads) noexcept nogil:
    cdef Py_ssize_t i
    if nthreads > 1:
        for i in prange(n, schedule='guided', num_threads=nthreads):
            dst[i] = <double> src[i]
    else:
        for i in range(n):
            dst[i] = <double> src[i]


def cast_into(cnp.ndarray src, cnp.ndarray dst, int nthreads):
    """Cast ``src`` into ``dst`` (both C-contiguous and aligned, one shape) on
    ``nthreads`` threads, as NumPy's ``copyto(dst, src, casting="unsafe")``
    would: float16 to float32 and back, integers to float64.  Returns False,
    having done nothing, for any other pair or layout."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(src), i
    cdef int a = cnp.PyArray_TYPE(src), b = cnp.PyArray_TYPE(dst)
    cdef const float* table
    cdef const uint16_t* halves
    cdef float* floats
    cdef void* sp = cnp.PyArray_DATA(src)
    cdef void* dp = cnp.PyArray_DATA(dst)
    if (not cnp.PyArray_IS_C_CONTIGUOUS(src) or not cnp.PyArray_IS_C_CONTIGUOUS(dst)
            or not cnp.PyArray_ISALIGNED(src) or not cnp.PyArray_ISALIGNED(dst)
            or not cnp.PyArray_SAMESHAPE(src, dst) or not src.dtype.isnative
            or not dst.dtype.isnative):
        return False
    if nthreads < 1:
        nthreads = 1
    if a == cnp.NPY_FLOAT16 and b == cnp.NPY_FLOAT32:
        table = _half_table
        halves = <const uint16_t*> sp
        floats = <float*> dp
        with nogil:
            if nthreads > 1:
                for i in prange(n, schedule='guided', num_threads=nthreads):
                    floats[i] = table[halves[i]]
            else:
                for i in range(n):
                    floats[i] = table[halves[i]]
        return True
    if a == cnp.NPY_FLOAT32 and b == cnp.NPY_FLOAT16:
        floats = <float*> sp
        with nogil:
            if nthreads > 1:
                for i in prange(n, schedule='guided', num_threads=nthreads):
                    (<uint16_t*> dp)[i] = cypool_float_to_half(floats[i])
            else:
                for i in range(n):
                    (<uint16_t*> dp)[i] = cypool_float_to_half(floats[i])
        return True
    if b != cnp.NPY_FLOAT64 or not cnp.PyTypeNum_ISINTEGER(a):
        return False
    a = _sized_integer(src.dtype)
    with nogil:
        if a == 1:
            _ints_to_double(<const int8_t*> sp, <double*> dp, n, nthreads)
        elif a == 2:
            _ints_to_double(<const int16_t*> sp, <double*> dp, n, nthreads)
        elif a == 4:
            _ints_to_double(<const int32_t*> sp, <double*> dp, n, nthreads)
        elif a == 8:
            _ints_to_double(<const int64_t*> sp, <double*> dp, n, nthreads)
        elif a == -1:
            _ints_to_double(<const uint8_t*> sp, <double*> dp, n, nthreads)
        elif a == -2:
            _ints_to_double(<const uint16_t*> sp, <double*> dp, n, nthreads)
        elif a == -4:
            _ints_to_double(<const uint32_t*> sp, <double*> dp, n, nthreads)
        else:
            _ints_to_double(<const uint64_t*> sp, <double*> dp, n, nthreads)
    return True


cdef int _sized_integer(dtype):
    """An integer dtype's size in bytes, negative when unsigned."""
    return dtype.itemsize if dtype.kind == "i" else -dtype.itemsize
