"""cypool.layers: each layer equals its functional call, and every backward
passes a central finite-difference gradient check (float64, small inputs
chosen away from ties and kinks)."""

import numpy as np
import pytest

import cypool
from cypool import layers as L

INF = float("inf")


def distinct(shape, rng):
    """Values 0.1 apart in random order: no ties, and a 1e-6 nudge moves no maximum."""
    size = int(np.prod(shape))
    return (rng.permutation(size).reshape(shape) * 0.1 + 0.05).astype(np.float64)


def positive(shape, rng):
    """Distinct values in [0.55, ...): away from LP's and stochastic pooling's kink at 0."""
    return distinct(shape, rng) + 0.5


def normal(shape, rng):
    return rng.standard_normal(shape)


# (id, layer factory, the functional call it must equal, input shape, input values)
CASES = [
    ("max1d", lambda: L.MaxPool1d(3, 2, 1), lambda x: cypool.max_pool1d(x, 3, 2, 1),
     (2, 2, 9), distinct),
    ("max2d-ceil", lambda: L.MaxPool2d(3, 2, 1, ceil_mode=True),
     lambda x: cypool.max_pool2d(x, 3, 2, 1, ceil_mode=True), (1, 2, 6, 7), distinct),
    ("max2d-dilated-cl", lambda: L.MaxPool2d((2, 3), (1, 2), 1, (2, 1), channels_last=True),
     lambda x: cypool.max_pool2d(x, (2, 3), (1, 2), 1, (2, 1), channels_last=True),
     (1, 6, 5, 2), distinct),
    ("max3d", lambda: L.MaxPool3d(2), lambda x: cypool.max_pool3d(x, 2), (1, 2, 4, 4, 3),
     distinct),
    ("avg1d", lambda: L.AvgPool1d(3, 2, 1), lambda x: cypool.avg_pool1d(x, 3, 2, 1),
     (2, 2, 9), normal),
    ("avg2d-exclude-pad-ceil", lambda: L.AvgPool2d(3, 2, 1, True, False),
     lambda x: cypool.avg_pool2d(x, 3, 2, 1, True, False), (1, 2, 6, 7), normal),
    ("avg2d-same-cl", lambda: L.AvgPool2d(2, 1, "same", channels_last=True),
     lambda x: cypool.avg_pool2d(x, 2, 1, "same", channels_last=True), (1, 5, 4, 2), normal),
    ("avg3d-divisor", lambda: L.AvgPool3d(2, divisor_override=3),
     lambda x: cypool.avg_pool3d(x, 2, divisor_override=3), (1, 2, 4, 4, 3), normal),
    ("lp1d", lambda: L.LPPool1d(2, 3, 2), lambda x: cypool.lp_pool1d(x, 2, 3, 2),
     (2, 2, 9), positive),
    ("lp2d-ceil", lambda: L.LPPool2d(1.5, 2, ceil_mode=True),
     lambda x: cypool.lp_pool2d(x, 1.5, 2, ceil_mode=True), (1, 2, 5, 5), positive),
    ("lp2d-inf", lambda: L.LPPool2d(INF, 2), lambda x: cypool.lp_pool2d(x, INF, 2),
     (1, 2, 4, 6), distinct),
    ("lp3d", lambda: L.LPPool3d(3, 2), lambda x: cypool.lp_pool3d(x, 3, 2),
     (1, 2, 4, 4, 3), positive),
    ("adaptive-avg1d", lambda: L.AdaptiveAvgPool1d(4), lambda x: cypool.adaptive_avg_pool1d(x, 4),
     (2, 2, 9), normal),
    ("adaptive-avg2d", lambda: L.AdaptiveAvgPool2d((3, 2)),
     lambda x: cypool.adaptive_avg_pool2d(x, (3, 2)), (1, 2, 7, 5), normal),
    ("adaptive-avg3d-cl", lambda: L.AdaptiveAvgPool3d(2, channels_last=True),
     lambda x: cypool.adaptive_avg_pool3d(x, 2, channels_last=True), (1, 3, 5, 4, 2), normal),
    ("adaptive-max1d", lambda: L.AdaptiveMaxPool1d(4), lambda x: cypool.adaptive_max_pool1d(x, 4),
     (2, 2, 9), distinct),
    ("adaptive-max2d", lambda: L.AdaptiveMaxPool2d(3),
     lambda x: cypool.adaptive_max_pool2d(x, 3), (1, 2, 7, 5), distinct),
    ("adaptive-max3d", lambda: L.AdaptiveMaxPool3d((2, 1, 2)),
     lambda x: cypool.adaptive_max_pool3d(x, (2, 1, 2)), (1, 2, 4, 3, 5), distinct),
    ("global-avg", lambda: L.GlobalAvgPool(), lambda x: cypool.global_avg_pool(x),
     (2, 3, 4, 5), normal),
    ("global-avg-keepdims-cl", lambda: L.GlobalAvgPool(True, channels_last=True),
     lambda x: cypool.global_avg_pool(x, True, channels_last=True), (2, 3, 4, 3, 2), normal),
    ("global-max", lambda: L.GlobalMaxPool(), lambda x: cypool.global_max_pool(x),
     (2, 3, 4, 5), distinct),
    ("global-max-keepdims", lambda: L.GlobalMaxPool(True),
     lambda x: cypool.global_max_pool(x, True), (2, 2, 7), distinct),
    ("fractional2d", lambda: L.FractionalMaxPool2d(2, output_size=3, rng=5),
     lambda x: cypool.fractional_max_pool2d(x, 2, output_size=3, rng=5), (1, 2, 7, 6),
     distinct),
    ("fractional3d", lambda: L.FractionalMaxPool3d(2, output_ratio=0.5, rng=5),
     lambda x: cypool.fractional_max_pool3d(x, 2, output_ratio=0.5, rng=5), (1, 2, 6, 5, 6),
     distinct),
    ("stochastic1d-train", lambda: L.StochasticPool1d(2, rng=3),
     lambda x: cypool.stochastic_pool1d(x, 2, rng=3), (2, 2, 9), positive),
    ("stochastic2d-train", lambda: L.StochasticPool2d(3, 2, 1, rng=3),
     lambda x: cypool.stochastic_pool2d(x, 3, 2, 1, rng=3), (1, 2, 6, 7), positive),
    ("stochastic3d-train-cl", lambda: L.StochasticPool3d(2, rng=3, channels_last=True),
     lambda x: cypool.stochastic_pool3d(x, 2, rng=3, channels_last=True), (1, 4, 4, 2, 2),
     positive),
    ("stochastic2d-eval", lambda: L.StochasticPool2d(3, 2, 1, rng=3).eval(),
     lambda x: cypool.stochastic_pool2d(x, 3, 2, 1, training=False), (1, 2, 6, 7), positive),
    ("stochastic3d-eval", lambda: L.StochasticPool3d(2).eval(),
     lambda x: cypool.stochastic_pool3d(x, 2, training=False), (1, 2, 4, 4, 3), positive),
]
IDS = [case[0] for case in CASES]


def numeric_gradient(loss, x, eps=1e-6):
    """Central differences of the scalar ``loss`` at ``x`` (float64), one element at a time."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + eps
        above = loss(x)
        x[index] = saved - eps
        below = loss(x)
        x[index] = saved
        grad[index] = (above - below) / (2 * eps)
    return grad


def check_gradient(forward, backward, x, rng):
    """``backward(g)`` against the numeric gradient of ``sum(forward(x) * g)``."""
    g = rng.standard_normal(np.shape(forward(x.copy())))
    analytic = backward(g)
    numeric = numeric_gradient(lambda v: float(np.sum(forward(v) * g)), x.copy())
    assert analytic.shape == x.shape
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name, make, functional, shape, values", CASES, ids=IDS)
def test_forward_equals_the_functional_call(name, make, functional, shape, values, rng):
    x = values(shape, rng)
    np.testing.assert_array_equal(make()(x), functional(x))
    layer = make()
    assert np.array_equal(layer.forward(x), functional(x))   # forward is __call__


@pytest.mark.parametrize("name, make, functional, shape, values", CASES, ids=IDS)
def test_backward_passes_gradient_check(name, make, functional, shape, values, rng):
    x = values(shape, rng)
    layer = make()
    layer(x)
    # a fresh layer per evaluation: the random ones then draw the same samples
    check_gradient(lambda v: make()(v), layer.backward, x, rng)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_unpool_forward_and_gradient(nd, rng):
    x = distinct((1, 2) + (4,) * nd, rng)
    pooled, indices = getattr(L, f"MaxPool{nd}d")(2, return_indices=True)(x)
    unpool = getattr(L, f"MaxUnpool{nd}d")(2)
    np.testing.assert_array_equal(unpool(pooled, indices),
                                  getattr(cypool, f"max_unpool{nd}d")(pooled, indices, 2))
    check_gradient(lambda v: unpool.forward(v, indices), unpool.backward, pooled.copy(), rng)
    # output_size is passed through
    bigger = (5,) * nd
    assert unpool(pooled, indices, output_size=bigger).shape == (1, 2) + bigger


@pytest.mark.parametrize("pair", ["max", "avg"])
def test_function_pairs(pair, rng):
    forward = getattr(L, f"{pair}_pool_forward")
    backward = getattr(L, f"{pair}_pool_backward")
    x = distinct((2, 3, 8, 6), rng)
    pool_param = {"pool_height": 2, "pool_width": 3, "stride": 2}
    out, cache = forward(x, pool_param)
    # cs231n's shapes: 1 + (H - pool_height) // stride
    assert out.shape == (2, 3, 4, 2)
    np.testing.assert_array_equal(out, getattr(cypool, f"{pair}_pool2d")(x, (2, 3), 2))
    check_gradient(lambda v: forward(v, pool_param)[0],
                   lambda dout: backward(dout, cache), x, rng)


def test_pool_param_must_name_its_keys():
    with pytest.raises(ValueError, match="'stride' missing"):
        L.max_pool_forward(np.zeros((1, 1, 4, 4)), {"pool_height": 2, "pool_width": 2})


def test_max_layers_return_indices_when_asked(rng):
    x = distinct((1, 2, 6, 6), rng)
    values, indices = L.MaxPool2d(3, 2, 1, return_indices=True)(x)
    want, want_indices = cypool.max_pool2d(x, 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(values, want)
    np.testing.assert_array_equal(indices, want_indices)
    values, indices = L.GlobalMaxPool(return_indices=True)(x)
    np.testing.assert_array_equal(indices, cypool.global_max_pool(x, return_indices=True)[1])


def test_stochastic_train_and_eval(rng):
    x = positive((2, 3, 8, 8), rng)
    layer = L.StochasticPool2d(2, rng=11)
    assert layer.training
    first, second = layer(x), layer(x)
    # each training output is one of its window's elements, drawn afresh per call
    windows = x.reshape(2, 3, 4, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 4, 4, 4)
    assert all((windows == out[..., None]).any(axis=-1).all() for out in (first, second))
    assert not np.array_equal(first, second)
    # a seed repeats the sequence
    again = L.StochasticPool2d(2, rng=11)
    np.testing.assert_array_equal(again(x), first)
    np.testing.assert_array_equal(again(x), second)
    # eval: the deterministic expectation, sum(a^2) / sum(a)
    assert layer.eval() is layer and not layer.training
    expected = (windows ** 2).sum(-1) / windows.sum(-1)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12)
    np.testing.assert_array_equal(layer(x), layer(x))
    assert layer.train() is layer and layer.training


def test_repr():
    assert repr(L.MaxPool2d(3, 2, 1)) == (
        "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, return_indices=False, "
        "ceil_mode=False)")
    assert repr(L.AvgPool1d(2, channels_last=True)) == (
        "AvgPool1d(kernel_size=2, stride=2, padding=0, ceil_mode=False, count_include_pad=True, "
        "divisor_override=None, channels_last=True)")
    assert repr(L.LPPool3d(2, 3)) == (
        "LPPool3d(norm_type=2, kernel_size=3, stride=None, ceil_mode=False)")
    assert repr(L.AdaptiveMaxPool2d((4, 5))) == (
        "AdaptiveMaxPool2d(output_size=(4, 5), return_indices=False)")
    assert repr(L.GlobalAvgPool()) == "GlobalAvgPool(keepdims=False)"
    assert repr(L.MaxUnpool3d(2)) == "MaxUnpool3d(kernel_size=2, stride=2, padding=0)"
    assert repr(L.FractionalMaxPool2d(2, output_ratio=0.5)) == (
        "FractionalMaxPool2d(kernel_size=2, output_size=None, output_ratio=0.5, "
        "return_indices=False)")
    layer = L.StochasticPool2d(2)
    assert repr(layer) == "StochasticPool2d(kernel_size=2, stride=2, padding=0, mode='train')"
    assert repr(layer.eval()).endswith("mode='eval')")


def test_backward_before_forward_is_an_error():
    with pytest.raises(RuntimeError, match=r"AvgPool2d.backward was called before forward"):
        L.AvgPool2d(2).backward(np.ones((1, 1, 1, 1)))


def test_layers_share_one_base_and_per_dim_classes_are_thin():
    for name in L.__all__:
        item = getattr(L, name)
        if isinstance(item, type):
            assert issubclass(item, L._Layer)
            assert item.__doc__ and ">>>" in item.__doc__
            assert item.__module__ == "cypool.layers"
