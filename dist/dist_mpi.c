/* Data-parallel training over MPI: the world, the layout check, broadcasts, the blocking
 * gradient allreduce and checkpoints of the global state (the overlapped allreduce is in
 * overlap.c).
 *
 * Every rank holds the whole model. A step: each rank runs forward and backward on its
 * shard of the global batch, the gradients are summed over the ranks (MPI_Allreduce of
 * the flat gradient buffer: one call, or one per bucket in overlap.c) and divided by the
 * number of ranks, and every rank takes the same optimizer step from the same gradients.
 * With rank r's loss L_r the mean over its b_r items and equal shards (b_r = B / N),
 *     (1/N) sum_r dL_r/dw = (1/N) sum_r (N/B) sum_{i in r} dl_i/dw = (1/B) sum_i dl_i/dw,
 * the gradient of the mean loss over the global batch of B items: N ranks take the step
 * one process takes on the whole batch (to rounding: the sums are associated differently).
 * All ranks receive the same sum, so their parameters stay equal bit for bit.
 *
 * Failures: MPI's default error handler (MPI_ERRORS_ARE_FATAL) ends the job on any MPI
 * error; heed_dist_abort ends it on a user error; an exit without heed_dist_finalize ends
 * it from an atexit handler -- the launcher then stops every rank, nobody waits for a
 * peer that is gone. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "dist_internal.h"
#include "heed/checkpoint.h"
#include "heed/dist.h"
#include "heed/optim.h"

#include <stdarg.h>
#include <stdlib.h>

heed_dist_world heed__world = {.size = 1};

/* ---------------------------------------------------------------- the world */

/* True when an MPI launcher started this process (Open MPI's mpirun, MPICH's Hydra and
 * other PMI launchers set these). A plain run does not start MPI: a world of one. */
static bool launched(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "PMIX_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i])) return true;
    return false;
}

/* atexit: a rank leaving without heed_dist_finalize takes the job down with a message. */
static void exit_guard(void) {
    int fin = 0;
    MPI_Finalized(&fin);
    if (fin || heed__world.finalized) return;
    fprintf(stderr, "heed: rank %d of %d exited without heed_dist_finalize (see its error above): ending every rank\n",
            heed__world.rank, heed__world.size);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

heed_status heed_dist_init(heed_ctx *ctx, int *argc, char ***argv) {
    heed_dist_world *w = &heed__world;
    if (w->finalized)
        return heed_ctx_fail(ctx, HEED_ERR_STATE,
                             "heed_dist_init: called after heed_dist_finalize (MPI cannot restart)");
    if (!w->started) {
        w->started = true;
        int up = 0;
        MPI_Initialized(&up);
        if (up || launched()) {
            if (!up) {
                /* Kernels use OpenMP threads, but only the main thread calls MPI. */
                int provided = 0;
                if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
                    w->started = false;
                    return heed_ctx_fail(ctx, HEED_ERR_STATE, "heed_dist_init: MPI_Init_thread failed");
                }
                w->ours = true;
            }
            w->mpi = true;
            MPI_Comm_rank(MPI_COMM_WORLD, &w->rank);
            MPI_Comm_size(MPI_COMM_WORLD, &w->size);
            atexit(exit_guard);
        }
    }
    if (ctx) ctx->stream_base = (uint64_t)w->rank << HEED_DIST_STREAM_SHIFT;
    return HEED_OK;
}

int heed_dist_rank(void) { return heed__world.rank; }
int heed_dist_size(void) { return heed__world.size; }
static bool many(void) { return heed__world.mpi && !heed__world.finalized && heed__world.size > 1; }

void heed_dist_abort(int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "heed: rank %d of %d: %s\n", heed__world.rank, heed__world.size, msg);
    fflush(stderr);
    fflush(stdout);
    int fin = 0;
    if (heed__world.mpi) MPI_Finalized(&fin);
    if (heed__world.mpi && !fin) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    _Exit(code ? code : 1);
}

heed_status heed_dist_finalize(void) {
    heed_dist_world *w = &heed__world;
    if (w->mpi && !w->finalized && w->ours) MPI_Finalize();
    if (w->mpi) w->finalized = true;
    return HEED_OK;
}

/* ---------------------------------------------------------------- small collectives */

static heed_status check_root(heed_ctx *ctx, const char *fn, int root) {
    if (root < 0 || root >= heed__world.size)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: root %d is not a rank (0..%d)", fn, root, heed__world.size - 1);
    return HEED_OK;
}

static void bcast_bytes(void *buf, size_t bytes, int root) {
    for (size_t done = 0; done < bytes;) {
        size_t n = bytes - done < (size_t)HEED_DIST_CHUNK ? bytes - done : (size_t)HEED_DIST_CHUNK;
        MPI_Bcast((char *)buf + done, (int)n, MPI_BYTE, root, MPI_COMM_WORLD);
        done += n;
    }
}

/* Elements [begin, end) of a flat buffer of dtype dt from root to every rank. */
static void bcast_elems(void *buf, heed_dtype dt, int64_t begin, int64_t end, int root) {
    size_t es = heed_dtype_size(dt);
    for (int64_t i = begin; i < end; i += HEED_DIST_CHUNK) {
        int64_t n = end - i < HEED_DIST_CHUNK ? end - i : HEED_DIST_CHUNK;
        MPI_Bcast((char *)buf + (size_t)i * es, (int)n, heed__dist_type(dt), root, MPI_COMM_WORLD);
    }
}

heed_status heed_dist_broadcast(heed_ctx *ctx, void *buf, size_t bytes, int root) {
    if (!ctx) return HEED_ERR_ARG;
    if (!buf && bytes) return heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_dist_broadcast: %zu bytes at NULL", bytes);
    if (check_root(ctx, "heed_dist_broadcast", root) != HEED_OK) return HEED_ERR_ARG;
    if (many()) bcast_bytes(buf, bytes, root);
    return HEED_OK;
}

heed_status heed_dist_allreduce_sum(heed_ctx *ctx, double *values, int n) {
    if (!ctx || n < 0 || (!values && n))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_dist_allreduce_sum: %d values at %p", n, (void *)values);
    if (many() && n) MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return HEED_OK;
}

/* True when every rank passed the same value. */
static bool agree(uint64_t v) {
    uint64_t lo = v, hi = v;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    return lo == hi;
}

/* ---------------------------------------------------------------- the layout check */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ull;
    return h;
}

/* Entry 0 is the store (dtype), entry i + 1 parameter i (name, shape, offset). */
static uint64_t entry_hash(heed_params *P, int i) {
    uint64_t h = 1469598103934665603ull;
    heed_dtype dt = heed_params_dtype(P);
    if (i == 0) return fnv(h, &dt, sizeof dt);
    heed_tensor *t = heed_params_at(P, i - 1);
    int64_t off = heed_params_offset(P, i - 1);
    h = fnv(h, t->name, strlen(t->name) + 1);
    h = fnv(h, &t->ndim, sizeof t->ndim);
    h = fnv(h, t->shape, (size_t)t->ndim * sizeof *t->shape);
    return fnv(h, &off, sizeof off);
}

static void describe(heed_params *P, int i, char *buf, size_t len) {
    int n = heed_params_count(P);
    if (i == 0) snprintf(buf, len, "a %s store", heed_params_dtype(P) == HEED_F64 ? "f64" : "f32");
    else if (i - 1 >= n) snprintf(buf, len, "missing (it has %d parameters)", n);
    else {
        heed_tensor *t = heed_params_at(P, i - 1);
        snprintf(buf, len, "'%.200s' %s", t->name, HEED_S(t));
    }
}

heed_status heed__dist_check_layout(heed_params *P, const char *fn) {
    heed_ctx *ctx = heed_params_ctx(P);
    int n = heed_params_count(P) + 1, n0 = n;
    MPI_Bcast(&n0, 1, MPI_INT, 0, MPI_COMM_WORLD);
    uint64_t *h0 = malloc((size_t)n0 * sizeof *h0);
    int ok = h0 != NULL;
    MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!ok) {
        free(h0);
        return heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory checking the parameters (on some rank)", fn);
    }
    if (heed__world.rank == 0)
        for (int i = 0; i < n; i++) h0[i] = entry_hash(P, i);
    MPI_Bcast(h0, n0 * 8, MPI_BYTE, 0, MPI_COMM_WORLD);
    /* The first entry where this rank differs from rank 0; then the least over the ranks. */
    struct {
        int at, rank;
    } bad = {.at = n == n0 ? INT32_MAX : (n < n0 ? n : n0), .rank = heed__world.rank};
    for (int i = 0; i < n && i < n0; i++)
        if (entry_hash(P, i) != h0[i]) {
            bad.at = i;
            break;
        }
    free(h0);
    MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_2INT, MPI_MINLOC, MPI_COMM_WORLD);
    if (bad.at == INT32_MAX) return HEED_OK;
    char mine[256], first[256], other[256];
    describe(P, bad.at, mine, sizeof mine);
    memcpy(first, mine, sizeof mine);
    memcpy(other, mine, sizeof mine);
    MPI_Bcast(first, sizeof first, MPI_CHAR, 0, MPI_COMM_WORLD);
    MPI_Bcast(other, sizeof other, MPI_CHAR, bad.rank, MPI_COMM_WORLD);
    if (bad.at == 0)
        return heed_ctx_fail(ctx, HEED_ERR_STATE, "%s: the ranks' parameter stores differ: %s on rank 0, %s on rank %d",
                             fn, first, other, bad.rank);
    return heed_ctx_fail(ctx, HEED_ERR_STATE,
                         "%s: the ranks declared different parameters: parameter %d is %s on rank 0 but %s on rank %d "
                         "(every rank must declare the same parameters in the same order)",
                         fn, bad.at - 1, first, other, bad.rank);
}

/* ---------------------------------------------------------------- parameters and gradients */

heed_status heed_dist_broadcast_params(heed_params *P, int root) {
    static const char *fn = "heed_dist_broadcast_params";
    if (!P) return HEED_ERR_ARG;
    if (check_root(heed_params_ctx(P), fn, root) != HEED_OK) return HEED_ERR_ARG;
    if (!many()) return HEED_OK;
    heed_status st = heed__dist_check_layout(P, fn);
    if (st == HEED_OK) bcast_elems(heed_params_values(P), heed_params_dtype(P), 0, heed__dist_flat_end(P), root);
    return st;
}

#define T float
#define FN(name) name##_f32
#include "dist_mpi.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "dist_mpi.c"
#undef T
#undef FN

void heed__dist_average(heed_params *P, int64_t begin, int64_t end) {
    int size = heed__world.size;
    if (heed_params_dtype(P) == HEED_F32) dist_average_kernel_f32(P, begin, end, size);
    else dist_average_kernel_f64(P, begin, end, size);
}

heed_status heed_dist_allreduce_grads(heed_params *P) {
    if (!P) return HEED_ERR_ARG;
    if (!many()) return HEED_OK;
    /* The padding between parameters goes along: its gradients are zero. */
    int64_t end = heed__dist_flat_end(P);
    heed_dtype dt = heed_params_dtype(P);
    char *gr = heed_params_grads(P);
    for (int64_t i = 0; i < end; i += HEED_DIST_CHUNK) {
        int64_t n = end - i < HEED_DIST_CHUNK ? end - i : HEED_DIST_CHUNK;
        MPI_Allreduce(MPI_IN_PLACE, gr + (size_t)i * heed_dtype_size(dt), (int)n, heed__dist_type(dt), MPI_SUM,
                      MPI_COMM_WORLD);
    }
    heed__dist_average(P, 0, end);
    return HEED_OK;
}

/* ---------------------------------------------------------------- checkpoints */

/* Root's status and message to every rank: the others fail with it, prefixed. */
static heed_status share_status(heed_ctx *ctx, heed_status st, const char *fn) {
    struct {
        int code;
        char msg[HEED_ERRMSG];
    } s = {.code = st};
    if (heed__world.rank == 0 && st != HEED_OK) snprintf(s.msg, sizeof s.msg, "%s", heed_ctx_error(ctx));
    MPI_Bcast(&s, sizeof s, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (heed__world.rank != 0 && s.code != HEED_OK)
        heed_ctx_fail(ctx, (heed_status)s.code, "%s: on rank 0: %s", fn, s.msg);
    return (heed_status)s.code;
}

heed_status heed_dist_checkpoint_save(heed_params *P, const char *path, heed_optimizer *opt,
                                      const heed_checkpoint_info *info) {
    if (!many()) return heed_checkpoint_save(P, path, opt, info);
    if (!P) return HEED_ERR_ARG;
    heed_status st = heed__world.rank == 0 ? heed_checkpoint_save(P, path, opt, info) : HEED_OK;
    return share_status(heed_params_ctx(P), st, "heed_dist_checkpoint_save");
}

heed_status heed_dist_checkpoint_load(heed_params *P, const char *path, heed_optimizer *opt,
                                      heed_checkpoint_info *info_out) {
    static const char *fn = "heed_dist_checkpoint_load";
    if (!many()) return heed_checkpoint_load(P, path, opt, info_out);
    if (!P) return HEED_ERR_ARG;
    heed_ctx *ctx = heed_params_ctx(P);
    heed_status st = heed__dist_check_layout(P, fn);
    if (st != HEED_OK) return st;
    const char *kind = opt ? heed_optimizer_name(opt) : "";
    uint64_t okind = fnv(fnv(1469598103934665603ull, kind, strlen(kind)),
                         &(int){opt ? heed_optimizer_state_count(opt) : -1}, sizeof(int));
    if (!agree(okind))
        return heed_ctx_fail(ctx, HEED_ERR_STATE, "%s: the ranks' optimizers differ (rank %d has %s)", fn,
                             heed__world.rank, opt ? kind : "none");
    heed_checkpoint_info info = {0};
    st = heed__world.rank == 0 ? heed_checkpoint_load(P, path, opt, &info) : HEED_OK;
    st = share_status(ctx, st, fn);
    if (st != HEED_OK) return st;
    /* The global state, from rank 0 (checkpoint info is plain data: the same binary runs
     * on every rank). */
    bcast_elems(heed_params_values(P), heed_params_dtype(P), 0, heed__dist_flat_end(P), 0);
    for (int i = 0; opt && i < heed_optimizer_state_count(opt); i++) {
        void *data;
        int64_t numel;
        heed_dtype dt;
        heed_optimizer_state(opt, i, NULL, &data, &numel, &dt);
        bcast_elems(data, dt, 0, numel, 0);
    }
    int64_t steps = opt ? heed_optimizer_steps(opt) : 0;
    MPI_Bcast(&steps, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    if (opt) heed_optimizer_set_steps(opt, steps);
    bcast_bytes(&info, sizeof info, 0);
    heed_ctx_set_rng_state(ctx, info.rng_seed, info.rng_counter);
    if (info_out) *info_out = info;
    return HEED_OK;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

static void FN(dist_average_kernel)(heed_params *P, int64_t begin, int64_t end, int size) {
    T *gr = heed_params_grads(P);
    for (int64_t i = begin; i < end; i++) gr[i] /= (T)size;
}
#endif
