/* What the optimizer files share: the optimizer struct, its groups, and the chunked pass
 * over the parameter store's flat buffers. Not installed. */
#ifndef HEED_OPTIM_INTERNAL_H
#define HEED_OPTIM_INTERNAL_H

#include "../graph/internal.h"

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
    int64_t numel;  /* the store's flat size when the optimizer was made */
    int n_params;   /* and its parameter count */
    double lr;      /* base rate */
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

/* Validation helpers for constructors: record "fn: field = v (rule)" and return false. */
bool heed__opt_check(heed_ctx *ctx, const char *fn, const char *field, double v, double lo, double hi, bool hi_open);

/* The parallel pass used by every kernel: one OpenMP loop over the chunks (threaded, on the
 * threads of the store's ctx, when the step touches enough elements), with BODY run per
 * chunk with `c` bound to it (o is the kernel's optimizer, as in OPT_KERNEL_PARAMS).
 * Threads take chunks as they come: the update is per element, so the result does not
 * depend on who does which chunk, and a thread the OS delays does not stall the rest. */
#define OPT_FOR_CHUNKS(chunks, n_chunks, c, ...)                                                      \
    do {                                                                                               \
        int64_t opt_total_ = 0;                                                                        \
        for (int64_t k_ = 0; k_ < (n_chunks); k_++) opt_total_ += (chunks)[k_].end - (chunks)[k_].begin; \
        int opt_threads_ = heed_ctx_threads(heed_params_ctx(o->P));                                    \
        _Pragma("omp parallel for schedule(dynamic, 2) if (opt_total_ >= OPT_PARALLEL_MIN) num_threads(opt_threads_)") \
        for (int64_t k_ = 0; k_ < (n_chunks); k_++) {                                                  \
            const opt_chunk *c = &(chunks)[k_];                                                        \
            __VA_ARGS__                                                                                \
        }                                                                                              \
    } while (0)

/* True when f32 kernels may use their AVX2+FMA build: the CPU has both, the environment
 * has no HEED_NO_AVX2 and the test hook heed__optim_force_generic is off. */
bool heed__optim_avx2(void);
void heed__optim_force_generic(bool on);

/* One source, three builds of an update kernel: f64, f32, and f32 compiled for AVX2+FMA
 * (twice the vector width; picked at run time). BODY(T) expands to the kernel's
 * statements for element type T, using the names in OPT_KERNEL_PARAMS. The OpenMP loop
 * inside inherits the target of the function it is written in. */
#define OPT_DEFINE_KERNEL(NAME, BODY)                                                           \
    static void NAME##_f64(OPT_KERNEL_PARAMS) BODY(double)                                      \
    static void NAME##_f32(OPT_KERNEL_PARAMS) BODY(float)                                       \
    __attribute__((target("avx2,fma"))) static void NAME##_f32_avx2(OPT_KERNEL_PARAMS) BODY(float) \
    static void NAME(OPT_KERNEL_PARAMS) {                                                       \
        if (o->dtype == HEED_F64) NAME##_f64(o, t, gs, chunks, n);                              \
        else if (heed__optim_avx2()) NAME##_f32_avx2(o, t, gs, chunks, n);                      \
        else NAME##_f32(o, t, gs, chunks, n);                                                   \
    }

#endif
