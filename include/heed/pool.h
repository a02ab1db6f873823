/* heed: Pooling: max, average, adaptive average (ops/pool.c). Part of the public API:
 * <heed.h> includes every part; a file may include just the parts it uses. */
#ifndef HEED_API_POOL_H
#define HEED_API_POOL_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- ops: pooling (ops/pool.c) */

/* Options of heed_max_pool2d and heed_avg_pool2d, per spatial dim (height, width). The kernel
 * has no default; the rest zero-initialised means PyTorch's defaults. */
typedef struct {
    int64_t kernel[2];    /* window size, >= 1 */
    int64_t stride[2];    /* 0 means the kernel size */
    int64_t padding[2];   /* at most half the kernel; max pooling pads with -inf, average with 0 */
    bool exclude_padding; /* average over the window's in-image elements only (PyTorch's
                              count_include_pad=False); by default padding counts */
} heed_pool2d_opts;

/* x[N, C, H, W] or [C, H, W] -> [..., Ho, Wo], Ho = floor((H + 2 padding - kernel) / stride) + 1
 * (at least 1); output row i covers input rows [i stride - padding, i stride - padding +
 * kernel) clipped to [0, H) (columns alike). max: the largest element of each window (NaN
 * if the window holds one); dy goes to the first position holding the max. avg: the
 * window's sum divided by D = kh kw (padding counts, PyTorch's count_include_pad=True) or
 * by the count of in-image elements with exclude_padding; dx += dy / D over the window.
 * No ceil_mode, no dilation. */
heed_tensor *heed_max_pool2d(heed_graph *g, heed_tensor *x, const heed_pool2d_opts *opts);
heed_tensor *heed_avg_pool2d(heed_graph *g, heed_tensor *x, const heed_pool2d_opts *opts);
/* torch.nn.functional.adaptive_avg_pool2d: x[N, C, H, W] or [C, H, W] -> [..., out_h, out_w];
 * output row i averages input rows floor(i H / out_h) to ceil((i+1) H / out_h) - 1 (columns
 * alike): the windows cover the plane, neighbours overlap by at most one row when out_h
 * does not divide H, and out_h > H is allowed. H, W, out_h, out_w >= 1. dx += dy / (the
 * window's size) over the window. */
heed_tensor *heed_adaptive_avg_pool2d(heed_graph *g, heed_tensor *x, int64_t out_h, int64_t out_w);

#ifdef __cplusplus
}
#endif
#endif
