/* heed: Softmax and log-softmax (ops/softmax.c). Part of the public API: <heed.h>
 * includes every part; a file may include just the parts it uses. */
#ifndef HEED_API_SOFTMAX_H
#define HEED_API_SOFTMAX_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- ops: softmax (ops/softmax.c) */

/* Over the last dim (x needs at least 1 dim; y has x's shape), m the row max:
 *   softmax:     y = exp(x - m) / sum exp(x - m);  dx = y * (dy - sum(dy * y))
 *   log_softmax: y = x - m - log sum exp(x - m);   dx = dy - exp(y) * sum(dy)
 * -INFINITY entries are masked (probability 0, log-prob -inf, no gradient): build masks
 * with heed_masked_fill(g, scores, mask, -INFINITY). A fully masked row gives zeros from
 * both ops and zero gradient, where PyTorch gives NaN (padded attention rows need 0); a
 * NaN in x still gives NaN. For log-probabilities use heed_log_softmax, not
 * log(heed_softmax): it never takes the log of a probability that rounded to 0. */
heed_tensor *heed_softmax(heed_graph *g, heed_tensor *x);
heed_tensor *heed_log_softmax(heed_graph *g, heed_tensor *x);

#ifdef __cplusplus
}
#endif
#endif
