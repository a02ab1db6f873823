/* Data-parallel training (heed_dist_*): a small f64 MLP trained with Adam by N ranks,
 * each on its shard of every global batch, against one process trained on the whole
 * batches in the same program. tests/dist_test.sh runs the cases under mpirun:
 *
 *   test_dist equal          N ranks (blocking allreduce, then overlapped buckets) end
 *                            with the weights of one process on the union batches, to
 *                            1e-12, and bit for bit equal to each other
 *   test_dist dropout        the ranks' dropout masks differ, rank 0's are a single
 *                            process's, and a run with dropout is reproducible
 *   test_dist layout         different parameters on one rank: named on every rank
 *   test_dist save PATH E    train E epochs, checkpoint (rank 0 writes)
 *   test_dist resume PATH E  resume from PATH to epoch E: the weights of an uninterrupted
 *                            single-process run, to 1e-12
 *   test_dist fail HOW       rank 1 fails in the second step (HOW: abort, exit, kill)
 *   test_dist                (no launcher) the world of one process
 *
 * The global batch of 9 rows splits 4/5 over two ranks and the last one (64 = 7 * 9 + 1)
 * leaves rank 0 nothing: unequal shards and an empty one. Each rank's loss is its sum of
 * squared errors / (rows of the global batch * outputs) * ranks, so the mean over the
 * ranks (the allreduce) is the global batch's mean squared error. */
#include "check.h"
#include "heed/checkpoint.h"
#include "heed/dist.h"
#include "heed/dropout.h"
#include "heed/elementwise.h"
#include "heed/matmul.h"
#include "heed/optim.h"
#include "heed/reduce.h"

#include <signal.h>
#include <unistd.h>

enum { ROWS = 64, IN = 5, HID = 8, OUT = 3, BATCH = 9 };

static double X[ROWS * IN], Y[ROWS * OUT];

static void make_data(void) {
    heed_rng r = heed_rng_make(7, 1);
    for (int i = 0; i < ROWS * IN; i++) X[i] = 2 * heed_rng_uniform(&r) - 1;
    for (int i = 0; i < ROWS; i++)
        for (int o = 0; o < OUT; o++) {
            double s = 0;
            for (int k = 0; k < IN; k++) s += sin((o + 1) * (k + 1) * X[i * IN + k]);
            Y[i * OUT + o] = tanh(s);
        }
}

typedef struct {
    heed_ctx *ctx;
    heed_params *P;
    heed_optimizer *opt;
    heed_graph *g;
    heed_dist_overlap *overlap; /* NULL: blocking allreduce */
    heed_tensor *w1, *b1, *w2, *b2;
    int rank, size; /* the shard this net trains on: 0 of 1 for the reference */
    bool dist;      /* reduce gradients over the ranks */
    double dropout;
    int64_t epoch, steps;
    int fail_at_step; /* rank 1 fails here (fail case) */
    const char *fail_how;
} net;

/* A net; dist: a rank of the job (heed_dist_init on its ctx), else a single process. */
static net net_new(bool dist, bool overlap, double dropout) {
    net n = {.ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 11, .threads = 1}),
             .size = 1,
             .dist = dist,
             .dropout = dropout};
    if (dist) {
        CHECK(heed_dist_init(n.ctx, NULL, NULL) == HEED_OK, "%s", heed_ctx_error(n.ctx));
        n.rank = heed_dist_rank(), n.size = heed_dist_size();
    }
    n.P = heed_params_new(n.ctx, HEED_F64);
    n.w1 = heed_param(n.P, "l1.w", HEED_SHAPE(HID, IN), heed_init_xavier_uniform(1));
    n.b1 = heed_param(n.P, "l1.b", HEED_SHAPE(HID), heed_init_uniform(-0.1, 0.1));
    n.w2 = heed_param(n.P, "l2.w", HEED_SHAPE(OUT, HID), heed_init_xavier_uniform(1));
    n.b2 = heed_param(n.P, "l2.b", HEED_SHAPE(OUT), heed_init_zeros());
    n.opt = heed_adam(n.P, &(heed_adam_opts){.lr = 0.02});
    n.g = heed_graph_new(n.ctx);
    CHECK(n.w1 && n.b1 && n.w2 && n.b2 && n.opt && n.g, "%s", heed_ctx_error(n.ctx));
    if (dist) CHECK(heed_dist_broadcast_params(n.P, 0) == HEED_OK, "%s", heed_ctx_error(n.ctx));
    if (dist && overlap) {
        /* 8-byte buckets: every parameter its own bucket, so several reductions overlap */
        n.overlap = heed_dist_overlap_new(n.P, n.g, &(heed_dist_overlap_opts){.bucket_bytes = 8});
        CHECK(n.overlap != NULL, "%s", heed_ctx_error(n.ctx));
    }
    return n;
}

static void net_free(net *n) {
    heed_dist_overlap_free(n->overlap);
    heed_graph_free(n->g);
    heed_optimizer_free(n->opt);
    heed_params_free(n->P);
    heed_ctx_free(n->ctx);
}

/* Where each rank's rows came from, to check the shards tile the global batch. */
static int64_t shard_begin[64], shard_end[64];

static void inject_failure(const net *n) {
    if (!strcmp(n->fail_how, "abort"))
        heed_dist_abort(5, "test_dist: injected failure at step %lld", (long long)n->steps + 1);
    fprintf(stderr, "test_dist: rank %d: injected %s at step %lld\n", n->rank, n->fail_how, (long long)n->steps + 1);
    if (!strcmp(n->fail_how, "kill")) raise(SIGKILL);
    exit(4);
}

/* One epoch: rows shuffled by (seed, epoch), global batches of BATCH, this rank's shard. */
static void train_epoch(net *n) {
    int64_t order[ROWS];
    for (int i = 0; i < ROWS; i++) order[i] = i;
    heed_rng r = heed_rng_make(99, (uint64_t)n->epoch);
    for (int i = ROWS - 1; i > 0; i--) {
        int64_t j = (int64_t)heed_rng_below(&r, (uint64_t)i + 1), t = order[i];
        order[i] = order[j], order[j] = t;
    }
    for (int b0 = 0; b0 < ROWS; b0 += BATCH) {
        int64_t nb = ROWS - b0 < BATCH ? ROWS - b0 : BATCH, lo, hi;
        heed_dist_shard(nb, n->rank, n->size, &lo, &hi);
        shard_begin[n->steps % 64] = lo, shard_end[n->steps % 64] = hi;
        if (n->fail_how && n->rank == 1 && n->steps + 1 == n->fail_at_step) inject_failure(n);
        heed_graph_reset(n->g);
        heed_params_zero_grad(n->P);
        if (hi > lo) { /* an empty shard adds nothing, but still takes part in the reduction */
            double x[BATCH * IN], y[BATCH * OUT];
            for (int64_t i = lo; i < hi; i++) {
                memcpy(x + (i - lo) * IN, X + order[b0 + i] * IN, sizeof(double) * IN);
                memcpy(y + (i - lo) * OUT, Y + order[b0 + i] * OUT, sizeof(double) * OUT);
            }
            heed_graph *g = n->g;
            heed_tensor *h =
                heed_tanh(g, heed_linear(g, heed_input(g, HEED_F64, HEED_SHAPE(hi - lo, IN), x), n->w1, n->b1));
            if (n->dropout > 0) h = heed_dropout(g, h, n->dropout);
            heed_tensor *d =
                heed_sub(g, heed_linear(g, h, n->w2, n->b2), heed_input(g, HEED_F64, HEED_SHAPE(hi - lo, OUT), y));
            heed_tensor *loss = heed_scale(g, heed_sum_all(g, heed_mul(g, d, d)), (double)n->size / (double)(nb * OUT));
            CHECK(heed_backward(g, loss) == HEED_OK, "%s", heed_graph_error(g));
        }
        if (n->overlap) CHECK(heed_dist_overlap_wait(n->overlap) == HEED_OK, "%s", heed_ctx_error(n->ctx));
        else if (n->dist) CHECK(heed_dist_allreduce_grads(n->P) == HEED_OK, "%s", heed_ctx_error(n->ctx));
        CHECK(heed_optimizer_step(n->opt) == HEED_OK, "%s", heed_ctx_error(n->ctx));
        n->steps++;
    }
    n->epoch++;
}

static double max_diff(const net *a, const net *b) {
    const double *x = heed_params_values(a->P), *y = heed_params_values(b->P);
    double m = 0;
    for (int64_t i = 0; i < heed_params_padded_numel(a->P); i++) {
        double d = fabs(x[i] - y[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

/* Every rank's parameters equal this rank's, bit for bit (each rank broadcasts in turn). */
static bool ranks_bitwise_equal(const net *n) {
    int64_t numel = heed_params_padded_numel(n->P);
    double *other = malloc((size_t)numel * sizeof *other);
    if (!other) abort();
    bool same = true;
    for (int root = 0; root < n->size; root++) { /* every rank takes part in every broadcast */
        memcpy(other, heed_params_values(n->P), (size_t)numel * sizeof *other);
        heed_dist_broadcast(n->ctx, other, (size_t)numel * sizeof *other, root);
        same &= memcmp(other, heed_params_values(n->P), (size_t)numel * sizeof *other) == 0;
    }
    free(other);
    return same;
}

/* The shards of the last steps tile each global batch in rank order. */
static void check_shards_tile(const net *n) {
    int64_t steps = n->steps < 64 ? n->steps : 64;
    for (int64_t s = 0; s < steps; s++) {
        double mine[2] = {(double)shard_begin[s], (double)shard_end[s]}, prev_end[1] = {0}, sizes[1];
        sizes[0] = (double)(shard_end[s] - shard_begin[s]);
        heed_dist_allreduce_sum(n->ctx, sizes, 1);
        /* rank r's begin must be rank r-1's end: send each end to the next rank's check */
        for (int root = 0; root + 1 < n->size; root++) {
            double e = mine[1];
            heed_dist_broadcast(n->ctx, &e, sizeof e, root);
            if (n->rank == root + 1) prev_end[0] = e;
        }
        CHECK(mine[0] == prev_end[0], "step %lld: rank %d's shard starts at %g, the previous ends at %g", (long long)s,
              n->rank, mine[0], prev_end[0]);
        int64_t nb = (s + 1) % 8 == 0 ? ROWS % BATCH : BATCH; /* 8 steps an epoch, the last of 1 row */
        CHECK(sizes[0] == (double)nb, "step %lld: the shards hold %g rows, the global batch %lld", (long long)s,
              sizes[0], (long long)nb);
    }
}

static void train_epochs(net *n, int64_t epochs) {
    while (n->epoch < epochs) train_epoch(n);
}

/* ---------------------------------------------------------------- cases */

static void equal_to_one_process_on_the_union_batch(void) {
    for (int overlap = 0; overlap < 2; overlap++) {
        net ref = net_new(false, false, 0), n = net_new(true, overlap, 0);
        CHECK(max_diff(&n, &ref) == 0, "the ranks start from other weights than one process");
        train_epochs(&ref, 2);
        train_epochs(&n, 2);
        double d = max_diff(&n, &ref);
        CHECK(d <= 1e-12, "%s: rank %d of %d after %lld steps: weights differ from one process by %.3g",
              overlap ? "overlap" : "blocking", n.rank, n.size, (long long)n.steps, d);
        CHECK(ranks_bitwise_equal(&n), "%s: the ranks' weights differ", overlap ? "overlap" : "blocking");
        check_shards_tile(&n);
        if (overlap && n.size > 1) {
            heed_dist_stats st = heed_dist_overlap_stats(n.overlap);
            CHECK(st.steps == n.steps && st.buckets == 4, "%lld waits, %lld buckets", (long long)st.steps,
                  (long long)st.buckets);
            /* Every step with rows starts its buckets in backward; rank 0's last shard is empty. */
            CHECK(st.started_in_backward >= (n.steps - 2) * 4, "only %lld of %lld buckets started during backward",
                  (long long)st.started_in_backward, (long long)(st.steps * st.buckets));
        }
        net_free(&ref);
        net_free(&n);
    }
}

/* The masks of one dropout op on the same ctx state, from the given ctx. */
static void mask(heed_ctx *ctx, unsigned char *m, int n) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *y = heed_dropout(g, heed_full(g, HEED_F64, HEED_SHAPE(n), 1.0), 0.5);
    for (int i = 0; i < n; i++) m[i] = heed_get(y, i) != 0;
    heed_graph_free(g);
}

static void dropout_differs_per_rank_and_is_reproducible(void) {
    enum { M = 256 };
    heed_ctx *plain = heed_ctx_new(&(heed_ctx_opts){.seed = 5}), *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 5});
    CHECK(heed_dist_init(ctx, NULL, NULL) == HEED_OK, "%s", heed_ctx_error(ctx));
    int rank = heed_dist_rank(), size = heed_dist_size();
    unsigned char mine[M], single[M], other[M];
    mask(plain, single, M);
    mask(ctx, mine, M);
    uint64_t s1, c1, s2, c2;
    heed_ctx_rng_state(plain, &s1, &c1);
    heed_ctx_rng_state(ctx, &s2, &c2);
    CHECK(s1 == s2 && c1 == c2, "the ranks' RNG state (the checkpointed part) differs from one process's");
    if (rank == 0) CHECK(!memcmp(mine, single, M), "rank 0's mask is not the single-process mask");
    else CHECK(memcmp(mine, single, M), "rank %d's mask equals the single-process mask", rank);
    for (int root = 0; root < size; root++) {
        memcpy(other, mine, M);
        heed_dist_broadcast(ctx, other, M, root);
        if (root != rank) CHECK(memcmp(other, mine, M), "rank %d and rank %d drew the same dropout mask", rank, root);
    }
    heed_ctx_free(plain);
    heed_ctx_free(ctx);
    /* Training with dropout: the ranks stay equal, and a second run from the seed is the same run. */
    net a = net_new(true, true, 0.3), b = net_new(true, true, 0.3), ref = net_new(false, false, 0.3);
    train_epochs(&a, 2);
    train_epochs(&b, 2);
    train_epochs(&ref, 2);
    CHECK(ranks_bitwise_equal(&a), "with dropout the ranks' weights differ");
    CHECK(max_diff(&a, &b) == 0, "the same seed gave other weights: %.3g", max_diff(&a, &b));
    /* With two ranks the masks are not those of one process, so the weights are not either. */
    if (size > 1) CHECK(max_diff(&a, &ref) > 1e-6, "with dropout two ranks trained exactly as one process");
    net_free(&a);
    net_free(&b);
    net_free(&ref);
}

static void layout_mismatch_is_named_on_every_rank(void) {
    make_data();
    const char *kinds[] = {"name", "count", "dtype"};
    for (int k = 0; k < 3; k++) {
        heed_ctx *ctx = heed_ctx_new(NULL);
        CHECK(heed_dist_init(ctx, NULL, NULL) == HEED_OK, "%s", heed_ctx_error(ctx));
        int rank = heed_dist_rank();
        heed_params *P = heed_params_new(ctx, k == 2 && rank == 1 ? HEED_F32 : HEED_F64);
        heed_param(P, "a", HEED_SHAPE(4, 2), heed_init_zeros());
        heed_param(P, k == 0 && rank == 1 ? "b.typo" : "b", HEED_SHAPE(4), heed_init_zeros());
        if (k == 1 && rank == 1) heed_param(P, "extra", HEED_SHAPE(2), heed_init_zeros());
        heed_status st = heed_dist_broadcast_params(P, 0);
        const char *want[] = {"parameter 1 is 'b' [4] on rank 0 but 'b.typo' [4] on rank 1",
                              "parameter 2 is missing (it has 2 parameters) on rank 0 but 'extra' [2] on rank 1",
                              "the ranks' parameter stores differ: a f64 store on rank 0, a f32 store on rank 1"};
        CHECK(st == HEED_ERR_STATE && strstr(heed_ctx_error(ctx), want[k]), "%s: rank %d: %s: '%s'", kinds[k], rank,
              heed_status_name(st), heed_ctx_error(ctx));
        heed_graph *g = heed_graph_new(ctx);
        CHECK(heed_dist_overlap_new(P, g, NULL) == NULL && strstr(heed_ctx_error(ctx), want[k]),
              "heed_dist_overlap_new: %s", heed_ctx_error(ctx));
        heed_graph_free(g);
        heed_params_free(P);
        heed_ctx_free(ctx);
    }
}

static const char *ckpt_path;
static int64_t ckpt_epochs;

static void save_checkpoint(void) {
    net n = net_new(true, false, 0);
    train_epochs(&n, ckpt_epochs);
    heed_checkpoint_info info = {.epoch = n.epoch, .step = n.steps};
    CHECK(heed_dist_checkpoint_save(n.P, ckpt_path, n.opt, &info) == HEED_OK, "%s", heed_ctx_error(n.ctx));
    net_free(&n);
}

static void resume_equals_an_uninterrupted_run(void) {
    net n = net_new(true, true, 0), ref = net_new(false, false, 0);
    heed_checkpoint_info info;
    CHECK(heed_dist_checkpoint_load(n.P, ckpt_path, n.opt, &info) == HEED_OK, "%s", heed_ctx_error(n.ctx));
    n.epoch = info.epoch, n.steps = info.step;
    CHECK(n.epoch > 0 && n.epoch < ckpt_epochs, "resumed at epoch %lld of %lld", (long long)n.epoch,
          (long long)ckpt_epochs);
    train_epochs(&n, ckpt_epochs);
    train_epochs(&ref, ckpt_epochs);
    double d = max_diff(&n, &ref);
    CHECK(d <= 1e-12, "rank %d of %d resumed at epoch %lld: weights differ from an uninterrupted run by %.3g", n.rank,
          n.size, (long long)info.epoch, d);
    CHECK(ranks_bitwise_equal(&n), "after resuming the ranks' weights differ");
    /* A missing file fails on every rank with rank 0's message. */
    CHECK(heed_dist_checkpoint_load(n.P, "/nonexistent/heed.ckpt", n.opt, NULL) == HEED_ERR_IO &&
              strstr(heed_ctx_error(n.ctx), "/nonexistent/heed.ckpt"),
          "rank %d: %s", n.rank, heed_ctx_error(n.ctx));
    net_free(&n);
    net_free(&ref);
}

static const char *fail_how;

static void failing_rank(void) {
    net n = net_new(true, true, 0);
    n.fail_how = fail_how, n.fail_at_step = 2;
    train_epochs(&n, 1000000); /* never ends unless the failure ends the job */
    net_free(&n);
}

/* Without a launcher: a world of one that runs the same code. */
static void world_of_one(void) {
    heed_ctx *ctx = heed_ctx_new(NULL);
    CHECK(heed_dist_init(ctx, NULL, NULL) == HEED_OK, "%s", heed_ctx_error(ctx));
    CHECK(heed_dist_rank() == 0 && heed_dist_size() == 1, "rank %d of %d", heed_dist_rank(), heed_dist_size());
    double v[2] = {1.5, -2};
    CHECK(heed_dist_allreduce_sum(ctx, v, 2) == HEED_OK && v[0] == 1.5 && v[1] == -2, "sum of one rank");
    CHECK(heed_dist_broadcast(ctx, v, sizeof v, 0) == HEED_OK, "broadcast");
    CHECK_CTX_FAIL(ctx, heed_dist_allreduce_sum(ctx, NULL, 2), HEED_ERR_ARG, "heed_dist_allreduce_sum: 2 values at ");
    CHECK_CTX_FAIL(ctx, heed_dist_broadcast(ctx, v, sizeof v, 1), HEED_ERR_ARG,
                   "heed_dist_broadcast: root 1 is not a rank (0..0)");
    CHECK_CTX_FAIL(ctx, heed_dist_broadcast(ctx, NULL, 8, 0), HEED_ERR_ARG, "heed_dist_broadcast: 8 bytes at NULL");
    CHECK(heed_dist_broadcast(ctx, NULL, 0, 0) == HEED_OK, "nothing to send");
    CHECK(heed_dist_init(NULL, NULL, NULL) == HEED_OK, "NULL ctx: MPI only");
    heed_ctx_free(ctx);
    make_data();
    net ref = net_new(false, false, 0.2), n = net_new(true, true, 0.2);
    train_epochs(&ref, 1);
    train_epochs(&n, 1);
    CHECK(max_diff(&n, &ref) == 0, "one rank differs from one process: %.3g", max_diff(&n, &ref));
    heed_dist_stats st = heed_dist_overlap_stats(n.overlap);
    CHECK(st.bytes == 0 && st.steps == 0, "one rank sent %lld bytes", (long long)st.bytes);
    net_free(&ref);
    net_free(&n);
}

static void shards(void) {
    for (int64_t n = 0; n < 40; n++)
        for (int size = 1; size <= 7; size++) {
            int64_t next = 0, lo, hi;
            for (int r = 0; r < size; r++) {
                heed_dist_shard(n, r, size, &lo, &hi);
                CHECK(lo == next && hi >= lo && hi - lo >= n / size && hi - lo <= n / size + 1,
                      "n %lld rank %d of %d: [%lld, %lld)", (long long)n, r, size, (long long)lo, (long long)hi);
                next = hi;
            }
            CHECK(next == n, "n %lld over %d ranks: the shards end at %lld", (long long)n, size, (long long)next);
        }
    int64_t lo = 1, hi = 1;
    heed_dist_shard(10, 3, 3, &lo, &hi);
    CHECK(lo == 0 && hi == 0, "a rank that does not exist gets nothing");
    heed_dist_shard(INT64_MAX, 2, 3, &lo, &hi);
    CHECK(hi == INT64_MAX && lo == INT64_MAX / 3 * 2 + (INT64_MAX % 3) * 2 / 3, "no overflow: [%lld, %lld)",
          (long long)lo, (long long)hi);
}

int main(int argc, char **argv) {
    make_data();
    const char *mode = argc > 1 ? argv[1] : "single";
    if (!strcmp(mode, "equal")) RUN(equal_to_one_process_on_the_union_batch);
    else if (!strcmp(mode, "dropout")) RUN(dropout_differs_per_rank_and_is_reproducible);
    else if (!strcmp(mode, "layout")) RUN(layout_mismatch_is_named_on_every_rank);
    else if ((!strcmp(mode, "save") || !strcmp(mode, "resume")) && argc == 4) {
        ckpt_path = argv[2], ckpt_epochs = atoll(argv[3]);
        if (!strcmp(mode, "save")) RUN(save_checkpoint);
        else RUN(resume_equals_an_uninterrupted_run);
    } else if (!strcmp(mode, "fail") && argc == 3) {
        fail_how = argv[2];
        RUN(failing_rank);
    } else if (!strcmp(mode, "single")) {
        RUN(world_of_one);
        RUN(shards);
    } else {
        fprintf(stderr, "usage: test_dist [equal|dropout|layout|save PATH EPOCHS|resume PATH EPOCHS|fail HOW]\n");
        return 2;
    }
    heed_dist_finalize();
    return check_summary();
}
