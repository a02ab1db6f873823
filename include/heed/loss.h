/* heed: Losses: cross entropy, binary cross entropy with logits, mean squared error
 * (ops/loss.c). Part of the public API: <heed.h> includes every part; a file may include
 * just the parts it uses. */
#ifndef HEED_API_LOSS_H
#define HEED_API_LOSS_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- ops: losses (ops/loss.c) */

/* How a loss reduces its per-element losses (PyTorch's `reduction`). */
typedef enum {
    HEED_REDUCE_MEAN = 0, /* the mean (the default) */
    HEED_REDUCE_SUM,      /* the sum */
    HEED_REDUCE_NONE,     /* no reduction: one loss per element */
} heed_reduction;

/* Zero-initialised (or NULL) means the defaults (core.h, "options structs"). */
typedef struct {
    /* Targets equal to ignore_index are skipped. Left 0 it is -100, PyTorch's default;
     * set has_ignore_index to skip class 0 itself (a padding id 0, say). */
    int64_t ignore_index;
    bool has_ignore_index;
    double label_smoothing;   /* in [0, 1]; 0 */
    heed_reduction reduction; /* HEED_REDUCE_MEAN */
} heed_ce_opts;

/* Losses return a tensor of the input's dtype: a scalar (0-dim) one when reduced. A mean
 * over nothing (all rows ignored, all weights zero, empty input) is 0 with zero
 * gradients, not NaN. */

/* logits[N, C], targets[N] in [0, C) or the ignore index. Row loss
 * l_i = (1-s)*(-logp[t]) + s*mean_c(-logp[c]) with s = label_smoothing (PyTorch's
 * definition); an ignored row has l_i = 0. reduction: the mean over the rows not ignored,
 * the sum, or (HEED_REDUCE_NONE) the [N] tensor of l_i. A target out of range is an error
 * naming the row and value. targets is copied; a fully masked row (all -inf) has l_i = 0
 * and counts in the mean. */
heed_tensor *heed_cross_entropy(heed_graph *g, heed_tensor *logits, const int64_t *targets, const heed_ce_opts *opts);
/* l = max(x,0) - x*y + log(1 + exp(-|x|)) (stable for any |x|), y the shape of x.
 * Mean of l, or with weight (NULL or broadcast to x) sum(w*l)/sum(w) -- PyTorch divides
 * by numel instead. x, y and weight all get gradients. */
heed_tensor *heed_bce_with_logits(heed_graph *g, heed_tensor *x, heed_tensor *y, heed_tensor *weight);
/* mean((a-b)^2); a and b must have the same shape (no broadcasting). */
heed_tensor *heed_mse(heed_graph *g, heed_tensor *a, heed_tensor *b);

#ifdef __cplusplus
}
#endif
#endif
