"""Pooling for ``dask.array`` arrays: volumes, mosaics and pyramids beyond memory.

The functions here take the arguments of their in-memory namesakes (minus
``out`` and ``return_indices``) and return lazy ``dask.array`` arrays equal,
element for element, to what the in-memory function returns for the whole
array (see *Exactness* below).

How the work is split
---------------------
Chunks along the batch and channel axes are pooled blockwise.  Along a
spatial axis that is split into several chunks, the array is rechunked so
every chunk starts where an output window starts (a multiple of the stride
from the padded origin, moving each boundary by less than one stride) and
then given, from its right neighbour, exactly the halo its last window needs
(``span - stride`` elements, ``span = dilation * (kernel - 1) + 1``).  Padding
never reaches an interior block: only blocks at the array's true edges pad
their data (with the dtype's lowest value for max, with zeros for the sums of
average pooling), and every block is pooled by cypool without padding.
Average pooling divides each window's sum by the divisor the in-memory call
would use, computed from the window's position in the whole array, so
padding, ``'same'``, ``ceil_mode``, ``count_include_pad`` and
``divisor_override`` behave at the array's edges as they do in memory.  LP
pooling has no padding; the block at the array's end keeps ceil mode's
partial last window, which it computes exactly as the whole array does.

Exactness
---------
Max and LP pooling, global max pooling and :func:`pyramid` with
``mode='max'`` are bit-for-bit equal to the in-memory result for every
chunking.  Average pooling is bit-for-bit equal too: each window's elements
are added in the order the in-memory kernel adds them (padding contributes
exact zeros).  Two limits: a channels-first plane so large that the in-memory
kernel leaves its two-pass path (``D*H*out_W`` above 4M elements) is summed
row-major there and two-pass here, which can differ in the last bit; and
:func:`global_avg_pool` over chunked spatial axes is a tree reduction (in
float64) whose summation order cannot match the in-memory sequential sum, so
it agrees to rounding, not bitwise (it is bitwise when the spatial axes are
one chunk).

Threads
-------
Dask already runs blocks in parallel, so each block's cypool call uses
``num_threads=1`` unless you pass another count.

Examples
--------
>>> import numpy as np, dask.array as da, cypool, cypool.dask
>>> x = np.random.default_rng(0).standard_normal((2, 3, 64, 64), dtype=np.float32)
>>> lazy = cypool.dask.max_pool2d(da.from_array(x, chunks=(1, 3, 20, 25)), 3, 2, 1)
>>> np.array_equal(lazy.compute(), cypool.max_pool2d(x, 3, 2, 1))
True
"""

from typing import NamedTuple, Tuple

import numpy as np

import cypool
from cypool import _args
from cypool._geometry import avg_window as _avg_window

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "global_max_pool", "global_avg_pool", "pyramid",
]

# Each block's cypool call runs on one thread unless told otherwise (see Threads).
_BLOCK_THREADS = 1


def _dask_array():
    """``dask.array``, imported on first use: dask is an optional extra."""
    try:
        import dask.array
    except ImportError:
        raise ImportError(
            "cypool.dask needs dask; install it with: pip install 'cypool[dask]'"
        ) from None
    return dask.array


def _as_dask(x):
    da = _dask_array()
    x = x if isinstance(x, da.Array) else da.asarray(x)
    if any(np.isnan(size) for size in x.shape):
        raise ValueError(
            f"x has unknown chunk sizes (shape {x.shape}); call x.compute_chunk_sizes() first"
        )
    return x


def _spatial_axes(ndim, nd, channels_last):
    """Positions of the ``nd`` spatial axes in an array of ``ndim`` axes."""
    if channels_last:
        return tuple(range(ndim - 1 - nd, ndim - 1))
    return tuple(range(ndim - nd, ndim))


# ----------------------------------------------------------- the split plan

class _AxisSplit(NamedTuple):
    """How one spatial axis is split into output blocks and their data.

    Output block ``i`` holds windows ``[bounds[i], bounds[i+1])``.  Window
    ``o`` starts at ``o * stride - pad_before`` in input coordinates; the
    data used is ``[0, data_end)`` (the tail no window reads is cut), and block
    ``i``'s data chunk starts where its first window does, clipped to it.
    """
    stride: int
    span: int
    pad_before: int
    data_end: int
    bounds: Tuple[int, ...]

    @property
    def halo(self):
        """What a block borrows from its right neighbour: its last window's tail."""
        return max(self.span - self.stride, 0)

    def data_start(self, window):
        return min(max(window * self.stride - self.pad_before, 0), self.data_end)

    def data_chunks(self):
        starts = [self.data_start(o) for o in self.bounds[:-1]] + [self.data_end]
        return tuple(np.diff(starts).tolist())

    def out_chunks(self):
        return tuple(np.diff(self.bounds).tolist())

    def block_extent(self, block):
        """``(pad_left, take, pad_right)``: block ``block``'s windows cover
        ``pad_left`` padding, ``take`` elements of its (overlapped) data, then
        ``pad_right`` padding (or, for unpadded ops, the part past the edge)."""
        first = self.bounds[block] * self.stride - self.pad_before
        need = (self.bounds[block + 1] - self.bounds[block] - 1) * self.stride + self.span
        pad_left = max(-first, 0)
        take = min(first + need, self.data_end) - max(first, 0)
        return pad_left, take, need - pad_left - take


def _split_axis(chunks, out_size, stride, span, pad_before, data_end):
    """An :class:`_AxisSplit` whose blocks follow the input chunks ``chunks``.

    Each input chunk boundary moves to the start of the first window at or
    after it (less than a stride away); a block whose data would be shorter
    than the halo it lends its left neighbour (or empty) is merged away.
    """
    split = _AxisSplit(stride, span, pad_before, data_end, ())
    shortest = max(split.halo, 1)
    bounds = [0]
    for edge in np.cumsum(chunks)[:-1].tolist():
        window = -(-(edge + pad_before) // stride)
        if (window < out_size
                and split.data_start(window) - split.data_start(bounds[-1]) >= shortest):
            bounds.append(window)
    while len(bounds) > 1 and data_end - split.data_start(bounds[-1]) < shortest:
        bounds.pop()
    return split._replace(bounds=tuple(bounds) + (out_size,))


class _BlockPool:
    """The per-block call: cut each spatial axis to the block's windows, pad
    where they reach past the array's true edges, pool, and for average
    pooling divide the sums by the whole-array divisors."""

    def __init__(self, function, arguments, keywords, axes, splits, fill, compute_dtype,
                 divisors=None, result_dtype=None):
        self.function = function          # name of a public cypool function
        self.arguments = arguments
        self.keywords = keywords
        self.axes = axes
        self.splits = splits
        self.fill = fill                  # padding value; None: the op has no padding
        self.compute_dtype = compute_dtype
        self.divisors = divisors          # (override, per axis (factor, count) vectors)
        self.result_dtype = result_dtype

    def __call__(self, block, block_id=None):
        pooled = getattr(cypool, self.function)(self._windows_data(block, block_id),
                                                *self.arguments, **self.keywords)
        if self.divisors is None:
            return pooled
        return self._divide(pooled, block_id)

    def _windows_data(self, block, block_id):
        cut = [slice(None)] * block.ndim
        pads = [(0, 0)] * block.ndim
        for axis, split in zip(self.axes, self.splits):
            pad_left, take, pad_right = split.block_extent(block_id[axis])
            cut[axis] = slice(0, take)
            pads[axis] = (pad_left, pad_right)
        data = block[tuple(cut)].astype(self.compute_dtype, copy=False)
        if self.fill is None or not any(left or right for left, right in pads):
            return data
        return np.pad(data, pads, constant_values=self.fill)

    def _divide(self, sums, block_id):
        """``sums / divisor`` as the in-memory kernel divides: the integer divisor
        rounded once to the compute dtype; a window with nothing inside gives 0."""
        override, factors = self.divisors
        divisor = np.ones((1,) * sums.ndim, dtype=np.int64)
        inside = np.ones((1,) * sums.ndim, dtype=bool)
        for axis, split, (factor, count) in zip(self.axes, self.splits, factors):
            window = slice(split.bounds[block_id[axis]], split.bounds[block_id[axis] + 1])
            shape = [1] * sums.ndim
            shape[axis] = -1
            divisor = divisor * factor[window].reshape(shape)
            inside = inside & (count[window].reshape(shape) > 0)
        if override:
            divisor = np.full_like(divisor, override)
        result = np.zeros(sums.shape, sums.dtype)
        np.divide(sums, divisor.astype(sums.dtype), out=result, where=inside)
        return result.astype(self.result_dtype, copy=False)


def _pool_split(x, nd, channels_last, geometry, function, arguments, keywords, fill,
                compute_dtype, out_dtype, divisors=None):
    """Pool ``x`` block by block, its spatial axes split and given their halos.

    ``function(block, *arguments, **keywords)`` pools a block without padding;
    ``fill`` is the padding value at the array's true edges (None: no padding).
    """
    da = _dask_array()
    axes = _spatial_axes(x.ndim, nd, channels_last)
    splits = []
    crop = [slice(None)] * x.ndim
    for i, axis in enumerate(axes):
        span = geometry.dilation[i] * (geometry.kernel[i] - 1) + 1
        pad_before = 0 if fill is None else geometry.pad_before[i]
        # the last window ends here; floor mode may leave a tail no window reads
        data_end = min((geometry.out_size[i] - 1) * geometry.stride[i] + span - pad_before,
                       geometry.in_size[i])
        crop[axis] = slice(0, data_end)
        splits.append(_split_axis(x.chunks[axis], geometry.out_size[i], geometry.stride[i],
                                  span, pad_before, data_end))
    chunks = list(x.chunks)
    out_chunks = list(x.chunks)
    for axis, split in zip(axes, splits):
        chunks[axis] = split.data_chunks()
        out_chunks[axis] = split.out_chunks()
    data = x[tuple(crop)].rechunk(tuple(chunks))
    depth = {axis: (0, split.halo) for axis, split in zip(axes, splits)
             if split.halo and len(split.bounds) > 2}
    if depth:
        data = da.overlap.overlap(data, depth=depth, boundary="none", allow_rechunk=False)
    block_pool = _BlockPool(function, arguments, keywords, axes, splits, fill, compute_dtype,
                            divisors, out_dtype)
    return da.map_blocks(block_pool, data, chunks=tuple(out_chunks), dtype=out_dtype,
                         meta=np.empty((0,) * x.ndim, dtype=out_dtype), token=f"cypool-{function}")


def _spatially_whole(x, nd, channels_last):
    """True when no spatial axis is split: the in-memory call runs per block."""
    return all(len(x.chunks[axis]) == 1 for axis in _spatial_axes(x.ndim, nd, channels_last))


def _blockwise(x, function, arguments, keywords, out_spatial, nd, channels_last, out_dtype):
    """``function`` on every block of an array whose spatial axes are whole."""
    da = _dask_array()
    out_chunks = list(x.chunks)
    for axis, size in zip(_spatial_axes(x.ndim, nd, channels_last), out_spatial):
        out_chunks[axis] = (size,)
    return da.map_blocks(_Call(function, arguments, keywords), x, chunks=tuple(out_chunks),
                         dtype=out_dtype, meta=np.empty((0,) * x.ndim, dtype=out_dtype),
                         token=f"cypool-{function}")


class _Call:
    """A public cypool function with fixed arguments, as a picklable callable."""

    def __init__(self, function, arguments, keywords):
        self.function, self.arguments, self.keywords = function, arguments, keywords

    def __call__(self, block):
        return getattr(cypool, self.function)(block, *self.arguments, **self.keywords)


def _threads(num_threads):
    return {"num_threads": _BLOCK_THREADS if num_threads is None else num_threads}


# ------------------------------------------------------------------ windows

def _max_pool(nd, x, kernel_size, stride, padding, dilation, ceil_mode, channels_last,
              num_threads):
    x = _as_dask(x)
    _args.max_compute_dtype(x.dtype)
    lay = _args.layout(x.shape, nd, channels_last)
    geometry = _args.pool_geometry(nd, lay.spatial, kernel_size, stride, padding, dilation,
                                   ceil_mode)
    keywords = dict(_threads(num_threads), channels_last=lay.channels_last)
    if _spatially_whole(x, nd, lay.channels_last):
        return _blockwise(x, f"max_pool{nd}d",
                          (kernel_size, stride, padding, dilation, ceil_mode), keywords,
                          geometry.out_size, nd, lay.channels_last, x.dtype)
    return _pool_split(x, nd, lay.channels_last, geometry, f"max_pool{nd}d",
                       (geometry.kernel, geometry.stride, 0, geometry.dilation), keywords,
                       _lowest(x.dtype), x.dtype, x.dtype)


def _lowest(dtype):
    """The value max pooling's padding must never beat: the dtype's minimum."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype.type(-np.inf)
    if dtype.kind == "b":
        return False
    return np.iinfo(dtype).min


def _avg_pool(nd, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override, channels_last, num_threads):
    x = _as_dask(x)
    _args.real_compute_dtype(x.dtype)
    lay = _args.layout(x.shape, nd, channels_last)
    geometry = _args.pool_geometry(nd, lay.spatial, kernel_size, stride, padding, 1, ceil_mode)
    include_pad = _args.flag(count_include_pad, "count_include_pad")
    override = _args.divisor(divisor_override)
    result_dtype = _args.real_result_dtype(x.dtype)
    keywords = dict(_threads(num_threads), channels_last=lay.channels_last)
    if _spatially_whole(x, nd, lay.channels_last):
        return _blockwise(x, f"avg_pool{nd}d", (kernel_size, stride, padding, ceil_mode,
                                                include_pad, divisor_override),
                          keywords, geometry.out_size, nd, lay.channels_last, result_dtype)
    # Sum in the kernel's compute dtype (float16 sums in float32), divide after.
    compute = np.promote_types(result_dtype, np.float32)
    factors = []
    for i in range(nd):
        windows = [_avg_window(o, geometry.in_size[i], geometry.kernel[i], geometry.stride[i],
                               geometry.pad_before[i], geometry.pad_after[i])
                   for o in range(geometry.out_size[i])]
        _, count, padded = (np.array(column, dtype=np.int64) for column in zip(*windows))
        factors.append((padded if include_pad else count, count))
    return _pool_split(x, nd, lay.channels_last, geometry, f"avg_pool{nd}d",
                       (geometry.kernel, geometry.stride, 0, False, True, 1), keywords, 0,
                       compute, result_dtype, (override, factors))


def _lp_pool(nd, x, norm_type, kernel_size, stride, ceil_mode, channels_last, num_threads):
    x = _as_dask(x)
    _args.real_compute_dtype(x.dtype, op="LP pooling")
    norm = _args.norm_type(norm_type)
    lay = _args.layout(x.shape, nd, channels_last)
    geometry = _args.pool_geometry(nd, lay.spatial, kernel_size, stride, 0, 1, ceil_mode)
    result_dtype = _args.real_result_dtype(x.dtype)
    keywords = dict(_threads(num_threads), channels_last=lay.channels_last)
    arguments = (norm, geometry.kernel, geometry.stride, _args.flag(ceil_mode, "ceil_mode"))
    if _spatially_whole(x, nd, lay.channels_last):
        return _blockwise(x, f"lp_pool{nd}d", arguments, keywords, geometry.out_size, nd,
                          lay.channels_last, result_dtype)
    # No padding: a block that ends at the array's edge gets ceil mode's last
    # partial window exactly as the whole array does (window values depend only
    # on the elements in bounds); interior blocks end where their last window does.
    return _pool_split(x, nd, lay.channels_last, geometry, f"lp_pool{nd}d", arguments,
                       keywords, None, x.dtype, result_dtype)


# ------------------------------------------------------------------- global

def _global(x, keepdims, channels_last):
    """Validated dask input, its spatial axes and whether they are whole."""
    x = _as_dask(x)
    plan = _args.global_plan(x.shape, channels_last, keepdims)
    axes = _spatial_axes(x.ndim, x.ndim - 2, plan.layout.channels_last)
    return x, plan, axes, all(len(x.chunks[axis]) == 1 for axis in axes)


class _GlobalMax:
    """``dask.array.reduction``'s chunk/combine/aggregate step: cypool's global max."""

    def __init__(self, keywords):
        self.keywords = keywords

    def __call__(self, block, axis=None, keepdims=True):
        return cypool.global_max_pool(block, keepdims, **self.keywords)


def global_max_pool(x, keepdims=False, *, channels_last=False, num_threads=None):
    x, plan, axes, _ = _global(x, keepdims, channels_last)
    _args.max_compute_dtype(x.dtype)
    step = _GlobalMax(dict(_threads(num_threads), channels_last=plan.layout.channels_last))
    return _dask_array().reduction(x, step, step, axis=axes, keepdims=bool(keepdims),
                                   combine=step, dtype=x.dtype,
                                   meta=np.empty((0,) * len(plan.out_shape), x.dtype))


def global_avg_pool(x, keepdims=False, *, channels_last=False, num_threads=None):
    x, plan, axes, whole = _global(x, keepdims, channels_last)
    _args.real_compute_dtype(x.dtype)
    result_dtype = _args.real_result_dtype(x.dtype)
    keepdims = bool(keepdims)
    if whole:
        keywords = dict(_threads(num_threads), channels_last=plan.layout.channels_last)
        drop = () if keepdims else axes
        chunks = tuple((1,) if axis in axes and keepdims else c
                       for axis, c in enumerate(x.chunks) if axis not in drop)
        return _dask_array().map_blocks(_Call("global_avg_pool", (keepdims,), keywords), x,
                                        chunks=chunks, drop_axis=drop, dtype=result_dtype,
                                        meta=np.empty((0,) * len(chunks), result_dtype),
                                        token="cypool-global_avg_pool")
    plane = int(np.prod([x.shape[axis] for axis in axes]))
    total = x.sum(axis=axes, dtype=np.float64, keepdims=keepdims)
    return (total / plane).astype(result_dtype)


# ------------------------------------------------------------------ pyramid

def pyramid(x, levels, mode="max", *, spatial_dims=2, ceil_mode=False, channels_last=False,
            num_threads=None):
    """Multiscale pyramid: ``x`` and ``levels`` successive 2x downsamplings.

    Level ``k`` is level ``k - 1`` pooled with kernel 2 and stride 2 over
    every spatial axis (``mode`` ``'max'`` or ``'avg'``), each equal bit for
    bit to the same in-memory cypool call on the previous level.  Chunks
    shrink with the levels; rechunk a level if its blocks get too small.

    Parameters
    ----------
    x : dask.array.Array or array_like
        ``(N, C, *spatial)`` or ``(C, *spatial)`` (channels last with
        ``channels_last``) with ``spatial_dims`` spatial axes.
    levels : int
        Number of downsampled levels (>= 0).
    mode : {'max', 'avg'}
    spatial_dims : {1, 2, 3}, keyword-only
    ceil_mode : bool, keyword-only
        Keep an odd last row/column as a partial window instead of dropping it
        (for ``'avg'`` it is averaged over the elements it holds).
    channels_last : bool, keyword-only
    num_threads : int, optional, keyword-only
        Threads for each block's call (default 1: Dask runs blocks in parallel).

    Returns
    -------
    list of dask.array.Array
        ``levels + 1`` arrays, ``x`` itself first.

    Examples
    --------
    >>> import numpy as np, dask.array as da, cypool.dask
    >>> x = da.zeros((1, 3, 256, 200), chunks=(1, 1, 64, 64))
    >>> [level.shape[2:] for level in cypool.dask.pyramid(x, 3, "avg")]
    [(256, 200), (128, 100), (64, 50), (32, 25)]
    """
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    if spatial_dims not in (1, 2, 3):
        raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims!r}")
    if isinstance(levels, (bool, np.bool_)) or not isinstance(levels, (int, np.integer)) \
            or levels < 0:
        raise ValueError(f"levels must be a non-negative int, got {levels!r}")
    result = [_as_dask(x)]
    for _ in range(int(levels)):
        if mode == "max":
            level = _max_pool(spatial_dims, result[-1], 2, 2, 0, 1, ceil_mode, channels_last,
                              num_threads)
        else:
            level = _avg_pool(spatial_dims, result[-1], 2, 2, 0, ceil_mode, True, None,
                              channels_last, num_threads)
        result.append(level)
    return result


# ------------------------------------------------------------- public names

_SHARED = """\
channels_last : bool, keyword-only
    Arrays are channels-last, ``(N, *spatial, C)``.
num_threads : int, optional, keyword-only
    Threads for each block's cypool call (default 1: Dask runs blocks in
    parallel)."""

_WINDOW_DOC = """{nd}-D {what} of a dask array, as :func:`cypool.{name}`.

Parameters
----------
x : dask.array.Array or array_like
    ``(N, C, *spatial)`` or ``(C, *spatial)`` with {nd} spatial dims; any
    chunking, spatial axes included.
{parameters}
{shared}

Returns
-------
dask.array.Array
    Equal, bit for bit, to ``cypool.{name}`` of the computed array{caveat}.

Examples
--------
>>> import numpy as np, dask.array as da, cypool, cypool.dask
>>> x = np.random.default_rng(0).standard_normal({shape})
>>> lazy = cypool.dask.{name}(da.from_array(x, chunks={chunks}), {call})
>>> np.array_equal(lazy.compute(), cypool.{name}(x, {call}))
True
"""

_WINDOW_DOCS = {
    "max_pool": ("max pooling", "kernel_size, stride=None, padding=0, dilation=1, "
                 "ceil_mode=False\n    As for :func:`cypool.max_pool{nd}d` (indices are not "
                 "offered).", "", "3, 2, 1"),
    "avg_pool": ("average pooling", "kernel_size, stride=None, padding=0, ceil_mode=False, "
                 "count_include_pad=True, divisor_override=None\n    As for "
                 ":func:`cypool.avg_pool{nd}d`.",
                 " (see the module's *Exactness* note for planes above 4M elements)",
                 "3, 2, 1, True"),
    "lp_pool": ("power-average (LP) pooling", "norm_type, kernel_size, stride=None, "
                "ceil_mode=False\n    As for :func:`cypool.lp_pool{nd}d`.", "", "2, 3, 2, True"),
}
_EXAMPLE_SHAPES = {1: ("(2, 3, 50)", "(1, 2, 17)"), 2: ("(2, 3, 30, 27)", "(1, 2, 11, 8)"),
                   3: ("(1, 2, 12, 13, 11)", "(1, 1, 5, 6, 4)")}


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
               channels_last=False, num_threads=None):
    return _max_pool(1, x, kernel_size, stride, padding, dilation, ceil_mode, channels_last,
                     num_threads)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
               channels_last=False, num_threads=None):
    return _max_pool(2, x, kernel_size, stride, padding, dilation, ceil_mode, channels_last,
                     num_threads)


def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
               channels_last=False, num_threads=None):
    return _max_pool(3, x, kernel_size, stride, padding, dilation, ceil_mode, channels_last,
                     num_threads)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, channels_last=False, num_threads=None):
    return _avg_pool(1, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, channels_last, num_threads)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, channels_last=False, num_threads=None):
    return _avg_pool(2, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, channels_last, num_threads)


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, channels_last=False, num_threads=None):
    return _avg_pool(3, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, channels_last, num_threads)


def lp_pool1d(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, channels_last=False,
              num_threads=None):
    return _lp_pool(1, x, norm_type, kernel_size, stride, ceil_mode, channels_last, num_threads)


def lp_pool2d(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, channels_last=False,
              num_threads=None):
    return _lp_pool(2, x, norm_type, kernel_size, stride, ceil_mode, channels_last, num_threads)


def lp_pool3d(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, channels_last=False,
              num_threads=None):
    return _lp_pool(3, x, norm_type, kernel_size, stride, ceil_mode, channels_last, num_threads)


for _nd in (1, 2, 3):
    for _family, (_what, _parameters, _caveat, _call) in _WINDOW_DOCS.items():
        _name = f"{_family}{_nd}d"
        _shape, _chunks = _EXAMPLE_SHAPES[_nd]
        globals()[_name].__doc__ = _WINDOW_DOC.format(
            nd=_nd, what=_what, name=_name, parameters=_parameters.format(nd=_nd),
            shared=_SHARED, caveat=_caveat, shape=_shape, chunks=_chunks, call=_call)
del _nd, _family, _what, _parameters, _caveat, _call, _name, _shape, _chunks


_GLOBAL_DOC = """Global {what} pooling of a dask array, as :func:`cypool.global_{op}_pool`.

{how}

Parameters
----------
x : dask.array.Array or array_like
    Batched ``(N, C, *spatial)``, or ``(N, *spatial, C)`` with
    ``channels_last``; any chunking.
keepdims : bool
    Keep the spatial axes with size 1; else the result is ``(N, C)``.
{shared}

Returns
-------
dask.array.Array

Examples
--------
>>> import numpy as np, dask.array as da, cypool, cypool.dask
>>> x = {example_input}
>>> lazy = cypool.dask.global_{op}_pool(da.from_array(x, chunks=(1, 2, 16, 7)))
>>> {check}
True
"""

global_max_pool.__doc__ = _GLOBAL_DOC.format(
    what="max", op="max", shared=_SHARED,
    how="Each block is reduced by cypool and the partial maxima are reduced again\n"
        "(a tree over the spatial chunks); the result equals the in-memory one bit\nfor bit.",
    example_input="np.random.default_rng(0).integers(0, 1000, (2, 3, 40, 30)).astype(np.int32)",
    check="np.array_equal(lazy.compute(), cypool.global_max_pool(x))")
global_avg_pool.__doc__ = _GLOBAL_DOC.format(
    what="average", op="avg", shared=_SHARED,
    how="With the spatial axes in one chunk each block is pooled by cypool, bit for\n"
        "bit as in memory.  With chunked spatial axes the mean is a tree reduction\n"
        "of float64 partial sums: equal to the in-memory result to rounding (a few\n"
        "ulp), not bitwise, since the additions happen in another order.",
    example_input="np.random.default_rng(0).standard_normal((2, 3, 40, 30))",
    check="np.allclose(lazy.compute(), cypool.global_avg_pool(x), rtol=1e-12)")
