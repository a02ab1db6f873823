/* heed_attention, flash and materialised, forward and forward+backward, B=1 H=8 d=64,
 * causal and not, against cblas_sgemm (n = 1024, all threads) measured in the same run:
 * ratio = attention GFLOP/s / sgemm GFLOP/s.
 *
 * The machine may be shared, so the two are measured the same way: batches of attention
 * runs alternate with batches of sgemm calls of about the same duration (measure()); the
 * ratio divides the best attention batch rate by the best sgemm batch rate of the same
 * case, so both see the same load and a long run is not compared with a lucky 10 ms
 * burst. The last line gives the best single sgemm seen.
 *
 * FLOPs (docs/attention.md): forward 4 B H N^2 d, backward 2.5x that, both halved for
 * causal; the local-attention case (window w) counts the visible pairs, 4 B H pairs d.
 * Memory: the graph arena's peak for one step (heed_graph_peak_bytes) minus the
 * output and its gradient ("extra_mib": everything the op keeps or uses beyond q, k, v, o
 * and their gradients; q, k, v live in a parameter store, outside the arena).
 *
 * Usage: bench_attention [max_n [max_materialised_n [cpu|wall [min_n]]]]
 *        (defaults 16384, 4096, wall, 256)
 *        bench_attention --busy N [n]   contention mode (bench_util.h): flash fwd+bwd at n
 *        (default 1024), causal and not, timed quiet and then while N child processes
 *        busy-loop; prints both and their ratio
 * "cpu" times with the process CPU clock instead of the wall clock: with
 * OMP_NUM_THREADS=1 that measures the kernels' efficiency undisturbed by other processes
 * on a shared machine (with more threads it would count spin-waits). */
#include "heed/attention.h"
#include "heed/core.h"
#include "heed/reduce.h"
#include "bench_util.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

enum { B = 1, H = 8, D = 64, SG = 1024 };

static float *sa, *sb, *sc;
static bool cpu_clock;

static double now(void) {
    if (!cpu_clock) return bench_now();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double sgemm_one = 1e30; /* best single sgemm time */

static double sgemm_batch(int count) {
    double t0 = now();
    for (int i = 0; i < count; i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, SG, SG, SG, 1, sa, SG, sb, SG, 0, sc, SG);
    double t = now() - t0;
    if (t / count < sgemm_one) sgemm_one = t / count;
    return 2.0 * SG * SG * SG * count / t * 1e-9;
}

typedef struct {
    heed_graph *g;
    heed_params *P;
    heed_tensor *q, *k, *v;
    heed_attention_opts o;
} runner;

static double run_once(runner *r, bool step) {
    double t0 = now();
    heed_graph_reset(r->g);
    heed_tensor *y = heed_attention(r->g, r->q, r->k, r->v, &r->o, NULL);
    if (step) {
        heed_params_zero_grad(r->P);
        heed_backward(r->g, heed_sum_all(r->g, y));
    }
    return now() - t0;
}

/* Best time per run over reps batches of attention runs, each batch preceded by a batch
 * of sgemm calls; both batches last about max(one sgemm, one attention run), capped at
 * 3 s for sgemm, so both rates are averages over windows of the same length. */
static void measure(runner *r, bool step, int reps, double *t_best, double *sgemm_best) {
    double est = run_once(r, step);
    double span = est > sgemm_one ? est : sgemm_one;
    int n_sgemm = (int)((span < 3 ? span : 3) / sgemm_one + 0.5), n_att = (int)(span / est + 0.5);
    if (n_sgemm < 1) n_sgemm = 1;
    if (n_att < 1) n_att = 1;
    *t_best = 1e30, *sgemm_best = 0;
    for (int i = 0; i < reps; i++) {
        double rate = sgemm_batch(n_sgemm), t = 0;
        for (int a = 0; a < n_att; a++) t += run_once(r, step);
        if (rate > *sgemm_best) *sgemm_best = rate;
        if (t / n_att < *t_best) *t_best = t / n_att;
    }
}

static void one_case(heed_ctx *ctx, int n, bool causal, int64_t window, heed_attn_impl impl) {
    runner r = {.P = heed_params_new(ctx, HEED_F32), .o = {.causal = causal, .window = window, .impl = impl}};
    r.q = heed_param(r.P, "q", HEED_SHAPE(B, H, n, D), heed_init_uniform(-1, 1));
    r.k = heed_param(r.P, "k", HEED_SHAPE(B, H, n, D), heed_init_uniform(-1, 1));
    r.v = heed_param(r.P, "v", HEED_SHAPE(B, H, n, D), heed_init_uniform(-1, 1));
    r.g = heed_graph_new(ctx);
    int reps = n >= 8192 ? 1 : n >= 2048 ? 3 : 5;
    double t_fwd, t_step, sg_fwd, sg_step;
    measure(&r, false, reps, &t_fwd, &sg_fwd);
    measure(&r, true, reps, &t_step, &sg_step);
    if (heed_graph_status(r.g) != HEED_OK) fprintf(stderr, "error: %s\n", heed_graph_error(r.g));
    /* One step on a fresh graph for the arena's peak. */
    heed_graph *g2 = heed_graph_new(ctx);
    heed_backward(g2, heed_sum_all(g2, heed_attention(g2, r.q, r.k, r.v, &r.o, NULL)));
    double io_bytes = 2.0 * B * H * n * D * sizeof(float); /* o and its gradient */
    double extra_mib = ((double)heed_graph_peak_bytes(g2) - io_bytes) / (1 << 20);
    heed_graph_free(g2);

    double pairs = (double)n * n * (causal ? 0.5 : 1);
    if (window > 0) {
        pairs = 0;
        for (int64_t i = 0; i < n; i++)
            pairs += (double)((i + window < n ? i + window : n) - (i - window + 1 > 0 ? i - window + 1 : 0));
    }
    double fwd_flops = 4.0 * B * H * pairs * D;
    double gf_fwd = fwd_flops / t_fwd * 1e-9, gf_step = 3.5 * fwd_flops / t_step * 1e-9;
    char name[64];
    snprintf(name, sizeof name, "%s%s", impl == HEED_ATTN_FLASH ? "flash" : "materialised",
             window ? " window=256" : "");
    printf("{\"bench\":\"attention\",\"case\":\"%s%s fwd\",\"n\":%d,\"seconds\":%.4f,\"gflops\":%.1f,"
           "\"sgemm_gflops\":%.1f,\"ratio\":%.3f}\n",
           name, causal ? " causal" : "", n, t_fwd, gf_fwd, sg_fwd, gf_fwd / sg_fwd);
    printf("{\"bench\":\"attention\",\"case\":\"%s%s fwd+bwd\",\"n\":%d,\"seconds\":%.4f,\"gflops\":%.1f,"
           "\"sgemm_gflops\":%.1f,\"ratio\":%.3f,\"extra_mib\":%.1f}\n",
           name, causal ? " causal" : "", n, t_step, gf_step, sg_step, gf_step / sg_step, extra_mib);
    fflush(stdout);
    heed_graph_free(r.g);
    heed_params_free(r.P);
}

typedef struct {
    runner r;
    int reps;
} step_job;

static double best_step(void *arg) {
    step_job *j = arg;
    double best = 1e30;
    run_once(&j->r, true); /* warm-up */
    for (int i = 0; i < j->reps; i++) {
        double t = run_once(&j->r, true);
        best = t < best ? t : best;
    }
    return best;
}

/* Contention mode: flash fwd+bwd at n, causal and not, quiet and busy. */
static int contention(heed_ctx *ctx, int busy, int n) {
    for (int causal = 0; causal < 2; causal++) {
        step_job j = {.r = {.P = heed_params_new(ctx, HEED_F32), .o = {.causal = causal, .impl = HEED_ATTN_FLASH}},
                      .reps = 5};
        j.r.q = heed_param(j.r.P, "q", HEED_SHAPE(B, H, n, D), heed_init_uniform(-1, 1));
        j.r.k = heed_param(j.r.P, "k", HEED_SHAPE(B, H, n, D), heed_init_uniform(-1, 1));
        j.r.v = heed_param(j.r.P, "v", HEED_SHAPE(B, H, n, D), heed_init_uniform(-1, 1));
        j.r.g = heed_graph_new(ctx);
        printf("{\"bench\":\"attention\",\"case\":\"flash%s fwd+bwd, contention\",\"n\":%d,\"threads\":%d,",
               causal ? " causal" : "", n, heed_ctx_threads(ctx));
        bool ok = bench_contention(busy, best_step, &j);
        printf("}\n");
        if (heed_graph_status(j.r.g) != HEED_OK) fprintf(stderr, "error: %s\n", heed_graph_error(j.r.g)), ok = false;
        heed_graph_free(j.r.g);
        heed_params_free(j.r.P);
        if (!ok) return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    /* the kernels' instruction set: HEED_ISA=avx512|avx2|scalar picks one for a per-ISA table */
    printf("{\"bench\":\"attention\",\"case\":\"isa\",\"isa\":\"%s\"}\n", heed_isa());
    if (argc > 1 && !strcmp(argv[1], "--busy")) {
        int i = 1, busy = bench_busy_arg(argc, argv, &i), n = argc > 3 ? atoi(argv[3]) : 1024;
        heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 1});
        int rc = busy > 0 && n > 0 ? contention(ctx, busy, n) : 2;
        heed_ctx_free(ctx);
        return rc;
    }
    int max_n = argc > 1 ? atoi(argv[1]) : 16384, max_mat = argc > 2 ? atoi(argv[2]) : 4096;
    cpu_clock = argc > 3 && strcmp(argv[3], "cpu") == 0;
    int min_n = argc > 4 ? atoi(argv[4]) : 256;
    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 1});
    sa = malloc((size_t)SG * SG * sizeof *sa), sb = malloc((size_t)SG * SG * sizeof *sb),
    sc = malloc((size_t)SG * SG * sizeof *sc);
    for (int i = 0; i < SG * SG; i++) sa[i] = (float)(i % 7) * 0.1f, sb[i] = (float)(i % 5) * 0.1f;
    for (int i = 0; i < 10; i++) sgemm_batch(1);
    for (int n = 256; n <= max_n; n *= 2)
        for (int causal = 0; causal < 2 && n >= min_n; causal++) {
            one_case(ctx, n, causal, 0, HEED_ATTN_FLASH);
            if (n <= max_mat) one_case(ctx, n, causal, 0, HEED_ATTN_MATERIALISED);
        }
    /* Local attention: the cost grows as N w, not N^2. */
    for (int n = 1024; n <= max_n; n *= 4)
        if (n >= min_n) one_case(ctx, n, false, 256, HEED_ATTN_FLASH);
    printf("{\"bench\":\"attention\",\"case\":\"sgemm n=1024 best single\",\"gflops\":%.1f,\"threads\":%d,"
           "\"clock\":\"%s\"}\n",
           2.0 * SG * SG * SG / sgemm_one * 1e-9, heed_ctx_threads(ctx), cpu_clock ? "cpu" : "wall");
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"bench\":\"attention\",\"case\":\"process\",\"max_rss_mib\":%.1f}\n", ru.ru_maxrss / 1024.0);
    free(sa), free(sb), free(sc);
    heed_ctx_free(ctx);
    return 0;
}
