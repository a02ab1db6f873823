/* heed: Convolution (ops/conv.c). Part of the public API: <heed.h> includes every part; a
 * file may include just the parts it uses. */
#ifndef HEED_API_CONV_H
#define HEED_API_CONV_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- ops: convolution (ops/conv.c) */

/* Options of heed_conv2d, per spatial dim (height, width). Zero-initialised (or NULL) means
 * PyTorch's defaults: stride 1, padding 0, dilation 1, groups 1. */
typedef struct {
    int64_t stride[2];   /* 0 means 1 */
    int64_t padding[2];  /* zeros added on both sides */
    int64_t dilation[2]; /* spacing of the kernel taps; 0 means 1 */
    int64_t groups;      /* 0 means 1; must divide both channel counts */
} heed_conv2d_opts;

/* torch.nn.functional.conv2d: x[N, C, H, W], w[O, C/groups, kh, kw], bias[O] or NULL ->
 * y[N, O, Ho, Wo], Ho = floor((H + 2 padding - dilation (kh - 1) - 1) / stride) + 1 (Wo
 * alike). The dilated kernel must fit in the padded input. im2col + GEMM, threaded;
 * gradients for x, w and bias (docs/ops.md). */
heed_tensor *heed_conv2d(heed_graph *g, heed_tensor *x, heed_tensor *w, heed_tensor *bias,
                         const heed_conv2d_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
