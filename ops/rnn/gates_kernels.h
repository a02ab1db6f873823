/* The kernels of gates.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: gates.c. */

static void FN(fold_bias_kernel)(const void *b_ih, const void *b_hh, void *out, int G, int64_t H, heed_rnn_kind kind) {
    const T *bi = b_ih, *bh = b_hh;
    T *o = out;
    for (int64_t k = 0; k < G * H; k++) {
        /* the GRU's b_hn sits inside r * (W_hn h + b_hn): it cannot be folded */
        bool hidden_ok = kind == HEED_RNN_LSTM || k < 2 * H;
        o[k] = (bi ? bi[k] : 0) + (bh && hidden_ok ? bh[k] : 0);
    }
}

static void FN(colsum_add_kernel)(const void *m, void *out, int64_t cols, int64_t rows, int threads, int64_t ld) {
    const T *M = m;
    T *o = out;
    /* columns in blocks so each thread owns its sums; rows inner for cache reuse */
    int64_t nblk = (cols + 63) / 64;
#pragma omp parallel for if (rows * cols > 65536) schedule(static) num_threads(threads)
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t c0 = blk * 64, c1 = c0 + 64 < cols ? c0 + 64 : cols;
        double acc[64] = {0};
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = c0; c < c1; c++) acc[c - c0] += M[r * ld + c];
        for (int64_t c = c0; c < c1; c++) o[c] += (T)acc[c - c0];
    }
}
