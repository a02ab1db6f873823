/* heed_layernorm: values, gradients (x, gamma, beta in every combination), f32 vs f64,
 * threads, bad input. */
#include "check_grad32.h"
#include "heed/norm.h"

static heed_ctx *ctx;

static void known_values(void) {
    heed_graph *g = heed_graph_new(ctx);
    for (int d = 0; d < 2; d++) {
        heed_dtype dt = d ? HEED_F64 : HEED_F32;
        double tol = d ? 1e-13 : 1e-6;
        heed_graph_reset(g);
        /* row [1,2,3,4]: mean 2.5, biased var 1.25; row [5,5,5,5]: var 0 -> xhat 0, y = beta */
        double xv[8] = {1, 2, 3, 4, 5, 5, 5, 5}, gv[4] = {1, -2, 0.5, 3}, bv[4] = {0.25, 0, -1, 2};
        heed_tensor *x = heed_input_f64(g, dt, HEED_SHAPE(2, 4), xv);
        heed_tensor *ga = heed_input_f64(g, dt, HEED_SHAPE(4), gv), *be = heed_input_f64(g, dt, HEED_SHAPE(4), bv);
        heed_tensor *y0 = heed_layernorm(g, x, NULL, NULL, 0);
        heed_tensor *y1 = heed_layernorm(g, x, ga, be, 1e-5);
        CHECK(y0 && y1, "%s", heed_graph_error(g));
        for (int j = 0; j < 4; j++) {
            double xh = (xv[j] - 2.5) / sqrt(1.25);
            CHECK_CLOSE(heed_get(y0, j), xh, tol);
            CHECK_CLOSE(heed_get(y1, j), (xv[j] - 2.5) / sqrt(1.25 + 1e-5) * gv[j] + bv[j], tol);
            CHECK_CLOSE(heed_get(y1, 4 + j), bv[j], tol);
        }
        /* mean 0 and (biased) variance 1 per row, also for large offsets */
        heed_rng r = heed_rng_make(2, 0);
        double big[5 * 37];
        for (int i = 0; i < 5 * 37; i++) big[i] = 1000 + heed_rng_uniform(&r);
        heed_tensor *yb = heed_layernorm(g, heed_input_f64(g, dt, HEED_SHAPE(5, 37), big), NULL, NULL, 0);
        CHECK(yb != NULL, "%s", heed_graph_error(g));
        for (int row = 0; yb && row < 5; row++) {
            double s = 0, s2 = 0;
            for (int j = 0; j < 37; j++)
                s += heed_get(yb, row * 37 + j), s2 += heed_get(yb, row * 37 + j) * heed_get(yb, row * 37 + j);
            CHECK(fabs(s / 37) < (d ? 1e-10 : 1e-3), "row %d mean %g", row, s / 37);
            CHECK(fabs(s2 / 37 - 1) < (d ? 1e-10 : 1e-3), "row %d var %g", row, s2 / 37);
        }
    }
    heed_graph_free(g);
}

/* which: bit 0 gamma, bit 1 beta. Inputs are x, then gamma and/or beta. */
static heed_tensor *fn_ln(heed_graph *g, heed_tensor **x, void *u) {
    int which = (int)(intptr_t)u;
    heed_tensor *gamma = which & 1 ? x[1] : NULL, *beta = which & 2 ? x[(which & 1) + 1] : NULL;
    return heed_layernorm(g, x[0], gamma, beta, 1e-5);
}

static void gradients(void) {
    static const heed_shape shapes[] = {{2, {3, 5}}, {3, {2, 3, 7}}, {2, {4, 1}}, {1, {9}}, {2, {3, 17}}};
    for (int s = 0; s < 5; s++)
        for (int which = 0; which < 4; which++) {
            int64_t d = shapes[s].d[shapes[s].ndim - 1];
            heed_gradcheck_input in[3] = {{.shape = shapes[s]}, {.shape = HEED_SHAPE(d)}, {.shape = HEED_SHAPE(d)}};
            CHECK_GRAD(ctx, fn_ln, (void *)(intptr_t)which, 1 + (which & 1) + (which >> 1), in, NULL);
        }
    /* only gamma and beta take gradients (x is data) */
    heed_gradcheck_input nx[3] = {{.shape = HEED_SHAPE(6, 5), .no_grad = true},
                                  {.shape = HEED_SHAPE(5)},
                                  {.shape = HEED_SHAPE(5)}};
    CHECK_GRAD(ctx, fn_ln, (void *)3, 3, nx, NULL);
    /* a row with variance well below 1 (rstd large) */
    double small[2 * 6];
    for (int i = 0; i < 12; i++) small[i] = 0.5 + 0.01 * sin(i);
    heed_gradcheck_input sm[2] = {{.shape = HEED_SHAPE(2, 6), .data = small}, {.shape = HEED_SHAPE(6)}};
    CHECK_GRAD(ctx, fn_ln, (void *)1, 2, sm, NULL);
}

static void f32_vs_f64(void) {
    for (int which = 0; which < 4; which++) {
        /* many rows (threads, per-thread dgamma/dbeta partials), odd width (AVX2 tails) */
        heed_gradcheck_input in[3] = {{.shape = HEED_SHAPE(513, 37)},
                                      {.shape = HEED_SHAPE(37)},
                                      {.shape = HEED_SHAPE(37)}};
        check_f32_vs_f64_grad(ctx, fn_ln, (void *)(intptr_t)which, 1 + (which & 1) + (which >> 1), in, 1e-5,
                              "layernorm");
    }
    heed_gradcheck_input wide[3] = {{.shape = HEED_SHAPE(9, 1031)},
                                    {.shape = HEED_SHAPE(1031)},
                                    {.shape = HEED_SHAPE(1031)}};
    check_f32_vs_f64_grad(ctx, fn_ln, (void *)3, 3, wide, 1e-5, "layernorm wide");
    check_f32_vs_f64(ctx, fn_ln, (void *)3, 3, wide, 1e-5, "layernorm fwd");
}

/* dgamma sums over rows: the result must not depend on how rows are split over threads. */
static void gamma_grad_is_sum_over_rows(void) {
    heed_graph *g = heed_graph_new(ctx);
    enum { R = 1000, D = 24 };
    static double xv[R * D], dy[R * D];
    heed_rng r = heed_rng_make(9, 0);
    for (int i = 0; i < R * D; i++) xv[i] = heed_rng_uniform(&r), dy[i] = heed_rng_uniform(&r) - 0.5;
    heed_tensor *x = heed_input_f64(g, HEED_F64, HEED_SHAPE(R, D), xv);
    heed_tensor *ga = heed_requires_grad(heed_full(g, HEED_F64, HEED_SHAPE(D), 1.0));
    heed_tensor *be = heed_requires_grad(heed_zeros(g, HEED_F64, HEED_SHAPE(D)));
    heed_tensor *y = heed_layernorm(g, x, ga, be, 1e-5);
    CHECK(heed_backward_with(g, y, heed_input_f64(g, HEED_F64, HEED_SHAPE(R, D), dy)) == HEED_OK, "%s",
          heed_graph_error(g));
    heed_tensor *gg = heed_grad(g, ga), *gb = heed_grad(g, be);
    for (int j = 0; j < D; j++) {
        double sg = 0, sb = 0;
        for (int i = 0; i < R; i++)
            sg += dy[i * D + j] * heed_get(y, i * D + j), sb += dy[i * D + j]; /* y = xhat here */
        CHECK_CLOSE(heed_get(gg, j), sg, 1e-10);
        CHECK_CLOSE(heed_get(gb, j), sb, 1e-10);
    }
    heed_graph_free(g);
}

static void bad_input(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = heed_zeros(g, HEED_F32, HEED_SHAPE(4, 8));
    CHECK(heed_layernorm(g, NULL, NULL, NULL, 1e-5) == NULL, "NULL");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_layernorm: x is NULL");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(4, 8));
    CHECK(heed_layernorm(g, x, heed_zeros(g, HEED_F32, HEED_SHAPE(4)), NULL, 1e-5) == NULL, "gamma size");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_layernorm: gamma[4] must be [8] (the last dim of x[4,8])");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(4, 8));
    CHECK(heed_layernorm(g, x, NULL, heed_zeros(g, HEED_F32, HEED_SHAPE(1, 8)), 1e-5) == NULL, "beta 2-D");
    CHECK_ERR(g, HEED_ERR_SHAPE, "beta[1,8] must be [8]");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(4, 8));
    CHECK(heed_layernorm(g, x, heed_zeros(g, HEED_F64, HEED_SHAPE(8)), NULL, 1e-5) == NULL, "dtype");
    CHECK_ERR(g, HEED_ERR_DTYPE, "heed_layernorm");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(4, 8));
    CHECK(heed_layernorm(g, x, NULL, NULL, -1e-5) == NULL, "eps < 0");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_layernorm: eps = -1e-05");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(4, 8));
    CHECK(heed_layernorm(g, x, NULL, NULL, NAN) == NULL, "eps NaN");
    CHECK_ERR(g, HEED_ERR_ARG, "must be finite");
    CHECK(heed_layernorm(g, heed_scalar(g, HEED_F64, 2), NULL, NULL, 1e-5) == NULL, "scalar");
    CHECK_ERR(g, HEED_ERR_SHAPE, "scalar");
    heed_tensor *e = heed_layernorm(g, heed_zeros(g, HEED_F32, HEED_SHAPE(0, 8)), NULL, NULL, 1e-5);
    CHECK(e && e->numel == 0, "empty: %s", heed_graph_error(g));
    heed_graph_free(g);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 8});
    RUN(known_values);
    RUN(gradients);
    RUN(f32_vs_f64);
    RUN(gamma_grad_is_sum_over_rows);
    RUN(bad_input);
    heed_ctx_free(ctx);
    return check_summary();
}
