/* heed changes no process-wide state: a ctx leaves OpenMP's thread count as it was, and
 * every parallel region of heed's kernels asks for the ctx's count. With OpenMP's default
 * at 3 and a one-thread ctx, a training step over large tensors (every kind of op that
 * does not go through the BLAS, backward, an optimizer step, clipping) must not start a
 * single thread: OpenMP keeps the threads of a team alive, so one region without
 * num_threads would leave them in /proc/self/task. GEMMs are the BLAS's and follow
 * OpenMP's own count (include/heed/core.h), so this step has none. Runs in its own
 * process: the counting comes first. */
#include "check.h"
#include "heed/attention.h"
#include "heed/batchnorm.h"
#include "heed/dropout.h"
#include "heed/elementwise.h"
#include "heed/index.h"
#include "heed/loss.h"
#include "heed/matmul.h"
#include "heed/norm.h"
#include "heed/optim.h"
#include "heed/pool.h"
#include "heed/reduce.h"
#include "heed/rnn.h"
#include "heed/shape.h"
#include "heed/softmax.h"

#include <dirent.h>
#include <omp.h>

#define OPENMP_DEFAULT 3

void heed__force_cpus_free(int n); /* test hook, graph/threads.c */

static int threads_alive(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static heed_tensor *ramp(heed_graph *g, heed_shape s, double scale) {
    heed_tensor *t = heed_zeros(g, HEED_F32, s);
    if (!t) return NULL;
    float *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) p[i] = (float)(scale * sin(0.37 * (double)i + 0.1));
    return heed_requires_grad(t);
}

static void ctx_leaves_openmp_alone(void) {
    heed_ctx *c = heed_ctx_new(&(heed_ctx_opts){.seed = 1, .threads = 1});
    CHECK(omp_get_max_threads() == OPENMP_DEFAULT, "heed_ctx_new changed OpenMP's count to %d", omp_get_max_threads());
    CHECK(heed_ctx_threads(c) == 1, "%d", heed_ctx_threads(c));
    heed_ctx *d = heed_ctx_new(NULL);
    CHECK(heed_ctx_threads(d) == OPENMP_DEFAULT && heed_ctx_threads(NULL) == OPENMP_DEFAULT, "%d, %d",
          heed_ctx_threads(d), heed_ctx_threads(NULL));
    heed_ctx_free(d);
    heed_ctx_free(c);
    CHECK(omp_get_max_threads() == OPENMP_DEFAULT, "%d", omp_get_max_threads());
}

/* One step through most of the op families, each well above its threading threshold. */
static heed_tensor *big_step(heed_graph *g, heed_tensor *gamma, heed_tensor *table, heed_tensor *rel) {
    enum { R = 256, C = 512 };
    heed_tensor *x = ramp(g, HEED_SHAPE(R, C), 2);
    heed_tensor *y = heed_mul(g, heed_tanh(g, x), heed_add_scalar(g, x, 0.5));
    y = heed_dropout(g, heed_layernorm(g, heed_softmax(g, y), gamma, NULL, 1e-5), 0.1);
    heed_tensor *parts[16];
    int n = 0;
    parts[n++] = heed_mean_all(g, heed_sum(g, heed_log_softmax(g, y), 0, true));
    parts[n++] = heed_mean_all(g, heed_max(g, y, 1, false));
    heed_tensor *mask = heed_full(g, HEED_F32, HEED_SHAPE(R, C), 0);
    ((float *)mask->data)[7] = 1;
    parts[n++] = heed_mean_all(g, heed_where(g, mask, y, heed_masked_fill(g, x, mask, 3)));
    heed_tensor *both[2] = {heed_slice(g, y, 1, 0, C / 2), heed_slice(g, x, 1, C / 2, C)};
    heed_tensor *cat = heed_concat(g, both, 2, 1), *st = heed_stack(g, both, 2, 0);
    heed_tensor *perm = heed_permute(g, heed_reshape(g, cat, HEED_SHAPE(4, 64, 8, 64)), (const int[]){0, 2, 3, 1});
    parts[n++] = heed_mean_all(g, heed_mul(g, heed_transpose(g, perm, 1, 2), heed_transpose(g, perm, 1, 2)));
    parts[n++] = heed_mean_all(g, heed_select(g, st, 0, 1));
    static int64_t rows[1024], ids[4096], tgt[R];
    for (int i = 0; i < 1024; i++) rows[i] = (i * 7) % R;
    for (int i = 0; i < 4096; i++) ids[i] = (i * 13) % 1000;
    for (int i = 0; i < R; i++) tgt[i] = (i * 5) % C;
    parts[n++] = heed_mean_all(g, heed_index_select(g, x, 0, rows, 1024));
    parts[n++] = heed_mean_all(g, heed_gather(g, x, 0, rows, HEED_SHAPE(R, 4)));
    parts[n++] = heed_mean_all(g, heed_topk(g, y, 8, 1, 0, NULL));
    parts[n++] = heed_mean_all(g, heed_embedding(g, table, ids, HEED_SHAPE(4096), -1));
    parts[n++] = heed_cross_entropy(g, x, tgt, NULL);
    parts[n++] = heed_mse(g, y, x);
    /* images: pooling and batch norm */
    heed_tensor *img = ramp(g, HEED_SHAPE(8, 16, 32, 32), 1);
    heed_tensor *pool = heed_avg_pool2d(g, heed_max_pool2d(g, img, &(heed_pool2d_opts){.kernel = {2, 2}}),
                                        &(heed_pool2d_opts){.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}});
    parts[n++] = heed_mean_all(g, heed_batch_norm2d(g, pool, NULL, NULL, NULL));
    /* attention: flash with a relative-position bias and dropout, one-step attend, scan */
    heed_tensor *q = ramp(g, HEED_SHAPE(4, 4, 256, 32), 1), *k = ramp(g, HEED_SHAPE(4, 4, 256, 32), 0.5);
    heed_tensor *bias = heed_relative_position_bias(g, rel, 256, 256, NULL);
    heed_tensor *att =
        heed_attention(g, q, k, q, &(heed_attention_opts){.causal = true, .bias = bias, .dropout = 0.1}, NULL);
    parts[n++] = heed_mean_all(g, att);
    heed_tensor *scores = ramp(g, HEED_SHAPE(64, 1024), 1), *values = ramp(g, HEED_SHAPE(64, 1024, 8), 1);
    parts[n++] = heed_mean_all(g, heed_attend(g, scores, values, NULL, NULL));
    heed_tensor *sq = ramp(g, HEED_SHAPE(64, 16), 1), *sk = ramp(g, HEED_SHAPE(64, 512, 16), 1);
    parts[n++] = heed_mean_all(g, heed_attention_scan(g, sq, sk, heed_elu_features(g, sk), 0, NULL));
    heed_tensor *loss = parts[0];
    for (int i = 1; i < n; i++) loss = heed_add(g, loss, parts[i]);
    return loss;
}

static void one_thread_ctx_starts_no_thread(void) {
    heed_ctx *c = heed_ctx_new(&(heed_ctx_opts){.seed = 2, .threads = 1});
    heed_params *P = heed_params_new(c, HEED_F32);
    heed_tensor *gamma = heed_param(P, "gamma", HEED_SHAPE(512), heed_init_normal(1, 0.1));
    heed_tensor *table = heed_param(P, "table", HEED_SHAPE(1000, 128), heed_init_normal(0, 1));
    heed_tensor *rel = heed_param(P, "rel", HEED_SHAPE(33, 4), heed_init_normal(0, 1));
    heed_optimizer *opt = heed_adam(P, NULL);
    heed_graph *g = heed_graph_new(c);
    int before = threads_alive();
    CHECK(before >= 1, "cannot read /proc/self/task");
    heed_tensor *loss = big_step(g, gamma, table, rel);
    CHECK(loss && heed_backward(g, loss) == HEED_OK, "%s", heed_graph_error(g));
    double norm = 0;
    CHECK(heed_params_scale_grad(P, 0.5) == HEED_OK && heed_clip_grad_norm(P, 1.0, &norm) == HEED_OK &&
              heed_clip_grad_value(P, 0.1) == HEED_OK && heed_params_grads_finite(P) &&
              heed_optimizer_step(opt) == HEED_OK,
          "%s", heed_ctx_error(c));
    CHECK(isfinite(norm) && norm > 0, "norm %g", norm);
    int after = threads_alive();
    CHECK(after == before, "a one-thread ctx left %d threads behind (%d before the step)", after, before);
    CHECK(omp_get_max_threads() == OPENMP_DEFAULT, "%d", omp_get_max_threads());
    heed_graph_free(g);
    heed_optimizer_free(opt);
    heed_params_free(P);
    heed_ctx_free(c);
}

/* The count is the ctx's in both directions: a ctx asking for more threads than OpenMP's
 * default gets them, and the result is the same bits as on one thread. */
static void results_do_not_depend_on_the_count(void) {
    float first[2] = {0};
    for (int run = 0; run < 2; run++) {
        heed_ctx *c = heed_ctx_new(&(heed_ctx_opts){.seed = 2, .threads = run ? 4 : 1});
        heed_params *P = heed_params_new(c, HEED_F32);
        heed_tensor *gamma = heed_param(P, "gamma", HEED_SHAPE(512), heed_init_normal(1, 0.1));
        heed_tensor *table = heed_param(P, "table", HEED_SHAPE(1000, 128), heed_init_normal(0, 1));
        heed_tensor *rel = heed_param(P, "rel", HEED_SHAPE(33, 4), heed_init_normal(0, 1));
        heed_graph *g = heed_graph_new(c);
        heed_tensor *loss = big_step(g, gamma, table, rel);
        CHECK(loss && heed_backward(g, loss) == HEED_OK, "%s", heed_graph_error(g));
        first[run] = loss ? ((float *)loss->data)[0] : NAN;
        heed_graph_free(g);
        heed_params_free(P);
        heed_ctx_free(c);
    }
    CHECK(isfinite(first[0]) && check_err(first[1], first[0]) <= 1e-5 * fabs(first[0]),
          "1 thread: %.9g, 4 threads: %.9g", first[0], first[1]);
    CHECK(omp_get_max_threads() == OPENMP_DEFAULT, "%d", omp_get_max_threads());
}

/* On a busy machine heed's regions run on fewer threads than the ctx's (the free CPUs
 * pinned here with the test hook): the loss and every gradient must be the same bits as
 * with all CPUs free. The step has the regions that split work by thread: layernorm's
 * backward (partial sums), an LSTM split by hidden units (a barrier per step), causal
 * flash attention split by heads, the GEMMs of matmul and the optimizer-free rest. */
static void results_do_not_depend_on_the_load(void) {
    float loss[2] = {NAN, NAN};
    void *grads[2] = {NULL, NULL};
    size_t bytes = 0;
    for (int run = 0; run < 2; run++) {
        heed__force_cpus_free(run ? 1 : 64);
        heed_ctx *c = heed_ctx_new(&(heed_ctx_opts){.seed = 3, .threads = OPENMP_DEFAULT});
        heed_params *P = heed_params_new(c, HEED_F32);
        heed_tensor *gamma = heed_param(P, "gamma", HEED_SHAPE(512), heed_init_normal(1, 0.1));
        heed_tensor *w = heed_param(P, "w", HEED_SHAPE(512, 256), heed_init_normal(0, 0.05));
        heed_tensor *q = heed_param(P, "q", HEED_SHAPE(2, 4, 128, 32), heed_init_normal(0, 1));
        heed_tensor *k = heed_param(P, "k", HEED_SHAPE(2, 4, 128, 32), heed_init_normal(0, 1));
        heed_rnn rnn;
        CHECK(heed_rnn_declare(&rnn, P, "lstm",
                               &(heed_rnn_opts){.kind = HEED_RNN_LSTM, .input_size = 256, .hidden_size = 64}) ==
                  HEED_OK,
              "%s", heed_ctx_error(c));
        heed_graph *g = heed_graph_new(c);
        heed_tensor *x = ramp(g, HEED_SHAPE(256, 512), 2);
        heed_tensor *h = heed_matmul(g, heed_layernorm(g, x, gamma, NULL, 1e-5), w);
        heed_tensor *seq =
            heed_lstm(g, &rnn, heed_reshape(g, h, HEED_SHAPE(16, 16, 256)), NULL, NULL, NULL, NULL, NULL);
        heed_tensor *att = heed_attention(g, q, k, q, &(heed_attention_opts){.causal = true}, NULL);
        heed_tensor *l =
            heed_add(g, heed_add(g, heed_mean_all(g, heed_mul(g, h, h)), heed_mean_all(g, heed_mul(g, seq, seq))),
                     heed_mean_all(g, heed_mul(g, att, att)));
        CHECK(l && heed_backward(g, l) == HEED_OK, "%s", heed_graph_error(g));
        loss[run] = l ? ((float *)l->data)[0] : NAN;
        bytes = (size_t)heed_params_padded_numel(P) * sizeof(float);
        grads[run] = malloc(bytes);
        if (grads[run]) memcpy(grads[run], heed_params_grads(P), bytes);
        heed_graph_free(g);
        heed_params_free(P);
        heed_ctx_free(c);
    }
    heed__force_cpus_free(0);
    CHECK(isfinite(loss[0]) && memcmp(&loss[0], &loss[1], sizeof loss[0]) == 0,
          "loss %.9g with all CPUs free, %.9g with one", loss[0], loss[1]);
    CHECK(grads[0] && grads[1] && memcmp(grads[0], grads[1], bytes) == 0, "the gradients change when one CPU is free");
    free(grads[0]), free(grads[1]);
}

int main(void) {
    omp_set_num_threads(OPENMP_DEFAULT); /* the program's setting, which heed must keep */
    RUN(ctx_leaves_openmp_alone);
    RUN(one_thread_ctx_starts_no_thread);
    RUN(results_do_not_depend_on_the_count);
    RUN(results_do_not_depend_on_the_load);
    return check_summary();
}
