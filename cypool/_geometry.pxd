# cython: language_level=3
"""Window geometry shared by every kernel: one definition of each rule.

Every helper is a ``cdef inline ... noexcept nogil`` function on
``Py_ssize_t`` values; ``_geometry.pyx`` gives each a one-line ``def`` wrapper
so the tests can check it with tables of cases.

Conventions along one spatial axis (PyTorch's):

==================  =====================================================
window ``o`` starts  ``o * stride - pad_before``
tap ``j`` reads      ``start + j * dilation`` for ``0 <= j < kernel``
valid tap            ``0 <= start + j * dilation < in_size`` (padding is
                     never read)
output size          ``floor((L + pb + pa - d*(k-1) - 1 + (s-1 if ceil)) / s) + 1``,
                     and in ceil mode the last window is dropped when it
                     would start at or past ``L + pb``
avg divisor extent   the window clipped to ``[-pb, L + pa)`` (padding
                     counts, the ceil-mode overhang does not)
adaptive window      ``[floor(i*L/out), ceil((i+1)*L/out))``
==================  =====================================================

Callers keep every parameter below 2**31, sizes below 2**62 and, for adaptive
windows, ``in_size * out_size`` below 2**63 (the argument module checks), so no
product here overflows 64 bits.
"""


cdef struct Axis:
    Py_ssize_t in_size
    Py_ssize_t out_size
    Py_ssize_t kernel
    Py_ssize_t stride
    Py_ssize_t pad_before
    Py_ssize_t pad_after
    Py_ssize_t dilation


cdef inline Py_ssize_t floor_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Floor division for ``b > 0`` (C division truncates toward zero)."""
    cdef Py_ssize_t q = a // b
    if (a % b != 0) and (a < 0):
        q -= 1
    return q


cdef inline Py_ssize_t ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Ceiling division for ``b > 0``."""
    return -floor_div(-a, b)


cdef inline Py_ssize_t pool_out_size(Py_ssize_t in_size, Py_ssize_t kernel,
                                     Py_ssize_t stride, Py_ssize_t pad_before,
                                     Py_ssize_t pad_after, Py_ssize_t dilation,
                                     bint ceil_mode) noexcept nogil:
    """Output length along one axis; may be <= 0, which callers reject."""
    cdef Py_ssize_t span = dilation * (kernel - 1) + 1
    cdef Py_ssize_t numer = in_size + pad_before + pad_after - span
    if ceil_mode:
        numer += stride - 1
    cdef Py_ssize_t out = floor_div(numer, stride) + 1
    # Ceil mode may not start a window in the right padding or past it.
    if ceil_mode and out > 0 and (out - 1) * stride >= in_size + pad_before:
        out -= 1
    return out


cdef inline void max_taps(const Axis* axis, Py_ssize_t o, Py_ssize_t* first,
                          Py_ssize_t* count) noexcept nogil:
    """First in-bounds input position of window ``o`` and its number of taps.

    Taps are ``first + t * dilation`` for ``0 <= t < count``.  A window with
    no in-bounds tap gets ``count = 0`` and the position PyTorch reports for it.
    """
    cdef Py_ssize_t start = o * axis.stride - axis.pad_before
    cdef Py_ssize_t d = axis.dilation
    cdef Py_ssize_t j_first = 0
    cdef Py_ssize_t j_end = axis.kernel
    if start < 0:
        j_first = ceil_div(-start, d)
    if start + (j_end - 1) * d >= axis.in_size:
        j_end = ceil_div(axis.in_size - start, d)
    first[0] = start + j_first * d
    count[0] = j_end - j_first if j_end > j_first else 0


cdef inline void avg_bounds(const Axis* axis, Py_ssize_t o, Py_ssize_t* start,
                            Py_ssize_t* count, Py_ssize_t* padded) noexcept nogil:
    """In-bounds start and length of window ``o``, and its padded extent.

    ``padded`` is the window clipped to ``[-pad_before, in_size + pad_after)``:
    the divisor factor when ``count_include_pad`` is true.
    """
    cdef Py_ssize_t lo = o * axis.stride - axis.pad_before
    cdef Py_ssize_t hi = lo + axis.kernel
    if hi > axis.in_size + axis.pad_after:
        hi = axis.in_size + axis.pad_after
    padded[0] = hi - lo
    if lo < 0:
        lo = 0
    if hi > axis.in_size:
        hi = axis.in_size
    start[0] = lo
    count[0] = hi - lo if hi > lo else 0


cdef inline Py_ssize_t adaptive_start(Py_ssize_t i, Py_ssize_t in_size,
                                      Py_ssize_t out_size) noexcept nogil:
    """``floor(i * in_size / out_size)``, exact while ``in_size * out_size < 2**63``."""
    return (i // out_size) * in_size + ((i % out_size) * in_size) // out_size


cdef inline Py_ssize_t adaptive_end(Py_ssize_t i, Py_ssize_t in_size,
                                    Py_ssize_t out_size) noexcept nogil:
    """``ceil((i + 1) * in_size / out_size)``, exact while ``in_size * out_size < 2**63``."""
    cdef Py_ssize_t j = i + 1
    return (j // out_size) * in_size + ceil_div((j % out_size) * in_size, out_size)
