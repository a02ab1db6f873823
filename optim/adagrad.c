/* Adagrad, as torch.optim.Adagrad (1.13) defines it. At update t, per element:
 *   g = g + wd * p
 *   clr = lr / (1 + (t - 1) * lr_decay)
 *   s = s + g^2                     (s starts at initial_accumulator_value)
 *   p = p - clr * g / (sqrt(s) + eps)
 * State: "adagrad.sum". */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "optim_internal.h"

#include <math.h>
#include <tgmath.h>

#define OPT_UPDATE_FILE "adagrad_update.h"
#include "kernel_builds.h" /* update(): adagrad_update.h for f64, f32 and f32 on AVX2 */

#define T float
#define FN(name) name##_f32
#include "adagrad.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "adagrad.c"
#undef T
#undef FN

heed_optimizer *heed_adagrad(heed_params *P, const heed_adagrad_opts *opts) {
    static const char *fn = "heed_adagrad";
    heed_adagrad_opts o = opts ? *opts : (heed_adagrad_opts){0};
    o.lr = heed__opt(o.lr, 1e-2);
    o.lr_decay = heed__opt(o.lr_decay, 0);
    o.weight_decay = heed__opt(o.weight_decay, 0);
    o.initial_accumulator_value = heed__opt(o.initial_accumulator_value, 0);
    o.eps = heed__opt(o.eps, 1e-10);
    heed_ctx *ctx = heed_params_ctx(P);
    if (!P) return NULL;
    if (!heed__opt_check(ctx, fn, "lr", o.lr, 0, INFINITY, false) ||
        !heed__opt_check(ctx, fn, "lr_decay", o.lr_decay, 0, INFINITY, false) ||
        !heed__opt_check(ctx, fn, "weight_decay", o.weight_decay, 0, INFINITY, false) ||
        !heed__opt_check(ctx, fn, "initial_accumulator_value", o.initial_accumulator_value, 0, INFINITY, false) ||
        !heed__opt_check(ctx, fn, "eps", o.eps, 0, INFINITY, false))
        return NULL;
    static const char *const names[] = {"adagrad.sum"};
    heed_optimizer *opt = heed__optimizer_new(P, fn, OPT_ADAGRAD, "adagrad", update, o.lr, o.weight_decay, 1, names);
    if (!opt) return NULL;
    opt->lr_decay = o.lr_decay;
    opt->eps = o.eps;
    opt->initial_accumulator = o.initial_accumulator_value;
    opt->state_min[0] = 0; /* a sum of squares */
    int64_t numel = heed_params_padded_numel(P);
    if (opt->dtype == HEED_F32) adagrad_kernel_f32(opt, numel, o);
    else adagrad_kernel_f64(opt, numel, o);
    return opt;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

static void FN(adagrad_kernel)(heed_optimizer *opt, int64_t numel, heed_adagrad_opts o) {
    T *s = opt->state[0];
    for (int64_t i = 0; i < numel; i++) s[i] = (T)o.initial_accumulator_value;
}
#endif
