/* Softmax and log-softmax over the last dim.
 *
 * A tensor is a stack of rows of length n (its last dim). Per row, with m = max_j x_j and
 * s = sum_k exp(x_k - m):
 *   softmax:      y_j = exp(x_j - m) / s
 *   log_softmax:  y_j = x_j - m - log(s)
 * Subtracting m keeps every exp <= 1 (no overflow) and s >= 1 (no log 0). log_softmax
 * subtracts m and then log(s), never their sum lse = m + log(s) rounded to f32: x_j - m is
 * exact (or tiny) and log(s) <= log(n), while a rounded lse is off by up to |lse| 2^-24
 * (2^-11 at logits of 1e4) in every output, although softmax does not change when a
 * constant is added to the row. heed__row_lse (for the losses) returns m and log(s) apart
 * for the same reason.
 * -INFINITY entries are masked (exp(-inf) = 0). In a fully masked row m = -inf and the
 * formulas give NaN; heed defines that row's output as 0 and its gradient as 0 (a NaN in
 * the row still propagates).
 *
 * f32 rows run an AVX2 kernel with SLEEF's expf (1 ulp), sums in double; f64 rows and CPUs
 * without AVX2 run the scalar kernel. Rows are independent, so OpenMP splits them. */
#include "rowops.h"

#include <tgmath.h>

/* ---------------------------------------------------------------- scalar kernels */

#define T float
#define FN(name) name##_f32
#include "softmax_kernels.h"
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "softmax_kernels.h"
#undef T
#undef FN

heed_row_lse heed__row_lse_f64(const double *x, int64_t n, double *sum_x) { return row_lse_f64(x, n, sum_x); }

/* ---------------------------------------------------------------- AVX2 f32 kernels */

/* acc += the 8 floats of v, widened to double (two accumulators of 4). */
HEED_AVX2 static inline void add_wide(__m256d *acc, __m256 v) {
    acc[0] = _mm256_add_pd(acc[0], _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    acc[1] = _mm256_add_pd(acc[1], _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

/* Lanes [0, rem) set: for the last, partial vector of a row. */
HEED_AVX2 static inline __m256i tail_mask(int64_t rem) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The tail with `fill` in the lanes past the end (maskload never touches them). */
HEED_AVX2 static inline __m256 load_tail(const float *p, __m256i mask, __m256 fill) {
    return _mm256_blendv_ps(fill, _mm256_maskload_ps(p, mask), _mm256_castsi256_ps(mask));
}

HEED_AVX2 static void fwd_row_f32_avx2(const float *x, float *y, int64_t n, bool log_out) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    int64_t full = n & ~(int64_t)7, j;
    __m256i tail = tail_mask(n - full);
    __m256 vm = ninf;
    for (j = 0; j < full; j += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + j));
    if (j < n) vm = _mm256_max_ps(vm, load_tail(x + j, tail, ninf));
    float m = heed__hmax8(vm);
    if (m == -INFINITY) {
        masked_row_f32(x, y, n);
        return;
    }
    const __m256 vmax = _mm256_set1_ps(m);
    __m256d acc[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
    for (j = 0; j < full; j += 8) {
        __m256 e = Sleef_expf8_u10(_mm256_sub_ps(_mm256_loadu_ps(x + j), vmax));
        if (!log_out) _mm256_storeu_ps(y + j, e);
        add_wide(acc, e);
    }
    if (j < n) {
        __m256 e = Sleef_expf8_u10(_mm256_sub_ps(load_tail(x + j, tail, ninf), vmax)); /* 0 past the end */
        if (!log_out) _mm256_maskstore_ps(y + j, tail, e);
        add_wide(acc, e);
    }
    double s = heed__hsum4d(_mm256_add_pd(acc[0], acc[1]));
    if (log_out) {
        const __m256 ls = _mm256_set1_ps((float)log(s));
        for (j = 0; j < full; j += 8)
            _mm256_storeu_ps(y + j, _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vmax), ls));
        if (j < n) _mm256_maskstore_ps(y + j, tail, _mm256_sub_ps(_mm256_sub_ps(_mm256_maskload_ps(x + j, tail), vmax), ls));
    } else {
        const __m256 inv = _mm256_set1_ps((float)(1 / s));
        for (j = 0; j < full; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(y + j), inv));
        if (j < n) _mm256_maskstore_ps(y + j, tail, _mm256_mul_ps(_mm256_maskload_ps(y + j, tail), inv));
    }
}

/* softmax: dx = y * (dy - sum(dy * y)) */
HEED_AVX2 static void bwd_softmax_row_f32_avx2(const float *y, const float *dy, float *dx, int64_t n) {
    int64_t full = n & ~(int64_t)7, j;
    __m256i tail = tail_mask(n - full);
    __m256d acc[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
    for (j = 0; j < full; j += 8) add_wide(acc, _mm256_mul_ps(_mm256_loadu_ps(dy + j), _mm256_loadu_ps(y + j)));
    if (j < n) add_wide(acc, _mm256_mul_ps(_mm256_maskload_ps(dy + j, tail), _mm256_maskload_ps(y + j, tail)));
    const __m256 s = _mm256_set1_ps((float)heed__hsum4d(_mm256_add_pd(acc[0], acc[1])));
    for (j = 0; j < full; j += 8) {
        __m256 yv = _mm256_loadu_ps(y + j), d = _mm256_sub_ps(_mm256_loadu_ps(dy + j), s);
        _mm256_storeu_ps(dx + j, _mm256_fmadd_ps(yv, d, _mm256_loadu_ps(dx + j)));
    }
    if (j < n) {
        __m256 yv = _mm256_maskload_ps(y + j, tail), d = _mm256_sub_ps(_mm256_maskload_ps(dy + j, tail), s);
        _mm256_maskstore_ps(dx + j, tail, _mm256_fmadd_ps(yv, d, _mm256_maskload_ps(dx + j, tail)));
    }
}

/* log_softmax: dx = dy - exp(y) * sum(dy) */
HEED_AVX2 static void bwd_log_softmax_row_f32_avx2(const float *x, const float *y, const float *dy, float *dx, int64_t n) {
    if (row_fully_masked_f32(x, n)) return;
    int64_t full = n & ~(int64_t)7, j;
    __m256i tail = tail_mask(n - full);
    __m256d acc[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
    for (j = 0; j < full; j += 8) add_wide(acc, _mm256_loadu_ps(dy + j));
    if (j < n) add_wide(acc, _mm256_maskload_ps(dy + j, tail));
    const __m256 s = _mm256_set1_ps((float)heed__hsum4d(_mm256_add_pd(acc[0], acc[1])));
    for (j = 0; j < full; j += 8) {
        __m256 p = Sleef_expf8_u10(_mm256_loadu_ps(y + j));
        __m256 d = _mm256_add_ps(_mm256_loadu_ps(dx + j), _mm256_loadu_ps(dy + j));
        _mm256_storeu_ps(dx + j, _mm256_fnmadd_ps(p, s, d));
    }
    if (j < n) {
        __m256 p = Sleef_expf8_u10(_mm256_maskload_ps(y + j, tail));
        __m256 d = _mm256_add_ps(_mm256_maskload_ps(dx + j, tail), _mm256_maskload_ps(dy + j, tail));
        _mm256_maskstore_ps(dx + j, tail, _mm256_fnmadd_ps(p, s, d));
    }
}

HEED_AVX2 static heed_row_lse row_lse_f32_avx2(const float *x, int64_t n, double *sum_x) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    int64_t full = n & ~(int64_t)7, j;
    __m256i tail = tail_mask(n - full);
    __m256 vm = ninf;
    __m256d sx[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
    for (j = 0; j < full; j += 8) {
        __m256 v = _mm256_loadu_ps(x + j);
        vm = _mm256_max_ps(vm, v);
        add_wide(sx, v);
    }
    if (j < n) {
        vm = _mm256_max_ps(vm, load_tail(x + j, tail, ninf));
        add_wide(sx, _mm256_maskload_ps(x + j, tail));
    }
    double total = heed__hsum4d(_mm256_add_pd(sx[0], sx[1]));
    if (sum_x) *sum_x = total;
    float m = heed__hmax8(vm);
    if (m == -INFINITY) return (heed_row_lse){total != total ? NAN : -INFINITY, 0}; /* NaN never wins the max */
    const __m256 vmax = _mm256_set1_ps(m);
    __m256d acc[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
    for (j = 0; j < full; j += 8) add_wide(acc, Sleef_expf8_u10(_mm256_sub_ps(_mm256_loadu_ps(x + j), vmax)));
    if (j < n) add_wide(acc, Sleef_expf8_u10(_mm256_sub_ps(load_tail(x + j, tail, ninf), vmax)));
    return (heed_row_lse){m, log(heed__hsum4d(_mm256_add_pd(acc[0], acc[1])))};
}

heed_row_lse heed__row_lse_f32(const float *x, int64_t n, double *sum_x) {
    return heed__have_avx2() ? row_lse_f32_avx2(x, n, sum_x) : row_lse_f32(x, n, sum_x);
}

/* ---------------------------------------------------------------- row drivers */

/* Rows are split over threads only when there is enough work to pay for the fork. */
static void forward_rows(heed_dtype dt, const void *X, void *Y, int64_t rows, int64_t n, bool log_out, int threads) {
    if (dt == HEED_F32) {
        const float *x = X;
        float *y = Y;
        bool avx2 = heed__have_avx2();
#pragma omp parallel for schedule(static) if (rows > 1 && rows * n > 16384) num_threads(threads)
        for (int64_t r = 0; r < rows; r++) {
            if (avx2) fwd_row_f32_avx2(x + r * n, y + r * n, n, log_out);
            else fwd_row_f32(x + r * n, y + r * n, n, log_out);
        }
    } else {
        const double *x = X;
        double *y = Y;
#pragma omp parallel for schedule(static) if (rows > 1 && rows * n > 16384) num_threads(threads)
        for (int64_t r = 0; r < rows; r++) fwd_row_f64(x + r * n, y + r * n, n, log_out);
    }
}

static void softmax_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *x = nd->in[0], *y = nd->out[0];
    bool log_out = nd->iarg[0];
    int64_t n = nd->iarg[1], rows = nd->iarg[2];
    void *gx = heed_grad_buffer(g, x);
    if (!gx) return;
    if (x->dtype == HEED_F32) {
        const float *X = x->data, *Y = y->data, *dY = y->grad;
        float *dX = gx;
        bool avx2 = heed__have_avx2();
#pragma omp parallel for schedule(static) if (rows > 1 && rows * n > 16384) num_threads(heed__threads_now(g->ctx))
        for (int64_t r = 0; r < rows; r++) {
            const float *xr = X + r * n, *yr = Y + r * n, *dyr = dY + r * n;
            float *dxr = dX + r * n;
            if (log_out) {
                if (avx2) bwd_log_softmax_row_f32_avx2(xr, yr, dyr, dxr, n);
                else bwd_log_softmax_row_f32(xr, yr, dyr, dxr, n);
            } else {
                if (avx2) bwd_softmax_row_f32_avx2(yr, dyr, dxr, n);
                else bwd_softmax_row_f32(yr, dyr, dxr, n);
            }
        }
    } else {
        const double *X = x->data, *Y = y->data, *dY = y->grad;
        double *dX = gx;
#pragma omp parallel for schedule(static) if (rows > 1 && rows * n > 16384) num_threads(heed__threads_now(g->ctx))
        for (int64_t r = 0; r < rows; r++) {
            if (log_out) bwd_log_softmax_row_f64(X + r * n, Y + r * n, dY + r * n, dX + r * n, n);
            else bwd_softmax_row_f64(Y + r * n, dY + r * n, dX + r * n, n);
        }
    }
}

static const heed_op op_softmax = {"heed_softmax", softmax_backward};
static const heed_op op_log_softmax = {"heed_log_softmax", softmax_backward};

static heed_tensor *softmax_op(heed_graph *g, heed_tensor *x, bool log_out) {
    const heed_op *desc = log_out ? &op_log_softmax : &op_softmax;
    const char *op = desc->name;
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    if (x->ndim < 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: x%s is a scalar; it needs at least 1 dim (the op runs over the last dim)",
                               op, HEED_S(x)),
               NULL;
    heed_tensor *y = heed__new(g, op, x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    int64_t n = x->shape[x->ndim - 1], rows = n ? x->numel / n : 0;
    forward_rows(x->dtype, x->data, y->data, rows, n, log_out, heed__threads_now(g->ctx));
    heed_node *nd = heed_record(g, desc, 1, &x, 1, &y);
    if (nd) {
        nd->iarg[0] = log_out;
        nd->iarg[1] = n;
        nd->iarg[2] = rows;
    }
    return heed_graph_ok(g) ? y : NULL;
}

heed_tensor *heed_softmax(heed_graph *g, heed_tensor *x) { return softmax_op(g, x, false); }
heed_tensor *heed_log_softmax(heed_graph *g, heed_tensor *x) { return softmax_op(g, x, true); }
