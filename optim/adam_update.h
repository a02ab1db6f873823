/* The Adam and AdamW update for one element type T, the body of adam.c's kernel: built
 * for f64, f32, f32 on AVX2 + FMA and f32 on AVX-512F by kernel_builds.h (FN names the build). */

OPT_TARGET static void FN(update)(OPT_KERNEL_PARAMS) {
    const double b1 = o->beta1, b2 = o->beta2;
    const double bc1 = 1 - pow(b1, (double)t), bc2_sqrt = sqrt(1 - pow(b2, (double)t));
    const bool decoupled = o->kind == OPT_ADAMW, amsgrad = o->amsgrad;
    T *restrict p = heed_params_values(o->P);
    const T *restrict g = heed_params_grads(o->P);
    T *restrict m = o->state[0], *restrict v = o->state[1], *restrict vmax = amsgrad ? o->state[2] : NULL;
    const T beta1 = (T)b1, beta2 = (T)b2, one_b1 = (T)(1 - b1), one_b2 = (T)(1 - b2);
    const T eps = (T)o->eps, inv_bc2 = (T)bc2_sqrt;

#pragma omp parallel for schedule(dynamic, 2) if (opt_chunks_total(chunks, n) >= OPT_PARALLEL_MIN)                     \
    num_threads(heed_ctx_threads_now(heed_params_ctx(o->P)))
    for (int64_t k = 0; k < n; k++) {
        const opt_chunk *c = &chunks[k];
        const double lr = gs[c->group].lr, wd = gs[c->group].wd;
        const T step = (T)(lr / bc1);
        /* Adam adds wd * p to the gradient; AdamW scales p by (1 - lr wd) first */
        const T l2 = decoupled ? 0 : (T)wd, shrink = decoupled ? (T)(1 - lr * wd) : 1;
        const int64_t b = c->begin, e = c->end;
        if (!amsgrad) {
#pragma omp simd
            for (int64_t i = b; i < e; i++) {
                T pi = p[i] * shrink;
                T gi = g[i] + l2 * pi;
                T mi = beta1 * m[i] + one_b1 * gi;
                T vi = beta2 * v[i] + one_b2 * gi * gi;
                m[i] = mi;
                v[i] = vi;
                p[i] = pi - step * (mi / (sqrt(vi) / inv_bc2 + eps));
            }
        } else {
#pragma omp simd
            for (int64_t i = b; i < e; i++) {
                T pi = p[i] * shrink;
                T gi = g[i] + l2 * pi;
                T mi = beta1 * m[i] + one_b1 * gi;
                T vi = beta2 * v[i] + one_b2 * gi * gi;
                T vm = vi > vmax[i] ? vi : vmax[i];
                m[i] = mi;
                v[i] = vi;
                vmax[i] = vm;
                p[i] = pi - step * (mi / (sqrt(vm) / inv_bc2 + eps));
            }
        }
    }
}
