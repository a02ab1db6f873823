/* The kernels of layer.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: layer.c. */

static void FN(drop_mask_kernel)(const void *in, void *out, double p, int64_t n, int threads, uint64_t seed,
                                 uint64_t stream) {
    const T *a = in;
    T *b = out, scale = (T)(1.0 / (1.0 - p));
#pragma omp parallel for if (n > 32768) schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; i++) b[i] = heed__uniform_at(seed, stream, (uint64_t)i) >= p ? a[i] * scale : 0;
}

static void FN(add_into_kernel)(void *dst, const void *src, int64_t n) {
    T *a = dst;
    const T *b = src;
    for (int64_t i = 0; i < n; i++) a[i] += b[i];
}
