"""Argument normalisation and validation: the one place every rule lives.

Every public function hands its raw arguments here first.  Each check raises
``ValueError`` (or ``TypeError`` for a wrong type) with a message that names the
argument, the value and the rule, before any work starts.  The one exception is
the values of index arrays, which the scatters check in their one pass over a
result of their own (the result is dropped on error); a caller's ``out=`` is
checked first, so nothing is written into it.
"""

import math
import numbers
import operator
from typing import NamedTuple, Tuple

import numpy as np

from cypool import _memory, _threads
from cypool._geometry import max_window as _max_window
from cypool._geometry import output_size as _output_size

# Every kernel/stride/dilation/padding value stays below this, so the window
# geometry's 64-bit products cannot overflow (see _geometry.pxd).
MAX_PARAM = 2**31 - 1
# Every shape holds fewer elements than this (zero sizes counted as one), so
# sizes, plane sizes and offsets fit 64 bits (see _geometry.pxd).
MAX_ELEMENTS = 2**62
# Inputs smaller than this (elements) run on one thread: starting a team costs
# more than the work.
SERIAL_BELOW = 1 << 17
#: Shortest row (bytes) of a strided input that as_kernel_input copies on threads.
THREADED_COPY_ROW = 64

_NAMES = {1: "1-D", 2: "2-D", 3: "3-D"}


# ------------------------------------------------------------------- dtypes

def _dtype_name(dtype):
    return np.dtype(dtype).name


def _native(dtype):
    """``dtype`` in the machine's byte order: the kernels read native values."""
    dtype = np.dtype(dtype)
    return dtype if dtype.isnative else dtype.newbyteorder("=")


# Memoised answers of the two functions below: one dict lookup per call.
_MAX_COMPUTE = {}
_REAL_COMPUTE = {}


def _dtype_key(dtype):
    """Cache key that tells apart equal dtypes of different type numbers
    (``longlong`` == ``int64``, but the kernels dispatch on the number)."""
    try:
        return dtype.num, dtype.byteorder
    except AttributeError:  # a type or a string, not a dtype
        dtype = np.dtype(dtype)
        return dtype.num, dtype.byteorder


def max_compute_dtype(dtype, name="x"):
    """Dtype the max family computes in: ints and floats kept, float16 and bool
    computed as float32 and uint8 (and converted back)."""
    key = _dtype_key(dtype)
    compute = _MAX_COMPUTE.get(key)
    if compute is None:
        compute = _MAX_COMPUTE[key] = _max_compute_dtype(dtype, name)
    return compute


def _max_compute_dtype(dtype, name):
    dtype = _native(dtype)
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
    key = _dtype_key(dtype)
    compute = _REAL_COMPUTE.get(key)
    if compute is None:
        compute = _REAL_COMPUTE[key] = _real_compute_dtype(dtype, name, op)
    return compute


def _real_compute_dtype(dtype, name, op):
    dtype = _native(dtype)
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


# Type numbers the kernels dispatch on: the sized types' canonical numbers.
_CANONICAL_NUMS = frozenset(np.dtype(f"{kind}{size}").num
                            for kind, sizes in (("i", (1, 2, 4, 8)), ("u", (1, 2, 4, 8)),
                                                ("f", (4, 8)))
                            for size in sizes)


#: Inputs and results of at least this many elements are cast between dtypes
#: on the call's threads (``_threads.cast_into``); NumPy casts on one, and
#: float16 in software.
THREADED_CAST_SIZE = 1 << 16


def _cast_on_threads(src_dtype, dst_dtype):
    """Whether ``_threads.cast_into`` takes the pair (native byte order aside)."""
    return ((src_dtype == np.float16 and dst_dtype == np.float32)
            or (src_dtype == np.float32 and dst_dtype == np.float16)
            or (src_dtype.kind in "iu" and dst_dtype == np.float64))


def cast_into(dst, src, nthreads):
    """``np.copyto(dst, src, casting="unsafe")``: a kernel's result into the
    caller's dtype, on the call's threads when large enough (float16)."""
    if not (src.size >= THREADED_CAST_SIZE
            and _threads.cast_into(src, dst, threads_for(nthreads, src.size))):
        np.copyto(dst, src, casting="unsafe")


def as_kernel_input(x, compute_dtype, nthreads=1):
    """C-contiguous, aligned copy or view of ``x`` in the kernel's dtype
    (a misaligned view, e.g. from ``np.frombuffer``, is copied: the kernels'
    typed loads assume alignment).

    The kernels dispatch on NumPy's type number, and equal types can have two
    (``longlong`` vs ``int64`` on Linux): the result is viewed as the canonical
    sized type.

    A large strided view of the kernel's dtype whose rows are contiguous (a
    crop, a slice of channels) is copied a row at a time on ``nthreads``
    threads; NumPy's copy takes one.  A large contiguous input of another
    dtype (float16, integers averaged in float64) is cast on them too
    (:func:`cast_into`).
    """
    if (x.dtype == compute_dtype and x.dtype.num in _CANONICAL_NUMS
            and x.flags.c_contiguous and x.flags.aligned):
        return x
    if (x.dtype == compute_dtype and x.dtype.num in _CANONICAL_NUMS and x.flags.aligned
            and x.ndim >= 1 and x.strides[-1] == x.itemsize
            and x.shape[-1] * x.itemsize >= THREADED_COPY_ROW
            and threads_for(nthreads, x.size) > 1):
        copy = empty(x.shape, x.dtype)
        _threads.contiguous_copy(x, copy, nthreads)
        return copy
    if compute_dtype == np.uint8 and x.dtype == np.bool_:
        return np.ascontiguousarray(x).view(np.uint8)
    if (x.flags.c_contiguous and x.flags.aligned and x.size >= THREADED_CAST_SIZE
            and x.dtype.isnative and _cast_on_threads(x.dtype, compute_dtype)):
        converted = empty(x.shape, compute_dtype)
        _threads.cast_into(x, converted, threads_for(nthreads, x.size))
        return converted
    array = np.require(x, compute_dtype, ["C_CONTIGUOUS", "ALIGNED"])
    canonical = np.dtype(f"{array.dtype.kind}{array.dtype.itemsize}")
    return array if array.dtype.num == canonical.num else array.view(canonical)


# ------------------------------------------------------------------ scalars

def _as_int(value, name):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None


def _listed(value):
    """An output size given as a 1-D NumPy array (``np.array(x.shape[2:]) // 2``)
    as a list of Python scalars, whose float or bool items are then refused as
    in a tuple; anything else as it is.  Window arguments take no arrays."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return value.tolist()
    return value


def int_tuple(value, nd, name, minimum, maximum=MAX_PARAM):
    """An int or a tuple/list of ``nd`` ints, each in ``[minimum, maximum]``."""
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
    if value is True or value is False:
        return value
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
    check_element_count(shape, name)
    return Layout(batched, batch, channels, spatial, channels_last)


def check_element_count(shape, name):
    """Reject a shape of ``MAX_ELEMENTS`` or more elements (zero sizes count as
    one), before any size product reaches 64-bit arithmetic."""
    total = 1
    for size in shape:
        total *= max(size, 1)
    if total >= MAX_ELEMENTS:
        raise ValueError(
            f"{name} {tuple(shape)} describes {total} elements (ignoring zero sizes); "
            "cypool takes fewer than 2**62"
        )


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


_PLAIN_SCALARS = frozenset((int, str, type(None)))
_INT_ONLY = frozenset((int,))


def _plain(value):
    """True for values whose hash cannot confuse validation (2.0 == 2, True == 1)."""
    kind = type(value)
    if kind is tuple:
        return _INT_ONLY.issuperset(map(type, value))
    return kind in _PLAIN_SCALARS


def pool_plan(nd, shape, kernel_size, stride, padding, dilation, ceil_mode, channels_last,
              name="x"):
    """Validated layout and geometry of a sliding-window call, memoised.

    Training loops repeat the same call; a validated plan is looked up by its
    exact arguments (only plain ints, tuples of ints, strings and bools are
    cached, so a rejected value can never hit a cached valid one).
    """
    window = (kernel_size, stride, padding, dilation)
    cacheable = type(ceil_mode) is bool and type(channels_last) is bool and (
        _PLAIN_SCALARS.issuperset(map(type, window)) or all(map(_plain, window)))
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
    """A fresh result array, or the caller's ``out`` after checking it.

    ``x`` is the array, or tuple of arrays, that ``out`` must not overlap: the
    inputs, and any result already written (a kernel that reads what it
    writes, e.g. indices, could otherwise be sent out of bounds).
    """
    if out is None:
        return empty(shape, dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray or None, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {out.shape}")
    if out.dtype != dtype:
        raise ValueError(f"{name} must have dtype {np.dtype(dtype).name}, got {out.dtype.name}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not out.flags.aligned:
        raise ValueError(f"{name} must be aligned to its dtype's size")
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    others = () if x is None else x if isinstance(x, tuple) else (x,)
    if any(np.may_share_memory(out, other) for other in others):
        raise ValueError(f"{name} must not overlap the input or another result")
    return out


#: Results (and temporaries) of at least this many bytes come from
#: ``_memory``'s cache of freed buffers: 32 MiB is glibc's largest mmap
#: threshold on 64-bit, so from the C library every one would be fresh pages
#: from the OS, each page faulted in and zeroed again on every call.
LARGE_RESULT_BYTES = _memory.MIN_BYTES


def empty(shape, dtype):
    """``np.empty``; large arrays from the cache of freed buffers."""
    if math.prod(shape) * np.dtype(dtype).itemsize >= LARGE_RESULT_BYTES:
        return _memory.empty(shape, dtype)
    return np.empty(shape, dtype)


def scatter_result(out, shape, dtype, x=None, name="out"):
    """:func:`result` for a kernel that zeroes its result and scatters into
    it (max unpooling, max backward): ``(array, zeroed)``, ``zeroed`` when the
    array is all zeros already.  A large result that no freed buffer serves
    comes zeroed from calloc (fresh zero pages from the OS, which the kernel
    need not zero again); one that a freed buffer serves is zeroed by the
    kernel on its threads.  (Max backward adds into its result: on fresh
    zero pages it writes one element a page first, or its first touch of a
    page would be a read, which maps the shared zero page and faults again
    on the write.)"""
    if out is None:
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if nbytes >= LARGE_RESULT_BYTES and not _memory.has(nbytes):
            return _memory.zeros(shape, dtype), True
    return result(out, shape, dtype, x, name), False


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
    """Indices as C-contiguous, aligned int64 of ``shape``."""
    indices = as_array(indices, name)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{name} must have an integer dtype, got {indices.dtype.name}")
    if indices.shape != tuple(shape):
        raise ValueError(f"{name} must have the shape of grad_output {tuple(shape)}, got {indices.shape}")
    # Python ints: NumPy 1.x compares uint64 with int64 through float64
    if indices.dtype == np.uint64 and indices.size and int(indices.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds values past the int64 range")
    return np.require(indices, np.int64, ["C_CONTIGUOUS", "ALIGNED"])


# ------------------------------------ unpooling, fractional and stochastic

def same_shape_indices(indices, shape, of="x"):
    """Indices as C-contiguous int64 that must have the shape of ``of``."""
    found = as_array(indices, "indices").shape
    if found != tuple(shape):
        raise ValueError(f"indices must have the shape of {of} {tuple(shape)}, got {found}")
    return index_array(indices, shape)


def check_indices_in_plane(bad, index, plane, what):
    """Raise when ``bad`` (a count from the kernels) of ``index`` fall outside ``[0, plane)``."""
    if bad:
        example = int(index[(index < 0) | (index >= plane)].flat[0])
        raise ValueError(
            f"indices must be offsets inside one {what} plane, in [0, {plane}); {bad} of them "
            f"are not (e.g. {example})"
        )


def unpool_output_size(nd, lay, kernel_size, stride, padding, output_size):
    """Spatial output sizes of max unpooling, PyTorch's rule.

    The default per dim is ``(in - 1) * stride + kernel - 2 * padding``; a given
    ``output_size`` (spatial sizes, or a full shape in the call's layout) must lie
    strictly within ``stride`` of it.
    """
    kernel = int_tuple(kernel_size, nd, "kernel_size", 1)
    stride = kernel if stride is None else int_tuple(stride, nd, "stride", 1)
    pads = int_tuple(padding, nd, "padding", 0)
    default = tuple((size - 1) * s + k - 2 * p
                    for size, k, s, p in zip(lay.spatial, kernel, stride, pads))
    if output_size is None:
        sizes = default
    else:
        sizes = _unpool_spatial(nd, lay, output_size)
        for axis, (size, base, s) in enumerate(zip(sizes, default, stride)):
            if not base - s < size < base + s:
                raise ValueError(
                    f"output_size {tuple(output_size)!r} is invalid: spatial dim {axis} must be "
                    f"strictly between {base - s} and {base + s} (the default size {base} "
                    f"+- stride {s})"
                )
    for axis, size in enumerate(sizes):
        if size < 1:
            raise ValueError(
                f"max unpooling output size would be {size} (< 1) along spatial dim {axis}: "
                f"(in - 1) * stride + kernel_size - 2 * padding with in={lay.spatial[axis]}, "
                f"stride={stride[axis]}, kernel_size={kernel[axis]}, padding={pads[axis]}"
            )
    check_element_count(lay.shape_with(sizes), "the unpooled shape")
    return sizes


def _unpool_spatial(nd, lay, output_size):
    """The spatial part of an unpooling ``output_size``."""
    output_size = _listed(output_size)
    if not isinstance(output_size, (tuple, list)):
        raise TypeError(
            f"output_size must be a tuple of {nd} spatial sizes or a full shape, "
            f"got {type(output_size).__name__} {output_size!r}"
        )
    sizes = tuple(_as_int(v, "output_size") for v in output_size)
    lead = (lay.batch, lay.channels) if lay.batched else (lay.channels,)
    if len(sizes) == nd:
        return sizes
    if len(sizes) == nd + len(lead):
        if lay.channels_last:
            spatial, found = sizes[len(lead) - 1:-1], sizes[:len(lead) - 1] + sizes[-1:]
        else:
            spatial, found = sizes[len(lead):], sizes[:len(lead)]
        if found != lead:
            raise ValueError(
                f"output_size {sizes} as a full shape must keep the batch and channel sizes "
                f"{lead} of x"
            )
        return spatial
    raise ValueError(
        f"output_size must hold {nd} spatial sizes or the {nd + len(lead)} sizes of a full "
        f"shape, got {sizes} ({len(sizes)} values)"
    )


def _positive_ratio(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                      np.floating)):
        raise TypeError(f"{name} must be a float or a tuple of floats, got "
                        f"{type(value).__name__} {value!r}")
    if not 0 < value < 1:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return float(value)


def fractional_output_size(nd, spatial, kernel_size, output_size, output_ratio):
    """Kernel and output sizes of fractional max pooling.

    Exactly one of ``output_size`` and ``output_ratio`` (``0 < r < 1``, output
    ``int(in * r)`` as PyTorch); every window must fit: ``out + kernel - 1 <= in``.
    """
    kernel = int_tuple(kernel_size, nd, "kernel_size", 1)
    if (output_size is None) == (output_ratio is None):
        raise ValueError("fractional max pooling takes exactly one of output_size and "
                         f"output_ratio, got output_size={output_size!r}, "
                         f"output_ratio={output_ratio!r}")
    if output_size is not None:
        out = int_tuple(_listed(output_size), nd, "output_size", 1)
    else:
        if isinstance(output_ratio, (tuple, list)):
            if len(output_ratio) != nd:
                raise ValueError(f"output_ratio must be a float or a tuple of {nd} floats, "
                                 f"got {tuple(output_ratio)!r}")
            ratios = tuple(_positive_ratio(r, "output_ratio") for r in output_ratio)
        else:
            ratios = (_positive_ratio(output_ratio, "output_ratio"),) * nd
        out = tuple(int(size * r) for size, r in zip(spatial, ratios))
        for axis, size in enumerate(out):
            if size < 1:
                raise ValueError(
                    f"output_ratio {output_ratio!r} gives output size 0 along spatial dim {axis} "
                    f"(int({spatial[axis]} * {ratios[axis]})); it must be at least 1"
                )
    for axis, (size, k, o) in enumerate(zip(spatial, kernel, out)):
        if o + k - 1 > size:
            raise ValueError(
                f"fractional max pooling needs output_size + kernel_size - 1 <= input size; "
                f"along spatial dim {axis} it is {o} + {k} - 1 > {size}"
            )
    return kernel, out


def sample_dtype(dtype):
    """Dtype of fractional pooling's samples: the input's float dtype, else float64."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize in (2, 4, 8):
        return dtype.newbyteorder("=")
    return np.dtype(np.float64)


def generator(rng):
    """``rng`` as a ``numpy.random.Generator``: a Generator, an int seed, or None (fresh)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"rng as a seed must be a non-negative int, got {rng!r}")
        return np.random.default_rng(int(rng))
    raise TypeError("rng must be a numpy.random.Generator, an int seed or None, "
                    f"got {type(rng).__name__} {rng!r}")


def fractional_samples(samples, rng, lay, nd, dtype):
    """Per-plane samples of fractional pooling as a C-contiguous ``(N*C, nd)`` array.

    ``samples`` is PyTorch's ``_random_samples``: shape ``(N', C, nd)`` with
    ``N' >= N`` (the first ``N`` rows are used), values in ``[0, 1)``, cast to
    ``dtype``.  Without it ``rng`` draws them.
    """
    need = (lay.batch, lay.channels, nd)
    if samples is None:
        gen = generator(rng)
        if dtype == np.float16:
            # every k/2048 is exact in float16, so a draw never rounds up to 1
            drawn = np.floor(gen.random(need) * 2048) / 2048
        else:
            drawn = gen.random(need, dtype=dtype)
        return np.ascontiguousarray(drawn, dtype=dtype).reshape(-1, nd)
    if rng is not None:
        raise ValueError("pass either _random_samples or rng, not both")
    samples = as_array(samples, "_random_samples")
    if samples.dtype.kind not in "fiu":
        raise TypeError(f"_random_samples must hold real numbers, got dtype {samples.dtype.name}")
    if (samples.ndim != 3 or samples.shape[0] < lay.batch or samples.shape[1:] != need[1:]):
        raise ValueError(
            f"_random_samples must have shape (N', {lay.channels}, {nd}) with N' >= the batch "
            f"size {lay.batch}, got {samples.shape}"
        )
    samples = np.ascontiguousarray(samples[:lay.batch], dtype=dtype)
    if samples.size and not np.all((samples >= 0) & (samples < 1)):
        raise ValueError("_random_samples must lie in [0, 1) (as torch.rand draws them), got "
                         f"values from {samples.min()} to {samples.max()}")
    return samples.reshape(-1, nd)


def stochastic_uniforms(rng, lay, out_spatial):
    """One float64 uniform per output element, in the kernels' layout.

    Drawn in channels-first order ``(N, C, *out)`` whatever the layout, so a seed
    gives the same samples in both layouts.
    """
    gen = generator(rng)
    plane = int(np.prod(out_spatial))
    draws = gen.random((lay.batch, lay.channels, plane))
    if lay.channels_last:
        draws = np.ascontiguousarray(draws.transpose(0, 2, 1))
    return draws


__all__ = [
    "Geometry", "Layout", "as_array", "as_kernel_input", "cast_into", "divisor", "empty", "flag",
    "index_array", "input_shape", "int_tuple", "layout", "max_compute_dtype",
    "num_threads", "pool_geometry", "real_compute_dtype", "result", "scatter_result",
    "split_out", "threads_for",
]


# --------------------------------------------- adaptive, global and LP pooling

#: Adaptive window bounds multiply a window index by the input size
#: (_geometry.pxd): exact while ``in_size * out_size`` stays below this.
ADAPTIVE_PRODUCT_LIMIT = 2**63


def adaptive_output_size(output_size, nd, spatial):
    """``output_size`` of an adaptive pool as ``nd`` ints.

    An int, or a tuple/list of ``nd`` entries that are ints or None (None keeps
    that input size); each size in ``[1, 2**31 - 1]`` with
    ``in_size * out_size < 2**63`` so the window bounds are exact.
    """
    if output_size is None:
        raise TypeError(f"output_size must be an int or a tuple of {nd} ints or None entries, "
                        "got None")
    output_size = _listed(output_size)
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != nd:
            raise ValueError(
                f"output_size must be an int or a tuple of {nd} ints (or None entries) for "
                f"{_NAMES[nd]} pooling, got {tuple(output_size)!r} ({len(output_size)} values)"
            )
        entries = tuple(output_size)
    else:
        entries = (output_size,) * nd
    sizes = []
    for axis, (entry, size) in enumerate(zip(entries, spatial)):
        value = size if entry is None else _as_int(entry, "output_size")
        if value < 1:
            raise ValueError(f"output_size must be >= 1, got {output_size!r}")
        if value > MAX_PARAM:
            raise ValueError(f"output_size must be <= {MAX_PARAM} along spatial dim {axis} "
                             f"(None keeps the input size {size}), got {output_size!r}")
        if size * value >= ADAPTIVE_PRODUCT_LIMIT:
            raise ValueError(
                f"output_size {value} times the input size {size} along spatial dim {axis} "
                "must be below 2**63 (adaptive windows are computed exactly in 64 bits)"
            )
        sizes.append(value)
    return tuple(sizes)


class ReducePlan(NamedTuple):
    """Layout and kernel shapes of an adaptive or global pooling call."""
    layout: Layout
    out_shape: Tuple[int, ...]          # user-facing result shape
    in_kernel_shape: Tuple[int, ...]    # the kernels' view of the input
    out_kernel_shape: Tuple[int, ...]   # the kernels' view of the result
    in_size: Tuple[int, int, int]       # the kernels' spatial (D, H, W) of the input
    out_size: Tuple[int, int, int]      # ... and of the result


def _spatial3(spatial):
    return (1,) * (3 - len(spatial)) + tuple(spatial)


def adaptive_plan(nd, shape, output_size, channels_last, name="x"):
    """Validated layout and output size of an adaptive call, memoised like
    :func:`pool_plan` (an ``output_size`` with None entries is not cached)."""
    cacheable = _plain(output_size) and type(channels_last) is bool
    if cacheable:
        key = ("adaptive", nd, shape, output_size, channels_last, name)
        plan = _PLANS.get(key)
        if plan is not None:
            return plan
    lay = layout(shape, nd, channels_last, name=name)
    out_size = adaptive_output_size(output_size, nd, lay.spatial)
    plan = ReducePlan(lay, lay.shape_with(out_size), lay.kernel_shape(lay.spatial),
                      lay.kernel_shape(out_size), _spatial3(lay.spatial), _spatial3(out_size))
    if cacheable:
        if len(_PLANS) >= _PLAN_CACHE_SIZE:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


def global_plan(shape, channels_last, keepdims, name="x"):
    """Layout of a global pool over every spatial dim of a batched input.

    Global pooling takes any number of spatial dims, so it cannot tell an
    unbatched input from a batched one: axis 0 is always the batch.  Each
    plane is flattened to the kernels' ``(1, 1, P)``.
    """
    channels_last = flag(channels_last, "channels_last")
    keepdims = flag(keepdims, "keepdims")
    if len(shape) < 3:
        order = "(N, *spatial, C)" if channels_last else "(N, C, *spatial)"
        raise ValueError(
            f"{name} must be batched {order} with at least one spatial dim for global pooling, "
            f"got shape {tuple(shape)} (for one sample add a batch axis: x[None])"
        )
    nd = len(shape) - 2
    lay = layout(shape, nd, channels_last, name=name)
    plane = 1
    for size in lay.spatial:
        plane *= size
    out_shape = lay.shape_with((1,) * nd) if keepdims else (lay.batch, lay.channels)
    return ReducePlan(lay, out_shape, lay.kernel_shape((plane,)), lay.kernel_shape((1,)),
                      (1, 1, plane), (1, 1, 1))


def norm_type(value):
    """LP pooling's ``norm_type``: a positive real number, or inf (max of ``|x|``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"norm_type must be a positive float or inf, "
                        f"got {type(value).__name__} {value!r}")
    try:
        p = float(value)
    except OverflowError:
        raise ValueError(f"norm_type {value!r} is too large for a float; "
                         "pass float('inf') for the max norm") from None
    if math.isnan(p) or p <= 0:
        raise ValueError(f"norm_type must be a positive number or inf (norm_type > 0), "
                         f"got {value!r}")
    return p


__all__ += ["adaptive_output_size", "adaptive_plan", "global_plan", "norm_type", "ReducePlan"]
