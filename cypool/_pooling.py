"""The public pooling functions: normalise arguments, allocate, dispatch.

Each public function hands its arguments to ``_args`` (validation), allocates
the result, and calls one compiled kernel.  Nothing else lives here.
"""

import numpy as np

from cypool import _args, _avg, _max

_INT64 = np.dtype(np.int64)


# Doc examples pool np.arange over a (1, 1, 4, ..., 4) input with kernel 2;
# these are the first two outputs, worked out by hand.
_EXAMPLE_MAX = {1: "[1.0, 3.0]", 2: "[5.0, 7.0]", 3: "[21.0, 23.0]"}
_EXAMPLE_AVG = {1: "[0.5, 2.5]", 2: "[2.5, 4.5]", 3: "[10.5, 12.5]"}


# -------------------------------------------------------------------- max

def _max_pool(nd, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
              channels_last, out, num_threads):
    x = _args.as_array(x)
    compute = _args.max_compute_dtype(x.dtype)
    plan = _args.pool_plan(nd, x.shape, kernel_size, stride, padding, dilation, ceil_mode,
                           channels_last)
    return_indices = _args.flag(return_indices, "return_indices")
    nthreads = _args.num_threads(num_threads)
    out_shape = plan.out_shape
    out_values, out_indices = _args.split_out(out, return_indices)
    values = _args.result(out_values, out_shape, x.dtype, x)
    indices = (_args.result(out_indices, out_shape, _INT64, (x, values), name="out[1] (indices)")
               if return_indices else None)
    if x.size:
        if compute == x.dtype:
            target = values
        elif x.dtype == np.bool_:
            target = values.view(np.uint8)
        else:
            target = _args.empty(out_shape, compute)
        # the kernels read only the bytes: no reshape to their (planes, D, H, W) view
        _max.max_pool_forward(
            _args.as_kernel_input(x, compute, nthreads), target, indices,
            plan.kernel_geometry, plan.layout.channels_last,
            _args.threads_for(nthreads, x.size),
        )
        if target is not values and target.base is not values:
            _args.cast_into(values, target, nthreads)
    return (values, indices) if return_indices else values


def _check_input_plane(bad, plane, spatial):
    if bad:
        raise ValueError(
            f"indices must be offsets inside one input plane, in [0, {plane}) for spatial size "
            f"{spatial}; {bad} of them are not"
        )


def _max_pool_backward(nd, grad_output, indices, input_shape, channels_last, out, num_threads):
    grad = _args.as_array(grad_output, "grad_output")
    compute = _args.real_compute_dtype(grad.dtype, "grad_output", "max pooling backward")
    lay = _args.layout(_args.input_shape(input_shape), nd, channels_last,
                       name="input_shape")
    grad_lay = _args.layout(grad.shape, nd, lay.channels_last, name="grad_output")
    if (grad_lay.batched, grad_lay.batch, grad_lay.channels) != (lay.batched, lay.batch, lay.channels):
        raise ValueError(
            f"grad_output shape {grad.shape} does not match input_shape {tuple(input_shape)} "
            "in its batch and channel dims"
        )
    index = _args.index_array(indices, grad.shape)
    nthreads = _args.num_threads(num_threads)
    plane = int(np.prod(lay.spatial))
    # A result of our own may be written before the indices are known good: the
    # scatter checks them in its one pass.  A caller's out is checked first.
    fused = out is None
    grad_size = lay.batch * lay.channels * plane
    if not fused or grad_size == 0:
        bad = _max.count_bad_indices(index, plane, _args.threads_for(nthreads, index.size))
        _check_input_plane(bad, plane, lay.spatial)
    grad_in, zeroed = _args.scatter_result(out, lay.shape_with(lay.spatial),
                                           _args.real_result_dtype(grad.dtype), (grad, index))
    if grad_size == 0:
        return grad_in
    out_plane = int(np.prod(grad_lay.spatial))
    if lay.channels_last:
        grad_shape, in_shape = (lay.batch, out_plane, lay.channels), (lay.batch, plane, lay.channels)
    else:
        grad_shape, in_shape = (lay.batch * lay.channels, out_plane), (lay.batch * lay.channels, plane)
    target = grad_in if grad_in.dtype == compute else _args.empty(grad_in.shape, compute)
    bad = _max.max_pool_backward(
        _args.as_kernel_input(grad, compute, nthreads).reshape(grad_shape), index.reshape(grad_shape),
        target.reshape(in_shape), plane, lay.channels_last,
        _args.threads_for(nthreads, grad_in.size), zeroed and target is grad_in,
    )
    _check_input_plane(bad, plane, lay.spatial)
    if target is not grad_in:
        _args.cast_into(grad_in, target, nthreads)
    return grad_in


# ---------------------------------------------------------------- average

def _avg_pool(nd, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override, channels_last, out, num_threads):
    x = _args.as_array(x)
    compute = _args.real_compute_dtype(x.dtype)
    plan = _args.pool_plan(nd, x.shape, kernel_size, stride, padding, 1, ceil_mode, channels_last)
    include_pad = _args.flag(count_include_pad, "count_include_pad")
    override = _args.divisor(divisor_override)
    nthreads = _args.num_threads(num_threads)
    out_shape = plan.out_shape
    values = _args.result(out, out_shape, _args.real_result_dtype(x.dtype), x)
    if x.size:
        target = values if values.dtype == compute else _args.empty(out_shape, compute)
        _avg.avg_pool_forward(
            _args.as_kernel_input(x, compute, nthreads), target,
            plan.kernel_geometry, include_pad, override, plan.layout.channels_last,
            _args.threads_for(nthreads, x.size),
        )
        if target is not values:
            _args.cast_into(values, target, nthreads)
    return values


def _avg_pool_backward(nd, grad_output, input_shape, kernel_size, stride, padding, ceil_mode,
                       count_include_pad, divisor_override, channels_last, out, num_threads):
    grad = _args.as_array(grad_output, "grad_output")
    compute = _args.real_compute_dtype(grad.dtype, "grad_output", "average pooling backward")
    shape = _args.input_shape(input_shape)
    plan = _args.pool_plan(nd, shape, kernel_size, stride, padding, 1, ceil_mode, channels_last,
                           name="input_shape")
    include_pad = _args.flag(count_include_pad, "count_include_pad")
    override = _args.divisor(divisor_override)
    nthreads = _args.num_threads(num_threads)
    if grad.shape != plan.out_shape:
        raise ValueError(
            f"grad_output must have shape {plan.out_shape} (the pooled shape of input_shape "
            f"{shape}), got {grad.shape}"
        )
    grad_in = _args.result(out, shape, _args.real_result_dtype(grad.dtype), grad)
    if grad_in.size:
        target = grad_in if grad_in.dtype == compute else _args.empty(shape, compute)
        _avg.avg_pool_backward(
            _args.as_kernel_input(grad, compute, nthreads).reshape(plan.out_kernel_shape),
            target.reshape(plan.in_kernel_shape),
            plan.kernel_geometry, include_pad, override, plan.layout.channels_last,
            _args.threads_for(nthreads, grad_in.size),
        )
        if target is not grad_in:
            _args.cast_into(grad_in, target, nthreads)
    return grad_in


# ------------------------------------------------------------ public names

_SHARED_KEYWORDS = """\
channels_last : bool, keyword-only
    False (default): arrays are ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``.
    True: ``(N, *spatial, C)`` or ``(*spatial, C)``, computed in that layout.
out : ndarray, optional, keyword-only
    Preallocated C-contiguous result of the exact shape and dtype.
num_threads : int, optional, keyword-only
    Threads for this call; None means ``cypool.get_num_threads()``."""


def _doc(template, nd):
    shape = (1, 1) + (4,) * nd
    return template.format(nd=nd, shared=_SHARED_KEYWORDS, shape=shape, size=4 ** nd,
                           max_first=_EXAMPLE_MAX[nd], avg_first=_EXAMPLE_AVG[nd],
                           grad_sum=float(2 ** nd))


_MAX_DOC = """{nd}-D max pooling, as ``torch.nn.functional.max_pool{nd}d``.

Parameters
----------
x : array_like
    Input, ``(N, C, *spatial)`` or ``(C, *spatial)`` with {nd} spatial dims.
    float16/32/64, bool or any integer dtype; the result keeps it.
kernel_size : int or tuple of {nd} ints
stride : int or tuple of {nd} ints, optional
    Defaults to ``kernel_size``.
padding : int, tuple of {nd} ints, 'valid' or 'same'
    Implicit padding on both sides, at most ``kernel_size // 2``; padding is
    never read. ``'same'`` pads as Keras does (output ``ceil(L / stride)``).
dilation : int or tuple of {nd} ints
ceil_mode : bool
    Use ceil instead of floor for the output size (the last window may not
    start in the right padding).
return_indices : bool
    Also return int64 flat offsets of the maxima inside each input plane.
{shared}

Returns
-------
ndarray, or (ndarray, ndarray of int64) with ``return_indices``.

Notes
-----
Ties go to the first maximum in scan order; NaN propagates (the last NaN in
the window wins), as in PyTorch.

Examples
--------
>>> import numpy as np, cypool
>>> x = np.arange({size}, dtype=np.float32).reshape{shape}
>>> cypool.max_pool{nd}d(x, 2).ravel().tolist()[:2]
{max_first}
"""

_MAX_BACKWARD_DOC = """Gradient of :func:`max_pool{nd}d` with respect to its input.

Parameters
----------
grad_output : array_like
    Gradient of the pooled result (float; integers compute in float64).
indices : array_like of int
    The indices :func:`max_pool{nd}d` returned with ``return_indices=True``
    (PyTorch's indices work too); each must lie inside the input plane.
input_shape : tuple of int
    Shape of the pooled input.
{shared}

Returns
-------
ndarray
    ``grad_input`` of shape ``input_shape``: each output gradient added at
    its index (overlapping windows accumulate).

Examples
--------
>>> import numpy as np, cypool
>>> x = np.arange({size}, dtype=np.float32).reshape{shape}
>>> y, idx = cypool.max_pool{nd}d(x, 2, return_indices=True)
>>> g = cypool.max_pool{nd}d_backward(np.ones_like(y), idx, x.shape)
>>> float(g.sum()) == y.size
True
"""

_AVG_DOC = """{nd}-D average pooling, as ``torch.nn.functional.avg_pool{nd}d``.

Parameters
----------
x : array_like
    Input, ``(N, C, *spatial)`` or ``(C, *spatial)`` with {nd} spatial dims.
    float32/float64 kept, float16 computed in float32, integers give float64.
kernel_size : int or tuple of {nd} ints
stride : int or tuple of {nd} ints, optional
    Defaults to ``kernel_size``.
padding : int, tuple of {nd} ints, 'valid' or 'same'
    Zero padding on both sides, at most ``kernel_size // 2``. ``'same'`` pads
    as Keras does; pass ``count_include_pad=False`` for TensorFlow's divisor.
ceil_mode : bool
count_include_pad : bool
    Divide by the window size including padding (never counting the
    ceil-mode overhang), else by the number of input elements in the window.
divisor_override : int, optional
    A non-zero divisor used for every window instead.
{shared}

Returns
-------
ndarray

Examples
--------
>>> import numpy as np, cypool
>>> x = np.arange({size}, dtype=np.float32).reshape{shape}
>>> cypool.avg_pool{nd}d(x, 2).ravel().tolist()[:2]
{avg_first}
"""

_AVG_BACKWARD_DOC = """Gradient of :func:`avg_pool{nd}d` with respect to its input.

Takes the forward call's window arguments; ``grad_output`` must have the
pooled shape of ``input_shape``.

Parameters
----------
grad_output : array_like
input_shape : tuple of int
kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    As given to :func:`avg_pool{nd}d`.
{shared}

Returns
-------
ndarray
    ``grad_input`` of shape ``input_shape``.

Examples
--------
>>> import numpy as np, cypool
>>> g = cypool.avg_pool{nd}d_backward(np.ones((1, 1) + (2,) * {nd}), {shape}, 2)
>>> float(g.sum())
{grad_sum}
"""


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, channels_last=False, out=None, num_threads=None):
    return _max_pool(1, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                     channels_last, out, num_threads)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, channels_last=False, out=None, num_threads=None):
    return _max_pool(2, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                     channels_last, out, num_threads)


def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, channels_last=False, out=None, num_threads=None):
    return _max_pool(3, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                     channels_last, out, num_threads)


def max_pool1d_backward(grad_output, indices, input_shape, *, channels_last=False, out=None,
                        num_threads=None):
    return _max_pool_backward(1, grad_output, indices, input_shape, channels_last, out, num_threads)


def max_pool2d_backward(grad_output, indices, input_shape, *, channels_last=False, out=None,
                        num_threads=None):
    return _max_pool_backward(2, grad_output, indices, input_shape, channels_last, out, num_threads)


def max_pool3d_backward(grad_output, indices, input_shape, *, channels_last=False, out=None,
                        num_threads=None):
    return _max_pool_backward(3, grad_output, indices, input_shape, channels_last, out, num_threads)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, channels_last=False, out=None, num_threads=None):
    return _avg_pool(1, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, channels_last, out, num_threads)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, channels_last=False, out=None, num_threads=None):
    return _avg_pool(2, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, channels_last, out, num_threads)


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, channels_last=False, out=None, num_threads=None):
    return _avg_pool(3, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, channels_last, out, num_threads)


def avg_pool1d_backward(grad_output, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None, *,
                        channels_last=False, out=None, num_threads=None):
    return _avg_pool_backward(1, grad_output, input_shape, kernel_size, stride, padding, ceil_mode,
                              count_include_pad, divisor_override, channels_last, out, num_threads)


def avg_pool2d_backward(grad_output, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None, *,
                        channels_last=False, out=None, num_threads=None):
    return _avg_pool_backward(2, grad_output, input_shape, kernel_size, stride, padding, ceil_mode,
                              count_include_pad, divisor_override, channels_last, out, num_threads)


def avg_pool3d_backward(grad_output, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None, *,
                        channels_last=False, out=None, num_threads=None):
    return _avg_pool_backward(3, grad_output, input_shape, kernel_size, stride, padding, ceil_mode,
                              count_include_pad, divisor_override, channels_last, out, num_threads)


for _nd in (1, 2, 3):
    for _template, _name in ((_MAX_DOC, "max_pool{}d"), (_MAX_BACKWARD_DOC, "max_pool{}d_backward"),
                             (_AVG_DOC, "avg_pool{}d"), (_AVG_BACKWARD_DOC, "avg_pool{}d_backward")):
        globals()[_name.format(_nd)].__doc__ = _doc(_template, _nd)
del _nd, _template, _name
