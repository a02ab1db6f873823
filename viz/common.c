/* Shared by the picture writers: checks, colormaps, value ranges, atomic file writes. */
#include "viz_internal.h"

#include <math.h>
#include <stdlib.h>

heed_status heed__viz_tensor(heed_ctx *ctx, const char *fn, const heed_tensor *t, const char *name, int min_dims,
                             int max_dims) {
    if (!t) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: %s is NULL", fn, name);
    if (heed__dead(t, NULL)) return heed_ctx_fail(ctx, HEED_ERR_STATE, "%s: %s was " HEED_DEAD_RULE, fn, name);
    if (!t->data || (t->dtype != HEED_F32 && t->dtype != HEED_F64))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: %s has no data or an unknown dtype", fn, name);
    if (t->ndim < min_dims || t->ndim > max_dims)
        return heed_ctx_fail(ctx, HEED_ERR_SHAPE, "%s: %s%s must have %d to %d dims", fn, name, HEED_S(t), min_dims,
                             max_dims);
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] < 1)
            return heed_ctx_fail(ctx, HEED_ERR_SHAPE, "%s: %s%s is empty (nothing to draw)", fn, name, HEED_S(t));
    return HEED_OK;
}

/* viridis (matplotlib), sampled at 9 evenly spaced points; linear in between */
static const unsigned char viridis[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 82, 139},
                                            {44, 113, 142}, {33, 145, 140}, {39, 173, 129},
                                            {92, 200, 99},  {170, 220, 50}, {253, 231, 37}};

bool heed__viz_cmap_ok(heed_colormap cmap) { return cmap == HEED_CMAP_GRAY || cmap == HEED_CMAP_VIRIDIS; }

void heed__viz_color(heed_colormap cmap, double v, unsigned char rgb[3]) {
    if (isnan(v)) {
        rgb[0] = 255, rgb[1] = 0, rgb[2] = 0;
        return;
    }
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    if (cmap == HEED_CMAP_VIRIDIS) {
        double x = v * 8;
        int i = x >= 8 ? 7 : (int)x;
        double f = x - i;
        for (int c = 0; c < 3; c++) rgb[c] = (unsigned char)lround(viridis[i][c] * (1 - f) + viridis[i + 1][c] * f);
        return;
    }
    rgb[0] = rgb[1] = rgb[2] = (unsigned char)lround(255 * v);
}

void heed__viz_range(const heed_tensor *t, int64_t off, int64_t n, double lo, double hi, double *out_lo,
                     double *out_hi) {
    if (lo < hi) {
        *out_lo = lo, *out_hi = hi;
        return;
    }
    double mn = 0, mx = -INFINITY; /* the range always holds 0: attention weights start at 0 */
    for (int64_t i = 0; i < n; i++) {
        double x = heed_get(t, off + i);
        if (isfinite(x)) mn = fmin(mn, x), mx = fmax(mx, x);
    }
    if (!(mx > mn)) mx = mn + 1;
    *out_lo = mn, *out_hi = mx;
}
