/* SASRec model (models/sasrec.c) and its training program's loop (examples/sasrec):
 * the f64 gradient check of the whole model, the loss against a direct computation,
 * causality and padding, f32 against f64, bad input, and a smoke training run on tiny
 * generated data (the loss falls, the test HR@10 beats popularity) with an exact resume
 * from a checkpoint. */
#include "tests/check.h"
#include "train.h"

#include <unistd.h>

static heed_ctx *ctx;

/* A tiny model: 7 items, maxlen 5, d 4, 2 blocks of 2 heads, dropout 0.3. */
static heed_sasrec_config tiny_config(void) {
    return (heed_sasrec_config){.n_items = 7, .maxlen = 5, .hidden = 4, .blocks = 2, .heads = 2, .dropout = 0.3};
}

/* Left-padded rows: one full, one short, one with a single item (no target). */
static const int64_t tiny_seq[3 * 5] = {3, 1, 4, 1, 5, 0, 0, 2, 6, 7, 0, 0, 0, 0, 4};
static const int64_t tiny_pos[3 * 5] = {1, 4, 1, 5, 2, 0, 0, 6, 7, 3, 0, 0, 0, 0, 0};
static const int64_t tiny_neg[3 * 5] = {6, 2, 7, 3, 4, 0, 0, 1, 5, 1, 0, 0, 0, 0, 0};

typedef struct {
    heed_sasrec *m;
    bool materialised;
} model_case;

static heed_tensor *model_loss(heed_graph *g, heed_tensor **in, void *user) {
    model_case *c = user;
    heed_tensor *w[HEED_SASREC_MAX_BLOCKS];
    heed_tensor *h = heed_sasrec_forward(g, c->m, tiny_seq, 3, 5, c->materialised ? w : NULL);
    return heed_sasrec_loss(g, c->m, h, tiny_pos, tiny_neg);
}

/* Re-draws every parameter (gains and biases too) so no term of the gradient hides at 0. */
static void scramble(heed_params *P) {
    for (int i = 0; i < heed_params_count(P); i++)
        heed_param_init(P, heed_params_at(P, i), heed_init_uniform(-0.8, 0.8));
}

static void gradcheck_whole_model(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_sasrec m;
    heed_sasrec_config cfg = tiny_config();
    CHECK(heed_sasrec_declare(&m, P, &cfg) == HEED_OK, "%s", heed_ctx_error(ctx));
    scramble(P);
    heed_gradcheck_opts o = {.params = P, .seed = 3};
    model_case flash = {&m, false}, materialised = {&m, true};
    CHECK_GRAD(ctx, model_loss, &flash, 0, NULL, &o);
    CHECK_GRAD(ctx, model_loss, &materialised, 0, NULL, &o);
    /* without dropout too (the eval path) */
    m.cfg.dropout = 0;
    CHECK_GRAD(ctx, model_loss, &flash, 0, NULL, &o);
    heed_params_free(P);
}

static void loss_matches_direct_computation(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_sasrec m;
    heed_sasrec_config cfg = tiny_config();
    cfg.dropout = 0;
    CHECK(heed_sasrec_declare(&m, P, &cfg) == HEED_OK, "%s", heed_ctx_error(ctx));
    scramble(P);
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *h = heed_sasrec_forward(g, &m, tiny_seq, 3, 5, NULL);
    heed_tensor *loss = heed_sasrec_loss(g, &m, h, tiny_pos, tiny_neg);
    CHECK(loss != NULL, "%s", heed_graph_error(g));
    if (loss) {
        /* -(sum log sigmoid(h.E[pos]) + log(1 - sigmoid(h.E[neg]))) / targets */
        const double *H = h->data, *E = m.item_emb->data;
        double sum = 0;
        int targets = 0;
        for (int i = 0; i < 15; i++) {
            if (!tiny_pos[i]) continue;
            double sp = 0, sn = 0;
            for (int k = 0; k < 4; k++)
                sp += H[i * 4 + k] * E[tiny_pos[i] * 4 + k], sn += H[i * 4 + k] * E[tiny_neg[i] * 4 + k];
            sum += -log(1 / (1 + exp(-sp))) - log(1 - 1 / (1 + exp(-sn)));
            targets++;
        }
        CHECK_CLOSE(heed_get(loss, 0), sum / targets, 1e-12);
        /* scores: the last position against chosen items, and against every item */
        heed_tensor *last = heed_sasrec_last(g, &m, h);
        int64_t items[3 * 2] = {1, 7, 2, 2, 0, 5};
        heed_tensor *s = heed_sasrec_score(g, &m, last, items, 2), *all = heed_sasrec_score(g, &m, last, NULL, 0);
        CHECK(s && all && s->shape[0] == 3 && s->shape[1] == 2 && all->shape[1] == 8, "score shapes");
        for (int b = 0; s && all && b < 3; b++)
            for (int j = 0; j < 2; j++) {
                double want = 0;
                for (int k = 0; k < 4; k++) want += H[(b * 5 + 4) * 4 + k] * E[items[b * 2 + j] * 4 + k];
                CHECK_CLOSE(heed_get(s, b * 2 + j), want, 1e-12);
                CHECK_CLOSE(heed_get(all, b * 8 + items[b * 2 + j]), want, 1e-12);
            }
    }
    heed_graph_free(g);
    heed_params_free(P);
}

/* Position t's output depends on items up to t only, and on nothing in other rows. */
static void causal_and_row_independent(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_sasrec m;
    heed_sasrec_config cfg = tiny_config();
    CHECK(heed_sasrec_declare(&m, P, &cfg) == HEED_OK, "%s", heed_ctx_error(ctx));
    scramble(P);
    heed_graph *g = heed_graph_new(ctx);
    heed_graph_set_training(g, false);
    int64_t a[2 * 5] = {3, 1, 4, 1, 5, 0, 0, 2, 6, 7}, b[2 * 5] = {3, 1, 4, 7, 7, 0, 0, 0, 0, 7};
    heed_tensor *ha = heed_sasrec_forward(g, &m, a, 2, 5, NULL), *hb = heed_sasrec_forward(g, &m, b, 2, 5, NULL);
    heed_tensor *h1 = heed_sasrec_forward(g, &m, a + 5, 1, 5, NULL);
    heed_tensor *w[HEED_SASREC_MAX_BLOCKS];
    heed_tensor *hm = heed_sasrec_forward(g, &m, a, 2, 5, w);
    CHECK(ha && hb && h1 && hm, "%s", heed_graph_error(g));
    if (ha && hb && h1 && hm) {
        double diff_prefix = 0, diff_later = 0, diff_row = 0, diff_impl = 0;
        for (int t = 0; t < 5; t++)
            for (int k = 0; k < 4; k++) {
                double d = check_err(heed_get(ha, t * 4 + k), heed_get(hb, t * 4 + k));
                if (t < 3) diff_prefix = fmax(diff_prefix, d);
                else diff_later = fmax(diff_later, d);
                if (t >= 2) diff_row = fmax(diff_row, check_err(heed_get(ha, 20 + t * 4 + k), heed_get(h1, t * 4 + k)));
            }
        for (int64_t i = 0; i < ha->numel; i++)
            diff_impl = fmax(diff_impl, check_err(heed_get(ha, i), heed_get(hm, i)));
        CHECK(diff_prefix < 1e-12, "positions 0..2 see only items 0..2: %g", diff_prefix);
        CHECK(diff_later > 1e-3 && diff_later < INFINITY, "later positions see the change: %g", diff_later);
        CHECK(diff_row < 1e-12, "rows are independent: %g", diff_row);
        CHECK(diff_impl < 1e-12, "flash and materialised agree: %g", diff_impl);
        /* attention weights: rows sum to 1 over the unpadded keys up to the query, 0 elsewhere */
        double worst = 0;
        for (int blk = 0; blk < 2; blk++)
            for (int hd = 0; hd < 2; hd++)
                for (int i = 2; i < 5; i++) {
                    double s = 0;
                    for (int j = 0; j < 5; j++) {
                        double v = heed_get(w[blk], (((int64_t)1 * 2 + hd) * 5 + i) * 5 + j); /* row b = 1 */
                        if (j < 2 || j > i) worst = fmax(worst, check_err(v, 0));
                        s += v;
                    }
                    worst = fmax(worst, check_err(s, 1));
                }
        CHECK(worst < 1e-12, "masked attention weights: %g", worst);
    }
    heed_graph_free(g);
    heed_params_free(P);
}

/* Dropping leading all-padding columns changes nothing at real positions, forward or
 * backward (the loss and every parameter gradient). */
static void narrow_batch_matches_full_width(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_sasrec m;
    heed_sasrec_config cfg = tiny_config();
    cfg.maxlen = 7;
    CHECK(heed_sasrec_declare(&m, P, &cfg) == HEED_OK, "%s", heed_ctx_error(ctx));
    scramble(P);
    int64_t full[2 * 7] = {0, 0, 0, 1, 4, 1, 5, 0, 0, 0, 0, 0, 6, 7},
                     fpos[2 * 7] = {0, 0, 0, 4, 1, 5, 2, 0, 0, 0, 0, 0, 7, 3};
    int64_t fneg[2 * 7] = {0, 0, 0, 3, 3, 3, 3, 0, 0, 0, 0, 0, 1, 1};
    int64_t width = 0;
    CHECK(heed_sasrec_width(ctx, full, 2, 7, &width) == HEED_OK && width == 4, "width %lld: %s", (long long)width,
          heed_ctx_error(ctx));
    CHECK(heed_sasrec_width(ctx, full + 7, 1, 7, &width) == HEED_OK && width == 2, "row 1: width %lld",
          (long long)width);
    CHECK(heed_sasrec_width(ctx, (int64_t[3]){0}, 1, 3, &width) == HEED_OK && width == 1, "all padding: width %lld",
          (long long)width);
    CHECK_CTX_FAIL(ctx, heed_sasrec_width(ctx, NULL, 2, 7, &width), HEED_ERR_ARG, "heed_sasrec_width: seq is NULL");
    CHECK_CTX_FAIL(ctx, heed_sasrec_width(ctx, full, 2, 7, NULL), HEED_ERR_ARG, "heed_sasrec_width: width is NULL");
    CHECK_CTX_FAIL(ctx, heed_sasrec_width(ctx, full, 0, 7, &width), HEED_ERR_ARG,
                   "heed_sasrec_width: seq is [0, 7] (batch and maxlen must be >= 1)");
    CHECK_CTX_FAIL(ctx, heed_sasrec_width(ctx, full, 2, -1, &width), HEED_ERR_ARG, "seq is [2, -1]");
    int64_t nar[2 * 4], npos[2 * 4], nneg[2 * 4];
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 4; t++)
            nar[b * 4 + t] = full[b * 7 + 3 + t], npos[b * 4 + t] = fpos[b * 7 + 3 + t],
                        nneg[b * 4 + t] = fneg[b * 7 + 3 + t];
    heed_graph *g = heed_graph_new(ctx);
    heed_graph_set_training(g, false);
    int64_t n = heed_params_padded_numel(P);
    double *grad_full = malloc(sizeof(double) * (size_t)n), lf = 0, ln = 0;
    heed_params_zero_grad(P);
    heed_tensor *hf = heed_sasrec_forward(g, &m, full, 2, 7, NULL);
    heed_tensor *l = heed_sasrec_loss(g, &m, hf, fpos, fneg);
    CHECK(heed_backward(g, l) == HEED_OK, "%s", heed_graph_error(g));
    lf = heed_get(l, 0);
    double last_full[2][4];
    for (int b = 0; b < 2; b++)
        for (int k = 0; k < 4; k++) last_full[b][k] = heed_get(hf, (b * 7 + 6) * 4 + k);
    memcpy(grad_full, heed_params_grads(P), sizeof(double) * (size_t)n);
    heed_graph_reset(g);
    heed_params_zero_grad(P);
    heed_tensor *hn = heed_sasrec_forward(g, &m, nar, 2, 4, NULL);
    l = heed_sasrec_loss(g, &m, hn, npos, nneg);
    CHECK(heed_backward(g, l) == HEED_OK, "%s", heed_graph_error(g));
    ln = heed_get(l, 0);
    CHECK_CLOSE(ln, lf, 1e-12);
    double worst = 0;
    for (int b = 0; b < 2; b++)
        for (int k = 0; k < 4; k++) worst = fmax(worst, check_err(heed_get(hn, (b * 4 + 3) * 4 + k), last_full[b][k]));
    const double *gn = heed_params_grads(P);
    worst = fmax(worst, check_max_err(gn, grad_full, n));
    CHECK(worst < 1e-12, "narrow vs full: %g", worst);
    free(grad_full);
    heed_graph_free(g);
    heed_params_free(P);
}

static heed_sasrec f32_model, f64_model;
static heed_tensor *forward_for_dtype(heed_graph *g, heed_tensor **in, void *user) {
    heed_sasrec *m = in[0]->dtype == HEED_F32 ? &f32_model : &f64_model;
    return heed_sasrec_forward(g, m, tiny_seq + 10, 1, 5, NULL); /* a full row: padded rows are unspecified */
}

static void f32_agrees_with_f64(void) {
    heed_params *P32 = heed_params_new(ctx, HEED_F32), *P64 = heed_params_new(ctx, HEED_F64);
    heed_sasrec_config cfg = tiny_config();
    cfg.dropout = 0;
    CHECK(heed_sasrec_declare(&f32_model, P32, &cfg) == HEED_OK &&
              heed_sasrec_declare(&f64_model, P64, &cfg) == HEED_OK,
          "init");
    /* same values: both stores draw from the ctx seed and the parameter names */
    scramble(P32);
    scramble(P64);
    heed_gradcheck_input in = {.shape = HEED_SHAPE(1)};
    check_f32_vs_f64(ctx, forward_for_dtype, NULL, 1, &in, 1e-5, "sasrec forward");
    heed_params_free(P32);
    heed_params_free(P64);
}

static void bad_input(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_sasrec m;
    heed_sasrec_config cfg = tiny_config();
    cfg.heads = 3;
    CHECK(heed_sasrec_declare(&m, P, &cfg) == HEED_ERR_ARG && strstr(heed_ctx_error(ctx), "heads"), "%s",
          heed_ctx_error(ctx));
    cfg = tiny_config();
    cfg.blocks = HEED_SASREC_MAX_BLOCKS + 1;
    CHECK(heed_sasrec_declare(&m, P, &cfg) == HEED_ERR_ARG, "blocks");
    cfg = tiny_config();
    cfg.dropout = 1;
    CHECK(heed_sasrec_declare(&m, P, &cfg) == HEED_ERR_ARG, "dropout");
    CHECK(heed_sasrec_declare(&m, NULL, &cfg) == HEED_ERR_ARG, "NULL store");
    cfg = tiny_config();
    CHECK(heed_sasrec_declare(&m, P, &cfg) == HEED_OK, "%s", heed_ctx_error(ctx));
    heed_sasrec m2;
    CHECK(heed_sasrec_declare(&m2, P, &cfg) != HEED_OK && strstr(heed_ctx_error(ctx), "exists"), "same names twice: %s",
          heed_ctx_error(ctx));
    heed_graph *g = heed_graph_new(ctx);
    int64_t bad[5] = {0, 0, 1, 8, 2};
    CHECK(heed_sasrec_forward(g, &m, bad, 1, 5, NULL) == NULL, "id 8 > 7");
    CHECK_ERR(g, HEED_ERR_ARG, "seq[3] = 8 is not an item id");
    bad[3] = -1;
    CHECK(heed_sasrec_forward(g, &m, bad, 1, 5, NULL) == NULL, "id -1");
    CHECK_ERR(g, HEED_ERR_ARG, "seq[3] = -1");
    CHECK(heed_sasrec_forward(g, &m, NULL, 1, 5, NULL) == NULL, "NULL seq");
    CHECK_ERR(g, HEED_ERR_ARG, "seq is NULL");
    CHECK(heed_sasrec_forward(g, &m, tiny_seq, 0, 5, NULL) == NULL, "batch 0");
    CHECK_ERR(g, HEED_ERR_ARG, "batch 0");
    CHECK(heed_sasrec_forward(g, &m, tiny_seq, 3, 6, NULL) == NULL, "len 6 > maxlen");
    CHECK_ERR(g, HEED_ERR_ARG, "len 6 (must be in 1..maxlen = 5)");
    CHECK(heed_sasrec_forward(g, &m, tiny_seq, 3, 0, NULL) == NULL, "len 0");
    CHECK_ERR(g, HEED_ERR_ARG, "len 0");
    CHECK(heed_sasrec_forward(g, NULL, tiny_seq, 1, 5, NULL) == NULL, "NULL model");
    CHECK_ERR(g, HEED_ERR_ARG, "model is NULL");
    heed_tensor *h = heed_sasrec_forward(g, &m, tiny_seq, 3, 5, NULL);
    int64_t zeros[15] = {0};
    CHECK(heed_sasrec_loss(g, &m, h, zeros, zeros) == NULL, "no targets");
    CHECK_ERR(g, HEED_ERR_ARG, "no target");
    h = heed_sasrec_forward(g, &m, tiny_seq, 3, 5, NULL);
    int64_t big[15] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 99};
    CHECK(heed_sasrec_loss(g, &m, h, tiny_pos, big) == NULL, "neg out of range");
    CHECK_ERR(g, HEED_ERR_ARG, "neg[14] = 99");
    heed_tensor *wrong = heed_zeros(g, HEED_F64, HEED_SHAPE(3, 4, 3));
    CHECK(heed_sasrec_loss(g, &m, wrong, tiny_pos, tiny_neg) == NULL, "h shape");
    CHECK_ERR(g, HEED_ERR_SHAPE, "h[3,4,3] must be [B, len <= maxlen, hidden]");
    wrong = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 5, 4));
    CHECK(heed_sasrec_loss(g, &m, wrong, tiny_pos, tiny_neg) == NULL, "h dtype");
    CHECK_ERR(g, HEED_ERR_DTYPE, "dtypes must match");
    wrong = heed_zeros(g, HEED_F64, HEED_SHAPE(3, 6, 4));
    CHECK(heed_sasrec_last(g, &m, wrong) == NULL, "h longer than maxlen");
    CHECK_ERR(g, HEED_ERR_SHAPE, "h[3,6,4] must be [B, len <= maxlen, hidden]");
    wrong = heed_zeros(g, HEED_F64, HEED_SHAPE(3, 5));
    CHECK(heed_sasrec_score(g, &m, wrong, NULL, 0) == NULL, "h_last shape");
    CHECK_ERR(g, HEED_ERR_SHAPE, "[B, hidden]");
    heed_graph_free(g);
    heed_params_free(P);
}

/* ---------------------------------------------------------------- training */

static sr_train_config smoke_config(int64_t n_items) {
    sr_train_config c = sr_train_defaults(n_items);
    c.model.maxlen = 20;
    c.model.hidden = 32;
    c.model.blocks = 1;
    c.model.dropout = 0.2;
    c.batch = 64;
    c.seed = 5;
    return c;
}

/* A small training run on generated data: smoke_config with one thread (the many small
 * parallel regions of a tiny model only wait on each other when the machine is shared;
 * resume_is_exact runs with all threads), then the test metrics of the model and of the
 * ceiling, which the model cannot beat by more than noise. */
typedef struct {
    sr_data d;
    sr_generator gen;
    sr_trainer t;
    double first_loss, last_loss;
    sr_metrics model, ceiling;
} smoke_run;

static void smoke_train(smoke_run *r, const sr_gen_config *gc, double lr, int epochs) {
    char err[512];
    CHECK(sr_generate(gc, &r->d, &r->gen, err, sizeof err) == 0, "%s", err);
    sr_train_config tc = smoke_config(r->d.n_items);
    tc.threads = 1;
    tc.lr = lr;
    CHECK(sr_trainer_init(&r->t, &r->d, &tc, err, sizeof err) == 0, "%s", err);
    for (int e = 0; e < epochs; e++) {
        double l = sr_train_epoch(&r->t, NULL, err, sizeof err);
        CHECK(!isnan(l), "%s", err);
        if (e == 0) r->first_loss = l;
        r->last_loss = l;
    }
    sr_eval_opts o = sr_eval_defaults(tc.model.maxlen, true);
    CHECK(sr_evaluate(&r->d, &o, sr_model_scorer, &r->t, &r->model, err, sizeof err) == 0, "%s", err);
    CHECK(sr_evaluate(&r->d, &o, sr_oracle_scorer, &r->gen, &r->ceiling, err, sizeof err) == 0, "%s", err);
    CHECK(r->model.hr <= r->ceiling.hr + 0.03, "model %g cannot beat the ceiling %g by more than noise", r->model.hr,
          r->ceiling.hr);
}

static void smoke_free(smoke_run *r) {
    sr_trainer_free(&r->t);
    sr_generator_free(&r->gen);
    sr_data_free(&r->d);
}

static void smoke_training_beats_popularity(void) {
    sr_gen_config gc = {.n_users = 1200,
                        .n_items = 150,
                        .mean_len = 12,
                        .min_len = 5,
                        .max_len = 40,
                        .successors = 2,
                        .noise = 0.15,
                        .order2 = 0.2,
                        .zipf = 1.0,
                        .seed = 3};
    smoke_run r;
    smoke_train(&r, &gc, sr_train_defaults(0).lr, 12);
    char err[512];
    sr_metrics pop;
    sr_popularity p;
    sr_popularity_init(&p, &r.d);
    sr_eval_opts o = sr_eval_defaults(r.t.cfg.model.maxlen, true);
    CHECK(sr_evaluate(&r.d, &o, sr_popularity_scorer, &p, &pop, err, sizeof err) == 0, "%s", err);
    printf("  smoke: loss %.4f -> %.4f; test HR@10 model %.4f, popularity %.4f, ceiling %.4f\n", r.first_loss,
           r.last_loss, r.model.hr, pop.hr, r.ceiling.hr);
    CHECK(r.last_loss < 0.75 * r.first_loss, "loss falls: %g -> %g", r.first_loss, r.last_loss);
    CHECK(r.model.hr > pop.hr + 0.2, "model %g vs popularity %g", r.model.hr, pop.hr);
    sr_popularity_free(&p);
    smoke_free(&r);
}

/* On the interests generator (each user interleaves 3 of 10 groups; the next item follows
 * the latest item of one of them, not the last item) attention must take the model well
 * above the counted first-order chain. Without an attention block the same model scores
 * level with the chain (0.379 vs 0.381 here), so this fails if attention stops working. */
static void attention_beats_first_order_chain(void) {
    sr_gen_config gc;
    sr_gen_preset("interests", &gc);
    gc.n_users = 1500, gc.n_items = 150, gc.clusters = 10, gc.mean_len = 12, gc.max_len = 20, gc.seed = 2;
    smoke_run r;
    smoke_train(&r, &gc, 0.005, 40);
    char err[512];
    sr_metrics chain_m;
    sr_chain chain;
    sr_eval_opts o = sr_eval_defaults(r.t.cfg.model.maxlen, true);
    CHECK(sr_chain_init_for(&chain, &r.d, &gc) == 0 && chain.w_lag2 == 0, "a first-order chain");
    CHECK(sr_evaluate(&r.d, &o, sr_chain_scorer, &chain, &chain_m, err, sizeof err) == 0, "%s", err);
    printf("  interests: test HR@10 model %.4f, first-order chain %.4f, ceiling %.4f\n", r.model.hr, chain_m.hr,
           r.ceiling.hr);
    CHECK(r.model.hr > chain_m.hr + 0.15, "model %g vs first-order chain %g", r.model.hr, chain_m.hr);
    sr_chain_free(&chain);
    smoke_free(&r);
}

/* A batch run as length groups (each at its own width, losses weighted by their targets)
 * trains exactly as one group at the batch's full width: f64, no dropout, one epoch. */
static void length_groups_match_one_group(void) {
    sr_gen_config gc = {.n_users = 400,
                        .n_items = 80,
                        .mean_len = 10,
                        .min_len = 3,
                        .max_len = 60,
                        .successors = 2,
                        .noise = 0.2,
                        .order2 = 0.2,
                        .zipf = 1.0,
                        .seed = 4};
    sr_data d;
    sr_generator gen;
    char err[512];
    CHECK(sr_generate(&gc, &d, &gen, err, sizeof err) == 0, "%s", err);
    sr_train_config tc = smoke_config(d.n_items);
    tc.dtype = HEED_F64;
    tc.model.dropout = 0;
    tc.threads = 1;
    sr_trainer one, grouped;
    tc.max_groups = 1;
    CHECK(sr_trainer_init(&one, &d, &tc, err, sizeof err) == 0, "%s", err);
    tc.max_groups = 4;
    CHECK(sr_trainer_init(&grouped, &d, &tc, err, sizeof err) == 0, "%s", err);
    double l1 = sr_train_epoch(&one, NULL, err, sizeof err), l4 = sr_train_epoch(&grouped, NULL, err, sizeof err);
    int64_t steps = sr_trainer_steps_per_epoch(&one);
    CHECK(one.groups == steps && grouped.groups > steps, "groups run: %lld and %lld in %lld steps",
          (long long)one.groups, (long long)grouped.groups, (long long)steps);
    CHECK_CLOSE(l4, l1, 1e-12);
    const double *a = heed_params_values(one.P), *b = heed_params_values(grouped.P);
    double worst = check_max_err(a, b, heed_params_padded_numel(one.P));
    CHECK(worst < 1e-10, "parameters differ by %g after an epoch", worst);
    tc.max_groups = 0;
    sr_trainer bad;
    CHECK(sr_trainer_init(&bad, &d, &tc, err, sizeof err) == -1 && strstr(err, "max_groups"), "%s", err);
    sr_trainer_free(&one);
    sr_trainer_free(&grouped);
    sr_generator_free(&gen);
    sr_data_free(&d);
}

/* The model scorer runs an evaluation batch as length groups too: every score must be
 * bitwise the one of the whole batch at its width (max_groups = 1), in f32 with the
 * threads of the machine, on rows of every width 1..50 in one batch. */
static void scorer_length_groups_are_bitwise_exact(void) {
    sr_gen_config gc = {.n_users = 300,
                        .n_items = 300,
                        .mean_len = 40,
                        .min_len = 3,
                        .max_len = 100,
                        .successors = 2,
                        .noise = 0.2,
                        .order2 = 0.2,
                        .zipf = 1.0,
                        .seed = 9};
    sr_data d;
    sr_generator gen;
    char err[512];
    CHECK(sr_generate(&gc, &d, &gen, err, sizeof err) == 0, "%s", err);
    sr_train_config tc = smoke_config(d.n_items);
    tc.model.maxlen = 50;
    tc.model.blocks = 2;
    sr_trainer t;
    CHECK(sr_trainer_init(&t, &d, &tc, err, sizeof err) == 0, "%s", err); /* any weights do: no training */
    int64_t n = 256, C = 101, maxlen = tc.model.maxlen, I = d.n_items + 1;
    int64_t *users = malloc((size_t)n * sizeof *users), *seqs = malloc((size_t)(n * maxlen) * sizeof *seqs);
    int32_t *cands = malloc((size_t)(n * C) * sizeof *cands);
    float *whole = malloc((size_t)(n * I) * sizeof *whole), *grouped = malloc((size_t)(n * I) * sizeof *grouped);
    int64_t u = 0, shortest = maxlen, longest = 0;
    for (int64_t i = 0; i < n; i++) {
        while (sr_len(&d, ++u) < 3) {}
        users[i] = u;
        sr_eval_row(&d, u, maxlen, true, seqs + i * maxlen);
        for (int64_t j = 0; j < maxlen - 1 - i % maxlen; j++) seqs[i * maxlen + j] = 0; /* widths up to 1 + i % 50 */
        int64_t w = 0;
        CHECK(heed_sasrec_width(ctx, seqs + i * maxlen, 1, maxlen, &w) == HEED_OK, "%s", heed_ctx_error(ctx));
        shortest = w < shortest ? w : shortest, longest = w > longest ? w : longest;
        for (int64_t j = 0; j < C; j++) cands[i * C + j] = (int32_t)(1 + (i * 7 + j * 13) % d.n_items);
    }
    CHECK(shortest == 1 && longest == maxlen, "rows of widths %lld..%lld", (long long)shortest, (long long)longest);
    for (int full = 0; full < 2; full++) {
        int64_t width = full ? I : C;
        t.cfg.max_groups = 1;
        CHECK(sr_model_scorer(&t, n, users, seqs, maxlen, full ? NULL : cands, full ? 0 : C, whole) == 0,
              "whole batch");
        t.cfg.max_groups = 4;
        CHECK(sr_model_scorer(&t, n, users, seqs, maxlen, full ? NULL : cands, full ? 0 : C, grouped) == 0, "groups");
        int64_t differ = 0, nan = 0;
        for (int64_t i = 0; i < n * width; i++)
            differ += memcmp(&whole[i], &grouped[i], sizeof *whole) != 0, nan += isnan(whole[i]);
        CHECK(differ == 0 && nan == 0, "%s: %lld of %lld scores differ, %lld NaN", full ? "all items" : "candidates",
              (long long)differ, (long long)(n * width), (long long)nan);
    }
    free(users), free(seqs), free(cands), free(whole), free(grouped);
    sr_trainer_free(&t);
    sr_generator_free(&gen);
    sr_data_free(&d);
}

static void set_batch_32(sr_train_config *c) { c->batch = 32; }
static void set_lr(sr_train_config *c) { c->lr = 0.002; }
static void set_dropout(sr_train_config *c) { c->model.dropout = 0.3; }
static void set_l2_emb(sr_train_config *c) { c->l2_emb = 0.5; }
static void set_groups(sr_train_config *c) { c->max_groups = 3; }
static void set_beta1(sr_train_config *c) { c->beta1 = 0.8; }
static void set_seed(sr_train_config *c) { c->seed = 6; }

/* Two epochs, a checkpoint, a fresh trainer resuming for a third: bitwise the parameters of
 * three epochs in one go. */
static void resume_is_exact(void) {
    sr_gen_config gc = {.n_users = 300,
                        .n_items = 60,
                        .mean_len = 8,
                        .min_len = 4,
                        .max_len = 30,
                        .successors = 2,
                        .noise = 0.2,
                        .order2 = 0.2,
                        .zipf = 1.0,
                        .seed = 9};
    sr_data d;
    sr_generator gen;
    char err[512], path[] = "/tmp/heed_sasrec_ckpt_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    CHECK(sr_generate(&gc, &d, &gen, err, sizeof err) == 0, "%s", err);
    sr_train_config tc = smoke_config(d.n_items);
    tc.threads = 2; /* results must not depend on the thread count; this checks 2 threads */
    sr_trainer a, b;
    CHECK(sr_trainer_init(&a, &d, &tc, err, sizeof err) == 0, "%s", err);
    for (int e = 0; e < 2; e++) sr_train_epoch(&a, NULL, err, sizeof err);
    CHECK(sr_trainer_save(&a, path, err, sizeof err) == 0, "%s", err);
    sr_train_epoch(&a, NULL, err, sizeof err);
    CHECK(sr_trainer_init(&b, &d, &tc, err, sizeof err) == 0, "%s", err);
    CHECK(sr_trainer_load(&b, path, err, sizeof err) == 0, "%s", err);
    CHECK(b.epoch == 2, "epoch %lld", (long long)b.epoch);
    sr_train_epoch(&b, NULL, err, sizeof err);
    CHECK(heed_params_padded_numel(a.P) == heed_params_padded_numel(b.P) &&
              memcmp(heed_params_values(a.P), heed_params_values(b.P),
                     (size_t)heed_params_padded_numel(a.P) * sizeof(float)) == 0,
          "resumed parameters differ");
    /* --l2-emb: weight decay on exactly the two embedding tables */
    sr_trainer e;
    tc.l2_emb = 0.01;
    CHECK(sr_trainer_init(&e, &d, &tc, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < heed_params_count(e.P); i++) {
        const char *name = heed_params_at(e.P, i)->name;
        bool table = !strcmp(name, "sasrec.item_emb") || !strcmp(name, "sasrec.pos_emb");
        int grp = -1;
        double wd = NAN;
        CHECK(heed_optimizer_group_of(e.opt, i, &grp) == HEED_OK &&
                  heed_optimizer_group_weight_decay(e.opt, grp, &wd) == HEED_OK,
              "%s", heed_ctx_error(e.ctx));
        CHECK((wd == 0.01) == table, "%s: decay %g", name, wd);
    }
    sr_trainer_free(&e);
    tc.l2_emb = 0;
    /* a checkpoint of another configuration is refused naming the setting and both values:
     * every setting that changes training, including those that do not change a shape */
    struct {
        const char *want;
        void (*change)(sr_train_config *);
    } other[] = {
        {"--batch-size 64, this run has --batch-size 32", set_batch_32},
        {"--lr 0.001, this run has --lr 0.002", set_lr},
        {"--dropout-rate 0.2, this run has --dropout-rate 0.3", set_dropout},
        {"--l2-emb 0, this run has --l2-emb 0.5", set_l2_emb},
        {"--length-groups 4, this run has --length-groups 3", set_groups},
        {"--beta1 0.9, this run has --beta1 0.8", set_beta1},
        {"--seed 5, this run has --seed 6", set_seed},
    };
    for (size_t i = 0; i < sizeof other / sizeof *other; i++) {
        sr_train_config oc = tc;
        other[i].change(&oc);
        sr_trainer c;
        CHECK(sr_trainer_init(&c, &d, &oc, err, sizeof err) == 0, "%s", err);
        CHECK(sr_trainer_load(&c, path, err, sizeof err) == -1 && strstr(err, other[i].want), "%s (want '%s')", err,
              other[i].want);
        sr_trainer_free(&c);
    }
    sr_trainer_free(&a);
    sr_trainer_free(&b);
    sr_generator_free(&gen);
    sr_data_free(&d);
    unlink(path);
}

/* A loss that becomes NaN stops the epoch with the epoch and step, before the step; in
 * anomaly mode the graph names the op. A user who trained on every item has no negative. */
static void diverging_and_degenerate_training(void) {
    sr_gen_config gc = {.n_users = 300,
                        .n_items = 60,
                        .mean_len = 8,
                        .min_len = 4,
                        .max_len = 30,
                        .successors = 2,
                        .noise = 0.2,
                        .order2 = 0.2,
                        .zipf = 1.0,
                        .seed = 9};
    sr_data d;
    sr_generator gen;
    char err[512] = "";
    CHECK(sr_generate(&gc, &d, &gen, err, sizeof err) == 0, "%s", err);
    sr_train_config tc = smoke_config(d.n_items);
    tc.lr = 1e10;
    tc.threads = 1;
    sr_trainer t;
    CHECK(sr_trainer_init(&t, &d, &tc, err, sizeof err) == 0, "%s", err);
    double l = sr_train_epoch(&t, NULL, err, sizeof err);
    CHECK(isnan(l) && strstr(err, "loss became NaN at epoch 1 step ") && strstr(err, "--anomaly"), "%g: %s", l, err);
    CHECK(t.epoch == 0, "the epoch did not finish");
    sr_trainer_free(&t);
    tc.anomaly = true;
    CHECK(sr_trainer_init(&t, &d, &tc, err, sizeof err) == 0, "%s", err);
    l = sr_train_epoch(&t, NULL, err, sizeof err);
    CHECK(isnan(l) && strstr(err, "epoch 1 step ") && strstr(err, "NaN or Inf"), "%g: %s", l, err);
    sr_trainer_free(&t);
    sr_generator_free(&gen);
    sr_data_free(&d);
    /* user 1 trains on 1 2 3 of 3 items */
    int32_t us[] = {1, 1, 1, 1, 1, 2, 2, 2, 2}, is[] = {1, 2, 3, 1, 2, 1, 2, 1, 2};
    CHECK(sr_data_from_pairs(&d, us, is, 9, err, sizeof err) == 0, "%s", err);
    tc = smoke_config(d.n_items);
    CHECK(sr_trainer_init(&t, &d, &tc, err, sizeof err) == -1 &&
              strstr(err, "user 1 trained on every one of the 3 items: no negative item to sample"),
          "%s", err);
    sr_data_free(&d);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 42});
    RUN(gradcheck_whole_model);
    RUN(loss_matches_direct_computation);
    RUN(causal_and_row_independent);
    RUN(narrow_batch_matches_full_width);
    RUN(f32_agrees_with_f64);
    RUN(bad_input);
    RUN(smoke_training_beats_popularity);
    RUN(attention_beats_first_order_chain);
    RUN(length_groups_match_one_group);
    RUN(scorer_length_groups_are_bitwise_exact);
    RUN(resume_is_exact);
    RUN(diverging_and_degenerate_training);
    heed_ctx_free(ctx);
    return check_summary();
}
