/* Cross-entropy's f32 gradient row on vectors, built by loss.c once per ISA (graph/simd.h:
 * ISA is avx2 or avx512, V(op) the vector operations, VFN(name) the build's names).
 * dx_c += k * (exp((x_c - m) - logsum) - s/C); the caller then does dx_t -= k * (1 - s). */
VTARGET static void VFN(ce_grad_row)(const float *x, float *dx, int64_t c, float m, float logsum, float k, float off) {
    const VF vm = V(set1)(m), vls = V(set1)(logsum), vk = V(set1)(k), voff = V(set1)(off);
    int64_t j = 0;
    for (; j + VW <= c; j += VW) {
        VF p = V(exp)(V(sub)(V(sub)(V(load)(x + j), vm), vls));
        V(store)(dx + j, V(fmadd)(vk, V(sub)(p, voff), V(load)(dx + j)));
    }
    if (j < c) {
        VF p = V(exp)(V(sub)(V(sub)(V(loadt)(x + j, c - j, vm), vm), vls));
        V(storet)(dx + j, c - j, V(fmadd)(vk, V(sub)(p, voff), V(loadt)(dx + j, c - j, V(zero)())));
    }
}
