/* Row-major GEMM used by all ops: C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C. */
#ifndef HEED_GEMM_H
#define HEED_GEMM_H
#include "heed/core.h"

void heed_gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                   const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
void heed_gemm_f64(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double *A, int64_t lda,
                   const double *B, int64_t ldb, double beta, double *C, int64_t ldc);
/* Either dtype (A, B, C all of dt). */
void heed_gemm(heed_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const void *A,
               int64_t lda, const void *B, int64_t ldb, double beta, void *C, int64_t ldc);
const char *heed_gemm_backend(void); /* "cblas" or "portable" */
#endif
