/* Inverted dropout. The keep mask is never stored: element i of random op number s keeps
 * when uniform(seed, s, i) >= p, and backward draws the same numbers again.
 *   y = x * m / (1 - p),   dx = dy * m / (1 - p). */
#include "../graph/internal.h"

static void apply_mask(heed_dtype dt, const void *src, void *dst, int64_t n, bool accumulate, uint64_t seed, uint64_t stream,
                       double p) {
    HEED_FOR_DTYPE(dt, T, {
        const T *x = src;
        T *y = dst;
        T scale = (T)(1.0 / (1.0 - p));
        _Pragma("omp parallel for if (n > 32768)")
        for (int64_t i = 0; i < n; i++) {
            T v = heed__uniform_at(seed, stream, (uint64_t)i) >= p ? x[i] * scale : 0;
            y[i] = accumulate ? y[i] + v : v;
        }
    });
}

static void dropout_backward(heed_graph *g, heed_node *n) {
    heed_tensor *x = n->in[0], *y = n->out[0];
    void *gx = heed__grad(g, x);
    if (gx) apply_mask(x->dtype, y->grad, gx, x->numel, true, (uint64_t)n->iarg[0], (uint64_t)n->iarg[1], n->farg[0]);
}

static const heed_op op_dropout = {"heed_dropout", dropout_backward};

heed_tensor *heed_dropout(heed_graph *g, heed_tensor *x, double p) {
    const char *op = "heed_dropout";
    if (!heed__check(g, op, x, "x")) return NULL;
    if (!(p >= 0 && p < 1)) return heed__fail(g, HEED_ERR_ARG, "%s: p = %g (must be in [0, 1))", op, p), NULL;
    if (!g->training || p == 0) return x;
    heed_tensor *y = heed__new(g, op, x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    uint64_t seed = g->ctx->seed, stream = heed__next_stream(g->ctx);
    apply_mask(x->dtype, x->data, y->data, x->numel, false, seed, stream, p);
    heed_node *n = heed__record1(g, &op_dropout, 1, &x, y);
    if (n) {
        n->iarg[0] = (int64_t)seed;
        n->iarg[1] = (int64_t)stream;
        n->farg[0] = p;
    }
    return heed__live(g) ? y : NULL;
}
