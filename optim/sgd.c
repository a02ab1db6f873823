/* SGD with momentum, dampening, Nesterov momentum and L2 weight decay, as
 * torch.optim.SGD (1.13) defines it. At update t, per element:
 *   d = g + wd * p
 *   momentum mu != 0:  b = d at t = 1, else b = mu * b + (1 - dampening) * d
 *                      d = nesterov ? d + mu * b : b
 *   p = p - lr * d
 * State: "sgd.momentum_buffer" (only when mu != 0). */
#include "optim_internal.h"

#include <math.h>

#define OPT_UPDATE_FILE "sgd_update.h"
#include "kernel_builds.h" /* update(): sgd_update.h for f64, f32 and f32 on AVX2 */

heed_optimizer *heed_sgd(heed_params *P, const heed_sgd_opts *opts) {
    static const char *fn = "heed_sgd";
    heed_sgd_opts o = opts ? *opts : (heed_sgd_opts){0};
    o.lr = heed__opt(o.lr, 1e-2);
    o.momentum = heed__opt(o.momentum, 0);
    o.dampening = heed__opt(o.dampening, 0);
    o.weight_decay = heed__opt(o.weight_decay, 0);
    heed_ctx *ctx = heed_params_ctx(P);
    if (!P) return NULL;
    if (!heed__opt_check(ctx, fn, "lr", o.lr, 0, INFINITY, false) ||
        !heed__opt_check(ctx, fn, "momentum", o.momentum, 0, INFINITY, false) ||
        !heed__opt_check(ctx, fn, "dampening", o.dampening, 0, 1, false) ||
        !heed__opt_check(ctx, fn, "weight_decay", o.weight_decay, 0, INFINITY, false))
        return NULL;
    if (o.nesterov && (o.momentum <= 0 || o.dampening != 0)) {
        heed_ctx_fail(ctx, HEED_ERR_ARG,
                      "heed_sgd: nesterov needs momentum > 0 and dampening 0 (momentum %g, dampening %g)", o.momentum,
                      o.dampening);
        return NULL;
    }
    static const char *const names[] = {"sgd.momentum_buffer"};
    heed_optimizer *opt =
        heed__optimizer_new(P, fn, OPT_SGD, "sgd", update, o.lr, o.weight_decay, o.momentum != 0 ? 1 : 0, names);
    if (!opt) return NULL;
    opt->momentum = o.momentum;
    opt->dampening = o.dampening;
    opt->nesterov = o.nesterov;
    return opt;
}
