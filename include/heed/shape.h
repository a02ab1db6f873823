/* heed: Shape ops: reshape, transpose, permute, flip, slice, concat, stack, index_select,
 * embedding (ops/shape.c, ops/embed.c). Part of the public API: <heed.h> includes every
 * part; a file may include just the parts it uses. */
#ifndef HEED_API_SHAPE_H
#define HEED_API_SHAPE_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- ops: shape (ops/shape.c, embed.c) */

/* Dims may be negative (counted from the end) in every shape op. Shape ops move elements
 * without changing them; the gradient moves dy back to where each element came from (and
 * adds up where one element went to several places). */
/* A view: same data, new shape with the same number of elements (one dim may be -1);
 * dx = dy in the same flat order. */
heed_tensor *heed_reshape(heed_graph *g, heed_tensor *x, heed_shape shape);
/* Swaps dims dim0 and dim1 (a copy); dx is dy with them swapped back. */
heed_tensor *heed_transpose(heed_graph *g, heed_tensor *x, int dim0, int dim1);
/* Result dim i is x's dim perm[i]; perm has ndim entries, each dim once (a copy); dx is
 * dy permuted by the inverse of perm. */
heed_tensor *heed_permute(heed_graph *g, heed_tensor *x, const int *perm);
/* torch.flip(x, dims): y[.., i, ..] = x[.., size-1-i, ..] along each of the n_dims dims in
 * dims (negative counts from the end; each at most once, so n_dims <= max(ndim, 1): a 0-d
 * x takes dim 0 or -1 as in PyTorch, and y = x). A copy, also for n_dims = 0; dx is dy
 * flipped along the same dims. */
heed_tensor *heed_flip(heed_graph *g, heed_tensor *x, const int *dims, int n_dims);
/* x[..., start:end, ...] along dim. Negative start/end count from the end as in Python,
 * but bounds outside the dim are an error (need 0 <= start <= end <= size), not clamped.
 * dx is dy inside [start, end) and 0 elsewhere. */
heed_tensor *heed_slice(heed_graph *g, heed_tensor *x, int dim, int64_t start, int64_t end);
/* Joins n >= 1 tensors along an existing dim; all other dims must be equal. dxs[k] is
 * dy's block k along dim; a tensor may appear more than once (its gradients add). */
heed_tensor *heed_concat(heed_graph *g, heed_tensor *const *xs, int n, int dim);
/* Joins n >= 1 tensors of equal shape along a new dim of size n, placed at dim in
 * [-(ndim+1), ndim]: y[..., k, ...] = xs[k]; the result has ndim + 1 <= 4 dims. */
heed_tensor *heed_stack(heed_graph *g, heed_tensor *const *xs, int n, int dim);
/* Rows of x along dim picked by idx[0..n), each in [0, size): y[..., j, ...] =
 * x[..., idx[j], ...] (idx is copied; repeats allowed and their gradients add up). */
heed_tensor *heed_index_select(heed_graph *g, heed_tensor *x, int dim, const int64_t *idx, int64_t n);
/* w[V, D] looked up at ids (shape ids_shape, ids in [0, V), copied): result ids_shape + [D],
 * y[i, :] = w[ids[i], :]. Rows for padding_idx (< V) are zero and get no gradient;
 * padding_idx < 0 means none. dw[v, :] is the sum of dy[i, :] over the positions i with
 * ids[i] = v, added in ascending i (the same result for any thread count). */
heed_tensor *heed_embedding(heed_graph *g, heed_tensor *w, const int64_t *ids, heed_shape ids_shape,
                            int64_t padding_idx);

#ifdef __cplusplus
}
#endif
#endif
