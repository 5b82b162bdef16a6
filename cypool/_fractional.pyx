# cython: language_level=3
"""Fractional max pooling (Graham 2014): PyTorch's windows, max kernels.

Every plane has its own window starts per axis, from one sample ``u`` in
``[0, 1)`` (PyTorch's ``generate_intervals``)::

    alpha    = (in - kernel) / (out - 1)            (in the samples' dtype)
    start[i] = int((i + u) * alpha) - int(u * alpha)    for i < out - 1
    start[out - 1] = in - kernel

Window ``i`` covers ``[start[i], start[i] + kernel)``, always inside the
input.  The max inside a window follows ``_dtypes.beats``: ties keep the
first element in scan order, the last NaN wins, and the start value is -inf
(the integer minimum) with the window's first element as its index, as in
PyTorch.

Arrays arrive C-contiguous: channels-first ``(planes, D, H, W)``,
channels-last ``(N, D, H, W, C)``; 2-D calls use ``D = 1``.  The window starts
arrive as one int64 table ``(planes, OD + OH + OW)``, plane ``n*C + c``.
"""

import numpy as np

cimport numpy as cnp
from cython.parallel cimport prange, threadid
from libc.stdint cimport (
    INT32_MAX, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t,
)
from libc.stdlib cimport free, malloc

from cypool._dtypes cimport beats, lowest, max_t
from cypool._kernel_common cimport window_max_cl
from cypool._simd cimport CY_SUM_MAX_TAPS, cy_simd_cap, cy_simd_level

cnp.import_array()

cdef enum:
    # Largest input row (elements) the channels-first fast path keeps per thread.
    SCRATCH_LIMIT = 1 << 22
    # Largest channels-first plane (elements) pooled whole (_forward_plane_whole)
    # when no indices are asked for; measured (1 thread): 8x8 to 14x14 planes
    # 0.65-0.8 of the row path's time, even at 28x28; slower with indices.
    WHOLE_PLANE = 1024
    # Channels of one channels-last block (per-channel window state on the stack).
    CHANNEL_BLOCK = 64

cdef Py_ssize_t whole_plane = WHOLE_PLANE


def whole_plane_limit(limit=None):
    """The largest channels-first plane (elements) pooled whole, in passes
    over all its rows when no indices are asked for (``_forward_plane_whole``);
    ``limit`` (tests and measurements only) sets it, 0 turns it off, None
    only reads it."""
    global whole_plane
    if limit is not None:
        whole_plane = <Py_ssize_t> limit
    return whole_plane


ctypedef fused sample_t:
    float
    double


cdef inline Py_ssize_t _plane_starts(sample_t u, sample_t alpha, Py_ssize_t in_size,
                                     Py_ssize_t out_size, Py_ssize_t kernel,
                                     int64_t* row) noexcept nogil:
    """One plane's starts along one axis (each operation rounded in
    ``sample_t``, as NumPy and PyTorch round them); the number outside
    ``[0, in - kernel]``."""
    cdef int64_t base = <int64_t> (u * alpha), start
    cdef Py_ssize_t i, bad = 0
    for i in range(out_size - 1):
        start = <int64_t> ((<sample_t> i + u) * alpha) - base
        bad += (start < 0) | (start > in_size - kernel)
        row[i] = start
    row[out_size - 1] = in_size - kernel
    return bad


cdef Py_ssize_t _fill_starts(const sample_t* samples, Py_ssize_t planes,
                             Py_ssize_t in_size, Py_ssize_t out_size, Py_ssize_t kernel,
                             int64_t* table, Py_ssize_t width, int nthreads) noexcept nogil:
    """Row ``p`` of ``table`` (``width`` apart) gets plane ``p``'s starts from
    ``samples[p]``; the number outside ``[0, in - kernel]``."""
    cdef sample_t alpha = 0
    cdef Py_ssize_t p, bad = 0
    if out_size > 1:
        alpha = <sample_t> (in_size - kernel) / <sample_t> (out_size - 1)
    if nthreads > 1:
        for p in prange(planes, schedule='guided', num_threads=nthreads):
            bad += _plane_starts(samples[p], alpha, in_size, out_size, kernel,
                                 table + p * width)
    else:
        for p in range(planes):
            bad += _plane_starts(samples[p], alpha, in_size, out_size, kernel,
                                 table + p * width)
    return bad


cdef _refuse_start(dtype, Py_ssize_t in_size, Py_ssize_t out_size, Py_ssize_t kernel):
    raise ValueError(
        f"fractional max pooling: with x in {dtype.name}, the samples "
        f"(_random_samples or rng's draws) give a window start outside [0, "
        f"{in_size - kernel}] for input size {in_size}, kernel_size {kernel}, output size "
        f"{out_size} (rounding in {dtype.name}); pass x in a wider float dtype"
    )


def interval_starts(samples, Py_ssize_t in_size, Py_ssize_t out_size, Py_ssize_t kernel):
    """Window starts along one axis for each plane: int64 ``(len(samples), out_size)``.

    ``samples`` is 1-D in the dtype PyTorch computes in (the input's float
    dtype).  float32 and float64 are computed by a C loop, float16 by NumPy,
    whose float16 arithmetic rounds each operation as ``c10::Half`` does; so
    the starts equal PyTorch's bit for bit.  Raises ValueError when a start
    leaves ``[0, in - kernel]`` (possible only through rounding at float16
    sizes).
    """
    samples = np.asarray(samples)
    starts = np.empty((samples.shape[0], out_size), dtype=np.int64)
    _starts_into(samples, starts, 0, in_size, out_size, kernel, 1)
    return starts


cdef _starts_into(samples, cnp.ndarray table, Py_ssize_t column, Py_ssize_t in_size,
                  Py_ssize_t out_size, Py_ssize_t kernel, int nthreads):
    """Columns ``[column, column + out_size)`` of the C-contiguous int64
    ``table``, one row per sample of the 1-D array ``samples``."""
    cdef Py_ssize_t planes = table.shape[0], width = table.shape[1], bad = 0
    cdef cnp.ndarray flat
    cdef int64_t* rows = <int64_t*> cnp.PyArray_DATA(table) + column
    if samples.dtype == np.float32 or samples.dtype == np.float64:
        flat = np.ascontiguousarray(samples)
        with nogil:
            if cnp.PyArray_TYPE(flat) == cnp.NPY_FLOAT32:
                bad = _fill_starts[float](<const float*> cnp.PyArray_DATA(flat), planes, in_size, out_size, kernel, rows, width, nthreads)
            else:
                bad = _fill_starts[double](<const double*> cnp.PyArray_DATA(flat), planes, in_size, out_size, kernel, rows, width, nthreads)
        if bad:
            _refuse_start(samples.dtype, in_size, out_size, kernel)
        return
    part = table[:, column:column + out_size]
    kind = samples.dtype.type
    if out_size > 1:
        alpha = kind(in_size - kernel) / kind(out_size - 1)
        steps = np.arange(out_size - 1).astype(kind)
        part[:, :-1] = (((steps[np.newaxis, :] + samples[:, np.newaxis]) * alpha).astype(np.int64)
                        - (samples * alpha).astype(np.int64)[:, np.newaxis])
    part[:, out_size - 1] = in_size - kernel
    if part.size and (part.min() < 0 or part.max() > in_size - kernel):
        _refuse_start(samples.dtype, in_size, out_size, kernel)


# PyTorch's sample columns per spatial axis: 2-D samples are [W, H], 3-D [D, H, W].
_SAMPLE_COLUMN = {2: (1, 0), 3: (0, 1, 2)}


def window_starts(samples, tuple in_sizes, tuple out_sizes, tuple kernel, int nthreads=1):
    """The kernel's start table, int64 ``(planes, OD + OH + OW)``.

    ``samples`` is ``(planes, nd)`` in PyTorch's column order; a 2-D call gets
    a depth axis of one window starting at 0.
    """
    nd = len(in_sizes)
    out3 = (1,) * (3 - nd) + tuple(out_sizes)
    cdef cnp.ndarray table = np.empty((samples.shape[0], sum(out3)), dtype=np.int64)
    if nd == 2:
        table[:, 0] = 0
    column = 3 - nd
    for axis in range(nd):
        _starts_into(samples[:, _SAMPLE_COLUMN[nd][axis]], table, column, in_sizes[axis],
                     out_sizes[axis], kernel[axis], nthreads)
        column += out_sizes[axis]
    return table


# Loops by (kind, item size): every native int64 type (long, long long) shares one.
_TYPE_CODES = {("f", 4): 0, ("f", 8): 1, ("i", 1): 2, ("i", 2): 3, ("i", 4): 4, ("i", 8): 5,
               ("u", 1): 6, ("u", 2): 7, ("u", 4): 8, ("u", 8): 9}


def _type_code(dtype):
    """The loop for ``dtype`` (native byte order), or -1."""
    return _TYPE_CODES.get((dtype.kind, dtype.itemsize), -1) if dtype.isnative else -1


cdef struct Shape:
    Py_ssize_t in_size[3]
    Py_ssize_t out_size[3]
    Py_ssize_t kernel[3]


cdef inline void _window_max(const max_t* x, Py_ssize_t stride_c, const Shape* s,
                             const int64_t* starts, Py_ssize_t od, Py_ssize_t oh,
                             Py_ssize_t ow, max_t* value, int64_t* index) noexcept nogil:
    """Max of one window; ``x`` is the plane's first element, ``stride_c`` the
    distance between spatial neighbours (1, or C when channels-last)."""
    cdef Py_ssize_t H = s.in_size[1], W = s.in_size[2]
    cdef Py_ssize_t sd = starts[od]
    cdef Py_ssize_t sh = starts[s.out_size[0] + oh]
    cdef Py_ssize_t sw = starts[s.out_size[0] + s.out_size[1] + ow]
    cdef Py_ssize_t a, b, e, pos
    cdef int64_t best_at = (sd * H + sh) * W + sw
    cdef max_t best = lowest(x)
    cdef max_t v
    for a in range(sd, sd + s.kernel[0]):
        for b in range(sh, sh + s.kernel[1]):
            for e in range(sw, sw + s.kernel[2]):
                pos = (a * H + b) * W + e
                v = x[pos * stride_c]
                if beats(v, best):
                    best = v
                    best_at = pos
    value[0] = best
    index[0] = best_at


cdef void _forward_plane(const max_t* x, max_t* out, int64_t* ind, const int64_t* starts,
                         const Shape* s) noexcept nogil:
    cdef Py_ssize_t od, oh, ow, o = 0
    cdef int64_t at
    for od in range(s.out_size[0]):
        for oh in range(s.out_size[1]):
            for ow in range(s.out_size[2]):
                _window_max(x, 1, s, starts, od, oh, ow, &out[o], &at)
                if ind != NULL:
                    ind[o] = at
                o += 1


# ------------------------------------------- channels-first, fast path
#
# Max over a window in scan order equals the max over its rows (in order) of
# each row's max over the window's columns, under one ``beats`` rule (as in
# ``_max.pyx``).  Every window row of an output row is reduced along W by a
# sliding maximum of width ``kernel[2]`` at every start position (contiguous
# branch-free loops that gcc vectorises), then read at the windows' own
# starts and folded into the output row.  Offsets as int32: planes below
# 2**31 elements.

cdef inline void _sliding_max(const max_t* row, Py_ssize_t span, Py_ssize_t width,
                              max_t* slide, int32_t* slide_at, bint with_index) noexcept nogil:
    """``slide[w]``: max of ``row[w : w + width]`` for ``w < span``, and its
    position along the row."""
    cdef Py_ssize_t w, j
    cdef int32_t at
    cdef max_t value
    cdef bint take
    for w in range(span):
        slide[w] = row[w]
    if with_index:
        at = 0
        for w in range(span):
            slide_at[w] = at
            at = at + 1
    for j in range(1, width):
        if with_index:
            # offsets as an int32 induction variable: 64-bit products would not vectorise
            at = <int32_t> j
            for w in range(span):
                # both loads unconditional, or gcc will not if-convert
                value = row[w + j]
                take = beats(value, slide[w])
                slide[w] = value if take else slide[w]
                slide_at[w] = at if take else slide_at[w]
                at = at + 1
        else:
            for w in range(span):
                value = row[w + j]
                slide[w] = value if beats(value, slide[w]) else slide[w]


cdef void _forward_plane_fast(const max_t* x, max_t* out, int64_t* ind, const int64_t* starts,
                              const Shape* s, max_t* slide, int32_t* slide_at) noexcept nogil:
    """One channels-first plane; scratch: slide, slide_at of W + 2 * OW."""
    cdef Py_ssize_t H = s.in_size[1], W = s.in_size[2]
    cdef Py_ssize_t OD = s.out_size[0], OH = s.out_size[1], OW = s.out_size[2]
    cdef Py_ssize_t span = W - s.kernel[2] + 1
    cdef const int64_t* start_d = starts
    cdef const int64_t* start_h = starts + OD
    cdef const int64_t* start_w = starts + OD + OH
    cdef bint with_index = ind != NULL
    cdef Py_ssize_t od, oh, ow, a, b, r, n_rows, o
    cdef int32_t base, at
    cdef max_t value
    cdef bint take
    cdef max_t* best = slide + W
    cdef max_t* gathered = best + OW
    cdef int32_t* best_at = slide_at + W
    cdef int32_t* gathered_at = best_at + OW
    cdef max_t* target
    cdef int32_t* target_at
    for od in range(OD):
        for oh in range(OH):
            n_rows = 0
            for a in range(s.kernel[0]):
                for b in range(s.kernel[1]):
                    r = (start_d[od] + a) * H + start_h[oh] + b
                    base = <int32_t> (r * W)
                    _sliding_max(x + r * W, span, s.kernel[2], slide, slide_at, with_index)
                    # the windows' own starts: a gather, a scalar loop without
                    # branches (on the data they would mispredict) ...
                    target = best if n_rows == 0 else gathered
                    target_at = best_at if n_rows == 0 else gathered_at
                    for ow in range(OW):
                        target[ow] = slide[start_w[ow]]
                    if with_index:
                        for ow in range(OW):
                            target_at[ow] = base + slide_at[start_w[ow]]
                    # ... then folded into the output row in a vector loop
                    if n_rows > 0 and with_index:
                        for ow in range(OW):
                            value = gathered[ow]
                            at = gathered_at[ow]
                            take = beats(value, best[ow])
                            best[ow] = value if take else best[ow]
                            best_at[ow] = at if take else best_at[ow]
                    elif n_rows > 0:
                        for ow in range(OW):
                            value = gathered[ow]
                            best[ow] = value if beats(value, best[ow]) else best[ow]
                    n_rows += 1
            o = (od * OH + oh) * OW
            for ow in range(OW):
                out[o + ow] = best[ow]
            if with_index:
                for ow in range(OW):
                    ind[o + ow] = best_at[ow]


cdef void _forward_plane_whole(const max_t* x, max_t* out, const int64_t* starts,
                               const Shape* s, max_t* slide) noexcept nogil:
    """One small channels-first plane's values (no indices) with the same
    maxima of rows as _forward_plane_fast, but each pass over the whole plane
    at once where the fast path makes three short loops per window row: the
    sliding maxima of the plane as one row (the windows across row ends are
    never read), every row's windows gathered, then the rows folded into each
    output row.  Scratch: slide of ``in_plane + rows * OW``."""
    cdef Py_ssize_t H = s.in_size[1], W = s.in_size[2]
    cdef Py_ssize_t OD = s.out_size[0], OH = s.out_size[1], OW = s.out_size[2]
    cdef Py_ssize_t rows = s.in_size[0] * H, in_plane = rows * W
    cdef const int64_t* start_d = starts
    cdef const int64_t* start_h = starts + OD
    cdef const int64_t* start_w = starts + OD + OH
    cdef max_t* cols = slide + in_plane
    cdef Py_ssize_t od, oh, ow, a, b, r
    cdef const max_t* src
    cdef max_t value
    _sliding_max(x, in_plane - s.kernel[2] + 1, s.kernel[2], slide, NULL, False)
    for r in range(rows):
        for ow in range(OW):
            cols[r * OW + ow] = slide[r * W + start_w[ow]]
    for od in range(OD):
        for oh in range(OH):
            r = start_d[od] * H + start_h[oh]
            for ow in range(OW):
                out[ow] = cols[r * OW + ow]
            for a in range(s.kernel[0]):
                for b in range(s.kernel[1]):
                    if a > 0 or b > 0:
                        src = cols + ((start_d[od] + a) * H + start_h[oh] + b) * OW
                        for ow in range(OW):
                            value = src[ow]
                            out[ow] = value if beats(value, out[ow]) else out[ow]
            out += OW


cdef void _forward_pixel_cl(const max_t* x, max_t* out, int64_t* ind, const int64_t* starts,
                            Py_ssize_t pixel, Py_ssize_t channels, const Shape* s) noexcept nogil:
    """One channels-last output pixel, all channels (each channel has its own
    windows, so the channel loop is outermost)."""
    cdef Py_ssize_t OD = s.out_size[0], OH = s.out_size[1], OW = s.out_size[2]
    cdef Py_ssize_t in_plane = s.in_size[0] * s.in_size[1] * s.in_size[2]
    cdef Py_ssize_t table = OD + OH + OW
    cdef Py_ssize_t ow = pixel % OW
    cdef Py_ssize_t rest = pixel // OW
    cdef Py_ssize_t oh = rest % OH
    rest = rest // OH
    cdef Py_ssize_t od = rest % OD
    cdef Py_ssize_t n = rest // OD
    cdef Py_ssize_t c
    cdef int64_t at
    for c in range(channels):
        _window_max(x + n * in_plane * channels + c, channels, s,
                    starts + (n * channels + c) * table, od, oh, ow,
                    &out[pixel * channels + c], &at)
        if ind != NULL:
            ind[pixel * channels + c] = at


# ------------------------------------------- channels-last, fast path
#
# Every channel has windows of its own, so an output pixel's channels read
# their windows at offsets of their own.  The taps go outermost (the same
# offset from each channel's window start), the channels innermost with
# branch-free picks: a channel's taps stay in scan order.  When the channels
# of a block share their window (the starts are equal, as they are whenever
# alpha is a whole number), its taps are contiguous runs along C and go to
# _simd.h's channel vectors (as channels-last max pooling's windows do).  The
# window starts are first laid out with the channels innermost, so a row of
# pixels reads them contiguously.

cdef void _forward_row_cl_fast(const max_t* x, max_t* out, int64_t* ind,
                               const int64_t* by_channel, Py_ssize_t row, Py_ssize_t channels,
                               const Shape* s) noexcept nogil:
    """Channels-last output row ``row = (n*OD + od)*OH + oh``, all channels, a
    block at a time; ``by_channel``: the window starts with the channels
    innermost, ``(N, OD + OH + OW, C)``."""
    cdef Py_ssize_t H = s.in_size[1], W = s.in_size[2]
    cdef Py_ssize_t OD = s.out_size[0], OH = s.out_size[1], OW = s.out_size[2]
    cdef Py_ssize_t in_plane = s.in_size[0] * H * W
    cdef Py_ssize_t table = OD + OH + OW
    cdef Py_ssize_t oh = row % OH
    cdef Py_ssize_t od = (row // OH) % OD
    cdef Py_ssize_t n = row // (OH * OD)
    cdef const max_t* xn = x + n * in_plane * channels
    cdef const int64_t* st = by_channel + n * table * channels
    cdef Py_ssize_t c0 = 0, c1, c, a, b, e, ow, k, width, done
    cdef Py_ssize_t n_taps = s.kernel[0] * s.kernel[1] * s.kernel[2]
    cdef int64_t row_pos[CHANNEL_BLOCK]
    cdef int64_t pos[CHANNEL_BLOCK]
    cdef int64_t tap_at[CY_SUM_MAX_TAPS]
    cdef int64_t tap_pos[CY_SUM_MAX_TAPS]
    cdef const max_t* taps[CY_SUM_MAX_TAPS]
    cdef const max_t* src
    cdef max_t* o
    cdef int64_t* io
    cdef max_t value
    cdef bint shared, take
    k = 0
    for a in range(s.kernel[0]):
        for b in range(s.kernel[1]):
            for e in range(s.kernel[2]):
                if k < CY_SUM_MAX_TAPS:
                    tap_at[k] = (a * H + b) * W + e
                k += 1
    while c0 < channels:
        c1 = min(c0 + CHANNEL_BLOCK, channels)
        width = c1 - c0
        for c in range(width):
            row_pos[c] = (st[od * channels + c0 + c] * H + st[(OD + oh) * channels + c0 + c]) * W
        for ow in range(OW):
            shared = True
            for c in range(width):
                pos[c] = row_pos[c] + st[(OD + OH + ow) * channels + c0 + c]
                shared = shared & (pos[c] == pos[0])
            o = out + (row * OW + ow) * channels + c0
            io = ind + (row * OW + ow) * channels + c0 if ind != NULL else NULL
            done = 0
            if (max_t is float or max_t is double) and shared and n_taps <= CY_SUM_MAX_TAPS:
                # one window for the block: its taps are runs along C (_simd.h)
                for k in range(n_taps):
                    taps[k] = xn + (pos[0] + tap_at[k]) * channels + c0
                    tap_pos[k] = pos[0] + tap_at[k]
                done = window_max_cl(taps, n_taps, width, o, tap_pos, io)
                if done == width:
                    continue
            # the rest of the block: a tap at a time, in scan order, branch-free
            for c in range(done, width):
                o[c] = xn[pos[c] * channels + c0 + c]
            if io != NULL:
                for c in range(done, width):
                    io[c] = pos[c]
            k = 0
            for a in range(s.kernel[0]):
                for b in range(s.kernel[1]):
                    for e in range(s.kernel[2]):
                        if k > 0:
                            _tap_cl(xn, o, io, pos, (a * H + b) * W + e, channels, c0, done,
                                    width)
                        k += 1
        c0 = c1


cdef inline void _tap_cl(const max_t* xn, max_t* o, int64_t* io, const int64_t* pos,
                         Py_ssize_t tap_at, Py_ssize_t channels, Py_ssize_t c0, Py_ssize_t lo,
                         Py_ssize_t hi) noexcept nogil:
    """Channels [lo, hi) of a block take one tap, ``tap_at`` past their
    window starts ``pos``."""
    cdef Py_ssize_t c
    cdef max_t value
    cdef bint take
    if io == NULL:
        for c in range(lo, hi):
            value = xn[(pos[c] + tap_at) * channels + c0 + c]
            o[c] = value if beats(value, o[c]) else o[c]
        return
    for c in range(lo, hi):
        value = xn[(pos[c] + tap_at) * channels + c0 + c]
        take = beats(value, o[c])
        o[c] = value if take else o[c]
        io[c] = pos[c] + tap_at if take else io[c]


cdef void _by_channel(const int64_t* starts, int64_t* by_channel, Py_ssize_t n,
                      Py_ssize_t channels, Py_ssize_t table) noexcept nogil:
    """Batch element ``n``'s window starts, ``(C, table)`` -> ``(table, C)``."""
    cdef Py_ssize_t c, k
    for c in range(channels):
        for k in range(table):
            by_channel[(n * table + k) * channels + c] = starts[(n * channels + c) * table + k]


cdef int _forward_fast(const max_t* x, max_t* out, int64_t* ind, const int64_t* starts,
                       Py_ssize_t planes, const Shape* s, int nthreads) noexcept nogil:
    """All channels-first planes by the fast path, per-thread scratch; -1: no memory."""
    cdef Py_ssize_t in_plane = s.in_size[0] * s.in_size[1] * s.in_size[2]
    cdef Py_ssize_t out_plane = s.out_size[0] * s.out_size[1] * s.out_size[2]
    cdef Py_ssize_t table = s.out_size[0] + s.out_size[1] + s.out_size[2]
    cdef bint whole = in_plane <= whole_plane and ind == NULL
    cdef Py_ssize_t room = (in_plane + s.in_size[0] * s.in_size[1] * s.out_size[2] if whole
                            else s.in_size[2] + 2 * s.out_size[2]) + 16
    cdef max_t* values = <max_t*> malloc(nthreads * room * sizeof(max_t))
    cdef int32_t* offsets = <int32_t*> malloc(nthreads * room * sizeof(int32_t))
    cdef Py_ssize_t p, mine
    if values == NULL or offsets == NULL:
        free(values)
        free(offsets)
        return -1
    if whole and nthreads > 1:
        for p in prange(planes, schedule='guided', num_threads=nthreads):
            mine = threadid() * room
            _forward_plane_whole(x + p * in_plane, out + p * out_plane, starts + p * table, s,
                                 values + mine)
    elif whole:
        for p in range(planes):
            _forward_plane_whole(x + p * in_plane, out + p * out_plane, starts + p * table, s,
                                 values)
    elif nthreads > 1:
        for p in prange(planes, schedule='guided', num_threads=nthreads):
            mine = threadid() * room
            _forward_plane_fast(x + p * in_plane, out + p * out_plane,
                                ind + p * out_plane if ind != NULL else NULL, starts + p * table,
                                s, values + mine, offsets + mine)
    else:
        for p in range(planes):
            _forward_plane_fast(x + p * in_plane, out + p * out_plane,
                                ind + p * out_plane if ind != NULL else NULL, starts + p * table,
                                s, values, offsets)
    free(values)
    free(offsets)
    return 0


cdef int _forward(const max_t* x, max_t* out, int64_t* ind, const int64_t* starts,
                  Py_ssize_t lead, Py_ssize_t channels, bint channels_last, const Shape* s,
                  int nthreads, bint naive) noexcept nogil:
    """``lead`` is planes (channels-first) or batch (channels-last); ``naive``
    forces the window-by-window loops; -1: no memory."""
    cdef Py_ssize_t in_plane = s.in_size[0] * s.in_size[1] * s.in_size[2]
    cdef Py_ssize_t out_plane = s.out_size[0] * s.out_size[1] * s.out_size[2]
    cdef Py_ssize_t table = s.out_size[0] + s.out_size[1] + s.out_size[2]
    cdef Py_ssize_t p, rows
    cdef int64_t* by_channel
    if (not channels_last and not naive and in_plane < INT32_MAX
            and s.in_size[2] <= SCRATCH_LIMIT):
        return _forward_fast(x, out, ind, starts, lead, s, nthreads)
    if not channels_last:
        if nthreads > 1:
            for p in prange(lead, schedule='guided', num_threads=nthreads):
                _forward_plane(x + p * in_plane, out + p * out_plane,
                               ind + p * out_plane if ind != NULL else NULL,
                               starts + p * table, s)
        else:
            for p in range(lead):
                _forward_plane(x + p * in_plane, out + p * out_plane,
                               ind + p * out_plane if ind != NULL else NULL,
                               starts + p * table, s)
    elif naive:
        if nthreads > 1:
            for p in prange(lead * out_plane, schedule='guided', num_threads=nthreads):
                _forward_pixel_cl(x, out, ind, starts, p, channels, s)
        else:
            for p in range(lead * out_plane):
                _forward_pixel_cl(x, out, ind, starts, p, channels, s)
    else:
        by_channel = <int64_t*> malloc(lead * table * channels * sizeof(int64_t))
        if by_channel == NULL:
            return -1
        rows = lead * s.out_size[0] * s.out_size[1]
        if nthreads > 1:
            for p in prange(lead, schedule='guided', num_threads=nthreads):
                _by_channel(starts, by_channel, p, channels, table)
            for p in prange(rows, schedule='guided', num_threads=nthreads):
                _forward_row_cl_fast(x, out, ind, by_channel, p, channels, s)
        else:
            for p in range(lead):
                _by_channel(starts, by_channel, p, channels, table)
            for p in range(rows):
                _forward_row_cl_fast(x, out, ind, by_channel, p, channels, s)
        free(by_channel)
    return 0


def fractional_max_pool_forward(cnp.ndarray x, cnp.ndarray out, cnp.ndarray indices,
                                cnp.ndarray starts, tuple kernel, bint channels_last,
                                int nthreads, bint naive=False):
    """Fill ``out`` (and ``indices`` unless None) from ``x``.

    x: IN, C-contiguous ``(planes, D, H, W)`` or ``(N, D, H, W, C)``.
    out: OUT, same layout with the output sizes, same dtype as ``x``.
    indices: OUT, int64, shaped like ``out``, or None.
    starts: IN, int64 ``(planes, OD + OH + OW)``, every window inside the input.
    kernel: the window size ``(kd, kh, kw)``.
    naive: force the window-by-window loops (the tests compare the fast path with them).
    """
    cdef Shape s
    cdef Py_ssize_t a
    for a in range(3):
        s.in_size[a] = x.shape[1 + a]
        s.out_size[a] = out.shape[1 + a]
        s.kernel[a] = kernel[a]
    cdef Py_ssize_t lead = x.shape[0]
    cdef Py_ssize_t channels = x.shape[4] if channels_last else 1
    cdef void* xp = cnp.PyArray_DATA(x)
    cdef void* op = cnp.PyArray_DATA(out)
    cdef int64_t* ip = <int64_t*> cnp.PyArray_DATA(indices) if indices is not None else NULL
    cdef const int64_t* sp = <const int64_t*> cnp.PyArray_DATA(starts)
    cdef int code = _type_code(x.dtype)
    cdef int status = 0
    with nogil:
        if code == 0:
            status = _forward[float](<float*> xp, <float*> op, ip, sp, lead, channels, channels_last, &s, nthreads, naive)
        elif code == 1:
            status = _forward[double](<double*> xp, <double*> op, ip, sp, lead, channels, channels_last, &s, nthreads, naive)
        elif code == 2:
            status = _forward[int8_t](<int8_t*> xp, <int8_t*> op, ip, sp, lead, channels, channels_last, &s, nthreads, naive)
        elif code == 3:
            status = _forward[int16_t](<int16_t*> xp, <int16_t*> op, ip, sp, lead, channels, channels_last, &s, nthreads, naive)
        elif code == 4:
            status = _forward[int32_t](<int32_t*> xp, <int32_t*> op, ip, sp, lead, channels, channels_last, &s, nthreads, naive)
        elif code == 5:
            status = _forward[int64_t](<int64_t*> xp, <int64_t*> op, ip, sp, lead, channels, channels_last, &s, nthreads, naive)
        elif code == 6:
            status = _forward[uint8_t](<uint8_t*> xp, <uint8_t*> op, ip, sp, lead, channels, channels_last, &s, nthreads, naive)
        elif code == 7:
            status = _forward[uint16_t](<uint16_t*> xp, <uint16_t*> op, ip, sp, lead, channels, channels_last, &s, nthreads, naive)
        elif code == 8:
            status = _forward[uint32_t](<uint32_t*> xp, <uint32_t*> op, ip, sp, lead, channels, channels_last, &s, nthreads, naive)
        elif code == 9:
            status = _forward[uint64_t](<uint64_t*> xp, <uint64_t*> op, ip, sp, lead, channels, channels_last, &s, nthreads, naive)
    if code < 0:
        raise TypeError(f"fractional max pooling kernel has no loop for dtype {x.dtype}")
    if status != 0:
        raise MemoryError("cypool: out of memory for fractional max pooling scratch")


def simd_level(cap=None):
    """The vector path of this module's _simd.h loops: 2 AVX2, 1 SSE2, 0 portable C;
    ``cap`` (tests only) lowers it, as ``_max.simd_level``."""
    if cap is not None:
        return cy_simd_cap(cap)
    return cy_simd_level()
