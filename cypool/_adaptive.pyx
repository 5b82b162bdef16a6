# cython: language_level=3
"""Adaptive pooling kernels (average and max) and their global fast paths.

Layouts as in ``_max.pyx``: channels-first ``(planes, D, H, W)``,
channels-last ``(N, D, H, W, C)``, C-contiguous.  Window ``i`` along an axis
covers ``[adaptive_start(i), adaptive_end(i))`` (``_geometry.pxd``).

Global pooling is adaptive pooling to size 1 of each plane viewed as
``(1, 1, D*H*W)``; an output of size 1 everywhere takes the global loops,
which read each plane (or each channel block) once, contiguously.
``naive=True`` forces the general loops so the tests can compare the two.
Max backward is max pooling's scatter (``_max.max_pool_backward``).
"""

cimport numpy as cnp
from cython.parallel cimport prange, threadid
from libc.stdint cimport (
    INT32_MAX, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t,
)
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from cypool._dtypes cimport beats, lowest, max_t, pick_at, real_t
from cypool._geometry cimport adaptive_end, adaptive_start, ceil_div
from cypool._kernel_common cimport (
    Tables, Window, free_tables, max_by_lanes, set_axis, window_at, window_max_cl, window_size,
    window_step,
)
from cypool._simd cimport (
    CY_SUM_MAX_TAPS, cy_avg_col_lanes_f32, cy_avg_col_lanes_f64, cy_channel_argmax_f32,
    cy_channel_argmax_f64, cy_channel_maxima_f32, cy_channel_maxima_f64, cy_from_lanes_f32,
    cy_from_lanes_f64, cy_simd_cap, cy_simd_level, cy_to_lanes_f32, cy_to_lanes_f64,
    cy_wide_sum_f32, cy_wide_sum_f64, cy_window_max_f32, cy_window_max_f64, cy_window_sums_f32,
    cy_window_sums_f64, cy_window_value_f32, cy_window_value_f64,
)

cnp.import_array()

cdef enum:
    # Channels of one channels-last job (see _max.pyx): long contiguous runs, narrowed down
    # (to the minimum) while the threads would have too few jobs.
    MAX_CHANNEL_BLOCK = 512
    MIN_CHANNEL_BLOCK = 64
    # float32 planes of fewer values than this sum in eight partial sums
    # (cypool_small_sum), larger ones in blocks of WIDE_BLOCK values in 32
    # partial sums, the block sums added in double.
    SUM_BLOCK = 128
    WIDE_BLOCK = 1024
    PIXEL_BLOCK = 8
    # Largest input row (elements) the channels-first column paths keep per thread.
    SCRATCH_LIMIT = 1 << 22
    # Channels-first planes of at most SMALL_PLANE elements with rows of fewer
    # than LANES windows: adaptive max pooled LANES planes at a time (_max_small;
    # _simd.h's cy_max_lanes takes 16).
    LANES = 16
    SMALL_PLANE = 1024
    # Global max planes of at least this many float values take vector maxima
    # (_simd.h's cy_window_max), smaller ones four planes of scalar selects.
    VECTOR_PLANE = 4
    # Average windows of at least this many columns, in planes larger than
    # SMALL_PLANE, add in partial sums (see _avg_plane_columns).
    WIDE_WINDOW = 16


cdef struct Shape:
    Py_ssize_t in_size[3]     # D, H, W of the input
    Py_ssize_t out_size[3]    # OD, OH, OW of the output


cdef int _make_windows(const Shape* s, Tables* t) noexcept nogil:
    """``t.first`` / ``t.count``: start and length of every adaptive window
    (``padded`` unused); -1 when out of memory."""
    cdef Py_ssize_t total = s.out_size[0] + s.out_size[1] + s.out_size[2]
    cdef Py_ssize_t a, o, start
    t.block = <Py_ssize_t*> malloc((2 * total + 1) * sizeof(Py_ssize_t))
    if t.block == NULL:
        return -1
    t.first = t.block
    t.count = t.block + total
    t.padded = NULL
    t.offset[0] = 0
    t.offset[1] = s.out_size[0]
    t.offset[2] = s.out_size[0] + s.out_size[1]
    for a in range(3):
        t.out_size[a] = s.out_size[a]
        t.full_lo[a] = 0
        t.full_hi[a] = 0
        for o in range(s.out_size[a]):
            start = adaptive_start(o, s.in_size[a], s.out_size[a])
            t.first[t.offset[a] + o] = start
            t.count[t.offset[a] + o] = adaptive_end(o, s.in_size[a], s.out_size[a]) - start
    return 0


cdef struct Jobs:
    Py_ssize_t block        # channels per job
    Py_ssize_t per_batch    # jobs per batch element
    Py_ssize_t count        # jobs in all


cdef inline Jobs _channel_jobs(Py_ssize_t lead, Py_ssize_t channels, int nthreads) noexcept nogil:
    """Channels-last work as (batch element, channel block) jobs, at least
    four per thread where the channels allow."""
    cdef Jobs jobs
    jobs.block = MAX_CHANNEL_BLOCK
    while jobs.block > MIN_CHANNEL_BLOCK and lead * ceil_div(channels, jobs.block) < 4 * nthreads:
        jobs.block = jobs.block // 2
    jobs.per_batch = ceil_div(channels, jobs.block)
    jobs.count = lead * jobs.per_batch
    return jobs


cdef inline Py_ssize_t _job_channels(const Jobs* jobs, Py_ssize_t job, Py_ssize_t channels,
                                     Py_ssize_t* c0, Py_ssize_t* width) noexcept nogil:
    """First channel and width of ``job``; returns its batch element."""
    c0[0] = (job % jobs.per_batch) * jobs.block
    width[0] = jobs.block if c0[0] + jobs.block < channels else channels - c0[0]
    return job // jobs.per_batch


cdef inline bint _is_global(const Shape* s) noexcept nogil:
    return s.out_size[0] == 1 and s.out_size[1] == 1 and s.out_size[2] == 1


cdef inline Py_ssize_t _plane(const Py_ssize_t* sizes) noexcept nogil:
    return sizes[0] * sizes[1] * sizes[2]


cdef int _fill_shape(Shape* s, tuple in_size, tuple out_size) except -1:
    cdef Py_ssize_t a
    for a in range(3):
        s.in_size[a] = in_size[a]
        s.out_size[a] = out_size[a]
    return 0


# ------------------------------------------------------------ average forward

cdef void _avg_plane(const real_t* x, real_t* out, const Shape* s,
                     const Tables* t) noexcept nogil:
    """One channels-first plane, any windows: the general loop."""
    cdef Py_ssize_t H = s.in_size[1], W = s.in_size[2]
    cdef Py_ssize_t o, id_, ih, iw
    cdef Window w
    cdef real_t total
    cdef const real_t* row
    for o in range(_plane(s.out_size)):
        window_step(t, o, &w)
        total = 0
        for id_ in range(w.start[0], w.start[0] + w.count[0]):
            for ih in range(w.start[1], w.start[1] + w.count[1]):
                row = x + (id_ * H + ih) * W
                for iw in range(w.start[2], w.start[2] + w.count[2]):
                    total = total + row[iw]
        out[o] = total / <real_t> window_size(&w)


# Channels-first column paths.  The windows of one output row share their
# input rows, so pass 1 reduces those rows element-wise into one row of W
# (contiguous loops that gcc vectorises) and pass 2 reduces that row over each
# window's columns: the input is read once, in order, and pass 2 touches W
# values per output row instead of a window per output.

cdef inline bint _column_path(const Shape* s, bint naive) noexcept nogil:
    """Whether the column paths take these planes (scratch of one row per
    thread, row numbers as int32)."""
    return (not naive and s.in_size[2] <= SCRATCH_LIMIT
            and s.in_size[0] * s.in_size[1] < INT32_MAX)


cdef inline const real_t* _row_sums(const real_t* x, real_t* col, const Shape* s,
                                    const Window* w) noexcept nogil:
    """Element-wise sum of the window's input rows, in scan order; returns the
    row itself when the window has one row (``col``: scratch of W)."""
    cdef Py_ssize_t H = s.in_size[1], W = s.in_size[2]
    cdef Py_ssize_t id_, ih, iw, n = 0
    cdef const real_t* row
    cdef const real_t* first = x + (w.start[0] * H + w.start[1]) * W
    if w.count[0] * w.count[1] == 1:
        return first
    for id_ in range(w.start[0], w.start[0] + w.count[0]):
        for ih in range(w.start[1], w.start[1] + w.count[1]):
            row = x + (id_ * H + ih) * W
            if n == 1:
                for iw in range(W):
                    col[iw] = first[iw] + row[iw]
            elif n > 1:
                for iw in range(W):
                    col[iw] = col[iw] + row[iw]
            n += 1
    return col


cdef void _avg_plane_columns(const real_t* x, real_t* out, const Shape* s, const Tables* t,
                             real_t* col) noexcept nogil:
    """One channels-first plane by the column path; ``col``: scratch of W.
    Each window adds its row sums in order, except windows of at least
    WIDE_WINDOW columns in planes too large for the lanes (which copy the
    in-order additions): partial sums, eight for float32 (cypool_small_sum),
    16 for float64 (_simd.h's cy_wide_sum_f64), the same on every CPU, so
    that long rows are not one long chain of additions."""
    cdef Py_ssize_t OH = s.out_size[1], OW = s.out_size[2]
    cdef const Py_ssize_t* first_w = t.first + t.offset[2]
    cdef const Py_ssize_t* count_w = t.count + t.offset[2]
    cdef Py_ssize_t od, oh, ow, iw, o = 0
    cdef Window w
    cdef const real_t* sums
    cdef real_t total
    cdef Py_ssize_t rows
    cdef bint wide = _plane(s.in_size) > SMALL_PLANE
    cdef Py_ssize_t k = s.in_size[2] // OW
    cdef bint uniform = s.in_size[2] % OW == 0 and k > 1 and not (wide and k >= WIDE_WINDOW)
    cdef real_t divisor
    for od in range(s.out_size[0]):
        set_axis(t, &w, 0, od)
        for oh in range(OH):
            set_axis(t, &w, 1, oh)
            sums = _row_sums(x, col, s, &w)
            rows = w.count[0] * w.count[1]
            if uniform:
                # windows of k columns at stride k: chains of scalar additions
                # from the first column, then + 0, which is what starting from
                # 0 gives (it differs only in a -0.0 total, which 0 + ... makes 0)
                if real_t is float:
                    cy_window_sums_f32(sums, k, k, out + o, OW)
                else:
                    cy_window_sums_f64(sums, k, k, out + o, OW)
                divisor = <real_t> (rows * k)
                for ow in range(OW):
                    out[o + ow] = (out[o + ow] + 0) / divisor
                o += OW
                continue
            for ow in range(OW):
                if wide and count_w[ow] >= WIDE_WINDOW:
                    if real_t is float:
                        total = cypool_small_sum(sums + first_w[ow], count_w[ow])
                    else:
                        total = cy_wide_sum_f64(sums + first_w[ow], count_w[ow])
                    out[o] = total / <real_t> (rows * count_w[ow])
                    o += 1
                    continue
                total = 0
                for iw in range(first_w[ow], first_w[ow] + count_w[ow]):
                    total = total + sums[iw]
                out[o] = total / <real_t> (rows * count_w[ow])
                o += 1


cdef extern from *:
    """
    /* Sum of float32 values in eight partial sums (two vectors), the tail
       into the first, then ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)):
       a small plane of fewer than SUM_BLOCK values, or a long adaptive
       window.  Written with SSE2 intrinsics where there are some: from the
       Cython loop gcc makes scalar adds and shuffles, three times slower on
       the small planes of a global pool. */
    #if defined(__SSE2__) || defined(_M_X64)
    #include <emmintrin.h>
    static CYTHON_INLINE float cypool_small_sum(const float* v, Py_ssize_t n)
    {
        __m128 lo = _mm_setzero_ps(), hi = _mm_setzero_ps();
        Py_ssize_t i, body = n - n % 8;
        for (i = 0; i < body; i += 8) {
            lo = _mm_add_ps(lo, _mm_loadu_ps(v + i));
            hi = _mm_add_ps(hi, _mm_loadu_ps(v + i + 4));
        }
        for (; i < n; i++)
            lo = _mm_add_ss(lo, _mm_load_ss(v + i));
        /* lanes (a0 + a1, ., a2 + a3, .), then their sum */
        lo = _mm_add_ps(lo, _mm_shuffle_ps(lo, lo, _MM_SHUFFLE(2, 3, 0, 1)));
        hi = _mm_add_ps(hi, _mm_shuffle_ps(hi, hi, _MM_SHUFFLE(2, 3, 0, 1)));
        lo = _mm_add_ss(lo, _mm_movehl_ps(lo, lo));
        hi = _mm_add_ss(hi, _mm_movehl_ps(hi, hi));
        return _mm_cvtss_f32(_mm_add_ss(lo, hi));
    }
    #else
    static CYTHON_INLINE float cypool_small_sum(const float* v, Py_ssize_t n)
    {
        float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        Py_ssize_t i, j, body = n - n % 8;
        for (i = 0; i < body; i += 8)
            for (j = 0; j < 8; j++)
                a[j] += v[i + j];
        for (; i < n; i++)
            a[0] += v[i];
        return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    }
    #endif
    """
    float cypool_small_sum(const float* v, Py_ssize_t n) nogil


def simd_level(cap=None):
    """The vector path of the float32 global sums: 2 AVX2, 1 SSE2, 0 portable C;
    ``cap`` (tests only) lowers it, as ``_max.simd_level``."""
    if cap is not None:
        return cy_simd_cap(cap)
    return cy_simd_level()


cdef inline Py_ssize_t _plane_job(Py_ssize_t planes, int nthreads) noexcept nogil:
    """Planes of one channels-first global job: four jobs a thread, at most
    64 planes (a small plane is less work than a job's overhead), at least one."""
    cdef Py_ssize_t size = (planes + 4 * nthreads - 1) // (4 * nthreads)
    return 1 if size < 1 else (64 if size > 64 else size)


cdef inline double _plane_sum(const real_t* v, Py_ssize_t n) noexcept nogil:
    """Sum of a whole plane in independent partial sums (_simd.h's
    cy_wide_sum: the adds pipeline and vectorise instead of waiting on one
    another; fewer would hold a long plane below memory speed), the same bits
    at every vector level.  float32: blocks of WIDE_BLOCK in 32 partial sums,
    the block sums added in double so that long planes keep their precision;
    float64: the plane in 16."""
    cdef double total = 0
    cdef Py_ssize_t block, done = 0
    if real_t is double:
        return cy_wide_sum_f64(v, n)
    while done < n:
        block = n - done if n - done < WIDE_BLOCK else WIDE_BLOCK
        total += cy_wide_sum_f32(v + done, block)
        done += block
    return total


cdef inline void _plane_means(const real_t* x, real_t* out, Py_ssize_t n, double size,
                              Py_ssize_t first, Py_ssize_t last) noexcept nogil:
    """Means of planes [first, last) of ``n`` values each."""
    cdef Py_ssize_t p
    for p in range(first, last):
        if real_t is float and n < SUM_BLOCK:
            out[p] = <real_t> (<double> cypool_small_sum(x + p * n, n) / size)
        else:
            out[p] = <real_t> (_plane_sum(x + p * n, n) / size)


cdef void _global_avg_block_cl(const real_t* x, real_t* out, Py_ssize_t job, const Jobs* jobs,
                               Py_ssize_t channels, Py_ssize_t plane) noexcept nogil:
    """Channels ``[c0, c0 + width)`` of one batch element, channels-last, the
    channel loop innermost; PIXEL_BLOCK pixels summed in the input type, then
    added into double totals (see :func:`_plane_sum`)."""
    cdef Py_ssize_t c0, width
    cdef Py_ssize_t n = _job_channels(jobs, job, channels, &c0, &width)
    cdef real_t partial[MAX_CHANNEL_BLOCK]
    cdef double total[MAX_CHANNEL_BLOCK]
    cdef const real_t* row
    cdef Py_ssize_t p, c, block = 0, end
    for c in range(width):
        total[c] = 0
        partial[c] = 0
    while block < plane:
        end = block + PIXEL_BLOCK if block + PIXEL_BLOCK < plane else plane
        p = block
        block = end
        # four pixels a pass over the partial sums, added in pixel order
        while p + 4 <= end:
            row = x + (n * plane + p) * channels + c0
            for c in range(width):
                partial[c] = (((partial[c] + row[c]) + row[channels + c])
                              + row[2 * channels + c]) + row[3 * channels + c]
            p += 4
        for p in range(p, end):
            row = x + (n * plane + p) * channels + c0
            for c in range(width):
                partial[c] = partial[c] + row[c]
        for c in range(width):
            total[c] += partial[c]
            partial[c] = 0
    for c in range(width):
        out[n * channels + c0 + c] = <real_t> (total[c] / plane)


cdef void _avg_pixel_cl(const real_t* x, real_t* out, Py_ssize_t pixel, Py_ssize_t channels,
                        const Shape* s, const Tables* t) noexcept nogil:
    """One channels-last output pixel, all channels; channel loop innermost."""
    cdef Py_ssize_t D = s.in_size[0], H = s.in_size[1], W = s.in_size[2]
    cdef Py_ssize_t id_, ih, iw, c
    cdef Window w
    cdef real_t* o = out + pixel * channels
    cdef const real_t* row
    window_at(t, pixel, &w)
    cdef real_t scale = <real_t> window_size(&w)
    for c in range(channels):
        o[c] = 0
    for id_ in range(w.start[0], w.start[0] + w.count[0]):
        for ih in range(w.start[1], w.start[1] + w.count[1]):
            for iw in range(w.start[2], w.start[2] + w.count[2]):
                row = x + (((w.batch * D + id_) * H + ih) * W + iw) * channels
                for c in range(channels):
                    o[c] = o[c] + row[c]
    for c in range(channels):
        o[c] = o[c] / scale


# Channels-last fast paths: one output row (od, oh) of one batch element per
# job, reading each of its window rows once from left to right.  Pixel by
# pixel, a window's rows are separate runs of its width in C-vectors, each
# starting cold in a new page where the prefetchers stop; in row order the
# reads are sequential.  Every output still adds its elements in scan order.

cdef inline Py_ssize_t _row_job(const Tables* t, const Shape* s, Py_ssize_t job,
                                Window* w) noexcept nogil:
    """Depth and height extents of output row ``job`` (over (N, OD, OH)) in
    ``w``; returns its batch element."""
    set_axis(t, w, 1, job % s.out_size[1])
    job = job // s.out_size[1]
    set_axis(t, w, 0, job % s.out_size[0])
    return job // s.out_size[0]


cdef void _avg_row_cl(const real_t* x, real_t* out, Py_ssize_t job, Py_ssize_t channels,
                      const Shape* s, const Tables* t) noexcept nogil:
    """Output row ``job`` (over (N, OD, OH)), channels-last, accumulated in place."""
    cdef Py_ssize_t D = s.in_size[0], H = s.in_size[1], W = s.in_size[2], OW = s.out_size[2]
    cdef const Py_ssize_t* first_w = t.first + t.offset[2]
    cdef const Py_ssize_t* count_w = t.count + t.offset[2]
    cdef Py_ssize_t id_, ih, iw, ow, c
    cdef Window w
    cdef Py_ssize_t n = _row_job(t, s, job, &w)
    cdef real_t* o = out + job * OW * channels
    cdef real_t* acc
    cdef const real_t* row
    cdef const real_t* src
    cdef real_t scale
    for c in range(OW * channels):
        o[c] = 0
    for id_ in range(w.start[0], w.start[0] + w.count[0]):
        for ih in range(w.start[1], w.start[1] + w.count[1]):
            row = x + ((n * D + id_) * H + ih) * W * channels
            for ow in range(OW):
                acc = o + ow * channels
                for iw in range(first_w[ow], first_w[ow] + count_w[ow]):
                    src = row + iw * channels
                    for c in range(channels):
                        acc[c] = acc[c] + src[c]
    for ow in range(OW):
        scale = <real_t> (w.count[0] * w.count[1] * count_w[ow])
        acc = o + ow * channels
        for c in range(channels):
            acc[c] = acc[c] / scale


cdef int _avg_forward(const real_t* x, real_t* out, Py_ssize_t lead, Py_ssize_t channels,
                      bint channels_last, const Shape* s, int nthreads,
                      bint naive) noexcept nogil:
    """``lead`` is planes (channels-first) or batch (channels-last)."""
    cdef Tables t
    cdef Py_ssize_t p, pixels
    cdef Jobs jobs
    cdef Py_ssize_t in_plane = _plane(s.in_size), out_plane = _plane(s.out_size)
    cdef Py_ssize_t rows, blocks, size
    cdef real_t* col
    cdef int status
    if _is_global(s) and not naive:
        if not channels_last:
            size = _plane_job(lead, nthreads)
            blocks = (lead + size - 1) // size
            if nthreads > 1:
                for p in prange(blocks, schedule='guided', num_threads=nthreads):
                    _plane_means(x, out, in_plane, <double> in_plane, p * size,
                                 (p + 1) * size if (p + 1) * size < lead else lead)
            else:
                _plane_means(x, out, in_plane, <double> in_plane, 0, lead)
        else:
            jobs = _channel_jobs(lead, channels, nthreads)
            if nthreads > 1:
                for p in prange(jobs.count, schedule='guided', num_threads=nthreads):
                    _global_avg_block_cl(x, out, p, &jobs, channels, in_plane)
            else:
                for p in range(jobs.count):
                    _global_avg_block_cl(x, out, p, &jobs, channels, in_plane)
        return 0
    if _make_windows(s, &t) != 0:
        return -1
    if not channels_last and _column_path(s, naive) and _max_by_lanes(s):
        status = _avg_small(x, out, lead, s, &t, nthreads)
        free_tables(&t)
        return status
    if not channels_last and _column_path(s, naive):
        col = <real_t*> malloc(nthreads * (s.in_size[2] + 16) * sizeof(real_t))
        if col == NULL:
            free_tables(&t)
            return -1
        if nthreads > 1:
            for p in prange(lead, schedule='guided', num_threads=nthreads):
                _avg_plane_columns(x + p * in_plane, out + p * out_plane, s, &t,
                                   col + threadid() * (s.in_size[2] + 16))
        else:
            for p in range(lead):
                _avg_plane_columns(x + p * in_plane, out + p * out_plane, s, &t, col)
        free(col)
    elif not channels_last:
        if nthreads > 1:
            for p in prange(lead, schedule='guided', num_threads=nthreads):
                _avg_plane(x + p * in_plane, out + p * out_plane, s, &t)
        else:
            for p in range(lead):
                _avg_plane(x + p * in_plane, out + p * out_plane, s, &t)
    elif not naive:
        rows = lead * s.out_size[0] * s.out_size[1]
        if nthreads > 1:
            for p in prange(rows, schedule='guided', num_threads=nthreads):
                _avg_row_cl(x, out, p, channels, s, &t)
        else:
            for p in range(rows):
                _avg_row_cl(x, out, p, channels, s, &t)
    else:
        pixels = lead * out_plane
        if nthreads > 1:
            for p in prange(pixels, schedule='guided', num_threads=nthreads):
                _avg_pixel_cl(x, out, p, channels, s, &t)
        else:
            for p in range(pixels):
                _avg_pixel_cl(x, out, p, channels, s, &t)
    free_tables(&t)
    return 0


def adaptive_avg_forward(cnp.ndarray x, cnp.ndarray out, tuple in_size, tuple out_size,
                         bint channels_last, int nthreads, bint naive=False):
    """Fill ``out`` with the adaptive window means of ``x``.

    x: IN, float32/float64, ``(planes, D, H, W)`` or ``(N, D, H, W, C)``.
    out: OUT, same dtype and layout with the output sizes.
    in_size, out_size: the three spatial sizes (D, H, W) of ``x`` and ``out``.
    """
    cdef Shape s
    _fill_shape(&s, in_size, out_size)
    cdef Py_ssize_t lead = x.shape[0]
    cdef Py_ssize_t channels = x.shape[4] if channels_last else 1
    cdef void* xp = cnp.PyArray_DATA(x)
    cdef void* op = cnp.PyArray_DATA(out)
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef int status = 0
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            status = _avg_forward[float](<float*> xp, <float*> op, lead, channels, channels_last, &s, nthreads, naive)
        elif typenum == cnp.NPY_FLOAT64:
            status = _avg_forward[double](<double*> xp, <double*> op, lead, channels, channels_last, &s, nthreads, naive)
        else:
            status = -2
    if status == -1:
        raise MemoryError("cypool: out of memory for window tables")
    if status == -2:
        raise TypeError(f"adaptive average pooling kernel has no loop for dtype {x.dtype}")


# ---------------------------------------------------------------- max forward

cdef void _max_plane(const max_t* x, max_t* out, int64_t* ind, const Shape* s,
                     const Tables* t) noexcept nogil:
    """One channels-first plane, any windows: the general loop (ties keep the
    first maximum, the last NaN wins)."""
    cdef Py_ssize_t H = s.in_size[1], W = s.in_size[2]
    cdef Py_ssize_t o, id_, ih, iw, pos
    cdef Window w
    cdef max_t best, value
    cdef const max_t* row
    for o in range(_plane(s.out_size)):
        window_step(t, o, &w)
        best = lowest(x)
        pos = (w.start[0] * H + w.start[1]) * W + w.start[2]
        for id_ in range(w.start[0], w.start[0] + w.count[0]):
            for ih in range(w.start[1], w.start[1] + w.count[1]):
                row = x + (id_ * H + ih) * W
                for iw in range(w.start[2], w.start[2] + w.count[2]):
                    value = row[iw]
                    if beats(value, best):
                        best = value
                        pos = (id_ * H + ih) * W + iw
        out[o] = best
        if ind != NULL:
            ind[o] = pos


cdef inline void _fold_rows(const max_t* a, int32_t ra, const max_t* b, int32_t rb,
                            max_t* col, int32_t* col_row, Py_ssize_t W) noexcept nogil:
    """Fold row ``a`` (row number ``ra``), then row ``b`` unless NULL, into the
    running maxima: two rows per pass over them, which stay in registers
    between the two (half the loads and stores of one pass per row)."""
    cdef Py_ssize_t iw
    cdef max_t value, current
    cdef int32_t current_row
    cdef bint take
    # every load ahead of the selects, or gcc will not if-convert
    if b == NULL:
        for iw in range(W):
            value = a[iw]
            current = col[iw]
            current_row = col_row[iw]
            take = beats(value, current)
            col[iw] = value if take else current
            col_row[iw] = ra if take else current_row
        return
    for iw in range(W):
        value = a[iw]
        current = col[iw]
        current_row = col_row[iw]
        take = beats(value, current)
        current = value if take else current
        current_row = ra if take else current_row
        value = b[iw]
        take = beats(value, current)
        col[iw] = value if take else current
        col_row[iw] = rb if take else current_row


cdef inline void _row_maxima(const max_t* x, max_t* col, int32_t* col_row, const Shape* s,
                             const Window* w) noexcept nogil:
    """Element-wise maxima of the window's input rows in scan order
    (``beats``: the first maximum, the last NaN), and the row each came from."""
    cdef Py_ssize_t H = s.in_size[1], W = s.in_size[2]
    cdef Py_ssize_t id_, ih, iw
    cdef int32_t r, pending_row = 0
    cdef const max_t* row
    cdef const max_t* pending = NULL
    cdef bint first = True
    for id_ in range(w.start[0], w.start[0] + w.count[0]):
        for ih in range(w.start[1], w.start[1] + w.count[1]):
            r = <int32_t> (id_ * H + ih)
            row = x + r * W
            if first:
                for iw in range(W):
                    col[iw] = row[iw]
                    col_row[iw] = r
                first = False
            elif pending == NULL:
                pending = row
                pending_row = r
            else:
                _fold_rows(pending, pending_row, row, r, col, col_row, W)
                pending = NULL
    if pending != NULL:
        _fold_rows(pending, pending_row, NULL, 0, col, col_row, W)


cdef inline void _row_values(const max_t* x, max_t* col, max_t* probe, const Shape* s,
                             const Window* w) noexcept nogil:
    """Values alone of :func:`_row_maxima` for floats: plain maxima, each
    select keeping the earlier of equals, and per column a probe that sums
    the column (NaN once a NaN has passed, or infinities of both signs).  A
    row a pass: the window's rows are one run of memory, read in order (four
    rows a pass, as cy_channel_maxima takes them, measured slower here in
    float64)."""
    cdef Py_ssize_t H = s.in_size[1], W = s.in_size[2]
    cdef Py_ssize_t id_, ih, iw
    cdef const max_t* row
    cdef bint first = True
    cdef max_t a
    for id_ in range(w.start[0], w.start[0] + w.count[0]):
        for ih in range(w.start[1], w.start[1] + w.count[1]):
            row = x + (id_ * H + ih) * W
            if first:
                for iw in range(W):
                    col[iw] = row[iw]
                    probe[iw] = row[iw]
                first = False
                continue
            for iw in range(W):
                a = row[iw]
                col[iw] = a if a > col[iw] else col[iw]
                probe[iw] = probe[iw] + a


cdef inline max_t _columns_value(const max_t* x, const max_t* col, const max_t* probe,
                                 const Shape* s, const Window* w, Py_ssize_t start,
                                 Py_ssize_t count) noexcept nogil:
    """The window's maximum over columns ``[start, start + count)`` of
    :func:`_row_values`.  Without a NaN, every element equal to a nonzero
    maximum has its bits; a window whose probes show a NaN, or with a zero
    maximum (whose sign is the first zero's in scan order), is scanned again
    in order."""
    cdef Py_ssize_t H = s.in_size[1], W = s.in_size[2]
    cdef Py_ssize_t iw, id_, ih
    cdef max_t best = col[start], seen = probe[start], v
    cdef const max_t* row
    for iw in range(start + 1, start + count):
        v = col[iw]
        best = v if v > best else best
        seen = seen + probe[iw]
    if seen == seen and best != 0:
        return best
    best = lowest(x)
    for id_ in range(w.start[0], w.start[0] + w.count[0]):
        for ih in range(w.start[1], w.start[1] + w.count[1]):
            row = x + (id_ * H + ih) * W
            for iw in range(start, start + count):
                v = row[iw]
                best = v if beats(v, best) else best
    return best


cdef inline void _columns_max(const max_t* col, const int32_t* col_row, Py_ssize_t W,
                              Py_ssize_t start, Py_ssize_t count, max_t* value,
                              int64_t* index) noexcept nogil:
    """The window's maximum over columns ``[start, start + count)`` of the row
    maxima, as the scan order would find it: among equal values the smallest
    (row, column), among NaNs the largest."""
    cdef Py_ssize_t iw, best_col = start
    cdef max_t best = col[start], v
    cdef int32_t best_row = col_row[start], r
    cdef bint take
    for iw in range(start + 1, start + count):
        v = col[iw]
        r = col_row[iw]
        if v != v:
            take = best == best or r >= best_row
        elif best != best:
            take = False
        else:
            take = v > best or (v == best and r < best_row)
        if take:
            best = v
            best_row = r
            best_col = iw
    value[0] = best
    index[0] = <int64_t> best_row * W + best_col


cdef inline max_t _row_window_max(const max_t* row, Py_ssize_t start, Py_ssize_t count,
                                  int32_t* at) noexcept nogil:
    """The maximum of ``row[start : start + count]`` by ``beats`` (the first
    maximum, the last NaN), its column in ``at``: _simd.h's cy_window_max for
    floats, else one element at a time without branches on the data.
    Starting from the first element is starting from ``lowest`` with it as
    the index: it beats or equals it."""
    cdef Py_ssize_t i
    cdef max_t best
    if max_t is float:
        return cy_window_max_f32(row, start, count, at)
    elif max_t is double:
        return cy_window_max_f64(row, start, count, at)
    else:
        best = row[start]
        at[0] = <int32_t> start
        for i in range(start + 1, start + count):
            best = pick_at(best, row[i], at, <int32_t> i)
        return best


cdef inline max_t _row_window_value(const max_t* row, Py_ssize_t start,
                                    Py_ssize_t count) noexcept nogil:
    """The value of :func:`_row_window_max` (cy_window_value for floats)."""
    cdef int32_t unused
    if max_t is float:
        return cy_window_value_f32(row, start, count)
    elif max_t is double:
        return cy_window_value_f64(row, start, count)
    else:
        return _row_window_max(row, start, count, &unused)


cdef void _max_plane_columns(const max_t* x, max_t* out, int64_t* ind, const Shape* s,
                             const Tables* t, max_t* col, int32_t* col_row) noexcept nogil:
    """One channels-first plane by the column path; ``col``, ``col_row``: scratch
    of W.  Windows one input row high (1-D planes) are taken from the row."""
    cdef Py_ssize_t OH = s.out_size[1], OW = s.out_size[2], H = s.in_size[1], W = s.in_size[2]
    cdef const Py_ssize_t* first_w = t.first + t.offset[2]
    cdef const Py_ssize_t* count_w = t.count + t.offset[2]
    cdef Py_ssize_t od, oh, ow, r, o = 0
    cdef int64_t at
    cdef int32_t column
    cdef Window w
    for od in range(s.out_size[0]):
        set_axis(t, &w, 0, od)
        for oh in range(OH):
            set_axis(t, &w, 1, oh)
            if w.count[0] * w.count[1] == 1:
                r = w.start[0] * H + w.start[1]
                if ind == NULL:
                    for ow in range(OW):
                        out[o + ow] = _row_window_value(x + r * W, first_w[ow], count_w[ow])
                    o += OW
                    continue
                for ow in range(OW):
                    out[o] = _row_window_max(x + r * W, first_w[ow], count_w[ow], &column)
                    if ind != NULL:
                        ind[o] = r * W + column
                    o += 1
                continue
            if (max_t is float or max_t is double) and ind == NULL:
                # values alone: col holds the row maxima, then their probes
                _row_values(x, col, col + W, s, &w)
                for ow in range(OW):
                    out[o] = _columns_value(x, col, col + W, s, &w, first_w[ow], count_w[ow])
                    o += 1
                continue
            _row_maxima(x, col, col_row, s, &w)
            for ow in range(OW):
                _columns_max(col, col_row, W, first_w[ow], count_w[ow], &out[o], &at)
                if ind != NULL:
                    ind[o] = at
                o += 1


cdef void _global_max_plane(const max_t* x, max_t* out, int64_t* ind,
                            Py_ssize_t plane) noexcept nogil:
    """Maximum of one contiguous plane and its offset."""
    cdef Py_ssize_t i, pos = 0
    cdef max_t best = lowest(x)
    cdef max_t value
    for i in range(plane):
        value = x[i]
        if beats(value, best):
            best = value
            pos = i
    out[0] = best
    if ind != NULL:
        ind[0] = pos


cdef void _global_max_planes(const max_t* x, max_t* out, int64_t* ind, Py_ssize_t plane,
                             Py_ssize_t first, Py_ssize_t last) noexcept nogil:
    """:func:`_global_max_plane` of planes [first, last), four at a time: one
    plane's running maximum is a chain of dependent selects, four independent
    chains keep the pipelines busy (and no branch on the data mispredicts)."""
    cdef Py_ssize_t p, i
    cdef const max_t* a
    cdef const max_t* b
    cdef const max_t* c
    cdef const max_t* d
    cdef max_t va, vb, vc, vd, ba, bb, bc, bd
    cdef Py_ssize_t pa, pb, pc, pd
    cdef bint ta, tb, tc, td
    cdef int32_t column
    p = first
    if (max_t is float or max_t is double) and VECTOR_PLANE <= plane < INT32_MAX:
        # long planes: each one run of _simd.h's vector maxima
        for p in range(first, last):
            a = x + p * plane
            if ind == NULL:
                out[p] = _row_window_value(a, 0, plane)
            else:
                out[p] = _row_window_max(a, 0, plane, &column)
                ind[p] = column
        return
    if not (max_t is float or max_t is double) and ind == NULL and plane >= VECTOR_PLANE:
        # integers, values alone: equal maxima have equal bits, so a plain
        # maximum reduction, which gcc vectorises, in any order
        for p in range(first, last):
            a = x + p * plane
            va = a[0]
            for i in range(1, plane):
                va = a[i] if a[i] > va else va
            out[p] = va
        return
    while p + 4 <= last:
        a = x + p * plane
        b = a + plane
        c = b + plane
        d = c + plane
        ba = bb = bc = bd = lowest(x)
        pa = pb = pc = pd = 0
        for i in range(plane):
            va = a[i]
            vb = b[i]
            vc = c[i]
            vd = d[i]
            ta = beats(va, ba)
            tb = beats(vb, bb)
            tc = beats(vc, bc)
            td = beats(vd, bd)
            ba = va if ta else ba
            bb = vb if tb else bb
            bc = vc if tc else bc
            bd = vd if td else bd
            pa = i if ta else pa
            pb = i if tb else pb
            pc = i if tc else pc
            pd = i if td else pd
        out[p] = ba
        out[p + 1] = bb
        out[p + 2] = bc
        out[p + 3] = bd
        if ind != NULL:
            ind[p] = pa
            ind[p + 1] = pb
            ind[p + 2] = pc
            ind[p + 3] = pd
        p += 4
    for p in range(p, last):
        _global_max_plane(x + p * plane, out + p, ind + p if ind != NULL else NULL, plane)


# Running offsets of the channels-last maxima: int32 for values of 32 bits or
# fewer while the plane's offsets fit, so that a float32 select and its
# offset's are the same width and gcc vectorises the pair (with int64 offsets
# it does not: 4x slower), else int64 (float64's own width).
ctypedef fused index_t:
    int32_t
    int64_t


cdef inline void _max_into(const max_t* row, max_t* best, index_t* at, index_t pos,
                           Py_ssize_t width) noexcept nogil:
    """Fold one channels-last pixel (``width`` channels at ``row``, plane offset
    ``pos``) into running maxima and, unless ``at`` is NULL, their offsets;
    branch-free selects over the contiguous run so they vectorise."""
    cdef Py_ssize_t c
    cdef max_t value
    cdef bint take
    if at == NULL:
        for c in range(width):
            value = row[c]
            best[c] = value if beats(value, best[c]) else best[c]
    else:
        for c in range(width):
            value = row[c]
            take = beats(value, best[c])
            best[c] = value if take else best[c]
            at[c] = pos if take else at[c]


cdef void _global_max_block_cl(const max_t* x, max_t* out, int64_t* ind, Py_ssize_t job,
                               const Jobs* jobs, Py_ssize_t channels,
                               Py_ssize_t plane) noexcept nogil:
    """Channels ``[c0, c0 + width)`` of one batch element, channels-last."""
    cdef Py_ssize_t c0, width
    cdef Py_ssize_t n = _job_channels(jobs, job, channels, &c0, &width)
    cdef max_t* best = out + n * channels + c0
    cdef int64_t* at = ind + n * channels + c0 if ind != NULL else NULL
    cdef const max_t* src = x + n * plane * channels + c0
    cdef int32_t at32[MAX_CHANNEL_BLOCK]
    cdef Py_ssize_t c, done
    if (max_t is float or max_t is double) and at == NULL:
        _global_value_block_cl(src, best, channels, plane, width)
        return
    for c in range(width):
        best[c] = lowest(x)
    if at != NULL and sizeof(max_t) <= 4 and plane <= INT32_MAX:
        for c in range(width):
            at32[c] = 0
        # the whole vectors of channels through _simd.h, the rest here
        done = 0
        if max_t is float:
            done = cy_channel_argmax_f32(src, best, at32, channels, plane, width)
        _global_scan_cl(src + done, channels, best + done, at32 + done, plane, width - done)
        for c in range(width):
            at[c] = at32[c]
        return
    if at != NULL:
        for c in range(width):
            at[c] = 0
    done = 0
    if max_t is double and at != NULL:
        done = cy_channel_argmax_f64(src, best, at, channels, plane, width)
    _global_scan_cl(src + done, channels, best + done,
                    at + done if at != NULL else NULL, plane, width - done)


cdef inline void _global_scan_cl(const max_t* x, Py_ssize_t channels, max_t* best,
                                 index_t* at, Py_ssize_t plane, Py_ssize_t width) noexcept nogil:
    """Fold the ``plane`` pixels at ``x`` into ``best`` and ``at`` (NULL: values
    alone), two pixels per pass over the running maxima, which stay in
    registers between the two: half the loads and stores."""
    cdef Py_ssize_t p
    for p in range(0, plane - 1, 2):
        _max_pair_into(x + p * channels, channels, best, at, <index_t> p, width)
    if plane % 2:
        _max_into(x + (plane - 1) * channels, best, at, <index_t> (plane - 1), width)


cdef void _global_value_block_cl(const max_t* x, max_t* best, Py_ssize_t channels,
                                 Py_ssize_t plane, Py_ssize_t width) noexcept nogil:
    """Values alone of :func:`_global_max_block_cl` for floats (``x`` at the
    block's first channel): _simd.h's cy_channel_maxima (plain maxima, each
    select keeping the earlier of equals, as the scan's first of equal
    maxima), then a channel whose sum shows a NaN scanned again in order."""
    cdef max_t probe[MAX_CHANNEL_BLOCK]
    cdef max_t top[MAX_CHANNEL_BLOCK]
    cdef max_t current, value
    cdef Py_ssize_t p, c
    if max_t is float:
        cy_channel_maxima_f32(x, top, probe, channels, plane, width)
    elif max_t is double:
        cy_channel_maxima_f64(x, top, probe, channels, plane, width)
    for c in range(width):
        if probe[c] != probe[c]:
            current = x[c]
            for p in range(1, plane):
                value = x[p * channels + c]
                current = value if beats(value, current) else current
            top[c] = current
        best[c] = top[c]


cdef inline void _max_pair_into(const max_t* row, Py_ssize_t channels, max_t* best, index_t* at,
                                index_t pos, Py_ssize_t width) noexcept nogil:
    """:func:`_max_into` of the pixel at ``row`` (offset ``pos``), then of the next."""
    cdef Py_ssize_t c
    cdef max_t first, second, current
    cdef index_t current_at
    cdef bint take
    # every load ahead of the selects, which fold in scan order (gcc will not
    # vectorise a select whose condition compares another select's result
    # with a third value, so no pairing of the two pixels first)
    if at == NULL:
        for c in range(width):
            first = row[c]
            second = row[channels + c]
            current = best[c]
            current = first if beats(first, current) else current
            best[c] = second if beats(second, current) else current
    else:
        for c in range(width):
            first = row[c]
            second = row[channels + c]
            current = best[c]
            current_at = at[c]
            take = beats(first, current)
            current = first if take else current
            current_at = pos if take else current_at
            take = beats(second, current)
            best[c] = second if take else current
            at[c] = pos + 1 if take else current_at


cdef void _max_pixel_cl(const max_t* x, max_t* out, int64_t* ind, Py_ssize_t pixel,
                        Py_ssize_t channels, const Shape* s, const Tables* t) noexcept nogil:
    """One channels-last output pixel, all channels; channel loop innermost."""
    cdef Py_ssize_t H = s.in_size[1], W = s.in_size[2], in_plane = _plane(s.in_size)
    cdef Py_ssize_t id_, ih, iw, c
    cdef int64_t pos
    cdef Window w
    cdef max_t* o = out + pixel * channels
    cdef int64_t* oi = ind + pixel * channels if ind != NULL else NULL
    window_at(t, pixel, &w)
    for c in range(channels):
        o[c] = lowest(x)
    if oi != NULL:
        for c in range(channels):
            oi[c] = (w.start[0] * H + w.start[1]) * W + w.start[2]
    for id_ in range(w.start[0], w.start[0] + w.count[0]):
        for ih in range(w.start[1], w.start[1] + w.count[1]):
            for iw in range(w.start[2], w.start[2] + w.count[2]):
                pos = (id_ * H + ih) * W + iw
                _max_into(x + (w.batch * in_plane + pos) * channels, o, oi, pos, channels)


cdef void _max_row_cl(const max_t* x, max_t* out, int64_t* ind, Py_ssize_t job,
                      Py_ssize_t channels, const Shape* s, const Tables* t, bint taps,
                      int32_t* at32) noexcept nogil:
    """Output row ``job`` (over (N, OD, OH)), channels-last, in row order (see
    :func:`_avg_row_cl`): by :func:`_max_row_taps_cl` with ``taps``, else by
    the scan.  ``at32``: NULL, or scratch of OW * channels for the scan's
    running offsets (see index_t), widened at the end."""
    cdef Py_ssize_t OW = s.out_size[2], i
    cdef int64_t* oi = ind + job * OW * channels if ind != NULL else NULL
    if taps:
        _max_row_taps_cl(x, out, ind, job, channels, s, t)
        return
    if oi != NULL and at32 != NULL:
        _max_row_scan_cl(x, out, at32, job, channels, s, t)
        for i in range(OW * channels):
            oi[i] = at32[i]
    else:
        _max_row_scan_cl(x, out, oi, job, channels, s, t)


cdef void _max_row_taps_cl(const max_t* x, max_t* out, int64_t* ind, Py_ssize_t job,
                           Py_ssize_t channels, const Shape* s, const Tables* t) noexcept nogil:
    """:func:`_max_row_cl` for windows of at most CY_SUM_MAX_TAPS taps (see
    _taps_fit): each window's channel vectors kept in registers over its taps
    in scan order (_kernel_common's window_max_cl, as channels-last max
    pooling), the channels past the whole vectors tap by tap; the same
    selects, so the same results."""
    cdef Py_ssize_t D = s.in_size[0], H = s.in_size[1], W = s.in_size[2], OW = s.out_size[2]
    cdef const Py_ssize_t* first_w = t.first + t.offset[2]
    cdef const Py_ssize_t* count_w = t.count + t.offset[2]
    cdef Py_ssize_t id_, ih, iw, ow, c, k, r, done
    cdef Window w
    cdef Py_ssize_t n = _row_job(t, s, job, &w)
    cdef const max_t* taps[CY_SUM_MAX_TAPS]
    cdef int64_t tap_pos[CY_SUM_MAX_TAPS]
    cdef max_t* o
    cdef int64_t* oi
    for ow in range(OW):
        k = 0
        for id_ in range(w.start[0], w.start[0] + w.count[0]):
            for ih in range(w.start[1], w.start[1] + w.count[1]):
                for iw in range(first_w[ow], first_w[ow] + count_w[ow]):
                    taps[k] = x + (((n * D + id_) * H + ih) * W + iw) * channels
                    tap_pos[k] = (id_ * H + ih) * W + iw
                    k += 1
        o = out + (job * OW + ow) * channels
        oi = ind + (job * OW + ow) * channels if ind != NULL else NULL
        done = window_max_cl(taps, k, channels, o, tap_pos, oi)
        if done == channels:
            continue
        for c in range(done, channels):
            o[c] = lowest(x)
        if oi != NULL:
            for c in range(done, channels):
                oi[c] = tap_pos[0]
        for r in range(k):
            _max_into(taps[r] + done, o + done, oi + done if oi != NULL else NULL, tap_pos[r],
                      channels - done)


cdef bint _taps_fit(const Shape* s, const Tables* t) noexcept nogil:
    """Whether every window has at most CY_SUM_MAX_TAPS taps (_max_row_taps_cl)."""
    cdef Py_ssize_t a, o, largest, taps = 1
    for a in range(3):
        largest = 0
        for o in range(s.out_size[a]):
            if t.count[t.offset[a] + o] > largest:
                largest = t.count[t.offset[a] + o]
        taps *= largest
    return taps <= CY_SUM_MAX_TAPS


cdef inline void _max_row_scan_cl(const max_t* x, max_t* out, index_t* oi, Py_ssize_t job,
                                  Py_ssize_t channels, const Shape* s,
                                  const Tables* t) noexcept nogil:
    """:func:`_max_row_cl`'s scan, its running offsets in ``oi`` (NULL: none)."""
    cdef Py_ssize_t D = s.in_size[0], H = s.in_size[1], W = s.in_size[2], OW = s.out_size[2]
    cdef const Py_ssize_t* first_w = t.first + t.offset[2]
    cdef const Py_ssize_t* count_w = t.count + t.offset[2]
    cdef Py_ssize_t id_, ih, iw, ow, c
    cdef index_t pos
    cdef Window w
    cdef Py_ssize_t n = _row_job(t, s, job, &w)
    cdef max_t* o = out + job * OW * channels
    cdef const max_t* row
    for ow in range(OW):
        for c in range(channels):
            o[ow * channels + c] = lowest(x)
        if oi != NULL:
            pos = <index_t> ((w.start[0] * H + w.start[1]) * W + first_w[ow])
            for c in range(channels):
                oi[ow * channels + c] = pos
    for id_ in range(w.start[0], w.start[0] + w.count[0]):
        for ih in range(w.start[1], w.start[1] + w.count[1]):
            row = x + ((n * D + id_) * H + ih) * W * channels
            for ow in range(OW):
                for iw in range(first_w[ow], first_w[ow] + count_w[ow]):
                    _max_into(row + iw * channels, o + ow * channels,
                              oi + ow * channels if oi != NULL else NULL,
                              <index_t> ((id_ * H + ih) * W + iw), channels)


# ------------------------------------------ channels-first, small planes
#
# As max pooling's (_max.pyx): LANES small planes transposed side by side,
# every window's taps one LANES-wide vector select each, transposed back.
# Max is exact: the other paths' bits.

# SMALL_PLANE, or lower for the tests (see small_plane_limit)
cdef Py_ssize_t small_plane = SMALL_PLANE


cdef inline bint _max_by_lanes(const Shape* s) noexcept nogil:
    """Whether channels-first planes take :func:`_max_small` (and the averages
    :func:`_avg_lanes`): small (see _max.pyx)."""
    return _plane(s.in_size) <= small_plane and s.out_size[2] < LANES


def small_plane_limit(limit=None):
    """The largest channels-first plane (elements) pooled in lanes; ``limit``
    (tests only) sets it, 0 turns the lanes off so the column paths can be
    checked on small planes, None only reads it (as ``_max.small_plane_limit``)."""
    global small_plane
    if limit is not None:
        small_plane = min(<Py_ssize_t> limit, <Py_ssize_t> SMALL_PLANE)
    return small_plane


cdef int _max_small(const max_t* x, max_t* out, int64_t* ind, Py_ssize_t planes,
                    const Shape* s, const Tables* t, int nthreads) noexcept nogil:
    """All planes in the lanes, LANES per job (_kernel_common's max_by_lanes);
    -1: no memory."""
    cdef Py_ssize_t in_plane = _plane(s.in_size), out_plane = _plane(s.out_size)
    cdef Py_ssize_t H = s.in_size[1], W = s.in_size[2]
    cdef Py_ssize_t a, o, k = 0
    cdef Py_ssize_t id_, ih, iw, taps = 1, along
    cdef Window w
    cdef int status
    # taps of all windows: the product over the axes of their windows' sizes summed
    for a in range(3):
        along = 0
        for o in range(s.out_size[a]):
            along += t.count[t.offset[a] + o]
        taps *= along
    cdef int32_t* tap = <int32_t*> malloc(taps * sizeof(int32_t) + 1)
    cdef int32_t* start = <int32_t*> malloc((out_plane + 1) * sizeof(int32_t))
    if tap == NULL or start == NULL:
        free(tap)
        free(start)
        return -1
    for o in range(out_plane):
        window_step(t, o, &w)
        start[o] = <int32_t> k
        for id_ in range(w.start[0], w.start[0] + w.count[0]):
            for ih in range(w.start[1], w.start[1] + w.count[1]):
                for iw in range(w.start[2], w.start[2] + w.count[2]):
                    tap[k] = <int32_t> ((id_ * H + ih) * W + iw)
                    k += 1
    start[out_plane] = <int32_t> k
    status = max_by_lanes(x, out, ind, planes, in_plane, out_plane, tap, start, nthreads)
    free(tap)
    free(start)
    return status


cdef void _avg_lanes(const real_t* x, real_t* out, Py_ssize_t block, Py_ssize_t planes,
                     const Shape* s, const int32_t* win, const real_t* divisors,
                     real_t* lanes) noexcept nogil:
    """Adaptive averages of planes ``[block * LANES, ...)``, side by side, with
    the column path's additions in its order (so its bits); scratch: in_plane
    + out_plane times LANES values."""
    cdef Py_ssize_t in_plane = _plane(s.in_size), out_plane = _plane(s.out_size)
    cdef Py_ssize_t first = block * LANES
    cdef Py_ssize_t width = planes - first if planes - first < LANES else LANES
    cdef Py_ssize_t plane_step = s.in_size[1] * s.in_size[2], row_step = s.in_size[2]
    cdef real_t* results = lanes + in_plane * LANES
    if real_t is float:
        cy_to_lanes_f32(x + first * in_plane, in_plane, width, lanes)
        cy_avg_col_lanes_f32(lanes, win, plane_step, row_step, out_plane, divisors, results)
        cy_from_lanes_f32(results, out_plane, width, out + first * out_plane)
    else:
        cy_to_lanes_f64(x + first * in_plane, in_plane, width, lanes)
        cy_avg_col_lanes_f64(lanes, win, plane_step, row_step, out_plane, divisors, results)
        cy_from_lanes_f64(results, out_plane, width, out + first * out_plane)


cdef int _avg_small(const real_t* x, real_t* out, Py_ssize_t planes, const Shape* s,
                    const Tables* t, int nthreads) noexcept nogil:
    """All planes by :func:`_avg_lanes`, LANES per job; -1: no memory."""
    cdef Py_ssize_t in_plane = _plane(s.in_size), out_plane = _plane(s.out_size)
    cdef Py_ssize_t H = s.in_size[1], W = s.in_size[2]
    cdef Py_ssize_t room = (in_plane + out_plane) * LANES
    cdef Py_ssize_t jobs = (planes + LANES - 1) // LANES, job, o
    cdef real_t* values = <real_t*> malloc(nthreads * room * sizeof(real_t))
    cdef int32_t* win = <int32_t*> malloc(5 * out_plane * sizeof(int32_t))
    cdef real_t* divisors = <real_t*> malloc(out_plane * sizeof(real_t))
    cdef Window w
    if values == NULL or win == NULL or divisors == NULL:
        free(values)
        free(win)
        free(divisors)
        return -1
    for o in range(out_plane):
        window_step(t, o, &w)
        win[5 * o] = <int32_t> ((w.start[0] * H + w.start[1]) * W + w.start[2])
        win[5 * o + 1] = <int32_t> w.count[0]
        win[5 * o + 2] = <int32_t> w.count[1]
        win[5 * o + 3] = <int32_t> w.count[2]
        win[5 * o + 4] = 0
        divisors[o] = <real_t> (w.count[0] * w.count[1] * w.count[2])  # as the column path
    if nthreads > 1:
        for job in prange(jobs, schedule='guided', num_threads=nthreads):
            _avg_lanes(x, out, job, planes, s, win, divisors, values + threadid() * room)
    else:
        for job in range(jobs):
            _avg_lanes(x, out, job, planes, s, win, divisors, values)
    free(values)
    free(win)
    free(divisors)
    return 0


cdef int _max_forward(const max_t* x, max_t* out, int64_t* ind, Py_ssize_t lead,
                      Py_ssize_t channels, bint channels_last, const Shape* s,
                      int nthreads, bint naive) noexcept nogil:
    """``lead`` is planes (channels-first) or batch (channels-last)."""
    cdef Tables t
    cdef Py_ssize_t p, pixels
    cdef Jobs jobs
    cdef Py_ssize_t in_plane = _plane(s.in_size), out_plane = _plane(s.out_size)
    cdef Py_ssize_t room, rows, blocks, size
    cdef max_t* col
    cdef int32_t* col_row
    cdef int32_t* at32
    cdef bint taps
    cdef int status
    if _is_global(s) and not naive:
        if not channels_last:
            size = _plane_job(lead, nthreads)
            blocks = (lead + size - 1) // size
            if nthreads > 1:
                for p in prange(blocks, schedule='guided', num_threads=nthreads):
                    _global_max_planes(x, out, ind, in_plane, p * size,
                                       (p + 1) * size if (p + 1) * size < lead else lead)
            else:
                _global_max_planes(x, out, ind, in_plane, 0, lead)
        else:
            jobs = _channel_jobs(lead, channels, nthreads)
            if nthreads > 1:
                for p in prange(jobs.count, schedule='guided', num_threads=nthreads):
                    _global_max_block_cl(x, out, ind, p, &jobs, channels, in_plane)
            else:
                for p in range(jobs.count):
                    _global_max_block_cl(x, out, ind, p, &jobs, channels, in_plane)
        return 0
    if _make_windows(s, &t) != 0:
        return -1
    if (max_t is float or max_t is double) and not channels_last and not naive and _max_by_lanes(s):
        status = _max_small(x, out, ind, lead, s, &t, nthreads)
        free_tables(&t)
        return status
    if not channels_last and _column_path(s, naive):
        room = 2 * s.in_size[2] + 16  # the row maxima, then the probes (values alone)
        col = <max_t*> malloc(nthreads * room * sizeof(max_t))
        col_row = <int32_t*> malloc(nthreads * room * sizeof(int32_t))
        if col == NULL or col_row == NULL:
            free(col)
            free(col_row)
            free_tables(&t)
            return -1
        if nthreads > 1:
            for p in prange(lead, schedule='guided', num_threads=nthreads):
                _max_plane_columns(x + p * in_plane, out + p * out_plane,
                                   ind + p * out_plane if ind != NULL else NULL, s, &t,
                                   col + threadid() * room, col_row + threadid() * room)
        else:
            for p in range(lead):
                _max_plane_columns(x + p * in_plane, out + p * out_plane,
                                   ind + p * out_plane if ind != NULL else NULL, s, &t,
                                   col, col_row)
        free(col)
        free(col_row)
    elif not channels_last:
        if nthreads > 1:
            for p in prange(lead, schedule='guided', num_threads=nthreads):
                _max_plane(x + p * in_plane, out + p * out_plane,
                           ind + p * out_plane if ind != NULL else NULL, s, &t)
        else:
            for p in range(lead):
                _max_plane(x + p * in_plane, out + p * out_plane,
                           ind + p * out_plane if ind != NULL else NULL, s, &t)
    elif not naive:
        rows = lead * s.out_size[0] * s.out_size[1]
        room = s.out_size[2] * channels
        taps = (max_t is float or max_t is double) and _taps_fit(s, &t)
        # the scan's running offsets in int32 (see index_t), if they fit and the
        # scratch can be had; else in the int64 result
        at32 = NULL
        if ind != NULL and not taps and sizeof(max_t) <= 4 and in_plane <= INT32_MAX:
            at32 = <int32_t*> malloc(nthreads * room * sizeof(int32_t))
        if nthreads > 1:
            for p in prange(rows, schedule='guided', num_threads=nthreads):
                _max_row_cl(x, out, ind, p, channels, s, &t, taps,
                            at32 + threadid() * room if at32 != NULL else NULL)
        else:
            for p in range(rows):
                _max_row_cl(x, out, ind, p, channels, s, &t, taps, at32)
        free(at32)
    else:
        pixels = lead * out_plane
        if nthreads > 1:
            for p in prange(pixels, schedule='guided', num_threads=nthreads):
                _max_pixel_cl(x, out, ind, p, channels, s, &t)
        else:
            for p in range(pixels):
                _max_pixel_cl(x, out, ind, p, channels, s, &t)
    free_tables(&t)
    return 0


def adaptive_max_forward(cnp.ndarray x, cnp.ndarray out, cnp.ndarray indices, tuple in_size,
                         tuple out_size, bint channels_last, int nthreads, bint naive=False):
    """Fill ``out`` (and ``indices`` unless None) with adaptive window maxima.

    x: IN, C-contiguous ``(planes, D, H, W)`` or ``(N, D, H, W, C)``.
    out: OUT, same layout with the output sizes, same dtype as ``x``.
    indices: OUT, int64 flat offsets inside the input plane, shaped like ``out``, or None.
    """
    cdef Shape s
    _fill_shape(&s, in_size, out_size)
    cdef Py_ssize_t lead = x.shape[0]
    cdef Py_ssize_t channels = x.shape[4] if channels_last else 1
    cdef void* xp = cnp.PyArray_DATA(x)
    cdef void* op = cnp.PyArray_DATA(out)
    cdef int64_t* ip = <int64_t*> cnp.PyArray_DATA(indices) if indices is not None else NULL
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef int status = 0
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            status = _max_forward[float](<float*> xp, <float*> op, ip, lead, channels, channels_last, &s, nthreads, naive)
        elif typenum == cnp.NPY_FLOAT64:
            status = _max_forward[double](<double*> xp, <double*> op, ip, lead, channels, channels_last, &s, nthreads, naive)
        elif typenum == cnp.NPY_INT8:
            status = _max_forward[int8_t](<int8_t*> xp, <int8_t*> op, ip, lead, channels, channels_last, &s, nthreads, naive)
        elif typenum == cnp.NPY_INT16:
            status = _max_forward[int16_t](<int16_t*> xp, <int16_t*> op, ip, lead, channels, channels_last, &s, nthreads, naive)
        elif typenum == cnp.NPY_INT32:
            status = _max_forward[int32_t](<int32_t*> xp, <int32_t*> op, ip, lead, channels, channels_last, &s, nthreads, naive)
        elif typenum == cnp.NPY_INT64:
            status = _max_forward[int64_t](<int64_t*> xp, <int64_t*> op, ip, lead, channels, channels_last, &s, nthreads, naive)
        elif typenum == cnp.NPY_UINT8:
            status = _max_forward[uint8_t](<uint8_t*> xp, <uint8_t*> op, ip, lead, channels, channels_last, &s, nthreads, naive)
        elif typenum == cnp.NPY_UINT16:
            status = _max_forward[uint16_t](<uint16_t*> xp, <uint16_t*> op, ip, lead, channels, channels_last, &s, nthreads, naive)
        elif typenum == cnp.NPY_UINT32:
            status = _max_forward[uint32_t](<uint32_t*> xp, <uint32_t*> op, ip, lead, channels, channels_last, &s, nthreads, naive)
        elif typenum == cnp.NPY_UINT64:
            status = _max_forward[uint64_t](<uint64_t*> xp, <uint64_t*> op, ip, lead, channels, channels_last, &s, nthreads, naive)
        else:
            status = -2
    if status == -1:
        raise MemoryError("cypool: out of memory for window tables")
    if status == -2:
        raise TypeError(f"adaptive max pooling kernel has no loop for dtype {x.dtype}")


# ----------------------------------------------------------- average backward

cdef void _avg_backward_plane(const real_t* grad_out, real_t* grad_in, const Shape* s,
                              const Tables* t) noexcept nogil:
    """Spread each output gradient evenly over its window (accumulating)."""
    cdef Py_ssize_t H = s.in_size[1], W = s.in_size[2]
    cdef Py_ssize_t o, id_, ih, iw
    cdef Window w
    cdef real_t share
    cdef real_t* row
    memset(grad_in, 0, _plane(s.in_size) * sizeof(real_t))
    for o in range(_plane(s.out_size)):
        window_step(t, o, &w)
        share = grad_out[o] / <real_t> window_size(&w)
        for id_ in range(w.start[0], w.start[0] + w.count[0]):
            for ih in range(w.start[1], w.start[1] + w.count[1]):
                row = grad_in + (id_ * H + ih) * W
                for iw in range(w.start[2], w.start[2] + w.count[2]):
                    row[iw] += share


cdef void _avg_backward_rows(const real_t* grad_out, real_t* grad_in, const Shape* s,
                             const Tables* t, real_t* spread) noexcept nogil:
    """:func:`_avg_backward_plane` when the windows along W do not overlap: each
    output row's shares spread once over a row (``spread``), then added to the
    input rows of its windows, the same additions in the same order.  A row's
    first window (the first along D and along H that holds it) stores ``0 +
    share``, so the plane is not zeroed first."""
    cdef Py_ssize_t H = s.in_size[1], W = s.in_size[2]
    cdef Py_ssize_t OD = s.out_size[0], OH = s.out_size[1], OW = s.out_size[2]
    cdef Py_ssize_t od, oh, ow, d, h, iw, d0, d1, h0, h1, fresh_d, fresh_h
    cdef const real_t* go
    cdef real_t* row
    cdef real_t share
    cdef real_t zero = 0
    for od in range(OD):
        d0 = t.first[t.offset[0] + od]
        d1 = d0 + t.count[t.offset[0] + od]
        # rows of D from fresh_d on are in no earlier window along D
        fresh_d = t.first[t.offset[0] + od - 1] + t.count[t.offset[0] + od - 1] if od > 0 else 0
        for oh in range(OH):
            h0 = t.first[t.offset[1] + oh]
            h1 = h0 + t.count[t.offset[1] + oh]
            fresh_h = t.first[t.offset[1] + oh - 1] + t.count[t.offset[1] + oh - 1] if oh > 0 else 0
            go = grad_out + (od * OH + oh) * OW
            for ow in range(OW):
                share = go[ow] / <real_t> (t.count[t.offset[0] + od] * t.count[t.offset[1] + oh]
                                           * t.count[t.offset[2] + ow])
                for iw in range(t.first[t.offset[2] + ow],
                                t.first[t.offset[2] + ow] + t.count[t.offset[2] + ow]):
                    spread[iw] = share
            for d in range(d0, d1):
                for h in range(h0, h1):
                    row = grad_in + (d * H + h) * W
                    if d >= fresh_d and h >= fresh_h:
                        for iw in range(W):
                            row[iw] = zero + spread[iw]
                    else:
                        for iw in range(W):
                            row[iw] += spread[iw]


cdef bint _disjoint(const Shape* s, const Tables* t) noexcept nogil:
    """Whether no two windows along any axis share an input element (adaptive
    windows cover their axis, so then every input element is in one window)."""
    cdef Py_ssize_t a, o
    for a in range(3):
        for o in range(s.out_size[a] - 1):
            if t.first[t.offset[a] + o] + t.count[t.offset[a] + o] > t.first[t.offset[a] + o + 1]:
                return False
    return True


cdef void _avg_backward_disjoint_cl(const real_t* grad_out, real_t* grad_in, Py_ssize_t job,
                                    const Jobs* jobs, Py_ssize_t channels, const Shape* s,
                                    const Tables* t) noexcept nogil:
    """:func:`_avg_backward_block_cl` when the windows are disjoint (see
    _disjoint): each input element is stored once, ``share + 0`` (the bits of
    the general loop's ``0 + share``: -0.0 becomes 0.0), no zeroing pass.  A
    window's shares are divided once; with the block all channels, a window's
    run along W is contiguous and filled by doubling copies of its first pixel."""
    cdef Py_ssize_t H = s.in_size[1], W = s.in_size[2]
    cdef Py_ssize_t in_plane = _plane(s.in_size), out_plane = _plane(s.out_size)
    cdef Py_ssize_t c0, width
    cdef Py_ssize_t n = _job_channels(jobs, job, channels, &c0, &width)
    cdef Py_ssize_t o, id_, ih, iw, c, run, done, step
    cdef Window w
    cdef real_t scale
    cdef real_t share[MAX_CHANNEL_BLOCK]
    cdef real_t* gi = grad_in + n * in_plane * channels + c0
    cdef const real_t* go = grad_out + n * out_plane * channels + c0
    cdef real_t* dst
    for o in range(out_plane):
        window_step(t, o, &w)
        scale = <real_t> window_size(&w)
        for c in range(width):
            share[c] = go[o * channels + c] / scale + 0
        for id_ in range(w.start[0], w.start[0] + w.count[0]):
            for ih in range(w.start[1], w.start[1] + w.count[1]):
                dst = gi + ((id_ * H + ih) * W + w.start[2]) * channels
                if width == channels:
                    memcpy(dst, share, width * sizeof(real_t))
                    run = w.count[2] * channels
                    done = channels
                    while done < run:
                        step = done if done < run - done else run - done
                        memcpy(dst + done, dst, step * sizeof(real_t))
                        done += step
                else:
                    for iw in range(w.count[2]):
                        for c in range(width):
                            dst[iw * channels + c] = share[c]


cdef void _avg_backward_block_cl(const real_t* grad_out, real_t* grad_in, Py_ssize_t job,
                                 const Jobs* jobs, Py_ssize_t channels, const Shape* s,
                                 const Tables* t, bint disjoint) noexcept nogil:
    """Channels ``[c0, c1)`` of one batch element, channels-last: the general
    loop, or with ``disjoint`` (see _disjoint) :func:`_avg_backward_disjoint_cl`."""
    cdef Py_ssize_t H = s.in_size[1], W = s.in_size[2]
    cdef Py_ssize_t in_plane = _plane(s.in_size), out_plane = _plane(s.out_size)
    cdef Py_ssize_t c0, width
    cdef Py_ssize_t n = _job_channels(jobs, job, channels, &c0, &width)
    cdef Py_ssize_t c1 = c0 + width
    cdef Py_ssize_t o, id_, ih, iw, c, p
    cdef Window w
    cdef real_t scale
    cdef real_t* gi = grad_in + n * in_plane * channels
    cdef const real_t* go = grad_out + n * out_plane * channels
    cdef real_t* dst
    cdef const real_t* src
    if disjoint:
        _avg_backward_disjoint_cl(grad_out, grad_in, job, jobs, channels, s, t)
        return
    for p in range(in_plane):
        for c in range(c0, c1):
            gi[p * channels + c] = 0
    for o in range(out_plane):
        window_step(t, o, &w)
        scale = <real_t> window_size(&w)
        src = go + o * channels
        for id_ in range(w.start[0], w.start[0] + w.count[0]):
            for ih in range(w.start[1], w.start[1] + w.count[1]):
                for iw in range(w.start[2], w.start[2] + w.count[2]):
                    dst = gi + ((id_ * H + ih) * W + iw) * channels
                    for c in range(c0, c1):
                        dst[c] += src[c] / scale


cdef int _avg_backward(const real_t* grad_out, real_t* grad_in, Py_ssize_t lead,
                       Py_ssize_t channels, bint channels_last, const Shape* s,
                       int nthreads, bint naive) noexcept nogil:
    cdef Tables t
    cdef Py_ssize_t p
    cdef Jobs jobs
    cdef bint disjoint
    cdef Py_ssize_t in_plane = _plane(s.in_size), out_plane = _plane(s.out_size)
    if _make_windows(s, &t) != 0:
        return -1
    cdef real_t* spread = NULL
    if not channels_last and not naive and s.in_size[2] % s.out_size[2] == 0:
        spread = <real_t*> malloc(nthreads * (s.in_size[2] + 16) * sizeof(real_t))
    if spread != NULL:
        if nthreads > 1:
            for p in prange(lead, schedule='guided', num_threads=nthreads):
                _avg_backward_rows(grad_out + p * out_plane, grad_in + p * in_plane, s, &t,
                                   spread + threadid() * (s.in_size[2] + 16))
        else:
            for p in range(lead):
                _avg_backward_rows(grad_out + p * out_plane, grad_in + p * in_plane, s, &t,
                                   spread)
        free(spread)
    elif not channels_last:
        if nthreads > 1:
            for p in prange(lead, schedule='guided', num_threads=nthreads):
                _avg_backward_plane(grad_out + p * out_plane, grad_in + p * in_plane, s, &t)
        else:
            for p in range(lead):
                _avg_backward_plane(grad_out + p * out_plane, grad_in + p * in_plane, s, &t)
    else:
        jobs = _channel_jobs(lead, channels, nthreads)
        disjoint = not naive and _disjoint(s, &t)
        if nthreads > 1:
            for p in prange(jobs.count, schedule='guided', num_threads=nthreads):
                _avg_backward_block_cl(grad_out, grad_in, p, &jobs, channels, s, &t, disjoint)
        else:
            for p in range(jobs.count):
                _avg_backward_block_cl(grad_out, grad_in, p, &jobs, channels, s, &t, disjoint)
    free_tables(&t)
    return 0


def adaptive_avg_backward(cnp.ndarray grad_out, cnp.ndarray grad_in, tuple in_size,
                          tuple out_size, bint channels_last, int nthreads, bint naive=False):
    """Fill ``grad_in`` with the gradient of adaptive average pooling.

    grad_out: IN, float32/float64, ``(planes, OD, OH, OW)`` or ``(N, OD, OH, OW, C)``.
    grad_in: OUT, same dtype, the input's layout and sizes.
    naive: the general loop alone (tests: the row path must equal it bit for bit).
    """
    cdef Shape s
    _fill_shape(&s, in_size, out_size)
    cdef Py_ssize_t lead = grad_out.shape[0]
    cdef Py_ssize_t channels = grad_out.shape[4] if channels_last else 1
    cdef void* gop = cnp.PyArray_DATA(grad_out)
    cdef void* gip = cnp.PyArray_DATA(grad_in)
    cdef int typenum = cnp.PyArray_TYPE(grad_out)
    cdef int status = 0
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            status = _avg_backward[float](<float*> gop, <float*> gip, lead, channels, channels_last, &s, nthreads, naive)
        elif typenum == cnp.NPY_FLOAT64:
            status = _avg_backward[double](<double*> gop, <double*> gip, lead, channels, channels_last, &s, nthreads, naive)
        else:
            status = -2
    if status == -1:
        raise MemoryError("cypool: out of memory for window tables")
    if status == -2:
        raise TypeError(f"adaptive average pooling backward has no loop for dtype {grad_out.dtype}")
