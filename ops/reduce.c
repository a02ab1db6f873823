/* Reductions over one dim or over everything: sum, mean, max; and the running sum cumsum.
 * A tensor is viewed as [outer, n, inner] around the reduced dim; sums accumulate in
 * double.  sum: dx = dy (broadcast);  mean: dx = dy / n;  max: dx = dy at the first argmax;
 * cumsum: y_j = sum_{k <= j} x_k, dx_k = sum_{j >= k} dy_j (a running sum from the end). */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "../graph/internal.h"
#include "heed/reduce.h"

#include <math.h>

typedef enum { RED_SUM, RED_MEAN, RED_MAX, RED_COUNT } red_kind;

typedef struct {
    int64_t outer, n, inner;
} red_plan;

#define T float
#define FN(name) name##_f32
#include "reduce.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "reduce.c"
#undef T
#undef FN

static void reduce_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *x = nd->in[0], *y = nd->out[0];
    red_kind kind = (red_kind)nd->iarg[0];
    red_plan p = {nd->iarg[1], nd->iarg[2], nd->iarg[3]};
    const int64_t *arg = nd->saved;
    void *gx_ = heed_grad_buffer(g, x);
    if (!gx_) return;
    if (x->dtype == HEED_F32) reduce_backward_kernel_f32(y, gx_, kind, p, x, g, arg);
    else reduce_backward_kernel_f64(y, gx_, kind, p, x, g, arg);
}

static const heed_op red_ops[] = {
    [RED_SUM] = {"heed_sum", reduce_backward},
    [RED_MEAN] = {"heed_mean", reduce_backward},
    [RED_MAX] = {"heed_max", reduce_backward},
};
_Static_assert(sizeof red_ops / sizeof *red_ops == RED_COUNT, "one op per red_kind");

/* dim = INT32_MIN reduces everything to a scalar. */
static heed_tensor *reduce(heed_graph *g, red_kind kind, heed_tensor *x, int dim, bool keepdim) {
    const char *op = red_ops[kind].name;
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    bool all = dim == INT32_MIN;
    int ax = all ? 0 : heed__dim(dim, x->ndim);
    if (!all && ax < 0)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: dim %d out of range for x%s", op, dim, HEED_S(x)), NULL;
    red_plan p = {1, all ? x->numel : (x->ndim ? x->shape[ax] : 1), 1};
    if (!all) {
        for (int i = 0; i < ax; i++) p.outer *= x->shape[i];
        for (int i = ax + 1; i < x->ndim; i++) p.inner *= x->shape[i];
    }
    if (kind == RED_MAX && p.n == 0)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: x%s: max over an empty dim", op, HEED_S(x)), NULL;
    int64_t shape[HEED_MAX_DIMS];
    int nd = 0;
    if (!all)
        for (int i = 0; i < x->ndim; i++) {
            if (i != ax) shape[nd++] = x->shape[i];
            else if (keepdim) shape[nd++] = 1;
        }
    heed_tensor *y = heed__new(g, op, x->dtype, nd, shape);
    if (!y) return NULL;
    /* the argmax positions are kept only for backward */
    bool keep_arg = kind == RED_MAX && heed_graph_records(g, 1, &x);
    int64_t *arg = keep_arg ? heed_graph_alloc(g, (size_t)(p.outer * p.inner) * sizeof *arg) : NULL;
    if (keep_arg && !arg) return NULL;
    if (x->dtype == HEED_F32) reduce_kernel_f32(x, y, g, p, kind, arg);
    else reduce_kernel_f64(x, y, g, p, kind, arg);
    heed_node *n = heed_record(g, &red_ops[kind], 1, &x, 1, &y);
    if (n) {
        n->iarg[0] = kind;
        n->iarg[1] = p.outer, n->iarg[2] = p.n, n->iarg[3] = p.inner;
        n->saved = arg;
    }
    return heed_graph_ok(g) ? y : NULL;
}

heed_tensor *heed_sum(heed_graph *g, heed_tensor *x, int dim, bool keepdim) {
    return reduce(g, RED_SUM, x, dim, keepdim);
}
heed_tensor *heed_mean(heed_graph *g, heed_tensor *x, int dim, bool keepdim) {
    return reduce(g, RED_MEAN, x, dim, keepdim);
}
heed_tensor *heed_max(heed_graph *g, heed_tensor *x, int dim, bool keepdim) {
    return reduce(g, RED_MAX, x, dim, keepdim);
}
heed_tensor *heed_sum_all(heed_graph *g, heed_tensor *x) { return reduce(g, RED_SUM, x, INT32_MIN, false); }
heed_tensor *heed_mean_all(heed_graph *g, heed_tensor *x) { return reduce(g, RED_MEAN, x, INT32_MIN, false); }
heed_tensor *heed_max_all(heed_graph *g, heed_tensor *x) { return reduce(g, RED_MAX, x, INT32_MIN, false); }

/* ---------------------------------------------------------------- cumsum */

static void cumsum_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *x = nd->in[0], *y = nd->out[0];
    void *gx = heed_grad_buffer(g, x);
    if (!gx) return;
    red_plan p = {nd->iarg[0], nd->iarg[1], nd->iarg[2]};
    int threads = heed_ctx_threads_now(g->ctx); /* rows are independent: the team may shrink */
    if (x->dtype == HEED_F32) cumsum_kernel_f32(y->grad, gx, p, true, x->numel, threads);
    else cumsum_kernel_f64(y->grad, gx, p, true, x->numel, threads);
}

static const heed_op op_cumsum = {"heed_cumsum", cumsum_backward};

heed_tensor *heed_cumsum(heed_graph *g, heed_tensor *x, int dim) {
    const char *op = op_cumsum.name;
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    int d = heed__dim(dim, x->ndim ? x->ndim : 1); /* a 0-d x is one element along dim 0 */
    if (d < 0) return heed_graph_fail(g, HEED_ERR_ARG, "%s: dim %d out of range for x%s", op, dim, HEED_S(x)), NULL;
    red_plan p = {1, x->ndim ? x->shape[d] : 1, 1};
    for (int i = 0; i < d; i++) p.outer *= x->shape[i];
    for (int i = d + 1; i < x->ndim; i++) p.inner *= x->shape[i];
    heed_tensor *y = heed__new(g, op, x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    int threads = heed_ctx_threads_now(g->ctx); /* rows are independent: the team may shrink */
    if (x->dtype == HEED_F32) cumsum_kernel_f32(x->data, y->data, p, false, x->numel, threads);
    else cumsum_kernel_f64(x->data, y->data, p, false, x->numel, threads);
    heed_node *n = heed_record(g, &op_cumsum, 1, &x, 1, &y);
    if (n) n->iarg[0] = p.outer, n->iarg[1] = p.n, n->iarg[2] = p.inner;
    return heed_graph_ok(g) ? y : NULL;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

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
#endif
