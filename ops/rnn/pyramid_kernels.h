/* The kernels of pyramid.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: pyramid.c; steps is the input's time length (T there). */

static void FN(pyramid_backward_kernel)(heed_tensor *y, void *gx, heed_tensor *x, heed_graph *g, int64_t steps,
                                        int64_t B, const pyr_saved *sv, bool bm, int64_t F) {
    const T *dy = y->grad;
    T *dx = gx;
#pragma omp parallel for if (x->numel > 65536) schedule(static) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t s = 0; s < steps; s++)
        for (int64_t b = 0; b < B; b++) {
            if (sv->len && s >= sv->len[b]) continue;
            const T *src = dy + y_at(bm, steps, B, F, s, b);
            T *dst = dx + x_at(bm, steps, B, F, s, b);
            for (int64_t f = 0; f < F; f++) dst[f] += src[f];
        }
}

static void FN(pyramid_kernel)(heed_tensor *x, heed_tensor *y, heed_graph *g, int64_t steps, int64_t T2, int64_t B,
                               bool bm, int64_t F, const int64_t *lengths) {
    const T *X = x->data;
    T *Y = y->data;
#pragma omp parallel for if (y->numel > 65536) schedule(static) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t s = 0; s < 2 * T2; s++)
        for (int64_t b = 0; b < B; b++) {
            T *dst = Y + y_at(bm, steps, B, F, s, b);
            if (s >= steps || (lengths && s >= lengths[b])) memset(dst, 0, (size_t)F * sizeof(T));
            else memcpy(dst, X + x_at(bm, steps, B, F, s, b), (size_t)F * sizeof(T));
        }
}
