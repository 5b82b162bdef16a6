"""Every bad argument gives a ValueError/TypeError naming the argument, before any work."""

import numpy as np
import pytest

import cypool

X2 = np.zeros((2, 3, 8, 8), dtype=np.float32)


def _max2(**kwargs):
    args = dict(kernel_size=2)
    args.update(kwargs)
    x = args.pop("x", X2)
    return cypool.max_pool2d(x, **args)


def _avg2(**kwargs):
    args = dict(kernel_size=2)
    args.update(kwargs)
    x = args.pop("x", X2)
    return cypool.avg_pool2d(x, **args)


# (callable, kwargs, exception, words the message must contain)
CASES = [
    (_max2, dict(kernel_size=0), ValueError, ["kernel_size", ">= 1", "0"]),
    (_max2, dict(kernel_size=-3), ValueError, ["kernel_size", "-3"]),
    (_max2, dict(kernel_size=(2, 2, 2)), ValueError, ["kernel_size", "tuple of 2", "3 values"]),
    (_max2, dict(kernel_size=(2,)), ValueError, ["kernel_size", "tuple of 2"]),
    (_max2, dict(kernel_size=2.5), TypeError, ["kernel_size", "float"]),
    (_max2, dict(kernel_size="2"), TypeError, ["kernel_size", "str"]),
    (_max2, dict(kernel_size=True), TypeError, ["kernel_size", "bool"]),
    (_max2, dict(kernel_size=2**40), ValueError, ["kernel_size", "<= 2147483647"]),
    (_max2, dict(stride=0), ValueError, ["stride", ">= 1"]),
    (_max2, dict(stride=(1, -1)), ValueError, ["stride", "(1, -1)"]),
    (_max2, dict(padding=-1), ValueError, ["padding", ">= 0"]),
    (_max2, dict(padding=2), ValueError, ["padding", "kernel_size // 2"]),
    (_max2, dict(kernel_size=3, padding=(1, 2)), ValueError, ["padding", "half the kernel size"]),
    (_max2, dict(padding="full"), ValueError, ["padding", "'valid' or 'same'", "'full'"]),
    (_max2, dict(padding=1.0), TypeError, ["padding", "float"]),
    (_max2, dict(dilation=0), ValueError, ["dilation", ">= 1"]),
    (_max2, dict(ceil_mode="yes"), TypeError, ["ceil_mode", "True or False"]),
    (_max2, dict(return_indices=1), TypeError, ["return_indices", "True or False"]),
    (_max2, dict(channels_last=None), TypeError, ["channels_last", "True or False"]),
    (_max2, dict(kernel_size=9), ValueError, ["output size would be", "window span"]),
    (_max2, dict(kernel_size=3, dilation=4), ValueError, ["output size would be", "dilation"]),
    (_max2, dict(x=np.zeros((1, 1, 3, 3)), kernel_size=2, padding=1, dilation=4), ValueError,
     ["holds no input element", "padding"]),
    (_max2, dict(x=np.zeros((8, 8))), ValueError, ["x must have 3", "or 4", "(8, 8)"]),
    (_max2, dict(x=np.zeros((1, 1, 1, 8, 8))), ValueError, ["x must have", "2-D"]),
    (_max2, dict(x=np.zeros((2, 3, 0, 8))), ValueError, ["non-zero", "(2, 3, 0, 8)"]),
    (_max2, dict(x=np.zeros((2, 0, 8, 8))), ValueError, ["non-zero"]),
    (_max2, dict(x=np.float32(3.0)), ValueError, ["x must have"]),
    (_max2, dict(x=np.zeros((1, 1, 4, 4), dtype=np.complex64)), TypeError, ["complex64", "max pooling"]),
    (_max2, dict(x=np.zeros((1, 1, 4, 4), dtype=object)), TypeError, ["object"]),
    (_max2, dict(x=np.zeros((1, 1, 4, 4), dtype="U1")), TypeError, ["str32", "max pooling"]),
    (_max2, dict(x=np.zeros((1, 1, 4, 4), dtype="M8[s]")), TypeError, ["datetime64"]),
    (_avg2, dict(x=np.zeros((1, 1, 4, 4), dtype=bool)), TypeError, ["bool", "average pooling"]),
    (_avg2, dict(x=np.zeros((1, 1, 4, 4), dtype=np.complex128)), TypeError, ["complex128"]),
    (_avg2, dict(divisor_override=0), ValueError, ["divisor_override", "non-zero"]),
    (_avg2, dict(divisor_override=1.5), TypeError, ["divisor_override", "float"]),
    (_avg2, dict(count_include_pad=None), TypeError, ["count_include_pad"]),
    (_avg2, dict(num_threads=0), ValueError, ["num_threads", "positive"]),
    (_avg2, dict(num_threads=2.0), TypeError, ["num_threads"]),
    (_max2, dict(out=np.zeros((2, 3, 4, 4), dtype=np.float64)), ValueError, ["out", "dtype float32"]),
    (_max2, dict(out=np.zeros((2, 3, 4, 5), dtype=np.float32)), ValueError, ["out", "shape (2, 3, 4, 4)"]),
    (_max2, dict(out=np.zeros((2, 3, 4, 8), dtype=np.float32)[..., ::2]), ValueError, ["C-contiguous"]),
    (_max2, dict(out=[0.0]), TypeError, ["out", "numpy.ndarray"]),
    (_max2, dict(out=np.zeros((2, 3, 4, 4), dtype=np.float32), return_indices=True), TypeError,
     ["tuple (values, indices)"]),
]


@pytest.mark.parametrize("func, kwargs, exc, words", CASES,
                         ids=[f"{c[0].__name__}-{sorted(c[1])}-{i}" for i, c in enumerate(CASES)])
def test_bad_argument(func, kwargs, exc, words):
    with pytest.raises(exc) as info:
        func(**kwargs)
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_output_sizes_as_numpy_arrays():
    """A 1-D integer array is an output size like a tuple, in every op that
    takes one; float and bool items are refused as in a tuple.  (Window
    arguments take no arrays: see test_adversarial.)"""
    x = np.random.default_rng(0).standard_normal((1, 2, 14, 14)).astype(np.float32)
    sizes = np.array(x.shape[2:]) // 2
    np.testing.assert_array_equal(cypool.fractional_max_pool2d(x, 2, sizes, rng=0),
                                  cypool.fractional_max_pool2d(x, 2, (7, 7), rng=0))
    np.testing.assert_array_equal(cypool.adaptive_avg_pool2d(x, sizes),
                                  cypool.adaptive_avg_pool2d(x, (7, 7)))
    y, idx = cypool.max_pool2d(x, 2, return_indices=True)
    assert cypool.max_unpool2d(y, idx, 2, output_size=np.array([15, 14])).shape == (1, 2, 15, 14)
    for op in (lambda s: cypool.fractional_max_pool2d(x, 2, s, rng=0),
               lambda s: cypool.adaptive_max_pool2d(x, s)):
        with pytest.raises(TypeError, match="output_size must be an int, got float 7.0"):
            op(np.array([7.0, 7.0]))
        with pytest.raises(TypeError, match="output_size must be an int, got bool True"):
            op(np.array([True, True]))
        with pytest.raises(ValueError, match=r"output_size must be .*2 ints.*\(7, 7, 7\)"):
            op(np.array([7, 7, 7]))


def test_read_only_out_is_rejected():
    out = np.zeros((2, 3, 4, 4), dtype=np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        cypool.max_pool2d(X2, 2, out=out)


def test_out_overlapping_input_is_rejected():
    x = np.zeros((2, 3, 8, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="overlap"):
        cypool.max_pool2d(x, 2, out=x.reshape(-1)[: 2 * 3 * 16].reshape(2, 3, 4, 4))


def test_max_backward_rejects_bad_indices():
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6))
    y, idx = cypool.max_pool2d(x, 2, return_indices=True)
    g = np.ones_like(y)
    for bad in (-1, 36, 2**40):
        broken = idx.copy()
        broken[1, 2, 0, 1] = bad
        with pytest.raises(ValueError, match=r"indices must be offsets inside one input plane, in \[0, 36\)"):
            cypool.max_pool2d_backward(g, broken, x.shape)
    with pytest.raises(TypeError, match="indices must have an integer dtype"):
        cypool.max_pool2d_backward(g, idx.astype(np.float64), x.shape)
    with pytest.raises(ValueError, match="indices must have the shape of grad_output"):
        cypool.max_pool2d_backward(g, idx[:, :, :1], x.shape)
    with pytest.raises(ValueError, match="does not match input_shape"):
        cypool.max_pool2d_backward(g, idx, (2, 4, 6, 6))
    with pytest.raises(ValueError, match="input_shape must have"):
        cypool.max_pool2d_backward(g, idx, (6, 6))
    with pytest.raises(TypeError, match="input_shape must be a tuple"):
        cypool.max_pool2d_backward(g, idx, 36)
    with pytest.raises(ValueError, match="non-negative"):
        cypool.max_pool2d_backward(g, idx, (2, 3, -6, 6))
    with pytest.raises(TypeError, match="complex"):
        cypool.max_pool2d_backward(g.astype(np.complex128), idx, x.shape)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_scatters_find_bad_indices_in_their_pass_and_leave_out_alone(channels_last, threads):
    """Max backward and max unpooling check the indices while scattering into a
    result of their own (nothing is returned); a caller's out= is checked
    before it is written."""
    shape = (2, 6, 6, 3) if channels_last else (2, 3, 6, 6)
    x = np.random.default_rng(1).standard_normal(shape)
    y, idx = cypool.max_pool2d(x, 2, return_indices=True, channels_last=channels_last)
    calls = {
        "input plane": lambda i, **kw: cypool.max_pool2d_backward(
            y, i, x.shape, channels_last=channels_last, num_threads=threads, **kw),
        "output plane": lambda i, **kw: cypool.max_unpool2d(
            y, i, 2, channels_last=channels_last, num_threads=threads, **kw),
    }
    for what, call in calls.items():
        good = call(idx)
        for bad in (-1, 36, 2**40):
            broken = idx.copy()
            broken[1, 2, 0, 1] = bad
            with pytest.raises(ValueError, match=f"indices must be offsets inside one {what}"):
                call(broken)
            out = np.full_like(good, 7.0)
            with pytest.raises(ValueError, match=f"indices must be offsets inside one {what}"):
                call(broken, out=out)
            assert np.all(out == 7.0)
        np.testing.assert_array_equal(call(idx, out=np.full_like(good, 7.0)), good)


@pytest.mark.parametrize("channels_last", [False, True])
def test_large_scatter_results_check_indices(channels_last):
    """Results of 32 MiB and more that max backward and max unpooling allocate
    (zeroed from calloc, or reused and zeroed by the kernel: test_memory.py)
    equal those into a caller's out=; bad indices still raise."""
    from cypool import _args
    shape = (1, 512, 512, 32) if channels_last else (1, 32, 512, 512)
    assert np.prod(shape) * 4 >= _args.LARGE_RESULT_BYTES
    x = np.random.default_rng(2).standard_normal(shape, dtype=np.float32)
    y, idx = cypool.max_pool2d(x, 2, return_indices=True, channels_last=channels_last)
    calls = {
        "input plane": lambda i, **kw: cypool.max_pool2d_backward(
            y, i, x.shape, channels_last=channels_last, **kw),
        "output plane": lambda i, **kw: cypool.max_unpool2d(
            y, i, 2, channels_last=channels_last, **kw),
    }
    for what, call in calls.items():
        got = call(idx)
        np.testing.assert_array_equal(got, call(idx, out=np.full(shape, 7.0, np.float32)))
        assert np.count_nonzero(got) == np.count_nonzero(y)
        broken = idx.copy()
        broken.flat[12345] = -1
        with pytest.raises(ValueError, match=f"indices must be offsets inside one {what}"):
            call(broken)


def test_avg_backward_rejects_wrong_grad_shape():
    with pytest.raises(ValueError, match=r"grad_output must have shape \(2, 3, 4, 4\)"):
        cypool.avg_pool2d_backward(np.ones((2, 3, 4, 5)), (2, 3, 8, 8), 2)
    with pytest.raises(TypeError, match="bool"):
        cypool.avg_pool2d_backward(np.ones((2, 3, 4, 4), dtype=bool), (2, 3, 8, 8), 2)


def test_set_num_threads_validates():
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="num_threads"):
            cypool.set_num_threads(bad)


def test_errors_come_before_work():
    """A failing call leaves a caller's out= array untouched."""
    out = np.full((2, 3, 4, 4), 7.0, dtype=np.float32)
    with pytest.raises(ValueError):
        cypool.max_pool2d(X2, 2, out=out, num_threads=0)
    assert np.all(out == 7.0)
