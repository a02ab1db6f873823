/* heed: The gradient checker. Part of the public API: <heed.h> includes every part; a
 * file may include just the parts it uses. */
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

/* Zero-initialised (or NULL) means the defaults (core.h, "options structs"). */
typedef struct {
    double eps; /* the central difference's step: 1e-6 (PyTorch gradcheck's) */
    /* The absolute tolerance. Left 0 it is automatic: PyTorch's 1e-5 times the largest
     * |numeric| derivative checked, clamped to [1e-3, 1] -- so gradients far below 1 are
     * not all within atol of any answer (docs/guide.md). Any other value is used as given
     * (HEED_ZERO for 0). */
    double atol;
    double rtol;            /* 1e-3 (PyTorch gradcheck's) */
    heed_params *params;    /* also check every parameter of this (f64) store */
    int64_t max_per_tensor; /* check at most this many elements per tensor (0 = all) */
    uint64_t seed;          /* for random inputs, sampled elements, the cotangent */
} heed_gradcheck_opts;

typedef struct {
    bool passed;
    int64_t checked; /* elements compared */
    /* The element with the largest error relative to its tolerance: */
    char worst_name[64];      /* "input 3" or the parameter name */
    int64_t worst_index;      /* its flat index */
    double analytic, numeric; /* its two derivatives */
    double worst_diff;        /* |analytic - numeric| there */
    double worst_ratio;       /* worst_diff / (atol + rtol |numeric|): passed when <= 1 (inf: NaN or Inf met) */
    double atol;              /* the absolute tolerance used */
    double max_grad;          /* the largest |numeric| derivative checked */
    bool weak;                /* max_grad < atol: any gradient that small passes (the report warns) */
    char report[400];
} heed_gradcheck_result;

/* The output is projected onto a fixed random cotangent r (loss = sum(r * out)); every
 * element of every input (and parameter) is compared: analytic d loss/d x_i from
 * backward against (loss(x_i + eps) - loss(x_i - eps)) / (2 eps), in f64. The check
 * passes when |a - n| <= atol + rtol*|n| everywhere. Op randomness (dropout) is replayed
 * identically for every evaluation. Returns HEED_OK, HEED_ERR_GRADCHECK on a mismatch, or
 * the error the function raised (message in heed_ctx_error); bad options are HEED_ERR_ARG. */
heed_status heed_gradcheck(heed_ctx *ctx, heed_gradcheck_fn f, void *user, int n_inputs,
                           const heed_gradcheck_input *inputs, const heed_gradcheck_opts *opts,
                           heed_gradcheck_result *result);

#ifdef __cplusplus
}
#endif
#endif
