/* The one home of the vector plumbing and of the small math the kernels share. Every
 * layer may include it (graph/ is the lowest); users never do.
 *
 * The library is built for the baseline x86-64 ISA. Vector kernels carry HEED_AVX2 (AVX2 +
 * FMA) and are picked at run time with heed__have_avx2(), which follows the active ISA
 * (heed_isa(): the best the CPU runs, or the environment variable HEED_ISA; graph/simd.c).
 * SLEEF declares its __m256 functions only when AVX is enabled, so its header is read
 * under a temporary target; HEED_SLEEF_AVX2 says it did (always with GCC; clang ignores
 * the pragma and needs -mavx2, see tests/fuzz/run.sh). */
#ifndef HEED_SIMD_H
#define HEED_SIMD_H

#include <math.h>
#include <stdbool.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include <sleef.h>
#ifdef __AVX__
#define HEED_SLEEF_AVX2 1
#endif
#pragma GCC pop_options

#define HEED_AVX2 __attribute__((target("avx2,fma")))

/* ---------------------------------------------------------------- dispatch (graph/simd.c) */

/* True when the active ISA allows the AVX2 + FMA kernels. */
bool heed__have_avx2(void);

/* The one test hook: on, every kernel runs its scalar path (heed_isa() says "scalar"),
 * so a test can compare both paths in one process. Not thread-safe: set it between ops. */
void heed__force_scalar(bool on);

/* ---------------------------------------------------------------- scalar math */

/* sigmoid(x) = 1/(1 + e^-x) with z = e^-|x| <= 1 (never overflows): 1/(1+z) for x >= 0,
 * z/(1+z) else. */
static inline double heed__sigmoid1(double x) {
    double z = exp(-fabs(x));
    return x >= 0 ? 1 / (1 + z) : z / (1 + z);
}

/* softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow, no cancellation. */
static inline double heed__softplus1(double x) { return fmax(x, 0) + log1p(exp(-fabs(x))); }

/* ---------------------------------------------------------------- horizontal reductions */

/* max of the 8 lanes (a NaN lane may or may not win, as with _mm256_max_ps). */
HEED_AVX2 static inline float heed__hmax8(__m256 v) {
    __m128 a = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_max_ps(a, _mm_movehl_ps(a, a));
    a = _mm_max_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

/* sum of the 8 lanes: (0+4, 1+5, 2+6, 3+7), then pairs, then the last two. */
HEED_AVX2 static inline float heed__hsum8(__m256 v) {
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_shuffle_ps(a, a, 1));
    return _mm_cvtss_f32(a);
}

/* sum of the 4 double lanes: (0+2) + (1+3). */
HEED_AVX2 static inline double heed__hsum4d(__m256d v) {
    __m128d a = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(a, _mm_unpackhi_pd(a, a)));
}

/* ---------------------------------------------------------------- vector math (SLEEF) */

#ifdef HEED_SLEEF_AVX2
/* heed__sigmoid1 on 8 floats: z = e^-|x| (SLEEF, 1 ulp), r = 1/(1+z), z r where x < 0. */
HEED_AVX2 static inline __m256 heed__sigmoid8(__m256 x) {
    __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); /* |x| */
    __m256 z = Sleef_expf8_u10avx2(_mm256_sub_ps(_mm256_setzero_ps(), ax));
    __m256 r = _mm256_div_ps(_mm256_set1_ps(1), _mm256_add_ps(_mm256_set1_ps(1), z));
    __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    return _mm256_blendv_ps(r, _mm256_mul_ps(z, r), neg);
}
#endif

#endif
