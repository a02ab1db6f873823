/* heed: Layer normalisation (ops/norm.c). Part of the public API: <heed.h> includes
 * every part; a file may include just the parts it uses. */
#ifndef HEED_API_NORM_H
#define HEED_API_NORM_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- ops: layer norm (ops/norm.c) */

/* Over the last dim (size D): (x - mean) / sqrt(var + eps) * gamma + beta, var biased (as
 * torch.nn.functional.layer_norm); gamma, beta [D] or NULL; eps finite and >= 0. */
heed_tensor *heed_layernorm(heed_graph *g, heed_tensor *x, heed_tensor *gamma, heed_tensor *beta, double eps);

#ifdef __cplusplus
}
#endif
#endif
