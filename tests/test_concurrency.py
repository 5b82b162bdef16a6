"""Concurrency and processes: many Python threads, a Generator shared between
them, thread-count changes, fork while threads are busy, and KeyboardInterrupt
during long calls.

Every op of the table in tests/fuzz/ops.py takes part (tests/test_pool.py
has the original max/avg version of the first test; the plain fork test is
tests/test_process.py's); fractional and stochastic pooling also share one
``rng`` Generator between threads.
"""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np

import cypool
from fuzz.ops import OPS, exact, fixed_case

THREADS = 8
REPEATS = 6


def _work():
    """Two seeded cases per op (one wide enough for the OpenMP paths) and their
    serial results."""
    work = []
    for name in sorted(OPS):
        for seed in (1, 2):
            case = fixed_case(name, seed)
            work.append((case, case.call(num_threads=1)))
    big = np.random.default_rng(3).standard_normal((4, 16, 48, 48)).astype(np.float32)
    for name in ("max_pool2d", "avg_pool2d"):
        case = fixed_case(name)
        case.kwargs.update(x=big, channels_last=False, num_threads=2)
        work.append((case, case.call(num_threads=1)))
    return work


def _hammer(work, failures, start, rounds=REPEATS, **override):
    start.wait()
    order = np.random.default_rng(threading.get_ident() % 2**32).permutation(len(work))
    for _ in range(rounds):
        for index in order:
            case, want = work[index]
            try:
                exact(case.call(**override), want)
            except Exception as exc:  # collected and reported by the main thread
                failures.append((case.op, repr(exc)[:300]))


def _run_threads(targets):
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"


def test_many_threads_give_the_serial_results():
    work = _work()
    failures = []
    start = threading.Barrier(THREADS)
    _run_threads([lambda: _hammer(work, failures, start)] * THREADS)
    assert failures == []


def test_threads_sharing_a_generator_take_disjoint_draws():
    """Stochastic and fractional calls from many threads on one shared
    ``rng`` Generator: each call takes its own block of draws, so the results
    are those of the same number of serial calls (in some order) and the
    generator ends where those leave it."""
    x = np.abs(np.random.default_rng(4).standard_normal((2, 8, 12, 12)))
    calls = {"stochastic": lambda rng: cypool.stochastic_pool2d(x, 2, rng=rng, return_indices=True),
             "fractional": lambda rng: cypool.fractional_max_pool2d(x, 2, 5, return_indices=True,
                                                                    rng=rng)}
    rounds = 10
    for name, call in calls.items():
        shared, fresh = np.random.default_rng(11), np.random.default_rng(11)
        got = []
        start = threading.Barrier(THREADS)

        def worker():
            start.wait()
            for _ in range(rounds):
                values, indices = call(shared)
                got.append(values.tobytes() + indices.tobytes())  # list.append is atomic

        _run_threads([worker] * THREADS)
        serial = []
        for _ in range(THREADS * rounds):
            values, indices = call(fresh)
            serial.append(values.tobytes() + indices.tobytes())
        assert sorted(got) == sorted(serial), name
        assert shared.random() == fresh.random(), name


def test_thread_count_changes_mid_run():
    """set_num_threads from another thread while calls run with the default."""
    work = _work()
    failures = []
    start = threading.Barrier(THREADS + 1)
    before = cypool.get_num_threads()
    done = threading.Event()

    def churn():
        start.wait()
        counts = [1, 3, 2, 4, 1, 2]
        k = 0
        while not done.is_set():
            cypool.set_num_threads(counts[k % len(counts)])
            k += 1
            time.sleep(0.0005)

    def worker():
        _hammer(work, failures, start, rounds=3, num_threads=None)

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        _run_threads([worker] * THREADS)
    finally:
        done.set()
        churner.join()
        cypool.set_num_threads(before)
    assert failures == []
    assert cypool.get_num_threads() == before


def test_fork_while_threads_are_inside_cypool():
    """A child forked while other threads run kernels works (serially) and exits."""
    work = _work()
    failures = []
    start = threading.Barrier(3)
    threads = [threading.Thread(target=_hammer, args=(work, failures, start, 2)) for _ in range(2)]
    for t in threads:
        t.start()
    start.wait()
    time.sleep(0.01)
    pid = os.fork()
    if pid == 0:  # child: only this thread exists
        code = 1
        try:
            case, want = work[-1]
            exact(case.call(), want)
            exact(case.call(num_threads=2), want)
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("forked child hung")
        time.sleep(0.02)
    for t in threads:
        t.join(timeout=120)
    assert os.waitstatus_to_exitcode(status) == 0
    assert failures == []


INTERRUPTED = """
import sys, time
import numpy as np
import cypool
x = np.random.default_rng(0).standard_normal((32, 32, 64, 64)).astype(np.float32)
want = cypool.max_pool2d(x[:2], 3, 2, 1)
grad = np.ones((32, 32, 32, 32), np.float32)
print("ready", flush=True)
deadline = time.monotonic() + 60
try:
    while time.monotonic() < deadline:  # each call is a few ms, the GIL released
        y, idx = cypool.max_pool2d(x, 3, 2, 1, return_indices=True, num_threads=2)
        cypool.max_pool2d_backward(grad, idx, x.shape, num_threads=2)
        cypool.avg_pool2d_backward(grad, x.shape, 3, 2, 1)
except KeyboardInterrupt:
    print("interrupted", flush=True)
else:
    sys.exit("no KeyboardInterrupt within 60 s")
assert np.array_equal(cypool.max_pool2d(x[:2], 3, 2, 1, num_threads=2), want)
assert np.array_equal(cypool.max_pool2d(x[:2], 3, 2, 1, num_threads=1), want)
print("usable", flush=True)
"""


def test_keyboard_interrupt_leaves_the_interpreter_usable():
    """SIGINT during a loop of long calls: KeyboardInterrupt once the call in
    flight returns, then the same process computes the same results."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(cypool.__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(INTERRUPTED)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)  # inside the loop, most likely inside a kernel
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.split() == ["interrupted", "usable"], (out, err)
