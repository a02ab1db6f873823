/* Row kernels shared by softmax.c and loss.c, and the AVX2 + SLEEF plumbing they use.
 *
 * SLEEF declares its __m256 functions only when __AVX__ is defined, so the header is
 * included under a temporary target("avx2,fma"); the library itself is still built for
 * the baseline ISA and AVX2 kernels are picked at run time (heed__have_avx2). */
#ifndef HEED_ROWOPS_H
#define HEED_ROWOPS_H

#include "../graph/internal.h"

#include <stdlib.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include <sleef.h>
#pragma GCC pop_options

#define HEED_AVX2 __attribute__((target("avx2,fma")))

/* True when the CPU runs AVX2 and FMA (checked once). Setting the environment variable
 * HEED_NO_AVX2 forces the scalar kernels (the tests run them that way too). */
static inline bool heed__have_avx2(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && !getenv("HEED_NO_AVX2");
    return cached;
}

/* log(sum_j exp(x_j)) over one row, computed as m + log(sum exp(x - m)) with m the row
 * max, the sum in double. -INFINITY entries count as masked; a fully masked (or empty)
 * row gives -INFINITY. If sum_x is non-NULL it receives sum_j x_j (in double). */
double heed__row_lse_f32(const float *x, int64_t n, double *sum_x);
double heed__row_lse_f64(const double *x, int64_t n, double *sum_x);

#endif
