/* Selection by a mask: where(mask, a, b) and masked_fill(x, mask, value).
 *
 * The mask may be f32 or f64 whatever the other operands are; an element is "set" when
 * it is != 0 (NaN counts as set). The mask is never differentiated: it is not an input of
 * the tape node, only saved for backward.
 *   where:        y = m ? a : b       da = m ? dy : 0,  db = m ? 0 : dy  (summed over
 *                                     the dims a or b was broadcast along)
 *   masked_fill:  y = m ? value : x   dx = m ? 0 : dy */
#include "../graph/internal.h"

#include <math.h>

/* Up to three operands broadcast to one output, shapes padded on the left to 4 dims;
 * st[j] are element strides of operand j (0 along broadcast dims). */
typedef struct {
    int64_t n[4];
    int64_t st[3][4];
} bplan;

static bool make_plan(heed_graph *g, const char *op, int k, heed_tensor *const *t, const char *const *names, bplan *p,
                      int *ndim, int64_t *shape) {
    *ndim = 0;
    for (int j = 0; j < k; j++)
        if (t[j]->ndim > *ndim) *ndim = t[j]->ndim;
    for (int i = 0; i < 4; i++) {
        p->n[i] = 1;
        for (int j = 0; j < k; j++) {
            int kd = i - (4 - t[j]->ndim);
            int64_t d = kd >= 0 ? t[j]->shape[kd] : 1;
            if (d == 1 || d == p->n[i]) continue;
            if (p->n[i] == 1) {
                p->n[i] = d;
                continue;
            }
            char msg[256];
            int len = 0;
            for (int q = 0; q < k; q++)
                len += snprintf(msg + len, sizeof msg - (size_t)len, "%s%s%s", q ? (q == k - 1 ? " and " : ", ") : "",
                                names[q], HEED_S(t[q]));
            heed_graph_fail(g, HEED_ERR_SHAPE, "%s: %s do not broadcast (dim %d from the right: %lld vs %lld)", op, msg, 3 - i,
                            (long long)p->n[i], (long long)d);
            return false;
        }
    }
    for (int i = 0; i < *ndim; i++) shape[i] = p->n[4 - *ndim + i];
    for (int j = 0; j < k; j++) {
        int64_t stride = 1;
        for (int i = 3; i >= 0; i--) {
            int kd = i - (4 - t[j]->ndim);
            int64_t d = kd >= 0 ? t[j]->shape[kd] : 1;
            p->st[j][i] = d == 1 ? 0 : stride;
            stride *= d;
        }
    }
    return true;
}

/* Offset of operand j at output index (i0, i1, i2, i3). */
#define OFF(p, j) (i0 * (p)->st[j][0] + i1 * (p)->st[j][1] + i2 * (p)->st[j][2] + i3 * (p)->st[j][3])

/* Visit every output element in order: o is its flat index. Parallel over the two
 * outer dims on `threads` threads when `par` (only for bodies that write disjoint elements). */
#define FOR_OUT(p, par, threads, ...)                                                                         \
    do {                                                                                                     \
        int for_out_threads_ = (threads);                                                                    \
        _Pragma("omp parallel for collapse(2) schedule(static) if (par) num_threads(for_out_threads_)")      \
        for (int64_t i0 = 0; i0 < (p)->n[0]; i0++)                                                           \
            for (int64_t i1 = 0; i1 < (p)->n[1]; i1++)                                                       \
                for (int64_t i2 = 0; i2 < (p)->n[2]; i2++)                                                   \
                    for (int64_t i3 = 0; i3 < (p)->n[3]; i3++) {                                             \
                        int64_t o = ((i0 * (p)->n[1] + i1) * (p)->n[2] + i2) * (p)->n[3] + i3;               \
                        __VA_ARGS__                                                                          \
                    }                                                                                        \
    } while (0)

#define PARALLEL_MIN 32768

typedef struct {
    bplan p;
    heed_tensor *mask;
} saved_mask;

/* ---------------------------------------------------------------- where */

static void where_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *a = nd->in[0], *b = nd->in[1], *y = nd->out[0];
    const saved_mask *s = nd->saved;
    const bplan *p = &s->p;
    void *ga_ = heed_grad_buffer(g, a), *gb_ = heed_grad_buffer(g, b);
    /* Broadcast operands receive sums over several outputs: then run on one thread. */
    bool par = y->numel > PARALLEL_MIN && (!ga_ || a->numel == y->numel) && (!gb_ || b->numel == y->numel);
    HEED_FOR_DTYPE(y->dtype, T, {
        const T *dy = y->grad;
        T *ga = ga_, *gb = gb_;
        HEED_FOR_DTYPE(s->mask->dtype, M, {
            const M *m = s->mask->data;
            FOR_OUT(p, par, heed__threads_now(g->ctx), {
                if (m[OFF(p, 0)] != 0) {
                    if (ga) ga[OFF(p, 1)] += dy[o];
                } else if (gb) {
                    gb[OFF(p, 2)] += dy[o];
                }
            });
        });
    });
}

static const heed_op op_where = {"heed_where", where_backward};

heed_tensor *heed_where(heed_graph *g, heed_tensor *mask, heed_tensor *a, heed_tensor *b) {
    const char *op = "heed_where";
    if (!heed_check_tensor(g, op, mask, "mask") || !heed_check_tensor(g, op, a, "a") || !heed__check_like(g, op, b, "b", a))
        return NULL;
    heed_tensor *t[3] = {mask, a, b};
    static const char *const names[3] = {"mask", "a", "b"};
    bplan p;
    int ndim;
    int64_t shape[HEED_MAX_DIMS];
    if (!make_plan(g, op, 3, t, names, &p, &ndim, shape)) return NULL;
    heed_tensor *y = heed__new(g, op, a->dtype, ndim, shape);
    if (!y) return NULL;
    bool par = y->numel > PARALLEL_MIN;
    HEED_FOR_DTYPE(a->dtype, T, {
        const T *A = a->data, *B = b->data;
        T *Y = y->data;
        HEED_FOR_DTYPE(mask->dtype, M, {
            const M *m = mask->data;
            FOR_OUT(&p, par, heed__threads_now(g->ctx), { Y[o] = m[OFF(&p, 0)] != 0 ? A[OFF(&p, 1)] : B[OFF(&p, 2)]; });
        });
    });
    heed_tensor *in[2] = {a, b};
    heed_node *n = heed_record(g, &op_where, 2, in, 1, &y);
    if (n) {
        saved_mask *s = heed_graph_alloc(g, sizeof *s);
        if (s) *s = (saved_mask){p, mask};
        n->saved = s;
    }
    return heed_graph_ok(g) ? y : NULL;
}

/* ---------------------------------------------------------------- masked_fill */

static void masked_fill_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *x = nd->in[0], *y = nd->out[0];
    const saved_mask *s = nd->saved;
    const bplan *p = &s->p;
    void *gx_ = heed_grad_buffer(g, x);
    if (!gx_) return;
    bool par = y->numel > PARALLEL_MIN; /* x has the output's shape: writes are disjoint */
    HEED_FOR_DTYPE(x->dtype, T, {
        const T *dy = y->grad;
        T *gx = gx_;
        HEED_FOR_DTYPE(s->mask->dtype, M, {
            const M *m = s->mask->data;
            FOR_OUT(p, par, heed__threads_now(g->ctx), {
                if (m[OFF(p, 1)] == 0) gx[o] += dy[o];
            });
        });
    });
}

static const heed_op op_masked_fill = {"heed_masked_fill", masked_fill_backward};

heed_tensor *heed_masked_fill(heed_graph *g, heed_tensor *x, heed_tensor *mask, double value) {
    const char *op = "heed_masked_fill";
    if (!heed_check_tensor(g, op, x, "x") || !heed_check_tensor(g, op, mask, "mask")) return NULL;
    if (isnan(value)) return heed_graph_fail(g, HEED_ERR_ARG, "%s: value is NaN (a number or +-INFINITY is expected)", op), NULL;
    heed_tensor *t[2] = {x, mask};
    static const char *const names[2] = {"x", "mask"};
    bplan p;
    int ndim;
    int64_t shape[HEED_MAX_DIMS];
    if (!make_plan(g, op, 2, t, names, &p, &ndim, shape)) return NULL;
    bool same = ndim == x->ndim;
    for (int i = 0; same && i < ndim; i++) same = shape[i] == x->shape[i];
    if (!same)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: mask%s does not broadcast to x%s (the result must keep x's shape)", op,
                               HEED_S(mask), HEED_S(x)),
               NULL;
    heed_tensor *y = heed__new(g, op, x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    bool par = y->numel > PARALLEL_MIN;
    HEED_FOR_DTYPE(x->dtype, T, {
        const T *X = x->data;
        T *Y = y->data;
        T v = (T)value;
        HEED_FOR_DTYPE(mask->dtype, M, {
            const M *m = mask->data;
            FOR_OUT(&p, par, heed__threads_now(g->ctx), { Y[o] = m[OFF(&p, 1)] != 0 ? v : X[o]; });
        });
    });
    heed_node *n = heed_record(g, &op_masked_fill, 1, &x, 1, &y);
    if (n) {
        saved_mask *s = heed_graph_alloc(g, sizeof *s);
        if (s) *s = (saved_mask){p, mask};
        n->saved = s;
    }
    return heed_graph_ok(g) ? y : NULL;
}
