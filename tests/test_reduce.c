/* Reductions: sum, mean and max over each dim (with and without keepdim) and over
 * everything, and cumsum along each dim: f64 gradient checks, f32 against f64, known
 * values, bad input. */
#include "check.h"
#include "heed/elementwise.h"
#include "heed/reduce.h"

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

static heed_tensor *fn_cumsum(heed_graph *g, heed_tensor **x, void *u) { return heed_cumsum(g, x[0], *(int *)u); }

static void cumsum_grads(void) {
    heed_gradcheck_input in[1] = {{HEED_SHAPE(3, 4, 5), NULL, false}};
    for (int dim = -3; dim < 3; dim++) {
        CHECK_GRAD(ctx, fn_cumsum, &dim, 1, in, NULL);
        char what[32];
        snprintf(what, sizeof what, "cumsum dim %d", dim);
        check_f32_vs_f64(ctx, fn_cumsum, &dim, 1, in, 1e-5, what);
    }
    heed_gradcheck_input scalar[1] = {{HEED_SCALAR, NULL, false}};
    int dim = -1;
    CHECK_GRAD(ctx, fn_cumsum, &dim, 1, scalar, NULL);
}

/* Values from torch.cumsum (PyTorch 1.13) on [[1, 5, 3], [4, 2, 6]]; the gradient is that
 * of sum(cumsum(x, 1) * w) with w = [[1, 2, 3], [4, 5, 6]]. */
static void cumsum_values(void) {
    heed_graph *g = heed_graph_new(ctx);
    double v[6] = {1, 5, 3, 4, 2, 6}, w[6] = {1, 2, 3, 4, 5, 6};
    double along1[6] = {1, 6, 9, 4, 6, 12}, along0[6] = {1, 5, 3, 5, 7, 9}, grad[6] = {6, 5, 3, 15, 11, 6};
    heed_tensor *x = heed_requires_grad(heed_input(g, HEED_F64, HEED_SHAPE(2, 3), v));
    heed_tensor *y1 = heed_cumsum(g, x, 1), *y0 = heed_cumsum(g, x, -2);
    CHECK(y1 && y0 && y1->ndim == 2 && y1->shape[1] == 3, "%s", heed_graph_error(g));
    for (int i = 0; i < 6; i++) {
        CHECK(heed_get(y1, i) == along1[i], "cumsum dim 1 [%d] = %g", i, heed_get(y1, i));
        CHECK(heed_get(y0, i) == along0[i], "cumsum dim -2 [%d] = %g", i, heed_get(y0, i));
    }
    heed_tensor *loss = heed_sum_all(g, heed_mul(g, y1, heed_input(g, HEED_F64, HEED_SHAPE(2, 3), w)));
    CHECK(heed_backward(g, loss) == HEED_OK, "%s", heed_graph_error(g));
    heed_tensor *gx = heed_grad(g, x);
    for (int i = 0; i < 6; i++)
        CHECK(gx && heed_get(gx, i) == grad[i], "grad [%d] = %g", i, gx ? heed_get(gx, i) : NAN);
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
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    CHECK(!heed_cumsum(g, x, 2), "cumsum dim 2 of a 2-D tensor");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_cumsum: dim 2 out of range for x[2,3]");
    x = heed_zeros(g, HEED_F64, HEED_SCALAR);
    CHECK(!heed_cumsum(g, x, 1), "cumsum dim 1 of a 0-d tensor");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_cumsum: dim 1 out of range");
    CHECK(!heed_cumsum(g, NULL, 0), "cumsum of NULL");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_cumsum");
    heed_graph_free(g);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 3});
    RUN(gradchecks);
    RUN(known_values);
    RUN(cumsum_grads);
    RUN(cumsum_values);
    RUN(bad_input);
    heed_ctx_free(ctx);
    return check_summary();
}
