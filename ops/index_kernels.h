/* The kernels of index.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: index.c. */

static void FN(select_backward_kernel)(void *gx_, heed_tensor *y, heed_graph *g, int64_t outer, int64_t inner,
                                       int64_t n, int64_t i) {
    T *gx = gx_;
    const T *dy = y->grad;
#pragma omp parallel for schedule(static) if (y->numel > PARALLEL_MIN) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < inner; c++) gx[(o * n + i) * inner + c] += dy[o * inner + c];
}

/* The ranked entries line_topk keeps in scratch; returns how many. */
static int64_t FN(line_topk_kernel)(const void *xs_, int64_t k, int64_t n, int64_t stride, bool largest,
                                    ranked *scratch) {
    int64_t m = 0;
    const T *xs = xs_;
    if (k <= INSERTION_MAX_K) {
        for (int64_t j = 0; j < n; j++) {
            double v = (double)xs[j * stride];
            if (m == k && !ranks_before(largest, v, j, scratch[m - 1].v, scratch[m - 1].i)) continue;
            int64_t p = m < k ? m++ : m - 1;
            while (p > 0 && ranks_before(largest, v, j, scratch[p - 1].v, scratch[p - 1].i))
                scratch[p] = scratch[p - 1], p--;
            scratch[p] = (ranked){v, j};
        }
    } else {
        for (int64_t j = 0; j < n; j++) scratch[j] = (ranked){(double)xs[j * stride], j};
        qsort(scratch, (size_t)n, sizeof *scratch, largest ? cmp_largest : cmp_smallest);
        m = k;
    }
    return m;
}

static void FN(gather_move_kernel)(void *x_, void *y_, int64_t lines, int64_t n, int threads, const gather_plan *p,
                                   bool scatter) {
    T *x = x_, *y = y_;
#pragma omp parallel for schedule(static) if (lines * n > PARALLEL_MIN) num_threads(threads)
    for (int64_t l = 0; l < lines; l++) {
        int64_t rest = l, yb = 0, xb = 0;
        for (int k = 3; k >= 0; k--) {
            if (k == p->d) continue;
            int64_t c = rest % p->ys[k];
            rest /= p->ys[k];
            yb += c * p->yst[k], xb += c * p->xst[k];
        }
        for (int64_t j = 0; j < n; j++) {
            int64_t py = yb + j * p->yst[p->d], px = xb + p->idx[py] * p->xst[p->d];
            if (scatter) x[px] += y[py];
            else y[py] = x[px];
        }
    }
}
