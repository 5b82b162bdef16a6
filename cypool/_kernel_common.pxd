# cython: language_level=3
"""Per-call window tables built from the geometry helpers.

A kernel call turns its three ``Axis`` records (depth, height, width; 1-D and
2-D calls use singleton leading axes) into tables of per-window values so the
loops only index arrays.  The tables are one ``malloc`` block that the caller
frees with ``free_tables``.

Every kernel runs its jobs with ``prange`` when it has more than one thread
and with a plain loop otherwise, the same body twice: ``prange``'s
``use_threads_if`` would fold them, but an inactive OpenMP region still costs
about a microsecond per call in libgomp (measured), and the plain loop keeps a
forked child out of libgomp altogether.
"""

cimport numpy as cnp
from cython.parallel cimport prange, threadid
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc

from cypool._dtypes cimport max_t
from cypool._geometry cimport Axis, avg_bounds, max_taps
from cypool._simd cimport (
    cy_max_lanes_block_f32, cy_max_lanes_block_f64, cy_max_taps_f32, cy_max_taps_f64,
    cy_max_taps_row_f32, cy_max_taps_row_f64,
)



cdef enum:
    # A channels-first result of at least STREAM_BYTES (the last-level cache of the
    # machines measured) that a kernel zeroes and fills a plane at a time can be built
    # in a per-thread buffer of STAGE_BYTES (in L2), a group of planes at a time, and
    # streamed out by ``cy_stream_copy``: memory then sees one write of each line, not
    # a read for ownership and a write.  A smaller result stays in the cache, where
    # plain stores are faster and the caller finds it.
    STAGE_BYTES = 131072
    STREAM_BYTES = 32 << 20


cdef inline Py_ssize_t stage_group(Py_ssize_t planes, Py_ssize_t plane_bytes) noexcept nogil:
    """Planes per staged job (see STAGE_BYTES), 0 when the result is not staged."""
    if plane_bytes <= 0 or plane_bytes > STAGE_BYTES or planes * plane_bytes < STREAM_BYTES:
        return 0
    return STAGE_BYTES // plane_bytes

cdef struct Tables:
    # For axis a and window o, entry [offset[a] + o] of each array.
    Py_ssize_t offset[3]
    Py_ssize_t out_size[3]
    Py_ssize_t* first      # max: first in-bounds tap; avg: in-bounds start
    Py_ssize_t* count      # number of in-bounds taps
    Py_ssize_t* padded     # avg only: window extent inside the padding
    Py_ssize_t* block
    # Windows [full_lo[a], full_hi[a]) of axis a hold all `kernel` taps in
    # bounds and start at o*stride - pad_before: the fast paths' interior.
    Py_ssize_t full_lo[3]
    Py_ssize_t full_hi[3]


cdef inline int make_tables(const Axis* axes, Tables* t, bint average) noexcept nogil:
    """Fill ``t`` for the three axes; returns -1 when out of memory."""
    cdef Py_ssize_t total = axes[0].out_size + axes[1].out_size + axes[2].out_size
    cdef Py_ssize_t a, o, dummy
    t.block = <Py_ssize_t*> malloc((3 * total + 1) * sizeof(Py_ssize_t))
    if t.block == NULL:
        return -1
    t.first = t.block
    t.count = t.block + total
    t.padded = t.block + 2 * total
    t.offset[0] = 0
    t.offset[1] = axes[0].out_size
    t.offset[2] = axes[0].out_size + axes[1].out_size
    for a in range(3):
        t.out_size[a] = axes[a].out_size
        t.full_lo[a] = 0
        t.full_hi[a] = 0
        for o in range(axes[a].out_size):
            if average:
                avg_bounds(&axes[a], o, &t.first[t.offset[a] + o],
                           &t.count[t.offset[a] + o], &t.padded[t.offset[a] + o])
            else:
                max_taps(&axes[a], o, &t.first[t.offset[a] + o],
                         &t.count[t.offset[a] + o])
        # full windows form one run: those starting in bounds and ending in bounds
        o = 0
        while o < axes[a].out_size and t.count[t.offset[a] + o] < axes[a].kernel:
            o += 1
        t.full_lo[a] = o
        while o < axes[a].out_size and t.count[t.offset[a] + o] == axes[a].kernel:
            o += 1
        t.full_hi[a] = o
    return 0


cdef inline void free_tables(Tables* t) noexcept nogil:
    free(t.block)
    t.block = NULL


cdef struct Window:
    Py_ssize_t at[3]        # output position along D, H, W
    Py_ssize_t start[3]     # first input position along D, H, W
    Py_ssize_t count[3]     # elements along D, H, W
    Py_ssize_t batch        # the batch element of a channels-last pixel


cdef inline void set_axis(const Tables* t, Window* w, Py_ssize_t a, Py_ssize_t o) noexcept nogil:
    """Window ``o`` along axis ``a``."""
    w.at[a] = o
    w.start[a] = t.first[t.offset[a] + o]
    w.count[a] = t.count[t.offset[a] + o]


cdef inline void window_at(const Tables* t, Py_ssize_t pixel, Window* w) noexcept nogil:
    """Window of output ``pixel``, a row-major offset over ``(N, OD, OH, OW)``."""
    cdef Py_ssize_t a
    for a in range(2, -1, -1):
        set_axis(t, w, a, pixel % t.out_size[a])
        pixel = pixel // t.out_size[a]
    w.batch = pixel


cdef inline void window_step(const Tables* t, Py_ssize_t o, Window* w) noexcept nogil:
    """Window of output ``o`` of a plane when ``w`` holds ``o - 1``: an odometer
    step, since a division per output costs more than a small window's work."""
    cdef Py_ssize_t a = 2
    if o == 0:
        window_at(t, 0, w)
        return
    while a > 0 and w.at[a] + 1 == t.out_size[a]:
        set_axis(t, w, a, 0)
        a -= 1
    set_axis(t, w, a, w.at[a] + 1)


cdef inline Py_ssize_t* window_cover(const Tables* t, const Axis* ax) noexcept nogil:
    """For axes 0 and 1 (D then H), each input's run of outputs whose windows
    hold it: ``(lo, hi)`` arrays of ``in_size`` each, D's then H's (outputs
    ``[lo[i], hi[i])``; ``lo >= hi``: none).  Windows' starts and ends never
    decrease, so the outputs holding an input are a run.  malloc'd (the
    caller frees it); NULL: no memory."""
    cdef Py_ssize_t D = ax[0].in_size, H = ax[1].in_size
    cdef Py_ssize_t* cover = <Py_ssize_t*> malloc(2 * (D + H) * sizeof(Py_ssize_t))
    cdef Py_ssize_t* lo
    cdef Py_ssize_t* hi
    cdef Py_ssize_t a, i, o
    if cover == NULL:
        return NULL
    for a in range(2):
        lo = cover if a == 0 else cover + 2 * D
        hi = lo + ax[a].in_size
        for i in range(ax[a].in_size):
            lo[i] = t.out_size[a]
            hi[i] = 0
        for o in range(t.out_size[a]):
            for i in range(t.first[t.offset[a] + o],
                           t.first[t.offset[a] + o] + t.count[t.offset[a] + o]):
                lo[i] = o if o < lo[i] else lo[i]
                hi[i] = o + 1
    return cover


cdef inline Py_ssize_t window_size(const Window* w) noexcept nogil:
    return w.count[0] * w.count[1] * w.count[2]


cdef inline int fill_axes(Axis* axes, tuple geometry) except -1:
    """Unpack the facade's ``(in, out, kernel, stride, pad_before, pad_after,
    dilation)`` geometry, each a 3-tuple ordered depth, height, width."""
    cdef Py_ssize_t a
    in_size, out_size, kernel, stride, pad_before, pad_after, dilation = geometry
    for a in range(3):
        axes[a].in_size = in_size[a]
        axes[a].out_size = out_size[a]
        axes[a].kernel = kernel[a]
        axes[a].stride = stride[a]
        axes[a].pad_before = pad_before[a]
        axes[a].pad_after = pad_after[a]
        axes[a].dilation = dilation[a]
    return 0


cdef inline Py_ssize_t lead_of(cnp.ndarray x, const Axis* axes, Py_ssize_t channels):
    """Leading count of a kernel input: planes (channels-first, ``channels`` 1)
    or batch (channels-last), whatever shape ``x`` has with those bytes."""
    cdef Py_ssize_t per_lead = axes[0].in_size * axes[1].in_size * axes[2].in_size * channels
    return cnp.PyArray_SIZE(x) // per_lead if per_lead > 0 else 0


cdef inline Py_ssize_t window_max_cl(const max_t** taps, Py_ssize_t n_taps,
                                     Py_ssize_t channels, max_t* out, const int64_t* tap_pos,
                                     int64_t* index) noexcept nogil:
    """One channels-last window's maxima over ``channels`` (and their plane
    offsets unless ``index`` is NULL), the channel vectors in registers
    (_simd.h's cy_max_taps, at most CY_SUM_MAX_TAPS taps); returns the
    channels done, 0 for types other than float32/float64."""
    if max_t is float:
        return cy_max_taps_f32(taps, n_taps, channels, out, tap_pos, index)
    elif max_t is double:
        return cy_max_taps_f64(taps, n_taps, channels, out, tap_pos, index)
    return 0


cdef inline Py_ssize_t window_max_cl_row(const max_t** taps, Py_ssize_t n_taps,
                                         Py_ssize_t channels, max_t* out,
                                         const int64_t* tap_pos, int64_t* index, Py_ssize_t n,
                                         Py_ssize_t step, int64_t pos_step) noexcept nogil:
    """:func:`window_max_cl` for ``n`` windows of a row, window ``i``'s taps
    ``i * step`` elements and their positions ``i * pos_step`` further on, its
    results ``i * channels`` further on (cy_max_taps_row: one call for the row)."""
    if max_t is float:
        return cy_max_taps_row_f32(taps, n_taps, channels, out, tap_pos, index, n, step, pos_step)
    elif max_t is double:
        return cy_max_taps_row_f64(taps, n_taps, channels, out, tap_pos, index, n, step, pos_step)
    return 0


cdef inline int max_by_lanes(const max_t* x, max_t* out, int64_t* ind, Py_ssize_t planes,
                             Py_ssize_t in_plane, Py_ssize_t out_plane, const int32_t* tap,
                             const int32_t* start, int nthreads) noexcept nogil:
    """Small channels-first planes' maxima (and indices unless ``ind`` is NULL),
    16 planes side by side per job (_simd.h's cy_max_lanes_block), with
    per-thread scratch; ``tap``/``start`` list every window's taps (see
    cy_max_lanes).  float32/float64 only; -1: no memory."""
    cdef Py_ssize_t room = (in_plane + 2 * out_plane) * 16
    cdef Py_ssize_t jobs = (planes + 15) // 16, job
    cdef max_t* lanes
    if not (max_t is float or max_t is double):
        return -1
    lanes = <max_t*> malloc(nthreads * room * sizeof(max_t))
    if lanes == NULL:
        return -1
    if nthreads > 1:
        for job in prange(jobs, schedule='guided', num_threads=nthreads):
            if max_t is float:
                cy_max_lanes_block_f32(x, out, ind, job, planes, in_plane, out_plane, tap, start,
                                       lanes + threadid() * room)
            elif max_t is double:
                cy_max_lanes_block_f64(x, out, ind, job, planes, in_plane, out_plane, tap, start,
                                       lanes + threadid() * room)
    else:
        for job in range(jobs):
            if max_t is float:
                cy_max_lanes_block_f32(x, out, ind, job, planes, in_plane, out_plane, tap, start,
                                       lanes)
            elif max_t is double:
                cy_max_lanes_block_f64(x, out, ind, job, planes, in_plane, out_plane, tap, start,
                                       lanes)
    free(lanes)
    return 0
