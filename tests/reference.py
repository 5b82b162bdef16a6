"""Slow, obviously-correct NumPy reference for max and average pooling.

Written from ``SPEC.md`` alone (not from PyTorch, not from cypool), for the
tests to compare everything else against.  Clarity beats speed: every
function loops in plain Python over output positions and window taps; only
the ``(N, C)`` planes are handled together as NumPy arrays, which does not
change what is computed.

Conventions
-----------
Arrays are channels-first and batched, ``(N, C, *spatial)`` with ``nd``
spatial dims (an unbatched ``(C, *spatial)`` array is accepted too).  Along
one spatial axis of length ``L`` with kernel ``k``, stride ``s``, dilation
``d`` and padding ``pad_before`` / ``pad_after``:

==========================  ============================================
output window ``o`` starts  ``o * s - pad_before``
tap ``j`` of the window     ``start + j * d`` for ``0 <= j < k``
in-bounds tap               ``0 <= start + j * d < L``; padding is never
                            read
output length               ``floor((L + pad_before + pad_after
                            - d*(k-1) - 1 + (s-1 if ceil_mode)) / s) + 1``,
                            and in ceil mode the last window is dropped when
                            ``(out-1)*s >= L + pad_before`` (it would start
                            in the right padding or past it)
==========================  ============================================

``padding`` is an int or a tuple of ``nd`` ints (symmetric), ``'valid'``,
``'same'`` (Keras/TensorFlow), or -- an extension used only by the tests to
exercise asymmetric padding directly -- a tuple of ``nd`` ``(before, after)``
pairs in the :func:`numpy.pad` convention.
"""

import itertools
import math

import numpy as np

__all__ = [
    "output_size",
    "resolve_padding",
    "max_pool",
    "max_pool_backward",
    "avg_pool",
    "avg_pool_backward",
    "to_channels_last",
    "from_channels_last",
]


# ------------------------------------------------------------------ geometry

def _per_axis(value, nd, name):
    """Expand an int or a length-``nd`` sequence of ints into an ``nd``-tuple."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * nd
    value = tuple(int(v) for v in value)
    if len(value) != nd:
        raise ValueError(f"{name} must be an int or {nd} ints, got {value!r}")
    return value


def output_size(L, k, s, pad_before, pad_after, d, ceil_mode):
    """Number of windows along one axis.

    Parameters
    ----------
    L : int
        Input length.
    k, s, d : int
        Kernel size, stride and dilation.
    pad_before, pad_after : int
        Implicit padding on each side.
    ceil_mode : bool
        Round the window count up instead of down, without starting a window
        in the right padding.

    Returns
    -------
    int
        The output length (zero or negative for impossible geometry; callers
        reject that).

    Examples
    --------
    >>> output_size(5, 2, 2, 0, 0, 1, False), output_size(5, 2, 2, 0, 0, 1, True)
    (2, 3)
    >>> output_size(5, 4, 4, 2, 2, 1, True)  # the third window would start at 6 >= 5
    2
    """
    span = d * (k - 1) + 1
    numerator = L + pad_before + pad_after - span + (s - 1 if ceil_mode else 0)
    out = numerator // s + 1  # Python's // is floor division, also for negatives
    if ceil_mode and (out - 1) * s >= L + pad_before:
        out -= 1
    return out


def resolve_padding(padding, nd, kernel, stride, dilation, spatial):
    """Turn a ``padding`` argument into explicit per-axis padding.

    Parameters
    ----------
    padding : int, tuple, 'valid' or 'same'
        An int or ``nd`` ints pad both sides equally; ``'valid'`` pads
        nothing; ``'same'`` pads like Keras/TensorFlow so that
        ``out = ceil(L / s)``, with the odd extra element after.  A tuple of
        ``nd`` ``(before, after)`` pairs is taken as it is.
    nd : int
        Number of spatial dims.
    kernel, stride, dilation : int or tuple of int
        Window geometry (``stride`` must already be resolved, not None).
    spatial : tuple of int
        The ``nd`` input lengths.

    Returns
    -------
    pad_before, pad_after : tuple of int

    Examples
    --------
    >>> resolve_padding('same', 1, 3, 2, 1, (6,))
    ((0,), (1,))
    >>> resolve_padding(1, 2, 3, 1, 1, (4, 4))
    ((1, 1), (1, 1))
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * nd, (0,) * nd
        if padding != "same":
            raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
        kernel = _per_axis(kernel, nd, "kernel_size")
        stride = _per_axis(stride, nd, "stride")
        dilation = _per_axis(dilation, nd, "dilation")
        before, after = [], []
        for L, k, s, d in zip(spatial, kernel, stride, dilation):
            out = -(-L // s)  # ceil(L / s)
            total = max((out - 1) * s + d * (k - 1) + 1 - L, 0)
            before.append(total // 2)
            after.append(total - total // 2)
        return tuple(before), tuple(after)
    if not isinstance(padding, (int, np.integer)) and any(
            not isinstance(p, (int, np.integer)) for p in padding):
        pairs = tuple(tuple(int(v) for v in pair) for pair in padding)
        if len(pairs) != nd or any(len(pair) != 2 for pair in pairs):
            raise ValueError(f"padding pairs must be {nd} (before, after) pairs, "
                             f"got {padding!r}")
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
    symmetric = _per_axis(padding, nd, "padding")
    return symmetric, symmetric


def _geometry(shape, nd, kernel_size, stride, padding, dilation, ceil_mode):
    """Resolve every per-axis parameter and the output spatial shape."""
    spatial = tuple(shape[-nd:])
    kernel = _per_axis(kernel_size, nd, "kernel_size")
    stride = kernel if stride is None else _per_axis(stride, nd, "stride")
    dilation = _per_axis(dilation, nd, "dilation")
    pad_before, pad_after = resolve_padding(padding, nd, kernel, stride, dilation, spatial)
    out_spatial = tuple(
        output_size(L, k, s, pb, pa, d, ceil_mode)
        for L, k, s, pb, pa, d in zip(spatial, kernel, stride, pad_before, pad_after, dilation))
    if any(o <= 0 for o in out_spatial):
        raise ValueError(f"no output: input {spatial}, output {out_spatial}")
    return spatial, kernel, stride, pad_before, pad_after, dilation, out_spatial


def _batched(x, nd):
    """View ``x`` as batched; return it and whether a batch axis was added."""
    x = np.asarray(x)
    if x.ndim == nd + 1:
        return x[np.newaxis], True
    if x.ndim != nd + 2:
        raise ValueError(f"expected {nd + 1} or {nd + 2} dims, got shape {x.shape}")
    return x, False


def _plane_offset(position, spatial):
    """Row-major flat offset of ``position`` in a plane of shape ``spatial``.

    Computed by hand rather than with :func:`numpy.ravel_multi_index` because
    PyTorch's start index for a window with no in-bounds tap lies outside the
    plane, and it must still be reproduced.
    """
    offset = 0
    for p, L in zip(position, spatial):
        offset = offset * L + p
    return offset


# ----------------------------------------------------------------------- max

def _lowest(dtype):
    """The value every max window starts from: -inf, or the integer minimum."""
    if np.issubdtype(dtype, np.integer):
        return np.iinfo(dtype).min
    return -np.inf


def max_pool(x, nd, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max pooling with flat indices, by looping over windows and taps.

    Parameters
    ----------
    x : array_like, shape (N, C, *spatial) or (C, *spatial)
    nd : int
        Number of spatial dims (1, 2 or 3).
    kernel_size, stride, padding, dilation, ceil_mode
        As in ``torch.nn.functional.max_pool{nd}d``; ``stride=None`` means
        ``kernel_size``; see the module docstring for ``padding``.

    Returns
    -------
    values : ndarray, dtype of ``x``
    indices : ndarray of int64
        Flat offset of each maximum inside its input plane.

    Notes
    -----
    Each window starts from -inf (the integer minimum for integer dtypes)
    with index = the flat offset of its first in-bounds tap along each axis
    (which lies outside the plane when some axis has no in-bounds tap, as
    PyTorch reports it).  The in-bounds taps are scanned in row-major order
    and a value takes over when it is strictly greater than the running max
    or is NaN: ties keep the first maximum, the last NaN wins.

    Examples
    --------
    >>> values, indices = max_pool(np.array([[[1., 3., 3., 2.]]]), 1, 2, 1)
    >>> values, indices
    (array([[[3., 3., 3.]]]), array([[[1, 1, 2]]]))
    """
    x, added_batch = _batched(x, nd)
    (spatial, kernel, stride, pad_before, _pad_after, dilation,
     out_spatial) = _geometry(x.shape, nd, kernel_size, stride, padding, dilation, ceil_mode)
    is_float = np.issubdtype(x.dtype, np.floating)
    values = np.empty(x.shape[:2] + out_spatial, dtype=x.dtype)
    indices = np.empty(x.shape[:2] + out_spatial, dtype=np.int64)
    for out_pos in np.ndindex(*out_spatial):
        starts = [o * s - pb for o, s, pb in zip(out_pos, stride, pad_before)]
        first = [start if start >= 0 else start + math.ceil(-start / d) * d
                 for start, d in zip(starts, dilation)]
        taps = [[start + j * d for j in range(k) if 0 <= start + j * d < L]
                for start, k, d, L in zip(starts, kernel, dilation, spatial)]
        best = np.full(x.shape[:2], _lowest(x.dtype), dtype=x.dtype)
        best_index = np.full(x.shape[:2], _plane_offset(first, spatial), dtype=np.int64)
        for position in itertools.product(*taps):  # row-major scan order
            value = x[(Ellipsis,) + position]
            takes_over = value > best
            if is_float:
                takes_over |= np.isnan(value)
            best = np.where(takes_over, value, best)
            best_index = np.where(takes_over, _plane_offset(position, spatial), best_index)
        values[(Ellipsis,) + out_pos] = best
        indices[(Ellipsis,) + out_pos] = best_index
    if added_batch:
        return values[0], indices[0]
    return values, indices


def max_pool_backward(grad_output, indices, input_shape):
    """Gradient of :func:`max_pool`: scatter-add into each input plane.

    Parameters
    ----------
    grad_output : array_like, shape (N, C, *out_spatial)
        Batched only (an unbatched caller adds the axis), since without ``nd``
        the planes could not be told apart from the spatial dims.
    indices : array_like of int, same shape
        From :func:`max_pool`.
    input_shape : tuple of int
        Shape ``(N, C, *spatial)`` of the pooled input.

    Returns
    -------
    grad_input : ndarray, shape ``input_shape``, dtype of ``grad_output``

    Notes
    -----
    An index outside ``[0, plane size)`` -- what PyTorch reports for a window
    with no in-bounds tap -- has no input element to receive its gradient and
    contributes nothing.  (PyTorch itself writes such a gradient past the end
    of the plane, into the next plane or out of the buffer.)

    Examples
    --------
    >>> max_pool_backward(np.array([[[1., 2., 4.]]]), np.array([[[1, 1, 2]]]), (1, 1, 4))
    array([[[0., 3., 4., 0.]]])
    """
    grad_output = np.asarray(grad_output)
    indices = np.asarray(indices)
    input_shape = tuple(input_shape)
    if grad_output.shape != indices.shape or grad_output.shape[:2] != input_shape[:2]:
        raise ValueError(f"grad_output {grad_output.shape}, indices {indices.shape} and "
                         f"input_shape {input_shape} must share (N, C)")
    lead = input_shape[:2]
    plane_size = math.prod(input_shape[2:])
    grad_input = np.zeros(lead + (plane_size,), dtype=np.float64)
    for n, c in np.ndindex(*lead):
        for index, grad in zip(indices[n, c].ravel(), grad_output[n, c].ravel()):
            if 0 <= index < plane_size:
                grad_input[n, c, index] += grad
    return grad_input.reshape(input_shape).astype(grad_output.dtype)


# ------------------------------------------------------------------- average

def _avg_windows(spatial, kernel, stride, pad_before, pad_after, out_pos):
    """In-bounds slices and divisor factors of one average window.

    Returns ``(slices, counts, padded)``: per axis, the in-bounds slice, its
    length (0 when the window misses the input) and the padded extent, i.e.
    the window clipped to ``[-pad_before, L + pad_after)`` so the ceil-mode
    overhang past the right padding does not count.
    """
    slices, counts, padded = [], [], []
    for o, L, k, s, pb, pa in zip(out_pos, spatial, kernel, stride, pad_before, pad_after):
        lo = o * s - pb
        hi = min(lo + k, L + pa)
        padded.append(hi - lo)
        lo, hi = max(lo, 0), min(hi, L)
        counts.append(max(hi - lo, 0))
        slices.append(slice(lo, max(hi, lo)))
    return tuple(slices), counts, padded


def _avg_divisor(counts, padded, count_include_pad, divisor_override):
    """The divisor of one average window, per SPEC.md."""
    if divisor_override is not None:
        return divisor_override
    if count_include_pad:
        return math.prod(padded)
    return math.prod(counts)


def _avg_result_dtype(dtype):
    """Averages keep float dtypes and turn integers into float64, like ``numpy.mean``."""
    if np.issubdtype(dtype, np.floating):
        return dtype
    if np.issubdtype(dtype, np.integer):
        return np.dtype(np.float64)
    raise TypeError(f"average pooling does not take dtype {dtype}")


def avg_pool(x, nd, kernel_size, stride=None, padding=0, ceil_mode=False,
             count_include_pad=True, divisor_override=None):
    """Average pooling, by summing each window in float64.

    Parameters
    ----------
    x : array_like, shape (N, C, *spatial) or (C, *spatial)
    nd : int
        Number of spatial dims (1, 2 or 3).
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        As in ``torch.nn.functional.avg_pool{nd}d``; ``stride=None`` means
        ``kernel_size``; see the module docstring for ``padding``.

    Returns
    -------
    ndarray
        Float input keeps its dtype, integer input gives float64.

    Notes
    -----
    Per axis the window is ``[o*s - pad_before, min(o*s - pad_before + k,
    L + pad_after))``; the divisor is ``divisor_override`` if given, else the
    product of those (padded) extents if ``count_include_pad``, else the
    product of the in-bounds counts.  A window with no in-bounds element
    gives 0.

    Examples
    --------
    >>> avg_pool(np.array([[[1., 2., 3., 4., 5.]]]), 1, 2, 2, padding=1)
    array([[[0.5, 2.5, 4.5]]])
    >>> avg_pool(np.array([[[1., 2., 3., 4., 5.]]]), 1, 2, 2, padding=1,
    ...          count_include_pad=False)
    array([[[1. , 2.5, 4.5]]])
    """
    x, added_batch = _batched(x, nd)
    result_dtype = _avg_result_dtype(x.dtype)
    (spatial, kernel, stride, pad_before, pad_after, _dilation,
     out_spatial) = _geometry(x.shape, nd, kernel_size, stride, padding, 1, ceil_mode)
    values = np.zeros(x.shape[:2] + out_spatial, dtype=np.float64)
    for out_pos in np.ndindex(*out_spatial):
        slices, counts, padded = _avg_windows(spatial, kernel, stride, pad_before,
                                              pad_after, out_pos)
        if min(counts) == 0:
            continue  # nothing in bounds: the average is 0
        window = x[(Ellipsis,) + slices].astype(np.float64)
        with np.errstate(invalid="ignore"):  # inf - inf is NaN, as it should be
            total = window.sum(axis=tuple(range(2, 2 + nd)))
        values[(Ellipsis,) + out_pos] = total / _avg_divisor(
            counts, padded, count_include_pad, divisor_override)
    values = values.astype(result_dtype)
    return values[0] if added_batch else values


def avg_pool_backward(grad_output, input_shape, nd, kernel_size, stride=None, padding=0,
                      ceil_mode=False, count_include_pad=True, divisor_override=None):
    """Gradient of :func:`avg_pool` with respect to its input.

    Parameters
    ----------
    grad_output : array_like, shape (N, C, *out_spatial) or (C, *out_spatial)
    input_shape : tuple of int
        Shape of the pooled input.
    nd, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        As given to :func:`avg_pool`.

    Returns
    -------
    grad_input : ndarray, shape ``input_shape``, dtype of ``grad_output``
        Each output gradient divided by its window's divisor, added to every
        in-bounds element of the window.

    Examples
    --------
    >>> avg_pool_backward(np.array([[[1., 2., 4.]]]), (1, 1, 5), 1, 2, 2, padding=1)
    array([[[0.5, 1. , 1. , 2. , 2. ]]])
    """
    grad_output = np.asarray(grad_output)
    input_shape = tuple(input_shape)
    added_batch = len(input_shape) == nd + 1
    if added_batch:
        grad_output = grad_output[np.newaxis]
        input_shape = (1,) + input_shape
    (spatial, kernel, stride, pad_before, pad_after, _dilation,
     out_spatial) = _geometry(input_shape, nd, kernel_size, stride, padding, 1, ceil_mode)
    if grad_output.shape != input_shape[:2] + out_spatial:
        raise ValueError(f"grad_output shape {grad_output.shape} does not match the "
                         f"output shape {input_shape[:2] + out_spatial}")
    grad_input = np.zeros(input_shape, dtype=np.float64)
    for out_pos in np.ndindex(*out_spatial):
        slices, counts, padded = _avg_windows(spatial, kernel, stride, pad_before,
                                              pad_after, out_pos)
        if min(counts) == 0:
            continue
        share = grad_output[(Ellipsis,) + out_pos].astype(np.float64) / _avg_divisor(
            counts, padded, count_include_pad, divisor_override)
        grad_input[(Ellipsis,) + slices] += share.reshape(share.shape + (1,) * nd)
    grad_input = grad_input.astype(_avg_result_dtype(grad_output.dtype))
    return grad_input[0] if added_batch else grad_input


# -------------------------------------------------------------------- layout

def to_channels_last(a):
    """``(N, C, *spatial)`` -> ``(N, *spatial, C)`` (a view)."""
    return np.moveaxis(a, 1, -1)


def from_channels_last(a):
    """``(N, *spatial, C)`` -> ``(N, C, *spatial)`` (a view)."""
    return np.moveaxis(a, -1, 1)


# ----------------------------------------------------------- the test grid
# Shared by test_reference.py (reference vs PyTorch) and test_torch.py
# (cypool vs PyTorch), so both walk the same geometry.

class PoolCase:
    """One pooling geometry: input shape ``(N, C, *spatial)`` and parameters.

    ``padding`` may be anything :func:`resolve_padding` accepts; ``avg`` is
    False for geometry only max pooling has (dilation > 1).
    """

    def __init__(self, name, shape, kernel_size, stride=None, padding=0, dilation=1,
                 ceil_mode=False):
        self.name = name
        self.shape = tuple(shape)
        self.nd = len(shape) - 2
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.ceil_mode = ceil_mode
        self.avg = all(d == 1 for d in _per_axis(dilation, self.nd, "dilation"))

    @property
    def id(self):
        return f"{self.nd}d-{self.name}"

    def max_kwargs(self):
        """Keyword arguments of ``max_pool{nd}d`` (and :func:`max_pool`)."""
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    dilation=self.dilation, ceil_mode=self.ceil_mode)

    def avg_kwargs(self):
        """Keyword arguments of ``avg_pool{nd}d`` (and :func:`avg_pool`)."""
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    ceil_mode=self.ceil_mode)

    def __repr__(self):
        return f"PoolCase({self.id}: {self.shape}, {self.max_kwargs()})"


CASES = [
    # 1-D
    PoolCase("k2", (2, 3, 8), 2),
    PoolCase("k3-s1-p1", (2, 3, 7), 3, 1, 1),
    PoolCase("k3-s2-p1-ceil-overhang", (2, 3, 8), 3, 2, 1, ceil_mode=True),
    PoolCase("k4-s4-p2-ceil-drop", (2, 3, 5), 4, 4, 2, ceil_mode=True),
    PoolCase("k1-s2-ceil-drop", (2, 3, 4), 1, 2, 0, ceil_mode=True),
    PoolCase("k2-s3-ceil", (2, 3, 5), 2, 3, 0, ceil_mode=True),
    PoolCase("k3-s2-ceil-overhang-nopad", (2, 3, 6), 3, 2, 0, ceil_mode=True),
    PoolCase("k3-d2-p1", (2, 3, 9), 3, 1, 1, 2),
    PoolCase("k3-s2-d3-p1-ceil", (2, 3, 10), 3, 2, 1, 3, ceil_mode=True),
    PoolCase("prime-k5-s3-p2-ceil", (1, 2, 13), 5, 3, 2, ceil_mode=True),
    PoolCase("L1-k1", (2, 3, 1), 1),
    PoolCase("L1-k2-s2-p1-ceil", (2, 3, 1), 2, 2, 1, ceil_mode=True),
    PoolCase("k-equals-L", (2, 3, 5), 5),
    PoolCase("s-over-k", (2, 3, 9), 2, 3),
    PoolCase("no-inbounds-tap", (2, 3, 2), 2, 1, 1, 3),
    # 2-D
    PoolCase("k2", (2, 3, 6, 6), 2),
    PoolCase("k3-s2-p1", (2, 3, 7, 5), 3, 2, 1),
    PoolCase("k3-s2-p1-ceil-overhang", (2, 3, 8, 6), 3, 2, 1, ceil_mode=True),
    PoolCase("k4-s4-p2-ceil-drop", (1, 2, 5, 5), 4, 4, 2, ceil_mode=True),
    PoolCase("ceil-overhang-nopad", (2, 2, 6, 7), 3, 2, 0, ceil_mode=True),
    PoolCase("rect", (2, 3, 5, 7), (2, 3), (1, 2), (1, 0)),
    PoolCase("dilated", (2, 2, 7, 8), (3, 2), 1, (1, 1), (2, 3)),
    PoolCase("dilated-ceil", (1, 3, 9, 7), 3, 2, 1, 2, ceil_mode=True),
    PoolCase("prime-ceil", (1, 2, 11, 13), (5, 3), (3, 2), (2, 1), ceil_mode=True),
    PoolCase("size1-dim", (2, 3, 1, 6), (1, 3), 1, (0, 1)),
    PoolCase("global", (2, 3, 4, 5), (4, 5)),
    PoolCase("no-inbounds-tap-aliased", (2, 2, 4, 2), (1, 2), (2, 1), (0, 1), (1, 3)),
    PoolCase("no-inbounds-tap", (2, 2, 2, 3), (2, 1), 1, (1, 0), (3, 1)),
    # 3-D
    PoolCase("k2", (2, 2, 4, 4, 4), 2),
    PoolCase("k3-s2-p1", (1, 3, 5, 4, 6), 3, 2, 1),
    PoolCase("ceil-overhang", (2, 2, 5, 6, 5), (2, 3, 2), 2, (1, 1, 0), ceil_mode=True),
    PoolCase("k4-s4-p2-ceil-drop", (1, 2, 5, 5, 5), 4, 4, 2, ceil_mode=True),
    PoolCase("dilated", (1, 2, 5, 6, 7), (2, 2, 3), 1, 1, (2, 3, 2)),
    PoolCase("prime-ceil", (1, 2, 7, 5, 3), 3, 2, 1, ceil_mode=True),
    PoolCase("size1-dims", (2, 3, 1, 1, 5), (1, 1, 3), 1, (0, 0, 1)),
    PoolCase("no-inbounds-tap", (1, 3, 2, 3, 3), (2, 1, 1), 1, (1, 0, 0), (3, 1, 1)),
]
AVG_CASES = [case for case in CASES if case.avg]

#: Asymmetric padding: 'same' (what the public API takes) and explicit
#: ``(before, after)`` pairs (reference only).  PyTorch checks these through
#: explicitly pre-padded input (see :func:`pad_spatial`).
ASYMMETRIC_CASES = [
    PoolCase("same-s2", (2, 3, 6), 3, 2, "same"),
    PoolCase("same-even-k", (2, 3, 7), 4, 1, "same"),
    PoolCase("pairs-after", (2, 3, 7), 3, 2, ((0, 1),)),
    PoolCase("pairs-before-over-half-k", (2, 3, 7), 3, 2, ((2, 0),)),
    PoolCase("same-dilated", (2, 3, 6), 2, 1, "same", 3),
    PoolCase("same", (2, 2, 6, 7), (3, 2), 2, "same"),
    PoolCase("pairs", (2, 2, 5, 6), (3, 2), 1, ((2, 0), (0, 1))),
    PoolCase("same-dilated", (1, 2, 7, 6), 3, 1, "same", (2, 1)),
    PoolCase("same-s2", (1, 2, 4, 5, 6), 2, 2, "same"),
    PoolCase("same-s1", (1, 2, 4, 5, 3), 3, 1, "same"),
]

#: ``(count_include_pad, divisor_override)`` combinations for average pooling.
AVG_DIVISORS = [(True, None), (False, None), (True, 3), (False, 7)]

#: Kinds of input values; see :func:`make_values`.
VALUE_KINDS = ["randn", "ties", "const", "nan", "inf-mix", "all-neginf"]


def make_values(kind, shape, dtype, rng):
    """Seeded test input of ``shape`` and ``dtype``.

    ``randn`` normal values; ``ties`` integers 0..2 (many equal maxima);
    ``const`` a single value; ``nan`` normal values with about a third NaN
    (several in most windows); ``inf-mix`` normal values with some +-inf;
    ``all-neginf`` every element -inf (no tap ever beats the start value).
    """
    if kind == "randn":
        values = rng.standard_normal(shape)
    elif kind == "ties":
        values = rng.integers(0, 3, size=shape).astype(np.float64)
    elif kind == "const":
        values = np.full(shape, 1.5)
    elif kind == "nan":
        values = rng.standard_normal(shape)
        values[rng.random(shape) < 0.35] = np.nan
    elif kind == "inf-mix":
        values = rng.standard_normal(shape)
        values[rng.random(shape) < 0.15] = np.inf
        values[rng.random(shape) < 0.15] = -np.inf
    elif kind == "all-neginf":
        values = np.full(shape, -np.inf)
    else:
        raise ValueError(f"unknown value kind {kind!r}")
    return values.astype(dtype)


def make_rng(*parts):
    """A ``numpy.random.Generator`` seeded from ``parts`` (e.g. a test's parameters).

    The seed is a fixed function of ``repr(parts)`` (not ``hash``, which is
    salted per process), so every run draws the same values.
    """
    return np.random.default_rng(sum((i + 1) * ord(ch) for i, ch in enumerate(repr(parts))))


def pad_spatial(x, nd, pad_before, pad_after, value):
    """``x`` with its last ``nd`` axes padded explicitly with ``value``."""
    return np.pad(x, [(0, 0)] * (x.ndim - nd) + list(zip(pad_before, pad_after)),
                  constant_values=value)


def crop_spatial(a, pad_before, spatial):
    """Undo :func:`pad_spatial`: the ``spatial``-sized block after ``pad_before``."""
    return a[(Ellipsis,) + tuple(slice(b, b + L) for b, L in zip(pad_before, spatial))]


def has_out_of_plane_index(indices, input_shape, nd):
    """True when some max index lies outside its input plane.

    PyTorch reports such an index for a window with no in-bounds tap, and its
    backward then writes past the plane (possibly past the buffer), so tests
    must not run PyTorch's backward on that geometry.
    """
    plane_size = math.prod(tuple(input_shape)[-nd:])
    return bool(np.any((indices < 0) | (indices >= plane_size)))


# ------------------------------------------------------------ PyTorch oracle
# Thin calls into torch.nn.functional, shared by test_reference.py and
# test_torch.py.  torch is imported inside each function so that this module
# (and every test that uses only the NumPy reference) works without it.

def _widen_to_2d(value, fill):
    """1-D pooling argument -> the 2-D one acting on a ``(N, C, 1, L)`` input,
    with ``fill`` along the added axis (1 for kernel and stride, 0 for padding)."""
    if value is None:
        return None
    (value,) = _per_axis(value, 1, "argument")
    return (fill, value)


def torch_max_pool(x, nd, grad_output=None, *, kernel_size, stride=None, padding=0,
                   dilation=1, ceil_mode=False, memory_format=None):
    """PyTorch's ``max_pool{nd}d`` with indices, and its input gradient.

    Parameters
    ----------
    x : ndarray, shape (N, C, *spatial) or (C, *spatial)
    nd : int
    grad_output : ndarray, optional
        Upstream gradient; when given, autograd runs and the input gradient is
        returned (never pass it for geometry with an out-of-plane index: see
        :func:`has_out_of_plane_index`).
    memory_format : torch.memory_format, optional
        Convert the input to this layout first (e.g. ``torch.channels_last``).

    Returns
    -------
    values, indices, grad_input : ndarray (``grad_input`` None without
    ``grad_output``)
    """
    import torch

    tensor = torch.from_numpy(np.array(x))
    if memory_format is not None:
        tensor = tensor.contiguous(memory_format=memory_format)
    tensor.requires_grad_(grad_output is not None)
    pool = getattr(torch.nn.functional, f"max_pool{nd}d")
    values, indices = pool(tensor, kernel_size, stride, padding, dilation, ceil_mode,
                           return_indices=True)
    grad_input = None
    if grad_output is not None:
        values.backward(torch.from_numpy(np.array(grad_output)))
        grad_input = tensor.grad.numpy()
    return values.detach().numpy(), indices.numpy(), grad_input


def torch_avg_pool(x, nd, grad_output=None, *, kernel_size, stride=None, padding=0,
                   ceil_mode=False, count_include_pad=True, divisor_override=None):
    """PyTorch's ``avg_pool{nd}d`` and its input gradient.

    ``torch.nn.functional.avg_pool1d`` has no ``divisor_override``, so 1-D
    pooling runs as 2-D pooling over a ``(N, C, 1, L)`` view.

    Returns
    -------
    values, grad_input : ndarray (``grad_input`` None without ``grad_output``)
    """
    import torch

    tensor = torch.from_numpy(np.array(x)).requires_grad_(grad_output is not None)
    pooled_input = tensor
    args = (kernel_size, stride, padding)
    if nd == 1:
        pooled_input = tensor.unsqueeze(-2)
        args = tuple(_widen_to_2d(a, fill) for a, fill in zip(args, (1, 1, 0)))
    pool = getattr(torch.nn.functional, f"avg_pool{max(nd, 2)}d")
    values = pool(pooled_input, *args, ceil_mode=ceil_mode,
                  count_include_pad=count_include_pad, divisor_override=divisor_override)
    if nd == 1:
        values = values.squeeze(-2)
    grad_input = None
    if grad_output is not None:
        values.backward(torch.from_numpy(np.array(grad_output)))
        grad_input = tensor.grad.numpy()
    return values.detach().numpy(), grad_input
