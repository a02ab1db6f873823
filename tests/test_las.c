/* The LAS model (models/las.c): the whole model's gradient against central differences in
 * f64, a tiny LAS trained for a few steps (its loss must fall), beam width 1 against greedy
 * decoding on it, its decode against a hand-run of the speller, and bad input. */
#include "check.h"
#include "heed/decode.h"
#include "heed/extend.h"
#include "heed/index.h"
#include "heed/las.h"
#include "heed/optim.h"
#include "heed/rnn.h"

static heed_ctx *ctx;

static heed_las_config tiny_config(void) {
    return (heed_las_config){.input_dim = 3,
                             .listener_hidden = 2,
                             .pyramid_layers = 1,
                             .speller_hidden = 3,
                             .embed_dim = 2,
                             .attn_dim = 3,
                             .loc_channels = 2,
                             .loc_kernel = 3,
                             .vocab = 5};
}

/* Two utterances of 7 and 5 frames; targets [2, 4] with eos = 1 and -100 padding. */
static const int64_t tiny_lengths[2] = {7, 5};
static const int64_t tiny_targets[8] = {2, 3, 4, 1, 4, 1, -100, -100};

typedef struct {
    heed_las *m;
    double sampling;
} loss_case;

static heed_tensor *tiny_loss(heed_graph *g, heed_tensor **in, void *user) {
    loss_case *c = user;
    return heed_las_loss(g, c->m, in[0], tiny_lengths, tiny_targets, 4,
                         &(heed_las_loss_opts){.bos = 0, .label_smoothing = 0.1, .sampling = c->sampling, .seed = 5},
                         NULL);
}

static void gradcheck_whole_model(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_las m;
    heed_las_config cfg = tiny_config();
    CHECK(heed_las_declare(&m, P, &cfg) == HEED_OK, "%s", heed_ctx_error(ctx));
    for (int i = 0; i < heed_params_count(P); i++)
        heed_param_init(P, heed_params_at(P, i), heed_init_uniform(-0.8, 0.8));
    heed_gradcheck_input x = {.shape = HEED_SHAPE(2, 7, 3)};
    loss_case c = {&m, 0};
    heed_gradcheck_opts o1 = {.params = P, .seed = 3};
    CHECK_GRAD(ctx, tiny_loss, &c, 1, &x, &o1);
    /* without location features: plain additive attention */
    heed_params *Q = heed_params_new(ctx, HEED_F64);
    cfg.loc_channels = cfg.loc_kernel = 0;
    cfg.pyramid_layers = 2;
    CHECK(heed_las_declare(&m, Q, &cfg) == HEED_OK, "%s", heed_ctx_error(ctx));
    heed_gradcheck_opts o2 = {.params = Q, .seed = 4};
    CHECK_GRAD(ctx, tiny_loss, &c, 1, &x, &o2);
    heed_params_free(P);
    heed_params_free(Q);
    /* Luong's local attention: windows of 3 of the 4 encoder frames, centred on the step
     * (local-m, past the end at step 3 of the shorter utterance) or predicted (local-p,
     * the gradient reaching W_p and v_p through the Gaussian) */
    for (int kind = HEED_LAS_LOCAL_M; kind <= HEED_LAS_LOCAL_P; kind++) {
        heed_params *R = heed_params_new(ctx, HEED_F64);
        cfg = tiny_config();
        cfg.attention = (heed_las_attention)kind, cfg.local_window = 1;
        CHECK(heed_las_declare(&m, R, &cfg) == HEED_OK, "%s", heed_ctx_error(ctx));
        CHECK(!m.attn.w_k && m.local_w && (kind == HEED_LAS_LOCAL_P) == (m.local_wp != NULL), "kind %d: parameters",
              kind);
        for (int i = 0; i < heed_params_count(R); i++)
            heed_param_init(R, heed_params_at(R, i), heed_init_uniform(-0.8, 0.8));
        heed_gradcheck_opts o3 = {.params = R, .seed = 6};
        CHECK_GRAD(ctx, tiny_loss, &c, 1, &x, &o3);
        heed_params_free(R);
    }
}

/* f32 against f64 on the same parameters and input. */
static void f32_matches_f64(void) {
    heed_params *P64 = heed_params_new(ctx, HEED_F64), *P32 = heed_params_new(ctx, HEED_F32);
    heed_las m64, m32;
    heed_las_config cfg = tiny_config();
    heed_las_declare(&m64, P64, &cfg);
    heed_las_declare(&m32, P32, &cfg);
    check_round_params(P64, P32);
    heed_gradcheck_input x = {.shape = HEED_SHAPE(2, 7, 3)};
    loss_case c64 = {&m64, 0}, c32 = {&m32, 0};
    heed_graph *g32 = heed_graph_new(ctx), *g64 = heed_graph_new(ctx);
    double xs[42];
    heed_rng r = heed_rng_make(3, 3);
    for (int i = 0; i < 42; i++) xs[i] = 2 * heed_rng_uniform(&r) - 1;
    heed_tensor *i32 = heed_input_f64(g32, HEED_F32, x.shape, xs), *i64 = heed_input_f64(g64, HEED_F64, x.shape, xs);
    heed_tensor *l32 = tiny_loss(g32, &i32, &c32), *l64 = tiny_loss(g64, &i64, &c64);
    CHECK(l32 && l64 && l32->dtype == HEED_F32, "%s %s", heed_graph_error(g32), heed_graph_error(g64));
    if (l32 && l64) CHECK_CLOSE(heed_get(l32, 0), heed_get(l64, 0), 1e-5);
    heed_graph_free(g32), heed_graph_free(g64);
    heed_params_free(P32), heed_params_free(P64);
}

/* A tiny task: 4 utterances whose frames carry their transcript (a random projection of
 * each token's one-hot spread over frames); Adam for 40 steps must at least halve the loss.
 * Then beam width 1 must give exactly greedy's hypotheses, and greedy must match a
 * step-by-step argmax run of heed_las_step. */
enum { B = 4, T = 12, F = 6, L = 5, V = 6 };
static const int64_t task_targets[B * L] = {2, 3, 4,    1,    -100, 5, 5, 1, -100, -100,
                                            3, 1, -100, -100, -100, 4, 2, 5, 3,    1};
static const int64_t task_lengths[B] = {12, 9, 6, 11};

static void task_input(float *x) {
    heed_rng r = heed_rng_make(9, 9);
    double proj[V][F];
    for (int v = 0; v < V; v++)
        for (int f = 0; f < F; f++) proj[v][f] = heed_rng_normal(&r);
    for (int b = 0; b < B; b++) {
        int n = 0;
        while (n < L && task_targets[b * L + n] != -100) n++;
        for (int t = 0; t < T; t++) {
            int tok = t < task_lengths[b] ? (int)task_targets[b * L + (t * n) / task_lengths[b]] : 1;
            for (int f = 0; f < F; f++) x[(b * T + t) * F + f] = t < task_lengths[b] ? (float)proj[tok][f] : 0;
        }
    }
}

static void train_tiny_then_decode_with(heed_las_attention kind) {
    heed_ctx *c = heed_ctx_new(&(heed_ctx_opts){.seed = 2, .threads = 1});
    heed_params *P = heed_params_new(c, HEED_F32);
    heed_las m;
    heed_las_config cfg = {.input_dim = F,
                           .listener_hidden = 8,
                           .pyramid_layers = 1,
                           .speller_hidden = 16,
                           .embed_dim = 8,
                           .attn_dim = 8,
                           .loc_channels = 4,
                           .loc_kernel = 5,
                           .vocab = V,
                           .attention = kind,
                           .local_window = 2};
    CHECK(heed_las_declare(&m, P, &cfg) == HEED_OK, "%s", heed_ctx_error(c));
    heed_optimizer *opt = heed_adam(P, &(heed_adam_opts){.lr = 0.02, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8});
    heed_graph *g = heed_graph_new(c);
    float x[B * T * F];
    task_input(x);
    double first = NAN, last = NAN;
    for (int step = 0; step < 40; step++) {
        heed_graph_reset(g);
        heed_params_zero_grad(P);
        heed_tensor *in = heed_input(g, HEED_F32, HEED_SHAPE(B, T, F), x);
        heed_tensor *loss =
            heed_las_loss(g, &m, in, task_lengths, task_targets, L,
                          &(heed_las_loss_opts){.bos = 0, .sampling = 0.1, .seed = 1, .stream = (uint64_t)step}, NULL);
        CHECK(loss && heed_backward(g, loss) == HEED_OK, "step %d: %s", step, heed_graph_error(g));
        if (!loss) break;
        if (step == 0) first = heed_get(loss, 0);
        last = heed_get(loss, 0);
        heed_optimizer_step(opt);
    }
    CHECK(last < 0.5 * first, "attention %d: loss %.4f -> %.4f: did not halve in 40 steps", (int)kind, first, last);

    heed_decode_result r[2];
    for (int k = 0; k < 2; k++) {
        heed_graph_reset(g);
        heed_tensor *in = heed_input(g, HEED_F32, HEED_SHAPE(B, T, F), x);
        CHECK(heed_las_decode(g, &m, in, task_lengths,
                              &(heed_decode_opts){.beam = k, .bos = 0, .eos = 1, .length_penalty = 1},
                              &r[k]) == HEED_OK,
              "%s", heed_graph_error(g));
    }
    int64_t N = (T + 1) / 2;
    for (int b = 0; b < B && r[0].hyp && r[1].hyp; b++) {
        const heed_hypothesis *h0 = &r[0].hyp[b], *h1 = &r[1].hyp[b];
        CHECK(h0->keys == N, "attention over %lld encoder frames, want %lld", (long long)h0->keys, (long long)N);
        bool same = h0->len == h1->len && h0->finished == h1->finished && h0->logp == h1->logp &&
                    h0->score == h1->score && !memcmp(h0->tokens, h1->tokens, (size_t)h0->len * sizeof *h0->tokens) &&
                    !memcmp(h0->attention, h1->attention, (size_t)((h0->len + h0->finished) * N) * sizeof(float));
        CHECK(same, "attention %d utterance %d: greedy (len %lld, logp %.9g) and beam 1 (len %lld, logp %.9g) differ",
              (int)kind, b, (long long)h0->len, h0->logp, (long long)h1->len, h1->logp);
        /* location-aware attention rows are distributions over the utterance's own frames
         * (local windows need not sum to 1: past the end, or under the Gaussian) */
        int64_t n_enc = (task_lengths[b] + 1) / 2;
        for (int64_t s = 0; kind == HEED_LAS_LOCATION && s < h0->len + h0->finished; s++) {
            double sum = 0, pad = 0;
            for (int64_t j = 0; j < N; j++) *(j < n_enc ? &sum : &pad) += h0->attention[s * N + j];
            CHECK(check_close(sum, 1, 1e-5) && pad == 0, "utterance %d step %lld: weights sum %.7f, %.3g on padding", b,
                  (long long)s, sum, pad);
        }
    }
    /* greedy by hand: heed_las_step with the argmax fed back, the whole batch at once */
    heed_graph_reset(g);
    heed_graph_set_training(g, false);
    heed_no_grad_begin(g);
    heed_tensor *in = heed_input(g, HEED_F32, HEED_SHAPE(B, T, F), x);
    heed_las_encoding e;
    heed_las_state s;
    heed_las_listen(g, &m, in, task_lengths, &e);
    heed_las_start(g, &m, &e, &s);
    int64_t prev[B] = {0, 0, 0, 0}, len[B] = {0}, done[B] = {0};
    for (int t = 0; t < 2 * (int)N + 10; t++) {
        heed_tensor *logits = heed_las_step(g, &m, &e, &s, prev);
        int64_t best[B];
        heed_argmax(g, logits, 1, best);
        for (int b = 0; b < B; b++) {
            if (done[b]) continue;
            if (best[b] == 1) done[b] = 1;
            else if (r[0].hyp)
                CHECK(len[b] < r[0].hyp[b].len && r[0].hyp[b].tokens[len[b]] == best[b],
                      "utterance %d token %lld differs from the hand-run", b, (long long)len[b]);
            if (!done[b]) len[b]++;
            prev[b] = best[b] == 1 ? 0 : best[b];
        }
    }
    heed_no_grad_end(g);
    for (int b = 0; b < B && r[0].hyp; b++)
        CHECK(len[b] == r[0].hyp[b].len, "utterance %d: hand-run len %lld", b, (long long)len[b]);
    heed_decode_result_free(&r[0]);
    heed_decode_result_free(&r[1]);
    heed_graph_free(g);
    heed_optimizer_free(opt);
    heed_params_free(P);
    heed_ctx_free(c);
}

static void train_tiny_then_decode(void) {
    train_tiny_then_decode_with(HEED_LAS_LOCATION);
    train_tiny_then_decode_with(HEED_LAS_LOCAL_M);
    train_tiny_then_decode_with(HEED_LAS_LOCAL_P);
}

/* heed_pyramid_concat / heed_pyramid_lstm with out_lengths == lengths (halved in place, as
 * a listener stack does): backward must mask by the lengths before halving. (It saved them
 * after writing out_lengths: frames past the halved length got no gradient.) */
static heed_tensor *pyramid_in_place(heed_graph *g, heed_tensor **in, void *user) {
    int64_t *len = heed_graph_alloc(g, 2 * sizeof *len);
    len[0] = 6, len[1] = 3;
    return heed_pyramid_concat(g, in[0], len, len);
}

static void pyramid_lengths_in_place(void) {
    heed_gradcheck_input x = {.shape = HEED_SHAPE(7, 2, 3)};
    heed_gradcheck_opts o = {.seed = 5};
    CHECK_GRAD(ctx, pyramid_in_place, NULL, 1, &x, &o);
}

static void bad_input(void) {
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_las m;
    heed_las_config cfg = tiny_config();
    cfg.pyramid_layers = 0;
    CHECK(heed_las_declare(&m, P, &cfg) == HEED_ERR_ARG && strstr(heed_ctx_error(ctx), "pyramid_layers 0"), "%s",
          heed_ctx_error(ctx));
    cfg = tiny_config();
    cfg.attention = (heed_las_attention)3;
    CHECK(heed_las_declare(&m, P, &cfg) == HEED_ERR_ARG && strstr(heed_ctx_error(ctx), "attention 3"), "%s",
          heed_ctx_error(ctx));
    cfg = tiny_config();
    cfg.local_window = -1;
    CHECK(heed_las_declare(&m, P, &cfg) == HEED_ERR_ARG && strstr(heed_ctx_error(ctx), "local_window -1"), "%s",
          heed_ctx_error(ctx));
    cfg = tiny_config();
    CHECK(heed_las_declare(&m, P, &cfg) == HEED_OK, "%s", heed_ctx_error(ctx));
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 7, 4));
    CHECK(!heed_las_loss(g, &m, x, tiny_lengths, tiny_targets, 4, NULL, NULL), "wrong feature size");
    CHECK_ERR(g, HEED_ERR_SHAPE, "input_dim = 3");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 7, 3));
    CHECK(!heed_las_loss(g, &m, x, (int64_t[]){8, 5}, tiny_targets, 4, NULL, NULL), "length past T");
    CHECK_ERR(g, HEED_ERR_ARG, "lengths[0] = 8");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 7, 3));
    CHECK(!heed_las_loss(g, &m, x, tiny_lengths, (int64_t[]){2, 3, 4, 9, 1, 1, 1, 1}, 4, NULL, NULL), "target 9");
    CHECK_ERR(g, HEED_ERR_ARG, "targets[3] = 9");
    heed_graph_free(g);
    heed_params_free(P);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 1, .threads = 1});
    RUN(gradcheck_whole_model);
    RUN(f32_matches_f64);
    RUN(train_tiny_then_decode);
    RUN(pyramid_lengths_in_place);
    RUN(bad_input);
    heed_ctx_free(ctx);
    return check_summary();
}
