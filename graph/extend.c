/* The public side of op writing (include/heed/extend.h): thin names over the graph's
 * internals, so user ops and heed's own ops record the same way. */
#include "internal.h"
#include "simd.h"

bool heed_graph_ok(const heed_graph *g) { return heed__live(g); }

bool heed_check_tensor(heed_graph *g, const char *op, const heed_tensor *t, const char *name) {
    return heed__check(g, op ? op : "heed_check_tensor", t, name ? name : "tensor");
}

heed_tensor *heed_empty(heed_graph *g, heed_dtype dtype, heed_shape shape) {
    return heed__new(g, "heed_empty", dtype, shape.ndim, shape.d);
}

void *heed_graph_alloc(heed_graph *g, size_t bytes) { return heed__alloc(g, bytes); }

bool heed_graph_records(const heed_graph *g, int n_in, heed_tensor *const *in) {
    return heed__live(g) && n_in >= 0 && in && heed__wants_grad(g, n_in, in);
}

heed_node *heed_record(heed_graph *g, const heed_op *op, int n_in, heed_tensor *const *in, int n_out,
                       heed_tensor *const *out) {
    if (!heed__live(g)) return NULL;
    if (!op || !op->name || !op->backward || n_in < 1 || n_out < 1 || !in || !out)
        return heed__fail(g, HEED_ERR_ARG, "heed_record: op (with a name and a backward), %d inputs and %d outputs "
                                           "(at least one of each) are required",
                          n_in, n_out),
               NULL;
    for (int i = 0; i < n_out; i++)
        if (!heed__check(g, op->name, out[i], "output")) return NULL;
    return heed__record(g, op, n_in, in, n_out, out);
}

void heed_node_set_saved(heed_node *n, void *saved) {
    if (n) n->saved = saved;
}
void *heed_node_saved(const heed_node *n) { return n ? n->saved : NULL; }
heed_tensor *heed_node_input(const heed_node *n, int i) { return n && i >= 0 && i < n->n_in ? n->in[i] : NULL; }
heed_tensor *heed_node_output(const heed_node *n, int i) { return n && i >= 0 && i < n->n_out ? n->out[i] : NULL; }

void *heed_grad_buffer(heed_graph *g, heed_tensor *t) { return heed__live(g) ? heed__grad(g, t) : NULL; }

double heed_scalar_sigmoid(double x) { return heed__sigmoid1(x); }
double heed_scalar_softplus(double x) { return heed__softplus1(x); }

heed_status heed_ctx_fail(heed_ctx *ctx, heed_status code, const char *fmt, ...) {
    char msg[HEED_ERRMSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return heed__ctx_fail(ctx, code, "%s", msg);
}

heed_tensor *heed_param_prefixed(heed_params *P, const char *prefix, const char *name, heed_shape shape,
                                 heed_init init) {
    return heed__param_in(P, "heed_param_prefixed", prefix ? prefix : "", name, shape, init);
}
