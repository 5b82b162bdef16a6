"""cypool.dask against the in-memory functions, bit for bit, over random chunkings.

Every dim is split, spatial dims included, into random chunks (sizes 1 and
non-multiples of the stride among them); results are computed on the local
threaded scheduler, on a two-worker ``dask.distributed.LocalCluster`` on the
loopback address, and after a pickle round trip of the graph.
"""

import pickle

import numpy as np
import pytest

import cypool

da = pytest.importorskip("dask.array")
import cypool.dask as cdask  # noqa: E402

FAMILIES = ["max", "avg", "lp"]


def random_chunks(shape, rng):
    """A chunking of ``shape`` with up to four random pieces per axis."""
    chunks = []
    for size in shape:
        cuts = rng.integers(1, size, size=rng.integers(0, 4)) if size > 1 else []
        edges = [0] + sorted(set(int(c) for c in cuts)) + [size]
        chunks.append(tuple(np.diff(edges).tolist()))
    return tuple(chunks)


def random_case(family, seed):
    """``(nd, x, arguments, channels_last)`` with random geometry, dtype and layout."""
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    nd = int(rng.integers(1, 4))
    channels_last = bool(rng.integers(2))
    spatial = tuple(int(n) for n in rng.integers(5, 13 if nd < 3 else 9, size=nd))
    kernel = int(rng.integers(1, 5))
    stride = int(rng.integers(1, 4))
    ceil_mode = bool(rng.integers(2))
    padding = "same" if rng.random() < 0.25 else int(rng.integers(0, kernel // 2 + 1))
    if family == "max":
        dtype = rng.choice([np.float32, np.float64, np.float16, np.int16, np.bool_])
        arguments = (kernel, stride, padding, int(rng.integers(1, 3)), ceil_mode)
    elif family == "avg":
        dtype = rng.choice([np.float32, np.float64, np.float16, np.int16])
        arguments = (kernel, stride, padding, ceil_mode, bool(rng.integers(2)),
                     [None, None, 3, -2][int(rng.integers(4))])
    else:
        dtype = rng.choice([np.float32, np.float64])
        arguments = ([2, 1.5, 3, np.inf][int(rng.integers(4))], kernel, stride, ceil_mode)
    x = rng.standard_normal((2, 3) + spatial) * 50
    x = x > 0 if dtype == np.bool_ else x.astype(dtype)
    if channels_last:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    return nd, x, arguments, channels_last, rng


def in_memory(family, nd, x, arguments, channels_last):
    return getattr(cypool, f"{family}_pool{nd}d")(x, *arguments, channels_last=channels_last)


def lazy(family, nd, x, arguments, channels_last):
    return getattr(cdask, f"{family}_pool{nd}d")(x, *arguments, channels_last=channels_last)


def assert_identical(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=got.dtype.kind == "f")


@pytest.mark.parametrize("seed", range(16))
@pytest.mark.parametrize("family", FAMILIES)
def test_random_chunkings_match_in_memory(family, seed):
    nd, x, arguments, channels_last, rng = random_case(family, seed)
    try:
        want = in_memory(family, nd, x, arguments, channels_last)
    except ValueError as error:     # geometry the in-memory call rejects: so must dask
        with pytest.raises(ValueError, match=str(error)[:30].replace("(", r"\(")):
            lazy(family, nd, da.from_array(x), arguments, channels_last)
        return
    for _ in range(2):
        chunked = da.from_array(x, chunks=random_chunks(x.shape, rng))
        got = lazy(family, nd, chunked, arguments, channels_last)
        assert isinstance(got, da.Array)
        assert_identical(got.compute(scheduler="threads"), want)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_every_spatial_chunk_smaller_than_the_stride(nd):
    """Chunks of 1 and 2 elements under windows of span 5, stride 3, at both edges."""
    rng = np.random.default_rng(nd)
    x = rng.standard_normal((1, 2) + (11,) * nd).astype(np.float32)
    chunks = ((1,), (1, 1)) + ((1, 2, 1, 2, 1, 2, 2),) * nd
    for family, arguments in [("max", (3, 3, 1, 2, True)), ("avg", (5, 3, 2, True, False)),
                              ("lp", (2, 5, 3, True))]:
        want = in_memory(family, nd, x, arguments, False)
        got = lazy(family, nd, da.from_array(x, chunks=chunks), arguments, False)
        assert_identical(got.compute(scheduler="threads"), want)


def test_unbatched_and_numpy_input():
    x = np.random.default_rng(3).standard_normal((3, 17, 9))
    got = cdask.avg_pool2d(x, 3, 2, 1, count_include_pad=False)      # a NumPy array in
    assert isinstance(got, da.Array)
    assert_identical(got.compute(), cypool.avg_pool2d(x, 3, 2, 1, count_include_pad=False))
    got = cdask.max_pool2d(da.from_array(x, chunks=(2, 5, 4)), 3, 2, 1)
    assert_identical(got.compute(), cypool.max_pool2d(x, 3, 2, 1))


def test_integer_average_gives_float64():
    x = np.arange(2 * 3 * 10 * 7, dtype=np.int32).reshape(2, 3, 10, 7)
    got = cdask.avg_pool2d(da.from_array(x, chunks=(1, 2, 3, 4)), 3, 2, 1, ceil_mode=True)
    assert got.dtype == np.float64
    assert_identical(got.compute(), cypool.avg_pool2d(x, 3, 2, 1, ceil_mode=True))


# ------------------------------------------------------------------ global

@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.bool_])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_max_is_exact(dtype, channels_last, keepdims):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 4, 9, 6, 5)) * 100
    x = x > 0 if dtype == np.bool_ else x.astype(dtype)
    if dtype == np.float32:
        x[0, 1, 2, 3, 4] = np.nan
    want = cypool.global_max_pool(x, keepdims, channels_last=channels_last)
    for _ in range(3):
        chunked = da.from_array(x, chunks=random_chunks(x.shape, rng))
        got = cdask.global_max_pool(chunked, keepdims, channels_last=channels_last)
        assert_identical(got.compute(scheduler="threads"), want)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_avg(channels_last, keepdims):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 8, 9, 5)).astype(np.float32)
    want = cypool.global_avg_pool(x, keepdims, channels_last=channels_last)
    # spatial axes whole: blockwise, bit for bit
    spatial = (1, 2) if channels_last else (2, 3)
    chunks = tuple((x.shape[a],) if a in spatial else (1, x.shape[a] - 1) for a in range(4))
    got = cdask.global_avg_pool(da.from_array(x, chunks=chunks), keepdims,
                                channels_last=channels_last)
    assert_identical(got.compute(), want)
    # spatial axes split: a float64 tree reduction, equal to rounding
    got = cdask.global_avg_pool(da.from_array(x, chunks=random_chunks(x.shape, rng)), keepdims,
                                channels_last=channels_last).compute()
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------ pyramid

@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pyramid_levels_equal_repeated_in_memory_pooling(mode, ceil_mode):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 2, 37, 50)).astype(np.float32)
    levels = cdask.pyramid(da.from_array(x, chunks=(1, 1, 13, 17)), 4, mode, ceil_mode=ceil_mode)
    assert len(levels) == 5
    want = x
    pool = getattr(cypool, f"{mode}_pool2d")
    for level in levels:
        assert_identical(level.compute(), want)
        want = pool(want, 2, 2, ceil_mode=ceil_mode)


def test_pyramid_3d_channels_last():
    x = np.random.default_rng(10).standard_normal((9, 12, 16, 2))
    levels = cdask.pyramid(da.from_array(x, chunks=(4, 5, 7, 1)), 2, "avg", spatial_dims=3,
                           channels_last=True)
    assert [level.shape for level in levels] == [(9, 12, 16, 2), (4, 6, 8, 2), (2, 3, 4, 2)]
    want = cypool.avg_pool3d(cypool.avg_pool3d(x, 2, channels_last=True), 2, channels_last=True)
    assert_identical(levels[2].compute(), want)


# ------------------------------------------------------------------ errors

def test_arguments_are_checked_before_any_work():
    x = da.zeros((1, 1, 8, 8), chunks=4)
    with pytest.raises(ValueError, match="padding must be at most half"):
        cdask.max_pool2d(x, 2, padding=2)
    with pytest.raises(TypeError, match="complex"):
        cdask.avg_pool2d(x.astype(np.complex64), 2)
    with pytest.raises(ValueError, match="mode must be 'max' or 'avg'"):
        cdask.pyramid(x, 2, "median")
    with pytest.raises(ValueError, match="levels must be a non-negative int"):
        cdask.pyramid(x, -1)
    with pytest.raises(ValueError, match="output size would be 0"):
        cdask.pyramid(x, 4)
    unknown = x[x[:, 0, 0, 0] > 0]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        cdask.max_pool2d(unknown, 2)


# ------------------------------------------------- graphs that travel

def _batch():
    """A few lazy results and their in-memory counterparts."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 21, 19)).astype(np.float32)
    chunked = da.from_array(x, chunks=((1, 1), (2, 1), (5, 7, 9), (4, 4, 11)))
    calls = [
        (cdask.max_pool2d(chunked, 3, 2, 1, ceil_mode=True),
         cypool.max_pool2d(x, 3, 2, 1, ceil_mode=True)),
        (cdask.avg_pool2d(chunked, 3, 2, "same", count_include_pad=False),
         cypool.avg_pool2d(x, 3, 2, "same", count_include_pad=False)),
        (cdask.lp_pool2d(chunked, 2, 3, 2, True), cypool.lp_pool2d(x, 2, 3, 2, True)),
        (cdask.global_max_pool(chunked), cypool.global_max_pool(x)),
        (cdask.pyramid(chunked, 2)[2], cypool.max_pool2d(cypool.max_pool2d(x, 2), 2)),
    ]
    return [lazy_result for lazy_result, _ in calls], [want for _, want in calls]


def test_graphs_survive_pickling():
    results, wants = _batch()
    for lazy_result, want in zip(results, wants):
        assert_identical(pickle.loads(pickle.dumps(lazy_result)).compute(scheduler="sync"), want)


def test_local_cluster_on_loopback():
    distributed = pytest.importorskip("distributed")
    import dask

    results, wants = _batch()
    # in-process workers that still talk TCP over loopback, so every task is serialised
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                       protocol="tcp", host="127.0.0.1", dashboard_address=None)
    with cluster, distributed.Client(cluster):
        computed = dask.compute(*results)
    for got, want in zip(computed, wants):
        assert_identical(got, want)
