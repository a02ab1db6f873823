/* The Adagrad update for one element type T, the body of adagrad.c's kernel: built
 * for f64, f32, f32 on AVX2 + FMA and f32 on AVX-512F by kernel_builds.h (FN names the build). */

OPT_TARGET static void FN(update)(OPT_KERNEL_PARAMS) {
    const double decay = 1 + (double)(t - 1) * o->lr_decay;
    T *restrict p = heed_params_values(o->P);
    const T *restrict g = heed_params_grads(o->P);
    T *restrict sum = o->state[0];
    const T eps = (T)o->eps;

#pragma omp parallel for schedule(dynamic, 2) if (opt_chunks_total(chunks, n) >= OPT_PARALLEL_MIN)                     \
    num_threads(heed_ctx_threads_now(heed_params_ctx(o->P)))
    for (int64_t k = 0; k < n; k++) {
        const opt_chunk *c = &chunks[k];
        const T clr = (T)(gs[c->group].lr / decay), wd = (T)gs[c->group].wd;
#pragma omp simd
        for (int64_t i = c->begin; i < c->end; i++) {
            T gi = g[i] + wd * p[i];
            T si = sum[i] + gi * gi;
            sum[i] = si;
            p[i] -= clr * (gi / (sqrt(si) + eps));
        }
    }
}
