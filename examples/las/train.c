/* LAS training loop, evaluation, transcription and checkpoints. */
#include "train.h"
#include "../example_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

las_train_config las_train_defaults(void) {
    return (las_train_config){
        .model = {.listener_hidden = 64,
                  .pyramid_layers = 2,
                  .speller_hidden = 128,
                  .embed_dim = 32,
                  .attn_dim = 64,
                  .loc_channels = 8,
                  .loc_kernel = 15,
                  .vocab = LAS_VOCAB,
                  .dropout = 0.1},
        .bands = 40,
        .stack = 2,
        .batch = 32,
        .lr = 0.002,
        .min_lr = 1e-4,
        .warmup = 200,
        .cosine = true,
        .clip = 1,
        .label_smoothing = 0.1,
        .sampling = 0.1,
        .specaugment = 2,
        .seed = 1,
        .beam = 8,
        .length_penalty = 1,
    };
}

void las_trainer_free(las_trainer *t) {
    if (!t) return;
    heed_graph_free(t->g);
    heed_optimizer_free(t->opt);
    heed_params_free(t->P);
    heed_ctx_free(t->ctx);
    free(t->order);
    *t = (las_trainer){0};
}

static const char *const attention_names[] = {"location", "local-m", "local-p"};

const char *las_attention_name(heed_las_attention a) {
    return (unsigned)a < sizeof attention_names / sizeof *attention_names ? attention_names[a] : "?";
}

int las_attention_kind(const char *name) {
    for (int i = 0; name && i < (int)(sizeof attention_names / sizeof *attention_names); i++)
        if (!strcmp(name, attention_names[i])) return i;
    return -1;
}

int64_t las_trainer_steps_per_epoch(const las_trainer *t) { return t->n_batches; }

static const las_corpus *sort_corpus; /* qsort has no user pointer */
static int by_frames(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b, fx = sort_corpus->u[x].frames,
            fy = sort_corpus->u[y].frames;
    return fx != fy ? (fx < fy ? -1 : 1) : (x < y ? -1 : x > y);
}

/* The indices [0, n) of c sorted by length (ties by index). */
static int64_t *sorted_by_length(const las_corpus *c, int64_t n) {
    int64_t *o = malloc((size_t)(n > 0 ? n : 1) * sizeof *o);
    if (!o) return NULL;
    for (int64_t i = 0; i < n; i++) o[i] = i;
    sort_corpus = c;
    qsort(o, (size_t)n, sizeof *o, by_frames);
    return o;
}

int las_trainer_init(las_trainer *t, const las_corpus *train, const las_train_config *cfg, int64_t epochs, char *err,
                     size_t errlen) {
    *t = (las_trainer){.cfg = *cfg, .train = train, .epochs = epochs};
    t->cfg.model.input_dim = cfg->bands * cfg->stack;
    t->cfg.model.vocab = LAS_VOCAB;
    if (train && train->n == 0) return snprintf(err, errlen, "no training utterance"), -1;
    if (train && train->bands != cfg->bands)
        return snprintf(err, errlen, "the data has %d bands, the model expects %d", train->bands, cfg->bands), -1;
    t->ctx = heed_ctx_new(&(heed_ctx_opts){.seed = cfg->seed, .threads = cfg->threads});
    if (!t->ctx) goto oom;
    t->P = heed_params_new(t->ctx, HEED_F32);
    if (!t->P || heed_las_declare(&t->m, t->P, &t->cfg.model) != HEED_OK) goto ctx_error;
    t->opt = heed_adam(t->P, &(heed_adam_opts){.lr = cfg->lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8});
    if (!t->opt) goto ctx_error;
    t->g = heed_graph_new(t->ctx);
    if (!t->g) goto oom;
    if (train) {
        t->n_batches = (train->n + cfg->batch - 1) / cfg->batch;
        if (!(t->order = sorted_by_length(train, train->n))) goto oom;
        int64_t total = t->n_batches * (epochs > 0 ? epochs : 1);
        t->sched = cfg->cosine ? heed_schedule_warmup_cosine(cfg->lr, cfg->warmup < total ? cfg->warmup : total / 10,
                                                             total, cfg->min_lr < cfg->lr ? cfg->min_lr : cfg->lr)
                               : heed_schedule_constant(cfg->lr);
        if (heed_schedule_check(t->ctx, &t->sched) != HEED_OK) {
            snprintf(err, errlen, "learning-rate schedule: %s", heed_ctx_error(t->ctx));
            las_trainer_free(t);
            return -1;
        }
    }
    return 0;
ctx_error:
    snprintf(err, errlen, "%s", heed_ctx_error(t->ctx));
    las_trainer_free(t);
    return -1;
oom:
    snprintf(err, errlen, "out of memory setting up the model");
    las_trainer_free(t);
    return -1;
}

/* ---------------------------------------------------------------- batches */

typedef struct {
    float *x;           /* [B, T, stack * bands] */
    int64_t *len, *tgt; /* [B], [B, L]: tokens, eos, -100 padding */
    int64_t B, T, L;
} batch;

static void batch_free(batch *b) {
    free(b->x), free(b->len), free(b->tgt);
    *b = (batch){0};
}

/* The utterances u[0..B) stacked into a batch; when aug is given, each warped (--vtlp,
 * --tempo: factors drawn for all utterances first) and masked (SpecAugment). */
static int make_batch(const las_trainer *t, const las_utt *const *u, int64_t B, heed_rng *aug, batch *b) {
    const las_train_config *c = &t->cfg;
    int F = c->bands, k = (int)c->stack;
    bool warp = aug && (c->vtlp > 0 || c->tempo > 0);
    *b = (batch){.B = B};
    double *alpha = malloc((size_t)B * sizeof *alpha), *tempo = malloc((size_t)B * sizeof *tempo);
    int64_t *frames = malloc((size_t)B * sizeof *frames), maxf = 0;
    if (!alpha || !tempo || !frames) {
        free(alpha), free(tempo), free(frames);
        return -1;
    }
    for (int64_t i = 0; i < B; i++) {
        alpha[i] = warp && c->vtlp > 0 ? 1 - c->vtlp + 2 * c->vtlp * heed_rng_uniform(aug) : 1;
        tempo[i] = warp && c->tempo > 0 ? 1 - c->tempo + 2 * c->tempo * heed_rng_uniform(aug) : 1;
        frames[i] = warp ? las_warp_frames(u[i]->frames, tempo[i]) : u[i]->frames;
        int64_t s = las_stacked_frames(frames[i], k), l = (int64_t)strlen(u[i]->text) + 1;
        if (s > b->T) b->T = s;
        if (l > b->L) b->L = l;
        if (frames[i] > maxf) maxf = frames[i];
    }
    int64_t D = (int64_t)k * F;
    b->x = calloc((size_t)(B * b->T * D), sizeof *b->x);
    b->len = malloc((size_t)B * sizeof *b->len);
    b->tgt = malloc((size_t)(B * b->L) * sizeof *b->tgt);
    float *scratch = aug ? malloc((size_t)(maxf * F) * sizeof *scratch) : NULL;
    int rc = 0;
    if (!b->x || !b->len || !b->tgt || (aug && !scratch)) {
        batch_free(b);
        rc = -1;
    }
    las_specaug sa = {.time_masks = (int)c->specaugment,
                      .max_time = 20,
                      .freq_masks = (int)c->specaugment,
                      .max_freq = F / 5};
    for (int64_t i = 0; i < B && rc == 0; i++) {
        const float *f = u[i]->feat;
        if (aug) {
            if (warp) las_warp(f, u[i]->frames, F, alpha[i], tempo[i], scratch);
            else memcpy(scratch, f, (size_t)(u[i]->frames * F) * sizeof *scratch);
            las_specaugment(scratch, frames[i], F, aug, &sa);
            f = scratch;
        }
        las_stack(f, frames[i], F, k, b->x + i * b->T * D);
        b->len[i] = las_stacked_frames(frames[i], k);
        const char *s = u[i]->text;
        int64_t n = (int64_t)strlen(s);
        for (int64_t j = 0; j < b->L; j++)
            b->tgt[i * b->L + j] = j < n ? las_char_token((unsigned char)s[j]) : j == n ? LAS_EOS : -100;
    }
    free(scratch), free(alpha), free(tempo), free(frames);
    return rc;
}

/* ---------------------------------------------------------------- training */

double las_train_epoch(las_trainer *t, heed_progress *progress, char *err, size_t errlen) {
    const las_train_config *c = &t->cfg;
    int64_t steps = t->n_batches, B = c->batch, n = t->train->n;
    /* Batch order of epoch e depends on (seed, e) only: a resumed run sees the same. */
    int64_t *perm = malloc((size_t)steps * sizeof *perm);
    const las_utt **u = malloc((size_t)B * sizeof *u);
    if (!perm || !u) {
        free(perm), free(u);
        snprintf(err, errlen, "out of memory");
        return NAN;
    }
    heed_rng r = heed_rng_make(c->seed, 0x1a5000 + (uint64_t)t->epoch);
    for (int64_t i = 0; i < steps; i++) perm[i] = i;
    for (int64_t i = steps - 1; i > 0; i--) {
        int64_t j = (int64_t)heed_rng_below(&r, (uint64_t)i + 1), x = perm[i];
        perm[i] = perm[j], perm[j] = x;
    }
    /* the sampled-feedback probability ramps from 0 to c->sampling over the first half */
    double half = (double)(t->epochs > 1 ? t->epochs : 2) / 2;
    double p_sample = c->sampling * fmin(1.0, (double)t->epoch / half);
    double loss_sum = 0;
    heed_graph_set_training(t->g, true);
    for (int64_t s = 0; s < steps; s++) {
        int64_t b0 = perm[s] * B, nb = n - b0 < B ? n - b0 : B;
        for (int64_t i = 0; i < nb; i++) u[i] = &t->train->u[t->order[b0 + i]];
        heed_rng aug = heed_rng_make(c->seed, 0x5a00000000ull + (uint64_t)t->epoch * 1000000 + (uint64_t)s);
        batch b;
        if (make_batch(t, u, nb, c->specaugment > 0 || c->vtlp > 0 || c->tempo > 0 ? &aug : NULL, &b)) {
            snprintf(err, errlen, "out of memory for a batch");
            loss_sum = NAN;
            break;
        }
        heed_graph_reset(t->g);
        heed_params_zero_grad(t->P);
        heed_tensor *x = heed_input(t->g, HEED_F32, HEED_SHAPE(nb, b.T, c->stack * c->bands), b.x);
        int64_t global = heed_optimizer_steps(t->opt);
        heed_tensor *loss = heed_las_loss(t->g, &t->m, x, b.len, b.tgt, b.L,
                                          &(heed_las_loss_opts){.bos = LAS_SOS,
                                                                .label_smoothing = c->label_smoothing,
                                                                .sampling = p_sample,
                                                                .seed = c->seed,
                                                                .stream = 0x5b000000 + (uint64_t)global},
                                          NULL);
        batch_free(&b);
        double l = loss ? heed_get(loss, 0) : NAN;
        if (heed_graph_status(t->g) == HEED_OK && !isfinite(l)) {
            snprintf(err, errlen, "loss became %s at epoch %lld step %lld (a smaller --lr may help)",
                     isnan(l) ? "NaN" : "infinite", (long long)t->epoch + 1, (long long)s + 1);
            loss_sum = NAN;
            break;
        }
        if (heed_backward(t->g, loss) != HEED_OK) {
            snprintf(err, errlen, "epoch %lld step %lld: %s", (long long)t->epoch + 1, (long long)s + 1,
                     heed_graph_error(t->g));
            loss_sum = NAN;
            break;
        }
        if (c->clip > 0) heed_clip_grad_norm(t->P, c->clip, NULL);
        heed_schedule_apply(t->opt, &t->sched);
        if (heed_optimizer_step_guarded(t->opt, t->g, loss) != HEED_OK) {
            snprintf(err, errlen, "epoch %lld step %lld: %s", (long long)t->epoch + 1, (long long)s + 1,
                     heed_ctx_error(t->ctx));
            loss_sum = NAN;
            break;
        }
        loss_sum += l;
        if (progress) heed_progress_update(progress, s + 1, l);
    }
    free(perm), free(u);
    if (isnan(loss_sum)) return NAN;
    t->epoch++;
    return loss_sum / (double)steps;
}

/* ---------------------------------------------------------------- decoding */

static char *tokens_text(const int64_t *tok, int64_t n) {
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        int ch = las_token_char(tok[i]);
        if (ch) s[k++] = (char)ch;
    }
    s[k] = 0;
    return s;
}

/* Decodes the batch u[0..B): hypotheses in r (free with heed_decode_result_free). */
static int decode_batch(las_trainer *t, const las_utt *const *u, int64_t B, int64_t beam, heed_decode_result *r,
                        char *err, size_t errlen) {
    batch b;
    if (make_batch(t, u, B, NULL, &b)) return snprintf(err, errlen, "out of memory for a batch"), -1;
    heed_graph_reset(t->g);
    heed_tensor *x = heed_input(t->g, HEED_F32, HEED_SHAPE(B, b.T, t->cfg.stack * t->cfg.bands), b.x);
    heed_status st = heed_las_decode(t->g, &t->m, x, b.len,
                                     &(heed_decode_opts){.beam = beam,
                                                         .bos = LAS_SOS,
                                                         .eos = LAS_EOS,
                                                         .length_penalty = t->cfg.length_penalty},
                                     r);
    batch_free(&b);
    if (st != HEED_OK) return snprintf(err, errlen, "decoding: %s", heed_graph_error(t->g)), -1;
    return 0;
}

int las_evaluate(las_trainer *t, const las_corpus *c, int64_t n, int64_t beam, heed_error_counts *counts, char **hyps,
                 int64_t align_id, float **align0, int64_t *align_steps, int64_t *align_n, char *err, size_t errlen) {
    if (n > c->n) n = c->n;
    int64_t *order = sorted_by_length(c, n), chunk = beam > 1 ? 16 : 64;
    const las_utt **u = malloc((size_t)chunk * sizeof *u);
    int rc = 0;
    if (!order || !u) rc = -1, snprintf(err, errlen, "out of memory");
    for (int64_t i0 = 0; !rc && i0 < n; i0 += chunk) {
        int64_t B = n - i0 < chunk ? n - i0 : chunk;
        for (int64_t i = 0; i < B; i++) u[i] = &c->u[order[i0 + i]];
        heed_decode_result r;
        if ((rc = decode_batch(t, u, B, beam, &r, err, errlen))) break;
        for (int64_t i = 0; i < B && !rc; i++) {
            const heed_hypothesis *h = &r.hyp[i * r.n_best];
            char *text = tokens_text(h->tokens, h->len);
            int64_t id = order[i0 + i];
            if (!text || heed_error_counts_add(t->ctx, counts, c->u[id].text, text) != HEED_OK) {
                rc = -1, snprintf(err, errlen, "%s", text ? heed_ctx_error(t->ctx) : "out of memory");
                free(text);
                break;
            }
            if (hyps) hyps[id] = text;
            else free(text);
            if (id == align_id && align0) {
                int64_t steps = h->len + h->finished;
                *align0 = malloc((size_t)(steps * h->keys) * sizeof **align0);
                if (*align0 && h->attention) memcpy(*align0, h->attention, (size_t)(steps * h->keys) * sizeof **align0);
                *align_steps = steps, *align_n = h->keys;
            }
        }
        heed_decode_result_free(&r);
    }
    free(order), free(u);
    return rc;
}

int las_transcribe(las_trainer *t, const float *feat, int64_t frames, int64_t beam, char **text, double *score,
                   float **align, int64_t *steps, int64_t *n_enc, char *err, size_t errlen) {
    las_utt utt = {.text = "", .frames = frames, .feat = (float *)feat};
    const las_utt *u = &utt;
    heed_decode_result r;
    if (decode_batch(t, &u, 1, beam, &r, err, errlen)) return -1;
    const heed_hypothesis *h = &r.hyp[0];
    *text = tokens_text(h->tokens, h->len);
    *score = h->score;
    *steps = h->len + h->finished, *n_enc = h->keys;
    *align = malloc((size_t)(*steps * h->keys) * sizeof **align);
    if (*align && h->attention) memcpy(*align, h->attention, (size_t)(*steps * h->keys) * sizeof **align);
    heed_decode_result_free(&r);
    if (!*text || !*align)
        return free(*text), free(*align), *text = NULL, *align = NULL, snprintf(err, errlen, "out of memory"), -1;
    return 0;
}

/* ---------------------------------------------------------------- checkpoints */

/* A setting: its key in the checkpoint, how the user sets it, its value as text. Doubles
 * are written as their shortest exact decimal, so equal text means bitwise equal. */
typedef struct {
    const char *key, *flag;
    char value[40];
} setting;

#define N_MODEL 14
#define N_TRAIN 16
static void model_settings(const las_train_config *c, setting *s) {
    const heed_las_config *m = &c->model;
    char x[32];
    int n = 0;
#define SET(k, f, ...) (s[n] = (setting){k, f, ""}, snprintf(s[n].value, sizeof s[n].value, __VA_ARGS__), n++)
    SET("bands", "--bands", "%d", c->bands);
    SET("stack", "--stack", "%lld", (long long)c->stack);
    SET("input_dim", "bands x stack", "%lld", (long long)m->input_dim);
    SET("listener_hidden", "--listener-hidden", "%lld", (long long)m->listener_hidden);
    SET("pyramid_layers", "--pyramid-layers", "%d", m->pyramid_layers);
    SET("speller_hidden", "--speller-hidden", "%lld", (long long)m->speller_hidden);
    SET("embed_dim", "--embed-dim", "%lld", (long long)m->embed_dim);
    SET("attn_dim", "--attn-dim", "%lld", (long long)m->attn_dim);
    SET("loc_channels", "--loc-channels", "%lld", (long long)m->loc_channels);
    SET("loc_kernel", "--loc-kernel", "%lld", (long long)m->loc_kernel);
    SET("attention", "--attention", "%s", las_attention_name(m->attention));
    SET("local_window", "--local-window", "%lld", (long long)m->local_window);
    SET("vocab", "the alphabet", "%lld", (long long)m->vocab);
    SET("dropout", "--dropout", "%s", ex_exact(m->dropout, x, sizeof x));
}

static void train_settings(const las_trainer *t, setting *s) {
    const las_train_config *c = &t->cfg;
    char x[32];
    int n = 0;
    SET("train_utterances", "the training data (--train-synth, --train-fsdd, --train-manifest)", "%lld",
        (long long)(t->train ? t->train->n : 0));
    SET("batch", "--batch-size", "%lld", (long long)c->batch);
    SET("epochs", "--epochs (the schedule's length)", "%lld", (long long)t->epochs);
    SET("lr", "--lr", "%s", ex_exact(c->lr, x, sizeof x));
    SET("min_lr", "--min-lr", "%s", ex_exact(c->min_lr, x, sizeof x));
    SET("warmup", "--warmup", "%lld", (long long)c->warmup);
    SET("schedule", "--schedule", "%s", c->cosine ? "cosine" : "constant");
    SET("clip", "--clip", "%s", ex_exact(c->clip, x, sizeof x));
    SET("label_smoothing", "--label-smoothing", "%s", ex_exact(c->label_smoothing, x, sizeof x));
    SET("sampling", "--sampling", "%s", ex_exact(c->sampling, x, sizeof x));
    SET("specaugment", "--specaugment", "%lld", (long long)c->specaugment);
    SET("vtlp", "--vtlp", "%s", ex_exact(c->vtlp, x, sizeof x));
    SET("tempo", "--tempo", "%s", ex_exact(c->tempo, x, sizeof x));
    SET("seed", "--seed", "%llu", (unsigned long long)c->seed);
    SET("first_text", "the training data", "%.30s", t->train && t->train->n ? t->train->u[0].text : "");
    SET("first_frames", "the training data", "%lld", (long long)(t->train && t->train->n ? t->train->u[0].frames : 0));
#undef SET
}

static void join(const setting *s, int n, char *buf, size_t len) {
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < n && at < len; i++) {
        /* values with spaces (the first transcript) are written with '_' */
        char v[40];
        snprintf(v, sizeof v, "%s", s[i].value);
        for (char *p = v; *p; p++)
            if (*p == ' ') *p = '_';
        at += (size_t)snprintf(buf + at, len - at, "%s%s=%s", i ? " " : "", s[i].key, v);
    }
}

int las_trainer_save(las_trainer *t, const char *path, char *err, size_t errlen) {
    heed_checkpoint_info info = {.epoch = t->epoch, .step = heed_optimizer_steps(t->opt)};
    setting ms[N_MODEL], ts[N_TRAIN];
    char a[HEED_CKPT_VALUE_LEN], b[HEED_CKPT_VALUE_LEN];
    model_settings(&t->cfg, ms);
    train_settings(t, ts);
    join(ms, N_MODEL, a, sizeof a);
    join(ts, N_TRAIN, b, sizeof b);
    if (heed_checkpoint_info_set(t->ctx, &info, "las.model", a) != HEED_OK ||
        heed_checkpoint_info_set(t->ctx, &info, "las.train", b) != HEED_OK)
        return snprintf(err, errlen, "%s: %s", path, heed_ctx_error(t->ctx)), -1;
    if (heed_checkpoint_save(t->P, path, t->opt, &info) != HEED_OK)
        return snprintf(err, errlen, "%s", heed_ctx_error(t->ctx)), -1;
    return 0;
}

/* Compares the saved "key=value ..." string with the settings; -1 naming the first that differs. */
static int compare(const char *path, const char *saved, const setting *s, int n, char *err, size_t errlen) {
    char want[HEED_CKPT_VALUE_LEN];
    join(s, n, want, sizeof want);
    for (int i = 0; i < n; i++) {
        char was[HEED_CKPT_VALUE_LEN], now[64];
        if (!ex_saved_value(want, s[i].key, now, sizeof now)) continue;
        if (!ex_saved_value(saved, s[i].key, was, sizeof was))
            return snprintf(err, errlen, "%s does not record %s (%s): start a new checkpoint", path, s[i].flag,
                            s[i].key),
                   -1;
        if (strcmp(was, now) != 0)
            return snprintf(err, errlen,
                            "%s was saved with %s %s, this run has %s: resume with the same settings, or start a new "
                            "checkpoint",
                            path, s[i].flag, was, now),
                   -1;
    }
    return 0;
}

/* The las.model string of a checkpoint's metadata into out; 0 or -1 with the reason. */
static int model_string(const char *path, char *out, size_t len, char *err, size_t errlen) {
    return ex_checkpoint_setting(path, "las.model", "las", out, len, err, errlen);
}

int las_trainer_load(las_trainer *t, const char *path, char *err, size_t errlen) {
    /* the network's settings first: a clearer message than a tensor shape mismatch */
    char model[HEED_CKPT_VALUE_LEN];
    setting ms[N_MODEL], ts[N_TRAIN];
    model_settings(&t->cfg, ms);
    if (model_string(path, model, sizeof model, err, errlen) || compare(path, model, ms, N_MODEL, err, errlen))
        return -1;
    heed_checkpoint_info info;
    if (heed_checkpoint_load(t->P, path, t->opt, &info) != HEED_OK)
        return snprintf(err, errlen, "%s", heed_ctx_error(t->ctx)), -1;
    const char *train = heed_checkpoint_info_get(&info, "las.train");
    if (t->train) {
        train_settings(t, ts);
        if (!train)
            return snprintf(err, errlen, "%s has no las.train: not a training checkpoint of the las program", path), -1;
        if (compare(path, train, ts, N_TRAIN, err, errlen)) return -1;
    }
    t->epoch = info.epoch;
    return 0;
}

int las_checkpoint_config(const char *path, las_train_config *cfg, char *err, size_t errlen) {
    char s[HEED_CKPT_VALUE_LEN], v[64];
    if (model_string(path, s, sizeof s, err, errlen)) return -1;
    struct {
        const char *key;
        int64_t *i;
        int *i32;
        double *d;
        double lo, hi;
    } fields[] = {{"stack", &cfg->stack, NULL, NULL, 1, 8},
                  {"bands", NULL, &cfg->bands, NULL, 40, 80},
                  {"listener_hidden", &cfg->model.listener_hidden, NULL, NULL, 1, 4096},
                  {"pyramid_layers", NULL, &cfg->model.pyramid_layers, NULL, 1, HEED_LAS_MAX_PYRAMID},
                  {"speller_hidden", &cfg->model.speller_hidden, NULL, NULL, 1, 4096},
                  {"embed_dim", &cfg->model.embed_dim, NULL, NULL, 1, 4096},
                  {"attn_dim", &cfg->model.attn_dim, NULL, NULL, 1, 4096},
                  {"loc_channels", &cfg->model.loc_channels, NULL, NULL, 0, 256},
                  {"loc_kernel", &cfg->model.loc_kernel, NULL, NULL, 0, 255},
                  {"local_window", &cfg->model.local_window, NULL, NULL, 0, 1000},
                  {"dropout", NULL, NULL, &cfg->model.dropout, 0, 0.9}};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        char *end;
        if (!ex_saved_value(s, fields[i].key, v, sizeof v))
            return snprintf(err, errlen, "%s: las.model lacks %s", path, fields[i].key), -1;
        double x = strtod(v, &end);
        if (*end || !(x >= fields[i].lo && x <= fields[i].hi) || (!fields[i].d && x != floor(x)))
            return snprintf(err, errlen, "%s: las.model has %s=%s (must be in %g..%g)", path, fields[i].key, v,
                            fields[i].lo, fields[i].hi),
                   -1;
        if (fields[i].i) *fields[i].i = (int64_t)x;
        if (fields[i].i32) *fields[i].i32 = (int)x;
        if (fields[i].d) *fields[i].d = x;
    }
    if (!ex_saved_value(s, "attention", v, sizeof v))
        return snprintf(err, errlen, "%s: las.model lacks attention", path), -1;
    int kind = las_attention_kind(v);
    if (kind < 0)
        return snprintf(err, errlen, "%s: las.model has attention=%s (location, local-m or local-p)", path, v), -1;
    cfg->model.attention = (heed_las_attention)kind;
    if (cfg->bands != 40 && cfg->bands != 80)
        return snprintf(err, errlen, "%s: las.model has bands=%d (40 or 80)", path, cfg->bands), -1;
    return 0;
}
