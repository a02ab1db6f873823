/* Deterministic test inputs: element k of a tensor filled with salt s is 0.6 sin(1.3 k + s)
 * (the formula of tests/torch_rnn_reference.py), for tests that need no random numbers. */
#ifndef HEED_SIN_FILL_H
#define HEED_SIN_FILL_H

#include "heed/core.h"

#include <math.h>

/* A new tensor of the given shape filled from salt; grad: it requires a gradient. */
static inline heed_tensor *filled(heed_graph *g, heed_dtype dt, heed_shape shape, double salt, bool grad) {
    heed_tensor *t = heed_zeros(g, dt, shape);
    for (int64_t k = 0; t && k < t->numel; k++) {
        double x = 0.6 * sin(1.3 * (double)k + salt);
        if (dt == HEED_F32) ((float *)t->data)[k] = (float)x;
        else ((double *)t->data)[k] = x;
    }
    return grad && t ? heed_requires_grad(t) : t;
}

#endif
