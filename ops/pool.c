/* 2-D pooling over the last two dims (torch.nn.functional.max_pool2d, avg_pool2d,
 * adaptive_avg_pool2d). x is a stack of planes [H, W] (N C of them for [N, C, H, W]);
 * every plane is pooled alike, so planes are split over threads and no two threads ever
 * write the same element, forward or backward.
 *
 * Windows with kernel k, stride s, padding p: output row i covers input rows
 *   [i s - p, i s - p + k)  clipped to [0, H),   Ho = floor((H + 2p - k) / s) + 1
 * (columns alike). With p <= k/2 (PyTorch's rule) every clipped window holds an element.
 *   max:  y = max of the window; a NaN wins (as in PyTorch). dx[argmax] += dy, argmax the
 *         first position holding the max (or the first NaN), saved in forward (an int32 per
 *         output).
 *   avg:  y = sum of the window / D; D = k_h k_w (padding counts, PyTorch's default
 *         count_include_pad=True), or the number of in-image elements (exclude_padding).
 *         dx[every element of the window] += dy / D.
 * Adaptive average pooling to an out_h x out_w grid: output row i covers input rows
 *   [floor(i H / out_h), ceil((i + 1) H / out_h))
 * (columns alike), so windows cover the plane, overlap by at most one row when H is not
 * a multiple of out_h, and y is their mean; dx adds dy / (window size) over each window.
 *
 * Cost: forward reads each window once (k_h k_w per output), backward writes the same;
 * max saves 4 bytes per output. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "../graph/internal.h"
#include "heed/pool.h"

#include <limits.h>
#include <math.h>

typedef enum { POOL_MAX, POOL_AVG, POOL_ADAPTIVE } pool_kind;

typedef struct {
    pool_kind kind;
    int64_t planes, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw;
    bool exclude_padding;
    int32_t *argmax; /* max: per output, the flat index in its plane */
} pool_plan;

/* The input rows of output row i along one spatial dim: [*lo, *hi). */
static void window(const pool_plan *p, bool rows, int64_t i, int64_t *lo, int64_t *hi) {
    int64_t n = rows ? p->H : p->W, n_out = rows ? p->Ho : p->Wo;
    if (p->kind == POOL_ADAPTIVE) {
        *lo = i * n / n_out;
        *hi = ((i + 1) * n + n_out - 1) / n_out;
        return;
    }
    int64_t k = rows ? p->kh : p->kw, s = rows ? p->sh : p->sw, pad = rows ? p->ph : p->pw;
    int64_t a = i * s - pad, b = a + k;
    *lo = a < 0 ? 0 : a;
    *hi = b > n ? n : b;
}

/* The divisor of an average window with in-image extent rows x cols. */
static double divisor(const pool_plan *p, int64_t rows, int64_t cols) {
    if (p->kind == POOL_ADAPTIVE || p->exclude_padding) return (double)(rows * cols);
    return (double)(p->kh * p->kw);
}

#define T float
#define FN(name) name##_f32
#include "pool.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "pool.c"
#undef T
#undef FN

static const char *op_name(pool_kind k) {
    return k == POOL_MAX ? "heed_max_pool2d" : k == POOL_AVG ? "heed_avg_pool2d" : "heed_adaptive_avg_pool2d";
}

static void pool_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *x = nd->in[0], *y = nd->out[0];
    const pool_plan *p = nd->saved;
    void *gx = heed_grad_buffer(g, x);
    if (!gx) return;
    int64_t in_plane = p->H * p->W, out_plane = p->Ho * p->Wo;
#pragma omp parallel for schedule(static) if (x->numel > 65536) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t q = 0; q < p->planes; q++) {
        const int32_t *am = p->argmax ? p->argmax + q * out_plane : NULL;
        if (x->dtype == HEED_F32)
            backward_plane_f32(p, (const float *)y->grad + q * out_plane, am, (float *)gx + q * in_plane);
        else backward_plane_f64(p, (const double *)y->grad + q * out_plane, am, (double *)gx + q * in_plane);
    }
}

static const heed_op op_max_pool = {"heed_max_pool2d", pool_backward};
static const heed_op op_avg_pool = {"heed_avg_pool2d", pool_backward};
static const heed_op op_adaptive_pool = {"heed_adaptive_avg_pool2d", pool_backward};

/* Runs the plan on x (checked: 3 or 4 dims, sizes set) and records the node. */
static heed_tensor *pool_run(heed_graph *g, heed_tensor *x, pool_plan *p) {
    const char *op = op_name(p->kind);
    int64_t shape[4];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 2] = p->Ho, shape[x->ndim - 1] = p->Wo;
    heed_tensor *y = heed__new(g, op, x->dtype, x->ndim, shape);
    if (!y) return NULL;
    bool records = heed_graph_records(g, 1, &x);
    int32_t *argmax = NULL;
    if (p->kind == POOL_MAX && records &&
        !(argmax = heed_graph_alloc(g, (size_t)(y->numel ? y->numel : 1) * sizeof *argmax)))
        return NULL;
    int64_t in_plane = p->H * p->W, out_plane = p->Ho * p->Wo;
#pragma omp parallel for schedule(static) if (x->numel > 65536) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t q = 0; q < p->planes; q++) {
        int32_t *am = argmax ? argmax + q * out_plane : NULL;
        if (x->dtype == HEED_F32)
            forward_plane_f32(p, (const float *)x->data + q * in_plane, (float *)y->data + q * out_plane, am);
        else forward_plane_f64(p, (const double *)x->data + q * in_plane, (double *)y->data + q * out_plane, am);
    }
    p->argmax = argmax;
    const heed_op *ops[] = {&op_max_pool, &op_avg_pool, &op_adaptive_pool};
    heed_node *nd = heed_record(g, ops[p->kind], 1, &x, 1, &y);
    if (nd && (nd->saved = heed_graph_alloc(g, sizeof *p))) *(pool_plan *)nd->saved = *p;
    return heed_graph_ok(g) ? y : NULL;
}

/* x must be [N, C, H, W] or [C, H, W]; fills planes, H, W. */
static bool check_planes(heed_graph *g, const char *op, heed_tensor *x, pool_plan *p) {
    if (!heed_check_tensor(g, op, x, "x")) return false;
    if (x->ndim != 3 && x->ndim != 4)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: x%s must be [N, C, H, W] or [C, H, W]", op, HEED_S(x)), false;
    p->H = x->shape[x->ndim - 2], p->W = x->shape[x->ndim - 1];
    p->planes = 1;
    for (int i = 0; i < x->ndim - 2; i++) p->planes *= x->shape[i];
    if (p->H * p->W > INT32_MAX)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: x%s: a plane of more than 2^31-1 elements", op, HEED_S(x)),
               false;
    return true;
}

static heed_tensor *pool2d(heed_graph *g, heed_tensor *x, const heed_pool2d_opts *o, pool_kind kind) {
    const char *op = op_name(kind);
    pool_plan p = {.kind = kind};
    if (!check_planes(g, op, x, &p)) return NULL;
    if (!o) return heed_graph_fail(g, HEED_ERR_ARG, "%s: opts is NULL (the kernel size has no default)", op), NULL;
    const int64_t *k = o->kernel, *s = o->stride, *pd = o->padding;
    for (int i = 0; i < 2; i++) {
        if (k[i] < 1 || k[i] > INT32_MAX)
            return heed_graph_fail(g, HEED_ERR_ARG, "%s: kernel = (%lld, %lld) (each must be in 1..2^31-1)", op,
                                   (long long)k[0], (long long)k[1]),
                   NULL;
        if (s[i] < 0 || s[i] > INT32_MAX)
            return heed_graph_fail(g, HEED_ERR_ARG,
                                   "%s: stride = (%lld, %lld) (each must be in 0..2^31-1; 0 means the kernel size)", op,
                                   (long long)s[0], (long long)s[1]),
                   NULL;
        if (pd[i] < 0 || pd[i] > k[i] / 2)
            return heed_graph_fail(g, HEED_ERR_ARG,
                                   "%s: padding = (%lld, %lld) with kernel (%lld, %lld) (each must be in 0..kernel/2)",
                                   op, (long long)pd[0], (long long)pd[1], (long long)k[0], (long long)k[1]),
                   NULL;
    }
    p.kh = k[0], p.kw = k[1], p.sh = s[0] ? s[0] : k[0], p.sw = s[1] ? s[1] : k[1], p.ph = pd[0], p.pw = pd[1];
    p.exclude_padding = o->exclude_padding;
    if (p.H + 2 * p.ph < p.kh || p.W + 2 * p.pw < p.kw)
        return heed_graph_fail(g, HEED_ERR_SHAPE,
                               "%s: the kernel %lldx%lld is larger than the padded input %lldx%lld (x%s)", op,
                               (long long)p.kh, (long long)p.kw, (long long)(p.H + 2 * p.ph),
                               (long long)(p.W + 2 * p.pw), HEED_S(x)),
               NULL;
    p.Ho = (p.H + 2 * p.ph - p.kh) / p.sh + 1, p.Wo = (p.W + 2 * p.pw - p.kw) / p.sw + 1;
    return pool_run(g, x, &p);
}

heed_tensor *heed_max_pool2d(heed_graph *g, heed_tensor *x, const heed_pool2d_opts *opts) {
    return pool2d(g, x, opts, POOL_MAX);
}

heed_tensor *heed_avg_pool2d(heed_graph *g, heed_tensor *x, const heed_pool2d_opts *opts) {
    return pool2d(g, x, opts, POOL_AVG);
}

heed_tensor *heed_adaptive_avg_pool2d(heed_graph *g, heed_tensor *x, int64_t out_h, int64_t out_w) {
    const char *op = op_name(POOL_ADAPTIVE);
    pool_plan p = {.kind = POOL_ADAPTIVE};
    if (!check_planes(g, op, x, &p)) return NULL;
    if (p.H < 1 || p.W < 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: x%s has an empty plane (H and W must be >= 1)", op, HEED_S(x)),
               NULL;
    if (out_h < 1 || out_w < 1 || out_h > INT32_MAX || out_w > INT32_MAX)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: output size %lldx%lld (each must be in 1..2^31-1)", op,
                               (long long)out_h, (long long)out_w),
               NULL;
    p.Ho = out_h, p.Wo = out_w;
    return pool_run(g, x, &p);
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

static void FN(forward_plane)(const pool_plan *p, const T *x, T *y, int32_t *argmax) {
    for (int64_t i = 0; i < p->Ho; i++) {
        int64_t r0, r1;
        window(p, true, i, &r0, &r1);
        for (int64_t j = 0; j < p->Wo; j++) {
            int64_t c0, c1;
            window(p, false, j, &c0, &c1);
            if (p->kind == POOL_MAX) {
                int64_t best = r0 * p->W + c0;
                T m = x[best];
                for (int64_t r = r0; r < r1 && !isnan(m); r++)
                    for (int64_t c = c0; c < c1; c++) {
                        T v = x[r * p->W + c];
                        if (v > m || isnan(v)) {
                            m = v, best = r * p->W + c;
                            if (isnan(v)) break;
                        }
                    }
                y[i * p->Wo + j] = m;
                if (argmax) argmax[i * p->Wo + j] = (int32_t)best;
            } else {
                double s = 0;
                for (int64_t r = r0; r < r1; r++)
                    for (int64_t c = c0; c < c1; c++) s += x[r * p->W + c];
                y[i * p->Wo + j] = (T)(s / divisor(p, r1 - r0, c1 - c0));
            }
        }
    }
}

static void FN(backward_plane)(const pool_plan *p, const T *dy, const int32_t *argmax, T *dx) {
    for (int64_t i = 0; i < p->Ho; i++) {
        int64_t r0, r1;
        window(p, true, i, &r0, &r1);
        for (int64_t j = 0; j < p->Wo; j++) {
            T d = dy[i * p->Wo + j];
            if (p->kind == POOL_MAX) {
                dx[argmax[i * p->Wo + j]] += d;
                continue;
            }
            int64_t c0, c1;
            window(p, false, j, &c0, &c1);
            T share = (T)(d / divisor(p, r1 - r0, c1 - c0));
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = c0; c < c1; c++) dx[r * p->W + c] += share;
        }
    }
}
#endif
