"""The op table: every public pooling op, how to draw valid arguments for it,
how to call cypool and what the reference says the result is.

``OPS`` maps a public function name to an :class:`Op`.  ``Op.build(choose)``
returns a :class:`Case`: the call's keyword arguments, the reference's answer
(``Case.expect()``, in cypool's layout and dtype), how to compare, and, when
the arguments are valid but cypool must refuse them (a max window made only of
padding), the error it must raise.  ``Op.bad`` lists invalid replacements for
single arguments, each of which must raise ``ValueError``/``TypeError`` naming
the argument.

Builders take every decision from a :class:`Choices`, so one builder serves
hypothesis (:class:`DrawChoices`), seeded loops (:class:`RandomChoices`) and
atheris (:class:`FuzzChoices`).  Ops whose public function does not exist yet
are left out of ``OPS``, so the table grows with the family.

>>> import numpy as np
>>> case = OPS["max_pool2d"].build(RandomChoices(np.random.default_rng(0)))
>>> check(case)  # cypool agrees with the reference (or refuses as it must)
"""

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Tuple

import numpy as np
from hypothesis import strategies as st

import cypool
import reference as ref

# ------------------------------------------------------------------ choices


class Choices:
    """Where a case builder's decisions come from (``kinds``: the float value
    kinds inputs are drawn from, see :func:`values`)."""

    kinds = None

    def integer(self, lo, hi):
        """An int in ``[lo, hi]``."""
        raise NotImplementedError

    def pick(self, options):
        return options[self.integer(0, len(options) - 1)]

    def flag(self):
        return bool(self.integer(0, 1))


class DrawChoices(Choices):
    """Decisions drawn by hypothesis (so failures shrink)."""

    def __init__(self, draw):
        self._draw = draw

    def integer(self, lo, hi):
        return self._draw(st.integers(lo, hi))


class RandomChoices(Choices):
    """Decisions from a seeded ``numpy.random.Generator``."""

    def __init__(self, rng, kinds=None):
        self._rng = rng
        self.kinds = kinds

    def integer(self, lo, hi):
        return int(self._rng.integers(lo, hi, endpoint=True))


class Recorder(Choices):
    """Passes another source's decisions through and keeps them for a replay."""

    def __init__(self, source):
        self._source = source
        self.decisions = []

    def integer(self, lo, hi):
        value = self._source.integer(lo, hi)
        self.decisions.append(value)
        return value


class Replay(Choices):
    """Decisions replayed from a :class:`Recorder`'s list (a regression case)."""

    def __init__(self, decisions):
        self._decisions = list(decisions)

    def integer(self, lo, hi):
        value = self._decisions.pop(0) if self._decisions else lo
        return min(max(value, lo), hi)


class FuzzChoices(Choices):
    """Decisions from an ``atheris.FuzzedDataProvider``."""

    def __init__(self, fdp):
        self._fdp = fdp

    def integer(self, lo, hi):
        return self._fdp.ConsumeIntInRange(lo, hi)


# ------------------------------------------------------------------- cases

@dataclass
class Case:
    """One call of a cypool function and what it must give."""
    op: str                                  # public cypool name
    kwargs: dict                             # every argument, by keyword
    expect: Callable[[], Any]                # the reference's result in cypool's layout
    compare: Callable[[Any, Any], None]      # asserts got == want (within tolerance)
    nd: int
    kernel: Tuple[int, ...] = ()             # per-axis kernel (for bad-argument makers)
    rejected: Optional[str] = None           # cypool must raise ValueError matching this
    inputs: tuple = ()                       # arrays the call must leave unchanged
    extra: dict = field(default_factory=dict)

    def call(self, **override):
        return getattr(cypool, self.op)(**dict(self.kwargs, **override))


class Skip(Exception):
    """A bad-argument maker that does not apply to this case."""


@dataclass(frozen=True)
class Bad:
    """Replace ``argument`` by ``make(case)`` (or the value itself); the error
    message must name one of ``names`` (default: the argument)."""
    argument: str
    make: Any
    names: Tuple[str, ...] = ()

    def value(self, case):
        return self.make(case) if callable(self.make) else self.make

    def words(self):
        return self.names or (self.argument,)


@dataclass(frozen=True)
class Op:
    name: str
    build: Callable[[Choices], Case]
    bad: Tuple[Bad, ...]


def expected(case):
    """The reference's result for ``case`` (quietly: inf - inf is NaN there too)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return case.expect()


def check(case):
    """Call cypool and compare with the reference (or check the refusal)."""
    import pytest

    if case.rejected:
        with pytest.raises(ValueError, match=case.rejected):
            case.call()
        return
    keep = [np.array(a, copy=True) for a in case.inputs]
    got = case.call()
    case.compare(got, expected(case))
    for before, after in zip(keep, case.inputs):
        np.testing.assert_array_equal(np.asarray(after), before, err_msg="input modified")


def fixed_case(name, seed=0, kinds=None):
    """A seeded case of ``name`` that cypool accepts, with a non-empty batch;
    with ``kinds``, a float input of those value kinds (see :func:`values`)."""
    rng = np.random.default_rng(seed)
    while True:
        case = OPS[name].build(RandomChoices(rng, kinds))
        first = np.asarray(case.inputs[0])
        if (case.rejected is None and min(first.shape, default=1) > 0
                and (kinds is None or first.dtype.kind == "f")):
            return case


def refusal(case, bad):
    """The error message of the call with ``bad`` in place; AssertionError unless
    it is a ValueError/TypeError naming the argument (raises Skip when ``bad``
    does not apply to ``case``)."""
    value = bad.value(case)
    try:
        case.call(**{bad.argument: value})
    except (ValueError, TypeError) as exc:
        message = str(exc)
    else:
        raise AssertionError(f"{case.op}: {bad.argument}={value!r} was accepted")
    missing = [word for word in bad.words() if word not in message]
    assert message and not missing, (
        f"{case.op}: {bad.argument}={value!r}: message {message!r} does not name {missing}")
    return message


# ----------------------------------------------------------- array helpers

FLOAT_KINDS = ("randn", "ties", "nan", "inf-mix", "all-neginf", "const", "all-nan", "all-inf")
VIEWS = ("contiguous", "strided", "reversed", "read-only", "fortran", "list")


def values(choose, shape, dtype):
    """Seeded input of ``shape``: the reference's value kinds for floats, full-range
    or tied integers, sparse bools."""
    rng = np.random.default_rng(choose.integer(0, 2**32 - 1))
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        kind = choose.pick(choose.kinds or FLOAT_KINDS)
        if kind.startswith("all-") and kind != "all-neginf":
            return np.full(shape, np.nan if kind == "all-nan" else np.inf, dtype)
        return ref.make_values(kind, shape, dtype, rng)
    if dtype.kind == "b":
        return rng.random(shape) < 0.3
    if choose.flag():
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return rng.integers(0, 3, size=shape).astype(dtype)


def present(choose, a):
    """``a`` as the caller might pass it: contiguous, strided, negative-stride,
    read-only or Fortran-ordered views, or (float64/int64 only) a nested list."""
    view = choose.pick(VIEWS)
    if view == "strided" and a.ndim:
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        wide[..., ::2] = a
        return wide[..., ::2]
    if view == "reversed" and a.ndim:
        return np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    if view == "read-only":
        a = a.copy()
        a.flags.writeable = False
        return a
    if view == "fortran":
        return np.asfortranarray(a)
    if view == "list" and a.size and a.dtype in (np.float64, np.int64):
        return a.tolist()
    return np.ascontiguousarray(a)


@dataclass(frozen=True)
class Layout:
    """Batch and channel placement of a case; the reference works channels-first
    and batched, ``user`` turns its arrays into the caller's layout."""
    batch: int
    batched: bool
    channels: int
    channels_last: bool

    def shape(self, spatial):
        return (self.batch, self.channels) + tuple(spatial)

    def user(self, a):
        if self.channels_last:
            a = np.moveaxis(a, 1, -1)
        return a if self.batched else a[0]

    def user_shape(self, spatial):
        return self.user(np.empty(self.shape(spatial), np.bool_)).shape


WIDE = 700   # channels of the layouts with enough elements for the threaded paths


def draw_layout(choose):
    batch = choose.pick((None, 0, 1, 2))   # None: unbatched
    # Now and then enough channels (and so elements) for the threaded paths.
    channels = WIDE if choose.integer(0, 15) == 0 else choose.integer(1, 3)
    return Layout(1 if batch is None else batch, batch is not None, channels, choose.flag())


def num_threads(choose):
    return choose.pick((None, 1, 2))


# --------------------------------------------------------------- windows

SIDES = (1, 2, 3, 4, 5, 7, 11, 13, 17, 19, 23, 29)   # size 1 and primes
LIMITS = {1: (29, 5, 4), 2: (13, 4, 3), 3: (7, 3, 2)}  # side, kernel, dilation per nd


@dataclass(frozen=True)
class Window:
    """A drawn sliding-window geometry and the spatial size it fits."""
    nd: int
    kernel: Tuple[int, ...]
    args: dict          # kernel_size, stride, padding, (dilation,) ceil_mode as passed
    spatial: Tuple[int, ...]

    def ref_args(self):
        return dict(self.args)

    def out_spatial(self):
        a = self.args
        kernel = self.kernel
        stride = kernel if a["stride"] is None else ref._per_axis(a["stride"], self.nd, "stride")
        dilation = ref._per_axis(a.get("dilation", 1), self.nd, "dilation")
        before, after = ref.resolve_padding(a["padding"], self.nd, kernel, stride, dilation,
                                            self.spatial)
        return tuple(ref.output_size(L, k, s, pb, pa, d, a["ceil_mode"])
                     for L, k, s, pb, pa, d in zip(self.spatial, kernel, stride, before, after,
                                                   dilation))

    def has_empty_window(self):
        """True when some max window holds only padding (cypool refuses it)."""
        a = self.args
        stride = self.kernel if a["stride"] is None else ref._per_axis(a["stride"], self.nd, "s")
        dilation = ref._per_axis(a.get("dilation", 1), self.nd, "dilation")
        before, _ = ref.resolve_padding(a["padding"], self.nd, self.kernel, stride, dilation,
                                        self.spatial)
        for L, k, s, pb, d, out in zip(self.spatial, self.kernel, stride, before, dilation,
                                       self.out_spatial()):
            for o in range(out):
                if not any(0 <= o * s - pb + j * d < L for j in range(k)):
                    return True
        return False


def _per_axis_arg(choose, values_):
    """An int when all axes agree and the coin says so, else a tuple or a list."""
    if len(set(values_)) == 1 and choose.flag():
        return values_[0]
    return list(values_) if choose.integer(0, 3) == 0 else tuple(values_)


def draw_window(choose, nd, dilated=True, padded=True, sparse=False):
    """``sparse`` (for WIDE layouts): at most 2 taps per axis, windows 3 or 4
    apart, so that a reference looping over every tap stays quick."""
    side, max_kernel, max_dilation = LIMITS[nd]
    kernel = tuple(choose.integer(1, 2 if sparse else max_kernel) for _ in range(nd))
    dilation = tuple(choose.integer(1, max_dilation) if dilated else 1 for _ in range(nd))
    mode = choose.pick(("int", "tuple", "same", "valid")) if padded else "valid"
    if mode == "int":
        pads = (choose.integer(0, min(kernel) // 2),) * nd
        padding = pads[0]
    elif mode == "tuple":
        pads = tuple(choose.integer(0, k // 2) for k in kernel)
        padding = tuple(pads)
    else:
        pads, padding = (0,) * nd, mode
    spatial = []
    for k, d, p in zip(kernel, dilation, pads):
        need = 1 if mode == "same" else max(1, d * (k - 1) + 1 - 2 * p)
        spatial.append(choose.pick(tuple(s for s in SIDES if need <= s <= side)))
    stride_mode = choose.pick(("int", "tuple") if sparse else ("none", "int", "tuple"))
    shortest = 3 if sparse else 1
    if stride_mode == "none":
        stride = None
    elif stride_mode == "int":
        stride = choose.integer(shortest, 4)
    else:
        stride = tuple(choose.integer(shortest, 4) for _ in range(nd))
    args = dict(kernel_size=_per_axis_arg(choose, kernel), stride=stride, padding=padding,
                ceil_mode=choose.flag())
    if dilated:
        args["dilation"] = _per_axis_arg(choose, dilation)
    return Window(nd, kernel, args, tuple(spatial))


# ------------------------------------------------------------- comparing

def _scale(*arrays):
    """Largest finite magnitude in ``arrays`` (at least 1): the absolute
    tolerance of sums whose order differs."""
    top = 1.0
    for a in arrays:
        a = np.asarray(a, dtype=np.float64)
        finite = a[np.isfinite(a)]
        if finite.size:
            top = max(top, float(np.abs(finite).max()))
    return top


def _tolerance(dtype, scale):
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        return dict(rtol=4e-3, atol=4e-3 * scale)
    if dtype == np.float32:
        return dict(rtol=2e-5, atol=2e-5 * scale)
    return dict(rtol=1e-10, atol=1e-10 * scale)


def _as_list(result):
    return list(result) if isinstance(result, tuple) else [result]


def exact(got, want):
    """Same arrays (shape, dtype and every value; NaN equals NaN)."""
    got, want = _as_list(got), _as_list(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert isinstance(g, np.ndarray) and g.shape == w.shape and g.dtype == w.dtype, \
            (g.shape, g.dtype, w.shape, w.dtype)
        np.testing.assert_array_equal(g, w)


def close(scale, factor=1):
    """Same shape and dtype; values within ``factor`` times the dtype's tolerance of sums."""
    def compare(got, want):
        assert isinstance(got, np.ndarray) and got.shape == want.shape and got.dtype == want.dtype, \
            (got.shape, got.dtype, want.shape, want.dtype)
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                                   equal_nan=True, **{k: factor * v for k, v in
                                                      _tolerance(want.dtype, scale).items()})
    return compare


def close_conditioned(scale, factor, perturbed):
    """:func:`close`, widened element by element by how far the reference
    moves when its input moves by a few float32 roundings (``perturbed()``):
    an LP window whose powers cancel (odd p, mixed signs) has a tiny sum, and
    its gradient amplifies that sum's rounding in any float32 computation,
    PyTorch's included.  Well-conditioned elements keep the plain tolerance."""
    def compare(got, want):
        assert isinstance(got, np.ndarray) and got.shape == want.shape and got.dtype == want.dtype, \
            (got.shape, got.dtype, want.shape, want.dtype)
        tol = {k: factor * v for k, v in _tolerance(want.dtype, scale).items()}
        got64, want64 = got.astype(np.float64), want.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            spread = np.nan_to_num(np.abs(want64 - perturbed().astype(np.float64)), nan=0.0,
                                   posinf=np.inf)
            allowed = tol["atol"] + tol["rtol"] * np.abs(want64) + 16 * spread
            ok = (np.abs(got64 - want64) <= allowed) | (np.isnan(got64) & np.isnan(want64)) | (
                got64 == want64)
        assert ok.all(), (f"{int((~ok).sum())} of {ok.size} differ beyond tolerance; first at "
                          f"{np.argwhere(~ok)[0].tolist()}: got {got64[~ok][0]!r}, "
                          f"want {want64[~ok][0]!r}")
    return compare


# ----------------------------------------------------------- max and avg

MAX_DTYPES = tuple(np.dtype(d) for d in (
    np.float32, np.float64, np.float16, np.int8, np.uint8, np.int16, np.uint16, np.int32,
    np.uint32, np.int64, np.uint64, np.bool_))
AVG_DTYPES = tuple(np.dtype(d) for d in (
    np.float32, np.float64, np.float16, np.int8, np.uint16, np.int32, np.int64))
GRAD_DTYPES = tuple(np.dtype(d) for d in (np.float32, np.float64, np.float16, np.int32))
EMPTY_WINDOW = "holds no input element"
INDEX_RANGE = "indices must be offsets inside one input plane"


def _max_compute(dtype):
    """The dtype the reference runs max pooling in for ``dtype`` (as cypool does)."""
    return {np.dtype(np.bool_): np.uint8, np.dtype(np.float16): np.float32}.get(dtype, dtype)


def _grad_result(dtype):
    return np.dtype(np.float64) if dtype.kind in "iu" else dtype


def _avg_args(choose):
    return dict(count_include_pad=choose.flag(),
                divisor_override=choose.pick((None, None, 1, 3, -2, 7)))


def build_max(nd):
    def build(choose):
        win = draw_window(choose, nd)
        lay = draw_layout(choose)
        dtype = choose.pick(MAX_DTYPES)
        cf = values(choose, lay.shape(win.spatial), dtype)
        x = present(choose, lay.user(cf))
        return_indices = choose.flag()

        def expect():
            got, idx = ref.max_pool(cf.astype(_max_compute(dtype)), nd, **win.ref_args())
            got = lay.user(got.astype(dtype))
            return (got, lay.user(idx)) if return_indices else got

        kwargs = dict(x=x, **win.args, return_indices=return_indices,
                      channels_last=lay.channels_last, num_threads=num_threads(choose))
        return Case(f"max_pool{nd}d", kwargs, expect, exact, nd, win.kernel,
                    EMPTY_WINDOW if win.has_empty_window() else None, (x,))
    return build


def build_max_backward(nd):
    def build(choose):
        win = draw_window(choose, nd)
        lay = draw_layout(choose)
        x_cf = values(choose, lay.shape(win.spatial), np.float64)
        _, idx_cf = ref.max_pool(x_cf, nd, **win.ref_args())
        bad_index = ref.has_out_of_plane_index(idx_cf, x_cf.shape, nd)
        return _scatter_case(f"max_pool{nd}d_backward", choose, lay, win.spatial, idx_cf, nd,
                             win.kernel, INDEX_RANGE if bad_index else None)
    return build


def _scatter_case(name, choose, lay, spatial, idx_cf, nd, kernel, rejected=None):
    """A case of a max-style backward (``grad_output, indices, input_shape``):
    the gradient added at ``idx_cf`` inside each input plane of ``spatial``."""
    grad_dtype = choose.pick(GRAD_DTYPES)
    grad_cf = values(choose, idx_cf.shape, grad_dtype)
    index_dtype = choose.pick((np.int64, np.int32))
    grad = present(choose, lay.user(grad_cf))
    indices = present(choose, lay.user(idx_cf).astype(index_dtype))
    shape = lay.user_shape(spatial)
    input_shape = choose.pick((shape, list(shape), np.array(shape, np.int64)))

    def expect():
        work = grad_cf.astype(np.float64 if grad_dtype.kind in "iu" else grad_dtype)
        got = ref.max_pool_backward(work, idx_cf, lay.shape(spatial))
        return lay.user(got.astype(_grad_result(grad_dtype)))

    kwargs = dict(grad_output=grad, indices=indices, input_shape=input_shape,
                  channels_last=lay.channels_last, num_threads=num_threads(choose))
    return Case(name, kwargs, expect, close(_scale(grad_cf)), nd, kernel, rejected,
                (grad, indices), dict(plane=math.prod(spatial)))


def build_avg(nd):
    def build(choose):
        win = draw_window(choose, nd, dilated=False)
        lay = draw_layout(choose)
        dtype = choose.pick(AVG_DTYPES)
        cf = values(choose, lay.shape(win.spatial), dtype)
        x = present(choose, lay.user(cf))
        divisor = _avg_args(choose)

        def expect():
            work = cf.astype(np.float64) if dtype == np.float16 else cf
            got = ref.avg_pool(work, nd, **win.ref_args(), **divisor)
            return lay.user(got.astype(_grad_result(dtype)))

        kwargs = dict(x=x, **win.args, **divisor, channels_last=lay.channels_last,
                      num_threads=num_threads(choose))
        return Case(f"avg_pool{nd}d", kwargs, expect, close(_scale(cf)), nd, win.kernel,
                    None, (x,))
    return build


def build_avg_backward(nd):
    def build(choose):
        win = draw_window(choose, nd, dilated=False)
        lay = draw_layout(choose)
        grad_dtype = choose.pick(GRAD_DTYPES)
        grad_cf = values(choose, lay.shape(win.out_spatial()), grad_dtype)
        grad = present(choose, lay.user(grad_cf))
        divisor = _avg_args(choose)
        shape = lay.user_shape(win.spatial)

        def expect():
            work = grad_cf.astype(np.float64) if grad_dtype != np.float32 else grad_cf
            got = ref.avg_pool_backward(work, lay.shape(win.spatial), nd, **win.ref_args(),
                                        **divisor)
            return lay.user(got.astype(_grad_result(grad_dtype)))

        kwargs = dict(grad_output=grad, input_shape=shape, **win.args, **divisor,
                      channels_last=lay.channels_last, num_threads=num_threads(choose))
        return Case(f"avg_pool{nd}d_backward", kwargs, expect, close(_scale(grad_cf)), nd,
                    win.kernel, None, (grad,))
    return build


# -------------------------------------------------------------- adaptive

ADAPTIVE_MAX_DTYPES = tuple(d for d in MAX_DTYPES if d != np.bool_)


def draw_adaptive(choose, nd):
    """Spatial sizes and an ``output_size`` (int, tuple, or tuple with None:
    keep that size), larger than the input now and then."""
    side = LIMITS[nd][0]
    spatial = tuple(choose.pick(tuple(s for s in SIDES if s <= side)) for _ in range(nd))
    sizes = tuple(choose.integer(1, 8) for _ in range(nd))
    mode = choose.pick(("int", "tuple", "none"))
    if mode == "int":
        return spatial, sizes[0], (sizes[0],) * nd
    if mode == "none":
        keep = tuple(None if choose.flag() else o for o in sizes)
        return spatial, keep, tuple(L if o is None else o for L, o in zip(spatial, keep))
    return spatial, sizes, sizes


def _adaptive(nd, average):
    import reference_reduce as rr

    def build(choose):
        spatial, output_size, out_spatial = draw_adaptive(choose, nd)
        lay = draw_layout(choose)
        dtype = choose.pick(AVG_DTYPES if average else ADAPTIVE_MAX_DTYPES)
        cf = values(choose, lay.shape(spatial), dtype)
        x = present(choose, lay.user(cf))
        kwargs = dict(x=x, output_size=output_size)
        if average:
            def expect():
                work = cf.astype(np.float64) if dtype == np.float16 else cf
                return lay.user(rr.adaptive_avg_pool(work, nd, out_spatial).astype(_grad_result(dtype)))
            compare = close(_scale(cf))
        else:
            kwargs["return_indices"] = choose.flag()

            def expect():
                got, idx = rr.adaptive_max_pool(cf.astype(_max_compute(dtype)), nd, out_spatial)
                got = lay.user(got.astype(dtype))
                return (got, lay.user(idx)) if kwargs["return_indices"] else got
            compare = exact
        kwargs.update(channels_last=lay.channels_last, num_threads=num_threads(choose))
        kind = "avg" if average else "max"
        return Case(f"adaptive_{kind}_pool{nd}d", kwargs, expect, compare, nd, inputs=(x,))
    return build


def _adaptive_backward(nd, average):
    import reference_reduce as rr

    def build(choose):
        spatial, _, out_spatial = draw_adaptive(choose, nd)
        lay = draw_layout(choose)
        grad_dtype = choose.pick(GRAD_DTYPES)
        grad_cf = values(choose, lay.shape(out_spatial), grad_dtype)
        shape = lay.user_shape(spatial)
        kwargs = dict(grad_output=present(choose, lay.user(grad_cf)))
        work = grad_cf.astype(np.float64 if grad_dtype != np.float32 else grad_dtype)
        if average:
            def expect():
                got = rr.adaptive_avg_pool_backward(work, lay.shape(spatial), nd)
                return lay.user(got.astype(_grad_result(grad_dtype)))
        else:
            x_cf = values(choose, lay.shape(spatial), np.float64)
            _, idx_cf = rr.adaptive_max_pool(x_cf, nd, out_spatial)
            kwargs["indices"] = present(choose, lay.user(idx_cf))

            def expect():
                got = rr.adaptive_max_pool_backward(work, idx_cf, x_cf.shape)
                return lay.user(got.astype(_grad_result(grad_dtype)))
        kwargs.update(input_shape=shape, channels_last=lay.channels_last,
                      num_threads=num_threads(choose))
        kind = "avg" if average else "max"
        return Case(f"adaptive_{kind}_pool{nd}d_backward", kwargs, expect,
                    close(_scale(grad_cf)), nd, inputs=tuple(
                        kwargs[k] for k in ("grad_output", "indices") if k in kwargs),
                    extra=dict(plane=math.prod(spatial)))
    return build


# ---------------------------------------------------------------- global

def _global_geometry(choose):
    """nd, spatial sizes and a batched layout (global pooling has no unbatched form)."""
    nd = choose.integer(1, 3)
    side = LIMITS[nd][0]
    spatial = tuple(choose.pick(tuple(s for s in SIDES if s <= side)) for _ in range(nd))
    lay = draw_layout(choose)
    return nd, spatial, Layout(lay.batch, True, lay.channels, lay.channels_last)


def _global_user(lay, keepdims):
    """The reference's (N, C[, 1...]) result in the caller's layout."""
    return (lambda a: lay.user(a)) if keepdims else (lambda a: a)


def _global(average):
    import reference_reduce as rr

    def build(choose):
        nd, spatial, lay = _global_geometry(choose)
        dtype = choose.pick(AVG_DTYPES if average else ADAPTIVE_MAX_DTYPES)
        cf = values(choose, lay.shape(spatial), dtype)
        x = present(choose, lay.user(cf))
        keepdims = choose.flag()
        user = _global_user(lay, keepdims)
        kwargs = dict(x=x, keepdims=keepdims)
        if average:
            def expect():
                work = cf.astype(np.float64) if dtype == np.float16 else cf
                return user(rr.global_avg_pool(work, keepdims).astype(_grad_result(dtype)))
            compare = close(_scale(cf))
        else:
            kwargs["return_indices"] = choose.flag()

            def expect():
                got, idx = rr.global_max_pool(cf.astype(_max_compute(dtype)), keepdims)
                got = user(got.astype(dtype))
                return (got, user(idx)) if kwargs["return_indices"] else got
            compare = exact
        kwargs.update(channels_last=lay.channels_last, num_threads=num_threads(choose))
        name = "global_avg_pool" if average else "global_max_pool"
        return Case(name, kwargs, expect, compare, nd, inputs=(x,))
    return build


def _global_backward(average):
    import reference_reduce as rr

    def build(choose):
        nd, spatial, lay = _global_geometry(choose)
        keepdims = choose.flag()
        user = _global_user(lay, keepdims)
        grad_dtype = choose.pick(GRAD_DTYPES)
        out_shape = lay.shape((1,) * nd) if keepdims else lay.shape(())
        grad_cf = values(choose, out_shape, grad_dtype)
        kwargs = dict(grad_output=present(choose, user(grad_cf)))
        work = grad_cf.astype(np.float64 if grad_dtype != np.float32 else grad_dtype)
        if average:
            def expect():
                got = rr.global_avg_pool_backward(work, lay.shape(spatial))
                return lay.user(got.astype(_grad_result(grad_dtype)))
        else:
            x_cf = values(choose, lay.shape(spatial), np.float64)
            _, idx_cf = rr.global_max_pool(x_cf, keepdims)
            kwargs["indices"] = present(choose, user(idx_cf))

            def expect():
                got = rr.global_max_pool_backward(work, idx_cf, x_cf.shape)
                return lay.user(got.astype(_grad_result(grad_dtype)))
        kwargs.update(input_shape=lay.user_shape(spatial), channels_last=lay.channels_last,
                      num_threads=num_threads(choose))
        name = "global_avg_pool_backward" if average else "global_max_pool_backward"
        return Case(name, kwargs, expect, close(_scale(grad_cf)), nd, inputs=tuple(
                        kwargs[k] for k in ("grad_output", "indices") if k in kwargs),
                    extra=dict(plane=math.prod(spatial)))
    return build


# -------------------------------------------------------------------- LP

NORM_TYPES = (1, 2, 3, 1.5, 0.5, math.inf)
LP_SLACK = 10   # pow, sum, root and their derivatives each round in float32


def build_lp(nd):
    import reference_reduce as rr

    def build(choose):
        win = draw_window(choose, nd, dilated=False, padded=False)
        lay = draw_layout(choose)
        dtype = choose.pick(AVG_DTYPES)
        cf = values(choose, lay.shape(win.spatial), dtype)
        x = present(choose, lay.user(cf))
        p = choose.pick(NORM_TYPES)
        lp_args = dict(kernel_size=win.args["kernel_size"], stride=win.args["stride"],
                       ceil_mode=win.args["ceil_mode"])

        def expect():
            return lay.user(rr.lp_pool(cf, nd, p, **lp_args).astype(_grad_result(dtype)))

        kwargs = dict(x=x, norm_type=p, **lp_args, channels_last=lay.channels_last,
                      num_threads=num_threads(choose))
        return Case(f"lp_pool{nd}d", kwargs, expect, close(_scale(cf), LP_SLACK), nd, win.kernel,
                    inputs=(x,))
    return build


def build_lp_backward(nd):
    import reference_reduce as rr

    def build(choose):
        win = draw_window(choose, nd, dilated=False, padded=False)
        lay = draw_layout(choose)
        x_dtype, grad_dtype = choose.pick(AVG_DTYPES), choose.pick(GRAD_DTYPES)
        x_cf = values(choose, lay.shape(win.spatial), x_dtype)
        grad_cf = values(choose, lay.shape(win.out_spatial()), grad_dtype)
        p = choose.pick(NORM_TYPES)
        lp_args = dict(kernel_size=win.args["kernel_size"], stride=win.args["stride"],
                       ceil_mode=win.args["ceil_mode"])
        grad, x = present(choose, lay.user(grad_cf)), present(choose, lay.user(x_cf))

        def expect(x_cf=x_cf):
            return lay.user(rr.lp_pool_backward(grad_cf, x_cf, nd, p, **lp_args))

        def perturbed():  # x moved by up to two float32 roundings, the same draw every time
            nudge = np.random.default_rng(0).uniform(-2.0 ** -22, 2.0 ** -22, x_cf.shape)
            return expect(x_cf.astype(np.float64) * (1 + nudge))

        kwargs = dict(grad_output=grad, x=x, norm_type=p, **lp_args,
                      channels_last=lay.channels_last, num_threads=num_threads(choose))
        return Case(f"lp_pool{nd}d_backward", kwargs, expect,
                    close_conditioned(_scale(grad_cf, x_cf), LP_SLACK, perturbed), nd,
                    win.kernel, inputs=(grad, x))
    return build


# ------------------------------------------------------------- unpooling

@dataclass(frozen=True)
class Unpool:
    """A drawn unpooling geometry: pooled ``spatial`` and the ``out_spatial`` it fills."""
    kernel: Tuple[int, ...]
    args: dict          # kernel_size, stride, padding, output_size as passed
    spatial: Tuple[int, ...]
    out_spatial: Tuple[int, ...]


def draw_unpool(choose, nd):
    """Kernel, stride, padding and pooled sizes with a non-empty default output,
    and now and then an explicit ``output_size`` within ``stride`` of it."""
    max_kernel = LIMITS[nd][1]
    kernel = tuple(choose.integer(1, max_kernel) for _ in range(nd))
    stride = tuple(choose.integer(1, 3) for _ in range(nd))
    pads = tuple(choose.integer(0, k // 2) for k in kernel)
    spatial = tuple(choose.integer(1, 4) for _ in range(nd))
    # an even kernel with padding k/2 gives an empty plane from one element
    spatial = tuple(L + ((L - 1) * s + k - 2 * p < 1) for L, k, s, p in
                    zip(spatial, kernel, stride, pads))
    default = tuple((L - 1) * s + k - 2 * p for L, k, s, p in zip(spatial, kernel, stride, pads))
    out_spatial, output_size = default, None
    if choose.flag():
        out_spatial = tuple(max(1, b + choose.integer(1 - s, s - 1)) for b, s in zip(default, stride))
        output_size = list(out_spatial) if choose.flag() else out_spatial  # no bare int
    args = dict(kernel_size=_per_axis_arg(choose, kernel),
                stride=None if stride == kernel and choose.flag() else _per_axis_arg(choose, stride),
                padding=_per_axis_arg(choose, pads), output_size=output_size)
    return Unpool(kernel, args, spatial, out_spatial)


def _plane_indices(choose, shape, plane):
    """Flat indices into planes of ``plane`` elements: distinct when they fit."""
    rng = np.random.default_rng(choose.integer(0, 2**32 - 1))
    planes, count = math.prod(shape[:2]), math.prod(shape[2:])
    if count > plane:
        return rng.integers(0, plane, size=shape, dtype=np.int64)
    # the first ``count`` positions of a random order of each plane
    return np.argsort(rng.random((planes, plane)), axis=1)[:, :count].reshape(shape)


def build_unpool(nd):
    import reference_sample as rs

    def build(choose):
        geo = draw_unpool(choose, nd)
        lay = draw_layout(choose)
        dtype = choose.pick(MAX_DTYPES)
        cf = values(choose, lay.shape(geo.spatial), dtype)
        idx_cf = _plane_indices(choose, cf.shape, math.prod(geo.out_spatial))
        x = present(choose, lay.user(cf))
        indices = present(choose, lay.user(idx_cf).astype(choose.pick((np.int64, np.int32))))

        def expect():
            return lay.user(rs.max_unpool(cf, idx_cf, nd, geo.out_spatial))

        kwargs = dict(x=x, indices=indices, **geo.args, channels_last=lay.channels_last,
                      num_threads=num_threads(choose))
        return Case(f"max_unpool{nd}d", kwargs, expect, exact, nd, geo.kernel,
                    inputs=(x, indices), extra=dict(plane=math.prod(geo.out_spatial)))
    return build


def build_unpool_backward(nd):
    import reference_sample as rs

    def build(choose):
        geo = draw_unpool(choose, nd)
        lay = draw_layout(choose)
        grad_dtype = choose.pick(GRAD_DTYPES)
        grad_cf = values(choose, lay.shape(geo.out_spatial), grad_dtype)
        idx_cf = _plane_indices(choose, lay.shape(geo.spatial), math.prod(geo.out_spatial))
        grad = present(choose, lay.user(grad_cf))
        indices = present(choose, lay.user(idx_cf))

        def expect():
            return lay.user(rs.max_unpool_backward(grad_cf, idx_cf, nd).astype(
                _grad_result(grad_dtype)))

        kwargs = dict(grad_output=grad, indices=indices, channels_last=lay.channels_last,
                      num_threads=num_threads(choose))
        return Case(f"max_unpool{nd}d_backward", kwargs, expect, exact, nd, geo.kernel,
                    inputs=(grad, indices), extra=dict(plane=math.prod(geo.out_spatial)))
    return build


# ------------------------------------------------------------ fractional

@dataclass(frozen=True)
class Fractional:
    """A drawn fractional max pooling geometry: ``out_spatial`` windows of
    ``kernel`` over ``spatial`` (``out + kernel - 1 <= in`` per axis)."""
    kernel: Tuple[int, ...]
    args: dict          # kernel_size, output_size, output_ratio as passed
    spatial: Tuple[int, ...]
    out_spatial: Tuple[int, ...]


def draw_fractional(choose, nd, few_windows=False):
    """Sizes, kernel and output sizes, given as ``output_size`` or, when every
    output is smaller than its input, as an ``output_ratio`` that gives them;
    ``few_windows`` (WIDE layouts): kernels and outputs of at most 2, so the
    reference, which loops over every tap, stays quick."""
    import reference_sample as rs

    side, max_kernel, _ = LIMITS[nd]
    top = 2 if few_windows else max_kernel
    spatial = tuple(choose.pick(tuple(s for s in SIDES if s <= side)) for _ in range(nd))
    kernel = tuple(choose.integer(1, min(top, L)) for L in spatial)
    out = tuple(choose.integer(1, min(L - k + 1, top if few_windows else L))
                for L, k in zip(spatial, kernel))
    if all(o < L for o, L in zip(out, spatial)) and choose.flag():
        # int(L * (o + 0.5) / L) is o, whatever the rounding of the ratio
        size, ratio = None, _per_axis_arg(choose, tuple((o + 0.5) / L for o, L in zip(out, spatial)))
    else:
        size, ratio = _per_axis_arg(choose, out), None
    args = dict(kernel_size=_per_axis_arg(choose, kernel), output_size=size, output_ratio=ratio)
    return Fractional(kernel, args, spatial, rs.fractional_output_size(spatial, nd, size, ratio))


def _sample_dtype(dtype):
    """The dtype fractional pooling computes its window starts in (SPEC: the
    input's float dtype, float64 for integer and bool input)."""
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def _draw_samples(choose, shape, dtype):
    """``_random_samples`` of ``shape`` in ``dtype``: uniform in [0, 1), or all
    0, or all the largest value below 1."""
    top = np.nextafter(dtype.type(1), dtype.type(0))
    kind = choose.pick(("uniform", "uniform", "zero", "top"))
    if kind == "uniform":
        rng = np.random.default_rng(choose.integer(0, 2**32 - 1))
        return np.minimum(rng.random(shape).astype(dtype), top)
    return np.full(shape, 0 if kind == "zero" else top, dtype)


def build_fractional(nd):
    import reference_sample as rs

    def build(choose):
        lay = draw_layout(choose)
        geo = draw_fractional(choose, nd, few_windows=lay.channels == WIDE)
        dtype = choose.pick(MAX_DTYPES)
        cf = values(choose, lay.shape(geo.spatial), dtype)
        x = present(choose, lay.user(cf))
        sample_dtype = _sample_dtype(dtype)
        need = (lay.batch, lay.channels, nd)
        # rng: an int seed, never a Generator, so that every call of the case
        # draws the same samples; float16's own draws are cypool's business
        if sample_dtype != np.float16 and choose.flag():
            seed = choose.integer(0, 2**32 - 1)
            samples = np.random.default_rng(seed).random(need, dtype=sample_dtype)
            given = dict(_random_samples=None, rng=choose.pick((seed, np.uint32(seed))))
        else:
            samples = _draw_samples(choose, (lay.batch + choose.integer(0, 1),) + need[1:],
                                    sample_dtype)
            passed = samples.astype(choose.pick((sample_dtype, np.float64)))  # widening is exact
            given = dict(_random_samples=present(choose, passed), rng=None)
        return_indices = choose.flag()

        def expect():
            got, idx = rs.fractional_max_pool(cf.astype(_max_compute(dtype)), nd, geo.kernel,
                                              geo.out_spatial, samples)
            got = lay.user(got.astype(dtype))
            return (got, lay.user(idx)) if return_indices else got

        kwargs = dict(x=x, **geo.args, return_indices=return_indices, **given,
                      channels_last=lay.channels_last, num_threads=num_threads(choose))
        arrays = tuple(a for a in (x, given["_random_samples"]) if a is not None)
        return Case(f"fractional_max_pool{nd}d", kwargs, expect, exact, nd, geo.kernel,
                    inputs=arrays, extra=dict(spatial=geo.spatial, samples_shape=need))
    return build


def build_fractional_backward(nd):
    def build(choose):
        # any offsets inside the input plane are valid indices, not only a forward pass's
        lay = draw_layout(choose)
        geo = draw_fractional(choose, nd)
        idx_cf = _plane_indices(choose, lay.shape(geo.out_spatial), math.prod(geo.spatial))
        return _scatter_case(f"fractional_max_pool{nd}d_backward", choose, lay, geo.spatial,
                             idx_cf, nd, geo.kernel)
    return build


# ------------------------------------------------------------ stochastic

STOCHASTIC_SLACK = 10   # backward: x is rounded to the gradient's compute dtype first


def _stochastic_window(choose, nd, lay):
    """A drawn window without dilation or ceil mode (stochastic pooling has
    neither) and the window arguments to pass."""
    win = draw_window(choose, nd, dilated=False, sparse=lay.channels == WIDE)
    win = Window(nd, win.kernel, dict(win.args, ceil_mode=False), win.spatial)
    return win, {k: win.args[k] for k in ("kernel_size", "stride", "padding")}


def build_stochastic(nd):
    import reference_sample as rs

    def build(choose):
        lay = draw_layout(choose)
        win, window_args = _stochastic_window(choose, nd, lay)
        dtype = choose.pick(AVG_DTYPES)
        cf = values(choose, lay.shape(win.spatial), dtype)
        x = present(choose, lay.user(cf))
        training = choose.flag()
        return_indices = training and choose.flag()
        # an int seed (see build_fractional); eval draws nothing but still checks rng
        seed = choose.integer(0, 2**32 - 1)
        rng = seed if training or choose.flag() else None

        def expect():
            # SPEC: the draws are rng.random((N, C, *out)), in channels-first order
            uniforms = (np.random.default_rng(seed).random(lay.shape(win.out_spatial()))
                        if training else None)
            got, idx = rs.stochastic_pool(cf, nd, **window_args, training=training,
                                          uniforms=uniforms)
            return (lay.user(got), lay.user(idx)) if return_indices else lay.user(got)

        kwargs = dict(x=x, **window_args, training=training, rng=rng,
                      return_indices=return_indices, channels_last=lay.channels_last,
                      num_threads=num_threads(choose))
        # eval's float64 quotient reaches float16 through float32, the reference's directly
        compare = close(_scale(cf)) if dtype == np.float16 and not training else exact
        return Case(f"stochastic_pool{nd}d", kwargs, expect, compare, nd, win.kernel,
                    inputs=(x,))
    return build


def build_stochastic_backward(nd):
    import reference_sample as rs

    def build(choose):
        lay = draw_layout(choose)
        win, window_args = _stochastic_window(choose, nd, lay)
        grad_dtype = choose.pick(GRAD_DTYPES)
        grad_cf = values(choose, lay.shape(win.out_spatial()), grad_dtype)
        x_cf = values(choose, lay.shape(win.spatial), choose.pick(AVG_DTYPES))
        # training routes each gradient to its sampled offset: any offset in the plane is valid
        idx_cf = _plane_indices(choose, grad_cf.shape, math.prod(win.spatial))
        training = choose.flag()
        with_x = not training or choose.flag()   # training takes x to mask non-positive picks
        grad = present(choose, lay.user(grad_cf))
        x = present(choose, lay.user(x_cf))
        indices = present(choose, lay.user(idx_cf).astype(choose.pick((np.int64, np.int32))))
        shape = lay.user_shape(win.spatial)

        def expect():
            got = rs.stochastic_pool_backward(grad_cf, x_cf, nd, **window_args,
                                              training=training, indices=idx_cf,
                                              mask_with_x=with_x)
            return lay.user(got)

        kwargs = dict(grad_output=grad,
                      input_shape=choose.pick((shape, list(shape), np.array(shape, np.int64))),
                      **window_args, training=training, indices=indices if training else None,
                      x=x if with_x else None, channels_last=lay.channels_last,
                      num_threads=num_threads(choose))
        return Case(f"stochastic_pool{nd}d_backward", kwargs, expect,
                    close(_scale(grad_cf), STOCHASTIC_SLACK), nd, win.kernel,
                    inputs=tuple(a for a in (grad, kwargs["indices"], kwargs["x"])
                                 if a is not None),
                    extra=dict(plane=math.prod(win.spatial), indices=indices, x=x))
    return build


# ---------------------------------------------------------- bad arguments

def _wrong_length(case):
    return (1,) * (case.nd + 1)


def _padding_over_limit(case):
    return max(case.kernel) // 2 + 1


WINDOW_BADS = (
    Bad("kernel_size", 0), Bad("kernel_size", -3), Bad("kernel_size", 2**31),
    Bad("kernel_size", 2.5), Bad("kernel_size", "2"), Bad("kernel_size", True),
    Bad("kernel_size", None), Bad("kernel_size", ()), Bad("kernel_size", _wrong_length),
    Bad("kernel_size", lambda case: [1.5] * case.nd),
    Bad("stride", 0), Bad("stride", -1), Bad("stride", 2**31), Bad("stride", 1.5),
    Bad("stride", "1"), Bad("stride", _wrong_length),
    Bad("stride", lambda case: (0,) * case.nd),
    Bad("padding", -1), Bad("padding", "full"), Bad("padding", 0.5), Bad("padding", 2**40),
    Bad("padding", _padding_over_limit), Bad("padding", _wrong_length),
    Bad("ceil_mode", 1), Bad("ceil_mode", None), Bad("ceil_mode", "yes"),
)
DILATION_BADS = (
    Bad("dilation", 0), Bad("dilation", -1), Bad("dilation", 2**31), Bad("dilation", 1.5),
    Bad("dilation", _wrong_length),
)
AVG_BADS = (
    Bad("count_include_pad", 1), Bad("count_include_pad", None),
    Bad("divisor_override", 0), Bad("divisor_override", 1.5), Bad("divisor_override", "3"),
    Bad("divisor_override", 2**31), Bad("divisor_override", True),
)
COMMON_BADS = (
    Bad("channels_last", 1), Bad("channels_last", None), Bad("channels_last", "yes"),
    Bad("num_threads", 0), Bad("num_threads", -1), Bad("num_threads", 1.5),
    Bad("num_threads", 4097), Bad("num_threads", "2"), Bad("num_threads", True),
)


def _array(case, name):
    """The case's ``name`` array; for an optional one it does not pass (stochastic
    backward's ``indices`` or ``x``), the valid one kept in ``case.extra``."""
    value = case.kwargs[name]
    return np.asarray(case.extra[name] if value is None else value)


def _as_dtype(name, dtype):
    return Bad(name, lambda case: _array(case, name).astype(dtype), (name, np.dtype(dtype).name))


def _flat(name):
    return Bad(name, lambda case: _array(case, name).reshape(-1), (name,))


def _zero_spatial(name):
    def make(case):
        a = _array(case, name)
        axis = a.ndim - 2 if case.kwargs["channels_last"] else a.ndim - 1
        return np.zeros(a.shape[:axis] + (0,) + a.shape[axis + 1:], a.dtype)
    return Bad(name, make, (name, "non-zero"))


def _input_bads(name, *dtypes):
    return (_flat(name), _zero_spatial(name),
            Bad(name, lambda case: _array(case, name)[np.newaxis, np.newaxis])) + tuple(
        _as_dtype(name, d) for d in dtypes)


def _other_dtype(dtype):
    return np.dtype(np.float32) if dtype != np.float32 else np.dtype(np.float64)


def _bad_out(kind):
    """A wrong ``out=`` of one ``kind`` for the case's result."""
    def make(case):
        want = expected(case)
        first = want[0] if isinstance(want, tuple) else want
        if kind == "shape":
            wrong = np.empty(first.shape + (1,), first.dtype)
        elif kind == "dtype":
            wrong = np.empty(first.shape, _other_dtype(first.dtype))
        elif kind == "strided":
            if first.size < 2:
                raise Skip
            wrong = np.empty(first.shape + (2,), first.dtype)[..., 0]
        elif kind == "read-only":
            wrong = np.empty(first.shape, first.dtype)
            wrong.flags.writeable = False
        else:
            wrong = first.tolist()
        if isinstance(want, tuple):
            return (np.empty_like(want[0]), wrong) if kind != "list" else np.empty_like(want[0])
        return wrong
    return Bad("out", make)


OUT_BADS = tuple(_bad_out(kind) for kind in ("shape", "dtype", "strided", "read-only", "list"))


def _set_first_index(value):
    def make(case):
        a = _array(case, "indices").astype(np.int64)
        if a.size == 0:
            raise Skip
        a.flat[0] = value(case)
        return a
    return Bad("indices", make)


def _past_int64(indices):
    if indices.size == 0:
        raise Skip
    return indices.astype(np.uint64) + np.uint64(2**63)


def _grad_wrong_shape(case):
    a = _array(case, "grad_output")
    return np.zeros(a.shape[:-1] + (a.shape[-1] + 1,), a.dtype)


INPUT_SHAPE_BADS = (
    Bad("input_shape", lambda case: tuple(case.kwargs["input_shape"])[:-2]),
    Bad("input_shape", lambda case: tuple(case.kwargs["input_shape"])[:-1] + (-4,)),
    Bad("input_shape", lambda case: tuple(case.kwargs["input_shape"])[:-1] + (2.5,)),
    Bad("input_shape", 5), Bad("input_shape", "abc"), Bad("input_shape", None),
    Bad("input_shape", lambda case: (2**40,) * len(case.kwargs["input_shape"])),
    Bad("input_shape", lambda case: (2**64,) * len(case.kwargs["input_shape"])),
)
GRAD_DTYPE_BADS = (
    _as_dtype("grad_output", np.complex128), _as_dtype("grad_output", np.bool_),
    _as_dtype("grad_output", object),
)
GRAD_BADS = (Bad("grad_output", _grad_wrong_shape),) + GRAD_DTYPE_BADS
INDEX_BADS = (
    _set_first_index(lambda case: case.extra["plane"]), _set_first_index(lambda case: -1),
    _set_first_index(lambda case: 2**62),
    _as_dtype("indices", np.float64), _as_dtype("indices", np.bool_),
    Bad("indices", lambda case: _array(case, "indices")[..., :-1]),
    Bad("indices", lambda case: _past_int64(_array(case, "indices"))),
)


OUTPUT_SIZE_BADS = (
    Bad("output_size", 0), Bad("output_size", -1), Bad("output_size", 2.5),
    Bad("output_size", "3"), Bad("output_size", _wrong_length),
)
# global pooling takes any number of spatial dims: only fewer than one is wrong
GLOBAL_INPUT_SHAPE_BADS = (
    Bad("input_shape", lambda case: tuple(case.kwargs["input_shape"])[:2]),
) + INPUT_SHAPE_BADS[1:]

# LP pooling has no padding or dilation arguments
LP_WINDOW_BADS = tuple(b for b in WINDOW_BADS if b.argument != "padding")
NORM_TYPE_BADS = (
    Bad("norm_type", 0), Bad("norm_type", -1), Bad("norm_type", float("nan")),
    Bad("norm_type", "2"), Bad("norm_type", True), Bad("norm_type", None),
)

# unpooling's padding has no kernel_size // 2 limit and no strings; no ceil_mode
UNPOOL_WINDOW_BADS = tuple(
    b for b in WINDOW_BADS if b.argument != "ceil_mode" and b.make not in (
        _padding_over_limit, "full")) + (
    Bad("output_size", lambda case: (10**6,) * case.nd),   # far past default + stride
    # nd + 1 entries is an unbatched full shape
    Bad("output_size", "3"), Bad("output_size", lambda case: (1,) * (case.nd + 3)),
)


# fractional max pooling: a kernel and an output size or ratio, no stride or padding
def _past_input(case):
    return tuple(L + 1 for L in case.extra["spatial"])


def _bad_samples(shape=lambda need: need, value=0.5, dtype=np.float64):
    """``_random_samples`` of ``shape(need)`` (``need``: the valid ``(N, C, nd)``)
    filled with ``value``; a bad value needs a row that is read (N > 0)."""
    def make(case):
        need = case.extra["samples_shape"]
        if min(shape(need)) < 0 or (value != 0.5 and need[0] == 0):
            raise Skip
        return np.full(shape(need), value, dtype)
    return Bad("_random_samples", make)


RNG_BADS = (
    Bad("rng", 1.5), Bad("rng", -1), Bad("rng", "seed"), Bad("rng", True),
    Bad("rng", lambda case: np.random.RandomState(0)),
)
FRACTIONAL_BADS = tuple(b for b in WINDOW_BADS if b.argument == "kernel_size") + (
    Bad("kernel_size", lambda case: max(case.extra["spatial"]) + 1),
    Bad("output_size", _past_input), Bad("output_size", lambda case: (2**31,) * case.nd),
) + OUTPUT_SIZE_BADS + (
    Bad("output_ratio", 0), Bad("output_ratio", 1.0), Bad("output_ratio", 1.5),
    Bad("output_ratio", -0.1), Bad("output_ratio", float("nan")), Bad("output_ratio", 1e-9),
    Bad("output_ratio", "half"), Bad("output_ratio", True),
    Bad("output_ratio", lambda case: (0.5,) * (case.nd + 1)),
    _bad_samples(lambda need: need[:2] + (need[2] + 1,)),
    _bad_samples(lambda need: (need[0], need[1] + 1, need[2])),
    _bad_samples(lambda need: (need[0] - 1,) + need[1:]),   # fewer rows than the batch
    _bad_samples(lambda need: need[1:]),
    _bad_samples(value=1.0), _bad_samples(value=-0.25), _bad_samples(value=np.nan),
    _bad_samples(value=np.inf), _bad_samples(dtype=np.complex128), _bad_samples(dtype=np.bool_),
    _bad_samples(dtype=object), Bad("_random_samples", "abc"),
    Bad("return_indices", 1), Bad("return_indices", "yes"),
) + RNG_BADS


def _when(flag, is_set, bad):
    """``bad`` for a case whose boolean argument ``flag`` is ``is_set`` (the
    replacement is valid otherwise: Skip)."""
    def make(case):
        if case.kwargs[flag] != is_set:
            raise Skip
        return bad.value(case)
    return Bad(bad.argument, make, bad.names)


# stochastic pooling: no dilation or ceil mode; return_indices only with
# training; the backward takes indices (training) or x (eval)
STOCHASTIC_WINDOW_BADS = tuple(b for b in WINDOW_BADS if b.argument != "ceil_mode")
TRAINING_BADS = (Bad("training", 1), Bad("training", None), Bad("training", "yes"))
STOCHASTIC_BADS = STOCHASTIC_WINDOW_BADS + TRAINING_BADS + RNG_BADS + (
    Bad("return_indices", 1), Bad("return_indices", "yes"),
    _when("training", False, Bad("return_indices", True)),
    _when("return_indices", True, Bad("training", False, ("training", "return_indices"))),
)
STOCHASTIC_BACKWARD_BADS = STOCHASTIC_WINDOW_BADS + TRAINING_BADS + tuple(
    _when("training", True, bad) for bad in INDEX_BADS + (Bad("indices", None),)) + (
    _when("training", False, Bad("indices", lambda case: case.extra["indices"])),
    _when("training", False, Bad("x", None)),
    _flat("x"), _as_dtype("x", np.complex128), _as_dtype("x", object), _as_dtype("x", np.bool_),
)

# -------------------------------------------------------------- the table

def _ops():
    table = {}
    for nd in (1, 2, 3):
        table[f"max_pool{nd}d"] = Op(
            f"max_pool{nd}d", build_max(nd),
            WINDOW_BADS + DILATION_BADS + COMMON_BADS + OUT_BADS
            + _input_bads("x", np.complex64, object, "U1")
            + (Bad("return_indices", 1), Bad("return_indices", "yes")))
        table[f"max_pool{nd}d_backward"] = Op(
            f"max_pool{nd}d_backward", build_max_backward(nd),
            COMMON_BADS + OUT_BADS + INPUT_SHAPE_BADS + GRAD_BADS + INDEX_BADS)
        table[f"avg_pool{nd}d"] = Op(
            f"avg_pool{nd}d", build_avg(nd),
            WINDOW_BADS + AVG_BADS + COMMON_BADS + OUT_BADS
            + _input_bads("x", np.complex128, object, np.bool_))
        table[f"avg_pool{nd}d_backward"] = Op(
            f"avg_pool{nd}d_backward", build_avg_backward(nd),
            WINDOW_BADS + AVG_BADS + COMMON_BADS + OUT_BADS + INPUT_SHAPE_BADS + GRAD_BADS)
        for kind, average in (("avg", True), ("max", False)):
            name = f"adaptive_{kind}_pool{nd}d"
            table[name] = Op(name, _adaptive(nd, average),
                             OUTPUT_SIZE_BADS + COMMON_BADS + OUT_BADS
                             + _input_bads("x", np.complex128, object))
            table[name + "_backward"] = Op(
                name + "_backward", _adaptive_backward(nd, average),
                COMMON_BADS + OUT_BADS + INPUT_SHAPE_BADS
                # adaptive average backward reads the output size from grad_output
                + (GRAD_DTYPE_BADS if average else GRAD_BADS + INDEX_BADS))
    global_x_bads = (_flat("x"), _zero_spatial("x"), Bad("keepdims", 1), Bad("keepdims", "yes"),
                     _as_dtype("x", np.complex128), _as_dtype("x", object))
    table["global_avg_pool"] = Op("global_avg_pool", _global(True),
                                  COMMON_BADS + OUT_BADS + global_x_bads)
    table["global_max_pool"] = Op("global_max_pool", _global(False),
                                  COMMON_BADS + OUT_BADS + global_x_bads
                                  + (Bad("return_indices", 1), Bad("return_indices", "yes")))
    table["global_avg_pool_backward"] = Op(
        "global_avg_pool_backward", _global_backward(True),
        COMMON_BADS + OUT_BADS + GLOBAL_INPUT_SHAPE_BADS + GRAD_BADS)
    table["global_max_pool_backward"] = Op(
        "global_max_pool_backward", _global_backward(False),
        COMMON_BADS + OUT_BADS + GLOBAL_INPUT_SHAPE_BADS + GRAD_BADS + INDEX_BADS)
    for nd in (1, 2, 3):
        table[f"lp_pool{nd}d"] = Op(
            f"lp_pool{nd}d", build_lp(nd),
            LP_WINDOW_BADS + NORM_TYPE_BADS + COMMON_BADS + OUT_BADS
            + _input_bads("x", np.complex128, object, np.bool_))
        table[f"lp_pool{nd}d_backward"] = Op(
            f"lp_pool{nd}d_backward", build_lp_backward(nd),
            LP_WINDOW_BADS + NORM_TYPE_BADS + COMMON_BADS + OUT_BADS + GRAD_BADS
            + _input_bads("x", np.complex128, object, np.bool_))
    for nd in (1, 2, 3):
        table[f"max_unpool{nd}d"] = Op(
            f"max_unpool{nd}d", build_unpool(nd),
            UNPOOL_WINDOW_BADS + COMMON_BADS + OUT_BADS + INDEX_BADS
            + _input_bads("x", np.complex64, object, "U1"))
        table[f"max_unpool{nd}d_backward"] = Op(
            f"max_unpool{nd}d_backward", build_unpool_backward(nd),
            # the indices' shape is the result's: any spatial size is valid
            COMMON_BADS + OUT_BADS + GRAD_DTYPE_BADS + INDEX_BADS[:5] + INDEX_BADS[6:])
    for nd in (2, 3):
        table[f"fractional_max_pool{nd}d"] = Op(
            f"fractional_max_pool{nd}d", build_fractional(nd),
            FRACTIONAL_BADS + COMMON_BADS + OUT_BADS
            + _input_bads("x", np.complex64, object, "U1"))
        table[f"fractional_max_pool{nd}d_backward"] = Op(
            f"fractional_max_pool{nd}d_backward", build_fractional_backward(nd),
            COMMON_BADS + OUT_BADS + INPUT_SHAPE_BADS + GRAD_BADS + INDEX_BADS)
    for nd in (1, 2, 3):
        table[f"stochastic_pool{nd}d"] = Op(
            f"stochastic_pool{nd}d", build_stochastic(nd),
            STOCHASTIC_BADS + COMMON_BADS + OUT_BADS
            + _input_bads("x", np.complex128, object, np.bool_))
        table[f"stochastic_pool{nd}d_backward"] = Op(
            f"stochastic_pool{nd}d_backward", build_stochastic_backward(nd),
            STOCHASTIC_BACKWARD_BADS + COMMON_BADS + OUT_BADS + INPUT_SHAPE_BADS + GRAD_BADS)
    return {name: op for name, op in table.items() if hasattr(cypool, name)}


OPS = _ops()
