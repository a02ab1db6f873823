/* Shape ops: reshape (a view), transpose / permute, flip, slice, concat / stack, index_select.
 * All of them only move elements, so every backward moves the gradient back the same way
 * (a gather forward is a scatter-add backward):
 *   reshape:       y = x viewed             dx += dy (same flat order)
 *   permute:       y[i] = x[perm(i)]        dx[perm(i)] += dy[i]
 *   flip:          y[.., i, ..] = x[.., n-1-i, ..] along each flipped dim (the same
 *                  strided move as permute, with a negative stride from the far end)
 *   slice:         y = x[.., start:end, ..] dx[.., start:end, ..] += dy
 *   concat/stack:  y = [x_0 | x_1 | ...]    dx_k += its block of dy
 *   index_select:  y[.., j, ..] = x[.., idx[j], ..]   dx[.., idx[j], ..] += dy[.., j, ..]
 *                  (repeated indices add up) */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "../graph/internal.h"
#include "heed/shape.h"

#define PARALLEL_MIN 32768 /* fewer elements are moved on one thread */

static size_t es_of(const heed_tensor *t) { return heed_dtype_size(t->dtype); }

/* "[2,-1,3]" for a requested shape. */
static char *shape_req_str(heed_shape s, char *buf) {
    int len = snprintf(buf, 64, "[");
    for (int i = 0; i < s.ndim && i < HEED_MAX_DIMS; i++)
        len += snprintf(buf + len, (size_t)(64 - len), "%s%lld", i ? "," : "", (long long)s.d[i]);
    snprintf(buf + len, (size_t)(64 - len), "]");
    return buf;
}

/* Product of shape[lo..hi). */
static int64_t prod(const int64_t *shape, int lo, int hi) {
    int64_t p = 1;
    for (int i = lo; i < hi; i++) p *= shape[i];
    return p;
}

#define COL_CHUNK 256 /* backward splits rows into column chunks so threads own disjoint ranges */

/* Output index (i0..i3) reads x at x0 + sum_k i_k * xs[k], where xs[k] is x's stride along
 * the dim that output dim k comes from (negated, with x0 starting at its last element, for
 * a flipped dim). Shapes are padded on the left to 4 dims. */
typedef struct {
    int64_t n[4], xs[4], x0;
} perm_plan;

/* Both are the same move: every input is viewed as [outer, width_k] and the output as
 * [outer, sum_k width_k], input k filling columns [off_k, off_k + width_k). For concat
 * width_k = x_k's size along dim times the dims after it; for stack (a new dim of size
 * 1 per input) width_k = the input's dims from dim on. */
typedef struct {
    int64_t outer, total;
    int64_t *width, *off; /* n entries each */
} cat_plan;

#define T float
#define FN(name) name##_f32
#include "shape.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "shape.c"
#undef T
#undef FN

/* gx[i] += dy[i] over n elements. */
static void add_into(heed_dtype dt, void *gx_, const void *dy_, int64_t n, int threads) {
    if (dt == HEED_F32) add_into_kernel_f32(gx_, dy_, n, threads);
    else add_into_kernel_f64(gx_, dy_, n, threads);
}

/* ---------------------------------------------------------------- reshape */

static void reshape_backward(heed_graph *g, heed_node *nd) {
    void *gx = heed_grad_buffer(g, nd->in[0]);
    if (gx) add_into(nd->in[0]->dtype, gx, nd->out[0]->grad, nd->in[0]->numel, heed_ctx_threads_now(g->ctx));
}

static const heed_op op_reshape = {"heed_reshape", reshape_backward};

heed_tensor *heed_reshape(heed_graph *g, heed_tensor *x, heed_shape shape) {
    const char *op = "heed_reshape";
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    char req[64];
    if (shape.ndim < 0 || shape.ndim > HEED_MAX_DIMS)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: %d dims requested (heed tensors have 0 to %d)", op, shape.ndim,
                               HEED_MAX_DIMS),
               NULL;
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < shape.ndim; i++) {
        if (shape.d[i] == -1 && infer < 0) {
            infer = i;
        } else if (shape.d[i] < 0) {
            return heed_graph_fail(g, HEED_ERR_SHAPE,
                                   "%s: x%s to %s: dim %d is %lld (only one dim may be -1, the rest >= 0)", op,
                                   HEED_S(x), shape_req_str(shape, req), i, (long long)shape.d[i]),
                   NULL;
        } else if (shape.d[i] != 0 && known > ((int64_t)1 << 62) / shape.d[i]) {
            known = (int64_t)1 << 62; /* saturate: far past any numel, so a mismatch, never an overflow */
        } else {
            known *= shape.d[i];
        }
    }
    if (infer >= 0) {
        if (known == 0 || x->numel % known != 0)
            return heed_graph_fail(g, HEED_ERR_SHAPE,
                                   "%s: x%s (%lld elements) cannot be viewed as %s: no size fits the -1", op, HEED_S(x),
                                   (long long)x->numel, shape_req_str(shape, req)),
                   NULL;
        shape.d[infer] = x->numel / known;
        known = x->numel;
    }
    if (known != x->numel)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: x%s (%lld elements) cannot be viewed as %s (%lld elements)", op,
                               HEED_S(x), (long long)x->numel, shape_req_str(shape, req), (long long)known),
               NULL;
    heed_tensor *y = heed__view(g, op, x, shape.ndim, shape.d);
    if (!y) return NULL;
    heed_record(g, &op_reshape, 1, &x, 1, &y);
    return heed_graph_ok(g) ? y : NULL;
}

/* ---------------------------------------------------------------- permute, transpose */

static perm_plan make_perm_plan(const heed_tensor *x, const int *perm) {
    int64_t shape[4], stride[4];
    int pad = 4 - x->ndim;
    for (int i = 0; i < 4; i++) shape[i] = i < pad ? 1 : x->shape[i - pad];
    stride[3] = 1;
    for (int i = 2; i >= 0; i--) stride[i] = stride[i + 1] * shape[i + 1];
    perm_plan p = {.x0 = 0};
    for (int i = 0; i < 4; i++) {
        int src = i < pad ? i : perm[i - pad] + pad;
        p.n[i] = shape[src];
        p.xs[i] = stride[src];
    }
    return p;
}

/* Forward (scatter = false): y[o] = x[off]. Backward (scatter = true): x[off] += y[o].
 * A permutation is a bijection, so the writes of both are disjoint. */
static void permute_move(heed_dtype dt, const perm_plan *p, void *x_, void *y_, bool scatter, int threads) {
    int64_t numel = p->n[0] * p->n[1] * p->n[2] * p->n[3];
    if (dt == HEED_F32) permute_move_kernel_f32(x_, y_, numel, threads, p, scatter);
    else permute_move_kernel_f64(x_, y_, numel, threads, p, scatter);
}

static void permute_backward(heed_graph *g, heed_node *nd) {
    void *gx = heed_grad_buffer(g, nd->in[0]);
    if (!gx) return;
    int perm[HEED_MAX_DIMS];
    for (int i = 0; i < nd->in[0]->ndim; i++) perm[i] = (int)nd->iarg[i];
    perm_plan p = make_perm_plan(nd->in[0], perm);
    permute_move(nd->in[0]->dtype, &p, gx, nd->out[0]->grad, true, heed_ctx_threads_now(g->ctx));
}

static const heed_op op_permute = {"heed_permute", permute_backward};
static const heed_op op_transpose = {"heed_transpose", permute_backward};

/* perm is already validated and normalised (entries in [0, ndim), each once). */
static heed_tensor *permute_impl(heed_graph *g, const heed_op *op, heed_tensor *x, const int *perm) {
    int64_t shape[HEED_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[perm[i]];
    heed_tensor *y = heed__new(g, op->name, x->dtype, x->ndim, shape);
    if (!y) return NULL;
    perm_plan p = make_perm_plan(x, perm);
    permute_move(x->dtype, &p, x->data, y->data, false, heed_ctx_threads_now(g->ctx));
    heed_node *n = heed_record(g, op, 1, &x, 1, &y);
    if (n)
        for (int i = 0; i < x->ndim; i++) n->iarg[i] = perm[i];
    return heed_graph_ok(g) ? y : NULL;
}

heed_tensor *heed_permute(heed_graph *g, heed_tensor *x, const int *perm) {
    const char *op = "heed_permute";
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    if (!perm && x->ndim > 0)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: perm is NULL (x%s needs %d entries)", op, HEED_S(x), x->ndim),
               NULL;
    int p[HEED_MAX_DIMS];
    bool seen[HEED_MAX_DIMS] = {false};
    for (int i = 0; i < x->ndim; i++) {
        p[i] = heed__dim(perm[i], x->ndim);
        if (p[i] < 0 || seen[p[i]]) {
            char list[64];
            int len = 0;
            for (int k = 0; k < x->ndim; k++)
                len += snprintf(list + len, sizeof list - (size_t)len, "%s%d", k ? "," : "", perm[k]);
            return heed_graph_fail(g, HEED_ERR_ARG,
                                   "%s: perm (%s) is not a permutation of the %d dims of x%s (entry %d is %s)", op,
                                   list, x->ndim, HEED_S(x), i, p[i] < 0 ? "out of range" : "repeated"),
                   NULL;
        }
        seen[p[i]] = true;
    }
    return permute_impl(g, &op_permute, x, p);
}

heed_tensor *heed_transpose(heed_graph *g, heed_tensor *x, int dim0, int dim1) {
    const char *op = "heed_transpose";
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    int a = heed__dim(dim0, x->ndim), b = heed__dim(dim1, x->ndim);
    if (a < 0 || b < 0)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: dims (%d, %d) out of range for x%s (%d dims)", op, dim0, dim1,
                               HEED_S(x), x->ndim),
               NULL;
    int perm[HEED_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) perm[i] = i;
    perm[a] = b, perm[b] = a;
    return permute_impl(g, &op_transpose, x, perm);
}

/* ---------------------------------------------------------------- flip */

/* The identity move with dim d read backwards for each bit d of mask. Flipping is its own
 * inverse, so backward scatters dy through the same plan: dx = flip(dy). */
static perm_plan make_flip_plan(const heed_tensor *x, unsigned mask) {
    static const int identity[4] = {0, 1, 2, 3};
    perm_plan p = make_perm_plan(x, identity);
    for (int i = 0, pad = 4 - x->ndim; i < x->ndim; i++)
        if (mask >> i & 1) p.x0 += (p.n[i + pad] - 1) * p.xs[i + pad], p.xs[i + pad] = -p.xs[i + pad];
    return p;
}

static void flip_backward(heed_graph *g, heed_node *nd) {
    void *gx = heed_grad_buffer(g, nd->in[0]);
    if (!gx) return;
    perm_plan p = make_flip_plan(nd->in[0], (unsigned)nd->iarg[0]);
    permute_move(nd->in[0]->dtype, &p, gx, nd->out[0]->grad, true, heed_ctx_threads_now(g->ctx));
}

static const heed_op op_flip = {"heed_flip", flip_backward};

heed_tensor *heed_flip(heed_graph *g, heed_tensor *x, const int *dims, int n_dims) {
    const char *op = op_flip.name;
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    int nd = x->ndim ? x->ndim : 1; /* a 0-d x takes dim 0 or -1, as in PyTorch */
    if (n_dims < 0 || n_dims > nd)
        return heed_graph_fail(g, HEED_ERR_ARG,
                               "%s: n_dims is %d for x%s (need 0 <= n_dims <= %d: each dim at most once)", op, n_dims,
                               HEED_S(x), nd),
               NULL;
    if (!dims && n_dims > 0)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: dims is NULL but n_dims is %d", op, n_dims), NULL;
    unsigned mask = 0;
    for (int i = 0; i < n_dims; i++) {
        int d = heed__dim(dims[i], nd);
        if (d < 0)
            return heed_graph_fail(g, HEED_ERR_ARG, "%s: dims[%d] = %d is out of range for x%s (need -%d <= dim < %d)",
                                   op, i, dims[i], HEED_S(x), nd, nd),
                   NULL;
        if (mask >> d & 1)
            return heed_graph_fail(g, HEED_ERR_ARG,
                                   "%s: dim %d appears multiple times in the list of dims (dims[%d] = %d)", op, d, i,
                                   dims[i]),
                   NULL;
        mask |= 1u << d;
    }
    if (x->ndim == 0) mask = 0; /* reversing one element moves nothing */
    heed_tensor *y = heed__new(g, op, x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    perm_plan p = make_flip_plan(x, mask);
    permute_move(x->dtype, &p, x->data, y->data, false, heed_ctx_threads_now(g->ctx));
    heed_node *n = heed_record(g, &op_flip, 1, &x, 1, &y);
    if (n) n->iarg[0] = mask;
    return heed_graph_ok(g) ? y : NULL;
}

/* ---------------------------------------------------------------- slice */

/* x viewed as [outer, dim, inner]; the slice takes rows [start, start + len) of the middle. */
static void slice_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *x = nd->in[0], *y = nd->out[0];
    void *gx_ = heed_grad_buffer(g, x);
    if (!gx_) return;
    int64_t outer = nd->iarg[0], dim = nd->iarg[1], inner = nd->iarg[2], start = nd->iarg[3], len = nd->iarg[4];
    if (x->dtype == HEED_F32) slice_backward_kernel_f32(gx_, y, g, outer, len, inner, dim, start);
    else slice_backward_kernel_f64(gx_, y, g, outer, len, inner, dim, start);
}

static const heed_op op_slice = {"heed_slice", slice_backward};

heed_tensor *heed_slice(heed_graph *g, heed_tensor *x, int dim, int64_t start, int64_t end) {
    const char *op = "heed_slice";
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    int ax = heed__dim(dim, x->ndim);
    if (ax < 0) return heed_graph_fail(g, HEED_ERR_ARG, "%s: dim %d out of range for x%s", op, dim, HEED_S(x)), NULL;
    int64_t size = x->shape[ax];
    int64_t s = start < 0 ? start + size : start, e = end < 0 ? end + size : end;
    if (s < 0 || e > size || s > e)
        return heed_graph_fail(
                   g, HEED_ERR_ARG,
                   "%s: [%lld, %lld) is out of range for dim %d of x%s (size %lld; need -size <= start <= end <= size "
                   "after negative indices count from the end)",
                   op, (long long)start, (long long)end, dim, HEED_S(x), (long long)size),
               NULL;
    int64_t shape[HEED_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
    shape[ax] = e - s;
    heed_tensor *y = heed__new(g, op, x->dtype, x->ndim, shape);
    if (!y) return NULL;
    int64_t outer = prod(x->shape, 0, ax), inner = prod(x->shape, ax + 1, x->ndim), len = e - s;
    size_t es = es_of(x), row = (size_t)(len * inner) * es;
    const char *X = x->data;
    char *Y = y->data;
#pragma omp parallel for schedule(static) if (y->numel > PARALLEL_MIN) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t o = 0; o < outer; o++) memcpy(Y + (size_t)o * row, X + (size_t)((o * size + s) * inner) * es, row);
    heed_node *n = heed_record(g, &op_slice, 1, &x, 1, &y);
    if (n) {
        n->iarg[0] = outer, n->iarg[1] = size, n->iarg[2] = inner;
        n->iarg[3] = s, n->iarg[4] = len;
    }
    return heed_graph_ok(g) ? y : NULL;
}

/* ---------------------------------------------------------------- concat, stack */

static void cat_backward(heed_graph *g, heed_node *nd) {
    const cat_plan *p = nd->saved;
    heed_tensor *y = nd->out[0];
    void **gx = heed_graph_alloc(g, (size_t)nd->n_in * sizeof *gx);
    if (!gx) return;
    for (int k = 0; k < nd->n_in; k++) gx[k] = heed_grad_buffer(g, nd->in[k]);
    if (!heed_graph_ok(g)) return;
    /* Parallel over rows only: one tensor may appear twice among the inputs, and its two
     * blocks of a row then add into the same gradient row. */
    if (y->dtype == HEED_F32) cat_backward_kernel_f32(y, g, p, nd, gx);
    else cat_backward_kernel_f64(y, g, p, nd, gx);
}

static const heed_op op_concat = {"heed_concat", cat_backward};
static const heed_op op_stack = {"heed_stack", cat_backward};

static heed_tensor *cat_impl(heed_graph *g, const heed_op *op, heed_tensor *const *xs, int n, int dim, bool stack) {
    const char *name = op->name;
    if (!heed_graph_ok(g)) return NULL;
    if (!xs || n < 1)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: %s (need at least one tensor)", name, xs ? "n < 1" : "xs is NULL"),
               NULL;
    char argname[32];
    for (int k = 0; k < n; k++) {
        snprintf(argname, sizeof argname, "xs[%d]", k);
        if (!(k == 0 ? heed_check_tensor(g, name, xs[k], argname) : heed__check_like(g, name, xs[k], argname, xs[0])))
            return NULL;
    }
    const heed_tensor *x0 = xs[0];
    int nd = x0->ndim, out_nd = stack ? nd + 1 : nd;
    if (!stack && nd == 0)
        return heed_graph_fail(g, HEED_ERR_SHAPE,
                               "%s: xs[0] is a scalar (0-d tensors cannot be concatenated; use heed_stack)", name),
               NULL;
    if (out_nd > HEED_MAX_DIMS)
        return heed_graph_fail(g, HEED_ERR_SHAPE,
                               "%s: xs[0]%s already has %d dims (the result would have more than %d)", name, HEED_S(x0),
                               nd, HEED_MAX_DIMS),
               NULL;
    int ax = heed__dim(dim, out_nd);
    if (ax < 0)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: dim %d out of range for a %d-dim result (inputs like xs[0]%s)",
                               name, dim, out_nd, HEED_S(x0)),
               NULL;
    for (int k = 1; k < n; k++) {
        const heed_tensor *x = xs[k];
        bool ok = x->ndim == nd;
        int bad = -1;
        for (int i = 0; ok && i < nd; i++)
            if (x->shape[i] != x0->shape[i] && (stack || i != ax)) ok = false, bad = i;
        if (!ok) {
            if (stack)
                return heed_graph_fail(g, HEED_ERR_SHAPE,
                                       "%s: xs[%d]%s and xs[0]%s differ (stacked tensors must have equal shapes)", name,
                                       k, HEED_S(x), HEED_S(x0)),
                       NULL;
            if (bad < 0)
                return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: xs[%d]%s and xs[0]%s have different numbers of dims",
                                       name, k, HEED_S(x), HEED_S(x0)),
                       NULL;
            return heed_graph_fail(g, HEED_ERR_SHAPE,
                                   "%s: xs[%d]%s and xs[0]%s differ in dim %d (only the concat dim %d may differ)",
                                   name, k, HEED_S(x), HEED_S(x0), bad, ax),
                   NULL;
        }
    }
    cat_plan *p = heed_graph_alloc(g, sizeof *p);
    int64_t *wo = heed_graph_alloc(g, 2 * (size_t)n * sizeof *wo);
    if (!p || !wo) return NULL;
    p->width = wo, p->off = wo + n;
    p->outer = prod(x0->shape, 0, ax);
    p->total = 0;
    int64_t shape[HEED_MAX_DIMS];
    for (int k = 0; k < n; k++) {
        p->width[k] = prod(xs[k]->shape, ax, nd);
        p->off[k] = p->total;
        p->total += p->width[k];
    }
    if (stack) {
        for (int i = 0, j = 0; i < out_nd; i++) shape[i] = i == ax ? n : x0->shape[j++];
    } else {
        for (int i = 0; i < nd; i++) shape[i] = x0->shape[i];
        shape[ax] = 0;
        for (int k = 0; k < n; k++) shape[ax] += xs[k]->shape[ax];
    }
    heed_tensor *y = heed__new(g, name, x0->dtype, out_nd, shape);
    if (!y) return NULL;
    size_t es = es_of(x0);
    char *Y = y->data;
#pragma omp parallel for schedule(static) if (y->numel > PARALLEL_MIN) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t o = 0; o < p->outer; o++)
        for (int k = 0; k < n; k++)
            memcpy(Y + (size_t)(o * p->total + p->off[k]) * es,
                   (const char *)xs[k]->data + (size_t)(o * p->width[k]) * es, (size_t)p->width[k] * es);
    heed_node *nd_ = heed_record(g, op, n, xs, 1, &y);
    if (nd_) nd_->saved = p;
    return heed_graph_ok(g) ? y : NULL;
}

heed_tensor *heed_concat(heed_graph *g, heed_tensor *const *xs, int n, int dim) {
    return cat_impl(g, &op_concat, xs, n, dim, false);
}
heed_tensor *heed_stack(heed_graph *g, heed_tensor *const *xs, int n, int dim) {
    return cat_impl(g, &op_stack, xs, n, dim, true);
}

/* ---------------------------------------------------------------- index_select */

static void index_select_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *x = nd->in[0], *y = nd->out[0];
    void *gx_ = heed_grad_buffer(g, x);
    if (!gx_) return;
    int64_t outer = nd->iarg[0], dim = nd->iarg[1], inner = nd->iarg[2], n = nd->iarg[3];
    const int64_t *idx = nd->saved;
    /* Repeated indices add into the same row of gx, so a task owns (o, column chunk) and
     * walks every j: no two tasks write the same element. */
    int64_t chunks = (inner + COL_CHUNK - 1) / COL_CHUNK, tasks = outer * chunks;
    if (x->dtype == HEED_F32) index_select_backward_kernel_f32(gx_, y, g, tasks, chunks, inner, n, dim, idx);
    else index_select_backward_kernel_f64(gx_, y, g, tasks, chunks, inner, n, dim, idx);
}

static const heed_op op_index_select = {"heed_index_select", index_select_backward};

heed_tensor *heed_index_select(heed_graph *g, heed_tensor *x, int dim, const int64_t *idx, int64_t n) {
    const char *op = "heed_index_select";
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    int ax = heed__dim(dim, x->ndim);
    if (ax < 0) return heed_graph_fail(g, HEED_ERR_ARG, "%s: dim %d out of range for x%s", op, dim, HEED_S(x)), NULL;
    if (n < 0 || (n > 0 && !idx))
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: %s", op, n < 0 ? "n < 0" : "idx is NULL but n > 0"), NULL;
    int64_t size = x->shape[ax];
    for (int64_t j = 0; j < n; j++)
        if (idx[j] < 0 || idx[j] >= size)
            return heed_graph_fail(g, HEED_ERR_ARG, "%s: idx[%lld] = %lld is out of range [0, %lld) for dim %d of x%s",
                                   op, (long long)j, (long long)idx[j], (long long)size, dim, HEED_S(x)),
                   NULL;
    int64_t shape[HEED_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
    shape[ax] = n;
    heed_tensor *y = heed__new(g, op, x->dtype, x->ndim, shape);
    if (!y) return NULL;
    int64_t outer = prod(x->shape, 0, ax), inner = prod(x->shape, ax + 1, x->ndim);
    size_t es = es_of(x), row = (size_t)inner * es;
    const char *X = x->data;
    char *Y = y->data;
#pragma omp parallel for schedule(static) if (y->numel > PARALLEL_MIN) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t r = 0; r < outer * n; r++) {
        int64_t o = r / n, j = r % n;
        memcpy(Y + (size_t)r * row, X + (size_t)(o * size + idx[j]) * row, row);
    }
    heed_node *nd = heed_record(g, &op_index_select, 1, &x, 1, &y);
    if (nd) {
        int64_t *copy = heed_graph_alloc(g, (size_t)n * sizeof *copy);
        if (copy && n > 0) memcpy(copy, idx, (size_t)n * sizeof *copy);
        nd->saved = copy;
        nd->iarg[0] = outer, nd->iarg[1] = size, nd->iarg[2] = inner, nd->iarg[3] = n;
    }
    return heed_graph_ok(g) ? y : NULL;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

static void FN(add_into_kernel)(void *gx_, const void *dy_, int64_t n, int threads) {
    T *gx = gx_;
    const T *dy = dy_;
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN) num_threads(threads)
    for (int64_t i = 0; i < n; i++) gx[i] += dy[i];
}

static void FN(permute_move_kernel)(void *x_, void *y_, int64_t numel, int threads, const perm_plan *p, bool scatter) {
    T *x = x_, *y = y_;
#pragma omp parallel for collapse(2) schedule(static) if (numel > PARALLEL_MIN) num_threads(threads)
    for (int64_t i0 = 0; i0 < p->n[0]; i0++)
        for (int64_t i1 = 0; i1 < p->n[1]; i1++)
            for (int64_t i2 = 0; i2 < p->n[2]; i2++) {
                int64_t o = ((i0 * p->n[1] + i1) * p->n[2] + i2) * p->n[3];
                const int64_t base = p->x0 + i0 * p->xs[0] + i1 * p->xs[1] + i2 * p->xs[2], s3 = p->xs[3];
                if (scatter)
                    for (int64_t i3 = 0; i3 < p->n[3]; i3++) x[base + i3 * s3] += y[o + i3];
                else
                    for (int64_t i3 = 0; i3 < p->n[3]; i3++) y[o + i3] = x[base + i3 * s3];
            }
}

static void FN(slice_backward_kernel)(void *gx_, heed_tensor *y, heed_graph *g, int64_t outer, int64_t len,
                                      int64_t inner, int64_t dim, int64_t start) {
    T *gx = gx_;
    const T *dy = y->grad;
#pragma omp parallel for schedule(static) if (y->numel > PARALLEL_MIN) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < len * inner; i++) gx[(o * dim + start) * inner + i] += dy[o * len * inner + i];
}

static void FN(cat_backward_kernel)(heed_tensor *y, heed_graph *g, const cat_plan *p, heed_node *nd, void **gx) {
    const T *dy = y->grad;
#pragma omp parallel for schedule(static) if (y->numel > PARALLEL_MIN) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t o = 0; o < p->outer; o++)
        for (int k = 0; k < nd->n_in; k++) {
            T *gk = gx[k];
            if (!gk) continue;
            const T *src = dy + o * p->total + p->off[k];
            T *dst = gk + o * p->width[k];
            for (int64_t i = 0; i < p->width[k]; i++) dst[i] += src[i];
        }
}

static void FN(index_select_backward_kernel)(void *gx_, heed_tensor *y, heed_graph *g, int64_t tasks, int64_t chunks,
                                             int64_t inner, int64_t n, int64_t dim, const int64_t *idx) {
    T *gx = gx_;
    const T *dy = y->grad;
#pragma omp parallel for schedule(static) if (y->numel > PARALLEL_MIN) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t t = 0; t < tasks; t++) {
        int64_t o = t / chunks, c0 = (t % chunks) * COL_CHUNK;
        int64_t c1 = c0 + COL_CHUNK < inner ? c0 + COL_CHUNK : inner;
        for (int64_t j = 0; j < n; j++) {
            T *dst = gx + (o * dim + idx[j]) * inner;
            const T *src = dy + (o * n + j) * inner;
            for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
        }
    }
}
#endif
