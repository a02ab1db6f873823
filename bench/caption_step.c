/* Captioning: milliseconds per training step (forward, backward, clipping, Adam) of the
 * caption program's default decoder on a fixed random batch of frozen-encoder annotations,
 * as the program trains it: B = 64 scenes of 6x6 = 36 annotation vectors of 64, captions of
 * 16 steps (15 words and <end>), soft attention, lambda 0.05, dropout 0.3. Also one
 * pretraining step of the encoder (B = 64 single objects of 32x32). bench/caption_torch.py
 * runs this and the same model in PyTorch in one run and prints the ratios.
 *   build/bench/bench_caption_step [reps] [threads] */
#include "bench_util.h"

#include "heed/caption.h"
#include "heed/core.h"
#include "heed/loss.h"
#include "heed/optim.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5, threads = argc > 2 ? atoi(argv[2]) : 0;
    if (threads > 0) omp_set_num_threads(threads); /* the BLAS follows OpenMP's count, not the ctx's */
    enum { B = 64, N = 36, D = 64, L = 16, V = 22, S = 32 };
    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 1, .threads = threads});
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_caption m;
    heed_caption_config cfg = {.in_channels = 1,
                               .channels = {16, 32, D},
                               .classes = 10,
                               .embed_dim = 64,
                               .hidden = 128,
                               .attn_dim = 64,
                               .vocab = V,
                               .dropout = 0.3};
    if (heed_caption_declare(&m, P, &cfg) != HEED_OK) return fprintf(stderr, "%s\n", heed_ctx_error(ctx)), 1;
    heed_optimizer *opt = heed_adam(P, NULL);
    heed_graph *g = heed_graph_new(ctx);
    float *a = malloc(sizeof(float) * B * N * D), *img = malloc(sizeof(float) * B * S * S);
    int64_t targets[B * L], labels[B];
    heed_rng r = heed_rng_make(3, 3);
    for (int i = 0; i < B * N * D; i++) a[i] = (float)heed_rng_uniform(&r);
    for (int i = 0; i < B * S * S; i++) img[i] = (float)heed_rng_uniform(&r);
    for (int i = 0; i < B * L; i++) targets[i] = i % L == L - 1 ? 2 : 4 + (int64_t)heed_rng_below(&r, V - 4);
    for (int i = 0; i < B; i++) labels[i] = (int64_t)heed_rng_below(&r, 10);
    double secs, pre_secs, loss = 0;
    heed_caption_freeze_encoder(&m, true);
    BENCH_BEST(reps, secs, {
        heed_graph_reset(g);
        heed_params_zero_grad(P);
        heed_tensor *in = heed_input(g, HEED_F32, HEED_SHAPE(B, N, D), a);
        heed_tensor *l =
            heed_caption_loss(g, &m, in, targets, L, &(heed_caption_loss_opts){.bos = 1, .lambda = 0.05}, NULL, NULL);
        if (!l || heed_backward(g, l) != HEED_OK) return fprintf(stderr, "%s\n", heed_graph_error(g)), 1;
        heed_clip_grad_norm(P, 5.0, NULL);
        heed_optimizer_step(opt);
        loss = heed_get(l, 0);
    });
    heed_caption_freeze_encoder(&m, false);
    BENCH_BEST(reps, pre_secs, {
        heed_graph_reset(g);
        heed_params_zero_grad(P);
        heed_tensor *in = heed_input(g, HEED_F32, HEED_SHAPE(B, 1, S, S), img);
        heed_tensor *l = heed_cross_entropy(g, heed_caption_classify(g, &m, in), labels, NULL);
        if (!l || heed_backward(g, l) != HEED_OK) return fprintf(stderr, "%s\n", heed_graph_error(g)), 1;
        heed_clip_grad_norm(P, 5.0, NULL);
        heed_optimizer_step(opt);
    });
    printf(
        "{\"bench\":\"caption_step\",\"case\":\"B=%d N=%d D=%d L=%d LSTM 128 embed 64 attn 64; pretrain B=%d 32x32\","
        "\"threads\":%d,\"parameters\":%lld,\"step_ms\":%.2f,\"pretrain_step_ms\":%.2f,\"loss\":%.4f}\n",
        B, N, D, L, B, heed_ctx_threads(ctx), (long long)heed_params_numel(P), secs * 1e3, pre_secs * 1e3, loss);
    free(a), free(img);
    heed_graph_free(g);
    heed_optimizer_free(opt);
    heed_params_free(P);
    heed_ctx_free(ctx);
    return 0;
}
