"""``python -m cypool demo``: the pooling layers of small CNNs, timed and checked.

A fixed, seeded workload covering the whole family: the pooling layers of a
VGG/ResNet-style 2-D network, a 1-D sequence network and a 3-D volume
network, plus adaptive, global, LP, unpooling, fractional and stochastic
pooling.  Each runs forward and backward with cypool and with plain NumPy
(``_numpy_pool``), the results are compared, and a table is printed, with
PyTorch's time too when PyTorch is installed.
"""

import time
from typing import Callable, NamedTuple, Optional

import numpy as np

import cypool
from cypool import _numpy_pool as plain


class Step(NamedTuple):
    """One direction of one layer: cypool, NumPy and (optionally) PyTorch."""
    run_cypool: Callable
    run_numpy: Callable
    run_torch: Optional[Callable]
    exact: bool


class Layer(NamedTuple):
    label: str
    shape: tuple
    build: Callable  # (x, torch or None, rng) -> (forward Step, backward Step)


def _torch_backward(torch, forward):
    """A PyTorch backward closure: autograd through ``forward`` with ones."""
    def prepare():
        out = forward()
        out = out[0] if isinstance(out, tuple) else out
        return out, torch.ones_like(out)

    state = {}

    def run():
        if "out" not in state:
            state["out"], state["grad"] = prepare()
        state["out"].backward(state["grad"], retain_graph=True)

    return run


def _max_layer(nd, kernel, stride, padding):
    def build(x, torch, rng):
        forward = getattr(cypool, f"max_pool{nd}d")
        backward = getattr(cypool, f"max_pool{nd}d_backward")
        y, idx = forward(x, kernel, stride, padding, return_indices=True)
        ny, nidx = plain.max_pool(x, nd, kernel, stride, padding)
        grad = rng.standard_normal(y.shape, dtype=x.dtype)
        t_fwd = t_bwd = None
        if torch is not None:
            t = torch.from_numpy(x).requires_grad_(True)
            pool = getattr(torch.nn.functional, f"max_pool{nd}d")
            t_fwd = lambda: pool(t, kernel, stride, padding)  # noqa: E731
            t_bwd = _torch_backward(torch, t_fwd)
        return (Step(lambda: forward(x, kernel, stride, padding, return_indices=True),
                     lambda: plain.max_pool(x, nd, kernel, stride, padding), t_fwd, True),
                Step(lambda: backward(grad, idx, x.shape),
                     lambda: plain.max_pool_backward(grad, nidx, x.shape), t_bwd, False))
    return build


def _avg_layer(nd, kernel, stride, padding):
    def build(x, torch, rng):
        forward = getattr(cypool, f"avg_pool{nd}d")
        backward = getattr(cypool, f"avg_pool{nd}d_backward")
        y = forward(x, kernel, stride, padding)
        grad = rng.standard_normal(y.shape, dtype=x.dtype)
        t_fwd = t_bwd = None
        if torch is not None:
            t = torch.from_numpy(x).requires_grad_(True)
            pool = getattr(torch.nn.functional, f"avg_pool{nd}d")
            t_fwd = lambda: pool(t, kernel, stride, padding)  # noqa: E731
            t_bwd = _torch_backward(torch, t_fwd)
        return (Step(lambda: forward(x, kernel, stride, padding),
                     lambda: plain.avg_pool(x, nd, kernel, stride, padding), t_fwd, False),
                Step(lambda: backward(grad, x.shape, kernel, stride, padding),
                     lambda: plain.avg_pool_backward(grad, x.shape, nd, kernel, stride, padding),
                     t_bwd, False))
    return build


def _adaptive_layer(reduce, size):
    def build(x, torch, rng):
        name = f"adaptive_{reduce}_pool2d"
        forward, backward = getattr(cypool, name), getattr(cypool, name + "_backward")
        grad = rng.standard_normal(x.shape[:2] + (size, size), dtype=x.dtype)
        t_fwd = t_bwd = None
        if torch is not None:
            t = torch.from_numpy(x).requires_grad_(True)
            t_fwd = lambda: getattr(torch.nn.functional, name)(t, size)  # noqa: E731
            t_bwd = _torch_backward(torch, t_fwd)
        if reduce == "max":
            _, idx = forward(x, size, True)
            _, nidx = plain.adaptive_pool(x, 2, size, "max")
            return (Step(lambda: forward(x, size, True),
                         lambda: plain.adaptive_pool(x, 2, size, "max"), t_fwd, True),
                    Step(lambda: backward(grad, idx, x.shape),
                         lambda: plain.max_pool_backward(grad, nidx, x.shape), t_bwd, False))
        return (Step(lambda: forward(x, size), lambda: plain.adaptive_pool(x, 2, size, "avg"),
                     t_fwd, False),
                Step(lambda: backward(grad, x.shape),
                     lambda: plain.adaptive_avg_pool_backward(grad, x.shape, 2), t_bwd, False))
    return build


def _global_avg(x, torch, rng):
    grad = rng.standard_normal(x.shape[:2], dtype=x.dtype)
    t_fwd = t_bwd = None
    if torch is not None:
        t = torch.from_numpy(x).requires_grad_(True)
        t_fwd = lambda: t.mean(dim=(2, 3))  # noqa: E731
        t_bwd = _torch_backward(torch, t_fwd)
    share = np.prod(x.shape[2:])
    return (Step(lambda: cypool.global_avg_pool(x), lambda: x.mean(axis=(2, 3), dtype=x.dtype),
                 t_fwd, False),
            Step(lambda: cypool.global_avg_pool_backward(grad, x.shape),
                 lambda: np.broadcast_to((grad / share)[..., None, None], x.shape).copy(),
                 t_bwd, False))


def _lp_layer(x, torch, rng):
    a = np.abs(x)
    y = cypool.lp_pool2d(a, 2, 2)
    grad = rng.standard_normal(y.shape, dtype=x.dtype)
    t_fwd = t_bwd = None
    if torch is not None:
        t = torch.from_numpy(a).requires_grad_(True)
        t_fwd = lambda: torch.nn.functional.lp_pool2d(t, 2, 2)  # noqa: E731
        t_bwd = _torch_backward(torch, t_fwd)
    # d/dx (sum x^2)^(1/2) = x / out, each input in exactly one window here
    return (Step(lambda: cypool.lp_pool2d(a, 2, 2), lambda: plain.lp_pool(a, 2, 2, 2), t_fwd, False),
            Step(lambda: cypool.lp_pool2d_backward(grad, a, 2, 2),
                 lambda: a * np.repeat(np.repeat(grad / y, 2, axis=2), 2, axis=3), t_bwd, False))


def _unpool_layer(x, torch, rng):
    y, idx = cypool.max_pool2d(x, 2, return_indices=True)
    grad = rng.standard_normal(x.shape, dtype=x.dtype)
    t_fwd = t_bwd = None
    if torch is not None:
        ty, tidx = torch.from_numpy(y).requires_grad_(True), torch.from_numpy(idx)
        t_fwd = lambda: torch.nn.functional.max_unpool2d(ty, tidx, 2)  # noqa: E731
        t_bwd = _torch_backward(torch, t_fwd)
    return (Step(lambda: cypool.max_unpool2d(y, idx, 2),
                 lambda: plain.max_unpool(y, idx, x.shape[2:]), t_fwd, True),
            Step(lambda: cypool.max_unpool2d_backward(grad, idx),
                 lambda: plain.max_unpool_backward(grad, idx), t_bwd, True))


def _fractional_layer(x, torch, rng):
    samples = rng.random(x.shape[:2] + (2,), dtype=x.dtype)
    out = x.shape[2] // 2
    _, idx = cypool.fractional_max_pool2d(x, 2, out, return_indices=True, _random_samples=samples)
    grad = rng.standard_normal(x.shape[:2] + (out, out), dtype=x.dtype)
    t_fwd = t_bwd = None
    if torch is not None:
        t, ts = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(samples)
        t_fwd = lambda: torch.nn.functional.fractional_max_pool2d(  # noqa: E731
            t, 2, out, _random_samples=ts)
        t_bwd = _torch_backward(torch, t_fwd)
    return (Step(lambda: cypool.fractional_max_pool2d(x, 2, out, return_indices=True,
                                                      _random_samples=samples),
                 lambda: plain.fractional_max_pool2d(x, 2, out, samples), t_fwd, True),
            Step(lambda: cypool.fractional_max_pool2d_backward(grad, idx, x.shape),
                 lambda: plain.max_pool_backward(grad, idx, x.shape), t_bwd, False))


def _stochastic_layer(x, torch, rng):
    _, idx = cypool.stochastic_pool2d(x, 2, rng=7, return_indices=True)
    grad = rng.standard_normal(idx.shape, dtype=x.dtype)
    # training samples at random, so the NumPy check is the deterministic eval
    # mode forward and the index-routed training backward
    return (Step(lambda: cypool.stochastic_pool2d(x, 2, training=False),
                 lambda: plain.stochastic_pool_eval(x, 2, 2), None, False),
            Step(lambda: cypool.stochastic_pool2d_backward(grad, x.shape, 2, indices=idx),
                 lambda: plain.max_pool_backward(grad, idx, x.shape), None, False))


WORKLOAD = [
    Layer("resnet stem max 3/2/1", (16, 64, 112, 112), _max_layer(2, 3, 2, 1)),
    Layer("vgg block max 2/2", (16, 128, 56, 56), _max_layer(2, 2, 2, 0)),
    Layer("vgg block avg 2/2", (16, 128, 56, 56), _avg_layer(2, 2, 2, 0)),
    Layer("sequence max 3/2/1", (16, 64, 4096), _max_layer(1, 3, 2, 1)),
    Layer("sequence avg 4/4", (16, 64, 4096), _avg_layer(1, 4, 4, 0)),
    Layer("volume max 2/2", (4, 32, 16, 56, 56), _max_layer(3, 2, 2, 0)),
    Layer("volume avg 3/2/1", (4, 32, 16, 56, 56), _avg_layer(3, 3, 2, 1)),
    Layer("adaptive avg to 7", (16, 256, 28, 28), _adaptive_layer("avg", 7)),
    Layer("adaptive max to 7", (16, 256, 28, 28), _adaptive_layer("max", 7)),
    Layer("global avg (head)", (16, 512, 7, 7), _global_avg),
    Layer("lp p=2 2/2", (16, 64, 56, 56), _lp_layer),
    Layer("max unpool 2/2", (16, 64, 56, 56), _unpool_layer),
    Layer("fractional max 2", (8, 64, 56, 56), _fractional_layer),
    Layer("stochastic 2/2", (16, 64, 56, 56), _stochastic_layer),
]


def _median_time(func, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def _agree(a, b, exact):
    pairs = zip(a, b) if isinstance(a, tuple) else [(a, b)]
    if exact:
        return all(np.array_equal(p, q, equal_nan=True) for p, q in pairs)
    return all(np.allclose(p, q, rtol=1e-4, atol=1e-5, equal_nan=True) for p, q in pairs)


def run(repeats=3, file=None):
    """Run the workload and print the table; returns True when every check passed."""
    try:
        import torch
        torch.set_num_threads(cypool.get_num_threads())
    except ImportError:
        torch = None
    rng = np.random.default_rng(2026)
    print(f"cypool {cypool.__version__} demo: pooling layers of small CNNs, float32, "
          f"{cypool.get_num_threads()} thread(s); times are medians of {repeats} runs in ms",
          file=file)
    header = f"{'layer':<24}{'pass':<5}{'shape':<22}{'cypool':>9}{'numpy':>10}{'speedup':>9}"
    if torch is not None:
        header += f"{'torch':>9}{'vs torch':>9}"
    header += "  check"
    print(header + "\n" + "-" * len(header), file=file)
    all_ok = True
    for layer in WORKLOAD:
        x = rng.standard_normal(layer.shape, dtype=np.float32)
        steps = layer.build(x, torch, rng)
        for direction, step in zip(("fwd", "bwd"), steps):
            cy_t, cy_result = _median_time(step.run_cypool, repeats)
            np_t, np_result = _median_time(step.run_numpy, 1)
            ok = _agree(cy_result, np_result, step.exact)
            all_ok = all_ok and ok
            row = (f"{layer.label:<24}{direction:<5}{str(layer.shape):<22}{cy_t * 1e3:>9.2f}"
                   f"{np_t * 1e3:>10.1f}{np_t / cy_t:>8.1f}x")
            if torch is not None:
                if step.run_torch is not None:
                    torch_t, _ = _median_time(step.run_torch, repeats)
                    row += f"{torch_t * 1e3:>9.2f}{torch_t / cy_t:>8.1f}x"
                else:
                    row += f"{'-':>9}{'-':>9}"
            print(row + ("  ok" if ok else "  MISMATCH"), file=file)
    print("every result matches plain NumPy" if all_ok else "MISMATCHES FOUND", file=file)
    return all_ok
