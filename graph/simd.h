/* The one home of the vector plumbing and of the small math the kernels share. Every
 * layer may include it (graph/ is the lowest); users never do.
 *
 * The library is built for the baseline x86-64 ISA. Vector kernels carry HEED_AVX512
 * (AVX-512F, with AVX2 + FMA) or HEED_AVX2 (AVX2 + FMA) and are picked at run time with
 * heed__have_avx512() / heed__have_avx2(), which follow the active ISA (heed_isa(): the
 * best the CPU runs, or the environment variable HEED_ISA; graph/simd.c).
 * SLEEF declares its __m256 / __m512 functions only when AVX / AVX-512F is enabled, so its
 * header is read under a temporary target; HEED_SLEEF_AVX2 says it did (always with GCC;
 * clang ignores the pragma and needs -mavx2, see tests/fuzz/run.sh), HEED_SLEEF_AVX512
 * likewise for the AVX-512 functions. */
#ifndef HEED_SIMD_H
#define HEED_SIMD_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

/* The intrinsics are read under AVX2 + FMA alone (each AVX-512 part of immintrin.h adds
 * its own target), so HEED_AVX2 functions can inline them; SLEEF's declarations under
 * AVX-512F too. */
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#pragma GCC target("avx2,fma,avx512f")
#include <sleef.h>
#ifdef __AVX__
#define HEED_SLEEF_AVX2 1
#endif
#ifdef __AVX512F__
#define HEED_SLEEF_AVX512 1
#endif
#pragma GCC pop_options

#define HEED_AVX2 __attribute__((target("avx2,fma")))
#define HEED_AVX512 __attribute__((target("avx2,fma,avx512f")))

/* ---------------------------------------------------------------- dispatch (graph/simd.c) */

/* True when the active ISA allows the AVX2 + FMA kernels (avx2 or avx512). */
bool heed__have_avx2(void);
/* True when the active ISA is avx512: the AVX-512F kernels. */
bool heed__have_avx512(void);

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

/* ---------------------------------------------------------------- kernels written once per ISA
 *
 * A vector kernel is written once in a template header and built once per ISA: the
 * includer defines ISA as avx2 or avx512 and includes it, or has graph/per_isa.h do both
 * (see ops/softmax.c). Inside,
 *   VF, VD     the float vector and a double vector of half as many lanes,
 *   VW         the float lanes (8, 16),
 *   VTARGET    the target attribute (HEED_AVX2, HEED_AVX512),
 *   V(op)      the operation op on this ISA's vectors (heed__op_avx2, heed__op_avx512),
 *   VFN(name)  a name for this build (name_avx2, name_avx512).
 * The operations, the same for both ISAs (a, b, c, x, y vectors; p a float pointer):
 *   load(p) store(p, a) set1(f) zero()  loadt(p, rem, fill) storet(p, rem, a): the lanes
 *   [0, rem) of a row's last, partial vector (memory past them is never touched; fill in
 *   the other lanes); add sub mul div max sqrt abs neg; fmadd(a, b, c) = a b + c,
 *   fnmadd(a, b, c) = c - a b, fmsub(a, b, c) = a b - c; iflt(a, b, x, y) = a < b ? x : y
 *   per lane (ifgt, ifeq likewise; false for NaN); exp exp2 log log1p tanh pow erfc
 *   (SLEEF, 1 ulp; erfc 1.5) and tanh35 (3.5 ulp); sigmoid (heed__sigmoid1 per lane);
 *   hmax hsum (float); lo(a), hi(a): the lower, upper half widened to VD; loadd(q)
 *   stored(q, d) for double pointers q; addd fmaddd zerod hsumd on VD. */
#define HEED__CAT(a, b) HEED__CAT_(a, b)
/* The build of name for the widest ISA heed_isa() allows (&name_avx512, &name_avx2), else
 * scalar; graph/per_isa.h makes the builds. */
#ifdef HEED_SLEEF_AVX512
#define HEED_WIDEST(name, scalar) (heed__have_avx512() ? &name##_avx512 : heed__have_avx2() ? &name##_avx2 : (scalar))
#else
#define HEED_WIDEST(name, scalar) (heed__have_avx2() ? &name##_avx2 : (scalar))
#endif
#define HEED__CAT_(a, b) a##b
#define VF HEED__CAT(heed__vf_, ISA)
#define VD HEED__CAT(heed__vd_, ISA)
#define VW HEED__CAT(HEED__VW_, ISA)
#define VTARGET HEED__CAT(HEED__TARGET_, ISA)
#define V(op) HEED__CAT(heed__##op##_, ISA)
#define VFN(name) HEED__CAT(name##_, ISA)

#define HEED__VW_avx2 8
#define HEED__TARGET_avx2 HEED_AVX2
typedef __m256 heed__vf_avx2;
typedef __m256d heed__vd_avx2;
#define HEED__VW_avx512 16
#define HEED__TARGET_avx512 HEED_AVX512
typedef __m512 heed__vf_avx512;
typedef __m512d heed__vd_avx512;

/* The plain arithmetic of one ISA (intrinsics prefix PFX) under heed's names. */
#define HEED__ARITH_WRAPPERS(ATTR, ISA_, VT, PFX)                                                                      \
    ATTR VT heed__load_##ISA_(const float *p) { return PFX##_loadu_ps(p); }                                            \
    ATTR void heed__store_##ISA_(float *p, VT a) { PFX##_storeu_ps(p, a); }                                            \
    ATTR VT heed__set1_##ISA_(float f) { return PFX##_set1_ps(f); }                                                    \
    ATTR VT heed__zero_##ISA_(void) { return PFX##_setzero_ps(); }                                                     \
    ATTR VT heed__add_##ISA_(VT a, VT b) { return PFX##_add_ps(a, b); }                                                \
    ATTR VT heed__sub_##ISA_(VT a, VT b) { return PFX##_sub_ps(a, b); }                                                \
    ATTR VT heed__mul_##ISA_(VT a, VT b) { return PFX##_mul_ps(a, b); }                                                \
    ATTR VT heed__div_##ISA_(VT a, VT b) { return PFX##_div_ps(a, b); }                                                \
    ATTR VT heed__max_##ISA_(VT a, VT b) { return PFX##_max_ps(a, b); }                                                \
    ATTR VT heed__sqrt_##ISA_(VT a) { return PFX##_sqrt_ps(a); }                                                       \
    ATTR VT heed__fmadd_##ISA_(VT a, VT b, VT c) { return PFX##_fmadd_ps(a, b, c); }                                   \
    ATTR VT heed__fnmadd_##ISA_(VT a, VT b, VT c) { return PFX##_fnmadd_ps(a, b, c); }                                 \
    ATTR VT heed__fmsub_##ISA_(VT a, VT b, VT c) { return PFX##_fmsub_ps(a, b, c); }

/* SLEEF's functions of one ISA (N floats, SLEEF's suffix SUF) under heed's names. */
#define HEED__SLEEF_WRAPPERS(ATTR, ISA_, VT, N, SUF)                                                                   \
    ATTR VT heed__exp_##ISA_(VT a) { return Sleef_expf##N##_u10##SUF(a); }                                             \
    ATTR VT heed__exp2_##ISA_(VT a) { return Sleef_exp2f##N##_u10##SUF(a); }                                           \
    ATTR VT heed__log_##ISA_(VT a) { return Sleef_logf##N##_u10##SUF(a); }                                             \
    ATTR VT heed__log1p_##ISA_(VT a) { return Sleef_log1pf##N##_u10##SUF(a); }                                         \
    ATTR VT heed__tanh_##ISA_(VT a) { return Sleef_tanhf##N##_u10##SUF(a); }                                           \
    ATTR VT heed__tanh35_##ISA_(VT a) { return Sleef_tanhf##N##_u35##SUF(a); }                                         \
    ATTR VT heed__pow_##ISA_(VT a, VT b) { return Sleef_powf##N##_u10##SUF(a, b); }                                    \
    ATTR VT heed__erfc_##ISA_(VT a) { return Sleef_erfcf##N##_u15##SUF(a); }

/* AVX2 */
#define HEED__A2 HEED_AVX2 static inline
HEED__A2 __m256i heed__tailmask_avx2(int64_t rem) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
HEED__A2 __m256 heed__loadt_avx2(const float *p, int64_t rem, __m256 fill) {
    __m256i m = heed__tailmask_avx2(rem);
    return _mm256_blendv_ps(fill, _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
HEED__A2 void heed__storet_avx2(float *p, int64_t rem, __m256 a) {
    _mm256_maskstore_ps(p, heed__tailmask_avx2(rem), a);
}
HEED__A2 __m256 heed__abs_avx2(__m256 a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
HEED__A2 __m256 heed__neg_avx2(__m256 a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
HEED__A2 __m256 heed__iflt_avx2(__m256 a, __m256 b, __m256 x, __m256 y) {
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
}
HEED__A2 __m256 heed__ifgt_avx2(__m256 a, __m256 b, __m256 x, __m256 y) {
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_GT_OQ));
}
HEED__A2 __m256 heed__ifeq_avx2(__m256 a, __m256 b, __m256 x, __m256 y) {
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_EQ_OQ));
}
HEED__A2 float heed__hmax_avx2(__m256 a) { return heed__hmax8(a); }
HEED__A2 float heed__hsum_avx2(__m256 a) { return heed__hsum8(a); }
HEED__A2 __m256d heed__lo_avx2(__m256 a) { return _mm256_cvtps_pd(_mm256_castps256_ps128(a)); }
HEED__A2 __m256d heed__hi_avx2(__m256 a) { return _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)); }
HEED__A2 __m256d heed__loadd_avx2(const double *q) { return _mm256_loadu_pd(q); }
HEED__A2 void heed__stored_avx2(double *q, __m256d d) { _mm256_storeu_pd(q, d); }
HEED__A2 __m256d heed__zerod_avx2(void) { return _mm256_setzero_pd(); }
HEED__A2 __m256d heed__addd_avx2(__m256d a, __m256d b) { return _mm256_add_pd(a, b); }
HEED__A2 __m256d heed__fmaddd_avx2(__m256d a, __m256d b, __m256d c) { return _mm256_fmadd_pd(a, b, c); }
HEED__A2 double heed__hsumd_avx2(__m256d a) { return heed__hsum4d(a); }
HEED__ARITH_WRAPPERS(HEED__A2, avx2, __m256, _mm256)
#ifdef HEED_SLEEF_AVX2
HEED__SLEEF_WRAPPERS(HEED__A2, avx2, __m256, 8, avx2)
HEED__A2 __m256 heed__sigmoid_avx2(__m256 a) { return heed__sigmoid8(a); }
#endif
#undef HEED__A2

/* AVX-512F */
#define HEED__A5 HEED_AVX512 static inline
HEED__A5 __mmask16 heed__tailmask_avx512(int64_t rem) { return (__mmask16)((1u << rem) - 1); }
HEED__A5 __m512 heed__loadt_avx512(const float *p, int64_t rem, __m512 fill) {
    return _mm512_mask_loadu_ps(fill, heed__tailmask_avx512(rem), p);
}
HEED__A5 void heed__storet_avx512(float *p, int64_t rem, __m512 a) {
    _mm512_mask_storeu_ps(p, heed__tailmask_avx512(rem), a);
}
HEED__ARITH_WRAPPERS(HEED__A5, avx512, __m512, _mm512)
HEED__A5 __m512 heed__abs_avx512(__m512 a) { return _mm512_abs_ps(a); }
HEED__A5 __m512 heed__neg_avx512(__m512 a) {
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32((int)0x80000000u)));
}
HEED__A5 __m512 heed__iflt_avx512(__m512 a, __m512 b, __m512 x, __m512 y) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x);
}
HEED__A5 __m512 heed__ifgt_avx512(__m512 a, __m512 b, __m512 x, __m512 y) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), y, x);
}
HEED__A5 __m512 heed__ifeq_avx512(__m512 a, __m512 b, __m512 x, __m512 y) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ), y, x);
}
/* the two 8-lane halves, then the AVX2 reduction */
HEED__A5 __m256 heed__half_lo_avx512(__m512 a) { return _mm512_castps512_ps256(a); }
HEED__A5 __m256 heed__half_hi_avx512(__m512 a) {
    return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
}
HEED__A5 float heed__hmax_avx512(__m512 a) {
    return heed__hmax8(_mm256_max_ps(heed__half_lo_avx512(a), heed__half_hi_avx512(a)));
}
HEED__A5 float heed__hsum_avx512(__m512 a) {
    return heed__hsum8(_mm256_add_ps(heed__half_lo_avx512(a), heed__half_hi_avx512(a)));
}
HEED__A5 __m512d heed__lo_avx512(__m512 a) { return _mm512_cvtps_pd(heed__half_lo_avx512(a)); }
HEED__A5 __m512d heed__hi_avx512(__m512 a) { return _mm512_cvtps_pd(heed__half_hi_avx512(a)); }
HEED__A5 __m512d heed__loadd_avx512(const double *q) { return _mm512_loadu_pd(q); }
HEED__A5 void heed__stored_avx512(double *q, __m512d d) { _mm512_storeu_pd(q, d); }
HEED__A5 __m512d heed__zerod_avx512(void) { return _mm512_setzero_pd(); }
HEED__A5 __m512d heed__addd_avx512(__m512d a, __m512d b) { return _mm512_add_pd(a, b); }
HEED__A5 __m512d heed__fmaddd_avx512(__m512d a, __m512d b, __m512d c) { return _mm512_fmadd_pd(a, b, c); }
HEED__A5 double heed__hsumd_avx512(__m512d a) {
    return heed__hsum4d(_mm256_add_pd(_mm512_castpd512_pd256(a), _mm512_extractf64x4_pd(a, 1)));
}
#ifdef HEED_SLEEF_AVX512
HEED__SLEEF_WRAPPERS(HEED__A5, avx512, __m512, 16, avx512f)
/* as heed__sigmoid8 */
HEED__A5 __m512 heed__sigmoid_avx512(__m512 x) {
    __m512 z = Sleef_expf16_u10avx512f(heed__neg_avx512(_mm512_abs_ps(x)));
    __m512 r = _mm512_div_ps(_mm512_set1_ps(1), _mm512_add_ps(_mm512_set1_ps(1), z));
    return heed__iflt_avx512(x, _mm512_setzero_ps(), _mm512_mul_ps(z, r), r);
}
#endif
#undef HEED__A5

#endif
