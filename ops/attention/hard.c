/* Hard (stochastic) attention, as in Show, Attend and Tell (Xu et al. 2015): instead of
 * the average sum_j w_j v_j, one key is sampled from w = softmax(s) and its value is the
 * context. The sample is discrete, so the scores learn by the score-function (REINFORCE)
 * estimator: for a reward r of the sample and a baseline b,
 *   d E[r] / ds  ~=  (r - b) d log w_sample / ds,   d log w_i / ds_j = [i = j] - w_j,
 * unbiased for any b that does not depend on the sample (a moving average of past
 * rewards lowers its variance), plus an entropy bonus H = -sum_j w_j log w_j. Here:
 *   heed_hard_attend       the sample (seeded, counter-based), the context, and the
 *                          differentiable log w_sample and entropy;
 *   heed_reinforce_loss    -mean_b (r_b - b) log w_sample(b): its gradient is the estimator;
 *   heed_baseline_update   b <- decay b + (1 - decay) mean(r). */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "layers.h"
#include "heed/attention.h"
#include "heed/elementwise.h"
#include "heed/reduce.h"

#include <math.h>
#include <tgmath.h>

typedef struct {
    int64_t *len;    /* [B] */
    int64_t *sample; /* [B], -1 for a row without keys */
    double *max;     /* [B] row max of the valid scores (-inf: no valid key) */
    double *lse;     /* [B] log sum_j exp(s_j - max) */
    double *entropy; /* [B] */
} hard_plan;

#define T float
#define FN(name) name##_f32
#include "hard.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "hard.c"
#undef T
#undef FN

/* Backward. With w the weights, i the sample, gw, gl, gh the gradients of the weights, the
 * log-probability and the entropy outputs (log w_j = s_j - max - lse):
 *   ds_j = w_j (gw_j - sum_k w_k gw_k) + gl ([j = i] - w_j) - gh w_j (log w_j + H),
 *   dv_i += dc (the context is v_i: no gradient reaches the scores through it). */
static void hard_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *s = nd->in[0], *v = nd->in[1], *ctx = nd->out[0], *w = nd->out[1], *lp = nd->out[2], *ent = nd->out[3];
    const hard_plan *p = nd->saved;
    int64_t B = v->shape[0], N = v->shape[1], dv = v->shape[2];
    void *gs_ = heed_grad_buffer(g, s), *gv_ = heed_grad_buffer(g, v);
    if (s->dtype == HEED_F32) hard_backward_kernel_f32(s, ctx, w, lp, ent, gs_, gv_, B, p, dv, N);
    else hard_backward_kernel_f64(s, ctx, w, lp, ent, gs_, gv_, B, p, dv, N);
}

static const heed_op op_hard = {"heed_hard_attend", hard_backward};

heed_tensor *heed_hard_attend(heed_graph *g, heed_tensor *scores, heed_tensor *values, const int64_t *key_lengths,
                              heed_hard_outputs *outputs) {
    const char *op = "heed_hard_attend";
    if (outputs) *outputs = (heed_hard_outputs){0};
    if (!heed_check_tensor(g, op, scores, "scores")) return NULL;
    if (scores->ndim != 2)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: scores%s must be [B,N]", op, HEED_S(scores)), NULL;
    int64_t B = scores->shape[0], N = scores->shape[1];
    if (!HEED__EXPECT(g, op, values, "values", scores, "[B,N,dv]", B, N, -1)) return NULL;
    int64_t dv = values->shape[2];
    heed_dtype dt = scores->dtype;
    size_t nb = (size_t)(B > 0 ? B : 1);
    hard_plan p = {.len = heed__key_lengths(g, op, key_lengths, B, N)};
    p.sample = heed_graph_alloc(g, nb * sizeof *p.sample), p.max = heed_graph_alloc(g, nb * sizeof *p.max);
    p.lse = heed_graph_alloc(g, nb * sizeof *p.lse), p.entropy = heed_graph_alloc(g, nb * sizeof *p.entropy);
    if (!p.len || !p.sample || !p.max || !p.lse || !p.entropy) return NULL;
    heed_tensor *ctx = heed__zeros(g, op, dt, 2, (int64_t[]){B, dv}), *w = heed__zeros(g, op, dt, 2, (int64_t[]){B, N});
    heed_tensor *lp = heed__zeros(g, op, dt, 1, (int64_t[]){B}), *ent = heed__zeros(g, op, dt, 1, (int64_t[]){B});
    if (!ctx || !w || !lp || !ent) return NULL;
    /* training: row b draws u = uniform number b of this op's Philox stream (53 bits), so
     * the samples depend on the ctx seed and the op's order only; evaluation: the argmax */
    bool sample = g->training;
    uint64_t seed = g->ctx->seed, stream = sample ? heed__next_stream(g->ctx) : 0;
    if (dt == HEED_F32) hard_attend_kernel_f32(scores, values, ctx, w, lp, ent, B, N, p, sample, seed, stream, dv);
    else hard_attend_kernel_f64(scores, values, ctx, w, lp, ent, B, N, p, sample, seed, stream, dv);
    heed_tensor *in[2] = {scores, values}, *out[4] = {ctx, w, lp, ent};
    heed_node *nd = heed_record(g, &op_hard, 2, in, 4, out);
    if (nd && (nd->saved = heed_graph_alloc(g, sizeof p))) *(hard_plan *)nd->saved = p;
    if (!heed_graph_ok(g)) return NULL;
    if (outputs) *outputs = (heed_hard_outputs){.weights = w, .log_prob = lp, .entropy = ent, .samples = p.sample};
    return ctx;
}

heed_tensor *heed_reinforce_loss(heed_graph *g, heed_tensor *log_prob, const double *rewards, double baseline) {
    const char *op = "heed_reinforce_loss";
    if (!heed_check_tensor(g, op, log_prob, "log_prob")) return NULL;
    if (log_prob->ndim != 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: log_prob%s must be [B]", op, HEED_S(log_prob)), NULL;
    int64_t B = log_prob->shape[0];
    if (!rewards && B > 0)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: rewards is NULL (need B = %lld)", op, (long long)B), NULL;
    if (!isfinite(baseline))
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: baseline = %g is not finite", op, baseline), NULL;
    double *adv = heed_graph_alloc(g, (size_t)(B > 0 ? B : 1) * sizeof *adv);
    if (!adv) return NULL;
    for (int64_t b = 0; b < B; b++) {
        if (!isfinite(rewards[b]))
            return heed_graph_fail(g, HEED_ERR_ARG, "%s: rewards[%lld] = %g is not finite", op, (long long)b,
                                   rewards[b]),
                   NULL;
        adv[b] = -(rewards[b] - baseline);
    }
    heed_tensor *a = heed_input_f64(g, log_prob->dtype, HEED_SHAPE(B), adv);
    return B > 0 ? heed_mean_all(g, heed_mul(g, log_prob, a)) : heed_sum_all(g, heed_mul(g, log_prob, a));
}

heed_status heed_baseline_update(heed_ctx *ctx, heed_reward_baseline *b, const double *rewards, int64_t n,
                                 double *baseline) {
    const char *fn = "heed_baseline_update";
    if (!ctx) return HEED_ERR_ARG;
    if (!b || !rewards) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: %s is NULL", fn, !b ? "b" : "rewards");
    if (n < 1) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: n = %lld (at least one reward)", fn, (long long)n);
    double decay = b->decay ? b->decay : 0.9, mean = 0;
    if (!(decay > 0 && decay < 1))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: decay = %g (must be in (0, 1); 0 means 0.9)", fn, b->decay);
    if (!isfinite(b->value))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: the running value %g is not finite", fn, b->value);
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(rewards[i]))
            return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: rewards[%lld] = %g is not finite", fn, (long long)i,
                                 rewards[i]);
        mean += rewards[i] / (double)n;
    }
    if (baseline) *baseline = b->value;
    b->value = decay * b->value + (1 - decay) * mean;
    b->updates++;
    return HEED_OK;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

static void FN(hard_backward_kernel)(heed_tensor *s, heed_tensor *ctx, heed_tensor *w, heed_tensor *lp,
                                     heed_tensor *ent, void *gs_, void *gv_, int64_t B, const hard_plan *p, int64_t dv,
                                     int64_t N) {
    const T *S = s->data, *dC = ctx->grad, *gW = w->grad, *gL = lp->grad, *gH = ent->grad;
    T *gs = gs_, *gv = gv_;
    for (int64_t b = 0; b < B; b++) {
        int64_t i = p->sample[b];
        if (gv && i >= 0)
            for (int64_t e = 0; e < dv; e++) gv[(b * N + i) * dv + e] += dC[b * dv + e];
        if (!gs || p->max[b] == -INFINITY) continue;
        double dot = 0, H = p->entropy[b];
        for (int64_t j = 0; j < p->len[b]; j++)
            dot += exp((double)S[b * N + j] - p->max[b] - p->lse[b]) * gW[b * N + j];
        for (int64_t j = 0; j < p->len[b]; j++) {
            double logw = (double)S[b * N + j] - p->max[b] - p->lse[b], wj = exp(logw);
            if (wj == 0 && !isnan(logw)) continue; /* a masked (-inf) key: 0, not 0 * inf */
            gs[b * N + j] += (T)(wj * (gW[b * N + j] - dot) + gL[b] * ((j == i) - wj) - gH[b] * wj * (logw + H));
        }
    }
}

static void FN(hard_attend_kernel)(heed_tensor *scores, heed_tensor *values, heed_tensor *ctx, heed_tensor *w,
                                   heed_tensor *lp, heed_tensor *ent, int64_t B, int64_t N, hard_plan p, bool sample,
                                   uint64_t seed, uint64_t stream, int64_t dv) {
    const T *S = scores->data, *V = values->data;
    T *C = ctx->data, *W = w->data, *LP = lp->data, *E = ent->data;
    for (int64_t b = 0; b < B; b++) {
        const T *sb = S + b * N;
        int64_t L = p.len[b], pick = -1;
        double m = -INFINITY, sum = 0, cum = 0, u = 0, H = 0;
        for (int64_t j = 0; j < L; j++) m = sb[j] > m || sb[j] != sb[j] ? sb[j] : m;
        p.max[b] = m, p.lse[b] = 0, p.entropy[b] = 0, p.sample[b] = -1;
        if (m == -INFINITY) continue; /* no valid key: zeros everywhere */
        for (int64_t j = 0; j < L; j++) sum += exp((double)sb[j] - m);
        if (sample) {
            heed_rng r = heed_rng_make(seed, stream);
            r.counter = (uint64_t)b;
            u = heed_rng_uniform(&r) * sum;
        }
        for (int64_t j = 0; j < L; j++) {
            double e = exp((double)sb[j] - m);
            W[b * N + j] = (T)(e / sum);
            if (e > 0 || e != e) H -= e / sum * ((double)sb[j] - m - log(sum));
            if (!sample && pick < 0 && sb[j] == m) pick = j;
        }
        /* inverse CDF: the first key whose cumulative weight passes u; keys of weight 0
         * are never taken (the last positive one when rounding leaves u past the end) */
        for (int64_t j = 0; sample && j < L; j++) {
            double e = exp((double)sb[j] - m);
            if (e > 0) pick = j;
            if (e > 0 && (cum += e) > u) break;
        }
        p.lse[b] = log(sum), p.entropy[b] = H, p.sample[b] = pick;
        LP[b] = pick >= 0 ? (T)((double)sb[pick] - m - log(sum)) : (T)NAN;
        E[b] = (T)H;
        for (int64_t e = 0; e < dv; e++) C[b * dv + e] = pick >= 0 ? V[(b * N + pick) * dv + e] : (T)NAN;
    }
}
#endif
