/* The kernels of embed.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: embed.c. */

static void FN(embedding_backward_kernel)(void *gw_, heed_tensor *y, int64_t n, int64_t D, heed_graph *g, int64_t V,
                                          const embed_saved *s, int64_t *start, int64_t *pos) {
    T *gw = gw_;
    const T *dy = y->grad;
#pragma omp parallel for schedule(dynamic, 64) if (n * D > PARALLEL_MIN) num_threads(heed_ctx_threads(g->ctx))
    for (int64_t v = 0; v < V; v++) {
        if (v == s->pad) continue;
        T *dst = gw + v * D;
        for (int64_t k = start[v]; k < start[v + 1]; k++) {
            const T *src = dy + pos[k] * D;
            for (int64_t d = 0; d < D; d++) dst[d] += src[d];
        }
    }
}
