/* Learning-rate schedules. A schedule is a value (heed_schedule); the rate at step t
 * (t updates already taken) is a closed formula of t for all kinds but reduce-on-plateau,
 * whose few numbers of state move with heed_schedule_observe. Formulas: docs/training.md. */
#include "optim_internal.h"

#include <math.h>

static const double PI = 3.14159265358979323846;

static heed_schedule base(heed_schedule_kind kind, double lr) {
    return (heed_schedule){.kind = kind, .lr = lr, .gamma = 1, .current_lr = lr};
}

heed_schedule heed_schedule_constant(double lr) { return base(HEED_SCHED_CONSTANT, lr); }

heed_schedule heed_schedule_step(double lr, int64_t step_size, double gamma) {
    heed_schedule s = base(HEED_SCHED_STEP, lr);
    s.step_size = step_size;
    s.gamma = gamma;
    return s;
}

heed_schedule heed_schedule_exponential(double lr, double gamma) {
    heed_schedule s = base(HEED_SCHED_EXPONENTIAL, lr);
    s.gamma = gamma;
    return s;
}

heed_schedule heed_schedule_cosine(double lr, int64_t total, double min_lr) {
    heed_schedule s = base(HEED_SCHED_COSINE, lr);
    s.total = total;
    s.min_lr = min_lr;
    return s;
}

static heed_schedule warmup(heed_schedule_kind kind, double lr, int64_t warmup, int64_t total, double min_lr) {
    heed_schedule s = base(kind, lr);
    s.warmup = warmup;
    s.total = total;
    s.min_lr = min_lr;
    return s;
}
heed_schedule heed_schedule_warmup_linear(double lr, int64_t w, int64_t total, double min_lr) {
    return warmup(HEED_SCHED_WARMUP_LINEAR, lr, w, total, min_lr);
}
heed_schedule heed_schedule_warmup_cosine(double lr, int64_t w, int64_t total, double min_lr) {
    return warmup(HEED_SCHED_WARMUP_COSINE, lr, w, total, min_lr);
}

heed_schedule heed_schedule_noam(double factor, double d_model, int64_t w) {
    heed_schedule s = base(HEED_SCHED_NOAM, factor);
    s.d_model = d_model;
    s.warmup = w;
    return s;
}

heed_schedule heed_schedule_plateau(double lr) {
    heed_schedule s = base(HEED_SCHED_PLATEAU, lr);
    s.gamma = 0.1;
    s.patience = 10;
    s.threshold = 1e-4;
    s.eps = 1e-8;
    s.best = NAN; /* no metric seen yet: the first one always improves */
    return s;
}

/* ---------------------------------------------------------------- validation */

#define BAD(...) heed_ctx_fail(ctx, HEED_ERR_ARG, __VA_ARGS__)

heed_status heed_schedule_check(heed_ctx *ctx, const heed_schedule *s) {
    if (!s) return BAD("heed_schedule: schedule is NULL");
    if (!isfinite(s->lr) || s->lr < 0) return BAD("heed_schedule: lr = %g (must be finite and >= 0)", s->lr);
    switch (s->kind) {
    case HEED_SCHED_CONSTANT: return HEED_OK;
    case HEED_SCHED_STEP:
        if (s->step_size < 1)
            return BAD("heed_schedule_step: step_size = %lld (must be >= 1)", (long long)s->step_size);
        /* fall through */
    case HEED_SCHED_EXPONENTIAL:
        if (!isfinite(s->gamma) || s->gamma <= 0)
            return BAD("heed_schedule: gamma = %g (must be finite and > 0)", s->gamma);
        return HEED_OK;
    case HEED_SCHED_COSINE:
    case HEED_SCHED_WARMUP_LINEAR:
    case HEED_SCHED_WARMUP_COSINE:
        if (s->total < 1) return BAD("heed_schedule: total = %lld (must be >= 1)", (long long)s->total);
        if (s->warmup < 0 || s->warmup > s->total)
            return BAD("heed_schedule: warmup = %lld (must be in 0..total = %lld)", (long long)s->warmup,
                       (long long)s->total);
        if (!isfinite(s->min_lr) || s->min_lr < 0 || s->min_lr > s->lr)
            return BAD("heed_schedule: min_lr = %g (must be in [0, lr = %g])", s->min_lr, s->lr);
        return HEED_OK;
    case HEED_SCHED_NOAM:
        if (!isfinite(s->d_model) || s->d_model <= 0)
            return BAD("heed_schedule_noam: d_model = %g (must be > 0)", s->d_model);
        if (s->warmup < 1) return BAD("heed_schedule_noam: warmup = %lld (must be >= 1)", (long long)s->warmup);
        return HEED_OK;
    case HEED_SCHED_PLATEAU:
        if (!(s->gamma > 0 && s->gamma < 1))
            return BAD("heed_schedule_plateau: gamma (factor) = %g (must be in (0, 1))", s->gamma);
        if (s->patience < 0 || s->cooldown < 0)
            return BAD("heed_schedule_plateau: patience = %lld, cooldown = %lld (must be >= 0)", (long long)s->patience,
                       (long long)s->cooldown);
        if (!isfinite(s->threshold) || s->threshold < 0 || !isfinite(s->eps) || s->eps < 0)
            return BAD("heed_schedule_plateau: threshold = %g, eps = %g (must be finite and >= 0)", s->threshold,
                       s->eps);
        if (!isfinite(s->min_lr) || s->min_lr < 0)
            return BAD("heed_schedule_plateau: min_lr = %g (must be >= 0)", s->min_lr);
        if (!isfinite(s->current_lr) || s->current_lr < 0)
            return BAD("heed_schedule_plateau: current lr = %g (must be finite and >= 0)", s->current_lr);
        return HEED_OK;
    }
    return BAD("heed_schedule: unknown kind %d", (int)s->kind);
}

/* ---------------------------------------------------------------- rates */

/* The rate of a checked schedule at t >= 0. */
static double rate(const heed_schedule *s, int64_t t) {
    double lr = s->lr, tt = (double)t;
    switch (s->kind) {
    case HEED_SCHED_CONSTANT: return lr;
    case HEED_SCHED_STEP: return lr * pow(s->gamma, (double)(t / s->step_size));
    case HEED_SCHED_EXPONENTIAL: return lr * pow(s->gamma, tt);
    case HEED_SCHED_COSINE: {
        double x = t < s->total ? tt / (double)s->total : 1;
        return s->min_lr + (lr - s->min_lr) * (1 + cos(PI * x)) / 2;
    }
    case HEED_SCHED_WARMUP_LINEAR:
    case HEED_SCHED_WARMUP_COSINE: {
        if (t < s->warmup) return lr * tt / (double)s->warmup;
        double span = (double)(s->total - s->warmup);
        double x = span > 0 && t < s->total ? (tt - (double)s->warmup) / span : 1; /* progress in [0, 1] */
        double f = s->kind == HEED_SCHED_WARMUP_LINEAR ? 1 - x : (1 + cos(PI * x)) / 2;
        return s->min_lr + (lr - s->min_lr) * f;
    }
    case HEED_SCHED_NOAM: {
        double step = tt + 1, w = (double)s->warmup;
        return lr / sqrt(s->d_model) * fmin(1 / sqrt(step), step * pow(w, -1.5));
    }
    case HEED_SCHED_PLATEAU: return s->current_lr;
    }
    return NAN;
}

heed_status heed_schedule_lr(heed_ctx *ctx, const heed_schedule *s, int64_t t, double *lr) {
    heed_status st = heed_schedule_check(ctx, s);
    if (st != HEED_OK) return st;
    if (t < 0) return BAD("heed_schedule_lr: t = %lld (must be >= 0)", (long long)t);
    if (lr) *lr = rate(s, t);
    return HEED_OK;
}

heed_status heed_schedule_apply(heed_optimizer *opt, const heed_schedule *s) {
    if (!opt) return HEED_ERR_ARG;
    heed_status st = heed_schedule_check(opt->ctx, s);
    if (st != HEED_OK) return st;
    return heed_optimizer_set_lr(opt, rate(s, heed_optimizer_steps(opt)));
}

/* ---------------------------------------------------------------- reduce on plateau */

/* ReduceLROnPlateau.is_better: rel min: a < best (1 - th); abs min: a < best - th;
 * rel max: a > best (1 + th); abs max: a > best + th. */
static bool improves(const heed_schedule *s, double a) {
    if (s->maximize) return s->threshold_abs ? a > s->best + s->threshold : a > s->best * (1 + s->threshold);
    return s->threshold_abs ? a < s->best - s->threshold : a < s->best * (1 - s->threshold);
}

heed_status heed_schedule_observe(heed_ctx *ctx, heed_schedule *s, double metric, double *lr) {
    heed_status st = heed_schedule_check(ctx, s);
    if (st != HEED_OK) return st;
    if (s->kind != HEED_SCHED_PLATEAU)
        return BAD("heed_schedule_observe: only reduce-on-plateau schedules observe a metric (kind %d)", (int)s->kind);
    /* best starts at the worst value for the mode, as PyTorch's mode_worse; it is set
     * here so that the mode may be changed after the constructor */
    if (isnan(s->best)) s->best = s->maximize ? -INFINITY : INFINITY;
    if (improves(s, metric)) {
        s->best = metric;
        s->bad_epochs = 0;
    } else {
        s->bad_epochs += 1; /* NaN never improves */
    }
    if (s->cooldown_left > 0) {
        s->cooldown_left -= 1;
        s->bad_epochs = 0;
    }
    if (s->bad_epochs > (double)s->patience) {
        double old = s->current_lr, next = fmax(old * s->gamma, s->min_lr);
        if (old - next > s->eps) s->current_lr = next;
        s->cooldown_left = (double)s->cooldown;
        s->bad_epochs = 0;
    }
    if (lr) *lr = s->current_lr;
    return HEED_OK;
}

void heed_schedule_get_state(const heed_schedule *s, double state[HEED_SCHEDULE_STATE]) {
    if (!s || !state) return;
    state[0] = s->best;
    state[1] = s->bad_epochs;
    state[2] = s->cooldown_left;
    state[3] = s->current_lr;
}

heed_status heed_schedule_set_state(heed_ctx *ctx, heed_schedule *s, const double state[HEED_SCHEDULE_STATE]) {
    if (!s || !state) return BAD("heed_schedule_set_state: %s is NULL", s ? "state" : "the schedule");
    /* best may be anything (NaN before the first metric, +-inf for the mode's worst) */
    for (int i = 1; i <= 2; i++)
        if (!(state[i] >= 0) || !isfinite(state[i]) || state[i] != floor(state[i]))
            return heed_ctx_fail(ctx, HEED_ERR_FORMAT,
                                 "heed_schedule_set_state: %s = %g (must be a count: an integer >= 0)",
                                 i == 1 ? "bad_epochs" : "cooldown_left", state[i]);
    if (!isfinite(state[3]) || state[3] < 0)
        return heed_ctx_fail(ctx, HEED_ERR_FORMAT, "heed_schedule_set_state: current_lr = %g (must be finite and >= 0)",
                             state[3]);
    s->best = state[0];
    s->bad_epochs = state[1];
    s->cooldown_left = state[2];
    s->current_lr = state[3];
    return HEED_OK;
}
