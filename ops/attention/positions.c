/* Positions: the sinusoidal table of "Attention is all you need" (a constant), learned
 * absolute positions (rows of a parameter table), and a learned relative-position bias
 * (a [buckets, H] table spread over [1, H, Nq, Nk], with clipped or T5 log buckets) to
 * pass as heed_attention_opts.bias. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "layers.h"
#include "heed/attention.h"

#include <math.h>

/* ---------------------------------------------------------------- sinusoidal */

#define T float
#define FN(name) name##_f32
#include "positions.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "positions.c"
#undef T
#undef FN

/* PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d)) for p in
 * [start, start + n). An odd d ends with a sine column. No gradient: it is a constant. */
heed_tensor *heed_sinusoidal_positions(heed_graph *g, heed_dtype dtype, int64_t start, int64_t n, int64_t d) {
    const char *op = "heed_sinusoidal_positions";
    if (!heed_graph_ok(g)) return NULL;
    if (start < 0 || n < 0 || d < 1)
        return heed_graph_fail(g, HEED_ERR_ARG,
                               "%s: start = %lld, n = %lld, d = %lld (need start >= 0, n >= 0, d >= 1)", op,
                               (long long)start, (long long)n, (long long)d),
               NULL;
    heed_tensor *t = heed__new(g, op, dtype, 2, (int64_t[]){n, d});
    if (!t) return NULL;
    if (dtype == HEED_F32) sinusoidal_positions_kernel_f32(t, n, d, g, start);
    else sinusoidal_positions_kernel_f64(t, n, d, g, start);
    return t;
}

/* ---------------------------------------------------------------- learned absolute */

/* y = table[start : start + n]:  dtable[start + p] += dy[p]. */
static void learned_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *table = nd->in[0], *y = nd->out[0];
    void *gt_ = heed_grad_buffer(g, table);
    if (!gt_) return;
    int64_t start = nd->iarg[0], d = table->shape[1];
    if (table->dtype == HEED_F32) learned_backward_kernel_f32(y, gt_, start, d);
    else learned_backward_kernel_f64(y, gt_, start, d);
}

static const heed_op op_learned = {"heed_learned_positions", learned_backward};

heed_tensor *heed_learned_positions(heed_graph *g, heed_tensor *table, int64_t start, int64_t n) {
    const char *op = "heed_learned_positions";
    if (!heed_check_tensor(g, op, table, "table")) return NULL;
    if (table->ndim != 2)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: table%s must be [maxlen,d]", op, HEED_S(table)), NULL;
    int64_t maxlen = table->shape[0], d = table->shape[1];
    if (start < 0 || n < 0 || start > maxlen - n)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: positions [%lld, %lld) do not fit table%s (maxlen %lld)", op,
                               (long long)start, (long long)(start + n), HEED_S(table), (long long)maxlen),
               NULL;
    heed_tensor *y = heed__new(g, op, table->dtype, 2, (int64_t[]){n, d});
    if (!y) return NULL;
    memcpy(y->data, (const char *)table->data + (size_t)(start * d) * heed_dtype_size(table->dtype),
           (size_t)(n * d) * heed_dtype_size(table->dtype));
    heed_node *nd = heed_record(g, &op_learned, 1, &table, 1, &y);
    if (nd) nd->iarg[0] = start;
    return heed_graph_ok(g) ? y : NULL;
}

/* ---------------------------------------------------------------- relative bias */

/* T5's bucket of a relative position rel = key - query (HF transformers'
 * _relative_position_bucket): half the buckets (all of them if one-directional) hold
 * exact distances below max_exact = buckets/2, the rest log-spaced distances up to
 * max_distance; the log is taken in f32 as in that reference. */
static int64_t t5_bucket(int64_t rel, bool bidirectional, int64_t num_buckets, int64_t max_distance) {
    int64_t ret = 0, n = -rel;
    if (bidirectional) {
        num_buckets /= 2;
        if (n < 0) ret += num_buckets;
        n = n < 0 ? -n : n;
    } else {
        n = n > 0 ? n : 0;
    }
    int64_t max_exact = num_buckets / 2;
    if (n < max_exact) return ret + n;
    float ratio = logf((float)n / (float)max_exact) / (float)log((double)max_distance / (double)max_exact);
    int64_t large = max_exact + (int64_t)(ratio * (float)(num_buckets - max_exact));
    return ret + (large < num_buckets - 1 ? large : num_buckets - 1);
}

/* Whether options o fit a table of R rows: HEED_OK, or the code with the rule in why. */
static heed_status relpos_fit(const heed_relpos_opts *o, int64_t R, char *why, size_t cap) {
    if (o->kind == HEED_RELPOS_CLIPPED) {
        if (R >= 1 && R % 2 == 1 && (o->max_distance <= 0 || R == 2 * o->max_distance + 1)) return HEED_OK;
        snprintf(why, cap, "clipped distances need 2*max_distance+1 rows (odd; %lld rows, max_distance = %lld)",
                 (long long)R, (long long)o->max_distance);
        return HEED_ERR_SHAPE;
    }
    if (o->kind == HEED_RELPOS_T5) {
        int64_t md = o->max_distance > 0 ? o->max_distance : 128, max_exact = (o->bidirectional ? R / 2 : R) / 2;
        if (max_exact >= 1 && md > max_exact) return HEED_OK;
        snprintf(why, cap,
                 "T5 buckets need max_exact = %s/2 >= 1 and max_distance > max_exact (%lld rows, max_distance %lld)",
                 o->bidirectional ? "(buckets/2)" : "buckets", (long long)R, (long long)md);
        return HEED_ERR_ARG;
    }
    snprintf(why, cap, "unknown kind %d (clipped or T5)", (int)o->kind);
    return HEED_ERR_ARG;
}

/* The bucket of rel for options that fit a table of R rows (relpos_fit). */
static int64_t bucket_of(const heed_relpos_opts *o, int64_t R, int64_t rel) {
    if (o->kind == HEED_RELPOS_T5)
        return t5_bucket(rel, o->bidirectional, R, o->max_distance > 0 ? o->max_distance : 128);
    int64_t md = (R - 1) / 2;
    return (rel < -md ? -md : rel > md ? md : rel) + md;
}

heed_status heed_relpos_bucket(heed_ctx *ctx, const heed_relpos_opts *opts, int64_t num_buckets, int64_t rel,
                               int64_t *bucket) {
    if (!ctx) return HEED_ERR_ARG;
    if (!bucket) return heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_relpos_bucket: bucket is NULL");
    heed_relpos_opts o = opts ? *opts : (heed_relpos_opts){0};
    char why[160];
    heed_status st = relpos_fit(&o, num_buckets, why, sizeof why);
    if (st != HEED_OK) return heed_ctx_fail(ctx, st, "heed_relpos_bucket: %s", why);
    *bucket = bucket_of(&o, num_buckets, rel);
    return HEED_OK;
}

/* bias[0,h,i,j] = table[bucket(j - (query_start + i)), h]:
 * dtable[r,h] += sum of dbias[0,h,i,j] over the (i,j) in bucket r. */
static void relpos_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *table = nd->in[0], *y = nd->out[0];
    void *gt_ = heed_grad_buffer(g, table);
    if (!gt_) return;
    const int32_t *bucket = nd->saved;
    int64_t H = table->shape[1], nq = y->shape[2], nk = y->shape[3];
    if (table->dtype == HEED_F32) relpos_backward_kernel_f32(y, gt_, H, nq, nk, g, bucket);
    else relpos_backward_kernel_f64(y, gt_, H, nq, nk, g, bucket);
}

static const heed_op op_relpos = {"heed_relative_position_bias", relpos_backward};

heed_tensor *heed_relative_position_bias(heed_graph *g, heed_tensor *table, int64_t nq, int64_t nk,
                                         const heed_relpos_opts *opts) {
    const char *op = "heed_relative_position_bias";
    if (!heed_check_tensor(g, op, table, "table")) return NULL;
    heed_relpos_opts o = opts ? *opts : (heed_relpos_opts){0};
    if (table->ndim != 2 || table->shape[0] < 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: table%s must be [buckets,H] with buckets >= 1", op,
                               HEED_S(table)),
               NULL;
    int64_t R = table->shape[0], H = table->shape[1];
    if (nq < 0 || nk < 0 || o.query_start < 0)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: nq = %lld, nk = %lld, query_start = %lld (must be >= 0)", op,
                               (long long)nq, (long long)nk, (long long)o.query_start),
               NULL;
    char why[160];
    heed_status fit = relpos_fit(&o, R, why, sizeof why);
    if (fit != HEED_OK) return heed_graph_fail(g, fit, "%s: table%s: %s", op, HEED_S(table), why), NULL;
    if (nq * nk > INT64_C(1) << 31) return heed_graph_fail(g, HEED_ERR_ARG, "%s: nq * nk too large", op), NULL;
    int32_t *bucket = heed_graph_alloc(g, (size_t)(nq * nk > 0 ? nq * nk : 1) * sizeof *bucket);
    heed_tensor *y = bucket ? heed__new(g, op, table->dtype, 4, (int64_t[]){1, H, nq, nk}) : NULL;
    if (!y) return NULL;
    for (int64_t i = 0; i < nq; i++)
        for (int64_t j = 0; j < nk; j++) bucket[i * nk + j] = (int32_t)bucket_of(&o, R, j - (o.query_start + i));
    if (table->dtype == HEED_F32) relative_position_bias_kernel_f32(table, y, H, nq, nk, g, bucket);
    else relative_position_bias_kernel_f64(table, y, H, nq, nk, g, bucket);
    heed_node *nd = heed_record(g, &op_relpos, 1, &table, 1, &y);
    if (nd) nd->saved = bucket;
    return heed_graph_ok(g) ? y : NULL;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

static void FN(sinusoidal_positions_kernel)(heed_tensor *t, int64_t n, int64_t d, heed_graph *g, int64_t start) {
    T *pe = t->data;
#pragma omp parallel for if (n * d > 65536) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t p = 0; p < n; p++)
        for (int64_t c = 0; c < d; c++) {
            int64_t i2 = c - (c & 1); /* 2i */
            double angle = (double)(start + p) * exp(-log(10000.0) * (double)i2 / (double)d);
            pe[p * d + c] = (T)((c & 1) ? cos(angle) : sin(angle));
        }
}

static void FN(learned_backward_kernel)(heed_tensor *y, void *gt_, int64_t start, int64_t d) {
    const T *dy = y->grad;
    T *gt = (T *)gt_ + start * d;
    for (int64_t i = 0; i < y->numel; i++) gt[i] += dy[i];
}

static void FN(relpos_backward_kernel)(heed_tensor *y, void *gt_, int64_t H, int64_t nq, int64_t nk, heed_graph *g,
                                       const int32_t *bucket) {
    const T *dy = y->grad;
    T *gt = gt_;
#pragma omp parallel for if (H * nq * nk > 65536) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t h = 0; h < H; h++) /* each thread owns column h of the table */
        for (int64_t ij = 0; ij < nq * nk; ij++) gt[bucket[ij] * H + h] += dy[h * nq * nk + ij];
}

static void FN(relative_position_bias_kernel)(heed_tensor *table, heed_tensor *y, int64_t H, int64_t nq, int64_t nk,
                                              heed_graph *g, int32_t *bucket) {
    const T *tb = table->data;
    T *Y = y->data;
#pragma omp parallel for if (H * nq * nk > 65536) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t h = 0; h < H; h++)
        for (int64_t ij = 0; ij < nq * nk; ij++) Y[h * nq * nk + ij] = tb[bucket[ij] * H + h];
}
#endif
