/* The kernels of hard.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: hard.c. */

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
