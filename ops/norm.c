/* Layer normalisation over the last dim (torch.nn.functional.layer_norm).
 *
 * Per row of length D:
 *   mean = sum_j x_j / D,   var = sum_j (x_j - mean)^2 / D   (biased, as PyTorch)
 *   rstd = 1 / sqrt(var + eps),   xhat_j = (x_j - mean) * rstd,   y_j = xhat_j * gamma_j + beta_j
 * gamma and beta are optional (1 and 0 when NULL). mean and rstd are saved per row.
 *
 * Backward, with h_j = dy_j * gamma_j (dy_j when there is no gamma):
 *   d xhat_k / d x_j = rstd * (delta_jk - 1/D - xhat_j xhat_k / D), so
 *   dx_j     = rstd * (h_j - mean_k h_k - xhat_j * mean_k (h_k xhat_k))
 *   dgamma_j = sum_rows dy_j xhat_j,    dbeta_j = sum_rows dy_j
 * Rows are split over threads; dgamma/dbeta go to per-thread partial sums (double) that
 * are added afterwards, so no two threads write the same element.
 *
 * f32 rows run vector kernels (norm_vec.h, AVX-512 or AVX2 as heed_isa() says; sums
 * widened to double); f64 and CPUs without AVX2 run the scalar kernels. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "rowops.h"
#include "heed/norm.h"

#include <omp.h>
#include <tgmath.h>

/* ---------------------------------------------------------------- scalar kernels */

#define T float
#define FN(name) name##_f32
#include "norm.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "norm.c"
#undef T
#undef FN

/* ---------------------------------------------------------------- f32 kernels per ISA */

typedef struct {
    void (*fwd_row)(const float *x, float *y, int64_t n, const float *gamma, const float *beta, double eps,
                    double *stats);
    void (*bwd_row)(const float *x, const float *dy, float *dx, int64_t n, const float *gamma, const double *stats,
                    double *pgamma, double *pbeta);
} f32_row_kernels;

static const f32_row_kernels scalar_kernels = {fwd_row_f32, bwd_row_f32};

#define PER_ISA_FILE "../ops/norm_vec.h"
#include "../graph/per_isa.h"

static const f32_row_kernels *f32_kernels(void) { return HEED_WIDEST(kernels, &scalar_kernels); }

/* ---------------------------------------------------------------- op */

typedef struct {
    int64_t rows, n;
    double *stats; /* [rows][2]: mean, rstd */
} ln_saved;

static void layernorm_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *x = nd->in[0], *y = nd->out[0];
    heed_tensor *gamma = nd->iarg[0] ? nd->in[1] : NULL;
    heed_tensor *beta = nd->iarg[1] ? nd->in[1 + (gamma != NULL)] : NULL;
    const ln_saved *sv = nd->saved;
    int64_t rows = sv->rows, n = sv->n;
    void *gx = heed_grad_buffer(g, x), *ggamma = heed_grad_buffer(g, gamma), *gbeta = heed_grad_buffer(g, beta);
    int nt = heed_ctx_threads(g->ctx);
    if (rows < nt) nt = rows > 0 ? (int)rows : 1;
    /* Partial sums over nt fixed row ranges: [nt][n] for dgamma, then [nt][n] for dbeta. nt
     * is the ctx's count, not the team's (fewer on a busy machine), so the sums do not
     * change with the load. */
    double *part = NULL;
    if (ggamma || gbeta) {
        part = heed__zalloc(g, (size_t)nt * 2 * (size_t)n * sizeof *part);
        if (!part) return;
    }
    const f32_row_kernels *K = f32_kernels();
#pragma omp parallel for schedule(static, 1) num_threads(heed_ctx_threads_now(g->ctx)) if (rows > 1 && rows * n > 16384)
    for (int t = 0; t < nt; t++) {
        double *pg = ggamma ? part + (size_t)t * 2 * n : NULL, *pb = gbeta ? part + ((size_t)t * 2 + 1) * n : NULL;
        for (int64_t r = rows * t / nt; r < rows * (t + 1) / nt; r++) {
            const double *st = sv->stats + 2 * r;
            if (x->dtype == HEED_F32) {
                const float *xr = (const float *)x->data + r * n, *dyr = (const float *)y->grad + r * n;
                float *dxr = gx ? (float *)gx + r * n : NULL;
                const float *gm = gamma ? gamma->data : NULL;
                K->bwd_row(xr, dyr, dxr, n, gm, st, pg, pb);
            } else {
                const double *xr = (const double *)x->data + r * n, *dyr = (const double *)y->grad + r * n;
                double *dxr = gx ? (double *)gx + r * n : NULL;
                bwd_row_f64(xr, dyr, dxr, n, gamma ? gamma->data : NULL, st, pg, pb);
            }
        }
    }
    if (!part) return;
    if (x->dtype == HEED_F32) layernorm_backward_kernel_f32(ggamma, gbeta, n, nt, part);
    else layernorm_backward_kernel_f64(ggamma, gbeta, n, nt, part);
}

static const heed_op op_layernorm = {"heed_layernorm", layernorm_backward};

static bool check_affine(heed_graph *g, const char *op, heed_tensor *p, const char *name, heed_tensor *x) {
    if (!p) return true;
    if (!heed__check_like(g, op, p, name, x)) return false;
    int64_t n = x->shape[x->ndim - 1];
    if (p->ndim != 1 || p->shape[0] != n) {
        heed_graph_fail(g, HEED_ERR_SHAPE, "%s: %s%s must be [%lld] (the last dim of x%s)", op, name, HEED_S(p),
                        (long long)n, HEED_S(x));
        return false;
    }
    return true;
}

heed_tensor *heed_layernorm(heed_graph *g, heed_tensor *x, heed_tensor *gamma, heed_tensor *beta, double eps) {
    const char *op = "heed_layernorm";
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    if (x->ndim < 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE,
                               "%s: x%s is a scalar; it needs at least 1 dim (normalised over the last dim)", op,
                               HEED_S(x)),
               NULL;
    if (!check_affine(g, op, gamma, "gamma", x) || !check_affine(g, op, beta, "beta", x)) return NULL;
    if (!(eps >= 0) || !isfinite(eps))
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: eps = %g (must be finite and >= 0)", op, eps), NULL;
    int64_t n = x->shape[x->ndim - 1], rows = n ? x->numel / n : 0;
    heed_tensor *y = heed__new(g, op, x->dtype, x->ndim, x->shape);
    double *stats = heed_graph_alloc(g, (size_t)(rows ? rows : 1) * 2 * sizeof *stats);
    if (!y || !stats) return NULL;
    if (x->dtype == HEED_F32) {
        const float *X = x->data, *gm = gamma ? gamma->data : NULL, *bt = beta ? beta->data : NULL;
        float *Y = y->data;
        const f32_row_kernels *K = f32_kernels();
#pragma omp parallel for schedule(static) if (rows > 1 && rows * n > 16384) num_threads(heed_ctx_threads_now(g->ctx))
        for (int64_t r = 0; r < rows; r++) K->fwd_row(X + r * n, Y + r * n, n, gm, bt, eps, stats + 2 * r);
    } else {
        const double *X = x->data, *gm = gamma ? gamma->data : NULL, *bt = beta ? beta->data : NULL;
        double *Y = y->data;
#pragma omp parallel for schedule(static) if (rows > 1 && rows * n > 16384) num_threads(heed_ctx_threads_now(g->ctx))
        for (int64_t r = 0; r < rows; r++) fwd_row_f64(X + r * n, Y + r * n, n, gm, bt, eps, stats + 2 * r);
    }
    heed_tensor *in[3] = {x};
    int n_in = 1;
    if (gamma) in[n_in++] = gamma;
    if (beta) in[n_in++] = beta;
    heed_node *nd = heed_record(g, &op_layernorm, n_in, in, 1, &y);
    if (nd) {
        nd->iarg[0] = gamma != NULL;
        nd->iarg[1] = beta != NULL;
        ln_saved *sv = heed_graph_alloc(g, sizeof *sv);
        if (sv) *sv = (ln_saved){rows, n, stats};
        nd->saved = sv;
    }
    return heed_graph_ok(g) ? y : NULL;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

/* The scalar layer-norm row kernels: f64 always runs these; f32 runs them on CPUs without
 * AVX2. Math: at the top. stats[0] = mean, stats[1] = rstd. gamma, beta may be NULL. */

static void FN(fwd_row)(const T *x, T *y, int64_t n, const T *gamma, const T *beta, double eps, double *stats) {
    double s = 0, v = 0;
    for (int64_t j = 0; j < n; j++) s += x[j];
    double mean = s / (double)n;
    for (int64_t j = 0; j < n; j++) v += ((double)x[j] - mean) * ((double)x[j] - mean);
    double rstd = 1 / sqrt(v / (double)n + eps);
    for (int64_t j = 0; j < n; j++) {
        T xh = (T)(((double)x[j] - mean) * rstd);
        y[j] = (gamma ? xh * gamma[j] : xh) + (beta ? beta[j] : 0);
    }
    stats[0] = mean, stats[1] = rstd;
}

static void FN(bwd_row)(const T *x, const T *dy, T *dx, int64_t n, const T *gamma, const double *stats, double *pgamma,
                        double *pbeta) {
    double mean = stats[0], rstd = stats[1], a = 0, b = 0;
    for (int64_t j = 0; j < n; j++) {
        double xh = ((double)x[j] - mean) * rstd, h = gamma ? (double)dy[j] * gamma[j] : dy[j];
        a += h, b += h * xh;
        if (pgamma) pgamma[j] += (double)dy[j] * xh;
        if (pbeta) pbeta[j] += dy[j];
    }
    if (!dx) return;
    a /= (double)n, b /= (double)n;
    for (int64_t j = 0; j < n; j++) {
        double xh = ((double)x[j] - mean) * rstd, h = gamma ? (double)dy[j] * gamma[j] : dy[j];
        dx[j] += (T)(rstd * (h - a - xh * b));
    }
}

/* dgamma and dbeta: the nt threads' partial sums added up (layernorm_backward). */
static void FN(layernorm_backward_kernel)(void *ggamma, void *gbeta, int64_t n, int nt, double *part) {
    T *dg = ggamma, *db = gbeta;
    for (int64_t j = 0; j < n; j++) {
        double sg = 0, sb = 0;
        for (int t = 0; t < nt; t++) sg += part[(size_t)t * 2 * n + j], sb += part[((size_t)t * 2 + 1) * n + j];
        if (dg) dg[j] += (T)sg;
        if (db) db[j] += (T)sb;
    }
}
#endif
