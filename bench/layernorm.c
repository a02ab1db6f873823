/* heed_layernorm (with gamma and beta) on f32 rows: forward and forward+backward throughput
 * against memcpy in the same run.
 *
 * GB/s counts the bytes the op must move at least: forward reads x and writes y (8 bytes
 * per element; gamma and beta are one row); backward reads x and dy and writes dx (12
 * bytes per element), so forward+backward moves 20. memcpy's GB/s counts its read and
 * write bytes the same way (copying a buffer the size of x), so ratio_vs_memcpy = op GB/s / memcpy GB/s says how
 * close the op runs to the memory system's copy speed (it can pass 1 when the rows stay
 * in cache or when threads add bandwidth that a single memcpy does not use).
 * Usage: bench_layernorm [reps]   (default 10) */
#include "heed/core.h"
#include "heed/norm.h"
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void one_case(heed_ctx *ctx, int64_t rows, int64_t cols, int reps) {
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_tensor *x = heed_param(P, "x", HEED_SHAPE(rows, cols), heed_init_uniform(-4, 4));
    heed_tensor *gamma = heed_param(P, "gamma", HEED_SHAPE(cols), heed_init_uniform(0.5, 1.5));
    heed_tensor *beta = heed_param(P, "beta", HEED_SHAPE(cols), heed_init_uniform(-0.5, 0.5));
    heed_graph *g = heed_graph_new(ctx);
    size_t bytes = (size_t)(rows * cols) * sizeof(float);
    char *src = malloc(bytes), *dst = malloc(bytes);
    memset(src, 1, bytes), memset(dst, 0, bytes);

    double t_copy, t_fwd, t_all;
    BENCH_BEST(reps, t_copy, memcpy(dst, src, bytes));
    BENCH_BEST(reps, t_fwd, heed_graph_reset(g); heed_layernorm(g, x, gamma, beta, 1e-5));
    /* a tape runs backward once: record it again each time (y is its own seed) */
    BENCH_BEST(reps, t_all, heed_graph_reset(g); heed_tensor *y = heed_layernorm(g, x, gamma, beta, 1e-5);
               heed_backward_with(g, y, y));
    double t_bwd = t_all - t_fwd;
    if (heed_graph_status(g) != HEED_OK) fprintf(stderr, "error: %s\n", heed_graph_error(g));

    double copy_gbps = 2.0 * bytes / t_copy * 1e-9;
    double fwd_gbps = 2.0 * bytes / t_fwd * 1e-9, all_gbps = 5.0 * bytes / (t_fwd + t_bwd) * 1e-9;
    printf("{\"bench\":\"layernorm\",\"case\":\"%lldx%lld fwd\",\"ms\":%.3f,\"gbps\":%.2f,\"memcpy_gbps\":%.2f,"
           "\"ratio_vs_memcpy\":%.3f,\"threads\":%d}\n",
           (long long)rows, (long long)cols, t_fwd * 1e3, fwd_gbps, copy_gbps, fwd_gbps / copy_gbps,
           heed_ctx_threads(ctx));
    printf("{\"bench\":\"layernorm\",\"case\":\"%lldx%lld fwd+bwd\",\"ms\":%.3f,\"gbps\":%.2f,\"memcpy_gbps\":%.2f,"
           "\"ratio_vs_memcpy\":%.3f,\"threads\":%d}\n",
           (long long)rows, (long long)cols, (t_fwd + t_bwd) * 1e3, all_gbps, copy_gbps, all_gbps / copy_gbps,
           heed_ctx_threads(ctx));
    fflush(stdout);
    free(src), free(dst);
    heed_graph_free(g);
    heed_params_free(P);
}

int main(int argc, char **argv) {
    /* the kernels' instruction set: HEED_ISA=avx512|avx2|scalar picks one for a per-ISA table */
    printf("{\"bench\":\"layernorm\",\"case\":\"isa\",\"isa\":\"%s\"}\n", heed_isa());
    int reps = argc > 1 ? atoi(argv[1]) : 10;
    if (reps < 1) reps = 1;
    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 1});
    static const int64_t cases[][2] = {{4096, 1024}, {16384, 64}, {1024, 4096}};
    for (int i = 0; i < 3; i++) one_case(ctx, cases[i][0], cases[i][1], reps);
    heed_ctx_free(ctx);
    return 0;
}
