/* SGD with momentum, dampening, Nesterov momentum and L2 weight decay, as
 * torch.optim.SGD (1.13) defines it. At update t, per element:
 *   d = g + wd * p
 *   momentum mu != 0:  b = d at t = 1, else b = mu * b + (1 - dampening) * d
 *                      d = nesterov ? d + mu * b : b
 *   p = p - lr * d
 * State: "sgd.momentum_buffer" (only when mu != 0). */
#include "optim_internal.h"

#include <math.h>

#define SGD_BODY(T)                                                               \
    {                                                                             \
        T *restrict p = heed_params_values(o->P);                                 \
        const T *restrict g = heed_params_grads(o->P);                            \
        T *restrict buf = o->n_state ? o->state[0] : NULL;                        \
        const T mu = (T)o->momentum, keep = (T)(1 - o->dampening);                \
        const bool first = t == 1, nesterov = o->nesterov;                        \
        OPT_FOR_CHUNKS(chunks, n, c, {                                            \
            const T lr = (T)gs[c->group].lr, wd = (T)gs[c->group].wd;             \
            const int64_t b = c->begin, e = c->end;                               \
            if (!buf) {                                                           \
                _Pragma("omp simd")                                               \
                for (int64_t i = b; i < e; i++) p[i] -= lr * (g[i] + wd * p[i]);  \
            } else if (first) {                                                   \
                _Pragma("omp simd")                                               \
                for (int64_t i = b; i < e; i++) {                                 \
                    T d = g[i] + wd * p[i];                                       \
                    buf[i] = d;                                                   \
                    p[i] -= lr * (nesterov ? d + mu * d : d);                     \
                }                                                                 \
            } else if (nesterov) {                                                \
                _Pragma("omp simd")                                               \
                for (int64_t i = b; i < e; i++) {                                 \
                    T d = g[i] + wd * p[i];                                       \
                    T m = mu * buf[i] + keep * d;                                 \
                    buf[i] = m;                                                   \
                    p[i] -= lr * (d + mu * m);                                    \
                }                                                                 \
            } else {                                                              \
                _Pragma("omp simd")                                               \
                for (int64_t i = b; i < e; i++) {                                 \
                    T m = mu * buf[i] + keep * (g[i] + wd * p[i]);                \
                    buf[i] = m;                                                   \
                    p[i] -= lr * m;                                               \
                }                                                                 \
            }                                                                     \
        });                                                                       \
    }
OPT_DEFINE_KERNEL(sgd_kernel, SGD_BODY)

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
        heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_sgd: nesterov needs momentum > 0 and dampening 0 (momentum %g, dampening %g)",
                      o.momentum, o.dampening);
        return NULL;
    }
    static const char *const names[] = {"sgd.momentum_buffer"};
    heed_optimizer *opt = heed__optimizer_new(P, fn, OPT_SGD, "sgd", sgd_kernel, o.lr, o.weight_decay,
                                              o.momentum != 0 ? 1 : 0, names);
    if (!opt) return NULL;
    opt->momentum = o.momentum;
    opt->dampening = o.dampening;
    opt->nesterov = o.nesterov;
    return opt;
}
