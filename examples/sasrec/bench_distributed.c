/* Data-parallel SASRec: seconds per training epoch on Amazon-Games-shaped generated data
 * (the paper's settings, as bench_sasrec_epoch) with this job's ranks, and what the
 * gradient allreduce costs: the time each rank waits for it after backward, the time
 * the overlap hook spends in MPI during backward, and the share of gradient bytes whose
 * reduction started during backward; and the allreduce alone, without compute to wait
 * for. Run under the launcher, once per rank count;
 * bench/distributed.sh runs 1 and 2 ranks and prints the scaling efficiency.
 *
 *   mpirun -np 2 build/examples/bench_distributed [--epochs N] [--threads N] [--mode overlap|blocking|both]
 *
 * Prints one JSON line per mode on rank 0. Each rank's wait includes waiting for slower
 * ranks (load imbalance), not only the transfer; the figures are the mean over ranks. */
#include "bench/bench_util.h"
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(const sr_data *d, int epochs, int threads, bool blocking) {
    char err[512];
    sr_train_config tc = sr_train_defaults(d->n_items);
    tc.threads = threads;
    tc.blocking_allreduce = blocking;
    sr_trainer t;
    if (sr_trainer_init(&t, d, &tc, err, sizeof err)) heed_dist_abort(1, "%s", err);
    /* The allreduce alone (no compute to wait for): 20 of the whole gradient buffer. */
    heed_dist_allreduce_grads(t.P);
    double a0 = bench_now();
    for (int i = 0; i < 20; i++) heed_dist_allreduce_grads(t.P);
    double alone = (bench_now() - a0) / 20;
    heed_dist_allreduce_sum(t.ctx, &alone, 1);
    alone /= heed_dist_size();
    double best = INFINITY, wait = 0, loss = NAN;
    heed_dist_stats before = heed_dist_overlap_stats(t.overlap);
    for (int e = 0; e < epochs; e++) {
        double w0 = t.allreduce_seconds, t0 = bench_now();
        loss = sr_train_epoch(&t, NULL, err, sizeof err);
        double s = bench_now() - t0;
        if (isnan(loss)) heed_dist_abort(1, "%s", err);
        /* the ranks step together, so their epoch times agree: the mean over ranks */
        double all[2] = {s, t.allreduce_seconds - w0};
        heed_dist_allreduce_sum(t.ctx, all, 2);
        double mean_s = all[0] / heed_dist_size();
        if (mean_s < best) best = mean_s, wait = all[1] / heed_dist_size();
    }
    heed_dist_stats st = heed_dist_overlap_stats(t.overlap);
    double in_backward = (double)(st.bytes_in_backward - before.bytes_in_backward),
           reduced = (double)st.bytes * (double)(st.steps - before.steps), hook = st.hook_seconds / epochs;
    heed_dist_allreduce_sum(t.ctx, &hook, 1);
    int64_t steps = sr_trainer_steps_per_epoch(&t), params = 0;
    int n = heed_params_count(t.P);
    for (int i = 0; i < n; i++) params += heed_params_at(t.P, i)->numel;
    /* what one allreduce sends: the flat buffer up to the last parameter (padding too) */
    int64_t bytes = heed_dist_size() > 1 ? (heed_params_offset(t.P, n - 1) + heed_params_at(t.P, n - 1)->numel) *
                                               (int64_t)heed_dtype_size(tc.dtype)
                                         : 0;
    if (heed_dist_rank() == 0)
        printf(
            "{\"bench\":\"distributed\",\"case\":\"sasrec amazon-games-shaped, %lld users, %lld items, maxlen 50, d 50, "
            "2 blocks, batch 128 (global), f32\",\"ranks\":%d,\"threads_per_rank\":%d,\"mode\":\"%s\",\"epochs\":%d,"
            "\"steps_per_epoch\":%lld,\"parameters\":%lld,\"allreduce_bytes_per_step\":%lld,\"allreduce_alone_ms\":%.2f,\"loss\":%.4f,"
            "\"seconds_per_epoch\":%.3f,\"allreduce_wait_seconds_per_epoch\":%.3f,\"allreduce_wait_share\":%.3f,"
            "\"hook_seconds_per_epoch\":%.3f,\"bytes_started_in_backward_share\":%.3f}\n",
            (long long)d->n_users, (long long)d->n_items, heed_dist_size(), heed_ctx_threads(t.ctx),
            blocking ? "blocking" : "overlap", epochs, (long long)steps, (long long)params, (long long)bytes,
            1e3 * alone, loss, best, wait, wait / best, hook / heed_dist_size(),
            reduced > 0 ? in_backward / reduced : 0.0);
    fflush(stdout);
    sr_trainer_free(&t);
    return 0;
}

int main(int argc, char **argv) {
    int epochs = 2, threads = 1;
    const char *mode = "both";
    heed_dist_init(NULL, &argc, &argv);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--epochs") && i + 1 < argc) epochs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc) mode = argv[++i];
        else heed_dist_abort(2, "usage: %s [--epochs N] [--threads N] [--mode overlap|blocking|both]", argv[0]);
    }
    if (epochs < 1) epochs = 1;
    char err[512];
    sr_gen_config gc = sr_gen_amazon_games();
    sr_data d;
    sr_generator gen = {0};
    if (sr_generate(&gc, &d, &gen, err, sizeof err)) heed_dist_abort(1, "%s", err);
    if (strcmp(mode, "blocking")) run(&d, epochs, threads, false);
    if (strcmp(mode, "overlap")) run(&d, epochs, threads, true);
    sr_generator_free(&gen);
    sr_data_free(&d);
    heed_dist_finalize();
    return 0;
}
