/* Seeing training: a progress bar (one redrawn line on a terminal, plain lines
 * elsewhere) and a metrics log written as CSV and kept in memory for plots. */
#include "optim_internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- progress */

#define EMA_DECAY 0.9
#define BAR_WIDTH 24

struct heed_progress {
    FILE *out;
    int64_t total, every;
    char label[64];
    double interval;
    bool tty;
    double start, last_draw;
    int64_t first_step, step; /* first_step: the step count before the first update */
    bool started, drawn;      /* drawn: a tty line is on screen (needs clearing) */
    double ema;               /* sum of decay-weighted losses */
    int64_t n_loss;           /* finite losses seen */
    double last_loss;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

heed_progress *heed_progress_new(const heed_progress_opts *opts) {
    heed_progress_opts o = opts ? *opts : (heed_progress_opts){0};
    heed_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->out = o.out ? o.out : stderr;
    p->total = o.total > 0 ? o.total : 0;
    p->every = o.every > 0 ? o.every : 0;
    snprintf(p->label, sizeof p->label, "%s", o.label ? o.label : "");
    p->tty = o.mode == 1 || (o.mode == 0 && isatty(fileno(p->out)));
    p->interval = o.interval > 0 ? o.interval : p->tty ? 0.1 : 10;
    p->start = p->last_draw = now();
    p->last_loss = NAN;
    return p;
}

double heed_progress_running_loss(const heed_progress *p) {
    if (!p || p->n_loss == 0) return NAN;
    /* debiased EMA: ema / (1 - decay^n), as Adam corrects its moments */
    return p->ema / (1 - pow(EMA_DECAY, (double)p->n_loss));
}

/* h:mm:ss or m:ss */
static char *fmt_time(double s, char *buf, size_t n) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, n, "?");
        return buf;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
    return buf;
}

static void draw(heed_progress *p, bool final) {
    double elapsed = now() - p->start;
    int64_t done = p->step - p->first_step;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    double loss = heed_progress_running_loss(p);
    char line[256], eta[32], el[32];
    int k = 0;
    const char *sep = p->label[0] ? " " : "";
    if (p->tty) {
        k += snprintf(line + k, sizeof line - k, "\r%s%s", p->label, sep);
        if (p->total) {
            int fill = (int)((double)BAR_WIDTH * (double)(p->step < p->total ? p->step : p->total) / (double)p->total);
            char bar[BAR_WIDTH + 3];
            bar[0] = '[';
            for (int i = 0; i < BAR_WIDTH; i++) bar[i + 1] = i < fill ? '=' : i == fill ? '>' : ' ';
            bar[BAR_WIDTH + 1] = ']';
            bar[BAR_WIDTH + 2] = 0;
            k += snprintf(line + k, sizeof line - k, "%s %lld/%lld", bar, (long long)p->step, (long long)p->total);
        } else {
            k += snprintf(line + k, sizeof line - k, "%lld", (long long)p->step);
        }
        k += snprintf(line + k, sizeof line - k, "  %.1f it/s", rate);
        if (final) k += snprintf(line + k, sizeof line - k, "  in %s", fmt_time(elapsed, el, sizeof el));
        else if (p->total && rate > 0)
            k += snprintf(line + k, sizeof line - k, "  ETA %s", fmt_time((double)(p->total - p->step) / rate, eta, sizeof eta));
        if (isfinite(loss)) k += snprintf(line + k, sizeof line - k, "  loss %.4f", loss);
        fprintf(p->out, "%s\033[K%s", line, final ? "\n" : "");
        p->drawn = !final;
    } else {
        k += snprintf(line + k, sizeof line - k, "%s%s%s %lld", p->label, sep, final ? "done" : "step", (long long)p->step);
        if (p->total) k += snprintf(line + k, sizeof line - k, "/%lld", (long long)p->total);
        k += snprintf(line + k, sizeof line - k, " rate %.1f it/s", rate);
        if (final) k += snprintf(line + k, sizeof line - k, " elapsed %s", fmt_time(elapsed, el, sizeof el));
        else if (p->total && rate > 0)
            k += snprintf(line + k, sizeof line - k, " eta %s", fmt_time((double)(p->total - p->step) / rate, eta, sizeof eta));
        if (isfinite(loss)) k += snprintf(line + k, sizeof line - k, " loss %.4f", loss);
        fprintf(p->out, "%s\n", line);
    }
    fflush(p->out);
    p->last_draw = now();
}

void heed_progress_update(heed_progress *p, int64_t step, double loss) {
    if (!p) return;
    if (!p->started) {
        p->started = true;
        p->first_step = step - 1; /* one step has run since the bar was made */
    }
    p->step = step;
    p->last_loss = loss;
    if (isfinite(loss)) {
        p->ema = EMA_DECAY * p->ema + (1 - EMA_DECAY) * loss;
        p->n_loss++;
    }
    bool due;
    if (!p->tty && p->every) due = step % p->every == 0;
    else due = now() - p->last_draw >= p->interval || (p->tty && p->total && step == p->total);
    if (due) draw(p, false);
}

void heed_progress_note(heed_progress *p, const char *fmt, ...) {
    if (!p || !fmt) return;
    if (p->tty && p->drawn) fputs("\r\033[K", p->out);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    if (p->tty && p->drawn) draw(p, false);
    fflush(p->out);
}

void heed_progress_finish(heed_progress *p) {
    if (!p) return;
    draw(p, true);
    free(p);
}

/* ---------------------------------------------------------------- metrics log */

struct heed_metrics {
    heed_ctx *ctx;
    FILE *f;
    char *path;
    int n_columns;
    char **names;
    double **cols;
    int64_t rows, cap;
};

/* A CSV field: quoted (with doubled quotes) when it holds a comma, quote or newline. */
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

heed_metrics *heed_metrics_new(heed_ctx *ctx, const char *path, int n_columns, const char *const *names) {
    static const char *fn = "heed_metrics_new";
    if (!ctx) return NULL;
    if (n_columns < 1 || n_columns > 4096 || !names)
        return heed__ctx_fail(ctx, HEED_ERR_ARG, "%s: %d columns, names %s (need 1..4096 columns and their names)", fn,
                              n_columns, names ? "given" : "NULL"),
               NULL;
    for (int i = 0; i < n_columns; i++)
        if (!names[i] || !names[i][0])
            return heed__ctx_fail(ctx, HEED_ERR_ARG, "%s: column %d has no name", fn, i), NULL;
    heed_metrics *m = calloc(1, sizeof *m);
    if (m) m->n_columns = n_columns;
    if (!m || !(m->cols = calloc((size_t)n_columns, sizeof *m->cols)) ||
        !(m->names = calloc((size_t)n_columns, sizeof *m->names)))
        goto nomem;
    for (int i = 0; i < n_columns; i++)
        if (!(m->names[i] = strdup(names[i]))) goto nomem;
    m->ctx = ctx;
    if (path) {
        m->f = fopen(path, "w");
        if (!m->f) {
            heed__ctx_fail(ctx, HEED_ERR_IO, "%s: cannot open %s for writing: %s", fn, path, strerror(errno));
            heed_metrics_close(m);
            return NULL;
        }
        for (int i = 0; i < n_columns; i++) {
            if (i) fputc(',', m->f);
            csv_field(m->f, names[i]);
        }
        fputc('\n', m->f);
        if (fflush(m->f) != 0) {
            heed__ctx_fail(ctx, HEED_ERR_IO, "%s: writing %s: %s", fn, path, strerror(errno));
            heed_metrics_close(m);
            return NULL;
        }
        if (!(m->path = strdup(path))) goto nomem;
    }
    return m;
nomem:
    heed_metrics_close(m);
    return heed__ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory", fn), NULL;
}

heed_status heed_metrics_add(heed_metrics *m, const double *values) {
    static const char *fn = "heed_metrics_add";
    if (!m) return HEED_ERR_ARG;
    if (!values) return heed__ctx_fail(m->ctx, HEED_ERR_ARG, "%s: values is NULL", fn);
    if (m->rows == m->cap) {
        int64_t cap = m->cap ? 2 * m->cap : 256;
        for (int c = 0; c < m->n_columns; c++) {
            double *col = realloc(m->cols[c], (size_t)cap * sizeof *col);
            if (!col) return heed__ctx_fail(m->ctx, HEED_ERR_NOMEM, "%s: out of memory", fn);
            m->cols[c] = col;
        }
        m->cap = cap;
    }
    for (int c = 0; c < m->n_columns; c++) m->cols[c][m->rows] = values[c];
    m->rows++;
    if (m->f) {
        for (int c = 0; c < m->n_columns; c++) {
            if (c) fputc(',', m->f);
            double v = values[c];
            if (isnan(v)) fputs("nan", m->f);
            else if (isinf(v)) fputs(v > 0 ? "inf" : "-inf", m->f);
            else fprintf(m->f, "%.17g", v);
        }
        fputc('\n', m->f);
        if (fflush(m->f) != 0) return heed__ctx_fail(m->ctx, HEED_ERR_IO, "%s: writing %s: %s", fn, m->path, strerror(errno));
    }
    return HEED_OK;
}

int64_t heed_metrics_rows(const heed_metrics *m) { return m ? m->rows : 0; }

const double *heed_metrics_column(const heed_metrics *m, int c) {
    return m && c >= 0 && c < m->n_columns ? m->cols[c] : NULL;
}

heed_status heed_metrics_close(heed_metrics *m) {
    if (!m) return HEED_OK;
    heed_status st = HEED_OK;
    if (m->f && fclose(m->f) != 0)
        st = heed__ctx_fail(m->ctx, HEED_ERR_IO, "heed_metrics_close: closing %s: %s", m->path ? m->path : "the log",
                            strerror(errno));
    for (int c = 0; c < m->n_columns; c++) {
        if (m->cols) free(m->cols[c]);
        if (m->names) free(m->names[c]);
    }
    free(m->cols);
    free(m->names);
    free(m->path);
    free(m);
    return st;
}

heed_status heed_metrics_plot_svg(heed_metrics *m, const char *path, int x_column, const int *y_columns, int n,
                                  const heed_plot_opts *opts) {
    static const char *fn = "heed_metrics_plot_svg";
    if (!m) return HEED_ERR_ARG;
    if (x_column < -1 || x_column >= m->n_columns || !y_columns || n < 1 || n > 64)
        return heed__ctx_fail(m->ctx, HEED_ERR_ARG, "%s: x column %d, %d y columns (log has %d columns; 1..64 series)", fn,
                              x_column, n, m->n_columns);
    /* A log holds NaN where a column was not measured (a validation loss every 100
     * steps): each series keeps only its finite rows, so its points join up. */
    heed_series s[64];
    double *buf = malloc((size_t)(2 * n) * (size_t)(m->rows ? m->rows : 1) * sizeof *buf);
    if (!buf) return heed__ctx_fail(m->ctx, HEED_ERR_NOMEM, "%s: out of memory", fn);
    for (int i = 0; i < n; i++) {
        if (y_columns[i] < 0 || y_columns[i] >= m->n_columns) {
            free(buf);
            return heed__ctx_fail(m->ctx, HEED_ERR_ARG, "%s: y column %d out of range (log has %d columns)", fn, y_columns[i],
                                  m->n_columns);
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
