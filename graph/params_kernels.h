/* The kernels of params.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: params.c. */

static void FN(init_values_kernel)(heed_tensor *t, double *w) {
    T *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) p[i] = (T)w[i];
}
