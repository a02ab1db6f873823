/* heed: Indexing: select, squeeze, unsqueeze, argmax, topk, gather (ops/index.c). Part of
 * the public API: <heed.h> includes every part; a file may include just the parts it uses. */
#ifndef HEED_API_INDEX_H
#define HEED_API_INDEX_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- ops: indexing (ops/index.c) */

/* PyTorch's torch.select / squeeze / unsqueeze / argmax / topk / gather. dim may be
 * negative; a 0-d x counts as one element along dim 0 (except for select). Indices are
 * int64_t arrays owned by the caller (heed tensors hold floats only), in the row-major
 * order of the result: ready for heed_embedding or heed_index_select. */
/* x with dim removed, at position index along it (negative counts from the end): a copy;
 * dy goes back to that position of dx. Taking step t of a batch-major [B, T, H] sequence: heed_select(g, seq, 1, t). */
heed_tensor *heed_select(heed_graph *g, heed_tensor *x, int dim, int64_t index);
/* Views (as heed_reshape; dx = dy): squeeze drops dim if its size is 1 and otherwise
 * returns x's shape unchanged (as PyTorch, not an error); unsqueeze inserts a size-1 dim
 * at dim in [-(ndim+1), ndim] (the result has at most 4 dims). */
heed_tensor *heed_squeeze(heed_graph *g, heed_tensor *x, int dim);
heed_tensor *heed_unsqueeze(heed_graph *g, heed_tensor *x, int dim);
/* Writes into out[numel(x) / size(dim)] the position along dim of each maximum (x's
 * shape with dim removed, row-major). Ties give the first maximum; NaN ranks above every
 * number, so a row holding NaN gives its first NaN (as PyTorch on CPU). An empty dim is an
 * error. Records nothing (not differentiable). Returns HEED_OK or the graph's (sticky) error.
 * Greedy decoding: heed_argmax(g, logits[B,V], -1, ids) then heed_embedding(.., ids, ..). */
heed_status heed_argmax(heed_graph *g, heed_tensor *x, int dim, int64_t *out);
/* heed_topk's flags; 0 is torch.topk's default (largest=True, sorted=True). */
typedef enum {
    HEED_TOPK_SMALLEST = 1, /* the k smallest values (largest=False) */
    HEED_TOPK_UNSORTED = 2, /* in ascending position, not best first (sorted=False) */
} heed_topk_flag;
/* The k largest (or smallest) values along dim, 0 <= k <= size(dim): x's shape with dim
 * of size k, best first (or in ascending position with HEED_TOPK_UNSORTED; PyTorch leaves
 * that order unspecified). Best first means NaN first, then larger values (as
 * heed_argmax); with HEED_TOPK_SMALLEST, smaller values first and NaN last (as PyTorch on
 * CPU). Equal values rank by position, the first one first; PyTorch leaves their order
 * unspecified, so its indices may differ there (the values never do). indices (may be
 * NULL) receives their positions along dim, laid out like the result. Differentiable:
 * dy goes back to the picked positions of dx. */
heed_tensor *heed_topk(heed_graph *g, heed_tensor *x, int64_t k, int dim, int flags, int64_t *indices);
/* torch.gather: y has index_shape (same number of dims as x, each size <= x's except
 * along dim) and y[p] = x[p with its coordinate along dim replaced by index[p]], every
 * index in [0, size(dim)) (copied). Per-row picks, e.g. the log-probability of each row's
 * token: heed_gather(g, logp[B,V], 1, tok, HEED_SHAPE(B, 1)). dx scatter-adds dy. */
heed_tensor *heed_gather(heed_graph *g, heed_tensor *x, int dim, const int64_t *index, heed_shape index_shape);

#ifdef __cplusplus
}
#endif
#endif
