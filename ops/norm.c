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
 * f32 rows run AVX2 kernels (sums widened to double); f64 and CPUs without AVX2 run the
 * scalar kernels. */
#include "rowops.h"

#include <omp.h>
#include <tgmath.h>

/* ---------------------------------------------------------------- scalar kernels */

#define T float
#define FN(name) name##_f32
#include "norm_kernels.h"
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "norm_kernels.h"
#undef T
#undef FN

/* ---------------------------------------------------------------- AVX2 f32 kernels */

HEED_AVX2 static inline __m256d lo4(__m256 v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
HEED_AVX2 static inline __m256d hi4(__m256 v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }

HEED_AVX2 static void fwd_row_f32_avx2(const float *x, float *y, int64_t n, const float *gamma, const float *beta,
                                       double eps, double *stats) {
    int64_t full = n & ~(int64_t)7, j;
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (j = 0; j < full; j += 8) {
        __m256 v = _mm256_loadu_ps(x + j);
        s0 = _mm256_add_pd(s0, lo4(v)), s1 = _mm256_add_pd(s1, hi4(v));
    }
    double s = heed__hsum4d(_mm256_add_pd(s0, s1));
    for (; j < n; j++) s += x[j];
    double mean = s / (double)n;
    const float mf = (float)mean;
    const __m256 vmean = _mm256_set1_ps(mf);
    /* var from the centred values (two passes: no cancellation) */
    s0 = s1 = _mm256_setzero_pd();
    for (j = 0; j < full; j += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + j), vmean);
        __m256d dl = lo4(d), dh = hi4(d);
        s0 = _mm256_fmadd_pd(dl, dl, s0), s1 = _mm256_fmadd_pd(dh, dh, s1);
    }
    double v = heed__hsum4d(_mm256_add_pd(s0, s1));
    for (; j < n; j++) v += ((double)x[j] - mf) * ((double)x[j] - mf);
    /* x - mf differs from x - mean by a constant c = mean - mf: sum (d - c)^2 = sum d^2 - n c^2 */
    double c = mean - mf;
    v -= (double)n * c * c;
    double rstd = 1 / sqrt(fmax(v, 0) / (double)n + eps);
    const float rf = (float)rstd;
    const __m256 vr = _mm256_set1_ps(rf);
    for (j = 0; j < full; j += 8) {
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vmean), vr);
        if (gamma) xh = _mm256_mul_ps(xh, _mm256_loadu_ps(gamma + j));
        if (beta) xh = _mm256_add_ps(xh, _mm256_loadu_ps(beta + j));
        _mm256_storeu_ps(y + j, xh);
    }
    for (; j < n; j++) {
        float xh = (x[j] - mf) * rf;
        y[j] = (gamma ? xh * gamma[j] : xh) + (beta ? beta[j] : 0);
    }
    stats[0] = mean, stats[1] = rstd;
}

HEED_AVX2 static void bwd_row_f32_avx2(const float *x, const float *dy, float *dx, int64_t n, const float *gamma,
                                       const double *stats, double *pgamma, double *pbeta) {
    const float mf = (float)stats[0], rf = (float)stats[1];
    const __m256 vmean = _mm256_set1_ps(mf), vr = _mm256_set1_ps(rf);
    int64_t full = n & ~(int64_t)7, j;
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, b0 = a0, b1 = a0;
    for (j = 0; j < full; j += 8) {
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vmean), vr);
        __m256 d = _mm256_loadu_ps(dy + j);
        __m256 h = gamma ? _mm256_mul_ps(d, _mm256_loadu_ps(gamma + j)) : d;
        __m256d hl = lo4(h), hh = hi4(h);
        a0 = _mm256_add_pd(a0, hl), a1 = _mm256_add_pd(a1, hh);
        b0 = _mm256_fmadd_pd(hl, lo4(xh), b0), b1 = _mm256_fmadd_pd(hh, hi4(xh), b1);
        if (pgamma) {
            __m256 gx = _mm256_mul_ps(d, xh);
            _mm256_storeu_pd(pgamma + j, _mm256_add_pd(_mm256_loadu_pd(pgamma + j), lo4(gx)));
            _mm256_storeu_pd(pgamma + j + 4, _mm256_add_pd(_mm256_loadu_pd(pgamma + j + 4), hi4(gx)));
        }
        if (pbeta) {
            _mm256_storeu_pd(pbeta + j, _mm256_add_pd(_mm256_loadu_pd(pbeta + j), lo4(d)));
            _mm256_storeu_pd(pbeta + j + 4, _mm256_add_pd(_mm256_loadu_pd(pbeta + j + 4), hi4(d)));
        }
    }
    double a = heed__hsum4d(_mm256_add_pd(a0, a1)), b = heed__hsum4d(_mm256_add_pd(b0, b1));
    for (; j < n; j++) {
        float xh = (x[j] - mf) * rf, h = gamma ? dy[j] * gamma[j] : dy[j];
        a += h, b += (double)h * xh;
        if (pgamma) pgamma[j] += dy[j] * xh;
        if (pbeta) pbeta[j] += dy[j];
    }
    if (!dx) return;
    a /= (double)n, b /= (double)n;
    const __m256 va = _mm256_set1_ps((float)a), vb = _mm256_set1_ps((float)b);
    for (j = 0; j < full; j += 8) {
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vmean), vr);
        __m256 d = _mm256_loadu_ps(dy + j);
        __m256 h = gamma ? _mm256_mul_ps(d, _mm256_loadu_ps(gamma + j)) : d;
        __m256 t = _mm256_fnmadd_ps(xh, vb, _mm256_sub_ps(h, va)); /* h - a - xh*b */
        _mm256_storeu_ps(dx + j, _mm256_fmadd_ps(vr, t, _mm256_loadu_ps(dx + j)));
    }
    for (; j < n; j++) {
        float xh = (x[j] - mf) * rf, h = gamma ? dy[j] * gamma[j] : dy[j];
        dx[j] += rf * (h - (float)a - xh * (float)b);
    }
}

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
    /* Partial sums over nt fixed row ranges: [nt][n] for dgamma, then [nt][n] for dbeta. nt
     * is the ctx's count, not the team's (fewer on a busy machine), so the sums do not
     * change with the load. */
    int nt = heed_ctx_threads(g->ctx);
    if (rows < nt) nt = rows > 0 ? (int)rows : 1;
    double *part = NULL;
    if (ggamma || gbeta) {
        part = heed__zalloc(g, (size_t)nt * 2 * (size_t)n * sizeof *part);
        if (!part) return;
    }
    bool avx2 = x->dtype == HEED_F32 && heed__have_avx2();
#pragma omp parallel for schedule(static, 1) num_threads(heed__threads_now(g->ctx)) if (rows > 1 && rows * n > 16384)
    for (int t = 0; t < nt; t++) {
        double *pg = ggamma ? part + (size_t)t * 2 * n : NULL, *pb = gbeta ? part + ((size_t)t * 2 + 1) * n : NULL;
        for (int64_t r = rows * t / nt; r < rows * (t + 1) / nt; r++) {
            const double *st = sv->stats + 2 * r;
            if (x->dtype == HEED_F32) {
                const float *xr = (const float *)x->data + r * n, *dyr = (const float *)y->grad + r * n;
                float *dxr = gx ? (float *)gx + r * n : NULL;
                const float *gm = gamma ? gamma->data : NULL;
                if (avx2) bwd_row_f32_avx2(xr, dyr, dxr, n, gm, st, pg, pb);
                else bwd_row_f32(xr, dyr, dxr, n, gm, st, pg, pb);
            } else {
                const double *xr = (const double *)x->data + r * n, *dyr = (const double *)y->grad + r * n;
                double *dxr = gx ? (double *)gx + r * n : NULL;
                bwd_row_f64(xr, dyr, dxr, n, gamma ? gamma->data : NULL, st, pg, pb);
            }
        }
    }
    if (!part) return;
    HEED_FOR_DTYPE(x->dtype, T, {
        T *dg = ggamma, *db = gbeta;
        for (int64_t j = 0; j < n; j++) {
            double sg = 0, sb = 0;
            for (int t = 0; t < nt; t++) sg += part[(size_t)t * 2 * n + j], sb += part[((size_t)t * 2 + 1) * n + j];
            if (dg) dg[j] += (T)sg;
            if (db) db[j] += (T)sb;
        }
    });
}

static const heed_op op_layernorm = {"heed_layernorm", layernorm_backward};

static bool check_affine(heed_graph *g, const char *op, heed_tensor *p, const char *name, heed_tensor *x) {
    if (!p) return true;
    if (!heed__check_like(g, op, p, name, x)) return false;
    int64_t n = x->shape[x->ndim - 1];
    if (p->ndim != 1 || p->shape[0] != n) {
        heed_graph_fail(g, HEED_ERR_SHAPE, "%s: %s%s must be [%lld] (the last dim of x%s)", op, name, HEED_S(p), (long long)n,
                        HEED_S(x));
        return false;
    }
    return true;
}

heed_tensor *heed_layernorm(heed_graph *g, heed_tensor *x, heed_tensor *gamma, heed_tensor *beta, double eps) {
    const char *op = "heed_layernorm";
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    if (x->ndim < 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: x%s is a scalar; it needs at least 1 dim (normalised over the last dim)",
                               op, HEED_S(x)),
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
        bool avx2 = heed__have_avx2();
#pragma omp parallel for schedule(static) if (rows > 1 && rows * n > 16384) num_threads(heed__threads_now(g->ctx))
        for (int64_t r = 0; r < rows; r++) {
            if (avx2) fwd_row_f32_avx2(X + r * n, Y + r * n, n, gm, bt, eps, stats + 2 * r);
            else fwd_row_f32(X + r * n, Y + r * n, n, gm, bt, eps, stats + 2 * r);
        }
    } else {
        const double *X = x->data, *gm = gamma ? gamma->data : NULL, *bt = beta ? beta->data : NULL;
        double *Y = y->data;
#pragma omp parallel for schedule(static) if (rows > 1 && rows * n > 16384) num_threads(heed__threads_now(g->ctx))
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
