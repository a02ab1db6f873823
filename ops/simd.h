/* AVX2 + SLEEF plumbing for the f32 kernels.
 *
 * The library is built for the baseline x86-64 ISA; AVX2/FMA kernels carry HEED_AVX2 and
 * are chosen at run time with heed__have_avx2(). SLEEF declares its __m256 functions only
 * when AVX is enabled, so its header is read under a temporary target. */
#ifndef HEED_SIMD_H
#define HEED_SIMD_H

#include <stdbool.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include <sleef.h>
#pragma GCC pop_options

#define HEED_AVX2 __attribute__((target("avx2,fma")))

/* True when the CPU runs AVX2 and FMA and the environment variable HEED_NO_AVX2 is not
 * set (the tests run the scalar kernels that way). Checked once. */
bool heed__have_avx2(void);

#endif
