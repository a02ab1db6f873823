/* The gradient allreduce overlapped with backward (PyTorch DistributedDataParallel's
 * buckets, on MPI's non-blocking MPI_Iallreduce).
 *
 * Buckets are contiguous slices of the flat gradient buffer, made of whole parameters,
 * from the last declared parameter back: a model declared from input to output finishes
 * its last layers' gradients first, so bucket 0 is usually ready first. The grad-ready
 * hook (graph/grad_ready.c) reports each parameter whose gradient is final; a bucket
 * whose parameters are all final starts its reduction at once -- but only after every
 * bucket before it: MPI matches collectives on a communicator by the order they start,
 * and the order parameters become final may differ between ranks (a shard that skips a
 * layer, a data-dependent graph). So buckets start in index order on every rank; those
 * backward did not complete start in the wait.
 *
 * Progress: MPI moves a non-blocking collective forward only inside MPI calls (unless
 * the library runs a progress thread), so the hook tests the buckets in flight each time
 * it runs: each backward node that finishes a parameter also advances the reduction.
 *
 * The buckets use their own communicator (MPI_Comm_dup), so a collective on
 * MPI_COMM_WORLD between backward and the wait (the global loss) cannot be matched
 * against a bucket started at a different time on another rank. */
#include "dist_internal.h"
#include "heed/dist.h"

#include <stdlib.h>

#define DEFAULT_BUCKET_BYTES ((size_t)1 << 20)

typedef struct {
    int first, last;    /* parameters first..last */
    int64_t begin, end; /* their elements in the flat buffer */
    int remaining;      /* parameters not yet final in this step */
    int n_req;          /* MPI requests: one per HEED_DIST_CHUNK elements */
    MPI_Request *req;
    bool done; /* its requests completed (in this step) */
} bucket;

struct heed_dist_overlap {
    heed_params *P;
    heed_graph *g;
    MPI_Comm comm;
    int n_params, n_buckets;
    int next; /* the first bucket not started in this step */
    bucket *b;
    int *bucket_of;  /* [n_params] */
    bool *final;     /* [n_params]: reported in this step */
    int64_t *offset; /* [n_params] */
    bool twice;      /* a parameter was reported twice before a wait */
    heed_dist_stats st;
};

static void start(heed_dist_overlap *o, bucket *b, bool in_backward) {
    heed_dtype dt = heed_params_dtype(o->P);
    char *gr = heed_params_grads(o->P);
    size_t es = heed_dtype_size(dt);
    for (int r = 0; r < b->n_req; r++) {
        int64_t i = b->begin + r * HEED_DIST_CHUNK, n = b->end - i < HEED_DIST_CHUNK ? b->end - i : HEED_DIST_CHUNK;
        MPI_Iallreduce(MPI_IN_PLACE, gr + (size_t)i * es, (int)n, heed__dist_type(dt), MPI_SUM, o->comm, &b->req[r]);
    }
    if (in_backward) {
        o->st.started_in_backward++;
        o->st.bytes_in_backward += (b->end - b->begin) * (int64_t)es;
    }
}

/* Starts, in order, the buckets whose parameters are all final. */
static void start_ready(heed_dist_overlap *o) {
    while (o->next < o->n_buckets && o->b[o->next].remaining == 0) start(o, &o->b[o->next++], true);
}

/* Lets MPI move the buckets in flight forward. */
static void progress(heed_dist_overlap *o) {
    for (int k = 0; k < o->next; k++) {
        bucket *b = &o->b[k];
        if (b->done) continue;
        int flag = 0;
        MPI_Testall(b->n_req, b->req, &flag, MPI_STATUSES_IGNORE);
        b->done = flag != 0;
    }
}

/* The store index of parameter t, or -1 if it is not one of o's (another store). */
static int param_index(const heed_dist_overlap *o, const heed_tensor *t) {
    size_t es = heed_dtype_size(heed_params_dtype(o->P));
    ptrdiff_t bytes = (const char *)t->data - (const char *)heed_params_values(o->P);
    if (t->dtype != heed_params_dtype(o->P) || bytes < 0 || bytes % (ptrdiff_t)es) return -1;
    int64_t off = bytes / (ptrdiff_t)es;
    int lo = 0, hi = o->n_params - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (o->offset[mid] == off) return heed_params_at(o->P, mid) == t ? mid : -1;
        if (o->offset[mid] < off) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

static void on_grad_ready(heed_graph *g, heed_tensor *t, void *user) {
    heed_dist_overlap *o = user;
    double t0 = MPI_Wtime();
    int i = param_index(o, t);
    if (i < 0) return;
    if (o->final[i]) { /* its bucket may be in flight while this backward writes into it */
        o->twice = true;
        heed_graph_fail(g, HEED_ERR_STATE,
                        "heed_dist_overlap: a second backward before heed_dist_overlap_wait ('%s' again): one backward "
                        "per wait (for gradient accumulation use heed_dist_allreduce_grads)",
                        t->name);
        return;
    }
    o->final[i] = true;
    o->b[o->bucket_of[i]].remaining--;
    start_ready(o);
    progress(o);
    o->st.hook_seconds += MPI_Wtime() - t0;
}

void heed_dist_overlap_free(heed_dist_overlap *o) {
    if (!o) return;
    int fin = 0;
    MPI_Finalized(&fin);
    if (o->comm != MPI_COMM_NULL && !fin) { /* after MPI_Finalize MPI has let go of everything */
        for (int k = 0; k < o->next; k++) MPI_Waitall(o->b[k].n_req, o->b[k].req, MPI_STATUSES_IGNORE);
        MPI_Comm_free(&o->comm);
    }
    if (o->g && o->g->grad_ready == on_grad_ready && o->g->grad_ready_user == o)
        heed_graph_set_grad_ready_hook(o->g, NULL, NULL);
    for (int k = 0; o->b && k < o->n_buckets; k++) free(o->b[k].req);
    free(o->b);
    free(o->bucket_of);
    free(o->final);
    free(o->offset);
    free(o);
}

/* Buckets from the last parameter back, each at least bucket_bytes (or what is left). */
static bool make_buckets(heed_dist_overlap *o, size_t bucket_bytes) {
    heed_params *P = o->P;
    size_t es = heed_dtype_size(heed_params_dtype(P));
    o->b = calloc((size_t)(o->n_params ? o->n_params : 1), sizeof *o->b);
    if (!o->b) return false;
    for (int last = o->n_params - 1; last >= 0;) {
        int first = last;
        size_t bytes = (size_t)heed_params_at(P, first)->numel * es;
        while (first > 0 && bytes < bucket_bytes) bytes += (size_t)heed_params_at(P, --first)->numel * es;
        bucket *b = &o->b[o->n_buckets++];
        *b = (bucket){.first = first,
                      .last = last,
                      .begin = o->offset[first],
                      .end = o->offset[last] + heed_params_at(P, last)->numel,
                      .remaining = last - first + 1};
        b->n_req = (int)((b->end - b->begin + HEED_DIST_CHUNK - 1) / HEED_DIST_CHUNK);
        b->req = malloc((size_t)(b->n_req ? b->n_req : 1) * sizeof *b->req);
        if (!b->req) return false;
        for (int i = first; i <= last; i++) o->bucket_of[i] = o->n_buckets - 1;
        o->st.bytes += (b->end - b->begin) * (int64_t)es;
        last = first - 1;
    }
    o->st.buckets = o->n_buckets;
    return true;
}

heed_dist_overlap *heed_dist_overlap_new(heed_params *P, heed_graph *g, const heed_dist_overlap_opts *opts) {
    static const char *fn = "heed_dist_overlap_new";
    if (!P) return NULL;
    heed_ctx *ctx = heed_params_ctx(P);
    if (!g) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: graph is NULL", fn), NULL;
    size_t bucket_bytes = opts && opts->bucket_bytes ? opts->bucket_bytes : DEFAULT_BUCKET_BYTES;
    heed_dist_overlap *o = calloc(1, sizeof *o);
    if (!o) return heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory", fn), NULL;
    *o = (heed_dist_overlap){.P = P, .comm = MPI_COMM_NULL, .n_params = heed_params_count(P)};
    bool many = heed__world.mpi && !heed__world.finalized && heed__world.size > 1;
    if (!many) return o; /* one rank: nothing to reduce, no hook */
    if (heed__dist_check_layout(P, fn) != HEED_OK) {
        free(o);
        return NULL;
    }
    size_t n = (size_t)(o->n_params ? o->n_params : 1);
    o->bucket_of = malloc(n * sizeof *o->bucket_of);
    o->final = calloc(n, sizeof *o->final);
    o->offset = malloc(n * sizeof *o->offset);
    bool ok = o->bucket_of && o->final && o->offset;
    for (int i = 0; ok && i < o->n_params; i++) o->offset[i] = heed_params_offset(P, i);
    ok = ok && make_buckets(o, bucket_bytes);
    /* Every rank must cut the same buckets: same layout (checked), same size asked. */
    int all_ok = ok;
    MPI_Allreduce(MPI_IN_PLACE, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    unsigned long long lo = bucket_bytes, hi = bucket_bytes;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    if (!all_ok || lo != hi) {
        heed_dist_overlap_free(o);
        if (!all_ok) return heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory (on some rank)", fn), NULL;
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: the ranks asked for different bucket sizes (%llu to %llu bytes)",
                             fn, lo, hi),
               NULL;
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &o->comm);
    o->g = g;
    heed_graph_set_grad_ready_hook(g, on_grad_ready, o);
    return o;
}

heed_status heed_dist_overlap_wait(heed_dist_overlap *o) {
    if (!o) return HEED_ERR_ARG;
    if (o->comm == MPI_COMM_NULL) return HEED_OK;
    double t0 = MPI_Wtime();
    while (o->next < o->n_buckets) start(o, &o->b[o->next++], false);
    for (int k = 0; k < o->n_buckets; k++) {
        bucket *b = &o->b[k];
        if (!b->done) MPI_Waitall(b->n_req, b->req, MPI_STATUSES_IGNORE);
        heed__dist_average(o->P, b->begin, b->end);
        b->remaining = b->last - b->first + 1;
        b->done = false;
    }
    memset(o->final, 0, (size_t)o->n_params * sizeof *o->final);
    o->next = 0;
    o->st.steps++;
    o->st.wait_seconds += MPI_Wtime() - t0;
    if (o->twice) {
        o->twice = false;
        return heed_ctx_fail(heed_params_ctx(o->P), HEED_ERR_STATE,
                             "heed_dist_overlap_wait: a backward ran twice since the last wait: the gradients are not "
                             "those of one step");
    }
    return HEED_OK;
}

heed_dist_stats heed_dist_overlap_stats(const heed_dist_overlap *o) { return o ? o->st : (heed_dist_stats){0}; }
