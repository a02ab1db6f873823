/* Sticky errors: the first error of a step stays on the graph, later ops return NULL. */
#include "internal.h"

#include <stdio.h>

const char *heed_status_name(heed_status s) {
    switch (s) {
    case HEED_OK: return "ok";
    case HEED_ERR_ARG: return "bad argument";
    case HEED_ERR_SHAPE: return "shape mismatch";
    case HEED_ERR_DTYPE: return "dtype mismatch";
    case HEED_ERR_NOMEM: return "out of memory";
    case HEED_ERR_STATE: return "invalid state";
    case HEED_ERR_IO: return "i/o error";
    case HEED_ERR_FORMAT: return "bad file format";
    case HEED_ERR_NUMERIC: return "non-finite value";
    case HEED_ERR_GRADCHECK: return "gradient check failed";
    }
    return "unknown status";
}

static void set_error(heed_error *e, heed_status code, const char *fmt, va_list ap) {
    e->code = code;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
}

heed_status heed_graph_fail(heed_graph *g, heed_status code, const char *fmt, ...) {
    if (!g || g->err.code != HEED_OK) return code;
    va_list ap;
    va_start(ap, fmt);
    set_error(&g->err, code, fmt, ap);
    va_end(ap);
    return code;
}

heed_status heed_ctx_fail(heed_ctx *ctx, heed_status code, const char *fmt, ...) {
    if (!ctx) return code;
    va_list ap;
    va_start(ap, fmt);
    set_error(&ctx->err, code, fmt, ap);
    va_end(ap);
    return code;
}

void heed__ctx_clear(heed_ctx *ctx) {
    if (ctx) ctx->err = (heed_error){0};
}

const char *heed_ctx_error(const heed_ctx *ctx) { return ctx ? ctx->err.msg : "heed: ctx is NULL"; }
heed_status heed_graph_status(const heed_graph *g) { return g ? g->err.code : HEED_ERR_ARG; }
const char *heed_graph_error(const heed_graph *g) { return g ? g->err.msg : "heed: graph is NULL"; }

char *heed_shape_str(const heed_tensor *t, char *buf) {
    if (!t || !heed__readable(t, "heed_shape_str")) {
        snprintf(buf, 64, t ? "(dead tensor)" : "(null)");
        return buf;
    }
    return heed__shape_fmt(t->ndim, t->shape, buf);
}

char *heed__shape_fmt(int ndim, const int64_t *d, char *buf) {
    int n = snprintf(buf, 64, "[");
    for (int i = 0; i < ndim && i < HEED_MAX_DIMS && n < 60; i++)
        n += snprintf(buf + n, 64 - n, i ? ",%lld" : "%lld", (long long)d[i]);
    if (n < 63) snprintf(buf + n, 64 - n, "]");
    return buf;
}

bool heed_graph_ok(const heed_graph *g) { return g && g->err.code == HEED_OK; }

bool heed_check_tensor(heed_graph *g, const char *op, const heed_tensor *t, const char *name) {
    if (!heed_graph_ok(g)) return false;
    if (!op) op = "heed_check_tensor";
    if (!name) name = "tensor";
    if (!t) {
        heed_graph_fail(g, HEED_ERR_ARG, "%s: %s is NULL", op, name);
        return false;
    }
    /* A live graph tensor has g's generation; a dead one an older generation (or 0 after a
     * rewind), or reads as zeros when its page went back to the system (graph.c). */
    if (t->graph == g) {
        if (t->gen != g->gen) {
            heed_graph_fail(g, HEED_ERR_STATE, "%s: %s was " HEED_DEAD_RULE, op, name);
            return false;
        }
    } else if (t->graph) {
        heed_graph_fail(g, HEED_ERR_STATE, "%s: %s belongs to another graph", op, name);
        return false;
    } else if (!(t->flags & HEED_PARAM)) {
        if (heed_headers_own(&g->headers, t))
            heed_graph_fail(g, HEED_ERR_STATE, "%s: %s was " HEED_DEAD_RULE, op, name);
        else heed_graph_fail(g, HEED_ERR_STATE, "%s: %s is not a live tensor", op, name);
        return false;
    }
    if (t->dtype != HEED_F32 && t->dtype != HEED_F64) {
        heed_graph_fail(g, HEED_ERR_DTYPE, "%s: %s has an unknown dtype", op, name);
        return false;
    }
    return true;
}

bool heed__dead(const heed_tensor *t, heed_graph **owner) {
    heed_graph *g = NULL;
    if (t && t->graph) g = t->gen == t->graph->gen ? NULL : t->graph;
    else if (t && !(t->flags & HEED_PARAM)) g = heed_headers_owner(t); /* returned page: zeros */
    if (owner) *owner = g;
    return g != NULL;
}

bool heed__readable(const heed_tensor *t, const char *op) {
    heed_graph *g;
    if (heed__dead(t, &g)) {
        heed_graph_fail(g, HEED_ERR_STATE, "%s: the tensor was " HEED_DEAD_RULE, op);
        return false;
    }
    return t && (t->graph || (t->flags & HEED_PARAM)); /* else not a tensor of heed's */
}

bool heed__check_like(heed_graph *g, const char *op, const heed_tensor *t, const char *name, const heed_tensor *ref) {
    if (!heed_check_tensor(g, op, t, name)) return false;
    if (t->dtype != ref->dtype) {
        heed_graph_fail(g, HEED_ERR_DTYPE, "%s: %s is %s but the other operand is %s (dtypes must match)", op, name,
                        t->dtype == HEED_F32 ? "f32" : "f64", ref->dtype == HEED_F32 ? "f32" : "f64");
        return false;
    }
    return true;
}
