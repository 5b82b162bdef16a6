"""Stateful pooling layers for hand-written NumPy networks.

Each layer mirrors its ``torch.nn`` namesake's constructor (plus the
keyword-only ``channels_last`` and ``num_threads`` that every cypool function
takes): ``forward(x)`` (also ``layer(x)``) pools and keeps what the backward
pass needs, ``backward(grad_output)`` returns the gradient with respect to the
input of the last ``forward``.  The layers call only the public ``cypool``
functions, so their results are those functions' results.

For course and legacy code written against cs231n-style function pairs there
are :func:`max_pool_forward` / :func:`max_pool_backward` and
:func:`avg_pool_forward` / :func:`avg_pool_backward`, taking the usual
``pool_param`` dict.

>>> import numpy as np
>>> from cypool.layers import MaxPool2d
>>> pool = MaxPool2d(2)
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> pool(x).ravel().tolist()
[5.0, 7.0, 13.0, 15.0]
>>> pool.backward(np.ones((1, 1, 2, 2)))[0, 0].tolist()
[[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0]]
"""

import numpy as np

import cypool

__all__ = [
    "MaxPool1d", "MaxPool2d", "MaxPool3d",
    "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "LPPool1d", "LPPool2d", "LPPool3d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
    "GlobalAvgPool", "GlobalMaxPool",
    "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d",
    "FractionalMaxPool2d", "FractionalMaxPool3d",
    "StochasticPool1d", "StochasticPool2d", "StochasticPool3d",
    "max_pool_forward", "max_pool_backward", "avg_pool_forward", "avg_pool_backward",
]


# ------------------------------------------------------------ shared machinery

class _Layer:
    """What every layer shares: ``__call__``, the forward cache, train/eval, repr.

    A family subclass lists its constructor arguments in ``_fields`` (torch.nn's
    order; ``repr`` shows them), names its public functions in ``_function``
    (``{nd}`` filled from the class's ``nd``), and implements
    ``_forward(x) -> (result, cache)`` and ``_backward(grad_output, cache)``.
    """

    _fields = ()
    _function = ""
    nd = None

    def _store(self, arguments):
        """Keep the constructor's arguments (its ``locals()``) as attributes."""
        for name in self._fields + ("channels_last", "num_threads"):
            setattr(self, name, arguments[name])
        self.training = True
        self._cache = None

    def _op(self, suffix=""):
        """The public cypool function this layer calls (``suffix``: ``"_backward"``)."""
        return getattr(cypool, self._function.format(nd=self.nd) + suffix)

    def _keywords(self):
        return {"channels_last": self.channels_last, "num_threads": self.num_threads}

    def forward(self, x):
        """Pool ``x`` and keep what :meth:`backward` needs."""
        result, self._cache = self._forward(x)
        return result

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def backward(self, grad_output):
        """Gradient with respect to the input of the last :meth:`forward`."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward was called before forward")
        return self._backward(grad_output, self._cache)

    def train(self, mode=True):
        """Set training mode (only stochastic pooling behaves differently); returns self."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Set evaluation mode; returns self."""
        return self.train(False)

    def __repr__(self):
        shown = [f"{name}={getattr(self, name)!r}" for name in self._fields]
        if self.channels_last:
            shown.append("channels_last=True")
        return f"{type(self).__name__}({', '.join(shown)})"


class _IndexedPool(_Layer):
    """A max-type pool: the forward call always asks for indices, the backward
    routes through them; ``return_indices`` only decides what forward returns."""

    def _indexed_forward(self, x, *arguments, **keywords):
        values, indices = self._op()(x, *arguments, **keywords, **self._keywords())
        result = (values, indices) if self.return_indices else values
        return result, (indices, np.shape(x))

    def _backward(self, grad_output, cache):
        indices, input_shape = cache
        return self._op("_backward")(grad_output, indices, input_shape, **self._keywords())


# ------------------------------------------------------------------ families

class _MaxPool(_IndexedPool):
    _fields = ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode")
    _function = "max_pool{nd}d"
    _name = "MaxPool{nd}d"

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False, *, channels_last=False, num_threads=None):
        stride = kernel_size if stride is None else stride  # as torch.nn shows it
        self._store(locals())

    def _forward(self, x):
        return self._indexed_forward(x, self.kernel_size, self.stride, self.padding,
                                     self.dilation, self.ceil_mode, True)


class _AvgPool(_Layer):
    _fields = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
               "divisor_override")
    _function = "avg_pool{nd}d"
    _name = "AvgPool{nd}d"

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None, *, channels_last=False,
                 num_threads=None):
        stride = kernel_size if stride is None else stride
        self._store(locals())

    def _window(self):
        return (self.kernel_size, self.stride, self.padding, self.ceil_mode,
                self.count_include_pad, self.divisor_override)

    def _forward(self, x):
        return self._op()(x, *self._window(), **self._keywords()), np.shape(x)

    def _backward(self, grad_output, input_shape):
        return self._op("_backward")(grad_output, input_shape, *self._window(),
                                     **self._keywords())


class _LPPool(_Layer):
    _fields = ("norm_type", "kernel_size", "stride", "ceil_mode")
    _function = "lp_pool{nd}d"
    _name = "LPPool{nd}d"

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False, *,
                 channels_last=False, num_threads=None):
        self._store(locals())

    def _window(self):
        return self.norm_type, self.kernel_size, self.stride, self.ceil_mode

    def _forward(self, x):
        x = np.asarray(x)  # the backward pass needs the input itself
        return self._op()(x, *self._window(), **self._keywords()), x

    def _backward(self, grad_output, x):
        return self._op("_backward")(grad_output, x, *self._window(), **self._keywords())


class _ShapeBackward(_Layer):
    """A pool whose gradient needs only the input's shape (adaptive, global average)."""

    def _backward(self, grad_output, input_shape):
        return self._op("_backward")(grad_output, input_shape, **self._keywords())


class _AdaptiveAvgPool(_ShapeBackward):
    _fields = ("output_size",)
    _function = "adaptive_avg_pool{nd}d"
    _name = "AdaptiveAvgPool{nd}d"

    def __init__(self, output_size, *, channels_last=False, num_threads=None):
        self._store(locals())

    def _forward(self, x):
        return self._op()(x, self.output_size, **self._keywords()), np.shape(x)


class _AdaptiveMaxPool(_IndexedPool):
    _fields = ("output_size", "return_indices")
    _function = "adaptive_max_pool{nd}d"
    _name = "AdaptiveMaxPool{nd}d"

    def __init__(self, output_size, return_indices=False, *, channels_last=False,
                 num_threads=None):
        self._store(locals())

    def _forward(self, x):
        return self._indexed_forward(x, self.output_size, True)


class _MaxUnpool(_Layer):
    _fields = ("kernel_size", "stride", "padding")
    _function = "max_unpool{nd}d"
    _name = "MaxUnpool{nd}d"

    def __init__(self, kernel_size, stride=None, padding=0, *, channels_last=False,
                 num_threads=None):
        stride = kernel_size if stride is None else stride
        self._store(locals())

    def forward(self, x, indices, output_size=None):
        """Scatter ``x`` to ``indices`` (as returned by a max pool) in a zero output."""
        result = self._op()(x, indices, self.kernel_size, self.stride, self.padding,
                            output_size, **self._keywords())
        self._cache = indices
        return result

    def _backward(self, grad_output, indices):
        return self._op("_backward")(grad_output, indices, **self._keywords())


class _FractionalMaxPool(_IndexedPool):
    _fields = ("kernel_size", "output_size", "output_ratio", "return_indices")
    _function = "fractional_max_pool{nd}d"
    _name = "FractionalMaxPool{nd}d"

    def __init__(self, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                 _random_samples=None, *, rng=None, channels_last=False, num_threads=None):
        self._store(locals())
        self._random_samples = _random_samples
        # One generator for the layer's life: each forward draws fresh intervals.
        self.rng = np.random.default_rng(rng)

    def _forward(self, x):
        return self._indexed_forward(x, self.kernel_size, self.output_size, self.output_ratio,
                                     True, self._random_samples, rng=self.rng)


class _StochasticPool(_Layer):
    _fields = ("kernel_size", "stride", "padding")
    _function = "stochastic_pool{nd}d"
    _name = "StochasticPool{nd}d"

    def __init__(self, kernel_size, stride=None, padding=0, *, rng=None, channels_last=False,
                 num_threads=None):
        stride = kernel_size if stride is None else stride
        self._store(locals())
        self.rng = np.random.default_rng(rng)

    def _window(self):
        return self.kernel_size, self.stride, self.padding

    def _forward(self, x):
        x = np.asarray(x)  # both modes' gradients read the input's values
        if self.training:
            values, indices = self._op()(x, *self._window(), training=True, rng=self.rng,
                                         return_indices=True, **self._keywords())
        else:
            values, indices = self._op()(x, *self._window(), training=False,
                                         **self._keywords()), None
        return values, (x, indices, self.training)

    def _backward(self, grad_output, cache):
        x, indices, training = cache
        return self._op("_backward")(grad_output, x.shape, *self._window(), training=training,
                                     indices=indices, x=x, **self._keywords())

    def __repr__(self):
        mode = "train" if self.training else "eval"
        return super().__repr__()[:-1] + f", mode={mode!r})"


class GlobalAvgPool(_ShapeBackward):
    """Global average pooling over every spatial dim (Keras' ``GlobalAveragePooling``).

    Parameters
    ----------
    keepdims : bool
        Keep the spatial dims as size 1 instead of dropping them.
    channels_last, num_threads : keyword-only
        As for :func:`cypool.global_avg_pool`.

    Examples
    --------
    >>> import numpy as np
    >>> from cypool.layers import GlobalAvgPool
    >>> pool = GlobalAvgPool()
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)
    >>> pool(x).tolist()
    [[1.5, 5.5]]
    >>> pool.backward(np.ones((1, 2)))[0, 0].tolist()
    [[0.25, 0.25], [0.25, 0.25]]
    """

    _fields = ("keepdims",)
    _function = "global_avg_pool"

    def __init__(self, keepdims=False, *, channels_last=False, num_threads=None):
        self._store(locals())

    def _forward(self, x):
        return self._op()(x, self.keepdims, **self._keywords()), np.shape(x)


class GlobalMaxPool(_IndexedPool):
    """Global max pooling over every spatial dim (Keras' ``GlobalMaxPooling``).

    Parameters
    ----------
    keepdims : bool
        Keep the spatial dims as size 1 instead of dropping them.
    return_indices : bool
        ``forward`` also returns the flat offset of each maximum in its plane.
    channels_last, num_threads : keyword-only
        As for :func:`cypool.global_max_pool`.

    Examples
    --------
    >>> import numpy as np
    >>> from cypool.layers import GlobalMaxPool
    >>> pool = GlobalMaxPool()
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)
    >>> pool(x).tolist()
    [[3.0, 7.0]]
    >>> pool.backward(np.ones((1, 2)))[0, 1].tolist()
    [[0.0, 0.0], [0.0, 1.0]]
    """

    _fields = ("keepdims", "return_indices")
    _function = "global_max_pool"

    def __init__(self, keepdims=False, return_indices=False, *, channels_last=False,
                 num_threads=None):
        self._store(locals())

    def _forward(self, x):
        return self._indexed_forward(x, self.keepdims, True)


# ------------------------------------------------- the per-dim public classes

# Each docstring example pools a (2, 3, 8, ..., 8) input; {out} is its result's shape.
_EXAMPLE_INPUT = "x = np.random.default_rng(0).standard_normal((2, 3) + (8,) * {nd})"

_DOCS = {
    _MaxPool: ("{nd}-D max pooling layer, as ``torch.nn.MaxPool{nd}d``.",
               "kernel_size, stride=None, padding=0, dilation=1, return_indices=False, "
               "ceil_mode=False", "As for :func:`cypool.max_pool{nd}d`; ``return_indices`` "
               "makes ``forward`` return ``(values, indices)``.",
               "MaxPool{nd}d(3, 2, 1)", "(2, 3) + (4,) * {nd}"),
    _AvgPool: ("{nd}-D average pooling layer, as ``torch.nn.AvgPool{nd}d``.",
               "kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, "
               "divisor_override=None", "As for :func:`cypool.avg_pool{nd}d`.",
               "AvgPool{nd}d(2)", "(2, 3) + (4,) * {nd}"),
    _LPPool: ("{nd}-D power-average pooling layer, as ``torch.nn.LPPool{nd}d``.",
              "norm_type, kernel_size, stride=None, ceil_mode=False",
              "As for :func:`cypool.lp_pool{nd}d`.", "LPPool{nd}d(2, 2)",
              "(2, 3) + (4,) * {nd}"),
    _AdaptiveAvgPool: ("{nd}-D adaptive average pooling layer, as "
                       "``torch.nn.AdaptiveAvgPool{nd}d``.", "output_size",
                       "As for :func:`cypool.adaptive_avg_pool{nd}d`.",
                       "AdaptiveAvgPool{nd}d(3)", "(2, 3) + (3,) * {nd}"),
    _AdaptiveMaxPool: ("{nd}-D adaptive max pooling layer, as "
                       "``torch.nn.AdaptiveMaxPool{nd}d``.", "output_size, return_indices=False",
                       "As for :func:`cypool.adaptive_max_pool{nd}d`.",
                       "AdaptiveMaxPool{nd}d(3)", "(2, 3) + (3,) * {nd}"),
    _FractionalMaxPool: ("{nd}-D fractional max pooling layer, as "
                         "``torch.nn.FractionalMaxPool{nd}d``.",
                         "kernel_size, output_size=None, output_ratio=None, "
                         "return_indices=False, _random_samples=None, *, rng=None",
                         "As for :func:`cypool.fractional_max_pool{nd}d`.  ``rng`` (a seed "
                         "or ``numpy.random.Generator``) is kept by the layer, so each "
                         "forward draws new intervals and a seed repeats the sequence.",
                         "FractionalMaxPool{nd}d(2, output_size=5, rng=0)",
                         "(2, 3) + (5,) * {nd}"),
    _StochasticPool: ("{nd}-D stochastic pooling layer (Zeiler & Fergus 2013).",
                      "kernel_size, stride=None, padding=0, *, rng=None",
                      "As for :func:`cypool.stochastic_pool{nd}d`.  In training mode (the "
                      "default; see :meth:`train` / :meth:`eval`) each window picks one "
                      "element with probability proportional to its activation; in eval "
                      "mode the layer returns the probability-weighted average.  ``rng`` "
                      "is kept by the layer.",
                      "StochasticPool{nd}d(2, rng=0)", "(2, 3) + (4,) * {nd}"),
}

_DOC_TEMPLATE = """{summary}

Parameters
----------
{signature}
    {meaning}
channels_last : bool, keyword-only
    Arrays are ``(N, *spatial, C)`` instead of ``(N, C, *spatial)``.
num_threads : int, optional, keyword-only
    Threads for each call; None means ``cypool.get_num_threads()``.

Examples
--------
>>> import numpy as np
>>> from cypool.layers import {name}
>>> pool = {construct}
>>> {example_input}
>>> y = pool(x)
>>> y.shape == {out}
True
>>> pool.backward(np.ones_like(y)).shape == x.shape
True
"""

_UNPOOL_DOC = """{nd}-D max unpooling layer, as ``torch.nn.MaxUnpool{nd}d``.

``forward(x, indices, output_size=None)`` scatters ``x`` to ``indices`` (from
a max pool with ``return_indices=True``) in a zero-filled output;
``backward(grad_output)`` gathers the gradient back at those indices.

Parameters
----------
kernel_size, stride=None, padding=0
    As for :func:`cypool.max_unpool{nd}d`.
channels_last : bool, keyword-only
num_threads : int, optional, keyword-only

Examples
--------
>>> import numpy as np
>>> from cypool.layers import MaxPool{nd}d, MaxUnpool{nd}d
>>> {example_input}
>>> y, idx = MaxPool{nd}d(2, return_indices=True)(x)
>>> unpool = MaxUnpool{nd}d(2)
>>> unpool(y, idx).shape == x.shape
True
>>> unpool.backward(np.ones(x.shape)).shape == y.shape
True
"""


def _make(family, nd):
    """The public ``nd``-D class of ``family``, with its docstring."""
    name = family._name.format(nd=nd)
    example_input = _EXAMPLE_INPUT.format(nd=nd)
    if family is _MaxUnpool:
        doc = _UNPOOL_DOC.format(nd=nd, example_input=example_input)
    else:
        summary, signature, meaning, construct, out = _DOCS[family]
        doc = _DOC_TEMPLATE.format(
            summary=summary.format(nd=nd), signature=signature, meaning=meaning.format(nd=nd),
            name=name, construct=construct.format(nd=nd), example_input=example_input,
            out=out.format(nd=nd))
    return type(name, (family,), {"nd": nd, "__doc__": doc, "__module__": __name__})


MaxPool1d, MaxPool2d, MaxPool3d = (_make(_MaxPool, nd) for nd in (1, 2, 3))
AvgPool1d, AvgPool2d, AvgPool3d = (_make(_AvgPool, nd) for nd in (1, 2, 3))
LPPool1d, LPPool2d, LPPool3d = (_make(_LPPool, nd) for nd in (1, 2, 3))
AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d = (
    _make(_AdaptiveAvgPool, nd) for nd in (1, 2, 3))
AdaptiveMaxPool1d, AdaptiveMaxPool2d, AdaptiveMaxPool3d = (
    _make(_AdaptiveMaxPool, nd) for nd in (1, 2, 3))
MaxUnpool1d, MaxUnpool2d, MaxUnpool3d = (_make(_MaxUnpool, nd) for nd in (1, 2, 3))
FractionalMaxPool2d, FractionalMaxPool3d = (_make(_FractionalMaxPool, nd) for nd in (2, 3))
StochasticPool1d, StochasticPool2d, StochasticPool3d = (
    _make(_StochasticPool, nd) for nd in (1, 2, 3))


# ------------------------------------------------- cs231n-style function pairs

def _pool_param(pool_param):
    """``(kernel_size, stride)`` from a cs231n ``pool_param`` dict."""
    missing = [key for key in ("pool_height", "pool_width", "stride") if key not in pool_param]
    if missing:
        raise ValueError(
            f"pool_param must have the keys 'pool_height', 'pool_width' and 'stride'; "
            f"{', '.join(repr(key) for key in missing)} missing from {pool_param!r}"
        )
    return (pool_param["pool_height"], pool_param["pool_width"]), pool_param["stride"]


def max_pool_forward(x, pool_param):
    """2-D max pooling in the cs231n function-pair style.

    Parameters
    ----------
    x : array_like
        Input of shape ``(N, C, H, W)``.
    pool_param : dict
        ``pool_height``, ``pool_width`` and ``stride`` (an int or a pair); no
        padding, floor mode, as the assignments define it.

    Returns
    -------
    out : ndarray
        ``(N, C, 1 + (H - pool_height) // stride, 1 + (W - pool_width) // stride)``.
    cache : tuple
        What :func:`max_pool_backward` needs (the indices of the maxima and the
        input shape); treat it as opaque.

    Notes
    -----
    A window with tied maxima sends its gradient to the first of them only
    (as PyTorch does), where the naive assignment code sends it to all.

    Examples
    --------
    >>> import numpy as np
    >>> from cypool.layers import max_pool_forward, max_pool_backward
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> out, cache = max_pool_forward(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    >>> out.ravel().tolist()
    [5.0, 7.0, 13.0, 15.0]
    >>> float(max_pool_backward(np.ones_like(out), cache).sum())
    4.0
    """
    kernel, stride = _pool_param(pool_param)
    out, indices = cypool.max_pool2d(x, kernel, stride, return_indices=True)
    return out, (indices, np.shape(x))


def max_pool_backward(dout, cache):
    indices, input_shape = cache
    return cypool.max_pool2d_backward(dout, indices, input_shape)


def avg_pool_forward(x, pool_param):
    """2-D average pooling in the cs231n function-pair style.

    Parameters
    ----------
    x : array_like
        Input of shape ``(N, C, H, W)``.
    pool_param : dict
        ``pool_height``, ``pool_width`` and ``stride``, as for
        :func:`max_pool_forward`.

    Returns
    -------
    out : ndarray
    cache : tuple
        What :func:`avg_pool_backward` needs; treat it as opaque.

    Examples
    --------
    >>> import numpy as np
    >>> from cypool.layers import avg_pool_forward
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> out, cache = avg_pool_forward(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    >>> out.ravel().tolist()
    [2.5, 4.5, 10.5, 12.5]
    """
    kernel, stride = _pool_param(pool_param)
    return cypool.avg_pool2d(x, kernel, stride), (kernel, stride, np.shape(x))


def avg_pool_backward(dout, cache):
    kernel, stride, input_shape = cache
    return cypool.avg_pool2d_backward(dout, input_shape, kernel, stride)


_PAIR_BACKWARD_DOC = """Gradient of :func:`{op}_pool_forward` with respect to ``x``.

Parameters
----------
dout : array_like
    Upstream gradient, the shape of ``out``.
cache : tuple
    The cache :func:`{op}_pool_forward` returned.

Returns
-------
ndarray
    ``dx``, the shape of ``x``.

Examples
--------
>>> import numpy as np
>>> from cypool.layers import {op}_pool_forward, {op}_pool_backward
>>> x = np.array([[[[1.0, 2.0], [4.0, 3.0]]]])
>>> out, cache = {op}_pool_forward(x, {{"pool_height": 2, "pool_width": 2, "stride": 2}})
>>> {op}_pool_backward(np.full_like(out, 4.0), cache)[0, 0].tolist()
{gradient}
"""

max_pool_backward.__doc__ = _PAIR_BACKWARD_DOC.format(op="max",
                                                      gradient="[[0.0, 0.0], [4.0, 0.0]]")
avg_pool_backward.__doc__ = _PAIR_BACKWARD_DOC.format(op="avg",
                                                      gradient="[[1.0, 1.0], [1.0, 1.0]]")
