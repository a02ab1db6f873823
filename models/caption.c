/* Show, Attend and Tell (Xu et al. 2015) from heed's layers (include/heed/caption.h).
 *
 * The encoder is heed_conv2d / heed_batchnorm_forward / heed_relu / heed_max_pool2d; its last
 * map [B, D, h, w] becomes the annotations [B, N = h w, D]. The decoder is one
 * heed_lstm_cell_step per word with heed_additive_score over the annotations (the query is
 * h_{t-1}), then either heed_attend (soft) or heed_hard_attend (a sampled cell, trained by
 * the score-function estimator); training runs every step of a batch in one graph (teacher
 * forcing), decoding goes through heed_decode with the state reordered by
 * heed_index_select. */
#include <heed/attention.h>
#include <heed/batchnorm.h>
#include <heed/caption.h>
#include <heed/conv.h>
#include <heed/core.h>
#include <heed/decode.h>
#include <heed/dropout.h>
#include <heed/elementwise.h>
#include <heed/extend.h>
#include <heed/layers.h>
#include <heed/loss.h>
#include <heed/matmul.h>
#include <heed/pool.h>
#include <heed/reduce.h>
#include <heed/rnn.h>
#include <heed/shape.h>
#include <heed/softmax.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL "heed_caption"
#define IGNORE (-100)

static heed_status declare_linear(heed_params *P, const char *name, int64_t out, int64_t in, heed_tensor **w,
                                  heed_tensor **b) {
    char full[96];
    double r = 1 / sqrt((double)in); /* nn.Linear: U(+-1/sqrt(fan_in)) for both */
    snprintf(full, sizeof full, "%s.weight", name);
    if (!(*w = heed_param(P, full, HEED_SHAPE(out, in), heed_init_uniform(-r, r)))) return HEED_ERR_ARG;
    snprintf(full, sizeof full, "%s.bias", name);
    if (b && !(*b = heed_param(P, full, HEED_SHAPE(out), heed_init_uniform(-r, r)))) return HEED_ERR_ARG;
    return HEED_OK;
}

heed_status heed_caption_declare(heed_caption *m, heed_params *P, const heed_caption_config *cfg) {
    if (!P) return HEED_ERR_ARG;
    heed_ctx *ctx = heed_params_ctx(P);
    if (!m || !cfg) return heed_ctx_fail(ctx, HEED_ERR_ARG, MODEL "_declare: model or config is NULL");
    heed_caption_config c = *cfg;
    bool ok = c.in_channels >= 1 && c.classes >= 2 && c.embed_dim >= 1 && c.hidden >= 1 && c.attn_dim >= 1 &&
              c.vocab >= 2 && c.cells >= 0 && c.dropout >= 0 && c.dropout < 1 &&
              (c.init == HEED_CAPTION_INIT_MEAN || c.init == HEED_CAPTION_INIT_CONSTANT);
    for (int i = 0; i < HEED_CAPTION_CONVS; i++) ok = ok && c.channels[i] >= 1;
    if (!ok)
        return heed_ctx_fail(
            ctx, HEED_ERR_ARG,
            MODEL "_declare: in_channels %lld, channels %lld %lld %lld, classes %lld, embed_dim %lld, "
                  "hidden %lld, attn_dim %lld, vocab %lld, cells %lld, dropout %g, init %d: need sizes >= 1, "
                  "classes and vocab >= 2, cells >= 0, dropout in [0, 1), init mean (0) or constant (1)",
            (long long)c.in_channels, (long long)c.channels[0], (long long)c.channels[1], (long long)c.channels[2],
            (long long)c.classes, (long long)c.embed_dim, (long long)c.hidden, (long long)c.attn_dim,
            (long long)c.vocab, (long long)c.cells, c.dropout, (int)c.init);
    *m = (heed_caption){.cfg = c};
    int64_t D = c.channels[HEED_CAPTION_CONVS - 1], H = c.hidden, E = c.embed_dim;
    heed_init conv_init = heed_init_kaiming_uniform(2.2360679774997896); /* nn.Conv2d's */
    char name[64];
    heed_status st = HEED_OK;
    for (int i = 0; i < HEED_CAPTION_CONVS && st == HEED_OK; i++) {
        int64_t in = i ? c.channels[i - 1] : c.in_channels, k = i ? 3 : 5;
        snprintf(name, sizeof name, "caption.encoder.%d.weight", i);
        if (!(m->conv_w[i] = heed_param(P, name, HEED_SHAPE(c.channels[i], in, k, k), conv_init))) st = HEED_ERR_ARG;
        double r = 1 / sqrt((double)(in * k * k));
        snprintf(name, sizeof name, "caption.encoder.%d.bias", i);
        if (st == HEED_OK && !(m->conv_b[i] = heed_param(P, name, HEED_SHAPE(c.channels[i]), heed_init_uniform(-r, r))))
            st = HEED_ERR_ARG;
        snprintf(name, sizeof name, "caption.encoder.%d.bn", i);
        if (st == HEED_OK)
            st = heed_batchnorm_declare(&m->bn[i], P, name, &(heed_batchnorm_config){.num_features = c.channels[i]});
    }
    if (st == HEED_OK) st = declare_linear(P, "caption.classifier", c.classes, D, &m->cls_w, &m->cls_b);
    if (st == HEED_OK && c.cells > 0 &&
        !(m->position = heed_param(P, "caption.position", HEED_SHAPE(c.cells, D), heed_init_normal(0, 0.1))))
        st = HEED_ERR_ARG;
    if (st == HEED_OK) st = declare_linear(P, "caption.init_h", H, D, &m->init_h_w, &m->init_h_b);
    if (st == HEED_OK) st = declare_linear(P, "caption.init_c", H, D, &m->init_c_w, &m->init_c_b);
    if (st == HEED_OK && !(m->embed = heed_param(P, "caption.embed", HEED_SHAPE(c.vocab, E), heed_init_normal(0, 1))))
        st = HEED_ERR_ARG;
    if (st == HEED_OK)
        st = heed_additive_declare(&m->attn, P, "caption.attention",
                                   &(heed_additive_config){.query_dim = H,
                                                           .key_dim = D,
                                                           .attn_dim = c.attn_dim,
                                                           .bias = true});
    if (st == HEED_OK) st = declare_linear(P, "caption.beta", 1, H, &m->beta_w, &m->beta_b);
    if (st == HEED_OK)
        st = heed_rnn_cell_declare(&m->cell, P, "caption.lstm",
                                   &(heed_rnn_opts){.kind = HEED_RNN_LSTM,
                                                    .input_size = E + D,
                                                    .hidden_size = H,
                                                    .forget_bias = 1.0});
    if (st == HEED_OK) st = declare_linear(P, "caption.out_h", E, H, &m->out_h, NULL);
    if (st == HEED_OK) st = declare_linear(P, "caption.out_z", E, D, &m->out_z, NULL);
    if (st == HEED_OK) st = declare_linear(P, "caption.out", c.vocab, E, &m->out_w, &m->out_b);
    return st;
}

void heed_caption_freeze_encoder(heed_caption *m, bool frozen) {
    if (!m) return;
    for (int i = 0; i < HEED_CAPTION_CONVS; i++) {
        heed_param_freeze(m->conv_w[i], frozen), heed_param_freeze(m->conv_b[i], frozen);
        if (m->bn[i].weight) heed_param_freeze(m->bn[i].weight, frozen), heed_param_freeze(m->bn[i].bias, frozen);
    }
    heed_param_freeze(m->cls_w, frozen), heed_param_freeze(m->cls_b, frozen);
}

static bool check_model(heed_graph *g, const char *op, const heed_caption *m) {
    if (!heed_graph_ok(g)) return false;
    if (!m || !m->embed) return heed_graph_fail(g, HEED_ERR_ARG, "%s: model is NULL or not initialised", op), false;
    return true;
}

/* ---------------------------------------------------------------- encoder */

/* The last feature map [B, D, H/16, W/16]. */
static heed_tensor *features(heed_graph *g, const heed_caption *m, heed_tensor *images, const char *op) {
    if (!check_model(g, op, m) || !heed_check_tensor(g, op, images, "images")) return NULL;
    if (images->ndim != 4 || images->shape[0] < 1 || images->shape[1] != m->cfg.in_channels || images->shape[2] < 16 ||
        images->shape[3] < 16 || images->shape[2] % 16 || images->shape[3] % 16)
        return heed_graph_fail(
                   g, HEED_ERR_SHAPE,
                   "%s: images have %d dims [%lld, %lld, %lld, %lld]: must be [B, in_channels = %lld, H, W] "
                   "with H and W multiples of 16",
                   op, images->ndim, (long long)images->shape[0], (long long)(images->ndim > 1 ? images->shape[1] : 0),
                   (long long)(images->ndim > 2 ? images->shape[2] : 0),
                   (long long)(images->ndim > 3 ? images->shape[3] : 0), (long long)m->cfg.in_channels),
               NULL;
    heed_tensor *x = images;
    heed_pool2d_opts pool = {.kernel = {2, 2}};
    for (int i = 0; i < HEED_CAPTION_CONVS; i++) {
        heed_conv2d_opts co =
            i ? (heed_conv2d_opts){.padding = {1, 1}} : (heed_conv2d_opts){.stride = {2, 2}, .padding = {2, 2}};
        x = heed_conv2d(g, x, m->conv_w[i], m->conv_b[i], &co);
        x = heed_max_pool2d(g, heed_relu(g, heed_batchnorm_forward(g, &m->bn[i], x)), &pool);
    }
    return x;
}

heed_tensor *heed_caption_encode(heed_graph *g, const heed_caption *m, heed_tensor *images) {
    heed_tensor *f = features(g, m, images, MODEL "_encode");
    if (!f) return NULL;
    int64_t B = f->shape[0], D = f->shape[1], N = f->shape[2] * f->shape[3];
    return heed_transpose(g, heed_reshape(g, f, HEED_SHAPE(B, D, N)), 1, 2);
}

heed_tensor *heed_caption_classify(heed_graph *g, const heed_caption *m, heed_tensor *images) {
    heed_tensor *f = features(g, m, images, MODEL "_classify");
    if (!f) return NULL;
    int64_t B = f->shape[0], D = f->shape[1], N = f->shape[2] * f->shape[3];
    heed_tensor *mean = heed_mean(g, heed_reshape(g, f, HEED_SHAPE(B, D, N)), 2, false);
    return heed_linear(g, mean, m->cls_w, m->cls_b);
}

/* ---------------------------------------------------------------- decoder */

typedef struct {
    heed_tensor *ann, *keys; /* [n, N, D], [n, N, attn_dim] */
    heed_tensor *h, *c;      /* [n, hidden] */
    int64_t n;
} dec_state;

static bool check_annotations(heed_graph *g, const heed_caption *m, heed_tensor *a, const char *op) {
    if (!check_model(g, op, m) || !heed_check_tensor(g, op, a, "annotations")) return false;
    int64_t D = m->cfg.channels[HEED_CAPTION_CONVS - 1];
    if (a->ndim != 3 || a->shape[0] < 1 || a->shape[1] < 1 || a->shape[2] != D)
        return heed_graph_fail(g, HEED_ERR_SHAPE,
                               "%s: annotations have %d dims [%lld, %lld, ...]: must be [B, N, D = %lld]", op, a->ndim,
                               (long long)a->shape[0], (long long)(a->ndim > 1 ? a->shape[1] : 0), (long long)D),
               false;
    if (m->cfg.cells > 0 && a->shape[1] != m->cfg.cells)
        return heed_graph_fail(g, HEED_ERR_SHAPE,
                               "%s: annotations have N = %lld cells, the model's positions are for cells = %lld", op,
                               (long long)a->shape[1], (long long)m->cfg.cells),
               false;
    return true;
}

/* h_0, c_0 from the mean annotation, or (init CONSTANT) from zeros in its place: tanh(b),
 * learned and the same for every image, so that the decoder cannot know which objects
 * the scene holds without attending to them; the keys projected once. */
static void dec_start(heed_graph *g, const heed_caption *m, heed_tensor *ann, dec_state *s) {
    if (m->position) ann = heed_add(g, ann, m->position);
    heed_tensor *mean = heed_mean(g, ann, 1, false);
    if (m->cfg.init == HEED_CAPTION_INIT_CONSTANT && mean)
        mean = heed_zeros(g, mean->dtype, HEED_SHAPE(mean->shape[0], mean->shape[1]));
    *s = (dec_state){.ann = ann, .n = ann->shape[0]};
    s->keys = heed_additive_keys(g, ann, m->attn.w_k, NULL);
    s->h = heed_tanh(g, heed_linear(g, mean, m->init_h_w, m->init_h_b));
    s->c = heed_tanh(g, heed_linear(g, mean, m->init_c_w, m->init_c_b));
}

typedef struct {
    bool sample;            /* hard attention: a sampled cell (else the soft context) */
    heed_hard_outputs hard; /* filled when sample */
    heed_tensor *alpha;     /* this step's weights [n, N] */
} step_out;

/* One word: prev[n] in, logits [n, vocab] out; s advances. */
static heed_tensor *dec_step(heed_graph *g, const heed_caption *m, dec_state *s, const int64_t *prev, step_out *o) {
    heed_tensor *emb = heed_embedding(g, m->embed, prev, HEED_SHAPE(s->n), -1);
    heed_tensor *scores = heed_additive_score(g, s->h, s->keys, &m->attn.params, NULL, NULL);
    heed_tensor *ctx;
    if (o->sample) {
        ctx = heed_hard_attend(g, scores, s->ann, NULL, &o->hard);
        o->alpha = o->hard.weights;
    } else {
        ctx = heed_attend(g, scores, s->ann, NULL, &o->alpha);
    }
    heed_tensor *beta = heed_sigmoid(g, heed_linear(g, s->h, m->beta_w, m->beta_b)); /* [n, 1] */
    heed_tensor *z = heed_mul(g, ctx, beta);
    heed_tensor *in = heed_concat(g, (heed_tensor *[]){emb, z}, 2, 1);
    s->h = heed_lstm_cell_step(g, &m->cell, in, s->h, s->c, &s->c);
    heed_tensor *deep =
        heed_add(g, emb, heed_add(g, heed_linear(g, s->h, m->out_h, NULL), heed_linear(g, z, m->out_z, NULL)));
    return heed_linear(g, heed_dropout(g, deep, m->cfg.dropout), m->out_w, m->out_b);
}

/* A constant tensor of n values src[0], src[stride], ... */
static heed_tensor *mask_tensor(heed_graph *g, heed_dtype dt, heed_shape shape, const double *src, int64_t stride,
                                int64_t n) {
    heed_tensor *t = heed_zeros(g, dt, shape);
    for (int64_t i = 0; t && i < n; i++) {
        if (dt == HEED_F32) ((float *)t->data)[i] = (float)src[i * stride];
        else ((double *)t->data)[i] = src[i * stride];
    }
    return t;
}

heed_tensor *heed_caption_loss(heed_graph *g, const heed_caption *m, heed_tensor *ann, const int64_t *targets,
                               int64_t L, const heed_caption_loss_opts *opts, heed_tensor **weights, double stats[2]) {
    const char *op = MODEL "_loss";
    if (!check_annotations(g, m, ann, op)) return NULL;
    heed_caption_loss_opts o = opts ? *opts : (heed_caption_loss_opts){0};
    bool hard = o.attention == HEED_CAPTION_HARD, training = heed_graph_training(g);
    if (!targets || L < 1 || !(o.lambda >= 0 && isfinite(o.lambda)) || !(o.entropy >= 0 && isfinite(o.entropy)) ||
        !(o.soft_mix >= 0 && o.soft_mix <= 1) || o.bos < 0 || o.bos >= m->cfg.vocab ||
        (o.attention != HEED_CAPTION_SOFT && !hard) || (hard && training && !o.hard))
        return heed_graph_fail(
                   g, HEED_ERR_ARG,
                   "%s: targets %s, L %lld, lambda %g, entropy %g, soft_mix %g, bos %lld, attention %d, hard "
                   "state %s: need targets, L >= 1, lambda and entropy finite >= 0, soft_mix in [0, 1], bos a "
                   "token, attention soft or hard, and the hard state for hard attention in training",
                   op, targets ? "given" : "NULL", (long long)L, o.lambda, o.entropy, o.soft_mix, (long long)o.bos,
                   (int)o.attention, o.hard ? "given" : "NULL"),
               NULL;
    int64_t B = ann->shape[0], V = m->cfg.vocab;
    heed_dtype dt = ann->dtype;
    for (int64_t i = 0; i < B * L; i++)
        if (targets[i] != IGNORE && (targets[i] < 0 || targets[i] >= V))
            return heed_graph_fail(g, HEED_ERR_ARG, "%s: targets[%lld] = %lld (a token 0..%lld, or -100 for padding)",
                                   op, (long long)i, (long long)targets[i], (long long)V - 1),
                   NULL;
    heed_tensor **logits = heed_graph_alloc(g, (size_t)L * sizeof *logits);
    heed_tensor **alphas = heed_graph_alloc(g, (size_t)L * sizeof *alphas);
    int64_t *prev = heed_graph_alloc(g, (size_t)B * sizeof *prev);
    double *live = heed_graph_alloc(g, (size_t)(B * L) * sizeof *live); /* 1 where step t of row b is real */
    if (!logits || !alphas || !prev || !live) return NULL;
    for (int64_t i = 0; i < B * L; i++) live[i] = targets[i] != IGNORE;
    dec_state s;
    dec_start(g, m, ann, &s);
    heed_rng r = heed_rng_make(o.seed, o.stream);
    heed_tensor *log_prob = NULL, *entropy = NULL; /* hard: sums over the sampled steps [B] */
    double sampled_steps = 0;
    for (int64_t t = 0; t < L; t++) {
        for (int64_t b = 0; b < B; b++) {
            int64_t y = t == 0 ? o.bos : targets[b * L + t - 1];
            prev[b] = y == IGNORE ? o.bos : y; /* past the end: any token, its outputs are ignored */
        }
        /* hard attention in eval mode uses the expected (soft) context, as decoding does */
        step_out so = {.sample = hard && training && !(o.soft_mix > 0 && heed_rng_uniform(&r) < o.soft_mix)};
        if (!(logits[t] = dec_step(g, m, &s, prev, &so))) return NULL;
        alphas[t] = so.alpha;
        if (so.sample) {
            heed_tensor *mask = mask_tensor(g, dt, HEED_SHAPE(B), live + t, L, B);
            if (!mask) return NULL;
            for (int64_t b = 0; b < B; b++) sampled_steps += live[b * L + t];
            heed_tensor *lp = heed_mul(g, so.hard.log_prob, mask), *en = heed_mul(g, so.hard.entropy, mask);
            log_prob = log_prob ? heed_add(g, log_prob, lp) : lp;
            entropy = entropy ? heed_add(g, entropy, en) : en;
        }
    }
    heed_tensor *all = heed_reshape(g, heed_stack(g, logits, (int)L, 1), HEED_SHAPE(B * L, V));
    heed_tensor *alpha = heed_stack(g, alphas, (int)L, 1); /* [B, L, N] */
    if (weights) *weights = alpha;
    heed_tensor *ce = heed_cross_entropy(g, all, targets, &(heed_ce_opts){.ignore_index = IGNORE});
    /* lambda / B sum_b sum_i (1 - sum_t alpha_bti)^2 over the real steps */
    heed_tensor *mask = mask_tensor(g, dt, HEED_SHAPE(B, L, 1), live, 1, B * L);
    if (!mask) return NULL;
    heed_tensor *cover = heed_sum(g, heed_mul(g, alpha, mask), 1, false); /* [B, N] */
    heed_tensor *gap = heed_add_scalar(g, heed_neg(g, cover), 1);
    heed_tensor *reg = heed_scale(g, heed_sum_all(g, heed_mul(g, gap, gap)), 1.0 / (double)B);
    heed_tensor *loss = heed_add(g, ce, heed_scale(g, reg, o.lambda));
    if (!loss) return NULL;
    if (stats) stats[0] = heed_get(ce, 0), stats[1] = heed_get(reg, 0);
    if (log_prob) { /* the score-function estimator with rewards r_b = log p(y_b | s, a) */
        heed_tensor *tok =
            heed_cross_entropy(g, all, targets, &(heed_ce_opts){.ignore_index = IGNORE, .reduction = HEED_REDUCE_NONE});
        double *reward = heed_graph_alloc(g, (size_t)B * sizeof *reward), baseline = 0;
        if (!tok || !reward) return NULL;
        for (int64_t b = 0; b < B; b++) {
            double steps = 0;
            reward[b] = 0;
            for (int64_t t = 0; t < L; t++) reward[b] -= heed_get(tok, b * L + t), steps += live[b * L + t];
            reward[b] /= steps > 0 ? steps : 1;
        }
        bool first = o.hard->baseline.updates == 0;
        heed_status st = heed_baseline_update(heed_graph_ctx(g), &o.hard->baseline, reward, B, &baseline);
        if (st != HEED_OK) return heed_graph_fail(g, st, "%s: %s", op, heed_ctx_error(heed_graph_ctx(g))), NULL;
        if (first) { /* the average starts from the first batch's mean, not from 0 */
            baseline = 0;
            for (int64_t b = 0; b < B; b++) baseline += reward[b] / (double)B;
            o.hard->baseline.value = baseline;
        }
        loss = heed_add(g, loss, heed_reinforce_loss(g, log_prob, reward, baseline));
        if (o.entropy > 0 && sampled_steps > 0)
            loss = heed_sub(g, loss, heed_scale(g, heed_sum_all(g, entropy), o.entropy / sampled_steps));
    }
    return loss;
}

/* ---------------------------------------------------------------- decoding */

typedef struct {
    const heed_caption *m;
    dec_state s;
} decode_ctx;

static heed_tensor *decode_step(heed_graph *g, void *user, int64_t n, const int64_t *prev, const int64_t *parent,
                                heed_tensor **attention) {
    decode_ctx *d = user;
    bool same = n == d->s.n;
    for (int64_t i = 0; same && i < n; i++) same = parent[i] == i;
    if (!same) { /* each live row continues its parent's state */
        d->s.h = heed_index_select(g, d->s.h, 0, parent, n);
        d->s.c = heed_index_select(g, d->s.c, 0, parent, n);
        d->s.ann = heed_index_select(g, d->s.ann, 0, parent, n);
        d->s.keys = heed_index_select(g, d->s.keys, 0, parent, n);
        d->s.n = n;
    }
    step_out so = {0};
    heed_tensor *logits = dec_step(g, d->m, &d->s, prev, &so);
    *attention = so.alpha;
    return heed_log_softmax(g, logits);
}

heed_status heed_caption_decode(heed_graph *g, const heed_caption *m, heed_tensor *ann, const heed_decode_opts *opts,
                                heed_decode_result *out) {
    const char *op = MODEL "_decode";
    if (out) *out = (heed_decode_result){0};
    if (!check_annotations(g, m, ann, op)) return heed_graph_status(g);
    if (!opts || !out) return heed_graph_fail(g, HEED_ERR_ARG, "%s: opts and out must not be NULL", op);
    bool training = heed_graph_training(g);
    heed_graph_set_training(g, false);
    heed_no_grad_begin(g);
    decode_ctx d = {.m = m};
    dec_start(g, m, ann, &d.s);
    if (heed_graph_ok(g)) heed_decode(g, d.s.n, decode_step, &d, opts, out);
    heed_no_grad_end(g);
    heed_graph_set_training(g, training);
    return heed_graph_status(g);
}

/* ---------------------------------------------------------------- pointing */

/* Whether cell i's centre ((col + 0.5) width / gw, (row + 0.5) height / gh) is in the box. */
static bool cell_inside(int64_t i, int64_t gh, int64_t gw, int64_t height, int64_t width, int64_t x0, int64_t y0,
                        int64_t x1, int64_t y1) {
    double cx = ((double)(i % gw) + 0.5) * (double)width / (double)gw;
    double cy = ((double)(i / gw) + 0.5) * (double)height / (double)gh;
    return cx >= (double)x0 && cx < (double)x1 && cy >= (double)y0 && cy < (double)y1;
}

heed_status heed_caption_pointing(heed_ctx *ctx, const float *w, int64_t gh, int64_t gw, int64_t height, int64_t width,
                                  int64_t x0, int64_t y0, int64_t x1, int64_t y1, bool *hit, double *mass) {
    static const char *fn = "heed_caption_pointing";
    if (!w) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: weights is NULL", fn);
    if (gh < 1 || gw < 1 || height < gh || width < gw)
        return heed_ctx_fail(
            ctx, HEED_ERR_ARG,
            "%s: a %lldx%lld grid on a %lldx%lld image (need 1 <= grid_h <= height, 1 <= grid_w <= width)", fn,
            (long long)gh, (long long)gw, (long long)height, (long long)width);
    if (!(x0 < x1 && y0 < y1))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: box [%lld, %lld) x [%lld, %lld) is empty (need x0 < x1, y0 < y1)",
                             fn, (long long)x0, (long long)x1, (long long)y0, (long long)y1);
    int64_t best = 0;
    double in = 0;
    bool nan = false;
    for (int64_t i = 0; i < gh * gw; i++) {
        nan = nan || isnan(w[i]);
        if (w[i] > w[best]) best = i;
        if (cell_inside(i, gh, gw, height, width, x0, y0, x1, y1)) in += w[i];
    }
    if (hit) *hit = !nan && cell_inside(best, gh, gw, height, width, x0, y0, x1, y1);
    if (mass) *mass = in;
    return HEED_OK;
}
