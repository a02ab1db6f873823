/* Scaled dot-product attention: the entry point (validation, the plan, which
 * implementation) and the materialised implementation, which builds the whole
 * [B,H,Nq,Nk] weight matrix. The flash implementation is in flash.c.
 *
 *   s_ij = scale q_i.k_j + bias_ij  (-inf where masked),  P = softmax_j(s),
 *   A = P z (dropout: z_ij = keep_ij / (1 - p)),  O = A V.
 *
 * Backward (per head; dW is the gradient of the returned weights, 0 if not returned):
 *   dV = A^T dO,  dA = dO V^T,  dP = dA z + dW,
 *   dS_ij = P_ij (dP_ij - sum_l P_il dP_il)   (softmax Jacobian),
 *   dQ = scale dS K,  dK = scale dS^T Q,  dbias = dS summed over the bias's broadcast dims.
 * A fully masked row has P = 0, hence O = 0 and dS = 0. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "internal.h"
#include "../gemm.h"

#include <omp.h>
#include <tgmath.h>

/* Rows per work item of the materialised path. */
enum { MAT_ROWS = 64 };

/* The flash kernel table of each element type (the template names it FN(flash_table)). */
static const flash_kernels_f32 *flash_table_f32(void) { return flash_kernels_f32_get(); }
static const flash_kernels_f64 *flash_table_f64(void) { return flash_kernels_f64_get(); }

typedef struct {
    attn_plan plan;
    void *W; /* softmax weights [B,H,Nq,Nk] (the weights output when returned) */
    void *A; /* weights after dropout, or NULL without dropout */
} mat_saved;

/* What the work items of one call share. */
typedef struct {
    const attn_plan *P;
    heed_dtype dt;
    int64_t nrb; /* blocks of MAT_ROWS query rows per head */
    const void *q, *k, *v, *bias;
    void *W, *A, *O;
    unsigned char *keep;
    unsigned char *vis;       /* a pattern's visible keys: [threads][Nk] */
    int threads;              /* of the parallel region (heed_ctx_threads) */
    const void *dO, *dW, *Ap; /* backward: output and weight gradients, weights after dropout */
    void *dS, *gq, *gk, *gv;
} mat_job;

/* Runs item(J, 0 .. n-1): in parallel when the call is worth it, else on the calling thread
 * outside any OpenMP region (a BLAS call inside even an inactive region runs on one thread). */
static void mat_run(const mat_job *J, int64_t n, void (*item)(const mat_job *, int64_t)) {
    if (n > 1 && attn_parallel(J->P)) {
#pragma omp parallel for schedule(dynamic) num_threads(J->threads)
        for (int64_t i = 0; i < n; i++) item(J, i);
    } else {
        for (int64_t i = 0; i < n; i++) item(J, i);
    }
}

#define T float
#define FN(name) name##_f32
#include "attention.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "attention.c"
#undef T
#undef FN

/* Forward of MAT_ROWS query rows of one head: S = Q K^T, the masked softmax rows (the
 * flash row kernel started from an empty running max and sum, scores in base 2:
 * t = log2(e) (scale q.k + bias)), dropout, O = A V. */
static void mat_fwd_item(const mat_job *J, int64_t it) {
    const attn_plan *P = J->P;
    int64_t H = P->H, Nq = P->Nq, Nk = P->Nk, d = P->d, dv = P->dv;
    int64_t bh = it / J->nrb, b = bh / H, h = bh % H, i0 = it % J->nrb * MAT_ROWS;
    int64_t mq = Nq - i0 < MAT_ROWS ? Nq - i0 : MAT_ROWS;
    uint32_t thr = attn_keep_threshold(P->p);
    if (J->dt == HEED_F32) mat_fwd_item_kernel_f32(J, P, bh, Nq, i0, Nk, mq, d, b, h, thr, dv);
    else mat_fwd_item_kernel_f64(J, P, bh, Nq, i0, Nk, mq, d, b, h, thr, dv);
}

/* Backward rows: dA = dO V^T, dP = dA z + dW, dS = P (dP - rowsum(P dP)), dQ += scale dS K. */
static void mat_bwd_rows(const mat_job *J, int64_t it) {
    const attn_plan *P = J->P;
    int64_t Nq = P->Nq, Nk = P->Nk, d = P->d, dv = P->dv;
    int64_t bh = it / J->nrb, i0 = it % J->nrb * MAT_ROWS, mq = Nq - i0 < MAT_ROWS ? Nq - i0 : MAT_ROWS;
    uint32_t thr = attn_keep_threshold(P->p);
    if (J->dt == HEED_F32) mat_bwd_rows_kernel_f32(J, bh, Nq, i0, Nk, P, mq, dv, thr, d);
    else mat_bwd_rows_kernel_f64(J, bh, Nq, i0, Nk, P, mq, dv, thr, d);
}

/* Backward columns of one head: dK += scale dS^T Q, dV += A^T dO. */
static void mat_bwd_cols(const mat_job *J, int64_t bh) {
    const attn_plan *P = J->P;
    int64_t Nq = P->Nq, Nk = P->Nk, d = P->d, dv = P->dv;
    size_t es = heed_dtype_size(J->dt);
    if (J->gk)
        heed_gemm(J->dt, true, false, Nk, d, Nq, P->scale, (const char *)J->dS + (size_t)(bh * Nq * Nk) * es, Nk,
                  (const char *)J->q + (size_t)(bh * Nq * d) * es, d, 1, (char *)J->gk + (size_t)(bh * Nk * d) * es, d);
    if (J->gv)
        heed_gemm(J->dt, true, false, Nk, dv, Nq, 1, (const char *)J->Ap + (size_t)(bh * Nq * Nk) * es, Nk,
                  (const char *)J->dO + (size_t)(bh * Nq * dv) * es, dv, 1, (char *)J->gv + (size_t)(bh * Nk * dv) * es,
                  dv);
}

static void mat_backward(heed_graph *g, heed_node *n) {
    const mat_saved *sv = n->saved;
    const attn_plan *P = &sv->plan;
    heed_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *bias = n->n_in > 3 ? n->in[3] : NULL, *o = n->out[0];
    heed_tensor *w = n->n_out > 1 ? n->out[1] : NULL;
    void *gq = heed_grad_buffer(g, q), *gk = heed_grad_buffer(g, k), *gv = heed_grad_buffer(g, v),
         *gb = bias ? heed_grad_buffer(g, bias) : NULL;
    int64_t H = P->H, BH = P->B * H, Nq = P->Nq, Nk = P->Nk;
    size_t es = heed_dtype_size(q->dtype);
    void *dS = heed_graph_alloc(g, (size_t)(BH * Nq * Nk) * es + 1);
    unsigned char *keep = P->dropout ? heed_graph_alloc(g, (size_t)(BH * Nq * Nk) + 1) : NULL;
    if (!heed_graph_ok(g) || Nk == 0) return;
    mat_job J = {.P = P,
                 .dt = q->dtype,
                 .nrb = (Nq + MAT_ROWS - 1) / MAT_ROWS,
                 .q = q->data,
                 .k = k->data,
                 .v = v->data,
                 .W = sv->W,
                 .keep = keep,
                 .dO = o->grad,
                 .dW = w ? w->grad : NULL,
                 .Ap = sv->A ? sv->A : sv->W,
                 .dS = dS,
                 .gq = gq,
                 .gk = gk,
                 .gv = gv,
                 .threads = heed_ctx_threads(g->ctx)};
    mat_run(&J, BH * J.nrb, mat_bwd_rows);
    if (gk || gv) mat_run(&J, BH, mat_bwd_cols);
    if (gb) {
        if (q->dtype == HEED_F32) mat_backward_kernel_f32(gb, dS, BH, Nq, Nk, P, H);
        else mat_backward_kernel_f64(gb, dS, BH, Nq, Nk, P, H);
    }
}

static const heed_op op_materialised = {"heed_attention (materialised)", mat_backward};

heed_tensor *attn_materialised(heed_graph *g, heed_tensor *q, heed_tensor *k, heed_tensor *v, heed_tensor *bias,
                               const attn_plan *plan, heed_tensor **weights) {
    const char *op = "heed_attention";
    const attn_plan *P = plan;
    int64_t BH = P->B * P->H, Nq = P->Nq, Nk = P->Nk;
    int64_t wshape[4] = {P->B, P->H, Nq, Nk}, oshape[4] = {P->B, P->H, Nq, P->dv};
    heed_tensor *w = heed__new(g, op, q->dtype, 4, wshape), *o = heed__zeros(g, op, q->dtype, 4, oshape);
    size_t es = heed_dtype_size(q->dtype);
    void *A = P->dropout ? heed_graph_alloc(g, (size_t)(BH * Nq * Nk) * es + 1) : NULL;
    unsigned char *keep = P->dropout ? heed_graph_alloc(g, (size_t)(BH * Nq * Nk) + 1) : NULL;
    int threads = heed_ctx_threads(g->ctx);
    unsigned char *vis = P->pat.on ? heed_graph_alloc(g, (size_t)threads * (size_t)Nk + 1) : NULL;
    if (!heed_graph_ok(g)) return NULL;
    mat_job J = {.P = P,
                 .dt = q->dtype,
                 .nrb = (Nq + MAT_ROWS - 1) / MAT_ROWS,
                 .q = q->data,
                 .k = k->data,
                 .v = v->data,
                 .bias = bias ? bias->data : NULL,
                 .W = w->data,
                 .A = A,
                 .O = o->data,
                 .keep = keep,
                 .vis = vis,
                 .threads = threads};
    if (Nk > 0) mat_run(&J, BH * J.nrb, mat_fwd_item); /* no keys: O stays 0 */
    heed_tensor *in[4] = {q, k, v, bias}, *out[2] = {o, w};
    heed_node *n = heed_record(g, &op_materialised, bias ? 4 : 3, in, weights ? 2 : 1, out);
    if (n) {
        mat_saved *sv = heed_graph_alloc(g, sizeof *sv);
        if (sv) *sv = (mat_saved){.plan = *P, .W = w->data, .A = A};
        n->saved = sv;
    }
    if (!heed_graph_ok(g)) return NULL;
    if (weights) *weights = w;
    return o;
}

/* ---------------------------------------------------------------- entry point */

heed_tensor *heed_attention(heed_graph *g, heed_tensor *q, heed_tensor *k, heed_tensor *v,
                            const heed_attention_opts *opts, heed_tensor **weights) {
    const char *op = "heed_attention";
    heed_attention_opts o = opts ? *opts : (heed_attention_opts){0};
    if (weights) *weights = NULL;
    if (!heed_check_tensor(g, op, q, "q") || !heed__check_like(g, op, k, "k", q) || !heed__check_like(g, op, v, "v", q))
        return NULL;
    if (o.bias && !heed__check_like(g, op, o.bias, "bias", q)) return NULL;
    if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: q%s, k%s, v%s: q, k, v must be 4-D [B, H, N, d]", op, HEED_S(q),
                               HEED_S(k), HEED_S(v)),
               NULL;
    attn_plan P = {.B = q->shape[0],
                   .H = q->shape[1],
                   .Nq = q->shape[2],
                   .d = q->shape[3],
                   .Nk = k->shape[2],
                   .dv = v->shape[3],
                   .causal = o.causal,
                   .block_q = o.block_q,
                   .block_k = o.block_k};
    if (k->shape[0] != P.B || k->shape[1] != P.H || v->shape[0] != P.B || v->shape[1] != P.H)
        return heed_graph_fail(g, HEED_ERR_SHAPE,
                               "%s: q%s, k%s, v%s: batch and head dims (the first two) must be equal", op, HEED_S(q),
                               HEED_S(k), HEED_S(v)),
               NULL;
    if (k->shape[3] != P.d)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: q%s, k%s: q and k must have the same head dim d", op, HEED_S(q),
                               HEED_S(k)),
               NULL;
    if (v->shape[2] != P.Nk)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: k%s, v%s: k and v must have the same number of keys", op,
                               HEED_S(k), HEED_S(v)),
               NULL;
    if (P.d < 1 || P.dv < 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: q%s, v%s: head dims must be >= 1", op, HEED_S(q), HEED_S(v)),
               NULL;
    if (!isfinite(o.scale))
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: scale = %g (must be finite; 0 means 1/sqrt(d))", op, o.scale),
               NULL;
    P.scale = o.scale != 0 ? o.scale : 1 / sqrt((double)P.d);
    if (!attn_pattern_setup(g, op, &o, &P)) return NULL;
    if (!(o.dropout >= 0 && o.dropout < 1))
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: dropout = %g (must be in [0, 1))", op, o.dropout), NULL;
    if (o.impl != HEED_ATTN_AUTO && o.impl != HEED_ATTN_MATERIALISED && o.impl != HEED_ATTN_FLASH)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: impl = %d is not a heed_attn_impl", op, (int)o.impl), NULL;
    if (o.block_q < 0 || o.block_q > 1024 || o.block_k < 0 || o.block_k > 1024)
        return heed_graph_fail(g, HEED_ERR_ARG,
                               "%s: block_q = %d, block_k = %d (tiles must be in [1, 1024]; 0 = default)", op,
                               o.block_q, o.block_k),
               NULL;
    if (o.impl == HEED_ATTN_FLASH && weights)
        return heed_graph_fail(g, HEED_ERR_ARG,
                               "%s: weights were requested with impl = HEED_ATTN_FLASH (flash never forms them; use "
                               "HEED_ATTN_MATERIALISED or AUTO)",
                               op),
               NULL;
    if (o.key_lengths) {
        int64_t *len = heed_graph_alloc(g, (size_t)P.B * sizeof *len + 1);
        if (!len) return NULL;
        for (int64_t b = 0; b < P.B; b++) {
            if (o.key_lengths[b] < 0 || o.key_lengths[b] > P.Nk)
                return heed_graph_fail(g, HEED_ERR_ARG, "%s: key_lengths[%lld] = %lld (must be in [0, Nk = %lld])", op,
                                       (long long)b, (long long)o.key_lengths[b], (long long)P.Nk),
                       NULL;
            len[b] = o.key_lengths[b];
        }
        P.lengths = len;
    }
    if (o.bias) {
        heed_tensor *bs = o.bias;
        const int64_t full[4] = {P.B, P.H, P.Nq, P.Nk};
        bool ok = bs->ndim <= 4;
        int64_t stride = 1;
        for (int a = 3; ok && a >= 0; a--) {
            int ba = a - (4 - bs->ndim); /* bias dim aligned with dim a, < 0 if missing */
            int64_t n = ba >= 0 ? bs->shape[ba] : 1;
            ok = n == 1 || n == full[a];
            P.bstride[a] = n == 1 ? 0 : stride;
            stride *= n;
        }
        if (!ok)
            return heed_graph_fail(
                       g, HEED_ERR_SHAPE,
                       "%s: bias%s does not broadcast to [B,H,Nq,Nk] = [%lld,%lld,%lld,%lld] (each dim must be 1 "
                       "or equal, aligned at the right)",
                       op, HEED_S(bs), (long long)P.B, (long long)P.H, (long long)P.Nq, (long long)P.Nk),
                   NULL;
        P.bias = bs->data;
    }
    P.p = o.dropout;
    P.dropout = g->training && o.dropout > 0;
    if (P.dropout) {
        P.seed = g->ctx->seed;
        P.stream = heed__next_stream(g->ctx);
    }
    bool materialise = o.impl == HEED_ATTN_MATERIALISED || (o.impl == HEED_ATTN_AUTO && weights);
    return materialise ? attn_materialised(g, q, k, v, o.bias, &P, weights) : attn_flash(g, q, k, v, o.bias, &P);
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

static void FN(mat_fwd_item_kernel)(const mat_job *J, const attn_plan *P, int64_t bh, int64_t Nq, int64_t i0,
                                    int64_t Nk, int64_t mq, int64_t d, int64_t b, int64_t h, uint32_t thr, int64_t dv) {
    const FN(flash_kernels) *K = FN(flash_table)();
    const T *Q = J->q, *Kd = J->k, *V = J->v, *bias = J->bias;
    T *W = J->W, *Ad = J->A, *O = J->O, zs = (T)(1 / (1 - P->p));
    T c = (T)(P->scale * M_LOG2E), bmul = (T)M_LOG2E;
    T *Wr = W + (bh * Nq + i0) * Nk;
    heed_gemm(J->dt, false, true, mq, Nk, d, 1, Q + (bh * Nq + i0) * d, d, Kd + bh * Nk * d, d, 0, Wr, Nk);
    for (int64_t r = 0; r < mq; r++) {
        int64_t i = i0 + r, lo, hi;
        attn_row_keys(P, b, i, &lo, &hi);
        T *row = Wr + r * Nk, m = -INFINITY, l = 0;
        if (P->pat.on) { /* the keys of the pattern inside [lo, hi); the others get the score of weight 0 */
            unsigned char *vis = J->vis + (size_t)omp_get_thread_num() * (size_t)Nk, holes;
            int64_t span_lo, span_hi;
            attn_pattern_tile(P, h, i, 1, 0, Nk, &lo, &hi,
                              &(attn_tile_rows){.vis = vis, .holes = &holes, .lo = &span_lo, .hi = &span_hi});
            lo = span_lo, hi = span_hi;
            for (int64_t j = lo; holes && j < hi; j++)
                if (!vis[j]) row[j] = c > 0 ? -INFINITY : INFINITY;
        }
        const T *brow = bias ? bias + attn_bias_at(P, b, h, i, 0) : NULL;
        K->row_fwd(row, Nk, lo, hi, c, brow, P->bstride[3], bmul, &m, &l);
        T inv = l > 0 ? 1 / l : 0; /* l == 0: fully masked, the row is already 0 */
        for (int64_t j = lo; j < hi; j++) row[j] *= inv;
        if (Ad) {
            unsigned char *kp = J->keep + (bh * Nq + i) * Nk;
            attn_keep(P->seed, P->stream, (uint64_t)((bh * Nq + i) * Nk), Nk, thr, kp);
            T *arow = Ad + (bh * Nq + i) * Nk;
            for (int64_t j = 0; j < Nk; j++) arow[j] = kp[j] ? row[j] * zs : 0;
        }
    }
    heed_gemm(J->dt, false, false, mq, dv, Nk, 1, (Ad ? Ad : W) + (bh * Nq + i0) * Nk, Nk, V + bh * Nk * dv, dv, 0,
              O + (bh * Nq + i0) * dv, dv);
}

static void FN(mat_bwd_rows_kernel)(const mat_job *J, int64_t bh, int64_t Nq, int64_t i0, int64_t Nk,
                                    const attn_plan *P, int64_t mq, int64_t dv, uint32_t thr, int64_t d) {
    const T *Kd = J->k, *V = J->v, *Wp = J->W, *dO = J->dO, *dW = J->dW;
    T *Sr = (T *)J->dS + (bh * Nq + i0) * Nk, zs = (T)(1 / (1 - P->p));
    heed_gemm(J->dt, false, true, mq, Nk, dv, 1, dO + (bh * Nq + i0) * dv, dv, V + bh * Nk * dv, dv, 0, Sr, Nk);
    for (int64_t r = 0; r < mq; r++) {
        int64_t row = bh * Nq + i0 + r;
        T *s = Sr + r * Nk, D = 0;
        const T *p = Wp + row * Nk, *dw = dW ? dW + row * Nk : NULL;
        unsigned char *kp = J->keep ? J->keep + row * Nk : NULL;
        if (kp) attn_keep(P->seed, P->stream, (uint64_t)(row * Nk), Nk, thr, kp);
        for (int64_t j = 0; j < Nk; j++) {
            s[j] = (kp ? (kp[j] ? s[j] * zs : 0) : s[j]) + (dw ? dw[j] : 0);
            D += p[j] * s[j];
        }
        for (int64_t j = 0; j < Nk; j++) s[j] = p[j] * (s[j] - D);
    }
    if (J->gq)
        heed_gemm(J->dt, false, false, mq, d, Nk, P->scale, Sr, Nk, Kd + bh * Nk * d, d, 1,
                  (T *)J->gq + (bh * Nq + i0) * d, d);
}

static void FN(mat_backward_kernel)(void *gb, void *dS, int64_t BH, int64_t Nq, int64_t Nk, const attn_plan *P,
                                    int64_t H) {
    T *G = gb;
    const T *S = dS;
    for (int64_t bh = 0; bh < BH; bh++)
        for (int64_t i = 0; i < Nq; i++)
            for (int64_t j = 0; j < Nk; j++) G[attn_bias_at(P, bh / H, bh % H, i, j)] += S[(bh * Nq + i) * Nk + j];
}
#endif
