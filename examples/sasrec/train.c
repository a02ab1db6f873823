/* SASRec training loop, checkpoints and the model scorer. */
#include "train.h"
#include <heed/elementwise.h>
#include "../example_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

sr_train_config sr_train_defaults(int64_t n_items) {
    return (sr_train_config){
        .model =
            {.n_items = n_items, .maxlen = 50, .hidden = 50, .blocks = 2, .heads = 1, .dropout = 0.5, .ln_eps = 1e-8},
        .lr = 0.001,
        .beta1 = 0.9,
        .beta2 = 0.98,
        .batch = 128,
        .seed = 1,
        .dtype = HEED_F32,
        .max_groups = 4,
    };
}

void sr_trainer_free(sr_trainer *t) {
    if (!t) return;
    heed_dist_overlap_free(t->overlap);
    heed_graph_free(t->g);
    heed_optimizer_free(t->opt);
    heed_params_free(t->P);
    heed_ctx_free(t->ctx);
    free(t->users);
    free(t->seq);
    free(t->pos);
    free(t->neg);
    free(t->gseq);
    free(t->gpos);
    free(t->gneg);
    free(t->order);
    free(t->len);
    free(t->dp);
    *t = (sr_trainer){0};
}

int sr_trainer_init(sr_trainer *t, const sr_data *d, const sr_train_config *cfg, char *err, size_t errlen) {
    *t = (sr_trainer){.cfg = *cfg, .d = d};
    if (cfg->batch < 1 || cfg->max_groups < 1 || cfg->max_groups > SR_MAX_GROUPS) {
        snprintf(err, errlen, "batch size %lld, max_groups %d (batch must be >= 1, max_groups in 1..%d)",
                 (long long)cfg->batch, cfg->max_groups, SR_MAX_GROUPS);
        return -1;
    }
    if (cfg->model.n_items < d->n_items) {
        snprintf(err, errlen, "the model knows %lld items but the data has ids up to %lld",
                 (long long)cfg->model.n_items, (long long)d->n_items);
        return -1;
    }
    t->ctx = heed_ctx_new(&(heed_ctx_opts){.seed = cfg->seed, .threads = cfg->threads});
    if (!t->ctx) goto oom;
    if (heed_dist_init(t->ctx, NULL, NULL) != HEED_OK) goto ctx_error; /* the rank's dropout streams */
    t->P = heed_params_new(t->ctx, cfg->dtype);
    if (!t->P) goto ctx_error;
    if (heed_sasrec_declare(&t->m, t->P, &cfg->model) != HEED_OK) goto ctx_error;
    heed_adam_opts ao = {.lr = HEED_EXACTLY(cfg->lr),
                         .beta1 = HEED_EXACTLY(cfg->beta1),
                         .beta2 = HEED_EXACTLY(cfg->beta2)};
    t->opt = heed_adam(t->P, &ao);
    if (!t->opt) goto ctx_error;
    /* The reference adds l2_emb * sum(w^2) / 2 of both tables to the loss: the gradient
     * gains l2_emb * w, which is Adam's (coupled) weight decay on their group. */
    if (cfg->l2_emb > 0 &&
        (heed_optimizer_add_group_named(t->opt, "sasrec.item_emb", 1.0, cfg->l2_emb, NULL) != HEED_OK ||
         heed_optimizer_add_group_named(t->opt, "sasrec.pos_emb", 1.0, cfg->l2_emb, NULL) != HEED_OK))
        goto ctx_error;
    t->g = heed_graph_new(t->ctx);
    int64_t B = cfg->batch, N = cfg->model.maxlen;
    t->users = malloc((size_t)(d->n_users + 1) * sizeof *t->users);
    t->seq = malloc((size_t)(B * N) * sizeof *t->seq);
    t->pos = malloc((size_t)(B * N) * sizeof *t->pos);
    t->neg = malloc((size_t)(B * N) * sizeof *t->neg);
    t->gseq = malloc((size_t)(B * N) * sizeof *t->gseq);
    t->gpos = malloc((size_t)(B * N) * sizeof *t->gpos);
    t->gneg = malloc((size_t)(B * N) * sizeof *t->gneg);
    t->order = malloc((size_t)B * sizeof *t->order);
    t->len = malloc((size_t)B * sizeof *t->len);
    t->dp = malloc((size_t)(2 * (cfg->max_groups + 1) * (B + 1)) * sizeof *t->dp);
    if (!t->g || !t->users || !t->seq || !t->pos || !t->neg || !t->gseq || !t->gpos || !t->gneg || !t->order ||
        !t->len || !t->dp)
        goto oom;
    heed_graph_set_anomaly(t->g, cfg->anomaly);
    /* Data-parallel (a world of one does nothing here): rank 0's weights everywhere, and
     * the allreduce of each gradient bucket starting as soon as backward finishes it. */
    if (heed_dist_broadcast_params(t->P, 0) != HEED_OK ||
        (!cfg->blocking_allreduce && !(t->overlap = heed_dist_overlap_new(t->P, t->g, NULL))))
        goto ctx_error;
    for (int64_t u = 1; u <= d->n_users; u++) {
        if (sr_train_len(d, u) < 2) continue;
        if (sr_unseen_in_train(d, u) == 0) {
            snprintf(err, errlen, "user %lld trained on every one of the %lld items: no negative item to sample",
                     (long long)u, (long long)d->n_items);
            sr_trainer_free(t);
            return -1;
        }
        t->users[t->n_users++] = u;
    }
    if (t->n_users == 0) {
        snprintf(err, errlen, "no user has 2 or more training items: nothing to train on");
        sr_trainer_free(t);
        return -1;
    }
    return 0;
ctx_error:
    snprintf(err, errlen, "%s", heed_ctx_error(t->ctx));
    sr_trainer_free(t);
    return -1;
oom:
    snprintf(err, errlen, "out of memory setting up training");
    sr_trainer_free(t);
    return -1;
}

int64_t sr_trainer_steps_per_epoch(const sr_trainer *t) { return (t->n_users + t->cfg.batch - 1) / t->cfg.batch; }

/* Rows `rows` of a [*, N] array -> their last w columns, packed as [n][w] in out. */
static void gather(int64_t *out, const int64_t *a, const int64_t *rows, int64_t n, int64_t N, int64_t w) {
    for (int64_t i = 0; i < n; i++) memcpy(out + i * w, a + rows[i] * N + (N - w), (size_t)w * sizeof *a);
}

/* The cost of running sorted rows [i, j) as one group, in row-columns: their count times
 * the longest length, plus a fixed cost per group (the ops' launch and small-GEMM loss). */
#define GROUP_COST 256

/* Splits rows sorted by length (len[order[.]] ascending) into at most G groups of least
 * total cost; cut[0] = 0 < cut[1] < ... < cut[k] = n. Returns k. Dynamic programming over
 * the <= batch sorted rows; dp holds 2 (G + 1) (n + 1) values. */
static int split_groups(const int64_t *len, const int64_t *order, int64_t n, int G, int64_t *dp, int64_t *cut) {
    if (G > n) G = (int)n;
    /* best[k][j]: least cost of the first j rows in k groups; from[k][j]: where the last starts */
    int64_t(*best)[n + 1] = (int64_t(*)[n + 1]) dp, (*from)[n + 1] = (int64_t(*)[n + 1])(dp + (G + 1) * (n + 1));
    for (int64_t j = 0; j <= n; j++) best[0][j] = j ? INT64_MAX : 0;
    for (int k = 1; k <= G; k++)
        for (int64_t j = 0; j <= n; j++) {
            best[k][j] = best[k - 1][j], from[k][j] = -1; /* fewer groups */
            for (int64_t i = 0; i < j; i++) {
                if (best[k - 1][i] == INT64_MAX) continue;
                int64_t c = best[k - 1][i] + (j - i) * len[order[j - 1]] + GROUP_COST;
                if (c < best[k][j]) best[k][j] = c, from[k][j] = i;
            }
        }
    int64_t ends[SR_MAX_GROUPS], ns = 0, j = n;
    for (int k = G; k >= 1 && j > 0; k--)
        if (from[k][j] >= 0) ends[ns++] = j, j = from[k][j];
    cut[0] = 0;
    for (int64_t i = 0; i < ns; i++) cut[i + 1] = ends[ns - 1 - i];
    return (int)ns;
}

/* Sorts rows 0..n-1 by length, ascending (stable: insertion sort on <= batch rows). */
static void sort_by_length(const int64_t *len, int64_t *order, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        int64_t r = i, j = i;
        for (; j > 0 && len[order[j - 1]] > len[r]; j--) order[j] = order[j - 1];
        order[j] = r;
    }
}

/* One step's graph: rows lo..hi-1 of the batch in t->seq/pos/neg ([nb, N]) as length
 * groups; the loss, each group weighted by its targets over all nb rows' targets, times
 * the number of ranks (which average the gradients). NULL for no rows. */
static heed_tensor *batch_loss(sr_trainer *t, int64_t lo, int64_t hi, int64_t nb) {
    int64_t N = t->cfg.model.maxlen, total = 0, cut[SR_MAX_GROUPS + 1];
    for (int64_t i = 0; i < nb; i++) {
        const int64_t *row = t->seq + i * N;
        int64_t first = 0; /* left padded: the length is what follows the padding */
        while (first < N && row[first] == 0) first++;
        t->len[i] = N - first;
        total += t->len[i];
    }
    const int64_t *len = t->len + lo, *seq = t->seq + lo * N, *pos = t->pos + lo * N, *neg = t->neg + lo * N;
    sort_by_length(len, t->order, hi - lo);
    int groups = split_groups(len, t->order, hi - lo, t->cfg.max_groups, t->dp, cut);
    t->groups += groups;
    heed_tensor *loss = NULL;
    for (int k = 0; k < groups; k++) {
        int64_t n = cut[k + 1] - cut[k], w = len[t->order[cut[k + 1] - 1]], targets = 0;
        const int64_t *rows = t->order + cut[k];
        for (int64_t i = 0; i < n; i++) targets += len[rows[i]];
        gather(t->gseq, seq, rows, n, N, w);
        gather(t->gpos, pos, rows, n, N, w);
        gather(t->gneg, neg, rows, n, N, w);
        heed_tensor *h = heed_sasrec_forward(t->g, &t->m, t->gseq, n, w, NULL);
        heed_tensor *l = heed_scale(t->g, heed_sasrec_loss(t->g, &t->m, h, t->gpos, t->gneg),
                                    (double)targets / (double)total * heed_dist_size());
        loss = loss ? heed_add(t->g, loss, l) : l;
    }
    return loss;
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The averaged gradients of all ranks (nothing with one); the time it waits. */
static heed_status allreduce(sr_trainer *t) {
    double t0 = seconds();
    heed_status st = t->overlap ? heed_dist_overlap_wait(t->overlap) : heed_dist_allreduce_grads(t->P);
    t->allreduce_seconds += seconds() - t0;
    return st;
}

double sr_train_epoch(sr_trainer *t, heed_progress *progress, char *err, size_t errlen) {
    int64_t B = t->cfg.batch, N = t->cfg.model.maxlen, steps = sr_trainer_steps_per_epoch(t);
    /* Batches of epoch e depend on (seed, e) only: a resumed run sees the same ones. */
    heed_rng r = heed_rng_make(t->cfg.seed, 0x7a1e000 + (uint64_t)t->epoch);
    int64_t n = 0; /* the users in id order, then shuffled: the order depends on the epoch alone */
    for (int64_t u = 1; u <= t->d->n_users; u++)
        if (sr_train_len(t->d, u) >= 2) t->users[n++] = u;
    for (int64_t i = t->n_users - 1; i > 0; i--) {
        int64_t j = (int64_t)heed_rng_below(&r, (uint64_t)i + 1), x = t->users[i];
        t->users[i] = t->users[j], t->users[j] = x;
    }
    double loss_sum = 0;
    t->groups = 0;
    heed_graph_set_training(t->g, true);
    for (int64_t s = 0; s < steps; s++) {
        int64_t b0 = s * B, nb = t->n_users - b0 < B ? t->n_users - b0 : B, lo, hi;
        for (int64_t i = 0; i < nb; i++)
            sr_train_row(t->d, t->users[b0 + i], N, &r, t->seq + i * N, t->pos + i * N, t->neg + i * N);
        heed_dist_shard(nb, heed_dist_rank(), heed_dist_size(), &lo, &hi);
        heed_graph_reset(t->g);
        heed_params_zero_grad(t->P);
        heed_tensor *loss = hi > lo ? batch_loss(t, lo, hi, nb) : NULL; /* no rows: zero gradients */
        double l = loss ? heed_get(loss, 0) : 0;
        /* A diverged loss stops the epoch before it reaches the parameters (so the last
         * checkpoint stays the last good state). In anomaly mode the graph names the op. */
        if (heed_graph_status(t->g) == HEED_OK && !isfinite(l)) {
            snprintf(err, errlen,
                     "loss became %s at epoch %lld step %lld (run with --anomaly to find the first op that produced "
                     "it; a smaller --lr may help)",
                     isnan(l) ? "NaN" : "infinite", (long long)t->epoch + 1, (long long)s + 1);
            return NAN;
        }
        if (loss && heed_backward(t->g, loss) != HEED_OK) {
            snprintf(err, errlen, "epoch %lld step %lld: %s", (long long)t->epoch + 1, (long long)s + 1,
                     heed_graph_error(t->g));
            return NAN;
        }
        if (allreduce(t) != HEED_OK || heed_optimizer_step(t->opt) != HEED_OK) {
            snprintf(err, errlen, "epoch %lld step %lld: %s", (long long)t->epoch + 1, (long long)s + 1,
                     heed_ctx_error(t->ctx));
            return NAN;
        }
        loss_sum += l;
        if (progress) heed_progress_update(progress, s + 1, l);
    }
    t->epoch++;
    /* The ranks' losses are N times their shares of each batch's loss: the mean of their sum. */
    if (heed_dist_allreduce_sum(t->ctx, &loss_sum, 1) != HEED_OK) {
        snprintf(err, errlen, "%s", heed_ctx_error(t->ctx));
        return NAN;
    }
    return loss_sum / heed_dist_size() / (double)steps;
}

/* Scores rows[0..n) of seqs (each [maxlen], their lengths in len) at width w: the
 * rows' scores go to scores + rows[i] * width. */
static int score_group(sr_trainer *t, const int64_t *rows, int64_t n, int64_t w, const int64_t *seqs, int64_t maxlen,
                       const int32_t *cands, int64_t n_cands, float *scores, int64_t *ids, int64_t *x) {
    heed_graph *g = t->g;
    int64_t width = cands ? n_cands : t->cfg.model.n_items + 1;
    for (int64_t i = 0; i < n; i++) {
        memcpy(x + i * w, seqs + rows[i] * maxlen + (maxlen - w), (size_t)w * sizeof *x);
        for (int64_t j = 0; cands && j < n_cands; j++) ids[i * n_cands + j] = cands[rows[i] * n_cands + j];
    }
    heed_graph_reset(g);
    heed_graph_set_training(g, false);
    heed_no_grad_begin(g);
    heed_tensor *h = heed_sasrec_forward(g, &t->m, x, n, w, NULL);
    heed_tensor *s = heed_sasrec_score(g, &t->m, heed_sasrec_last(g, &t->m, h), cands ? ids : NULL, n_cands);
    heed_no_grad_end(g);
    heed_graph_set_training(g, true);
    if (!s) {
        fprintf(stderr, "sasrec: scoring failed: %s\n", heed_graph_error(g));
        return -1;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < width; j++) scores[rows[i] * width + j] = (float)heed_get(s, i * width + j);
    return 0;
}

/* Like training, the rows are sorted by length and scored as up to max_groups length
 * groups, each at the width of its longest row: a row's score is computed from that row
 * alone (rows never interact, and the leading padding is masked), so it is the one the
 * whole batch at its full width gives -- bitwise, which the test checks against
 * max_groups = 1 (one group at the batch's width, heed_sasrec_width). */
int sr_model_scorer(void *user, int64_t n, const int64_t *users, const int64_t *seqs, int64_t maxlen,
                    const int32_t *cands, int64_t n_cands, float *scores) {
    (void)users;
    sr_trainer *t = user;
    int G = t->cfg.max_groups < n ? t->cfg.max_groups : (int)n;
    int64_t *ids = cands ? malloc((size_t)(n * n_cands) * sizeof *ids) : NULL,
            *x = malloc((size_t)(n * maxlen) * sizeof *x);
    int64_t *len = malloc((size_t)n * sizeof *len), *order = malloc((size_t)n * sizeof *order);
    int64_t *dp = malloc((size_t)(2 * (G + 1) * (n + 1)) * sizeof *dp), cut[SR_MAX_GROUPS + 1];
    int rc = -1;
    if ((cands && !ids) || !x || !len || !order || !dp) goto out;
    for (int64_t i = 0; i < n; i++) {
        int64_t first = 0;
        while (first < maxlen && seqs[i * maxlen + first] == 0) first++;
        len[i] = maxlen - first > 0 ? maxlen - first : 1; /* an empty row still has a (padded) column */
    }
    if (G <= 1) { /* the whole batch at its width */
        for (int64_t i = 0; i < n; i++) order[i] = i;
        int64_t width;
        if (heed_sasrec_width(t->ctx, seqs, n, maxlen, &width) != HEED_OK)
            fprintf(stderr, "sasrec: scoring failed: %s\n", heed_ctx_error(t->ctx));
        else rc = score_group(t, order, n, width, seqs, maxlen, cands, n_cands, scores, ids, x);
        goto out;
    }
    sort_by_length(len, order, n);
    int groups = split_groups(len, order, n, G, dp, cut);
    rc = 0;
    for (int k = 0; k < groups && rc == 0; k++)
        rc = score_group(t, order + cut[k], cut[k + 1] - cut[k], len[order[cut[k + 1] - 1]], seqs, maxlen, cands,
                         n_cands, scores, ids, x);
out:
    free(ids);
    free(x);
    free(len);
    free(order);
    free(dp);
    return rc;
}

/* ---------------------------------------------------------------- checkpoints */

/* The settings a checkpoint must agree with: everything that changes what training
 * computes (not --threads: results do not depend on it). Saved as "key=value ..." under
 * sasrec.config; doubles as their shortest exact decimal, so equal means bitwise equal. */
#define CONFIG_ITEMS 17
typedef struct {
    const char *key, *flag; /* flag: how the user sets it */
    char value[40];
} config_item;

static void config_items(const sr_trainer *t, config_item *it) {
    const sr_train_config *c = &t->cfg;
    const heed_sasrec_config *m = &c->model;
    int n = 0;
    char x[32];
#define ITEM(k, f, ...) (it[n] = (config_item){k, f, ""}, snprintf(it[n].value, sizeof it[n].value, __VA_ARGS__), n++)
    ITEM("items", "the number of items (the data)", "%lld", (long long)m->n_items);
    ITEM("users", "the number of users (the data)", "%lld", (long long)t->d->n_users);
    ITEM("interactions", "the number of interactions (the data)", "%lld", (long long)t->d->n_interactions);
    ITEM("maxlen", "--maxlen", "%lld", (long long)m->maxlen);
    ITEM("hidden", "--hidden-units", "%lld", (long long)m->hidden);
    ITEM("blocks", "--num-blocks", "%d", m->blocks);
    ITEM("heads", "--num-heads", "%d", m->heads);
    ITEM("dropout", "--dropout-rate", "%s", ex_exact(m->dropout, x, sizeof x));
    ITEM("ln_eps", "the layernorm epsilon", "%s", ex_exact(m->ln_eps, x, sizeof x));
    ITEM("lr", "--lr", "%s", ex_exact(c->lr, x, sizeof x));
    ITEM("beta1", "--beta1", "%s", ex_exact(c->beta1, x, sizeof x));
    ITEM("beta2", "--beta2", "%s", ex_exact(c->beta2, x, sizeof x));
    ITEM("l2_emb", "--l2-emb", "%s", ex_exact(c->l2_emb, x, sizeof x));
    ITEM("batch", "--batch-size", "%lld", (long long)c->batch);
    ITEM("seed", "--seed", "%llu", (unsigned long long)c->seed);
    ITEM("length_groups", "--length-groups", "%d", c->max_groups);
    ITEM("dtype", "the dtype", "%s", c->dtype == HEED_F64 ? "f64" : "f32");
#undef ITEM
}

static void config_string(const sr_trainer *t, char *buf, size_t len) {
    config_item it[CONFIG_ITEMS];
    config_items(t, it);
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < CONFIG_ITEMS && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%s=%s", i ? " " : "", it[i].key, it[i].value);
}

int sr_trainer_save(sr_trainer *t, const char *path, char *err, size_t errlen) {
    heed_checkpoint_info info = {.epoch = t->epoch, .step = heed_optimizer_steps(t->opt)};
    char cfg[HEED_CKPT_VALUE_LEN];
    config_string(t, cfg, sizeof cfg);
    if (heed_checkpoint_info_set(t->ctx, &info, "sasrec.config", cfg) != HEED_OK) {
        snprintf(err, errlen, "%s: %s", path, heed_ctx_error(t->ctx));
        return -1;
    }
    if (heed_dist_checkpoint_save(t->P, path, t->opt, &info) != HEED_OK) {
        snprintf(err, errlen, "%s", heed_ctx_error(t->ctx));
        return -1;
    }
    return 0;
}

int sr_trainer_load(sr_trainer *t, const char *path, char *err, size_t errlen) {
    heed_checkpoint_info info;
    if (heed_dist_checkpoint_load(t->P, path, t->opt, &info) != HEED_OK) {
        snprintf(err, errlen, "%s", heed_ctx_error(t->ctx));
        return -1;
    }
    /* The parameters were loaded already; a mismatch stops the run, naming the setting. */
    const char *saved = heed_checkpoint_info_get(&info, "sasrec.config");
    if (!saved) {
        snprintf(err, errlen, "%s has no sasrec.config: not a checkpoint of this program", path);
        return -1;
    }
    config_item it[CONFIG_ITEMS];
    config_items(t, it);
    for (int i = 0; i < CONFIG_ITEMS; i++) {
        char was[HEED_CKPT_VALUE_LEN];
        if (!ex_saved_value(saved, it[i].key, was, sizeof was)) {
            snprintf(err, errlen, "%s does not record %s (%s): saved by an older sasrec ('%s'); start a new checkpoint",
                     path, it[i].flag, it[i].key, saved);
            return -1;
        }
        if (strcmp(was, it[i].value) != 0) {
            snprintf(err, errlen,
                     "%s was saved with %s %s, this run has %s %s: resume with the same settings, or start a new "
                     "checkpoint",
                     path, it[i].flag, was, it[i].flag, it[i].value);
            return -1;
        }
    }
    t->epoch = info.epoch;
    return 0;
}
