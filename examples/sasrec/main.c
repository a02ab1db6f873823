/* sasrec: trains and evaluates SASRec (Kang and McAuley, ICDM 2018) on a dataset in the
 * paper's format or on generated data, as the paper does: Adam (0.001, 0.9, 0.98), BCE
 * with one sampled negative per position, HR@10 / NDCG@10 of the held-out item among 100
 * sampled negatives for up to 10,000 users. Prints per-epoch loss, time and metrics, the
 * popularity baseline and (on generated data) the ceiling; checkpoints every epoch.
 * Run with --help for the flags; docs/sasrec.md has the details. */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    const char *data, *save_data, *checkpoint, *heatmap, *metrics_csv, *gen_preset;
    bool resume, progress, full_rank, bench, no_test;
    int64_t epochs, eval_every, eval_users, heatmap_user, threads;
    int negatives, k;
    double target_hr; /* exit status 3 if the final test HR@k is below (smoke tests) */
    sr_gen_config gen;
    sr_train_config train;
} options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: sasrec [options]\n"
            "data (default: generated, --gen small):\n"
            "  --data PATH            'user item' lines, ids from 1, each user's lines in time order\n"
            "  --gen PRESET           small (6000 users, 500 items) or amazon-games (31000 users,\n"
            "                         24000 items, 7.3 items per user)\n"
            "  --gen-users N  --gen-items N  --gen-mean-len X  --gen-min-len N  --gen-max-len N\n"
            "  --gen-successors K  --gen-noise P  --gen-order2 P  --gen-zipf A  --gen-seed S\n"
            "  --save-data PATH       write the dataset in the paper's format and go on\n"
            "model and training (the paper's flags; defaults are the paper's for Amazon data):\n"
            "  --maxlen 50  --hidden-units 50  --num-blocks 2  --num-heads 1  --dropout-rate 0.5\n"
            "  --lr 0.001  --beta1 0.9  --beta2 0.98  --batch-size 128  --num-epochs 200  --seed 1\n"
            "  --l2-emb 0             L2 penalty on the item and position embeddings (the reference's)\n"
            "  --threads N            OpenMP threads (default: all)\n"
            "  --length-groups N      run a batch as up to N groups of similar length, each at its\n"
            "                         own width (4; 1 = the whole batch at its widest row)\n"
            "evaluation:\n"
            "  --eval-every N         epochs between evaluations (1; 0 = only at the end)\n"
            "  --eval-users N         users sampled for evaluation (10000; 0 = all)\n"
            "  --negatives N          sampled negatives per user (100)\n"
            "  --k N                  cut-off of HR@k and NDCG@k (10)\n"
            "  --full-rank            rank against every item the user has not interacted with\n"
            "  --no-test              report validation metrics only (the test set stays unseen)\n"
            "output:\n"
            "  --checkpoint PATH      save the training state after every epoch\n"
            "  --resume               continue from --checkpoint if the file exists\n"
            "  --heatmap PATH         attention weights of one user at the end: PATH.png a heatmap per\n"
            "                         block (grid of heads), else an SVG per block and head with item ids\n"
            "  --heatmap-user U       that user (default: the first with a test item)\n"
            "  --metrics PATH.csv     per-epoch loss, time and metrics\n"
            "  --no-progress          no progress bar\n"
            "  --bench                time --num-epochs epochs (default 3), no evaluation; print a JSON line\n"
            "  --target-hr X          exit with status 3 if the final test HR@k is below X\n");
}

static bool parse_i64(const char *s, int64_t *v) {
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end) return false;
    *v = x;
    return true;
}

static bool parse_f64(const char *s, double *v) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(x)) return false;
    *v = x;
    return true;
}

static sr_gen_config gen_small(void) {
    return (sr_gen_config){.n_users = 6000, .n_items = 500, .mean_len = 12, .min_len = 5, .max_len = 200, .successors = 3,
                           .noise = 0.2, .order2 = 0.25, .zipf = 1.0, .seed = 1};
}

/* Parses argv into o; false with a message on stderr on a bad flag or value. */
static bool parse_args(int argc, char **argv, options *o) {
    bool epochs_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        /* boolean flags */
        bool *flag = !strcmp(a, "--resume")        ? &o->resume
                     : !strcmp(a, "--full-rank")   ? &o->full_rank
                     : !strcmp(a, "--bench")       ? &o->bench
                     : !strcmp(a, "--no-test")     ? &o->no_test
                     : NULL;
        if (flag) {
            *flag = true;
            continue;
        }
        if (!strcmp(a, "--no-progress")) {
            o->progress = false;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "sasrec: %s needs a value (see --help)\n", a);
            return false;
        }
        const char *v = argv[++i];
        int64_t iv = 0;
        double fv = 0;
        bool ok = true;
        sr_train_config *t = &o->train;
        sr_gen_config *g = &o->gen;
#define STR(name, field) else if (!strcmp(a, name)) o->field = v;
#define INT(name, lvalue, lo, hi) else if (!strcmp(a, name)) ok = parse_i64(v, &iv) && iv >= (lo) && iv <= (hi) && ((lvalue) = iv, 1);
#define DBL(name, lvalue, lo, hi) else if (!strcmp(a, name)) ok = parse_f64(v, &fv) && fv >= (lo) && fv <= (hi) && ((lvalue) = fv, 1);
        if (0) {}
        STR("--data", data)
        STR("--save-data", save_data)
        STR("--checkpoint", checkpoint)
        STR("--heatmap", heatmap)
        STR("--metrics", metrics_csv)
        STR("--gen", gen_preset)
        INT("--gen-users", g->n_users, 1, 100000000)
        INT("--gen-items", g->n_items, 2, 100000000)
        DBL("--gen-mean-len", g->mean_len, 1, 100000)
        INT("--gen-min-len", g->min_len, 1, 100000)
        INT("--gen-max-len", g->max_len, 1, 100000)
        INT("--gen-successors", g->successors, 1, 64)
        DBL("--gen-noise", g->noise, 0, 1)
        DBL("--gen-order2", g->order2, 0, 1)
        DBL("--gen-zipf", g->zipf, 0, 5)
        INT("--gen-seed", g->seed, 0, INT64_MAX)
        INT("--maxlen", t->model.maxlen, 1, 100000)
        INT("--hidden-units", t->model.hidden, 1, 100000)
        INT("--hidden", t->model.hidden, 1, 100000)
        INT("--num-blocks", t->model.blocks, 0, HEED_SASREC_MAX_BLOCKS)
        INT("--blocks", t->model.blocks, 0, HEED_SASREC_MAX_BLOCKS)
        INT("--num-heads", t->model.heads, 1, 1024)
        INT("--heads", t->model.heads, 1, 1024)
        DBL("--dropout-rate", t->model.dropout, 0, 0.99)
        DBL("--dropout", t->model.dropout, 0, 0.99)
        DBL("--lr", t->lr, 0, 10)
        DBL("--beta1", t->beta1, 0, 0.999999)
        DBL("--beta2", t->beta2, 0, 0.999999)
        DBL("--l2-emb", t->l2_emb, 0, 10)
        INT("--batch-size", t->batch, 1, 1000000)
        INT("--length-groups", t->max_groups, 1, SR_MAX_GROUPS)
        INT("--batch", t->batch, 1, 1000000)
        INT("--seed", t->seed, 0, INT64_MAX)
        INT("--threads", o->threads, 0, 1024)
        INT("--eval-every", o->eval_every, 0, 1000000)
        INT("--eval-users", o->eval_users, 0, INT64_MAX)
        INT("--negatives", o->negatives, 1, 1000000)
        INT("--k", o->k, 1, 1000000)
        INT("--heatmap-user", o->heatmap_user, 1, INT64_MAX)
        DBL("--target-hr", o->target_hr, 0, 1)
        else if (!strcmp(a, "--num-epochs") || !strcmp(a, "--epochs")) {
            ok = parse_i64(v, &iv) && iv >= 0 && iv <= 1000000;
            if (ok) o->epochs = iv, epochs_set = true;
        } else {
            fprintf(stderr, "sasrec: unknown flag %s (see --help)\n", a);
            return false;
        }
#undef STR
#undef INT
#undef DBL
        if (!ok) {
            fprintf(stderr, "sasrec: bad value '%s' for %s (see --help for the range)\n", v, a);
            return false;
        }
    }
    if (o->bench && !epochs_set) o->epochs = 3;
    if (o->resume && !o->checkpoint) {
        fprintf(stderr, "sasrec: --resume needs --checkpoint PATH\n");
        return false;
    }
    if (o->train.model.hidden % o->train.model.heads) {
        fprintf(stderr, "sasrec: --num-heads %d must divide --hidden-units %lld\n", o->train.model.heads,
                (long long)o->train.model.hidden);
        return false;
    }
    return true;
}

/* The generator settings of a --gen preset, looked up before the other flags so that
 * explicit --gen-* flags change it. */
static bool preset(int argc, char **argv, sr_gen_config *g) {
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--gen")) continue;
        const char *v = argv[i + 1];
        if (!strcmp(v, "small")) *g = gen_small();
        else if (!strcmp(v, "amazon-games")) *g = sr_gen_amazon_games();
        else {
            fprintf(stderr, "sasrec: unknown --gen preset '%s' (small, amazon-games)\n", v);
            return false;
        }
    }
    return true;
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
                                         &(heed_svg_opts){.cmap = HEED_CMAP_VIRIDIS, .title = title, .head = hd,
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

static int evaluate(sr_trainer *t, const options *o, bool test, sr_scorer f, void *user, sr_metrics *m, char *err,
                    size_t errlen) {
    sr_eval_opts e = sr_eval_defaults(t->cfg.model.maxlen, test);
    e.negatives = o->negatives;
    e.max_users = o->eval_users;
    e.k = o->k;
    e.full = o->full_rank;
    return sr_evaluate(t->d, &e, f, user, m, err, errlen);
}

/* Evaluates a baseline on validation and test (unless --no-test) and prints one line. */
static int baseline(sr_trainer *t, const options *o, const char *name, sr_scorer f, void *user, sr_metrics *test,
                    char *err, size_t errlen) {
    sr_metrics valid;
    if (evaluate(t, o, false, f, user, &valid, err, errlen) || (!o->no_test && evaluate(t, o, true, f, user, test, err, errlen)))
        return -1;
    printf("%s: valid HR@%d %.4f NDCG@%d %.4f", name, o->k, valid.hr, o->k, valid.ndcg);
    if (!o->no_test) printf(" | test HR@%d %.4f NDCG@%d %.4f", o->k, test->hr, o->k, test->ndcg);
    printf("  (%lld users, %s)\n", (long long)valid.users, o->full_rank ? "full ranking" : "sampled negatives");
    return 0;
}

int main(int argc, char **argv) {
    options o = {.progress = true, .epochs = 200, .eval_every = 1, .eval_users = 10000, .negatives = 100, .k = 10,
                 .target_hr = -1, .gen = gen_small(), .train = sr_train_defaults(0)};
    /* Under mpirun -np N: N data-parallel ranks (docs/distributed.md); rank 0 prints and
     * writes files, the others only report errors. */
    heed_dist_init(NULL, &argc, &argv);
    bool rank0 = heed_dist_rank() == 0;
    if (!rank0 && !freopen("/dev/null", "w", stdout)) return 1;
    if (!preset(argc, argv, &o.gen) || !parse_args(argc, argv, &o)) return 2;
    o.train.threads = (int)o.threads;
    if (!rank0) o.progress = false;
    char err[1024];
    sr_data d = {0};
    sr_generator gen = {0};
    bool generated = !o.data;
    double t0 = now();
    if (o.data ? sr_load(o.data, &d, err, sizeof err) : sr_generate(&o.gen, &d, &gen, err, sizeof err)) {
        fprintf(stderr, "sasrec: %s\n", err);
        return 1;
    }
    sr_stats st = sr_data_stats(&d);
    printf("data: %s: %lld users, %lld items, %lld interactions, %.2f per user (max %lld); %lld with a test item (%.2fs)\n",
           o.data ? o.data : "generated", (long long)d.n_users, (long long)d.n_items, (long long)d.n_interactions, st.mean_len,
           (long long)st.max_len, (long long)st.users_with_test, now() - t0);
    if (st.active_items < d.n_items / 2 || st.active_users < d.n_users / 2)
        printf("note: only %lld of the ids 1..%lld are items in use and %lld of 1..%lld are users; the model keeps a row "
               "for every id up to the largest (renumber the ids densely to save memory)\n",
               (long long)st.active_items, (long long)d.n_items, (long long)st.active_users, (long long)d.n_users);
    if (o.save_data && rank0) {
        if (sr_save(o.save_data, &d, err, sizeof err)) {
            fprintf(stderr, "sasrec: %s\n", err);
            return 1;
        }
        printf("data: written to %s\n", o.save_data);
    }
    o.train.model.n_items = d.n_items;
    sr_trainer t;
    if (sr_trainer_init(&t, &d, &o.train, err, sizeof err)) {
        fprintf(stderr, "sasrec: %s\n", err);
        return 1;
    }
    const heed_sasrec_config *mc = &o.train.model;
    printf("model: maxlen %lld, hidden %lld, blocks %d, heads %d, dropout %g; %lld parameters; Adam lr %g betas (%g, %g), "
           "batch %lld, %lld steps per epoch, %d threads\n",
           (long long)mc->maxlen, (long long)mc->hidden, mc->blocks, mc->heads, mc->dropout,
           (long long)heed_params_numel(t.P), o.train.lr, o.train.beta1, o.train.beta2, (long long)o.train.batch,
           (long long)sr_trainer_steps_per_epoch(&t), heed_ctx_threads(t.ctx));
    int found = o.resume && access(o.checkpoint, F_OK) == 0; /* rank 0's file decides */
    heed_dist_broadcast(t.ctx, &found, sizeof found, 0);
    if (found) {
        if (sr_trainer_load(&t, o.checkpoint, err, sizeof err)) {
            fprintf(stderr, "sasrec: resume: %s\n", err);
            return 1;
        }
        printf("resumed from %s after epoch %lld\n", o.checkpoint, (long long)t.epoch);
    }

    /* The baselines on the very same candidates as the model: popularity; the counted chain
     * (the generator's formula counted in the training parts, or on real data a first-order
     * Markov chain with popularity for ties); on generated data the ceiling. */
    sr_popularity pop;
    sr_chain chain;
    sr_metrics pop_test = {0}, chain_test = {0}, ceil_test = {0};
    if (sr_popularity_init(&pop, &d) ||
        sr_chain_init(&chain, &d, generated ? o.gen.noise : 1e-3, generated ? o.gen.order2 : 0))
        return fprintf(stderr, "sasrec: out of memory\n"), 1;
    if (!o.bench &&
        (baseline(&t, &o, "popularity", sr_popularity_scorer, &pop, &pop_test, err, sizeof err) ||
         baseline(&t, &o,
                  generated ? "counted chain (the generator's formula, transitions counted in the training parts)"
                            : "Markov chain (counted transitions from the last item, popularity for ties)",
                  sr_chain_scorer, &chain, &chain_test, err, sizeof err) ||
         (generated && baseline(&t, &o, "ceiling (true next-item probabilities)", sr_oracle_scorer, &gen, &ceil_test,
                                err, sizeof err)))) {
        fprintf(stderr, "sasrec: %s\n", err);
        return 1;
    }
    fflush(stdout);

    heed_metrics *log = NULL;
    if (o.metrics_csv && rank0) {
        const char *cols[] = {"epoch", "loss", "seconds", "valid_hr", "valid_ndcg", "test_hr", "test_ndcg"};
        log = heed_metrics_new(t.ctx, o.metrics_csv, 7, cols);
        if (!log) return fprintf(stderr, "sasrec: %s\n", heed_ctx_error(t.ctx)), 1;
    }
    sr_metrics valid = {0}, test = {0};
    double train_seconds = 0;
    int64_t epochs_run = 0;
    int64_t steps = sr_trainer_steps_per_epoch(&t);
    while (t.epoch < o.epochs) {
        char label[32];
        snprintf(label, sizeof label, "epoch %lld", (long long)t.epoch + 1);
        heed_progress *bar = o.progress ? heed_progress_new(&(heed_progress_opts){.total = steps, .label = label}) : NULL;
        double e0 = now();
        double loss = sr_train_epoch(&t, bar, err, sizeof err);
        double secs = now() - e0;
        if (bar) heed_progress_finish(bar);
        if (isnan(loss)) {
            fprintf(stderr, "sasrec: %s\n", err);
            return 1;
        }
        train_seconds += secs;
        epochs_run++;
        printf("epoch %lld: loss %.4f, %.2fs (%.1f ms/step)", (long long)t.epoch, loss, secs, 1e3 * secs / (double)steps);
        bool last = t.epoch == o.epochs;
        bool eval = !o.bench && ((o.eval_every > 0 && t.epoch % o.eval_every == 0) || last);
        valid = test = (sr_metrics){NAN, NAN, 0};
        if (eval) {
            double v0 = now();
            if (evaluate(&t, &o, false, sr_model_scorer, &t, &valid, err, sizeof err) ||
                (!o.no_test && evaluate(&t, &o, true, sr_model_scorer, &t, &test, err, sizeof err))) {
                fprintf(stderr, "\nsasrec: %s\n", err);
                return 1;
            }
            printf("; valid HR@%d %.4f NDCG@%d %.4f", o.k, valid.hr, o.k, valid.ndcg);
            if (!o.no_test) printf("; test HR@%d %.4f NDCG@%d %.4f", o.k, test.hr, o.k, test.ndcg);
            printf(" (eval %.2fs)", now() - v0);
        }
        printf("\n");
        fflush(stdout);
        if (log) heed_metrics_add(log, (double[]){(double)t.epoch, loss, secs, valid.hr, valid.ndcg, test.hr, test.ndcg});
        if (o.checkpoint && sr_trainer_save(&t, o.checkpoint, err, sizeof err)) {
            fprintf(stderr, "sasrec: checkpoint: %s\n", err);
            return 1;
        }
    }
    if (log) heed_metrics_close(log);
    if (!o.bench && epochs_run == 0) { /* nothing left to train (a finished run resumed): evaluate it */
        if (evaluate(&t, &o, false, sr_model_scorer, &t, &valid, err, sizeof err) ||
            (!o.no_test && evaluate(&t, &o, true, sr_model_scorer, &t, &test, err, sizeof err))) {
            fprintf(stderr, "sasrec: %s\n", err);
            return 1;
        }
    }

    if (o.bench && epochs_run > 0) {
        double per = train_seconds / (double)epochs_run;
        printf("{\"bench\":\"sasrec\",\"case\":\"%s users=%lld items=%lld maxlen=%lld d=%lld blocks=%d batch=%lld\","
               "\"epochs\":%lld,\"seconds_per_epoch\":%.3f,\"target_seconds\":8,\"threads\":%d,"
               "\"pytorch_reference_seconds_per_epoch\":40,\"pytorch_reference\":\"DESIGN notes figure, not measured in "
               "this run\",\"ratio_vs_pytorch_reference\":%.2f}\n",
               generated ? (o.gen_preset ? o.gen_preset : "generated") : "data", (long long)d.n_users, (long long)d.n_items,
               (long long)mc->maxlen, (long long)mc->hidden, mc->blocks, (long long)o.train.batch, (long long)epochs_run, per,
               heed_ctx_threads(t.ctx), 40.0 / per);
    }
    if (!o.bench) {
        printf("final: model valid HR@%d %.4f NDCG@%d %.4f", o.k, valid.hr, o.k, valid.ndcg);
        if (!o.no_test) printf(" | test HR@%d %.4f NDCG@%d %.4f", o.k, test.hr, o.k, test.ndcg);
        printf("\n");
        if (!o.no_test) {
            printf("summary (test HR@%d): model %.4f", o.k, test.hr);
            if (generated) printf(" vs ceiling %.4f", ceil_test.hr);
            printf(" vs %s chain %.4f vs popularity %.4f\n", generated ? "counted" : "Markov", chain_test.hr, pop_test.hr);
        }
    }
    if (o.heatmap && rank0) {
        int64_t u = o.heatmap_user;
        for (int64_t v = 1; !u && v <= d.n_users; v++)
            if (sr_len(&d, v) >= 3) u = v;
        if (u < 1 || u > d.n_users || write_heatmap(o.heatmap, &t, u, err, sizeof err)) {
            fprintf(stderr, "sasrec: heatmap: %s\n", u < 1 || u > d.n_users ? "no such user" : err);
            return 1;
        }
        printf("heatmap: the attention of user %lld above\n", (long long)u);
    }
    int status = 0;
    if (o.target_hr >= 0 && !o.bench && !(test.hr >= o.target_hr)) {
        fprintf(stderr, "sasrec: test HR@%d %.4f is below the target %.4f\n", o.k, test.hr, o.target_hr);
        status = 3;
    }
    sr_popularity_free(&pop);
    sr_chain_free(&chain);
    sr_trainer_free(&t);
    sr_generator_free(&gen);
    sr_data_free(&d);
    heed_dist_finalize();
    return status;
}
