/* Passes over the flat gradient buffer: scaling (gradient accumulation), the non-finite
 * check, the global norm, and clipping by norm or by value. Each is one threaded,
 * vectorised loop over the whole store; sums accumulate in double. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "optim_internal.h"

#include <math.h>

#define PAR_MIN 65536 /* elements below which a pass stays on one thread */

#define T float
#define FN(name) name##_f32
#include "clip.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "clip.c"
#undef T
#undef FN

heed_status heed_params_scale_grad(heed_params *P, double s) {
    if (!P) return HEED_ERR_ARG;
    if (!isfinite(s))
        return heed_ctx_fail(heed_params_ctx(P), HEED_ERR_ARG, "heed_params_scale_grad: s = %g (must be finite)", s);
    int64_t n = heed_params_padded_numel(P);
    if (n == 0 || s == 1) return HEED_OK;
    int threads = heed_ctx_threads_now(heed_params_ctx(P));
    if (heed_params_dtype(P) == HEED_F32) scale_f32(heed_params_grads(P), n, (float)s, threads);
    else scale_f64(heed_params_grads(P), n, s, threads);
    return HEED_OK;
}

/* Sums over the gradient buffer. The buffer is cut into blocks of SUM_BLOCK elements (of
 * n / MAX_BLOCKS elements past MAX_BLOCKS blocks, so the slots fit on the stack) that
 * threads take as they come (a thread that the OS delays does not hold the others up);
 * each block's sum lands in its own slot and the slots are added in order afterwards, so
 * the result is the same bits whatever the number of threads. Within a block, eight
 * independent partial sums (a fixed-size inner loop) let the compiler vectorise a
 * floating-point sum it may not reassociate itself. */
#define SUM_BLOCK 4096
#define MAX_BLOCKS 256

/* The ordered sum of the block sums. */
static double sum_blocks(const heed_params *P, bool squares) {
    int64_t n = heed_params_padded_numel(P);
    int64_t bs = n > SUM_BLOCK * MAX_BLOCKS ? (n + MAX_BLOCKS - 1) / MAX_BLOCKS : SUM_BLOCK, nb = (n + bs - 1) / bs;
    double partial[MAX_BLOCKS];
    const void *g = heed_params_grads((heed_params *)P);
    int nt = heed_ctx_threads_now(heed_params_ctx(P));
    bool f32 = heed_params_dtype(P) == HEED_F32;
    if (squares && f32) block_sums_of_squares_f32(g, n, bs, nb, partial, nt);
    else if (squares) block_sums_of_squares_f64(g, n, bs, nb, partial, nt);
    else if (f32) block_sums_times_zero_f32(g, n, bs, nb, partial, nt);
    else block_sums_times_zero_f64(g, n, bs, nb, partial, nt);
    double total = 0;
    for (int64_t b = 0; b < nb; b++) total += partial[b];
    return total;
}

/* x * 0 is 0 for finite x and NaN for NaN or +-Inf, and NaN survives any sum, so the sum
 * of g * 0 is 0 exactly when every g is finite -- a branch-free, vectorisable test. */
bool heed_params_grads_finite(const heed_params *P) {
    if (!P || heed_params_padded_numel(P) == 0) return true;
    return sum_blocks(P, false) == 0;
}

double heed_params_grad_norm(const heed_params *P) {
    if (!P || heed_params_padded_numel(P) == 0) return 0;
    return sqrt(sum_blocks(P, true));
}

heed_status heed_clip_grad_norm(heed_params *P, double max_norm, double *norm_out) {
    if (!P) return HEED_ERR_ARG;
    if (!(max_norm > 0) || isinf(max_norm))
        return heed_ctx_fail(heed_params_ctx(P), HEED_ERR_ARG,
                             "heed_clip_grad_norm: max_norm = %g (must be finite and > 0)", max_norm);
    double norm = heed_params_grad_norm(P);
    /* torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), applied when < 1 */
    double coef = max_norm / (norm + 1e-6);
    if (isfinite(norm) && coef < 1) heed_params_scale_grad(P, coef);
    if (norm_out) *norm_out = norm;
    return HEED_OK;
}

heed_status heed_clip_grad_value(heed_params *P, double clip) {
    if (!P) return HEED_ERR_ARG;
    if (!(clip >= 0) || isinf(clip))
        return heed_ctx_fail(heed_params_ctx(P), HEED_ERR_ARG,
                             "heed_clip_grad_value: clip = %g (must be finite and >= 0)", clip);
    int64_t n = heed_params_padded_numel(P);
    int threads = heed_ctx_threads_now(heed_params_ctx(P));
    if (heed_params_dtype(P) == HEED_F32) clamp_f32(heed_params_grads(P), n, -(float)clip, (float)clip, threads);
    else clamp_f64(heed_params_grads(P), n, -clip, clip, threads);
    return HEED_OK;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

/* The gradient passes. The two block sums are the same loop with a different summand and
 * accumulator: see sum_blocks above for the blocks and why there are eight partial sums. */

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
#endif
