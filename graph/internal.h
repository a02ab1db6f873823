/* What heed's own ops need beyond the public op-writing API (include/heed/extend.h):
 * the objects' layouts, the arena, tensor headers, shape helpers. Not installed; ops/,
 * optim/, io/ and viz/ include it; models/ and users write with the public headers alone.
 * It brings only heed/core.h and heed/extend.h: each file includes the other public parts
 * it uses, so changing one op family's header recompiles only that family's users. */
#ifndef HEED_INTERNAL_H
#define HEED_INTERNAL_H

#include "heed/core.h"
#include "heed/extend.h"

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

/* A position in an arena, to come back to with heed_arena_seek (graph marks). */
typedef struct {
    heed_chunk *chunk;
    size_t off, used;
} heed_arena_pos;

void *heed_arena_alloc(heed_arena *a, size_t bytes); /* 64-byte aligned, NULL on failure */
void heed_arena_rewind(heed_arena *a);
void heed_arena_free(heed_arena *a);
heed_arena_pos heed_arena_tell(const heed_arena *a);
/* Everything allocated after pos is free again (pos must be from this step). */
void heed_arena_seek(heed_arena *a, heed_arena_pos pos);

/* ---------------------------------------------------------------- tensor headers */

/* Tensor headers live at addresses that are never reused while the graph lives
 * (graph/headers.c), so a stale pointer can never reach a newer tensor. Each header takes
 * one slot; dead headers are either still mapped with a dead generation, or returned to
 * the system and read as zeros. */
#define HEED_HEADER_SLOT 128

typedef struct heed_span heed_span;
typedef struct {
    heed_span *spans; /* newest first; spans->used grows, older spans are full */
    int64_t live;     /* slots holding headers of this step (after rewinds) */
} heed_headers;

/* A position in the header space: the span and the offset of the next slot. */
typedef struct {
    heed_span *span;
    size_t off;
    int64_t live;
} heed_headers_pos;

void *heed_headers_alloc(heed_headers *h, heed_graph *owner); /* one zeroed slot, NULL when out of memory */
heed_headers_pos heed_headers_tell(const heed_headers *h);
/* True when the header p of h was made after pos (header addresses only move forward). */
bool heed_headers_after(const heed_headers *h, heed_headers_pos pos, const void *p);
/* Kills every header made after pos (generation 0) and returns their whole pages. */
void heed_headers_kill_after(heed_headers *h, heed_headers_pos pos);
/* At a reset: every header is dead already (older generation); return their memory. */
void heed_headers_release_all(heed_headers *h);
void heed_headers_free(heed_headers *h);
/* True when p lies in h's header space (a dead header whose page was returned reads as
 * zeros; this tells it from a tensor heed never made). */
bool heed_headers_own(const heed_headers *h, const void *p);
/* The graph whose header space holds p, or NULL (for accessors without a graph). */
heed_graph *heed_headers_owner(const void *p);

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
    int threads;          /* heed_ctx_opts.threads; 0: OpenMP's default (heed_ctx_threads) */
    heed_error err;
};

struct heed_graph {
    heed_ctx *ctx;
    heed_arena data;      /* tensor data, grads, nodes, saved values, mark records */
    heed_headers headers; /* tensor headers (see graph.c) */
    uint64_t gen;         /* generation: a header is live when its gen equals this */
    uint64_t backwards;   /* backward passes started since the last reset */
    heed_node *tape;      /* last recorded node; nodes link backwards */
    int64_t n_nodes;
    int no_grad;
    bool training, anomaly, in_backward;
    heed_error err;
    heed_grad_ready_fn grad_ready; /* heed_graph_set_grad_ready_hook (graph/grad_ready.c) */
    void *grad_ready_user;
};

/* Internal tensor flags (the public ones are in core.h). */
enum {
    HEED__MADE_NO_GRAD = 1u << 28, /* made inside a no-grad region (for backward's message) */
    HEED__REACHED = 1u << 29,      /* reached by the running backward pass */
    HEED__MARK = 1u << 30,         /* the sentinel header of a heed_graph_mark */
};

/* heed_op (name + backward) is public: include/heed/extend.h. */

struct heed_node {
    const heed_op *op;
    heed_tensor **in;
    heed_tensor **out;
    int n_in, n_out;
    int64_t iarg[6]; /* small op arguments (dims, flags, sizes) */
    double farg[4];  /* small op arguments (scales, eps, p) */
    void *saved;     /* op-specific saved values, in the graph arena */
    heed_node *prev;
    bool consumed; /* a backward pass ran it: it may not run again (its gradients would double) */
};

/* ---------------------------------------------------------------- errors */

/* heed_graph_fail (core.h) keeps the first error on g (sticky); heed_ctx_fail (extend.h)
 * records one outside graphs. */
void heed__ctx_clear(heed_ctx *ctx);

/* Shape string for messages: HEED_S(t) -> "[32,256]" in a temporary buffer. */
#define HEED_S(t) heed_shape_str((t), (char[64]){0})
/* The same for a heed_shape (a shape that is not a tensor yet). */
char *heed__shape_fmt(int ndim, const int64_t *d, char *buf);
#define HEED_SHAPE_S(s) heed__shape_fmt((s).ndim, (s).d, (char[64]){0})

/* heed_check_tensor (extend.h), plus dtype equal to ref's. */
bool heed__check_like(heed_graph *g, const char *op, const heed_tensor *t, const char *name, const heed_tensor *ref);
/* True when t is a dead tensor of a live graph (its graph in *owner, if owner is given). */
bool heed__dead(const heed_tensor *t, heed_graph **owner);
/* For accessors without a graph argument: true when t can be read (a live tensor or a
 * parameter). A dead tensor records the dead-tensor error on its graph. */
bool heed__readable(const heed_tensor *t, const char *op);
/* The rule every dead-tensor message states. */
#define HEED_DEAD_RULE "made before the last heed_graph_reset, or after the mark of a heed_graph_rewind (dead tensor)"

/* ---------------------------------------------------------------- allocation */

void *heed__zalloc(heed_graph *g, size_t bytes); /* heed_graph_alloc (extend.h), zeroed */
/* The CPUs other processes leave free now (graph/threads.c; sampled at most every 100 ms);
 * heed_ctx_threads_now (core.h) is min(heed_ctx_threads(ctx), this). */
int heed__cpus_free(void);
/* A new tensor on g, data uninitialised (zeroed for heed__zeros). Checks the shape. */
heed_tensor *heed__new(heed_graph *g, const char *op, heed_dtype dt, int ndim, const int64_t *shape);
heed_tensor *heed__zeros(heed_graph *g, const char *op, heed_dtype dt, int ndim, const int64_t *shape);
/* A header sharing x's data with a new shape (views). */
heed_tensor *heed__view(heed_graph *g, const char *op, heed_tensor *x, int ndim, const int64_t *shape);

/* ---------------------------------------------------------------- dtypes and dims */

/* Normalise a possibly negative dim; -1 if out of range. */
static inline int heed__dim(int dim, int ndim) {
    if (dim < 0) dim += ndim;
    return (dim < 0 || dim >= ndim) ? -1 : dim;
}

/* ---------------------------------------------------------------- options */

/* A floating-point options field (core.h): 0 -> the default, HEED_ZERO -> 0, else v. */
static inline double heed__opt(double v, double dflt) { return v == 0 ? dflt : v == HEED_ZERO ? 0 : v; }

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

bool heed__has_nonfinite(const heed_tensor *t, const void *buf);
/* Philox stream for random op number `stream`: element i draws uniform(i). */
double heed__uniform_at(uint64_t seed, uint64_t stream, uint64_t i);
uint64_t heed__next_stream(heed_ctx *ctx);
/* w[rows, cols] = a random matrix with orthonormal rows (rows <= cols) or columns, from
 * Gram-Schmidt on normal draws of r (graph/params.c). False when out of memory. */
bool heed__orthogonal(double *w, int64_t rows, int64_t cols, heed_rng *r);

#endif
