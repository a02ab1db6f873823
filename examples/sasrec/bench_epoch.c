/* Seconds per SASRec training epoch on generated data shaped like Amazon Games (31,000
 * users, 24,000 items, 7.3 items per user) with the paper's settings: maxlen 50, d 50,
 * 2 blocks, 1 head, dropout 0.5, batch 128, Adam. An epoch is every user once (243 steps):
 * batch making, forward, loss, backward and the Adam step. Targets (issue 15): at most
 * 1.0 s per epoch and 0.5 s for the evaluation, 2 threads, quiet. --data PATH times a dataset in the paper's format instead (the real
 * Amazon Games file has a long tail of long histories the generator does not make).
 *
 * The reference: with --pytorch the same model in PyTorch (bench/sasrec_pytorch.py, run
 * with /usr/bin/python3 or $PYTHON) is timed on the very same data in this run; without
 * it no reference is printed.
 *
 * --busy N: contention mode. The epochs are timed quiet, then again while N child
 * processes busy-loop (bench_util.h); prints both (best epoch of each) and their ratio.
 *
 * After the epochs, the paper's evaluation is timed once: the test items of up to 10,000
 * users, each ranked among 100 sampled negatives (examples/sasrec/eval.c with the model's
 * scorer), as "eval_seconds".
 *
 *   build/examples/bench_sasrec_epoch [--epochs N] [--threads N] [--pytorch] [--data PATH] [--busy N]
 */
#include "bench/bench_util.h"
#include "train.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* CPU seconds of the whole process (all threads): on a loaded machine the work done, which
 * wall time is not; with 2 threads it includes OpenMP's spin-waits at barriers. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#ifndef HEED_SOURCE_DIR
#define HEED_SOURCE_DIR "."
#endif

/* Times one epoch of bench/sasrec_pytorch.py on the data file; NaN if it cannot run. */
static double pytorch_epoch(const char *data, int threads) {
    const char *py = getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s/bench/sasrec_pytorch.py --data %s --epochs 1 --threads %d", py, HEED_SOURCE_DIR,
             data, threads);
    return bench_command_number(cmd, "seconds_per_epoch");
}

typedef struct {
    sr_trainer *t;
    int epochs;
    double best, sum, loss, best_cpu;
    char err[512];
} epochs_run;

/* Trains r->epochs epochs; the best epoch's seconds (NaN on an error, in r->err). */
static double run_epochs(void *arg) {
    epochs_run *r = arg;
    r->best = 1e30, r->sum = 0, r->best_cpu = 1e30;
    for (int e = 0; e < r->epochs; e++) {
        double t0 = bench_now(), c0 = cpu_now();
        r->loss = sr_train_epoch(r->t, NULL, r->err, sizeof r->err);
        double s = bench_now() - t0, c = cpu_now() - c0;
        if (isnan(r->loss)) return NAN;
        r->best_cpu = c < r->best_cpu ? c : r->best_cpu;
        r->best = s < r->best ? s : r->best;
        r->sum += s;
    }
    return r->best;
}

int main(int argc, char **argv) {
    int epochs = 2, threads = 0, busy = 0;
    bool pytorch = false;
    const char *data = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--epochs") && i + 1 < argc) epochs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--pytorch")) pytorch = true;
        else if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if ((busy = bench_busy_arg(argc, argv, &i)) > 0) continue;
        else {
            fprintf(stderr, "usage: %s [--epochs N] [--threads N] [--pytorch] [--data PATH] [--busy N]\n", argv[0]);
            return 2;
        }
    }
    if (epochs < 1) epochs = 1;
    char err[512];
    sr_gen_config gc = sr_gen_amazon_games();
    sr_data d;
    sr_generator gen = {0};
    if (data ? sr_load(data, &d, err, sizeof err) : sr_generate(&gc, &d, &gen, err, sizeof err))
        return fprintf(stderr, "%s\n", err), 1;
    sr_train_config tc = sr_train_defaults(d.n_items);
    tc.threads = threads;
    if (threads > 0) omp_set_num_threads(threads); /* the BLAS follows OpenMP's count, not the ctx's */
    sr_trainer t;
    if (sr_trainer_init(&t, &d, &tc, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    epochs_run r = {.t = &t, .epochs = epochs};
    if (busy) {
        printf("{\"bench\":\"sasrec\",\"case\":\"%s, contention\",\"threads\":%d,\"epochs\":%d,",
               data ? data : "amazon-games-shaped", heed_ctx_threads(t.ctx), epochs);
        bool ok = bench_contention(busy, run_epochs, &r);
        printf("}\n");
        if (!ok || isnan(r.loss)) return fprintf(stderr, "%s\n", ok ? r.err : "--busy failed"), 1;
        return sr_trainer_free(&t), sr_generator_free(&gen), sr_data_free(&d), 0;
    }
    if (isnan(run_epochs(&r))) return fprintf(stderr, "%s\n", r.err), 1;
    double best = r.best, sum = r.sum, loss = r.loss, best_cpu = r.best_cpu;
    sr_metrics test;
    sr_eval_opts eo = sr_eval_defaults(tc.model.maxlen, true);
    double e0 = bench_now(), ec0 = cpu_now();
    if (sr_evaluate(&d, &eo, sr_model_scorer, &t, &test, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    double eval_s = bench_now() - e0, eval_cpu = cpu_now() - ec0;
    double torch_s = NAN;
    if (pytorch && data) {
        torch_s = pytorch_epoch(data, heed_ctx_threads(t.ctx));
    } else if (pytorch) { /* the generated data, written for it in the paper's format */
        char path[] = "/tmp/heed_sasrec_bench_XXXXXX";
        int fd = mkstemp(path);
        if (fd >= 0 && (close(fd), sr_save(path, &d, err, sizeof err) == 0))
            torch_s = pytorch_epoch(path, heed_ctx_threads(t.ctx));
        if (fd >= 0) unlink(path);
    }
    printf(
        "{\"bench\":\"sasrec\",\"case\":\"%s: %lld users, %lld items, %.2f items/user; maxlen 50, d 50, "
        "2 blocks, 1 head, batch 128, f32\",\"threads\":%d,\"epochs\":%d,\"steps_per_epoch\":%lld,\"loss\":%.4f,"
        "\"seconds_per_epoch\":%.3f,\"mean_seconds_per_epoch\":%.3f,\"cpu_seconds_per_epoch\":%.3f,\"eval_users\":%lld,"
        "\"eval_seconds\":%.3f,\"eval_cpu_seconds\":%.3f,"
        "\"test_hr10\":%.4f,\"test_ndcg10\":%.4f,\"target_seconds\":1.0,\"eval_target_seconds\":0.5",
        data ? data : "amazon-games-shaped", (long long)d.n_users, (long long)d.n_items, sr_data_stats(&d).mean_len,
        heed_ctx_threads(t.ctx), epochs, (long long)sr_trainer_steps_per_epoch(&t), loss, best, sum / epochs, best_cpu,
        (long long)test.users, eval_s, eval_cpu, test.hr, test.ndcg);
    if (pytorch && !isnan(torch_s))
        printf(",\"pytorch_same_model_seconds_per_epoch\":%.3f,\"ratio_vs_pytorch_same_model_this_run\":%.2f", torch_s,
               torch_s / best);
    else if (pytorch) printf(",\"pytorch_same_model_seconds_per_epoch\":null");
    printf("}\n");
    sr_trainer_free(&t);
    sr_generator_free(&gen);
    sr_data_free(&d);
    return 0;
}
