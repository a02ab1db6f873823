/* The metrics log's layout, shared with viz/plot.c (which draws it). Not installed. */
#ifndef HEED_IO_METRICS_H
#define HEED_IO_METRICS_H

#include "../graph/internal.h"
#include "heed/io.h"

struct heed_metrics {
    heed_ctx *ctx;
    FILE *f;
    char *path;
    int n_columns;
    char **names;
    double **cols;
    int64_t rows, cap;
};

#endif
