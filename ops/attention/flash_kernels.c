/* Tile primitives of flash attention (contracts in internal.h): a small GEMM,
 * the online-softmax step of a score row, its backward, and a tile transpose.
 *
 * Portable loops serve f64 (the readable reference) and f32 on CPUs without AVX2. The
 * f32 AVX2/FMA versions are where the speed is:
 *  - gemm: a 6x16 register-blocked micro-kernel (12 ymm accumulators, two B vectors and
 *    one broadcast of A per k), the classic shape that keeps both FMA pipes busy. A may be
 *    row-major (csa == 1) or transposed (rsa == 1); each gets its own specialised loop so
 *    the addressing is one pointer bump per k.
 *  - exp2 from SLEEF (Sleef_exp2f8_u10avx2, 1-ulp); base 2 because log2(e) folds into the
 *    score scale for free.
 *  - transpose: 8x8 in-register blocks (unpack / shuffle / permute2f128). */
#include "internal.h"

#include <immintrin.h>
#include "../../graph/simd.h"

/* ---------------------------------------------------------------- portable */

#define PORTABLE_KERNELS(T, SUF)                                                                                       \
    static void gemm_##SUF(int64_t M, int64_t N, int64_t K, T alpha, const T *A, int64_t rsa, int64_t csa, const T *B, \
                           int64_t ldb, bool accumulate, T *C, int64_t ldc) {                                         \
        for (int64_t i = 0; i < M; i++) {                                                                              \
            T *c = C + i * ldc;                                                                                        \
            if (!accumulate)                                                                                           \
                for (int64_t j = 0; j < N; j++) c[j] = 0;                                                              \
            for (int64_t k = 0; k < K; k++) {                                                                          \
                T a = alpha * A[i * rsa + k * csa];                                                                    \
                const T *b = B + k * ldb;                                                                              \
                for (int64_t j = 0; j < N; j++) c[j] += a * b[j];                                                      \
            }                                                                                                          \
        }                                                                                                              \
    }                                                                                                                  \
    static T row_fwd_##SUF(T *s, int64_t n, int64_t c0, int64_t c1, T c, const T *bias, int64_t bs, T bmul, T *m,      \
                           T *l) {                                                                                     \
        T mx = -INFINITY;                                                                                              \
        for (int64_t j = 0; j < n; j++) {                                                                              \
            if (j < c0 || j >= c1) {                                                                                   \
                s[j] = 0;                                                                                              \
                continue;                                                                                              \
            }                                                                                                          \
            s[j] = s[j] * c + (bias ? bias[j * bs] * bmul : 0);                                                        \
            if (s[j] > mx) mx = s[j];                                                                                  \
        }                                                                                                              \
        T mnew = *m > mx ? *m : mx;                                                                                    \
        if (mnew == -INFINITY) { /* nothing visible yet: the row stays empty */                                        \
            for (int64_t j = c0; j < c1; j++) s[j] = 0;                                                                \
            return 1;                                                                                                  \
        }                                                                                                              \
        T sum = 0;                                                                                                     \
        for (int64_t j = c0; j < c1; j++) sum += s[j] = exp2(s[j] - mnew);                                             \
        T alpha = exp2(*m - mnew);                                                                                     \
        *l = *l * alpha + sum;                                                                                         \
        *m = mnew;                                                                                                     \
        return alpha;                                                                                                  \
    }                                                                                                                  \
    static void row_bwd_##SUF(T *s, T *da, int64_t n, int64_t c0, int64_t c1, T c, const T *bias, int64_t bs, T bmul,  \
                              T m, T ls, T D, const T *z) {                                                            \
        for (int64_t j = 0; j < n; j++) {                                                                              \
            if (j < c0 || j >= c1) {                                                                                   \
                s[j] = da[j] = 0;                                                                                      \
                continue;                                                                                              \
            }                                                                                                          \
            T t = s[j] * c + (bias ? bias[j * bs] * bmul : 0);                                                         \
            T p = exp2((t - m) - ls), zj = z ? z[j] : 1;                                                               \
            s[j] = p * zj;                                                                                             \
            da[j] = p * (da[j] * zj - D);                                                                              \
        }                                                                                                              \
    }                                                                                                                  \
    static void transpose_##SUF(const T *src, int64_t lds, int64_t rows, int64_t cols, T *dst, int64_t ldd) {         \
        for (int64_t j = 0; j < rows; j++)                                                                             \
            for (int64_t c = 0; c < cols; c++) dst[c * ldd + j] = src[j * lds + c];                                    \
    }

#include <tgmath.h>
PORTABLE_KERNELS(float, f32)
PORTABLE_KERNELS(double, f64)

static const flash_kernels_f32 portable_f32 = {gemm_f32, row_fwd_f32, row_bwd_f32, transpose_f32};
static const flash_kernels_f64 portable_f64 = {gemm_f64, row_fwd_f64, row_bwd_f64, transpose_f64};

/* ---------------------------------------------------------------- AVX2 + FMA */

#define AVX2 HEED_AVX2
#define MR 6

/* C[mr x 16] (+)= alpha * A[mr x K] B[K x 16]. mr and trans are constants at every call
 * site, so the compiler unrolls the row loops and keeps the 2*mr accumulators in registers. */
static inline __attribute__((always_inline)) AVX2 void micro_6x16(const int mr, const bool trans, int64_t K, float alpha,
                                                                 const float *A, int64_t rsa, int64_t csa,
                                                                 const float *B, int64_t ldb, bool accumulate,
                                                                 float *C, int64_t ldc) {
    __m256 c0[MR], c1[MR];
    for (int r = 0; r < mr; r++) c0[r] = c1[r] = _mm256_setzero_ps();
    if (trans) { /* A[r + k*csa]: the mr values of one k are adjacent */
        for (int64_t k = 0; k < K; k++, A += csa, B += ldb) {
            __m256 b0 = _mm256_loadu_ps(B), b1 = _mm256_loadu_ps(B + 8);
            for (int r = 0; r < mr; r++) {
                __m256 a = _mm256_broadcast_ss(A + r);
                c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
                c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
            }
        }
    } else { /* A[r*rsa + k] */
        for (int64_t k = 0; k < K; k++, B += ldb) {
            __m256 b0 = _mm256_loadu_ps(B), b1 = _mm256_loadu_ps(B + 8);
            for (int r = 0; r < mr; r++) {
                __m256 a = _mm256_broadcast_ss(A + r * rsa + k);
                c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
                c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
            }
        }
    }
    __m256 va = _mm256_set1_ps(alpha);
    for (int r = 0; r < mr; r++) {
        float *c = C + r * ldc;
        if (accumulate) {
            _mm256_storeu_ps(c, _mm256_fmadd_ps(va, c0[r], _mm256_loadu_ps(c)));
            _mm256_storeu_ps(c + 8, _mm256_fmadd_ps(va, c1[r], _mm256_loadu_ps(c + 8)));
        } else {
            _mm256_storeu_ps(c, _mm256_mul_ps(va, c0[r]));
            _mm256_storeu_ps(c + 8, _mm256_mul_ps(va, c1[r]));
        }
    }
}

#define MICRO_CASES(TRANS)                                                                                             \
    switch (mr) {                                                                                                      \
    case 6: micro_6x16(6, TRANS, K, alpha, a, rsa, csa, b, ldb, accumulate, c, ldc); break;                            \
    case 5: micro_6x16(5, TRANS, K, alpha, a, rsa, csa, b, ldb, accumulate, c, ldc); break;                            \
    case 4: micro_6x16(4, TRANS, K, alpha, a, rsa, csa, b, ldb, accumulate, c, ldc); break;                            \
    case 3: micro_6x16(3, TRANS, K, alpha, a, rsa, csa, b, ldb, accumulate, c, ldc); break;                            \
    case 2: micro_6x16(2, TRANS, K, alpha, a, rsa, csa, b, ldb, accumulate, c, ldc); break;                            \
    default: micro_6x16(1, TRANS, K, alpha, a, rsa, csa, b, ldb, accumulate, c, ldc); break;                           \
    }

/* Column panels of 16 outside, row strips of 6 inside: one K x 16 panel of B stays in L1
 * while A streams past it. */
static AVX2 void gemm_avx2(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t rsa, int64_t csa,
                           const float *B, int64_t ldb, bool accumulate, float *C, int64_t ldc) {
    bool trans = csa != 1;
    for (int64_t jc = 0; jc < N; jc += 16)
        for (int64_t ir = 0; ir < M; ir += MR) {
            int mr = M - ir < MR ? (int)(M - ir) : MR;
            const float *a = A + ir * rsa, *b = B + jc;
            float *c = C + ir * ldc + jc;
            if (trans) MICRO_CASES(true) else MICRO_CASES(false)
        }
}

/* t = s*c + bias*bmul for the 8 entries at j (bias stride 0 or 1). */
static AVX2 inline __m256 score8(const float *s, const float *bias, int64_t bs, int64_t j, __m256 vc, __m256 vb) {
    __m256 t = _mm256_mul_ps(_mm256_loadu_ps(s + j), vc);
    if (bias) t = _mm256_fmadd_ps(bs ? _mm256_loadu_ps(bias + j) : _mm256_set1_ps(bias[0]), vb, t);
    return t;
}

static AVX2 float row_fwd_avx2(float *s, int64_t n, int64_t c0, int64_t c1, float c, const float *bias, int64_t bs,
                               float bmul, float *m, float *l) {
    if (c0 >= c1) {
        memset(s, 0, (size_t)n * sizeof *s);
        return 1;
    }
    memset(s, 0, (size_t)c0 * sizeof *s);
    memset(s + c1, 0, (size_t)(n - c1) * sizeof *s);
    __m256 vc = _mm256_set1_ps(c), vb = _mm256_set1_ps(bmul), vmax = _mm256_set1_ps(-INFINITY);
    int64_t j = c0;
    for (; j + 8 <= c1; j += 8) {
        __m256 t = score8(s, bias, bs, j, vc, vb);
        _mm256_storeu_ps(s + j, t);
        vmax = _mm256_max_ps(vmax, t);
    }
    float mx = heed__hmax8(vmax);
    for (; j < c1; j++) {
        s[j] = s[j] * c + (bias ? bias[j * bs] * bmul : 0);
        if (s[j] > mx) mx = s[j];
    }
    float mnew = *m > mx ? *m : mx;
    if (mnew == -INFINITY) {
        memset(s + c0, 0, (size_t)(c1 - c0) * sizeof *s);
        return 1;
    }
    __m256 vm = _mm256_set1_ps(mnew), vsum = _mm256_setzero_ps();
    for (j = c0; j + 8 <= c1; j += 8) {
        __m256 p = Sleef_exp2f8_u10avx2(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
        _mm256_storeu_ps(s + j, p);
        vsum = _mm256_add_ps(vsum, p);
    }
    float sum = heed__hsum8(vsum);
    for (; j < c1; j++) sum += s[j] = exp2f(s[j] - mnew);
    float alpha = exp2f(*m - mnew);
    *l = *l * alpha + sum;
    *m = mnew;
    return alpha;
}

static AVX2 void row_bwd_avx2(float *s, float *da, int64_t n, int64_t c0, int64_t c1, float c, const float *bias,
                              int64_t bs, float bmul, float m, float ls, float D, const float *z) {
    if (c0 > c1) c0 = c1;
    memset(s, 0, (size_t)c0 * sizeof *s);
    memset(da, 0, (size_t)c0 * sizeof *da);
    memset(s + c1, 0, (size_t)(n - c1) * sizeof *s);
    memset(da + c1, 0, (size_t)(n - c1) * sizeof *da);
    __m256 vc = _mm256_set1_ps(c), vb = _mm256_set1_ps(bmul), vm = _mm256_set1_ps(m), vls = _mm256_set1_ps(ls),
           vD = _mm256_set1_ps(D);
    int64_t j = c0;
    for (; j + 8 <= c1; j += 8) {
        __m256 p = Sleef_exp2f8_u10avx2(_mm256_sub_ps(_mm256_sub_ps(score8(s, bias, bs, j, vc, vb), vm), vls));
        __m256 g = _mm256_loadu_ps(da + j);
        if (z) {
            __m256 vz = _mm256_loadu_ps(z + j);
            _mm256_storeu_ps(s + j, _mm256_mul_ps(p, vz));
            _mm256_storeu_ps(da + j, _mm256_mul_ps(p, _mm256_fmsub_ps(g, vz, vD)));
        } else {
            _mm256_storeu_ps(s + j, p);
            _mm256_storeu_ps(da + j, _mm256_mul_ps(p, _mm256_sub_ps(g, vD)));
        }
    }
    for (; j < c1; j++) {
        float t = s[j] * c + (bias ? bias[j * bs] * bmul : 0);
        float p = exp2f((t - m) - ls), zj = z ? z[j] : 1;
        s[j] = p * zj;
        da[j] = p * (da[j] * zj - D);
    }
}

static AVX2 void transpose_avx2(const float *src, int64_t lds, int64_t rows, int64_t cols, float *dst, int64_t ldd) {
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

static const flash_kernels_f32 avx2_f32 = {gemm_avx2, row_fwd_avx2, row_bwd_avx2, transpose_avx2};

const flash_kernels_f32 *flash_kernels_f32_get(void) {
    if (heed__have_avx2()) return &avx2_f32; /* false under heed__force_scalar and HEED_ISA=scalar */
    return &portable_f32;
}

const flash_kernels_f64 *flash_kernels_f64_get(void) { return &portable_f64; }
