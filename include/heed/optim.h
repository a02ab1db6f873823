/* heed: Optimizers, clipping, schedules (optim/). Part of the public API: <heed.h>
 * includes every part; a file may include just the parts it uses. */
#ifndef HEED_API_OPTIM_H
#define HEED_API_OPTIM_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ optimizers (optim/) */

/* An optimizer runs over a parameter store's flat buffers. Its state (moments, step
 * count, ...) is exposed as named flat buffers so checkpoints can save and restore it. */
typedef struct heed_optimizer heed_optimizer;

/* Hyper-parameters, as PyTorch names and defines them (docs/training.md writes every
 * update out). Options structs follow one rule (docs/guide.md, "Options structs"): a field
 * left 0 takes the default written next to it, so NULL, {0} and {.lr = 3e-4} all mean
 * PyTorch's defaults for the fields not set; where 0 is itself a value you want (beta1 =
 * 0, AdamW without weight decay, eps = 0), write HEED_ZERO, or HEED_EXACTLY(x) for a value
 * computed at run time. A constructor checks every field and returns NULL on a bad one
 * (message in heed_ctx_error). weight_decay is the default group's; other groups set
 * their own (heed_optimizer_add_group). */
typedef struct {
    double lr;           /* 1e-2 (PyTorch 1.13's SGD has no default rate: this is heed's) */
    double momentum;     /* 0 */
    double dampening;    /* 0 */
    double weight_decay; /* 0 */
    bool nesterov;       /* needs momentum > 0 and dampening == 0 */
} heed_sgd_opts;

typedef struct {
    double lr;           /* 1e-3 */
    double beta1, beta2; /* 0.9, 0.999 */
    double eps;          /* 1e-8 */
    double weight_decay; /* heed_adam: 0; heed_adamw: 1e-2 */
    bool amsgrad;        /* divide by the running maximum of the second moment */
} heed_adam_opts;

typedef struct {
    double lr;           /* 1e-2 */
    double alpha;        /* 0.99 */
    double eps;          /* 1e-8 */
    double weight_decay; /* 0 */
    double momentum;     /* 0 */
    bool centered;       /* normalise by the variance estimate sq_avg - grad_avg^2 */
} heed_rmsprop_opts;

typedef struct {
    double lr;                        /* 1e-2 */
    double lr_decay;                  /* 0 */
    double weight_decay;              /* 0 */
    double initial_accumulator_value; /* 0 */
    double eps;                       /* 1e-10 */
} heed_adagrad_opts;

/* The largest step count: t = steps + 1 in the bias corrections (b^t) and in Adagrad's
 * decay stays an exact double, and the count can never overflow. A step at this count
 * fails (HEED_ERR_STATE); restoring a larger one is refused. */
#define HEED_MAX_STEPS ((int64_t)1 << 53)

/* Optimizers over every parameter of P (add all parameters first: the state is sized to
 * the store). Frozen parameters (heed_param_freeze) are skipped at each step. */
heed_optimizer *heed_sgd(heed_params *P, const heed_sgd_opts *opts);
heed_optimizer *heed_adam(heed_params *P, const heed_adam_opts *opts);  /* L2 penalty added to the gradient */
heed_optimizer *heed_adamw(heed_params *P, const heed_adam_opts *opts); /* decoupled decay: p -= lr*wd*p */
heed_optimizer *heed_rmsprop(heed_params *P, const heed_rmsprop_opts *opts);
heed_optimizer *heed_adagrad(heed_params *P, const heed_adagrad_opts *opts);

void heed_optimizer_free(heed_optimizer *opt); /* NULL is fine */
/* One update from the gradients in the store: one threaded, vectorised pass over the flat
 * buffers. Fails (HEED_ERR_STATE) if parameters were added after the optimizer was made,
 * or when the step count is HEED_MAX_STEPS. */
heed_status heed_optimizer_step(heed_optimizer *opt);

/* Setters check their argument as the constructors do: a bad value is refused with
 * HEED_ERR_ARG (message in heed_ctx_error of the store's ctx) and changes nothing. A NULL
 * optimizer has no ctx to take a message: setters and step then give HEED_ERR_ARG alone,
 * getters NaN, 0 or "" (docs/design.md, "Errors"). */

/* The base learning rate (finite, >= 0); group g's rate is base * its lr_scale. */
heed_status heed_optimizer_set_lr(heed_optimizer *opt, double lr); /* all groups */
double heed_optimizer_lr(const heed_optimizer *opt);
/* Updates taken so far (t in the formulas is steps + 1 during a step). Restoring one
 * (from a checkpoint) needs 0 <= steps <= HEED_MAX_STEPS. */
int64_t heed_optimizer_steps(const heed_optimizer *opt);
heed_status heed_optimizer_set_steps(heed_optimizer *opt, int64_t steps);
/* State buffers for checkpoints: i in [0, count); each has a name ("adam.exp_avg"), a dtype
 * and numel elements (the store's flat size for per-element state). The data pointer is
 * the live buffer: a checkpoint reads it to save and writes it to restore. */
int heed_optimizer_state_count(const heed_optimizer *opt);
heed_status heed_optimizer_state(heed_optimizer *opt, int i, const char **name, void **data, int64_t *numel,
                                 heed_dtype *dtype);
/* "sgd", "adam", "adamw", "rmsprop" or "adagrad". */
const char *heed_optimizer_name(const heed_optimizer *opt);
heed_params *heed_optimizer_params(const heed_optimizer *opt); /* the store it updates */

/* Parameter groups. Every parameter starts in group 0 (the constructor's lr and
 * weight_decay). A new group takes the parameters, still in group 0, that filter accepts
 * (or whose name matches pattern: '*' matches any run of characters, so "*.bias" or
 * "enc.*"); its learning rate is base lr * lr_scale (lr_scale finite, >= 0) and it has its
 * own weight decay (finite, >= 0). Its index (>= 1) goes to *group (may be NULL). Groups
 * are configuration: make the same groups before restoring a checkpoint. */
typedef bool (*heed_param_filter)(const heed_tensor *t, void *user);
heed_status heed_optimizer_add_group(heed_optimizer *opt, heed_param_filter filter, void *user, double lr_scale,
                                     double weight_decay, int *group);
heed_status heed_optimizer_add_group_named(heed_optimizer *opt, const char *pattern, double lr_scale,
                                           double weight_decay, int *group);
/* A ready filter: parameters with at most one dimension (biases, norm gains and shifts),
 * which usually get no weight decay. */
bool heed_param_is_vector(const heed_tensor *t, void *user);
int heed_optimizer_group_count(const heed_optimizer *opt); /* groups, group 0 included */
/* The group of parameter i of the store (heed_params_at order). */
heed_status heed_optimizer_group_of(const heed_optimizer *opt, int param_index, int *group);
/* Group g's rate (base lr * lr_scale) and weight decay. */
heed_status heed_optimizer_group_lr(const heed_optimizer *opt, int group, double *lr);
heed_status heed_optimizer_group_weight_decay(const heed_optimizer *opt, int group, double *weight_decay);
/* Change a group's rate scale and weight decay (group 0 too). */
heed_status heed_optimizer_set_group(heed_optimizer *opt, int group, double lr_scale, double weight_decay);

/* ---------------------------------------------------------------- around the step */

/* Multiply every gradient by s (finite; gradient accumulation: after k micro-batch
 * backward passes into un-zeroed gradients, scale by 1/k to get the mean). */
heed_status heed_params_scale_grad(heed_params *P, double s);
/* True when no gradient holds NaN or Inf. */
bool heed_params_grads_finite(const heed_params *P);
/* The L2 norm of all gradients, accumulated in double. */
double heed_params_grad_norm(const heed_params *P);
/* Clip by global norm as torch.nn.utils.clip_grad_norm_: with n the L2 norm of all
 * gradients, when max_norm / (n + 1e-6) < 1 every gradient is multiplied by it. n (before
 * clipping) goes to *norm (may be NULL). A non-finite n leaves the gradients alone and is
 * reported as is (HEED_OK), for the step guard to see. max_norm must be finite and > 0. */
heed_status heed_clip_grad_norm(heed_params *P, double max_norm, double *norm);
/* Clamp every gradient to [-clip, clip] (NaN stays NaN). */
heed_status heed_clip_grad_value(heed_params *P, double clip);

/* A guarded step. Before updating it looks at the graph's status (if g is given; in
 * anomaly mode, heed_graph_set_anomaly, a NaN/Inf is reported there with the op that
 * first produced it), the loss (if given) and every gradient. If any holds NaN/Inf the
 * update is skipped -- parameters, state and step count stay bitwise unchanged --, the
 * skip is counted and HEED_ERR_NUMERIC is returned with the cause in heed_ctx_error (the
 * op's message, or the first parameter and element whose gradient is not finite). Any
 * other graph error is returned as is, without a step and without counting a skip. */
heed_status heed_optimizer_step_guarded(heed_optimizer *opt, heed_graph *g, const heed_tensor *loss);
int64_t heed_optimizer_skipped(const heed_optimizer *opt); /* steps skipped so far */

/* ---------------------------------------------------------------- learning-rate schedules */

/* A schedule is a value: fill one with a constructor below, then before each step call
 * heed_schedule_apply (or read heed_schedule_lr at t = heed_optimizer_steps(opt), the
 * number of updates already taken, as PyTorch's scheduler after t scheduler.step() calls).
 * Reduce-on-plateau instead moves when heed_schedule_observe is given a metric. */
typedef enum {
    HEED_SCHED_CONSTANT,      /* lr */
    HEED_SCHED_STEP,          /* lr * gamma^floor(t / step_size) */
    HEED_SCHED_EXPONENTIAL,   /* lr * gamma^t */
    HEED_SCHED_COSINE,        /* min_lr + (lr - min_lr) (1 + cos(pi min(t, total) / total)) / 2 */
    HEED_SCHED_WARMUP_LINEAR, /* lr t / warmup, then linear to min_lr at t = total */
    HEED_SCHED_WARMUP_COSINE, /* lr t / warmup, then cosine to min_lr at t = total */
    HEED_SCHED_NOAM,          /* lr d_model^-0.5 min(s^-0.5, s warmup^-1.5), s = t + 1 */
    HEED_SCHED_PLATEAU,       /* lr * gamma each time the metric stalls for patience epochs */
} heed_schedule_kind;

typedef struct {
    heed_schedule_kind kind;
    double lr;         /* base (peak) rate; for Noam the factor in front */
    double gamma;      /* step, exponential; plateau: the factor (PyTorch's `factor`) */
    double min_lr;     /* cosine (eta_min), warm-up schedules, plateau */
    int64_t step_size; /* step */
    int64_t warmup;    /* warm-up schedules, Noam */
    int64_t total;     /* cosine (T_max), warm-up schedules: the last step */
    double d_model;    /* Noam */
    /* plateau configuration (PyTorch ReduceLROnPlateau's) */
    bool maximize;      /* mode 'max' */
    bool threshold_abs; /* threshold_mode 'abs' (else 'rel') */
    int64_t patience, cooldown;
    double threshold, eps;
    /* plateau state (saved by checkpoints through heed_schedule_get_state) */
    double best, bad_epochs, cooldown_left, current_lr;
} heed_schedule;

heed_schedule heed_schedule_constant(double lr);
heed_schedule heed_schedule_step(double lr, int64_t step_size, double gamma);
heed_schedule heed_schedule_exponential(double lr, double gamma);
heed_schedule heed_schedule_cosine(double lr, int64_t total, double min_lr);
heed_schedule heed_schedule_warmup_linear(double lr, int64_t warmup, int64_t total, double min_lr);
heed_schedule heed_schedule_warmup_cosine(double lr, int64_t warmup, int64_t total, double min_lr);
heed_schedule heed_schedule_noam(double factor, double d_model, int64_t warmup);
/* PyTorch's defaults: mode min, factor 0.1, patience 10, threshold 1e-4 rel, cooldown 0,
 * min_lr 0, eps 1e-8; change the fields after the call. */
heed_schedule heed_schedule_plateau(double lr);

/* A schedule is a value with no context of its own: the functions below report a bad
 * schedule or argument with HEED_ERR_ARG and the message in heed_ctx_error(ctx) (ctx may be
 * NULL: the status alone). */
/* HEED_OK, or HEED_ERR_ARG naming the bad field. */
heed_status heed_schedule_check(heed_ctx *ctx, const heed_schedule *s);
/* The rate at step t (t >= 0 updates taken) into *lr; plateau: the current rate. */
heed_status heed_schedule_lr(heed_ctx *ctx, const heed_schedule *s, int64_t t, double *lr);
/* Sets opt's base lr to the schedule's rate at heed_optimizer_steps(opt) (message in the
 * optimizer's ctx). */
heed_status heed_schedule_apply(heed_optimizer *opt, const heed_schedule *s);
/* Reduce-on-plateau only: one epoch's metric in; the rate to use from now on goes to *lr
 * (may be NULL). A NaN metric counts as no improvement. */
heed_status heed_schedule_observe(heed_ctx *ctx, heed_schedule *s, double metric, double *lr);
/* The mutable state as doubles for checkpoints: {best, bad_epochs, cooldown_left,
 * current_lr} (meaningful for plateau, where best is NaN until the first metric; the other
 * kinds keep no state besides t, which is the optimizer's step count). set_state refuses
 * (HEED_ERR_FORMAT) impossible values: negative or fractional counters, a bad rate. */
#define HEED_SCHEDULE_STATE 4
void heed_schedule_get_state(const heed_schedule *s, double state[HEED_SCHEDULE_STATE]);
heed_status heed_schedule_set_state(heed_ctx *ctx, heed_schedule *s, const double state[HEED_SCHEDULE_STATE]);

#ifdef __cplusplus
}
#endif
#endif
