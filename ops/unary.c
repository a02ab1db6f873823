/* Elementwise unary ops: neg, scale, add_scalar, exp, log, sqrt, pow, relu, leaky_relu,
 * gelu (erf form), gelu_tanh, sigmoid, tanh, softplus.
 *
 * One table-driven design: every op is a kind of `unary_kind` with an optional scalar
 * argument a (the scale, the constant, the power, the slope). Per kind there are two
 * formulas, each written once for doubles (fwd1 / grad1) and once for 8 floats (vfwd /
 * vgrad, AVX2 + SLEEF):
 *   y = f(x; a)                  forward
 *   dy/dx = f'(x, y; a)          backward uses whichever of x and y is cheaper
 * and backward is dx += dy * f'(x, y). f64 uses libm; f32 uses the AVX2 kernels when the
 * CPU has AVX2 and FMA (checked at run time), else the double formulas rounded to float. */
#include "../graph/internal.h"

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
static const char *const arg_names[U_COUNT] = {[U_SCALE] = "s", [U_ADD_SCALAR] = "c", [U_POW] = "p", [U_LEAKY_RELU] = "slope"};

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
    case U_EXP: return y;           /* (e^x)' = e^x = y */
    case U_LOG: return 1 / x;       /* (log x)' = 1/x */
    case U_SQRT: return 0.5 / y;    /* (x^1/2)' = 1/(2 sqrt x) = 1/(2y) */
    case U_POW: return a == 0 ? 0 : a * pow(x, a - 1); /* p x^(p-1); x^0 is constant */
    case U_RELU: return x > 0 ? 1 : 0;                   /* 0 at the kink, as PyTorch */
    case U_LEAKY_RELU: return x > 0 ? 1 : a;
    /* (x Phi(x))' = Phi(x) + x phi(x), phi(x) = e^(-x^2/2) / sqrt(2 pi) */
    case U_GELU: return 0.5 * erfc(-x * SQRT_HALF) + x * INV_SQRT_2PI * exp(-0.5 * x * x);
    /* y = x s, s = sigmoid(2u): y' = s + x * 2u' s(1-s), u' = sqrt(2/pi)(1 + 3c x^2)
     * (the same as (1+t)/2 + x(1-t^2)u'/2 with t = tanh u) */
    case U_GELU_TANH: {
        double s = heed__sigmoid1(2 * SQRT_2_OVER_PI * (x + GELU_C * x * x * x));
        return s + x * 2 * SQRT_2_OVER_PI * (1 + 3 * GELU_C * x * x) * s * (1 - s);
    }
    case U_SIGMOID: return y * (1 - y); /* s' = s (1 - s) */
    case U_TANH: return 1 - y * y;      /* tanh' = 1 - tanh^2 */
    case U_SOFTPLUS: return heed__sigmoid1(x); /* (log(1 + e^x))' = e^x/(1 + e^x) */
    default: return NAN;
    }
}

/* ---------------------------------------------------------------- AVX2 + SLEEF, 8 floats */

/* sigmoid(2u) of gelu_tanh. */
HEED_AVX2 static inline __m256 vgelu_tanh_s(__m256 x) {
    __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    __m256 u = _mm256_fmadd_ps(_mm256_set1_ps((float)GELU_C), x3, x);
    return heed__sigmoid8(_mm256_mul_ps(_mm256_set1_ps((float)(2 * SQRT_2_OVER_PI)), u));
}

/* Phi(x) = erfc(-x/sqrt2)/2 */
HEED_AVX2 static inline __m256 vphi_cdf(__m256 x) {
    return _mm256_mul_ps(_mm256_set1_ps(0.5f), Sleef_erfcf8_u15avx2(_mm256_mul_ps(x, _mm256_set1_ps((float)-SQRT_HALF))));
}

HEED_AVX2 static inline __m256 vfwd(unary_kind k, __m256 x, __m256 a) {
    const __m256 zero = _mm256_setzero_ps();
    switch (k) {
    case U_NEG: return _mm256_xor_ps(x, _mm256_set1_ps(-0.0f));
    case U_SCALE: return _mm256_mul_ps(a, x);
    case U_ADD_SCALAR: return _mm256_add_ps(x, a);
    case U_EXP: return Sleef_expf8_u10avx2(x);
    case U_LOG: return Sleef_logf8_u10avx2(x);
    case U_SQRT: return _mm256_sqrt_ps(x);
    case U_POW: return Sleef_powf8_u10avx2(x, a);
    case U_RELU: return _mm256_max_ps(zero, x); /* max returns its second operand for NaN */
    case U_LEAKY_RELU: return _mm256_blendv_ps(x, _mm256_mul_ps(a, x), _mm256_cmp_ps(x, zero, _CMP_LT_OQ));
    case U_GELU: return _mm256_mul_ps(x, vphi_cdf(x));
    case U_GELU_TANH: return _mm256_mul_ps(x, vgelu_tanh_s(x));
    case U_SIGMOID: return heed__sigmoid8(x);
    case U_TANH: return Sleef_tanhf8_u10avx2(x);
    case U_SOFTPLUS: {
        __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
        __m256 z = Sleef_expf8_u10avx2(_mm256_sub_ps(zero, ax));
        /* log1p(z) = z - z^2/2 + ... rounds to z below 2^-24; SLEEF's log1pf is a few
         * denormal steps off there, so take z itself */
        __m256 l = _mm256_blendv_ps(Sleef_log1pf8_u10avx2(z), z, _mm256_cmp_ps(z, _mm256_set1_ps(0x1p-24f), _CMP_LT_OQ));
        return _mm256_add_ps(_mm256_max_ps(x, zero), l);
    }
    default: return _mm256_set1_ps(NAN);
    }
}

/* dy/dx, the same formulas as grad1. */
HEED_AVX2 static inline __m256 vgrad(unary_kind k, __m256 x, __m256 y, __m256 a) {
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1);
    switch (k) {
    case U_NEG: return _mm256_set1_ps(-1);
    case U_SCALE: return a;
    case U_ADD_SCALAR: return one;
    case U_EXP: return y;
    case U_LOG: return _mm256_div_ps(one, x);
    case U_SQRT: return _mm256_div_ps(_mm256_set1_ps(0.5f), y);
    case U_POW: {
        __m256 g = _mm256_mul_ps(a, Sleef_powf8_u10avx2(x, _mm256_sub_ps(a, one)));
        return _mm256_blendv_ps(g, zero, _mm256_cmp_ps(a, zero, _CMP_EQ_OQ));
    }
    case U_RELU: return _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_GT_OQ), one);
    case U_LEAKY_RELU: return _mm256_blendv_ps(a, one, _mm256_cmp_ps(x, zero, _CMP_GT_OQ));
    case U_GELU: {
        __m256 e = Sleef_expf8_u10avx2(_mm256_mul_ps(_mm256_set1_ps(-0.5f), _mm256_mul_ps(x, x)));
        return _mm256_fmadd_ps(_mm256_mul_ps(x, _mm256_set1_ps((float)INV_SQRT_2PI)), e, vphi_cdf(x));
    }
    case U_GELU_TANH: {
        __m256 s = vgelu_tanh_s(x);
        __m256 du = _mm256_fmadd_ps(_mm256_set1_ps((float)(3 * GELU_C)), _mm256_mul_ps(x, x), one);
        du = _mm256_mul_ps(_mm256_set1_ps((float)(2 * SQRT_2_OVER_PI)), du);
        __m256 t = _mm256_mul_ps(_mm256_mul_ps(x, du), _mm256_mul_ps(s, _mm256_sub_ps(one, s)));
        return _mm256_add_ps(s, t);
    }
    case U_SIGMOID: return _mm256_mul_ps(y, _mm256_sub_ps(one, y));
    case U_TANH: return _mm256_fnmadd_ps(y, y, one);
    case U_SOFTPLUS: return heed__sigmoid8(x);
    default: return _mm256_set1_ps(NAN);
    }
}

/* y[0..n) = f(x); the last n % 8 elements go through a zero-padded vector so every
 * element takes the same path. */
HEED_AVX2 static void fwd_avx2(unary_kind k, const float *x, float *y, int64_t n, float a) {
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, vfwd(k, _mm256_loadu_ps(x + i), va));
    if (i < n) {
        float bx[8] = {0}, by[8];
        memcpy(bx, x + i, (size_t)(n - i) * sizeof *bx);
        _mm256_storeu_ps(by, vfwd(k, _mm256_loadu_ps(bx), va));
        memcpy(y + i, by, (size_t)(n - i) * sizeof *by);
    }
}

/* gx[0..n) += dy * f'(x, y). */
HEED_AVX2 static void bwd_avx2(unary_kind k, const float *x, const float *y, const float *dy, float *gx, int64_t n, float a) {
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 d = vgrad(k, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), va);
        _mm256_storeu_ps(gx + i, _mm256_fmadd_ps(_mm256_loadu_ps(dy + i), d, _mm256_loadu_ps(gx + i)));
    }
    if (i < n) {
        float bx[8] = {0}, by[8] = {0}, bd[8] = {0}, bg[8] = {0};
        size_t rest = (size_t)(n - i) * sizeof(float);
        memcpy(bx, x + i, rest), memcpy(by, y + i, rest), memcpy(bd, dy + i, rest), memcpy(bg, gx + i, rest);
        __m256 d = vgrad(k, _mm256_loadu_ps(bx), _mm256_loadu_ps(by), va);
        _mm256_storeu_ps(bg, _mm256_fmadd_ps(_mm256_loadu_ps(bd), d, _mm256_loadu_ps(bg)));
        memcpy(gx + i, bg, rest);
    }
}

/* ---------------------------------------------------------------- drivers */

#define BLOCK 16384         /* elements per parallel work item */
#define PARALLEL_MIN 65536  /* fewer elements run on one thread */

static void unary_forward(unary_kind k, heed_dtype dt, const void *x_, void *y_, int64_t n, double a, int threads) {
    if (dt == HEED_F32 && heed__have_avx2()) {
        const float *x = x_;
        float *y = y_;
        int64_t blocks = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN) num_threads(threads)
        for (int64_t b = 0; b < blocks; b++) {
            int64_t lo = b * BLOCK, len = n - lo < BLOCK ? n - lo : BLOCK;
            fwd_avx2(k, x + lo, y + lo, len, (float)a);
        }
        return;
    }
    HEED_FOR_DTYPE(dt, T, {
        const T *x = x_;
        T *y = y_;
        _Pragma("omp parallel for schedule(static) if (n > PARALLEL_MIN) num_threads(threads)")
        for (int64_t i = 0; i < n; i++) y[i] = (T)fwd1(k, x[i], a);
    });
}

static void unary_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *xt = nd->in[0], *yt = nd->out[0];
    unary_kind k = (unary_kind)nd->iarg[0];
    double a = nd->farg[0];
    void *gx_ = heed_grad_buffer(g, xt);
    if (!gx_) return;
    int64_t n = xt->numel;
    if (xt->dtype == HEED_F32 && heed__have_avx2()) {
        const float *x = xt->data, *y = yt->data, *dy = yt->grad;
        float *gx = gx_;
        int64_t blocks = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN) num_threads(heed__threads_now(g->ctx))
        for (int64_t b = 0; b < blocks; b++) {
            int64_t lo = b * BLOCK, len = n - lo < BLOCK ? n - lo : BLOCK;
            bwd_avx2(k, x + lo, y + lo, dy + lo, gx + lo, len, (float)a);
        }
        return;
    }
    HEED_FOR_DTYPE(xt->dtype, T, {
        const T *x = xt->data, *y = yt->data, *dy = yt->grad;
        T *gx = gx_;
        _Pragma("omp parallel for schedule(static) if (n > PARALLEL_MIN) num_threads(heed__threads_now(g->ctx))")
        for (int64_t i = 0; i < n; i++) gx[i] += (T)(dy[i] * grad1(k, x[i], y[i], a));
    });
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
    unary_forward(k, x->dtype, x->data, y->data, x->numel, a, heed__threads_now(g->ctx));
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
