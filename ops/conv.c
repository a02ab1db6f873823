/* 2-D convolution (torch.nn.functional.conv2d), NCHW, through im2col + GEMM.
 *
 * x [N, C, H, W], w [O, C/G, kh, kw], bias [O] or NULL, G groups; per spatial dim a stride s, a
 * zero padding p and a dilation d. Output [N, O, Ho, Wo] with
 *   Ho = floor((H + 2 ph - dh (kh - 1) - 1) / sh) + 1   (Wo alike)
 *   y[n,o,i,j] = bias[o] + sum_{c,a,b} w[o,c,a,b] x[n, g Cg + c, i sh - ph + a dh, j sw - pw + b dw]
 * where g = o / Og is the group of o, Cg = C/G, Og = O/G, and x is 0 outside the image.
 *
 * im2col: for one image and one group, the matrix col[K, P] with K = Cg kh kw rows
 * (c, a, b) and P = Ho Wo columns (i, j),
 *   col[(c,a,b), (i,j)] = x[n, g Cg + c, i sh - ph + a dh, j sw - pw + b dw],
 * turns the sum into one GEMM: y[n, group g] as [Og, P] = w_g [Og, K] col [K, P].
 * Backward of that product, with dY = dy[n, group g] as [Og, P]:
 *   dw_g += dY col^T               (summed over images)
 *   dcol  = w_g^T dY,  dx[n] += col2im(dcol)
 * col2im is the transpose of im2col: each entry of dcol adds into the element of x it was
 * copied from (entries that came from the padding are dropped).
 *   dbias[o] = sum_{n,i,j} dy[n,o,i,j]
 * col is rebuilt in backward rather than kept: it is kh kw times the size of x.
 *
 * Cost: forward 2 N O K P flops, backward 4 N O K P (dw and dx); im2col and col2im move
 * N C kh kw P values each. A 1x1 kernel with stride 1 and no padding needs no im2col (col
 * is the image itself).
 *
 * Threads (docs/design.md, "Kernels"): with at least as many images as threads, each
 * thread takes whole images with its own col buffer, its GEMMs single-threaded inside the
 * parallel region, and sums its dw into a private buffer (the buffers are added in double
 * afterwards, so no element is written by two threads). With fewer images, images go one
 * after another: im2col and col2im split rows or channels over threads and each GEMM is
 * called outside any OpenMP region, where it runs on every BLAS thread. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "../graph/internal.h"
#include "heed/conv.h"
#include "gemm.h"

#include <limits.h>
#include <omp.h>

typedef struct {
    int64_t N, C, H, W, O, kh, kw, sh, sw, ph, pw, dh, dw, G, Ho, Wo;
    int64_t Cg, Og, K, P; /* channels per group in and out; GEMM sizes */
    bool direct;          /* 1x1, stride 1, no padding: col is x itself */
    bool per_thread;      /* whole images per thread */
    int threads;
} conv_plan;

/* ---------------------------------------------------------------- im2col, col2im */

/* The source column of output column j for kernel offset off = b dw - pw: j sw + off. The
 * valid outputs (source in [0, W)) form one run [lo, hi); with sw = 1 it is a memcpy. */
static void valid_run(int64_t n_out, int64_t stride, int64_t off, int64_t size, int64_t *lo, int64_t *hi) {
    /* j sw + off >= 0  <=>  j >= ceil(-off / sw);   j sw + off < size  <=>  j <= (size - 1 - off) / sw */
    int64_t a = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int64_t b = size - 1 - off < 0 ? 0 : (size - 1 - off) / stride + 1;
    if (b > n_out) b = n_out;
    if (a > b) a = b;
    *lo = a, *hi = b;
}

#define DEFINE_COL_KERNELS(T, sfx)                                                                                     \
    /* col[K, P] from the Cg channels of one image at x (a group's first channel). */                                  \
    static void im2col_##sfx(const conv_plan *p, const T *x, T *col, bool threaded) {                                  \
        int64_t kk = p->kh * p->kw;                                                                                    \
        _Pragma("omp parallel for schedule(static) if (threaded && p->K * p->P > 32768) num_threads(p->threads)")      \
        for (int64_t r = 0; r < p->K; r++) {                                                                           \
            int64_t c = r / kk, a = r % kk / p->kw, b = r % p->kw;                                                     \
            int64_t ioff = a * p->dh - p->ph, joff = b * p->dw - p->pw, j0, j1;                                        \
            valid_run(p->Wo, p->sw, joff, p->W, &j0, &j1);                                                             \
            const T *plane = x + c * p->H * p->W;                                                                      \
            T *dst = col + r * p->P;                                                                                   \
            for (int64_t i = 0; i < p->Ho; i++, dst += p->Wo) {                                                        \
                int64_t yy = i * p->sh + ioff;                                                                         \
                if (yy < 0 || yy >= p->H) {                                                                            \
                    memset(dst, 0, (size_t)p->Wo * sizeof(T));                                                         \
                    continue;                                                                                          \
                }                                                                                                      \
                const T *src = plane + yy * p->W; /* column j reads src[j sw + joff] */                                \
                memset(dst, 0, (size_t)j0 * sizeof(T));                                                                \
                if (p->sw == 1) memcpy(dst + j0, src + j0 + joff, (size_t)(j1 - j0) * sizeof(T));                      \
                else                                                                                                   \
                    for (int64_t j = j0; j < j1; j++) dst[j] = src[j * p->sw + joff];                                  \
                memset(dst + j1, 0, (size_t)(p->Wo - j1) * sizeof(T));                                                 \
            }                                                                                                          \
        }                                                                                                              \
    }                                                                                                                  \
    /* dx (the Cg channels of one image) += col2im(col). Channels are split over threads:    \
     * the rows of one channel all add into that channel's plane. */                         \
    static void col2im_##sfx(const conv_plan *p, const T *col, T *dx, bool threaded) {                                 \
        int64_t kk = p->kh * p->kw;                                                                                    \
        _Pragma("omp parallel for schedule(static) if (threaded && p->K * p->P > 32768) num_threads(p->threads)")      \
        for (int64_t c = 0; c < p->Cg; c++) {                                                                          \
            T *plane = dx + c * p->H * p->W;                                                                           \
            for (int64_t ab = 0; ab < kk; ab++) {                                                                      \
                int64_t a = ab / p->kw, b = ab % p->kw;                                                                \
                int64_t ioff = a * p->dh - p->ph, joff = b * p->dw - p->pw, j0, j1;                                    \
                valid_run(p->Wo, p->sw, joff, p->W, &j0, &j1);                                                         \
                const T *src = col + (c * kk + ab) * p->P;                                                             \
                for (int64_t i = 0; i < p->Ho; i++, src += p->Wo) {                                                    \
                    int64_t yy = i * p->sh + ioff;                                                                     \
                    if (yy < 0 || yy >= p->H) continue;                                                                \
                    T *dst = plane + yy * p->W;                                                                        \
                    for (int64_t j = j0; j < j1; j++) dst[j * p->sw + joff] += src[j];                                 \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    }

DEFINE_COL_KERNELS(float, f32)
DEFINE_COL_KERNELS(double, f64)

static void im2col(heed_dtype dt, const conv_plan *p, const void *x, void *col, bool threaded) {
    if (dt == HEED_F32) im2col_f32(p, x, col, threaded);
    else im2col_f64(p, x, col, threaded);
}

static void col2im(heed_dtype dt, const conv_plan *p, const void *col, void *dx, bool threaded) {
    if (dt == HEED_F32) col2im_f32(p, col, dx, threaded);
    else col2im_f64(p, col, dx, threaded);
}

/* ---------------------------------------------------------------- per image */

/* Element offsets: image n of x, image n of y, group g of an image of x / of y / of w. */
static int64_t x_image(const conv_plan *p) { return p->C * p->H * p->W; }
static int64_t y_image(const conv_plan *p) { return p->O * p->P; }

/* y[n] (already holding the bias or zeros) += w col for every group. */
static void forward_image(heed_dtype dt, const conv_plan *p, const char *x, const char *w, char *y, void *col,
                          bool threaded) {
    size_t es = heed_dtype_size(dt);
    for (int64_t g = 0; g < p->G; g++) {
        const char *xg = x + (size_t)(g * p->Cg * p->H * p->W) * es;
        const void *cg = xg;
        if (!p->direct) im2col(dt, p, xg, col, threaded), cg = col;
        heed_gemm(dt, false, false, p->Og, p->P, p->K, 1, w + (size_t)(g * p->Og * p->K) * es, p->K, cg, p->P, 1,
                  y + (size_t)(g * p->Og * p->P) * es, p->P);
    }
}

/* dw (may be NULL) += dY col^T; dx[n] (may be NULL) += col2im(w^T dY), for every group. */
static void backward_image(heed_dtype dt, const conv_plan *p, const char *x, const char *w, const char *dy, char *dw,
                           char *dx, void *col, bool threaded) {
    size_t es = heed_dtype_size(dt);
    for (int64_t g = 0; g < p->G; g++) {
        size_t xo = (size_t)(g * p->Cg * p->H * p->W) * es, wo = (size_t)(g * p->Og * p->K) * es;
        const char *dyg = dy + (size_t)(g * p->Og * p->P) * es;
        if (dw) {
            const void *cg = x + xo;
            if (!p->direct) im2col(dt, p, x + xo, col, threaded), cg = col;
            heed_gemm(dt, false, true, p->Og, p->K, p->P, 1, dyg, p->P, cg, p->P, 1, dw + wo, p->K);
        }
        if (dx && p->direct) {
            heed_gemm(dt, true, false, p->K, p->P, p->Og, 1, w + wo, p->K, dyg, p->P, 1, dx + xo, p->P);
        } else if (dx) {
            heed_gemm(dt, true, false, p->K, p->P, p->Og, 1, w + wo, p->K, dyg, p->P, 0, col, p->P);
            col2im(dt, p, col, dx + xo, threaded);
        }
    }
}

/* ---------------------------------------------------------------- backward */

#define T float
#define FN(name) name##_f32
#include "conv.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "conv.c"
#undef T
#undef FN

static void conv_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *x = nd->in[0], *w = nd->in[1], *bias = nd->n_in > 2 ? nd->in[2] : NULL, *y = nd->out[0];
    const conv_plan *p = nd->saved;
    heed_dtype dt = x->dtype;
    size_t es = heed_dtype_size(dt);
    char *gx = heed_grad_buffer(g, x), *gw = heed_grad_buffer(g, w), *gb = heed_grad_buffer(g, bias);
    if (gb) {
        if (dt == HEED_F32) conv_bias_grad_kernel_f32(y, gb, p, g);
        else conv_bias_grad_kernel_f64(y, gb, p, g);
    }
    if (!gx && !gw) return;
    if (p->K == 0) return; /* no input channels: nothing flows to x or w */
    const char *X = x->data, *Wt = w->data, *dY = y->grad;
    size_t col_bytes = p->direct ? 0 : (size_t)(p->K * p->P) * es;
    if (!p->per_thread) {
        void *col = col_bytes ? heed_graph_alloc(g, col_bytes) : NULL;
        if (col_bytes && !col) return;
        for (int64_t n = 0; n < p->N; n++)
            backward_image(dt, p, X + (size_t)(n * x_image(p)) * es, Wt, dY + (size_t)(n * y_image(p)) * es, gw,
                           gx ? gx + (size_t)(n * x_image(p)) * es : NULL, col, true);
        return;
    }
    int nt = p->threads;
    int64_t wn = w->numel;
    char *cols = col_bytes ? heed_graph_alloc(g, (size_t)nt * col_bytes) : NULL;
    char *dws = gw ? heed__zalloc(g, (size_t)nt * (size_t)wn * es) : NULL; /* per-thread dw */
    if ((col_bytes && !cols) || (gw && !dws)) return;
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num();
        char *dw_t = dws ? dws + (size_t)t * (size_t)wn * es : NULL;
#pragma omp for schedule(static)
        for (int64_t n = 0; n < p->N; n++)
            backward_image(dt, p, X + (size_t)(n * x_image(p)) * es, Wt, dY + (size_t)(n * y_image(p)) * es, dw_t,
                           gx ? gx + (size_t)(n * x_image(p)) * es : NULL, cols ? cols + (size_t)t * col_bytes : NULL,
                           false);
    }
    if (gw) {
        if (dt == HEED_F32) conv_weight_grad_sum_kernel_f32(dws, gw, wn, g, nt);
        else conv_weight_grad_sum_kernel_f64(dws, gw, wn, g, nt);
    }
}

static const heed_op op_conv2d = {"heed_conv2d", conv_backward};

/* ---------------------------------------------------------------- forward */

/* One option pair (h, w): 0 means dflt; negative or 2^31 and above is an error. */
static bool option_pair(heed_graph *g, const char *what, const int64_t in[2], int64_t dflt, int64_t out[2]) {
    for (int i = 0; i < 2; i++) {
        if (in[i] < 0 || in[i] > INT32_MAX) {
            heed_graph_fail(g, HEED_ERR_ARG, "heed_conv2d: %s = (%lld, %lld) (each must be in 0..2^31-1%s)", what,
                            (long long)in[0], (long long)in[1], dflt ? "; 0 means 1" : "");
            return false;
        }
        out[i] = in[i] ? in[i] : dflt;
    }
    return true;
}

static bool make_plan(heed_graph *g, heed_tensor *x, heed_tensor *w, heed_tensor *bias, const heed_conv2d_opts *o,
                      conv_plan *p) {
    const char *op = "heed_conv2d";
    heed_conv2d_opts none = {0};
    if (!o) o = &none;
    if (x->ndim != 4)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: x%s must be [N, C, H, W] (4 dims)", op, HEED_S(x)), false;
    if (w->ndim != 4)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: w%s must be [out_channels, in_channels/groups, kh, kw] (4 dims)",
                               op, HEED_S(w)),
               false;
    int64_t s[2], pd[2], d[2];
    if (!option_pair(g, "stride", o->stride, 1, s) || !option_pair(g, "padding", o->padding, 0, pd) ||
        !option_pair(g, "dilation", o->dilation, 1, d))
        return false;
    if (o->groups < 0 || o->groups > INT32_MAX)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: groups = %lld (must be >= 1; 0 means 1)", op,
                               (long long)o->groups),
               false;
    int64_t G = o->groups ? o->groups : 1;
    *p = (conv_plan){.N = x->shape[0],
                     .C = x->shape[1],
                     .H = x->shape[2],
                     .W = x->shape[3],
                     .O = w->shape[0],
                     .kh = w->shape[2],
                     .kw = w->shape[3],
                     .sh = s[0],
                     .sw = s[1],
                     .ph = pd[0],
                     .pw = pd[1],
                     .dh = d[0],
                     .dw = d[1],
                     .G = G};
    if (p->C % G)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: groups = %lld does not divide the %lld input channels of x%s",
                               op, (long long)G, (long long)p->C, HEED_S(x)),
               false;
    if (p->O % G)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: groups = %lld does not divide the %lld output channels of w%s",
                               op, (long long)G, (long long)p->O, HEED_S(w)),
               false;
    p->Cg = p->C / G, p->Og = p->O / G;
    if (w->shape[1] != p->Cg)
        return heed_graph_fail(g, HEED_ERR_SHAPE,
                               "%s: w%s has %lld input channels per group; x%s with groups = %lld needs %lld", op,
                               HEED_S(w), (long long)w->shape[1], HEED_S(x), (long long)G, (long long)p->Cg),
               false;
    if (p->kh < 1 || p->kw < 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: w%s: the kernel must be at least 1x1", op, HEED_S(w)), false;
    /* sizes are below 2^34 (heed's tensor limit) and the options below 2^31: no overflow */
    int64_t eh = d[0] * (p->kh - 1) + 1, ew = d[1] * (p->kw - 1) + 1, Hp = p->H + 2 * pd[0], Wp = p->W + 2 * pd[1];
    if (eh > Hp || ew > Wp)
        return heed_graph_fail(
                   g, HEED_ERR_SHAPE,
                   "%s: the kernel %lldx%lld (dilated to %lldx%lld) is larger than the padded input %lldx%lld "
                   "(x%s, padding (%lld, %lld))",
                   op, (long long)p->kh, (long long)p->kw, (long long)eh, (long long)ew, (long long)Hp, (long long)Wp,
                   HEED_S(x), (long long)pd[0], (long long)pd[1]),
               false;
    if (bias && (bias->ndim != 1 || bias->shape[0] != p->O))
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: bias%s must be [%lld] (the output channels of w%s)", op,
                               HEED_S(bias), (long long)p->O, HEED_S(w)),
               false;
    p->Ho = (Hp - eh) / s[0] + 1, p->Wo = (Wp - ew) / s[1] + 1;
    p->K = p->Cg * p->kh * p->kw, p->P = p->Ho * p->Wo;
    if (p->K > INT32_MAX || p->P > INT32_MAX || p->Og > INT32_MAX || (double)p->K * (double)p->P > 0x1p40)
        return heed_graph_fail(g, HEED_ERR_SHAPE,
                               "%s: x%s with w%s: an image's im2col matrix (%lld x %lld) is too large", op, HEED_S(x),
                               HEED_S(w), (long long)p->K, (long long)p->P),
               false;
    p->direct = p->kh == 1 && p->kw == 1 && s[0] == 1 && s[1] == 1 && pd[0] == 0 && pd[1] == 0;
    p->threads = heed_ctx_threads(g->ctx);
    p->per_thread =
        p->threads > 1 && p->N >= p->threads && (double)p->N * (double)p->O * (double)p->K * (double)p->P > 1e5;
    return true;
}

heed_tensor *heed_conv2d(heed_graph *g, heed_tensor *x, heed_tensor *w, heed_tensor *bias,
                         const heed_conv2d_opts *opts) {
    const char *op = "heed_conv2d";
    if (!heed_check_tensor(g, op, x, "x") || !heed__check_like(g, op, w, "w", x)) return NULL;
    if (bias && !heed__check_like(g, op, bias, "bias", x)) return NULL;
    conv_plan p;
    if (!make_plan(g, x, w, bias, opts, &p)) return NULL;
    int64_t shape[4] = {p.N, p.O, p.Ho, p.Wo};
    heed_tensor *y = heed__new(g, op, x->dtype, 4, shape);
    if (!y) return NULL;
    heed_dtype dt = x->dtype;
    size_t es = heed_dtype_size(dt);
    /* y starts as the bias (or zeros); the GEMMs add into it */
    if (dt == HEED_F32) conv2d_forward_kernel_f32(y, bias, g, p);
    else conv2d_forward_kernel_f64(y, bias, g, p);
    size_t col_bytes = p.direct ? 0 : (size_t)(p.K * p.P) * es;
    const char *X = x->data, *Wt = w->data;
    char *Y = y->data;
    if (p.K == 0) {
        /* no input channels: y is the bias */
    } else if (!p.per_thread) {
        void *col = col_bytes ? heed_graph_alloc(g, col_bytes) : NULL;
        if (col_bytes && !col) return NULL;
        for (int64_t n = 0; n < p.N; n++)
            forward_image(dt, &p, X + (size_t)(n * x_image(&p)) * es, Wt, Y + (size_t)(n * y_image(&p)) * es, col,
                          true);
    } else {
        char *cols = col_bytes ? heed_graph_alloc(g, (size_t)p.threads * col_bytes) : NULL;
        if (col_bytes && !cols) return NULL;
#pragma omp parallel num_threads(p.threads)
        {
            void *col = cols ? cols + (size_t)omp_get_thread_num() * col_bytes : NULL;
#pragma omp for schedule(static)
            for (int64_t n = 0; n < p.N; n++)
                forward_image(dt, &p, X + (size_t)(n * x_image(&p)) * es, Wt, Y + (size_t)(n * y_image(&p)) * es, col,
                              false);
        }
    }
    heed_tensor *in[3] = {x, w, bias};
    heed_node *nd = heed_record(g, &op_conv2d, bias ? 3 : 2, in, 1, &y);
    if (nd && (nd->saved = heed_graph_alloc(g, sizeof p))) *(conv_plan *)nd->saved = p;
    return heed_graph_ok(g) ? y : NULL;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

static void FN(conv_bias_grad_kernel)(heed_tensor *y, char *gb, const conv_plan *p, heed_graph *g) {
    const T *dy = y->grad;
    T *db = (T *)gb;
#pragma omp parallel for schedule(static) if (p->N * p->O * p->P > 65536) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t o = 0; o < p->O; o++) {
        double s = 0;
        for (int64_t n = 0; n < p->N; n++)
            for (int64_t k = 0; k < p->P; k++) s += dy[(n * p->O + o) * p->P + k];
        db[o] += (T)s;
    }
}

static void FN(conv_weight_grad_sum_kernel)(char *dws, char *gw, int64_t wn, heed_graph *g, int nt) {
    const T *part = (const T *)dws;
    T *dw = (T *)gw;
#pragma omp parallel for schedule(static) if (wn > 65536) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t i = 0; i < wn; i++) {
        double s = 0;
        for (int t = 0; t < nt; t++) s += part[(size_t)t * (size_t)wn + (size_t)i];
        dw[i] += (T)s;
    }
}

static void FN(conv2d_forward_kernel)(heed_tensor *y, heed_tensor *bias, heed_graph *g, conv_plan p) {
    T *Y = y->data;
    const T *b = bias ? bias->data : NULL;
#pragma omp parallel for schedule(static) if (y->numel > 65536) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t no = 0; no < p.N * p.O; no++)
        for (int64_t k = 0; k < p.P; k++) Y[no * p.P + k] = b ? b[no % p.O] : 0;
}
#endif
