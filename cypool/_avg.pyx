# cython: language_level=3
"""Average pooling kernels, forward and backward.

Layouts as in ``_max.pyx``.  The divisor of a window is ``divisor_override``
if given (non-zero), else the product of the per-axis padded extents
(``count_include_pad``) or of the in-bounds counts.  A window with no
in-bounds element gives 0, as PyTorch does.
"""

cimport numpy as cnp
from cython.parallel cimport prange, threadid
from libc.stdint cimport int32_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from cypool._dtypes cimport real_t
from cypool._geometry cimport Axis
from cypool._kernel_common cimport (
    STREAM_BYTES, Tables, fill_axes, free_tables, lead_of, make_tables, window_cover,
)

from cypool._simd cimport (
    cy_avg_back_lanes_f32, cy_avg_back_lanes_f64, cy_avg_lanes_f32, cy_avg_lanes_f64,
    cy_avg_s2_f32, cy_avg_s2_f64, cy_avg_taps_f32, cy_avg_taps_f64, cy_avg_taps_row_f32,
    cy_avg_taps_row_f64, cy_from_lanes_f32, cy_from_lanes_f64, cy_simd_cap, cy_simd_level,
    cy_stream_copy, cy_sum_s1_f32, cy_sum_s1_f64, cy_to_lanes_f32, cy_to_lanes_f64,
    cy_window_sums_f32, cy_window_sums_f64, CY_SUM_MAX_TAPS,
)

cnp.import_array()

cdef enum:
    # Channels of one channels-last backward job (see _max.pyx).
    CHANNEL_BLOCK = 64
    # Rows of a window the separable path adds in registers (more: a pass per row).
    SUM_ROWS = 64
    # Largest per-thread scratch (elements) of the separable paths.
    SCRATCH_LIMIT = 1 << 22
    # Windows of at most DIRECT_ROWS rows, 2 or 3 wide at stride 2 along W, are
    # summed straight from their rows (_forward_plane_direct).
    DIRECT_ROWS = 9
    # Channels-first planes of at most SMALL_PLANE elements with rows of fewer
    # than LANES windows are averaged LANES at a time, side by side (see
    # _forward_lanes; _simd.h's cy_avg_lanes takes 16).
    LANES = 16
    SMALL_PLANE = 1024
    # Channels-last windows whole along W taken by one _simd.h call.
    ROW_CHUNK = 64


cdef struct Divisor:
    bint include_pad
    Py_ssize_t override     # 0: none


cdef inline Py_ssize_t _divisor(const Tables* t, Py_ssize_t od, Py_ssize_t oh,
                                Py_ssize_t ow, const Divisor* rule) noexcept nogil:
    """Divisor of window (od, oh, ow); 0 when the window is empty."""
    cdef Py_ssize_t inside = (t.count[t.offset[0] + od] * t.count[t.offset[1] + oh]
                              * t.count[t.offset[2] + ow])
    if inside == 0:
        return 0
    if rule.override != 0:
        return rule.override
    if rule.include_pad:
        return (t.padded[t.offset[0] + od] * t.padded[t.offset[1] + oh]
                * t.padded[t.offset[2] + ow])
    return inside


# ---------------------------------------------------------------- forward

cdef void _forward_plane(const real_t* x, real_t* out, const Axis* ax,
                         const Tables* t, const Divisor* rule) noexcept nogil:
    """One channels-first plane, any window: the general loop."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t OD = ax[0].out_size, OH = ax[1].out_size, OW = ax[2].out_size
    cdef Py_ssize_t od, oh, ow, id_, ih, iw, o = 0, divisor
    cdef Py_ssize_t sd, nd, sh, nh, sw, nw
    cdef real_t total
    cdef const real_t* row
    for od in range(OD):
        sd = t.first[t.offset[0] + od]
        nd = t.count[t.offset[0] + od]
        for oh in range(OH):
            sh = t.first[t.offset[1] + oh]
            nh = t.count[t.offset[1] + oh]
            for ow in range(OW):
                sw = t.first[t.offset[2] + ow]
                nw = t.count[t.offset[2] + ow]
                total = 0
                for id_ in range(sd, sd + nd):
                    for ih in range(sh, sh + nh):
                        row = x + (id_ * H + ih) * W
                        for iw in range(sw, sw + nw):
                            total = total + row[iw]
                divisor = _divisor(t, od, oh, ow, rule)
                out[o] = total / <real_t> divisor if divisor != 0 else 0
                o += 1


# ------------------------------------------ channels-first, separable path
#
# A window sum is the sum over the window's rows of each row's sum along W:
# pass 1 sums along W for every input row into scratch, pass 2 adds the
# window's rows (contiguous loops over OW) and divides.  Only the order of
# the additions differs from the general loop.

cdef inline void _row_sums_interior(const real_t* row, real_t* hs, Py_ssize_t lo,
                                    Py_ssize_t hi, Py_ssize_t kernel,
                                    const Py_ssize_t stride, Py_ssize_t pad) noexcept nogil:
    """Sums of the full windows [lo, hi); ``stride`` is constant at the hot call
    sites so gcc vectorises the strided loads."""
    cdef Py_ssize_t ow, j
    cdef const real_t* start = row + lo * stride - pad
    if hi <= lo:
        return  # no full window: the tap loop below must not run
    if kernel > 3 and stride == 1:  # the sums in registers
        if real_t is float:
            cy_sum_s1_f32(&start, 1, kernel, hs + lo, NULL, hi - lo)
        else:
            cy_sum_s1_f64(&start, 1, kernel, hs + lo, NULL, hi - lo)
        return
    if stride > 2 or (stride == 2 and kernel > 3):  # strided taps: scalar chains
        if real_t is float:
            cy_window_sums_f32(start, stride, kernel, hs + lo, hi - lo)
        else:
            cy_window_sums_f64(start, stride, kernel, hs + lo, hi - lo)
        return
    if kernel == 2:  # one pass for the common small windows
        for ow in range(lo, hi):
            hs[ow] = row[ow * stride - pad] + row[ow * stride + 1 - pad]
        return
    if kernel == 3:
        for ow in range(lo, hi):
            hs[ow] = row[ow * stride - pad] + row[ow * stride + 1 - pad] + row[ow * stride + 2 - pad]
        return
    for ow in range(lo, hi):
        hs[ow] = row[ow * stride - pad]
    for j in range(1, kernel):
        for ow in range(lo, hi):
            hs[ow] = hs[ow] + row[ow * stride + j - pad]


cdef inline void _row_sums(const real_t* row, real_t* hs, const Axis* axis,
                           const Tables* t) noexcept nogil:
    cdef const Py_ssize_t* first = t.first + t.offset[2]
    cdef const Py_ssize_t* count = t.count + t.offset[2]
    cdef Py_ssize_t lo = t.full_lo[2], hi = t.full_hi[2]
    cdef Py_ssize_t ow, j
    cdef real_t total
    if axis.stride == 1:
        _row_sums_interior(row, hs, lo, hi, axis.kernel, 1, axis.pad_before)
    elif axis.stride == 2:
        _row_sums_interior(row, hs, lo, hi, axis.kernel, 2, axis.pad_before)
    else:
        _row_sums_interior(row, hs, lo, hi, axis.kernel, axis.stride, axis.pad_before)
    for ow in range(lo):
        total = 0
        for j in range(count[ow]):
            total = total + row[first[ow] + j]
        hs[ow] = total
    for ow in range(hi, axis.out_size):
        total = 0
        for j in range(count[ow]):
            total = total + row[first[ow] + j]
        hs[ow] = total


cdef inline double _axis_factor(const Tables* t, int a, Py_ssize_t o,
                                const Divisor* rule) noexcept nogil:
    """This axis's factor of the divisor (see _divisor)."""
    if rule.include_pad:
        return <double> t.padded[t.offset[a] + o]
    return <double> t.count[t.offset[a] + o]


cdef inline void _divisor_row(const Tables* t, Py_ssize_t od, Py_ssize_t oh,
                              const Divisor* rule, const double* w_factor, Py_ssize_t OW,
                              real_t* divisors, double* last_factor) noexcept nogil:
    """The divisors of output row (od, oh) into ``divisors``, unless the row
    before had the same (most rows do); ``last_factor``: 0 before the first row."""
    cdef double row_factor
    cdef Py_ssize_t ow
    if rule.override != 0:
        row_factor = <double> rule.override
    else:
        row_factor = _axis_factor(t, 0, od, rule) * _axis_factor(t, 1, oh, rule)
    if row_factor != last_factor[0]:
        for ow in range(OW):
            divisors[ow] = <real_t> (row_factor * w_factor[ow])
        last_factor[0] = row_factor


cdef inline void _padded_row_sums(const real_t* row, real_t* hs, const Axis* axis,
                                  real_t* padded) noexcept nogil:
    """Row sums of every window at stride 1 (more than 3 taps), the clipped
    ones too: the row between runs of +0.0, so that every window takes the
    vector loop.  A clipped window's sum is ``0 + x[first] + ...`` (see
    _row_sums); zeros before it add the same, and zeros after a sum leave it
    unchanged, since only zeros can sum to -0.0 and then the clipped sum is
    +0.0 too.  ``padded``: scratch of OW + kernel - 1."""
    cdef Py_ssize_t W = axis.in_size, OW = axis.out_size, before = axis.pad_before
    cdef Py_ssize_t n = OW + axis.kernel - 1
    cdef Py_ssize_t inside = W if before + W <= n else n - before
    cdef Py_ssize_t i
    for i in range(before):
        padded[i] = 0
    memcpy(padded + before, row, inside * sizeof(real_t))
    for i in range(before + inside, n):
        padded[i] = 0
    if real_t is float:
        cy_sum_s1_f32(<const float**> &padded, 1, axis.kernel, hs, NULL, OW)
    else:
        cy_sum_s1_f64(<const double**> &padded, 1, axis.kernel, hs, NULL, OW)


cdef void _forward_plane_separable(const real_t* x, real_t* out, const Axis* ax,
                                   const Tables* t, const Divisor* rule,
                                   real_t* hs, const double* w_factor,
                                   real_t* divisors, real_t* padded) noexcept nogil:
    """One channels-first plane in two passes; hs: scratch of D*H*OW sums;
    padded: NULL, or scratch for :func:`_padded_row_sums`.

    w_factor: the W-axis divisor factors (or 1); divisors: scratch of OW, the
    current output row's divisors.  Windows of a validated average pool
    always hold an input element, so no divisor is 0 here.  Divisors are
    integer products, exact in double, rounded once to real_t.
    """
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t OD = ax[0].out_size, OH = ax[1].out_size, OW = ax[2].out_size
    cdef Py_ssize_t r, od, oh, ow, id_, ih, n_rows
    cdef Py_ssize_t sd, nd, sh, nh
    cdef double last_factor = 0  # none yet: factors are never 0
    cdef const real_t* src[3]
    cdef const real_t* many[SUM_ROWS]
    cdef const real_t* s0
    cdef const real_t* s1
    cdef const real_t* s2
    cdef real_t* orow
    if padded != NULL:
        for r in range(ax[0].in_size * H):
            _padded_row_sums(x + r * W, hs + r * OW, &ax[2], padded)
    else:
        for r in range(ax[0].in_size * H):
            _row_sums(x + r * W, hs + r * OW, &ax[2], t)
    for od in range(OD):
        sd = t.first[t.offset[0] + od]
        nd = t.count[t.offset[0] + od]
        for oh in range(OH):
            sh = t.first[t.offset[1] + oh]
            nh = t.count[t.offset[1] + oh]
            orow = out + (od * OH + oh) * OW
            _divisor_row(t, od, oh, rule, w_factor, OW, divisors, &last_factor)
            n_rows = nd * nh
            if n_rows <= 3:  # the common small windows: add and divide in one pass
                n_rows = 0
                for id_ in range(sd, sd + nd):
                    for ih in range(sh, sh + nh):
                        src[n_rows] = hs + (id_ * H + ih) * OW
                        n_rows += 1
                s0 = src[0]
                if n_rows == 1:
                    for ow in range(OW):
                        orow[ow] = s0[ow] / divisors[ow]
                elif n_rows == 2:
                    s1 = src[1]
                    for ow in range(OW):
                        orow[ow] = (s0[ow] + s1[ow]) / divisors[ow]
                else:
                    s1 = src[1]
                    s2 = src[2]
                    for ow in range(OW):
                        orow[ow] = (s0[ow] + s1[ow] + s2[ow]) / divisors[ow]
                continue
            if n_rows <= SUM_ROWS:  # the sums in registers, divided as they are stored
                n_rows = 0
                for id_ in range(sd, sd + nd):
                    for ih in range(sh, sh + nh):
                        many[n_rows] = hs + (id_ * H + ih) * OW
                        n_rows += 1
                if real_t is float:
                    cy_sum_s1_f32(many, n_rows, 1, orow, divisors, OW)
                else:
                    cy_sum_s1_f64(many, n_rows, 1, orow, divisors, OW)
                continue
            n_rows = 0
            for id_ in range(sd, sd + nd):
                for ih in range(sh, sh + nh):
                    s0 = hs + (id_ * H + ih) * OW
                    if n_rows == 0:
                        for ow in range(OW):
                            orow[ow] = s0[ow]
                    else:
                        for ow in range(OW):
                            orow[ow] = orow[ow] + s0[ow]
                    n_rows += 1
            for ow in range(OW):
                orow[ow] = orow[ow] / divisors[ow]


cdef inline bint _direct(const Axis* ax) noexcept nogil:
    """Whether channels-first planes take _forward_plane_direct."""
    return (ax[2].stride == 2 and (ax[2].kernel == 2 or ax[2].kernel == 3)
            and ax[0].kernel * ax[1].kernel <= DIRECT_ROWS)


cdef inline real_t _clipped_average(const real_t* const* rows, Py_ssize_t n_rows,
                                    Py_ssize_t first, Py_ssize_t count,
                                    real_t divisor) noexcept nogil:
    """A clipped window of _forward_plane_direct: each row's taps left to right,
    then the rows in order, as the separable path adds them."""
    cdef Py_ssize_t r, j
    cdef real_t total = 0, row_sum
    for r in range(n_rows):
        row_sum = 0
        for j in range(count):
            row_sum = row_sum + rows[r][first + j]
        total = row_sum if r == 0 else total + row_sum
    return total / divisor


cdef void _forward_plane_direct(const real_t* x, real_t* out, const Axis* ax,
                                const Tables* t, const Divisor* rule, const double* w_factor,
                                real_t* divisors) noexcept nogil:
    """One channels-first plane summed straight from each window's rows (see
    _direct): _simd.h's rows for the full windows, the same additions as the
    separable path (each row's taps left to right, then the rows in order)
    for the clipped ones, so the same bits with no scratch pass."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t OD = ax[0].out_size, OH = ax[1].out_size, OW = ax[2].out_size
    cdef Py_ssize_t lo = t.full_lo[2], hi = t.full_hi[2]
    cdef const Py_ssize_t* first_w = t.first + t.offset[2]
    cdef const Py_ssize_t* count_w = t.count + t.offset[2]
    cdef const real_t* rows[DIRECT_ROWS]
    cdef const real_t* shifted[DIRECT_ROWS]
    cdef Py_ssize_t od, oh, ow, id_, ih, n_rows
    cdef Py_ssize_t start = lo * 2 - ax[2].pad_before
    cdef double last_factor = 0
    cdef real_t* orow
    for od in range(OD):
        for oh in range(OH):
            n_rows = 0
            for id_ in range(t.first[t.offset[0] + od],
                             t.first[t.offset[0] + od] + t.count[t.offset[0] + od]):
                for ih in range(t.first[t.offset[1] + oh],
                                t.first[t.offset[1] + oh] + t.count[t.offset[1] + oh]):
                    rows[n_rows] = x + (id_ * H + ih) * W
                    shifted[n_rows] = rows[n_rows] + start
                    n_rows += 1
            _divisor_row(t, od, oh, rule, w_factor, OW, divisors, &last_factor)
            orow = out + (od * OH + oh) * OW
            if real_t is float:
                cy_avg_s2_f32(shifted, n_rows, ax[2].kernel, orow + lo, divisors + lo, hi - lo)
            else:
                cy_avg_s2_f64(shifted, n_rows, ax[2].kernel, orow + lo, divisors + lo, hi - lo)
            # the clipped windows, before lo and from hi (a loop over all of OW
            # that skipped [lo, hi) cost as much as the vector rows)
            for ow in range(lo):
                orow[ow] = _clipped_average(rows, n_rows, first_w[ow], count_w[ow], divisors[ow])
            for ow in range(hi, OW):
                orow[ow] = _clipped_average(rows, n_rows, first_w[ow], count_w[ow], divisors[ow])


cdef int _forward_separable(const real_t* x, real_t* out, Py_ssize_t planes,
                            const Axis* ax, const Tables* t, const Divisor* rule,
                            int nthreads) noexcept nogil:
    """All planes with the separable path and per-thread scratch; -1: no memory."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t OW = ax[2].out_size
    # per thread: the row sums, a padded row (windows of more than 3 taps at stride 1
    # along W, some of them clipped: _padded_row_sums), then one output row's divisors
    cdef Py_ssize_t rows_room = ax[0].in_size * ax[1].in_size * OW + 16
    cdef bint pad_rows = (ax[2].stride == 1 and ax[2].kernel > 3
                          and (t.full_lo[2] > 0 or t.full_hi[2] < OW))
    cdef Py_ssize_t pad_room = OW + ax[2].kernel + 16 if pad_rows else 0
    cdef Py_ssize_t room = rows_room + pad_room + OW
    cdef real_t* sums = <real_t*> malloc(nthreads * room * sizeof(real_t))
    cdef double* w_factor = <double*> malloc((OW + 1) * sizeof(double))
    cdef Py_ssize_t p, tid, ow
    # with vector paths only: at level 0 (other CPUs, or capped by the tests) the
    # separable path, whose additions these are, runs instead
    cdef bint direct = _direct(ax) and cy_simd_level() > 0
    if sums == NULL or w_factor == NULL:
        free(sums)
        free(w_factor)
        return -1
    for ow in range(OW):
        w_factor[ow] = 1.0 if rule.override != 0 else _axis_factor(t, 2, ow, rule)
    if nthreads > 1:
        for p in prange(planes, schedule='guided', num_threads=nthreads):
            tid = threadid()
            if direct:
                _forward_plane_direct(x + p * in_plane, out + p * out_plane, ax, t, rule,
                                      w_factor, sums + tid * room + room - OW)
            else:
                _forward_plane_separable(x + p * in_plane, out + p * out_plane, ax, t, rule,
                                         sums + tid * room, w_factor, sums + tid * room + room - OW,
                                         sums + tid * room + rows_room if pad_rows else NULL)
    else:
        for p in range(planes):
            if direct:
                _forward_plane_direct(x + p * in_plane, out + p * out_plane, ax, t, rule,
                                      w_factor, sums + room - OW)
            else:
                _forward_plane_separable(x + p * in_plane, out + p * out_plane, ax, t, rule,
                                         sums, w_factor, sums + room - OW,
                                         sums + rows_room if pad_rows else NULL)
    free(sums)
    free(w_factor)
    return 0


# ------------------------------------------ channels-first, small planes
#
# As in _max.pyx: LANES small planes are transposed side by side, averaged as
# the channels of one channels-last plane (every tap a LANES-wide vector add)
# and transposed back.  The additions are the separable path's, in its order,
# so the results are its bits whichever path a plane's size takes.

cdef void _forward_lanes(const real_t* x, real_t* out, Py_ssize_t block, Py_ssize_t planes,
                         const Axis* ax, const int32_t* win, const real_t* divisors,
                         real_t* lanes) noexcept nogil:
    """Planes ``[block * LANES, ...)`` (at most LANES of them) of ``planes``;
    ``win``/``divisors``: every window (see _simd.h's cy_avg_lanes).  Scratch:
    ``lanes`` holds in_plane + out_plane times LANES values."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t first = block * LANES
    cdef Py_ssize_t width = planes - first if planes - first < LANES else LANES
    cdef Py_ssize_t plane_step = ax[1].in_size * ax[2].in_size, row_step = ax[2].in_size
    cdef real_t* results = lanes + in_plane * LANES
    if real_t is float:
        cy_to_lanes_f32(x + first * in_plane, in_plane, width, lanes)
        cy_avg_lanes_f32(lanes, win, plane_step, row_step, out_plane, divisors, results)
        cy_from_lanes_f32(results, out_plane, width, out + first * out_plane)
    else:
        cy_to_lanes_f64(x + first * in_plane, in_plane, width, lanes)
        cy_avg_lanes_f64(lanes, win, plane_step, row_step, out_plane, divisors, results)
        cy_from_lanes_f64(results, out_plane, width, out + first * out_plane)


# SMALL_PLANE, or lower for the tests (see small_plane_limit)
cdef Py_ssize_t small_plane = SMALL_PLANE


cdef inline bint _by_lanes(const Axis* ax) noexcept nogil:
    """Whether channels-first planes are small enough for the lanes, with rows
    too short for the row paths' vector loops."""
    return (ax[0].in_size * ax[1].in_size * ax[2].in_size <= small_plane
            and ax[2].out_size < LANES)


cdef void _lane_windows(const Axis* ax, const Tables* t, const Divisor* rule, int32_t* win,
                        real_t* divisors) noexcept nogil:
    """Every window for _simd.h's cy_avg_lanes / cy_avg_back_lanes, with the
    divisors as _divisor_row makes them (in double, rounded once)."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size, od, oh, ow, o = 0
    cdef double row_factor
    cdef int32_t* w
    for od in range(ax[0].out_size):
        for oh in range(ax[1].out_size):
            if rule.override != 0:
                row_factor = <double> rule.override
            else:
                row_factor = _axis_factor(t, 0, od, rule) * _axis_factor(t, 1, oh, rule)
            for ow in range(ax[2].out_size):
                w = win + 5 * o
                w[0] = <int32_t> ((t.first[t.offset[0] + od] * H + t.first[t.offset[1] + oh]) * W
                                  + t.first[t.offset[2] + ow])
                w[1] = <int32_t> t.count[t.offset[0] + od]
                w[2] = <int32_t> t.count[t.offset[1] + oh]
                w[3] = <int32_t> t.count[t.offset[2] + ow]
                w[4] = ow < t.full_lo[2] or ow >= t.full_hi[2]  # see _row_sums
                divisors[o] = <real_t> (row_factor * (1.0 if rule.override != 0
                                                      else _axis_factor(t, 2, ow, rule)))
                o += 1


cdef void _backward_lanes(const real_t* grad_out, real_t* grad_in, Py_ssize_t block,
                          Py_ssize_t planes, const Axis* ax, const int32_t* win,
                          const real_t* divisors, real_t* lanes) noexcept nogil:
    """The backward of :func:`_forward_lanes`: the output gradients of LANES
    planes side by side, spread over their windows in the general loop's order
    (so its bits), transposed back.  Scratch as _forward_lanes."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t first = block * LANES
    cdef Py_ssize_t width = planes - first if planes - first < LANES else LANES
    cdef Py_ssize_t plane_step = ax[1].in_size * ax[2].in_size, row_step = ax[2].in_size
    cdef real_t* spread = lanes + out_plane * LANES
    memset(spread, 0, in_plane * LANES * sizeof(real_t))
    if real_t is float:
        cy_to_lanes_f32(grad_out + first * out_plane, out_plane, width, lanes)
        cy_avg_back_lanes_f32(lanes, win, plane_step, row_step, out_plane, divisors, spread)
        cy_from_lanes_f32(spread, in_plane, width, grad_in + first * in_plane)
    else:
        cy_to_lanes_f64(grad_out + first * out_plane, out_plane, width, lanes)
        cy_avg_back_lanes_f64(lanes, win, plane_step, row_step, out_plane, divisors, spread)
        cy_from_lanes_f64(spread, in_plane, width, grad_in + first * in_plane)


cdef int _small(const real_t* src, real_t* dst, Py_ssize_t planes, const Axis* ax,
                const Tables* t, const Divisor* rule, int nthreads,
                bint backward) noexcept nogil:
    """All planes by :func:`_forward_lanes` (or :func:`_backward_lanes`),
    LANES per job, per-thread scratch; -1: no memory."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t room = (in_plane + out_plane) * LANES
    cdef Py_ssize_t jobs = (planes + LANES - 1) // LANES, job
    cdef real_t* values = <real_t*> malloc(nthreads * room * sizeof(real_t))
    cdef int32_t* win = <int32_t*> malloc(5 * out_plane * sizeof(int32_t))
    cdef real_t* divisors = <real_t*> malloc(out_plane * sizeof(real_t))
    if values == NULL or win == NULL or divisors == NULL:
        free(values)
        free(win)
        free(divisors)
        return -1
    _lane_windows(ax, t, rule, win, divisors)
    if nthreads > 1:
        for job in prange(jobs, schedule='guided', num_threads=nthreads):
            if backward:
                _backward_lanes(src, dst, job, planes, ax, win, divisors,
                                values + threadid() * room)
            else:
                _forward_lanes(src, dst, job, planes, ax, win, divisors,
                               values + threadid() * room)
    else:
        for job in range(jobs):
            if backward:
                _backward_lanes(src, dst, job, planes, ax, win, divisors, values)
            else:
                _forward_lanes(src, dst, job, planes, ax, win, divisors, values)
    free(values)
    free(win)
    free(divisors)
    return 0


def small_plane_limit(limit=None):
    """As ``_max.small_plane_limit``: the largest channels-first plane averaged
    in lanes; ``limit`` (tests only) lowers it, 0 turns the lanes off."""
    global small_plane
    if limit is not None:
        small_plane = min(<Py_ssize_t> limit, <Py_ssize_t> SMALL_PLANE)
    return small_plane


cdef void _forward_pixel_cl(const real_t* x, real_t* out,
                            Py_ssize_t n, Py_ssize_t od, Py_ssize_t oh, Py_ssize_t ow,
                            Py_ssize_t channels, const Axis* ax, const Tables* t,
                            const Divisor* rule, bint naive) noexcept nogil:
    """One channels-last output pixel: _simd.h's channel vectors, or (``naive``,
    or what they leave) the general loop, channel loop innermost; the same
    additions."""
    cdef Py_ssize_t D = ax[0].in_size, H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t OD = ax[0].out_size, OH = ax[1].out_size, OW = ax[2].out_size
    cdef Py_ssize_t pixel = ((n * OD + od) * OH + oh) * OW + ow
    cdef Py_ssize_t sd = t.first[t.offset[0] + od], nd = t.count[t.offset[0] + od]
    cdef Py_ssize_t sh = t.first[t.offset[1] + oh], nh = t.count[t.offset[1] + oh]
    cdef Py_ssize_t sw = t.first[t.offset[2] + ow], nw = t.count[t.offset[2] + ow]
    cdef Py_ssize_t id_, ih, iw, c, k, done = 0
    cdef Py_ssize_t divisor = _divisor(t, od, oh, ow, rule)
    cdef real_t* o = out + pixel * channels
    cdef const real_t* row
    cdef real_t scale
    cdef const real_t* taps[CY_SUM_MAX_TAPS]
    if not naive and divisor != 0 and nd * nh * nw <= CY_SUM_MAX_TAPS:
        k = 0
        for id_ in range(sd, sd + nd):
            for ih in range(sh, sh + nh):
                for iw in range(sw, sw + nw):
                    taps[k] = x + (((n * D + id_) * H + ih) * W + iw) * channels
                    k += 1
        if real_t is float:
            done = cy_avg_taps_f32(taps, k, channels, o, <float> divisor)
        else:
            done = cy_avg_taps_f64(taps, k, channels, o, <double> divisor)
        if done == channels:
            return
    # the rest of the channels, one tap at a time over the output row
    for c in range(done, channels):
        o[c] = 0
    for id_ in range(sd, sd + nd):
        for ih in range(sh, sh + nh):
            for iw in range(sw, sw + nw):
                row = x + (((n * D + id_) * H + ih) * W + iw) * channels
                for c in range(done, channels):
                    o[c] = o[c] + row[c]
    if divisor == 0:
        for c in range(done, channels):
            o[c] = 0
    else:
        scale = <real_t> divisor
        for c in range(done, channels):
            o[c] = o[c] / scale


cdef void _forward_row_cl(const real_t* x, real_t* out, Py_ssize_t row,
                          Py_ssize_t channels, const Axis* ax, const Tables* t,
                          const Divisor* rule, bint naive) noexcept nogil:
    """One channels-last output row ``row = (n*OD + od)*OH + oh``: the windows
    whole along W a chunk at a time in one call (_simd.h, the additions of
    :func:`_forward_pixel_cl`), the others pixel by pixel; ``naive``: every
    pixel by the general loop."""
    cdef Py_ssize_t D = ax[0].in_size, H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t OD = ax[0].out_size, OH = ax[1].out_size, OW = ax[2].out_size
    cdef Py_ssize_t n = row // OH // OD, od = row // OH % OD, oh = row % OH
    cdef Py_ssize_t lo = t.full_lo[2], hi = t.full_hi[2], ow, i, k, chunk, done
    cdef Py_ssize_t sd = t.first[t.offset[0] + od], nd = t.count[t.offset[0] + od]
    cdef Py_ssize_t sh = t.first[t.offset[1] + oh], nh = t.count[t.offset[1] + oh]
    cdef Py_ssize_t id_, ih, j
    cdef const real_t* taps[CY_SUM_MAX_TAPS]
    cdef real_t divisors[ROW_CHUNK]
    cdef Py_ssize_t ow0 = 0     # the row path takes windows [lo, ow0) (none: lo = ow0 = 0)
    if (not naive and hi > lo and nd * nh > 0 and nd * nh * ax[2].kernel <= CY_SUM_MAX_TAPS
            and cy_simd_level() >= 1):
        ow0 = lo
        while ow0 < hi:
            chunk = min(ROW_CHUNK, hi - ow0)
            k = 0
            for id_ in range(sd, sd + nd):
                for ih in range(sh, sh + nh):
                    for j in range(ax[2].kernel):
                        taps[k] = x + (((n * D + id_) * H + ih) * W
                                       + ow0 * ax[2].stride - ax[2].pad_before + j) * channels
                        k += 1
            for i in range(chunk):
                divisors[i] = <real_t> _divisor(t, od, oh, ow0 + i, rule)
            if real_t is float:
                done = cy_avg_taps_row_f32(taps, k, channels, out + (row * OW + ow0) * channels,
                                           divisors, chunk, ax[2].stride * channels)
            else:
                done = cy_avg_taps_row_f64(taps, k, channels, out + (row * OW + ow0) * channels,
                                           divisors, chunk, ax[2].stride * channels)
            if done != channels:
                break   # not taken (no vector path): the pixels below do the rest
            ow0 += chunk
    else:
        lo = 0
    for ow in range(lo):
        _forward_pixel_cl(x, out, n, od, oh, ow, channels, ax, t, rule, naive)
    for ow in range(ow0, OW):
        _forward_pixel_cl(x, out, n, od, oh, ow, channels, ax, t, rule, naive)


cdef int _forward(const real_t* x, real_t* out, Py_ssize_t lead, Py_ssize_t channels,
                  bint channels_last, const Axis* ax, const Divisor* rule,
                  int nthreads, bint naive) noexcept nogil:
    """``naive`` forces the general loops (the tests compare the fast paths
    against them)."""
    cdef Tables t
    cdef Py_ssize_t p, in_plane, out_plane, pixels
    cdef int status = 0
    if make_tables(ax, &t, True) != 0:
        return -1
    in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    if not channels_last and not naive and _by_lanes(ax):
        status = _small(x, out, lead, ax, &t, rule, nthreads, False)
    elif (not channels_last and not naive
            and ax[0].in_size * ax[1].in_size * ax[2].out_size <= SCRATCH_LIMIT):
        status = _forward_separable(x, out, lead, ax, &t, rule, nthreads)
    elif not channels_last:
        if nthreads > 1:
            for p in prange(lead, schedule='guided', num_threads=nthreads):
                _forward_plane(x + p * in_plane, out + p * out_plane, ax, &t, rule)
        else:
            for p in range(lead):
                _forward_plane(x + p * in_plane, out + p * out_plane, ax, &t, rule)
    else:
        pixels = lead * ax[0].out_size * ax[1].out_size  # output rows
        if nthreads > 1:
            for p in prange(pixels, schedule='guided', num_threads=nthreads):
                _forward_row_cl(x, out, p, channels, ax, &t, rule, naive)
        else:
            for p in range(pixels):
                _forward_row_cl(x, out, p, channels, ax, &t, rule, naive)
    free_tables(&t)
    return status


def avg_pool_forward(cnp.ndarray x, cnp.ndarray out, tuple geometry,
                     bint count_include_pad, Py_ssize_t divisor_override,
                     bint channels_last, int nthreads, bint naive=False):
    """Fill ``out`` with window averages of ``x``.

    x: IN, float32/float64, C-contiguous, laid out as ``(planes, D, H, W)`` or
       ``(N, D, H, W, C)`` (any shape with those bytes; channels-last takes C from the last dim).
    out: OUT, same dtype and layout with the output sizes.
    divisor_override: 0 for none.
    """
    cdef Axis ax[3]
    fill_axes(ax, geometry)
    cdef Divisor rule
    rule.include_pad = count_include_pad
    rule.override = divisor_override
    # any shape with these bytes: the facade passes its arrays without reshaping
    cdef Py_ssize_t channels = x.shape[x.ndim - 1] if channels_last else 1
    cdef Py_ssize_t lead = lead_of(x, ax, channels)
    cdef void* xp = cnp.PyArray_DATA(x)
    cdef void* op = cnp.PyArray_DATA(out)
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef int status = 0
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            status = _forward[float](<float*> xp, <float*> op, lead, channels, channels_last, ax, &rule, nthreads, naive)
        elif typenum == cnp.NPY_FLOAT64:
            status = _forward[double](<double*> xp, <double*> op, lead, channels, channels_last, ax, &rule, nthreads, naive)
        else:
            status = -2
    if status == -1:
        raise MemoryError("cypool: out of memory for window tables")
    if status == -2:
        raise TypeError(f"average pooling kernel has no loop for dtype {x.dtype}")


def simd_level(cap=None):
    """This module's vector path, as ``_max.simd_level`` (each module keeps its own)."""
    return cy_simd_level() if cap is None else cy_simd_cap(cap)


# --------------------------------------------------------------- backward

cdef void _backward_plane(const real_t* grad_out, real_t* grad_in, const Axis* ax,
                          const Tables* t, const Divisor* rule) noexcept nogil:
    """Spread each output gradient evenly over its window (accumulating)."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t OD = ax[0].out_size, OH = ax[1].out_size, OW = ax[2].out_size
    cdef Py_ssize_t od, oh, ow, id_, ih, iw, o = 0, divisor
    cdef Py_ssize_t sd, nd, sh, nh, sw, nw
    cdef real_t share
    cdef real_t* row
    memset(grad_in, 0, ax[0].in_size * H * W * sizeof(real_t))
    for od in range(OD):
        sd = t.first[t.offset[0] + od]
        nd = t.count[t.offset[0] + od]
        for oh in range(OH):
            sh = t.first[t.offset[1] + oh]
            nh = t.count[t.offset[1] + oh]
            for ow in range(OW):
                sw = t.first[t.offset[2] + ow]
                nw = t.count[t.offset[2] + ow]
                divisor = _divisor(t, od, oh, ow, rule)
                if divisor != 0:
                    share = grad_out[o] / <real_t> divisor
                    for id_ in range(sd, sd + nd):
                        for ih in range(sh, sh + nh):
                            row = grad_in + (id_ * H + ih) * W
                            for iw in range(sw, sw + nw):
                                row[iw] += share
                o += 1


cdef void _backward_block_cl(const real_t* grad_out, real_t* grad_in, Py_ssize_t job,
                             Py_ssize_t blocks, Py_ssize_t channels, const Axis* ax,
                             const Tables* t, const Divisor* rule) noexcept nogil:
    """Channels ``[c0, c1)`` of one batch element, channels-last."""
    cdef Py_ssize_t D = ax[0].in_size, H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t OD = ax[0].out_size, OH = ax[1].out_size, OW = ax[2].out_size
    cdef Py_ssize_t n = job // blocks
    cdef Py_ssize_t c0 = (job % blocks) * CHANNEL_BLOCK
    cdef Py_ssize_t c1 = c0 + CHANNEL_BLOCK if c0 + CHANNEL_BLOCK < channels else channels
    cdef Py_ssize_t od, oh, ow, id_, ih, iw, c, s, divisor
    cdef Py_ssize_t sd, nd, sh, nh, sw, nw
    cdef real_t scale
    cdef real_t* gi = grad_in + n * D * H * W * channels
    cdef const real_t* go = grad_out + n * OD * OH * OW * channels
    cdef real_t* dst
    cdef const real_t* src
    for s in range(D * H * W):
        for c in range(c0, c1):
            gi[s * channels + c] = 0
    s = 0
    for od in range(OD):
        sd = t.first[t.offset[0] + od]
        nd = t.count[t.offset[0] + od]
        for oh in range(OH):
            sh = t.first[t.offset[1] + oh]
            nh = t.count[t.offset[1] + oh]
            for ow in range(OW):
                sw = t.first[t.offset[2] + ow]
                nw = t.count[t.offset[2] + ow]
                divisor = _divisor(t, od, oh, ow, rule)
                src = go + s * channels
                s += 1
                if divisor == 0:
                    continue
                scale = <real_t> divisor
                for id_ in range(sd, sd + nd):
                    for ih in range(sh, sh + nh):
                        for iw in range(sw, sw + nw):
                            dst = gi + ((id_ * H + ih) * W + iw) * channels
                            for c in range(c0, c1):
                                dst[c] += src[c] / scale


cdef void _backward_rows_cl(const real_t* grad_out, real_t* grad_in, Py_ssize_t job,
                            Py_ssize_t blocks, Py_ssize_t channels, const Axis* ax,
                            const Tables* t, const Divisor* rule, const Py_ssize_t* cover,
                            real_t* stage) noexcept nogil:
    """:func:`_backward_block_cl` an input row at a time: each row is zeroed
    and takes the windows over it while it is in cache, so the result is
    written once.  Every element takes its windows' shares in the same order
    (od, oh, ow), so the sums are the same.  ``cover``: _kernel_common's
    window_cover.  ``stage``: NULL, or (one channel block, a large result) a
    row of scratch where each row is built and then streamed out (see
    STREAM_BYTES)."""
    cdef Py_ssize_t D = ax[0].in_size, H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t OD = ax[0].out_size, OH = ax[1].out_size, OW = ax[2].out_size
    cdef Py_ssize_t n = job // blocks
    cdef Py_ssize_t c0 = (job % blocks) * CHANNEL_BLOCK
    cdef Py_ssize_t c1 = c0 + CHANNEL_BLOCK if c0 + CHANNEL_BLOCK < channels else channels
    cdef const Py_ssize_t* d_lo = cover
    cdef const Py_ssize_t* d_hi = cover + D
    cdef const Py_ssize_t* h_lo = cover + 2 * D
    cdef const Py_ssize_t* h_hi = cover + 2 * D + H
    cdef Py_ssize_t id_, ih, iw, od, oh, ow, c, sw, nw, divisor
    cdef Py_ssize_t step = channels if stage == NULL else c1 - c0
    cdef real_t scale
    cdef real_t* row
    cdef real_t* dst
    cdef const real_t* src
    cdef const real_t* go = grad_out + n * OD * OH * OW * channels + c0
    for id_ in range(D):
        for ih in range(H):
            row = (grad_in + ((n * D + id_) * H + ih) * W * channels + c0 if stage == NULL
                   else stage)
            for iw in range(W):
                for c in range(c1 - c0):
                    row[iw * step + c] = 0
            for od in range(d_lo[id_], d_hi[id_]):
                for oh in range(h_lo[ih], h_hi[ih]):
                    for ow in range(OW):
                        divisor = _divisor(t, od, oh, ow, rule)
                        if divisor == 0:
                            continue
                        scale = <real_t> divisor
                        src = go + ((od * OH + oh) * OW + ow) * channels
                        sw = t.first[t.offset[2] + ow]
                        nw = t.count[t.offset[2] + ow]
                        for iw in range(sw, sw + nw):
                            dst = row + iw * step
                            for c in range(c1 - c0):
                                dst[c] += src[c] / scale
            if stage != NULL:
                cy_stream_copy(grad_in + ((n * D + id_) * H + ih) * W * channels, stage,
                               W * channels * sizeof(real_t))


# Separable backward: scale each output gradient by its divisor, add the
# scaled rows into every input row of their windows (contiguous loops over
# OW), then spread each of those rows along W.  Same sums as the general
# loop, in another order.

cdef inline void _row_spread(const real_t* v, real_t* girow, const Axis* axis,
                             const Tables* t) noexcept nogil:
    """Add v[ow] to every input column of window ow (girow starts zeroed)."""
    cdef const Py_ssize_t* first = t.first + t.offset[2]
    cdef const Py_ssize_t* count = t.count + t.offset[2]
    cdef Py_ssize_t lo = t.full_lo[2], hi = t.full_hi[2]
    cdef Py_ssize_t ow, j, at
    cdef Py_ssize_t stride = axis.stride, pad = axis.pad_before
    if hi > lo and stride == 2:
        # taps j and j + 1 reach elements of other parities, so one pass adds
        # both (each element still takes its taps in order): a contiguous run
        # per pass, which gcc vectorises, not two strided ones
        j = 0
        while j + 1 < axis.kernel:
            at = j - pad
            for ow in range(lo, hi):
                girow[2 * ow + at] += v[ow]
                girow[2 * ow + at + 1] += v[ow]
            j += 2
        if j < axis.kernel:
            for ow in range(lo, hi):
                girow[2 * ow + j - pad] += v[ow]
    elif hi > lo:  # else the tap loop would run kernel_size times for nothing
        for j in range(axis.kernel):
            for ow in range(lo, hi):
                girow[ow * stride + j - pad] += v[ow]
    for ow in range(lo):
        for j in range(count[ow]):
            girow[first[ow] + j] += v[ow]
    for ow in range(hi, axis.out_size):
        for j in range(count[ow]):
            girow[first[ow] + j] += v[ow]


cdef void _backward_plane_separable(const real_t* grad_out, real_t* grad_in, const Axis* ax,
                                    const Tables* t, const Divisor* rule, real_t* rows_acc,
                                    real_t* scaled, const double* w_factor) noexcept nogil:
    """rows_acc: scratch of D*H*OW; scaled: scratch of OW."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t OD = ax[0].out_size, OH = ax[1].out_size, OW = ax[2].out_size
    cdef Py_ssize_t rows = ax[0].in_size * H
    cdef Py_ssize_t od, oh, ow, id_, ih, r
    cdef Py_ssize_t sd, nd, sh, nh
    cdef double row_factor
    cdef const real_t* go
    cdef real_t* acc
    memset(rows_acc, 0, rows * OW * sizeof(real_t))
    for od in range(OD):
        sd = t.first[t.offset[0] + od]
        nd = t.count[t.offset[0] + od]
        for oh in range(OH):
            sh = t.first[t.offset[1] + oh]
            nh = t.count[t.offset[1] + oh]
            if rule.override != 0:
                row_factor = <double> rule.override
            else:
                row_factor = _axis_factor(t, 0, od, rule) * _axis_factor(t, 1, oh, rule)
            go = grad_out + (od * OH + oh) * OW
            for ow in range(OW):
                scaled[ow] = go[ow] / <real_t> (row_factor * w_factor[ow])
            for id_ in range(sd, sd + nd):
                for ih in range(sh, sh + nh):
                    acc = rows_acc + (id_ * H + ih) * OW
                    for ow in range(OW):
                        acc[ow] = acc[ow] + scaled[ow]
    memset(grad_in, 0, rows * W * sizeof(real_t))
    for r in range(rows):
        _row_spread(rows_acc + r * OW, grad_in + r * W, &ax[2], t)


cdef int _backward_separable(const real_t* grad_out, real_t* grad_in, Py_ssize_t planes,
                             const Axis* ax, const Tables* t, const Divisor* rule,
                             int nthreads) noexcept nogil:
    """All planes, per-thread scratch; -1: no memory."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t room = ax[0].in_size * ax[1].in_size * ax[2].out_size + ax[2].out_size + 16
    cdef Py_ssize_t rows_out = ax[0].in_size * ax[1].in_size * ax[2].out_size
    cdef real_t* scratch = <real_t*> malloc(nthreads * room * sizeof(real_t))
    cdef double* w_factor = <double*> malloc((ax[2].out_size + 1) * sizeof(double))
    cdef Py_ssize_t p, tid, ow
    if scratch == NULL or w_factor == NULL:
        free(scratch)
        free(w_factor)
        return -1
    for ow in range(ax[2].out_size):
        w_factor[ow] = 1.0 if rule.override != 0 else _axis_factor(t, 2, ow, rule)
    if nthreads > 1:
        for p in prange(planes, schedule='guided', num_threads=nthreads):
            tid = threadid()
            _backward_plane_separable(grad_out + p * out_plane, grad_in + p * in_plane, ax, t,
                                      rule, scratch + tid * room,
                                      scratch + tid * room + rows_out, w_factor)
    else:
        for p in range(planes):
            _backward_plane_separable(grad_out + p * out_plane, grad_in + p * in_plane, ax, t,
                                      rule, scratch, scratch + rows_out, w_factor)
    free(scratch)
    free(w_factor)
    return 0


cdef int _backward(const real_t* grad_out, real_t* grad_in, Py_ssize_t lead,
                   Py_ssize_t channels, bint channels_last, const Axis* ax,
                   const Divisor* rule, int nthreads, bint naive) noexcept nogil:
    cdef Tables t
    cdef Py_ssize_t p, in_plane, out_plane, blocks, jobs
    cdef Py_ssize_t* cover
    cdef real_t* stage
    cdef Py_ssize_t room
    cdef int status = 0
    if make_tables(ax, &t, True) != 0:
        return -1
    in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    if not channels_last and not naive and _by_lanes(ax):
        status = _small(grad_out, grad_in, lead, ax, &t, rule, nthreads, True)
    elif (not channels_last and not naive
            and ax[0].in_size * ax[1].in_size * ax[2].out_size <= SCRATCH_LIMIT):
        status = _backward_separable(grad_out, grad_in, lead, ax, &t, rule, nthreads)
    elif not channels_last:
        if nthreads > 1:
            for p in prange(lead, schedule='guided', num_threads=nthreads):
                _backward_plane(grad_out + p * out_plane, grad_in + p * in_plane, ax, &t, rule)
        else:
            for p in range(lead):
                _backward_plane(grad_out + p * out_plane, grad_in + p * in_plane, ax, &t, rule)
    elif naive:
        blocks = (channels + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK
        jobs = lead * blocks
        if nthreads > 1:
            for p in prange(jobs, schedule='guided', num_threads=nthreads):
                _backward_block_cl(grad_out, grad_in, p, blocks, channels, ax, &t, rule)
        else:
            for p in range(jobs):
                _backward_block_cl(grad_out, grad_in, p, blocks, channels, ax, &t, rule)
    else:
        cover = window_cover(&t, ax)
        if cover == NULL:
            free_tables(&t)
            return -1
        blocks = (channels + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK
        jobs = lead * blocks
        room = ax[2].in_size * channels + 16
        stage = NULL
        if blocks == 1 and lead * in_plane * channels * sizeof(real_t) >= STREAM_BYTES:
            stage = <real_t*> malloc(nthreads * room * sizeof(real_t))
        if nthreads > 1:
            for p in prange(jobs, schedule='guided', num_threads=nthreads):
                _backward_rows_cl(grad_out, grad_in, p, blocks, channels, ax, &t, rule, cover,
                                  stage + threadid() * room if stage != NULL else NULL)
        else:
            for p in range(jobs):
                _backward_rows_cl(grad_out, grad_in, p, blocks, channels, ax, &t, rule, cover,
                                  stage)
        free(stage)
        free(cover)
    free_tables(&t)
    return status


def avg_pool_backward(cnp.ndarray grad_out, cnp.ndarray grad_in, tuple geometry,
                      bint count_include_pad, Py_ssize_t divisor_override,
                      bint channels_last, int nthreads, bint naive=False):
    """Fill ``grad_in`` with the gradient of average pooling.

    grad_out: IN, float32/float64, ``(planes, OD, OH, OW)`` or ``(N, OD, OH, OW, C)``.
    grad_in: OUT, same dtype, the input's layout and sizes.
    """
    cdef Axis ax[3]
    fill_axes(ax, geometry)
    cdef Divisor rule
    rule.include_pad = count_include_pad
    rule.override = divisor_override
    cdef Py_ssize_t lead = grad_out.shape[0]
    cdef Py_ssize_t channels = grad_out.shape[4] if channels_last else 1
    cdef void* gop = cnp.PyArray_DATA(grad_out)
    cdef void* gip = cnp.PyArray_DATA(grad_in)
    cdef int typenum = cnp.PyArray_TYPE(grad_out)
    cdef int status = 0
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            status = _backward[float](<float*> gop, <float*> gip, lead, channels, channels_last, ax, &rule, nthreads, naive)
        elif typenum == cnp.NPY_FLOAT64:
            status = _backward[double](<double*> gop, <double*> gip, lead, channels, channels_last, ax, &rule, nthreads, naive)
        else:
            status = -2
    if status == -1:
        raise MemoryError("cypool: out of memory for window tables")
    if status == -2:
        raise TypeError(f"average pooling backward has no loop for dtype {grad_out.dtype}")
