/* The kernels of attention.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: attention.c. */

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
