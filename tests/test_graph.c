/* Core: graph, tape, backward, errors, RNG, parameters, the gradient checker itself. */
#include "check.h"
#include "heed/elementwise.h"
#include "heed/matmul.h"
#include "heed/reduce.h"
#include "heed/shape.h"

static heed_ctx *ctx;

static void philox_known_answers(void) {
    /* Known-answer vectors of Random123's philox4x32_10. */
    uint32_t out[4];
    heed_philox4x32((uint32_t[2]){0, 0}, (uint32_t[4]){0, 0, 0, 0}, out);
    CHECK(out[0] == 0x6627e8d5u && out[1] == 0xe169c58du && out[2] == 0xbc57ac4cu && out[3] == 0x9b00dbd8u, "zeros");
    heed_philox4x32((uint32_t[2]){0xa4093822u, 0x299f31d0u},
                    (uint32_t[4]){0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, out);
    CHECK(out[0] == 0xd16cfe09u && out[1] == 0x94fdccebu && out[2] == 0x5001e420u && out[3] == 0x24126ea1u, "pi");
    heed_rng r = heed_rng_make(5, 0);
    double s = 0, s2 = 0;
    for (int i = 0; i < 100000; i++) {
        double z = heed_rng_normal(&r);
        s += z, s2 += z * z;
    }
    CHECK(fabs(s / 1e5) < 0.02 && fabs(s2 / 1e5 - 1) < 0.02, "normal moments %g %g", s / 1e5, s2 / 1e5);
}

static void backward_accumulates_over_uses(void) {
    /* y = x*x + x  ->  dy/dx = 2x + 1 */
    heed_graph *g = heed_graph_new(ctx);
    double xv[3] = {1, -2, 0.5};
    heed_tensor *x = heed_requires_grad(heed_input(g, HEED_F64, HEED_SHAPE(3), xv));
    heed_tensor *y = heed_sum_all(g, heed_add(g, heed_mul(g, x, x), x));
    CHECK(heed_backward(g, y) == HEED_OK, "%s", heed_graph_error(g));
    heed_tensor *gx = heed_grad(g, x);
    for (int i = 0; i < 3; i++) CHECK_CLOSE(heed_get(gx, i), 2 * xv[i] + 1, 1e-12);
    heed_graph_free(g);
}

/* f32 adds of equal shapes take a float loop: every sum and gradient must be bitwise
 * what the general path gives ((float)((double)a + (double)b), and dy added per use),
 * across exponents far apart, subnormals, signed zeros and infinities. */
static void f32_add_is_the_double_path_bitwise(void) {
    enum { N = 4096 };
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *a = heed_requires_grad(heed_zeros(g, HEED_F32, HEED_SHAPE(N)));
    heed_tensor *b = heed_requires_grad(heed_zeros(g, HEED_F32, HEED_SHAPE(N)));
    heed_tensor *w = heed_zeros(g, HEED_F32, HEED_SHAPE(N));
    float *A = a->data, *B = b->data, *W = w->data;
    heed_rng r = heed_rng_make(11, 0);
    const float special[] = {0.0f, -0.0f, 1e-45f, -1e-45f, 1.17e-38f, 3.4e38f, -3.4e38f, INFINITY, -INFINITY};
    for (int i = 0; i < N; i++) {
        float x = (float)ldexp(heed_rng_normal(&r), (int)heed_rng_below(&r, 80) - 40);
        A[i] = i % 7 == 0 ? special[(i / 7) % 9] : x;
        B[i] =
            i % 11 == 0 ? special[(i / 11) % 9] : (float)ldexp(heed_rng_normal(&r), (int)heed_rng_below(&r, 80) - 40);
        W[i] = (float)heed_rng_normal(&r);
    }
    heed_tensor *y = heed_add(g, a, b), *yy = heed_add(g, a, a);
    CHECK(y && yy, "%s", heed_graph_error(g));
    const float *Y = y->data, *YY = yy->data;
    int64_t differ = 0;
    for (int i = 0; i < N; i++) {
        float want = (float)((double)A[i] + (double)B[i]), want2 = (float)((double)A[i] + (double)A[i]);
        differ += (isnan(want) ? !isnan(Y[i]) : memcmp(&want, &Y[i], sizeof want) != 0);
        differ += (isnan(want2) ? !isnan(YY[i]) : memcmp(&want2, &YY[i], sizeof want2) != 0);
    }
    CHECK(differ == 0, "%lld sums differ from the double path", (long long)differ);
    /* gradients: loss = sum(w * (a + b)) + sum(w * (a + a)): dy = w at both adds */
    heed_tensor *loss = heed_add(g, heed_sum_all(g, heed_mul(g, w, y)), heed_sum_all(g, heed_mul(g, w, yy)));
    CHECK(heed_backward(g, loss) == HEED_OK, "%s", heed_graph_error(g));
    const float *gA = heed_grad(g, a)->data, *gB = heed_grad(g, b)->data;
    differ = 0;
    for (int i = 0; i < N; i++) { /* the general path: each use adds (float)(double)dy to a zeroed buffer */
        float ga = 0.0f;
        ga += W[i], ga += W[i], ga += W[i];
        float gb = 0.0f + W[i];
        differ += memcmp(&ga, &gA[i], sizeof ga) != 0 || memcmp(&gb, &gB[i], sizeof gb) != 0;
    }
    CHECK(differ == 0, "%lld gradients differ from the double path", (long long)differ);
    heed_graph_free(g);
}

/* heed_linear's bias gradient sums each column of dy in double in row order, in blocks of
 * columns: bitwise that sum, for a column count that is not a multiple of the block and
 * enough rows for the threaded loop. */
static void linear_bias_grad_is_the_row_order_sum(void) {
    enum { M = 2000, IN = 3, OUT = 37 };
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = heed_zeros(g, HEED_F32, HEED_SHAPE(M, IN)), *w = heed_zeros(g, HEED_F32, HEED_SHAPE(OUT, IN));
    heed_tensor *bias = heed_requires_grad(heed_zeros(g, HEED_F32, HEED_SHAPE(OUT)));
    heed_tensor *c = heed_zeros(g, HEED_F32, HEED_SHAPE(M, OUT));
    float *C = c->data;
    heed_rng r = heed_rng_make(12, 0);
    for (int64_t i = 0; i < M * OUT; i++) C[i] = (float)ldexp(heed_rng_normal(&r), (int)heed_rng_below(&r, 40) - 20);
    heed_tensor *loss = heed_sum_all(g, heed_mul(g, c, heed_linear(g, x, w, bias))); /* dy = c */
    CHECK(heed_backward(g, loss) == HEED_OK, "%s", heed_graph_error(g));
    const float *db = heed_grad(g, bias)->data;
    int differ = 0;
    for (int j = 0; j < OUT; j++) {
        double s = 0;
        for (int i = 0; i < M; i++) s += C[i * OUT + j];
        float want = 0.0f + (float)s;
        differ += memcmp(&want, &db[j], sizeof want) != 0;
    }
    CHECK(differ == 0, "%d of %d bias gradients differ from the row-order double sum", differ, OUT);
    heed_graph_free(g);
}

static void errors_are_sticky_and_clear(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *a = heed_zeros(g, HEED_F32, HEED_SHAPE(32, 256));
    heed_tensor *b = heed_zeros(g, HEED_F32, HEED_SHAPE(128, 512));
    CHECK(heed_matmul(g, a, b) == NULL, "mismatch must fail");
    CHECK(strstr(heed_graph_error(g), "heed_matmul: a[32,256] @ b[128,512]") != NULL, "%s", heed_graph_error(g));
    CHECK(heed_add(g, a, a) == NULL, "sticky: later ops return NULL");
    CHECK(strstr(heed_graph_error(g), "heed_matmul") != NULL, "first error kept");
    heed_graph_reset(g);
    CHECK(heed_graph_status(g) == HEED_OK, "reset clears");
    /* use after reset */
    heed_tensor *c = heed_zeros(g, HEED_F32, HEED_SHAPE(2));
    heed_graph_reset(g);
    CHECK(heed_add(g, c, c) == NULL, "dead tensor");
    CHECK_ERR(g, HEED_ERR_STATE, "heed_graph_reset");
    /* NULL, mixed dtypes, bad dims */
    CHECK(heed_add(g, NULL, NULL) == NULL, "null");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_add: a is NULL");
    heed_tensor *d32 = heed_zeros(g, HEED_F32, HEED_SHAPE(2)), *d64 = heed_zeros(g, HEED_F64, HEED_SHAPE(2));
    CHECK(heed_mul(g, d32, d64) == NULL, "mixed");
    CHECK_ERR(g, HEED_ERR_DTYPE, "dtypes must match");
    CHECK(heed_zeros(g, HEED_F32, HEED_SHAPE(2, -3)) == NULL, "negative");
    CHECK_ERR(g, HEED_ERR_SHAPE, "must be >= 0");
    CHECK(heed_zeros(g, HEED_F32, HEED_SHAPE(1 << 30, 1 << 30, 1 << 30)) == NULL, "huge");
    CHECK_ERR(g, HEED_ERR_SHAPE, "too large");
    CHECK(heed_zeros(g, HEED_F32, ((heed_shape){.ndim = 7})) == NULL, "ndim");
    CHECK_ERR(g, HEED_ERR_SHAPE, "dims");
    heed_tensor *e = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3)), *f = heed_zeros(g, HEED_F32, HEED_SHAPE(4, 3));
    CHECK(heed_add(g, e, f) == NULL, "broadcast");
    CHECK_ERR(g, HEED_ERR_SHAPE, "do not broadcast");
    e = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3)), f = heed_zeros(g, HEED_F32, HEED_SHAPE(4, 3));
    CHECK(heed_matmul_t(g, e, f, HEED_TRANS_B) != NULL, "e @ f^T: %s", heed_graph_error(g));
    CHECK(heed_matmul_t(g, e, f, HEED_TRANS_B | 4) == NULL, "unknown matmul flag");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_matmul_t: flags = 6 (0 or HEED_TRANS_A | HEED_TRANS_B)");
    heed_graph *other = heed_graph_new(ctx);
    heed_tensor *o = heed_zeros(other, HEED_F32, HEED_SHAPE(2));
    heed_tensor *h = heed_zeros(g, HEED_F32, HEED_SHAPE(2));
    CHECK(heed_add(g, h, o) == NULL, "other graph");
    CHECK_ERR(g, HEED_ERR_STATE, "another graph");
    CHECK(heed_backward(g, NULL) != HEED_OK, "backward NULL");
    CHECK_ERR(g, HEED_ERR_ARG, "loss is NULL");
    heed_graph_free(other);
    heed_graph_free(g);
    CHECK(heed_add(NULL, NULL, NULL) == NULL, "NULL graph");
}

static void params_store(void) {
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_tensor *w = heed_param(P, "w", HEED_SHAPE(64, 32), heed_init_xavier_uniform(1.0));
    heed_tensor *q = heed_param(P, "q", HEED_SHAPE(16, 40), heed_init_orthogonal(1.0));
    heed_tensor *b = heed_param(P, "b", HEED_SHAPE(7), heed_init_constant(0.5));
    CHECK(w && q && b, "%s", heed_ctx_error(ctx));
    double bound = sqrt(6.0 / 96), mx = 0;
    for (int64_t i = 0; i < w->numel; i++) mx = fmax(mx, check_err(heed_get(w, i), 0));
    CHECK(mx <= bound && mx > 0.9 * bound, "xavier bound %g vs %g", mx, bound);
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) {
            double d = 0;
            for (int k = 0; k < 40; k++) d += heed_get(q, i * 40 + k) * heed_get(q, j * 40 + k);
            CHECK_CLOSE(d, i == j ? 1.0 : 0.0, 1e-5);
        }
    CHECK(heed_get(b, 6) == 0.5, "constant");
    CHECK(heed_params_offset(P, 1) % 16 == 0 && heed_params_offset(P, 2) % 16 == 0, "aligned");
    CHECK((char *)q->data == (char *)heed_params_values(P) + heed_params_offset(P, 1) * 4, "flat buffer");
    CHECK(heed_param(P, "w", HEED_SHAPE(2), heed_init_zeros()) == NULL, "duplicate");
    CHECK(strstr(heed_ctx_error(ctx), "exists") != NULL, "%s", heed_ctx_error(ctx));
    CHECK(heed_param(P, "v", HEED_SHAPE(3), heed_init_xavier_uniform(1)) == NULL, "1-D xavier");
    CHECK(heed_param(P, "n", HEED_SHAPE(-1), heed_init_zeros()) == NULL, "negative");
    CHECK(heed_params_count(P) == 3, "count");
    CHECK(heed_params_at(P, 3) == NULL && strstr(heed_ctx_error(ctx), "heed_params_at: index 3 is outside [0, 3)"),
          "at 3: %s", heed_ctx_error(ctx));
    CHECK(heed_params_offset(P, -1) == -1 && strstr(heed_ctx_error(ctx), "heed_params_offset: index -1 is outside"),
          "offset -1: %s", heed_ctx_error(ctx));
    CHECK(heed_params_find(P, "nope") == NULL, "find a missing name");
    /* Same seed and name -> same values, whatever the order of declaration. */
    heed_params *P2 = heed_params_new(ctx, HEED_F32);
    heed_param(P2, "b", HEED_SHAPE(7), heed_init_zeros());
    heed_tensor *w2 = heed_param(P2, "w", HEED_SHAPE(64, 32), heed_init_xavier_uniform(1.0));
    CHECK(memcmp(w2->data, heed_params_find(P, "w")->data, 64 * 32 * 4) == 0, "deterministic init");
    heed_params_free(P2);
    heed_params_free(P);
}

/* Initialisers refuse what torch.nn.init refuses (uniform lo > hi, normal std < 0) and
 * non-finite arguments; before, uniform(1, -1) silently drew from [-1, 1] reversed,
 * normal(0, -1) flipped the sign and constant(NaN) filled the parameter with NaN. */
static void init_arguments_checked(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    struct {
        heed_init init;
        const char *needle;
    } bad[] = {
        {heed_init_uniform(1, -1), "heed_param: p: uniform(1, -1) needs lo <= hi"},
        {heed_init_normal(0, -1), "heed_param: p: normal(0, -1) needs std >= 0"},
        {heed_init_constant(NAN), "heed_param: p: constant(nan): the argument must be finite"},
        {heed_init_uniform(0, INFINITY), "uniform(0, inf): arguments must be finite"},
        {heed_init_normal(NAN, 1), "normal(nan, 1)"},
        {heed_init_xavier_uniform(INFINITY), "xavier_uniform(inf)"},
        {heed_init_kaiming_normal(NAN), "kaiming_normal(nan)"},
        {heed_init_orthogonal(-INFINITY), "orthogonal(-inf)"},
        {(heed_init){(heed_init_kind)42, 0, 0}, "unknown init kind 42"},
    };
    for (int i = 0; i < (int)(sizeof bad / sizeof *bad); i++) {
        CHECK(heed_param(P, "p", HEED_SHAPE(2, 3), bad[i].init) == NULL && strstr(heed_ctx_error(ctx), bad[i].needle),
              "case %d: want '%s', got '%s'", i, bad[i].needle, heed_ctx_error(ctx));
        CHECK(heed_params_count(P) == 0, "case %d: a refused parameter is not added", i);
    }
    /* the edges are fine: an empty range, a zero std, a negative gain */
    heed_tensor *u = heed_param(P, "u", HEED_SHAPE(3), heed_init_uniform(0.5, 0.5));
    heed_tensor *n = heed_param(P, "n", HEED_SHAPE(3), heed_init_normal(2, 0));
    heed_tensor *x = heed_param(P, "x", HEED_SHAPE(2, 2), heed_init_xavier_normal(-1));
    CHECK(u && n && x && heed_get(u, 2) == 0.5 && heed_get(n, 1) == 2, "%s", heed_ctx_error(ctx));
    /* heed_param_init checks the same, and leaves the values alone */
    CHECK(heed_param_init(P, u, heed_init_uniform(3, 2)) == HEED_ERR_ARG && heed_get(u, 0) == 0.5, "%s",
          heed_ctx_error(ctx));
    heed_params_free(P);
}

static heed_tensor *fn_binary(heed_graph *g, heed_tensor **x, void *u) {
    (void)u;
    /* broadcast [2,3,4] with [3,1] and [4] */
    heed_tensor *a = heed_mul(g, x[0], x[1]);
    a = heed_sub(g, a, x[2]);
    a = heed_div(g, a, heed_add(g, heed_mul(g, x[1], x[1]), heed_full(g, x[0]->dtype, HEED_SHAPE(1), 1.5)));
    return heed_add(g, a, x[2]);
}

static heed_tensor *fn_matmul(heed_graph *g, heed_tensor **x, void *u) {
    int mode = *(int *)u;
    switch (mode) {
    case 0: return heed_matmul(g, x[0], x[1]);
    case 1: return heed_matmul_t(g, x[0], x[1], HEED_TRANS_A);
    case 2: return heed_matmul_t(g, x[0], x[1], HEED_TRANS_B);
    default: return heed_matmul_t(g, x[0], x[1], HEED_TRANS_A | HEED_TRANS_B);
    }
}

static heed_tensor *fn_linear(heed_graph *g, heed_tensor **x, void *u) {
    return heed_linear(g, x[0], x[1], u ? x[2] : NULL);
}

static void gradchecks(void) {
    heed_gradcheck_input bin[3] = {{HEED_SHAPE(2, 3, 4)}, {HEED_SHAPE(3, 1)}, {HEED_SHAPE(4)}};
    CHECK_GRAD(ctx, fn_binary, NULL, 3, bin, NULL);
    check_f32_vs_f64(ctx, fn_binary, NULL, 3, bin, 1e-5, "binary");
    /* 2-D with every transpose; batched; batched a with shared 2-D b */
    for (int mode = 0; mode < 4; mode++) {
        heed_gradcheck_input mm[2] = {{mode & 1 ? HEED_SHAPE(5, 3) : HEED_SHAPE(3, 5)},
                                      {mode >= 2 ? HEED_SHAPE(7, 5) : HEED_SHAPE(5, 7)}};
        CHECK_GRAD(ctx, fn_matmul, &mode, 2, mm, NULL);
        heed_gradcheck_input bm[2] = {{mode & 1 ? HEED_SHAPE(2, 3, 5, 3) : HEED_SHAPE(2, 3, 3, 5)},
                                      {mode >= 2 ? HEED_SHAPE(2, 3, 7, 5) : HEED_SHAPE(2, 3, 5, 7)}};
        CHECK_GRAD(ctx, fn_matmul, &mode, 2, bm, NULL);
        heed_gradcheck_input sb[2] = {{mode & 1 ? HEED_SHAPE(4, 5, 3) : HEED_SHAPE(4, 3, 5)},
                                      {mode >= 2 ? HEED_SHAPE(7, 5) : HEED_SHAPE(5, 7)}};
        CHECK_GRAD(ctx, fn_matmul, &mode, 2, sb, NULL);
        check_f32_vs_f64(ctx, fn_matmul, &mode, 2, sb, 1e-5, "matmul");
    }
    heed_gradcheck_input lin[3] = {{HEED_SHAPE(2, 3, 5)}, {HEED_SHAPE(4, 5)}, {HEED_SHAPE(4)}};
    CHECK_GRAD(ctx, fn_linear, (void *)1, 3, lin, NULL);
    CHECK_GRAD(ctx, fn_linear, NULL, 2, lin, NULL);
}

/* The checker must catch a wrong gradient: a deliberately broken op. */
static heed_tensor *fn_broken(heed_graph *g, heed_tensor **x, void *u) {
    (void)u;
    /* detach one factor: forward x*x, backward sees only one path -> gradient x, not 2x */
    return heed_mul(g, x[0], heed_detach(g, x[0]));
}

static void checker_catches_errors(void) {
    heed_gradcheck_input in[1] = {{HEED_SHAPE(4)}};
    heed_gradcheck_result r;
    heed_status s = heed_gradcheck(ctx, fn_broken, NULL, 1, in, NULL, &r);
    CHECK(s == HEED_ERR_GRADCHECK && !r.passed, "broken gradient must fail: %s", r.report);
    CHECK(strstr(heed_ctx_error(ctx), "input 0") != NULL, "%s", heed_ctx_error(ctx));
}

/* The same broken square, scaled: gradients of order `scale`. Input 8 of 9 (the others
 * are unused) when u says so. */
static heed_tensor *fn_broken_scaled(heed_graph *g, heed_tensor **x, void *u) {
    const double *scale = u;
    heed_tensor *v = x[scale[1] > 0 ? 8 : 0];
    return heed_scale(g, heed_mul(g, v, heed_detach(g, v)), scale[0]);
}

/* tanh of columns 2.. of x[3, 5]: columns 0 and 1 have zero gradients, analytic and numeric. */
static heed_tensor *fn_partly_used(heed_graph *g, heed_tensor **x, void *u) {
    (void)u;
    return heed_tanh(g, heed_slice(g, x[0], 1, 2, 5));
}

static heed_tensor *fn_square(heed_graph *g, heed_tensor **x, void *u) {
    const double *scale = u;
    return heed_scale(g, heed_mul(g, x[0], x[0]), *scale);
}

/* The report: the element with the largest error relative to its tolerance, the
 * difference and that ratio, an absolute tolerance scaled to the gradients, any input's
 * name. Each of these checks failed before: a wholly wrong gradient of order 1e-5 passed
 * atol 1e-5; a passing check named a 0/0 element (unused input) as its worst; input 8 was
 * just "input"; atol = 0 could not be asked for; a negative eps was silently the default. */
static void checker_report(void) {
    heed_gradcheck_result r;
    /* a wrong gradient (half the true one) of order 1e-5 fails */
    double small[2] = {1e-5, 0};
    heed_gradcheck_input in[1] = {{HEED_SHAPE(6)}};
    CHECK(heed_gradcheck(ctx, fn_broken_scaled, small, 1, in, NULL, &r) == HEED_ERR_GRADCHECK && !r.passed,
          "a wrong gradient of order 1e-5 must fail: %s", r.report);
    CHECK(r.max_grad > 1e-6 && r.max_grad < 2e-5 && r.atol == 1e-5 * 1e-3, "automatic atol %g for gradients up to %g",
          r.atol, r.max_grad);
    /* the numbers the report gives are what they say */
    CHECK(r.worst_diff == fabs(r.analytic - r.numeric) &&
              fabs(r.worst_ratio - r.worst_diff / (r.atol + 1e-3 * fabs(r.numeric))) <= 1e-12 * r.worst_ratio &&
              r.worst_ratio > 1,
          "diff %g ratio %g: %s", r.worst_diff, r.worst_ratio, r.report);
    CHECK(strstr(r.report, "x its tolerance") && strstr(r.report, "atol 1e-08 automatic"), "%s", r.report);
    /* the worst of a passing check is a real gradient, not an unused 0/0 element */
    heed_gradcheck_input used[1] = {{HEED_SHAPE(3, 5)}};
    CHECK(heed_gradcheck(ctx, fn_partly_used, NULL, 1, used, NULL, &r) == HEED_OK && r.passed, "%s", r.report);
    CHECK(r.worst_index % 5 >= 2 && r.worst_ratio > 0 && r.worst_ratio <= 1 && r.numeric != 0,
          "worst at [%lld] (columns 0 and 1 are unused): %s", (long long)r.worst_index, r.report);
    /* any input is named by its number */
    double nine[2] = {1, 1};
    heed_gradcheck_input many[9];
    for (int i = 0; i < 9; i++) many[i] = (heed_gradcheck_input){.shape = HEED_SHAPE(3), .no_grad = i < 8};
    CHECK(heed_gradcheck(ctx, fn_broken_scaled, nine, 9, many, NULL, &r) == HEED_ERR_GRADCHECK, "%s", r.report);
    CHECK(strcmp(r.worst_name, "input 8") == 0 && strstr(heed_ctx_error(ctx), "worst at input 8["), "%s",
          heed_ctx_error(ctx));
    /* explicit tolerances: HEED_ZERO is atol = 0, used as given */
    double one = 1;
    CHECK(heed_gradcheck(ctx, fn_square, &one, 1, in, &(heed_gradcheck_opts){.atol = HEED_ZERO}, &r) == HEED_OK &&
              r.atol == 0 && !strstr(r.report, "automatic"),
          "%s", r.report);
    CHECK(heed_gradcheck(ctx, fn_square, &one, 1, in, &(heed_gradcheck_opts){.atol = 1e-4}, &r) == HEED_OK &&
              r.atol == 1e-4,
          "%s", r.report);
    /* gradients below even the smallest automatic atol pass, with a warning */
    double tiny = 1e-12;
    CHECK(heed_gradcheck(ctx, fn_square, &tiny, 1, in, NULL, &r) == HEED_OK && r.weak && strstr(r.report, "WARNING"),
          "%s", r.report);
    CHECK(heed_gradcheck(ctx, fn_square, &one, 1, in, NULL, &r) == HEED_OK && !r.weak && !strstr(r.report, "WARNING"),
          "%s", r.report);
    /* bad options are refused */
    CHECK(heed_gradcheck(ctx, fn_square, &one, 1, in, &(heed_gradcheck_opts){.eps = -1e-6}, &r) == HEED_ERR_ARG &&
              strstr(heed_ctx_error(ctx), "eps = -1e-06"),
          "%s", heed_ctx_error(ctx));
    CHECK(heed_gradcheck(ctx, fn_square, &one, 1, in, &(heed_gradcheck_opts){.rtol = NAN}, &r) == HEED_ERR_ARG &&
              strstr(heed_ctx_error(ctx), "rtol = nan"),
          "%s", heed_ctx_error(ctx));
    CHECK(heed_gradcheck(ctx, fn_square, &one, 1, in, &(heed_gradcheck_opts){.eps = HEED_ZERO}, &r) == HEED_ERR_ARG &&
              strstr(heed_ctx_error(ctx), "eps = 0"),
          "%s", heed_ctx_error(ctx));
}

static void params_get_gradients(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_tensor *w = heed_param(P, "w", HEED_SHAPE(3, 4), heed_init_normal(0, 1));
    heed_tensor *b = heed_param(P, "b", HEED_SHAPE(3), heed_init_normal(0, 1));
    heed_graph *g = heed_graph_new(ctx);
    for (int step = 0; step < 3; step++) { /* the same gradient after zeroing each step */
        heed_graph_reset(g);
        heed_params_zero_grad(P);
        heed_tensor *x = heed_full(g, HEED_F64, HEED_SHAPE(2, 4), 0.5);
        heed_tensor *loss = heed_sum_all(g, heed_linear(g, x, w, b));
        CHECK(heed_backward(g, loss) == HEED_OK, "%s", heed_graph_error(g));
        /* d sum / d w[i][j] = sum_rows x = 1.0, d/db = 2 */
        CHECK_CLOSE(((double *)w->grad)[5], 1.0, 1e-12);
        CHECK_CLOSE(((double *)b->grad)[2], 2.0, 1e-12);
    }
    /* frozen parameter: no gradient */
    heed_param_freeze(w, true);
    heed_graph_reset(g);
    heed_params_zero_grad(P);
    heed_tensor *x = heed_full(g, HEED_F64, HEED_SHAPE(2, 4), 0.5);
    heed_backward(g, heed_sum_all(g, heed_linear(g, x, w, b)));
    CHECK(((double *)w->grad)[5] == 0, "frozen");
    /* no-grad region records nothing */
    heed_graph_reset(g);
    heed_no_grad_begin(g);
    x = heed_full(g, HEED_F64, HEED_SHAPE(2, 4), 0.5);
    heed_tensor *y = heed_linear(g, x, w, b);
    heed_no_grad_end(g);
    CHECK(y && heed_graph_nodes(g) == 0, "no-grad recorded %lld nodes", (long long)heed_graph_nodes(g));
    /* no input features: y is the bias on every row, which gets one gradient per row */
    heed_tensor *w0 = heed_param(P, "w0", HEED_SHAPE(3, 0), heed_init_zeros());
    heed_graph_reset(g);
    heed_params_zero_grad(P);
    y = heed_linear(g, heed_full(g, HEED_F64, HEED_SHAPE(2, 0), 0), w0, b);
    CHECK(y && heed_backward(g, heed_sum_all(g, y)) == HEED_OK, "%s", heed_graph_error(g));
    for (int i = 0; i < 6; i++) CHECK_CLOSE(heed_get(y, i), heed_get(b, i % 3), 1e-15);
    CHECK_CLOSE(((double *)b->grad)[1], 2.0, 1e-12);
    heed_graph_free(g);
    heed_params_free(P);
}

static void arena_settles(void) {
    heed_graph *g = heed_graph_new(ctx);
    for (int step = 0; step < 5; step++) {
        heed_graph_reset(g);
        for (int i = 0; i < 50; i++) heed_zeros(g, HEED_F32, HEED_SHAPE(1000, 100));
    }
    size_t reserved = heed_graph_bytes(g);
    heed_graph_reset(g);
    for (int i = 0; i < 50; i++) heed_zeros(g, HEED_F32, HEED_SHAPE(1000, 100));
    CHECK(heed_graph_bytes(g) == reserved, "steady state allocates nothing new");
    CHECK(heed_graph_status(g) == HEED_OK, "%s", heed_graph_error(g));
    heed_graph_free(g);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 42});
    RUN(philox_known_answers);
    RUN(backward_accumulates_over_uses);
    RUN(f32_add_is_the_double_path_bitwise);
    RUN(linear_bias_grad_is_the_row_order_sum);
    RUN(errors_are_sticky_and_clear);
    RUN(params_store);
    RUN(init_arguments_checked);
    RUN(gradchecks);
    RUN(checker_catches_errors);
    RUN(checker_report);
    RUN(params_get_gradients);
    RUN(arena_settles);
    heed_ctx_free(ctx);
    return check_summary();
}
