"""Max unpooling, fractional max pooling and stochastic pooling.

Against the slow reference (tests/reference_sample.py) over dims, both
layouts, the dtype table and edge cases; against PyTorch 2.13 where PyTorch
has the op (values, indices, autograd gradients; skipped without torch);
the sampling distribution of stochastic pooling by a chi-square test; error
messages; thread-count independence.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cypool
from cypool import _args
import reference as ref
import reference_sample as rs

LAYOUTS = [False, True]
LAYOUT_IDS = ["cf", "cl"]
FLOATS = [np.float32, np.float64]
INT_TYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]


def _in_layout(a, channels_last):
    return np.ascontiguousarray(ref.to_channels_last(a)) if channels_last else a


def _from_layout(a, channels_last):
    return ref.from_channels_last(a) if channels_last else a


def _op(name, nd, backward=False):
    return getattr(cypool, f"{name}{nd}d" + ("_backward" if backward else ""))


def _torch():
    return pytest.importorskip("torch")


def _full_range(dtype, shape, rng):
    """Seeded input over the whole range of an integer dtype, or bool."""
    if dtype == np.bool_:
        return rng.random(shape) < 0.3
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


# ================================================================ unpooling

UNPOOL_CASES = [
    # nd, input shape, kernel, stride, padding
    (1, (2, 3, 9), 2, None, 0),
    (1, (2, 3, 8), 3, 2, 1),
    (2, (2, 3, 6, 7), 2, None, 0),
    (2, (2, 2, 7, 6), 3, 2, 1),
    (2, (1, 3, 5, 8), (2, 3), (1, 2), (1, 0)),
    (3, (1, 2, 4, 5, 6), 2, None, 0),
    (3, (2, 2, 5, 4, 5), 3, 2, 1),
]


def _pooled(nd, shape, kernel, stride, padding, rng, dtype=np.float64):
    """A max-pooling input, its pooled values and indices."""
    x = rng.standard_normal(shape).astype(dtype)
    values, indices = ref.max_pool(x, nd, kernel, stride, padding)
    return x, values, indices


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("nd, shape, kernel, stride, padding", UNPOOL_CASES)
def test_unpool_matches_reference(nd, shape, kernel, stride, padding, channels_last, dtype):
    rng = ref.make_rng(nd, shape, kernel)
    x, y, idx = _pooled(nd, shape, kernel, stride, padding, rng, dtype)
    forward, backward = _op("max_unpool", nd), _op("max_unpool", nd, True)
    out_spatial = rs.unpool_output_size(y.shape[2:], nd, kernel, stride, padding)
    if idx.max() >= math.prod(out_spatial):  # the default is smaller than the pooled input
        with pytest.raises(ValueError, match="inside one output plane"):
            forward(_in_layout(y, channels_last), _in_layout(idx, channels_last), kernel, stride,
                    padding, channels_last=channels_last)
    else:
        got = forward(_in_layout(y, channels_last), _in_layout(idx, channels_last), kernel,
                      stride, padding, channels_last=channels_last)
        assert got.dtype == dtype
        np.testing.assert_array_equal(_from_layout(got, channels_last),
                                      rs.max_unpool(y, idx, nd, out_spatial))
    # output_size = the pooled input's shape: where max pooling floored, the default differs
    full = forward(_in_layout(y, channels_last), _in_layout(idx, channels_last), kernel, stride,
                   padding, output_size=_in_layout(x, channels_last).shape,
                   channels_last=channels_last)
    np.testing.assert_array_equal(_from_layout(full, channels_last),
                                  rs.max_unpool(y, idx, nd, x.shape[2:]))

    grad = rng.standard_normal(x.shape).astype(dtype)
    got_grad = backward(_in_layout(grad, channels_last), _in_layout(idx, channels_last),
                        channels_last=channels_last)
    assert got_grad.dtype == dtype
    np.testing.assert_array_equal(_from_layout(got_grad, channels_last),
                                  rs.max_unpool_backward(grad, idx, nd))


@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_unpool_duplicates_last_in_scan_order_wins(channels_last, threads):
    rng = np.random.default_rng(7)
    # many duplicates per plane and enough elements to run threaded
    shape = (4, 600, 4, 4)
    y = rng.standard_normal(shape)
    idx = rng.integers(0, 6, size=shape)
    want = rs.max_unpool(y, idx, 2, (8, 8))
    got = cypool.max_unpool2d(_in_layout(y, channels_last), _in_layout(idx, channels_last), 2,
                              channels_last=channels_last, num_threads=threads)
    np.testing.assert_array_equal(_from_layout(got, channels_last), want)


@pytest.mark.parametrize("dtype", INT_TYPES + [np.bool_, np.float16],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
def test_unpool_moves_every_dtype_exactly(dtype, channels_last, rng):
    if dtype == np.float16:
        y = rng.standard_normal((2, 3, 3, 4)).astype(dtype)
        y[0, 0, 0, :2] = [np.nan, -0.0]
    else:
        y = _full_range(dtype, (2, 3, 3, 4), rng)
    idx = rng.permutation(48)[:12].reshape(3, 4)
    idx = np.broadcast_to(idx, y.shape)
    got = cypool.max_unpool2d(_in_layout(y, channels_last), _in_layout(idx, channels_last), 2,
                              channels_last=channels_last)
    want = rs.max_unpool(y, idx, 2, (6, 8))
    assert got.dtype == y.dtype
    np.testing.assert_array_equal(
        np.ascontiguousarray(_from_layout(got, channels_last)).view(np.uint8), want.view(np.uint8))
    if dtype == np.float16:
        grad = cypool.max_unpool2d_backward(got, _in_layout(idx, channels_last),
                                            channels_last=channels_last)
        assert grad.dtype == np.float16
        np.testing.assert_array_equal(grad.view(np.uint16),
                                      np.ascontiguousarray(_in_layout(y, channels_last)).view(np.uint16))


def test_unpool_integer_gradient_is_float64():
    grad = np.arange(8).reshape(1, 1, 8)
    got = cypool.max_unpool1d_backward(grad, np.array([[[7, 0, 3]]]))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [[[7.0, 0.0, 3.0]]])


@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
def test_unpool_unbatched_and_empty_batch(channels_last, rng):
    _x, y, idx = _pooled(2, (1, 3, 6, 6), 2, None, 0, rng)
    yl, il = _in_layout(y, channels_last), _in_layout(idx, channels_last)
    batched = cypool.max_unpool2d(yl, il, 2, channels_last=channels_last)
    one = cypool.max_unpool2d(yl[0], il[0], 2, output_size=(6, 6), channels_last=channels_last)
    np.testing.assert_array_equal(one, batched[0])
    full = (6, 6, 3) if channels_last else (3, 6, 6)
    np.testing.assert_array_equal(
        cypool.max_unpool2d(yl[0], il[0], 2, output_size=full, channels_last=channels_last), one)
    np.testing.assert_array_equal(
        cypool.max_unpool2d_backward(batched[0], il[0], channels_last=channels_last), yl[0])
    empty = cypool.max_unpool2d(yl[:0], il[:0], 2, channels_last=channels_last)
    assert empty.shape == ((0, 6, 6, 3) if channels_last else (0, 3, 6, 6))
    assert cypool.max_unpool2d_backward(empty, il[:0], channels_last=channels_last).shape == yl[:0].shape


def test_unpool_out_and_inputs_unchanged(rng):
    _x, y, idx = _pooled(2, (2, 3, 6, 6), 2, None, 0, rng, np.float32)
    keep_y, keep_idx = y.copy(), idx.copy()
    out = np.full((2, 3, 6, 6), 9.0, np.float32)
    assert cypool.max_unpool2d(y, idx, 2, out=out) is out
    np.testing.assert_array_equal(out, rs.max_unpool(y, idx, 2, (6, 6)))
    grad_in = np.empty_like(y)
    assert cypool.max_unpool2d_backward(out, idx, out=grad_in) is grad_in
    np.testing.assert_array_equal(grad_in, y)
    np.testing.assert_array_equal(y, keep_y)
    np.testing.assert_array_equal(idx, keep_idx)
    # views and lists are accepted
    got = cypool.max_unpool2d(y[:, ::-1].tolist(), idx[:, ::-1], 2)
    np.testing.assert_array_equal(got, rs.max_unpool(y[:, ::-1], idx[:, ::-1], 2, (6, 6)))


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_unpool_output_size_rule_matches_torch(nd):
    torch = _torch()
    x = torch.randn((1, 2) + (3,) * nd)
    kernel, stride, padding = 3, 2, 1
    default = (3 - 1) * stride + kernel - 2 * padding  # 5
    indices = torch.zeros(x.shape, dtype=torch.int64)
    for size in range(default - stride - 1, default + stride + 2):
        out = (size,) * nd
        try:
            want = getattr(torch.nn.functional, f"max_unpool{nd}d")(
                x, indices, kernel, stride, padding, output_size=out).shape
        except (ValueError, RuntimeError):
            want = None
        try:
            got = _op("max_unpool", nd)(x.numpy(), indices.numpy(), kernel, stride, padding,
                                        output_size=out).shape
        except ValueError:
            got = None
        assert got == (None if want is None else tuple(want)), size


# (callable, kwargs, exception, words in the message)
Y2 = np.zeros((2, 3, 2, 2), np.float32)
I2 = np.zeros((2, 3, 2, 2), np.int64)


def _unpool2(**kwargs):
    args = dict(x=Y2, indices=I2, kernel_size=2)
    args.update(kwargs)
    return cypool.max_unpool2d(**args)


UNPOOL_ERRORS = [
    (dict(indices=np.full((2, 3, 2, 2), 16)), ValueError, ["indices", "[0, 16)", "e.g. 16"]),
    (dict(indices=np.full((2, 3, 2, 2), -1)), ValueError, ["indices", "[0, 16)", "-1"]),
    (dict(indices=np.zeros((2, 3, 2, 3), np.int64)), ValueError, ["indices", "shape of x"]),
    (dict(indices=np.zeros((2, 3, 2, 2))), TypeError, ["indices", "integer dtype", "float64"]),
    (dict(output_size=(6, 4)), ValueError, ["output_size", "strictly between 2 and 6"]),
    (dict(output_size=(4,)), ValueError, ["output_size", "2 spatial sizes", "1 values"]),
    (dict(output_size=(2, 4, 4, 4)), ValueError, ["batch and channel", "(2, 3)"]),
    (dict(output_size=4), TypeError, ["output_size", "tuple"]),
    (dict(kernel_size=0), ValueError, ["kernel_size", ">= 1"]),
    (dict(stride=0), ValueError, ["stride", ">= 1"]),
    (dict(padding=-1), ValueError, ["padding", ">= 0"]),
    (dict(kernel_size=1, padding=1), ValueError, ["output size would be", "padding=1"]),
    (dict(x=Y2.astype(np.complex64)), TypeError, ["complex64"]),
    (dict(x=np.zeros((3, 2)), indices=np.zeros((3, 2), np.int64)), ValueError, ["x must have"]),
    (dict(channels_last=1), TypeError, ["channels_last", "True or False"]),
    (dict(out=np.zeros((2, 3, 4, 4), np.float64)), ValueError, ["out", "dtype float32"]),
    (dict(num_threads=0), ValueError, ["num_threads"]),
]


def _raises_naming(call, exc, words):
    """``call()`` raises ``exc`` whose message holds every one of ``words``."""
    with pytest.raises(exc) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize("kwargs, exc, words", UNPOOL_ERRORS,
                         ids=[str(i) for i in range(len(UNPOOL_ERRORS))])
def test_unpool_errors(kwargs, exc, words):
    _raises_naming(lambda: _unpool2(**kwargs), exc, words)


def test_unpool_bad_index_is_rejected_before_any_write():
    out = np.full((2, 3, 4, 4), 5.0, np.float32)
    idx = I2.copy()
    idx[1, 2, 1, 1] = 99
    with pytest.raises(ValueError, match="1 of them"):
        cypool.max_unpool2d(Y2, idx, 2, out=out)
    assert (out == 5.0).all()
    # an out array sharing memory with the indices could move them mid-kernel
    buffer = np.zeros(48, np.int64)
    with pytest.raises(ValueError, match="overlap"):
        cypool.max_unpool2d(Y2, buffer[:24].reshape(2, 3, 2, 2), 2,
                            out=buffer.view(np.float32)[:96].reshape(2, 3, 4, 4))
    with pytest.raises(ValueError, match="indices must be offsets"):
        cypool.max_unpool2d_backward(np.zeros((2, 3, 4, 4)), np.full((2, 3, 2, 2), 16))
    with pytest.raises(ValueError, match="batch and channel"):
        cypool.max_unpool2d_backward(np.zeros((2, 3, 4, 4)), np.zeros((2, 2, 2, 2), np.int64))


@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("nd, shape, kernel, stride, padding", UNPOOL_CASES)
def test_unpool_matches_torch(nd, shape, kernel, stride, padding, dtype, channels_last):
    torch = _torch()
    rng = ref.make_rng("torch", nd, shape)
    x, y, idx = _pooled(nd, shape, kernel, stride, padding, rng, dtype)
    ty = torch.from_numpy(y).requires_grad_(True)
    unpool = getattr(torch.nn.functional, f"max_unpool{nd}d")
    want = unpool(ty, torch.from_numpy(idx), kernel, stride, padding, output_size=x.shape)
    grad = rng.standard_normal(tuple(want.shape)).astype(dtype)
    want.backward(torch.from_numpy(grad))
    got = _op("max_unpool", nd)(_in_layout(y, channels_last), _in_layout(idx, channels_last),
                                kernel, stride, padding, output_size=x.shape[2:],
                                channels_last=channels_last)
    np.testing.assert_array_equal(_from_layout(got, channels_last), want.detach().numpy())
    got_grad = _op("max_unpool", nd, True)(_in_layout(grad, channels_last),
                                           _in_layout(idx, channels_last),
                                           channels_last=channels_last)
    np.testing.assert_array_equal(_from_layout(got_grad, channels_last), ty.grad.numpy())


def test_unpool_duplicates_match_serial_torch():
    torch = _torch()
    rng = np.random.default_rng(3)
    y = rng.standard_normal((2, 3, 5, 5))
    idx = rng.integers(0, 8, size=y.shape)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        want = torch.nn.functional.max_unpool2d(torch.from_numpy(y), torch.from_numpy(idx),
                                                2).numpy()
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(cypool.max_unpool2d(y, idx, 2), want)


# =============================================================== fractional

FRACTIONAL_CASES = [
    # nd, input shape, kernel, output_size
    (2, (2, 3, 9, 11), 2, (4, 6)),
    (2, (2, 2, 10, 7), (3, 2), (5, 6)),
    (2, (1, 3, 6, 6), 3, (4, 4)),          # out + k - 1 == in: every start fixed
    (2, (2, 2, 7, 5), (1, 3), (1, 2)),     # one output row: start in - k
    (2, (1, 2, 13, 8), 2, (12, 3)),
    (3, (1, 2, 7, 8, 9), 2, (3, 4, 5)),
    (3, (2, 2, 6, 5, 7), (2, 3, 1), (4, 2, 6)),
    (3, (1, 2, 5, 5, 5), 2, (4, 2, 1)),    # out + k - 1 == in, which PyTorch's 3-D rejects
]


def _samples(shape, nd, dtype, rng):
    return rng.random((shape[0], shape[1], nd)).astype(dtype)


@pytest.mark.parametrize("kind", ["randn", "ties", "nan"])
@pytest.mark.parametrize("dtype", FLOATS + [np.float16], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("nd, shape, kernel, out_size", FRACTIONAL_CASES)
def test_fractional_matches_reference(nd, shape, kernel, out_size, channels_last, dtype, kind):
    rng = ref.make_rng(nd, shape, kernel, kind)
    x = ref.make_values(kind, shape, dtype, rng)
    samples = _samples(shape, nd, dtype, rng)
    want, want_idx = rs.fractional_max_pool(x, nd, kernel, out_size, samples)
    got, got_idx = _op("fractional_max_pool", nd)(
        _in_layout(x, channels_last), kernel, out_size, return_indices=True,
        _random_samples=samples, channels_last=channels_last)
    assert got.dtype == dtype and got_idx.dtype == np.int64
    np.testing.assert_array_equal(_from_layout(got, channels_last), want)
    np.testing.assert_array_equal(_from_layout(got_idx, channels_last), want_idx)
    grad = rng.standard_normal(want.shape).astype(dtype)
    got_grad = _op("fractional_max_pool", nd, True)(
        _in_layout(grad, channels_last), got_idx, _in_layout(x, channels_last).shape,
        channels_last=channels_last)
    np.testing.assert_allclose(_from_layout(got_grad, channels_last),
                               ref.max_pool_backward(grad, want_idx, shape), rtol=1e-3)


@pytest.mark.parametrize("dtype", INT_TYPES + [np.bool_], ids=lambda d: np.dtype(d).name)
def test_fractional_keeps_integer_dtypes(dtype, rng):
    x = _full_range(dtype, (2, 3, 9, 8), rng)
    x[0, 0] = x.min()  # a plane of equal values: every window's first element wins
    samples = rng.random((2, 3, 2))
    for channels_last in LAYOUTS:
        got, idx = cypool.fractional_max_pool2d(_in_layout(x, channels_last), 2, (5, 4),
                                                return_indices=True, _random_samples=samples,
                                                channels_last=channels_last)
        want, want_idx = rs.fractional_max_pool(x.astype(np.int64) if dtype == np.bool_ else x,
                                                2, 2, (5, 4), samples)
        assert got.dtype == dtype
        np.testing.assert_array_equal(_from_layout(got, channels_last), want.astype(dtype))
        np.testing.assert_array_equal(_from_layout(idx, channels_last), want_idx)


def test_every_native_int64_type_has_a_loop(rng):
    """long long is int64 with another type number; the loops go by kind and size."""
    x = rng.integers(-50, 50, size=(1, 2, 6, 6)).astype(np.longlong)
    got = cypool.fractional_max_pool2d(x, 2, 3, rng=0)
    np.testing.assert_array_equal(got, cypool.fractional_max_pool2d(x.astype(np.int64), 2, 3,
                                                                    rng=0))
    idx = np.zeros((1, 2, 3, 3), np.longlong)
    assert cypool.max_unpool2d(x[..., :3, :3], idx, 2).dtype == np.longlong


def test_fractional_interval_table():
    """Starts along one axis, against the scalar reference, over sizes and samples."""
    from cypool import _fractional
    rng = np.random.default_rng(1)
    for dtype in (np.float16, np.float32, np.float64):
        samples = np.concatenate([[0, 0.5, np.nextafter(dtype(1), dtype(0))],
                                  rng.random(20)]).astype(dtype)
        for in_size, kernel, out_size in [(10, 2, 5), (10, 3, 8), (7, 7, 1), (100, 3, 33),
                                          (50, 1, 50), (9, 2, 2)]:
            got = _fractional.interval_starts(samples, in_size, out_size, kernel)
            for u, row in zip(samples, got):
                want = rs.fractional_intervals(u, in_size, out_size, kernel)
                assert row.tolist() == want, (dtype, in_size, kernel, out_size, u)
                steps = np.diff(row)
                assert row[0] >= 0 and row[-1] == in_size - kernel and (steps >= 0).all()
        # the whole table ([D], H, W columns), threaded, is the same axis by axis
        many = rng.random((5000, 2)).astype(dtype)
        table = _fractional.window_starts(many, (20, 15), (7, 6), (3, 2), 2)
        assert (table[:, 0] == 0).all()
        assert (table[:, 1:8] == _fractional.interval_starts(many[:, 1], 20, 7, 3)).all()
        assert (table[:, 8:] == _fractional.interval_starts(many[:, 0], 15, 6, 2)).all()


def test_fractional_rng_and_ratio(rng):
    x = rng.standard_normal((2, 3, 12, 10)).astype(np.float32)
    a = cypool.fractional_max_pool2d(x, 2, output_ratio=0.5, return_indices=True, rng=5)
    b = cypool.fractional_max_pool2d(x, 2, output_ratio=(0.5, 0.5), return_indices=True,
                                     rng=np.random.default_rng(5))
    c = cypool.fractional_max_pool2d(x, 2, output_size=(6, 5), return_indices=True,
                                     _random_samples=np.random.default_rng(5).random(
                                         (2, 3, 2), dtype=np.float32))
    for first, second in ((a, b), (a, c)):
        np.testing.assert_array_equal(first[0], second[0])
        np.testing.assert_array_equal(first[1], second[1])
    assert a[0].shape == (2, 3, 6, 5)
    assert cypool.fractional_max_pool2d(x, 2, output_ratio=(0.34, 0.75)).shape == (2, 3, 4, 7)
    # a layout does not change the draws; unbatched takes samples (1, C, 2)
    cl = cypool.fractional_max_pool2d(np.moveaxis(x, 1, -1), 2, output_ratio=0.5, rng=5,
                                      channels_last=True)
    np.testing.assert_array_equal(np.moveaxis(cl, -1, 1), a[0])
    samples = rng.random((1, 3, 2))
    np.testing.assert_array_equal(
        cypool.fractional_max_pool2d(x[1], 2, (6, 5), _random_samples=samples),
        cypool.fractional_max_pool2d(x[1:], 2, (6, 5), _random_samples=samples)[0])
    # extra sample rows (N' > N) are ignored, as in PyTorch
    more = rng.random((4, 3, 2))
    np.testing.assert_array_equal(
        cypool.fractional_max_pool2d(x, 2, (6, 5), _random_samples=more),
        cypool.fractional_max_pool2d(x, 2, (6, 5), _random_samples=more[:2]))
    empty = cypool.fractional_max_pool2d(x[:0], 2, (6, 5), return_indices=True, rng=0)
    assert empty[0].shape == (0, 3, 6, 5) and empty[1].shape == (0, 3, 6, 5)
    # float16 draws stay below 1
    half = cypool.fractional_max_pool3d(np.ones((1, 2, 4, 4, 4), np.float16), 2, 3, rng=1)
    assert half.dtype == np.float16


X4 = np.zeros((2, 3, 8, 8), np.float32)


def _frac2(**kwargs):
    args = dict(x=X4, kernel_size=2, output_size=4)
    args.update(kwargs)
    return cypool.fractional_max_pool2d(**args)


FRACTIONAL_ERRORS = [
    (dict(output_size=None), ValueError, ["exactly one", "output_ratio"]),
    (dict(output_ratio=0.5), ValueError, ["exactly one"]),
    (dict(output_size=None, output_ratio=1.0), ValueError, ["output_ratio", "between 0 and 1"]),
    (dict(output_size=None, output_ratio=0), ValueError, ["output_ratio", "between 0 and 1"]),
    (dict(output_size=None, output_ratio=(0.5, -0.1)), ValueError, ["output_ratio", "-0.1"]),
    (dict(output_size=None, output_ratio=(0.5,)), ValueError, ["output_ratio", "2 floats"]),
    (dict(output_size=None, output_ratio="half"), TypeError, ["output_ratio", "str"]),
    (dict(output_size=None, output_ratio=0.1), ValueError, ["output size 0", "int(8 * 0.1)"]),
    (dict(output_size=8), ValueError, ["output_size + kernel_size - 1 <= input size",
                                       "8 + 2 - 1 > 8"]),
    (dict(kernel_size=9, output_size=1), ValueError, ["1 + 9 - 1 > 8"]),
    (dict(output_size=0), ValueError, ["output_size", ">= 1"]),
    (dict(kernel_size=(2, 0)), ValueError, ["kernel_size", ">= 1"]),
    (dict(_random_samples=np.zeros((2, 3, 3))), ValueError, ["_random_samples", "(N', 3, 2)"]),
    (dict(_random_samples=np.zeros((1, 3, 2))), ValueError, ["N' >= the batch size 2"]),
    (dict(_random_samples=np.ones((2, 3, 2))), ValueError, ["[0, 1)"]),
    (dict(_random_samples=np.full((2, 3, 2), np.nan)), ValueError, ["[0, 1)"]),
    (dict(_random_samples=np.zeros((2, 3, 2), complex)), TypeError, ["_random_samples"]),
    (dict(_random_samples=np.zeros((2, 3, 2)), rng=0), ValueError, ["either", "not both"]),
    (dict(rng=1.5), TypeError, ["rng", "Generator"]),
    (dict(rng=-1), ValueError, ["rng", "non-negative"]),
    (dict(rng=np.random.RandomState(0)), TypeError, ["rng", "RandomState"]),
    (dict(x=X4.astype(np.complex64)), TypeError, ["complex64"]),
    (dict(return_indices=None), TypeError, ["return_indices"]),
    (dict(x=np.zeros((2, 8, 8, 8, 1))), ValueError, ["x must have 3", "or 4"]),
]


@pytest.mark.parametrize("kwargs, exc, words", FRACTIONAL_ERRORS,
                         ids=[str(i) for i in range(len(FRACTIONAL_ERRORS))])
def test_fractional_errors(kwargs, exc, words):
    _raises_naming(lambda: _frac2(**kwargs), exc, words)


def test_fractional_float16_rounding_outside_input_is_rejected():
    """float16 arithmetic can round a start past in - kernel on large inputs."""
    from cypool import _fractional
    with pytest.raises(ValueError, match="wider float dtype"):
        _fractional.interval_starts(np.array([0.5], np.float16), 2000, 1995, 1)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("nd, shape, kernel, out_size",
                         [case for case in FRACTIONAL_CASES if not (case[0] == 3 and any(
                             o + k - 1 == s for o, k, s in zip(
                                 case[3], np.broadcast_to(case[2], 3), case[1][2:])))])
def test_fractional_matches_torch(nd, shape, kernel, out_size, dtype):
    torch = _torch()
    rng = ref.make_rng("torch-frac", nd, shape, dtype)
    x = ref.make_values("nan", shape, dtype, rng)
    samples = _samples(shape, nd, dtype, rng)
    tx = torch.from_numpy(x).requires_grad_(dtype != np.float16)
    pool = getattr(torch.nn.functional, f"fractional_max_pool{nd}d")
    values, indices = pool(tx, kernel, output_size=out_size, return_indices=True,
                           _random_samples=torch.from_numpy(samples))
    got, got_idx = _op("fractional_max_pool", nd)(x, kernel, out_size, return_indices=True,
                                                  _random_samples=samples)
    np.testing.assert_array_equal(got, values.detach().numpy())
    np.testing.assert_array_equal(got_idx, indices.numpy())
    cl, cl_idx = _op("fractional_max_pool", nd)(_in_layout(x, True), kernel, out_size,
                                                return_indices=True, _random_samples=samples,
                                                channels_last=True)
    np.testing.assert_array_equal(_from_layout(cl_idx, True), indices.numpy())
    if dtype != np.float16:
        grad = rng.standard_normal(tuple(values.shape)).astype(dtype)
        values.backward(torch.from_numpy(grad))
        got_grad = _op("fractional_max_pool", nd, True)(grad, got_idx, x.shape)
        np.testing.assert_allclose(got_grad, tx.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_fractional_ratio_size_matches_torch():
    torch = _torch()
    x = torch.randn(1, 2, 13, 11, 9)
    for ratio in (0.3, 0.5, (0.4, 0.7, 0.55)):
        want = torch.nn.functional.fractional_max_pool3d(x, 2, output_ratio=ratio).shape
        assert cypool.fractional_max_pool3d(x.numpy(), 2, output_ratio=ratio,
                                            rng=0).shape == tuple(want)


# =============================================================== stochastic

STOCHASTIC_CASES = [
    # nd, input shape, kernel, stride, padding
    (1, (2, 3, 9), 2, None, 0),
    (1, (2, 3, 8), 3, 2, 1),
    (1, (1, 2, 7), 4, 1, "same"),
    (2, (2, 3, 6, 7), 2, None, 0),
    (2, (2, 2, 7, 6), 3, 2, 1),
    (2, (1, 2, 5, 8), (2, 3), (1, 2), (1, 0)),
    (3, (1, 2, 4, 5, 6), 2, None, 0),
    (3, (2, 2, 5, 4, 5), 3, 2, 1),
]
STOCHASTIC_KINDS = ["randn", "relu", "nan", "inf-mix"]


def _stochastic_values(kind, shape, dtype, rng):
    if kind == "relu":
        return np.maximum(ref.make_values("randn", shape, np.float64, rng), 0).astype(dtype)
    return ref.make_values(kind, shape, dtype, rng)


def _uniforms(seed, shape):
    """The uniforms cypool draws from ``seed``: one per output, channels-first order."""
    return np.random.default_rng(seed).random(shape)


@pytest.mark.parametrize("kind", STOCHASTIC_KINDS)
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("nd, shape, kernel, stride, padding", STOCHASTIC_CASES)
def test_stochastic_matches_reference(nd, shape, kernel, stride, padding, channels_last, dtype,
                                      kind):
    rng = ref.make_rng(nd, shape, kernel, kind)
    x = _stochastic_values(kind, shape, dtype, rng)
    forward, backward = _op("stochastic_pool", nd), _op("stochastic_pool", nd, True)
    xl = _in_layout(x, channels_last)
    kw = dict(channels_last=channels_last)

    values, indices = forward(xl, kernel, stride, padding, rng=11, return_indices=True, **kw)
    uniforms = _uniforms(11, _from_layout(values, channels_last).shape)
    want, want_idx = rs.stochastic_pool(x, nd, kernel, stride, padding, True, uniforms)
    assert values.dtype == dtype and indices.dtype == np.int64
    np.testing.assert_array_equal(_from_layout(values, channels_last), want)
    np.testing.assert_array_equal(_from_layout(indices, channels_last), want_idx)

    mean = forward(xl, kernel, stride, padding, training=False, **kw)
    want_mean, _ = rs.stochastic_pool(x, nd, kernel, stride, padding, False)
    np.testing.assert_array_equal(_from_layout(mean, channels_last), want_mean)

    grad = rng.standard_normal(want.shape).astype(dtype)
    gl = _in_layout(grad, channels_last)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for with_x in (False, True):
        got = backward(gl, xl.shape, kernel, stride, padding, indices=indices,
                       x=xl if with_x else None, **kw)
        np.testing.assert_allclose(
            _from_layout(got, channels_last),
            rs.stochastic_pool_backward(grad, x, nd, kernel, stride, padding, True, want_idx,
                                        mask_with_x=with_x), **tol)
    got = backward(gl, xl.shape, kernel, stride, padding, training=False, x=xl, **kw)
    want_grad = rs.stochastic_pool_backward(grad, x, nd, kernel, stride, padding, False)
    np.testing.assert_allclose(_from_layout(got, channels_last), want_grad, equal_nan=True, **tol)


def test_stochastic_edge_windows():
    """All-zero and all-negative windows, NaN and +inf, in one 1-D row."""
    x = np.array([[[0., 0., -1., -2., 2., np.nan, 1., np.inf, np.inf, 5., 0., 4.]]])
    values, idx = cypool.stochastic_pool1d(x, 2, rng=0, return_indices=True)
    np.testing.assert_array_equal(values[0, 0, :2], [0.0, 0.0])     # no positive activation
    np.testing.assert_array_equal(idx[0, 0, :2], [0, 2])             # their first element
    assert np.isnan(values[0, 0, 2]) and idx[0, 0, 2] == 5           # 2 then NaN: NaN wins
    np.testing.assert_array_equal(values[0, 0, 3:5], [np.inf, np.inf])
    np.testing.assert_array_equal(idx[0, 0, 3:5], [7, 8])            # the first +inf
    assert values[0, 0, 5] == 4.0 and idx[0, 0, 5] == 11
    mean = cypool.stochastic_pool1d(x, 2, training=False)
    np.testing.assert_array_equal(mean[0, 0, [0, 1, 5]], [0.0, 0.0, 4.0])
    assert np.isnan(mean[0, 0, 2]) and np.isnan(mean[0, 0, 4])      # NaN, inf / inf
    # float overflow of the running sum takes the element where it overflows
    big = np.array([[[1e308, 1e308, 1e308]]])
    assert cypool.stochastic_pool1d(big, 3, rng=0, return_indices=True)[1][0, 0, 0] in (0, 1)


def test_stochastic_backward_exact_gradients():
    """Finite differences of the eval output and of the training output with
    fixed draws (small steps never change the sampled element here)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 5, 5))
    x[0, 0, :2, :2] = -np.abs(x[0, 0, :2, :2])                        # a window with no positive
    grad = rng.standard_normal((1, 2, 3, 3))
    for training in (False, True):
        def loss(values):
            out = cypool.stochastic_pool2d(values, 2, 2, 1, training=training, rng=9)
            return float((out * grad).sum())
        kw = dict(training=training, x=x)
        if training:
            kw["indices"] = cypool.stochastic_pool2d(x, 2, 2, 1, rng=9, return_indices=True)[1]
        got = cypool.stochastic_pool2d_backward(grad, x.shape, 2, 2, 1, **kw)
        numeric = np.zeros_like(x)
        step = 1e-6
        for i in np.ndindex(*x.shape):
            if abs(x[i]) < 1e-3:
                continue
            up, down = x.copy(), x.copy()
            up[i] += step
            down[i] -= step
            numeric[i] = (loss(up) - loss(down)) / (2 * step)
        np.testing.assert_allclose(got, numeric, rtol=1e-5, atol=1e-6)


def _chi_square_survival_even(statistic, dof):
    """P(chi2 with even ``dof`` >= statistic): exp(-x/2) * sum_j<dof/2 (x/2)^j / j!."""
    half = statistic / 2
    return math.exp(-half) * sum(half ** j / math.factorial(j) for j in range(dof // 2))


@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
def test_stochastic_samples_in_proportion_to_activations(channels_last):
    """Chi-square test of 40000 seeded draws from one fixed window."""
    window = np.array([0.5, 1.0, 0.0, 2.5, -1.0, 3.0, 1.5])
    draws = 40000
    x = np.broadcast_to(window, (1, draws, 7)).reshape(1, draws, 7)
    _values, idx = cypool.stochastic_pool1d(_in_layout(x, channels_last), 7, rng=2024,
                                            return_indices=True, channels_last=channels_last)
    counts = np.bincount(idx.ravel(), minlength=7)
    assert counts[2] == 0 and counts[4] == 0               # zero and negative: never taken
    positive = window > 0
    expected = draws * window[positive] / window[positive].sum()
    statistic = float((((counts[positive] - expected) ** 2) / expected).sum())
    p_value = _chi_square_survival_even(statistic, int(positive.sum()) - 1)
    assert p_value > 1e-3, (counts, statistic, p_value)


def test_stochastic_training_mean_is_eval_output():
    """E[training output] = sum(a+^2)/sum(a+), over many draws of random windows."""
    rng = np.random.default_rng(8)
    windows = np.maximum(rng.standard_normal((6, 3, 3)), -0.2)
    draws = 4000
    x = np.broadcast_to(windows[:, None], (6, draws, 3, 3)).copy()
    sampled = cypool.stochastic_pool2d(x, 3, rng=1)[:, :, 0, 0]
    mean = cypool.stochastic_pool2d(windows[:, None], 3, training=False)[:, 0, 0, 0]
    spread = sampled.std(axis=1) / math.sqrt(draws)
    assert (np.abs(sampled.mean(axis=1) - mean) < 5 * spread + 1e-12).all()


@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
def test_stochastic_reproducible_for_any_thread_count(channels_last):
    rng = np.random.default_rng(5)
    # large enough for the calls to use their threads (_args.SERIAL_BELOW)
    x = _in_layout(np.abs(rng.standard_normal((2, 16, 96, 96))).astype(np.float32), channels_last)
    assert x.size >= _args.SERIAL_BELOW
    kw = dict(channels_last=channels_last)
    one = cypool.stochastic_pool2d(x, 3, 2, 1, rng=3, return_indices=True, num_threads=1, **kw)
    grad = np.ones_like(one[0])
    for threads in (2, 3):
        many = cypool.stochastic_pool2d(x, 3, 2, 1, rng=np.random.default_rng(3),
                                        return_indices=True, num_threads=threads, **kw)
        np.testing.assert_array_equal(one[0], many[0])
        np.testing.assert_array_equal(one[1], many[1])
        for training, extra in ((True, dict(indices=one[1])), (False, dict(x=x))):
            np.testing.assert_array_equal(
                cypool.stochastic_pool2d_backward(grad, x.shape, 3, 2, 1, training=training,
                                                  num_threads=1, **extra, **kw),
                cypool.stochastic_pool2d_backward(grad, x.shape, 3, 2, 1, training=training,
                                                  num_threads=threads, **extra, **kw))
    # a new seed gives new draws
    other = cypool.stochastic_pool2d(x, 3, 2, 1, rng=4, return_indices=True, **kw)
    assert not np.array_equal(one[1], other[1])


def test_stochastic_dtypes_unbatched_and_out(rng):
    x = rng.integers(-3, 10, size=(2, 3, 6, 6)).astype(np.int16)
    got = cypool.stochastic_pool2d(x, 2, training=False)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, rs.stochastic_pool(x, 2, 2, training=False)[0])
    half = cypool.stochastic_pool2d(x.astype(np.float16), 2, rng=0)
    assert half.dtype == np.float16
    np.testing.assert_array_equal(half, cypool.stochastic_pool2d(x.astype(np.float32), 2, rng=0))
    batched, idx = cypool.stochastic_pool2d(x[:1], 2, rng=1, return_indices=True)
    single, single_idx = cypool.stochastic_pool2d(x[0], 2, rng=1, return_indices=True)
    np.testing.assert_array_equal(single, batched[0])
    np.testing.assert_array_equal(single_idx, idx[0])
    grad = cypool.stochastic_pool2d_backward(np.ones((3, 3, 3)), (3, 6, 6), 2, indices=single_idx)
    assert grad.shape == (3, 6, 6) and grad.sum() == 27
    values, indices = np.empty((2, 3, 3, 3)), np.empty((2, 3, 3, 3), np.int64)
    result = cypool.stochastic_pool2d(x, 2, rng=1, return_indices=True, out=(values, indices))
    assert result[0] is values and result[1] is indices
    empty = cypool.stochastic_pool2d(np.zeros((0, 3, 6, 6)), 2, rng=1, return_indices=True)
    assert empty[0].shape == (0, 3, 3, 3)
    keep = x.copy()
    cypool.stochastic_pool2d_backward(np.ones((2, 3, 3, 3)), x.shape, 2, training=False, x=x)
    np.testing.assert_array_equal(x, keep)


XS = np.ones((2, 3, 6, 6), np.float32)
GS = np.ones((2, 3, 3, 3), np.float32)
IS = np.zeros((2, 3, 3, 3), np.int64)

STOCHASTIC_ERRORS = [
    (lambda: cypool.stochastic_pool2d(XS.astype(bool), 2), TypeError, ["bool", "stochastic"]),
    (lambda: cypool.stochastic_pool2d(XS, 2, training=False, return_indices=True), ValueError,
     ["return_indices", "training=True"]),
    (lambda: cypool.stochastic_pool2d(XS, 2, training=1), TypeError, ["training"]),
    (lambda: cypool.stochastic_pool2d(XS, 2, rng="seed"), TypeError, ["rng"]),
    (lambda: cypool.stochastic_pool2d(XS, 2, training=False, rng="seed"), TypeError, ["rng"]),
    (lambda: cypool.stochastic_pool2d(XS, 2, padding=2), ValueError, ["padding"]),
    (lambda: cypool.stochastic_pool2d(XS, 7), ValueError, ["output size would be"]),
    (lambda: cypool.stochastic_pool2d_backward(GS, XS.shape, 2), ValueError,
     ["needs indices", "return_indices=True"]),
    (lambda: cypool.stochastic_pool2d_backward(GS, XS.shape, 2, training=False), ValueError,
     ["needs x"]),
    (lambda: cypool.stochastic_pool2d_backward(GS, XS.shape, 2, training=False, indices=IS,
                                               x=XS), ValueError, ["only used with training=True"]),
    (lambda: cypool.stochastic_pool2d_backward(GS, XS.shape, 2, indices=IS[..., :2]), ValueError,
     ["indices", "shape of grad_output"]),
    (lambda: cypool.stochastic_pool2d_backward(GS, XS.shape, 2, indices=IS + 36), ValueError,
     ["input plane", "[0, 36)"]),
    (lambda: cypool.stochastic_pool2d_backward(GS[..., :2], XS.shape, 2, indices=IS), ValueError,
     ["grad_output must have shape (2, 3, 3, 3)"]),
    (lambda: cypool.stochastic_pool2d_backward(GS, XS.shape, 2, training=False, x=XS[:1]),
     ValueError, ["x must have shape"]),
    (lambda: cypool.stochastic_pool2d_backward(GS, XS.shape, 2, indices=IS,
                                               out=np.zeros(XS.shape, np.int64)),
     ValueError, ["out", "dtype float32"]),
]


@pytest.mark.parametrize("call, exc, words", STOCHASTIC_ERRORS,
                         ids=[str(i) for i in range(len(STOCHASTIC_ERRORS))])
def test_stochastic_errors(call, exc, words):
    _raises_naming(call, exc, words)


# =================================================== properties (hypothesis)

@st.composite
def _fractional_geometry(draw):
    nd = draw(st.sampled_from([2, 3]))
    spatial = tuple(draw(st.integers(1, 7)) for _ in range(nd))
    kernel = tuple(draw(st.integers(1, size)) for size in spatial)
    out = tuple(draw(st.integers(1, size - k + 1)) for size, k in zip(spatial, kernel))
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    return nd, spatial, kernel, out, dtype, draw(st.integers(0, 2**32 - 1)), draw(st.booleans())


@given(_fractional_geometry())
def test_fractional_any_geometry_matches_reference(case):
    nd, spatial, kernel, out, dtype, seed, channels_last = case
    rng = np.random.default_rng(seed)
    x = ref.make_values("ties", (2, 2) + spatial, dtype, rng)
    samples = rng.random((2, 2, nd)).astype(dtype)
    samples = np.minimum(samples, np.nextafter(dtype(1), dtype(0)))
    want, want_idx = rs.fractional_max_pool(x, nd, kernel, out, samples)
    got, idx = _op("fractional_max_pool", nd)(_in_layout(x, channels_last), kernel, out,
                                              return_indices=True, _random_samples=samples,
                                              channels_last=channels_last)
    np.testing.assert_array_equal(_from_layout(got, channels_last), want)
    np.testing.assert_array_equal(_from_layout(idx, channels_last), want_idx)


@st.composite
def _stochastic_geometry(draw):
    nd = draw(st.integers(1, 3))
    spatial = tuple(draw(st.integers(1, 6)) for _ in range(nd))
    kernel = tuple(draw(st.integers(1, size)) for size in spatial)
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    return nd, spatial, kernel, stride, padding, draw(st.integers(0, 2**32 - 1)), draw(
        st.booleans())


@given(_stochastic_geometry())
def test_stochastic_any_geometry_matches_reference(case):
    nd, spatial, kernel, stride, padding, seed, channels_last = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2) + spatial)
    kw = dict(channels_last=channels_last)
    values, idx = _op("stochastic_pool", nd)(_in_layout(x, channels_last), kernel, stride,
                                             padding, rng=seed, return_indices=True, **kw)
    uniforms = _uniforms(seed, _from_layout(values, channels_last).shape)
    want, want_idx = rs.stochastic_pool(x, nd, kernel, stride, padding, True, uniforms)
    np.testing.assert_array_equal(_from_layout(values, channels_last), want)
    np.testing.assert_array_equal(_from_layout(idx, channels_last), want_idx)
    mean = _op("stochastic_pool", nd)(_in_layout(x, channels_last), kernel, stride, padding,
                                      training=False, **kw)
    np.testing.assert_array_equal(_from_layout(mean, channels_last),
                                  rs.stochastic_pool(x, nd, kernel, stride, padding, False)[0])


@given(st.integers(1, 3), st.integers(0, 2**32 - 1), st.booleans())
def test_unpool_inverts_max_pool_on_its_maxima(nd, seed, channels_last):
    """unpool(max_pool(x)) keeps each pooled maximum at its place, zeros elsewhere;
    its backward on x gives back the pooled values."""
    rng = np.random.default_rng(seed)
    spatial = tuple(int(v) for v in rng.integers(2, 7, nd))
    x = _in_layout(rng.standard_normal((2, 3) + spatial), channels_last)
    kw = dict(channels_last=channels_last)
    y, idx = _op("max_pool", nd)(x, 2, 1, return_indices=True, **kw)
    u = _op("max_unpool", nd)(y, idx, 2, 1, output_size=x.shape, **kw)
    kept = u != 0
    np.testing.assert_array_equal(u[kept], x[kept])
    np.testing.assert_array_equal(_op("max_unpool", nd, True)(x, idx, **kw), y)
