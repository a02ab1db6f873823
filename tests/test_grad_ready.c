/* The gradient-ready hook (heed_graph_set_grad_ready_hook): during backward each
 * parameter is reported once, when its gradient is final -- a copy taken in the hook
 * equals the gradient after backward, also for a parameter used by several ops -- in the
 * order backward finishes them; unreached parameters are not reported. */
#include "check.h"
#include "heed/elementwise.h"
#include "heed/matmul.h"
#include "heed/reduce.h"

#define MAX_SEEN 16

typedef struct {
    int n;
    heed_tensor *param[MAX_SEEN];
    double copy[MAX_SEEN][64]; /* the gradient when reported */
    int fail_at;               /* report number at which the hook fails the graph (0: never) */
} seen;

static void record(heed_graph *g, heed_tensor *p, void *user) {
    seen *s = user;
    if (s->n >= MAX_SEEN) return;
    s->param[s->n] = p;
    for (int64_t i = 0; i < p->numel && i < 64; i++) s->copy[s->n][i] = ((const double *)p->grad)[i];
    s->n++;
    if (s->fail_at && s->n == s->fail_at) heed_graph_fail(g, HEED_ERR_STATE, "hook: stop at report %d", s->n);
}

static int position(const seen *s, const heed_tensor *p) {
    for (int i = 0; i < s->n; i++)
        if (s->param[i] == p) return i;
    return -1;
}

/* Every reported gradient copy equals the final gradient, bit for bit. */
static void check_copies(const seen *s) {
    for (int k = 0; k < s->n; k++) {
        const heed_tensor *p = s->param[k];
        int same = 1;
        for (int64_t i = 0; i < p->numel && i < 64; i++) same &= s->copy[k][i] == ((const double *)p->grad)[i];
        CHECK(same, "'%s' was reported before its gradient was final", p->name);
    }
}

static double input_data[12] = {0.3, -1.2, 0.5, 2.0, -0.7, 0.1, 1.5, -0.4, 0.9, -2.2, 0.6, 0.05};

/* A 3 -> 4 -> 4 -> 2 tanh MLP: each parameter once, reported from the last layer back. */
static void mlp_reports_each_parameter_once_from_the_last_layer(void) {
    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 3});
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_tensor *w[3], *b[3];
    int64_t dims[4] = {3, 4, 4, 2};
    for (int l = 0; l < 3; l++) {
        char name[16];
        snprintf(name, sizeof name, "l%d.w", l + 1);
        w[l] = heed_param(P, name, HEED_SHAPE(dims[l + 1], dims[l]), heed_init_xavier_uniform(1));
        snprintf(name, sizeof name, "l%d.b", l + 1);
        b[l] = heed_param(P, name, HEED_SHAPE(dims[l + 1]), heed_init_uniform(-0.5, 0.5));
    }
    heed_tensor *unused = heed_param(P, "unused", HEED_SHAPE(2), heed_init_zeros());
    heed_graph *g = heed_graph_new(ctx);
    seen s = {0};
    heed_graph_set_grad_ready_hook(g, record, &s);
    heed_tensor *h = heed_input_f64(g, HEED_F64, HEED_SHAPE(4, 3), input_data);
    for (int l = 0; l < 3; l++) h = heed_tanh(g, heed_linear(g, h, w[l], b[l]));
    CHECK(heed_backward(g, heed_sum_all(g, heed_mul(g, h, h))) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(s.n == 6, "%d parameters reported, want 6", s.n);
    CHECK(position(&s, unused) < 0, "an unused parameter was reported");
    for (int l = 0; l < 3; l++) {
        CHECK(position(&s, w[l]) >= 0 && position(&s, b[l]) >= 0, "layer %d not reported", l + 1);
        for (int m = l + 1; m < 3; m++)
            CHECK(position(&s, w[m]) < position(&s, w[l]), "layer %d reported before layer %d", l + 1, m + 1);
    }
    check_copies(&s);
    /* Removed: no more reports. */
    heed_graph_set_grad_ready_hook(g, NULL, &s);
    heed_graph_reset(g);
    heed_params_zero_grad(P);
    s.n = 0;
    h = heed_linear(g, heed_input_f64(g, HEED_F64, HEED_SHAPE(4, 3), input_data), w[0], b[0]);
    CHECK(heed_backward(g, heed_sum_all(g, h)) == HEED_OK && s.n == 0, "%d reports without a hook", s.n);
    heed_graph_free(g);
    heed_params_free(P);
    heed_ctx_free(ctx);
}

/* w is used by the first op and again by the last: its gradient is final only after the
 * first op's backward, so it is reported after c (used by the last op only). A hook that
 * fired at w's first visit would copy half its gradient. */
static void shared_parameter_is_reported_after_its_earliest_use(void) {
    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 4});
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_tensor *w = heed_param(P, "w", HEED_SHAPE(3), heed_init_uniform(0.5, 1.5));
    heed_tensor *c = heed_param(P, "c", HEED_SHAPE(3), heed_init_uniform(-1, 1));
    heed_graph *g = heed_graph_new(ctx);
    seen s = {0};
    heed_graph_set_grad_ready_hook(g, record, &s);
    heed_tensor *x = heed_input_f64(g, HEED_F64, HEED_SHAPE(3), input_data);
    heed_tensor *y = heed_tanh(g, heed_mul(g, w, x));                   /* first use of w */
    heed_tensor *z = heed_mul(g, heed_add(g, heed_mul(g, y, w), c), y); /* w again, then c */
    CHECK(heed_backward(g, heed_sum_all(g, z)) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(s.n == 2 && s.param[0] == c && s.param[1] == w, "%d reports, want c then w", s.n);
    check_copies(&s);
    /* Backward from an intermediate tensor: only what it depends on is reported. */
    heed_graph_reset(g);
    heed_params_zero_grad(P);
    s.n = 0;
    x = heed_input_f64(g, HEED_F64, HEED_SHAPE(3), input_data);
    y = heed_tanh(g, heed_mul(g, w, x));
    heed_add(g, y, c);
    CHECK(heed_backward_with(g, y, heed_full(g, HEED_F64, HEED_SHAPE(3), 1.0)) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(s.n == 1 && s.param[0] == w, "%d reports, want w alone", s.n);
    check_copies(&s);
    heed_graph_free(g);
    heed_params_free(P);
    heed_ctx_free(ctx);
}

/* A hook that fails the graph stops the backward and the reports. */
static void failing_hook_stops_backward(void) {
    heed_ctx *ctx = heed_ctx_new(NULL);
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_tensor *a = heed_param(P, "a", HEED_SHAPE(3), heed_init_constant(2));
    heed_tensor *b = heed_param(P, "b", HEED_SHAPE(3), heed_init_constant(3));
    heed_graph *g = heed_graph_new(ctx);
    seen s = {.fail_at = 1};
    heed_graph_set_grad_ready_hook(g, record, &s);
    heed_tensor *x = heed_input_f64(g, HEED_F64, HEED_SHAPE(3), input_data);
    heed_tensor *y = heed_mul(g, heed_tanh(g, heed_mul(g, x, a)), b);
    CHECK(heed_backward(g, heed_sum_all(g, y)) == HEED_ERR_STATE, "backward should fail");
    CHECK(strstr(heed_graph_error(g), "hook: stop at report 1") != NULL, "%s", heed_graph_error(g));
    CHECK(s.n == 1 && s.param[0] == b, "%d reports after the failure", s.n);
    /* No parameter on the tape: nothing to report, no error. */
    heed_graph_reset(g);
    s = (seen){0};
    x = heed_requires_grad(heed_input_f64(g, HEED_F64, HEED_SHAPE(3), input_data));
    CHECK(heed_backward(g, heed_sum_all(g, heed_tanh(g, x))) == HEED_OK && s.n == 0, "%s", heed_graph_error(g));
    heed_graph_set_grad_ready_hook(NULL, record, &s); /* NULL graph: ignored */
    heed_graph_free(g);
    heed_params_free(P);
    heed_ctx_free(ctx);
}

int main(void) {
    RUN(mlp_reports_each_parameter_once_from_the_last_layer);
    RUN(shared_parameter_is_reported_after_its_earliest_use);
    RUN(failing_hook_stops_backward);
    return check_summary();
}
