# cython: language_level=3
"""Power-average (LP) pooling kernels, forward and backward.

Layouts as in ``_max.pyx``.  Windows are average pooling's without padding
(``_kernel_common.make_tables``).  PyTorch defines ``lp_poolNd`` as
``(avg_pool(x**p) * K) ** (1/p)`` with ``K`` the kernel's element count;
these kernels compute exactly that per window (so a ceil-mode window with
``n < K`` elements in bounds gives ``(sum * K / n) ** (1/p)``), with every
power taken as PyTorch's ``pow`` takes it (see ``_raise``).  ``p = inf`` is
the maximum of ``|x|`` with max pooling's rules.

Backward follows PyTorch's autograd through that formula: a window with
``q = sum/n`` contributes ``g * (1/p) * (q*K)**(1/p - 1) * K / n`` to each of
its elements (0 when ``q == 0``), and each element's total ``G`` is then
multiplied by ``p * x**(p-1)`` -- except that ``G == 0`` stays 0 (PyTorch
gives NaN there from ``0 * inf`` when ``x`` is 0 with ``p < 1`` or +-inf).
For ``p = inf`` the gradient goes to the window's maximum of ``|x|``, times
``sign(x)``.
"""

cimport numpy as cnp
from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY, floor, fmod, pow, powf, sqrt, sqrtf
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from cypool._dtypes cimport beats, real_t
from cypool._geometry cimport Axis
from cypool._kernel_common cimport (
    Tables, Window, fill_axes, free_tables, make_tables, set_axis, window_at, window_cover,
    window_size, window_step,
)
from cypool._simd cimport (
    cy_from_lanes_f32, cy_from_lanes_f64, cy_simd_cap, cy_simd_level, cy_to_lanes_f32,
    cy_to_lanes_f64,
)

cnp.import_array()

cdef enum:
    # Channels of one channels-last backward job (see _max.pyx).
    CHANNEL_BLOCK = 64
    # Largest per-thread scratch (elements) of the separable path.
    SCRATCH_LIMIT = 1 << 22
    # Channels-last values powered per vector loop (a stack buffer).
    POWER_CHUNK = 256
    # Planes side by side in the small-plane path (its vector lanes).
    LANES = 16
    # Largest plane (elements) of the small-plane path; larger planes have
    # rows long enough for the separable path's vector loops.
    SMALL_PLANE = 256


cdef extern from *:
    """
    /* float32 x ** p for 0 < p < inf as powf computes it, in loops that gcc
       vectorises for baseline x86-64 (powf is a scalar call per element).
       Every path computes in double and rounds once to float.

       Generic p: |x| ** p = exp(p * log|x|): log from the exponent and a
       polynomial of the mantissa taken to [sqrt(1/2), sqrt(2)) by integer
       adds (|error| < 5e-12), exp as 2**k times a polynomial (relative error
       < 1e-12).  The float is within 0.5 ulp + 1e-11 relative of the exact
       power: over 2e8 floats and 12 exponents about 1 in 100 000 differs from
       the correctly rounded float, by 1 ulp, and none by more (powf itself
       misrounds about 3 in 10 000).
       p = 4..7 (x ** p) and p = 1.5..7.5 (x ** (p - 1/2) * sqrt(x)): by
       multiplications, within 2**-50 relative before the rounding. */
    #include <math.h>
    #include <stdint.h>
    #include <string.h>

    static CYTHON_INLINE double cypool_asdouble(uint64_t bits) { double d; memcpy(&d, &bits, 8); return d; }
    static CYTHON_INLINE uint64_t cypool_asuint64(double d) { uint64_t b; memcpy(&b, &d, 8); return b; }
    static CYTHON_INLINE float cypool_asfloat(uint32_t bits) { float f; memcpy(&f, &bits, 4); return f; }
    static CYTHON_INLINE uint32_t cypool_asuint32(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }

    /* A select as a bit mask: with a ternary gcc sinks the arithmetic of the
       operand it does not take into a branch (the arithmetic may trap), and
       a loop with a branch does not vectorise. */
    static CYTHON_INLINE float cypool_selectf(int take, float a, float b)
    {
        uint32_t mask = (uint32_t) 0 - (uint32_t) take;
        return cypool_asfloat((cypool_asuint32(a) & mask) | (cypool_asuint32(b) & ~mask));
    }

    /* ax ** p for finite ax > 0 and finite p > 0; |p * log(ax)| is clamped to
       limit (200: every float result past it has overflowed or underflowed,
       and 2**k stays a normal double).  Polynomials by Estrin's scheme: short
       dependency chains, so the lanes' arithmetic overlaps. */
    static CYTHON_INLINE double cypool_pow_positive(double ax, double p, double limit)
    {
        uint64_t bits = cypool_asuint64(ax) + (0x3ff0000000000000ULL - 0x3fe6a09e667f3bcdULL);
        /* the exponent as a double without an int64 -> double conversion */
        double e = cypool_asdouble(0x4330000000000000ULL | (bits >> 52)) - 4503599627371519.0;
        double m = cypool_asdouble((bits & 0x000fffffffffffffULL) + 0x3fe6a09e667f3bcdULL);
        double f = (m - 1.0) / (m + 1.0);
        double f2 = f * f;
        double f4 = f2 * f2;
        /* log(m) = 2 f atanh(f) / f, the quotient a least-squares polynomial in f2 */
        double s = (0x1.0000000019984p+0 + f2 * 0x1.555554467c974p-2)
                   + f4 * (0x1.999b2a455f9d2p-3 + f2 * 0x1.2419ad9511390p-3)
                   + (f4 * f4) * 0x1.e6a4cacf9abb0p-4;
        double t = p * (e * 0.6931471805599453 + 2.0 * f * s);
        double kd, r, r2, r4, q;
        uint64_t kbits;
        t = t < -limit ? -limit : t;
        t = t > limit ? limit : t;
        /* k = round(t / log 2) in the low bits of kd; exp(r), |r| <= log(2) / 2 */
        kd = t * 1.4426950408889634 + 6755399441055744.0;
        kbits = cypool_asuint64(kd);
        kd -= 6755399441055744.0;
        r = (t - kd * 6.93147180369123816490e-01) - kd * 1.90821492927058770002e-10;
        r2 = r * r;
        r4 = r2 * r2;
        q = (0x1.ffffffffff733p-1 + r * 0x1.ffffffffd58ecp-1)
            + r2 * (0x1.000000008faa0p-1 + r * 0x1.555555a0568cbp-3)
            + r4 * ((0x1.555553f0c4946p-5 + r * 0x1.111082d9d2c0cp-7)
                    + r2 * (0x1.6c18d53ccf420p-10 + r * 0x1.a1a7ec23c8b48p-13))
            + (r4 * r4) * 0x1.9eb711d439d20p-16;
        return q * cypool_asdouble((kbits + 1023) << 52);
    }

    /* powf(x, p), special values included.  parity 0: p is not an integer
       (a negative finite x gives NaN); 1: an even integer; 2: an odd one. */
    static CYTHON_INLINE float cypool_powf_generic(float x, double p, int parity, double limit)
    {
        float ax = fabsf(x);
        float mag = (float) cypool_pow_positive((double) ax, p, limit);
        float res;
        mag = cypool_selectf(ax == 0, 0.0f, mag);
        mag = cypool_selectf(ax == INFINITY, INFINITY, mag);
        if (parity == 0)
            res = cypool_selectf((x < 0) & (x > -INFINITY), NAN, mag);
        else if (parity == 1)
            res = mag;
        else
            res = copysignf(mag, x);
        return cypool_selectf(x != x, x, res);
    }

    /* x ** k for 0 <= k <= 7 in double (selects of values, not of products) */
    static CYTHON_INLINE double cypool_pown(double x, int k)
    {
        double x2 = x * x;
        double acc = (k & 1) ? x : 1.0;
        acc = acc * ((k & 2) ? x2 : 1.0);
        return acc * ((k & 4) ? x2 * x2 : 1.0);
    }

    /* powf(x, k + 1/2) for 1 <= k <= 7: x ** k * sqrt(x); powf gives +0 at
       -0 and +inf at -inf, where the product would not. */
    static CYTHON_INLINE float cypool_powf_half(float x, int k)
    {
        double xd = (double) x;
        float res = (float) (cypool_pown(xd, k) * sqrt(xd));
        res = cypool_selectf(x == 0, 0.0f, res);
        return cypool_selectf(x == -INFINITY, INFINITY, res);
    }

    /* dst[i] = powf(src[i], p) for 0 < p < inf.  whole: p is an integer in
       [4, 7] (2), p - 1/2 one in [1, 7] (1), else 0; parity as above. */
    static void cypool_powf_row(const float* src, float* dst, Py_ssize_t n, double p,
                                int parity, int whole, int half)
    {
        Py_ssize_t i;
        /* a variable, not a constant: gcc would specialise the code after the
           clamp into branches for the clamped values */
        volatile double limit_store = 200.0;
        double limit = limit_store;
        if (whole) {
            for (i = 0; i < n; i++) dst[i] = (float) cypool_pown((double) src[i], (int) p);
        } else if (half) {
            for (i = 0; i < n; i++) dst[i] = cypool_powf_half(src[i], (int) p);
        } else if (parity == 0) {
            for (i = 0; i < n; i++) dst[i] = cypool_powf_generic(src[i], p, 0, limit);
        } else if (parity == 1) {
            for (i = 0; i < n; i++) dst[i] = cypool_powf_generic(src[i], p, 1, limit);
        } else {
            for (i = 0; i < n; i++) dst[i] = cypool_powf_generic(src[i], p, 2, limit);
        }
    }
    """
    void cypool_powf_row(const float* src, float* dst, Py_ssize_t n, double p, int parity,
                         int whole, int half) nogil


cdef extern from *:
    """
    /* PyTorch's (sign(q) * relu(|q|) * K) with q the mean of x**p over one
       window of 16 lanes: result[l] = (sum / count + 0) * k (+ 0 turns -0
       into +0), the sum in the separable path's order (each row of taps from
       its first, then the rows in order), so that a plane's results do not
       depend on which path its size takes (dask's chunks must match).
       first: the window's first tap; its taps are nd x nh x nw, plane_step
       and row_step elements apart along D and H, 16 along W.  The sums stay
       in registers (gcc unrolls a 16-lane loop and keeps them in memory). */
    #if CY_HAVE_SSE2
    #define CYPOOL_LANE_SUMS(T, V, SUF, N)                                                  \
        static void cypool_lane_sums_##SUF(const T* first, Py_ssize_t nd, Py_ssize_t nh,    \
                                           Py_ssize_t nw, Py_ssize_t plane_step,            \
                                           Py_ssize_t row_step, T count, T k, T* result)    \
        {                                                                                   \
            V acc[N], row[N];                                                               \
            for (Py_ssize_t d = 0; d < nd; d++)                                             \
                for (Py_ssize_t h = 0; h < nh; h++) {                                       \
                    const T* tap = first + d * plane_step + h * row_step;                   \
                    for (int v = 0; v < N; v++) row[v] = _mm_loadu_##SUF(tap + v * (16 / N)); \
                    for (Py_ssize_t w = 1; w < nw; w++)                                     \
                        for (int v = 0; v < N; v++)                                         \
                            row[v] = _mm_add_##SUF(row[v], _mm_loadu_##SUF(tap + w * 16 + v * (16 / N))); \
                    for (int v = 0; v < N; v++)                                             \
                        acc[v] = (d | h) ? _mm_add_##SUF(acc[v], row[v]) : row[v];          \
                }                                                                           \
            for (int v = 0; v < N; v++) {                                                   \
                V q = _mm_div_##SUF(acc[v], _mm_set1_##SUF(count));                         \
                q = _mm_add_##SUF(q, _mm_setzero_##SUF());                                  \
                _mm_storeu_##SUF(result + v * (16 / N), _mm_mul_##SUF(q, _mm_set1_##SUF(k))); \
            }                                                                               \
        }
    CYPOOL_LANE_SUMS(float, __m128, ps, 4)
    CYPOOL_LANE_SUMS(double, __m128d, pd, 8)
    #else
    #define CYPOOL_LANE_SUMS(T, SUF)                                                        \
        static void cypool_lane_sums_##SUF(const T* first, Py_ssize_t nd, Py_ssize_t nh,    \
                                           Py_ssize_t nw, Py_ssize_t plane_step,            \
                                           Py_ssize_t row_step, T count, T k, T* result)    \
        {                                                                                   \
            T acc[16], row[16];                                                             \
            for (Py_ssize_t d = 0; d < nd; d++)                                             \
                for (Py_ssize_t h = 0; h < nh; h++) {                                       \
                    const T* tap = first + d * plane_step + h * row_step;                   \
                    for (int l = 0; l < 16; l++) row[l] = tap[l];                           \
                    for (Py_ssize_t w = 1; w < nw; w++)                                     \
                        for (int l = 0; l < 16; l++) row[l] = row[l] + tap[w * 16 + l];     \
                    for (int l = 0; l < 16; l++) acc[l] = (d | h) ? acc[l] + row[l] : row[l]; \
                }                                                                           \
            for (int l = 0; l < 16; l++) result[l] = (acc[l] / count + (T) 0) * k;          \
        }
    CYPOOL_LANE_SUMS(float, ps)
    CYPOOL_LANE_SUMS(double, pd)
    #endif
    """
    void cypool_lane_sums_ps(const float* first, Py_ssize_t nd, Py_ssize_t nh, Py_ssize_t nw,
                             Py_ssize_t plane_step, Py_ssize_t row_step, float count, float k,
                             float* result) nogil
    void cypool_lane_sums_pd(const double* first, Py_ssize_t nd, Py_ssize_t nh, Py_ssize_t nw,
                             Py_ssize_t plane_step, Py_ssize_t row_step, double count, double k,
                             double* result) nogil

cdef extern from *:
    """
    /* cypool_times_slope: _element_slope of a row in place, g[i] = 0 where
       g[i] is 0 (either sign), else g[i] * (scale * power[i]);
       cypool_keep_nonzero: v[i] = 0 where ref[i] is 0, else v[i].  SSE2
       selects with a compare's mask: gcc leaves a float compare's select
       scalar (-ftrapping-math). */
    #if CY_HAVE_SSE2
    #define CYPOOL_SELECT_SSE2(SUF, V, L, DST, REF, VALUE)                                  \
        for (; i + (L) <= n; i += (L)) {                                                    \
            V tested = _mm_loadu_##SUF(REF + i);                                            \
            V value = VALUE;                                                                \
            _mm_storeu_##SUF(DST + i, _mm_and_##SUF(_mm_cmpneq_##SUF(tested, _mm_setzero_##SUF()), value)); \
        }
    #else
    #define CYPOOL_SELECT_SSE2(SUF, V, L, DST, REF, VALUE)
    #endif
    #define CYPOOL_SELECTS(T, SUF, V, L)                                                    \
        static void cypool_times_slope_##SUF(T* g, const T* power, T scale, Py_ssize_t n)   \
        {                                                                                   \
            Py_ssize_t i = 0;                                                               \
            CYPOOL_SELECT_SSE2(SUF, V, L, g, g, _mm_mul_##SUF(tested, _mm_mul_##SUF(           \
                _mm_set1_##SUF(scale), _mm_loadu_##SUF(power + i))))                        \
            for (; i < n; i++) g[i] = g[i] == 0 ? (T) 0 : g[i] * (scale * power[i]);       \
        }                                                                                   \
        static void cypool_keep_nonzero_##SUF(T* v, const T* ref, Py_ssize_t n)             \
        {                                                                                   \
            Py_ssize_t i = 0;                                                               \
            CYPOOL_SELECT_SSE2(SUF, V, L, v, ref, _mm_loadu_##SUF(v + i))                   \
            for (; i < n; i++) v[i] = ref[i] == 0 ? (T) 0 : v[i];                           \
        }
    CYPOOL_SELECTS(float, ps, __m128, 4)
    CYPOOL_SELECTS(double, pd, __m128d, 2)
    """
    void cypool_times_slope_ps(float* g, const float* power, float scale, Py_ssize_t n) nogil
    void cypool_times_slope_pd(double* g, const double* power, double scale, Py_ssize_t n) nogil
    void cypool_keep_nonzero_ps(float* v, const float* ref, Py_ssize_t n) nogil
    void cypool_keep_nonzero_pd(double* v, const double* ref, Py_ssize_t n) nogil


cdef enum PowerKind:
    POWER_ZERO
    POWER_ONE
    POWER_SQUARE
    POWER_CUBE
    POWER_SQRT
    POWER_RSQRT
    POWER_RECIPROCAL
    POWER_RECIPROCAL_SQUARE
    POWER_GENERIC


cdef struct Power:
    PowerKind kind
    double exponent
    # float32 generic powers, for cypool_powf_row: the exponent as powf takes
    # it, its parity (-1: outside (0, inf), left to powf), and whether it is
    # an integer in [4, 7] or one plus 1/2 in [1.5, 7.5] (multiplications)
    double float_exponent
    int float_parity
    bint float_whole
    bint float_half


cdef struct Norm:
    bint is_inf
    double p
    Power forward          # x ** p
    Power root             # z ** (1/p)
    Power root_slope       # z ** (1/p - 1)
    Power slope            # x ** (p - 1)
    double kernel_numel    # K


cdef Power _power(double exponent) noexcept nogil:
    """How PyTorch's ``pow(tensor, scalar)`` computes this exponent."""
    cdef Power power
    power.exponent = exponent
    if exponent == 0:
        power.kind = POWER_ZERO
    elif exponent == 1:
        power.kind = POWER_ONE
    elif exponent == 2:
        power.kind = POWER_SQUARE
    elif exponent == 3:
        power.kind = POWER_CUBE
    elif exponent == 0.5:
        power.kind = POWER_SQRT
    elif exponent == -0.5:
        power.kind = POWER_RSQRT
    elif exponent == -1:
        power.kind = POWER_RECIPROCAL
    elif exponent == -2:
        power.kind = POWER_RECIPROCAL_SQUARE
    else:
        power.kind = POWER_GENERIC
    cdef float single = <float> exponent
    power.float_exponent = single
    if not (0 < single < INFINITY):
        power.float_parity = -1
    elif single != floor(single):
        power.float_parity = 0
    else:
        power.float_parity = 2 if fmod(single, 2) == 1 else 1
    power.float_whole = 4 <= single <= 7 and single == floor(single)
    power.float_half = 1 <= single - 0.5 <= 7 and single - 0.5 == floor(single - 0.5)
    return power


cdef inline real_t _raise(real_t x, const Power* power) noexcept nogil:
    """``x ** exponent`` with PyTorch's special cases (they differ from C's
    ``pow`` at -0 and -inf, e.g. ``sqrt(-inf)`` is NaN, ``pow(-inf, 0.5)`` inf)."""
    if power.kind == POWER_ONE:
        return x
    if power.kind == POWER_SQUARE:
        return x * x
    if power.kind == POWER_ZERO:
        return 1
    if power.kind == POWER_CUBE:
        return x * x * x
    if power.kind == POWER_SQRT:
        return _sqrt(x)
    if power.kind == POWER_RSQRT:
        return 1 / _sqrt(x)
    if power.kind == POWER_RECIPROCAL:
        return 1 / x
    if power.kind == POWER_RECIPROCAL_SQUARE:
        return 1 / (x * x)
    if real_t is float:
        return powf(x, <float> power.exponent)  # float32 stays in float, as in PyTorch
    return pow(x, power.exponent)


cdef inline real_t _sqrt(real_t x) noexcept nogil:
    if real_t is float:
        return sqrtf(x)
    return sqrt(x)


cdef void _power_row(const real_t* src, real_t* dst, Py_ssize_t n,
                     const Power* power) noexcept nogil:
    """``dst[i] = _raise(src[i], power)``, one vector loop per kind (``src`` and
    ``dst`` must not overlap, or gcc falls back to its scalar loop)."""
    cdef Py_ssize_t i
    if power.kind == POWER_ONE:
        for i in range(n):
            dst[i] = src[i]
    elif power.kind == POWER_SQUARE:
        for i in range(n):
            dst[i] = src[i] * src[i]
    elif power.kind == POWER_CUBE:
        for i in range(n):
            dst[i] = src[i] * src[i] * src[i]
    elif power.kind == POWER_SQRT:
        for i in range(n):
            dst[i] = _sqrt(src[i])
    elif power.kind == POWER_RSQRT:
        for i in range(n):
            dst[i] = 1 / _sqrt(src[i])
    elif power.kind == POWER_RECIPROCAL:
        for i in range(n):
            dst[i] = 1 / src[i]
    elif real_t is float and power.kind == POWER_GENERIC and power.float_parity >= 0:
        cypool_powf_row(src, dst, n, power.float_exponent, power.float_parity,
                        power.float_whole, power.float_half)
    else:
        for i in range(n):
            dst[i] = _raise(src[i], power)


cdef inline real_t _sign(real_t x) noexcept nogil:
    """PyTorch's ``sgn``: 0 for 0 and for NaN."""
    return (x > 0) - (x < 0)


cdef inline real_t _mean_power(real_t total, Py_ssize_t count) noexcept nogil:
    """``avg_pool(x**p)`` of a window: its power sum over its in-bounds count."""
    return total / <real_t> count


cdef inline real_t _window_value(real_t total, Py_ssize_t count, const Norm* norm) noexcept nogil:
    """PyTorch's ``(sign(q) * relu(|q|) * K) ** (1/p)`` with ``q = total / count``."""
    cdef real_t q = _mean_power(total, count)
    if q == 0:
        q = 0  # sign(q) * relu(|q|) has no negative zero
    return _raise(q * <real_t> norm.kernel_numel, &norm.root)


cdef inline void _window_values(const real_t* totals, real_t* scaled, real_t* out, Py_ssize_t n,
                                Py_ssize_t count, const Norm* norm) noexcept nogil:
    """:func:`_window_value` of ``n`` windows of ``count`` elements each, the
    root in a vector loop (``scaled``: scratch of n, apart from ``out``)."""
    cdef Py_ssize_t i
    cdef real_t q
    for i in range(n):
        q = _mean_power(totals[i], count)
        scaled[i] = (0 if q == 0 else q) * <real_t> norm.kernel_numel
    _power_row(scaled, out, n, &norm.root)


cdef inline real_t _window_slope(real_t grad, real_t total, Py_ssize_t count,
                                 const Norm* norm) noexcept nogil:
    """Autograd of :func:`_window_value` down to each window element's ``x**p``:
    ``((g * (1/p) * z**(1/p - 1)) * K) / n``, 0 where ``q == 0``."""
    cdef real_t q = _mean_power(total, count)
    cdef real_t k = <real_t> norm.kernel_numel
    if q == 0:
        return 0
    return (grad * (<real_t> (1 / norm.p) * _raise(q * k, &norm.root_slope)) * k) / <real_t> count


cdef inline real_t _element_slope(real_t accumulated, real_t x, const Norm* norm) noexcept nogil:
    """Autograd of ``x**p``: ``G * (p * x**(p-1))``; a zero ``G`` stays 0."""
    if accumulated == 0:
        return 0
    return accumulated * (<real_t> norm.p * _raise(x, &norm.slope))


# ---------------------------------------------------------------- windows

cdef inline real_t _reduce(const real_t* x, Py_ssize_t H, Py_ssize_t W, const Window* w,
                           const Norm* norm, Py_ssize_t* at) noexcept nogil:
    """One channels-first window: its sum of ``x**p``, or for ``p = inf`` its
    largest ``|x|`` (max pooling's rule) with that element's offset in ``at``."""
    cdef Py_ssize_t id_, ih, iw
    cdef real_t total = -INFINITY if norm.is_inf else 0
    cdef real_t value
    cdef const real_t* row
    at[0] = (w.start[0] * H + w.start[1]) * W + w.start[2]
    for id_ in range(w.start[0], w.start[0] + w.count[0]):
        for ih in range(w.start[1], w.start[1] + w.count[1]):
            row = x + (id_ * H + ih) * W
            if norm.is_inf:
                for iw in range(w.start[2], w.start[2] + w.count[2]):
                    value = abs(row[iw])
                    if beats(value, total):
                        total = value
                        at[0] = (id_ * H + ih) * W + iw
            else:
                for iw in range(w.start[2], w.start[2] + w.count[2]):
                    total = total + _raise(row[iw], &norm.forward)
    return total


cdef inline void _reduce_cl(const real_t* x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t channels,
                            Py_ssize_t width, const Window* w, const Norm* norm, real_t* total,
                            Py_ssize_t* at) noexcept nogil:
    """:func:`_reduce` for ``width`` channels-last channels at once, the channel
    loop innermost; ``x`` points at the first channel of the batch element's
    first pixel; ``at`` (offsets for ``p = inf``) may be NULL."""
    cdef Py_ssize_t id_, ih, iw, c, c0, chunk, pos
    cdef real_t value
    cdef const real_t* src
    cdef real_t powered[POWER_CHUNK]
    for c in range(width):
        total[c] = -INFINITY if norm.is_inf else 0
    if at != NULL:
        for c in range(width):
            at[c] = (w.start[0] * H + w.start[1]) * W + w.start[2]
    for id_ in range(w.start[0], w.start[0] + w.count[0]):
        for ih in range(w.start[1], w.start[1] + w.count[1]):
            for iw in range(w.start[2], w.start[2] + w.count[2]):
                pos = (id_ * H + ih) * W + iw
                src = x + pos * channels
                if norm.forward.kind == POWER_ONE:
                    for c in range(width):
                        total[c] = total[c] + src[c]
                elif not norm.is_inf:
                    # powers a chunk at a time in a vector loop, then summed
                    c0 = 0
                    while c0 < width:
                        chunk = width - c0 if width - c0 < POWER_CHUNK else POWER_CHUNK
                        _power_row(src + c0, powered, chunk, &norm.forward)
                        for c in range(chunk):
                            total[c0 + c] = total[c0 + c] + powered[c]
                        c0 += chunk
                elif at == NULL:
                    for c in range(width):
                        value = abs(src[c])
                        total[c] = value if beats(value, total[c]) else total[c]
                else:
                    for c in range(width):
                        value = abs(src[c])
                        if beats(value, total[c]):
                            total[c] = value
                            at[c] = pos


# -------------------------------------------------------- channels-first

cdef void _forward_plane(const real_t* x, real_t* out, const Axis* ax, const Tables* t,
                         const Norm* norm) noexcept nogil:
    cdef Py_ssize_t o, at
    cdef Window w
    cdef real_t total
    for o in range(ax[0].out_size * ax[1].out_size * ax[2].out_size):
        window_step(t, o, &w)
        total = _reduce(x, ax[1].in_size, ax[2].in_size, &w, norm, &at)
        out[o] = total if norm.is_inf else _window_value(total, window_size(&w), norm)


# ------------------------------------------ channels-first, separable path
#
# As average pooling's (``_avg.pyx``): pass 1 takes every input row to the
# power p (one vector loop per kind) and sums it along W for every output
# column into scratch; pass 2 adds the window's rows (contiguous loops over
# OW) and takes the roots of the whole output row in one vector loop.  Only
# the order of the additions differs from the general loop.

cdef inline void _row_windows_interior(const real_t* row, real_t* hs, Py_ssize_t lo,
                                       Py_ssize_t hi, Py_ssize_t kernel,
                                       const Py_ssize_t stride, bint maximum) noexcept nogil:
    """Sums (or, for ``p = inf``, maxima by max pooling's rule) of the full
    windows [lo, hi); ``stride`` is constant at the hot call sites so gcc
    vectorises the strided loads."""
    cdef Py_ssize_t ow, j
    cdef real_t value
    if hi <= lo:
        return  # no full window: the tap loop below must not run
    for ow in range(lo, hi):
        hs[ow] = row[ow * stride]
    for j in range(1, kernel):
        if maximum:
            for ow in range(lo, hi):
                value = row[ow * stride + j]
                hs[ow] = value if beats(value, hs[ow]) else hs[ow]
        else:
            for ow in range(lo, hi):
                hs[ow] = hs[ow] + row[ow * stride + j]


cdef inline real_t _clipped_window(const real_t* row, Py_ssize_t first, Py_ssize_t count,
                                   bint maximum) noexcept nogil:
    """Sum (or maximum) of one window clipped at the edge of the row (ceil mode)."""
    cdef Py_ssize_t j
    cdef real_t total = row[first]
    for j in range(1, count):
        if maximum:
            if beats(row[first + j], total):
                total = row[first + j]
        else:
            total = total + row[first + j]
    return total


cdef inline void _row_windows(const real_t* row, real_t* hs, const Axis* axis, const Tables* t,
                              bint maximum) noexcept nogil:
    """Window sums along W of one powered input row, or window maxima of one
    row of ``|x|``; no padding in LP pooling."""
    cdef const Py_ssize_t* first = t.first + t.offset[2]
    cdef const Py_ssize_t* count = t.count + t.offset[2]
    cdef Py_ssize_t lo = t.full_lo[2], hi = t.full_hi[2]
    cdef Py_ssize_t ow
    if axis.stride == 1:
        _row_windows_interior(row, hs, lo, hi, axis.kernel, 1, maximum)
    elif axis.stride == 2:
        _row_windows_interior(row, hs, lo, hi, axis.kernel, 2, maximum)
    else:
        _row_windows_interior(row, hs, lo, hi, axis.kernel, axis.stride, maximum)
    for ow in range(lo):
        hs[ow] = _clipped_window(row, first[ow], count[ow], maximum)
    for ow in range(hi, axis.out_size):
        hs[ow] = _clipped_window(row, first[ow], count[ow], maximum)


cdef void _window_totals(const real_t* x, real_t* totals, const Axis* ax, const Tables* t,
                         const Norm* norm, real_t* hs, real_t* row_scratch) noexcept nogil:
    """Every window's sum of ``x**p`` (or largest ``|x|`` for ``p = inf``) of
    one channels-first plane, separably; hs: scratch of D*H*OW window sums
    along W, row_scratch: of W."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t OD = ax[0].out_size, OH = ax[1].out_size, OW = ax[2].out_size
    cdef Py_ssize_t r, od, oh, ow, id_, ih, n_rows
    cdef Py_ssize_t sd, nd, sh, nh
    cdef const real_t* row
    cdef const real_t* src
    cdef real_t* orow
    cdef real_t q
    for r in range(ax[0].in_size * H):
        row = x + r * W
        if norm.is_inf:
            for ow in range(W):
                row_scratch[ow] = abs(row[ow])
            _row_windows(row_scratch, hs + r * OW, &ax[2], t, True)
            continue
        if norm.forward.kind != POWER_ONE:
            _power_row(row, row_scratch, W, &norm.forward)
            row = row_scratch
        _row_windows(row, hs + r * OW, &ax[2], t, False)
    for od in range(OD):
        sd = t.first[t.offset[0] + od]
        nd = t.count[t.offset[0] + od]
        for oh in range(OH):
            sh = t.first[t.offset[1] + oh]
            nh = t.count[t.offset[1] + oh]
            orow = totals + (od * OH + oh) * OW
            n_rows = 0
            for id_ in range(sd, sd + nd):
                for ih in range(sh, sh + nh):
                    src = hs + (id_ * H + ih) * OW
                    if n_rows == 0:
                        for ow in range(OW):
                            orow[ow] = src[ow]
                    elif norm.is_inf:
                        for ow in range(OW):
                            q = src[ow]
                            orow[ow] = q if beats(q, orow[ow]) else orow[ow]
                    else:
                        for ow in range(OW):
                            orow[ow] = orow[ow] + src[ow]
                    n_rows += 1


cdef void _forward_plane_separable(const real_t* x, real_t* out, const Axis* ax,
                                   const Tables* t, const Norm* norm, real_t* hs,
                                   real_t* row_scratch) noexcept nogil:
    """One channels-first plane: the window totals, then, output row by
    output row, :func:`_window_value` with its roots in one vector loop."""
    cdef Py_ssize_t OD = ax[0].out_size, OH = ax[1].out_size, OW = ax[2].out_size
    cdef const Py_ssize_t* count_w = t.count + t.offset[2]
    cdef Py_ssize_t od, oh, ow, rows
    cdef real_t* orow
    cdef real_t q
    cdef real_t k = <real_t> norm.kernel_numel
    _window_totals(x, out, ax, t, norm, hs, row_scratch)
    if norm.is_inf:
        return
    for od in range(OD):
        for oh in range(OH):
            orow = out + (od * OH + oh) * OW
            rows = t.count[t.offset[0] + od] * t.count[t.offset[1] + oh]
            for ow in range(OW):
                q = _mean_power(orow[ow], rows * count_w[ow])
                row_scratch[ow] = (0 if q == 0 else q) * k
            _power_row(row_scratch, orow, OW, &norm.root)


cdef void _backward_plane(const real_t* grad_out, const real_t* x, real_t* grad_in,
                          const Axis* ax, const Tables* t, const Norm* norm) noexcept nogil:
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t in_plane = ax[0].in_size * H * W
    cdef Py_ssize_t o, id_, ih, iw, i, at
    cdef Window w
    cdef real_t total, slope
    cdef real_t* row
    memset(grad_in, 0, in_plane * sizeof(real_t))
    for o in range(ax[0].out_size * ax[1].out_size * ax[2].out_size):
        window_step(t, o, &w)
        total = _reduce(x, H, W, &w, norm, &at)
        if norm.is_inf:
            grad_in[at] += grad_out[o] * _sign(x[at])
            continue
        slope = _window_slope(grad_out[o], total, window_size(&w), norm)
        for id_ in range(w.start[0], w.start[0] + w.count[0]):
            for ih in range(w.start[1], w.start[1] + w.count[1]):
                row = grad_in + (id_ * H + ih) * W
                for iw in range(w.start[2], w.start[2] + w.count[2]):
                    row[iw] += slope
    if not norm.is_inf:
        for i in range(in_plane):
            grad_in[i] = _element_slope(grad_in[i], x[i], norm)


cdef inline void _spread_row(real_t* row, const real_t* slopes, const Axis* axis,
                             const Tables* t) noexcept nogil:
    """Add each window's slope to its elements in one input row, each element
    getting its windows' slopes in the general loop's order (window by
    window): the clipped windows before the full ones one by one, the full
    ones a tap at a time from the last tap down (no padding in LP pooling, so
    window ``ow`` starts at ``ow * stride``; an element's earlier window meets
    it at a later tap), then the clipped ones after.  Window by window, the
    loads of each window would wait on the stores of the one it overlaps."""
    cdef const Py_ssize_t* first = t.first + t.offset[2]
    cdef const Py_ssize_t* count = t.count + t.offset[2]
    cdef Py_ssize_t lo = t.full_lo[2], hi = t.full_hi[2], stride = axis.stride
    cdef Py_ssize_t ow, j, iw
    for ow in range(lo):
        for iw in range(first[ow], first[ow] + count[ow]):
            row[iw] += slopes[ow]
    if hi > lo:
        for j in range(axis.kernel - 1, -1, -1):
            if stride == 2:
                for ow in range(lo, hi):
                    row[ow * 2 + j] += slopes[ow]
            else:
                for ow in range(lo, hi):
                    row[ow * stride + j] += slopes[ow]
    for ow in range(hi, axis.out_size):
        for iw in range(first[ow], first[ow] + count[ow]):
            row[iw] += slopes[ow]


cdef inline void _row_slopes(const real_t* grad_out, real_t* totals, Py_ssize_t rows,
                             const Py_ssize_t* count_w, Py_ssize_t n, const Norm* norm,
                             real_t* means, real_t* powers, real_t* counts) noexcept nogil:
    """:func:`_window_slope` of the ``n`` windows of one output row (``rows``
    input rows high) in vector loops; ``totals`` (the windows' totals) ends
    holding the slopes; means, powers and counts: scratch of ``n``."""
    cdef Py_ssize_t ow
    for ow in range(n):
        counts[ow] = <real_t> (rows * count_w[ow])
    _slopes(grad_out, totals, counts, n, norm, means, powers)


cdef inline void _slopes(const real_t* grad_out, real_t* totals, const real_t* counts,
                         Py_ssize_t n, const Norm* norm, real_t* means,
                         real_t* powers) noexcept nogil:
    """:func:`_window_slope` of ``n`` windows of ``counts`` elements in vector
    loops; ``totals`` ends holding the slopes; means, powers: scratch of n."""
    cdef Py_ssize_t i
    cdef real_t k = <real_t> norm.kernel_numel, inverse_p = <real_t> (1 / norm.p)
    for i in range(n):
        means[i] = totals[i] / counts[i] * k
    _power_row(means, powers, n, &norm.root_slope)
    for i in range(n):
        totals[i] = (grad_out[i] * (inverse_p * powers[i]) * k) / counts[i]
    if real_t is float:
        cypool_keep_nonzero_ps(totals, means, n)
    else:
        cypool_keep_nonzero_pd(totals, means, n)


cdef inline void _times_element_slope(real_t* row, const real_t* xrow, Py_ssize_t n,
                                      const Norm* norm, real_t* powers) noexcept nogil:
    """:func:`_element_slope` of one row in place, its ``x**(p-1)`` in one
    vector loop; powers: scratch of ``n``."""
    if norm.slope.kind != POWER_ONE:
        _power_row(xrow, powers, n, &norm.slope)
        xrow = powers
    if real_t is float:
        cypool_times_slope_ps(row, xrow, <float> norm.p, n)
    else:
        cypool_times_slope_pd(row, xrow, norm.p, n)


cdef inline bint _disjoint(const Axis* ax) noexcept nogil:
    """Whether no element is in two windows (LP pooling has no padding and
    no dilation: window ``o`` of an axis is ``[o * stride, o * stride +
    kernel)``, clipped at the end)."""
    return (ax[0].stride >= ax[0].kernel and ax[1].stride >= ax[1].kernel
            and ax[2].stride >= ax[2].kernel)


cdef inline bint _in_window(const Axis* axis, Py_ssize_t i) noexcept nogil:
    """Whether element ``i`` of a :func:`_disjoint` axis is in a window."""
    return i % axis.stride < axis.kernel and i // axis.stride < axis.out_size


cdef void _backward_plane_fast(const real_t* grad_out, const real_t* x, real_t* grad_in,
                               const Axis* ax, const Tables* t, const Norm* norm,
                               real_t* totals, real_t* hs, real_t* row_scratch) noexcept nogil:
    """:func:`_backward_plane` for ``p < inf`` with the window totals of the
    separable path (each ``x**p`` taken once, in vector loops), the windows'
    slopes an output row at a time (:func:`_row_slopes`) and spread over that
    row's input rows (each element's additions in the general loop's order,
    see _spread_row), and the elements' ``x**(p-1)`` a row at a time; totals:
    scratch of the output plane (it ends holding the slopes).

    :func:`_disjoint` windows give an element at most one slope: the output
    row's slopes are spread once into a zeroed row (``0 + slope`` is
    ``slope`` but for -0, which ends as 0 either way), and each of its input
    rows is written once from it; rows in no window are zeroed."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t OD = ax[0].out_size, OH = ax[1].out_size, OW = ax[2].out_size
    cdef Py_ssize_t od, oh, id_, ih, r, sd, nd, sh, nh, o = 0
    cdef bint disjoint = _disjoint(ax)
    cdef real_t* spread = row_scratch + W + 16
    _window_totals(x, totals, ax, t, norm, hs, row_scratch)
    if not disjoint:
        memset(grad_in, 0, ax[0].in_size * H * W * sizeof(real_t))
    for od in range(OD):
        sd = t.first[t.offset[0] + od]
        nd = t.count[t.offset[0] + od]
        for oh in range(OH):
            sh = t.first[t.offset[1] + oh]
            nh = t.count[t.offset[1] + oh]
            _row_slopes(grad_out + o, totals + o, nd * nh, t.count + t.offset[2], OW, norm,
                        row_scratch, hs, spread)
            if disjoint:
                memset(spread, 0, W * sizeof(real_t))
                _spread_row(spread, totals + o, &ax[2], t)
            for id_ in range(sd, sd + nd):
                for ih in range(sh, sh + nh):
                    r = id_ * H + ih
                    if disjoint:
                        memcpy(grad_in + r * W, spread, W * sizeof(real_t))
                        _times_element_slope(grad_in + r * W, x + r * W, W, norm, row_scratch)
                    else:
                        _spread_row(grad_in + r * W, totals + o, &ax[2], t)
            o += OW
    for id_ in range(ax[0].in_size):
        for ih in range(H):
            r = id_ * H + ih
            if not disjoint:
                _times_element_slope(grad_in + r * W, x + r * W, W, norm, row_scratch)
            elif not (_in_window(&ax[0], id_) and _in_window(&ax[1], ih)):
                memset(grad_in + r * W, 0, W * sizeof(real_t))


# --------------------------------------------------------- channels-last

cdef void _forward_pixel_cl(const real_t* x, real_t* out, Py_ssize_t pixel, Py_ssize_t channels,
                            const Axis* ax, const Tables* t, const Norm* norm) noexcept nogil:
    """One channels-last output pixel, all channels; channel loop innermost."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t c0, chunk
    cdef Window w
    cdef real_t* o = out + pixel * channels
    window_at(t, pixel, &w)
    cdef real_t scaled[POWER_CHUNK]
    _reduce_cl(x + w.batch * in_plane * channels, ax[1].in_size, ax[2].in_size, channels,
               channels, &w, norm, o, NULL)
    if not norm.is_inf:
        c0 = 0
        while c0 < channels:
            chunk = channels - c0 if channels - c0 < POWER_CHUNK else POWER_CHUNK
            _window_values(o + c0, scaled, o + c0, chunk, window_size(&w), norm)
            c0 += chunk


cdef void _backward_block_cl(const real_t* grad_out, const real_t* x, real_t* grad_in,
                             Py_ssize_t job, Py_ssize_t blocks, Py_ssize_t channels,
                             const Axis* ax, const Tables* t, const Norm* norm) noexcept nogil:
    """Channels ``[c0, c0 + width)`` of one batch element, channels-last."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t in_plane = ax[0].in_size * H * W
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t n = job // blocks
    cdef Py_ssize_t c0 = (job % blocks) * CHANNEL_BLOCK
    cdef Py_ssize_t width = CHANNEL_BLOCK if c0 + CHANNEL_BLOCK < channels else channels - c0
    cdef Py_ssize_t o, id_, ih, iw, c, p, pos
    cdef Window w
    cdef real_t total[CHANNEL_BLOCK]
    cdef Py_ssize_t best_at[CHANNEL_BLOCK]
    cdef real_t* gi = grad_in + n * in_plane * channels + c0
    cdef const real_t* xi = x + n * in_plane * channels + c0
    cdef const real_t* go = grad_out + n * out_plane * channels + c0
    cdef real_t* dst
    for p in range(in_plane):
        for c in range(width):
            gi[p * channels + c] = 0
    for o in range(out_plane):
        window_step(t, o, &w)
        _reduce_cl(xi, H, W, channels, width, &w, norm, total, best_at)
        if norm.is_inf:
            for c in range(width):
                pos = best_at[c] * channels + c
                gi[pos] += go[o * channels + c] * _sign(xi[pos])
            continue
        for c in range(width):
            total[c] = _window_slope(go[o * channels + c], total[c], window_size(&w), norm)
        for id_ in range(w.start[0], w.start[0] + w.count[0]):
            for ih in range(w.start[1], w.start[1] + w.count[1]):
                for iw in range(w.start[2], w.start[2] + w.count[2]):
                    dst = gi + ((id_ * H + ih) * W + iw) * channels
                    for c in range(width):
                        dst[c] += total[c]
    if not norm.is_inf:
        for p in range(in_plane):
            for c in range(width):
                gi[p * channels + c] = _element_slope(gi[p * channels + c],
                                                      xi[p * channels + c], norm)


cdef void _backward_rows_cl(const real_t* grad_out, const real_t* x, real_t* grad_in,
                            real_t* slopes, Py_ssize_t job, Py_ssize_t blocks,
                            Py_ssize_t channels, const Axis* ax, const Tables* t,
                            const Norm* norm, const Py_ssize_t* cover,
                            real_t* scratch) noexcept nogil:
    """:func:`_backward_block_cl` for ``p < inf`` an input row at a time: first
    each window's slope (the same :func:`_reduce_cl`, then :func:`_slopes`
    over the channels) into ``slopes`` (laid out as ``grad_out``), then each
    input row is zeroed, takes the slopes of the windows over it in the same
    order (od, oh, ow) and its elements' ``x**(p-1)`` (one vector loop a row,
    or a pixel when the channels are in blocks) while it is in cache, so the
    result is written once, with the same bits.  ``cover``: _kernel_common's
    window_cover; ``scratch``: ``W * channels + 3 * CHANNEL_BLOCK``."""
    cdef Py_ssize_t D = ax[0].in_size, H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t OD = ax[0].out_size, OH = ax[1].out_size, OW = ax[2].out_size
    cdef Py_ssize_t out_plane = OD * OH * OW
    cdef Py_ssize_t n = job // blocks
    cdef Py_ssize_t c0 = (job % blocks) * CHANNEL_BLOCK
    cdef Py_ssize_t width = CHANNEL_BLOCK if c0 + CHANNEL_BLOCK < channels else channels - c0
    cdef const Py_ssize_t* d_lo = cover
    cdef const Py_ssize_t* d_hi = cover + D
    cdef const Py_ssize_t* h_lo = cover + 2 * D
    cdef const Py_ssize_t* h_hi = cover + 2 * D + H
    cdef Py_ssize_t o, id_, ih, iw, od, oh, ow, c
    cdef Window w
    cdef const real_t* xi = x + n * D * H * W * channels + c0
    cdef const real_t* go = grad_out + n * out_plane * channels + c0
    cdef real_t* sl = slopes + n * out_plane * channels + c0
    cdef real_t* counts = scratch
    cdef real_t* means = scratch + CHANNEL_BLOCK
    cdef real_t* powers = scratch + 2 * CHANNEL_BLOCK
    cdef real_t* row
    cdef const real_t* xrow
    cdef real_t* dst
    cdef const real_t* src
    for o in range(out_plane):
        window_step(t, o, &w)
        _reduce_cl(xi, H, W, channels, width, &w, norm, sl + o * channels, NULL)
        for c in range(width):
            counts[c] = <real_t> window_size(&w)
        _slopes(go + o * channels, sl + o * channels, counts, width, norm, means, powers)
    for id_ in range(D):
        for ih in range(H):
            row = grad_in + ((n * D + id_) * H + ih) * W * channels + c0
            xrow = xi + (id_ * H + ih) * W * channels
            for iw in range(W):
                for c in range(width):
                    row[iw * channels + c] = 0
            for od in range(d_lo[id_], d_hi[id_]):
                for oh in range(h_lo[ih], h_hi[ih]):
                    for ow in range(OW):
                        src = sl + ((od * OH + oh) * OW + ow) * channels
                        for iw in range(t.first[t.offset[2] + ow],
                                        t.first[t.offset[2] + ow] + t.count[t.offset[2] + ow]):
                            dst = row + iw * channels
                            for c in range(width):
                                dst[c] += src[c]
            if width == channels:
                _times_element_slope(row, xrow, W * channels, norm, powers)
            else:
                for iw in range(W):
                    _times_element_slope(row + iw * channels, xrow + iw * channels, width, norm,
                                         powers)


# ------------------------------------------ channels-first, small planes
#
# Small planes leave the separable path's vector loops a few iterations per
# row and its per-row calls dominate.  Here LANES planes are transposed side
# by side, so that they are the channels of a channels-last plane: the powers
# and roots are vector loops over the whole block and every window's sum is
# LANES-wide vector adds, in the separable path's order (bit-identical to it:
# a plane's results do not depend on its size, which dask's chunks change).

cdef inline void _lane_maxima(const real_t* lanes, Py_ssize_t H, Py_ssize_t W,
                              const Window* w, real_t* result) noexcept nogil:
    """Largest ``|x|`` of one window of LANES planes (``p = inf``), by max
    pooling's rule in scan order."""
    cdef Py_ssize_t id_, ih, iw, lane
    cdef real_t value
    cdef const real_t* src
    for lane in range(LANES):
        result[lane] = -INFINITY
    for id_ in range(w.start[0], w.start[0] + w.count[0]):
        for ih in range(w.start[1], w.start[1] + w.count[1]):
            for iw in range(w.start[2], w.start[2] + w.count[2]):
                src = lanes + ((id_ * H + ih) * W + iw) * LANES
                for lane in range(LANES):
                    value = abs(src[lane])
                    result[lane] = value if beats(value, result[lane]) else result[lane]


cdef void _forward_lanes(const real_t* x, real_t* out, Py_ssize_t block, Py_ssize_t planes,
                         const Axis* ax, const Tables* t, const Norm* norm,
                         real_t* scratch) noexcept nogil:
    """Planes ``[block * LANES, ...)`` (at most LANES of them) of
    ``planes``; scratch: ``2 * LANES`` times the input plane and LANES times
    the output plane."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t first = block * LANES
    cdef Py_ssize_t width = planes - first if planes - first < LANES else LANES
    cdef Py_ssize_t o
    cdef real_t* lanes = scratch                            # the planes, transposed
    cdef real_t* powered = scratch + in_plane * LANES       # their x**p
    cdef real_t* totals = powered + in_plane * LANES        # window totals, then results
    cdef const real_t* window_input = lanes
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef real_t k = <real_t> norm.kernel_numel
    cdef const real_t* first_tap
    cdef Window w
    if real_t is float:
        cy_to_lanes_f32(x + first * in_plane, in_plane, width, lanes)
    else:
        cy_to_lanes_f64(x + first * in_plane, in_plane, width, lanes)
    if not norm.is_inf and norm.forward.kind != POWER_ONE:
        _power_row(lanes, powered, in_plane * LANES, &norm.forward)
        window_input = powered
    for o in range(out_plane):
        window_step(t, o, &w)
        if norm.is_inf:
            _lane_maxima(lanes, H, W, &w, totals + o * LANES)
            continue
        # _window_value's scaled mean, its root below for the whole block
        first_tap = window_input + ((w.start[0] * H + w.start[1]) * W + w.start[2]) * LANES
        if real_t is float:
            cypool_lane_sums_ps(first_tap, w.count[0], w.count[1], w.count[2], H * W * LANES,
                                W * LANES, <float> window_size(&w), k, lanes + o * LANES)
        else:
            cypool_lane_sums_pd(first_tap, w.count[0], w.count[1], w.count[2], H * W * LANES,
                                W * LANES, <double> window_size(&w), k, lanes + o * LANES)
    if not norm.is_inf:
        _power_row(lanes, totals, out_plane * LANES, &norm.root)
    if real_t is float:
        cy_from_lanes_f32(totals, out_plane, width, out + first * out_plane)
    else:
        cy_from_lanes_f64(totals, out_plane, width, out + first * out_plane)


# ---------------------------------------------------------------- drivers

cdef Norm _norm(double p, const Axis* ax):
    cdef Norm norm
    norm.is_inf = p == INFINITY
    norm.p = p
    norm.forward = _power(p)
    norm.root = _power(1 / p)
    norm.root_slope = _power(1 / p - 1)
    norm.slope = _power(p - 1)
    norm.kernel_numel = <double> (ax[0].kernel * ax[1].kernel * ax[2].kernel)
    return norm


cdef int _forward(const real_t* x, real_t* out, Py_ssize_t lead, Py_ssize_t channels,
                  bint channels_last, const Axis* ax, const Norm* norm,
                  int nthreads, bint naive) noexcept nogil:
    """``naive`` forces the general loops (the tests compare the fast paths
    against them); channels-last has one loop, which the tests compare with
    the channels-first general loop."""
    cdef Tables t
    cdef Py_ssize_t p, pixels
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef int status = 0
    if make_tables(ax, &t, True) != 0:
        return -1
    if (not channels_last and not naive
            and ax[0].in_size * ax[1].in_size * ax[2].out_size <= SCRATCH_LIMIT
            and ax[2].in_size <= SCRATCH_LIMIT):
        status = _fast_planes(x, NULL, out, lead, ax, &t, norm, nthreads)
    elif not channels_last:
        if nthreads > 1:
            for p in prange(lead, schedule='guided', num_threads=nthreads):
                _forward_plane(x + p * in_plane, out + p * out_plane, ax, &t, norm)
        else:
            for p in range(lead):
                _forward_plane(x + p * in_plane, out + p * out_plane, ax, &t, norm)
    else:
        pixels = lead * out_plane
        if nthreads > 1:
            for p in prange(pixels, schedule='guided', num_threads=nthreads):
                _forward_pixel_cl(x, out, p, channels, ax, &t, norm)
        else:
            for p in range(pixels):
                _forward_pixel_cl(x, out, p, channels, ax, &t, norm)
    free_tables(&t)
    return status


cdef inline bint _by_lanes(const Axis* ax, const real_t* grad_out) noexcept nogil:
    """Whether the forward takes :func:`_forward_lanes` (small planes)."""
    return grad_out == NULL and ax[0].in_size * ax[1].in_size * ax[2].in_size <= SMALL_PLANE


cdef inline void _fast_job(const real_t* x, const real_t* grad_out, real_t* result,
                           Py_ssize_t job, Py_ssize_t planes, const Axis* ax, const Tables* t,
                           const Norm* norm, real_t* scratch) noexcept nogil:
    """Job ``job`` of :func:`_fast_planes`: a block of LANES small planes
    forward, else channels-first plane ``job`` by the separable path, forward
    when ``grad_out`` is NULL, else backward; scratch as :func:`_fast_planes`
    lays it out."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t sums = ax[0].in_size * ax[1].in_size * ax[2].out_size
    cdef real_t* hs = scratch + out_plane + 16
    if _by_lanes(ax, grad_out):
        _forward_lanes(x, result, job, planes, ax, t, norm, scratch)
    elif grad_out == NULL:
        _forward_plane_separable(x + job * in_plane, result + job * out_plane, ax, t, norm, hs,
                                 hs + sums + 16)
    else:
        _backward_plane_fast(grad_out + job * out_plane, x + job * in_plane,
                             result + job * in_plane, ax, t, norm, scratch, hs, hs + sums + 16)


cdef int _fast_planes(const real_t* x, const real_t* grad_out, real_t* result, Py_ssize_t planes,
                      const Axis* ax, const Tables* t, const Norm* norm,
                      int nthreads) noexcept nogil:
    """All channels-first planes by the fast paths, forward (``grad_out``
    NULL, ``result`` the pooled planes) or backward (``result`` the gradient),
    with per-thread scratch: for small planes forward, LANES transposed input
    planes, their powers and LANES output planes; else window totals
    (backward), sums along W and two rows; -1: no memory."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t sums = ax[0].in_size * ax[1].in_size * ax[2].out_size
    cdef Py_ssize_t room = out_plane + sums + 2 * ax[2].in_size + 64
    cdef Py_ssize_t jobs = planes
    cdef Py_ssize_t job
    if _by_lanes(ax, grad_out):
        room = (2 * in_plane + out_plane) * LANES
        jobs = (planes + LANES - 1) // LANES
    cdef real_t* scratch = <real_t*> malloc(nthreads * room * sizeof(real_t))
    if scratch == NULL:
        return -1
    if nthreads > 1:
        for job in prange(jobs, schedule='guided', num_threads=nthreads):
            _fast_job(x, grad_out, result, job, planes, ax, t, norm, scratch + threadid() * room)
    else:
        for job in range(jobs):
            _fast_job(x, grad_out, result, job, planes, ax, t, norm, scratch)
    free(scratch)
    return 0


cdef int _backward(const real_t* grad_out, const real_t* x, real_t* grad_in, Py_ssize_t lead,
                   Py_ssize_t channels, bint channels_last, const Axis* ax, const Norm* norm,
                   int nthreads, bint naive) noexcept nogil:
    """``naive`` forces the general loops (channels-last: the block loop)."""
    cdef Tables t
    cdef Py_ssize_t p, blocks, jobs
    cdef Py_ssize_t room
    cdef Py_ssize_t* cover
    cdef real_t* slopes
    cdef real_t* scratch
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef int status = 0
    if make_tables(ax, &t, True) != 0:
        return -1
    if (not channels_last and not naive and not norm.is_inf
            and ax[0].in_size * ax[1].in_size * ax[2].out_size <= SCRATCH_LIMIT
            and ax[2].in_size <= SCRATCH_LIMIT and out_plane <= SCRATCH_LIMIT):
        status = _fast_planes(x, grad_out, grad_in, lead, ax, &t, norm, nthreads)
    elif not channels_last:
        if nthreads > 1:
            for p in prange(lead, schedule='guided', num_threads=nthreads):
                _backward_plane(grad_out + p * out_plane, x + p * in_plane,
                                grad_in + p * in_plane, ax, &t, norm)
        else:
            for p in range(lead):
                _backward_plane(grad_out + p * out_plane, x + p * in_plane,
                                grad_in + p * in_plane, ax, &t, norm)
    else:
        blocks = (channels + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK
        jobs = lead * blocks
        room = ax[2].in_size * channels + 3 * CHANNEL_BLOCK
        cover = window_cover(&t, ax) if not naive and not norm.is_inf else NULL
        slopes = NULL
        scratch = NULL
        if cover != NULL:
            slopes = <real_t*> malloc(lead * out_plane * channels * sizeof(real_t))
            scratch = <real_t*> malloc(nthreads * room * sizeof(real_t))
        if slopes != NULL and scratch != NULL:  # (else the block loop, which needs no scratch)
            if nthreads > 1:
                for p in prange(jobs, schedule='guided', num_threads=nthreads):
                    _backward_rows_cl(grad_out, x, grad_in, slopes, p, blocks, channels, ax, &t,
                                      norm, cover, scratch + threadid() * room)
            else:
                for p in range(jobs):
                    _backward_rows_cl(grad_out, x, grad_in, slopes, p, blocks, channels, ax, &t,
                                      norm, cover, scratch)
        elif nthreads > 1:
            for p in prange(jobs, schedule='guided', num_threads=nthreads):
                _backward_block_cl(grad_out, x, grad_in, p, blocks, channels, ax, &t, norm)
        else:
            for p in range(jobs):
                _backward_block_cl(grad_out, x, grad_in, p, blocks, channels, ax, &t, norm)
        free(slopes)
        free(scratch)
        free(cover)
    free_tables(&t)
    return status


def lp_pool_forward(cnp.ndarray x, cnp.ndarray out, tuple geometry, double norm_type,
                    bint channels_last, int nthreads, bint naive=False):
    """Fill ``out`` with the LP norms of the windows of ``x``.

    x: IN, float32/float64, C-contiguous ``(planes, D, H, W)`` or ``(N, D, H, W, C)``.
    out: OUT, same dtype and layout with the output sizes.
    geometry: the facade's 3-axis window geometry (no padding, dilation 1).
    norm_type: ``p > 0``, finite or inf.
    """
    cdef Axis ax[3]
    fill_axes(ax, geometry)
    cdef Norm norm = _norm(norm_type, ax)
    cdef Py_ssize_t lead = x.shape[0]
    cdef Py_ssize_t channels = x.shape[4] if channels_last else 1
    cdef void* xp = cnp.PyArray_DATA(x)
    cdef void* op = cnp.PyArray_DATA(out)
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef int status = 0
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            status = _forward[float](<float*> xp, <float*> op, lead, channels, channels_last, ax, &norm, nthreads, naive)
        elif typenum == cnp.NPY_FLOAT64:
            status = _forward[double](<double*> xp, <double*> op, lead, channels, channels_last, ax, &norm, nthreads, naive)
        else:
            status = -2
    if status == -1:
        raise MemoryError("cypool: out of memory for window tables")
    if status == -2:
        raise TypeError(f"LP pooling kernel has no loop for dtype {x.dtype}")


def lp_pool_backward(cnp.ndarray grad_out, cnp.ndarray x, cnp.ndarray grad_in, tuple geometry,
                     double norm_type, bint channels_last, int nthreads, bint naive=False):
    """Fill ``grad_in`` with the gradient of LP pooling at ``x``.

    grad_out: IN, ``(planes, OD, OH, OW)`` or ``(N, OD, OH, OW, C)``.
    x: IN, the pooled input, same dtype, the input's layout and sizes.
    grad_in: OUT, shaped and typed like ``x``.
    """
    cdef Axis ax[3]
    fill_axes(ax, geometry)
    cdef Norm norm = _norm(norm_type, ax)
    cdef Py_ssize_t lead = x.shape[0]
    cdef Py_ssize_t channels = x.shape[4] if channels_last else 1
    cdef void* gop = cnp.PyArray_DATA(grad_out)
    cdef void* xp = cnp.PyArray_DATA(x)
    cdef void* gip = cnp.PyArray_DATA(grad_in)
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef int status = 0
    if cnp.PyArray_TYPE(grad_out) != typenum or cnp.PyArray_TYPE(grad_in) != typenum:
        raise TypeError("LP pooling backward needs grad_output, x and grad_input of one dtype")
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            status = _backward[float](<float*> gop, <float*> xp, <float*> gip, lead, channels, channels_last, ax, &norm, nthreads, naive)
        elif typenum == cnp.NPY_FLOAT64:
            status = _backward[double](<double*> gop, <double*> xp, <double*> gip, lead, channels, channels_last, ax, &norm, nthreads, naive)
        else:
            status = -2
    if status == -1:
        raise MemoryError("cypool: out of memory for window tables")
    if status == -2:
        raise TypeError(f"LP pooling backward has no loop for dtype {x.dtype}")


def simd_level(cap=None):
    """The vector path of this module's _simd.h loops: 2 AVX2, 1 SSE2, 0 portable C;
    ``cap`` (tests only) lowers it, as ``_max.simd_level``."""
    if cap is not None:
        return cy_simd_cap(cap)
    return cy_simd_level()
