/* The gradient passes of clip.c for one element type, included by it once with T = float
 * and once with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). The two block sums are the same loop with a different summand and
 * accumulator: see sum_blocks in clip.c for the blocks and why there are eight partial
 * sums. */

static void FN(scale)(T *g, int64_t n, T k, int threads) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN) num_threads(threads)
    for (int64_t i = 0; i < n; i++) g[i] *= k;
}

/* partial[blk] = sum of x^2 over block blk, in double. */
static void FN(block_sums_of_squares)(const T *g, int64_t n, int64_t bs, int64_t nb, double *partial, int threads) {
#pragma omp parallel for schedule(dynamic, 4) if (n >= PAR_MIN) num_threads(threads)
    for (int64_t blk = 0; blk < nb; blk++) {
        int64_t b = blk * bs, e = b + bs < n ? b + bs : n, i = b;
        double acc[8] = {0};
        for (; i + 8 <= e; i += 8)
            for (int k = 0; k < 8; k++) {
                T x = g[i + k];
                acc[k] += (double)x * (double)x;
            }
        for (; i < e; i++) {
            T x = g[i];
            acc[0] += (double)x * (double)x;
        }
        partial[blk] = (double)(((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
    }
}

/* partial[blk] = sum of x * 0 over block blk, in T: 0 when every x is finite, else NaN. */
static void FN(block_sums_times_zero)(const T *g, int64_t n, int64_t bs, int64_t nb, double *partial, int threads) {
#pragma omp parallel for schedule(dynamic, 4) if (n >= PAR_MIN) num_threads(threads)
    for (int64_t blk = 0; blk < nb; blk++) {
        int64_t b = blk * bs, e = b + bs < n ? b + bs : n, i = b;
        T acc[8] = {0};
        for (; i + 8 <= e; i += 8)
            for (int k = 0; k < 8; k++) {
                T x = g[i + k];
                acc[k] += x * 0;
            }
        for (; i < e; i++) {
            T x = g[i];
            acc[0] += x * 0;
        }
        partial[blk] = (double)(((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
    }
}

/* g = clamp(g, lo, hi); NaN fails both comparisons and is kept, as torch.clamp keeps it. */
static void FN(clamp)(T *g, int64_t n, T lo, T hi, int threads) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN) num_threads(threads)
    for (int64_t i = 0; i < n; i++) g[i] = g[i] > hi ? hi : g[i] < lo ? lo : g[i];
}
