/* Row kernels shared by softmax.c and loss.c. */
#ifndef HEED_ROWOPS_H
#define HEED_ROWOPS_H

#include "../graph/internal.h"

#include "../graph/simd.h"

/* The log-sum-exp of one row, kept as two parts: lse = max + logsum with max = max_j x_j
 * (an input value, so exact in the row's dtype) and logsum = log(sum_j exp(x_j - max)), in
 * [0, log n]. A caller that needs exp(x_j - lse) in f32 computes exp((x_j - max) - logsum):
 * x_j - max is exact (or tiny when it is not), and logsum is small, so its f32 rounding is
 * relative to log n and not to |lse| (at logits of 1e4 a rounded lse is off by up to 2^-11,
 * and every probability with it). The sum runs in double. -INFINITY entries count as
 * masked; a fully masked (or empty) row gives max = -INFINITY, logsum = 0; a row whose
 * only non-masked entries are NaN gives max = NaN. If sum_x is non-NULL it receives
 * sum_j x_j (in double). */
typedef struct {
    double max, logsum;
} heed_row_lse;

heed_row_lse heed__row_lse_f32(const float *x, int64_t n, double *sum_x);
heed_row_lse heed__row_lse_f64(const double *x, int64_t n, double *sum_x);

#endif
