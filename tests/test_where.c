/* where and masked_fill: gradient checks with three-way broadcasting, masks of the other
 * dtype, -INFINITY fills, the parallel paths, bad input. */
#include "check.h"
#include "heed/elementwise.h"
#include "heed/reduce.h"

static heed_ctx *ctx;

/* mask [2,1,4] (0/1), a [3,1], b [1,3,4] -> [2,3,4]: every operand broadcasts somewhere. */
static const double mask_214[8] = {1, 0, 0, 1, 0, 1, 1, 0};

static heed_tensor *fn_where(heed_graph *g, heed_tensor **x, void *u) {
    (void)u;
    return heed_where(g, x[0], x[1], x[2]);
}

/* The mask as f32 while a and b are f64 (or the other way round for the f32 run). */
static heed_tensor *fn_where_other_mask(heed_graph *g, heed_tensor **x, void *u) {
    (void)u;
    heed_dtype md = x[0]->dtype == HEED_F64 ? HEED_F32 : HEED_F64;
    heed_tensor *m = heed_input_f64(g, md, HEED_SHAPE(2, 1, 4), mask_214);
    return heed_where(g, m, x[0], x[1]);
}

static heed_tensor *fn_masked_fill(heed_graph *g, heed_tensor **x, void *u) {
    double v = *(double *)u;
    return heed_masked_fill(g, x[0], x[1], v);
}

static void gradchecks(void) {
    heed_gradcheck_input w[3] = {{HEED_SHAPE(2, 1, 4), mask_214, true},
                                 {HEED_SHAPE(3, 1), NULL, false},
                                 {HEED_SHAPE(1, 3, 4), NULL, false}};
    CHECK_GRAD(ctx, fn_where, NULL, 3, w, NULL);
    check_f32_vs_f64(ctx, fn_where, NULL, 3, w, 1e-5, "where");
    /* a full-size, b a scalar */
    heed_gradcheck_input w2[3] = {{HEED_SHAPE(2, 1, 4), mask_214, true},
                                  {HEED_SHAPE(2, 3, 4), NULL, false},
                                  {HEED_SHAPE(1), NULL, false}};
    CHECK_GRAD(ctx, fn_where, NULL, 3, w2, NULL);
    heed_gradcheck_input w3[2] = {{HEED_SHAPE(5, 2, 3, 4), NULL, false}, {HEED_SHAPE(4), NULL, false}};
    CHECK_GRAD(ctx, fn_where_other_mask, NULL, 2, w3, NULL);
    check_f32_vs_f64(ctx, fn_where_other_mask, NULL, 2, w3, 1e-5, "where, mask of the other dtype");

    static const double mask_31[3] = {0, 1, 0};
    double v = 2.5;
    heed_gradcheck_input mf[2] = {{HEED_SHAPE(2, 3, 5), NULL, false}, {HEED_SHAPE(3, 1), mask_31, true}};
    CHECK_GRAD(ctx, fn_masked_fill, &v, 2, mf, NULL);
    check_f32_vs_f64(ctx, fn_masked_fill, &v, 2, mf, 1e-5, "masked_fill");
}

static void values_and_gradients(void) {
    heed_graph *g = heed_graph_new(ctx);
    for (int dt = 0; dt < 2; dt++) {
        heed_dtype d = dt ? HEED_F64 : HEED_F32;
        heed_graph_reset(g);
        double av[3] = {1, 2, 3};
        heed_tensor *m = heed_input_f64(g, HEED_F64, HEED_SHAPE(2, 1, 4), mask_214);
        heed_tensor *a = heed_requires_grad(heed_input_f64(g, d, HEED_SHAPE(3, 1), av));
        heed_tensor *b = heed_requires_grad(heed_full(g, d, HEED_SHAPE(1, 3, 4), -1));
        heed_tensor *y = heed_where(g, m, a, b);
        CHECK(y && y->ndim == 3 && y->shape[0] == 2 && y->shape[1] == 3 && y->shape[2] == 4, "shape");
        /* y[i,j,k] = mask[i,0,k] ? a[j] : -1 */
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++)
                for (int k = 0; k < 4; k++)
                    CHECK(heed_get(y, (i * 3 + j) * 4 + k) == (mask_214[i * 4 + k] ? av[j] : -1), "y[%d,%d,%d]", i, j,
                          k);
        CHECK(heed_backward(g, heed_sum_all(g, y)) == HEED_OK, "%s", heed_graph_error(g));
        /* 4 of the 8 mask entries are set: each a[j] is picked 4 times; b[0,j,k] is picked
         * where the mask is clear, i.e. (2 - set count of column k) times */
        for (int j = 0; j < 3; j++) CHECK(heed_get(heed_grad(g, a), j) == 4, "da");
        for (int k = 0; k < 4; k++) CHECK(heed_get(heed_grad(g, b), k) == 2 - mask_214[k] - mask_214[4 + k], "db");

        /* masked_fill with -INFINITY then exp: filled positions become 0 and get no gradient. */
        heed_tensor *x = heed_requires_grad(heed_full(g, d, HEED_SHAPE(2, 4), 0.5));
        heed_tensor *mk = heed_input_f64(g, HEED_F32, HEED_SHAPE(4), (double[]){0, 1, 1, 0});
        heed_tensor *f = heed_masked_fill(g, x, mk, -INFINITY);
        CHECK(isinf(heed_get(f, 1)) && heed_get(f, 1) < 0 && heed_get(f, 0) == 0.5, "fill values");
        heed_tensor *e = heed_exp(g, f);
        CHECK(heed_get(e, 5) == 0, "exp(-inf) = 0");
        CHECK(heed_backward(g, heed_sum_all(g, e)) == HEED_OK, "%s", heed_graph_error(g));
        for (int i = 0; i < 8; i++) {
            double gv = heed_get(heed_grad(g, x), i);
            bool filled = i % 4 == 1 || i % 4 == 2;
            CHECK(filled ? gv == 0 : fabs(gv - exp(0.5)) < 1e-6, "dx[%d] = %g", i, gv);
        }
        /* NaN in a mask counts as set */
        heed_tensor *nm = heed_input_f64(g, d, HEED_SHAPE(2), (double[]){NAN, 0});
        heed_tensor *w = heed_where(g, nm, heed_full(g, d, HEED_SHAPE(2), 1), heed_full(g, d, HEED_SHAPE(2), 2));
        CHECK(heed_get(w, 0) == 1 && heed_get(w, 1) == 2, "NaN mask");
    }
    heed_graph_free(g);
}

/* Large enough for the threaded paths: where with a full a and a broadcast b (b's
 * gradient sums on one thread), masked_fill; compared with direct loops. */
static void large_against_direct_loops(void) {
    enum { R = 97, C = 701 };
    heed_graph *g = heed_graph_new(ctx);
    double *m = malloc(R * C * sizeof *m), *av = malloc(R * C * sizeof *av), bv[C];
    heed_rng r = heed_rng_make(3, 1);
    for (int i = 0; i < R * C; i++) m[i] = heed_rng_uniform(&r) < 0.3, av[i] = heed_rng_uniform(&r);
    for (int j = 0; j < C; j++) bv[j] = -heed_rng_uniform(&r);
    heed_tensor *mt;
    for (int full_b = 0; full_b < 2; full_b++) { /* b [C] (summed gradient) or b [R, C] (threaded) */
        heed_graph_reset(g);
        mt = heed_input_f64(g, HEED_F32, HEED_SHAPE(R, C), m);
        heed_tensor *a = heed_requires_grad(heed_input_f64(g, HEED_F64, HEED_SHAPE(R, C), av));
        heed_tensor *b = full_b ? heed_requires_grad(heed_add(g, heed_zeros(g, HEED_F64, HEED_SHAPE(R, C)),
                                                              heed_input_f64(g, HEED_F64, HEED_SHAPE(C), bv)))
                                : heed_requires_grad(heed_input_f64(g, HEED_F64, HEED_SHAPE(C), bv));
        heed_tensor *y = heed_where(g, mt, a, b);
        heed_tensor *seed = heed_input_f64(g, HEED_F64, HEED_SHAPE(R, C), av); /* dy = a's values */
        CHECK(heed_backward_with(g, y, seed) == HEED_OK, "%s", heed_graph_error(g));
        int bad = 0;
        for (int j = 0; j < C; j++) {
            double want = 0;
            for (int i = 0; i < R; i++) {
                int k = i * C + j;
                bad += heed_get(y, k) != (m[k] ? av[k] : bv[j]);
                bad += heed_get(heed_grad(g, a), k) != (m[k] ? av[k] : 0);
                if (full_b) bad += heed_get(heed_grad(g, b), k) != (m[k] ? 0 : av[k]);
                if (!m[k]) want += av[k];
            }
            if (!full_b && !check_close(heed_get(heed_grad(g, b), j), want, 1e-12)) bad++;
        }
        CHECK(bad == 0, "full_b %d: %d mismatches", full_b, bad);
    }
    heed_graph_reset(g);
    heed_tensor *x = heed_requires_grad(heed_input_f64(g, HEED_F32, HEED_SHAPE(R, C), av));
    mt = heed_input_f64(g, HEED_F64, HEED_SHAPE(R, C), m);
    heed_tensor *y = heed_masked_fill(g, x, mt, 7);
    heed_backward_with(g, y, heed_full(g, HEED_F32, HEED_SHAPE(R, C), 1));
    int bad = 0;
    for (int k = 0; k < R * C; k++) {
        bad += heed_get(y, k) != (m[k] ? 7 : (float)av[k]);
        bad += heed_get(heed_grad(g, x), k) != (m[k] ? 0 : 1);
    }
    CHECK(bad == 0, "masked_fill: %d mismatches", bad);
    free(m), free(av);
    heed_graph_free(g);
}

static void bad_input(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *m = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    heed_tensor *a = heed_zeros(g, HEED_F32, HEED_SHAPE(4, 3));
    heed_tensor *b = heed_zeros(g, HEED_F32, HEED_SHAPE(3));
    CHECK(heed_where(g, m, a, b) == NULL, "broadcast");
    CHECK_ERR(g, HEED_ERR_SHAPE,
              "heed_where: mask[2,3], a[4,3] and b[3] do not broadcast (dim 1 from the right: 2 vs 4)");
    a = heed_zeros(g, HEED_F32, HEED_SHAPE(3));
    b = heed_zeros(g, HEED_F64, HEED_SHAPE(3));
    m = heed_zeros(g, HEED_F64, HEED_SHAPE(3));
    CHECK(heed_where(g, m, a, b) == NULL, "dtype");
    CHECK_ERR(g, HEED_ERR_DTYPE, "heed_where: b is f64");
    a = heed_zeros(g, HEED_F32, HEED_SHAPE(3));
    CHECK(heed_where(g, NULL, a, a) == NULL, "null mask");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_where: mask is NULL");
    a = heed_zeros(g, HEED_F32, HEED_SHAPE(3));
    CHECK(heed_where(g, a, a, NULL) == NULL, "null b");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_where: b is NULL");
    heed_tensor *x = heed_zeros(g, HEED_F32, HEED_SHAPE(3));
    m = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    CHECK(heed_masked_fill(g, x, m, 0) == NULL, "mask larger than x");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_masked_fill: mask[2,3] does not broadcast to x[3]");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    m = heed_zeros(g, HEED_F32, HEED_SHAPE(2));
    CHECK(heed_masked_fill(g, x, m, 0) == NULL, "incompatible");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_masked_fill: x[2,3] and mask[2] do not broadcast");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    CHECK(heed_masked_fill(g, x, x, NAN) == NULL, "nan");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_masked_fill: value is NaN");
    CHECK(heed_masked_fill(g, NULL, NULL, 0) == NULL, "null");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_masked_fill: x is NULL");
    heed_graph_free(g);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 11});
    RUN(gradchecks);
    RUN(values_and_gradients);
    RUN(large_against_direct_loops);
    RUN(bad_input);
    heed_ctx_free(ctx);
    return check_summary();
}
