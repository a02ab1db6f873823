/* heed_dist_* without MPI: a world of one process. Every call succeeds and sends
 * nothing, so a data-parallel program runs unchanged as a single process; started by an
 * MPI launcher with several processes it refuses to run, rather than train N unrelated
 * copies of the model. */
#include "dist_internal.h"
#include "heed/checkpoint.h"
#include "heed/dist.h"
#include "heed/optim.h"

#include <stdarg.h>
#include <stdlib.h>

/* The process count an MPI launcher announced in the environment (Open MPI, MPICH's
 * Hydra and other PMI launchers), or 1. */
static long launcher_size(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && atol(v) > 1) return atol(v);
    }
    return 1;
}

heed_status heed_dist_init(heed_ctx *ctx, int *argc, char ***argv) {
    long n = launcher_size();
    if (n > 1)
        return heed_ctx_fail(ctx, HEED_ERR_STATE,
                             "heed_dist_init: started as one of %ld processes, but heed was built without MPI "
                             "(-Dmpi=disabled or MPI not found): rebuild with MPI (docs/distributed.md)",
                             n);
    return HEED_OK;
}

int heed_dist_rank(void) { return 0; }
int heed_dist_size(void) { return 1; }
/* The checks and messages of dist_mpi.c's, in a world of one (rank 0 only). */
static heed_status check_root(heed_ctx *ctx, const char *fn, int root) {
    return root == 0 ? HEED_OK : heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: root %d is not a rank (0..0)", fn, root);
}
heed_status heed_dist_broadcast_params(heed_params *P, int root) {
    return P ? check_root(heed_params_ctx(P), "heed_dist_broadcast_params", root) : HEED_ERR_ARG;
}
heed_status heed_dist_allreduce_grads(heed_params *P) { return P ? HEED_OK : HEED_ERR_ARG; }
heed_status heed_dist_allreduce_sum(heed_ctx *ctx, double *values, int n) {
    if (!ctx || n < 0 || (!values && n))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_dist_allreduce_sum: %d values at %p", n, (void *)values);
    return HEED_OK;
}
heed_status heed_dist_broadcast(heed_ctx *ctx, void *buf, size_t bytes, int root) {
    if (!ctx) return HEED_ERR_ARG;
    if (!buf && bytes) return heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_dist_broadcast: %zu bytes at NULL", bytes);
    return check_root(ctx, "heed_dist_broadcast", root);
}

heed_status heed_dist_checkpoint_save(heed_params *P, const char *path, heed_optimizer *opt,
                                      const heed_checkpoint_info *info) {
    return heed_checkpoint_save(P, path, opt, info);
}

heed_status heed_dist_checkpoint_load(heed_params *P, const char *path, heed_optimizer *opt,
                                      heed_checkpoint_info *info_out) {
    return heed_checkpoint_load(P, path, opt, info_out);
}

void heed_dist_abort(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "heed: rank 0 of 1: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(code ? code : 1);
}

heed_status heed_dist_finalize(void) { return HEED_OK; }

struct heed_dist_overlap {
    heed_params *P;
};

heed_dist_overlap *heed_dist_overlap_new(heed_params *P, heed_graph *g, const heed_dist_overlap_opts *opts) {
    if (!P || !g) return NULL;
    heed_dist_overlap *o = calloc(1, sizeof *o);
    if (!o) return heed_ctx_fail(heed_params_ctx(P), HEED_ERR_NOMEM, "heed_dist_overlap_new: out of memory"), NULL;
    o->P = P;
    return o;
}

void heed_dist_overlap_free(heed_dist_overlap *o) { free(o); }
heed_status heed_dist_overlap_wait(heed_dist_overlap *o) { return o ? HEED_OK : HEED_ERR_ARG; }
heed_dist_stats heed_dist_overlap_stats(const heed_dist_overlap *o) { return (heed_dist_stats){0}; }
