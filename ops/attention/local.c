/* Luong et al. 2015's local attention for one decoder step. Around a centre p (a real
 * position), only the keys j in the window [p - D, p + D] (clipped to [0, L)) are attended:
 *   alpha_j = softmax over the window of the scores s_j,
 *   a_j     = alpha_j exp(-(j - p)^2 / (2 sigma^2))      (Gaussian weighting; sigma = D/2),
 *   c       = sum_j a_j v_j.
 * local-m puts the centre at the decoder step, p = t (monotonic alignment; the paper uses no
 * Gaussian there); local-p predicts it, p = (L - 1) sigmoid(v_p . tanh(W_p h_t)), and the
 * gradient reaches W_p and v_p through the Gaussian: da_j/dp = a_j (j - p) / sigma^2.
 * The weights need not sum to 1 (the Gaussian is applied after the softmax, as in the
 * paper). The scores come from any one-step score op (heed_luong_score, scores.c). */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "layers.h"
#include "heed/attention.h"
#include "heed/elementwise.h"
#include "heed/matmul.h"
#include "heed/shape.h"

#include <math.h>
#include <tgmath.h>

typedef struct {
    int64_t B, N, dv;
    double sigma;      /* 0: no Gaussian */
    int64_t *lo, *hi;  /* [B]: window [lo, hi) after clipping; lo == hi when empty */
    double *max, *sum; /* [B]: the window's softmax: alpha_j = exp(s_j - max) / sum */
} local_plan;

/* exp(-(j - p)^2 / (2 sigma^2)), or 1 without a Gaussian. */
static inline double gauss(double j, double p, double sigma) {
    return sigma > 0 ? exp(-(j - p) * (j - p) / (2 * sigma * sigma)) : 1;
}

#define T float
#define FN(name) name##_f32
#include "local.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "local.c"
#undef T
#undef FN

/* Backward, with ga_j = gw_j + dc . v_j the gradient reaching a_j and G_j the Gaussian:
 *   dv_j += a_j dc,  dalpha_j = ga_j G_j,  ds_j = alpha_j (dalpha_j - sum_i alpha_i dalpha_i),
 *   dp = sum_j ga_j a_j (j - p) / sigma^2. */
static void local_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *s = nd->in[0], *v = nd->in[1], *centre = nd->in[2], *ctx = nd->out[0], *w = nd->out[1];
    const local_plan *p = nd->saved;
    int64_t B = p->B, N = p->N, dv = p->dv;
    void *gs_ = heed_grad_buffer(g, s), *gv_ = heed_grad_buffer(g, v), *gp_ = heed_grad_buffer(g, centre);
    double *ga = heed_graph_alloc(g, (size_t)(B * N > 0 ? B * N : 1) * sizeof *ga);
    if (!ga) return;
    if (s->dtype == HEED_F32) local_backward_kernel_f32(s, v, centre, w, ctx, gs_, gv_, gp_, B, N, dv, g, ga, p);
    else local_backward_kernel_f64(s, v, centre, w, ctx, gs_, gv_, gp_, B, N, dv, g, ga, p);
}

static const heed_op op_local = {"heed_local_attend", local_backward};

heed_tensor *heed_local_attend(heed_graph *g, heed_tensor *scores, heed_tensor *values, heed_tensor *centre, int64_t D,
                               double sigma, const int64_t *key_lengths, heed_tensor **weights) {
    const char *op = "heed_local_attend";
    if (weights) *weights = NULL;
    if (!heed_check_tensor(g, op, scores, "scores")) return NULL;
    if (scores->ndim != 2)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: scores%s must be [B,N]", op, HEED_S(scores)), NULL;
    int64_t B = scores->shape[0], N = scores->shape[1];
    if (!HEED__EXPECT(g, op, values, "values", scores, "[B,N,dv]", B, N, -1) ||
        !HEED__EXPECT(g, op, centre, "centre", scores, "[B]", B))
        return NULL;
    if (D < 1)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: D = %lld (the window p-D .. p+D needs D >= 1)", op, (long long)D),
               NULL;
    if (!(sigma >= 0) || isinf(sigma))
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: sigma = %g (must be finite and >= 0; 0 = no Gaussian)", op, sigma),
               NULL;
    local_plan p = {.B = B, .N = N, .dv = values->shape[2], .sigma = sigma};
    int64_t *len = heed__key_lengths(g, op, key_lengths, B, N);
    size_t nb = (size_t)(B > 0 ? B : 1);
    p.lo = heed_graph_alloc(g, nb * sizeof *p.lo), p.hi = heed_graph_alloc(g, nb * sizeof *p.hi);
    p.max = heed_graph_alloc(g, nb * sizeof *p.max), p.sum = heed_graph_alloc(g, nb * sizeof *p.sum);
    if (!len || !p.lo || !p.hi || !p.max || !p.sum) return NULL;
    for (int64_t b = 0; b < B; b++) {
        double c = heed_get(centre, b);
        if (!isfinite(c))
            return heed_graph_fail(g, HEED_ERR_NUMERIC, "%s: centre[%lld] = %g is not a finite position", op,
                                   (long long)b, c),
                   NULL;
        /* keys j with c - D <= j <= c + D and 0 <= j < L; clamped in double first so the
         * conversion to int64 cannot overflow */
        double lo = ceil(c - (double)D), hi = floor(c + (double)D) + 1;
        lo = lo < 0 ? 0 : lo > (double)len[b] ? (double)len[b] : lo;
        hi = hi < lo ? lo : hi > (double)len[b] ? (double)len[b] : hi;
        p.lo[b] = (int64_t)lo, p.hi[b] = (int64_t)hi;
    }
    int64_t dv = p.dv;
    heed_tensor *ctx = heed__zeros(g, op, scores->dtype, 2, (int64_t[]){B, dv});
    heed_tensor *w = ctx ? heed__zeros(g, op, scores->dtype, 2, (int64_t[]){B, N}) : NULL;
    if (!w) return NULL;
    if (scores->dtype == HEED_F32) local_attend_kernel_f32(scores, values, centre, ctx, w, B, N, dv, g, p);
    else local_attend_kernel_f64(scores, values, centre, ctx, w, B, N, dv, g, p);
    heed_tensor *in[3] = {scores, values, centre}, *out[2] = {ctx, w};
    heed_node *nd = heed_record(g, &op_local, 3, in, 2, out);
    if (nd && (nd->saved = heed_graph_alloc(g, sizeof p))) *(local_plan *)nd->saved = p;
    if (!heed_graph_ok(g)) return NULL;
    if (weights) *weights = w;
    return ctx;
}

/* p_b = (L_b - 1) sigmoid(v_p . tanh(W_p q_b)), from recorded ops (linear, tanh, matmul,
 * sigmoid, mul). */
heed_tensor *heed_local_position(heed_graph *g, heed_tensor *query, heed_tensor *w_p, heed_tensor *v_p, int64_t N,
                                 const int64_t *key_lengths) {
    const char *op = "heed_local_position";
    if (!heed_check_tensor(g, op, query, "query")) return NULL;
    if (query->ndim != 2)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: query%s must be [B,dq]", op, HEED_S(query)), NULL;
    int64_t B = query->shape[0], dq = query->shape[1];
    if (!HEED__EXPECT(g, op, w_p, "w_p", query, "[dp,dq]", -1, dq)) return NULL;
    int64_t dp = w_p->shape[0];
    if (!HEED__EXPECT(g, op, v_p, "v_p", query, "[dp]", dp)) return NULL;
    if (N < 0) return heed_graph_fail(g, HEED_ERR_ARG, "%s: N = %lld keys (must be >= 0)", op, (long long)N), NULL;
    int64_t *len = heed__key_lengths(g, op, key_lengths, B, N);
    double *last = len ? heed_graph_alloc(g, (size_t)(B > 0 ? B : 1) * sizeof *last) : NULL;
    if (!last) return NULL;
    for (int64_t b = 0; b < B; b++) last[b] = len[b] > 0 ? (double)(len[b] - 1) : 0;
    heed_tensor *t = heed_tanh(g, heed_linear(g, query, w_p, NULL));
    heed_tensor *z = heed_matmul(g, t, heed_reshape(g, v_p, HEED_SHAPE(dp, 1)));
    heed_tensor *pos = heed_mul(g, heed_sigmoid(g, z), heed_input_f64(g, query->dtype, HEED_SHAPE(B, 1), last));
    return heed_reshape(g, pos, HEED_SHAPE(B));
}

heed_tensor *heed_luong_local_attention(heed_graph *g, heed_luong_kind kind, heed_tensor *query, heed_tensor *keys,
                                        heed_tensor *values, heed_tensor *w, heed_tensor *v,
                                        const heed_local_opts *opts, const int64_t *key_lengths,
                                        heed_tensor **weights) {
    const char *op = "heed_luong_local_attention";
    if (weights) *weights = NULL;
    if (!heed_graph_ok(g)) return NULL;
    heed_local_opts o = opts ? *opts : (heed_local_opts){0};
    int64_t D = o.D ? o.D : 10;
    if (o.kind != HEED_LOCAL_M && o.kind != HEED_LOCAL_P)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: kind = %d (HEED_LOCAL_M or HEED_LOCAL_P)", op, (int)o.kind), NULL;
    if (D < 1)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: D = %lld (must be >= 1; 0 means 10)", op, (long long)o.D), NULL;
    if (o.kind == HEED_LOCAL_M && (o.w_p || o.v_p))
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: local-m takes no w_p or v_p (its centre is the step)", op), NULL;
    if (o.kind == HEED_LOCAL_M && o.step < 0)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: step = %lld (the decoder step must be >= 0)", op,
                               (long long)o.step),
               NULL;
    if (o.kind == HEED_LOCAL_P && (!o.w_p || !o.v_p))
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: local-p needs w_p [dp,dq] and v_p [dp] to predict the centre", op),
               NULL;
    heed_tensor *s = heed_luong_score(g, kind, query, keys, w, v);
    if (!s) return NULL;
    int64_t B = s->shape[0], N = s->shape[1];
    heed_tensor *centre = o.kind == HEED_LOCAL_P ? heed_local_position(g, query, o.w_p, o.v_p, N, key_lengths)
                                                 : heed_full(g, s->dtype, HEED_SHAPE(B), (double)o.step);
    double sigma = o.kind == HEED_LOCAL_P || o.gaussian_m ? (double)D / 2 : 0;
    return centre ? heed_local_attend(g, s, values, centre, D, sigma, key_lengths, weights) : NULL;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

static void FN(local_backward_kernel)(heed_tensor *s, heed_tensor *v, heed_tensor *centre, heed_tensor *w,
                                      heed_tensor *ctx, void *gs_, void *gv_, void *gp_, int64_t B, int64_t N,
                                      int64_t dv, heed_graph *g, double *ga, const local_plan *p) {
    const T *S = s->data, *V = v->data, *P = centre->data, *A = w->data, *dC = ctx->grad, *gW = w->grad;
    T *gs = gs_, *gv = gv_, *gp = gp_;
#pragma omp parallel for if (B * N * dv > 32768) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t b = 0; b < B; b++) {
        const T *dc = dC + b * dv;
        double pb = P[b], dot = 0, dp = 0, *gab = ga + b * N;
        for (int64_t j = p->lo[b]; j < p->hi[b]; j++) {
            const T *vj = V + (b * N + j) * dv;
            double d = gW[b * N + j];
            for (int64_t e = 0; e < dv; e++) d += (double)dc[e] * vj[e];
            gab[j] = d;
            if (gv)
                for (int64_t e = 0; e < dv; e++) gv[(b * N + j) * dv + e] += (T)(A[b * N + j] * dc[e]);
            double alpha = exp((double)S[b * N + j] - p->max[b]) / p->sum[b];
            dot += alpha * d * gauss((double)j, pb, p->sigma);
            if (p->sigma > 0)
                dp += d * alpha * gauss((double)j, pb, p->sigma) * ((double)j - pb) / (p->sigma * p->sigma);
        }
        for (int64_t j = p->lo[b]; gs && j < p->hi[b]; j++) {
            double alpha = exp((double)S[b * N + j] - p->max[b]) / p->sum[b];
            gs[b * N + j] += (T)(alpha * (gab[j] * gauss((double)j, pb, p->sigma) - dot));
        }
        if (gp) gp[b] += (T)dp;
    }
}

static void FN(local_attend_kernel)(heed_tensor *scores, heed_tensor *values, heed_tensor *centre, heed_tensor *ctx,
                                    heed_tensor *w, int64_t B, int64_t N, int64_t dv, heed_graph *g, local_plan p) {
    const T *S = scores->data, *V = values->data, *P = centre->data;
    T *C = ctx->data, *W = w->data;
#pragma omp parallel for if (B * N * dv > 32768) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t b = 0; b < B; b++) {
        double m = -INFINITY, sum = 0;
        for (int64_t j = p.lo[b]; j < p.hi[b]; j++)
            m = S[b * N + j] > m || S[b * N + j] != S[b * N + j] ? S[b * N + j] : m;
        if (m == -INFINITY) p.hi[b] = p.lo[b]; /* an empty window, or every score in it -inf: zeros */
        for (int64_t j = p.lo[b]; j < p.hi[b]; j++) sum += exp((double)S[b * N + j] - m);
        p.max[b] = m, p.sum[b] = sum;
        for (int64_t j = p.lo[b]; j < p.hi[b]; j++) {
            T a = (T)(exp((double)S[b * N + j] - m) / sum * gauss((double)j, (double)P[b], p.sigma));
            W[b * N + j] = a;
            for (int64_t e = 0; e < dv; e++) C[b * dv + e] += a * V[(b * N + j) * dv + e];
        }
    }
}
#endif
