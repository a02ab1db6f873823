/* GEMM for every op that multiplies matrices: the CBLAS when the build found one, else a
 * portable blocked loop (correct everywhere, far slower). Row-major:
 *   C[M,N] = alpha * op(A) op(B) + beta * C,  op(A) is [M,K], op(B) is [K,N]. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "../graph/internal.h"
#include "gemm.h"

#include <omp.h>

/* The BLAS (and the portable loop) run on OpenMP's count, which heed must not change for
 * the process. While other processes keep CPUs busy (graph/threads.c) a GEMM gets only
 * the free ones: it runs inside a one-thread region whose own count -- a per-task setting
 * that ends with the region -- is set to them (OpenBLAS runs on one thread inside any
 * region, which is what a 2-core machine with one busy CPU wants). Inside a real parallel
 * region the BLAS is single-threaded anyway. */
#define GEMM_ON_FREE_CPUS(call)                                                                                        \
    do {                                                                                                               \
        int all_ = omp_in_parallel() ? 1 : omp_get_max_threads();                                                      \
        int free_ = all_ > 1 ? heed__cpus_free() : all_;                                                               \
        if (free_ < all_) {                                                                                            \
            _Pragma("omp parallel num_threads(1)")                                                                     \
            {                                                                                                          \
                omp_set_num_threads(free_);                                                                            \
                call;                                                                                                  \
            }                                                                                                          \
        } else {                                                                                                       \
            call;                                                                                                      \
        }                                                                                                              \
    } while (0)

#ifdef HEED_HAVE_CBLAS
#include <cblas.h>

void heed_gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                   const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    GEMM_ON_FREE_CPUS(cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M,
                                  (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc));
}

void heed_gemm_f64(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double *A, int64_t lda,
                   const double *B, int64_t ldb, double beta, double *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    GEMM_ON_FREE_CPUS(cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M,
                                  (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc));
}

const char *heed_gemm_backend(void) { return "cblas"; }
#else

/* Like the BLAS it stands in for, the fallback runs on OpenMP's default thread count (the
 * BLAS's own setting, not heed_ctx_opts.threads: docs/design.md, "Kernels"), or the free
 * CPUs when fewer. */
static int portable_threads(void) {
    int all = omp_get_max_threads(), free = all > 1 ? heed__cpus_free() : all;
    return free < all ? free : all;
}
#define T float
#define FN(name) name##_f32
#include "gemm.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "gemm.c"
#undef T
#undef FN

const char *heed_gemm_backend(void) { return "portable"; }
#endif

void heed_gemm(heed_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const void *A,
               int64_t lda, const void *B, int64_t ldb, double beta, void *C, int64_t ldc) {
    if (dt == HEED_F32) heed_gemm_f32(ta, tb, M, N, K, (float)alpha, A, lda, B, ldb, (float)beta, C, ldc);
    else heed_gemm_f64(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

/* The portable GEMM (-Dblas=none): FN(heed_gemm) is heed_gemm_f32 or heed_gemm_f64.
 * C = alpha op(A) op(B) + beta C, row-major; rows of C split over threads (OpenMP's count,
 * fewer while other processes keep CPUs busy: rows are independent). */

void FN(heed_gemm)(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T *A, int64_t lda, const T *B,
                   int64_t ldb, T beta, T *C, int64_t ldc) {
#pragma omp parallel for if (M * N * K > 65536) num_threads(portable_threads())
    for (int64_t i = 0; i < M; i++) {
        T *c = C + i * ldc;
        for (int64_t j = 0; j < N; j++) c[j] = beta == 0 ? 0 : beta * c[j];
        for (int64_t k = 0; k < K; k++) {
            T a = alpha * (ta ? A[k * lda + i] : A[i * lda + k]);
            if (a == 0) continue;
            if (tb)
                for (int64_t j = 0; j < N; j++) c[j] += a * B[j * ldb + k];
            else
                for (int64_t j = 0; j < N; j++) c[j] += a * B[k * ldb + j];
        }
    }
}
#endif
