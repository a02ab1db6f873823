/* LAS example: batches, the training loop, evaluation and checkpoints. Shared by the
 * program (main.c) and the program's tests. */
#ifndef LAS_TRAIN_H
#define LAS_TRAIN_H

#include "data.h"
#include <heed/las.h>
#include <heed/metrics.h>
#include <heed/optim.h>
#include <heed/viz.h>

typedef struct {
    heed_las_config model; /* input_dim is set from bands * stack */
    int bands;             /* log-mel bands of the data */
    int64_t stack;         /* frames stacked into one listener input */
    int64_t batch;
    double lr, min_lr; /* Adam; warm-up then cosine to min_lr (or constant) */
    int64_t warmup;
    bool cosine;
    double clip; /* global gradient norm; 0 = off */
    double label_smoothing;
    double sampling;     /* the sampled-feedback probability reached halfway through */
    int64_t specaugment; /* time and frequency masks each; 0 = off */
    double vtlp, tempo;  /* per utterance and epoch, warp factors in [1 - x, 1 + x] (las_warp); 0 = off */
    uint64_t seed;
    int threads;
    int64_t beam; /* beam width of final evaluations and transcription */
    double length_penalty;
} las_train_config;

las_train_config las_train_defaults(void);
/* --attention's names: "location", "local-m", "local-p"; the kind of a name, or -1. */
const char *las_attention_name(heed_las_attention a);
int las_attention_kind(const char *name);

typedef struct {
    las_train_config cfg;
    const las_corpus *train; /* NULL for a model that only decodes */
    int64_t epochs;          /* the run's length (the schedule's horizon) */
    heed_ctx *ctx;
    heed_params *P;
    heed_las m;
    heed_optimizer *opt;
    heed_graph *g;
    heed_schedule sched;
    int64_t epoch;  /* epochs done */
    int64_t *order; /* training utterances sorted by length */
    int64_t n_batches;
} las_trainer;

/* 0, or -1 with a message in err. train may be NULL (decoding only). */
int las_trainer_init(las_trainer *t, const las_corpus *train, const las_train_config *cfg, int64_t epochs, char *err,
                     size_t errlen);
void las_trainer_free(las_trainer *t);
int64_t las_trainer_steps_per_epoch(const las_trainer *t);
/* One epoch: batches of similar length in an order fixed by (seed, epoch), SpecAugment,
 * sampled feedback, label smoothing, clipping, the schedule. The mean loss, or NaN with
 * a message in err (an error, or a loss that became NaN/Inf before reaching the
 * parameters). progress may be NULL. */
double las_train_epoch(las_trainer *t, heed_progress *progress, char *err, size_t errlen);

/* Decodes utterances [0, n) of c (greedy for beam <= 1) and adds to counts; hyps (may be
 * NULL) receives n malloc'd transcripts. The alignment of utterance align_id (its attention
 * rows [steps, N]) goes to *align (malloc'd; align may be NULL) with *align_steps, *align_n. */
int las_evaluate(las_trainer *t, const las_corpus *c, int64_t n, int64_t beam, heed_error_counts *counts, char **hyps,
                 int64_t align_id, float **align, int64_t *align_steps, int64_t *align_n, char *err, size_t errlen);
/* One recording's features [frames, bands] -> transcript (malloc'd), score and alignment. */
int las_transcribe(las_trainer *t, const float *feat, int64_t frames, int64_t beam, char **text, double *score,
                   float **align, int64_t *steps, int64_t *n_enc, char *err, size_t errlen);

/* Checkpoints: parameters, Adam, epoch, RNG, and the settings as user keys las.model
 * (what the network is: --transcribe rebuilds it from them) and las.train (what training
 * computes); a resume with any different setting fails naming the flag and both values. */
int las_trainer_save(las_trainer *t, const char *path, char *err, size_t errlen);
int las_trainer_load(las_trainer *t, const char *path, char *err, size_t errlen);
/* Reads las.model from a checkpoint's metadata (heed_checkpoint_read_info) into cfg (bands,
 * stack, model): 0, or -1 with the reason (not a heed checkpoint, not a LAS one). */
int las_checkpoint_config(const char *path, las_train_config *cfg, char *err, size_t errlen);

#endif
