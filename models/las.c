/* LAS: Listen, Attend and Spell (Chan et al. 2016) from heed's layers (include/heed/las.h).
 *
 * The listener is heed_lstm and heed_pyramid_lstm, batch-first with lengths; the speller
 * is two heed_lstm_cell_step per output step and heed_additive_attention with location
 * features (or Luong's local attention, heed_luong_local_attention) over the listener's outputs; training runs every step of a batch in one graph
 * (teacher forcing), decoding goes through heed_decode with the speller's state reordered
 * by heed_index_select. */
#include <heed/attention.h>
#include <heed/core.h>
#include <heed/decode.h>
#include <heed/dropout.h>
#include <heed/extend.h>
#include <heed/las.h>
#include <heed/layers.h>
#include <heed/loss.h>
#include <heed/matmul.h>
#include <heed/rnn.h>
#include <heed/shape.h>
#include <heed/softmax.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL "heed_las"
#define IGNORE (-100)

heed_status heed_las_declare(heed_las *m, heed_params *P, const heed_las_config *cfg) {
    if (!P) return HEED_ERR_ARG;
    heed_ctx *ctx = heed_params_ctx(P);
    if (!m || !cfg) return heed_ctx_fail(ctx, HEED_ERR_ARG, MODEL "_declare: model or config is NULL");
    heed_las_config c = *cfg;
    if (c.input_dim < 1 || c.listener_hidden < 1 || c.pyramid_layers < 1 || c.pyramid_layers > HEED_LAS_MAX_PYRAMID ||
        c.speller_hidden < 1 || c.embed_dim < 1 || c.attn_dim < 1 || c.vocab < 2 ||
        !(c.dropout >= 0 && c.dropout < 1) || (unsigned)c.attention > HEED_LAS_LOCAL_P || c.local_window < 0)
        return heed_ctx_fail(ctx, HEED_ERR_ARG,
                             MODEL
                             "_declare: input_dim %lld, listener_hidden %lld, pyramid_layers %d, speller_hidden %lld, "
                             "embed_dim %lld, attn_dim %lld, vocab %lld, dropout %g, attention %d, local_window %lld: "
                             "need sizes >= 1, pyramid_layers in 1..%d, vocab >= 2, dropout in [0, 1), attention "
                             "a heed_las_attention, local_window >= 0",
                             (long long)c.input_dim, (long long)c.listener_hidden, c.pyramid_layers,
                             (long long)c.speller_hidden, (long long)c.embed_dim, (long long)c.attn_dim,
                             (long long)c.vocab, c.dropout, (int)c.attention, (long long)c.local_window,
                             HEED_LAS_MAX_PYRAMID);
    *m = (heed_las){.cfg = c};
    int64_t H = c.listener_hidden, C = 2 * H, S = c.speller_hidden;
    heed_status st = HEED_OK;
    char name[64];
    for (int i = 0; i <= c.pyramid_layers && st == HEED_OK; i++) {
        snprintf(name, sizeof name, "las.listener.%d", i);
        heed_rnn_opts o = {.kind = HEED_RNN_LSTM,
                           .input_size = i == 0 ? c.input_dim : 2 * C,
                           .hidden_size = H,
                           .bidirectional = true,
                           .batch_first = true,
                           .forget_bias = 1.0};
        st = heed_rnn_declare(&m->listener[i], P, name, &o);
    }
    if (st == HEED_OK &&
        !(m->embed = heed_param(P, "las.embed", HEED_SHAPE(c.vocab, c.embed_dim), heed_init_normal(0, 1))))
        st = HEED_ERR_ARG;
    for (int i = 0; i < 2 && st == HEED_OK; i++) {
        snprintf(name, sizeof name, "las.speller.%d", i);
        heed_rnn_opts o = {.kind = HEED_RNN_LSTM,
                           .input_size = i == 0 ? c.embed_dim + C : S,
                           .hidden_size = S,
                           .forget_bias = 1.0};
        st = heed_rnn_cell_declare(&m->cell[i], P, name, &o);
    }
    if (st == HEED_OK && c.attention == HEED_LAS_LOCATION)
        st = heed_additive_declare(&m->attn, P, "las.attention",
                                   &(heed_additive_config){.query_dim = S,
                                                           .key_dim = C,
                                                           .attn_dim = c.attn_dim,
                                                           .loc_channels = c.loc_channels,
                                                           .loc_kernel = c.loc_kernel,
                                                           .bias = true});
    double rk = 1 / sqrt((double)C), rs = 1 / sqrt((double)S), ra = 1 / sqrt((double)c.attn_dim);
    if (st == HEED_OK && c.attention != HEED_LAS_LOCATION &&
        !(m->local_w = heed_param(P, "las.local.weight", HEED_SHAPE(S, C), heed_init_uniform(-rk, rk))))
        st = HEED_ERR_ARG;
    if (st == HEED_OK && c.attention == HEED_LAS_LOCAL_P &&
        (!(m->local_wp =
               heed_param(P, "las.local.position.weight", HEED_SHAPE(c.attn_dim, S), heed_init_uniform(-rs, rs))) ||
         !(m->local_vp = heed_param(P, "las.local.position.v", HEED_SHAPE(c.attn_dim), heed_init_uniform(-ra, ra)))))
        st = HEED_ERR_ARG;
    double r = 1 / sqrt((double)(S + C));
    if (st == HEED_OK &&
        (!(m->out_w = heed_param(P, "las.out.weight", HEED_SHAPE(c.vocab, S + C), heed_init_uniform(-r, r))) ||
         !(m->out_b = heed_param(P, "las.out.bias", HEED_SHAPE(c.vocab), heed_init_uniform(-r, r)))))
        st = HEED_ERR_ARG;
    return st;
}

static bool check_model(heed_graph *g, const char *op, const heed_las *m) {
    if (!heed_graph_ok(g)) return false;
    if (!m || !m->embed) return heed_graph_fail(g, HEED_ERR_ARG, "%s: model is NULL or not initialised", op), false;
    return true;
}

heed_status heed_las_listen(heed_graph *g, const heed_las *m, heed_tensor *x, const int64_t *lengths,
                            heed_las_encoding *e) {
    const char *op = MODEL "_listen";
    if (!check_model(g, op, m) || !heed_check_tensor(g, op, x, "x")) return heed_graph_status(g);
    if (!e) return heed_graph_fail(g, HEED_ERR_ARG, "%s: e is NULL", op);
    *e = (heed_las_encoding){0};
    if (x->ndim != 3 || x->shape[0] < 1 || x->shape[1] < 1 || x->shape[2] != m->cfg.input_dim)
        return heed_graph_fail(g, HEED_ERR_SHAPE,
                               "%s: x has %d dims [%lld, %lld, ...]: must be [B, T, input_dim = %lld]", op, x->ndim,
                               (long long)x->shape[0], (long long)(x->ndim > 1 ? x->shape[1] : 0),
                               (long long)m->cfg.input_dim);
    int64_t B = x->shape[0], T = x->shape[1];
    for (int64_t b = 0; lengths && b < B; b++)
        if (lengths[b] < 1 || lengths[b] > T)
            return heed_graph_fail(g, HEED_ERR_ARG, "%s: lengths[%lld] = %lld (must be in 1..T = %lld)", op,
                                   (long long)b, (long long)lengths[b], (long long)T);
    int64_t *len = heed_graph_alloc(g, (size_t)B * sizeof *len);
    if (!len) return heed_graph_status(g);
    for (int64_t b = 0; b < B; b++) len[b] = lengths ? lengths[b] : T;
    heed_tensor *h = heed_lstm(g, &m->listener[0], x, NULL, NULL, len, NULL, NULL);
    for (int i = 1; i <= m->cfg.pyramid_layers && h; i++) { /* each layer's lengths in their own array */
        int64_t *half = heed_graph_alloc(g, (size_t)B * sizeof *half);
        if (!half) return heed_graph_status(g);
        h = heed_pyramid_lstm(g, &m->listener[i], h, len, half, NULL, NULL);
        len = half;
    }
    if (!h) return heed_graph_status(g);
    e->enc = h;
    e->keys = m->cfg.attention == HEED_LAS_LOCATION ? heed_additive_keys(g, h, m->attn.w_k, NULL) : NULL;
    e->lengths = len;
    e->batch = B;
    e->frames = h->shape[1];
    return heed_graph_status(g);
}

heed_status heed_las_start(heed_graph *g, const heed_las *m, const heed_las_encoding *e, heed_las_state *s) {
    const char *op = MODEL "_start";
    if (!check_model(g, op, m)) return heed_graph_status(g);
    if (!e || !e->enc || !s) return heed_graph_fail(g, HEED_ERR_ARG, "%s: encoding or state is NULL", op);
    heed_dtype dt = m->embed->dtype;
    int64_t B = e->batch, N = e->frames, S = m->cfg.speller_hidden;
    for (int i = 0; i < 2; i++)
        s->h[i] = heed_zeros(g, dt, HEED_SHAPE(B, S)), s->c[i] = heed_zeros(g, dt, HEED_SHAPE(B, S));
    s->context = heed_zeros(g, dt, HEED_SHAPE(B, 2 * m->cfg.listener_hidden));
    s->weights = heed_zeros(g, dt, HEED_SHAPE(B, N));
    if (!s->weights) return heed_graph_status(g);
    for (int64_t b = 0; b < B; b++) { /* all weight on the first frame */
        if (dt == HEED_F32) ((float *)s->weights->data)[b * N] = 1;
        else ((double *)s->weights->data)[b * N] = 1;
    }
    s->step = 0;
    return heed_graph_status(g);
}

heed_tensor *heed_las_step(heed_graph *g, const heed_las *m, const heed_las_encoding *e, heed_las_state *s,
                           const int64_t *prev) {
    const char *op = MODEL "_step";
    if (!check_model(g, op, m)) return NULL;
    if (!e || !s || !prev || !s->weights)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: encoding, state or prev is NULL", op), NULL;
    int64_t B = e->batch;
    for (int64_t b = 0; b < B; b++)
        if (prev[b] < 0 || prev[b] >= m->cfg.vocab)
            return heed_graph_fail(g, HEED_ERR_ARG, "%s: prev[%lld] = %lld is not a token (0..%lld)", op, (long long)b,
                                   (long long)prev[b], (long long)m->cfg.vocab - 1),
                   NULL;
    heed_tensor *emb = heed_embedding(g, m->embed, prev, HEED_SHAPE(B), -1);
    heed_tensor *in = heed_concat(g, (heed_tensor *[]){emb, s->context}, 2, 1);
    s->h[0] = heed_lstm_cell_step(g, &m->cell[0], in, s->h[0], s->c[0], &s->c[0]);
    s->h[1] = heed_lstm_cell_step(g, &m->cell[1], s->h[0], s->h[1], s->c[1], &s->c[1]);
    heed_tensor *w = NULL;
    if (m->cfg.attention == HEED_LAS_LOCATION) {
        s->context = heed_additive_attention(g, s->h[1], e->keys, e->enc, &m->attn.params,
                                             m->attn.params.loc_filters ? s->weights : NULL, NULL, e->lengths, &w);
    } else {
        bool p = m->cfg.attention == HEED_LAS_LOCAL_P;
        heed_local_opts lo = {.kind = p ? HEED_LOCAL_P : HEED_LOCAL_M,
                              .D = m->cfg.local_window,
                              .step = s->step,
                              .w_p = m->local_wp,
                              .v_p = m->local_vp};
        s->context = heed_luong_local_attention(g, HEED_LUONG_GENERAL, s->h[1], e->enc, e->enc, m->local_w, NULL, &lo,
                                                e->lengths, &w);
    }
    s->weights = w;
    s->step++;
    heed_tensor *o = heed_dropout(g, heed_concat(g, (heed_tensor *[]){s->h[1], s->context}, 2, 1), m->cfg.dropout);
    return heed_linear(g, o, m->out_w, m->out_b);
}

/* A token drawn from softmax(logits row). */
static int64_t sample_row(const heed_tensor *logits, int64_t b, heed_rng *r) {
    int64_t V = logits->shape[1];
    double mx = -INFINITY, sum = 0;
    for (int64_t v = 0; v < V; v++) mx = fmax(mx, heed_get(logits, b * V + v));
    for (int64_t v = 0; v < V; v++) sum += exp(heed_get(logits, b * V + v) - mx);
    double u = heed_rng_uniform(r) * sum;
    for (int64_t v = 0; v < V; v++)
        if ((u -= exp(heed_get(logits, b * V + v) - mx)) < 0) return v;
    return V - 1;
}

heed_tensor *heed_las_loss(heed_graph *g, const heed_las *m, heed_tensor *x, const int64_t *lengths,
                           const int64_t *targets, int64_t L, const heed_las_loss_opts *opts, heed_tensor **weights) {
    const char *op = MODEL "_loss";
    if (!check_model(g, op, m)) return NULL;
    heed_las_loss_opts o = opts ? *opts : (heed_las_loss_opts){0};
    if (!targets || L < 1 || !(o.label_smoothing >= 0 && o.label_smoothing < 1) ||
        !(o.sampling >= 0 && o.sampling <= 1) || o.bos < 0 || o.bos >= m->cfg.vocab)
        return heed_graph_fail(
                   g, HEED_ERR_ARG,
                   "%s: targets %s, L %lld, label_smoothing %g, sampling %g, bos %lld: need targets, L >= 1, "
                   "smoothing in [0, 1), sampling in [0, 1], bos a token",
                   op, targets ? "given" : "NULL", (long long)L, o.label_smoothing, o.sampling, (long long)o.bos),
               NULL;
    heed_las_encoding e;
    if (heed_las_listen(g, m, x, lengths, &e) != HEED_OK) return NULL;
    int64_t B = e.batch, V = m->cfg.vocab;
    for (int64_t i = 0; i < B * L; i++)
        if (targets[i] != IGNORE && (targets[i] < 0 || targets[i] >= V))
            return heed_graph_fail(g, HEED_ERR_ARG, "%s: targets[%lld] = %lld (a token 0..%lld, or -100 for padding)",
                                   op, (long long)i, (long long)targets[i], (long long)V - 1),
                   NULL;
    heed_las_state s;
    heed_tensor **logits = heed_graph_alloc(g, (size_t)L * sizeof *logits), **ws = NULL;
    int64_t *prev = heed_graph_alloc(g, (size_t)B * sizeof *prev);
    if (weights && !(ws = heed_graph_alloc(g, (size_t)L * sizeof *ws))) return NULL;
    if (!logits || !prev || heed_las_start(g, m, &e, &s) != HEED_OK) return NULL;
    heed_rng r = heed_rng_make(o.seed, o.stream);
    for (int64_t t = 0; t < L; t++) {
        for (int64_t b = 0; b < B; b++) {
            int64_t y = t == 0 ? o.bos : targets[b * L + t - 1];
            if (y == IGNORE) y = o.bos; /* past the end: any token, its outputs are ignored */
            if (t > 0 && o.sampling > 0 && heed_rng_uniform(&r) < o.sampling) y = sample_row(logits[t - 1], b, &r);
            prev[b] = y;
        }
        logits[t] = heed_las_step(g, m, &e, &s, prev);
        if (!logits[t]) return NULL;
        if (ws) ws[t] = s.weights;
    }
    heed_tensor *all = heed_reshape(g, heed_stack(g, logits, (int)L, 1), HEED_SHAPE(B * L, V));
    if (weights) *weights = heed_stack(g, ws, (int)L, 1);
    return heed_cross_entropy(g, all, targets,
                              &(heed_ce_opts){.ignore_index = IGNORE, .label_smoothing = o.label_smoothing});
}

/* ---------------------------------------------------------------- decoding */

typedef struct {
    const heed_las *m;
    heed_las_encoding e; /* rows follow the live hypotheses */
    heed_las_state s;
    int64_t *lengths; /* [B * beam] */
} decode_ctx;

static heed_tensor *rows(heed_graph *g, heed_tensor *t, const int64_t *parent, int64_t n) {
    return heed_index_select(g, t, 0, parent, n);
}

static heed_tensor *decode_step(heed_graph *g, void *user, int64_t n, const int64_t *prev, const int64_t *parent,
                                heed_tensor **attention) {
    decode_ctx *d = user;
    bool same = n == d->e.batch;
    for (int64_t i = 0; same && i < n; i++) same = parent[i] == i;
    if (!same) { /* the state of each live row is its parent's */
        for (int i = 0; i < 2; i++)
            d->s.h[i] = rows(g, d->s.h[i], parent, n), d->s.c[i] = rows(g, d->s.c[i], parent, n);
        d->s.context = rows(g, d->s.context, parent, n);
        d->s.weights = rows(g, d->s.weights, parent, n);
        d->e.enc = rows(g, d->e.enc, parent, n);
        if (d->e.keys) d->e.keys = rows(g, d->e.keys, parent, n);
        int64_t *len = heed_graph_alloc(g, (size_t)n * sizeof *len);
        if (!len) return NULL;
        for (int64_t i = 0; i < n; i++) len[i] = d->e.lengths[parent[i]];
        d->e.lengths = len;
        d->e.batch = n;
    }
    heed_tensor *logits = heed_las_step(g, d->m, &d->e, &d->s, prev);
    *attention = d->s.weights;
    return heed_log_softmax(g, logits);
}

heed_status heed_las_decode(heed_graph *g, const heed_las *m, heed_tensor *x, const int64_t *lengths,
                            const heed_decode_opts *opts, heed_decode_result *out) {
    const char *op = MODEL "_decode";
    if (out) *out = (heed_decode_result){0};
    if (!check_model(g, op, m)) return heed_graph_status(g);
    if (!opts || !out) return heed_graph_fail(g, HEED_ERR_ARG, "%s: opts and out must not be NULL", op);
    bool training = heed_graph_training(g);
    heed_graph_set_training(g, false);
    heed_no_grad_begin(g);
    decode_ctx d = {.m = m};
    heed_decode_opts o = *opts;
    heed_status st = heed_las_listen(g, m, x, lengths, &d.e);
    int64_t *max_lens = NULL;
    if (st == HEED_OK && !o.max_lens && o.max_len == 0) {
        max_lens = heed_graph_alloc(g, (size_t)d.e.batch * sizeof *max_lens);
        for (int64_t b = 0; max_lens && b < d.e.batch; b++) max_lens[b] = 2 * d.e.lengths[b] + 10;
        o.max_lens = max_lens;
    }
    if (st == HEED_OK && heed_las_start(g, m, &d.e, &d.s) == HEED_OK)
        st = heed_decode(g, d.e.batch, decode_step, &d, &o, out);
    heed_no_grad_end(g);
    heed_graph_set_training(g, training);
    return heed_graph_status(g);
}
