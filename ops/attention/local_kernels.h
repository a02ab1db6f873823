/* The kernels of local.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: local.c. */

static void FN(local_backward_kernel)(heed_tensor *s, heed_tensor *v, heed_tensor *centre, heed_tensor *w,
                                      heed_tensor *ctx, void *gs_, void *gv_, void *gp_, int64_t B, int64_t N,
                                      int64_t dv, heed_graph *g, double *ga, const local_plan *p) {
    const T *S = s->data, *V = v->data, *P = centre->data, *A = w->data, *dC = ctx->grad, *gW = w->grad;
    T *gs = gs_, *gv = gv_, *gp = gp_;
#pragma omp parallel for if (B * N * dv > 32768) num_threads(heed_ctx_threads(g->ctx))
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
#pragma omp parallel for if (B * N * dv > 32768) num_threads(heed_ctx_threads(g->ctx))
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
