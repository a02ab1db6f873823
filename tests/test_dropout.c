/* heed_dropout: gradients (the checker replays the masks), the dropped fraction, eval
 * mode, masks independent of the thread count, bad p. */
#include "check_grad32.h"
#include "heed/dropout.h"
#include "heed/elementwise.h"
#include "heed/reduce.h"

#include <omp.h>

static heed_ctx *ctx;

static heed_tensor *fn_dropout(heed_graph *g, heed_tensor **x, void *u) {
    double p = *(double *)u;
    return heed_dropout(g, x[0], p);
}
/* Two dropouts (two random streams) and a product, so masks must be replayed in order. */
static heed_tensor *fn_two(heed_graph *g, heed_tensor **x, void *u) {
    (void)u;
    heed_tensor *a = heed_dropout(g, x[0], 0.5);
    return heed_mul(g, a, heed_dropout(g, heed_add(g, x[0], x[1]), 0.25));
}

static void gradients(void) {
    double ps[3] = {0.1, 0.5, 0.8};
    for (int i = 0; i < 3; i++) {
        heed_gradcheck_input in[1] = {{.shape = HEED_SHAPE(7, 9)}};
        CHECK_GRAD(ctx, fn_dropout, &ps[i], 1, in, NULL);
    }
    heed_gradcheck_input two[2] = {{.shape = HEED_SHAPE(3, 4, 5)}, {.shape = HEED_SHAPE(5)}};
    CHECK_GRAD(ctx, fn_two, NULL, 2, two, NULL);
    heed_gradcheck_input big[1] = {{.shape = HEED_SHAPE(300, 131)}};
    check_f32_vs_f64_grad(ctx, fn_dropout, &ps[1], 1, big, 1e-6, "dropout");
}

/* Inverted dropout of ones: each element is 0 or 1/(1-p); the zeros are a fraction p. */
static void fraction_dropped(void) {
    heed_graph *g = heed_graph_new(ctx);
    double ps[3] = {0.1, 0.3, 0.9};
    for (int k = 0; k < 3; k++) {
        heed_graph_reset(g);
        double p = ps[k];
        heed_tensor *y = heed_dropout(g, heed_full(g, HEED_F32, HEED_SHAPE(1000, 1000), 1.0), p);
        CHECK(y != NULL, "%s", heed_graph_error(g));
        if (!y) continue;
        const float *v = y->data;
        int64_t zeros = 0, others = 0;
        float kept = (float)(1.0 / (1.0 - p));
        double sum = 0;
        for (int64_t i = 0; i < y->numel; i++) {
            zeros += v[i] == 0;
            others += v[i] != 0 && v[i] != kept;
            sum += v[i];
        }
        /* the standard deviation of the fraction is sqrt(p(1-p)/1e6) <= 5e-4: 6 sigma */
        double frac = (double)zeros / 1e6, sd = sqrt(p * (1 - p) / 1e6);
        CHECK(fabs(frac - p) < 6 * sd, "p = %g: dropped %g", p, frac);
        CHECK(others == 0, "p = %g: %lld values neither 0 nor 1/(1-p)", p, (long long)others);
        CHECK(fabs(sum / 1e6 - 1) < 6 * sd / (1 - p), "p = %g: mean %g (expected 1)", p, sum / 1e6);
    }
    /* two calls draw different masks */
    heed_graph_reset(g);
    heed_tensor *x = heed_full(g, HEED_F64, HEED_SHAPE(64, 64), 1.0);
    heed_tensor *a = heed_dropout(g, x, 0.5), *b = heed_dropout(g, x, 0.5);
    CHECK(a && b && memcmp(a->data, b->data, 64 * 64 * sizeof(double)) != 0, "masks of two calls differ");
    heed_graph_free(g);
}

static void eval_mode_is_identity(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = heed_requires_grad(heed_full(g, HEED_F32, HEED_SHAPE(10, 10), 2.0));
    heed_graph_set_training(g, false);
    heed_tensor *y = heed_dropout(g, x, 0.5);
    CHECK(y == x, "eval mode returns x itself");
    heed_graph_set_training(g, true);
    CHECK(heed_dropout(g, x, 0) == x, "p = 0 returns x itself");
    CHECK(heed_dropout(g, x, 0.5) != x, "training mode drops");
    /* gradient in eval mode passes unchanged */
    heed_graph_set_training(g, false);
    heed_tensor *l = heed_sum_all(g, heed_dropout(g, x, 0.7));
    CHECK(heed_backward(g, l) == HEED_OK, "%s", heed_graph_error(g));
    heed_tensor *gx = heed_grad(g, x);
    for (int i = 0; i < 100; i++) CHECK(gx && heed_get(gx, i) == 1, "eval grad");
    heed_graph_free(g);
}

/* y = dropout(ones) and the gradient of sum(y) are both m/(1-p): run with 1 and with 2
 * threads from the same seed and compare bit for bit. */
static void mask_independent_of_threads(void) {
    int saved = omp_get_max_threads();
    enum { N = 400 * 300 }; /* large enough for the threaded loop */
    static float y[2][N], gx[2][N];
    for (int run = 0; run < 2; run++) {
        omp_set_num_threads(run + 1);
        heed_ctx *c = heed_ctx_new(&(heed_ctx_opts){.seed = 1234});
        heed_graph *g = heed_graph_new(c);
        heed_tensor *x = heed_requires_grad(heed_full(g, HEED_F32, HEED_SHAPE(400, 300), 1.0));
        heed_dropout(g, x, 0.2); /* a first call moves the stream counter the same way in both runs */
        heed_tensor *d = heed_dropout(g, x, 0.35);
        CHECK(d && heed_backward(g, heed_sum_all(g, d)) == HEED_OK, "%s", heed_graph_error(g));
        if (d) {
            memcpy(y[run], d->data, sizeof y[run]);
            memcpy(gx[run], heed_grad(g, x)->data, sizeof gx[run]);
        }
        heed_graph_free(g);
        heed_ctx_free(c);
    }
    omp_set_num_threads(saved);
    CHECK(memcmp(y[0], y[1], sizeof y[0]) == 0, "forward mask depends on the thread count");
    CHECK(memcmp(gx[0], gx[1], sizeof gx[0]) == 0, "backward mask depends on the thread count");
    /* the first call's gradient was not part of sum(d), so grad == d exactly */
    CHECK(memcmp(y[0], gx[0], sizeof y[0]) == 0, "backward regenerates the forward mask");
}

/* The mask is the documented rule, recomputed here from the Philox primitive: element i of
 * the op's stream s keeps iff (word i%4 of block (key=seed, ctr=(i/4, s))) >> 8 >= p*2^24.
 * 1003 elements: whole 32-element vector groups plus a tail. */
static void mask_is_the_philox_rule(void) {
    const double p = 0.3;
    const uint64_t seed = 0x1234567890abcdefull;
    heed_ctx *c = heed_ctx_new(&(heed_ctx_opts){.seed = seed});
    heed_ctx_set_rng_state(c, seed, 41); /* the op takes stream 41 */
    heed_graph *g = heed_graph_new(c);
    for (int dt = 0; dt < 2; dt++) {
        heed_ctx_set_rng_state(c, seed, 41);
        heed_tensor *x = heed_full(g, dt ? HEED_F64 : HEED_F32, HEED_SHAPE(1003), 1.0);
        heed_tensor *y = heed_dropout(g, x, p);
        CHECK(y != NULL, "%s", heed_graph_error(g));
        int wrong = 0;
        for (int64_t i = 0; y && i < 1003; i++) {
            uint32_t out[4], key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
            uint32_t ctr[4] = {(uint32_t)(i / 4), 0, 41, 0};
            heed_philox4x32(key, ctr, out);
            bool keep = (out[i % 4] >> 8) * (1.0 / 16777216.0) >= p;
            double want = keep ? 1.0 / (1.0 - p) : 0.0;
            wrong += check_err(heed_get(y, i), want) > 1e-6 * want;
        }
        CHECK(wrong == 0, "%s: %d of 1003 elements differ from the Philox rule", dt ? "f64" : "f32", wrong);
    }
    heed_graph_free(g);
    heed_ctx_free(c);
}

static void bad_p(void) {
    heed_graph *g = heed_graph_new(ctx);
    double bad[4] = {-0.1, 1.0, 1.5, NAN};
    for (int i = 0; i < 4; i++) {
        heed_tensor *x = heed_zeros(g, HEED_F32, HEED_SHAPE(3));
        CHECK(heed_dropout(g, x, bad[i]) == NULL, "p = %g", bad[i]);
        CHECK_ERR(g, HEED_ERR_ARG, "heed_dropout: p = ");
    }
    /* also rejected in eval mode */
    heed_graph_set_training(g, false);
    CHECK(heed_dropout(g, heed_zeros(g, HEED_F32, HEED_SHAPE(3)), 1.0) == NULL, "eval p = 1");
    CHECK_ERR(g, HEED_ERR_ARG, "must be in [0, 1)");
    CHECK(heed_dropout(g, NULL, 0.5) == NULL, "NULL");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_dropout: x is NULL");
    heed_graph_free(g);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 21});
    RUN(gradients);
    RUN(fraction_dropped);
    RUN(eval_mode_is_identity);
    RUN(mask_independent_of_threads);
    RUN(mask_is_the_philox_rule);
    RUN(bad_p);
    heed_ctx_free(ctx);
    return check_summary();
}
