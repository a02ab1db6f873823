/* Row kernels shared by softmax.c and loss.c. */
#ifndef HEED_ROWOPS_H
#define HEED_ROWOPS_H

#include "../graph/internal.h"

#include "simd.h"

/* log(sum_j exp(x_j)) over one row, computed as m + log(sum exp(x - m)) with m the row
 * max, the sum in double. -INFINITY entries count as masked; a fully masked (or empty)
 * row gives -INFINITY. If sum_x is non-NULL it receives sum_j x_j (in double). */
double heed__row_lse_f32(const float *x, int64_t n, double *sum_x);
double heed__row_lse_f64(const double *x, int64_t n, double *sum_x);

#endif
