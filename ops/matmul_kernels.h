/* The kernels of matmul.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: matmul.c. */

static void FN(linear_backward_kernel)(heed_tensor *y, void *gbias, int64_t M, int64_t out, heed_graph *g) {
    const T *dy = y->grad;
    T *db = gbias;
#pragma omp parallel for if (M * out > 65536) num_threads(heed_ctx_threads(g->ctx))
    for (int64_t j = 0; j < out; j++) {
        double s = 0;
        for (int64_t i = 0; i < M; i++) s += dy[i * out + j];
        db[j] += (T)s;
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
