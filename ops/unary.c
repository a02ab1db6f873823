/* Elementwise unary ops: neg, scale, add_scalar, exp, log, sqrt, pow, relu, leaky_relu,
 * gelu (erf form), gelu_tanh, sigmoid, tanh, softplus.
 *
 * One table-driven design: every op is a kind of `unary_kind` with an optional scalar
 * argument a (the scale, the constant, the power, the slope). Per kind there are two
 * formulas, each written once for doubles (fwd1 / grad1) and once for a vector of floats
 * (vfwd / vgrad in unary_vec.h, SLEEF, built for AVX2 and AVX-512F):
 *   y = f(x; a)                  forward
 *   dy/dx = f'(x, y; a)          backward uses whichever of x and y is cheaper
 * and backward is dx += dy * f'(x, y). f64 uses libm; f32 uses the vector kernels of the
 * widest ISA heed_isa() allows, else (scalar) the double formulas rounded to float. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "../graph/internal.h"
#include "heed/elementwise.h"

#include <math.h>

#include "../graph/simd.h"

typedef enum {
    U_NEG,
    U_SCALE,
    U_ADD_SCALAR,
    U_EXP,
    U_LOG,
    U_SQRT,
    U_POW,
    U_RELU,
    U_LEAKY_RELU,
    U_GELU,
    U_GELU_TANH,
    U_SIGMOID,
    U_TANH,
    U_SOFTPLUS,
    U_COUNT
} unary_kind;

/* Name of the scalar argument, for kinds that take one (checked to be finite). */
static const char *const arg_names[U_COUNT] =
    {[U_SCALE] = "s", [U_ADD_SCALAR] = "c", [U_POW] = "p", [U_LEAKY_RELU] = "slope"};

#define SQRT_HALF 0.70710678118654752440    /* 1/sqrt(2) */
#define INV_SQRT_2PI 0.39894228040143267794 /* 1/sqrt(2 pi) */
#define SQRT_2_OVER_PI 0.79788456080286535588
#define GELU_C 0.044715

/* ---------------------------------------------------------------- double formulas */

static inline double fwd1(unary_kind k, double x, double a) {
    switch (k) {
    case U_NEG: return -x;
    case U_SCALE: return a * x;
    case U_ADD_SCALAR: return x + a;
    case U_EXP: return exp(x);
    case U_LOG: return log(x);
    case U_SQRT: return sqrt(x);
    case U_POW: return pow(x, a);
    case U_RELU: return x < 0 ? 0 : x; /* NaN passes through */
    case U_LEAKY_RELU: return x < 0 ? a * x : x;
    /* gelu = x Phi(x), Phi(x) = (1 + erf(x/sqrt2))/2 = erfc(-x/sqrt2)/2 (no cancellation
     * for large negative x). */
    case U_GELU: return x * 0.5 * erfc(-x * SQRT_HALF);
    /* gelu_tanh = x (1 + tanh u)/2 with u = sqrt(2/pi)(x + 0.044715 x^3); and
     * (1 + tanh u)/2 = sigmoid(2u), which keeps the tails accurate. */
    case U_GELU_TANH: return x * heed__sigmoid1(2 * SQRT_2_OVER_PI * (x + GELU_C * x * x * x));
    case U_SIGMOID: return heed__sigmoid1(x);
    case U_TANH: return tanh(x);
    case U_SOFTPLUS: return heed__softplus1(x); /* max(x, 0) + log1p(e^-|x|) */
    default: return NAN;
    }
}

/* dy/dx from the input x and the output y. */
static inline double grad1(unary_kind k, double x, double y, double a) {
    switch (k) {
    case U_NEG: return -1;
    case U_SCALE: return a;
    case U_ADD_SCALAR: return 1;
    case U_EXP: return y;                              /* (e^x)' = e^x = y */
    case U_LOG: return 1 / x;                          /* (log x)' = 1/x */
    case U_SQRT: return 0.5 / y;                       /* (x^1/2)' = 1/(2 sqrt x) = 1/(2y) */
    case U_POW: return a == 0 ? 0 : a * pow(x, a - 1); /* p x^(p-1); x^0 is constant */
    case U_RELU: return x > 0 ? 1 : 0;                 /* 0 at the kink, as PyTorch */
    case U_LEAKY_RELU: return x > 0 ? 1 : a;
    /* (x Phi(x))' = Phi(x) + x phi(x), phi(x) = e^(-x^2/2) / sqrt(2 pi) */
    case U_GELU: return 0.5 * erfc(-x * SQRT_HALF) + x * INV_SQRT_2PI * exp(-0.5 * x * x);
    /* y = x s, s = sigmoid(2u): y' = s + x * 2u' s(1-s), u' = sqrt(2/pi)(1 + 3c x^2)
     * (the same as (1+t)/2 + x(1-t^2)u'/2 with t = tanh u) */
    case U_GELU_TANH: {
        double s = heed__sigmoid1(2 * SQRT_2_OVER_PI * (x + GELU_C * x * x * x));
        return s + x * 2 * SQRT_2_OVER_PI * (1 + 3 * GELU_C * x * x) * s * (1 - s);
    }
    case U_SIGMOID: return y * (1 - y);        /* s' = s (1 - s) */
    case U_TANH: return 1 - y * y;             /* tanh' = 1 - tanh^2 */
    case U_SOFTPLUS: return heed__sigmoid1(x); /* (log(1 + e^x))' = e^x/(1 + e^x) */
    default: return NAN;
    }
}

/* ---------------------------------------------------------------- vector kernels (unary_vec.h) */

#define PER_ISA_FILE "../ops/unary_vec.h"
#include "../graph/per_isa.h"

/* ---------------------------------------------------------------- drivers */

#define BLOCK 16384        /* elements per parallel work item */
#define PARALLEL_MIN 65536 /* fewer elements run on one thread */

#define T float
#define FN(name) name##_f32
#include "unary.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "unary.c"
#undef T
#undef FN

static void unary_forward(unary_kind k, heed_dtype dt, const void *x_, void *y_, int64_t n, double a, int threads) {
    void (*fwd_vec)(unary_kind, const float *, float *, int64_t, float) = HEED_WIDEST(fwd, NULL);
    if (dt == HEED_F32 && fwd_vec) {
        const float *x = x_;
        float *y = y_;
        int64_t blocks = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN) num_threads(threads)
        for (int64_t b = 0; b < blocks; b++) {
            int64_t lo = b * BLOCK, len = n - lo < BLOCK ? n - lo : BLOCK;
            fwd_vec(k, x + lo, y + lo, len, (float)a);
        }
        return;
    }
    if (dt == HEED_F32) unary_forward_kernel_f32(x_, y_, n, threads, k, a);
    else unary_forward_kernel_f64(x_, y_, n, threads, k, a);
}

static void unary_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *xt = nd->in[0], *yt = nd->out[0];
    unary_kind k = (unary_kind)nd->iarg[0];
    double a = nd->farg[0];
    void *gx_ = heed_grad_buffer(g, xt);
    if (!gx_) return;
    int64_t n = xt->numel;
    void (*bwd_vec)(unary_kind, const float *, const float *, const float *, float *, int64_t, float) =
        HEED_WIDEST(bwd, NULL);
    if (xt->dtype == HEED_F32 && bwd_vec) {
        const float *x = xt->data, *y = yt->data, *dy = yt->grad;
        float *gx = gx_;
        int64_t blocks = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN) num_threads(heed_ctx_threads_now(g->ctx))
        for (int64_t b = 0; b < blocks; b++) {
            int64_t lo = b * BLOCK, len = n - lo < BLOCK ? n - lo : BLOCK;
            bwd_vec(k, x + lo, y + lo, dy + lo, gx + lo, len, (float)a);
        }
        return;
    }
    if (xt->dtype == HEED_F32) unary_backward_kernel_f32(xt, yt, gx_, n, g, k, a);
    else unary_backward_kernel_f64(xt, yt, gx_, n, g, k, a);
}

static const heed_op unary_ops[] = {
    [U_NEG] = {"heed_neg", unary_backward},
    [U_SCALE] = {"heed_scale", unary_backward},
    [U_ADD_SCALAR] = {"heed_add_scalar", unary_backward},
    [U_EXP] = {"heed_exp", unary_backward},
    [U_LOG] = {"heed_log", unary_backward},
    [U_SQRT] = {"heed_sqrt", unary_backward},
    [U_POW] = {"heed_pow", unary_backward},
    [U_RELU] = {"heed_relu", unary_backward},
    [U_LEAKY_RELU] = {"heed_leaky_relu", unary_backward},
    [U_GELU] = {"heed_gelu", unary_backward},
    [U_GELU_TANH] = {"heed_gelu_tanh", unary_backward},
    [U_SIGMOID] = {"heed_sigmoid", unary_backward},
    [U_TANH] = {"heed_tanh", unary_backward},
    [U_SOFTPLUS] = {"heed_softplus", unary_backward},
};
_Static_assert(sizeof unary_ops / sizeof *unary_ops == U_COUNT, "one op per unary_kind");

static heed_tensor *unary(heed_graph *g, unary_kind k, heed_tensor *x, double a) {
    const char *op = unary_ops[k].name;
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    if (arg_names[k] && !isfinite(a))
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: %s = %g (must be finite)", op, arg_names[k], a), NULL;
    heed_tensor *y = heed__new(g, op, x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    unary_forward(k, x->dtype, x->data, y->data, x->numel, a, heed_ctx_threads_now(g->ctx));
    heed_node *n = heed_record(g, &unary_ops[k], 1, &x, 1, &y);
    if (n) {
        n->iarg[0] = k;
        n->farg[0] = a;
    }
    return heed_graph_ok(g) ? y : NULL;
}

heed_tensor *heed_neg(heed_graph *g, heed_tensor *x) { return unary(g, U_NEG, x, 0); }
heed_tensor *heed_scale(heed_graph *g, heed_tensor *x, double s) { return unary(g, U_SCALE, x, s); }
heed_tensor *heed_add_scalar(heed_graph *g, heed_tensor *x, double c) { return unary(g, U_ADD_SCALAR, x, c); }
heed_tensor *heed_exp(heed_graph *g, heed_tensor *x) { return unary(g, U_EXP, x, 0); }
heed_tensor *heed_log(heed_graph *g, heed_tensor *x) { return unary(g, U_LOG, x, 0); }
heed_tensor *heed_sqrt(heed_graph *g, heed_tensor *x) { return unary(g, U_SQRT, x, 0); }
heed_tensor *heed_pow(heed_graph *g, heed_tensor *x, double p) { return unary(g, U_POW, x, p); }
heed_tensor *heed_relu(heed_graph *g, heed_tensor *x) { return unary(g, U_RELU, x, 0); }
heed_tensor *heed_leaky_relu(heed_graph *g, heed_tensor *x, double slope) { return unary(g, U_LEAKY_RELU, x, slope); }
heed_tensor *heed_gelu(heed_graph *g, heed_tensor *x) { return unary(g, U_GELU, x, 0); }
heed_tensor *heed_gelu_tanh(heed_graph *g, heed_tensor *x) { return unary(g, U_GELU_TANH, x, 0); }
heed_tensor *heed_sigmoid(heed_graph *g, heed_tensor *x) { return unary(g, U_SIGMOID, x, 0); }
heed_tensor *heed_tanh(heed_graph *g, heed_tensor *x) { return unary(g, U_TANH, x, 0); }
heed_tensor *heed_softplus(heed_graph *g, heed_tensor *x) { return unary(g, U_SOFTPLUS, x, 0); }
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

static void FN(unary_forward_kernel)(const void *x_, void *y_, int64_t n, int threads, unary_kind k, double a) {
    const T *x = x_;
    T *y = y_;
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN) num_threads(threads)
    for (int64_t i = 0; i < n; i++) y[i] = (T)fwd1(k, x[i], a);
}

static void FN(unary_backward_kernel)(heed_tensor *xt, heed_tensor *yt, void *gx_, int64_t n, heed_graph *g,
                                      unary_kind k, double a) {
    const T *x = xt->data, *y = yt->data, *dy = yt->grad;
    T *gx = gx_;
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t i = 0; i < n; i++) gx[i] += (T)(dy[i] * grad1(k, x[i], y[i], a));
}
#endif
