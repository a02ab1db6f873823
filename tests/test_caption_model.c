/* The captioning model (models/caption.c): the loss's and the classifier's gradients
 * against central differences in f64, f32 against f64, a tiny captioner trained for a few
 * steps (its loss must fall), beam width 1 against greedy decoding, hard attention's
 * training step, pointing on hand-made cases, and bad input. */
#include "check.h"
#include "heed/caption.h"
#include "heed/decode.h"
#include "heed/loss.h"
#include "heed/optim.h"

static heed_ctx *ctx;

static heed_caption_config tiny_config(void) {
    return (heed_caption_config){.in_channels = 1,
                                 .channels = {2, 3, 4},
                                 .classes = 3,
                                 .embed_dim = 3,
                                 .hidden = 4,
                                 .attn_dim = 3,
                                 .vocab = 6,
                                 .cells = 5};
}

/* Two scenes of 5 annotation vectors of size 4; targets [2, 4]: tokens then end (1), padding. */
static const int64_t tiny_targets[8] = {2, 3, 4, 1, 5, 1, -100, -100};

typedef struct {
    heed_caption *m;
    double lambda;
} loss_case;

static heed_tensor *tiny_loss(heed_graph *g, heed_tensor **in, void *user) {
    loss_case *c = user;
    return heed_caption_loss(g, c->m, in[0], tiny_targets, 4, &(heed_caption_loss_opts){.bos = 0, .lambda = c->lambda},
                             NULL, NULL);
}

static heed_tensor *tiny_classify(heed_graph *g, heed_tensor **in, void *user) {
    loss_case *c = user;
    return heed_cross_entropy(g, heed_caption_classify(g, c->m, in[0]), (const int64_t[]){0, 2}, NULL);
}

static void gradcheck_whole_model(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_caption m;
    heed_caption_config cfg = tiny_config();
    CHECK(heed_caption_declare(&m, P, &cfg) == HEED_OK, "%s", heed_ctx_error(ctx));
    loss_case c = {&m, 0.7};
    heed_gradcheck_input a = {.shape = HEED_SHAPE(2, 5, 4)};
    heed_gradcheck_opts o = {.params = P, .seed = 3};
    CHECK_GRAD(ctx, tiny_loss, &c, 1, &a, &o);
    heed_gradcheck_input img = {.shape = HEED_SHAPE(2, 1, 16, 16)};
    CHECK_GRAD(ctx, tiny_classify, &c, 1, &img, &o);
    heed_params_free(P);
}

/* Init CONSTANT: h_0 = tanh(b_h), c_0 = tanh(b_c), the same for every image: the loss's
 * gradients against central differences, then d loss / d W_h and W_c exactly zero (the
 * mean annotation no longer reaches the state) while the biases' are not, and the
 * opposite check on MEAN (W_h's gradient nonzero), so the test sees which init ran. */
static void constant_init(void) {
    heed_caption_config cfg = tiny_config();
    cfg.init = HEED_CAPTION_INIT_CONSTANT;
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_caption m;
    CHECK(heed_caption_declare(&m, P, &cfg) == HEED_OK, "%s", heed_ctx_error(ctx));
    loss_case c = {&m, 0.7};
    heed_gradcheck_input a = {.shape = HEED_SHAPE(2, 5, 4)};
    heed_gradcheck_opts o = {.params = P, .seed = 4};
    CHECK_GRAD(ctx, tiny_loss, &c, 1, &a, &o);
    heed_params_free(P);
    for (int init = HEED_CAPTION_INIT_MEAN; init <= HEED_CAPTION_INIT_CONSTANT; init++) {
        cfg.init = (heed_caption_init)init;
        P = heed_params_new(ctx, HEED_F64);
        CHECK(heed_caption_declare(&m, P, &cfg) == HEED_OK, "%s", heed_ctx_error(ctx));
        heed_graph *g = heed_graph_new(ctx);
        double x[2 * 5 * 4];
        for (int i = 0; i < 2 * 5 * 4; i++) x[i] = sin(0.7 * i + 0.3);
        heed_params_zero_grad(P);
        heed_tensor *l = heed_caption_loss(g, &m, heed_input(g, HEED_F64, HEED_SHAPE(2, 5, 4), x), tiny_targets, 4,
                                           &(heed_caption_loss_opts){.bos = 0}, NULL, NULL);
        CHECK(l && heed_backward(g, l) == HEED_OK, "%s", heed_graph_error(g));
        double w_h = 0, w_c = 0, b_h = 0, b_c = 0;
        for (int64_t i = 0; i < m.init_h_w->numel; i++)
            w_h += fabs(((double *)m.init_h_w->grad)[i]), w_c += fabs(((double *)m.init_c_w->grad)[i]);
        for (int64_t i = 0; i < m.init_h_b->numel; i++)
            b_h += fabs(((double *)m.init_h_b->grad)[i]), b_c += fabs(((double *)m.init_c_b->grad)[i]);
        if (init == HEED_CAPTION_INIT_CONSTANT)
            CHECK(w_h == 0 && w_c == 0 && b_h > 0 && b_c > 0, "constant: |dW_h| %g |dW_c| %g |db_h| %g |db_c| %g", w_h,
                  w_c, b_h, b_c);
        else CHECK(w_h > 0 && w_c > 0, "mean: |dW_h| %g |dW_c| %g", w_h, w_c);
        heed_graph_free(g);
        heed_params_free(P);
    }
}

static void f32_matches_f64(void) {
    heed_params *P64 = heed_params_new(ctx, HEED_F64), *P32 = heed_params_new(ctx, HEED_F32);
    heed_caption m64, m32;
    heed_caption_config cfg = tiny_config();
    heed_caption_declare(&m64, P64, &cfg);
    heed_caption_declare(&m32, P32, &cfg);
    check_round_params(P64, P32);
    heed_graph *g32 = heed_graph_new(ctx), *g64 = heed_graph_new(ctx);
    double xs[40];
    heed_rng r = heed_rng_make(3, 3);
    for (int i = 0; i < 40; i++) xs[i] = 2 * heed_rng_uniform(&r) - 1;
    loss_case c32 = {&m32, 0.5}, c64 = {&m64, 0.5};
    heed_tensor *i32 = heed_input_f64(g32, HEED_F32, HEED_SHAPE(2, 5, 4), xs);
    heed_tensor *i64 = heed_input_f64(g64, HEED_F64, HEED_SHAPE(2, 5, 4), xs);
    heed_tensor *l32 = tiny_loss(g32, &i32, &c32), *l64 = tiny_loss(g64, &i64, &c64);
    CHECK(l32 && l64 && l32->dtype == HEED_F32, "%s %s", heed_graph_error(g32), heed_graph_error(g64));
    if (l32 && l64) CHECK_CLOSE(heed_get(l32, 0), heed_get(l64, 0), 1e-5);
    heed_graph_free(g32), heed_graph_free(g64);
    heed_params_free(P32), heed_params_free(P64);
}

/* The regulariser by hand: with lambda, the loss grows by lambda / B sum_b sum_i (1 - sum_t
 * alpha_bti)^2 over the real steps, computed here from the returned weights. */
static void regulariser_by_hand(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_caption m;
    heed_caption_config cfg = tiny_config();
    heed_caption_declare(&m, P, &cfg);
    heed_graph *g = heed_graph_new(ctx);
    double xs[40];
    for (int i = 0; i < 40; i++) xs[i] = sin(i * 0.7);
    double stats[2] = {NAN, NAN};
    heed_tensor *w = NULL;
    heed_tensor *a = heed_input_f64(g, HEED_F64, HEED_SHAPE(2, 5, 4), xs);
    heed_tensor *l = heed_caption_loss(g, &m, a, tiny_targets, 4, &(heed_caption_loss_opts){.lambda = 2}, &w, stats);
    CHECK(l && w && w->shape[0] == 2 && w->shape[1] == 4 && w->shape[2] == 5, "%s", heed_graph_error(g));
    if (l && w) {
        double reg = 0;
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < 5; i++) {
                double s = 0;
                for (int t = 0; t < 4; t++)
                    if (tiny_targets[b * 4 + t] != -100) s += heed_get(w, (b * 4 + t) * 5 + i);
                reg += (1 - s) * (1 - s);
            }
        reg /= 2;
        CHECK_CLOSE(stats[1], reg, 1e-12);
        CHECK_CLOSE(heed_get(l, 0), stats[0] + 2 * reg, 1e-12);
    }
    heed_graph_free(g);
    heed_params_free(P);
}

/* A tiny task: the caption of a "scene" is which of its 4 cells are lit, so the decoder must
 * look at the annotations; Adam for 60 steps must at least halve the loss. Then beam width
 * 1 must give exactly greedy's hypotheses, with attention rows that are distributions. */
enum { B = 4, N = 4, D = 4, L = 3, V = 6 };
static const int64_t task_targets[B * L] = {2, 3, 1, 4, 5, 1, 3, 1, -100, 5, 2, 1};

static void task_input(float *x) {
    for (int b = 0; b < B; b++)
        for (int i = 0; i < N; i++)
            for (int d = 0; d < D; d++) {
                bool lit = false;
                for (int t = 0; t < L; t++) lit = lit || task_targets[b * L + t] == i + 2;
                x[(b * N + i) * D + d] = lit ? (float)(d == i) + 0.5f : 0.1f * (float)d;
            }
}

static void train_tiny_then_decode(heed_caption_attention kind) {
    heed_ctx *c = heed_ctx_new(&(heed_ctx_opts){.seed = 2, .threads = 1});
    heed_params *P = heed_params_new(c, HEED_F32);
    heed_caption m;
    heed_caption_config cfg = {.in_channels = 1,
                               .channels = {2, 2, D},
                               .classes = 2,
                               .embed_dim = 8,
                               .hidden = 16,
                               .attn_dim = 8,
                               .vocab = V,
                               .cells = N,
                               .dropout = 0.1};
    CHECK(heed_caption_declare(&m, P, &cfg) == HEED_OK, "%s", heed_ctx_error(c));
    heed_optimizer *opt = heed_adam(P, &(heed_adam_opts){.lr = 0.02, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8});
    heed_graph *g = heed_graph_new(c);
    heed_caption_hard_state hard = {0};
    float x[B * N * D];
    task_input(x);
    double first = NAN, last = NAN;
    for (int step = 0; step < 60; step++) {
        heed_graph_reset(g);
        heed_params_zero_grad(P);
        heed_tensor *in = heed_input(g, HEED_F32, HEED_SHAPE(B, N, D), x);
        double stats[2];
        heed_tensor *loss = heed_caption_loss(g, &m, in, task_targets, L,
                                              &(heed_caption_loss_opts){.bos = 0,
                                                                        .lambda = 0.01,
                                                                        .attention = kind,
                                                                        .entropy = 0.01,
                                                                        .soft_mix = 0.5,
                                                                        .hard = &hard,
                                                                        .stream = (uint64_t)step},
                                              NULL, stats);
        CHECK(loss && heed_backward(g, loss) == HEED_OK, "step %d: %s", step, heed_graph_error(g));
        if (!loss) break;
        if (step == 0) first = stats[0];
        last = stats[0];
        heed_optimizer_step(opt);
    }
    CHECK(last < 0.5 * first, "cross-entropy %.4f -> %.4f: did not halve in 60 steps", first, last);
    if (kind == HEED_CAPTION_HARD) CHECK(hard.baseline.updates > 0, "the hard baseline was never updated");

    heed_decode_result r[2];
    for (int k = 0; k < 2; k++) {
        heed_graph_reset(g);
        heed_tensor *in = heed_input(g, HEED_F32, HEED_SHAPE(B, N, D), x);
        CHECK(heed_caption_decode(g, &m, in, &(heed_decode_opts){.beam = k, .bos = 0, .eos = 1, .max_len = 6}, &r[k]) ==
                  HEED_OK,
              "%s", heed_graph_error(g));
    }
    for (int b = 0; b < B && r[0].hyp && r[1].hyp; b++) {
        const heed_hypothesis *h0 = &r[0].hyp[b], *h1 = &r[1].hyp[b];
        CHECK(h0->keys == N, "attention over %lld cells, want %d", (long long)h0->keys, N);
        bool same = h0->len == h1->len && h0->finished == h1->finished && h0->logp == h1->logp &&
                    !memcmp(h0->tokens, h1->tokens, (size_t)h0->len * sizeof *h0->tokens) &&
                    !memcmp(h0->attention, h1->attention, (size_t)((h0->len + h0->finished) * N) * sizeof(float));
        CHECK(same, "scene %d: greedy (len %lld, logp %.9g) and beam 1 (len %lld, logp %.9g) differ", b,
              (long long)h0->len, h0->logp, (long long)h1->len, h1->logp);
        for (int64_t s = 0; s < h0->len + h0->finished; s++) {
            double sum = 0;
            for (int64_t j = 0; j < N; j++) sum += h0->attention[s * N + j];
            CHECK(check_close(sum, 1, 1e-5), "scene %d step %lld: weights sum %.7f", b, (long long)s, sum);
        }
    }
    heed_decode_result_free(&r[0]);
    heed_decode_result_free(&r[1]);
    heed_graph_free(g);
    heed_optimizer_free(opt);
    heed_params_free(P);
    heed_ctx_free(c);
}

static void train_soft(void) { train_tiny_then_decode(HEED_CAPTION_SOFT); }
static void train_hard(void) { train_tiny_then_decode(HEED_CAPTION_HARD); }

/* A 6x6 grid over 96x96 pixels: cell (r, c) has its centre at (16 c + 8, 16 r + 8). */
static void pointing_by_hand(void) {
    float w[36] = {0};
    w[1 * 6 + 2] = 0.4f, w[1 * 6 + 3] = 0.1f, w[2 * 6 + 2] = 0.05f, w[2 * 6 + 3] = 0.05f, w[0] = 0.3f, w[35] = 0.1f;
    bool hit = false;
    double mass = -1;
    /* box x in [32, 60), y in [16, 44): centres x 40, 56 (columns 2, 3), y 24, 40 (rows 1, 2) */
    CHECK(heed_caption_pointing(ctx, w, 6, 6, 96, 96, 32, 16, 60, 44, &hit, &mass) == HEED_OK, "valid case refused");
    CHECK(hit, "the argmax (row 1, column 2, centre (40, 24)) is inside the box");
    CHECK_CLOSE(mass, 0.4 + 0.1 + 0.05 + 0.05, 1e-6);
    /* the same box shifted right by 10: column 2's centre x = 40 leaves it, column 4's 72 does not enter */
    CHECK(heed_caption_pointing(ctx, w, 6, 6, 96, 96, 42, 16, 70, 44, &hit, &mass) == HEED_OK, "valid case refused");
    CHECK(!hit, "the argmax's centre x = 40 is left of the box");
    CHECK_CLOSE(mass, 0.1 + 0.05, 1e-6);
    /* a tie goes to the first maximum */
    w[0] = 0.4f;
    CHECK(heed_caption_pointing(ctx, w, 6, 6, 96, 96, 32, 16, 60, 44, &hit, NULL) == HEED_OK && !hit,
          "tie: first maximum");
    /* NaN never points */
    w[1 * 6 + 2] = NAN, w[0] = 0;
    CHECK(heed_caption_pointing(ctx, w, 6, 6, 96, 96, 32, 16, 60, 44, &hit, &mass) == HEED_OK && !hit,
          "NaN must not hit");
    CHECK_CTX_FAIL(ctx, heed_caption_pointing(ctx, NULL, 6, 6, 96, 96, 0, 0, 1, 1, &hit, NULL), HEED_ERR_ARG,
                   "heed_caption_pointing: weights is NULL");
    CHECK_CTX_FAIL(ctx, heed_caption_pointing(ctx, w, 6, 6, 96, 96, 5, 0, 5, 1, &hit, NULL), HEED_ERR_ARG,
                   "heed_caption_pointing: box [5, 5) x [0, 1) is empty (need x0 < x1, y0 < y1)");
    CHECK_CTX_FAIL(ctx, heed_caption_pointing(ctx, w, 6, 6, 96, 96, 0, 3, 1, 2, &hit, NULL), HEED_ERR_ARG,
                   "box [0, 1) x [3, 2) is empty");
    CHECK_CTX_FAIL(ctx, heed_caption_pointing(ctx, w, 0, 6, 96, 96, 0, 0, 1, 1, &hit, NULL), HEED_ERR_ARG,
                   "heed_caption_pointing: a 0x6 grid on a 96x96 image (need 1 <= grid_h <= height, 1 <= grid_w <= "
                   "width)");
    CHECK_CTX_FAIL(ctx, heed_caption_pointing(ctx, w, 6, 6, 96, 5, 0, 0, 1, 1, &hit, NULL), HEED_ERR_ARG,
                   "a 6x6 grid on a 96x5 image");
    CHECK(heed_caption_pointing(NULL, w, 0, 6, 96, 96, 0, 0, 1, 1, &hit, NULL) == HEED_ERR_ARG,
          "NULL ctx: the code only");
}

static void bad_input(void) {
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_caption m;
    heed_caption_config cfg = tiny_config();
    cfg.channels[1] = 0;
    cfg.cells = -1;
    CHECK(heed_caption_declare(&m, P, &cfg) == HEED_ERR_ARG && strstr(heed_ctx_error(ctx), "channels 2 0 4") &&
              strstr(heed_ctx_error(ctx), "cells -1"),
          "%s", heed_ctx_error(ctx));
    cfg = tiny_config();
    cfg.dropout = 1;
    CHECK(heed_caption_declare(&m, P, &cfg) == HEED_ERR_ARG && strstr(heed_ctx_error(ctx), "dropout in [0, 1)"), "%s",
          heed_ctx_error(ctx));
    cfg = tiny_config();
    cfg.init = (heed_caption_init)2;
    CHECK(heed_caption_declare(&m, P, &cfg) == HEED_ERR_ARG && strstr(heed_ctx_error(ctx), "init 2") &&
              strstr(heed_ctx_error(ctx), "init mean (0) or constant (1)"),
          "%s", heed_ctx_error(ctx));
    cfg = tiny_config();
    CHECK(heed_caption_declare(&m, P, &cfg) == HEED_OK, "%s", heed_ctx_error(ctx));
    heed_graph *g = heed_graph_new(ctx);
    CHECK(!heed_caption_encode(g, &m, heed_zeros(g, HEED_F32, HEED_SHAPE(2, 1, 20, 16))), "20 rows");
    CHECK_ERR(g, HEED_ERR_SHAPE, "multiples of 16");
    CHECK(!heed_caption_encode(g, &m, heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 16, 16))), "3 channels");
    CHECK_ERR(g, HEED_ERR_SHAPE, "in_channels = 1");
    heed_tensor *a = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5, 3));
    CHECK(!heed_caption_loss(g, &m, a, tiny_targets, 4, NULL, NULL, NULL), "D = 3");
    CHECK_ERR(g, HEED_ERR_SHAPE, "[B, N, D = 4]");
    a = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 4, 4));
    CHECK(!heed_caption_loss(g, &m, a, tiny_targets, 4, NULL, NULL, NULL), "4 cells, positions for 5");
    CHECK_ERR(g, HEED_ERR_SHAPE, "N = 4 cells, the model's positions are for cells = 5");
    a = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5, 4));
    CHECK(!heed_caption_loss(g, &m, a, (int64_t[]){2, 3, 4, 9, 1, 1, 1, 1}, 4, NULL, NULL, NULL), "target 9");
    CHECK_ERR(g, HEED_ERR_ARG, "targets[3] = 9");
    a = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5, 4));
    CHECK(!heed_caption_loss(g, &m, a, tiny_targets, 4, &(heed_caption_loss_opts){.lambda = -1}, NULL, NULL),
          "lambda -1");
    CHECK_ERR(g, HEED_ERR_ARG, "lambda -1");
    a = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5, 4));
    CHECK(!heed_caption_loss(g, &m, a, tiny_targets, 4, &(heed_caption_loss_opts){.attention = HEED_CAPTION_HARD}, NULL,
                             NULL),
          "hard without its state");
    CHECK_ERR(g, HEED_ERR_ARG, "hard state NULL");
    a = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5, 4));
    heed_caption_hard_state bad_decay = {.baseline = {.decay = 2}};
    CHECK(!heed_caption_loss(g, &m, a, tiny_targets, 4,
                             &(heed_caption_loss_opts){.attention = HEED_CAPTION_HARD, .hard = &bad_decay}, NULL, NULL),
          "hard with a baseline decay of 2");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_caption_loss: heed_baseline_update: decay = 2 (must be in (0, 1); 0 means 0.9)");
    a = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5, 4));
    heed_decode_result r;
    CHECK(heed_caption_decode(g, &m, a, NULL, &r) == HEED_ERR_ARG, "NULL opts");
    CHECK_ERR(g, HEED_ERR_ARG, "opts and out must not be NULL");
    CHECK(!heed_caption_classify(g, NULL, heed_zeros(g, HEED_F32, HEED_SHAPE(1, 1, 16, 16))), "NULL model");
    CHECK_ERR(g, HEED_ERR_ARG, "model is NULL");
    heed_graph_free(g);
    heed_params_free(P);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 1, .threads = 1});
    RUN(gradcheck_whole_model);
    RUN(constant_init);
    RUN(f32_matches_f64);
    RUN(regulariser_by_hand);
    RUN(train_soft);
    RUN(train_hard);
    RUN(pointing_by_hand);
    RUN(bad_input);
    heed_ctx_free(ctx);
    return check_summary();
}
