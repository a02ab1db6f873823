/* What every optimizer shares: construction, parameter groups, the state interface for
 * checkpoints, the work list of a step and the guarded step.
 *
 * A step walks the parameters in store order and cuts the flat buffers into chunks of at
 * most OPT_CHUNK elements, never across a frozen parameter, a group boundary or the
 * padding between parameters. The optimizer's kernel then runs one OpenMP loop over the
 * chunks with a vectorisable inner loop per chunk. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "optim_internal.h"

#include <math.h>
#include <stdlib.h>

bool heed__opt_check(heed_ctx *ctx, const char *fn, const char *field, double v, double lo, double hi, bool hi_open) {
    bool ok = isfinite(v) && v >= lo && (hi_open ? v < hi : v <= hi);
    if (!ok) {
        if (isinf(hi)) heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: %s = %g (must be finite and >= %g)", fn, field, v, lo);
        else
            heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: %s = %g (must be in [%g, %g%c)", fn, field, v, lo, hi,
                          hi_open ? ')' : ']');
    }
    return ok;
}

heed_optimizer *heed__optimizer_new(heed_params *P, const char *fn, opt_kind kind, const char *name, opt_kernel kernel,
                                    double lr, double wd, int n_state, const char *const *names) {
    heed_ctx *ctx = heed_params_ctx(P);
    if (!P) return NULL;
    if (heed_params_count(P) == 0) {
        heed_ctx_fail(ctx, HEED_ERR_STATE, "%s: the parameter store is empty (add parameters before the optimizer)",
                      fn);
        return NULL;
    }
    heed_optimizer *o = calloc(1, sizeof *o);
    if (!o) goto nomem;
    o->kind = kind;
    o->name = name;
    o->kernel = kernel;
    o->P = P;
    o->ctx = ctx;
    o->dtype = heed_params_dtype(P);
    o->numel = heed_params_padded_numel(P);
    o->n_params = heed_params_count(P);
    o->lr = lr;
    o->groups = malloc(sizeof *o->groups);
    o->group_of = calloc((size_t)o->n_params, sizeof *o->group_of);
    o->gstep = malloc(sizeof *o->gstep);
    if (!o->groups || !o->group_of || !o->gstep) goto nomem;
    o->groups[0] = (opt_group){.lr_scale = 1, .weight_decay = wd};
    o->n_groups = 1;
    for (int i = 0; i < OPT_MAX_STATE; i++) o->state_min[i] = -INFINITY;
    size_t bytes = (size_t)o->numel * heed_dtype_size(o->dtype);
    for (int i = 0; i < n_state; i++) {
        o->state_name[i] = names[i];
        o->state[i] = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!o->state[i]) goto nomem;
        memset(o->state[i], 0, bytes);
        o->n_state = i + 1;
    }
    return o;
nomem:
    heed_optimizer_free(o);
    heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory for the optimizer state (%lld elements)", fn,
                  (long long)heed_params_padded_numel(P));
    return NULL;
}

void heed_optimizer_free(heed_optimizer *o) {
    if (!o) return;
    for (int i = 0; i < o->n_state; i++) free(o->state[i]);
    free(o->groups);
    free(o->group_of);
    free(o->chunks);
    free(o->gstep);
    free(o);
}

/* ---------------------------------------------------------------- the step */

static bool push_chunk(heed_optimizer *o, int64_t begin, int64_t end, int group) {
    if (o->n_chunks == o->cap_chunks) {
        int64_t cap = o->cap_chunks ? 2 * o->cap_chunks : 64;
        opt_chunk *c = realloc(o->chunks, (size_t)cap * sizeof *c);
        if (!c) return false;
        o->chunks = c;
        o->cap_chunks = cap;
    }
    o->chunks[o->n_chunks++] = (opt_chunk){begin, end, group};
    return true;
}

/* Cuts the trainable part of the store into chunks (see the file comment). */
static bool build_chunks(heed_optimizer *o) {
    o->n_chunks = 0;
    int64_t run_begin = 0, run_end = 0;
    int run_group = -1;
    for (int i = 0; i <= o->n_params; i++) {
        const heed_tensor *t = i < o->n_params ? heed_params_at(o->P, i) : NULL;
        bool live = t && (t->flags & HEED_REQUIRES_GRAD) && t->numel > 0;
        int64_t off = live ? heed_params_offset(o->P, i) : 0;
        /* extend the run when this parameter follows it directly in the same group */
        if (live && run_group == o->group_of[i] && off == run_end) {
            run_end = off + t->numel;
            continue;
        }
        for (int64_t b = run_begin; run_group >= 0 && b < run_end; b += OPT_CHUNK)
            if (!push_chunk(o, b, b + OPT_CHUNK < run_end ? b + OPT_CHUNK : run_end, run_group)) return false;
        run_group = live ? o->group_of[i] : -1;
        run_begin = off;
        run_end = live ? off + t->numel : 0;
    }
    return true;
}

/* Everything but the non-finite check: validates, then runs the kernel. */
static heed_status do_step(heed_optimizer *o, const char *fn) {
    if (heed_params_padded_numel(o->P) != o->numel || heed_params_count(o->P) != o->n_params)
        return heed_ctx_fail(o->ctx, HEED_ERR_STATE,
                             "%s: the parameter store changed after the optimizer was made (%d parameters, %lld "
                             "elements then; %d, %lld now)",
                             fn, o->n_params, (long long)o->numel, heed_params_count(o->P),
                             (long long)heed_params_padded_numel(o->P));
    if (o->steps >= HEED_MAX_STEPS)
        return heed_ctx_fail(o->ctx, HEED_ERR_STATE,
                             "%s: the step count is %lld, the most an optimizer takes (HEED_MAX_STEPS)", fn,
                             (long long)o->steps);
    if (!isfinite(o->lr) || o->lr < 0)
        return heed_ctx_fail(o->ctx, HEED_ERR_ARG, "%s: learning rate %g (must be finite and >= 0)", fn, o->lr);
    if (!build_chunks(o)) return heed_ctx_fail(o->ctx, HEED_ERR_NOMEM, "%s: out of memory", fn);
    for (int g = 0; g < o->n_groups; g++)
        o->gstep[g] = (opt_group_step){.lr = o->lr * o->groups[g].lr_scale, .wd = o->groups[g].weight_decay};
    o->kernel(o, o->steps + 1, o->gstep, o->chunks, o->n_chunks);
    o->steps++;
    return HEED_OK;
}

heed_status heed_optimizer_step(heed_optimizer *o) {
    if (!o) return HEED_ERR_ARG;
    return do_step(o, "heed_optimizer_step");
}

#define T float
#define FN(name) name##_f32
#include "optimizer.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "optimizer.c"
#undef T
#undef FN

/* Index of the first non-finite gradient element, or -1. */
static int64_t first_nonfinite_grad(heed_params *P) {
    if (heed_params_grads_finite(P)) return -1;
    int64_t n = heed_params_padded_numel(P);
    if (heed_params_dtype(P) == HEED_F32) return first_nonfinite_f32(heed_params_grads(P), n);
    return first_nonfinite_f64(heed_params_grads(P), n);
}

heed_status heed_optimizer_step_guarded(heed_optimizer *o, heed_graph *g, const heed_tensor *loss) {
    static const char *fn = "heed_optimizer_step_guarded";
    if (!o) return HEED_ERR_ARG;
    heed_status gs = g ? heed_graph_status(g) : HEED_OK;
    if (gs != HEED_OK && gs != HEED_ERR_NUMERIC)
        return heed_ctx_fail(o->ctx, gs, "%s: no step, the graph holds an error: %s", fn, heed_graph_error(g));
    char cause[HEED_ERRMSG + 64];
    cause[0] = 0;
    if (gs == HEED_ERR_NUMERIC) {
        snprintf(cause, sizeof cause, "%s", heed_graph_error(g));
    } else if (loss) {
        for (int64_t i = 0; i < loss->numel && !cause[0]; i++) {
            double v = heed_get(loss, i);
            if (!isfinite(v)) snprintf(cause, sizeof cause, "the loss is %g", v);
        }
    }
    if (!cause[0]) {
        int64_t bad = first_nonfinite_grad(o->P);
        if (bad >= 0) {
            int i = 0;
            while (i + 1 < heed_params_count(o->P) && heed_params_offset(o->P, i + 1) <= bad) i++;
            const heed_tensor *t = heed_params_at(o->P, i);
            int64_t e = bad - heed_params_offset(o->P, i);
            const void *grads = heed_params_grads(o->P);
            double v = o->dtype == HEED_F32 ? (double)((const float *)grads)[bad] : ((const double *)grads)[bad];
            snprintf(cause, sizeof cause, "the gradient of '%s' holds %g at element %lld", t ? t->name : "?", v,
                     (long long)e);
        }
    }
    if (cause[0]) {
        o->skipped++;
        return heed_ctx_fail(o->ctx, HEED_ERR_NUMERIC, "%s: update %lld skipped (%lld skipped so far): %s", fn,
                             (long long)o->steps + 1, (long long)o->skipped, cause);
    }
    return do_step(o, fn);
}

int64_t heed_optimizer_skipped(const heed_optimizer *o) { return o ? o->skipped : 0; }

/* ---------------------------------------------------------------- rate, steps, state */

heed_status heed_optimizer_set_lr(heed_optimizer *o, double lr) {
    if (!o) return HEED_ERR_ARG;
    if (!heed__opt_check(o->ctx, "heed_optimizer_set_lr", "lr", lr, 0, INFINITY, false)) return HEED_ERR_ARG;
    o->lr = lr;
    return HEED_OK;
}
double heed_optimizer_lr(const heed_optimizer *o) { return o ? o->lr : NAN; }
int64_t heed_optimizer_steps(const heed_optimizer *o) { return o ? o->steps : 0; }
heed_status heed_optimizer_set_steps(heed_optimizer *o, int64_t steps) {
    if (!o) return HEED_ERR_ARG;
    if (steps < 0 || steps > HEED_MAX_STEPS)
        return heed_ctx_fail(o->ctx, HEED_ERR_ARG,
                             "heed_optimizer_set_steps: steps = %lld (must be in [0, 2^53 = HEED_MAX_STEPS])",
                             (long long)steps);
    o->steps = steps;
    return HEED_OK;
}
const char *heed_optimizer_name(const heed_optimizer *o) { return o ? o->name : ""; }
heed_params *heed_optimizer_params(const heed_optimizer *o) { return o ? o->P : NULL; }
int heed_optimizer_state_count(const heed_optimizer *o) { return o ? o->n_state : 0; }

heed_status heed_optimizer_state(heed_optimizer *o, int i, const char **name, void **data, int64_t *numel,
                                 heed_dtype *dtype) {
    if (!o) return HEED_ERR_ARG;
    if (i < 0 || i >= o->n_state)
        return heed_ctx_fail(o->ctx, HEED_ERR_ARG,
                             "heed_optimizer_state: index %d out of range (%s has %d state buffers)", i, o->name,
                             o->n_state);
    if (name) *name = o->state_name[i];
    if (data) *data = o->state[i];
    if (numel) *numel = o->numel;
    if (dtype) *dtype = o->dtype;
    return HEED_OK;
}

double heed__optimizer_state_min(const heed_optimizer *o, int i) {
    return o && i >= 0 && i < o->n_state ? o->state_min[i] : -INFINITY;
}

/* ---------------------------------------------------------------- groups */

static bool check_group_args(heed_optimizer *o, const char *fn, double lr_scale, double wd) {
    return heed__opt_check(o->ctx, fn, "lr_scale", lr_scale, 0, INFINITY, false) &&
           heed__opt_check(o->ctx, fn, "weight_decay", wd, 0, INFINITY, false);
}

heed_status heed_optimizer_add_group(heed_optimizer *o, heed_param_filter filter, void *user, double lr_scale,
                                     double wd, int *group) {
    static const char *fn = "heed_optimizer_add_group";
    if (!o) return HEED_ERR_ARG;
    if (!filter) return heed_ctx_fail(o->ctx, HEED_ERR_ARG, "%s: filter is NULL", fn);
    if (!check_group_args(o, fn, lr_scale, wd)) return HEED_ERR_ARG;
    opt_group *gr = realloc(o->groups, (size_t)(o->n_groups + 1) * sizeof *gr);
    if (gr) o->groups = gr;
    opt_group_step *gs = realloc(o->gstep, (size_t)(o->n_groups + 1) * sizeof *gs);
    if (gs) o->gstep = gs;
    if (!gr || !gs) return heed_ctx_fail(o->ctx, HEED_ERR_NOMEM, "%s: out of memory", fn);
    int id = o->n_groups++;
    o->groups[id] = (opt_group){lr_scale, wd};
    for (int i = 0; i < o->n_params; i++)
        if (o->group_of[i] == 0 && filter(heed_params_at(o->P, i), user)) o->group_of[i] = id;
    if (group) *group = id;
    return HEED_OK;
}

/* '*' matches any run of characters (also empty); everything else matches itself. */
static bool glob_match(const char *pat, const char *s) {
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*pat == '*') {
            star = pat++;
            resume = s;
        } else if (*pat == *s) {
            pat++;
            s++;
        } else if (star) {
            pat = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*pat == '*') pat++;
    return *pat == 0;
}

static bool name_filter(const heed_tensor *t, void *user) { return t && t->name && glob_match(user, t->name); }

heed_status heed_optimizer_add_group_named(heed_optimizer *o, const char *pattern, double lr_scale, double wd,
                                           int *group) {
    if (!o) return HEED_ERR_ARG;
    if (!pattern) return heed_ctx_fail(o->ctx, HEED_ERR_ARG, "heed_optimizer_add_group_named: pattern is NULL");
    return heed_optimizer_add_group(o, name_filter, (void *)pattern, lr_scale, wd, group);
}

bool heed_param_is_vector(const heed_tensor *t, void *user) { return t && t->ndim <= 1; }

int heed_optimizer_group_count(const heed_optimizer *o) { return o ? o->n_groups : 0; }
/* HEED_OK when g names a group of o, else the error naming fn. */
static heed_status check_group(const heed_optimizer *o, const char *fn, int g) {
    if (!o) return HEED_ERR_ARG;
    if (g < 0 || g >= o->n_groups)
        return heed_ctx_fail(o->ctx, HEED_ERR_ARG, "%s: group %d out of range (%d groups)", fn, g, o->n_groups);
    return HEED_OK;
}

heed_status heed_optimizer_group_of(const heed_optimizer *o, int i, int *group) {
    if (!o) return HEED_ERR_ARG;
    if (i < 0 || i >= o->n_params)
        return heed_ctx_fail(o->ctx, HEED_ERR_ARG, "heed_optimizer_group_of: parameter %d out of range (%d parameters)",
                             i, o->n_params);
    if (group) *group = o->group_of[i];
    return HEED_OK;
}

heed_status heed_optimizer_group_lr(const heed_optimizer *o, int g, double *lr) {
    heed_status st = check_group(o, "heed_optimizer_group_lr", g);
    if (st == HEED_OK && lr) *lr = o->lr * o->groups[g].lr_scale;
    return st;
}

heed_status heed_optimizer_group_weight_decay(const heed_optimizer *o, int g, double *wd) {
    heed_status st = check_group(o, "heed_optimizer_group_weight_decay", g);
    if (st == HEED_OK && wd) *wd = o->groups[g].weight_decay;
    return st;
}

heed_status heed_optimizer_set_group(heed_optimizer *o, int g, double lr_scale, double wd) {
    static const char *fn = "heed_optimizer_set_group";
    heed_status st = check_group(o, fn, g);
    if (st != HEED_OK) return st;
    if (!check_group_args(o, fn, lr_scale, wd)) return HEED_ERR_ARG;
    o->groups[g] = (opt_group){lr_scale, wd};
    return HEED_OK;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

/* Index of the first non-finite element of g[n], or -1. */
static int64_t FN(first_nonfinite)(const T *g, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(g[i])) return i;
    return -1;
}
#endif
