/* Elementwise unary ops: gradient checks, f32 vs f64, the AVX2/SLEEF f32 path against
 * libm (and against the scalar fallback), extreme inputs, bad input. */
#include "check.h"
#include "heed/elementwise.h"
#include "heed/reduce.h"

#include <float.h>

/* Test hook in graph/simd.c: every kernel on its scalar path (unary: f32 through the double
 * formulas). */
void heed__force_scalar(bool on);

static heed_ctx *ctx;

typedef enum {
    NEG,
    SCALE,
    ADD_SCALAR,
    EXP,
    LOG,
    SQRT,
    POW,
    RELU,
    LEAKY,
    GELU,
    GELU_TANH,
    SIGMOID,
    TANH,
    SOFTPLUS
} kind;

typedef struct {
    const char *name;
    kind k;
    double arg;
    double lo, hi;   /* input range for the gradient check */
    bool off_kink;   /* keep |x| >= 0.1 (relu, leaky_relu) */
    double wlo, whi; /* wide input range for the SLEEF vs libm comparison */
} ucase;

static const ucase cases[] = {
    {"neg", NEG, 0, -2, 2, false, -100, 100},
    {"scale", SCALE, -1.75, -2, 2, false, -100, 100},
    {"add_scalar", ADD_SCALAR, 0.625, -2, 2, false, -100, 100},
    {"exp", EXP, 0, -2, 2, false, -80, 80},
    {"log", LOG, 0, 0.2, 3, false, 1e-6, 1e6},
    {"sqrt", SQRT, 0, 0.2, 3, false, 0, 1e6},
    {"pow 2.5", POW, 2.5, 0.2, 3, false, 0, 100},
    {"pow -1.5", POW, -1.5, 0.2, 3, false, 1e-3, 100},
    {"pow 3", POW, 3, -2, 2, false, -30, 30},
    {"pow 0", POW, 0, -2, 2, false, -30, 30},
    {"relu", RELU, 0, -1, 1, true, -100, 100},
    {"leaky_relu", LEAKY, 0.07, -1, 1, true, -100, 100},
    {"gelu", GELU, 0, -3, 3, false, -9, 9},
    {"gelu_tanh", GELU_TANH, 0, -3, 3, false, -5, 5},
    {"sigmoid", SIGMOID, 0, -4, 4, false, -80, 80},
    {"tanh", TANH, 0, -3, 3, false, -20, 20},
    {"softplus", SOFTPLUS, 0, -4, 4, false, -80, 80},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

/* The three switches list every kind and have no default, so -Wswitch flags a kind added
 * to the enum but not here; a value outside the enum fails loudly at run time. */
static heed_tensor *apply(heed_graph *g, kind k, heed_tensor *x, double a) {
    switch (k) {
    case NEG: return heed_neg(g, x);
    case SCALE: return heed_scale(g, x, a);
    case ADD_SCALAR: return heed_add_scalar(g, x, a);
    case EXP: return heed_exp(g, x);
    case LOG: return heed_log(g, x);
    case SQRT: return heed_sqrt(g, x);
    case POW: return heed_pow(g, x, a);
    case RELU: return heed_relu(g, x);
    case LEAKY: return heed_leaky_relu(g, x, a);
    case GELU: return heed_gelu(g, x);
    case GELU_TANH: return heed_gelu_tanh(g, x);
    case SIGMOID: return heed_sigmoid(g, x);
    case TANH: return heed_tanh(g, x);
    case SOFTPLUS: return heed_softplus(g, x);
    }
    CHECK(false, "apply: unknown op %d", (int)k);
    return NULL;
}

/* dy/dx in double from the float input and output. */
static double reference_grad(kind k, double x, double y, double a) {
    switch (k) {
    case NEG: return -1;
    case SCALE: return a;
    case ADD_SCALAR: return 1;
    case EXP: return y;
    case LOG: return 1 / x;
    case SQRT: return 1 / (2 * y);
    case POW: return a == 0 ? 0 : a * pow(x, a - 1);
    case RELU: return x > 0;
    case LEAKY: return x > 0 ? 1 : a;
    case GELU: return 0.5 * erfc(-x / sqrt(2.0)) + x * exp(-x * x / 2) / sqrt(2 * M_PI);
    case GELU_TANH: {
        double u = sqrt(2 / M_PI) * (x + 0.044715 * x * x * x), t = tanh(u);
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * sqrt(2 / M_PI) * (1 + 3 * 0.044715 * x * x);
    }
    case SIGMOID: return y * (1 - y);
    case TANH: return 1 - y * y;
    case SOFTPLUS: return 1 / (1 + exp(-x));
    }
    CHECK(false, "reference_grad: unknown op %d", (int)k);
    return NAN;
}

/* The reference, written independently of the library in double with libm. */
static double reference(kind k, double x, double a) {
    switch (k) {
    case NEG: return -x;
    case SCALE: return a * x;
    case ADD_SCALAR: return x + a;
    case EXP: return exp(x);
    case LOG: return log(x);
    case SQRT: return sqrt(x);
    case POW: return pow(x, a);
    case RELU: return x > 0 ? x : 0;
    case LEAKY: return x > 0 ? x : a * x;
    case GELU: return 0.5 * x * erfc(-x / sqrt(2.0)); /* = x (1 + erf(x/sqrt2))/2 without cancellation */
    case GELU_TANH: return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case SIGMOID: return 1 / (1 + exp(-x));
    case TANH: return tanh(x);
    case SOFTPLUS: return log1p(exp(x));
    }
    CHECK(false, "reference: unknown op %d", (int)k);
    return NAN;
}

static heed_tensor *fn_case(heed_graph *g, heed_tensor **x, void *u) {
    const ucase *c = u;
    return apply(g, c->k, x[0], c->arg);
}

static void fill_case(const ucase *c, double *d, int64_t n, uint64_t seed) {
    heed_rng r = heed_rng_make(seed, 3);
    for (int64_t i = 0; i < n; i++) {
        double u = heed_rng_uniform(&r);
        if (c->off_kink) d[i] = (heed_rng_uniform(&r) < 0.5 ? -1 : 1) * (0.1 + 0.9 * u);
        else d[i] = c->lo + (c->hi - c->lo) * u;
    }
}

static void gradcheck_every_op(void) {
    /* odd sizes; a 1027-element tensor also covers the vector tail */
    static const heed_shape shapes[2] = {HEED_SHAPE(3, 5, 7), HEED_SHAPE(1027)};
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < NCASES; i++) {
            int64_t n = s == 0 ? 105 : 1027;
            double *d = malloc((size_t)n * sizeof *d);
            fill_case(&cases[i], d, n, 10 + (uint64_t)i);
            heed_gradcheck_input in[1] = {{shapes[s], d, false}};
            heed_gradcheck_result r;
            heed_status st = heed_gradcheck(ctx, fn_case, (void *)&cases[i], 1, in, NULL, &r);
            CHECK(st == HEED_OK, "gradcheck %s: %s", cases[i].name, heed_ctx_error(ctx));
            free(d);
        }
}

static void f32_agrees_with_f64(void) {
    for (int i = 0; i < NCASES; i++) {
        double d[105];
        fill_case(&cases[i], d, 105, 20 + (uint64_t)i);
        heed_gradcheck_input in[1] = {{HEED_SHAPE(3, 5, 7), d, false}};
        check_f32_vs_f64(ctx, fn_case, (void *)&cases[i], 1, in, 1e-5, cases[i].name);
    }
}

/* f32 forward and input gradient (seed dy) of one case on n values of x. */
static void run_f32(const ucase *c, const float *x, const float *dy, int64_t n, float *y, float *gx) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *xt = heed_requires_grad(heed_input(g, HEED_F32, HEED_SHAPE(n), x));
    heed_tensor *yt = apply(g, c->k, xt, c->arg);
    CHECK(yt != NULL, "%s: %s", c->name, heed_graph_error(g));
    if (yt) {
        memcpy(y, yt->data, (size_t)n * sizeof *y);
        heed_tensor *seed = heed_input(g, HEED_F32, HEED_SHAPE(n), dy);
        CHECK(heed_backward_with(g, yt, seed) == HEED_OK, "%s: %s", c->name, heed_graph_error(g));
        if (xt->grad) memcpy(gx, xt->grad, (size_t)n * sizeof *gx);
    }
    heed_graph_free(g);
}

/* The AVX2/SLEEF f32 path against libm in double on the same float inputs, over wide
 * ranges and sizes with every tail length; and against the scalar fallback path. */
static void sleef_path_matches_libm(void) {
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        printf("note: no AVX2+FMA on this CPU; both runs below take the scalar path\n");
    static const int64_t sizes[] = {1, 7, 8, 9, 1027, 100003};
    for (int i = 0; i < NCASES; i++) {
        const ucase *c = &cases[i];
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            int64_t n = sizes[s];
            float *x = malloc((size_t)n * sizeof *x), *dy = malloc((size_t)n * sizeof *dy);
            float *y = calloc((size_t)n, sizeof *y), *gx = calloc((size_t)n, sizeof *gx);
            float *y2 = calloc((size_t)n, sizeof *y2), *gx2 = calloc((size_t)n, sizeof *gx2);
            heed_rng r = heed_rng_make(77, (uint64_t)(i * 10 + (int)s));
            for (int64_t k = 0; k < n; k++) {
                x[k] = (float)(c->wlo + (c->whi - c->wlo) * heed_rng_uniform(&r));
                if (c->off_kink && fabsf(x[k]) < 1e-3f) x[k] = 1;
                dy[k] = (float)(2 * heed_rng_uniform(&r) - 1);
            }
            run_f32(c, x, dy, n, y, gx);
            heed__force_scalar(true);
            run_f32(c, x, dy, n, y2, gx2);
            heed__force_scalar(false);
            /* Relative error against the double reference on the float input, in units of
             * float epsilon; a few ulps from the vector functions and the 2-3 roundings
             * of each formula. gelu_tanh and softplus round their float argument chain
             * (x^3, e^-|x|), which their condition number amplifies: ~|2u| for gelu_tanh. */
            double worst = 0, worst_fb = 0;
            int64_t at = 0;
            for (int64_t k = 0; k < n; k++) {
                double ref = reference(c->k, x[k], c->arg);
                double scale = fmax(fabs(ref), FLT_MIN);
                double e = check_rel_err(y[k], ref, scale) / FLT_EPSILON;
                if (c->k == GELU_TANH) e /= fmax(1, 1.6 * fabs(x[k]) * (1 + 0.045 * x[k] * x[k]));
                if (c->k == GELU) e /= fmax(1, x[k] * x[k]); /* erfc(z) has condition ~2z^2 */
                if (e > worst) worst = e, at = k;
                worst_fb = fmax(worst_fb, check_rel_err(y2[k], ref, scale) / FLT_EPSILON);
            }
            CHECK(worst <= 4, "%s n=%lld: SLEEF path %.2f ulp off libm at x=%.9g (y=%.9g)", c->name, (long long)n,
                  worst, x[at], y[at]);
            CHECK(worst_fb <= 4, "%s: scalar path %.2f ulp off libm", c->name, worst_fb);
            /* Backward against dy * f'(x, y) in double, where y is the path's own output
             * (sigmoid, tanh and exp differentiate through the saved y, as PyTorch does, so
             * near saturation f' inherits y's rounding). The gelu derivatives Phi + x phi
             * cross zero (x ~ -0.75): there the scale is |dy| rather than |dy f'|. */
            double gworst = 0;
            for (int64_t k = 0; k < n; k++) {
                double ref = dy[k] * reference_grad(c->k, x[k], y[k], c->arg);
                double ref2 = dy[k] * reference_grad(c->k, x[k], y2[k], c->arg);
                double scale = fmax(fabs(ref), FLT_MIN), scale2 = fmax(fabs(ref2), FLT_MIN);
                if (c->k == GELU_TANH || c->k == GELU) {
                    scale = fmax(scale, fabs(dy[k]) * fmax(1, 1.6 * fabs(x[k]) * (1 + 0.045 * x[k] * x[k])));
                    scale2 = fmax(scale2, fabs(dy[k]));
                }
                double e = fmax(check_rel_err(gx[k], ref, scale), check_rel_err(gx2[k], ref2, scale2)) / FLT_EPSILON;
                gworst = fmax(gworst, e);
            }
            CHECK(gworst <= 4, "%s n=%lld: backward %.2f ulp off dy f'(x, y)", c->name, (long long)n, gworst);
            free(x), free(dy), free(y), free(gx), free(y2), free(gx2);
        }
    }
}

/* Saturated inputs: finite, correct values and gradients in both dtypes. */
static void extremes_are_finite_and_correct(void) {
    double xs[6] = {-100, 100, -30, 30, 0, -1e-30};
    for (int dt = 0; dt < 2; dt++) {
        heed_dtype d = dt ? HEED_F64 : HEED_F32;
        double tol = dt ? 1e-13 : 1e-6;
        heed_graph *g = heed_graph_new(ctx);
        heed_tensor *x = heed_requires_grad(heed_input_f64(g, d, HEED_SHAPE(6), xs));
        heed_tensor *sg = heed_sigmoid(g, x), *sp = heed_softplus(g, x), *th = heed_tanh(g, x);
        heed_tensor *ge = heed_gelu(g, x), *gt = heed_gelu_tanh(g, x);
        heed_tensor *all = heed_add(g, heed_add(g, heed_add(g, sg, sp), heed_add(g, th, ge)), gt);
        CHECK(heed_backward(g, heed_sum_all(g, all)) == HEED_OK, "%s", heed_graph_error(g));
        for (int i = 0; i < 6; i++) {
            double v = xs[i];
            double e = exp(-fabs(v));
            double sig = v >= 0 ? 1 / (1 + e) : e / (1 + e);
            double soft = fmax(v, 0) + log1p(e);
            /* f32 sigmoid(-100) ~ 3.7e-44 is a denormal: compare on an absolute scale there */
            double atol = dt ? 0 : 2e-45;
            CHECK(fabs(heed_get(sg, i) - sig) <= tol * sig + atol, "sigmoid(%g) = %.17g, want %.17g", v,
                  heed_get(sg, i), sig);
            CHECK(fabs(heed_get(sp, i) - soft) <= tol * soft + atol, "softplus(%g) = %.17g, want %.17g", v,
                  heed_get(sp, i), soft);
            CHECK_CLOSE(heed_get(th, i), tanh(v), tol);
            CHECK(isfinite(heed_get(ge, i)) && isfinite(heed_get(gt, i)), "gelu(%g) finite", v);
            CHECK_CLOSE(heed_get(ge, i), v * 0.5 * erfc(-v / sqrt(2.0)), tol);
            /* d/dx of the sum of all five: sigmoid' + softplus' + tanh' + gelu' + gelu_tanh' */
            double gxv = heed_get(heed_grad(g, x), i);
            CHECK(isfinite(gxv), "gradient at %g is %g", v, gxv);
        }
        /* at +-100 the derivatives are exactly known: sig' ~ 0, softplus' = sig, tanh' ~ 0,
         * gelu' = Phi (+ tiny), gelu_tanh' ~ Phi */
        CHECK_CLOSE(heed_get(heed_grad(g, x), 1), 0 + 1 + 0 + 1 + 1, tol);
        CHECK(fabs(heed_get(heed_grad(g, x), 0)) < 1e-30, "gradient at -100: %g", heed_get(heed_grad(g, x), 0));
        heed_graph_free(g);
    }
}

static void kinks_and_known_values(void) {
    heed_graph *g = heed_graph_new(ctx);
    double xs[5] = {-2, -0.0, 0, 0.5, 3};
    for (int dt = 0; dt < 2; dt++) {
        heed_dtype d = dt ? HEED_F64 : HEED_F32;
        heed_graph_reset(g);
        heed_tensor *x = heed_requires_grad(heed_input_f64(g, d, HEED_SHAPE(5), xs));
        heed_tensor *r = heed_relu(g, x), *l = heed_leaky_relu(g, x, 0.25);
        CHECK(heed_get(r, 0) == 0 && heed_get(r, 2) == 0 && heed_get(r, 4) == 3, "relu values");
        CHECK(heed_get(l, 0) == -0.5 && heed_get(l, 3) == 0.5, "leaky values");
        heed_backward(g, heed_sum_all(g, heed_add(g, r, l)));
        heed_tensor *gx = heed_grad(g, x);
        /* relu'(0) = 0, leaky'(0) = slope (PyTorch's choice at the kink) */
        CHECK(heed_get(gx, 0) == 0.25 && heed_get(gx, 2) == 0.25 && heed_get(gx, 3) == 2, "kink grads %g %g %g",
              heed_get(gx, 0), heed_get(gx, 2), heed_get(gx, 3));
        heed_tensor *p = heed_pow(g, x, 2), *s = heed_sqrt(g, heed_pow(g, x, 2)),
                    *e = heed_exp(g, heed_log(g, heed_scale(g, heed_add_scalar(g, x, 3), 2)));
        CHECK(heed_get(p, 0) == 4 && heed_get(s, 4) == 3, "pow/sqrt");
        CHECK_CLOSE(heed_get(e, 3), 7, dt ? 1e-14 : 1e-6);
        CHECK(heed_get(heed_neg(g, x), 4) == -3, "neg");
        /* GELU(1) and its tanh approximation, values from PyTorch 1.13 */
        heed_tensor *one = heed_full(g, d, HEED_SHAPE(1), 1.0);
        CHECK_CLOSE(heed_get(heed_gelu(g, one), 0), 0.8413447460685429, dt ? 1e-15 : 1e-7);
        CHECK_CLOSE(heed_get(heed_gelu_tanh(g, one), 0), 0.8411919906082768, dt ? 1e-15 : 1e-7);
    }
    heed_graph_free(g);
}

static void no_grad_records_nothing(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = heed_requires_grad(heed_full(g, HEED_F32, HEED_SHAPE(4), 0.5));
    heed_no_grad_begin(g);
    heed_tensor *y = heed_tanh(g, heed_exp(g, x));
    heed_no_grad_end(g);
    CHECK(y && heed_graph_nodes(g) == 0 && !(y->flags & HEED_REQUIRES_GRAD), "no-grad recorded");
    y = heed_tanh(g, heed_exp(g, x));
    CHECK(heed_graph_nodes(g) == 2, "recorded %lld", (long long)heed_graph_nodes(g));
    heed_graph_free(g);
}

static void bad_input(void) {
    heed_graph *g = heed_graph_new(ctx);
    for (int i = 0; i < NCASES; i++) {
        CHECK(apply(g, cases[i].k, NULL, cases[i].arg) == NULL, "%s NULL", cases[i].name);
        CHECK_ERR(g, HEED_ERR_ARG, "x is NULL");
    }
    heed_tensor *x = heed_zeros(g, HEED_F32, HEED_SHAPE(3));
    CHECK(heed_pow(g, x, NAN) == NULL, "nan p");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_pow: p = nan (must be finite)");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(3));
    CHECK(heed_scale(g, x, INFINITY) == NULL, "inf s");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_scale: s = inf");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(3));
    CHECK(heed_add_scalar(g, x, -INFINITY) == NULL, "inf c");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_add_scalar: c = -inf");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(3));
    CHECK(heed_leaky_relu(g, x, NAN) == NULL, "nan slope");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_leaky_relu: slope");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(3));
    heed_graph_reset(g);
    CHECK(heed_gelu(g, x) == NULL, "dead tensor");
    CHECK_ERR(g, HEED_ERR_STATE, "heed_gelu: x was made before the last heed_graph_reset");
    heed_graph *other = heed_graph_new(ctx);
    heed_tensor *o = heed_zeros(other, HEED_F64, HEED_SHAPE(2));
    CHECK(heed_sigmoid(g, o) == NULL, "other graph");
    CHECK_ERR(g, HEED_ERR_STATE, "heed_sigmoid: x belongs to another graph");
    CHECK(heed_exp(NULL, o) == NULL, "NULL graph");
    /* sticky: after an error every op returns NULL */
    heed_exp(g, NULL);
    CHECK(heed_exp(g, heed_zeros(g, HEED_F32, HEED_SHAPE(1))) == NULL, "sticky");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_exp: x is NULL");
    heed_graph_free(other);
    heed_graph_free(g);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 7});
    RUN(gradcheck_every_op);
    RUN(f32_agrees_with_f64);
    RUN(sleef_path_matches_libm);
    RUN(extremes_are_finite_and_correct);
    RUN(kinks_and_known_values);
    RUN(no_grad_records_nothing);
    RUN(bad_input);
    heed_ctx_free(ctx);
    return check_summary();
}
