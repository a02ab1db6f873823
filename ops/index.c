/* Indexing ops with PyTorch 1.13's names and semantics: select, squeeze / unsqueeze,
 * argmax, topk, gather. Around the indexed dim a tensor is viewed as [outer, n, inner].
 *   select(x, dim, i):    y[o, c] = x[o, i, c]                 dx[o, i, c] += dy[o, c]
 *   squeeze / unsqueeze:  views (heed_reshape)                 dx += dy
 *   gather(x, dim, idx):  y[p] = x[p with its dim coordinate replaced by idx[p]]
 *                         dx[that position] += dy[p]           (repeats add up)
 *   topk(x, k, dim):      the k largest (or smallest) along dim, then a gather of them:
 *                         the gradient goes back to the picked positions
 *   argmax(x, dim):       indices only, into an int64_t buffer (not differentiable)
 * Order (argmax, topk): NaN ranks above every number (as PyTorch on CPU); equal values
 * rank by position, the first one first. Indices come back as int64_t arrays the caller
 * owns, ready for heed_embedding or heed_index_select: heed tensors hold only floats. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "../graph/internal.h"
#include "heed/index.h"
#include "heed/shape.h"

#include <math.h>
#include <stdlib.h>

#define PARALLEL_MIN 32768 /* fewer elements are moved on one thread */

/* dim of x normalised; a 0-d tensor counts as one element along dim 0 (dim 0 or -1, as
 * PyTorch). -1 when out of range. */
static int dim_of(const heed_tensor *x, int dim) { return heed__dim(dim, x->ndim ? x->ndim : 1); }

static int64_t size_at(const heed_tensor *x, int d) { return x->ndim ? x->shape[d] : 1; }

/* x as [outer, n, inner] around dim d */
static void split3(const heed_tensor *x, int d, int64_t *outer, int64_t *n, int64_t *inner) {
    *outer = 1, *inner = 1, *n = size_at(x, d);
    for (int i = 0; i < d; i++) *outer *= x->shape[i];
    for (int i = d + 1; i < x->ndim; i++) *inner *= x->shape[i];
}

static heed_tensor *fail_dim(heed_graph *g, const char *op, const heed_tensor *x, int dim) {
    return heed_graph_fail(g, HEED_ERR_ARG, "%s: dim %d out of range for x%s (%d dims)", op, dim, HEED_S(x), x->ndim),
           NULL;
}

/* ---------------------------------------------------------------- ranking */

/* True when value a at position ia ranks before b at ib: for `largest`, NaN first, then
 * larger values; otherwise smaller values first and NaN last. Ties: lower position. */
static inline bool ranks_before(bool largest, double a, int64_t ia, double b, int64_t ib) {
    bool na = a != a, nb = b != b;
    if (na || nb) return na && nb ? ia < ib : largest ? na : nb;
    if (a != b) return largest ? a > b : a < b;
    return ia < ib;
}

typedef struct {
    double v;
    int64_t i;
} ranked;

static int cmp_largest(const void *p, const void *q) {
    const ranked *a = p, *b = q;
    return ranks_before(true, a->v, a->i, b->v, b->i) ? -1 : 1; /* positions differ: never equal */
}
static int cmp_smallest(const void *p, const void *q) {
    const ranked *a = p, *b = q;
    return ranks_before(false, a->v, a->i, b->v, b->i) ? -1 : 1;
}
static int cmp_position(const void *p, const void *q) {
    const ranked *a = p, *b = q;
    return (a->i > b->i) - (a->i < b->i);
}

#define INSERTION_MAX_K 64 /* line_topk: the most k kept by insertion; larger k sorts */

/* gather: the result has the shape of idx; y[p] reads x at p with coordinate d replaced by
 * idx[p]. Shapes are padded on the left to 4 dims (d moves with them). A line is the run
 * of result positions that differ only in coordinate d: lines write disjoint parts of dx,
 * so backward runs them in parallel without two threads adding into one element. */
typedef struct {
    int d;                         /* padded */
    int64_t ys[4], yst[4], xst[4]; /* result shape, result and x strides (padded) */
    const int64_t *idx;            /* [numel of the result] */
} gather_plan;

/* ---------------------------------------------------------------- select */

#define T float
#define FN(name) name##_f32
#include "index.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "index.c"
#undef T
#undef FN

static void select_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *x = nd->in[0], *y = nd->out[0];
    void *gx_ = heed_grad_buffer(g, x);
    if (!gx_) return;
    int64_t outer = nd->iarg[0], n = nd->iarg[1], inner = nd->iarg[2], i = nd->iarg[3];
    if (x->dtype == HEED_F32) select_backward_kernel_f32(gx_, y, g, outer, inner, n, i);
    else select_backward_kernel_f64(gx_, y, g, outer, inner, n, i);
}

static const heed_op op_select = {"heed_select", select_backward};

heed_tensor *heed_select(heed_graph *g, heed_tensor *x, int dim, int64_t index) {
    const char *op = "heed_select";
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    if (x->ndim == 0) return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: x is 0-d (select needs a dim to index)", op), NULL;
    int d = heed__dim(dim, x->ndim);
    if (d < 0) return fail_dim(g, op, x, dim);
    int64_t outer, n, inner;
    split3(x, d, &outer, &n, &inner);
    int64_t i = index < 0 ? index + n : index;
    if (i < 0 || i >= n)
        return heed_graph_fail(
                   g, HEED_ERR_ARG,
                   "%s: index %lld is out of range for dim %d of x%s (size %lld; need -%lld <= index < %lld)", op,
                   (long long)index, dim, HEED_S(x), (long long)n, (long long)n, (long long)n),
               NULL;
    int64_t shape[HEED_MAX_DIMS];
    for (int k = 0, j = 0; k < x->ndim; k++)
        if (k != d) shape[j++] = x->shape[k];
    heed_tensor *y = heed__new(g, op, x->dtype, x->ndim - 1, shape);
    if (!y) return NULL;
    size_t es = heed_dtype_size(x->dtype), row = (size_t)inner * es;
    const char *X = x->data;
    char *Y = y->data;
#pragma omp parallel for schedule(static) if (y->numel > PARALLEL_MIN) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t o = 0; o < outer; o++) memcpy(Y + (size_t)o * row, X + (size_t)(o * n + i) * row, row);
    heed_node *nd = heed_record(g, &op_select, 1, &x, 1, &y);
    if (nd) nd->iarg[0] = outer, nd->iarg[1] = n, nd->iarg[2] = inner, nd->iarg[3] = i;
    return heed_graph_ok(g) ? y : NULL;
}

/* ---------------------------------------------------------------- squeeze, unsqueeze */

heed_tensor *heed_squeeze(heed_graph *g, heed_tensor *x, int dim) {
    const char *op = "heed_squeeze";
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    int d = dim_of(x, dim);
    if (d < 0) return fail_dim(g, op, x, dim);
    heed_shape s = heed_tensor_shape(x);
    if (x->ndim > 0 && x->shape[d] == 1) { /* a dim of another size stays (as PyTorch) */
        for (int k = d; k + 1 < x->ndim; k++) s.d[k] = s.d[k + 1];
        s.ndim--;
    }
    return heed_reshape(g, x, s);
}

heed_tensor *heed_unsqueeze(heed_graph *g, heed_tensor *x, int dim) {
    const char *op = "heed_unsqueeze";
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    int d = heed__dim(dim, x->ndim + 1);
    if (d < 0)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: dim %d out of range for x%s (need %d <= dim <= %d)", op, dim,
                               HEED_S(x), -(x->ndim + 1), x->ndim),
               NULL;
    if (x->ndim == HEED_MAX_DIMS)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: x%s has %d dims already (heed tensors have at most %d)", op,
                               HEED_S(x), x->ndim, HEED_MAX_DIMS),
               NULL;
    heed_shape s = {.ndim = x->ndim + 1};
    for (int k = 0, j = 0; k < s.ndim; k++) s.d[k] = k == d ? 1 : x->shape[j++];
    return heed_reshape(g, x, s);
}

/* Positions of the k best of the n values xs[j * stride] into idx[j * idx_stride], in
 * rank order (sorted) or in ascending position. scratch holds n entries. Small k keeps a
 * sorted list of the best k (one comparison per value for most values); large k sorts. */

static void line_topk(heed_dtype dt, const void *xs_, int64_t n, int64_t stride, int64_t k, bool largest, bool sorted,
                      ranked *scratch, int64_t *idx, int64_t idx_stride) {
    if (k == 0) return;
    int64_t m = dt == HEED_F32 ? line_topk_kernel_f32(xs_, k, n, stride, largest, scratch)
                               : line_topk_kernel_f64(xs_, k, n, stride, largest, scratch);
    if (!sorted) qsort(scratch, (size_t)m, sizeof *scratch, cmp_position);
    for (int64_t j = 0; j < k; j++) idx[j * idx_stride] = scratch[j].i;
}

/* Runs line_topk over every (outer, inner) line of x along dim d; idx is laid out like
 * the result ([outer, k, inner]). False when the scratch memory cannot be had. */
static bool topk_lines(const heed_tensor *x, int d, int64_t k, bool largest, bool sorted, int64_t *idx, int threads) {
    int64_t outer, n, inner;
    split3(x, d, &outer, &n, &inner);
    size_t es = heed_dtype_size(x->dtype);
    int64_t lines = outer * inner, scratch_n = k <= INSERTION_MAX_K ? k : n;
    bool ok = true;
#pragma omp parallel if (lines > 1 && x->numel > PARALLEL_MIN) num_threads(threads)
    {
        ranked *scratch = malloc((size_t)(scratch_n ? scratch_n : 1) * sizeof *scratch);
        if (!scratch) {
#pragma omp atomic write
            ok = false;
        }
#pragma omp for schedule(static)
        for (int64_t l = 0; l < lines; l++) {
            if (!scratch) continue;
            int64_t o = l / inner, c = l % inner;
            line_topk(x->dtype, (const char *)x->data + (size_t)(o * n * inner + c) * es, n, inner, k, largest, sorted,
                      scratch, idx + o * k * inner + c, inner);
        }
        free(scratch);
    }
    return ok;
}

heed_status heed_argmax(heed_graph *g, heed_tensor *x, int dim, int64_t *out) {
    const char *op = "heed_argmax";
    if (!heed_check_tensor(g, op, x, "x")) return heed_graph_status(g);
    int d = dim_of(x, dim);
    if (d < 0) {
        fail_dim(g, op, x, dim);
        return heed_graph_status(g);
    }
    if (!out) return heed_graph_fail(g, HEED_ERR_ARG, "%s: out is NULL (it receives one index per result element)", op);
    if (size_at(x, d) == 0)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: dim %d of x%s is empty (no maximum to take)", op, dim,
                               HEED_S(x));
    if (!topk_lines(x, d, 1, true, true, out, heed_ctx_threads_now(g->ctx)))
        return heed_graph_fail(g, HEED_ERR_NOMEM, "%s: out of memory", op);
    return HEED_OK;
}

/* ---------------------------------------------------------------- gather */

static gather_plan make_gather_plan(const heed_tensor *x, int d, int ndim, const int64_t *shape, const int64_t *idx) {
    gather_plan p = {.d = d + 4 - (ndim ? ndim : 1), .idx = idx};
    int64_t sx = 1, sy = 1;
    for (int k = 3; k >= 0; k--) {
        int kx = k - (4 - x->ndim), ky = k - (4 - ndim);
        p.ys[k] = ky >= 0 ? shape[ky] : 1;
        p.yst[k] = sy, p.xst[k] = sx;
        sy *= p.ys[k], sx *= kx >= 0 ? x->shape[kx] : 1;
    }
    return p;
}

/* Forward (scatter = false): y[p] = x[q]. Backward: dx[q] += dy[p]. */
static void gather_move(heed_dtype dt, const gather_plan *p, void *x_, void *y_, bool scatter, int threads) {
    int64_t n = p->ys[p->d], lines = p->ys[0] * p->ys[1] * p->ys[2] * p->ys[3] / (n ? n : 1);
    if (n == 0) return;
    if (dt == HEED_F32) gather_move_kernel_f32(x_, y_, lines, n, threads, p, scatter);
    else gather_move_kernel_f64(x_, y_, lines, n, threads, p, scatter);
}

static void gather_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *x = nd->in[0], *y = nd->out[0];
    void *gx = heed_grad_buffer(g, x);
    if (!gx) return;
    gather_plan p = make_gather_plan(x, (int)nd->iarg[0], y->ndim, y->shape, nd->saved);
    gather_move(x->dtype, &p, gx, y->grad, true, heed_ctx_threads_now(g->ctx));
}

static const heed_op op_gather = {"heed_gather", gather_backward};
static const heed_op op_topk = {"heed_topk", gather_backward};

/* y of the given shape from x at idx (already checked); idx is copied when recorded,
 * unless it is already the graph's (idx_owned). */
static heed_tensor *gather_impl(heed_graph *g, const heed_op *op, heed_tensor *x, int d, int ndim, const int64_t *shape,
                                const int64_t *idx, bool idx_owned) {
    heed_tensor *y = heed__new(g, op->name, x->dtype, ndim, shape);
    if (!y) return NULL;
    gather_plan p = make_gather_plan(x, d, ndim, shape, idx);
    gather_move(x->dtype, &p, x->data, y->data, false, heed_ctx_threads_now(g->ctx));
    heed_node *nd = heed_record(g, op, 1, &x, 1, &y);
    if (nd) {
        int64_t *copy =
            idx_owned ? (int64_t *)idx : heed_graph_alloc(g, (size_t)(y->numel ? y->numel : 1) * sizeof *copy);
        if (copy && !idx_owned) memcpy(copy, idx, (size_t)y->numel * sizeof *copy);
        nd->saved = copy;
        nd->iarg[0] = d;
    }
    return heed_graph_ok(g) ? y : NULL;
}

heed_tensor *heed_gather(heed_graph *g, heed_tensor *x, int dim, const int64_t *index, heed_shape index_shape) {
    const char *op = "heed_gather";
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    int d = dim_of(x, dim);
    if (d < 0) return fail_dim(g, op, x, dim);
    if (index_shape.ndim != x->ndim)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: index_shape has %d dims, x%s has %d (they must be equal)", op,
                               index_shape.ndim, HEED_S(x), x->ndim),
               NULL;
    int64_t numel = 1;
    for (int k = 0; k < x->ndim; k++) {
        int64_t s = index_shape.d[k];
        if (s < 0 || (k != d && s > x->shape[k]))
            return heed_graph_fail(
                       g, HEED_ERR_SHAPE,
                       "%s: index%s does not fit x%s at dim %d (need 0 <= index size <= x size for every dim "
                       "but dim %d)",
                       op, HEED_SHAPE_S(index_shape), HEED_S(x), k, d),
                   NULL;
        numel *= s;
    }
    if (numel > 0 && !index)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: index is NULL for index_shape %s", op, HEED_SHAPE_S(index_shape)),
               NULL;
    int64_t n = size_at(x, d);
    for (int64_t p = 0; p < numel; p++)
        if (index[p] < 0 || index[p] >= n)
            return heed_graph_fail(g, HEED_ERR_ARG,
                                   "%s: index[%lld] = %lld is out of range [0, %lld) for dim %d of x%s", op,
                                   (long long)p, (long long)index[p], (long long)n, dim, HEED_S(x)),
                   NULL;
    return gather_impl(g, &op_gather, x, d, x->ndim, index_shape.d, index, false);
}

/* ---------------------------------------------------------------- topk */

heed_tensor *heed_topk(heed_graph *g, heed_tensor *x, int64_t k, int dim, int flags, int64_t *indices) {
    const char *op = "heed_topk";
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    if (flags & ~(HEED_TOPK_SMALLEST | HEED_TOPK_UNSORTED))
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: flags = %d (0 or HEED_TOPK_SMALLEST | HEED_TOPK_UNSORTED)", op,
                               flags),
               NULL;
    bool largest = !(flags & HEED_TOPK_SMALLEST), sorted = !(flags & HEED_TOPK_UNSORTED);
    int d = dim_of(x, dim);
    if (d < 0) return fail_dim(g, op, x, dim);
    int64_t n = size_at(x, d);
    if (k < 0 || k > n)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: k = %lld is out of range for dim %d of x%s (need 0 <= k <= %lld)",
                               op, (long long)k, dim, HEED_S(x), (long long)n),
               NULL;
    int64_t shape[HEED_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) shape[i] = i == d ? k : x->shape[i];
    int64_t numel = x->numel / (n ? n : 1) * k;
    if (n == 0) numel = 0;
    int64_t *idx = indices ? indices : heed_graph_alloc(g, (size_t)(numel ? numel : 1) * sizeof *idx);
    if (!idx) return NULL;
    if (!topk_lines(x, d, k, largest, sorted, idx, heed_ctx_threads_now(g->ctx)))
        return heed_graph_fail(g, HEED_ERR_NOMEM, "%s: out of memory", op), NULL;
    return gather_impl(g, &op_topk, x, d, x->ndim, shape, idx, idx != indices);
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

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
#endif
