/* x[i] = tanh(x[i]) on f32 vectors (SLEEF, 1 ulp), built by scores.c once per ISA
 * (graph/simd.h: ISA is avx2 or avx512); the last n % VW elements through a masked vector. */
VTARGET static void VFN(tanh_f32)(float *x, int64_t n) {
    int64_t i = 0;
    for (; i + VW <= n; i += VW) V(store)(x + i, V(tanh)(V(load)(x + i)));
    if (i < n) V(storet)(x + i, n - i, V(tanh)(V(loadt)(x + i, n - i, V(zero)())));
}
/* sum_e a[e] b[e]: the f32 products (exact in f64) summed in f64 lanes, two accumulators
 * (the lower and upper halves of each vector), then the lanes; the tail through a zero-filled
 * masked vector. The order is fixed: the same sum every run and thread count. */
VTARGET static double VFN(dot_f64acc)(const float *a, const float *b, int64_t n) {
    VD s0 = V(zerod)(), s1 = V(zerod)();
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        VF x = V(load)(a + i), y = V(load)(b + i);
        s0 = V(fmaddd)(V(lo)(x), V(lo)(y), s0), s1 = V(fmaddd)(V(hi)(x), V(hi)(y), s1);
    }
    if (i < n) {
        VF x = V(loadt)(a + i, n - i, V(zero)()), y = V(loadt)(b + i, n - i, V(zero)());
        s0 = V(fmaddd)(V(lo)(x), V(lo)(y), s0), s1 = V(fmaddd)(V(hi)(x), V(hi)(y), s1);
    }
    return V(hsumd)(V(addd)(s0, s1));
}
/* y[i] += a x[i], multiply then add (no FMA: the scalar loop's roundings). */
VTARGET static void VFN(axpy_f32)(float *y, float a, const float *x, int64_t n) {
    VF va = V(set1)(a);
    int64_t i = 0;
    for (; i + VW <= n; i += VW) V(store)(y + i, V(add)(V(load)(y + i), V(mul)(va, V(load)(x + i))));
    for (; i < n; i++) y[i] += a * x[i];
}
