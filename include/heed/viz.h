/* heed: Pictures, progress and curves (viz/). Part of the public API: <heed.h> includes
 * every part; a file may include just the parts it uses. */
#ifndef HEED_API_VIZ_H
#define HEED_API_VIZ_H

#include "core.h"
#include "io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ pictures and progress */

/* ---------------------------------------------------------------- pictures (viz/) */

/* See docs/viz.md. Attention weights as pictures: PNG heatmaps (one map or a grid of
 * heads), a PNG overlay of spatial weights on an image (captioning), and SVG with token
 * labels on both axes. Every writer takes any readable f32/f64 tensor (a graph tensor of the current step or a
 * parameter), returns a heed_status with the message in heed_ctx_error(ctx), and writes
 * atomically: a temporary file next to path, fsync, rename. On any error nothing is
 * written at path (an existing file there is left as it was). */

typedef enum {
    HEED_CMAP_GRAY = 0, /* 0 black .. 1 white */
    HEED_CMAP_VIRIDIS,  /* matplotlib's viridis: dark purple .. yellow */
} heed_colormap;

/* Value ranges: lo < hi maps [lo, hi] onto the colormap (values outside are clamped);
 * otherwise [min(0, min), max] of the picture's finite values. NaN is drawn red. */
typedef struct {
    heed_colormap cmap;
    int cell;      /* pixels per weight (square); 0 = auto: 512 / max(Nq, Nk) within [1, 16] */
    int grid_cols; /* heads per grid row; 0 = ceil(sqrt(H)) */
    int gap;       /* white pixels between heads; 0 = 4 (for more than one head) */
    bool per_row;  /* map each query row onto [0, its max] (long sequences) */
    double lo, hi; /* value range (see above) */
    int64_t batch; /* which batch row of a 4-D [B,H,Nq,Nk] tensor */
} heed_heatmap_opts;

/* weights [Nq,Nk] (one map), [H,Nq,Nk] (a grid of heads, row-major, H tiles) or
 * [B,H,Nq,Nk] (opts->batch picks the row) to an 8-bit RGB PNG: query i is pixel row
 * i*cell, key j pixel column j*cell. opts may be NULL (gray, auto). Images over 16384 px
 * a side are refused. */
heed_status heed_heatmap_png(heed_ctx *ctx, const char *path, const heed_tensor *weights,
                             const heed_heatmap_opts *opts);

typedef struct {
    heed_colormap cmap;     /* 0 = gray; viridis reads better on photos */
    double alpha;           /* weight of the heatmap in the blend, in (0, 1]; 0 = 0.6 */
    int64_t grid_h, grid_w; /* shape of 1-D weights [h*w] (ignored for 2-D weights) */
    double lo, hi;          /* value range, as for heatmaps */
} heed_overlay_opts;

/* Spatial attention over an image: image [H,W,3] with values in [0,1] (clamped), weights
 * [h,w] (or [h*w] with opts->grid_h, grid_w) upsampled bilinearly to H x W (pixel centres,
 * as align_corners=False), coloured and blended:
 *   out = (1 - alpha) * image + alpha * colour(weight).
 * Writes an H x W RGB PNG. */
heed_status heed_overlay_png(heed_ctx *ctx, const char *path, const heed_tensor *image, const heed_tensor *weights,
                             const heed_overlay_opts *opts);

typedef struct {
    heed_colormap cmap;
    int cell;            /* pixels per weight; 0 = 24 */
    int font_size;       /* 0 = 12 */
    const char *title;   /* optional, drawn above the map */
    bool values;         /* also print each weight in its cell (two decimals) */
    double lo, hi;       /* value range, as for heatmaps */
    int64_t batch, head; /* pick the map of a [H,Nq,Nk] or [B,H,Nq,Nk] tensor */
} heed_svg_opts;

/* weights [Nq,Nk] (or 3-D/4-D with opts->head/batch) as an SVG grid with query labels
 * down the left side and key labels (rotated) along the top. Labels are UTF-8 strings,
 * XML-escaped (& < > " '); invalid UTF-8 and control characters become '?'. Either label
 * array (or any entry) may be NULL: the index is printed instead. Each cell carries a
 * <title> tooltip "query / key: weight". */
heed_status heed_attention_svg(heed_ctx *ctx, const char *path, const heed_tensor *weights,
                               const char *const *query_labels, const char *const *key_labels,
                               const heed_svg_opts *opts);

/* ---------------------------------------------------------------- reading images (viz/png_read.c) */

/* Reads the PNG at path as gray values in [0, 1]: *pixels gets a malloc'd row-major
 * array of *height x *width floats (free() it). Every PNG colour type (gray, gray+alpha,
 * RGB, RGBA, palette, with or without tRNS), bit depth (1 to 16) and interlacing is read;
 * colour becomes luma 0.299 R + 0.587 G + 0.114 B (as PIL's convert('L')), alpha is
 * composited over black (value * alpha), and no gamma correction is applied (stored
 * values / (2^depth - 1)). Images of more than max_pixels pixels are refused before
 * anything is decoded (0: 2^26). Errors name the file and the rule, in heed_ctx_error:
 * HEED_ERR_IO (cannot open), HEED_ERR_FORMAT (not a PNG, truncated, over the cap, a
 * libpng error such as a bad CRC or corrupt data), HEED_ERR_ARG (NULL, negative cap),
 * HEED_ERR_NOMEM. On error *pixels is NULL and the sizes 0. */
heed_status heed_png_read_gray(heed_ctx *ctx, const char *path, int64_t max_pixels, float **pixels, int64_t *height,
                               int64_t *width);

/* ---------------------------------------------------------------- training progress and curves (viz/progress.c, viz/plot.c) */

/* A progress line on stderr (or opts.out). On a terminal it redraws one line in place
 * ("\r"), at most every `interval` seconds:
 *   train [=========>          ] 450/1000  38.2 it/s  ETA 0:14  loss 2.3141
 * Elsewhere (a pipe, a log file) it prints plain lines, one every `every` steps (or every
 * `interval` seconds when every is 0):
 *   train step 450/1000 rate 38.2 it/s eta 0:14 loss 2.3141
 * and a last line from heed_progress_free ("train done 1000/1000 rate 38.1 it/s
 * elapsed 0:26 loss 2.2790"). Rate and ETA count from the first update.
 * The loss shown is an exponential moving average (weight 0.9 on the past) with the bias
 * correction Adam uses, so early values are not pulled towards 0. */
typedef struct heed_progress heed_progress;
typedef enum { HEED_PROGRESS_AUTO = 0, HEED_PROGRESS_TERMINAL, HEED_PROGRESS_LINES } heed_progress_mode;
typedef struct {
    FILE *out;               /* NULL: stderr */
    int64_t total;           /* steps expected; 0 = unknown (no bar, no ETA) */
    const char *label;       /* prefix; NULL = none */
    double interval;         /* seconds between redraws or lines; 0 = 0.1 on a terminal, 10 else */
    int64_t every;           /* plain lines every this many steps; 0 = by interval */
    heed_progress_mode mode; /* AUTO (0) asks isatty */
} heed_progress_opts;

/* NULL opts: defaults. NULL on error, message in heed_ctx_error(ctx): HEED_ERR_ARG for a
 * negative total or every, an interval that is negative or not finite, an unknown mode;
 * HEED_ERR_NOMEM. The other calls take a NULL p (what a failed new gives) as a no-op. */
heed_progress *heed_progress_new(heed_ctx *ctx, const heed_progress_opts *opts);
/* Step `step` (1-based count of steps done) finished with this loss (NaN: no loss). */
void heed_progress_update(heed_progress *p, int64_t step, double loss);
/* A message on its own line that does not garble the bar. */
void heed_progress_note(heed_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the final state (one last line) and frees p. */
void heed_progress_free(heed_progress *p);
double heed_progress_running_loss(const heed_progress *p); /* the loss shown; NaN before any finite loss */

/* Line plots to SVG, written atomically (temporary file, then rename). */
typedef struct {
    const char *name; /* legend entry (NULL: none) */
    const double *x;  /* NULL: 0, 1, 2, ... */
    const double *y;
    int64_t n; /* points; NaN/Inf points break the line */
} heed_series;
typedef struct {
    const char *title, *xlabel, *ylabel; /* NULL: none */
    int width, height;                   /* pixels; 0 = 720 x 440 */
    bool log_y;                          /* logarithmic y axis (non-positive y skipped) */
} heed_plot_opts;
heed_status heed_plot_svg(heed_ctx *ctx, const char *path, const heed_series *series, int n_series,
                          const heed_plot_opts *opts);
/* Columns y_columns[0..n) of a metrics log against column x_column (-1: row number),
 * named by their column names. Rows where a column is NaN (not measured at that step)
 * are left out of its curve, so a validation loss logged every 100 steps joins up.
 * Errors in heed_ctx_error of the log's ctx (HEED_ERR_ARG alone for a NULL m, io.h). */
heed_status heed_metrics_plot_svg(heed_metrics *m, const char *path, int x_column, const int *y_columns, int n,
                                  const heed_plot_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
