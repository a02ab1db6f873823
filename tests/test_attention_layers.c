/* Attention layers: one-step scores (additive, location-aware, coverage, Luong) with
 * heed_attend, positions (sinusoidal, learned, relative bias) and multi-head attention. */
#include "check_grad32.h"
#include "heed/attention.h"
#include "heed/elementwise.h"
#include "heed/layers.h"
#include "heed/reduce.h"
#include "heed/shape.h"

static heed_ctx *ctx;

/* ---------------------------------------------------------------- references */

/* Naive masked softmax + context for one row, in double. */
static void ref_attend(const double *s, const double *V, int64_t N, int64_t dv, int64_t L, double *w, double *c) {
    double m = -INFINITY, sum = 0;
    for (int64_t j = 0; j < N; j++) w[j] = 0;
    for (int64_t e = 0; e < dv; e++) c[e] = 0;
    for (int64_t j = 0; j < L; j++) m = fmax(m, s[j]);
    if (L == 0) return;
    for (int64_t j = 0; j < L; j++) sum += w[j] = exp(s[j] - m);
    for (int64_t j = 0; j < L; j++) {
        w[j] /= sum;
        for (int64_t e = 0; e < dv; e++) c[e] += w[j] * V[j * dv + e];
    }
}

static double *randn(heed_rng *r, int64_t n) {
    double *d = malloc((size_t)n * sizeof *d);
    for (int64_t i = 0; i < n; i++) d[i] = 2 * heed_rng_uniform(r) - 1;
    return d;
}

/* ---------------------------------------------------------------- heed_attend */

static const int64_t lens_attend[3] = {5, 2, 0};

static heed_tensor *fn_attend(heed_graph *g, heed_tensor **x, void *u) {
    int mode = *(int *)u;
    heed_tensor *w = NULL;
    heed_tensor *c = heed_attend(g, x[0], x[1], lens_attend, &w);
    if (mode == 0) return c;
    if (mode == 1) return w;
    /* both outputs: [B,1] + [B,N] broadcast */
    return heed_add(g, heed_sum(g, c, 1, true), w);
}

static void attend_matches_reference(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_rng r = heed_rng_make(3, 1);
    int64_t B = 3, N = 5, dv = 4;
    double *s = randn(&r, B * N), *v = randn(&r, B * N * dv);
    s[2] = -INFINITY; /* a user mask inside the valid range */
    heed_tensor *S = heed_input_f64(g, HEED_F64, HEED_SHAPE(B, N), s);
    heed_tensor *V = heed_input_f64(g, HEED_F64, HEED_SHAPE(B, N, dv), v);
    heed_tensor *w = NULL, *c = heed_attend(g, S, V, lens_attend, &w);
    CHECK(c && w, "%s", heed_graph_error(g));
    for (int64_t b = 0; b < B && c; b++) {
        double rw[5], rc[4];
        ref_attend(s + b * N, v + b * N * dv, N, dv, lens_attend[b], rw, rc);
        for (int64_t j = 0; j < N; j++) CHECK_CLOSE(heed_get(w, b * N + j), rw[j], 1e-14);
        for (int64_t e = 0; e < dv; e++) CHECK_CLOSE(heed_get(c, b * dv + e), rc[e], 1e-14);
    }
    CHECK(heed_get(w, 2) == 0, "a -inf score has weight 0");
    /* all scores -inf in a valid row: zeros, not NaN */
    heed_graph_reset(g);
    S = heed_full(g, HEED_F64, HEED_SHAPE(1, 3), -INFINITY);
    V = heed_full(g, HEED_F64, HEED_SHAPE(1, 3, 2), 1);
    c = heed_attend(g, heed_requires_grad(S), heed_requires_grad(V), NULL, &w);
    CHECK(c && heed_get(c, 0) == 0 && heed_get(w, 1) == 0, "all -inf row gives zeros");
    CHECK(heed_backward(g, heed_sum_all(g, c)) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(heed_get(heed_grad(g, S), 0) == 0 && heed_get(heed_grad(g, V), 0) == 0, "zero gradients");
    free(s), free(v);
    heed_graph_free(g);
}

static void attend_gradients(void) {
    heed_gradcheck_input in[2] = {{HEED_SHAPE(3, 5)}, {HEED_SHAPE(3, 5, 4)}};
    for (int mode = 0; mode < 3; mode++) {
        CHECK_GRAD(ctx, fn_attend, &mode, 2, in, NULL);
        check_f32_vs_f64(ctx, fn_attend, &mode, 2, in, 1e-5, "attend");
    }
    /* dv = 37: the f32 vector rows (2 AVX-512 blocks and a tail, 4 AVX2 blocks and a tail) */
    heed_gradcheck_input wide[2] = {{HEED_SHAPE(3, 5)}, {HEED_SHAPE(3, 5, 37)}};
    for (int mode = 0; mode < 2; mode++) check_f32_vs_f64_grad(ctx, fn_attend, &mode, 2, wide, 1e-6, "attend wide");
}

/* Scores offset by 0, 1e3, 1e4 (rounded to f32 first, so both runs see the same numbers):
 * softmax does not change, and the f32 context, weights and gradients stay within 1e-6
 * of f64 (issue #10; the max is subtracted in double). */
static void attend_large_scores(void) {
    static const double offsets[3] = {0, 1e3, 1e4};
    heed_rng r = heed_rng_make(8, 2);
    double base[15], s[15];
    for (int i = 0; i < 15; i++) base[i] = 6 * heed_rng_uniform(&r) - 3;
    for (int o = 0; o < 3; o++) {
        for (int i = 0; i < 15; i++) s[i] = (float)(base[i] + offsets[o]);
        heed_gradcheck_input in[2] = {{HEED_SHAPE(3, 5), s}, {HEED_SHAPE(3, 5, 4)}};
        for (int mode = 0; mode < 2; mode++) {
            char what[48];
            snprintf(what, sizeof what, "attend %s offset %g", mode ? "weights" : "context", offsets[o]);
            check_f32_vs_f64_grad(ctx, fn_attend, &mode, 2, in, 1e-6, what);
        }
    }
}

/* ---------------------------------------------------------------- additive */

enum { A_QUERY, A_KEYS, A_VALUES, A_WQ, A_BIAS, A_V, A_PREV, A_FILT, A_PROJ, A_COV, A_COVW, A_N };
typedef struct {
    bool bias, loc, cov;
    const int64_t *lens;
    int which; /* 0 context, 1 weights, 2 scores */
} additive_case;

static heed_tensor *fn_additive(heed_graph *g, heed_tensor **x, void *u) {
    const additive_case *c = u;
    heed_additive_params p = {.w_q = x[A_WQ], .bias = c->bias ? x[A_BIAS] : NULL, .v = x[A_V]};
    if (c->loc) p.loc_filters = x[A_FILT], p.loc_proj = x[A_PROJ];
    if (c->cov) p.cov_weight = x[A_COVW];
    heed_tensor *prev = c->loc ? x[A_PREV] : NULL, *cov = c->cov ? x[A_COV] : NULL;
    if (c->which == 2) return heed_additive_score(g, x[A_QUERY], x[A_KEYS], &p, prev, cov);
    heed_tensor *w = NULL;
    heed_tensor *ctx_ = heed_additive_attention(g, x[A_QUERY], x[A_KEYS], x[A_VALUES], &p, prev, cov, c->lens, &w);
    return c->which == 0 ? ctx_ : w;
}

static void additive_inputs(heed_gradcheck_input *in, int64_t B, int64_t N, int64_t dq, int64_t da, int64_t dv,
                            int64_t C, int64_t K) {
    in[A_QUERY] = (heed_gradcheck_input){HEED_SHAPE(B, dq)};
    in[A_KEYS] = (heed_gradcheck_input){HEED_SHAPE(B, N, da)};
    in[A_VALUES] = (heed_gradcheck_input){HEED_SHAPE(B, N, dv)};
    in[A_WQ] = (heed_gradcheck_input){HEED_SHAPE(da, dq)};
    in[A_BIAS] = (heed_gradcheck_input){HEED_SHAPE(da)};
    in[A_V] = (heed_gradcheck_input){HEED_SHAPE(da)};
    in[A_PREV] = (heed_gradcheck_input){HEED_SHAPE(B, N)};
    in[A_FILT] = (heed_gradcheck_input){HEED_SHAPE(C, K)};
    in[A_PROJ] = (heed_gradcheck_input){HEED_SHAPE(da, C)};
    in[A_COV] = (heed_gradcheck_input){HEED_SHAPE(B, N)};
    in[A_COVW] = (heed_gradcheck_input){HEED_SHAPE(da)};
}

/* The additive score from its definition, for one (b, j). */
static double ref_additive(const double *q, const double *kp, const double *wq, const double *bias, const double *v,
                           const double *prev, const double *F, const double *U, const double *cov, const double *cw,
                           int64_t N, int64_t dq, int64_t da, int64_t C, int64_t K, int64_t b, int64_t j) {
    double s = 0;
    for (int64_t e = 0; e < da; e++) {
        double pre = kp[(b * N + j) * da + e] + (bias ? bias[e] : 0);
        for (int64_t i = 0; i < dq; i++) pre += wq[e * dq + i] * q[b * dq + i];
        if (prev)
            for (int64_t c = 0; c < C; c++) {
                double f = 0;
                for (int64_t t = 0; t < K; t++) {
                    int64_t i = j + t - (K - 1) / 2;
                    if (i >= 0 && i < N) f += F[c * K + t] * prev[b * N + i];
                }
                pre += U[e * C + c] * f;
            }
        if (cov) pre += cw[e] * cov[b * N + j];
        s += v[e] * tanh(pre);
    }
    return s;
}

static void additive_matches_reference(void) {
    int64_t B = 2, N = 6, dq = 3, da = 4, C = 2, K = 5;
    heed_rng r = heed_rng_make(8, 2);
    double *q = randn(&r, B * dq), *kp = randn(&r, B * N * da), *wq = randn(&r, da * dq), *bias = randn(&r, da),
           *v = randn(&r, da), *prev = randn(&r, B * N), *F = randn(&r, C * K), *U = randn(&r, da * C),
           *cov = randn(&r, B * N), *cw = randn(&r, da);
    heed_graph *g = heed_graph_new(ctx);
    heed_additive_params p = {heed_input_f64(g, HEED_F64, HEED_SHAPE(da, dq), wq),
                              heed_input_f64(g, HEED_F64, HEED_SHAPE(da), bias),
                              heed_input_f64(g, HEED_F64, HEED_SHAPE(da), v),
                              heed_input_f64(g, HEED_F64, HEED_SHAPE(C, K), F),
                              heed_input_f64(g, HEED_F64, HEED_SHAPE(da, C), U),
                              heed_input_f64(g, HEED_F64, HEED_SHAPE(da), cw)};
    heed_tensor *s = heed_additive_score(g, heed_input_f64(g, HEED_F64, HEED_SHAPE(B, dq), q),
                                         heed_input_f64(g, HEED_F64, HEED_SHAPE(B, N, da), kp), &p,
                                         heed_input_f64(g, HEED_F64, HEED_SHAPE(B, N), prev),
                                         heed_input_f64(g, HEED_F64, HEED_SHAPE(B, N), cov));
    CHECK(s != NULL, "%s", heed_graph_error(g));
    for (int64_t b = 0; b < B && s; b++)
        for (int64_t j = 0; j < N; j++)
            CHECK_CLOSE(heed_get(s, b * N + j),
                        ref_additive(q, kp, wq, bias, v, prev, F, U, cov, cw, N, dq, da, C, K, b, j), 1e-13);
    /* Without location and coverage (plain Bahdanau). */
    heed_additive_params p0 = {.w_q = p.w_q, .v = p.v};
    s = heed_additive_score(g, heed_input_f64(g, HEED_F64, HEED_SHAPE(B, dq), q),
                            heed_input_f64(g, HEED_F64, HEED_SHAPE(B, N, da), kp), &p0, NULL, NULL);
    CHECK(s != NULL, "%s", heed_graph_error(g));
    for (int64_t b = 0; b < B && s; b++)
        for (int64_t j = 0; j < N; j++)
            CHECK_CLOSE(heed_get(s, b * N + j),
                        ref_additive(q, kp, wq, NULL, v, NULL, F, U, NULL, cw, N, dq, da, C, K, b, j), 1e-13);
    heed_graph_free(g);
    free(q), free(kp), free(wq), free(bias), free(v), free(prev), free(F), free(U), free(cov), free(cw);
}

static void additive_gradients(void) {
    static const int64_t lens[3] = {5, 2, 0};
    heed_gradcheck_input in[A_N];
    /* K = 3 inside N; K = 7 wider than N = 5 (every tap touches padding); K = 1. */
    const int64_t kernels[3] = {3, 7, 1};
    for (int ki = 0; ki < 3; ki++) {
        additive_inputs(in, 3, 5, 4, 3, 2, 2, kernels[ki]);
        for (int which = 0; which < 3; which++) {
            additive_case c = {.bias = true, .loc = true, .cov = true, .lens = lens, .which = which};
            CHECK_GRAD(ctx, fn_additive, &c, A_N, in, NULL);
        }
    }
    additive_inputs(in, 3, 5, 4, 3, 2, 2, 3);
    additive_case plain = {.lens = lens}, loc_only = {.loc = true, .bias = true, .lens = NULL},
                  cov_only = {.cov = true, .lens = lens};
    CHECK_GRAD(ctx, fn_additive, &plain, A_N - 5, in, NULL); /* inputs up to A_V only */
    CHECK_GRAD(ctx, fn_additive, &loc_only, A_N, in, NULL);
    CHECK_GRAD(ctx, fn_additive, &cov_only, A_N, in, NULL);
    additive_case all = {.bias = true, .loc = true, .cov = true, .lens = lens};
    check_f32_vs_f64(ctx, fn_additive, &all, A_N, in, 1e-5, "additive");
    /* a wider case for the vector tanh (da = 19: 2 AVX2 blocks and a tail) */
    additive_inputs(in, 2, 9, 5, 19, 3, 3, 5);
    check_f32_vs_f64(ctx, fn_additive, &all, A_N, in, 1e-5, "additive wide");
    /* the f32 backward against f64 without coverage too: into dK, and dpre kept for the
     * location features' GEMMs */
    additive_case wide_plain = {.bias = true, .lens = lens}, wide_loc = {.bias = true, .loc = true, .lens = lens};
    check_f32_vs_f64_grad(ctx, fn_additive, &wide_plain, A_PREV, in, 1e-5, "additive wide, no coverage");
    check_f32_vs_f64_grad(ctx, fn_additive, &wide_loc, A_COV, in, 1e-5, "additive wide, location, no coverage");
    all.which = 2;
    CHECK_GRAD(ctx, fn_additive, &all, A_N, in, &(heed_gradcheck_opts){.max_per_tensor = 40});
}

/* Two decoder steps of a location-aware coverage attention with parameters from an f64
 * store: step 2's location features and coverage come from step 1's weights, and the
 * coverage loss is added. Checks gradients into every parameter through both steps. */
typedef struct {
    heed_additive_layer *l;
    const int64_t *lens;
} two_step;

static heed_tensor *fn_two_steps(heed_graph *g, heed_tensor **x, void *u) {
    two_step *t = u;
    heed_tensor *keys = x[0], *q1 = x[1], *q2 = x[2];
    heed_tensor *kp = heed_additive_keys(g, keys, t->l->w_k, NULL);
    int64_t B = keys->shape[0], N = keys->shape[1];
    heed_tensor *prev = heed_zeros(g, keys->dtype, HEED_SHAPE(B, N)),
                *cov = heed_zeros(g, keys->dtype, HEED_SHAPE(B, N));
    heed_tensor *w1, *w2;
    heed_tensor *c1 = heed_additive_attention(g, q1, kp, keys, &t->l->params, prev, cov, t->lens, &w1);
    heed_tensor *loss1 = heed_coverage_loss(g, w1, cov);
    cov = heed_add(g, cov, w1);
    heed_tensor *c2 = heed_additive_attention(g, q2, kp, keys, &t->l->params, w1, cov, t->lens, &w2);
    heed_tensor *loss2 = heed_coverage_loss(g, w2, cov); /* [B] */
    heed_tensor *lc = heed_add(g, loss1, loss2);
    /* [B,dv] + [B,1] */
    return heed_add(g, heed_add(g, c1, c2), heed_sum(g, heed_add(g, w2, heed_sum(g, lc, 0, true)), 1, true));
}

static void two_steps_with_params(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_additive_layer l;
    heed_additive_config cfg = {.query_dim = 4,
                                .key_dim = 3,
                                .attn_dim = 5,
                                .loc_channels = 2,
                                .loc_kernel = 3,
                                .coverage = true,
                                .bias = true};
    CHECK(heed_additive_declare(&l, P, "att", &cfg) == HEED_OK, "%s", heed_ctx_error(ctx));
    const char *names[] = {"att.query_proj.weight",    "att.key_proj.weight",      "att.query_proj.bias",     "att.v",
                           "att.location_conv.weight", "att.location_proj.weight", "att.coverage_proj.weight"};
    for (int i = 0; i < 7; i++) CHECK(heed_params_find(P, names[i]) != NULL, "%s", names[i]);
    CHECK(heed_params_count(P) == 7 && l.params.loc_filters->shape[1] == 3 && l.w_k->shape[1] == 3, "shapes");
    /* larger values than the default init, so tanh and the coverage minimum are exercised */
    for (int i = 0; i < heed_params_count(P); i++) heed_param_init(P, heed_params_at(P, i), heed_init_normal(0, 0.8));
    static const int64_t lens[2] = {4, 3};
    two_step t = {&l, lens};
    heed_gradcheck_input in[3] = {{HEED_SHAPE(2, 4, 3)}, {HEED_SHAPE(2, 4)}, {HEED_SHAPE(2, 4)}};
    CHECK_GRAD(ctx, fn_two_steps, &t, 3, in, &(heed_gradcheck_opts){.params = P});
    /* bad configurations */
    cfg.loc_kernel = 4;
    CHECK(heed_additive_declare(&l, P, "b", &cfg) == HEED_ERR_ARG, "even kernel");
    CHECK(strstr(heed_ctx_error(ctx), "loc_kernel = 4") != NULL, "%s", heed_ctx_error(ctx));
    cfg.loc_kernel = 3, cfg.attn_dim = 0;
    CHECK(heed_additive_declare(&l, P, "b", &cfg) == HEED_ERR_ARG, "attn_dim 0");
    cfg.attn_dim = 5;
    CHECK(heed_additive_declare(&l, P, "att", &cfg) != HEED_OK, "duplicate prefix");
    CHECK(heed_additive_declare(&l, P, "plain", &(heed_additive_config){.query_dim = 2, .key_dim = 2, .attn_dim = 2}) ==
                  HEED_OK &&
              !l.params.bias && !l.params.loc_filters && !l.params.cov_weight,
          "plain layer");
    heed_params_free(P);
}

/* ---------------------------------------------------------------- Luong */

static heed_tensor *fn_luong(heed_graph *g, heed_tensor **x, void *u) {
    int kind = *(int *)u;
    static const int64_t lens[3] = {4, 1, 3};
    heed_tensor *w = NULL;
    heed_tensor *c = heed_luong_attention(g, (heed_luong_kind)kind, x[0], x[1], x[2], kind ? x[3] : NULL,
                                          kind == HEED_LUONG_CONCAT ? x[4] : NULL, lens, &w);
    return heed_add(g, heed_sum(g, c, 1, true), w);
}

static void luong_scores(void) {
    /* dot */
    int kind = HEED_LUONG_DOT;
    heed_gradcheck_input dot[3] = {{HEED_SHAPE(3, 5)}, {HEED_SHAPE(3, 4, 5)}, {HEED_SHAPE(3, 4, 2)}};
    CHECK_GRAD(ctx, fn_luong, &kind, 3, dot, NULL);
    check_f32_vs_f64(ctx, fn_luong, &kind, 3, dot, 1e-5, "luong dot");
    kind = HEED_LUONG_GENERAL;
    heed_gradcheck_input gen[4] = {{HEED_SHAPE(3, 5)},
                                   {HEED_SHAPE(3, 4, 6)},
                                   {HEED_SHAPE(3, 4, 2)},
                                   {HEED_SHAPE(5, 6)}};
    CHECK_GRAD(ctx, fn_luong, &kind, 4, gen, NULL);
    check_f32_vs_f64(ctx, fn_luong, &kind, 4, gen, 1e-5, "luong general");
    kind = HEED_LUONG_CONCAT;
    heed_gradcheck_input cat[5] = {{HEED_SHAPE(3, 5)},
                                   {HEED_SHAPE(3, 4, 6)},
                                   {HEED_SHAPE(3, 4, 2)},
                                   {HEED_SHAPE(7, 11)},
                                   {HEED_SHAPE(7)}};
    CHECK_GRAD(ctx, fn_luong, &kind, 5, cat, NULL);
    check_f32_vs_f64(ctx, fn_luong, &kind, 5, cat, 1e-5, "luong concat");

    /* forward values against the definitions */
    heed_graph *g = heed_graph_new(ctx);
    heed_rng r = heed_rng_make(4, 4);
    int64_t B = 2, N = 3, dq = 2, dk = 3, da = 4;
    double *q = randn(&r, B * dq), *k = randn(&r, B * N * dk), *W = randn(&r, dq * dk), *Wc = randn(&r, da * (dq + dk)),
           *v = randn(&r, da), *kd = randn(&r, B * N * dq);
    heed_tensor *Q = heed_input_f64(g, HEED_F64, HEED_SHAPE(B, dq), q);
    heed_tensor *sd =
        heed_luong_score(g, HEED_LUONG_DOT, Q, heed_input_f64(g, HEED_F64, HEED_SHAPE(B, N, dq), kd), NULL, NULL);
    heed_tensor *K = heed_input_f64(g, HEED_F64, HEED_SHAPE(B, N, dk), k);
    heed_tensor *sg =
        heed_luong_score(g, HEED_LUONG_GENERAL, Q, K, heed_input_f64(g, HEED_F64, HEED_SHAPE(dq, dk), W), NULL);
    heed_tensor *sc =
        heed_luong_score(g, HEED_LUONG_CONCAT, Q, K, heed_input_f64(g, HEED_F64, HEED_SHAPE(da, dq + dk), Wc),
                         heed_input_f64(g, HEED_F64, HEED_SHAPE(da), v));
    CHECK(sd && sg && sc, "%s", heed_graph_error(g));
    for (int64_t b = 0; b < B && sc; b++)
        for (int64_t j = 0; j < N; j++) {
            double d = 0, gn = 0, cc = 0;
            for (int64_t i = 0; i < dq; i++) d += q[b * dq + i] * kd[(b * N + j) * dq + i];
            for (int64_t i = 0; i < dq; i++)
                for (int64_t e = 0; e < dk; e++) gn += q[b * dq + i] * W[i * dk + e] * k[(b * N + j) * dk + e];
            for (int64_t a = 0; a < da; a++) {
                double pre = 0;
                for (int64_t i = 0; i < dq; i++) pre += Wc[a * (dq + dk) + i] * q[b * dq + i];
                for (int64_t e = 0; e < dk; e++) pre += Wc[a * (dq + dk) + dq + e] * k[(b * N + j) * dk + e];
                cc += v[a] * tanh(pre);
            }
            CHECK_CLOSE(heed_get(sd, b * N + j), d, 1e-14);
            CHECK_CLOSE(heed_get(sg, b * N + j), gn, 1e-14);
            CHECK_CLOSE(heed_get(sc, b * N + j), cc, 1e-14);
        }
    heed_graph_free(g);
    free(q), free(k), free(W), free(Wc), free(v), free(kd);
}

static heed_tensor *fn_coverage_loss(heed_graph *g, heed_tensor **x, void *u) {
    (void)u;
    return heed_coverage_loss(g, x[0], x[1]);
}

static void coverage_loss(void) {
    heed_graph *g = heed_graph_new(ctx);
    double a[6] = {0.2, 0.5, 0.3, 1, 0, 0}, c[6] = {0.1, 0.9, 0.3, 0, 2, 0.5};
    heed_tensor *A = heed_requires_grad(heed_input_f64(g, HEED_F64, HEED_SHAPE(2, 3), a));
    heed_tensor *Cv = heed_requires_grad(heed_input_f64(g, HEED_F64, HEED_SHAPE(2, 3), c));
    heed_tensor *l = heed_coverage_loss(g, A, Cv);
    CHECK(l && fabs(heed_get(l, 0) - 0.9) < 1e-15 && heed_get(l, 1) == 0, "values %g %g", heed_get(l, 0),
          heed_get(l, 1));
    CHECK(heed_backward(g, heed_sum_all(g, l)) == HEED_OK, "%s", heed_graph_error(g));
    heed_tensor *ga = heed_grad(g, A), *gc = heed_grad(g, Cv);
    CHECK(heed_get(ga, 0) == 0 && heed_get(gc, 0) == 1 && heed_get(ga, 1) == 1 && heed_get(ga, 2) == 0.5 &&
              heed_get(gc, 2) == 0.5,
          "min gradients (tie splits)");
    heed_graph_free(g);
    /* random values never tie */
    heed_gradcheck_input in[2] = {{HEED_SHAPE(3, 4)}, {HEED_SHAPE(3, 4)}};
    CHECK_GRAD(ctx, fn_coverage_loss, NULL, 2, in, NULL);
    check_f32_vs_f64(ctx, fn_coverage_loss, NULL, 2, in, 1e-5, "coverage loss");
}

static void scores_bad_inputs(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *q = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 4)), *kp = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5, 3));
    heed_tensor *wq = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 4)), *v = heed_zeros(g, HEED_F32, HEED_SHAPE(3));
    heed_tensor *vals = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5, 6)), *prev = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5));
#define RESET_INPUTS()                                                                                                 \
    do {                                                                                                               \
        q = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 4)), kp = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5, 3));              \
        wq = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 4)), v = heed_zeros(g, HEED_F32, HEED_SHAPE(3));                    \
        vals = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5, 6)), prev = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5));         \
    } while (0)
    heed_additive_params p = {.w_q = wq, .v = v};
    CHECK(heed_additive_attention(g, q, kp, vals, &p, NULL, NULL, (int64_t[]){5, 6}, NULL) == NULL, "length > N");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_attend: key_lengths[1] = 6 is out of range [0, 5]");
    RESET_INPUTS();
    p = (heed_additive_params){.w_q = wq, .v = v};
    CHECK(heed_additive_attention(g, q, kp, vals, &p, NULL, NULL, (int64_t[]){-1, 2}, NULL) == NULL, "negative length");
    CHECK_ERR(g, HEED_ERR_ARG, "key_lengths[0] = -1");
    RESET_INPUTS();
    p = (heed_additive_params){.w_q = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 5)), .v = v};
    CHECK(heed_additive_score(g, q, kp, &p, NULL, NULL) == NULL, "w_q");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_additive_score: params.w_q[3,5] must be [da,dq] = [3,4]");
    RESET_INPUTS();
    p = (heed_additive_params){.w_q = wq,
                               .v = v,
                               .loc_filters = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 4)),
                               .loc_proj = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 2))};
    CHECK(heed_additive_score(g, q, kp, &p, prev, NULL) == NULL, "even window");
    CHECK_ERR(g, HEED_ERR_SHAPE, "odd window K >= 1");
    RESET_INPUTS();
    p = (heed_additive_params){.w_q = wq,
                               .v = v,
                               .loc_filters = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 0)),
                               .loc_proj = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 2))};
    CHECK(heed_additive_score(g, q, kp, &p, prev, NULL) == NULL, "window 0");
    CHECK_ERR(g, HEED_ERR_SHAPE, "loc_filters[2,0]");
    RESET_INPUTS();
    p = (heed_additive_params){.w_q = wq,
                               .v = v,
                               .loc_filters = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3)),
                               .loc_proj = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 2))};
    CHECK(heed_additive_score(g, q, kp, &p, NULL, NULL) == NULL, "missing prev");
    CHECK_ERR(g, HEED_ERR_ARG, "prev_weights together");
    RESET_INPUTS();
    p = (heed_additive_params){.w_q = wq,
                               .v = v,
                               .loc_filters = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3)),
                               .loc_proj = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 2))};
    CHECK(heed_additive_score(g, q, kp, &p, heed_zeros(g, HEED_F32, HEED_SHAPE(2, 4)), NULL) == NULL, "prev shape");
    CHECK_ERR(g, HEED_ERR_SHAPE, "prev_weights[2,4] must be [B,N] = [2,5]");
    RESET_INPUTS();
    p = (heed_additive_params){.w_q = wq, .v = v, .cov_weight = v};
    CHECK(heed_additive_score(g, q, kp, &p, NULL, NULL) == NULL, "missing coverage");
    CHECK_ERR(g, HEED_ERR_ARG, "coverage");
    RESET_INPUTS();
    p = (heed_additive_params){.w_q = wq, .v = v};
    CHECK(heed_additive_score(g, q, heed_zeros(g, HEED_F32, HEED_SHAPE(3, 5, 3)), &p, NULL, NULL) == NULL, "batch");
    CHECK_ERR(g, HEED_ERR_SHAPE, "with B = 2");
    RESET_INPUTS();
    p = (heed_additive_params){.w_q = wq, .v = v};
    CHECK(heed_additive_score(g, heed_zeros(g, HEED_F64, HEED_SHAPE(2, 4)), kp, &p, NULL, NULL) == NULL, "dtype");
    CHECK_ERR(g, HEED_ERR_DTYPE, "dtypes must match");
    RESET_INPUTS();
    CHECK(heed_additive_score(g, q, kp, NULL, NULL, NULL) == NULL, "NULL params");
    CHECK_ERR(g, HEED_ERR_ARG, "params is NULL");
    RESET_INPUTS();
    p = (heed_additive_params){.v = v};
    CHECK(heed_additive_score(g, q, kp, &p, NULL, NULL) == NULL, "NULL w_q");
    CHECK_ERR(g, HEED_ERR_ARG, "params.w_q is NULL");
    RESET_INPUTS();
    CHECK(heed_attend(g, prev, heed_zeros(g, HEED_F32, HEED_SHAPE(2, 4, 6)), NULL, NULL) == NULL, "values N");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_attend: values[2,4,6] must be [B,N,dv] = [2,5,?]");
    RESET_INPUTS();
    CHECK(heed_luong_score(g, HEED_LUONG_DOT, q, kp, NULL, NULL) == NULL, "dot dims");
    CHECK_ERR(g, HEED_ERR_SHAPE, "dq = 4 and dk = 3 must be equal");
    RESET_INPUTS();
    CHECK(heed_luong_score(g, HEED_LUONG_GENERAL, q, kp, heed_zeros(g, HEED_F32, HEED_SHAPE(3, 4)), NULL) == NULL,
          "general");
    CHECK_ERR(g, HEED_ERR_SHAPE, "w[3,4] must be [dq,dk] = [4,3]");
    RESET_INPUTS();
    CHECK(heed_luong_score(g, HEED_LUONG_CONCAT, q, kp, heed_zeros(g, HEED_F32, HEED_SHAPE(3, 6)), v) == NULL,
          "concat");
    CHECK_ERR(g, HEED_ERR_SHAPE, "must be [da,dq+dk] = [?,7]");
    RESET_INPUTS();
    CHECK(heed_luong_score(g, (heed_luong_kind)9, q, kp, NULL, NULL) == NULL, "kind");
    CHECK_ERR(g, HEED_ERR_ARG, "unknown kind 9");
    RESET_INPUTS();
    CHECK(heed_coverage_loss(g, prev, q) == NULL, "coverage loss shapes");
    CHECK_ERR(g, HEED_ERR_SHAPE, "coverage[2,4] must be [B,N] = [2,5]");
    /* empty batches and empty key sets are fine: zero contexts */
    RESET_INPUTS();
    p = (heed_additive_params){.w_q = wq, .v = v};
    heed_tensor *c0 = heed_additive_attention(g, q, heed_zeros(g, HEED_F32, HEED_SHAPE(2, 0, 3)),
                                              heed_zeros(g, HEED_F32, HEED_SHAPE(2, 0, 6)), &p, NULL, NULL, NULL, NULL);
    CHECK(c0 && c0->shape[1] == 6 && heed_get(c0, 0) == 0, "N = 0: %s", heed_graph_error(g));
    heed_tensor *s0 = heed_luong_score(g, HEED_LUONG_DOT, heed_zeros(g, HEED_F32, HEED_SHAPE(0, 3)),
                                       heed_zeros(g, HEED_F32, HEED_SHAPE(0, 4, 3)), NULL, NULL);
    CHECK(s0 && s0->numel == 0, "B = 0: %s", heed_graph_error(g));
#undef RESET_INPUTS
    heed_graph_free(g);
}

/* ---------------------------------------------------------------- positions */

static void sinusoidal_positions(void) {
    heed_graph *g = heed_graph_new(ctx);
    int64_t n = 9, d = 7; /* odd d */
    heed_tensor *pe = heed_sinusoidal_positions(g, HEED_F64, 0, n, d);
    heed_tensor *part = heed_sinusoidal_positions(g, HEED_F64, 3, 4, d);
    heed_tensor *pe32 = heed_sinusoidal_positions(g, HEED_F32, 0, n, d);
    CHECK(pe && part && pe32 && pe->shape[0] == n && pe->shape[1] == d, "%s", heed_graph_error(g));
    for (int64_t p = 0; p < n && pe; p++)
        for (int64_t i = 0; 2 * i < d; i++) {
            double angle = (double)p / pow(10000.0, (double)(2 * i) / (double)d);
            CHECK_CLOSE(heed_get(pe, p * d + 2 * i), sin(angle), 1e-14);
            if (2 * i + 1 < d) CHECK_CLOSE(heed_get(pe, p * d + 2 * i + 1), cos(angle), 1e-14);
        }
    for (int64_t i = 0; i < 4 * d && part; i++) CHECK(heed_get(part, i) == heed_get(pe, 3 * d + i), "offset rows");
    for (int64_t i = 0; i < n * d && pe32; i++) CHECK(fabs(heed_get(pe32, i) - heed_get(pe, i)) < 1e-6, "f32");
    CHECK(heed_get(pe, 0) == 0 && heed_get(pe, 1) == 1, "position 0 is sin 0, cos 0");
    CHECK(heed_sinusoidal_positions(g, HEED_F32, 0, 4, 0) == NULL, "d = 0");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_sinusoidal_positions: start = 0, n = 4, d = 0");
    CHECK(heed_sinusoidal_positions(g, HEED_F32, -1, 4, 4) == NULL, "negative start");
    CHECK_ERR(g, HEED_ERR_ARG, "start >= 0");
    heed_graph_free(g);
}

static heed_tensor *fn_learned(heed_graph *g, heed_tensor **x, void *u) {
    (void)u;
    /* [2,3,4] inputs + positions [3,4] broadcast, twice (gradients add up) */
    heed_tensor *p = heed_learned_positions(g, x[1], 2, 3);
    heed_tensor *p2 = heed_learned_positions(g, x[1], 1, 3);
    return heed_mul(g, heed_add(g, x[0], p), p2);
}

static void learned_positions(void) {
    heed_gradcheck_input in[2] = {{HEED_SHAPE(2, 3, 4)}, {HEED_SHAPE(6, 4)}};
    CHECK_GRAD(ctx, fn_learned, NULL, 2, in, NULL);
    check_f32_vs_f64(ctx, fn_learned, NULL, 2, in, 1e-6, "learned positions");
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *t = heed_zeros(g, HEED_F32, HEED_SHAPE(6, 4));
    CHECK(heed_learned_positions(g, t, 4, 3) == NULL, "past maxlen");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_learned_positions: positions [4, 7) do not fit table[6,4] (maxlen 6)");
    t = heed_zeros(g, HEED_F32, HEED_SHAPE(6));
    CHECK(heed_learned_positions(g, t, 0, 3) == NULL, "1-D table");
    CHECK_ERR(g, HEED_ERR_SHAPE, "must be [maxlen,d]");
    heed_graph_free(g);
}

typedef struct {
    heed_relpos_opts o;
    int64_t nq, nk;
} relpos_case;

static heed_tensor *fn_relpos(heed_graph *g, heed_tensor **x, void *u) {
    relpos_case *c = u;
    /* used as an attention bias: added to scores [B,H,nq,nk] */
    return heed_add(g, x[1], heed_relative_position_bias(g, x[0], c->nq, c->nk, &c->o));
}

/* heed_relpos_bucket's bucket, or INT64_MIN (failing every comparison) with the error shown. */
static int64_t bucket(const heed_relpos_opts *o, int64_t num_buckets, int64_t rel) {
    int64_t b = INT64_MIN;
    heed_status st = heed_relpos_bucket(ctx, o, num_buckets, rel, &b);
    CHECK(st == HEED_OK, "bucket of %lld: %s", (long long)rel, heed_ctx_error(ctx));
    return st == HEED_OK ? b : INT64_MIN;
}

static void relative_position_bias(void) {
    /* T5 buckets from the definition (32 buckets, max distance 128, bidirectional):
     * exact below 8 per side, log-spaced up to 128, keys after the query in the upper half. */
    heed_relpos_opts t5 = {.kind = HEED_RELPOS_T5, .bidirectional = true};
    CHECK(bucket(&t5, 32, 0) == 0, "0");
    CHECK(bucket(&t5, 32, -1) == 1, "-1");
    CHECK(bucket(&t5, 32, 1) == 17, "+1");
    CHECK(bucket(&t5, 32, -7) == 7 && bucket(&t5, 32, -8) == 8, "exact to 7");
    CHECK(bucket(&t5, 32, -20) == 10, "-20: 8 + floor(log(2.5)/log(16)*8) = 10");
    CHECK(bucket(&t5, 32, -200) == 15 && bucket(&t5, 32, 200) == 31, "clamped");
    heed_relpos_opts causal = {.kind = HEED_RELPOS_T5, .bidirectional = false};
    CHECK(bucket(&causal, 32, 5) == 0 && bucket(&causal, 32, -5) == 5, "one-directional");
    CHECK(bucket(&causal, 32, -20) == 16 + (int64_t)(log(20.0 / 16) / log(128.0 / 16) * 16), "log part");
    int64_t last = 0; /* monotone in distance */
    for (int64_t r = 0; r > -300; r--) {
        int64_t br = bucket(&causal, 32, r);
        CHECK(br >= last && br < 32, "monotone %lld", (long long)r);
        last = br;
    }
    heed_relpos_opts clip = {.kind = HEED_RELPOS_CLIPPED};
    CHECK(bucket(&clip, 7, -5) == 0 && bucket(&clip, 7, 2) == 5 && bucket(&clip, 7, 9) == 6, "clipped");
    int64_t b = 99;
    CHECK_CTX_FAIL(ctx, heed_relpos_bucket(ctx, &clip, 6, 0, &b), HEED_ERR_SHAPE,
                   "heed_relpos_bucket: clipped distances need 2*max_distance+1 rows (odd; 6 rows, max_distance = 0)");
    CHECK_CTX_FAIL(ctx, heed_relpos_bucket(ctx, &(heed_relpos_opts){.max_distance = 2}, 7, 0, &b), HEED_ERR_SHAPE,
                   "(odd; 7 rows, max_distance = 2)");
    CHECK_CTX_FAIL(ctx, heed_relpos_bucket(ctx, &clip, 0, 0, &b), HEED_ERR_SHAPE, "(odd; 0 rows, max_distance = 0)");
    CHECK_CTX_FAIL(ctx, heed_relpos_bucket(ctx, &t5, 3, 0, &b), HEED_ERR_ARG,
                   "heed_relpos_bucket: T5 buckets need max_exact = (buckets/2)/2 >= 1 and max_distance > max_exact "
                   "(3 rows, max_distance 128)");
    CHECK_CTX_FAIL(ctx,
                   heed_relpos_bucket(ctx, &(heed_relpos_opts){.kind = HEED_RELPOS_T5, .max_distance = 8}, 32, 0, &b),
                   HEED_ERR_ARG, "(32 rows, max_distance 8)");
    CHECK_CTX_FAIL(ctx, heed_relpos_bucket(ctx, &(heed_relpos_opts){.kind = (heed_relpos_kind)5}, 7, 0, &b),
                   HEED_ERR_ARG, "heed_relpos_bucket: unknown kind 5 (clipped or T5)");
    CHECK_CTX_FAIL(ctx, heed_relpos_bucket(ctx, &clip, 7, 0, NULL), HEED_ERR_ARG, "heed_relpos_bucket: bucket is NULL");
    CHECK(b == 99, "*bucket untouched on error");
    CHECK(heed_relpos_bucket(NULL, &clip, 7, 0, &b) == HEED_ERR_ARG && b == 99, "NULL ctx");
    CHECK(heed_relpos_bucket(ctx, NULL, 5, -1, &b) == HEED_OK && b == 1, "NULL opts: clipped from the table");

    /* values: bias[0,h,i,j] = table[bucket(j - (start + i)), h] */
    heed_graph *g = heed_graph_new(ctx);
    heed_rng r = heed_rng_make(5, 5);
    int64_t R = 7, H = 3, nq = 4, nk = 6;
    double *tv = randn(&r, R * H);
    heed_tensor *table = heed_input_f64(g, HEED_F64, HEED_SHAPE(R, H), tv);
    heed_relpos_opts o = {.kind = HEED_RELPOS_CLIPPED, .query_start = 2};
    heed_tensor *bias = heed_relative_position_bias(g, table, nq, nk, &o);
    CHECK(bias && bias->ndim == 4 && bias->shape[0] == 1 && bias->shape[1] == H, "%s", heed_graph_error(g));
    for (int64_t h = 0; h < H && bias; h++)
        for (int64_t i = 0; i < nq; i++)
            for (int64_t j = 0; j < nk; j++) {
                int64_t rel = j - (2 + i), b = rel < -3 ? 0 : rel > 3 ? 6 : rel + 3;
                CHECK(heed_get(bias, (h * nq + i) * nk + j) == tv[b * H + h], "value h%lld i%lld j%lld", (long long)h,
                      (long long)i, (long long)j);
            }
    free(tv);

    relpos_case c1 = {{.kind = HEED_RELPOS_CLIPPED, .max_distance = 2, .query_start = 1}, 3, 4};
    heed_gradcheck_input in1[2] = {{HEED_SHAPE(5, 2)}, {HEED_SHAPE(2, 2, 3, 4)}};
    CHECK_GRAD(ctx, fn_relpos, &c1, 2, in1, NULL);
    check_f32_vs_f64(ctx, fn_relpos, &c1, 2, in1, 1e-6, "relpos clipped");
    relpos_case c2 = {{.kind = HEED_RELPOS_T5, .max_distance = 12, .bidirectional = true}, 5, 9};
    heed_gradcheck_input in2[2] = {{HEED_SHAPE(8, 3)}, {HEED_SHAPE(1, 3, 5, 9)}};
    CHECK_GRAD(ctx, fn_relpos, &c2, 2, in2, NULL);

    heed_graph_reset(g);
    table = heed_zeros(g, HEED_F32, HEED_SHAPE(6, 2));
    CHECK(heed_relative_position_bias(g, table, 3, 3, NULL) == NULL, "even rows");
    CHECK_ERR(g, HEED_ERR_SHAPE, "2*max_distance+1 rows");
    table = heed_zeros(g, HEED_F32, HEED_SHAPE(7, 2));
    CHECK(heed_relative_position_bias(g, table, 3, 3, &(heed_relpos_opts){.max_distance = 4}) == NULL, "max distance");
    CHECK_ERR(g, HEED_ERR_SHAPE, "max_distance = 4");
    table = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 2));
    CHECK(heed_relative_position_bias(g, table, 3, 3,
                                      &(heed_relpos_opts){.kind = HEED_RELPOS_T5, .bidirectional = true}) == NULL,
          "T5 too few buckets");
    CHECK_ERR(g, HEED_ERR_ARG, "max_exact");
    table = heed_zeros(g, HEED_F32, HEED_SHAPE(7, 2));
    CHECK(heed_relative_position_bias(g, table, -1, 3, NULL) == NULL, "negative nq");
    CHECK_ERR(g, HEED_ERR_ARG, "nq = -1");
    heed_graph_free(g);
}

/* ---------------------------------------------------------------- multi-head attention */

/* Naive reference: projections, per-head masked softmax (key lengths, causal bottom-right
 * aligned, additive bias [H,Nq,Nk] or NULL), output projection; all in double from the
 * parameter values. */
static void ref_mha(const heed_mha *m, const double *query, const double *key, const double *value, int64_t B,
                    int64_t Nq, int64_t Nk, const int64_t *lens, bool causal, const double *bias, double *out,
                    double *weights) {
    int64_t E = m->embed_dim, H = m->num_heads, dh = m->head_dim, kd = m->kdim, vd = m->vdim;
    double *Q = calloc((size_t)(B * Nq * E), sizeof *Q), *K = calloc((size_t)(B * Nk * E), sizeof *K),
           *V = calloc((size_t)(B * Nk * E), sizeof *V), *O = calloc((size_t)(B * Nq * E), sizeof *O);
#define PROJ(dst, src, n, in, w, bb)                                                                                   \
    for (int64_t r = 0; r < (n); r++)                                                                                  \
        for (int64_t e = 0; e < E; e++) {                                                                              \
            double s = (bb) ? heed_get((bb), e) : 0;                                                                   \
            for (int64_t c = 0; c < (in); c++) s += heed_get((w), e * (in) + c) * (src)[r * (in) + c];                 \
            (dst)[r * E + e] = s;                                                                                      \
        }
    PROJ(Q, query, B * Nq, E, m->q_w, m->q_b);
    PROJ(K, key, B * Nk, kd, m->k_w, m->k_b);
    PROJ(V, value, B * Nk, vd, m->v_w, m->v_b);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Nq; i++) {
                double s[64], mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < Nk; j++) {
                    bool masked = (lens && j >= lens[b]) || (causal && j > i + Nk - Nq);
                    double d = 0;
                    for (int64_t c = 0; c < dh; c++)
                        d += Q[(b * Nq + i) * E + h * dh + c] * K[(b * Nk + j) * E + h * dh + c];
                    s[j] = masked ? -INFINITY : d / sqrt((double)dh) + (bias ? bias[(h * Nq + i) * Nk + j] : 0);
                    mx = fmax(mx, s[j]);
                }
                for (int64_t j = 0; j < Nk; j++) sum += s[j] = mx == -INFINITY ? 0 : exp(s[j] - mx);
                for (int64_t j = 0; j < Nk; j++) {
                    double p = sum > 0 ? s[j] / sum : 0;
                    if (weights) weights[((b * H + h) * Nq + i) * Nk + j] = p;
                    for (int64_t c = 0; c < dh; c++)
                        O[(b * Nq + i) * E + h * dh + c] += p * V[(b * Nk + j) * E + h * dh + c];
                }
            }
    PROJ(out, O, B * Nq, E, m->o_w, m->o_b);
#undef PROJ
    free(Q), free(K), free(V), free(O);
}

static void mha_matches_reference(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_mha m, self;
    CHECK(heed_mha_declare(&m, P, "dec.cross",
                           &(heed_mha_config){.embed_dim = 6, .num_heads = 2, .kdim = 5, .vdim = 4, .bias = true}) ==
              HEED_OK,
          "%s", heed_ctx_error(ctx));
    CHECK(heed_mha_declare(&self, P, "enc.self", &(heed_mha_config){.embed_dim = 6, .num_heads = 3}) == HEED_OK, "%s",
          heed_ctx_error(ctx));
    CHECK(heed_params_find(P, "dec.cross.q_proj.weight") &&
              heed_params_find(P, "dec.cross.k_proj.weight")->shape[1] == 5 &&
              heed_params_find(P, "dec.cross.v_proj.weight")->shape[1] == 4 &&
              heed_params_find(P, "dec.cross.out_proj.bias") && !heed_params_find(P, "enc.self.q_proj.bias") &&
              heed_params_count(P) == 12,
          "PyTorch-like names");
    /* non-zero biases so they are exercised */
    heed_param_init(P, m.q_b, heed_init_uniform(-0.5, 0.5));
    heed_param_init(P, m.o_b, heed_init_uniform(-0.5, 0.5));
    heed_param_init(P, m.k_b, heed_init_uniform(-0.5, 0.5));
    heed_param_init(P, m.v_b, heed_init_uniform(-0.5, 0.5));
    heed_rng r = heed_rng_make(21, 0);
    int64_t B = 2, Nq = 3, Nk = 5;
    double *query = randn(&r, B * Nq * 6), *key = randn(&r, B * Nk * 5), *value = randn(&r, B * Nk * 4);
    double out[2 * 3 * 6], w[2 * 2 * 3 * 5];
    static const int64_t lens[2] = {5, 2};
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *weights = NULL;
    heed_tensor *y = heed_mha_forward(g, &m, heed_input_f64(g, HEED_F64, HEED_SHAPE(B, Nq, 6), query),
                                      heed_input_f64(g, HEED_F64, HEED_SHAPE(B, Nk, 5), key),
                                      heed_input_f64(g, HEED_F64, HEED_SHAPE(B, Nk, 4), value),
                                      &(heed_attention_opts){.key_lengths = lens}, &weights);
    CHECK(y && weights && y->shape[0] == B && y->shape[1] == Nq && y->shape[2] == 6, "%s", heed_graph_error(g));
    ref_mha(&m, query, key, value, B, Nq, Nk, lens, false, NULL, out, w);
    for (int64_t i = 0; y && i < B * Nq * 6; i++) CHECK_CLOSE(heed_get(y, i), out[i], 1e-12);
    CHECK(weights && weights->ndim == 4 && weights->shape[1] == 2 && weights->shape[3] == Nk, "weights [B,H,Nq,Nk]");
    for (int64_t i = 0; weights && i < B * 2 * Nq * Nk; i++) CHECK_CLOSE(heed_get(weights, i), w[i], 1e-12);
    CHECK(weights && heed_get(weights, ((1 * 2 + 1) * Nq + 2) * Nk + 3) == 0, "masked key has weight 0");
    /* self-attention, causal, with a relative-position bias */
    heed_graph_reset(g);
    int64_t N = 4;
    double *x = randn(&r, B * N * 6), *table = randn(&r, 7 * 3), bias[3 * 4 * 4], out2[2 * 4 * 6];
    heed_tensor *tb = heed_input_f64(g, HEED_F64, HEED_SHAPE(7, 3), table);
    heed_tensor *rb = heed_relative_position_bias(g, tb, N, N, NULL);
    for (int64_t i = 0; rb && i < 3 * N * N; i++) bias[i] = heed_get(rb, i);
    y = heed_mha_forward(g, &self, heed_input_f64(g, HEED_F64, HEED_SHAPE(B, N, 6), x), NULL, NULL,
                         &(heed_attention_opts){.causal = true, .bias = rb}, NULL);
    CHECK(y != NULL, "%s", heed_graph_error(g));
    ref_mha(&self, x, x, x, B, N, N, NULL, true, bias, out2, NULL);
    for (int64_t i = 0; y && i < B * N * 6; i++) CHECK_CLOSE(heed_get(y, i), out2[i], 1e-12);
    heed_graph_free(g);
    heed_params_free(P);
    free(query), free(key), free(value), free(x), free(table);
}

typedef struct {
    heed_mha m64, m32;
    heed_tensor *rel64, *rel32;
    bool cross, dropout;
} mha_case;

static heed_tensor *fn_mha(heed_graph *g, heed_tensor **x, void *u) {
    mha_case *c = u;
    static const int64_t lens[2] = {4, 2};
    bool f64 = x[0]->dtype == HEED_F64;
    const heed_mha *m = f64 ? &c->m64 : &c->m32;
    heed_tensor *weights = NULL;
    heed_attention_opts o = {.key_lengths = lens};
    if (!c->cross) {
        o.causal = true;
        o.bias = heed_relative_position_bias(g, f64 ? c->rel64 : c->rel32, 4, 4, NULL);
    }
    if (c->dropout) o.dropout = 0.3;
    heed_tensor *y = heed_mha_forward(g, m, x[0], c->cross ? x[1] : NULL, c->cross ? x[2] : NULL, &o, &weights);
    /* the output [B,Nq,E] plus a weighted sum of the per-head weights, so the gradient
     * through the weights output is checked too */
    double ramp[4] = {0.3, -1.1, 0.7, 1.9};
    heed_tensor *wr = heed_mul(g, weights, heed_input_f64(g, x[0]->dtype, HEED_SHAPE(4), ramp));
    heed_tensor *ws = heed_sum(g, heed_sum(g, wr, 3, false), 1, false); /* [B,Nq] */
    return heed_add(g, y, heed_reshape(g, ws, HEED_SHAPE(2, y ? y->shape[1] : 1, 1)));
}

/* Copies every value of src into the f32 store dst (same names and order). */
static void copy_store(heed_params *dst, heed_params *src) {
    for (int i = 0; i < heed_params_count(src); i++) {
        heed_tensor *s = heed_params_at(src, i), *d = heed_params_at(dst, i);
        for (int64_t k = 0; k < s->numel; k++) ((float *)d->data)[k] = (float)((double *)s->data)[k];
    }
}

static void mha_gradients(void) {
    mha_case c = {0};
    heed_mha_config cross = {.embed_dim = 6, .num_heads = 2, .kdim = 5, .vdim = 3, .bias = true};
    heed_mha_config self = {.embed_dim = 6, .num_heads = 3, .bias = true};
    for (int cs = 0; cs < 2; cs++) {
        heed_params *Q = heed_params_new(ctx, HEED_F64), *Q32 = heed_params_new(ctx, HEED_F32);
        c.cross = cs;
        CHECK(heed_mha_declare(&c.m64, Q, "attn", cs ? &cross : &self) == HEED_OK, "%s", heed_ctx_error(ctx));
        CHECK(heed_mha_declare(&c.m32, Q32, "attn", cs ? &cross : &self) == HEED_OK, "%s", heed_ctx_error(ctx));
        c.rel64 = heed_param(Q, "attn.rel_bias", HEED_SHAPE(5, 3), heed_init_normal(0, 1));
        c.rel32 = heed_param(Q32, "attn.rel_bias", HEED_SHAPE(5, 3), heed_init_zeros());
        for (int i = 0; i < heed_params_count(Q); i++)
            heed_param_init(Q, heed_params_at(Q, i), heed_init_uniform(-0.8, 0.8));
        copy_store(Q32, Q);
        heed_gradcheck_input in[3] = {{HEED_SHAPE(2, 4, 6)}, {HEED_SHAPE(2, 4, 5)}, {HEED_SHAPE(2, 4, 3)}};
        CHECK_GRAD(ctx, fn_mha, &c, cs ? 3 : 1, in, &(heed_gradcheck_opts){.params = Q});
        check_f32_vs_f64(ctx, fn_mha, &c, cs ? 3 : 1, in, 1e-5, cs ? "mha cross" : "mha self");
        c.dropout = true; /* masks replayed by the checker */
        CHECK_GRAD(ctx, fn_mha, &c, cs ? 3 : 1, in, &(heed_gradcheck_opts){.params = Q});
        c.dropout = false;
        heed_params_free(Q);
        heed_params_free(Q32);
    }
}

static void mha_bad_inputs(void) {
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_mha m;
    CHECK(heed_mha_declare(&m, P, "a", &(heed_mha_config){.embed_dim = 6, .num_heads = 4}) == HEED_ERR_ARG, "E mod H");
    CHECK(strstr(heed_ctx_error(ctx), "embed_dim = 6 must be a positive multiple of num_heads = 4") != NULL, "%s",
          heed_ctx_error(ctx));
    CHECK(heed_mha_declare(&m, P, "a", &(heed_mha_config){.embed_dim = 8, .num_heads = 2, .dropout = 1}) ==
              HEED_ERR_ARG,
          "p");
    CHECK(heed_mha_declare(&m, P, "a", &(heed_mha_config){.embed_dim = 8, .num_heads = 2}) == HEED_OK, "%s",
          heed_ctx_error(ctx));
    CHECK(heed_mha_declare(&m, P, "a", &(heed_mha_config){.embed_dim = 8, .num_heads = 2}) != HEED_OK,
          "same prefix twice");
    CHECK(strstr(heed_ctx_error(ctx), "exists") != NULL, "%s", heed_ctx_error(ctx));
    heed_mha_declare(&m, P, "b", &(heed_mha_config){.embed_dim = 8, .num_heads = 2, .kdim = 3});
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *q = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 7));
    CHECK(heed_mha_forward(g, &m, q, NULL, NULL, NULL, NULL) == NULL, "query dim");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_mha_forward: query[2,3,7] must be [B,N,8]");
    q = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 8));
    CHECK(heed_mha_forward(g, &m, q, NULL, NULL, NULL, NULL) == NULL, "self-attention with kdim != E");
    CHECK_ERR(g, HEED_ERR_SHAPE, "key[2,3,8] must be [B,N,3]");
    q = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 8));
    CHECK(heed_mha_forward(g, &m, q, heed_zeros(g, HEED_F32, HEED_SHAPE(3, 4, 3)),
                           heed_zeros(g, HEED_F32, HEED_SHAPE(3, 4, 8)), NULL, NULL) == NULL,
          "batch");
    CHECK_ERR(g, HEED_ERR_SHAPE, "with the query's B");
    q = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 8));
    CHECK(heed_mha_forward(g, &m, q, heed_zeros(g, HEED_F32, HEED_SHAPE(2, 4, 3)),
                           heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5, 8)), NULL, NULL) == NULL,
          "keys vs values");
    CHECK_ERR(g, HEED_ERR_SHAPE, "same number of keys");
    q = heed_zeros(g, HEED_F64, HEED_SHAPE(2, 3, 8));
    CHECK(heed_mha_forward(g, &m, q, heed_zeros(g, HEED_F64, HEED_SHAPE(2, 4, 3)),
                           heed_zeros(g, HEED_F64, HEED_SHAPE(2, 4, 8)), NULL, NULL) == NULL,
          "dtype");
    CHECK_ERR(g, HEED_ERR_DTYPE, "parameters are f32 but query is f64");
    heed_tensor *w = q; /* an error leaves NULL in the weights, whatever was there */
    CHECK(heed_mha_forward(g, NULL, q, NULL, NULL, NULL, &w) == NULL && w == NULL, "NULL layer");
    CHECK_ERR(g, HEED_ERR_ARG, "not initialised");
    q = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 8));
    CHECK(heed_mha_forward(g, &m, q, heed_zeros(g, HEED_F32, HEED_SHAPE(2, 4, 3)),
                           heed_zeros(g, HEED_F32, HEED_SHAPE(2, 4, 8)),
                           &(heed_attention_opts){.key_lengths = (int64_t[]){4, 5}}, NULL) == NULL,
          "key length");
    CHECK_ERR(g, HEED_ERR_ARG, "key_lengths");
    heed_graph_free(g);
    heed_params_free(P);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 7});
    RUN(attend_matches_reference);
    RUN(attend_gradients);
    RUN(attend_large_scores);
    RUN(additive_matches_reference);
    RUN(additive_gradients);
    RUN(two_steps_with_params);
    RUN(luong_scores);
    RUN(coverage_loss);
    RUN(scores_bad_inputs);
    RUN(sinusoidal_positions);
    RUN(learned_positions);
    RUN(relative_position_bias);
    RUN(mha_matches_reference);
    RUN(mha_gradients);
    RUN(mha_bad_inputs);
    heed_ctx_free(ctx);
    return check_summary();
}
