/* Hand-vectorised max pooling loops for the most common windows.
 *
 * cy_max_s2_f32/f64(rows, n_rows, width, out, n): windows `width` (2 or 3) wide at
 * stride 2 along a row, over n_rows rows; for i in [0, n),
 *
 *     out[i] = the scan-order max of rows[0][2i], ..., rows[0][2i + width - 1], rows[1][2i], ...
 *
 * cy_avg_s2_f32/f64: the same windows' averages, with a divisor per output.
 *
 * cy_max_s1_f32/f64(rows, n_rows, kernel, dilation, out, n): windows at stride 1;
 * cy_sum_s1_f32/f64: their sums (the average's separable passes).
 *
 * cy_max_taps_f32/f64, cy_avg_taps_f32/f64: channels-last windows (at most
 * CY_SUM_MAX_TAPS taps), the channel vectors in registers; cy_max_taps_row/cy_avg_taps_row:
 * n such windows along a row in one call.
 *
 * cy_transpose_f32/f64, cy_to_lanes/cy_from_lanes: planes to lanes and back (the small-plane
 * paths), and
 * cy_max_lanes_f32/f64, cy_avg_lanes_f32/f64, cy_avg_back_lanes_f32/f64: 16 small planes
 * side by side pooled as one channels-last plane (the average also backward, and in the
 * adaptive column path's order: cy_avg_col_lanes_f32/f64).
 *
 * cy_max_lanes_block_f32/f64: 16 small planes through the lanes to their maxima.
 *
 * cy_window_max_f32/f64: the maximum of one long run of a row and its position;
 * cy_window_value_f32/f64: the same maximum's value alone.
 *
 * cy_wide_sum_f32/f64: a sum in 32 (float32) or 16 (float64) partial sums (the global
 * average's planes).
 *
 * cy_channel_maxima_f32/f64: the maxima of each channel over a channels-last plane, values
 * alone (the global max's), with a sum per channel that shows a NaN;
 * cy_channel_argmax_f32/f64: the same maxima with their pixel offsets.
 *
 * cy_window_sums_f32/f64: the sums of windows at a stride of 2 or more along a row, each
 * from its first tap to its last.
 *
 * cy_max_strided_f32/f64: the maxima (values alone) of windows at a stride of 3 or more
 * along a row.
 *
 * cy_stream_copy: memcpy with stores that bypass the cache (non-temporal), then a store
 * fence: a result far larger than the cache, built in cache a block at a time, reaches
 * memory in one write, without the read of each line that a plain store costs first.
 *
 * Both follow PyTorch's rule (a later value wins when it is greater or NaN), so the
 * results are bit for bit the general loops': each row's window is combined first,
 * then the rows in order.  gcc vectorises the generic loops too, but with one pass
 * per tap and a blend that costs twice these instructions.
 *
 * Paths: AVX2 (x86-64 with gcc or clang, chosen at run time from the CPU, since wheels
 * are built for baseline x86-64), SSE2 (every x86-64), and portable C elsewhere.
 * cy_simd_level() reports the path in use; cy_simd_cap(level) lowers it so the tests can
 * run every path on one machine.
 */
#ifndef CYPOOL_SIMD_H
#define CYPOOL_SIMD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#define CY_HAVE_SSE2 1
#include <emmintrin.h>
#else
#define CY_HAVE_SSE2 0
#endif

#if CY_HAVE_SSE2 && (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define CY_HAVE_AVX2 1
#include <immintrin.h>
#define CY_AVX2 __attribute__((target("avx2")))
#else
#define CY_HAVE_AVX2 0
#endif

/* code only where the path is compiled */
#if CY_HAVE_AVX2
#define CY_IF_AVX2(code) code
#else
#define CY_IF_AVX2(code)
#endif
#if CY_HAVE_SSE2
#define CY_IF_SSE2(code) code
#else
#define CY_IF_SSE2(code)
#endif

/* Inlined at every call, so that constant arguments unroll the loops they bound. */
#if defined(__GNUC__) || defined(__clang__)
#define CY_ALWAYS_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define CY_ALWAYS_INLINE __forceinline
#else
#define CY_ALWAYS_INLINE inline
#endif

enum { CY_SIMD_SCALAR = 0, CY_SIMD_SSE2 = 1, CY_SIMD_AVX2 = 2 };

/* Most taps of a channels-last window the cy_*_taps functions take. */
enum { CY_SUM_MAX_TAPS = 64 };

/* -1 until the first call; then the best path this CPU runs, lowered by cy_simd_cap. */
static int cy_simd_level_ = -1;

static int cy_simd_level(void) {
    if (cy_simd_level_ < 0) {
        int level = CY_HAVE_SSE2 ? CY_SIMD_SSE2 : CY_SIMD_SCALAR;
#if CY_HAVE_AVX2
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2")) level = CY_SIMD_AVX2;
#endif
        cy_simd_level_ = level;
    }
    return cy_simd_level_;
}

/* Cap the level (tests only): returns the level now in use. */
static int cy_simd_cap(int cap) {
    cy_simd_level_ = -1;
    if (cy_simd_level() > cap) cy_simd_level_ = cap < 0 ? 0 : cap;
    return cy_simd_level_;
}

/* ---------------------------------------------------------------- scalar */

#define CY_PICK(best, value) (((value) > (best)) | ((value) != (value)) ? (value) : (best))

/* one-lane "vectors", for the portable forms of the vector loops */
#define CY_LOAD1(p) (*(p))
#define CY_STORE1(p, v) (*(p) = (v))
#define CY_TAKE1(b, x) (((x) > (b)) | ((x) != (x)))
#define CY_BLEND1(a, b, m) ((m) ? (b) : (a))
#define CY_SET1(x) (x)
#define CY_ADD1(a, b) ((a) + (b))

#define CY_S2_SCALAR(T, rows, n_rows, width, out, start, n)                \
    for (ptrdiff_t i_ = (start); i_ < (n); i_++) {                          \
        T best_ = (rows)[0][2 * i_];                                        \
        for (ptrdiff_t r_ = 0; r_ < (n_rows); r_++) {                       \
            for (ptrdiff_t j_ = (r_ == 0); j_ < (width); j_++) {            \
                T v_ = (rows)[r_][2 * i_ + j_];                             \
                best_ = CY_PICK(best_, v_);                                 \
            }                                                               \
        }                                                                   \
        (out)[i_] = best_;                                                  \
    }

/* Windows `width` (2 or 3) wide at stride 2 from p, combined by OP in scan order: one
   vector of them.  EVEN / ODD pick the even / odd elements of two vectors (in the
   256-bit forms, lane by lane: windows 0,1,4,5,2,3,6,7 for floats, 0,2,1,3 for doubles;
   the callers restore the order once).  Width 3's third elements are the odd ones of
   the vectors one element on (the even ones two on are the same values, but read one
   element past the last window), so a vector reads no further than its windows. */
#define CY_DEFINE_WIN(NAME, ATTR, T, V, HALF, LOADU, EVEN, ODD, OP)                       \
    ATTR static inline V NAME(const T* p, ptrdiff_t width) {                               \
        V a = LOADU(p), b = LOADU(p + (HALF));                                             \
        V r = OP(EVEN(a, b), ODD(a, b));                                                   \
        if (width == 3) r = OP(r, ODD(LOADU(p + 1), LOADU(p + 1 + (HALF))));               \
        return r;                                                                          \
    }
#define CY_EVEN_PS(a, b) _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))
#define CY_ODD_PS(a, b) _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))
#define CY_EVEN_PS256(a, b) _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))
#define CY_ODD_PS256(a, b) _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))

/* ------------------------------------------------------------------ SSE2 */

#if CY_HAVE_SSE2
/* later wins when greater or NaN: max(later, earlier) keeps earlier on ties and on
   unordered pairs, then a NaN later is put back */
static inline __m128 cy_pick_ps(__m128 earlier, __m128 later) {
    __m128 m = _mm_max_ps(later, earlier);
    __m128 nan = _mm_cmpunord_ps(later, later);
    return _mm_or_ps(_mm_andnot_ps(nan, m), _mm_and_ps(nan, later));
}

static inline __m128d cy_pick_pd(__m128d earlier, __m128d later) {
    __m128d m = _mm_max_pd(later, earlier);
    __m128d nan = _mm_cmpunord_pd(later, later);
    return _mm_or_pd(_mm_andnot_pd(nan, m), _mm_and_pd(nan, later));
}

CY_DEFINE_WIN(cy_win_ps, , float, __m128, 4, _mm_loadu_ps, CY_EVEN_PS, CY_ODD_PS, cy_pick_ps)
CY_DEFINE_WIN(cy_win_pd, , double, __m128d, 2, _mm_loadu_pd, _mm_unpacklo_pd, _mm_unpackhi_pd,
              cy_pick_pd)
CY_DEFINE_WIN(cy_sum_win_ps, , float, __m128, 4, _mm_loadu_ps, CY_EVEN_PS, CY_ODD_PS, _mm_add_ps)
CY_DEFINE_WIN(cy_sum_win_pd, , double, __m128d, 2, _mm_loadu_pd, _mm_unpacklo_pd, _mm_unpackhi_pd,
              _mm_add_pd)

/* One lane: the tail of a row, branch-free (scalar C branches here). */
#define CY_S2_LANE(PICK, LOAD, rows, n_rows, width, i, best)                \
    best = LOAD((rows)[0] + 2 * (i));                                       \
    for (ptrdiff_t r_ = 0; r_ < (n_rows); r_++)                             \
        for (ptrdiff_t j_ = (r_ == 0); j_ < (width); j_++)                  \
            best = PICK(best, LOAD((rows)[r_] + 2 * (i) + j_));

static ptrdiff_t cy_s2_f32_sse2(const float* const* rows, ptrdiff_t n_rows, ptrdiff_t width,
                                float* out, ptrdiff_t i, ptrdiff_t n) {
    for (; i + 4 <= n; i += 4) {
        __m128 best = cy_win_ps(rows[0] + 2 * i, width);
        for (ptrdiff_t r = 1; r < n_rows; r++) best = cy_pick_ps(best, cy_win_ps(rows[r] + 2 * i, width));
        _mm_storeu_ps(out + i, best);
    }
    for (; i < n; i++) {
        __m128 best;
        CY_S2_LANE(cy_pick_ps, _mm_load_ss, rows, n_rows, width, i, best)
        _mm_store_ss(out + i, best);
    }
    return i;
}

static ptrdiff_t cy_s2_f64_sse2(const double* const* rows, ptrdiff_t n_rows, ptrdiff_t width,
                                double* out, ptrdiff_t i, ptrdiff_t n) {
    for (; i + 2 <= n; i += 2) {
        __m128d best = cy_win_pd(rows[0] + 2 * i, width);
        for (ptrdiff_t r = 1; r < n_rows; r++) best = cy_pick_pd(best, cy_win_pd(rows[r] + 2 * i, width));
        _mm_storeu_pd(out + i, best);
    }
    for (; i < n; i++) {
        __m128d best;
        CY_S2_LANE(cy_pick_pd, _mm_load_sd, rows, n_rows, width, i, best)
        _mm_store_sd(out + i, best);
    }
    return i;
}
#endif

/* ------------------------------------------------------- one element */

/* best after value (the same rule), and *at = idx when value wins: branch-free,
   for the short rows and clipped windows where a mispredicted branch per element
   costs more than the work (the compilers branch on a scalar float select). */
#if CY_HAVE_SSE2
static inline float cy_pick1_f32(float best, float value, int32_t* at, int32_t idx) {
    __m128 b = _mm_set_ss(best), v = _mm_set_ss(value);
    __m128 take = _mm_or_ps(_mm_cmplt_ss(b, v), _mm_cmpunord_ss(v, v));
    *at = (_mm_movemask_ps(take) & 1) ? idx : *at;
    return _mm_cvtss_f32(_mm_or_ps(_mm_and_ps(take, v), _mm_andnot_ps(take, b)));
}

static inline double cy_pick1_f64(double best, double value, int32_t* at, int32_t idx) {
    __m128d b = _mm_set_sd(best), v = _mm_set_sd(value);
    __m128d take = _mm_or_pd(_mm_cmplt_sd(b, v), _mm_cmpunord_sd(v, v));
    *at = (_mm_movemask_pd(take) & 1) ? idx : *at;
    return _mm_cvtsd_f64(_mm_or_pd(_mm_and_pd(take, v), _mm_andnot_pd(take, b)));
}
#else
static inline float cy_pick1_f32(float best, float value, int32_t* at, int32_t idx) {
    int take = (value > best) | (value != value);
    *at = take ? idx : *at;
    return take ? value : best;
}

static inline double cy_pick1_f64(double best, double value, int32_t* at, int32_t idx) {
    int take = (value > best) | (value != value);
    *at = take ? idx : *at;
    return take ? value : best;
}
#endif


/* ------------------------------------------------------------------ AVX2 */

#if CY_HAVE_AVX2
CY_AVX2 static inline __m256 cy_pick_ps256(__m256 earlier, __m256 later) {
    return _mm256_blendv_ps(_mm256_max_ps(later, earlier), later,
                            _mm256_cmp_ps(later, later, _CMP_UNORD_Q));
}

CY_AVX2 static inline __m256d cy_pick_pd256(__m256d earlier, __m256d later) {
    return _mm256_blendv_pd(_mm256_max_pd(later, earlier), later,
                            _mm256_cmp_pd(later, later, _CMP_UNORD_Q));
}

CY_DEFINE_WIN(cy_win_ps256, CY_AVX2, float, __m256, 8, _mm256_loadu_ps, CY_EVEN_PS256, CY_ODD_PS256,
              cy_pick_ps256)
CY_DEFINE_WIN(cy_win_pd256, CY_AVX2, double, __m256d, 4, _mm256_loadu_pd, _mm256_unpacklo_pd,
              _mm256_unpackhi_pd, cy_pick_pd256)
CY_DEFINE_WIN(cy_sum_win_ps256, CY_AVX2, float, __m256, 8, _mm256_loadu_ps, CY_EVEN_PS256,
              CY_ODD_PS256, _mm256_add_ps)
CY_DEFINE_WIN(cy_sum_win_pd256, CY_AVX2, double, __m256d, 4, _mm256_loadu_pd, _mm256_unpacklo_pd,
              _mm256_unpackhi_pd, _mm256_add_pd)

CY_AVX2 static inline void cy_s2_f32_avx2_one(const float* const* rows, ptrdiff_t n_rows,
                                               ptrdiff_t width, float* out, ptrdiff_t i) {
    __m256 best = cy_win_ps256(rows[0] + 2 * i, width);
    for (ptrdiff_t r = 1; r < n_rows; r++)
        best = cy_pick_ps256(best, cy_win_ps256(rows[r] + 2 * i, width));
    best = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(best), _MM_SHUFFLE(3, 1, 2, 0)));
    _mm256_storeu_ps(out + i, best);
}

CY_AVX2 static inline void cy_s2_f64_avx2_one(const double* const* rows, ptrdiff_t n_rows,
                                               ptrdiff_t width, double* out, ptrdiff_t i) {
    __m256d best = cy_win_pd256(rows[0] + 2 * i, width);
    for (ptrdiff_t r = 1; r < n_rows; r++)
        best = cy_pick_pd256(best, cy_win_pd256(rows[r] + 2 * i, width));
    _mm256_storeu_pd(out + i, _mm256_permute4x64_pd(best, _MM_SHUFFLE(3, 1, 2, 0)));
}

/* A row's last vector is taken again ending at n (max writes the same bits twice)
   rather than leaving a tail for the narrower paths. */
#define CY_S2_AVX2(T, SFX, LANES)                                                          \
    CY_AVX2 static ptrdiff_t cy_s2_##SFX##_avx2(const T* const* rows, ptrdiff_t n_rows,    \
                                                ptrdiff_t width, T* out, ptrdiff_t i,      \
                                                ptrdiff_t n) {                             \
        for (; i + 4 * (LANES) <= n; i += 4 * (LANES)) {                                   \
            cy_s2_##SFX##_avx2_one(rows, n_rows, width, out, i);                           \
            cy_s2_##SFX##_avx2_one(rows, n_rows, width, out, i + (LANES));                 \
            cy_s2_##SFX##_avx2_one(rows, n_rows, width, out, i + 2 * (LANES));             \
            cy_s2_##SFX##_avx2_one(rows, n_rows, width, out, i + 3 * (LANES));             \
        }                                                                                  \
        for (; i + (LANES) <= n; i += (LANES))                                             \
            cy_s2_##SFX##_avx2_one(rows, n_rows, width, out, i);                           \
        if (i < n && n >= (LANES)) {                                                       \
            cy_s2_##SFX##_avx2_one(rows, n_rows, width, out, n - (LANES));                 \
            i = n;                                                                         \
        }                                                                                  \
        return i;                                                                          \
    }
CY_S2_AVX2(float, f32, 8)
CY_S2_AVX2(double, f64, 4)

#endif

/* --------------------------------------------------------- stride 1 */

/* Four vectors of outputs [i, i + 4 * LANES) of windows at stride 1 (`kernel` taps `step`
   apart, over n_rows rows) combined by OP in scan order, each vector its own chain in
   a0..a3: an OP waits for the one before it in its chain (a max pick and a blend, or an
   addition), so one chain alone would leave the vector units idle. */
#define CY_FOUR_CHAINS(T, LOADU, OP, LANES, rows, n_rows, kernel, step, i, a0, a1, a2, a3)  \
    {                                                                                      \
        const T* p_ = (rows)[0] + (i);                                                     \
        a0 = LOADU(p_), a1 = LOADU(p_ + (LANES));                                          \
        a2 = LOADU(p_ + 2 * (LANES)), a3 = LOADU(p_ + 3 * (LANES));                        \
        for (ptrdiff_t r_ = 0; r_ < (n_rows); r_++)                                        \
            for (ptrdiff_t j_ = (r_ == 0); j_ < (kernel); j_++) {                          \
                p_ = (rows)[r_] + (i) + j_ * (step);                                       \
                a0 = OP(a0, LOADU(p_));                                                    \
                a1 = OP(a1, LOADU(p_ + (LANES)));                                          \
                a2 = OP(a2, LOADU(p_ + 2 * (LANES)));                                      \
                a3 = OP(a3, LOADU(p_ + 3 * (LANES)));                                      \
            }                                                                              \
    }

/* Windows at stride 1 along a row, `kernel` taps `dilation` apart, over n_rows rows:
   out[i] = the scan-order max of rows[0][i], rows[0][i + dilation], ...,
   rows[1][i], ... for i in [0, n), each output in a register across its taps
   (gcc's loop makes one pass over the output row per tap).  Windows of more than
   three taps go four vectors at a time (CY_FOUR_CHAINS). */
#define CY_DEFINE_S1(NAME, ATTR, T, V, LANES, LOADU, STOREU, PICK, PLAIN)                 \
    ATTR static CY_ALWAYS_INLINE void NAME##_one(                                          \
            const T* const* rows, ptrdiff_t n_rows, ptrdiff_t kernel, ptrdiff_t dilation,  \
            T* out, ptrdiff_t i) {                                                         \
        V best = LOADU(rows[0] + i);                                                       \
        for (ptrdiff_t r = 0; r < n_rows; r++)                                             \
            for (ptrdiff_t j = (r == 0); j < kernel; j++)                                  \
                best = PICK(best, LOADU(rows[r] + i + j * dilation));                      \
        STOREU(out + i, best);                                                             \
    }                                                                                      \
    ATTR static CY_ALWAYS_INLINE void NAME##_four(                                         \
            const T* const* rows, ptrdiff_t n_rows, ptrdiff_t kernel, ptrdiff_t dilation,  \
            T* out, ptrdiff_t i) {                                                         \
        V b0, b1, b2, b3;                                                                  \
        CY_FOUR_CHAINS(T, LOADU, PICK, LANES, rows, n_rows, kernel, dilation, i,           \
                       b0, b1, b2, b3)                                                     \
        STOREU(out + i, b0);                                                               \
        STOREU(out + i + (LANES), b1);                                                     \
        STOREU(out + i + 2 * (LANES), b2);                                                 \
        STOREU(out + i + 3 * (LANES), b3);                                                 \
    }                                                                                      \
    ATTR static ptrdiff_t NAME(const T* const* rows, ptrdiff_t n_rows, ptrdiff_t kernel,   \
                               ptrdiff_t dilation, T* out, ptrdiff_t i, ptrdiff_t n) {     \
        /* one row without NaN: plain maxima (PLAIN); else the picks below */              \
        if (n_rows == 1 && (kernel == 2 || kernel == 3) && n - i >= (LANES)               \
                && PLAIN(rows[0], kernel, dilation, out, i, n))                            \
            return n;                                                                      \
        /* one row of 2 or 3 taps (1-D rows, separable row passes): the taps unrolled */   \
        if (n_rows == 1 && kernel == 3)                                                    \
            for (; i + (LANES) <= n; i += (LANES))                                         \
                NAME##_one(rows, 1, 3, dilation, out, i);                                  \
        else if (n_rows == 1 && kernel == 2)                                               \
            for (; i + (LANES) <= n; i += (LANES))                                         \
                NAME##_one(rows, 1, 2, dilation, out, i);                                  \
        else {                                                                             \
            for (; i + 4 * (LANES) <= n; i += 4 * (LANES))                                 \
                NAME##_four(rows, n_rows, kernel, dilation, out, i);                       \
            for (; i + (LANES) <= n; i += (LANES))                                         \
                NAME##_one(rows, n_rows, kernel, dilation, out, i);                        \
        }                                                                                  \
        if (i < n && n >= (LANES)) {  /* the last vector again, ending at n: same bits */  \
            NAME##_one(rows, n_rows, kernel, dilation, out, n - (LANES));                  \
            i = n;                                                                         \
        }                                                                                  \
        return i;                                                                          \
    }

/* One row's windows of 2 or 3 taps [i, n) (n - i >= LANES), values alone, by plain
   maxima (wider windows measured faster by the picks four vectors a step): max(later,
   best) keeps the earlier of equal values, as the rule does, and differs from it only
   when a tap is NaN.  A sum of the row's elements (each once: the first tap of every
   vector, then the taps past the last window's first) probes for one: a NaN among them
   (or infinities of both signs) makes it NaN, and the function returns 0 for the caller
   to take the picks instead (rewriting out); else 1.  Two taps fewer per tap than the
   picks (no unordered compare, no blend). */
#define CY_DEFINE_S1_PLAIN(NAME, ATTR, T, V, LANES, LOADU, STOREU, MAX, ADD, ZERO, ANY_NAN) \
    ATTR static CY_ALWAYS_INLINE V NAME##_win(const T* p, ptrdiff_t kernel,               \
                                              ptrdiff_t dilation) {                       \
        V best = LOADU(p);                                                                 \
        for (ptrdiff_t j = 1; j < kernel; j++) best = MAX(LOADU(p + j * dilation), best);  \
        return best;                                                                       \
    }                                                                                      \
    ATTR static CY_ALWAYS_INLINE void NAME##_run(const T* row, ptrdiff_t kernel,          \
                                                 ptrdiff_t dilation, T* out, ptrdiff_t i,  \
                                                 ptrdiff_t n, V* probe) {                  \
        V p0 = *probe, p1 = ZERO();                                                        \
        for (; i + 2 * (LANES) <= n; i += 2 * (LANES)) {                                   \
            p0 = ADD(p0, LOADU(row + i));                                                  \
            p1 = ADD(p1, LOADU(row + i + (LANES)));                                        \
            STOREU(out + i, NAME##_win(row + i, kernel, dilation));                        \
            STOREU(out + i + (LANES), NAME##_win(row + i + (LANES), kernel, dilation));    \
        }                                                                                  \
        for (; i + (LANES) <= n; i += (LANES)) {                                           \
            p0 = ADD(p0, LOADU(row + i));                                                  \
            STOREU(out + i, NAME##_win(row + i, kernel, dilation));                        \
        }                                                                                  \
        if (i < n) {  /* the last vector again, ending at n: same bits */                  \
            p0 = ADD(p0, LOADU(row + n - (LANES)));                                        \
            STOREU(out + n - (LANES), NAME##_win(row + n - (LANES), kernel, dilation));    \
        }                                                                                  \
        *probe = ADD(p0, p1);                                                              \
    }                                                                                      \
    ATTR static int NAME(const T* row, ptrdiff_t kernel, ptrdiff_t dilation, T* out,       \
                         ptrdiff_t i, ptrdiff_t n) {                                       \
        V probe = ZERO();                                                                  \
        int nan = 0;                                                                       \
        if (kernel == 3)                                                                   \
            NAME##_run(row, 3, dilation, out, i, n, &probe);                               \
        else                                                                               \
            NAME##_run(row, 2, dilation, out, i, n, &probe);                               \
        for (ptrdiff_t t = n; t < n + (kernel - 1) * dilation; t++) nan |= row[t] != row[t]; \
        return !(nan | ANY_NAN(probe));                                                    \
    }

#define CY_NO_PLAIN(row, kernel, dilation, out, i, n) 0
#define CY_PICK1(best, value) CY_PICK(best, value)
CY_DEFINE_S1(cy_s1_f32_c, , float, float, 1, CY_LOAD1, CY_STORE1, CY_PICK1, CY_NO_PLAIN)
CY_DEFINE_S1(cy_s1_f64_c, , double, double, 1, CY_LOAD1, CY_STORE1, CY_PICK1, CY_NO_PLAIN)
#if CY_HAVE_SSE2
#define CY_ANY_NAN_PS(v) _mm_movemask_ps(_mm_cmpunord_ps(v, v))
#define CY_ANY_NAN_PD(v) _mm_movemask_pd(_mm_cmpunord_pd(v, v))
CY_DEFINE_S1_PLAIN(cy_plain_s1_f32_sse2, , float, __m128, 4, _mm_loadu_ps, _mm_storeu_ps,
                   _mm_max_ps, _mm_add_ps, _mm_setzero_ps, CY_ANY_NAN_PS)
CY_DEFINE_S1_PLAIN(cy_plain_s1_f64_sse2, , double, __m128d, 2, _mm_loadu_pd, _mm_storeu_pd,
                   _mm_max_pd, _mm_add_pd, _mm_setzero_pd, CY_ANY_NAN_PD)
CY_DEFINE_S1(cy_s1_f32_sse2, , float, __m128, 4, _mm_loadu_ps, _mm_storeu_ps, cy_pick_ps,
             cy_plain_s1_f32_sse2)
CY_DEFINE_S1(cy_s1_f64_sse2, , double, __m128d, 2, _mm_loadu_pd, _mm_storeu_pd, cy_pick_pd,
             cy_plain_s1_f64_sse2)
#endif
#if CY_HAVE_AVX2
#define CY_ANY_NAN_PS256(v) _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))
#define CY_ANY_NAN_PD256(v) _mm256_movemask_pd(_mm256_cmp_pd(v, v, _CMP_UNORD_Q))
CY_DEFINE_S1_PLAIN(cy_plain_s1_f32_avx2, CY_AVX2, float, __m256, 8, _mm256_loadu_ps,
                   _mm256_storeu_ps, _mm256_max_ps, _mm256_add_ps, _mm256_setzero_ps,
                   CY_ANY_NAN_PS256)
CY_DEFINE_S1_PLAIN(cy_plain_s1_f64_avx2, CY_AVX2, double, __m256d, 4, _mm256_loadu_pd,
                   _mm256_storeu_pd, _mm256_max_pd, _mm256_add_pd, _mm256_setzero_pd,
                   CY_ANY_NAN_PD256)
CY_DEFINE_S1(cy_s1_f32_avx2, CY_AVX2, float, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps,
             cy_pick_ps256, cy_plain_s1_f32_avx2)
CY_DEFINE_S1(cy_s1_f64_avx2, CY_AVX2, double, __m256d, 4, _mm256_loadu_pd, _mm256_storeu_pd,
             cy_pick_pd256, cy_plain_s1_f64_avx2)
#endif

/* Sums at stride 1 (the average's separable passes): out[i] = (rows[0][i] +
   rows[0][i + 1] + ... + rows[0][i + kernel - 1] + rows[1][i] + ...) / divisors[i],
   added left to right from the first element (not from 0), with no division when
   divisors is NULL.  The sum stays in a register across the taps (gcc's loop makes a
   pass over out per tap).  The last vector is taken again ending at n.  Four
   vectors go at a time (CY_FOUR_CHAINS). */
#define CY_DEFINE_SUM_S1(NAME, ATTR, T, V, LANES, LOADU, STOREU, ADD, DIV)                \
    ATTR static inline void NAME##_one(const T* const* rows, ptrdiff_t n_rows,             \
                                       ptrdiff_t kernel, T* out, const T* divisors,        \
                                       ptrdiff_t i) {                                      \
        V total = LOADU(rows[0] + i);                                                      \
        for (ptrdiff_t r = 0; r < n_rows; r++)                                             \
            for (ptrdiff_t j = (r == 0); j < kernel; j++)                                  \
                total = ADD(total, LOADU(rows[r] + i + j));                                \
        if (divisors) total = DIV(total, LOADU(divisors + i));                             \
        STOREU(out + i, total);                                                            \
    }                                                                                      \
    ATTR static CY_ALWAYS_INLINE void NAME##_four(const T* const* rows, ptrdiff_t n_rows,  \
                                                  ptrdiff_t kernel, T* out,                \
                                                  const T* divisors, ptrdiff_t i) {        \
        V t0, t1, t2, t3;                                                                  \
        CY_FOUR_CHAINS(T, LOADU, ADD, LANES, rows, n_rows, kernel, 1, i, t0, t1, t2, t3)   \
        if (divisors) {                                                                    \
            t0 = DIV(t0, LOADU(divisors + i));                                             \
            t1 = DIV(t1, LOADU(divisors + i + (LANES)));                                   \
            t2 = DIV(t2, LOADU(divisors + i + 2 * (LANES)));                               \
            t3 = DIV(t3, LOADU(divisors + i + 3 * (LANES)));                               \
        }                                                                                  \
        STOREU(out + i, t0);                                                               \
        STOREU(out + i + (LANES), t1);                                                     \
        STOREU(out + i + 2 * (LANES), t2);                                                 \
        STOREU(out + i + 3 * (LANES), t3);                                                 \
    }                                                                                      \
    ATTR static ptrdiff_t NAME(const T* const* rows, ptrdiff_t n_rows, ptrdiff_t kernel,   \
                               T* out, const T* divisors, ptrdiff_t i, ptrdiff_t n) {      \
        for (; i + 4 * (LANES) <= n; i += 4 * (LANES))                                     \
            NAME##_four(rows, n_rows, kernel, out, divisors, i);                           \
        for (; i + (LANES) <= n; i += (LANES))                                             \
            NAME##_one(rows, n_rows, kernel, out, divisors, i);                            \
        if (i < n && n >= (LANES)) {                                                       \
            NAME##_one(rows, n_rows, kernel, out, divisors, n - (LANES));                  \
            i = n;                                                                         \
        }                                                                                  \
        return i;                                                                          \
    }

#define CY_DIV1(a, b) ((a) / (b))
CY_DEFINE_SUM_S1(cy_sum_s1_f32_c, , float, float, 1, CY_LOAD1, CY_STORE1, CY_ADD1, CY_DIV1)
CY_DEFINE_SUM_S1(cy_sum_s1_f64_c, , double, double, 1, CY_LOAD1, CY_STORE1, CY_ADD1, CY_DIV1)
#if CY_HAVE_SSE2
CY_DEFINE_SUM_S1(cy_sum_s1_f32_sse2, , float, __m128, 4, _mm_loadu_ps, _mm_storeu_ps, _mm_add_ps,
                 _mm_div_ps)
CY_DEFINE_SUM_S1(cy_sum_s1_f64_sse2, , double, __m128d, 2, _mm_loadu_pd, _mm_storeu_pd, _mm_add_pd,
                 _mm_div_pd)
#endif
#if CY_HAVE_AVX2
CY_DEFINE_SUM_S1(cy_sum_s1_f32_avx2, CY_AVX2, float, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps,
                 _mm256_add_ps, _mm256_div_ps)
CY_DEFINE_SUM_S1(cy_sum_s1_f64_avx2, CY_AVX2, double, __m256d, 4, _mm256_loadu_pd,
                 _mm256_storeu_pd, _mm256_add_pd, _mm256_div_pd)
#endif

/* ------------------------------------------------- average, stride 2 */

/* out[i] = (((r0[2i] + r0[2i+1] (+ r0[2i+2])) + (r1[2i] + ...)) + ...) / divisors[i]: each
   row's window summed left to right, then the rows in order (the separable path's
   additions, so the same bits); width 2 or 3 as for the max rows. */
#define CY_DEFINE_AVG_S2(NAME, ATTR, T, V, LANES, WIN, ADD, DIV, LOADU, STOREU, FIX)        \
    ATTR static CY_ALWAYS_INLINE void NAME##_one(const T* const* rows, ptrdiff_t n_rows,   \
                                                 ptrdiff_t width, T* out,                  \
                                                 const T* divisors, ptrdiff_t i) {         \
        V total = WIN(rows[0] + 2 * i, width);                                             \
        for (ptrdiff_t r = 1; r < n_rows; r++) total = ADD(total, WIN(rows[r] + 2 * i, width)); \
        STOREU(out + i, DIV(FIX(total), LOADU(divisors + i)));                             \
    }                                                                                      \
    ATTR static ptrdiff_t NAME(const T* const* rows, ptrdiff_t n_rows, ptrdiff_t width,    \
                               T* out, const T* divisors, ptrdiff_t i, ptrdiff_t n) {      \
        /* four vectors a step: their chains of additions side by side */                  \
        for (; i + 4 * (LANES) <= n; i += 4 * (LANES)) {                                   \
            NAME##_one(rows, n_rows, width, out, divisors, i);                             \
            NAME##_one(rows, n_rows, width, out, divisors, i + (LANES));                   \
            NAME##_one(rows, n_rows, width, out, divisors, i + 2 * (LANES));               \
            NAME##_one(rows, n_rows, width, out, divisors, i + 3 * (LANES));               \
        }                                                                                  \
        for (; i + (LANES) <= n; i += (LANES))                                             \
            NAME##_one(rows, n_rows, width, out, divisors, i);                             \
        return i;                                                                          \
    }
#define CY_NO_FIX(v) (v)

#if CY_HAVE_SSE2


CY_DEFINE_AVG_S2(cy_avg_s2_f32_sse2, , float, __m128, 4, cy_sum_win_ps, _mm_add_ps, _mm_div_ps,
                 _mm_loadu_ps, _mm_storeu_ps, CY_NO_FIX)
CY_DEFINE_AVG_S2(cy_avg_s2_f64_sse2, , double, __m128d, 2, cy_sum_win_pd, _mm_add_pd, _mm_div_pd,
                 _mm_loadu_pd, _mm_storeu_pd, CY_NO_FIX)
#endif

#if CY_HAVE_AVX2
/* FIX restores the natural lane order of the 256-bit windows (see CY_DEFINE_WIN). */
#define CY_FIX_PS256(v) \
    _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), _MM_SHUFFLE(3, 1, 2, 0)))
#define CY_FIX_PD256(v) _mm256_permute4x64_pd(v, _MM_SHUFFLE(3, 1, 2, 0))
CY_DEFINE_AVG_S2(cy_avg_s2_f32_avx2, CY_AVX2, float, __m256, 8, cy_sum_win_ps256, _mm256_add_ps,
                 _mm256_div_ps, _mm256_loadu_ps, _mm256_storeu_ps, CY_FIX_PS256)
CY_DEFINE_AVG_S2(cy_avg_s2_f64_avx2, CY_AVX2, double, __m256d, 4, cy_sum_win_pd256, _mm256_add_pd,
                 _mm256_div_pd, _mm256_loadu_pd, _mm256_storeu_pd, CY_FIX_PD256)
#endif

/* ------------------------------------------------ channels-last windows */

/* The window's taps are rows of channels; each function takes channels [c, channels)
   in whole steps (two vectors, then one) and returns where it stopped; the dispatcher
   hands the rest to the narrower paths, down to single lanes, so every channel stays
   in a register across the taps.

   max: out[c] = the scan-order max over the taps by the rule above; with index !=
   NULL, index[c] = tap_pos[the winning tap] (the ordinal rides in a vector of the
   same lanes, 32-bit copies of it filling each lane).
   avg: out[c] = (0 + taps[0][c] + taps[1][c] + ...) / divisor, in tap order. */

#define CY_MAX_STEP(V, LOADU, TAKE, BLEND, TAPV, b, w, c)                              \
    V b = LOADU(taps[0] + shift + (c)), w = TAPV(0);                                   \
    for (ptrdiff_t t = 1; t < n_taps; t++) {                                           \
        V v_ = LOADU(taps[t] + shift + (c)), k_ = TAKE(b, v_);                         \
        b = BLEND(b, v_, k_);                                                          \
        if (index) w = BLEND(w, TAPV(t), k_);                                          \
    }

/* One window's maxima (taps shifted by ``shift`` elements, their positions by
   ``pos_shift``), and (NAME##_row) n windows of a row, window i's taps i * step further
   on and its positions i * pos_step: one call for the row, as the averages'. */
#define CY_DEFINE_MAX_TAPS(NAME, ATTR, T, V, LANES, WSTEP, LOADU, STOREU, TAKE, BLEND, TAPV, WSTORE) \
    ATTR static inline ptrdiff_t NAME(const T* const* taps, ptrdiff_t n_taps, ptrdiff_t c, \
                                      ptrdiff_t channels, T* out, const int64_t* tap_pos,  \
                                      int64_t* index, ptrdiff_t shift,                     \
                                      int64_t pos_shift) {                                 \
        int32_t w_[16];                                                                    \
        for (; c + 2 * (LANES) <= channels; c += 2 * (LANES)) {                            \
            V b0, w0, b1, w1;                                                              \
            {CY_MAX_STEP(V, LOADU, TAKE, BLEND, TAPV, b0_, w0_, c) b0 = b0_; w0 = w0_;}    \
            {CY_MAX_STEP(V, LOADU, TAKE, BLEND, TAPV, b1_, w1_, c + (LANES)) b1 = b1_; w1 = w1_;} \
            STOREU(out + c, b0);                                                           \
            STOREU(out + c + (LANES), b1);                                                 \
            if (index) {                                                                   \
                WSTORE(w_, w0);                                                            \
                WSTORE(w_ + 8, w1);                                                        \
                for (int j = 0; j < (LANES); j++) {                                        \
                    index[c + j] = tap_pos[w_[j * (WSTEP)]] + pos_shift;                   \
                    index[c + (LANES) + j] = tap_pos[w_[8 + j * (WSTEP)]] + pos_shift;     \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        for (; c + (LANES) <= channels; c += (LANES)) {                                    \
            CY_MAX_STEP(V, LOADU, TAKE, BLEND, TAPV, b0, w0, c)                            \
            STOREU(out + c, b0);                                                           \
            if (index) {                                                                   \
                WSTORE(w_, w0);                                                            \
                for (int j = 0; j < (LANES); j++)                                          \
                    index[c + j] = tap_pos[w_[j * (WSTEP)]] + pos_shift;                   \
            }                                                                              \
        }                                                                                  \
        return c;                                                                          \
    }                                                                                      \
    ATTR static ptrdiff_t NAME##_row(const T* const* taps, ptrdiff_t n_taps, ptrdiff_t c,  \
                                     ptrdiff_t channels, T* out, const int64_t* tap_pos,   \
                                     int64_t* index, ptrdiff_t n, ptrdiff_t step,          \
                                     int64_t pos_step) {                                   \
        ptrdiff_t done = c;                                                                \
        for (ptrdiff_t i = 0; i < n; i++)                                                  \
            done = NAME(taps, n_taps, c, channels, out + i * channels, tap_pos,            \
                        index ? index + i * channels : NULL, i * step, i * pos_step);      \
        return done;                                                                       \
    }

#define CY_SUM_STEP(V, LOADU, ADD, ZERO, s, c)                                         \
    V s = ZERO();                                                                      \
    for (ptrdiff_t t = 0; t < n_taps; t++) s = ADD(s, LOADU(taps[t] + shift + (c)));

/* One window's average (taps shifted by ``shift`` elements), and (NAME##_row) n
   windows of a row, window i's taps i * step further on, its divisor divisors[i]:
   one call for the row, so each window costs its loads and adds, not a call. */
#define CY_DEFINE_AVG_TAPS(NAME, ATTR, T, V, LANES, LOADU, STOREU, ADD, DIV, SET1, ZERO)    \
    ATTR static inline ptrdiff_t NAME(const T* const* taps, ptrdiff_t n_taps, ptrdiff_t c, \
                                      ptrdiff_t channels, T* out, T divisor,               \
                                      ptrdiff_t shift) {                                   \
        V d = SET1(divisor);                                                               \
        for (; c + 2 * (LANES) <= channels; c += 2 * (LANES)) {                            \
            CY_SUM_STEP(V, LOADU, ADD, ZERO, s0, c)                                        \
            CY_SUM_STEP(V, LOADU, ADD, ZERO, s1, c + (LANES))                              \
            STOREU(out + c, DIV(s0, d));                                                   \
            STOREU(out + c + (LANES), DIV(s1, d));                                         \
        }                                                                                  \
        for (; c + (LANES) <= channels; c += (LANES)) {                                    \
            CY_SUM_STEP(V, LOADU, ADD, ZERO, s0, c)                                        \
            STOREU(out + c, DIV(s0, d));                                                   \
        }                                                                                  \
        return c;                                                                          \
    }                                                                                      \
    ATTR static ptrdiff_t NAME##_row(const T* const* taps, ptrdiff_t n_taps, ptrdiff_t c,  \
                                     ptrdiff_t channels, T* out, const T* divisors,        \
                                     ptrdiff_t n, ptrdiff_t step) {                        \
        ptrdiff_t done = c;                                                                \
        for (ptrdiff_t i = 0; i < n; i++)                                                  \
            done = NAME(taps, n_taps, c, channels, out + i * channels, divisors[i],        \
                        i * step);                                                         \
        return done;                                                                       \
    }

#if CY_HAVE_SSE2
#define CY_TAKE_PS(b, v) _mm_or_ps(_mm_cmplt_ps(b, v), _mm_cmpunord_ps(v, v))
#define CY_TAKE_SS(b, v) _mm_or_ps(_mm_cmplt_ss(b, v), _mm_cmpunord_ss(v, v))
#define CY_TAKE_PD(b, v) _mm_or_pd(_mm_cmplt_pd(b, v), _mm_cmpunord_pd(v, v))
#define CY_TAKE_SD(b, v) _mm_or_pd(_mm_cmplt_sd(b, v), _mm_cmpunord_sd(v, v))
#define CY_BLEND_PS(a, b, m) _mm_or_ps(_mm_and_ps(m, b), _mm_andnot_ps(m, a))
#define CY_BLEND_PD(a, b, m) _mm_or_pd(_mm_and_pd(m, b), _mm_andnot_pd(m, a))
#define CY_TAPV_PS(t) _mm_castsi128_ps(_mm_set1_epi32((int) (t)))
#define CY_TAPV_PD(t) _mm_castsi128_pd(_mm_set1_epi32((int) (t)))
#define CY_WSTORE_PS(p, w) _mm_storeu_si128((__m128i*) (p), _mm_castps_si128(w))
#define CY_WSTORE_PD(p, w) _mm_storeu_si128((__m128i*) (p), _mm_castpd_si128(w))
CY_DEFINE_MAX_TAPS(cy_max_taps_f32_sse2, , float, __m128, 4, 1, _mm_loadu_ps, _mm_storeu_ps,
                   CY_TAKE_PS, CY_BLEND_PS, CY_TAPV_PS, CY_WSTORE_PS)
CY_DEFINE_MAX_TAPS(cy_max_taps_f32_lane, , float, __m128, 1, 1, _mm_load_ss, _mm_store_ss,
                   CY_TAKE_SS, CY_BLEND_PS, CY_TAPV_PS, CY_WSTORE_PS)
CY_DEFINE_MAX_TAPS(cy_max_taps_f64_sse2, , double, __m128d, 2, 2, _mm_loadu_pd, _mm_storeu_pd,
                   CY_TAKE_PD, CY_BLEND_PD, CY_TAPV_PD, CY_WSTORE_PD)
CY_DEFINE_MAX_TAPS(cy_max_taps_f64_lane, , double, __m128d, 1, 2, _mm_load_sd, _mm_store_sd,
                   CY_TAKE_SD, CY_BLEND_PD, CY_TAPV_PD, CY_WSTORE_PD)
CY_DEFINE_AVG_TAPS(cy_avg_taps_f32_sse2, , float, __m128, 4, _mm_loadu_ps, _mm_storeu_ps,
                   _mm_add_ps, _mm_div_ps, _mm_set1_ps, _mm_setzero_ps)
CY_DEFINE_AVG_TAPS(cy_avg_taps_f32_lane, , float, __m128, 1, _mm_load_ss, _mm_store_ss,
                   _mm_add_ss, _mm_div_ss, _mm_set1_ps, _mm_setzero_ps)
CY_DEFINE_AVG_TAPS(cy_avg_taps_f64_sse2, , double, __m128d, 2, _mm_loadu_pd, _mm_storeu_pd,
                   _mm_add_pd, _mm_div_pd, _mm_set1_pd, _mm_setzero_pd)
CY_DEFINE_AVG_TAPS(cy_avg_taps_f64_lane, , double, __m128d, 1, _mm_load_sd, _mm_store_sd,
                   _mm_add_sd, _mm_div_sd, _mm_set1_pd, _mm_setzero_pd)
#endif

#if CY_HAVE_AVX2
#define CY_TAKE_PS256(b, v) _mm256_or_ps(_mm256_cmp_ps(b, v, _CMP_LT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q))
#define CY_TAKE_PD256(b, v) _mm256_or_pd(_mm256_cmp_pd(b, v, _CMP_LT_OQ), _mm256_cmp_pd(v, v, _CMP_UNORD_Q))
#define CY_TAPV_PS256(t) _mm256_castsi256_ps(_mm256_set1_epi32((int) (t)))
#define CY_TAPV_PD256(t) _mm256_castsi256_pd(_mm256_set1_epi32((int) (t)))
#define CY_WSTORE_PS256(p, w) _mm256_storeu_si256((__m256i*) (p), _mm256_castps_si256(w))
#define CY_WSTORE_PD256(p, w) _mm256_storeu_si256((__m256i*) (p), _mm256_castpd_si256(w))
CY_DEFINE_MAX_TAPS(cy_max_taps_f32_avx2, CY_AVX2, float, __m256, 8, 1, _mm256_loadu_ps,
                   _mm256_storeu_ps, CY_TAKE_PS256, _mm256_blendv_ps, CY_TAPV_PS256, CY_WSTORE_PS256)
CY_DEFINE_MAX_TAPS(cy_max_taps_f64_avx2, CY_AVX2, double, __m256d, 4, 2, _mm256_loadu_pd,
                   _mm256_storeu_pd, CY_TAKE_PD256, _mm256_blendv_pd, CY_TAPV_PD256, CY_WSTORE_PD256)
CY_DEFINE_AVG_TAPS(cy_avg_taps_f32_avx2, CY_AVX2, float, __m256, 8, _mm256_loadu_ps,
                   _mm256_storeu_ps, _mm256_add_ps, _mm256_div_ps, _mm256_set1_ps, _mm256_setzero_ps)
CY_DEFINE_AVG_TAPS(cy_avg_taps_f64_avx2, CY_AVX2, double, __m256d, 4, _mm256_loadu_pd,
                   _mm256_storeu_pd, _mm256_add_pd, _mm256_div_pd, _mm256_set1_pd, _mm256_setzero_pd)
#endif

/* ----------------------------------------------------------- transposes */

/* dst[c * dst_stride + r] = src[r * src_stride + c] for r < rows, c < cols: the
   small-plane paths' moves between planes and lanes (planes side by side, as the
   channels of a channels-last plane).  Square blocks of B x B go through registers
   (AVX2: 8x8 float, 4x4 double; SSE2: 4x4 float, 2x2 double), element by
   element the edges. */
#define CY_DEFINE_TRANSPOSE(NAME, ATTR, T, B, ...)                                        \
    ATTR static void NAME(const T* src, ptrdiff_t src_stride, ptrdiff_t rows,             \
                          ptrdiff_t cols, T* dst, ptrdiff_t dst_stride) {                 \
        ptrdiff_t r0 = 0, c0 = 0, r, c;                                                   \
        if ((B) > 1)                                                                      \
            for (r0 = 0; r0 + (B) <= rows; r0 += (B))                                     \
                for (c0 = 0; c0 + (B) <= cols; c0 += (B)) {                               \
                    const T* s_ = src + r0 * src_stride + c0;                             \
                    T* d_ = dst + c0 * dst_stride + r0;                                   \
                    __VA_ARGS__                                                           \
                }                                                                         \
        for (r = 0; r < rows; r++)  /* the columns past the blocks, then the rows */      \
            for (c = r < r0 ? c0 : 0; c < cols; c++)                                      \
                dst[c * dst_stride + r] = src[r * src_stride + c];                        \
    }

CY_DEFINE_TRANSPOSE(cy_transpose_f32_c, , float, 1, {})
CY_DEFINE_TRANSPOSE(cy_transpose_f64_c, , double, 1, {})
#if CY_HAVE_SSE2
CY_DEFINE_TRANSPOSE(cy_transpose_f32_sse2, , float, 4, {
    __m128 a0 = _mm_loadu_ps(s_), a1 = _mm_loadu_ps(s_ + src_stride);
    __m128 a2 = _mm_loadu_ps(s_ + 2 * src_stride), a3 = _mm_loadu_ps(s_ + 3 * src_stride);
    _MM_TRANSPOSE4_PS(a0, a1, a2, a3);
    _mm_storeu_ps(d_, a0);
    _mm_storeu_ps(d_ + dst_stride, a1);
    _mm_storeu_ps(d_ + 2 * dst_stride, a2);
    _mm_storeu_ps(d_ + 3 * dst_stride, a3);
})
CY_DEFINE_TRANSPOSE(cy_transpose_f64_sse2, , double, 2, {
    __m128d a0 = _mm_loadu_pd(s_), a1 = _mm_loadu_pd(s_ + src_stride);
    _mm_storeu_pd(d_, _mm_unpacklo_pd(a0, a1));
    _mm_storeu_pd(d_ + dst_stride, _mm_unpackhi_pd(a0, a1));
})
#endif
#if CY_HAVE_AVX2
CY_DEFINE_TRANSPOSE(cy_transpose_f32_avx2, CY_AVX2, float, 8, {
    __m256 a_[8], t_[8], u_[8];
    for (int k = 0; k < 8; k++) a_[k] = _mm256_loadu_ps(s_ + k * src_stride);
    for (int k = 0; k < 8; k += 2) {
        t_[k] = _mm256_unpacklo_ps(a_[k], a_[k + 1]);      /* a0 b0 a1 b1 | a4 b4 a5 b5 */
        t_[k + 1] = _mm256_unpackhi_ps(a_[k], a_[k + 1]);  /* a2 b2 a3 b3 | a6 b6 a7 b7 */
    }
    for (int k = 0; k < 8; k += 4) {
        u_[k] = _mm256_shuffle_ps(t_[k], t_[k + 2], _MM_SHUFFLE(1, 0, 1, 0));     /* column 0 | 4 */
        u_[k + 1] = _mm256_shuffle_ps(t_[k], t_[k + 2], _MM_SHUFFLE(3, 2, 3, 2)); /* 1 | 5 */
        u_[k + 2] = _mm256_shuffle_ps(t_[k + 1], t_[k + 3], _MM_SHUFFLE(1, 0, 1, 0)); /* 2 | 6 */
        u_[k + 3] = _mm256_shuffle_ps(t_[k + 1], t_[k + 3], _MM_SHUFFLE(3, 2, 3, 2)); /* 3 | 7 */
    }
    for (int k = 0; k < 4; k++) {
        _mm256_storeu_ps(d_ + k * dst_stride, _mm256_permute2f128_ps(u_[k], u_[k + 4], 0x20));
        _mm256_storeu_ps(d_ + (k + 4) * dst_stride, _mm256_permute2f128_ps(u_[k], u_[k + 4], 0x31));
    }
})
CY_DEFINE_TRANSPOSE(cy_transpose_f64_avx2, CY_AVX2, double, 4, {
    __m256d a0 = _mm256_loadu_pd(s_), a1 = _mm256_loadu_pd(s_ + src_stride);
    __m256d a2 = _mm256_loadu_pd(s_ + 2 * src_stride), a3 = _mm256_loadu_pd(s_ + 3 * src_stride);
    __m256d t0 = _mm256_unpacklo_pd(a0, a1), t1 = _mm256_unpackhi_pd(a0, a1);
    __m256d t2 = _mm256_unpacklo_pd(a2, a3), t3 = _mm256_unpackhi_pd(a2, a3);
    _mm256_storeu_pd(d_, _mm256_permute2f128_pd(t0, t2, 0x20));
    _mm256_storeu_pd(d_ + dst_stride, _mm256_permute2f128_pd(t1, t3, 0x20));
    _mm256_storeu_pd(d_ + 2 * dst_stride, _mm256_permute2f128_pd(t0, t2, 0x31));
    _mm256_storeu_pd(d_ + 3 * dst_stride, _mm256_permute2f128_pd(t1, t3, 0x31));
})
#endif

/* ------------------------------------------------ small planes in lanes */

/* 16 small planes side by side (cy_transpose_*), pooled as one channels-last plane of
   16 channels: output o's window is taps tap[start[o]], ..., tap[start[o + 1] - 1]
   (at least one, in scan order), tap[k] the tap's offset in the plane, so its 16
   values are lanes[tap[k] * 16 + l].  out[o * 16 + l] = the scan-order max of lane l
   by the rule above; with where != NULL, where[o * 16 + l] = the winning tap's offset
   (exact in T: planes of at most 2**24 elements). */
#define CY_MAX_LANES_OUTPUT(T, V, VL, LOADU, STOREU, TAKE, BLEND, SET1, WITH_INDEX)       \
    for (ptrdiff_t o = 0; o < n_out; o++) {                                              \
        V b_[16 / (VL)], w_[16 / (VL)];                                                  \
        const T* src_ = lanes + (ptrdiff_t) tap[start[o]] * 16;                          \
        V at_ = SET1((T) tap[start[o]]);                                                 \
        for (int v = 0; v < 16 / (VL); v++) {                                            \
            b_[v] = LOADU(src_ + v * (VL));                                              \
            w_[v] = at_;                                                                 \
        }                                                                                \
        for (int32_t k = start[o] + 1; k < start[o + 1]; k++) {                          \
            src_ = lanes + (ptrdiff_t) tap[k] * 16;                                      \
            at_ = SET1((T) tap[k]);                                                      \
            for (int v = 0; v < 16 / (VL); v++) {                                        \
                V x_ = LOADU(src_ + v * (VL)), m_ = TAKE(b_[v], x_);                     \
                b_[v] = BLEND(b_[v], x_, m_);                                            \
                if (WITH_INDEX) w_[v] = BLEND(w_[v], at_, m_);                           \
            }                                                                            \
        }                                                                                \
        for (int v = 0; v < 16 / (VL); v++) {                                            \
            STOREU(out + o * 16 + v * (VL), b_[v]);                                      \
            if (WITH_INDEX) STOREU(where + o * 16 + v * (VL), w_[v]);                    \
        }                                                                                \
    }

#define CY_DEFINE_MAX_LANES(NAME, ATTR, T, V, VL, LOADU, STOREU, TAKE, BLEND, SET1)        \
    ATTR static void NAME(const T* lanes, const int32_t* tap, const int32_t* start,        \
                          ptrdiff_t n_out, T* out, T* where) {                             \
        if (where)                                                                         \
            CY_MAX_LANES_OUTPUT(T, V, VL, LOADU, STOREU, TAKE, BLEND, SET1, 1)             \
        else                                                                               \
            CY_MAX_LANES_OUTPUT(T, V, VL, LOADU, STOREU, TAKE, BLEND, SET1, 0)             \
    }

/* the portable form: one lane per "vector" (CY_LOAD1, ... above) */
CY_DEFINE_MAX_LANES(cy_max_lanes_f32_c, , float, float, 1, CY_LOAD1, CY_STORE1, CY_TAKE1,
                    CY_BLEND1, CY_SET1)
CY_DEFINE_MAX_LANES(cy_max_lanes_f64_c, , double, double, 1, CY_LOAD1, CY_STORE1, CY_TAKE1,
                    CY_BLEND1, CY_SET1)
#if CY_HAVE_SSE2
CY_DEFINE_MAX_LANES(cy_max_lanes_f32_sse2, , float, __m128, 4, _mm_loadu_ps, _mm_storeu_ps,
                    CY_TAKE_PS, CY_BLEND_PS, _mm_set1_ps)
CY_DEFINE_MAX_LANES(cy_max_lanes_f64_sse2, , double, __m128d, 2, _mm_loadu_pd, _mm_storeu_pd,
                    CY_TAKE_PD, CY_BLEND_PD, _mm_set1_pd)
#endif
#if CY_HAVE_AVX2
CY_DEFINE_MAX_LANES(cy_max_lanes_f32_avx2, CY_AVX2, float, __m256, 8, _mm256_loadu_ps,
                    _mm256_storeu_ps, CY_TAKE_PS256, _mm256_blendv_ps, _mm256_set1_ps)
CY_DEFINE_MAX_LANES(cy_max_lanes_f64_avx2, CY_AVX2, double, __m256d, 4, _mm256_loadu_pd,
                    _mm256_storeu_pd, CY_TAKE_PD256, _mm256_blendv_pd, _mm256_set1_pd)
#endif

/* Averages of 16 small planes side by side: window o is win[5o..5o+4] = its first tap
   (a plane offset), nd, nh, nw, and from_zero; its taps are nd x nh x nw, plane_step,
   row_step and 1 offsets apart.  out[o * 16 + l] = the separable path's sum of lane l
   divided by divisors[o]: each row of taps added left to right (from 0 when from_zero,
   as the separable path does for windows clipped along W), then the rows in order. */
#define CY_DEFINE_AVG_LANES(NAME, ATTR, T, V, VL, LOADU, STOREU, ADD, DIV, SET1, ZERO)       \
    ATTR static void NAME(const T* lanes, const int32_t* win, ptrdiff_t plane_step,           \
                          ptrdiff_t row_step, ptrdiff_t n_out, const T* divisors, T* out) {   \
        for (ptrdiff_t o = 0; o < n_out; o++) {                                               \
            const int32_t* w_ = win + 5 * o;                                                  \
            V acc_[16 / (VL)], row_[16 / (VL)];                                               \
            for (int32_t d = 0; d < w_[1]; d++)                                               \
                for (int32_t h = 0; h < w_[2]; h++) {                                         \
                    const T* p_ = lanes + ((ptrdiff_t) w_[0] + d * plane_step + h * row_step) * 16; \
                    for (int v = 0; v < 16 / (VL); v++)                                       \
                        row_[v] = w_[4] ? ADD(ZERO, LOADU(p_ + v * (VL))) : LOADU(p_ + v * (VL)); \
                    for (int32_t k = 1; k < w_[3]; k++)                                       \
                        for (int v = 0; v < 16 / (VL); v++)                                   \
                            row_[v] = ADD(row_[v], LOADU(p_ + k * 16 + v * (VL)));            \
                    for (int v = 0; v < 16 / (VL); v++)                                       \
                        acc_[v] = (d | h) ? ADD(acc_[v], row_[v]) : row_[v];                  \
                }                                                                             \
            V divisor_ = SET1(divisors[o]);                                                   \
            for (int v = 0; v < 16 / (VL); v++)                                               \
                STOREU(out + o * 16 + v * (VL), DIV(acc_[v], divisor_));                      \
        }                                                                                     \
    }

/* The backward of the same windows: grad_in[(tap) * 16 + l] += grad_out[o * 16 + l] /
   divisors[o] for every tap of window o, windows in order, taps in scan order (the
   general loop's additions); grad_in starts zeroed.  ZERO_ is unused: the argument
   list of the other average kernels. */
#define CY_DEFINE_AVG_BACK_LANES(NAME, ATTR, T, V, VL, LOADU, STOREU, ADD, DIV, SET1, ZERO_) \
    ATTR static void NAME(const T* grad_out, const int32_t* win, ptrdiff_t plane_step,         \
                          ptrdiff_t row_step, ptrdiff_t n_out, const T* divisors, T* grad_in) { \
        for (ptrdiff_t o = 0; o < n_out; o++) {                                                \
            const int32_t* w_ = win + 5 * o;                                                   \
            V share_[16 / (VL)], divisor_ = SET1(divisors[o]);                                 \
            for (int v = 0; v < 16 / (VL); v++)                                                \
                share_[v] = DIV(LOADU(grad_out + o * 16 + v * (VL)), divisor_);                \
            for (int32_t d = 0; d < w_[1]; d++)                                                \
                for (int32_t h = 0; h < w_[2]; h++) {                                          \
                    T* p_ = grad_in + ((ptrdiff_t) w_[0] + d * plane_step + h * row_step) * 16; \
                    for (int32_t k = 0; k < w_[3]; k++)                                        \
                        for (int v = 0; v < 16 / (VL); v++)                                    \
                            STOREU(p_ + k * 16 + v * (VL),                                     \
                                   ADD(LOADU(p_ + k * 16 + v * (VL)), share_[v]));             \
                }                                                                              \
        }                                                                                      \
    }

/* Adaptive averages of the same lanes, in the adaptive column path's order: for each
   column of window o, its rows added top to bottom (from the first), then the columns
   added left to right from 0, divided by divisors[o]. */
#define CY_DEFINE_COL_LANES(NAME, ATTR, T, V, VL, LOADU, STOREU, ADD, DIV, SET1, ZERO)        \
    ATTR static void NAME(const T* lanes, const int32_t* win, ptrdiff_t plane_step,           \
                          ptrdiff_t row_step, ptrdiff_t n_out, const T* divisors, T* out) {   \
        for (ptrdiff_t o = 0; o < n_out; o++) {                                               \
            const int32_t* w_ = win + 5 * o;                                                  \
            V acc_[16 / (VL)], col_[16 / (VL)];                                               \
            for (int v = 0; v < 16 / (VL); v++) acc_[v] = ZERO;                               \
            for (int32_t k = 0; k < w_[3]; k++) {                                             \
                for (int32_t d = 0; d < w_[1]; d++)                                           \
                    for (int32_t h = 0; h < w_[2]; h++) {                                     \
                        const T* p_ = lanes + ((ptrdiff_t) w_[0] + d * plane_step             \
                                               + h * row_step + k) * 16;                      \
                        for (int v = 0; v < 16 / (VL); v++)                                   \
                            col_[v] = (d | h) ? ADD(col_[v], LOADU(p_ + v * (VL)))            \
                                              : LOADU(p_ + v * (VL));                         \
                    }                                                                         \
                for (int v = 0; v < 16 / (VL); v++) acc_[v] = ADD(acc_[v], col_[v]);         \
            }                                                                                 \
            V divisor_ = SET1(divisors[o]);                                                   \
            for (int v = 0; v < 16 / (VL); v++)                                               \
                STOREU(out + o * 16 + v * (VL), DIV(acc_[v], divisor_));                      \
        }                                                                                     \
    }

/* An average lanes kernel at every level: NAME_f32_c, NAME_f64_c, NAME_f32_sse2, ...,
   NAME_f64_avx2 (the portable form one lane per "vector", CY_LOAD1, ... above). */
#define CY_AVG_KERNELS_AT_EVERY_LEVEL(DEFINE, NAME)                                       \
    DEFINE(NAME##_f32_c, , float, float, 1, CY_LOAD1, CY_STORE1, CY_ADD1, CY_DIV1,        \
           CY_SET1, 0.0f)                                                                 \
    DEFINE(NAME##_f64_c, , double, double, 1, CY_LOAD1, CY_STORE1, CY_ADD1, CY_DIV1,      \
           CY_SET1, 0.0)                                                                  \
    CY_IF_SSE2(DEFINE(NAME##_f32_sse2, , float, __m128, 4, _mm_loadu_ps, _mm_storeu_ps,   \
                      _mm_add_ps, _mm_div_ps, _mm_set1_ps, _mm_setzero_ps()))             \
    CY_IF_SSE2(DEFINE(NAME##_f64_sse2, , double, __m128d, 2, _mm_loadu_pd, _mm_storeu_pd, \
                      _mm_add_pd, _mm_div_pd, _mm_set1_pd, _mm_setzero_pd()))             \
    CY_IF_AVX2(DEFINE(NAME##_f32_avx2, CY_AVX2, float, __m256, 8, _mm256_loadu_ps,        \
                      _mm256_storeu_ps, _mm256_add_ps, _mm256_div_ps, _mm256_set1_ps,     \
                      _mm256_setzero_ps()))                                               \
    CY_IF_AVX2(DEFINE(NAME##_f64_avx2, CY_AVX2, double, __m256d, 4, _mm256_loadu_pd,      \
                      _mm256_storeu_pd, _mm256_add_pd, _mm256_div_pd, _mm256_set1_pd,     \
                      _mm256_setzero_pd()))

CY_AVG_KERNELS_AT_EVERY_LEVEL(CY_DEFINE_COL_LANES, cy_avg_col_lanes)
CY_AVG_KERNELS_AT_EVERY_LEVEL(CY_DEFINE_AVG_BACK_LANES, cy_avg_back_lanes)
CY_AVG_KERNELS_AT_EVERY_LEVEL(CY_DEFINE_AVG_LANES, cy_avg_lanes)

/* ------------------------------------------------------- float32 sums */

/* Sum of n float32 values in 32 partial sums: p[j] += v[i + j] for each whole run
   of 32, the rest into p[0] in order, then p[j] + p[j + 16], + [j + 8], + [j + 4],
   and ((q0 + q1) + (q2 + q3)).  AVX2 keeps the partials in four vectors, SSE2 in
   eight, the portable loop in an array: the same additions, so the same bits on every
   CPU.  32 independent chains keep the adds busy (eight wait on each add's latency:
   below memory speed on a long plane).  The body: WIDTH partial sums (32 here, 16 for
   float64 below) in vectors of VL. */
#define CY_WIDE_SUM_BODY(V, VL, LOADU, ADD, ZERO, WIDTH)                                  \
    V acc_[(WIDTH) / (VL)];                                                               \
    ptrdiff_t i_, body_ = n - n % (WIDTH);                                                \
    for (int k = 0; k < (WIDTH) / (VL); k++) acc_[k] = ZERO;                              \
    for (i_ = 0; i_ < body_; i_ += (WIDTH))                                               \
        for (int k = 0; k < (WIDTH) / (VL); k++) acc_[k] = ADD(acc_[k], LOADU(v + i_ + k * (VL)));

#if CY_HAVE_SSE2
/* ((q0 + q1) + (q2 + q3)) of a 4-lane vector */
static inline float cy_sum4_ps(__m128 q) {
    q = _mm_add_ps(q, _mm_shuffle_ps(q, q, _MM_SHUFFLE(2, 3, 0, 1)));  /* q0+q1, ., q2+q3, . */
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehl_ps(q, q)));
}

static float cy_wide_sum_f32_sse2(const float* v, ptrdiff_t n) {
    CY_WIDE_SUM_BODY(__m128, 4, _mm_loadu_ps, _mm_add_ps, _mm_setzero_ps(), 32)
    for (; i_ < n; i_++) acc_[0] = _mm_add_ss(acc_[0], _mm_load_ss(v + i_));
    for (int k = 0; k < 4; k++) acc_[k] = _mm_add_ps(acc_[k], acc_[k + 4]);   /* + 16 */
    acc_[0] = _mm_add_ps(acc_[0], acc_[2]);                                    /* + 8 */
    acc_[1] = _mm_add_ps(acc_[1], acc_[3]);
    return cy_sum4_ps(_mm_add_ps(acc_[0], acc_[1]));                           /* + 4 */
}
#endif

#if CY_HAVE_AVX2
CY_AVX2 static float cy_wide_sum_f32_avx2(const float* v, ptrdiff_t n) {
    CY_WIDE_SUM_BODY(__m256, 8, _mm256_loadu_ps, _mm256_add_ps, _mm256_setzero_ps(), 32)
    __m128 tail = _mm256_castps256_ps128(acc_[0]);
    for (; i_ < n; i_++) tail = _mm_add_ss(tail, _mm_load_ss(v + i_));
    acc_[0] = _mm256_blend_ps(acc_[0], _mm256_castps128_ps256(tail), 0x0F);
    acc_[0] = _mm256_add_ps(acc_[0], acc_[2]);                                 /* + 16 */
    acc_[1] = _mm256_add_ps(acc_[1], acc_[3]);
    acc_[0] = _mm256_add_ps(acc_[0], acc_[1]);                                 /* + 8 */
    return cy_sum4_ps(_mm_add_ps(_mm256_castps256_ps128(acc_[0]),             /* + 4 */
                                 _mm256_extractf128_ps(acc_[0], 1)));
}
#endif

static float cy_wide_sum_f32_c(const float* v, ptrdiff_t n) {
    CY_WIDE_SUM_BODY(float, 1, CY_LOAD1, CY_ADD1, 0.0f, 32)
    for (; i_ < n; i_++) acc_[0] += v[i_];
    for (int w = 16; w >= 4; w /= 2)
        for (int k = 0; k < w; k++) acc_[k] += acc_[k + w];
    return (acc_[0] + acc_[1]) + (acc_[2] + acc_[3]);
}

/* The float64 sum in 16 partial sums, the same way: p[j] += v[i + j] for each whole run
   of 16, the rest into p[0] in order, then p[j] + p[j + 8], + p[j + 4], and
   ((q0 + q1) + (q2 + q3)).  AVX2 in four vectors, SSE2 in eight, the portable loop in
   an array. */
#if CY_HAVE_SSE2
/* q0 + q1 of a 2-lane vector */
static inline double cy_sum2_pd(__m128d q) {
    return _mm_cvtsd_f64(_mm_add_sd(q, _mm_unpackhi_pd(q, q)));
}

static double cy_wide_sum_f64_sse2(const double* v, ptrdiff_t n) {
    CY_WIDE_SUM_BODY(__m128d, 2, _mm_loadu_pd, _mm_add_pd, _mm_setzero_pd(), 16)
    for (; i_ < n; i_++) acc_[0] = _mm_add_sd(acc_[0], _mm_load_sd(v + i_));
    for (int k = 0; k < 4; k++) acc_[k] = _mm_add_pd(acc_[k], acc_[k + 4]);   /* + 8 */
    acc_[0] = _mm_add_pd(acc_[0], acc_[2]);                                    /* + 4 */
    acc_[1] = _mm_add_pd(acc_[1], acc_[3]);
    return cy_sum2_pd(acc_[0]) + cy_sum2_pd(acc_[1]);
}
#endif

#if CY_HAVE_AVX2
CY_AVX2 static double cy_wide_sum_f64_avx2(const double* v, ptrdiff_t n) {
    CY_WIDE_SUM_BODY(__m256d, 4, _mm256_loadu_pd, _mm256_add_pd, _mm256_setzero_pd(), 16)
    __m128d tail = _mm256_castpd256_pd128(acc_[0]);
    for (; i_ < n; i_++) tail = _mm_add_sd(tail, _mm_load_sd(v + i_));
    acc_[0] = _mm256_blend_pd(acc_[0], _mm256_castpd128_pd256(tail), 0x3);
    acc_[0] = _mm256_add_pd(acc_[0], acc_[2]);                                 /* + 8 */
    acc_[1] = _mm256_add_pd(acc_[1], acc_[3]);
    acc_[0] = _mm256_add_pd(acc_[0], acc_[1]);                                 /* + 4 */
    return cy_sum2_pd(_mm256_castpd256_pd128(acc_[0])) + cy_sum2_pd(_mm256_extractf128_pd(acc_[0], 1));
}
#endif

static double cy_wide_sum_f64_c(const double* v, ptrdiff_t n) {
    CY_WIDE_SUM_BODY(double, 1, CY_LOAD1, CY_ADD1, 0.0, 16)
    for (; i_ < n; i_++) acc_[0] += v[i_];
    for (int w = 8; w >= 4; w /= 2)
        for (int k = 0; k < w; k++) acc_[k] += acc_[k + w];
    return (acc_[0] + acc_[1]) + (acc_[2] + acc_[3]);
}

/* ------------------------------------------------------------- dispatch */

/* Each path takes outputs [i, n) and returns where it stopped (AVX2: whole vectors;
   SSE2: all); the portable loop finishes what is left. */
#define CY_S2_DISPATCH(T, SFX)                                                            \
    static void cy_max_s2_##SFX(const T* const* rows, ptrdiff_t n_rows, ptrdiff_t width,  \
                                T* out, ptrdiff_t n) {                                    \
        ptrdiff_t i = 0;                                                                  \
        int level = cy_simd_level();                                                      \
        CY_IF_AVX2(if (level >= CY_SIMD_AVX2) i = cy_s2_##SFX##_avx2(rows, n_rows, width, out, i, n);) \
        CY_IF_SSE2(if (level >= CY_SIMD_SSE2 && i < n) i = cy_s2_##SFX##_sse2(rows, n_rows, width, out, i, n);) \
        (void) level;                                                                     \
        CY_S2_SCALAR(T, rows, n_rows, width, out, i, n)                                   \
    }

CY_S2_DISPATCH(float, f32)
CY_S2_DISPATCH(double, f64)

#define CY_S1_DISPATCH(T, SFX)                                                            \
    static void cy_max_s1_##SFX(const T* const* rows, ptrdiff_t n_rows, ptrdiff_t kernel,  \
                                ptrdiff_t dilation, T* out, ptrdiff_t n) {                \
        ptrdiff_t i = 0;                                                                  \
        int level = cy_simd_level();                                                      \
        CY_IF_AVX2(if (level >= CY_SIMD_AVX2) i = cy_s1_##SFX##_avx2(rows, n_rows, kernel, dilation, out, i, n);) \
        CY_IF_SSE2(if (level >= CY_SIMD_SSE2 && i < n) i = cy_s1_##SFX##_sse2(rows, n_rows, kernel, dilation, out, i, n);) \
        (void) level;                                                                     \
        cy_s1_##SFX##_c(rows, n_rows, kernel, dilation, out, i, n);                       \
    }

CY_S1_DISPATCH(float, f32)
CY_S1_DISPATCH(double, f64)

/* The same rows of many 1-D planes: row r starts at first + r * in_stride, its outputs
   at out + r * out_stride.  With AVX2 the rows loop runs inside the vector code (one
   dispatch per block of rows instead of one per row, and nothing left for the
   narrower paths when a row has a vector of outputs). */
#define CY_ROWS_DISPATCH(OP, T, SFX, LANES, PARAMS, ARGS)                                 \
    CY_IF_AVX2(CY_AVX2 static void cy_##OP##_rows_##SFX##_avx2(                           \
            const T* first, ptrdiff_t in_stride, ptrdiff_t rows, PARAMS, T* out,          \
            ptrdiff_t out_stride, ptrdiff_t n) {                                          \
        for (ptrdiff_t r = 0; r < rows; r++) {                                            \
            const T* row = first + r * in_stride;                                         \
            (void) cy_##OP##_##SFX##_avx2(&row, 1, ARGS, out + r * out_stride, 0, n);     \
        }                                                                                 \
    })                                                                                    \
    static void cy_max_##OP##_rows_##SFX(const T* first, ptrdiff_t in_stride,             \
                                         ptrdiff_t rows, PARAMS, T* out,                  \
                                         ptrdiff_t out_stride, ptrdiff_t n) {             \
        CY_IF_AVX2(if (cy_simd_level() >= CY_SIMD_AVX2 && n >= (LANES)) {                 \
            cy_##OP##_rows_##SFX##_avx2(first, in_stride, rows, ARGS, out, out_stride, n); \
            return;                                                                       \
        })                                                                                \
        for (ptrdiff_t r = 0; r < rows; r++) {                                            \
            const T* row = first + r * in_stride;                                         \
            cy_max_##OP##_##SFX(&row, 1, ARGS, out + r * out_stride, n);                  \
        }                                                                                 \
    }
#define CY_S1_PARAMS ptrdiff_t kernel, ptrdiff_t dilation
#define CY_S1_ARGS kernel, dilation
#define CY_S2_PARAMS ptrdiff_t width
CY_ROWS_DISPATCH(s1, float, f32, 8, CY_S1_PARAMS, CY_S1_ARGS)
CY_ROWS_DISPATCH(s1, double, f64, 4, CY_S1_PARAMS, CY_S1_ARGS)
CY_ROWS_DISPATCH(s2, float, f32, 8, CY_S2_PARAMS, width)
CY_ROWS_DISPATCH(s2, double, f64, 4, CY_S2_PARAMS, width)

#define CY_SUM_S1_DISPATCH(T, SFX)                                                        \
    static void cy_sum_s1_##SFX(const T* const* rows, ptrdiff_t n_rows, ptrdiff_t kernel,  \
                                T* out, const T* divisors, ptrdiff_t n) {                 \
        ptrdiff_t i = 0;                                                                  \
        int level = cy_simd_level();                                                      \
        CY_IF_AVX2(if (level >= CY_SIMD_AVX2) i = cy_sum_s1_##SFX##_avx2(rows, n_rows, kernel, out, divisors, i, n);) \
        CY_IF_SSE2(if (level >= CY_SIMD_SSE2 && i < n) i = cy_sum_s1_##SFX##_sse2(rows, n_rows, kernel, out, divisors, i, n);) \
        (void) level;                                                                     \
        cy_sum_s1_##SFX##_c(rows, n_rows, kernel, out, divisors, i, n);                   \
    }

CY_SUM_S1_DISPATCH(float, f32)
CY_SUM_S1_DISPATCH(double, f64)

#define CY_LANES_DISPATCH(T, SFX)                                                         \
    static void cy_max_lanes_##SFX(const T* lanes, const int32_t* tap, const int32_t* start, \
                                   ptrdiff_t n_out, T* out, T* where) {                   \
        int level = cy_simd_level();                                                      \
        CY_IF_AVX2(if (level >= CY_SIMD_AVX2) {                                           \
            cy_max_lanes_##SFX##_avx2(lanes, tap, start, n_out, out, where);              \
            return;                                                                       \
        })                                                                                \
        CY_IF_SSE2(if (level >= CY_SIMD_SSE2) {                                           \
            cy_max_lanes_##SFX##_sse2(lanes, tap, start, n_out, out, where);              \
            return;                                                                       \
        })                                                                                \
        (void) level;                                                                     \
        cy_max_lanes_##SFX##_c(lanes, tap, start, n_out, out, where);                     \
    }

CY_LANES_DISPATCH(float, f32)
CY_LANES_DISPATCH(double, f64)

/* Transposes: the widest blocks the CPU has. */
#define CY_TRANSPOSE_DISPATCH(T, SFX, AVX2_CODE)                                          \
    static void cy_transpose_##SFX(const T* src, ptrdiff_t src_stride, ptrdiff_t rows,    \
                                   ptrdiff_t cols, T* dst, ptrdiff_t dst_stride) {        \
        int level = cy_simd_level();                                                      \
        AVX2_CODE                                                                         \
        CY_IF_SSE2(if (level >= CY_SIMD_SSE2) {                                           \
            cy_transpose_##SFX##_sse2(src, src_stride, rows, cols, dst, dst_stride);      \
            return;                                                                       \
        })                                                                                \
        (void) level;                                                                     \
        cy_transpose_##SFX##_c(src, src_stride, rows, cols, dst, dst_stride);             \
    }
#define CY_TRANSPOSE_AVX2(SFX) CY_IF_AVX2(if (level >= CY_SIMD_AVX2) {                   \
        cy_transpose_##SFX##_avx2(src, src_stride, rows, cols, dst, dst_stride);          \
        return;                                                                           \
    })

#define CY_LANES_OP_DISPATCH(OP, T, SFX)                                                  \
    static void cy_##OP##_##SFX(const T* src, const int32_t* win, ptrdiff_t plane_step,   \
                                ptrdiff_t row_step, ptrdiff_t n_out, const T* divisors,    \
                                T* dst) {                                                  \
        int level = cy_simd_level();                                                       \
        CY_IF_AVX2(if (level >= CY_SIMD_AVX2) {                                            \
            cy_##OP##_##SFX##_avx2(src, win, plane_step, row_step, n_out, divisors, dst);  \
            return;                                                                        \
        })                                                                                 \
        CY_IF_SSE2(if (level >= CY_SIMD_SSE2) {                                            \
            cy_##OP##_##SFX##_sse2(src, win, plane_step, row_step, n_out, divisors, dst);  \
            return;                                                                        \
        })                                                                                 \
        (void) level;                                                                      \
        cy_##OP##_##SFX##_c(src, win, plane_step, row_step, n_out, divisors, dst);         \
    }

#define CY_AVG_LANES_DISPATCH(T, SFX)                                                     \
    CY_LANES_OP_DISPATCH(avg_lanes, T, SFX)                                               \
    CY_LANES_OP_DISPATCH(avg_col_lanes, T, SFX)                                           \
    CY_LANES_OP_DISPATCH(avg_back_lanes, T, SFX)
CY_AVG_LANES_DISPATCH(float, f32)
CY_AVG_LANES_DISPATCH(double, f64)

static float cy_wide_sum_f32(const float* v, ptrdiff_t n) {
    int level = cy_simd_level();
    CY_IF_AVX2(if (level >= CY_SIMD_AVX2) return cy_wide_sum_f32_avx2(v, n);)
    CY_IF_SSE2(if (level >= CY_SIMD_SSE2) return cy_wide_sum_f32_sse2(v, n);)
    (void) level;
    return cy_wide_sum_f32_c(v, n);
}

static double cy_wide_sum_f64(const double* v, ptrdiff_t n) {
    int level = cy_simd_level();
    CY_IF_AVX2(if (level >= CY_SIMD_AVX2) return cy_wide_sum_f64_avx2(v, n);)
    CY_IF_SSE2(if (level >= CY_SIMD_SSE2) return cy_wide_sum_f64_sse2(v, n);)
    (void) level;
    return cy_wide_sum_f64_c(v, n);
}

CY_TRANSPOSE_DISPATCH(float, f32, CY_TRANSPOSE_AVX2(f32))
CY_TRANSPOSE_DISPATCH(double, f64, CY_TRANSPOSE_AVX2(f64))

/* The small-plane paths' moves: planes [0, width) of src, `plane` elements each, into
   16 lanes (the missing lanes zero: they compute on zeros and are not written back);
   the lanes' first `width` back into planes; and the winners' offsets that
   cy_max_lanes leaves in `where` as int64 indices of those planes. */
#define CY_DEFINE_LANE_MOVES(T, SFX)                                                      \
    static void cy_to_lanes_##SFX(const T* src, ptrdiff_t plane, ptrdiff_t width,         \
                                  T* lanes) {                                             \
        cy_transpose_##SFX(src, plane, width, plane, lanes, 16);                          \
        if (width < 16)                                                                   \
            for (ptrdiff_t i = 0; i < plane; i++)                                         \
                for (ptrdiff_t l = width; l < 16; l++) lanes[i * 16 + l] = 0;             \
    }                                                                                     \
    static void cy_from_lanes_##SFX(const T* lanes, ptrdiff_t plane, ptrdiff_t width,     \
                                    T* dst) {                                             \
        cy_transpose_##SFX(lanes, 16, plane, width, dst, plane);                          \
    }                                                                                     \
    static void cy_lane_index_##SFX(const T* where, ptrdiff_t plane, ptrdiff_t width,     \
                                    int64_t* index) {                                     \
        for (ptrdiff_t l = 0; l < width; l++)                                             \
            for (ptrdiff_t o = 0; o < plane; o++)                                         \
                index[l * plane + o] = (int64_t) where[o * 16 + l];                       \
    }
CY_DEFINE_LANE_MOVES(float, f32)
CY_DEFINE_LANE_MOVES(double, f64)

/* Channels-last windows (at most CY_SUM_MAX_TAPS taps), one window (IMPL) or n windows
   of a row (IMPL##_row, see CY_DEFINE_MAX_TAPS and CY_DEFINE_AVG_TAPS): the widest path
   first, the narrower ones for what is left; returns the channels done (all when the
   vector paths run, SSE2 and up; else none, and the caller does them). */
#define CY_TAPS_DISPATCH(NAME, IMPL, ROW, CALL, ARGS)                                     \
    static ptrdiff_t NAME ARGS {                                                          \
        ptrdiff_t c = 0;                                                                  \
        int level = cy_simd_level();                                                      \
        CY_IF_AVX2(if (level >= CY_SIMD_AVX2) c = IMPL##_avx2##ROW(CALL);)                \
        CY_IF_SSE2(if (level >= CY_SIMD_SSE2) {                                           \
            c = IMPL##_sse2##ROW(CALL);                                                   \
            c = IMPL##_lane##ROW(CALL);                                                   \
        })                                                                                \
        (void) level;                                                                     \
        return c;                                                                         \
    }
#define CY_MAX_CALL taps, n_taps, c, channels, out, tap_pos, index, 0, 0
#define CY_AVG_CALL taps, n_taps, c, channels, out, divisor, 0
#define CY_MAX_ROW_CALL taps, n_taps, c, channels, out, tap_pos, index, n, step, pos_step
#define CY_AVG_ROW_CALL taps, n_taps, c, channels, out, divisors, n, step
#define CY_TAPS_ARGS(T) const T* const* taps, ptrdiff_t n_taps, ptrdiff_t channels, T* out
#define CY_TAPS_DISPATCH_ALL(T, SFX)                                                      \
    CY_TAPS_DISPATCH(cy_max_taps_##SFX, cy_max_taps_##SFX, , CY_MAX_CALL,                 \
                     (CY_TAPS_ARGS(T), const int64_t* tap_pos, int64_t* index))           \
    CY_TAPS_DISPATCH(cy_avg_taps_##SFX, cy_avg_taps_##SFX, , CY_AVG_CALL,                 \
                     (CY_TAPS_ARGS(T), T divisor))                                        \
    CY_TAPS_DISPATCH(cy_max_taps_row_##SFX, cy_max_taps_##SFX, _row, CY_MAX_ROW_CALL,     \
                     (CY_TAPS_ARGS(T), const int64_t* tap_pos, int64_t* index, ptrdiff_t n, \
                      ptrdiff_t step, int64_t pos_step))                                  \
    CY_TAPS_DISPATCH(cy_avg_taps_row_##SFX, cy_avg_taps_##SFX, _row, CY_AVG_ROW_CALL,     \
                     (CY_TAPS_ARGS(T), const T* divisors, ptrdiff_t n, ptrdiff_t step))
CY_TAPS_DISPATCH_ALL(float, f32)
CY_TAPS_DISPATCH_ALL(double, f64)

/* Average rows at stride 2: the vector paths, then the same additions one output at a
   time for what is left. */
#define CY_AVG_S2_DISPATCH(T, SFX)                                                        \
    static void cy_avg_s2_##SFX(const T* const* rows, ptrdiff_t n_rows, ptrdiff_t width,  \
                                T* out, const T* divisors, ptrdiff_t n) {                 \
        ptrdiff_t i = 0;                                                                  \
        int level = cy_simd_level();                                                      \
        CY_IF_AVX2(if (level >= CY_SIMD_AVX2) i = cy_avg_s2_##SFX##_avx2(rows, n_rows, width, out, divisors, i, n);) \
        CY_IF_SSE2(if (level >= CY_SIMD_SSE2 && i < n) i = cy_avg_s2_##SFX##_sse2(rows, n_rows, width, out, divisors, i, n);) \
        (void) level;                                                                     \
        for (; i < n; i++) {                                                              \
            T total = 0;                                                                  \
            for (ptrdiff_t r = 0; r < n_rows; r++) {                                      \
                T row = rows[r][2 * i] + rows[r][2 * i + 1];                              \
                if (width == 3) row = row + rows[r][2 * i + 2];                           \
                total = r == 0 ? row : total + row;                                       \
            }                                                                             \
            out[i] = total / divisors[i];                                                 \
        }                                                                                 \
    }

CY_AVG_S2_DISPATCH(float, f32)
CY_AVG_S2_DISPATCH(double, f64)

/* Planes [block * 16, ...) of `planes` (at most 16) through the lanes: moved in, every
   window's max by cy_max_lanes (and, when index is not NULL, its int64 offset), moved
   out.  Scratch `lanes`: (in_plane + 2 * out_plane) * 16 values. */
#define CY_DEFINE_MAX_LANES_BLOCK(T, SFX)                                                 \
    static void cy_max_lanes_block_##SFX(const T* x, T* out, int64_t* index,              \
                                         ptrdiff_t block, ptrdiff_t planes,               \
                                         ptrdiff_t in_plane, ptrdiff_t out_plane,         \
                                         const int32_t* tap, const int32_t* start,        \
                                         T* lanes) {                                      \
        ptrdiff_t first = block * 16;                                                     \
        ptrdiff_t width = planes - first < 16 ? planes - first : 16;                      \
        T* results = lanes + in_plane * 16;                                               \
        T* where = index != NULL ? results + out_plane * 16 : NULL;                       \
        cy_to_lanes_##SFX(x + first * in_plane, in_plane, width, lanes);                  \
        cy_max_lanes_##SFX(lanes, tap, start, out_plane, results, where);                 \
        cy_from_lanes_##SFX(results, out_plane, width, out + first * out_plane);          \
        if (index != NULL)                                                                \
            cy_lane_index_##SFX(where, out_plane, width, index + first * out_plane);      \
    }
CY_DEFINE_MAX_LANES_BLOCK(float, f32)
CY_DEFINE_MAX_LANES_BLOCK(double, f64)

/* The maximum of row[start, start + count) by the same rule (the first maximum, the last
   NaN), its position in *at; for long windows (adaptive windows of long rows).  SSE2
   keeps two vectors of running maxima and their positions, so that their
   compare-and-select chains overlap, and combines their lanes as the scan order would:
   the larger value, among equal values the earlier position, among NaNs the later.
   The elements past the last whole pair of vectors go one at a time. */
/* The lanes' maxima and positions combined as the scan order would: with a NaN, the
   last NaN's position; else the largest value at its earliest position. */
#define CY_DEFINE_COMBINE(T, SFX)                                                         \
    static T cy_combine_##SFX(const T* lane, const int32_t* lane_at, int n, int32_t* at) { \
        int nan = 0, j;                                                                   \
        T best = lane[0], value = lane[0];                                                \
        int32_t where = INT32_MAX;                                                        \
        for (j = 0; j < n; j++) nan |= lane[j] != lane[j];                                \
        if (nan) {                                                                        \
            where = -1;                                                                   \
            for (j = 0; j < n; j++)                                                       \
                if (lane[j] != lane[j] && lane_at[j] > where) where = lane_at[j], best = lane[j]; \
            *at = where;                                                                  \
            return best;                                                                  \
        }                                                                                 \
        for (j = 1; j < n; j++) best = lane[j] > best ? lane[j] : best;                   \
        /* the first of the equals, with its bits: -0.0 and 0.0 compare equal */          \
        for (j = 0; j < n; j++)                                                           \
            if (lane[j] == best && lane_at[j] < where) where = lane_at[j], value = lane[j]; \
        *at = where;                                                                      \
        return value;                                                                     \
    }
CY_DEFINE_COMBINE(float, f32)
CY_DEFINE_COMBINE(double, f64)

#if CY_HAVE_SSE2
/* The two-vector loop over [start, end), end a whole number of pairs of vectors on;
   IT is the position lanes' type (the width of T, so that a take mask selects them). */
#define CY_DEFINE_WINDOW_MAX_SSE2(T, SFX, V, L, IT, LOADU, STOREU, CMPLT, CMPUNORD, AND,  \
                                  ANDNOT, OR, CAST, SET1, ADDI)                           \
    static T cy_window_max_##SFX##_sse2(const T* row, ptrdiff_t start, ptrdiff_t count,  \
                                        int32_t* at, ptrdiff_t* done) {                   \
        ptrdiff_t i, end = start + count - count % (2 * (L));                             \
        T lane[2 * (L)];                                                                  \
        IT wide_at[2 * (L)];                                                              \
        int32_t lane_at[2 * (L)];                                                         \
        for (int j = 0; j < 2 * (L); j++) wide_at[j] = (IT) (start + j);                  \
        V b0 = LOADU(row + start), b1 = LOADU(row + start + (L));                         \
        __m128i p0 = _mm_loadu_si128((const __m128i*) wide_at);                           \
        __m128i p1 = _mm_loadu_si128((const __m128i*) (wide_at + (L)));                   \
        __m128i a0 = p0, a1 = p1, step = SET1(2 * (L));                                   \
        for (i = start + 2 * (L); i < end; i += 2 * (L)) {                                \
            V v0 = LOADU(row + i), v1 = LOADU(row + i + (L));                             \
            V t0 = OR(CMPLT(b0, v0), CMPUNORD(v0, v0));                                   \
            V t1 = OR(CMPLT(b1, v1), CMPUNORD(v1, v1));                                   \
            p0 = ADDI(p0, step);                                                          \
            p1 = ADDI(p1, step);                                                          \
            b0 = OR(AND(t0, v0), ANDNOT(t0, b0));                                         \
            b1 = OR(AND(t1, v1), ANDNOT(t1, b1));                                         \
            a0 = _mm_or_si128(_mm_and_si128(CAST(t0), p0), _mm_andnot_si128(CAST(t0), a0)); \
            a1 = _mm_or_si128(_mm_and_si128(CAST(t1), p1), _mm_andnot_si128(CAST(t1), a1)); \
        }                                                                                 \
        STOREU(lane, b0);                                                                 \
        STOREU(lane + (L), b1);                                                           \
        _mm_storeu_si128((__m128i*) wide_at, a0);                                         \
        _mm_storeu_si128((__m128i*) (wide_at + (L)), a1);                                 \
        for (int j = 0; j < 2 * (L); j++) lane_at[j] = (int32_t) wide_at[j];              \
        *done = end;                                                                      \
        return cy_combine_##SFX(lane, lane_at, 2 * (L), at);                              \
    }
CY_DEFINE_WINDOW_MAX_SSE2(float, f32, __m128, 4, int32_t, _mm_loadu_ps, _mm_storeu_ps,
                          _mm_cmplt_ps, _mm_cmpunord_ps, _mm_and_ps, _mm_andnot_ps, _mm_or_ps,
                          _mm_castps_si128, _mm_set1_epi32, _mm_add_epi32)
CY_DEFINE_WINDOW_MAX_SSE2(double, f64, __m128d, 2, int64_t, _mm_loadu_pd, _mm_storeu_pd,
                          _mm_cmplt_pd, _mm_cmpunord_pd, _mm_and_pd, _mm_andnot_pd, _mm_or_pd,
                          _mm_castpd_si128, _mm_set1_epi64x, _mm_add_epi64)
#endif

#define CY_DEFINE_WINDOW_MAX(T, SFX, MIN_VECTOR)                                          \
    static T cy_window_max_##SFX(const T* row, ptrdiff_t start, ptrdiff_t count,         \
                                 int32_t* at) {                                           \
        ptrdiff_t i = start + 1, end = start + count;                                     \
        T best = row[start];                                                              \
        *at = (int32_t) start;                                                            \
        CY_IF_SSE2(if (count >= (MIN_VECTOR) && cy_simd_level() >= CY_SIMD_SSE2)         \
                       best = cy_window_max_##SFX##_sse2(row, start, count, at, &i);)     \
        for (; i < end; i++) best = cy_pick1_##SFX(best, row[i], at, (int32_t) i);       \
        return best;                                                                      \
    }
CY_DEFINE_WINDOW_MAX(float, f32, 16)
CY_DEFINE_WINDOW_MAX(double, f64, 8)

/* The value of cy_window_max: where the run holds no NaN and its maximum is not zero,
   every element equal to the maximum has its bits, so the order in which maxima are
   taken does not matter: two vectors of plain maxima, NaNs noted aside, then across
   the lanes.  A NaN (the last one wins) or a zero maximum (the first zero's sign
   wins) takes cy_window_max's scan instead. */
#if CY_HAVE_SSE2
#define CY_DEFINE_WINDOW_VALUE_SSE2(T, SFX, V, L, LOADU, MAX, CMPUNORD, OR, MOVEMASK,    \
                                    ACROSS)                                               \
    static int cy_window_value_##SFX##_sse2(const T* row, ptrdiff_t start, ptrdiff_t count, \
                                            T* value) {                                   \
        const T* p = row + start;                                                         \
        ptrdiff_t i = 2 * (L);                                                            \
        V m0 = LOADU(p), m1 = LOADU(p + (L));                                             \
        V nan = OR(CMPUNORD(m0, m0), CMPUNORD(m1, m1));                                   \
        for (; i + 2 * (L) <= count; i += 2 * (L)) {                                      \
            V v0 = LOADU(p + i), v1 = LOADU(p + i + (L));                                 \
            m0 = MAX(m0, v0);                                                             \
            m1 = MAX(m1, v1);                                                             \
            nan = OR(nan, OR(CMPUNORD(v0, v0), CMPUNORD(v1, v1)));                        \
        }                                                                                 \
        for (; i < count; i += (L)) {  /* the last vector ends at the run's end */        \
            V v = LOADU(p + (i + (L) <= count ? i : count - (L)));                        \
            m0 = MAX(m0, v);                                                              \
            nan = OR(nan, CMPUNORD(v, v));                                                \
        }                                                                                 \
        if (MOVEMASK(nan))                                                                \
            return 0;                                                                     \
        *value = ACROSS(MAX(m0, m1));                                                     \
        return *value != 0;                                                               \
    }
static inline float cy_across_ps(__m128 m) {
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}
static inline double cy_across_pd(__m128d m) {
    return _mm_cvtsd_f64(_mm_max_sd(m, _mm_unpackhi_pd(m, m)));
}
CY_DEFINE_WINDOW_VALUE_SSE2(float, f32, __m128, 4, _mm_loadu_ps, _mm_max_ps, _mm_cmpunord_ps,
                            _mm_or_ps, _mm_movemask_ps, cy_across_ps)
CY_DEFINE_WINDOW_VALUE_SSE2(double, f64, __m128d, 2, _mm_loadu_pd, _mm_max_pd, _mm_cmpunord_pd,
                            _mm_or_pd, _mm_movemask_pd, cy_across_pd)
#endif

#define CY_DEFINE_WINDOW_VALUE(T, SFX, MIN_VECTOR)                                        \
    static T cy_window_value_##SFX(const T* row, ptrdiff_t start, ptrdiff_t count) {     \
        T value;                                                                          \
        int32_t at;                                                                       \
        CY_IF_SSE2(if (count >= (MIN_VECTOR) && cy_simd_level() >= CY_SIMD_SSE2           \
                       && cy_window_value_##SFX##_sse2(row, start, count, &value))        \
                       return value;)                                                     \
        return cy_window_max_##SFX(row, start, count, &at);                               \
    }
CY_DEFINE_WINDOW_VALUE(float, f32, 8)
CY_DEFINE_WINDOW_VALUE(double, f64, 4)

/* -------------------------------------------------- channels-last maxima */

/* best[c] = the maximum of x[p * channels + c] over the pixels p < plane, for c < width,
   values alone: plain maxima, four pixels a pass, each select keeping the earlier of
   equals, so that without a NaN the first of equal maxima (-0.0 or 0.0) wins as in the
   scan; probe[c] = the channel's sum, NaN when it held a NaN (or an infinity of each
   sign, or overflowed past them), and the caller scans such a channel again in order.
   One C loop that gcc vectorises along the channels, compiled twice: for the baseline
   and, chosen at run time, for AVX2 (the same additions and selects per channel, so
   the same bits). */
#define CY_DEFINE_CHANNEL_MAXIMA(T, NAME, ATTR)                                           \
    ATTR static void NAME(const T* x, T* CY_RESTRICT best, T* CY_RESTRICT probe,        \
                          ptrdiff_t channels, ptrdiff_t plane, ptrdiff_t width) {         \
        ptrdiff_t p = 1, c;                                                               \
        for (c = 0; c < width; c++) {                                                     \
            best[c] = x[c];                                                               \
            probe[c] = x[c];                                                              \
        }                                                                                 \
        for (; p + 4 <= plane; p += 4) {                                                  \
            const T* CY_RESTRICT r = x + p * channels;                                    \
            for (c = 0; c < width; c++) {                                                 \
                T a = r[c], b = r[channels + c], d = r[2 * channels + c];                 \
                T e = r[3 * channels + c];                                                \
                probe[c] = probe[c] + ((a + b) + (d + e));                                \
                a = b > a ? b : a;                                                        \
                d = e > d ? e : d;                                                        \
                a = d > a ? d : a;                                                        \
                best[c] = a > best[c] ? a : best[c];                                      \
            }                                                                             \
        }                                                                                 \
        for (; p < plane; p++) {                                                          \
            const T* CY_RESTRICT r = x + p * channels;                                    \
            for (c = 0; c < width; c++) {                                                 \
                T a = r[c];                                                               \
                probe[c] = probe[c] + a;                                                  \
                best[c] = a > best[c] ? a : best[c];                                      \
            }                                                                             \
        }                                                                                 \
    }
#if defined(__GNUC__) || defined(__clang__)
#define CY_RESTRICT __restrict__
#elif defined(_MSC_VER)
#define CY_RESTRICT __restrict
#else
#define CY_RESTRICT
#endif
CY_DEFINE_CHANNEL_MAXIMA(float, cy_channel_maxima_f32_base, )
CY_DEFINE_CHANNEL_MAXIMA(double, cy_channel_maxima_f64_base, )
#if CY_HAVE_AVX2
CY_DEFINE_CHANNEL_MAXIMA(float, cy_channel_maxima_f32_avx2, CY_AVX2)
CY_DEFINE_CHANNEL_MAXIMA(double, cy_channel_maxima_f64_avx2, CY_AVX2)
#endif
#define CY_DEFINE_CHANNEL_MAXIMA_DISPATCH(T, SFX)                                         \
    static void cy_channel_maxima_##SFX(const T* x, T* best, T* probe, ptrdiff_t channels, \
                                        ptrdiff_t plane, ptrdiff_t width) {               \
        CY_IF_AVX2(if (cy_simd_level() >= CY_SIMD_AVX2) {                                 \
                       cy_channel_maxima_##SFX##_avx2(x, best, probe, channels, plane, width); \
                       return;                                                            \
                   })                                                                     \
        cy_channel_maxima_##SFX##_base(x, best, probe, channels, plane, width);            \
    }
CY_DEFINE_CHANNEL_MAXIMA_DISPATCH(float, f32)
CY_DEFINE_CHANNEL_MAXIMA_DISPATCH(double, f64)

/* The same maxima with their pixel offsets, folded into best/at (which hold the
   running maxima and offsets): channels
   [0, the returned count), whole vectors.  Four pixels a pass, folded in a tree
   (earlier | later: the later when it beats the earlier by the max rule; the rule
   makes that the scan's choice in any grouping), then into the running pair.  The
   offsets are int32 for float32 (the same width as the values, so one mask blends
   both; the caller keeps planes of at most INT32_MAX pixels) and int64 for float64. */
#define CY_DEFINE_CHANNEL_ARGMAX(NAME, ATTR, T, IT, V, LANES, LOADU, STOREU, TAKE, BLEND,   \
                                 POSV, ILOAD, ISTORE)                                       \
    ATTR static ptrdiff_t NAME(const T* x, T* best, IT* at, ptrdiff_t channels,            \
                               ptrdiff_t plane, ptrdiff_t width) {                         \
        ptrdiff_t p = 0, c, done = width - width % (LANES);                                \
        for (; p + 4 <= plane; p += 4) {                                                   \
            const T* r = x + p * channels;                                                 \
            V q0 = POSV(p), q1 = POSV(p + 1), q2 = POSV(p + 2), q3 = POSV(p + 3);          \
            for (c = 0; c < done; c += (LANES)) {                                          \
                V a = LOADU(r + c), b = LOADU(r + channels + c);                           \
                V d = LOADU(r + 2 * channels + c), e = LOADU(r + 3 * channels + c);        \
                V k = TAKE(a, b), ia, id, m, im;                                           \
                a = BLEND(a, b, k);                                                        \
                ia = BLEND(q0, q1, k);                                                     \
                k = TAKE(d, e);                                                            \
                d = BLEND(d, e, k);                                                        \
                id = BLEND(q2, q3, k);                                                     \
                k = TAKE(a, d);                                                            \
                a = BLEND(a, d, k);                                                        \
                ia = BLEND(ia, id, k);                                                     \
                m = LOADU(best + c);                                                       \
                im = ILOAD(at + c);                                                        \
                k = TAKE(m, a);                                                            \
                STOREU(best + c, BLEND(m, a, k));                                          \
                ISTORE(at + c, BLEND(im, ia, k));                                          \
            }                                                                              \
        }                                                                                  \
        for (; p < plane; p++) {                                                           \
            const T* r = x + p * channels;                                                 \
            V q = POSV(p);                                                                 \
            for (c = 0; c < done; c += (LANES)) {                                          \
                V a = LOADU(r + c), m = LOADU(best + c), k = TAKE(m, a);                   \
                STOREU(best + c, BLEND(m, a, k));                                          \
                ISTORE(at + c, BLEND(ILOAD(at + c), q, k));                                \
            }                                                                              \
        }                                                                                  \
        return done;                                                                       \
    }
#if CY_HAVE_SSE2
#define CY_POSV_EPI32(p) _mm_castsi128_ps(_mm_set1_epi32((int) (p)))
#define CY_POSV_EPI64(p) _mm_castsi128_pd(_mm_set1_epi64x((long long) (p)))
#define CY_ILOAD_PS(p) _mm_castsi128_ps(_mm_loadu_si128((const __m128i*) (p)))
#define CY_ILOAD_PD(p) _mm_castsi128_pd(_mm_loadu_si128((const __m128i*) (p)))
#define CY_ISTORE_PS(p, v) _mm_storeu_si128((__m128i*) (p), _mm_castps_si128(v))
#define CY_ISTORE_PD(p, v) _mm_storeu_si128((__m128i*) (p), _mm_castpd_si128(v))
CY_DEFINE_CHANNEL_ARGMAX(cy_channel_argmax_f32_sse2, , float, int32_t, __m128, 4, _mm_loadu_ps,
                         _mm_storeu_ps, CY_TAKE_PS, CY_BLEND_PS, CY_POSV_EPI32, CY_ILOAD_PS,
                         CY_ISTORE_PS)
CY_DEFINE_CHANNEL_ARGMAX(cy_channel_argmax_f64_sse2, , double, int64_t, __m128d, 2, _mm_loadu_pd,
                         _mm_storeu_pd, CY_TAKE_PD, CY_BLEND_PD, CY_POSV_EPI64, CY_ILOAD_PD,
                         CY_ISTORE_PD)
#endif
#if CY_HAVE_AVX2
#define CY_POSV_EPI32_256(p) _mm256_castsi256_ps(_mm256_set1_epi32((int) (p)))
#define CY_POSV_EPI64_256(p) _mm256_castsi256_pd(_mm256_set1_epi64x((long long) (p)))
#define CY_ILOAD_PS256(p) _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i*) (p)))
#define CY_ILOAD_PD256(p) _mm256_castsi256_pd(_mm256_loadu_si256((const __m256i*) (p)))
#define CY_ISTORE_PS256(p, v) _mm256_storeu_si256((__m256i*) (p), _mm256_castps_si256(v))
#define CY_ISTORE_PD256(p, v) _mm256_storeu_si256((__m256i*) (p), _mm256_castpd_si256(v))
CY_DEFINE_CHANNEL_ARGMAX(cy_channel_argmax_f32_avx2, CY_AVX2, float, int32_t, __m256, 8,
                         _mm256_loadu_ps, _mm256_storeu_ps, CY_TAKE_PS256, _mm256_blendv_ps,
                         CY_POSV_EPI32_256, CY_ILOAD_PS256, CY_ISTORE_PS256)
CY_DEFINE_CHANNEL_ARGMAX(cy_channel_argmax_f64_avx2, CY_AVX2, double, int64_t, __m256d, 4,
                         _mm256_loadu_pd, _mm256_storeu_pd, CY_TAKE_PD256, _mm256_blendv_pd,
                         CY_POSV_EPI64_256, CY_ILOAD_PD256, CY_ISTORE_PD256)
#endif
/* 0 channels done at level 0: the caller's loop takes them all. */
#define CY_DEFINE_CHANNEL_ARGMAX_DISPATCH(T, IT, SFX)                                      \
    static ptrdiff_t cy_channel_argmax_##SFX(const T* x, T* best, IT* at, ptrdiff_t channels, \
                                             ptrdiff_t plane, ptrdiff_t width) {           \
        int level = cy_simd_level();                                                       \
        CY_IF_AVX2(if (level >= CY_SIMD_AVX2)                                              \
                       return cy_channel_argmax_##SFX##_avx2(x, best, at, channels, plane, \
                                                             width);)                      \
        CY_IF_SSE2(if (level >= CY_SIMD_SSE2)                                              \
                       return cy_channel_argmax_##SFX##_sse2(x, best, at, channels, plane, \
                                                             width);)                      \
        (void) level;                                                                      \
        return 0;                                                                          \
    }
CY_DEFINE_CHANNEL_ARGMAX_DISPATCH(float, int32_t, f32)
CY_DEFINE_CHANNEL_ARGMAX_DISPATCH(double, int64_t, f64)

/* ---------------------------------------------------------- window sums */

/* out[i] = row[i * stride] + row[i * stride + 1] + ... + row[i * stride + kernel - 1],
   added left to right, for i in [0, n).  Eight windows at a time, each a chain of
   scalar additions straight from memory: two additions a cycle once eight chains hide
   their latency.  gcc would vectorise across the windows, each vector of taps built
   from `stride`-apart scalars, at twice the cost: an empty asm holding each sum in a
   register of its own keeps the chains scalar.  (An optimize("no-tree-vectorize")
   attribute did too, but slowed the other loops of the modules that include this.) */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define CY_OWN_REGISTER(v) __asm__("" : "+x"(v))
#else
#define CY_OWN_REGISTER(v) ((void) 0)
#endif
#define CY_DEFINE_WINDOW_SUMS(T, SFX)                                                     \
    static void cy_window_sums_##SFX(const T* row, ptrdiff_t stride, ptrdiff_t kernel,   \
                                     T* out, ptrdiff_t n) {                               \
        ptrdiff_t i = 0, j;                                                               \
        int c;                                                                            \
        for (; i + 8 <= n; i += 8) {                                                      \
            const T* p = row + i * stride;                                                \
            T a[8];                                                                       \
            for (c = 0; c < 8; c++) a[c] = p[c * stride];                                 \
            for (j = 1; j < kernel; j++)                                                  \
                for (c = 0; c < 8; c++) {                                                 \
                    a[c] = a[c] + p[c * stride + j];                                      \
                    CY_OWN_REGISTER(a[c]);                                                \
                }                                                                         \
            for (c = 0; c < 8; c++) out[i + c] = a[c];                                    \
        }                                                                                 \
        for (; i < n; i++) {                                                              \
            const T* p = row + i * stride;                                                \
            T a = p[0];                                                                   \
            for (j = 1; j < kernel; j++) a = a + p[j];                                    \
            out[i] = a;                                                                   \
        }                                                                                 \
    }
CY_DEFINE_WINDOW_SUMS(float, f32)
CY_DEFINE_WINDOW_SUMS(double, f64)

/* ------------------------------------------------------ strided maxima */

/* out[i] = the scan-order max of row[i * stride + j], j in [0, kernel), values alone.
   Where a window holds no NaN and its maximum is not zero, every element equal to the
   maximum has its bits, so the maxima may be taken in any order: four (float32) or two
   (float64) windows at a time, a vector per tap from `stride`-apart elements.  Windows
   with a NaN (the last one wins) or a zero maximum (the first zero's sign) are scanned
   again in order. */
#define CY_SCAN_MAX(T, p, kernel, result)                                                 \
    do {                                                                                  \
        T best_ = (p)[0];                                                                 \
        for (ptrdiff_t j_ = 1; j_ < (kernel); j_++) best_ = CY_PICK(best_, (p)[j_]);      \
        (result) = best_;                                                                 \
    } while (0)
#if CY_HAVE_SSE2
#define CY_GATHER_PS(p, s) _mm_setr_ps((p)[0], (p)[s], (p)[2 * (s)], (p)[3 * (s)])
#define CY_GATHER_PD(p, s) _mm_setr_pd((p)[0], (p)[s])
#define CY_DEFINE_MAX_STRIDED_SSE2(T, SFX, V, L, GATHER, SUF)                             \
    static ptrdiff_t cy_max_strided_##SFX##_sse2(const T* row, ptrdiff_t stride,         \
                                                 ptrdiff_t kernel, T* out, ptrdiff_t n) { \
        ptrdiff_t i = 0;                                                                  \
        for (; i + (L) <= n; i += (L)) {                                                  \
            const T* p = row + i * stride;                                                \
            V m = GATHER(p, stride);                                                      \
            V odd = _mm_cmpunord_##SUF(m, m);                                             \
            for (ptrdiff_t j = 1; j < kernel; j++) {                                      \
                V v = GATHER(p + j, stride);                                              \
                m = _mm_max_##SUF(m, v);                                                  \
                odd = _mm_or_##SUF(odd, _mm_cmpunord_##SUF(v, v));                        \
            }                                                                             \
            odd = _mm_or_##SUF(odd, _mm_cmpeq_##SUF(m, _mm_setzero_##SUF()));             \
            _mm_storeu_##SUF(out + i, m);                                                 \
            if (_mm_movemask_##SUF(odd))                                                  \
                for (int l = 0; l < (L); l++) CY_SCAN_MAX(T, p + l * stride, kernel, out[i + l]); \
        }                                                                                 \
        return i;                                                                         \
    }
CY_DEFINE_MAX_STRIDED_SSE2(float, f32, __m128, 4, CY_GATHER_PS, ps)
CY_DEFINE_MAX_STRIDED_SSE2(double, f64, __m128d, 2, CY_GATHER_PD, pd)

/* float32 windows 4 wide at stride 4: four windows are four whole vectors, their
   maxima two rounds of pairing lanes (no tap built from scalars) */
static ptrdiff_t cy_max_k4s4_f32_sse2(const float* row, float* out, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float* p = row + 4 * i;
        __m128 a = _mm_loadu_ps(p), b = _mm_loadu_ps(p + 4);
        __m128 c = _mm_loadu_ps(p + 8), d = _mm_loadu_ps(p + 12);
        __m128 odd = _mm_or_ps(_mm_or_ps(_mm_cmpunord_ps(a, a), _mm_cmpunord_ps(b, b)),
                               _mm_or_ps(_mm_cmpunord_ps(c, c), _mm_cmpunord_ps(d, d)));
        __m128 ab = _mm_max_ps(_mm_unpacklo_ps(a, b), _mm_unpackhi_ps(a, b));
        __m128 cd = _mm_max_ps(_mm_unpacklo_ps(c, d), _mm_unpackhi_ps(c, d));
        __m128 m = _mm_max_ps(_mm_movelh_ps(ab, cd), _mm_movehl_ps(cd, ab));
        odd = _mm_or_ps(odd, _mm_cmpeq_ps(m, _mm_setzero_ps()));
        _mm_storeu_ps(out + i, m);
        if (_mm_movemask_ps(odd))
            for (int l = 0; l < 4; l++) CY_SCAN_MAX(float, p + 4 * l, 4, out[i + l]);
    }
    return i;
}
#endif

#define CY_DEFINE_MAX_STRIDED(T, SFX, K4S4)                                               \
    static void cy_max_strided_##SFX(const T* row, ptrdiff_t stride, ptrdiff_t kernel,   \
                                     T* out, ptrdiff_t n) {                               \
        ptrdiff_t i = 0;                                                                  \
        CY_IF_SSE2(if (cy_simd_level() >= CY_SIMD_SSE2)                                   \
                       i = K4S4(stride, kernel)                                           \
                               ? cy_max_k4s4_f32_sse2((const float*) row, (float*) out, n) \
                               : cy_max_strided_##SFX##_sse2(row, stride, kernel, out, n);) \
        for (; i < n; i++) CY_SCAN_MAX(T, row + i * stride, kernel, out[i]);              \
    }
#define CY_K4S4_F32(stride, kernel) ((stride) == 4 && (kernel) == 4)
#define CY_K4S4_NONE(stride, kernel) 0
CY_DEFINE_MAX_STRIDED(float, f32, CY_K4S4_F32)
CY_DEFINE_MAX_STRIDED(double, f64, CY_K4S4_NONE)


/* ---------------------------------------------------------------- streaming stores */

static void cy_stream_copy(void* dst, const void* src, size_t bytes) {
#if CY_HAVE_SSE2
    char* d = (char*) dst;
    const char* s = (const char*) src;
    size_t head = (16 - ((uintptr_t) d & 15)) & 15;
    if (head > bytes) head = bytes;
    memcpy(d, s, head);
    d += head, s += head, bytes -= head;
    for (; bytes >= 64; bytes -= 64, d += 64, s += 64) {
        __m128i a = _mm_loadu_si128((const __m128i*) s);
        __m128i b = _mm_loadu_si128((const __m128i*) (s + 16));
        __m128i c = _mm_loadu_si128((const __m128i*) (s + 32));
        __m128i e = _mm_loadu_si128((const __m128i*) (s + 48));
        _mm_stream_si128((__m128i*) d, a);
        _mm_stream_si128((__m128i*) (d + 16), b);
        _mm_stream_si128((__m128i*) (d + 32), c);
        _mm_stream_si128((__m128i*) (d + 48), e);
    }
    for (; bytes >= 16; bytes -= 16, d += 16, s += 16)
        _mm_stream_si128((__m128i*) d, _mm_loadu_si128((const __m128i*) s));
    memcpy(d, s, bytes);
    _mm_sfence();
#else
    memcpy(dst, src, bytes);
#endif
}

#endif
