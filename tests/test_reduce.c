/* Reductions: sum, mean and max over each dim (with and without keepdim) and over
 * everything, f64 gradient checks, f32 against f64, bad input. */
#include "check.h"

static heed_ctx *ctx;

typedef struct {
    int op; /* 0 sum, 1 mean, 2 max */
    int dim;
    bool keepdim, all;
} reduce_case;

static heed_tensor *fn_reduce(heed_graph *g, heed_tensor **x, void *u) {
    const reduce_case *c = u;
    if (c->all) return c->op == 0 ? heed_sum_all(g, x[0]) : c->op == 1 ? heed_mean_all(g, x[0]) : heed_max_all(g, x[0]);
    return c->op == 0   ? heed_sum(g, x[0], c->dim, c->keepdim)
           : c->op == 1 ? heed_mean(g, x[0], c->dim, c->keepdim)
                        : heed_max(g, x[0], c->dim, c->keepdim);
}

static void gradchecks(void) {
    static const char *names[3] = {"sum", "mean", "max"};
    heed_gradcheck_input in[1] = {{HEED_SHAPE(3, 4, 5), NULL, false}};
    for (int op = 0; op < 3; op++) {
        for (int dim = -1; dim < 3; dim++)
            for (int keep = 0; keep < 2; keep++) {
                reduce_case c = {op, dim, keep, false};
                CHECK_GRAD(ctx, fn_reduce, &c, 1, in, NULL);
                char what[64];
                snprintf(what, sizeof what, "%s dim %d keepdim %d", names[op], dim, keep);
                check_f32_vs_f64(ctx, fn_reduce, &c, 1, in, 1e-5, what);
            }
        reduce_case c = {op, 0, false, true};
        CHECK_GRAD(ctx, fn_reduce, &c, 1, in, NULL);
        check_f32_vs_f64(ctx, fn_reduce, &c, 1, in, 1e-5, names[op]);
    }
}

static void known_values(void) {
    heed_graph *g = heed_graph_new(ctx);
    double v[6] = {1, 5, 3, 4, 2, 6}; /* [[1, 5, 3], [4, 2, 6]] */
    heed_tensor *x = heed_requires_grad(heed_input(g, HEED_F64, HEED_SHAPE(2, 3), v));
    heed_tensor *s = heed_sum(g, x, 1, false), *m = heed_mean(g, x, 0, true), *mx = heed_max(g, x, -1, false);
    CHECK(s && s->ndim == 1 && heed_get(s, 0) == 9 && heed_get(s, 1) == 12, "sum");
    CHECK(m && m->ndim == 2 && m->shape[0] == 1 && heed_get(m, 1) == 3.5, "mean");
    CHECK(mx && heed_get(mx, 0) == 5 && heed_get(mx, 1) == 6, "max");
    CHECK(heed_get(heed_max_all(g, x), 0) == 6 && heed_get(heed_mean_all(g, x), 0) == 3.5, "all");
    /* max sends its gradient to the first maximum only */
    heed_graph_reset(g);
    double t[4] = {2, 7, 7, 1};
    x = heed_requires_grad(heed_input(g, HEED_F64, HEED_SHAPE(4), t));
    CHECK(heed_backward(g, heed_max_all(g, x)) == HEED_OK, "%s", heed_graph_error(g));
    heed_tensor *gx = heed_grad(g, x);
    CHECK(heed_get(gx, 1) == 1 && heed_get(gx, 2) == 0, "first argmax");
    heed_graph_free(g);
}

static void bad_input(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    CHECK(!heed_sum(g, x, 2, false), "dim 2 of a 2-D tensor");
    CHECK_ERR(g, HEED_ERR_ARG, "out of range");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    CHECK(!heed_mean(g, x, -3, false), "dim -3 of a 2-D tensor");
    CHECK_ERR(g, HEED_ERR_ARG, "out of range");
    CHECK(!heed_max(g, NULL, 0, false), "NULL");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_max");
    heed_graph_free(g);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 3});
    RUN(gradchecks);
    RUN(known_values);
    RUN(bad_input);
    heed_ctx_free(ctx);
    return check_summary();
}
