/* Batch normalisation over the channels of x[N, C, H, W] (torch.nn.functional.batch_norm)
 * and the nn.BatchNorm2d layer that keeps its running statistics in a parameter store.
 *
 * Per channel c, over its M = N H W values x_k:
 *   batch statistics (training, or no running statistics given):
 *     mean = sum_k x_k / M,   var = sum_k (x_k - mean)^2 / M   (biased, two passes)
 *   running statistics (evaluation mode): mean = running_mean[c], var = running_var[c]
 *   rstd = 1 / sqrt(var + eps),   xhat_k = (x_k - mean) rstd,   y_k = xhat_k weight[c] + bias[c]
 * A training call also moves the running statistics toward the batch's (PyTorch's update,
 * momentum m, or m = 1/t after t batches for the cumulative average):
 *   running_mean = (1 - m) running_mean + m mean
 *   running_var  = (1 - m) running_var  + m var M / (M - 1)        (unbiased)
 *
 * Backward, with h_k = dy_k weight[c] (dy_k when there is no weight):
 *   batch statistics: mean and var depend on x, as in layer norm (ops/norm.c),
 *     dx_k = rstd (h_k - mean_j h_j - xhat_k mean_j (h_j xhat_j))
 *   running statistics: constants, so dx_k = rstd h_k
 *   dweight[c] = sum_k dy_k xhat_k,   dbias[c] = sum_k dy_k
 * Every sum stays inside one channel, so channels are split over threads and nothing is
 * shared. Sums run in double; mean and rstd are saved per channel.
 * Cost: forward three passes over x (mean, variance, y), backward two. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "../graph/internal.h"
#include "heed/batchnorm.h"

#include <math.h>
#include <stdio.h>

typedef struct {
    int64_t N, C, HW;
    double *mean, *rstd; /* [C] */
    bool batch_stats;
} bn_saved;

/* The M values of channel c are N runs of HW, one per image. */
#define CHANNEL_LOOP(p, c, k, ...)                                                                                     \
    for (int64_t n_ = 0; n_ < (p)->N; n_++)                                                                            \
        for (int64_t k = (n_ * (p)->C + (c)) * (p)->HW, end_ = k + (p)->HW; k < end_; k++) {                           \
            __VA_ARGS__                                                                                                \
        }

#define DEFINE_BN_KERNELS(T, sfx)                                                                                      \
    static void stats_##sfx(const bn_saved *p, const T *x, int64_t c, double *mean, double *var) {                     \
        double s = 0, v = 0, M = (double)(p->N * p->HW);                                                               \
        CHANNEL_LOOP(p, c, k, s += x[k];)                                                                              \
        double m = s / M;                                                                                              \
        CHANNEL_LOOP(p, c, k, v += ((double)x[k] - m) * ((double)x[k] - m);)                                           \
        *mean = m, *var = v / M;                                                                                       \
    }                                                                                                                  \
    static void normalise_##sfx(const bn_saved *p, const T *x, T *y, int64_t c, const T *w, const T *b) {              \
        double m = p->mean[c], r = p->rstd[c], scale = w ? r * (double)w[c] : r, shift = b ? b[c] : 0;                 \
        CHANNEL_LOOP(p, c, k, y[k] = (T)(((double)x[k] - m) * scale + shift);)                                         \
    }                                                                                                                  \
    static void backward_##sfx(const bn_saved *p, const T *x, const T *dy, T *dx, int64_t c, const T *w, T *dw,        \
                               T *db) {                                                                                \
        double m = p->mean[c], r = p->rstd[c], wc = w ? w[c] : 1, sdy = 0, sdyx = 0;                                   \
        CHANNEL_LOOP(p, c, k, sdy += dy[k]; sdyx += (double)dy[k] * ((double)x[k] - m) * r;)                           \
        if (dw) dw[c] += (T)sdyx;                                                                                      \
        if (db) db[c] += (T)sdy;                                                                                       \
        if (!dx) return;                                                                                               \
        double M = (double)(p->N * p->HW), a = p->batch_stats ? wc * sdy / M : 0,                                      \
               bb = p->batch_stats ? wc * sdyx / M : 0;                                                                \
        CHANNEL_LOOP(p, c, k, dx[k] += (T)(r * (wc * dy[k] - a - ((double)x[k] - m) * r * bb));)                       \
    }

DEFINE_BN_KERNELS(float, f32)
DEFINE_BN_KERNELS(double, f64)

static void bn_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *x = nd->in[0], *y = nd->out[0];
    heed_tensor *w = nd->iarg[0] ? nd->in[1] : NULL, *b = nd->iarg[1] ? nd->in[1 + (w != NULL)] : NULL;
    const bn_saved *p = nd->saved;
    void *gx = heed_grad_buffer(g, x), *gw = heed_grad_buffer(g, w), *gb = heed_grad_buffer(g, b);
#pragma omp parallel for schedule(static) if (x->numel > 65536) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t c = 0; c < p->C; c++) {
        if (x->dtype == HEED_F32) backward_f32(p, x->data, y->grad, gx, c, w ? w->data : NULL, gw, gb);
        else backward_f64(p, x->data, y->grad, gx, c, w ? w->data : NULL, gw, gb);
    }
}

static const heed_op op_batch_norm = {"heed_batch_norm2d", bn_backward};

/* eps and momentum after defaults; false with a message when out of range. */
static bool hyper_params(double *eps, double *momentum, char *msg, size_t len) {
    if (!(*eps >= 0) || !isfinite(*eps))
        return snprintf(msg, len, "eps = %g (must be finite and >= 0; 0 means 1e-5)", *eps), false;
    if (!(*momentum >= 0 && *momentum <= 1))
        return snprintf(msg, len, "momentum = %g (must be in 0..1; 0 means 0.1)", *momentum), false;
    if (*eps == 0) *eps = 1e-5;
    if (*momentum == 0) *momentum = 0.1;
    return true;
}

/* A [C] statistic (or a one-element counter when C is 0) of x's dtype, or NULL. */
static bool check_buffer(heed_graph *g, const char *op, heed_tensor *t, const char *name, heed_tensor *x, int64_t C) {
    if (!t) return true;
    if (!heed__check_like(g, op, t, name, x)) return false;
    bool ok = C ? t->ndim == 1 && t->shape[0] == C : t->numel == 1;
    if (!ok) {
        if (C)
            heed_graph_fail(g, HEED_ERR_SHAPE, "%s: %s%s must be [%lld] (the channels of x%s)", op, name, HEED_S(t),
                            (long long)C, HEED_S(x));
        else heed_graph_fail(g, HEED_ERR_SHAPE, "%s: %s%s must hold one element", op, name, HEED_S(t));
    }
    return ok;
}

#define T float
#define FN(name) name##_f32
#include "batchnorm.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "batchnorm.c"
#undef T
#undef FN

/* A training call: the counter goes up by one, then the running statistics move toward
 * the batch's (mean[c], var[c] biased); an empty batch leaves them (as PyTorch). */
static void update_running(const heed_batchnorm_opts *o, const bn_saved *p, const double *var) {
    if (o->num_batches_tracked && o->num_batches_tracked->dtype == HEED_F32)
        *(float *)o->num_batches_tracked->data += 1;
    else if (o->num_batches_tracked) *(double *)o->num_batches_tracked->data += 1;
    double M = (double)(p->N * p->HW);
    if (!o->running_mean || M == 0) return;
    double m = o->cumulative ? 1 / heed_get(o->num_batches_tracked, 0) : o->momentum, unbias = M / (M - 1);
    if (o->running_mean->dtype == HEED_F32) update_running_kernel_f32(o, p, m, var, unbias);
    else update_running_kernel_f64(o, p, m, var, unbias);
}

heed_tensor *heed_batch_norm2d(heed_graph *g, heed_tensor *x, heed_tensor *weight, heed_tensor *bias,
                               const heed_batchnorm_opts *opts) {
    const char *op = "heed_batch_norm2d";
    heed_batchnorm_opts o = opts ? *opts : (heed_batchnorm_opts){0};
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    if (x->ndim != 4)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: x%s must be [N, C, H, W] (4 dims)", op, HEED_S(x)), NULL;
    int64_t C = x->shape[1];
    if (!check_buffer(g, op, weight, "weight", x, C) || !check_buffer(g, op, bias, "bias", x, C) ||
        !check_buffer(g, op, o.running_mean, "running_mean", x, C) ||
        !check_buffer(g, op, o.running_var, "running_var", x, C) ||
        !check_buffer(g, op, o.num_batches_tracked, "num_batches_tracked", x, 0))
        return NULL;
    char msg[160];
    if (!hyper_params(&o.eps, &o.momentum, msg, sizeof msg))
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: %s", op, msg), NULL;
    if (!o.running_mean != !o.running_var)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: running_mean and running_var come together (one of them is NULL)",
                               op),
               NULL;
    if (o.cumulative && (!o.running_mean || !o.num_batches_tracked))
        return heed_graph_fail(g, HEED_ERR_ARG,
                               "%s: the cumulative average needs running statistics and num_batches_tracked", op),
               NULL;
    bool training = heed_graph_training(g), batch_stats = training || !o.running_mean;
    bn_saved p = {.N = x->shape[0], .C = C, .HW = x->shape[2] * x->shape[3], .batch_stats = batch_stats};
    if (training && p.N * p.HW == 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: x%s has 1 value per channel; training needs more than 1", op,
                               HEED_S(x)),
               NULL;
    heed_tensor *y = heed__new(g, op, x->dtype, 4, x->shape);
    p.mean = heed_graph_alloc(g, (size_t)(C ? C : 1) * sizeof(double));
    p.rstd = heed_graph_alloc(g, (size_t)(C ? C : 1) * sizeof(double));
    double *var = heed_graph_alloc(g, (size_t)(C ? C : 1) * sizeof(double));
    if (!y || !p.mean || !p.rstd || !var) return NULL;
    bool empty = p.N * p.HW == 0;
#pragma omp parallel for schedule(static) if (x->numel > 65536) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t c = 0; c < C; c++) {
        if (batch_stats && !empty && x->dtype == HEED_F32) stats_f32(&p, x->data, c, &p.mean[c], &var[c]);
        else if (batch_stats && !empty) stats_f64(&p, x->data, c, &p.mean[c], &var[c]);
        else if (batch_stats) p.mean[c] = var[c] = 0;
        else p.mean[c] = heed_get(o.running_mean, c), var[c] = heed_get(o.running_var, c);
        p.rstd[c] = 1 / sqrt(var[c] + o.eps);
        if (x->dtype == HEED_F32)
            normalise_f32(&p, x->data, y->data, c, weight ? weight->data : NULL, bias ? bias->data : NULL);
        else normalise_f64(&p, x->data, y->data, c, weight ? weight->data : NULL, bias ? bias->data : NULL);
    }
    if (training) update_running(&o, &p, var);
    heed_tensor *in[3] = {x};
    int n_in = 1;
    if (weight) in[n_in++] = weight;
    if (bias) in[n_in++] = bias;
    heed_node *nd = heed_record(g, &op_batch_norm, n_in, in, 1, &y);
    if (nd) {
        nd->iarg[0] = weight != NULL, nd->iarg[1] = bias != NULL;
        if ((nd->saved = heed_graph_alloc(g, sizeof p))) *(bn_saved *)nd->saved = p;
    }
    return heed_graph_ok(g) ? y : NULL;
}

/* ---------------------------------------------------------------- the layer */

heed_status heed_batchnorm_declare(heed_batchnorm *bn, heed_params *P, const char *prefix,
                                   const heed_batchnorm_config *cfg) {
    const char *op = "heed_batchnorm_declare";
    heed_ctx *ctx = heed_params_ctx(P);
    if (!bn || !P || !cfg) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: bn, P and cfg must not be NULL", op);
    if (!prefix) prefix = "";
    *bn = (heed_batchnorm){.opts = {.eps = cfg->eps, .momentum = cfg->momentum, .cumulative = cfg->cumulative}};
    char msg[160];
    if (cfg->num_features < 1)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: num_features = %lld (must be >= 1)", op,
                             (long long)cfg->num_features);
    if (!hyper_params(&bn->opts.eps, &bn->opts.momentum, msg, sizeof msg))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: %s", op, msg);
    if (cfg->cumulative && cfg->no_running_stats)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: the cumulative average needs running statistics", op);
    heed_shape shape = HEED_SHAPE(cfg->num_features);
    if (!cfg->no_affine) {
        bn->weight = heed_param_prefixed(P, prefix, "weight", shape, heed_init_constant(1));
        bn->bias = bn->weight ? heed_param_prefixed(P, prefix, "bias", shape, heed_init_zeros()) : NULL;
        if (!bn->bias) return ctx->err.code;
    }
    if (cfg->no_running_stats) return HEED_OK;
    heed_tensor **buf[3] = {&bn->opts.running_mean, &bn->opts.running_var, &bn->opts.num_batches_tracked};
    const char *names[3] = {"running_mean", "running_var", "num_batches_tracked"};
    heed_shape shapes[3] = {shape, shape, HEED_SCALAR};
    for (int i = 0; i < 3; i++) {
        *buf[i] = heed_param_prefixed(P, prefix, names[i], shapes[i], heed_init_constant(i == 1 ? 1 : 0));
        if (!*buf[i]) return ctx->err.code;
        heed_param_freeze(*buf[i], true);
    }
    return HEED_OK;
}

heed_tensor *heed_batchnorm_forward(heed_graph *g, const heed_batchnorm *bn, heed_tensor *x) {
    if (!heed_graph_ok(g)) return NULL;
    if (!bn) return heed_graph_fail(g, HEED_ERR_ARG, "heed_batchnorm_forward: bn is NULL"), NULL;
    return heed_batch_norm2d(g, x, bn->weight, bn->bias, &bn->opts);
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

static void FN(update_running_kernel)(const heed_batchnorm_opts *o, const bn_saved *p, double m, const double *var,
                                      double unbias) {
    T *rm = o->running_mean->data, *rv = o->running_var->data;
    for (int64_t c = 0; c < p->C; c++) {
        rm[c] = (T)((1 - m) * rm[c] + m * p->mean[c]);
        rv[c] = (T)((1 - m) * rv[c] + m * var[c] * unbias);
    }
}
#endif
