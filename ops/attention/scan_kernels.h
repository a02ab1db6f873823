/* The kernels of scan.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: scan.c. */

/* Score of key j in row b, in double. */
static inline double FN(score)(const scan_plan *p, const T *Q, const T *K, int64_t b, int64_t j) {
    const T *q = Q + (p->shared_q ? 0 : b * p->d), *k = K + (b * p->N + j) * p->d;
    double s = 0;
    for (int64_t i = 0; i < p->d; i++) s += (double)q[i] * k[i];
    return s * p->scale;
}

/* dq, dk from ds_j (the gradient of score j), shared by both ops:
 *   s_j = scale q . k_j:  dq += scale ds_j k_j,  dk_j += scale ds_j q.
 * dq goes to a per-row scratch (q may be shared by every row). */
static inline void FN(score_backward)(const scan_plan *p, const T *Q, const T *K, T *gk, double *dqrow, int64_t b,
                                      int64_t j, double ds) {
    const T *q = Q + (p->shared_q ? 0 : b * p->d), *k = K + (b * p->N + j) * p->d;
    double f = p->scale * ds;
    for (int64_t i = 0; i < p->d; i++) dqrow[i] += f * k[i];
    if (gk)
        for (int64_t i = 0; i < p->d; i++) gk[(b * p->N + j) * p->d + i] += (T)(f * q[i]);
}

static void FN(add_dq_kernel)(void *gq_, const scan_plan *p, const double *dqs) {
    T *gq = gq_;
    for (int64_t b = 0; b < p->B; b++)
        for (int64_t i = 0; i < p->d; i++) gq[(p->shared_q ? 0 : b * p->d) + i] += (T)dqs[b * p->d + i];
}

static void FN(recurrent_backward_kernel)(heed_tensor *q, heed_tensor *k, heed_tensor *v, heed_tensor *o, void *gk_,
                                          void *gv_, const scan_plan *p, heed_graph *g, double *dqs) {
    const T *Q = q->data, *K = k->data, *V = v->data, *O = o->data, *dO = o->grad;
    T *gk = gk_, *gv = gv_;
#pragma omp parallel for if (p->B * p->N * (p->d + p->dv) > 32768) num_threads(heed_ctx_threads(g->ctx))
    for (int64_t b = 0; b < p->B; b++) {
        const T *dob = dO + b * p->dv, *ob = O + b * p->dv;
        double D = 0;
        for (int64_t e = 0; e < p->dv; e++) D += (double)dob[e] * ob[e];
        for (int64_t j = 0; j < p->len[b]; j++) {
            double pj = exp(FN(score)(p, Q, K, b, j) - p->lse[b]), dp = 0;
            const T *vj = V + (b * p->N + j) * p->dv;
            for (int64_t e = 0; e < p->dv; e++) dp += (double)dob[e] * vj[e];
            if (gv)
                for (int64_t e = 0; e < p->dv; e++) gv[(b * p->N + j) * p->dv + e] += (T)(pj * dob[e]);
            FN(score_backward)(p, Q, K, gk, dqs + b * p->d, b, j, pj * (dp - D));
        }
    }
}

static void FN(attention_recurrent_kernel)(heed_tensor *q, heed_tensor *k, heed_tensor *v, heed_tensor *o, scan_plan p,
                                           heed_graph *g, double *acc) {
    const T *Q = q->data, *K = k->data, *V = v->data;
    T *O = o->data;
#pragma omp parallel for if (p.B * p.N * (p.d + p.dv) > 32768) num_threads(heed_ctx_threads(g->ctx))
    for (int64_t b = 0; b < p.B; b++) {
        /* the O(dv) state: one key at a time */
        double m = -INFINITY, c = 0, *a = acc + b * p.dv;
        for (int64_t e = 0; e < p.dv; e++) a[e] = 0;
        for (int64_t j = 0; j < p.len[b]; j++) {
            double s = FN(score)(&p, Q, K, b, j);
            const T *vj = V + (b * p.N + j) * p.dv;
            double mn = m > s ? m : s, f = m == -INFINITY ? 0 : exp(m - mn), fs = exp(s - mn);
            c = c * f + fs;
            for (int64_t e = 0; e < p.dv; e++) a[e] = a[e] * f + (double)vj[e] * fs;
            m = mn;
        }
        p.lse[b] = c > 0 ? m + log(c) : -INFINITY;
        for (int64_t e = 0; e < p.dv; e++) O[b * p.dv + e] = (T)(c > 0 ? a[e] / c : 0);
    }
}

static void FN(scan_backward_kernel)(heed_tensor *q, heed_tensor *k, heed_tensor *v, heed_tensor *o, void *gk_,
                                     void *gv_, const scan_plan *p, heed_graph *g, double *u_all, double *dqs) {
    const T *Q = q->data, *K = k->data, *V = v->data, *O = o->data, *dO = o->grad;
    T *gk = gk_, *gv = gv_;
#pragma omp parallel for if (p->B * p->N * (p->d + p->dv) > 32768) num_threads(heed_ctx_threads(g->ctx))
    for (int64_t b = 0; b < p->B; b++) {
        double *u = u_all + b * p->dv, w = 0;
        const double *L = p->lse + b * p->N;
        for (int64_t e = 0; e < p->dv; e++) u[e] = 0;
        for (int64_t i = p->len[b] - 1; i >= 0; i--) {
            const T *doi = dO + (b * p->N + i) * p->dv, *oi = O + (b * p->N + i) * p->dv,
                    *vi = V + (b * p->N + i) * p->dv;
            double decay = i + 1 < p->len[b] ? exp(L[i] - L[i + 1]) : 0, dot_o = 0, vu = 0;
            for (int64_t e = 0; e < p->dv; e++) {
                u[e] = doi[e] + decay * u[e];
                dot_o += (double)doi[e] * oi[e];
                vu += (double)vi[e] * u[e];
            }
            w = dot_o + decay * w;
            double pi = exp(FN(score)(p, Q, K, b, i) - L[i]);
            if (gv)
                for (int64_t e = 0; e < p->dv; e++) gv[(b * p->N + i) * p->dv + e] += (T)(pi * u[e]);
            FN(score_backward)(p, Q, K, gk, dqs + b * p->d, b, i, pi * (vu - w));
        }
    }
}

static void FN(attention_scan_kernel)(heed_tensor *q, heed_tensor *k, heed_tensor *v, heed_tensor *o,
                                      bool rows_parallel, int threads, scan_plan p, double *work, size_t per_row,
                                      int64_t n2) {
    const T *Q = q->data, *K = k->data, *V = v->data;
    T *O = o->data;
#pragma omp parallel for if (rows_parallel) num_threads(threads)
    for (int64_t b = 0; b < p.B; b++) {
        double *M = work + (rows_parallel ? b : 0) * per_row, *C = M + n2, *s = C + n2, *A = s + n2;
        int64_t L = p.len[b];
        for (int64_t i = 0; i < L; i++) {
            s[i] = FN(score)(&p, Q, K, b, i);
            for (int64_t e = 0; e < p.dv; e++) A[i * p.dv + e] = V[(b * p.N + i) * p.dv + e];
        }
        for (int64_t i = L * p.dv; i < n2 * p.dv; i++) A[i] = 0;
        if (L > 0) scan_row(L, n2, p.dv, M, C, A, s, !rows_parallel, threads);
        /* slots hold exclusive prefixes; inclusive = exclusive + leaf i */
        for (int64_t i = 0; i < L; i++) {
            const T *vi = V + (b * p.N + i) * p.dv;
            double m = M[i], c = C[i], *a = A + i * p.dv;
            double mn = m > s[i] ? m : s[i], f = m == -INFINITY ? 0 : exp(m - mn), fs = exp(s[i] - mn);
            c = c * f + fs;
            for (int64_t e = 0; e < p.dv; e++) O[(b * p.N + i) * p.dv + e] = (T)((a[e] * f + (double)vi[e] * fs) / c);
            if (p.lse) p.lse[b * p.N + i] = mn + log(c);
        }
    }
}
