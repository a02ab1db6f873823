/* Tile primitives of flash attention (contracts in internal.h): a small GEMM,
 * the online-softmax step of a score row, its backward, and a tile transpose.
 *
 * Portable loops serve f64 (the readable reference) and f32 on CPUs without AVX2. The
 * f32 vector versions are where the speed is: flash_vec.h, built for AVX2 and AVX-512F
 * (the widest heed_isa() allows runs), and an AVX2 transpose both use. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "internal.h"

#include <immintrin.h>
#include "../../graph/simd.h"

/* ---------------------------------------------------------------- portable */

#include <tgmath.h>
#define T float
#define FN(name) name##_f32
#include "flash_kernels.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "flash_kernels.c"
#undef T
#undef FN

static const flash_kernels_f32 portable_f32 = {gemm_f32, row_fwd_f32, row_bwd_f32, transpose_f32};
static const flash_kernels_f64 portable_f64 = {gemm_f64, row_fwd_f64, row_bwd_f64, transpose_f64};

/* ---------------------------------------------------------------- vector kernels */

/* 8 x 8 in-register blocks (unpack / shuffle / permute2f128). */
static HEED_AVX2 void transpose_avx2(const float *src, int64_t lds, int64_t rows, int64_t cols, float *dst,
                                     int64_t ldd) {
    int64_t j = 0;
    for (; j + 8 <= rows; j += 8) {
        int64_t c = 0;
        for (; c + 8 <= cols; c += 8) {
            const float *s = src + j * lds + c;
            __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + lds), r2 = _mm256_loadu_ps(s + 2 * lds),
                   r3 = _mm256_loadu_ps(s + 3 * lds), r4 = _mm256_loadu_ps(s + 4 * lds),
                   r5 = _mm256_loadu_ps(s + 5 * lds), r6 = _mm256_loadu_ps(s + 6 * lds),
                   r7 = _mm256_loadu_ps(s + 7 * lds);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *d = dst + c * ldd + j;
            _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(d + ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(d + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(d + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(d + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(d + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(d + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(d + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
        for (; c < cols; c++)
            for (int64_t jj = j; jj < j + 8; jj++) dst[c * ldd + jj] = src[jj * lds + c];
    }
    for (; j < rows; j++)
        for (int64_t c = 0; c < cols; c++) dst[c * ldd + j] = src[j * lds + c];
}

#define PER_ISA_FILE "../ops/attention/flash_vec.h"
#include "../../graph/per_isa.h"

const flash_kernels_f32 *flash_kernels_f32_get(void) {
    return HEED_WIDEST(f32, &portable_f32); /* portable under heed__force_scalar and HEED_ISA=scalar */
}

const flash_kernels_f64 *flash_kernels_f64_get(void) { return &portable_f64; }
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

/* The portable tile primitives. */
static void FN(gemm)(int64_t M, int64_t N, int64_t K, T alpha, const T *A, int64_t rsa, int64_t csa, const T *B,
                     int64_t ldb, bool accumulate, T *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++) {
        T *c = C + i * ldc;
        if (!accumulate)
            for (int64_t j = 0; j < N; j++) c[j] = 0;
        for (int64_t k = 0; k < K; k++) {
            T a = alpha * A[i * rsa + k * csa];
            const T *b = B + k * ldb;
            for (int64_t j = 0; j < N; j++) c[j] += a * b[j];
        }
    }
}

static T FN(row_fwd)(T *s, int64_t n, int64_t c0, int64_t c1, T c, const T *bias, int64_t bs, T bmul, T *m, T *l) {
    T mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) {
        if (j < c0 || j >= c1) {
            s[j] = 0;
            continue;
        }
        s[j] = s[j] * c + (bias ? bias[j * bs] * bmul : 0);
        if (s[j] > mx) mx = s[j];
    }
    T mnew = *m > mx ? *m : mx;
    if (mnew == -INFINITY) { /* nothing visible yet: the row stays empty */
        for (int64_t j = c0; j < c1; j++) s[j] = 0;
        return 1;
    }
    T sum = 0;
    for (int64_t j = c0; j < c1; j++) sum += s[j] = exp2(s[j] - mnew);
    T alpha = exp2(*m - mnew);
    *l = *l * alpha + sum;
    *m = mnew;
    return alpha;
}

static void FN(row_bwd)(T *s, T *da, int64_t n, int64_t c0, int64_t c1, T c, const T *bias, int64_t bs, T bmul, T m,
                        T ls, T D, const T *z) {
    for (int64_t j = 0; j < n; j++) {
        if (j < c0 || j >= c1) {
            s[j] = da[j] = 0;
            continue;
        }
        T t = s[j] * c + (bias ? bias[j * bs] * bmul : 0);
        T p = exp2((t - m) - ls), zj = z ? z[j] : 1;
        s[j] = p * zj;
        da[j] = p * (da[j] * zj - D);
    }
}

static void FN(transpose)(const T *src, int64_t lds, int64_t rows, int64_t cols, T *dst, int64_t ldd) {
    for (int64_t j = 0; j < rows; j++)
        for (int64_t c = 0; c < cols; c++) dst[c * ldd + j] = src[j * lds + c];
}
#endif
