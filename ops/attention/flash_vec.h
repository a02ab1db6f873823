/* The f32 tile kernels of flash attention on vectors (contracts in internal.h), built by
 * flash_kernels.c once per ISA (graph/simd.h: ISA is avx2 or avx512, V(op) the vector
 * operations, VFN(name) the build's names).
 *  - gemm: a register-blocked micro-kernel of MR rows by 2 vectors (2 VW columns), one
 *    broadcast of A and two B vectors per k, the classic shape that keeps the FMA pipes
 *    busy: 6 x 16 with AVX2 (12 ymm accumulators of 16), 12 x 32 with AVX-512 (24 zmm
 *    of 32). With AVX-512 a panel of 16 columns (the tile width is a multiple of ATTN_NR
 *    = 16) takes the one-vector shape. A may be row-major (csa == 1) or transposed
 *    (rsa == 1); each gets its own loop so the addressing is one pointer bump per k.
 *  - exp2 from SLEEF (1 ulp); base 2 because log2(e) folds into the score scale for free. */

#if VW == 16
#define VMR 12
#else
#define VMR 6
#endif

/* C[mr x nv VW] (+)= alpha * A[mr x K] B[K x nv VW]. mr, nv and trans are constants at
 * every call site, so the compiler unrolls the loops and keeps the nv mr accumulators in
 * registers. */
static inline __attribute__((always_inline)) VTARGET void VFN(micro)(const int mr, const int nv, const bool trans,
                                                                     int64_t K, float alpha, const float *A,
                                                                     int64_t rsa, int64_t csa, const float *B,
                                                                     int64_t ldb, bool accumulate, float *C,
                                                                     int64_t ldc) {
    VF c[VMR][2];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++) c[r][v] = V(zero)();
    for (int64_t k = 0; k < K; k++, B += ldb) {
        VF b[2];
        for (int v = 0; v < nv; v++) b[v] = V(load)(B + v * VW);
        /* trans: A[r + k*csa], the mr values of one k adjacent; else A[r*rsa + k] */
        const float *ak = trans ? A + k * csa : A + k;
        for (int r = 0; r < mr; r++) {
            VF a = V(set1)(ak[trans ? r : r * rsa]);
            for (int v = 0; v < nv; v++) c[r][v] = V(fmadd)(a, b[v], c[r][v]);
        }
    }
    VF va = V(set1)(alpha);
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++) {
            float *cp = C + r * ldc + v * VW;
            V(store)(cp, accumulate ? V(fmadd)(va, c[r][v], V(load)(cp)) : V(mul)(va, c[r][v]));
        }
}

/* The micro-kernel for mr = 1 .. VMR rows, with constants for the compiler. */
static inline __attribute__((always_inline)) VTARGET void VFN(micro_rows)(int mr, const int nv, const bool trans,
                                                                          int64_t K, float alpha, const float *A,
                                                                          int64_t rsa, int64_t csa, const float *B,
                                                                          int64_t ldb, bool accumulate, float *C,
                                                                          int64_t ldc) {
#define VMICRO(R) VFN(micro)(R, nv, trans, K, alpha, A, rsa, csa, B, ldb, accumulate, C, ldc)
    switch (mr) {
#if VW == 16
    case 12: VMICRO(12); break;
    case 11: VMICRO(11); break;
    case 10: VMICRO(10); break;
    case 9: VMICRO(9); break;
    case 8: VMICRO(8); break;
    case 7: VMICRO(7); break;
#endif
    case 6: VMICRO(6); break;
    case 5: VMICRO(5); break;
    case 4: VMICRO(4); break;
    case 3: VMICRO(3); break;
    case 2: VMICRO(2); break;
    default: VMICRO(1); break;
    }
#undef VMICRO
}

/* Column panels of 2 VW outside (a last one of VW when N is not a multiple of 2 VW), row
 * strips of VMR inside: one K x 2 VW panel of B stays in L1 while A streams past it. */
static VTARGET void VFN(gemm)(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t rsa, int64_t csa,
                              const float *B, int64_t ldb, bool accumulate, float *C, int64_t ldc) {
    bool trans = csa != 1;
    for (int64_t jc = 0; jc < N; jc += 2 * VW) {
        bool two = N - jc >= 2 * VW;
        for (int64_t ir = 0; ir < M; ir += VMR) {
            int mr = M - ir < VMR ? (int)(M - ir) : VMR;
            const float *a = A + ir * rsa, *b = B + jc;
            float *c = C + ir * ldc + jc;
            if (two && trans) VFN(micro_rows)(mr, 2, true, K, alpha, a, rsa, csa, b, ldb, accumulate, c, ldc);
            else if (two) VFN(micro_rows)(mr, 2, false, K, alpha, a, rsa, csa, b, ldb, accumulate, c, ldc);
#if VW == 16
            else if (trans) VFN(micro_rows)(mr, 1, true, K, alpha, a, rsa, csa, b, ldb, accumulate, c, ldc);
            else VFN(micro_rows)(mr, 1, false, K, alpha, a, rsa, csa, b, ldb, accumulate, c, ldc);
#endif
        }
    }
}

/* t = s*c + bias*bmul for the VW entries at j (bias stride 0 or 1). */
static VTARGET inline VF VFN(score)(const float *s, const float *bias, int64_t bs, int64_t j, VF vc, VF vb) {
    VF t = V(mul)(V(load)(s + j), vc);
    if (bias) t = V(fmadd)(bs ? V(load)(bias + j) : V(set1)(bias[0]), vb, t);
    return t;
}

static VTARGET float VFN(row_fwd)(float *s, int64_t n, int64_t c0, int64_t c1, float c, const float *bias, int64_t bs,
                                  float bmul, float *m, float *l) {
    if (c0 >= c1) {
        memset(s, 0, (size_t)n * sizeof *s);
        return 1;
    }
    memset(s, 0, (size_t)c0 * sizeof *s);
    memset(s + c1, 0, (size_t)(n - c1) * sizeof *s);
    VF vc = V(set1)(c), vb = V(set1)(bmul), vmax = V(set1)(-INFINITY);
    int64_t j = c0;
    for (; j + VW <= c1; j += VW) {
        VF t = VFN(score)(s, bias, bs, j, vc, vb);
        V(store)(s + j, t);
        vmax = V(max)(vmax, t);
    }
    float mx = V(hmax)(vmax);
    for (; j < c1; j++) {
        s[j] = s[j] * c + (bias ? bias[j * bs] * bmul : 0);
        if (s[j] > mx) mx = s[j];
    }
    float mnew = *m > mx ? *m : mx;
    if (mnew == -INFINITY) {
        memset(s + c0, 0, (size_t)(c1 - c0) * sizeof *s);
        return 1;
    }
    VF vm = V(set1)(mnew), vsum = V(zero)();
    for (j = c0; j + VW <= c1; j += VW) {
        VF p = V(exp2)(V(sub)(V(load)(s + j), vm));
        V(store)(s + j, p);
        vsum = V(add)(vsum, p);
    }
    float sum = V(hsum)(vsum);
    for (; j < c1; j++) sum += s[j] = exp2f(s[j] - mnew);
    float alpha = exp2f(*m - mnew);
    *l = *l * alpha + sum;
    *m = mnew;
    return alpha;
}

static VTARGET void VFN(row_bwd)(float *s, float *da, int64_t n, int64_t c0, int64_t c1, float c, const float *bias,
                                 int64_t bs, float bmul, float m, float ls, float D, const float *z) {
    if (c0 > c1) c0 = c1;
    memset(s, 0, (size_t)c0 * sizeof *s);
    memset(da, 0, (size_t)c0 * sizeof *da);
    memset(s + c1, 0, (size_t)(n - c1) * sizeof *s);
    memset(da + c1, 0, (size_t)(n - c1) * sizeof *da);
    VF vc = V(set1)(c), vb = V(set1)(bmul), vm = V(set1)(m), vls = V(set1)(ls), vD = V(set1)(D);
    int64_t j = c0;
    for (; j + VW <= c1; j += VW) {
        VF p = V(exp2)(V(sub)(V(sub)(VFN(score)(s, bias, bs, j, vc, vb), vm), vls));
        VF g = V(load)(da + j);
        if (z) {
            VF vz = V(load)(z + j);
            V(store)(s + j, V(mul)(p, vz));
            V(store)(da + j, V(mul)(p, V(fmsub)(g, vz, vD)));
        } else {
            V(store)(s + j, p);
            V(store)(da + j, V(mul)(p, V(sub)(g, vD)));
        }
    }
    for (; j < c1; j++) {
        float t = s[j] * c + (bias ? bias[j * bs] * bmul : 0);
        float p = exp2f((t - m) - ls), zj = z ? z[j] : 1;
        s[j] = p * zj;
        da[j] = p * (da[j] * zj - D);
    }
}

/* The transpose is AVX2's 8 x 8 blocks for both ISAs (a small share of the time). */
static const flash_kernels_f32 VFN(f32) = {VFN(gemm), VFN(row_fwd), VFN(row_bwd), transpose_avx2};

#undef VMR
