/* The portable GEMM (-Dblas=none) for one element type, included by gemm.c once with
 * T = float and once with T = double (FN(heed_gemm) is heed_gemm_f32 or heed_gemm_f64).
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
