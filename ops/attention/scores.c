/* Attention for one decoder step: a query [B,dq] against keys [B,N,*] and values
 * [B,N,dv]. Two kinds of node:
 *   score ops      scores[B,N] from the query and the keys (additive/Bahdanau with optional
 *                  location-aware and coverage features; Luong dot, general, concat);
 *   heed_attend    masked softmax over the valid keys and the weighted sum of the values
 *                  (two outputs: context [B,dv] and weights [B,N]).
 * Both have analytic backward passes; the [B,N] scores between them are the only
 * intermediate. heed_coverage_loss is See et al.'s sum_j min(a_j, cov_j). */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "layers.h"
#include "heed/attention.h"
#include "heed/matmul.h"
#include "../gemm.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <tgmath.h>

#include "../../graph/simd.h"

/* ---------------------------------------------------------------- f32 vector math */

#define PER_ISA_FILE "../ops/attention/scores_vec.h"
#include "../../graph/per_isa.h"

/* The f32 row kernels of scores_vec.h for the widest ISA heed_isa() allows, picked once
 * per op (not per row); all NULL when no vector ISA is on. */
typedef struct {
    void (*tanh_inplace)(float *x, int64_t n);
    double (*dot)(const float *a, const float *b, int64_t n);
    void (*axpy)(float *y, float a, const float *x, int64_t n);
} row_kernels;

static row_kernels pick_row_kernels(void) {
    if (!heed__have_avx2()) return (row_kernels){0};
    return (row_kernels){HEED_WIDEST(tanh_f32, tanh_f32_avx2), HEED_WIDEST(dot_f64acc, dot_f64acc_avx2),
                         HEED_WIDEST(axpy_f32, axpy_f32_avx2)};
}

/* sum_e a[e] b[e] in f64 (the dot products s_j = v . tanh(pre_j) and dc . v_j):
 * vectorised for f32 when rk has the kernels, else one scalar sum. */
static double dot_f64acc_f32(const float *a, const float *b, int64_t n, const row_kernels *rk) {
    if (rk->dot) return rk->dot(a, b, n);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}
static double dot_f64acc_f64(const double *a, const double *b, int64_t n, const row_kernels *rk) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* y[i] += a x[i] (the weighted sums of heed_attend), vectorised for f32 when rk has the
 * kernels. */
static void axpy_f32(float *y, float a, const float *x, int64_t n, const row_kernels *rk) {
    if (rk->axpy) rk->axpy(y, a, x, n);
    else
        for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}
static void axpy_f64(double *y, double a, const double *x, int64_t n, const row_kernels *rk) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* x[i] = tanh(x[i]) for one row: SLEEF for f32 when rk has the kernels. */
static void tanh_row_f32(float *x, int64_t n, const row_kernels *rk) {
    if (rk->tanh_inplace) rk->tanh_inplace(x, n);
    else
        for (int64_t i = 0; i < n; i++) x[i] = tanhf(x[i]);
}
static void tanh_row_f64(double *x, int64_t n, const row_kernels *rk) {
    for (int64_t i = 0; i < n; i++) x[i] = tanh(x[i]);
}

/* tanh scores (below): */
/* Additive (Bahdanau) and Luong-concat scores share one kernel:
 *   pre_j = Wq q + b + K'_j + U f_j + w_c cov_j,   s_j = v . tanh(pre_j)
 * with K'_j = W_k k_j given (additive: keys_proj) or computed here (concat: W = [Wq | Wk]),
 * f_j = conv1d(prev weights)_j (location-aware) and cov_j the coverage (optional). */
typedef struct {
    int64_t B, N, dq, dk, da, C, K;
    bool concat;
    /* input slots on the node, -1 when absent */
    int i_query, i_keys, i_w, i_bias, i_v, i_prev, i_filt, i_proj, i_cov, i_covw;
    void *t;    /* tanh(pre) [B*N, da] */
    void *feat; /* location features f [B*N, C] */
} tanh_plan;

static heed_tensor *slot(heed_node *nd, int i) { return i >= 0 ? nd->in[i] : NULL; }

/* Rows (b, j) per block when nothing is recorded: pre (and the location features) are
 * then scratch for one block instead of [B*N, da] buffers kept for backward. */
#define NOGRAD_BLOCK_ELEMS 8192

/* Location features for rows [i0, i0 + nr), defined below (the kernels call it). */
static void location_features(const tanh_plan *p, heed_dtype dt, const void *prev_, const void *filt_, int64_t i0,
                              int64_t nr, void *feat_, int threads);

#define T float
#define FN(name) name##_f32
#include "scores.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "scores.c"
#undef T
#undef FN

/* f[b,j,c] = sum_t F[c,t] prev[b, j + t - h] with h = (K-1)/2 and zero padding
 * (PyTorch's Conv1d(1, C, K, padding=h) without bias), for the rows bj in [i0, i0 + nr)
 * into feat rows 0 .. nr-1. */
static void location_features(const tanh_plan *p, heed_dtype dt, const void *prev_, const void *filt_, int64_t i0,
                              int64_t nr, void *feat_, int threads) {
    int64_t N = p->N, C = p->C, K = p->K, h = (K - 1) / 2;
    if (dt == HEED_F32) location_features_kernel_f32(prev_, filt_, feat_, nr, C, K, threads, i0, N, h);
    else location_features_kernel_f64(prev_, filt_, feat_, nr, C, K, threads, i0, N, h);
}

/* ---------------------------------------------------------------- heed_attend */

/* Backward. With w = softmax(s) over the valid keys, c = sum_j w_j v_j and an outside
 * gradient gw on the weights output:
 *   dw_j = gw_j + dc . v_j,   dv_j += w_j dc,   ds_j = w_j (dw_j - sum_i w_i dw_i).
 * Masked keys have w_j = 0, so every term gives them zero gradient. */
static void attend_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *s = nd->in[0], *v = nd->in[1], *ctx = nd->out[0], *w = nd->out[1];
    int64_t B = v->shape[0], N = v->shape[1], dv = v->shape[2];
    const int64_t *len = nd->saved;
    void *gs_ = heed_grad_buffer(g, s), *gv_ = heed_grad_buffer(g, v);
    double *dw_all = gs_ ? heed_graph_alloc(g, (size_t)(B * N > 0 ? B * N : 1) * sizeof(double)) : NULL;
    if (gs_ && !dw_all) return;
    if (s->dtype == HEED_F32) attend_backward_kernel_f32(w, v, ctx, gs_, gv_, B, N, dv, g, dw_all, len);
    else attend_backward_kernel_f64(w, v, ctx, gs_, gv_, B, N, dv, g, dw_all, len);
}

static const heed_op op_attend = {"heed_attend", attend_backward};

heed_tensor *heed_attend(heed_graph *g, heed_tensor *scores, heed_tensor *values, const int64_t *key_lengths,
                         heed_tensor **weights) {
    const char *op = "heed_attend";
    if (weights) *weights = NULL;
    if (!heed_check_tensor(g, op, scores, "scores") || !heed__check_like(g, op, values, "values", scores)) return NULL;
    if (scores->ndim != 2)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: scores%s must be [B,N]", op, HEED_S(scores)), NULL;
    int64_t B = scores->shape[0], N = scores->shape[1];
    if (!HEED__EXPECT(g, op, values, "values", scores, "[B,N,dv]", B, N, -1)) return NULL;
    int64_t dv = values->shape[2];
    int64_t *len = heed__key_lengths(g, op, key_lengths, B, N);
    heed_tensor *ctx = len ? heed__zeros(g, op, scores->dtype, 2, (int64_t[]){B, dv}) : NULL;
    heed_tensor *w = ctx ? heed__zeros(g, op, scores->dtype, 2, (int64_t[]){B, N}) : NULL;
    if (!w) return NULL;
    if (scores->dtype == HEED_F32) attend_kernel_f32(scores, values, ctx, w, B, N, dv, g, len);
    else attend_kernel_f64(scores, values, ctx, w, B, N, dv, g, len);
    heed_tensor *in[2] = {scores, values}, *out[2] = {ctx, w};
    heed_node *nd = heed_record(g, &op_attend, 2, in, 2, out);
    if (nd) nd->saved = len;
    if (!heed_graph_ok(g)) return NULL;
    if (weights) *weights = w;
    return ctx;
}

/* ---------------------------------------------------------------- tanh scores */

/* Backward. With dpre_j = ds_j * v * (1 - tanh(pre_j)^2):
 *   dv += sum_j ds_j tanh(pre_j);  dK'_j = dpre_j;  dq = Wq^T sum_j dpre_j;
 *   dWq += (sum_j dpre_j) q^T;  db += sum_j dpre_j;
 *   concat: dk_j = Wk^T dpre_j, dWk += dpre_j k_j^T;
 *   location: dU += dpre_j f_j^T, df_j = U^T dpre_j, then through the convolution
 *     dF[c,t] += sum_{b,j} df[b,j,c] prev[b,j+t-h],  dprev[b,i] += sum_{c,t} df[b,i-t+h,c] F[c,t];
 *   coverage: dw_c += sum_j dpre_j cov_j,  dcov_j = w_c . dpre_j. */
static void tanh_score_backward(heed_graph *g, heed_node *nd) {
    const tanh_plan *p = nd->saved;
    heed_tensor *S = nd->out[0], *query = slot(nd, p->i_query), *keys = slot(nd, p->i_keys), *w = slot(nd, p->i_w),
                *bias = slot(nd, p->i_bias), *v = slot(nd, p->i_v), *prev = slot(nd, p->i_prev),
                *filt = slot(nd, p->i_filt), *proj = slot(nd, p->i_proj), *cov = slot(nd, p->i_cov),
                *covw = slot(nd, p->i_covw);
    heed_dtype dt = S->dtype;
    int64_t B = p->B, N = p->N, BN = B * N, dq = p->dq, dk = p->dk, da = p->da, C = p->C, K = p->K, h = (K - 1) / 2;
    int64_t ldw = p->concat ? dq + dk : dq;
    size_t es = heed_dtype_size(dt);
    void *gq = heed_grad_buffer(g, query), *gk = heed_grad_buffer(g, keys), *gw = heed_grad_buffer(g, w),
         *gb = heed_grad_buffer(g, bias), *gv = heed_grad_buffer(g, v), *gprev = heed_grad_buffer(g, prev),
         *gfilt = heed_grad_buffer(g, filt), *gproj = heed_grad_buffer(g, proj), *gcov = heed_grad_buffer(g, cov),
         *gcovw = heed_grad_buffer(g, covw);
    /* dpre is kept only when a GEMM needs it (concat keys, location features) */
    bool keep = (p->concat && (gk || gw)) || (prev && (gprev || gfilt || gproj));
    int nthreads = heed_ctx_threads(g->ctx);
    void *dpre_ = keep ? heed_graph_alloc(g, (size_t)(BN * da > 0 ? BN * da : 1) * es) : NULL;
    void *dqp_ = heed__zalloc(g, (size_t)(B * da > 0 ? B * da : 1) * es);
    /* partial sums of dv, dw_c over nthreads fixed ranges of rows (the ctx's count, not the
     * team's, which is smaller on a busy machine: the sums do not change with the load) */
    double *part = heed__zalloc(g, (size_t)nthreads * (size_t)(2 * da) * sizeof(double));
    void *rows_ =
        heed_graph_alloc(g, (size_t)nthreads * (size_t)(da > 0 ? da : 1) * es); /* one row of dpre per range */
    if ((keep && !dpre_) || !dqp_ || !part || !rows_) return;
    if (dt == HEED_F32)
        tanh_score_backward_kernel_f32(p, S, v, cov, covw, dpre_, dqp_, gk, gcov, BN, da, nthreads,
                                       heed_ctx_threads_now(g->ctx), part, rows_, B, N, gv, gcovw, gb);
    else
        tanh_score_backward_kernel_f64(p, S, v, cov, covw, dpre_, dqp_, gk, gcov, BN, da, nthreads,
                                       heed_ctx_threads_now(g->ctx), part, rows_, B, N, gv, gcovw, gb);
    if (gq) heed_gemm(dt, false, false, B, dq, da, 1, dqp_, da, w->data, ldw, 1, gq, dq);
    if (gw) heed_gemm(dt, true, false, da, dq, B, 1, dqp_, da, query->data, dq, 1, gw, ldw);
    if (p->concat) {
        if (gk)
            heed_gemm(dt, false, false, BN, dk, da, 1, dpre_, da, (char *)w->data + (size_t)dq * es, ldw, 1, gk, dk);
        if (gw)
            heed_gemm(dt, true, false, da, dk, BN, 1, dpre_, da, keys->data, dk, 1, (char *)gw + (size_t)dq * es, ldw);
    }
    if (!prev || !(gprev || gfilt || gproj)) return;
    if (gproj) heed_gemm(dt, true, false, da, C, BN, 1, dpre_, da, p->feat, C, 1, gproj, C);
    if (!gprev && !gfilt) return;
    void *df_ = heed_graph_alloc(g, (size_t)(BN * C > 0 ? BN * C : 1) * es);
    if (!df_) return;
    heed_gemm(dt, false, false, BN, C, da, 1, dpre_, da, proj->data, C, 0, df_, C);
    if (dt == HEED_F32) location_backward_kernel_f32(df_, prev, filt, gfilt, BN, C, K, g, B, N, h, gprev);
    else location_backward_kernel_f64(df_, prev, filt, gfilt, BN, C, K, g, B, N, h, gprev);
}

static const heed_op op_additive = {"heed_additive_score", tanh_score_backward};
static const heed_op op_concat = {"heed_luong_score(concat)", tanh_score_backward};

/* Forward of both tanh scores; inputs already validated. in[] holds the non-NULL inputs in
 * the slot order recorded in p. When recorded, pre = tanh(...) [B*N, da] and the location
 * features [B*N, C] cover every row and are saved; otherwise the rows run in blocks
 * through small scratch buffers. */
static heed_tensor *tanh_score_forward(heed_graph *g, const char *opname, const heed_op *op, tanh_plan *p, int n_in,
                                       heed_tensor **in) {
    heed_node tmp = {.in = in};
    heed_tensor *query = slot(&tmp, p->i_query), *keys = slot(&tmp, p->i_keys), *w = slot(&tmp, p->i_w),
                *bias = slot(&tmp, p->i_bias), *v = slot(&tmp, p->i_v), *prev = slot(&tmp, p->i_prev),
                *filt = slot(&tmp, p->i_filt), *proj = slot(&tmp, p->i_proj), *cov = slot(&tmp, p->i_cov),
                *covw = slot(&tmp, p->i_covw);
    heed_dtype dt = query->dtype;
    size_t es = heed_dtype_size(dt);
    int64_t B = p->B, N = p->N, BN = B * N, dq = p->dq, dk = p->dk, da = p->da, C = p->C;
    int64_t ldw = p->concat ? dq + dk : dq;
    bool record = heed_graph_records(g, n_in, in);
    int64_t widest = da > C ? da : C, blk = record ? BN : NOGRAD_BLOCK_ELEMS / (widest > 0 ? widest : 1);
    if (blk < 1) blk = 1;
    if (blk > BN) blk = BN;
    void *pre_ = heed_graph_alloc(g, (size_t)(blk * da > 0 ? blk * da : 1) * es);
    void *qp_ = heed_graph_alloc(g, (size_t)(B * da > 0 ? B * da : 1) * es);
    void *feat_ = prev ? heed_graph_alloc(g, (size_t)(blk * C > 0 ? blk * C : 1) * es) : NULL;
    heed_tensor *S = heed__new(g, opname, dt, 2, (int64_t[]){B, N});
    if (!pre_ || !qp_ || (prev && !feat_) || !S) return NULL;
    heed_gemm(dt, false, true, B, da, dq, 1, query->data, dq, w->data, ldw, 0, qp_, da);
    row_kernels rk = pick_row_kernels();
    bool gemm_term = p->concat || prev, threads = BN * da > 32768;
    if (dt == HEED_F32)
        tanh_score_forward_kernel_f32(qp_, S, p, keys, bias, cov, covw, v, B, da, BN, blk, dt, dk, es, w, dq, ldw, pre_,
                                      prev, filt, feat_, g, C, proj, threads, N, gemm_term, &rk);
    else
        tanh_score_forward_kernel_f64(qp_, S, p, keys, bias, cov, covw, v, B, da, BN, blk, dt, dk, es, w, dq, ldw, pre_,
                                      prev, filt, feat_, g, C, proj, threads, N, gemm_term, &rk);
    p->t = pre_, p->feat = feat_;
    heed_node *nd = heed_record(g, op, n_in, in, 1, &S); /* records exactly when `record` */
    if (nd && (nd->saved = heed_graph_alloc(g, sizeof *p))) *(tanh_plan *)nd->saved = *p;
    return heed_graph_ok(g) ? S : NULL;
}

static int add_slot(heed_tensor **in, int *n, heed_tensor *t) {
    if (!t) return -1;
    in[*n] = t;
    return (*n)++;
}

heed_tensor *heed_additive_keys(heed_graph *g, heed_tensor *keys, heed_tensor *w_k, heed_tensor *bias) {
    if (heed_graph_ok(g) && keys && keys->ndim != 3)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "heed_additive_keys: keys%s must be [B,N,dk]", HEED_S(keys)), NULL;
    return heed_linear(g, keys, w_k, bias);
}

heed_tensor *heed_additive_score(heed_graph *g, heed_tensor *query, heed_tensor *keys_proj,
                                 const heed_additive_params *ap, heed_tensor *prev_weights, heed_tensor *coverage) {
    const char *op = "heed_additive_score";
    if (!heed_graph_ok(g)) return NULL;
    if (!ap) return heed_graph_fail(g, HEED_ERR_ARG, "%s: params is NULL", op), NULL;
    if (!heed_check_tensor(g, op, query, "query") || query->ndim != 2)
        return heed_graph_ok(g)
                   ? (heed_graph_fail(g, HEED_ERR_SHAPE, "%s: query%s must be [B,dq]", op, HEED_S(query)), NULL)
                   : NULL;
    int64_t B = query->shape[0], dq = query->shape[1];
    if (!heed__check_like(g, op, keys_proj, "keys_proj", query)) return NULL;
    if (keys_proj->ndim != 3 || keys_proj->shape[0] != B)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: keys_proj%s must be [B,N,da] with B = %lld (query%s)", op,
                               HEED_S(keys_proj), (long long)B, HEED_S(query)),
               NULL;
    int64_t N = keys_proj->shape[1], da = keys_proj->shape[2];
    tanh_plan p =
        {.B = B, .N = N, .dq = dq, .da = da, .i_prev = -1, .i_filt = -1, .i_proj = -1, .i_cov = -1, .i_covw = -1};
    if (!HEED__EXPECT(g, op, ap->w_q, "params.w_q", query, "[da,dq]", da, dq) ||
        !HEED__EXPECT(g, op, ap->v, "params.v", query, "[da]", da) ||
        (ap->bias && !HEED__EXPECT(g, op, ap->bias, "params.bias", query, "[da]", da)))
        return NULL;
    if (ap->loc_filters || ap->loc_proj || prev_weights) {
        if (!ap->loc_filters || !ap->loc_proj || !prev_weights)
            return heed_graph_fail(
                       g, HEED_ERR_ARG,
                       "%s: location-aware attention needs params.loc_filters, params.loc_proj and prev_weights "
                       "together (got %s, %s, %s)",
                       op, ap->loc_filters ? "filters" : "NULL", ap->loc_proj ? "proj" : "NULL",
                       prev_weights ? "prev_weights" : "NULL"),
                   NULL;
        if (!heed__check_like(g, op, ap->loc_filters, "params.loc_filters", query)) return NULL;
        if (ap->loc_filters->ndim != 2 || ap->loc_filters->shape[0] < 1 || ap->loc_filters->shape[1] < 1 ||
            ap->loc_filters->shape[1] % 2 == 0)
            return heed_graph_fail(
                       g, HEED_ERR_SHAPE,
                       "%s: params.loc_filters%s must be [C,K] with C >= 1 channels and an odd window K >= 1 "
                       "(centred convolution)",
                       op, HEED_S(ap->loc_filters)),
                   NULL;
        p.C = ap->loc_filters->shape[0], p.K = ap->loc_filters->shape[1];
        if (!HEED__EXPECT(g, op, ap->loc_proj, "params.loc_proj", query, "[da,C]", da, p.C) ||
            !HEED__EXPECT(g, op, prev_weights, "prev_weights", query, "[B,N]", B, N))
            return NULL;
    }
    if (ap->cov_weight || coverage) {
        if (!ap->cov_weight || !coverage)
            return heed_graph_fail(g, HEED_ERR_ARG,
                                   "%s: coverage attention needs params.cov_weight and coverage together", op),
                   NULL;
        if (!HEED__EXPECT(g, op, ap->cov_weight, "params.cov_weight", query, "[da]", da) ||
            !HEED__EXPECT(g, op, coverage, "coverage", query, "[B,N]", B, N))
            return NULL;
    }
    heed_tensor *in[10];
    int n = 0;
    p.i_query = add_slot(in, &n, query);
    p.i_keys = add_slot(in, &n, keys_proj);
    p.i_w = add_slot(in, &n, ap->w_q);
    p.i_bias = add_slot(in, &n, ap->bias);
    p.i_v = add_slot(in, &n, ap->v);
    if (prev_weights) {
        p.i_prev = add_slot(in, &n, prev_weights);
        p.i_filt = add_slot(in, &n, ap->loc_filters);
        p.i_proj = add_slot(in, &n, ap->loc_proj);
    }
    if (coverage) {
        p.i_cov = add_slot(in, &n, coverage);
        p.i_covw = add_slot(in, &n, ap->cov_weight);
    }
    return tanh_score_forward(g, op, &op_additive, &p, n, in);
}

heed_tensor *heed_additive_attention(heed_graph *g, heed_tensor *query, heed_tensor *keys_proj, heed_tensor *values,
                                     const heed_additive_params *p, heed_tensor *prev_weights, heed_tensor *coverage,
                                     const int64_t *key_lengths, heed_tensor **weights) {
    if (weights) *weights = NULL;
    heed_tensor *s = heed_additive_score(g, query, keys_proj, p, prev_weights, coverage);
    return s ? heed_attend(g, s, values, key_lengths, weights) : NULL;
}

/* ---------------------------------------------------------------- Luong scores */

/* dot:     s_j = q . k_j                        dq = sum_j ds_j k_j,  dk_j = ds_j q
 * general: u = W^T q,  s_j = u . k_j (q^T W k_j)  du = sum_j ds_j k_j, dq = W du,
 *                                                 dW += q du^T,  dk_j = ds_j u */
static void bilinear_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *q = nd->in[0], *k = nd->in[1], *W = nd->n_in > 2 ? nd->in[2] : NULL, *S = nd->out[0];
    int64_t B = k->shape[0], N = k->shape[1], dk = k->shape[2], dq = q->shape[1];
    void *gq = heed_grad_buffer(g, q), *gk = heed_grad_buffer(g, k), *gW = heed_grad_buffer(g, W);
    void *du_ = W ? heed__zalloc(g, (size_t)(B * dk) * heed_dtype_size(q->dtype)) : NULL;
    if (W && !du_) return;
    if (q->dtype == HEED_F32) bilinear_backward_kernel_f32(q, k, S, W, nd, gq, gk, du_, B, N, dk, g);
    else bilinear_backward_kernel_f64(q, k, S, W, nd, gq, gk, du_, B, N, dk, g);
    if (W && gq) heed_gemm(q->dtype, false, true, B, dq, dk, 1, du_, dk, W->data, dk, 1, gq, dq);
    if (W && gW) heed_gemm(q->dtype, true, false, dq, dk, B, 1, q->data, dq, du_, dk, 1, gW, dk);
}

static const heed_op op_dot = {"heed_luong_score(dot)", bilinear_backward};
static const heed_op op_general = {"heed_luong_score(general)", bilinear_backward};

static heed_tensor *bilinear_forward(heed_graph *g, const char *op, heed_tensor *q, heed_tensor *k, heed_tensor *W) {
    int64_t B = k->shape[0], N = k->shape[1], dk = k->shape[2], dq = q->shape[1];
    heed_tensor *S = heed__new(g, op, q->dtype, 2, (int64_t[]){B, N});
    void *u_ = W ? heed_graph_alloc(g, (size_t)(B * dk) * heed_dtype_size(q->dtype)) : NULL;
    if (!S || (W && !u_)) return NULL;
    if (W) heed_gemm(q->dtype, false, false, B, dk, dq, 1, q->data, dq, W->data, dk, 0, u_, dk);
    if (q->dtype == HEED_F32) bilinear_forward_kernel_f32(W, u_, q, k, S, B, N, dk, g);
    else bilinear_forward_kernel_f64(W, u_, q, k, S, B, N, dk, g);
    heed_tensor *in[3] = {q, k, W};
    heed_node *nd = heed_record(g, W ? &op_general : &op_dot, W ? 3 : 2, in, 1, &S);
    if (nd) nd->saved = u_;
    return heed_graph_ok(g) ? S : NULL;
}

heed_tensor *heed_luong_score(heed_graph *g, heed_luong_kind kind, heed_tensor *query, heed_tensor *keys,
                              heed_tensor *w, heed_tensor *v) {
    const char *op = kind == HEED_LUONG_DOT       ? "heed_luong_score(dot)"
                     : kind == HEED_LUONG_GENERAL ? "heed_luong_score(general)"
                     : kind == HEED_LUONG_CONCAT  ? "heed_luong_score(concat)"
                                                  : "heed_luong_score";
    if (!heed_graph_ok(g)) return NULL;
    if (kind != HEED_LUONG_DOT && kind != HEED_LUONG_GENERAL && kind != HEED_LUONG_CONCAT)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: unknown kind %d (dot, general or concat)", op, (int)kind), NULL;
    if (!heed_check_tensor(g, op, query, "query") || !heed__check_like(g, op, keys, "keys", query)) return NULL;
    if (query->ndim != 2 || keys->ndim != 3 || keys->shape[0] != query->shape[0])
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: query%s and keys%s must be [B,dq] and [B,N,dk] with the same B",
                               op, HEED_S(query), HEED_S(keys)),
               NULL;
    int64_t B = query->shape[0], dq = query->shape[1], N = keys->shape[1], dk = keys->shape[2];
    switch (kind) {
    case HEED_LUONG_DOT:
        if (w || v) return heed_graph_fail(g, HEED_ERR_ARG, "%s: takes no w or v (pass NULL)", op), NULL;
        if (dq != dk)
            return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: query%s . keys%s: dq = %lld and dk = %lld must be equal", op,
                                   HEED_S(query), HEED_S(keys), (long long)dq, (long long)dk),
                   NULL;
        return bilinear_forward(g, op, query, keys, NULL);
    case HEED_LUONG_GENERAL:
        if (v) return heed_graph_fail(g, HEED_ERR_ARG, "%s: takes no v (pass NULL)", op), NULL;
        if (!HEED__EXPECT(g, op, w, "w", query, "[dq,dk]", dq, dk)) return NULL;
        return bilinear_forward(g, op, query, keys, w);
    default: break;
    }
    if (!heed__check_like(g, op, w, "w", query)) return NULL;
    if (w->ndim != 2 || w->shape[1] != dq + dk || w->shape[0] < 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: w%s must be [da,dq+dk] = [?,%lld] (query%s, keys%s)", op,
                               HEED_S(w), (long long)(dq + dk), HEED_S(query), HEED_S(keys)),
               NULL;
    int64_t da = w->shape[0];
    if (!HEED__EXPECT(g, op, v, "v", query, "[da]", da)) return NULL;
    tanh_plan p = {.B = B,
                   .N = N,
                   .dq = dq,
                   .dk = dk,
                   .da = da,
                   .concat = true,
                   .i_bias = -1,
                   .i_prev = -1,
                   .i_filt = -1,
                   .i_proj = -1,
                   .i_cov = -1,
                   .i_covw = -1};
    heed_tensor *in[4];
    int n = 0;
    p.i_query = add_slot(in, &n, query);
    p.i_keys = add_slot(in, &n, keys);
    p.i_w = add_slot(in, &n, w);
    p.i_v = add_slot(in, &n, v);
    return tanh_score_forward(g, op, &op_concat, &p, n, in);
}

heed_tensor *heed_luong_attention(heed_graph *g, heed_luong_kind kind, heed_tensor *query, heed_tensor *keys,
                                  heed_tensor *values, heed_tensor *w, heed_tensor *v, const int64_t *key_lengths,
                                  heed_tensor **weights) {
    if (weights) *weights = NULL;
    heed_tensor *s = heed_luong_score(g, kind, query, keys, w, v);
    return s ? heed_attend(g, s, values, key_lengths, weights) : NULL;
}

/* ---------------------------------------------------------------- coverage loss */

/* loss_b = sum_j min(a_j, cov_j). d/da_j = 1 where a_j < cov_j, d/dcov_j = 1 where
 * cov_j < a_j; a tie splits the gradient in halves (as torch.minimum). */
static void coverage_loss_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *a = nd->in[0], *c = nd->in[1], *y = nd->out[0];
    int64_t B = a->shape[0], N = a->shape[1];
    void *ga_ = heed_grad_buffer(g, a), *gc_ = heed_grad_buffer(g, c);
    if (a->dtype == HEED_F32) coverage_loss_backward_kernel_f32(a, c, y, ga_, gc_, B, N);
    else coverage_loss_backward_kernel_f64(a, c, y, ga_, gc_, B, N);
}

static const heed_op op_coverage_loss = {"heed_coverage_loss", coverage_loss_backward};

heed_tensor *heed_coverage_loss(heed_graph *g, heed_tensor *weights, heed_tensor *coverage) {
    const char *op = "heed_coverage_loss";
    if (!heed_check_tensor(g, op, weights, "weights")) return NULL;
    if (weights->ndim != 2)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: weights%s must be [B,N]", op, HEED_S(weights)), NULL;
    int64_t B = weights->shape[0], N = weights->shape[1];
    if (!HEED__EXPECT(g, op, coverage, "coverage", weights, "[B,N]", B, N)) return NULL;
    heed_tensor *y = heed__new(g, op, weights->dtype, 1, (int64_t[]){B});
    if (!y) return NULL;
    if (weights->dtype == HEED_F32) coverage_loss_kernel_f32(weights, coverage, y, B, N);
    else coverage_loss_kernel_f64(weights, coverage, y, B, N);
    heed_tensor *in[2] = {weights, coverage};
    heed_record(g, &op_coverage_loss, 2, in, 1, &y);
    return heed_graph_ok(g) ? y : NULL;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

static void FN(attend_backward_kernel)(heed_tensor *w, heed_tensor *v, heed_tensor *ctx, void *gs_, void *gv_,
                                       int64_t B, int64_t N, int64_t dv, heed_graph *g, double *dw_all,
                                       const int64_t *len) {
    const T *W = w->data, *V = v->data, *dC = ctx->grad, *gW = w->grad;
    T *gs = gs_, *gv = gv_;
    row_kernels rk = pick_row_kernels();
#pragma omp parallel for if (B * N * dv > 32768) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t b = 0; b < B; b++) {
        const T *wb = W + b * N, *dc = dC + b * dv;
        double *dw = dw_all ? dw_all + b * N : NULL, dot = 0;
        for (int64_t j = 0; j < len[b]; j++) {
            const T *vj = V + (b * N + j) * dv;
            if (gv) FN(axpy)(gv + (b * N + j) * dv, wb[j], dc, dv, &rk);
            if (dw) {
                double d = gW[b * N + j] + FN(dot_f64acc)(dc, vj, dv, &rk);
                dw[j] = d;
                dot += wb[j] * d;
            }
        }
        if (dw)
            for (int64_t j = 0; j < len[b]; j++) gs[b * N + j] += (T)(wb[j] * (dw[j] - dot));
    }
}

static void FN(attend_kernel)(heed_tensor *scores, heed_tensor *values, heed_tensor *ctx, heed_tensor *w, int64_t B,
                              int64_t N, int64_t dv, heed_graph *g, int64_t *len) {
    const T *S = scores->data, *V = values->data;
    T *C = ctx->data, *Wt = w->data;
    row_kernels rk = pick_row_kernels();
#pragma omp parallel for if (B * N * dv > 32768) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t b = 0; b < B; b++) {
        const T *sb = S + b * N;
        T *wb = Wt + b * N;
        double m = -INFINITY, sum = 0;
        for (int64_t j = 0; j < len[b]; j++) m = sb[j] > m || sb[j] != sb[j] ? sb[j] : m;
        if (m == -INFINITY) continue; /* no valid key, or all scores -inf: zero weights and context */
        for (int64_t j = 0; j < len[b]; j++) sum += wb[j] = (T)exp((double)sb[j] - m);
        for (int64_t j = 0; j < len[b]; j++) {
            wb[j] = (T)(wb[j] / sum);
            FN(axpy)(C + b * dv, wb[j], V + (b * N + j) * dv, dv, &rk);
        }
    }
}

static void FN(location_features_kernel)(const void *prev_, const void *filt_, void *feat_, int64_t nr, int64_t C,
                                         int64_t K, int threads, int64_t i0, int64_t N, int64_t h) {
    const T *prev = prev_, *F = filt_;
    T *f = feat_;
#pragma omp parallel for if (nr * C * K > 65536) num_threads(threads)
    for (int64_t bj = i0; bj < i0 + nr; bj++) {
        int64_t b = bj / N, j = bj % N;
        for (int64_t c = 0; c < C; c++) {
            double acc = 0;
            for (int64_t t = 0; t < K; t++) {
                int64_t i = j + t - h;
                if (i >= 0 && i < N) acc += (double)F[c * K + t] * prev[b * N + i];
            }
            f[(bj - i0) * C + c] = (T)acc;
        }
    }
}

static void FN(tanh_score_backward_kernel)(const tanh_plan *p, heed_tensor *S, heed_tensor *v, heed_tensor *cov,
                                           heed_tensor *covw, void *dpre_, void *dqp_, void *gk, void *gcov, int64_t BN,
                                           int64_t da, int nthreads, int team, double *part, void *rows_, int64_t B,
                                           int64_t N, void *gv, void *gcovw, void *gb) {
    const T *t = p->t, *dS = S->grad, *V = v->data, *cv = cov ? (const T *)cov->data : NULL,
            *cw = covw ? (const T *)covw->data : NULL;
    T *dpre = dpre_, *dqp = dqp_, *dK = p->concat ? NULL : (T *)gk, *dcv = gcov;
#pragma omp parallel for schedule(static, 1) if (BN * da > 32768) num_threads(team)
    for (int th = 0; th < nthreads; th++) {
        double *pv = part + (size_t)th * (size_t)(2 * da), *pcw = pv + da;
        T *row = (T *)rows_ + (size_t)th * (size_t)(da > 0 ? da : 1);
        for (int64_t b = B * th / nthreads; b < B * (th + 1) / nthreads; b++)
            for (int64_t j = 0; j < N; j++) {
                int64_t i = b * N + j;
                const T *ti = t + i * da;
                T ds = dS[i];
                double acc_cov = 0;
                for (int64_t e = 0; e < da; e++) {
                    T d = ds * V[e] * (1 - ti[e] * ti[e]);
                    row[e] = d;
                    dqp[b * da + e] += d;
                    pv[e] += (double)ds * ti[e];
                    if (cv) {
                        pcw[e] += (double)d * cv[i];
                        acc_cov += (double)d * cw[e];
                    }
                }
                if (dK)
                    for (int64_t e = 0; e < da; e++) dK[i * da + e] += row[e];
                if (dpre) memcpy(dpre + i * da, row, (size_t)da * sizeof(T));
                if (dcv) dcv[i] += (T)acc_cov;
            }
    }
    T *dv = gv, *dcw = gcovw, *db = gb;
    for (int th = 0; th < nthreads; th++)
        for (int64_t e = 0; e < da; e++) {
            if (dv) dv[e] += (T)part[(size_t)th * (size_t)(2 * da) + (size_t)e];
            if (dcw) dcw[e] += (T)part[(size_t)th * (size_t)(2 * da) + (size_t)(da + e)];
        }
    if (db)
        for (int64_t b = 0; b < B; b++)
            for (int64_t e = 0; e < da; e++) db[e] += dqp[b * da + e];
}

static void FN(location_backward_kernel)(void *df_, heed_tensor *prev, heed_tensor *filt, void *gfilt, int64_t BN,
                                         int64_t C, int64_t K, heed_graph *g, int64_t B, int64_t N, int64_t h,
                                         void *gprev) {
    const T *df = df_, *pv = prev->data, *F = filt->data;
    if (gfilt) {
        T *dF = gfilt;
#pragma omp parallel for if (BN * C * K > 65536) num_threads(heed_ctx_threads_now(g->ctx))
        for (int64_t c = 0; c < C; c++)
            for (int64_t t = 0; t < K; t++) {
                double acc = 0;
                for (int64_t b = 0; b < B; b++)
                    for (int64_t j = 0; j < N; j++) {
                        int64_t i = j + t - h;
                        if (i >= 0 && i < N) acc += (double)df[(b * N + j) * C + c] * pv[b * N + i];
                    }
                dF[c * K + t] += (T)acc;
            }
    }
    if (gprev) {
        T *dp = gprev;
#pragma omp parallel for if (BN * C * K > 65536) num_threads(heed_ctx_threads_now(g->ctx))
        for (int64_t bi = 0; bi < BN; bi++) {
            int64_t b = bi / N, i = bi % N;
            double acc = 0;
            for (int64_t t = 0; t < K; t++) {
                int64_t j = i - t + h;
                if (j < 0 || j >= N) continue;
                for (int64_t c = 0; c < C; c++) acc += (double)df[(b * N + j) * C + c] * F[c * K + t];
            }
            dp[bi] += (T)acc;
        }
    }
}

static void FN(tanh_score_forward_kernel)(void *qp_, heed_tensor *S, tanh_plan *p, heed_tensor *keys, heed_tensor *bias,
                                          heed_tensor *cov, heed_tensor *covw, heed_tensor *v, int64_t B, int64_t da,
                                          int64_t BN, int64_t blk, heed_dtype dt, int64_t dk, size_t es, heed_tensor *w,
                                          int64_t dq, int64_t ldw, void *pre_, heed_tensor *prev, heed_tensor *filt,
                                          void *feat_, heed_graph *g, int64_t C, heed_tensor *proj, bool threads,
                                          int64_t N, bool gemm_term, const row_kernels *rk) {
    T *qp = qp_, *Sd = S->data;
    const T *kp = p->concat ? NULL : (const T *)keys->data, *bs = bias ? (const T *)bias->data : NULL,
            *cv = cov ? (const T *)cov->data : NULL, *cw = covw ? (const T *)covw->data : NULL, *V = v->data;
    if (bs)
        for (int64_t b = 0; b < B; b++)
            for (int64_t e = 0; e < da; e++) qp[b * da + e] += bs[e];
    for (int64_t i0 = 0; i0 < BN; i0 += blk) {
        int64_t nr = BN - i0 < blk ? BN - i0 : blk;
        /* GEMM terms of rows [i0, i0 + nr) first (into pre), then one pass per row adds
         * the rest, applies tanh and takes the dot product with v while the row is in cache. */
        if (p->concat)
            heed_gemm(dt, false, true, nr, da, dk, 1, (const char *)keys->data + (size_t)(i0 * dk) * es, dk,
                      (char *)w->data + (size_t)dq * es, ldw, 0, pre_, da);
        if (prev) {
            location_features(p, dt, prev->data, filt->data, i0, nr, feat_, heed_ctx_threads(g->ctx));
            heed_gemm(dt, false, true, nr, da, C, 1, feat_, C, proj->data, C, 0, pre_, da);
        }
#pragma omp parallel for schedule(static) if (threads) num_threads(heed_ctx_threads_now(g->ctx))
        for (int64_t i = i0; i < i0 + nr; i++) {
            const T *q = qp + (i / N) * da;
            T *r = (T *)pre_ + (i - i0) * da;
            for (int64_t e = 0; e < da; e++) r[e] = (gemm_term ? r[e] : 0) + (kp ? kp[i * da + e] : 0) + q[e];
            if (cv)
                for (int64_t e = 0; e < da; e++) r[e] += cw[e] * cv[i];
            FN(tanh_row)(r, da, rk);
            Sd[i] = (T)FN(dot_f64acc)(r, V, da, rk);
        }
    }
}

static void FN(bilinear_backward_kernel)(heed_tensor *q, heed_tensor *k, heed_tensor *S, heed_tensor *W, heed_node *nd,
                                         void *gq, void *gk, void *du_, int64_t B, int64_t N, int64_t dk,
                                         heed_graph *g) {
    const T *Q = q->data, *Kd = k->data, *dS = S->grad, *U = W ? (const T *)nd->saved : Q;
    T *dq_ = gq, *dk_ = gk, *du = W ? (T *)du_ : dq_;
#pragma omp parallel for if (B * N * dk > 32768) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < N; j++) {
            T ds = dS[b * N + j];
            const T *kj = Kd + (b * N + j) * dk;
            if (du)
                for (int64_t e = 0; e < dk; e++) du[b * dk + e] += ds * kj[e];
            if (dk_)
                for (int64_t e = 0; e < dk; e++) dk_[(b * N + j) * dk + e] += ds * U[b * dk + e];
        }
}

static void FN(bilinear_forward_kernel)(heed_tensor *W, void *u_, heed_tensor *q, heed_tensor *k, heed_tensor *S,
                                        int64_t B, int64_t N, int64_t dk, heed_graph *g) {
    const T *U = W ? (const T *)u_ : (const T *)q->data, *Kd = k->data;
    T *s = S->data;
#pragma omp parallel for if (B * N * dk > 32768) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t bj = 0; bj < B * N; bj++) {
        const T *u = U + (bj / N) * dk, *kj = Kd + bj * dk;
        double acc = 0;
        for (int64_t e = 0; e < dk; e++) acc += (double)u[e] * kj[e];
        s[bj] = (T)acc;
    }
}

static void FN(coverage_loss_backward_kernel)(heed_tensor *a, heed_tensor *c, heed_tensor *y, void *ga_, void *gc_,
                                              int64_t B, int64_t N) {
    const T *A = a->data, *Cv = c->data, *dy = y->grad;
    T *ga = ga_, *gc = gc_;
    for (int64_t i = 0; i < B * N; i++) {
        T d = dy[i / N], share_a = A[i] < Cv[i] ? 1 : A[i] == Cv[i] ? (T)0.5 : 0;
        if (ga) ga[i] += d * share_a;
        if (gc) gc[i] += d * (1 - share_a);
    }
}

static void FN(coverage_loss_kernel)(heed_tensor *weights, heed_tensor *coverage, heed_tensor *y, int64_t B,
                                     int64_t N) {
    const T *A = weights->data, *Cv = coverage->data;
    T *Y = y->data;
    for (int64_t b = 0; b < B; b++) {
        double s = 0;
        for (int64_t j = 0; j < N; j++) s += A[b * N + j] < Cv[b * N + j] ? A[b * N + j] : Cv[b * N + j];
        Y[b] = (T)s;
    }
}
#endif
