/* Learning-rate schedules against PyTorch's schedulers, formulas worked by hand, the
 * plateau state through save and restore, application to an optimizer, bad input. */
#include "check.h"
#include "heed/optim.h"

static heed_ctx *ctx;

/* Expected rates from PyTorch 1.13 (python3 with torch), printed with %.17g by:
 *   import math, torch
 *   def lrs(make, n, lr=0.1):
 *       p = torch.zeros(1, requires_grad=True); opt = torch.optim.SGD([p], lr=lr); s = make(opt); out = []
 *       for _ in range(n):
 *           out.append(opt.param_groups[0]["lr"]); opt.step(); s.step()
 *       return out
 *   S = torch.optim.lr_scheduler
 *   W, N = 4, 12
 *   warm_lin = lambda t: t / W if t < W else max(0.0, (N - t) / (N - W))
 *   warm_cos = lambda t: t / W if t < W else 0.5 * (1 + math.cos(math.pi * (t - W) / (N - W)))
 *   noam = lambda t: 2.0 * 64 ** -0.5 * min((t + 1) ** -0.5, (t + 1) * 10 ** -1.5)
 *   for name, make, n, lr in [
 *       ("step", lambda o: S.StepLR(o, step_size=3, gamma=0.5), 10, 0.1),
 *       ("exponential", lambda o: S.ExponentialLR(o, gamma=0.9), 10, 0.1),
 *       ("cosine", lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.01), 11, 0.1),
 *       ("warmup_linear", lambda o: S.LambdaLR(o, warm_lin), 14, 0.1),
 *       ("warmup_cosine", lambda o: S.LambdaLR(o, warm_cos), 14, 0.1),
 *       ("noam", lambda o: S.LambdaLR(o, noam), 30, 1.0)]:
 *       print(name, ", ".join("%.17g" % v for v in lrs(make, n, lr)))
 *   def plateau(metrics, **kw):
 *       p = torch.zeros(1, requires_grad=True); opt = torch.optim.SGD([p], lr=1.0)
 *       s = S.ReduceLROnPlateau(opt, **kw); out = []
 *       for m in metrics:
 *           s.step(m); out.append(opt.param_groups[0]["lr"])
 *       return out
 *   m1 = [5, 4, 4.01, 3.99, 3.98, 3.97, 3.96, 2, 2, 2, 2, 2, 2, 1.5, 1.5, 1.5, 1.5, 1.5]
 *   print("plateau_min", ", ".join("%.17g" % v for v in plateau(m1, mode="min", factor=0.5, patience=2, threshold=0.01, cooldown=1, min_lr=0.2)))
 *   m2 = [0.1, 0.2, 0.25, 0.26, 0.3, 0.3, 0.31, 0.5, 0.5, 0.5, 0.5, 0.5]
 *   print("plateau_max_abs", ", ".join("%.17g" % v for v in plateau(m2, mode="max", factor=0.1, patience=1, threshold=0.05, threshold_mode="abs")))
 *
 * For the warm-up schedules the lambdas are those of HuggingFace's
 * get_linear_schedule_with_warmup / get_cosine_schedule_with_warmup (min_lr 0); for Noam
 * the paper's formula with step_num = t + 1. Each list holds the rate used by update
 * t + 1 (read before optimizer.step(); scheduler.step() after). */
static const double want_step[] = {0.10000000000000001,  0.10000000000000001,  0.10000000000000001,
                                   0.050000000000000003, 0.050000000000000003, 0.050000000000000003,
                                   0.025000000000000001, 0.025000000000000001, 0.025000000000000001,
                                   0.012500000000000001};
static const double want_exponential[] = {0.10000000000000001, 0.090000000000000011, 0.081000000000000016,
                                          0.07290000000000002, 0.065610000000000016, 0.059049000000000018,
                                          0.05314410000000002, 0.047829690000000022, 0.043046721000000024,
                                          0.03874204890000002};
static const double want_cosine[] = {0.10000000000000001,
                                     0.097797543233281922,
                                     0.091405764746872634,
                                     0.08145033635316129,
                                     0.068905764746872641,
                                     0.055000000000000007,
                                     0.041094235253127373,
                                     0.028549663646838717,
                                     0.01859423525312737,
                                     0.012202456766718092,
                                     0.01};
static const double want_warmup_linear[] = {0,
                                            0.025000000000000001,
                                            0.050000000000000003,
                                            0.075000000000000011,
                                            0.10000000000000001,
                                            0.087500000000000008,
                                            0.075000000000000011,
                                            0.0625,
                                            0.050000000000000003,
                                            0.037500000000000006,
                                            0.025000000000000001,
                                            0.012500000000000001,
                                            0,
                                            0};
static const double want_warmup_cosine[] = {0,
                                            0.025000000000000001,
                                            0.050000000000000003,
                                            0.075000000000000011,
                                            0.10000000000000001,
                                            0.096193976625564337,
                                            0.085355339059327379,
                                            0.069134171618254497,
                                            0.050000000000000003,
                                            0.030865828381745515,
                                            0.014644660940672627,
                                            0.0038060233744356634,
                                            0,
                                            0.0038060233744356578};
static const double want_noam[] =
    {0.0079056941504209478, 0.015811388300841896, 0.023717082451262844, 0.031622776601683791,
     0.039528470752104736,  0.047434164902525687, 0.055339859052946638, 0.063245553203367583,
     0.071151247353788527,  0.079056941504209471, 0.075377836144440907, 0.072168783648703216,
     0.069337524528153643,  0.066815310478106099, 0.064549722436790288, 0.0625,
     0.060633906259083242,  0.05892556509887896,  0.057353933467640443, 0.055901699437494741,
     0.054554472558998097,  0.053300179088902611, 0.052128603514268693, 0.051031036307982877,
     0.050000000000000003,  0.049029033784546011, 0.048112522432468816, 0.047245559126153407,
     0.046423834544262965,  0.04564354645876384};
static const double plateau_min_metrics[] = {5, 4, 4.01, 3.99, 3.98, 3.97, 3.96, 2,   2,
                                             2, 2, 2,    2,    1.5,  1.5,  1.5,  1.5, 1.5};
static const double want_plateau_min[] = {1,
                                          1,
                                          1,
                                          1,
                                          0.5,
                                          0.5,
                                          0.5,
                                          0.5,
                                          0.5,
                                          0.5,
                                          0.25,
                                          0.25,
                                          0.25,
                                          0.25,
                                          0.25,
                                          0.25,
                                          0.20000000000000001,
                                          0.20000000000000001};
static const double plateau_max_metrics[] = {0.1, 0.2, 0.25, 0.26, 0.3, 0.3, 0.31, 0.5, 0.5, 0.5, 0.5, 0.5};
static const double want_plateau_max_abs[] = {1,
                                              1,
                                              1,
                                              1,
                                              1,
                                              0.10000000000000001,
                                              0.10000000000000001,
                                              0.10000000000000001,
                                              0.10000000000000001,
                                              0.010000000000000002,
                                              0.010000000000000002,
                                              0.0010000000000000002};

#define N_OF(a) ((int)(sizeof(a) / sizeof *(a)))

/* The call must return HEED_ERR_ARG with a message in ctx containing needle. */
#define CHECK_REFUSED(call, needle)                                                                                    \
    do {                                                                                                               \
        heed_status st_ = (call);                                                                                      \
        CHECK(st_ == HEED_ERR_ARG && strstr(heed_ctx_error(ctx), (needle)), "want '%s', got %s: '%s'", (needle),       \
              heed_status_name(st_), heed_ctx_error(ctx));                                                             \
    } while (0)

/* The rate at t, or NaN (failing every comparison) with the message printed. */
static double lr_at(const heed_schedule *s, int64_t t) {
    double lr = NAN;
    heed_status st = heed_schedule_lr(ctx, s, t, &lr);
    CHECK(st == HEED_OK, "heed_schedule_lr: %s", heed_ctx_error(ctx));
    return st == HEED_OK ? lr : NAN;
}

/* One plateau epoch: the new rate, or NaN with the message printed. */
static double observe(heed_schedule *s, double metric) {
    double lr = NAN;
    heed_status st = heed_schedule_observe(ctx, s, metric, &lr);
    CHECK(st == HEED_OK, "heed_schedule_observe: %s", heed_ctx_error(ctx));
    return st == HEED_OK ? lr : NAN;
}

static void check_series(const char *name, const heed_schedule *s, const double *want, int n) {
    for (int t = 0; t < n; t++) {
        double got = lr_at(s, t);
        CHECK(fabs(got - want[t]) <= 1e-15 * (1 + fabs(want[t])) * 4, "%s at t=%d: %.17g, want %.17g", name, t, got,
              want[t]);
    }
}

static void against_pytorch(void) {
    heed_schedule s = heed_schedule_step(0.1, 3, 0.5);
    check_series("step", &s, want_step, N_OF(want_step));
    s = heed_schedule_exponential(0.1, 0.9);
    check_series("exponential", &s, want_exponential, N_OF(want_exponential));
    s = heed_schedule_cosine(0.1, 10, 0.01);
    check_series("cosine", &s, want_cosine, N_OF(want_cosine));
    s = heed_schedule_warmup_linear(0.1, 4, 12, 0);
    check_series("warmup_linear", &s, want_warmup_linear, N_OF(want_warmup_linear));
    s = heed_schedule_warmup_cosine(0.1, 4, 12, 0);
    /* up to t = total; after it heed stays at min_lr where the HF lambda rises again */
    check_series("warmup_cosine", &s, want_warmup_cosine, 13);
    CHECK(lr_at(&s, 13) == 0 && lr_at(&s, 1000) == 0, "stays at min_lr after total");
    s = heed_schedule_noam(2.0, 64, 10);
    check_series("noam", &s, want_noam, N_OF(want_noam));

    s = heed_schedule_plateau(1.0);
    s.gamma = 0.5, s.patience = 2, s.threshold = 0.01, s.cooldown = 1, s.min_lr = 0.2;
    for (int i = 0; i < N_OF(plateau_min_metrics); i++) {
        double lr = observe(&s, plateau_min_metrics[i]);
        CHECK(lr == want_plateau_min[i] && lr_at(&s, 0) == lr, "plateau min, epoch %d: %g, want %g", i, lr,
              want_plateau_min[i]);
    }
    s = heed_schedule_plateau(1.0);
    s.maximize = true, s.threshold_abs = true, s.gamma = 0.1, s.patience = 1, s.threshold = 0.05;
    for (int i = 0; i < N_OF(plateau_max_metrics); i++) {
        double lr = observe(&s, plateau_max_metrics[i]);
        CHECK(check_err(lr, want_plateau_max_abs[i]) <= 1e-16 * want_plateau_max_abs[i],
              "plateau max abs, epoch %d: %.17g, want %.17g", i, lr, want_plateau_max_abs[i]);
    }
}

static void by_hand(void) {
    /* constant */
    heed_schedule s = heed_schedule_constant(0.3);
    CHECK(lr_at(&s, 0) == 0.3 && lr_at(&s, 123456) == 0.3, "constant");
    /* linear warm-up to 1 over 10 steps, then linear to 0.1 at step 110:
     * t=5: 0.5; t=10: 1; t=60: half way, 0.1 + 0.9 * 0.5 = 0.55; t>=110: 0.1 */
    s = heed_schedule_warmup_linear(1, 10, 110, 0.1);
    CHECK_CLOSE(lr_at(&s, 5), 0.5, 1e-15);
    CHECK_CLOSE(lr_at(&s, 10), 1, 1e-15);
    CHECK_CLOSE(lr_at(&s, 60), 0.55, 1e-15);
    CHECK_CLOSE(lr_at(&s, 110), 0.1, 1e-15);
    CHECK_CLOSE(lr_at(&s, 500), 0.1, 1e-15);
    /* cosine half way: the mean of lr and min_lr; after total: min_lr */
    s = heed_schedule_cosine(1, 100, 0.2);
    CHECK_CLOSE(lr_at(&s, 50), 0.6, 1e-15);
    CHECK_CLOSE(lr_at(&s, 100), 0.2, 1e-15);
    CHECK_CLOSE(lr_at(&s, 250), 0.2, 1e-15);
    /* warm-up cosine: a quarter into the decay, (1 + cos(pi/4))/2 of the way down */
    s = heed_schedule_warmup_cosine(1, 20, 120, 0);
    CHECK_CLOSE(lr_at(&s, 45), (1 + cos(3.14159265358979323846 / 4)) / 2, 1e-15);
    /* Noam peaks at step_num = warmup (t = warmup - 1): factor / sqrt(d_model * warmup) */
    s = heed_schedule_noam(1, 512, 4000);
    CHECK_CLOSE(lr_at(&s, 3999), 1 / sqrt(512.0 * 4000), 1e-14);
    CHECK(lr_at(&s, 3998) < lr_at(&s, 3999) && lr_at(&s, 4000) < lr_at(&s, 3999), "peak");
    /* step: gamma^floor(t/size) */
    s = heed_schedule_step(1, 10, 0.1);
    CHECK_CLOSE(lr_at(&s, 9), 1, 1e-15);
    CHECK_CLOSE(lr_at(&s, 25), 0.01, 1e-15);
    /* warm-up of 0 starts at the peak */
    s = heed_schedule_warmup_linear(0.5, 0, 10, 0);
    CHECK_CLOSE(lr_at(&s, 0), 0.5, 1e-15);
    /* plateau: a NaN metric is a bad epoch */
    s = heed_schedule_plateau(1);
    s.patience = 0;
    observe(&s, 1);
    CHECK_CLOSE(observe(&s, NAN), 0.1, 1e-15);
}

static void plateau_state_round_trip(void) {
    heed_schedule a = heed_schedule_plateau(1.0);
    a.gamma = 0.5, a.patience = 2, a.threshold = 0.01, a.cooldown = 1, a.min_lr = 0.2;
    heed_schedule b = a; /* the configuration is code; only the state is saved */
    double st[HEED_SCHEDULE_STATE];
    heed_schedule_get_state(&a, st);
    CHECK(isnan(st[0]) && st[1] == 0 && st[2] == 0 && st[3] == 1, "fresh state");
    for (int i = 0; i < 9; i++) observe(&a, plateau_min_metrics[i]);
    heed_schedule_get_state(&a, st);
    CHECK(heed_schedule_set_state(ctx, &b, st) == HEED_OK, "set_state");
    for (int i = 9; i < N_OF(plateau_min_metrics); i++) {
        double la = observe(&a, plateau_min_metrics[i]), lb = observe(&b, plateau_min_metrics[i]);
        CHECK(la == lb && la == want_plateau_min[i], "epoch %d: restored %g, original %g, want %g", i, lb, la,
              want_plateau_min[i]);
    }
    double bad[HEED_SCHEDULE_STATE] = {1, -1, 0, 0.1};
    CHECK(heed_schedule_set_state(ctx, &b, bad) == HEED_ERR_FORMAT && strstr(heed_ctx_error(ctx), "bad_epochs = -1"),
          "%s", heed_ctx_error(ctx));
    double bad2[HEED_SCHEDULE_STATE] = {1, 0, 0, NAN};
    CHECK(heed_schedule_set_state(ctx, &b, bad2) == HEED_ERR_FORMAT && strstr(heed_ctx_error(ctx), "current_lr = nan"),
          "%s", heed_ctx_error(ctx));
    double bad3[HEED_SCHEDULE_STATE] = {1, 0, 0.5, 1};
    CHECK(heed_schedule_set_state(ctx, &b, bad3) == HEED_ERR_FORMAT &&
              strstr(heed_ctx_error(ctx), "cooldown_left = 0.5"),
          "%s", heed_ctx_error(ctx));
    CHECK(heed_schedule_set_state(ctx, NULL, st) == HEED_ERR_ARG &&
              heed_schedule_set_state(ctx, &b, NULL) == HEED_ERR_ARG,
          "NULL");
}

static void applies_to_optimizer(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_param(P, "w", HEED_SHAPE(3), heed_init_zeros());
    heed_param(P, "m", HEED_SHAPE(2, 2), heed_init_zeros());
    heed_optimizer *o = heed_sgd(P, &(heed_sgd_opts){.lr = 1});
    CHECK(heed_optimizer_add_group(o, heed_param_is_vector, NULL, 0.5, 0, NULL) == HEED_OK, "%s", heed_ctx_error(ctx));
    /* groups scale the scheduled rate */
    heed_schedule s = heed_schedule_exponential(0.1, 0.5);
    for (int t = 0; t < 4; t++) {
        CHECK(heed_schedule_apply(o, &s) == HEED_OK, "%s", heed_ctx_error(ctx));
        CHECK_CLOSE(heed_optimizer_lr(o), 0.1 * pow(0.5, t), 1e-15);
        double group_lr = NAN;
        CHECK(heed_optimizer_group_lr(o, 1, &group_lr) == HEED_OK, "%s", heed_ctx_error(ctx));
        CHECK_CLOSE(group_lr, 0.05 * pow(0.5, t), 1e-15);
        heed_optimizer_step(o);
    }
    /* the step count, restored by a checkpoint, is what the schedule reads */
    CHECK(heed_optimizer_set_steps(o, 10) == HEED_OK && heed_schedule_apply(o, &s) == HEED_OK, "%s",
          heed_ctx_error(ctx));
    CHECK_CLOSE(heed_optimizer_lr(o), 0.1 * pow(0.5, 10), 1e-15);
    heed_schedule bad = heed_schedule_step(0.1, 0, 0.5);
    CHECK_REFUSED(heed_schedule_apply(o, &bad), "step_size = 0");
    CHECK_CLOSE(heed_optimizer_lr(o), 0.1 * pow(0.5, 10), 1e-15); /* unchanged */
    CHECK(heed_schedule_apply(NULL, &s) == HEED_ERR_ARG, "NULL optimizer");
    heed_optimizer_free(o);
    heed_params_free(P);
}

static void bad_input(void) {
    struct {
        heed_schedule s;
        const char *needle;
    } cases[] = {
        {heed_schedule_constant(-1), "lr = -1"},
        {heed_schedule_constant(NAN), "lr = nan"},
        {heed_schedule_step(0.1, 0, 0.5), "step_size = 0"},
        {heed_schedule_exponential(0.1, 0), "gamma = 0"},
        {heed_schedule_cosine(0.1, 0, 0), "total = 0"},
        {heed_schedule_cosine(0.1, 10, 0.5), "min_lr = 0.5"},
        {heed_schedule_warmup_linear(0.1, 20, 10, 0), "warmup = 20"},
        {heed_schedule_warmup_cosine(0.1, -1, 10, 0), "warmup = -1"},
        {heed_schedule_noam(1, 0, 10), "d_model = 0"},
        {heed_schedule_noam(1, 512, 0), "warmup = 0"},
    };
    for (int i = 0; i < N_OF(cases); i++) {
        CHECK_REFUSED(heed_schedule_check(ctx, &cases[i].s), cases[i].needle);
        /* the rate of an invalid schedule is refused the same way, and *lr is left alone */
        double lr = 42;
        CHECK_REFUSED(heed_schedule_lr(ctx, &cases[i].s, 0, &lr), cases[i].needle);
        CHECK(lr == 42, "case %d: lr written", i);
    }
    heed_schedule p = heed_schedule_plateau(1);
    p.gamma = 1;
    CHECK_REFUSED(heed_schedule_check(ctx, &p), "factor");
    double lr = 42;
    CHECK_REFUSED(heed_schedule_observe(ctx, &p, 1, &lr), "factor");
    CHECK(lr == 42 && p.bad_epochs == 0, "a refused observation changes nothing");
    p = heed_schedule_plateau(1);
    p.patience = -1;
    CHECK(heed_schedule_check(NULL, &p) == HEED_ERR_ARG, "patience (no ctx: the status alone)");
    CHECK_REFUSED(heed_schedule_check(ctx, NULL), "NULL");
    heed_schedule s = heed_schedule_constant(0.1);
    CHECK_REFUSED(heed_schedule_lr(ctx, &s, -1, &lr), "t = -1");
    CHECK_REFUSED(heed_schedule_observe(ctx, &s, 1, &lr), "only reduce-on-plateau");
    s.kind = (heed_schedule_kind)99;
    CHECK_REFUSED(heed_schedule_check(ctx, &s), "unknown kind");
}

int main(void) {
    ctx = heed_ctx_new(NULL);
    RUN(against_pytorch);
    RUN(by_hand);
    RUN(plateau_state_round_trip);
    RUN(applies_to_optimizer);
    RUN(bad_input);
    heed_ctx_free(ctx);
    return check_summary();
}
