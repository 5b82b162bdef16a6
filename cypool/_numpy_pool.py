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


# --------------------------------------------------- the rest of the family

def _spatial_axes(nd):
    return tuple(range(2, 2 + nd))


def _plane_offsets(coords, spatial):
    """Flat in-plane offsets of per-axis coordinate arrays."""
    offset = np.zeros(np.broadcast(*coords).shape, dtype=np.int64)
    for coord, size in zip(coords, spatial):
        offset = offset * size + coord
    return offset


def adaptive_pool(x, nd, output_size, reduce):
    """Adaptive max (``reduce='max'``, with indices) or average pooling."""
    out_spatial = _tuple(output_size, nd)
    spatial = x.shape[2:]
    values = np.empty(x.shape[:2] + out_spatial, dtype=x.dtype)
    indices = np.empty(values.shape, dtype=np.int64) if reduce == "max" else None
    for position in np.ndindex(*out_spatial):
        bounds = [((i * n) // o, -((-(i + 1) * n) // o)) for i, n, o in
                  zip(position, spatial, out_spatial)]
        window = x[(Ellipsis,) + tuple(slice(a, b) for a, b in bounds)]
        flat = window.reshape(x.shape[:2] + (-1,))
        if reduce == "max":
            arg = flat.argmax(axis=-1)
            values[(Ellipsis,) + position] = np.take_along_axis(flat, arg[..., None], -1)[..., 0]
            local = np.unravel_index(arg, window.shape[2:])
            indices[(Ellipsis,) + position] = _plane_offsets(
                [c + a for c, (a, _) in zip(local, bounds)], spatial)
        else:
            values[(Ellipsis,) + position] = flat.mean(axis=-1, dtype=x.dtype)
    return (values, indices) if reduce == "max" else values


def adaptive_avg_pool_backward(grad_output, input_shape, nd):
    out_spatial = grad_output.shape[2:]
    spatial = tuple(input_shape[2:])
    grad = np.zeros(input_shape, dtype=grad_output.dtype)
    for position in np.ndindex(*out_spatial):
        bounds = [((i * n) // o, -((-(i + 1) * n) // o)) for i, n, o in
                  zip(position, spatial, out_spatial)]
        count = np.prod([b - a for a, b in bounds])
        target = (Ellipsis,) + tuple(slice(a, b) for a, b in bounds)
        grad[target] += (grad_output[(Ellipsis,) + position] / count)[(...,) + (None,) * nd]
    return grad


def lp_pool(x, nd, norm_type, kernel, stride=None):
    """PyTorch's definition: (kernel numel * mean of x**p) ** (1/p), sign-safe."""
    total = avg_pool(x ** norm_type, nd, kernel, stride) * np.prod(_tuple(kernel, nd))
    return (np.sign(total) * np.maximum(np.abs(total), 0)) ** (1.0 / norm_type)


def max_unpool(x, indices, output_spatial):
    planes = x.shape[:2]
    out = np.zeros(planes + (int(np.prod(output_spatial)),), dtype=x.dtype)
    np.put_along_axis(out, indices.reshape(planes + (-1,)), x.reshape(planes + (-1,)), axis=-1)
    return out.reshape(planes + tuple(output_spatial))


def max_unpool_backward(grad_output, indices):
    planes = grad_output.shape[:2]
    flat = grad_output.reshape(planes + (-1,))
    return np.take_along_axis(flat, indices.reshape(planes + (-1,)), axis=-1).reshape(indices.shape)


def fractional_starts(in_size, out_size, kernel, sample):
    """Graham's pseudo-random window starts, computed as PyTorch does (in the
    sample's float type)."""
    sample = np.asarray(sample)
    if out_size == 1:
        return np.array([in_size - kernel])
    alpha = sample.dtype.type(in_size - kernel) / sample.dtype.type(out_size - 1)
    steps = np.arange(out_size - 1, dtype=sample.dtype)
    starts = ((steps + sample) * alpha).astype(np.int64) - np.int64(sample * alpha)
    return np.append(starts, in_size - kernel)


def fractional_max_pool2d(x, kernel, output_size, samples):
    """``samples`` is PyTorch's ``(N, C, 2)`` array, ``[W, H]`` order."""
    kh, kw = _tuple(kernel, 2)
    oh, ow = _tuple(output_size, 2)
    n, c, height, width = x.shape
    values = np.empty((n, c, oh, ow), dtype=x.dtype)
    indices = np.empty((n, c, oh, ow), dtype=np.int64)
    for b, ch in np.ndindex(n, c):
        rows = fractional_starts(height, oh, kh, samples[b, ch, 1])
        cols = fractional_starts(width, ow, kw, samples[b, ch, 0])
        view = sliding_window_view(x[b, ch], (kh, kw))[np.ix_(rows, cols)]
        flat = view.reshape(oh, ow, -1)
        arg = flat.argmax(axis=-1)
        values[b, ch] = np.take_along_axis(flat, arg[..., None], -1)[..., 0]
        indices[b, ch] = (rows[:, None] + arg // kw) * width + cols[None, :] + arg % kw
    return values, indices


def stochastic_pool_eval(x, nd, kernel, stride=None):
    """Zeiler & Fergus inference: sum(a**2) / sum(a) over each window, a = max(x, 0)."""
    view, *_ = _windows(np.maximum(x, 0), nd, kernel, stride, 0, 1, 0)
    axes = tuple(range(-nd, 0))
    total = view.sum(axis=axes, dtype=x.dtype)
    squares = (view * view).sum(axis=axes, dtype=x.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, squares / np.where(total > 0, total, 1), 0).astype(x.dtype)
