/* heed: the core -- status codes, shapes, context, tensors, parameters, graph, random
 * numbers. Part of the public API: <heed.h> includes every part; a file may include just
 * the parts it uses. */
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
    HEED_ERR_STATE,    /* wrong use: dead tensor, second backward, backward without grad, ... */
    HEED_ERR_IO,       /* file system error */
    HEED_ERR_FORMAT,   /* corrupt or mismatching file */
    HEED_ERR_NUMERIC,  /* NaN/Inf found (anomaly mode) */
    HEED_ERR_GRADCHECK /* analytic and numeric gradients disagree */
} heed_status;

const char *heed_status_name(heed_status s);
size_t heed_dtype_size(heed_dtype dt);

/* ---------------------------------------------------------------- options structs */

/* Every options struct means "the defaults" when zero-initialised: a field left 0 (false,
 * NULL) takes the default its comment gives (docs/guide.md, "Options structs"). Where 0
 * is itself a value you want and not the default (beta1 = 0, atol = 0), write HEED_ZERO in
 * a floating-point field: the smallest normal double, which options read as exactly 0.
 * HEED_EXACTLY(x) passes a value computed at run time as it is, 0 included. */
#define HEED_ZERO 0x1p-1022
#define HEED_EXACTLY(x) ((x) == 0 ? HEED_ZERO : (double)(x))

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
    int threads;   /* threads of heed's own parallel regions (the kernels of ops, optimizers
                      and clipping on this ctx); 0 = OpenMP's default, omp_get_max_threads() */
} heed_ctx_opts;

/* NULL opts: seed 0, default threads. heed changes no process-wide state: each of its
 * parallel regions asks for heed_ctx_threads(ctx) threads, and OpenMP's own count is left
 * to the program. The GEMMs are the BLAS's, with the BLAS's own thread count: the OpenMP
 * build of OpenBLAS (and the portable fallback) follows OpenMP's process-wide count, which
 * a program sets with OMP_NUM_THREADS or omp_set_num_threads (OpenBLAS alone:
 * openblas_set_num_threads). */
heed_ctx *heed_ctx_new(const heed_ctx_opts *opts); /* NULL only when out of memory */
void heed_ctx_free(heed_ctx *ctx);
const char *heed_ctx_error(const heed_ctx *ctx); /* last non-graph error, "" if none */
/* The threads heed's parallel regions use: opts.threads, or omp_get_max_threads() (asked
 * at each call) when that was 0 or ctx is NULL. */
int heed_ctx_threads(const heed_ctx *ctx);
/* The threads a region should run on now: min(heed_ctx_threads(ctx), the CPUs other
 * processes leave free), at least 1, sampled from /proc at most every 100 ms. Waiting
 * threads spin, so a team larger than the free CPUs stalls at every region's end
 * (docs/design.md, "Threads on a shared machine"). A parallel region in your own op whose
 * result does not depend on the team's size asks for this:
 *   #pragma omp parallel for num_threads(heed_ctx_threads_now(heed_graph_ctx(g)))
 * one that splits a sum by thread keeps heed_ctx_threads(ctx) fixed ranges instead. */
int heed_ctx_threads_now(const heed_ctx *ctx);
/* The state of op randomness (dropout masks): seed and a counter of random ops run. */
void heed_ctx_rng_state(const heed_ctx *ctx, uint64_t *seed, uint64_t *counter);
void heed_ctx_set_rng_state(heed_ctx *ctx, uint64_t seed, uint64_t counter);
/* The instruction set heed's kernels run, for the whole process: the best the CPU has of
 * "avx512" (AVX-512F, with AVX2 + FMA), "avx2" (AVX2 + FMA) and "scalar". The environment
 * variable HEED_ISA=avx512|avx2|scalar picks one: an unknown name, or an ISA the CPU
 * lacks, is reported once on stderr and the default runs. Read at the first kernel or call. */
const char *heed_isa(void);

/* ---------------------------------------------------------------- tensors */

enum {
    HEED_REQUIRES_GRAD = 1u << 0, /* gradients flow into this tensor */
    HEED_PARAM = 1u << 1,         /* lives in a parameter store */
    /* bits 16 and up are heed's own */
};

/* Row-major and contiguous. Fields are read-only for users; data may be written for
 * inputs before they are used. grad is NULL until backward reaches the tensor.
 * A graph tensor dies at heed_graph_reset (or at a heed_graph_rewind to a mark made before
 * it). Every heed function refuses a dead tensor of any age with HEED_ERR_STATE ("...
 * (dead tensor)"): a header's address is never reused while its graph lives, so a stale
 * pointer can never reach a newer tensor. Only the raw fields (data, ...) are unchecked. */
typedef struct heed_tensor {
    heed_dtype dtype;
    int ndim;
    int64_t shape[HEED_MAX_DIMS];
    int64_t numel;
    void *data;
    void *grad;
    uint32_t flags;
    uint64_t gen;      /* generation it was made in: live while it is its graph's */
    heed_graph *graph; /* NULL for parameters */
    heed_node *node;   /* the op that produced it, NULL for leaves */
    const char *name;  /* parameter name, or NULL */
} heed_tensor;

/* The accessors below take no graph: on a dead tensor they return an empty value (empty
 * shape, NaN, NULL, "(dead tensor)") and record the dead-tensor error on its graph. */
heed_shape heed_tensor_shape(const heed_tensor *t);
/* Element i (flat index) as a double, whatever the dtype; NaN when i is out of range. */
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

/* Fans follow PyTorch: for shape [out, in, k...], fan_in = in*k..., fan_out = out*k...
 * Arguments must be finite, uniform needs lo <= hi and normal std >= 0 (as torch.nn.init):
 * heed_param and heed_param_init refuse others. */
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
 * Returns NULL on error (duplicate name, bad shape, bad init); message in heed_ctx_error. */
heed_tensor *heed_param(heed_params *P, const char *name, heed_shape shape, heed_init init);
/* Lookups. heed_params_find: NULL when no parameter has the name (an answer, not an
 * error: no message). heed_params_at: NULL for i outside [0, count), with the message in
 * P's context (a NULL P: NULL, no message). */
heed_tensor *heed_params_find(const heed_params *P, const char *name);
int heed_params_count(const heed_params *P);
heed_tensor *heed_params_at(const heed_params *P, int i);
/* Number of parameter values (the sum of every parameter's numel). */
int64_t heed_params_numel(const heed_params *P);
/* Length of the flat buffers in elements: every parameter plus the alignment padding
 * between them (zeros, with zero gradients). Loops over heed_params_values/grads run to it. */
int64_t heed_params_padded_numel(const heed_params *P);
heed_dtype heed_params_dtype(const heed_params *P);
heed_ctx *heed_params_ctx(const heed_params *P);
void *heed_params_values(heed_params *P); /* flat buffer of all values */
void *heed_params_grads(heed_params *P);  /* flat buffer of all gradients */
/* Element offset of parameter i inside the flat buffers; -1 for i outside [0, count),
 * with the message in P's context. */
int64_t heed_params_offset(const heed_params *P, int i);
void heed_params_zero_grad(heed_params *P);
/* Stop (or restart) gradients into one parameter. */
void heed_param_freeze(heed_tensor *t, bool frozen);
/* Re-initialise an existing parameter of P (for example a forget-gate bias slice);
 * HEED_ERR_ARG for a tensor that is not one of P's parameters. */
heed_status heed_param_init(heed_params *P, heed_tensor *t, heed_init init);

/* ---------------------------------------------------------------- graph */

/* A graph holds one step: its tensors, its tape and the memory of both, in an arena that
 * grows by itself. heed_graph_reset forgets the tape and rewinds the arena; tensors of
 * every earlier step are then dead (using one is an error). Modes survive a reset:
 * training, anomaly and an open no-grad region. */
heed_graph *heed_graph_new(heed_ctx *ctx); /* NULL: no ctx, or out of memory (heed_ctx_error) */
void heed_graph_free(heed_graph *g);
void heed_graph_reset(heed_graph *g);
heed_ctx *heed_graph_ctx(const heed_graph *g);
heed_status heed_graph_status(const heed_graph *g);
const char *heed_graph_error(const heed_graph *g); /* "" when no error */
/* Records an error on the graph, printf-style, as every op does (a model function or a
 * user's op too): the first error of a step stays (sticky), later ones are dropped, and
 * ops on a graph in error return NULL at once. Returns code. */
heed_status heed_graph_fail(heed_graph *g, heed_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Memory held: the arena's chunks plus the headers of the live tensors. */
size_t heed_graph_bytes(const heed_graph *g);
size_t heed_graph_peak_bytes(const heed_graph *g); /* most arena bytes used in one step */
int64_t heed_graph_nodes(const heed_graph *g);     /* ops on the tape */

/* Marks: a point inside a step to come back to, for loops that would otherwise grow the
 * step without bound (a decoder under no-grad: mark after the encoder, rewind before each
 * decoding step). heed_graph_rewind(g, m) kills every tensor made after m (using one is
 * the dead-tensor error) and reuses its memory; tensors made before m stay alive. Nodes
 * recorded after m are dropped from the tape, and marks made after m die; m itself stays
 * valid, so a loop rewinds to it again and again. Modes and the random-op counter are
 * untouched. A rewind is HEED_ERR_STATE for a mark that is dead (made before the last
 * reset, or after a mark rewound to since), of another graph, or when a backward pass ran
 * since m (its gradients live in the memory a rewind reuses: reset instead). On a graph
 * in error it does nothing and returns the error; heed_graph_mark_now then returns an
 * empty mark. */
typedef struct {
    void *at; /* opaque */
} heed_graph_mark;
heed_graph_mark heed_graph_mark_now(heed_graph *g);
heed_status heed_graph_rewind(heed_graph *g, heed_graph_mark m);
/* A rewind that carries tensors over it: the state a decoding step hands to the next (h,
 * c, the context), which is made after the mark and would die. keep lists the caller's
 * variables, n_keep of them, e.g. (heed_tensor **[]){&h, &c, &context}: each tensor made
 * after m is copied (same dtype, shape and values, bit for bit) to a new leaf placed right
 * after the mark, and its variable now points there; the old tensor dies with the rest.
 * The copies have no gradient history (the nodes after m are dropped anyway) and take no
 * gradient, like heed_detach. Memory: what the arena holds after the call is what it held
 * at m plus the kept tensors, so a loop that keeps the same state every step stays
 * bounded over any number of steps, as with heed_graph_rewind. PyTorch needs no such call
 * (a tensor lives while it is referenced); heed frees a step's memory by position, so
 * what should outlive the rewind must be named.
 *   A kept tensor made before m, or a parameter, stays as is (the variable is untouched);
 * a NULL variable or a variable holding NULL is skipped (optional state); a tensor held by
 * several variables is copied once and all of them get the copy; two views of the same
 * data become two separate copies. Errors, with nothing rewound and no variable changed:
 * every error of heed_graph_rewind; HEED_ERR_ARG for n_keep < 0 or a NULL keep with
 * n_keep > 0; HEED_ERR_STATE for a dead tensor (keep[i] was made after the mark of an
 * earlier rewind, or before a reset) or a tensor of another graph; HEED_ERR_NOMEM when
 * the staging copy cannot be had. Should memory run out while the copies are placed (after
 * the rewind), the graph is in error and the variables of the lost tensors are NULL. */
heed_status heed_graph_rewind_keeping(heed_graph *g, heed_graph_mark m, heed_tensor **const *keep, int n_keep);

/* Training mode (default true): dropout is active only in training mode. */
void heed_graph_set_training(heed_graph *g, bool training);
bool heed_graph_training(const heed_graph *g);
/* No-grad regions nest; inside one, ops record nothing. A region stays open across
 * heed_graph_reset, so an evaluation loop can open it once around many steps. */
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
/* Make a leaf input require gradients (to read d loss / d input after backward). NULL
 * for a dead tensor. */
heed_tensor *heed_requires_grad(heed_tensor *t);
/* Same data, cut from the tape: no gradient flows through the result. */
heed_tensor *heed_detach(heed_graph *g, heed_tensor *x);

/* Reverse-mode autodiff from a scalar loss (seed gradient 1). Gradients add into the
 * parameter store (zero them between steps), into the tensor started from (a leaf keeps
 * what it had) and into every tensor on the path; heed_grad reads them. Each recorded op
 * runs backward at most once: a second backward that reaches an op the first one ran is
 * refused (HEED_ERR_STATE, before any gradient moves), as PyTorch refuses to go through a
 * graph twice; reset and record the step again. A new loss made of new ops (say, on
 * parameters only) may still be backpropagated. Returns the graph's status. */
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
