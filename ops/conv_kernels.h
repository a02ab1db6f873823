/* The kernels of conv.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: conv.c. */

static void FN(conv_bias_grad_kernel)(heed_tensor *y, char *gb, const conv_plan *p, heed_graph *g) {
    const T *dy = y->grad;
    T *db = (T *)gb;
#pragma omp parallel for schedule(static) if (p->N * p->O * p->P > 65536) num_threads(heed_ctx_threads(g->ctx))
    for (int64_t o = 0; o < p->O; o++) {
        double s = 0;
        for (int64_t n = 0; n < p->N; n++)
            for (int64_t k = 0; k < p->P; k++) s += dy[(n * p->O + o) * p->P + k];
        db[o] += (T)s;
    }
}

static void FN(conv_weight_grad_sum_kernel)(char *dws, char *gw, int64_t wn, heed_graph *g, int nt) {
    const T *part = (const T *)dws;
    T *dw = (T *)gw;
#pragma omp parallel for schedule(static) if (wn > 65536) num_threads(heed_ctx_threads(g->ctx))
    for (int64_t i = 0; i < wn; i++) {
        double s = 0;
        for (int t = 0; t < nt; t++) s += part[(size_t)t * (size_t)wn + (size_t)i];
        dw[i] += (T)s;
    }
}

static void FN(conv2d_forward_kernel)(heed_tensor *y, heed_tensor *bias, heed_graph *g, conv_plan p) {
    T *Y = y->data;
    const T *b = bias ? bias->data : NULL;
#pragma omp parallel for schedule(static) if (y->numel > 65536) num_threads(heed_ctx_threads(g->ctx))
    for (int64_t no = 0; no < p.N * p.O; no++)
        for (int64_t k = 0; k < p.P; k++) Y[no * p.P + k] = b ? b[no % p.O] : 0;
}
