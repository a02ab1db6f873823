/* Attention layers, f32:
 *  - one additive (Bahdanau) decoder step, forward + backward: the fused score node
 *    against the same math composed from core ops (linear, broadcast add, tanh, matmul)
 *    in the same run; both end in heed_attend;
 *  - a location-aware + coverage step (fused only; GFLOP/s of its main terms);
 *  - the prefix scan (every prefix's attention output) against a plain sequential
 *    online-softmax loop writing the same outputs (one thread), forward only.
 * One JSON line per case. */
#include "heed/attention.h"
#include "heed/core.h"
#include "heed/elementwise.h"
#include "heed/matmul.h"
#include "heed/reduce.h"
#include "heed/shape.h"
#include "bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static float *rand_buf(heed_rng *r, int64_t n, double amp) {
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(amp * (2 * heed_rng_uniform(r) - 1));
    return p;
}

int main(void) {
    heed_ctx *ctx = heed_ctx_new(NULL);
    heed_graph *g = heed_graph_new(ctx);
    heed_rng r = heed_rng_make(1, 0);
    const int64_t B = 32, N = 400, dq = 512, da = 256, dv = 512, C = 10, K = 31;
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_tensor *wq = heed_param(P, "wq", HEED_SHAPE(da, dq), heed_init_xavier_uniform(1));
    heed_tensor *bq = heed_param(P, "bq", HEED_SHAPE(da), heed_init_zeros());
    heed_tensor *v = heed_param(P, "v", HEED_SHAPE(da), heed_init_uniform(-0.1, 0.1));
    heed_tensor *F = heed_param(P, "F", HEED_SHAPE(C, K), heed_init_uniform(-0.1, 0.1));
    heed_tensor *U = heed_param(P, "U", HEED_SHAPE(da, C), heed_init_uniform(-0.1, 0.1));
    heed_tensor *cw = heed_param(P, "cw", HEED_SHAPE(da), heed_init_uniform(-0.1, 0.1));
    float *q = rand_buf(&r, B * dq, 1), *kp = rand_buf(&r, B * N * da, 1), *vals = rand_buf(&r, B * N * dv, 1),
          *prev = rand_buf(&r, B * N, 0.01);
    int64_t *lens = malloc((size_t)B * sizeof *lens);
    for (int64_t b = 0; b < B; b++) lens[b] = N - (b * 7) % 50;

    double t_fused, t_composed, t_loc;
    BENCH_BEST(5, t_fused, {
        heed_graph_reset(g);
        heed_tensor *tq = heed_requires_grad(heed_input(g, HEED_F32, HEED_SHAPE(B, dq), q));
        heed_tensor *tk = heed_requires_grad(heed_input(g, HEED_F32, HEED_SHAPE(B, N, da), kp));
        heed_tensor *tv = heed_input(g, HEED_F32, HEED_SHAPE(B, N, dv), vals);
        heed_additive_params p = {.w_q = wq, .bias = bq, .v = v};
        heed_tensor *c = heed_additive_attention(g, tq, tk, tv, &p, NULL, NULL, lens, NULL);
        heed_backward(g, heed_sum_all(g, c));
    });
    BENCH_BEST(5, t_composed, {
        heed_graph_reset(g);
        heed_tensor *tq = heed_requires_grad(heed_input(g, HEED_F32, HEED_SHAPE(B, dq), q));
        heed_tensor *tk = heed_requires_grad(heed_input(g, HEED_F32, HEED_SHAPE(B, N, da), kp));
        heed_tensor *tv = heed_input(g, HEED_F32, HEED_SHAPE(B, N, dv), vals);
        heed_tensor *qp = heed_reshape(g, heed_linear(g, tq, wq, bq), HEED_SHAPE(B, 1, da));
        heed_tensor *t = heed_tanh(g, heed_add(g, tk, qp));
        heed_tensor *s = heed_reshape(g, heed_matmul(g, t, heed_reshape(g, v, HEED_SHAPE(da, 1))), HEED_SHAPE(B, N));
        heed_tensor *c = heed_attend(g, s, tv, lens, NULL);
        heed_backward(g, heed_sum_all(g, c));
    });
    if (heed_graph_status(g) != HEED_OK) fprintf(stderr, "error: %s\n", heed_graph_error(g));
    printf("{\"bench\":\"attention_layers\",\"case\":\"additive step fwd+bwd f32 B=%lld N=%lld dq=%lld da=%lld dv=%lld "
           "threads=%d\",\"fused_ms\":%.3f,\"composed_ms\":%.3f,\"ratio_composed_over_fused\":%.2f}\n",
           (long long)B, (long long)N, (long long)dq, (long long)da, (long long)dv, heed_ctx_threads(ctx),
           t_fused * 1e3, t_composed * 1e3, t_composed / t_fused);

    BENCH_BEST(5, t_loc, {
        heed_graph_reset(g);
        heed_tensor *tq = heed_requires_grad(heed_input(g, HEED_F32, HEED_SHAPE(B, dq), q));
        heed_tensor *tk = heed_requires_grad(heed_input(g, HEED_F32, HEED_SHAPE(B, N, da), kp));
        heed_tensor *tv = heed_input(g, HEED_F32, HEED_SHAPE(B, N, dv), vals);
        heed_tensor *tp = heed_requires_grad(heed_input(g, HEED_F32, HEED_SHAPE(B, N), prev));
        heed_additive_params p = {.w_q = wq, .bias = bq, .v = v, .loc_filters = F, .loc_proj = U, .cov_weight = cw};
        heed_tensor *c = heed_additive_attention(g, tq, tk, tv, &p, tp, tp, lens, NULL);
        heed_backward(g, heed_sum_all(g, c));
    });
    /* main terms, forward + backward (x3): conv B N C K, projection B N C da, tanh part B N da */
    double flops = 3.0 * 2 * (double)B * N * ((double)C * K + (double)C * da + 2.0 * da);
    printf("{\"bench\":\"attention_layers\",\"case\":\"location+coverage step fwd+bwd f32 B=%lld N=%lld C=%lld K=%lld "
           "da=%lld\",\"ms\":%.3f,\"gflops\":%.2f,\"ratio_vs_plain_additive\":%.2f}\n",
           (long long)B, (long long)N, (long long)C, (long long)K, (long long)da, t_loc * 1e3, flops / t_loc * 1e-9,
           t_loc / t_fused);

    /* prefix scan */
    const int64_t SB = 8, SN = 4096, d = 64, sdv = 64;
    float *sq = rand_buf(&r, SB * d, 1), *sk = rand_buf(&r, SB * SN * d, 1), *sv = rand_buf(&r, SB * SN * sdv, 1);
    float *ref = malloc((size_t)(SB * SN * sdv) * sizeof *ref);
    double t_scan, t_seq, t_rec;
    BENCH_BEST(3, t_scan, {
        heed_graph_reset(g);
        heed_attention_scan(g, heed_input(g, HEED_F32, HEED_SHAPE(SB, d), sq),
                            heed_input(g, HEED_F32, HEED_SHAPE(SB, SN, d), sk),
                            heed_input(g, HEED_F32, HEED_SHAPE(SB, SN, sdv), sv), 0, NULL);
    });
    BENCH_BEST(3, t_rec, {
        heed_graph_reset(g);
        heed_attention_recurrent(g, heed_input(g, HEED_F32, HEED_SHAPE(SB, d), sq),
                                 heed_input(g, HEED_F32, HEED_SHAPE(SB, SN, d), sk),
                                 heed_input(g, HEED_F32, HEED_SHAPE(SB, SN, sdv), sv), 0, NULL);
    });
    BENCH_BEST(3, t_seq, {
        double a[64];
        for (int64_t b = 0; b < SB; b++) {
            double m = -INFINITY, c = 0;
            for (int64_t e = 0; e < sdv; e++) a[e] = 0;
            for (int64_t i = 0; i < SN; i++) {
                double s = 0;
                for (int64_t k = 0; k < d; k++) s += (double)sq[b * d + k] * sk[(b * SN + i) * d + k];
                s /= 8;
                double mn = fmax(m, s), f = exp(m - mn), fs = exp(s - mn);
                c = c * f + fs;
                for (int64_t e = 0; e < sdv; e++) {
                    a[e] = a[e] * f + sv[(b * SN + i) * sdv + e] * fs;
                    ref[(b * SN + i) * sdv + e] = (float)(a[e] / c);
                }
                m = mn;
            }
        }
    });
    if (heed_graph_status(g) != HEED_OK) fprintf(stderr, "error: %s\n", heed_graph_error(g));
    printf(
        "{\"bench\":\"attention_layers\",\"case\":\"prefix scan fwd f32 B=%lld N=%lld d=%lld dv=%lld threads=%d\","
        "\"scan_ms\":%.3f,\"recurrent_final_only_ms\":%.3f,\"sequential_loop_ms\":%.3f,\"ratio_scan_over_loop\":%.2f}\n",
        (long long)SB, (long long)SN, (long long)d, (long long)sdv, heed_ctx_threads(ctx), t_scan * 1e3, t_rec * 1e3,
        t_seq * 1e3, t_scan / t_seq);

    free(q), free(kp), free(vals), free(prev), free(lens), free(sq), free(sk), free(sv), free(ref);
    heed_params_free(P);
    heed_graph_free(g);
    heed_ctx_free(ctx);
    return 0;
}
