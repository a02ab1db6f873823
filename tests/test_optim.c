/* Optimizers: each against PyTorch on a small problem, one hand-derived case each,
 * convergence on a convex problem, groups, frozen parameters, the state interface
 * (restore and continue bitwise), f32 against f64, the threaded pass against a scalar
 * reference, clipping, gradient accumulation, the non-finite guard and bad input. */
#include "check.h"
#include "heed/elementwise.h"
#include "heed/matmul.h"
#include "heed/optim.h"
#include "heed/reduce.h"

#include <omp.h>

static heed_ctx *ctx;
void heed__force_scalar(bool on); /* test hook (graph/simd.c): the non-AVX2 f32 kernels */

/* The call must return code with a message in ctx containing needle. */
#define CHECK_CTX_ERR(call, code, needle)                                                                              \
    do {                                                                                                               \
        heed_status st_ = (call);                                                                                      \
        CHECK(st_ == (code) && strstr(heed_ctx_error(ctx), (needle)), "want %s containing '%s', got %s: '%s'",         \
              heed_status_name(code), (needle), heed_status_name(st_), heed_ctx_error(ctx));                           \
    } while (0)

/* ---------------------------------------------------------------- the PyTorch cases */

/* Parameters w[2,3] and b[3] (9 elements, p0 below), loss sum_i a_i (p_i - c_i)^2 / 2 with
 * a_i = 1 + 0.5 i, c_i = 0.1 i - 0.3, so g_i = a_i (p_i - c_i); five updates. Expected
 * final parameters from PyTorch 1.13 (python3 with torch, float64), printed with %.17g by
 * this script:
 *   import torch
 *   torch.set_default_dtype(torch.float64)
 *   a = torch.tensor([1 + 0.5 * i for i in range(9)])
 *   c = torch.tensor([0.1 * i - 0.3 for i in range(9)])
 *   p0 = torch.tensor([0.5, -1.2, 2.0, 0.3, -0.7, 1.1, 0.25, -0.4, 0.9])
 *   def run(make, steps=5, groups=False):
 *       w = p0[:6].clone().requires_grad_(); b = p0[6:].clone().requires_grad_()
 *       opt = make([w, b]) if not groups else make(w, b)
 *       for _ in range(steps):
 *           opt.zero_grad()
 *           p = torch.cat([w, b])
 *           (0.5 * a * (p - c) ** 2).sum().backward()
 *           opt.step()
 *       return torch.cat([w, b]).tolist()
 *   O = torch.optim
 *   cases = {
 *    "sgd": lambda P: O.SGD(P, lr=0.1),
 *    "sgd_momentum": lambda P: O.SGD(P, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
 *    "sgd_nesterov": lambda P: O.SGD(P, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
 *    "adam": lambda P: O.Adam(P, lr=0.1),
 *    "adam_amsgrad_wd": lambda P: O.Adam(P, lr=0.1, weight_decay=0.1, amsgrad=True, betas=(0.8, 0.9)),
 *    "adamw": lambda P: O.AdamW(P, lr=0.1, weight_decay=0.1),
 *    "adamw_amsgrad": lambda P: O.AdamW(P, lr=0.1, weight_decay=0.1, amsgrad=True, betas=(0.8, 0.9), eps=1e-3),
 *    "rmsprop": lambda P: O.RMSprop(P, lr=0.01),
 *    "rmsprop_centered_momentum": lambda P: O.RMSprop(P, lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1),
 *    "rmsprop_momentum": lambda P: O.RMSprop(P, lr=0.01, momentum=0.5),
 *    "rmsprop_centered": lambda P: O.RMSprop(P, lr=0.01, centered=True),
 *    "adagrad": lambda P: O.Adagrad(P, lr=0.1, lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.1),
 *   }
 *   for k, f in cases.items():
 *       print(k, ", ".join("%.17g" % v for v in run(f)))
 *   # groups: b gets half the rate and no decay
 *   print("adamw_groups", ", ".join("%.17g" % v for v in run(
 *       lambda w, b: O.AdamW([{"params": [w]}, {"params": [b], "lr": 0.05, "weight_decay": 0.0}], lr=0.1, weight_decay=0.1),
 *       groups=True)))
 *   print("sgd_groups", ", ".join("%.17g" % v for v in run(
 *       lambda w, b: O.SGD([{"params": [w]}, {"params": [b], "lr": 0.3, "weight_decay": 0.0}], lr=0.1, momentum=0.9, weight_decay=0.5),
 *       groups=True))) */
static const double p0[9] = {0.5, -1.2, 2.0, 0.3, -0.7, 1.1, 0.25, -0.4, 0.9};
static const struct {
    const char *name;
    double want[9];
} torch_cases[] = {
    {"sgd",
     {0.17239199999999999, -0.64370531249999996, 0.58812799999999998, 0.071191406250000033, -0.034455999999999924,
      0.30442615625000002, 0.2961120000000001, 0.35973725000000006, 0.51249999999999996}},
    {"sgd_momentum",
     {-0.28460459533049898, 0.1084812790012632, -1.2278543304390614, -0.20656129064627599, 0.7164393872739292,
      -0.51752054558206384, 0.337306535035096, 0.96633490791142784, 0.25208895142045401}},
    {"sgd_nesterov",
     {-0.38533309357870527, 0.13423424900037895, -0.97365149825565023, -0.12260344263287723, 0.37656414562180179,
      -0.032478059221574575, 0.30729472055466756, 0.46137553368188605, 0.49499937225790552}},
    {"adam",
     {0.011504288046135097, -0.70796366015196821, 1.502774554659436, -0.11617778772761904, -0.21150428358521595,
      0.60943964642530635, 0.26053627487763426, 0.088495717158270454, 0.44461079539685816}},
    {"adam_amsgrad_wd",
     {0.01330243786722933, -0.70848363575010953, 1.5030318639649509, -0.096774825421631044, -0.21261031745368092,
      0.61015832809353432, 0.26825385844357874, 0.087238047362457993, 0.45457446761975312}},
    {"adamw",
     {-0.0024028278434642808, -0.66042434516074422, 1.4153313135399175, -0.11772948938054155, -0.18820864501593967,
      0.56695958454845463, 0.26189801647839028, 0.097705168353209998, 0.4184195639184814}},
    {"adamw_amsgrad",
     {-0.00066250489977331961, -0.66158423774413666, 1.4157561032636721, -0.097355935217664766, -0.18954924500798265,
      0.56808789677606109, 0.27375917153430807, 0.096500412519423637, 0.43347564935172911}},
    {"rmsprop",
     {0.20235592741153419, -0.89646579225248302, 1.6849848330637589, 0.060251342563043639, -0.40235591039984164,
      0.7990509008322223, 0.30103457600469863, -0.10235590756455953, 0.63553783873201986}},
    {"rmsprop_centered_momentum",
     {0.30413802052056449, -1.0021674533358567, 1.7990573375042589, 0.11932028988006593, -0.50388248851194972,
      0.90290817492110276, 0.28809416178190544, -0.20393913557263368, 0.71222300392056903}},
    {"rmsprop_momentum",
     {0.01331754266172936, -0.69908304098115082, 1.4722001916845362, -0.041790974362726371, -0.21331751508696029,
      0.60529693350277269, 0.30511254587859121, 0.086682489508834781, 0.49666000413194161}},
    {"rmsprop_centered",
     {0.19892340035203165, -0.8928399501814126, 1.6809942041070318, 0.058675243715143786, -0.39892338300783053,
      0.79550951048771201, 0.30098593708927757, -0.0989233801171302, 0.63320737775228408}},
    {"adagrad",
     {0.24737043510840723, -0.93518171684393825, 1.7245347065514578, 0.087514058573614814, -0.43806957343311287,
      0.83494381513485039, 0.29268269282678561, -0.13754736213198265, 0.66112339981519519}},
    {"adamw_groups",
     {-0.0024028278434642808, -0.66042434516074422, 1.4153313135399175, -0.11772948938054155, -0.18820864501593967,
      0.56695958454845463, 0.30542604019689562, -0.15199239711211338, 0.6557521420156539}},
    {"sgd_groups",
     {-0.44941328125000002, 0.45944100000000021, -1.5702582500000009, -0.23348399999999989, 0.69744859375000001,
      -0.49932500000000013, 0.25600599999999996, -0.16927825000000021, 0.65544000000000002}},
};

static heed_params *quad_store(heed_dtype dt) {
    heed_params *P = heed_params_new(ctx, dt);
    heed_tensor *w = heed_param(P, "w", HEED_SHAPE(2, 3), heed_init_zeros());
    heed_tensor *b = heed_param(P, "b", HEED_SHAPE(3), heed_init_zeros());
    for (int i = 0; i < 9; i++) {
        heed_tensor *t = i < 6 ? w : b;
        int k = i < 6 ? i : i - 6;
        if (dt == HEED_F32) ((float *)t->data)[k] = (float)p0[i];
        else ((double *)t->data)[k] = p0[i];
    }
    return P;
}

static double quad_get(heed_params *P, int i) { return heed_get(heed_params_at(P, i < 6 ? 0 : 1), i < 6 ? i : i - 6); }

/* g_i = a_i (p_i - c_i), written straight into the store's gradient buffer */
static void quad_grads(heed_params *P) {
    for (int i = 0; i < 9; i++) {
        heed_tensor *t = heed_params_at(P, i < 6 ? 0 : 1);
        int k = i < 6 ? i : i - 6;
        double g = (1 + 0.5 * i) * (quad_get(P, i) - (0.1 * i - 0.3));
        if (t->dtype == HEED_F32) ((float *)t->grad)[k] = (float)g;
        else ((double *)t->grad)[k] = g;
    }
}

static heed_optimizer *make_case(const char *name, heed_params *P) {
    heed_sgd_opts s = {0};
    heed_adam_opts a = {0}, aw = {0};
    heed_rmsprop_opts r = {0};
    heed_adagrad_opts ag = {0};
    s.lr = a.lr = aw.lr = 0.1;
    r.lr = 0.01;
    if (!strcmp(name, "sgd")) return heed_sgd(P, &s);
    if (!strcmp(name, "sgd_momentum"))
        return s.momentum = 0.9, s.dampening = 0.1, s.weight_decay = 0.01, heed_sgd(P, &s);
    if (!strcmp(name, "sgd_nesterov"))
        return s.momentum = 0.9, s.nesterov = true, s.weight_decay = 0.01, heed_sgd(P, &s);
    if (!strcmp(name, "adam")) return heed_adam(P, &a);
    if (!strcmp(name, "adam_amsgrad_wd"))
        return a.weight_decay = 0.1, a.amsgrad = true, a.beta1 = 0.8, a.beta2 = 0.9, heed_adam(P, &a);
    if (!strcmp(name, "adamw")) return aw.weight_decay = 0.1, heed_adamw(P, &aw);
    if (!strcmp(name, "adamw_amsgrad"))
        return aw.weight_decay = 0.1, aw.amsgrad = true, aw.beta1 = 0.8, aw.beta2 = 0.9, aw.eps = 1e-3,
               heed_adamw(P, &aw);
    if (!strcmp(name, "rmsprop")) return heed_rmsprop(P, &r);
    if (!strcmp(name, "rmsprop_centered_momentum"))
        return r.alpha = 0.9, r.momentum = 0.5, r.centered = true, r.weight_decay = 0.1, heed_rmsprop(P, &r);
    if (!strcmp(name, "rmsprop_momentum")) return r.momentum = 0.5, heed_rmsprop(P, &r);
    if (!strcmp(name, "rmsprop_centered")) return r.centered = true, heed_rmsprop(P, &r);
    if (!strcmp(name, "adagrad"))
        return ag.lr = 0.1, ag.lr_decay = 0.1, ag.weight_decay = 0.1, ag.initial_accumulator_value = 0.1,
               heed_adagrad(P, &ag);
    if (!strcmp(name, "adamw_groups")) {
        heed_optimizer *o = heed_adamw(P, (aw.weight_decay = 0.1, &aw));
        int group = -1;
        CHECK(heed_optimizer_add_group(o, heed_param_is_vector, NULL, 0.5, 0.0, &group) == HEED_OK && group == 1, "%s",
              heed_ctx_error(ctx));
        return o;
    }
    if (!strcmp(name, "sgd_groups")) {
        heed_optimizer *o = heed_sgd(P, (s.momentum = 0.9, s.weight_decay = 0.5, &s));
        int group = -1;
        CHECK(heed_optimizer_add_group_named(o, "b", 3.0, 0.0, &group) == HEED_OK && group == 1, "%s",
              heed_ctx_error(ctx));
        return o;
    }
    return NULL;
}

static void run_case(const char *name, heed_dtype dt, double out[9]) {
    heed_params *P = quad_store(dt);
    heed_optimizer *o = make_case(name, P);
    CHECK(o != NULL, "%s: %s", name, heed_ctx_error(ctx));
    for (int step = 0; o && step < 5; step++) {
        heed_params_zero_grad(P);
        quad_grads(P);
        CHECK(heed_optimizer_step(o) == HEED_OK, "%s", heed_ctx_error(ctx));
    }
    CHECK(!o || heed_optimizer_steps(o) == 5, "steps %lld", (long long)heed_optimizer_steps(o));
    for (int i = 0; i < 9; i++) out[i] = quad_get(P, i);
    heed_optimizer_free(o);
    heed_params_free(P);
}

static void against_pytorch(void) {
    for (size_t c = 0; c < sizeof torch_cases / sizeof *torch_cases; c++) {
        double got[9];
        run_case(torch_cases[c].name, HEED_F64, got);
        double err = check_max_err(got, torch_cases[c].want, 9);
        CHECK(err <= 1e-13, "%s (f64): max |heed - torch| = %.3g", torch_cases[c].name, err);
        /* the f32 kernels (AVX2+FMA build where the CPU has it, and the generic one)
         * follow the same formulas in single precision */
        for (int generic = 0; generic < 2; generic++) {
            double got32[9];
            heed__force_scalar(generic);
            run_case(torch_cases[c].name, HEED_F32, got32);
            heed__force_scalar(false);
            double err32 = check_max_err(got32, torch_cases[c].want, 9);
            CHECK(err32 <= 2e-6, "%s (f32%s): max |heed - torch| = %.3g", torch_cases[c].name,
                  generic ? ", generic" : "", err32);
        }
    }
}

/* ---------------------------------------------------------------- cases worked by hand */

/* One scalar parameter p (a [1] tensor) and gradients set by hand before each update. */
typedef struct {
    heed_params *P;
    heed_tensor *p;
} scalar_problem;

static scalar_problem scalar_new(double p) {
    scalar_problem s;
    s.P = heed_params_new(ctx, HEED_F64);
    s.p = heed_param(s.P, "p", HEED_SHAPE(1), heed_init_constant(p));
    return s;
}

static double scalar_step(heed_optimizer *o, scalar_problem *s, double g) {
    ((double *)s->p->grad)[0] = g;
    CHECK(heed_optimizer_step(o) == HEED_OK, "%s", heed_ctx_error(ctx));
    return ((double *)s->p->data)[0];
}

static void by_hand(void) {
    /* SGD, lr 0.1, momentum 0.9, g = 0.5 twice: b1 = g = 0.5, p = 1 - 0.05 = 0.95;
     * b2 = 0.9 * 0.5 + 0.5 = 0.95, p = 0.95 - 0.095 = 0.855 */
    scalar_problem s = scalar_new(1);
    heed_optimizer *o = heed_sgd(s.P, &(heed_sgd_opts){.lr = 0.1, .momentum = 0.9});
    CHECK_CLOSE(scalar_step(o, &s, 0.5), 0.95, 1e-15);
    CHECK_CLOSE(scalar_step(o, &s, 0.5), 0.855, 1e-15);
    heed_optimizer_free(o);
    heed_params_free(s.P);

    /* Adam, eps 0, a constant gradient: m_hat = g and v_hat = g^2 at every t, so each
     * update moves p by exactly lr: 1 -> 0.9 -> 0.8 (any g > 0; here 0.5). */
    s = scalar_new(1);
    heed_adam_opts ao = {.lr = 0.1, .eps = HEED_ZERO};
    o = heed_adam(s.P, &ao);
    CHECK_CLOSE(scalar_step(o, &s, 0.5), 0.9, 1e-15);
    CHECK_CLOSE(scalar_step(o, &s, 0.5), 0.8, 1e-14);
    heed_optimizer_free(o);
    heed_params_free(s.P);

    /* AdamW, wd 0.5, same: p = 1 * (1 - 0.1 * 0.5) - 0.1 = 0.85 */
    s = scalar_new(1);
    ao.weight_decay = 0.5;
    o = heed_adamw(s.P, &ao);
    CHECK_CLOSE(scalar_step(o, &s, 0.5), 0.85, 1e-15);
    heed_optimizer_free(o);
    heed_params_free(s.P);

    /* AMSGrad, b1 = 0, b2 = 0.5, eps 0, lr 0.1; g = 1 then 0.1.
     * t=1: m = 1, v = 0.5 = v_max; denom = sqrt(0.5)/sqrt(0.5) = 1 -> p = 1 - 0.1 = 0.9.
     * t=2: m = 0.1, v = 0.25 + 0.005 = 0.255, v_max stays 0.5; 1 - b2^2 = 0.75;
     *      p = 0.9 - 0.1 * 0.1 / (sqrt(0.5)/sqrt(0.75)) = 0.9 - 0.01 sqrt(1.5).
     * Plain Adam instead divides by sqrt(0.255/0.75) = sqrt(0.34). */
    for (int ams = 0; ams < 2; ams++) {
        s = scalar_new(1);
        o = heed_adam(s.P,
                      &(heed_adam_opts){.lr = 0.1, .beta1 = HEED_ZERO, .beta2 = 0.5, .eps = HEED_ZERO, .amsgrad = ams});
        CHECK_CLOSE(scalar_step(o, &s, 1), 0.9, 1e-15);
        CHECK_CLOSE(scalar_step(o, &s, 0.1), ams ? 0.9 - 0.01 * sqrt(1.5) : 0.9 - 0.01 / sqrt(0.34), 1e-15);
        heed_optimizer_free(o);
        heed_params_free(s.P);
    }

    /* RMSprop, lr 0.01, alpha 0.99, eps 0, g = 0.5: s = 0.01 * 0.25 = 0.0025, sqrt = 0.05,
     * p = 1 - 0.01 * 0.5 / 0.05 = 0.9. Centered, also a = 0.005: s - a^2 = 0.002475. */
    s = scalar_new(1);
    o = heed_rmsprop(s.P, &(heed_rmsprop_opts){.lr = 0.01, .alpha = 0.99, .eps = HEED_ZERO});
    CHECK_CLOSE(scalar_step(o, &s, 0.5), 0.9, 1e-15);
    heed_optimizer_free(o);
    heed_params_free(s.P);
    s = scalar_new(1);
    o = heed_rmsprop(s.P, &(heed_rmsprop_opts){.lr = 0.01, .alpha = 0.99, .eps = HEED_ZERO, .centered = true});
    CHECK_CLOSE(scalar_step(o, &s, 0.5), 1 - 0.005 / sqrt(0.002475), 1e-15);
    heed_optimizer_free(o);
    heed_params_free(s.P);

    /* Adagrad, lr 0.1, lr_decay 1, eps 0, g = 0.5 twice: s = 0.25, p = 1 - 0.1 * 0.5/0.5
     * = 0.9; s = 0.5, clr = 0.1 / (1 + 1) = 0.05, p = 0.9 - 0.05 * 0.5 / sqrt(0.5). */
    s = scalar_new(1);
    o = heed_adagrad(s.P, &(heed_adagrad_opts){.lr = 0.1, .lr_decay = 1, .eps = HEED_ZERO});
    CHECK_CLOSE(scalar_step(o, &s, 0.5), 0.9, 1e-15);
    CHECK_CLOSE(scalar_step(o, &s, 0.5), 0.9 - 0.025 / sqrt(0.5), 1e-15);
    heed_optimizer_free(o);
    heed_params_free(s.P);
}

/* ---------------------------------------------------------------- convergence */

/* Least squares through the graph: loss = mean((X w + b - y)^2) with X[64,5] random and
 * y from known w*, b*. Every optimizer must reach the minimum (loss 0). */
static double regression_loss(heed_graph *g, heed_params *P, const double *X, const double *y, bool backward) {
    heed_graph_reset(g);
    heed_tensor *x = heed_input_f64(g, HEED_F64, HEED_SHAPE(64, 5), X);
    heed_tensor *t = heed_input_f64(g, HEED_F64, HEED_SHAPE(64, 1), y);
    heed_tensor *d = heed_sub(g, heed_linear(g, x, heed_params_find(P, "w"), heed_params_find(P, "b")), t);
    heed_tensor *loss = heed_mean_all(g, heed_mul(g, d, d));
    if (backward) CHECK(heed_backward(g, loss) == HEED_OK, "%s", heed_graph_error(g));
    return loss ? heed_get(loss, 0) : NAN;
}

static void converges(void) {
    double X[64 * 5], y[64], wstar[5] = {1.5, -2, 0.5, 3, -1}, bstar = 0.7;
    heed_rng r = heed_rng_make(7, 1);
    for (int i = 0; i < 64; i++) {
        y[i] = bstar;
        for (int k = 0; k < 5; k++) y[i] += wstar[k] * (X[i * 5 + k] = heed_rng_normal(&r));
    }
    const char *names[] = {"sgd", "sgd_nesterov", "adam", "adamw", "amsgrad", "rmsprop", "adagrad"};
    for (int c = 0; c < 7; c++) {
        heed_params *P = heed_params_new(ctx, HEED_F64);
        heed_param(P, "w", HEED_SHAPE(1, 5), heed_init_zeros());
        heed_param(P, "b", HEED_SHAPE(1), heed_init_zeros());
        heed_optimizer *o = NULL;
        int steps = 400;
        switch (c) {
        case 0: o = heed_sgd(P, &(heed_sgd_opts){.lr = 0.1}); break;
        case 1: o = heed_sgd(P, &(heed_sgd_opts){.lr = 0.05, .momentum = 0.9, .nesterov = true}); break;
        case 2: o = heed_adam(P, &(heed_adam_opts){.lr = 0.05, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8}); break;
        case 3:
            o = heed_adamw(P, &(heed_adam_opts){.lr = 0.05, .weight_decay = HEED_ZERO});
            break; /* no decay: the exact fit */
        case 4:
            o = heed_adam(P, &(heed_adam_opts){.lr = 0.05, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .amsgrad = true});
            break;
        case 5: o = heed_rmsprop(P, &(heed_rmsprop_opts){.lr = 0.05, .alpha = 0.99, .eps = 1e-8}); break;
        case 6: o = heed_adagrad(P, &(heed_adagrad_opts){.lr = 0.5, .eps = 1e-10}); break;
        }
        heed_graph *g = heed_graph_new(ctx);
        double first = regression_loss(g, P, X, y, false), loss = first;
        /* cosine annealing to 0 lets the adaptive methods settle instead of hovering */
        heed_schedule sched = heed_schedule_cosine(heed_optimizer_lr(o), steps, 0);
        for (int s = 0; s < steps; s++) {
            CHECK(heed_schedule_apply(o, &sched) == HEED_OK, "%s", heed_ctx_error(ctx));
            heed_params_zero_grad(P);
            regression_loss(g, P, X, y, true);
            heed_optimizer_step(o);
        }
        loss = regression_loss(g, P, X, y, false);
        CHECK(loss < 1e-6 * first, "%s: loss %.3g after %d steps (from %.3g)", names[c], loss, steps, first);
        double werr = check_err(heed_get(heed_params_find(P, "b"), 0), bstar);
        for (int k = 0; k < 5; k++) werr = fmax(werr, check_err(heed_get(heed_params_find(P, "w"), k), wstar[k]));
        CHECK(werr < 1e-3, "%s: parameters off by %.3g", names[c], werr);
        heed_graph_free(g);
        heed_optimizer_free(o);
        heed_params_free(P);
    }
}

/* ---------------------------------------------------------------- options and the step count */

/* Five quadratic-problem updates by each of oa (on A) and ob (on B) give the same bits. */
static void check_same_updates(const char *what, heed_params *A, heed_optimizer *oa, heed_params *B,
                               heed_optimizer *ob) {
    CHECK(oa && ob, "%s: %s", what, heed_ctx_error(ctx));
    for (int step = 0; oa && ob && step < 5; step++) {
        quad_grads(A);
        quad_grads(B);
        CHECK(heed_optimizer_step(oa) == HEED_OK && heed_optimizer_step(ob) == HEED_OK, "%s", heed_ctx_error(ctx));
    }
    for (int i = 0; i < 9; i++)
        CHECK(quad_get(A, i) == quad_get(B, i) && isfinite(quad_get(A, i)), "%s: element %d: %.17g vs %.17g", what, i,
              quad_get(A, i), quad_get(B, i));
    heed_optimizer_free(oa);
    heed_optimizer_free(ob);
    heed_params_free(A);
    heed_params_free(B);
}

/* A field left 0 is PyTorch's default, HEED_ZERO a real 0. Before this rule a zero field
 * was a zero value: heed_adam(P, {.lr = 3e-4}) ran with beta1 = beta2 = eps = 0, and a
 * zero gradient became 0 / (sqrt(0) + 0) = NaN on the first step, with HEED_OK. */
static void options_zero_means_default(void) {
    scalar_problem s = scalar_new(1);
    heed_optimizer *o = heed_adam(s.P, &(heed_adam_opts){.lr = 3e-4});
    double p = scalar_step(o, &s, 0);
    CHECK(p == 1, "a zero gradient leaves p at 1, got %.17g", p);
    heed_optimizer_free(o);
    heed_params_free(s.P);

    heed_params *A, *B;
    A = quad_store(HEED_F64), B = quad_store(HEED_F64);
    check_same_updates("adam {.lr}", A, heed_adam(A, &(heed_adam_opts){.lr = 3e-4}), B,
                       heed_adam(B, &(heed_adam_opts){.lr = 3e-4, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8}));
    A = quad_store(HEED_F64), B = quad_store(HEED_F64);
    check_same_updates("adamw NULL", A, heed_adamw(A, NULL), B,
                       heed_adamw(B, &(heed_adam_opts){.lr = 1e-3,
                                                       .beta1 = 0.9,
                                                       .beta2 = 0.999,
                                                       .eps = 1e-8,
                                                       .weight_decay = 1e-2}));
    A = quad_store(HEED_F64), B = quad_store(HEED_F64);
    check_same_updates("adamw, HEED_ZERO weight decay", A, heed_adamw(A, &(heed_adam_opts){.weight_decay = HEED_ZERO}),
                       B, heed_adam(B, &(heed_adam_opts){0}));
    A = quad_store(HEED_F64), B = quad_store(HEED_F64);
    check_same_updates("sgd NULL", A, heed_sgd(A, NULL), B, heed_sgd(B, &(heed_sgd_opts){.lr = 1e-2}));
    A = quad_store(HEED_F64), B = quad_store(HEED_F64);
    check_same_updates("rmsprop {.momentum}", A, heed_rmsprop(A, &(heed_rmsprop_opts){.momentum = 0.5}), B,
                       heed_rmsprop(B, &(heed_rmsprop_opts){.lr = 1e-2, .alpha = 0.99, .eps = 1e-8, .momentum = 0.5}));
    A = quad_store(HEED_F64), B = quad_store(HEED_F64);
    check_same_updates("adagrad NULL", A, heed_adagrad(A, NULL), B,
                       heed_adagrad(B, &(heed_adagrad_opts){.lr = 1e-2, .eps = 1e-10}));
    /* HEED_EXACTLY passes a run-time value, 0 included */
    double zero = 0;
    A = quad_store(HEED_F64), B = quad_store(HEED_F64);
    check_same_updates("HEED_EXACTLY(0)", A, heed_adam(A, &(heed_adam_opts){.beta1 = HEED_EXACTLY(zero)}), B,
                       heed_adam(B, &(heed_adam_opts){.beta1 = HEED_ZERO}));
    CHECK(HEED_EXACTLY(0.25) == 0.25, "HEED_EXACTLY of a nonzero value is the value");
}

/* The step count stops at HEED_MAX_STEPS = 2^53: restoring more is refused, and a step at
 * the limit fails instead of overflowing (it used to: a checkpoint with optim.steps =
 * INT64_MAX loaded, and the next step's steps + 1 was signed overflow, UB). */
static void step_count_limit(void) {
    heed_params *P = quad_store(HEED_F64);
    heed_optimizer *o = heed_adam(P, NULL);
    CHECK_CTX_ERR(heed_optimizer_set_steps(o, INT64_MAX), HEED_ERR_ARG, "steps = 9223372036854775807");
    CHECK_CTX_ERR(heed_optimizer_set_steps(o, HEED_MAX_STEPS + 1), HEED_ERR_ARG, "steps = 9007199254740993");
    CHECK(heed_optimizer_steps(o) == 0, "refused: %lld", (long long)heed_optimizer_steps(o));
    CHECK(heed_optimizer_set_steps(o, HEED_MAX_STEPS - 1) == HEED_OK, "%s", heed_ctx_error(ctx));
    quad_grads(P);
    CHECK(heed_optimizer_step(o) == HEED_OK && heed_optimizer_steps(o) == HEED_MAX_STEPS, "the last step: %s",
          heed_ctx_error(ctx));
    double before = quad_get(P, 4);
    CHECK(isfinite(before), "the last step is finite: %g", before);
    CHECK_CTX_ERR(heed_optimizer_step(o), HEED_ERR_STATE, "the step count is 9007199254740992");
    CHECK(heed_optimizer_steps(o) == HEED_MAX_STEPS && quad_get(P, 4) == before, "a refused step changes nothing");
    heed_optimizer_free(o);
    heed_params_free(P);
}

/* ---------------------------------------------------------------- groups and frozen parameters */

static void groups_and_frozen(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_tensor *ew = heed_param(P, "enc.w", HEED_SHAPE(4, 3), heed_init_constant(1));
    heed_tensor *eb = heed_param(P, "enc.bias", HEED_SHAPE(4), heed_init_constant(1));
    heed_tensor *dw = heed_param(P, "dec.w", HEED_SHAPE(2, 4), heed_init_constant(1));
    heed_tensor *db = heed_param(P, "dec.bias", HEED_SHAPE(2), heed_init_constant(1));
    heed_tensor *gain = heed_param(P, "norm.gain", HEED_SHAPE(4), heed_init_constant(1));
    heed_optimizer *o = heed_sgd(P, &(heed_sgd_opts){.lr = 0.1, .weight_decay = 0.5});
    int groups[3] = {-1, -1, -1};
    CHECK(heed_optimizer_add_group_named(o, "*.bias", 1, 0, &groups[0]) == HEED_OK &&
              heed_optimizer_add_group(o, heed_param_is_vector, NULL, 2, 0, &groups[1]) == HEED_OK &&
              heed_optimizer_add_group_named(o, "enc.*", 0.5, 0.25, &groups[2]) == HEED_OK,
          "%s", heed_ctx_error(ctx));
    CHECK(groups[0] == 1 && groups[1] == 2 && groups[2] == 3, "group indices %d %d %d", groups[0], groups[1],
          groups[2]);
    /* a parameter joins the first group that claims it */
    int want[5] = {3, 1, 0, 1, 2};
    for (int i = 0; i < 5; i++) {
        int got = -1;
        CHECK(heed_optimizer_group_of(o, i, &got) == HEED_OK && got == want[i], "param %d in group %d, want %d", i, got,
              want[i]);
    }
    CHECK(heed_optimizer_group_count(o) == 4, "groups");
    CHECK(heed_optimizer_set_lr(o, 0.2) == HEED_OK, "%s", heed_ctx_error(ctx));
    double lr2 = NAN, lr3 = NAN, wd3 = NAN;
    CHECK(heed_optimizer_group_lr(o, 2, &lr2) == HEED_OK && heed_optimizer_group_lr(o, 3, &lr3) == HEED_OK &&
              heed_optimizer_group_weight_decay(o, 3, &wd3) == HEED_OK,
          "%s", heed_ctx_error(ctx));
    CHECK_CLOSE(lr2, 0.4, 1e-15);
    CHECK_CLOSE(lr3, 0.1, 1e-15);
    CHECK(wd3 == 0.25, "wd %g", wd3);
    CHECK(heed_optimizer_set_lr(o, 0.1) == HEED_OK, "%s", heed_ctx_error(ctx));
    heed_param_freeze(dw, true);
    /* all gradients 1: p = 1 - lr_g (1 + wd_g) */
    heed_params_zero_grad(P);
    CHECK(heed_params_scale_grad(P, 0) == HEED_OK, "%s", heed_ctx_error(ctx)); /* still zero */
    for (int i = 0; i < 5; i++) {
        heed_tensor *t = heed_params_at(P, i);
        for (int64_t k = 0; k < t->numel; k++) ((double *)t->grad)[k] = 1;
    }
    CHECK(heed_optimizer_step(o) == HEED_OK, "%s", heed_ctx_error(ctx));
    CHECK_CLOSE(heed_get(ew, 5), 1 - 0.05 * 1.25, 1e-15); /* group 3: lr 0.05, wd 0.25 */
    CHECK_CLOSE(heed_get(eb, 3), 1 - 0.1, 1e-15);         /* group 1: lr 0.1, wd 0 */
    CHECK(heed_get(dw, 7) == 1, "a frozen parameter does not move (got %.17g)", heed_get(dw, 7));
    CHECK_CLOSE(heed_get(db, 1), 1 - 0.1, 1e-15);
    CHECK_CLOSE(heed_get(gain, 0), 1 - 0.2, 1e-15); /* group 2: lr 0.2, wd 0 */
    CHECK(heed_optimizer_set_group(o, 0, 1, 0) == HEED_OK, "set_group");
    heed_param_freeze(dw, false);
    CHECK(heed_optimizer_step(o) == HEED_OK, "%s", heed_ctx_error(ctx));
    CHECK_CLOSE(heed_get(dw, 7), 0.9, 1e-15); /* group 0 now without decay */
    heed_optimizer_free(o);
    heed_params_free(P);
}

/* ---------------------------------------------------------------- state interface */

static void copy_state(heed_optimizer *from, heed_optimizer *to) {
    CHECK(heed_optimizer_state_count(from) == heed_optimizer_state_count(to), "state counts differ");
    for (int i = 0; i < heed_optimizer_state_count(from); i++) {
        const char *na, *nb;
        void *da, *db;
        int64_t ne_a, ne_b;
        heed_dtype ta, tb;
        CHECK(heed_optimizer_state(from, i, &na, &da, &ne_a, &ta) == HEED_OK, "state");
        CHECK(heed_optimizer_state(to, i, &nb, &db, &ne_b, &tb) == HEED_OK, "state");
        CHECK(!strcmp(na, nb) && ne_a == ne_b && ta == tb, "state %d: %s vs %s", i, na, nb);
        memcpy(db, da, (size_t)ne_a * heed_dtype_size(ta));
    }
    CHECK(heed_optimizer_set_steps(to, heed_optimizer_steps(from)) == HEED_OK &&
              heed_optimizer_set_lr(to, heed_optimizer_lr(from)) == HEED_OK,
          "%s", heed_ctx_error(ctx));
}

static void state_restore_continues_bitwise(void) {
    const char *names[] =
        {"sgd_momentum", "sgd_nesterov", "adam_amsgrad_wd", "adamw_groups", "rmsprop_centered_momentum",
         "adagrad",      "sgd_groups"};
    for (int c = 0; c < 7; c++) {
        heed_params *A = quad_store(HEED_F32), *B = quad_store(HEED_F32);
        heed_optimizer *oa = make_case(names[c], A);
        for (int s = 0; s < 3; s++) {
            heed_params_zero_grad(A);
            quad_grads(A);
            heed_optimizer_step(oa);
        }
        /* as a checkpoint would: parameters, state buffers, steps, rate into a fresh one
         * made with the same configuration (groups included) */
        heed_optimizer *ob = make_case(names[c], B);
        memcpy(heed_params_values(B), heed_params_values(A), (size_t)heed_params_padded_numel(A) * sizeof(float));
        copy_state(oa, ob);
        for (int s = 0; s < 2; s++) {
            heed_params_zero_grad(A);
            heed_params_zero_grad(B);
            quad_grads(A);
            quad_grads(B);
            heed_optimizer_step(oa);
            heed_optimizer_step(ob);
        }
        CHECK(!memcmp(heed_params_values(A), heed_params_values(B),
                      (size_t)heed_params_padded_numel(A) * sizeof(float)),
              "%s: restored run differs", names[c]);
        /* and it is the uninterrupted five-step run */
        double want[9];
        run_case(names[c], HEED_F32, want);
        for (int i = 0; i < 9; i++) CHECK(quad_get(B, i) == want[i], "%s: element %d", names[c], i);
        heed_optimizer_free(oa);
        heed_optimizer_free(ob);
        heed_params_free(A);
        heed_params_free(B);
    }
}

static void state_names(void) {
    heed_params *P = quad_store(HEED_F64);
    struct {
        heed_optimizer *o;
        const char *want;
    } cases[] = {
        {heed_sgd(P, NULL), ""},
        {heed_sgd(P, &(heed_sgd_opts){.lr = 0.1, .momentum = 0.9}), "sgd.momentum_buffer"},
        {heed_adam(P, NULL), "adam.exp_avg adam.exp_avg_sq"},
        {heed_adamw(P, &(heed_adam_opts){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.99, .amsgrad = true}),
         "adamw.exp_avg adamw.exp_avg_sq adamw.max_exp_avg_sq"},
        {heed_rmsprop(P, &(heed_rmsprop_opts){.lr = 0.01, .alpha = 0.99, .momentum = 0.9, .centered = true}),
         "rmsprop.square_avg rmsprop.momentum_buffer rmsprop.grad_avg"},
        {heed_adagrad(P, &(heed_adagrad_opts){.lr = 0.1, .initial_accumulator_value = 0.25}), "adagrad.sum"},
    };
    for (int c = 0; c < 6; c++) {
        char got[256] = "";
        for (int i = 0; i < heed_optimizer_state_count(cases[c].o); i++) {
            const char *name;
            void *data;
            int64_t n;
            heed_dtype dt;
            CHECK(heed_optimizer_state(cases[c].o, i, &name, &data, &n, &dt) == HEED_OK, "state");
            CHECK(n == heed_params_padded_numel(P) && dt == HEED_F64 && data, "%s: numel %lld", name, (long long)n);
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? " " : "", name);
            if (!strcmp(name, "adagrad.sum")) CHECK(((double *)data)[3] == 0.25, "initial accumulator");
        }
        CHECK(!strcmp(got, cases[c].want), "%s: state '%s', want '%s'", heed_optimizer_name(cases[c].o), got,
              cases[c].want);
        heed_optimizer_free(cases[c].o);
    }
    heed_params_free(P);
}

/* ---------------------------------------------------------------- the threaded pass at scale */

/* A store big enough to run on several threads, with tensors that cross chunk
 * boundaries, groups and a frozen tensor: AdamW against a plain scalar loop in double,
 * for f64 and for both f32 builds (AVX2+FMA and generic). */
static double adamw_at_scale(heed_dtype dt, bool generic) {
    heed_params *P = heed_params_new(ctx, dt);
    heed_param(P, "a", HEED_SHAPE(300, 257), heed_init_normal(0, 1));
    heed_param(P, "a.bias", HEED_SHAPE(257), heed_init_normal(0, 1));
    heed_tensor *fr = heed_param(P, "frozen", HEED_SHAPE(1000), heed_init_normal(0, 1));
    heed_param(P, "c", HEED_SHAPE(40000), heed_init_normal(0, 1));
    heed_param(P, "g", HEED_SHAPE(3), heed_init_normal(0, 1));
    heed_param_freeze(fr, true);
    int64_t n = heed_params_padded_numel(P);
    double *ref = malloc((size_t)n * sizeof *ref), *g = malloc((size_t)n * sizeof *g);
    double *m = calloc((size_t)n, sizeof *m), *v = calloc((size_t)n, sizeof *v);
    for (int64_t i = 0; i < n; i++)
        ref[i] = dt == HEED_F32 ? ((float *)heed_params_values(P))[i] : ((double *)heed_params_values(P))[i];
    heed_optimizer *o =
        heed_adamw(P, &(heed_adam_opts){.lr = 0.01, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0.1});
    CHECK(heed_optimizer_add_group(o, heed_param_is_vector, NULL, 3, 0, NULL) == HEED_OK, "%s", heed_ctx_error(ctx));
    heed_rng r = heed_rng_make(3, 3);
    omp_set_num_threads(2);
    heed__force_scalar(generic);
    for (int t = 1; t <= 3; t++) {
        for (int64_t i = 0; i < n; i++) {
            double x = heed_rng_normal(&r);
            g[i] = dt == HEED_F32 ? (double)(float)x : x;
            if (dt == HEED_F32) ((float *)heed_params_grads(P))[i] = (float)x;
            else ((double *)heed_params_grads(P))[i] = x;
        }
        CHECK(heed_optimizer_step(o) == HEED_OK, "%s", heed_ctx_error(ctx));
        for (int k = 0; k < heed_params_count(P); k++) {
            heed_tensor *tk = heed_params_at(P, k);
            if (tk == fr) continue;
            bool vec = tk->ndim <= 1;
            double lr = vec ? 0.03 : 0.01, wd = vec ? 0 : 0.1;
            for (int64_t e = 0, i = heed_params_offset(P, k); e < tk->numel; e++, i++) {
                ref[i] *= 1 - lr * wd;
                m[i] = 0.9 * m[i] + 0.1 * g[i];
                v[i] = 0.99 * v[i] + 0.01 * g[i] * g[i];
                double mh = m[i] / (1 - pow(0.9, t)), vh = v[i] / (1 - pow(0.99, t));
                ref[i] -= lr * mh / (sqrt(vh) + 1e-8);
            }
        }
    }
    heed__force_scalar(false);
    double err = 0;
    for (int64_t i = 0; i < n; i++)
        err = fmax(err, check_err(dt == HEED_F32 ? ((float *)heed_params_values(P))[i]
                                                 : ((double *)heed_params_values(P))[i],
                                  ref[i]));
    free(ref);
    free(g);
    free(m);
    free(v);
    heed_optimizer_free(o);
    heed_params_free(P);
    return err;
}

static void threaded_pass_matches_scalar(void) {
    double e64 = adamw_at_scale(HEED_F64, false);
    CHECK(e64 < 1e-13, "threaded AdamW f64 vs scalar: max error %.3g", e64);
    /* f32: parameters of size ~1, three updates; single-precision rounding is ~6e-8 per
     * operation */
    double e32 = adamw_at_scale(HEED_F32, false), e32g = adamw_at_scale(HEED_F32, true);
    CHECK(e32 < 2e-6, "threaded AdamW f32 vs scalar double: max error %.3g", e32);
    CHECK(e32g < 2e-6, "threaded AdamW f32 (generic) vs scalar double: max error %.3g", e32g);
}

/* ---------------------------------------------------------------- clipping */

static void clipping(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_tensor *a = heed_param(P, "a", HEED_SHAPE(2), heed_init_zeros());
    heed_tensor *b = heed_param(P, "b", HEED_SHAPE(1), heed_init_zeros());
    double *ga = a->grad, *gb = b->grad;
    /* global norm of (3, 0 | 4) is 5; clipping to 1 scales by 1 / (5 + 1e-6) as PyTorch */
    ga[0] = 3, ga[1] = 0, gb[0] = 4;
    CHECK_CLOSE(heed_params_grad_norm(P), 5, 1e-15);
    double norm = NAN;
    CHECK(heed_clip_grad_norm(P, 10, &norm) == HEED_OK, "%s", heed_ctx_error(ctx));
    CHECK_CLOSE(norm, 5, 1e-15);
    CHECK(ga[0] == 3 && gb[0] == 4, "under the limit nothing changes");
    norm = NAN;
    CHECK(heed_clip_grad_norm(P, 1, &norm) == HEED_OK, "%s", heed_ctx_error(ctx));
    CHECK_CLOSE(norm, 5, 1e-15);
    CHECK_CLOSE(ga[0], 3 / (5 + 1e-6), 1e-15);
    CHECK_CLOSE(gb[0], 4 / (5 + 1e-6), 1e-15);
    CHECK_CLOSE(heed_params_grad_norm(P), 1, 1e-6);
    /* a non-finite norm is returned and the gradients are left for the guard */
    ga[1] = NAN;
    norm = 0;
    CHECK(heed_clip_grad_norm(P, 1, &norm) == HEED_OK && isnan(norm) && gb[0] == 4 / (5 + 1e-6), "NaN norm");
    CHECK(!heed_params_grads_finite(P), "NaN is not finite");
    /* by value */
    ga[0] = -3, ga[1] = NAN, gb[0] = 0.5;
    CHECK(heed_clip_grad_value(P, 1) == HEED_OK, "clip value");
    CHECK(ga[0] == -1 && isnan(ga[1]) && gb[0] == 0.5, "clamped to [-1, 1]: %g %g %g", ga[0], ga[1], gb[0]);
    ga[1] = 2;
    heed_clip_grad_value(P, 1);
    CHECK(ga[1] == 1 && heed_params_grads_finite(P), "clamped");
    heed_params_free(P);

    /* f32 and a store big enough for the threaded paths */
    P = heed_params_new(ctx, HEED_F32);
    heed_tensor *w = heed_param(P, "w", HEED_SHAPE(300, 400), heed_init_zeros());
    float *gw = w->grad;
    for (int64_t i = 0; i < w->numel; i++) gw[i] = (i % 2) ? 0.5f : -0.5f;
    CHECK_CLOSE(heed_params_grad_norm(P), 0.5 * sqrt(120000.0), 1e-12);
    CHECK(heed_params_grads_finite(P), "finite");
    /* the norm is the same bits on any number of threads (ordered block sums) */
    for (int64_t i = 0; i < w->numel; i++) gw[i] = (float)sin(0.001 * (double)i);
    omp_set_num_threads(1);
    double n1 = heed_params_grad_norm(P);
    omp_set_num_threads(2);
    double n2 = heed_params_grad_norm(P);
    CHECK(n1 == n2, "norm on 1 thread %.17g, on 2 threads %.17g", n1, n2);
    gw[w->numel - 1] = INFINITY;
    CHECK(!heed_params_grads_finite(P), "Inf found in a big store");
    heed_params_free(P);
}

/* ---------------------------------------------------------------- gradient accumulation */

/* Four micro-batches of 2 rows, gradients accumulated and scaled by 1/4, give the
 * gradient of the mean loss over the whole batch of 8 (each micro-batch loss is a mean
 * over its 2 rows, so the full mean is the average of the four). */
static double *linear_loss_grads(heed_params *P, const double *X, const double *Y, int rows, int micro) {
    heed_graph *g = heed_graph_new(ctx);
    heed_params_zero_grad(P);
    for (int s = 0; s < rows / micro; s++) {
        heed_graph_reset(g);
        heed_tensor *x = heed_input_f64(g, HEED_F64, HEED_SHAPE(micro, 4), X + s * micro * 4);
        heed_tensor *y = heed_input_f64(g, HEED_F64, HEED_SHAPE(micro, 3), Y + s * micro * 3);
        heed_tensor *d = heed_sub(g, heed_linear(g, x, heed_params_find(P, "w"), heed_params_find(P, "b")), y);
        CHECK(heed_backward(g, heed_mean_all(g, heed_mul(g, d, d))) == HEED_OK, "%s", heed_graph_error(g));
    }
    CHECK(heed_params_scale_grad(P, (double)micro / rows) == HEED_OK, "%s", heed_ctx_error(ctx));
    heed_graph_free(g);
    int64_t n = heed_params_padded_numel(P);
    double *copy = malloc((size_t)n * sizeof *copy);
    memcpy(copy, heed_params_grads(P), (size_t)n * sizeof *copy);
    return copy;
}

static void accumulation_equals_big_batch(void) {
    double X[8 * 4], Y[8 * 3];
    heed_rng r = heed_rng_make(11, 2);
    for (int i = 0; i < 32; i++) X[i] = heed_rng_normal(&r);
    for (int i = 0; i < 24; i++) Y[i] = heed_rng_normal(&r);
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_param(P, "w", HEED_SHAPE(3, 4), heed_init_normal(0, 1));
    heed_param(P, "b", HEED_SHAPE(3), heed_init_normal(0, 1));
    double *big = linear_loss_grads(P, X, Y, 8, 8), *acc = linear_loss_grads(P, X, Y, 8, 2);
    check_norm c = check_norm_start(0);
    for (int64_t i = 0; i < heed_params_padded_numel(P); i++) check_norm_add(&c, acc[i], big[i]);
    CHECK(c.scale > 0.1 && check_norm_ok(c, 1e-14), "accumulated vs big batch: max error %.3g (scale %.3g)", c.err,
          c.scale);
    free(big);
    free(acc);
    heed_params_free(P);
}

/* ---------------------------------------------------------------- non-finite guard */

static void guard_skips_nonfinite_steps(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_tensor *w = heed_param(P, "w", HEED_SHAPE(2, 3), heed_init_normal(0, 1));
    heed_optimizer *o = heed_adam(P, NULL);
    heed_graph *g = heed_graph_new(ctx);
    double xs[3] = {1, 2, 3};
    /* one good step first, so the state is not all zeros */
    heed_tensor *x = heed_input_f64(g, HEED_F64, HEED_SHAPE(1, 3), xs);
    heed_tensor *loss = heed_sum_all(g, heed_linear(g, x, w, NULL));
    heed_backward(g, loss);
    CHECK(heed_optimizer_step_guarded(o, g, loss) == HEED_OK, "%s", heed_ctx_error(ctx));
    int64_t n = heed_params_padded_numel(P);
    size_t bytes = (size_t)n * sizeof(double);
    double *before = malloc(bytes), *m_before = malloc(bytes);
    void *m;
    heed_optimizer_state(o, 0, NULL, &m, NULL, NULL);

    for (int mode = 0; mode < 3; mode++) {
        memcpy(before, heed_params_values(P), bytes);
        memcpy(m_before, m, bytes);
        heed_graph_reset(g);
        heed_params_zero_grad(P);
        heed_graph_set_anomaly(g, mode == 0);
        x = heed_input_f64(g, HEED_F64, HEED_SHAPE(1, 3), xs);
        /* NaN injected by an op: y / 0 with y = x w^T (0/0 would also do) */
        heed_tensor *y = heed_linear(g, x, w, NULL);
        heed_tensor *z = heed_div(g, y, heed_zeros(g, HEED_F64, HEED_SHAPE(1, 2)));
        loss = heed_sum_all(g, z);
        heed_status bs = heed_backward(g, loss);
        heed_status st = heed_optimizer_step_guarded(o, g, mode == 2 ? NULL : loss);
        const char *msg = heed_ctx_error(ctx);
        CHECK(st == HEED_ERR_NUMERIC, "mode %d: status %s", mode, heed_status_name(st));
        if (mode == 0) { /* anomaly mode names the op that made the first non-finite value */
            CHECK(bs == HEED_ERR_NUMERIC && strstr(heed_graph_error(g), "heed_div"), "graph: %s", heed_graph_error(g));
            CHECK(strstr(msg, "heed_div") && strstr(msg, "skipped"), "guard: %s", msg);
        } else if (mode == 1) { /* without it: the loss */
            CHECK(strstr(msg, "loss is inf") != NULL, "guard: %s", msg);
        } else { /* no loss given: the first gradient */
            CHECK(strstr(msg, "gradient of 'w'") && strstr(msg, "element 0"), "guard: %s", msg);
        }
        CHECK(!memcmp(before, heed_params_values(P), bytes), "mode %d: a skipped step changed the parameters", mode);
        CHECK(!memcmp(m_before, m, bytes), "mode %d: a skipped step changed the state", mode);
        CHECK(heed_optimizer_steps(o) == 1 && heed_optimizer_skipped(o) == mode + 1, "steps %lld skipped %lld",
              (long long)heed_optimizer_steps(o), (long long)heed_optimizer_skipped(o));
    }
    /* other graph errors are passed on, no step and no skip */
    heed_graph_reset(g);
    heed_graph_set_anomaly(g, false);
    heed_matmul(g, heed_zeros(g, HEED_F64, HEED_SHAPE(2, 3)), heed_zeros(g, HEED_F64, HEED_SHAPE(2, 3)));
    CHECK(heed_optimizer_step_guarded(o, g, NULL) == HEED_ERR_SHAPE && heed_optimizer_skipped(o) == 3, "%s",
          heed_ctx_error(ctx));
    /* and a clean step goes through */
    heed_graph_reset(g);
    heed_params_zero_grad(P);
    x = heed_input_f64(g, HEED_F64, HEED_SHAPE(1, 3), xs);
    loss = heed_sum_all(g, heed_linear(g, x, w, NULL));
    heed_backward(g, loss);
    CHECK(heed_optimizer_step_guarded(o, g, loss) == HEED_OK && heed_optimizer_steps(o) == 2, "%s",
          heed_ctx_error(ctx));
    CHECK(memcmp(before, heed_params_values(P), bytes) != 0, "a good step moves the parameters");
    free(before);
    free(m_before);
    heed_graph_free(g);
    heed_optimizer_free(o);
    heed_params_free(P);
}

/* ---------------------------------------------------------------- bad input */

#define CHECK_CTX(cond, needle)                                                                                        \
    CHECK((cond) && strstr(heed_ctx_error(ctx), (needle)), "want '%s', got '%s'", (needle), heed_ctx_error(ctx))

static void bad_input(void) {
    heed_params *P = quad_store(HEED_F64);
    CHECK(heed_sgd(NULL, NULL) == NULL && heed_adam(NULL, NULL) == NULL, "NULL store");
    CHECK_CTX(!heed_sgd(P, &(heed_sgd_opts){.lr = -1}), "heed_sgd: lr = -1");
    CHECK_CTX(!heed_sgd(P, &(heed_sgd_opts){.lr = 0.1, .nesterov = true}), "nesterov needs momentum > 0");
    CHECK_CTX(!heed_sgd(P, &(heed_sgd_opts){.lr = 0.1, .momentum = 0.9, .dampening = 0.5, .nesterov = true}),
              "dampening 0");
    CHECK_CTX(!heed_adam(P, &(heed_adam_opts){.lr = 0.1, .beta1 = 1, .beta2 = 0.9}), "heed_adam: beta1 = 1");
    CHECK_CTX(!heed_adamw(P, &(heed_adam_opts){.lr = 0.1, .beta1 = 0.9, .beta2 = 0.9, .eps = -1}), "heed_adamw: eps");
    CHECK_CTX(!heed_adamw(P, &(heed_adam_opts){.lr = NAN, .beta1 = 0.9, .beta2 = 0.9}), "lr = nan");
    CHECK_CTX(!heed_rmsprop(P, &(heed_rmsprop_opts){.lr = 0.1, .alpha = 1.5}), "heed_rmsprop: alpha = 1.5");
    CHECK_CTX(!heed_adagrad(P, &(heed_adagrad_opts){.lr = 0.1, .eps = INFINITY}), "heed_adagrad: eps = inf");
    CHECK_CTX(!heed_adagrad(P, &(heed_adagrad_opts){.lr = 0.1, .weight_decay = -0.1}), "weight_decay = -0.1");
    heed_params *E = heed_params_new(ctx, HEED_F64);
    CHECK_CTX(!heed_adam(E, NULL), "empty");
    heed_params_free(E);

    heed_optimizer *o = heed_adam(P, NULL);
    CHECK_CTX(heed_optimizer_state(o, 2, NULL, NULL, NULL, NULL) == HEED_ERR_ARG, "index 2 out of range");
    CHECK_CTX(heed_optimizer_state(o, -1, NULL, NULL, NULL, NULL) == HEED_ERR_ARG, "out of range");
    int group = 42;
    CHECK_CTX(heed_optimizer_add_group(o, NULL, NULL, 1, 0, &group) == HEED_ERR_ARG, "filter is NULL");
    CHECK_CTX(heed_optimizer_add_group_named(o, "*", -1, 0, &group) == HEED_ERR_ARG, "lr_scale = -1");
    CHECK_CTX(heed_optimizer_add_group_named(o, NULL, 1, 0, &group) == HEED_ERR_ARG, "pattern is NULL");
    CHECK(group == 42 && heed_optimizer_group_count(o) == 1, "a refused group is not made");
    CHECK_CTX(heed_optimizer_set_group(o, 7, 1, 0) == HEED_ERR_ARG, "group 7 out of range");
    CHECK_CTX(heed_optimizer_set_group(o, 0, 1, NAN) == HEED_ERR_ARG, "weight_decay = nan");
    double v = 42;
    CHECK_CTX(heed_optimizer_group_lr(o, 1, &v) == HEED_ERR_ARG,
              "heed_optimizer_group_lr: group 1 out of range (1 groups)");
    CHECK_CTX(heed_optimizer_group_weight_decay(o, -1, &v) == HEED_ERR_ARG, "group -1 out of range");
    CHECK_CTX(heed_optimizer_group_of(o, 2, &group) == HEED_ERR_ARG, "parameter 2 out of range (2 parameters)");
    CHECK(v == 42 && group == 42, "refused queries write nothing");
    /* setters refuse what the constructors refuse, and change nothing (these were accepted) */
    CHECK_CTX(heed_optimizer_set_lr(o, -0.5) == HEED_ERR_ARG, "heed_optimizer_set_lr: lr = -0.5");
    CHECK_CTX(heed_optimizer_set_lr(o, NAN) == HEED_ERR_ARG, "lr = nan");
    CHECK_CTX(heed_optimizer_set_lr(o, INFINITY) == HEED_ERR_ARG, "lr = inf");
    CHECK(heed_optimizer_lr(o) == 1e-3, "lr after refused sets: %g", heed_optimizer_lr(o));
    CHECK_CTX(heed_optimizer_set_steps(o, -1) == HEED_ERR_ARG, "steps = -1");
    CHECK_CTX(heed_optimizer_set_steps(o, INT64_MAX) == HEED_ERR_ARG, "steps = 9223372036854775807");
    CHECK(heed_optimizer_steps(o) == 0, "steps after refused sets: %lld", (long long)heed_optimizer_steps(o));
    CHECK(heed_optimizer_step(o) == HEED_OK, "%s", heed_ctx_error(ctx));
    CHECK_CTX(heed_params_scale_grad(P, NAN) == HEED_ERR_ARG, "heed_params_scale_grad: s = nan");
    CHECK_CTX(heed_params_scale_grad(P, -INFINITY) == HEED_ERR_ARG, "s = -inf");
    heed_param(P, "late", HEED_SHAPE(4), heed_init_zeros());
    CHECK_CTX(heed_optimizer_step(o) == HEED_ERR_STATE, "changed after the optimizer was made");
    CHECK(heed_optimizer_steps(o) == 1, "failed steps do not count");
    double norm = 42;
    CHECK_CTX(heed_clip_grad_norm(P, 0, &norm) == HEED_ERR_ARG, "max_norm = 0");
    CHECK_CTX(heed_clip_grad_norm(P, NAN, &norm) == HEED_ERR_ARG, "max_norm = nan");
    CHECK(norm == 42, "a refused clip reports no norm");
    CHECK_CTX(heed_clip_grad_value(P, -1) == HEED_ERR_ARG, "clip = -1");
    /* NULLs never crash */
    CHECK(heed_optimizer_step(NULL) == HEED_ERR_ARG && heed_optimizer_step_guarded(NULL, NULL, NULL) == HEED_ERR_ARG,
          "NULL");
    CHECK(heed_optimizer_state(NULL, 0, NULL, NULL, NULL, NULL) == HEED_ERR_ARG &&
              heed_optimizer_state_count(NULL) == 0,
          "NULL");
    CHECK(heed_clip_grad_norm(NULL, 1, NULL) == HEED_ERR_ARG && heed_clip_grad_value(NULL, 1) == HEED_ERR_ARG, "NULL");
    CHECK(heed_params_grads_finite(NULL) && heed_params_grad_norm(NULL) == 0, "NULL store");
    CHECK(heed_params_scale_grad(NULL, 2) == HEED_ERR_ARG && heed_optimizer_set_lr(NULL, 1) == HEED_ERR_ARG &&
              heed_optimizer_set_steps(NULL, 1) == HEED_ERR_ARG &&
              heed_optimizer_group_lr(NULL, 0, NULL) == HEED_ERR_ARG &&
              heed_optimizer_add_group_named(NULL, "*", 1, 0, NULL) == HEED_ERR_ARG,
          "NULL optimizer");
    heed_optimizer_free(NULL);
    heed_optimizer_free(o);
    heed_params_free(P);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 5});
    RUN(against_pytorch);
    RUN(by_hand);
    RUN(converges);
    RUN(options_zero_means_default);
    RUN(step_count_limit);
    RUN(groups_and_frozen);
    RUN(state_restore_continues_bitwise);
    RUN(state_names);
    RUN(threaded_pass_matches_scalar);
    RUN(clipping);
    RUN(accumulation_equals_big_batch);
    RUN(guard_skips_nonfinite_steps);
    RUN(bad_input);
    heed_ctx_free(ctx);
    return check_summary();
}
