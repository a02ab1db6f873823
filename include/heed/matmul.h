/* heed: Matrix products: matmul, linear (ops/matmul.c). Part of the public API: <heed.h>
 * includes every part; a file may include just the parts it uses. */
#ifndef HEED_API_MATMUL_H
#define HEED_API_MATMUL_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- ops: matmul (ops/matmul.c) */

/* a[..., m, k] @ b[..., k, n] through the BLAS. 2-D, or batched: leading dims of a and b
 * equal, or b 2-D (shared). */
heed_tensor *heed_matmul(heed_graph *g, heed_tensor *a, heed_tensor *b);
/* heed_matmul_t's flags: transpose a or b over their last two dims (no copy); 0 is
 * heed_matmul. heed_matmul_t(g, q, k, HEED_TRANS_B) is q @ k^T. */
typedef enum { HEED_TRANS_A = 1, HEED_TRANS_B = 2 } heed_matmul_flag;
heed_tensor *heed_matmul_t(heed_graph *g, heed_tensor *a, heed_tensor *b, int flags);
/* x[..., in] @ w[out, in]^T + bias[out] (bias may be NULL): PyTorch's nn.Linear layout. */
heed_tensor *heed_linear(heed_graph *g, heed_tensor *x, heed_tensor *w, heed_tensor *bias);

#ifdef __cplusplus
}
#endif
#endif
