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

/* torch.nn.functional.conv2d: x[N, C, H, W], w[O, C/G, kh, kw] (G groups), bias[O] or
 * NULL -> y[N, O, Ho, Wo], Ho = floor((H + 2 ph - dh (kh - 1) - 1) / sh) + 1 (Wo alike;
 * s, p, d the stride, padding and dilation). The dilated kernel must fit in the padded
 * input. With g = o / (O/G) the group of output channel o and x = 0 outside the image:
 *   y[n,o,i,j] = bias[o] + sum_{c < C/G, a, b} w[o,c,a,b] x[n, g C/G + c, i sh - ph + a dh, j sw - pw + b dw]
 * Gradients: dw[o,c,a,b] = sum_{n,i,j} dy[n,o,i,j] x[that element]; dx[that element] +=
 * w[o,c,a,b] dy[n,o,i,j] (padding dropped); dbias[o] = sum_{n,i,j} dy[n,o,i,j]. im2col +
 * GEMM, threaded (docs/ops.md). */
heed_tensor *heed_conv2d(heed_graph *g, heed_tensor *x, heed_tensor *w, heed_tensor *bias,
                         const heed_conv2d_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
