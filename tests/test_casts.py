"""The threaded dtype casts of large inputs and results (``_threads.cast_into``).

float16 is computed in float32 and integers are averaged in float64; for
arrays of ``_args.THREADED_CAST_SIZE`` elements and more the facade casts on
the call's threads instead of NumPy's one.  Every cast must give NumPy's bits.
"""

import numpy as np
import pytest

import cypool
from cypool import _args, _threads

INTS = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def _numpy_cast(src, dtype):
    with np.errstate(all="ignore"):
        return src.astype(dtype)


@pytest.mark.parametrize("threads", [1, 2])
def test_every_half_to_float_is_numpys(threads):
    halves = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    got = np.empty(halves.shape, np.float32)
    assert _threads.cast_into(halves, got, threads)
    np.testing.assert_array_equal(got.view(np.uint32),
                                  _numpy_cast(halves, np.float32).view(np.uint32))


def _float_patterns():
    """Every exponent and sign with the mantissas that decide a rounding: the
    ties (exactly half an ulp of float16), one bit either side, zero, all ones,
    the ties of subnormal halves (a lost bit below the tie) and random ones;
    NaNs with payloads that the half keeps, loses, or keeps only in part."""
    rng = np.random.default_rng(4)
    mantissas = [0, 1, 0x7fffff, 0x1000, 0x0fff, 0x1001, 0x3000, 0x2fff, 0x3001, 0x400000,
                 0x401000, 0x400fff, 0x7fe000, 0x7ff000, 0x7fefff]
    mantissas += [1 << k for k in range(23)]
    mantissas += [(1 << k) | 1 for k in range(23)]
    mantissas += list(rng.integers(0, 1 << 23, 40))
    bits = [(sign << 31) | (exp << 23) | m for sign in (0, 1) for exp in range(256)
            for m in mantissas]
    bits += list(rng.integers(0, 1 << 32, 200_000, dtype=np.uint64))
    return np.array(bits, dtype=np.uint64).astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("threads", [1, 2])
def test_float_to_half_rounds_as_numpy(threads):
    floats = _float_patterns()
    got = np.empty(floats.shape, np.float16)
    assert _threads.cast_into(floats, got, threads)
    want = _numpy_cast(floats, np.float16)
    wrong = np.flatnonzero(got.view(np.uint16) != want.view(np.uint16))
    assert wrong.size == 0, [hex(int(floats.view(np.uint32)[i])) for i in wrong[:5]]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", INTS, ids=lambda d: np.dtype(d).name)
def test_integers_to_double_as_numpy(dtype, threads):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(5)
    values = rng.integers(info.min, info.max, size=70_000, dtype=dtype, endpoint=True)
    values[:4] = [info.min, info.max, 0, info.max - 1]
    got = np.empty(values.shape, np.float64)
    assert _threads.cast_into(values, got, threads)
    np.testing.assert_array_equal(got.view(np.uint64), values.astype(np.float64).view(np.uint64))


def test_other_pairs_and_layouts_are_left_to_numpy():
    x = np.ones((4, 6), np.float32)
    assert not _threads.cast_into(x, np.empty((4, 6), np.float64), 2)
    assert not _threads.cast_into(x.astype(np.float64), np.empty((4, 6), np.float32), 2)
    assert not _threads.cast_into(x[:, ::2].astype(np.float16)[:, ::1].T, np.empty((3, 4), np.float32), 2)
    assert not _threads.cast_into(np.ones((4, 6), np.float16), np.empty((6, 4), np.float32), 2)
    assert not _threads.cast_into(np.ones((4, 6), ">f2"), np.empty((4, 6), np.float32), 2)


@pytest.mark.parametrize("channels_last", [False, True])
def test_large_float16_ops_equal_float32_cast(channels_last):
    """float16 inputs and results of THREADED_CAST_SIZE elements and more,
    NaNs, infinities and values past float16's range in the float32 results
    included: the same bits as computing on NumPy's float32 cast and casting
    back with NumPy."""
    rng = np.random.default_rng(6)
    shape = (2, 8, 96, 96)
    assert np.prod(shape) >= _args.THREADED_CAST_SIZE
    x = _numpy_cast(rng.standard_normal(shape) * 3e4, np.float16)
    x[0, 0, :2] = np.nan
    x[0, 1, :2] = np.inf
    x[1, 2, :2] = -np.inf
    if channels_last:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    x32 = _numpy_cast(x, np.float32)
    kw = dict(channels_last=channels_last)
    calls = [
        lambda a: cypool.max_pool2d(a, 3, 2, 1, **kw),
        lambda a: cypool.avg_pool2d(a, 2, **kw),
        lambda a: cypool.avg_pool2d(a, 3, 1, 1, **kw),          # sums past 65504
        lambda a: cypool.adaptive_max_pool2d(a, 7, **kw),
        lambda a: cypool.lp_pool2d(a, 2, 2, **kw),
        lambda a: cypool.avg_pool2d_backward(a[:, :48, :48] if channels_last else a[..., :48, :48],
                                             a.shape, 2, **kw),
    ]
    for call in calls:
        with np.errstate(over="ignore"):   # NumPy's cast of a small result warns
            got = call(x)
        assert got.dtype == np.float16
        want = _numpy_cast(call(x32), np.float16)
        np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64])
def test_large_integer_averages_equal_float64(dtype):
    rng = np.random.default_rng(7)
    x = rng.integers(0, 100, size=(2, 4, 128, 128)).astype(dtype)
    assert x.size >= _args.THREADED_CAST_SIZE
    for threads in (1, 2):
        got = cypool.avg_pool2d(x, 3, 2, 1, num_threads=threads)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, cypool.avg_pool2d(x.astype(np.float64), 3, 2, 1))
