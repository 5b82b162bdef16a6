"""No leaks: a long loop of every op, error paths included, keeps RSS flat.

RSS is read from /proc/self/statm after a warm-up (allocator pools, the plan
cache and OpenMP's thread team settle within ~40 rounds: +1.3 MiB, then flat)
and again after ``ROUNDS`` more rounds of ~1,300 calls (all 50 ops of the
table, three seeded cases each, with up to eight invalid-argument calls per
case).  With ``TOLERANCE`` = 1 MiB over ~80k calls this catches a leak of ~13
bytes per call spread over every op, ~650 bytes per call of a single op, and
any leaked result array or Python reference.  C-level leaks smaller than that
are AddressSanitizer's job (`make asan`).
"""

import gc
import os
import sys

import pytest

from fuzz.exercise import prepare, run

WARMUP = 40
ROUNDS = 60
TOLERANCE = 2**20   # bytes; measured growth after the warm-up: 0-8 KiB


def _rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_rss_stays_flat():
    work = prepare(seed=7)
    for _ in range(WARMUP):
        run(work)
    gc.collect()
    before = _rss()
    calls = sum(run(work) for _ in range(ROUNDS))
    gc.collect()
    growth = _rss() - before
    assert calls > 15_000
    assert growth < TOLERANCE, f"RSS grew by {growth / 2**20:.1f} MiB over {calls} calls"
