"""``python -m cypool demo``: the pooling layers of small CNNs, timed and checked.

A fixed, seeded workload: the pooling layers of a VGG/ResNet-style 2-D
network, a 1-D sequence network and a 3-D volume network, each run forward
and backward with cypool and with plain NumPy (``_numpy_pool``), the results
compared, and a table printed; PyTorch's time too when it is installed.
"""

import time

import numpy as np

import cypool
from cypool import _numpy_pool

# (label, family, nd, input shape, kernel, stride, padding)
WORKLOAD = [
    ("resnet stem max", "max", 2, (16, 64, 112, 112), 3, 2, 1),
    ("vgg block max", "max", 2, (16, 128, 56, 56), 2, 2, 0),
    ("vgg block avg", "avg", 2, (16, 128, 56, 56), 2, 2, 0),
    ("resnet head avg", "avg", 2, (16, 512, 7, 7), 7, 7, 0),
    ("sequence max", "max", 1, (16, 64, 4096), 3, 2, 1),
    ("sequence avg", "avg", 1, (16, 64, 4096), 4, 4, 0),
    ("volume max", "max", 3, (4, 32, 16, 56, 56), 2, 2, 0),
    ("volume avg", "avg", 3, (4, 32, 16, 56, 56), 3, 2, 1),
]


def _median_time(func, repeats):
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def _cypool_pair(family, nd, x, kernel, stride, padding):
    if family == "max":
        forward = getattr(cypool, f"max_pool{nd}d")
        backward = getattr(cypool, f"max_pool{nd}d_backward")
        run_forward = lambda: forward(x, kernel, stride, padding, return_indices=True)  # noqa: E731
        run_backward = lambda y, g: backward(g, y[1], x.shape)  # noqa: E731
    else:
        forward = getattr(cypool, f"avg_pool{nd}d")
        backward = getattr(cypool, f"avg_pool{nd}d_backward")
        run_forward = lambda: forward(x, kernel, stride, padding)  # noqa: E731
        run_backward = lambda y, g: backward(g, x.shape, kernel, stride, padding)  # noqa: E731
    return run_forward, run_backward


def _numpy_pair(family, nd, x, kernel, stride, padding):
    if family == "max":
        run_forward = lambda: _numpy_pool.max_pool(x, nd, kernel, stride, padding)  # noqa: E731
        run_backward = lambda y, g: _numpy_pool.max_pool_backward(g, y[1], x.shape)  # noqa: E731
    else:
        run_forward = lambda: _numpy_pool.avg_pool(x, nd, kernel, stride, padding)  # noqa: E731
        run_backward = lambda y, g: _numpy_pool.avg_pool_backward(  # noqa: E731
            g, x.shape, nd, kernel, stride, padding)
    return run_forward, run_backward


def _torch_times(torch, family, nd, x, kernel, stride, padding, repeats):
    functional = torch.nn.functional
    pool = getattr(functional, f"{family}_pool{nd}d")
    t = torch.from_numpy(x).requires_grad_(True)

    def forward():
        return pool(t, kernel, stride, padding)

    forward_time, y = _median_time(forward, repeats)
    grad = torch.ones_like(y)

    def backward():
        t.grad = None
        y.backward(grad, retain_graph=True)

    backward_time, _ = _median_time(backward, repeats)
    return forward_time, backward_time


def _same(a, b, family):
    if family == "max":
        return np.array_equal(a, b)
    return np.allclose(a, b, rtol=1e-4, atol=1e-5)


def run(repeats=3, file=None):
    """Run the workload and print the table; returns True when every check passed."""
    try:
        import torch
        torch.set_num_threads(cypool.get_num_threads())
    except ImportError:
        torch = None
    rng = np.random.default_rng(2026)
    threads = cypool.get_num_threads()
    print(f"cypool {cypool.__version__} demo: pooling layers of small CNNs, float32, "
          f"{threads} thread(s); times are medians of {repeats} runs in ms", file=file)
    header = f"{'op':<22}{'pass':<5}{'shape':<22}{'cypool':>9}{'numpy':>10}{'speedup':>9}"
    if torch is not None:
        header += f"{'torch':>9}{'vs torch':>9}"
    print(header + "  check", file=file)
    print("-" * len(header + "  check"), file=file)
    all_ok = True
    for label, family, nd, shape, kernel, stride, padding in WORKLOAD:
        x = rng.standard_normal(shape, dtype=np.float32)
        cy_forward, cy_backward = _cypool_pair(family, nd, x, kernel, stride, padding)
        np_forward, np_backward = _numpy_pair(family, nd, x, kernel, stride, padding)
        cy_f, cy_y = _median_time(cy_forward, repeats)
        np_f, np_y = _median_time(np_forward, 1)
        values = cy_y[0] if family == "max" else cy_y
        grad = rng.standard_normal(values.shape, dtype=np.float32)
        cy_b, cy_g = _median_time(lambda: cy_backward(cy_y, grad), repeats)
        np_b, np_g = _median_time(lambda: np_backward(np_y, grad), 1)
        forward_ok = _same(values, np_y[0] if family == "max" else np_y, family)
        if family == "max":
            forward_ok = forward_ok and np.array_equal(cy_y[1], np_y[1])
        backward_ok = np.allclose(cy_g, np_g, rtol=1e-4, atol=1e-5)
        torch_times = (_torch_times(torch, family, nd, x, kernel, stride, padding, repeats)
                       if torch is not None else (None, None))
        for direction, cy_t, np_t, torch_t, ok in (
                ("forward", cy_f, np_f, torch_times[0], forward_ok),
                ("backward", cy_b, np_b, torch_times[1], backward_ok)):
            all_ok = all_ok and ok
            row = (f"{label:<22}{direction[:4]:<5}{str(shape):<22}{cy_t * 1e3:>9.2f}"
                   f"{np_t * 1e3:>10.1f}{np_t / cy_t:>8.1f}x")
            if torch is not None:
                row += f"{torch_t * 1e3:>9.2f}{torch_t / cy_t:>8.1f}x"
            print(row + ("  ok" if ok else "  MISMATCH"), file=file)
    print("every result matches plain NumPy" if all_ok else "MISMATCHES FOUND", file=file)
    return all_ok
