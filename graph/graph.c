/* The per-step graph: context, tensors, the tape and the backward pass over it.
 *
 * Tensor headers live in one of two header arenas, chosen by the parity of the step
 * (epoch). heed_graph_reset bumps the epoch and rewinds only the other header arena, so a
 * header of the previous step keeps its old epoch and using it is caught as an error
 * rather than reading reused memory. Data, grads and nodes share one arena. */
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
        ctx->threads = opts->threads;
    }
    if (ctx->threads > 0) omp_set_num_threads(ctx->threads);
    else ctx->threads = omp_get_max_threads();
    return ctx;
}

void heed_ctx_free(heed_ctx *ctx) { free(ctx); }
int heed_ctx_threads(const heed_ctx *ctx) { return ctx ? ctx->threads : 0; }

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
    if (!g) return NULL;
    g->ctx = ctx;
    g->training = true;
    g->epoch = 1;
    return g;
}

void heed_graph_free(heed_graph *g) {
    if (!g) return;
    heed_arena_free(&g->data);
    heed_arena_free(&g->headers[0]);
    heed_arena_free(&g->headers[1]);
    free(g);
}

void heed_graph_reset(heed_graph *g) {
    if (!g) return;
    g->epoch++;
    heed_arena_rewind(&g->data);
    heed_arena_rewind(&g->headers[g->epoch & 1]);
    g->tape = NULL;
    g->n_nodes = 0;
    g->no_grad = 0;
    g->err = (heed_error){0};
}

heed_ctx *heed_graph_ctx(const heed_graph *g) { return g ? g->ctx : NULL; }
size_t heed_graph_bytes(const heed_graph *g) {
    return g ? g->data.reserved + g->headers[0].reserved + g->headers[1].reserved : 0;
}
size_t heed_graph_peak_bytes(const heed_graph *g) { return g ? g->data.peak : 0; }
int64_t heed_graph_nodes(const heed_graph *g) { return g ? g->n_nodes : 0; }
void heed_graph_set_training(heed_graph *g, bool training) { if (g) g->training = training; }
bool heed_graph_training(const heed_graph *g) { return g && g->training; }
void heed_graph_set_anomaly(heed_graph *g, bool on) { if (g) g->anomaly = on; }
void heed_no_grad_begin(heed_graph *g) { if (g) g->no_grad++; }
void heed_no_grad_end(heed_graph *g) { if (g && g->no_grad > 0) g->no_grad--; }

/* ---------------------------------------------------------------- allocation */

void *heed__alloc(heed_graph *g, size_t bytes) {
    if (!heed__live(g)) return NULL;
    void *p = heed_arena_alloc(&g->data, bytes);
    if (!p) heed__fail(g, HEED_ERR_NOMEM, "heed: out of memory allocating %zu bytes in the graph arena", bytes);
    return p;
}

void *heed__zalloc(heed_graph *g, size_t bytes) {
    void *p = heed__alloc(g, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

static heed_tensor *new_header(heed_graph *g, const char *op, heed_dtype dt, int ndim, const int64_t *shape) {
    if (!heed__live(g)) return NULL;
    if (ndim < 0 || ndim > HEED_MAX_DIMS)
        return heed__fail(g, HEED_ERR_SHAPE, "%s: %d dims (heed tensors have 0 to %d)", op, ndim, HEED_MAX_DIMS),
               NULL;
    if (dt != HEED_F32 && dt != HEED_F64) return heed__fail(g, HEED_ERR_DTYPE, "%s: unknown dtype %d", op, (int)dt), NULL;
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return heed__fail(g, HEED_ERR_SHAPE, "%s: dim %d is %lld (dims must be >= 0)", op, i, (long long)shape[i]), NULL;
        if (shape[i] > 0 && numel > ((int64_t)1 << 40) / shape[i])
            return heed__fail(g, HEED_ERR_SHAPE, "%s: shape too large (more than 2^40 elements)", op), NULL;
        numel *= shape[i];
    }
    heed_tensor *t = heed_arena_alloc(&g->headers[g->epoch & 1], sizeof *t);
    if (!t) return heed__fail(g, HEED_ERR_NOMEM, "%s: out of memory for a tensor header", op), NULL;
    *t = (heed_tensor){.dtype = dt, .ndim = ndim, .numel = numel, .epoch = g->epoch, .graph = g};
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    return t;
}

heed_tensor *heed__new(heed_graph *g, const char *op, heed_dtype dt, int ndim, const int64_t *shape) {
    heed_tensor *t = new_header(g, op, dt, ndim, shape);
    if (!t) return NULL;
    t->data = heed__alloc(g, (size_t)t->numel * heed_dtype_size(dt));
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
        return heed__fail(g, HEED_ERR_SHAPE, "%s: view of %s has %lld elements, not %lld", op, HEED_S(x),
                          (long long)t->numel, (long long)x->numel),
               NULL;
    t->data = x->data;
    return t;
}

/* ---------------------------------------------------------------- public tensors */

heed_shape heed_tensor_shape(const heed_tensor *t) {
    heed_shape s = {0};
    if (!t) return s;
    s.ndim = t->ndim;
    for (int i = 0; i < t->ndim; i++) s.d[i] = t->shape[i];
    return s;
}

double heed_get(const heed_tensor *t, int64_t i) {
    if (!t || !t->data || i < 0 || i >= t->numel) return NAN;
    if (t->graph && t->epoch != t->graph->epoch) return NAN; /* from before a reset: its data is gone */
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

heed_tensor *heed_full(heed_graph *g, heed_dtype dtype, heed_shape shape, double value) {
    heed_tensor *t = heed__new(g, "heed_full", dtype, shape.ndim, shape.d);
    if (!t) return NULL;
    HEED_FOR_DTYPE(dtype, T, {
        T *p = t->data;
        for (int64_t i = 0; i < t->numel; i++) p[i] = (T)value;
    });
    return t;
}

heed_tensor *heed_scalar(heed_graph *g, heed_dtype dtype, double value) { return heed_full(g, dtype, HEED_SCALAR, value); }

heed_tensor *heed_input_f64(heed_graph *g, heed_dtype dtype, heed_shape shape, const double *data) {
    heed_tensor *t = heed__new(g, "heed_input_f64", dtype, shape.ndim, shape.d);
    if (!t) return NULL;
    HEED_FOR_DTYPE(dtype, T, {
        T *p = t->data;
        for (int64_t i = 0; i < t->numel; i++) p[i] = data ? (T)data[i] : 0;
    });
    return t;
}

heed_tensor *heed_requires_grad(heed_tensor *t) {
    if (t && t->graph && t->graph->err.code == HEED_OK && !t->node) t->flags |= HEED_REQUIRES_GRAD;
    return t;
}

heed_tensor *heed_detach(heed_graph *g, heed_tensor *x) {
    if (!heed__check(g, "heed_detach", x, "x")) return NULL;
    return heed__view(g, "heed_detach", x, x->ndim, x->shape);
}

/* ---------------------------------------------------------------- recording */

bool heed__wants_grad(const heed_graph *g, int n, heed_tensor *const *in) {
    if (g->no_grad) return false;
    for (int i = 0; i < n; i++)
        if (in[i] && (in[i]->flags & HEED_REQUIRES_GRAD)) return true;
    return false;
}

heed_node *heed__record(heed_graph *g, const heed_op *op, int n_in, heed_tensor *const *in, int n_out,
                        heed_tensor *const *out) {
    if (!heed__live(g)) return NULL;
    if (g->anomaly)
        for (int i = 0; i < n_out; i++)
            if (heed__has_nonfinite(out[i], out[i]->data)) {
                heed__fail(g, HEED_ERR_NUMERIC, "%s: output %d %s holds NaN or Inf (first non-finite value in forward)",
                           op->name, i, HEED_S(out[i]));
                return NULL;
            }
    if (!heed__wants_grad(g, n_in, in)) return NULL;
    heed_node *n = heed__alloc(g, sizeof *n + (size_t)(n_in + n_out) * sizeof(heed_tensor *));
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

void *heed__grad(heed_graph *g, heed_tensor *t) {
    if (!t || !(t->flags & HEED_REQUIRES_GRAD)) return NULL;
    if (!t->grad) t->grad = heed__zalloc(g, (size_t)t->numel * heed_dtype_size(t->dtype));
    return t->grad;
}

bool heed__has_nonfinite(const heed_tensor *t, const void *buf) {
    if (!buf) return false;
    bool bad = false;
    HEED_FOR_DTYPE(t->dtype, T, {
        const T *p = buf;
        for (int64_t i = 0; i < t->numel && !bad; i++) bad = !isfinite(p[i]);
    });
    return bad;
}

/* ---------------------------------------------------------------- backward */

static heed_status run_backward(heed_graph *g, heed_tensor *t, const heed_tensor *seed) {
    /* Gradients of intermediate tensors start from zero at every backward, so running
     * backward twice on one graph gives the same intermediate gradients (parameter
     * gradients accumulate, as in PyTorch). */
    for (heed_node *n = g->tape; n; n = n->prev)
        for (int i = 0; i < n->n_out; i++)
            if (n->out[i]->grad && n->out[i] != t) /* t's gradient is overwritten by the seed */
                memset(n->out[i]->grad, 0, (size_t)n->out[i]->numel * heed_dtype_size(n->out[i]->dtype));
    void *gt = heed__grad(g, t);
    if (!gt) return g->err.code;
    size_t es = heed_dtype_size(t->dtype);
    if (seed) memcpy(gt, seed->data, (size_t)t->numel * es);
    else if (t->dtype == HEED_F32) *(float *)gt = 1.0f;
    else *(double *)gt = 1.0;

    g->in_backward = true;
    heed_ready_plan ready; /* parameters whose gradient is final after the node at position pos */
    heed__grad_ready_plan(g, t->node, &ready);
    int64_t pos = 0;
    for (heed_node *n = t->node; n && heed__live(g); n = n->prev, heed__grad_ready_fire(g, &ready, pos++)) {
        bool any = false;
        for (int i = 0; i < n->n_out; i++) any |= n->out[i]->grad != NULL;
        if (!any) continue;
        for (int i = 0; i < n->n_out; i++)
            if (!heed__grad(g, n->out[i])) break;
        if (!heed__live(g)) break;
        n->op->backward(g, n);
        if (g->anomaly)
            for (int i = 0; i < n->n_in; i++)
                if (n->in[i]->grad && heed__has_nonfinite(n->in[i], n->in[i]->grad)) {
                    heed__fail(g, HEED_ERR_NUMERIC, "%s (backward): gradient of input %d %s holds NaN or Inf", n->op->name,
                               i, HEED_S(n->in[i]));
                    break;
                }
    }
    g->in_backward = false;
    return g->err.code;
}

heed_status heed_backward(heed_graph *g, heed_tensor *loss) {
    if (!heed__check(g, "heed_backward", loss, "loss")) return heed_graph_status(g);
    if (loss->numel != 1)
        return heed__fail(g, HEED_ERR_SHAPE, "heed_backward: loss is %s; it must have one element (use heed_backward_with)",
                          HEED_S(loss));
    if (!(loss->flags & HEED_REQUIRES_GRAD))
        return heed__fail(g, HEED_ERR_STATE, "heed_backward: loss does not depend on any parameter or input that needs a gradient");
    return run_backward(g, loss, NULL);
}

heed_status heed_backward_with(heed_graph *g, heed_tensor *t, const heed_tensor *seed) {
    if (!heed__check(g, "heed_backward_with", t, "t") || !heed__check_like(g, "heed_backward_with", seed, "seed", t))
        return heed_graph_status(g);
    if (seed->numel != t->numel)
        return heed__fail(g, HEED_ERR_SHAPE, "heed_backward_with: seed %s does not match t %s", HEED_S(seed), HEED_S(t));
    if (!(t->flags & HEED_REQUIRES_GRAD))
        return heed__fail(g, HEED_ERR_STATE, "heed_backward_with: t does not depend on anything that needs a gradient");
    return run_backward(g, t, seed);
}

heed_tensor *heed_grad(heed_graph *g, heed_tensor *t) {
    if (!heed__check(g, "heed_grad", t, "t") || !t->grad) return NULL;
    heed_tensor *v = new_header(g, "heed_grad", t->dtype, t->ndim, t->shape);
    if (v) v->data = t->grad;
    return v;
}
