"""cypool against PyTorch CPU and a NumPy copy, timed side by side in one run.

Every case times cypool and its peer interleaved (A, B, A, B, ...) in this one
process and reports medians and the ratio cypool / peer (below 1 is faster).
A sample repeats a short call until it lasts about 2 ms.
The peer is PyTorch CPU (same thread count, called from NumPy through
``torch.from_numpy``) or ``np.copyto`` of the input, a floor set by the memory
bus.  Writes ``benchmarks/RESULTS.md`` and, with matplotlib, a bar chart
``benchmarks/ratios.png``.  Runs without PyTorch too (then only the copy
cases).

    python benchmarks/bench.py [--quick] [--threads N] [--no-write]
"""

import argparse
import os
import platform
import sys
import time

import numpy as np

import cypool

HERE = os.path.dirname(os.path.abspath(__file__))

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the copy cases still run
    torch = None


def _rng():
    return np.random.default_rng(2026)


class Case:
    """One row: ``run_cypool(threads)`` against ``run_peer(threads)``."""

    def __init__(self, name, peer, goal, make, cypool_call, peer_call, shape, calls=1,
                 section="core"):
        self.name, self.peer, self.goal = name, peer, goal
        self.make, self.cypool_call, self.peer_call = make, cypool_call, peer_call
        self.shape, self.calls, self.section = shape, calls, section


# Shortest time of one sample: a faster call is repeated within each sample, so
# that the other library's OpenMP threads, still spinning after its own call
# (each library brings its runtime), and the clock cost only its first repeat.
SAMPLE_S = 2e-3


def _median_pair(run_a, run_b, budget_s, calls):
    """Interleaved medians of two callables (seconds per call); each sample
    repeats a call at least ``calls`` times and for at least SAMPLE_S."""
    def once(run, repeats):
        start = time.perf_counter()
        for _ in range(repeats):
            run()
        return (time.perf_counter() - start) / repeats

    once(run_a, calls), once(run_b, calls)  # warm up: page faults, thread pools, caches
    first_a, first_b = once(run_a, calls), once(run_b, calls)
    repeats = max(calls, int(SAMPLE_S / max(min(first_a, first_b), 1e-9)) + 1)
    rounds = int(min(41, max(7, budget_s / max((first_a + first_b) * repeats, 1e-9))))
    a_times, b_times = [], []
    for _ in range(rounds):
        a_times.append(once(run_a, repeats))
        b_times.append(once(run_b, repeats))
    return float(np.median(a_times)), float(np.median(b_times))


def _torch_tensor(x, channels_last=False):
    t = torch.from_numpy(x)
    if channels_last:  # x is (N, *spatial, C): the NC... view with channels_last strides
        t = t.permute(0, x.ndim - 1, *range(1, x.ndim - 1))
    return t


def build_cases():
    rng = _rng()
    cases = []

    def big2d():
        return rng.standard_normal((32, 64, 112, 112), dtype=np.float32)

    def copy_peer(x):
        dst = np.empty_like(x)
        return lambda threads: np.copyto(dst, x)

    def add(name, peer, goal, make, cy, pe, shape, calls=1, section="core"):
        cases.append(Case(name, peer, goal, make, cy, pe, shape, calls, section))

    # 2-D, the ImageNet-sized batch of the goals
    add("max_pool2d k2 s2", "torch", 0.2, big2d,
        lambda x: lambda n: cypool.max_pool2d(x, 2, 2, num_threads=n),
        lambda x: lambda n: F.max_pool2d(torch.from_numpy(x), 2, 2), (32, 64, 112, 112))
    add("max_pool2d k3 s2 p1", "torch", 0.25, big2d,
        lambda x: lambda n: cypool.max_pool2d(x, 3, 2, 1, num_threads=n),
        lambda x: lambda n: F.max_pool2d(torch.from_numpy(x), 3, 2, 1), (32, 64, 112, 112))
    add("max_pool2d k3 s2 p1 +indices", "torch", 0.25, big2d,
        lambda x: lambda n: cypool.max_pool2d(x, 3, 2, 1, return_indices=True, num_threads=n),
        lambda x: lambda n: F.max_pool2d(torch.from_numpy(x), 3, 2, 1, return_indices=True),
        (32, 64, 112, 112))
    add("avg_pool2d k2 s2", "torch", 0.5, big2d,
        lambda x: lambda n: cypool.avg_pool2d(x, 2, 2, num_threads=n),
        lambda x: lambda n: F.avg_pool2d(torch.from_numpy(x), 2, 2), (32, 64, 112, 112))
    add("max_pool2d k2 s2", "copy", 0.6, big2d,
        lambda x: lambda n: cypool.max_pool2d(x, 2, 2, num_threads=n), copy_peer, (32, 64, 112, 112))
    add("avg_pool2d k3 s2 p1", "copy", 1.0, big2d,
        lambda x: lambda n: cypool.avg_pool2d(x, 3, 2, 1, num_threads=n), copy_peer, (32, 64, 112, 112))

    _backward_rows(add, rng, big2d, ("max_pool2d backward k3 s2 p1",
                                      "avg_pool2d backward k3 s2 p1"), (32, 64, 112, 112))

    add("max_pool2d k3 s2 p1 channels_last", "torch", 1.0,
        lambda: rng.standard_normal((32, 112, 112, 64), dtype=np.float32),
        lambda x: lambda n: cypool.max_pool2d(x, 3, 2, 1, channels_last=True, num_threads=n),
        lambda x: lambda n: F.max_pool2d(_torch_tensor(x, True), 3, 2, 1), (32, 112, 112, 64))

    def vol():
        return rng.standard_normal((2, 16, 64, 64, 64), dtype=np.float32)

    add("max_pool3d k2", "torch", 0.3, vol,
        lambda x: lambda n: cypool.max_pool3d(x, 2, num_threads=n),
        lambda x: lambda n: F.max_pool3d(torch.from_numpy(x), 2), (2, 16, 64, 64, 64))
    add("avg_pool3d k3 s2 p1", "torch", 0.5, vol,
        lambda x: lambda n: cypool.avg_pool3d(x, 3, 2, 1, num_threads=n),
        lambda x: lambda n: F.avg_pool3d(torch.from_numpy(x), 3, 2, 1), (2, 16, 64, 64, 64))

    add("max_pool1d k3 s1 p1", "torch", 0.5,
        lambda: rng.standard_normal((32, 128, 4096), dtype=np.float32),
        lambda x: lambda n: cypool.max_pool1d(x, 3, 1, 1, num_threads=n),
        lambda x: lambda n: F.max_pool1d(torch.from_numpy(x), 3, 1, 1), (32, 128, 4096))

    def k9():
        return rng.standard_normal((8, 32, 128, 128), dtype=np.float32)

    add("max_pool2d k9 s1 p4", "torch", 0.2, k9,
        lambda x: lambda n: cypool.max_pool2d(x, 9, 1, 4, num_threads=n),
        lambda x: lambda n: F.max_pool2d(torch.from_numpy(x), 9, 1, 4), (8, 32, 128, 128))
    add("avg_pool2d k9 s1 p4", "torch", 0.5, k9,
        lambda x: lambda n: cypool.avg_pool2d(x, 9, 1, 4, num_threads=n),
        lambda x: lambda n: F.avg_pool2d(torch.from_numpy(x), 9, 1, 4), (8, 32, 128, 128))

    add("adaptive_avg_pool2d to 1", "torch", 1.0,
        lambda: rng.standard_normal((64, 512, 7, 7), dtype=np.float32),
        lambda x: lambda n: cypool.adaptive_avg_pool2d(x, 1, num_threads=n),
        lambda x: lambda n: F.adaptive_avg_pool2d(torch.from_numpy(x), 1), (64, 512, 7, 7))

    # the rest of the family, with the margins of the core goals
    def mid2d():
        return rng.standard_normal((16, 64, 112, 112), dtype=np.float32)

    add("adaptive_avg_pool2d to 7", "torch", 0.5, mid2d,
        lambda x: lambda n: cypool.adaptive_avg_pool2d(x, 7, num_threads=n),
        lambda x: lambda n: F.adaptive_avg_pool2d(torch.from_numpy(x), 7), (16, 64, 112, 112))
    add("adaptive_max_pool2d to 7", "torch", 0.5, mid2d,
        lambda x: lambda n: cypool.adaptive_max_pool2d(x, 7, num_threads=n),
        lambda x: lambda n: F.adaptive_max_pool2d(torch.from_numpy(x), 7), (16, 64, 112, 112))
    add("global_max_pool", "torch", 1.0,
        lambda: rng.standard_normal((64, 512, 7, 7), dtype=np.float32),
        lambda x: lambda n: cypool.global_max_pool(x, num_threads=n),
        lambda x: lambda n: F.adaptive_max_pool2d(torch.from_numpy(x), 1), (64, 512, 7, 7))
    add("lp_pool2d p=2 k2 s2", "torch", 0.5, mid2d,
        lambda x: lambda n: cypool.lp_pool2d(x, 2, 2, num_threads=n),
        lambda x: lambda n: F.lp_pool2d(torch.from_numpy(x), 2, 2), (16, 64, 112, 112))
    add("lp_pool2d p=1.5 k3 s2", "torch", 0.5, mid2d,
        lambda x: lambda n: cypool.lp_pool2d(x, 1.5, 3, 2, num_threads=n),
        lambda x: lambda n: F.lp_pool2d(torch.from_numpy(x), 1.5, 3, 2), (16, 64, 112, 112))

    def unpool_inputs():
        x = mid2d()
        return cypool.max_pool2d(x, 2, return_indices=True)

    add("max_unpool2d k2", "torch", 0.5, unpool_inputs,
        lambda a: lambda n: cypool.max_unpool2d(a[0], a[1], 2, num_threads=n),
        lambda a: lambda n: F.max_unpool2d(torch.from_numpy(a[0]), torch.from_numpy(a[1]), 2),
        (16, 64, 56, 56))

    def fractional_inputs():
        x = mid2d()
        return x, rng.random((16, 64, 2), dtype=np.float32)

    add("fractional_max_pool2d k2 to 56", "torch", 0.5, fractional_inputs,
        lambda a: lambda n: cypool.fractional_max_pool2d(a[0], 2, 56, _random_samples=a[1],
                                                         num_threads=n),
        lambda a: lambda n: F.fractional_max_pool2d(torch.from_numpy(a[0]), 2, 56,
                                                    _random_samples=torch.from_numpy(a[1])),
        (16, 64, 112, 112))
    add("stochastic_pool2d k2 (train)", "copy", 1.0, mid2d,
        lambda x: lambda n: cypool.stochastic_pool2d(x, 2, rng=0, num_threads=n), copy_peer,
        (16, 64, 112, 112))

    add("one small call k2", "torch", 0.7,
        lambda: rng.standard_normal((1, 3, 8, 8), dtype=np.float32),
        lambda x: lambda n: cypool.max_pool2d(x, 2, num_threads=n),
        lambda x: lambda n: F.max_pool2d(torch.from_numpy(x), 2).numpy(), (1, 3, 8, 8), calls=200)
    _breadth_cases(rng, add)
    return cases


def _backward_rows(add, rng, make_x, names, shape, section="core"):
    """max_pool2d and avg_pool2d backward k3 s2 p1 (rows ``names``) of
    ``make_x()``'s pooling, against PyTorch's backward kernels."""
    def inputs():
        x = make_x()
        y, idx = cypool.max_pool2d(x, 3, 2, 1, return_indices=True)
        return x, rng.standard_normal(y.shape, dtype=np.float32), idx

    add(names[0], "torch", 0.5, inputs,
        lambda a: lambda n: cypool.max_pool2d_backward(a[1], a[2], a[0].shape, num_threads=n),
        lambda a: lambda n: torch.ops.aten.max_pool2d_with_indices_backward(
            torch.from_numpy(a[1]), torch.from_numpy(a[0]), [3, 3], [2, 2], [1, 1], [1, 1], False,
            torch.from_numpy(a[2])), shape, section=section)
    add(names[1], "torch", 0.5, inputs,
        lambda a: lambda n: cypool.avg_pool2d_backward(a[1], a[0].shape, 3, 2, 1, num_threads=n),
        lambda a: lambda n: torch.ops.aten.avg_pool2d_backward(
            torch.from_numpy(a[1]), torch.from_numpy(a[0]), [3, 3], [2, 2], [1, 1], False, True,
            None), shape, section=section)


def _breadth_cases(rng, add):
    """Other shapes, dtypes and layouts, each with the margin of its core row."""
    def torch_case(name, goal, shape, cy, pe, dtype=np.float32, channels_last=False):
        add(name, "torch", goal, lambda: rng.standard_normal(shape).astype(dtype),
            lambda x: lambda n: cy(x, n),
            lambda x: lambda n: pe(_torch_tensor(x, channels_last)), shape, section="breadth")

    small = (64, 512, 14, 14)
    torch_case("max_pool2d k2 s2, 14x14 planes", 0.2, small,
               lambda x, n: cypool.max_pool2d(x, 2, num_threads=n), lambda t: F.max_pool2d(t, 2))
    torch_case("max_pool2d k3 s2 p1, 14x14 planes", 0.25, small,
               lambda x, n: cypool.max_pool2d(x, 3, 2, 1, num_threads=n),
               lambda t: F.max_pool2d(t, 3, 2, 1))
    torch_case("avg_pool2d k3 s2 p1, 14x14 planes", 0.5, small,
               lambda x, n: cypool.avg_pool2d(x, 3, 2, 1, num_threads=n),
               lambda t: F.avg_pool2d(t, 3, 2, 1))
    torch_case("max_pool2d k3 s2 p1, odd sizes", 0.25, (16, 17, 113, 109),
               lambda x, n: cypool.max_pool2d(x, 3, 2, 1, num_threads=n),
               lambda t: F.max_pool2d(t, 3, 2, 1))
    torch_case("max_pool2d k3 s2 p1 float64", 0.25, (16, 64, 112, 112),
               lambda x, n: cypool.max_pool2d(x, 3, 2, 1, num_threads=n),
               lambda t: F.max_pool2d(t, 3, 2, 1), dtype=np.float64)
    torch_case("avg_pool2d k2 s2 float64", 0.5, (16, 64, 112, 112),
               lambda x, n: cypool.avg_pool2d(x, 2, num_threads=n), lambda t: F.avg_pool2d(t, 2),
               dtype=np.float64)
    torch_case("max_pool2d k3s2p1 channels_last C=3", 1.0, (16, 224, 224, 3),
               lambda x, n: cypool.max_pool2d(x, 3, 2, 1, channels_last=True, num_threads=n),
               lambda t: F.max_pool2d(t, 3, 2, 1), channels_last=True)
    torch_case("avg_pool2d k2 channels_last C=24", 1.0, (16, 112, 112, 24),
               lambda x, n: cypool.avg_pool2d(x, 2, channels_last=True, num_threads=n),
               lambda t: F.avg_pool2d(t, 2), channels_last=True)
    torch_case("max_pool1d k3 s2, short rows", 0.5, (16, 256, 129),
               lambda x, n: cypool.max_pool1d(x, 3, 2, num_threads=n),
               lambda t: F.max_pool1d(t, 3, 2))
    torch_case("avg_pool3d k2, 16^3 volumes", 0.5, (4, 32, 16, 16, 16),
               lambda x, n: cypool.avg_pool3d(x, 2, num_threads=n), lambda t: F.avg_pool3d(t, 2))
    torch_case("adaptive_avg_pool2d to 1, 112x112", 1.0, (8, 64, 112, 112),
               lambda x, n: cypool.adaptive_avg_pool2d(x, 1, num_threads=n),
               lambda t: F.adaptive_avg_pool2d(t, 1))
    torch_case("lp_pool2d p=2 k2, 7x7 planes", 0.5, (64, 512, 7, 7),
               lambda x, n: cypool.lp_pool2d(x, 2, 2, num_threads=n),
               lambda t: F.lp_pool2d(t, 2, 2))
    torch_case("avg_pool2d k3 s2 p1, 7x7 planes", 0.5, (64, 512, 7, 7),
               lambda x, n: cypool.avg_pool2d(x, 3, 2, 1, num_threads=n),
               lambda t: F.avg_pool2d(t, 3, 2, 1))
    torch_case("max_pool1d k3 s1 p1, rows of 100", 0.5, (16, 256, 100),
               lambda x, n: cypool.max_pool1d(x, 3, 1, 1, num_threads=n),
               lambda t: F.max_pool1d(t, 3, 1, 1))

    torch_case("adaptive_max_pool2d 14x14 to 7", 0.5, small,
               lambda x, n: cypool.adaptive_max_pool2d(x, 7, num_threads=n),
               lambda t: F.adaptive_max_pool2d(t, 7))
    torch_case("adaptive_avg_pool2d 14x14 to 7", 0.5, small,
               lambda x, n: cypool.adaptive_avg_pool2d(x, 7, num_threads=n),
               lambda t: F.adaptive_avg_pool2d(t, 7))

    torch_case("adaptive_max_pool1d 4096 to 100", 0.5, (32, 128, 4096),
               lambda x, n: cypool.adaptive_max_pool1d(x, 100, num_threads=n),
               lambda t: F.adaptive_max_pool1d(t, 100))
    torch_case("adaptive_avg_pool2d 112 to 56", 0.5, (16, 64, 112, 112),
               lambda x, n: cypool.adaptive_avg_pool2d(x, 56, num_threads=n),
               lambda t: F.adaptive_avg_pool2d(t, 56))
    torch_case("adaptive_max_pool2d to (112, 4)", 0.5, (16, 64, 112, 112),
               lambda x, n: cypool.adaptive_max_pool2d(x, (112, 4), num_threads=n),
               lambda t: F.adaptive_max_pool2d(t, (112, 4)))
    torch_case("avg_pool2d k7 s7", 0.5, (16, 64, 112, 112),
               lambda x, n: cypool.avg_pool2d(x, 7, 7, num_threads=n),
               lambda t: F.avg_pool2d(t, 7, 7))
    torch_case("max_pool1d k4 s4", 0.5, (32, 128, 4096),
               lambda x, n: cypool.max_pool1d(x, 4, 4, num_threads=n),
               lambda t: F.max_pool1d(t, 4, 4))

    def lp_backward_inputs():
        x = np.abs(rng.standard_normal((16, 64, 56, 56), dtype=np.float32)) + 0.1
        y = cypool.lp_pool2d(x, 2, 2)
        return x, rng.standard_normal(y.shape, dtype=np.float32), torch_lp_graph(x)

    def torch_lp_graph(x):  # PyTorch's backward alone: the graph is built once
        t = torch.from_numpy(x).requires_grad_(True)
        return t, F.lp_pool2d(t, 2, 2)

    def torch_lp_backward(a):
        t, y = a[2]
        t.grad = None
        y.backward(torch.from_numpy(a[1]), retain_graph=True)

    add("lp_pool2d backward p=2 k2", "torch", 0.5, lp_backward_inputs,
        lambda a: lambda n: cypool.lp_pool2d_backward(a[1], a[0], 2, 2, num_threads=n),
        lambda a: lambda n: torch_lp_backward(a), (16, 64, 56, 56), section="breadth")

    def small_fractional():
        return (rng.standard_normal(small, dtype=np.float32),
                rng.random(small[:2] + (2,), dtype=np.float32))

    add("fractional_max_pool2d 14x14 to 7", "torch", 0.5, small_fractional,
        lambda a: lambda n: cypool.fractional_max_pool2d(a[0], 2, 7, _random_samples=a[1],
                                                         num_threads=n),
        lambda a: lambda n: F.fractional_max_pool2d(torch.from_numpy(a[0]), 2, 7,
                                                    _random_samples=torch.from_numpy(a[1])),
        small, section="breadth")

    def small_unpool():
        return cypool.max_pool2d(rng.standard_normal(small, dtype=np.float32), 2,
                                 return_indices=True)

    add("max_unpool2d k2, 7x7 to 14x14", "torch", 0.5, small_unpool,
        lambda a: lambda n: cypool.max_unpool2d(a[0], a[1], 2, num_threads=n),
        lambda a: lambda n: F.max_unpool2d(torch.from_numpy(a[0]), torch.from_numpy(a[1]), 2),
        small[:2] + (7, 7), section="breadth")

    _backward_rows(add, rng, lambda: rng.standard_normal(small, dtype=np.float32),
                   ("max_pool2d backward k3s2p1, 14x14", "avg_pool2d backward k3s2p1, 14x14"),
                   small, section="breadth")
    _family_rows(rng, add, torch_case)


def _family_rows(rng, add, torch_case):
    """The rest of the family against PyTorch's kernels: backward passes of the
    adaptive, 3-D and fractional ops, global pooling over few large planes and
    channels-last, adaptive max in float64."""
    mid = (16, 64, 112, 112)
    aten = torch.ops.aten if torch is not None else None

    def adaptive_inputs():
        x = rng.standard_normal(mid, dtype=np.float32)
        y, idx = cypool.adaptive_max_pool2d(x, 7, return_indices=True)
        return x, rng.standard_normal(y.shape, dtype=np.float32), idx

    add("adaptive_max_pool2d backward to 7", "torch", 0.5, adaptive_inputs,
        lambda a: lambda n: cypool.adaptive_max_pool2d_backward(a[1], a[2], a[0].shape,
                                                                num_threads=n),
        lambda a: lambda n: aten.adaptive_max_pool2d_backward(
            torch.from_numpy(a[1]), torch.from_numpy(a[0]), torch.from_numpy(a[2])),
        mid, section="breadth")
    add("adaptive_avg_pool2d backward to 7", "torch", 0.5, adaptive_inputs,
        lambda a: lambda n: cypool.adaptive_avg_pool2d_backward(a[1], a[0].shape, num_threads=n),
        lambda a: lambda n: aten._adaptive_avg_pool2d_backward(torch.from_numpy(a[1]),
                                                               torch.from_numpy(a[0])),
        mid, section="breadth")

    vol = (4, 16, 32, 64, 64)

    def volume_inputs():
        x = rng.standard_normal(vol, dtype=np.float32)
        y, idx = cypool.max_pool3d(x, 3, 2, 1, return_indices=True)
        return x, rng.standard_normal(y.shape, dtype=np.float32), idx

    add("max_pool3d backward k3s2p1", "torch", 0.5, volume_inputs,
        lambda a: lambda n: cypool.max_pool3d_backward(a[1], a[2], a[0].shape, num_threads=n),
        lambda a: lambda n: aten.max_pool3d_with_indices_backward(
            torch.from_numpy(a[1]), torch.from_numpy(a[0]), [3] * 3, [2] * 3, [1] * 3, [1] * 3,
            False, torch.from_numpy(a[2])), vol, section="breadth")

    def fractional_inputs():
        x = rng.standard_normal(mid, dtype=np.float32)
        samples = rng.random(mid[:2] + (2,), dtype=np.float32)
        y, idx = cypool.fractional_max_pool2d(x, 2, 56, _random_samples=samples,
                                              return_indices=True)
        return x, rng.standard_normal(y.shape, dtype=np.float32), idx

    add("fractional_max_pool2d backward", "torch", 0.5, fractional_inputs,
        lambda a: lambda n: cypool.fractional_max_pool2d_backward(a[1], a[2], a[0].shape,
                                                                  num_threads=n),
        lambda a: lambda n: aten.fractional_max_pool2d_backward(
            torch.from_numpy(a[1]), torch.from_numpy(a[0]), [2, 2], [56, 56],
            torch.from_numpy(a[2])), mid, section="breadth")

    torch_case("global_avg_pool, 64 volumes", 1.0, vol,
               lambda x, n: cypool.global_avg_pool(x, num_threads=n),
               lambda t: F.adaptive_avg_pool3d(t, 1))
    torch_case("global_max_pool channels_last", 1.0, (16, 56, 56, 256),
               lambda x, n: cypool.global_max_pool(x, channels_last=True, num_threads=n),
               lambda t: F.adaptive_max_pool2d(t, 1), channels_last=True)
    torch_case("adaptive_max_pool2d to 7 +indices, channels_last", 1.0, (16, 56, 56, 256),
               lambda x, n: cypool.adaptive_max_pool2d(x, 7, return_indices=True,
                                                       channels_last=True, num_threads=n),
               lambda t: F.adaptive_max_pool2d(t, 7, return_indices=True), channels_last=True)
    torch_case("adaptive_max_pool2d to 7 float64", 0.5, mid,
               lambda x, n: cypool.adaptive_max_pool2d(x, 7, num_threads=n),
               lambda t: F.adaptive_max_pool2d(t, 7), dtype=np.float64)
    torch_case("max_pool3d k3s2p1 +indices", 0.25, vol,
               lambda x, n: cypool.max_pool3d(x, 3, 2, 1, return_indices=True, num_threads=n),
               lambda t: F.max_pool3d(t, 3, 2, 1, return_indices=True))
    _channels_last_rows(rng, add)


def _channels_last_rows(rng, add):
    """Channels-last fractional pooling and backward passes against PyTorch's
    channels_last kernels (torch tensors with channels_last strides)."""
    shape = (16, 112, 112, 64)

    def fractional_inputs():
        return (rng.standard_normal(shape, dtype=np.float32),
                rng.random((shape[0], shape[3], 2), dtype=np.float32))

    add("fractional_max_pool2d channels_last", "torch", 0.5, fractional_inputs,
        lambda a: lambda n: cypool.fractional_max_pool2d(
            a[0], 2, 56, _random_samples=a[1], channels_last=True, num_threads=n),
        lambda a: lambda n: F.fractional_max_pool2d(
            _torch_tensor(a[0], True), 2, 56, _random_samples=torch.from_numpy(a[1])),
        shape, section="breadth")

    def backward_inputs():
        x = rng.standard_normal(shape, dtype=np.float32)
        y, idx = cypool.max_pool2d(x, 2, return_indices=True, channels_last=True)
        return x, rng.standard_normal(y.shape, dtype=np.float32), idx

    aten = torch.ops.aten if torch is not None else None
    add("max_pool2d backward k2 channels_last", "torch", 0.5, backward_inputs,
        lambda a: lambda n: cypool.max_pool2d_backward(a[1], a[2], a[0].shape,
                                                       channels_last=True, num_threads=n),
        lambda a: lambda n: aten.max_pool2d_with_indices_backward(
            _torch_tensor(a[1], True), _torch_tensor(a[0], True), [2, 2], [2, 2], [0, 0],
            [1, 1], False, _torch_tensor(a[2], True)), shape, section="breadth")
    add("avg_pool2d backward k2 channels_last", "torch", 0.5, backward_inputs,
        lambda a: lambda n: cypool.avg_pool2d_backward(a[1], a[0].shape, 2, channels_last=True,
                                                       num_threads=n),
        lambda a: lambda n: aten.avg_pool2d_backward(
            _torch_tensor(a[1], True), _torch_tensor(a[0], True), [2, 2], [2, 2], [0, 0], False,
            True, None), shape, section="breadth")

    lp_shape = (16, 56, 56, 64)

    def lp_backward_inputs():
        x = np.abs(rng.standard_normal(lp_shape, dtype=np.float32)) + 0.1
        y = cypool.lp_pool2d(x, 2, 2, channels_last=True)
        t = _torch_tensor(x, True).requires_grad_(True)   # PyTorch's graph built once
        return x, rng.standard_normal(y.shape, dtype=np.float32), t, F.lp_pool2d(t, 2, 2)

    def torch_lp_backward(a):
        a[2].grad = None
        a[3].backward(_torch_tensor(a[1], True), retain_graph=True)

    add("lp_pool2d backward p=2 k2 channels_last", "torch", 0.5, lp_backward_inputs,
        lambda a: lambda n: cypool.lp_pool2d_backward(a[1], a[0], 2, 2, channels_last=True,
                                                      num_threads=n),
        lambda a: lambda n: torch_lp_backward(a), lp_shape, section="breadth")

    volume = (2, 64, 64, 64, 16)
    add("max_pool3d k3s2p1 channels_last", "torch", 1.0,
        lambda: rng.standard_normal(volume, dtype=np.float32),
        lambda x: lambda n: cypool.max_pool3d(x, 3, 2, 1, channels_last=True, num_threads=n),
        lambda x: lambda n: F.max_pool3d(_torch_tensor(x, True), 3, 2, 1), volume,
        section="breadth")


def run(threads, quick=False, only=()):
    budget = 0.4 if quick else 1.5
    rows = []
    for case in build_cases():
        if case.peer == "torch" and torch is None:
            continue
        if only and not any(part in case.name for part in only):
            continue
        data = case.make()
        cy = case.cypool_call(data)
        peer = case.peer_call(data)
        row = dict(name=case.name, peer=case.peer, goal=case.goal, shape=case.shape,
                   section=case.section)
        if torch is not None:
            torch.set_num_threads(threads)
        row[threads] = _median_pair(lambda: cy(threads), lambda: peer(threads), budget,
                                    case.calls)
        # cypool on one thread against itself on all, interleaved: the speedup from
        # one pair of medians, not from two windows of a noisy machine's time
        row["one"] = (_median_pair(lambda: cy(1), lambda: cy(threads), budget, case.calls)
                      if threads > 1 else row[threads])
        rows.append(row)
        _print_row(row, threads)
        del data, cy, peer
    return rows


def _fmt_time(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.2f} ms"


HEADER = (f"{'case':<36}{'peer':<7}{'cypool':>11}{'peer':>11}{'ratio':>7}{'goal':>7}  "
          f"{'met':<4}{'cypool 1T':>11}{'1T->2T':>8}")


def _print_row(row, threads):
    if row == "header":
        print(HEADER)
        print("-" * len(HEADER))
        return
    cy_t, peer_t = row[threads]
    ratio = cy_t / peer_t
    met = "yes" if ratio <= row["goal"] else "NO"
    one, many = row["one"]
    print(f"{row['name']:<36}{row['peer']:<7}{_fmt_time(cy_t):>11}{_fmt_time(peer_t):>11}"
          f"{ratio:>7.2f}{row['goal']:>7.2f}  {met:<4}{_fmt_time(one):>11}{one / many:>7.2f}x",
          flush=True)


def _machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()}"


def write_results(rows, threads, path):
    lines = [
        "# cypool benchmark results",
        "",
        "Written by `make bench` (`benchmarks/bench.py`): every row times cypool and its peer",
        "interleaved in one process (a sample repeats a short call until it lasts about 2 ms);",
        "times are medians, ratio = cypool / peer (below 1: cypool is faster). `copy` is",
        "`np.copyto` of the same input, the memory-bus floor. float32 unless a row says float64.",
        "",
        f"- machine: {_machine()}",
        f"- threads: {threads} (PyTorch `set_num_threads` the same); `cypool 1 thread`: cypool "
        f"on one thread, timed interleaved with itself on {threads} (the speedup's pair)",
        f"- cypool {cypool.__version__}, NumPy {np.__version__}, Python {platform.python_version()}"
        + (f", PyTorch {torch.__version__}" if torch is not None else ", PyTorch not installed"),
        "",
    ]
    met_count = 0
    for section, title in (("core", None),
                           ("breadth", "## Breadth: other shapes, dtypes and layouts\n\n"
                            "The same op against PyTorch with the margin of its row above, on "
                            "small planes, odd sizes, float64 and few channels.")):
        chosen = [row for row in rows if row["section"] == section]
        if not chosen:
            continue
        if title:
            lines += [title, ""]
        lines += ["| case | shape | peer | cypool | peer | ratio | goal | met | cypool 1 thread "
                  "| 1→2 threads |", "|---|---|---|---|---|---|---|---|---|---|"]
        met_here = 0
        for row in chosen:
            cy_t, peer_t = row[threads]
            ratio = cy_t / peer_t
            met = ratio <= row["goal"]
            met_here += met
            one, many = row["one"]
            lines.append(
                f"| {row['name']} | {row['shape']} | {row['peer']} | {_fmt_time(cy_t)} | "
                f"{_fmt_time(peer_t)} | {ratio:.2f} | {row['goal']:.2f} | "
                f"{'yes' if met else '**no**'} | {_fmt_time(one)} | {one / many:.2f}x |")
        lines += ["", f"Goals met: {met_here} of {len(chosen)}.", ""]
        if section == "core":
            met_count = met_here
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return met_count


def write_chart(rows, threads, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = [f"{r['name']} vs {r['peer']}" for r in rows]
    ratios = [r[threads][0] / r[threads][1] for r in rows]
    goals = [r["goal"] for r in rows]
    fig, ax = plt.subplots(figsize=(9, 0.38 * len(rows) + 1.2))
    ypos = np.arange(len(rows))
    colors = ["tab:green" if r <= g else "tab:red" for r, g in zip(ratios, goals)]
    ax.barh(ypos, ratios, color=colors)
    ax.scatter(goals, ypos, marker="|", s=200, color="black", label="goal")
    ax.set_yticks(ypos, names, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="gray", lw=0.8, ls="--")
    ax.set_xlabel("time ratio cypool / peer (lower is better)")
    ax.set_title(f"cypool vs PyTorch CPU and np.copyto, {threads} threads, float32")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--quick", action="store_true", help="shorter timing budget")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="only the cases whose name holds TEXT (repeatable; prints only)")
    args = parser.parse_args(argv)
    cypool.set_num_threads(args.threads)
    print(f"cypool {cypool.__version__} | {_machine()} | {args.threads} threads | "
          f"PyTorch {torch.__version__ if torch is not None else 'not installed'}")
    _print_row("header", args.threads)
    rows = run(args.threads, quick=args.quick, only=args.only)
    if not (args.no_write or args.only):
        core = [row for row in rows if row["section"] == "core"]
        met = write_results(rows, args.threads, os.path.join(HERE, "RESULTS.md"))
        chart = write_chart(core, args.threads, os.path.join(HERE, "ratios.png"))
        print(f"\ngoals met: {met} of {len(core)} core rows; wrote benchmarks/RESULTS.md"
              + (" and benchmarks/ratios.png" if chart else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
