"""atheris fuzz target over cypool's argument parser and kernels.

Each input picks an op of the table (tests/fuzz/ops.py), builds a case from
the fuzzer's bytes (shapes, dtypes, layouts, views, window arguments), then
replaces up to three arguments with edge values (zero, negative, past 2**31,
2**63 and 2**64, floats, NaN, strings, None, bools, tuples of every length,
arrays, ratios, samples, a RandomState, the op's own invalid replacements).  The call must return (and, with
no replacement, agree with the reference) or raise ValueError/TypeError with
a message; any other exception, a crash or a hang (libFuzzer's -timeout) is a
finding, saved as a crash file: turn it into a test in tests/test_adversarial.py.

Run (what `make fuzz` does)::

    python tests/fuzz/fuzz_pool.py -max_total_time=300 -timeout=30 build/fuzz/corpus

and replay a finding with ``python tests/fuzz/fuzz_pool.py crash-<hash>``.
The cypool Python modules are instrumented for coverage feedback; the
compiled kernels are not.
"""

import math
import os
import sys

import numpy as np

_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

EDGES = (0, 1, 2, 3, -1, -2, 2**31 - 1, 2**31, 2**62, 2**63, -2**63, 2**64, 1.5, float("nan"),
         float("inf"), "same", "valid", "SAME", "", "x", None, True, False, (), (1,), (2, 2),
         (1, 1, 1), (1, 2, 3, 4), (2**31, 1), (0, 1), [1.5, 2], (None, 1), np.int64(2),
         np.array([1, 2]), np.float32(2.0), b"2", 4096, 4097,
         # output ratios, samples and rngs of fractional and stochastic pooling
         0.5, 1.0, -0.0, (0.5, 0.5), np.zeros((2, 3, 2)), np.full((1, 1, 3), 0.99),
         np.random.RandomState(0))
# Known slow, reported and marked xfail in tests/test_adversarial.py
# (test_huge_windows_max_channels_first): keep them out so a run stays bounded.
SLOW_KERNEL = 4096
# Valid requests for more elements than this are legal but only allocate.
LARGEST = 2**24


def _ints(value):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return [int(value)]
    if isinstance(value, (tuple, list)):
        return [int(v) for v in value if isinstance(v, (int, np.integer))]
    return []


def _result_bound(case):
    """An upper bound of the result's elements of the ops whose result can be
    far larger than ``x``: unpooling (``(in - 1) * stride + kernel`` per axis,
    or an output_size within a stride of it) and adaptive pooling (output_size);
    0 for the others."""
    args = case.kwargs
    forward = not case.op.endswith("backward")
    if forward and case.op.startswith("max_unpool"):
        factors = _ints(args.get("kernel_size")) + _ints(args.get("stride"))
    elif forward and case.op.startswith("adaptive"):
        factors = _ints(args.get("output_size"))
    else:
        return 0
    try:
        size = np.asarray(args.get("x")).size
    except Exception:  # an edge value that is no array: refused before any allocation
        return 0
    return size * (2 * max([abs(v) for v in factors] + [1])) ** case.nd


def _too_costly(case):
    """Valid-looking calls that are merely big (or hit the known slow path)."""
    args = case.kwargs
    if _result_bound(case) > LARGEST:
        return True
    if case.op.startswith("max_pool") and not case.op.endswith("backward") \
            and args.get("channels_last") is not True \
            and any(abs(v) > SLOW_KERNEL for v in _ints(args.get("kernel_size"))):
        return True
    shape = _ints(args.get("input_shape", ()))
    if shape and LARGEST < math.prod(max(abs(v), 1) for v in shape) < 2**62:
        return True
    threads = args.get("num_threads")
    return isinstance(threads, int) and 8 < threads <= 4096


def one_input(data, ops, choices, check):
    import atheris

    fdp = atheris.FuzzedDataProvider(data)
    names = sorted(ops)
    op = ops[names[fdp.ConsumeIntInRange(0, len(names) - 1)]]
    case = op.build(choices(fdp))
    replaced = []
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        if fdp.ConsumeBool() and op.bad:
            bad = op.bad[fdp.ConsumeIntInRange(0, len(op.bad) - 1)]
            try:
                value = bad.value(case)
            except Exception:  # Skip, or a maker that does not fit the mutated case
                continue
            argument = bad.argument
        else:
            argument = sorted(case.kwargs)[fdp.ConsumeIntInRange(0, len(case.kwargs) - 1)]
            value = EDGES[fdp.ConsumeIntInRange(0, len(EDGES) - 1)]
        case.kwargs[argument] = value
        replaced.append(argument)
    if replaced and _too_costly(case):  # drawn cases are small by construction
        return
    if not replaced:
        check(case)
        return
    try:
        case.call()
    except (ValueError, TypeError) as exc:
        assert str(exc), f"{case.op}: empty message for {replaced}"
    except MemoryError:
        pass  # a legal request this machine cannot hold


def main(argv):
    import atheris

    sys.path[:0] = [_TESTS, os.path.dirname(_TESTS)]
    with atheris.instrument_imports(include=["cypool"]):
        import cypool  # noqa: F401
    from fuzz.ops import OPS, FuzzChoices, check

    atheris.Setup(argv, lambda data: one_input(data, OPS, FuzzChoices, check))
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
