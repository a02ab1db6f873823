/* Selection by a mask: where(mask, a, b) and masked_fill(x, mask, value).
 *
 * The mask may be f32 or f64 whatever the other operands are; an element is "set" when
 * it is != 0 (NaN counts as set). The mask is never differentiated: it is not an input of
 * the tape node, only saved for backward.
 *   where:        y = m ? a : b       da = m ? dy : 0,  db = m ? 0 : dy  (summed over
 *                                     the dims a or b was broadcast along)
 *   masked_fill:  y = m ? value : x   dx = m ? 0 : dy */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "../graph/internal.h"
#include "heed/elementwise.h"

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
            heed_graph_fail(g, HEED_ERR_SHAPE, "%s: %s do not broadcast (dim %d from the right: %lld vs %lld)", op, msg,
                            3 - i, (long long)p->n[i], (long long)d);
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
static inline int64_t off(const bplan *p, int j, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return i0 * p->st[j][0] + i1 * p->st[j][1] + i2 * p->st[j][2] + i3 * p->st[j][3];
}

#define T float
#define M float
#define FN(name) name##_f32_m32
#include "where.c" /* the kernels after #else, once per element and mask type (docs/design.md, "Kernels") */
#undef T
#undef M
#undef FN
#define T float
#define M double
#define FN(name) name##_f32_m64
#include "where.c"
#undef T
#undef M
#undef FN
#define T double
#define M float
#define FN(name) name##_f64_m32
#include "where.c"
#undef T
#undef M
#undef FN
#define T double
#define M double
#define FN(name) name##_f64_m64
#include "where.c"
#undef T
#undef M
#undef FN

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
    if (y->dtype == HEED_F32 && s->mask->dtype == HEED_F32)
        where_backward_kernel_f32_m32(p, par, heed_ctx_threads_now(g->ctx), s->mask->data, y->grad, ga_, gb_);
    else if (y->dtype == HEED_F32)
        where_backward_kernel_f32_m64(p, par, heed_ctx_threads_now(g->ctx), s->mask->data, y->grad, ga_, gb_);
    else if (s->mask->dtype == HEED_F32)
        where_backward_kernel_f64_m32(p, par, heed_ctx_threads_now(g->ctx), s->mask->data, y->grad, ga_, gb_);
    else where_backward_kernel_f64_m64(p, par, heed_ctx_threads_now(g->ctx), s->mask->data, y->grad, ga_, gb_);
}

static const heed_op op_where = {"heed_where", where_backward};

heed_tensor *heed_where(heed_graph *g, heed_tensor *mask, heed_tensor *a, heed_tensor *b) {
    const char *op = "heed_where";
    if (!heed_check_tensor(g, op, mask, "mask") || !heed_check_tensor(g, op, a, "a") ||
        !heed__check_like(g, op, b, "b", a))
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
    if (a->dtype == HEED_F32 && mask->dtype == HEED_F32)
        where_kernel_f32_m32(&p, par, heed_ctx_threads_now(g->ctx), mask->data, a->data, b->data, y->data);
    else if (a->dtype == HEED_F32)
        where_kernel_f32_m64(&p, par, heed_ctx_threads_now(g->ctx), mask->data, a->data, b->data, y->data);
    else if (mask->dtype == HEED_F32)
        where_kernel_f64_m32(&p, par, heed_ctx_threads_now(g->ctx), mask->data, a->data, b->data, y->data);
    else where_kernel_f64_m64(&p, par, heed_ctx_threads_now(g->ctx), mask->data, a->data, b->data, y->data);
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
    if (x->dtype == HEED_F32 && s->mask->dtype == HEED_F32)
        masked_fill_backward_kernel_f32_m32(p, par, heed_ctx_threads_now(g->ctx), s->mask->data, y->grad, gx_);
    else if (x->dtype == HEED_F32)
        masked_fill_backward_kernel_f32_m64(p, par, heed_ctx_threads_now(g->ctx), s->mask->data, y->grad, gx_);
    else if (s->mask->dtype == HEED_F32)
        masked_fill_backward_kernel_f64_m32(p, par, heed_ctx_threads_now(g->ctx), s->mask->data, y->grad, gx_);
    else masked_fill_backward_kernel_f64_m64(p, par, heed_ctx_threads_now(g->ctx), s->mask->data, y->grad, gx_);
}

static const heed_op op_masked_fill = {"heed_masked_fill", masked_fill_backward};

heed_tensor *heed_masked_fill(heed_graph *g, heed_tensor *x, heed_tensor *mask, double value) {
    const char *op = "heed_masked_fill";
    if (!heed_check_tensor(g, op, x, "x") || !heed_check_tensor(g, op, mask, "mask")) return NULL;
    if (isnan(value))
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: value is NaN (a number or +-INFINITY is expected)", op), NULL;
    heed_tensor *t[2] = {x, mask};
    static const char *const names[2] = {"x", "mask"};
    bplan p;
    int ndim;
    int64_t shape[HEED_MAX_DIMS];
    if (!make_plan(g, op, 2, t, names, &p, &ndim, shape)) return NULL;
    bool same = ndim == x->ndim;
    for (int i = 0; same && i < ndim; i++) same = shape[i] == x->shape[i];
    if (!same)
        return heed_graph_fail(g, HEED_ERR_SHAPE,
                               "%s: mask%s does not broadcast to x%s (the result must keep x's shape)", op,
                               HEED_S(mask), HEED_S(x)),
               NULL;
    heed_tensor *y = heed__new(g, op, x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    bool par = y->numel > PARALLEL_MIN;
    if (x->dtype == HEED_F32 && mask->dtype == HEED_F32)
        masked_fill_kernel_f32_m32(&p, par, heed_ctx_threads_now(g->ctx), mask->data, x->data, (float)value, y->data);
    else if (x->dtype == HEED_F32)
        masked_fill_kernel_f32_m64(&p, par, heed_ctx_threads_now(g->ctx), mask->data, x->data, (float)value, y->data);
    else if (mask->dtype == HEED_F32)
        masked_fill_kernel_f64_m32(&p, par, heed_ctx_threads_now(g->ctx), mask->data, x->data, value, y->data);
    else masked_fill_kernel_f64_m64(&p, par, heed_ctx_threads_now(g->ctx), mask->data, x->data, value, y->data);
    heed_node *n = heed_record(g, &op_masked_fill, 1, &x, 1, &y);
    if (n) {
        saved_mask *s = heed_graph_alloc(g, sizeof *s);
        if (s) *s = (saved_mask){p, mask};
        n->saved = s;
    }
    return heed_graph_ok(g) ? y : NULL;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

/* For one element type T and one mask type M (four instances: FN(name) is name_f32_m32,
 * name_f32_m64, name_f64_m32 or name_f64_m64). Math: at the top. Each visits every output
 * element in order, o its flat index, parallel over the two outer dims when `par` (only
 * where writes are disjoint). */

static void FN(where_backward_kernel)(const bplan *p, bool par, int threads, const M *m, const T *dy, T *ga, T *gb) {
#pragma omp parallel for collapse(2) schedule(static) if (par) num_threads(threads)
    for (int64_t i0 = 0; i0 < p->n[0]; i0++)
        for (int64_t i1 = 0; i1 < p->n[1]; i1++)
            for (int64_t i2 = 0; i2 < p->n[2]; i2++)
                for (int64_t i3 = 0; i3 < p->n[3]; i3++) {
                    int64_t o = ((i0 * p->n[1] + i1) * p->n[2] + i2) * p->n[3] + i3;
                    if (m[off(p, 0, i0, i1, i2, i3)] != 0) {
                        if (ga) ga[off(p, 1, i0, i1, i2, i3)] += dy[o];
                    } else if (gb) {
                        gb[off(p, 2, i0, i1, i2, i3)] += dy[o];
                    }
                }
}

static void FN(where_kernel)(const bplan *p, bool par, int threads, const M *m, const T *A, const T *B, T *Y) {
#pragma omp parallel for collapse(2) schedule(static) if (par) num_threads(threads)
    for (int64_t i0 = 0; i0 < p->n[0]; i0++)
        for (int64_t i1 = 0; i1 < p->n[1]; i1++)
            for (int64_t i2 = 0; i2 < p->n[2]; i2++)
                for (int64_t i3 = 0; i3 < p->n[3]; i3++) {
                    int64_t o = ((i0 * p->n[1] + i1) * p->n[2] + i2) * p->n[3] + i3;
                    Y[o] =
                        m[off(p, 0, i0, i1, i2, i3)] != 0 ? A[off(p, 1, i0, i1, i2, i3)] : B[off(p, 2, i0, i1, i2, i3)];
                }
}

static void FN(masked_fill_backward_kernel)(const bplan *p, bool par, int threads, const M *m, const T *dy, T *gx) {
#pragma omp parallel for collapse(2) schedule(static) if (par) num_threads(threads)
    for (int64_t i0 = 0; i0 < p->n[0]; i0++)
        for (int64_t i1 = 0; i1 < p->n[1]; i1++)
            for (int64_t i2 = 0; i2 < p->n[2]; i2++)
                for (int64_t i3 = 0; i3 < p->n[3]; i3++) {
                    int64_t o = ((i0 * p->n[1] + i1) * p->n[2] + i2) * p->n[3] + i3;
                    if (m[off(p, 1, i0, i1, i2, i3)] == 0) gx[o] += dy[o];
                }
}

static void FN(masked_fill_kernel)(const bplan *p, bool par, int threads, const M *m, const T *X, T v, T *Y) {
#pragma omp parallel for collapse(2) schedule(static) if (par) num_threads(threads)
    for (int64_t i0 = 0; i0 < p->n[0]; i0++)
        for (int64_t i1 = 0; i1 < p->n[1]; i1++)
            for (int64_t i2 = 0; i2 < p->n[2]; i2++)
                for (int64_t i3 = 0; i3 < p->n[3]; i3++) {
                    int64_t o = ((i0 * p->n[1] + i1) * p->n[2] + i2) * p->n[3] + i3;
                    Y[o] = m[off(p, 1, i0, i1, i2, i3)] != 0 ? v : X[o];
                }
}
#endif
