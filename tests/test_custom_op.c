/* A user-defined op through the public header only (include/heed/extend.h): softsign (its
 * kernels at the end of this file, the idiom of docs/guide.md section 6) and a row
 * log-sum-exp that saves its statistics, gradient-checked like heed's own ops. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "check.h"
#include "heed/elementwise.h"
#include "heed/extend.h"
#include "heed/matmul.h"
#include "heed/reduce.h"
#include "check_grad32.h"

static heed_ctx *ctx;

/* ---------------------------------------------------------------- softsign
 * y = x / (1 + |x|),  dy/dx = 1 / (1 + |x|)^2 */

#define T float
#define FN(name) name##_f32
#include "test_custom_op.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "test_custom_op.c"
#undef T
#undef FN

static void softsign_backward(heed_graph *g, heed_node *n) {
    heed_tensor *x = heed_node_input(n, 0), *y = heed_node_output(n, 0);
    void *dx = heed_grad_buffer(g, x);
    if (!dx) return;
    if (x->dtype == HEED_F32) softsign_backward_f32(x->data, y->grad, dx, x->numel);
    else softsign_backward_f64(x->data, y->grad, dx, x->numel);
}
static const heed_op softsign_op = {"softsign", softsign_backward};

static heed_tensor *softsign(heed_graph *g, heed_tensor *x) {
    if (!heed_check_tensor(g, "softsign", x, "x")) return NULL;
    heed_tensor *y = heed_empty(g, x->dtype, heed_tensor_shape(x));
    if (!y) return NULL;
    if (x->dtype == HEED_F32) softsign_forward_f32(x->data, y->data, x->numel);
    else softsign_forward_f64(x->data, y->data, x->numel);
    heed_record(g, &softsign_op, 1, &x, 1, &y);
    return heed_graph_ok(g) ? y : NULL;
}

/* ---------------------------------------------------------------- row log-sum-exp
 * z_b = log sum_k exp(x_bk);  dz_b/dx_bk = exp(x_bk - z_b). The forward saves z in double
 * (only when the op is recorded) and backward uses it. */

static void lse_backward(heed_graph *g, heed_node *n) {
    heed_tensor *x = heed_node_input(n, 0), *z = heed_node_output(n, 0);
    const double *saved = heed_node_saved(n);
    void *dx = heed_grad_buffer(g, x);
    if (!dx) return;
    int64_t rows = x->shape[0], k = x->shape[1];
    for (int64_t b = 0; b < rows; b++)
        for (int64_t j = 0; j < k; j++) {
            double gz = z->dtype == HEED_F32 ? ((float *)z->grad)[b] : ((double *)z->grad)[b];
            double gi = gz * exp(heed_get(x, b * k + j) - saved[b]);
            if (x->dtype == HEED_F32) ((float *)dx)[b * k + j] += (float)gi;
            else ((double *)dx)[b * k + j] += gi;
        }
}
static const heed_op lse_op = {"row_logsumexp", lse_backward};

static heed_tensor *row_logsumexp(heed_graph *g, heed_tensor *x) {
    if (!heed_check_tensor(g, "row_logsumexp", x, "x")) return NULL;
    if (x->ndim != 2) {
        char s[64];
        heed_graph_fail(g, HEED_ERR_SHAPE, "row_logsumexp: x%s must be 2-D", heed_shape_str(x, s));
        return NULL;
    }
    int64_t rows = x->shape[0], k = x->shape[1];
    heed_tensor *z = heed_empty(g, x->dtype, HEED_SHAPE(rows));
    double *saved = heed_graph_records(g, 1, &x) ? heed_graph_alloc(g, (size_t)rows * sizeof *saved) : NULL;
    if (!z || (heed_graph_records(g, 1, &x) && !saved)) return NULL;
    for (int64_t b = 0; b < rows; b++) {
        double m = -INFINITY, s = 0;
        for (int64_t j = 0; j < k; j++) m = fmax(m, heed_get(x, b * k + j));
        for (int64_t j = 0; j < k; j++) s += exp(heed_get(x, b * k + j) - m);
        double v = m + log(s);
        if (saved) saved[b] = v;
        if (x->dtype == HEED_F32) ((float *)z->data)[b] = (float)v;
        else ((double *)z->data)[b] = v;
    }
    heed_node *n = heed_record(g, &lse_op, 1, &x, 1, &z);
    heed_node_set_saved(n, saved);
    return heed_graph_ok(g) ? z : NULL;
}

/* ---------------------------------------------------------------- tests */

static heed_tensor *fn_softsign(heed_graph *g, heed_tensor **x, void *u) {
    (void)u;
    return softsign(g, x[0]);
}
/* The op inside a small model: both ops, a parameterless composition, x used twice. */
static heed_tensor *fn_model(heed_graph *g, heed_tensor **x, void *u) {
    (void)u;
    heed_tensor *h = heed_mul(g, softsign(g, heed_matmul(g, x[0], x[1])), x[0]);
    return row_logsumexp(g, h);
}

static void gradchecks(void) {
    heed_gradcheck_input one[1] = {{HEED_SHAPE(3, 5), NULL, false}};
    CHECK_GRAD(ctx, fn_softsign, NULL, 1, one, NULL);
    check_f32_vs_f64(ctx, fn_softsign, NULL, 1, one, 1e-6, "softsign");
    check_f32_vs_f64_grad(ctx, fn_softsign, NULL, 1, one, 1e-6, "softsign");
    heed_gradcheck_input two[2] = {{HEED_SHAPE(4, 4), NULL, false}, {HEED_SHAPE(4, 4), NULL, false}};
    CHECK_GRAD(ctx, fn_model, NULL, 2, two, NULL);
    check_f32_vs_f64(ctx, fn_model, NULL, 2, two, 1e-5, "model");
    check_f32_vs_f64_grad(ctx, fn_model, NULL, 2, two, 1e-5, "model");
}

/* A wrong backward must be caught by the gradient checker (the check can fail). */
static void bad_backward(heed_graph *g, heed_node *n) {
    heed_tensor *x = heed_node_input(n, 0), *y = heed_node_output(n, 0);
    double *dx = heed_grad_buffer(g, x);
    for (int64_t i = 0; dx && i < x->numel; i++) dx[i] += 1.01 * ((double *)y->grad)[i]; /* should be 1 */
}
static const heed_op bad_identity_op = {"bad_identity", bad_backward};
static heed_tensor *fn_bad(heed_graph *g, heed_tensor **x, void *u) {
    (void)u;
    heed_tensor *y = heed_empty(g, x[0]->dtype, heed_tensor_shape(x[0]));
    if (!y) return NULL;
    memcpy(y->data, x[0]->data, (size_t)x[0]->numel * heed_dtype_size(x[0]->dtype));
    heed_record(g, &bad_identity_op, 1, x, 1, &y);
    return y;
}

static void wrong_backward_is_caught(void) {
    heed_gradcheck_input one[1] = {{HEED_SHAPE(3), NULL, false}};
    heed_gradcheck_result r;
    CHECK(heed_gradcheck(ctx, fn_bad, NULL, 1, one, NULL, &r) == HEED_ERR_GRADCHECK && !r.passed,
          "a 1%% wrong backward passed: %s", r.report);
}

static void recording_rules(void) {
    heed_graph *g = heed_graph_new(ctx);
    double v[4] = {-2, -0.5, 0.5, 2};
    heed_tensor *x = heed_requires_grad(heed_input_f64(g, HEED_F64, HEED_SHAPE(2, 2), v));
    /* used twice: gradients of both uses add up. d/dx sum(softsign(x) + softsign(x)) */
    heed_tensor *y = heed_add(g, softsign(g, x), softsign(g, x));
    CHECK(heed_backward(g, heed_sum_all(g, y)) == HEED_OK, "%s", heed_graph_error(g));
    for (int i = 0; i < 4; i++) {
        double d = 1 + fabs(v[i]);
        CHECK_CLOSE(((double *)x->grad)[i], 2 / (d * d), 1e-15);
    }
    /* under no-grad nothing is recorded and nothing is saved */
    heed_graph_reset(g);
    x = heed_requires_grad(heed_input_f64(g, HEED_F64, HEED_SHAPE(2, 2), v));
    int64_t nodes = heed_graph_nodes(g);
    heed_no_grad_begin(g);
    CHECK(!heed_graph_records(g, 1, &x), "records under no-grad");
    heed_tensor *z = row_logsumexp(g, x);
    heed_no_grad_end(g);
    CHECK(z && heed_graph_nodes(g) == nodes && !(z->flags & HEED_REQUIRES_GRAD), "recorded under no-grad");
    CHECK_CLOSE(heed_get(z, 0), log(exp(-2) + exp(-0.5)), 1e-15);
    heed_graph_free(g);
}

static void bad_input(void) {
    heed_graph *g = heed_graph_new(ctx);
    CHECK(!softsign(g, NULL), "NULL accepted");
    CHECK_ERR(g, HEED_ERR_ARG, "softsign: x is NULL");
    heed_tensor *x = heed_zeros(g, HEED_F64, HEED_SHAPE(3));
    CHECK(!row_logsumexp(g, x), "1-D accepted");
    CHECK_ERR(g, HEED_ERR_SHAPE, "row_logsumexp: x[3] must be 2-D");
    x = heed_requires_grad(heed_zeros(g, HEED_F64, HEED_SHAPE(3)));
    heed_tensor *y = heed_zeros(g, HEED_F64, HEED_SHAPE(3));
    CHECK(!heed_record(g, NULL, 1, &x, 1, &y), "NULL op recorded");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_record: op (with a name and a backward)");
    static const heed_op no_backward = {"nb", NULL};
    x = heed_requires_grad(heed_zeros(g, HEED_F64, HEED_SHAPE(3)));
    y = heed_zeros(g, HEED_F64, HEED_SHAPE(3));
    CHECK(!heed_record(g, &no_backward, 1, &x, 1, &y), "op without backward recorded");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_record");
    /* a tensor of another graph as output */
    heed_graph *g2 = heed_graph_new(ctx);
    x = heed_requires_grad(heed_zeros(g, HEED_F64, HEED_SHAPE(3)));
    y = heed_zeros(g2, HEED_F64, HEED_SHAPE(3));
    CHECK(!heed_record(g, &softsign_op, 1, &x, 1, &y), "foreign output recorded");
    CHECK_ERR(g, HEED_ERR_STATE, "softsign: output belongs to another graph");
    /* anomaly mode names the user's op when its output is not finite */
    heed_graph_set_anomaly(g, true);
    double big[2] = {1e308, 1e308};
    x = heed_requires_grad(heed_input_f64(g, HEED_F64, HEED_SHAPE(1, 2), big));
    CHECK(!row_logsumexp(g, heed_mul(g, x, heed_scalar(g, HEED_F64, 10))), "inf passed anomaly mode");
    CHECK(strstr(heed_graph_error(g), "heed_mul") || strstr(heed_graph_error(g), "row_logsumexp"), "%s",
          heed_graph_error(g));
    heed_graph_free(g2);
    heed_graph_free(g);
}

/* heed_scalar_sigmoid and heed_scalar_softplus: finite at the ends, full relative
 * precision in the tails (against their series: sigmoid(x) = e^x - e^2x + ..., softplus(x)
 * = e^x - e^2x/2 + ... for x << 0), and the identities sigmoid(x) + sigmoid(-x) = 1,
 * softplus(x) - softplus(-x) = x. */
static void scalar_math(void) {
    CHECK(heed_scalar_sigmoid(0) == 0.5 && check_err(heed_scalar_softplus(0), log(2)) <= 2e-16, "at 0: %.17g %.17g",
          heed_scalar_sigmoid(0), heed_scalar_softplus(0));
    CHECK(heed_scalar_sigmoid(-1000) == 0 && heed_scalar_sigmoid(1000) == 1, "sigmoid(+-1000) = %g, %g",
          heed_scalar_sigmoid(-1000), heed_scalar_sigmoid(1000));
    CHECK(heed_scalar_softplus(-1000) == 0 && heed_scalar_softplus(1000) == 1000, "softplus(+-1000) = %g, %g",
          heed_scalar_softplus(-1000), heed_scalar_softplus(1000));
    CHECK(isnan(heed_scalar_sigmoid(NAN)) && isnan(heed_scalar_softplus(NAN)), "NaN in, not NaN out");
    for (double x = -720; x <= -40; x += 34) { /* e^2x is below 2^-53 e^x here; e^-x overflows below -709.8 */
        double e = exp(x);
        CHECK(check_rel_err(heed_scalar_sigmoid(x), e, e) <= 1e-15, "sigmoid(%g) = %.17g, want %.17g", x,
              heed_scalar_sigmoid(x), e);
        CHECK(check_rel_err(heed_scalar_softplus(x), e, e) <= 1e-15, "softplus(%g) = %.17g, want %.17g", x,
              heed_scalar_softplus(x), e);
    }
    for (double x = -30; x <= 30; x += 0.7) {
        CHECK(check_err(heed_scalar_sigmoid(x) + heed_scalar_sigmoid(-x), 1) <= 4e-16, "sigmoid(%g) + sigmoid(%g) != 1",
              x, -x);
        CHECK(check_err(heed_scalar_softplus(x) - heed_scalar_softplus(-x), x) <= 4e-15 * (1 + fabs(x)),
              "softplus(%g) - softplus(%g) = %.17g", x, -x, heed_scalar_softplus(x) - heed_scalar_softplus(-x));
    }
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 7});
    RUN(scalar_math);
    RUN(gradchecks);
    RUN(wrong_backward_is_caught);
    RUN(recording_rules);
    RUN(bad_input);
    heed_ctx_free(ctx);
    return check_summary();
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

/* softsign's kernels, math in double:  y = x / (1 + |x|),  dx += dy / (1 + |x|)^2 */

static void FN(softsign_forward)(const T *x, T *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = (T)((double)x[i] / (1 + fabs((double)x[i])));
}

static void FN(softsign_backward)(const T *x, const T *dy, T *dx, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double d = 1 + fabs((double)x[i]);
        dx[i] += (T)(dy[i] / (d * d));
    }
}
#endif
