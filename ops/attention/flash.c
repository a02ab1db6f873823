/* Flash attention: the op, and its tiled forward and recomputing backward written once for
 * both dtypes (after #else; FN(flash_kernels) is the matching tile-kernel table, from
 * flash_kernels.c). f64 runs the portable kernels and is the reference the gradient checks
 * exercise; f32 runs the same loops on AVX2 kernels. Saves only each query row's softmax
 * statistics, its max m and log2 of its sum (apart, for f32 precision: see below); the
 * backward recomputes the score tiles. Memory beyond inputs, output and gradients:
 * O(B H Nq) for m, log2 l and D plus per-thread tiles (and a per-thread [Nq, d] dQ partial
 * when threads share a head), and with a sparse pattern its tile map (pattern.c: two int32
 * per tile visited, per head with random blocks).
 *
 * Notation (per batch b, head h): s_ij = scale q_i.k_j + bias_ij, masked entries -inf.
 * Scores are kept in base 2, t = log2(e) s, so the exponentials are exp2 and the scale
 * and log2(e) fold into one multiplier c = scale log2(e).
 *
 * Forward, per query block (FlashAttention-2): for each key block, S = Q K^T, running row
 * max m and sum l (online softmax), O <- O exp2(m_old - m_new) + exp2(t - m_new) V;
 * finally O /= l, and m and log2(l) are kept (O(N) floats; the N x N matrix never exists).
 *
 * Backward, key blocks outer (each thread owns its dK, dV), query blocks inner, with
 * D_i = dO_i . O_i computed first:
 *   P = exp2((t - m) - log2(l)),  A = P z (dropout multipliers z, 1 without dropout)
 *   dV_j += A^T dO,   dA = dO V^T,   dS = P (dA z - D)
 *   dQ += scale dS K, dK += scale dS^T Q,  dbias += dS (summed over broadcast dims).
 * D = rowsum(dO * O) equals rowsum(P * dP) because O = A V: sum_j P_ij z_ij dA_ij =
 * dO_i . sum_j A_ij v_j. Threading and dQ: see FN(backward).
 *
 * Why m and log2(l) apart, not L = m + log2(l): t - m is exact (or tiny) and log2(l) is in
 * [0, log2 N], so in f32 P has the error of a few roundings of small numbers. L rounded to
 * f32 is off by up to |L| 2^-24 (2^-11 at scores of 1e4), and exp2(t - L) puts that into
 * every weight of the row (3e-4 relatively), although softmax does not change when a
 * constant is added to the scores. Both are f32 numbers, so the saved statistics cost
 * 2 B H Nq floats.
 *
 * Masks: row i sees keys [lo_i, hi_i) (attn_row_keys, clipped to a query-independent
 * bias's finite range), so whole tiles outside are skipped, and a tile that rows see
 * differently (causal diagonal, window band) is computed in row groups limited to their
 * columns (FN(group)). Any -inf left inside a row's range is an ordinary score.
 *
 * A sparse pattern (pattern.c) lists the tiles to visit (P->map, exact: each holds a
 * visible pair); inside a tile each row's range becomes the span of the keys it sees
 * (attn_pattern_tile), and the keys of the span it does not see get the score whose
 * scaled value c s is -inf (FN(mask_holes)), weight 0 in both passes.
 */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "internal.h"

#include <omp.h>
#include <tgmath.h>

/* (query tile, key tile) pairs entered, forward and backward (flash_take_tile_visits). */
static int64_t tile_visits;

int64_t flash_take_tile_visits(void) {
    int64_t n;
#pragma omp atomic capture
    {
        n = tile_visits;
        tile_visits = 0;
    }
    return n;
}

/* Whether backward gives whole heads to threads (see FN(backward)). */
static bool flash_per_head(int64_t BH, int nthreads) {
    return nthreads == 1 || BH >= 2 * nthreads || BH % nthreads == 0;
}

#define T float
#define FN(name) name##_f32
#include "flash.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "flash.c"
#undef T
#undef FN

/* Default tiles: 128 x 128 f32 tiles keep S, K^T and the output block in L2 and give the
 * micro-kernels long runs (see docs/attention.md for the measurements). */
enum { FLASH_BQ_F32 = 128, FLASH_BK_F32 = 128, FLASH_BQ_F64 = 64, FLASH_BK_F64 = 64 };

void attn_flash_blocks(attn_plan *P, heed_dtype dtype) {
    bool f32 = dtype == HEED_F32;
    if (P->block_q == 0) P->block_q = f32 ? FLASH_BQ_F32 : FLASH_BQ_F64;
    if (P->block_k == 0) P->block_k = f32 ? FLASH_BK_F32 : FLASH_BK_F64;
}

typedef struct {
    attn_plan plan;
    void *row_max, *row_log2sum; /* [B*H*Nq] each, base 2 */
} flash_saved;

static void flash_backward(heed_graph *g, heed_node *n) {
    const flash_saved *sv = n->saved;
    const attn_plan *P = &sv->plan;
    heed_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *bias = n->n_in > 3 ? n->in[3] : NULL, *o = n->out[0];
    void *gq = heed_grad_buffer(g, q), *gk = heed_grad_buffer(g, k), *gv = heed_grad_buffer(g, v),
         *gb = bias ? heed_grad_buffer(g, bias) : NULL;
    if (!gq && !gk && !gv && !gb) return;
    size_t es = heed_dtype_size(q->dtype);
    int64_t BH = P->B * P->H;
    int nth = attn_parallel(P) ? heed_ctx_threads(g->ctx) : 1;
    void *D = heed_graph_alloc(g, (size_t)(BH * P->Nq) * es + 1);
    size_t sb = ((q->dtype == HEED_F32 ? bwd_scratch_f32(P) : bwd_scratch_f64(P)) + 63) & ~(size_t)63;
    char *scratch = heed_graph_alloc(g, sb * (size_t)nth);
    /* dQ partials unless threads own whole heads and dQ rows are whole panels. */
    bool parts = gq && (!flash_per_head(BH, nth) || P->d % ATTN_NR != 0);
    void *dq_parts = parts ? heed_graph_alloc(g, (size_t)nth * (size_t)(P->Nq * attn_pad(P->d)) * es) : NULL;
    if (!heed_graph_ok(g)) return;
    /* Fewer threads on a busy machine (heed_ctx_threads_now) only when both counts give the
     * same split -- whole heads per thread -- so the gradients do not change with the load. */
    int team = nth > 1 ? heed_ctx_threads_now(g->ctx) : 1;
    if (!flash_per_head(BH, nth) || !flash_per_head(BH, team)) team = nth;
    if (q->dtype == HEED_F32) {
        job_f32 J = {.P = P,
                     .K = flash_kernels_f32_get(),
                     .q = q->data,
                     .k = k->data,
                     .v = v->data,
                     .bias = bias ? bias->data : NULL,
                     .o = o->data,
                     .dout = o->grad,
                     .row_max = sv->row_max,
                     .row_log2sum = sv->row_log2sum,
                     .D = D,
                     .gq = gq,
                     .gk = gk,
                     .gv = gv,
                     .gbias = gb,
                     .c = (float)(P->scale * M_LOG2E),
                     .bmul = (float)M_LOG2E,
                     .zscale = (float)(1 / (1 - P->p)),
                     .threshold = attn_keep_threshold(P->p),
                     .scratch = scratch,
                     .scratch_bytes = sb,
                     .dq_parts = dq_parts};
        backward_f32(&J, team);
    } else {
        job_f64 J = {.P = P,
                     .K = flash_kernels_f64_get(),
                     .q = q->data,
                     .k = k->data,
                     .v = v->data,
                     .bias = bias ? bias->data : NULL,
                     .o = o->data,
                     .dout = o->grad,
                     .row_max = sv->row_max,
                     .row_log2sum = sv->row_log2sum,
                     .D = D,
                     .gq = gq,
                     .gk = gk,
                     .gv = gv,
                     .gbias = gb,
                     .c = P->scale * M_LOG2E,
                     .bmul = M_LOG2E,
                     .zscale = 1 / (1 - P->p),
                     .threshold = attn_keep_threshold(P->p),
                     .scratch = scratch,
                     .scratch_bytes = sb,
                     .dq_parts = dq_parts};
        backward_f64(&J, team);
    }
}

static const heed_op op_flash = {"heed_attention (flash)", flash_backward};

heed_tensor *attn_flash(heed_graph *g, heed_tensor *q, heed_tensor *k, heed_tensor *v, heed_tensor *bias,
                        const attn_plan *plan) {
    const char *op = "heed_attention";
    attn_plan P = *plan;
    bool f32 = q->dtype == HEED_F32;
    attn_flash_blocks(&P, q->dtype);
    if (P.pat.on && !(P.map = attn_tile_map_build(g, &P))) return NULL;
    int64_t shape[4] = {P.B, P.H, P.Nq, P.dv}, BH = P.B * P.H;
    heed_tensor *o = heed__new(g, op, q->dtype, 4, shape);
    heed_tensor *in[4] = {q, k, v, bias};
    int n_in = bias ? 4 : 3;
    if (!o) return NULL;
    size_t es = heed_dtype_size(q->dtype);
    bool record = heed_graph_records(g, n_in, in);
    char *stats = record ? heed_graph_alloc(g, (size_t)(2 * BH * P.Nq) * es + 1) : NULL;
    void *row_max = stats, *row_log2sum = stats ? stats + (size_t)(BH * P.Nq) * es : NULL;
    int nth = heed_ctx_threads(g->ctx);
    size_t sb = ((f32 ? fwd_scratch_f32(&P) : fwd_scratch_f64(&P)) + 63) & ~(size_t)63;
    char *scratch = heed_graph_alloc(g, sb * (size_t)nth);
    if (!heed_graph_ok(g)) return NULL;
    if (f32) {
        job_f32 J = {.P = &P,
                     .K = flash_kernels_f32_get(),
                     .q = q->data,
                     .k = k->data,
                     .v = v->data,
                     .bias = bias ? bias->data : NULL,
                     .out = o->data,
                     .row_max = row_max,
                     .row_log2sum = row_log2sum,
                     .c = (float)(P.scale * M_LOG2E),
                     .bmul = (float)M_LOG2E,
                     .zscale = (float)(1 / (1 - P.p)),
                     .threshold = attn_keep_threshold(P.p),
                     .scratch = scratch,
                     .scratch_bytes = sb};
        forward_f32(&J, heed_ctx_threads_now(g->ctx)); /* items are independent: any team size */
    } else {
        job_f64 J = {.P = &P,
                     .K = flash_kernels_f64_get(),
                     .q = q->data,
                     .k = k->data,
                     .v = v->data,
                     .bias = bias ? bias->data : NULL,
                     .out = o->data,
                     .row_max = row_max,
                     .row_log2sum = row_log2sum,
                     .c = P.scale * M_LOG2E,
                     .bmul = M_LOG2E,
                     .zscale = 1 / (1 - P.p),
                     .threshold = attn_keep_threshold(P.p),
                     .scratch = scratch,
                     .scratch_bytes = sb};
        forward_f64(&J, heed_ctx_threads_now(g->ctx));
    }
    heed_node *n = heed_record(g, &op_flash, n_in, in, 1, &o);
    if (n) {
        flash_saved *sv = heed_graph_alloc(g, sizeof *sv);
        if (sv) *sv = (flash_saved){.plan = P, .row_max = row_max, .row_log2sum = row_log2sum};
        n->saved = sv;
    }
    return heed_graph_ok(g) ? o : NULL;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

typedef struct {
    const attn_plan *P;
    const FN(flash_kernels) * K;
    const T *q, *k, *v, *bias, *o, *dout;
    T *out, *D;               /* forward output; D of backward */
    T *row_max, *row_log2sum; /* per query row: m and log2(l) of the forward (base 2) */
    T *gq, *gk, *gv, *gbias;  /* gradients to add into (NULL: not wanted) */
    T c, bmul;                /* scale*log2(e), log2(e) */
    T zscale;                 /* 1 / (1 - p) */
    uint32_t threshold;       /* dropout keep threshold (24-bit) */
    bool bias_atomic;         /* two threads may add into the same bias gradient element */
    char *scratch;            /* per-thread scratch, scratch_bytes each (a multiple of 64) */
    size_t scratch_bytes;
    T *dq_parts; /* backward: [threads][Nq][attn_pad(d)] dQ partials, or NULL */
} FN(job);

/* Carves 64-byte-aligned pieces off a thread's scratch. */
static void *FN(take)(char **cur, size_t bytes) {
    void *p = *cur;
    *cur += (bytes + 63) & ~(size_t)63;
    return p;
}

/* With a bias that does not depend on the query (stride 0 along Nq, e.g. a [B,1,1,Nk]
 * key-padding bias), keys outside [first, last] finite entries are invisible to every
 * row: narrowing the key range to them skips those tiles entirely. */
static void FN(bias_keys)(const FN(job) * J, int64_t b, int64_t h, int64_t *blo, int64_t *bhi) {
    const attn_plan *P = J->P;
    int64_t lo = 0, hi = P->Nk;
    if (J->bias && P->bstride[2] == 0) {
        const T *row = J->bias + attn_bias_at(P, b, h, 0, 0);
        int64_t sj = P->bstride[3];
        while (lo < hi && row[lo * sj] == -INFINITY) lo++;
        while (hi > lo && row[(hi - 1) * sj] == -INFINITY) hi--;
    }
    *blo = lo;
    *bhi = hi;
}

/* Keys [lo, hi) of row i: the mask interval clipped to the bias's finite range. */
static inline void FN(row_keys)(const attn_plan *P, int64_t b, int64_t i, int64_t blo, int64_t bhi, int64_t *lo,
                                int64_t *hi) {
    attn_row_keys(P, b, i, lo, hi);
    if (*lo < blo) *lo = blo;
    if (*hi > bhi) *hi = bhi;
    if (*hi < *lo) *hi = *lo;
}

/* Dropout multipliers z[c0..c1) of row i, tile columns from key j0. */
static void FN(dropout_row)(const FN(job) * J, int64_t bh, int64_t i, int64_t j0, int64_t c0, int64_t c1,
                            unsigned char *keep, T *z) {
    const attn_plan *P = J->P;
    uint64_t e0 = ((uint64_t)bh * (uint64_t)P->Nq + (uint64_t)i) * (uint64_t)P->Nk + (uint64_t)(j0 + c0);
    attn_keep(P->seed, P->stream, e0, c1 - c0, J->threshold, keep);
    for (int64_t t = c0; t < c1; t++) z[t] = keep[t - c0] ? J->zscale : 0;
}

/* rows x cols of src (leading dim lds) into a zero-padded [rows][attn_pad(cols)] buffer,
 * or src itself when cols is already a multiple of the panel width. */
static const T *FN(panel)(const T *src, int64_t lds, int64_t rows, int64_t cols, T *buf, int64_t *ld) {
    if (cols % ATTN_NR == 0 && lds == cols) {
        *ld = cols;
        return src;
    }
    int64_t w = attn_pad(cols);
    for (int64_t r = 0; r < rows; r++) {
        memcpy(buf + r * w, src + r * lds, (size_t)cols * sizeof(T));
        memset(buf + r * w + cols, 0, (size_t)(w - cols) * sizeof(T));
    }
    *ld = w;
    return buf;
}

/* src [rows][cols] -> dst [cols][attn_pad(rows)], padding columns zeroed. */
static void FN(panel_t)(const FN(job) * J, const T *src, int64_t rows, int64_t cols, T *dst) {
    int64_t w = attn_pad(rows);
    J->K->transpose(src, cols, rows, cols, dst, w);
    if (w > rows)
        for (int64_t c = 0; c < cols; c++) memset(dst + c * w + rows, 0, (size_t)(w - rows) * sizeof(T));
}

/* Sparse pattern: the keys of columns [c0, c1) that the row does not see (vis 0) get the
 * score s with c s = -inf: -inf when c > 0, +inf when c < 0 (a negative scale). */
static void FN(mask_holes)(T *s, const unsigned char *vis, int64_t c0, int64_t c1, T c) {
    T masked = c > 0 ? -INFINITY : INFINITY;
    for (int64_t t = c0; t < c1; t++)
        if (!vis[t]) s[t] = masked;
}

/* The tiles a pattern leaves for query tile t (key tiles) or key tile t (query tiles) of head h. */
static const int32_t *FN(map_list)(const attn_tile_map *M, int64_t h, int64_t t, bool of_query, int64_t *n) {
    int64_t hh = M->heads > 1 ? h : 0;
    const int64_t *st = of_query ? M->q_start + hh * (M->nqt + 1) + t : M->k_start + hh * (M->nkt + 1) + t;
    *n = st[1] - st[0];
    return (of_query ? M->k_tiles : M->q_tiles) + st[0];
}

/* Enters the tile [j0, j0 + nk) for rows i0 .. i0+mq-1 with key ranges [lo, hi): returns
 * the ranges to compute, [lo, hi) themselves, or with a pattern (pat non-NULL) the spans of
 * the keys each row sees, with pat filled (attn_pattern_tile). Counts the visit. */
static void FN(enter_tile)(const attn_plan *P, int64_t h, int64_t i0, int64_t mq, int64_t j0, int64_t nk,
                           const int64_t *lo, const int64_t *hi, const attn_tile_rows *pat, const int64_t **rlo,
                           const int64_t **rhi) {
    *rlo = lo, *rhi = hi;
    if (pat) {
        attn_pattern_tile(P, h, i0, mq, j0, nk, lo, hi, pat);
        *rlo = pat->lo, *rhi = pat->hi;
    }
#pragma omp atomic
    tile_visits++;
}

/* Columns [c0, c1) of a tile starting at key j0 (nk keys) that row [lo, hi) sees. */
static inline void FN(cols)(int64_t lo, int64_t hi, int64_t j0, int64_t nk, int64_t *c0, int64_t *c1) {
    int64_t a = lo - j0, z = hi - j0;
    a = a < 0 ? 0 : a > nk ? nk : a;
    z = z < a ? a : z > nk ? nk : z;
    *c0 = a;
    *c1 = z;
}

/* Row groups of a tile. A tile whose rows all see the same columns is one group; a
 * diagonal (causal) or band (window) tile is cut into groups of FLASH_GROUP rows, each
 * computing only the columns [cs, ce) its rows see (cs rounded down to a panel), which
 * cuts the masked work of a diagonal tile from 1/2 to about FLASH_GROUP / (2 block_k).
 * Returns the end of the group starting at r0; cs == ce when no row of it sees the tile. */
#define FLASH_GROUP 24 /* a multiple of the micro-kernels' rows (6 with AVX2, 12 with AVX-512) */

static bool FN(uniform)(const int64_t *lo, const int64_t *hi, int64_t mq, int64_t j0, int64_t nk) {
    int64_t a0, z0, a, z;
    FN(cols)(lo[0], hi[0], j0, nk, &a0, &z0);
    for (int64_t r = 1; r < mq; r++) {
        FN(cols)(lo[r], hi[r], j0, nk, &a, &z);
        if (a != a0 || z != z0) return false;
    }
    return true;
}

static int64_t FN(group)(const int64_t *lo, const int64_t *hi, int64_t r0, int64_t mq, bool split, int64_t j0,
                         int64_t nk, int64_t *cs, int64_t *ce) {
    int64_t r1 = split && r0 + FLASH_GROUP < mq ? r0 + FLASH_GROUP : mq, a = nk, z = 0, c0, c1;
    for (int64_t r = r0; r < r1; r++) {
        FN(cols)(lo[r], hi[r], j0, nk, &c0, &c1);
        if (c0 < c1) {
            if (c0 < a) a = c0;
            if (c1 > z) z = c1;
        }
    }
    *cs = a < z ? a / ATTN_NR * ATTN_NR : 0;
    *ce = a < z ? z : 0;
    return r1;
}

/* A row's columns relative to its group's first column (empty rows: 0, 0). */
static inline void FN(group_cols)(int64_t lo, int64_t hi, int64_t j0, int64_t nk, int64_t cs, int64_t *c0,
                                  int64_t *c1) {
    FN(cols)(lo, hi, j0, nk, c0, c1);
    if (*c0 >= *c1) *c0 = *c1 = cs;
    *c0 -= cs;
    *c1 -= cs;
}

/* ---------------------------------------------------------------- forward */

static size_t FN(fwd_scratch)(const attn_plan *P) {
    int64_t bq = P->block_q, bk = attn_pad(P->block_k), dv = attn_pad(P->dv);
    size_t fb = sizeof(T), s = 0;
    s += (size_t)(P->d * bk) * fb + 64;                                    /* K^T panel */
    s += (size_t)(bq * bk) * fb + 64;                                      /* scores / weights */
    s += (size_t)(P->block_k * dv) * fb + 64;                              /* padded V (dv % 16 != 0) */
    s += (size_t)(bq * dv) * fb + 64;                                      /* output accumulator (dv % 16 != 0) */
    s += (size_t)bk * (fb + 1) + 128;                                      /* dropout z and keep */
    s += (size_t)bq * (2 * sizeof(int64_t) + 2 * fb) + 256;                /* lo, hi, m, l */
    s += (size_t)(bq * bk) + (size_t)bq * (2 * sizeof(int64_t) + 1) + 256; /* pattern: vis, spans, holes */
    return s;
}

static void FN(fwd_block)(const FN(job) * J, int64_t bh, int64_t i0, char *scratch) {
    const attn_plan *P = J->P;
    const FN(flash_kernels) *K = J->K;
    int64_t b = bh / P->H, h = bh % P->H, d = P->d, dv = P->dv, Nq = P->Nq, Nk = P->Nk;
    int64_t mq = P->block_q < Nq - i0 ? P->block_q : Nq - i0, dvp = attn_pad(dv);
    char *cur = scratch;
    T *kt = FN(take)(&cur, (size_t)(d * attn_pad(P->block_k)) * sizeof(T));
    T *S = FN(take)(&cur, (size_t)(P->block_q * attn_pad(P->block_k)) * sizeof(T));
    T *vbuf = FN(take)(&cur, (size_t)(P->block_k * dvp) * sizeof(T));
    T *obuf = FN(take)(&cur, (size_t)(P->block_q * dvp) * sizeof(T));
    T *z = FN(take)(&cur, (size_t)attn_pad(P->block_k) * sizeof(T));
    unsigned char *keep = FN(take)(&cur, (size_t)attn_pad(P->block_k));
    int64_t *lo = FN(take)(&cur, (size_t)mq * sizeof(int64_t)), *hi = FN(take)(&cur, (size_t)mq * sizeof(int64_t));
    T *m = FN(take)(&cur, (size_t)mq * sizeof(T)), *l = FN(take)(&cur, (size_t)mq * sizeof(T));
    int64_t bkp = attn_pad(P->block_k);
    attn_tile_rows pat = {.vis = FN(take)(&cur, (size_t)(P->block_q * bkp)),
                          .holes = FN(take)(&cur, (size_t)mq),
                          .lo = FN(take)(&cur, (size_t)mq * sizeof(int64_t)),
                          .hi = FN(take)(&cur, (size_t)mq * sizeof(int64_t)),
                          .ld = bkp};

    int64_t blo, bhi, jlo = Nk, jhi = 0;
    FN(bias_keys)(J, b, h, &blo, &bhi);
    for (int64_t r = 0; r < mq; r++) {
        FN(row_keys)(P, b, i0 + r, blo, bhi, &lo[r], &hi[r]);
        if (lo[r] < hi[r]) {
            if (lo[r] < jlo) jlo = lo[r];
            if (hi[r] > jhi) jhi = hi[r];
        }
        m[r] = -INFINITY;
        l[r] = 0;
    }
    const T *Q = J->q + (bh * Nq + i0) * d, *Kh = J->k + bh * Nk * d, *Vh = J->v + bh * Nk * dv;
    T *O = J->out + (bh * Nq + i0) * dv;
    /* Accumulate straight into the output when its rows are whole panels. */
    bool direct = dv % ATTN_NR == 0;
    T *acc = direct ? O : obuf;
    memset(acc, 0, (size_t)(mq * dvp) * sizeof(T));

    /* Only key tiles some row of the block can see: [jlo, jhi) (causal and window tiles
     * outside it are never touched; cost O(N w) for a window w), or with a pattern the
     * tiles of its map inside that range (tiles aligned at 0). */
    int64_t ntiles = jlo < jhi ? (jhi - jlo + P->block_k - 1) / P->block_k : 0;
    const int32_t *tiles = P->map ? FN(map_list)(P->map, h, i0 / P->block_q, true, &ntiles) : NULL;
    for (int64_t x = 0; x < ntiles; x++) {
        int64_t j0 = tiles ? tiles[x] * P->block_k : jlo + x * P->block_k, jend = j0 + P->block_k;
        if (jend > jhi) jend = jhi;
        if (jend <= j0 || jend <= jlo) continue; /* past every row's key_lengths or bias range */
        int64_t nk = jend - j0, nkp = attn_pad(nk), ldv;
        const int64_t *rlo, *rhi;
        FN(enter_tile)(P, h, i0, mq, j0, nk, lo, hi, tiles ? &pat : NULL, &rlo, &rhi);
        FN(panel_t)(J, Kh + j0 * d, nk, d, kt);
        const T *Vp = FN(panel)(Vh + j0 * dv, dv, nk, dv, vbuf, &ldv);
        bool split = !FN(uniform)(rlo, rhi, mq, j0, nk);
        for (int64_t r0 = 0, r1, cs, ce; r0 < mq; r0 = r1) {
            r1 = FN(group)(rlo, rhi, r0, mq, split, j0, nk, &cs, &ce);
            if (cs >= ce) continue; /* no row of the group sees this tile */
            int64_t nc = attn_pad(ce - cs);
            K->gemm(r1 - r0, nc, d, 1, Q + r0 * d, d, 1, kt + cs, nkp, false, S + r0 * nkp + cs, nkp);
            for (int64_t r = r0; r < r1; r++) {
                int64_t c0, c1;
                FN(group_cols)(rlo[r], rhi[r], j0, nk, cs, &c0, &c1);
                T *srow = S + r * nkp + cs;
                if (tiles && pat.holes[r]) FN(mask_holes)(srow, pat.vis + r * bkp + cs, c0, c1, J->c);
                const T *brow = J->bias ? J->bias + attn_bias_at(P, b, h, i0 + r, j0 + cs) : NULL;
                T alpha = K->row_fwd(srow, nc, c0, c1, J->c, brow, P->bstride[3], J->bmul, &m[r], &l[r]);
                if (alpha != 1)
                    for (int64_t x = 0; x < dv; x++) acc[r * dvp + x] *= alpha;
                if (P->dropout && c0 < c1) {
                    FN(dropout_row)(J, bh, i0 + r, j0 + cs, c0, c1, keep, z);
                    for (int64_t t = c0; t < c1; t++) srow[t] *= z[t];
                }
            }
            K->gemm(r1 - r0, dvp, ce - cs, 1, S + r0 * nkp + cs, nkp, 1, Vp + cs * ldv, ldv, true, acc + r0 * dvp, dvp);
        }
    }
    /* O = acc / l; a row that saw no key keeps O = 0 and m = +inf, so its recomputed
     * weights exp2((t - m) - log2 l) are 0 in backward (no NaN anywhere). */
    for (int64_t r = 0; r < mq; r++) {
        T *orow = O + r * dv, *arow = acc + r * dvp, rm = INFINITY, rl = 0;
        if (l[r] > 0) {
            T inv = 1 / l[r];
            for (int64_t x = 0; x < dv; x++) orow[x] = arow[x] * inv;
            rm = m[r];
            rl = log2(l[r]);
        } else {
            memset(orow, 0, (size_t)dv * sizeof(T));
        }
        if (J->row_max) J->row_max[bh * Nq + i0 + r] = rm, J->row_log2sum[bh * Nq + i0 + r] = rl;
    }
}

/* nthreads: the threads scratch was made for. */
static void FN(forward)(const FN(job) * J, int nthreads) {
    const attn_plan *P = J->P;
    int64_t nqb = (P->Nq + P->block_q - 1) / P->block_q, items = P->B * P->H * nqb;
    /* Later query blocks see more keys under a causal mask: hand them out first. */
#pragma omp parallel for schedule(dynamic) if (items > 1 && attn_parallel(P)) num_threads(nthreads)
    for (int64_t it = 0; it < items; it++) {
        int64_t bh = it / nqb, qb = nqb - 1 - it % nqb;
        FN(fwd_block)(J, bh, qb * P->block_q, J->scratch + (size_t)omp_get_thread_num() * J->scratch_bytes);
    }
}

/* ---------------------------------------------------------------- backward */

static size_t FN(bwd_scratch)(const attn_plan *P) {
    int64_t bq = P->block_q, bk = P->block_k, bkp = attn_pad(bk), dp = attn_pad(P->d), dvp = attn_pad(P->dv);
    size_t fb = sizeof(T), s = 0;
    s += (size_t)(P->d * bkp + P->dv * bkp) * fb + 128;                     /* K^T, V^T panels */
    s += (size_t)(bk * dp) * fb + 64;                                       /* padded K (d % 16 != 0) */
    s += (size_t)(2 * bq * bkp) * fb + 128;                                 /* S -> A, dA -> dS */
    s += (size_t)(bk * dp + bk * dvp) * fb + 128;                           /* dK, dV accumulators */
    s += (size_t)(bq * dp + bq * dvp) * fb + 128;                           /* padded Q, dO */
    s += (size_t)bkp * (fb + 1) + 128;                                      /* z, keep */
    s += (size_t)bq * 2 * sizeof(int64_t) + 128;                            /* lo, hi */
    s += (size_t)(bq * bkp) + (size_t)bq * (2 * sizeof(int64_t) + 1) + 256; /* pattern: vis, spans, holes */
    return s;
}

/* First i in [0, Nq) with key_end(i) > j (want_hi) or key_start(i) >= j (!want_hi);
 * both ends are non-decreasing in i. */
static int64_t FN(bisect)(const attn_plan *P, int64_t b, int64_t blo, int64_t bhi, int64_t j, bool want_hi) {
    int64_t a = 0, z = P->Nq;
    while (a < z) {
        int64_t mid = a + (z - a) / 2, lo, hi;
        FN(row_keys)(P, b, mid, blo, bhi, &lo, &hi);
        if (want_hi ? hi > j : lo >= j) z = mid;
        else a = mid + 1;
    }
    return a;
}

/* Adds the dS tile [mq][nk] (leading dim ld) into the bias gradient, summed over the
 * bias's broadcast dims (reduced inside the tile first, so a shared row or column costs
 * one add per tile). */
static void FN(bias_grad_tile)(const FN(job) * J, int64_t b, int64_t h, int64_t i0, int64_t mq, int64_t j0, int64_t nk,
                               const T *ds, int64_t ld) {
    const attn_plan *P = J->P;
    bool per_i = P->bstride[2] != 0, per_j = P->bstride[3] != 0, atomic = J->bias_atomic;
    T *gb = J->gbias;
#define BIAS_ADD(off, val)                                                                                             \
    do {                                                                                                               \
        T v_ = (val);                                                                                                  \
        T *p_ = gb + (off);                                                                                            \
        if (atomic) {                                                                                                  \
            _Pragma("omp atomic")                                                                                      \
            *p_ += v_;                                                                                                 \
        } else {                                                                                                       \
            *p_ += v_;                                                                                                 \
        }                                                                                                              \
    } while (0)
    if (per_j) {
        for (int64_t r0 = 0; r0 < mq; r0 += per_i ? 1 : mq) {
            int64_t r1 = per_i ? r0 + 1 : mq;
            for (int64_t t = 0; t < nk; t++) {
                T s = 0;
                for (int64_t r = r0; r < r1; r++) s += ds[r * ld + t];
                if (s != 0) BIAS_ADD(attn_bias_at(P, b, h, i0 + r0, j0 + t), s);
            }
        }
    } else {
        for (int64_t r0 = 0; r0 < mq; r0 += per_i ? 1 : mq) {
            int64_t r1 = per_i ? r0 + 1 : mq;
            T s = 0;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t t = 0; t < nk; t++) s += ds[r * ld + t];
            if (s != 0) BIAS_ADD(attn_bias_at(P, b, h, i0 + r0, j0), s);
        }
    }
#undef BIAS_ADD
}

/* One key block [j0, j0 + nk) of head bh against every query block that sees it. */
static void FN(bwd_block)(const FN(job) * J, int64_t bh, int64_t j0, char *scratch, T *dq_part) {
    const attn_plan *P = J->P;
    const FN(flash_kernels) *K = J->K;
    int64_t b = bh / P->H, h = bh % P->H, d = P->d, dv = P->dv, Nq = P->Nq, Nk = P->Nk;
    int64_t nk = P->block_k < Nk - j0 ? P->block_k : Nk - j0, nkp = attn_pad(nk), dp = attn_pad(d), dvp = attn_pad(dv),
            bkp = attn_pad(P->block_k);
    int64_t blo, bhi, ia = 0, ib = 0, ntiles;
    FN(bias_keys)(J, b, h, &blo, &bhi);
    const int32_t *tiles = NULL;
    if (P->map) { /* the query tiles of the pattern's map (aligned at 0) */
        if (j0 >= bhi || j0 + nk <= blo || (P->lengths && j0 >= P->lengths[b])) return;
        tiles = FN(map_list)(P->map, h, j0 / P->block_k, false, &ntiles);
    } else { /* the query rows [ia, ib) that see some key of the tile */
        ia = FN(bisect)(P, b, blo, bhi, j0, true), ib = FN(bisect)(P, b, blo, bhi, j0 + nk, false);
        ntiles = ia < ib ? (ib - ia + P->block_q - 1) / P->block_q : 0;
    }
    if (ntiles == 0) return; /* no query sees these keys: their dK, dV are 0 */

    char *cur = scratch;
    T *kt = FN(take)(&cur, (size_t)(d * bkp) * sizeof(T)), *vt = FN(take)(&cur, (size_t)(dv * bkp) * sizeof(T));
    T *kbuf = FN(take)(&cur, (size_t)(P->block_k * dp) * sizeof(T));
    T *S = FN(take)(&cur, (size_t)(P->block_q * bkp) * sizeof(T));
    T *dA = FN(take)(&cur, (size_t)(P->block_q * bkp) * sizeof(T));
    T *dk = FN(take)(&cur, (size_t)(P->block_k * dp) * sizeof(T));
    T *dvacc = FN(take)(&cur, (size_t)(P->block_k * dvp) * sizeof(T));
    T *qbuf = FN(take)(&cur, (size_t)(P->block_q * dp) * sizeof(T));
    T *dobuf = FN(take)(&cur, (size_t)(P->block_q * dvp) * sizeof(T));
    T *z = FN(take)(&cur, (size_t)bkp * sizeof(T));
    unsigned char *keep = FN(take)(&cur, (size_t)bkp);
    int64_t *lo = FN(take)(&cur, (size_t)P->block_q * sizeof(int64_t));
    int64_t *hi = FN(take)(&cur, (size_t)P->block_q * sizeof(int64_t));
    attn_tile_rows pat = {.vis = FN(take)(&cur, (size_t)(P->block_q * bkp)),
                          .holes = FN(take)(&cur, (size_t)P->block_q),
                          .lo = FN(take)(&cur, (size_t)P->block_q * sizeof(int64_t)),
                          .hi = FN(take)(&cur, (size_t)P->block_q * sizeof(int64_t)),
                          .ld = bkp};

    const T *Kj = J->k + (bh * Nk + j0) * d, *Vj = J->v + (bh * Nk + j0) * dv;
    int64_t ldk;
    FN(panel_t)(J, Kj, nk, d, kt);
    FN(panel_t)(J, Vj, nk, dv, vt);
    const T *Kp = FN(panel)(Kj, d, nk, d, kbuf, &ldk);
    memset(dk, 0, (size_t)(nk * dp) * sizeof(T));
    memset(dvacc, 0, (size_t)(nk * dvp) * sizeof(T));
    T scale = (T)P->scale;

    for (int64_t x = 0; x < ntiles; x++) {
        int64_t i0 = tiles ? tiles[x] * P->block_q : ia + x * P->block_q, iend = tiles ? Nq : ib;
        int64_t mq = P->block_q < iend - i0 ? P->block_q : iend - i0, ldq = 0, lddo = 0;
        const T *Qi = J->q + (bh * Nq + i0) * d, *dOi = J->dout + (bh * Nq + i0) * dv;
        for (int64_t r = 0; r < mq; r++) FN(row_keys)(P, b, i0 + r, blo, bhi, &lo[r], &hi[r]);
        const int64_t *rlo, *rhi;
        FN(enter_tile)(P, h, i0, mq, j0, nk, lo, hi, tiles ? &pat : NULL, &rlo, &rhi);
        const T *dOp = J->gv ? FN(panel)(dOi, dv, mq, dv, dobuf, &lddo) : NULL;
        const T *Qp = J->gk ? FN(panel)(Qi, d, mq, d, qbuf, &ldq) : NULL;
        bool split = !FN(uniform)(rlo, rhi, mq, j0, nk);
        for (int64_t r0 = 0, r1, cs, ce; r0 < mq; r0 = r1) {
            r1 = FN(group)(rlo, rhi, r0, mq, split, j0, nk, &cs, &ce);
            if (cs >= ce) continue;
            int64_t g = r1 - r0, nc = attn_pad(ce - cs), M = ce - cs;
            T *Sg = S + r0 * nkp + cs, *dSg = dA + r0 * nkp + cs;
            K->gemm(g, nc, d, 1, Qi + r0 * d, d, 1, kt + cs, nkp, false, Sg, nkp);      /* S = Q K^T */
            K->gemm(g, nc, dv, 1, dOi + r0 * dv, dv, 1, vt + cs, nkp, false, dSg, nkp); /* dA = dO V^T */
            for (int64_t r = r0; r < r1; r++) {
                int64_t i = i0 + r, c0, c1;
                FN(group_cols)(rlo[r], rhi[r], j0, nk, cs, &c0, &c1);
                if (tiles && pat.holes[r]) FN(mask_holes)(S + r * nkp + cs, pat.vis + r * bkp + cs, c0, c1, J->c);
                const T *brow = J->bias ? J->bias + attn_bias_at(P, b, h, i, j0 + cs) : NULL;
                if (P->dropout && c0 < c1) FN(dropout_row)(J, bh, i, j0 + cs, c0, c1, keep, z);
                K->row_bwd(S + r * nkp + cs, dA + r * nkp + cs, nc, c0, c1, J->c, brow, P->bstride[3], J->bmul,
                           J->row_max[bh * Nq + i], J->row_log2sum[bh * Nq + i], J->D[bh * Nq + i],
                           P->dropout ? z : NULL);
            }
            /* S now holds A (weights after dropout), dA holds dS. */
            if (J->gv)
                K->gemm(M, dvp, g, 1, Sg, 1, nkp, dOp + r0 * lddo, lddo, true, dvacc + cs * dvp,
                        dvp); /* dV += A^T dO */
            if (J->gk)
                K->gemm(M, dp, g, scale, dSg, 1, nkp, Qp + r0 * ldq, ldq, true, dk + cs * dp,
                        dp); /* dK += scale dS^T Q */
            if (dq_part)     /* dQ += scale dS K */
                K->gemm(g, dp, M, scale, dSg, nkp, 1, Kp + cs * ldk, ldk, true, dq_part + (i0 + r0) * dp, dp);
            if (J->gbias) FN(bias_grad_tile)(J, b, h, i0 + r0, g, j0 + cs, M, dSg, nkp);
        }
    }
    for (int64_t t = 0; t < nk; t++) {
        if (J->gk)
            for (int64_t x = 0; x < d; x++) J->gk[(bh * Nk + j0 + t) * d + x] += dk[t * dp + x];
        if (J->gv)
            for (int64_t x = 0; x < dv; x++) J->gv[(bh * Nk + j0 + t) * dv + x] += dvacc[t * dvp + x];
    }
}

/* nthreads: the threads scratch was made for; 1 runs on the calling thread. */
static void FN(backward)(FN(job) * J, int nthreads) {
    const attn_plan *P = J->P;
    int64_t BH = P->B * P->H, Nq = P->Nq, d = P->d, dv = P->dv, dp = attn_pad(d);
    int64_t nkb = (P->Nk + P->block_k - 1) / P->block_k;
    bool with_dq = J->gq != NULL;

    /* D_i = dO_i . O_i */
#pragma omp parallel for schedule(static) if (nthreads > 1 && BH * Nq * dv > 32768) num_threads(nthreads)
    for (int64_t i = 0; i < BH * Nq; i++) {
        T s = 0;
        for (int64_t x = 0; x < dv; x++) s += J->dout[i * dv + x] * J->o[i * dv + x];
        J->D[i] = s;
    }

    /* Enough heads to keep every thread busy (flash_per_head): a thread takes whole heads
     * and owns their dQ, dK, dV -- dQ accumulates straight into the gradient when its rows
     * are whole panels, else into the thread's partial. Otherwise the threads share the key
     * blocks of one head at a time, each with its own dQ partial, summed after the head. */
    if (flash_per_head(BH, nthreads)) {
        J->bias_atomic = (P->B > 1 && P->bstride[0] == 0) || (P->H > 1 && P->bstride[1] == 0);
#pragma omp parallel for schedule(dynamic) if (BH > 1 && nthreads > 1) num_threads(nthreads)
        for (int64_t bh = 0; bh < BH; bh++) {
            int tid = omp_get_thread_num();
            char *scratch = J->scratch + (size_t)tid * J->scratch_bytes;
            T *dq_part = !with_dq ? NULL : J->dq_parts ? J->dq_parts + tid * Nq * dp : J->gq + bh * Nq * d;
            if (with_dq && J->dq_parts) memset(dq_part, 0, (size_t)(Nq * dp) * sizeof(T));
            for (int64_t kb = 0; kb < nkb; kb++) FN(bwd_block)(J, bh, kb * P->block_k, scratch, dq_part);
            if (with_dq && J->dq_parts)
                for (int64_t i = 0; i < Nq; i++)
                    for (int64_t x = 0; x < d; x++) J->gq[(bh * Nq + i) * d + x] += dq_part[i * dp + x];
        }
    } else {
        J->bias_atomic = P->bstride[3] == 0 && nkb > 1;
#pragma omp parallel num_threads(nthreads)
        {
            int tid = omp_get_thread_num(), nth = omp_get_num_threads();
            char *scratch = J->scratch + (size_t)tid * J->scratch_bytes;
            T *dq_part = with_dq ? J->dq_parts + tid * Nq * dp : NULL;
            for (int64_t bh = 0; bh < BH; bh++) {
                if (with_dq) memset(dq_part, 0, (size_t)(Nq * dp) * sizeof(T));
#pragma omp for schedule(dynamic)
                for (int64_t kb = 0; kb < nkb; kb++) FN(bwd_block)(J, bh, kb * P->block_k, scratch, dq_part);
                if (with_dq) {
#pragma omp for schedule(static)
                    for (int64_t i = 0; i < Nq; i++)
                        for (int t = 0; t < nth; t++) {
                            const T *part = J->dq_parts + (t * Nq + i) * dp;
                            for (int64_t x = 0; x < d; x++) J->gq[(bh * Nq + i) * d + x] += part[x];
                        }
                }
            }
        }
    }
}
#endif
