/* Adam (with the AMSGrad option) and AdamW, as torch.optim.Adam / AdamW (1.13) define
 * them. At update t, per element, with g the gradient:
 *   Adam:   g = g + wd * p                (L2 penalty through the gradient)
 *   AdamW:  p = p * (1 - lr * wd)         (decoupled decay, before the update)
 *   m = b1 * m + (1 - b1) * g
 *   v = b2 * v + (1 - b2) * g^2
 *   AMSGrad: v_max = max(v_max, v), and v_max replaces v below
 *   p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * State: "adam.exp_avg", "adam.exp_avg_sq" (+ "adam.max_exp_avg_sq" with AMSGrad), or
 * the same names with the "adamw." prefix. */
#include "optim_internal.h"

#include <math.h>
#include <tgmath.h>

#define OPT_UPDATE_FILE "adam_update.h"
#include "kernel_builds.h" /* update(): adam_update.h for f64, f32 and f32 on AVX2 */

static heed_optimizer *make(heed_params *P, const heed_adam_opts *opts, bool decoupled) {
    const char *fn = decoupled ? "heed_adamw" : "heed_adam";
    heed_adam_opts o = opts ? *opts : (heed_adam_opts){0};
    o.lr = heed__opt(o.lr, 1e-3);
    o.beta1 = heed__opt(o.beta1, 0.9);
    o.beta2 = heed__opt(o.beta2, 0.999);
    o.eps = heed__opt(o.eps, 1e-8);
    o.weight_decay = heed__opt(o.weight_decay, decoupled ? 1e-2 : 0);
    heed_ctx *ctx = heed_params_ctx(P);
    if (!P) return NULL;
    if (!heed__opt_check(ctx, fn, "lr", o.lr, 0, INFINITY, false) ||
        !heed__opt_check(ctx, fn, "beta1", o.beta1, 0, 1, true) ||
        !heed__opt_check(ctx, fn, "beta2", o.beta2, 0, 1, true) ||
        !heed__opt_check(ctx, fn, "eps", o.eps, 0, INFINITY, false) ||
        !heed__opt_check(ctx, fn, "weight_decay", o.weight_decay, 0, INFINITY, false))
        return NULL;
    static const char *const adam_names[] = {"adam.exp_avg", "adam.exp_avg_sq", "adam.max_exp_avg_sq"};
    static const char *const adamw_names[] = {"adamw.exp_avg", "adamw.exp_avg_sq", "adamw.max_exp_avg_sq"};
    heed_optimizer *opt =
        heed__optimizer_new(P, fn, decoupled ? OPT_ADAMW : OPT_ADAM, decoupled ? "adamw" : "adam", update, o.lr,
                            o.weight_decay, o.amsgrad ? 3 : 2, decoupled ? adamw_names : adam_names);
    if (!opt) return NULL;
    opt->beta1 = o.beta1;
    opt->beta2 = o.beta2;
    opt->eps = o.eps;
    opt->amsgrad = o.amsgrad;
    opt->state_min[1] = opt->state_min[2] = 0; /* second moments */
    return opt;
}

heed_optimizer *heed_adam(heed_params *P, const heed_adam_opts *opts) { return make(P, opts, false); }
heed_optimizer *heed_adamw(heed_params *P, const heed_adam_opts *opts) { return make(P, opts, true); }
