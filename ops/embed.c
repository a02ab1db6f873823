/* Embedding lookup: y[i, :] = w[ids[i], :] for w[V, D] and ids of any shape (flattened to
 * N positions here); rows whose id is padding_idx are zero and pass no gradient.
 *   dw[v, :] = sum over positions i with ids[i] == v (v != padding_idx) of dy[i, :]
 * Backward groups the positions by row (a counting sort of the ids), so each thread owns
 * whole rows of dw: no two threads write the same row, and every row sums its positions in
 * ascending order, so the result does not depend on the number of threads. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "../graph/internal.h"
#include "heed/shape.h"

#define PARALLEL_MIN 32768

typedef struct {
    int64_t n, V, D, pad;
    int64_t *ids; /* copy of the ids, n entries */
} embed_saved;

#define T float
#define FN(name) name##_f32
#include "embed.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "embed.c"
#undef T
#undef FN

static void embedding_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *w = nd->in[0], *y = nd->out[0];
    const embed_saved *s = nd->saved;
    void *gw_ = heed_grad_buffer(g, w);
    if (!gw_) return;
    int64_t n = s->n, V = s->V, D = s->D;
    /* start[v] .. start[v+1]: the positions with id v, ascending. */
    int64_t *start = heed__zalloc(g, (size_t)(V + 1) * sizeof *start);
    int64_t *pos = heed_graph_alloc(g, (size_t)n * sizeof *pos);
    if (!start || !pos) return;
    for (int64_t i = 0; i < n; i++) start[s->ids[i] + 1]++;
    for (int64_t v = 0; v < V; v++) start[v + 1] += start[v];
    for (int64_t i = 0; i < n; i++) {
        int64_t v = s->ids[i];
        pos[start[v]++] = i;
    }
    for (int64_t v = V; v > 0; v--) start[v] = start[v - 1]; /* the fill advanced each start to the next row's */
    start[0] = 0;
    if (w->dtype == HEED_F32) embedding_backward_kernel_f32(gw_, y, n, D, g, V, s, start, pos);
    else embedding_backward_kernel_f64(gw_, y, n, D, g, V, s, start, pos);
}

static const heed_op op_embedding = {"heed_embedding", embedding_backward};

/* "[1,2]": the multi-index of flat position i in shape s. */
static char *position_str(heed_shape s, int64_t i, char *buf) {
    int64_t idx[HEED_MAX_DIMS];
    for (int k = s.ndim - 1; k >= 0; k--) {
        idx[k] = s.d[k] ? i % s.d[k] : 0;
        i = s.d[k] ? i / s.d[k] : 0;
    }
    int len = snprintf(buf, 64, "[");
    for (int k = 0; k < s.ndim; k++)
        len += snprintf(buf + len, (size_t)(64 - len), "%s%lld", k ? "," : "", (long long)idx[k]);
    snprintf(buf + len, (size_t)(64 - len), "]");
    return buf;
}

heed_tensor *heed_embedding(heed_graph *g, heed_tensor *w, const int64_t *ids, heed_shape ids_shape,
                            int64_t padding_idx) {
    const char *op = "heed_embedding";
    if (!heed_check_tensor(g, op, w, "w")) return NULL;
    if (w->ndim != 2) return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: w%s must be 2-D [V, D]", op, HEED_S(w)), NULL;
    int64_t V = w->shape[0], D = w->shape[1];
    if (ids_shape.ndim < 0 || ids_shape.ndim > HEED_MAX_DIMS - 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: ids have %d dims (0 to %d allowed: the result adds one)", op,
                               ids_shape.ndim, HEED_MAX_DIMS - 1),
               NULL;
    int64_t n = 1, shape[HEED_MAX_DIMS];
    for (int i = 0; i < ids_shape.ndim; i++) {
        if (ids_shape.d[i] < 0 || ids_shape.d[i] > ((int64_t)1 << 40))
            return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: ids dim %d is %lld", op, i, (long long)ids_shape.d[i]), NULL;
        n *= ids_shape.d[i];
        if (n > ((int64_t)1 << 40)) return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: ids shape too large", op), NULL;
        shape[i] = ids_shape.d[i];
    }
    shape[ids_shape.ndim] = D;
    if (n > 0 && !ids) return heed_graph_fail(g, HEED_ERR_ARG, "%s: ids is NULL", op), NULL;
    if (padding_idx >= V)
        return heed_graph_fail(g, HEED_ERR_ARG,
                               "%s: padding_idx %lld is out of range for w%s (must be < %lld, or < 0 for none)", op,
                               (long long)padding_idx, HEED_S(w), (long long)V),
               NULL;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) {
            char at[64];
            return heed_graph_fail(g, HEED_ERR_ARG,
                                   "%s: ids%s (flat position %lld) = %lld is out of range [0, %lld) for w%s", op,
                                   position_str(ids_shape, i, at), (long long)i, (long long)ids[i], (long long)V,
                                   HEED_S(w)),
                   NULL;
        }
    heed_tensor *y = heed__new(g, op, w->dtype, ids_shape.ndim + 1, shape);
    if (!y) return NULL;
    size_t row = (size_t)D * heed_dtype_size(w->dtype);
    const char *W = w->data;
    char *Y = y->data;
#pragma omp parallel for schedule(static) if (n * D > PARALLEL_MIN) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] == padding_idx) memset(Y + (size_t)i * row, 0, row);
        else memcpy(Y + (size_t)i * row, W + (size_t)ids[i] * row, row);
    }
    heed_node *nd = heed_record(g, &op_embedding, 1, &w, 1, &y);
    if (nd) {
        embed_saved *s = heed_graph_alloc(g, sizeof *s);
        int64_t *copy = heed_graph_alloc(g, (size_t)n * sizeof *copy);
        if (s && copy) {
            if (n > 0) memcpy(copy, ids, (size_t)n * sizeof *copy);
            *s = (embed_saved){n, V, D, padding_idx < 0 ? -1 : padding_idx, copy};
        }
        nd->saved = s;
    }
    return heed_graph_ok(g) ? y : NULL;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

static void FN(embedding_backward_kernel)(void *gw_, heed_tensor *y, int64_t n, int64_t D, heed_graph *g, int64_t V,
                                          const embed_saved *s, int64_t *start, int64_t *pos) {
    T *gw = gw_;
    const T *dy = y->grad;
#pragma omp parallel for schedule(dynamic, 64) if (n * D > PARALLEL_MIN) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t v = 0; v < V; v++) {
        if (v == s->pad) continue;
        T *dst = gw + v * D;
        for (int64_t k = start[v]; k < start[v + 1]; k++) {
            const T *src = dy + pos[k] * D;
            for (int64_t d = 0; d < D; d++) dst[d] += src[d];
        }
    }
}
#endif
