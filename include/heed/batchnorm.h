/* heed: Batch normalisation: the op and the layer (ops/batchnorm.c). Part of the public
 * API: <heed.h> includes every part; a file may include just the parts it uses. */
#ifndef HEED_API_BATCHNORM_H
#define HEED_API_BATCHNORM_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- ops: batch normalisation (ops/batchnorm.c) */

/* Options of heed_batch_norm2d. Zero-initialised (or NULL) means PyTorch's defaults
 * (eps 1e-5, momentum 0.1, no running statistics). */
typedef struct {
    double eps;      /* added to the variance; 0 means 1e-5 */
    double momentum; /* running = (1 - momentum) running + momentum batch; 0 means 0.1; in (0, 1] */
    bool cumulative; /* PyTorch's momentum=None: running stats are the plain average over the
                        batches seen, momentum 1 / num_batches_tracked (which must be given) */
    /* The running statistics [C] (both or neither; the dtype of x): updated in place in
     * training mode, used in evaluation mode. They never take gradients. */
    heed_tensor *running_mean, *running_var;
    heed_tensor *num_batches_tracked; /* a one-element counter, +1 per training call; or NULL */
} heed_batchnorm_opts;

/* torch.nn.functional.batch_norm over x[N, C, H, W] per channel c, over its M = N H W values:
 *   xhat = (x - mean_c) rstd_c, rstd_c = 1 / sqrt(var_c + eps);  y = xhat weight[c] + bias[c]
 * (weight, bias [C] or NULL). In training mode (heed_graph_training), or without running
 * statistics, mean and var are the batch's over N, H, W (var biased); in training mode the
 * counter goes up by one first, then the running statistics, if given, move toward the
 * batch's: running_mean = (1 - m) running_mean + m mean, running_var = (1 - m) running_var
 * + m var M / (M - 1), with m = momentum, or 1 / num_batches_tracked when cumulative.
 * Training refuses M = 1 (as PyTorch); an empty batch (M = 0) moves only the counter. In
 * evaluation mode with running statistics, those are used and y is an affine map of x.
 * Updates happen in no-grad regions too (as PyTorch's). Gradients, with h = dy weight[c]:
 *   batch statistics:   dx = rstd (h - mean(h) - xhat mean(h xhat))
 *   running statistics: dx = rstd h
 *   dweight[c] = sum dy xhat, dbias[c] = sum dy (over N, H, W) */
heed_tensor *heed_batch_norm2d(heed_graph *g, heed_tensor *x, heed_tensor *weight, heed_tensor *bias,
                               const heed_batchnorm_opts *opts);

/* nn.BatchNorm2d's configuration; zero-initialised means PyTorch's defaults. */
typedef struct {
    int64_t num_features;  /* C, >= 1 */
    double eps, momentum;  /* 0 means 1e-5, 0.1 */
    bool cumulative;       /* momentum=None */
    bool no_affine;        /* affine=False: no weight and bias */
    bool no_running_stats; /* track_running_stats=False: batch statistics in both modes */
} heed_batchnorm_config;

/* The layer: its parameters in a store, named as PyTorch's state_dict: <prefix>.weight [C]
 * (ones), <prefix>.bias [C] (zeros), and the buffers <prefix>.running_mean [C] (zeros),
 * <prefix>.running_var [C] (ones) and <prefix>.num_batches_tracked (a 0-dim scalar, 0, in
 * the store's dtype, where PyTorch has int64: a PyTorch state_dict imports once it is
 * converted, e.g. num_batches_tracked.float()). The buffers are frozen (heed_param_freeze):
 * optimizers skip them, checkpoints save and load them. */
typedef struct {
    heed_tensor *weight, *bias; /* NULL with no_affine */
    heed_batchnorm_opts opts;   /* eps, momentum and the buffers (NULL with no_running_stats) */
} heed_batchnorm;

/* Declares the parameters under prefix ("" for none) and fills bn. Returns HEED_OK, or an
 * error with the message in heed_ctx_error. */
heed_status heed_batchnorm_declare(heed_batchnorm *bn, heed_params *P, const char *prefix,
                                   const heed_batchnorm_config *cfg);
/* heed_batch_norm2d(g, x, bn->weight, bn->bias, &bn->opts). */
heed_tensor *heed_batchnorm_forward(heed_graph *g, const heed_batchnorm *bn, heed_tensor *x);

#ifdef __cplusplus
}
#endif
#endif
