/* A metrics log: CSV rows flushed as they come, kept in memory for plots
 * (include/heed/io.h). */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

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
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: %d columns, names %s (need 1..4096 columns and their names)", fn,
                             n_columns, names ? "given" : "NULL"),
               NULL;
    for (int i = 0; i < n_columns; i++)
        if (!names[i] || !names[i][0])
            return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: column %d has no name", fn, i), NULL;
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
            heed_ctx_fail(ctx, HEED_ERR_IO, "%s: cannot open %s for writing: %s", fn, path, strerror(errno));
            heed_metrics_free(m);
            return NULL;
        }
        for (int i = 0; i < n_columns; i++) {
            if (i) fputc(',', m->f);
            csv_field(m->f, names[i]);
        }
        fputc('\n', m->f);
        if (fflush(m->f) != 0) {
            heed_ctx_fail(ctx, HEED_ERR_IO, "%s: writing %s: %s", fn, path, strerror(errno));
            heed_metrics_free(m);
            return NULL;
        }
        if (!(m->path = strdup(path))) goto nomem;
    }
    return m;
nomem:
    heed_metrics_free(m);
    return heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory", fn), NULL;
}

heed_status heed_metrics_add(heed_metrics *m, const double *values) {
    static const char *fn = "heed_metrics_add";
    if (!m) return HEED_ERR_ARG;
    if (!values) return heed_ctx_fail(m->ctx, HEED_ERR_ARG, "%s: values is NULL", fn);
    if (m->rows == m->cap) {
        int64_t cap = m->cap ? 2 * m->cap : 256;
        for (int c = 0; c < m->n_columns; c++) {
            double *col = realloc(m->cols[c], (size_t)cap * sizeof *col);
            if (!col) return heed_ctx_fail(m->ctx, HEED_ERR_NOMEM, "%s: out of memory", fn);
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
        if (fflush(m->f) != 0)
            return heed_ctx_fail(m->ctx, HEED_ERR_IO, "%s: writing %s: %s", fn, m->path, strerror(errno));
    }
    return HEED_OK;
}

int64_t heed_metrics_rows(const heed_metrics *m) { return m ? m->rows : 0; }

heed_status heed_metrics_column(const heed_metrics *m, int c, const double **values) {
    static const char *fn = "heed_metrics_column";
    if (!m) return HEED_ERR_ARG;
    if (!values) return heed_ctx_fail(m->ctx, HEED_ERR_ARG, "%s: values is NULL", fn);
    if (c < 0 || c >= m->n_columns)
        return heed_ctx_fail(m->ctx, HEED_ERR_ARG, "%s: column %d out of range (log has %d columns)", fn, c,
                             m->n_columns);
    *values = m->cols[c];
    return HEED_OK;
}

heed_status heed_metrics_free(heed_metrics *m) {
    if (!m) return HEED_OK;
    heed_status st = HEED_OK;
    if (m->f && fclose(m->f) != 0)
        st = heed_ctx_fail(m->ctx, HEED_ERR_IO, "heed_metrics_free: closing %s: %s", m->path ? m->path : "the log",
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
