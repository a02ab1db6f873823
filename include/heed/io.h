/* heed: Files written whole or not at all (io/atomic.c). Part of the public API:
 * <heed.h> includes every part; a file may include just the parts it uses. */
#ifndef HEED_API_IO_H
#define HEED_API_IO_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- atomic files (io/atomic.c) */

/* Every file heed writes (checkpoints, weights, pictures, plots) goes through this, and a
 * program can use it for its own: the bytes go to "<path>.tmp-XXXXXX" in path's
 * directory; heed_atomic_close flushes and fsyncs it, renames it over path and fsyncs
 * the directory, so a crash or a full disk leaves either the old file or the new one,
 * never a part. A path that exists but is not a regular file (a device such as
 * /dev/full, a FIFO, a directory) is refused: renaming over it would replace it. A
 * replaced file keeps its mode; a new one is 0644. */
typedef struct {
    FILE *f;          /* write here between open and close */
    char *tmp, *path; /* owned; freed by heed_atomic_close */
    const char *who;  /* names the caller in messages */
} heed_atomic_file;

/* Opens the temporary file. who names the caller in messages ("heed_checkpoint_save").
 * On failure af->f is NULL and the reason is in heed_ctx_error(ctx). */
heed_status heed_atomic_open(heed_ctx *ctx, const char *who, const char *path, heed_atomic_file *af);
/* Finishes af: with st == HEED_OK the file is committed (any write, flush, fsync or rename
 * failure becomes HEED_ERR_IO naming the path); otherwise the temporary file is removed
 * and st is returned unchanged. Safe to call on a failed or already closed af. */
heed_status heed_atomic_close(heed_ctx *ctx, heed_atomic_file *af, heed_status st);

/* ---------------------------------------------------------------- metrics log (io/metrics.c) */

/* Metrics to CSV: a header row of column names, then one row per call, each flushed so a
 * crash keeps what was logged. Values print with 17 significant digits (exact round trip),
 * NaN as "nan". The rows are kept in memory too, so the log can be plotted. */
typedef struct heed_metrics heed_metrics;
/* path NULL: keep the rows in memory only. NULL on error (message in heed_ctx_error).
 * The log keeps ctx: its calls leave their messages there. A NULL log has no ctx to take
 * a message, so a call on it gives HEED_ERR_ARG (or 0 rows) and nothing else. */
heed_metrics *heed_metrics_new(heed_ctx *ctx, const char *path, int n_columns, const char *const *names);
heed_status heed_metrics_add(heed_metrics *m, const double *values); /* n_columns values */
int64_t heed_metrics_rows(const heed_metrics *m);
/* *values = the column's rows values (NULL before the first row), valid until the next
 * add or the free. HEED_ERR_ARG for a column outside [0, n_columns) or a NULL values. */
heed_status heed_metrics_column(const heed_metrics *m, int column, const double **values);
heed_status heed_metrics_free(heed_metrics *m); /* flushes, closes, frees */

#ifdef __cplusplus
}
#endif
#endif
