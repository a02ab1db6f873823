/* Caption example: pretraining, annotations, the captioning loop and evaluation. */
#include "train.h"
#include <heed/index.h>
#include <heed/loss.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IGNORE (-100)
#define CROP 32 /* pretraining images: one object in a 32x32 crop, as in a scene cell */

cap_config cap_defaults(void) {
    return (cap_config){
        .model = {.in_channels = 1,
                  .channels = {16, 32, 64},
                  .classes = FM_CLASSES,
                  .embed_dim = 64,
                  .hidden = 128,
                  .attn_dim = 64,
                  .vocab = VOCAB_SIZE,
                  .cells = (SCENE_SIDE / 16) * (SCENE_SIDE / 16),
                  .dropout = 0.1},
        .batch = 64,
        .lr = 0.002,
        .clip = 5,
        .lambda = 0.01,
        .attention = HEED_CAPTION_SOFT,
        .entropy = 0.01,
        .soft_mix = 0.5,
        .pretrain_images = 60000,
        .train_scenes = 24000,
        .test_scenes = 1000,
        .seed = 1,
    };
}

const char *cap_init_name(heed_caption_init init) { return init == HEED_CAPTION_INIT_CONSTANT ? "constant" : "mean"; }

const char *cap_order_name(cap_order order) { return order == CAP_ORDER_ANY ? "any" : "reading"; }

int cap_order_parse(const char *name, cap_order *order) {
    if (!name || (strcmp(name, "reading") && strcmp(name, "any"))) return -1;
    *order = strcmp(name, "any") ? CAP_ORDER_READING : CAP_ORDER_ANY;
    return 0;
}

int cap_training_references(const scene *sc, caption *refs, cap_order order) {
    return order == CAP_ORDER_ANY ? scene_captions(sc, refs) : scene_captions_in_reading_order(sc, refs);
}

int cap_init_parse(const char *name, heed_caption_init *init) {
    if (!name || (strcmp(name, "mean") && strcmp(name, "constant"))) return -1;
    *init = strcmp(name, "mean") ? HEED_CAPTION_INIT_CONSTANT : HEED_CAPTION_INIT_MEAN;
    return 0;
}

void cap_trainer_free(cap_trainer *t) {
    if (!t) return;
    heed_graph_free(t->g);
    heed_optimizer_free(t->opt);
    heed_params_free(t->P);
    heed_ctx_free(t->ctx);
    *t = (cap_trainer){0};
}

int cap_trainer_init(cap_trainer *t, const cap_config *cfg, int64_t epochs, char *err, size_t errlen) {
    *t = (cap_trainer){.cfg = *cfg, .epochs = epochs, .grid = SCENE_SIDE / 16};
    t->ctx = heed_ctx_new(&(heed_ctx_opts){.seed = cfg->seed, .threads = cfg->threads});
    if (!t->ctx || !(t->g = heed_graph_new(t->ctx))) {
        snprintf(err, errlen, "out of memory setting up the model");
        cap_trainer_free(t);
        return -1;
    }
    t->P = heed_params_new(t->ctx, HEED_F32);
    if (!t->P || heed_caption_declare(&t->m, t->P, &cfg->model) != HEED_OK ||
        !(t->opt = heed_adam(t->P, &(heed_adam_opts){.lr = cfg->lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8}))) {
        snprintf(err, errlen, "%s", heed_ctx_error(t->ctx));
        cap_trainer_free(t);
        return -1;
    }
    return 0;
}

/* A random order of 0 .. n-1 fixed by (seed, stream). */
static int64_t *shuffled(int64_t n, uint64_t seed, uint64_t stream) {
    int64_t *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p) return NULL;
    heed_rng r = heed_rng_make(seed, stream);
    for (int64_t i = 0; i < n; i++) p[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)heed_rng_below(&r, (uint64_t)i + 1), x = p[i];
        p[i] = p[j], p[j] = x;
    }
    return p;
}

/* One optimizer step on loss; -1 with err. */
static int step(cap_trainer *t, heed_tensor *loss, const char *what, int64_t epoch, int64_t s, char *err,
                size_t errlen) {
    double l = loss ? heed_get(loss, 0) : NAN;
    if (heed_graph_status(t->g) == HEED_OK && !isfinite(l))
        return snprintf(err, errlen, "%s: loss became %s at epoch %lld step %lld (a smaller --lr may help)", what,
                        isnan(l) ? "NaN" : "infinite", (long long)epoch + 1, (long long)s + 1),
               -1;
    if (heed_backward(t->g, loss) != HEED_OK)
        return snprintf(err, errlen, "%s epoch %lld step %lld: %s", what, (long long)epoch + 1, (long long)s + 1,
                        heed_graph_error(t->g)),
               -1;
    if (t->cfg.clip > 0) heed_clip_grad_norm(t->P, t->cfg.clip, NULL);
    if (heed_optimizer_step_guarded(t->opt, t->g, loss) != HEED_OK)
        return snprintf(err, errlen, "%s epoch %lld step %lld: %s", what, (long long)epoch + 1, (long long)s + 1,
                        heed_ctx_error(t->ctx)),
               -1;
    return 0;
}

/* ---------------------------------------------------------------- pretraining */

double cap_pretrain_epoch(cap_trainer *t, const fm_set *train, int64_t epoch, heed_progress *bar, double *accuracy,
                          char *err, size_t errlen) {
    int64_t n = t->cfg.pretrain_images < train->n ? t->cfg.pretrain_images : train->n, B = t->cfg.batch;
    int64_t steps = (n + B - 1) / B, correct = 0;
    int64_t *order = shuffled(train->n, t->cfg.seed, 0x9e7a000 + (uint64_t)epoch);
    float *x = malloc((size_t)(B * CROP * CROP) * sizeof *x);
    int64_t *y = malloc((size_t)B * sizeof *y), *pred = malloc((size_t)B * sizeof *pred);
    double sum = 0;
    if (!order || !x || !y || !pred) {
        free(order), free(x), free(y), free(pred);
        return snprintf(err, errlen, "out of memory"), NAN;
    }
    heed_graph_set_training(t->g, true);
    for (int64_t s = 0; s < steps && !isnan(sum); s++) {
        int64_t nb = n - s * B < B ? n - s * B : B;
        heed_rng r = heed_rng_make(t->cfg.seed, 0x9e7b00000000ull + (uint64_t)epoch * 1000000 + (uint64_t)s);
        memset(x, 0, (size_t)(nb * CROP * CROP) * sizeof *x);
        for (int64_t i = 0; i < nb; i++) {
            int64_t id = order[s * B + i];
            int ox = (int)heed_rng_below(&r, SCENE_JITTER + 1), oy = (int)heed_rng_below(&r, SCENE_JITTER + 1);
            const uint8_t *img = train->images + id * FM_SIDE * FM_SIDE;
            for (int py = 0; py < FM_SIDE; py++)
                for (int px = 0; px < FM_SIDE; px++)
                    x[i * CROP * CROP + (oy + py) * CROP + ox + px] = img[py * FM_SIDE + px] / 255.0f;
            y[i] = train->labels[id];
        }
        heed_graph_reset(t->g);
        heed_params_zero_grad(t->P);
        heed_tensor *logits =
            heed_caption_classify(t->g, &t->m, heed_input(t->g, HEED_F32, HEED_SHAPE(nb, 1, CROP, CROP), x));
        heed_tensor *loss = heed_cross_entropy(t->g, logits, y, NULL);
        if (heed_argmax(t->g, logits, 1, pred) == HEED_OK)
            for (int64_t i = 0; i < nb; i++) correct += pred[i] == y[i];
        if (step(t, loss, "pretraining", epoch, s, err, errlen)) sum = NAN;
        else sum += heed_get(loss, 0);
        if (bar) heed_progress_update(bar, s + 1, heed_get(loss, 0));
    }
    free(order), free(x), free(y), free(pred);
    if (accuracy) *accuracy = (double)correct / (double)n;
    return sum / (double)steps;
}

/* ---------------------------------------------------------------- annotations */

void cap_scene_set_free(scene_set *s) {
    free(s->features), free(s->meta);
    *s = (scene_set){0};
}

int cap_scene_set(cap_trainer *t, const scene_source *src, uint64_t seed, int64_t n, scene_set *s, char *err,
                  size_t errlen) {
    int64_t N = t->grid * t->grid, D = t->cfg.model.channels[HEED_CAPTION_CONVS - 1], chunk = 32;
    *s = (scene_set){.n = n, .cells = N, .dim = D, .seed = seed, .src = src};
    s->features = malloc((size_t)(n * N * D) * sizeof *s->features);
    s->meta = malloc((size_t)n * sizeof *s->meta);
    float *x = malloc((size_t)(chunk * SCENE_SIDE * SCENE_SIDE) * sizeof *x);
    scene *sc = malloc(sizeof *sc);
    if (!s->features || !s->meta || !x || !sc) {
        free(x), free(sc), cap_scene_set_free(s);
        return snprintf(err, errlen, "out of memory for %lld scenes", (long long)n), -1;
    }
    bool training = heed_graph_training(t->g);
    heed_graph_set_training(t->g, false);
    heed_no_grad_begin(t->g);
    int rc = 0;
    for (int64_t i0 = 0; i0 < n && !rc; i0 += chunk) {
        int64_t nb = n - i0 < chunk ? n - i0 : chunk;
        for (int64_t i = 0; i < nb; i++) {
            scene_make(src, seed, (uint64_t)(i0 + i), sc);
            s->meta[i0 + i].n_objects = sc->n_objects;
            memcpy(s->meta[i0 + i].obj, sc->obj, sizeof sc->obj);
            for (int p = 0; p < SCENE_SIDE * SCENE_SIDE; p++)
                x[i * SCENE_SIDE * SCENE_SIDE + p] = sc->pixels[p] / 255.0f;
        }
        heed_graph_reset(t->g);
        heed_tensor *a =
            heed_caption_encode(t->g, &t->m, heed_input(t->g, HEED_F32, HEED_SHAPE(nb, 1, SCENE_SIDE, SCENE_SIDE), x));
        if (!a) rc = -1, snprintf(err, errlen, "encoding scenes: %s", heed_graph_error(t->g));
        else memcpy(s->features + i0 * N * D, a->data, (size_t)(nb * N * D) * sizeof *s->features);
    }
    heed_no_grad_end(t->g);
    heed_graph_set_training(t->g, training);
    free(x), free(sc);
    if (rc) cap_scene_set_free(s);
    return rc;
}

void scene_of_meta(const scene_meta *m, scene *sc) {
    sc->n_objects = m->n_objects;
    memcpy(sc->obj, m->obj, sizeof sc->obj);
}

/* ---------------------------------------------------------------- captioning */

/* Targets [B, L] of scenes ids[0 .. B): the chosen reference's words, <end>, padding. */
static void fill_targets(const caption *c, int64_t i, int64_t L, int64_t *tgt) {
    for (int64_t j = 0; j < L; j++) tgt[i * L + j] = j < c->n ? c->tok[j] : j == c->n ? TOK_END : IGNORE;
}

double cap_train_epoch(cap_trainer *t, const scene_set *s, heed_progress *bar, double stats[2], char *err,
                       size_t errlen) {
    const cap_config *c = &t->cfg;
    int64_t B = c->batch, n = s->n, steps = (n + B - 1) / B, N = s->cells, D = s->dim, L = CAPTION_MAX_TOKENS;
    int64_t *order = shuffled(n, c->seed, 0xca9000 + (uint64_t)t->epoch), *tgt = malloc((size_t)(B * L) * sizeof *tgt);
    float *x = malloc((size_t)(B * N * D) * sizeof *x);
    scene *sc = calloc(1, sizeof *sc);
    caption *refs = malloc(SCENE_MAX_CAPTIONS * sizeof *refs);
    double sum = 0, ce = 0, reg = 0;
    if (!order || !tgt || !x || !sc || !refs) {
        free(order), free(tgt), free(x), free(sc), free(refs);
        return snprintf(err, errlen, "out of memory"), NAN;
    }
    heed_graph_set_training(t->g, true);
    for (int64_t st = 0; st < steps && !isnan(sum); st++) {
        int64_t nb = n - st * B < B ? n - st * B : B;
        heed_rng r = heed_rng_make(c->seed, 0xca9100000000ull + (uint64_t)t->epoch * 1000000 + (uint64_t)st);
        for (int64_t i = 0; i < nb; i++) {
            int64_t id = order[st * B + i];
            memcpy(x + i * N * D, s->features + id * N * D, (size_t)(N * D) * sizeof *x);
            scene_of_meta(&s->meta[id], sc);
            int nr = cap_training_references(sc, refs, c->order);
            fill_targets(&refs[heed_rng_below(&r, (uint64_t)nr)], i, L, tgt);
        }
        heed_graph_reset(t->g);
        heed_params_zero_grad(t->P);
        int64_t global = heed_optimizer_steps(t->opt);
        double st2[2] = {NAN, NAN};
        heed_tensor *loss = heed_caption_loss(t->g, &t->m, heed_input(t->g, HEED_F32, HEED_SHAPE(nb, N, D), x), tgt, L,
                                              &(heed_caption_loss_opts){.bos = TOK_START,
                                                                        .lambda = c->lambda,
                                                                        .attention = c->attention,
                                                                        .entropy = c->entropy,
                                                                        .soft_mix = c->soft_mix,
                                                                        .hard = &t->hard,
                                                                        .seed = c->seed,
                                                                        .stream = 0xca9200000000ull + (uint64_t)global},
                                              NULL, st2);
        if (step(t, loss, "captioning", t->epoch, st, err, errlen)) {
            sum = NAN;
            break;
        }
        sum += heed_get(loss, 0), ce += st2[0], reg += st2[1];
        if (bar) heed_progress_update(bar, st + 1, heed_get(loss, 0));
    }
    free(order), free(tgt), free(x), free(sc), free(refs);
    if (isnan(sum)) return NAN;
    t->epoch++;
    if (stats) stats[0] = ce / (double)steps, stats[1] = reg / (double)steps;
    return sum / (double)steps;
}
