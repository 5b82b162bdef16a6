# cython: language_level=3
"""Python-callable wrappers of the geometry helpers in ``_geometry.pxd``.

The facade uses :func:`output_size`; the tests use all of them.
"""

from cypool._geometry cimport (
    Axis, adaptive_end, adaptive_start, avg_bounds, max_taps, pool_out_size,
)


def output_size(Py_ssize_t in_size, Py_ssize_t kernel, Py_ssize_t stride,
                Py_ssize_t pad_before, Py_ssize_t pad_after, Py_ssize_t dilation,
                bint ceil_mode):
    """Output length along one axis (may be <= 0 for impossible geometry)."""
    return pool_out_size(in_size, kernel, stride, pad_before, pad_after,
                         dilation, ceil_mode)


cdef Axis _axis(Py_ssize_t in_size, Py_ssize_t kernel, Py_ssize_t stride,
                Py_ssize_t pad_before, Py_ssize_t pad_after, Py_ssize_t dilation):
    cdef Axis axis
    axis.in_size = in_size
    axis.out_size = 0
    axis.kernel = kernel
    axis.stride = stride
    axis.pad_before = pad_before
    axis.pad_after = pad_after
    axis.dilation = dilation
    return axis


def max_window(Py_ssize_t o, Py_ssize_t in_size, Py_ssize_t kernel, Py_ssize_t stride,
               Py_ssize_t pad_before, Py_ssize_t dilation):
    """``(first, count)``: first in-bounds position of max window ``o`` and its taps."""
    cdef Axis axis = _axis(in_size, kernel, stride, pad_before, 0, dilation)
    cdef Py_ssize_t first, count
    max_taps(&axis, o, &first, &count)
    return first, count


def avg_window(Py_ssize_t o, Py_ssize_t in_size, Py_ssize_t kernel, Py_ssize_t stride,
               Py_ssize_t pad_before, Py_ssize_t pad_after):
    """``(start, count, padded)`` of average window ``o``."""
    cdef Axis axis = _axis(in_size, kernel, stride, pad_before, pad_after, 1)
    cdef Py_ssize_t start, count, padded
    avg_bounds(&axis, o, &start, &count, &padded)
    return start, count, padded


def adaptive_window(Py_ssize_t i, Py_ssize_t in_size, Py_ssize_t out_size):
    """``(start, end)`` of adaptive window ``i``."""
    return adaptive_start(i, in_size, out_size), adaptive_end(i, in_size, out_size)
