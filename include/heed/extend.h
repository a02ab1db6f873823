/* heed: writing ops and layers of your own, with the same calls heed's ops use. Part of
 * the public API: <heed.h> includes every part; a file may include just the parts it
 * uses.
 *
 * An op is a forward function that computes its outputs at once and records a node on
 * the tape, plus a backward that adds into its inputs' gradients (the spirit of
 * torch.autograd.Function). heed_gradcheck works on it unchanged. The pattern:
 *
 *   static void softsign_backward(heed_graph *g, heed_node *n) {
 *       heed_tensor *x = heed_node_input(n, 0), *y = heed_node_output(n, 0);
 *       double *dx = heed_grad_buffer(g, x);            // NULL: x takes no gradient
 *       const double *xv = x->data, *dy = y->grad;
 *       for (int64_t i = 0; dx && i < x->numel; i++) {  // y = x/(1+|x|), y' = 1/(1+|x|)^2
 *           double d = 1 + fabs(xv[i]);
 *           dx[i] += dy[i] / (d * d);
 *       }
 *   }
 *   static const heed_op softsign_op = {"softsign", softsign_backward};
 *
 *   heed_tensor *softsign(heed_graph *g, heed_tensor *x) {
 *       if (!heed_check_tensor(g, "softsign", x, "x")) return NULL;
 *       heed_tensor *y = heed_empty(g, x->dtype, heed_tensor_shape(x));
 *       if (!y) return NULL;
 *       ... y = x / (1 + |x|) ...
 *       heed_record(g, &softsign_op, 1, &x, 1, &y);
 *       return heed_graph_ok(g) ? y : NULL;
 *   }
 *
 * Rules: backward ADDS into gradient buffers (a tensor used twice gets both parts); the
 * outputs' gradients (out->grad) are always allocated when backward runs; values saved for
 * backward live in the graph (heed_graph_alloc) and are attached with heed_node_set_saved;
 * an op never changes its inputs. For f32 and f64 from one source, write the loops once
 * in the #else part of an #ifndef T file that includes itself once per dtype with T and
 * FN(name) defined, as heed's own kernels do (docs/design.md, "Kernels";
 * tests/test_custom_op.c does it for a user's op). docs/guide.md, "Your own op", builds
 * one end to end. */
#ifndef HEED_API_EXTEND_H
#define HEED_API_EXTEND_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- your own ops */

/* An op's identity on the tape: its name (in errors and anomaly reports) and its
 * backward, which adds into the gradients of the node's inputs from those of its
 * outputs. Define one as a static const and pass its address to heed_record. */
typedef struct heed_op {
    const char *name;
    void (*backward)(heed_graph *g, heed_node *n);
} heed_op;

/* False when g is NULL or already holds an error: an op then returns NULL at once. */
bool heed_graph_ok(const heed_graph *g);
/* True when g is usable and t is a live tensor of g (or a parameter): not NULL, not from
 * before a reset, not from another graph. Otherwise records "op: name is ..." on g. */
bool heed_check_tensor(heed_graph *g, const char *op, const heed_tensor *t, const char *name);
/* A new tensor on g with uninitialised data (heed_zeros for zeros). */
heed_tensor *heed_empty(heed_graph *g, heed_dtype dtype, heed_shape shape);
/* bytes of 64-byte-aligned memory that lives until the next reset (values saved for
 * backward). NULL with HEED_ERR_NOMEM on g when it cannot be had. */
void *heed_graph_alloc(heed_graph *g, size_t bytes);
/* True when an op with these inputs will be recorded (some input needs a gradient and no
 * no-grad region is open): an op saves values for backward only then. */
bool heed_graph_records(const heed_graph *g, int n_in, heed_tensor *const *in);
/* Appends a node for op to the tape when heed_graph_records says so (and checks the
 * outputs in anomaly mode); marks the outputs as needing gradients. Returns the node, or
 * NULL when nothing was recorded or on error (then on g). */
heed_node *heed_record(heed_graph *g, const heed_op *op, int n_in, heed_tensor *const *in, int n_out,
                       heed_tensor *const *out);
void heed_node_set_saved(heed_node *n, void *saved);
void *heed_node_saved(const heed_node *n);
heed_tensor *heed_node_input(const heed_node *n, int i);  /* NULL past the last */
heed_tensor *heed_node_output(const heed_node *n, int i); /* NULL past the last */
/* In backward: the gradient buffer of t (same dtype and numel, zeroed on first use), or
 * NULL when t takes no gradient. Add into it. */
void *heed_grad_buffer(heed_graph *g, heed_tensor *t);
/* Scalar math for backward passes of your own, the formulas heed's sigmoid, softplus and
 * losses use: sigmoid(x) = 1/(1 + e^-x) and softplus(x) = log(1 + e^x) = max(x, 0) +
 * log1p(e^-|x|), both written with e^-|x| <= 1, so they never overflow (sigmoid(-1000) = 0,
 * softplus(1000) = 1000) and keep full precision in the tails. NaN gives NaN. */
double heed_scalar_sigmoid(double x);
double heed_scalar_softplus(double x);

/* ---------------------------------------------------------------- your own layers */

/* Records an error outside any graph (declaring parameters, loading), printf-style, so
 * heed_ctx_error(ctx) reads it; returns code. */
heed_status heed_ctx_fail(heed_ctx *ctx, heed_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* heed_param named "prefix.name" ("name" when prefix is "" or NULL): how a layer names the
 * parameters it declares. */
heed_tensor *heed_param_prefixed(heed_params *P, const char *prefix, const char *name, heed_shape shape,
                                 heed_init init);

#ifdef __cplusplus
}
#endif
#endif
