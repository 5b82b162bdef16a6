"""Every op of the table, valid calls and error paths, for the memory tools.

``python tests/fuzz/exercise.py [rounds]`` checks one pass against the
reference, then repeats the calls ``rounds`` times (default 1): what
`make valgrind` runs.  ``tests/test_leaks.py`` loops :func:`run` and watches
the resident set size.
"""

import os
import sys

import numpy as np

if __name__ == "__main__":  # run as a script: import tests/ and the checkout's cypool
    _TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path[:0] = [_TESTS, os.path.dirname(_TESTS)]

from fuzz.ops import OPS, RandomChoices, Skip, check  # noqa: E402


def prepare(seed=0, per_op=3, bad_per_case=8):
    """Seeded calls of every op: ``[(case, [(argument, bad value), ...]), ...]``.

    Values are made here, once, so the loop allocates only what cypool does.
    """
    rng = np.random.default_rng(seed)
    work = []
    for name in sorted(OPS):
        for _ in range(per_op):
            case = OPS[name].build(RandomChoices(rng))
            bads = []
            for index in rng.permutation(len(OPS[name].bad))[:bad_per_case]:
                bad = OPS[name].bad[index]
                try:
                    bads.append((bad.argument, bad.value(case)))
                except Skip:
                    pass
            work.append((case, bads))
    return work


def run(work):
    """Every call of ``work`` once; returns the number of calls made."""
    calls = 0
    for case, bads in work:
        try:
            case.call()
        except ValueError:
            assert case.rejected, case.op
        for argument, value in bads:
            try:
                case.call(**{argument: value})
            except (ValueError, TypeError):
                pass
            else:
                raise AssertionError(f"{case.op}: {argument}={value!r} was accepted")
        calls += 1 + len(bads)
    return calls


def main(rounds=1):
    work = prepare()
    for case, _ in work:
        check(case)
    calls = sum(run(work) for _ in range(rounds))
    print(f"exercise: {len(OPS)} ops, {len(work)} cases, {calls} calls, all as expected")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
