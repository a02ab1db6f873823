/* LAS: milliseconds per training step (forward, backward, Adam) of the las program's
 * default model on a fixed random batch: B = 32 utterances of 300 frames of 40 bands
 * stacked by 2 (150 x 80 listener inputs), 36 output characters each. bench/las_torch.py
 * runs this and the same model in PyTorch in one run and prints the ratio. Each step is
 * timed by the wall clock and by the process's CPU clock (best of reps each): on a machine
 * loaded by other jobs the wall time mostly measures the wait for a core, the CPU time
 * (one thread) the work.
 *   build/bench/bench_las_step [reps] [threads] */
#include "bench_util.h"

#include "heed/core.h"
#include "heed/las.h"
#include "heed/optim.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5, threads = argc > 2 ? atoi(argv[2]) : 0;
    enum { B = 32, T = 150, F = 80, L = 36, V = 30 };
    if (threads > 0) omp_set_num_threads(threads); /* the BLAS follows OpenMP's count, not the ctx's */
    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 1, .threads = threads});
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_las m;
    heed_las_config cfg = {.input_dim = F,
                           .listener_hidden = 64,
                           .pyramid_layers = 2,
                           .speller_hidden = 128,
                           .embed_dim = 32,
                           .attn_dim = 64,
                           .loc_channels = 8,
                           .loc_kernel = 15,
                           .vocab = V,
                           .dropout = 0.1};
    if (heed_las_declare(&m, P, &cfg) != HEED_OK) return fprintf(stderr, "%s\n", heed_ctx_error(ctx)), 1;
    heed_optimizer *opt = heed_adam(P, NULL);
    heed_graph *g = heed_graph_new(ctx);
    float *x = malloc(sizeof(float) * B * T * F);
    int64_t lengths[B], targets[B * L];
    heed_rng r = heed_rng_make(3, 3);
    for (int i = 0; i < B * T * F; i++) x[i] = (float)heed_rng_normal(&r);
    for (int b = 0; b < B; b++) lengths[b] = T;
    for (int i = 0; i < B * L; i++) targets[i] = i % L == L - 1 ? 1 : 2 + (int64_t)heed_rng_below(&r, V - 2);
    double secs = 1e30, cpu = 1e30, loss = 0;
    for (int rep = -1; rep < reps; rep++) { /* rep -1 warms up */
        double t0 = bench_now(), c0 = cpu_now();
        heed_graph_reset(g);
        heed_params_zero_grad(P);
        heed_tensor *in = heed_input(g, HEED_F32, HEED_SHAPE(B, T, F), x);
        heed_tensor *l = heed_las_loss(g, &m, in, lengths, targets, L,
                                       &(heed_las_loss_opts){.bos = 0, .label_smoothing = 0.1}, NULL);
        if (!l || heed_backward(g, l) != HEED_OK) return fprintf(stderr, "%s\n", heed_graph_error(g)), 1;
        heed_clip_grad_norm(P, 1.0, NULL);
        heed_optimizer_step(opt);
        loss = heed_get(l, 0);
        if (rep >= 0) secs = fmin(secs, bench_now() - t0), cpu = fmin(cpu, cpu_now() - c0);
    }
    printf(
        "{\"bench\":\"las_step\",\"case\":\"B=%d T=%d F=%d L=%d listener 64x2 pyramid 2 speller 128 attn 64 loc 8x15\","
        "\"threads\":%d,\"parameters\":%lld,\"step_ms\":%.2f,\"step_cpu_ms\":%.2f,\"loss\":%.4f}\n",
        B, T, F, L, heed_ctx_threads(ctx), (long long)heed_params_numel(P), secs * 1e3, cpu * 1e3, loss);
    free(x);
    heed_graph_free(g);
    heed_optimizer_free(opt);
    heed_params_free(P);
    heed_ctx_free(ctx);
    return 0;
}
