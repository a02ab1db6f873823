/* The SGD update for one element type T, the body of sgd.c's kernel: built
 * for f64, f32, f32 on AVX2 + FMA and f32 on AVX-512F by kernel_builds.h (FN names the build). */

OPT_TARGET static void FN(update)(OPT_KERNEL_PARAMS) {
    T *restrict p = heed_params_values(o->P);
    const T *restrict g = heed_params_grads(o->P);
    T *restrict buf = o->n_state ? o->state[0] : NULL;
    const T mu = (T)o->momentum, keep = (T)(1 - o->dampening);
    const bool first = t == 1, nesterov = o->nesterov;

#pragma omp parallel for schedule(dynamic, 2) if (opt_chunks_total(chunks, n) >= OPT_PARALLEL_MIN)                     \
    num_threads(heed_ctx_threads_now(heed_params_ctx(o->P)))
    for (int64_t k = 0; k < n; k++) {
        const opt_chunk *c = &chunks[k];
        const T lr = (T)gs[c->group].lr, wd = (T)gs[c->group].wd;
        const int64_t b = c->begin, e = c->end;
        if (!buf) {
#pragma omp simd
            for (int64_t i = b; i < e; i++) p[i] -= lr * (g[i] + wd * p[i]);
        } else if (first) {
#pragma omp simd
            for (int64_t i = b; i < e; i++) {
                T d = g[i] + wd * p[i];
                buf[i] = d;
                p[i] -= lr * (nesterov ? d + mu * d : d);
            }
        } else if (nesterov) {
#pragma omp simd
            for (int64_t i = b; i < e; i++) {
                T d = g[i] + wd * p[i];
                T m = mu * buf[i] + keep * d;
                buf[i] = m;
                p[i] -= lr * (d + mu * m);
            }
        } else {
#pragma omp simd
            for (int64_t i = b; i < e; i++) {
                T m = mu * buf[i] + keep * (g[i] + wd * p[i]);
                buf[i] = m;
                p[i] -= lr * m;
            }
        }
    }
}
