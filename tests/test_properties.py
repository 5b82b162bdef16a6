"""Property tests: every op of the table in tests/fuzz/ops.py against the reference.

For each public function (forward and backward, 1-D/2-D/3-D) hypothesis draws
shapes (size 1 and primes, empty batches, unbatched), dtypes, layouts, views
and valid window arguments (kernel, stride, padding incl. 'same'/'valid',
dilation, ceil mode, count_include_pad, divisor; adaptive and unpooling output
sizes, LP norm types, global keepdims, unpooling indices; fractional output
sizes and ratios, ``_random_samples`` and seeds; stochastic training and eval
mode, seeds, sampled indices), and cypool must agree with tests/reference.py
(reference_reduce.py, reference_sample.py), or refuse exactly the geometry it
documents refusing.
Then one argument is replaced by an invalid value, and cypool must raise
ValueError/TypeError whose message names it.

`make test` runs the ``default`` hypothesis profile (60 examples per test);
`make fuzz` runs the ``fuzz`` profile (tests/conftest.py).  A failing draw is
printed as ``replay: <op> [decisions]``; add it to ``REGRESSIONS``.
"""

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from fuzz.ops import OPS, DrawChoices, Recorder, Replay, Skip, check, fixed_case, refusal

NAMES = sorted(OPS)
FIXED_CASES = 8   # seeded cases an invalid replacement may need to find one it applies to


def _draw_case(name, data):
    recorder = Recorder(DrawChoices(data.draw))
    case = OPS[name].build(recorder)
    note(f"replay: {name} {recorder.decisions}")
    return case


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_agrees_with_reference_and_refuses_invalid(name, data):
    """One drawn case: cypool agrees with the reference; then the same call
    with one argument made invalid is refused with a message naming it."""
    case = _draw_case(name, data)
    check(case)
    if case.rejected is None:
        bad = data.draw(st.sampled_from(OPS[name].bad), label="bad argument")
        try:
            refusal(case, bad)
        except Skip:
            pass


@pytest.mark.parametrize("name", NAMES)
def test_every_bad_argument_is_refused(name):
    """Each invalid replacement of the op's table, on the first of a few fixed
    cases it applies to (hypothesis samples them; this walks all of them every
    run, and fails on one that applies to none: e.g. a training-only refusal
    needs a training case)."""
    cases = []

    def case(k):  # built when first needed
        while len(cases) <= k:
            cases.append(fixed_case(name, seed=len(name) + len(cases)))
        return cases[k]

    for bad in OPS[name].bad:
        for k in range(FIXED_CASES):
            try:
                refusal(case(k), bad)
                break
            except Skip:
                pass
        else:
            raise AssertionError(f"{name}: {bad} applies to none of {FIXED_CASES} fixed cases")


# Draws hypothesis found failing, replayed exactly: (op, decisions) as printed
# in the failure's "replay:" note.  None so far.
REGRESSIONS = [
]


def test_regressions():
    for name, decisions in REGRESSIONS:
        check(OPS[name].build(Replay(decisions)))
