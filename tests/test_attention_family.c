/* The rest of the attention family: linear attention (elu + 1 and Performer's FAVOR+
 * features; non-causal, causal and the decoding step), Luong's local attention (local-m,
 * local-p) and hard stochastic attention with the REINFORCE estimator. */
#include "check_grad32.h"
#include "heed/attention.h"
#include "heed/elementwise.h"
#include "heed/loss.h"
#include "heed/matmul.h"
#include "heed/optim.h"
#include "heed/reduce.h"
#include "heed/shape.h"

static heed_ctx *ctx;

static double *uniform(heed_rng *r, int64_t n, double amp) {
    double *d = malloc((size_t)(n > 0 ? n : 1) * sizeof *d);
    for (int64_t i = 0; i < n; i++) d[i] = amp * (2 * heed_rng_uniform(r) - 1);
    return d;
}

static heed_tensor *input(heed_graph *g, heed_shape s, const double *d, bool grad) {
    heed_tensor *t = heed_input_f64(g, HEED_F64, s, d);
    return grad ? heed_requires_grad(t) : t;
}

/* ================================================================ linear attention */

/* The N x N formula, one head: out_i = sum_{j < hi} (fq_i . fk_j) v_j / sum_{j < hi} fq_i . fk_j,
 * hi = L, or min(L, i + Nk - Nq + 1) when causal; zeros for a row without keys. */
static void ref_linear(const double *fq, const double *fk, const double *v, int64_t Nq, int64_t Nk, int64_t m,
                       int64_t dv, int64_t L, bool causal, double *out) {
    for (int64_t i = 0; i < Nq; i++) {
        int64_t hi = causal && i + Nk - Nq + 1 < L ? i + Nk - Nq + 1 : L;
        double den = 0;
        for (int64_t c = 0; c < dv; c++) out[i * dv + c] = 0;
        for (int64_t j = 0; j < hi; j++) {
            double a = 0;
            for (int64_t e = 0; e < m; e++) a += fq[i * m + e] * fk[j * m + e];
            den += a;
            for (int64_t c = 0; c < dv; c++) out[i * dv + c] += a * v[j * dv + c];
        }
        for (int64_t c = 0; c < dv && hi > 0; c++) out[i * dv + c] /= den;
    }
}

typedef struct {
    bool causal;
    const int64_t *lens;
    int features; /* 0: the inputs are the features; 1: elu + 1; 2: FAVOR+ with x[3] the projection */
} lin_case;

static heed_tensor *fn_linear(heed_graph *g, heed_tensor **x, void *u) {
    const lin_case *c = u;
    heed_tensor *fq = x[0], *fk = x[1];
    if (c->features == 1) fq = heed_elu_features(g, x[0]), fk = heed_elu_features(g, x[1]);
    if (c->features == 2)
        fq = heed_favor_features(g, x[0], x[3], HEED_FAVOR_QUERIES),
        fk = heed_favor_features(g, x[1], x[3], HEED_FAVOR_KEYS);
    return heed_linear_attention(g, fq, fk, x[2],
                                 &(heed_linear_attention_opts){.causal = c->causal, .key_lengths = c->lens});
}

/* The same from core ops: A = (fq fk^T) * mask, out = (A v) / rowsum(A). */
static heed_tensor *explicit_linear(heed_graph *g, heed_tensor *fq, heed_tensor *fk, heed_tensor *v,
                                    const lin_case *c) {
    int64_t B = fq->shape[0], H = fq->shape[1], Nq = fq->shape[2], Nk = fk->shape[2];
    double *mask = malloc((size_t)(B * H * Nq * Nk) * sizeof *mask);
    for (int64_t bh = 0; bh < B * H; bh++)
        for (int64_t i = 0; i < Nq; i++)
            for (int64_t j = 0; j < Nk; j++) {
                int64_t L = c->lens ? c->lens[bh / H] : Nk;
                mask[(bh * Nq + i) * Nk + j] = j < L && (!c->causal || j <= i + Nk - Nq);
            }
    heed_tensor *A =
        heed_mul(g, heed_matmul_t(g, fq, fk, HEED_TRANS_B), input(g, HEED_SHAPE(B, H, Nq, Nk), mask, false));
    free(mask);
    return heed_div(g, heed_matmul(g, A, v), heed_sum(g, A, 3, true));
}

/* Forward against ref_linear (rows without keys included) and, where every row sees a
 * key, forward and gradients against explicit_linear; elu + 1 features of random q, k. */
static void linear_matches_explicit(void) {
    static const int64_t lens_a[2] = {5, 3}, lens_b[2] = {0, 4};
    struct {
        lin_case c;
        int64_t Nq, Nk;
        bool empty_rows;
    } cases[] = {
        {{false, NULL, 1}, 6, 6, false},  {{false, lens_a, 1}, 4, 7, false}, {{true, NULL, 1}, 6, 6, false},
        {{true, lens_a, 1}, 6, 6, false}, {{true, NULL, 1}, 3, 7, false},    {{true, lens_a, 1}, 4, 5, false},
        {{true, NULL, 1}, 7, 3, true},    {{false, lens_b, 1}, 5, 6, true},  {{true, lens_b, 1}, 6, 6, true},
    };
    heed_rng r = heed_rng_make(21, 0);
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        const lin_case *c = &cases[ci].c;
        int64_t B = 2, H = 2, Nq = cases[ci].Nq, Nk = cases[ci].Nk, d = 3, dv = 4;
        double *q = uniform(&r, B * H * Nq * d, 1.5), *k = uniform(&r, B * H * Nk * d, 1.5),
               *v = uniform(&r, B * H * Nk * dv, 1), *cot = uniform(&r, B * H * Nq * dv, 1),
               *ref = malloc((size_t)(Nq * dv) * sizeof *ref);
        heed_graph *g = heed_graph_new(ctx);
        heed_tensor *x[2][3];
        for (int t = 0; t < 2; t++) {
            x[t][0] = input(g, HEED_SHAPE(B, H, Nq, d), q, true), x[t][1] = input(g, HEED_SHAPE(B, H, Nk, d), k, true);
            x[t][2] = input(g, HEED_SHAPE(B, H, Nk, dv), v, true);
        }
        heed_tensor *out = fn_linear(g, x[0], (void *)c);
        CHECK(out != NULL, "case %zu: %s", ci, heed_graph_error(g));
        if (!out) continue;
        /* the features, as doubles, for the reference */
        heed_tensor *fq = heed_elu_features(g, x[0][0]), *fk = heed_elu_features(g, x[0][1]);
        double worst = 0;
        for (int64_t bh = 0; bh < B * H; bh++) {
            double *fqd = malloc((size_t)(Nq * d) * sizeof *fqd), *fkd = malloc((size_t)(Nk * d) * sizeof *fkd);
            for (int64_t i = 0; i < Nq * d; i++) fqd[i] = heed_get(fq, bh * Nq * d + i);
            for (int64_t i = 0; i < Nk * d; i++) fkd[i] = heed_get(fk, bh * Nk * d + i);
            ref_linear(fqd, fkd, v + bh * Nk * dv, Nq, Nk, d, dv, c->lens ? c->lens[bh / H] : Nk, c->causal, ref);
            for (int64_t i = 0; i < Nq * dv; i++)
                worst = fmax(worst, check_err(heed_get(out, bh * Nq * dv + i), ref[i]));
            free(fqd), free(fkd);
        }
        CHECK(worst < 1e-12, "case %zu: forward vs the N x N formula: %g", ci, worst);
        if (!cases[ci].empty_rows) {
            heed_tensor *ex =
                explicit_linear(g, heed_elu_features(g, x[1][0]), heed_elu_features(g, x[1][1]), x[1][2], c);
            heed_tensor *seed = input(g, HEED_SHAPE(B, H, Nq, dv), cot, false);
            CHECK(heed_backward_with(g, out, seed) == HEED_OK && heed_backward_with(g, ex, seed) == HEED_OK, "%s",
                  heed_graph_error(g));
            for (int t = 0; t < 3; t++) {
                check_norm n = check_norm_tensors(heed_grad(g, x[0][t]), heed_grad(g, x[1][t]), 1e-3);
                CHECK(check_norm_ok(n, 1e-12), "case %zu: gradient of input %d vs the N x N formula: %g", ci, t, n.err);
            }
        } else {
            /* rows without keys: zeros, and backward gives finite gradients */
            CHECK(heed_backward_with(g, out, input(g, HEED_SHAPE(B, H, Nq, dv), cot, false)) == HEED_OK, "%s",
                  heed_graph_error(g));
            for (int t = 0; t < 3; t++) {
                heed_tensor *gr = heed_grad(g, x[0][t]);
                bool finite = gr != NULL;
                for (int64_t i = 0; gr && i < gr->numel; i++) finite &= isfinite(heed_get(gr, i));
                CHECK(finite, "case %zu: gradient of input %d is not finite", ci, t);
            }
        }
        heed_graph_free(g);
        free(q), free(k), free(v), free(cot), free(ref);
    }
}

static void linear_gradients(void) {
    static const int64_t lens[2] = {5, 0}, lens2[2] = {2, 6};
    lin_case cases[] = {{false, NULL, 1}, {false, lens, 1}, {true, NULL, 1}, {true, lens2, 1}};
    int64_t shapes[][2] = {{5, 6}, {4, 6}, {6, 6}, {6, 6}};
    for (int i = 0; i < 4; i++) {
        heed_gradcheck_input in[3] = {{HEED_SHAPE(2, 2, shapes[i][0], 3)},
                                      {HEED_SHAPE(2, 2, shapes[i][1], 3)},
                                      {HEED_SHAPE(2, 2, shapes[i][1], 4)}};
        CHECK_GRAD(ctx, fn_linear, &cases[i], 3, in, NULL);
        check_f32_vs_f64_grad(ctx, fn_linear, &cases[i], 3, in, 2e-5, cases[i].causal ? "linear causal" : "linear");
    }
    /* causal with Nq > Nk (the first rows see nothing) and Nq < Nk */
    lin_case causal = {true, lens, 1};
    heed_gradcheck_input wide[3] = {{HEED_SHAPE(2, 1, 7, 3)}, {HEED_SHAPE(2, 1, 5, 3)}, {HEED_SHAPE(2, 1, 5, 2)}};
    CHECK_GRAD(ctx, fn_linear, &causal, 3, wide, NULL);
    heed_gradcheck_input tall[3] = {{HEED_SHAPE(2, 1, 3, 3)}, {HEED_SHAPE(2, 1, 6, 3)}, {HEED_SHAPE(2, 1, 6, 2)}};
    CHECK_GRAD(ctx, fn_linear, &causal, 3, tall, NULL);
    /* FAVOR+ features, gradients into q, k, v and the projection */
    double w[6 * 3];
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *wt = heed_zeros(g, HEED_F64, HEED_SHAPE(6, 3));
    CHECK(heed_favor_draw(ctx, wt, 0) == HEED_OK, "%s", heed_ctx_error(ctx));
    for (int i = 0; i < 18; i++) w[i] = heed_get(wt, i);
    heed_graph_free(g);
    for (int cz = 0; cz < 2; cz++) {
        lin_case fc = {cz == 1, lens2, 2};
        heed_gradcheck_input in[4] = {{HEED_SHAPE(2, 2, 6, 3)},
                                      {HEED_SHAPE(2, 2, 6, 3)},
                                      {HEED_SHAPE(2, 2, 6, 4)},
                                      {HEED_SHAPE(6, 3), w}};
        CHECK_GRAD(ctx, fn_linear, &fc, 4, in, NULL);
        check_f32_vs_f64_grad(ctx, fn_linear, &fc, 4, in, 2e-5, cz ? "favor causal" : "favor");
    }
}

/* The features alone: elu + 1, and FAVOR+ for both stabilisers (the max term is exact). */
static heed_tensor *fn_features(heed_graph *g, heed_tensor **x, void *u) {
    int kind = *(int *)u;
    return kind < 0 ? heed_elu_features(g, x[0]) : heed_favor_features(g, x[0], x[1], (heed_favor_kind)kind);
}

static void feature_maps(void) {
    int kinds[3] = {-1, HEED_FAVOR_QUERIES, HEED_FAVOR_KEYS};
    for (int i = 0; i < 3; i++) {
        heed_gradcheck_input in[2] = {{HEED_SHAPE(2, 3, 4, 5)}, {HEED_SHAPE(7, 5)}};
        CHECK_GRAD(ctx, fn_features, &kinds[i], i ? 2 : 1, in, NULL);
        check_f32_vs_f64_grad(ctx, fn_features, &kinds[i], i ? 2 : 1, in, 1e-5, "features");
    }
    /* values: elu + 1, and FAVOR+ against its formula with the two stabilisers */
    heed_graph *g = heed_graph_new(ctx);
    double x[2 * 3 * 2] = {-1.5, 0.25, 2, -0.1, 0, 3, 0.7, -2, 1.1, 0.4, -0.3, 0.9},
                     w[4 * 2] = {1, -0.5, 0.3, 2, -1, 0.2, 0.8, 0.8};
    heed_tensor *X = input(g, HEED_SHAPE(2, 3, 2), x, false), *W = input(g, HEED_SHAPE(4, 2), w, false);
    heed_tensor *e = heed_elu_features(g, X), *fq = heed_favor_features(g, X, W, HEED_FAVOR_QUERIES),
                *fk = heed_favor_features(g, X, W, HEED_FAVOR_KEYS);
    CHECK(e && fq && fk, "%s", heed_graph_error(g));
    for (int i = 0; i < 12 && e; i++) CHECK_CLOSE(heed_get(e, i), x[i] > 0 ? x[i] + 1 : exp(x[i]), 1e-15);
    double t[6][4], s = pow(2.0, -0.25);
    for (int i = 0; i < 6; i++)
        for (int r = 0; r < 4; r++)
            t[i][r] = s * (w[r * 2] * x[i * 2] + w[r * 2 + 1] * x[i * 2 + 1]) -
                      s * s * (x[i * 2] * x[i * 2] + x[i * 2 + 1] * x[i * 2 + 1]) / 2;
    for (int blk = 0; blk < 2 && fk; blk++) {
        double mk = -INFINITY;
        for (int i = 3 * blk; i < 3 * blk + 3; i++)
            for (int r = 0; r < 4; r++) mk = fmax(mk, t[i][r]);
        for (int i = 3 * blk; i < 3 * blk + 3; i++) {
            double mq = fmax(fmax(t[i][0], t[i][1]), fmax(t[i][2], t[i][3]));
            for (int r = 0; r < 4; r++) {
                CHECK_CLOSE(heed_get(fq, i * 4 + r), exp(t[i][r] - mq) / 2, 1e-14);
                CHECK_CLOSE(heed_get(fk, i * 4 + r), exp(t[i][r] - mk) / 2, 1e-14);
            }
        }
    }
    heed_graph_free(g);
}

/* Orthogonal blocks, Gaussian row lengths, reproducible draws, redraws that differ. */
static void favor_projection(void) {
    heed_graph *g = heed_graph_new(ctx);
    int64_t m = 11, d = 4;
    heed_tensor *a = heed_zeros(g, HEED_F64, HEED_SHAPE(m, d)), *b = heed_zeros(g, HEED_F64, HEED_SHAPE(m, d)),
                *c = heed_zeros(g, HEED_F64, HEED_SHAPE(m, d)), *f = heed_zeros(g, HEED_F32, HEED_SHAPE(m, d));
    CHECK(heed_favor_draw(ctx, a, 5) == HEED_OK && heed_favor_draw(ctx, b, 5) == HEED_OK &&
              heed_favor_draw(ctx, c, 6) == HEED_OK && heed_favor_draw(ctx, f, 5) == HEED_OK,
          "%s", heed_ctx_error(ctx));
    double same = 0, diff = 0, f32 = 0, worst_dot = 0, norm_lo = INFINITY, norm_hi = 0;
    for (int64_t i = 0; i < m * d; i++) {
        same = fmax(same, check_err(heed_get(a, i), heed_get(b, i)));
        diff = fmax(diff, check_err(heed_get(a, i), heed_get(c, i)));
        f32 = fmax(f32, check_rel_err(heed_get(f, i), heed_get(a, i), 1 + fabs(heed_get(a, i))));
    }
    CHECK(same == 0, "the same draw must give the same matrix: %g", same);
    CHECK(diff > 0.1, "another draw must differ: %g", diff);
    CHECK(f32 < 1e-6, "the f32 draw is the f64 one rounded: %g", f32);
    for (int64_t i = 0; i < m; i++) {
        double ni = 0;
        for (int64_t e = 0; e < d; e++) ni += heed_get(a, i * d + e) * heed_get(a, i * d + e);
        norm_lo = fmin(norm_lo, sqrt(ni)), norm_hi = fmax(norm_hi, sqrt(ni));
        for (int64_t j = i + 1; j < m && j / d == i / d; j++) {
            double dot = 0;
            for (int64_t e = 0; e < d; e++) dot += heed_get(a, i * d + e) * heed_get(a, j * d + e);
            worst_dot = fmax(worst_dot, check_err(dot, 0));
        }
    }
    CHECK(worst_dot < 1e-12, "rows of a block must be orthogonal: %g", worst_dot);
    CHECK(norm_hi - norm_lo > 0.1 && norm_lo > 0, "row lengths are chi-distributed, not all equal: %g .. %g", norm_lo,
          norm_hi);
    /* bad projections */
    CHECK(heed_favor_draw(ctx, heed_zeros(g, HEED_F64, HEED_SHAPE(0, 4)), 0) == HEED_ERR_SHAPE &&
              strstr(heed_ctx_error(ctx), "heed_favor_draw: w[0,4] must be [m,d] with m >= 1 features"),
          "zero features: %s", heed_ctx_error(ctx));
    CHECK(heed_favor_draw(ctx, heed_zeros(g, HEED_F64, HEED_SHAPE(4)), 0) == HEED_ERR_SHAPE, "1-D");
    CHECK(heed_favor_draw(ctx, NULL, 0) == HEED_ERR_ARG && strstr(heed_ctx_error(ctx), "w is NULL"), "NULL w");
    CHECK(heed_favor_draw(NULL, a, 0) == HEED_ERR_ARG, "NULL ctx");
    heed_graph_free(g);
}

/* Performer's estimate of softmax attention: relative Frobenius error against
 * heed_attention (scale 1/sqrt(d)) for m = 16, 64, 256 features, averaged over 8 draws.
 * It must fall with m (the estimator's variance goes as 1/m). */
static void favor_approximates_softmax(void) {
    int64_t B = 1, H = 2, N = 64, d = 16, dv = 8, ms[3] = {16, 64, 256};
    heed_rng r = heed_rng_make(31, 0);
    double *q = uniform(&r, B * H * N * d, 0.8), *k = uniform(&r, B * H * N * d, 0.8),
           *v = uniform(&r, B * H * N * dv, 1);
    double mean[2][3] = {{0}};
    heed_graph *g = heed_graph_new(ctx);
    for (int causal = 0; causal < 2; causal++)
        for (int mi = 0; mi < 3; mi++)
            for (uint64_t draw = 0; draw < 8; draw++) {
                heed_graph_reset(g);
                heed_tensor *Q = input(g, HEED_SHAPE(B, H, N, d), q, false),
                            *K = input(g, HEED_SHAPE(B, H, N, d), k, false),
                            *V = input(g, HEED_SHAPE(B, H, N, dv), v, false),
                            *W = heed_zeros(g, HEED_F64, HEED_SHAPE(ms[mi], d));
                heed_favor_draw(ctx, W, draw);
                heed_tensor *exact = heed_attention(g, Q, K, V, &(heed_attention_opts){.causal = causal}, NULL);
                heed_tensor *approx = heed_linear_attention(g, heed_favor_features(g, Q, W, HEED_FAVOR_QUERIES),
                                                            heed_favor_features(g, K, W, HEED_FAVOR_KEYS), V,
                                                            &(heed_linear_attention_opts){.causal = causal});
                CHECK(exact && approx, "%s", heed_graph_error(g));
                if (!approx) return;
                double num = 0, den = 0;
                for (int64_t i = 0; i < exact->numel; i++) {
                    double e = check_err(heed_get(approx, i), heed_get(exact, i));
                    num += e * e, den += heed_get(exact, i) * heed_get(exact, i);
                }
                mean[causal][mi] += sqrt(num / den) / 8;
            }
    for (int causal = 0; causal < 2; causal++) {
        printf(
            "  FAVOR+ relative error vs softmax attention (%s, N=%lld, d=%lld, 8 draws): m=16 %.4f  m=64 %.4f  m=256 %.4f\n",
            causal ? "causal" : "non-causal", (long long)N, (long long)d, mean[causal][0], mean[causal][1],
            mean[causal][2]);
        CHECK(mean[causal][0] > mean[causal][1] && mean[causal][1] > mean[causal][2],
              "the error must fall with the number of features: %g %g %g", mean[causal][0], mean[causal][1],
              mean[causal][2]);
        CHECK(mean[causal][2] < 0.2, "256 features: error %g", mean[causal][2]);
    }
    heed_graph_free(g);
    free(q), free(k), free(v);
}

/* The decoding step, called for t = 0..N-1, gives row t of the causal op. */
static void linear_step(void) {
    int64_t B = 2, H = 3, N = 7, m = 4, dv = 5;
    heed_rng r = heed_rng_make(41, 0);
    double *q = uniform(&r, B * H * N * m, 1), *k = uniform(&r, B * H * N * m, 1), *v = uniform(&r, B * H * N * dv, 1);
    double *S = malloc((size_t)(B * H * m * dv) * sizeof *S), *z = malloc((size_t)(B * H * m) * sizeof *z);
    double *row = malloc((size_t)(B * H * m) * sizeof *row), *row2 = malloc((size_t)(B * H * m) * sizeof *row2),
           *vrow = malloc((size_t)(B * H * dv) * sizeof *vrow);
    for (int dt = 0; dt < 2; dt++) {
        heed_dtype type = dt ? HEED_F32 : HEED_F64;
        heed_graph *g = heed_graph_new(ctx);
        heed_tensor *fq = heed_elu_features(g, heed_input_f64(g, type, HEED_SHAPE(B, H, N, m), q)),
                    *fk = heed_elu_features(g, heed_input_f64(g, type, HEED_SHAPE(B, H, N, m), k));
        heed_tensor *full = heed_linear_attention(g, fq, fk, heed_input_f64(g, type, HEED_SHAPE(B, H, N, dv), v),
                                                  &(heed_linear_attention_opts){.causal = true});
        heed_linear_attn_state st;
        CHECK(heed_linear_attn_state_init(ctx, &st, B, H, m, dv, S, z) == HEED_OK, "%s", heed_ctx_error(ctx));
        double worst = 0;
        for (int64_t t = 0; t < N && full; t++) {
            for (int64_t bh = 0; bh < B * H; bh++) {
                for (int64_t e = 0; e < m; e++)
                    row[bh * m + e] = heed_get(fq, (bh * N + t) * m + e),
                                 row2[bh * m + e] = heed_get(fk, (bh * N + t) * m + e);
                for (int64_t c = 0; c < dv; c++) vrow[bh * dv + c] = v[(bh * N + t) * dv + c];
            }
            heed_tensor *o = heed_linear_attention_step(g, &st, heed_input_f64(g, type, HEED_SHAPE(B, H, 1, m), row),
                                                        heed_input_f64(g, type, HEED_SHAPE(B, H, 1, m), row2),
                                                        heed_input_f64(g, type, HEED_SHAPE(B, H, 1, dv), vrow));
            CHECK(o && o->dtype == type, "%s", heed_graph_error(g));
            for (int64_t bh = 0; o && bh < B * H; bh++)
                for (int64_t c = 0; c < dv; c++)
                    worst = fmax(worst, check_err(heed_get(o, bh * dv + c), heed_get(full, (bh * N + t) * dv + c)));
        }
        CHECK(worst < (dt ? 1e-5 : 1e-13), "step vs causal op (%s): %g", dt ? "f32" : "f64", worst);
        CHECK(st.steps == N, "steps %lld", (long long)st.steps);
        /* a recorded step is an error; under no-grad it runs */
        heed_tensor *a = heed_requires_grad(heed_input_f64(g, type, HEED_SHAPE(B, H, 1, m), row)),
                    *b = heed_input_f64(g, type, HEED_SHAPE(B, H, 1, m), row2),
                    *c = heed_input_f64(g, type, HEED_SHAPE(B, H, 1, dv), vrow);
        CHECK(heed_linear_attention_step(g, &st, a, b, c) == NULL, "recording step");
        CHECK(st.steps == N, "a failed step leaves the state alone");
        CHECK_ERR(g, HEED_ERR_STATE, "heed_linear_attention_step: a decoding step takes no gradient");
        a = heed_requires_grad(heed_input_f64(g, type, HEED_SHAPE(B, H, 1, m), row));
        b = heed_input_f64(g, type, HEED_SHAPE(B, H, 1, m), row2),
        c = heed_input_f64(g, type, HEED_SHAPE(B, H, 1, dv), vrow);
        heed_no_grad_begin(g);
        CHECK(heed_linear_attention_step(g, &st, a, b, c) != NULL, "%s", heed_graph_error(g));
        heed_no_grad_end(g);
        CHECK(heed_linear_attention_step(g, &st, b, b, heed_input_f64(g, type, HEED_SHAPE(B, H, 1, dv + 1), NULL)) ==
                  NULL,
              "dv");
        CHECK_ERR(g, HEED_ERR_SHAPE,
                  "heed_linear_attention_step: v[2,3,1,6] must be [B,H,1,dv] of the state = [2,3,1,5]");
        CHECK(heed_linear_attention_step(g, NULL, NULL, NULL, NULL) == NULL, "NULL state");
        CHECK_ERR(g, HEED_ERR_ARG, "state is NULL");
        heed_graph_free(g);
    }
    heed_linear_attn_state st;
    CHECK_CTX_FAIL(ctx, heed_linear_attn_state_init(ctx, &st, 2, 3, 0, 5, S, z), HEED_ERR_ARG,
                   "heed_linear_attn_state_init: B = 2, H = 3, m = 0, dv = 5 (each must be >= 1)");
    CHECK_CTX_FAIL(ctx, heed_linear_attn_state_init(ctx, &st, -1, 3, 4, 5, S, z), HEED_ERR_ARG, "B = -1");
    CHECK_CTX_FAIL(ctx, heed_linear_attn_state_init(ctx, &st, INT64_MAX / 4, 3, 4, 5, S, z), HEED_ERR_ARG,
                   "heed_linear_attn_state_init: B*H*m*dv = 2305843009213693951*3*4*5 doubles overflow");
    CHECK_CTX_FAIL(ctx, heed_linear_attn_state_init(ctx, &st, 1 << 20, 1 << 20, 1 << 10, 1 << 10, S, z), HEED_ERR_ARG,
                   "doubles overflow"); /* 2^60 doubles: the product fits int64, its bytes do not */
    CHECK_CTX_FAIL(ctx, heed_linear_attn_state_init(ctx, &st, 2, 3, 4, 5, NULL, z), HEED_ERR_ARG,
                   "heed_linear_attn_state_init: the buffer S is NULL");
    CHECK_CTX_FAIL(ctx, heed_linear_attn_state_init(ctx, &st, 2, 3, 4, 5, S, NULL), HEED_ERR_ARG,
                   "heed_linear_attn_state_init: the buffer z is NULL");
    CHECK_CTX_FAIL(ctx, heed_linear_attn_state_init(ctx, NULL, 2, 3, 4, 5, S, z), HEED_ERR_ARG,
                   "heed_linear_attn_state_init: the state is NULL");
    CHECK(heed_linear_attn_state_init(NULL, NULL, 2, 3, 4, 5, S, z) == HEED_ERR_ARG, "NULL ctx: the code only");
    free(q), free(k), free(v), free(S), free(z), free(row), free(row2), free(vrow);
}

#define Z32(...) heed_zeros(g, HEED_F32, HEED_SHAPE(__VA_ARGS__))
#define Z64(...) heed_zeros(g, HEED_F64, HEED_SHAPE(__VA_ARGS__))

static void linear_bad_inputs(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *q = heed_full(g, HEED_F32, HEED_SHAPE(2, 3, 5, 4), 1),
                *k = heed_full(g, HEED_F32, HEED_SHAPE(2, 3, 6, 4), 1);
    CHECK(heed_linear_attention(g, q, k, Z32(2, 3, 6, 2), NULL) != NULL, "%s", heed_graph_error(g));
    CHECK(heed_linear_attention(g, q, k, Z32(2, 3, 6, 2),
                                &(heed_linear_attention_opts){.key_lengths = (int64_t[]){6, 7}}) == NULL,
          "length");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_linear_attention: key_lengths[1] = 7 is out of range [0, 6]");
    CHECK(heed_linear_attention(g, Z32(2, 3, 5, 0), Z32(2, 3, 6, 0), Z32(2, 3, 6, 2), NULL) == NULL, "zero features");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_linear_attention: phi_q[2,3,5,0] must be [B,H,Nq,m] with m >= 1 features");
    CHECK(heed_linear_attention(g, Z32(2, 3, 5, 4), Z32(2, 3, 6, 5), Z32(2, 3, 6, 2), NULL) == NULL, "m differs");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_linear_attention: phi_k[2,3,6,5] must be [B,H,Nk,m] = [2,3,?,4]");
    CHECK(heed_linear_attention(g, Z32(2, 3, 5, 4), Z32(2, 4, 6, 4), Z32(2, 3, 6, 2), NULL) == NULL, "H differs");
    CHECK_ERR(g, HEED_ERR_SHAPE, "phi_k[2,4,6,4] must be [B,H,Nk,m] = [2,3,?,4]");
    CHECK(heed_linear_attention(g, Z32(2, 3, 5, 4), Z32(2, 3, 6, 4), Z32(2, 3, 5, 2), NULL) == NULL, "Nk differs");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_linear_attention: v[2,3,5,2] must be [B,H,Nk,dv] = [2,3,6,?]");
    CHECK(heed_linear_attention(g, Z32(2, 3, 5, 4), Z32(2, 3, 6, 4), Z32(2, 3, 6, 0), NULL) == NULL, "dv 0");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_linear_attention: v[2,3,6,0] must have dv >= 1");
    CHECK(heed_linear_attention(g, Z32(2, 3, 5, 4), Z64(2, 3, 6, 4), Z32(2, 3, 6, 2), NULL) == NULL, "dtype");
    CHECK_ERR(g, HEED_ERR_DTYPE, "phi_k");
    CHECK(heed_linear_attention(g, Z32(3, 5, 4), Z32(3, 5, 4), Z32(3, 5, 4), NULL) == NULL, "3-D");
    CHECK_ERR(g, HEED_ERR_SHAPE, "phi_q[3,5,4] must be [B,H,Nq,m]");
    CHECK(heed_linear_attention(g, NULL, Z32(2, 3, 6, 4), Z32(2, 3, 6, 2), NULL) == NULL, "NULL");
    CHECK_ERR(g, HEED_ERR_ARG, "phi_q");
    /* features */
    CHECK(heed_favor_features(g, Z32(2, 5, 4), Z32(0, 4), HEED_FAVOR_KEYS) == NULL, "zero features");
    CHECK_ERR(g, HEED_ERR_SHAPE,
              "heed_favor_features: w[0,4] must be [m,d] = [m,4] with m >= 1 random features (x[2,5,4])");
    CHECK(heed_favor_features(g, Z32(2, 5, 4), Z32(8, 3), HEED_FAVOR_KEYS) == NULL, "d differs");
    CHECK_ERR(g, HEED_ERR_SHAPE, "w[8,3] must be [m,d] = [m,4]");
    CHECK(heed_favor_features(g, Z32(2, 5, 4), Z32(8, 4), (heed_favor_kind)2) == NULL, "kind");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_favor_features: kind = 2 (HEED_FAVOR_QUERIES or HEED_FAVOR_KEYS)");
    CHECK(heed_favor_features(g, Z32(4), Z32(8, 4), HEED_FAVOR_QUERIES) == NULL, "1-D x");
    CHECK_ERR(g, HEED_ERR_SHAPE, "x[4] must be [...,N,d]");
    CHECK(heed_favor_features(g, Z32(2, 5, 4), Z64(8, 4), HEED_FAVOR_QUERIES) == NULL, "dtype");
    CHECK_ERR(g, HEED_ERR_DTYPE, "w");
    CHECK(heed_elu_features(g, NULL) == NULL, "NULL");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_elu_features: x");
    /* empty sizes work: no keys, no queries, no key rows for the stabiliser */
    heed_tensor *e = heed_linear_attention(g, Z64(1, 2, 0, 3), Z64(1, 2, 0, 3), Z64(1, 2, 0, 2),
                                           &(heed_linear_attention_opts){.causal = true});
    heed_tensor *f = heed_linear_attention(g, Z64(1, 2, 3, 3), Z64(1, 2, 0, 3), Z64(1, 2, 0, 2), NULL);
    heed_tensor *h = heed_favor_features(g, Z64(2, 0, 3), Z64(5, 3), HEED_FAVOR_KEYS);
    CHECK(e && e->numel == 0 && f && heed_get(f, 0) == 0 && h && h->numel == 0, "%s", heed_graph_error(g));
    heed_graph_free(g);
}

/* ================================================================ Luong local attention */

/* The masked + Gaussian-weighted formula for one row: the keys j < L with c - D <= j <= c + D,
 * softmax of their scores times exp(-(j - c)^2 / (2 sigma^2)) (1 when sigma = 0). */
static void ref_local(const double *s, const double *V, int64_t N, int64_t dv, int64_t L, double c, int64_t D,
                      double sigma, double *w, double *out) {
    double m = -INFINITY, sum = 0;
    for (int64_t j = 0; j < N; j++) w[j] = 0;
    for (int64_t e = 0; e < dv; e++) out[e] = 0;
    for (int64_t j = 0; j < L; j++)
        if (j >= c - D && j <= c + D) m = fmax(m, s[j]);
    if (m == -INFINITY) return;
    for (int64_t j = 0; j < L; j++)
        if (j >= c - D && j <= c + D) sum += exp(s[j] - m);
    for (int64_t j = 0; j < L; j++)
        if (j >= c - D && j <= c + D) {
            w[j] = exp(s[j] - m) / sum * (sigma > 0 ? exp(-(j - c) * (j - c) / (2 * sigma * sigma)) : 1);
            for (int64_t e = 0; e < dv; e++) out[e] += w[j] * V[j * dv + e];
        }
}

/* Worst error of a [B,N] weights and [B,dv] context against ref_local per row. */
static double local_err(heed_tensor *w, heed_tensor *c, const double *s, const double *V, int64_t B, int64_t N,
                        int64_t dv, const int64_t *lens, const double *centre, int64_t D, double sigma) {
    double worst = 0, rw[32], rc[8];
    for (int64_t b = 0; b < B; b++) {
        ref_local(s + b * N, V + b * N * dv, N, dv, lens[b], centre[b], D, sigma, rw, rc);
        for (int64_t j = 0; j < N; j++) worst = fmax(worst, check_err(heed_get(w, b * N + j), rw[j]));
        for (int64_t e = 0; e < dv; e++) worst = fmax(worst, check_err(heed_get(c, b * dv + e), rc[e]));
    }
    return worst;
}

static void local_matches_explicit(void) {
    enum { B = 4, N = 12, dv = 3, dq = 5 };
    static const int64_t lens[B] = {12, 5, 1, 0};
    heed_rng r = heed_rng_make(61, 0);
    double *s = uniform(&r, B * N, 2), *V = uniform(&r, B * N * dv, 1);
    heed_graph *g = heed_graph_new(ctx);
    /* the core op: clipped at the start and the end, non-integer centres, past either end */
    static const double centres[][B] = {{0, 0, 0, 0},
                                        {11, 4, 0, 3},
                                        {5.3, 2.7, 0.4, 1},
                                        {14.5, 8, 3.2, 0},
                                        {-3.5, -2.5, -2.1, 0}};
    static const int64_t Ds[3] = {1, 2, 20};
    for (size_t ci = 0; ci < sizeof centres / sizeof *centres; ci++)
        for (int di = 0; di < 3; di++)
            for (int gs = 0; gs < 2; gs++) {
                heed_graph_reset(g);
                double sigma = gs ? (double)Ds[di] / 2 : 0;
                heed_tensor *w,
                    *c = heed_local_attend(g, input(g, HEED_SHAPE(B, N), s, false),
                                           input(g, HEED_SHAPE(B, N, dv), V, false),
                                           input(g, HEED_SHAPE(B), centres[ci], false), Ds[di], sigma, lens, &w);
                CHECK(c && w, "%s", heed_graph_error(g));
                if (!c) continue;
                double err = local_err(w, c, s, V, B, N, dv, lens, centres[ci], Ds[di], sigma);
                CHECK(err < 1e-14, "centres %zu, D = %lld, sigma %g: %g", ci, (long long)Ds[di], sigma, err);
            }
    /* the windows themselves: [0,2] at the start, [9,11] at the end, [4,7] around 5.3 */
    int64_t win[3][2] = {{0, 3}, {9, 12}, {4, 8}};
    double cs[3] = {0, 11, 5.3};
    heed_tensor *w = NULL;
    for (int t = 0; t < 3; t++) {
        heed_graph_reset(g);
        heed_local_attend(g, input(g, HEED_SHAPE(B, N), s, false), input(g, HEED_SHAPE(B, N, dv), V, false),
                          input(g, HEED_SHAPE(B), (double[]){cs[t], 0, 0, 0}, false), 2, 1, lens, &w);
        CHECK(w != NULL, "%s", heed_graph_error(g));
        for (int64_t j = 0; j < N && w; j++)
            CHECK((heed_get(w, j) > 0) == (j >= win[t][0] && j < win[t][1]), "centre %g: weight %lld = %g", cs[t],
                  (long long)j, heed_get(w, j));
    }
    /* local-m through the wrapper (dot scores): steps at, inside and past the ends */
    double *q = uniform(&r, B * dq, 1), *K = uniform(&r, B * N * dq, 1), *dots = malloc(B * N * sizeof *dots);
    for (int64_t bj = 0; bj < B * N; bj++) {
        dots[bj] = 0;
        for (int64_t e = 0; e < dq; e++) dots[bj] += q[(bj / N) * dq + e] * K[bj * dq + e];
    }
    static const int64_t steps[5] = {0, 1, 6, 11, 13};
    for (int t = 0; t < 5; t++)
        for (int gm = 0; gm < 2; gm++) {
            heed_graph_reset(g);
            heed_local_opts o = {.kind = HEED_LOCAL_M, .D = 2, .step = steps[t], .gaussian_m = gm};
            heed_tensor *c =
                heed_luong_local_attention(g, HEED_LUONG_DOT, input(g, HEED_SHAPE(B, dq), q, false),
                                           input(g, HEED_SHAPE(B, N, dq), K, false),
                                           input(g, HEED_SHAPE(B, N, dv), V, false), NULL, NULL, &o, lens, &w);
            CHECK(c != NULL, "%s", heed_graph_error(g));
            double st[B] = {(double)steps[t], (double)steps[t], (double)steps[t], (double)steps[t]};
            double err = c ? local_err(w, c, dots, V, B, N, dv, lens, st, 2, gm ? 1.0 : 0) : INFINITY;
            CHECK(err < 1e-14, "local-m step %lld gaussian %d: %g", (long long)steps[t], gm, err);
        }
    /* the default half-width is 10 */
    heed_graph_reset(g);
    heed_luong_local_attention(g, HEED_LUONG_DOT, input(g, HEED_SHAPE(B, dq), q, false),
                               input(g, HEED_SHAPE(B, N, dq), K, false), input(g, HEED_SHAPE(B, N, dv), V, false), NULL,
                               NULL, NULL, lens, &w);
    CHECK(w && heed_get(w, 10) > 0 && heed_get(w, 11) == 0, "D = 10 by default");
    /* local-p: the centre (S_b - 1) sigmoid(v_p . tanh(W_p q)), then Gaussian weights */
    enum { dp = 3 };
    double *Wp = uniform(&r, dp * dq, 1.5), *vp = uniform(&r, dp, 2), centre[B];
    for (int64_t b = 0; b < B; b++) {
        double z = 0;
        for (int64_t a = 0; a < dp; a++) {
            double pre = 0;
            for (int64_t e = 0; e < dq; e++) pre += Wp[a * dq + e] * q[b * dq + e];
            z += vp[a] * tanh(pre);
        }
        centre[b] = (lens[b] > 0 ? lens[b] - 1 : 0) / (1 + exp(-z));
    }
    heed_graph_reset(g);
    heed_tensor *Q = input(g, HEED_SHAPE(B, dq), q, false), *tWp = input(g, HEED_SHAPE(dp, dq), Wp, false),
                *tvp = input(g, HEED_SHAPE(dp), vp, false);
    heed_tensor *pos = heed_local_position(g, Q, tWp, tvp, N, lens);
    heed_local_opts o = {.kind = HEED_LOCAL_P, .D = 3, .w_p = tWp, .v_p = tvp};
    heed_tensor *c = heed_luong_local_attention(g, HEED_LUONG_DOT, Q, input(g, HEED_SHAPE(B, N, dq), K, false),
                                                input(g, HEED_SHAPE(B, N, dv), V, false), NULL, NULL, &o, lens, &w);
    CHECK(pos && c, "%s", heed_graph_error(g));
    for (int64_t b = 0; b < B && pos; b++) CHECK_CLOSE(heed_get(pos, b), centre[b], 1e-14);
    double err = c ? local_err(w, c, dots, V, B, N, dv, lens, centre, 3, 1.5) : INFINITY;
    CHECK(err < 1e-14, "local-p: %g", err);
    heed_graph_free(g);
    free(s), free(V), free(q), free(K), free(dots), free(Wp), free(vp);
}

typedef struct {
    int mode; /* 0 core (x: scores, values, centre), 1 local-p, 2 local-m with the Gaussian */
    heed_luong_kind kind;
    double sigma;
} local_case;

static const int64_t local_lens[3] = {7, 4, 1};

static heed_tensor *fn_local(heed_graph *g, heed_tensor **x, void *u) {
    const local_case *c = u;
    if (c->mode == 0) return heed_local_attend(g, x[0], x[1], x[2], 2, c->sigma, local_lens, NULL);
    /* x: query, keys, values, w_p, v_p, then w (general) or w and v (concat) */
    heed_local_opts o = {.kind = c->mode == 1 ? HEED_LOCAL_P : HEED_LOCAL_M,
                         .D = 2,
                         .step = 3,
                         .gaussian_m = true,
                         .w_p = c->mode == 1 ? x[3] : NULL,
                         .v_p = c->mode == 1 ? x[4] : NULL};
    heed_tensor *w = NULL,
                *ctxv = heed_luong_local_attention(g, c->kind, x[0], x[1], x[2], c->kind ? x[5] : NULL,
                                                   c->kind == HEED_LUONG_CONCAT ? x[6] : NULL, &o, local_lens, &w);
    return ctxv ? heed_add(g, heed_sum(g, ctxv, 1, true), w) : NULL; /* both outputs */
}

static void local_gradients(void) {
    /* the core op, centres between the window edges; sigma 0 must give the centre no gradient */
    static const double centres[3] = {0.6, 3.6, 0.2}; /* windows 0..2, 2..3, 0..0: clipped at both ends */
    for (int gs = 0; gs < 2; gs++) {
        local_case c = {0, 0, gs ? 1.0 : 0};
        heed_gradcheck_input in[3] = {{HEED_SHAPE(3, 7)}, {HEED_SHAPE(3, 7, 2)}, {HEED_SHAPE(3), centres}};
        CHECK_GRAD(ctx, fn_local, &c, 3, in, NULL);
        check_f32_vs_f64_grad(ctx, fn_local, &c, 3, in, 1e-5, "local core");
    }
    /* local-p with dot, general and concat scores: the gradient reaches w_p and v_p through p_t */
    heed_gradcheck_input in[7] = {{HEED_SHAPE(3, 4)}, {HEED_SHAPE(3, 7, 4)}, {HEED_SHAPE(3, 7, 2)}, {HEED_SHAPE(5, 4)},
                                  {HEED_SHAPE(5)},    {HEED_SHAPE(4, 4)},    {HEED_SHAPE(3)}};
    local_case lp = {1, HEED_LUONG_DOT, 0};
    CHECK_GRAD(ctx, fn_local, &lp, 5, in, NULL);
    lp.kind = HEED_LUONG_GENERAL;
    CHECK_GRAD(ctx, fn_local, &lp, 6, in, NULL);
    check_f32_vs_f64_grad(ctx, fn_local, &lp, 6, in, 1e-5, "local-p general");
    lp.kind = HEED_LUONG_CONCAT;
    in[5].shape = HEED_SHAPE(3, 8);
    CHECK_GRAD(ctx, fn_local, &lp, 7, in, NULL);
    local_case lm = {2, HEED_LUONG_DOT, 0};
    CHECK_GRAD(ctx, fn_local, &lm, 3, in, NULL);
    /* the centre's gradient is not zero (so the checks above exercised it) */
    heed_graph *g = heed_graph_new(ctx);
    heed_rng r = heed_rng_make(62, 0);
    double *q = uniform(&r, 12, 1), *k = uniform(&r, 84, 1), *v = uniform(&r, 42, 1), *wp = uniform(&r, 20, 1),
           *vp = uniform(&r, 5, 1);
    heed_tensor *x[5] = {input(g, HEED_SHAPE(3, 4), q, false), input(g, HEED_SHAPE(3, 7, 4), k, false),
                         input(g, HEED_SHAPE(3, 7, 2), v, false), input(g, HEED_SHAPE(5, 4), wp, true),
                         input(g, HEED_SHAPE(5), vp, true)};
    lp.kind = HEED_LUONG_DOT;
    heed_tensor *out = fn_local(g, x, &lp);
    CHECK(out && heed_backward(g, heed_sum_all(g, out)) == HEED_OK, "%s", heed_graph_error(g));
    double gnorm = 0;
    for (int64_t i = 0; out && i < 5; i++) gnorm += fabs(heed_get(heed_grad(g, x[4]), i));
    CHECK(gnorm > 1e-3, "local-p: d/dv_p = %g", gnorm);
    heed_graph_free(g);
    free(q), free(k), free(v), free(wp), free(vp);
}

static void local_bad_inputs(void) {
    heed_graph *g = heed_graph_new(ctx);
    CHECK(heed_local_attend(g, Z32(4, 6), Z32(4, 6, 2), Z32(4), 0, 0, NULL, NULL) == NULL, "D 0");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_local_attend: D = 0 (the window p-D .. p+D needs D >= 1)");
    CHECK(heed_local_attend(g, Z32(4, 6), Z32(4, 6, 2), Z32(4), 2, -1, NULL, NULL) == NULL, "sigma");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_local_attend: sigma = -1 (must be finite and >= 0; 0 = no Gaussian)");
    CHECK(heed_local_attend(g, Z32(4, 6), Z32(4, 6, 2), Z32(4), 2, NAN, NULL, NULL) == NULL, "sigma NaN");
    CHECK_ERR(g, HEED_ERR_ARG, "sigma = nan");
    CHECK(heed_local_attend(g, Z32(4, 6), Z32(4, 6, 2), Z32(5), 2, 1, NULL, NULL) == NULL, "centre shape");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_local_attend: centre[5] must be [B] = [4]");
    CHECK(heed_local_attend(g, Z32(4, 6), Z32(4, 5, 2), Z32(4), 2, 1, NULL, NULL) == NULL, "values shape");
    CHECK_ERR(g, HEED_ERR_SHAPE, "values[4,5,2] must be [B,N,dv] = [4,6,?]");
    CHECK(heed_local_attend(g, Z32(4, 6, 1), Z32(4, 6, 2), Z32(4), 2, 1, NULL, NULL) == NULL, "scores 3-D");
    CHECK_ERR(g, HEED_ERR_SHAPE, "scores[4,6,1] must be [B,N]");
    CHECK(heed_local_attend(g, Z32(4, 6), Z32(4, 6, 2), heed_full(g, HEED_F32, HEED_SHAPE(4), NAN), 2, 1, NULL, NULL) ==
              NULL,
          "NaN");
    CHECK_ERR(g, HEED_ERR_NUMERIC, "heed_local_attend: centre[0] = nan is not a finite position");
    CHECK(heed_local_attend(g, Z32(4, 6), Z32(4, 6, 2), Z32(4), 2, 1, (int64_t[]){6, 6, 7, 0}, NULL) == NULL, "length");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_local_attend: key_lengths[2] = 7 is out of range [0, 6]");
    CHECK(heed_local_attend(g, Z32(4, 6), Z64(4, 6, 2), Z32(4), 2, 1, NULL, NULL) == NULL, "dtype");
    CHECK_ERR(g, HEED_ERR_DTYPE, "values");
    /* huge centres and half-widths stay in range */
    heed_tensor *w,
        *c = heed_local_attend(g, Z64(2, 6), heed_full(g, HEED_F64, HEED_SHAPE(2, 6, 2), 1),
                               input(g, HEED_SHAPE(2), (double[]){1e300, -1e300}, false), INT64_MAX, 1, NULL, &w);
    CHECK(c && heed_get(c, 0) == 0 && heed_get(c, 3) == 0, "%s", heed_graph_error(g));
    c = heed_local_attend(g, Z64(1, 6), heed_full(g, HEED_F64, HEED_SHAPE(1, 6, 2), 1), Z64(1), INT64_MAX, 0, NULL, &w);
    CHECK(c && fabs(heed_get(c, 0) - 1) < 1e-15, "every key in the window: %s", heed_graph_error(g));
    /* the wrapper's pattern arguments */
    heed_tensor *q = Z32(2, 3), *k = Z32(2, 6, 3), *v = Z32(2, 6, 2);
    CHECK(heed_luong_local_attention(g, HEED_LUONG_DOT, q, k, v, NULL, NULL, &(heed_local_opts){.kind = 2}, NULL,
                                     NULL) == NULL,
          "kind");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_luong_local_attention: kind = 2 (HEED_LOCAL_M or HEED_LOCAL_P)");
    q = Z32(2, 3), k = Z32(2, 6, 3), v = Z32(2, 6, 2);
    CHECK(heed_luong_local_attention(g, HEED_LUONG_DOT, q, k, v, NULL, NULL, &(heed_local_opts){.D = -1}, NULL, NULL) ==
              NULL,
          "D");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_luong_local_attention: D = -1 (must be >= 1; 0 means 10)");
    q = Z32(2, 3), k = Z32(2, 6, 3), v = Z32(2, 6, 2);
    CHECK(heed_luong_local_attention(g, HEED_LUONG_DOT, q, k, v, NULL, NULL, &(heed_local_opts){.step = -1}, NULL,
                                     NULL) == NULL,
          "step");
    CHECK_ERR(g, HEED_ERR_ARG, "step = -1 (the decoder step must be >= 0)");
    q = Z32(2, 3), k = Z32(2, 6, 3), v = Z32(2, 6, 2);
    CHECK(heed_luong_local_attention(g, HEED_LUONG_DOT, q, k, v, NULL, NULL, &(heed_local_opts){.w_p = q}, NULL,
                                     NULL) == NULL,
          "m + w_p");
    CHECK_ERR(g, HEED_ERR_ARG, "local-m takes no w_p or v_p");
    q = Z32(2, 3), k = Z32(2, 6, 3), v = Z32(2, 6, 2);
    CHECK(heed_luong_local_attention(g, HEED_LUONG_DOT, q, k, v, NULL, NULL,
                                     &(heed_local_opts){.kind = HEED_LOCAL_P, .w_p = Z32(4, 3)}, NULL, NULL) == NULL,
          "p without v_p");
    CHECK_ERR(g, HEED_ERR_ARG, "local-p needs w_p [dp,dq] and v_p [dp]");
    q = Z32(2, 3), k = Z32(2, 6, 3), v = Z32(2, 6, 2);
    CHECK(heed_luong_local_attention(g, HEED_LUONG_DOT, q, k, v, NULL, NULL,
                                     &(heed_local_opts){.kind = HEED_LOCAL_P, .w_p = Z32(4, 2), .v_p = Z32(4)}, NULL,
                                     NULL) == NULL,
          "w_p shape");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_local_position: w_p[4,2] must be [dp,dq] = [?,3]");
    CHECK(heed_local_position(g, Z32(2, 3), Z32(4, 3), Z32(4), -1, NULL) == NULL, "N");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_local_position: N = -1 keys");
    CHECK(heed_local_position(g, Z32(2, 3), Z32(4, 3), Z32(5), 6, NULL) == NULL, "v_p");
    CHECK_ERR(g, HEED_ERR_SHAPE, "v_p[5] must be [dp] = [4]");
    /* an empty window (local-m past the end): zeros, zero gradients */
    heed_tensor *qq = heed_requires_grad(heed_full(g, HEED_F64, HEED_SHAPE(2, 3), 1)),
                *kk = heed_requires_grad(heed_full(g, HEED_F64, HEED_SHAPE(2, 6, 3), 1));
    c = heed_luong_local_attention(g, HEED_LUONG_DOT, qq, kk, heed_full(g, HEED_F64, HEED_SHAPE(2, 6, 2), 1), NULL,
                                   NULL, &(heed_local_opts){.D = 2, .step = 9}, (int64_t[]){6, 4}, &w);
    CHECK(c && heed_backward(g, heed_sum_all(g, heed_add(g, heed_sum(g, c, 1, true), w))) == HEED_OK, "%s",
          heed_graph_error(g));
    double total = 0;
    for (int64_t i = 0; c && i < 4; i++) total += fabs(heed_get(c, i));
    for (int64_t i = 0; c && i < 6; i++) total += fabs(heed_get(heed_grad(g, qq), i));
    CHECK(total == 0, "empty windows: %g", total);
    heed_graph_free(g);
}

/* ================================================================ hard attention */

/* 20000 rows drawn from one distribution over 5 keys (plus a -inf key and a padded one):
 * the counts pass a chi-square test (4 degrees of freedom: p-value e^(-x/2) (1 + x/2) must
 * stay above 1e-6), the masked keys are never drawn, and every output matches its formula. */
static void hard_sampling(void) {
    enum { B = 20000, N = 7, dv = 2 };
    static const double row[N] = {0.5, -1, -INFINITY, 1.2, 0, 2, 3};
    double *s = malloc(B * N * sizeof *s), *V = malloc(B * N * dv * sizeof *V), p[N], m = 2, sum = 0, H = 0;
    int64_t *lens = malloc(B * sizeof *lens), counts[N] = {0};
    for (int64_t b = 0; b < B; b++) {
        lens[b] = 6;
        for (int64_t j = 0; j < N; j++)
            s[b * N + j] = row[j], V[(b * N + j) * dv] = (double)j, V[(b * N + j) * dv + 1] = (double)b;
    }
    for (int64_t j = 0; j < 6; j++) sum += exp(row[j] - m);
    for (int64_t j = 0; j < N; j++) p[j] = j < 6 ? exp(row[j] - m) / sum : 0;
    for (int64_t j = 0; j < N; j++) H -= p[j] > 0 ? p[j] * log(p[j]) : 0;
    heed_graph *g = heed_graph_new(ctx);
    heed_hard_outputs o;
    heed_tensor *c =
        heed_hard_attend(g, input(g, HEED_SHAPE(B, N), s, false), input(g, HEED_SHAPE(B, N, dv), V, false), lens, &o);
    CHECK(c && o.weights && o.log_prob && o.entropy && o.samples, "%s", heed_graph_error(g));
    double worst = 0;
    for (int64_t b = 0; c && b < B; b++) {
        int64_t i = o.samples[b];
        CHECK(i >= 0 && i < N, "sample %lld", (long long)i);
        if (i < 0 || i >= N) break;
        counts[i]++;
        worst = fmax(worst, check_err(heed_get(o.log_prob, b), log(p[i])));
        worst = fmax(worst, check_err(heed_get(o.entropy, b), H));
        worst = fmax(worst, check_err(heed_get(c, b * dv), (double)i) + check_err(heed_get(c, b * dv + 1), (double)b));
        for (int64_t j = 0; j < N; j++) worst = fmax(worst, check_err(heed_get(o.weights, b * N + j), p[j]));
    }
    CHECK(worst < 1e-14, "outputs against their formulas: %g", worst);
    CHECK(counts[2] == 0 && counts[6] == 0, "a masked key was drawn: %lld, %lld", (long long)counts[2],
          (long long)counts[6]);
    double chi2 = 0;
    for (int64_t j = 0; j < N; j++)
        if (p[j] > 0) chi2 += (counts[j] - B * p[j]) * (counts[j] - B * p[j]) / (B * p[j]);
    double pvalue = exp(-chi2 / 2) * (1 + chi2 / 2);
    printf("  hard attention: chi-square %.2f over 4 degrees of freedom (p-value %.3g)\n", chi2, pvalue);
    CHECK(pvalue > 1e-6, "sampling frequencies do not match the weights: chi2 = %g", chi2);
    /* replaying the random state replays the samples; the next call draws others */
    uint64_t seed, counter;
    heed_ctx_rng_state(ctx, &seed, &counter);
    heed_ctx_set_rng_state(ctx, seed, counter - 1);
    heed_hard_outputs o2, o3;
    heed_hard_attend(g, input(g, HEED_SHAPE(B, N), s, false), input(g, HEED_SHAPE(B, N, dv), V, false), lens, &o2);
    heed_hard_attend(g, input(g, HEED_SHAPE(B, N), s, false), input(g, HEED_SHAPE(B, N, dv), V, false), lens, &o3);
    int64_t same = 0, differ = 0;
    for (int64_t b = 0; o2.samples && o3.samples && b < B; b++)
        same += o2.samples[b] == o.samples[b], differ += o3.samples[b] != o.samples[b];
    CHECK(same == B && differ > B / 3, "replay %lld of %d, fresh stream differs in %lld", (long long)same, B,
          (long long)differ);
    /* evaluation takes the most probable key and draws no random numbers */
    heed_graph_set_training(g, false);
    heed_ctx_rng_state(ctx, &seed, &counter);
    heed_hard_attend(g, input(g, HEED_SHAPE(B, N), s, false), input(g, HEED_SHAPE(B, N, dv), V, false), lens, &o2);
    uint64_t after;
    heed_ctx_rng_state(ctx, NULL, &after);
    CHECK(o2.samples && o2.samples[0] == 5 && o2.samples[B - 1] == 5 && after == counter, "argmax in evaluation");
    heed_graph_set_training(g, true);
    /* a row without keys, a row of -inf: sample -1, zeros */
    heed_graph_reset(g);
    c = heed_hard_attend(g, input(g, HEED_SHAPE(2, 2), (double[]){1, 2, -INFINITY, -INFINITY}, false),
                         heed_full(g, HEED_F64, HEED_SHAPE(2, 2, 1), 1), (int64_t[]){0, 2}, &o);
    CHECK(c && o.samples[0] == -1 && o.samples[1] == -1 && heed_get(c, 0) == 0 && heed_get(c, 1) == 0 &&
              heed_get(o.log_prob, 1) == 0 && heed_get(o.entropy, 1) == 0 && heed_get(o.weights, 3) == 0,
          "rows without keys");
    heed_graph_free(g);
    free(s), free(V), free(lens);
}

/* The estimator's mean over many samples against the exact gradient of the expected reward:
 * J(s) = sum_i w_i r_i, dJ/ds_k = w_k (r_k - J). Per sample the estimate is
 * (r_i - b)([k = i] - w_k); the tolerance is 5 standard errors of its mean. */
static void hard_estimator_is_unbiased(void) {
    enum { n = 100000, N = 4 };
    static const double s[N] = {0.3, -0.5, 1.0, 0.1}, rew[N] = {1.0, -2.0, 0.5, 3.0};
    heed_graph *g = heed_graph_new(ctx);
    for (int bi = 0; bi < 2; bi++) {
        double baseline = bi ? 0.7 : 0, w[N], sum = 0, J = 0;
        heed_graph_reset(g);
        heed_tensor *S = input(g, HEED_SHAPE(N), s, true);
        heed_hard_outputs o;
        heed_hard_attend(g, heed_add(g, heed_zeros(g, HEED_F64, HEED_SHAPE(n, N)), S),
                         heed_zeros(g, HEED_F64, HEED_SHAPE(n, N, 1)), NULL, &o);
        CHECK(o.samples != NULL, "%s", heed_graph_error(g));
        if (!o.samples) break;
        double *r = malloc(n * sizeof *r), mean[N] = {0}, sq[N] = {0};
        for (int64_t i = 0; i < n; i++) r[i] = rew[o.samples[i]];
        heed_tensor *loss = heed_reinforce_loss(g, o.log_prob, r, baseline);
        CHECK(loss && heed_backward(g, loss) == HEED_OK, "%s", heed_graph_error(g));
        for (int k = 0; k < N; k++) sum += exp(s[k]);
        for (int k = 0; k < N; k++) w[k] = exp(s[k]) / sum, J += w[k] * rew[k];
        for (int64_t i = 0; i < n; i++)
            for (int k = 0; k < N; k++) {
                double e = (r[i] - baseline) * ((k == o.samples[i]) - w[k]);
                mean[k] += e / n, sq[k] += e * e / n;
            }
        for (int k = 0; k < N; k++) {
            double se = sqrt((sq[k] - mean[k] * mean[k]) / n), exact = w[k] * (rew[k] - J),
                   est = -heed_get(heed_grad(g, S), k);
            CHECK(check_err(est, mean[k]) < 1e-12, "the op's gradient is the estimator's mean: %g vs %g", est, mean[k]);
            CHECK(check_err(est, exact) < 5 * se,
                  "baseline %g, score %d: estimate %.5f, exact %.5f, standard error %.5f", baseline, k, est, exact, se);
        }
        free(r);
    }
    heed_graph_free(g);
}

static const int64_t hard_lens[3] = {5, 2, 0};

static heed_tensor *fn_hard(heed_graph *g, heed_tensor **x, void *u) {
    heed_hard_outputs o;
    heed_tensor *c = heed_hard_attend(g, x[0], x[1], hard_lens, &o);
    if (!c) return NULL;
    switch (*(int *)u) {
    case 0: return o.log_prob;
    case 1: return o.entropy;
    case 2: return o.weights;
    case 3: return c;
    default: return heed_add(g, heed_add(g, o.log_prob, o.entropy), heed_sum(g, c, 1, false));
    }
}

static void hard_gradients(void) {
    for (int mode = 0; mode < 5; mode++) {
        heed_gradcheck_input in[2] = {{HEED_SHAPE(3, 5)}, {HEED_SHAPE(3, 5, 2)}};
        CHECK_GRAD(ctx, fn_hard, &mode, 2, in, NULL);
        check_f32_vs_f64_grad(ctx, fn_hard, &mode, 2, in, 1e-6, "hard attention");
    }
}

/* Show, Attend and Tell's training on a toy task: one of 6 locations (its key carries a
 * marker) holds the label as a one-hot value, the others hold random labels. Scores
 * w . key pick a location; a linear classifier reads the sampled value. Loss: cross-entropy
 * + REINFORCE with reward log p(label | sample) and a moving-average baseline - 0.01 mean
 * entropy. With a fixed seed, hard attention learns to pick the marked location. */
static void hard_learns_toy_task(void) {
    enum { B = 64, N = 6, dk = 3, C = 4, test_B = 512 };
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_tensor *w = heed_param(P, "w", HEED_SHAPE(dk), heed_init_zeros()),
                *U = heed_param(P, "U", HEED_SHAPE(C, C), heed_init_zeros());
    heed_optimizer *opt = heed_adam(P, &(heed_adam_opts){.lr = 0.05});
    heed_reward_baseline base = {0};
    heed_rng r = heed_rng_make(71, 0);
    heed_graph *g = heed_graph_new(ctx);
    static double keys[test_B * N * dk], vals[test_B * N * C], rewards[test_B];
    static int64_t y[test_B], answer[test_B];
    double picked = 0, correct = 0, wanswer = 0;
    for (int step = 0; step <= 300; step++) {
        bool test = step == 300;
        int64_t n = test ? test_B : B;
        for (int64_t b = 0; b < n; b++) {
            answer[b] = (int64_t)heed_rng_below(&r, N), y[b] = (int64_t)heed_rng_below(&r, C);
            for (int64_t j = 0; j < N; j++) {
                int64_t label = j == answer[b] ? y[b] : (int64_t)heed_rng_below(&r, C);
                keys[(b * N + j) * dk] = j == answer[b];
                for (int64_t e = 1; e < dk; e++) keys[(b * N + j) * dk + e] = 2 * heed_rng_uniform(&r) - 1;
                for (int64_t e = 0; e < C; e++) vals[(b * N + j) * C + e] = e == label;
            }
        }
        heed_graph_reset(g);
        heed_graph_set_training(g, !test);
        heed_tensor *scores = heed_reshape(g,
                                           heed_matmul(g, input(g, HEED_SHAPE(n, N, dk), keys, false),
                                                       heed_reshape(g, w, HEED_SHAPE(dk, 1))),
                                           HEED_SHAPE(n, N));
        heed_hard_outputs o;
        heed_tensor *logits =
            heed_linear(g, heed_hard_attend(g, scores, input(g, HEED_SHAPE(n, N, C), vals, false), NULL, &o), U, NULL);
        CHECK(logits != NULL, "%s", heed_graph_error(g));
        if (!logits) break;
        for (int64_t b = 0; b < n; b++) { /* reward: log p(label | the sampled value) */
            double mx = -INFINITY, z = 0;
            for (int64_t e = 0; e < C; e++) mx = fmax(mx, heed_get(logits, b * C + e));
            for (int64_t e = 0; e < C; e++) z += exp(heed_get(logits, b * C + e) - mx);
            rewards[b] = heed_get(logits, b * C + y[b]) - mx - log(z);
        }
        if (test) {
            for (int64_t b = 0; b < n; b++) {
                picked += o.samples[b] == answer[b];
                correct += rewards[b] > log(0.5);
                wanswer += heed_get(o.weights, b * N + answer[b]) / n;
            }
            break;
        }
        double baseline;
        CHECK(heed_baseline_update(ctx, &base, rewards, n, &baseline) == HEED_OK, "baseline: %s", heed_ctx_error(ctx));
        heed_tensor *loss =
            heed_add(g, heed_cross_entropy(g, logits, y, NULL), heed_reinforce_loss(g, o.log_prob, rewards, baseline));
        loss = heed_sub(g, loss, heed_scale(g, heed_mean_all(g, o.entropy), 0.01));
        heed_params_zero_grad(P);
        CHECK(heed_backward(g, loss) == HEED_OK && heed_optimizer_step(opt) == HEED_OK, "%s", heed_graph_error(g));
    }
    printf(
        "  hard attention toy task: picks the answer in %.1f%% (chance %.1f%%), weight on it %.3f, label right %.1f%%\n",
        100 * picked / test_B, 100.0 / N, wanswer, 100 * correct / test_B);
    CHECK(picked >= 0.95 * test_B && wanswer >= 0.9 && correct >= 0.95 * test_B,
          "hard attention did not learn to pick the answer");
    heed_graph_free(g);
    heed_optimizer_free(opt);
    heed_params_free(P);
}

static void hard_baseline_and_bad_inputs(void) {
    heed_reward_baseline b = {0};
    double r1[2] = {1, 3}, r2[1] = {-4}, used;
    CHECK(heed_baseline_update(ctx, &b, r1, 2, &used) == HEED_OK && used == 0 && fabs(b.value - 0.2) < 1e-15,
          "first update %g", b.value);
    CHECK(heed_baseline_update(ctx, &b, r2, 1, &used) == HEED_OK && fabs(used - 0.2) < 1e-15 &&
              fabs(b.value - (0.9 * 0.2 - 0.4)) < 1e-15,
          "second update %g", b.value);
    CHECK(b.updates == 2, "updates");
    heed_reward_baseline half = {.decay = 0.5};
    CHECK(heed_baseline_update(ctx, &half, r1, 2, NULL) == HEED_OK && half.value == 1, "decay 0.5: %g", half.value);
    CHECK_CTX_FAIL(ctx, heed_baseline_update(ctx, &(heed_reward_baseline){.decay = 1}, r1, 2, NULL), HEED_ERR_ARG,
                   "heed_baseline_update: decay = 1 (must be in (0, 1); 0 means 0.9)");
    CHECK_CTX_FAIL(ctx, heed_baseline_update(ctx, &(heed_reward_baseline){.decay = -0.5}, r1, 2, NULL), HEED_ERR_ARG,
                   "decay = -0.5 (must be");
    CHECK_CTX_FAIL(ctx, heed_baseline_update(ctx, &(heed_reward_baseline){.value = INFINITY}, r1, 2, NULL),
                   HEED_ERR_ARG, "heed_baseline_update: the running value inf is not finite");
    CHECK_CTX_FAIL(ctx, heed_baseline_update(ctx, &b, r1, 0, NULL), HEED_ERR_ARG,
                   "heed_baseline_update: n = 0 (at least one reward)");
    CHECK_CTX_FAIL(ctx, heed_baseline_update(ctx, &b, NULL, 2, NULL), HEED_ERR_ARG,
                   "heed_baseline_update: rewards is NULL");
    CHECK_CTX_FAIL(ctx, heed_baseline_update(ctx, NULL, r1, 2, NULL), HEED_ERR_ARG, "heed_baseline_update: b is NULL");
    CHECK_CTX_FAIL(ctx, heed_baseline_update(ctx, &b, (double[]){1, NAN}, 2, NULL), HEED_ERR_ARG,
                   "heed_baseline_update: rewards[1] = nan is not finite");
    CHECK(heed_baseline_update(NULL, &b, r1, 2, NULL) == HEED_ERR_ARG, "NULL ctx");
    CHECK(b.updates == 2 && fabs(b.value - (0.9 * 0.2 - 0.4)) < 1e-15, "b unchanged by refused calls");
    heed_graph *g = heed_graph_new(ctx);
    CHECK(heed_hard_attend(g, Z32(2, 5), Z32(2, 5, 3), (int64_t[]){5, 6}, NULL) == NULL, "length");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_hard_attend: key_lengths[1] = 6 is out of range [0, 5]");
    CHECK(heed_hard_attend(g, Z32(2, 5), Z32(2, 4, 3), NULL, NULL) == NULL, "values");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_hard_attend: values[2,4,3] must be [B,N,dv] = [2,5,?]");
    CHECK(heed_hard_attend(g, Z32(5), Z32(2, 4, 3), NULL, NULL) == NULL, "scores");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_hard_attend: scores[5] must be [B,N]");
    CHECK(heed_hard_attend(g, Z32(2, 5), Z64(2, 5, 3), NULL, NULL) == NULL, "dtype");
    CHECK_ERR(g, HEED_ERR_DTYPE, "values");
    CHECK(heed_reinforce_loss(g, Z32(2), (double[]){1, INFINITY}, 0) == NULL, "reward");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_reinforce_loss: rewards[1] = inf is not finite");
    CHECK(heed_reinforce_loss(g, Z32(2), (double[]){1, 2}, NAN) == NULL, "baseline");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_reinforce_loss: baseline = nan is not finite");
    CHECK(heed_reinforce_loss(g, Z32(2), NULL, 0) == NULL, "NULL rewards");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_reinforce_loss: rewards is NULL (need B = 2)");
    CHECK(heed_reinforce_loss(g, Z32(2, 1), (double[]){1, 2}, 0) == NULL, "shape");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_reinforce_loss: log_prob[2,1] must be [B]");
    heed_graph_free(g);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 7});
    RUN(linear_matches_explicit);
    RUN(linear_gradients);
    RUN(feature_maps);
    RUN(favor_projection);
    RUN(favor_approximates_softmax);
    RUN(linear_step);
    RUN(linear_bad_inputs);
    RUN(local_matches_explicit);
    RUN(local_gradients);
    RUN(local_bad_inputs);
    RUN(hard_sampling);
    RUN(hard_estimator_is_unbiased);
    RUN(hard_gradients);
    RUN(hard_learns_toy_task);
    RUN(hard_baseline_and_bad_inputs);
    heed_ctx_free(ctx);
    return check_summary();
}
