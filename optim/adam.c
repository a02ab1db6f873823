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

#define ADAM_BODY(T)                                                                                            \
    {                                                                                                           \
        const double b1 = o->beta1, b2 = o->beta2;                                                              \
        const double bc1 = 1 - pow(b1, (double)t), bc2_sqrt = sqrt(1 - pow(b2, (double)t));                     \
        const bool decoupled = o->kind == OPT_ADAMW, amsgrad = o->amsgrad;                                      \
        T *restrict p = heed_params_values(o->P);                                                               \
        const T *restrict g = heed_params_grads(o->P);                                                          \
        T *restrict m = o->state[0], *restrict v = o->state[1], *restrict vmax = amsgrad ? o->state[2] : NULL;  \
        const T beta1 = (T)b1, beta2 = (T)b2, one_b1 = (T)(1 - b1), one_b2 = (T)(1 - b2);                       \
        const T eps = (T)o->eps, inv_bc2 = (T)bc2_sqrt;                                                         \
        OPT_FOR_CHUNKS(chunks, n, c, {                                                                          \
            const double lr = gs[c->group].lr, wd = gs[c->group].wd;                                            \
            const T step = (T)(lr / bc1);                                                                       \
            /* Adam adds wd * p to the gradient; AdamW scales p by (1 - lr wd) first */                         \
            const T l2 = decoupled ? 0 : (T)wd, shrink = decoupled ? (T)(1 - lr * wd) : 1;                      \
            const int64_t b = c->begin, e = c->end;                                                             \
            if (!amsgrad) {                                                                                     \
                _Pragma("omp simd")                                                                             \
                for (int64_t i = b; i < e; i++) {                                                               \
                    T pi = p[i] * shrink;                                                                       \
                    T gi = g[i] + l2 * pi;                                                                      \
                    T mi = beta1 * m[i] + one_b1 * gi;                                                          \
                    T vi = beta2 * v[i] + one_b2 * gi * gi;                                                     \
                    m[i] = mi;                                                                                  \
                    v[i] = vi;                                                                                  \
                    p[i] = pi - step * (mi / (sqrt(vi) / inv_bc2 + eps));                                       \
                }                                                                                               \
            } else {                                                                                            \
                _Pragma("omp simd")                                                                             \
                for (int64_t i = b; i < e; i++) {                                                               \
                    T pi = p[i] * shrink;                                                                       \
                    T gi = g[i] + l2 * pi;                                                                      \
                    T mi = beta1 * m[i] + one_b1 * gi;                                                          \
                    T vi = beta2 * v[i] + one_b2 * gi * gi;                                                     \
                    T vm = vi > vmax[i] ? vi : vmax[i];                                                         \
                    m[i] = mi;                                                                                  \
                    v[i] = vi;                                                                                  \
                    vmax[i] = vm;                                                                               \
                    p[i] = pi - step * (mi / (sqrt(vm) / inv_bc2 + eps));                                       \
                }                                                                                               \
            }                                                                                                   \
        });                                                                                                     \
    }
OPT_DEFINE_KERNEL(adam_kernel, ADAM_BODY)

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
    heed_optimizer *opt = heed__optimizer_new(P, fn, decoupled ? OPT_ADAMW : OPT_ADAM, decoupled ? "adamw" : "adam",
                                              adam_kernel, o.lr, o.weight_decay, o.amsgrad ? 3 : 2,
                                              decoupled ? adamw_names : adam_names);
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
