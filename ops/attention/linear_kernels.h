/* The kernels of linear.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: linear.c. */

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
