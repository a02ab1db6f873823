/* heed_conv2d forward + backward (dx, dw, dbias) on the caption encoder's shapes (issue #14:
 * B = 32 scenes of 96x96, 3x3 kernels, padding 1), against two references measured in the
 * same run:
 *   gemm_only   the im2col GEMMs of the same convolution (forward w col, backward dY col^T
 *               and w^T dY, per image) issued as direct cblas_sgemm calls with nothing in
 *               between, split over threads by image as heed splits them
 *               -> ratio_gemm_only = GEMM time / heed time (1.0: im2col, col2im and the
 *               bias cost nothing)
 *   --pytorch   torch.nn.functional.conv2d forward + backward on the same shapes
 *               (bench/conv_torch.py under /usr/bin/python3 or $PYTHON, same thread count)
 *               -> ratio_vs_pytorch = PyTorch time / heed time
 * gflops counts the GEMM flops, 6 N O K P (K = C kh kw, P = Ho Wo).
 * Usage: bench_conv [--reps N] [--small] [--pytorch]   (--small: tiny shapes, to check it runs) */
#include "heed/conv.h"
#include "heed/core.h"
#include "bench_util.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef HEED_SOURCE_DIR
#define HEED_SOURCE_DIR "."
#endif

typedef struct {
    const char *name;
    int N, C, O, H, W;
} conv_case;

/* The GEMMs heed does for a 3x3 convolution with padding 1 (Ho = H, Wo = W). */
static void gemms_only(const conv_case *c, const float *w, float *col, float *y, float *dy, float *dw_part, float *dcol,
                       int nt) {
    int K = c->C * 9, P = c->H * c->W, O = c->O;
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num();
        float *cl = col + (size_t)t * K * P, *dc = dcol + (size_t)t * K * P, *dwt = dw_part + (size_t)t * O * K;
#pragma omp for schedule(static)
        for (int n = 0; n < c->N; n++) {
            float *yn = y + (size_t)n * O * P, *dyn = dy + (size_t)n * O * P;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, O, P, K, 1, w, K, cl, P, 1, yn, P);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, O, K, P, 1, dyn, P, cl, P, 1, dwt, K);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, O, 1, w, K, dyn, P, 0, dc, P);
        }
    }
}

/* forward + backward of bench/conv_torch.py on the same case: ms, or NaN if it cannot run. */
static double pytorch_ms(const conv_case *c, int reps, int threads) {
    const char *py = getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s/bench/conv_torch.py %d %d %d %d %d %d %d", py, HEED_SOURCE_DIR, c->N, c->C, c->O,
             c->H, c->W, reps, threads);
    return bench_command_number(cmd, "fwd_bwd_ms");
}

static void run_case(heed_ctx *ctx, const conv_case *c, int reps, bool pytorch) {
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_tensor *w = heed_param(P, "w", HEED_SHAPE(c->O, c->C, 3, 3), heed_init_kaiming_uniform(sqrt(5.0)));
    heed_tensor *b = heed_param(P, "b", HEED_SHAPE(c->O), heed_init_uniform(-0.1, 0.1));
    heed_graph *g = heed_graph_new(ctx);
    size_t nx = (size_t)c->N * c->C * c->H * c->W, ny = (size_t)c->N * c->O * c->H * c->W;
    float *xd = malloc(nx * sizeof *xd), *seed = malloc(ny * sizeof *seed);
    for (size_t i = 0; i < nx; i++) xd[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    for (size_t i = 0; i < ny; i++) seed[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
    heed_conv2d_opts o = {.padding = {1, 1}};
    heed_tensor *y = NULL;
    double t_fwd, t_all;
    BENCH_BEST(reps, t_fwd, heed_graph_reset(g);
               y = heed_conv2d(g, heed_requires_grad(heed_input(g, HEED_F32, HEED_SHAPE(c->N, c->C, c->H, c->W), xd)),
                               w, b, &o));
    BENCH_BEST(reps, t_all, heed_graph_reset(g); heed_params_zero_grad(P);
               y = heed_conv2d(g, heed_requires_grad(heed_input(g, HEED_F32, HEED_SHAPE(c->N, c->C, c->H, c->W), xd)),
                               w, b, &o);
               heed_backward_with(g, y, heed_input(g, HEED_F32, heed_tensor_shape(y), seed)));
    if (heed_graph_status(g) != HEED_OK) {
        fprintf(stderr, "%s: %s\n", c->name, heed_graph_error(g));
        exit(1);
    }
    int nt = omp_get_max_threads(), K = c->C * 9, Pn = c->H * c->W;
    float *col = calloc((size_t)nt * K * Pn, sizeof *col), *dcol = calloc((size_t)nt * K * Pn, sizeof *dcol);
    float *yy = calloc(ny, sizeof *yy), *dw = calloc((size_t)nt * c->O * K, sizeof *dw);
    double t_gemm;
    BENCH_BEST(reps, t_gemm, gemms_only(c, w->data, col, yy, seed, dw, dcol, nt));
    double torch_ms = pytorch ? pytorch_ms(c, reps, nt) : NAN;
    double flops = 6.0 * c->N * c->O * (double)K * Pn;
    printf("{\"bench\":\"conv2d\",\"case\":\"%s\",\"N\":%d,\"C\":%d,\"O\":%d,\"H\":%d,\"W\":%d,\"threads\":%d,"
           "\"fwd_ms\":%.2f,\"fwd_bwd_ms\":%.2f,\"gflops\":%.1f,\"gemm_only_ms\":%.2f,\"ratio_gemm_only\":%.3f",
           c->name, c->N, c->C, c->O, c->H, c->W, nt, t_fwd * 1e3, t_all * 1e3, flops / t_all * 1e-9, t_gemm * 1e3,
           t_gemm / t_all);
    if (pytorch && !isnan(torch_ms))
        printf(",\"pytorch_fwd_bwd_ms\":%.2f,\"ratio_vs_pytorch\":%.2f", torch_ms, torch_ms / (t_all * 1e3));
    else if (pytorch) printf(",\"pytorch_fwd_bwd_ms\":null");
    printf("}\n");
    fflush(stdout);
    free(xd), free(seed), free(col), free(dcol), free(yy), free(dw);
    heed_graph_free(g);
    heed_params_free(P);
}

int main(int argc, char **argv) {
    int reps = 3;
    bool small = false, pytorch = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--small")) small = true;
        else if (!strcmp(argv[i], "--pytorch")) pytorch = true;
        else {
            fprintf(stderr, "usage: %s [--reps N] [--small] [--pytorch]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 1});
    /* the encoder: 1 -> 32 channels at 96x96, pool, 32 -> 64 at 48x48, pool, 64 -> 128 at 24x24 */
    const conv_case full[] = {
        {"enc1 B=32 1->32 96x96", 32, 1, 32, 96, 96},
        {"enc2 B=32 32->64 48x48", 32, 32, 64, 48, 48},
        {"enc3 B=32 64->128 24x24", 32, 64, 128, 24, 24},
    };
    const conv_case tiny[] = {{"small B=2 1->4 12x12", 2, 1, 4, 12, 12}, {"small B=2 4->8 6x6", 2, 4, 8, 6, 6}};
    const conv_case *cases = small ? tiny : full;
    int n = small ? 2 : 3;
    for (int i = 0; i < n; i++) run_case(ctx, &cases[i], reps, pytorch);
    heed_ctx_free(ctx);
    return 0;
}
