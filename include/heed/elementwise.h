/* heed: Elementwise ops: add, sub, mul, div, unary functions, where, masked_fill
 * (ops/binary.c, ops/unary.c, ops/where.c). Part of the public API: <heed.h> includes
 * every part; a file may include just the parts it uses. */
#ifndef HEED_API_ELEMENTWISE_H
#define HEED_API_ELEMENTWISE_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- ops: elementwise (ops/binary.c, unary.c, where.c) */

/* Binary ops broadcast like NumPy/PyTorch (shapes aligned at the right, size-1 dims
 * stretch). The gradient of an operand is summed back over the dims it was stretched
 * along. dy is the gradient arriving at y. */
heed_tensor *heed_add(heed_graph *g, heed_tensor *a, heed_tensor *b); /* a + b; da = dy, db = dy */
heed_tensor *heed_sub(heed_graph *g, heed_tensor *a, heed_tensor *b); /* a - b; da = dy, db = -dy */
heed_tensor *heed_mul(heed_graph *g, heed_tensor *a, heed_tensor *b); /* a * b; da = dy b, db = dy a */
heed_tensor *heed_div(heed_graph *g, heed_tensor *a, heed_tensor *b); /* a / b; da = dy / b, db = -dy a / b^2 */

/* Unary ops, y = f(x) elementwise. Scalar arguments must be finite. f32 runs SLEEF vector
 * kernels (within a few ulps of libm) for the ISA heed_isa() names, AVX-512 or AVX2, and
 * the f64 formulas rounded to float when it is "scalar"; f64 uses libm. Outside a
 * function's domain the result is what libm gives (log(0) = -inf, sqrt(-1) = NaN).
 * Gradients that use y read the saved output. */
heed_tensor *heed_neg(heed_graph *g, heed_tensor *x);                  /* -x; dx = -dy */
heed_tensor *heed_scale(heed_graph *g, heed_tensor *x, double s);      /* s * x; dx = s dy */
heed_tensor *heed_add_scalar(heed_graph *g, heed_tensor *x, double c); /* x + c; dx = dy */
heed_tensor *heed_exp(heed_graph *g, heed_tensor *x);                  /* e^x; dx = dy y */
heed_tensor *heed_log(heed_graph *g, heed_tensor *x);                  /* log x; dx = dy / x */
heed_tensor *heed_sqrt(heed_graph *g, heed_tensor *x);                 /* sqrt x; dx = dy / (2 y), inf at x = 0 */
/* x^p; a non-integer p needs x >= 0. dx = dy p x^(p-1), 0 for p = 0. */
heed_tensor *heed_pow(heed_graph *g, heed_tensor *x, double p);
/* max(x, 0); dx = dy for x > 0, else 0 (0 at x = 0, as PyTorch). */
heed_tensor *heed_relu(heed_graph *g, heed_tensor *x);
/* x for x > 0, else slope * x; dx = dy for x > 0, else slope dy (slope at x = 0). */
heed_tensor *heed_leaky_relu(heed_graph *g, heed_tensor *x, double slope);
/* x Phi(x), Phi the normal CDF computed as erfc(-x / sqrt 2) / 2 (accurate in the left
 * tail); dx = dy (Phi(x) + x phi(x)), phi(x) = e^(-x^2/2) / sqrt(2 pi). */
heed_tensor *heed_gelu(heed_graph *g, heed_tensor *x);
/* 0.5 x (1 + tanh u), u = sqrt(2/pi) (x + 0.044715 x^3): GPT-2's approximation, computed
 * as x s with s = sigmoid(2u); dx = dy (s + 2 x u' s (1 - s)),
 * u' = sqrt(2/pi) (1 + 0.134145 x^2). */
heed_tensor *heed_gelu_tanh(heed_graph *g, heed_tensor *x);
/* 1 / (1 + e^-x) as 1 / (1 + z) or z / (1 + z) with z = e^-|x|: never overflows;
 * dx = dy y (1 - y). */
heed_tensor *heed_sigmoid(heed_graph *g, heed_tensor *x);
heed_tensor *heed_tanh(heed_graph *g, heed_tensor *x); /* tanh x; dx = dy (1 - y^2) */
/* log(1 + e^x) = max(x, 0) + log1p(e^-|x|): exact and finite for large |x|;
 * dx = dy sigmoid(x). */
heed_tensor *heed_softplus(heed_graph *g, heed_tensor *x);

/* where(mask, a, b): a where mask != 0, else b; mask, a, b broadcast together. The mask
 * is a tensor of either dtype (NaN counts as set) and gets no gradient; da = dy where the
 * mask is set, db = dy where it is not (each summed back over its broadcast dims). */
heed_tensor *heed_where(heed_graph *g, heed_tensor *mask, heed_tensor *a, heed_tensor *b);
/* x with value where mask != 0 (mask, of either dtype, broadcasts to x's shape). value
 * may be +-INFINITY, not NaN. dx = dy where the mask is not set; filled positions get
 * zero gradient. */
heed_tensor *heed_masked_fill(heed_graph *g, heed_tensor *x, heed_tensor *mask, double value);

#ifdef __cplusplus
}
#endif
#endif
