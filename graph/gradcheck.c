/* Gradient checker: central differences in f64 against the tape's backward.
 *
 * loss(x) = sum_i r_i * f(x)_i for a fixed random cotangent r, so one backward gives
 * d loss / d x for every input element, and each numeric derivative costs two forwards:
 *   numeric_j = (loss(x + eps e_j) - loss(x - eps e_j)) / (2 eps).
 * Passes when |analytic - numeric| <= atol + rtol * |numeric| for every element; the
 * report names the element with the largest ratio of the two sides.
 *
 * The automatic atol is 1e-5 * clamp(G, 1e-3, 1), G the largest |numeric| checked. A
 * fixed 1e-5 (PyTorch's) judges gradients of order 1; when every gradient is of order 1e-5
 * (a small model, a small loss) a wholly wrong one passes. Scaling by G keeps atol a fixed
 * fraction of the function's own gradients; the floor 1e-3 keeps it (>= 1e-8) well above
 * the rounding noise of a central difference, about DBL_EPSILON |loss| / eps = 2e-10 |loss|. */
#include "internal.h"
#include "heed/gradcheck.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    heed_ctx *ctx;
    heed_graph *g;
    heed_gradcheck_fn f;
    void *user;
    int n_inputs;
    const heed_gradcheck_input *specs;
    double **data; /* the checker's copies of the inputs, perturbed in place */
    uint64_t rng_counter;
    double *cot; /* cotangent */
    int64_t out_numel;
} checker;

/* Builds the function on a fresh step; returns its output or NULL (error on g). */
static heed_tensor *build(checker *c, heed_tensor **ins) {
    heed_graph_reset(c->g);
    c->ctx->rng_counter = c->rng_counter; /* replay dropout masks */
    for (int i = 0; i < c->n_inputs; i++) {
        ins[i] = heed_input_f64(c->g, HEED_F64, c->specs[i].shape, c->data[i]);
        if (ins[i] && !c->specs[i].no_grad) heed_requires_grad(ins[i]);
    }
    if (heed_graph_status(c->g) != HEED_OK) return NULL;
    heed_tensor *out = c->f(c->g, ins, c->user);
    if (heed_graph_status(c->g) != HEED_OK) return NULL;
    if (!out) {
        heed_graph_fail(c->g, HEED_ERR_STATE, "heed_gradcheck: the function returned NULL without an error");
        return NULL;
    }
    if (out->dtype != HEED_F64) {
        heed_graph_fail(c->g, HEED_ERR_DTYPE, "heed_gradcheck: the function's output is f32; the checker works in f64");
        return NULL;
    }
    return out;
}

static heed_status eval_loss(checker *c, heed_tensor **ins, double *loss) {
    heed_tensor *out = build(c, ins);
    if (!out) return heed_graph_status(c->g);
    if (out->numel != c->out_numel)
        return heed_graph_fail(c->g, HEED_ERR_STATE, "heed_gradcheck: output size changed between evaluations");
    const double *y = out->data;
    double s = 0;
    for (int64_t i = 0; i < out->numel; i++) s += c->cot[i] * y[i];
    *loss = s;
    return HEED_OK;
}

typedef struct {
    double *value; /* element to perturb */
    double analytic, numeric;
    const char *param; /* the parameter's name, or NULL for input number `input` */
    int input;
    int64_t index;
} probe;

/* The error of p relative to its tolerance: <= 1 passes. */
static double error_ratio(const probe *p, double atol, double rtol) {
    double diff = fabs(p->analytic - p->numeric), tol = atol + rtol * fabs(p->numeric);
    if (!isfinite(p->analytic) || !isfinite(p->numeric)) return INFINITY;
    return diff == 0 ? 0 : tol > 0 ? diff / tol : INFINITY;
}

heed_status heed_gradcheck(heed_ctx *ctx, heed_gradcheck_fn f, void *user, int n_inputs,
                           const heed_gradcheck_input *inputs, const heed_gradcheck_opts *opts,
                           heed_gradcheck_result *result) {
    if (!ctx) return HEED_ERR_ARG;
    heed__ctx_clear(ctx);
    heed_gradcheck_result res_local;
    heed_gradcheck_result *res = result ? result : &res_local;
    *res = (heed_gradcheck_result){0};
    if (!f || n_inputs < 0 || (n_inputs > 0 && !inputs))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_gradcheck: f is NULL or inputs are missing");
    heed_gradcheck_opts o = opts ? *opts : (heed_gradcheck_opts){0};
    double eps = heed__opt(o.eps, 1e-6), atol = heed__opt(o.atol, 0), rtol = heed__opt(o.rtol, 1e-3);
    bool auto_atol = o.atol == 0;
    if (!(isfinite(eps) && eps > 0) || !(isfinite(atol) && atol >= 0) || !(isfinite(rtol) && rtol >= 0) ||
        o.max_per_tensor < 0)
        return heed_ctx_fail(
            ctx, HEED_ERR_ARG,
            "heed_gradcheck: eps = %g, atol = %g, rtol = %g, max_per_tensor = %lld (eps must be finite and > 0, "
            "atol and rtol finite and >= 0, max_per_tensor >= 0)",
            eps, atol, rtol, (long long)o.max_per_tensor);
    if (o.params && heed_params_dtype(o.params) != HEED_F64)
        return heed_ctx_fail(ctx, HEED_ERR_DTYPE, "heed_gradcheck: the parameter store must be f64");

    checker c =
        {.ctx = ctx, .f = f, .user = user, .n_inputs = n_inputs, .specs = inputs, .rng_counter = ctx->rng_counter};
    heed_status st = HEED_OK;
    heed_tensor **ins = calloc((size_t)n_inputs + 1, sizeof *ins);
    c.data = calloc((size_t)n_inputs + 1, sizeof *c.data);
    c.g = heed_graph_new(ctx);
    probe *probes = NULL;
    heed_rng rng = heed_rng_make(o.seed ^ 0x9e3779b97f4a7c15ull, 7);
    if (!ins || !c.data || !c.g) {
        st = heed_ctx_fail(ctx, HEED_ERR_NOMEM, "heed_gradcheck: out of memory");
        goto done;
    }
    for (int i = 0; i < n_inputs; i++) {
        heed_shape s = inputs[i].shape;
        int64_t n = 1;
        if (s.ndim < 0 || s.ndim > HEED_MAX_DIMS) {
            st = heed_ctx_fail(ctx, HEED_ERR_SHAPE, "heed_gradcheck: input %d has %d dims", i, s.ndim);
            goto done;
        }
        for (int k = 0; k < s.ndim; k++) {
            if (s.d[k] < 0 || s.d[k] > (1 << 24)) {
                st = heed_ctx_fail(ctx, HEED_ERR_SHAPE, "heed_gradcheck: input %d dim %d is %lld", i, k,
                                   (long long)s.d[k]);
                goto done;
            }
            if (s.d[k] && n > ((int64_t)1 << 40) / s.d[k]) {
                st = heed_ctx_fail(ctx, HEED_ERR_SHAPE, "heed_gradcheck: input %d has more than 2^40 elements", i);
                goto done;
            }
            n *= s.d[k];
        }
        c.data[i] = malloc((size_t)(n ? n : 1) * sizeof(double));
        if (!c.data[i]) {
            st = heed_ctx_fail(ctx, HEED_ERR_NOMEM, "heed_gradcheck: out of memory");
            goto done;
        }
        for (int64_t k = 0; k < n; k++)
            c.data[i][k] = inputs[i].data ? inputs[i].data[k] : 2 * heed_rng_uniform(&rng) - 1;
    }

    /* Analytic pass. */
    if (o.params) heed_params_zero_grad(o.params);
    heed_tensor *out = build(&c, ins);
    if (!out) goto graph_error;
    c.out_numel = out->numel;
    c.cot = malloc((size_t)(out->numel ? out->numel : 1) * sizeof *c.cot);
    if (!c.cot) {
        st = heed_ctx_fail(ctx, HEED_ERR_NOMEM, "heed_gradcheck: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < out->numel; i++) c.cot[i] = 2 * heed_rng_uniform(&rng) - 1;
    heed_tensor *seed = heed_input(c.g, HEED_F64, heed_tensor_shape(out), c.cot);
    if (!(out->flags & HEED_REQUIRES_GRAD)) {
        st = heed_ctx_fail(ctx, HEED_ERR_STATE, "heed_gradcheck: the output does not depend on any checked input");
        goto done;
    }
    if (heed_backward_with(c.g, out, seed) != HEED_OK) goto graph_error;

    /* Collect the elements to probe with their analytic derivatives. */
    int n_params = o.params ? heed_params_count(o.params) : 0;
    int64_t total = 0;
    for (int i = 0; i < n_inputs; i++)
        if (!inputs[i].no_grad) total += ins[i]->numel;
    for (int p = 0; p < n_params; p++) total += heed_params_at(o.params, p)->numel;
    probes = malloc((size_t)(total ? total : 1) * sizeof *probes);
    if (!probes) {
        st = heed_ctx_fail(ctx, HEED_ERR_NOMEM, "heed_gradcheck: out of memory");
        goto done;
    }
    int64_t np = 0;
    for (int i = 0; i < n_inputs + n_params; i++) {
        heed_tensor *t = i < n_inputs ? ins[i] : heed_params_at(o.params, i - n_inputs);
        if (i < n_inputs && inputs[i].no_grad) continue;
        if (i >= n_inputs && !(t->flags & HEED_REQUIRES_GRAD)) continue; /* frozen */
        const double *gr = t->grad;
        double *vals = i < n_inputs ? c.data[i] : t->data;
        const char *param = i < n_inputs ? NULL : t->name;
        int64_t n = t->numel, take = o.max_per_tensor > 0 && o.max_per_tensor < n ? o.max_per_tensor : n;
        for (int64_t k = 0; k < take; k++) {
            int64_t j = take == n ? k : (int64_t)heed_rng_below(&rng, (uint64_t)n);
            probes[np++] =
                (probe){.value = vals + j, .analytic = gr ? gr[j] : 0.0, .param = param, .input = i, .index = j};
        }
    }

    /* Numeric pass, then the verdict (the automatic atol needs every derivative first). */
    for (int64_t k = 0; k < np; k++) {
        double saved = *probes[k].value, lp = 0, lm = 0;
        *probes[k].value = saved + eps;
        if (eval_loss(&c, ins, &lp) != HEED_OK) goto graph_error;
        *probes[k].value = saved - eps;
        if (eval_loss(&c, ins, &lm) != HEED_OK) goto graph_error;
        *probes[k].value = saved;
        probes[k].numeric = (lp - lm) / (2 * eps);
        if (isfinite(probes[k].numeric)) res->max_grad = fmax(res->max_grad, fabs(probes[k].numeric));
    }
    if (auto_atol) atol = 1e-5 * fmin(fmax(res->max_grad, 1e-3), 1);
    res->atol = atol;
    res->checked = np;
    res->weak = np > 0 && res->max_grad < atol;
    int64_t worst = -1;
    for (int64_t k = 0; k < np; k++) {
        double r = error_ratio(&probes[k], atol, rtol);
        if (worst < 0 || r > res->worst_ratio) worst = k, res->worst_ratio = r;
    }
    res->passed = worst < 0 || res->worst_ratio <= 1;
    if (worst >= 0) {
        const probe *w = &probes[worst];
        if (w->param) snprintf(res->worst_name, sizeof res->worst_name, "%s", w->param);
        else snprintf(res->worst_name, sizeof res->worst_name, "input %d", w->input);
        res->worst_index = w->index;
        res->analytic = w->analytic;
        res->numeric = w->numeric;
        res->worst_diff = fabs(w->analytic - w->numeric);
    }
    snprintf(
        res->report, sizeof res->report,
        "%s: %lld elements; worst at %s[%lld]: analytic %.10g, numeric %.10g, |difference| %.3g = %.3g x its tolerance "
        "(atol %.3g%s, rtol %.3g)%s",
        res->passed ? "passed" : "FAILED", (long long)res->checked, res->worst_name, (long long)res->worst_index,
        res->analytic, res->numeric, res->worst_diff, res->worst_ratio, atol, auto_atol ? " automatic" : "", rtol,
        res->weak ? "; WARNING: every gradient is below atol, so any gradient that small would pass" : "");
    if (!res->passed) st = heed_ctx_fail(ctx, HEED_ERR_GRADCHECK, "heed_gradcheck: %s", res->report);
    goto done;

graph_error:
    st = heed_graph_status(c.g);
    heed_ctx_fail(ctx, st, "%s", heed_graph_error(c.g));
done:
    ctx->rng_counter = c.rng_counter;
    if (c.data)
        for (int i = 0; i < n_inputs; i++) free(c.data[i]);
    free(c.data);
    free(ins);
    free(c.cot);
    free(probes);
    heed_graph_free(c.g);
    return st;
}
