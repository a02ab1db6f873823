/* The kernels of scores.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: scores.c. */

static void FN(attend_backward_kernel)(heed_tensor *w, heed_tensor *v, heed_tensor *ctx, void *gs_, void *gv_,
                                       int64_t B, int64_t N, int64_t dv, heed_graph *g, double *dw_all,
                                       const int64_t *len) {
    const T *W = w->data, *V = v->data, *dC = ctx->grad, *gW = w->grad;
    T *gs = gs_, *gv = gv_;
#pragma omp parallel for if (B * N * dv > 32768) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t b = 0; b < B; b++) {
        const T *wb = W + b * N, *dc = dC + b * dv;
        double *dw = dw_all ? dw_all + b * N : NULL, dot = 0;
        for (int64_t j = 0; j < len[b]; j++) {
            const T *vj = V + (b * N + j) * dv;
            if (gv) {
                T *gvj = gv + (b * N + j) * dv;
                for (int64_t e = 0; e < dv; e++) gvj[e] += wb[j] * dc[e];
            }
            if (dw) {
                double d = gW[b * N + j];
                for (int64_t e = 0; e < dv; e++) d += (double)dc[e] * vj[e];
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
            const T *vj = V + (b * N + j) * dv;
            for (int64_t e = 0; e < dv; e++) C[b * dv + e] += wb[j] * vj[e];
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
                                          int64_t N, bool gemm_term, bool avx2) {
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
            tanh_row(dt, r, da, avx2);
            double s = 0;
            for (int64_t e = 0; e < da; e++) s += (double)r[e] * V[e];
            Sd[i] = (T)s;
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
