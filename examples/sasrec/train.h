/* SASRec example: the training loop and the model as a scorer for the evaluation. Shared
 * by the program (main.c), the test and the epoch bench. */
#ifndef SASREC_TRAIN_H
#define SASREC_TRAIN_H

#include "sasrec_data.h"
#include <heed/dist.h>
#include <heed/optim.h>
#include <heed/sasrec.h>
#include <heed/viz.h>

#define SR_MAX_GROUPS 16 /* the most length groups a batch may run as */

typedef struct {
    heed_sasrec_config model;
    double lr, beta1, beta2; /* Adam; the paper: 0.001, 0.9, 0.98 */
    double l2_emb;           /* L2 penalty on the item and position tables (the reference's
                                 l2_emb, default 0): Adam weight decay on those two */
    int64_t batch;           /* users per step (128) */
    uint64_t seed;           /* parameters, dropout, batches, negatives */
    heed_dtype dtype;        /* HEED_F32 (fast) or HEED_F64 */
    int threads;             /* OpenMP threads; 0 = all */
    int max_groups;          /* a batch runs as up to this many length groups (4; 1..16) */
    bool anomaly;            /* heed's anomaly mode: the first op with a NaN/Inf is named */
    bool blocking_allreduce; /* data-parallel: reduce after backward, not during it */
} sr_train_config;

sr_train_config sr_train_defaults(int64_t n_items);

typedef struct {
    sr_train_config cfg;
    const sr_data *d;
    heed_ctx *ctx;
    heed_params *P;
    heed_sasrec m;
    heed_optimizer *opt;
    heed_graph *g;
    int64_t *users, n_users;     /* trainable users: at least 2 training items */
    int64_t *seq, *pos, *neg;    /* [batch, maxlen] */
    int64_t *gseq, *gpos, *gneg; /* one length group's rows, [rows, width] */
    int64_t *order, *len;        /* [batch]: rows by length, and their lengths */
    int64_t *dp;                 /* the length groups' dynamic programme */
    int64_t epoch;               /* epochs done */
    int64_t groups;              /* length groups run in the last epoch (this rank's) */
    heed_dist_overlap *overlap;  /* data-parallel: the gradient allreduce during backward */
    double allreduce_seconds;    /* waiting for the gradient allreduce, all epochs */
} sr_trainer;

/* 0, or -1 with a message in err. Owns a ctx seeded with cfg.seed. Started by an MPI
 * launcher (mpirun -np N), the trainer is one of N data-parallel ranks (heed_dist_*,
 * docs/distributed.md): the same batches, each rank training on its shard of every one. */
int sr_trainer_init(sr_trainer *t, const sr_data *d, const sr_train_config *cfg, char *err, size_t errlen);
void sr_trainer_free(sr_trainer *t);
/* Steps in one epoch: every trainable user once, in batches. */
int64_t sr_trainer_steps_per_epoch(const sr_trainer *t);
/* One epoch (number t->epoch + 1): users shuffled by (seed, epoch), a training row each
 * (sr_train_row), forward, loss, backward, Adam. A batch is sorted by length and cut into
 * up to max_groups groups, each run at the width of its longest row; the loss is the
 * target-weighted mean of the groups' losses, so loss and gradients are those of the whole
 * batch at full width (rows never interact) with far less padding computed. With N ranks
 * every rank makes all rows of a batch (the data stream of one process) and trains on its
 * shard (heed_dist_shard) with its groups weighted by N targets / the batch's targets, so
 * the averaged gradients are the whole batch's. progress may be NULL (it shows this
 * rank's share of the loss). Returns the mean loss over all ranks, or NaN with a message
 * in err: an error, or a loss that became NaN or infinite (stopped before the step
 * reaches the parameters). */
double sr_train_epoch(sr_trainer *t, heed_progress *progress, char *err, size_t errlen);

/* The trained model as an sr_scorer (user = sr_trainer): eval mode, no tape. */
int sr_model_scorer(void *user, int64_t n, const int64_t *users, const int64_t *seqs, int64_t maxlen,
                    const int32_t *cands, int64_t n_cands, float *scores);

/* Checkpoint of the whole training state (parameters, Adam, epoch, dropout RNG); the
 * batches of an epoch depend only on (seed, epoch), so a resumed run continues exactly.
 * The checkpoint records every setting that changes training (the data's size, the
 * model, Adam, --l2-emb, batch, seed, length groups, dtype); a load with any different
 * setting fails naming it and both values. With N ranks rank 0 writes the file and reads
 * it for all; any N may resume it. */
int sr_trainer_save(sr_trainer *t, const char *path, char *err, size_t errlen);
int sr_trainer_load(sr_trainer *t, const char *path, char *err, size_t errlen);

#endif
