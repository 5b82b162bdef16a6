"""Slow, obviously-correct NumPy reference for unpooling, fractional max
pooling and stochastic pooling.

Written from ``SPEC.md`` and PyTorch's documented algorithms (not from
cypool's kernels), for the tests to compare against.  Every function loops in
plain Python over planes, windows and taps; arrays are channels-first,
batched ``(N, C, *spatial)`` (unbatched ``(C, *spatial)`` is accepted where
noted).  Geometry helpers come from ``reference.py``.
"""

import itertools
import math

import numpy as np

from reference import _batched, _geometry, _lowest, _per_axis, _plane_offset

__all__ = [
    "unpool_output_size",
    "max_unpool",
    "max_unpool_backward",
    "fractional_intervals",
    "fractional_output_size",
    "fractional_max_pool",
    "positive_part",
    "stochastic_pool",
    "stochastic_pool_backward",
]


# --------------------------------------------------------------- unpooling

def unpool_output_size(spatial, nd, kernel_size, stride=None, padding=0, output_size=None):
    """PyTorch's ``_unpool_output_size``: default ``(in-1)*s + k - 2p`` per dim;
    a given ``output_size`` (spatial, or a full batched shape whose first two
    entries are dropped) must lie strictly within ``stride`` of it.

    Examples
    --------
    >>> unpool_output_size((3,), 1, 2)
    (6,)
    >>> unpool_output_size((3, 3), 2, 3, 2, 1, output_size=(1, 1, 6, 4))
    (6, 4)
    """
    kernel = _per_axis(kernel_size, nd, "kernel_size")
    stride = kernel if stride is None else _per_axis(stride, nd, "stride")
    padding = _per_axis(padding, nd, "padding")
    default = tuple((L - 1) * s + k - 2 * p for L, k, s, p in zip(spatial, kernel, stride, padding))
    if output_size is None:
        return default
    output_size = tuple(output_size)
    if len(output_size) == nd + 2:
        output_size = output_size[2:]
    if len(output_size) != nd:
        raise ValueError(f"output_size must have {nd} or {nd + 2} entries")
    for size, base, s in zip(output_size, default, stride):
        if not base - s < size < base + s:
            raise ValueError(f"output_size {output_size} outside ({base - s}, {base + s})")
    return output_size


def max_unpool(x, indices, nd, out_spatial):
    """Zero planes of ``out_spatial`` with ``x`` written at ``indices``.

    Elements are written one by one in scan order (row-major over each
    plane), so when two share an index the later one wins.

    Examples
    --------
    >>> max_unpool(np.array([[[5., 7., 9.]]]), np.array([[[1, 3, 1]]]), 1, (4,))
    array([[[0., 9., 0., 7.]]])
    """
    x, added_batch = _batched(x, nd)
    indices = np.asarray(indices).reshape(x.shape)
    plane = math.prod(out_spatial)
    out = np.zeros(x.shape[:2] + (plane,), dtype=x.dtype)
    for n, c in np.ndindex(*x.shape[:2]):
        for value, index in zip(x[n, c].ravel(), indices[n, c].ravel()):
            if not 0 <= index < plane:
                raise ValueError(f"index {index} outside the output plane of {plane}")
            out[n, c, index] = value
    out = out.reshape(x.shape[:2] + tuple(out_spatial))
    return out[0] if added_batch else out


def max_unpool_backward(grad_output, indices, nd):
    """``grad_input[i] = grad_output[indices[i]]`` inside each plane.

    Examples
    --------
    >>> max_unpool_backward(np.array([[[1., 2., 3., 4.]]]), np.array([[[1, 3, 1]]]), 1)
    array([[[2., 4., 2.]]])
    """
    grad_output, added_batch = _batched(grad_output, nd)
    indices = np.asarray(indices)
    if added_batch:
        indices = indices[np.newaxis]
    grad_input = np.empty(indices.shape, dtype=grad_output.dtype)
    for n, c in np.ndindex(*indices.shape[:2]):
        flat = grad_output[n, c].ravel()
        for position in np.ndindex(*indices.shape[2:]):
            grad_input[(n, c) + position] = flat[indices[(n, c) + position]]
    return grad_input[0] if added_batch else grad_input


# -------------------------------------------------------------- fractional

def fractional_intervals(u, in_size, out_size, kernel):
    """PyTorch's ``generate_intervals``: the window starts along one axis.

    ``u`` is a NumPy scalar; every operation runs in its dtype, one at a
    time, as the C++ template does with ``scalar_t``::

        alpha = (in - k) / (out - 1)
        start[i] = int((i + u) * alpha) - int(u * alpha)   for i < out - 1
        start[out - 1] = in - k

    Examples
    --------
    >>> fractional_intervals(np.float32(0.5), 5, 3, 2)
    [0, 2, 3]
    """
    kind = type(u)
    starts = []
    if out_size > 1:
        alpha = kind(in_size - kernel) / kind(out_size - 1)
        for i in range(out_size - 1):
            starts.append(int((kind(i) + u) * alpha) - int(u * alpha))
    starts.append(in_size - kernel)
    return starts


def fractional_output_size(spatial, nd, output_size=None, output_ratio=None):
    """``output_size`` per dim, or ``int(in * ratio)`` (PyTorch's rule)."""
    if output_size is not None:
        return _per_axis(output_size, nd, "output_size")
    ratios = (output_ratio,) * nd if np.isscalar(output_ratio) else tuple(output_ratio)
    return tuple(int(L * r) for L, r in zip(spatial, ratios))


# PyTorch's samples: (N, C, 2) ordered [W, H]; (N, C, 3) ordered [D, H, W].
_SAMPLE_COLUMNS = {2: (1, 0), 3: (0, 1, 2)}


def fractional_max_pool(x, nd, kernel_size, out_spatial, samples):
    """Fractional max pooling with flat indices.

    Parameters
    ----------
    x : array_like, shape (N, C, *spatial) or (C, *spatial)
    nd : int
        2 or 3.
    kernel_size : int or tuple of int
    out_spatial : tuple of int
    samples : ndarray, shape (N', C, nd), N' >= N
        In PyTorch's column order; the starts are computed in its dtype.

    Returns
    -------
    values, indices : ndarray

    Notes
    -----
    Each window starts from -inf (the integer minimum) with the index of its
    first element; a tap takes over when strictly larger or NaN.
    """
    x, added_batch = _batched(x, nd)
    spatial = x.shape[2:]
    kernel = _per_axis(kernel_size, nd, "kernel_size")
    is_float = np.issubdtype(x.dtype, np.floating)
    values = np.empty(x.shape[:2] + tuple(out_spatial), dtype=x.dtype)
    indices = np.empty(x.shape[:2] + tuple(out_spatial), dtype=np.int64)
    for n, c in np.ndindex(*x.shape[:2]):
        starts = [fractional_intervals(samples[n, c, _SAMPLE_COLUMNS[nd][axis]], spatial[axis],
                                       out_spatial[axis], kernel[axis]) for axis in range(nd)]
        for out_pos in np.ndindex(*out_spatial):
            first = [starts[axis][o] for axis, o in enumerate(out_pos)]
            best, best_index = _lowest(x.dtype), _plane_offset(first, spatial)
            for position in itertools.product(*[range(f, f + k) for f, k in zip(first, kernel)]):
                value = x[(n, c) + position]
                if value > best or (is_float and np.isnan(value)):
                    best, best_index = value, _plane_offset(position, spatial)
            values[(n, c) + out_pos] = best
            indices[(n, c) + out_pos] = best_index
    if added_batch:
        return values[0], indices[0]
    return values, indices


# -------------------------------------------------------------- stochastic

def positive_part(value):
    """``max(a, 0)`` as a Python float, NaN kept."""
    value = float(value)
    return 0.0 if value <= 0 else value


def _stochastic_windows(shape, nd, kernel_size, stride, padding):
    """Per output position: the in-bounds taps of its window in scan order."""
    (spatial, kernel, stride, pad_before, _pad_after, _dilation,
     out_spatial) = _geometry(shape, nd, kernel_size, stride, padding, 1, False)
    windows = {}
    for out_pos in np.ndindex(*out_spatial):
        axes = []
        for o, L, k, s, pb in zip(out_pos, spatial, kernel, stride, pad_before):
            axes.append([o * s - pb + j for j in range(k) if 0 <= o * s - pb + j < L])
        windows[out_pos] = list(itertools.product(*axes))
    return spatial, out_spatial, windows


def _result_dtype(dtype):
    return np.dtype(dtype) if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def stochastic_pool(x, nd, kernel_size, stride=None, padding=0, training=True, uniforms=None):
    """Stochastic pooling by looping over windows, sums in float64 in scan order.

    Parameters
    ----------
    x : array_like, shape (N, C, *spatial)
    nd, kernel_size, stride, padding
        As in ``max_pool``, dilation 1.
    training : bool
    uniforms : ndarray, shape (N, C, *out_spatial)
        One uniform in [0, 1) per output (training).

    Returns
    -------
    values : ndarray
    indices : ndarray of int64 or None (eval)

    Notes
    -----
    With ``a+ = max(a, 0)``, ``S`` and ``Q`` the sums of ``a+`` and ``a+**2``:
    training takes the first tap whose running sum of ``a+`` exceeds
    ``u * S`` or is not finite, returning its ``a+``; with none (``S = 0``)
    the value is 0 and the index the first tap.  Eval returns ``Q / S`` (0
    when ``S = 0``).

    Examples
    --------
    >>> v, i = stochastic_pool(np.array([[[0., 1., 3., 0.]]]), 1, 4, uniforms=np.array([[[0.5]]]))
    >>> v, i   # u*S = 2: running sums 0, 1, 4 -> the third element
    (array([[[3.]]]), array([[[2]]]))
    >>> stochastic_pool(np.array([[[0., 1., 3., 0.]]]), 1, 4, training=False)[0]
    array([[[2.5]]])
    """
    x = np.asarray(x)
    spatial, out_spatial, windows = _stochastic_windows(x.shape, nd, kernel_size, stride, padding)
    values = np.zeros(x.shape[:2] + out_spatial, dtype=np.float64)
    indices = np.zeros(x.shape[:2] + out_spatial, dtype=np.int64)
    for n, c in np.ndindex(*x.shape[:2]):
        for out_pos, taps in windows.items():
            parts = [positive_part(x[(n, c) + tap]) for tap in taps]
            total = squares = 0.0
            for a in parts:
                total += a
                squares += a * a
            where = (n, c) + out_pos
            if not training:
                values[where] = squares / total if total != 0 else 0.0
                continue
            threshold = float(uniforms[where]) * total
            running, chosen = 0.0, None
            for tap, a in zip(taps, parts):
                running += a
                if running > threshold or not math.isfinite(running):
                    chosen = (tap, a)
                    break
            tap, value = chosen if chosen is not None else (taps[0], 0.0)
            values[where] = value
            indices[where] = _plane_offset(tap, spatial)
    return values.astype(_result_dtype(x.dtype)), (indices if training else None)


def stochastic_pool_backward(grad_output, x, nd, kernel_size, stride=None, padding=0,
                             training=True, indices=None, mask_with_x=True):
    """Gradient of :func:`stochastic_pool`, accumulated in float64.

    Training: each output gradient is added at its sampled index, unless
    ``mask_with_x`` and the sampled element is not positive (the output was
    the constant 0).  Eval: element ``i`` of a window with ``S != 0`` gets
    ``grad * (2 a_i S - Q) / S**2`` where ``a_i > 0`` (or NaN), nothing where
    ``a_i <= 0``.
    """
    x = np.asarray(x)
    grad_output = np.asarray(grad_output)
    spatial, _out_spatial, windows = _stochastic_windows(x.shape, nd, kernel_size, stride,
                                                         padding)
    grad_input = np.zeros(x.shape, dtype=np.float64)
    for n, c in np.ndindex(*x.shape[:2]):
        for out_pos, taps in windows.items():
            grad = float(grad_output[(n, c) + out_pos])
            if training:
                offset = int(indices[(n, c) + out_pos])
                tap = np.unravel_index(offset, spatial)
                if not mask_with_x or positive_part(x[(n, c) + tap]) != 0:
                    grad_input[(n, c) + tap] += grad
                continue
            parts = [positive_part(x[(n, c) + tap]) for tap in taps]
            total = sum(parts)
            squares = sum(a * a for a in parts)
            if total == 0:
                continue
            for tap, a in zip(taps, parts):
                if a != 0:
                    grad_input[(n, c) + tap] += grad * (2 * a * total - squares) / (total * total)
    return grad_input.astype(_result_dtype(grad_output.dtype))
