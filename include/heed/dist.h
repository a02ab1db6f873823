/* heed: Data-parallel training over MPI (dist/). docs/distributed.md shows a training
 * loop and the design. Part of the public API: <heed.h> includes every part; a file may
 * include just the parts it uses. */
#ifndef HEED_API_DIST_H
#define HEED_API_DIST_H

#include "core.h"
#include "checkpoint.h"
#include "optim.h"
#include "heed/config.h" /* HEED_HAVE_MPI: defined when heed was built with MPI (-Dmpi) */

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ distributed training (dist/) */

/* N processes (ranks) train one model: each holds all parameters, runs forward and
 * backward on its own shard of every global batch, and the gradients are averaged over
 * the ranks before every optimizer step, so all ranks take the same step -- the step one
 * process would take on the whole batch. Start the program with the MPI launcher:
 *     mpirun -np 4 ./train ...
 * All calls below are collective (every rank makes them, in the same order) unless said
 * otherwise. Built without MPI, or run without a launcher, the world is one process:
 * rank 0 of 1, every call succeeds and communicates nothing. */

/* Starts MPI on the first call (when the process was started by an MPI launcher) and
 * folds this rank into ctx's random op streams, so dropout masks differ between ranks
 * by construction (rank 0 keeps the streams of a single process). Call it for every ctx
 * whose random ops train the model; argc and argv may be NULL. ctx may be NULL too, to
 * start MPI before any ctx exists (a failure's message is then lost: it is reported
 * again by the next call with a ctx). Fails (HEED_ERR_STATE, in heed_ctx_error) when MPI
 * cannot start, when heed was built without MPI but the launcher started several
 * processes, or after heed_dist_finalize. Once MPI runs, a rank that
 * exits without heed_dist_finalize (an error, exit(), return from main) ends every rank
 * with a message naming it, rather than leaving the others waiting. */
heed_status heed_dist_init(heed_ctx *ctx, int *argc, char ***argv);
/* Not collective. 0 and 1 before heed_dist_init, without MPI or without a launcher. */
int heed_dist_rank(void);
int heed_dist_size(void);
/* Not collective. This rank's part of n items: [*begin, *end) = [n r / s, n (r + 1) / s)
 * for rank r of s (integer division): the parts are disjoint, cover 0..n-1 in rank order
 * and differ in size by at most one. A rank may get none (n < s). */
void heed_dist_shard(int64_t n, int rank, int size, int64_t *begin, int64_t *end);

/* Checks that every rank declared the same parameters (count, names, shapes, dtype, in
 * the same order) and copies root's values to every rank. A mismatch fails on every rank
 * with HEED_ERR_STATE naming the first parameter that differs and the ranks. Call once
 * after declaring the parameters (and after loading weights on root). */
heed_status heed_dist_broadcast_params(heed_params *P, int root);
/* Replaces every gradient of P by its mean over the ranks (MPI_Allreduce of the flat
 * gradient buffer, f32 or f64). The mean is the gradient of the whole batch when each
 * rank's loss is the mean over its shard and the shards are equal; for unequal shards
 * scale each rank's loss by size * (its items / all items). Blocking; to overlap the
 * reduction with backward use heed_dist_overlap instead. */
heed_status heed_dist_allreduce_grads(heed_params *P);
/* Sums values[0..n) over the ranks, in place (losses, counts, metrics). */
heed_status heed_dist_allreduce_sum(heed_ctx *ctx, double *values, int n);
/* Copies bytes of root's buf to every rank's buf (plain data only: no pointers). */
heed_status heed_dist_broadcast(heed_ctx *ctx, void *buf, size_t bytes, int root);

/* Checkpoints of the global state (parameters, optimizer state and step count, epoch,
 * op RNG, info): the same on every rank, so one file serves any number of ranks. save:
 * rank 0 writes it (atomically, heed_checkpoint_save), the others write nothing; every
 * rank returns rank 0's status and message. load: rank 0 reads it (heed_checkpoint_load)
 * and every rank receives the parameters, optimizer state, step count, op RNG state and
 * info_out; an error on rank 0 is returned on every rank. The file need only exist on
 * rank 0's machine. */
heed_status heed_dist_checkpoint_save(heed_params *P, const char *path, heed_optimizer *opt,
                                      const heed_checkpoint_info *info);
heed_status heed_dist_checkpoint_load(heed_params *P, const char *path, heed_optimizer *opt,
                                      heed_checkpoint_info *info_out);

/* Not collective. Ends every rank now: writes "heed: rank R of N: <message>" to stderr
 * and calls MPI_Abort (without MPI: exit). For an error one rank cannot recover from
 * while the others would wait for it. Exit status: code (1 if code is 0). */
void heed_dist_abort(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* Ends MPI (after every rank is done communicating). */
heed_status heed_dist_finalize(void);

/* ---------------------------------------------------------------- overlap with backward */

/* The gradient reduction overlapped with backward, as PyTorch's DistributedDataParallel
 * does it. The flat gradient buffer is cut into buckets: contiguous runs of parameters,
 * bucket_bytes or a little more each, taken from the last declared parameter back (the
 * first whose gradients backward finishes). During backward, a hook on g
 * (heed_graph_set_grad_ready_hook) counts the parameters whose gradient is final; once
 * every parameter of a bucket is, and every earlier bucket has been started, the bucket's
 * non-blocking MPI_Iallreduce starts (buckets start in one order on every rank, as MPI
 * requires). heed_dist_overlap_wait then starts the buckets backward did not complete
 * (parameters the step did not use), waits for all and divides by the number of ranks:
 * the gradients of heed_dist_allreduce_grads (to rounding: MPI may add the ranks' values
 * in another order for another message size). One backward per
 * wait: for gradient accumulation, reduce with heed_dist_allreduce_grads after the last
 * micro-batch instead. The buckets use their own communicator, so other collectives may
 * come between backward and the wait. */
typedef struct heed_dist_overlap heed_dist_overlap;

typedef struct {
    size_t bucket_bytes; /* 0: 1 MiB */
} heed_dist_overlap_opts;

/* Collective. Checks the parameter layout as heed_dist_broadcast_params does (all
 * parameters declared first) and sets the hook on g. NULL on error (heed_ctx_error of
 * P's ctx). With one rank the hook is not set and the wait does nothing. */
heed_dist_overlap *heed_dist_overlap_new(heed_params *P, heed_graph *g, const heed_dist_overlap_opts *opts);
/* Removes the hook (free it before its graph); buckets still in flight are waited for
 * first. NULL is fine. */
void heed_dist_overlap_free(heed_dist_overlap *o);
/* After backward, before the optimizer step: the averaged gradients, as above. Fails
 * (HEED_ERR_STATE) when a backward ran twice since the last wait; the reduction is
 * completed anyway so that the ranks stay in step. */
heed_status heed_dist_overlap_wait(heed_dist_overlap *o);

/* What the reduction cost, summed over the steps so far (this rank's view). */
typedef struct {
    int64_t steps;               /* waits */
    int64_t buckets;             /* per step */
    int64_t bytes;               /* gradient bytes reduced per step */
    int64_t started_in_backward; /* buckets started by the hook, over all steps */
    int64_t bytes_in_backward;   /* their bytes, over all steps */
    double wait_seconds;         /* in heed_dist_overlap_wait */
    double hook_seconds;         /* in the hook during backward (starting and progressing) */
} heed_dist_stats;
heed_dist_stats heed_dist_overlap_stats(const heed_dist_overlap *o);

#ifdef __cplusplus
}
#endif
#endif
