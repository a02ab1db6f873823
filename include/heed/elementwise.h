/* heed: Elementwise ops: add, sub, mul, div, unary functions, where, masked_fill
 * (ops/binary.c, ops/unary.c, ops/where.c). Part of the public API: <heed.h> includes
 * every part; a file may include just the parts it uses. */
#ifndef HEED_API_ELEMENTWISE_H
#define HEED_API_ELEMENTWISE_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- ops: elementwise (ops/binary.c, ops/unary.c, ops/where.c) */

/* Binary ops broadcast like NumPy/PyTorch (shapes aligned at the right, size-1 dims
 * stretch). Gradients are summed back over broadcast dims. */
heed_tensor *heed_add(heed_graph *g, heed_tensor *a, heed_tensor *b);
heed_tensor *heed_sub(heed_graph *g, heed_tensor *a, heed_tensor *b);
heed_tensor *heed_mul(heed_graph *g, heed_tensor *a, heed_tensor *b);
heed_tensor *heed_div(heed_graph *g, heed_tensor *a, heed_tensor *b);

/* Unary ops, y = f(x) elementwise. Scalar arguments must be finite. f32 runs AVX2 + SLEEF
 * kernels (within a few ulps of libm) when the CPU has them; f64 uses libm. Outside a
 * function's domain the result is what libm gives (log(0) = -inf, sqrt(-1) = NaN). */
heed_tensor *heed_neg(heed_graph *g, heed_tensor *x);
heed_tensor *heed_scale(heed_graph *g, heed_tensor *x, double s);      /* s * x */
heed_tensor *heed_add_scalar(heed_graph *g, heed_tensor *x, double c); /* x + c */
heed_tensor *heed_exp(heed_graph *g, heed_tensor *x);
heed_tensor *heed_log(heed_graph *g, heed_tensor *x);
heed_tensor *heed_sqrt(heed_graph *g, heed_tensor *x);
/* x^p; a non-integer p needs x >= 0. The gradient p x^(p-1) is 0 for p = 0. */
heed_tensor *heed_pow(heed_graph *g, heed_tensor *x, double p);
/* max(x, 0); gradient 0 at x = 0 (as PyTorch). */
heed_tensor *heed_relu(heed_graph *g, heed_tensor *x);
/* x for x > 0, else slope * x; gradient slope at x = 0. */
heed_tensor *heed_leaky_relu(heed_graph *g, heed_tensor *x, double slope);
heed_tensor *heed_gelu(heed_graph *g, heed_tensor *x); /* x * Phi(x), Phi the normal CDF (erf form) */
/* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), GPT-2's approximation. */
heed_tensor *heed_gelu_tanh(heed_graph *g, heed_tensor *x);
heed_tensor *heed_sigmoid(heed_graph *g, heed_tensor *x); /* 1 / (1 + e^-x), no overflow */
heed_tensor *heed_tanh(heed_graph *g, heed_tensor *x);
heed_tensor *heed_softplus(heed_graph *g, heed_tensor *x); /* log(1 + e^x) = max(x,0) + log1p(e^-|x|) */

/* where(mask, a, b): a where mask != 0, else b; mask, a, b broadcast together. The mask
 * is a tensor of either dtype (NaN counts as set) and gets no gradient. */
heed_tensor *heed_where(heed_graph *g, heed_tensor *mask, heed_tensor *a, heed_tensor *b);
/* x with value where mask != 0 (mask, of either dtype, broadcasts to x's shape). value
 * may be +-INFINITY, not NaN. Filled positions get zero gradient. */
heed_tensor *heed_masked_fill(heed_graph *g, heed_tensor *x, heed_tensor *mask, double value);

#ifdef __cplusplus
}
#endif
#endif
