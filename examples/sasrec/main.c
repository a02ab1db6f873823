/* sasrec: trains and evaluates SASRec (Kang and McAuley, ICDM 2018) on a dataset in the
 * paper's format or on generated data, as the paper does: Adam (0.001, 0.9, 0.98), BCE
 * with one sampled negative per position, HR@10 / NDCG@10 of the held-out item among 100
 * sampled negatives for up to 10,000 users. Prints per-epoch loss, time and metrics, the
 * popularity baseline and (on generated data) the ceiling; checkpoints every epoch.
 * Run with --help for the flags; docs/sasrec.md has the details. */
#include "args.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* path with "-<tag>" before its extension: runs/attn.svg -> runs/attn-block1.svg. */
static void tagged_path(const char *path, const char *tag, char *out, size_t len) {
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) dot = path + strlen(path);
    snprintf(out, len, "%.*s-%s%s", (int)(dot - path), path, tag, dot);
}

/* One user's attention weights, every block: PATH.png gets a heatmap per block (a grid of
 * heads), any other PATH an SVG per block and head with the item ids as labels. With one
 * block and one head the picture is PATH itself. */
static int write_heatmap(const char *path, sr_trainer *t, int64_t u, char *err, size_t errlen) {
    const heed_sasrec_config *c = &t->cfg.model;
    int64_t N = c->maxlen, H = c->heads, L = c->blocks;
    if (L == 0) return snprintf(err, errlen, "the model has no attention block"), -1;
    int64_t *seq = malloc((size_t)N * sizeof *seq);
    char **labels = calloc((size_t)N, sizeof *labels);
    int rc = -1;
    if (!seq || !labels) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    sr_eval_row(t->d, u, N, true, seq);
    int64_t first = 0;
    while (first < N && seq[first] == 0) first++;
    int64_t n = N - first; /* the user's history, unpadded: one row, no padding needed */
    if (n == 0) {
        snprintf(err, errlen, "user %lld has no history", (long long)u);
        goto out;
    }
    for (int64_t i = 0; i < n; i++) {
        labels[i] = malloc(24);
        if (!labels[i]) goto out;
        snprintf(labels[i], 24, "%lld", (long long)seq[first + i]);
    }
    heed_tensor *w[HEED_SASREC_MAX_BLOCKS] = {0};
    heed_graph *g = t->g;
    heed_graph_reset(g);
    heed_graph_set_training(g, false);
    heed_no_grad_begin(g);
    heed_tensor *h = heed_sasrec_forward(g, &t->m, seq + first, 1, n, w);
    heed_no_grad_end(g);
    heed_graph_set_training(g, true);
    if (!h) {
        snprintf(err, errlen, "%s", heed_graph_error(g));
        goto out;
    }
    const char *ext = strrchr(path, '.');
    bool png = ext && !strcmp(ext, ".png");
    char file[1024], tag[64], title[160];
    for (int64_t b = 0; b < L; b++)
        for (int64_t hd = 0; hd < (png ? 1 : H); hd++) {
            if (png) snprintf(tag, sizeof tag, "block%lld", (long long)b + 1);
            else if (H > 1) snprintf(tag, sizeof tag, "block%lld-head%lld", (long long)b + 1, (long long)hd + 1);
            else snprintf(tag, sizeof tag, "block%lld", (long long)b + 1);
            if (L * (png ? 1 : H) > 1) tagged_path(path, tag, file, sizeof file);
            else snprintf(file, sizeof file, "%s", path);
            snprintf(title, sizeof title, "SASRec user %lld, block %lld head %lld: rows attend to columns (item ids)",
                     (long long)u, (long long)b + 1, (long long)hd + 1);
            heed_status st =
                png ? heed_heatmap_png(t->ctx, file, w[b], &(heed_heatmap_opts){.cmap = HEED_CMAP_VIRIDIS})
                    : heed_attention_svg(t->ctx, file, w[b], (const char *const *)labels, (const char *const *)labels,
                                         &(heed_svg_opts){.cmap = HEED_CMAP_VIRIDIS,
                                                          .title = title,
                                                          .head = hd,
                                                          .values = n <= 20});
            if (st != HEED_OK) {
                snprintf(err, errlen, "%s", heed_ctx_error(t->ctx));
                goto out;
            }
            printf("heatmap: %s\n", file);
        }
    rc = 0;
out:
    for (int64_t i = 0; labels && i < N; i++) free(labels[i]);
    free(labels);
    free(seq);
    return rc;
}

static int evaluate(sr_trainer *t, const sr_options *o, bool test, sr_scorer f, void *user, sr_metrics *m, char *err,
                    size_t errlen) {
    sr_eval_opts e = sr_eval_defaults(t->cfg.model.maxlen, test);
    e.negatives = o->negatives;
    e.max_users = o->eval_users;
    e.k = o->k;
    e.full = o->full_rank;
    return sr_evaluate(t->d, &e, f, user, m, err, errlen);
}

/* Evaluates a baseline on validation and test (unless --no-test) and prints one line. */
static int baseline(sr_trainer *t, const sr_options *o, const char *name, sr_scorer f, void *user, sr_metrics *test,
                    char *err, size_t errlen) {
    sr_metrics valid;
    if (evaluate(t, o, false, f, user, &valid, err, errlen) ||
        (!o->no_test && evaluate(t, o, true, f, user, test, err, errlen)))
        return -1;
    printf("%s: valid HR@%d %.4f NDCG@%d %.4f", name, o->k, valid.hr, o->k, valid.ndcg);
    if (!o->no_test) printf(" | test HR@%d %.4f NDCG@%d %.4f", o->k, test->hr, o->k, test->ndcg);
    printf("  (%lld users, %s)\n", (long long)valid.users, o->full_rank ? "full ranking" : "sampled negatives");
    return 0;
}

/* Everything the program holds, freed in one place whatever the exit. */
typedef struct {
    sr_options o;
    sr_data d;
    sr_generator gen;
    sr_trainer t;
    sr_popularity pop;
    sr_chain chain;
    heed_metrics *log;
    char err[1024];
} program;

static int fail(const char *what, const char *why) {
    fprintf(stderr, "sasrec: %s%s%s\n", what, *what ? ": " : "", why);
    return 1;
}

/* An output path is checked before any work: its directory must exist and be writable,
 * and the path must not be a directory. A file written atomically (a temporary file
 * renamed over it) must not be anything but a regular file: the rename would replace a
 * device or FIFO with a regular file. */
static int check_output(const char *flag, const char *path, bool atomic, char *err, size_t errlen) {
    struct stat sb;
    if (!*path) return snprintf(err, errlen, "%s: the path is empty", flag), -1;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return snprintf(err, errlen, "%s %s: is a directory", flag, path), -1;
    if (atomic && lstat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return snprintf(err, errlen, "%s %s: not a regular file (it would be replaced by one)", flag, path), -1;
    const char *slash = strrchr(path, '/');
    int n = !slash ? 1 : slash == path ? 1 : (int)(slash - path); /* the directory's name: "." or path[0, n) */
    const char *name = slash ? path : ".";
    char dir[4096];
    if (n >= (int)sizeof dir) return snprintf(err, errlen, "%s: the path is too long", flag), -1;
    snprintf(dir, sizeof dir, "%.*s", n, name);
    if (stat(dir, &sb) != 0)
        return snprintf(err, errlen, "%s %s: directory %.*s: %s", flag, path, n, name, strerror(errno)), -1;
    if (!S_ISDIR(sb.st_mode)) return snprintf(err, errlen, "%s %s: %.*s is not a directory", flag, path, n, name), -1;
    if (access(dir, W_OK | X_OK) != 0)
        return snprintf(err, errlen, "%s %s: cannot write in %.*s: %s", flag, path, n, name, strerror(errno)), -1;
    return 0;
}

static int check_outputs(const sr_options *o, char *err, size_t errlen) {
    if ((o->checkpoint && check_output("--checkpoint", o->checkpoint, true, err, errlen)) ||
        (o->heatmap && check_output("--heatmap", o->heatmap, true, err, errlen)) ||
        (o->metrics_csv && check_output("--metrics", o->metrics_csv, false, err, errlen)) ||
        (o->save_data && check_output("--save-data", o->save_data, true, err, errlen)))
        return -1;
    if (o->checkpoint && !o->resume && access(o->checkpoint, F_OK) == 0)
        return snprintf(err, errlen,
                        "--checkpoint %s exists: pass --resume to continue from it, or remove it to start over",
                        o->checkpoint),
               -1;
    if (o->heatmap && o->train.model.blocks == 0)
        return snprintf(err, errlen, "--heatmap needs an attention block (--num-blocks 0 has none)"), -1;
    return 0;
}

/* The data, from the file or the generator, with its summary line; --save-data. */
static int load_data(program *p) {
    const sr_options *o = &p->o;
    double t0 = now();
    if (o->data ? sr_load(o->data, &p->d, p->err, sizeof p->err)
                : sr_generate(&o->gen, &p->d, &p->gen, p->err, sizeof p->err))
        return fail("", p->err);
    const sr_data *d = &p->d;
    sr_stats st = sr_data_stats(d);
    printf(
        "data: %s: %lld users, %lld items, %lld interactions, %.2f per user (max %lld); %lld with a test item (%.2fs)\n",
        o->data ? o->data : "generated", (long long)d->n_users, (long long)d->n_items, (long long)d->n_interactions,
        st.mean_len, (long long)st.max_len, (long long)st.users_with_test, now() - t0);
    if (st.active_items < d->n_items / 2 || st.active_users < d->n_users / 2)
        printf(
            "note: only %lld of the ids 1..%lld are items in use and %lld of 1..%lld are users; the model keeps a row "
            "for every id up to the largest (renumber the ids densely to save memory)\n",
            (long long)st.active_items, (long long)d->n_items, (long long)st.active_users, (long long)d->n_users);
    if (o->save_data && heed_dist_rank() == 0) {
        if (sr_save(o->save_data, d, p->err, sizeof p->err)) return fail("", p->err);
        printf("data: written to %s\n", o->save_data);
    }
    return 0;
}

/* The user whose attention --heatmap draws: --heatmap-user, or the first with 3 items. */
static int64_t heatmap_user(const program *p) {
    int64_t u = p->o.heatmap_user;
    for (int64_t v = 1; !u && v <= p->d.n_users; v++)
        if (sr_len(&p->d, v) >= 3) u = v;
    return u >= 1 && u <= p->d.n_users && sr_len(&p->d, u) >= 1 ? u : 0;
}

/* Loads the data, trains, evaluates and reports; the exit status. */
static int run(program *p) {
    sr_options *o = &p->o;
    char *err = p->err;
    size_t errlen = sizeof p->err;
    if (load_data(p)) return 1;
    const sr_data *d = &p->d;
    bool generated = !o->data;
    if (o->heatmap && !heatmap_user(p))
        return fail("--heatmap",
                    o->heatmap_user ? "--heatmap-user: no such user with a history" : "no user has 3 items");
    o->train.model.n_items = d->n_items;
    sr_trainer *t = &p->t;
    if (sr_trainer_init(t, d, &o->train, err, errlen)) return fail("", err);
    const heed_sasrec_config *mc = &o->train.model;
    printf(
        "model: maxlen %lld, hidden %lld, blocks %d, heads %d, dropout %g; %lld parameters; Adam lr %g betas (%g, %g), "
        "batch %lld, %lld steps per epoch, %d threads\n",
        (long long)mc->maxlen, (long long)mc->hidden, mc->blocks, mc->heads, mc->dropout,
        (long long)heed_params_numel(t->P), o->train.lr, o->train.beta1, o->train.beta2, (long long)o->train.batch,
        (long long)sr_trainer_steps_per_epoch(t), heed_ctx_threads(t->ctx));
    int found = o->resume && access(o->checkpoint, F_OK) == 0; /* rank 0's file decides */
    heed_dist_broadcast(t->ctx, &found, sizeof found, 0);
    if (found) {
        if (sr_trainer_load(t, o->checkpoint, err, errlen)) return fail("resume", err);
        printf("resumed from %s after epoch %lld\n", o->checkpoint, (long long)t->epoch);
    }
    if (o->metrics_csv && heed_dist_rank() == 0) {
        const char *cols[] = {"epoch", "loss", "seconds", "valid_hr", "valid_ndcg", "test_hr", "test_ndcg"};
        p->log = heed_metrics_new(t->ctx, o->metrics_csv, 7, cols);
        if (!p->log) return fail("--metrics", heed_ctx_error(t->ctx));
    }

    /* The baselines on the very same candidates as the model: popularity; the chain
     * (sr_chain_init_for: counted from the training parts); on generated data the ceiling. */
    sr_metrics pop_test = {0}, chain_test = {0}, ceil_test = {0};
    if (sr_popularity_init(&p->pop, d) || sr_chain_init_for(&p->chain, d, generated ? &o->gen : NULL))
        return fail("", "out of memory for the baselines");
    if (!o->bench && (baseline(t, o, "popularity", sr_popularity_scorer, &p->pop, &pop_test, err, errlen) ||
                      baseline(t, o, p->chain.name, sr_chain_scorer, &p->chain, &chain_test, err, errlen) ||
                      (generated && baseline(t, o, "ceiling (true next-item probabilities)", sr_oracle_scorer, &p->gen,
                                             &ceil_test, err, errlen))))
        return fail("", err);
    fflush(stdout);

    sr_metrics valid = {0}, test = {0};
    double train_seconds = 0;
    int64_t epochs_run = 0, steps = sr_trainer_steps_per_epoch(t);
    while (t->epoch < o->epochs) {
        char label[32];
        snprintf(label, sizeof label, "epoch %lld", (long long)t->epoch + 1);
        heed_progress *bar =
            o->progress ? heed_progress_new(t->ctx, &(heed_progress_opts){.total = steps, .label = label}) : NULL;
        double e0 = now();
        double loss = sr_train_epoch(t, bar, err, errlen);
        double secs = now() - e0;
        if (bar) heed_progress_free(bar);
        if (isnan(loss)) {
            fail("", err);
            if (o->checkpoint && (epochs_run > 0 || o->resume))
                fprintf(stderr, "sasrec: %s holds the state after epoch %lld\n", o->checkpoint, (long long)t->epoch);
            return 1;
        }
        train_seconds += secs;
        epochs_run++;
        printf("epoch %lld: loss %.4f, %.2fs (%.1f ms/step)", (long long)t->epoch, loss, secs,
               1e3 * secs / (double)steps);
        bool last = t->epoch == o->epochs;
        bool eval = !o->bench && ((o->eval_every > 0 && t->epoch % o->eval_every == 0) || last);
        valid = test = (sr_metrics){NAN, NAN, 0};
        if (eval) {
            double v0 = now();
            if (evaluate(t, o, false, sr_model_scorer, t, &valid, err, errlen) ||
                (!o->no_test && evaluate(t, o, true, sr_model_scorer, t, &test, err, errlen)))
                return printf("\n"), fail("", err);
            printf("; valid HR@%d %.4f NDCG@%d %.4f", o->k, valid.hr, o->k, valid.ndcg);
            if (!o->no_test) printf("; test HR@%d %.4f NDCG@%d %.4f", o->k, test.hr, o->k, test.ndcg);
            printf(" (eval %.2fs)", now() - v0);
        }
        printf("\n");
        fflush(stdout);
        /* The checkpoint first: a failed metrics row must not cost the epoch's training. */
        if (o->checkpoint && sr_trainer_save(t, o->checkpoint, err, errlen)) return fail("checkpoint", err);
        if (p->log && heed_metrics_add(p->log, (double[]){(double)t->epoch, loss, secs, valid.hr, valid.ndcg, test.hr,
                                                          test.ndcg}) != HEED_OK)
            return fail("--metrics", heed_ctx_error(t->ctx));
    }
    heed_status closed = heed_metrics_free(p->log);
    p->log = NULL;
    if (closed != HEED_OK) return fail("--metrics", heed_ctx_error(t->ctx));
    if (!o->bench && epochs_run == 0) { /* nothing left to train (a finished run resumed): evaluate it */
        if (evaluate(t, o, false, sr_model_scorer, t, &valid, err, errlen) ||
            (!o->no_test && evaluate(t, o, true, sr_model_scorer, t, &test, err, errlen)))
            return fail("", err);
    }

    if (o->bench && epochs_run > 0) {
        double per = train_seconds / (double)epochs_run;
        printf("{\"bench\":\"sasrec\",\"case\":\"%s users=%lld items=%lld maxlen=%lld d=%lld blocks=%d batch=%lld\","
               "\"epochs\":%lld,\"seconds_per_epoch\":%.3f,\"target_seconds\":8,\"threads\":%d}\n",
               generated ? (o->gen_preset ? o->gen_preset : "generated") : "data", (long long)d->n_users,
               (long long)d->n_items, (long long)mc->maxlen, (long long)mc->hidden, mc->blocks,
               (long long)o->train.batch, (long long)epochs_run, per, heed_ctx_threads(t->ctx));
    }
    if (!o->bench) {
        printf("final: model valid HR@%d %.4f NDCG@%d %.4f", o->k, valid.hr, o->k, valid.ndcg);
        if (!o->no_test) printf(" | test HR@%d %.4f NDCG@%d %.4f", o->k, test.hr, o->k, test.ndcg);
        printf("\n");
        if (!o->no_test) {
            printf("summary (test HR@%d): model %.4f", o->k, test.hr);
            if (generated) printf(" vs ceiling %.4f", ceil_test.hr);
            printf(" vs %s %.4f vs popularity %.4f\n", p->chain.short_name, chain_test.hr, pop_test.hr);
        }
    }
    if (o->heatmap && heed_dist_rank() == 0) {
        int64_t u = heatmap_user(p);
        if (write_heatmap(o->heatmap, t, u, err, errlen)) return fail("heatmap", err);
        printf("heatmap: the attention of user %lld above\n", (long long)u);
    }
    if (o->target_hr >= 0 && !o->bench && !(test.hr >= o->target_hr)) {
        fprintf(stderr, "sasrec: test HR@%d %.4f is below the target %.4f\n", o->k, test.hr, o->target_hr);
        return 3;
    }
    return 0;
}

int main(int argc, char **argv) {
    program p = {0};
    /* Under mpirun -np N: N data-parallel ranks (docs/distributed.md); rank 0 prints and
     * writes files, the others only report errors. */
    heed_dist_init(NULL, &argc, &argv);
    bool rank0 = heed_dist_rank() == 0;
    if (!rank0 && !freopen("/dev/null", "w", stdout)) return 1;
    int args = sr_parse_args(argc, argv, &p.o, p.err, sizeof p.err);
    if (!rank0) p.o.progress = false;
    if (args == SR_ARGS_HELP) sr_usage(stdout);
    if (args == SR_ARGS_ERROR || (args == SR_ARGS_OK && check_outputs(&p.o, p.err, sizeof p.err))) {
        fail("", p.err);
        return 2;
    }
    /* --threads is for the whole program: heed's kernels (the ctx) and the BLAS, which
     * follows OpenMP's process-wide count; a program may set that, a library may not. */
    if (args == SR_ARGS_OK && p.o.threads > 0) omp_set_num_threads((int)p.o.threads);
    int status = args == SR_ARGS_HELP ? 0 : run(&p);
    heed_metrics_free(p.log); /* an error exit: the rows written so far stay */
    sr_popularity_free(&p.pop);
    sr_chain_free(&p.chain);
    sr_trainer_free(&p.t);
    sr_generator_free(&p.gen);
    sr_data_free(&p.d);
    /* Every line the program printed must have reached its destination. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "sasrec: writing the standard output: %s\n", strerror(errno));
        if (!status) status = 1;
    }
    heed_dist_finalize();
    return status;
}
