/* heed: the core -- status codes, shapes, context, tensors, parameters, graph, random
 * numbers. Part of the public API; include <heed.h>, not this file. */
#ifndef HEED_API_CORE_H
#define HEED_API_CORE_H

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

/* A hook called during backward with each parameter as soon as its gradient is final
 * for this backward: the earliest-recorded node taking it as an input has run, so no
 * later step of the pass adds to it. Data-parallel training starts sending gradients
 * from here while backward goes on (heed_dist_overlap). Parameters the pass does not
 * reach are not reported; a failed pass stops reporting. NULL fn removes the hook. */
typedef void (*heed_grad_ready_fn)(heed_graph *g, heed_tensor *param, void *user);
void heed_graph_set_grad_ready_hook(heed_graph *g, heed_grad_ready_fn fn, void *user);

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

#ifdef __cplusplus
}
#endif
#endif
