/* heed_softmax and heed_log_softmax: values, masking, gradients, f32 vs f64, bad input. */
#include "check_grad32.h"
#include "heed/elementwise.h"
#include "heed/reduce.h"
#include "heed/softmax.h"

static heed_ctx *ctx;

static void known_values(void) {
    heed_graph *g = heed_graph_new(ctx);
    for (int d = 0; d < 2; d++) {
        heed_dtype dt = d ? HEED_F64 : HEED_F32;
        double tol = d ? 1e-14 : 1e-6;
        heed_graph_reset(g);
        /* softmax([0, ln 2, ln 3]) = [1, 2, 3] / 6; softmax([1000, 1001, 1002]) = [1, e, e^2] / (1 + e + e^2)
         * (no overflow: the row max is subtracted) */
        double xv[6] = {0, log(2.0), log(3.0), 1000, 1001, 1002};
        heed_tensor *x = heed_input_f64(g, dt, HEED_SHAPE(2, 3), xv);
        heed_tensor *y = heed_softmax(g, x), *ly = heed_log_softmax(g, x);
        CHECK(y && ly, "%s", heed_graph_error(g));
        double z = 1 + exp(1.0) + exp(2.0);
        for (int j = 0; j < 3; j++) {
            CHECK_CLOSE(heed_get(y, j), (j + 1) / 6.0, tol);
            CHECK_CLOSE(heed_get(ly, j), log((j + 1) / 6.0), tol);
            CHECK_CLOSE(heed_get(y, 3 + j), exp((double)j) / z, tol);
            CHECK_CLOSE(heed_get(ly, 3 + j), j - log(z), tol);
        }
        /* -inf masks an entry; a fully masked row gives 0 from both ops */
        double mv[8] = {1, -INFINITY, 1, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
        heed_tensor *m = heed_input_f64(g, dt, HEED_SHAPE(2, 4), mv);
        heed_tensor *my = heed_softmax(g, m), *mly = heed_log_softmax(g, m);
        CHECK(my && mly, "%s", heed_graph_error(g));
        double want[4] = {0.5, 0, 0.5, 0};
        for (int j = 0; j < 4; j++) {
            CHECK_CLOSE(heed_get(my, j), want[j], tol);
            CHECK(heed_get(my, 4 + j) == 0 && heed_get(mly, 4 + j) == 0, "fully masked row must be 0");
        }
        CHECK(heed_get(mly, 1) == -INFINITY && heed_get(mly, 3) == -INFINITY, "masked log-prob is -inf");
        CHECK_CLOSE(heed_get(mly, 0), log(0.5), tol);
        /* a NaN is not hidden by the fully-masked rule */
        double nv[3] = {-INFINITY, NAN, -INFINITY};
        heed_tensor *ny = heed_softmax(g, heed_input_f64(g, dt, HEED_SHAPE(3), nv));
        CHECK(ny && isnan(heed_get(ny, 0)), "NaN must propagate");
    }
    heed_graph_free(g);
}

/* Every row length 1..40 in f32 (the AVX2 kernel's tails) against the f64 kernel. */
static void f32_row_lengths(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_rng r = heed_rng_make(3, 0);
    for (int n = 1; n <= 40; n++) {
        heed_graph_reset(g);
        double xv[3 * 40];
        for (int i = 0; i < 3 * n; i++) xv[i] = 8 * heed_rng_uniform(&r) - 4;
        if (n > 2) xv[n + 1] = -INFINITY; /* one masked entry in row 1 */
        for (int lg = 0; lg < 2; lg++) {
            heed_tensor *a = heed_input_f64(g, HEED_F32, HEED_SHAPE(3, n), xv);
            heed_tensor *b = heed_input_f64(g, HEED_F64, HEED_SHAPE(3, n), xv);
            heed_tensor *ya = lg ? heed_log_softmax(g, a) : heed_softmax(g, a);
            heed_tensor *yb = lg ? heed_log_softmax(g, b) : heed_softmax(g, b);
            CHECK(ya && yb, "%s", heed_graph_error(g));
            if (!ya || !yb) continue;
            for (int i = 0; i < 3 * n; i++) {
                double u = heed_get(ya, i), v = heed_get(yb, i);
                CHECK(check_close(u, v, 2e-6), "n=%d log=%d [%d]: %g vs %g", n, lg, i, u, v);
            }
        }
    }
    heed_graph_free(g);
}

static heed_tensor *fn_softmax(heed_graph *g, heed_tensor **x, void *u) {
    return u ? heed_log_softmax(g, x[0]) : heed_softmax(g, x[0]);
}
/* log_softmax with masked entries gives -inf, so check it inside softmax(log_softmax(x)):
 * the masked outputs feed a masked softmax input and the composition stays finite. */
static heed_tensor *fn_softmax_of_log(heed_graph *g, heed_tensor **x, void *u) {
    (void)u;
    return heed_softmax(g, heed_log_softmax(g, x[0]));
}
/* Gradients from two uses of one input add up. */
static heed_tensor *fn_two_uses(heed_graph *g, heed_tensor **x, void *u) {
    (void)u;
    return heed_add(g, heed_softmax(g, x[0]), heed_log_softmax(g, heed_mul(g, x[0], x[1])));
}

static void gradients(void) {
    static const heed_shape shapes[] = {{2, {3, 5}}, {3, {2, 3, 7}}, {2, {4, 1}}, {1, {9}}, {4, {2, 1, 2, 11}}};
    for (int s = 0; s < 5; s++)
        for (int lg = 0; lg < 2; lg++) {
            heed_gradcheck_input in[1] = {{.shape = shapes[s]}};
            CHECK_GRAD(ctx, fn_softmax, (void *)(intptr_t)lg, 1, in, NULL);
        }
    /* masked entries and a fully masked row */
    double xm[4 * 6];
    heed_rng r = heed_rng_make(11, 0);
    for (int i = 0; i < 24; i++) xm[i] = 2 * heed_rng_uniform(&r) - 1;
    xm[1] = xm[4] = xm[13] = -INFINITY;
    for (int j = 0; j < 6; j++) xm[18 + j] = -INFINITY; /* row 3 */
    heed_gradcheck_input m[1] = {{.shape = HEED_SHAPE(4, 6), .data = xm}};
    CHECK_GRAD(ctx, fn_softmax, NULL, 1, m, NULL);
    CHECK_GRAD(ctx, fn_softmax_of_log, NULL, 1, m, NULL);
    /* log_softmax alone: only the fully masked row (its output 0 is finite) */
    double xf[3 * 5];
    for (int i = 0; i < 15; i++) xf[i] = i < 5 ? -INFINITY : 2 * heed_rng_uniform(&r) - 1;
    heed_gradcheck_input f[1] = {{.shape = HEED_SHAPE(3, 5), .data = xf}};
    CHECK_GRAD(ctx, fn_softmax, (void *)1, 1, f, NULL);
    /* and the gradient of a fully masked row is exactly zero */
    heed_graph *g = heed_graph_new(ctx);
    for (int lg = 0; lg < 2; lg++) {
        heed_graph_reset(g);
        heed_tensor *x = heed_requires_grad(heed_input_f64(g, HEED_F64, HEED_SHAPE(3, 5), xf));
        heed_tensor *y = lg ? heed_log_softmax(g, x) : heed_softmax(g, x);
        heed_tensor *w = heed_input_f64(g, HEED_F64, HEED_SHAPE(3, 5), xm); /* finite weights in rows 0-2 */
        for (int i = 0; i < 15; i++) ((double *)w->data)[i] = 1 + i;
        CHECK(heed_backward(g, heed_sum_all(g, heed_mul(g, y, w))) == HEED_OK, "%s", heed_graph_error(g));
        heed_tensor *gx = heed_grad(g, x);
        for (int j = 0; j < 5; j++) CHECK(gx && heed_get(gx, j) == 0, "masked row grad %d", j);
    }
    heed_graph_free(g);
    heed_gradcheck_input two[2] = {{.shape = HEED_SHAPE(3, 4)}, {.shape = HEED_SHAPE(4)}};
    CHECK_GRAD(ctx, fn_two_uses, NULL, 2, two, NULL);
}

static void f32_vs_f64(void) {
    /* odd sizes, enough rows to run threaded, masked entries, one fully masked row */
    static double xm[301 * 37];
    heed_rng r = heed_rng_make(5, 1);
    for (int i = 0; i < 301 * 37; i++) xm[i] = 6 * heed_rng_uniform(&r) - 3;
    for (int i = 0; i < 301 * 37; i += 13) xm[i] = -INFINITY;
    for (int j = 0; j < 37; j++) xm[37 * 100 + j] = -INFINITY;
    heed_gradcheck_input in[1] = {{.shape = HEED_SHAPE(301, 37), .data = xm}};
    check_f32_vs_f64_grad(ctx, fn_softmax, NULL, 1, in, 1e-5, "softmax");
    check_f32_vs_f64_grad(ctx, fn_softmax, (void *)1, 1, in, 1e-5, "log_softmax");
    heed_gradcheck_input big[1] = {{.shape = HEED_SHAPE(64, 1029)}};
    check_f32_vs_f64_grad(ctx, fn_softmax, NULL, 1, big, 1e-5, "softmax wide");
    check_f32_vs_f64_grad(ctx, fn_softmax, (void *)1, 1, big, 1e-5, "log_softmax wide");
    check_f32_vs_f64(ctx, fn_softmax, NULL, 1, in, 1e-5, "softmax fwd");
}

/* Shift invariance in f32 (issue #10): adding 0, 1e3 or 1e4 to every entry changes no
 * output and no gradient, and f32 keeps that to f32 precision (1e-6 of the largest
 * value) on both kernels: rows of 3 (the vector kernels' tails) and of 37 (their 8-wide
 * loops). The inputs are rounded to f32 first, so the f64 run sees the same numbers. The
 * kernels subtract the f32 row max (exact) and then log s (small), never a rounded
 * log-sum-exp. */
static void large_offsets(void) {
    static const double offsets[3] = {0, 1e3, 1e4};
    heed_rng r = heed_rng_make(17, 0);
    double base[4 * 37];
    for (int i = 0; i < 4 * 37; i++) base[i] = 6 * heed_rng_uniform(&r) - 3;
    for (int o = 0; o < 3; o++)
        for (int w = 0; w < 2; w++) {
            int n = w ? 37 : 3;
            double x[4 * 37];
            for (int i = 0; i < 4 * n; i++) x[i] = (float)(base[i] + offsets[o]);
            heed_gradcheck_input in[1] = {{.shape = HEED_SHAPE(4, n), .data = x}};
            for (int lg = 0; lg < 2; lg++) {
                char what[64];
                snprintf(what, sizeof what, "%s [4,%d] offset %g", lg ? "log_softmax" : "softmax", n, offsets[o]);
                check_f32_vs_f64_grad(ctx, fn_softmax, (void *)(intptr_t)lg, 1, in, 1e-6, what);
            }
        }
}

static void bad_input(void) {
    heed_graph *g = heed_graph_new(ctx);
    CHECK(heed_softmax(g, NULL) == NULL, "NULL");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_softmax: x is NULL");
    CHECK(heed_log_softmax(g, heed_scalar(g, HEED_F32, 1)) == NULL, "scalar");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_log_softmax: x[] is a scalar");
    CHECK(heed_softmax(NULL, NULL) == NULL, "NULL graph");
    /* empty rows and zero rows are fine */
    heed_tensor *e = heed_softmax(g, heed_zeros(g, HEED_F32, HEED_SHAPE(0, 5)));
    heed_tensor *e2 = heed_log_softmax(g, heed_zeros(g, HEED_F64, HEED_SHAPE(3, 0)));
    CHECK(e && e2 && e->numel == 0 && e2->numel == 0, "%s", heed_graph_error(g));
    heed_graph_free(g);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 7});
    RUN(known_values);
    RUN(f32_row_lengths);
    RUN(gradients);
    RUN(f32_vs_f64);
    RUN(large_offsets);
    RUN(bad_input);
    heed_ctx_free(ctx);
    return check_summary();
}
