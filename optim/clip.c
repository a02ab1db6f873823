/* Passes over the flat gradient buffer: scaling (gradient accumulation), the non-finite
 * check, the global norm, and clipping by norm or by value. Each is one threaded,
 * vectorised loop over the whole store; sums accumulate in double. */
#include "optim_internal.h"

#include <math.h>

#define PAR_MIN 65536 /* elements below which a pass stays on one thread */

heed_status heed_params_scale_grad(heed_params *P, double s) {
    if (!P) return HEED_ERR_ARG;
    if (!isfinite(s))
        return heed_ctx_fail(heed_params_ctx(P), HEED_ERR_ARG, "heed_params_scale_grad: s = %g (must be finite)", s);
    int64_t n = heed_params_padded_numel(P);
    if (n == 0 || s == 1) return HEED_OK;
    HEED_FOR_DTYPE(heed_params_dtype(P), T, {
        T *g = heed_params_grads(P);
        const T k = (T)s;
        _Pragma("omp parallel for simd schedule(static) if (n >= PAR_MIN) num_threads(heed__threads_now(heed_params_ctx(P)))")
        for (int64_t i = 0; i < n; i++) g[i] *= k;
    });
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

#define BLOCK_SUM(T, ACC, g, n, bs, nb, EXPR, partial, threads)                              \
    do {                                                                                     \
        int block_sum_threads_ = (threads);                                                  \
        _Pragma("omp parallel for schedule(dynamic, 4) if (n >= PAR_MIN) num_threads(block_sum_threads_)") \
        for (int64_t blk = 0; blk < nb; blk++) {                                             \
            int64_t b = blk * bs, e = b + bs < n ? b + bs : n, i = b;                        \
            ACC acc[8] = {0};                                                                \
            for (; i + 8 <= e; i += 8)                                                       \
                for (int k = 0; k < 8; k++) {                                                \
                    T x = g[i + k];                                                          \
                    acc[k] += EXPR;                                                          \
                }                                                                            \
            for (; i < e; i++) {                                                             \
                T x = g[i];                                                                  \
                acc[0] += EXPR;                                                              \
            }                                                                                \
            partial[blk] = (double)(((acc[0] + acc[1]) + (acc[2] + acc[3])) +                \
                                    ((acc[4] + acc[5]) + (acc[6] + acc[7])));                \
        }                                                                                    \
    } while (0)

/* The ordered sum of the block sums. */
static double sum_blocks(const heed_params *P, bool squares) {
    int64_t n = heed_params_padded_numel(P);
    int64_t bs = n > SUM_BLOCK * MAX_BLOCKS ? (n + MAX_BLOCKS - 1) / MAX_BLOCKS : SUM_BLOCK, nb = (n + bs - 1) / bs;
    double partial[MAX_BLOCKS];
    HEED_FOR_DTYPE(heed_params_dtype(P), T, {
        const T *g = heed_params_grads((heed_params *)P);
        int nt = heed__threads_now(heed_params_ctx(P));
        if (squares) BLOCK_SUM(T, double, g, n, bs, nb, (double)x * (double)x, partial, nt);
        else BLOCK_SUM(T, T, g, n, bs, nb, x * 0, partial, nt);
    });
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
        return heed_ctx_fail(heed_params_ctx(P), HEED_ERR_ARG, "heed_clip_grad_norm: max_norm = %g (must be finite and > 0)",
                             max_norm);
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
        return heed_ctx_fail(heed_params_ctx(P), HEED_ERR_ARG, "heed_clip_grad_value: clip = %g (must be finite and >= 0)",
                             clip);
    int64_t n = heed_params_padded_numel(P);
    HEED_FOR_DTYPE(heed_params_dtype(P), T, {
        T *g = heed_params_grads(P);
        const T hi = (T)clip, lo = -(T)clip;
        /* NaN fails both comparisons and is kept, as torch.clamp keeps it */
        _Pragma("omp parallel for simd schedule(static) if (n >= PAR_MIN) num_threads(heed__threads_now(heed_params_ctx(P)))")
        for (int64_t i = 0; i < n; i++) g[i] = g[i] > hi ? hi : g[i] < lo ? lo : g[i];
    });
    return HEED_OK;
}
