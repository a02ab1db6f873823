/* Caption example: pretraining the encoder, caching the frozen encoder's annotations,
 * the captioning loop, evaluation (BLEU, exact captions, pointing) and checkpoints. Shared
 * by the program (main.c) and its tests. */
#ifndef CAPTION_TRAIN_H
#define CAPTION_TRAIN_H

#include "scenes.h"

#include <heed/caption.h>
#include <heed/core.h>
#include <heed/decode.h>
#include <heed/optim.h>
#include <heed/viz.h>

/* Which references a scene trains on (--order): those naming its objects in reading order
 * (by cell: rows top to bottom, each left to right), or any of them. With any order, the
 * first noun is a free choice the image does not decide, and the attention at that step
 * need not land on the object the decoder then names (docs/caption.md, "Reading order"). */
typedef enum { CAP_ORDER_READING, CAP_ORDER_ANY } cap_order;

typedef struct {
    heed_caption_config model;
    cap_order order;
    int64_t batch;
    double lr, clip;
    double lambda; /* the doubly stochastic regulariser */
    heed_caption_attention attention;
    double entropy, soft_mix; /* hard attention */
    int64_t pretrain_images;  /* single objects per pretraining epoch */
    int64_t train_scenes, test_scenes;
    uint64_t seed;
    int threads;
} cap_config;

cap_config cap_defaults(void);
/* The decoder's initial state by name: "mean" or "constant" (the --init flag, checkpoints). */
const char *cap_init_name(heed_caption_init init);
int cap_init_parse(const char *name, heed_caption_init *init); /* 0, or -1 for another name */

const char *cap_order_name(cap_order order);             /* "reading" or "any" */
int cap_order_parse(const char *name, cap_order *order); /* 0, or -1 for another name */
/* The references of sc that training uses with order, into refs[0 .. count) in
 * scene_captions' order; returns count (at least 1). */
int cap_training_references(const scene *sc, caption *refs, cap_order order);

/* A scene without its pixels (scene_make remakes them from the index). */
typedef struct {
    int n_objects;
    scene_object obj[SCENE_MAX_OBJECTS];
} scene_meta;
/* The scene of m (objects only, no pixels) for scene_captions and caption_valid. */
void scene_of_meta(const scene_meta *m, scene *sc);

typedef struct {
    int64_t n, cells, dim; /* scenes, annotation vectors per scene, their size */
    float *features;       /* [n, cells, dim]: the frozen encoder's annotations */
    scene_meta *meta;      /* [n] */
    uint64_t seed;         /* scene i is scene_make(source, seed, i) */
    const scene_source *src;
} scene_set;

typedef struct {
    cap_config cfg;
    int64_t epochs; /* captioning epochs of the run (checkpoint setting) */
    heed_ctx *ctx;
    heed_params *P;
    heed_caption m;
    heed_optimizer *opt;
    heed_graph *g;
    heed_caption_hard_state hard;
    int64_t epoch; /* captioning epochs done */
    int64_t grid;  /* the annotation grid is grid x grid */
} cap_trainer;

int cap_trainer_init(cap_trainer *t, const cap_config *cfg, int64_t epochs, char *err, size_t errlen);
void cap_trainer_free(cap_trainer *t);

/* One pretraining epoch of the encoder as a classifier of single objects (each in a 32x32
 * crop at a random offset, as a scene cell); the mean loss and the accuracy on the images
 * seen, or NaN with err. Then freeze it with heed_caption_freeze_encoder. */
double cap_pretrain_epoch(cap_trainer *t, const fm_set *train, int64_t epoch, heed_progress *bar, double *accuracy,
                          char *err, size_t errlen);

/* Makes n scenes from src with seed and their annotations through the encoder (eval mode). */
int cap_scene_set(cap_trainer *t, const scene_source *src, uint64_t seed, int64_t n, scene_set *s, char *err,
                  size_t errlen);
void cap_scene_set_free(scene_set *s);

/* One captioning epoch over s (each scene with one of its references, drawn per epoch);
 * the mean loss, stats[0..2) the mean cross-entropy and regulariser; NaN with err. */
double cap_train_epoch(cap_trainer *t, const scene_set *s, heed_progress *bar, double stats[2], char *err,
                       size_t errlen);

#define CAP_NOUNS 4 /* nouns in the longest caption */

typedef struct {
    double bleu[4];             /* corpus BLEU-1..4 against every reference */
    double exact;               /* generated captions that are valid for their scene */
    double point_tf, mass_tf;   /* teacher-forced (the first reference): argmax-in-box rate, mean box mass */
    double point_tfs, mass_tfs; /* teacher-forced on the first reference that starts with the object
                                   the model's own caption names first (docs/caption.md) */
    double point_tf_at[CAP_NOUNS], point_tfs_at[CAP_NOUNS]; /* the rates at the caption's 1st .. 4th noun */
    double point_fr, mass_fr; /* free-running (the generated caption's nouns that name an object) */
    int64_t nouns_tf, nouns_tfs, nouns_fr;
} cap_eval;

/* Decodes the first n scenes of s (greedy for beam <= 1) and scores them. hyps (may be
 * NULL) receives the first n_hyps decoded hypotheses (copied: tokens and attention). */
int cap_evaluate(cap_trainer *t, const scene_set *s, int64_t n, int64_t beam, cap_eval *e, heed_hypothesis *hyps,
                 int64_t n_hyps, char *err, size_t errlen);
void cap_hypothesis_free(heed_hypothesis *h);

/* Checkpoints: the parameters (encoder and its batch-norm statistics included), Adam, the
 * epoch, the op RNG, the hard baseline, and the settings (caption.model, caption.train);
 * a resume with a different setting fails naming it. */
int cap_save(cap_trainer *t, const char *path, char *err, size_t errlen);
int cap_load(cap_trainer *t, const char *path, bool training, char *err, size_t errlen);
/* The model settings of a checkpoint into cfg (for --caption without training). */
int cap_checkpoint_config(const char *path, cap_config *cfg, char *err, size_t errlen);

#endif
