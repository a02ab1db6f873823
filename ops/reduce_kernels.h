/* The kernels of reduce.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: reduce.c. */

static void FN(reduce_backward_kernel)(heed_tensor *y, void *gx_, red_kind kind, red_plan p, heed_tensor *x,
                                       heed_graph *g, const int64_t *arg) {
    const T *dy = y->grad;
    T *gx = gx_;
    double scale = kind == RED_MEAN ? 1.0 / (double)p.n : 1.0;
#pragma omp parallel for if (x->numel > 65536) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t o = 0; o < p.outer; o++)
        for (int64_t i = 0; i < p.inner; i++) {
            T d = (T)(dy[o * p.inner + i] * scale);
            if (kind == RED_MAX) {
                int64_t j = arg[o * p.inner + i];
                if (j >= 0) gx[(o * p.n + j) * p.inner + i] += d;
            } else {
                for (int64_t j = 0; j < p.n; j++) gx[(o * p.n + j) * p.inner + i] += d;
            }
        }
}

static void FN(reduce_kernel)(heed_tensor *x, heed_tensor *y, heed_graph *g, red_plan p, red_kind kind, int64_t *arg) {
    const T *X = x->data;
    T *Y = y->data;
#pragma omp parallel for if (x->numel > 65536) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t o = 0; o < p.outer; o++)
        for (int64_t i = 0; i < p.inner; i++) {
            const T *xs = X + o * p.n * p.inner + i;
            if (kind == RED_MAX) {
                int64_t best = 0; /* NaN propagates: a NaN is taken as the max */
                for (int64_t j = 1; j < p.n; j++)
                    if (xs[j * p.inner] > xs[best * p.inner] ||
                        (xs[j * p.inner] != xs[j * p.inner] && xs[best * p.inner] == xs[best * p.inner]))
                        best = j;
                Y[o * p.inner + i] = xs[best * p.inner];
                if (arg) arg[o * p.inner + i] = best;
            } else {
                double s = 0;
                for (int64_t j = 0; j < p.n; j++) s += xs[j * p.inner];
                Y[o * p.inner + i] = (T)(kind == RED_MEAN ? (p.n ? s / (double)p.n : NAN) : s);
            }
        }
}

/* y_j = sum_{k <= j} x_k along the middle dim of [outer, n, inner] (dst = y); backward
 * (reverse) dx_k += sum_{j >= k} dy_j (src = dy, dst = dx). Sums in double. */
static void FN(cumsum_kernel)(const T *src, T *dst, red_plan p, bool reverse, int64_t numel, int threads) {
#pragma omp parallel for if (numel > 65536) num_threads(threads)
    for (int64_t o = 0; o < p.outer; o++)
        for (int64_t i = 0; i < p.inner; i++) {
            double s = 0;
            for (int64_t step = 0; step < p.n; step++) {
                int64_t at = (o * p.n + (reverse ? p.n - 1 - step : step)) * p.inner + i;
                s += src[at];
                if (reverse) dst[at] += (T)s;
                else dst[at] = (T)s;
            }
        }
}
