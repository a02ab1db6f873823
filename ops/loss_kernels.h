/* The kernels of loss.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: loss.c. */

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
