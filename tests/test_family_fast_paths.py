"""The family's fast paths against the naive kernels kept beside them.

Adaptive, LP, fractional and stochastic kernels take ``naive=True`` to force
their general loops; random geometry (hypothesis) and random data must give
identical results where the fast path only reorders comparisons (max,
sampling) and results equal up to the order of float additions where it
reorders sums (averages, LP).
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cypool
from cypool import _adaptive, _args, _fractional, _lp, _stochastic
from conftest import WITH_FIXTURE

DTYPES_MAX = [np.float32, np.float64, np.int16, np.uint8]


def _close(dtype, ulps=1):
    """Tolerance of a reordered sum (and ``ulps`` roundings more)."""
    scale = ulps * (2e-6 if dtype == np.float32 else 1e-13)
    return dict(rtol=scale, atol=scale)


def _in_layout(x, channels_last):
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_last else x


def _from_layout(x, channels_last):
    return np.moveaxis(x, -1, 1) if channels_last else x


def _values(rng, shape, dtype, nan=True):
    """Random data with ties (small integers), NaN, signed zeros and infinities."""
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 4, size=shape).astype(dtype)
    x = rng.integers(-3, 4, size=shape).astype(dtype)
    noise = rng.random(shape)
    x[noise < 0.3] = rng.standard_normal(int((noise < 0.3).sum()))
    x[(noise >= 0.3) & (noise < 0.35)] = -0.0
    if nan:
        x[(noise >= 0.35) & (noise < 0.4)] = np.nan
        x[(noise >= 0.4) & (noise < 0.42)] = -np.inf
    return x


@st.composite
def batches(draw, max_size=12):
    """(nd, spatial, batch, channels, channels_last, threads) of a small random input."""
    nd = draw(st.integers(1, 3))
    spatial = tuple(draw(st.integers(1, max_size)) for _ in range(nd))
    return (nd, spatial, draw(st.integers(0, 2)), draw(st.integers(1, 3)), draw(st.booleans()),
            draw(st.sampled_from([1, 2, 3])))


def _shape(spatial, batch, channels, channels_last):
    return (batch,) + spatial + (channels,) if channels_last else (batch, channels) + spatial


def _spatial3(spatial):
    return (1,) * (3 - len(spatial)) + tuple(spatial)


# ---------------------------------------------------------------- adaptive

def _adaptive_run(x, lay, out_spatial, channels_last, threads, naive, average):
    kernel_in = x.reshape(lay.kernel_shape(lay.spatial))
    out_shape = lay.kernel_shape(out_spatial)
    in3, out3 = _spatial3(lay.spatial), _spatial3(out_spatial)
    if average:
        means = np.empty(out_shape, x.dtype)
        _adaptive.adaptive_avg_forward(kernel_in, means, in3, out3, channels_last, threads, naive)
        return (means,)
    values, indices = np.empty(out_shape, x.dtype), np.empty(out_shape, np.int64)
    _adaptive.adaptive_max_forward(kernel_in, values, indices, in3, out3, channels_last,
                                   threads, naive)
    only = np.empty(out_shape, x.dtype)
    _adaptive.adaptive_max_forward(kernel_in, only, None, in3, out3, channels_last, threads,
                                   naive)
    return values, indices, only


@pytest.mark.parametrize("dtype", DTYPES_MAX)
@given(batch=batches(), out=st.lists(st.integers(1, 14), min_size=3, max_size=3),
       seed=st.integers(0, 2**32 - 1))
def test_adaptive_max_fast_equals_naive(dtype, batch, out, seed):
    nd, spatial, n, c, channels_last, threads = batch
    out_spatial = tuple(out[:nd])
    x = _values(np.random.default_rng(seed), _shape(spatial, n, c, channels_last), dtype)
    lay = _args.layout(x.shape, nd, channels_last)
    fast = _adaptive_run(x, lay, out_spatial, channels_last, threads, False, False)
    slow = _adaptive_run(x, lay, out_spatial, channels_last, threads, True, False)
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)
        # the sign of a zero maximum too: ties keep the first in scan order
        np.testing.assert_array_equal(np.signbit(a), np.signbit(b))
    np.testing.assert_array_equal(fast[0], fast[2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(batch=batches(), out=st.lists(st.integers(1, 14), min_size=3, max_size=3),
       seed=st.integers(0, 2**32 - 1), integral=st.booleans())
@WITH_FIXTURE
def test_adaptive_avg_fast_equals_naive(lanes, dtype, batch, out, seed, integral):
    nd, spatial, n, c, channels_last, threads = batch
    out_spatial = tuple(out[:nd])
    rng = np.random.default_rng(seed)
    shape = _shape(spatial, n, c, channels_last)
    # small integers sum exactly in any order: then the paths agree bit for bit
    x = (rng.integers(-9, 10, size=shape) if integral else rng.standard_normal(shape)).astype(dtype)
    lay = _args.layout(x.shape, nd, channels_last)
    (fast,) = _adaptive_run(x, lay, out_spatial, channels_last, threads, False, True)
    (slow,) = _adaptive_run(x, lay, out_spatial, channels_last, threads, True, True)
    if integral:
        np.testing.assert_array_equal(fast, slow)
    else:
        np.testing.assert_allclose(fast, slow, **_close(dtype))


def _adaptive_avg_backward_run(grad, lay, in_spatial, threads, naive):
    """Adaptive average backward of ``grad`` (``lay``: the gradient's layout)."""
    grad_in = np.full(lay.kernel_shape(in_spatial), 7.0, grad.dtype)  # dirty: all written
    _adaptive.adaptive_avg_backward(grad.reshape(lay.kernel_shape(lay.spatial)), grad_in,
                                    _spatial3(in_spatial), _spatial3(lay.spatial),
                                    lay.channels_last, threads, naive)
    return grad_in


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(batch=batches(max_size=6), factors=st.lists(st.integers(1, 4), min_size=3, max_size=3),
       extra=st.lists(st.integers(0, 3), min_size=3, max_size=3),
       seed=st.integers(0, 2**32 - 1))
def test_adaptive_avg_backward_fast_equals_naive(dtype, batch, factors, extra, seed):
    """The row path (windows along W that do not overlap: W a multiple of OW)
    makes the general loop's additions in its order: equal bit for bit, signed
    zeros, NaN and infinities included, on a dirty result."""
    nd, out_spatial, n, c, channels_last, threads = batch
    # W a multiple of OW (the row path), the other axes any size; half the time W too
    in_spatial = tuple(o * f + e for o, f, e in zip(out_spatial, factors, extra))
    if seed % 2:
        in_spatial = in_spatial[:-1] + (out_spatial[-1] * factors[-1],)
    rng = np.random.default_rng(seed)
    grad = _values(rng, _shape(out_spatial, n, c, channels_last), dtype)
    lay = _args.layout(grad.shape, nd, channels_last)
    fast = _adaptive_avg_backward_run(grad, lay, in_spatial, threads, False)
    slow = _adaptive_avg_backward_run(grad, lay, in_spatial, threads, True)
    np.testing.assert_array_equal(fast, slow)
    np.testing.assert_array_equal(np.signbit(fast), np.signbit(slow))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adaptive_avg_backward_channels_last_disjoint_bit_exact(dtype):
    """Channels-last windows that do not overlap store each element once (by
    doubling copies along W when a job holds all the channels, element by
    element in channel blocks): the general loop's bits on a dirty result,
    -0.0 shares turned 0.0 as ``0 + share`` turns them, NaN and infinities;
    overlapping windows keep the general loop."""
    rng = np.random.default_rng(5)
    for n, in_spatial, out_spatial, c in [(2, (12, 12), (1, 1), 3), (2, (12, 12), (4, 3), 3),
                                          (1, (6, 8), (3, 4), 600), (1, (4, 6, 8), (2, 3, 1), 70),
                                          (3, (7,), (7,), 5), (2, (9, 10), (4, 3), 3)]:
        nd = len(in_spatial)
        grad = _values(rng, (n,) + out_spatial + (c,), dtype)
        grad[rng.random(grad.shape) < 0.2] = -0.0
        lay = _args.layout(grad.shape, nd, True)
        fast = _adaptive_avg_backward_run(grad, lay, in_spatial, 2, False)
        slow = _adaptive_avg_backward_run(grad, lay, in_spatial, 2, True)
        np.testing.assert_array_equal(fast.view(f"u{fast.itemsize}"),
                                      slow.view(f"u{slow.itemsize}"), err_msg=str(in_spatial))


# --------------------------------------------------------------------- LP

#: Exponents of every power path: multiplications (1, 2, 3, 4..7), sqrt
#: (0.5), x**k * sqrt(x) (1.5..7.5), exp/log (the rest) and max of |x| (inf).
NORMS = [1.0, 2.0, 3.0, 0.5, 4.0, 7.0, 1.5, 2.5, 1.7, 0.3, 11.0, math.inf]


@st.composite
def lp_geometries(draw):
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    spatial = tuple(draw(st.integers(k, k + 9)) for k in kernel)
    return (nd, kernel, stride, draw(st.booleans()), spatial, draw(st.integers(0, 2)),
            draw(st.integers(1, 3)), draw(st.booleans()), draw(st.sampled_from([1, 2, 3])))


def _lp_run(x, lay, geom, p, threads, naive):
    out = np.empty(lay.kernel_shape(geom.out_size), x.dtype)
    _lp.lp_pool_forward(x.reshape(lay.kernel_shape(lay.spatial)), out, geom.for_kernel(), p,
                        lay.channels_last, threads, naive)
    return out.reshape(lay.shape_with(geom.out_size))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", NORMS)
@given(params=lp_geometries(), seed=st.integers(0, 2**32 - 1))
def test_lp_fast_equals_naive(dtype, p, params, seed):
    """Fast (separable, vector powers; channels-last's vector powers) against
    the naive channels-first loop: equal up to the order of the sums and the
    last bit of each power (~1 ulp)."""
    nd, kernel, stride, ceil_mode, spatial, n, c, channels_last, threads = params
    geom = _args.pool_geometry(nd, spatial, kernel, stride, 0, 1, ceil_mode)
    rng = np.random.default_rng(seed)
    shape = (n, c) + spatial
    # non-negative data: sums of powers do not cancel, so relative tolerances hold
    x = np.abs(rng.standard_normal(shape)) * rng.choice([0.5, 1.0, 3.0], size=shape)
    x[rng.random(shape) < 0.1] = 0.0
    x = x.astype(dtype)
    cf = _args.layout(shape, nd, False)
    want = _lp_run(x, cf, geom, p, threads, True)
    xl = _in_layout(x, channels_last)
    got = _lp_run(xl, _args.layout(xl.shape, nd, channels_last), geom, p, threads, False)
    np.testing.assert_allclose(_from_layout(got, channels_last), want, **_close(dtype, 4))


@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_lp_fast_special_values(p, channels_last):
    """Negative, zero, signed-zero, infinite and NaN inputs take each power
    path's special cases as powf / pow does: small planes (the lanes) and
    planes too large for them (the separable path; channels-last, the pixel
    loop), against the channels-first general loop."""
    rng = np.random.default_rng(NORMS.index(p))
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, -2.5, 1e-40, 3e38, 0.7])
    for dtype in (np.float32, np.float64):
        for spatial, kernel in (((5, 8), (1, 2)), ((20, 21), (3, 2))):
            # (3e38 in windows of 6: whether a sum overflows before it meets -inf
            # depends on the order of the additions, which the separable path changes)
            choices = specials if spatial == (5, 8) else specials[specials != 3e38]
            x = rng.choice(choices, size=(2, 3) + spatial).astype(dtype)
            geom = _args.pool_geometry(2, spatial, kernel, kernel, 0, 1, False)
            want = _lp_run(x, _args.layout(x.shape, 2, False), geom, p, 1, True)
            xl = _in_layout(x, channels_last)
            got = _lp_run(xl, _args.layout(xl.shape, 2, channels_last), geom, p, 2, False)
            np.testing.assert_allclose(_from_layout(got, channels_last), want, equal_nan=True,
                                       **_close(dtype, 4))


# -------------------------------------------------------------- stochastic

def _stream(gen):
    """A PCG64 generator's state and increment as the kernel's four words."""
    pcg = gen.bit_generator.state["state"]
    word = (1 << 64) - 1
    return pcg["state"] >> 64, pcg["state"] & word, pcg["inc"] >> 64, pcg["inc"] & word


@given(seed=st.integers(0, 2**63), skip=st.integers(0, 50), start=st.integers(0, 300),
       n=st.integers(0, 300))
def test_pcg64_draws_are_numpys(seed, skip, start, n):
    """The kernel's PCG64 gives Generator.random()'s draws from any offset,
    and its jump-ahead the state after them."""
    gen = np.random.default_rng(seed)
    gen.random(skip)
    words = _stream(gen)
    want = gen.random(start + n)
    np.testing.assert_array_equal(_stochastic.pcg64_uniforms(words, start, n), want[start:])
    high, low = _stochastic.pcg64_advance(words, start + n)
    assert high << 64 | low == gen.bit_generator.state["state"]["state"]


@pytest.mark.parametrize("channels_last", [False, True])
def test_stochastic_draws_advance_the_generator(channels_last):
    """A PCG64 generator ends where drawing the uniforms would leave it,
    its buffered 32-bit half included; other bit generators draw as before."""
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 7))
    xl = _in_layout(x, channels_last)
    for make in (np.random.default_rng, lambda s: np.random.Generator(np.random.MT19937(s))):
        ours, theirs = make(5), make(5)
        ours.random(dtype=np.float32)  # leaves half of a 64-bit draw buffered
        theirs.random(dtype=np.float32)
        got, idx = cypool.stochastic_pool2d(xl, 2, rng=ours, return_indices=True,
                                            channels_last=channels_last)
        uniforms = theirs.random((2, 3, 3 * 3))
        assert ours.random(dtype=np.float32) == theirs.random(dtype=np.float32)
        np.testing.assert_array_equal(ours.random(3), theirs.random(3))
        # the same draws as explicit uniforms through the kernel
        geom = _args.pool_geometry(2, (6, 7), (2, 2), (2, 2), 0, 1, False)
        lay = _args.layout(xl.shape, 2, channels_last)
        u = np.moveaxis(uniforms, 1, -1) if channels_last else uniforms
        values = np.empty(lay.kernel_shape(geom.out_size))
        indices = np.empty(values.shape, np.int64)
        _stochastic.stochastic_pool_forward(
            xl.reshape(lay.kernel_shape(lay.spatial)), np.ascontiguousarray(u).reshape(values.shape),
            values, indices, geom.for_kernel(), True, channels_last, 1)
        np.testing.assert_array_equal(got.reshape(values.shape), values)
        np.testing.assert_array_equal(idx.reshape(values.shape), indices)


@st.composite
def stochastic_geometries(draw):
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    spatial = tuple(draw(st.integers(k, k + 9)) for k in kernel)
    return (nd, kernel, stride, padding, spatial, draw(st.integers(0, 2)),
            draw(st.integers(1, 3)), draw(st.booleans()), draw(st.sampled_from([1, 2, 3])))


def _stochastic_run(x, lay, geom, training, threads, naive, uniforms=None, stream=None,
                    simd=True):
    out_shape = lay.kernel_shape(geom.out_size)
    values = np.empty(out_shape, x.dtype)
    indices = np.empty(out_shape, np.int64) if training else None
    _stochastic.stochastic_pool_forward(x.reshape(lay.kernel_shape(lay.spatial)), uniforms, values,
                                        indices, geom.for_kernel(), training, lay.channels_last,
                                        threads, stream, naive, simd)
    return values, indices


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(params=stochastic_geometries(), seed=st.integers(0, 2**32 - 1))
def test_stochastic_fast_equals_naive(dtype, params, seed):
    """The vector path takes the same elements and gives the same means as the
    window-by-window loop (the same float64 sums), from drawn or given uniforms."""
    nd, kernel, stride, padding, spatial, n, c, channels_last, threads = params
    geom = _args.pool_geometry(nd, spatial, kernel, stride, padding, 1, False)
    rng = np.random.default_rng(seed)
    shape = _shape(spatial, n, c, channels_last)
    x = _values(rng, shape, dtype)
    x[rng.random(shape) < 0.05] = np.inf
    x[rng.random(shape) < 0.05] = 3e38 if dtype == np.float32 else 1e308
    lay = _args.layout(shape, nd, channels_last)
    words = _stream(rng)
    for training in (True, False):
        fast = _stochastic_run(x, lay, geom, training, threads, False, stream=words)
        slow = _stochastic_run(x, lay, geom, training, threads, True, stream=words)
        for a, b in zip(fast, slow):
            np.testing.assert_array_equal(a, b)
    u = rng.random(lay.kernel_shape(geom.out_size))
    fast = _stochastic_run(x, lay, geom, True, threads, False, uniforms=u)
    slow = _stochastic_run(x, lay, geom, True, threads, True, uniforms=u)
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)


# Rows of whole windows (the AVX2 lane kernels along W, or along C channels-last,
# and the vector loops they leave), border windows of padding, strides the lanes
# do not take, 1-D planes of one row, 3-D windows, and channels-last rows longer
# than a drawing block.  nd, spatial, kernel, stride, padding.
STOCHASTIC_LANE_CASES = [
    (2, (12, 42), 2, 2, 0),
    (2, (13, 42), 2, 2, 1),
    (2, (15, 43), 3, 2, 1),
    (2, (9, 37), 3, 2, 0),
    (2, (7, 30), 2, 1, 0),
    (2, (7, 30), 3, 1, 1),
    (2, (8, 40), (2, 3), (2, 3), 0),
    (2, (6, 80), (1, 2), (1, 2), 0),
    (2, (6, 40), 1, 1, 0),
    (2, (10, 150), 2, 2, 0),
    (1, (70,), 2, 2, 0),
    (1, (71,), 3, 2, 1),
    (3, (5, 6, 30), 2, 2, 0),
]


def _stochastic_lane_input(rng, shape, dtype):
    """:func:`_values` with +inf, values whose sums overflow, and whole rows of
    zeros and of negatives (windows with S = 0)."""
    x = _values(rng, shape, dtype)
    x[rng.random(shape) < 0.03] = np.inf
    x[rng.random(shape) < 0.03] = 3e38 if dtype == np.float32 else 1e308
    flat = x.reshape(-1, shape[-1])
    rows = rng.random(flat.shape[0])
    flat[rows < 0.1] = 0
    flat[(rows >= 0.1) & (rows < 0.2)] = -1.5
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("case", STOCHASTIC_LANE_CASES)
def test_stochastic_lanes_equal_general_loop(dtype, channels_last, case):
    """With and without the lane kernels the fast paths take the same elements
    (and give the same means) as the window-by-window loop, from drawn or
    given uniforms (0 and the largest below 1 among them), on 1, 2 or 3
    threads, through NaN, infinities, overflow and windows with S = 0."""
    nd, spatial, kernel, stride, padding = case
    geom = _args.pool_geometry(nd, spatial, kernel, stride, padding, 1, False)
    rng = np.random.default_rng(sum(spatial) + nd)
    channels = 70 if channels_last else 3   # 70: a block of 64, a lane group and 2 more
    shape = _shape(spatial, 2, channels, channels_last)
    x = _stochastic_lane_input(rng, shape, dtype)
    lay = _args.layout(shape, nd, channels_last)
    words = _stream(rng)
    u = rng.random(lay.kernel_shape(geom.out_size))
    u.reshape(-1)[::7] = 0.0
    u.reshape(-1)[3::7] = np.nextafter(1.0, 0.0)
    for training, uniforms, stream in ((True, None, words), (True, u, None),
                                       (False, None, None)):
        want = _stochastic_run(x, lay, geom, training, 1, True, uniforms, stream)
        for threads in (1, 2, 3):
            for simd in (True, False):
                got = _stochastic_run(x, lay, geom, training, threads, False, uniforms, stream,
                                      simd)
                for a, b in zip(got, want):
                    np.testing.assert_array_equal(a, b)
                np.testing.assert_array_equal(np.signbit(got[0]), np.signbit(want[0]))


# -------------------------------------------------------------- fractional

@pytest.mark.parametrize("dtype", DTYPES_MAX)
@given(batch=batches(max_size=14), kernel=st.lists(st.integers(1, 4), min_size=3, max_size=3),
       seed=st.integers(0, 2**32 - 1))
def test_fractional_fast_equals_naive(dtype, batch, kernel, seed):
    """The sliding-maximum paths (rows, or small planes whole when no indices
    are asked for) take every window's first maximum (last NaN) in scan
    order, as the window-by-window loop does."""
    nd, spatial, n, c, channels_last, threads = batch
    if nd == 1:
        return  # fractional pooling is 2-D and 3-D
    rng = np.random.default_rng(seed)
    kernel = tuple(min(k, size) for k, size in zip(kernel, spatial))
    out_spatial = tuple(int(rng.integers(1, size - k + 2)) for k, size in zip(kernel, spatial))
    samples = rng.random((n * c, nd))
    starts = _fractional.window_starts(samples, spatial, out_spatial, kernel)
    x = _values(rng, _shape(spatial, n, c, channels_last), dtype)
    lay = _args.layout(x.shape, nd, channels_last)
    kernel3 = (1,) * (3 - nd) + kernel

    def run(naive, with_index, whole_plane):
        values = np.empty(lay.kernel_shape(out_spatial), dtype)
        indices = np.empty(values.shape, np.int64) if with_index else None
        default = _fractional.whole_plane_limit()
        _fractional.whole_plane_limit(whole_plane)
        try:
            _fractional.fractional_max_pool_forward(
                x.reshape(lay.kernel_shape(lay.spatial)), values, indices, starts, kernel3,
                channels_last, threads, naive)
        finally:
            _fractional.whole_plane_limit(default)
        return values, indices

    want, want_at = run(True, True, 0)
    for with_index, whole_plane in ((True, 0), (False, 0), (False, 1 << 30)):
        got, got_at = run(False, with_index, whole_plane)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
        if with_index:
            np.testing.assert_array_equal(got_at, want_at)


@pytest.mark.parametrize("dtype", DTYPES_MAX)
@pytest.mark.parametrize("spatial, out_spatial, kernel", [
    ((12, 14), (6, 7), (2, 2)),        # alpha 2: every channel has the same windows
    ((13, 11), (5, 4), (3, 2)),        # alpha 2.5 and 3
    ((9, 10), (4, 6), (3, 3)),         # fractional alpha: the channels' windows differ
    ((5, 6, 7), (2, 3, 3), (2, 2, 3)),
    ((9, 8, 7), (4, 3, 3), (2, 2, 2)),  # depths of 4 windows: their starts vary by channel
])
@pytest.mark.parametrize("threads", [1, 2])
def test_fractional_channels_last_blocks(simd_level, dtype, spatial, out_spatial, kernel, threads):
    """Channels-last rows, 70 channels (a block of 64 and one of 6): the
    blocks whose channels share a window take _simd.h's channel vectors, the
    others a tap at a time; both as the window-by-window loop, indices too."""
    rng = np.random.default_rng(len(spatial) * 100 + kernel[0])
    n, c = 2, 70
    nd = len(spatial)
    samples = rng.random((n * c, nd))
    samples[: n * c // 2] = samples[0]   # half the channels with equal samples
    starts = _fractional.window_starts(samples, spatial, out_spatial, kernel)
    x = _values(rng, _shape(spatial, n, c, True), dtype)
    lay = _args.layout(x.shape, nd, True)
    kernel3 = (1,) * (3 - nd) + kernel

    def run(naive, with_index):
        values = np.empty(lay.kernel_shape(out_spatial), dtype)
        indices = np.empty(values.shape, np.int64) if with_index else None
        _fractional.fractional_max_pool_forward(
            x.reshape(lay.kernel_shape(lay.spatial)), values, indices, starts, kernel3, True,
            threads, naive)
        return values, indices

    want, want_at = run(True, True)
    for with_index in (True, False):
        got, got_at = run(False, with_index)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
        if with_index:
            np.testing.assert_array_equal(got_at, want_at)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", NORMS)
@given(params=lp_geometries(), seed=st.integers(0, 2**32 - 1))
def test_lp_backward_fast_equals_naive(dtype, p, params, seed):
    """The channels-first backward with separable window totals and a row of
    ``x**(p-1)`` at a time against the window-by-window loop."""
    nd, kernel, stride, ceil_mode, spatial, n, c, _channels_last, threads = params
    geom = _args.pool_geometry(nd, spatial, kernel, stride, 0, 1, ceil_mode)
    rng = np.random.default_rng(seed)
    shape = (n, c) + spatial
    x = (np.abs(rng.standard_normal(shape)) + 0.25).astype(dtype)
    lay = _args.layout(shape, nd, False)
    grad = rng.standard_normal(lay.kernel_shape(geom.out_size)).astype(dtype)
    results = []
    for naive in (False, True):
        grad_in = np.empty(lay.kernel_shape(lay.spatial), dtype)
        _lp.lp_pool_backward(grad, x.reshape(grad_in.shape), grad_in, geom.for_kernel(), p,
                             False, threads, naive)
        results.append(grad_in)
    # windows' gradients of either sign add up: tolerances relative to the largest
    tol = _close(dtype, 8)["rtol"]
    np.testing.assert_allclose(results[0], results[1], rtol=tol,
                               atol=tol * max(1.0, float(np.abs(results[1]).max(initial=0))))


def _lp_backward_run(grad, x, lay, geom, p, threads, naive):
    grad_in = np.empty(lay.kernel_shape(lay.spatial), x.dtype)
    _lp.lp_pool_backward(grad.reshape(lay.kernel_shape(geom.out_size)),
                         x.reshape(grad_in.shape), grad_in, geom.for_kernel(), p, False,
                         threads, naive)
    return grad_in.reshape(x.shape)


#: (spatial, kernel, stride, ceil_mode): disjoint windows (each element in at
#: most one: k2 s2, gaps between windows, a clipped last window, rows and
#: columns in no window) and overlapping ones.
LP_BACKWARD_SPECIAL = [((6, 8), 2, 2, False), ((7, 9), 2, 3, False), ((7, 9), (2, 3), 3, True),
                       ((5, 11), (1, 2), (2, 2), True), ((6, 8), 3, 2, True), ((6, 8), 2, 1, False)]


@pytest.mark.parametrize("p", NORMS[:-1])
@pytest.mark.parametrize("case", LP_BACKWARD_SPECIAL)
def test_lp_backward_fast_special_values(p, case):
    """The backward's fast paths (disjoint windows written once, overlapping
    ones spread) against the window-by-window loop on zero, signed-zero,
    infinite, NaN and negative inputs and zero gradients: 0 where an
    element's gradient sum or its window's mean is 0, as the loop has it."""
    spatial, kernel, stride, ceil_mode = case
    geom = _args.pool_geometry(2, spatial, kernel, stride, 0, 1, ceil_mode)
    rng = np.random.default_rng(NORMS.index(p))
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, -2.5, 1e-40, 3e38, 0.7])
    for dtype in (np.float32, np.float64):
        x = rng.choice(specials, size=(2, 3) + spatial).astype(dtype)
        x[0, 0] = 0.0                                  # windows whose mean is 0
        x[0, 1] = np.abs(rng.standard_normal(spatial)) + 0.5
        lay = _args.layout(x.shape, 2, False)
        grad = rng.choice([0.0, -0.0, 1.5, -2.0, np.nan],
                          size=(2, 3) + tuple(geom.out_size)).astype(dtype)
        want = _lp_backward_run(grad, x, lay, geom, p, 1, True)
        for threads in (1, 2):
            got = _lp_backward_run(grad, x, lay, geom, p, threads, False)
            np.testing.assert_allclose(got, want, equal_nan=True, **_close(dtype, 8))
            # the zeros are the loop's zeros, not a product that happened to be small
            np.testing.assert_array_equal(got == 0, want == 0)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, 0.5, 1.5])
@pytest.mark.parametrize("spatial, kernel, stride, ceil_mode", LP_BACKWARD_SPECIAL + [
    ((13,), 3, 2, True), ((4, 5, 6), 2, 2, False), ((5, 6, 7), (3, 2, 2), (2, 1, 2), True)])
def test_lp_backward_channels_last_rows_bit_exact(p, spatial, kernel, stride, ceil_mode):
    """The channels-last backward an input row at a time (the windows' slopes
    first, then each row zeroed, added into in window order and multiplied by
    its x**(p-1)) has the bits of the window-by-window loop: 70 channels (a
    block of 64 and one of 6), zeros, signed zeros, infinities, NaN and
    negative inputs, zero gradients, 1 and 2 threads."""
    nd = len(spatial)
    geom = _args.pool_geometry(nd, spatial, kernel, stride, 0, 1, ceil_mode)
    rng = np.random.default_rng(len(spatial) * 10 + int(p * 10))
    specials = np.array([0.0, -0.0, np.inf, np.nan, -1.0, 1e-40, 0.7, 1.3, 2.0, 0.2])
    for dtype in (np.float32, np.float64):
        x = rng.choice(specials, size=_shape(spatial, 2, 70, True)).astype(dtype)
        x[1] = np.abs(rng.standard_normal(x.shape[1:])) + 0.5   # a batch element of plain values
        lay = _args.layout(x.shape, nd, True)
        grad = rng.choice([0.0, -0.0, 1.5, -2.0, 0.3],
                          size=lay.kernel_shape(geom.out_size)).astype(dtype)

        def run(threads, naive):
            grad_in = np.full(lay.kernel_shape(lay.spatial), 7.0, dtype)   # every element written
            _lp.lp_pool_backward(grad, x.reshape(grad_in.shape), grad_in, geom.for_kernel(), p,
                                 True, threads, naive)
            return grad_in

        want = run(1, True)
        numbers = ~np.isnan(want)   # (a NaN's sign is whichever operand gcc put first)
        for threads in (1, 2):
            got = run(threads, False)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(np.signbit(got[numbers]), np.signbit(want[numbers]))


@pytest.mark.parametrize("p", [2.0, 3.0, 1.5, 0.5])
@pytest.mark.parametrize("spatial", [(11,), (9, 10), (5, 6, 7)])
def test_lp_channels_last_wide_equals_channels_first(p, spatial):
    """Channels-last LP forward and backward with 300 channels (powers taken
    256 channels at a time, channel blocks of 64 and a partial one) against
    the channels-first results moved to channels-last."""
    nd = len(spatial)
    rng = np.random.default_rng(nd * 10 + int(p * 10))
    x = (np.abs(rng.standard_normal((2, 300) + spatial)) + 0.1).astype(np.float32)
    pool = getattr(cypool, f"lp_pool{nd}d")
    backward = getattr(cypool, f"lp_pool{nd}d_backward")
    want = pool(x, p, 3, 2)
    grad = rng.standard_normal(want.shape).astype(np.float32)
    want_grad = backward(grad, x, p, 3, 2)
    xl, gl = (np.ascontiguousarray(np.moveaxis(a, 1, -1)) for a in (x, grad))
    got = np.moveaxis(pool(xl, p, 3, 2, channels_last=True), -1, 1)
    got_grad = np.moveaxis(backward(gl, xl, p, 3, 2, channels_last=True), -1, 1)
    np.testing.assert_allclose(got, want, **_close(np.float32, 4))
    # windows' gradients of either sign add up: a tolerance relative to the largest
    tol = _close(np.float32, 8)["rtol"]
    np.testing.assert_allclose(got_grad, want_grad, rtol=tol,
                               atol=tol * float(np.abs(want_grad).max()))


# ------------------------------------------------------- LP, small planes

#: (spatial, kernel, stride, ceil_mode): 7x7, 8x8, 14x14, odd, clipped
#: ceil-mode windows, 1-D and 3-D planes, all under the small-plane limit.
LP_SMALL = [((7, 7), 2, 2, False), ((7, 7), 3, 2, False), ((7, 7), 3, 2, True),
            ((8, 8), 2, 2, False), ((14, 14), 2, 2, False), ((9, 5), (2, 3), (2, 1), True),
            ((1, 1), 1, 1, False), ((3, 11), 3, 2, True), ((16, 16), 2, 2, False),
            ((13,), 3, 2, True), ((4, 5, 6), 2, 2, True)]

#: Exponents whose powers and roots both paths take alike, so that integer
#: data (exact sums in any order) gives the naive loop's bits: float32 takes
#: vector powers where the naive loop calls powf, float64 pow in both.
LP_EXACT = {np.float32: [1.0, 2.0, math.inf], np.float64: [1.0, 2.0, 3.0, 4.0, 7.0, math.inf]}


def _lp_small_case(case, planes, dtype, p):
    spatial, kernel, stride, ceil_mode = case
    nd = len(spatial)
    geom = _args.pool_geometry(nd, spatial, kernel, stride, 0, 1, ceil_mode)
    rng = np.random.default_rng([planes, nd, len(case[0]) + sum(spatial),
                                 int(p * 10) if p != math.inf else 99])
    return nd, geom, rng


def _assert_identical(got, want):
    np.testing.assert_array_equal(got, want)
    numbers = ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(got[numbers]), np.signbit(want[numbers]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("case", LP_SMALL)
@pytest.mark.parametrize("planes", [1, 15, 16, 17, 40])
def test_lp_small_planes_equal_naive(simd_level, dtype, p, case, planes):
    """The small-plane path (planes transposed side by side) against the
    naive loop, with partial blocks of planes, NaN, infinities and signed
    zeros, at 1 and 2 threads: bit for bit on integer data where both take
    the same powers, else within the powers' last bits."""
    nd, geom, rng = _lp_small_case(case, planes, dtype, p)
    exact = p in LP_EXACT[dtype]
    shape = (1, planes) + case[0]
    x = rng.integers(-3, 4, size=shape).astype(dtype)
    if not exact:
        # no cancelling sums, so that relative tolerances hold
        x = np.abs(x + rng.standard_normal(shape)).astype(dtype)
    noise = rng.random(shape)
    x[noise < 0.03] = np.nan
    x[(noise >= 0.03) & (noise < 0.05)] = np.inf
    x[(noise >= 0.05) & (noise < 0.06)] = -np.inf
    x.reshape(-1)[::7] = -0.0
    x[0, 0] = -0.0  # a whole plane of negative zeros
    lay = _args.layout(x.shape, nd, False)
    want = _lp_run(x, lay, geom, p, 1, True)
    for threads in (1, 2):
        got = _lp_run(x, lay, geom, p, threads, False)
        if exact:
            _assert_identical(got, want)
        else:
            np.testing.assert_allclose(got, want, equal_nan=True, **_close(dtype, 4))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("case", [c for c in LP_SMALL if not c[3]])
@pytest.mark.parametrize("planes", [3, 17])
def test_lp_small_planes_equal_separable(dtype, p, case, planes):
    """Small planes give the bits the same planes give inside planes too
    large for the small-plane path (the separable path): a plane's results
    must not depend on its size (dask computes chunks with halos)."""
    nd, geom, rng = _lp_small_case(case, planes, dtype, p)
    spatial = case[0]
    x = _values(rng, (1, planes) + spatial, dtype)
    # zeros after the last window along every axis: the same windows and more
    big = tuple(n + 20 for n in spatial)
    padded = np.zeros((1, planes) + big, dtype)
    padded[(slice(None), slice(None)) + tuple(slice(0, n) for n in spatial)] = x
    big_geom = _args.pool_geometry(nd, big, case[1], case[2], 0, 1, False)
    for threads in (1, 2):
        got = _lp_run(x, _args.layout(x.shape, nd, False), geom, p, threads, False)
        whole = _lp_run(padded, _args.layout(padded.shape, nd, False), big_geom, p, threads,
                        False)
        _assert_identical(got, whole[(slice(None), slice(None))
                                     + tuple(slice(0, n) for n in geom.out_size)])
