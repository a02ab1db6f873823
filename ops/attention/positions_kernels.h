/* The kernels of positions.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: positions.c. */

static void FN(sinusoidal_positions_kernel)(heed_tensor *t, int64_t n, int64_t d, heed_graph *g, int64_t start) {
    T *pe = t->data;
#pragma omp parallel for if (n * d > 65536) num_threads(heed_ctx_threads(g->ctx))
    for (int64_t p = 0; p < n; p++)
        for (int64_t c = 0; c < d; c++) {
            int64_t i2 = c - (c & 1); /* 2i */
            double angle = (double)(start + p) * exp(-log(10000.0) * (double)i2 / (double)d);
            pe[p * d + c] = (T)((c & 1) ? cos(angle) : sin(angle));
        }
}

static void FN(learned_backward_kernel)(heed_tensor *y, void *gt_, int64_t start, int64_t d) {
    const T *dy = y->grad;
    T *gt = (T *)gt_ + start * d;
    for (int64_t i = 0; i < y->numel; i++) gt[i] += dy[i];
}

static void FN(relpos_backward_kernel)(heed_tensor *y, void *gt_, int64_t H, int64_t nq, int64_t nk, heed_graph *g,
                                       const int32_t *bucket) {
    const T *dy = y->grad;
    T *gt = gt_;
#pragma omp parallel for if (H * nq * nk > 65536) num_threads(heed_ctx_threads(g->ctx))
    for (int64_t h = 0; h < H; h++) /* each thread owns column h of the table */
        for (int64_t ij = 0; ij < nq * nk; ij++) gt[bucket[ij] * H + h] += dy[h * nq * nk + ij];
}

static void FN(relative_position_bias_kernel)(heed_tensor *table, heed_tensor *y, int64_t H, int64_t nq, int64_t nk,
                                              heed_graph *g, int32_t *bucket) {
    const T *tb = table->data;
    T *Y = y->data;
#pragma omp parallel for if (H * nq * nk > 65536) num_threads(heed_ctx_threads(g->ctx))
    for (int64_t h = 0; h < H; h++)
        for (int64_t ij = 0; ij < nq * nk; ij++) Y[h * nq * nk + ij] = tb[bucket[ij] * H + h];
}
