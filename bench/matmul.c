/* heed_matmul forward and backward against direct cblas_sgemm calls of the same shapes,
 * in the same run. ratio = direct time / heed time (1.0 = no overhead).
 * Usage: bench_matmul [max_n]   (default 2048) */
#include "heed/core.h"
#include "heed/matmul.h"
#include "bench_util.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

static void one_case(heed_ctx *ctx, const char *name, int m, int k, int n) {
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_tensor *A = heed_param(P, "a", HEED_SHAPE(m, k), heed_init_uniform(-1, 1));
    heed_tensor *B = heed_param(P, "b", HEED_SHAPE(k, n), heed_init_uniform(-1, 1));
    heed_graph *g = heed_graph_new(ctx);
    float *C = malloc((size_t)m * n * sizeof *C), *dA = malloc((size_t)m * k * sizeof *dA),
          *dB = malloc((size_t)k * n * sizeof *dB);
    const float *a = A->data, *b = B->data;
    double flops = 2.0 * m * n * k;
    int reps = flops > 4e9 ? 3 : flops > 1e8 ? 10 : 50;

    double t_direct, t_heed, t_direct_bwd, t_heed_bwd;
    BENCH_BEST(reps, t_direct, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, C, n));
    BENCH_BEST(reps, t_heed, heed_graph_reset(g); heed_matmul(g, A, B));
    /* backward: dA = dC B^T, dB = A^T dC (the seed dC reuses C's values) */
    BENCH_BEST(reps, t_direct_bwd,
               cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, k, n, 1, C, n, b, n, 1, dA, k);
               cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, n, m, 1, a, k, C, n, 1, dB, n));
    /* a tape runs backward once: record it again each time (C is its own seed dC) */
    double t_heed_all;
    BENCH_BEST(reps, t_heed_all, heed_graph_reset(g); heed_tensor *out = heed_matmul(g, A, B);
               heed_backward_with(g, out, out));
    t_heed_bwd = t_heed_all - t_heed;
    if (heed_graph_status(g) != HEED_OK) fprintf(stderr, "error: %s\n", heed_graph_error(g));
    printf("{\"bench\":\"matmul\",\"case\":\"%s fwd\",\"m\":%d,\"k\":%d,\"n\":%d,\"gflops\":%.1f,\"sgemm_gflops\":%.1f,"
           "\"ratio\":%.3f}\n",
           name, m, k, n, flops / t_heed * 1e-9, flops / t_direct * 1e-9, t_direct / t_heed);
    printf("{\"bench\":\"matmul\",\"case\":\"%s bwd\",\"m\":%d,\"k\":%d,\"n\":%d,\"gflops\":%.1f,\"sgemm_gflops\":%.1f,"
           "\"ratio\":%.3f}\n",
           name, m, k, n, 2 * flops / t_heed_bwd * 1e-9, 2 * flops / t_direct_bwd * 1e-9, t_direct_bwd / t_heed_bwd);
    fflush(stdout);
    free(C), free(dA), free(dB);
    heed_graph_free(g);
    heed_params_free(P);
}

int main(int argc, char **argv) {
    int max_n = argc > 1 ? atoi(argv[1]) : 2048;
    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 1});
    char name[64];
    for (int n = 128; n <= max_n; n *= 2) {
        snprintf(name, sizeof name, "square n=%d", n);
        one_case(ctx, name, n, n, n);
    }
    /* transformer block shapes: tokens x d_model against projections and the FFN */
    one_case(ctx, "qkv proj 4096x512x1536", 4096, 512, 1536);
    one_case(ctx, "ffn up 4096x512x2048", 4096, 512, 2048);
    one_case(ctx, "ffn down 4096x2048x512", 4096, 2048, 512);
    heed_ctx_free(ctx);
    return 0;
}
