# cython: language_level=3
"""Max unpooling kernels: scatter to indices (forward), gather (backward).

Both only move items, so they move raw bits: every dtype of one item size
shares one loop (bool and int8 as uint8, float16 as uint16, float32 as
uint32, ...), exact for every value including NaN payloads and -0.0.

Arrays arrive C-contiguous from the facade, spatial dims flattened:
channels-first ``(planes, plane)``, channels-last ``(N, plane, C)``.  Indices
are flat offsets inside one output plane, already checked to lie in it.

Duplicate indices: the last input element in scan order wins.  A
channels-first job is one plane; a channels-last job is a block of channels
of one batch element, scanned over every input position in order; so the
rule holds for any thread count.
"""

cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memset

cnp.import_array()

ctypedef fused item_t:
    uint8_t
    uint16_t
    uint32_t
    uint64_t

cdef enum:
    # Channels of one channels-last scatter job, halved (down to MIN) until
    # every thread has a job.
    CHANNEL_BLOCK = 64
    MIN_CHANNEL_BLOCK = 8


cdef Py_ssize_t _scatter_plane(const item_t* x, const int64_t* ind, item_t* out,
                               Py_ssize_t in_plane, Py_ssize_t out_plane,
                               bint zeroed) noexcept nogil:
    """Zero one plane (unless ``zeroed``: it is zero already) and write each
    element at its index; the number of indices outside the plane (skipped)."""
    cdef Py_ssize_t i, bad = 0
    cdef int64_t at
    if not zeroed:
        memset(out, 0, out_plane * sizeof(item_t))
    for i in range(in_plane):
        at = ind[i]
        if 0 <= at < out_plane:
            out[at] = x[i]
        else:
            bad += 1
    return bad


cdef Py_ssize_t _scatter_block_cl(const item_t* x, const int64_t* ind, item_t* out,
                                  Py_ssize_t job, Py_ssize_t blocks, Py_ssize_t block,
                                  Py_ssize_t channels, Py_ssize_t in_plane,
                                  Py_ssize_t out_plane, bint zeroed) noexcept nogil:
    """Channels ``[c0, c1)`` of one batch element, channels-last."""
    cdef Py_ssize_t n = job // blocks
    cdef Py_ssize_t c0 = (job % blocks) * block
    cdef Py_ssize_t c1 = c0 + block if c0 + block < channels else channels
    cdef Py_ssize_t s, c, bad = 0
    cdef int64_t at
    cdef item_t* o = out + n * out_plane * channels
    cdef const item_t* xi = x + n * in_plane * channels
    cdef const int64_t* ii = ind + n * in_plane * channels
    if not zeroed:
        for s in range(out_plane):
            for c in range(c0, c1):
                o[s * channels + c] = 0
    for s in range(in_plane):
        for c in range(c0, c1):
            at = ii[s * channels + c]
            if 0 <= at < out_plane:
                o[at * channels + c] = xi[s * channels + c]
            else:
                bad += 1
    return bad


cdef Py_ssize_t _scatter(const item_t* x, const int64_t* ind, item_t* out, Py_ssize_t lead,
                         Py_ssize_t channels, bint channels_last, Py_ssize_t in_plane,
                         Py_ssize_t out_plane, int nthreads, bint zeroed) noexcept nogil:
    cdef Py_ssize_t p, blocks, jobs, block = CHANNEL_BLOCK, bad = 0
    if not channels_last:
        if nthreads > 1:
            for p in prange(lead, schedule='guided', num_threads=nthreads):
                bad += _scatter_plane(x + p * in_plane, ind + p * in_plane, out + p * out_plane,
                                      in_plane, out_plane, zeroed)
        else:
            for p in range(lead):
                bad += _scatter_plane(x + p * in_plane, ind + p * in_plane, out + p * out_plane,
                                      in_plane, out_plane, zeroed)
        return bad
    while block > MIN_CHANNEL_BLOCK and lead * ((channels + block - 1) // block) < nthreads:
        block = block // 2
    blocks = (channels + block - 1) // block
    jobs = lead * blocks
    if nthreads > 1:
        for p in prange(jobs, schedule='guided', num_threads=nthreads):
            bad += _scatter_block_cl(x, ind, out, p, blocks, block, channels, in_plane, out_plane,
                                     zeroed)
    else:
        for p in range(jobs):
            bad += _scatter_block_cl(x, ind, out, p, blocks, block, channels, in_plane, out_plane,
                                     zeroed)
    return bad


cdef inline Py_ssize_t _gather_run(const item_t* src, const int64_t* ind, item_t* dst,
                                   Py_ssize_t n, Py_ssize_t limit, bint check) noexcept nogil:
    """``dst[i] = src[ind[i]]`` for ``i < n``; with ``check``, an index outside
    ``[0, limit)`` reads element 0 instead and is counted (returned): the
    bounds check costs no second pass over the indices."""
    cdef Py_ssize_t i, bad = 0
    cdef int64_t at
    cdef bint inside
    if not check:
        for i in range(n):
            dst[i] = src[ind[i]]
        return 0
    for i in range(n):
        at = ind[i]
        inside = (at >= 0) & (at < limit)
        dst[i] = src[at if inside else 0]
        bad += not inside
    return bad


cdef Py_ssize_t _gather(const item_t* grad_out, const int64_t* ind, item_t* grad_in,
                        Py_ssize_t lead, Py_ssize_t channels, bint channels_last,
                        Py_ssize_t in_plane, Py_ssize_t out_plane, bint check,
                        int nthreads) noexcept nogil:
    """``grad_in[i] = grad_out[ind[i]]`` in the plane of ``i``; every entry is
    independent, so jobs are planes (channels-first) or pixels (channels-last).
    Returns the number of indices outside the plane (0 unless ``check``)."""
    cdef Py_ssize_t p
    cdef Py_ssize_t bad = 0
    if not channels_last:
        if nthreads > 1:
            for p in prange(lead, schedule='guided', num_threads=nthreads):
                bad += _gather_run(grad_out + p * out_plane, ind + p * in_plane,
                                   grad_in + p * in_plane, in_plane, out_plane, check)
        else:
            for p in range(lead):
                bad += _gather_run(grad_out + p * out_plane, ind + p * in_plane,
                                   grad_in + p * in_plane, in_plane, out_plane, check)
        return bad
    # channels-last: pixel p's channel c reads grad_out[ind * channels + c]
    if nthreads > 1:
        for p in prange(lead * in_plane, schedule='guided', num_threads=nthreads):
            bad += _gather_pixel_cl(grad_out + (p // in_plane) * out_plane * channels,
                                    ind + p * channels, grad_in + p * channels, channels,
                                    out_plane, check)
    else:
        for p in range(lead * in_plane):
            bad += _gather_pixel_cl(grad_out + (p // in_plane) * out_plane * channels,
                                    ind + p * channels, grad_in + p * channels, channels,
                                    out_plane, check)
    return bad


cdef inline Py_ssize_t _gather_pixel_cl(const item_t* src, const int64_t* ind, item_t* dst,
                                        Py_ssize_t channels, Py_ssize_t limit,
                                        bint check) noexcept nogil:
    """One channels-last pixel: ``dst[c] = src[ind[c] * channels + c]``,
    counting the indices outside ``[0, limit)`` as :func:`_gather_run` does."""
    cdef Py_ssize_t c, bad = 0
    cdef int64_t at
    cdef bint inside
    if not check:
        for c in range(channels):
            dst[c] = src[ind[c] * channels + c]
        return 0
    for c in range(channels):
        at = ind[c]
        inside = (at >= 0) & (at < limit)
        dst[c] = src[(at if inside else 0) * channels + c]
        bad += not inside
    return bad


cdef Py_ssize_t _move(const item_t* src, const int64_t* ind, item_t* dst, bint scatter,
                      Py_ssize_t lead, Py_ssize_t channels, bint channels_last,
                      Py_ssize_t in_plane, Py_ssize_t out_plane, bint check,
                      int nthreads) noexcept nogil:
    """A scatter's ``check`` means its ``dst`` is all zeros already."""
    if scatter:
        return _scatter(src, ind, dst, lead, channels, channels_last, in_plane, out_plane,
                        nthreads, check)
    return _gather(src, ind, dst, lead, channels, channels_last, in_plane, out_plane, check,
                   nthreads)


cdef Py_ssize_t _run(cnp.ndarray src, cnp.ndarray indices, cnp.ndarray dst, bint scatter,
                     Py_ssize_t lead, Py_ssize_t in_plane, Py_ssize_t out_plane,
                     bint channels_last, bint check, int nthreads) except -1:
    """Dispatch on the item size (the loops move bits); the number of bad
    indices found (scatters always, gathers with ``check`` only).  For a
    scatter, ``check`` says ``dst`` is all zeros already."""
    cdef Py_ssize_t channels = src.shape[2] if channels_last else 1
    cdef void* sp = cnp.PyArray_DATA(src)
    cdef void* dp = cnp.PyArray_DATA(dst)
    cdef const int64_t* ip = <const int64_t*> cnp.PyArray_DATA(indices)
    cdef int size = cnp.PyArray_ITEMSIZE(src)
    cdef Py_ssize_t bad = 0
    if size not in (1, 2, 4, 8) or cnp.PyArray_ITEMSIZE(dst) != size:
        raise TypeError(f"max unpooling has no loop for {src.dtype} into {dst.dtype}")
    with nogil:
        if size == 1:
            bad = _move[uint8_t](<uint8_t*> sp, ip, <uint8_t*> dp, scatter, lead, channels, channels_last, in_plane, out_plane, check, nthreads)
        elif size == 2:
            bad = _move[uint16_t](<uint16_t*> sp, ip, <uint16_t*> dp, scatter, lead, channels, channels_last, in_plane, out_plane, check, nthreads)
        elif size == 4:
            bad = _move[uint32_t](<uint32_t*> sp, ip, <uint32_t*> dp, scatter, lead, channels, channels_last, in_plane, out_plane, check, nthreads)
        else:
            bad = _move[uint64_t](<uint64_t*> sp, ip, <uint64_t*> dp, scatter, lead, channels, channels_last, in_plane, out_plane, check, nthreads)
    return bad


def max_unpool_forward(cnp.ndarray x, cnp.ndarray indices, cnp.ndarray out,
                       bint channels_last, int nthreads, bint zeroed=False):
    """Zero ``out`` (unless ``zeroed``: it is all zeros already) and write
    each element of ``x`` at its index.

    x: IN, C-contiguous ``(planes, in_plane)`` or ``(N, in_plane, C)``.
    indices: IN, int64, shaped like ``x``; entries outside ``[0, out_plane)`` are
        skipped and counted (the caller raises and drops ``out``).
    out: OUT, same item size as ``x``, ``(planes, out_plane)`` or ``(N, out_plane, C)``.

    Returns the number of indices outside ``[0, out_plane)``.
    """
    return _run(x, indices, out, True, x.shape[0], x.shape[1], out.shape[1], channels_last,
                zeroed, nthreads)


def max_unpool_backward(cnp.ndarray grad_out, cnp.ndarray indices, cnp.ndarray grad_in,
                        bint channels_last, int nthreads, bint check=False):
    """Gather ``grad_in`` from ``grad_out`` at ``indices``.

    grad_out: IN, C-contiguous ``(planes, out_plane)`` or ``(N, out_plane, C)``.
    indices: IN, int64, shaped like ``grad_in``, every entry in ``[0, out_plane)``
        unless ``check``.
    grad_in: OUT, same item size, ``(planes, in_plane)`` or ``(N, in_plane, C)``.
    check: count the indices outside ``[0, out_plane)`` in the same pass (they
        read element 0; the caller raises and drops ``grad_in``).

    Returns the number of bad indices found (0 without ``check``).
    """
    return _run(grad_out, indices, grad_in, False, grad_in.shape[0], grad_in.shape[1],
                grad_out.shape[1], channels_last, check, nthreads)
