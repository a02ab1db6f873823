/* Linear attention (Katharopoulos et al. 2020, "Transformers are RNNs"). With a positive
 * feature map phi on queries and keys, softmax(q.k) is replaced by phi(q).phi(k):
 *   out_i = phi(q_i)^T S_i / phi(q_i)^T z_i,
 *   S_i = sum_{j in K_i} phi(k_j) v_j^T  [m,dv],   z_i = sum_{j in K_i} phi(k_j)  [m]
 * where K_i are the keys query i sees: every valid key (non-causal: one S for all rows,
 * O(N m dv) by two GEMMs instead of O(N^2)), or the prefix j <= i + (Nk - Nq) (causal: the
 * recurrence S_i = S_{i-1} + phi(k_i) v_i^T, an RNN with an [m,dv] state).
 * Here:
 *   heed_elu_features          phi(x) = elu(x) + 1;
 *   heed_favor_draw/_features  Performer's positive orthogonal random features for the
 *                              softmax kernel (FAVOR+, Choromanski et al. 2021);
 *   heed_linear_attention      the attention on given features, both forms; the causal
 *                              backward never stores the N states (forward recomputation
 *                              for dphi(q), a reverse scan for dphi(k) and dv);
 *   heed_linear_attention_step one decoding step on a caller-owned [B,H,m,dv] state. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "layers.h"
#include "heed/attention.h"
#include "../gemm.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <tgmath.h>

/* The plans of FAVOR+ and of the attention (sections below), which the kernels read. */
typedef struct {
    int64_t rows, group, d, m; /* rows of x; rows sharing one stabiliser (1 for queries) */
    double xscale;             /* d^(-1/4): x' = x d^(-1/4), so x'_q . x'_k = q.k / sqrt(d) */
    int64_t *argmax;           /* [rows / group]: where the stabiliser's max is, inside the group */
} favor_plan;

typedef struct {
    int64_t B, H, Nq, Nk, m, dv, off; /* off = Nk - Nq (causal alignment) */
    bool causal;
    const int64_t *len; /* [B] */
    double *den;        /* [B*H*Nq] denominators phi(q_i).z_i (0: the row sees nothing) */
    void *kv;           /* non-causal: [B*H, m, dv] S = phi(K)^T V, in the dtype */
    double *z;          /* non-causal: [B*H, m] */
} lin_plan;

/* Query row i of batch b sees the keys j < lin_hi(p, b, i). */
static inline int64_t lin_hi(const lin_plan *p, int64_t b, int64_t i) {
    int64_t h = p->len[b];
    if (p->causal && i + p->off + 1 < h) h = i + p->off + 1;
    return h > 0 ? h : 0;
}

static bool lin_parallel(const lin_plan *p) {
    return (double)(p->B * p->H) * (double)(p->Nq + p->Nk) * (double)(p->m * p->dv) >= 65536.0;
}

#define T float
#define FN(name) name##_f32
#include "linear.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "linear.c"
#undef T
#undef FN

/* ---------------------------------------------------------------- elu(x) + 1 */

/* y = x + 1 for x > 0, e^x otherwise (positive, so every denominator is > 0);
 * dy/dx = 1 for x > 0, e^x = y otherwise. */
static void elu_features_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *x = nd->in[0], *y = nd->out[0];
    void *gx_ = heed_grad_buffer(g, x);
    if (!gx_) return;
    int64_t n = x->numel;
    if (x->dtype == HEED_F32) elu_features_backward_kernel_f32(x, y, gx_, n, g);
    else elu_features_backward_kernel_f64(x, y, gx_, n, g);
}

static const heed_op op_elu_features = {"heed_elu_features", elu_features_backward};

heed_tensor *heed_elu_features(heed_graph *g, heed_tensor *x) {
    if (!heed_check_tensor(g, "heed_elu_features", x, "x")) return NULL;
    heed_tensor *y = heed__new(g, "heed_elu_features", x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    int64_t n = x->numel;
    if (x->dtype == HEED_F32) elu_features_kernel_f32(x, y, n, g);
    else elu_features_kernel_f64(x, y, n, g);
    heed_record(g, &op_elu_features, 1, &x, 1, &y);
    return heed_graph_ok(g) ? y : NULL;
}

/* ---------------------------------------------------------------- FAVOR+ features */

/* Philox streams of the projection draws: draw n of the ctx seed uses stream base + n. */
#define FAVOR_STREAM 0xFA0F000000000000ull

/* Performer's projection (create_projection_matrix with scaling 0): blocks of d rows that
 * are orthonormal (Gram-Schmidt of a Gaussian d x d block), the last block cut to the
 * m mod d rows left, then row r scaled by the norm of its own Gaussian d-vector, so each
 * row has the length distribution of a Gaussian row while rows in a block stay orthogonal. */
heed_status heed_favor_draw(heed_ctx *ctx, heed_tensor *w, uint64_t draw) {
    const char *op = "heed_favor_draw";
    if (!ctx) return HEED_ERR_ARG;
    if (!w || !w->data) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: w is NULL (or has no data)", op);
    if (w->ndim != 2 || w->shape[0] < 1 || w->shape[1] < 1)
        return heed_ctx_fail(ctx, HEED_ERR_SHAPE, "%s: w%s must be [m,d] with m >= 1 features and d >= 1", op,
                             HEED_S(w));
    int64_t m = w->shape[0], d = w->shape[1];
    double *block = malloc((size_t)(d * d) * sizeof *block), *proj = malloc((size_t)(m * d) * sizeof *proj);
    heed_rng r = heed_rng_make(ctx->seed, FAVOR_STREAM + draw);
    bool ok = block && proj;
    for (int64_t r0 = 0; ok && r0 < m; r0 += d) {
        ok = heed__orthogonal(block, d, d, &r);
        int64_t rows = m - r0 < d ? m - r0 : d;
        if (ok) memcpy(proj + r0 * d, block, (size_t)(rows * d) * sizeof *proj);
    }
    for (int64_t i = 0; ok && i < m; i++) {
        double norm = 0;
        for (int64_t c = 0; c < d; c++) {
            double x = heed_rng_normal(&r);
            norm += x * x;
        }
        norm = sqrt(norm);
        for (int64_t c = 0; c < d; c++) proj[i * d + c] *= norm;
    }
    if (ok && w->dtype == HEED_F32) favor_draw_kernel_f32(w, m, d, proj);
    else if (ok) favor_draw_kernel_f64(w, m, d, proj);
    free(block), free(proj);
    return ok ? HEED_OK : heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory for w%s", op, HEED_S(w));
}

/* phi(x)_r = exp(w_r . x' - |x'|^2 / 2 - M) / sqrt(m), t_r = w_r . x' - |x'|^2/2.
 * Backward with u = dy * y: dt = u, minus sum(u) at the max's position (M is the max of t
 * over the group); then dx' = sum_r dt_r w_r - (sum_r dt_r) x', dw_r = sum_i dt_ir x'_i. */
static void favor_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *x = nd->in[0], *w = nd->in[1], *y = nd->out[0];
    const favor_plan *p = nd->saved;
    void *gx = heed_grad_buffer(g, x), *gw = heed_grad_buffer(g, w);
    int64_t rows = p->rows, group = p->group, d = p->d, m = p->m, ngroups = group ? rows / group : 0;
    void *dt_ = heed_graph_alloc(g, (size_t)(rows * m > 0 ? rows * m : 1) * heed_dtype_size(x->dtype));
    double *dsum = heed_graph_alloc(g, (size_t)(rows > 0 ? rows : 1) * sizeof *dsum);
    if (!dt_ || !dsum) return;
    double x2 = p->xscale * p->xscale;
    if (x->dtype == HEED_F32) favor_backward_kernel_f32(y, dt_, rows, m, g, ngroups, group, p, dsum);
    else favor_backward_kernel_f64(y, dt_, rows, m, g, ngroups, group, p, dsum);
    if (gx) {
        heed_gemm(x->dtype, false, false, rows, d, m, p->xscale, dt_, m, w->data, d, 1, gx, d);
        if (x->dtype == HEED_F32) favor_dx_norm_term_kernel_f32(x, gx, rows, d, dsum, x2);
        else favor_dx_norm_term_kernel_f64(x, gx, rows, d, dsum, x2);
    }
    if (gw) heed_gemm(x->dtype, true, false, m, d, rows, p->xscale, dt_, m, x->data, d, 1, gw, d);
}

static const heed_op op_favor = {"heed_favor_features", favor_backward};

heed_tensor *heed_favor_features(heed_graph *g, heed_tensor *x, heed_tensor *w, heed_favor_kind kind) {
    const char *op = "heed_favor_features";
    if (!heed_check_tensor(g, op, x, "x") || !heed__check_like(g, op, w, "w", x)) return NULL;
    if (kind != HEED_FAVOR_QUERIES && kind != HEED_FAVOR_KEYS)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: kind = %d (HEED_FAVOR_QUERIES or HEED_FAVOR_KEYS)", op, (int)kind),
               NULL;
    if (x->ndim < 2 || x->shape[x->ndim - 1] < 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: x%s must be [...,N,d] (2 to 4 dims) with d >= 1", op, HEED_S(x)),
               NULL;
    int64_t d = x->shape[x->ndim - 1];
    if (w->ndim != 2 || w->shape[1] != d || w->shape[0] < 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: w%s must be [m,d] = [m,%lld] with m >= 1 random features (x%s)",
                               op, HEED_S(w), (long long)d, HEED_S(x)),
               NULL;
    favor_plan p = {.rows = x->numel / d, .d = d, .m = w->shape[0], .xscale = pow((double)d, -0.25)};
    p.group = kind == HEED_FAVOR_KEYS ? x->shape[x->ndim - 2] : 1;
    int64_t shape[HEED_MAX_DIMS], rows = p.rows, m = p.m, ngroups = p.group ? rows / p.group : 0;
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = m;
    heed_tensor *y = heed__new(g, op, x->dtype, x->ndim, shape);
    p.argmax = heed_graph_alloc(g, (size_t)(ngroups > 0 ? ngroups : 1) * sizeof *p.argmax);
    if (!y || !p.argmax) return NULL;
    heed_gemm(x->dtype, false, true, rows, m, d, p.xscale, x->data, d, w->data, d, 0, y->data, m);
    double x2 = p.xscale * p.xscale, ratio = 1 / sqrt((double)m);
    if (x->dtype == HEED_F32) favor_features_kernel_f32(x, y, rows, m, g, ngroups, p, d, x2, ratio);
    else favor_features_kernel_f64(x, y, rows, m, g, ngroups, p, d, x2, ratio);
    heed_tensor *in[2] = {x, w};
    heed_node *nd = heed_record(g, &op_favor, 2, in, 1, &y);
    if (nd && (nd->saved = heed_graph_alloc(g, sizeof p))) *(favor_plan *)nd->saved = p;
    return heed_graph_ok(g) ? y : NULL;
}

/* ---------------------------------------------------------------- the attention */

/* Non-causal forward, one head at a time (the GEMMs thread themselves):
 *   S = phi(K)^T V,  z = phi(K)^T 1,  out = phi(Q) S / (phi(Q) z). */
static void full_forward(heed_dtype dt, lin_plan *p, const void *fq, const void *fk, const void *v, void *out) {
    int64_t Nq = p->Nq, Nk = p->Nk, m = p->m, dv = p->dv;
    size_t es = heed_dtype_size(dt);
    for (int64_t bh = 0; bh < p->B * p->H; bh++) {
        int64_t L = p->len[bh / p->H];
        const char *Fq = (const char *)fq + (size_t)(bh * Nq * m) * es,
                   *Fk = (const char *)fk + (size_t)(bh * Nk * m) * es,
                   *V = (const char *)v + (size_t)(bh * Nk * dv) * es;
        char *KV = (char *)p->kv + (size_t)(bh * m * dv) * es, *O = (char *)out + (size_t)(bh * Nq * dv) * es;
        double *z = p->z + bh * m, *den = p->den + bh * Nq;
        heed_gemm(dt, true, false, m, dv, L, 1, Fk, m, V, dv, 0, KV, dv);
        heed_gemm(dt, false, false, Nq, dv, m, 1, Fq, m, KV, dv, 0, O, dv);
        if (dt == HEED_F32) full_forward_kernel_f32(Fk, Fq, O, m, z, L, Nq, den, dv);
        else full_forward_kernel_f64(Fk, Fq, O, m, z, L, Nq, den, dv);
    }
}

/* Causal forward: the recurrence, one head per thread, the state in double (scratch holds
 * one state per thread). */
static void causal_forward(heed_dtype dt, lin_plan *p, const void *fq_, const void *fk_, const void *v_, void *out_,
                           double *scratch, int threads) {
    int64_t Nq = p->Nq, Nk = p->Nk, m = p->m, dv = p->dv, BH = p->B * p->H;
    if (dt == HEED_F32) causal_forward_kernel_f32(fq_, fk_, v_, out_, p, threads, scratch, m, dv, BH, Nq, Nk);
    else causal_forward_kernel_f64(fq_, fk_, v_, out_, p, threads, scratch, m, dv, BH, Nq, Nk);
}

/* Non-causal backward, per head, with G = phi(Q)^T dNum [m,dv] and h = sum_i dden_i phi(q_i):
 *   dphi(Q) = dNum S^T + dden z^T,  dphi(k_j) = G v_j + h,  dv_j = G^T phi(k_j)  (j < L). */
static void full_backward(heed_graph *g, heed_dtype dt, const lin_plan *p, heed_tensor *fq, heed_tensor *fk,
                          heed_tensor *v, heed_tensor *out, void *gq, void *gk, void *gv) {
    int64_t Nq = p->Nq, Nk = p->Nk, m = p->m, dv = p->dv;
    size_t es = heed_dtype_size(dt);
    void *dnum_ = heed_graph_alloc(g, (size_t)(Nq * dv > 0 ? Nq * dv : 1) * es),
         *G_ = heed_graph_alloc(g, (size_t)(m * dv) * es);
    double *dden = heed_graph_alloc(g, (size_t)(Nq > 0 ? Nq : 1) * sizeof *dden),
           *h = heed_graph_alloc(g, (size_t)m * sizeof *h);
    if (!dnum_ || !G_ || !dden || !h) return;
    for (int64_t bh = 0; bh < p->B * p->H; bh++) {
        int64_t L = p->len[bh / p->H];
        const double *z = p->z + bh * m, *den = p->den + bh * Nq;
        const char *KV = (const char *)p->kv + (size_t)(bh * m * dv) * es;
        size_t oq = (size_t)(bh * Nq * m) * es, ok = (size_t)(bh * Nk * m) * es, ov = (size_t)(bh * Nk * dv) * es;
        if (dt == HEED_F32) full_backward_kernel_f32(out, bh, Nq, dv, fq, m, dnum_, dden, den, h);
        else full_backward_kernel_f64(out, bh, Nq, dv, fq, m, dnum_, dden, den, h);
        if (gq) {
            heed_gemm(dt, false, true, Nq, m, dv, 1, dnum_, dv, KV, dv, 1, (char *)gq + oq, m);
            if (dt == HEED_F32) full_dq_den_term_kernel_f32(gq, oq, Nq, m, dden, z);
            else full_dq_den_term_kernel_f64(gq, oq, Nq, m, dden, z);
        }
        if (!gk && !gv) continue;
        heed_gemm(dt, true, false, m, dv, Nq, 1, (const char *)fq->data + oq, m, dnum_, dv, 0, G_, dv);
        if (gk) {
            heed_gemm(dt, false, true, L, m, dv, 1, (const char *)v->data + ov, dv, G_, dv, 1, (char *)gk + ok, m);
            if (dt == HEED_F32) full_dk_den_term_kernel_f32(gk, ok, L, m, h);
            else full_dk_den_term_kernel_f64(gk, ok, L, m, h);
        }
        if (gv)
            heed_gemm(dt, false, false, L, dv, m, 1, (const char *)fk->data + ok, m, G_, dv, 1, (char *)gv + ov, dv);
    }
}

/* Causal backward without the N states, per head:
 *   forward pass:  S_i, z_i recomputed;  dphi(q_i) = S_i dnum_i + dden_i z_i;
 *   reverse pass:  G_j = sum_{i sees j} phi(q_i) dnum_i^T, h_j = sum_{i sees j} dden_i phi(q_i)
 *                  (the queries that see key j are a suffix i >= i_j, so G grows as j falls);
 *                  dphi(k_j) = G_j v_j + h_j,  dv_j = G_j^T phi(k_j). */
static void causal_backward(heed_dtype dt, const lin_plan *p, heed_tensor *fq, heed_tensor *fk, heed_tensor *v,
                            heed_tensor *out, void *gq_, void *gk_, void *gv_, double *scratch, int threads) {
    int64_t Nq = p->Nq, Nk = p->Nk, m = p->m, dv = p->dv, BH = p->B * p->H;
    if (dt == HEED_F32)
        causal_backward_kernel_f32(fq, fk, v, out, gq_, gk_, gv_, p, threads, scratch, m, dv, BH, Nq, Nk);
    else causal_backward_kernel_f64(fq, fk, v, out, gq_, gk_, gv_, p, threads, scratch, m, dv, BH, Nq, Nk);
}

static void linear_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *fq = nd->in[0], *fk = nd->in[1], *v = nd->in[2], *out = nd->out[0];
    const lin_plan *p = nd->saved;
    void *gq = heed_grad_buffer(g, fq), *gk = heed_grad_buffer(g, fk), *gv = heed_grad_buffer(g, v);
    if (!p->causal) return full_backward(g, fq->dtype, p, fq, fk, v, out, gq, gk, gv);
    int nt = heed_ctx_threads_now(g->ctx);
    double *scratch = heed_graph_alloc(g, (size_t)nt * (size_t)(p->m * p->dv + p->m + p->dv) * sizeof(double));
    if (scratch) causal_backward(fq->dtype, p, fq, fk, v, out, gq, gk, gv, scratch, nt);
}

static const heed_op op_linear = {"heed_linear_attention", linear_backward};

/* phi_q [B,H,Nq,m], phi_k [B,H,Nk,m], v [B,H,Nk,dv] of one dtype, m >= 1, dv >= 1. */
static bool linear_shapes(heed_graph *g, const char *op, heed_tensor *fq, heed_tensor *fk, heed_tensor *v) {
    if (!heed_check_tensor(g, op, fq, "phi_q") || !heed__check_like(g, op, fk, "phi_k", fq) ||
        !heed__check_like(g, op, v, "v", fq))
        return false;
    if (fq->ndim != 4 || fq->shape[3] < 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: phi_q%s must be [B,H,Nq,m] with m >= 1 features", op,
                               HEED_S(fq)),
               false;
    const int64_t *s = fq->shape;
    if (!HEED__EXPECT(g, op, fk, "phi_k", fq, "[B,H,Nk,m]", s[0], s[1], -1, s[3]) ||
        !HEED__EXPECT(g, op, v, "v", fq, "[B,H,Nk,dv]", s[0], s[1], fk->shape[2], -1))
        return false;
    if (v->shape[3] < 1) return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: v%s must have dv >= 1", op, HEED_S(v)), false;
    return true;
}

heed_tensor *heed_linear_attention(heed_graph *g, heed_tensor *phi_q, heed_tensor *phi_k, heed_tensor *v,
                                   const heed_linear_attention_opts *opts) {
    const char *op = "heed_linear_attention";
    if (!linear_shapes(g, op, phi_q, phi_k, v)) return NULL;
    heed_linear_attention_opts o = opts ? *opts : (heed_linear_attention_opts){0};
    heed_dtype dt = phi_q->dtype;
    lin_plan p = {.B = phi_q->shape[0],
                  .H = phi_q->shape[1],
                  .Nq = phi_q->shape[2],
                  .Nk = phi_k->shape[2],
                  .m = phi_q->shape[3],
                  .dv = v->shape[3],
                  .causal = o.causal};
    p.off = p.Nk - p.Nq;
    p.len = heed__key_lengths(g, op, o.key_lengths, p.B, p.Nk);
    int64_t BH = p.B * p.H, nden = BH * p.Nq;
    p.den = heed_graph_alloc(g, (size_t)(nden > 0 ? nden : 1) * sizeof *p.den);
    heed_tensor *out = p.len && p.den ? heed__new(g, op, dt, 4, (int64_t[]){p.B, p.H, p.Nq, p.dv}) : NULL;
    if (!out) return NULL;
    if (p.causal) {
        int nt = heed_ctx_threads_now(g->ctx);
        double *scratch = heed_graph_alloc(g, (size_t)nt * (size_t)(p.m * p.dv + p.m + p.dv) * sizeof(double));
        if (!scratch) return NULL;
        causal_forward(dt, &p, phi_q->data, phi_k->data, v->data, out->data, scratch, nt);
    } else {
        p.kv = heed_graph_alloc(g, (size_t)(BH > 0 ? BH * p.m * p.dv : 1) * heed_dtype_size(dt));
        p.z = heed_graph_alloc(g, (size_t)(BH > 0 ? BH * p.m : 1) * sizeof *p.z);
        if (!p.kv || !p.z) return NULL;
        full_forward(dt, &p, phi_q->data, phi_k->data, v->data, out->data);
    }
    heed_tensor *in[3] = {phi_q, phi_k, v};
    heed_node *nd = heed_record(g, &op_linear, 3, in, 1, &out);
    if (nd && (nd->saved = heed_graph_alloc(g, sizeof p))) *(lin_plan *)nd->saved = p;
    return heed_graph_ok(g) ? out : NULL;
}

/* ---------------------------------------------------------------- decoding */

heed_status heed_linear_attn_state_init(heed_ctx *ctx, heed_linear_attn_state *s, int64_t B, int64_t H, int64_t m,
                                        int64_t dv, double *S, double *z) {
    static const char *fn = "heed_linear_attn_state_init";
    if (!s || !S || !z)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: %s is NULL", fn,
                             !s   ? "the state"
                             : !S ? "the buffer S"
                                  : "the buffer z");
    if (B < 1 || H < 1 || m < 1 || dv < 1)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: B = %lld, H = %lld, m = %lld, dv = %lld (each must be >= 1)", fn,
                             (long long)B, (long long)H, (long long)m, (long long)dv);
    int64_t n; /* the doubles in S; the memset below needs their bytes to fit a size_t */
    if (__builtin_mul_overflow(B, H, &n) || __builtin_mul_overflow(n, m, &n) || __builtin_mul_overflow(n, dv, &n) ||
        n > INT64_MAX / (int64_t)sizeof *S)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: B*H*m*dv = %lld*%lld*%lld*%lld doubles overflow", fn, (long long)B,
                             (long long)H, (long long)m, (long long)dv);
    *s = (heed_linear_attn_state){.B = B, .H = H, .m = m, .dv = dv, .steps = 0, .S = S, .z = z};
    memset(S, 0, (size_t)(B * H * m * dv) * sizeof *S);
    memset(z, 0, (size_t)(B * H * m) * sizeof *z);
    return HEED_OK;
}

/* S += phi(k) v^T, z += phi(k), out = phi(q)^T S / phi(q)^T z for every (b, h): the causal
 * op's row t when called for t = 0, 1, ... (the state is all of the past it needs). */
heed_tensor *heed_linear_attention_step(heed_graph *g, heed_linear_attn_state *s, heed_tensor *phi_q,
                                        heed_tensor *phi_k, heed_tensor *v) {
    const char *op = "heed_linear_attention_step";
    if (!heed_graph_ok(g)) return NULL;
    if (!s || !s->S || !s->z) return heed_graph_fail(g, HEED_ERR_ARG, "%s: state is NULL or not initialised", op), NULL;
    int64_t B = s->B, H = s->H, m = s->m, dv = s->dv;
    if (!HEED__EXPECT(g, op, phi_q, "phi_q", NULL, "[B,H,1,m] of the state", B, H, 1, m) ||
        !HEED__EXPECT(g, op, phi_k, "phi_k", phi_q, "[B,H,1,m] of the state", B, H, 1, m) ||
        !HEED__EXPECT(g, op, v, "v", phi_q, "[B,H,1,dv] of the state", B, H, 1, dv))
        return NULL;
    heed_tensor *in[3] = {phi_q, phi_k, v};
    if (heed_graph_records(g, 3, in))
        return heed_graph_fail(
                   g, HEED_ERR_STATE,
                   "%s: a decoding step takes no gradient (the state's past would not get one); call it between "
                   "heed_no_grad_begin and heed_no_grad_end, and train with the causal heed_linear_attention",
                   op),
               NULL;
    heed_tensor *out = heed__new(g, op, phi_q->dtype, 4, (int64_t[]){B, H, 1, dv});
    if (!out) return NULL;
    if (phi_q->dtype == HEED_F32) linear_attention_step_kernel_f32(phi_q, phi_k, v, out, B, H, s, m, dv);
    else linear_attention_step_kernel_f64(phi_q, phi_k, v, out, B, H, s, m, dv);
    s->steps++;
    return out;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

/* The output's adjoints, with g = dout_i and D = den_i: dnum = g / D, dden = -(g . out_i) / D
 * (both 0 for a row that sees nothing). Writes dnum[dv] (into dnum_t, or dnum_d when
 * dnum_t is NULL) and returns dden. */
static inline double FN(row_adjoint)(T *dnum_t, double *dnum_d, const T *g, const T *o, double D, int64_t dv) {
    double dd = 0;
    for (int64_t c = 0; c < dv; c++) {
        double dn = D != 0 ? g[c] / D : 0;
        if (dnum_t) dnum_t[c] = (T)dn;
        else dnum_d[c] = dn;
        dd -= D != 0 ? (double)g[c] * o[c] / D : 0;
    }
    return dd;
}

static void FN(elu_features_backward_kernel)(heed_tensor *x, heed_tensor *y, void *gx_, int64_t n, heed_graph *g) {
    const T *X = x->data, *Y = y->data, *dY = y->grad;
    T *gx = gx_;
#pragma omp parallel for if (n > 65536) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t i = 0; i < n; i++) gx[i] += X[i] > 0 ? dY[i] : dY[i] * Y[i];
}

static void FN(elu_features_kernel)(heed_tensor *x, heed_tensor *y, int64_t n, heed_graph *g) {
    const T *X = x->data;
    T *Y = y->data;
#pragma omp parallel for if (n > 65536) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t i = 0; i < n; i++) Y[i] = X[i] > 0 ? X[i] + 1 : exp(X[i]);
}

static void FN(favor_draw_kernel)(heed_tensor *w, int64_t m, int64_t d, double *proj) {
    T *W = w->data;
    for (int64_t i = 0; i < m * d; i++) W[i] = (T)proj[i];
}

static void FN(favor_backward_kernel)(heed_tensor *y, void *dt_, int64_t rows, int64_t m, heed_graph *g,
                                      int64_t ngroups, int64_t group, const favor_plan *p, double *dsum) {
    const T *Y = y->data, *dY = y->grad;
    T *dt = dt_;
#pragma omp parallel for if (rows * m > 65536) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t gi = 0; gi < ngroups; gi++) {
        double total = 0;
        for (int64_t k = gi * group * m; k < (gi + 1) * group * m; k++) total += (double)(dt[k] = dY[k] * Y[k]);
        dt[gi * group * m + p->argmax[gi]] -= (T)total;
        for (int64_t i = gi * group; i < (gi + 1) * group; i++) {
            double s = 0;
            for (int64_t r = 0; r < m; r++) s += dt[i * m + r];
            dsum[i] = s;
        }
    }
}

static void FN(favor_dx_norm_term_kernel)(heed_tensor *x, void *gx, int64_t rows, int64_t d, double *dsum, double x2) {
    const T *X = x->data;
    T *dx = gx;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t c = 0; c < d; c++) dx[i * d + c] -= (T)(dsum[i] * x2 * X[i * d + c]);
}

static void FN(favor_features_kernel)(heed_tensor *x, heed_tensor *y, int64_t rows, int64_t m, heed_graph *g,
                                      int64_t ngroups, favor_plan p, int64_t d, double x2, double ratio) {
    const T *X = x->data;
    T *Y = y->data;
#pragma omp parallel for if (rows * m > 65536) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t gi = 0; gi < ngroups; gi++) {
        double best = -INFINITY;
        int64_t at = 0;
        for (int64_t i = gi * p.group; i < (gi + 1) * p.group; i++) {
            double half = 0;
            for (int64_t c = 0; c < d; c++) half += (double)X[i * d + c] * X[i * d + c];
            half *= 0.5 * x2;
            for (int64_t r = 0; r < m; r++) {
                double t = (double)Y[i * m + r] - half;
                Y[i * m + r] = (T)t;
                if (t > best || (t != t && best == best)) best = t, at = (i - gi * p.group) * m + r;
            }
        }
        p.argmax[gi] = at;
        for (int64_t k = gi * p.group * m; k < (gi + 1) * p.group * m; k++)
            Y[k] = (T)(exp((double)Y[k] - best) * ratio);
    }
}

static void FN(full_forward_kernel)(const char *Fk, const char *Fq, char *O, int64_t m, double *z, int64_t L,
                                    int64_t Nq, double *den, int64_t dv) {
    const T *fk_ = (const T *)Fk, *fq_ = (const T *)Fq;
    T *o = (T *)O;
    for (int64_t e = 0; e < m; e++) z[e] = 0;
    for (int64_t j = 0; j < L; j++)
        for (int64_t e = 0; e < m; e++) z[e] += fk_[j * m + e];
    for (int64_t i = 0; i < Nq; i++) {
        double s = 0;
        for (int64_t e = 0; e < m; e++) s += fq_[i * m + e] * z[e];
        den[i] = s;
        for (int64_t c = 0; c < dv; c++) o[i * dv + c] = s != 0 ? (T)(o[i * dv + c] / s) : 0;
    }
}

static void FN(causal_forward_kernel)(const void *fq_, const void *fk_, const void *v_, void *out_, lin_plan *p,
                                      int threads, double *scratch, int64_t m, int64_t dv, int64_t BH, int64_t Nq,
                                      int64_t Nk) {
    const T *FQ = fq_, *FK = fk_, *VV = v_;
    T *OUT = out_;
#pragma omp parallel if (lin_parallel(p)) num_threads(threads)
    {
        double *S = scratch + (size_t)omp_get_thread_num() * (size_t)(m * dv + m + dv), *z = S + m * dv, *num = z + m;
#pragma omp for schedule(dynamic)
        for (int64_t bh = 0; bh < BH; bh++) {
            const T *Fq = FQ + bh * Nq * m, *Fk = FK + bh * Nk * m, *V = VV + bh * Nk * dv;
            T *O = OUT + bh * Nq * dv;
            for (int64_t e = 0; e < m * dv + m; e++) S[e] = 0;
            for (int64_t i = 0, j = 0; i < Nq; i++) {
                for (int64_t hi = lin_hi(p, bh / p->H, i); j < hi; j++)
                    for (int64_t e = 0; e < m; e++) {
                        double f = Fk[j * m + e];
                        z[e] += f;
                        for (int64_t c = 0; c < dv; c++) S[e * dv + c] += f * V[j * dv + c];
                    }
                double s = 0;
                for (int64_t c = 0; c < dv; c++) num[c] = 0;
                for (int64_t e = 0; e < m; e++) {
                    double f = Fq[i * m + e];
                    s += f * z[e];
                    for (int64_t c = 0; c < dv; c++) num[c] += f * S[e * dv + c];
                }
                p->den[bh * Nq + i] = s;
                for (int64_t c = 0; c < dv; c++) O[i * dv + c] = s != 0 ? (T)(num[c] / s) : 0;
            }
        }
    }
}

static void FN(full_backward_kernel)(heed_tensor *out, int64_t bh, int64_t Nq, int64_t dv, heed_tensor *fq, int64_t m,
                                     void *dnum_, double *dden, const double *den, double *h) {
    const T *dO = (const T *)out->grad + bh * Nq * dv, *O = (const T *)out->data + bh * Nq * dv,
            *Fq = (const T *)fq->data + bh * Nq * m;
    T *dnum = dnum_;
    for (int64_t i = 0; i < Nq; i++)
        dden[i] = FN(row_adjoint)(dnum + i * dv, NULL, dO + i * dv, O + i * dv, den[i], dv);
    for (int64_t e = 0; e < m; e++) h[e] = 0;
    for (int64_t i = 0; i < Nq; i++)
        for (int64_t e = 0; e < m; e++) h[e] += dden[i] * Fq[i * m + e];
}

static void FN(full_dq_den_term_kernel)(void *gq, size_t oq, int64_t Nq, int64_t m, double *dden, const double *z) {
    T *dq = (T *)((char *)gq + oq);
    for (int64_t i = 0; i < Nq; i++)
        for (int64_t e = 0; e < m; e++) dq[i * m + e] += (T)(dden[i] * z[e]);
}

static void FN(full_dk_den_term_kernel)(void *gk, size_t ok, int64_t L, int64_t m, double *h) {
    T *dk = (T *)((char *)gk + ok);
    for (int64_t j = 0; j < L; j++)
        for (int64_t e = 0; e < m; e++) dk[j * m + e] += (T)h[e];
}

static void FN(causal_backward_kernel)(heed_tensor *fq, heed_tensor *fk, heed_tensor *v, heed_tensor *out, void *gq_,
                                       void *gk_, void *gv_, const lin_plan *p, int threads, double *scratch, int64_t m,
                                       int64_t dv, int64_t BH, int64_t Nq, int64_t Nk) {
    const T *FQ = fq->data, *FK = fk->data, *VV = v->data, *OO = out->data, *DO = out->grad;
    T *GQ = gq_, *GK = gk_, *GV = gv_;
#pragma omp parallel if (lin_parallel(p)) num_threads(threads)
    {
        double *S = scratch + (size_t)omp_get_thread_num() * (size_t)(m * dv + m + dv), *z = S + m * dv, *dnum = z + m;
#pragma omp for schedule(dynamic)
        for (int64_t bh = 0; bh < BH; bh++) {
            int64_t b = bh / p->H;
            const T *Fq = FQ + bh * Nq * m, *Fk = FK + bh * Nk * m, *V = VV + bh * Nk * dv, *O = OO + bh * Nq * dv,
                    *dO = DO + bh * Nq * dv;
            const double *den = p->den + bh * Nq;
            if (GQ) {
                T *dq = GQ + bh * Nq * m;
                for (int64_t e = 0; e < m * dv + m; e++) S[e] = 0;
                for (int64_t i = 0, j = 0; i < Nq; i++) {
                    for (int64_t hi = lin_hi(p, b, i); j < hi; j++)
                        for (int64_t e = 0; e < m; e++) {
                            double f = Fk[j * m + e];
                            z[e] += f;
                            for (int64_t c = 0; c < dv; c++) S[e * dv + c] += f * V[j * dv + c];
                        }
                    double dd = FN(row_adjoint)(NULL, dnum, dO + i * dv, O + i * dv, den[i], dv);
                    for (int64_t e = 0; e < m; e++) {
                        double acc = dd * z[e];
                        for (int64_t c = 0; c < dv; c++) acc += S[e * dv + c] * dnum[c];
                        dq[i * m + e] += (T)acc;
                    }
                }
            }
            if (!GK && !GV) continue;
            double *G = S, *h = z;
            for (int64_t e = 0; e < m * dv + m; e++) S[e] = 0;
            for (int64_t j = Nk - 1, i = Nq - 1; j >= 0; j--) {
                for (; i >= 0 && lin_hi(p, b, i) > j; i--) {
                    double dd = FN(row_adjoint)(NULL, dnum, dO + i * dv, O + i * dv, den[i], dv);
                    for (int64_t e = 0; e < m; e++) {
                        double f = Fq[i * m + e];
                        h[e] += dd * f;
                        for (int64_t c = 0; c < dv; c++) G[e * dv + c] += f * dnum[c];
                    }
                }
                if (i == Nq - 1) continue; /* no query sees key j */
                for (int64_t e = 0; e < m; e++) {
                    double f = Fk[j * m + e], acc = h[e];
                    for (int64_t c = 0; c < dv; c++) acc += G[e * dv + c] * V[j * dv + c];
                    if (GK) GK[(bh * Nk + j) * m + e] += (T)acc;
                    if (GV)
                        for (int64_t c = 0; c < dv; c++) GV[(bh * Nk + j) * dv + c] += (T)(f * G[e * dv + c]);
                }
            }
        }
    }
}

static void FN(linear_attention_step_kernel)(heed_tensor *phi_q, heed_tensor *phi_k, heed_tensor *v, heed_tensor *out,
                                             int64_t B, int64_t H, heed_linear_attn_state *s, int64_t m, int64_t dv) {
    const T *Fq = phi_q->data, *Fk = phi_k->data, *V = v->data;
    T *O = out->data;
    for (int64_t bh = 0; bh < B * H; bh++) {
        double *S = s->S + bh * m * dv, *z = s->z + bh * m, den = 0;
        for (int64_t e = 0; e < m; e++) {
            double f = Fk[bh * m + e];
            z[e] += f;
            for (int64_t c = 0; c < dv; c++) S[e * dv + c] += f * V[bh * dv + c];
        }
        for (int64_t e = 0; e < m; e++) den += Fq[bh * m + e] * z[e];
        for (int64_t c = 0; c < dv; c++) {
            double num = 0;
            for (int64_t e = 0; e < m; e++) num += Fq[bh * m + e] * S[e * dv + c];
            O[bh * dv + c] = den != 0 ? (T)(num / den) : 0;
        }
    }
}
#endif
