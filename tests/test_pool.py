"""cypool's max and average pooling against the slow reference (tests/reference.py).

Covers dims 1-3, both layouts, the dtype table, every geometry case of the
shared grid (padding, dilation, ceil mode and its overhang/drop rules), NaN,
ties and -inf, unbatched input, empty batches, views and the thread count.
"""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import cypool
import reference as ref
from reference import AVG_CASES, AVG_DIVISORS, CASES, VALUE_KINDS, make_values

LAYOUTS = [False, True]
FLOATS = [np.float32, np.float64]


def _empty_window(case):
    """Geometry with a max window whose every tap is padding: cypool rejects it."""
    return case.name.startswith("no-inbounds-tap")


def _in_layout(a, channels_last):
    return np.ascontiguousarray(ref.to_channels_last(a)) if channels_last else a


def _from_layout(a, channels_last):
    return ref.from_channels_last(a) if channels_last else a


def _max(nd):
    return getattr(cypool, f"max_pool{nd}d"), getattr(cypool, f"max_pool{nd}d_backward")


def _avg(nd):
    return getattr(cypool, f"avg_pool{nd}d"), getattr(cypool, f"avg_pool{nd}d_backward")


def _tolerance(dtype):
    return dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------- max

@pytest.mark.parametrize("kind", VALUE_KINDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("channels_last", LAYOUTS, ids=["cf", "cl"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_max_pool_matches_reference(case, channels_last, dtype, kind):
    rng = np.random.default_rng(hash((case.id, kind)) % 2**32)
    x = make_values(kind, case.shape, dtype, rng)
    forward, backward = _max(case.nd)
    xl = _in_layout(x, channels_last)
    if _empty_window(case):
        with pytest.raises(ValueError, match="holds no input element"):
            forward(xl, **case.max_kwargs(), channels_last=channels_last)
        return
    want, want_idx = ref.max_pool(x, case.nd, **case.max_kwargs())
    got, got_idx = forward(xl, **case.max_kwargs(), return_indices=True, channels_last=channels_last)
    assert got.dtype == x.dtype and got_idx.dtype == np.int64
    np.testing.assert_array_equal(_from_layout(got, channels_last), want)
    np.testing.assert_array_equal(_from_layout(got_idx, channels_last), want_idx)
    # values only (a separate code path) agree too
    only = forward(xl, **case.max_kwargs(), channels_last=channels_last)
    np.testing.assert_array_equal(only, got)

    grad = rng.standard_normal(want.shape).astype(dtype)
    want_grad = ref.max_pool_backward(grad, want_idx, x.shape)
    got_grad = backward(_in_layout(grad, channels_last), got_idx, xl.shape,
                        channels_last=channels_last)
    assert got_grad.dtype == dtype
    np.testing.assert_allclose(_from_layout(got_grad, channels_last), want_grad, **_tolerance(dtype))


INT_TYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]


@pytest.mark.parametrize("dtype", INT_TYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("channels_last", LAYOUTS, ids=["cf", "cl"])
def test_max_pool_keeps_integer_dtypes(dtype, channels_last, rng):
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, size=(2, 3, 7, 6), dtype=dtype, endpoint=True)
    x[0, 0, :3, :3] = info.min  # windows that are all the type's minimum
    x[1, 1, :, :] = 5           # ties everywhere
    want, want_idx = ref.max_pool(x, 2, 3, 2, 1, ceil_mode=True)
    got, got_idx = cypool.max_pool2d(_in_layout(x, channels_last), 3, 2, 1, ceil_mode=True,
                                     return_indices=True, channels_last=channels_last)
    assert got.dtype == dtype
    np.testing.assert_array_equal(_from_layout(got, channels_last), want)
    np.testing.assert_array_equal(_from_layout(got_idx, channels_last), want_idx)


def test_max_pool_bool_is_logical_or(rng):
    x = rng.random((2, 2, 6, 6)) < 0.2
    got, idx = cypool.max_pool2d(x, 2, return_indices=True)
    want, want_idx = ref.max_pool(x.astype(np.uint8), 2, 2)
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, want.astype(bool))
    np.testing.assert_array_equal(idx, want_idx)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_float16_computed_in_float32(nd, rng):
    shape = (2, 3) + (6,) * nd
    x = rng.standard_normal(shape).astype(np.float16)
    x.flat[::7] = np.nan
    forward, backward = _max(nd)
    got, idx = forward(x, 3, 2, 1, return_indices=True)
    want, want_idx = ref.max_pool(x.astype(np.float32), nd, 3, 2, 1)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, want.astype(np.float16))
    np.testing.assert_array_equal(idx, want_idx)
    grad = np.ones(got.shape, np.float16)
    gi = backward(grad, idx, x.shape)
    assert gi.dtype == np.float16
    np.testing.assert_array_equal(gi, ref.max_pool_backward(grad.astype(np.float32), idx, shape))

    avg, avg_backward = _avg(nd)
    got = avg(x, 3, 2, 1)
    assert got.dtype == np.float16
    want = ref.avg_pool(x.astype(np.float32), nd, 3, 2, 1)
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float16).astype(np.float32),
                               rtol=2e-3, equal_nan=True)
    gi = avg_backward(np.ones(got.shape, np.float16), shape, 3, 2, 1)
    assert gi.dtype == np.float16


# --------------------------------------------------------------- average

@pytest.mark.parametrize("divisor", AVG_DIVISORS, ids=lambda d: f"pad{d[0]}-div{d[1]}")
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("channels_last", LAYOUTS, ids=["cf", "cl"])
@pytest.mark.parametrize("case", AVG_CASES, ids=lambda c: c.id)
def test_avg_pool_matches_reference(case, channels_last, dtype, divisor):
    rng = np.random.default_rng(hash(case.id) % 2**32)
    include_pad, override = divisor
    x = make_values("randn", case.shape, dtype, rng)
    forward, backward = _avg(case.nd)
    kwargs = dict(case.avg_kwargs(), count_include_pad=include_pad, divisor_override=override)
    want = ref.avg_pool(x, case.nd, **kwargs)
    got = forward(_in_layout(x, channels_last), **kwargs, channels_last=channels_last)
    assert got.dtype == dtype
    np.testing.assert_allclose(_from_layout(got, channels_last), want, **_tolerance(dtype))

    grad = rng.standard_normal(want.shape).astype(dtype)
    want_grad = ref.avg_pool_backward(grad, x.shape, case.nd, **kwargs)
    got_grad = backward(_in_layout(grad, channels_last), _in_layout(x, channels_last).shape,
                        **kwargs, channels_last=channels_last)
    assert got_grad.dtype == dtype
    np.testing.assert_allclose(_from_layout(got_grad, channels_last), want_grad, **_tolerance(dtype))


@pytest.mark.parametrize("kind", ["nan", "inf-mix"])
@pytest.mark.parametrize("channels_last", LAYOUTS, ids=["cf", "cl"])
def test_avg_pool_nan_and_inf(kind, channels_last, rng):
    x = make_values(kind, (2, 3, 7, 7), np.float64, rng)
    want = ref.avg_pool(x, 2, 3, 2, 1)
    got = cypool.avg_pool2d(_in_layout(x, channels_last), 3, 2, 1, channels_last=channels_last)
    np.testing.assert_allclose(_from_layout(got, channels_last), want, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int32, np.int64])
def test_avg_pool_integers_give_float64(dtype, rng):
    x = rng.integers(0, 100, size=(2, 3, 5, 5)).astype(dtype)
    got = cypool.avg_pool2d(x, 2, 1, 1, count_include_pad=False)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref.avg_pool(x.astype(np.float64), 2, 2, 1, 1,
                                                 count_include_pad=False))


# ------------------------------------------------------- padding strings

@pytest.mark.parametrize("nd, shape, kernel, stride, dilation", [
    (1, (2, 3, 9), 4, 2, 1),
    (1, (2, 3, 10), 3, 3, 2),
    (2, (2, 3, 7, 8), (3, 2), (2, 3), 1),
    (2, (1, 2, 5, 5), 5, 1, 1),
    (3, (1, 2, 5, 6, 6), 3, 2, (1, 2, 1)),
])
@pytest.mark.parametrize("channels_last", LAYOUTS, ids=["cf", "cl"])
def test_same_and_valid_padding(nd, shape, kernel, stride, dilation, channels_last, rng):
    x = rng.standard_normal(shape)
    forward, backward = _max(nd)
    for padding in ("same", "valid"):
        want, want_idx = ref.max_pool(x, nd, kernel, stride, padding, dilation)
        got, got_idx = forward(_in_layout(x, channels_last), kernel, stride, padding, dilation,
                               return_indices=True, channels_last=channels_last)
        np.testing.assert_array_equal(_from_layout(got, channels_last), want)
        np.testing.assert_array_equal(_from_layout(got_idx, channels_last), want_idx)
        if padding == "same":
            assert want.shape[2:] == tuple(-(-n // s) for n, s in
                                           zip(shape[2:], np.broadcast_to(stride, nd)))
    if dilation == 1:
        avg, _ = _avg(nd)
        for include_pad in (True, False):
            want = ref.avg_pool(x, nd, kernel, stride, "same", count_include_pad=include_pad)
            got = avg(_in_layout(x, channels_last), kernel, stride, "same",
                      count_include_pad=include_pad, channels_last=channels_last)
            np.testing.assert_allclose(_from_layout(got, channels_last), want, rtol=1e-12)


# ------------------------------------------------------ shapes and views

@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("channels_last", LAYOUTS, ids=["cf", "cl"])
def test_unbatched_equals_batch_of_one(nd, channels_last, rng):
    x = rng.standard_normal((1, 3) + (5,) * nd)
    xl = _in_layout(x, channels_last)
    forward, backward = _max(nd)
    y, idx = forward(xl[0], 3, 2, 1, return_indices=True, channels_last=channels_last)
    yb, idxb = forward(xl, 3, 2, 1, return_indices=True, channels_last=channels_last)
    np.testing.assert_array_equal(y, yb[0])
    np.testing.assert_array_equal(idx, idxb[0])
    g = backward(np.ones_like(y), idx, xl[0].shape, channels_last=channels_last)
    np.testing.assert_array_equal(g, backward(np.ones_like(yb), idxb, xl.shape,
                                              channels_last=channels_last)[0])
    avg, avg_backward = _avg(nd)
    np.testing.assert_array_equal(avg(xl[0], 3, 2, 1, channels_last=channels_last),
                                  avg(xl, 3, 2, 1, channels_last=channels_last)[0])
    ga = avg_backward(np.ones_like(y), xl[0].shape, 3, 2, 1, channels_last=channels_last)
    assert ga.shape == xl[0].shape


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("channels_last", LAYOUTS, ids=["cf", "cl"])
def test_empty_batch(nd, channels_last):
    spatial = (6,) * nd
    shape = (0,) + spatial + (3,) if channels_last else (0, 3) + spatial
    x = np.zeros(shape, np.float32)
    out_shape = (0,) + (3,) * nd + (3,) if channels_last else (0, 3) + (3,) * nd
    forward, backward = _max(nd)
    y, idx = forward(x, 2, return_indices=True, channels_last=channels_last)
    assert y.shape == out_shape and y.dtype == np.float32 and idx.shape == out_shape
    assert backward(y, idx, shape, channels_last=channels_last).shape == shape
    avg, avg_backward = _avg(nd)
    assert avg(x, 2, channels_last=channels_last).shape == out_shape
    assert avg_backward(y, shape, 2, channels_last=channels_last).shape == shape


def test_views_lists_and_read_only(rng):
    base = rng.standard_normal((4, 6, 20, 18))
    views = {
        "negative-strides": base[::-1, :, ::-1, ::-2],
        "non-contiguous": base[1::2, ::2, 3:17, 1:15],
        "transposed": base.transpose(0, 1, 3, 2),
        "fortran": np.asfortranarray(base),
    }
    read_only = base.copy()
    read_only.flags.writeable = False
    views["read-only"] = read_only
    for name, x in views.items():
        want, want_idx = ref.max_pool(np.ascontiguousarray(x), 2, 3, 2, 1)
        got, got_idx = cypool.max_pool2d(x, 3, 2, 1, return_indices=True)
        np.testing.assert_array_equal(got, want, err_msg=name)
        np.testing.assert_array_equal(got_idx, want_idx, err_msg=name)
        np.testing.assert_allclose(cypool.avg_pool2d(x, 3, 2, 1),
                                   ref.avg_pool(np.ascontiguousarray(x), 2, 3, 2, 1), rtol=1e-12)
    as_list = base[:1, :2, :5, :5].tolist()
    np.testing.assert_array_equal(cypool.max_pool2d(as_list, 2),
                                  ref.max_pool(np.array(as_list), 2, 2)[0])


def test_large_strided_views_copied_on_threads(rng):
    """Views too large for one thread whose rows are contiguous (crops, channel
    slices, reversed batches, broadcasts) are copied a row at a time on the
    call's threads: every op gives what it gives on the contiguous copy, bit
    for bit, and the view's base is left alone."""
    from cypool import _threads
    base = rng.standard_normal((6, 8, 70, 90)).astype(np.float32)
    keep = base.copy()
    views = {
        "crop": base[:, :, 3:-4, 5:-6],
        "channel-slice": base[:, 1::2],
        "reversed-batch": base[::-1, :, ::-1],
        "broadcast": np.broadcast_to(base[:1, :1], (6, 8, 70, 90)),
        "1-d rows": base.reshape(48, 70, 90)[:, 2:60].reshape(48, 58 * 90)[:, 10:],
    }
    for name, x in views.items():
        assert not x.flags.c_contiguous and x.size >= 1 << 17, name
        dense = np.ascontiguousarray(x)
        copy = np.empty(x.shape, x.dtype)
        _threads.contiguous_copy(x, copy, 2)
        np.testing.assert_array_equal(copy, dense, err_msg=name)
        nd = x.ndim - 2
        for threads in (1, 2):
            if nd == 2:
                calls = [lambda a: cypool.max_pool2d(a, 3, 2, 1, num_threads=threads),
                         lambda a: cypool.avg_pool2d(a, 2, num_threads=threads),
                         lambda a: cypool.adaptive_avg_pool2d(a, 7, num_threads=threads),
                         lambda a: cypool.lp_pool2d(a, 2, 2, num_threads=threads)]
            else:
                calls = [lambda a: cypool.max_pool1d(a, 3, 1, 1, num_threads=threads),
                         lambda a: cypool.avg_pool1d(a, 4, 4, num_threads=threads)]
            for call in calls:
                np.testing.assert_array_equal(call(x).view(np.uint32),
                                              call(dense).view(np.uint32), err_msg=name)
    np.testing.assert_array_equal(base, keep)


def test_threaded_copy_refuses_what_it_cannot_copy():
    from cypool import _threads
    x = np.zeros((4, 6, 8), np.float32)
    with pytest.raises(ValueError):
        _threads.contiguous_copy(x[:, :, ::2], np.empty((4, 6, 4), np.float32), 2)
    with pytest.raises(ValueError):
        _threads.contiguous_copy(x, np.empty((4, 6, 7), np.float32), 2)
    with pytest.raises(ValueError):
        _threads.contiguous_copy(x, np.empty((4, 8, 6), np.float32).transpose(0, 2, 1), 2)
    with pytest.raises(ValueError):
        _threads.contiguous_copy(x, np.empty((4, 6, 8), np.float64), 2)
    empty = np.empty((0, 6, 8), np.float32)
    _threads.contiguous_copy(np.zeros((0, 6, 8), np.float32), empty, 2)


def test_inputs_never_modified(rng):
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    x[0, 0, 0, :3] = np.nan
    keep = x.copy()
    y, idx = cypool.max_pool2d(x, 3, 2, 1, return_indices=True)
    keep_y, keep_idx = y.copy(), idx.copy()
    cypool.max_pool2d_backward(y, idx, x.shape)
    cypool.avg_pool2d(x, 3, 2, 1)
    cypool.avg_pool2d_backward(y, x.shape, 3, 2, 1)
    cypool.max_pool2d(np.moveaxis(x, 1, -1), 3, 2, 1, channels_last=True)
    np.testing.assert_array_equal(x, keep)
    np.testing.assert_array_equal(y, keep_y)
    np.testing.assert_array_equal(idx, keep_idx)


def test_out_arrays_are_filled_and_returned(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    values = np.empty((2, 3, 4, 4), np.float32)
    indices = np.empty((2, 3, 4, 4), np.int64)
    got = cypool.max_pool2d(x, 2, return_indices=True, out=(values, indices))
    assert got[0] is values and got[1] is indices
    want, want_idx = ref.max_pool(x, 2, 2)
    np.testing.assert_array_equal(values, want)
    np.testing.assert_array_equal(indices, want_idx)
    avg_out = np.empty((2, 3, 4, 4), np.float32)
    assert cypool.avg_pool2d(x, 2, out=avg_out) is avg_out
    grad_in = np.empty_like(x)
    assert cypool.max_pool2d_backward(np.ones_like(values), indices, x.shape, out=grad_in) is grad_in
    assert grad_in.sum() == values.size
    half = np.empty((2, 3, 4, 4), np.float16)
    assert cypool.max_pool2d(x.astype(np.float16), 2, out=half) is half
    np.testing.assert_array_equal(half, want.astype(np.float16))


# ------------------------------------------------------------- threads

@pytest.mark.parametrize("channels_last", LAYOUTS, ids=["cf", "cl"])
def test_thread_counts_agree(channels_last, rng):
    x = rng.standard_normal((4, 16, 64, 64)).astype(np.float32)  # past the serial cut-off
    xl = _in_layout(x, channels_last)
    kw = dict(channels_last=channels_last)
    one = cypool.max_pool2d(xl, 3, 2, 1, return_indices=True, num_threads=1, **kw)
    for threads in (2, 3, 7):
        many = cypool.max_pool2d(xl, 3, 2, 1, return_indices=True, num_threads=threads, **kw)
        np.testing.assert_array_equal(one[0], many[0])
        np.testing.assert_array_equal(one[1], many[1])
        np.testing.assert_array_equal(
            cypool.max_pool2d_backward(one[0], one[1], xl.shape, num_threads=1, **kw),
            cypool.max_pool2d_backward(one[0], one[1], xl.shape, num_threads=threads, **kw))
        np.testing.assert_array_equal(cypool.avg_pool2d(xl, 3, 2, 1, num_threads=1, **kw),
                                      cypool.avg_pool2d(xl, 3, 2, 1, num_threads=threads, **kw))
        np.testing.assert_array_equal(
            cypool.avg_pool2d_backward(one[0], xl.shape, 3, 2, 1, num_threads=1, **kw),
            cypool.avg_pool2d_backward(one[0], xl.shape, 3, 2, 1, num_threads=threads, **kw))


def test_many_python_threads_give_the_serial_result(rng):
    inputs = [rng.standard_normal((2, 8, 96, 90)).astype(np.float32) for _ in range(8)]
    expected = [(cypool.max_pool2d(x, 3, 2, 1, return_indices=True, num_threads=1),
                 cypool.avg_pool2d(x, 3, 2, 1, num_threads=1)) for x in inputs]
    failures = []

    def work(k):
        for _ in range(20):
            x = inputs[k]
            (y, idx), a = cypool.max_pool2d(x, 3, 2, 1, return_indices=True), cypool.avg_pool2d(x, 3, 2, 1)
            g = cypool.max_pool2d_backward(y, idx, x.shape)
            if not (np.array_equal(y, expected[k][0][0]) and np.array_equal(idx, expected[k][0][1])
                    and np.array_equal(a, expected[k][1]) and g.shape == x.shape):
                failures.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_get_and_set_num_threads():
    before = cypool.get_num_threads()
    assert before >= 1
    try:
        cypool.set_num_threads(1)
        assert cypool.get_num_threads() == 1
    finally:
        cypool.set_num_threads(before)
    assert cypool.get_num_threads() == before


def test_threadpoolctl_limits_cypool():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1):
        assert cypool.get_num_threads() == 1


# --------------------------------------------------------- huge planes

def test_indices_exact_past_2_31():
    """A 1-D plane of more than 2**31 elements: indices are exact int64 offsets."""
    length = 2**31 + 8192
    try:
        x = np.zeros((1, 1, length), dtype=np.uint8)
    except MemoryError:
        pytest.skip("not enough memory for a 2 GiB plane")
    marks = [5, 2**31 - 1, 2**31 + 3, length - 1]
    for position in marks:
        x[0, 0, position] = 200
    y, idx = cypool.max_pool1d(x, 4096, return_indices=True)
    for position in marks[:-1]:
        window = position // 4096
        assert y[0, 0, window] == 200 and idx[0, 0, window] == position
    assert idx.dtype == np.int64 and idx.max() < length
    del x


def test_omp_num_threads_sets_the_default():
    """OMP_NUM_THREADS, read by OpenMP at start-up, is cypool's default."""
    if not cypool._threads.HAVE_OPENMP:
        pytest.skip("serial build")
    code = "import cypool; print(cypool.get_num_threads())"
    for value in ("1", "3"):
        env = dict(os.environ, OMP_NUM_THREADS=value)
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == value


@pytest.mark.parametrize("dtype", [np.longlong, np.ulonglong, np.intc, np.uintc])
def test_platform_integer_aliases(dtype, rng):
    """longlong/intc share a size with int64/int32 but not NumPy's type number."""
    x = rng.integers(0, 50, size=(2, 3, 6, 6)).astype(dtype)
    got, idx = cypool.max_pool2d(x, 3, 2, 1, return_indices=True)
    want, want_idx = ref.max_pool(x, 2, 3, 2, 1)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(idx, want_idx)
    grad = cypool.max_pool2d_backward(np.ones(got.shape), idx.astype(np.longlong), x.shape)
    assert grad.sum() == got.size
    np.testing.assert_allclose(cypool.avg_pool2d(x, 2), ref.avg_pool(x.astype(np.float64), 2, 2))
