/* f32 against f64 for the backward pass too: the hand-written f32 kernels (AVX2) of an op
 * must give the gradients of its f64 reference, not only the same forward. */
#ifndef HEED_CHECK_GRAD32_H
#define HEED_CHECK_GRAD32_H

#include "check.h"

/* Runs fn on f32 and f64 copies of the inputs (random in (-1, 1) where data is NULL),
 * backward from one random cotangent, and requires the outputs and the gradient of every
 * input not marked no_grad to agree: max |v32 - v64| <= tol * max(1e-3, max |v64|)
 * (check_norm). Any number of inputs. Returns whether it passed. */
static inline bool check_f32_vs_f64_grad(heed_ctx *ctx, heed_gradcheck_fn fn, void *user, int n,
                                         const heed_gradcheck_input *inputs, double tol, const char *what) {
    heed_graph *g[2] = {heed_graph_new(ctx), heed_graph_new(ctx)};
    heed_tensor **in[2], *out[2];
    int before = check_failures;
    for (int v = 0; v < 2; v++) in[v] = calloc((size_t)(n > 0 ? n : 1), sizeof *in[v]);
    heed_dtype dts[2] = {HEED_F32, HEED_F64};
    uint64_t seed, counter;
    heed_ctx_rng_state(ctx, &seed, &counter);
    for (int v = 0; v < 2; v++) {
        heed_rng r = heed_rng_make(4321, 7);
        heed_ctx_set_rng_state(ctx, seed, counter); /* same dropout masks in both */
        for (int i = 0; i < n; i++) {
            int64_t numel = 1;
            for (int k = 0; k < inputs[i].shape.ndim; k++) numel *= inputs[i].shape.d[k];
            double *d = malloc((size_t)(numel ? numel : 1) * sizeof *d);
            for (int64_t k = 0; k < numel; k++)
                d[k] = inputs[i].data ? inputs[i].data[k] : 2 * heed_rng_uniform(&r) - 1;
            in[v][i] = heed_input_f64(g[v], dts[v], inputs[i].shape, d);
            if (!inputs[i].no_grad) heed_requires_grad(in[v][i]);
            free(d);
        }
        out[v] = fn(g[v], in[v], user);
        CHECK(out[v] != NULL, "%s: %s", what, heed_graph_error(g[v]));
        if (!out[v]) goto done;
        CHECK(out[v]->dtype == dts[v], "%s: run %d gave a result of dtype %d", what, v, (int)out[v]->dtype);
        double *c = malloc((size_t)(out[v]->numel ? out[v]->numel : 1) * sizeof *c);
        for (int64_t k = 0; k < out[v]->numel; k++) c[k] = 2 * heed_rng_uniform(&r) - 1;
        heed_tensor *cot = heed_input_f64(g[v], dts[v], heed_tensor_shape(out[v]), c);
        free(c);
        CHECK(heed_backward_with(g[v], out[v], cot) == HEED_OK, "%s: %s", what, heed_graph_error(g[v]));
    }
    check_norm cmp = check_norm_tensors(out[0], out[1], 1e-3);
    CHECK(check_norm_ok(cmp, tol), "%s: output f32 vs f64 max error %.3g, scale %.3g", what, cmp.err, cmp.scale);
    for (int i = 0; i < n; i++) {
        if (inputs[i].no_grad) continue;
        heed_tensor *a = heed_grad(g[0], in[0][i]), *b = heed_grad(g[1], in[1][i]);
        CHECK(a && b, "%s: no gradient for input %d", what, i);
        if (!a || !b) continue;
        cmp = check_norm_tensors(a, b, 1e-3);
        CHECK(check_norm_ok(cmp, tol), "%s: grad of input %d f32 vs f64 max error %.3g, scale %.3g", what, i, cmp.err,
              cmp.scale);
    }
done:
    heed_graph_free(g[0]);
    heed_graph_free(g[1]);
    free(in[0]), free(in[1]);
    return check_failures == before;
}

#endif
