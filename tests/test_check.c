/* The comparison helpers of check.h and check_grad32.h: a NaN, an infinity or a value one
 * ulp past the tolerance must fail each of them, equal non-finite values must match. The
 * primitives are tested through their return values; the f32-vs-f64 runners CHECK inside,
 * so their deliberate failures are taken back from the count (expect_failure). */
#include "check.h"
#include "heed/elementwise.h"
#include "check_grad32.h"

static heed_ctx *ctx;

static void err_sees_non_finite(void) {
    const double inf = INFINITY;
    /* one side non-finite, or two different non-finite values: infinite error */
    const double mismatched[][2] = {{NAN, 1},    {1, NAN},    {inf, 1},   {1, inf},   {-inf, 1}, {1, -inf},
                                    {-inf, inf}, {inf, -inf}, {NAN, inf}, {inf, NAN}, {NAN, 0},  {0, NAN}};
    for (size_t i = 0; i < sizeof mismatched / sizeof *mismatched; i++) {
        double a = mismatched[i][0], b = mismatched[i][1];
        CHECK(check_err(a, b) == inf, "check_err(%g, %g) = %g, want inf", a, b, check_err(a, b));
        CHECK(!check_close(a, b, 1e300), "check_close(%g, %g) passed", a, b);
        CHECK(check_rel_err(a, b, 2) == inf && check_rel_err(a, b, inf) == inf, "check_rel_err(%g, %g)", a, b);
    }
    /* equal non-finite values match */
    const double same[] = {NAN, inf, -inf};
    for (int i = 0; i < 3; i++) {
        CHECK(check_err(same[i], same[i]) == 0, "check_err(%g, %g) = %g", same[i], same[i],
              check_err(same[i], same[i]));
        CHECK(check_close(same[i], same[i], 0), "check_close(%g, %g) failed", same[i], same[i]);
        CHECK(check_rel_err(same[i], same[i], inf) == 0, "check_rel_err(%g, %g, inf)", same[i], same[i]);
    }
    /* finite values: |a - ref|; check_err(x, 0) is |x| with NaN as inf */
    CHECK(check_err(-1.25, 2) == 3.25 && check_err(2, -1.25) == 3.25 && check_err(-0.0, 0.0) == 0, "finite");
    CHECK(check_err(-7, 0) == 7 && check_err(NAN, 0) == inf, "bounds");
    CHECK(check_rel_err(3, 1, 4) == 0.5 && check_rel_err(3, 1, 0) == inf, "relative");
    /* the old CHECK_CLOSE passed a finite value against an infinite reference (its bound
     * tol (1 + |ref|) was infinite) */
    CHECK(!check_close(5, inf, 1e-6) && !check_close(5, -inf, 1e-6), "an infinite reference widened the bound");
}

/* At the tolerance passes, one ulp beyond fails: |1.5 - 1| = 0.25 (1 + 1) exactly. */
static void close_at_the_tolerance(void) {
    CHECK(check_close(1.5, 1, 0.25) && check_close(0.5, 1, 0.25), "exactly at the tolerance");
    CHECK(!check_close(nextafter(1.5, 2), 1, 0.25), "one ulp beyond");
    CHECK(check_close(nextafter(1.5, 1), 1, 0.25), "one ulp inside");
}

/* Normwise: max err <= tol max(floor, max |finite ref|). With ref {2, 1}, tol 0.25 the
 * bound is 0.5. */
static bool norm_ok(const double *a, const double *ref, int n, double tol) {
    check_norm c = check_norm_start(1);
    for (int i = 0; i < n; i++) check_norm_add(&c, a[i], ref[i]);
    return check_norm_ok(c, tol);
}

static void norm_sees_non_finite(void) {
    const double ref[3] = {2, 1, INFINITY};
    double a[3] = {2, 1.5, INFINITY};
    CHECK(norm_ok(a, ref, 3, 0.25), "at the tolerance (the infinite reference matches, and stays out of the scale)");
    a[1] = nextafter(1.5, 2);
    CHECK(!norm_ok(a, ref, 3, 0.25), "one ulp beyond");
    const double bad[] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 3; i++) {
        a[1] = 1, a[0] = bad[i];
        CHECK(!norm_ok(a, ref, 3, 1e300), "%g among finite values", bad[i]);
        a[0] = 2, a[2] = i ? NAN : -INFINITY;
        CHECK(!norm_ok(a, ref, 3, 1e300), "%g against an infinite reference", a[2]);
        a[2] = INFINITY;
    }
    CHECK(check_max_err((double[]){2, 1.5, INFINITY}, ref, 3) == 0.5 &&
              check_max_err((double[]){1, NAN}, (double[]){1, 1}, 2) == INFINITY,
          "check_max_err");
    /* tensors: all NaN, and different sizes */
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = heed_full(g, HEED_F32, HEED_SHAPE(5), NAN), *y = heed_full(g, HEED_F64, HEED_SHAPE(5), 1);
    heed_tensor *z = heed_full(g, HEED_F64, HEED_SHAPE(4), 1);
    CHECK(x && y && z, "%s", heed_graph_error(g));
    if (x && y && z) {
        CHECK(!check_norm_ok(check_norm_tensors(x, y, 1e-3), 1e300), "all NaN");
        CHECK(check_norm_ok(check_norm_tensors(x, x, 1e-3), 0), "NaN against the same NaN");
        CHECK(!check_norm_ok(check_norm_tensors(z, y, 1e-3), 1e300), "different sizes");
        CHECK(check_norm_ok(check_norm_tensors(y, y, 1e-3), 0), "equal");
    }
    heed_graph_free(g);
}

/* ---------------------------------------------------------------- f32 against f64 */

/* A runner that should fail: its CHECK messages print, its count is taken back. */
#define EXPECT_FAILURE(call, what)                                                                                     \
    do {                                                                                                               \
        fprintf(stderr, "(the failure below is expected: %s)\n", what);                                                \
        int before_ = check_failures;                                                                                  \
        bool passed_ = (call);                                                                                         \
        check_failures = before_;                                                                                      \
        CHECK(!passed_, "%s passed", what);                                                                            \
    } while (0)

typedef enum { SAME, NAN_IN_F32, LAST_INPUT_OFF, F64_RESULT, NAN_GRAD_IN_F32 } variant;

/* y = x[n-1]; the f32 run is wrong in the way v says */
typedef struct {
    variant v;
    int n;
} fcase;

static heed_tensor *fn_variant(heed_graph *g, heed_tensor **x, void *u) {
    const fcase *c = u;
    heed_tensor *last = x[c->n - 1];
    bool f32 = last->dtype == HEED_F32;
    if (!f32 || c->v == SAME) return heed_scale(g, last, 1);
    switch (c->v) {
    case NAN_IN_F32: return heed_log(g, heed_add_scalar(g, last, -2)); /* inputs in (-1, 1): log < 0 = NaN */
    case LAST_INPUT_OFF: return heed_scale(g, last, 1 + 1e-3);
    case F64_RESULT: return heed_zeros(g, HEED_F64, heed_tensor_shape(last));
    case NAN_GRAD_IN_F32: /* x + 0 sqrt(x x): the same forward, a NaN gradient at x = 0 */
        return heed_add(g, last, heed_scale(g, heed_sqrt(g, heed_mul(g, last, last)), 0));
    default: return NULL;
    }
}

static void f32_vs_f64_runners_fail(void) {
    heed_gradcheck_input in[20];
    for (int n = 1; n <= 20; n += 19) { /* 20: beyond the 16 inputs the runners used to take */
        for (int i = 0; i < n; i++)
            in[i] = (heed_gradcheck_input){HEED_SHAPE(2, 3), NULL, i < n - 1}; /* only the last is used */
        fcase same = {SAME, n};
        CHECK(check_f32_vs_f64(ctx, fn_variant, &same, n, in, 1e-5, "same"), "n = %d: the same function failed", n);
        CHECK(check_f32_vs_f64_grad(ctx, fn_variant, &same, n, in, 1e-5, "same"), "n = %d: same, with gradients", n);
        fcase nan = {NAN_IN_F32, n}, off = {LAST_INPUT_OFF, n}, f64 = {F64_RESULT, n};
        EXPECT_FAILURE(check_f32_vs_f64(ctx, fn_variant, &nan, n, in, 1e-5, "NaN in f32"), "NaN in f32");
        EXPECT_FAILURE(check_f32_vs_f64_grad(ctx, fn_variant, &nan, n, in, 1e-5, "NaN in f32"), "NaN in f32 (grad)");
        EXPECT_FAILURE(check_f32_vs_f64(ctx, fn_variant, &off, n, in, 1e-5, "last input off"),
                       "last input off by 1e-3");
        EXPECT_FAILURE(check_f32_vs_f64_grad(ctx, fn_variant, &off, n, in, 1e-5, "last input off"),
                       "last input off (grad)");
        EXPECT_FAILURE(check_f32_vs_f64(ctx, fn_variant, &f64, n, in, 1e-5, "f64 result"),
                       "an f64 result of the f32 run");
        EXPECT_FAILURE(check_f32_vs_f64_grad(ctx, fn_variant, &f64, n, in, 1e-5, "f64 result"), "an f64 result (grad)");
    }
    /* a NaN only in the gradient: x = 0 somewhere */
    double d[6] = {0, 0.5, -0.25, 0.75, -1, 0.125};
    heed_gradcheck_input zero[1] = {{HEED_SHAPE(2, 3), d, false}};
    fcase grad = {NAN_GRAD_IN_F32, 1};
    CHECK(check_f32_vs_f64(ctx, fn_variant, &grad, 1, zero, 1e-5, "NaN gradient"),
          "the forward of x + 0 sqrt(x x) is x");
    EXPECT_FAILURE(check_f32_vs_f64_grad(ctx, fn_variant, &grad, 1, zero, 1e-5, "NaN gradient"),
                   "a NaN gradient in f32");
}

/* CHECK_CLOSE fails on a NaN (tested through the count, taken back). */
static void check_close_macro(void) {
    int before = check_failures;
    fprintf(stderr, "(the three failures below are expected)\n");
    CHECK_CLOSE(NAN, 1.0, 1e300);
    CHECK_CLOSE(1.0, INFINITY, 1e-6);
    CHECK_CLOSE(nextafter(1.5, 2), 1.0, 0.25);
    int caught = check_failures - before;
    check_failures = before;
    CHECK(caught == 3, "CHECK_CLOSE caught %d of 3", caught);
    CHECK_CLOSE(1.5, 1.0, 0.25);
    CHECK_CLOSE(-INFINITY, -INFINITY, 0);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 5});
    RUN(err_sees_non_finite);
    RUN(close_at_the_tolerance);
    RUN(norm_sees_non_finite);
    RUN(f32_vs_f64_runners_fail);
    RUN(check_close_macro);
    heed_ctx_free(ctx);
    return check_summary();
}
