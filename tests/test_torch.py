"""cypool's public max and average pooling against PyTorch 2.13 (CPU).

Forward values and indices, and input gradients (PyTorch's autograd with a
seeded random upstream gradient against cypool's ``*_backward``), over the
shared geometry grid of ``tests/reference.py``, in both layouts, 1-D to 3-D,
float32 and float64, with NaN, ties and infinities; then unbatched input,
empty batches, strided views, integer and float16 dtypes, ``'same'`` padding
and thread counts.  Skipped as a whole when PyTorch is not installed.
"""

import numpy as np
import pytest

import cypool
import reference as ref

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
LAYOUTS = [False, True]
LAYOUT_IDS = ["cfirst", "clast"]
AVG_VALUE_KINDS = ["randn", "nan", "inf-mix"]
DIVISOR_IDS = [f"cip{int(c)}-div{d}" for c, d in ref.AVG_DIVISORS]

#: (rtol, atol): float32 sums differ in order and precision from PyTorch's.
TOLERANCE = {np.dtype(np.float32): (1e-5, 1e-6), np.dtype(np.float64): (1e-12, 1e-13)}

# Geometry where some max window holds padding only: PyTorch returns -inf with
# an index outside the plane (or aliasing the next row) and its backward then
# writes out of bounds.  cypool rejects it with a ValueError (a documented
# departure from PyTorch, see the README).
EMPTY_WINDOW_CASES = [case for case in ref.CASES if case.name.startswith("no-inbounds-tap")]
FORWARD_CASES = [case for case in ref.CASES if case not in EMPTY_WINDOW_CASES]
BACKWARD_CASES = FORWARD_CASES


def _case_ids(cases):
    return [case.id for case in cases]


def _assert_close(actual, expected, dtype):
    rtol, atol = TOLERANCE[np.dtype(dtype)]
    assert actual.dtype == np.dtype(dtype)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)


def _pool(family, nd, backward=False):
    """``cypool.{family}_pool{nd}d`` or its ``_backward``."""
    return getattr(cypool, f"{family}_pool{nd}d" + ("_backward" if backward else ""))


def _to_layout(a, channels_last):
    """A batched channels-first array in the layout under test (C-contiguous)."""
    return np.ascontiguousarray(ref.to_channels_last(a)) if channels_last else a


def _from_layout(a, channels_last):
    """A batched array of the layout under test, viewed channels-first."""
    return ref.from_channels_last(a) if channels_last else a


def _shape_in_layout(shape, channels_last):
    """``(N, C, *spatial)`` -> ``(N, *spatial, C)`` when channels-last."""
    shape = tuple(shape)
    return shape[:1] + shape[2:] + shape[1:2] if channels_last else shape


def _cypool_max(x, case, channels_last, **extra):
    """cypool's max pooling of channels-first ``x``; results channels-first."""
    values, indices = _pool("max", case.nd)(
        _to_layout(x, channels_last), **case.max_kwargs(), return_indices=True,
        channels_last=channels_last, **extra)
    return _from_layout(values, channels_last), _from_layout(indices, channels_last)


def _cypool_max_backward(grad_output, indices, case, channels_last, **extra):
    grad = _pool("max", case.nd, backward=True)(
        _to_layout(grad_output, channels_last), _to_layout(indices, channels_last),
        _shape_in_layout(case.shape, channels_last), channels_last=channels_last, **extra)
    return _from_layout(grad, channels_last)


def _cypool_avg(x, case, channels_last, avg_kwargs, **extra):
    values = _pool("avg", case.nd)(_to_layout(x, channels_last), **avg_kwargs,
                                   channels_last=channels_last, **extra)
    return _from_layout(values, channels_last)


def _cypool_avg_backward(grad_output, case, channels_last, avg_kwargs, **extra):
    grad = _pool("avg", case.nd, backward=True)(
        _to_layout(grad_output, channels_last), _shape_in_layout(case.shape, channels_last),
        **avg_kwargs, channels_last=channels_last, **extra)
    return _from_layout(grad, channels_last)


def _avg_kwargs(case, count_include_pad, divisor_override):
    return dict(case.avg_kwargs(), count_include_pad=count_include_pad,
                divisor_override=divisor_override)


# ----------------------------------------------------------------- the grid

@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", ref.VALUE_KINDS)
@pytest.mark.parametrize("case", FORWARD_CASES, ids=_case_ids(FORWARD_CASES))
def test_max_pool_matches_torch(case, kind, dtype, channels_last):
    x = ref.make_values(kind, case.shape, dtype, ref.make_rng(case.id, kind))
    expected_values, expected_indices, _ = ref.torch_max_pool(x, case.nd, **case.max_kwargs())
    values, indices = _cypool_max(x, case, channels_last)
    assert values.dtype == np.dtype(dtype)
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(values, expected_values)  # exact; NaN matches NaN
    np.testing.assert_array_equal(indices, expected_indices)
    values_only = _pool("max", case.nd)(_to_layout(x, channels_last), **case.max_kwargs(),
                                        channels_last=channels_last)
    np.testing.assert_array_equal(_from_layout(values_only, channels_last), expected_values)


@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", ["randn", "ties", "nan"])
@pytest.mark.parametrize("case", BACKWARD_CASES, ids=_case_ids(BACKWARD_CASES))
def test_max_pool_backward_matches_torch(case, kind, dtype, channels_last):
    rng = ref.make_rng(case.id, kind, "grad")
    x = ref.make_values(kind, case.shape, dtype, rng)
    values, indices = _cypool_max(x, case, channels_last)
    grad_output = rng.standard_normal(values.shape).astype(dtype)
    *_, expected = ref.torch_max_pool(x, case.nd, grad_output, **case.max_kwargs())
    grad_input = _cypool_max_backward(grad_output, indices, case, channels_last)
    _assert_close(grad_input, expected, dtype)


@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("case", EMPTY_WINDOW_CASES, ids=_case_ids(EMPTY_WINDOW_CASES))
def test_padding_only_window_is_rejected(case, channels_last):
    """PyTorch returns -inf with an index outside the plane there (checked
    here, so a change in PyTorch shows up); cypool raises before any work,
    and its backward refuses PyTorch's out-of-plane indices."""
    rng = ref.make_rng(case.id, "round-trip")
    x = rng.standard_normal(case.shape)
    values, indices, _ = ref.torch_max_pool(x, case.nd, **case.max_kwargs())
    assert np.isneginf(values).any()
    with pytest.raises(ValueError, match="holds no input element"):
        _cypool_max(x, case, channels_last)
    if ref.has_out_of_plane_index(indices, case.shape, case.nd):
        with pytest.raises(ValueError, match="indices must be offsets inside one input plane"):
            _cypool_max_backward(np.ones(values.shape), indices, case, channels_last)


@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", AVG_VALUE_KINDS)
@pytest.mark.parametrize("count_include_pad, divisor_override", ref.AVG_DIVISORS,
                         ids=DIVISOR_IDS)
@pytest.mark.parametrize("case", ref.AVG_CASES, ids=_case_ids(ref.AVG_CASES))
def test_avg_pool_matches_torch(case, count_include_pad, divisor_override, kind, dtype,
                                channels_last):
    x = ref.make_values(kind, case.shape, dtype, ref.make_rng(case.id, kind))
    avg_kwargs = _avg_kwargs(case, count_include_pad, divisor_override)
    expected, _ = ref.torch_avg_pool(x, case.nd, **avg_kwargs)
    _assert_close(_cypool_avg(x, case, channels_last, avg_kwargs), expected, dtype)


@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("count_include_pad, divisor_override", ref.AVG_DIVISORS,
                         ids=DIVISOR_IDS)
@pytest.mark.parametrize("case", ref.AVG_CASES, ids=_case_ids(ref.AVG_CASES))
def test_avg_pool_backward_matches_torch(case, count_include_pad, divisor_override, dtype,
                                         channels_last):
    rng = ref.make_rng(case.id, "avg-grad")
    x = rng.standard_normal(case.shape).astype(dtype)
    avg_kwargs = _avg_kwargs(case, count_include_pad, divisor_override)
    out_shape = ref.avg_pool(x, case.nd, **avg_kwargs).shape
    grad_output = rng.standard_normal(out_shape).astype(dtype)
    _, expected = ref.torch_avg_pool(x, case.nd, grad_output, **avg_kwargs)
    grad_input = _cypool_avg_backward(grad_output, case, channels_last, avg_kwargs)
    _assert_close(grad_input, expected, dtype)


# ------------------------------------------------------- 'same' padding

SAME_CASES = [case for case in ref.ASYMMETRIC_CASES if case.padding == "same"]


@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("case", SAME_CASES, ids=_case_ids(SAME_CASES))
def test_same_padding_matches_torch_on_prepadded(case, channels_last):
    """'same' = PyTorch on input padded explicitly (-inf for max, 0 for the
    average with count_include_pad), the odd extra element after."""
    rng = ref.make_rng(case.id, "same")
    x = ref.make_values("ties", case.shape, np.float64, rng)
    spatial = case.shape[2:]
    pad_before, pad_after = ref.resolve_padding("same", case.nd, case.kernel_size,
                                                case.stride, case.dilation, spatial)

    values, indices = _cypool_max(x, case, channels_last)
    grad_output = rng.standard_normal(values.shape)
    padded = ref.pad_spatial(x, case.nd, pad_before, pad_after, -np.inf)
    expected_values, padded_indices, padded_grad = ref.torch_max_pool(
        padded, case.nd, grad_output, **dict(case.max_kwargs(), padding=0))
    np.testing.assert_array_equal(values, expected_values)
    coords = np.unravel_index(padded_indices, padded.shape[2:])
    np.testing.assert_array_equal(
        indices, np.ravel_multi_index([c - b for c, b in zip(coords, pad_before)], spatial))
    np.testing.assert_allclose(_cypool_max_backward(grad_output, indices, case, channels_last),
                               ref.crop_spatial(padded_grad, pad_before, spatial), rtol=1e-12)

    if not case.avg:
        return
    avg_kwargs = _avg_kwargs(case, True, None)
    padded = ref.pad_spatial(x, case.nd, pad_before, pad_after, 0.0)
    expected, padded_grad = ref.torch_avg_pool(
        padded, case.nd, grad_output, **dict(avg_kwargs, padding=0))
    np.testing.assert_allclose(_cypool_avg(x, case, channels_last, avg_kwargs), expected,
                               rtol=1e-12)
    np.testing.assert_allclose(_cypool_avg_backward(grad_output, case, channels_last, avg_kwargs),
                               ref.crop_spatial(padded_grad, pad_before, spatial), rtol=1e-12)


# ------------------------------------------------------------------ dtypes

# PyTorch's CPU max pooling takes these integer types; the rest are compared
# with PyTorch on int64 copies (the values fit).
TORCH_INTEGERS = [np.int8, np.uint8, np.int16, np.int32, np.int64]
OTHER_INTEGERS = [np.uint16, np.uint32, np.uint64]
INTEGER_CASES = FORWARD_CASES[::4]


@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("dtype", TORCH_INTEGERS + OTHER_INTEGERS,
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", INTEGER_CASES, ids=_case_ids(INTEGER_CASES))
def test_max_pool_integers_match_torch(case, dtype, channels_last):
    info = np.iinfo(dtype)
    high = min(info.max, np.iinfo(np.int64).max)
    x = ref.make_rng(case.id, "int").integers(info.min, high, size=case.shape, dtype=dtype,
                                              endpoint=True)
    x.flat[::3] = high  # ties at the top
    torch_input = x if dtype in TORCH_INTEGERS else x.astype(np.int64)
    expected_values, expected_indices, _ = ref.torch_max_pool(torch_input, case.nd,
                                                              **case.max_kwargs())
    values, indices = _cypool_max(x, case, channels_last)
    assert values.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(values.astype(np.int64), expected_values.astype(np.int64))
    np.testing.assert_array_equal(indices, expected_indices)


@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64])
def test_avg_pool_integers_give_float64(dtype, channels_last):
    case = next(c for c in ref.AVG_CASES if c.id == "2d-k3-s2-p1-ceil-overhang")
    x = ref.make_rng(case.id, "avg-int").integers(0, 100, size=case.shape).astype(dtype)
    avg_kwargs = _avg_kwargs(case, False, None)
    expected, _ = ref.torch_avg_pool(x.astype(np.float64), case.nd, **avg_kwargs)
    _assert_close(_cypool_avg(x, case, channels_last, avg_kwargs), expected, np.float64)


@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_float16_computed_in_float32(nd, channels_last):
    """float16 in, float16 out: PyTorch's float32 result, rounded once."""
    case = next(c for c in ref.CASES if c.nd == nd and c.name.startswith("k3-s2-p1"))
    x = ref.make_values("nan", case.shape, np.float16, ref.make_rng(case.id, "f16"))
    x32 = x.astype(np.float32)
    expected_values, expected_indices, _ = ref.torch_max_pool(x32, nd, **case.max_kwargs())
    values, indices = _cypool_max(x, case, channels_last)
    assert values.dtype == np.float16
    np.testing.assert_array_equal(values, expected_values.astype(np.float16))
    np.testing.assert_array_equal(indices, expected_indices)
    avg_kwargs = _avg_kwargs(case, True, None)
    expected, _ = ref.torch_avg_pool(x32, nd, **avg_kwargs)
    averages = _cypool_avg(x, case, channels_last, avg_kwargs)
    assert averages.dtype == np.float16
    # One float16 rounding of a float32 result: within half a float16 ulp.
    np.testing.assert_allclose(averages.astype(np.float32), expected, rtol=2**-11, atol=2**-24,
                               equal_nan=True)


# ----------------------------------------------------------------- shapes

@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_unbatched_matches_torch(nd, channels_last):
    """``(C, *spatial)`` (channels-first) or ``(*spatial, C)`` (channels-last)."""
    shape = (3,) + (5, 6, 4)[:nd]
    rng = ref.make_rng("unbatched", nd)
    x = rng.standard_normal(shape)

    def to_layout(a):  # unbatched: (C, *spatial) -> (*spatial, C)
        return np.ascontiguousarray(np.moveaxis(a, 0, -1)) if channels_last else a

    def back(a):
        return np.moveaxis(a, -1, 0) if channels_last else a

    in_layout = to_layout(x)
    kwargs = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    expected_values, expected_indices, _ = ref.torch_max_pool(x, nd, **kwargs)
    values, indices = _pool("max", nd)(in_layout, **kwargs, return_indices=True,
                                       channels_last=channels_last)
    np.testing.assert_array_equal(back(values), expected_values)
    np.testing.assert_array_equal(back(indices), expected_indices)
    grad_output = rng.standard_normal(expected_values.shape)
    *_, expected_grad = ref.torch_max_pool(x, nd, grad_output, **kwargs)
    grad = _pool("max", nd, backward=True)(to_layout(grad_output), indices, in_layout.shape,
                                           channels_last=channels_last)
    np.testing.assert_allclose(back(grad), expected_grad, rtol=1e-12)

    expected, expected_grad = ref.torch_avg_pool(x, nd, grad_output, **kwargs)
    averages = _pool("avg", nd)(in_layout, **kwargs, channels_last=channels_last)
    np.testing.assert_allclose(back(averages), expected, rtol=1e-12)
    grad = _pool("avg", nd, backward=True)(to_layout(grad_output), in_layout.shape, **kwargs,
                                           channels_last=channels_last)
    np.testing.assert_allclose(back(grad), expected_grad, rtol=1e-12)


@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_empty_batch(nd, channels_last):
    """A batch of 0 gives empty results of PyTorch's shapes, forward and backward."""
    shape = (0, 3) + (6, 5, 4)[:nd]
    x = np.zeros(shape, dtype=np.float32)
    kwargs = dict(kernel_size=2, stride=2, padding=1)
    expected_values, _, _ = ref.torch_max_pool(x, nd, **kwargs)
    expected_shape = _shape_in_layout(expected_values.shape, channels_last)
    in_layout = _to_layout(x, channels_last)
    in_shape = _shape_in_layout(shape, channels_last)

    values, indices = _pool("max", nd)(in_layout, **kwargs, return_indices=True,
                                       channels_last=channels_last)
    assert (values.shape, values.dtype) == (expected_shape, np.float32)
    assert (indices.shape, indices.dtype) == (expected_shape, np.int64)
    grad = _pool("max", nd, backward=True)(values, indices, in_shape,
                                           channels_last=channels_last)
    assert (grad.shape, grad.dtype) == (in_shape, np.float32)

    averages = _pool("avg", nd)(in_layout, **kwargs, channels_last=channels_last)
    assert (averages.shape, averages.dtype) == (expected_shape, np.float32)
    grad = _pool("avg", nd, backward=True)(averages, in_shape, **kwargs,
                                           channels_last=channels_last)
    assert (grad.shape, grad.dtype) == (in_shape, np.float32)


def _reversed_view(a):
    """A view equal to ``a`` whose strides are all negative."""
    return np.flip(np.flip(a).copy())


# Functions making a strided view of a C-contiguous array.
VIEWS = [
    pytest.param(lambda a: a[..., ::-1], id="negative-stride-last-axis"),
    pytest.param(lambda a: a[::-1, ::-1], id="negative-stride-first-axes"),
    pytest.param(lambda a: a[:, :, ::2], id="every-other-along-axis-2"),
    pytest.param(np.asfortranarray, id="fortran-order"),
    pytest.param(_reversed_view, id="all-strides-negative"),
]


@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("make_view", VIEWS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_strided_views_match_torch(nd, make_view, channels_last):
    """Read-only views of any strides give PyTorch's result for their
    contiguous copy, and are left untouched."""
    rng = ref.make_rng("view", nd)
    shape = _shape_in_layout((2, 3) + (10, 7, 6)[:nd], channels_last)
    view = make_view(ref.make_values("ties", shape, np.float64, rng))
    view.flags.writeable = False
    x = np.ascontiguousarray(_from_layout(view, channels_last))  # channels-first copy
    kwargs = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)

    expected_values, expected_indices, _ = ref.torch_max_pool(x, nd, **kwargs)
    values, indices = _pool("max", nd)(view, **kwargs, return_indices=True,
                                       channels_last=channels_last)
    np.testing.assert_array_equal(_from_layout(values, channels_last), expected_values)
    np.testing.assert_array_equal(_from_layout(indices, channels_last), expected_indices)

    grad_output = rng.standard_normal(expected_values.shape)
    grad_view = _reversed_view(_to_layout(grad_output, channels_last))
    index_view = _reversed_view(indices)
    grad_view.flags.writeable = index_view.flags.writeable = False
    *_, expected_grad = ref.torch_max_pool(x, nd, grad_output, **kwargs)
    grad = _pool("max", nd, backward=True)(grad_view, index_view, view.shape,
                                           channels_last=channels_last)
    np.testing.assert_allclose(_from_layout(grad, channels_last), expected_grad, rtol=1e-12)

    expected, expected_grad = ref.torch_avg_pool(x, nd, grad_output, **kwargs)
    averages = _pool("avg", nd)(view, **kwargs, channels_last=channels_last)
    np.testing.assert_allclose(_from_layout(averages, channels_last), expected, rtol=1e-12)
    grad = _pool("avg", nd, backward=True)(grad_view, view.shape, **kwargs,
                                           channels_last=channels_last)
    np.testing.assert_allclose(_from_layout(grad, channels_last), expected_grad, rtol=1e-12)
    np.testing.assert_array_equal(_from_layout(view, channels_last), x)  # untouched


# ----------------------------------------------------------------- threads

# Over cypool's serial cut-off (2**17 elements) each, so the work is shared
# between threads.
THREAD_CASES = [
    ref.PoolCase("threads", (4, 16, 2401), 3, 2, 1, 2, ceil_mode=True),
    ref.PoolCase("threads", (2, 8, 97, 101), 3, 2, 1, ceil_mode=True),
    ref.PoolCase("threads", (2, 4, 33, 40, 29), (3, 2, 3), 2, 1, ceil_mode=True),
]


@pytest.mark.parametrize("channels_last", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("case", THREAD_CASES, ids=_case_ids(THREAD_CASES))
def test_one_and_two_threads_agree_with_torch(case, channels_last):
    """``num_threads=1`` and ``2`` give identical bits, and PyTorch's result."""
    rng = ref.make_rng(case.id, "threads")
    x = ref.make_values("ties", case.shape, np.float32, rng)
    expected_values, expected_indices, _ = ref.torch_max_pool(x, case.nd, **case.max_kwargs())
    grad_output = rng.standard_normal(expected_values.shape).astype(np.float32)
    avg_kwargs = _avg_kwargs(case, False, None)
    expected_averages, _ = ref.torch_avg_pool(x, case.nd, **avg_kwargs)
    avg_grad_output = rng.standard_normal(expected_averages.shape).astype(np.float32)
    results = []
    for num_threads in (1, 2):
        values, indices = _cypool_max(x, case, channels_last, num_threads=num_threads)
        results.append([
            values, indices,
            _cypool_max_backward(grad_output, indices, case, channels_last,
                                 num_threads=num_threads),
            _cypool_avg(x, case, channels_last, avg_kwargs, num_threads=num_threads),
            _cypool_avg_backward(avg_grad_output, case, channels_last, avg_kwargs,
                                 num_threads=num_threads),
        ])
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(results[0][0], expected_values)
    np.testing.assert_array_equal(results[0][1], expected_indices)
    _assert_close(results[0][3], expected_averages, np.float32)
