/* Hand-vectorised rows for the most common max pool: windows of width 2, stride 2.
 *
 * cy_max_w2s2_f32/f64(rows, n_rows, out, n) set, for i in [0, n),
 *
 *     out[i] = the scan-order max of rows[0][2i], rows[0][2i+1], rows[1][2i], ...
 *
 * with PyTorch's rule (a later value wins when it is greater or NaN), so the result is
 * bit for bit the scalar loop's: each row's pair is combined first, then the rows in
 * order.  gcc vectorises the generic loop too, but with one pass per tap and a blend
 * that costs twice these instructions; this is the memory-bound case, so it pays.
 *
 * Paths: AVX2 (x86-64 with gcc or clang, chosen at run time from the CPU, since wheels
 * are built for baseline x86-64), SSE2 (every x86-64), and portable C elsewhere.
 * cy_simd_level() reports the path in use; cy_simd_cap(level) lowers it so the tests can
 * run every path on one machine.
 */
#ifndef CYPOOL_SIMD_H
#define CYPOOL_SIMD_H

#include <stddef.h>

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

enum { CY_SIMD_SCALAR = 0, CY_SIMD_SSE2 = 1, CY_SIMD_AVX2 = 2 };

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

#define CY_W2S2_SCALAR(T, rows, n_rows, out, start, n)                      \
    for (ptrdiff_t i_ = (start); i_ < (n); i_++) {                          \
        T best_ = (rows)[0][2 * i_];                                        \
        T v_ = (rows)[0][2 * i_ + 1];                                       \
        best_ = CY_PICK(best_, v_);                                         \
        for (ptrdiff_t r_ = 1; r_ < (n_rows); r_++) {                       \
            v_ = (rows)[r_][2 * i_];                                        \
            best_ = CY_PICK(best_, v_);                                     \
            v_ = (rows)[r_][2 * i_ + 1];                                    \
            best_ = CY_PICK(best_, v_);                                     \
        }                                                                   \
        (out)[i_] = best_;                                                  \
    }

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

static inline __m128 cy_pair_ps(const float* p) {  /* max of (p[0],p[1]), (p[2],p[3]), ... */
    __m128 a = _mm_loadu_ps(p), b = _mm_loadu_ps(p + 4);
    return cy_pick_ps(_mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
                      _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
}

static inline __m128d cy_pair_pd(const double* p) {
    __m128d a = _mm_loadu_pd(p), b = _mm_loadu_pd(p + 2);
    return cy_pick_pd(_mm_unpacklo_pd(a, b), _mm_unpackhi_pd(a, b));
}

static ptrdiff_t cy_w2s2_f32_sse2(const float* const* rows, ptrdiff_t n_rows, float* out,
                                  ptrdiff_t i, ptrdiff_t n) {
    for (; i + 4 <= n; i += 4) {
        __m128 best = cy_pair_ps(rows[0] + 2 * i);
        for (ptrdiff_t r = 1; r < n_rows; r++) best = cy_pick_ps(best, cy_pair_ps(rows[r] + 2 * i));
        _mm_storeu_ps(out + i, best);
    }
    return i;
}

static ptrdiff_t cy_w2s2_f64_sse2(const double* const* rows, ptrdiff_t n_rows, double* out,
                                  ptrdiff_t i, ptrdiff_t n) {
    for (; i + 2 <= n; i += 2) {
        __m128d best = cy_pair_pd(rows[0] + 2 * i);
        for (ptrdiff_t r = 1; r < n_rows; r++) best = cy_pick_pd(best, cy_pair_pd(rows[r] + 2 * i));
        _mm_storeu_pd(out + i, best);
    }
    return i;
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

/* Pairs of 16 floats, in the lane order 0,1,4,5,2,3,6,7 (of the 8 results): the
   shuffles stay inside 128-bit lanes; the caller restores the order once. */
CY_AVX2 static inline __m256 cy_pair_ps256(const float* p) {
    __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    return cy_pick_ps256(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
}

CY_AVX2 static inline __m256d cy_pair_pd256(const double* p) {
    __m256d a = _mm256_loadu_pd(p), b = _mm256_loadu_pd(p + 4);
    return cy_pick_pd256(_mm256_unpacklo_pd(a, b), _mm256_unpackhi_pd(a, b));
}

CY_AVX2 static ptrdiff_t cy_w2s2_f32_avx2(const float* const* rows, ptrdiff_t n_rows,
                                          float* out, ptrdiff_t i, ptrdiff_t n) {
    for (; i + 8 <= n; i += 8) {
        __m256 best = cy_pair_ps256(rows[0] + 2 * i);
        for (ptrdiff_t r = 1; r < n_rows; r++)
            best = cy_pick_ps256(best, cy_pair_ps256(rows[r] + 2 * i));
        best = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(best), _MM_SHUFFLE(3, 1, 2, 0)));
        _mm256_storeu_ps(out + i, best);
    }
    return i;
}

CY_AVX2 static ptrdiff_t cy_w2s2_f64_avx2(const double* const* rows, ptrdiff_t n_rows,
                                          double* out, ptrdiff_t i, ptrdiff_t n) {
    for (; i + 4 <= n; i += 4) {
        __m256d best = cy_pair_pd256(rows[0] + 2 * i);
        for (ptrdiff_t r = 1; r < n_rows; r++)
            best = cy_pick_pd256(best, cy_pair_pd256(rows[r] + 2 * i));
        _mm256_storeu_pd(out + i, _mm256_permute4x64_pd(best, _MM_SHUFFLE(3, 1, 2, 0)));
    }
    return i;
}
#endif

/* ------------------------------------------------------------- dispatch */

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

/* Each path takes outputs [i, n) in whole vectors and returns where it stopped;
   the scalar loop finishes the row. */
#define CY_W2S2_DISPATCH(T, SFX)                                                          \
    static void cy_max_w2s2_##SFX(const T* const* rows, ptrdiff_t n_rows, T* out,         \
                                  ptrdiff_t n) {                                          \
        ptrdiff_t i = 0;                                                                  \
        int level = cy_simd_level();                                                      \
        CY_IF_AVX2(if (level >= CY_SIMD_AVX2) i = cy_w2s2_##SFX##_avx2(rows, n_rows, out, i, n);) \
        CY_IF_SSE2(if (level >= CY_SIMD_SSE2) i = cy_w2s2_##SFX##_sse2(rows, n_rows, out, i, n);) \
        (void) level;                                                                     \
        CY_W2S2_SCALAR(T, rows, n_rows, out, i, n)                                        \
    }

CY_W2S2_DISPATCH(float, f32)
CY_W2S2_DISPATCH(double, f64)

#endif
