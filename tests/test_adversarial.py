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
DATA = ("x", "grad_output", "indices")   # the array arguments
WINDOWED = sorted(name for name in OPS if "kernel_size" in fixed_case(name).kwargs)
PADDED = [name for name in WINDOWED if "padding" in fixed_case(name).kwargs]  # LP has none

# The README's table rows, by id (the test of row `x` is `test_x`, except where noted).
ROWS = [
    "kernel", "stride", "padding", "padding_over_limit", "dilation", "tuples", "ndim",
    "zero_size", "dtypes", "byte_order", "lists_and_scalars", "views", "out", "out_overlap",
    "indices", "grad_output", "huge_sizes", "huge_windows", "huge_plane", "nan_inf",
    "num_threads",
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


@pytest.mark.parametrize("name", WINDOWED)
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


@pytest.mark.parametrize("name", [n for n in sorted(OPS) if n.startswith("avg_pool")])
def test_dtypes_bool_in_averages(name):
    first, a = _first(fixed_case(name))
    _refuses(name, first, np.zeros(a.shape, bool), "bool")


@pytest.mark.parametrize("name", sorted(OPS))
def test_byte_order(name):
    """Big-endian arrays give the native result (they once gave silently wrong
    maxima for integers and a TypeError for floats)."""
    for seed in range(100):  # a case with multi-byte data
        case = fixed_case(name, seed)
        native = {k: np.asarray(v) for k, v in case.kwargs.items() if k in DATA}
        swapped = {k: v.astype(v.dtype.newbyteorder(">")) for k, v in native.items()
                   if v.dtype.kind in "iuf" and v.dtype.itemsize > 1}
        if swapped:
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
    case = fixed_case(name)
    arrays = {k: np.ascontiguousarray(v) for k, v in case.kwargs.items() if k in DATA}
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
print("ok")
"""


def test_out_overlap():
    """out= overlapping an input, the indices or the other result: refused."""
    assert run_isolated(OVERLAP_SNIPPET).strip().endswith("ok")


# ------------------------------------------------------------- backward

INDICES_SNIPPET = """
import itertools
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
        for bad in (plane, plane + 1, 2**31, 2**62, -1, -plane, -2**63):
            broken = idx.copy()
            broken.flat[0] = bad
            refused(lambda: backward(g, broken, xl.shape, channels_last=channels_last,
                                     num_threads=2), "indices", "input plane")
            refused(lambda: backward(g[0], broken[0], xl.shape[1:], channels_last=channels_last),
                    "indices", "input plane")
        for dtype in (np.int32, np.int16, np.uint8, np.uint64):
            if np.iinfo(dtype).max >= idx.max():
                np.testing.assert_array_equal(backward(g, idx.astype(dtype), xl.shape, channels_last=channels_last),
                                              backward(g, idx, xl.shape, channels_last=channels_last))
        refused(lambda: backward(g, idx.astype(np.uint64) + np.uint64(2**63), xl.shape,
                                 channels_last=channels_last), "indices", "int64")
        for dtype in (np.float64, np.float32, bool, np.complex64, object):
            refused(lambda: backward(g, idx.astype(dtype), xl.shape, channels_last=channels_last),
                    "indices")
        for wrong in (idx[..., :-1], idx[:1], idx.reshape(-1), idx[..., None]):
            refused(lambda: backward(g, wrong, xl.shape, channels_last=channels_last), "indices")
print("ok")
"""


def test_indices():
    """Out of range, negative, of the wrong dtype or shape, in every max backward
    and both layouts: refused before the scatter, in a separate interpreter."""
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
for nd in (1, 3):
    shape = (1, 1) + (2**21,) * nd if nd == 3 else (1, 1, 2**62)
    refused(lambda: getattr(cypool, f"max_pool{nd}d_backward")(np.ones((1, 1) + (1,) * nd),
            np.zeros((1, 1) + (1,) * nd, np.int64), shape), "input_shape")
# a zero-stride view claiming 2**62 elements: refused before anything is allocated
view = np.broadcast_to(np.uint8(1), (2**31, 2**31, 1))
refused(lambda: cypool.max_pool1d(view, 1), "x", "2**62")
refused(lambda: cypool.avg_pool1d(view, 1), "x", "2**62")
# a view of 2**52 elements is legal but cannot be pooled into memory: MemoryError, no crash
view = np.broadcast_to(np.float32(1), (2**26, 2**26, 1))
try:
    cypool.max_pool1d(view, 1)
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
    the documented result (window geometry is computed in 64 bits)."""
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
