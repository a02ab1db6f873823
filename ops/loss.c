/* Losses: cross-entropy over logits, binary cross-entropy with logits, mean squared
 * error. Each returns a scalar (0-dim) tensor of the input's dtype (cross-entropy with
 * reduction none: one loss per row). A mean over nothing
 * (every row ignored, all weights zero, empty inputs) is 0 with zero gradients.
 * Sums run in double over fixed blocks, so the value does not depend on the thread count. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "rowops.h"
#include "heed/loss.h"

#include <tgmath.h>

#define BLOCK 4096 /* elements (or rows) per block of a deterministic parallel sum */

static int64_t nblocks(int64_t n) { return (n + BLOCK - 1) / BLOCK; }

/* ================================================================ cross-entropy
 *
 * Row i with target t, lse = log sum_c exp(x_c), logp_c = x_c - lse, smoothing s, C classes:
 *   l_i = (1 - s) * (-logp_t) + s * mean_c(-logp_c)        (PyTorch's label smoothing)
 *       = lse - (1 - s) x_t - s * sum_c x_c / C
 *   loss = sum_i l_i / count (mean; count = rows whose target is not ignore_index),
 *          sum_i l_i (sum), or the vector l (none); ignored rows have l_i = 0.
 * dl_i / dx_c = softmax_c - (1 - s) [c == t] - s / C, with softmax_c = exp(x_c - lse);
 * row i's gradient is that times k_i = dy / count, dy, or dy_i for the three reductions.
 * lse is saved as two parts, m = max_c x_c and log S = lse - m = log sum_c exp(x_c - m)
 * (heed__row_lse), and backward computes softmax_c = exp((x_c - m) - log S). Both
 * differences are small, so in f32 the result has the error of a few roundings of numbers
 * of size log C. exp(x_c - (float)lse) would not: lse rounded to f32 is off by up to
 * |lse| 2^-24 (2^-11 at logits of 1e4), and every softmax_c by that much relatively,
 * although softmax does not change when a constant is added to the row.
 * A fully masked row (all logits -inf) follows heed_log_softmax (log-probs 0): it counts
 * in `count` but adds 0 to the loss and gets zero gradient. */

typedef struct {
    int64_t n, c;
    int64_t *targets;  /* copied: the caller's buffer may change before backward */
    heed_row_lse *lse; /* per row: max and logsum, lse = max + logsum */
    double count, smoothing;
    int64_t ignore_index;
    heed_reduction reduction;
} ce_saved;

static bool ce_row_active(const ce_saved *s, int64_t i) {
    return s->targets[i] != s->ignore_index && s->lse[i].max != -INFINITY;
}

#define PER_ISA_FILE "../ops/loss_vec.h"
#include "../graph/per_isa.h"

/* The f32 gradient row of the widest ISA heed_isa() allows; NULL: the scalar loop. */
typedef void (*ce_grad_row_fn)(const float *x, float *dx, int64_t c, float m, float logsum, float k, float off);
static ce_grad_row_fn ce_grad_row_f32(void) { return HEED_WIDEST(ce_grad_row, NULL); }

/* bce_with_logits (see below) */
typedef struct {
    int64_t n[4], ws[4]; /* x's shape padded to 4 dims; weight strides (0 where broadcast) */
    double W, L;
} bce_saved;

static inline double bce_term(double x, double y) { return fmax(x, 0) - x * y + log1p(exp(-fabs(x))); }

/* Offset of x's flat element i in the broadcast weight. */
static inline int64_t w_offset(const bce_saved *s, int64_t i) {
    int64_t off = 0;
    for (int d = 3; d >= 0; d--) {
        off += (i % s->n[d]) * s->ws[d];
        i /= s->n[d];
    }
    return off;
}

#define T float
#define FN(name) name##_f32
#include "loss.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "loss.c"
#undef T
#undef FN

static void ce_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *x = nd->in[0], *y = nd->out[0];
    const ce_saved *s = nd->saved;
    void *gx = heed_grad_buffer(g, x);
    if (!gx || s->count == 0) return;
    int64_t n = s->n, c = s->c;
    double off = s->smoothing / (double)c, hit = 1 - s->smoothing;
    ce_grad_row_fn vec_row = ce_grad_row_f32();
    if (x->dtype == HEED_F32) ce_backward_kernel_f32(x, y, gx, s, n, c, g, vec_row, off, hit);
    else ce_backward_kernel_f64(x, y, gx, s, n, c, g, vec_row, off, hit);
}

static const heed_op op_ce = {"heed_cross_entropy", ce_backward};

heed_tensor *heed_cross_entropy(heed_graph *g, heed_tensor *logits, const int64_t *targets, const heed_ce_opts *opts) {
    const char *op = "heed_cross_entropy";
    if (!heed_check_tensor(g, op, logits, "logits")) return NULL;
    heed_ce_opts o = opts ? *opts : (heed_ce_opts){0};
    if (o.ignore_index == 0 && !o.has_ignore_index) o.ignore_index = -100;
    o.label_smoothing = heed__opt(o.label_smoothing, 0);
    if (logits->ndim != 2)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: logits%s must be 2-D [N, C]", op, HEED_S(logits)), NULL;
    int64_t n = logits->shape[0], c = logits->shape[1];
    if (c < 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: logits%s has no classes (C must be >= 1)", op, HEED_S(logits)),
               NULL;
    if (!(o.label_smoothing >= 0 && o.label_smoothing <= 1))
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: label_smoothing = %g (must be in [0, 1])", op, o.label_smoothing),
               NULL;
    if (o.reduction != HEED_REDUCE_MEAN && o.reduction != HEED_REDUCE_SUM && o.reduction != HEED_REDUCE_NONE)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: reduction = %d (must be HEED_REDUCE_MEAN, _SUM or _NONE)", op,
                               (int)o.reduction),
               NULL;
    if (n > 0 && !targets)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: targets is NULL (logits%s needs %lld)", op, HEED_S(logits),
                               (long long)n),
               NULL;
    for (int64_t i = 0; i < n; i++)
        if (targets[i] != o.ignore_index && (targets[i] < 0 || targets[i] >= c))
            return heed_graph_fail(
                       g, HEED_ERR_ARG,
                       "%s: targets[%lld] = %lld is out of range for logits%s (must be in [0, %lld) or ignore_index %lld)",
                       op, (long long)i, (long long)targets[i], HEED_S(logits), (long long)c,
                       (long long)o.ignore_index),
                   NULL;
    bool none = o.reduction == HEED_REDUCE_NONE;
    heed_tensor *y = heed__new(g, op, logits->dtype, none ? 1 : 0, &n);
    ce_saved *s = heed_graph_alloc(g, sizeof *s);
    heed_row_lse *lse = heed_graph_alloc(g, (size_t)(n ? n : 1) * sizeof *lse);
    double *rowloss = heed_graph_alloc(g, (size_t)(n ? n : 1) * sizeof *rowloss);
    int64_t *tg = heed_graph_alloc(g, (size_t)(n ? n : 1) * sizeof *tg);
    if (!y || !s || !lse || !rowloss || !tg) return NULL;
    if (n) memcpy(tg, targets, (size_t)n * sizeof *tg);
    *s = (ce_saved){.n = n,
                    .c = c,
                    .targets = tg,
                    .lse = lse,
                    .smoothing = o.label_smoothing,
                    .ignore_index = o.ignore_index,
                    .reduction = o.reduction};
    double sm = o.label_smoothing;
    if (logits->dtype == HEED_F32) ce_forward_kernel_f32(logits, n, c, g, rowloss, lse, tg, o, sm, s, y, none);
    else ce_forward_kernel_f64(logits, n, c, g, rowloss, lse, tg, o, sm, s, y, none);
    heed_node *nd = heed_record(g, &op_ce, 1, &logits, 1, &y);
    if (nd) nd->saved = s;
    return heed_graph_ok(g) ? y : NULL;
}

/* ================================================================ BCE with logits
 *
 * l_i = max(x,0) - x y + log1p(exp(-|x|)), which is -[y log sigmoid(x) + (1-y) log(1 - sigmoid(x))]
 * written so that exp never overflows. With weights w (broadcast to x; 1 when absent) and
 * W = sum_i w_i:  L = sum_i w_i l_i / W.
 *   dL/dx_i = w_i (sigmoid(x_i) - y_i) / W,   dL/dy_i = -w_i x_i / W,
 *   dL/dw_i = (l_i - L) / W   (summed back over the dims w was broadcast along). */

static void bce_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *x = nd->in[0], *t = nd->in[1], *w = nd->n_in > 2 ? nd->in[2] : NULL, *out = nd->out[0];
    const bce_saved *s = nd->saved;
    void *gx_ = heed_grad_buffer(g, x), *gt_ = heed_grad_buffer(g, t), *gw_ = heed_grad_buffer(g, w);
    if (s->W == 0) return;
    int64_t n = x->numel;
    if (x->dtype == HEED_F32) bce_backward_kernel_f32(x, t, w, gx_, gt_, gw_, out, s, n, g);
    else bce_backward_kernel_f64(x, t, w, gx_, gt_, gw_, out, s, n, g);
}

static const heed_op op_bce = {"heed_bce_with_logits", bce_backward};

heed_tensor *heed_bce_with_logits(heed_graph *g, heed_tensor *x, heed_tensor *y, heed_tensor *weight) {
    const char *op = "heed_bce_with_logits";
    if (!heed_check_tensor(g, op, x, "x") || !heed__check_like(g, op, y, "y", x)) return NULL;
    if (weight && !heed__check_like(g, op, weight, "weight", x)) return NULL;
    bool same = x->ndim == y->ndim;
    for (int i = 0; same && i < x->ndim; i++) same = x->shape[i] == y->shape[i];
    if (!same)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: x%s and y%s must have the same shape", op, HEED_S(x), HEED_S(y)),
               NULL;
    bce_saved *s = heed__zalloc(g, sizeof *s);
    heed_tensor *out = heed__new(g, op, x->dtype, 0, NULL);
    if (!s || !out) return NULL;
    /* Weight strides against x's shape, both padded on the left to 4 dims. */
    for (int d = 0; d < 4; d++) {
        int k = d - (4 - x->ndim);
        s->n[d] = k >= 0 ? x->shape[k] : 1;
    }
    if (weight) {
        bool ok = weight->ndim <= x->ndim;
        int64_t stride = 1;
        for (int d = 3; d >= 0 && ok; d--) {
            int k = d - (4 - weight->ndim);
            int64_t wd = k >= 0 ? weight->shape[k] : 1;
            ok = wd == s->n[d] || wd == 1;
            s->ws[d] = wd == 1 ? 0 : stride;
            stride *= wd;
        }
        if (!ok)
            return heed_graph_fail(g, HEED_ERR_SHAPE,
                                   "%s: weight%s does not broadcast to x%s (weight dims must equal x's or be 1)", op,
                                   HEED_S(weight), HEED_S(x)),
                   NULL;
    }
    int64_t n = x->numel, nb = nblocks(n);
    double *bl = heed_graph_alloc(g, (size_t)(nb ? nb : 1) * 2 * sizeof *bl); /* per block: sum w*l, sum w */
    if (!bl) return NULL;
    if (x->dtype == HEED_F32) bce_forward_kernel_f32(x, y, weight, nb, g, n, s, bl, out);
    else bce_forward_kernel_f64(x, y, weight, nb, g, n, s, bl, out);
    heed_tensor *in[3] = {x, y, weight};
    heed_node *nd = heed_record(g, &op_bce, weight ? 3 : 2, in, 1, &out);
    if (nd) nd->saved = s;
    return heed_graph_ok(g) ? out : NULL;
}

/* ================================================================ MSE
 *
 * L = sum_i (a_i - b_i)^2 / n:   dL/da_i = 2 (a_i - b_i) / n,   dL/db_i = -dL/da_i. */

static void mse_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *a = nd->in[0], *b = nd->in[1], *out = nd->out[0];
    void *ga_ = heed_grad_buffer(g, a), *gb_ = heed_grad_buffer(g, b);
    int64_t n = a->numel;
    if (n == 0) return;
    if (a->dtype == HEED_F32) mse_backward_kernel_f32(a, b, ga_, gb_, out, n, g);
    else mse_backward_kernel_f64(a, b, ga_, gb_, out, n, g);
}

static const heed_op op_mse = {"heed_mse", mse_backward};

heed_tensor *heed_mse(heed_graph *g, heed_tensor *a, heed_tensor *b) {
    const char *op = "heed_mse";
    if (!heed_check_tensor(g, op, a, "a") || !heed__check_like(g, op, b, "b", a)) return NULL;
    bool same = a->ndim == b->ndim;
    for (int i = 0; same && i < a->ndim; i++) same = a->shape[i] == b->shape[i];
    if (!same)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: a%s and b%s must have the same shape (no broadcasting)", op,
                               HEED_S(a), HEED_S(b)),
               NULL;
    heed_tensor *out = heed__new(g, op, a->dtype, 0, NULL);
    int64_t n = a->numel, nb = nblocks(n);
    double *bl = heed_graph_alloc(g, (size_t)(nb ? nb : 1) * sizeof *bl);
    if (!out || !bl) return NULL;
    if (a->dtype == HEED_F32) mse_forward_kernel_f32(a, b, nb, g, n, bl, out);
    else mse_forward_kernel_f64(a, b, nb, g, n, bl, out);
    heed_tensor *in[2] = {a, b};
    heed_record(g, &op_mse, 2, in, 1, &out);
    return heed_graph_ok(g) ? out : NULL;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

static void FN(ce_backward_kernel)(heed_tensor *x, heed_tensor *y, void *gx, const ce_saved *s, int64_t n, int64_t c,
                                   heed_graph *g, ce_grad_row_fn vec_row, double off, double hit) {
    const T *X = x->data, *dY = y->grad;
    T *dX = gx;
    bool per_row = s->reduction == HEED_REDUCE_NONE;
    double k_all = s->reduction == HEED_REDUCE_MEAN ? (double)dY[0] / s->count : (double)dY[0];
#pragma omp parallel for schedule(static) if (n > 1 && n * c > 16384) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t i = 0; i < n; i++) {
        if (!ce_row_active(s, i)) continue;
        double k = per_row ? (double)dY[i] : k_all;
        const T *xr = X + i * c;
        T *dxr = dX + i * c;
        if (sizeof(T) == sizeof(float) && vec_row)
            vec_row((const float *)xr, (float *)dxr, c, (float)s->lse[i].max, (float)s->lse[i].logsum, (float)k,
                    (float)off);
        else
            for (int64_t j = 0; j < c; j++)
                dxr[j] += (T)(k * (exp(((double)xr[j] - s->lse[i].max) - s->lse[i].logsum) - off));
        dxr[s->targets[i]] -= (T)(k * hit);
    }
}

static void FN(ce_forward_kernel)(heed_tensor *logits, int64_t n, int64_t c, heed_graph *g, double *rowloss,
                                  heed_row_lse *lse, int64_t *tg, heed_ce_opts o, double sm, ce_saved *s,
                                  heed_tensor *y, bool none) {
    const T *X = logits->data;
#pragma omp parallel for schedule(static) if (n > 1 && n * c > 16384) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t i = 0; i < n; i++) {
        rowloss[i] = 0;
        lse[i] = (heed_row_lse){-INFINITY, 0};
        if (tg[i] == o.ignore_index) continue;
        double sum_x = 0;
        const T *xr = X + i * c;
        lse[i] = sizeof(T) == sizeof(float) ? heed__row_lse_f32((const float *)xr, c, sm > 0 ? &sum_x : NULL)
                                            : heed__row_lse_f64((const double *)xr, c, sm > 0 ? &sum_x : NULL);
        if (lse[i].max == -INFINITY) continue; /* fully masked row */
        double l = lse[i].max + lse[i].logsum - (1 - sm) * (double)xr[tg[i]];
        if (sm > 0) l -= sm * sum_x / (double)c;
        rowloss[i] = l;
    }
    double total = 0, count = 0;
    for (int64_t i = 0; i < n; i++) {
        total += rowloss[i];
        count += tg[i] != o.ignore_index;
    }
    s->count = count;
    T *Y = y->data;
    if (none)
        for (int64_t i = 0; i < n; i++) Y[i] = (T)rowloss[i];
    else Y[0] = (T)(o.reduction == HEED_REDUCE_SUM ? total : count > 0 ? total / count : 0);
}

static void FN(bce_backward_kernel)(heed_tensor *x, heed_tensor *t, heed_tensor *w, void *gx_, void *gt_, void *gw_,
                                    heed_tensor *out, const bce_saved *s, int64_t n, heed_graph *g) {
    const T *X = x->data, *Y = t->data, *Wt = w ? w->data : NULL;
    T *gx = gx_, *gt = gt_, *gw = gw_;
    double k = (double)((const T *)out->grad)[0] / s->W;
    if (gx || gt) {
#pragma omp parallel for schedule(static) if (n > 32768) num_threads(heed_ctx_threads_now(g->ctx))
        for (int64_t i = 0; i < n; i++) {
            double wi = Wt ? (double)Wt[w_offset(s, i)] : 1;
            if (gx) gx[i] += (T)(k * wi * (heed__sigmoid1(X[i]) - Y[i]));
            if (gt) gt[i] -= (T)(k * wi * X[i]);
        }
    }
    if (gw) /* serial: several x elements may share one weight */
        for (int64_t i = 0; i < n; i++) gw[w_offset(s, i)] += (T)(k * (bce_term(X[i], Y[i]) - s->L));
}

static void FN(bce_forward_kernel)(heed_tensor *x, heed_tensor *y, heed_tensor *weight, int64_t nb, heed_graph *g,
                                   int64_t n, bce_saved *s, double *bl, heed_tensor *out) {
    const T *X = x->data, *Y = y->data, *Wt = weight ? weight->data : NULL;
#pragma omp parallel for schedule(static) if (nb > 1) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t b = 0; b < nb; b++) {
        double sl = 0, sw = 0;
        int64_t end = (b + 1) * BLOCK < n ? (b + 1) * BLOCK : n;
        for (int64_t i = b * BLOCK; i < end; i++) {
            double wi = Wt ? (double)Wt[w_offset(s, i)] : 1;
            sl += wi * bce_term(X[i], Y[i]);
            sw += wi;
        }
        bl[2 * b] = sl, bl[2 * b + 1] = sw;
    }
    double sl = 0, sw = 0;
    for (int64_t b = 0; b < nb; b++) sl += bl[2 * b], sw += bl[2 * b + 1];
    s->W = sw;
    s->L = sw != 0 ? sl / sw : 0;
    ((T *)out->data)[0] = (T)s->L;
}

static void FN(mse_backward_kernel)(heed_tensor *a, heed_tensor *b, void *ga_, void *gb_, heed_tensor *out, int64_t n,
                                    heed_graph *g) {
    const T *A = a->data, *B = b->data;
    T *ga = ga_, *gb = gb_;
    T k = (T)(2 * (double)((const T *)out->grad)[0] / (double)n);
#pragma omp parallel for schedule(static) if (n > 32768) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t i = 0; i < n; i++) {
        T d = k * (A[i] - B[i]);
        if (ga) ga[i] += d;
        if (gb) gb[i] -= d;
    }
}

static void FN(mse_forward_kernel)(heed_tensor *a, heed_tensor *b, int64_t nb, heed_graph *g, int64_t n, double *bl,
                                   heed_tensor *out) {
    const T *A = a->data, *B = b->data;
#pragma omp parallel for schedule(static) if (nb > 1) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t k = 0; k < nb; k++) {
        double s = 0;
        int64_t end = (k + 1) * BLOCK < n ? (k + 1) * BLOCK : n;
        for (int64_t i = k * BLOCK; i < end; i++) {
            double d = (double)A[i] - (double)B[i];
            s += d * d;
        }
        bl[k] = s;
    }
    double s = 0;
    for (int64_t k = 0; k < nb; k++) s += bl[k];
    ((T *)out->data)[0] = (T)(n ? s / (double)n : 0);
}
#endif
