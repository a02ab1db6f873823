/* Losses: heed_cross_entropy (ignore_index, label smoothing, masks), heed_bce_with_logits
 * (stability, weights), heed_mse. Values derived by hand, gradient checks, f32 vs f64,
 * bad input. */
#include "check_grad32.h"
#include "heed/loss.h"

static heed_ctx *ctx;

/* ---------------------------------------------------------------- cross-entropy */

static void ce_known_values(void) {
    heed_graph *g = heed_graph_new(ctx);
    for (int d = 0; d < 2; d++) {
        heed_dtype dt = d ? HEED_F64 : HEED_F32;
        double tol = d ? 1e-13 : 1e-6;
        heed_graph_reset(g);
        /* equal logits: every log-prob is -log C, so the loss is log 4 and
         * d loss / d x = (1/4 - onehot) / N */
        heed_tensor *x = heed_requires_grad(heed_zeros(g, dt, HEED_SHAPE(2, 4)));
        int64_t t[2] = {1, 3};
        heed_tensor *l = heed_cross_entropy(g, x, t, NULL);
        CHECK(l && l->ndim == 0, "%s", heed_graph_error(g));
        CHECK_CLOSE(heed_get(l, 0), log(4.0), tol);
        CHECK(heed_backward(g, l) == HEED_OK, "%s", heed_graph_error(g));
        heed_tensor *gx = heed_grad(g, x);
        for (int i = 0; i < 8; i++) CHECK_CLOSE(heed_get(gx, i), (0.25 - (i == 1 || i == 7)) / 2, tol);

        /* label smoothing 0.1 on logits [0, ln 3] with target 1: p = [1/4, 3/4]
         * loss = 0.9 * -ln(3/4) + 0.1 * (ln 4 + ln(4/3)) / 2;  grad = p - 0.9 onehot - 0.1/2 */
        heed_graph_reset(g);
        double xv[2] = {0, log(3.0)};
        x = heed_requires_grad(heed_input_f64(g, dt, HEED_SHAPE(1, 2), xv));
        int64_t t1[1] = {1};
        l = heed_cross_entropy(g, x, t1, &(heed_ce_opts){.ignore_index = -100, .label_smoothing = 0.1});
        CHECK(l != NULL, "%s", heed_graph_error(g));
        CHECK_CLOSE(heed_get(l, 0), 0.9 * -log(0.75) + 0.1 * (log(4.0) + log(4.0 / 3)) / 2, tol);
        heed_backward(g, l);
        gx = heed_grad(g, x);
        CHECK_CLOSE(heed_get(gx, 0), 0.25 - 0.05, tol);
        CHECK_CLOSE(heed_get(gx, 1), 0.75 - 0.9 - 0.05, tol);

        /* ignored rows leave the mean: rows 0 and 2 ignored, rows 1 and 3 as above */
        heed_graph_reset(g);
        double xi[8] = {50, -3, 7, 1, 0, 0, 0, 0};
        x = heed_requires_grad(heed_input_f64(g, dt, HEED_SHAPE(4, 2), xi));
        int64_t t2[4] = {5, 0, 5, 1}; /* 5 is out of range but it is the ignore_index */
        l = heed_cross_entropy(g, x, t2, &(heed_ce_opts){.ignore_index = 5});
        CHECK(l != NULL, "%s", heed_graph_error(g));
        /* row 1: logits [7, 1] target 0: -log(e^7/(e^7+e)) = log(1 + e^-6); row 3: log 2 */
        CHECK_CLOSE(heed_get(l, 0), (log1p(exp(-6.0)) + log(2.0)) / 2, tol);
        heed_backward(g, l);
        gx = heed_grad(g, x);
        for (int j = 0; j < 2; j++)
            CHECK(heed_get(gx, j) == 0 && heed_get(gx, 4 + j) == 0, "ignored rows get no gradient");
        CHECK_CLOSE(heed_get(gx, 7), (0.5 - 1) / 2, tol);

        /* every row ignored: loss 0, gradient 0 */
        heed_graph_reset(g);
        x = heed_requires_grad(heed_input_f64(g, dt, HEED_SHAPE(4, 2), xi));
        int64_t t3[4] = {-100, -100, -100, -100};
        l = heed_cross_entropy(g, x, t3, NULL);
        CHECK(l && heed_get(l, 0) == 0, "all ignored: %g", heed_get(l, 0));
        CHECK(heed_backward(g, l) == HEED_OK, "%s", heed_graph_error(g));
        gx = heed_grad(g, x);
        for (int i = 0; i < 8; i++) CHECK(heed_get(gx, i) == 0, "all ignored grad");

        /* large logits do not overflow */
        heed_graph_reset(g);
        double xl[3] = {1e4, 0, -1e4};
        int64_t t4[1] = {1};
        l = heed_cross_entropy(g, heed_input_f64(g, dt, HEED_SHAPE(1, 3), xl), t4, NULL);
        CHECK(l != NULL, "%s", heed_graph_error(g));
        CHECK_CLOSE(heed_get(l, 0), 1e4, tol);
    }
    heed_graph_free(g);
}

typedef struct {
    const int64_t *targets;
    heed_ce_opts opts;
} ce_case;

static heed_tensor *fn_ce(heed_graph *g, heed_tensor **x, void *u) {
    ce_case *c = u;
    return heed_cross_entropy(g, x[0], c->targets, &c->opts);
}

/* A NaN row is not a fully masked row: the loss is NaN (f32 on both kernel paths, f64). */
static void ce_nan_propagates(void) {
    heed_graph *g = heed_graph_new(ctx);
    for (int d = 0; d < 2; d++) {
        heed_graph_reset(g);
        double v[6] = {NAN, NAN, NAN, 1, 2, 3};
        heed_tensor *x = heed_input_f64(g, d ? HEED_F64 : HEED_F32, HEED_SHAPE(2, 3), v);
        heed_tensor *l = heed_cross_entropy(g, x, (int64_t[]){0, 2}, NULL);
        CHECK(l && isnan(heed_get(l, 0)), "loss %g (%s)", heed_get(l, 0), heed_graph_error(g));
    }
    /* a long row takes the vector kernel */
    heed_graph_reset(g);
    double w[40];
    for (int i = 0; i < 40; i++) w[i] = i == 17 ? NAN : -INFINITY;
    heed_tensor *l = heed_cross_entropy(g, heed_input_f64(g, HEED_F32, HEED_SHAPE(1, 40), w), (int64_t[]){3}, NULL);
    CHECK(l && isnan(heed_get(l, 0)), "loss %g (%s)", heed_get(l, 0), heed_graph_error(g));
    heed_graph_free(g);
}

static void ce_gradients(void) {
    int64_t t[7] = {0, 6, -100, 3, 2, -100, 5};
    heed_gradcheck_input in[1] = {{.shape = HEED_SHAPE(7, 7)}};
    for (int s = 0; s < 3; s++)
        for (int r = 0; r < 3; r++) { /* every reduction: mean, sum, none */
            ce_case c = {t, {.label_smoothing = s * 0.15, .reduction = (heed_reduction)r}};
            CHECK_GRAD(ctx, fn_ce, &c, 1, in, NULL);
        }
    /* class 0 ignored (has_ignore_index) */
    int64_t t0[7] = {0, 6, 0, 3, 2, 0, 5};
    ce_case c0 = {t0, {.has_ignore_index = true, .label_smoothing = 0.1}};
    CHECK_GRAD(ctx, fn_ce, &c0, 1, in, NULL);
    /* C = 1 and N = 1 */
    int64_t z[1] = {0};
    ce_case c1 = {z, {0}};
    heed_gradcheck_input one[1] = {{.shape = HEED_SHAPE(1, 1)}};
    heed_gradcheck_result r;
    CHECK(heed_gradcheck(ctx, fn_ce, &c1, 1, one, NULL, &r) == HEED_OK, "%s", r.report);
    /* masked logits (-inf, never the target) and a fully masked row (loss 0, grad 0) */
    double xm[5 * 6];
    heed_rng rng = heed_rng_make(4, 0);
    for (int i = 0; i < 30; i++) xm[i] = 4 * heed_rng_uniform(&rng) - 2;
    xm[1] = xm[8] = xm[9] = -INFINITY;
    for (int j = 0; j < 6; j++) xm[24 + j] = -INFINITY;
    int64_t tm[5] = {0, 4, 5, -100, 2}; /* row 1 has columns 2 and 3 masked */
    ce_case cm = {tm, {0}};
    heed_gradcheck_input m[1] = {{.shape = HEED_SHAPE(5, 6), .data = xm}};
    CHECK_GRAD(ctx, fn_ce, &cm, 1, m, NULL);
}

static void ce_f32_vs_f64(void) {
    enum { N = 301, C = 37 };
    static int64_t t[N];
    for (int i = 0; i < N; i++) t[i] = i % 11 == 0 ? -100 : (i * 7) % C;
    ce_case c = {t, {.ignore_index = -100, .label_smoothing = 0.2}};
    heed_gradcheck_input in[1] = {{.shape = HEED_SHAPE(N, C)}};
    check_f32_vs_f64_grad(ctx, fn_ce, &c, 1, in, 1e-5, "cross_entropy");
    c.opts.label_smoothing = 0;
    check_f32_vs_f64_grad(ctx, fn_ce, &c, 1, in, 1e-5, "cross_entropy no smoothing");
    c.opts.label_smoothing = 0.1;
    c.opts.reduction = HEED_REDUCE_SUM;
    check_f32_vs_f64_grad(ctx, fn_ce, &c, 1, in, 1e-5, "cross_entropy sum");
    c.opts.reduction = HEED_REDUCE_NONE;
    check_f32_vs_f64_grad(ctx, fn_ce, &c, 1, in, 1e-5, "cross_entropy none");
}

/* The options struct: zero is the default (ignore_index -100, no smoothing, the mean).
 * Before, {.label_smoothing = 0.1} meant ignore_index = 0: every class-0 row was skipped.
 * Logits [0, ln 3] per row, so p = [1/4, 3/4]. */
static void ce_options(void) {
    heed_graph *g = heed_graph_new(ctx);
    double xv[6] = {0, log(3.0), 0, log(3.0), 0, log(3.0)};
    int64_t t[3] = {0, 1, -100};
    /* smoothing 0.1, C = 2: l(target 0) = 0.9 ln 4 + 0.1 (ln 4 + ln 4/3) / 2, l(target 1) likewise with ln 4/3 */
    double l0 = 0.9 * log(4.0) + 0.05 * (log(4.0) + log(4.0 / 3)),
           l1 = 0.9 * log(4.0 / 3) + 0.05 * (log(4.0) + log(4.0 / 3));
    struct {
        heed_ce_opts o;
        double want;
    } cases[] = {
        {{.label_smoothing = 0.1}, (l0 + l1) / 2},                    /* -100 ignored, class 0 counts */
        {{.ignore_index = 0, .label_smoothing = 0.1}, (l0 + l1) / 2}, /* 0 is the default, -100 */
        {{.has_ignore_index = true, .label_smoothing = 0.1},
         l1}, /* class 0 itself (rows 0, 1 only: -100 is no class) */
        {{.ignore_index = -100, .label_smoothing = HEED_ZERO},
         (log(4.0) + log(4.0 / 3)) / 2}, /* HEED_ZERO: no smoothing */
        {{0}, (log(4.0) + log(4.0 / 3)) / 2},
    };
    for (int i = 0; i < (int)(sizeof cases / sizeof *cases); i++) {
        heed_graph_reset(g);
        heed_tensor *x = heed_input_f64(g, HEED_F64, HEED_SHAPE(i == 2 ? 2 : 3, 2), xv);
        heed_tensor *l = heed_cross_entropy(g, x, t, &cases[i].o);
        CHECK(l != NULL, "case %d: %s", i, heed_graph_error(g));
        if (l) CHECK_CLOSE(heed_get(l, 0), cases[i].want, 1e-14);
    }
    heed_graph_free(g);
}

/* PyTorch's reduction='sum' and 'none' (one loss per row, 0 for ignored rows), forward and
 * backward. Expected values from PyTorch 1.13 (float64), printed with %.17g:
 *   x = torch.tensor([[50., -3], [7, 1], [0, 0], [0, 0]], dtype=torch.float64, requires_grad=True)
 *   l = F.cross_entropy(x, torch.tensor([5, 0, 5, 1]), ignore_index=5, reduction='none', label_smoothing=0.1)
 *   l.backward(torch.tensor([1., 2, 3, 4], dtype=torch.float64)); print(l, x.grad) */
static void ce_reductions(void) {
    static const double want_none[4] = {0, 0.30247568513773038, 0, 0.69314718055994529};
    static const double want_grad[8] = {0, 0,   0.095054753686730553, -0.095054753686730456, 0,
                                        0, 1.8, -1.8000000000000003};
    heed_graph *g = heed_graph_new(ctx);
    double xi[8] = {50, -3, 7, 1, 0, 0, 0, 0}, seed[4] = {1, 2, 3, 4};
    int64_t t[4] = {5, 0, 5, 1};
    for (int d = 0; d < 2; d++) {
        heed_dtype dt = d ? HEED_F64 : HEED_F32;
        double tol = d ? 1e-14 : 1e-6;
        heed_graph_reset(g);
        heed_tensor *x = heed_requires_grad(heed_input_f64(g, dt, HEED_SHAPE(4, 2), xi));
        heed_tensor *l = heed_cross_entropy(g, x, t,
                                            &(heed_ce_opts){.ignore_index = 5,
                                                            .label_smoothing = 0.1,
                                                            .reduction = HEED_REDUCE_NONE});
        CHECK(l && l->ndim == 1 && l->shape[0] == 4 && l->dtype == dt, "none: [4] (%s)", heed_graph_error(g));
        if (!l) continue;
        for (int i = 0; i < 4; i++) CHECK_CLOSE(heed_get(l, i), want_none[i], tol);
        CHECK(heed_backward_with(g, l, heed_input_f64(g, dt, HEED_SHAPE(4), seed)) == HEED_OK, "%s",
              heed_graph_error(g));
        heed_tensor *gx = heed_grad(g, x);
        for (int i = 0; i < 8; i++) CHECK_CLOSE(heed_get(gx, i), want_grad[i], tol);
        /* sum: the rows added; its gradient is none's with a seed of ones */
        heed_graph_reset(g);
        x = heed_requires_grad(heed_input_f64(g, dt, HEED_SHAPE(4, 2), xi));
        l = heed_cross_entropy(g, x, t,
                               &(heed_ce_opts){.ignore_index = 5,
                                               .label_smoothing = 0.1,
                                               .reduction = HEED_REDUCE_SUM});
        CHECK(l && l->ndim == 0, "sum is a scalar (%s)", heed_graph_error(g));
        if (!l) continue;
        CHECK_CLOSE(heed_get(l, 0), want_none[1] + want_none[3], tol);
        CHECK(heed_backward(g, l) == HEED_OK, "%s", heed_graph_error(g));
        gx = heed_grad(g, x);
        CHECK_CLOSE(heed_get(gx, 2), want_grad[2] / 2, tol);
        CHECK_CLOSE(heed_get(gx, 7), want_grad[7] / 4, tol);
        CHECK(heed_get(gx, 0) == 0 && heed_get(gx, 5) == 0, "ignored rows get no gradient");
        /* every row ignored: sum 0, none all 0 */
        heed_graph_reset(g);
        int64_t all[4] = {5, 5, 5, 5};
        l = heed_cross_entropy(g, heed_input_f64(g, dt, HEED_SHAPE(4, 2), xi), all,
                               &(heed_ce_opts){.ignore_index = 5, .reduction = HEED_REDUCE_SUM});
        CHECK(l && heed_get(l, 0) == 0, "all ignored, sum");
        l = heed_cross_entropy(g, heed_input_f64(g, dt, HEED_SHAPE(4, 2), xi), all,
                               &(heed_ce_opts){.ignore_index = 5, .reduction = HEED_REDUCE_NONE});
        CHECK(l && heed_get(l, 0) == 0 && heed_get(l, 3) == 0, "all ignored, none");
        /* no rows: none is [0] */
        l = heed_cross_entropy(g, heed_zeros(g, dt, HEED_SHAPE(0, 3)), NULL,
                               &(heed_ce_opts){.reduction = HEED_REDUCE_NONE});
        CHECK(l && l->ndim == 1 && l->shape[0] == 0, "empty none: %s", heed_graph_error(g));
    }
    heed_graph_free(g);
}

/* Shift invariance in f32 (issue #10): softmax, and so the loss and its gradient, do not
 * change when a constant is added to a row, and f32 must keep that to f32 precision on
 * both kernels. Rows {0, 0.5, -0.75} + offset (the scalar tail of the vector kernel) and
 * 37 random logits + offset (its 8-wide loop), offsets 0, 1e3, 1e4. The logits are rounded
 * to f32 first, so the f64 run sees the same numbers. Before the fix the AVX2 gradient
 * computed exp(x - (float)lse), which puts the rounding of lse (up to 2^-11 at 1e4) into
 * every probability: errors of 1e-6 and 3e-4 against gradients of 0.5. */
static void ce_large_logits(void) {
    enum { N = 5, C = 37 };
    static const double offsets[3] = {0, 1e3, 1e4};
    heed_rng r = heed_rng_make(21, 0);
    double base[N * C];
    for (int i = 0; i < N * C; i++) base[i] = 4 * heed_rng_uniform(&r) - 2;
    int64_t t[N] = {0, 36, 7, -100, 20}, t1[1] = {0};
    for (int o = 0; o < 3; o++)
        for (int s = 0; s < 2; s++) {
            char what[64];
            double x3[3] = {0, 0.5, -0.75}, x[N * C];
            for (int j = 0; j < 3; j++) x3[j] = (float)(x3[j] + offsets[o]);
            for (int i = 0; i < N * C; i++) x[i] = (float)(base[i] + offsets[o]);
            ce_case c3 = {t1, {.ignore_index = -100, .label_smoothing = s * 0.1}}, c = {t, c3.opts};
            heed_gradcheck_input in3[1] = {{.shape = HEED_SHAPE(1, 3), .data = x3}},
                                 in[1] = {{.shape = HEED_SHAPE(N, C), .data = x}};
            snprintf(what, sizeof what, "ce [1,3] offset %g smoothing %g", offsets[o], s * 0.1);
            check_f32_vs_f64_grad(ctx, fn_ce, &c3, 1, in3, 1e-6, what);
            snprintf(what, sizeof what, "ce [%d,%d] offset %g smoothing %g", N, C, offsets[o], s * 0.1);
            check_f32_vs_f64_grad(ctx, fn_ce, &c, 1, in, 1e-6, what);
        }
}

static void ce_bad_input(void) {
    heed_graph *g = heed_graph_new(ctx);
    int64_t t[3] = {0, 5, 1};
    heed_tensor *x = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 4));
    CHECK(heed_cross_entropy(g, x, t, NULL) == NULL, "out of range");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_cross_entropy: targets[1] = 5 is out of range for logits[3,4]");
    int64_t tn[3] = {0, 1, -2};
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 4));
    CHECK(heed_cross_entropy(g, x, tn, NULL) == NULL, "negative");
    CHECK_ERR(g, HEED_ERR_ARG, "targets[2] = -2");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 4));
    CHECK(heed_cross_entropy(g, x, NULL, NULL) == NULL, "NULL targets");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_cross_entropy: targets is NULL");
    CHECK(heed_cross_entropy(g, heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 4)), t, NULL) == NULL, "3-D");
    CHECK_ERR(g, HEED_ERR_SHAPE, "logits[2,3,4] must be 2-D [N, C]");
    CHECK(heed_cross_entropy(g, heed_zeros(g, HEED_F32, HEED_SHAPE(3, 0)), t, NULL) == NULL, "C = 0");
    CHECK_ERR(g, HEED_ERR_SHAPE, "no classes");
    int64_t ok[3] = {0, 1, 2};
    double bad_ls[3] = {-0.1, 1.5, NAN};
    for (int i = 0; i < 3; i++) {
        x = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 4));
        CHECK(heed_cross_entropy(g, x, ok, &(heed_ce_opts){.label_smoothing = bad_ls[i]}) == NULL, "ls");
        CHECK_ERR(g, HEED_ERR_ARG, "label_smoothing");
    }
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 4));
    CHECK(heed_cross_entropy(g, x, ok, &(heed_ce_opts){.reduction = (heed_reduction)7}) == NULL, "reduction");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_cross_entropy: reduction = 7 (must be HEED_REDUCE_MEAN, _SUM or _NONE)");
    CHECK(heed_cross_entropy(g, NULL, ok, NULL) == NULL, "NULL logits");
    CHECK_ERR(g, HEED_ERR_ARG, "logits is NULL");
    /* no rows: loss 0 (targets may then be NULL) */
    heed_tensor *l = heed_cross_entropy(g, heed_zeros(g, HEED_F32, HEED_SHAPE(0, 4)), NULL, NULL);
    CHECK(l && heed_get(l, 0) == 0, "empty: %s", heed_graph_error(g));
    heed_graph_free(g);
}

/* ---------------------------------------------------------------- BCE with logits */

static void bce_known_values(void) {
    heed_graph *g = heed_graph_new(ctx);
    for (int d = 0; d < 2; d++) {
        heed_dtype dt = d ? HEED_F64 : HEED_F32;
        double tol = d ? 1e-13 : 1e-6;
        heed_graph_reset(g);
        /* x = 0: l = log 2 whatever y. |x| = 1e4: l = 0 when the sign agrees with y, 1e4
         * when it does not; the gradient is sigmoid(x) - y, exactly 0 or +-1 there. */
        double xv[5] = {0, 1e4, -1e4, 1e4, -1e4}, yv[5] = {0.3, 1, 0, 0, 1};
        heed_tensor *x = heed_requires_grad(heed_input_f64(g, dt, HEED_SHAPE(5), xv));
        heed_tensor *y = heed_input_f64(g, dt, HEED_SHAPE(5), yv);
        heed_tensor *l = heed_bce_with_logits(g, x, y, NULL);
        CHECK(l != NULL, "%s", heed_graph_error(g));
        CHECK_CLOSE(heed_get(l, 0), (log(2.0) + 2e4) / 5, tol);
        CHECK(heed_backward(g, l) == HEED_OK, "%s", heed_graph_error(g));
        heed_tensor *gx = heed_grad(g, x);
        double want[5] = {0.5 - 0.3, 0, 0, 1, -1};
        for (int i = 0; i < 5; i++) CHECK_CLOSE(heed_get(gx, i), want[i] / 5, tol);
        /* weights: mean = sum(w l) / sum(w); zero weights drop elements */
        heed_graph_reset(g);
        double xw[4] = {0, 0, 1e4, 1e4}, yw[4] = {1, 1, 0, 0}, ww[2] = {3, 0};
        heed_tensor *lw = heed_bce_with_logits(g, heed_input_f64(g, dt, HEED_SHAPE(2, 2), xw),
                                               heed_input_f64(g, dt, HEED_SHAPE(2, 2), yw),
                                               heed_input_f64(g, dt, HEED_SHAPE(2, 1), ww));
        CHECK(lw != NULL, "%s", heed_graph_error(g));
        CHECK_CLOSE(heed_get(lw, 0), log(2.0), tol);
        /* all weights zero: loss 0 */
        heed_tensor *l0 =
            heed_bce_with_logits(g, heed_input_f64(g, dt, HEED_SHAPE(2, 2), xw),
                                 heed_input_f64(g, dt, HEED_SHAPE(2, 2), yw), heed_zeros(g, dt, HEED_SHAPE(1)));
        CHECK(l0 && heed_get(l0, 0) == 0, "zero weights");
    }
    heed_graph_free(g);
}

static heed_tensor *fn_bce(heed_graph *g, heed_tensor **x, void *u) {
    return heed_bce_with_logits(g, x[0], x[1], u ? x[2] : NULL);
}

static void bce_gradients(void) {
    /* logits spread over (-6, 6); targets in (0, 1) (soft labels get a gradient too) */
    double xv[3 * 5], yv[3 * 5];
    heed_rng r = heed_rng_make(12, 0);
    for (int i = 0; i < 15; i++) xv[i] = 12 * heed_rng_uniform(&r) - 6, yv[i] = heed_rng_uniform(&r);
    heed_gradcheck_input in[3] = {{.shape = HEED_SHAPE(3, 5), .data = xv},
                                  {.shape = HEED_SHAPE(3, 5), .data = yv},
                                  {.shape = HEED_SHAPE(5)}};
    CHECK_GRAD(ctx, fn_bce, NULL, 2, in, NULL);
    double wv[5] = {0.5, 2, 1, 0.25, 3};
    in[2].data = wv;
    CHECK_GRAD(ctx, fn_bce, (void *)1, 3, in, NULL); /* weight [5] broadcast over rows */
    heed_gradcheck_input col[3] = {in[0], in[1], {.shape = HEED_SHAPE(3, 1), .data = wv}};
    CHECK_GRAD(ctx, fn_bce, (void *)1, 3, col, NULL); /* weight [3,1] broadcast over columns */
    double wf[15];
    for (int i = 0; i < 15; i++) wf[i] = yv[i] + 0.5;
    heed_gradcheck_input full[3] = {in[0], in[1], {.shape = HEED_SHAPE(3, 5), .data = wf}}; /* one weight each */
    CHECK_GRAD(ctx, fn_bce, (void *)1, 3, full, NULL);
    heed_gradcheck_input big[3] = {{.shape = HEED_SHAPE(70, 130)},
                                   {.shape = HEED_SHAPE(70, 130)},
                                   {.shape = HEED_SHAPE(130)}};
    check_f32_vs_f64_grad(ctx, fn_bce, (void *)1, 3, big, 1e-5, "bce");
}

static void bce_bad_input(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 4));
    CHECK(heed_bce_with_logits(g, x, heed_zeros(g, HEED_F32, HEED_SHAPE(4)), NULL) == NULL, "shape");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_bce_with_logits: x[3,4] and y[4] must have the same shape");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 4));
    CHECK(heed_bce_with_logits(g, x, x, heed_zeros(g, HEED_F32, HEED_SHAPE(3))) == NULL, "weight");
    CHECK_ERR(g, HEED_ERR_SHAPE, "weight[3] does not broadcast to x[3,4]");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 4));
    CHECK(heed_bce_with_logits(g, x, x, heed_zeros(g, HEED_F32, HEED_SHAPE(1, 3, 4))) == NULL, "weight ndim");
    CHECK_ERR(g, HEED_ERR_SHAPE, "does not broadcast");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 4));
    CHECK(heed_bce_with_logits(g, x, heed_zeros(g, HEED_F64, HEED_SHAPE(3, 4)), NULL) == NULL, "dtype");
    CHECK_ERR(g, HEED_ERR_DTYPE, "heed_bce_with_logits");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 4));
    CHECK(heed_bce_with_logits(g, x, NULL, NULL) == NULL, "NULL y");
    CHECK_ERR(g, HEED_ERR_ARG, "y is NULL");
    heed_graph_free(g);
}

/* ---------------------------------------------------------------- MSE */

static heed_tensor *fn_mse(heed_graph *g, heed_tensor **x, void *u) { return heed_mse(g, x[0], x[1]); }

static void mse_all(void) {
    heed_graph *g = heed_graph_new(ctx);
    for (int d = 0; d < 2; d++) {
        heed_dtype dt = d ? HEED_F64 : HEED_F32;
        heed_graph_reset(g);
        double av[3] = {1, 2, 3}, bv[3] = {1, 0, 0};
        heed_tensor *a = heed_requires_grad(heed_input_f64(g, dt, HEED_SHAPE(3), av));
        heed_tensor *b = heed_requires_grad(heed_input_f64(g, dt, HEED_SHAPE(3), bv));
        heed_tensor *l = heed_mse(g, a, b);
        CHECK(l != NULL, "%s", heed_graph_error(g));
        CHECK_CLOSE(heed_get(l, 0), 13.0 / 3, 1e-7);
        heed_backward(g, l);
        for (int i = 0; i < 3; i++) {
            CHECK_CLOSE(heed_get(heed_grad(g, a), i), 2 * (av[i] - bv[i]) / 3, 1e-7);
            CHECK_CLOSE(heed_get(heed_grad(g, b), i), -2 * (av[i] - bv[i]) / 3, 1e-7);
        }
    }
    heed_gradcheck_input in[2] = {{.shape = HEED_SHAPE(2, 3, 5)}, {.shape = HEED_SHAPE(2, 3, 5)}};
    CHECK_GRAD(ctx, fn_mse, NULL, 2, in, NULL);
    heed_gradcheck_input big[2] = {{.shape = HEED_SHAPE(90, 101)}, {.shape = HEED_SHAPE(90, 101)}};
    check_f32_vs_f64_grad(ctx, fn_mse, NULL, 2, big, 1e-5, "mse");
    heed_graph_reset(g);
    CHECK(heed_mse(g, heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3)), heed_zeros(g, HEED_F32, HEED_SHAPE(3))) == NULL,
          "no broadcast");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_mse: a[2,3] and b[3] must have the same shape");
    CHECK(heed_mse(g, heed_zeros(g, HEED_F32, HEED_SHAPE(3)), heed_zeros(g, HEED_F64, HEED_SHAPE(3))) == NULL, "dtype");
    CHECK_ERR(g, HEED_ERR_DTYPE, "heed_mse");
    CHECK(heed_mse(g, NULL, NULL) == NULL, "NULL");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_mse: a is NULL");
    heed_tensor *e = heed_mse(g, heed_zeros(g, HEED_F32, HEED_SHAPE(0)), heed_zeros(g, HEED_F32, HEED_SHAPE(0)));
    CHECK(e && heed_get(e, 0) == 0, "empty");
    heed_graph_free(g);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 9});
    RUN(ce_known_values);
    RUN(ce_nan_propagates);
    RUN(ce_gradients);
    RUN(ce_f32_vs_f64);
    RUN(ce_large_logits);
    RUN(ce_options);
    RUN(ce_reductions);
    RUN(ce_bad_input);
    RUN(bce_known_values);
    RUN(bce_gradients);
    RUN(bce_bad_input);
    RUN(mse_all);
    heed_ctx_free(ctx);
    return check_summary();
}
