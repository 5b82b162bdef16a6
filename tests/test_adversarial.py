"""Adversarial inputs: one test per row of the README's "Reliability" table.

Every row gives a clear ValueError/TypeError naming the argument, or the
documented result, never a crash, a hang or an out-of-bounds access.  Rows
whose failure could take the interpreter down (out-of-bounds-prone indices,
overlapping buffers, overflowing sizes) run in a fresh interpreter through
:func:`run_isolated`, which fails the test on a signal, a non-zero exit or a
timeout.  Each op of the table in tests/fuzz/ops.py is covered where the row
applies to it.
"""

import functools
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cypool
import reference as ref
from fuzz.ops import OPS, Bad, check, refusal
from fuzz.ops import fixed_case as _build_fixed_case

# Built once per (op, seed, kinds): tests here never modify a case.
fixed_case = functools.lru_cache(maxsize=None)(_build_fixed_case)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(cypool.__file__)))
README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
FORWARD = sorted(name for name in OPS if not name.endswith("_backward"))
BACKWARD = sorted(name for name in OPS if name.endswith("_backward"))
DATA = ("x", "grad_output", "indices", "_random_samples")   # the array arguments
WINDOWED = sorted(name for name in OPS if "kernel_size" in fixed_case(name).kwargs)
STRIDED = [name for name in WINDOWED if "stride" in fixed_case(name).kwargs]  # not fractional
PADDED = [name for name in STRIDED if "padding" in fixed_case(name).kwargs]  # LP has none

# The README's table rows, by id (the test of row `x` is `test_x`, except where noted).
ROWS = [
    "kernel", "stride", "padding", "padding_over_limit", "dilation", "tuples", "ndim",
    "zero_size", "dtypes", "byte_order", "lists_and_scalars", "views", "out", "out_overlap",
    "indices", "grad_output", "huge_sizes", "huge_windows", "huge_plane", "nan_inf",
    "num_threads", "random_state",
]


def run_isolated(snippet, timeout=120):
    """Run ``snippet`` in a fresh interpreter and return its stdout.

    The test fails unless it exits cleanly: a signal (segfault, abort), a
    non-zero exit or a hang past ``timeout`` seconds.  The snippet sees
    ``np``, ``cypool`` and ``refused(call, *words)``, which asserts that
    ``call()`` raises ValueError/TypeError whose message has every word.
    """
    prelude = textwrap.dedent("""\
        import numpy as np
        import cypool

        def refused(call, *words):
            try:
                call()
            except (ValueError, TypeError) as exc:
                message = str(exc)
            else:
                raise AssertionError("accepted")
            assert all(w in message for w in words), (words, message)
            print("refused:", message[:100])
        """)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(snippet)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    assert proc.returncode == 0, (
        f"exit status {proc.returncode} (negative: killed by that signal)\n"
        f"stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-4000:]}")
    return proc.stdout


def _refuses(name, argument, value, *words):
    return refusal(fixed_case(name), Bad(argument, value, (argument,) + words))


# ------------------------------------------------------- window arguments

@pytest.mark.parametrize("name", WINDOWED)
@pytest.mark.parametrize("value", [0, -1, -2**63, 2**31, 2**63, 2**100])
def test_kernel(name, value):
    _refuses(name, "kernel_size", value)


@pytest.mark.parametrize("name", STRIDED)
@pytest.mark.parametrize("value", [0, -5, 2**31, 2**64])
def test_stride(name, value):
    _refuses(name, "stride", value)


def test_stride_huge_but_valid():
    """The largest stride takes one window per axis."""
    x = np.arange(24.0).reshape(1, 2, 12)
    np.testing.assert_array_equal(cypool.max_pool1d(x, 3, 2**31 - 1), x[..., :3].max(-1, keepdims=True))
    np.testing.assert_array_equal(cypool.avg_pool1d(x, 3, 2**31 - 1), x[..., :3].mean(-1, keepdims=True))


@pytest.mark.parametrize("name", PADDED)
@pytest.mark.parametrize("value", [-1, -2**40, 2**31, 2**70, "full", "Same ", ""])
def test_padding(name, value):
    _refuses(name, "padding", value)


@pytest.mark.parametrize("name", [n for n in PADDED if not n.startswith("max_unpool")])
def test_padding_over_limit(name):
    case = fixed_case(name)
    _refuses(name, "padding", max(case.kernel) // 2 + 1, "kernel_size // 2")


@pytest.mark.parametrize("name", [n for n in WINDOWED if n.startswith("max_pool")])
@pytest.mark.parametrize("value", [0, -1, 2**31, 2**63])
def test_dilation(name, value):
    _refuses(name, "dilation", value)


def test_dilation_huge():
    """The largest dilation: one tap per window (valid), no window at all
    (refused), or windows made only of padding (refused, as documented)."""
    x = np.arange(10.0).reshape(1, 1, 10)
    np.testing.assert_array_equal(cypool.max_pool1d(x, 1, 1, 0, 2**31 - 1), x)
    with pytest.raises(ValueError, match="output size would be"):
        cypool.max_pool1d(x, 2, 1, 0, 2**31 - 1)
    with pytest.raises(ValueError, match="holds no input element"):
        cypool.max_pool1d(x, 2, 1, "same", 2**31 - 1)


def _bad_tuples(nd):
    """(value, word its message must have) for a window argument of ``nd`` entries."""
    return [((2,) * (nd + 1), "values"), ((), "values"), ((1.5,) * nd, "float"),
            (("1",) * nd, "str"), ((None,) * nd, "NoneType"), ((True,) * nd, "bool"),
            ([2.0] * nd, "float"), (2.0, "float"), (np.float64(2.0), "float"), ("2", "str"),
            (b"2", "bytes"), (object(), "object"), (np.array([2] * nd), "ndarray"),
            (complex(2), "complex")]


@pytest.mark.parametrize("name", WINDOWED)
def test_tuples(name):
    """Non-integer entries and wrong lengths, in every window argument."""
    case = fixed_case(name)
    for argument in [a for a in ("kernel_size", "stride", "padding", "dilation") if a in case.kwargs]:
        for value, word in _bad_tuples(case.nd):
            if argument == "padding" and isinstance(value, (str, bytes)):
                word = "padding"
            _refuses(name, argument, value, word)


def test_integer_like_window_arguments_are_accepted():
    """NumPy integers count as ints (operator.index), as in PyTorch."""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(cypool.max_pool2d(x, np.int64(2), (np.int8(2), 2)),
                                  cypool.max_pool2d(x, 2))


# ------------------------------------------------------------------ arrays

def _first(case):
    """Name and value of the case's data argument (x or grad_output)."""
    name = next(iter(case.kwargs))
    return name, np.asarray(case.kwargs[name])


@pytest.mark.parametrize("name", sorted(OPS))
def test_ndim(name):
    first, a = _first(fixed_case(name))
    # global pooling takes any number of spatial dims, so two more can be valid
    extra = () if name.startswith("global_") else (a[np.newaxis, np.newaxis],)
    for wrong in (np.float64(1.0), a.reshape(-1)) + extra:
        _refuses(name, first, wrong)


@pytest.mark.parametrize("name", FORWARD)
def test_zero_size(name):
    """Zero channels or spatial size: refused; a batch of 0: an empty result."""
    case = fixed_case(name)
    _, x = _first(case)
    last = case.kwargs["channels_last"]
    spatial_axis = x.ndim - 2 if last else x.ndim - 1
    channel_axis = x.ndim - 1 if last else x.ndim - case.nd - 1
    for axis in (spatial_axis, channel_axis):
        empty = np.zeros(x.shape[:axis] + (0,) + x.shape[axis + 1:], x.dtype)
        _refuses(name, "x", empty, "non-zero")
    if x.ndim == case.nd + 2:
        empty = {k: np.asarray(v)[:0] for k, v in case.kwargs.items() if k in ("x", "indices")}
        got, want = _results(case.call(**empty)), _results(case.call())
        assert [g.shape for g in got] == [(0,) + w.shape[1:] for w in want]


def _results(result):
    return result if isinstance(result, tuple) else (result,)


def _arrays(case):
    """The case's array arguments (those it passes) as arrays."""
    return {k: np.asarray(v) for k, v in case.kwargs.items() if k in DATA and v is not None}


def _passes_every_array(case):
    """True unless the case leaves out an optional array (fractional's
    ``_random_samples`` for ``rng``, stochastic backward's ``indices`` or ``x``)."""
    return all(case.kwargs[k] is not None for k in DATA if k in case.kwargs)


def _full_case(name):
    return next(case for case in map(functools.partial(fixed_case, name), range(100))
                if _passes_every_array(case))


def _assert_same_results(got, want):
    for g, w in zip(_results(got), _results(want)):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


UNSUPPORTED = [np.complex64, np.complex128, object, "U3", "S2", "M8[s]", "m8[s]",
               [("a", np.float32), ("b", np.float32)]]


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("dtype", UNSUPPORTED, ids=str)
def test_dtypes(name, dtype):
    first, a = _first(fixed_case(name))
    _refuses(name, first, np.zeros(a.shape, dtype), np.dtype(dtype).name)


@pytest.mark.parametrize("name", [n for n in FORWARD if n.startswith(("avg_pool", "stochastic"))])
def test_dtypes_bool_in_averages(name):
    first, a = _first(fixed_case(name))
    _refuses(name, first, np.zeros(a.shape, bool), "bool")


@pytest.mark.parametrize("name", sorted(OPS))
def test_byte_order(name):
    """Big-endian arrays give the native result (they once gave silently wrong
    maxima for integers and a TypeError for floats)."""
    for seed in range(100):  # a case with multi-byte data in every array it can take
        case = fixed_case(name, seed)
        native = _arrays(case)
        swapped = {k: v.astype(v.dtype.newbyteorder(">")) for k, v in native.items()
                   if v.dtype.kind in "iuf" and v.dtype.itemsize > 1}
        if swapped and _passes_every_array(case):
            break
    got, want = case.call(**dict(native, **swapped)), case.call(**native)
    for g, w in zip(_results(got), _results(want)):
        assert g.dtype.newbyteorder("=") == w.dtype  # the caller's dtype, byte order included
        np.testing.assert_array_equal(g, w)


def test_byte_order_integers_keep_their_order():
    x = np.array([1, 256, -3, 7, 1000, 2], dtype=">i4").reshape(1, 1, 6)
    got, idx = cypool.max_pool1d(x, 2, return_indices=True)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, [[[256, 7, 1000]]])
    np.testing.assert_array_equal(idx, [[[1, 3, 4]]])


def test_lists_and_scalars():
    """Nested lists are arrays; scalars and ragged lists are refused."""
    nested = [[[1.0, 5.0, 2.0, 4.0]]]
    np.testing.assert_array_equal(cypool.max_pool1d(nested, 2), [[[5.0, 4.0]]])
    np.testing.assert_array_equal(cypool.avg_pool1d([[1, 3, 5, 7]], 2), [[2.0, 6.0]])
    np.testing.assert_array_equal(cypool.max_pool1d_backward([[[1.0]]], [[[1]]], [1, 1, 2]),
                                  [[[0.0, 1.0]]])
    for bad, words in [(3.0, ["x must have"]), (None, ["x"]), ("abc", ["x"]),
                       ([[1.0, 2.0], [3.0]], ["x"]), ([[[1, "a"]]], ["x"])]:
        with pytest.raises((ValueError, TypeError)) as info:
            cypool.max_pool1d(bad, 1)
        assert all(w in str(info.value) for w in words), str(info.value)


VIEWS = {
    "read-only": lambda a: _read_only(a),
    "non-contiguous": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
    "negative-stride": lambda a: np.ascontiguousarray(a[..., ::-1])[..., ::-1],
    "fortran": np.asfortranarray,
    "broadcast": lambda a: np.broadcast_to(a, a.shape),
    "misaligned": lambda a: _misaligned(a),
}


def _misaligned(a):
    """A C-contiguous copy of ``a`` whose data starts one byte past an aligned address."""
    a = np.asarray(a)
    if a.dtype.itemsize == 1:
        return a
    buffer = np.zeros(a.nbytes + 1, np.uint8)
    view = np.ndarray(a.shape, a.dtype, buffer, offset=1)
    view[...] = a
    return view


def _read_only(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("view", sorted(VIEWS))
def test_views(name, view):
    """Every array argument passed as a view gives the contiguous result and is not modified."""
    case = _full_case(name)
    arrays = {k: np.ascontiguousarray(v) for k, v in _arrays(case).items()}
    views = {k: VIEWS[view](v) for k, v in arrays.items()}
    _assert_same_results(case.call(**views), case.call(**arrays))
    for k in arrays:
        np.testing.assert_array_equal(views[k], arrays[k])


# --------------------------------------------------------------------- out

@pytest.mark.parametrize("name", sorted(OPS))
def test_out(name):
    """Wrong shape, dtype, layout (non-contiguous, Fortran, misaligned), read-only or type."""
    case = fixed_case(name)
    want = case.call()
    first = want[0] if isinstance(want, tuple) else want

    def as_out(wrong):
        return (wrong, np.empty_like(want[1])) if isinstance(want, tuple) else wrong

    read_only = np.empty_like(first)
    read_only.flags.writeable = False
    fortran = np.asfortranarray(np.empty(first.shape, first.dtype))
    wrongs = [(np.empty(first.shape + (1,), first.dtype), "shape"),
              (np.empty(first.shape, np.complex64), "dtype"),
              (read_only, "writeable"), (first.tolist(), "numpy.ndarray")]
    if first.dtype.itemsize > 1:
        wrongs.append((_misaligned(first), "aligned"))
    if first.size > 1:
        wrongs.append((np.empty(first.shape + (2,), first.dtype)[..., 0], "C-contiguous"))
    if not fortran.flags.c_contiguous:
        wrongs.append((fortran, "C-contiguous"))
    for wrong, word in wrongs:
        _refuses(name, "out", as_out(wrong), word)
    # the right out= is filled and returned
    right = tuple(np.empty_like(w) for w in want) if isinstance(want, tuple) else np.empty_like(want)
    got = case.call(out=right)
    assert got is right or all(g is r for g, r in zip(got, right))


OVERLAP_SNIPPET = """
x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
y, idx = cypool.max_pool2d(x, 2, return_indices=True)
inside_x = x.reshape(-1)[:y.size].reshape(y.shape)
refused(lambda: cypool.max_pool2d(x, 2, out=inside_x), "overlap")
refused(lambda: cypool.avg_pool2d(x, 2, out=inside_x), "overlap")
# a gradient living inside the backward's out=
shared = np.zeros(x.size)
grad_inside = shared[:y.size].reshape(y.shape)
for backward in (lambda out: cypool.avg_pool2d_backward(grad_inside, x.shape, 2, out=out),
                 lambda out: cypool.max_pool2d_backward(grad_inside, idx, x.shape, out=out)):
    refused(lambda: backward(shared.reshape(x.shape)), "overlap")
# max backward's out= over the indices it reads (this was a segfault)
buf = np.zeros(x.size, np.int64)
buf[:idx.size] = idx.ravel()
refused(lambda: cypool.max_pool2d_backward(np.ones_like(y), buf[:idx.size].reshape(idx.shape),
                                          x.shape, out=buf.view(np.float64).reshape(x.shape)),
        "overlap")
# values and indices out= sharing memory
both = np.zeros(y.size, np.int64)
refused(lambda: cypool.max_pool2d(x, 2, return_indices=True,
                                  out=(both.view(np.float64).reshape(y.shape), both.reshape(y.shape))),
        "overlap")
# fractional and stochastic pooling (the same (2, 3, 4, 4) result shape as y)
sampled = [lambda **kw: cypool.fractional_max_pool2d(x, 2, 4, rng=0, **kw),
           lambda **kw: cypool.stochastic_pool2d(x, 2, rng=0, **kw)]
for pool in sampled:
    refused(lambda: pool(out=inside_x), "overlap")
    refused(lambda: pool(return_indices=True, out=(both.view(np.float64).reshape(y.shape),
                                                   both.reshape(y.shape))), "overlap")
# backward out= over the indices they read, or over stochastic eval's x
for pool, backward in [
        (sampled[0], lambda g, i, out: cypool.fractional_max_pool2d_backward(g, i, x.shape, out=out)),
        (sampled[1], lambda g, i, out: cypool.stochastic_pool2d_backward(g, x.shape, 2, indices=i,
                                                                         out=out))]:
    _, idx = pool(return_indices=True)
    buf = np.zeros(x.size, np.int64)
    buf[:idx.size] = idx.ravel()
    refused(lambda: backward(np.ones(idx.shape), buf[:idx.size].reshape(idx.shape),
                             buf.view(np.float64).reshape(x.shape)), "overlap")
x_copy = x.copy()
refused(lambda: cypool.stochastic_pool2d_backward(np.ones(y.shape), x.shape, 2, training=False,
                                                  x=x_copy, out=x_copy), "overlap")
print("ok")
"""


def test_out_overlap():
    """out= overlapping an input, the indices or the other result: refused."""
    assert run_isolated(OVERLAP_SNIPPET).strip().endswith("ok")


# ------------------------------------------------------------- backward

INDICES_SNIPPET = """
def bad_indices_refused(call, idx, plane):
    \"\"\"call(indices) refuses offsets outside the plane, past int64, other dtypes and shapes.\"\"\"
    for bad in (plane, plane + 1, 2**31, 2**62, -1, -plane, -2**63):
        broken = idx.copy()
        broken.flat[0] = bad
        refused(lambda: call(broken), "indices", "input plane")
    refused(lambda: call(idx.astype(np.uint64) + np.uint64(2**63)), "indices", "int64")
    for dtype in (np.float64, np.float32, bool, np.complex64, object):
        refused(lambda: call(idx.astype(dtype)), "indices")
    for wrong in (idx[..., :-1], idx[:1], idx.reshape(-1), idx[..., None]):
        refused(lambda: call(wrong), "indices")

for nd in (1, 2, 3):
    shape = (2, 3) + (6,) * nd
    x = np.random.default_rng(nd).standard_normal(shape)
    pool = getattr(cypool, f"max_pool{nd}d")
    backward = getattr(cypool, f"max_pool{nd}d_backward")
    for channels_last in (False, True):
        xl = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_last else x
        y, idx = pool(xl, 2, return_indices=True, channels_last=channels_last)
        g = np.ones_like(y)
        plane = 6 ** nd
        bad_indices_refused(lambda i: backward(g, i, xl.shape, channels_last=channels_last,
                                               num_threads=2), idx, plane)
        bad_indices_refused(lambda i: backward(g[0], i, xl.shape[1:], channels_last=channels_last),
                            idx[0], plane)
        for dtype in (np.int32, np.int16, np.uint8, np.uint64):
            if np.iinfo(dtype).max >= idx.max():
                np.testing.assert_array_equal(backward(g, idx.astype(dtype), xl.shape, channels_last=channels_last),
                                              backward(g, idx, xl.shape, channels_last=channels_last))
        # fractional backward (max pooling's scatter) and stochastic training backward
        if nd > 1:
            y, idx = getattr(cypool, f"fractional_max_pool{nd}d")(
                xl, 2, 3, return_indices=True, rng=0, channels_last=channels_last)
            bad_indices_refused(lambda i: getattr(cypool, f"fractional_max_pool{nd}d_backward")(
                np.ones_like(y), i, xl.shape, channels_last=channels_last, num_threads=2), idx, plane)
        y, idx = getattr(cypool, f"stochastic_pool{nd}d")(xl, 2, rng=0, return_indices=True,
                                                          channels_last=channels_last)
        bad_indices_refused(lambda i: getattr(cypool, f"stochastic_pool{nd}d_backward")(
            np.ones_like(y), xl.shape, 2, indices=i, x=xl, channels_last=channels_last), idx, plane)
print("ok")
"""


def test_indices():
    """Out of range, negative, of the wrong dtype or shape, in every max, fractional
    and stochastic backward and both layouts: refused before the scatter, in a
    separate interpreter."""
    assert run_isolated(INDICES_SNIPPET).strip().endswith("ok")


@pytest.mark.parametrize("name", BACKWARD)
def test_grad_output(name):
    """grad_output of the wrong shape (spatial, channels, extra axis, scalar): refused."""
    case = fixed_case(name)
    _, grad = _first(case)
    channel_axis = -1 if case.kwargs["channels_last"] else grad.ndim - case.nd - 1
    wrongs = [grad[..., np.newaxis], np.concatenate([grad, grad], axis=channel_axis),
              np.float32(1.0)]
    # adaptive average and unpooling backward read the output size from grad_output
    if not name.startswith(("adaptive_avg", "max_unpool")):
        wrongs.append(grad[..., :-1] if grad.shape[-1] > 1 else np.zeros(grad.shape[:-1] + (2,)))
    for wrong in wrongs:
        with pytest.raises((ValueError, TypeError)) as info:
            case.call(grad_output=wrong)
        assert "grad_output" in str(info.value), str(info.value)


# ------------------------------------------------------------ huge sizes

HUGE_SNIPPET = """
import resource
g1 = np.ones((1, 1, 1, 1))
idx = np.zeros((1, 1, 1, 1), np.int64)
for shape in [(2**40, 2**40, 1, 1), (1, 1, 2**40, 2**40), (0, 1, 2**40, 2**40),
              (1, 1, 2**33 + 1, 2**31), (1, 1, 2**64, 1), (2**31, 2**31, 2, 2)]:
    refused(lambda: cypool.max_pool2d_backward(g1, idx, shape), "input_shape", "2**62")
    refused(lambda: cypool.avg_pool2d_backward(g1, shape, 2**31 - 1, padding="same"), "input_shape")
    refused(lambda: cypool.fractional_max_pool2d_backward(g1, idx, shape), "input_shape", "2**62")
    refused(lambda: cypool.stochastic_pool2d_backward(g1, shape, 2**31 - 1, padding="same",
                                                      indices=idx), "input_shape", "2**62")
for nd in (1, 3):
    shape = (1, 1) + (2**21,) * nd if nd == 3 else (1, 1, 2**62)
    refused(lambda: getattr(cypool, f"max_pool{nd}d_backward")(np.ones((1, 1) + (1,) * nd),
            np.zeros((1, 1) + (1,) * nd, np.int64), shape), "input_shape")
# a zero-stride view claiming 2**62 elements: refused before anything is allocated
view = np.broadcast_to(np.uint8(1), (2**31, 2**31, 1))
refused(lambda: cypool.max_pool1d(view, 1), "x", "2**62")
refused(lambda: cypool.avg_pool1d(view, 1), "x", "2**62")
refused(lambda: cypool.stochastic_pool1d(view, 1, rng=0), "x", "2**62")
refused(lambda: cypool.fractional_max_pool2d(view[..., None], 1, 1, rng=0), "x", "2**62")
# a view of 2**52 elements is legal but cannot be pooled into memory: MemoryError, no crash
view = np.broadcast_to(np.float32(1), (2**26, 2**26, 1))
for pool in (lambda: cypool.max_pool1d(view, 1), lambda: cypool.stochastic_pool1d(view, 1, rng=0),
             lambda: cypool.fractional_max_pool2d(view[..., None], 1, 1, rng=0)):
    try:
        pool()
    except MemoryError as exc:
        print("MemoryError:", str(exc)[:80])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
assert peak < 1_000_000, peak
print("ok")
"""


def test_huge_sizes():
    """Shapes whose products overflow 64 bits (input_shape of the backwards, or a
    broadcast view): refused by name before any allocation."""
    assert run_isolated(HUGE_SNIPPET).strip().endswith("ok")


def test_huge_windows():
    """The largest kernels, strides and padding the validation lets through give
    the documented result (window geometry is computed in 64 bits), in max,
    average and stochastic pooling; fractional pooling refuses them."""
    big = 2**31 - 1
    x = np.arange(1.0, 4.0).reshape(1, 1, 3)
    for channels_last in (False, True):
        xl = x.reshape(1, 3, 1) if channels_last else x
        same = cypool.max_pool1d(xl, big, 1, padding="same", channels_last=channels_last)
        got, idx = cypool.max_pool1d(xl, big, 1, big // 2, return_indices=True,
                                     channels_last=channels_last)
        for result, want in ((same, 3.0), (got, 3.0), (idx, 2)):
            np.testing.assert_array_equal(result.ravel(), [want] * 3)
    np.testing.assert_allclose(cypool.avg_pool1d(x, big, padding=big // 2), [[[6.0 / big]]])
    one = np.ones((1, 1, 1, 1))
    np.testing.assert_allclose(cypool.avg_pool2d(one, big, padding=big // 2), [[[[1.0 / big**2]]]])
    np.testing.assert_allclose(cypool.avg_pool2d(one, big, padding=big // 2, count_include_pad=False),
                               [[[[1.0]]]])
    # the 3-D divisor (2**31 - 1)**3 is past 2**63: computed in floating point
    np.testing.assert_allclose(cypool.avg_pool3d(one[..., np.newaxis], big, padding=big // 2),
                               np.full((1, 1, 1, 1, 1), 1.0 / big**3), rtol=1e-12)
    # stochastic: every window holds the whole row (S = 6, Q = 14); each element
    # gets 3 * (2 a S - Q) / S**2 back in eval mode
    for channels_last in (False, True):
        xl = x.reshape(1, 3, 1) if channels_last else x
        kw = dict(channels_last=channels_last)
        mean = cypool.stochastic_pool1d(xl, big, 1, "same", training=False, **kw)
        np.testing.assert_allclose(mean.ravel(), [14 / 6] * 3)
        got, idx = cypool.stochastic_pool1d(xl, big, 1, big // 2, rng=0, return_indices=True, **kw)
        np.testing.assert_array_equal(got.ravel(), x.ravel()[idx.ravel()])
        grad = cypool.stochastic_pool1d_backward(np.ones(xl.shape), xl.shape, big, 1, big // 2,
                                                 training=False, x=xl, **kw)
        np.testing.assert_allclose(grad.ravel(), 3 * (12 * x.ravel() - 14) / 36)
    # fractional: a kernel past the input leaves no room for a window
    with pytest.raises(ValueError, match="kernel_size - 1 <= input size"):
        cypool.fractional_max_pool2d(one, big, 1, rng=0)


def test_huge_windows_max_channels_first():
    """A guard against the fast path looping over every kernel tap when no
    window is full (it took 6-16 s here before it was fixed)."""
    run_isolated("cypool.max_pool1d(np.arange(3.0).reshape(1, 1, 3), 2**31 - 1, 1, 'same')",
                 timeout=4)


def test_huge_plane():
    """Row "huge_plane" is tests/test_pool.py::test_indices_exact_past_2_31
    (a 1-D plane of 2**31 + 8192 elements); this checks it is still there."""
    import test_pool

    assert callable(test_pool.test_indices_exact_past_2_31)


# --------------------------------------------------------------- NaN/inf

SPECIAL_KINDS = ["nan", "inf-mix", "all-neginf", "all-nan", "all-inf"]


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("kind", SPECIAL_KINDS)
def test_nan_inf(name, kind):
    """Inputs with NaN and ±inf (some or all) agree with the reference: NaN
    propagates, the last NaN of a max window wins, inf - inf is NaN."""
    for seed in range(3):
        check(fixed_case(name, seed, kinds=(kind,)))


# ---------------------------------------------------------------- threads

@pytest.mark.parametrize("value, exc", [(0, ValueError), (-1, ValueError), (4097, ValueError),
                                        (2**63, ValueError), (1.5, TypeError), (True, TypeError),
                                        ("2", TypeError)])
def test_num_threads(value, exc):
    for name in sorted(OPS):
        with pytest.raises(exc, match="num_threads"):
            fixed_case(name).call(num_threads=value)
    with pytest.raises(ValueError, match="num_threads"):
        cypool.set_num_threads(value)


def test_num_threads_many_threads_is_safe():
    """More threads than planes or cores (the largest count accepted) works."""
    x = np.random.default_rng(0).standard_normal((2, 16, 64, 64)).astype(np.float32)
    want = cypool.max_pool2d(x, 3, 2, 1, num_threads=1)
    np.testing.assert_array_equal(cypool.max_pool2d(x, 3, 2, 1, num_threads=64), want)


# ------------------------------------------------------------ random state

SAMPLED = [name for name in FORWARD if name.startswith(("fractional", "stochastic"))]


def _draws(name, x, channels_last):
    """The number of uniforms a call of :func:`_sampled` draws (SPEC: ``(N, C, nd)``
    fractional samples, one per stochastic output), and that call."""
    nd = int(name[-2])
    pool = getattr(cypool, name)
    if name.startswith("fractional"):
        call = functools.partial(pool, x, 2, output_ratio=0.5, return_indices=True,
                                 channels_last=channels_last)
        return x.shape[0] * x.shape[-1 if channels_last else 1] * nd, call
    call = functools.partial(pool, x, 3, 2, 1, return_indices=True, channels_last=channels_last)
    return call(rng=0)[0].size, call


@pytest.mark.parametrize("name", SAMPLED)
def test_random_state(name):
    """Bad ``rng`` and ``_random_samples`` are refused by name; a seed gives the
    same result in both layouts and for 1 or 2 threads (an input large enough
    for the threaded kernels), and a Generator ends where ``random`` of the
    same number of draws leaves it."""
    for value in (1.5, np.float64(3), -1, "0", True, np.random.RandomState(0),
                  np.random.PCG64(0), np.random.SeedSequence(0)):
        _refuses(name, "rng", value)
    if name.startswith("fractional"):
        case = fixed_case(name)
        need = case.extra["samples_shape"]
        for samples, words in [
                (np.full(need[:2] + (need[2] + 1,), 0.5), ["(N'"]),
                (np.full((need[0] - 1,) + need[1:], 0.5), ["N' >= the batch size"]),
                # ragged: NumPy < 1.24 makes an object array of it, so the message
                # names the dtype there, not the array-like
                (0.5, ["shape"]), ([[0.5], [0.5, 0.5]], []),
                (np.ones(need), ["[0, 1)"]), (np.full(need, -0.25), ["[0, 1)"]),
                (np.full(need, np.nan), ["[0, 1)"]), (np.full(need, 2**64 - 1, np.uint64), ["[0, 1)"]),
                (np.zeros(need, np.complex64), ["complex64"]), (np.zeros(need, bool), ["bool"]),
                (np.zeros(need, object), ["object"])]:
            with pytest.raises((ValueError, TypeError)) as info:
                case.call(rng=None, _random_samples=samples)
            assert all(w in str(info.value) for w in ["_random_samples"] + words), str(info.value)
        _refuses(name, "_random_samples", np.zeros(need), "rng", "not both")
    nd = int(name[-2])
    # more than 2**17 elements: the threaded kernels
    x = np.random.default_rng(1).standard_normal((2, 64) + {1: (1100,), 2: (36, 36), 3: (12,) * 3}[nd])
    count, first = _draws(name, x, False)
    want = first(rng=5, num_threads=1)
    count_last, last = _draws(name, np.ascontiguousarray(np.moveaxis(x, 1, -1)), True)
    assert count_last == count
    for threads in (1, 2):
        _assert_same_results(first(rng=np.random.default_rng(5), num_threads=threads), want)
        got = last(rng=5, num_threads=threads)
        _assert_same_results(tuple(np.moveaxis(a, -1, 1) for a in got), want)
    for bits in (np.random.PCG64, np.random.MT19937):
        used, fresh = np.random.Generator(bits(3)), np.random.Generator(bits(3))
        first(rng=used)
        fresh.random(count)
        assert used.random() == fresh.random(), bits.__name__


# ------------------------------------------------------------------ README

def test_readme_lists_every_row():
    """The README's Reliability table has exactly these rows, each tested here."""
    text = open(README, encoding="utf-8").read()
    section = text[text.index("## Reliability"):]
    section = section[:section.index("\n## ", 3)] if "\n## " in section[3:] else section
    listed = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)
    assert listed == ROWS
    for row in ROWS:
        assert f"test_{row}" in globals(), row
