/* PNG pictures of attention weights: heatmaps (one map or a grid of heads) and an overlay
 * of spatial weights on an image. libpng's simplified API writes 8-bit RGB rows. */
#include "viz_internal.h"

#include <math.h>
#include <png.h>
#include <stdlib.h>

/* Encodes rgb[h*w*3] into path atomically. */
static heed_status write_png(heed_ctx *ctx, const char *fn, const char *path, const unsigned char *rgb, int64_t w,
                             int64_t h) {
    heed_atomic_file vf;
    heed_status st = heed_atomic_open(ctx, fn, path, &vf);
    if (st != HEED_OK) return st;
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = PNG_FORMAT_RGB;
    if (!png_image_write_to_stdio(&img, vf.f, 0, rgb, 0, NULL))
        st = heed_ctx_fail(ctx, HEED_ERR_IO, "%s: libpng could not write %s: %s", fn, path, img.message);
    png_image_free(&img);
    return heed_atomic_close(ctx, &vf, st);
}

static heed_status check_size(heed_ctx *ctx, const char *fn, int64_t w, int64_t h) {
    if (w > HEED_VIZ_MAX_SIDE || h > HEED_VIZ_MAX_SIDE || w * h > (INT64_C(1) << 28))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: a %lld x %lld image is too large (at most %d px a side)", fn,
                             (long long)w, (long long)h, HEED_VIZ_MAX_SIDE);
    return HEED_OK;
}

heed_status heed_heatmap_png(heed_ctx *ctx, const char *path, const heed_tensor *weights,
                             const heed_heatmap_opts *opts) {
    const char *fn = "heed_heatmap_png";
    if (!ctx) return HEED_ERR_ARG;
    heed__ctx_clear(ctx);
    heed_heatmap_opts o = opts ? *opts : (heed_heatmap_opts){0};
    heed_status st = heed__viz_tensor(ctx, fn, weights, "weights", 2, 4);
    if (st != HEED_OK) return st;
    if (!heed__viz_cmap_ok(o.cmap)) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: unknown colormap %d", fn, (int)o.cmap);
    if (o.cell < 0 || o.grid_cols < 0 || o.gap < 0 || o.cell > 4096 || o.gap > 4096)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: cell = %d, grid_cols = %d, gap = %d (must be >= 0; 0 = auto)", fn,
                             o.cell, o.grid_cols, o.gap);
    int nd = weights->ndim;
    int64_t nq = weights->shape[nd - 2], nk = weights->shape[nd - 1], H = nd >= 3 ? weights->shape[nd - 3] : 1;
    int64_t B = nd == 4 ? weights->shape[0] : 1;
    if (o.batch < 0 || o.batch >= B)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: batch = %lld is out of range for weights%s", fn,
                             (long long)o.batch, HEED_S(weights));
    int64_t off = o.batch * H * nq * nk;
    int64_t cell = o.cell ? o.cell : 512 / (nq > nk ? nq : nk);
    cell = cell < 1 ? 1 : cell > 16 && !o.cell ? 16 : cell;
    int64_t cols = o.grid_cols ? o.grid_cols : (int64_t)ceil(sqrt((double)H));
    if (cols > H) cols = H;
    int64_t rows = (H + cols - 1) / cols, gap = H > 1 ? (o.gap ? o.gap : 4) : 0;
    if (nq > HEED_VIZ_MAX_SIDE || nk > HEED_VIZ_MAX_SIDE || cols > HEED_VIZ_MAX_SIDE || rows > HEED_VIZ_MAX_SIDE)
        return check_size(ctx, fn, nk * cols, nq * rows);
    int64_t tw = nk * cell, th = nq * cell, W = cols * tw + (cols - 1) * gap, Ht = rows * th + (rows - 1) * gap;
    if ((st = check_size(ctx, fn, W, Ht)) != HEED_OK) return st;
    unsigned char *rgb = malloc((size_t)(W * Ht * 3));
    if (!rgb)
        return heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory for a %lld x %lld image", fn, (long long)W,
                             (long long)Ht);
    memset(rgb, 255, (size_t)(W * Ht * 3)); /* white gaps */
    double lo, hi;
    heed__viz_range(weights, off, H * nq * nk, o.lo, o.hi, &lo, &hi);
    for (int64_t h = 0; h < H; h++) {
        int64_t x0 = (h % cols) * (tw + gap), y0 = (h / cols) * (th + gap);
        for (int64_t i = 0; i < nq; i++) {
            int64_t row = off + (h * nq + i) * nk;
            double rlo = lo, rhi = hi;
            if (o.per_row) heed__viz_range(weights, row, nk, 0, 0, &rlo, &rhi);
            for (int64_t j = 0; j < nk; j++) {
                double x = heed_get(weights, row + j);
                unsigned char c[3];
                heed__viz_color(o.cmap, isnan(x) ? x : (x - rlo) / (rhi - rlo), c);
                for (int64_t py = 0; py < cell; py++)
                    for (int64_t px = 0; px < cell; px++) {
                        unsigned char *p = rgb + ((y0 + i * cell + py) * W + x0 + j * cell + px) * 3;
                        p[0] = c[0], p[1] = c[1], p[2] = c[2];
                    }
            }
        }
    }
    st = write_png(ctx, fn, path, rgb, W, Ht);
    free(rgb);
    return st;
}

heed_status heed_overlay_png(heed_ctx *ctx, const char *path, const heed_tensor *image, const heed_tensor *weights,
                             const heed_overlay_opts *opts) {
    const char *fn = "heed_overlay_png";
    if (!ctx) return HEED_ERR_ARG;
    heed__ctx_clear(ctx);
    heed_overlay_opts o = opts ? *opts : (heed_overlay_opts){0};
    heed_status st;
    if ((st = heed__viz_tensor(ctx, fn, image, "image", 3, 3)) != HEED_OK ||
        (st = heed__viz_tensor(ctx, fn, weights, "weights", 1, 2)) != HEED_OK)
        return st;
    if (image->shape[2] != 3)
        return heed_ctx_fail(ctx, HEED_ERR_SHAPE, "%s: image%s must be [H,W,3] (RGB)", fn, HEED_S(image));
    if (!heed__viz_cmap_ok(o.cmap)) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: unknown colormap %d", fn, (int)o.cmap);
    double alpha = o.alpha == 0 ? 0.6 : o.alpha;
    if (!(alpha > 0 && alpha <= 1))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: alpha = %g (must be in (0, 1])", fn, o.alpha);
    int64_t h, w;
    if (weights->ndim == 2) {
        h = weights->shape[0], w = weights->shape[1];
    } else {
        h = o.grid_h, w = o.grid_w;
        if (h < 1 || w < 1 || h > weights->numel || weights->numel % h || w != weights->numel / h)
            return heed_ctx_fail(ctx, HEED_ERR_SHAPE,
                                 "%s: 1-D weights%s need opts.grid_h * opts.grid_w = %lld (got %lld x %lld)", fn,
                                 HEED_S(weights), (long long)weights->numel, (long long)h, (long long)w);
    }
    int64_t H = image->shape[0], W = image->shape[1];
    if ((st = check_size(ctx, fn, W, H)) != HEED_OK) return st;
    unsigned char *rgb = malloc((size_t)(W * H * 3));
    if (!rgb) return heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory", fn);
    double lo, hi;
    heed__viz_range(weights, 0, h * w, o.lo, o.hi, &lo, &hi);
    for (int64_t y = 0; y < H; y++) {
        /* bilinear, pixel centres: source coordinate (y + 0.5) h / H - 0.5, clamped */
        double sy = fmin(fmax((y + 0.5) * (double)h / (double)H - 0.5, 0), (double)(h - 1));
        int64_t y0 = (int64_t)sy, y1 = y0 + 1 < h ? y0 + 1 : y0;
        double fy = sy - (double)y0;
        for (int64_t x = 0; x < W; x++) {
            double sx = fmin(fmax((x + 0.5) * (double)w / (double)W - 0.5, 0), (double)(w - 1));
            int64_t x0 = (int64_t)sx, x1 = x0 + 1 < w ? x0 + 1 : x0;
            double fx = sx - (double)x0;
            double v = (1 - fy) * ((1 - fx) * heed_get(weights, y0 * w + x0) + fx * heed_get(weights, y0 * w + x1)) +
                       fy * ((1 - fx) * heed_get(weights, y1 * w + x0) + fx * heed_get(weights, y1 * w + x1));
            unsigned char c[3];
            heed__viz_color(o.cmap, isnan(v) ? v : (v - lo) / (hi - lo), c);
            for (int k = 0; k < 3; k++) {
                double px = heed_get(image, (y * W + x) * 3 + k);
                px = isnan(px) ? 0 : px < 0 ? 0 : px > 1 ? 1 : px;
                rgb[(y * W + x) * 3 + k] = (unsigned char)lround((1 - alpha) * 255 * px + alpha * c[k]);
            }
        }
    }
    st = write_png(ctx, fn, path, rgb, W, H);
    free(rgb);
    return st;
}
