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
 * f32 rows run a vector kernel (softmax_vec.h, AVX-512 or AVX2 as heed_isa() says) with
 * SLEEF's expf (1 ulp), sums in double; f64 rows and CPUs without AVX2 run the scalar
 * kernel. Rows are independent, so OpenMP splits them. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "rowops.h"
#include "heed/softmax.h"

#include <tgmath.h>

/* ---------------------------------------------------------------- scalar kernels */

#define T float
#define FN(name) name##_f32
#include "softmax.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "softmax.c"
#undef T
#undef FN

heed_row_lse heed__row_lse_f64(const double *x, int64_t n, double *sum_x) { return row_lse_f64(x, n, sum_x); }

/* ---------------------------------------------------------------- f32 kernels per ISA */

typedef struct {
    void (*fwd_row)(const float *x, float *y, int64_t n, bool log_out);
    void (*bwd_softmax_row)(const float *y, const float *dy, float *dx, int64_t n);
    void (*bwd_log_softmax_row)(const float *x, const float *y, const float *dy, float *dx, int64_t n);
    heed_row_lse (*row_lse)(const float *x, int64_t n, double *sum_x);
} f32_row_kernels;

static const f32_row_kernels scalar_kernels = {fwd_row_f32, bwd_softmax_row_f32, bwd_log_softmax_row_f32, row_lse_f32};

#define PER_ISA_FILE "../ops/softmax_vec.h"
#include "../graph/per_isa.h"

static const f32_row_kernels *f32_kernels(void) { return HEED_WIDEST(kernels, &scalar_kernels); }

heed_row_lse heed__row_lse_f32(const float *x, int64_t n, double *sum_x) { return f32_kernels()->row_lse(x, n, sum_x); }

/* ---------------------------------------------------------------- row drivers */

/* Rows are split over threads only when there is enough work to pay for the fork. */
static void forward_rows(heed_dtype dt, const void *X, void *Y, int64_t rows, int64_t n, bool log_out, int threads) {
    if (dt == HEED_F32) {
        const float *x = X;
        float *y = Y;
        const f32_row_kernels *K = f32_kernels();
#pragma omp parallel for schedule(static) if (rows > 1 && rows * n > 16384) num_threads(threads)
        for (int64_t r = 0; r < rows; r++) K->fwd_row(x + r * n, y + r * n, n, log_out);
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
        const f32_row_kernels *K = f32_kernels();
#pragma omp parallel for schedule(static) if (rows > 1 && rows * n > 16384) num_threads(heed_ctx_threads_now(g->ctx))
        for (int64_t r = 0; r < rows; r++) {
            const float *xr = X + r * n, *yr = Y + r * n, *dyr = dY + r * n;
            float *dxr = dX + r * n;
            if (log_out) K->bwd_log_softmax_row(xr, yr, dyr, dxr, n);
            else K->bwd_softmax_row(yr, dyr, dxr, n);
        }
    } else {
        const double *X = x->data, *Y = y->data, *dY = y->grad;
        double *dX = gx;
#pragma omp parallel for schedule(static) if (rows > 1 && rows * n > 16384) num_threads(heed_ctx_threads_now(g->ctx))
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
        return heed_graph_fail(g, HEED_ERR_SHAPE,
                               "%s: x%s is a scalar; it needs at least 1 dim (the op runs over the last dim)", op,
                               HEED_S(x)),
               NULL;
    heed_tensor *y = heed__new(g, op, x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    int64_t n = x->shape[x->ndim - 1], rows = n ? x->numel / n : 0;
    forward_rows(x->dtype, x->data, y->data, rows, n, log_out, heed_ctx_threads_now(g->ctx));
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
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

/* The scalar softmax row kernels: f64 always runs these; f32 runs them on CPUs without
 * AVX2. Math: at the top. */

/* A row with no finite max: all -inf (masked) gives 0; a NaN anywhere gives NaN. */
static void FN(masked_row)(const T *x, T *y, int64_t n) {
    bool has_nan = false;
    for (int64_t j = 0; j < n; j++) has_nan |= x[j] != -INFINITY;
    for (int64_t j = 0; j < n; j++) y[j] = has_nan ? (T)NAN : 0;
}

static bool FN(row_fully_masked)(const T *x, int64_t n) {
    if (n == 0 || x[0] != -INFINITY) return n == 0;
    for (int64_t j = 1; j < n; j++)
        if (x[j] != -INFINITY) return false;
    return true;
}

static void FN(fwd_row)(const T *x, T *y, int64_t n, bool log_out) {
    T m = -INFINITY;
    for (int64_t j = 0; j < n; j++)
        if (x[j] > m) m = x[j];
    if (m == -INFINITY) {
        FN(masked_row)(x, y, n);
        return;
    }
    double s = 0;
    for (int64_t j = 0; j < n; j++) {
        T e = exp(x[j] - m);
        if (!log_out) y[j] = e;
        s += e;
    }
    if (log_out) {
        T ls = (T)log(s);
        for (int64_t j = 0; j < n; j++) y[j] = (x[j] - m) - ls;
    } else {
        T inv = (T)(1 / s);
        for (int64_t j = 0; j < n; j++) y[j] *= inv;
    }
}

/* softmax: dx = y * (dy - sum(dy * y)) */
static void FN(bwd_softmax_row)(const T *y, const T *dy, T *dx, int64_t n) {
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += (double)dy[j] * y[j];
    T st = (T)s;
    for (int64_t j = 0; j < n; j++) dx[j] += y[j] * (dy[j] - st);
}

/* log_softmax: dx = dy - softmax * sum(dy), softmax = exp(y) */
static void FN(bwd_log_softmax_row)(const T *x, const T *y, const T *dy, T *dx, int64_t n) {
    if (FN(row_fully_masked)(x, n)) return;
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += dy[j];
    T st = (T)s;
    for (int64_t j = 0; j < n; j++) dx[j] += dy[j] - exp(y[j]) * st;
}

static heed_row_lse FN(row_lse)(const T *x, int64_t n, double *sum_x) {
    T m = -INFINITY;
    double sx = 0;
    for (int64_t j = 0; j < n; j++) {
        if (x[j] > m) m = x[j];
        sx += x[j];
    }
    if (sum_x) *sum_x = sx;
    if (m == -INFINITY) /* NaN never passes x > m */
        return (heed_row_lse){sx != sx ? NAN : -INFINITY, 0};
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += exp(x[j] - m);
    return (heed_row_lse){m, log(s)};
}
#endif
