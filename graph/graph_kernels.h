/* The kernels of graph.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: graph.c. */

static void FN(full_kernel)(heed_tensor *t, double value) {
    T *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) p[i] = (T)value;
}

static void FN(input_f64_kernel)(heed_tensor *t, const double *data) {
    T *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) p[i] = data ? (T)data[i] : 0;
}

/* Whether p[n] holds a NaN or an infinity. */
static bool FN(has_nonfinite)(const T *p, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return true;
    return false;
}

static void FN(run_backward_kernel)(void *gt, const heed_tensor *seed, heed_tensor *t) {
    T *d = gt;
    if (!seed) d[0] += 1;
    else
        for (int64_t i = 0; i < t->numel; i++) d[i] += ((const T *)seed->data)[i];
}
