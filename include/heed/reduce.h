/* heed: Reductions: sum, mean, max, cumsum (ops/reduce.c). Part of the public API:
 * <heed.h> includes every part; a file may include just the parts it uses. */
#ifndef HEED_API_REDUCE_H
#define HEED_API_REDUCE_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- ops: reductions (ops/reduce.c) */

/* Along dim (negative counts from the end) over its n entries; keepdim keeps the reduced
 * dim with size 1. Sums accumulate in double. dy is the gradient arriving at y.
 *   sum:  y = sum_j x_j;  dx_j = dy (broadcast back)
 *   mean: y = sum_j x_j / n;  dx_j = dy / n; the mean of 0 entries is NaN
 *   max:  y = max_j x_j (a NaN counts as the max);  dx = dy at the first argmax, 0
 *         elsewhere; a max over no entries is an error
 * The _all forms reduce over every element to a scalar (0-dim) tensor. */
heed_tensor *heed_sum(heed_graph *g, heed_tensor *x, int dim, bool keepdim);
heed_tensor *heed_mean(heed_graph *g, heed_tensor *x, int dim, bool keepdim);
heed_tensor *heed_max(heed_graph *g, heed_tensor *x, int dim, bool keepdim);
heed_tensor *heed_sum_all(heed_graph *g, heed_tensor *x);
heed_tensor *heed_mean_all(heed_graph *g, heed_tensor *x);
heed_tensor *heed_max_all(heed_graph *g, heed_tensor *x);
/* torch.cumsum(x, dim): y has x's shape, y[..., j, ...] = sum_{k <= j} x[..., k, ...]
 * along dim (negative counts from the end; a 0-d x takes dim 0 or -1); sums in double.
 * Gradient: dx[..., k, ...] = sum_{j >= k} dy[..., j, ...]. */
heed_tensor *heed_cumsum(heed_graph *g, heed_tensor *x, int dim);

#ifdef __cplusplus
}
#endif
#endif
