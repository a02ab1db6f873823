/* The kernels of matmul.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: matmul.c. */

/* db[j] += sum_i dy[i, j], each column summed in double in row order; the rows are walked
 * once per block of BIAS_COLS columns, whose sums run side by side (a column at a time was
 * one long dependent chain of strided loads). */
static void FN(linear_backward_kernel)(heed_tensor *y, void *gbias, int64_t M, int64_t out, heed_graph *g) {
    enum { BIAS_COLS = 16 };
    const T *dy = y->grad;
    T *db = gbias;
#pragma omp parallel for if (M * out > 65536) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t j0 = 0; j0 < out; j0 += BIAS_COLS) {
        int64_t nj = out - j0 < BIAS_COLS ? out - j0 : BIAS_COLS;
        double s[BIAS_COLS] = {0};
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < nj; j++) s[j] += dy[i * out + j0 + j];
        for (int64_t j = 0; j < nj; j++) db[j0 + j] += (T)s[j];
    }
}

static void FN(linear_forward_kernel)(heed_tensor *y, heed_tensor *bias, int64_t M, int64_t out, heed_tensor *x,
                                      int64_t in, heed_tensor *w) {
    T *Y = y->data;
    const T *b = bias ? bias->data : NULL;
    if (b)
        for (int64_t i = 0; i < M; i++) memcpy(Y + i * out, b, (size_t)out * sizeof(T));
    heed_gemm(x->dtype, false, true, M, out, in, 1, x->data, in, w->data, in, b ? 1 : 0, Y, out);
}
