"""Large results from the cache of freed buffers (``cypool._memory``).

Results of 32 MiB or more reuse the buffers of large arrays that are gone,
up to a limit in bytes; the reused memory holds whatever the last array left
there, so every kernel that does not write all of its result must still zero
it.  These tests dirty the cache on purpose before each such call.
"""

import os
import threading

import numpy as np
import pytest

import cypool
from cypool import _args, _memory

LARGE = _args.LARGE_RESULT_BYTES


@pytest.fixture
def cache():
    """A cache of 256 MiB, emptied before and after the test."""
    previous = cypool.set_result_cache(0)
    cypool.set_result_cache(256 << 20)
    yield
    cypool.set_result_cache(0)
    cypool.set_result_cache(previous)


def _dirty(nbytes, value=7.0):
    """Leave a freed buffer of ``nbytes`` full of ``value`` in the cache."""
    junk = _memory.empty((nbytes // 4,), np.float32)
    junk.fill(value)
    del junk
    assert _memory.has(nbytes)


def test_freed_large_buffer_is_reused(cache):
    a = _args.empty((LARGE // 4,), np.float32)
    address = a.ctypes.data
    assert a.flags.owndata and a.flags.writeable
    assert cypool.get_result_cache()[1] == 0
    del a
    assert cypool.get_result_cache() == (256 << 20, LARGE)
    b = _args.empty((LARGE // 8,), np.float64)  # the same bytes, another dtype
    assert b.ctypes.data == address
    assert cypool.get_result_cache()[1] == 0
    # too small for the kept buffer (it would waste more than an eighth of it)
    del b
    c = _args.empty((LARGE // 4 - LARGE // 16,), np.float32)
    assert c.ctypes.data != address
    assert cypool.get_result_cache()[1] == LARGE


def test_small_arrays_bypass_the_cache(cache):
    small = _args.empty((LARGE // 4 - 1,), np.float32)
    del small
    assert cypool.get_result_cache()[1] == 0


def test_limit_evicts_the_oldest_and_zero_turns_it_off(cache):
    limit = 3 * LARGE + (1 << 20)
    cypool.set_result_cache(limit)
    arrays = [_args.empty((LARGE // 4 + k * 1024,), np.float32) for k in range(4)]
    addresses = [a.ctypes.data for a in arrays]
    while arrays:                   # freed in order: the first no longer fits
        del arrays[0]
    assert cypool.get_result_cache() == (limit, 3 * LARGE + 6 * 4096)
    first = _args.empty((LARGE // 4,), np.float32)
    assert first.ctypes.data == addresses[1]   # the smallest kept that serves it
    del first
    assert cypool.set_result_cache(0) == limit
    assert cypool.get_result_cache() == (0, 0)
    big = _args.empty((LARGE // 4,), np.float32)
    del big
    assert cypool.get_result_cache() == (0, 0)


def test_shrunk_array_is_not_kept(cache):
    a = _args.empty((LARGE // 4,), np.float32)
    assert LARGE == _memory.MIN_BYTES == 32 << 20
    a.resize((1000,), refcheck=False)    # realloc: the C library's
    a[:] = 1.0
    del a
    assert cypool.get_result_cache()[1] == 0


def test_bad_limits_raise():
    with pytest.raises(ValueError, match="nbytes must be >= 0, got -1"):
        cypool.set_result_cache(-1)
    for bad in (1.5, True, "1", None):
        with pytest.raises(TypeError, match="nbytes must be an int"):
            cypool.set_result_cache(bad)


@pytest.mark.parametrize("channels_last, shape", [
    (False, (1, 32, 512, 512)),
    (True, (1, 512, 512, 32)),    # channels-last: the channels one block
    (True, (1, 256, 256, 130)),   # and in blocks of 64
])
def test_scatter_results_zeroed_fresh_or_reused(cache, channels_last, shape):
    """Max backward and max unpooling: a large result no freed buffer serves
    comes zeroed from calloc and the kernel skips zeroing it; one a freed
    buffer serves (full of 7.0 here) is zeroed by the kernel; both equal the
    result into a caller's out= and hold exactly the scattered values."""
    nbytes = int(np.prod(shape)) * 4
    assert nbytes >= LARGE
    assert _args.scatter_result(None, shape, np.float32)[1]
    _dirty(nbytes)
    assert not _args.scatter_result(None, shape, np.float32)[1]
    x = np.random.default_rng(2).standard_normal(shape, dtype=np.float32)
    y, idx = cypool.max_pool2d(x, 2, return_indices=True, channels_last=channels_last)
    calls = [
        lambda **kw: cypool.max_pool2d_backward(y, idx, x.shape, channels_last=channels_last,
                                                **kw),
        lambda **kw: cypool.max_unpool2d(y, idx, 2, channels_last=channels_last, **kw),
    ]
    # the scatter written out in NumPy (the unpooling of y at k2 is the same array)
    move = (lambda a: np.moveaxis(a, -1, 1)) if channels_last else (lambda a: a)
    rows = int(np.prod(move(y).shape[:2]))
    scattered = np.zeros((rows, shape[1] * shape[2] if channels_last else shape[2] * shape[3]),
                         np.float32)
    np.add.at(scattered, (np.arange(rows)[:, None], move(idx).reshape(rows, -1)),
              move(y).reshape(rows, -1))
    expected = scattered.reshape(move(np.empty(shape, np.int8)).shape)
    for call in calls:
        want = call(out=np.full(shape, 7.0, np.float32))
        np.testing.assert_array_equal(move(want), expected)
        cypool.set_result_cache(0)
        cypool.set_result_cache(256 << 20)
        fresh = call()                  # calloc: zero pages, the kernel skips zeroing
        np.testing.assert_array_equal(fresh, want)
        del fresh
        _dirty(nbytes)
        reused = call()                 # a buffer full of 7.0: the kernel zeroes it
        np.testing.assert_array_equal(reused, want)


def test_float16_max_backward_into_a_reused_temporary(cache):
    """A large float16 max backward: its float16 result comes zeroed from calloc,
    but the float32 buffer the kernel scatters into is a kept one, full of 7.0,
    which the kernel must zero (the same bits as the backward in float32, cast)."""
    shape = (1, 64, 512, 512)            # a 32 MiB float16 result, 64 MiB in float32
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float16)
    y, idx = cypool.max_pool2d(x, 2, return_indices=True)
    want = cypool.max_pool2d_backward(y.astype(np.float32), idx, shape).astype(np.float16)
    cypool.set_result_cache(0)
    cypool.set_result_cache(256 << 20)
    _dirty(int(np.prod(shape)) * 4)
    assert not _memory.has(int(np.prod(shape)) * 2 + 1)  # no kept buffer for the float16 one
    got = cypool.max_pool2d_backward(y, idx, shape)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, want)


def test_every_large_op_overwrites_reused_memory(cache):
    """Ops whose large results reuse a buffer full of NaN equal their results
    into fresh memory: forward, backward, float16 through float32 temporaries."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 32, 256, 256), dtype=np.float32)     # 32 MiB
    g = rng.standard_normal((4, 32, 128, 128), dtype=np.float32)
    calls = [
        lambda: cypool.max_pool2d(x, 3, 1, 1),
        lambda: cypool.avg_pool2d(x, 3, 1, 1),
        lambda: cypool.avg_pool2d_backward(g, x.shape, 3, 2, 1),
        lambda: cypool.adaptive_avg_pool2d_backward(g, x.shape),
        lambda: cypool.lp_pool2d_backward(g, x, 2, 2),
        lambda: cypool.avg_pool2d(x.astype(np.float16), 3, 1, 1),
    ]
    cypool.set_result_cache(0)
    want = [call() for call in calls]
    cypool.set_result_cache(256 << 20)
    for call, expected in zip(calls, want):
        nbytes = expected.nbytes
        if nbytes >= LARGE:
            _dirty(nbytes, np.nan)
        np.testing.assert_array_equal(call(), expected)


def test_threads_share_the_cache_safely(cache):
    """Many threads allocating and freeing large arrays at once: no crash, no
    lost or doubled buffer (each thread's array is its own while it lives)."""
    errors = []

    def work(k):
        try:
            for i in range(20):
                a = _args.empty((LARGE // 4 + (i % 3) * 4096,), np.float32)
                a[::4096] = k
                assert np.all(a[::4096] == k)
                del a
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert cypool.get_result_cache()[1] <= 256 << 20


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_forked_child_allocates_large_results(cache):
    """A child forked while the cache holds a buffer (and after cypool used its
    threads) takes and returns large buffers without hanging on the lock."""
    _dirty(LARGE)
    cypool.max_pool2d(np.ones((1, 32, 512, 512), np.float32), 3, 1, 1)
    pid = os.fork()
    if pid == 0:  # the child: report by exit code only
        code = 1
        try:
            for _ in range(3):
                y = cypool.max_pool2d(np.ones((1, 32, 512, 512), np.float32), 3, 1, 1)
                code = 0 if y.shape == (1, 32, 512, 512) and np.all(y == 1) else 3
                del y
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
