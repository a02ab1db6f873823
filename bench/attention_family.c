/* The rest of the attention family, f32, each case against a reference measured in the
 * same run (interleaved: one run of each per repetition, best of each kept, so both see
 * the same load):
 *  - linear attention with elu + 1 features, non-causal and causal, forward+backward,
 *    against dense flash attention (heed_attention, HEED_ATTN_FLASH, causal for causal) at
 *    B=1 H=8 d=64 and N = min_n .. max_n (doubling): time, arena memory, and the crossover N
 *    (the smallest N of the range from which linear attention stays faster) printed;
 *  - FAVOR+ features (m = 256) with non-causal linear attention, against the same flash;
 *  - one Luong local-p decoder step (general score, D = 10) against global Luong attention
 *    (heed_luong_attention) of the same kind and sizes;
 *  - hard attention (heed_hard_attend + heed_reinforce_loss) against soft heed_attend;
 *  - decoding 1024 tokens with heed_linear_attention_step (constant memory), against one
 *    causal heed_linear_attention forward over the same 1024 tokens.
 * Memory ("mib"): the arena's peak for one forward+backward step on a fresh graph (q, k, v
 * live in a parameter store, so they are not counted).
 * Usage: bench_attention_family [max_n [min_n]]  (default 256 .. 8192) */
#include "heed/attention.h"
#include "heed/core.h"
#include "heed/elementwise.h"
#include "heed/reduce.h"
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 1, H = 8, D = 64 };

typedef enum { FLASH, LINEAR_ELU, LINEAR_FAVOR } kind;

typedef struct {
    heed_params *P;
    heed_tensor *q, *k, *v, *w; /* w: the FAVOR projection (frozen) */
} qkv;

/* One forward+backward step of an attention kind on g. */
static void step(heed_graph *g, const qkv *x, kind kd, bool causal) {
    heed_graph_reset(g);
    heed_tensor *y;
    if (kd == FLASH) {
        y = heed_attention(g, x->q, x->k, x->v, &(heed_attention_opts){.causal = causal, .impl = HEED_ATTN_FLASH},
                           NULL);
    } else {
        heed_tensor *fq =
            kd == LINEAR_ELU ? heed_elu_features(g, x->q) : heed_favor_features(g, x->q, x->w, HEED_FAVOR_QUERIES);
        heed_tensor *fk =
            kd == LINEAR_ELU ? heed_elu_features(g, x->k) : heed_favor_features(g, x->k, x->w, HEED_FAVOR_KEYS);
        y = heed_linear_attention(g, fq, fk, x->v, &(heed_linear_attention_opts){.causal = causal});
    }
    heed_params_zero_grad(x->P);
    heed_backward(g, heed_sum_all(g, y));
}

static double peak_mib(heed_ctx *ctx, const qkv *x, kind kd, bool causal) {
    heed_graph *g = heed_graph_new(ctx);
    step(g, x, kd, causal);
    double mib = (double)heed_graph_peak_bytes(g) / (1 << 20);
    heed_graph_free(g);
    return mib;
}

static const char *name(kind kd) {
    return kd == FLASH ? "flash" : kd == LINEAR_ELU ? "linear elu+1" : "linear favor+ m=256";
}

/* Times kd and flash interleaved; prints one JSON line; returns whether kd was faster. */
static bool compare(heed_ctx *ctx, heed_graph *g, const qkv *x, int64_t n, kind kd, bool causal) {
    int reps = n >= 4096 ? 2 : n >= 1024 ? 3 : 5;
    double best = 1e30, best_ref = 1e30;
    step(g, x, kd, causal), step(g, x, FLASH, causal); /* warm-up */
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        step(g, x, kd, causal);
        double t1 = bench_now();
        step(g, x, FLASH, causal);
        double t2 = bench_now();
        if (t1 - t0 < best) best = t1 - t0;
        if (t2 - t1 < best_ref) best_ref = t2 - t1;
    }
    if (heed_graph_status(g) != HEED_OK) fprintf(stderr, "error: %s\n", heed_graph_error(g));
    printf(
        "{\"bench\":\"attention_family\",\"case\":\"%s%s fwd+bwd f32 B=%d H=%d d=%d\",\"n\":%lld,\"ms\":%.3f,\"mib\":%.2f,"
        "\"reference\":\"flash attention (heed_attention HEED_ATTN_FLASH%s, same sizes, same run)\",\"reference_ms\":%.3f,"
        "\"reference_mib\":%.2f,\"ratio_reference_over_case\":%.2f,\"threads\":%d}\n",
        name(kd), causal ? " causal" : "", B, H, D, (long long)n, best * 1e3, peak_mib(ctx, x, kd, causal),
        causal ? " causal" : "", best_ref * 1e3, peak_mib(ctx, x, FLASH, causal), best_ref / best,
        heed_ctx_threads(ctx));
    fflush(stdout);
    return best < best_ref;
}

/* One decoder step at LAS-like sizes: local-p vs global Luong attention, hard vs soft. */
static void one_step_cases(heed_ctx *ctx) {
    const int64_t Bs = 32, N = 400, dq = 256, dp = 256;
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_tensor *q = heed_param(P, "q", HEED_SHAPE(Bs, dq), heed_init_uniform(-1, 1));
    heed_tensor *keys = heed_param(P, "keys", HEED_SHAPE(Bs, N, dq), heed_init_uniform(-1, 1));
    heed_tensor *W = heed_param(P, "W", HEED_SHAPE(dq, dq), heed_init_xavier_uniform(1));
    heed_tensor *Wp = heed_param(P, "W_p", HEED_SHAPE(dp, dq), heed_init_xavier_uniform(1));
    heed_tensor *vp = heed_param(P, "v_p", HEED_SHAPE(dp), heed_init_uniform(-0.1, 0.1));
    heed_graph *g = heed_graph_new(ctx);
    int64_t *lens = malloc((size_t)Bs * sizeof *lens);
    double *rewards = malloc((size_t)Bs * sizeof *rewards);
    for (int64_t b = 0; b < Bs; b++) lens[b] = N - (b * 7) % 50, rewards[b] = (double)(b % 3) - 1;
    double t[4] = {1e30, 1e30, 1e30, 1e30};
    for (int r = 0; r < 6; r++)
        for (int c = 0; c < 4; c++) {
            double t0 = bench_now();
            heed_graph_reset(g);
            heed_params_zero_grad(P);
            heed_tensor *y;
            if (c == 0)
                y = heed_luong_local_attention(g, HEED_LUONG_GENERAL, q, keys, keys, W, NULL,
                                               &(heed_local_opts){.kind = HEED_LOCAL_P, .D = 10, .w_p = Wp, .v_p = vp},
                                               lens, NULL);
            else if (c == 1) y = heed_luong_attention(g, HEED_LUONG_GENERAL, q, keys, keys, W, NULL, lens, NULL);
            else {
                heed_tensor *s = heed_luong_score(g, HEED_LUONG_GENERAL, q, keys, W, NULL);
                heed_hard_outputs o;
                y = c == 2 ? heed_hard_attend(g, s, keys, lens, &o) : heed_attend(g, s, keys, lens, NULL);
                if (c == 2) y = heed_add(g, heed_sum_all(g, y), heed_reinforce_loss(g, o.log_prob, rewards, 0));
            }
            heed_backward(g, heed_sum_all(g, y));
            double dt = bench_now() - t0;
            if (r > 0 && dt < t[c]) t[c] = dt; /* run 0 warms up */
        }
    if (heed_graph_status(g) != HEED_OK) fprintf(stderr, "error: %s\n", heed_graph_error(g));
    printf(
        "{\"bench\":\"attention_family\",\"case\":\"luong local-p step (general, D=10) fwd+bwd f32 B=%lld N=%lld d=%lld\","
        "\"ms\":%.3f,\"reference\":\"global heed_luong_attention (general, same sizes, same run)\",\"reference_ms\":%.3f,"
        "\"ratio_reference_over_case\":%.2f}\n",
        (long long)Bs, (long long)N, (long long)dq, t[0] * 1e3, t[1] * 1e3, t[1] / t[0]);
    printf(
        "{\"bench\":\"attention_family\",\"case\":\"hard attention step (general score, sample + REINFORCE) fwd+bwd f32 "
        "B=%lld N=%lld d=%lld\",\"ms\":%.3f,\"reference\":\"soft heed_attend on the same scores (same run)\","
        "\"reference_ms\":%.3f,\"ratio_reference_over_case\":%.2f}\n",
        (long long)Bs, (long long)N, (long long)dq, t[2] * 1e3, t[3] * 1e3, t[3] / t[2]);
    heed_graph_free(g);
    heed_params_free(P);
    free(lens), free(rewards);
}

/* Decoding: N steps of the constant-memory state against one causal forward over N. */
static void decoding_case(heed_ctx *ctx) {
    const int64_t N = 1024, m = D, dv = D;
    heed_rng r = heed_rng_make(3, 0);
    float *fq = malloc((size_t)(H * N * m) * sizeof *fq), *fk = malloc((size_t)(H * N * m) * sizeof *fk),
          *v = malloc((size_t)(H * N * dv) * sizeof *v), *row = malloc((size_t)(3 * H * m) * sizeof *row);
    double *S = malloc((size_t)(H * m * dv) * sizeof *S), *z = malloc((size_t)(H * m) * sizeof *z);
    for (int64_t i = 0; i < H * N * m; i++)
        fq[i] = (float)(0.1 + heed_rng_uniform(&r)), fk[i] = (float)(0.1 + heed_rng_uniform(&r));
    for (int64_t i = 0; i < H * N * dv; i++) v[i] = (float)(2 * heed_rng_uniform(&r) - 1);
    heed_graph *g = heed_graph_new(ctx);
    double best = 1e30, best_ref = 1e30;
    for (int rep = 0; rep < 4; rep++) {
        double t0 = bench_now();
        heed_linear_attn_state st;
        heed_linear_attn_state_init(ctx, &st, B, H, m, dv, S, z);
        for (int64_t t = 0; t < N; t++) {
            heed_graph_reset(g);
            for (int64_t h = 0; h < H; h++) {
                memcpy(row + h * m, fq + (h * N + t) * m, (size_t)m * sizeof *row);
                memcpy(row + (H + h) * m, fk + (h * N + t) * m, (size_t)m * sizeof *row);
                memcpy(row + (2 * H + h) * m, v + (h * N + t) * dv, (size_t)dv * sizeof *row);
            }
            heed_linear_attention_step(g, &st, heed_input(g, HEED_F32, HEED_SHAPE(B, H, 1, m), row),
                                       heed_input(g, HEED_F32, HEED_SHAPE(B, H, 1, m), row + H * m),
                                       heed_input(g, HEED_F32, HEED_SHAPE(B, H, 1, dv), row + 2 * H * m));
        }
        double t1 = bench_now();
        heed_graph_reset(g);
        heed_linear_attention(g, heed_input(g, HEED_F32, HEED_SHAPE(B, H, N, m), fq),
                              heed_input(g, HEED_F32, HEED_SHAPE(B, H, N, m), fk),
                              heed_input(g, HEED_F32, HEED_SHAPE(B, H, N, dv), v),
                              &(heed_linear_attention_opts){.causal = true});
        double t2 = bench_now();
        if (rep > 0 && t1 - t0 < best) best = t1 - t0;
        if (rep > 0 && t2 - t1 < best_ref) best_ref = t2 - t1;
    }
    if (heed_graph_status(g) != HEED_OK) fprintf(stderr, "error: %s\n", heed_graph_error(g));
    printf(
        "{\"bench\":\"attention_family\",\"case\":\"linear attention decoding, %lld steps f32 B=%d H=%d m=%lld dv=%lld\","
        "\"ms\":%.3f,\"us_per_step\":%.2f,\"state_kib\":%.1f,\"reference\":\"one causal heed_linear_attention forward over "
        "the same %lld tokens (same run)\",\"reference_ms\":%.3f,\"ratio_reference_over_case\":%.2f}\n",
        (long long)N, B, H, (long long)m, (long long)dv, best * 1e3, best / N * 1e6,
        (double)(H * m * (dv + 1)) * 8 / 1024, (long long)N, best_ref * 1e3, best_ref / best);
    heed_graph_free(g);
    free(fq), free(fk), free(v), free(row), free(S), free(z);
}

int main(int argc, char **argv) {
    int64_t max_n = argc > 1 ? atoll(argv[1]) : 8192, min_n = argc > 2 ? atoll(argv[2]) : 256;
    if (min_n < 16) min_n = 16;
    heed_ctx *ctx = heed_ctx_new(NULL);
    heed_graph *g = heed_graph_new(ctx);
    int64_t crossover[3] = {0, 0, 0}; /* non-causal elu, causal elu, favor; 0 = slower at the last N */
    for (int64_t n = min_n; n <= max_n; n *= 2) {
        qkv x = {.P = heed_params_new(ctx, HEED_F32)};
        x.q = heed_param(x.P, "q", HEED_SHAPE(B, H, n, D), heed_init_uniform(-1, 1));
        x.k = heed_param(x.P, "k", HEED_SHAPE(B, H, n, D), heed_init_uniform(-1, 1));
        x.v = heed_param(x.P, "v", HEED_SHAPE(B, H, n, D), heed_init_uniform(-1, 1));
        x.w = heed_param(x.P, "favor", HEED_SHAPE(256, D), heed_init_zeros());
        heed_param_freeze(x.w, true);
        heed_favor_draw(ctx, x.w, 0);
        bool faster[3] = {compare(ctx, g, &x, n, LINEAR_ELU, false), compare(ctx, g, &x, n, LINEAR_ELU, true),
                          compare(ctx, g, &x, n, LINEAR_FAVOR, false)};
        for (int c = 0; c < 3; c++) crossover[c] = !faster[c] ? 0 : crossover[c] ? crossover[c] : n;
        heed_params_free(x.P);
    }
    static const char *cases[3] = {"linear elu+1", "linear elu+1 causal", "linear favor+ m=256"};
    for (int c = 0; c < 3; c++) {
        char at[32];
        snprintf(at, sizeof at, "%lld", (long long)crossover[c]);
        printf(
            "{\"bench\":\"attention_family\",\"case\":\"crossover %s vs flash\",\"crossover_n\":%s,\"searched\":\"%lld..%lld\","
            "\"reference\":\"flash attention, same run\"}\n",
            cases[c], crossover[c] ? at : "null", (long long)min_n, (long long)max_n);
        fprintf(stderr, "crossover %s vs flash: %s\n", cases[c], crossover[c] ? at : "none in the range");
    }
    one_step_cases(ctx);
    decoding_case(ctx);
    heed_graph_free(g);
    heed_ctx_free(ctx);
    return 0;
}
