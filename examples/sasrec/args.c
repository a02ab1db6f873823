/* The sasrec program's flags: defaults, ranges and the rules between them. */
#include "args.h"
#include "../example_util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void sr_usage(FILE *f) {
    fprintf(f, "usage: sasrec [options]\n"
               "data (default: generated, --gen small):\n"
               "  --data PATH            'user item' lines, ids from 1, each user's lines in time order\n"
               "  --gen PRESET           small (6000 users, 500 items), amazon-games (31000 users,\n"
               "                         24000 items, 7.3 items per user) or interests (the demo's:\n"
               "                         10000 users, 500 items in 20 groups, 3 interleaved per user)\n"
               "  --gen-users N  --gen-items N  --gen-mean-len X  --gen-min-len N  --gen-max-len N\n"
               "  --gen-successors K  --gen-noise P  --gen-order2 P  --gen-zipf A  --gen-seed S\n"
               "  --gen-interests M  --gen-clusters N  --gen-repeat P   (the interests generator)\n"
               "                         (the generator's settings: not with --data)\n"
               "  --save-data PATH       write the dataset in the paper's format and go on\n"
               "model and training (the paper's flags; defaults are the paper's for Amazon data):\n"
               "  --maxlen 50  --hidden-units 50  --num-blocks 2  --num-heads 1  --dropout-rate 0.5\n"
               "  --lr 0.001  --beta1 0.9  --beta2 0.98  --batch-size 128  --num-epochs 200  --seed 1\n"
               "  --l2-emb 0             L2 penalty on the item and position embeddings (the reference's)\n"
               "  --threads N            OpenMP threads, the BLAS's too (default: all)\n"
               "  --length-groups N      run a batch as up to N groups of similar length, each at its\n"
               "                         own width (4; 1 = the whole batch at its widest row)\n"
               "  --anomaly              check every op for NaN/Inf and name the first (slower)\n"
               "evaluation:\n"
               "  --eval-every N         epochs between evaluations (1; 0 = only at the end)\n"
               "  --eval-users N         users sampled for evaluation (10000; 0 = all)\n"
               "  --negatives N          sampled negatives per user (100)\n"
               "  --k N                  cut-off of HR@k and NDCG@k (10)\n"
               "  --full-rank            rank against every item the user has not interacted with\n"
               "  --no-test              report validation metrics only (the test set stays unseen)\n"
               "output:\n"
               "  --checkpoint PATH      save the training state after every epoch; an existing PATH is\n"
               "                         only used with --resume\n"
               "  --resume               continue from --checkpoint if the file exists\n"
               "  --heatmap PATH         attention weights of one user at the end: PATH.png a heatmap per\n"
               "                         block (grid of heads), else an SVG per block and head with item ids\n"
               "  --heatmap-user U       that user (default: the first with a test item)\n"
               "  --metrics PATH.csv     per-epoch loss, time and metrics\n"
               "  --no-progress          no progress bar\n"
               "  --bench                time --num-epochs epochs (default 3), no evaluation; print a JSON line\n"
               "  --target-hr X          exit with status 3 if the final test HR@k is below X\n");
}

/* The flags without a value, and where they go (NULL for a name that is not one). */
static bool *bool_flag(const char *a, sr_options *o) {
    return !strcmp(a, "--resume")      ? &o->resume
           : !strcmp(a, "--full-rank") ? &o->full_rank
           : !strcmp(a, "--bench")     ? &o->bench
           : !strcmp(a, "--no-test")   ? &o->no_test
           : !strcmp(a, "--anomaly")   ? &o->train.anomaly
                                       : NULL;
}

static bool valueless(const char *a, sr_options *o) {
    return bool_flag(a, o) || !strcmp(a, "--no-progress") || !strcmp(a, "--help") || !strcmp(a, "-h");
}

/* The --gen preset (the last one given), applied before the flags so that explicit --gen-*
 * flags change it. */
static int preset(int argc, char *const *argv, sr_options *o, char *err, size_t errlen) {
    for (int i = 1; i + 1 < argc; i++) {
        if (valueless(argv[i], o)) continue;
        const char *a = argv[i], *v = argv[++i];
        if (strcmp(a, "--gen")) continue;
        if (!sr_gen_preset(v, &o->gen))
            return snprintf(err, errlen, "unknown --gen preset '%s' (small, amazon-games, interests)", v),
                   SR_ARGS_ERROR;
    }
    return SR_ARGS_OK;
}

/* The rules between flags, once all are read. */
static int check_options(const sr_options *o, char *err, size_t errlen) {
    if (o->data && o->gen_flag)
        return snprintf(err, errlen, "%s has no effect with --data (the data comes from the file): drop one of them",
                        o->gen_flag),
               SR_ARGS_ERROR;
    if (o->resume && !o->checkpoint) return snprintf(err, errlen, "--resume needs --checkpoint PATH"), SR_ARGS_ERROR;
    if (o->train.model.hidden % o->train.model.heads)
        return snprintf(err, errlen, "--num-heads %d must divide --hidden-units %lld", o->train.model.heads,
                        (long long)o->train.model.hidden),
               SR_ARGS_ERROR;
    return SR_ARGS_OK;
}

int sr_parse_args(int argc, char *const *argv, sr_options *o, char *err, size_t errlen) {
    *o = (sr_options){.progress = true,
                      .epochs = 200,
                      .eval_every = 1,
                      .eval_users = 10000,
                      .negatives = 100,
                      .k = 10,
                      .target_hr = -1,
                      .train = sr_train_defaults(0)};
    sr_gen_preset("small", &o->gen);
    if (err && errlen) err[0] = 0;
    if (preset(argc, argv, o, err, errlen) != SR_ARGS_OK) return SR_ARGS_ERROR;
    bool epochs_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return SR_ARGS_HELP;
        bool *flag = bool_flag(a, o);
        if (flag) {
            *flag = true;
            continue;
        }
        if (!strcmp(a, "--no-progress")) {
            o->progress = false;
            continue;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL; /* NULL: no value (parse_* and STR refuse it) */
        int64_t iv = 0;
        double fv = 0;
        bool ok = true;
        sr_train_config *t = &o->train;
        sr_gen_config *g = &o->gen;
        if (!strncmp(a, "--gen", 5) && !o->gen_flag) o->gen_flag = a;
#define STR(name, field) else if (!strcmp(a, name)) ok = v && (o->field = v);
#define INT(name, lvalue, lo, hi)                                                                                      \
    else if (!strcmp(a, name)) ok = ex_parse_i64(v, &iv) && iv >= (lo) && iv <= (hi) && ((lvalue) = iv, 1);
#define DBL(name, lvalue, lo, hi)                                                                                      \
    else if (!strcmp(a, name)) ok = ex_parse_f64(v, &fv) && fv >= (lo) && fv <= (hi) && ((lvalue) = fv, 1);
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
        INT("--gen-interests", g->interests, 0, 64)
        INT("--gen-clusters", g->clusters, 0, 100000000)
        DBL("--gen-repeat", g->repeat, 0, 1)
        INT("--maxlen", t->model.maxlen, 1, 100000)
        INT("--hidden-units", t->model.hidden, 1, 100000)
        INT("--hidden", t->model.hidden, 1, 100000)
        INT("--num-blocks", t->model.blocks, 0, HEED_SASREC_MAX_BLOCKS)
        INT("--blocks", t->model.blocks, 0, HEED_SASREC_MAX_BLOCKS)
        INT("--num-heads", t->model.heads, 1, 1024)
        INT("--heads", t->model.heads, 1, 1024)
        DBL("--dropout-rate", t->model.dropout, 0, 0.99)
        DBL("--dropout", t->model.dropout, 0, 0.99)
        DBL("--lr", t->lr, 0, 1e30) /* any finite step: a diverging run is reported, not prevented */
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
            ok = ex_parse_i64(v, &iv) && iv >= 0 && iv <= 1000000;
            if (ok) o->epochs = iv, epochs_set = true;
        }
        else {
            return snprintf(err, errlen, "unknown flag %s (see --help)", a), SR_ARGS_ERROR;
        }
#undef STR
#undef INT
#undef DBL
        if (!v) return snprintf(err, errlen, "%s needs a value (see --help)", a), SR_ARGS_ERROR;
        if (!ok) return snprintf(err, errlen, "bad value '%s' for %s (see --help for the range)", v, a), SR_ARGS_ERROR;
    }
    if (o->bench && !epochs_set) o->epochs = 3;
    o->train.threads = (int)o->threads;
    return check_options(o, err, errlen);
}
