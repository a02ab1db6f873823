/* heed: Dropout (ops/dropout.c). Part of the public API: <heed.h> includes every part; a
 * file may include just the parts it uses. */
#ifndef HEED_API_DROPOUT_H
#define HEED_API_DROPOUT_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- ops: dropout (ops/dropout.c) */

/* Inverted dropout: zero with probability p, scale the rest by 1/(1-p). Identity when the
 * graph is not training or p == 0. The mask is regenerated from the counter-based RNG in
 * backward, never stored. */
heed_tensor *heed_dropout(heed_graph *g, heed_tensor *x, double p);

#ifdef __cplusplus
}
#endif
#endif
