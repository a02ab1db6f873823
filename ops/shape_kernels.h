/* The kernels of shape.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: shape.c. */

static void FN(add_into_kernel)(void *gx_, const void *dy_, int64_t n, int threads) {
    T *gx = gx_;
    const T *dy = dy_;
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN) num_threads(threads)
    for (int64_t i = 0; i < n; i++) gx[i] += dy[i];
}

static void FN(permute_move_kernel)(void *x_, void *y_, int64_t numel, int threads, const perm_plan *p, bool scatter) {
    T *x = x_, *y = y_;
#pragma omp parallel for collapse(2) schedule(static) if (numel > PARALLEL_MIN) num_threads(threads)
    for (int64_t i0 = 0; i0 < p->n[0]; i0++)
        for (int64_t i1 = 0; i1 < p->n[1]; i1++)
            for (int64_t i2 = 0; i2 < p->n[2]; i2++) {
                int64_t o = ((i0 * p->n[1] + i1) * p->n[2] + i2) * p->n[3];
                const int64_t base = i0 * p->xs[0] + i1 * p->xs[1] + i2 * p->xs[2], s3 = p->xs[3];
                if (scatter)
                    for (int64_t i3 = 0; i3 < p->n[3]; i3++) x[base + i3 * s3] += y[o + i3];
                else
                    for (int64_t i3 = 0; i3 < p->n[3]; i3++) y[o + i3] = x[base + i3 * s3];
            }
}

static void FN(slice_backward_kernel)(void *gx_, heed_tensor *y, heed_graph *g, int64_t outer, int64_t len,
                                      int64_t inner, int64_t dim, int64_t start) {
    T *gx = gx_;
    const T *dy = y->grad;
#pragma omp parallel for schedule(static) if (y->numel > PARALLEL_MIN) num_threads(heed_ctx_threads(g->ctx))
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < len * inner; i++) gx[(o * dim + start) * inner + i] += dy[o * len * inner + i];
}

static void FN(cat_backward_kernel)(heed_tensor *y, heed_graph *g, const cat_plan *p, heed_node *nd, void **gx) {
    const T *dy = y->grad;
#pragma omp parallel for schedule(static) if (y->numel > PARALLEL_MIN) num_threads(heed_ctx_threads(g->ctx))
    for (int64_t o = 0; o < p->outer; o++)
        for (int k = 0; k < nd->n_in; k++) {
            T *gk = gx[k];
            if (!gk) continue;
            const T *src = dy + o * p->total + p->off[k];
            T *dst = gk + o * p->width[k];
            for (int64_t i = 0; i < p->width[k]; i++) dst[i] += src[i];
        }
}

static void FN(index_select_backward_kernel)(void *gx_, heed_tensor *y, heed_graph *g, int64_t tasks, int64_t chunks,
                                             int64_t inner, int64_t n, int64_t dim, const int64_t *idx) {
    T *gx = gx_;
    const T *dy = y->grad;
#pragma omp parallel for schedule(static) if (y->numel > PARALLEL_MIN) num_threads(heed_ctx_threads(g->ctx))
    for (int64_t t = 0; t < tasks; t++) {
        int64_t o = t / chunks, c0 = (t % chunks) * COL_CHUNK;
        int64_t c1 = c0 + COL_CHUNK < inner ? c0 + COL_CHUNK : inner;
        for (int64_t j = 0; j < n; j++) {
            T *dst = gx + (o * dim + idx[j]) * inner;
            const T *src = dy + (o * n + j) * inner;
            for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
        }
    }
}
