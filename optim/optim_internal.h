/* What the optimizer files share: the optimizer struct, its groups, and the chunked pass
 * over the parameter store's flat buffers. Not installed. */
#ifndef HEED_OPTIM_INTERNAL_H
#define HEED_OPTIM_INTERNAL_H

#include "../graph/internal.h"
#include "heed/optim.h"

typedef enum { OPT_SGD, OPT_ADAM, OPT_ADAMW, OPT_RMSPROP, OPT_ADAGRAD } opt_kind;

/* A parameter group: its rate is the base rate times lr_scale. */
typedef struct {
    double lr_scale, weight_decay;
} opt_group;

/* A piece of the flat buffers [begin, end) in one group: the unit of work of a step.
 * Pieces never span the alignment padding between parameters nor a frozen parameter, and
 * hold at most OPT_CHUNK elements so threads share big tensors and small ones alike. */
typedef struct {
    int64_t begin, end;
    int group;
} opt_chunk;

#define OPT_CHUNK 8192
#define OPT_MAX_STATE 3
/* Below this many elements a step runs on one thread (thread start-up costs more). */
#define OPT_PARALLEL_MIN 32768

/* Per-group numbers an update kernel needs at step t, computed once per step. */
typedef struct {
    double lr, wd;
} opt_group_step;

typedef struct heed_optimizer heed_optimizer;

/* Runs one update over chunks[0..n) of the flat buffers (f32 or f64 by o->dtype).
 * t is the 1-based number of this update. */
#define OPT_KERNEL_PARAMS heed_optimizer *o, int64_t t, const opt_group_step *gs, const opt_chunk *chunks, int64_t n
typedef void (*opt_kernel)(OPT_KERNEL_PARAMS);

struct heed_optimizer {
    opt_kind kind;
    const char *name;
    opt_kernel kernel;
    heed_params *P;
    heed_ctx *ctx;
    heed_dtype dtype;
    int64_t numel; /* the store's flat size when the optimizer was made */
    int n_params;  /* and its parameter count */
    double lr;     /* base rate */
    int64_t steps, skipped;
    /* hyper-parameters (each optimizer reads its own) */
    double momentum, dampening, beta1, beta2, eps, alpha, lr_decay, initial_accumulator;
    bool nesterov, amsgrad, centered;
    /* groups: group_of[i] for parameter i */
    opt_group *groups;
    int n_groups;
    int *group_of;
    /* per-element state, numel elements each, in the store's dtype */
    int n_state;
    const char *state_name[OPT_MAX_STATE];
    void *state[OPT_MAX_STATE];
    double state_min[OPT_MAX_STATE]; /* the least valid value (heed__optimizer_state_min) */
    /* the work list of the current step */
    opt_chunk *chunks;
    int64_t n_chunks, cap_chunks;
    opt_group_step *gstep;
};

/* Makes an optimizer of `kind` over P with base rate lr and group-0 weight decay wd,
 * allocating n_state zeroed state buffers named names[i]. NULL on failure (ctx error). */
heed_optimizer *heed__optimizer_new(heed_params *P, const char *fn, opt_kind kind, const char *name, opt_kernel kernel,
                                    double lr, double wd, int n_state, const char *const *names);

/* The smallest value an element of optimizer state buffer i may hold (0 for second
 * moments and sums of squares, -INFINITY for the others): a checkpoint (io/checkpoint.c)
 * refuses others. */
double heed__optimizer_state_min(const heed_optimizer *opt, int i);

/* Validation helpers for constructors: record "fn: field = v (rule)" and return false. */
bool heed__opt_check(heed_ctx *ctx, const char *fn, const char *field, double v, double lo, double hi, bool hi_open);

/* Every update kernel runs one OpenMP loop over the chunks, threaded (on the threads of the
 * store's ctx) when the step touches at least OPT_PARALLEL_MIN elements (opt_chunks_total),
 * with schedule(dynamic, 2): the update is per element, so the result does not depend on
 * who does which chunk, and a thread the OS delays does not stall the rest. Kernels are template headers built by
 * kernel_builds.h (sgd_update.h, adam_update.h, rmsprop_update.h, adagrad_update.h). */
static inline int64_t opt_chunks_total(const opt_chunk *chunks, int64_t n) {
    int64_t total = 0;
    for (int64_t k = 0; k < n; k++) total += chunks[k].end - chunks[k].begin;
    return total;
}

#endif
