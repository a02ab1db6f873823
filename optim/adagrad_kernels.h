/* The kernels of adagrad.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: adagrad.c. */

static void FN(adagrad_kernel)(heed_optimizer *opt, int64_t numel, heed_adagrad_opts o) {
    T *s = opt->state[0];
    for (int64_t i = 0; i < numel; i++) s[i] = (T)o.initial_accumulator_value;
}
