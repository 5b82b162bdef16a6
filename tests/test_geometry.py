"""Table-driven tests of the window-geometry helpers in cypool/_geometry.pxd."""

import pytest

from cypool import _geometry

# (in_size, kernel, stride, pad_before, pad_after, dilation, ceil_mode, expected)
OUTPUT_SIZE_CASES = [
    (10, 3, 2, 1, 1, 1, False, 5),
    (10, 3, 2, 1, 1, 1, True, 6),
    (5, 2, 2, 0, 0, 1, False, 2),
    (5, 2, 2, 0, 0, 1, True, 3),
    # ceil mode would start the last window in the right padding: dropped
    (4, 2, 3, 1, 1, 1, True, 2),
    (4, 2, 3, 1, 1, 1, False, 2),
    (6, 3, 2, 1, 1, 1, True, 4),
    (112, 3, 2, 1, 1, 1, False, 56),
    (112, 2, 2, 0, 0, 1, False, 56),
    # dilation widens the span to d*(k-1)+1
    (10, 3, 1, 0, 0, 2, False, 6),
    (10, 3, 3, 2, 2, 3, False, 3),
    (10, 3, 3, 2, 2, 3, True, 4),
    (1, 1, 1, 0, 0, 1, False, 1),
    (7, 7, 1, 0, 0, 1, True, 1),
    # asymmetric ('same') padding
    (5, 2, 2, 0, 1, 1, False, 3),
    (6, 3, 1, 1, 1, 1, False, 6),
    # impossible geometry gives a non-positive size (floor division, not truncation)
    (2, 3, 1, 0, 0, 1, False, 0),
    (1, 4, 2, 0, 0, 1, False, -1),
    (3, 2, 1, 0, 0, 4, False, -1),
]


@pytest.mark.parametrize("case", OUTPUT_SIZE_CASES, ids=str)
def test_output_size(case):
    *args, expected = case
    assert _geometry.output_size(*args) == expected


# (o, in_size, kernel, stride, pad_before, dilation, expected (first, count))
MAX_WINDOW_CASES = [
    (0, 5, 3, 1, 1, 1, (0, 2)),
    (1, 5, 3, 1, 1, 1, (0, 3)),
    (4, 5, 3, 1, 1, 1, (3, 2)),
    (0, 7, 3, 1, 2, 2, (0, 2)),
    (1, 7, 3, 1, 2, 2, (1, 2)),
    (2, 7, 3, 1, 2, 2, (0, 3)),
    (0, 7, 3, 1, 1, 3, (2, 2)),
    (2, 5, 2, 2, 0, 1, (4, 1)),
    (0, 1, 1, 1, 0, 1, (0, 1)),
    # every tap in the padding: no tap, and the position PyTorch reports
    (0, 3, 2, 1, 1, 4, (3, 0)),
]


@pytest.mark.parametrize("case", MAX_WINDOW_CASES, ids=str)
def test_max_window(case):
    *args, expected = case
    assert _geometry.max_window(*args) == expected


# (o, in_size, kernel, stride, pad_before, pad_after, expected (start, count, padded))
AVG_WINDOW_CASES = [
    (0, 5, 3, 2, 1, 1, (0, 2, 3)),
    (1, 5, 3, 2, 1, 1, (1, 3, 3)),
    (2, 5, 3, 2, 1, 1, (3, 2, 3)),
    # ceil-mode overhang past the right padding is not counted
    (3, 6, 3, 2, 1, 1, (5, 1, 2)),
    (2, 5, 2, 2, 0, 0, (4, 1, 1)),
    (0, 4, 4, 1, 2, 2, (0, 2, 4)),
    (0, 5, 2, 2, 0, 1, (0, 2, 2)),
    (2, 5, 2, 2, 0, 1, (4, 1, 2)),
]


@pytest.mark.parametrize("case", AVG_WINDOW_CASES, ids=str)
def test_avg_window(case):
    *args, expected = case
    assert _geometry.avg_window(*args) == expected


# (i, in_size, out_size, expected (start, end))
ADAPTIVE_CASES = [
    (0, 10, 3, (0, 4)),
    (1, 10, 3, (3, 7)),
    (2, 10, 3, (6, 10)),
    (0, 7, 7, (0, 1)),
    (6, 7, 7, (6, 7)),
    (0, 3, 5, (0, 1)),
    (1, 3, 5, (0, 2)),
    (4, 3, 5, (2, 3)),
    (0, 5, 1, (0, 5)),
    # exact integer arithmetic where (i+1)*in_size passes 2**53 (float would round)
    (2**22 - 2, 2**40 + 1, 2**22 - 1,
     ((2**22 - 2) * (2**40 + 1) // (2**22 - 1), 2**40 + 1)),
    (5, 2**40 + 1, 2**22 - 1,
     (5 * (2**40 + 1) // (2**22 - 1), -(-6 * (2**40 + 1) // (2**22 - 1)))),
]


@pytest.mark.parametrize("case", ADAPTIVE_CASES, ids=str)
def test_adaptive_window(case):
    *args, expected = case
    assert _geometry.adaptive_window(*args) == expected


def test_adaptive_windows_cover_input():
    for in_size in range(1, 30):
        for out_size in range(1, 30):
            bounds = [_geometry.adaptive_window(i, in_size, out_size) for i in range(out_size)]
            assert bounds[0][0] == 0 and bounds[-1][1] == in_size
            for start, end in bounds:
                assert 0 <= start < end <= in_size
                # exact: floor(i*L/out), ceil((i+1)*L/out)
            for i, (start, end) in enumerate(bounds):
                assert start == (i * in_size) // out_size
                assert end == -((-(i + 1) * in_size) // out_size)
