/* The kernels of dropout.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: dropout.c. */

static void FN(apply_mask_kernel)(const void *src, void *dst, double p, int64_t n, int threads, int64_t ngrp, bool avx2,
                                  uint64_t seed, uint64_t stream, const uint32_t *key, heed_dtype dt, bool accumulate,
                                  uint32_t threshold) {
    const T *x = src;
    T *y = dst;
    T scale = (T)(1.0 / (1.0 - p));
#pragma omp parallel for if (n > 32768) num_threads(threads)
    for (int64_t gi = 0; gi < ngrp; gi++) {
        uint32_t out[4][8];
        uint64_t b0 = (uint64_t)gi * 8;
        if (avx2 && (uint32_t)b0 <= UINT32_MAX - 7) philox8(seed, b0, stream, out);
        else
            for (int j = 0; j < 8; j++) {
                uint32_t o[4];
                uint64_t bb = b0 + (uint64_t)j;
                const uint32_t ctr[4] = {(uint32_t)bb, (uint32_t)(bb >> 32), (uint32_t)stream,
                                         (uint32_t)(stream >> 32)};
                heed_philox4x32(key, ctr, o);
                for (int w = 0; w < 4; w++) out[w][j] = o[w];
            }
        int64_t i0 = gi * 32, m = n - i0 < 32 ? n - i0 : 32;
        if (avx2 && dt == HEED_F32) {
            mask32_f32((const float *)x + i0, (float *)y + i0, m, accumulate, out, threshold, (float)scale);
            continue;
        }
        for (int64_t t = 0; t < m; t++) {
            T v = (out[t & 3][t >> 2] >> 8) >= threshold ? x[i0 + t] * scale : 0;
            y[i0 + t] = accumulate ? y[i0 + t] + v : v;
        }
    }
}
