/* Flash attention: the op around the tiled kernels of flash_impl.h (instanced
 * here for f32 and f64). Saves only each query row's softmax statistics, its max m and
 * log2 of its sum (apart, for f32 precision: see flash_impl.h); the backward
 * recomputes the score tiles. Memory beyond inputs, output and gradients: O(B H Nq) for
 * m, log2 l and D plus per-thread tiles (and a per-thread [Nq, d] dQ partial when threads
 * share a head), and with a sparse pattern its tile map (pattern.c: two int32 per tile
 * visited, per head with random blocks). */
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
#include "flash_impl.h"
#undef T
#undef FN

#define T double
#define FN(name) name##_f64
#include "flash_impl.h"
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
