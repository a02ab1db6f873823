/* The kernels of unary.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: unary.c. */

static void FN(unary_forward_kernel)(const void *x_, void *y_, int64_t n, int threads, unary_kind k, double a) {
    const T *x = x_;
    T *y = y_;
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN) num_threads(threads)
    for (int64_t i = 0; i < n; i++) y[i] = (T)fwd1(k, x[i], a);
}

static void FN(unary_backward_kernel)(heed_tensor *xt, heed_tensor *yt, void *gx_, int64_t n, heed_graph *g,
                                      unary_kind k, double a) {
    const T *x = xt->data, *y = yt->data, *dy = yt->grad;
    T *gx = gx_;
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN) num_threads(heed_ctx_threads(g->ctx))
    for (int64_t i = 0; i < n; i++) gx[i] += (T)(dy[i] * grad1(k, x[i], y[i], a));
}
