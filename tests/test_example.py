"""examples/numpy_cnn_digits.py, shortened: two epochs learn far above chance, quickly."""

import importlib.util
import pathlib
import time

import numpy as np
import pytest

from cypool import layers

pytest.importorskip("sklearn")

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "numpy_cnn_digits.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("numpy_cnn_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_epochs_learn_the_digits(example):
    start = time.perf_counter()
    history, pooling_seconds, total = example.train("cypool", epochs=2, report=lambda line: None)
    assert len(history) == 2
    assert history[-1] > 0.8            # chance is 0.1; the full run reaches >= 0.97
    assert 0 < pooling_seconds < total
    assert time.perf_counter() - start < 60   # seconds, not minutes, even on a busy machine


def test_numpy_pooling_of_the_comparison_equals_cypool(example, rng):
    """The baseline the example times cypool against computes the same thing."""
    x = rng.standard_normal((4, 3, 8, 6)).astype(np.float32)
    numpy_pool, cypool_pool = example.NumpyMaxPool2x2(), layers.MaxPool2d(2)
    np.testing.assert_array_equal(numpy_pool.forward(x), cypool_pool.forward(x))
    grad = rng.standard_normal((4, 3, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(numpy_pool.backward(grad), cypool_pool.backward(grad))


def test_conv_backward_is_the_gradient(example, rng):
    """im2col convolution's backward against central differences (float64)."""
    conv = example.Conv3x3(2, 3, rng)
    conv.params = {name: value.astype(np.float64) for name, value in conv.params.items()}
    x = rng.standard_normal((2, 2, 4, 5))
    g = rng.standard_normal((2, 3, 4, 5))
    conv.forward(x)
    analytic = conv.backward(g)
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        for sign in (1, -1):
            shifted = x.copy()
            shifted[index] += sign * 1e-6
            numeric[index] += sign * np.sum(conv.forward(shifted) * g) / 2e-6
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)
