/* The kernels of batchnorm.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: batchnorm.c. */

static void FN(update_running_kernel)(const heed_batchnorm_opts *o, const bn_saved *p, double m, const double *var,
                                      double unbias) {
    T *rm = o->running_mean->data, *rv = o->running_var->data;
    for (int64_t c = 0; c < p->C; c++) {
        rm[c] = (T)((1 - m) * rm[c] + m * p->mean[c]);
        rv[c] = (T)((1 - m) * rv[c] + m * var[c] * unbias);
    }
}
