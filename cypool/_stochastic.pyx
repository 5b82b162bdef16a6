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
waiting on one sequential draw of them all, and the fast paths draw them
where they are used (a plane at a time channels-first, one stream per
channel along each row channels-last), so results never depend on the
thread count.  With AVX2 four states of a stream step at once, each lane
jumping four draws (32-bit multiplies in vector registers, faster than the
scalar multiplier's 128-bit steps).

Three implementations, each exact against the one before it (the tests
compare them): the general loop, window by window (``naive=True``); vector
loops that gcc vectorises, a row (or a pixel's channels) at a time; and on
CPUs with AVX2 (chosen at run time, ``_simd.h``), lane kernels that take
four windows per instruction, which the vector loops back up.
"""

cimport numpy as cnp
from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY
from libc.stdint cimport int64_t, uint64_t, uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from cypool._dtypes cimport real_t
from cypool._geometry cimport Axis
from cypool._kernel_common cimport Tables, fill_axes, free_tables, make_tables
from cypool._simd cimport CY_SIMD_AVX2, cy_simd_level  # the lane kernels below need AVX2

cnp.import_array()

cdef enum:
    # Channels of one channels-last job (see _max.pyx).
    CHANNEL_BLOCK = 64
    # Output pixels of one channels-last drawing block.
    PIXEL_BLOCK = 32


cdef extern from *:
    """
    #include <float.h>
    #include <stdint.h>
    #include <string.h>

    /* Windows of at most CYPOOL_MAX_TAPS elements take the vector paths (their
       running sums sit in per-thread scratch, or in registers, one per tap). */
    #define CYPOOL_MAX_TAPS 64

    /* NumPy's PCG64: a 128-bit LCG, state = state * M + inc, each step's
       output the XSL-RR of the new state; random() is (output >> 11) * 2**-53.
       cypool_u128 (two uint64 halves) is the portable form, which MSVC
       builds too; the hot loops step a cypool_state, a native unsigned
       __int128 where the compiler has one (gcc, clang). */
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

    /* delta steps at once: state -> state * mult + plus (PCG's jump-ahead) */
    typedef struct { cypool_u128 mult, plus; } cypool_jump;

    static cypool_jump cypool_pcg64_jump(cypool_u128 inc, uint64_t delta)
    {
        cypool_jump j;
        cypool_u128 cur_mult = cypool_pcg64_mult, cur_plus = inc, one = cypool_u128_of(0, 1);
        cypool_u128 zero = cypool_u128_of(0, 0);
        j.mult = one;
        j.plus = zero;
        while (delta > 0) {
            if (delta & 1) {
                j.mult = cypool_muladd128(j.mult, cur_mult, zero);
                j.plus = cypool_muladd128(j.plus, cur_mult, cur_plus);
            }
            cur_plus = cypool_muladd128(cypool_muladd128(cur_mult, one, one), cur_plus, zero);
            cur_mult = cypool_muladd128(cur_mult, cur_mult, zero);
            delta >>= 1;
        }
        return j;
    }

    /* the state after delta steps, O(log delta) */
    static cypool_u128 cypool_pcg64_advance(cypool_u128 state, cypool_u128 inc, uint64_t delta)
    {
        cypool_jump j = cypool_pcg64_jump(inc, delta);
        return cypool_muladd128(j.mult, state, j.plus);
    }

    #if defined(__SIZEOF_INT128__)
    typedef unsigned __int128 cypool_state;

    static CYTHON_INLINE cypool_state cypool_state_of(cypool_u128 s)
    {
        return ((cypool_state) s.hi << 64) | s.lo;
    }

    static CYTHON_INLINE cypool_state cypool_step(cypool_state s, cypool_state mult,
                                                  cypool_state plus)
    {
        return s * mult + plus;
    }

    #define CYPOOL_STATE_HI(s) ((uint64_t) ((s) >> 64))
    #define CYPOOL_STATE_LO(s) ((uint64_t) (s))
    #else
    typedef cypool_u128 cypool_state;

    static CYTHON_INLINE cypool_state cypool_state_of(cypool_u128 s)
    {
        return s;
    }

    static CYTHON_INLINE cypool_state cypool_step(cypool_state s, cypool_state mult,
                                                  cypool_state plus)
    {
        return cypool_muladd128(s, mult, plus);
    }

    #define CYPOOL_STATE_HI(s) ((s).hi)
    #define CYPOOL_STATE_LO(s) ((s).lo)
    #endif

    static CYTHON_INLINE cypool_state cypool_jump_apply(cypool_jump j, cypool_state s)
    {
        return cypool_step(s, cypool_state_of(j.mult), cypool_state_of(j.plus));
    }

    /* random() of a state (its high and low halves) */
    static CYTHON_INLINE double cypool_pcg64_output(uint64_t hi, uint64_t lo)
    {
        uint64_t mixed = hi ^ lo, rot = hi >> 58;
        mixed = (mixed >> rot) | (mixed << ((0 - rot) & 63));
        return (double) (mixed >> 11) * (1.0 / 9007199254740992.0);
    }

    /* out[i] = draw start + i of the stream, for 0 <= i < n: the plain loop */
    static void cypool_pcg64_uniforms(cypool_u128 state, cypool_u128 inc, uint64_t start,
                                      double* out, Py_ssize_t n)
    {
        cypool_state s = cypool_state_of(cypool_pcg64_advance(state, inc, start));
        cypool_state mult = cypool_state_of(cypool_pcg64_mult), plus = cypool_state_of(inc);
        Py_ssize_t i;
        for (i = 0; i < n; i++) {
            s = cypool_step(s, mult, plus);
            out[i] = cypool_pcg64_output(CYPOOL_STATE_HI(s), CYPOOL_STATE_LO(s));
        }
    }

    /* The jumps of four lanes as the AVX2 step (cypool_lanes_muladd) takes
       them, word by word: the multiplier's low half in 32-bit pieces, its high
       half's low piece, both halves with their pieces swapped (for the
       32-bit multiplies of the cross terms), the addend's high half, and its
       low half in 32-bit pieces (added into the product's pieces, so no carry
       is compared). */
    #define CYPOOL_LANE_WORDS 8

    static void cypool_lane_words(uint64_t words[CYPOOL_LANE_WORDS][4], const cypool_jump* lanes[4])
    {
        int l;
        for (l = 0; l < 4; l++) {
            words[0][l] = lanes[l]->mult.lo & 0xffffffffULL;
            words[1][l] = lanes[l]->mult.lo >> 32;
            words[2][l] = lanes[l]->mult.hi & 0xffffffffULL;
            words[3][l] = (lanes[l]->mult.lo >> 32) | (lanes[l]->mult.lo << 32);
            words[4][l] = (lanes[l]->mult.hi >> 32) | (lanes[l]->mult.hi << 32);
            words[5][l] = lanes[l]->plus.hi;
            words[6][l] = lanes[l]->plus.lo & 0xffffffffULL;
            words[7][l] = lanes[l]->plus.lo >> 32;
        }
    }

    /* What the fast paths draw with: a stream's increment, and for the AVX2
       lanes the jumps of 1, 2, 3 and 4 steps (their start) and of 4 (their step). */
    typedef struct {
        cypool_state inc;
        uint64_t ramp[CYPOOL_LANE_WORDS][4];
        uint64_t four[CYPOOL_LANE_WORDS][4];
    } cypool_draws;

    static cypool_draws cypool_draws_of(cypool_u128 inc)
    {
        cypool_draws d;
        cypool_jump ahead[4];
        const cypool_jump* ramp[4] = {&ahead[0], &ahead[1], &ahead[2], &ahead[3]};
        const cypool_jump* four[4] = {&ahead[3], &ahead[3], &ahead[3], &ahead[3]};
        int k;
        d.inc = cypool_state_of(inc);
        for (k = 0; k < 4; k++)
            ahead[k] = cypool_pcg64_jump(inc, (uint64_t) k + 1);
        cypool_lane_words(d.ramp, ramp);
        cypool_lane_words(d.four, four);
        return d;
    }

    #if CY_HAVE_AVX2
    #include <immintrin.h>

    /* Four states of one stream, draws j, j + 4, j + 8, ... in lane j: a step of
       each is a jump of four, s * M4 + C4 modulo 2**128, in 32-bit pieces
       (vpmuludq), which the vector pipes do faster than the scalar multiplier
       steps one state at a time. */
    typedef struct { __m256i hi, lo; } cypool_lanes128;
    /* A jump's words (cypool_lane_words), loaded where used: as memory
       operands of the multiplies and adds they take no registers (two sets of
       lanes in flight and seven words of a jump do not fit sixteen). */
    typedef uint64_t cypool_lane_jump[CYPOOL_LANE_WORDS][4];

    #define CYPOOL_WORD(k, i) _mm256_loadu_si256((const __m256i*) (k)[i])
    #define CYPOOL_M_LO0(k) CYPOOL_WORD(k, 0)
    #define CYPOOL_M_LO1(k) CYPOOL_WORD(k, 1)
    #define CYPOOL_M_HI0(k) CYPOOL_WORD(k, 2)
    #define CYPOOL_M_LO_SWAPPED(k) CYPOOL_WORD(k, 3)
    #define CYPOOL_M_HI_SWAPPED(k) CYPOOL_WORD(k, 4)
    #define CYPOOL_C_HI(k) CYPOOL_WORD(k, 5)
    #define CYPOOL_C_LO0(k) CYPOOL_WORD(k, 6)
    #define CYPOOL_C_LO1(k) CYPOOL_WORD(k, 7)

    /* x * M + C per lane: the low 128 bits of the product of the 64-bit halves
       x = xh:xl and M = mh:ml are xl * ml (all 128 bits, from four 32-bit
       products, summed so no 64-bit lane overflows) + (xh * ml + xl * mh) << 64
       (their low 64 bits: the low pieces' full products, and the sum of the
       four crossed pieces' products modulo 2**32 from two 32-bit multiplies
       of the swapped words, each lane's halves then added; vpmulld, fewer
       operations than four vpmuludq, and the vector pipes are the limit
       here).  C's low half goes in as two
       32-bit pieces with the first products (p00 + c0 and p01 + c1 + the
       carry t stay below 2**64: (2**32 - 1)**2 + 2 * (2**32 - 1) = 2**64 - 1),
       so its carry into the high half comes with theirs, and none is compared. */
    CY_AVX2 static inline __attribute__((always_inline)) cypool_lanes128
    cypool_lanes_muladd(cypool_lanes128 x, const cypool_lane_jump k)
    {
        const __m256i low32 = _mm256_set1_epi64x(0xffffffffLL);
        __m256i xl1 = _mm256_srli_epi64(x.lo, 32);
        __m256i p00 = _mm256_add_epi64(_mm256_mul_epu32(x.lo, CYPOOL_M_LO0(k)), CYPOOL_C_LO0(k));
        __m256i p01 = _mm256_mul_epu32(x.lo, CYPOOL_M_LO1(k));
        __m256i p10 = _mm256_mul_epu32(xl1, CYPOOL_M_LO0(k)), p11 = _mm256_mul_epu32(xl1, CYPOOL_M_LO1(k));
        __m256i t = _mm256_add_epi64(p10, _mm256_srli_epi64(p00, 32));
        __m256i w = _mm256_add_epi64(_mm256_add_epi64(p01, CYPOOL_C_LO1(k)), _mm256_and_si256(t, low32));
        __m256i s = _mm256_add_epi32(_mm256_mullo_epi32(x.hi, CYPOOL_M_LO_SWAPPED(k)),
                                     _mm256_mullo_epi32(x.lo, CYPOOL_M_HI_SWAPPED(k)));
        __m256i cross = _mm256_add_epi32(s, _mm256_srli_epi64(s, 32));
        __m256i high = _mm256_add_epi64(_mm256_add_epi64(p11, CYPOOL_C_HI(k)),
                                        _mm256_add_epi64(_mm256_srli_epi64(t, 32),
                                                         _mm256_srli_epi64(w, 32)));
        cypool_lanes128 r;
        r.hi = _mm256_add_epi64(_mm256_add_epi64(high, _mm256_slli_epi64(cross, 32)),
                                _mm256_add_epi64(_mm256_mul_epu32(x.hi, CYPOOL_M_LO0(k)),
                                                 _mm256_mul_epu32(x.lo, CYPOOL_M_HI0(k))));
        r.lo = _mm256_blend_epi32(p00, _mm256_slli_epi64(w, 32), 0xAA);
        return r;
    }

    /* cypool_pcg64_output of four states.  The uint64 v = output >> 11 < 2**53
       to double, which AVX2 lacks, already scaled by 2**-53: its high 21 bits
       h in the mantissa of 2**31 (2**31 + h * 2**-21) and its low 32 bits l in
       that of 0.5 (0.5 + l * 2**-53); less 2**31 + 0.5 their sum is v * 2**-53,
       every step exact. */
    CY_AVX2 static inline __m256d cypool_lanes_output(cypool_lanes128 s)
    {
        const __m256i width = _mm256_set1_epi64x(64);
        const __m256i low_magic = _mm256_castpd_si256(_mm256_set1_pd(0.5));
        const __m256i high_magic = _mm256_castpd_si256(_mm256_set1_pd(2147483648.0));
        const __m256d both_magic = _mm256_set1_pd(2147483648.0 + 0.5);
        __m256i x = _mm256_xor_si256(s.hi, s.lo), rot = _mm256_srli_epi64(s.hi, 58);
        x = _mm256_or_si256(_mm256_srlv_epi64(x, rot), _mm256_sllv_epi64(x, _mm256_sub_epi64(width, rot)));
        x = _mm256_srli_epi64(x, 11);
        return _mm256_add_pd(
            _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(x, 32), high_magic)),
                          both_magic),
            _mm256_castsi256_pd(_mm256_blend_epi32(x, low_magic, 0xAA)));
    }

    /* u[l * step] = v[l] for l < count */
    CY_AVX2 static inline void cypool_lanes_store(double* u, Py_ssize_t step, __m256d v, Py_ssize_t count)
    {
        double lane[4];
        Py_ssize_t l;
        if (step == 1 && count == 4) {
            _mm256_storeu_pd(u, v);
            return;
        }
        _mm256_storeu_pd(lane, v);
        for (l = 0; l < count; l++)
            u[l * step] = lane[l];
    }

    CY_AVX2 static inline cypool_lanes128 cypool_lanes_start(cypool_state s, const cypool_lane_jump ramp)
    {
        cypool_lanes128 x;
        x.hi = _mm256_set1_epi64x((long long) CYPOOL_STATE_HI(s));
        x.lo = _mm256_set1_epi64x((long long) CYPOOL_STATE_LO(s));
        return cypool_lanes_muladd(x, ramp);
    }

    CY_AVX2 static inline cypool_state cypool_lanes_state(cypool_lanes128 x, Py_ssize_t lane)
    {
        uint64_t hi[4], lo[4];
        _mm256_storeu_si256((__m256i*) hi, x.hi);
        _mm256_storeu_si256((__m256i*) lo, x.lo);
        return cypool_state_of(cypool_u128_of(hi[lane], lo[lane]));
    }

    /* cypool_pcg64_draw2 in lanes, n > 0: the two streams' lanes interleaved,
       or (two == 0) the first stream alone */
    CY_AVX2 static inline __attribute__((always_inline)) void
    cypool_pcg64_lanes_draw(cypool_state* a, cypool_state* b, const cypool_draws* d, double* ua,
                            double* ub, Py_ssize_t n, Py_ssize_t step, int two)
    {
        cypool_lanes128 x = cypool_lanes_start(*a, d->ramp), y = x;
        Py_ssize_t i;
        if (two)
            y = cypool_lanes_start(*b, d->ramp);
        for (i = 0; i + 4 < n; i += 4) {
            cypool_lanes_store(ua + i * step, step, cypool_lanes_output(x), 4);
            x = cypool_lanes_muladd(x, d->four);
            if (two) {
                cypool_lanes_store(ub + i * step, step, cypool_lanes_output(y), 4);
                y = cypool_lanes_muladd(y, d->four);
            }
        }
        /* the lane of the last draw holds the state after all n */
        cypool_lanes_store(ua + i * step, step, cypool_lanes_output(x), n - i);
        *a = cypool_lanes_state(x, n - 1 - i);
        if (two) {
            cypool_lanes_store(ub + i * step, step, cypool_lanes_output(y), n - i);
            *b = cypool_lanes_state(y, n - 1 - i);
        }
    }

    CY_AVX2 static void cypool_pcg64_draw2_avx2(cypool_state* a, cypool_state* b, const cypool_draws* d,
                                                double* ua, double* ub, Py_ssize_t n, Py_ssize_t step)
    {
        if (a == b)
            cypool_pcg64_lanes_draw(a, b, d, ua, ub, n, step, 0);
        else
            cypool_pcg64_lanes_draw(a, b, d, ua, ub, n, step, 1);
    }
    #endif

    /* ua[i * step] and ub[i * step] for i < n: the next n draws of *a and of *b
       (b == a, ub == ua: of one stream).  Without AVX2 the two streams' 128-bit
       steps interleave, so one does not wait on the other's (one stream is
       stepped twice over, into the same places). */
    static void cypool_pcg64_draw2(cypool_state* a, cypool_state* b, const cypool_draws* d,
                                   double* ua, double* ub, Py_ssize_t n, Py_ssize_t step,
                                   int avx2)
    {
        cypool_state mult = cypool_state_of(cypool_pcg64_mult), x = *a, y = *b;
        Py_ssize_t i;
        if (n <= 0)
            return;
    #if CY_HAVE_AVX2
        if (avx2) {
            cypool_pcg64_draw2_avx2(a, b, d, ua, ub, n, step);
            return;
        }
    #endif
        for (i = 0; i < n; i++) {
            x = cypool_step(x, mult, d->inc);
            y = cypool_step(y, mult, d->inc);
            ua[i * step] = cypool_pcg64_output(CYPOOL_STATE_HI(x), CYPOOL_STATE_LO(x));
            ub[i * step] = cypool_pcg64_output(CYPOOL_STATE_HI(y), CYPOOL_STATE_LO(y));
        }
        *a = x;
        *b = y;
    }

    /* u[0 .. n): the next n draws of *state, as two interleaved halves; half is
       the jump of (n + 1) / 2 steps.  Leaves *state after them. */
    static void cypool_pcg64_draw_run(cypool_state* state, const cypool_draws* d, cypool_jump half,
                                      double* u, Py_ssize_t n, int avx2)
    {
        Py_ssize_t first = (n + 1) / 2, second = n - first;
        cypool_state a = *state, b = cypool_jump_apply(half, a);
        cypool_pcg64_draw2(&a, &b, d, u, u + first, second, 1, avx2);
        if (first > second) {
            a = cypool_step(a, cypool_state_of(cypool_pcg64_mult), d->inc);
            u[second] = cypool_pcg64_output(CYPOOL_STATE_HI(a), CYPOOL_STATE_LO(a));
        }
        *state = b;
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

    /* the same for the scalar loops: a bit mask (gcc makes a ternary a branch) */
    static CYTHON_INLINE double cypool_positive_scalar(double a)
    {
        uint64_t bits, mask = (a <= 0.0) ? 0 : ~(uint64_t) 0;
        memcpy(&bits, &a, 8);
        bits &= mask;
        memcpy(&a, &bits, 8);
        return a;
    }
    """
    enum:
        CYPOOL_MAX_TAPS
    ctypedef struct cypool_u128:
        uint64_t hi
        uint64_t lo
    ctypedef struct cypool_state:
        pass
    ctypedef struct cypool_jump:
        pass
    cypool_u128 cypool_u128_of(uint64_t hi, uint64_t lo) nogil
    cypool_jump cypool_pcg64_jump(cypool_u128 inc, uint64_t delta) nogil
    cypool_u128 cypool_pcg64_advance(cypool_u128 state, cypool_u128 inc, uint64_t delta) nogil
    cypool_state cypool_state_of(cypool_u128 s) nogil
    cypool_state cypool_jump_apply(cypool_jump j, cypool_state s) nogil
    ctypedef struct cypool_draws:
        pass
    cypool_draws cypool_draws_of(cypool_u128 inc) nogil
    void cypool_pcg64_draw2(cypool_state* a, cypool_state* b, const cypool_draws* d, double* ua,
                            double* ub, Py_ssize_t n, Py_ssize_t step, bint avx2) nogil
    void cypool_pcg64_draw_run(cypool_state* state, const cypool_draws* d, cypool_jump half,
                               double* u, Py_ssize_t n, bint avx2) nogil
    void cypool_pcg64_uniforms(cypool_u128 state, cypool_u128 inc, uint64_t start, double* out,
                               Py_ssize_t n) nogil
    double cypool_positive_float(float a) nogil
    double cypool_positive_double(double a) nogil
    double cypool_positive_scalar(double a) nogil


cdef extern from *:
    """
    /* The rows of one lane kernel call: row r's taps are r * x elements further
       on in x, their plane offsets r * index further on, its uniforms r * u and
       its results r * out further on. */
    typedef struct { Py_ssize_t count, x, index, u, out; } cypool_rows;

    static const cypool_rows cypool_one_row = {1, 0, 0, 0, 0};

    /* Lane kernels: four windows at once, one per 64-bit lane, in float64 as the
       general loop (tap k of lane l is x[tap_at[k] + l * step], its plane offset
       tap_index[k] + l * index_step; the caller's windows all have n_taps taps).
       AVX2 only, chosen at run time (CY_AVX2 enables no FMA, so a + b * b stays
       two roundings, as in the general loop).  Each takes lanes [i, n) in groups
       of four and returns where it stopped (n unless n - i < 4); the caller
       does the rest. */
    #if CY_HAVE_AVX2
    /* a+ = max(0, a) as doubles: a NaN stays (max returns its second operand
       when unordered); -0.0 stays -0.0, which sums and compares as +0 and,
       adding nothing, is never taken */
    CY_AVX2 static inline __m256d cypool_lanes_f32(const float* at, int step)
    {
        __m128 v;
        if (step == 1)
            v = _mm_loadu_ps(at);
        else  /* 2: at[0], at[2] of at[0..3], at[4], at[6] of at[3..6], no read past at[6] */
            v = _mm_shuffle_ps(_mm_loadu_ps(at), _mm_loadu_ps(at + 3), _MM_SHUFFLE(3, 1, 2, 0));
        return _mm256_cvtps_pd(_mm_max_ps(_mm_setzero_ps(), v));
    }

    CY_AVX2 static inline __m256d cypool_lanes_f64(const double* at, int step)
    {
        __m256d v;
        if (step == 1)
            v = _mm256_loadu_pd(at);
        else  /* 2: [at0, at4, at2, at6] from at[0..3] and at[3..6], then in order */
            v = _mm256_permute4x64_pd(_mm256_blend_pd(_mm256_loadu_pd(at), _mm256_loadu_pd(at + 3), 0xA),
                                      _MM_SHUFFLE(3, 1, 2, 0));
        return _mm256_max_pd(_mm256_setzero_pd(), v);
    }

    /* vblendvpd (mask's sign set: if_set), written out: gcc 12 turns the
       intrinsic on a comparison's mask into a sign test (vpcmpgtq) and a blend */
    CY_AVX2 static inline __m256d cypool_blend(__m256d if_clear, __m256d if_set, __m256d mask)
    {
        __m256d r;
        __asm__("vblendvpd %3, %2, %1, %0" : "=x"(r) : "x"(if_clear), "x"(if_set), "x"(mask));
        return r;
    }

    #define CYPOOL_LANES(x, f64, at, step) \\
        ((f64) ? cypool_lanes_f64((const double*) (x) + (at), (step)) \\
               : cypool_lanes_f32((const float*) (x) + (at), (step)))

    /* float32 at step 2, taps k and k + 1 side by side in a row: at[0..7] holds both
       taps of the four windows, the first in the even elements and the second in the
       odd ones (one load and one permute for the two, not two of each) */
    CY_AVX2 static inline void cypool_pair_lanes_f32(const float* at, __m256d* first,
                                                     __m256d* second)
    {
        const __m256i evens_odds = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
        __m256 v = _mm256_max_ps(_mm256_setzero_ps(),
                                 _mm256_permutevar8x32_ps(_mm256_loadu_ps(at), evens_odds));
        *first = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
        *second = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    }

    /* A last group of one to three lanes goes again with the lanes before it
       (the same results written twice) when the call has four; else it is left. */
    #define CYPOOL_LAST_GROUP(i, first, n) \\
        if ((i) + 4 > (n)) { \\
            if ((n) - (first) < 4) \\
                break; \\
            (i) = (n) - 4; \\
        }

    /* the taps' first elements, once per row (not reloaded after each store);
       each a pointer of its own (the empty asm), so a tap's load is one
       address, pointer + i * step (gcc would add x, the tap's offset and i) */
    #define CYPOOL_TAP_STARTS(starts, x, f64, tap_at, n_taps, row) \\
        for (k = 0; k < (n_taps); k++) { \\
            (starts)[k] = (const char*) (x) + ((tap_at)[k] + (row)) * ((f64) ? 8 : 4); \\
            __asm__("" : "+r"((starts)[k])); \\
        }

    /* Training (see the module docstring).  Running sums after every tap in
       a[], then, from the last tap back, the earliest whose running sum is not
       <= min(u * S, DBL_MAX): past u * S, or infinite or NaN (u * S is then
       infinite or NaN, and the minimum DBL_MAX).  The taken tap adds a+ > 0 (or
       NaN, +inf), so its a+ is the element itself. */
    CY_AVX2 static inline __attribute__((always_inline)) Py_ssize_t
    cypool_sample_lanes_avx2(const void* x, int f64, const int64_t* tap_at,
                             const int64_t* tap_index, int n_taps, int step, int64_t index_step,
                             const cypool_rows* rows, const double* u, void* out, int64_t* ind,
                             Py_ssize_t i0, Py_ssize_t n, int pairs)
    {
        __m256d a[CYPOOL_MAX_TAPS], run[CYPOOL_MAX_TAPS], tap_offset[CYPOOL_MAX_TAPS];
        const char* starts[CYPOOL_MAX_TAPS];
        const __m256d top = _mm256_set1_pd(DBL_MAX);
        const __m256i ramp = _mm256_set_epi64x(3 * index_step, 2 * index_step, index_step, 0);
        /* the rows' layout in locals: the stores below may alias *rows */
        const Py_ssize_t count = rows->count, row_x = rows->x, row_index = rows->index;
        const Py_ssize_t row_u = rows->u, row_out = rows->out;
        __m256d total = top, threshold, value, index;
        Py_ssize_t i = i0, r;
        const double* ur;
        char* outr;
        int64_t* indr = NULL;
        int k;
        for (k = 0; k < n_taps; k++)
            tap_offset[k] = _mm256_castsi256_pd(_mm256_set1_epi64x(tap_index[k]));
        for (r = 0; r < count; r++) {
            CYPOOL_TAP_STARTS(starts, x, f64, tap_at, n_taps, r * row_x);
            ur = u + r * row_u;
            outr = (char*) out + r * row_out * (f64 ? 8 : 4);
            if (ind != NULL)
                indr = ind + r * row_out;
            for (i = i0; i < n; i += 4) {
                CYPOOL_LAST_GROUP(i, i0, n);
                for (k = 0; k < n_taps; k++) {
                    if (!pairs)
                        a[k] = CYPOOL_LANES(starts[k], f64, i * step, step);
                    else if (k % 2 == 0)
                        cypool_pair_lanes_f32((const float*) starts[k] + i * 2, &a[k], &a[k + 1]);
                    total = k ? _mm256_add_pd(total, a[k]) : a[k];
                    run[k] = total;
                }
                threshold = _mm256_min_pd(_mm256_mul_pd(_mm256_loadu_pd(ur + i), total), top);
                for (k = 0; k < n_taps; k++)
                    run[k] = _mm256_cmp_pd(run[k], threshold, _CMP_NLE_UQ);   /* passed */
                value = _mm256_and_pd(run[n_taps - 1], a[n_taps - 1]);
                for (k = n_taps - 2; k >= 0; k--)
                    value = cypool_blend(value, a[k], run[k]);
                if (f64)
                    _mm256_storeu_pd((double*) outr + i, value);
                else
                    _mm_storeu_ps((float*) outr + i, _mm256_cvtpd_ps(value));
                if (ind != NULL) {
                    index = cypool_blend(tap_offset[0], tap_offset[n_taps - 1], run[n_taps - 1]);
                    for (k = n_taps - 2; k >= 0; k--)
                        index = cypool_blend(index, tap_offset[k], run[k]);
                    _mm256_storeu_si256((__m256i*) (indr + i),
                                        _mm256_add_epi64(_mm256_add_epi64(_mm256_castpd_si256(index), ramp),
                                                         _mm256_set1_epi64x(i * index_step + r * row_index)));
                }
            }
        }
        return i < n ? i : n;
    }

    /* Eval: Q / S, with the general loop's sums (S = 0 only when every a+ is 0,
       so Q / 1 is the 0 wanted). */
    CY_AVX2 static inline __attribute__((always_inline)) Py_ssize_t
    cypool_mean_lanes_avx2(const void* x, int f64, const int64_t* tap_at, int n_taps, int step,
                           const cypool_rows* rows, void* out, Py_ssize_t i0, Py_ssize_t n)
    {
        const __m256d zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1.0);
        const char* starts[CYPOOL_MAX_TAPS];
        __m256d a, total = zero, squares = zero, value;
        Py_ssize_t i = i0, r;
        int k;
        for (r = 0; r < rows->count; r++) {
            CYPOOL_TAP_STARTS(starts, x, f64, tap_at, n_taps, r * rows->x);
            for (i = i0; i < n; i += 4) {
                CYPOOL_LAST_GROUP(i, i0, n);
                for (k = 0; k < n_taps; k++) {
                    a = CYPOOL_LANES(starts[k], f64, i * step, step);
                    total = k ? _mm256_add_pd(total, a) : a;
                    squares = k ? _mm256_add_pd(squares, _mm256_mul_pd(a, a)) : _mm256_mul_pd(a, a);
                }
                value = _mm256_div_pd(squares, cypool_blend(total, one,
                                                            _mm256_cmp_pd(total, zero, _CMP_EQ_OQ)));
                if (f64)
                    _mm256_storeu_pd((double*) out + r * rows->out + i, value);
                else
                    _mm_storeu_ps((float*) out + r * rows->out + i, _mm256_cvtpd_ps(value));
            }
        }
        return i < n ? i : n;
    }

    /* The instances by window size and step (n_taps and step in scope): 2x2 and
       3x3 windows get their own loops, which keep a[] and run[] in registers. */
    #define CYPOOL_BY_SHAPE(instance, f64) \\
        if (n_taps == 4) \\
            return step == 2 ? instance(f64, 4, 2) : instance(f64, 4, 1); \\
        if (n_taps == 9) \\
            return step == 2 ? instance(f64, 9, 2) : instance(f64, 9, 1); \\
        return step == 2 ? instance(f64, n_taps, 2) : instance(f64, n_taps, 1);

    #define CYPOOL_SAMPLE_INSTANCE(f64, n_taps, step) \\
        cypool_sample_lanes_avx2(x, f64, tap_at, tap_index, n_taps, step, index_step, rows, u, out, \\
                                 ind, i, n, 0)

    #define CYPOOL_SAMPLE_DISPATCH(name, f64) \\
        CY_AVX2 static Py_ssize_t name(const void* x, const int64_t* tap_at, \\
                                       const int64_t* tap_index, int n_taps, int step, \\
                                       int64_t index_step, const cypool_rows* rows, \\
                                       const double* u, void* out, int64_t* ind, Py_ssize_t i, \\
                                       Py_ssize_t n) \\
        { \\
            if (!(f64) && n_taps == 4 && step == 2 && tap_at[1] == tap_at[0] + 1 \\
                    && tap_at[3] == tap_at[2] + 1)  /* 2x2 windows at stride 2 */ \\
                return cypool_sample_lanes_avx2(x, 0, tap_at, tap_index, 4, 2, index_step, rows, \\
                                                u, out, ind, i, n, 1); \\
            CYPOOL_BY_SHAPE(CYPOOL_SAMPLE_INSTANCE, f64) \\
        }

    CYPOOL_SAMPLE_DISPATCH(cypool_sample_f32_avx2, 0)
    CYPOOL_SAMPLE_DISPATCH(cypool_sample_f64_avx2, 1)

    #define CYPOOL_MEAN_INSTANCE(f64, n_taps, step) \\
        cypool_mean_lanes_avx2(x, f64, tap_at, n_taps, step, rows, out, i, n)

    #define CYPOOL_MEAN_DISPATCH(name, f64) \\
        CY_AVX2 static Py_ssize_t name(const void* x, const int64_t* tap_at, int n_taps, int step, \\
                                       const cypool_rows* rows, void* out, Py_ssize_t i, \\
                                       Py_ssize_t n) \\
        { CYPOOL_BY_SHAPE(CYPOOL_MEAN_INSTANCE, f64) }

    CYPOOL_MEAN_DISPATCH(cypool_mean_f32_avx2, 0)
    CYPOOL_MEAN_DISPATCH(cypool_mean_f64_avx2, 1)
    #endif

    /* The entry points: lanes [i, n) of every row, x float64 (f64) or float32,
       step 1 or 2, n_taps <= CYPOOL_MAX_TAPS; without AVX2 they do nothing. */
    static Py_ssize_t cypool_sample_lanes(const void* x, int f64, const int64_t* tap_at,
                                          const int64_t* tap_index, int n_taps, int step,
                                          int64_t index_step, const cypool_rows* rows,
                                          const double* u, void* out, int64_t* ind, Py_ssize_t i,
                                          Py_ssize_t n)
    {
    #if CY_HAVE_AVX2
        if (f64)
            return cypool_sample_f64_avx2(x, tap_at, tap_index, n_taps, step, index_step, rows, u,
                                          out, ind, i, n);
        return cypool_sample_f32_avx2(x, tap_at, tap_index, n_taps, step, index_step, rows, u, out,
                                      ind, i, n);
    #else
        return i;
    #endif
    }

    static Py_ssize_t cypool_mean_lanes(const void* x, int f64, const int64_t* tap_at, int n_taps,
                                        int step, const cypool_rows* rows, void* out, Py_ssize_t i,
                                        Py_ssize_t n)
    {
    #if CY_HAVE_AVX2
        if (f64)
            return cypool_mean_f64_avx2(x, tap_at, n_taps, step, rows, out, i, n);
        return cypool_mean_f32_avx2(x, tap_at, n_taps, step, rows, out, i, n);
    #else
        return i;
    #endif
    }
    """
    ctypedef struct cypool_rows:
        Py_ssize_t count, x, index, u, out
    const cypool_rows cypool_one_row
    Py_ssize_t cypool_sample_lanes(const void* x, bint f64, const int64_t* tap_at,
                                   const int64_t* tap_index, int n_taps, int step,
                                   int64_t index_step, const cypool_rows* rows, const double* u,
                                   void* out, int64_t* ind, Py_ssize_t i, Py_ssize_t n) nogil
    Py_ssize_t cypool_mean_lanes(const void* x, bint f64, const int64_t* tap_at, int n_taps,
                                 int step, const cypool_rows* rows, void* out, Py_ssize_t i,
                                 Py_ssize_t n) nogil


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
    """``max(a, 0)`` that keeps NaN, without a branch (on data of both signs
    one mispredicts half the time; the fast paths' border windows come here)."""
    return cypool_positive_scalar(<double> a)


cdef inline void _window(const Tables* t, const Axis* ax, Py_ssize_t o,
                         Window* w) noexcept nogil:
    """The window of flat output position ``o`` inside one plane."""
    cdef Py_ssize_t ow = o % ax[2].out_size
    cdef Py_ssize_t rest = o // ax[2].out_size
    _window_at(t, rest // ax[1].out_size, rest % ax[1].out_size, ow, w)


cdef inline void _window_at(const Tables* t, Py_ssize_t od, Py_ssize_t oh, Py_ssize_t ow,
                            Window* w) noexcept nogil:
    """The window of output position (od, oh, ow)."""
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
# border windows take the general loop): the lane kernels first (AVX2,
# stride 1 or 2), then, for the windows they leave, two passes: pass 1 visits
# the window's elements in scan order (rows, then taps along W), each a
# vector loop over the output columns, and keeps the running sums of a+
# after every element; pass 2 counts, per output, the elements whose running
# sum has not yet passed u * S.  The running sum only grows (a+ >= 0, and
# once infinite or NaN it stays so), so that count is the index of the first
# element that passes: the general loop's choice, with the same float64 sums.

cdef inline double _vector_positive(real_t a) noexcept nogil:
    """:func:`_positive` in the form gcc vectorises (see the C helpers)."""
    if real_t is float:
        return cypool_positive_float(a)
    return cypool_positive_double(a)


cdef struct RowTaps:
    # the window rows of one output row, and the plane offset of each tap
    # (row, then position along W) for output column 0
    const void* rows[CYPOOL_MAX_TAPS]
    Py_ssize_t n_rows
    int64_t offset[CYPOOL_MAX_TAPS + 1]    # and a sentinel
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
                       const Axis* ax, const Tables* t, bint training, bint lanes,
                       Py_ssize_t done, Py_ssize_t od, Py_ssize_t oh,
                       double* scratch) noexcept nogil:
    """Output row (od, oh) of one channels-first plane; ``u``, ``out`` and
    ``ind`` point at the row.  ``lanes``: the AVX2 lane kernels take the whole
    windows first (stride 1 or 2), these loops what they leave; ``done`` >= 0:
    they took columns [full_lo, done) already.
    scratch: (CYPOOL_MAX_TAPS + 3) * OW doubles."""
    cdef Py_ssize_t OW = ax[2].out_size, stride = ax[2].stride, pad = ax[2].pad_before
    cdef Py_ssize_t lo = t.full_lo[2], hi = t.full_hi[2]
    cdef Py_ssize_t ow, tap, chosen, start
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
    start = done if done >= 0 else lo
    if done < 0 and lanes and hi > lo and (stride == 1 or stride == 2):
        if training:
            start = cypool_sample_lanes(x, real_t is double, taps.offset, taps.offset,
                                        taps.n_taps, stride, stride, &cypool_one_row, u, out, ind,
                                        lo, hi)
        else:
            start = cypool_mean_lanes(x, real_t is double, taps.offset, taps.n_taps, stride,
                                      &cypool_one_row, out, lo, hi)
    if hi > start:
        if stride == 1:
            _running_sums(&taps, start, hi, ax[2].kernel, 1, pad, training, total, other,
                          running, OW, x)
        elif stride == 2:
            _running_sums(&taps, start, hi, ax[2].kernel, 2, pad, training, total, other,
                          running, OW, x)
        else:
            _running_sums(&taps, start, hi, ax[2].kernel, stride, pad, training, total, other,
                          running, OW, x)
    if training:
        if taps.n_taps == 4:
            # 2x2 windows, the common case: every running sum in one pass
            for ow in range(start, hi):
                threshold = u[ow] * total[ow]
                count[ow] = (_short(running[ow], threshold)
                             + _short(running[OW + ow], threshold)
                             + _short(running[2 * OW + ow], threshold)
                             + _short(running[3 * OW + ow], threshold))
        else:
            for ow in range(start, hi):
                other[ow] = u[ow] * total[ow]
                count[ow] = 0
            for tap in range(taps.n_taps):
                after = running + tap * OW
                for ow in range(start, hi):
                    count[ow] = count[ow] + _short(after[ow], other[ow])
        # The element taken has a+ > 0 (or is NaN or +inf): a zero a+ leaves the
        # running sum where it was, and that did not pass.  So its value is x
        # itself; none taken (count == n_taps) gives 0 at the first element,
        # the sentinel offset.  No branch on the data: it would mispredict.
        taps.offset[taps.n_taps] = taps.offset[0]
        for ow in range(start, hi):
            chosen = <Py_ssize_t> count[ow]
            at = taps.offset[chosen] + ow * stride
            value = x[at]
            out[ow] = value if chosen < taps.n_taps else 0
            if ind != NULL:
                ind[ow] = at
    else:
        for ow in range(start, hi):
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


cdef struct PlaneDraws:
    # drawing a plane's uniforms: the stream, and its jump of half a plane
    Stream stream
    cypool_draws gen
    cypool_jump half


cdef struct PlaneCursor:
    # one thread's place in the stream: the state before plane ``next``'s draws
    cypool_state state
    Py_ssize_t next


cdef void _plane_draws(PlaneDraws* d, const Stream* stream, Py_ssize_t out_plane) noexcept nogil:
    d.stream = stream[0]
    d.gen = cypool_draws_of(stream.inc)
    d.half = cypool_pcg64_jump(stream.inc, (out_plane + 1) // 2)


cdef void _forward_plane_fast(const real_t* x, const double* u, const PlaneDraws* draws,
                              PlaneCursor* cursor, Py_ssize_t p, real_t* out, int64_t* ind,
                              const Axis* ax, const Tables* t, bint training, bint lanes,
                              double* scratch, double* drawn) noexcept nogil:
    """Channels-first plane ``p``: with the lane kernels (stride 1 or 2 along W)
    first every window whole along all axes, a depth slice of output rows in
    one call; then, row by row (see above), what they leave.  Training takes
    the plane's uniforms from ``u`` or, when that is NULL, draws them from
    ``draws`` into ``drawn`` (a plane of doubles), from the thread's
    ``cursor`` when it is at this plane (it jumps there when not)."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t OH = ax[1].out_size, OW = ax[2].out_size
    cdef Py_ssize_t out_plane = ax[0].out_size * OH * OW
    cdef Py_ssize_t lo = t.full_lo[2], hi = t.full_hi[2], done = -1
    cdef Py_ssize_t od, oh, o, k
    cdef bint block = (lanes and hi > lo and (ax[2].stride == 1 or ax[2].stride == 2)
                       and t.full_hi[1] > t.full_lo[1] and t.full_hi[0] > t.full_lo[0])
    cdef bint inside
    cdef int64_t tap_at[CYPOOL_MAX_TAPS]
    cdef RowTaps taps
    # the block's output rows, one depth slice at a time
    cdef cypool_rows rows = cypool_rows(t.full_hi[1] - t.full_lo[1], ax[1].stride * W,
                                        ax[1].stride * W, OW, OW)
    if training and u == NULL:
        if cursor.next != p:
            cursor.state = cypool_state_of(cypool_pcg64_advance(draws.stream.state,
                                                                draws.stream.inc, p * out_plane))
        cypool_pcg64_draw_run(&cursor.state, &draws.gen, draws.half, drawn, out_plane, lanes)
        cursor.next = p + 1
        u = drawn
    if block:
        _row_taps(x, ax, t, t.full_lo[0], t.full_lo[1], &taps)
        for od in range(t.full_lo[0], t.full_hi[0]):
            for k in range(taps.n_taps):
                tap_at[k] = taps.offset[k] + (od - t.full_lo[0]) * ax[0].stride * H * W
            o = (od * OH + t.full_lo[1]) * OW
            if training:
                done = cypool_sample_lanes(x, real_t is double, tap_at, tap_at, taps.n_taps,
                                           ax[2].stride, ax[2].stride, &rows, u + o, out + o,
                                           ind + o if ind != NULL else NULL, lo, hi)
            else:
                done = cypool_mean_lanes(x, real_t is double, tap_at, taps.n_taps, ax[2].stride,
                                         &rows, out + o, lo, hi)
    for od in range(ax[0].out_size):
        for oh in range(OH):
            inside = (block and t.full_lo[0] <= od < t.full_hi[0]
                      and t.full_lo[1] <= oh < t.full_hi[1])
            if inside and done == hi and lo == 0 and hi == OW:
                continue
            o = (od * OH + oh) * OW
            _forward_row(x, u + o if training else NULL, out + o,
                         ind + o if ind != NULL else NULL, ax, t, training, lanes,
                         done if inside else -1, od, oh, scratch)


# -------------------------------------------- channels-last, vector path
#
# Output rows of pixels, in segments of PIXEL_BLOCK pixels and blocks of
# CHANNEL_BLOCK channels: every channel keeps its own generator state (its
# plane's draws run along the row), the block's uniforms are drawn pixel-major,
# then the channels go through the lane kernels along C, the pixels whose
# windows are whole along W in one call (the vector loops below without AVX2,
# and for what the lanes leave).

cdef inline Py_ssize_t _pixel_taps(const Axis* ax, const Tables* t, Py_ssize_t od,
                                   Py_ssize_t oh, Py_ssize_t ow, Py_ssize_t channels,
                                   Py_ssize_t c0, int64_t* offset, int64_t* tap_at) noexcept nogil:
    """The taps of window (od, oh, ow): their plane offsets (and a sentinel,
    the first) and where channel c0 of each is in the batch element's input;
    returns how many."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t n_taps = 0, a, b, e
    cdef Window w
    _window_at(t, od, oh, ow, &w)
    for a in range(w.first[0], w.first[0] + w.count[0]):
        for b in range(w.first[1], w.first[1] + w.count[1]):
            for e in range(w.first[2], w.first[2] + w.count[2]):
                offset[n_taps] = (a * H + b) * W + e
                tap_at[n_taps] = offset[n_taps] * channels + c0
                n_taps += 1
    offset[n_taps] = offset[0]
    return n_taps


cdef void _forward_block_cl(const real_t* xn, const double* u, real_t* out, int64_t* ind,
                            Py_ssize_t od, Py_ssize_t oh, Py_ssize_t ow, Py_ssize_t c0,
                            Py_ssize_t c1, Py_ssize_t channels, const Axis* ax, const Tables* t,
                            bint training, bint lanes, Py_ssize_t done,
                            double* scratch) noexcept nogil:
    """:func:`_forward_pixel_cl` for channels [c0, c1) (at most CHANNEL_BLOCK)
    of output pixel (od, oh, ow) of the batch element at ``xn``; channel c's
    uniform at u[c - c0], its results at out[c - c0] and ind[c - c0]: the lane
    kernels first when ``lanes``, or ``done`` >= 0 of them already taken; then
    the vector loops.  scratch: (CYPOOL_MAX_TAPS + 3) * CHANNEL_BLOCK doubles;
    windows of at most CYPOOL_MAX_TAPS elements."""
    cdef Py_ssize_t width = c1 - c0
    cdef double* total = scratch
    cdef double* other = scratch + CHANNEL_BLOCK       # Q (eval) or u * S (training)
    cdef double* count = scratch + 2 * CHANNEL_BLOCK
    cdef double* running = scratch + 3 * CHANNEL_BLOCK
    cdef double* after
    cdef int64_t offset[CYPOOL_MAX_TAPS + 1]                 # and a sentinel
    cdef int64_t tap_at[CYPOOL_MAX_TAPS]
    cdef Py_ssize_t n_taps, tap, c, chosen, start = done if done >= 0 else 0
    cdef const real_t* src
    cdef double v, s
    cdef real_t value
    if start == width:
        return
    n_taps = _pixel_taps(ax, t, od, oh, ow, channels, c0, offset, tap_at)
    if done < 0 and lanes and width >= 4:
        if training:
            start = cypool_sample_lanes(xn, real_t is double, tap_at, offset, n_taps, 1, 0,
                                        &cypool_one_row, u, out, ind, 0, width)
        else:
            start = cypool_mean_lanes(xn, real_t is double, tap_at, n_taps, 1, &cypool_one_row,
                                      out, 0, width)
    if start == width:
        return
    for tap in range(n_taps):
        src = xn + tap_at[tap]
        after = running + tap * CHANNEL_BLOCK
        for c in range(start, width):
            v = _vector_positive(src[c])
            if tap == 0:
                total[c] = v
                other[c] = v * v
            else:
                total[c] = total[c] + v
                other[c] = other[c] + v * v
            after[c] = total[c]
    if training:
        for c in range(start, width):
            other[c] = u[c] * total[c]
            count[c] = 0
        for tap in range(n_taps):
            after = running + tap * CHANNEL_BLOCK
            for c in range(start, width):
                count[c] = count[c] + _short(after[c], other[c])
        for c in range(start, width):
            chosen = <Py_ssize_t> count[c]
            value = xn[offset[chosen] * channels + c0 + c]
            out[c] = value if chosen < n_taps else 0
            if ind != NULL:
                ind[c] = offset[chosen]
    else:
        for c in range(start, width):
            s = total[c]
            out[c] = <real_t> (other[c] / (s if s != 0 else 1.0))


cdef struct ChannelDraws:
    # drawing channels-last uniforms: the stream, and its jumps from one
    # channel's plane to the next and from the end of a plane to the same
    # channel's plane of the next batch element
    Stream stream
    cypool_draws gen
    cypool_jump plane
    cypool_jump batch


cdef void _channel_draws(ChannelDraws* d, const Stream* stream, Py_ssize_t channels,
                         Py_ssize_t out_plane) noexcept nogil:
    d.stream = stream[0]
    d.gen = cypool_draws_of(stream.inc)
    d.plane = cypool_pcg64_jump(stream.inc, out_plane)
    d.batch = cypool_pcg64_jump(stream.inc, (channels - 1) * out_plane)


cdef void _draw_block_cl(cypool_state* states, const cypool_draws* gen, Py_ssize_t c0,
                         Py_ssize_t c1, Py_ssize_t pixels, double* u, bint lanes) noexcept nogil:
    """The next ``pixels`` draws of channels [c0, c1): channel c's i-th at
    u[i * (c1 - c0) + c - c0]."""
    cdef Py_ssize_t c, d
    for c in range(c0, c1, 2):
        # two channels' streams interleaved; a last odd one alone
        d = c + 1 if c + 1 < c1 else c
        cypool_pcg64_draw2(&states[c], &states[d], gen, u + c - c0, u + d - c0, pixels,
                           c1 - c0, lanes)


cdef inline Py_ssize_t _rows_cl_room(Py_ssize_t channels) noexcept nogil:
    """Scratch doubles of :func:`_forward_rows_cl` (even: the states stay 16-byte aligned)."""
    return 2 * channels + CHANNEL_BLOCK * PIXEL_BLOCK + (CYPOOL_MAX_TAPS + 3) * CHANNEL_BLOCK


cdef void _forward_rows_cl(const real_t* x, const double* uniforms, const ChannelDraws* draws,
                           real_t* out, int64_t* ind, Py_ssize_t row0, Py_ssize_t row1,
                           Py_ssize_t channels, const Axis* ax, const Tables* t,
                           bint training, bint lanes, double* scratch) noexcept nogil:
    """Channels-last output rows [row0, row1) of the whole batch (row r is
    batch element r // (OD * OH)).  Training takes uniforms from ``uniforms``
    (channels-last) or, when that is NULL, draws them from ``draws``.
    scratch: :func:`_rows_cl_room` doubles, 16-byte aligned."""
    cdef Py_ssize_t OW = ax[2].out_size, rows_per = ax[0].out_size * ax[1].out_size
    cdef Py_ssize_t out_plane = rows_per * OW
    cdef bint draw = training and uniforms == NULL
    cdef cypool_state* states = <cypool_state*> scratch
    cdef double* block_u = scratch + 2 * channels
    cdef double* vector = block_u + CHANNEL_BLOCK * PIXEL_BLOCK
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t r, j, od, oh, c, c0, c1, s0, s1, w0, w1, ow, at, n_taps, done
    cdef const double* u = NULL
    cdef const real_t* xn
    cdef int64_t offset[CYPOOL_MAX_TAPS + 1]
    cdef int64_t tap_at[CYPOOL_MAX_TAPS]
    cdef cypool_rows rows
    for r in range(row0, row1):
        j = r % rows_per
        od = j // ax[1].out_size
        oh = j % ax[1].out_size
        xn = x + (r // rows_per) * in_plane * channels
        if draw and r == row0:
            states[0] = cypool_state_of(cypool_pcg64_advance(
                draws.stream.state, draws.stream.inc, (r // rows_per) * channels * out_plane + j * OW))
            for c in range(1, channels):
                states[c] = cypool_jump_apply(draws.plane, states[c - 1])
        elif draw and j == 0:
            for c in range(channels):
                states[c] = cypool_jump_apply(draws.batch, states[c])
        s0 = 0
        while s0 < OW:
            s1 = s0 + PIXEL_BLOCK if s0 + PIXEL_BLOCK < OW else OW
            c0 = 0
            while c0 < channels:
                c1 = c0 + CHANNEL_BLOCK if c0 + CHANNEL_BLOCK < channels else channels
                if draw:
                    _draw_block_cl(states, &draws.gen, c0, c1, s1 - s0, block_u, lanes)
                # the pixels whose windows are whole along W, [w0, w1), in one lane call
                w0 = s0 if s0 > t.full_lo[2] else t.full_lo[2]
                w1 = s1 if s1 < t.full_hi[2] else t.full_hi[2]
                done = -1
                if lanes and w1 > w0 and c1 - c0 >= 4:
                    at = (r * OW + w0) * channels + c0
                    n_taps = _pixel_taps(ax, t, od, oh, w0, channels, c0, offset, tap_at)
                    rows = cypool_rows(w1 - w0, ax[2].stride * channels, ax[2].stride,
                                       c1 - c0 if draw else channels, channels)
                    if training:
                        u = uniforms + at if not draw else block_u + (w0 - s0) * (c1 - c0)
                        done = cypool_sample_lanes(xn, real_t is double, tap_at, offset, n_taps, 1,
                                                   0, &rows, u, out + at,
                                                   ind + at if ind != NULL else NULL, 0, c1 - c0)
                    else:
                        done = cypool_mean_lanes(xn, real_t is double, tap_at, n_taps, 1, &rows,
                                                 out + at, 0, c1 - c0)
                for ow in range(s0, s1):
                    at = (r * OW + ow) * channels + c0
                    if draw:
                        u = block_u + (ow - s0) * (c1 - c0)
                    elif training:
                        u = uniforms + at
                    _forward_block_cl(xn, u, out + at, ind + at if ind != NULL else NULL, od, oh,
                                      ow, c0, c1, channels, ax, t, training, lanes,
                                      done if w0 <= ow < w1 else -1, vector)
                c0 = c1
            s0 = s1


# ---------------------------------------------------------------- drivers

cdef inline Py_ssize_t _lines(Py_ssize_t doubles) noexcept nogil:
    """``doubles`` rounded up to whole 64-byte lines."""
    return (doubles + 7) & ~7


cdef inline bint _vector_windows(const Axis* ax) noexcept nogil:
    return ax[0].kernel * ax[1].kernel * ax[2].kernel <= CYPOOL_MAX_TAPS


cdef void _plane_with_uniforms(const real_t* x, const double* uniforms, const Stream* stream,
                               const PlaneDraws* draws, PlaneCursor* cursor, real_t* out,
                               int64_t* ind, Py_ssize_t p, const Axis* ax, const Tables* t,
                               bint training, bint fast, bint lanes, double* scratch,
                               double* drawn) noexcept nogil:
    """Channels-first plane ``p``; its uniforms are in ``uniforms`` or, when
    that is NULL in training, drawn from ``stream`` into ``drawn``."""
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef const double* u = uniforms + p * out_plane if training and uniforms != NULL else NULL
    if fast:
        _forward_plane_fast(x, u, draws, cursor, p, out, ind, ax, t, training, lanes, scratch,
                            drawn)
        return
    if training and u == NULL:
        cypool_pcg64_uniforms(stream.state, stream.inc, p * out_plane, drawn, out_plane)
        u = drawn
    _forward_plane(x, u, out, ind, ax, t, training)


cdef int _forward(const real_t* x, const double* uniforms, const Stream* stream, real_t* out,
                  int64_t* ind, Py_ssize_t lead, Py_ssize_t channels, bint channels_last,
                  const Axis* ax, const Tables* t, bint training, int nthreads,
                  bint naive, bint lanes) noexcept nogil:
    """``lead`` is planes (channels-first) or batch (channels-last).  Training
    draws come from ``uniforms`` (in the output's layout) or, when it is NULL,
    from ``stream``; -1: no memory."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef bint fast = not naive and _vector_windows(ax)
    cdef bint draw = training and uniforms == NULL
    # per thread: the row scratch of _forward_row, then the drawn uniforms, each
    # on its own 64-byte lines (the lane kernels load the uniforms 32 bytes at
    # a time: unaligned, every other load would straddle two lines)
    cdef Py_ssize_t rows_room = _lines((CYPOOL_MAX_TAPS + 3) * ax[2].out_size + 16)
    cdef Py_ssize_t room = rows_room + (_lines(out_plane) if draw else 0)
    cdef Py_ssize_t p, planes, total_rows
    cdef double* scratch
    cdef void* block
    cdef double* mine
    cdef double* drawn = NULL
    cdef PlaneDraws draws
    cdef PlaneCursor* cursors
    cdef ChannelDraws channel_draws
    if not channels_last:
        if draw:
            _plane_draws(&draws, stream, out_plane)
        block = malloc((nthreads * room + 8) * sizeof(double))
        scratch = <double*> ((<uintptr_t> block + 63) & ~(<uintptr_t> 63))
        cursors = <PlaneCursor*> malloc(nthreads * sizeof(PlaneCursor))
        if block == NULL or cursors == NULL:
            free(block)
            free(cursors)
            return -1
        for p in range(nthreads):
            cursors[p].next = -1
        if nthreads > 1:
            for p in prange(lead, schedule='guided', num_threads=nthreads):
                mine = scratch + threadid() * room
                _plane_with_uniforms(x + p * in_plane, uniforms, stream, &draws,
                                     &cursors[threadid()], out + p * out_plane,
                                     ind + p * out_plane if ind != NULL else NULL, p, ax, t,
                                     training, fast, lanes, mine, mine + rows_room)
        else:
            for p in range(lead):
                _plane_with_uniforms(x + p * in_plane, uniforms, stream, &draws, cursors,
                                     out + p * out_plane,
                                     ind + p * out_plane if ind != NULL else NULL, p, ax, t,
                                     training, fast, lanes, scratch, scratch + rows_room)
        free(block)
        free(cursors)
        return 0
    total_rows = lead * ax[0].out_size * ax[1].out_size
    if fast:
        if draw:
            _channel_draws(&channel_draws, stream, channels, out_plane)
        room = _rows_cl_room(channels)
        scratch = <double*> malloc(nthreads * room * sizeof(double))
        if scratch == NULL:
            return -1
        if nthreads > 1:
            # each thread one run of rows, so its channels' streams step along it
            for p in prange(nthreads, schedule='static', num_threads=nthreads):
                _forward_rows_cl(x, uniforms, &channel_draws, out, ind, p * total_rows // nthreads,
                                 (p + 1) * total_rows // nthreads, channels, ax, t, training,
                                 lanes, scratch + p * room)
        else:
            _forward_rows_cl(x, uniforms, &channel_draws, out, ind, 0, total_rows, channels, ax,
                             t, training, lanes, scratch)
        free(scratch)
        return 0
    # the general loop: drawn uniforms stay in channels-first order, plane by plane
    planes = lead * channels
    if draw:
        drawn = <double*> malloc((planes * out_plane + 1) * sizeof(double))
        if drawn == NULL:
            return -1
        if nthreads > 1:
            for p in prange(planes, schedule='guided', num_threads=nthreads):
                cypool_pcg64_uniforms(stream.state, stream.inc, p * out_plane,
                                      drawn + p * out_plane, out_plane)
        else:
            for p in range(planes):
                cypool_pcg64_uniforms(stream.state, stream.inc, p * out_plane,
                                      drawn + p * out_plane, out_plane)
    if nthreads > 1:
        for p in prange(lead * out_plane, schedule='guided', num_threads=nthreads):
            _forward_pixel_cl(x, _pixel_uniforms(uniforms, drawn, p, channels, out_plane),
                              out_plane if drawn != NULL else 1, out, ind, p, channels, ax, t,
                              training)
    else:
        for p in range(lead * out_plane):
            _forward_pixel_cl(x, _pixel_uniforms(uniforms, drawn, p, channels, out_plane),
                              out_plane if drawn != NULL else 1, out, ind, p, channels, ax, t,
                              training)
    free(drawn)
    return 0


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
                            bint naive=False, bint simd=True):
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
    simd: False keeps the AVX2 lane kernels out (the tests compare both fast paths).
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
    cdef bint lanes = simd and cy_simd_level() >= CY_SIMD_AVX2
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
            status = _forward[float](<float*> xp, up, &drawn_from, <float*> op, ip, lead, channels, channels_last, ax, &t, training, nthreads, naive, lanes)
        else:
            status = _forward[double](<double*> xp, up, &drawn_from, <double*> op, ip, lead, channels, channels_last, ax, &t, training, nthreads, naive, lanes)
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
            for p in prange(lead, schedule='guided', num_threads=nthreads):
                _eval_plane(grad_out + p * out_plane, x + p * in_plane, grad_in + p * in_plane,
                            ax, t)
        else:
            for p in range(lead):
                _eval_plane(grad_out + p * out_plane, x + p * in_plane, grad_in + p * in_plane,
                            ax, t)
    else:
        if nthreads > 1:
            for p in prange(lead * blocks, schedule='guided', num_threads=nthreads):
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
            for p in prange(lead, schedule='guided', num_threads=nthreads):
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
            for p in prange(jobs, schedule='guided', num_threads=nthreads):
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
