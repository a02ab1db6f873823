/* The RMSprop update for one element type T, the body of rmsprop.c's kernel: built
 * for f64, f32, f32 on AVX2 + FMA and f32 on AVX-512F by kernel_builds.h (FN names the build). */

OPT_TARGET static void FN(update)(OPT_KERNEL_PARAMS) {
    const bool centered = o->centered, use_mom = o->momentum > 0;
    T *restrict p = heed_params_values(o->P);
    const T *restrict g = heed_params_grads(o->P);
    T *restrict sq = o->state[0];
    T *restrict buf = use_mom ? o->state[1] : NULL;
    T *restrict avg = centered ? o->state[use_mom ? 2 : 1] : NULL;
    const T alpha = (T)o->alpha, one_alpha = (T)(1 - o->alpha), eps = (T)o->eps, mu = (T)o->momentum;

#pragma omp parallel for schedule(dynamic, 2) if (opt_chunks_total(chunks, n) >= OPT_PARALLEL_MIN)                     \
    num_threads(heed_ctx_threads_now(heed_params_ctx(o->P)))
    for (int64_t k = 0; k < n; k++) {
        const opt_chunk *c = &chunks[k];
        const T lr = (T)gs[c->group].lr, wd = (T)gs[c->group].wd;
        const int64_t b = c->begin, e = c->end;
        /* four loops so each stays branch-free and vectorises */
        if (!centered && !use_mom) {
#pragma omp simd
            for (int64_t i = b; i < e; i++) {
                T gi = g[i] + wd * p[i];
                T si = alpha * sq[i] + one_alpha * gi * gi;
                sq[i] = si;
                p[i] -= lr * (gi / (sqrt(si) + eps));
            }
        } else if (!centered) {
#pragma omp simd
            for (int64_t i = b; i < e; i++) {
                T gi = g[i] + wd * p[i];
                T si = alpha * sq[i] + one_alpha * gi * gi;
                T bi = mu * buf[i] + gi / (sqrt(si) + eps);
                sq[i] = si;
                buf[i] = bi;
                p[i] -= lr * bi;
            }
        } else if (!use_mom) {
#pragma omp simd
            for (int64_t i = b; i < e; i++) {
                T gi = g[i] + wd * p[i];
                T si = alpha * sq[i] + one_alpha * gi * gi;
                T ai = alpha * avg[i] + one_alpha * gi;
                sq[i] = si;
                avg[i] = ai;
                p[i] -= lr * (gi / (sqrt(si - ai * ai) + eps));
            }
        } else {
#pragma omp simd
            for (int64_t i = b; i < e; i++) {
                T gi = g[i] + wd * p[i];
                T si = alpha * sq[i] + one_alpha * gi * gi;
                T ai = alpha * avg[i] + one_alpha * gi;
                T bi = mu * buf[i] + gi / (sqrt(si - ai * ai) + eps);
                sq[i] = si;
                avg[i] = ai;
                buf[i] = bi;
                p[i] -= lr * bi;
            }
        }
    }
}
