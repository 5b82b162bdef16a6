# cython: language_level=3
"""Stochastic pooling (Zeiler & Fergus 2013): forward and backward kernels.

Each window's activations count by their positive part ``a+ = max(a, 0)``
(NaN kept, so it propagates).  With ``S = sum(a+)`` and ``Q = sum(a+**2)``,
both accumulated in float64 in scan order:

- training: given one uniform ``u`` in ``[0, 1)`` per output, take the first
  element in scan order whose running sum of ``a+`` exceeds ``u * S`` (so
  element ``i`` is taken with probability ``a_i+ / S``) or stops being finite
  (the first NaN or +inf, or where the sum overflows); output its ``a+`` and
  its plane offset.  With ``S = 0`` no element qualifies: output 0 and the
  window's first in-bounds element.
- eval: output ``Q / S`` (the expectation of the training output), 0 when
  ``S = 0``.

Padding is never read.  Windows come from the max-pooling tables
(dilation 1).  Layouts as in ``_max.pyx``: channels-first
``(planes, D, H, W)``, channels-last ``(N, D, H, W, C)``.

The uniforms are NumPy's ``Generator.random()`` draws, one per output in
channels-first order ``(N, C, *out)``: either given as an array (in the
output's layout), or, for NumPy's default bit generator PCG64, drawn inside
the kernel from a copy of the generator's state (``Stream``): the same
values, but every thread jumps straight to its planes' draws instead of
waiting on one sequential draw of them all.
"""

cimport numpy as cnp
from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from cypool._dtypes cimport real_t
from cypool._geometry cimport Axis
from cypool._kernel_common cimport Tables, fill_axes, free_tables, make_tables

cnp.import_array()

cdef enum:
    # Channels of one channels-last backward job (see _max.pyx).
    CHANNEL_BLOCK = 64
    # Windows of at most MAX_TAPS elements take the vector paths (their
    # running sums sit in per-thread scratch, MAX_TAPS rows of it).
    MAX_TAPS = 64


cdef extern from *:
    """
    #include <string.h>

    /* NumPy's PCG64: a 128-bit LCG, state = state * M + inc, each step's
       output the XSL-RR of the new state; random() is (output >> 11) * 2**-53.
       128-bit arithmetic on two uint64 halves, so MSVC builds it too. */
    #include <stdint.h>

    typedef struct { uint64_t hi, lo; } cypool_u128;

    static CYTHON_INLINE cypool_u128 cypool_u128_of(uint64_t hi, uint64_t lo)
    {
        cypool_u128 r;
        r.hi = hi;
        r.lo = lo;
        return r;
    }

    /* the full 128-bit product of two uint64 */
    static CYTHON_INLINE cypool_u128 cypool_mul64(uint64_t a, uint64_t b)
    {
    #if defined(__SIZEOF_INT128__)
        unsigned __int128 p = (unsigned __int128) a * b;
        return cypool_u128_of((uint64_t) (p >> 64), (uint64_t) p);
    #else
        uint64_t a0 = a & 0xffffffffULL, a1 = a >> 32, b0 = b & 0xffffffffULL, b1 = b >> 32;
        uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
        uint64_t mid = (p00 >> 32) + (p01 & 0xffffffffULL) + (p10 & 0xffffffffULL);
        return cypool_u128_of(p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32),
                              (mid << 32) | (p00 & 0xffffffffULL));
    #endif
    }

    /* a * b + c modulo 2**128 */
    static CYTHON_INLINE cypool_u128 cypool_muladd128(cypool_u128 a, cypool_u128 b, cypool_u128 c)
    {
        cypool_u128 r = cypool_mul64(a.lo, b.lo);
        r.hi += a.hi * b.lo + a.lo * b.hi;
        r.lo += c.lo;
        r.hi += c.hi + (r.lo < c.lo);
        return r;
    }

    static const cypool_u128 cypool_pcg64_mult = {2549297995355413924ULL, 4865540595714422341ULL};

    /* the state after delta steps (PCG's jump-ahead, O(log delta)) */
    static cypool_u128 cypool_pcg64_advance(cypool_u128 state, cypool_u128 inc, uint64_t delta)
    {
        cypool_u128 acc_mult = cypool_u128_of(0, 1), acc_plus = cypool_u128_of(0, 0);
        cypool_u128 cur_mult = cypool_pcg64_mult, cur_plus = inc, one = cypool_u128_of(0, 1);
        cypool_u128 zero = cypool_u128_of(0, 0);
        while (delta > 0) {
            if (delta & 1) {
                acc_mult = cypool_muladd128(acc_mult, cur_mult, zero);
                acc_plus = cypool_muladd128(acc_plus, cur_mult, cur_plus);
            }
            cur_plus = cypool_muladd128(cypool_muladd128(cur_mult, one, one), cur_plus, zero);
            cur_mult = cypool_muladd128(cur_mult, cur_mult, zero);
            delta >>= 1;
        }
        return cypool_muladd128(acc_mult, state, acc_plus);
    }

    static CYTHON_INLINE double cypool_pcg64_uniform(cypool_u128* state, cypool_u128 inc)
    {
        uint64_t mixed, rot;
        *state = cypool_muladd128(*state, cypool_pcg64_mult, inc);
        mixed = state->hi ^ state->lo;
        rot = state->hi >> 58;
        mixed = (mixed >> rot) | (mixed << ((0 - rot) & 63));
        return (double) (mixed >> 11) * (1.0 / 9007199254740992.0);
    }

    /* out[i] = draw start + i of the stream, for 0 <= i < n: two interleaved
       halves, so the 128-bit steps of one do not wait on the other's (more
       halves spill the states out of registers and are slower). */
    static void cypool_pcg64_uniforms(cypool_u128 state, cypool_u128 inc, uint64_t start,
                                      double* out, Py_ssize_t n)
    {
        Py_ssize_t first = (n + 1) / 2, second = n - first, i;
        cypool_u128 a = cypool_pcg64_advance(state, inc, start);
        cypool_u128 b = cypool_pcg64_advance(state, inc, start + (uint64_t) first);
        for (i = 0; i < second; i++) {
            out[i] = cypool_pcg64_uniform(&a, inc);
            out[first + i] = cypool_pcg64_uniform(&b, inc);
        }
        if (first > second)
            out[second] = cypool_pcg64_uniform(&a, inc);
    }

    /* max(a, 0) keeping NaN, as a double, for the vector loops.  float: a bit
       mask select, since with a ternary gcc compares the float, sinks the
       conversion into a branch and does not vectorise; double: a plain
       select (a mask of 64-bit lanes does not vectorise either). */
    static CYTHON_INLINE double cypool_positive_float(float a)
    {
        uint32_t bits, mask = (a <= 0.0f) ? 0 : ~(uint32_t) 0;
        memcpy(&bits, &a, 4);
        bits &= mask;
        memcpy(&a, &bits, 4);
        return (double) a;
    }

    static CYTHON_INLINE double cypool_positive_double(double a)
    {
        return a <= 0.0 ? 0.0 : a;
    }
    """
    ctypedef struct cypool_u128:
        uint64_t hi
        uint64_t lo
    cypool_u128 cypool_u128_of(uint64_t hi, uint64_t lo) nogil
    cypool_u128 cypool_pcg64_advance(cypool_u128 state, cypool_u128 inc, uint64_t delta) nogil
    void cypool_pcg64_uniforms(cypool_u128 state, cypool_u128 inc, uint64_t start, double* out,
                               Py_ssize_t n) nogil
    double cypool_positive_float(float a) nogil
    double cypool_positive_double(double a) nogil


cdef struct Stream:
    # a PCG64 state and increment; draws are numbered from 0 after ``state``
    cypool_u128 state
    cypool_u128 inc


cdef int _fill_stream(Stream* stream, tuple words) except -1:
    """``words``: the state and increment as four uint64, high halves first."""
    state_hi, state_lo, inc_hi, inc_lo = words
    stream.state = cypool_u128_of(state_hi, state_lo)
    stream.inc = cypool_u128_of(inc_hi, inc_lo)
    return 0


def pcg64_uniforms(tuple words, uint64_t start, Py_ssize_t n):
    """Draws ``start .. start + n - 1`` of the PCG64 stream ``words`` (state and
    increment as four uint64, high halves first): what ``n`` more calls of
    ``Generator.random()`` would give after ``start`` of them."""
    cdef Stream stream
    _fill_stream(&stream, words)
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, [n], cnp.NPY_FLOAT64, 0)
    with nogil:
        cypool_pcg64_uniforms(stream.state, stream.inc, start, <double*> cnp.PyArray_DATA(out), n)
    return out


def pcg64_advance(tuple words, uint64_t delta):
    """The state of stream ``words`` after ``delta`` draws, as (high, low) uint64."""
    cdef Stream stream
    _fill_stream(&stream, words)
    cdef cypool_u128 state = cypool_pcg64_advance(stream.state, stream.inc, delta)
    return state.hi, state.lo


# ------------------------------------------------------------ naive loops

cdef struct Window:
    # first in-bounds position and number of taps along depth, height, width
    Py_ssize_t first[3]
    Py_ssize_t count[3]


cdef inline double _positive(real_t a) noexcept nogil:
    """``max(a, 0)`` that keeps NaN (converted first: a ternary holding the
    conversion would stop gcc from vectorising the loops using this)."""
    cdef double value = <double> a
    return 0.0 if value <= 0 else value


cdef inline void _window(const Tables* t, const Axis* ax, Py_ssize_t o,
                         Window* w) noexcept nogil:
    """The window of flat output position ``o`` inside one plane."""
    cdef Py_ssize_t ow = o % ax[2].out_size
    cdef Py_ssize_t rest = o // ax[2].out_size
    cdef Py_ssize_t oh = rest % ax[1].out_size
    cdef Py_ssize_t od = rest // ax[1].out_size
    w.first[0] = t.first[t.offset[0] + od]
    w.count[0] = t.count[t.offset[0] + od]
    w.first[1] = t.first[t.offset[1] + oh]
    w.count[1] = t.count[t.offset[1] + oh]
    w.first[2] = t.first[t.offset[2] + ow]
    w.count[2] = t.count[t.offset[2] + ow]


cdef inline void _sums(const real_t* x, Py_ssize_t step, const Axis* ax, const Window* w,
                       double* total, double* squares) noexcept nogil:
    """``S`` and ``Q`` of one window; ``x`` is the plane's first element and
    ``step`` the distance between spatial neighbours (1, or C)."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t a, b, e
    cdef double v, s = 0, q = 0
    for a in range(w.first[0], w.first[0] + w.count[0]):
        for b in range(w.first[1], w.first[1] + w.count[1]):
            for e in range(w.first[2], w.first[2] + w.count[2]):
                v = _positive(x[((a * H + b) * W + e) * step])
                s = s + v
                q = q + v * v
    total[0] = s
    squares[0] = q


cdef inline void _sample(const real_t* x, Py_ssize_t step, const Axis* ax, const Window* w,
                         double u, real_t* value, int64_t* index) noexcept nogil:
    """The training output of one window (see the module docstring)."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t a, b, e, pos
    cdef double total, squares, threshold, v, running = 0
    _sums(x, step, ax, w, &total, &squares)
    threshold = u * total
    for a in range(w.first[0], w.first[0] + w.count[0]):
        for b in range(w.first[1], w.first[1] + w.count[1]):
            for e in range(w.first[2], w.first[2] + w.count[2]):
                pos = (a * H + b) * W + e
                v = _positive(x[pos * step])
                running = running + v
                if running > threshold or not (running < INFINITY):
                    value[0] = <real_t> v
                    index[0] = pos
                    return
    value[0] = 0
    index[0] = (w.first[0] * H + w.first[1]) * W + w.first[2]


cdef inline void _pool_one(const real_t* x, Py_ssize_t step, const Axis* ax, const Window* w,
                           bint training, double u, real_t* value,
                           int64_t* index) noexcept nogil:
    cdef double total, squares
    cdef int64_t unused
    if training:
        _sample(x, step, ax, w, u, value, index if index != NULL else &unused)
    else:
        _sums(x, step, ax, w, &total, &squares)
        value[0] = <real_t> (squares / total) if total != 0 else 0


cdef void _forward_plane(const real_t* x, const double* u, real_t* out, int64_t* ind,
                         const Axis* ax, const Tables* t, bint training) noexcept nogil:
    """One channels-first plane, window by window: the general loop."""
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t o
    cdef Window w
    for o in range(out_plane):
        _window(t, ax, o, &w)
        _pool_one(x, 1, ax, &w, training, u[o] if training else 0, &out[o],
                  &ind[o] if ind != NULL else NULL)


cdef void _forward_pixel_cl(const real_t* x, const double* u, Py_ssize_t u_step,
                            real_t* out, int64_t* ind, Py_ssize_t pixel, Py_ssize_t channels,
                            const Axis* ax, const Tables* t, bint training) noexcept nogil:
    """One channels-last output pixel, all channels; channel ``c``'s uniform is
    ``u[c * u_step]``."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t n = pixel // out_plane
    cdef Py_ssize_t c, at
    cdef Window w
    _window(t, ax, pixel % out_plane, &w)
    for c in range(channels):
        at = pixel * channels + c
        _pool_one(x + n * in_plane * channels + c, channels, ax, &w, training,
                  u[c * u_step] if training else 0, &out[at], &ind[at] if ind != NULL else NULL)


# ------------------------------------------- channels-first, vector path
#
# One output row at a time, over its windows that are whole along W (the
# border windows take the general loop): pass 1 visits the window's
# elements in scan order (rows, then taps along W), each a vector loop over
# the output columns, and keeps the running sums of a+ after every element;
# pass 2 counts, per output, the elements whose running sum has not yet
# passed u * S.  The running sum only grows (a+ >= 0, and once infinite or
# NaN it stays so), so that count is the index of the first element that
# passes: the general loop's choice, with the same float64 sums.

cdef inline double _vector_positive(real_t a) noexcept nogil:
    """:func:`_positive` in the form gcc vectorises (see the C helpers)."""
    if real_t is float:
        return cypool_positive_float(a)
    return cypool_positive_double(a)


cdef struct RowTaps:
    # the window rows of one output row, and the plane offset of each tap
    # (row, then position along W) for output column 0
    const void* rows[MAX_TAPS]
    Py_ssize_t n_rows
    int64_t offset[MAX_TAPS + 1]    # and a sentinel
    Py_ssize_t n_taps


cdef inline void _row_taps(const real_t* x, const Axis* ax, const Tables* t, Py_ssize_t od,
                           Py_ssize_t oh, RowTaps* taps) noexcept nogil:
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t a, b, j, r
    taps.n_rows = 0
    taps.n_taps = 0
    for a in range(t.count[t.offset[0] + od]):
        for b in range(t.count[t.offset[1] + oh]):
            r = (t.first[t.offset[0] + od] + a) * H + t.first[t.offset[1] + oh] + b
            taps.rows[taps.n_rows] = <const void*> (x + r * W)
            taps.n_rows += 1
            for j in range(ax[2].kernel):
                taps.offset[taps.n_taps] = r * W + j - ax[2].pad_before
                taps.n_taps += 1


cdef inline void _tap_sums(const real_t* row, Py_ssize_t lo, Py_ssize_t hi,
                           const Py_ssize_t stride, Py_ssize_t offset, bint first,
                           bint training, double* total, double* squares,
                           double* after) noexcept nogil:
    """Add one tap (``row[ow * stride + offset]``) to the window sums of columns
    [lo, hi), starting them when ``first``; training also keeps the running
    sum in ``after``, eval adds a+**2 to ``squares`` (``after``: scratch)."""
    cdef Py_ssize_t ow
    cdef double a
    if training:
        # a+ and its running sum in one loop: a plain select of the double
        # vectorises here (the float takes a bit mask, see the C helpers)
        if first:
            for ow in range(lo, hi):
                a = _vector_positive(row[ow * stride + offset])
                total[ow] = a
                after[ow] = a
        else:
            for ow in range(lo, hi):
                a = _vector_positive(row[ow * stride + offset])
                total[ow] = total[ow] + a
                after[ow] = total[ow]
        return
    if real_t is double:
        # with a * a in the loop gcc moves the select into branches: a+
        # goes through scratch
        for ow in range(lo, hi):
            after[ow] = _vector_positive(row[ow * stride + offset])
    for ow in range(lo, hi):
        if real_t is double:
            a = after[ow]
        else:
            a = _vector_positive(row[ow * stride + offset])
        total[ow] = a if first else total[ow] + a
        squares[ow] = a * a if first else squares[ow] + a * a


cdef inline void _pair_sums(const real_t* row, Py_ssize_t lo, Py_ssize_t hi,
                            const Py_ssize_t stride, Py_ssize_t offset, bint first,
                            double* total, double* after, double* after_next) noexcept nogil:
    """Training, the two taps of one row of a window 2 wide (the common
    case) in one pass: the same additions in the same order as two
    :func:`_tap_sums`."""
    cdef Py_ssize_t ow
    cdef double a, b, running
    for ow in range(lo, hi):
        a = _vector_positive(row[ow * stride + offset])
        b = _vector_positive(row[ow * stride + offset + 1])
        running = a if first else total[ow] + a
        after[ow] = running
        running = running + b
        after_next[ow] = running
        total[ow] = running


cdef inline void _running_sums(const RowTaps* taps, Py_ssize_t lo, Py_ssize_t hi,
                               Py_ssize_t kernel, const Py_ssize_t stride, Py_ssize_t pad,
                               bint training, double* total, double* squares,
                               double* running, Py_ssize_t room,
                               const real_t* type_tag) noexcept nogil:
    """Pass 1 over columns [lo, hi): ``total`` (S), and ``squares`` (Q, eval) or
    the running sum after every tap (``running + tap * room``, training).
    ``stride`` is a constant at the hot call sites so the strided loads vectorise."""
    cdef Py_ssize_t r, j, tap = 0
    cdef const real_t* row
    for r in range(taps.n_rows):
        row = <const real_t*> taps.rows[r]
        if training and kernel == 2:
            _pair_sums(row, lo, hi, stride, -pad, tap == 0, total, running + tap * room,
                       running + (tap + 1) * room)
            tap += 2
            continue
        for j in range(kernel):
            _tap_sums(row, lo, hi, stride, j - pad, tap == 0, training, total, squares,
                      running + tap * room if training else running)
            tap += 1


cdef inline double _short(double running, double threshold) noexcept nogil:
    """1 while a running sum has not yet passed (see :func:`_sample`), else 0."""
    return 0.0 if (running > threshold) | (not (running < INFINITY)) else 1.0


cdef void _forward_row(const real_t* x, const double* u, real_t* out, int64_t* ind,
                       const Axis* ax, const Tables* t, bint training, Py_ssize_t od,
                       Py_ssize_t oh, double* scratch) noexcept nogil:
    """Output row (od, oh) of one channels-first plane; ``u``, ``out`` and
    ``ind`` point at the row.  scratch: (MAX_TAPS + 3) * OW doubles."""
    cdef Py_ssize_t OW = ax[2].out_size, stride = ax[2].stride, pad = ax[2].pad_before
    cdef Py_ssize_t lo = t.full_lo[2], hi = t.full_hi[2]
    cdef Py_ssize_t ow, tap, chosen
    cdef double* total = scratch
    cdef double* other = scratch + OW      # Q (eval) or u * S (training)
    cdef double* count = scratch + 2 * OW
    cdef double* running = scratch + 3 * OW
    cdef double* after
    cdef double s, threshold
    cdef real_t value
    cdef int64_t at
    cdef RowTaps taps
    cdef Window w
    _row_taps(x, ax, t, od, oh, &taps)
    if hi > lo:
        if stride == 1:
            _running_sums(&taps, lo, hi, ax[2].kernel, 1, pad, training, total, other, running,
                          OW, x)
        elif stride == 2:
            _running_sums(&taps, lo, hi, ax[2].kernel, 2, pad, training, total, other, running,
                          OW, x)
        else:
            _running_sums(&taps, lo, hi, ax[2].kernel, stride, pad, training, total, other,
                          running, OW, x)
    if training:
        if taps.n_taps == 4:
            # 2x2 windows, the common case: every running sum in one pass
            for ow in range(lo, hi):
                threshold = u[ow] * total[ow]
                count[ow] = (_short(running[ow], threshold)
                             + _short(running[OW + ow], threshold)
                             + _short(running[2 * OW + ow], threshold)
                             + _short(running[3 * OW + ow], threshold))
        else:
            for ow in range(lo, hi):
                other[ow] = u[ow] * total[ow]
                count[ow] = 0
            for tap in range(taps.n_taps):
                after = running + tap * OW
                for ow in range(lo, hi):
                    count[ow] = count[ow] + _short(after[ow], other[ow])
        # The element taken has a+ > 0 (or is NaN or +inf): a zero a+ leaves the
        # running sum where it was, and that did not pass.  So its value is x
        # itself; none taken (count == n_taps) gives 0 at the first element,
        # the sentinel offset.  No branch on the data: it would mispredict.
        taps.offset[taps.n_taps] = taps.offset[0]
        for ow in range(lo, hi):
            chosen = <Py_ssize_t> count[ow]
            at = taps.offset[chosen] + ow * stride
            value = x[at]
            out[ow] = value if chosen < taps.n_taps else 0
            if ind != NULL:
                ind[ow] = at
    else:
        for ow in range(lo, hi):
            s = total[ow]
            # S == 0 only when every a+ is 0, so Q / 1 is the 0 wanted
            out[ow] = <real_t> (other[ow] / (s if s != 0 else 1.0))
    # the border windows, clipped along W ([lo, hi) is empty when none is whole)
    w.first[0] = t.first[t.offset[0] + od]
    w.count[0] = t.count[t.offset[0] + od]
    w.first[1] = t.first[t.offset[1] + oh]
    w.count[1] = t.count[t.offset[1] + oh]
    for ow in range(lo if hi > lo else OW):
        _border_one(x, u, out, ind, ax, t, training, &w, ow)
    for ow in range(hi if hi > lo else OW, OW):
        _border_one(x, u, out, ind, ax, t, training, &w, ow)


cdef inline void _border_one(const real_t* x, const double* u, real_t* out, int64_t* ind,
                             const Axis* ax, const Tables* t, bint training, Window* w,
                             Py_ssize_t ow) noexcept nogil:
    """Output column ``ow`` of a row (``w`` holds the row's depth and height
    extents) by the general loop."""
    cdef int64_t unused
    w.first[2] = t.first[t.offset[2] + ow]
    w.count[2] = t.count[t.offset[2] + ow]
    _pool_one(x, 1, ax, w, training, u[ow] if training else 0, &out[ow],
              &ind[ow] if ind != NULL else &unused)


cdef void _forward_plane_fast(const real_t* x, const double* u, real_t* out, int64_t* ind,
                              const Axis* ax, const Tables* t, bint training,
                              double* scratch) noexcept nogil:
    """One channels-first plane by output rows (see above)."""
    cdef Py_ssize_t OH = ax[1].out_size, OW = ax[2].out_size
    cdef Py_ssize_t od, oh, o
    for od in range(ax[0].out_size):
        for oh in range(OH):
            o = (od * OH + oh) * OW
            _forward_row(x, u + o if training else NULL, out + o,
                         ind + o if ind != NULL else NULL, ax, t, training, od, oh, scratch)


# -------------------------------------------- channels-last, vector path
#
# One output pixel at a time, the channels in blocks of CHANNEL_BLOCK: the
# same two passes as the channels-first path, each a vector loop along C.

cdef void _forward_pixel_cl_fast(const real_t* x, const double* u, Py_ssize_t u_step,
                                 real_t* out, int64_t* ind, Py_ssize_t pixel,
                                 Py_ssize_t channels, const Axis* ax, const Tables* t,
                                 bint training, double* scratch) noexcept nogil:
    """:func:`_forward_pixel_cl` in vector loops; scratch: (MAX_TAPS + 3) *
    CHANNEL_BLOCK doubles; windows of at most MAX_TAPS elements."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t in_plane = ax[0].in_size * H * W
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t n = pixel // out_plane
    cdef const real_t* xn = x + n * in_plane * channels
    cdef double* total = scratch
    cdef double* other = scratch + CHANNEL_BLOCK       # Q (eval) or u * S (training)
    cdef double* count = scratch + 2 * CHANNEL_BLOCK
    cdef double* running = scratch + 3 * CHANNEL_BLOCK
    cdef double* after
    cdef int64_t offset[MAX_TAPS + 1]                 # and a sentinel
    cdef Py_ssize_t n_taps = 0, a, b, e, tap, c, c0, width, chosen
    cdef const real_t* src
    cdef double v, s
    cdef real_t value
    cdef Window w
    _window(t, ax, pixel % out_plane, &w)
    for a in range(w.first[0], w.first[0] + w.count[0]):
        for b in range(w.first[1], w.first[1] + w.count[1]):
            for e in range(w.first[2], w.first[2] + w.count[2]):
                offset[n_taps] = (a * H + b) * W + e
                n_taps += 1
    offset[n_taps] = offset[0]
    c0 = 0
    while c0 < channels:
        width = channels - c0 if channels - c0 < CHANNEL_BLOCK else CHANNEL_BLOCK
        for tap in range(n_taps):
            src = xn + offset[tap] * channels + c0
            after = running + tap * CHANNEL_BLOCK
            for c in range(width):
                v = _vector_positive(src[c])
                if tap == 0:
                    total[c] = v
                    other[c] = v * v
                else:
                    total[c] = total[c] + v
                    other[c] = other[c] + v * v
                after[c] = total[c]
        if training:
            for c in range(width):
                other[c] = u[(c0 + c) * u_step] * total[c]
                count[c] = 0
            for tap in range(n_taps):
                after = running + tap * CHANNEL_BLOCK
                for c in range(width):
                    count[c] = count[c] + _short(after[c], other[c])
            for c in range(width):
                chosen = <Py_ssize_t> count[c]
                value = xn[offset[chosen] * channels + c0 + c]
                out[pixel * channels + c0 + c] = value if chosen < n_taps else 0
                if ind != NULL:
                    ind[pixel * channels + c0 + c] = offset[chosen]
        else:
            for c in range(width):
                s = total[c]
                out[pixel * channels + c0 + c] = <real_t> (other[c] / (s if s != 0 else 1.0))
        c0 += width


# ---------------------------------------------------------------- drivers

cdef inline bint _vector_windows(const Axis* ax) noexcept nogil:
    return ax[0].kernel * ax[1].kernel * ax[2].kernel <= MAX_TAPS


cdef void _plane_with_uniforms(const real_t* x, const double* uniforms, const Stream* stream,
                               real_t* out, int64_t* ind, Py_ssize_t p, const Axis* ax,
                               const Tables* t, bint training, bint fast, double* scratch,
                               double* drawn) noexcept nogil:
    """Channels-first plane ``p``; its uniforms are in ``uniforms`` or, when
    that is NULL in training, drawn from ``stream`` into ``drawn``."""
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef const double* u = NULL
    if training and uniforms != NULL:
        u = uniforms + p * out_plane
    elif training:
        cypool_pcg64_uniforms(stream.state, stream.inc, p * out_plane, drawn, out_plane)
        u = drawn
    if fast:
        _forward_plane_fast(x, u, out, ind, ax, t, training, scratch)
    else:
        _forward_plane(x, u, out, ind, ax, t, training)


cdef int _forward(const real_t* x, const double* uniforms, const Stream* stream, real_t* out,
                  int64_t* ind, Py_ssize_t lead, Py_ssize_t channels, bint channels_last,
                  const Axis* ax, const Tables* t, bint training, int nthreads,
                  bint naive) noexcept nogil:
    """``lead`` is planes (channels-first) or batch (channels-last).  Training
    draws come from ``uniforms`` (in the output's layout) or, when it is NULL,
    from ``stream``; -1: no memory."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef bint fast = not naive and _vector_windows(ax)
    cdef bint draw = training and uniforms == NULL
    # per thread: the row scratch of _forward_row, then a plane of drawn uniforms
    cdef Py_ssize_t rows_room = (MAX_TAPS + 3) * ax[2].out_size + 16
    cdef Py_ssize_t room = rows_room + (out_plane if draw else 0)
    cdef Py_ssize_t p, planes
    cdef double* scratch
    cdef double* mine
    cdef double* drawn = NULL
    if not channels_last:
        scratch = <double*> malloc(nthreads * room * sizeof(double))
        if scratch == NULL:
            return -1
        if nthreads > 1:
            for p in prange(lead, schedule='static', num_threads=nthreads):
                mine = scratch + threadid() * room
                _plane_with_uniforms(x + p * in_plane, uniforms, stream, out + p * out_plane,
                                     ind + p * out_plane if ind != NULL else NULL, p, ax, t,
                                     training, fast, mine, mine + rows_room)
        else:
            for p in range(lead):
                _plane_with_uniforms(x + p * in_plane, uniforms, stream, out + p * out_plane,
                                     ind + p * out_plane if ind != NULL else NULL, p, ax, t,
                                     training, fast, scratch, scratch + rows_room)
        free(scratch)
        return 0
    # channels-last: drawn uniforms stay in channels-first order, plane by plane
    planes = lead * channels
    if draw:
        drawn = <double*> malloc((planes * out_plane + 1) * sizeof(double))
        if drawn == NULL:
            return -1
        if nthreads > 1:
            for p in prange(planes, schedule='static', num_threads=nthreads):
                cypool_pcg64_uniforms(stream.state, stream.inc, p * out_plane,
                                      drawn + p * out_plane, out_plane)
        else:
            for p in range(planes):
                cypool_pcg64_uniforms(stream.state, stream.inc, p * out_plane,
                                      drawn + p * out_plane, out_plane)
    room = (MAX_TAPS + 3) * CHANNEL_BLOCK + 16
    scratch = <double*> malloc(nthreads * room * sizeof(double))
    if scratch == NULL:
        free(drawn)
        return -1
    if nthreads > 1:
        for p in prange(lead * out_plane, schedule='static', num_threads=nthreads):
            _pixel_cl(x, _pixel_uniforms(uniforms, drawn, p, channels, out_plane),
                      out_plane if drawn != NULL else 1, out, ind, p, channels, ax, t, training,
                      fast, scratch + threadid() * room)
    else:
        for p in range(lead * out_plane):
            _pixel_cl(x, _pixel_uniforms(uniforms, drawn, p, channels, out_plane),
                      out_plane if drawn != NULL else 1, out, ind, p, channels, ax, t, training,
                      fast, scratch)
    free(scratch)
    free(drawn)
    return 0


cdef inline void _pixel_cl(const real_t* x, const double* u, Py_ssize_t u_step, real_t* out,
                           int64_t* ind, Py_ssize_t pixel, Py_ssize_t channels, const Axis* ax,
                           const Tables* t, bint training, bint fast,
                           double* scratch) noexcept nogil:
    if fast:
        _forward_pixel_cl_fast(x, u, u_step, out, ind, pixel, channels, ax, t, training, scratch)
    else:
        _forward_pixel_cl(x, u, u_step, out, ind, pixel, channels, ax, t, training)


cdef inline const double* _pixel_uniforms(const double* uniforms, const double* drawn,
                                          Py_ssize_t pixel, Py_ssize_t channels,
                                          Py_ssize_t out_plane) noexcept nogil:
    """Channel 0's uniform of a channels-last output pixel: in ``uniforms``
    (channels-last, step 1) or ``drawn`` (channels-first, step out_plane)."""
    if drawn != NULL:
        return drawn + (pixel // out_plane) * channels * out_plane + pixel % out_plane
    if uniforms != NULL:
        return uniforms + pixel * channels
    return NULL


def stochastic_pool_forward(cnp.ndarray x, cnp.ndarray uniforms, cnp.ndarray out,
                            cnp.ndarray indices, tuple geometry, bint training,
                            bint channels_last, int nthreads, tuple stream=None,
                            bint naive=False):
    """Fill ``out`` (and ``indices`` unless None) from ``x``.

    x: IN, float32/float64, C-contiguous ``(planes, D, H, W)`` or ``(N, D, H, W, C)``.
    uniforms: IN, float64 shaped like ``out`` (training), or None (eval, or
        training with ``stream``).
    out: OUT, same layout with the output sizes, same dtype as ``x``.
    indices: OUT, int64 shaped like ``out``, or None (training only).
    stream: the PCG64 state and increment as four uint64 (high halves first)
        whose draws 0, 1, ... are the uniforms in channels-first order; used
        in training when ``uniforms`` is None.
    naive: force the general loops (the tests compare the fast paths with them).
    """
    cdef Axis ax[3]
    cdef Tables t
    cdef Stream drawn_from
    fill_axes(ax, geometry)
    cdef Py_ssize_t lead = x.shape[0]
    cdef Py_ssize_t channels = x.shape[4] if channels_last else 1
    cdef void* xp = cnp.PyArray_DATA(x)
    cdef void* op = cnp.PyArray_DATA(out)
    cdef const double* up = (<const double*> cnp.PyArray_DATA(uniforms)
                             if training and uniforms is not None else NULL)
    cdef int64_t* ip = <int64_t*> cnp.PyArray_DATA(indices) if indices is not None else NULL
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef int status
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError(f"stochastic pooling kernel has no loop for dtype {x.dtype}")
    if training and uniforms is None:
        if stream is None:
            raise ValueError("training needs uniforms or a stream to draw them from")
        _fill_stream(&drawn_from, stream)
    if make_tables(ax, &t, False) != 0:
        raise MemoryError("cypool: out of memory for window tables")
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            status = _forward[float](<float*> xp, up, &drawn_from, <float*> op, ip, lead, channels, channels_last, ax, &t, training, nthreads, naive)
        else:
            status = _forward[double](<double*> xp, up, &drawn_from, <double*> op, ip, lead, channels, channels_last, ax, &t, training, nthreads, naive)
        free_tables(&t)
    if status != 0:
        raise MemoryError("cypool: out of memory for stochastic pooling scratch")


# --------------------------------------------------------------- backward

cdef void _route_plane(const real_t* grad_out, const int64_t* ind, const real_t* x,
                       real_t* grad_in, Py_ssize_t out_plane, Py_ssize_t in_plane) noexcept nogil:
    """Training: add each gradient at its sampled element (skipping elements
    that are not positive when ``x`` is given)."""
    cdef Py_ssize_t o, i
    memset(grad_in, 0, in_plane * sizeof(real_t))
    for o in range(out_plane):
        i = ind[o]
        if x == NULL or not (x[i] <= 0):
            grad_in[i] += grad_out[o]


cdef void _route_block_cl(const real_t* grad_out, const int64_t* ind, const real_t* x,
                          real_t* grad_in, Py_ssize_t job, Py_ssize_t blocks,
                          Py_ssize_t channels, Py_ssize_t out_plane,
                          Py_ssize_t in_plane) noexcept nogil:
    """Training, channels ``[c0, c1)`` of one batch element, channels-last."""
    cdef Py_ssize_t n = job // blocks
    cdef Py_ssize_t c0 = (job % blocks) * CHANNEL_BLOCK
    cdef Py_ssize_t c1 = c0 + CHANNEL_BLOCK if c0 + CHANNEL_BLOCK < channels else channels
    cdef Py_ssize_t s, c, at
    cdef real_t* gi = grad_in + n * in_plane * channels
    cdef const real_t* xi = x + n * in_plane * channels if x != NULL else NULL
    cdef const real_t* go = grad_out + n * out_plane * channels
    cdef const int64_t* ii = ind + n * out_plane * channels
    for s in range(in_plane):
        for c in range(c0, c1):
            gi[s * channels + c] = 0
    for s in range(out_plane):
        for c in range(c0, c1):
            at = ii[s * channels + c] * channels + c
            if xi == NULL or not (xi[at] <= 0):
                gi[at] += go[s * channels + c]


cdef void _spread(const real_t* x, real_t* grad_in, Py_ssize_t step, const Axis* ax,
                  const Window* w, double grad) noexcept nogil:
    """Eval: add ``grad * d(Q/S)/da_i = grad * (2 a_i S - Q) / S**2`` to every
    element with ``a_i > 0`` (0 where ``a_i <= 0``, the clamped side)."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t a, b, e, pos
    cdef double total, squares, v, scale
    _sums(x, step, ax, w, &total, &squares)
    if total == 0:
        return
    scale = grad / (total * total)
    for a in range(w.first[0], w.first[0] + w.count[0]):
        for b in range(w.first[1], w.first[1] + w.count[1]):
            for e in range(w.first[2], w.first[2] + w.count[2]):
                pos = ((a * H + b) * W + e) * step
                v = _positive(x[pos])
                if v != 0:
                    grad_in[pos] += <real_t> ((2 * v * total - squares) * scale)


cdef void _eval_plane(const real_t* grad_out, const real_t* x, real_t* grad_in,
                      const Axis* ax, const Tables* t) noexcept nogil:
    """Eval backward of one channels-first plane."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t o
    cdef Window w
    memset(grad_in, 0, in_plane * sizeof(real_t))
    for o in range(out_plane):
        _window(t, ax, o, &w)
        _spread(x, grad_in, 1, ax, &w, grad_out[o])


cdef void _eval_block_cl(const real_t* grad_out, const real_t* x, real_t* grad_in,
                         Py_ssize_t job, Py_ssize_t blocks, Py_ssize_t channels,
                         const Axis* ax, const Tables* t) noexcept nogil:
    """Eval backward of channels ``[c0, c1)`` of one batch element, channels-last;
    windows in the same order as channels-first, so the layouts agree."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t n = job // blocks
    cdef Py_ssize_t c0 = (job % blocks) * CHANNEL_BLOCK
    cdef Py_ssize_t c1 = c0 + CHANNEL_BLOCK if c0 + CHANNEL_BLOCK < channels else channels
    cdef const real_t* xi = x + n * in_plane * channels
    cdef real_t* gi = grad_in + n * in_plane * channels
    cdef const real_t* go = grad_out + n * out_plane * channels
    cdef Py_ssize_t s, c, o
    cdef Window w
    for s in range(in_plane):
        for c in range(c0, c1):
            gi[s * channels + c] = 0
    for o in range(out_plane):
        _window(t, ax, o, &w)
        for c in range(c0, c1):
            _spread(xi + c, gi + c, channels, ax, &w, go[o * channels + c])


cdef void _backward_eval(const real_t* grad_out, const real_t* x, real_t* grad_in,
                         Py_ssize_t lead, Py_ssize_t channels, bint channels_last,
                         const Axis* ax, const Tables* t, int nthreads) noexcept nogil:
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t blocks = (channels + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK
    cdef Py_ssize_t p
    if not channels_last:
        if nthreads > 1:
            for p in prange(lead, schedule='static', num_threads=nthreads):
                _eval_plane(grad_out + p * out_plane, x + p * in_plane, grad_in + p * in_plane,
                            ax, t)
        else:
            for p in range(lead):
                _eval_plane(grad_out + p * out_plane, x + p * in_plane, grad_in + p * in_plane,
                            ax, t)
    else:
        if nthreads > 1:
            for p in prange(lead * blocks, schedule='static', num_threads=nthreads):
                _eval_block_cl(grad_out, x, grad_in, p, blocks, channels, ax, t)
        else:
            for p in range(lead * blocks):
                _eval_block_cl(grad_out, x, grad_in, p, blocks, channels, ax, t)


cdef void _backward_training(const real_t* grad_out, const int64_t* ind, const real_t* x,
                             real_t* grad_in, Py_ssize_t lead, Py_ssize_t channels,
                             bint channels_last, Py_ssize_t out_plane, Py_ssize_t in_plane,
                             int nthreads) noexcept nogil:
    cdef Py_ssize_t p, jobs
    cdef Py_ssize_t blocks = (channels + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK
    if not channels_last:
        if nthreads > 1:
            for p in prange(lead, schedule='static', num_threads=nthreads):
                _route_plane(grad_out + p * out_plane, ind + p * out_plane,
                             x + p * in_plane if x != NULL else NULL,
                             grad_in + p * in_plane, out_plane, in_plane)
        else:
            for p in range(lead):
                _route_plane(grad_out + p * out_plane, ind + p * out_plane,
                             x + p * in_plane if x != NULL else NULL,
                             grad_in + p * in_plane, out_plane, in_plane)
    else:
        jobs = lead * blocks
        if nthreads > 1:
            for p in prange(jobs, schedule='static', num_threads=nthreads):
                _route_block_cl(grad_out, ind, x, grad_in, p, blocks, channels, out_plane, in_plane)
        else:
            for p in range(jobs):
                _route_block_cl(grad_out, ind, x, grad_in, p, blocks, channels, out_plane, in_plane)


def stochastic_pool_backward(cnp.ndarray grad_out, cnp.ndarray indices, cnp.ndarray x,
                             cnp.ndarray grad_in, tuple geometry, bint training,
                             bint channels_last, int nthreads):
    """Fill ``grad_in``.

    grad_out: IN, float32/float64 C-contiguous, the pooled shape in the kernels' layout.
    indices: IN, int64 shaped like ``grad_out``, every entry inside the input plane
        (training), or None (eval).
    x: IN, the pooled input, same dtype and shape as ``grad_in``; required in eval,
        optional in training (then gradients at elements ``<= 0`` are dropped).
    grad_in: OUT, ``(planes, D, H, W)`` or ``(N, D, H, W, C)``.
    """
    cdef Axis ax[3]
    cdef Tables t
    fill_axes(ax, geometry)
    cdef Py_ssize_t lead = grad_in.shape[0]
    cdef Py_ssize_t channels = grad_in.shape[4] if channels_last else 1
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef void* gop = cnp.PyArray_DATA(grad_out)
    cdef void* gip = cnp.PyArray_DATA(grad_in)
    cdef void* xp = cnp.PyArray_DATA(x) if x is not None else NULL
    cdef const int64_t* ip = <const int64_t*> cnp.PyArray_DATA(indices) if training else NULL
    cdef int typenum = cnp.PyArray_TYPE(grad_out)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError(f"stochastic pooling backward has no loop for dtype {grad_out.dtype}")
    if training:
        with nogil:
            if typenum == cnp.NPY_FLOAT32:
                _backward_training[float](<float*> gop, ip, <float*> xp, <float*> gip, lead, channels, channels_last, out_plane, in_plane, nthreads)
            else:
                _backward_training[double](<double*> gop, ip, <double*> xp, <double*> gip, lead, channels, channels_last, out_plane, in_plane, nthreads)
        return
    if make_tables(ax, &t, False) != 0:
        raise MemoryError("cypool: out of memory for window tables")
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _backward_eval[float](<float*> gop, <float*> xp, <float*> gip, lead, channels, channels_last, ax, &t, nthreads)
        else:
            _backward_eval[double](<double*> gop, <double*> xp, <double*> gip, lead, channels, channels_last, ax, &t, nthreads)
        free_tables(&t)
