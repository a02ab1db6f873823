/* heed: Ops: elementwise, reductions, matmul, shape, softmax/norm/dropout, losses.
 * Part of the public API; include <heed.h>, not this file. */
#ifndef HEED_API_OPS_H
#define HEED_API_OPS_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- ops: elementwise */

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

/* ---------------------------------------------------------------- ops: reductions */

/* axis may be negative (from the end). keepdim keeps the reduced axis with size 1. */
heed_tensor *heed_sum(heed_graph *g, heed_tensor *x, int axis, bool keepdim);
heed_tensor *heed_mean(heed_graph *g, heed_tensor *x, int axis, bool keepdim);
heed_tensor *heed_max(heed_graph *g, heed_tensor *x, int axis, bool keepdim); /* grad to first argmax */
heed_tensor *heed_sum_all(heed_graph *g, heed_tensor *x);  /* scalar */
heed_tensor *heed_mean_all(heed_graph *g, heed_tensor *x); /* scalar */
heed_tensor *heed_max_all(heed_graph *g, heed_tensor *x);  /* scalar */

/* ---------------------------------------------------------------- ops: matmul */

/* a[..., m, k] @ b[..., k, n] through the BLAS. 2-D, or batched: leading dims of a and b
 * equal, or b 2-D (shared). transpose flags act on the last two dims (no copy). */
heed_tensor *heed_matmul(heed_graph *g, heed_tensor *a, heed_tensor *b);
heed_tensor *heed_matmul_t(heed_graph *g, heed_tensor *a, heed_tensor *b, bool trans_a, bool trans_b);
/* x[..., in] @ w[out, in]^T + bias[out] (bias may be NULL): PyTorch's nn.Linear layout. */
heed_tensor *heed_linear(heed_graph *g, heed_tensor *x, heed_tensor *w, heed_tensor *bias);

/* ---------------------------------------------------------------- ops: shape */

/* Axes and dims may be negative (counted from the end) in every shape op. */
/* A view: same data, new shape with the same number of elements (one dim may be -1). */
heed_tensor *heed_reshape(heed_graph *g, heed_tensor *x, heed_shape shape);
/* Swaps dims dim0 and dim1 (a copy). */
heed_tensor *heed_transpose(heed_graph *g, heed_tensor *x, int dim0, int dim1);
/* Result dim i is x's dim perm[i]; perm has ndim entries, each dim once (a copy). */
heed_tensor *heed_permute(heed_graph *g, heed_tensor *x, const int *perm);
/* x[..., start:end, ...] along axis. Negative start/end count from the end as in Python,
 * but bounds outside the axis are an error (need 0 <= start <= end <= size). */
heed_tensor *heed_slice(heed_graph *g, heed_tensor *x, int axis, int64_t start, int64_t end);
/* Joins n >= 1 tensors along an existing axis; all other dims must be equal. */
heed_tensor *heed_concat(heed_graph *g, heed_tensor *const *xs, int n, int axis);
/* Joins n >= 1 tensors of equal shape along a new axis of size n, placed at axis in
 * [-(ndim+1), ndim]; the result has ndim + 1 <= 4 dims. */
heed_tensor *heed_stack(heed_graph *g, heed_tensor *const *xs, int n, int axis);
/* Rows of x along axis picked by idx[0..n), each in [0, size) (idx is copied; repeats
 * allowed and their gradients add up). */
heed_tensor *heed_index_select(heed_graph *g, heed_tensor *x, int axis, const int64_t *idx, int64_t n);
/* w[V, D] looked up at ids (shape ids_shape, ids in [0, V), copied): result ids_shape + [D].
 * Rows for padding_idx (< V) are zero and get no gradient; padding_idx < 0 means none. */
heed_tensor *heed_embedding(heed_graph *g, heed_tensor *w, const int64_t *ids, heed_shape ids_shape,
                            int64_t padding_idx);

/* ---------------------------------------------------------------- ops: softmax, norm, dropout */

/* Over the last axis (x needs at least 1 dim), max subtracted:
 *   softmax:     y = exp(x - m) / sum exp(x - m);  dx = y * (dy - sum(dy * y))
 *   log_softmax: y = x - m - log sum exp(x - m);   dx = dy - exp(y) * sum(dy)
 * -INFINITY entries are masked (probability 0, log-prob -inf); a fully masked row gives
 * zeros from both ops (and zero gradient), never NaN. f32 rows use AVX2 + SLEEF. */
heed_tensor *heed_softmax(heed_graph *g, heed_tensor *x);
heed_tensor *heed_log_softmax(heed_graph *g, heed_tensor *x);
/* Over the last axis (size D): (x - mean) / sqrt(var + eps) * gamma + beta, var biased (as
 * torch.nn.functional.layer_norm); gamma, beta [D] or NULL; eps finite and >= 0. */
heed_tensor *heed_layernorm(heed_graph *g, heed_tensor *x, heed_tensor *gamma, heed_tensor *beta, double eps);
/* Inverted dropout: zero with probability p, scale the rest by 1/(1-p). Identity when the
 * graph is not training or p == 0. The mask is regenerated from the counter-based RNG in
 * backward, never stored. */
heed_tensor *heed_dropout(heed_graph *g, heed_tensor *x, double p);

/* ---------------------------------------------------------------- ops: losses */

/* How a loss reduces its per-element losses (PyTorch's `reduction`). */
typedef enum {
    HEED_REDUCE_MEAN = 0, /* the mean (the default) */
    HEED_REDUCE_SUM,      /* the sum */
    HEED_REDUCE_NONE,     /* no reduction: one loss per element */
} heed_reduction;

/* Zero-initialised (or NULL) means the defaults (core.h, "options structs"). */
typedef struct {
    /* Targets equal to ignore_index are skipped. Left 0 it is -100, PyTorch's default;
     * set has_ignore_index to skip class 0 itself (a padding id 0, say). */
    int64_t ignore_index;
    bool has_ignore_index;
    double label_smoothing;   /* in [0, 1]; 0 */
    heed_reduction reduction; /* HEED_REDUCE_MEAN */
} heed_ce_opts;

/* Losses return a tensor of the input's dtype: a scalar (0-dim) one when reduced. A mean
 * over nothing (all rows ignored, all weights zero, empty input) is 0 with zero
 * gradients, not NaN. */

/* logits[N, C], targets[N] in [0, C) or the ignore index. Row loss
 * l_i = (1-s)*(-logp[t]) + s*mean_c(-logp[c]) with s = label_smoothing (PyTorch's
 * definition); an ignored row has l_i = 0. reduction: the mean over the rows not ignored,
 * the sum, or (HEED_REDUCE_NONE) the [N] tensor of l_i. A target out of range is an error
 * naming the row and value. targets is copied; a fully masked row (all -inf) has l_i = 0
 * and counts in the mean. */
heed_tensor *heed_cross_entropy(heed_graph *g, heed_tensor *logits, const int64_t *targets, const heed_ce_opts *opts);
/* l = max(x,0) - x*y + log(1 + exp(-|x|)) (stable for any |x|), y the shape of x.
 * Mean of l, or with weight (NULL or broadcast to x) sum(w*l)/sum(w) -- PyTorch divides
 * by numel instead. x, y and weight all get gradients. */
heed_tensor *heed_bce_with_logits(heed_graph *g, heed_tensor *x, heed_tensor *y, heed_tensor *weight);
/* mean((a-b)^2); a and b must have the same shape (no broadcasting). */
heed_tensor *heed_mse(heed_graph *g, heed_tensor *a, heed_tensor *b);

#ifdef __cplusplus
}
#endif
#endif
