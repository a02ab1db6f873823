/* The per-step graph: context, tensors, the tape, marks and the backward pass.
 *
 * Data, grads, nodes and saved values share one bump arena, rewound at every reset (and
 * back to a mark by heed_graph_rewind). Tensor headers live apart, at addresses never
 * reused while the graph lives (graph/headers.c), and carry the generation they were made
 * in: a header is live when its generation is the graph's. A reset starts a new
 * generation; a rewind sets the generation of every header made after the mark to 0.
 * A stale header therefore reads as a dead one (or as zeros once its page was returned),
 * never as a newer tensor, however many steps old it is. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>

size_t heed_dtype_size(heed_dtype dt) { return dt == HEED_F64 ? 8 : 4; }

/* ---------------------------------------------------------------- context */

heed_ctx *heed_ctx_new(const heed_ctx_opts *opts) {
    heed_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return NULL;
    if (opts) {
        ctx->seed = opts->seed;
        ctx->threads = opts->threads > 0 ? opts->threads : 0;
    }
    return ctx;
}

void heed_ctx_free(heed_ctx *ctx) { free(ctx); }
/* Asked of OpenMP at each call when 0, so OMP_NUM_THREADS and the caller's own
 * omp_set_num_threads are followed; never set by heed (process-wide state). */
int heed_ctx_threads(const heed_ctx *ctx) { return ctx && ctx->threads > 0 ? ctx->threads : omp_get_max_threads(); }

void heed_ctx_rng_state(const heed_ctx *ctx, uint64_t *seed, uint64_t *counter) {
    if (!ctx) return;
    if (seed) *seed = ctx->seed;
    if (counter) *counter = ctx->rng_counter;
}

void heed_ctx_set_rng_state(heed_ctx *ctx, uint64_t seed, uint64_t counter) {
    if (!ctx) return;
    ctx->seed = seed;
    ctx->rng_counter = counter;
}

uint64_t heed__next_stream(heed_ctx *ctx) { return ctx->stream_base + ctx->rng_counter++; }

/* ---------------------------------------------------------------- graph */

heed_graph *heed_graph_new(heed_ctx *ctx) {
    if (!ctx) return NULL;
    heed_graph *g = calloc(1, sizeof *g);
    if (!g) return heed_ctx_fail(ctx, HEED_ERR_NOMEM, "heed_graph_new: out of memory"), NULL;
    g->ctx = ctx;
    g->training = true;
    g->gen = 1;
    return g;
}

void heed_graph_free(heed_graph *g) {
    if (!g) return;
    heed_arena_free(&g->data);
    heed_headers_free(&g->headers);
    free(g);
}

/* Modes (training, anomaly, an open no-grad region) belong to the graph, not to the
 * step: they survive a reset, as PyTorch's torch.no_grad() survives a new batch. */
void heed_graph_reset(heed_graph *g) {
    if (!g) return;
    g->gen++;
    heed_arena_rewind(&g->data);
    heed_headers_release_all(&g->headers);
    g->tape = NULL;
    g->n_nodes = 0;
    g->backwards = 0;
    g->err = (heed_error){0};
}

heed_ctx *heed_graph_ctx(const heed_graph *g) { return g ? g->ctx : NULL; }
size_t heed_graph_bytes(const heed_graph *g) {
    return g ? g->data.reserved + (size_t)g->headers.live * HEED_HEADER_SLOT : 0;
}
size_t heed_graph_peak_bytes(const heed_graph *g) { return g ? g->data.peak : 0; }
int64_t heed_graph_nodes(const heed_graph *g) { return g ? g->n_nodes : 0; }
void heed_graph_set_training(heed_graph *g, bool training) {
    if (g) g->training = training;
}
bool heed_graph_training(const heed_graph *g) { return g && g->training; }
void heed_graph_set_anomaly(heed_graph *g, bool on) {
    if (g) g->anomaly = on;
}
void heed_no_grad_begin(heed_graph *g) {
    if (g) g->no_grad++;
}
void heed_no_grad_end(heed_graph *g) {
    if (g && g->no_grad > 0) g->no_grad--;
}

/* ---------------------------------------------------------------- allocation */

void *heed_graph_alloc(heed_graph *g, size_t bytes) {
    if (!heed_graph_ok(g)) return NULL;
    void *p = heed_arena_alloc(&g->data, bytes);
    if (!p) heed_graph_fail(g, HEED_ERR_NOMEM, "heed: out of memory allocating %zu bytes in the graph arena", bytes);
    return p;
}

void *heed__zalloc(heed_graph *g, size_t bytes) {
    void *p = heed_graph_alloc(g, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

static heed_tensor *new_header(heed_graph *g, const char *op, heed_dtype dt, int ndim, const int64_t *shape) {
    if (!heed_graph_ok(g)) return NULL;
    if (ndim < 0 || ndim > HEED_MAX_DIMS)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: %d dims (heed tensors have 0 to %d)", op, ndim, HEED_MAX_DIMS),
               NULL;
    if (dt != HEED_F32 && dt != HEED_F64)
        return heed_graph_fail(g, HEED_ERR_DTYPE, "%s: unknown dtype %d", op, (int)dt), NULL;
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: dim %d is %lld (dims must be >= 0)", op, i,
                                   (long long)shape[i]),
                   NULL;
        if (shape[i] > 0 && numel > ((int64_t)1 << 40) / shape[i])
            return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: shape too large (more than 2^40 elements)", op), NULL;
        numel *= shape[i];
    }
    heed_tensor *t = heed_headers_alloc(&g->headers, g);
    if (!t) return heed_graph_fail(g, HEED_ERR_NOMEM, "%s: out of memory for a tensor header", op), NULL;
    *t = (heed_tensor){.dtype = dt,
                       .ndim = ndim,
                       .numel = numel,
                       .gen = g->gen,
                       .graph = g,
                       .flags = g->no_grad ? HEED__MADE_NO_GRAD : 0};
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    return t;
}

heed_tensor *heed__new(heed_graph *g, const char *op, heed_dtype dt, int ndim, const int64_t *shape) {
    heed_tensor *t = new_header(g, op, dt, ndim, shape);
    if (!t) return NULL;
    t->data = heed_graph_alloc(g, (size_t)t->numel * heed_dtype_size(dt));
    return t->data ? t : NULL;
}

heed_tensor *heed__zeros(heed_graph *g, const char *op, heed_dtype dt, int ndim, const int64_t *shape) {
    heed_tensor *t = heed__new(g, op, dt, ndim, shape);
    if (t) memset(t->data, 0, (size_t)t->numel * heed_dtype_size(dt));
    return t;
}

heed_tensor *heed__view(heed_graph *g, const char *op, heed_tensor *x, int ndim, const int64_t *shape) {
    heed_tensor *t = new_header(g, op, x->dtype, ndim, shape);
    if (!t) return NULL;
    if (t->numel != x->numel)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: view of %s has %lld elements, not %lld", op, HEED_S(x),
                               (long long)t->numel, (long long)x->numel),
               NULL;
    t->data = x->data;
    return t;
}

/* ---------------------------------------------------------------- public tensors */

heed_shape heed_tensor_shape(const heed_tensor *t) {
    heed_shape s = {0};
    if (!heed__readable(t, "heed_tensor_shape")) return s;
    s.ndim = t->ndim;
    for (int i = 0; i < t->ndim; i++) s.d[i] = t->shape[i];
    return s;
}

double heed_get(const heed_tensor *t, int64_t i) {
    if (!heed__readable(t, "heed_get") || !t->data || i < 0 || i >= t->numel) return NAN;
    return t->dtype == HEED_F32 ? ((const float *)t->data)[i] : ((const double *)t->data)[i];
}

heed_tensor *heed_input(heed_graph *g, heed_dtype dtype, heed_shape shape, const void *data) {
    heed_tensor *t = heed__new(g, "heed_input", dtype, shape.ndim, shape.d);
    if (!t) return NULL;
    size_t bytes = (size_t)t->numel * heed_dtype_size(dtype);
    if (data) memcpy(t->data, data, bytes);
    else memset(t->data, 0, bytes);
    return t;
}

heed_tensor *heed_zeros(heed_graph *g, heed_dtype dtype, heed_shape shape) { return heed_input(g, dtype, shape, NULL); }

heed_tensor *heed_empty(heed_graph *g, heed_dtype dtype, heed_shape shape) {
    return heed__new(g, "heed_empty", dtype, shape.ndim, shape.d);
}

#define T float
#define FN(name) name##_f32
#include "graph.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "graph.c"
#undef T
#undef FN

heed_tensor *heed_full(heed_graph *g, heed_dtype dtype, heed_shape shape, double value) {
    heed_tensor *t = heed__new(g, "heed_full", dtype, shape.ndim, shape.d);
    if (!t) return NULL;
    if (dtype == HEED_F32) full_kernel_f32(t, value);
    else full_kernel_f64(t, value);
    return t;
}

heed_tensor *heed_scalar(heed_graph *g, heed_dtype dtype, double value) {
    return heed_full(g, dtype, HEED_SCALAR, value);
}

heed_tensor *heed_input_f64(heed_graph *g, heed_dtype dtype, heed_shape shape, const double *data) {
    heed_tensor *t = heed__new(g, "heed_input_f64", dtype, shape.ndim, shape.d);
    if (!t) return NULL;
    if (dtype == HEED_F32) input_f64_kernel_f32(t, data);
    else input_f64_kernel_f64(t, data);
    return t;
}

heed_tensor *heed_requires_grad(heed_tensor *t) {
    if (!heed__readable(t, "heed_requires_grad")) return NULL;
    if (t->graph && t->graph->err.code == HEED_OK && !t->node) t->flags |= HEED_REQUIRES_GRAD;
    return t;
}

heed_tensor *heed_detach(heed_graph *g, heed_tensor *x) {
    if (!heed_check_tensor(g, "heed_detach", x, "x")) return NULL;
    return heed__view(g, "heed_detach", x, x->ndim, x->shape);
}

/* ---------------------------------------------------------------- recording */

bool heed_graph_records(const heed_graph *g, int n, heed_tensor *const *in) {
    if (!heed_graph_ok(g) || g->no_grad || !in) return false;
    for (int i = 0; i < n; i++)
        if (in[i] && (in[i]->flags & HEED_REQUIRES_GRAD)) return true;
    return false;
}

heed_node *heed_record(heed_graph *g, const heed_op *op, int n_in, heed_tensor *const *in, int n_out,
                       heed_tensor *const *out) {
    if (!heed_graph_ok(g)) return NULL;
    if (!op || !op->name || !op->backward || n_in < 1 || n_out < 1 || !in || !out)
        return heed_graph_fail(
                   g, HEED_ERR_ARG,
                   "heed_record: op (with a name and a backward), %d inputs and %d outputs (at least one of "
                   "each) are required",
                   n_in, n_out),
               NULL;
    for (int i = 0; i < n_out; i++)
        if (!heed_check_tensor(g, op->name, out[i], "output")) return NULL;
    if (g->anomaly)
        for (int i = 0; i < n_out; i++)
            if (heed__has_nonfinite(out[i], out[i]->data)) {
                heed_graph_fail(g, HEED_ERR_NUMERIC,
                                "%s: output %d %s holds NaN or Inf (first non-finite value in forward)", op->name, i,
                                HEED_S(out[i]));
                return NULL;
            }
    if (!heed_graph_records(g, n_in, in)) return NULL;
    heed_node *n = heed_graph_alloc(g, sizeof *n + (size_t)(n_in + n_out) * sizeof(heed_tensor *));
    if (!n) return NULL;
    *n = (heed_node){.op = op, .n_in = n_in, .n_out = n_out, .prev = g->tape};
    n->in = (heed_tensor **)(n + 1);
    n->out = n->in + n_in;
    for (int i = 0; i < n_in; i++) n->in[i] = in[i];
    for (int i = 0; i < n_out; i++) {
        n->out[i] = out[i];
        out[i]->node = n;
        out[i]->flags |= HEED_REQUIRES_GRAD;
    }
    g->tape = n;
    g->n_nodes++;
    return n;
}

void *heed_grad_buffer(heed_graph *g, heed_tensor *t) {
    if (!heed_graph_ok(g) || !t || !(t->flags & HEED_REQUIRES_GRAD)) return NULL;
    if (!t->grad) t->grad = heed__zalloc(g, (size_t)t->numel * heed_dtype_size(t->dtype));
    return t->grad;
}

void heed_node_set_saved(heed_node *n, void *saved) {
    if (n) n->saved = saved;
}
void *heed_node_saved(const heed_node *n) { return n ? n->saved : NULL; }
heed_tensor *heed_node_input(const heed_node *n, int i) { return n && i >= 0 && i < n->n_in ? n->in[i] : NULL; }
heed_tensor *heed_node_output(const heed_node *n, int i) { return n && i >= 0 && i < n->n_out ? n->out[i] : NULL; }

bool heed__has_nonfinite(const heed_tensor *t, const void *buf) {
    if (!buf) return false;
    if (t->dtype == HEED_F32) return has_nonfinite_f32(buf, t->numel);
    return has_nonfinite_f64(buf, t->numel);
}

/* ---------------------------------------------------------------- marks */

/* What a rewind restores, kept in the data arena just before the mark's position (so it
 * survives rewinds to this mark) and found through the mark's sentinel header, which dies
 * like a tensor: at a reset, or at a rewind to an earlier mark. */
typedef struct {
    heed_arena_pos data;
    heed_headers_pos headers;
    heed_node *tape;
    int64_t n_nodes;
    uint64_t backwards;
} mark_record;

heed_graph_mark heed_graph_mark_now(heed_graph *g) {
    heed_graph_mark m = {NULL};
    mark_record *r = heed_graph_alloc(g, sizeof *r);
    heed_tensor *sentinel = r ? new_header(g, "heed_graph_mark_now", HEED_F32, 0, NULL) : NULL;
    if (!sentinel) return m;
    sentinel->flags |= HEED__MARK;
    sentinel->data = r;
    *r = (mark_record){heed_arena_tell(&g->data), heed_headers_tell(&g->headers), g->tape, g->n_nodes, g->backwards};
    m.at = sentinel;
    return m;
}

/* The mark's record, or NULL with the error recorded on g (an error there already stays). */
static const mark_record *mark_of(heed_graph *g, heed_graph_mark m, const char *op) {
    if (!heed_graph_ok(g)) return NULL;
    const heed_tensor *s = m.at;
    if (!s)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: the mark is empty (from heed_graph_mark_now on a graph in error?)",
                               op),
               NULL;
    if (s->graph != g && !heed_headers_own(&g->headers, s))
        return heed_graph_fail(g, HEED_ERR_STATE, "%s: the mark belongs to another graph", op), NULL;
    if (s->graph != g || s->gen != g->gen || !(s->flags & HEED__MARK))
        return heed_graph_fail(g, HEED_ERR_STATE,
                               "%s: the mark is dead (made before the last heed_graph_reset, or after the mark of an "
                               "earlier heed_graph_rewind)",
                               op),
               NULL;
    const mark_record *r = s->data;
    if (r->backwards != g->backwards)
        return heed_graph_fail(g, HEED_ERR_STATE,
                               "%s: a backward pass ran since the mark, and its gradients live in memory a rewind "
                               "reuses (heed_graph_reset instead)",
                               op),
               NULL;
    return r;
}

static void rewind_to(heed_graph *g, const mark_record *r) {
    heed_headers_kill_after(&g->headers, r->headers);
    heed_arena_seek(&g->data, r->data);
    g->tape = r->tape; /* nodes recorded after the mark are dropped */
    g->n_nodes = r->n_nodes;
}

heed_status heed_graph_rewind(heed_graph *g, heed_graph_mark m) {
    const mark_record *r = mark_of(g, m, "heed_graph_rewind");
    if (r) rewind_to(g, r);
    return heed_graph_status(g);
}

/* A tensor to carry over a rewind: where it was, and what its copy needs. */
typedef struct {
    heed_tensor *old, *now;
    heed_tensor head; /* old's header, which dies with the rewind: its dtype and shape */
    size_t bytes, at; /* its data's size and offset in the staging buffer */
} survivor;

/* The survivors' data go out to a staging buffer, since their new places right after the
 * mark may overlap where any of them lies now; the rewind; then each comes back as a new
 * leaf, in the order of first appearance in keep. */
heed_status heed_graph_rewind_keeping(heed_graph *g, heed_graph_mark m, heed_tensor **const *keep, int n_keep) {
    const char *op = "heed_graph_rewind_keeping";
    if (!heed_graph_ok(g)) return heed_graph_status(g);
    if (n_keep < 0 || (n_keep > 0 && !keep))
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: keep is %s with n_keep = %d (need n_keep >= 0, NULL only when 0)",
                               op, keep ? "given" : "NULL", n_keep);
    const mark_record *r = mark_of(g, m, op);
    if (!r) return heed_graph_status(g);
    for (int i = 0; i < n_keep; i++) {
        char name[32];
        snprintf(name, sizeof name, "keep[%d]", i);
        if (keep[i] && *keep[i] && !heed_check_tensor(g, op, *keep[i], name)) return heed_graph_status(g);
    }
    survivor *sv = malloc((size_t)(n_keep > 0 ? n_keep : 1) * sizeof *sv);
    if (!sv) return heed_graph_fail(g, HEED_ERR_NOMEM, "%s: out of memory for %d entries", op, n_keep);
    int n = 0;
    size_t total = 0;
    for (int i = 0; i < n_keep; i++) {
        heed_tensor *t = keep[i] ? *keep[i] : NULL;
        if (!t || t->graph != g || !heed_headers_after(&g->headers, r->headers, t)) continue; /* stays as is */
        bool seen = false;
        for (int j = 0; j < n && !seen; j++) seen = sv[j].old == t;
        if (seen) continue;
        sv[n++] = (survivor){t, NULL, *t, (size_t)t->numel * heed_dtype_size(t->dtype), total};
        total += sv[n - 1].bytes;
    }
    unsigned char *stage = malloc(total > 0 ? total : 1);
    if (!stage) {
        free(sv);
        return heed_graph_fail(g, HEED_ERR_NOMEM, "%s: out of memory staging %zu bytes of kept tensors", op, total);
    }
    for (int j = 0; j < n; j++)
        if (sv[j].bytes) memcpy(stage + sv[j].at, sv[j].old->data, sv[j].bytes);
    rewind_to(g, r);
    for (int j = 0; j < n; j++) {
        sv[j].now = heed__new(g, op, sv[j].head.dtype, sv[j].head.ndim, sv[j].head.shape);
        if (sv[j].now && sv[j].bytes) memcpy(sv[j].now->data, stage + sv[j].at, sv[j].bytes);
    }
    for (int i = 0; i < n_keep; i++)
        for (int j = 0; keep[i] && j < n; j++)
            if (*keep[i] == sv[j].old) *keep[i] = sv[j].now; /* NULL if memory ran out (the error is on g) */
    free(stage);
    free(sv);
    return heed_graph_status(g);
}

/* ---------------------------------------------------------------- backward */

static bool node_reached(const heed_node *n) {
    for (int i = 0; i < n->n_out; i++)
        if (n->out[i]->flags & HEED__REACHED) return true;
    return false;
}

/* Marks what a backward from t reaches: t, then the inputs of every node with a reached
 * output (graph tensors only: parameters are never outputs, and flags on them would race
 * between graphs). Fails, before any gradient moves, when a reached node ran in an
 * earlier backward: running it again would add its gradients a second time. */
static bool reach(heed_graph *g, const char *op, heed_tensor *t) {
    if (t->graph == g) t->flags |= HEED__REACHED;
    for (heed_node *n = t->node; n; n = n->prev) {
        if (!node_reached(n)) continue;
        if (n->consumed) {
            heed_graph_fail(
                g, HEED_ERR_STATE,
                "%s: this tape was already used by a backward pass (%s ran backward once); a second pass would "
                "add the same gradients again: heed_graph_reset and record the step again",
                op, n->op->name);
            return false;
        }
        for (int i = 0; i < n->n_in; i++)
            if (n->in[i] && n->in[i]->graph == g && (n->in[i]->flags & HEED_REQUIRES_GRAD))
                n->in[i]->flags |= HEED__REACHED;
    }
    return true;
}

static void unreach(heed_graph *g, heed_tensor *t) {
    if (t->graph == g) t->flags &= ~(uint32_t)HEED__REACHED;
    for (heed_node *n = t->node; n; n = n->prev) {
        for (int i = 0; i < n->n_out; i++) n->out[i]->flags &= ~(uint32_t)HEED__REACHED;
        for (int i = 0; i < n->n_in; i++)
            if (n->in[i] && n->in[i]->graph == g) n->in[i]->flags &= ~(uint32_t)HEED__REACHED;
    }
}

/* Adds the seed (or 1) into t's gradient and runs the tape back from t's node. Every
 * gradient adds: a leaf or parameter started from keeps what it had, as in PyTorch. */
static heed_status run_backward(heed_graph *g, const char *op, heed_tensor *t, const heed_tensor *seed) {
    g->backwards++;
    bool ok = reach(g, op, t);
    void *gt = ok ? heed_grad_buffer(g, t) : NULL;
    if (gt) {
        if (t->dtype == HEED_F32) run_backward_kernel_f32(gt, seed, t);
        else run_backward_kernel_f64(gt, seed, t);
    }

    g->in_backward = true;
    heed_ready_plan ready; /* parameters whose gradient is final after the node at position pos */
    heed__grad_ready_plan(g, t->node, &ready);
    int64_t pos = 0;
    for (heed_node *n = t->node; n && gt && heed_graph_ok(g); n = n->prev, heed__grad_ready_fire(g, &ready, pos++)) {
        if (!node_reached(n)) continue;
        for (int i = 0; i < n->n_out; i++)
            if (!heed_grad_buffer(g, n->out[i])) break;
        if (!heed_graph_ok(g)) break;
        n->consumed = true;
        n->op->backward(g, n);
        if (g->anomaly)
            for (int i = 0; i < n->n_in; i++)
                if (n->in[i] && n->in[i]->grad && heed__has_nonfinite(n->in[i], n->in[i]->grad)) {
                    heed_graph_fail(g, HEED_ERR_NUMERIC, "%s (backward): gradient of input %d %s holds NaN or Inf",
                                    n->op->name, i, HEED_S(n->in[i]));
                    break;
                }
    }
    g->in_backward = false;
    unreach(g, t);
    return g->err.code;
}

/* The message when `what` takes no gradient: most often it was computed under no-grad. */
static heed_status no_gradient(heed_graph *g, const char *op, const char *what, const heed_tensor *t) {
    if (t->flags & HEED__MADE_NO_GRAD)
        return heed_graph_fail(
            g, HEED_ERR_STATE,
            "%s: %s was computed inside a no-grad region (heed_no_grad_begin), where ops record nothing; "
            "compute it after heed_no_grad_end to get gradients",
            op, what);
    return heed_graph_fail(g, HEED_ERR_STATE,
                           "%s: %s does not depend on any parameter or input that needs a gradient%s", op, what,
                           g->no_grad ? " (a no-grad region is open)" : "");
}

heed_status heed_backward(heed_graph *g, heed_tensor *loss) {
    if (!heed_check_tensor(g, "heed_backward", loss, "loss")) return heed_graph_status(g);
    if (loss->numel != 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE,
                               "heed_backward: loss is %s; it must have one element (use heed_backward_with)",
                               HEED_S(loss));
    if (!(loss->flags & HEED_REQUIRES_GRAD)) return no_gradient(g, "heed_backward", "loss", loss);
    return run_backward(g, "heed_backward", loss, NULL);
}

heed_status heed_backward_with(heed_graph *g, heed_tensor *t, const heed_tensor *seed) {
    if (!heed_check_tensor(g, "heed_backward_with", t, "t") ||
        !heed__check_like(g, "heed_backward_with", seed, "seed", t))
        return heed_graph_status(g);
    bool same = seed->ndim == t->ndim;
    for (int i = 0; same && i < t->ndim; i++) same = seed->shape[i] == t->shape[i];
    if (!same)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "heed_backward_with: seed%s must have the shape of t%s", HEED_S(seed),
                               HEED_S(t));
    if (!(t->flags & HEED_REQUIRES_GRAD)) return no_gradient(g, "heed_backward_with", "t", t);
    return run_backward(g, "heed_backward_with", t, seed);
}

heed_tensor *heed_grad(heed_graph *g, heed_tensor *t) {
    if (!heed_check_tensor(g, "heed_grad", t, "t") || !t->grad) return NULL;
    heed_tensor *v = new_header(g, "heed_grad", t->dtype, t->ndim, t->shape);
    if (v) v->data = t->grad;
    return v;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

static void FN(full_kernel)(heed_tensor *t, double value) {
    T *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) p[i] = (T)value;
}

static void FN(input_f64_kernel)(heed_tensor *t, const double *data) {
    T *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) p[i] = data ? (T)data[i] : 0;
}

/* Whether p[n] holds a NaN or an infinity. */
static bool FN(has_nonfinite)(const T *p, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return true;
    return false;
}

static void FN(run_backward_kernel)(void *gt, const heed_tensor *seed, heed_tensor *t) {
    T *d = gt;
    if (!seed) d[0] += 1;
    else
        for (int64_t i = 0; i < t->numel; i++) d[i] += ((const T *)seed->data)[i];
}
#endif
