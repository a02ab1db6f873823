/* heed: an autograd framework in C for attention models.
 *
 * One header is the whole public API. The flow of a training step:
 *   inputs -> ops (forward, recorded on the graph's tape) -> loss -> heed_backward
 *   -> gradients in the parameter store -> optimizer -> parameters.
 *
 * Errors: library code never aborts. Every op takes the graph first; the first error is
 * kept on the graph (sticky) and later ops return NULL at once, so checking once per step
 * (heed_backward's status, or heed_graph_status) is enough. Messages name the op, the
 * shapes and the rule broken: "heed_matmul: a[32,256] @ b[128,512]: inner dims differ".
 * Calls that are not graph ops (parameters, optimizers, checkpoints) return a heed_status
 * and leave their message in heed_ctx_error(ctx).
 */
#ifndef HEED_H
#define HEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HEED_VERSION "0.1.0"
#define HEED_MAX_DIMS 4

typedef enum { HEED_F32 = 0, HEED_F64 = 1 } heed_dtype;

typedef enum {
    HEED_OK = 0,
    HEED_ERR_ARG,      /* NULL or out-of-range argument */
    HEED_ERR_SHAPE,    /* shapes do not fit the op's rule */
    HEED_ERR_DTYPE,    /* mixed or unsupported dtypes */
    HEED_ERR_NOMEM,    /* an allocation failed */
    HEED_ERR_STATE,    /* wrong use: tensor after reset, backward without grad, ... */
    HEED_ERR_IO,       /* file system error */
    HEED_ERR_FORMAT,   /* corrupt or mismatching file */
    HEED_ERR_NUMERIC,  /* NaN/Inf found (anomaly mode) */
    HEED_ERR_GRADCHECK /* analytic and numeric gradients disagree */
} heed_status;

const char *heed_status_name(heed_status s);
size_t heed_dtype_size(heed_dtype dt);

/* ---------------------------------------------------------------- shapes */

typedef struct {
    int ndim;
    int64_t d[HEED_MAX_DIMS];
} heed_shape;

#define HEED__NARGS(...) HEED__NARGS_(__VA_ARGS__, 4, 3, 2, 1, 0)
#define HEED__NARGS_(a, b, c, d, n, ...) n
/* HEED_SHAPE(32, 256) is a 2-D shape; HEED_SHAPE() is not allowed, use HEED_SCALAR. */
#define HEED_SHAPE(...) ((heed_shape){.ndim = HEED__NARGS(__VA_ARGS__), .d = {__VA_ARGS__}})
#define HEED_SCALAR ((heed_shape){.ndim = 0, .d = {0}})

/* ---------------------------------------------------------------- context */

typedef struct heed_ctx heed_ctx;
typedef struct heed_graph heed_graph;
typedef struct heed_params heed_params;
typedef struct heed_node heed_node;

typedef struct {
    uint64_t seed; /* keys every random stream (init, dropout, ...) */
    int threads;   /* OpenMP threads for kernels; 0 = OpenMP's default */
} heed_ctx_opts;

heed_ctx *heed_ctx_new(const heed_ctx_opts *opts); /* NULL opts: seed 0, default threads */
void heed_ctx_free(heed_ctx *ctx);
const char *heed_ctx_error(const heed_ctx *ctx); /* last non-graph error, "" if none */
int heed_ctx_threads(const heed_ctx *ctx);
/* The state of op randomness (dropout masks): seed and a counter of random ops run. */
void heed_ctx_rng_state(const heed_ctx *ctx, uint64_t *seed, uint64_t *counter);
void heed_ctx_set_rng_state(heed_ctx *ctx, uint64_t seed, uint64_t counter);

/* ---------------------------------------------------------------- tensors */

enum {
    HEED_REQUIRES_GRAD = 1u << 0, /* gradients flow into this tensor */
    HEED_PARAM = 1u << 1,         /* lives in a parameter store */
};

/* Row-major and contiguous. Fields are read-only for users; data may be written for
 * inputs before they are used. grad is NULL until backward reaches the tensor. */
typedef struct heed_tensor {
    heed_dtype dtype;
    int ndim;
    int64_t shape[HEED_MAX_DIMS];
    int64_t numel;
    void *data;
    void *grad;
    uint32_t flags;
    uint32_t epoch;     /* the graph step this tensor belongs to */
    heed_graph *graph;  /* NULL for parameters */
    heed_node *node;    /* the op that produced it, NULL for leaves */
    const char *name;   /* parameter name, or NULL */
} heed_tensor;

heed_shape heed_tensor_shape(const heed_tensor *t);
/* Element i (flat index) as a double, whatever the dtype. */
double heed_get(const heed_tensor *t, int64_t i);
/* Format "[2,3,4]" into buf (at least 64 bytes); returns buf. */
char *heed_shape_str(const heed_tensor *t, char *buf);

/* ---------------------------------------------------------------- parameters */

typedef enum {
    HEED_INIT_ZEROS,
    HEED_INIT_CONSTANT,        /* a */
    HEED_INIT_UNIFORM,         /* U(a, b) */
    HEED_INIT_NORMAL,          /* N(mean a, std b) */
    HEED_INIT_XAVIER_UNIFORM,  /* gain a: U(-r, r), r = a*sqrt(6/(fan_in+fan_out)) */
    HEED_INIT_XAVIER_NORMAL,   /* gain a: std = a*sqrt(2/(fan_in+fan_out)) */
    HEED_INIT_KAIMING_UNIFORM, /* negative slope a (0 for relu): r = sqrt(6/((1+a^2) fan_in)) */
    HEED_INIT_KAIMING_NORMAL,  /* std = sqrt(2/((1+a^2) fan_in)) */
    HEED_INIT_ORTHOGONAL,      /* gain a; rows (or columns) orthonormal */
} heed_init_kind;

typedef struct {
    heed_init_kind kind;
    double a, b;
} heed_init;

/* Fans follow PyTorch: for shape [out, in, k...], fan_in = in*k..., fan_out = out*k... */
#define heed_init_zeros() ((heed_init){HEED_INIT_ZEROS, 0, 0})
#define heed_init_constant(v) ((heed_init){HEED_INIT_CONSTANT, (v), 0})
#define heed_init_uniform(lo, hi) ((heed_init){HEED_INIT_UNIFORM, (lo), (hi)})
#define heed_init_normal(mean, std) ((heed_init){HEED_INIT_NORMAL, (mean), (std)})
#define heed_init_xavier_uniform(gain) ((heed_init){HEED_INIT_XAVIER_UNIFORM, (gain), 0})
#define heed_init_xavier_normal(gain) ((heed_init){HEED_INIT_XAVIER_NORMAL, (gain), 0})
#define heed_init_kaiming_uniform(slope) ((heed_init){HEED_INIT_KAIMING_UNIFORM, (slope), 0})
#define heed_init_kaiming_normal(slope) ((heed_init){HEED_INIT_KAIMING_NORMAL, (slope), 0})
#define heed_init_orthogonal(gain) ((heed_init){HEED_INIT_ORTHOGONAL, (gain), 0})

/* A parameter store: every value in one flat 64-byte-aligned buffer, every gradient in
 * another, so zeroing, clipping, an optimizer step and a checkpoint are each one pass.
 * All parameters of a store share its dtype. Pointers into the store (t->data, t->grad)
 * may move while parameters are still being added; they are stable after that. */
heed_params *heed_params_new(heed_ctx *ctx, heed_dtype dtype);
void heed_params_free(heed_params *P);
/* Adds and initialises a parameter (seeded by the ctx seed and the parameter's name).
 * Returns NULL on error (duplicate name, bad shape); message in heed_ctx_error. */
heed_tensor *heed_param(heed_params *P, const char *name, heed_shape shape, heed_init init);
heed_tensor *heed_params_find(const heed_params *P, const char *name);
int heed_params_count(const heed_params *P);
heed_tensor *heed_params_at(const heed_params *P, int i);
int64_t heed_params_numel(const heed_params *P);
heed_dtype heed_params_dtype(const heed_params *P);
heed_ctx *heed_params_ctx(const heed_params *P);
void *heed_params_values(heed_params *P); /* flat buffer of all values */
void *heed_params_grads(heed_params *P);  /* flat buffer of all gradients */
/* Element offset of parameter i inside the flat buffers. */
int64_t heed_params_offset(const heed_params *P, int i);
void heed_params_zero_grad(heed_params *P);
/* Stop (or restart) gradients into one parameter. */
void heed_param_freeze(heed_tensor *t, bool frozen);
/* Re-initialise an existing parameter (for example a forget-gate bias slice). */
heed_status heed_param_init(heed_params *P, heed_tensor *t, heed_init init);

/* ---------------------------------------------------------------- graph */

/* A graph holds one step: its tensors, its tape and the memory of both, in an arena that
 * grows by itself. heed_graph_reset forgets the tape and rewinds the arena in O(1);
 * tensors of the previous step are then dead (using one is an error). */
heed_graph *heed_graph_new(heed_ctx *ctx);
void heed_graph_free(heed_graph *g);
void heed_graph_reset(heed_graph *g);
heed_ctx *heed_graph_ctx(const heed_graph *g);
heed_status heed_graph_status(const heed_graph *g);
const char *heed_graph_error(const heed_graph *g); /* "" when no error */
/* Record an error from user code (a model function) on the graph, printf-style. */
heed_status heed_graph_fail(heed_graph *g, heed_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
size_t heed_graph_bytes(const heed_graph *g); /* arena bytes reserved */
size_t heed_graph_peak_bytes(const heed_graph *g); /* most arena bytes used in one step */
int64_t heed_graph_nodes(const heed_graph *g); /* ops on the tape */

/* Training mode (default true): dropout is active only in training mode. */
void heed_graph_set_training(heed_graph *g, bool training);
bool heed_graph_training(const heed_graph *g);
/* No-grad regions nest; inside one, ops record nothing. */
void heed_no_grad_begin(heed_graph *g);
void heed_no_grad_end(heed_graph *g);

/* New tensors on the graph. heed_input copies n = numel elements of the given dtype
 * (data may be NULL for zeros). */
heed_tensor *heed_input(heed_graph *g, heed_dtype dtype, heed_shape shape, const void *data);
heed_tensor *heed_zeros(heed_graph *g, heed_dtype dtype, heed_shape shape);
heed_tensor *heed_full(heed_graph *g, heed_dtype dtype, heed_shape shape, double value);
heed_tensor *heed_scalar(heed_graph *g, heed_dtype dtype, double value);
/* Copy from a double buffer into a tensor of any dtype. */
heed_tensor *heed_input_f64(heed_graph *g, heed_dtype dtype, heed_shape shape, const double *data);
/* Make a leaf input require gradients (to read d loss / d input after backward). */
heed_tensor *heed_requires_grad(heed_tensor *t);
/* Same data, cut from the tape: no gradient flows through the result. */
heed_tensor *heed_detach(heed_graph *g, heed_tensor *x);

/* Reverse-mode autodiff from a scalar loss (seed gradient 1). Gradients accumulate into
 * the parameter store (zero them between steps) and into every tensor on the path;
 * heed_grad reads them. Returns the graph's status. */
heed_status heed_backward(heed_graph *g, heed_tensor *loss);
/* Same, from any tensor with a given seed gradient (same shape and dtype as t). */
heed_status heed_backward_with(heed_graph *g, heed_tensor *t, const heed_tensor *seed);
/* The gradient of t after backward as a tensor (a view; NULL if none flowed). */
heed_tensor *heed_grad(heed_graph *g, heed_tensor *t);

/* Anomaly mode: after every recorded op (forward) and every backward step, check for
 * NaN/Inf; the first one is reported with the op that produced it (HEED_ERR_NUMERIC). */
void heed_graph_set_anomaly(heed_graph *g, bool on);

/* ---------------------------------------------------------------- random numbers */

/* Philox-4x32-10: counter-based, so a value depends only on (key, counter), never on
 * thread count or call order. */
void heed_philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]);

typedef struct {
    uint64_t key, stream, counter;
    uint32_t buf[4];
    int pos;
} heed_rng;

heed_rng heed_rng_make(uint64_t seed, uint64_t stream);
uint32_t heed_rng_u32(heed_rng *r);
uint64_t heed_rng_below(heed_rng *r, uint64_t n); /* uniform in [0, n), n > 0 */
double heed_rng_uniform(heed_rng *r);             /* [0, 1) */
double heed_rng_normal(heed_rng *r);              /* N(0, 1) */

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

typedef struct {
    int64_t ignore_index;   /* targets equal to it are skipped; default -100 */
    double label_smoothing; /* in [0, 1] */
} heed_ce_opts;
#define HEED_CE_DEFAULTS ((heed_ce_opts){.ignore_index = -100, .label_smoothing = 0})

/* Losses return a scalar (0-dim) tensor. A loss over nothing (all rows ignored, all
 * weights zero, empty input) is 0 with zero gradients, not NaN. */

/* logits[N, C], targets[N] in [0, C) or ignore_index (opts NULL: HEED_CE_DEFAULTS).
 * Row loss (1-s)*(-logp[t]) + s*mean_c(-logp[c]) with s = label_smoothing (PyTorch's
 * definition), averaged over the non-ignored rows. A target out of range is an error
 * naming the row and value. targets is copied; a fully masked row (all -inf) adds 0. */
heed_tensor *heed_cross_entropy(heed_graph *g, heed_tensor *logits, const int64_t *targets, const heed_ce_opts *opts);
/* l = max(x,0) - x*y + log(1 + exp(-|x|)) (stable for any |x|), y the shape of x.
 * Mean of l, or with weight (NULL or broadcast to x) sum(w*l)/sum(w) -- PyTorch divides
 * by numel instead. x, y and weight all get gradients. */
heed_tensor *heed_bce_with_logits(heed_graph *g, heed_tensor *x, heed_tensor *y, heed_tensor *weight);
/* mean((a-b)^2); a and b must have the same shape (no broadcasting). */
heed_tensor *heed_mse(heed_graph *g, heed_tensor *a, heed_tensor *b);

/* ---------------------------------------------------------------- gradient checker */

/* Builds the function under test on g from the checker's inputs; returns any tensor. */
typedef heed_tensor *(*heed_gradcheck_fn)(heed_graph *g, heed_tensor **inputs, void *user);

typedef struct {
    heed_shape shape;
    const double *data; /* NULL: uniform(-1, 1) from the checker's seed */
    bool no_grad;       /* an input that is not checked (e.g. a target) */
} heed_gradcheck_input;

typedef struct {
    double eps, atol, rtol; /* 0 -> 1e-6, 1e-5, 1e-3 (PyTorch gradcheck's) */
    heed_params *params;    /* also check every parameter of this (f64) store */
    int64_t max_per_tensor; /* check at most this many elements per tensor (0 = all) */
    uint64_t seed;          /* for random inputs, sampled elements, the cotangent */
} heed_gradcheck_opts;

typedef struct {
    bool passed;
    int64_t checked;        /* elements compared */
    double worst_error;     /* max |analytic - numeric| - rtol*|numeric| over atol */
    char worst_name[64];    /* "input 0" or the parameter name */
    int64_t worst_index;
    double analytic, numeric; /* at the worst element */
    char report[256];
} heed_gradcheck_result;

/* The output is projected onto a fixed random cotangent r (loss = sum(r * out)); every
 * element of every input (and parameter) is compared: analytic d loss/d x_i from
 * backward against (loss(x_i + eps) - loss(x_i - eps)) / (2 eps), in f64. The check
 * passes when |a - n| <= atol + rtol*|n| everywhere. Op randomness (dropout) is replayed
 * identically for every evaluation. Returns HEED_OK, HEED_ERR_GRADCHECK on a mismatch, or
 * the error the function raised (message in heed_ctx_error). */
heed_status heed_gradcheck(heed_ctx *ctx, heed_gradcheck_fn f, void *user, int n_inputs,
                           const heed_gradcheck_input *inputs, const heed_gradcheck_opts *opts,
                           heed_gradcheck_result *result);

/* ================================================================ recurrent (ops/rnn*.c) */

/* LSTM and GRU cells and layers with PyTorch's equations, gate order and weight names,
 * so torch.nn.LSTM / GRU / LSTMCell / GRUCell state_dicts load one to one (docs/rnn.md).
 * Weights stack the gates' rows: w_ih[G*H, I], w_hh[G*H, H], b_ih[G*H], b_hh[G*H] with
 * blocks of H rows in the order LSTM i, f, g, o (G = 4) and GRU r, z, n (G = 3).
 *   LSTM: i = sig(W_ii x + b_ii + W_hi h + b_hi), f, o alike, g = tanh(...),
 *         c' = f*c + i*g,  h' = o*tanh(c')
 *   GRU:  r = sig(W_ir x + b_ir + W_hr h + b_hr), z alike,
 *         n = tanh(W_in x + b_in + r*(W_hn h + b_hn)),  h' = (1-z)*n + z*h
 * Every op here is fused: the gate pre-activations come from GEMMs into one buffer, one
 * kernel (SLEEF vector sigmoid/tanh on f32) computes all gates, and backward is analytic. */
typedef enum { HEED_RNN_LSTM = 0, HEED_RNN_GRU = 1 } heed_rnn_kind;

#define HEED_RNN_MAX_LAYERS 8

/* One LSTM step (torch.nn.LSTMCell): x[B,I], h[B,H], c[B,H], w_ih[4H,I], w_hh[4H,H],
 * b_ih[4H], b_hh[4H]. h and c may be NULL (zero state); b_ih and b_hh may be NULL (no
 * bias). Returns h'[B,H] and stores c'[B,H] in *c_out (c_out must not be NULL). */
heed_tensor *heed_lstm_cell(heed_graph *g, heed_tensor *x, heed_tensor *h, heed_tensor *c, heed_tensor *w_ih,
                            heed_tensor *w_hh, heed_tensor *b_ih, heed_tensor *b_hh, heed_tensor **c_out);
/* One GRU step (torch.nn.GRUCell): x[B,I], h[B,H] (NULL: zeros), w_ih[3H,I], w_hh[3H,H],
 * b_ih[3H], b_hh[3H] (NULL: none). Returns h'[B,H]. */
heed_tensor *heed_gru_cell(heed_graph *g, heed_tensor *x, heed_tensor *h, heed_tensor *w_ih, heed_tensor *w_hh,
                           heed_tensor *b_ih, heed_tensor *b_hh);

typedef struct {
    heed_rnn_kind kind;
    int64_t input_size, hidden_size;
    int layers;         /* 0 means 1; at most HEED_RNN_MAX_LAYERS */
    bool bidirectional;
    bool no_bias;       /* PyTorch's bias=False */
    double dropout;     /* on the output of every layer but the last, when training; [0, 1) */
    double forget_bias; /* LSTM: if != 0, the forget block of bias_ih starts at this value
                           and that of bias_hh at 0 (so the forget bias is exactly it) */
} heed_rnn_opts;

/* The weights of a cell, named as in torch.nn.LSTMCell / GRUCell. */
typedef struct {
    heed_rnn_kind kind;
    int64_t input_size, hidden_size;
    heed_tensor *w_ih, *w_hh, *b_ih, *b_hh; /* biases NULL without bias */
} heed_rnn_cell;

/* The weights of a layer stack, [layer][direction] (direction 1 = reverse), named as in
 * torch.nn.LSTM / GRU. May also be filled by hand with any tensors of the right shapes
 * (opts.layers must then be set, and the biases left NULL when opts.no_bias). */
typedef struct {
    heed_rnn_opts opts;
    heed_tensor *w_ih[HEED_RNN_MAX_LAYERS][2], *w_hh[HEED_RNN_MAX_LAYERS][2];
    heed_tensor *b_ih[HEED_RNN_MAX_LAYERS][2], *b_hh[HEED_RNN_MAX_LAYERS][2];
} heed_rnn;

/* Declares prefix.weight_ih, prefix.weight_hh, prefix.bias_ih, prefix.bias_hh (prefix ""
 * or NULL: no prefix and no dot) in P with PyTorch's init U(-1/sqrt(H), 1/sqrt(H)) and
 * fills *cell. Uses opts' kind, input_size, hidden_size, no_bias, forget_bias. On error
 * (message in heed_ctx_error) nothing is added to P. */
heed_status heed_rnn_cell_declare(heed_rnn_cell *cell, heed_params *P, const char *prefix, const heed_rnn_opts *opts);
/* Declares a stack of layers with PyTorch's names: prefix.weight_ih_l0 [G*H, input_size],
 * prefix.weight_hh_l0 [G*H, H], prefix.bias_ih_l0, prefix.bias_hh_l0 [G*H], the same with
 * _reverse for the backward direction, layer k > 0 taking dirs*H inputs; init as above. */
heed_status heed_rnn_declare(heed_rnn *rnn, heed_params *P, const char *prefix, const heed_rnn_opts *opts);

/* A whole LSTM stack over x[T,B,I] (time-major, as PyTorch's default), one recorded op.
 * h0, c0: [layers*dirs, B, H] (index layer*dirs + direction) or NULL for zeros.
 * lengths: [B] in 1..T, or NULL for all T: outputs past a sequence's end are zero, its
 * state stops there, and the reverse direction starts at the sequence's own end (as a
 * packed sequence in PyTorch). Returns the last layer's outputs [T,B,dirs*H] (forward
 * direction in the first H columns); h_n, c_n (may be NULL) receive the final states
 * [layers*dirs, B, H]. Per layer: one GEMM for the input projection of all steps, then per
 * step one GEMM and one fused gate kernel; backward mirrors it with the weight gradients
 * as one GEMM over all steps. Threads split the directions, then the batch rows (or the
 * hidden units when the batch is small). */
heed_tensor *heed_lstm(heed_graph *g, const heed_rnn *rnn, heed_tensor *x, heed_tensor *h0, heed_tensor *c0,
                       const int64_t *lengths, heed_tensor **h_n, heed_tensor **c_n);
/* The same for a GRU stack (no cell state). */
heed_tensor *heed_gru(heed_graph *g, const heed_rnn *rnn, heed_tensor *x, heed_tensor *h0, const int64_t *lengths,
                      heed_tensor **h_n);

/* The time reduction of a pyramidal layer (LAS): x[T,B,F] -> y[ceil(T/2),B,2F] with
 * y[t,b] = [x[2t,b], x[2t+1,b]]. A frame at or past a sequence's end (t >= lengths[b],
 * including frame T of an odd T) enters as zeros. out_lengths (may be NULL) receives
 * ceil(lengths[b]/2); lengths NULL means all T. */
heed_tensor *heed_pyramid_concat(heed_graph *g, heed_tensor *x, const int64_t *lengths, int64_t *out_lengths);
/* A pyramidal LSTM layer: heed_pyramid_concat then heed_lstm with the halved lengths
 * (rnn->opts.input_size must be 2F; LAS uses a bidirectional rnn). out_lengths [B] must
 * not be NULL: it receives the lengths of the result [ceil(T/2), B, dirs*H]. */
heed_tensor *heed_pyramid_lstm(heed_graph *g, const heed_rnn *rnn, heed_tensor *x, const int64_t *lengths,
                               int64_t *out_lengths, heed_tensor **h_n, heed_tensor **c_n);

/* ================================================================ attention (ops/attention*.c) */

typedef enum {
    HEED_ATTN_AUTO = 0,     /* flash unless the weights are requested */
    HEED_ATTN_MATERIALISED, /* builds the [B,H,Nq,Nk] score matrix */
    HEED_ATTN_FLASH,        /* tiled, O(N d) memory, recomputing backward */
} heed_attn_impl;

typedef struct {
    double scale;                /* 0: 1/sqrt(d) */
    bool causal;                 /* query i sees keys j <= i + (Nk - Nq) (bottom-right aligned) */
    const int64_t *key_lengths;  /* [B]: keys j >= key_lengths[b] are masked; NULL = none */
    heed_tensor *bias;           /* additive, broadcastable to [B,H,Nq,Nk]; NULL = none */
    int64_t window;              /* > 0: also mask |i + (Nk - Nq) - j| >= window (local attention) */
    double dropout;              /* on the attention weights, when the graph is training */
    heed_tensor **weights;       /* if non-NULL, receives the weights [B,H,Nq,Nk] (materialised) */
    heed_attn_impl impl;
    int block_q, block_k;        /* flash tile sizes; 0 = default */
} heed_attention_opts;

/* softmax(q k^T * scale + bias + mask) v for q[B,H,Nq,d], k[B,H,Nk,d], v[B,H,Nk,dv]
 * -> [B,H,Nq,dv]. The masks (key_lengths, causal, window and -inf entries of bias)
 * combine; a fully masked query row gives a zero output row and zero gradients, never NaN.
 * Gradients flow to q, k, v and bias (summed over the dims it broadcasts). Dropout is
 * active only when the graph is training; flash and materialised draw the same mask for
 * the same random stream. The weights (materialised only) are the softmax before dropout
 * and take gradients like any output. AUTO runs flash unless weights are requested. The
 * options are read during the call (key_lengths is copied). opts may be NULL (all off).
 * Equations, cost and memory: docs/attention.md. */
heed_tensor *heed_attention(heed_graph *g, heed_tensor *q, heed_tensor *k, heed_tensor *v, const heed_attention_opts *opts);

/* ---------------------------------------------------------------- one decoder step (ops/attention_scores.c) */

/* See docs/attention-layers.md. A query [B,dq] attends over N keys [B,N,dk] with values
 * [B,N,dv]. A score op gives scores [B,N]; heed_attend turns them into weights (masked softmax) and a context. The
 * *_attention functions do both. key_lengths[b] in [0, N] marks keys j >= key_lengths[b]
 * as padding: their weight is exactly 0; a row with length 0 gets zero weights and a zero
 * context (and zero gradients), never NaN. key_lengths NULL means every key is valid.
 * Score ops compute every key's score (padding included; keep padding finite). */

/* weights[B,N] = softmax of scores over the valid keys of each row; returns the context
 * [B,dv] = sum_j weights_j values[b,j]. *weights (may be NULL) receives the weights; they
 * are an output of the same node, so a loss on them (coverage) back-propagates too. */
heed_tensor *heed_attend(heed_graph *g, heed_tensor *scores, heed_tensor *values, const int64_t *key_lengths,
                         heed_tensor **weights);

/* Additive (Bahdanau) attention, optionally location-aware (Chorowski et al. 2015) and with
 * coverage (See et al. 2017):
 *   s_j = v . tanh(W_q q + b + K'_j + U f_j + w_c cov_j)
 *   K'_j = W_k k_j: the key projection, computed once per sequence (heed_additive_keys);
 *   f_j[c] = sum_t F[c,t] prev[j + t - (K-1)/2]: a centred 1-D convolution of the previous
 *            step's weights (zero padded), projected by U;
 *   cov_j  = the sum of all earlier steps' weights (heed_add the weights each step). */
typedef struct {
    heed_tensor *w_q;         /* [da,dq] query projection (nn.Linear(dq, da).weight) */
    heed_tensor *bias;        /* [da] or NULL */
    heed_tensor *v;           /* [da] */
    heed_tensor *loc_filters; /* [C,K], K odd >= 1: location-aware features (NULL = off) */
    heed_tensor *loc_proj;    /* [da,C] (with loc_filters) */
    heed_tensor *cov_weight;  /* [da]: coverage features (NULL = off) */
} heed_additive_params;

/* keys[B,N,dk] @ w_k[da,dk]^T + bias[da] (bias may be NULL) -> keys_proj[B,N,da]: call once
 * per sequence and reuse for every decoder step (this is heed_linear). */
heed_tensor *heed_additive_keys(heed_graph *g, heed_tensor *keys, heed_tensor *w_k, heed_tensor *bias);
/* scores[B,N] for query[B,dq] and keys_proj[B,N,da]. prev_weights[B,N] is required exactly
 * when p->loc_filters is set; coverage[B,N] exactly when p->cov_weight is set (else NULL).
 * One fused node: cost O(B N da (1 + C)) + O(B N C K), memory B N (da + C). */
heed_tensor *heed_additive_score(heed_graph *g, heed_tensor *query, heed_tensor *keys_proj, const heed_additive_params *p,
                                 heed_tensor *prev_weights, heed_tensor *coverage);
/* heed_additive_score then heed_attend: context [B,dv], *weights [B,N]. */
heed_tensor *heed_additive_attention(heed_graph *g, heed_tensor *query, heed_tensor *keys_proj, heed_tensor *values,
                                     const heed_additive_params *p, heed_tensor *prev_weights, heed_tensor *coverage,
                                     const int64_t *key_lengths, heed_tensor **weights);

/* Luong et al. 2015 scores:
 *   HEED_LUONG_DOT      s_j = q . k_j                 (dq == dk; w, v NULL)
 *   HEED_LUONG_GENERAL  s_j = q^T W k_j               (w [dq,dk]; v NULL)
 *   HEED_LUONG_CONCAT   s_j = v . tanh(W [q; k_j])    (w [da,dq+dk], v [da]) */
typedef enum { HEED_LUONG_DOT = 0, HEED_LUONG_GENERAL, HEED_LUONG_CONCAT } heed_luong_kind;
heed_tensor *heed_luong_score(heed_graph *g, heed_luong_kind kind, heed_tensor *query, heed_tensor *keys, heed_tensor *w,
                              heed_tensor *v);
/* heed_luong_score then heed_attend. */
heed_tensor *heed_luong_attention(heed_graph *g, heed_luong_kind kind, heed_tensor *query, heed_tensor *keys,
                                  heed_tensor *values, heed_tensor *w, heed_tensor *v, const int64_t *key_lengths,
                                  heed_tensor **weights);
/* See et al.'s coverage loss per row: loss[b] = sum_j min(weights[b,j], coverage[b,j]),
 * both [B,N] (coverage before adding this step's weights). Returns [B]; ties split the
 * gradient in halves. */
heed_tensor *heed_coverage_loss(heed_graph *g, heed_tensor *weights, heed_tensor *coverage);

/* ---------------------------------------------------------------- positions (ops/positions.c) */

/* The sinusoidal table of "Attention is all you need" for positions start .. start+n-1:
 * PE[p,2i] = sin(p / 10000^(2i/d)), PE[p,2i+1] = cos(p / 10000^(2i/d)); an odd d ends
 * with a sine column. A constant [n,d] (no gradient); heed_add it to [B,n,d] inputs. */
heed_tensor *heed_sinusoidal_positions(heed_graph *g, heed_dtype dtype, int64_t start, int64_t n, int64_t d);
/* Learned absolute positions: rows start .. start+n-1 of a parameter table[maxlen,d] as
 * [n,d], with backward into those rows. (heed_embedding with ids 0..n-1 does the same for
 * arbitrary position ids.) Positions past maxlen are an error. */
heed_tensor *heed_learned_positions(heed_graph *g, heed_tensor *table, int64_t start, int64_t n);

typedef enum {
    HEED_RELPOS_CLIPPED = 0, /* bucket = clamp(j - i, -M, M) + M; table has 2M+1 rows */
    HEED_RELPOS_T5,          /* T5's log-spaced buckets; table has num_buckets rows */
} heed_relpos_kind;

typedef struct {
    heed_relpos_kind kind;
    int64_t max_distance; /* clipped: M (0 = from the table: rows = 2M+1); T5: where the log
                             buckets end (0 = 128) */
    bool bidirectional;   /* T5: true for encoders; false for causal decoders (all future keys
                             share bucket 0) */
    int64_t query_start;  /* query i sits at position query_start + i, key j at j (set it to
                             Nk - Nq when decoding with cached keys) */
} heed_relpos_opts;

/* The bucket of a relative position rel = key - query for a table of num_buckets rows, or
 * -1 if the options do not fit that table. */
int64_t heed_relpos_bucket(const heed_relpos_opts *opts, int64_t num_buckets, int64_t rel);
/* Learned relative-position bias: bias[0,h,i,j] = table[bucket(j - (query_start + i)), h]
 * for table[buckets,H] (a parameter), as [1,H,nq,nk], to pass as heed_attention_opts.bias
 * (it broadcasts over the batch). Gradients add up into the table rows. opts may be NULL
 * (clipped, from the table size). */
heed_tensor *heed_relative_position_bias(heed_graph *g, heed_tensor *table, int64_t nq, int64_t nk,
                                         const heed_relpos_opts *opts);

/* ---------------------------------------------------------------- attention as a recurrence (ops/attention_scan.c) */

/* For one query q and keys k_1..k_N with scores s_i = scale q.k_i, the state after i keys
 *   m_i = max_{j<=i} s_j,  c_i = sum_{j<=i} e^{s_j - m_i},  a_i = sum_{j<=i} e^{s_j - m_i} v_j
 * gives the softmax attention over those keys as o_i = a_i / c_i (the online softmax).
 * States over disjoint key sets combine associatively, which gives both a streaming cell
 * with O(dv) memory and a parallel prefix scan. */

/* The streaming cell, for inference (no graph, no gradient). a is the caller's buffer of
 * dv doubles; the state never allocates. */
typedef struct {
    int64_t dv;    /* value size */
    int64_t count; /* keys pushed (masked ones included) */
    double m;      /* running max score; -inf before the first key */
    double c;      /* denominator sum_j exp(s_j - m) */
    double *a;     /* numerator [dv]: sum_j exp(s_j - m) v_j */
} heed_attn_state;

/* Empty state (m = -inf, c = 0, a = 0). HEED_ERR_ARG on NULL or dv < 1. */
heed_status heed_attn_state_init(heed_attn_state *s, int64_t dv, double *a);
/* Adds one key with its score and value v[dv]. A score of -inf is a masked key (weight 0);
 * NaN or +inf gives HEED_ERR_NUMERIC and leaves the state unchanged. */
heed_status heed_attn_state_push(heed_attn_state *s, double score, const double *v);
heed_status heed_attn_state_push_f32(heed_attn_state *s, double score, const float *v);
/* Same with the score computed as scale * q[d] . k[d]. */
heed_status heed_attn_state_push_key(heed_attn_state *s, const double *q, const double *k, int64_t d, double scale,
                                     const double *v);
/* s <- s combined with other (keys seen by either; order does not matter). Same dv. */
heed_status heed_attn_state_merge(heed_attn_state *s, const heed_attn_state *other);
/* out[dv] = a / c: the attention output over the keys pushed; zeros if none (or all masked). */
heed_status heed_attn_state_output(const heed_attn_state *s, double *out);
/* log sum_j exp(s_j) = m + log c (-inf when empty). */
double heed_attn_state_logsumexp(const heed_attn_state *s);

/* The cell run over whole sequences as a recorded op: q[B,d] (or [d], shared by every
 * row), k[B,N,d], v[B,N,dv] -> softmax(scale q.k) v as [B,dv], one key at a time with O(dv)
 * state per row. Backward recomputes the scores from the saved log-sum-exp (memory O(B)).
 * scale 0 means 1/sqrt(d). key_lengths [B] masks keys j >= key_lengths[b] (length 0 ->
 * zero output and gradients). */
heed_tensor *heed_attention_recurrent(heed_graph *g, heed_tensor *q, heed_tensor *k, heed_tensor *v, double scale,
                                      const int64_t *key_lengths);
/* Every prefix at once: out[b,i] = softmax over keys 0..i of row b, times their values, as
 * [B,N,dv] (a causal attention with one query per row: Aaren's form). Forward is a
 * work-efficient parallel prefix scan over the (m, c, a) triples (Blelloch: 2 log2 N
 * levels, O(N dv) work, O(N dv) work space per row); backward is a reverse linear
 * recurrence per row, O(N (d + dv)). Outputs at i >= key_lengths[b] are zero. */
heed_tensor *heed_attention_scan(heed_graph *g, heed_tensor *q, heed_tensor *k, heed_tensor *v, double scale,
                                 const int64_t *key_lengths);

/* ================================================================ layers (models/layers*.c) */

/* ---------------------------------------------------------------- additive attention layer (models/additive.c) */

/* The parameters of an additive attention (heed_additive_score) declared in a store. */
typedef struct {
    int64_t query_dim, key_dim, attn_dim; /* dq, dk, da */
    int64_t loc_channels, loc_kernel;     /* location-aware features: C >= 1 and odd K; 0, 0 = none */
    bool coverage;                        /* coverage features */
    bool bias;                            /* a bias on the query projection */
} heed_additive_config;

typedef struct {
    heed_additive_params params; /* pass &layer.params to heed_additive_score / _attention */
    heed_tensor *w_k;            /* [da,dk]: heed_additive_keys(g, keys, layer.w_k, NULL) once per sequence */
} heed_additive_layer;

/* Declares <prefix>.query_proj.weight [da,dq], .key_proj.weight [da,dk],
 * .query_proj.bias [da] (with bias), .v [da], .location_conv.weight [C,K] and
 * .location_proj.weight [da,C] (with location features), .coverage_proj.weight [da] (with
 * coverage). Projections and filters start as PyTorch's nn.Linear / nn.Conv1d
 * (U(+-1/sqrt(fan_in))), v and the bias as U(+-1/sqrt(da)), the coverage weights U(-1,1). */
heed_status heed_additive_init(heed_additive_layer *l, heed_params *P, const char *prefix, const heed_additive_config *cfg);

/* ---------------------------------------------------------------- multi-head attention (models/mha.c) */

/* PyTorch's nn.MultiheadAttention (batch_first, separate projections): see
 * docs/attention-layers.md. */
typedef struct {
    int64_t embed_dim;  /* E: query size and output size */
    int64_t num_heads;  /* H; E must be a multiple of H (head size dh = E / H) */
    int64_t kdim, vdim; /* key and value input sizes for cross-attention; 0 = E */
    bool bias;          /* biases on the four projections (PyTorch's default is true) */
    double dropout;     /* on the attention weights in training mode, in [0, 1) */
} heed_mha_config;

/* The layer: parameters in a store, named <prefix>.q_proj.weight [E,E],
 * <prefix>.k_proj.weight [E,kdim], <prefix>.v_proj.weight [E,vdim],
 * <prefix>.out_proj.weight [E,E] and (with bias) <prefix>.{q,k,v,out}_proj.bias [E]. */
typedef struct {
    heed_tensor *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b; /* biases NULL without bias */
    int64_t embed_dim, num_heads, head_dim, kdim, vdim;
    double dropout;
} heed_mha;

/* Declares the parameters under prefix ("" for none) and fills m. Initialisation follows
 * PyTorch: xavier_uniform for q/k/v, nn.Linear's kaiming_uniform(sqrt 5) for out_proj, zero
 * biases. Returns HEED_OK, or an error with the message in heed_ctx_error. */
heed_status heed_mha_init(heed_mha *m, heed_params *P, const char *prefix, const heed_mha_config *cfg);
/* query [B,Nq,E], key [B,Nk,kdim], value [B,Nk,vdim] -> [B,Nq,E]. key NULL means
 * self-attention (key = value = query); value NULL means value = key. opts go to
 * heed_attention (may be NULL): causal, key_lengths [B], bias (e.g. a relative-position
 * bias [1,H,Nq,Nk]), window, weights (receives the per-head weights [B,H,Nq,Nk]), impl;
 * opts->dropout 0 means the layer's dropout. */
heed_tensor *heed_mha_forward(heed_graph *g, const heed_mha *m, heed_tensor *query, heed_tensor *key, heed_tensor *value,
                              const heed_attention_opts *opts);

/* ================================================================ models: SASRec (models/sasrec.c) */

/* SASRec (Kang and McAuley, ICDM 2018): next-item prediction with causal self-attention,
 * as the paper's reference code builds it. Items are 1..n_items, 0 is padding; sequences
 * are left padded (the last column is the latest item). See docs/sasrec.md. */
typedef struct {
    int64_t n_items;  /* item ids 1..n_items */
    int64_t maxlen;   /* longest sequence: positions 1..maxlen */
    int64_t hidden;   /* d: embedding and model width */
    int blocks;       /* self-attention blocks, 0..HEED_SASREC_MAX_BLOCKS */
    int heads;        /* attention heads; must divide hidden */
    double dropout;   /* on embeddings, attention weights and the feed-forward net */
    double ln_eps;    /* layernorm epsilon; 0 -> 1e-8 as the reference code */
} heed_sasrec_config;

#define HEED_SASREC_MAX_BLOCKS 16

/* One block's parameters ("sasrec.block<i>.<name>" in the store). Linear weights are
 * [out, in] (heed_linear's layout). */
typedef struct {
    heed_tensor *attn_ln_g, *attn_ln_b;             /* layernorm before the queries */
    heed_tensor *wq, *bq, *wk, *bk, *wv, *bv;       /* [d, d] and [d] */
    heed_tensor *ff_ln_g, *ff_ln_b;                 /* layernorm after the attention residual */
    heed_tensor *w1, *b1, *w2, *b2;                 /* point-wise feed-forward, [d, d] and [d] */
} heed_sasrec_block;

typedef struct {
    heed_sasrec_config cfg;
    heed_params *params;
    heed_tensor *item_emb;  /* "sasrec.item_emb" [n_items + 1, d]; row 0 (padding) stays zero */
    heed_tensor *pos_emb;   /* "sasrec.pos_emb" [maxlen + 1, d]; row 0 (padding) stays zero */
    heed_tensor *out_ln_g, *out_ln_b;
    heed_sasrec_block block[HEED_SASREC_MAX_BLOCKS];
} heed_sasrec;

/* Declares the model's parameters in P (Xavier-uniform weights and embeddings, zero
 * biases, unit layernorm gains) and fills m. The model holds no memory of its own. Errors
 * (bad config, a name already in P) leave a message in heed_ctx_error. */
heed_status heed_sasrec_init(heed_sasrec *m, heed_params *P, const heed_sasrec_config *cfg);
/* Sequence outputs h [batch, len, d] for seq [batch, len] item ids, left padded with 0.
 * len <= maxlen: the columns are the last len positions, so a batch may drop leading
 * columns that are padding in every row (same outputs, less work). Rows of h at padded
 * positions are unspecified. Dropout is active when the graph is training. weights, if not
 * NULL, is an array of cfg.blocks pointers that receive each block's attention weights
 * [batch, heads, len, len] (this selects the materialised attention; NULL uses flash). */
heed_tensor *heed_sasrec_forward(heed_graph *g, const heed_sasrec *m, const int64_t *seq, int64_t batch, int64_t len,
                                 heed_tensor **weights);
/* The training loss: binary cross-entropy of the positive item pos[b,t] (the next item,
 * label 1) and the sampled negative neg[b,t] (label 0) at every position with pos != 0,
 * summed and divided by the number of such positions. pos and neg are [B, len] like h.
 * One fused op (only the target rows are touched). */
heed_tensor *heed_sasrec_loss(heed_graph *g, const heed_sasrec *m, heed_tensor *h, const int64_t *pos, const int64_t *neg);
/* The output at the last position, [B, d]: the state that predicts the next item. */
heed_tensor *heed_sasrec_last(heed_graph *g, const heed_sasrec *m, heed_tensor *h);
/* Scores h_last[b] . E[i]: for items [B, n_cands] the result is [B, n_cands]; with items
 * NULL every item is scored, [B, n_items + 1] (column 0 is the padding id). */
heed_tensor *heed_sasrec_score(heed_graph *g, const heed_sasrec *m, heed_tensor *h_last, const int64_t *items,
                               int64_t n_cands);
/* The number of trailing columns of seq [batch, maxlen] that hold an item in some row
 * (at least 1): the len to pass after dropping the all-padding leading columns. */
int64_t heed_sasrec_width(const int64_t *seq, int64_t batch, int64_t maxlen);

/* ================================================================ optimizers (optim/) */

/* An optimizer runs over a parameter store's flat buffers. Its state (moments, step
 * count, ...) is exposed as named flat buffers so checkpoints can save and restore it. */
typedef struct heed_optimizer heed_optimizer;

/* Hyper-parameters, as PyTorch names and defines them (docs/training.md writes every
 * update out). Start from the HEED_*_DEFAULTS macro and change fields; NULL opts means
 * the defaults. A constructor returns NULL on a bad value (message in heed_ctx_error).
 * weight_decay is the default group's; other groups set their own (heed_optimizer_add_group). */
typedef struct {
    double lr, momentum, dampening, weight_decay;
    bool nesterov; /* needs momentum > 0 and dampening == 0 */
} heed_sgd_opts;
#define HEED_SGD_DEFAULTS ((heed_sgd_opts){.lr = 1e-2, .momentum = 0, .dampening = 0, .weight_decay = 0, .nesterov = false})

typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    bool amsgrad; /* divide by the running maximum of the second moment */
} heed_adam_opts;
#define HEED_ADAM_DEFAULTS ((heed_adam_opts){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0})
#define HEED_ADAMW_DEFAULTS ((heed_adam_opts){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 1e-2})

typedef struct {
    double lr, alpha, eps, weight_decay, momentum;
    bool centered; /* normalise by the variance estimate sq_avg - grad_avg^2 */
} heed_rmsprop_opts;
#define HEED_RMSPROP_DEFAULTS ((heed_rmsprop_opts){.lr = 1e-2, .alpha = 0.99, .eps = 1e-8, .weight_decay = 0, .momentum = 0})

typedef struct {
    double lr, lr_decay, weight_decay, initial_accumulator_value, eps;
} heed_adagrad_opts;
#define HEED_ADAGRAD_DEFAULTS \
    ((heed_adagrad_opts){.lr = 1e-2, .lr_decay = 0, .weight_decay = 0, .initial_accumulator_value = 0, .eps = 1e-10})

/* Optimizers over every parameter of P (add all parameters first: the state is sized to
 * the store). Frozen parameters (heed_param_freeze) are skipped at each step. */
heed_optimizer *heed_sgd(heed_params *P, const heed_sgd_opts *opts);
heed_optimizer *heed_adam(heed_params *P, const heed_adam_opts *opts);  /* L2 penalty added to the gradient */
heed_optimizer *heed_adamw(heed_params *P, const heed_adam_opts *opts); /* decoupled decay: p -= lr*wd*p */
heed_optimizer *heed_rmsprop(heed_params *P, const heed_rmsprop_opts *opts);
heed_optimizer *heed_adagrad(heed_params *P, const heed_adagrad_opts *opts);

void heed_optimizer_free(heed_optimizer *opt); /* NULL is fine */
/* One update from the gradients in the store: one threaded, vectorised pass over the flat
 * buffers. Fails (HEED_ERR_STATE) if parameters were added after the optimizer was made. */
heed_status heed_optimizer_step(heed_optimizer *opt);
/* The base learning rate; group g's rate is base * its lr_scale. */
void heed_optimizer_set_lr(heed_optimizer *opt, double lr); /* all groups */
double heed_optimizer_lr(const heed_optimizer *opt);
/* Updates taken so far (t in the formulas is steps + 1 during a step). */
int64_t heed_optimizer_steps(const heed_optimizer *opt);
/* State buffers for checkpoints: i in [0, count); each has a name ("adam.exp_avg"), a dtype
 * and numel elements (the store's flat size for per-element state). The data pointer is
 * the live buffer: a checkpoint reads it to save and writes it to restore. */
int heed_optimizer_state_count(const heed_optimizer *opt);
heed_status heed_optimizer_state(heed_optimizer *opt, int i, const char **name, void **data, int64_t *numel,
                                 heed_dtype *dtype);
/* Restore the step count (steps >= 0; a negative value is ignored). */
void heed_optimizer_set_steps(heed_optimizer *opt, int64_t steps);
/* "sgd", "adam", "adamw", "rmsprop" or "adagrad". */
const char *heed_optimizer_name(const heed_optimizer *opt);
heed_params *heed_optimizer_params(const heed_optimizer *opt); /* the store it updates */

/* Parameter groups. Every parameter starts in group 0 (the constructor's lr and
 * weight_decay). A new group takes the parameters, still in group 0, that filter accepts
 * (or whose name matches pattern: '*' matches any run of characters, so "*.bias" or
 * "enc.*"); its learning rate is base lr * lr_scale and it has its own weight decay.
 * Returns the group's index (>= 1), or -1 on error (message in heed_ctx_error). Groups
 * are configuration: make the same groups before restoring a checkpoint. */
typedef bool (*heed_param_filter)(const heed_tensor *t, void *user);
int heed_optimizer_add_group(heed_optimizer *opt, heed_param_filter filter, void *user, double lr_scale,
                             double weight_decay);
int heed_optimizer_add_group_named(heed_optimizer *opt, const char *pattern, double lr_scale, double weight_decay);
/* A ready filter: parameters with at most one dimension (biases, norm gains and shifts),
 * which usually get no weight decay. */
bool heed_param_is_vector(const heed_tensor *t, void *user);
int heed_optimizer_group_count(const heed_optimizer *opt); /* groups, group 0 included */
/* The group of parameter i of the store (heed_params_at order), or -1. */
int heed_optimizer_group_of(const heed_optimizer *opt, int param_index);
double heed_optimizer_group_lr(const heed_optimizer *opt, int group); /* base lr * lr_scale; NaN if no such group */
double heed_optimizer_group_weight_decay(const heed_optimizer *opt, int group); /* NaN if no such group */
/* Change a group's rate scale and weight decay (group 0 too). */
heed_status heed_optimizer_set_group(heed_optimizer *opt, int group, double lr_scale, double weight_decay);

/* ---------------------------------------------------------------- around the step */

/* Multiply every gradient by s (gradient accumulation: after k micro-batch backward
 * passes into un-zeroed gradients, scale by 1/k to get the mean). */
void heed_params_scale_grad(heed_params *P, double s);
/* True when no gradient holds NaN or Inf. */
bool heed_params_grads_finite(const heed_params *P);
/* The L2 norm of all gradients, accumulated in double. */
double heed_params_grad_norm(const heed_params *P);
/* Clip by global norm as torch.nn.utils.clip_grad_norm_: with n the L2 norm of all
 * gradients, if n > max_norm every gradient is multiplied by max_norm / (n + 1e-6).
 * Returns n (before clipping). A non-finite n leaves the gradients alone and is returned
 * as is, for the step guard to see. Returns -1 on a bad argument (message in ctx). */
double heed_clip_grad_norm(heed_params *P, double max_norm);
/* Clamp every gradient to [-clip, clip] (NaN stays NaN). */
heed_status heed_clip_grad_value(heed_params *P, double clip);

/* A guarded step. Before updating it looks at the graph's status (if g is given; in
 * anomaly mode, heed_graph_set_anomaly, a NaN/Inf is reported there with the op that
 * first produced it), the loss (if given) and every gradient. If any holds NaN/Inf the
 * update is skipped -- parameters, state and step count stay bitwise unchanged --, the
 * skip is counted and HEED_ERR_NUMERIC is returned with the cause in heed_ctx_error (the
 * op's message, or the first parameter and element whose gradient is not finite). Any
 * other graph error is returned as is, without a step and without counting a skip. */
heed_status heed_optimizer_step_guarded(heed_optimizer *opt, heed_graph *g, const heed_tensor *loss);
int64_t heed_optimizer_skipped(const heed_optimizer *opt); /* steps skipped so far */

/* ---------------------------------------------------------------- learning-rate schedules */

/* A schedule is a value: fill one with a constructor below, then before each step call
 * heed_schedule_apply (or read heed_schedule_lr at t = heed_optimizer_steps(opt), the
 * number of updates already taken, as PyTorch's scheduler after t scheduler.step() calls).
 * Reduce-on-plateau instead moves when heed_schedule_observe is given a metric. */
typedef enum {
    HEED_SCHED_CONSTANT,     /* lr */
    HEED_SCHED_STEP,         /* lr * gamma^floor(t / step_size) */
    HEED_SCHED_EXPONENTIAL,  /* lr * gamma^t */
    HEED_SCHED_COSINE,       /* min_lr + (lr - min_lr) (1 + cos(pi min(t, total) / total)) / 2 */
    HEED_SCHED_WARMUP_LINEAR,/* lr t / warmup, then linear to min_lr at t = total */
    HEED_SCHED_WARMUP_COSINE,/* lr t / warmup, then cosine to min_lr at t = total */
    HEED_SCHED_NOAM,         /* lr d_model^-0.5 min(s^-0.5, s warmup^-1.5), s = t + 1 */
    HEED_SCHED_PLATEAU,      /* lr * gamma each time the metric stalls for patience epochs */
} heed_schedule_kind;

typedef struct {
    heed_schedule_kind kind;
    double lr;          /* base (peak) rate; for Noam the factor in front */
    double gamma;       /* step, exponential; plateau: the factor (PyTorch's `factor`) */
    double min_lr;      /* cosine (eta_min), warm-up schedules, plateau */
    int64_t step_size;  /* step */
    int64_t warmup;     /* warm-up schedules, Noam */
    int64_t total;      /* cosine (T_max), warm-up schedules: the last step */
    double d_model;     /* Noam */
    /* plateau configuration (PyTorch ReduceLROnPlateau's) */
    bool maximize;      /* mode 'max' */
    bool threshold_abs; /* threshold_mode 'abs' (else 'rel') */
    int64_t patience, cooldown;
    double threshold, eps;
    /* plateau state (saved by checkpoints through heed_schedule_get_state) */
    double best, bad_epochs, cooldown_left, current_lr;
} heed_schedule;

heed_schedule heed_schedule_constant(double lr);
heed_schedule heed_schedule_step(double lr, int64_t step_size, double gamma);
heed_schedule heed_schedule_exponential(double lr, double gamma);
heed_schedule heed_schedule_cosine(double lr, int64_t total, double min_lr);
heed_schedule heed_schedule_warmup_linear(double lr, int64_t warmup, int64_t total, double min_lr);
heed_schedule heed_schedule_warmup_cosine(double lr, int64_t warmup, int64_t total, double min_lr);
heed_schedule heed_schedule_noam(double factor, double d_model, int64_t warmup);
/* PyTorch's defaults: mode min, factor 0.1, patience 10, threshold 1e-4 rel, cooldown 0,
 * min_lr 0, eps 1e-8; change the fields after the call. */
heed_schedule heed_schedule_plateau(double lr);

/* HEED_OK, or HEED_ERR_ARG with a message in buf (if given) naming the bad field. */
heed_status heed_schedule_check(const heed_schedule *s, char *buf, size_t bufsize);
/* The rate at step t (t >= 0 updates taken); plateau: the current rate. NaN if invalid. */
double heed_schedule_lr(const heed_schedule *s, int64_t t);
/* Sets opt's base lr to heed_schedule_lr(s, heed_optimizer_steps(opt)). */
heed_status heed_schedule_apply(const heed_schedule *s, heed_optimizer *opt);
/* Reduce-on-plateau: one epoch's metric in; returns the rate to use from now on. */
double heed_schedule_observe(heed_schedule *s, double metric);
/* The mutable state as doubles for checkpoints: {best, bad_epochs, cooldown_left,
 * current_lr} (meaningful for plateau, where best is NaN until the first metric; the other
 * kinds keep no state besides t, which is the optimizer's step count). set_state returns
 * HEED_ERR_FORMAT for impossible values (negative or fractional counters, bad rate). */
#define HEED_SCHEDULE_STATE 4
void heed_schedule_get_state(const heed_schedule *s, double state[HEED_SCHEDULE_STATE]);
heed_status heed_schedule_set_state(heed_schedule *s, const double state[HEED_SCHEDULE_STATE]);

/* ================================================================ checkpoints (graph/checkpoint.c) */

/* safetensors files: parameters, optimizer state (optional), and metadata (step, RNG
 * state, schedule state, user keys). Saving is atomic (temporary file, fsync, rename).
 * Loading validates the whole file before changing anything. docs/checkpoints.md gives
 * the layout (tensor names, metadata keys) and the list of checks. */

/* The sizes in heed_checkpoint_info: doubles of schedule state, user key/value pairs, and
 * bytes per user key and per user value (with the NUL). */
#define HEED_CKPT_MAX_SCHEDULE 8
#define HEED_CKPT_MAX_USER 16
#define HEED_CKPT_KEY_LEN 64
#define HEED_CKPT_VALUE_LEN 512

/* What a checkpoint holds besides tensors. Zero-initialise, then fill what you use.
 * Numbers are stored as exact decimal strings (doubles with %.17g), so a resumed run
 * reads back bitwise the values it saved. */
typedef struct {
    int64_t step;  /* training steps done */
    int64_t epoch;
    /* The ctx's op RNG (heed_ctx_rng_state): save writes the ctx's own state and ignores
     * these two; load restores it into the ctx and reports it here. */
    uint64_t rng_seed, rng_counter;
    int n_schedule; /* schedule[0 .. n_schedule): learning-rate schedule state, ... */
    double schedule[HEED_CKPT_MAX_SCHEDULE];
    int n_user; /* user[0 .. n_user): free-form strings (UTF-8), e.g. a config or data RNG state */
    struct {
        char key[HEED_CKPT_KEY_LEN];
        char value[HEED_CKPT_VALUE_LEN];
    } user[HEED_CKPT_MAX_USER];
} heed_checkpoint_info;

/* Sets (adds or replaces) a user key. HEED_ERR_ARG if a string is NULL, empty (key),
 * too long, not UTF-8, or if all HEED_CKPT_MAX_USER slots are taken. */
heed_status heed_checkpoint_info_set(heed_checkpoint_info *info, const char *key, const char *value);
/* The value of a user key, or NULL. */
const char *heed_checkpoint_info_get(const heed_checkpoint_info *info, const char *key);

/* Saves the parameters of P, the state of opt (NULL: none) and info (NULL: step 0, no
 * schedule, no user keys) to path, atomically: the bytes go to path.tmp.XXXXXX, which is
 * fsynced and renamed over path, and the directory is fsynced. On any error the
 * temporary file is removed and an existing file at path is untouched; a process killed
 * while saving may leave a stale path.tmp.* file (never a half-written path). Returns
 * HEED_ERR_IO / _ARG / _NOMEM with the message in heed_ctx_error(heed_params_ctx(P)). */
heed_status heed_checkpoint_save(const char *path, heed_params *P, heed_optimizer *opt, const heed_checkpoint_info *info);
/* Loads a checkpoint saved by heed_checkpoint_save into P (same parameter names, shapes
 * and dtype), opt (NULL: the file's optimizer state is skipped; else the same optimizer
 * kind over the same store) and info_out (may be NULL), and restores the ctx RNG state.
 * The whole file is validated and read before anything changes: on error P, opt and the
 * ctx are untouched and the message (HEED_ERR_FORMAT for a corrupt or mismatching file,
 * HEED_ERR_IO, HEED_ERR_NOMEM) names what is wrong, the tensor, and found vs expected. */
heed_status heed_checkpoint_load(const char *path, heed_params *P, heed_optimizer *opt, heed_checkpoint_info *info_out);
/* The same from the bytes of a checkpoint in memory. */
heed_status heed_checkpoint_load_memory(const void *data, size_t size, heed_params *P, heed_optimizer *opt,
                                        heed_checkpoint_info *info_out);

/* Plain safetensors weights, to move parameters to and from other frameworks (PyTorch's
 * state_dict names and layouts: see docs/checkpoints.md). Export writes every parameter
 * under its name, atomically as above. Import reads tensors by parameter name, converting
 * F32 <-> F64 to the store's dtype; shapes must match exactly. strict: every parameter
 * must be in the file and every tensor of the file must be a parameter; otherwise the
 * parameters found are loaded, the others left as they are, extra tensors ignored (at
 * least one must match). Validation happens before anything changes, as for load. */
heed_status heed_safetensors_export(const char *path, heed_params *P);
heed_status heed_safetensors_import(const char *path, heed_params *P, bool strict);
heed_status heed_safetensors_import_memory(const void *data, size_t size, heed_params *P, bool strict);

/* ================================================================ pictures and progress */

/* ---------------------------------------------------------------- pictures (viz/) */

/* See docs/viz.md. Attention weights as pictures: PNG heatmaps (one map or a grid of
 * heads), a PNG overlay of spatial weights on an image (captioning), and SVG with token
 * labels on both axes. Every writer takes any readable f32/f64 tensor (a graph tensor of the current step or a
 * parameter), returns a heed_status with the message in heed_ctx_error(ctx), and writes
 * atomically: a temporary file next to path, fsync, rename. On any error nothing is
 * written at path (an existing file there is left as it was). */

typedef enum {
    HEED_CMAP_GRAY = 0,  /* 0 black .. 1 white */
    HEED_CMAP_VIRIDIS,   /* matplotlib's viridis: dark purple .. yellow */
} heed_colormap;

/* Value ranges: lo < hi maps [lo, hi] onto the colormap (values outside are clamped);
 * otherwise [min(0, min), max] of the picture's finite values. NaN is drawn red. */
typedef struct {
    heed_colormap cmap;
    int cell;          /* pixels per weight (square); 0 = auto: 512 / max(Nq, Nk) within [1, 16] */
    int grid_cols;     /* heads per grid row; 0 = ceil(sqrt(H)) */
    int gap;           /* white pixels between heads; 0 = 4 (for more than one head) */
    bool per_row;      /* map each query row onto [0, its max] (long sequences) */
    double lo, hi;     /* value range (see above) */
    int64_t batch;     /* which batch row of a 4-D [B,H,Nq,Nk] tensor */
} heed_heatmap_opts;

/* weights [Nq,Nk] (one map), [H,Nq,Nk] (a grid of heads, row-major, H tiles) or
 * [B,H,Nq,Nk] (opts->batch picks the row) to an 8-bit RGB PNG: query i is pixel row
 * i*cell, key j pixel column j*cell. opts may be NULL (gray, auto). Images over 16384 px
 * a side are refused. */
heed_status heed_heatmap_png(heed_ctx *ctx, const char *path, const heed_tensor *weights, const heed_heatmap_opts *opts);

typedef struct {
    heed_colormap cmap; /* 0 = gray; viridis reads better on photos */
    double alpha;       /* weight of the heatmap in the blend, in (0, 1]; 0 = 0.6 */
    int64_t grid_h, grid_w; /* shape of 1-D weights [h*w] (ignored for 2-D weights) */
    double lo, hi;      /* value range, as for heatmaps */
} heed_overlay_opts;

/* Spatial attention over an image: image [H,W,3] with values in [0,1] (clamped), weights
 * [h,w] (or [h*w] with opts->grid_h, grid_w) upsampled bilinearly to H x W (pixel centres,
 * as align_corners=False), coloured and blended:
 *   out = (1 - alpha) * image + alpha * colour(weight).
 * Writes an H x W RGB PNG. */
heed_status heed_overlay_png(heed_ctx *ctx, const char *path, const heed_tensor *image, const heed_tensor *weights,
                             const heed_overlay_opts *opts);

typedef struct {
    heed_colormap cmap;
    int cell;          /* pixels per weight; 0 = 24 */
    int font_size;     /* 0 = 12 */
    const char *title; /* optional, drawn above the map */
    bool values;       /* also print each weight in its cell (two decimals) */
    double lo, hi;     /* value range, as for heatmaps */
    int64_t batch, head; /* pick the map of a [H,Nq,Nk] or [B,H,Nq,Nk] tensor */
} heed_svg_opts;

/* weights [Nq,Nk] (or 3-D/4-D with opts->head/batch) as an SVG grid with query labels
 * down the left side and key labels (rotated) along the top. Labels are UTF-8 strings,
 * XML-escaped (& < > " '); invalid UTF-8 and control characters become '?'. Either label
 * array (or any entry) may be NULL: the index is printed instead. Each cell carries a
 * <title> tooltip "query / key: weight". */
heed_status heed_attention_svg(heed_ctx *ctx, const char *path, const heed_tensor *weights, const char *const *query_labels,
                               const char *const *key_labels, const heed_svg_opts *opts);

/* ---------------------------------------------------------------- training progress, metrics, curves */

/* A progress line on stderr (or opts.out). On a terminal it redraws one line in place
 * ("\r"), at most every `interval` seconds:
 *   train [=========>          ] 450/1000  38.2 it/s  ETA 0:14  loss 2.3141
 * Elsewhere (a pipe, a log file) it prints plain lines, one every `every` steps (or every
 * `interval` seconds when every is 0):
 *   train step 450/1000 rate 38.2 it/s eta 0:14 loss 2.3141
 * and a last line from heed_progress_finish ("train done 1000/1000 rate 38.1 it/s
 * elapsed 0:26 loss 2.2790"). Rate and ETA count from the first update.
 * The loss shown is an exponential moving average (weight 0.9 on the past) with the bias
 * correction Adam uses, so early values are not pulled towards 0. */
typedef struct heed_progress heed_progress;
typedef struct {
    FILE *out;         /* NULL: stderr */
    int64_t total;     /* steps expected; 0 = unknown (no bar, no ETA) */
    const char *label; /* prefix; NULL = none */
    double interval;   /* seconds between redraws or lines; 0 = 0.1 on a terminal, 10 else */
    int64_t every;     /* plain lines every this many steps; 0 = by interval */
    int mode;          /* 0 = detect (isatty), 1 = terminal, 2 = plain lines */
} heed_progress_opts;

heed_progress *heed_progress_new(const heed_progress_opts *opts); /* NULL opts: defaults */
/* Step `step` (1-based count of steps done) finished with this loss (NaN: no loss). */
void heed_progress_update(heed_progress *p, int64_t step, double loss);
/* A message on its own line that does not garble the bar. */
void heed_progress_note(heed_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the final state (one last line) and frees p. */
void heed_progress_finish(heed_progress *p);
double heed_progress_running_loss(const heed_progress *p); /* the loss shown; NaN before any finite loss */

/* Metrics to CSV: a header row of column names, then one row per call, each flushed so a
 * crash keeps what was logged. Values print with 17 significant digits (exact round trip),
 * NaN as "nan". The rows are kept in memory too, so the log can be plotted. */
typedef struct heed_metrics heed_metrics;
/* path NULL: keep the rows in memory only. NULL on error (message in heed_ctx_error). */
heed_metrics *heed_metrics_new(heed_ctx *ctx, const char *path, int n_columns, const char *const *names);
heed_status heed_metrics_add(heed_metrics *m, const double *values); /* n_columns values */
int64_t heed_metrics_rows(const heed_metrics *m);
const double *heed_metrics_column(const heed_metrics *m, int column); /* rows values */
heed_status heed_metrics_close(heed_metrics *m);                    /* flushes, closes, frees */

/* Line plots to SVG, written atomically (temporary file, then rename). */
typedef struct {
    const char *name;   /* legend entry (NULL: none) */
    const double *x;    /* NULL: 0, 1, 2, ... */
    const double *y;
    int64_t n;          /* points; NaN/Inf points break the line */
} heed_series;
typedef struct {
    const char *title, *xlabel, *ylabel; /* NULL: none */
    int width, height;                   /* pixels; 0 = 720 x 440 */
    bool log_y;                          /* logarithmic y axis (non-positive y skipped) */
} heed_plot_opts;
heed_status heed_plot_svg(heed_ctx *ctx, const char *path, const heed_series *series, int n_series,
                          const heed_plot_opts *opts);
/* Columns y_columns[0..n) of a metrics log against column x_column (-1: row number),
 * named by their column names. Rows where a column is NaN (not measured at that step)
 * are left out of its curve, so a validation loss logged every 100 steps joins up. */
heed_status heed_metrics_plot_svg(heed_metrics *m, const char *path, int x_column, const int *y_columns, int n,
                                  const heed_plot_opts *opts);


#ifdef __cplusplus
}
#endif
#endif
