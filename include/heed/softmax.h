/* heed: Softmax and log-softmax (ops/softmax.c). Part of the public API: <heed.h>
 * includes every part; a file may include just the parts it uses. */
#ifndef HEED_API_SOFTMAX_H
#define HEED_API_SOFTMAX_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- ops: softmax (ops/softmax.c) */

/* Over the last dim (x needs at least 1 dim), max subtracted:
 *   softmax:     y = exp(x - m) / sum exp(x - m);  dx = y * (dy - sum(dy * y))
 *   log_softmax: y = x - m - log sum exp(x - m);   dx = dy - exp(y) * sum(dy)
 * -INFINITY entries are masked (probability 0, log-prob -inf); a fully masked row gives
 * zeros from both ops (and zero gradient), never NaN. f32 rows use AVX2 + SLEEF. */
heed_tensor *heed_softmax(heed_graph *g, heed_tensor *x);
heed_tensor *heed_log_softmax(heed_graph *g, heed_tensor *x);

#ifdef __cplusplus
}
#endif
#endif
