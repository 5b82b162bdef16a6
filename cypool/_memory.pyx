# cython: language_level=3
"""Large results from a cache of freed buffers.

A result of 32 MiB or more is past glibc's largest mmap threshold: every
``np.empty`` of it maps fresh pages, and the kernel that fills it pays a page
fault and the operating system's zeroing for each 4 KiB page, 5 ms and more
for 32 MiB, and as much again when the machine is busy.  Results this large
are allocated here instead, through a NumPy memory handler (NumPy >= 1.22)
whose ``free`` keeps the buffer (up to a limit in bytes) and whose ``malloc``
hands a kept buffer of the same size, give or take an eighth, to the next
large result.  A loop that pools batches of one shape then reuses the same
memory, as a caching allocator (PyTorch's on the GPU) does; the arrays are
ordinary NumPy arrays that own their data.

The cache holds only buffers whose arrays are gone; ``set_result_cache(0)``
frees them and turns it off.  Every entry point takes the lock, so it is
safe from any thread, with or without the GIL.
"""

cimport numpy as cnp
from libc.stddef cimport size_t

import numbers
import os

import numpy as np

cnp.import_array()

cdef extern from *:
    """
    #include <stdlib.h>
    #include <string.h>
    #include "pythread.h"

    /* at most this many buffers kept, each of at least CYPOOL_CACHE_MIN bytes */
    #define CYPOOL_CACHE_SLOTS 8
    #define CYPOOL_CACHE_MIN ((size_t) 32 << 20)

    typedef struct {
        void* ptr[CYPOOL_CACHE_SLOTS];
        size_t size[CYPOOL_CACHE_SLOTS];
        size_t age[CYPOOL_CACHE_SLOTS];  /* when kept: the oldest goes first */
        int count;
        size_t total, limit, clock;
        PyThread_type_lock lock;
    } cypool_cache;

    static cypool_cache cypool_results = {{0}, {0}, {0}, 0, 0, (size_t) 256 << 20, 0, NULL};

    static void cypool_cache_drop(cypool_cache* c, int i)
    {
        c->total -= c->size[i];
        c->count--;
        c->ptr[i] = c->ptr[c->count];
        c->size[i] = c->size[c->count];
        c->age[i] = c->age[c->count];
    }

    /* a kept buffer of size to size + size / 8 bytes (the smallest), or NULL */
    static void* cypool_cache_take(cypool_cache* c, size_t size)
    {
        void* p = NULL;
        int i, best = -1;
        PyThread_acquire_lock(c->lock, WAIT_LOCK);
        for (i = 0; i < c->count; i++)
            if (c->size[i] >= size && c->size[i] - size <= size / 8
                    && (best < 0 || c->size[i] < c->size[best]))
                best = i;
        if (best >= 0) {
            p = c->ptr[best];
            cypool_cache_drop(c, best);
        }
        PyThread_release_lock(c->lock);
        return p;
    }

    /* keep p (size bytes) if it is large and the limit allows, the oldest
       buffers freed to make room; else free it */
    static void cypool_cache_keep(cypool_cache* c, void* p, size_t size)
    {
        void* evicted[CYPOOL_CACHE_SLOTS];
        int i, oldest, n = 0;
        PyThread_acquire_lock(c->lock, WAIT_LOCK);
        if (size >= CYPOOL_CACHE_MIN && size <= c->limit) {
            while (c->count == CYPOOL_CACHE_SLOTS || c->total + size > c->limit) {
                oldest = 0;
                for (i = 1; i < c->count; i++)
                    if (c->age[i] < c->age[oldest])
                        oldest = i;
                evicted[n++] = c->ptr[oldest];
                cypool_cache_drop(c, oldest);
            }
            c->ptr[c->count] = p;
            c->size[c->count] = size;
            c->age[c->count] = c->clock++;
            c->count++;
            c->total += size;
            p = NULL;
        }
        PyThread_release_lock(c->lock);
        free(p);
        for (i = 0; i < n; i++)
            free(evicted[i]);
    }

    /* the new limit; buffers past it freed */
    static size_t cypool_cache_limit(cypool_cache* c, size_t limit)
    {
        void* evicted[CYPOOL_CACHE_SLOTS];
        int n = 0, i;
        size_t old;
        PyThread_acquire_lock(c->lock, WAIT_LOCK);
        old = c->limit;
        c->limit = limit;
        while (c->count > 0 && c->total > limit) {
            evicted[n++] = c->ptr[c->count - 1];
            cypool_cache_drop(c, c->count - 1);
        }
        PyThread_release_lock(c->lock);
        for (i = 0; i < n; i++)
            free(evicted[i]);
        return old;
    }

    /* whether cypool_cache_take would find a buffer */
    static int cypool_cache_has(cypool_cache* c, size_t size)
    {
        int i, found = 0;
        PyThread_acquire_lock(c->lock, WAIT_LOCK);
        for (i = 0; i < c->count; i++)
            found |= c->size[i] >= size && c->size[i] - size <= size / 8;
        PyThread_release_lock(c->lock);
        return found;
    }

    /* the limit and the bytes kept now, read together */
    static void cypool_cache_state(cypool_cache* c, size_t* limit, size_t* total)
    {
        PyThread_acquire_lock(c->lock, WAIT_LOCK);
        *limit = c->limit;
        *total = c->total;
        PyThread_release_lock(c->lock);
    }

    /* the handler: plain malloc'd blocks, so realloc and calloc are the C library's */
    static void* cypool_h_malloc(void* ctx, size_t size)
    {
        void* p = cypool_cache_take((cypool_cache*) ctx, size);
        return p != NULL ? p : malloc(size);
    }

    static void* cypool_h_calloc(void* ctx, size_t nelem, size_t elsize)
    {
        (void) ctx;
        return calloc(nelem, elsize);
    }

    static void* cypool_h_realloc(void* ctx, void* ptr, size_t new_size)
    {
        (void) ctx;
        return realloc(ptr, new_size);
    }

    static void cypool_h_free(void* ctx, void* ptr, size_t size)
    {
        if (ptr != NULL)
            cypool_cache_keep((cypool_cache*) ctx, ptr, size);
    }

    static PyDataMem_Handler cypool_handler = {
        "cypool_result_cache", 1,
        {&cypool_results, cypool_h_malloc, cypool_h_calloc, cypool_h_realloc, cypool_h_free}
    };

    static int cypool_cache_init(void)
    {
        cypool_results.lock = PyThread_allocate_lock();
        return cypool_results.lock != NULL ? 0 : -1;
    }

    static PyObject* cypool_handler_capsule(void)
    {
        return PyCapsule_New(&cypool_handler, "mem_handler", NULL);
    }
    """
    size_t CYPOOL_CACHE_MIN
    ctypedef struct cypool_cache:
        pass
    cypool_cache cypool_results
    int cypool_cache_init()
    size_t cypool_cache_limit(cypool_cache* c, size_t limit) nogil
    void cypool_cache_state(cypool_cache* c, size_t* limit, size_t* total) nogil
    int cypool_cache_has(cypool_cache* c, size_t size) nogil
    object cypool_handler_capsule()
    object PyDataMem_SetHandler(object handler)

if cypool_cache_init() != 0:
    raise MemoryError("cypool: cannot allocate the result cache's lock")


def _after_fork_in_child():
    # a fork while another thread held the lock would leave it held for good
    if cypool_cache_init() != 0:
        raise MemoryError("cypool: cannot allocate the result cache's lock")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

cdef object _handler = cypool_handler_capsule()

#: The smallest buffer kept (an array shrunk below it by ``resize`` is freed).
MIN_BYTES = CYPOOL_CACHE_MIN


def empty(shape, dtype):
    """``np.empty(shape, dtype)``, its buffer from the cache when one fits,
    and back to it (within the limit) once the array is gone."""
    cdef object previous = PyDataMem_SetHandler(_handler)
    try:
        return np.empty(shape, dtype)
    finally:
        PyDataMem_SetHandler(previous)


def zeros(shape, dtype):
    """:func:`empty`, zeroed: from calloc (fresh zero pages), back to the cache."""
    cdef object previous = PyDataMem_SetHandler(_handler)
    try:
        return np.zeros(shape, dtype)
    finally:
        PyDataMem_SetHandler(previous)


def has(size_t nbytes):
    """Whether a kept buffer would serve a result of ``nbytes``."""
    return cypool_cache_has(&cypool_results, nbytes) != 0


def set_result_cache(nbytes):
    """Keep at most ``nbytes`` of freed large results for reuse (0 turns the
    cache off and frees what it holds); returns the previous limit.

    Results (and temporaries) of 32 MiB or more come from this cache: when
    such an array is garbage, its buffer is kept, up to ``nbytes`` in all (the
    oldest freed first), for the next large result of about its size, which
    then needs no fresh pages from the operating system.  The default keeps
    256 MiB.  Arrays keep working as any NumPy array; only memory that no
    array uses any more is held.

    >>> import cypool
    >>> previous = cypool.set_result_cache(0)   # off: large buffers go back to the C library
    >>> cypool.set_result_cache(previous)
    0
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, numbers.Integral):
        raise TypeError(f"nbytes must be an int, got {type(nbytes).__name__}")
    if nbytes < 0:
        raise ValueError(f"nbytes must be >= 0, got {nbytes}")
    return cypool_cache_limit(&cypool_results, <size_t> min(int(nbytes), <size_t> -1))


def get_result_cache():
    """``(limit, held)``: the cache's limit in bytes (see
    :func:`set_result_cache`) and the bytes of freed buffers it holds now."""
    cdef size_t limit, total
    cypool_cache_state(&cypool_results, &limit, &total)
    return (limit, total)
