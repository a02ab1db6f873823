/* The f32 softmax row kernels on vectors, built by softmax.c once per ISA (graph/simd.h:
 * ISA is avx2 or avx512, V(op) the vector operations, VFN(name) the build's names). The
 * math of softmax.c's scalar kernels with SLEEF's expf (1 ulp); sums widened to double. A row's
 * last n % VW elements go through one masked vector. */

/* acc += the VW floats of v, widened to double (two accumulators of VW/2). */
VTARGET static inline void VFN(add_wide)(VD *acc, VF v) {
    acc[0] = V(addd)(acc[0], V(lo)(v));
    acc[1] = V(addd)(acc[1], V(hi)(v));
}

VTARGET static inline double VFN(sum_wide)(const VD *acc) { return V(hsumd)(V(addd)(acc[0], acc[1])); }

VTARGET static void VFN(fwd_row)(const float *x, float *y, int64_t n, bool log_out) {
    const VF ninf = V(set1)(-INFINITY);
    int64_t full = n - n % VW, rem = n - full, j;
    VF vm = ninf;
    for (j = 0; j < full; j += VW) vm = V(max)(vm, V(load)(x + j));
    if (rem) vm = V(max)(vm, V(loadt)(x + j, rem, ninf));
    float m = V(hmax)(vm);
    if (m == -INFINITY) {
        masked_row_f32(x, y, n);
        return;
    }
    const VF vmax = V(set1)(m);
    VD acc[2] = {V(zerod)(), V(zerod)()};
    for (j = 0; j < full; j += VW) {
        VF e = V(exp)(V(sub)(V(load)(x + j), vmax));
        if (!log_out) V(store)(y + j, e);
        VFN(add_wide)(acc, e);
    }
    if (rem) {
        VF e = V(exp)(V(sub)(V(loadt)(x + j, rem, ninf), vmax)); /* 0 past the end */
        if (!log_out) V(storet)(y + j, rem, e);
        VFN(add_wide)(acc, e);
    }
    double s = VFN(sum_wide)(acc);
    if (log_out) {
        const VF ls = V(set1)((float)log(s));
        for (j = 0; j < full; j += VW) V(store)(y + j, V(sub)(V(sub)(V(load)(x + j), vmax), ls));
        if (rem) V(storet)(y + j, rem, V(sub)(V(sub)(V(loadt)(x + j, rem, vmax), vmax), ls));
    } else {
        const VF inv = V(set1)((float)(1 / s));
        for (j = 0; j < full; j += VW) V(store)(y + j, V(mul)(V(load)(y + j), inv));
        if (rem) V(storet)(y + j, rem, V(mul)(V(loadt)(y + j, rem, inv), inv));
    }
}

/* softmax: dx = y * (dy - sum(dy * y)) */
VTARGET static void VFN(bwd_softmax_row)(const float *y, const float *dy, float *dx, int64_t n) {
    int64_t full = n - n % VW, rem = n - full, j;
    const VF zero = V(zero)();
    VD acc[2] = {V(zerod)(), V(zerod)()};
    for (j = 0; j < full; j += VW) VFN(add_wide)(acc, V(mul)(V(load)(dy + j), V(load)(y + j)));
    if (rem) VFN(add_wide)(acc, V(mul)(V(loadt)(dy + j, rem, zero), V(loadt)(y + j, rem, zero)));
    const VF s = V(set1)((float)VFN(sum_wide)(acc));
    for (j = 0; j < full; j += VW)
        V(store)(dx + j, V(fmadd)(V(load)(y + j), V(sub)(V(load)(dy + j), s), V(load)(dx + j)));
    if (rem) {
        VF d = V(sub)(V(loadt)(dy + j, rem, zero), s);
        V(storet)(dx + j, rem, V(fmadd)(V(loadt)(y + j, rem, zero), d, V(loadt)(dx + j, rem, zero)));
    }
}

/* log_softmax: dx = dy - exp(y) * sum(dy) */
VTARGET static void VFN(bwd_log_softmax_row)(const float *x, const float *y, const float *dy, float *dx, int64_t n) {
    if (row_fully_masked_f32(x, n)) return;
    int64_t full = n - n % VW, rem = n - full, j;
    const VF zero = V(zero)();
    VD acc[2] = {V(zerod)(), V(zerod)()};
    for (j = 0; j < full; j += VW) VFN(add_wide)(acc, V(load)(dy + j));
    if (rem) VFN(add_wide)(acc, V(loadt)(dy + j, rem, zero));
    const VF s = V(set1)((float)VFN(sum_wide)(acc));
    for (j = 0; j < full; j += VW)
        V(store)(dx + j, V(fnmadd)(V(exp)(V(load)(y + j)), s, V(add)(V(load)(dx + j), V(load)(dy + j))));
    if (rem) {
        VF d = V(add)(V(loadt)(dx + j, rem, zero), V(loadt)(dy + j, rem, zero));
        V(storet)(dx + j, rem, V(fnmadd)(V(exp)(V(loadt)(y + j, rem, zero)), s, d));
    }
}

VTARGET static heed_row_lse VFN(row_lse)(const float *x, int64_t n, double *sum_x) {
    const VF ninf = V(set1)(-INFINITY);
    int64_t full = n - n % VW, rem = n - full, j;
    VF vm = ninf;
    VD sx[2] = {V(zerod)(), V(zerod)()};
    for (j = 0; j < full; j += VW) {
        VF v = V(load)(x + j);
        vm = V(max)(vm, v);
        VFN(add_wide)(sx, v);
    }
    if (rem) {
        vm = V(max)(vm, V(loadt)(x + j, rem, ninf));
        VFN(add_wide)(sx, V(loadt)(x + j, rem, V(zero)()));
    }
    double total = VFN(sum_wide)(sx);
    if (sum_x) *sum_x = total;
    float m = V(hmax)(vm);
    if (m == -INFINITY) return (heed_row_lse){total != total ? NAN : -INFINITY, 0}; /* NaN never wins the max */
    const VF vmax = V(set1)(m);
    VD acc[2] = {V(zerod)(), V(zerod)()};
    for (j = 0; j < full; j += VW) VFN(add_wide)(acc, V(exp)(V(sub)(V(load)(x + j), vmax)));
    if (rem) VFN(add_wide)(acc, V(exp)(V(sub)(V(loadt)(x + j, rem, ninf), vmax)));
    return (heed_row_lse){m, log(VFN(sum_wide)(acc))};
}

static const f32_row_kernels VFN(kernels) = {VFN(fwd_row), VFN(bwd_softmax_row), VFN(bwd_log_softmax_row),
                                             VFN(row_lse)};
