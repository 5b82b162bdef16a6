"""Max unpooling, fractional max pooling and stochastic pooling: validate, allocate, dispatch.

Like ``_pooling``: each public function validates through ``_args``,
allocates its result and calls one compiled kernel (``_unpool``,
``_fractional``, ``_stochastic``; fractional backward reuses max pooling's
scatter).
"""

import numpy as np

from cypool import _args, _fractional, _max, _stochastic, _unpool
from cypool._pooling import _SHARED_KEYWORDS, _max_pool_backward

_INT64 = np.dtype(np.int64)


def _planes_shape(lay, plane):
    """The kernels' flat view: ``(N*C, plane)`` or channels-last ``(N, plane, C)``."""
    if lay.channels_last:
        return (lay.batch, plane, lay.channels)
    return (lay.batch * lay.channels, plane)


def _check_in_plane(index, plane, nthreads, what):
    bad = _max.count_bad_indices(index, plane, _args.threads_for(nthreads, index.size))
    _args.check_indices_in_plane(bad, index, plane, what)


# ---------------------------------------------------------------- unpooling

def _max_unpool(nd, x, indices, kernel_size, stride, padding, output_size, channels_last, out,
                num_threads):
    x = _args.as_array(x)
    _args.max_compute_dtype(x.dtype)  # the dtype table; the kernel moves items bit for bit
    lay = _args.layout(x.shape, nd, channels_last)
    index = _args.same_shape_indices(indices, x.shape)
    out_spatial = _args.unpool_output_size(nd, lay, kernel_size, stride, padding, output_size)
    nthreads = _args.num_threads(num_threads)
    out_plane = int(np.prod(out_spatial))
    # As in the backward: the scatter checks the indices of a result of our own.
    if out is not None or out_plane == 0:
        _check_in_plane(index, out_plane, nthreads, "output")
    values, zeroed = _args.scatter_result(out, lay.shape_with(out_spatial), x.dtype, (x, index))
    if values.size:
        in_plane = int(np.prod(lay.spatial))
        bad = _unpool.max_unpool_forward(
            np.require(x, requirements=["C_CONTIGUOUS", "ALIGNED"]).reshape(_planes_shape(lay, in_plane)),
            index.reshape(_planes_shape(lay, in_plane)),
            values.reshape(_planes_shape(lay, out_plane)),
            lay.channels_last, _args.threads_for(nthreads, values.size + x.size), zeroed,
        )
        _args.check_indices_in_plane(bad, index, out_plane, "output")
    return values


def _max_unpool_backward(nd, grad_output, indices, channels_last, out, num_threads):
    grad = _args.as_array(grad_output, "grad_output")
    _args.real_compute_dtype(grad.dtype, "grad_output", "max unpooling backward")
    dtype = _args.real_result_dtype(grad.dtype)  # a gather is exact, so float16 stays float16
    grad_lay = _args.layout(grad.shape, nd, channels_last, name="grad_output")
    index = _args.as_array(indices, "indices")
    lay = _args.layout(index.shape, nd, grad_lay.channels_last, name="indices")
    if (lay.batched, lay.batch, lay.channels) != (grad_lay.batched, grad_lay.batch,
                                                   grad_lay.channels):
        raise ValueError(
            f"indices shape {index.shape} does not match grad_output shape {grad.shape} in its "
            "batch and channel dims"
        )
    index = _args.index_array(index, index.shape)
    nthreads = _args.num_threads(num_threads)
    out_plane = int(np.prod(grad_lay.spatial))
    # A result of our own may be written before the indices are known good: the
    # gather checks them in its one pass.  A caller's out is checked first.
    fused = out is None
    if not fused:
        _check_in_plane(index, out_plane, nthreads, "output")
    grad_in = _args.result(out, index.shape, dtype, (grad, index))
    if grad_in.size:
        in_plane = int(np.prod(lay.spatial))
        bad = _unpool.max_unpool_backward(
            _args.as_kernel_input(grad, dtype, nthreads).reshape(_planes_shape(grad_lay, out_plane)),
            index.reshape(_planes_shape(lay, in_plane)),
            grad_in.reshape(_planes_shape(lay, in_plane)),
            lay.channels_last, _args.threads_for(nthreads, grad_in.size), fused,
        )
        _args.check_indices_in_plane(bad, index, out_plane, "output")
    return grad_in


# --------------------------------------------------------------- fractional

def _fractional_max_pool(nd, x, kernel_size, output_size, output_ratio, return_indices,
                         random_samples, rng, channels_last, out, num_threads):
    x = _args.as_array(x)
    compute = _args.max_compute_dtype(x.dtype)
    lay = _args.layout(x.shape, nd, channels_last)
    kernel, out_spatial = _args.fractional_output_size(nd, lay.spatial, kernel_size,
                                                       output_size, output_ratio)
    return_indices = _args.flag(return_indices, "return_indices")
    nthreads = _args.num_threads(num_threads)
    samples = _args.fractional_samples(random_samples, rng, lay, nd, _args.sample_dtype(x.dtype))
    starts = _fractional.window_starts(samples, lay.spatial, out_spatial, kernel,
                                       _args.threads_for(nthreads, len(samples) * sum(out_spatial)))
    out_shape = lay.shape_with(out_spatial)
    out_values, out_indices = _args.split_out(out, return_indices)
    values = _args.result(out_values, out_shape, x.dtype, x)
    indices = (_args.result(out_indices, out_shape, _INT64, (x, values), name="out[1] (indices)")
               if return_indices else None)
    if x.size:
        kernel_out = lay.kernel_shape(out_spatial)
        if compute == x.dtype:
            target = values
        elif x.dtype == np.bool_:
            target = values.view(np.uint8)
        else:
            target = _args.empty(out_shape, compute)
        _fractional.fractional_max_pool_forward(
            _args.as_kernel_input(x, compute, nthreads).reshape(lay.kernel_shape(lay.spatial)),
            target.reshape(kernel_out),
            None if indices is None else indices.reshape(kernel_out),
            starts, (1,) * (3 - nd) + kernel, lay.channels_last,
            _args.threads_for(nthreads, x.size),
        )
        if target is not values and target.base is not values:
            _args.cast_into(values, target, nthreads)
    return (values, indices) if return_indices else values


# --------------------------------------------------------------- stochastic

_WORD = (1 << 64) - 1


def _uniform_source(rng, lay, out_spatial):
    """Training's uniforms, ``Generator.random()`` draws in channels-first order:
    ``(None, stream)`` for NumPy's default bit generator PCG64, whose state
    the kernel copies and draws from in parallel (this advances ``rng`` past
    the draws, as drawing them would), else ``(uniforms, None)``."""
    gen = _args.generator(rng)
    bits = gen.bit_generator
    if type(bits) is not np.random.PCG64:
        return _args.stochastic_uniforms(gen, lay, out_spatial), None
    count = lay.batch * lay.channels * int(np.prod(out_spatial))
    with bits.lock:
        state = bits.state
        pcg = state["state"]
        stream = (pcg["state"] >> 64, pcg["state"] & _WORD, pcg["inc"] >> 64, pcg["inc"] & _WORD)
        high, low = _stochastic.pcg64_advance(stream, count)
        pcg["state"] = high << 64 | low
        bits.state = state
    return None, stream


def _stochastic_pool(nd, x, kernel_size, stride, padding, training, rng, return_indices,
                     channels_last, out, num_threads):
    x = _args.as_array(x)
    compute = _args.real_compute_dtype(x.dtype, op="stochastic pooling")
    plan = _args.pool_plan(nd, x.shape, kernel_size, stride, padding, 1, False, channels_last)
    training = _args.flag(training, "training")
    return_indices = _args.flag(return_indices, "return_indices")
    if return_indices and not training:
        raise ValueError("return_indices=True needs training=True: eval mode (training=False) "
                         "samples no element")
    nthreads = _args.num_threads(num_threads)
    uniforms = stream = None
    if training:
        uniforms, stream = _uniform_source(rng, plan.layout, plan.geometry.out_size)
    elif rng is not None:
        _args.generator(rng)  # checked, though eval draws nothing
    out_shape = plan.out_shape
    out_values, out_indices = _args.split_out(out, return_indices)
    values = _args.result(out_values, out_shape, _args.real_result_dtype(x.dtype), x)
    indices = (_args.result(out_indices, out_shape, _INT64, (x, values), name="out[1] (indices)")
               if return_indices else None)
    if x.size:
        kernel_out = plan.out_kernel_shape
        target = values if values.dtype == compute else _args.empty(out_shape, compute)
        _stochastic.stochastic_pool_forward(
            _args.as_kernel_input(x, compute, nthreads).reshape(plan.in_kernel_shape),
            None if uniforms is None else uniforms.reshape(kernel_out),
            target.reshape(kernel_out),
            None if indices is None else indices.reshape(kernel_out),
            plan.kernel_geometry, training, plan.layout.channels_last,
            _args.threads_for(nthreads, x.size), stream,
        )
        if target is not values:
            _args.cast_into(values, target, nthreads)
    return (values, indices) if return_indices else values


def _stochastic_pool_backward(nd, grad_output, input_shape, kernel_size, stride, padding,
                              training, indices, x, channels_last, out, num_threads):
    grad = _args.as_array(grad_output, "grad_output")
    compute = _args.real_compute_dtype(grad.dtype, "grad_output", "stochastic pooling backward")
    shape = _args.input_shape(input_shape)
    plan = _args.pool_plan(nd, shape, kernel_size, stride, padding, 1, False, channels_last,
                           name="input_shape")
    training = _args.flag(training, "training")
    nthreads = _args.num_threads(num_threads)
    if grad.shape != plan.out_shape:
        raise ValueError(
            f"grad_output must have shape {plan.out_shape} (the pooled shape of input_shape "
            f"{shape}), got {grad.shape}"
        )
    index = None
    if training:
        if indices is None:
            raise ValueError("training=True backward needs indices, the sampled positions the "
                             "forward pass returned with return_indices=True")
        index = _args.same_shape_indices(indices, grad.shape, of="grad_output")
        _check_in_plane(index, int(np.prod(plan.layout.spatial)), nthreads, "input")
    elif indices is not None:
        raise ValueError("indices are only used with training=True; training=False backward "
                         "differentiates sum(a**2)/sum(a) and needs x instead")
    elif x is None:
        raise ValueError("training=False backward needs x, the input of the forward pass")
    if x is not None:
        x = _args.as_array(x, "x")
        _args.real_compute_dtype(x.dtype, "x", "stochastic pooling backward")
        if x.shape != shape:
            raise ValueError(f"x must have shape input_shape {shape}, got {x.shape}")
    grad_in = _args.result(out, shape, _args.real_result_dtype(grad.dtype),
                           tuple(a for a in (grad, index, x) if a is not None))
    if grad_in.size:
        target = grad_in if grad_in.dtype == compute else _args.empty(shape, compute)
        kernel_out = plan.out_kernel_shape
        _stochastic.stochastic_pool_backward(
            _args.as_kernel_input(grad, compute, nthreads).reshape(kernel_out),
            None if index is None else index.reshape(kernel_out),
            None if x is None else _args.as_kernel_input(x, compute, nthreads).reshape(plan.in_kernel_shape),
            target.reshape(plan.in_kernel_shape), plan.kernel_geometry, training,
            plan.layout.channels_last, _args.threads_for(nthreads, grad_in.size),
        )
        if target is not grad_in:
            _args.cast_into(grad_in, target, nthreads)
    return grad_in


# ------------------------------------------------------------ public names

def _doc(template, nd):
    shape = (1, 1) + (4,) * nd
    return template.format(nd=nd, shared=_SHARED_KEYWORDS, shape=shape, size=4 ** nd,
                           pooled=(1, 1) + (2,) * nd, last=2 ** nd - 1,
                           five=(1, 1) + (5,) * nd, five_size=5 ** nd,
                           samples=(1, 1, nd), fractional_first=_EXAMPLE_FRACTIONAL.get(nd))


# Fractional docs pool np.arange over (1, 1, 5, ..., 5) with kernel 2, output
# 3 and every sample 0.5: starts [0, 2, 3] on each axis, worked out by hand.
_EXAMPLE_FRACTIONAL = {2: "[6.0, 8.0, 9.0]", 3: "[31.0, 33.0, 34.0]"}

_UNPOOL_DOC = """{nd}-D max unpooling, as ``torch.nn.functional.max_unpool{nd}d``.

A zero-filled array with each element of ``x`` written at its index: the
partial inverse of :func:`max_pool{nd}d`.

Parameters
----------
x : array_like
    Pooled values, ``(N, C, *spatial)`` or ``(C, *spatial)`` with {nd} spatial
    dims. float16/32/64, bool or any integer dtype; the result keeps it and
    every value is moved bit for bit.
indices : array_like of int
    Same shape as ``x``: flat offsets inside each output plane, as
    :func:`max_pool{nd}d` (or PyTorch) returns them.
kernel_size : int or tuple of {nd} ints
stride : int or tuple of {nd} ints, optional
    Defaults to ``kernel_size``.
padding : int or tuple of {nd} ints
output_size : tuple of int, optional
    Spatial output sizes, or a full shape (batch and channels as in ``x``).
    Each size must lie strictly within ``stride`` of the default
    ``(in - 1) * stride + kernel_size - 2 * padding``.
{shared}

Returns
-------
ndarray

Raises
------
ValueError
    If an index is negative or outside the output plane (checked before
    anything is written).

Notes
-----
When several elements of one plane share an index, the last in scan order
(row-major over ``x``'s spatial dims) wins, in both layouts and for any
number of threads; PyTorch's serial loop does the same.

Examples
--------
>>> import numpy as np, cypool
>>> x = np.arange({size}, dtype=np.float32).reshape{shape}
>>> y, idx = cypool.max_pool{nd}d(x, 2, return_indices=True)
>>> u = cypool.max_unpool{nd}d(y, idx, 2)
>>> u.shape == x.shape, float(u.sum()) == float(y.sum())
(True, True)
"""

_UNPOOL_BACKWARD_DOC = """Gradient of :func:`max_unpool{nd}d` with respect to its input.

``grad_input[i] = grad_output[indices[i]]`` inside each plane (a gather, so
elements that shared an index all receive its gradient, as in PyTorch).

Parameters
----------
grad_output : array_like
    Gradient of the unpooled result (float; integers compute in float64).
indices : array_like of int
    The indices given to :func:`max_unpool{nd}d`; the result has their shape.
{shared}

Returns
-------
ndarray
    ``grad_input``, shaped like ``indices``.

Examples
--------
>>> import numpy as np, cypool
>>> x = np.arange({size}, dtype=np.float32).reshape{shape}
>>> y, idx = cypool.max_pool{nd}d(x, 2, return_indices=True)
>>> u = cypool.max_unpool{nd}d(y, idx, 2)
>>> g = cypool.max_unpool{nd}d_backward(u, idx)
>>> bool((g == y).all())
True
"""

_FRACTIONAL_DOC = """{nd}-D fractional max pooling (Graham 2014), as ``torch.nn.functional.fractional_max_pool{nd}d``.

Max pooling over pseudo-random windows of ``kernel_size`` whose starts step
by 1 or 2 (on average ``in / out``), drawn independently per plane and axis
from one sample ``u`` in ``[0, 1)`` exactly as PyTorch generates them::

    alpha = (in - kernel_size) / (out - 1)
    start[i] = int((i + u) * alpha) - int(u * alpha),  start[out - 1] = in - kernel_size

computed in the samples' dtype, so PyTorch's ``_random_samples`` reproduce
PyTorch's values and indices bit for bit.

Parameters
----------
x : array_like
    Input, ``(N, C, *spatial)`` or ``(C, *spatial)`` with {nd} spatial dims.
    float16/32/64, bool or any integer dtype; the result keeps it.
kernel_size : int or tuple of {nd} ints
output_size : int or tuple of {nd} ints, optional
    The output's spatial sizes; ``output_size + kernel_size - 1 <= input size``.
output_ratio : float or tuple of {nd} floats, optional
    ``0 < r < 1``; the output size is ``int(input size * r)``. Give exactly
    one of ``output_size`` and ``output_ratio``.
return_indices : bool
    Also return int64 flat offsets of the maxima inside each input plane.
_random_samples : array_like, optional
    PyTorch's samples: shape ``(N', C, {nd})`` with ``N' >= N`` (1 for
    unbatched input), values in ``[0, 1)``; along the last axis
    {sample_order}. Cast to the input's float dtype (float64 for integer
    and bool input), the dtype the starts are computed in.
rng : numpy.random.Generator or int, optional, keyword-only
    Draws the samples when ``_random_samples`` is not given (a seed gives
    the same result every time); None draws fresh ones.
{shared}

Returns
-------
ndarray, or (ndarray, ndarray of int64) with ``return_indices``.

Notes
-----
Ties go to the first maximum in scan order; the last NaN in a window wins.
Unlike PyTorch's 3-D version, which demands ``output_size + kernel_size - 1 <
input size``, cypool accepts equality in 3-D as PyTorch's 2-D version does.

Examples
--------
>>> import numpy as np, cypool
>>> x = np.arange({five_size}, dtype=np.float32).reshape{five}
>>> u = np.full({samples}, 0.5, dtype=np.float32)
>>> y, idx = cypool.fractional_max_pool{nd}d(x, 2, output_size=3, return_indices=True,
...                                          _random_samples=u)
>>> y[0, 0].ravel().tolist()[:3]
{fractional_first}
>>> cypool.fractional_max_pool{nd}d(x, 2, output_ratio=0.5, rng=7).shape[2:] == (2,) * {nd}
True
"""

_FRACTIONAL_BACKWARD_DOC = """Gradient of :func:`fractional_max_pool{nd}d` with respect to its input.

Parameters
----------
grad_output : array_like
    Gradient of the pooled result (float; integers compute in float64).
indices : array_like of int
    The indices :func:`fractional_max_pool{nd}d` returned (PyTorch's work
    too); each must lie inside the input plane.
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
>>> x = np.arange({five_size}, dtype=np.float32).reshape{five}
>>> y, idx = cypool.fractional_max_pool{nd}d(x, 2, output_size=3, return_indices=True, rng=0)
>>> g = cypool.fractional_max_pool{nd}d_backward(np.ones_like(y), idx, x.shape)
>>> float(g.sum()) == y.size
True
"""

_STOCHASTIC_DOC = """{nd}-D stochastic pooling (Zeiler & Fergus 2013).

PyTorch has no such op. Each window's activations count by their positive
part ``a+ = max(a, 0)``; with ``S = sum(a+)`` over the window's input
elements (padding is never sampled nor counted):

- ``training=True``: one element per window is taken, element ``i`` with
  probability ``a_i+ / S``, and its value (and with ``return_indices`` its
  int64 flat offset inside the input plane) is returned. A window with no
  positive activation (``S = 0``) returns 0 and its first in-bounds element.
- ``training=False``: ``sum(a+**2) / S``, the expectation of the training
  output (0 when ``S = 0``).

Parameters
----------
x : array_like
    Input, ``(N, C, *spatial)`` or ``(C, *spatial)`` with {nd} spatial dims.
    float32/float64 kept, float16 computed in float32, integers give float64.
kernel_size : int or tuple of {nd} ints
stride : int or tuple of {nd} ints, optional
    Defaults to ``kernel_size``.
padding : int, tuple of {nd} ints, 'valid' or 'same'
    As in :func:`max_pool{nd}d`.
training : bool, keyword-only
rng : numpy.random.Generator or int, optional, keyword-only
    Draws one uniform per output element (in channels-first order, so a seed
    gives the same samples in both layouts and for any thread count); None
    draws fresh ones. Unused in eval mode. The draws are exactly
    ``rng.random((N, C, *out))`` and leave ``rng`` where that call would;
    for NumPy's default bit generator (PCG64) the kernel makes them itself,
    each thread jumping straight to its planes' draws.
return_indices : bool, keyword-only
    Training only: also return the sampled offsets.
{shared}

Returns
-------
ndarray, or (ndarray, ndarray of int64) with ``return_indices``.

Notes
-----
Sums run in float64 in scan order: the element taken is the first whose
running sum of ``a+`` exceeds ``u * S`` for the window's uniform ``u``. A
window holding NaN or +inf (or whose sum overflows) takes the first element
at which the running sum stops being finite; eval mode gives NaN there
(``inf / inf``), as the plain formula does.

Examples
--------
>>> import numpy as np, cypool
>>> x = np.zeros({pooled}); x.flat[-1] = 3.0
>>> cypool.stochastic_pool{nd}d(x, 2, training=False).ravel().tolist()
[3.0]
>>> y, idx = cypool.stochastic_pool{nd}d(x, 2, rng=0, return_indices=True)
>>> y.ravel().tolist(), idx.ravel().tolist()
([3.0], [{last}])
"""

_STOCHASTIC_BACKWARD_DOC = """Gradient of :func:`stochastic_pool{nd}d` with respect to its input.

Parameters
----------
grad_output : array_like
    Gradient of the pooled result; must have the pooled shape of ``input_shape``.
input_shape : tuple of int
kernel_size, stride, padding
    As given to :func:`stochastic_pool{nd}d`.
training : bool, keyword-only
    The mode of the forward pass.
indices : array_like of int, keyword-only
    Training: the sampled offsets the forward pass returned. Each gradient is
    added at its sampled element (overlapping windows accumulate).
x : array_like, keyword-only
    The forward pass's input. Eval: required; element ``i`` of a window
    receives ``grad * (2 a_i S - Q) / S**2`` (``S = sum(a+)``,
    ``Q = sum(a+**2)``) where ``a_i > 0`` and nothing where ``a_i <= 0``: the
    derivative of ``max(a, 0)`` is taken as 0 at 0, and windows with
    ``S = 0`` pass nothing. Training: optional; with it, a window whose
    sampled element is not positive (one without positive activations, whose
    output is the constant 0) passes nothing, the exact derivative; without
    it every gradient goes to its sampled element, which is the same after a
    ReLU.
{shared}

Returns
-------
ndarray
    ``grad_input`` of shape ``input_shape``.

Examples
--------
>>> import numpy as np, cypool
>>> x = np.zeros({pooled}); x.flat[-1] = 3.0
>>> y, idx = cypool.stochastic_pool{nd}d(x, 2, rng=0, return_indices=True)
>>> g = cypool.stochastic_pool{nd}d_backward(np.ones_like(y), x.shape, 2, indices=idx)
>>> float(g.flat[-1]), float(g.sum())
(1.0, 1.0)
>>> g = cypool.stochastic_pool{nd}d_backward(np.ones_like(y), x.shape, 2, training=False, x=x)
>>> float(g.flat[-1])  # (2*3*3 - 9) / 3**2
1.0
"""


def max_unpool1d(x, indices, kernel_size, stride=None, padding=0, output_size=None, *,
                 channels_last=False, out=None, num_threads=None):
    return _max_unpool(1, x, indices, kernel_size, stride, padding, output_size, channels_last,
                       out, num_threads)


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None, *,
                 channels_last=False, out=None, num_threads=None):
    return _max_unpool(2, x, indices, kernel_size, stride, padding, output_size, channels_last,
                       out, num_threads)


def max_unpool3d(x, indices, kernel_size, stride=None, padding=0, output_size=None, *,
                 channels_last=False, out=None, num_threads=None):
    return _max_unpool(3, x, indices, kernel_size, stride, padding, output_size, channels_last,
                       out, num_threads)


def max_unpool1d_backward(grad_output, indices, *, channels_last=False, out=None,
                          num_threads=None):
    return _max_unpool_backward(1, grad_output, indices, channels_last, out, num_threads)


def max_unpool2d_backward(grad_output, indices, *, channels_last=False, out=None,
                          num_threads=None):
    return _max_unpool_backward(2, grad_output, indices, channels_last, out, num_threads)


def max_unpool3d_backward(grad_output, indices, *, channels_last=False, out=None,
                          num_threads=None):
    return _max_unpool_backward(3, grad_output, indices, channels_last, out, num_threads)


def fractional_max_pool2d(x, kernel_size, output_size=None, output_ratio=None,
                          return_indices=False, _random_samples=None, *, rng=None,
                          channels_last=False, out=None, num_threads=None):
    return _fractional_max_pool(2, x, kernel_size, output_size, output_ratio, return_indices,
                                _random_samples, rng, channels_last, out, num_threads)


def fractional_max_pool3d(x, kernel_size, output_size=None, output_ratio=None,
                          return_indices=False, _random_samples=None, *, rng=None,
                          channels_last=False, out=None, num_threads=None):
    return _fractional_max_pool(3, x, kernel_size, output_size, output_ratio, return_indices,
                                _random_samples, rng, channels_last, out, num_threads)


def fractional_max_pool2d_backward(grad_output, indices, input_shape, *, channels_last=False,
                                   out=None, num_threads=None):
    return _max_pool_backward(2, grad_output, indices, input_shape, channels_last, out,
                              num_threads)


def fractional_max_pool3d_backward(grad_output, indices, input_shape, *, channels_last=False,
                                   out=None, num_threads=None):
    return _max_pool_backward(3, grad_output, indices, input_shape, channels_last, out,
                              num_threads)


def stochastic_pool1d(x, kernel_size, stride=None, padding=0, *, training=True, rng=None,
                      return_indices=False, channels_last=False, out=None, num_threads=None):
    return _stochastic_pool(1, x, kernel_size, stride, padding, training, rng, return_indices,
                            channels_last, out, num_threads)


def stochastic_pool2d(x, kernel_size, stride=None, padding=0, *, training=True, rng=None,
                      return_indices=False, channels_last=False, out=None, num_threads=None):
    return _stochastic_pool(2, x, kernel_size, stride, padding, training, rng, return_indices,
                            channels_last, out, num_threads)


def stochastic_pool3d(x, kernel_size, stride=None, padding=0, *, training=True, rng=None,
                      return_indices=False, channels_last=False, out=None, num_threads=None):
    return _stochastic_pool(3, x, kernel_size, stride, padding, training, rng, return_indices,
                            channels_last, out, num_threads)


def stochastic_pool1d_backward(grad_output, input_shape, kernel_size, stride=None, padding=0, *,
                               training=True, indices=None, x=None, channels_last=False,
                               out=None, num_threads=None):
    return _stochastic_pool_backward(1, grad_output, input_shape, kernel_size, stride, padding,
                                     training, indices, x, channels_last, out, num_threads)


def stochastic_pool2d_backward(grad_output, input_shape, kernel_size, stride=None, padding=0, *,
                               training=True, indices=None, x=None, channels_last=False,
                               out=None, num_threads=None):
    return _stochastic_pool_backward(2, grad_output, input_shape, kernel_size, stride, padding,
                                     training, indices, x, channels_last, out, num_threads)


def stochastic_pool3d_backward(grad_output, input_shape, kernel_size, stride=None, padding=0, *,
                               training=True, indices=None, x=None, channels_last=False,
                               out=None, num_threads=None):
    return _stochastic_pool_backward(3, grad_output, input_shape, kernel_size, stride, padding,
                                     training, indices, x, channels_last, out, num_threads)


_SAMPLE_ORDER = {2: "index 0 drives the width and index 1 the height",
                 3: "indices 0, 1, 2 drive depth, height, width"}

for _nd in (1, 2, 3):
    _names = [(_UNPOOL_DOC, "max_unpool{}d"), (_UNPOOL_BACKWARD_DOC, "max_unpool{}d_backward"),
              (_STOCHASTIC_DOC, "stochastic_pool{}d"),
              (_STOCHASTIC_BACKWARD_DOC, "stochastic_pool{}d_backward")]
    if _nd > 1:
        _names += [(_FRACTIONAL_DOC.replace("{sample_order}", _SAMPLE_ORDER[_nd]),
                    "fractional_max_pool{}d"),
                   (_FRACTIONAL_BACKWARD_DOC, "fractional_max_pool{}d_backward")]
    for _template, _name in _names:
        globals()[_name.format(_nd)].__doc__ = _doc(_template, _nd)
del _nd, _names, _template, _name
