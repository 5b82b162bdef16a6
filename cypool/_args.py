"""Argument normalisation and validation: the one place every rule lives.

Every public function hands its raw arguments here first.  Each check raises
``ValueError`` (or ``TypeError`` for a wrong type) with a message that names the
argument, the value and the rule, before any work starts.
"""

import operator
from typing import NamedTuple, Tuple

import numpy as np

from cypool import _threads
from cypool._geometry import max_window as _max_window
from cypool._geometry import output_size as _output_size

# Every kernel/stride/dilation/padding value stays below this, so the window
# geometry's 64-bit products cannot overflow (see _geometry.pxd).
MAX_PARAM = 2**31 - 1
# Inputs smaller than this (elements) run on one thread: starting a team costs
# more than the work.
SERIAL_BELOW = 1 << 15

_NAMES = {1: "1-D", 2: "2-D", 3: "3-D"}


# ------------------------------------------------------------------- dtypes

def _dtype_name(dtype):
    return np.dtype(dtype).name


def max_compute_dtype(dtype, name="x"):
    """Dtype the max family computes in: ints and floats kept, float16 and bool
    computed as float32 and uint8 (and converted back)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu" and dtype.itemsize <= 8:
        return dtype
    if dtype == np.float32 or dtype == np.float64:
        return dtype
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype.kind == "b":
        return np.dtype(np.uint8)
    raise TypeError(
        f"{name} has dtype {_dtype_name(dtype)}, which max pooling does not support; "
        "it takes float16/32/64, bool and every integer type"
    )


def real_compute_dtype(dtype, name="x", op="average pooling"):
    """Dtype the averaging family (and every gradient) computes in: float32 and
    float64 kept, float16 as float32, integers as float64 (like numpy.mean)."""
    dtype = np.dtype(dtype)
    if dtype == np.float32 or dtype == np.float64:
        return dtype
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype.kind in "iu":
        return np.dtype(np.float64)
    raise TypeError(
        f"{name} has dtype {_dtype_name(dtype)}, which {op} does not support; "
        "it takes float16/32/64 and integer types (integers compute in float64)"
    )


def real_result_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return np.dtype(np.float64)
    return dtype


# ------------------------------------------------------------------- arrays

def as_array(x, name="x"):
    """Any array-like as an ndarray (never copied here, never modified)."""
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} must be an array-like of numbers, got {type(x).__name__}: {exc}") from None


def as_kernel_input(x, compute_dtype):
    """C-contiguous copy or view of ``x`` in the kernel's dtype."""
    if compute_dtype == np.uint8 and x.dtype == np.bool_:
        return np.ascontiguousarray(x).view(np.uint8)
    return np.ascontiguousarray(x, dtype=compute_dtype)


# ------------------------------------------------------------------ scalars

def _as_int(value, name):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None


def int_tuple(value, nd, name, minimum, maximum=MAX_PARAM):
    """An int or a sequence of ``nd`` ints, each in ``[minimum, maximum]``."""
    if isinstance(value, (tuple, list)):
        if len(value) != nd:
            raise ValueError(
                f"{name} must be an int or a tuple of {nd} ints for {_NAMES[nd]} pooling, "
                f"got {tuple(value)!r} ({len(value)} values)"
            )
        items = tuple(_as_int(v, name) for v in value)
    else:
        try:
            items = (_as_int(value, name),) * nd
        except TypeError:
            raise TypeError(
                f"{name} must be an int or a tuple of {nd} ints, got {type(value).__name__} {value!r}"
            ) from None
    for v in items:
        if v < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
        if v > maximum:
            raise ValueError(f"{name} must be <= {maximum}, got {value!r}")
    return items


def flag(value, name):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")


def num_threads(value):
    """Threads for one call: the default, or a positive int."""
    if value is not None:
        n = _as_int(value, "num_threads")
        if n < 1:
            raise ValueError(f"num_threads must be a positive int or None, got {value!r}")
        if n > 4096:
            raise ValueError(f"num_threads must be at most 4096, got {value!r}")
    return _threads.effective_threads(value)


def threads_for(requested, work):
    """``requested`` threads, or one when ``work`` elements are too few to share."""
    return 1 if work < SERIAL_BELOW else requested


# ------------------------------------------------------------------ layouts

class Layout(NamedTuple):
    """Where batch, channels and the spatial dims sit in an input array."""
    batched: bool
    batch: int
    channels: int
    spatial: Tuple[int, ...]
    channels_last: bool

    def shape_with(self, spatial):
        """The user-facing shape of an array with these batch/channels and ``spatial``."""
        lead = (self.batch,) if self.batched else ()
        if self.channels_last:
            return lead + tuple(spatial) + (self.channels,)
        return lead + (self.channels,) + tuple(spatial)

    def kernel_shape(self, spatial):
        """The 5-D (channels-last) or 4-D (channels-first) shape the kernels see."""
        spatial3 = (1,) * (3 - len(spatial)) + tuple(spatial)
        if self.channels_last:
            return (self.batch,) + spatial3 + (self.channels,)
        return (self.batch * self.channels,) + spatial3


def layout(shape, nd, channels_last, name="x"):
    """Split ``shape`` into batch, channels and ``nd`` spatial dims."""
    channels_last = flag(channels_last, "channels_last")
    if len(shape) not in (nd + 1, nd + 2):
        order = "(N, *spatial, C)" if channels_last else "(N, C, *spatial)"
        raise ValueError(
            f"{name} must have {nd + 1} (unbatched) or {nd + 2} (batched {order}) dimensions "
            f"for {_NAMES[nd]} pooling, got shape {tuple(shape)}"
        )
    batched = len(shape) == nd + 2
    batch = shape[0] if batched else 1
    if channels_last:
        spatial = tuple(shape[1 if batched else 0:-1])
        channels = shape[-1]
    else:
        spatial = tuple(shape[2 if batched else 1:])
        channels = shape[1 if batched else 0]
    if any(s == 0 for s in spatial) or channels == 0:
        raise ValueError(
            f"{name} must have non-zero channels and spatial sizes (only the batch may be 0), "
            f"got shape {tuple(shape)}"
        )
    return Layout(batched, batch, channels, spatial, channels_last)


def input_shape(value):
    """A user-given input shape (for the backward functions) as a tuple of ints."""
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iu":
        value = tuple(value.tolist())
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"input_shape must be a tuple of ints, got {type(value).__name__} {value!r}")
    shape = tuple(_as_int(v, "input_shape") for v in value)
    if any(v < 0 for v in shape):
        raise ValueError(f"input_shape must hold non-negative sizes, got {shape}")
    return shape


# ----------------------------------------------------------------- geometry

class Geometry(NamedTuple):
    """Per-axis window parameters of one pooling call (``nd`` entries each)."""
    kernel: Tuple[int, ...]
    stride: Tuple[int, ...]
    pad_before: Tuple[int, ...]
    pad_after: Tuple[int, ...]
    dilation: Tuple[int, ...]
    in_size: Tuple[int, ...]
    out_size: Tuple[int, ...]

    def for_kernel(self):
        """The kernels' 3-axis geometry: leading singleton axes for 1-D and 2-D."""
        fill = 3 - len(self.kernel)

        def pad(values, identity):
            return (identity,) * fill + tuple(values)

        return (
            pad(self.in_size, 1), pad(self.out_size, 1), pad(self.kernel, 1),
            pad(self.stride, 1), pad(self.pad_before, 0), pad(self.pad_after, 0),
            pad(self.dilation, 1),
        )


def padding_amounts(padding, nd, kernel, stride, dilation, spatial):
    """``(pad_before, pad_after)`` from an int, a tuple, ``'valid'`` or ``'same'``.

    ``'same'`` is Keras/TensorFlow's: ``out = ceil(L / s)``, the total padding
    that needs split evenly with the odd one after.  Explicit padding is
    symmetric and at most ``kernel // 2``, as in PyTorch.
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0,) * nd, (0,) * nd
        if mode == "same":
            before, after = [], []
            for size, k, s, d in zip(spatial, kernel, stride, dilation):
                out = -(-size // s)
                total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
                before.append(total // 2)
                after.append(total - total // 2)
            return tuple(before), tuple(after)
        raise ValueError(f"padding must be an int, a tuple of ints, 'valid' or 'same', got {padding!r}")
    pads = int_tuple(padding, nd, "padding", 0)
    for p, k in zip(pads, kernel):
        if p > k // 2:
            raise ValueError(
                f"padding must be at most half the kernel size (padding <= kernel_size // 2), "
                f"got padding={padding!r} for kernel_size={kernel if nd > 1 else kernel[0]!r}"
            )
    return pads, pads


def pool_geometry(nd, spatial, kernel_size, stride, padding, dilation, ceil_mode):
    """Validate the window arguments of a sliding-window pool over ``spatial``."""
    kernel = int_tuple(kernel_size, nd, "kernel_size", 1)
    stride = kernel if stride is None else int_tuple(stride, nd, "stride", 1)
    dilation = int_tuple(dilation, nd, "dilation", 1)
    ceil_mode = flag(ceil_mode, "ceil_mode")
    pad_before, pad_after = padding_amounts(padding, nd, kernel, stride, dilation, spatial)
    out = []
    for axis in range(nd):
        size = _output_size(spatial[axis], kernel[axis], stride[axis], pad_before[axis],
                            pad_after[axis], dilation[axis], ceil_mode)
        if size < 1:
            raise ValueError(
                f"output size would be {size} (< 1) along spatial dim {axis}: input size "
                f"{spatial[axis]} with padding ({pad_before[axis]}, {pad_after[axis]}) is smaller "
                f"than the window span dilation*(kernel_size-1)+1 = "
                f"{dilation[axis] * (kernel[axis] - 1) + 1}"
            )
        out.append(size)
        _check_no_empty_window(axis, spatial[axis], kernel[axis], stride[axis],
                               pad_before[axis], dilation[axis], size)
    return Geometry(kernel, stride, pad_before, pad_after, dilation, tuple(spatial), tuple(out))


def _check_no_empty_window(axis, size, kernel, stride, pad_before, dilation, out_size):
    """Reject a window whose every tap falls in the padding.

    Only a dilation larger than the input can skip over it, and only in the
    first windows (those starting in the left padding), so few are checked.
    PyTorch returns -inf there with an index outside the plane.
    """
    if dilation <= size:
        return
    for o in range(min(out_size, pad_before // stride + 1)):
        if _max_window(o, size, kernel, stride, pad_before, dilation)[1] == 0:
            raise ValueError(
                f"window {o} along spatial dim {axis} holds no input element: with input size "
                f"{size}, padding {pad_before} and dilation {dilation} all its taps fall in the "
                "padding"
            )


class Plan(NamedTuple):
    """Everything a sliding-window call derives from its shape and window arguments."""
    layout: Layout
    geometry: Geometry
    out_shape: Tuple[int, ...]          # user-facing result shape
    in_kernel_shape: Tuple[int, ...]    # the kernels' view of the input
    out_kernel_shape: Tuple[int, ...]   # the kernels' view of the result
    kernel_geometry: tuple              # Geometry.for_kernel()


_PLANS = {}
_PLAN_CACHE_SIZE = 512


def _plain(value):
    """True for values whose hash cannot confuse validation (2.0 == 2, True == 1)."""
    kind = type(value)
    if kind is int or kind is str or value is None:
        return True
    return kind is tuple and all(type(v) is int for v in value)


def pool_plan(nd, shape, kernel_size, stride, padding, dilation, ceil_mode, channels_last,
              name="x"):
    """Validated layout and geometry of a sliding-window call, memoised.

    Training loops repeat the same call; a validated plan is looked up by its
    exact arguments (only plain ints, tuples of ints, strings and bools are
    cached, so a rejected value can never hit a cached valid one).
    """
    cacheable = (_plain(kernel_size) and _plain(stride) and _plain(padding) and _plain(dilation)
                 and type(ceil_mode) is bool and type(channels_last) is bool)
    if cacheable:
        key = (nd, shape, kernel_size, stride, padding, dilation, ceil_mode, channels_last, name)
        plan = _PLANS.get(key)
        if plan is not None:
            return plan
    lay = layout(shape, nd, channels_last, name=name)
    geom = pool_geometry(nd, lay.spatial, kernel_size, stride, padding, dilation, ceil_mode)
    plan = Plan(lay, geom, lay.shape_with(geom.out_size), lay.kernel_shape(lay.spatial),
                lay.kernel_shape(geom.out_size), geom.for_kernel())
    if cacheable:
        if len(_PLANS) >= _PLAN_CACHE_SIZE:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


def divisor(value):
    """``divisor_override``: None or a non-zero int."""
    if value is None:
        return 0
    v = _as_int(value, "divisor_override")
    if v == 0:
        raise ValueError("divisor_override must be a non-zero int or None, got 0")
    if abs(v) > MAX_PARAM:
        raise ValueError(f"divisor_override must be at most {MAX_PARAM} in magnitude, got {value!r}")
    return v


# ---------------------------------------------------------------- results

def result(out, shape, dtype, x=None, name="out"):
    """A fresh result array, or the caller's ``out`` after checking it."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray or None, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {out.shape}")
    if out.dtype != dtype:
        raise ValueError(f"{name} must have dtype {np.dtype(dtype).name}, got {out.dtype.name}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    if x is not None and np.may_share_memory(out, x):
        raise ValueError(f"{name} must not overlap the input")
    return out


def split_out(out, return_indices):
    """``out`` as ``(values, indices)``: a tuple when indices are returned."""
    if out is None:
        return None, None
    if return_indices:
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError("out must be a tuple (values, indices) when return_indices=True")
        return out
    return out, None


def index_array(indices, shape, name="indices"):
    """Indices as C-contiguous int64 of ``shape``."""
    indices = as_array(indices, name)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{name} must have an integer dtype, got {indices.dtype.name}")
    if indices.shape != tuple(shape):
        raise ValueError(f"{name} must have the shape of grad_output {tuple(shape)}, got {indices.shape}")
    if indices.dtype == np.uint64 and indices.size and indices.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds values past the int64 range")
    return np.ascontiguousarray(indices, dtype=np.int64)


__all__ = [
    "Geometry", "Layout", "as_array", "as_kernel_input", "divisor", "flag",
    "index_array", "input_shape", "int_tuple", "layout", "max_compute_dtype",
    "num_threads", "pool_geometry", "real_compute_dtype", "result", "split_out",
    "threads_for",
]
