/* heed_attention, flash and materialised, forward and forward+backward, B=1 H=8 d=64,
 * causal and not, against the cblas_sgemm rate measured in the same run (n = 1024, all
 * threads): ratio = attention GFLOP/s / sgemm GFLOP/s.
 *
 * The machine may be shared, so the sgemm rate is measured again right before each case
 * (best of a few 1024^3 products) and the case's ratio uses that neighbour: both see the
 * same load. The first line reports the best sgemm rate seen over the run.
 *
 * FLOPs (docs/attention.md): forward 4 B H N^2 d, backward 2.5x that, both halved for
 * causal. Memory: the graph arena's peak for one step (heed_graph_peak_bytes) minus the
 * output and its gradient ("extra_mib": everything the op keeps or uses beyond q, k, v, o
 * and their gradients; q, k, v live in a parameter store, outside the arena).
 *
 * Usage: bench_attention [max_n [max_materialised_n]]   (defaults 16384 and 4096)
 * Times are the best of a few runs (one for N >= 8192): the machine may be shared. */
#include "heed.h"
#include "bench_util.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

enum { B = 1, H = 8, D = 64 };

static double best_sgemm;

static double sgemm_rate(int reps) {
    int n = 1024;
    float *a = malloc((size_t)n * n * sizeof *a), *b = malloc((size_t)n * n * sizeof *b), *c = malloc((size_t)n * n * sizeof *c);
    for (int i = 0; i < n * n; i++) a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f;
    double t;
    BENCH_BEST(reps, t, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n));
    free(a), free(b), free(c);
    double r = 2.0 * n * n * n / t * 1e-9;
    if (r > best_sgemm) best_sgemm = r;
    return r;
}

static void one_case(heed_ctx *ctx, int n, bool causal, heed_attn_impl impl) {
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_tensor *q = heed_param(P, "q", HEED_SHAPE(B, H, n, D), heed_init_uniform(-1, 1));
    heed_tensor *k = heed_param(P, "k", HEED_SHAPE(B, H, n, D), heed_init_uniform(-1, 1));
    heed_tensor *v = heed_param(P, "v", HEED_SHAPE(B, H, n, D), heed_init_uniform(-1, 1));
    heed_graph *g = heed_graph_new(ctx);
    heed_attention_opts o = {.causal = causal, .impl = impl};
    int reps = n >= 8192 ? 1 : n >= 2048 ? 2 : 5;
    double t_fwd, t_step, peak = sgemm_rate(5);
    BENCH_BEST(reps, t_fwd, heed_graph_reset(g); heed_attention(g, q, k, v, &o));
    BENCH_BEST(reps, t_step, heed_graph_reset(g); heed_params_zero_grad(P);
               heed_backward(g, heed_sum_all(g, heed_attention(g, q, k, v, &o))));
    if (heed_graph_status(g) != HEED_OK) fprintf(stderr, "error: %s\n", heed_graph_error(g));
    /* One step on a fresh graph for the arena's peak. */
    heed_graph *g2 = heed_graph_new(ctx);
    heed_backward(g2, heed_sum_all(g2, heed_attention(g2, q, k, v, &o)));
    double io_bytes = 2.0 * B * H * n * D * sizeof(float); /* o and its gradient */
    double extra_mib = ((double)heed_graph_peak_bytes(g2) - io_bytes) / (1 << 20);
    heed_graph_free(g2);

    double fwd_flops = 4.0 * B * H * (double)n * n * D * (causal ? 0.5 : 1);
    double gf_fwd = fwd_flops / t_fwd * 1e-9, gf_step = 3.5 * fwd_flops / t_step * 1e-9;
    const char *name = impl == HEED_ATTN_FLASH ? "flash" : "materialised";
    printf("{\"bench\":\"attention\",\"case\":\"%s%s fwd\",\"n\":%d,\"seconds\":%.4f,\"gflops\":%.1f,"
           "\"sgemm_gflops\":%.1f,\"ratio\":%.3f}\n",
           name, causal ? " causal" : "", n, t_fwd, gf_fwd, peak, gf_fwd / peak);
    printf("{\"bench\":\"attention\",\"case\":\"%s%s fwd+bwd\",\"n\":%d,\"seconds\":%.4f,\"gflops\":%.1f,"
           "\"sgemm_gflops\":%.1f,\"ratio\":%.3f,\"extra_mib\":%.1f}\n",
           name, causal ? " causal" : "", n, t_step, gf_step, peak, gf_step / peak, extra_mib);
    fflush(stdout);
    heed_graph_free(g);
    heed_params_free(P);
}

int main(int argc, char **argv) {
    int max_n = argc > 1 ? atoi(argv[1]) : 16384, max_mat = argc > 2 ? atoi(argv[2]) : 4096;
    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 1});
    sgemm_rate(10);
    for (int n = 256; n <= max_n; n *= 2)
        for (int causal = 0; causal < 2; causal++) {
            one_case(ctx, n, causal, HEED_ATTN_FLASH);
            if (n <= max_mat) one_case(ctx, n, causal, HEED_ATTN_MATERIALISED);
        }
    sgemm_rate(10);
    printf("{\"bench\":\"attention\",\"case\":\"sgemm n=1024 best\",\"gflops\":%.1f,\"threads\":%d}\n", best_sgemm,
           heed_ctx_threads(ctx));
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"bench\":\"attention\",\"case\":\"process\",\"max_rss_mib\":%.1f}\n", ru.ru_maxrss / 1024.0);
    heed_ctx_free(ctx);
    return 0;
}
