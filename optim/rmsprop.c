/* RMSprop, as torch.optim.RMSprop (1.13) defines it. Per element, with g the gradient:
 *   g = g + wd * p
 *   s = alpha * s + (1 - alpha) * g^2
 *   centered:  a = alpha * a + (1 - alpha) * g;  r = sqrt(s - a^2) + eps
 *   else:      r = sqrt(s) + eps
 *   momentum mu > 0:  b = mu * b + g / r;  p = p - lr * b
 *   else:             p = p - lr * g / r
 * State: "rmsprop.square_avg", then "rmsprop.momentum_buffer" (mu > 0), then
 * "rmsprop.grad_avg" (centered). */
#include "optim_internal.h"

#include <math.h>
#include <tgmath.h>

#define OPT_UPDATE_FILE "rmsprop_update.h"
#include "kernel_builds.h" /* update(): rmsprop_update.h for f64, f32 and f32 on AVX2 */

heed_optimizer *heed_rmsprop(heed_params *P, const heed_rmsprop_opts *opts) {
    static const char *fn = "heed_rmsprop";
    heed_rmsprop_opts o = opts ? *opts : (heed_rmsprop_opts){0};
    o.lr = heed__opt(o.lr, 1e-2);
    o.alpha = heed__opt(o.alpha, 0.99);
    o.eps = heed__opt(o.eps, 1e-8);
    o.weight_decay = heed__opt(o.weight_decay, 0);
    o.momentum = heed__opt(o.momentum, 0);
    heed_ctx *ctx = heed_params_ctx(P);
    if (!P) return NULL;
    if (!heed__opt_check(ctx, fn, "lr", o.lr, 0, INFINITY, false) ||
        !heed__opt_check(ctx, fn, "alpha", o.alpha, 0, 1, false) ||
        !heed__opt_check(ctx, fn, "eps", o.eps, 0, INFINITY, false) ||
        !heed__opt_check(ctx, fn, "momentum", o.momentum, 0, INFINITY, false) ||
        !heed__opt_check(ctx, fn, "weight_decay", o.weight_decay, 0, INFINITY, false))
        return NULL;
    const char *names[3];
    int n = 0;
    names[n++] = "rmsprop.square_avg";
    if (o.momentum > 0) names[n++] = "rmsprop.momentum_buffer";
    if (o.centered) names[n++] = "rmsprop.grad_avg";
    heed_optimizer *opt = heed__optimizer_new(P, fn, OPT_RMSPROP, "rmsprop", update, o.lr, o.weight_decay, n, names);
    if (!opt) return NULL;
    opt->alpha = o.alpha;
    opt->eps = o.eps;
    opt->momentum = o.momentum;
    opt->centered = o.centered;
    opt->state_min[0] = 0; /* square_avg */
    return opt;
}
