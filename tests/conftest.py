"""Shared test settings: hypothesis profiles and the optional PyTorch import."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

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
