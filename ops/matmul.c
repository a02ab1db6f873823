/* Matrix products through the GEMM: matmul (2-D and batched, transpose flags) and
 * linear (x W^T + b, nn.Linear's layout).
 *
 * C = op(A) op(B):  d op(A) = dC op(B)^T,  d op(B) = op(A)^T dC; a transposed operand
 * takes the transpose of that, which is again one GEMM with the flags swapped. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "../graph/internal.h"
#include "heed/matmul.h"
#include "gemm.h"

typedef struct {
    int64_t batch, m, n, k;
    bool ta, tb, shared_b; /* shared_b: b is 2-D and used by every batch of a */
} mm_plan;

static size_t es_of(const heed_tensor *t) { return heed_dtype_size(t->dtype); }

/* Gradients of batch i (rows = m, or m*batch when the batch is folded into rows). */
static void mm_backward_batch(const heed_node *nd, void *ga, void *gb, int64_t i, int64_t rows) {
    heed_tensor *a = nd->in[0], *b = nd->in[1], *c = nd->out[0];
    const mm_plan *p = nd->saved;
    size_t es = es_of(a);
    int64_t m = p->m, n = p->n, k = p->k;
    int64_t lda = p->ta ? m : k, ldb = p->tb ? k : n;
    const char *A = (const char *)a->data + (size_t)(i * m * k) * es;
    const char *B = (const char *)b->data + (p->shared_b ? 0 : (size_t)(i * k * n) * es);
    const char *dC = (const char *)c->grad + (size_t)(i * m * n) * es;
    if (ga) {
        char *dA = (char *)ga + (size_t)(i * m * k) * es;
        if (!p->ta) heed_gemm(a->dtype, false, !p->tb, rows, k, n, 1, dC, n, B, ldb, 1, dA, lda);
        else heed_gemm(a->dtype, p->tb, true, k, m, n, 1, B, ldb, dC, n, 1, dA, lda);
    }
    if (gb) {
        char *dB = (char *)gb + (p->shared_b ? 0 : (size_t)(i * k * n) * es);
        if (!p->tb) heed_gemm(a->dtype, !p->ta, false, k, n, rows, 1, A, lda, dC, n, 1, dB, ldb);
        else heed_gemm(a->dtype, true, p->ta, n, k, rows, 1, dC, n, A, lda, 1, dB, ldb);
    }
}

static void mm_backward(heed_graph *g, heed_node *nd) {
    const mm_plan *p = nd->saved;
    void *ga = heed_grad_buffer(g, nd->in[0]), *gb = heed_grad_buffer(g, nd->in[1]);
    if (p->shared_b && !p->ta) { /* fold the batch into rows: one GEMM per gradient */
        mm_backward_batch(nd, ga, gb, 0, p->m * p->batch);
    } else if (p->batch == 1 || p->shared_b) {
        /* one product (all BLAS threads), or a shared dB that every batch adds into */
        for (int64_t i = 0; i < p->batch; i++) mm_backward_batch(nd, ga, gb, i, p->m);
    } else {
        /* many small products with disjoint gradients: one per thread */
#pragma omp parallel for schedule(static) num_threads(heed_ctx_threads_now(g->ctx))
        for (int64_t i = 0; i < p->batch; i++) mm_backward_batch(nd, ga, gb, i, p->m);
    }
}

static const heed_op op_matmul = {"heed_matmul", mm_backward};

heed_tensor *heed_matmul_t(heed_graph *g, heed_tensor *a, heed_tensor *b, int flags) {
    const char *op = "heed_matmul";
    if (!heed_check_tensor(g, op, a, "a") || !heed__check_like(g, op, b, "b", a)) return NULL;
    if (flags & ~(HEED_TRANS_A | HEED_TRANS_B))
        return heed_graph_fail(g, HEED_ERR_ARG, "heed_matmul_t: flags = %d (0 or HEED_TRANS_A | HEED_TRANS_B)", flags),
               NULL;
    bool ta = flags & HEED_TRANS_A, tb = flags & HEED_TRANS_B;
    if (a->ndim < 2 || b->ndim < 2)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: a%s @ b%s: both operands need at least 2 dims", op, HEED_S(a),
                               HEED_S(b)),
               NULL;
    mm_plan p = {.ta = ta, .tb = tb};
    int64_t ar = a->shape[a->ndim - 2], ac = a->shape[a->ndim - 1];
    int64_t br = b->shape[b->ndim - 2], bc = b->shape[b->ndim - 1];
    p.m = ta ? ac : ar;
    p.k = ta ? ar : ac;
    p.n = tb ? br : bc;
    int64_t kb = tb ? bc : br;
    if (p.k != kb)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: a%s%s @ b%s%s: inner dims differ (%lld vs %lld)", op, HEED_S(a),
                               ta ? "^T" : "", HEED_S(b), tb ? "^T" : "", (long long)p.k, (long long)kb),
               NULL;
    p.batch = 1;
    for (int i = 0; i < a->ndim - 2; i++) p.batch *= a->shape[i];
    p.shared_b = b->ndim == 2 && a->ndim > 2;
    if (!p.shared_b) {
        bool ok = a->ndim == b->ndim;
        for (int i = 0; ok && i < a->ndim - 2; i++) ok = a->shape[i] == b->shape[i];
        if (!ok)
            return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: a%s @ b%s: batch dims must be equal, or b must be 2-D", op,
                                   HEED_S(a), HEED_S(b)),
                   NULL;
    }
    int64_t shape[HEED_MAX_DIMS];
    for (int i = 0; i < a->ndim - 2; i++) shape[i] = a->shape[i];
    shape[a->ndim - 2] = p.m;
    shape[a->ndim - 1] = p.n;
    heed_tensor *c = heed__new(g, op, a->dtype, a->ndim, shape);
    if (!c) return NULL;
    size_t es = es_of(a);
    int64_t lda = ta ? p.m : p.k, ldb = tb ? p.k : p.n;
    if (p.shared_b && !ta) {
        heed_gemm(a->dtype, false, tb, p.m * p.batch, p.n, p.k, 1, a->data, lda, b->data, ldb, 0, c->data, p.n);
    } else if (p.batch == 1) {
        heed_gemm(a->dtype, ta, tb, p.m, p.n, p.k, 1, a->data, lda, b->data, ldb, 0, c->data, p.n);
    } else {
        /* Many small products: one per thread, each a single-threaded BLAS call. */
#pragma omp parallel for schedule(static) num_threads(heed_ctx_threads_now(g->ctx))
        for (int64_t i = 0; i < p.batch; i++)
            heed_gemm(a->dtype, ta, tb, p.m, p.n, p.k, 1, (const char *)a->data + (size_t)(i * p.m * p.k) * es, lda,
                      (const char *)b->data + (p.shared_b ? 0 : (size_t)(i * p.k * p.n) * es), ldb, 0,
                      (char *)c->data + (size_t)(i * p.m * p.n) * es, p.n);
    }
    heed_tensor *in[2] = {a, b};
    heed_node *n = heed_record(g, &op_matmul, 2, in, 1, &c);
    if (n && (n->saved = heed_graph_alloc(g, sizeof p))) *(mm_plan *)n->saved = p;
    return heed_graph_ok(g) ? c : NULL;
}

heed_tensor *heed_matmul(heed_graph *g, heed_tensor *a, heed_tensor *b) { return heed_matmul_t(g, a, b, 0); }

/* ---------------------------------------------------------------- linear */

/* The rows of x for linear: the product of all but its last dim (not numel / in, which is
 * 0 when in is 0). */
static int64_t linear_rows(const heed_tensor *x) {
    int64_t M = 1;
    for (int i = 0; i + 1 < x->ndim; i++) M *= x->shape[i];
    return M;
}

#define T float
#define FN(name) name##_f32
#include "matmul.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "matmul.c"
#undef T
#undef FN

/* y[M,out] = x[M,in] w[out,in]^T + bias:
 * dx = dy w,  dw += dy^T x,  dbias += sum over rows of dy. */
static void linear_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *x = nd->in[0], *w = nd->in[1], *bias = nd->n_in > 2 ? nd->in[2] : NULL, *y = nd->out[0];
    int64_t out = w->shape[0], in = w->shape[1], M = linear_rows(x);
    void *gx = heed_grad_buffer(g, x), *gw = heed_grad_buffer(g, w), *gbias = heed_grad_buffer(g, bias);
    if (gx) heed_gemm(x->dtype, false, false, M, in, out, 1, y->grad, out, w->data, in, 1, gx, in);
    if (gw) heed_gemm(x->dtype, true, false, out, in, M, 1, y->grad, out, x->data, in, 1, gw, in);
    if (gbias) {
        if (x->dtype == HEED_F32) linear_backward_kernel_f32(y, gbias, M, out, g);
        else linear_backward_kernel_f64(y, gbias, M, out, g);
    }
}

static const heed_op op_linear = {"heed_linear", linear_backward};

heed_tensor *heed_linear(heed_graph *g, heed_tensor *x, heed_tensor *w, heed_tensor *bias) {
    const char *op = "heed_linear";
    if (!heed_check_tensor(g, op, x, "x") || !heed__check_like(g, op, w, "w", x)) return NULL;
    if (bias && !heed__check_like(g, op, bias, "bias", x)) return NULL;
    if (w->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1])
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: x%s, w%s: w must be [out, in] with in = x's last dim", op,
                               HEED_S(x), HEED_S(w)),
               NULL;
    if (bias && (bias->ndim != 1 || bias->shape[0] != w->shape[0]))
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: bias%s must be [%lld] (w is %s)", op, HEED_S(bias),
                               (long long)w->shape[0], HEED_S(w)),
               NULL;
    int64_t out = w->shape[0], in = w->shape[1], M = linear_rows(x);
    int64_t shape[HEED_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = out;
    heed_tensor *y = heed__new(g, op, x->dtype, x->ndim, shape);
    if (!y) return NULL;
    if (x->dtype == HEED_F32) linear_forward_kernel_f32(y, bias, M, out, x, in, w);
    else linear_forward_kernel_f64(y, bias, M, out, x, in, w);
    heed_tensor *ins[3] = {x, w, bias};
    heed_record(g, &op_linear, bias ? 3 : 2, ins, 1, &y);
    return heed_graph_ok(g) ? y : NULL;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

/* db[j] += sum_i dy[i, j], each column summed in double in row order; the rows are walked
 * once per block of BIAS_COLS columns, whose sums run side by side (a column at a time was
 * one long dependent chain of strided loads). */
static void FN(linear_backward_kernel)(heed_tensor *y, void *gbias, int64_t M, int64_t out, heed_graph *g) {
    enum { BIAS_COLS = 16 };
    const T *dy = y->grad;
    T *db = gbias;
#pragma omp parallel for if (M * out > 65536) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t j0 = 0; j0 < out; j0 += BIAS_COLS) {
        int64_t nj = out - j0 < BIAS_COLS ? out - j0 : BIAS_COLS;
        double s[BIAS_COLS] = {0};
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < nj; j++) s[j] += dy[i * out + j0 + j];
        for (int64_t j = 0; j < nj; j++) db[j0 + j] += (T)s[j];
    }
}

static void FN(linear_forward_kernel)(heed_tensor *y, heed_tensor *bias, int64_t M, int64_t out, heed_tensor *x,
                                      int64_t in, heed_tensor *w) {
    T *Y = y->data;
    const T *b = bias ? bias->data : NULL;
    if (b)
        for (int64_t i = 0; i < M; i++) memcpy(Y + i * out, b, (size_t)out * sizeof(T));
    heed_gemm(x->dtype, false, true, M, out, in, 1, x->data, in, w->data, in, b ? 1 : 0, Y, out);
}
#endif
