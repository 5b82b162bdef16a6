"""Adaptive, global and LP pooling against the slow reference (tests/reference_reduce.py)
and, where PyTorch has the op, against PyTorch 2.13 CPU.

Dims 1-3 (global: 1-4), both layouts, float32/float64, the integer dtypes and
bool of the max family, NaN, ties and -inf, unbatched input, empty batches,
views, ``out=``, thread counts, the global fast paths against the general
loops, and every argument error.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cypool
import reference as ref
import reference_reduce as rr
from cypool import _adaptive, _args

LAYOUTS = [False, True]
LAYOUT_IDS = ["cf", "cl"]
FLOATS = [np.float32, np.float64]
INT_TYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]

# (input shape (N, C, *spatial), output_size)
ADAPTIVE_CASES = [
    ((2, 3, 7), 3),
    ((2, 3, 5), 5),
    ((2, 3, 4), 7),            # output larger than input: windows repeat elements
    ((2, 3, 10), 1),           # global
    ((2, 3, 1), 3),
    ((2, 3, 7, 5), (3, 2)),
    ((2, 2, 6, 6), (None, 4)),
    ((2, 2, 5, 7), 1),
    ((1, 2, 3, 4), (5, 6)),
    ((2, 2, 13, 11), (4, 3)),
    ((1, 2, 5, 4, 6), (2, 3, 4)),
    ((2, 2, 3, 3, 3), 1),
    ((1, 2, 4, 5, 3), (None, 2, 5)),
]

# (input shape, kernel_size, stride, ceil_mode): LP pooling has no padding or dilation
LP_CASES = [
    ((2, 3, 8), 2, None, False),
    ((2, 3, 7), 3, 2, True),          # last window cut short
    ((2, 3, 9), 2, 3, False),         # stride over kernel: elements in no window
    ((2, 3, 5), 5, None, False),
    ((2, 3, 6, 7), 2, None, True),
    ((2, 2, 7, 5), (3, 2), (2, 1), True),
    ((1, 2, 5, 6), (1, 3), 1, False),  # overlapping windows
    ((1, 2, 4, 5, 6), 2, None, True),
    ((1, 2, 5, 4, 3), (3, 2, 1), (1, 2, 1), False),
]
NORMS = [1, 2, 3, 1.5, 0.5, math.inf]


def _ids(cases):
    return [f"{len(c[0]) - 2}d-{i}" for i, c in enumerate(cases)]


def _in_layout(a, channels_last):
    return np.ascontiguousarray(ref.to_channels_last(a)) if channels_last else a


def _from_layout(a, channels_last):
    return ref.from_channels_last(a) if channels_last else a


def _tolerance(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)


def _op(name, nd, backward=False):
    return getattr(cypool, f"{name}{nd}d" + ("_backward" if backward else ""))


def _rng(*parts):
    return ref.make_rng("reduce", *parts)


def _spatial3(spatial):
    """The kernels' (D, H, W) of 1-3 spatial sizes."""
    return (1,) * (3 - len(spatial)) + tuple(spatial)


# --------------------------------------------------------------- adaptive

@pytest.mark.parametrize("kind", ["randn", "ties", "nan", "all-neginf"])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("shape, output_size", ADAPTIVE_CASES, ids=_ids(ADAPTIVE_CASES))
def test_adaptive_max_matches_reference(shape, output_size, dtype, kind):
    nd = len(shape) - 2
    rng = _rng(shape, kind)
    x = ref.make_values(kind, shape, dtype, rng)
    want, want_idx = rr.adaptive_max_pool(x, nd, output_size)
    grad = rng.standard_normal(want.shape).astype(dtype)
    want_grad = rr.adaptive_max_pool_backward(grad, want_idx, shape)
    for channels_last in LAYOUTS:
        _check_adaptive_max(x, output_size, grad, channels_last, want, want_idx, want_grad)


def _check_adaptive_max(x, output_size, grad, channels_last, want, want_idx, want_grad):
    nd = x.ndim - 2
    got, got_idx = _op("adaptive_max_pool", nd)(_in_layout(x, channels_last), output_size,
                                                return_indices=True, channels_last=channels_last)
    assert got.dtype == x.dtype and got_idx.dtype == np.int64
    np.testing.assert_array_equal(_from_layout(got, channels_last), want)
    np.testing.assert_array_equal(_from_layout(got_idx, channels_last), want_idx)
    only = _op("adaptive_max_pool", nd)(_in_layout(x, channels_last), output_size,
                                        channels_last=channels_last)
    np.testing.assert_array_equal(only, got)
    got_grad = _op("adaptive_max_pool", nd, True)(_in_layout(grad, channels_last), got_idx,
                                                  _in_layout(x, channels_last).shape,
                                                  channels_last=channels_last)
    np.testing.assert_allclose(_from_layout(got_grad, channels_last), want_grad,
                               **_tolerance(x.dtype))


@pytest.mark.parametrize("kind", ["randn", "inf-mix"])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("shape, output_size", ADAPTIVE_CASES, ids=_ids(ADAPTIVE_CASES))
def test_adaptive_avg_matches_reference(shape, output_size, dtype, kind):
    nd = len(shape) - 2
    rng = _rng(shape, kind, "avg")
    x = ref.make_values(kind, shape, dtype, rng)
    want = rr.adaptive_avg_pool(x, nd, output_size)
    grad = rng.standard_normal(want.shape).astype(dtype)
    want_grad = rr.adaptive_avg_pool_backward(grad, shape, nd)
    for channels_last in LAYOUTS:
        got = _op("adaptive_avg_pool", nd)(_in_layout(x, channels_last), output_size,
                                           channels_last=channels_last)
        assert got.dtype == x.dtype
        np.testing.assert_allclose(_from_layout(got, channels_last), want, **_tolerance(dtype))
        got_grad = _op("adaptive_avg_pool", nd, True)(_in_layout(grad, channels_last),
                                                      _in_layout(x, channels_last).shape,
                                                      channels_last=channels_last)
        assert got_grad.dtype == dtype
        np.testing.assert_allclose(_from_layout(got_grad, channels_last), want_grad,
                                   **_tolerance(dtype))


@st.composite
def adaptive_calls(draw):
    nd = draw(st.integers(1, 3))
    spatial = tuple(draw(st.integers(1, 9)) for _ in range(nd))
    output_size = tuple(draw(st.one_of(st.none(), st.integers(1, 11))) for _ in range(nd))
    shape = (draw(st.integers(0, 2)), draw(st.integers(1, 3))) + spatial
    return shape, output_size, draw(st.booleans()), draw(st.sampled_from([1, 2]))


@given(call=adaptive_calls(), seed=st.integers(0, 2**32 - 1))
def test_adaptive_random_geometry_matches_reference(call, seed):
    shape, output_size, channels_last, threads = call
    nd = len(shape) - 2
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, size=shape).astype(np.float64)
    x[rng.random(shape) < 0.1] = np.nan
    xl = _in_layout(x, channels_last)
    kw = dict(channels_last=channels_last, num_threads=threads)
    values, indices = _op("adaptive_max_pool", nd)(xl, output_size, True, **kw)
    want, want_idx = rr.adaptive_max_pool(x, nd, output_size)
    np.testing.assert_array_equal(_from_layout(values, channels_last), want)
    np.testing.assert_array_equal(_from_layout(indices, channels_last), want_idx)
    clean = np.nan_to_num(x)
    means = _op("adaptive_avg_pool", nd)(_in_layout(clean, channels_last), output_size, **kw)
    np.testing.assert_allclose(_from_layout(means, channels_last),
                               rr.adaptive_avg_pool(clean, nd, output_size), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint8])
@pytest.mark.parametrize("shape", [(3, 2, 7), (2, 5, 4, 6), (1, 70, 3, 2, 5), (0, 3, 4, 4)])
def test_global_fast_paths_equal_general_loops(shape, dtype, channels_last):
    """Output size 1 takes the global loops; ``naive=True`` the general ones."""
    rng = _rng(shape, dtype, channels_last)
    x = rng.integers(0, 4, size=shape).astype(dtype)
    if np.dtype(dtype).kind == "f":
        x[rng.random(shape) < 0.1] = np.nan
    nd = len(shape) - 2
    lay = _args.layout(_in_layout(x, channels_last).shape, nd, channels_last)
    in3, out3 = _spatial3(lay.spatial), (1, 1, 1)
    kernel_in = _in_layout(x, channels_last).reshape(lay.kernel_shape(lay.spatial))
    out_shape = lay.kernel_shape((1,) * nd)
    results = []
    for naive in (False, True):
        values, indices = np.empty(out_shape, x.dtype), np.empty(out_shape, np.int64)
        _adaptive.adaptive_max_forward(kernel_in, values, indices, in3, out3, channels_last, 2,
                                       naive)
        results += [values, indices]
        if np.dtype(dtype).kind == "f":
            means = np.empty(out_shape, x.dtype)
            _adaptive.adaptive_avg_forward(kernel_in, means, in3, out3, channels_last, 2, naive)
            results.append(means)
    half = len(results) // 2
    # the maxima and their positions exactly (a NaN's place, the first of ties),
    # the means (added in another order) within rounding
    for fast, slow in zip(results[:2], results[half:half + 2]):
        np.testing.assert_array_equal(fast, slow)
    for fast, slow in zip(results[2:half], results[half + 2:]):
        np.testing.assert_allclose(fast, slow, rtol=1e-6)


@pytest.mark.parametrize("dtype", INT_TYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("output_size", [(3, 2), 1])
def test_adaptive_max_keeps_integer_dtypes(output_size, channels_last, dtype):
    info = np.iinfo(dtype)
    rng = _rng(dtype, output_size)
    x = rng.integers(info.min, info.max, size=(2, 3, 7, 5), dtype=dtype, endpoint=True)
    x[0, 0] = info.min  # windows holding only the type's minimum
    x[1, 1] = 5         # ties everywhere
    want, want_idx = rr.adaptive_max_pool(x, 2, output_size)
    got, got_idx = cypool.adaptive_max_pool2d(_in_layout(x, channels_last), output_size,
                                              return_indices=True, channels_last=channels_last)
    assert got.dtype == dtype
    np.testing.assert_array_equal(_from_layout(got, channels_last), want)
    np.testing.assert_array_equal(_from_layout(got_idx, channels_last), want_idx)


def test_adaptive_max_bool_is_logical_or():
    x = _rng("bool").random((2, 2, 5, 7)) < 0.15
    got, idx = cypool.adaptive_max_pool2d(x, (2, 3), return_indices=True)
    want, want_idx = rr.adaptive_max_pool(x.astype(np.uint8), 2, (2, 3))
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, want.astype(bool))
    np.testing.assert_array_equal(idx, want_idx)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_adaptive_float16_and_integers(nd):
    shape = (2, 3) + (5,) * nd
    rng = _rng("f16", nd)
    x16 = rng.standard_normal(shape).astype(np.float16)
    got = _op("adaptive_avg_pool", nd)(x16, 3)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, rr.adaptive_avg_pool(x16.astype(np.float32), nd, 3)
                                  .astype(np.float32).astype(np.float16))
    values, idx = _op("adaptive_max_pool", nd)(x16, 3, return_indices=True)
    assert values.dtype == np.float16
    np.testing.assert_array_equal(idx, rr.adaptive_max_pool(x16.astype(np.float32), nd, 3)[1])
    ints = rng.integers(-50, 50, size=shape).astype(np.int32)
    means = _op("adaptive_avg_pool", nd)(ints, 2)
    assert means.dtype == np.float64
    np.testing.assert_allclose(means, rr.adaptive_avg_pool(ints, nd, 2))


# ----------------------------------------------------------------- global

GLOBAL_SHAPES = [(2, 3, 7), (2, 3, 4, 5), (1, 2, 3, 4, 2), (2, 2, 2, 3, 2, 3), (0, 3, 4), (2, 70, 3)]


@pytest.mark.parametrize("keepdims", [False, True], ids=["flat", "keep"])
@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("shape", GLOBAL_SHAPES)
def test_global_pools_match_reference(shape, channels_last, dtype, keepdims):
    rng = _rng("global", shape)
    x = ref.make_values("nan", shape, dtype, rng)
    x[..., :1] = np.where(rng.random(x[..., :1].shape) < 0.5, 2.0, x[..., :1])  # ties
    xl = _in_layout(x, channels_last)

    def back(a):  # a keepdims result in the layout under test, channels-first
        return _from_layout(a, channels_last) if keepdims else a

    want_max, want_idx = rr.global_max_pool(x, keepdims)
    got_max, got_idx = cypool.global_max_pool(xl, keepdims, return_indices=True,
                                              channels_last=channels_last)
    np.testing.assert_array_equal(back(got_max), want_max)
    np.testing.assert_array_equal(back(got_idx), want_idx)
    np.testing.assert_array_equal(
        cypool.global_max_pool(xl, keepdims, channels_last=channels_last), got_max)

    clean = np.nan_to_num(x)
    got_mean = cypool.global_avg_pool(_in_layout(clean, channels_last), keepdims,
                                      channels_last=channels_last)
    np.testing.assert_allclose(back(got_mean), rr.global_avg_pool(clean, keepdims),
                               **_tolerance(dtype))

    grad = rng.standard_normal(got_mean.shape).astype(dtype)
    grad_cf = back(grad)
    got = cypool.global_avg_pool_backward(grad, xl.shape, channels_last=channels_last)
    np.testing.assert_allclose(_from_layout(got, channels_last),
                               rr.global_avg_pool_backward(grad_cf, shape), **_tolerance(dtype))
    got = cypool.global_max_pool_backward(grad, got_idx, xl.shape, channels_last=channels_last)
    np.testing.assert_allclose(_from_layout(got, channels_last),
                               rr.global_max_pool_backward(grad_cf, want_idx, shape),
                               **_tolerance(dtype))


@pytest.mark.parametrize("dtype", INT_TYPES + [np.bool_], ids=lambda d: np.dtype(d).name)
def test_global_max_keeps_integer_dtypes(dtype):
    rng = _rng("global-int", dtype)
    if dtype == np.bool_:
        x = rng.random((2, 3, 4, 5)) < 0.1
    else:
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max, size=(2, 3, 4, 5), dtype=dtype, endpoint=True)
        x[0, 0] = info.min
    values, idx = cypool.global_max_pool(x, return_indices=True)
    want, want_idx = rr.global_max_pool(x.view(np.uint8) if dtype == np.bool_ else x)
    assert values.dtype == dtype
    np.testing.assert_array_equal(values, want.astype(dtype))
    np.testing.assert_array_equal(idx, want_idx)
    # values alone: a plain maximum reduction over each plane (planes of 1 to 300
    # values, 1 to 5 planes a job), the type's extremes included
    for plane in (1, 3, 4, 5, 17, 300):
        y = np.resize(x.reshape(-1), (2, 5, plane))
        if dtype != np.bool_:
            y[1, 1, -1] = info.max
            y[0, 2] = info.min
        np.testing.assert_array_equal(cypool.global_max_pool(y), y.max(axis=2))
    assert cypool.global_avg_pool(x.astype(np.int64)).dtype == np.float64


def test_global_avg_keeps_precision_over_long_float32_planes():
    x = np.full((1, 2, 300_001), 0.1, dtype=np.float32)
    want = x.astype(np.float64).mean(axis=2)
    for channels_last in LAYOUTS:
        got = cypool.global_avg_pool(_in_layout(x, channels_last), channels_last=channels_last)
        np.testing.assert_allclose(got, want, rtol=3e-7)  # within 3 float32 ulps


# --------------------------------------------------------------------- LP

@pytest.mark.parametrize("norm_type", NORMS, ids=lambda p: f"p{p}")
@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
@pytest.mark.parametrize("shape, kernel_size, stride, ceil_mode", LP_CASES, ids=_ids(LP_CASES))
def test_lp_pool_matches_reference(shape, kernel_size, stride, ceil_mode, dtype, norm_type):
    nd = len(shape) - 2
    rng = _rng("lp", shape, norm_type)
    x = rng.standard_normal(shape).astype(dtype)
    x[..., ::3] = np.abs(x[..., ::3])
    window = dict(kernel_size=kernel_size, stride=stride, ceil_mode=ceil_mode)
    want = rr.lp_pool(x, nd, norm_type, **window)
    grad = rng.standard_normal(want.shape).astype(dtype)
    want_grad = rr.lp_pool_backward(grad, x, nd, norm_type, **window)
    for channels_last in LAYOUTS:
        got = _op("lp_pool", nd)(_in_layout(x, channels_last), norm_type, **window,
                                 channels_last=channels_last)
        assert got.dtype == dtype
        np.testing.assert_allclose(_from_layout(got, channels_last), want, equal_nan=True,
                                   **_tolerance(dtype))
        got_grad = _op("lp_pool", nd, True)(_in_layout(grad, channels_last),
                                            _in_layout(x, channels_last), norm_type, **window,
                                            channels_last=channels_last)
        assert got_grad.dtype == dtype
        np.testing.assert_allclose(_from_layout(got_grad, channels_last), want_grad,
                                   equal_nan=True, **_tolerance(dtype))


@pytest.mark.parametrize("norm_type", [1, 2, 3, math.inf], ids=lambda p: f"p{p}")
@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
def test_lp_zero_window_has_zero_gradient(channels_last, norm_type):
    x = np.zeros((1, 2, 4, 4))
    x[0, 1, :2, :2] = [[1.0, -2.0], [0.0, 3.0]]
    y = cypool.lp_pool2d(_in_layout(x, channels_last), norm_type, 2, channels_last=channels_last)
    assert np.count_nonzero(y) == 1
    grad = cypool.lp_pool2d_backward(np.ones_like(y), _in_layout(x, channels_last), norm_type, 2,
                                     channels_last=channels_last)
    grad = _from_layout(grad, channels_last)
    assert np.all(np.isfinite(grad))
    assert np.all(grad[0, 0] == 0) and np.all(grad[0, 1, 2:] == 0) and np.all(grad[0, 1, :, 2:] == 0)


def test_lp_special_values():
    # odd p keeps the sign of a negative sum through 1/p = 1; p = 2 is a sqrt of a sum of squares
    x = np.array([[[-1.0, -2.0, np.inf, 1.0, np.nan, 1.0]]])
    np.testing.assert_array_equal(cypool.lp_pool1d(x, 1, 2), [[[-3.0, np.inf, np.nan]]])
    np.testing.assert_array_equal(cypool.lp_pool1d(x, math.inf, 2), [[[2.0, np.inf, np.nan]]])
    assert np.isnan(cypool.lp_pool1d(np.array([[[-1.0, -2.0]]]), 3, 2)).all()
    # integers compute in float64; float16 in float32
    ints = np.arange(12).reshape(1, 2, 6)
    np.testing.assert_allclose(cypool.lp_pool1d(ints, 2, 3), rr.lp_pool(ints, 1, 2, 3))
    halves = np.linspace(0, 2, 12, dtype=np.float16).reshape(1, 2, 6)
    got = cypool.lp_pool1d(halves, 2, 3)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, rr.lp_pool(halves.astype(np.float32), 1, 2, 3)
                                  .astype(np.float32).astype(np.float16))


# ------------------------------------------------ shapes, views, out, threads

def _all_forwards(nd):
    """(name, call) for every forward op of ``nd`` spatial dims on channels-first x."""
    return [
        ("adaptive_avg", lambda x, **kw: _op("adaptive_avg_pool", nd)(x, 2, **kw)),
        ("adaptive_max", lambda x, **kw: _op("adaptive_max_pool", nd)(x, (None,) * (nd - 1) + (3,), **kw)),
        ("lp", lambda x, **kw: _op("lp_pool", nd)(x, 2, 2, **kw)),
        ("lp_inf", lambda x, **kw: _op("lp_pool", nd)(x, math.inf, 2, ceil_mode=True, **kw)),
    ]


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_unbatched_empty_views_out_threads(nd):
    rng = _rng("misc", nd)
    x = rng.standard_normal((3, 4) + (5,) * nd)
    original = x.copy()
    for name, call in _all_forwards(nd):
        want = call(x)
        # unbatched = the batch of one, squeezed
        np.testing.assert_allclose(call(x[0]), want[0], rtol=1e-12, err_msg=name)
        # empty batch
        assert call(x[:0]).shape == (0,) + want.shape[1:]
        # negative strides, non-contiguous views, lists
        flipped = x[::-1, :, ...][..., ::-1]
        np.testing.assert_allclose(call(flipped), call(np.ascontiguousarray(flipped)),
                                   rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(call(x[:1].tolist()), want[:1], rtol=1e-12, err_msg=name)
        # out= and thread counts
        out = np.empty_like(want)
        assert call(x, out=out) is out
        np.testing.assert_array_equal(out, want)
        copies = -(-2 * _args.SERIAL_BELOW // x.size)  # past the serial threshold
        big = np.repeat(x, copies, axis=1)
        for threads in (1, 3):
            np.testing.assert_allclose(call(big, num_threads=threads),
                                       np.repeat(want, copies, axis=1), rtol=1e-12, err_msg=name)
    np.testing.assert_array_equal(x, original)


def test_thread_counts_agree_in_both_layouts():
    rng = _rng("threads")
    x = rng.standard_normal((3, 64, 9, 10)).astype(np.float32)
    for channels_last in LAYOUTS:
        xl = _in_layout(x, channels_last)
        calls = [
            lambda **kw: cypool.adaptive_avg_pool2d(xl, (4, 3), channels_last=channels_last, **kw),
            lambda **kw: cypool.adaptive_max_pool2d(xl, (4, 3), True, channels_last=channels_last, **kw),
            lambda **kw: cypool.global_avg_pool(xl, channels_last=channels_last, **kw),
            lambda **kw: cypool.global_max_pool(xl, return_indices=True, channels_last=channels_last, **kw),
            lambda **kw: cypool.lp_pool2d(xl, 3, 2, ceil_mode=True, channels_last=channels_last, **kw),
            lambda **kw: cypool.lp_pool2d_backward(
                np.ones(cypool.lp_pool2d(xl, 3, 2, channels_last=channels_last).shape, np.float32),
                xl, 3, 2, channels_last=channels_last, **kw),
        ]
        for call in calls:
            one = _as_tuple(call(num_threads=1))
            for threads in (2, 3):
                for a, b in zip(one, _as_tuple(call(num_threads=threads))):
                    np.testing.assert_array_equal(a, b)


def _as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_backward_unbatched_and_out(nd):
    rng = _rng("back", nd)
    x = rng.standard_normal((2, 3) + (6,) * nd)
    y, idx = _op("adaptive_max_pool", nd)(x, 4, True)
    g = rng.standard_normal(y.shape)
    want = _op("adaptive_max_pool", nd, True)(g, idx, x.shape)
    np.testing.assert_array_equal(_op("adaptive_max_pool", nd, True)(g[0], idx[0], x.shape[1:]), want[0])
    want = _op("adaptive_avg_pool", nd, True)(g, x.shape)
    np.testing.assert_allclose(_op("adaptive_avg_pool", nd, True)(g[0], x.shape[1:]), want[0])
    out = np.empty(x.shape)
    assert _op("adaptive_avg_pool", nd, True)(g, x.shape, out=out) is out
    y = _op("lp_pool", nd)(x, 2, 3)
    g = rng.standard_normal(y.shape)
    want = _op("lp_pool", nd, True)(g, x, 2, 3)
    np.testing.assert_allclose(_op("lp_pool", nd, True)(g[0], x[0], 2, 3), want[0])
    assert _op("lp_pool", nd, True)(g, x, 2, 3, out=out) is out
    assert _op("lp_pool", nd, True)(g.astype(np.float32), x.astype(np.float32), 2, 3).dtype == np.float32
    assert _op("lp_pool", nd, True)(g.astype(np.float32), x, 2, 3).dtype == np.float64


# ---------------------------------------------------------------- PyTorch

TORCH_DTYPES = FLOATS


def _torch():
    return pytest.importorskip("torch")


def _torch_close(actual, expected, dtype):
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(actual, expected, equal_nan=True, **tol)


def _torch_forward_backward(function, x, grad, *args, **kwargs):
    """PyTorch's ``function(x, *args)`` (its first result if a tuple), the
    other results, and the input gradient for upstream ``grad``."""
    torch = _torch()
    tensor = torch.from_numpy(x.copy()).requires_grad_()
    result = function(tensor, *args, **kwargs)
    values, *rest = result if isinstance(result, tuple) else (result,)
    values.backward(torch.from_numpy(np.ascontiguousarray(grad)))
    return [values.detach().numpy()] + [r.numpy() for r in rest] + [tensor.grad.numpy()]


@pytest.mark.parametrize("kind", ["randn", "ties", "nan", "all-neginf"])
@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape, output_size", ADAPTIVE_CASES, ids=_ids(ADAPTIVE_CASES))
def test_adaptive_matches_torch(shape, output_size, dtype, kind):
    F = _torch().nn.functional
    nd = len(shape) - 2
    rng = _rng("torch", shape, kind)
    x = ref.make_values(kind, shape, dtype, rng)
    out_shape = _op("adaptive_avg_pool", nd)(x, output_size).shape
    grad = rng.standard_normal(out_shape).astype(dtype)
    values, indices, max_grad = _torch_forward_backward(
        getattr(F, f"adaptive_max_pool{nd}d"), x, grad, output_size, return_indices=True)
    means, avg_grad = _torch_forward_backward(
        getattr(F, f"adaptive_avg_pool{nd}d"), x, grad, output_size)
    for channels_last in LAYOUTS:
        xl, gl = _in_layout(x, channels_last), _in_layout(grad, channels_last)
        got, got_idx = _op("adaptive_max_pool", nd)(xl, output_size, True,
                                                    channels_last=channels_last)
        np.testing.assert_array_equal(_from_layout(got, channels_last), values)
        np.testing.assert_array_equal(_from_layout(got_idx, channels_last), indices)
        got_grad = _op("adaptive_max_pool", nd, True)(gl, got_idx, xl.shape,
                                                      channels_last=channels_last)
        _torch_close(_from_layout(got_grad, channels_last), max_grad, dtype)
        if kind == "nan":
            continue
        got = _op("adaptive_avg_pool", nd)(xl, output_size, channels_last=channels_last)
        _torch_close(_from_layout(got, channels_last), means, dtype)
        got_grad = _op("adaptive_avg_pool", nd, True)(gl, xl.shape, channels_last=channels_last)
        _torch_close(_from_layout(got_grad, channels_last), avg_grad, dtype)


@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 3, 4, 5), (1, 2, 3, 4, 2)])
def test_global_matches_torch_adaptive_to_one(shape, dtype):
    torch = _torch()
    F = torch.nn.functional
    nd = len(shape) - 2
    x = ref.make_values("ties", shape, dtype, _rng("torch-global", shape))
    values, indices = getattr(F, f"adaptive_max_pool{nd}d")(torch.from_numpy(x), 1, return_indices=True)
    got, got_idx = cypool.global_max_pool(x, keepdims=True, return_indices=True)
    np.testing.assert_array_equal(got, values.numpy())
    np.testing.assert_array_equal(got_idx, indices.numpy())
    means = getattr(F, f"adaptive_avg_pool{nd}d")(torch.from_numpy(x), 1)
    _torch_close(cypool.global_avg_pool(x, keepdims=True), means.numpy(), dtype)


@pytest.mark.parametrize("norm_type", NORMS, ids=lambda p: f"p{p}")
@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape, kernel_size, stride, ceil_mode", LP_CASES, ids=_ids(LP_CASES))
def test_lp_pool_matches_torch(shape, kernel_size, stride, ceil_mode, dtype, norm_type):
    """Values and autograd gradients; negative inputs too (NaN where PyTorch's is)."""
    F = _torch().nn.functional
    nd = len(shape) - 2
    rng = _rng("torch-lp", shape, norm_type)
    x = rng.standard_normal(shape).astype(dtype)
    x[..., 1::2] = np.abs(x[..., 1::2])
    window = dict(kernel_size=kernel_size, stride=stride, ceil_mode=ceil_mode)
    grad = rng.standard_normal(rr.lp_pool(x, nd, 1, **window).shape).astype(dtype)
    values, torch_grad = _torch_forward_backward(getattr(F, f"lp_pool{nd}d"), x, grad,
                                                 norm_type, **window)
    # Documented departure: where no window passes a gradient cypool gives 0,
    # PyTorch 0 * x**(p-1), NaN for negative x with fractional p.
    untouched = rr.lp_pool_backward(np.ones(grad.shape), np.ones(shape), nd, 1, **window) == 0
    for channels_last in LAYOUTS:
        xl = _in_layout(x, channels_last)
        got = _op("lp_pool", nd)(xl, norm_type, **window, channels_last=channels_last)
        _torch_close(_from_layout(got, channels_last), values, dtype)
        got_grad = _op("lp_pool", nd, True)(_in_layout(grad, channels_last), xl, norm_type,
                                            **window, channels_last=channels_last)
        got_grad = _from_layout(got_grad, channels_last)
        assert np.all(got_grad[untouched] == 0)
        _torch_close(got_grad[~untouched], torch_grad[~untouched], dtype)


# ----------------------------------------------------------------- errors

X3 = np.zeros((2, 3, 6, 6), dtype=np.float32)

ERROR_CASES = [
    (lambda: cypool.adaptive_avg_pool2d(X3, 0), ValueError, ["output_size", ">= 1", "0"]),
    (lambda: cypool.adaptive_avg_pool2d(X3, (2, -1)), ValueError, ["output_size", ">= 1"]),
    (lambda: cypool.adaptive_avg_pool2d(X3, (2, 2, 2)), ValueError, ["output_size", "tuple of 2", "3 values"]),
    (lambda: cypool.adaptive_avg_pool2d(X3, None), TypeError, ["output_size", "None"]),
    (lambda: cypool.adaptive_avg_pool2d(X3, 2.0), TypeError, ["output_size", "float"]),
    (lambda: cypool.adaptive_avg_pool2d(X3, True), TypeError, ["output_size", "bool"]),
    (lambda: cypool.adaptive_max_pool2d(X3, 2**31), ValueError, ["output_size", "<= 2147483647"]),
    (lambda: cypool.adaptive_max_pool2d(X3, 2, return_indices="yes"), TypeError, ["return_indices"]),
    (lambda: cypool.adaptive_max_pool2d(X3, 2, channels_last=1), TypeError, ["channels_last"]),
    (lambda: cypool.adaptive_avg_pool2d_backward(np.zeros((0, 1, 1, 2**23)), (0, 1, 1, 2**40)),
     ValueError, ["output_size", "below 2**63"]),
    (lambda: cypool.adaptive_avg_pool2d(np.zeros((4, 4)), 2), ValueError, ["x must have 3", "or 4"]),
    (lambda: cypool.adaptive_avg_pool2d(X3.astype(bool), 2), TypeError, ["bool", "adaptive average"]),
    (lambda: cypool.adaptive_max_pool2d(X3.astype(np.complex64), 2), TypeError, ["complex64"]),
    (lambda: cypool.adaptive_avg_pool2d_backward(np.zeros((2, 4, 2, 2)), X3.shape), ValueError,
     ["grad_output", "batch and channel"]),
    (lambda: cypool.adaptive_avg_pool2d(X3, 2, out=np.zeros((2, 3, 2, 2))), ValueError,
     ["out", "dtype float32"]),
    (lambda: cypool.global_avg_pool(np.zeros((3, 4))), ValueError, ["batched", "spatial", "x[None]"]),
    (lambda: cypool.global_avg_pool(X3, keepdims=1), TypeError, ["keepdims", "True or False"]),
    (lambda: cypool.global_max_pool(np.zeros((2, 0, 3))), ValueError, ["non-zero"]),
    (lambda: cypool.global_avg_pool_backward(np.zeros((2, 4)), X3.shape), ValueError,
     ["grad_output", "(2, 3)", "(2, 3, 1, 1)"]),
    (lambda: cypool.global_max_pool_backward(np.zeros((2, 3)), np.full((2, 3), 36), X3.shape),
     ValueError, ["indices", "[0, 36)"]),
    (lambda: cypool.global_max_pool_backward(np.zeros((2, 3)), np.zeros((2, 3, 1), int), X3.shape),
     ValueError, ["indices", "shape"]),
    (lambda: cypool.global_max_pool(X3, return_indices=True, out=np.zeros((2, 3), np.float32)),
     TypeError, ["out", "tuple"]),
    (lambda: cypool.lp_pool2d(X3, 0, 2), ValueError, ["norm_type", "> 0", "0"]),
    (lambda: cypool.lp_pool2d(X3, -math.inf, 2), ValueError, ["norm_type", "-inf"]),
    (lambda: cypool.lp_pool2d(X3, math.nan, 2), ValueError, ["norm_type", "nan"]),
    (lambda: cypool.lp_pool2d(X3, True, 2), TypeError, ["norm_type", "bool"]),
    (lambda: cypool.lp_pool2d(X3, "2", 2), TypeError, ["norm_type", "str"]),
    (lambda: cypool.lp_pool2d(X3, 10**400, 2), ValueError, ["norm_type", "too large"]),
    (lambda: cypool.lp_pool2d(X3, 2, 0), ValueError, ["kernel_size", ">= 1"]),
    (lambda: cypool.lp_pool2d(X3, 2, 7), ValueError, ["output size would be"]),
    (lambda: cypool.lp_pool2d(X3.astype(bool), 2, 2), TypeError, ["bool", "LP pooling"]),
    (lambda: cypool.lp_pool2d_backward(np.zeros((2, 3, 2, 2)), X3, 2, 2), ValueError,
     ["grad_output", "(2, 3, 3, 3)"]),
    (lambda: cypool.lp_pool2d_backward(np.zeros((2, 3, 3, 3), complex), X3, 2, 2), TypeError,
     ["grad_output", "complex128"]),
]


@pytest.mark.parametrize("call, exc, words", ERROR_CASES)
def test_bad_arguments(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))
