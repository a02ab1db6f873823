/* Binary elementwise ops with NumPy broadcasting: add, sub, mul, div.
 * Shapes align at the right; a size-1 (or missing) dim stretches. In backward the
 * gradient of a broadcast operand is summed over the dims it was stretched along. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "../graph/internal.h"
#include "heed/elementwise.h"

typedef enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_COUNT } binop;

/* Shapes padded on the left to 4 dims, with element strides (0 where broadcast). */
typedef struct {
    int64_t n[4], sa[4], sb[4];
    bool same; /* no broadcasting: flat loops */
} bcast;

static void strides_of(const heed_tensor *t, const int64_t *out, int64_t *s) {
    int64_t stride = 1;
    for (int i = 3; i >= 0; i--) {
        int k = i - (4 - t->ndim); /* t's own dim, or < 0 when padded */
        int64_t d = k >= 0 ? t->shape[k] : 1;
        s[i] = d == 1 && out[i] != 1 ? 0 : stride;
        stride *= d;
    }
}

/* Fills the broadcast plan and the output shape; false (error set) if incompatible. */
static bool plan(heed_graph *g, const char *op, const heed_tensor *a, const heed_tensor *b, bcast *p, int *ndim,
                 int64_t *shape) {
    *ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < 4; i++) {
        int ka = i - (4 - a->ndim), kb = i - (4 - b->ndim);
        int64_t da = ka >= 0 ? a->shape[ka] : 1, db = kb >= 0 ? b->shape[kb] : 1;
        if (da != db && da != 1 && db != 1) {
            heed_graph_fail(g, HEED_ERR_SHAPE, "%s: a%s and b%s do not broadcast (dim %d from the right: %lld vs %lld)",
                            op, HEED_S(a), HEED_S(b), 3 - i, (long long)da, (long long)db);
            return false;
        }
        p->n[i] = da == 1 ? db : da;
    }
    for (int i = 0; i < *ndim; i++) shape[i] = p->n[4 - *ndim + i];
    strides_of(a, p->n, p->sa);
    strides_of(b, p->n, p->sb);
    p->same = a->numel == b->numel && a->ndim == b->ndim;
    for (int i = 0; i < a->ndim && p->same; i++) p->same = a->shape[i] == b->shape[i];
    return true;
}

static inline double apply(binop op, double x, double y) {
    switch (op) {
    case OP_ADD: return x + y;
    case OP_SUB: return x - y;
    case OP_MUL: return x * y;
    default: return x / y;
    }
}

/* d(a op b)/da and /db, times dy. */
static inline void partials(binop op, double x, double y, double dy, double *dx, double *dyb) {
    switch (op) {
    case OP_ADD: *dx = dy, *dyb = dy; break;
    case OP_SUB: *dx = dy, *dyb = -dy; break;
    case OP_MUL: *dx = dy * y, *dyb = dy * x; break;
    default: *dx = dy / y, *dyb = -dy * x / (y * y); break;
    }
}

#define T float
#define FN(name) name##_f32
#include "binary.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "binary.c"
#undef T
#undef FN

static void binary_backward(heed_graph *g, heed_node *n) {
    heed_tensor *a = n->in[0], *b = n->in[1], *y = n->out[0];
    binop op = (binop)n->iarg[0];
    bcast *p = n->saved;
    void *ga_ = heed_grad_buffer(g, a), *gb_ = heed_grad_buffer(g, b);
    if (y->dtype == HEED_F32) backward_kernel_f32(a, b, y, ga_, gb_, p, g, op);
    else backward_kernel_f64(a, b, y, ga_, gb_, p, g, op);
}

static const heed_op ops[] = {
    [OP_ADD] = {"heed_add", binary_backward},
    [OP_SUB] = {"heed_sub", binary_backward},
    [OP_MUL] = {"heed_mul", binary_backward},
    [OP_DIV] = {"heed_div", binary_backward},
};
_Static_assert(sizeof ops / sizeof *ops == OP_COUNT, "one op per binop");

static heed_tensor *binary(heed_graph *g, binop op, heed_tensor *a, heed_tensor *b) {
    const char *name = ops[op].name;
    if (!heed_check_tensor(g, name, a, "a") || !heed__check_like(g, name, b, "b", a)) return NULL;
    bcast p;
    int ndim;
    int64_t shape[4];
    if (!plan(g, name, a, b, &p, &ndim, shape)) return NULL;
    heed_tensor *y = heed__new(g, name, a->dtype, ndim, shape);
    if (!y) return NULL;
    if (a->dtype == HEED_F32) forward_kernel_f32(a, b, y, &p, g, op);
    else forward_kernel_f64(a, b, y, &p, g, op);
    heed_tensor *in[2] = {a, b};
    heed_node *n = heed_record(g, &ops[op], 2, in, 1, &y);
    if (n) {
        n->iarg[0] = op;
        n->saved = heed_graph_alloc(g, sizeof p);
        if (n->saved) *(bcast *)n->saved = p;
    }
    return heed_graph_ok(g) ? y : NULL;
}

heed_tensor *heed_add(heed_graph *g, heed_tensor *a, heed_tensor *b) { return binary(g, OP_ADD, a, b); }
heed_tensor *heed_sub(heed_graph *g, heed_tensor *a, heed_tensor *b) { return binary(g, OP_SUB, a, b); }
heed_tensor *heed_mul(heed_graph *g, heed_tensor *a, heed_tensor *b) { return binary(g, OP_MUL, a, b); }
heed_tensor *heed_div(heed_graph *g, heed_tensor *a, heed_tensor *b) { return binary(g, OP_DIV, a, b); }
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

/* Off the flat path, the loops visit every output element o with its a and b offsets ia, ib. */

static void FN(backward_kernel)(heed_tensor *a, heed_tensor *b, heed_tensor *y, void *ga_, void *gb_, const bcast *p,
                                heed_graph *g, binop op) {
    const T *A = a->data, *B = b->data, *dY = y->grad;
    T *gA = ga_, *gB = gb_;
    if (p->same && op == OP_ADD) { /* both get dy: what the loop below does, vectorised */
#pragma omp parallel for if (y->numel > 32768) num_threads(heed_ctx_threads_now(g->ctx))
        for (int64_t i = 0; i < y->numel; i++) {
            if (gA) gA[i] += dY[i];
            if (gB) gB[i] += dY[i];
        }
    } else if (p->same) {
#pragma omp parallel for if (y->numel > 32768) num_threads(heed_ctx_threads_now(g->ctx))
        for (int64_t i = 0; i < y->numel; i++) {
            double da, db;
            partials(op, A[i], B[i], dY[i], &da, &db);
            if (gA) gA[i] += (T)da;
            if (gB) gB[i] += (T)db;
        }
    } else {
        int64_t o = 0;
        for (int64_t i0 = 0; i0 < p->n[0]; i0++)
            for (int64_t i1 = 0; i1 < p->n[1]; i1++)
                for (int64_t i2 = 0; i2 < p->n[2]; i2++)
                    for (int64_t i3 = 0; i3 < p->n[3]; i3++, o++) {
                        int64_t ia = i0 * p->sa[0] + i1 * p->sa[1] + i2 * p->sa[2] + i3 * p->sa[3];
                        int64_t ib = i0 * p->sb[0] + i1 * p->sb[1] + i2 * p->sb[2] + i3 * p->sb[3];
                        double da, db;
                        partials(op, A[ia], B[ib], dY[o], &da, &db);
                        if (gA) gA[ia] += (T)da;
                        if (gB) gB[ib] += (T)db;
                    }
    }
}

static void FN(forward_kernel)(heed_tensor *a, heed_tensor *b, heed_tensor *y, const bcast *p, heed_graph *g,
                               binop op) {
    const T *A = a->data, *B = b->data;
    T *Y = y->data;
    /* Adds of equal shapes in T: bitwise the double path's result (a sum of two T rounded
     * once from double is the correctly rounded T sum, 53 >= 2 x 24 + 2 bits), vectorised. */
    if (p->same && op == OP_ADD) {
#pragma omp parallel for if (y->numel > 32768) num_threads(heed_ctx_threads_now(g->ctx))
        for (int64_t i = 0; i < y->numel; i++) Y[i] = A[i] + B[i];
    } else if (p->same) {
#pragma omp parallel for if (y->numel > 32768) num_threads(heed_ctx_threads_now(g->ctx))
        for (int64_t i = 0; i < y->numel; i++) Y[i] = (T)apply(op, A[i], B[i]);
    } else {
        int64_t o = 0;
        for (int64_t i0 = 0; i0 < p->n[0]; i0++)
            for (int64_t i1 = 0; i1 < p->n[1]; i1++)
                for (int64_t i2 = 0; i2 < p->n[2]; i2++)
                    for (int64_t i3 = 0; i3 < p->n[3]; i3++, o++) {
                        int64_t ia = i0 * p->sa[0] + i1 * p->sa[1] + i2 * p->sa[2] + i3 * p->sa[3];
                        int64_t ib = i0 * p->sb[0] + i1 * p->sb[1] + i2 * p->sb[2] + i3 * p->sb[3];
                        Y[o] = (T)apply(op, A[ia], B[ib]);
                    }
    }
}
#endif
