/* LSTM and GRU layers, forward + backward, against two references measured in the same
 * run: the sgemm peak (cblas_sgemm, n = 1024, square, every thread; measured again next to
 * each case) and the same GEMMs the layer does (input projection, T recurrent products,
 * dX, dW_ih, T dh products, dW_hh) issued as direct cblas_sgemm calls with nothing in
 * between (the per-step ones single-threaded, see gemms_only).
 *   gflops     GEMM flops of forward + backward / heed's time: 6 T B G H (I + H) per
 *              direction (G = 4 gates LSTM, 3 GRU); gate math is not counted
 *   frac_peak  gflops / sgemm peak;  ratio_gemm_only  = direct-GEMM time / heed time
 * Usage: bench_rnn [reps] [--busy N]   (default 3; best of reps after a warm-up)
 * --busy N: contention mode (bench_util.h): the T=100 LSTM and BLSTM fwd+bwd timed quiet,
 * then while N child processes busy-loop; prints both and their ratio. */
#include "heed/core.h"
#include "heed/rnn.h"
#include "bench_util.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double sgemm_peak(int reps) {
    int n = 1024;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    for (int i = 0; i < n * n; i++) a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f;
    double t;
    BENCH_BEST(reps, t, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n));
    free(a), free(b), free(c);
    return 2.0 * n * n * n / t * 1e-9;
}

/* The GEMMs of one direction of one layer, forward and backward, as plain cblas calls:
 * the all-steps ones on every thread, the per-step ones on one (threading those small
 * products costs more than it gains). */
static void gemms_only(int64_t T, int64_t B, int64_t In, int64_t H, int G, float *x, float *w_ih, float *w_hh,
                       float *gates, float *hs, float *dx, float *dw_ih, float *dw_hh) {
    int GH = G * (int)H, TB = (int)(T * B), nt = omp_get_max_threads();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, TB, GH, (int)In, 1, x, (int)In, w_ih, (int)In, 0, gates, GH);
    omp_set_num_threads(1);
    for (int64_t t = 1; t < T; t++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, GH, (int)H, 1, hs + (t - 1) * B * H, (int)H, w_hh,
                    (int)H, 1, gates + t * B * GH, GH);
    for (int64_t t = T - 1; t >= 1; t--)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)H, GH, 1, gates + t * B * GH, GH, w_hh,
                    (int)H, 1, hs + (t - 1) * B * H, (int)H);
    omp_set_num_threads(nt);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, TB, (int)In, GH, 1, gates, GH, w_ih, (int)In, 0, dx,
                (int)In);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, GH, (int)In, TB, 1, gates, GH, x, (int)In, 1, dw_ih, (int)In);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, GH, (int)H, TB - (int)B, 1, gates + B * GH, GH, hs, (int)H, 1,
                dw_hh, (int)H);
}

typedef struct {
    const char *name;
    heed_rnn_kind kind;
    int64_t T, B, In, H;
    bool bidirectional, pyramid;
} bench_case;

/* Best forward and forward+backward seconds of the case's layer (reps runs each). */
static void time_layer(heed_ctx *ctx, const bench_case *c, int reps, double *t_fwd, double *t_all) {
    int D = c->bidirectional ? 2 : 1;
    int64_t Tin = c->T, T = c->pyramid ? (c->T + 1) / 2 : c->T, In = c->pyramid ? 2 * c->In : c->In, B = c->B, H = c->H;
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_rnn rnn;
    heed_rnn_opts o = {.kind = c->kind, .input_size = In, .hidden_size = H, .bidirectional = c->bidirectional};
    if (heed_rnn_declare(&rnn, P, "rnn", &o) != HEED_OK) {
        fprintf(stderr, "%s\n", heed_ctx_error(ctx));
        exit(1);
    }
    heed_graph *g = heed_graph_new(ctx);
    size_t nx = (size_t)(Tin * B * c->In), ny = (size_t)(T * B * D * H);
    float *xd = malloc(nx * sizeof *xd), *seed = malloc(ny * sizeof *seed);
    for (size_t i = 0; i < nx; i++) xd[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    for (size_t i = 0; i < ny; i++) seed[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
    int64_t *len = malloc((size_t)B * sizeof *len), out_len[1024];
    for (int64_t b = 0; b < B; b++) len[b] = Tin;

    heed_tensor *y = NULL;
#define FORWARD()                                                                                                      \
    do {                                                                                                               \
        heed_graph_reset(g);                                                                                           \
        heed_tensor *x = heed_requires_grad(heed_input(g, HEED_F32, HEED_SHAPE(Tin, B, c->In), xd));                   \
        if (c->pyramid) y = heed_pyramid_lstm(g, &rnn, x, len, out_len, NULL, NULL);                                   \
        else if (c->kind == HEED_RNN_LSTM) y = heed_lstm(g, &rnn, x, NULL, NULL, NULL, NULL, NULL);                    \
        else y = heed_gru(g, &rnn, x, NULL, NULL, NULL);                                                               \
    } while (0)
    BENCH_BEST(reps, *t_fwd, FORWARD());
    BENCH_BEST(reps, *t_all, FORWARD();
               heed_backward_with(g, y, heed_input(g, HEED_F32, HEED_SHAPE(T, B, D * H), seed)));
#undef FORWARD
    if (heed_graph_status(g) != HEED_OK) {
        fprintf(stderr, "%s: %s\n", c->name, heed_graph_error(g));
        exit(1);
    }
    free(xd), free(seed), free(len);
    heed_graph_free(g);
    heed_params_free(P);
}

static void run_case(heed_ctx *ctx, const bench_case *c, int reps) {
    int G = c->kind == HEED_RNN_LSTM ? 4 : 3, D = c->bidirectional ? 2 : 1;
    int64_t T = c->pyramid ? (c->T + 1) / 2 : c->T, In = c->pyramid ? 2 * c->In : c->In, B = c->B, H = c->H;
    double t_fwd, t_all;
    time_layer(ctx, c, reps, &t_fwd, &t_all);

    /* the same GEMMs, direct */
    size_t GH = (size_t)(G * H);
    float *x = calloc((size_t)(T * B * In), sizeof *x), *w_ih = calloc(GH * (size_t)In, sizeof *w_ih);
    float *w_hh = calloc(GH * (size_t)H, sizeof *w_hh), *gates = calloc((size_t)(T * B) * GH, sizeof *gates);
    float *hs = calloc((size_t)(T * B * H), sizeof *hs), *dx = calloc((size_t)(T * B * In), sizeof *dx);
    float *dw_ih = calloc(GH * (size_t)In, sizeof *dw_ih), *dw_hh = calloc(GH * (size_t)H, sizeof *dw_hh);
    double t_gemm;
    BENCH_BEST(reps < 2 ? reps : 2, t_gemm,
               for (int d = 0; d < D; d++) gemms_only(T, B, In, H, G, x, w_ih, w_hh, gates, hs, dx, dw_ih, dw_hh));

    double peak = sgemm_peak(4 * reps); /* measured next to each case: the machine is shared */
    double flops = 6.0 * (double)(T * B) * (double)GH * (double)(In + H) * D;
    double gf = flops / t_all * 1e-9;
    printf("{\"bench\":\"rnn\",\"case\":\"%s\",\"T\":%lld,\"B\":%lld,\"I\":%lld,\"H\":%lld,\"dirs\":%d,"
           "\"fwd_ms\":%.2f,\"fwd_bwd_ms\":%.2f,\"gflops\":%.1f,\"sgemm_peak_gflops\":%.1f,\"frac_peak\":%.3f,"
           "\"gemm_only_ms\":%.2f,\"ratio_gemm_only\":%.3f}\n",
           c->name, (long long)T, (long long)B, (long long)In, (long long)H, D, t_fwd * 1e3, t_all * 1e3, gf, peak,
           gf / peak, t_gemm * 1e3, t_gemm / t_all);
    fflush(stdout);
    free(x), free(w_ih), free(w_hh), free(gates), free(hs), free(dx), free(dw_ih), free(dw_hh);
}

typedef struct {
    heed_ctx *ctx;
    const bench_case *c;
    int reps;
} layer_job;

static double layer_fwd_bwd(void *arg) {
    const layer_job *j = arg;
    double t_fwd, t_all;
    time_layer(j->ctx, j->c, j->reps, &t_fwd, &t_all);
    return t_all;
}

int main(int argc, char **argv) {
    /* the kernels' instruction set: HEED_ISA=avx512|avx2|scalar picks one for a per-ISA table */
    printf("{\"bench\":\"rnn\",\"case\":\"isa\",\"isa\":\"%s\"}\n", heed_isa());
    int reps = 3, busy = 0;
    for (int i = 1; i < argc; i++) {
        int n = bench_busy_arg(argc, argv, &i);
        if (n > 0) busy = n;
        else reps = atoi(argv[i]);
    }
    if (reps < 1) reps = 1;
    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 1});
    /* PyTorch 1.13's figure for the first two (DESIGN.md): 407 ms LSTM, 405 ms GRU, 25 GFLOP/s */
    const bench_case cases[] = {
        {"lstm T=100 B=32 I=H=256", HEED_RNN_LSTM, 100, 32, 256, 256, false, false},
        {"gru T=100 B=32 I=H=256", HEED_RNN_GRU, 100, 32, 256, 256, false, false},
        {"blstm T=100 B=32 I=H=256", HEED_RNN_LSTM, 100, 32, 256, 256, true, false},
        /* the LAS listener (Chan et al. 2016): a BLSTM on 40 log-mel features, then three
         * pyramidal BLSTMs (frames paired: input 2 x 512), 256 units per direction;
         * 2 s of audio (200 frames), batch 16 */
        {"las listener blstm T=200 I=40", HEED_RNN_LSTM, 200, 16, 40, 256, true, false},
        {"las listener pblstm1 T=200->100", HEED_RNN_LSTM, 200, 16, 512, 256, true, true},
        {"las listener pblstm2 T=100->50", HEED_RNN_LSTM, 100, 16, 512, 256, true, true},
        {"las listener pblstm3 T=50->25", HEED_RNN_LSTM, 50, 16, 512, 256, true, true},
    };
    if (busy) { /* contention mode: the first LSTM and the BLSTM, fwd+bwd, quiet and busy */
        for (size_t i = 0; i < 3; i += 2) {
            layer_job j = {ctx, &cases[i], reps};
            printf("{\"bench\":\"rnn\",\"case\":\"%s fwd+bwd, contention\",\"threads\":%d,", cases[i].name,
                   heed_ctx_threads(ctx));
            bool ok = bench_contention(busy, layer_fwd_bwd, &j);
            printf("}\n");
            if (!ok) return 1;
        }
    } else {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(ctx, &cases[i], reps);
    }
    heed_ctx_free(ctx);
    return 0;
}
