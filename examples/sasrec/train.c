/* SASRec training loop, checkpoints and the model scorer. */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sr_train_config sr_train_defaults(int64_t n_items) {
    return (sr_train_config){
        .model = {.n_items = n_items, .maxlen = 50, .hidden = 50, .blocks = 2, .heads = 1, .dropout = 0.5, .ln_eps = 1e-8},
        .lr = 0.001,
        .beta1 = 0.9,
        .beta2 = 0.98,
        .batch = 128,
        .seed = 1,
        .dtype = HEED_F32,
    };
}

void sr_trainer_free(sr_trainer *t) {
    if (!t) return;
    heed_graph_free(t->g);
    heed_optimizer_free(t->opt);
    heed_params_free(t->P);
    heed_ctx_free(t->ctx);
    free(t->users);
    free(t->seq);
    free(t->pos);
    free(t->neg);
    *t = (sr_trainer){0};
}

int sr_trainer_init(sr_trainer *t, const sr_data *d, const sr_train_config *cfg, char *err, size_t errlen) {
    *t = (sr_trainer){.cfg = *cfg, .d = d};
    if (cfg->batch < 1) {
        snprintf(err, errlen, "batch size %lld (must be >= 1)", (long long)cfg->batch);
        return -1;
    }
    if (cfg->model.n_items < d->n_items) {
        snprintf(err, errlen, "the model knows %lld items but the data has ids up to %lld", (long long)cfg->model.n_items,
                 (long long)d->n_items);
        return -1;
    }
    t->ctx = heed_ctx_new(&(heed_ctx_opts){.seed = cfg->seed, .threads = cfg->threads});
    if (!t->ctx) goto oom;
    t->P = heed_params_new(t->ctx, cfg->dtype);
    if (!t->P) goto ctx_error;
    if (heed_sasrec_init(&t->m, t->P, &cfg->model) != HEED_OK) goto ctx_error;
    heed_adam_opts ao = HEED_ADAM_DEFAULTS;
    ao.lr = cfg->lr, ao.beta1 = cfg->beta1, ao.beta2 = cfg->beta2;
    t->opt = heed_adam(t->P, &ao);
    if (!t->opt) goto ctx_error;
    /* The reference adds l2_emb * sum(w^2) / 2 of both tables to the loss: the gradient
     * gains l2_emb * w, which is Adam's (coupled) weight decay on their group. */
    if (cfg->l2_emb > 0 && (heed_optimizer_add_group_named(t->opt, "sasrec.item_emb", 1.0, cfg->l2_emb) < 0 ||
                            heed_optimizer_add_group_named(t->opt, "sasrec.pos_emb", 1.0, cfg->l2_emb) < 0))
        goto ctx_error;
    t->g = heed_graph_new(t->ctx);
    int64_t B = cfg->batch, N = cfg->model.maxlen;
    t->users = malloc((size_t)(d->n_users + 1) * sizeof *t->users);
    t->seq = malloc((size_t)(B * N) * sizeof *t->seq);
    t->pos = malloc((size_t)(B * N) * sizeof *t->pos);
    t->neg = malloc((size_t)(B * N) * sizeof *t->neg);
    if (!t->g || !t->users || !t->seq || !t->pos || !t->neg) goto oom;
    for (int64_t u = 1; u <= d->n_users; u++)
        if (sr_train_len(d, u) >= 2) t->users[t->n_users++] = u;
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

/* Rows [n][N] -> their last w columns, [n][w], in place. */
static void compact(int64_t *a, int64_t n, int64_t N, int64_t w) {
    if (w == N) return;
    for (int64_t i = 0; i < n; i++) memmove(a + i * w, a + i * N + (N - w), (size_t)w * sizeof *a);
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
    heed_graph_set_training(t->g, true);
    for (int64_t s = 0; s < steps; s++) {
        int64_t b0 = s * B, nb = t->n_users - b0 < B ? t->n_users - b0 : B;
        for (int64_t i = 0; i < nb; i++)
            sr_train_row(t->d, t->users[b0 + i], N, &r, t->seq + i * N, t->pos + i * N, t->neg + i * N);
        /* Drop the leading columns that are padding in every row: same result, less work. */
        int64_t w = heed_sasrec_width(t->seq, nb, N);
        compact(t->seq, nb, N, w);
        compact(t->pos, nb, N, w);
        compact(t->neg, nb, N, w);
        heed_graph_reset(t->g);
        heed_params_zero_grad(t->P);
        heed_tensor *h = heed_sasrec_forward(t->g, &t->m, t->seq, nb, w, NULL);
        heed_tensor *loss = heed_sasrec_loss(t->g, &t->m, h, t->pos, t->neg);
        if (heed_backward(t->g, loss) != HEED_OK) {
            snprintf(err, errlen, "step %lld: %s", (long long)s + 1, heed_graph_error(t->g));
            return NAN;
        }
        if (heed_optimizer_step(t->opt) != HEED_OK) {
            snprintf(err, errlen, "step %lld: %s", (long long)s + 1, heed_ctx_error(t->ctx));
            return NAN;
        }
        double l = heed_get(loss, 0);
        loss_sum += l;
        if (progress) heed_progress_update(progress, s + 1, l);
    }
    t->epoch++;
    return loss_sum / (double)steps;
}

int sr_model_scorer(void *user, int64_t n, const int64_t *users, const int64_t *seqs, int64_t maxlen,
                    const int32_t *cands, int64_t n_cands, float *scores) {
    sr_trainer *t = user;
    heed_graph *g = t->g;
    int64_t width = cands ? n_cands : t->cfg.model.n_items + 1;
    int64_t w = heed_sasrec_width(seqs, n, maxlen);
    int64_t *ids = cands ? malloc((size_t)(n * n_cands) * sizeof *ids) : NULL, *rows = malloc((size_t)(n * w) * sizeof *rows);
    if ((cands && !ids) || !rows) {
        free(ids);
        free(rows);
        return -1;
    }
    for (int64_t i = 0; cands && i < n * n_cands; i++) ids[i] = cands[i];
    for (int64_t i = 0; i < n; i++) memcpy(rows + i * w, seqs + i * maxlen + (maxlen - w), (size_t)w * sizeof *rows);
    heed_graph_reset(g);
    heed_graph_set_training(g, false);
    heed_no_grad_begin(g);
    heed_tensor *h = heed_sasrec_forward(g, &t->m, rows, n, w, NULL);
    heed_tensor *s = heed_sasrec_score(g, &t->m, heed_sasrec_last(g, &t->m, h), ids, n_cands);
    heed_no_grad_end(g);
    heed_graph_set_training(g, true);
    free(ids);
    free(rows);
    if (!s) {
        fprintf(stderr, "sasrec: scoring failed: %s\n", heed_graph_error(g));
        return -1;
    }
    for (int64_t i = 0; i < n * width; i++) scores[i] = (float)heed_get(s, i);
    return 0;
}

/* ---------------------------------------------------------------- checkpoints */

/* The settings a checkpoint must agree with, as one string. */
static void config_string(const sr_trainer *t, char *buf, size_t len) {
    const heed_sasrec_config *m = &t->cfg.model;
    snprintf(buf, len, "items=%lld maxlen=%lld hidden=%lld blocks=%d heads=%d batch=%lld seed=%llu users=%lld",
             (long long)m->n_items, (long long)m->maxlen, (long long)m->hidden, m->blocks, m->heads,
             (long long)t->cfg.batch, (unsigned long long)t->cfg.seed, (long long)t->d->n_users);
}

int sr_trainer_save(sr_trainer *t, const char *path, char *err, size_t errlen) {
    heed_checkpoint_info info = {.epoch = t->epoch, .step = heed_optimizer_steps(t->opt)};
    char cfg[256];
    config_string(t, cfg, sizeof cfg);
    heed_checkpoint_info_set(&info, "sasrec.config", cfg);
    if (heed_checkpoint_save(path, t->P, t->opt, &info) != HEED_OK) {
        snprintf(err, errlen, "%s", heed_ctx_error(t->ctx));
        return -1;
    }
    return 0;
}

int sr_trainer_load(sr_trainer *t, const char *path, char *err, size_t errlen) {
    heed_checkpoint_info info;
    if (heed_checkpoint_load(path, t->P, t->opt, &info) != HEED_OK) {
        snprintf(err, errlen, "%s", heed_ctx_error(t->ctx));
        return -1;
    }
    char cfg[256];
    config_string(t, cfg, sizeof cfg);
    const char *saved = heed_checkpoint_info_get(&info, "sasrec.config");
    if (!saved || strcmp(saved, cfg) != 0) {
        /* The parameters were loaded already; say clearly that the run does not match. */
        snprintf(err, errlen, "%s was saved with '%s', this run is '%s'", path, saved ? saved : "(no config)", cfg);
        return -1;
    }
    t->epoch = info.epoch;
    return 0;
}
