"""Slow, obviously-correct NumPy reference for adaptive, global and LP pooling.

Written from ``SPEC.md`` (and, for LP pooling, from PyTorch's definition of
``lp_poolNd`` in ``torch/nn/functional.py``), for the tests to compare cypool
against.  Like ``reference.py``, whose helpers it reuses: every function loops
in plain Python over output positions; only the ``(N, C)`` planes are handled
together as NumPy arrays.  Arrays are channels-first, ``(N, C, *spatial)`` or
unbatched ``(C, *spatial)``.

Rules
-----
==========================  ============================================
adaptive window ``i``       ``[floor(i*L/O), ceil((i+1)*L/O))`` along an
                            axis of input size ``L``, output size ``O``
adaptive average            the window's mean (in float64)
adaptive / global max       max pooling's rule: start at -inf (the integer
                            minimum), a value takes over when strictly
                            greater or NaN; flat index in the plane
global pooling              one window: the whole plane (all spatial dims)
LP, finite ``p``            ``(mean(x**p over the n in-bounds elements) * K)
                            ** (1/p)`` with ``K`` the kernel's element count
                            (PyTorch's formula; ``= (sum x**p) ** (1/p)`` for
                            a full window); powers as ``torch.pow`` takes
                            them (``0.5`` is ``sqrt``, ``-0.5`` ``1/sqrt``)
LP, ``p = inf``             max of ``|x|`` with max pooling's rule
==========================  ============================================
"""

import itertools
import math

import numpy as np

from reference import _batched, _geometry, _lowest, _plane_offset, max_pool_backward

__all__ = [
    "adaptive_windows",
    "adaptive_avg_pool",
    "adaptive_avg_pool_backward",
    "adaptive_max_pool",
    "adaptive_max_pool_backward",
    "global_avg_pool",
    "global_avg_pool_backward",
    "global_max_pool",
    "global_max_pool_backward",
    "lp_pool",
    "lp_pool_backward",
]


# ------------------------------------------------------------------ adaptive

def adaptive_windows(L, O):
    """``[(start, end), ...]`` of the ``O`` adaptive windows over length ``L``.

    Examples
    --------
    >>> adaptive_windows(5, 3)
    [(0, 2), (1, 4), (3, 5)]
    >>> adaptive_windows(2, 4)
    [(0, 1), (0, 1), (1, 2), (1, 2)]
    """
    return [((i * L) // O, -((-(i + 1) * L) // O)) for i in range(O)]


def _output_sizes(output_size, spatial):
    """An int or a tuple with None entries (keep that input size) as a tuple."""
    if isinstance(output_size, (int, np.integer)):
        return (int(output_size),) * len(spatial)
    return tuple(L if o is None else int(o) for o, L in zip(output_size, spatial))


def _window_slices(spatial, out_spatial, out_pos):
    return tuple(slice(*adaptive_windows(L, O)[o])
                 for L, O, o in zip(spatial, out_spatial, out_pos))


def _is_float(dtype):
    return np.issubdtype(dtype, np.floating)


def _float_result(dtype):
    """Averages keep float dtypes and give float64 for integers."""
    return dtype if _is_float(dtype) else np.dtype(np.float64)


def adaptive_avg_pool(x, nd, output_size):
    """Mean of every adaptive window, summed in float64.

    Examples
    --------
    >>> adaptive_avg_pool(np.arange(5.0).reshape(1, 1, 5), 1, 3)
    array([[[0.5, 2. , 3.5]]])
    """
    x, added_batch = _batched(x, nd)
    spatial = x.shape[2:]
    out_spatial = _output_sizes(output_size, spatial)
    values = np.empty(x.shape[:2] + out_spatial, dtype=np.float64)
    for out_pos in np.ndindex(*out_spatial):
        window = x[(Ellipsis,) + _window_slices(spatial, out_spatial, out_pos)]
        with np.errstate(invalid="ignore"):  # inf - inf is NaN, as it should be
            values[(Ellipsis,) + out_pos] = window.astype(np.float64).mean(
                axis=tuple(range(2, 2 + nd)))
    values = values.astype(_float_result(x.dtype))
    return values[0] if added_batch else values


def adaptive_avg_pool_backward(grad_output, input_shape, nd):
    """Each output gradient divided by its window size, added over the window."""
    grad_output = np.asarray(grad_output)
    input_shape = tuple(input_shape)
    added_batch = len(input_shape) == nd + 1
    if added_batch:
        grad_output, input_shape = grad_output[np.newaxis], (1,) + input_shape
    spatial, out_spatial = input_shape[2:], grad_output.shape[2:]
    grad_input = np.zeros(input_shape, dtype=np.float64)
    for out_pos in np.ndindex(*out_spatial):
        slices = _window_slices(spatial, out_spatial, out_pos)
        size = math.prod(s.stop - s.start for s in slices)
        share = grad_output[(Ellipsis,) + out_pos].astype(np.float64) / size
        grad_input[(Ellipsis,) + slices] += share.reshape(share.shape + (1,) * nd)
    grad_input = grad_input.astype(_float_result(grad_output.dtype))
    return grad_input[0] if added_batch else grad_input


def _max_scan(x, taps_per_axis, spatial):
    """Max pooling's scan of one window: ``(values, indices)`` over the ``(N, C)`` planes."""
    first = [taps[0] for taps in taps_per_axis]
    best = np.full(x.shape[:2], _lowest(x.dtype), dtype=x.dtype)
    best_index = np.full(x.shape[:2], _plane_offset(first, spatial), dtype=np.int64)
    for position in itertools.product(*taps_per_axis):  # row-major scan order
        value = x[(Ellipsis,) + position]
        takes_over = value > best
        if _is_float(x.dtype):
            takes_over |= np.isnan(value)
        best = np.where(takes_over, value, best)
        best_index = np.where(takes_over, _plane_offset(position, spatial), best_index)
    return best, best_index


def adaptive_max_pool(x, nd, output_size):
    """Max of every adaptive window and its flat index in the plane.

    Examples
    --------
    >>> adaptive_max_pool(np.array([[[1., 3., 3., 2., 0.]]]), 1, 3)
    (array([[[3., 3., 2.]]]), array([[[1, 1, 3]]]))
    """
    x, added_batch = _batched(x, nd)
    spatial = x.shape[2:]
    out_spatial = _output_sizes(output_size, spatial)
    values = np.empty(x.shape[:2] + out_spatial, dtype=x.dtype)
    indices = np.empty(x.shape[:2] + out_spatial, dtype=np.int64)
    for out_pos in np.ndindex(*out_spatial):
        taps = [range(*adaptive_windows(L, O)[o]) for L, O, o in zip(spatial, out_spatial, out_pos)]
        values[(Ellipsis,) + out_pos], indices[(Ellipsis,) + out_pos] = _max_scan(x, taps, spatial)
    if added_batch:
        return values[0], indices[0]
    return values, indices


def adaptive_max_pool_backward(grad_output, indices, input_shape):
    """Max pooling's scatter-add (batched arrays)."""
    return max_pool_backward(grad_output, indices, input_shape)


# -------------------------------------------------------------------- global

def _flat_planes(x):
    """``(N, C, *spatial)`` -> ``(N, C, P)``."""
    return x.reshape(x.shape[:2] + (math.prod(x.shape[2:]),))


def _keep(result, shape, keepdims):
    return result.reshape(shape[:2] + (1,) * (len(shape) - 2)) if keepdims else result


def global_avg_pool(x, keepdims=False):
    """Mean over every spatial dim of a batched ``(N, C, *spatial)`` input."""
    x = np.asarray(x)
    return _keep(adaptive_avg_pool(_flat_planes(x), 1, 1)[..., 0], x.shape, keepdims)


def global_max_pool(x, keepdims=False):
    """Max over every spatial dim and its flat index in the plane."""
    x = np.asarray(x)
    values, indices = adaptive_max_pool(_flat_planes(x), 1, 1)
    return (_keep(values[..., 0], x.shape, keepdims),
            _keep(indices[..., 0], x.shape, keepdims))


def global_avg_pool_backward(grad_output, input_shape):
    """Each gradient divided evenly over its plane."""
    grad_output = np.asarray(grad_output).reshape(tuple(input_shape[:2]) + (1,))
    flat = tuple(input_shape[:2]) + (math.prod(input_shape[2:]),)
    return adaptive_avg_pool_backward(grad_output, flat, 1).reshape(input_shape)


def global_max_pool_backward(grad_output, indices, input_shape):
    """Each gradient added at its index."""
    shape = tuple(input_shape[:2]) + (1,)
    flat = tuple(input_shape[:2]) + (math.prod(input_shape[2:]),)
    return max_pool_backward(np.asarray(grad_output).reshape(shape),
                             np.asarray(indices).reshape(shape), flat).reshape(input_shape)


# ------------------------------------------------------------------------ LP

def torch_pow(a, exponent):
    """``a ** exponent`` as ``torch.pow(tensor, scalar)`` computes it: 0.5 and
    -0.5 are ``sqrt`` and ``1/sqrt`` (NaN at -inf, unlike ``numpy.power``)."""
    with np.errstate(all="ignore"):
        if exponent == 0.5:
            return np.sqrt(a)
        if exponent == -0.5:
            return 1 / np.sqrt(a)
        return np.power(a, exponent)


def _lp_windows(x, nd, kernel_size, stride, ceil_mode):
    """Per output position: the in-bounds slices (LP pooling has no padding)."""
    spatial, kernel, stride, _pb, _pa, _d, out_spatial = _geometry(
        x.shape, nd, kernel_size, stride, 0, 1, ceil_mode)
    for out_pos in np.ndindex(*out_spatial):
        yield out_pos, tuple(slice(o * s, min(o * s + k, L))
                             for o, s, k, L in zip(out_pos, stride, kernel, spatial))


def _lp_shape(x, nd, kernel_size, stride, ceil_mode):
    spatial, kernel, _s, _pb, _pa, _d, out_spatial = _geometry(
        x.shape, nd, kernel_size, stride, 0, 1, ceil_mode)
    return out_spatial, math.prod(kernel)


def lp_pool(x, nd, norm_type, kernel_size, stride=None, ceil_mode=False):
    """LP pooling, in float64.

    Examples
    --------
    >>> lp_pool(np.array([[[3., 4., 1., 1., 2.]]]), 1, 2, 2, ceil_mode=True)
    array([[[5.        , 1.41421356, 2.82842712]]])
    """
    x, added_batch = _batched(x, nd)
    out_spatial, K = _lp_shape(x, nd, kernel_size, stride, ceil_mode)
    values = np.empty(x.shape[:2] + out_spatial, dtype=np.float64)
    planes = x.astype(np.float64)
    for out_pos, slices in _lp_windows(x, nd, kernel_size, stride, ceil_mode):
        window = planes[(Ellipsis,) + slices]
        if norm_type == math.inf:
            taps = [range(s.start, s.stop) for s in slices]
            value, _ = _max_scan(np.abs(planes), taps, x.shape[2:])
        else:
            n = math.prod(s.stop - s.start for s in slices)
            with np.errstate(all="ignore"):
                q = torch_pow(window, norm_type).sum(axis=tuple(range(2, 2 + nd))) / n
                value = torch_pow(q * K, 1 / norm_type)
        values[(Ellipsis,) + out_pos] = value
    values = values.astype(_float_result(x.dtype))
    return values[0] if added_batch else values


def lp_pool_backward(grad_output, x, nd, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Gradient of :func:`lp_pool` by the chain rule through PyTorch's formula.

    A window with ``q = mean(x**p)`` adds ``g * (1/p) * (q*K)**(1/p - 1) * K / n``
    to each of its elements (nothing when ``q == 0``); an element's total
    ``G`` becomes ``G * p * x**(p-1)``, and a zero total stays 0.  For
    ``p = inf`` the gradient goes to the window's max of ``|x|`` times
    ``sign(x)``.

    Examples
    --------
    >>> lp_pool_backward(np.ones((1, 1, 2)), np.array([[[3., 4., 0., 0.]]]), 1, 2, 2)
    array([[[0.6, 0.8, 0. , 0. ]]])
    """
    x, added_batch = _batched(x, nd)
    grad_output = np.asarray(grad_output)
    if added_batch:
        grad_output = grad_output[np.newaxis]
    out_spatial, K = _lp_shape(x, nd, kernel_size, stride, ceil_mode)
    planes = x.astype(np.float64)
    total = np.zeros(x.shape, dtype=np.float64)
    for out_pos, slices in _lp_windows(x, nd, kernel_size, stride, ceil_mode):
        g = grad_output[(Ellipsis,) + out_pos].astype(np.float64)
        if norm_type == math.inf:
            taps = [range(s.start, s.stop) for s in slices]
            _, index = _max_scan(np.abs(planes), taps, x.shape[2:])
            for n, c in np.ndindex(*x.shape[:2]):
                position = np.unravel_index(index[n, c], x.shape[2:])
                total[(n, c) + position] += g[n, c] * np.sign(np.nan_to_num(planes[(n, c) + position]))
            continue
        window = planes[(Ellipsis,) + slices]
        n = math.prod(s.stop - s.start for s in slices)
        with np.errstate(all="ignore"):
            q = torch_pow(window, norm_type).sum(axis=tuple(range(2, 2 + nd))) / n
            share = g * (1 / norm_type) * torch_pow(q * K, 1 / norm_type - 1) * K / n
        share = np.where(q == 0, 0.0, share)
        total[(Ellipsis,) + slices] += share.reshape(share.shape + (1,) * nd)
    if norm_type != math.inf:
        with np.errstate(all="ignore"):
            total = np.where(total == 0, 0.0, total * norm_type * torch_pow(planes, norm_type - 1))
    result_dtype = np.promote_types(_float_result(grad_output.dtype), _float_result(x.dtype))
    total = total.astype(result_dtype)
    return total[0] if added_batch else total
