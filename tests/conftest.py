"""Shared test settings: hypothesis profiles and the optional PyTorch import."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from cypool import _adaptive, _avg, _fractional, _lp, _max

# `make test` runs the default profile; `make fuzz` selects the long one.
settings.register_profile(
    "default", max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz", max_examples=5000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("CYPOOL_HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


#: For a hypothesis test that takes the ``lanes`` fixture (a module setting, the
#: same for every example).
WITH_FIXTURE = settings(suppress_health_check=[HealthCheck.too_slow,
                                               HealthCheck.function_scoped_fixture])

#: The kernel modules whose _simd.h loops the tests cap (each has its own level).
VECTOR_MODULES = (_max, _avg, _adaptive, _fractional, _lp)


@pytest.fixture(params=[2, 1, 0], ids=["avx2", "sse2", "portable"])
def simd_level(request):
    """Every vector path of ``_simd.h`` that this CPU runs, then the best again."""
    best = _max.simd_level(2)
    if request.param > best:
        pytest.skip(f"this CPU runs vector level {best} at most")
    for module in VECTOR_MODULES:
        assert module.simd_level(request.param) == request.param
    yield request.param
    for module in VECTOR_MODULES:
        module.simd_level(2)


@pytest.fixture(params=[0, None], ids=["rows", "lanes"])
def lanes(request):
    """Small channels-first planes by the row paths (lanes off), then by the
    default (planes side by side in lanes where they are small)."""
    defaults = [(module, module.small_plane_limit()) for module in (_max, _avg, _adaptive)]
    for module, _ in defaults:
        module.small_plane_limit(request.param)
    yield request.param
    for module, default in defaults:
        module.small_plane_limit(default)
