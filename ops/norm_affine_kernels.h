/* The kernels of norm.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: norm.c. */

static void FN(layernorm_backward_kernel)(void *ggamma, void *gbeta, int64_t n, int nt, double *part) {
    T *dg = ggamma, *db = gbeta;
    for (int64_t j = 0; j < n; j++) {
        double sg = 0, sb = 0;
        for (int t = 0; t < nt; t++) sg += part[(size_t)t * 2 * n + j], sb += part[((size_t)t * 2 + 1) * n + j];
        if (dg) dg[j] += (T)sg;
        if (db) db[j] += (T)sb;
    }
}
