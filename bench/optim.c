/* Optimizer step throughput over a large f32 store, as memory bandwidth: bytes read and
 * written per step (Adam: p, g, m, v read; p, m, v written = 7 streams of 4 bytes) over
 * the time, against memcpy's bandwidth (read + write) measured in the same run.
 * Usage: bench_optim [elements, default 8M]; best of 10 after a warm-up. */
#include "heed/core.h"
#include "heed/optim.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

int main(int argc, char **argv) {
    /* the kernels' instruction set: HEED_ISA=avx512|avx2|scalar picks one for a per-ISA table */
    printf("{\"bench\":\"optim\",\"case\":\"isa\",\"isa\":\"%s\"}\n", heed_isa());
    int64_t n = argc > 1 ? atoll(argv[1]) : 8 << 20;
    heed_ctx *ctx = heed_ctx_new(NULL);
    heed_params *P = heed_params_new(ctx, HEED_F32);
    /* a transformer-like mix: big matrices and small vectors */
    int64_t done = 0;
    char name[64];
    for (int64_t l = 0; done < n; l++) {
        snprintf(name, sizeof name, "l%lld.w", (long long)l);
        heed_param(P, name, HEED_SHAPE(1024, 1024), heed_init_normal(0, 0.02));
        snprintf(name, sizeof name, "l%lld.b", (long long)l);
        heed_param(P, name, HEED_SHAPE(1024), heed_init_zeros());
        done += 1024 * 1025;
    }
    int64_t total = heed_params_padded_numel(P);
    float *g = heed_params_grads(P);
    for (int64_t i = 0; i < total; i++) g[i] = (float)((i % 7) - 3) * 1e-3f;
    size_t bytes = (size_t)total * sizeof(float);
    char *src = malloc(bytes), *dst = malloc(bytes);
    memset(src, 1, bytes);
    memset(dst, 0, bytes);
    int reps = 10;
    double t_copy;
    BENCH_BEST(reps, t_copy, memcpy(dst, src, bytes));
    double bw_copy = 2.0 * (double)bytes / t_copy / 1e9;
    printf("{\"bench\":\"optim\",\"case\":\"memcpy\",\"elements\":%lld,\"ms\":%.3f,\"gbps\":%.2f,\"ratio\":1}\n",
           (long long)total, 1e3 * t_copy, bw_copy);
    struct {
        const char *name;
        heed_optimizer *o;
        int streams;
    } cases[] = {
        {"sgd", heed_sgd(P, &(heed_sgd_opts){.lr = 1e-3}), 3},
        {"sgd_momentum", heed_sgd(P, &(heed_sgd_opts){.lr = 1e-3, .momentum = 0.9, .weight_decay = 1e-4}), 5},
        {"adamw", heed_adamw(P, NULL), 7},
        {"adam_amsgrad",
         heed_adam(P, &(heed_adam_opts){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .amsgrad = true}), 9},
        {"rmsprop_centered",
         heed_rmsprop(P, &(heed_rmsprop_opts){.lr = 1e-3, .alpha = 0.99, .eps = 1e-8, .centered = true}), 7},
        {"adagrad", heed_adagrad(P, NULL), 5},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        heed_optimizer_add_group(cases[c].o, heed_param_is_vector, NULL, 1, 0, NULL);
        double t;
        BENCH_BEST(reps, t, heed_optimizer_step(cases[c].o));
        double bw = cases[c].streams * (double)bytes / t / 1e9;
        printf(
            "{\"bench\":\"optim\",\"case\":\"%s\",\"elements\":%lld,\"threads\":%d,\"ms\":%.3f,\"gbps\":%.2f,\"ratio\":%.3f}\n",
            cases[c].name, (long long)total, omp_get_max_threads(), 1e3 * t, bw, bw / bw_copy);
        heed_optimizer_free(cases[c].o);
    }
    double t_norm, t_fin;
    BENCH_BEST(reps, t_norm, heed_clip_grad_norm(P, 1e9, NULL));
    double bw = (double)bytes / t_norm / 1e9;
    printf("{\"bench\":\"optim\",\"case\":\"grad_norm\",\"elements\":%lld,\"ms\":%.3f,\"gbps\":%.2f,\"ratio\":%.3f}\n",
           (long long)total, 1e3 * t_norm, bw, bw / bw_copy);
    BENCH_BEST(reps, t_fin, heed_params_grads_finite(P));
    bw = (double)bytes / t_fin / 1e9;
    printf(
        "{\"bench\":\"optim\",\"case\":\"grads_finite\",\"elements\":%lld,\"ms\":%.3f,\"gbps\":%.2f,\"ratio\":%.3f}\n",
        (long long)total, 1e3 * t_fin, bw, bw / bw_copy);
    free(src);
    free(dst);
    heed_params_free(P);
    heed_ctx_free(ctx);
    return 0;
}
