/* heed: The gradient checker.
 * Part of the public API; include <heed.h>, not this file. */
#ifndef HEED_API_GRADCHECK_H
#define HEED_API_GRADCHECK_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- gradient checker */

/* Builds the function under test on g from the checker's inputs; returns any tensor. */
typedef heed_tensor *(*heed_gradcheck_fn)(heed_graph *g, heed_tensor **inputs, void *user);

typedef struct {
    heed_shape shape;
    const double *data; /* NULL: uniform(-1, 1) from the checker's seed */
    bool no_grad;       /* an input that is not checked (e.g. a target) */
} heed_gradcheck_input;

typedef struct {
    double eps, atol, rtol; /* 0 -> 1e-6, 1e-5, 1e-3 (PyTorch gradcheck's) */
    heed_params *params;    /* also check every parameter of this (f64) store */
    int64_t max_per_tensor; /* check at most this many elements per tensor (0 = all) */
    uint64_t seed;          /* for random inputs, sampled elements, the cotangent */
} heed_gradcheck_opts;

typedef struct {
    bool passed;
    int64_t checked;        /* elements compared */
    double worst_error;     /* max |analytic - numeric| - rtol*|numeric| over atol */
    char worst_name[64];    /* "input 0" or the parameter name */
    int64_t worst_index;
    double analytic, numeric; /* at the worst element */
    char report[256];
} heed_gradcheck_result;

/* The output is projected onto a fixed random cotangent r (loss = sum(r * out)); every
 * element of every input (and parameter) is compared: analytic d loss/d x_i from
 * backward against (loss(x_i + eps) - loss(x_i - eps)) / (2 eps), in f64. The check
 * passes when |a - n| <= atol + rtol*|n| everywhere. Op randomness (dropout) is replayed
 * identically for every evaluation. Returns HEED_OK, HEED_ERR_GRADCHECK on a mismatch, or
 * the error the function raised (message in heed_ctx_error). */
heed_status heed_gradcheck(heed_ctx *ctx, heed_gradcheck_fn f, void *user, int n_inputs,
                           const heed_gradcheck_input *inputs, const heed_gradcheck_opts *opts,
                           heed_gradcheck_result *result);

#ifdef __cplusplus
}
#endif
#endif
