/* Scaled dot-product attention: the entry point (validation, the plan, which
 * implementation) and the materialised implementation, which builds the whole
 * [B,H,Nq,Nk] weight matrix. The flash implementation is in flash_attention.c.
 *
 *   s_ij = scale q_i.k_j + bias_ij  (-inf where masked),  P = softmax_j(s),
 *   A = P z (dropout: z_ij = keep_ij / (1 - p)),  O = A V.
 *
 * Backward (per head; dW is the gradient of the returned weights, 0 if not returned):
 *   dV = A^T dO,  dA = dO V^T,  dP = dA z + dW,
 *   dS_ij = P_ij (dP_ij - sum_l P_il dP_il)   (softmax Jacobian),
 *   dQ = scale dS K,  dK = scale dS^T Q,  dbias = dS summed over the bias's broadcast dims.
 * A fully masked row has P = 0, hence O = 0 and dS = 0. */
#include "attention_internal.h"
#include "gemm.h"

#include <tgmath.h>

/* Rows per work item of the materialised path. */
enum { MAT_ROWS = 64 };

#define KERNELS(T) _Generic((T)0, float: flash_kernels_f32_get(), double: flash_kernels_f64_get())

typedef struct {
    attn_plan plan;
    void *W; /* softmax weights [B,H,Nq,Nk] (the weights output when returned) */
    void *A; /* weights after dropout, or NULL without dropout */
} mat_saved;

static void mat_backward(heed_graph *g, heed_node *n) {
    const mat_saved *sv = n->saved;
    const attn_plan *P = &sv->plan;
    heed_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *bias = n->n_in > 3 ? n->in[3] : NULL, *o = n->out[0];
    heed_tensor *w = n->n_out > 1 ? n->out[1] : NULL;
    void *gq = heed__grad(g, q), *gk = heed__grad(g, k), *gv = heed__grad(g, v), *gb = bias ? heed__grad(g, bias) : NULL;
    int64_t B = P->B, H = P->H, BH = B * H, Nq = P->Nq, Nk = P->Nk, d = P->d, dv = P->dv;
    size_t es = heed_dtype_size(q->dtype);
    void *dS = heed__alloc(g, (size_t)(BH * Nq * Nk) * es + 1);
    unsigned char *keep = P->dropout ? heed__alloc(g, (size_t)(BH * Nq * Nk) + 1) : NULL;
    if (!heed__live(g) || Nk == 0) return;
    int64_t nrb = (Nq + MAT_ROWS - 1) / MAT_ROWS, items = BH * nrb;
    uint32_t thr = attn_keep_threshold(P->p);
    HEED_FOR_DTYPE(q->dtype, T, {
        const T *Q = q->data, *Kd = k->data, *V = v->data, *Wp = sv->W, *dO = o->grad, *dW = w ? w->grad : NULL;
        const T *Ap = sv->A ? sv->A : sv->W;
        T *S = dS, zs = (T)(1 / (1 - P->p)), scale = (T)P->scale;
        /* Rows: dS and dQ. */
        _Pragma("omp parallel for schedule(dynamic) if (items > 1 && attn_parallel(P))")
        for (int64_t it = 0; it < items; it++) {
            int64_t bh = it / nrb, i0 = it % nrb * MAT_ROWS, mq = Nq - i0 < MAT_ROWS ? Nq - i0 : MAT_ROWS;
            T *Sr = S + (bh * Nq + i0) * Nk;
            heed_gemm(q->dtype, false, true, mq, Nk, dv, 1, dO + (bh * Nq + i0) * dv, dv, V + bh * Nk * dv, dv, 0, Sr, Nk);
            for (int64_t r = 0; r < mq; r++) {
                T *s = Sr + r * Nk;
                const T *p = Wp + (bh * Nq + i0 + r) * Nk, *dw = dW ? dW + (bh * Nq + i0 + r) * Nk : NULL;
                unsigned char *kp = keep ? keep + (bh * Nq + i0 + r) * Nk : NULL;
                if (kp) attn_keep(P->seed, P->stream, (uint64_t)((bh * Nq + i0 + r) * Nk), Nk, thr, kp);
                T D = 0;
                for (int64_t j = 0; j < Nk; j++) {
                    s[j] = (kp ? (kp[j] ? s[j] * zs : 0) : s[j]) + (dw ? dw[j] : 0);
                    D += p[j] * s[j];
                }
                for (int64_t j = 0; j < Nk; j++) s[j] = p[j] * (s[j] - D);
            }
            if (gq)
                heed_gemm(q->dtype, false, false, mq, d, Nk, scale, Sr, Nk, Kd + bh * Nk * d, d, 1,
                          (T *)gq + (bh * Nq + i0) * d, d);
        }
        /* Columns: dK and dV, one head per item. */
        _Pragma("omp parallel for schedule(static) if (BH > 1 && attn_parallel(P))")
        for (int64_t bh = 0; bh < BH; bh++) {
            if (gk)
                heed_gemm(q->dtype, true, false, Nk, d, Nq, scale, S + bh * Nq * Nk, Nk, Q + bh * Nq * d, d, 1,
                          (T *)gk + bh * Nk * d, d);
            if (gv)
                heed_gemm(q->dtype, true, false, Nk, dv, Nq, 1, Ap + bh * Nq * Nk, Nk, dO + bh * Nq * dv, dv, 1,
                          (T *)gv + bh * Nk * dv, dv);
        }
        if (gb) {
            T *G = gb;
            for (int64_t bh = 0; bh < BH; bh++)
                for (int64_t i = 0; i < Nq; i++)
                    for (int64_t j = 0; j < Nk; j++) G[attn_bias_at(P, bh / H, bh % H, i, j)] += S[(bh * Nq + i) * Nk + j];
        }
    });
}

static const heed_op op_materialised = {"heed_attention (materialised)", mat_backward};

heed_tensor *attn_materialised(heed_graph *g, heed_tensor *q, heed_tensor *k, heed_tensor *v, heed_tensor *bias,
                               const attn_plan *plan, heed_tensor **weights) {
    const char *op = "heed_attention";
    const attn_plan *P = plan;
    int64_t B = P->B, H = P->H, BH = B * H, Nq = P->Nq, Nk = P->Nk, d = P->d, dv = P->dv;
    int64_t wshape[4] = {B, H, Nq, Nk}, oshape[4] = {B, H, Nq, dv};
    heed_tensor *w = heed__new(g, op, q->dtype, 4, wshape), *o = heed__zeros(g, op, q->dtype, 4, oshape);
    size_t es = heed_dtype_size(q->dtype);
    void *A = P->dropout ? heed__alloc(g, (size_t)(BH * Nq * Nk) * es + 1) : NULL;
    unsigned char *keep = P->dropout ? heed__alloc(g, (size_t)(BH * Nq * Nk) + 1) : NULL;
    if (!heed__live(g)) return NULL;
    int64_t nrb = (Nq + MAT_ROWS - 1) / MAT_ROWS, items = Nk > 0 ? BH * nrb : 0;
    uint32_t thr = attn_keep_threshold(P->p);
    HEED_FOR_DTYPE(q->dtype, T, {
        __auto_type K = KERNELS(T);
        const T *Q = q->data, *Kd = k->data, *V = v->data, *bias_data = bias ? bias->data : NULL;
        T *W = w->data, *Ad = A, *O = o->data, zs = (T)(1 / (1 - P->p));
        /* Scores in base 2 like the flash kernels: t = log2(e) (scale q.k + bias), so the
         * row pass is the flash row kernel started from an empty running max and sum. */
        T c = (T)(P->scale * M_LOG2E), bmul = (T)M_LOG2E;
        _Pragma("omp parallel for schedule(dynamic) if (items > 1 && attn_parallel(P))")
        for (int64_t it = 0; it < items; it++) {
            int64_t bh = it / nrb, b = bh / H, h = bh % H, i0 = it % nrb * MAT_ROWS;
            int64_t mq = Nq - i0 < MAT_ROWS ? Nq - i0 : MAT_ROWS;
            T *Wr = W + (bh * Nq + i0) * Nk;
            heed_gemm(q->dtype, false, true, mq, Nk, d, 1, Q + (bh * Nq + i0) * d, d, Kd + bh * Nk * d, d, 0, Wr, Nk);
            for (int64_t r = 0; r < mq; r++) {
                int64_t i = i0 + r, lo, hi;
                attn_row_keys(P, b, i, &lo, &hi);
                T *row = Wr + r * Nk, m = -INFINITY, l = 0;
                const T *brow = bias_data ? bias_data + attn_bias_at(P, b, h, i, 0) : NULL;
                K->row_fwd(row, Nk, lo, hi, c, brow, P->bstride[3], bmul, &m, &l);
                T inv = l > 0 ? 1 / l : 0; /* l == 0: fully masked, the row is already 0 */
                for (int64_t j = lo; j < hi; j++) row[j] *= inv;
                if (Ad) {
                    unsigned char *kp = keep + (bh * Nq + i) * Nk;
                    attn_keep(P->seed, P->stream, (uint64_t)((bh * Nq + i) * Nk), Nk, thr, kp);
                    T *arow = Ad + (bh * Nq + i) * Nk;
                    for (int64_t j = 0; j < Nk; j++) arow[j] = kp[j] ? row[j] * zs : 0;
                }
            }
            heed_gemm(q->dtype, false, false, mq, dv, Nk, 1, (Ad ? Ad : W) + (bh * Nq + i0) * Nk, Nk, V + bh * Nk * dv,
                      dv, 0, O + (bh * Nq + i0) * dv, dv);
        }
    });
    heed_tensor *in[4] = {q, k, v, bias}, *out[2] = {o, w};
    heed_node *n = heed__record(g, &op_materialised, bias ? 4 : 3, in, weights ? 2 : 1, out);
    if (n) {
        mat_saved *sv = heed__alloc(g, sizeof *sv);
        if (sv) *sv = (mat_saved){.plan = *P, .W = w->data, .A = A};
        n->saved = sv;
    }
    if (!heed__live(g)) return NULL;
    if (weights) *weights = w;
    return o;
}

/* ---------------------------------------------------------------- entry point */

heed_tensor *heed_attention(heed_graph *g, heed_tensor *q, heed_tensor *k, heed_tensor *v,
                            const heed_attention_opts *opts) {
    const char *op = "heed_attention";
    heed_attention_opts o = opts ? *opts : (heed_attention_opts){0};
    if (o.weights) *o.weights = NULL;
    if (!heed__check(g, op, q, "q") || !heed__check_like(g, op, k, "k", q) || !heed__check_like(g, op, v, "v", q))
        return NULL;
    if (o.bias && !heed__check_like(g, op, o.bias, "bias", q)) return NULL;
    if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4)
        return heed__fail(g, HEED_ERR_SHAPE, "%s: q%s, k%s, v%s: q, k, v must be 4-D [B, H, N, d]", op, HEED_S(q),
                          HEED_S(k), HEED_S(v)),
               NULL;
    attn_plan P = {.B = q->shape[0], .H = q->shape[1], .Nq = q->shape[2], .d = q->shape[3], .Nk = k->shape[2],
                   .dv = v->shape[3], .causal = o.causal, .window = o.window, .block_q = o.block_q,
                   .block_k = o.block_k};
    if (k->shape[0] != P.B || k->shape[1] != P.H || v->shape[0] != P.B || v->shape[1] != P.H)
        return heed__fail(g, HEED_ERR_SHAPE, "%s: q%s, k%s, v%s: batch and head dims (the first two) must be equal", op,
                          HEED_S(q), HEED_S(k), HEED_S(v)),
               NULL;
    if (k->shape[3] != P.d)
        return heed__fail(g, HEED_ERR_SHAPE, "%s: q%s, k%s: q and k must have the same head dim d", op, HEED_S(q),
                          HEED_S(k)),
               NULL;
    if (v->shape[2] != P.Nk)
        return heed__fail(g, HEED_ERR_SHAPE, "%s: k%s, v%s: k and v must have the same number of keys", op, HEED_S(k),
                          HEED_S(v)),
               NULL;
    if (P.d < 1 || P.dv < 1)
        return heed__fail(g, HEED_ERR_SHAPE, "%s: q%s, v%s: head dims must be >= 1", op, HEED_S(q), HEED_S(v)), NULL;
    if (!isfinite(o.scale))
        return heed__fail(g, HEED_ERR_ARG, "%s: scale = %g (must be finite; 0 means 1/sqrt(d))", op, o.scale), NULL;
    P.scale = o.scale != 0 ? o.scale : 1 / sqrt((double)P.d);
    if (o.window < 0)
        return heed__fail(g, HEED_ERR_ARG, "%s: window = %lld (must be >= 0; 0 means none)", op, (long long)o.window),
               NULL;
    if (!(o.dropout >= 0 && o.dropout < 1))
        return heed__fail(g, HEED_ERR_ARG, "%s: dropout = %g (must be in [0, 1))", op, o.dropout), NULL;
    if (o.impl != HEED_ATTN_AUTO && o.impl != HEED_ATTN_MATERIALISED && o.impl != HEED_ATTN_FLASH)
        return heed__fail(g, HEED_ERR_ARG, "%s: impl = %d is not a heed_attn_impl", op, (int)o.impl), NULL;
    if (o.block_q < 0 || o.block_q > 1024 || o.block_k < 0 || o.block_k > 1024)
        return heed__fail(g, HEED_ERR_ARG, "%s: block_q = %d, block_k = %d (tiles must be in [1, 1024]; 0 = default)", op,
                          o.block_q, o.block_k),
               NULL;
    if (o.impl == HEED_ATTN_FLASH && o.weights)
        return heed__fail(g, HEED_ERR_ARG,
                          "%s: weights were requested with impl = HEED_ATTN_FLASH (flash never forms them; use "
                          "HEED_ATTN_MATERIALISED or AUTO)",
                          op),
               NULL;
    if (o.key_lengths) {
        int64_t *len = heed__alloc(g, (size_t)P.B * sizeof *len + 1);
        if (!len) return NULL;
        for (int64_t b = 0; b < P.B; b++) {
            if (o.key_lengths[b] < 0 || o.key_lengths[b] > P.Nk)
                return heed__fail(g, HEED_ERR_ARG, "%s: key_lengths[%lld] = %lld (must be in [0, Nk = %lld])", op,
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
            int ba = a - (4 - bs->ndim); /* bias axis aligned with axis a, < 0 if missing */
            int64_t n = ba >= 0 ? bs->shape[ba] : 1;
            ok = n == 1 || n == full[a];
            P.bstride[a] = n == 1 ? 0 : stride;
            stride *= n;
        }
        if (!ok)
            return heed__fail(g, HEED_ERR_SHAPE,
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
    bool materialise = o.impl == HEED_ATTN_MATERIALISED || (o.impl == HEED_ATTN_AUTO && o.weights);
    return materialise ? attn_materialised(g, q, k, v, o.bias, &P, o.weights) : attn_flash(g, q, k, v, o.bias, &P);
}
