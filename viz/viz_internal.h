/* What the picture writers share: tensor checks for tensors outside any op, colormaps
 * (files are written through heed_atomic_open/close, io/atomic.c). */
#ifndef HEED_VIZ_INTERNAL_H
#define HEED_VIZ_INTERNAL_H

#include "../graph/internal.h"
#include "heed/viz.h"

#include <stdio.h>

/* Pictures refuse images larger than this on a side (and 2^28 pixels in total). */
#define HEED_VIZ_MAX_SIDE 16384

/* HEED_OK when t is a readable tensor (not NULL, data present, not from a reset graph
 * step) with ndim in [min_dims, max_dims]; else the error, message in ctx. */
heed_status heed__viz_tensor(heed_ctx *ctx, const char *fn, const heed_tensor *t, const char *name, int min_dims,
                             int max_dims);

/* v in [0, 1] (clamped; NaN gives the NaN colour, red) to 8-bit RGB. */
void heed__viz_color(heed_colormap cmap, double v, unsigned char rgb[3]);
bool heed__viz_cmap_ok(heed_colormap cmap);

/* The value range to map onto the colormap: [lo, hi] if lo < hi, else
 * [min(0, finite min), finite max] of elements off .. off+n-1 of t ([lo, lo+1] if empty). */
void heed__viz_range(const heed_tensor *t, int64_t off, int64_t n, double lo, double hi, double *out_lo,
                     double *out_hi);

/* Writes text as XML character data, also safe inside attribute values: markup
 * characters escaped, invalid UTF-8 and control characters as '?' (viz/xml.c). */
void heed__xml_text(FILE *f, const char *text);

#endif
