/* Line plots (loss and metric curves) as SVG: axes with round ticks, a grid, one
 * polyline per series, a legend. Long series are reduced to the min and max of each
 * pixel column, which keeps every spike and the file small. The file is written to a
 * temporary name, synced and renamed, so a reader never sees half a plot. */
#include "viz_internal.h"
#include "../io/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <limits.h>

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

/* A round tick spacing (1, 2 or 5 times a power of ten) giving about `target` ticks. */
static double nice_step(double range, int target) {
    double raw = range / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/* An axis: its range (in plotted units: log10 of the value on a log axis) and its ticks,
 * each a position and the value its label shows. */
#define MAX_TICKS 40
typedef struct {
    double lo, hi;
    int n;
    double at[MAX_TICKS], label[MAX_TICKS];
} axis;

/* Linear: round ticks (1, 2, 5 x 10^k apart) and the range widened to them. */
static axis make_axis(double lo, double hi, int target) {
    if (!(lo <= hi)) lo = 0, hi = 1; /* no finite data */
    if (hi - lo <= 1e-12 * fmax(fabs(lo), fabs(hi))) {
        double pad = fabs(lo) > 0 ? 0.5 * fabs(lo) : 0.5;
        lo -= pad;
        hi += pad;
    }
    double step = nice_step(hi - lo, target);
    axis a = {.lo = floor(lo / step) * step, .hi = ceil(hi / step) * step};
    for (double v = a.lo; v <= a.hi + 0.5 * step && a.n < MAX_TICKS; v += step) {
        a.at[a.n] = v;
        a.label[a.n++] = fabs(v) < 1e-9 * step ? 0 : v; /* no "-0" or "1e-17" at the origin */
    }
    return a;
}

/* Logarithmic (lo, hi are log10 of the data range): whole decades, ticks at each power
 * of ten, and at 2 and 5 times it when the axis spans at most three decades. */
static axis make_log_axis(double lo, double hi) {
    if (!(lo <= hi)) lo = 0, hi = 1;
    axis a = {.lo = floor(lo), .hi = ceil(hi)};
    if (a.hi == a.lo) a.hi = a.lo + 1;
    int span = (int)(a.hi - a.lo), every = span > 10 ? (span + 7) / 8 : 1;
    for (int k = 0; k <= span && a.n < MAX_TICKS; k++) {
        double e = a.lo + k;
        if (k % every == 0) a.at[a.n] = e, a.label[a.n++] = pow(10, e);
        for (int m = 2; span <= 3 && k < span && m <= 5 && a.n < MAX_TICKS; m += 3)
            a.at[a.n] = e + log10(m), a.label[a.n++] = m * pow(10, e);
    }
    return a;
}

static double y_of(double v, bool log_y) { return log_y ? (v > 0 ? log10(v) : NAN) : v; }

typedef struct {
    double x0, x1, y0, y1; /* plot area in pixels */
    axis ax, ay;
} frame;

static double px(const frame *fr, double x) {
    return fr->x0 + (x - fr->ax.lo) / (fr->ax.hi - fr->ax.lo) * (fr->x1 - fr->x0);
}
static double py(const frame *fr, double y) {
    return fr->y1 - (y - fr->ay.lo) / (fr->ay.hi - fr->ay.lo) * (fr->y1 - fr->y0);
}

/* Path data, written point by point: repeated points are dropped, and a sub-path of one
 * point gets "h0" so that, with round caps, it shows as a dot. */
typedef struct {
    FILE *f;
    int n;         /* points in the current sub-path */
    double lx, ly; /* the last point written */
} pen;

static void pen_to(pen *p, double x, double y) {
    if (p->n && x == p->lx && y == p->ly) return;
    fprintf(p->f, "%c%.2f %.2f", p->n ? 'L' : 'M', x, y);
    p->n++, p->lx = x, p->ly = y;
}

static void pen_up(pen *p) {
    if (p->n == 1) fputs("h0", p->f);
    p->n = 0;
}

/* Writes the path data of one series. A long series (more than 4 points per pixel
 * column) is reduced to a vertical stroke per column through its first, lowest, highest
 * and last point, which keeps every spike. */
static void series_path(FILE *f, const frame *fr, const heed_series *s, bool log_y) {
    bool reduce = s->n > 4 * (int64_t)(fr->x1 - fr->x0);
    pen p = {.f = f};
    long col = LONG_MIN;
    double cmin = 0, cmax = 0, cfirst = 0, clast = 0;
    int cn = 0; /* points gathered in column col */
    for (int64_t i = 0; i <= s->n; i++) {
        bool end = i == s->n;
        double x = end ? NAN : s->x ? s->x[i] : (double)i, y = end ? NAN : y_of(s->y[i], log_y);
        bool gap = !isfinite(x) || !isfinite(y);
        double X = gap ? 0 : px(fr, x), Y = gap ? 0 : py(fr, y);
        long c = gap ? LONG_MIN : lround(X);
        if (reduce && cn > 0 && (gap || c != col)) { /* the column is complete */
            pen_to(&p, (double)col, cfirst);
            pen_to(&p, (double)col, cmin);
            pen_to(&p, (double)col, cmax);
            pen_to(&p, (double)col, clast);
            cn = 0;
        }
        if (gap) { /* NaN/Inf or the end: lift the pen */
            pen_up(&p);
            continue;
        }
        if (!reduce) {
            pen_to(&p, X, Y);
            continue;
        }
        if (cn == 0) col = c, cfirst = cmin = cmax = Y;
        cmin = fmin(cmin, Y), cmax = fmax(cmax, Y), clast = Y;
        cn++;
    }
}

static void write_svg(FILE *f, const heed_series *series, int n_series, const heed_plot_opts *o) {
    int W = o->width ? o->width : 720, H = o->height ? o->height : 440;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int k = 0; k < n_series; k++)
        for (int64_t i = 0; i < series[k].n; i++) {
            double x = series[k].x ? series[k].x[i] : (double)i, y = y_of(series[k].y[i], o->log_y);
            if (!isfinite(x) || !isfinite(y)) continue;
            xmin = fmin(xmin, x), xmax = fmax(xmax, x), ymin = fmin(ymin, y), ymax = fmax(ymax, y);
        }
    frame fr = {.x0 = 72, .x1 = W - 16, .y0 = o->title ? 36 : 16, .y1 = H - (o->xlabel ? 52 : 32)};
    fr.ax = make_axis(xmin, xmax, 6);
    fr.ay = o->log_y ? make_log_axis(ymin, ymax) : make_axis(ymin, ymax, 5);

    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n",
            W, H, W, H);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    if (o->title) {
        fprintf(f, "<text x=\"%.1f\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">", (fr.x0 + fr.x1) / 2);
        heed__xml_text(f, o->title);
        fprintf(f, "</text>\n");
    }
    /* grid and tick labels */
    fprintf(f, "<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n");
    for (int i = 0; i < fr.ax.n; i++)
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", px(&fr, fr.ax.at[i]), fr.y0,
                px(&fr, fr.ax.at[i]), fr.y1);
    for (int i = 0; i < fr.ay.n; i++)
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", fr.x0, py(&fr, fr.ay.at[i]), fr.x1,
                py(&fr, fr.ay.at[i]));
    fprintf(f, "</g>\n<g fill=\"#333\">\n");
    for (int i = 0; i < fr.ax.n; i++)
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%.4g</text>\n", px(&fr, fr.ax.at[i]), fr.y1 + 16,
                fr.ax.label[i]);
    for (int i = 0; i < fr.ay.n; i++)
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%.4g</text>\n", fr.x0 - 6, py(&fr, fr.ay.at[i]) + 4,
                fr.ay.label[i]);
    fprintf(f, "</g>\n");
    fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" stroke=\"#333\"/>\n", fr.x0,
            fr.y0, fr.x1 - fr.x0, fr.y1 - fr.y0);
    if (o->xlabel) {
        fprintf(f, "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\">", (fr.x0 + fr.x1) / 2, H - 12);
        heed__xml_text(f, o->xlabel);
        fprintf(f, "</text>\n");
    }
    if (o->ylabel) {
        fprintf(f, "<text transform=\"translate(16 %.2f) rotate(-90)\" text-anchor=\"middle\">", (fr.y0 + fr.y1) / 2);
        heed__xml_text(f, o->ylabel);
        fprintf(f, "</text>\n");
    }
    /* the curves */
    for (int k = 0; k < n_series; k++) {
        fprintf(
            f,
            "<path fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" stroke-linejoin=\"round\" stroke-linecap=\"round\" d=\"",
            palette[k % 10]);
        series_path(f, &fr, &series[k], o->log_y);
        fprintf(f, "\"/>\n");
    }
    /* legend, top right inside the plot */
    int named = 0;
    for (int k = 0; k < n_series; k++) named += series[k].name != NULL;
    if (named) {
        double lx = fr.x1 - 150, ly = fr.y0 + 8;
        fprintf(f,
                "<rect x=\"%.2f\" y=\"%.2f\" width=\"142\" height=\"%d\" fill=\"white\" fill-opacity=\"0.85\" "
                "stroke=\"#ccc\"/>\n",
                lx, ly, 8 + 18 * named);
        int row = 0;
        for (int k = 0; k < n_series; k++) {
            if (!series[k].name) continue;
            double yy = ly + 16 + 18 * row++;
            fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                    lx + 8, yy - 4, lx + 30, yy - 4, palette[k % 10]);
            fprintf(f, "<text x=\"%.2f\" y=\"%.2f\">", lx + 36, yy);
            heed__xml_text(f, series[k].name);
            fprintf(f, "</text>\n");
        }
    }
    fprintf(f, "</svg>\n");
}

heed_status heed_plot_svg(heed_ctx *ctx, const char *path, const heed_series *series, int n_series,
                          const heed_plot_opts *opts) {
    static const char *fn = "heed_plot_svg";
    if (!ctx) return HEED_ERR_ARG;
    heed_plot_opts o = opts ? *opts : (heed_plot_opts){0};
    if (!path || !*path) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: path is NULL or empty", fn);
    if (!series || n_series < 1)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: %d series (need at least one)", fn, series ? n_series : 0);
    for (int k = 0; k < n_series; k++)
        if (series[k].n < 0 || (series[k].n > 0 && !series[k].y))
            return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: series %d: n = %lld, y %s", fn, k, (long long)series[k].n,
                                 series[k].y ? "given" : "NULL");
    if ((o.width && (o.width < 200 || o.width > 20000)) || (o.height && (o.height < 150 || o.height > 20000)))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: size %d x %d (width 200..20000, height 150..20000, or 0)", fn,
                             o.width, o.height);

    heed_atomic_file af;
    heed_status st = heed_atomic_open(ctx, fn, path, &af);
    if (st != HEED_OK) return st;
    write_svg(af.f, series, n_series, &o);
    return heed_atomic_close(ctx, &af, HEED_OK);
}

heed_status heed_metrics_plot_svg(heed_metrics *m, const char *path, int x_column, const int *y_columns, int n,
                                  const heed_plot_opts *opts) {
    static const char *fn = "heed_metrics_plot_svg";
    if (!m) return HEED_ERR_ARG;
    if (x_column < -1 || x_column >= m->n_columns || !y_columns || n < 1 || n > 64)
        return heed_ctx_fail(m->ctx, HEED_ERR_ARG, "%s: x column %d, %d y columns (log has %d columns; 1..64 series)",
                             fn, x_column, n, m->n_columns);
    /* A log holds NaN where a column was not measured (a validation loss every 100
     * steps): each series keeps only its finite rows, so its points join up. */
    heed_series s[64];
    double *buf = malloc((size_t)(2 * n) * (size_t)(m->rows ? m->rows : 1) * sizeof *buf);
    if (!buf) return heed_ctx_fail(m->ctx, HEED_ERR_NOMEM, "%s: out of memory", fn);
    for (int i = 0; i < n; i++) {
        if (y_columns[i] < 0 || y_columns[i] >= m->n_columns) {
            free(buf);
            return heed_ctx_fail(m->ctx, HEED_ERR_ARG, "%s: y column %d out of range (log has %d columns)", fn,
                                 y_columns[i], m->n_columns);
        }
        double *xs = buf + (size_t)(2 * i) * (size_t)m->rows, *ys = xs + m->rows;
        const double *yc = m->cols[y_columns[i]];
        int64_t k = 0;
        for (int64_t r = 0; r < m->rows; r++) {
            double x = x_column >= 0 ? m->cols[x_column][r] : (double)r;
            if (isfinite(x) && isfinite(yc[r])) xs[k] = x, ys[k++] = yc[r];
        }
        s[i] = (heed_series){.name = m->names[y_columns[i]], .x = xs, .y = ys, .n = k};
    }
    heed_status st = heed_plot_svg(m->ctx, path, s, n, opts);
    free(buf);
    return st;
}
