# cython: language_level=3
"""Max pooling kernels: forward (values and int64 indices) and backward.

Arrays arrive C-contiguous from the facade, viewed as 3-D spatial:
channels-first ``(planes, D, H, W)``, channels-last ``(N, D, H, W, C)``.
Indices are flat offsets inside one input plane, ``(d*H + h)*W + w``, in both
layouts.
"""

cimport numpy as cnp
from cython.parallel cimport prange, threadid
from libc.stdint cimport (
    INT32_MAX, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t,
)
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from cypool._dtypes cimport beats, lowest, max_t, pick_at, real_t
from cypool._geometry cimport Axis
from cypool._kernel_common cimport (
    STAGE_BYTES, Tables, fill_axes, free_tables, lead_of, make_tables, max_by_lanes,
    stage_group, window_max_cl, window_max_cl_row,
)

from cypool._simd cimport (
    cy_max_s1_f32, cy_max_s1_f64, cy_max_s1_rows_f32, cy_max_s1_rows_f64, cy_max_s2_f32,
    cy_max_s2_f64, cy_max_s2_rows_f32, cy_max_s2_rows_f64, cy_simd_cap, cy_simd_level,
    cy_max_strided_f32, cy_max_strided_f64, cy_stream_copy,
)

cnp.import_array()

# Channels of one channels-last backward job: enough to vectorise, small
# enough to give every thread work when the batch is small.
cdef enum:
    CHANNEL_BLOCK = 64
    # Largest per-thread scratch (elements) of the separable path.
    SCRATCH_LIMIT = 1 << 22
    # The direct path takes windows of at most DIRECT_TAPS taps, or of at most
    # DIRECT_ROWS rows whose columns do not overlap; the rest go separable,
    # whose cost grows as kh + kw (measured: k3 s2 is faster separable).
    DIRECT_TAPS = 4
    DIRECT_ROWS = 9
    # Rows of fewer windows than this take branch-free scalar picks: the
    # vector loops would not run, and their scalar remainders branch.
    SHORT_ROW = 8
    # 1-D planes (rows) of one job of the direct path.
    ROW_BLOCK = 16
    # Elements of the smallest page (4 KiB) of float64, and fewer than of float32.
    PAGE_ELEMENTS = 512
    # Channels-first scatters stage their planes (stage_group) when each plane has
    # SPARSE_SCATTER inputs or more per gradient; denser ones measured no faster.
    SPARSE_SCATTER = 16
    # Rows of a window the separable path takes in registers (more: a pass per row).
    SUM_ROWS = 64
    # Channels-last windows of at most CL_TAPS taps (float32/64) go to _simd.h.
    CL_TAPS = 64
    # Channels-first planes of at most SMALL_PLANE elements (float32/64) with
    # rows of fewer than LANES windows are pooled LANES at a time, side by side
    # (see _forward_small and _by_lanes; _simd.h's cy_max_lanes takes 16).
    LANES = 16
    SMALL_PLANE = 1024
    SMALL_PLANE_ANY = 256


# ---------------------------------------------------------------- forward

cdef void _forward_plane(const max_t* x, max_t* out, int64_t* ind,
                         const Axis* ax, const Tables* t) noexcept nogil:
    """One channels-first plane, any window: the general loop."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t OD = ax[0].out_size, OH = ax[1].out_size, OW = ax[2].out_size
    cdef Py_ssize_t dd = ax[0].dilation, dh = ax[1].dilation, dw = ax[2].dilation
    cdef const Py_ssize_t* first_d = t.first + t.offset[0]
    cdef const Py_ssize_t* first_h = t.first + t.offset[1]
    cdef const Py_ssize_t* first_w = t.first + t.offset[2]
    cdef const Py_ssize_t* count_d = t.count + t.offset[0]
    cdef const Py_ssize_t* count_h = t.count + t.offset[1]
    cdef const Py_ssize_t* count_w = t.count + t.offset[2]
    cdef Py_ssize_t od, oh, ow, a, b, c, id_, ih, iw, pos, o
    cdef max_t best, value
    cdef const max_t* row
    o = 0
    for od in range(OD):
        for oh in range(OH):
            for ow in range(OW):
                best = lowest(x)
                pos = (first_d[od] * H + first_h[oh]) * W + first_w[ow]
                for a in range(count_d[od]):
                    id_ = first_d[od] + a * dd
                    for b in range(count_h[oh]):
                        ih = first_h[oh] + b * dh
                        row = x + (id_ * H + ih) * W
                        for c in range(count_w[ow]):
                            iw = first_w[ow] + c * dw
                            value = row[iw]
                            if beats(value, best):
                                best = value
                                pos = (id_ * H + ih) * W + iw
                out[o] = best
                if ind != NULL:
                    ind[o] = pos
                o += 1


# ------------------------------------------ channels-first, separable path
#
# Max over a window in row-major scan order equals max over its rows (in
# order) of the max over each row's taps, when both use the same "beats" rule
# (ties keep the first, the last NaN wins).  So each plane is reduced in two
# passes: along W for every input row into a scratch block, then across the
# window's rows, a contiguous loop over OW.  Both inner loops are branch-free
# selects over contiguous (or constant-stride) data that gcc vectorises, and
# plane offsets are carried as int32 (planes below 2**31 elements only).

cdef inline void _row_interior(const max_t* row, max_t* hv, int32_t* hw, int32_t row_base,
                               Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t kernel,
                               const Py_ssize_t stride, Py_ssize_t dilation,
                               Py_ssize_t pad, bint with_index) noexcept nogil:
    """Row maxima of the full windows [lo, hi); ``stride`` is a constant at
    the call sites that matter so the strided loads vectorise."""
    cdef Py_ssize_t ow, j, offset
    cdef max_t value
    cdef bint take
    # offsets as a 32-bit induction variable (64-bit products would not
    # vectorise), unsigned: the step past the last window may leave int32
    cdef uint32_t at, step = <uint32_t> stride
    cdef int32_t best_at
    if hi <= lo:
        return  # no full window: the tap loop below must not run
    if hi - lo < SHORT_ROW:
        for ow in range(lo, hi):
            offset = ow * stride - pad
            best_at = <int32_t> (row_base + offset)
            value = row[offset]
            for j in range(1, kernel):
                value = pick_at(value, row[offset + j * dilation], &best_at,
                                <int32_t> (row_base + offset + j * dilation))
            hv[ow] = value
            hw[ow] = best_at
        return
    for ow in range(lo, hi):
        hv[ow] = row[ow * stride - pad]
    if with_index:
        at = <uint32_t> (row_base + lo * stride - pad)
        for ow in range(lo, hi):
            hw[ow] = <int32_t> at
            at = at + step
    for j in range(1, kernel):
        offset = j * dilation - pad
        if with_index:
            at = <uint32_t> (row_base + lo * stride + offset)
            for ow in range(lo, hi):
                value = row[ow * stride + offset]
                take = beats(value, hv[ow])
                hv[ow] = value if take else hv[ow]
                hw[ow] = <int32_t> at if take else hw[ow]
                at = at + step
        else:
            for ow in range(lo, hi):
                value = row[ow * stride + offset]
                hv[ow] = value if beats(value, hv[ow]) else hv[ow]


cdef inline void _row_border(const max_t* row, max_t* hv, int32_t* hw, int32_t row_base,
                             Py_ssize_t ow, Py_ssize_t first, Py_ssize_t count,
                             Py_ssize_t dilation) noexcept nogil:
    """Row maximum of one clipped window (at the edges of the row)."""
    cdef Py_ssize_t j
    cdef max_t best = row[first]
    cdef int32_t at = <int32_t> (row_base + first)
    for j in range(1, count):
        best = pick_at(best, row[first + j * dilation], &at,
                       <int32_t> (row_base + first + j * dilation))
    hv[ow] = best
    hw[ow] = at


cdef inline bint _vector_rows(const Axis* axis, bint with_index) noexcept nogil:
    """Whether the interior windows along W take _simd.h's stride-2 rows (float32/64 only)."""
    return (not with_index and axis.stride == 2 and axis.dilation == 1
            and (axis.kernel == 2 or axis.kernel == 3))


cdef inline bint _unit_rows(const Axis* axis, bint with_index) noexcept nogil:
    """Whether the interior windows along W take _simd.h's stride-1 rows (float32/64 only)."""
    return not with_index and axis.stride == 1


cdef inline bint _strided_rows(const Axis* axis, bint with_index) noexcept nogil:
    """Whether the interior windows along W take _simd.h's strided maxima (float32/64
    only): values alone, windows at a stride of 3 or more."""
    return not with_index and axis.stride >= 3 and axis.dilation == 1


cdef inline void _row_max(const max_t* row, max_t* hv, int32_t* hw, int32_t row_base,
                          const Axis* axis, const Tables* t, bint with_index) noexcept nogil:
    """Maxima along W of one input row for every output column."""
    cdef const Py_ssize_t* first = t.first + t.offset[2]
    cdef const Py_ssize_t* count = t.count + t.offset[2]
    cdef Py_ssize_t lo = t.full_lo[2], hi = t.full_hi[2]
    cdef Py_ssize_t ow
    cdef const max_t* start = row + lo * axis.stride - axis.pad_before
    if (max_t is float) and _vector_rows(axis, with_index):
        cy_max_s2_f32(&start, 1, axis.kernel, hv + lo, hi - lo)
    elif (max_t is double) and _vector_rows(axis, with_index):
        cy_max_s2_f64(&start, 1, axis.kernel, hv + lo, hi - lo)
    elif (max_t is float) and _unit_rows(axis, with_index):
        cy_max_s1_f32(&start, 1, axis.kernel, axis.dilation, hv + lo, hi - lo)
    elif (max_t is double) and _unit_rows(axis, with_index):
        cy_max_s1_f64(&start, 1, axis.kernel, axis.dilation, hv + lo, hi - lo)
    elif (max_t is float) and _strided_rows(axis, with_index):
        cy_max_strided_f32(start, axis.stride, axis.kernel, hv + lo, hi - lo)
    elif (max_t is double) and _strided_rows(axis, with_index):
        cy_max_strided_f64(start, axis.stride, axis.kernel, hv + lo, hi - lo)
    elif axis.stride == 1:
        _row_interior(row, hv, hw, row_base, lo, hi, axis.kernel, 1, axis.dilation,
                      axis.pad_before, with_index)
    elif axis.stride == 2:
        _row_interior(row, hv, hw, row_base, lo, hi, axis.kernel, 2, axis.dilation,
                      axis.pad_before, with_index)
    else:
        _row_interior(row, hv, hw, row_base, lo, hi, axis.kernel, axis.stride,
                      axis.dilation, axis.pad_before, with_index)
    if not with_index:
        return  # the clipped windows: _border_columns, for all the rows at once
    for ow in range(lo):
        _row_border(row, hv, hw, row_base, ow, first[ow], count[ow], axis.dilation)
    for ow in range(hi, axis.out_size):
        _row_border(row, hv, hw, row_base, ow, first[ow], count[ow], axis.dilation)


cdef inline void _border_columns(const max_t* x, max_t* out, Py_ssize_t p0, Py_ssize_t p1,
                                 const Axis* axis, const Tables* t) noexcept nogil:
    """Row maxima of the clipped windows at both ends of the rows ``[p0, p1)``
    (values alone): a column at a time, since their taps' places are the same
    in every row, so the rows' picks do not wait for each other (a row at a
    time, each pick waits for the last)."""
    cdef const Py_ssize_t* first = t.first + t.offset[2]
    cdef const Py_ssize_t* count = t.count + t.offset[2]
    cdef Py_ssize_t ow
    for ow in range(t.full_lo[2]):
        _border_column(x, out, p0, p1, axis.in_size, axis.out_size, ow, first[ow], count[ow],
                       axis.dilation)
    for ow in range(t.full_hi[2], axis.out_size):
        _border_column(x, out, p0, p1, axis.in_size, axis.out_size, ow, first[ow], count[ow],
                       axis.dilation)


cdef inline void _border_column(const max_t* x, max_t* out, Py_ssize_t p0, Py_ssize_t p1,
                                Py_ssize_t W, Py_ssize_t OW, Py_ssize_t ow, Py_ssize_t first,
                                Py_ssize_t count, Py_ssize_t dilation) noexcept nogil:
    """Clipped window ``ow`` (values alone) of the rows ``[p0, p1)`` (of W,
    results OW apart in ``out``): tap by tap in scan order across the rows."""
    cdef int32_t unused = 0
    cdef Py_ssize_t p, j, at
    for p in range(p0, p1):
        out[p * OW + ow] = x[p * W + first]
    for j in range(1, count):
        at = first + j * dilation
        for p in range(p0, p1):
            out[p * OW + ow] = pick_at(out[p * OW + ow], x[p * W + at], &unused, 0)


cdef inline void _padded_row_max(const max_t* row, max_t* hv, const Axis* axis,
                                 max_t* padded) noexcept nogil:
    """Row maxima of every window at stride 1 (values alone), the clipped ones
    too: the row between runs of the lowest value (-inf), so that every window
    takes the vector loop.  A pad tap never changes a maximum (it is not
    greater than any tap, and a NaN tap still wins), so the values are the
    clipped windows'.  ``padded``: scratch of OW + (kernel - 1) * dilation."""
    cdef Py_ssize_t W = axis.in_size, OW = axis.out_size, before = axis.pad_before
    cdef Py_ssize_t n = OW + (axis.kernel - 1) * axis.dilation
    cdef Py_ssize_t inside = W if before + W <= n else n - before
    cdef Py_ssize_t i
    cdef max_t low = lowest(row)
    for i in range(before):
        padded[i] = low
    memcpy(padded + before, row, inside * sizeof(max_t))
    for i in range(before + inside, n):
        padded[i] = low
    if max_t is float:
        cy_max_s1_f32(<const float**> &padded, 1, axis.kernel, axis.dilation, hv, OW)
    elif max_t is double:
        cy_max_s1_f64(<const double**> &padded, 1, axis.kernel, axis.dilation, hv, OW)


cdef void _forward_plane_separable(const max_t* x, max_t* out, int64_t* ind,
                                   const Axis* ax, const Tables* t, max_t* hv,
                                   int32_t* hw, int32_t* best_at, max_t* padded) noexcept nogil:
    """One channels-first plane in two passes (see above).

    hv, hw: scratch of D*H*OW values and offsets; best_at: scratch of OW;
    padded: NULL, or scratch for :func:`_padded_row_max` (rows of windows at
    stride 1 with clipped windows, values alone, float32/64).
    """
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t OD = ax[0].out_size, OH = ax[1].out_size, OW = ax[2].out_size
    cdef Py_ssize_t rows = ax[0].in_size * H
    cdef bint with_index = ind != NULL
    cdef Py_ssize_t r, od, oh, ow, a, b, n_taps
    cdef int32_t at
    cdef const max_t* src
    cdef const int32_t* src_at
    cdef const max_t* window_rows[SUM_ROWS]
    cdef max_t* orow
    cdef max_t value
    cdef bint take
    if padded != NULL:
        for r in range(rows):
            _padded_row_max(x + r * W, hv + r * OW, &ax[2], padded)
    else:
        for r in range(rows):
            _row_max(x + r * W, hv + r * OW, hw + r * OW, <int32_t> (r * W), &ax[2], t,
                     with_index)
        if not with_index:
            _border_columns(x, hv, 0, rows, &ax[2], t)
    for od in range(OD):
        for oh in range(OH):
            orow = out + (od * OH + oh) * OW
            if ((max_t is float or max_t is double) and not with_index
                    and t.count[t.offset[0] + od] * t.count[t.offset[1] + oh] <= SUM_ROWS):
                # the window's rows in registers (_simd.h), one pass over the output row
                n_taps = 0
                for a in range(t.count[t.offset[0] + od]):
                    for b in range(t.count[t.offset[1] + oh]):
                        r = ((t.first[t.offset[0] + od] + a * ax[0].dilation) * H
                             + t.first[t.offset[1] + oh] + b * ax[1].dilation)
                        window_rows[n_taps] = hv + r * OW
                        n_taps += 1
                if max_t is float:
                    cy_max_s1_f32(window_rows, n_taps, 1, 1, orow, OW)
                else:
                    cy_max_s1_f64(window_rows, n_taps, 1, 1, orow, OW)
                continue
            n_taps = 0
            for a in range(t.count[t.offset[0] + od]):
                for b in range(t.count[t.offset[1] + oh]):
                    r = ((t.first[t.offset[0] + od] + a * ax[0].dilation) * H
                         + t.first[t.offset[1] + oh] + b * ax[1].dilation)
                    src = hv + r * OW
                    src_at = hw + r * OW
                    if n_taps == 0:
                        for ow in range(OW):
                            orow[ow] = src[ow]
                        if with_index or OW < SHORT_ROW:
                            for ow in range(OW):
                                best_at[ow] = src_at[ow]
                    elif OW < SHORT_ROW:
                        for ow in range(OW):
                            orow[ow] = pick_at(orow[ow], src[ow], &best_at[ow], src_at[ow])
                    elif with_index:
                        for ow in range(OW):
                            # both loads unconditional, or gcc will not if-convert
                            value = src[ow]
                            at = src_at[ow]
                            take = beats(value, orow[ow])
                            orow[ow] = value if take else orow[ow]
                            best_at[ow] = at if take else best_at[ow]
                    else:
                        for ow in range(OW):
                            value = src[ow]
                            orow[ow] = value if beats(value, orow[ow]) else orow[ow]
                    n_taps += 1
            if with_index:
                for ow in range(OW):
                    ind[(od * OH + oh) * OW + ow] = best_at[ow]


# --------------------------------------------- channels-first, direct path
#
# For small windows (see DIRECT_TAPS) each output row is computed
# straight from the window's input rows: one vector loop over the row's
# interior windows per tap, in scan order, blending into the output row.  No
# scratch pass; the strided loads vectorise because the stride is a constant
# at the hot call sites.

cdef inline void _direct_interior(const max_t** rows, const int32_t* bases, Py_ssize_t n_rows,
                                  max_t* orow, int32_t* best_at, Py_ssize_t lo, Py_ssize_t hi,
                                  Py_ssize_t kernel, const Py_ssize_t stride,
                                  Py_ssize_t dilation, Py_ssize_t pad,
                                  bint with_index) noexcept nogil:
    cdef Py_ssize_t r, j, ow, offset
    cdef const max_t* row
    cdef int32_t base
    cdef uint32_t at, step = <uint32_t> stride  # unsigned: see _row_interior
    cdef max_t value
    cdef bint take
    if hi <= lo:
        return  # no full window: the tap loop below must not run
    for r in range(n_rows):
        row = rows[r]
        base = bases[r]
        for j in range(kernel):
            offset = j * dilation - pad
            at = <uint32_t> (base + lo * stride + offset)
            if r == 0 and j == 0:
                for ow in range(lo, hi):
                    orow[ow] = row[ow * stride + offset]
                if with_index or hi - lo < SHORT_ROW:
                    for ow in range(lo, hi):
                        best_at[ow] = <int32_t> at
                        at = at + step
            elif hi - lo < SHORT_ROW:
                for ow in range(lo, hi):
                    orow[ow] = pick_at(orow[ow], row[ow * stride + offset], &best_at[ow],
                                       <int32_t> at)
                    at = at + step
            elif with_index:
                for ow in range(lo, hi):
                    value = row[ow * stride + offset]
                    take = beats(value, orow[ow])
                    orow[ow] = value if take else orow[ow]
                    best_at[ow] = <int32_t> at if take else best_at[ow]
                    at = at + step
            else:
                for ow in range(lo, hi):
                    value = row[ow * stride + offset]
                    orow[ow] = value if beats(value, orow[ow]) else orow[ow]


cdef inline void _direct_border(const max_t** rows, const int32_t* bases, Py_ssize_t n_rows,
                                max_t* orow, int32_t* best_at, Py_ssize_t ow, Py_ssize_t first,
                                Py_ssize_t count, Py_ssize_t dilation) noexcept nogil:
    """One clipped window at the edge of the row, in scan order."""
    cdef Py_ssize_t r, j
    cdef max_t best = rows[0][first]
    cdef int32_t at = <int32_t> (bases[0] + first)
    for r in range(n_rows):
        for j in range(count):
            best = pick_at(best, rows[r][first + j * dilation], &at,
                           <int32_t> (bases[r] + first + j * dilation))
    orow[ow] = best
    best_at[ow] = at


cdef void _forward_plane_direct(const max_t* x, max_t* out, int64_t* ind, const Axis* ax,
                                const Tables* t, int32_t* best_at) noexcept nogil:
    """One channels-first plane, window rows read directly; best_at: scratch of OW."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t OD = ax[0].out_size, OH = ax[1].out_size, OW = ax[2].out_size
    cdef Py_ssize_t lo = t.full_lo[2], hi = t.full_hi[2]
    cdef const Py_ssize_t* first_w = t.first + t.offset[2]
    cdef const Py_ssize_t* count_w = t.count + t.offset[2]
    cdef const max_t* rows[DIRECT_ROWS]
    cdef int32_t bases[DIRECT_ROWS]
    cdef Py_ssize_t od, oh, ow, a, b, r, n_rows
    cdef const max_t* shifted[DIRECT_ROWS]
    cdef max_t* orow
    cdef int64_t* irow
    cdef bint with_index = ind != NULL
    # values only, windows 2 or 3 wide at stride 2: the hand-vectorised rows of _simd.h
    cdef bint s2 = _vector_rows(&ax[2], with_index)
    cdef bint s1 = _unit_rows(&ax[2], with_index)
    cdef bint strided = _strided_rows(&ax[2], with_index)
    cdef Py_ssize_t start = lo * ax[2].stride - ax[2].pad_before
    for od in range(OD):
        for oh in range(OH):
            n_rows = 0
            for a in range(t.count[t.offset[0] + od]):
                for b in range(t.count[t.offset[1] + oh]):
                    r = ((t.first[t.offset[0] + od] + a * ax[0].dilation) * H
                         + t.first[t.offset[1] + oh] + b * ax[1].dilation)
                    rows[n_rows] = x + r * W
                    shifted[n_rows] = rows[n_rows] + start
                    bases[n_rows] = <int32_t> (r * W)
                    n_rows += 1
            orow = out + (od * OH + oh) * OW
            if (max_t is float) and s2:
                cy_max_s2_f32(shifted, n_rows, ax[2].kernel, orow + lo, hi - lo)
            elif (max_t is double) and s2:
                cy_max_s2_f64(shifted, n_rows, ax[2].kernel, orow + lo, hi - lo)
            elif (max_t is float) and s1:
                cy_max_s1_f32(shifted, n_rows, ax[2].kernel, ax[2].dilation, orow + lo, hi - lo)
            elif (max_t is double) and s1:
                cy_max_s1_f64(shifted, n_rows, ax[2].kernel, ax[2].dilation, orow + lo, hi - lo)
            elif ax[2].stride == 1:
                _direct_interior(rows, bases, n_rows, orow, best_at, lo, hi, ax[2].kernel, 1,
                                 ax[2].dilation, ax[2].pad_before, with_index)
            elif ax[2].stride == 2:
                _direct_interior(rows, bases, n_rows, orow, best_at, lo, hi, ax[2].kernel, 2,
                                 ax[2].dilation, ax[2].pad_before, with_index)
            else:
                _direct_interior(rows, bases, n_rows, orow, best_at, lo, hi, ax[2].kernel,
                                 ax[2].stride, ax[2].dilation, ax[2].pad_before, with_index)
            for ow in range(lo):
                _direct_border(rows, bases, n_rows, orow, best_at, ow, first_w[ow], count_w[ow],
                               ax[2].dilation)
            for ow in range(hi, OW):
                _direct_border(rows, bases, n_rows, orow, best_at, ow, first_w[ow], count_w[ow],
                               ax[2].dilation)
            if with_index:
                irow = ind + (od * OH + oh) * OW
                for ow in range(OW):
                    irow[ow] = best_at[ow]


cdef void _forward_rows(const max_t* x, max_t* out, int64_t* ind, Py_ssize_t block,
                        Py_ssize_t planes, const Axis* ax, const Tables* t,
                        int32_t* best_at) noexcept nogil:
    """1-D planes ``[block * ROW_BLOCK, ...)`` (at most ROW_BLOCK of them) by
    the direct path's loops, without its per-plane set-up: short rows of
    many planes spend most of their time there."""
    cdef Py_ssize_t W = ax[2].in_size, OW = ax[2].out_size
    cdef Py_ssize_t lo = t.full_lo[2], hi = t.full_hi[2]
    cdef const Py_ssize_t* first_w = t.first + t.offset[2]
    cdef const Py_ssize_t* count_w = t.count + t.offset[2]
    cdef Py_ssize_t p, ow, last = (block + 1) * ROW_BLOCK
    cdef const max_t* row
    cdef max_t* orow
    cdef int32_t base = 0
    cdef bint with_index = ind != NULL
    cdef bint s2 = _vector_rows(&ax[2], with_index)
    cdef bint s1 = _unit_rows(&ax[2], with_index)
    cdef bint strided = _strided_rows(&ax[2], with_index)
    cdef Py_ssize_t p0 = block * ROW_BLOCK, p1 = last if last < planes else planes
    # the interior windows of all the rows in one call of _simd.h's loops
    cdef const max_t* first = x + p0 * W + lo * ax[2].stride - ax[2].pad_before
    cdef bint vector = (max_t is float or max_t is double) and (s1 or s2 or strided) and hi > lo
    if vector and strided:
        for p in range(p0, p1):
            if max_t is float:
                cy_max_strided_f32(first + (p - p0) * W, ax[2].stride, ax[2].kernel,
                                   out + p * OW + lo, hi - lo)
            elif max_t is double:
                cy_max_strided_f64(first + (p - p0) * W, ax[2].stride, ax[2].kernel,
                                   out + p * OW + lo, hi - lo)
    elif (max_t is float) and vector and s2:
        cy_max_s2_rows_f32(first, W, p1 - p0, ax[2].kernel, out + p0 * OW + lo, OW, hi - lo)
    elif (max_t is double) and vector and s2:
        cy_max_s2_rows_f64(first, W, p1 - p0, ax[2].kernel, out + p0 * OW + lo, OW, hi - lo)
    elif vector and OW == W:
        # output rows as long as the input's ("same" padding): the interiors of all the
        # rows are one run of the rows laid end to end, whose windows across two rows
        # (the border outputs between the interiors) the loop below writes again
        if max_t is float:
            cy_max_s1_f32(&first, 1, ax[2].kernel, ax[2].dilation, out + p0 * OW + lo,
                          (p1 - p0 - 1) * W + hi - lo)
        elif max_t is double:
            cy_max_s1_f64(&first, 1, ax[2].kernel, ax[2].dilation, out + p0 * OW + lo,
                          (p1 - p0 - 1) * W + hi - lo)
    elif (max_t is float) and vector:
        cy_max_s1_rows_f32(first, W, p1 - p0, ax[2].kernel, ax[2].dilation, out + p0 * OW + lo,
                           OW, hi - lo)
    elif (max_t is double) and vector:
        cy_max_s1_rows_f64(first, W, p1 - p0, ax[2].kernel, ax[2].dilation, out + p0 * OW + lo,
                           OW, hi - lo)
    if not with_index:
        _border_columns(x, out, p0, p1, &ax[2], t)
        if vector:
            return
    for p in range(p0, p1):
        row = x + p * W
        orow = out + p * OW
        if vector:
            pass  # done above
        elif ax[2].stride == 1:
            _direct_interior(&row, &base, 1, orow, best_at, lo, hi, ax[2].kernel, 1,
                             ax[2].dilation, ax[2].pad_before, with_index)
        elif ax[2].stride == 2:
            _direct_interior(&row, &base, 1, orow, best_at, lo, hi, ax[2].kernel, 2,
                             ax[2].dilation, ax[2].pad_before, with_index)
        else:
            _direct_interior(&row, &base, 1, orow, best_at, lo, hi, ax[2].kernel,
                             ax[2].stride, ax[2].dilation, ax[2].pad_before, with_index)
        if with_index:
            for ow in range(lo):
                _direct_border(&row, &base, 1, orow, best_at, ow, first_w[ow], count_w[ow],
                               ax[2].dilation)
            for ow in range(hi, OW):
                _direct_border(&row, &base, 1, orow, best_at, ow, first_w[ow], count_w[ow],
                               ax[2].dilation)
            for ow in range(OW):
                ind[p * OW + ow] = best_at[ow]


cdef inline bint _every_window_has_taps(const Tables* t, Py_ssize_t out_size) noexcept nogil:
    """Whether every window along W holds an input tap."""
    cdef Py_ssize_t ow
    for ow in range(out_size):
        if t.count[t.offset[2] + ow] < 1:
            return False
    return True


cdef int _forward_fast(const max_t* x, max_t* out, int64_t* ind, Py_ssize_t planes,
                       const Axis* ax, const Tables* t, int nthreads) noexcept nogil:
    """All planes with the direct (small windows) or separable path and
    per-thread scratch; -1: no memory."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t rows_out = ax[0].in_size * ax[1].in_size * ax[2].out_size
    # per thread: row maxima (values, offsets) and the running offsets of one output row
    cdef Py_ssize_t value_room = rows_out + 16
    # values alone at stride 1 along W with clipped windows, each of them with a tap:
    # every row padded (_padded_row_max), after its row maxima in the same scratch
    cdef Py_ssize_t pad_room = ax[2].out_size + (ax[2].kernel - 1) * ax[2].dilation + 16
    cdef bint pad_rows = ((max_t is float or max_t is double) and ind == NULL
                          and _unit_rows(&ax[2], False)
                          and (t.full_lo[2] > 0 or t.full_hi[2] < ax[2].out_size)
                          and _every_window_has_taps(t, ax[2].out_size))
    if pad_rows:
        value_room += pad_room
    cdef Py_ssize_t offset_room = rows_out + ax[2].out_size + 16
    cdef max_t* values = <max_t*> malloc(nthreads * value_room * sizeof(max_t))
    cdef int32_t* offsets = <int32_t*> malloc(nthreads * offset_room * sizeof(int32_t))
    cdef Py_ssize_t p, tid
    # the direct path when the rows are _simd.h's too: no scratch pass at all
    cdef bint vector_rows = (max_t is float or max_t is double) and _vector_rows(&ax[2], ind != NULL)
    cdef bint direct = ax[0].kernel * ax[1].kernel <= DIRECT_ROWS and (
        ax[0].kernel * ax[1].kernel * ax[2].kernel <= DIRECT_TAPS or ax[2].stride >= ax[2].kernel
        or vector_rows)
    cdef Py_ssize_t row_jobs = (planes + ROW_BLOCK - 1) // ROW_BLOCK
    if values == NULL or offsets == NULL:
        free(values)
        free(offsets)
        return -1
    if direct and ax[0].in_size == 1 and ax[1].in_size == 1:
        if nthreads > 1:
            for p in prange(row_jobs, schedule='guided', num_threads=nthreads):
                _forward_rows(x, out, ind, p, planes, ax, t, offsets + threadid() * offset_room)
        else:
            for p in range(row_jobs):
                _forward_rows(x, out, ind, p, planes, ax, t, offsets)
    elif nthreads > 1:
        for p in prange(planes, schedule='guided', num_threads=nthreads):
            tid = threadid()
            if direct:
                _forward_plane_direct(x + p * in_plane, out + p * out_plane,
                                      ind + p * out_plane if ind != NULL else NULL, ax, t,
                                      offsets + tid * offset_room)
            else:
                _forward_plane_separable(x + p * in_plane, out + p * out_plane,
                                         ind + p * out_plane if ind != NULL else NULL, ax, t,
                                         values + tid * value_room, offsets + tid * offset_room,
                                         offsets + tid * offset_room + rows_out,
                                         values + tid * value_room + rows_out + 16 if pad_rows else NULL)
    else:
        for p in range(planes):
            if direct:
                _forward_plane_direct(x + p * in_plane, out + p * out_plane,
                                      ind + p * out_plane if ind != NULL else NULL, ax, t, offsets)
            else:
                _forward_plane_separable(x + p * in_plane, out + p * out_plane,
                                         ind + p * out_plane if ind != NULL else NULL, ax, t,
                                         values, offsets, offsets + rows_out,
                                         values + rows_out + 16 if pad_rows else NULL)
    free(values)
    free(offsets)
    return 0


cdef void _forward_pixel_cl(const max_t* x, max_t* out, int64_t* ind,
                            Py_ssize_t n, Py_ssize_t od, Py_ssize_t oh, Py_ssize_t ow,
                            Py_ssize_t channels, const Axis* ax, const Tables* t,
                            bint naive) noexcept nogil:
    """One channels-last output pixel, all channels: _simd.h's channel vectors,
    or (``naive``, other types, or what they leave) the general loop, whose
    channel loop is innermost and contiguous so it vectorises."""
    cdef Py_ssize_t D = ax[0].in_size, H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t OD = ax[0].out_size, OH = ax[1].out_size, OW = ax[2].out_size
    cdef Py_ssize_t pixel = ((n * OD + od) * OH + oh) * OW + ow
    cdef Py_ssize_t fd = t.first[t.offset[0] + od], nd = t.count[t.offset[0] + od]
    cdef Py_ssize_t fh = t.first[t.offset[1] + oh], nh = t.count[t.offset[1] + oh]
    cdef Py_ssize_t fw = t.first[t.offset[2] + ow], nw = t.count[t.offset[2] + ow]
    cdef Py_ssize_t a, b, e, c, id_, ih, iw, k, done = 0
    cdef int64_t pos = (fd * H + fh) * W + fw
    cdef max_t* o = out + pixel * channels
    cdef int64_t* oi = ind + pixel * channels if ind != NULL else NULL
    cdef const max_t* row
    cdef max_t start = lowest(x)
    cdef max_t value
    cdef bint take
    cdef const max_t* taps[CL_TAPS]
    cdef int64_t tap_pos[CL_TAPS]
    if (max_t is float or max_t is double) and not naive and 0 < nd * nh * nw <= CL_TAPS:
        k = 0
        for a in range(nd):
            id_ = fd + a * ax[0].dilation
            for b in range(nh):
                ih = fh + b * ax[1].dilation
                for e in range(nw):
                    iw = fw + e * ax[2].dilation
                    taps[k] = x + (((n * D + id_) * H + ih) * W + iw) * channels
                    tap_pos[k] = (id_ * H + ih) * W + iw
                    k += 1
        done = window_max_cl(taps, k, channels, o, tap_pos, oi)
        if done == channels:
            return
    # the rest of the channels, one tap at a time over the output row
    for c in range(done, channels):
        o[c] = start
    if oi != NULL:
        for c in range(done, channels):
            oi[c] = pos
    for a in range(nd):
        id_ = fd + a * ax[0].dilation
        for b in range(nh):
            ih = fh + b * ax[1].dilation
            for e in range(nw):
                iw = fw + e * ax[2].dilation
                pos = (id_ * H + ih) * W + iw
                row = x + (((n * D + id_) * H + ih) * W + iw) * channels
                if oi == NULL:
                    for c in range(done, channels):
                        value = row[c]
                        o[c] = value if beats(value, o[c]) else o[c]
                else:
                    # branch-free selects so gcc vectorises along C
                    for c in range(done, channels):
                        value = row[c]
                        take = beats(value, o[c])
                        o[c] = value if take else o[c]
                        oi[c] = pos if take else oi[c]


cdef void _forward_row_cl(const max_t* x, max_t* out, int64_t* ind, Py_ssize_t row,
                          Py_ssize_t channels, const Axis* ax, const Tables* t,
                          bint naive) noexcept nogil:
    """One channels-last output row ``row = (n*OD + od)*OH + oh``: the windows
    whole along W in one _simd.h call (each window the selects of
    :func:`_forward_pixel_cl`, without its set-up), the others pixel by pixel."""
    cdef Py_ssize_t D = ax[0].in_size, H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t OD = ax[0].out_size, OH = ax[1].out_size, OW = ax[2].out_size
    cdef Py_ssize_t n = row // OH // OD, od = row // OH % OD, oh = row % OH
    cdef Py_ssize_t fd = t.first[t.offset[0] + od], nd = t.count[t.offset[0] + od]
    cdef Py_ssize_t fh = t.first[t.offset[1] + oh], nh = t.count[t.offset[1] + oh]
    cdef Py_ssize_t lo = t.full_lo[2], hi = t.full_hi[2], ow, a, b, e, id_, ih, iw, k
    cdef Py_ssize_t done = 0
    cdef const max_t* taps[CL_TAPS]
    cdef int64_t tap_pos[CL_TAPS]
    if ((max_t is float or max_t is double) and not naive and hi > lo and nd * nh > 0
            and nd * nh * ax[2].kernel <= CL_TAPS and cy_simd_level() >= 1):
        k = 0
        for a in range(nd):
            id_ = fd + a * ax[0].dilation
            for b in range(nh):
                ih = fh + b * ax[1].dilation
                for e in range(ax[2].kernel):
                    iw = lo * ax[2].stride - ax[2].pad_before + e * ax[2].dilation
                    taps[k] = x + (((n * D + id_) * H + ih) * W + iw) * channels
                    tap_pos[k] = (id_ * H + ih) * W + iw
                    k += 1
        done = window_max_cl_row(taps, k, channels, out + (row * OW + lo) * channels, tap_pos,
                                 ind + (row * OW + lo) * channels if ind != NULL else NULL,
                                 hi - lo, ax[2].stride * channels, ax[2].stride)
    if done != channels:  # not taken: every pixel below
        lo = hi = 0
    for ow in range(lo):
        _forward_pixel_cl(x, out, ind, n, od, oh, ow, channels, ax, t, naive)
    for ow in range(hi, OW):
        _forward_pixel_cl(x, out, ind, n, od, oh, ow, channels, ax, t, naive)


# ------------------------------------------ channels-first, small planes
#
# Small planes leave the paths above a few outputs per row, and their per-row
# work dominates (a 14x14 plane pooled k3 s2 p1 is 7 rows of 7).  Here LANES
# planes are transposed side by side, so that they are the channels of one
# channels-last plane, pooled there (every tap of a window one LANES-wide
# vector select, _simd.h's cy_max_lanes) and transposed back.  The windows'
# taps are listed once per call.  Max is exact, so the results are the other
# paths' bit for bit.

cdef int _list_taps(const Axis* ax, const Tables* t, int32_t* tap, int32_t* start) noexcept nogil:
    """Every window's taps in scan order, as plane offsets (see _simd.h's
    cy_max_lanes); 1 if a window has none (then the lanes are not used)."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t od, oh, ow, a, b, e, id_, ih, o = 0, k = 0
    for od in range(ax[0].out_size):
        for oh in range(ax[1].out_size):
            for ow in range(ax[2].out_size):
                start[o] = <int32_t> k
                for a in range(t.count[t.offset[0] + od]):
                    id_ = t.first[t.offset[0] + od] + a * ax[0].dilation
                    for b in range(t.count[t.offset[1] + oh]):
                        ih = t.first[t.offset[1] + oh] + b * ax[1].dilation
                        for e in range(t.count[t.offset[2] + ow]):
                            tap[k] = <int32_t> ((id_ * H + ih) * W + t.first[t.offset[2] + ow]
                                                + e * ax[2].dilation)
                            k += 1
                if k == start[o]:
                    return 1
                o += 1
    start[o] = <int32_t> k
    return 0


# SMALL_PLANE, or lower for the tests (see small_plane_limit)
cdef Py_ssize_t small_plane = SMALL_PLANE


cdef inline bint _by_lanes(const Axis* ax, bint with_index) noexcept nogil:
    """Whether channels-first planes are small enough for the lanes, with rows
    too short for the row paths' vector loops (measured: up to 28x28 planes
    for overlapping windows or indices, 16x16 for the rest)."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    if ax[2].out_size >= LANES or in_plane > small_plane:
        return False
    return in_plane <= SMALL_PLANE_ANY or with_index or ax[2].kernel > ax[2].stride


cdef int _forward_small(const max_t* x, max_t* out, int64_t* ind, Py_ssize_t planes,
                        const Axis* ax, const Tables* t, int nthreads) noexcept nogil:
    """All planes in the lanes, LANES per job (_kernel_common's max_by_lanes);
    -1: no memory, 1: a window without taps (not done)."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t a, o
    # taps of all windows: the product over the axes of their windows' clipped
    # sizes summed (at most out_plane * in_plane, whatever the kernel)
    cdef Py_ssize_t taps = 1, along
    for a in range(3):
        along = 0
        for o in range(ax[a].out_size):
            along += t.count[t.offset[a] + o]
        taps *= along
    cdef int32_t* tap = <int32_t*> malloc(taps * sizeof(int32_t) + 1)
    cdef int32_t* start = <int32_t*> malloc((out_plane + 1) * sizeof(int32_t))
    cdef int status = -1
    if tap != NULL and start != NULL:
        status = _list_taps(ax, t, tap, start)
    if status == 0:
        status = max_by_lanes(x, out, ind, planes, in_plane, out_plane, tap, start, nthreads)
    free(tap)
    free(start)
    return status


cdef int _forward(const max_t* x, max_t* out, int64_t* ind, Py_ssize_t lead,
                  Py_ssize_t channels, bint channels_last, const Axis* ax,
                  int nthreads, bint naive) noexcept nogil:
    """``lead`` is planes (channels-first) or batch (channels-last).

    ``naive`` forces the general loops (the tests compare every fast path
    against them).
    """
    cdef Tables t
    cdef Py_ssize_t p, in_plane, out_plane, pixels
    cdef int status = 0
    if make_tables(ax, &t, False) != 0:
        return -1
    in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef bint fast = (not channels_last and not naive and in_plane < INT32_MAX
                      and ax[0].in_size * ax[1].in_size * ax[2].out_size <= SCRATCH_LIMIT)
    if (max_t is float or max_t is double) and fast and _by_lanes(ax, ind != NULL):
        status = _forward_small(x, out, ind, lead, ax, &t, nthreads)
        if status == 1:  # a window without taps: the row paths
            status = _forward_fast(x, out, ind, lead, ax, &t, nthreads)
    elif fast:
        status = _forward_fast(x, out, ind, lead, ax, &t, nthreads)
    elif not channels_last:
        if nthreads > 1:
            for p in prange(lead, schedule='guided', num_threads=nthreads):
                _forward_plane(x + p * in_plane, out + p * out_plane,
                               ind + p * out_plane if ind != NULL else NULL, ax, &t)
        else:
            for p in range(lead):
                _forward_plane(x + p * in_plane, out + p * out_plane,
                               ind + p * out_plane if ind != NULL else NULL, ax, &t)
    else:
        pixels = lead * ax[0].out_size * ax[1].out_size  # output rows
        if nthreads > 1:
            for p in prange(pixels, schedule='guided', num_threads=nthreads):
                _forward_row_cl(x, out, ind, p, channels, ax, &t, naive)
        else:
            for p in range(pixels):
                _forward_row_cl(x, out, ind, p, channels, ax, &t, naive)
    free_tables(&t)
    return status


def max_pool_forward(cnp.ndarray x, cnp.ndarray out, cnp.ndarray indices,
                     tuple geometry, bint channels_last, int nthreads, bint naive=False):
    """Fill ``out`` (and ``indices`` unless None) from ``x``.

    x: IN, C-contiguous, laid out as ``(planes, D, H, W)`` or ``(N, D, H, W, C)``
       (any shape with those bytes; channels-last takes C from the last dim).
    out: OUT, same layout with the output sizes, same dtype as ``x``.
    indices: OUT, int64, shaped like ``out``, or None.
    """
    cdef Axis ax[3]
    fill_axes(ax, geometry)
    # any shape with these bytes: the facade passes its arrays without reshaping
    cdef Py_ssize_t channels = x.shape[x.ndim - 1] if channels_last else 1
    cdef Py_ssize_t lead = lead_of(x, ax, channels)
    cdef void* xp = cnp.PyArray_DATA(x)
    cdef void* op = cnp.PyArray_DATA(out)
    cdef int64_t* ip = <int64_t*> cnp.PyArray_DATA(indices) if indices is not None else NULL
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef int status = 0
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            status = _forward[float](<float*> xp, <float*> op, ip, lead, channels, channels_last, ax, nthreads, naive)
        elif typenum == cnp.NPY_FLOAT64:
            status = _forward[double](<double*> xp, <double*> op, ip, lead, channels, channels_last, ax, nthreads, naive)
        elif typenum == cnp.NPY_INT8:
            status = _forward[int8_t](<int8_t*> xp, <int8_t*> op, ip, lead, channels, channels_last, ax, nthreads, naive)
        elif typenum == cnp.NPY_INT16:
            status = _forward[int16_t](<int16_t*> xp, <int16_t*> op, ip, lead, channels, channels_last, ax, nthreads, naive)
        elif typenum == cnp.NPY_INT32:
            status = _forward[int32_t](<int32_t*> xp, <int32_t*> op, ip, lead, channels, channels_last, ax, nthreads, naive)
        elif typenum == cnp.NPY_INT64:
            status = _forward[int64_t](<int64_t*> xp, <int64_t*> op, ip, lead, channels, channels_last, ax, nthreads, naive)
        elif typenum == cnp.NPY_UINT8:
            status = _forward[uint8_t](<uint8_t*> xp, <uint8_t*> op, ip, lead, channels, channels_last, ax, nthreads, naive)
        elif typenum == cnp.NPY_UINT16:
            status = _forward[uint16_t](<uint16_t*> xp, <uint16_t*> op, ip, lead, channels, channels_last, ax, nthreads, naive)
        elif typenum == cnp.NPY_UINT32:
            status = _forward[uint32_t](<uint32_t*> xp, <uint32_t*> op, ip, lead, channels, channels_last, ax, nthreads, naive)
        elif typenum == cnp.NPY_UINT64:
            status = _forward[uint64_t](<uint64_t*> xp, <uint64_t*> op, ip, lead, channels, channels_last, ax, nthreads, naive)
        else:
            status = -2
    if status == -1:
        raise MemoryError("cypool: out of memory for window tables")
    if status == -2:
        raise TypeError(f"max pooling kernel has no loop for dtype {x.dtype}")


def simd_level(cap=None):
    """The vector path of the width-2 stride-2 rows: 2 AVX2, 1 SSE2, 0 portable C.

    ``cap`` (tests only) lowers it for this module, so every path can be
    checked on one machine; ``simd_level(2)`` restores the best one.
    """
    if cap is not None:
        return cy_simd_cap(cap)
    return cy_simd_level()


def small_plane_limit(limit=None):
    """The largest channels-first plane (elements) pooled in lanes (see
    ``_forward_small``); ``limit`` (tests only) sets it, 0 turns the lanes
    off so the row paths can be checked on small planes, None only reads it."""
    global small_plane
    if limit is not None:
        small_plane = min(<Py_ssize_t> limit, <Py_ssize_t> SMALL_PLANE)
    return small_plane


# --------------------------------------------------------------- backward

def count_bad_indices(cnp.ndarray indices, Py_ssize_t plane_size, int nthreads):
    """Number of entries of the int64 array outside ``[0, plane_size)``."""
    cdef const int64_t* ip = <const int64_t*> cnp.PyArray_DATA(indices)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(indices), i
    cdef Py_ssize_t bad = 0
    with nogil:
        if nthreads > 1:
            for i in prange(n, schedule='guided', num_threads=nthreads):
                bad += (ip[i] < 0) | (ip[i] >= plane_size)
        else:
            for i in range(n):
                bad += (ip[i] < 0) | (ip[i] >= plane_size)
    return bad


cdef Py_ssize_t _scatter_plane(const real_t* grad_out, const int64_t* ind, real_t* grad_in,
                               Py_ssize_t out_plane, Py_ssize_t in_plane,
                               bint zeroed) noexcept nogil:
    """Zero one plane and add each gradient at its index; the number of
    indices outside the plane (skipped).  A ``zeroed`` plane (fresh zero
    pages) is only written once a page, so that the additions' first touch of
    a page is not a read (which would map the shared zero page and fault
    again on the write)."""
    cdef Py_ssize_t o, bad = 0
    cdef int64_t at
    if zeroed:
        o = 0
        while o < in_plane:
            grad_in[o] = 0
            o += PAGE_ELEMENTS
    else:
        memset(grad_in, 0, in_plane * sizeof(real_t))
    for o in range(out_plane):
        at = ind[o]
        if 0 <= at < in_plane:
            grad_in[at] += grad_out[o]
        else:
            bad += 1
    return bad


cdef Py_ssize_t _scatter_block_cl(const real_t* grad_out, const int64_t* ind, real_t* grad_in,
                                  Py_ssize_t job, Py_ssize_t blocks, Py_ssize_t channels,
                                  Py_ssize_t out_plane, Py_ssize_t in_plane,
                                  bint zeroed) noexcept nogil:
    """Channels ``[c0, c1)`` of one batch element, channels-last (``zeroed``:
    fresh zero pages, not zeroed again; the pages no gradient reaches are
    never touched)."""
    cdef Py_ssize_t n = job // blocks
    cdef Py_ssize_t c0 = (job % blocks) * CHANNEL_BLOCK
    cdef Py_ssize_t c1 = c0 + CHANNEL_BLOCK if c0 + CHANNEL_BLOCK < channels else channels
    cdef Py_ssize_t s, c, bad = 0
    cdef real_t* gi = grad_in + n * in_plane * channels
    cdef const real_t* go = grad_out + n * out_plane * channels
    cdef const int64_t* ii = ind + n * out_plane * channels
    if zeroed:
        pass
    elif blocks == 1:  # the batch element's channels are one run of memory
        memset(gi, 0, in_plane * channels * sizeof(real_t))
    else:
        for s in range(in_plane):
            for c in range(c0, c1):
                gi[s * channels + c] = 0
    cdef int64_t at
    for s in range(out_plane):
        for c in range(c0, c1):
            at = ii[s * channels + c]
            if 0 <= at < in_plane:
                gi[at * channels + c] += go[s * channels + c]
            else:
                bad += 1
    return bad


cdef Py_ssize_t _scatter_staged(const real_t* grad_out, const int64_t* ind, real_t* grad_in,
                                Py_ssize_t job, Py_ssize_t group, Py_ssize_t planes,
                                Py_ssize_t out_plane, Py_ssize_t in_plane,
                                real_t* stage) noexcept nogil:
    """Planes ``[job * group, ...)`` (at most ``group``) scattered by
    :func:`_scatter_plane` into ``stage``, then streamed to ``grad_in``."""
    cdef Py_ssize_t p0 = job * group
    cdef Py_ssize_t n = group if p0 + group <= planes else planes - p0
    cdef Py_ssize_t p, bad = 0
    for p in range(n):
        bad += _scatter_plane(grad_out + (p0 + p) * out_plane, ind + (p0 + p) * out_plane,
                              stage + p * in_plane, out_plane, in_plane, False)
    cy_stream_copy(grad_in + p0 * in_plane, stage, n * in_plane * sizeof(real_t))
    return bad


cdef Py_ssize_t _backward(const real_t* grad_out, const int64_t* ind, real_t* grad_in,
                          Py_ssize_t lead, Py_ssize_t channels, bint channels_last,
                          Py_ssize_t out_plane, Py_ssize_t in_plane, int nthreads,
                          bint zeroed) noexcept nogil:
    cdef Py_ssize_t p, blocks, jobs, bad = 0
    cdef Py_ssize_t group = stage_group(lead, in_plane * sizeof(real_t))
    cdef real_t* stages
    if (not channels_last and not zeroed and group > 0
            and in_plane >= SPARSE_SCATTER * out_plane):
        stages = <real_t*> malloc(nthreads * STAGE_BYTES)
        if stages != NULL:
            jobs = (lead + group - 1) // group
            if nthreads > 1:
                for p in prange(jobs, schedule='guided', num_threads=nthreads):
                    bad += _scatter_staged(grad_out, ind, grad_in, p, group, lead, out_plane,
                                           in_plane, stages + threadid() * (STAGE_BYTES // sizeof(real_t)))
            else:
                for p in range(jobs):
                    bad += _scatter_staged(grad_out, ind, grad_in, p, group, lead, out_plane,
                                           in_plane, stages)
            free(stages)
            return bad
    if not channels_last:
        if nthreads > 1:
            for p in prange(lead, schedule='guided', num_threads=nthreads):
                bad += _scatter_plane(grad_out + p * out_plane, ind + p * out_plane,
                                      grad_in + p * in_plane, out_plane, in_plane, zeroed)
        else:
            for p in range(lead):
                bad += _scatter_plane(grad_out + p * out_plane, ind + p * out_plane,
                                      grad_in + p * in_plane, out_plane, in_plane, zeroed)
        return bad
    blocks = (channels + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK
    jobs = lead * blocks
    if nthreads > 1:
        for p in prange(jobs, schedule='guided', num_threads=nthreads):
            bad += _scatter_block_cl(grad_out, ind, grad_in, p, blocks, channels, out_plane,
                                     in_plane, zeroed)
    else:
        for p in range(jobs):
            bad += _scatter_block_cl(grad_out, ind, grad_in, p, blocks, channels, out_plane,
                                     in_plane, zeroed)
    return bad


def max_pool_backward(cnp.ndarray grad_out, cnp.ndarray indices, cnp.ndarray grad_in,
                      Py_ssize_t in_plane, bint channels_last, int nthreads,
                      bint zeroed=False):
    """Scatter-add ``grad_out`` into ``grad_in`` at ``indices``; ``zeroed``:
    ``grad_in`` is fresh zero pages (the kernel skips zeroing it).

    grad_out: IN, float32/float64, ``(planes, out_plane)`` or ``(N, out_plane, C)``.
    indices: IN, int64, shaped like ``grad_out``; entries outside ``[0, in_plane)``
        are skipped and counted (the caller raises and drops ``grad_in``).
    grad_in: OUT, same dtype, ``(planes, in_plane)`` or ``(N, in_plane, C)``.

    Returns the number of indices outside ``[0, in_plane)``.
    """
    cdef Py_ssize_t lead = grad_out.shape[0]
    cdef Py_ssize_t out_plane = grad_out.shape[1]
    cdef Py_ssize_t channels = grad_out.shape[2] if channels_last else 1
    cdef void* gop = cnp.PyArray_DATA(grad_out)
    cdef void* gip = cnp.PyArray_DATA(grad_in)
    cdef const int64_t* ip = <const int64_t*> cnp.PyArray_DATA(indices)
    cdef int typenum = cnp.PyArray_TYPE(grad_out)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError(f"max pooling backward has no loop for dtype {grad_out.dtype}")
    cdef Py_ssize_t bad
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            bad = _backward[float](<float*> gop, ip, <float*> gip, lead, channels, channels_last, out_plane, in_plane, nthreads, zeroed)
        else:
            bad = _backward[double](<double*> gop, ip, <double*> gip, lead, channels, channels_last, out_plane, in_plane, nthreads, zeroed)
    return bad
