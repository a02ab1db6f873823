/* The f32 layer-norm row kernels on vectors, built by norm.c once per ISA (graph/simd.h:
 * ISA is avx2 or avx512, V(op) the vector operations, VFN(name) the build's names). The
 * math of norm.c's scalar kernels; sums widened to double, the last n % VW elements scalar.
 * stats[0] = mean, stats[1] = rstd. gamma, beta may be NULL. */

VTARGET static void VFN(fwd_row)(const float *x, float *y, int64_t n, const float *gamma, const float *beta, double eps,
                                 double *stats) {
    int64_t full = n - n % VW, j;
    VD s0 = V(zerod)(), s1 = V(zerod)();
    for (j = 0; j < full; j += VW) {
        VF v = V(load)(x + j);
        s0 = V(addd)(s0, V(lo)(v)), s1 = V(addd)(s1, V(hi)(v));
    }
    double s = V(hsumd)(V(addd)(s0, s1));
    for (; j < n; j++) s += x[j];
    double mean = s / (double)n;
    const float mf = (float)mean;
    const VF vmean = V(set1)(mf);
    /* var from the centred values (two passes: no cancellation) */
    s0 = s1 = V(zerod)();
    for (j = 0; j < full; j += VW) {
        VF d = V(sub)(V(load)(x + j), vmean);
        VD dl = V(lo)(d), dh = V(hi)(d);
        s0 = V(fmaddd)(dl, dl, s0), s1 = V(fmaddd)(dh, dh, s1);
    }
    double v = V(hsumd)(V(addd)(s0, s1));
    for (; j < n; j++) v += ((double)x[j] - mf) * ((double)x[j] - mf);
    /* x - mf differs from x - mean by a constant c = mean - mf: sum (d - c)^2 = sum d^2 - n c^2 */
    double c = mean - mf;
    v -= (double)n * c * c;
    double rstd = 1 / sqrt(fmax(v, 0) / (double)n + eps);
    const float rf = (float)rstd;
    const VF vr = V(set1)(rf);
    for (j = 0; j < full; j += VW) {
        VF xh = V(mul)(V(sub)(V(load)(x + j), vmean), vr);
        if (gamma) xh = V(mul)(xh, V(load)(gamma + j));
        if (beta) xh = V(add)(xh, V(load)(beta + j));
        V(store)(y + j, xh);
    }
    for (; j < n; j++) {
        float xh = (x[j] - mf) * rf;
        y[j] = (gamma ? xh * gamma[j] : xh) + (beta ? beta[j] : 0);
    }
    stats[0] = mean, stats[1] = rstd;
}

/* q[0 .. VW) += the VW floats of v, widened to double */
VTARGET static inline void VFN(add_wide_to)(double *q, VF v) {
    V(stored)(q, V(addd)(V(loadd)(q), V(lo)(v)));
    V(stored)(q + VW / 2, V(addd)(V(loadd)(q + VW / 2), V(hi)(v)));
}

VTARGET static void VFN(bwd_row)(const float *x, const float *dy, float *dx, int64_t n, const float *gamma,
                                 const double *stats, double *pgamma, double *pbeta) {
    const float mf = (float)stats[0], rf = (float)stats[1];
    const VF vmean = V(set1)(mf), vr = V(set1)(rf);
    int64_t full = n - n % VW, j;
    VD a0 = V(zerod)(), a1 = a0, b0 = a0, b1 = a0;
    for (j = 0; j < full; j += VW) {
        VF xh = V(mul)(V(sub)(V(load)(x + j), vmean), vr);
        VF d = V(load)(dy + j);
        VF h = gamma ? V(mul)(d, V(load)(gamma + j)) : d;
        VD hl = V(lo)(h), hh = V(hi)(h);
        a0 = V(addd)(a0, hl), a1 = V(addd)(a1, hh);
        b0 = V(fmaddd)(hl, V(lo)(xh), b0), b1 = V(fmaddd)(hh, V(hi)(xh), b1);
        if (pgamma) VFN(add_wide_to)(pgamma + j, V(mul)(d, xh));
        if (pbeta) VFN(add_wide_to)(pbeta + j, d);
    }
    double a = V(hsumd)(V(addd)(a0, a1)), b = V(hsumd)(V(addd)(b0, b1));
    for (; j < n; j++) {
        float xh = (x[j] - mf) * rf, h = gamma ? dy[j] * gamma[j] : dy[j];
        a += h, b += (double)h * xh;
        if (pgamma) pgamma[j] += dy[j] * xh;
        if (pbeta) pbeta[j] += dy[j];
    }
    if (!dx) return;
    a /= (double)n, b /= (double)n;
    const VF va = V(set1)((float)a), vb = V(set1)((float)b);
    for (j = 0; j < full; j += VW) {
        VF xh = V(mul)(V(sub)(V(load)(x + j), vmean), vr);
        VF d = V(load)(dy + j);
        VF h = gamma ? V(mul)(d, V(load)(gamma + j)) : d;
        VF t = V(fnmadd)(xh, vb, V(sub)(h, va)); /* h - a - xh*b */
        V(store)(dx + j, V(fmadd)(vr, t, V(load)(dx + j)));
    }
    for (; j < n; j++) {
        float xh = (x[j] - mf) * rf, h = gamma ? dy[j] * gamma[j] : dy[j];
        dx[j] += rf * (h - (float)a - xh * (float)b);
    }
}

static const f32_row_kernels VFN(kernels) = {VFN(fwd_row), VFN(bwd_row)};
