"""Every fast path against the naive general kernel kept beside it.

The kernels take ``naive=True`` to force the general loops; random geometry
(hypothesis) and random data must give identical results (max) or results
equal up to the order of float additions (average).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cypool import _adaptive, _args, _avg, _max
import reference_reduce as rr
from conftest import WITH_FIXTURE


def _geometry(*args):
    """``pool_geometry(*args)``, or None where it rejects the window (the loops
    below skip those sizes)."""
    try:
        return _args.pool_geometry(*args)
    except ValueError:
        return None


@st.composite
def geometries(draw, average=False):
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 5)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    dilation = (1,) * nd if average else tuple(draw(st.integers(1, 3)) for _ in range(nd))
    padding = draw(st.one_of(
        st.just("same"), st.just("valid"),
        st.tuples(*[st.integers(0, k // 2) for k in kernel])))
    ceil_mode = draw(st.booleans())
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    spatial = tuple(draw(st.integers(max(1, s - 2), s + 12)) for s in spans)
    batch = draw(st.integers(0, 2))
    channels = draw(st.integers(1, 5))
    channels_last = draw(st.booleans())
    threads = draw(st.sampled_from([1, 2, 3]))
    return nd, kernel, stride, padding, dilation, ceil_mode, spatial, batch, channels, channels_last, threads


def _prepare(params, dtype, seed):
    nd, kernel, stride, padding, dilation, ceil_mode, spatial, batch, channels, cl, threads = params
    geom = _geometry(nd, spatial, kernel, stride, padding, dilation, ceil_mode)
    if geom is None:
        return None
    shape = (batch,) + spatial + (channels,) if cl else (batch, channels) + spatial
    lay = _args.layout(shape, nd, cl)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind in "iu":
        x = rng.integers(0, 4, size=shape)
    else:
        x[rng.random(shape) < 0.1] = np.nan
    x = x.astype(dtype)
    return geom, lay, x, cl, threads


def _run_max(geom, lay, x, cl, threads, naive):
    out_shape = lay.kernel_shape(geom.out_size)
    values = np.empty(out_shape, x.dtype)
    indices = np.empty(out_shape, np.int64)
    _max.max_pool_forward(x.reshape(lay.kernel_shape(lay.spatial)), values, indices,
                          geom.for_kernel(), cl, threads, naive)
    only = np.empty(out_shape, x.dtype)
    _max.max_pool_forward(x.reshape(lay.kernel_shape(lay.spatial)), only, None,
                          geom.for_kernel(), cl, threads, naive)
    return values, indices, only


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint8])
@given(params=geometries(), seed=st.integers(0, 2**32 - 1))
@WITH_FIXTURE
def test_max_fast_equals_naive(lanes, dtype, params, seed):
    prepared = _prepare(params, dtype, seed)
    if prepared is None:
        return
    fast = _run_max(*prepared, naive=False)
    slow = _run_max(*prepared, naive=True)
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fast[0], fast[2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(params=geometries(average=True), seed=st.integers(0, 2**32 - 1),
       include_pad=st.booleans(), override=st.sampled_from([0, 0, 3, -5]))
@WITH_FIXTURE
def test_avg_fast_equals_naive(lanes, dtype, params, seed, include_pad, override):
    prepared = _prepare(params, dtype, seed)
    if prepared is None:
        return
    geom, lay, x, cl, threads = prepared
    x = np.nan_to_num(x)
    results = []
    for naive in (False, True):
        out = np.empty(lay.kernel_shape(geom.out_size), x.dtype)
        _avg.avg_pool_forward(x.reshape(lay.kernel_shape(lay.spatial)), out, geom.for_kernel(),
                              include_pad, override, cl, threads, naive)
        results.append(out)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(results[0], results[1], rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(params=geometries(average=True), seed=st.integers(0, 2**32 - 1),
       include_pad=st.booleans(), override=st.sampled_from([0, 0, 2, -3]))
@WITH_FIXTURE
def test_avg_backward_fast_equals_naive(lanes, dtype, params, seed, include_pad, override):
    prepared = _prepare(params, dtype, seed)
    if prepared is None:
        return
    geom, lay, x, cl, threads = prepared
    grad = np.random.default_rng(seed).standard_normal(lay.kernel_shape(geom.out_size)).astype(dtype)
    results = []
    for naive in (False, True):
        grad_in = np.full(lay.kernel_shape(lay.spatial), np.nan, dtype)
        _avg.avg_pool_backward(grad, grad_in, geom.for_kernel(), include_pad, override, cl,
                               threads, naive)
        results.append(grad_in)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(results[0], results[1], rtol=tol, atol=tol)


#: Channels-first average windows on planes too large for the lanes, 1-D to 3-D
#: (the separable forward and backward, stride-2 rows, clipped and ceil-mode
#: windows): nd, spatial, kernel, stride, padding, ceil_mode.
LARGE_AVERAGE_CASES = [
    (2, (40, 40), 3, 2, 1, False), (2, (40, 41), 2, 2, 0, True), (2, (33, 37), 3, 1, 1, True),
    (2, (35, 38), (5, 3), (2, 3), (2, 1), False), (1, (300,), 3, 2, 1, True),
    (3, (6, 20, 21), 3, 2, 1, False),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", LARGE_AVERAGE_CASES)
def test_avg_large_planes_equal_naive(lanes, dtype, case):
    """Average pooling forward and backward on planes too large for the lanes
    (and, with the lanes off, the same paths on the small ones) against the
    general loops, within rounding (the separable passes add in another
    order), every divisor rule, 1 and 2 threads."""
    nd, spatial, kernel, stride, padding, ceil_mode = case
    geom = _geometry(nd, spatial, kernel, stride, padding, 1, ceil_mode)
    rng = np.random.default_rng(sum(spatial))
    x = rng.standard_normal((2, 3) + spatial).astype(dtype)
    x[rng.random(x.shape) < 0.2] = -0.0
    lay = _args.layout(x.shape, nd, False)
    kernel_x = x.reshape(lay.kernel_shape(lay.spatial))
    grad = rng.standard_normal(lay.kernel_shape(geom.out_size)).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for include_pad, override in ((True, 0), (False, 0), (True, 5)):
        for threads in (1, 2):
            forward, backward = [], []
            for naive in (False, True):
                out = np.full(lay.kernel_shape(geom.out_size), np.nan, dtype)
                _avg.avg_pool_forward(kernel_x, out, geom.for_kernel(), include_pad, override,
                                      False, threads, naive)
                forward.append(out)
                grad_in = np.full(kernel_x.shape, np.nan, dtype)
                _avg.avg_pool_backward(grad, grad_in, geom.for_kernel(), include_pad, override,
                                       False, threads, naive)
                backward.append(grad_in)
            message = f"{case} {include_pad} {override} threads {threads}"
            np.testing.assert_allclose(*forward, rtol=tol, atol=tol, err_msg=message)
            np.testing.assert_allclose(*backward, rtol=tol, atol=tol, err_msg=message)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("in_size, out_size", [
    ((1, 40, 40), (1, 7, 9)), ((1, 33, 70), (1, 11, 7)), ((1, 1, 3000), (1, 1, 37)),
    ((3, 20, 21), (2, 5, 4)), ((1, 64, 64), (1, 16, 16)),
])
def test_adaptive_average_columns_equal_naive(lanes, dtype, in_size, out_size):
    """The adaptive average's column path (planes too large for the lanes, or
    any with the lanes off), forward and backward, against the general loops
    within rounding."""
    rng = np.random.default_rng(sum(in_size) + sum(out_size))
    x = rng.standard_normal((5,) + in_size).astype(dtype)
    x[rng.random(x.shape) < 0.2] = -0.0
    grad = rng.standard_normal((5,) + out_size).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    forward, backward = [], []
    for naive in (False, True):
        out = np.full((5,) + out_size, np.nan, dtype)
        _adaptive.adaptive_avg_forward(x, out, in_size, out_size, False, 2, naive)
        forward.append(out)
        grad_in = np.full(x.shape, np.nan, dtype)
        _adaptive.adaptive_avg_backward(grad, grad_in, in_size, out_size, False, 2, naive)
        backward.append(grad_in)
    np.testing.assert_allclose(*forward, rtol=tol, atol=tol)
    np.testing.assert_allclose(*backward, rtol=tol, atol=tol)


def _signed_data(rng, shape, dtype):
    """Values with ties between -0.0 and 0.0 and NaNs of two payloads, so that
    "the first of equals wins" and "which NaN won" are visible in the bits."""
    bits = np.uint32 if dtype == np.float32 else np.uint64
    x = rng.integers(-2, 2, size=shape).astype(dtype)
    x[rng.random(x.shape) < 0.3] = -0.0
    nan_at = rng.random(x.shape) < 0.05
    x[nan_at] = np.where(rng.random(nan_at.sum()) < 0.5, np.nan, -np.nan)
    x.view(bits)[nan_at & (rng.random(x.shape) < 0.5)] |= 1
    return x, bits


def _max_fast_and_naive(x, nd, geom, with_indices=False):
    """Max pooling of channels-first ``x`` by the fast paths and by the general
    loop: (values, indices or None) of each, ``x`` passed at its exact size (a
    read past the last window would leave the buffer)."""
    lay = _args.layout(x.shape, nd, False)
    out_shape = lay.kernel_shape(geom.out_size)
    kernel_x = x.reshape(lay.kernel_shape(lay.spatial)).copy()
    results = []
    for naive in (False, True):
        values = np.empty(out_shape, x.dtype)
        indices = np.empty(out_shape, np.int64) if with_indices else None
        _max.max_pool_forward(kernel_x, values, indices, geom.for_kernel(), False, 1, naive)
        results.append((values, indices))
    return results


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("width", [2, 3])
def test_max_stride2_rows_bit_exact(simd_level, lanes, dtype, nd, width):
    """The hand-vectorised rows (windows 2 or 3 wide, stride 2) equal the general
    loop bit for bit:
    ties between -0.0 and 0.0 keep the first in scan order, the last NaN wins."""
    rng = np.random.default_rng(nd * 10 + simd_level)
    for size in list(range(3, 24)) + [31, 64, 67]:
        for padding, ceil_mode in [(0, False), (1, False), (0, True), (1, True)]:
            spatial = (4,) * (nd - 1) + (size,)
            x, bits = _signed_data(rng, (2, 3) + spatial, dtype)
            geom = _args.pool_geometry(nd, spatial, width, 2, padding, 1, ceil_mode)
            (fast, _), (slow, _) = _max_fast_and_naive(x, nd, geom)
            np.testing.assert_array_equal(fast.view(bits), slow.view(bits),
                                          err_msg=f"size {size} padding {padding} ceil {ceil_mode}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nd", [1, 2])
def test_max_stride1_rows_bit_exact(simd_level, lanes, dtype, nd):
    """The stride-1 rows (any kernel and dilation, each output's taps in a
    register, the row's last vector taken again ending at the row's end) equal
    the general loop bit for bit, in rows of every length around the vector
    widths; 1-D planes go through the rows path in blocks of planes (37 of
    them: a partial block), with rows as long as their input's ("same"
    padding: 3/1/1, 5/1/2, 2/2/1) as one run of the rows end to end and
    their clipped windows a column at a time."""
    rng = np.random.default_rng(nd + 10 * simd_level)
    for size in list(range(1, 21)) + [31, 33, 100]:
        for kernel, dilation, padding in [(2, 1, 0), (3, 1, 1), (3, 2, 1), (4, 3, 2), (5, 1, 2),
                                          (2, 2, 1)]:
            spatial = (3,) * (nd - 1) + (size,)
            geom = _geometry(nd, spatial, kernel, 1, padding, dilation, False)
            if geom is None:
                continue
            x, bits = _signed_data(rng, (37, 1) + spatial, dtype)
            (fast, _), (slow, _) = _max_fast_and_naive(x, nd, geom)
            np.testing.assert_array_equal(fast.view(bits), slow.view(bits),
                                          err_msg=f"size {size} kernel {kernel} dilation {dilation}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nd", [1, 2])
def test_max_plain_rows_bit_exact(simd_level, lanes, dtype, nd):
    """Rows of windows 2 or 3 wide at stride 1 without a NaN take plain maxima
    (the earlier of equals kept), with a sum of the row as the probe; a NaN
    anywhere in a window's reach, or infinities of both signs, sends the row
    back to the picks.  Bit for bit the general loop's: NaN-free rows with
    ties of -0.0 and 0.0, then one NaN at each place of the row (the last
    taps past the vectors' first ones included), then both infinities."""
    rng = np.random.default_rng(nd + 10 * simd_level)
    for size in [8, 9, 15, 16, 17, 33, 100]:
        for kernel, dilation, padding in [(3, 1, 1), (2, 1, 0), (3, 2, 2), (3, 1, 0), (2, 3, 1)]:
            spatial = (3,) * (nd - 1) + (size,)
            geom = _geometry(nd, spatial, kernel, 1, padding, dilation, False)
            if geom is None:
                continue
            x, bits = _signed_data(rng, (5, 1) + spatial, dtype)
            x[np.isnan(x)] = np.inf
            trials = [x]
            for at in sorted({0, size // 2, size - 3, size - 2, size - 1} - {-1, -2, -3}):
                y = x.copy()
                y[1, 0, ..., at] = np.nan
                trials.append(y)
            y = -np.abs(x)
            y[2, 0, ..., size - 1] = np.inf
            trials.append(y)
            for y in trials:
                (fast, _), (slow, _) = _max_fast_and_naive(y, nd, geom)
                np.testing.assert_array_equal(fast.view(bits), slow.view(bits),
                                              err_msg=f"size {size} kernel {kernel} dilation {dilation}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nd", [2, 3])
def test_max_separable_padded_rows_bit_exact(simd_level, lanes, dtype, nd):
    """Large windows at stride 1 go separable; values alone, the row pass pads
    each row with -inf so that the clipped windows take the vector loop too (a
    pad tap never wins).  Equal to the general loop bit for bit, with -inf,
    signed zeros and NaNs of two payloads in the data, ceil mode windows past
    the padding, and the clipped windows' path (with indices) beside it."""
    rng = np.random.default_rng(nd + 10 * simd_level)
    for size in [5, 8, 9, 13, 16, 17, 33, 40]:
        for kernel, dilation, padding, ceil_mode in [(7, 1, 3, False), (9, 1, 4, False),
                                                     (5, 2, 4, False), (6, 1, 2, True),
                                                     (5, 1, 1, True), (8, 1, 4, False)]:
            spatial = (6,) * (nd - 1) + (size,)
            geom = _geometry(nd, spatial, kernel, 1, padding, dilation, ceil_mode)
            if geom is None:
                continue
            x, bits = _signed_data(rng, (3, 2) + spatial, dtype)
            x[rng.random(x.shape) < 0.05] = -np.inf
            for with_indices in (False, True):
                (fast, fast_at), (slow, slow_at) = _max_fast_and_naive(x, nd, geom, with_indices)
                msg = f"size {size} kernel {kernel} dilation {dilation} padding {padding}"
                np.testing.assert_array_equal(fast.view(bits), slow.view(bits), err_msg=msg)
                if with_indices:
                    np.testing.assert_array_equal(fast_at, slow_at, err_msg=msg)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_strided_rows_bit_exact(simd_level, lanes, dtype, nd):
    """Windows at a stride of 3 or more (values alone: maxima in any order,
    windows with a NaN or a zero maximum scanned again in order; 4 wide at
    stride 4 in whole vectors) equal the general loop bit for bit: the first
    of -0.0 and 0.0, the last NaN, in rows of every length around the vector
    widths, with and without padding and ceil mode."""
    rng = np.random.default_rng(nd + 10 * simd_level)
    for size in list(range(3, 30)) + [67, 100]:
        for kernel, stride, padding in [(4, 4, 0), (4, 4, 2), (3, 3, 1), (2, 3, 0), (5, 3, 2),
                                        (4, 5, 1), (8, 8, 0), (6, 3, 0)]:
            for ceil_mode in (False, True):
                spatial = (5,) * (nd - 1) + (size,)
                geom = _geometry(nd, spatial, kernel, stride, padding, 1, ceil_mode)
                if geom is None:
                    continue
                x, bits = _signed_data(rng, (37, 1) + spatial, dtype)
                (fast, _), (slow, _) = _max_fast_and_naive(x, nd, geom)
                np.testing.assert_array_equal(
                    fast.view(bits), slow.view(bits),
                    err_msg=f"size {size} kernel {kernel} stride {stride} padding {padding}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("planes", [1, 5, 16, 17, 40])
def test_small_planes_in_lanes_bit_exact(simd_level, dtype, planes):
    """Small planes pooled 16 side by side (transposed into lanes and back)
    equal the general loop bit for bit, values and indices, whatever the
    number of planes (a partial block of lanes pools zeros it does not write)."""
    assert _max.small_plane_limit() == 1024
    rng = np.random.default_rng(planes + 100 * simd_level)
    for nd, spatial, kernel, stride, padding, dilation, ceil_mode in [
            (2, (14, 14), 3, 2, 1, 1, False), (2, (14, 14), 2, 2, 0, 1, False),
            (2, (7, 7), 3, 2, 1, 1, True), (2, (9, 13), (2, 3), (1, 2), (1, 0), (2, 1), True),
            (2, (12, 15), 3, 1, 1, 1, False), (1, (29,), 3, 2, 1, 1, True),
            (1, (15,), 4, 1, 2, 2, False), (3, (5, 6, 7), 2, 2, 0, 1, True),
            (3, (4, 4, 4), 3, 1, 1, 1, False), (2, (1, 1), 1, 1, 0, 1, False),
            (2, (28, 27), 3, 2, 1, 1, False)]:  # 756 elements: overlapping windows only
        x, bits = _signed_data(rng, (planes, 1) + spatial, dtype)
        geom = _args.pool_geometry(nd, spatial, kernel, stride, padding, dilation, ceil_mode)
        assert geom.out_size[-1] < 16 and np.prod(spatial) <= 1024  # the lanes take it
        for with_indices in (True, False):
            (fast, fast_at), (slow, slow_at) = _max_fast_and_naive(x, nd, geom, with_indices)
            np.testing.assert_array_equal(fast.view(bits), slow.view(bits),
                                          err_msg=f"{spatial} kernel {kernel}")
            if with_indices:
                np.testing.assert_array_equal(fast_at, slow_at, err_msg=f"{spatial} kernel {kernel}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [1, 3, 4, 8, 9, 16, 17, 33])
def test_channels_last_register_path_bit_exact(simd_level, dtype, channels):
    """Channels-last windows with the channel vectors in registers equal the
    general per-channel loop (vector level 0): max values and indices, averages."""
    if simd_level == 0:
        pytest.skip("level 0 is the general loop itself")
    rng = np.random.default_rng(channels)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    for nd, spatial, kernel, stride, padding, dilation in [
            (2, (7, 9), 3, 2, 1, 1), (2, (6, 6), 2, 2, 0, 1), (1, (11,), 3, 1, 1, 2),
            (3, (4, 5, 3), 2, 1, 1, 1), (2, (12, 12), 9, 1, 4, 1)]:  # 81 taps: the general loop
        x = rng.integers(-2, 2, size=(2,) + spatial + (channels,)).astype(dtype)
        x[rng.random(x.shape) < 0.3] = -0.0
        x[rng.random(x.shape) < 0.05] = np.nan
        geom = _args.pool_geometry(nd, spatial, kernel, stride, padding, dilation, False)
        lay = _args.layout(x.shape, nd, True)
        out_shape = lay.kernel_shape(geom.out_size)
        kernel_x = x.reshape(lay.kernel_shape(lay.spatial))
        results = []
        for level in (simd_level, 0):
            _max.simd_level(level)
            _avg.simd_level(level)
            values, indices = np.empty(out_shape, dtype), np.empty(out_shape, np.int64)
            only = np.empty(out_shape, dtype)
            _max.max_pool_forward(kernel_x, values, indices, geom.for_kernel(), True, 1)
            _max.max_pool_forward(kernel_x, only, None, geom.for_kernel(), True, 1)
            averages = np.zeros(out_shape, dtype)
            if dilation == 1:  # the same sums in the same order: equal bits
                _avg.avg_pool_forward(np.nan_to_num(kernel_x), averages, geom.for_kernel(),
                                      True, 0, True, 1)
            results.append((values.view(bits), indices, only.view(bits), averages.view(bits)))
        for fast, general in zip(*results):
            np.testing.assert_array_equal(fast, general, err_msg=f"{nd}-D kernel {kernel}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("width", [2, 3])
def test_avg_stride2_rows_bit_exact(simd_level, lanes, dtype, nd, width):
    """Averages of windows 2 or 3 wide at stride 2, summed straight from their rows
    (vector levels 1 and 2), equal the separable path's (level 0) bit for bit:
    the same additions in the same order, every divisor rule."""
    if simd_level == 0:
        pytest.skip("level 0 is the separable path itself")
    rng = np.random.default_rng(nd * 10 + width)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    for size in list(range(3, 20)) + [31, 64, 67]:
        for padding, ceil_mode, include_pad, override in [
                (0, False, True, 0), (1, False, True, 0), (1, True, False, 0),
                (0, True, True, 3), (1, False, False, -2)]:
            spatial = (4,) * (nd - 1) + (size,)
            x = rng.standard_normal((2, 3) + spatial).astype(dtype)
            x[rng.random(x.shape) < 0.2] = -0.0
            geom = _geometry(nd, spatial, width, 2, padding, 1, ceil_mode)
            if geom is None:
                continue
            lay = _args.layout(x.shape, nd, False)
            out_shape = lay.kernel_shape(geom.out_size)
            kernel_x = x.reshape(lay.kernel_shape(lay.spatial)).copy()
            results = []
            for level in (simd_level, 0):
                _avg.simd_level(level)
                out = np.empty(out_shape, dtype)
                _avg.avg_pool_forward(kernel_x, out, geom.for_kernel(), include_pad, override,
                                      False, 1)
                results.append(out.view(bits))
            np.testing.assert_array_equal(*results, err_msg=f"size {size} padding {padding} "
                                          f"ceil {ceil_mode} {include_pad} {override}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_avg_sums_in_registers_same_bits(simd_level, lanes, dtype, nd):
    """The separable average's sums in registers (rows of windows wider than 3 at
    stride 1, and every output row's window rows with its divisors) give the
    same bits at every vector level, the portable loop's additions in order, and
    stay within rounding of the general loop's."""
    rng = np.random.default_rng(nd * 10 + simd_level)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    for size in list(range(5, 22)) + [40, 67]:
        for kernel, padding, include_pad, override in [
                (4, 2, True, 0), (5, 2, False, 0), (9, 4, True, 0), (9, 4, False, 0),
                (6, 0, True, 7)]:
            spatial = (6,) * (nd - 1) + (size,)
            geom = _geometry(nd, spatial, kernel, 1, padding, 1, False)
            if geom is None:
                continue
            x = rng.standard_normal((2, 3) + spatial).astype(dtype)
            x[rng.random(x.shape) < 0.2] = -0.0
            lay = _args.layout(x.shape, nd, False)
            out_shape = lay.kernel_shape(geom.out_size)
            kernel_x = x.reshape(lay.kernel_shape(lay.spatial)).copy()
            results = []
            for level, naive in ((simd_level, False), (0, False), (simd_level, True)):
                _avg.simd_level(level)
                out = np.empty(out_shape, dtype)
                _avg.avg_pool_forward(kernel_x, out, geom.for_kernel(), include_pad, override,
                                      False, 1, naive)
                results.append(out)
            message = f"size {size} kernel {kernel} {include_pad} {override}"
            np.testing.assert_array_equal(results[0].view(bits), results[1].view(bits),
                                          err_msg=message)
            tol = 1e-5 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(results[0], results[2], rtol=tol, atol=tol, err_msg=message)


def _separable_sums(x, kernel, padding):
    """The separable average's sums (2-D, stride 1), written out in NumPy in its
    order: each row's window from its first tap (a clipped window from 0), then
    the window's row sums from the first."""
    def along_last(a, clipped_from_zero):
        n = a.shape[-1]
        sums = np.empty(a.shape[:-1] + (n + 2 * padding - kernel + 1,), a.dtype)
        for o in range(sums.shape[-1]):
            lo, hi = max(o - padding, 0), min(o - padding + kernel, n)
            from_zero = clipped_from_zero and hi - lo < kernel
            total = np.zeros_like(a[..., 0]) if from_zero else a[..., lo]
            for j in range(lo if from_zero else lo + 1, hi):
                total = total + a[..., j]
            sums[..., o] = total
        return sums
    rows = along_last(x, True)
    return np.moveaxis(along_last(np.moveaxis(rows, -2, -1), False), -1, -2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_padded_row_sums_same_bits(simd_level, lanes, dtype):
    """Rows of windows wider than 3 at stride 1 with clipped windows are summed
    between runs of +0.0, every window in the vector loop: the same bits as the
    separable order written out (a clipped row window's sum from 0, a full one
    from its first tap), signed zeros (windows of -0.0 alone), NaN and
    infinities included.  The divisor is 1 (divisor_override), so the result
    is the sum itself."""
    rng = np.random.default_rng(simd_level)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    for size in [4, 5, 8, 9, 13, 17, 33, 40]:
        for kernel, padding in [(4, 2), (5, 1), (5, 2), (7, 3), (9, 4), (8, 4)]:
            geom = _geometry(2, (size, size), kernel, 1, padding, 1, False)
            if geom is None:
                continue
            x = rng.integers(-2, 3, size=(2, 3, size, size)).astype(dtype)
            x[rng.random(x.shape) < 0.5] = -0.0
            x[rng.random(x.shape) < 0.02] = np.inf
            x[rng.random(x.shape) < 0.02] = np.nan
            x[0, 0] = -0.0                      # windows of -0.0 alone
            out = np.empty((6,) + geom.out_size, dtype)
            _avg.avg_pool_forward(x.reshape((6, 1, size, size)), out, geom.for_kernel(), True,
                                  1, False, 1, False)
            want = _separable_sums(x, kernel, padding).reshape(out.shape)
            np.testing.assert_array_equal(out.view(bits), want.view(bits),
                                          err_msg=f"size {size} kernel {kernel} padding {padding}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nd", [1, 2])
def test_avg_strided_window_sums_same_bits(simd_level, dtype, nd):
    """Windows at a stride above 2 (or 2 and wider than 3) sum along W as chains
    of eight windows (cy_window_sums): each window's taps left to right, then
    the window rows in order, divided once; bit for bit that order, emulated
    here with one array operation per addition, in rows of 1 to 21 windows."""
    rng = np.random.default_rng(nd + 10 * simd_level)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    _avg.small_plane_limit(0)  # the separable path, not the lanes
    try:
        for kernel, stride in [(7, 7), (4, 4), (3, 3), (2, 3), (5, 3), (4, 2), (14, 14)]:
            for windows in (1, 7, 8, 9, 16, 21):
                size = (windows - 1) * stride + kernel + int(rng.integers(0, stride))
                spatial = (kernel + 2,) * (nd - 1) + (size,)
                geom = _args.pool_geometry(nd, spatial, kernel, stride, 0, 1, False)
                x = rng.standard_normal((2, 3) + spatial).astype(dtype)
                x[rng.random(x.shape) < 0.2] = -0.0
                lay = _args.layout(x.shape, nd, False)
                out = np.empty(lay.kernel_shape(geom.out_size), dtype)
                _avg.avg_pool_forward(x.reshape(lay.kernel_shape(lay.spatial)).copy(), out,
                                      geom.for_kernel(), True, 0, False, 1)
                ow = np.arange(geom.out_size[-1]) * stride
                sums = x[..., ow]
                for j in range(1, kernel):
                    sums = sums + x[..., ow + j]
                if nd == 2:
                    oh = np.arange(geom.out_size[0]) * stride
                    rows = sums[..., oh, :]
                    for j in range(1, kernel):
                        rows = rows + sums[..., oh + j, :]
                    sums = rows
                want = sums / dtype(kernel ** nd)
                np.testing.assert_array_equal(out.reshape(want.shape).view(bits), want.view(bits),
                                              err_msg=f"kernel {kernel} stride {stride} size {size}")
    finally:
        _avg.small_plane_limit(1024)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("planes", [1, 16, 37])
def test_small_planes_average_in_lanes_same_bits(simd_level, dtype, planes):
    """Small planes averaged 16 side by side equal the separable path bit for bit
    (its additions in its order, -0.0 included: its windows clipped along W sum
    from 0), every divisor rule, whatever the number of planes."""
    assert _avg.small_plane_limit() == 1024
    rng = np.random.default_rng(planes + 100 * simd_level)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    for nd, spatial, kernel, stride, padding, ceil_mode in [
            (2, (14, 14), 3, 2, 1, False), (2, (7, 7), 3, 2, 1, True), (2, (10, 10), 2, 2, 0, False),
            (2, (9, 13), (2, 3), (1, 2), (1, 0), True), (2, (7, 7), 3, 1, 1, False),
            (2, (12, 12), 5, 1, 2, False), (1, (29,), 3, 2, 1, True), (3, (5, 6, 7), 2, 2, 1, True),
            (2, (28, 28), 3, 2, 1, False), (2, (14, 14), 4, 4, 0, False),
            (2, (16, 15), (3, 5), (3, 4), (1, 2), True), (1, (40,), 6, 3, 0, False)]:
        x = rng.standard_normal((planes, 1) + spatial).astype(dtype)
        x[rng.random(x.shape) < 0.3] = -0.0
        geom = _args.pool_geometry(nd, spatial, kernel, stride, padding, 1, ceil_mode)
        assert geom.out_size[-1] < 16 and np.prod(spatial) <= 1024  # the lanes take it
        lay = _args.layout(x.shape, nd, False)
        out_shape = lay.kernel_shape(geom.out_size)
        kernel_x = x.reshape(lay.kernel_shape(lay.spatial)).copy()
        for include_pad, override in [(True, 0), (False, 0), (True, 3), (False, -2)]:
            results = []
            for limit in (None, 0):  # the lanes, then the separable path at vector level 0
                _avg.small_plane_limit(limit)
                _avg.simd_level(simd_level if limit is None else 0)
                out = np.empty(out_shape, dtype)
                _avg.avg_pool_forward(kernel_x, out, geom.for_kernel(), include_pad, override,
                                      False, 1)
                results.append(out.view(bits))
            _avg.small_plane_limit(1024)
            np.testing.assert_array_equal(*results, err_msg=f"{spatial} kernel {kernel} "
                                          f"{include_pad} {override}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("planes", [1, 16, 37])
def test_small_planes_average_backward_in_lanes_same_bits(simd_level, dtype, planes):
    """The backward of small planes, 16 side by side, spreads each output
    gradient over its window in the general loop's order: the general loop's
    bits, every divisor rule, whatever the number of planes."""
    rng = np.random.default_rng(planes + 10 * simd_level)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    for nd, spatial, kernel, stride, padding, ceil_mode in [
            (2, (14, 14), 3, 2, 1, False), (2, (7, 7), 3, 2, 1, True), (2, (10, 10), 2, 2, 0, False),
            (2, (9, 13), (2, 3), (1, 2), (1, 0), True), (2, (7, 7), 3, 1, 1, False),
            (1, (29,), 3, 2, 1, True), (3, (5, 6, 7), 2, 2, 1, True), (2, (28, 28), 3, 2, 1, False)]:
        geom = _args.pool_geometry(nd, spatial, kernel, stride, padding, 1, ceil_mode)
        assert geom.out_size[-1] < 16 and np.prod(spatial) <= 1024  # the lanes take it
        lay = _args.layout((planes, 1) + spatial, nd, False)
        grad = rng.standard_normal(lay.kernel_shape(geom.out_size)).astype(dtype)
        for include_pad, override in [(True, 0), (False, 0), (True, 3), (False, -2)]:
            results = []
            for naive in (False, True):
                grad_in = np.full(lay.kernel_shape(lay.spatial), np.nan, dtype)
                _avg.avg_pool_backward(grad, grad_in, geom.for_kernel(), include_pad, override,
                                       False, 1, naive)
                results.append(grad_in.view(bits))
            np.testing.assert_array_equal(*results, err_msg=f"{spatial} kernel {kernel} "
                                          f"{include_pad} {override}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("planes", [1, 16, 37])
def test_small_planes_adaptive_max_in_lanes_bit_exact(simd_level, dtype, planes):
    """Adaptive max pooling of small planes, 16 side by side, equals the general
    loop bit for bit, values and indices (overlapping and uneven windows, ties
    between -0.0 and 0.0, NaNs of two payloads)."""
    rng = np.random.default_rng(planes + 10 * simd_level)
    for in_size, out_size in [((1, 14, 14), (1, 7, 7)), ((1, 9, 13), (1, 4, 5)),
                              ((1, 7, 7), (1, 3, 5)), ((1, 1, 29), (1, 1, 12)),
                              ((4, 5, 6), (3, 2, 4)), ((1, 32, 32), (1, 15, 15))]:
        x, bits = _signed_data(rng, (planes,) + in_size, dtype)
        results = []
        for naive in (False, True):
            values = np.empty((planes,) + out_size, dtype)
            indices = np.empty((planes,) + out_size, np.int64)
            _adaptive.adaptive_max_forward(x, values, indices, in_size, out_size, False, 1, naive)
            only = np.empty((planes,) + out_size, dtype)
            _adaptive.adaptive_max_forward(x, only, None, in_size, out_size, False, 1, naive)
            results.append((values.view(bits), indices, only.view(bits)))
        for fast, general in zip(*results):
            np.testing.assert_array_equal(fast, general, err_msg=f"{in_size} -> {out_size}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("data", ["nan", "no-nan", "zero-maxima"])
def test_adaptive_max_long_windows_bit_exact(simd_level, lanes, dtype, data):
    """Long adaptive windows, one row high (_simd.h's cy_window_max: 8 running
    maxima in two vectors, combined in scan order; values alone: cy_window_value,
    plain maxima unless a NaN or a zero maximum sends the run to the scan) or
    over the row maxima of several rows (_columns_max; values alone: plain row
    maxima and NaN probes, a window with a NaN, an infinity or a zero maximum
    scanned again), and global planes taken as one run, equal the general loop
    bit for bit, with and without indices: the first of equal values (-0.0 and
    0.0), the last NaN (two payloads), at every vector level."""
    rng = np.random.default_rng(7 + simd_level)
    for in_size, out_size in [((1, 1, 4096), (1, 1, 100)), ((1, 1, 300), (1, 1, 7)),
                              ((1, 3, 200), (1, 3, 5)), ((1, 1, 50), (1, 1, 3)),
                              ((1, 1, 33), (1, 1, 2)), ((2, 2, 70), (2, 2, 4)),
                              ((1, 1, 17), (1, 1, 1)), ((1, 112, 112), (1, 7, 7)),
                              ((1, 40, 90), (1, 3, 4)), ((3, 9, 50), (2, 2, 3)),
                              ((1, 20, 30), (1, 7, 11)),
                              # global: each plane one run (planes of 4 and more)
                              ((1, 1, 3), (1, 1, 1)), ((1, 1, 4), (1, 1, 1)),
                              ((1, 3, 3), (1, 1, 1)), ((1, 7, 7), (1, 1, 1)),
                              ((2, 3, 11), (1, 1, 1)), ((1, 112, 112), (1, 1, 1))]:
        x, bits = _signed_data(rng, (3,) + in_size, dtype)
        if data != "nan":
            x[np.isnan(x)] = 1.0
        if data == "zero-maxima":  # no positive values: many maxima are -0.0 or 0.0
            x = -np.abs(x) if rng.random() < 0.5 else np.where(x > 0, -x, x)
            x[rng.random(x.shape) < 0.3] = 0.0
        x[0, ..., : in_size[2] // 3] = -np.inf  # windows of -inf only: the first wins
        results = []
        for naive in (False, True):
            values = np.empty((3,) + out_size, dtype)
            indices = np.empty((3,) + out_size, np.int64)
            only = np.empty((3,) + out_size, dtype)
            _adaptive.adaptive_max_forward(x, values, indices, in_size, out_size, False, 1, naive)
            _adaptive.adaptive_max_forward(x, only, None, in_size, out_size, False, 1, naive)
            results.append((values.view(bits), indices, only.view(bits)))
        for fast, general in zip(*results):
            np.testing.assert_array_equal(fast, general, err_msg=f"{in_size} -> {out_size}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("data", ["nan", "no-nan", "zero-maxima"])
def test_adaptive_max_channels_last_bit_exact(simd_level, dtype, data):
    """Channels-last adaptive max rows equal the general loop bit for bit at every
    vector level, with and without indices: rows whose windows have at most
    CY_SUM_MAX_TAPS (64) taps (window_max_cl, the channels past its vectors tap
    by tap), rows with a longer window (the row scan, int32 running offsets),
    1 to 37 channels: the first of -0.0 and 0.0, the last NaN."""
    rng = np.random.default_rng(31 + simd_level)
    for in_size, out_size in [((1, 16, 16), (1, 2, 2)),    # 8x8: 64 taps
                              ((1, 17, 16), (1, 2, 2)),    # 9x8: the row scan
                              ((1, 9, 13), (1, 4, 5)), ((2, 6, 7), (1, 3, 3)),
                              ((1, 5, 70), (1, 2, 3)), ((1, 56, 56), (1, 7, 7))]:
        for channels in (1, 3, 8, 13, 37):
            x, bits = _signed_data(rng, (2,) + in_size + (channels,), dtype)
            if data != "nan":
                x[np.isnan(x)] = 1.0
            if data == "zero-maxima":
                x = np.where(x > 0, -x, x)
            x[0, ..., : channels // 2] = -np.inf  # windows of -inf only: the first wins
            results = []
            for naive in (False, True):
                values = np.empty((2,) + out_size + (channels,), dtype)
                indices = np.empty(values.shape, np.int64)
                only = np.empty_like(values)
                _adaptive.adaptive_max_forward(x, values, indices, in_size, out_size, True, 2,
                                               naive)
                _adaptive.adaptive_max_forward(x, only, None, in_size, out_size, True, 2, naive)
                results.append((values.view(bits), indices, only.view(bits)))
            for fast, general in zip(*results):
                np.testing.assert_array_equal(fast, general,
                                              err_msg=f"{in_size} -> {out_size}, {channels}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("data", ["nan", "no-nan", "zero-maxima", "infinities"])
def test_global_max_channels_last_bit_exact(simd_level, dtype, data):
    """Channels-last global maxima equal the general loop bit for bit at every
    vector level, values alone (_simd.h's cy_channel_maxima: maxima four pixels
    a pass, each select keeping the earlier of equals; a channel whose sum shows
    a NaN scanned again in order) and with their offsets (cy_channel_argmax: four
    pixels folded in a tree, then into the running pair): the first of -0.0 and
    0.0, the last NaN, planes of 1 to 13 pixels (whole passes and the pixels
    after them), channel blocks of 1 to 600 channels (whole vectors and the
    channels after them)."""
    rng = np.random.default_rng(11)
    for pixels, channels in [(1, 5), (2, 3), (3, 70), (4, 8), (5, 600), (8, 64),
                             (9, 1), (13, 130)]:
        x, bits = _signed_data(rng, (3, 1, 1, pixels, channels), dtype)
        if data != "nan":
            x[np.isnan(x)] = 1.0
        if data == "zero-maxima":
            x = np.where(x > 0, -x, x)
        if data == "infinities":
            x[rng.random(x.shape) < 0.1] = np.inf
        x[0, ..., : channels // 2] = -np.inf  # channels of -inf only
        x[1, 0, 0, -1] = 3.0  # a maximum in the last pixel
        results = []
        for naive in (False, True):
            only = np.empty((3, 1, 1, 1, channels), dtype)
            values = np.empty_like(only)
            indices = np.empty(only.shape, np.int64)
            _adaptive.adaptive_max_forward(x, only, None, (1, 1, pixels), (1, 1, 1), True, 2,
                                           naive)
            _adaptive.adaptive_max_forward(x, values, indices, (1, 1, pixels), (1, 1, 1), True,
                                           2, naive)
            results.append((only.view(bits), values.view(bits), indices))
        for fast, general in zip(*results):
            np.testing.assert_array_equal(fast, general, err_msg=f"{pixels}x{channels}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_average_channels_last_additions(dtype):
    """A channels-last global average adds each channel's pixels in order in
    the input type, in blocks of 8 pixels (four pixels a pass), each block's
    sum added into a float64 total: the same bits as those additions, for
    planes of 1 to 21 pixels (whole passes, the pixels after them, partial
    blocks)."""
    rng = np.random.default_rng(5)
    for pixels, channels in [(1, 3), (3, 70), (4, 8), (7, 5), (8, 64), (9, 600), (13, 2),
                             (21, 130)]:
        x = (rng.standard_normal((2, 1, 1, pixels, channels)) * 100).astype(dtype)
        got = np.empty((2, 1, 1, 1, channels), dtype)
        _adaptive.adaptive_avg_forward(x, got, (1, 1, pixels), (1, 1, 1), True, 2)
        total = np.zeros((2, channels))
        for block in range(0, pixels, 8):
            partial = np.zeros((2, channels), dtype)
            for p in range(block, min(block + 8, pixels)):
                partial = partial + x[:, 0, 0, p]
            total += partial
        want = (total / pixels).astype(dtype)
        np.testing.assert_array_equal(got[:, 0, 0, 0], want, err_msg=f"{pixels}x{channels}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("planes", [1, 16, 37])
def test_small_planes_adaptive_average_in_lanes_same_bits(simd_level, dtype, planes):
    """Adaptive averages of small planes, 16 side by side, equal the column path
    bit for bit (its additions in its order, -0.0 included) at every vector
    level, and the general loop within rounding."""
    rng = np.random.default_rng(planes + 10 * simd_level)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    for in_size, out_size in [((1, 14, 14), (1, 7, 7)), ((1, 9, 13), (1, 4, 5)),
                              ((1, 7, 7), (1, 3, 5)), ((1, 1, 29), (1, 1, 12)),
                              ((4, 5, 6), (3, 2, 4)), ((1, 32, 32), (1, 15, 15))]:
        x = rng.standard_normal((planes,) + in_size).astype(dtype)
        x[rng.random(x.shape) < 0.3] = -0.0
        results = []
        limit = _adaptive.small_plane_limit()
        for level, naive, lanes in ((simd_level, False, limit), (0, False, limit),
                                    (simd_level, False, 0), (simd_level, True, limit)):
            _adaptive.simd_level(level)
            _adaptive.small_plane_limit(lanes)   # 0: the column path
            try:
                out = np.empty((planes,) + out_size, dtype)
                _adaptive.adaptive_avg_forward(x, out, in_size, out_size, False, 1, naive)
            finally:
                _adaptive.small_plane_limit(limit)
            results.append(out)
        # level 0: the same lanes in portable C; then the column path
        for other in results[1:3]:
            np.testing.assert_array_equal(results[0].view(bits), other.view(bits),
                                          err_msg=f"{in_size} -> {out_size}")
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(results[0], results[3], rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adaptive_average_uniform_columns_same_bits(simd_level, dtype):
    """Planes too large for the lanes whose width is a multiple of the output's
    (windows of k columns at stride k, k under 16) sum each window as a chain
    from its first column, then add 0: bit for bit the column path's
    additions from 0 (a window of -0.0 gives 0.0), emulated here one array
    operation per addition."""
    rng = np.random.default_rng(3 + simd_level)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    for (h, w), (oh, ow) in [((40, 40), (20, 20)), ((36, 45), (12, 9)), ((33, 70), (11, 7)),
                             ((64, 24), (8, 3)), ((50, 39), (7, 13))]:
        x = rng.integers(-2, 2, size=(3, h, w)).astype(dtype)
        x[rng.random(x.shape) < 0.5] = -0.0
        x[0, :5] = -0.0                               # windows of -0.0 only
        x[1, 0, 0] = np.nan
        x[2] = rng.standard_normal((h, w)).astype(dtype)
        out = np.empty((3, 1, oh, ow), dtype)
        _adaptive.adaptive_avg_forward(x.reshape(3, 1, h, w), out, (1, h, w), (1, oh, ow),
                                       False, 1, False)
        want = np.empty((3, oh, ow), dtype)
        for i in range(oh):
            r0, r1 = (i * h) // oh, -((-(i + 1) * h) // oh)
            sums = x[:, r0]
            for r in range(r0 + 1, r1):
                sums = sums + x[:, r]
            k = w // ow
            total = np.zeros((3, ow), dtype)
            for j in range(k):
                total = total + sums[:, j::k][:, :ow]
            want[:, i] = total / dtype((r1 - r0) * k)
        np.testing.assert_array_equal(out.reshape(want.shape).view(bits), want.view(bits),
                                      err_msg=f"{(h, w)} -> {(oh, ow)}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adaptive_average_long_windows_in_partial_sums(dtype):
    """Windows of 16 or more columns in planes too large for the lanes add in
    partial sums (float32: eight, float64: 16): exact on small integers (so
    equal to the general loop bit for bit), within rounding of the float64
    mean otherwise."""
    rng = np.random.default_rng(3)
    for in_size, out_size in [((1, 1, 4096), (1, 1, 100)), ((1, 2, 700), (1, 2, 9)),
                              ((1, 1, 1100), (1, 1, 70)), ((2, 3, 400), (2, 1, 3))]:
        integral = rng.integers(-9, 10, size=(3,) + in_size).astype(dtype)
        noisy = (rng.standard_normal((3,) + in_size) * 100 + 50).astype(dtype)
        for x in (integral, noisy):
            got = []
            for naive in (False, True):
                out = np.empty((3,) + out_size, dtype)
                _adaptive.adaptive_avg_forward(x, out, in_size, out_size, False, 1, naive)
                got.append(out)
            if x is integral:
                np.testing.assert_array_equal(got[0], got[1], err_msg=f"{in_size} -> {out_size}")
            want = rr.adaptive_avg_pool(x.astype(np.float64)[:, None], 3, out_size)[:, 0]
            np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-4)
    if dtype == np.float64:
        return  # its additions: test_global_average_sums_same_bits (cy_wide_sum_f64)
    # the additions themselves: the first window of a long row (0 to 41)
    x = (rng.standard_normal((1, 1, 1, 4096)) * 100).astype(np.float32)
    out = np.empty((1, 1, 1, 100), np.float32)
    _adaptive.adaptive_avg_forward(x, out, (1, 1, 4096), (1, 1, 100), False, 1)
    v, sums = x[0, 0, 0, :41], np.zeros(8, np.float32)
    for i in range(0, 40, 8):
        sums += v[i:i + 8]
    sums[0] += v[40]
    total = ((sums[0] + sums[1]) + (sums[2] + sums[3])) + ((sums[4] + sums[5]) + (sums[6] + sums[7]))
    assert out[0, 0, 0, 0] == total / np.float32(41)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_average_sums_same_bits(simd_level, dtype):
    """A plane's global average sums in partial sums (float32: blocks in 32,
    float64: 16) with the same additions at every vector level (so the same
    bits on every CPU), within rounding of the float64 mean; planes of 1 to
    5000 values cover the small planes' eight-sum path, whole and partial
    runs of the partial sums and blocks of 1024."""
    rng = np.random.default_rng(7)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    for n in [1, 15, 16, 17, 31, 127, 128, 129, 160, 1023, 1024, 1025, 2080, 5000]:
        x = (rng.standard_normal((3, n)) * 100 + 50).astype(dtype)
        got = []
        for level in (simd_level, 0):
            _adaptive.simd_level(level)
            out = np.empty((3, 1), dtype)
            _adaptive.adaptive_avg_forward(x, out, (1, 1, n), (1, 1, 1), False, 1)
            got.append(out)
        np.testing.assert_array_equal(got[0].view(bits), got[1].view(bits),
                                      err_msg=f"{n} values")
        np.testing.assert_allclose(got[0][:, 0], x.astype(np.float64).mean(axis=1),
                                   rtol=1e-6 if dtype == np.float32 else 1e-13)
        if dtype == np.float64 and n >= 16:  # the additions themselves
            p = np.zeros(16)
            body = n - n % 16
            for i in range(0, body, 16):
                p += x[0, i:i + 16]
            for i in range(body, n):
                p[0] += x[0, i]
            p = p[:8] + p[8:]
            p = p[:4] + p[4:]
            assert got[0][0, 0] == ((p[0] + p[1]) + (p[2] + p[3])) / n


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("in_plane", [128 * 256, 127 * 255])  # groups 16-byte aligned or not
def test_max_backward_staged_scatter(dtype, threads, in_plane):
    """A channels-first scatter into a result of 32 MiB or more with 16 inputs
    or more per gradient (STREAM_BYTES, SPARSE_SCATTER) is built a group of
    planes at a time in a buffer and streamed out: it must equal NumPy's
    ``add.at`` on a dirty result (repeated indices add in order), count the
    indices outside the plane, and leave nothing of the old contents."""
    planes = (32 << 20) // (in_plane * np.dtype(dtype).itemsize) + 3  # not a whole group
    out_plane = 64
    rng = np.random.default_rng(5)
    grad = rng.standard_normal((planes, out_plane)).astype(dtype)
    grad[:, 5] = -0.0
    grad[3, 7] = np.nan
    ind = rng.integers(0, in_plane, size=(planes, out_plane))
    ind[:, 1] = ind[:, 0]          # repeated indices
    ind[:, 2] = in_plane - 1        # the plane's last element
    grad_in = np.full((planes, in_plane), 7.0, dtype)
    assert _max.max_pool_backward(grad, ind, grad_in, in_plane, False, threads) == 0
    want = np.zeros_like(grad_in)
    np.add.at(want, (np.arange(planes)[:, None], ind), grad)
    np.testing.assert_array_equal(grad_in, want)
    np.testing.assert_array_equal(np.signbit(grad_in), np.signbit(want))
    ind[-1, 9], ind[0, 3] = in_plane, -1
    assert _max.max_pool_backward(grad, ind, grad_in, in_plane, False, threads) == 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("spatial, channels, window", [
    ((9, 11), 3, (3, 2, 1, False)),          # k3 s2 p1: rows in two windows
    ((8, 8), 64, (2, 2, 0, False)),          # one channel block
    ((7, 10), 70, (3, 3, 1, True)),          # two blocks, ceil mode
    ((5, 6, 7), 5, (2, 1, 1, False)),        # 3-D, stride 1
    ((256, 512), 64, (3, 2, 1, False)),      # 32 MiB of float32: rows staged and streamed
])
def test_avg_backward_channels_last_rows(dtype, threads, spatial, channels, window):
    """Channels-last average backward an input row at a time (each row zeroed
    and filled in cache, large results built in scratch and streamed out)
    adds each element's shares in the order of the window-by-window loop:
    the same bits, on a dirty result."""
    kernel, stride, padding, ceil_mode = window
    nd = len(spatial)
    geom = _geometry(nd, spatial, (kernel,) * nd, (stride,) * nd, (padding,) * nd, (1,) * nd,
                     ceil_mode)
    rng = np.random.default_rng(len(spatial) * channels)
    lead = (2,) + (1,) * (3 - nd)     # the kernels' (N, D, H, W, C)
    grad = rng.standard_normal(lead + geom.out_size + (channels,)).astype(dtype)
    grad[..., 1] = -0.0
    grad.flat[7] = np.nan
    for include_pad, override in ((True, 0), (False, 0), (True, 3)):
        results = []
        for naive in (False, True):
            grad_in = np.full(lead + tuple(spatial) + (channels,), 5.0, dtype)
            _avg.avg_pool_backward(grad, grad_in, geom.for_kernel(), include_pad, override, True,
                                   threads, naive)
            results.append(grad_in)
        np.testing.assert_array_equal(results[0], results[1])
        np.testing.assert_array_equal(np.signbit(results[0]), np.signbit(results[1]))
        if spatial[0] >= 256:
            break  # one rule is enough for the large case


@pytest.mark.parametrize("channels", [3, 24, 70])
@pytest.mark.parametrize("spatial, kernel, stride, padding, dilation, ceil_mode", [
    ((9, 12), 2, 2, 0, 1, False),
    ((11, 13), 3, 2, 1, 1, True),
    ((7, 10), 3, 1, 1, 1, False),
    ((9, 14), 3, 1, 1, 2, False),
    ((6, 7, 9), 2, 3, 1, 1, True),
    ((5, 9, 11), 3, 2, 1, 1, False),
])
def test_max_channels_last_rows_bit_exact(simd_level, channels, spatial, kernel, stride, padding,
                                          dilation, ceil_mode):
    """Channels-last max pooling takes the windows whole along W a row at a time
    (one _simd.h call): values and indices are the general loop's, with NaN,
    -0.0 and ties, at every vector level."""
    if simd_level == 0:
        pytest.skip("level 0 is the general loop itself")
    nd = len(spatial)
    geom = _geometry(nd, spatial, (kernel,) * nd, (stride,) * nd, (padding,) * nd,
                     (dilation,) * nd, ceil_mode)
    rng = np.random.default_rng(channels + kernel)
    lead = (2,) + (1,) * (3 - nd)     # the kernels' (N, D, H, W, C)
    shape = lead + geom.out_size + (channels,)
    for dtype in (np.float32, np.float64):
        x = rng.integers(-3, 3, size=lead + tuple(spatial) + (channels,)).astype(dtype)
        x[rng.random(x.shape) < 0.2] = -0.0
        x[rng.random(x.shape) < 0.03] = np.nan
        results = []
        for naive in (False, True):
            values, indices, only = np.empty(shape, dtype), np.empty(shape, np.int64), np.empty(shape, dtype)
            _max.max_pool_forward(x, values, indices, geom.for_kernel(), True, 2, naive)
            _max.max_pool_forward(x, only, None, geom.for_kernel(), True, 2, naive)
            results.append((values, indices, only))
        (values, indices, only), (want, want_at, _) = results
        bits = np.uint32 if dtype == np.float32 else np.uint64
        np.testing.assert_array_equal(values.view(bits), want.view(bits))
        np.testing.assert_array_equal(only.view(bits), want.view(bits))
        np.testing.assert_array_equal(indices, want_at)


@pytest.mark.parametrize("channels", [3, 24, 70])
@pytest.mark.parametrize("spatial, kernel, stride, padding, ceil_mode", [
    ((9, 12), 2, 2, 0, False),
    ((11, 13), 3, 2, 1, True),
    ((7, 10), 3, 1, 1, False),
    ((6, 7, 9), 2, 3, 1, True),
    ((300,), 2, 2, 0, True),        # rows of more than one chunk (ROW_CHUNK = 64 windows),
    ((5, 200), 3, 1, 1, False),     # the last one partial
])
def test_avg_channels_last_rows_bit_exact(simd_level, channels, spatial, kernel, stride, padding,
                                          ceil_mode):
    """Channels-last average pooling takes the windows whole along W a chunk of
    a row at a time (one _simd.h call): the additions of the pixel-by-pixel
    path, so the bits of the general loop, at every vector level."""
    if simd_level == 0:
        pytest.skip("level 0 is the general loop itself")
    nd = len(spatial)
    geom = _geometry(nd, spatial, (kernel,) * nd, (stride,) * nd, (padding,) * nd, (1,) * nd,
                     ceil_mode)
    rng = np.random.default_rng(channels + kernel)
    lead = (2,) + (1,) * (3 - nd)     # the kernels' (N, D, H, W, C)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal(lead + tuple(spatial) + (channels,)).astype(dtype)
        x[..., 1] = -0.0
        x.flat[5] = np.nan
        for include_pad, override in ((True, 0), (False, 0), (True, 7)):
            got, want = (np.empty(lead + geom.out_size + (channels,), dtype) for _ in range(2))
            _avg.avg_pool_forward(x, got, geom.for_kernel(), include_pad, override, True, 2)
            _avg.avg_pool_forward(x, want, geom.for_kernel(), include_pad, override, True, 2,
                                  True)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
