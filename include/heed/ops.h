/* heed: Ops: elementwise, reductions, matmul, shape, softmax/norm/dropout, losses,
 * convolution, pooling, batch normalisation.
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

/* dim may be negative (from the end). keepdim keeps the reduced dim with size 1. */
heed_tensor *heed_sum(heed_graph *g, heed_tensor *x, int dim, bool keepdim);
heed_tensor *heed_mean(heed_graph *g, heed_tensor *x, int dim, bool keepdim);
heed_tensor *heed_max(heed_graph *g, heed_tensor *x, int dim, bool keepdim); /* grad to first argmax */
heed_tensor *heed_sum_all(heed_graph *g, heed_tensor *x);                    /* scalar */
heed_tensor *heed_mean_all(heed_graph *g, heed_tensor *x);                   /* scalar */
heed_tensor *heed_max_all(heed_graph *g, heed_tensor *x);                    /* scalar */
/* torch.cumsum(x, dim): y has x's shape, y[..., j, ...] = sum_{k <= j} x[..., k, ...]
 * along dim (negative counts from the end; a 0-d x takes dim 0 or -1); sums in double.
 * Gradient: dx[..., k, ...] = sum_{j >= k} dy[..., j, ...]. */
heed_tensor *heed_cumsum(heed_graph *g, heed_tensor *x, int dim);

/* ---------------------------------------------------------------- ops: matmul */

/* a[..., m, k] @ b[..., k, n] through the BLAS. 2-D, or batched: leading dims of a and b
 * equal, or b 2-D (shared). */
heed_tensor *heed_matmul(heed_graph *g, heed_tensor *a, heed_tensor *b);
/* heed_matmul_t's flags: transpose a or b over their last two dims (no copy); 0 is
 * heed_matmul. heed_matmul_t(g, q, k, HEED_TRANS_B) is q @ k^T. */
typedef enum { HEED_TRANS_A = 1, HEED_TRANS_B = 2 } heed_matmul_flag;
heed_tensor *heed_matmul_t(heed_graph *g, heed_tensor *a, heed_tensor *b, int flags);
/* x[..., in] @ w[out, in]^T + bias[out] (bias may be NULL): PyTorch's nn.Linear layout. */
heed_tensor *heed_linear(heed_graph *g, heed_tensor *x, heed_tensor *w, heed_tensor *bias);

/* ---------------------------------------------------------------- ops: shape */

/* Dims may be negative (counted from the end) in every shape op. */
/* A view: same data, new shape with the same number of elements (one dim may be -1). */
heed_tensor *heed_reshape(heed_graph *g, heed_tensor *x, heed_shape shape);
/* Swaps dims dim0 and dim1 (a copy). */
heed_tensor *heed_transpose(heed_graph *g, heed_tensor *x, int dim0, int dim1);
/* Result dim i is x's dim perm[i]; perm has ndim entries, each dim once (a copy). */
heed_tensor *heed_permute(heed_graph *g, heed_tensor *x, const int *perm);
/* x[..., start:end, ...] along dim. Negative start/end count from the end as in Python,
 * but bounds outside the dim are an error (need 0 <= start <= end <= size). */
heed_tensor *heed_slice(heed_graph *g, heed_tensor *x, int dim, int64_t start, int64_t end);
/* Joins n >= 1 tensors along an existing dim; all other dims must be equal. */
heed_tensor *heed_concat(heed_graph *g, heed_tensor *const *xs, int n, int dim);
/* Joins n >= 1 tensors of equal shape along a new dim of size n, placed at dim in
 * [-(ndim+1), ndim]; the result has ndim + 1 <= 4 dims. */
heed_tensor *heed_stack(heed_graph *g, heed_tensor *const *xs, int n, int dim);
/* Rows of x along dim picked by idx[0..n), each in [0, size) (idx is copied; repeats
 * allowed and their gradients add up). */
heed_tensor *heed_index_select(heed_graph *g, heed_tensor *x, int dim, const int64_t *idx, int64_t n);
/* w[V, D] looked up at ids (shape ids_shape, ids in [0, V), copied): result ids_shape + [D].
 * Rows for padding_idx (< V) are zero and get no gradient; padding_idx < 0 means none. */
heed_tensor *heed_embedding(heed_graph *g, heed_tensor *w, const int64_t *ids, heed_shape ids_shape,
                            int64_t padding_idx);

/* ---------------------------------------------------------------- ops: indexing */

/* PyTorch's torch.select / squeeze / unsqueeze / argmax / topk / gather. dim may be
 * negative; a 0-d x counts as one element along dim 0 (except for select). Indices are
 * int64_t arrays owned by the caller (heed tensors hold floats only), in the row-major
 * order of the result: ready for heed_embedding or heed_index_select. */
/* x with dim removed, at position index along it (negative counts from the end): a copy.
 * Taking step t of a batch-major [B, T, H] sequence: heed_select(g, seq, 1, t). */
heed_tensor *heed_select(heed_graph *g, heed_tensor *x, int dim, int64_t index);
/* Views (as heed_reshape): squeeze drops dim if its size is 1 and otherwise returns x's
 * shape unchanged (as PyTorch); unsqueeze inserts a size-1 dim at dim in [-(ndim+1), ndim]. */
heed_tensor *heed_squeeze(heed_graph *g, heed_tensor *x, int dim);
heed_tensor *heed_unsqueeze(heed_graph *g, heed_tensor *x, int dim);
/* Writes into out[numel(x) / size(dim)] the position along dim of each maximum (x's
 * shape with dim removed, row-major). Ties give the first maximum; NaN ranks above every
 * number, so a row holding NaN gives its first NaN (as PyTorch on CPU). Records nothing
 * (not differentiable). Returns HEED_OK or the graph's (sticky) error.
 * Greedy decoding: heed_argmax(g, logits[B,V], -1, ids) then heed_embedding(.., ids, ..). */
heed_status heed_argmax(heed_graph *g, heed_tensor *x, int dim, int64_t *out);
/* heed_topk's flags; 0 is torch.topk's default (largest=True, sorted=True). */
typedef enum {
    HEED_TOPK_SMALLEST = 1, /* the k smallest values (largest=False) */
    HEED_TOPK_UNSORTED = 2, /* in ascending position, not best first (sorted=False) */
} heed_topk_flag;
/* The k largest (or smallest) values along dim, 0 <= k <= size(dim): x's shape with dim
 * of size k, best first (or in ascending position with HEED_TOPK_UNSORTED; PyTorch leaves
 * that order unspecified). Order as heed_argmax (NaN above numbers, ties by position).
 * indices (may be NULL) receives their positions along dim, laid out like the result.
 * Differentiable: the gradient goes back to the picked positions. */
heed_tensor *heed_topk(heed_graph *g, heed_tensor *x, int64_t k, int dim, int flags, int64_t *indices);
/* torch.gather: y has index_shape (same number of dims as x, each size <= x's except
 * along dim) and y[p] = x[p with its coordinate along dim replaced by index[p]], every
 * index in [0, size(dim)) (copied). Per-row picks, e.g. the log-probability of each row's
 * token: heed_gather(g, logp[B,V], 1, tok, HEED_SHAPE(B, 1)). dx scatter-adds dy. */
heed_tensor *heed_gather(heed_graph *g, heed_tensor *x, int dim, const int64_t *index, heed_shape index_shape);

/* ---------------------------------------------------------------- ops: softmax, norm, dropout */

/* Over the last dim (x needs at least 1 dim), max subtracted:
 *   softmax:     y = exp(x - m) / sum exp(x - m);  dx = y * (dy - sum(dy * y))
 *   log_softmax: y = x - m - log sum exp(x - m);   dx = dy - exp(y) * sum(dy)
 * -INFINITY entries are masked (probability 0, log-prob -inf); a fully masked row gives
 * zeros from both ops (and zero gradient), never NaN. f32 rows use AVX2 + SLEEF. */
heed_tensor *heed_softmax(heed_graph *g, heed_tensor *x);
heed_tensor *heed_log_softmax(heed_graph *g, heed_tensor *x);
/* Over the last dim (size D): (x - mean) / sqrt(var + eps) * gamma + beta, var biased (as
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
 * (at least 1). max: the largest element of each window (NaN if the window holds one); its
 * gradient goes to the first position holding the max. avg: the window's sum divided by
 * kh kw (or by the count of in-image elements with exclude_padding). No ceil_mode, no
 * dilation. */
heed_tensor *heed_max_pool2d(heed_graph *g, heed_tensor *x, const heed_pool2d_opts *opts);
heed_tensor *heed_avg_pool2d(heed_graph *g, heed_tensor *x, const heed_pool2d_opts *opts);
/* torch.nn.functional.adaptive_avg_pool2d: x[N, C, H, W] or [C, H, W] -> [..., out_h, out_w];
 * output row i averages input rows floor(i H / out_h) to ceil((i+1) H / out_h) - 1 (columns
 * alike). H, W, out_h, out_w >= 1. */
heed_tensor *heed_adaptive_avg_pool2d(heed_graph *g, heed_tensor *x, int64_t out_h, int64_t out_w);

/* ---------------------------------------------------------------- ops: batch normalisation (ops/batchnorm.c) */

/* Options of heed_batch_norm2d. Zero-initialised (or NULL) means PyTorch's defaults
 * (eps 1e-5, momentum 0.1, no running statistics). */
typedef struct {
    double eps;      /* added to the variance; 0 means 1e-5 */
    double momentum; /* running = (1 - momentum) running + momentum batch; 0 means 0.1; in (0, 1] */
    bool cumulative; /* PyTorch's momentum=None: running stats are the plain average over the
                        batches seen, momentum 1 / num_batches_tracked (which must be given) */
    /* The running statistics [C] (both or neither; the dtype of x): updated in place in
     * training mode, used in evaluation mode. They never take gradients. */
    heed_tensor *running_mean, *running_var;
    heed_tensor *num_batches_tracked; /* a one-element counter, +1 per training call; or NULL */
} heed_batchnorm_opts;

/* torch.nn.functional.batch_norm over x[N, C, H, W] per channel c:
 *   y = (x - mean_c) / sqrt(var_c + eps) * weight[c] + bias[c]   (weight, bias [C] or NULL)
 * In training mode (heed_graph_training), or without running statistics, mean and var are
 * the batch's over N, H, W (var biased); in training mode the running statistics, if given,
 * then move toward the batch's (var unbiased, times M / (M - 1), M = N H W > 1), and the
 * counter goes up by one. In evaluation mode with running statistics, those are used and
 * y is an affine map of x. Updates happen in no-grad regions too (as PyTorch's). */
heed_tensor *heed_batch_norm2d(heed_graph *g, heed_tensor *x, heed_tensor *weight, heed_tensor *bias,
                               const heed_batchnorm_opts *opts);

/* nn.BatchNorm2d's configuration; zero-initialised means PyTorch's defaults. */
typedef struct {
    int64_t num_features;  /* C, >= 1 */
    double eps, momentum;  /* 0 means 1e-5, 0.1 */
    bool cumulative;       /* momentum=None */
    bool no_affine;        /* affine=False: no weight and bias */
    bool no_running_stats; /* track_running_stats=False: batch statistics in both modes */
} heed_batchnorm_config;

/* The layer: its parameters in a store, named as PyTorch's state_dict: <prefix>.weight [C]
 * (ones), <prefix>.bias [C] (zeros), and the buffers <prefix>.running_mean [C] (zeros),
 * <prefix>.running_var [C] (ones) and <prefix>.num_batches_tracked (a scalar, 0, in the
 * store's dtype). The buffers are frozen (heed_param_freeze): optimizers skip them,
 * checkpoints save and load them. */
typedef struct {
    heed_tensor *weight, *bias; /* NULL with no_affine */
    heed_batchnorm_opts opts;   /* eps, momentum and the buffers (NULL with no_running_stats) */
} heed_batchnorm;

/* Declares the parameters under prefix ("" for none) and fills bn. Returns HEED_OK, or an
 * error with the message in heed_ctx_error. */
heed_status heed_batchnorm_declare(heed_batchnorm *bn, heed_params *P, const char *prefix,
                                   const heed_batchnorm_config *cfg);
/* heed_batch_norm2d(g, x, bn->weight, bn->bias, &bn->opts). */
heed_tensor *heed_batchnorm_forward(heed_graph *g, const heed_batchnorm *bn, heed_tensor *x);

#ifdef __cplusplus
}
#endif
#endif
