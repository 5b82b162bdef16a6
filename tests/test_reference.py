"""Checks of the NumPy reference (``tests/reference.py``) itself.

The reference is written from SPEC.md; here it is held against PyTorch 2.13
(the authority on semantics where SPEC.md says nothing else) and against
hand-computed tables.  Skipped as a whole when PyTorch is not installed.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference as ref

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.torch

DTYPES = [np.float32, np.float64]
AVG_VALUE_KINDS = ["randn", "ties", "nan", "inf-mix"]

#: (rtol, atol) for sums computed in a different order or precision.
TOLERANCE = {np.dtype(np.float32): (1e-5, 1e-6), np.dtype(np.float64): (1e-12, 1e-13)}


def _assert_close(actual, expected, dtype):
    rtol, atol = TOLERANCE[np.dtype(dtype)]
    assert actual.dtype == np.dtype(dtype)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)


def _case_ids(cases):
    return [case.id for case in cases]


# --------------------------------------------------------------- output_size

# (L, k, s, pad_before, pad_after, d, ceil_mode, expected), each worked by hand.
OUTPUT_SIZE_TABLE = [
    pytest.param(5, 2, 2, 0, 0, 1, False, 2, id="floor"),
    pytest.param(5, 2, 2, 0, 0, 1, True, 3, id="ceil-adds-overhanging-window"),
    pytest.param(6, 2, 2, 0, 0, 1, True, 3, id="ceil-exact-fit"),
    pytest.param(4, 1, 2, 0, 0, 1, True, 2, id="ceil-drops-window-starting-at-L"),
    pytest.param(5, 1, 5, 0, 0, 1, True, 1, id="ceil-drops-window-starting-at-L-s5"),
    pytest.param(6, 1, 5, 0, 0, 1, True, 2, id="ceil-keeps-window-starting-at-L-1"),
    pytest.param(5, 4, 4, 2, 2, 1, True, 2, id="ceil-drops-window-starting-in-right-pad"),
    pytest.param(5, 4, 4, 2, 2, 1, False, 2, id="pad-floor"),
    pytest.param(8, 3, 2, 1, 1, 1, True, 5, id="ceil-keeps-window-overhanging-pad"),
    pytest.param(8, 3, 2, 1, 1, 1, False, 4, id="pad-floor-2"),
    pytest.param(10, 3, 2, 1, 1, 3, False, 3, id="dilation-floor"),
    pytest.param(10, 3, 2, 1, 1, 3, True, 4, id="dilation-ceil"),
    pytest.param(1, 1, 1, 0, 0, 1, False, 1, id="L1"),
    pytest.param(1, 2, 2, 1, 1, 1, True, 1, id="L1-pad-ceil-drop"),
    pytest.param(1, 2, 2, 1, 1, 1, False, 1, id="L1-pad-floor"),
    pytest.param(2, 2, 1, 1, 1, 3, False, 1, id="window-of-padding-only"),
    pytest.param(3, 4, 1, 0, 0, 1, False, 0, id="kernel-larger-than-input"),
    pytest.param(3, 2, 1, 0, 0, 4, False, -1, id="dilated-span-larger-than-input"),
    pytest.param(3, 2, 2, 0, 0, 4, True, 0, id="dilated-span-larger-than-input-ceil"),
    pytest.param(7, 3, 3, 0, 1, 1, False, 2, id="asymmetric-floor"),
    pytest.param(7, 3, 3, 1, 0, 1, True, 3, id="asymmetric-ceil"),
    pytest.param(6, 3, 3, 0, 0, 1, True, 2, id="ceil-no-extra-window"),
    pytest.param(13, 5, 3, 2, 2, 1, True, 5, id="prime-ceil"),
    pytest.param(13, 5, 3, 2, 2, 1, False, 5, id="prime-floor"),
    pytest.param(4, 1, 3, 0, 0, 1, True, 2, id="k1-s3-ceil"),
]


@pytest.mark.parametrize("L, k, s, pad_before, pad_after, d, ceil_mode, expected",
                         OUTPUT_SIZE_TABLE)
def test_output_size_table(L, k, s, pad_before, pad_after, d, ceil_mode, expected):
    assert ref.output_size(L, k, s, pad_before, pad_after, d, ceil_mode) == expected


def test_output_size_matches_torch_shapes():
    """Every small geometry PyTorch accepts gives PyTorch's output length."""
    checked = 0
    for L in range(1, 10):
        x = torch.zeros(1, 1, L)
        for k in range(1, 5):
            for s in range(1, 5):
                for d in range(1, 4):
                    for p in range(0, k // 2 + 1):
                        for ceil_mode in (False, True):
                            expected = ref.output_size(L, k, s, p, p, d, ceil_mode)
                            if expected <= 0:
                                with pytest.raises(RuntimeError):
                                    F.max_pool1d(x, k, s, p, d, ceil_mode)
                                continue
                            out = F.max_pool1d(x, k, s, p, d, ceil_mode)
                            assert out.shape[-1] == expected, (L, k, s, p, d, ceil_mode)
                            checked += 1
    assert checked > 1000


# ----------------------------------------------------------- resolve_padding

# (L, k, s, d, (before, after)) for 'same', worked by hand:
# out = ceil(L/s), total = max((out-1)*s + d*(k-1) + 1 - L, 0), before = total // 2.
SAME_TABLE = [
    pytest.param(5, 3, 1, 1, (1, 1), id="odd-kernel"),
    pytest.param(7, 4, 1, 1, (1, 2), id="even-kernel-extra-after"),
    pytest.param(6, 3, 2, 1, (0, 1), id="stride2-odd-total"),
    pytest.param(5, 2, 2, 1, (0, 1), id="stride2-odd-L"),
    pytest.param(4, 1, 1, 1, (0, 0), id="k1"),
    pytest.param(10, 3, 4, 1, (0, 1), id="stride4"),
    pytest.param(12, 2, 4, 1, (0, 0), id="negative-total-clamped"),
    pytest.param(5, 3, 1, 2, (2, 2), id="dilated"),
    pytest.param(6, 2, 1, 3, (1, 2), id="dilated-even-span"),
    pytest.param(1, 3, 2, 1, (1, 1), id="L1"),
    pytest.param(8, 8, 8, 1, (0, 0), id="global"),
    pytest.param(9, 8, 8, 1, (3, 4), id="global-plus-one"),
]


@pytest.mark.parametrize("L, k, s, d, expected", SAME_TABLE)
def test_resolve_padding_same_table(L, k, s, d, expected):
    before, after = ref.resolve_padding("same", 1, k, s, d, (L,))
    assert (before[0], after[0]) == expected


def test_resolve_padding_same_per_axis():
    before, after = ref.resolve_padding("same", 3, (3, 2, 1), (1, 2, 1), (1, 1, 1), (5, 5, 4))
    assert before == (1, 0, 0)
    assert after == (1, 1, 0)


@pytest.mark.parametrize("padding, expected", [
    pytest.param(0, ((0, 0), (0, 0)), id="int-0"),
    pytest.param(1, ((1, 1), (1, 1)), id="int"),
    pytest.param((2, 1), ((2, 1), (2, 1)), id="tuple"),
    pytest.param("valid", ((0, 0), (0, 0)), id="valid"),
    pytest.param(((1, 0), (2, 3)), ((1, 2), (0, 3)), id="pairs"),
])
def test_resolve_padding_forms(padding, expected):
    assert ref.resolve_padding(padding, 2, 4, 1, 1, (6, 6)) == expected


@settings(max_examples=300, deadline=None)
@given(L=st.integers(1, 40), k=st.integers(1, 6), s=st.integers(1, 6), d=st.integers(1, 4),
       ceil_mode=st.booleans())
def test_same_padding_gives_ceil_L_over_s(L, k, s, d, ceil_mode):
    """'same' yields ``ceil(L/s)`` windows, with the odd extra pad after."""
    (before,), (after,) = ref.resolve_padding("same", 1, k, s, d, (L,))
    assert after - before in (0, 1)
    assert ref.output_size(L, k, s, before, after, d, False) == -(-L // s)
    if before + after > 0:  # nothing left over for ceil mode to round up
        assert ref.output_size(L, k, s, before, after, d, ceil_mode) == -(-L // s)


# ------------------------------------------------------------- max vs torch

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", ref.VALUE_KINDS)
@pytest.mark.parametrize("case", ref.CASES, ids=_case_ids(ref.CASES))
def test_max_forward_matches_torch(case, kind, dtype):
    x = ref.make_values(kind, case.shape, dtype, ref.make_rng(case.id, kind))
    values, indices = ref.max_pool(x, case.nd, **case.max_kwargs())
    torch_values, torch_indices, _ = ref.torch_max_pool(x, case.nd, **case.max_kwargs())
    assert values.dtype == np.dtype(dtype)
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(values, torch_values)  # NaN == NaN here
    np.testing.assert_array_equal(indices, torch_indices)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", ["randn", "ties", "nan", "all-neginf"])
@pytest.mark.parametrize("case", ref.CASES, ids=_case_ids(ref.CASES))
def test_max_backward_matches_torch(case, kind, dtype):
    rng = ref.make_rng(case.id, kind, "grad")
    x = ref.make_values(kind, case.shape, dtype, rng)
    values, indices = ref.max_pool(x, case.nd, **case.max_kwargs())
    if ref.has_out_of_plane_index(indices, case.shape, case.nd):
        pytest.skip("PyTorch's backward writes out of the plane here; "
                    "see test_max_window_without_inbounds_tap")
    grad_output = rng.standard_normal(values.shape).astype(dtype)
    *_, torch_grad = ref.torch_max_pool(x, case.nd, grad_output, **case.max_kwargs())
    grad_input = ref.max_pool_backward(grad_output, indices, case.shape)
    _assert_close(grad_input, torch_grad, dtype)


def test_max_window_without_inbounds_tap():
    """A dilated window can hold padding only; PyTorch then reports value -inf
    and the flat offset of the first in-bounds position along each axis, which
    lies outside the plane.  The reference backward drops it."""
    x = np.array([[[1.0, 2.0]]])
    values, indices = ref.max_pool(x, 1, 2, 1, 1, 3)  # taps at -1 and 2
    np.testing.assert_array_equal(values, [[[-np.inf]]])
    np.testing.assert_array_equal(indices, [[[2]]])
    torch_values, torch_indices, _ = ref.torch_max_pool(
        x, 1, kernel_size=2, stride=1, padding=1, dilation=3)
    np.testing.assert_array_equal(torch_values, values)
    np.testing.assert_array_equal(torch_indices, indices)
    np.testing.assert_array_equal(
        ref.max_pool_backward(np.array([[[5.0]]]), indices, x.shape), [[[0.0, 0.0]]])


def test_max_window_without_inbounds_tap_aliases_next_row():
    """In 2-D, the out-of-row column offset aliases the next row's first
    element; PyTorch routes the gradient there, and so does the reference."""
    x = np.arange(8.0).reshape(1, 1, 4, 2)
    kwargs = dict(kernel_size=(1, 2), stride=(2, 1), padding=(0, 1), dilation=(1, 3))
    values, indices = ref.max_pool(x, 2, **kwargs)
    np.testing.assert_array_equal(values, np.full((1, 1, 2, 1), -np.inf))
    np.testing.assert_array_equal(indices, [[[[2], [6]]]])
    grad = ref.max_pool_backward(np.array([[[[1.0], [2.0]]]]), indices, x.shape)
    expected = np.zeros((1, 1, 4, 2))
    expected[0, 0, 1, 0], expected[0, 0, 3, 0] = 1.0, 2.0
    np.testing.assert_array_equal(grad, expected)


@pytest.mark.parametrize("values, expected_value, expected_index", [
    pytest.param([1.0, 3.0, 3.0], 3.0, 1, id="tie-first-wins"),
    pytest.param([np.nan, 1.0, np.nan, 5.0], np.nan, 2, id="last-nan-wins"),
    pytest.param([np.nan, 9.0, 2.0], np.nan, 0, id="nan-beats-later-max"),
    pytest.param([-np.inf, -np.inf], -np.inf, 0, id="all-neginf-first-tap"),
    pytest.param([0.0, -0.0], 0.0, 0, id="signed-zero-tie"),
])
def test_max_scan_rules(values, expected_value, expected_index):
    x = np.array(values)[np.newaxis, np.newaxis]
    pooled, indices = ref.max_pool(x, 1, len(values))
    np.testing.assert_array_equal(pooled.ravel(), [expected_value])
    assert indices.ravel().tolist() == [expected_index]


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64])
@pytest.mark.parametrize("case", ref.CASES[::3], ids=_case_ids(ref.CASES[::3]))
def test_max_integer_matches_torch(case, dtype):
    """Integer max pooling keeps the dtype (PyTorch's CPU kernels take it)."""
    info = np.iinfo(dtype)
    x = ref.make_rng(case.id, "int").integers(info.min, info.max, size=case.shape,
                                              dtype=dtype, endpoint=True)
    x.flat[::4] = info.max  # ties
    values, indices = ref.max_pool(x, case.nd, **case.max_kwargs())
    torch_values, torch_indices, _ = ref.torch_max_pool(x, case.nd, **case.max_kwargs())
    assert values.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(values, torch_values)
    np.testing.assert_array_equal(indices, torch_indices)


def test_max_integer_window_without_inbounds_tap_starts_at_min():
    x = np.array([[[5, 6]]], dtype=np.int16)
    values, indices = ref.max_pool(x, 1, 2, 1, 1, 3)
    assert values.dtype == np.int16
    assert values.ravel().tolist() == [np.iinfo(np.int16).min]
    assert indices.ravel().tolist() == [2]


# ------------------------------------------------------------- avg vs torch

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", AVG_VALUE_KINDS)
@pytest.mark.parametrize("count_include_pad, divisor_override", ref.AVG_DIVISORS,
                         ids=[f"cip{int(c)}-div{d}" for c, d in ref.AVG_DIVISORS])
@pytest.mark.parametrize("case", ref.AVG_CASES, ids=_case_ids(ref.AVG_CASES))
def test_avg_forward_matches_torch(case, count_include_pad, divisor_override, kind, dtype):
    x = ref.make_values(kind, case.shape, dtype, ref.make_rng(case.id, kind))
    kwargs = dict(case.avg_kwargs(), count_include_pad=count_include_pad,
                  divisor_override=divisor_override)
    values = ref.avg_pool(x, case.nd, **kwargs)
    torch_values, _ = ref.torch_avg_pool(x, case.nd, **kwargs)
    _assert_close(values, torch_values, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("count_include_pad, divisor_override", ref.AVG_DIVISORS,
                         ids=[f"cip{int(c)}-div{d}" for c, d in ref.AVG_DIVISORS])
@pytest.mark.parametrize("case", ref.AVG_CASES, ids=_case_ids(ref.AVG_CASES))
def test_avg_backward_matches_torch(case, count_include_pad, divisor_override, dtype):
    rng = ref.make_rng(case.id, "avg-grad")
    x = ref.make_values("randn", case.shape, dtype, rng)
    kwargs = dict(case.avg_kwargs(), count_include_pad=count_include_pad,
                  divisor_override=divisor_override)
    out_shape = ref.avg_pool(x, case.nd, **kwargs).shape
    grad_output = rng.standard_normal(out_shape).astype(dtype)
    _, torch_grad = ref.torch_avg_pool(x, case.nd, grad_output, **kwargs)
    grad_input = ref.avg_pool_backward(grad_output, case.shape, case.nd, **kwargs)
    _assert_close(grad_input, torch_grad, dtype)


@pytest.mark.parametrize("count_include_pad, expected", [
    # L=6, k=3, s=2, p=1, ceil: windows [-1,2), [1,4), [3,6), [5,8) with sums
    # 3, 9, 15, 6; the last is clipped to [5,7) by the right padding, so it
    # counts 2 with the padding and 1 without.
    pytest.param(True, [3 / 3, 9 / 3, 15 / 3, 6 / 2], id="count-include-pad"),
    pytest.param(False, [3 / 2, 9 / 3, 15 / 3, 6 / 1], id="in-bounds-count"),
])
def test_avg_ceil_overhang_divisor_by_hand(count_include_pad, expected):
    x = np.arange(1.0, 7.0)[np.newaxis, np.newaxis]
    values = ref.avg_pool(x, 1, 3, 2, 1, ceil_mode=True, count_include_pad=count_include_pad)
    np.testing.assert_allclose(values.ravel(), expected)
    torch_values, _ = ref.torch_avg_pool(x, 1, kernel_size=3, stride=2, padding=1,
                                         ceil_mode=True, count_include_pad=count_include_pad)
    np.testing.assert_allclose(torch_values.ravel(), expected)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64])
def test_avg_integer_input_gives_float64(dtype):
    case = ref.CASES[2]  # 1d ceil overhang with padding
    x = ref.make_rng("avg-int").integers(0, 100, size=case.shape).astype(dtype)
    values = ref.avg_pool(x, case.nd, **case.avg_kwargs())
    torch_values, _ = ref.torch_avg_pool(x.astype(np.float64), case.nd, **case.avg_kwargs())
    assert values.dtype == np.float64
    np.testing.assert_allclose(values, torch_values, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.bool_, np.complex128, object])
def test_avg_rejects_other_dtypes(dtype):
    with pytest.raises(TypeError):
        ref.avg_pool(np.zeros((1, 1, 4), dtype=dtype), 1, 2)


# ------------------------------------------------------- asymmetric padding

def _explicit_padding(case):
    return ref.resolve_padding(case.padding, case.nd, case.kernel_size, case.stride,
                               case.dilation, case.shape[2:])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", ref.ASYMMETRIC_CASES, ids=_case_ids(ref.ASYMMETRIC_CASES))
def test_max_asymmetric_padding_vs_torch_on_prepadded(case, dtype):
    """Explicit -inf padding read by PyTorch = implicit padding never read."""
    rng = ref.make_rng(case.id, "max-asym")
    x = ref.make_values("ties", case.shape, dtype, rng)
    spatial = case.shape[2:]
    pad_before, pad_after = _explicit_padding(case)
    values, indices = ref.max_pool(x, case.nd, **case.max_kwargs())
    grad_output = rng.standard_normal(values.shape).astype(dtype)

    padded = ref.pad_spatial(x, case.nd, pad_before, pad_after, -np.inf)
    torch_values, torch_indices, torch_grad = ref.torch_max_pool(
        padded, case.nd, grad_output, **dict(case.max_kwargs(), padding=0))
    np.testing.assert_array_equal(values, torch_values)
    coords = np.unravel_index(torch_indices, padded.shape[2:])
    assert all(np.all((c >= b) & (c < b + L))  # PyTorch never picked the -inf padding
               for c, b, L in zip(coords, pad_before, spatial))
    unpadded = np.ravel_multi_index([c - b for c, b in zip(coords, pad_before)], spatial)
    np.testing.assert_array_equal(indices, unpadded)

    grad_input = ref.max_pool_backward(grad_output, indices, case.shape)
    _assert_close(grad_input, ref.crop_spatial(torch_grad, pad_before, spatial), dtype)


ASYMMETRIC_AVG_CASES = [case for case in ref.ASYMMETRIC_CASES if case.avg]


@pytest.mark.parametrize("count_include_pad", [True, False], ids=["cip1", "cip0"])
@pytest.mark.parametrize("case", ASYMMETRIC_AVG_CASES, ids=_case_ids(ASYMMETRIC_AVG_CASES))
def test_avg_asymmetric_padding_vs_torch_on_prepadded(case, count_include_pad):
    """Window sums from zero-padded input; divisors from pooling a ones mask."""
    rng = ref.make_rng(case.id, "avg-asym")
    x = rng.standard_normal(case.shape)
    spatial = case.shape[2:]
    pad_before, pad_after = _explicit_padding(case)
    values = ref.avg_pool(x, case.nd, **case.avg_kwargs(), count_include_pad=count_include_pad)
    grad_output = rng.standard_normal(values.shape)

    padded = ref.pad_spatial(x, case.nd, pad_before, pad_after, 0.0)
    sum_kwargs = dict(case.avg_kwargs(), padding=0, divisor_override=1)
    window_sums, _ = ref.torch_avg_pool(padded, case.nd, **sum_kwargs)
    if count_include_pad:
        window_size = math.prod(ref._per_axis(case.kernel_size, case.nd, "kernel_size"))
        counts = np.full(window_sums.shape, float(window_size))
    else:
        mask = ref.pad_spatial(np.ones(case.shape), case.nd, pad_before, pad_after, 0.0)
        counts, _ = ref.torch_avg_pool(mask, case.nd, **sum_kwargs)
    np.testing.assert_allclose(values, window_sums / counts, rtol=1e-12)

    _, grad_padded = ref.torch_avg_pool(padded, case.nd, grad_output / counts, **sum_kwargs)
    grad_input = ref.avg_pool_backward(grad_output, case.shape, case.nd, **case.avg_kwargs(),
                                       count_include_pad=count_include_pad)
    np.testing.assert_allclose(
        grad_input, ref.crop_spatial(grad_padded, pad_before, spatial), rtol=1e-12)


def test_avg_asymmetric_by_hand():
    # L=5, k=2, s=2, 'same': out=3, total=1 -> pad (0, 1); windows [0,2), [2,4), [4,6).
    x = np.array([[[1.0, 2.0, 3.0, 4.0, 5.0]]])
    np.testing.assert_allclose(ref.avg_pool(x, 1, 2, 2, "same").ravel(), [1.5, 3.5, 2.5])
    np.testing.assert_allclose(
        ref.avg_pool(x, 1, 2, 2, "same", count_include_pad=False).ravel(), [1.5, 3.5, 5.0])
    np.testing.assert_allclose(
        ref.avg_pool_backward(np.array([[[2.0, 4.0, 6.0]]]), x.shape, 1, 2, 2, "same").ravel(),
        [1.0, 1.0, 2.0, 2.0, 3.0])


def test_max_asymmetric_by_hand():
    # L=4, k=3, s=1, pad (2, 0): windows [-2,1), [-1,2), [0,3), [1,4).
    x = np.array([[[3.0, 1.0, 4.0, 1.0]]])
    values, indices = ref.max_pool(x, 1, 3, 1, ((2, 0),))
    assert values.ravel().tolist() == [3.0, 3.0, 4.0, 4.0]
    assert indices.ravel().tolist() == [0, 0, 2, 2]


# ------------------------------------------------------------ layout helpers

@pytest.mark.parametrize("nd", [1, 2, 3])
def test_unbatched_equals_batched(nd):
    shape = (3,) + (5,) * nd
    x = ref.make_rng("unbatched", nd).standard_normal(shape)
    values, indices = ref.max_pool(x, nd, 2, 1, 1)
    batched_values, batched_indices = ref.max_pool(x[np.newaxis], nd, 2, 1, 1)
    np.testing.assert_array_equal(values, batched_values[0])
    np.testing.assert_array_equal(indices, batched_indices[0])
    np.testing.assert_array_equal(ref.avg_pool(x, nd, 3, 2, 1, True),
                                  ref.avg_pool(x[np.newaxis], nd, 3, 2, 1, True)[0])
    grad = np.ones(values.shape)
    np.testing.assert_array_equal(ref.avg_pool_backward(grad, shape, nd, 2, 1, 1),
                                  ref.avg_pool_backward(grad[np.newaxis], (1,) + shape,
                                                        nd, 2, 1, 1)[0])


def test_channels_last_round_trip():
    x = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    last = ref.to_channels_last(x)
    assert last.shape == (2, 4, 5, 3)
    assert last[1, 2, 3, 0] == x[1, 0, 2, 3]
    np.testing.assert_array_equal(ref.from_channels_last(last), x)


def test_reference_does_not_modify_input():
    x = ref.make_values("nan", (2, 3, 6, 5), np.float64, ref.make_rng("nomod"))
    before = x.copy()
    ref.max_pool(x, 2, 3, 2, 1, ceil_mode=True)
    ref.avg_pool(x, 2, 3, 2, 1, ceil_mode=True)
    np.testing.assert_array_equal(x, before)
