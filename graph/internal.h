/* What ops need from the graph: validation, allocation, recording on the tape, gradient
 * buffers. Not installed; ops/, optim/ and models/ include it, users never do. */
#ifndef HEED_INTERNAL_H
#define HEED_INTERNAL_H

#include "heed.h"

#include <stdarg.h>
#include <string.h>

/* ---------------------------------------------------------------- arena */

typedef struct heed_chunk heed_chunk;
typedef struct {
    heed_chunk *head, *cur;
    size_t used;     /* bytes handed out since the last rewind */
    size_t reserved; /* bytes in all chunks */
    size_t peak;
} heed_arena;

void *heed_arena_alloc(heed_arena *a, size_t bytes); /* 64-byte aligned, NULL on failure */
void heed_arena_rewind(heed_arena *a);
void heed_arena_free(heed_arena *a);

/* ---------------------------------------------------------------- objects */

#define HEED_ERRMSG 512

typedef struct {
    heed_status code;
    char msg[HEED_ERRMSG];
} heed_error;

struct heed_ctx {
    uint64_t seed;
    uint64_t rng_counter; /* random ops run so far: each draws stream = stream_base + counter++ */
    uint64_t stream_base; /* rank * 2^48 in data-parallel training (heed_dist_init), else 0 */
    int threads;
    heed_error err;
};

struct heed_graph {
    heed_ctx *ctx;
    heed_arena data;      /* tensor data, grads, nodes, saved values */
    heed_arena headers[2]; /* tensor headers, alternating by epoch (see graph.c) */
    uint32_t epoch;
    heed_node *tape;      /* last recorded node; nodes link backwards */
    int64_t n_nodes;
    int no_grad;
    bool training, anomaly, in_backward;
    heed_error err;
    heed_grad_ready_fn grad_ready; /* heed_graph_set_grad_ready_hook (graph/grad_ready.c) */
    void *grad_ready_user;
};

typedef struct heed_op {
    const char *name;
    /* Adds into the gradients of the node's inputs (heed__grad) from the gradients of
     * its outputs, which are always allocated when backward is called. */
    void (*backward)(heed_graph *g, heed_node *n);
} heed_op;

struct heed_node {
    const heed_op *op;
    heed_tensor **in;
    heed_tensor **out;
    int n_in, n_out;
    int64_t iarg[6]; /* small op arguments (axes, flags, sizes) */
    double farg[4];  /* small op arguments (scales, eps, p) */
    void *saved;     /* op-specific saved values, in the graph arena */
    heed_node *prev;
};

/* ---------------------------------------------------------------- errors */

/* Keeps the first error on g (sticky); returns code. */
heed_status heed__fail(heed_graph *g, heed_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
heed_status heed__ctx_fail(heed_ctx *ctx, heed_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void heed__ctx_clear(heed_ctx *ctx);

/* Shape string for messages: HEED_S(t) -> "[32,256]" in a temporary buffer. */
#define HEED_S(t) heed_shape_str((t), (char[64]){0})

/* True when g is usable and t is a live tensor g may use (not NULL, not from a reset
 * step or another graph). Records the error otherwise. name is the argument name. */
bool heed__check(heed_graph *g, const char *op, const heed_tensor *t, const char *name);
/* heed__check, plus dtype equal to ref's. */
bool heed__check_like(heed_graph *g, const char *op, const heed_tensor *t, const char *name, const heed_tensor *ref);
/* True when g is non-NULL and carries no error. */
static inline bool heed__live(const heed_graph *g) { return g && g->err.code == HEED_OK; }

/* ---------------------------------------------------------------- allocation */

void *heed__alloc(heed_graph *g, size_t bytes);  /* arena; sets HEED_ERR_NOMEM */
void *heed__zalloc(heed_graph *g, size_t bytes); /* zeroed */
/* A new tensor on g, data uninitialised (zeroed for heed__zeros). Checks the shape. */
heed_tensor *heed__new(heed_graph *g, const char *op, heed_dtype dt, int ndim, const int64_t *shape);
heed_tensor *heed__zeros(heed_graph *g, const char *op, heed_dtype dt, int ndim, const int64_t *shape);
/* A header sharing x's data with a new shape (views). */
heed_tensor *heed__view(heed_graph *g, const char *op, heed_tensor *x, int ndim, const int64_t *shape);

/* ---------------------------------------------------------------- recording */

/* True when any of in[0..n) needs a gradient and g records (not in no-grad). */
bool heed__wants_grad(const heed_graph *g, int n, heed_tensor *const *in);
/* Appends a node for op with inputs in[0..n_in) and outputs out[0..n_out), if any input
 * needs a gradient; marks outputs as requiring grad. Returns NULL when nothing is
 * recorded (then the op saves nothing) or on allocation failure (error set). */
heed_node *heed__record(heed_graph *g, const heed_op *op, int n_in, heed_tensor *const *in, int n_out,
                        heed_tensor *const *out);
/* One-output shorthand. */
static inline heed_node *heed__record1(heed_graph *g, const heed_op *op, int n_in, heed_tensor *const *in,
                                       heed_tensor *out) {
    return heed__record(g, op, n_in, in, 1, &out);
}
/* The gradient buffer of t (zeroed on first use), or NULL if t takes no gradient. */
void *heed__grad(heed_graph *g, heed_tensor *t);

/* Run body with T bound to float or double by dt: one source for both dtypes.
 * Use <tgmath.h> in the body so exp() etc. pick the right precision. A #pragma cannot
 * stand inside a macro argument: write _Pragma("omp parallel for") in the body. */
#define HEED_FOR_DTYPE(dt, T, ...)                                                                            \
    do {                                                                                                     \
        if ((dt) == HEED_F32) {                                                                              \
            typedef float T;                                                                                 \
            __VA_ARGS__                                                                                      \
        } else {                                                                                             \
            typedef double T;                                                                                \
            __VA_ARGS__                                                                                      \
        }                                                                                                    \
    } while (0)

/* Normalise a possibly negative axis; -1 if out of range. */
static inline int heed__axis(int axis, int ndim) {
    if (axis < 0) axis += ndim;
    return (axis < 0 || axis >= ndim) ? -1 : axis;
}

/* ---------------------------------------------------------------- layers */

/* heed_param named "prefix.name" (just "name" for an empty prefix); `op` names the caller
 * in the error when the full name is too long. */
heed_tensor *heed__param_in(heed_params *P, const char *op, const char *prefix, const char *name, heed_shape shape,
                            heed_init init);

/* ---------------------------------------------------------------- gradient-ready hook */

/* Which parameter gradients are final after which node of a backward pass: the list of
 * (position of the node in backward order, parameter), by position (graph/grad_ready.c). */
typedef struct {
    struct heed_ready_at *at;
    int64_t n, next;
} heed_ready_plan;
/* The plan for a backward from node `from` (empty when g has no hook). */
void heed__grad_ready_plan(heed_graph *g, heed_node *from, heed_ready_plan *plan);
/* Calls the hook for the parameters final once the node at backward position pos ran. */
void heed__grad_ready_fire(heed_graph *g, heed_ready_plan *plan, int64_t pos);

/* ---------------------------------------------------------------- misc */

/* Writes text as XML character data, also safe inside attribute values: markup
 * characters escaped, invalid UTF-8 and control characters as '?' (graph/xml.c). */
void heed__xml_text(FILE *f, const char *text);

bool heed__has_nonfinite(const heed_tensor *t, const void *buf);
/* Philox stream for random op number `stream`: element i draws uniform(i). */
double heed__uniform_at(uint64_t seed, uint64_t stream, uint64_t i);
uint64_t heed__next_stream(heed_ctx *ctx);

#endif
