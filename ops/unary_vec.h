/* The f32 unary kernels on vectors, built by unary.c once per ISA (graph/simd.h: ISA is
 * avx2 or avx512, V(op) the vector operations, VFN(name) the build's names): the formulas
 * of fwd1 and grad1 on VW floats with SLEEF's functions. */

/* sigmoid(2u) of gelu_tanh. */
VTARGET static inline VF VFN(vgelu_tanh_s)(VF x) {
    VF x3 = V(mul)(V(mul)(x, x), x);
    VF u = V(fmadd)(V(set1)((float)GELU_C), x3, x);
    return V(sigmoid)(V(mul)(V(set1)((float)(2 * SQRT_2_OVER_PI)), u));
}

/* Phi(x) = erfc(-x/sqrt2)/2 */
VTARGET static inline VF VFN(vphi_cdf)(VF x) {
    return V(mul)(V(set1)(0.5f), V(erfc)(V(mul)(x, V(set1)((float)-SQRT_HALF))));
}

VTARGET static inline VF VFN(vfwd)(unary_kind k, VF x, VF a) {
    const VF zero = V(zero)();
    switch (k) {
    case U_NEG: return V(neg)(x);
    case U_SCALE: return V(mul)(a, x);
    case U_ADD_SCALAR: return V(add)(x, a);
    case U_EXP: return V(exp)(x);
    case U_LOG: return V(log)(x);
    case U_SQRT: return V(sqrt)(x);
    case U_POW: return V(pow)(x, a);
    case U_RELU: return V(max)(zero, x); /* max returns its second operand for NaN */
    case U_LEAKY_RELU: return V(iflt)(x, zero, V(mul)(a, x), x);
    case U_GELU: return V(mul)(x, VFN(vphi_cdf)(x));
    case U_GELU_TANH: return V(mul)(x, VFN(vgelu_tanh_s)(x));
    case U_SIGMOID: return V(sigmoid)(x);
    case U_TANH: return V(tanh)(x);
    case U_SOFTPLUS: {
        VF z = V(exp)(V(neg)(V(abs)(x)));
        /* log1p(z) = z - z^2/2 + ... rounds to z below 2^-24; SLEEF's log1pf is a few
         * denormal steps off there, so take z itself */
        VF l = V(iflt)(z, V(set1)(0x1p-24f), z, V(log1p)(z));
        return V(add)(V(max)(x, zero), l);
    }
    default: return V(set1)(NAN);
    }
}

/* dy/dx, the same formulas as grad1. */
VTARGET static inline VF VFN(vgrad)(unary_kind k, VF x, VF y, VF a) {
    const VF zero = V(zero)(), one = V(set1)(1);
    switch (k) {
    case U_NEG: return V(set1)(-1);
    case U_SCALE: return a;
    case U_ADD_SCALAR: return one;
    case U_EXP: return y;
    case U_LOG: return V(div)(one, x);
    case U_SQRT: return V(div)(V(set1)(0.5f), y);
    case U_POW: return V(ifeq)(a, zero, zero, V(mul)(a, V(pow)(x, V(sub)(a, one))));
    case U_RELU: return V(ifgt)(x, zero, one, zero);
    case U_LEAKY_RELU: return V(ifgt)(x, zero, one, a);
    case U_GELU: {
        VF e = V(exp)(V(mul)(V(set1)(-0.5f), V(mul)(x, x)));
        return V(fmadd)(V(mul)(x, V(set1)((float)INV_SQRT_2PI)), e, VFN(vphi_cdf)(x));
    }
    case U_GELU_TANH: {
        VF s = VFN(vgelu_tanh_s)(x);
        VF du = V(mul)(V(set1)((float)(2 * SQRT_2_OVER_PI)), V(fmadd)(V(set1)((float)(3 * GELU_C)), V(mul)(x, x), one));
        return V(add)(s, V(mul)(V(mul)(x, du), V(mul)(s, V(sub)(one, s))));
    }
    case U_SIGMOID: return V(mul)(y, V(sub)(one, y));
    case U_TANH: return V(fnmadd)(y, y, one);
    case U_SOFTPLUS: return V(sigmoid)(x);
    default: return V(set1)(NAN);
    }
}

/* y[0..n) = f(x); the last n % VW elements go through a zero-padded vector so every
 * element takes the same path. */
VTARGET static void VFN(fwd)(unary_kind k, const float *x, float *y, int64_t n, float a) {
    const VF va = V(set1)(a);
    int64_t i = 0;
    for (; i + VW <= n; i += VW) V(store)(y + i, VFN(vfwd)(k, V(load)(x + i), va));
    if (i < n) V(storet)(y + i, n - i, VFN(vfwd)(k, V(loadt)(x + i, n - i, V(zero)()), va));
}

/* gx[0..n) += dy * f'(x, y). */
VTARGET static void VFN(bwd)(unary_kind k, const float *x, const float *y, const float *dy, float *gx, int64_t n,
                             float a) {
    const VF va = V(set1)(a), zero = V(zero)();
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        VF d = VFN(vgrad)(k, V(load)(x + i), V(load)(y + i), va);
        V(store)(gx + i, V(fmadd)(V(load)(dy + i), d, V(load)(gx + i)));
    }
    if (i < n) {
        int64_t r = n - i;
        VF d = VFN(vgrad)(k, V(loadt)(x + i, r, zero), V(loadt)(y + i, r, zero), va);
        V(storet)(gx + i, r, V(fmadd)(V(loadt)(dy + i, r, zero), d, V(loadt)(gx + i, r, zero)));
    }
}
