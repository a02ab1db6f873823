/* Caption example: evaluation (corpus BLEU, exact captions, pointing) and checkpoints. */
#include "train.h"
#include <heed/metrics.h>
#include "../example_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The object of s named by token tok, or -1. */
static int named_object(const scene_meta *s, int64_t tok) {
    for (int k = 0; k < s->n_objects; k++)
        if (tok == TOK_CLASS0 + s->obj[k].cls) return k;
    return -1;
}

/* Adds one attention row's pointing at object k of s to hits / mass / count. */
static void point(const cap_trainer *t, const float *row, const scene_meta *s, int k, double *hits, double *mass,
                  int64_t *count) {
    bool hit = false;
    double m = 0;
    const scene_object *o = &s->obj[k];
    if (heed_caption_pointing(t->ctx, row, t->grid, t->grid, SCENE_SIDE, SCENE_SIDE, o->x0, o->y0, o->x1, o->y1, &hit,
                              &m) != HEED_OK)
        return;
    *hits += hit, *mass += m, (*count)++;
}

void cap_hypothesis_free(heed_hypothesis *h) {
    if (!h) return;
    free(h->tokens), free(h->attention);
    *h = (heed_hypothesis){0};
}

static int copy_hypothesis(const heed_hypothesis *h, heed_hypothesis *out) {
    int64_t steps = h->len + h->finished;
    *out = *h;
    out->tokens = malloc((size_t)(h->len > 0 ? h->len : 1) * sizeof *out->tokens);
    out->attention = h->attention ? malloc((size_t)(steps * h->keys) * sizeof *out->attention) : NULL;
    if (!out->tokens || (h->attention && !out->attention)) return cap_hypothesis_free(out), -1;
    memcpy(out->tokens, h->tokens, (size_t)h->len * sizeof *out->tokens);
    if (h->attention) memcpy(out->attention, h->attention, (size_t)(steps * h->keys) * sizeof *out->attention);
    return 0;
}

/* The reference teacher-forced for scene i among refs[0 .. nr): with first[i] >= 0 (the
 * class token the model's own caption names first), the first whose first noun it is, else
 * the first. */
static int pick_reference(const caption *refs, int nr, const int64_t *first, int64_t i) {
    for (int k = 0; first && first[i] >= 0 && k < nr; k++)
        if (refs[k].tok[1] == first[i]) return k;
    return 0;
}

/* Teacher-forced pointing: hits, box mass and nouns, in all and by the noun's place in the caption. */
typedef struct {
    double hits, mass, nouns, hits_at[CAP_NOUNS], nouns_at[CAP_NOUNS];
} tf_acc;

/* Teacher-forced pointing of scenes [i0, i0 + nb) added to acc. Without first, on the first
 * reference of the training order (cap_training_references): with --order any that is the
 * first reference, whose subject is obj[0], a random one of the scene's objects, and since
 * the attention at the first noun is computed from "<start> a" alone, before the noun is
 * fed, no model can know where to look (about 1 in 2 or 3 at best). With first, the
 * reference starts with the object the model itself names first (the same attention row
 * as its own caption's): the first such reference of the training order, else of all; the
 * later nouns are forced. */
static int teacher_forced(cap_trainer *t, const scene_set *s, int64_t i0, int64_t nb, const int64_t *first, scene *sc,
                          caption *refs, tf_acc *acc, char *err, size_t errlen) {
    int64_t L = CAPTION_MAX_TOKENS, N = s->cells;
    int64_t *tgt = malloc((size_t)(nb * L) * sizeof *tgt);
    if (!tgt) return snprintf(err, errlen, "out of memory"), -1;
    for (int64_t i = 0; i < nb; i++) {
        scene_of_meta(&s->meta[i0 + i], sc);
        int k = pick_reference(refs, cap_training_references(sc, refs, t->cfg.order), first, i);
        if (first && first[i] >= 0 && refs[k].tok[1] != first[i]) /* a subject out of the training order */
            k = pick_reference(refs, scene_captions(sc, refs), first, i);
        const caption *c = &refs[k];
        for (int64_t j = 0; j < L; j++) tgt[i * L + j] = j < c->n ? c->tok[j] : j == c->n ? TOK_END : -100;
    }
    heed_graph_reset(t->g);
    heed_tensor *w = NULL;
    heed_tensor *a = heed_input(t->g, HEED_F32, HEED_SHAPE(nb, N, s->dim), s->features + i0 * N * s->dim);
    heed_caption_loss(t->g, &t->m, a, tgt, L,
                      &(heed_caption_loss_opts){.bos = TOK_START,
                                                .attention = t->cfg.attention,
                                                .soft_mix = t->cfg.soft_mix},
                      &w, NULL);
    if (!w) return free(tgt), snprintf(err, errlen, "teacher-forced pass: %s", heed_graph_error(t->g)), -1;
    for (int64_t i = 0; i < nb; i++)
        for (int64_t j = 0, place = 0; j < L && tgt[i * L + j] != -100; j++) {
            int k = named_object(&s->meta[i0 + i], tgt[i * L + j]);
            if (k < 0) continue;
            double before = acc->hits;
            int64_t count = 0;
            point(t, (const float *)w->data + (i * L + j) * N, &s->meta[i0 + i], k, &acc->hits, &acc->mass, &count);
            acc->nouns += (double)count;
            if (place < CAP_NOUNS) acc->hits_at[place] += acc->hits - before, acc->nouns_at[place++] += (double)count;
        }
    free(tgt);
    return 0;
}

int cap_evaluate(cap_trainer *t, const scene_set *s, int64_t n, int64_t beam, cap_eval *e, heed_hypothesis *hyps,
                 int64_t n_hyps, char *err, size_t errlen) {
    if (n > s->n) n = s->n;
    *e = (cap_eval){0};
    int64_t chunk = beam > 1 ? 16 : 64, N = s->cells, D = s->dim, exact = 0;
    double hit_fr = 0, mass_fr = 0;
    tf_acc tf = {0}, tfs = {0};
    int64_t *first = malloc((size_t)chunk * sizeof *first);
    heed_bleu_stats bleu = {0};
    scene *sc = calloc(1, sizeof *sc);
    caption *refs = malloc(SCENE_MAX_CAPTIONS * sizeof *refs);
    int64_t ref_tok[SCENE_MAX_CAPTIONS][CAPTION_MAX_TOKENS], ref_len[SCENE_MAX_CAPTIONS];
    const int64_t *ref_ptr[SCENE_MAX_CAPTIONS];
    int rc = 0;
    if (!sc || !refs || !first) rc = -1, snprintf(err, errlen, "out of memory");
    bool training = heed_graph_training(t->g);
    heed_graph_set_training(t->g, false);
    heed_no_grad_begin(t->g);
    for (int64_t i0 = 0; !rc && i0 < n; i0 += chunk) {
        int64_t nb = n - i0 < chunk ? n - i0 : chunk;
        if ((rc = teacher_forced(t, s, i0, nb, NULL, sc, refs, &tf, err, errlen))) break;
        heed_graph_reset(t->g);
        heed_decode_result r;
        heed_tensor *a = heed_input(t->g, HEED_F32, HEED_SHAPE(nb, N, D), s->features + i0 * N * D);
        if (heed_caption_decode(t->g, &t->m, a,
                                &(heed_decode_opts){.beam = beam,
                                                    .bos = TOK_START,
                                                    .eos = TOK_END,
                                                    .max_len = CAPTION_MAX_TOKENS + 1},
                                &r) != HEED_OK) {
            rc = -1, snprintf(err, errlen, "decoding: %s", heed_graph_error(t->g));
            break;
        }
        for (int64_t i = 0; i < nb && !rc; i++) {
            const heed_hypothesis *h = &r.hyp[i * r.n_best];
            const scene_meta *m = &s->meta[i0 + i];
            scene_of_meta(m, sc);
            int nr = scene_captions(sc, refs), tok[CAPTION_MAX_TOKENS + 1];
            for (int k = 0; k < nr; k++) {
                for (int j = 0; j < refs[k].n; j++) ref_tok[k][j] = refs[k].tok[j];
                ref_len[k] = refs[k].n, ref_ptr[k] = ref_tok[k];
            }
            if (heed_bleu_add(t->ctx, &bleu, h->tokens, h->len, ref_ptr, ref_len, nr) != HEED_OK) {
                rc = -1, snprintf(err, errlen, "BLEU: %s", heed_ctx_error(t->ctx));
                break;
            }
            int64_t len = h->len < CAPTION_MAX_TOKENS + 1 ? h->len : CAPTION_MAX_TOKENS + 1;
            for (int64_t j = 0; j < len; j++) tok[j] = (int)h->tokens[j];
            exact += caption_valid(sc, tok, (int)len);
            first[i] = -1;
            for (int64_t j = 0; j < h->len && first[i] < 0; j++)
                if (named_object(m, h->tokens[j]) >= 0) first[i] = h->tokens[j];
            for (int64_t j = 0; j < h->len && h->attention; j++) {
                int k = named_object(m, h->tokens[j]);
                if (k >= 0) point(t, h->attention + j * h->keys, m, k, &hit_fr, &mass_fr, &e->nouns_fr);
            }
            if (hyps && i0 + i < n_hyps && copy_hypothesis(h, &hyps[i0 + i]))
                rc = -1, snprintf(err, errlen, "out of memory");
        }
        heed_decode_result_free(&r);
        if (!rc) rc = teacher_forced(t, s, i0, nb, first, sc, refs, &tfs, err, errlen);
    }
    heed_no_grad_end(t->g);
    heed_graph_set_training(t->g, training);
    free(sc), free(refs), free(first);
    if (rc) return rc;
    for (int k = 0; k < 4; k++)
        if (heed_bleu(t->ctx, &bleu, k + 1, &e->bleu[k]) != HEED_OK)
            return snprintf(err, errlen, "BLEU: %s", heed_ctx_error(t->ctx)), -1;
    e->exact = (double)exact / (double)n;
    e->nouns_tf = (int64_t)tf.nouns, e->nouns_tfs = (int64_t)tfs.nouns;
    e->point_tf = tf.hits / (tf.nouns > 0 ? tf.nouns : 1), e->mass_tf = tf.mass / (tf.nouns > 0 ? tf.nouns : 1);
    e->point_tfs = tfs.hits / (tfs.nouns > 0 ? tfs.nouns : 1), e->mass_tfs = tfs.mass / (tfs.nouns > 0 ? tfs.nouns : 1);
    for (int p = 0; p < CAP_NOUNS; p++)
        e->point_tf_at[p] = tf.hits_at[p] / (tf.nouns_at[p] > 0 ? tf.nouns_at[p] : 1),
        e->point_tfs_at[p] = tfs.hits_at[p] / (tfs.nouns_at[p] > 0 ? tfs.nouns_at[p] : 1);
    e->point_fr = hit_fr / (double)(e->nouns_fr ? e->nouns_fr : 1),
    e->mass_fr = mass_fr / (double)(e->nouns_fr ? e->nouns_fr : 1);
    return 0;
}

/* ---------------------------------------------------------------- checkpoints */

/* "key=value ..." of the settings that make the network (caption.model) and those that
 * make training's arithmetic (caption.train); doubles as their shortest exact decimals. */
static void model_string(const cap_config *c, char *buf, size_t len) {
    const heed_caption_config *m = &c->model;
    char d[32];
    snprintf(
        buf, len,
        "channels=%lld,%lld,%lld embed_dim=%lld hidden=%lld attn_dim=%lld vocab=%lld cells=%lld dropout=%s init=%s",
        (long long)m->channels[0], (long long)m->channels[1], (long long)m->channels[2], (long long)m->embed_dim,
        (long long)m->hidden, (long long)m->attn_dim, (long long)m->vocab, (long long)m->cells,
        ex_exact(m->dropout, d, sizeof d), cap_init_name(m->init));
}

static void train_string(const cap_trainer *t, char *buf, size_t len) {
    const cap_config *c = &t->cfg;
    char lr[32], clip[32], lam[32], ent[32], mix[32];
    snprintf(buf, len,
             "attention=%s order=%s batch=%lld lr=%s clip=%s lambda=%s entropy=%s soft_mix=%s pretrain_images=%lld "
             "train_scenes=%lld seed=%llu epochs=%lld",
             c->attention == HEED_CAPTION_HARD ? "hard" : "soft", cap_order_name(c->order), (long long)c->batch,
             ex_exact(c->lr, lr, sizeof lr), ex_exact(c->clip, clip, sizeof clip), ex_exact(c->lambda, lam, sizeof lam),
             ex_exact(c->entropy, ent, sizeof ent), ex_exact(c->soft_mix, mix, sizeof mix),
             (long long)c->pretrain_images, (long long)c->train_scenes, (unsigned long long)c->seed,
             (long long)t->epochs);
}

int cap_save(cap_trainer *t, const char *path, char *err, size_t errlen) {
    heed_checkpoint_info info = {.epoch = t->epoch, .step = heed_optimizer_steps(t->opt)};
    char a[HEED_CKPT_VALUE_LEN], b[HEED_CKPT_VALUE_LEN], base[96], v[32];
    model_string(&t->cfg, a, sizeof a);
    train_string(t, b, sizeof b);
    snprintf(base, sizeof base, "value=%s updates=%lld", ex_exact(t->hard.baseline.value, v, sizeof v),
             (long long)t->hard.baseline.updates);
    if (heed_checkpoint_info_set(t->ctx, &info, "caption.model", a) != HEED_OK ||
        heed_checkpoint_info_set(t->ctx, &info, "caption.train", b) != HEED_OK ||
        heed_checkpoint_info_set(t->ctx, &info, "caption.baseline", base) != HEED_OK)
        return snprintf(err, errlen, "%s: %s", path, heed_ctx_error(t->ctx)), -1;
    if (heed_checkpoint_save(t->P, path, t->opt, &info) != HEED_OK)
        return snprintf(err, errlen, "%s", heed_ctx_error(t->ctx)), -1;
    return 0;
}

/* The first key=value of want that differs in saved: -1 naming it. */
static int compare(const char *path, const char *what, const char *saved, const char *want, char *err, size_t errlen) {
    char key[64], was[128], now[128];
    for (const char *p = want; *p;) {
        const char *eq = strchr(p, '='), *end = strchr(p, ' ');
        if (!eq) break;
        if (!end) end = p + strlen(p);
        snprintf(key, sizeof key, "%.*s", (int)(eq - p), p);
        ex_saved_value(want, key, now, sizeof now);
        if (!ex_saved_value(saved, key, was, sizeof was) || strcmp(was, now))
            return snprintf(
                       err, errlen,
                       "%s was saved with %s %s=%s, this run has %s=%s: use the same settings, or start a new checkpoint",
                       path, what, key, ex_saved_value(saved, key, was, sizeof was) ? was : "(none)", key, now),
                   -1;
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* The caption.model string of a checkpoint's metadata into out; 0 or -1 with the reason.
 * Checkpoints saved before the init setting existed had the mean init: "init=mean" is added. */
static int saved_model(const char *path, char *out, size_t len, char *err, size_t errlen) {
    char v[32];
    if (ex_checkpoint_setting(path, "caption.model", "caption", out, len, err, errlen)) return -1;
    if (!ex_saved_value(out, "init", v, sizeof v) && strlen(out) + 10 < len) strcat(out, " init=mean");
    return 0;
}

int cap_load(cap_trainer *t, const char *path, bool training, char *err, size_t errlen) {
    char saved[HEED_CKPT_VALUE_LEN], want[HEED_CKPT_VALUE_LEN];
    model_string(&t->cfg, want, sizeof want);
    if (saved_model(path, saved, sizeof saved, err, errlen) ||
        compare(path, "the model setting", saved, want, err, errlen))
        return -1;
    heed_checkpoint_info info;
    if (heed_checkpoint_load(t->P, path, t->opt, &info) != HEED_OK)
        return snprintf(err, errlen, "%s", heed_ctx_error(t->ctx)), -1;
    const char *tr = heed_checkpoint_info_get(&info, "caption.train"),
               *base = heed_checkpoint_info_get(&info, "caption.baseline");
    if (training) {
        train_string(t, want, sizeof want);
        if (!tr || !base)
            return snprintf(err, errlen, "%s: not a training checkpoint of the caption program", path), -1;
        char saved_train[HEED_CKPT_VALUE_LEN]; /* saved before --order existed: trained on any order */
        snprintf(saved_train, sizeof saved_train, "%s%s", tr,
                 ex_saved_value(tr, "order", saved, sizeof saved) ? "" : " order=any");
        if (compare(path, "the training setting", saved_train, want, err, errlen)) return -1;
        char v[64], u[64];
        if (!ex_saved_value(base, "value", v, sizeof v) || !ex_saved_value(base, "updates", u, sizeof u) ||
            !ex_parse_f64(v, &t->hard.baseline.value) || !ex_parse_i64(u, &t->hard.baseline.updates))
            return snprintf(err, errlen, "%s: caption.baseline is malformed", path), -1;
    }
    t->epoch = info.epoch;
    return 0;
}

int cap_checkpoint_config(const char *path, cap_config *cfg, char *err, size_t errlen) {
    char s[HEED_CKPT_VALUE_LEN], v[64];
    if (saved_model(path, s, sizeof s, err, errlen)) return -1;
    long long c0, c1, c2;
    int64_t *fields[] = {&cfg->model.embed_dim, &cfg->model.hidden, &cfg->model.attn_dim, &cfg->model.cells};
    const char *names[] = {"embed_dim", "hidden", "attn_dim", "cells"};
    if (!ex_saved_value(s, "channels", v, sizeof v) || sscanf(v, "%lld,%lld,%lld", &c0, &c1, &c2) != 3 || c0 < 1 ||
        c0 > 1024 || c1 < 1 || c1 > 1024 || c2 < 1 || c2 > 1024)
        return snprintf(err, errlen, "%s: caption.model has no valid channels", path), -1;
    cfg->model.channels[0] = c0, cfg->model.channels[1] = c1, cfg->model.channels[2] = c2;
    for (int i = 0; i < 4; i++)
        if (!ex_saved_value(s, names[i], v, sizeof v) || !ex_parse_i64(v, fields[i]) || *fields[i] < (i == 3 ? 0 : 1) ||
            *fields[i] > 4096)
            return snprintf(err, errlen, "%s: caption.model has no valid %s", path, names[i]), -1;
    if (!ex_saved_value(s, "dropout", v, sizeof v) || !ex_parse_f64(v, &cfg->model.dropout) || cfg->model.dropout < 0 ||
        cfg->model.dropout >= 1)
        return snprintf(err, errlen, "%s: caption.model has no valid dropout", path), -1;
    if (!ex_saved_value(s, "init", v, sizeof v) || cap_init_parse(v, &cfg->model.init))
        return snprintf(err, errlen, "%s: caption.model has no valid init", path), -1;
    return 0;
}
