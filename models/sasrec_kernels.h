/* The kernels of sasrec.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: sasrec.c. */

static void FN(sasrec_declare_kernel)(heed_sasrec *m, int64_t d) {
    T *e = m->item_emb->data, *p = m->pos_emb->data;
    for (int64_t j = 0; j < d; j++) e[j] = p[j] = 0;
}

static void FN(sasrec_forward_kernel)(heed_tensor *bias, int64_t B, int64_t N, int64_t *pid, const int64_t *seq,
                                      const heed_sasrec_config *c) {
    T *bs = bias->data;
    for (int64_t i = 0; i < B * N; i++) {
        pid[i] = seq[i] != 0 ? c->maxlen - N + i % N + 1 : 0;
        bs[i] = seq[i] != 0 ? 0 : -INFINITY;
    }
}

static void FN(loss_backward_kernel)(heed_tensor *h, heed_tensor *E, heed_tensor *y, int64_t n, void *gh_, int64_t d,
                                     heed_graph *g, const bce_saved *s, void *gE_) {
    const T *H = h->data, *W = E->data;
    double go = (double)((const T *)y->grad)[0] / (double)n;
    if (gh_) {
        T *gh = gh_;
#pragma omp parallel for if (n * d > 65536) num_threads(heed_ctx_threads(heed_graph_ctx(g)))
        for (int64_t i = 0; i < n; i++) {
            T a = (T)(go * (s->sp[i] - 1)), b = (T)(go * s->sn[i]);
            T *dst = gh + s->row[i] * d;
            const T *ep = W + s->pos[i] * d, *en = W + s->neg[i] * d;
            for (int64_t k = 0; k < d; k++) dst[k] += a * ep[k] + b * en[k];
        }
    }
    if (gE_) { /* a scatter: items repeat, so one thread */
        T *gE = gE_;
        for (int64_t i = 0; i < n; i++) {
            T a = (T)(go * (s->sp[i] - 1)), b = (T)(go * s->sn[i]);
            const T *hi = H + s->row[i] * d;
            T *dp = gE + s->pos[i] * d, *dn = gE + s->neg[i] * d;
            for (int64_t k = 0; k < d; k++) dp[k] += a * hi[k];
            for (int64_t k = 0; k < d; k++) dn[k] += b * hi[k];
        }
    }
}

static void FN(sasrec_loss_kernel)(heed_tensor *h, const heed_sasrec *m, int64_t n, int64_t d, heed_graph *g,
                                   bce_saved *s, heed_tensor *out) {
    const T *H = h->data, *W = m->item_emb->data;
    double total = 0;
#pragma omp parallel for reduction(+ : total) if (n * d > 65536) num_threads(heed_ctx_threads(heed_graph_ctx(g)))
    for (int64_t i = 0; i < n; i++) {
        const T *hi = H + s->row[i] * d, *ep = W + s->pos[i] * d, *en = W + s->neg[i] * d;
        double a = 0, b = 0;
        for (int64_t k = 0; k < d; k++) a += (double)hi[k] * ep[k], b += (double)hi[k] * en[k];
        total += heed_scalar_softplus(-a) + heed_scalar_softplus(b);
        s->sp[i] = heed_scalar_sigmoid(a);
        s->sn[i] = heed_scalar_sigmoid(b);
    }
    ((T *)out->data)[0] = (T)(total / (double)n);
}
