/* x[i] = tanh(x[i]) on f32 vectors (SLEEF, 1 ulp), built by scores.c once per ISA
 * (graph/simd.h: ISA is avx2 or avx512); the last n % VW elements through a masked vector. */
VTARGET static void VFN(tanh_f32)(float *x, int64_t n) {
    int64_t i = 0;
    for (; i + VW <= n; i += VW) V(store)(x + i, V(tanh)(V(load)(x + i)));
    if (i < n) V(storet)(x + i, n - i, V(tanh)(V(loadt)(x + i, n - i, V(zero)())));
}
