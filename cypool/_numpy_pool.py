"""Pooling as a NumPy user writes it without cypool: the demo's baseline.

Vectorised NumPy (``sliding_window_view``, ``np.pad``, ``np.add.at``), the
usual code of hand-written NumPy networks, for channels-first batched arrays,
floor mode and symmetric padding.  It is what ``python -m cypool demo`` and
the examples time cypool against, and it is checked against cypool there.
"""

import itertools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _tuple(value, nd):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * nd


def _windows(x, nd, kernel, stride, padding, dilation, fill):
    """Padded windows view ``(N, C, *out, *kernel)``."""
    kernel, stride = _tuple(kernel, nd), _tuple(stride or kernel, nd)
    padding, dilation = _tuple(padding, nd), _tuple(dilation, nd)
    if any(padding):
        x = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in padding], constant_values=fill)
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    view = sliding_window_view(x, span, axis=tuple(range(2, 2 + nd)))
    pick = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)
    pick += tuple(slice(None, None, d) for d in dilation)
    return view[pick], kernel, stride, padding, dilation


def max_pool(x, nd, kernel, stride=None, padding=0, dilation=1):
    """``(values, indices)``; indices are flat offsets in each input plane."""
    view, kernel, stride, padding, dilation = _windows(x, nd, kernel, stride, padding,
                                                       dilation, -np.inf)
    out_spatial = view.shape[2:2 + nd]
    flat = view.reshape(view.shape[:2 + nd] + (-1,))
    arg = flat.argmax(axis=-1)
    values = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    taps = np.unravel_index(arg, kernel)
    spatial = x.shape[2:]
    offset = np.zeros(arg.shape, dtype=np.int64)
    for axis in range(nd):
        grid_shape = [1] * (2 + nd)
        grid_shape[2 + axis] = out_spatial[axis]
        start = (np.arange(out_spatial[axis]) * stride[axis] - padding[axis]).reshape(grid_shape)
        offset = offset * spatial[axis] + start + taps[axis] * dilation[axis]
    return values, offset


def max_pool_backward(grad_output, indices, input_shape):
    planes = int(np.prod(input_shape[:2]))
    plane = int(np.prod(input_shape[2:]))
    grad_input = np.zeros(planes * plane, dtype=grad_output.dtype)
    base = (np.arange(planes, dtype=np.int64) * plane).reshape(input_shape[:2] + (1,) * (len(input_shape) - 2))
    np.add.at(grad_input, (indices + base).ravel(), grad_output.ravel())
    return grad_input.reshape(input_shape)


def avg_pool(x, nd, kernel, stride=None, padding=0):
    """Average including the zero padding (PyTorch's default divisor)."""
    view, kernel, _, _, _ = _windows(x, nd, kernel, stride, padding, 1, 0)
    return view.mean(axis=tuple(range(-nd, 0)), dtype=x.dtype)


def avg_pool_backward(grad_output, input_shape, nd, kernel, stride=None, padding=0):
    kernel, stride, padding = _tuple(kernel, nd), _tuple(stride or kernel, nd), _tuple(padding, nd)
    padded = tuple(n + 2 * p for n, p in zip(input_shape[2:], padding))
    grad = np.zeros(tuple(input_shape[:2]) + padded, dtype=grad_output.dtype)
    share = grad_output / np.prod(kernel)
    out = grad_output.shape[2:]
    for taps in itertools.product(*(range(k) for k in kernel)):
        target = (slice(None), slice(None)) + tuple(
            slice(t, t + s * (o - 1) + 1, s) for t, s, o in zip(taps, stride, out))
        grad[target] += share
    crop = (slice(None), slice(None)) + tuple(slice(p, p + n) for p, n in zip(padding, input_shape[2:]))
    return grad[crop]
