"""Adaptive, global and LP pooling: normalise arguments, allocate, dispatch.

Like ``_pooling``: each public function validates through ``_args``,
allocates its result and calls one compiled kernel (``_adaptive``, ``_lp``;
max backward reuses max pooling's scatter).  Global pooling is adaptive
pooling to size 1 of each plane flattened to ``(1, 1, P)``.
"""

import numpy as np

from cypool import _adaptive, _args, _lp
from cypool._pooling import _SHARED_KEYWORDS, _max_pool_backward

_INT64 = np.dtype(np.int64)


# ---------------------------------------------------------------- helpers

def _run_real(kernel, op, x, plan, out, nthreads, *kernel_args):
    """A float-computing forward (``op`` names it in errors): float32/64 kept,
    float16 through float32, integers to float64."""
    compute = _args.real_compute_dtype(x.dtype, op=op)
    values = _args.result(out, plan.out_shape, _args.real_result_dtype(x.dtype), x)
    if x.size:
        target = values if values.dtype == compute else _args.empty(plan.out_shape, compute)
        kernel(_args.as_kernel_input(x, compute, nthreads).reshape(plan.in_kernel_shape),
               target.reshape(plan.out_kernel_shape), *kernel_args,
               plan.layout.channels_last, _args.threads_for(nthreads, x.size))
        if target is not values:
            _args.cast_into(values, target, nthreads)
    return values


def _run_max(x, plan, return_indices, out, nthreads):
    """Adaptive or global max: integers kept, float16 through float32, bool
    as uint8 (a logical OR)."""
    compute = _args.max_compute_dtype(x.dtype)
    return_indices = _args.flag(return_indices, "return_indices")
    out_values, out_indices = _args.split_out(out, return_indices)
    values = _args.result(out_values, plan.out_shape, x.dtype, x)
    indices = (_args.result(out_indices, plan.out_shape, _INT64, x, name="out[1] (indices)")
               if return_indices else None)
    if x.size:
        kernel_out = plan.out_kernel_shape
        if compute == x.dtype:
            target = values
        elif x.dtype == np.bool_:
            target = values.view(np.uint8)
        else:
            target = _args.empty(plan.out_shape, compute)
        _adaptive.adaptive_max_forward(
            _args.as_kernel_input(x, compute, nthreads).reshape(plan.in_kernel_shape),
            target.reshape(kernel_out),
            None if indices is None else indices.reshape(kernel_out),
            plan.in_size, plan.out_size, plan.layout.channels_last,
            _args.threads_for(nthreads, x.size),
        )
        if target is not values and target.base is not values:
            _args.cast_into(values, target, nthreads)
    return (values, indices) if return_indices else values


def _avg_backward(grad, shape, plan, out, nthreads):
    """Adaptive average backward over ``plan`` into a result of ``shape``."""
    compute = _args.real_compute_dtype(grad.dtype, "grad_output", "average backward")
    grad_in = _args.result(out, shape, _args.real_result_dtype(grad.dtype), grad)
    if grad_in.size:
        target = grad_in if grad_in.dtype == compute else _args.empty(shape, compute)
        _adaptive.adaptive_avg_backward(
            _args.as_kernel_input(grad, compute, nthreads).reshape(plan.out_kernel_shape),
            target.reshape(plan.in_kernel_shape), plan.in_size, plan.out_size,
            plan.layout.channels_last, _args.threads_for(nthreads, grad_in.size),
        )
        if target is not grad_in:
            _args.cast_into(grad_in, target, nthreads)
    return grad_in


def _global_grad_plan(grad, input_shape, channels_last):
    """Global plan of ``input_shape``; ``grad`` may have either result shape."""
    shape = _args.input_shape(input_shape)
    plan = _args.global_plan(shape, channels_last, True, name="input_shape")
    flat = (plan.layout.batch, plan.layout.channels)
    if grad.shape not in (flat, plan.out_shape):
        raise ValueError(
            f"grad_output must have shape {flat} or {plan.out_shape} (the global pool of "
            f"input_shape {shape}), got {grad.shape}"
        )
    return shape, plan


# ------------------------------------------------------------ the families

def _adaptive_avg_pool(nd, x, output_size, channels_last, out, num_threads):
    x = _args.as_array(x)
    plan = _args.adaptive_plan(nd, x.shape, output_size, channels_last)
    return _run_real(_adaptive.adaptive_avg_forward, "adaptive average pooling", x, plan, out,
                     _args.num_threads(num_threads), plan.in_size, plan.out_size)


def _adaptive_max_pool(nd, x, output_size, return_indices, channels_last, out, num_threads):
    x = _args.as_array(x)
    _args.max_compute_dtype(x.dtype)
    plan = _args.adaptive_plan(nd, x.shape, output_size, channels_last)
    return _run_max(x, plan, return_indices, out, _args.num_threads(num_threads))


def _adaptive_avg_pool_backward(nd, grad_output, input_shape, channels_last, out, num_threads):
    grad = _args.as_array(grad_output, "grad_output")
    _args.real_compute_dtype(grad.dtype, "grad_output", "average backward")
    lay = _args.layout(_args.input_shape(input_shape), nd, channels_last, name="input_shape")
    grad_lay = _args.layout(grad.shape, nd, lay.channels_last, name="grad_output")
    if (grad_lay.batched, grad_lay.batch, grad_lay.channels) != (lay.batched, lay.batch, lay.channels):
        raise ValueError(
            f"grad_output shape {grad.shape} does not match input_shape {tuple(input_shape)} "
            "in its batch and channel dims"
        )
    shape = lay.shape_with(lay.spatial)
    plan = _args.adaptive_plan(nd, shape, grad_lay.spatial, lay.channels_last, name="input_shape")
    return _avg_backward(grad, shape, plan, out, _args.num_threads(num_threads))


def _global_max_pool_backward(grad_output, indices, input_shape, channels_last, out,
                              num_threads):
    grad = _args.as_array(grad_output, "grad_output")
    _args.real_compute_dtype(grad.dtype, "grad_output", "max pooling backward")
    shape, plan = _global_grad_plan(grad, input_shape, channels_last)
    index = _args.index_array(indices, grad.shape)
    grad_in = _args.result(out, shape, _args.real_result_dtype(grad.dtype), grad)
    # max pooling's 1-D backward over the flattened planes does the rest
    n, c, plane = plan.layout.batch, plan.layout.channels, plan.in_size[2]
    flat_in, flat_out = ((n, plane, c), (n, 1, c)) if plan.layout.channels_last else \
        ((n, c, plane), (n, c, 1))
    _max_pool_backward(1, grad.reshape(flat_out), index.reshape(flat_out), flat_in,
                       plan.layout.channels_last, grad_in.reshape(flat_in), num_threads)
    return grad_in


def _lp_pool(nd, x, norm_type, kernel_size, stride, ceil_mode, channels_last, out, num_threads):
    x = _args.as_array(x)
    _args.real_compute_dtype(x.dtype, op="LP pooling")
    p = _args.norm_type(norm_type)
    plan = _args.pool_plan(nd, x.shape, kernel_size, stride, 0, 1, ceil_mode, channels_last)
    return _run_real(_lp.lp_pool_forward, "LP pooling", x, plan, out,
                     _args.num_threads(num_threads), plan.kernel_geometry, p)


def _lp_pool_backward(nd, grad_output, x, norm_type, kernel_size, stride, ceil_mode,
                      channels_last, out, num_threads):
    grad = _args.as_array(grad_output, "grad_output")
    x = _args.as_array(x)
    _args.real_compute_dtype(grad.dtype, "grad_output", "LP pooling backward")
    _args.real_compute_dtype(x.dtype, "x", "LP pooling backward")
    # the gradient takes the dtype both inputs promote to
    result_dtype = np.promote_types(_args.real_result_dtype(grad.dtype),
                                    _args.real_result_dtype(x.dtype))
    compute = _args.real_compute_dtype(result_dtype)
    p = _args.norm_type(norm_type)
    plan = _args.pool_plan(nd, x.shape, kernel_size, stride, 0, 1, ceil_mode, channels_last)
    nthreads = _args.num_threads(num_threads)
    if grad.shape != plan.out_shape:
        raise ValueError(
            f"grad_output must have shape {plan.out_shape} (the pooled shape of x {x.shape}), "
            f"got {grad.shape}"
        )
    grad_in = _args.result(out, x.shape, result_dtype, x)
    if out is not None and np.may_share_memory(grad_in, grad):
        raise ValueError("out must not overlap grad_output")
    if grad_in.size:
        target = grad_in if grad_in.dtype == compute else _args.empty(x.shape, compute)
        _lp.lp_pool_backward(
            _args.as_kernel_input(grad, compute, nthreads).reshape(plan.out_kernel_shape),
            _args.as_kernel_input(x, compute, nthreads).reshape(plan.in_kernel_shape),
            target.reshape(plan.in_kernel_shape), plan.kernel_geometry, p,
            plan.layout.channels_last, _args.threads_for(nthreads, grad_in.size),
        )
        if target is not grad_in:
            _args.cast_into(grad_in, target, nthreads)
    return grad_in


# ------------------------------------------------------------ public names

def _doc(template, nd=None):
    if nd is None:
        return template.format(shared=_SHARED_KEYWORDS)
    # examples pool np.arange(5) laid along the last of nd spatial dims
    shape = (1, 1) + (1,) * (nd - 1) + (5,)
    keep = "(" + "None, " * (nd - 1) + "3)"
    lp_shape = (1, 1) + (2,) * (nd - 1) + (4,)
    return template.format(nd=nd, shared=_SHARED_KEYWORDS, shape=shape, keep=keep,
                           out_shape=shape[:-1] + (3,), row_shape=shape[:-1] + (4,),
                           lp_shape=lp_shape, lp_size=2 ** (nd - 1) * 4,
                           lp_kernel=(1,) * (nd - 1) + (2,) if nd > 1 else 2)


_ADAPTIVE_AVG_DOC = """{nd}-D adaptive average pooling, as ``torch.nn.functional.adaptive_avg_pool{nd}d``.

Output window ``i`` along an axis of input size ``L`` and output size ``O``
covers ``[floor(i*L/O), ceil((i+1)*L/O))`` (exact integer arithmetic) and
gives the mean of its elements.

Parameters
----------
x : array_like
    Input, ``(N, C, *spatial)`` or ``(C, *spatial)`` with {nd} spatial dims.
    float32/float64 kept, float16 computed in float32, integers give float64.
output_size : int or tuple of {nd} ints or None
    Output spatial size, each in ``[1, 2**31 - 1]``; a None entry keeps that
    input size. May exceed the input size (windows then repeat elements).
{shared}

Returns
-------
ndarray

Examples
--------
>>> import numpy as np, cypool
>>> x = np.arange(5.0).reshape{shape}
>>> cypool.adaptive_avg_pool{nd}d(x, {keep}).ravel().tolist()
[0.5, 2.0, 3.5]
"""

_ADAPTIVE_MAX_DOC = """{nd}-D adaptive max pooling, as ``torch.nn.functional.adaptive_max_pool{nd}d``.

Windows as in :func:`adaptive_avg_pool{nd}d`; maxima and indices as in
:func:`max_pool{nd}d` (ties go to the first maximum, the last NaN wins,
indices are int64 flat offsets inside each input plane).

Parameters
----------
x : array_like
    Input, ``(N, C, *spatial)`` or ``(C, *spatial)`` with {nd} spatial dims.
    float16/32/64, bool (a logical OR) or any integer dtype; the result keeps it.
output_size : int or tuple of {nd} ints or None
    Output spatial size, each in ``[1, 2**31 - 1]``; None keeps the input size.
return_indices : bool
    Also return the int64 indices of the maxima.
{shared}

Returns
-------
ndarray, or (ndarray, ndarray of int64) with ``return_indices``.

Examples
--------
>>> import numpy as np, cypool
>>> x = np.arange(5.0).reshape{shape}
>>> y, idx = cypool.adaptive_max_pool{nd}d(x, {keep}, return_indices=True)
>>> y.ravel().tolist(), idx.ravel().tolist()
([1.0, 3.0, 4.0], [1, 3, 4])
"""

_ADAPTIVE_AVG_BACKWARD_DOC = """Gradient of :func:`adaptive_avg_pool{nd}d` with respect to its input.

Parameters
----------
grad_output : array_like
    Gradient of the pooled result; its spatial shape is the ``output_size``.
input_shape : tuple of int
    Shape of the pooled input.
{shared}

Returns
-------
ndarray
    ``grad_input`` of shape ``input_shape``: each output gradient spread
    evenly over its window (overlapping windows accumulate).

Examples
--------
>>> import numpy as np, cypool
>>> g = cypool.adaptive_avg_pool{nd}d_backward(np.ones({out_shape}), {shape})
>>> g.ravel().tolist()
[0.5, 0.8333333333333333, 0.3333333333333333, 0.8333333333333333, 0.5]
"""

_ADAPTIVE_MAX_BACKWARD_DOC = """Gradient of :func:`adaptive_max_pool{nd}d` with respect to its input.

The same operation as :func:`max_pool{nd}d_backward`: each output gradient is
added at its index.

Parameters
----------
grad_output : array_like
indices : array_like of int
    The indices :func:`adaptive_max_pool{nd}d` returned (PyTorch's work too).
input_shape : tuple of int
{shared}

Returns
-------
ndarray
    ``grad_input`` of shape ``input_shape``.

Examples
--------
>>> import numpy as np, cypool
>>> x = np.arange(5.0).reshape{shape}
>>> y, idx = cypool.adaptive_max_pool{nd}d(x, {keep}, return_indices=True)
>>> cypool.adaptive_max_pool{nd}d_backward(np.ones_like(y), idx, x.shape).ravel().tolist()
[0.0, 1.0, 0.0, 1.0, 1.0]
"""

_LP_DOC = """{nd}-D power-average pooling, as ``torch.nn.functional.lp_pool{nd}d``.

Each window gives ``(sum x**p) ** (1/p)``; ``norm_type=inf`` gives the
maximum of ``|x|``. There is no padding.

Parameters
----------
x : array_like
    Input, ``(N, C, *spatial)`` or ``(C, *spatial)`` with {nd} spatial dims.
    float32/float64 kept, float16 computed in float32, integers give float64.
norm_type : float
    ``p > 0``, or ``float('inf')``.
kernel_size : int or tuple of {nd} ints
stride : int or tuple of {nd} ints, optional
    Defaults to ``kernel_size``.
ceil_mode : bool
    Use ceil instead of floor for the output size.
{shared}

Returns
-------
ndarray

Notes
-----
Computed as PyTorch defines it, ``(avg_pool(x**p) * K) ** (1/p)`` with ``K``
the kernel's element count, powers as ``torch.pow`` takes them. So a window
cut short by ``ceil_mode`` (``n < K`` elements) gives ``(sum * K / n) ** (1/p)``,
and a negative window sum gives NaN unless ``1/p`` is an odd integer.

Examples
--------
>>> import numpy as np, cypool
>>> x = np.arange({lp_size}, dtype=np.float64).reshape{lp_shape}
>>> cypool.lp_pool{nd}d(x, 1, {lp_kernel}).ravel().tolist()[:2]
[1.0, 5.0]
>>> cypool.lp_pool{nd}d(x, float('inf'), {lp_kernel}).ravel().tolist()[:2]
[1.0, 3.0]
"""

_LP_BACKWARD_DOC = """Gradient of :func:`lp_pool{nd}d` with respect to ``x``.

Parameters
----------
grad_output : array_like
    Gradient of the pooled result.
x : array_like
    The pooled input.
norm_type, kernel_size, stride, ceil_mode
    As given to :func:`lp_pool{nd}d`.
{shared}

Returns
-------
ndarray
    ``grad_input`` shaped like ``x``, of the dtype ``grad_output`` and ``x``
    promote to (integers count as float64).

Notes
-----
PyTorch's autograd of :func:`lp_pool{nd}d`: ``g * x**(p-1) * y**(1-p)`` for a
full window with result ``y``. A window whose power sum is 0 passes no
gradient; where no window passes any, the gradient is 0 (PyTorch gives NaN
there from ``0 * inf`` when ``x`` is 0 with ``p < 1``, or infinite).
``norm_type=inf`` sends the gradient to the window's largest ``|x|``,
times ``sign(x)``.

Examples
--------
>>> import numpy as np, cypool
>>> x = np.array([3.0, 4.0, 0.0, 0.0]).reshape{row_shape}
>>> y = cypool.lp_pool{nd}d(x, 2, {lp_kernel})
>>> y.ravel().tolist()
[5.0, 0.0]
>>> g = cypool.lp_pool{nd}d_backward(np.ones_like(y), x, 2, {lp_kernel})
>>> np.round(g, 12).ravel().tolist()
[0.6, 0.8, 0.0, 0.0]
"""

_GLOBAL_AVG_DOC = """Global average pooling: the mean of each plane over all its spatial dims.

The classifier-head replacement for flatten + dense; equal to
``x.mean(axis=spatial)``, computed as :func:`adaptive_avg_pool2d` to size 1.

Parameters
----------
x : array_like
    Batched input ``(N, C, *spatial)`` with any number (>= 1) of spatial
    dims, or ``(N, *spatial, C)`` with ``channels_last``. Axis 0 is always the
    batch: pool one sample as ``x[None]``. Dtypes as in :func:`avg_pool2d`.
keepdims : bool
    False: result ``(N, C)``. True: the spatial dims stay, each of size 1.
{shared}

Returns
-------
ndarray

Examples
--------
>>> import numpy as np, cypool
>>> x = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)
>>> cypool.global_avg_pool(x).tolist()
[[1.5, 5.5, 9.5], [13.5, 17.5, 21.5]]
>>> cypool.global_avg_pool(x, keepdims=True).shape
(2, 3, 1, 1)
"""

_GLOBAL_MAX_DOC = """Global max pooling: the maximum of each plane over all its spatial dims.

Parameters
----------
x : array_like
    Batched input ``(N, C, *spatial)`` with any number (>= 1) of spatial
    dims, or ``(N, *spatial, C)`` with ``channels_last``. Axis 0 is always the
    batch. Dtypes as in :func:`max_pool2d` (integers and bool kept).
keepdims : bool
    False: result ``(N, C)``. True: the spatial dims stay, each of size 1.
return_indices : bool
    Also return int64 flat offsets of the maxima inside each plane (row-major
    over all spatial dims; ties go to the first, the last NaN wins).
{shared}

Returns
-------
ndarray, or (ndarray, ndarray of int64) with ``return_indices``.

Examples
--------
>>> import numpy as np, cypool
>>> x = np.array([[[[1, 7], [7, 2]]]], dtype=np.int16)
>>> y, idx = cypool.global_max_pool(x, return_indices=True)
>>> y.tolist(), idx.tolist()
([[7]], [[1]])
"""

_GLOBAL_AVG_BACKWARD_DOC = """Gradient of :func:`global_avg_pool` with respect to its input.

Parameters
----------
grad_output : array_like
    ``(N, C)``, or the ``keepdims=True`` shape.
input_shape : tuple of int
    Shape of the pooled (batched) input.
{shared}

Returns
-------
ndarray
    ``grad_input`` of shape ``input_shape``: each gradient divided evenly
    over its plane.

Examples
--------
>>> import numpy as np, cypool
>>> cypool.global_avg_pool_backward(np.array([[4.0]]), (1, 1, 2, 2)).tolist()
[[[[1.0, 1.0], [1.0, 1.0]]]]
"""

_GLOBAL_MAX_BACKWARD_DOC = """Gradient of :func:`global_max_pool` with respect to its input.

Parameters
----------
grad_output : array_like
    ``(N, C)``, or the ``keepdims=True`` shape.
indices : array_like of int
    The indices :func:`global_max_pool` returned, shaped like ``grad_output``.
input_shape : tuple of int
    Shape of the pooled (batched) input.
{shared}

Returns
-------
ndarray
    ``grad_input`` of shape ``input_shape``, the gradient at each maximum.

Examples
--------
>>> import numpy as np, cypool
>>> cypool.global_max_pool_backward(np.array([[4.0]]), np.array([[1]]), (1, 1, 2, 2)).tolist()
[[[[0.0, 4.0], [0.0, 0.0]]]]
"""


def adaptive_avg_pool1d(x, output_size, *, channels_last=False, out=None, num_threads=None):
    return _adaptive_avg_pool(1, x, output_size, channels_last, out, num_threads)


def adaptive_avg_pool2d(x, output_size, *, channels_last=False, out=None, num_threads=None):
    return _adaptive_avg_pool(2, x, output_size, channels_last, out, num_threads)


def adaptive_avg_pool3d(x, output_size, *, channels_last=False, out=None, num_threads=None):
    return _adaptive_avg_pool(3, x, output_size, channels_last, out, num_threads)


def adaptive_max_pool1d(x, output_size, return_indices=False, *, channels_last=False, out=None,
                        num_threads=None):
    return _adaptive_max_pool(1, x, output_size, return_indices, channels_last, out, num_threads)


def adaptive_max_pool2d(x, output_size, return_indices=False, *, channels_last=False, out=None,
                        num_threads=None):
    return _adaptive_max_pool(2, x, output_size, return_indices, channels_last, out, num_threads)


def adaptive_max_pool3d(x, output_size, return_indices=False, *, channels_last=False, out=None,
                        num_threads=None):
    return _adaptive_max_pool(3, x, output_size, return_indices, channels_last, out, num_threads)


def adaptive_avg_pool1d_backward(grad_output, input_shape, *, channels_last=False, out=None,
                                 num_threads=None):
    return _adaptive_avg_pool_backward(1, grad_output, input_shape, channels_last, out,
                                       num_threads)


def adaptive_avg_pool2d_backward(grad_output, input_shape, *, channels_last=False, out=None,
                                 num_threads=None):
    return _adaptive_avg_pool_backward(2, grad_output, input_shape, channels_last, out,
                                       num_threads)


def adaptive_avg_pool3d_backward(grad_output, input_shape, *, channels_last=False, out=None,
                                 num_threads=None):
    return _adaptive_avg_pool_backward(3, grad_output, input_shape, channels_last, out,
                                       num_threads)


def adaptive_max_pool1d_backward(grad_output, indices, input_shape, *, channels_last=False,
                                 out=None, num_threads=None):
    return _max_pool_backward(1, grad_output, indices, input_shape, channels_last, out,
                              num_threads)


def adaptive_max_pool2d_backward(grad_output, indices, input_shape, *, channels_last=False,
                                 out=None, num_threads=None):
    return _max_pool_backward(2, grad_output, indices, input_shape, channels_last, out,
                              num_threads)


def adaptive_max_pool3d_backward(grad_output, indices, input_shape, *, channels_last=False,
                                 out=None, num_threads=None):
    return _max_pool_backward(3, grad_output, indices, input_shape, channels_last, out,
                              num_threads)


def global_avg_pool(x, keepdims=False, *, channels_last=False, out=None, num_threads=None):
    x = _args.as_array(x)
    plan = _args.global_plan(x.shape, channels_last, keepdims)
    return _run_real(_adaptive.adaptive_avg_forward, "global average pooling", x, plan, out,
                     _args.num_threads(num_threads), plan.in_size, plan.out_size)


def global_max_pool(x, keepdims=False, return_indices=False, *, channels_last=False, out=None,
                    num_threads=None):
    x = _args.as_array(x)
    _args.max_compute_dtype(x.dtype)
    plan = _args.global_plan(x.shape, channels_last, keepdims)
    return _run_max(x, plan, return_indices, out, _args.num_threads(num_threads))


def global_avg_pool_backward(grad_output, input_shape, *, channels_last=False, out=None,
                             num_threads=None):
    grad = _args.as_array(grad_output, "grad_output")
    _args.real_compute_dtype(grad.dtype, "grad_output", "average backward")
    shape, plan = _global_grad_plan(grad, input_shape, channels_last)
    return _avg_backward(grad, shape, plan, out, _args.num_threads(num_threads))


def global_max_pool_backward(grad_output, indices, input_shape, *, channels_last=False,
                             out=None, num_threads=None):
    return _global_max_pool_backward(grad_output, indices, input_shape, channels_last, out,
                                     num_threads)


def lp_pool1d(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, channels_last=False,
              out=None, num_threads=None):
    return _lp_pool(1, x, norm_type, kernel_size, stride, ceil_mode, channels_last, out,
                    num_threads)


def lp_pool2d(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, channels_last=False,
              out=None, num_threads=None):
    return _lp_pool(2, x, norm_type, kernel_size, stride, ceil_mode, channels_last, out,
                    num_threads)


def lp_pool3d(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, channels_last=False,
              out=None, num_threads=None):
    return _lp_pool(3, x, norm_type, kernel_size, stride, ceil_mode, channels_last, out,
                    num_threads)


def lp_pool1d_backward(grad_output, x, norm_type, kernel_size, stride=None, ceil_mode=False, *,
                       channels_last=False, out=None, num_threads=None):
    return _lp_pool_backward(1, grad_output, x, norm_type, kernel_size, stride, ceil_mode,
                             channels_last, out, num_threads)


def lp_pool2d_backward(grad_output, x, norm_type, kernel_size, stride=None, ceil_mode=False, *,
                       channels_last=False, out=None, num_threads=None):
    return _lp_pool_backward(2, grad_output, x, norm_type, kernel_size, stride, ceil_mode,
                             channels_last, out, num_threads)


def lp_pool3d_backward(grad_output, x, norm_type, kernel_size, stride=None, ceil_mode=False, *,
                       channels_last=False, out=None, num_threads=None):
    return _lp_pool_backward(3, grad_output, x, norm_type, kernel_size, stride, ceil_mode,
                             channels_last, out, num_threads)


for _nd in (1, 2, 3):
    for _template, _name in ((_ADAPTIVE_AVG_DOC, "adaptive_avg_pool{}d"),
                             (_ADAPTIVE_MAX_DOC, "adaptive_max_pool{}d"),
                             (_ADAPTIVE_AVG_BACKWARD_DOC, "adaptive_avg_pool{}d_backward"),
                             (_ADAPTIVE_MAX_BACKWARD_DOC, "adaptive_max_pool{}d_backward"),
                             (_LP_DOC, "lp_pool{}d"), (_LP_BACKWARD_DOC, "lp_pool{}d_backward")):
        globals()[_name.format(_nd)].__doc__ = _doc(_template, _nd)
for _template, _function in ((_GLOBAL_AVG_DOC, global_avg_pool), (_GLOBAL_MAX_DOC, global_max_pool),
                             (_GLOBAL_AVG_BACKWARD_DOC, global_avg_pool_backward),
                             (_GLOBAL_MAX_BACKWARD_DOC, global_max_pool_backward)):
    _function.__doc__ = _doc(_template)
del _nd, _template, _name, _function

__all__ = [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_backward", "adaptive_avg_pool3d_backward",
    "adaptive_max_pool1d_backward", "adaptive_max_pool2d_backward", "adaptive_max_pool3d_backward",
    "global_avg_pool", "global_max_pool", "global_avg_pool_backward", "global_max_pool_backward",
    "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "lp_pool1d_backward", "lp_pool2d_backward", "lp_pool3d_backward",
]
