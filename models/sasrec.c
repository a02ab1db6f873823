/* SASRec (Kang and McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018), as
 * its reference code builds it:
 *
 *   x_0 = dropout(E[s] sqrt(d) + P[p])       s left padded; p = position (1..maxlen), 0 at
 *                                             padding, and row 0 of E and of P is zero, so
 *                                             padded rows of x_0 are 0 (the timeline mask)
 *   per block:  z = LN_1(x)
 *               a = causal_attention(z W_q + b_q, x W_k + b_k, x W_v + b_v)   padded keys masked,
 *                   dropout on the attention weights
 *               y = LN_2(z + a)
 *               x = y + dropout(dropout(relu(y W_1 + b_1)) W_2 + b_2)
 *   h = LN_out(x)                                          [B, N, d]
 *   score(item i at position t) = h[b,t] . E[i]            (the item table is shared)
 *   loss = -(sum_t log sigmoid(h.E[pos]) + log(1 - sigmoid(h.E[neg]))) / #targets
 *
 * The reference multiplies x by the timeline mask after every block too. With padded keys
 * masked in the attention that changes nothing at real positions: a padded row reaches a
 * real one only as a key, and masked keys get weight 0; so the rows of h at padded positions
 * are left unspecified and the multiplications are skipped. For the same reason a batch may
 * drop leading columns that are padding in every row (len < maxlen): positions count from
 * the right, and the outputs at real positions are those of the full width.
 *
 * Built from heed's ops plus one fused op for the loss; the test checks the gradient of the
 * whole model against central differences in f64. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include <heed/attention.h>
#include <heed/core.h>
#include <heed/dropout.h>
#include <heed/elementwise.h>
#include <heed/extend.h>
#include <heed/matmul.h>
#include <heed/norm.h>
#include <heed/sasrec.h>
#include <heed/shape.h>

#include <math.h>
#include <stdio.h>

#define MODEL "heed_sasrec"

static heed_tensor *param(heed_params *P, heed_status *st, const char *name, heed_shape shape, heed_init init) {
    if (*st != HEED_OK) return NULL;
    heed_tensor *t = heed_param(P, name, shape, init);
    if (!t) *st = HEED_ERR_ARG;
    return t;
}

/* What the fused loss (below) saves for backward. */
typedef struct {
    int64_t n, d;
    int64_t *row, *pos, *neg; /* [n]: the row of h, the positive and the negative item */
    double *sp, *sn;          /* [n]: sigma(s+), sigma(s-) */
} bce_saved;

#define T float
#define FN(name) name##_f32
#include "sasrec.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "sasrec.c"
#undef T
#undef FN

heed_status heed_sasrec_declare(heed_sasrec *m, heed_params *P, const heed_sasrec_config *cfg) {
    heed_ctx *ctx = heed_params_ctx(P);
    if (!m || !P || !cfg) return heed_ctx_fail(ctx, HEED_ERR_ARG, MODEL "_declare: model, store or config is NULL");
    const heed_sasrec_config c = *cfg;
    if (c.n_items < 1 || c.maxlen < 1 || c.hidden < 1 || c.blocks < 0 || c.blocks > HEED_SASREC_MAX_BLOCKS ||
        c.heads < 1 || c.hidden % c.heads != 0 || !(c.dropout >= 0 && c.dropout < 1) || c.ln_eps < 0)
        return heed_ctx_fail(ctx, HEED_ERR_ARG,
                             MODEL
                             "_declare: n_items %lld, maxlen %lld, hidden %lld, blocks %d, heads %d, dropout %g: need "
                             "n_items, maxlen, hidden >= 1, blocks in 0..%d, heads >= 1 dividing hidden, dropout in "
                             "[0, 1), ln_eps >= 0",
                             (long long)c.n_items, (long long)c.maxlen, (long long)c.hidden, c.blocks, c.heads,
                             c.dropout, HEED_SASREC_MAX_BLOCKS);
    *m = (heed_sasrec){.cfg = c, .params = P};
    if (m->cfg.ln_eps == 0) m->cfg.ln_eps = 1e-8;
    int64_t d = c.hidden;
    heed_status st = HEED_OK;
    heed_init xavier = heed_init_xavier_uniform(1.0), zeros = heed_init_zeros(), ones = heed_init_constant(1.0);
    m->item_emb = param(P, &st, "sasrec.item_emb", HEED_SHAPE(c.n_items + 1, d), xavier);
    m->pos_emb = param(P, &st, "sasrec.pos_emb", HEED_SHAPE(c.maxlen + 1, d), xavier);
    for (int b = 0; b < c.blocks; b++) {
        heed_sasrec_block *k = &m->block[b];
        char name[96];
#define BLOCK_PARAM(field, suffix, shape, init)                                                                        \
    snprintf(name, sizeof name, "sasrec.block%d.%s", b, suffix);                                                       \
    k->field = param(P, &st, name, shape, init)
        BLOCK_PARAM(attn_ln_g, "attn_ln.gamma", HEED_SHAPE(d), ones);
        BLOCK_PARAM(attn_ln_b, "attn_ln.beta", HEED_SHAPE(d), zeros);
        BLOCK_PARAM(wq, "attn.wq", HEED_SHAPE(d, d), xavier);
        BLOCK_PARAM(bq, "attn.bq", HEED_SHAPE(d), zeros);
        BLOCK_PARAM(wk, "attn.wk", HEED_SHAPE(d, d), xavier);
        BLOCK_PARAM(bk, "attn.bk", HEED_SHAPE(d), zeros);
        BLOCK_PARAM(wv, "attn.wv", HEED_SHAPE(d, d), xavier);
        BLOCK_PARAM(bv, "attn.bv", HEED_SHAPE(d), zeros);
        BLOCK_PARAM(ff_ln_g, "ff_ln.gamma", HEED_SHAPE(d), ones);
        BLOCK_PARAM(ff_ln_b, "ff_ln.beta", HEED_SHAPE(d), zeros);
        BLOCK_PARAM(w1, "ff.w1", HEED_SHAPE(d, d), xavier);
        BLOCK_PARAM(b1, "ff.b1", HEED_SHAPE(d), zeros);
        BLOCK_PARAM(w2, "ff.w2", HEED_SHAPE(d, d), xavier);
        BLOCK_PARAM(b2, "ff.b2", HEED_SHAPE(d), zeros);
#undef BLOCK_PARAM
    }
    m->out_ln_g = param(P, &st, "sasrec.out_ln.gamma", HEED_SHAPE(d), ones);
    m->out_ln_b = param(P, &st, "sasrec.out_ln.beta", HEED_SHAPE(d), zeros);
    if (st != HEED_OK) return st; /* heed_param left the message in the ctx */
    /* Row 0 of both tables is padding: zero, and the embedding op never updates it. */
    if (heed_params_dtype(P) == HEED_F32) sasrec_declare_kernel_f32(m, d);
    else sasrec_declare_kernel_f64(m, d);
    return HEED_OK;
}

/* Splits [B, N, d] into heads [B, H, N, d/H] (a view when H = 1). */
static heed_tensor *split_heads(heed_graph *g, heed_tensor *x, int64_t B, int64_t N, int64_t H, int64_t dh) {
    if (H == 1) return heed_reshape(g, x, HEED_SHAPE(B, 1, N, dh));
    heed_tensor *r = heed_reshape(g, x, HEED_SHAPE(B, N, H, dh));
    return heed_permute(g, r, (const int[]){0, 2, 1, 3});
}

static heed_tensor *merge_heads(heed_graph *g, heed_tensor *x, int64_t B, int64_t N, int64_t H, int64_t dh) {
    if (H == 1) return heed_reshape(g, x, HEED_SHAPE(B, N, dh));
    heed_tensor *p = heed_permute(g, x, (const int[]){0, 2, 1, 3});
    return heed_reshape(g, p, HEED_SHAPE(B, N, H * dh));
}

static bool check_ids(heed_graph *g, const char *op, const heed_sasrec *m, const int64_t *ids, int64_t n,
                      const char *what) {
    if (!ids) return heed_graph_fail(g, HEED_ERR_ARG, "%s: %s is NULL", op, what), false;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] > m->cfg.n_items)
            return heed_graph_fail(g, HEED_ERR_ARG, "%s: %s[%lld] = %lld is not an item id (0 = padding, 1..%lld)", op,
                                   what, (long long)i, (long long)ids[i], (long long)m->cfg.n_items),
                   false;
    return true;
}

static bool check_model(heed_graph *g, const char *op, const heed_sasrec *m) {
    if (!heed_graph_ok(g)) return false;
    if (!m || !m->item_emb) return heed_graph_fail(g, HEED_ERR_ARG, "%s: model is NULL or not initialised", op), false;
    return true;
}

heed_tensor *heed_sasrec_forward(heed_graph *g, const heed_sasrec *m, const int64_t *seq, int64_t batch, int64_t len,
                                 heed_tensor **weights) {
    const char *op = MODEL "_forward";
    if (!check_model(g, op, m)) return NULL;
    const heed_sasrec_config *c = &m->cfg;
    int64_t B = batch, N = len, d = c->hidden, H = c->heads, dh = d / H;
    if (B < 1) return heed_graph_fail(g, HEED_ERR_ARG, "%s: batch %lld (must be >= 1)", op, (long long)B), NULL;
    if (N < 1 || N > c->maxlen)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: len %lld (must be in 1..maxlen = %lld)", op, (long long)N,
                               (long long)c->maxlen),
               NULL;
    if (!check_ids(g, op, m, seq, B * N, "seq")) return NULL;
    heed_dtype dt = m->item_emb->dtype;

    /* Position ids (column t of N is position maxlen - N + t + 1; 0 at padding) and the
     * additive key bias: -inf at padded keys. */
    int64_t *pid = heed_graph_alloc(g, (size_t)(B * N) * sizeof *pid);
    heed_tensor *bias = heed_empty(g, dt, HEED_SHAPE(B, 1, 1, N));
    if (!pid || !bias) return NULL;
    if (dt == HEED_F32) sasrec_forward_kernel_f32(bias, B, N, pid, seq, c);
    else sasrec_forward_kernel_f64(bias, B, N, pid, seq, c);

    heed_tensor *x = heed_scale(g, heed_embedding(g, m->item_emb, seq, HEED_SHAPE(B, N), 0), sqrt((double)d));
    x = heed_add(g, x, heed_embedding(g, m->pos_emb, pid, HEED_SHAPE(B, N), 0));
    x = heed_dropout(g, x, c->dropout);
    for (int b = 0; b < c->blocks; b++) {
        const heed_sasrec_block *k = &m->block[b];
        heed_tensor *z = heed_layernorm(g, x, k->attn_ln_g, k->attn_ln_b, c->ln_eps);
        heed_tensor *q = split_heads(g, heed_linear(g, z, k->wq, k->bq), B, N, H, dh);
        heed_tensor *kk = split_heads(g, heed_linear(g, x, k->wk, k->bk), B, N, H, dh);
        heed_tensor *v = split_heads(g, heed_linear(g, x, k->wv, k->bv), B, N, H, dh);
        heed_attention_opts ao = {.causal = true, .bias = bias, .dropout = c->dropout};
        heed_tensor *a = merge_heads(g, heed_attention(g, q, kk, v, &ao, weights ? &weights[b] : NULL), B, N, H, dh);
        heed_tensor *y = heed_layernorm(g, heed_add(g, z, a), k->ff_ln_g, k->ff_ln_b, c->ln_eps);
        heed_tensor *f = heed_dropout(g, heed_relu(g, heed_linear(g, y, k->w1, k->b1)), c->dropout);
        f = heed_dropout(g, heed_linear(g, f, k->w2, k->b2), c->dropout);
        x = heed_add(g, y, f);
    }
    x = heed_layernorm(g, x, m->out_ln_g, m->out_ln_b, c->ln_eps);
    return heed_graph_ok(g) ? x : NULL;
}

static bool check_h(heed_graph *g, const char *op, const heed_sasrec *m, const heed_tensor *h, int rank) {
    if (!check_model(g, op, m) || !heed_check_tensor(g, op, h, "h")) return false;
    if (h->dtype != m->item_emb->dtype)
        return heed_graph_fail(g, HEED_ERR_DTYPE, "%s: h is %s but the model is %s (dtypes must match)", op,
                               h->dtype == HEED_F32 ? "f32" : "f64", m->item_emb->dtype == HEED_F32 ? "f32" : "f64"),
               false;
    bool ok = h->ndim == rank && h->shape[0] >= 1 && h->shape[rank - 1] == m->cfg.hidden &&
              (rank == 2 || (h->shape[1] >= 1 && h->shape[1] <= m->cfg.maxlen));
    char hs[64];
    if (!ok)
        heed_graph_fail(g, HEED_ERR_SHAPE, "%s: h%s must be %s (hidden %lld, maxlen %lld)", op, heed_shape_str(h, hs),
                        rank == 3 ? "[B, len <= maxlen, hidden]" : "[B, hidden]", (long long)m->cfg.hidden,
                        (long long)m->cfg.maxlen);
    return ok;
}

/* ---------------------------------------------------------------- the loss, fused
 *
 * For each target position i (pos_i != 0), s+ = h_i . E[pos_i] and s- = h_i . E[neg_i]:
 *   l_i = softplus(-s+) + softplus(s-)        (= -log sigma(s+) - log(1 - sigma(s-)))
 *   loss = sum_i l_i / n                        n = number of targets
 * Backward, g = d loss:  a_i = g (sigma(s+) - 1) / n,  b_i = g sigma(s-) / n
 *   dh_i += a_i E[pos_i] + b_i E[neg_i],   dE[pos_i] += a_i h_i,   dE[neg_i] += b_i h_i.
 * Only the target rows are touched; most of a left-padded batch is padding. */

static void loss_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *h = heed_node_input(nd, 0), *E = heed_node_input(nd, 1), *y = heed_node_output(nd, 0);
    const bce_saved *s = heed_node_saved(nd);
    void *gh_ = heed_grad_buffer(g, h), *gE_ = heed_grad_buffer(g, E);
    int64_t n = s->n, d = s->d;
    if (h->dtype == HEED_F32) loss_backward_kernel_f32(h, E, y, n, gh_, d, g, s, gE_);
    else loss_backward_kernel_f64(h, E, y, n, gh_, d, g, s, gE_);
}

static const heed_op op_loss = {MODEL "_loss", loss_backward};

heed_tensor *heed_sasrec_loss(heed_graph *g, const heed_sasrec *m, heed_tensor *h, const int64_t *pos,
                              const int64_t *neg) {
    const char *op = MODEL "_loss";
    if (!check_h(g, op, m, h, 3)) return NULL;
    int64_t B = h->shape[0], N = h->shape[1], d = h->shape[2];
    if (!check_ids(g, op, m, pos, B * N, "pos") || !check_ids(g, op, m, neg, B * N, "neg")) return NULL;
    int64_t n = 0;
    for (int64_t i = 0; i < B * N; i++) {
        if (pos[i] && !neg[i]) /* it would train the padding row, which stays zero */
            return heed_graph_fail(g, HEED_ERR_ARG, "%s: neg[%lld] is 0, the padding id, at a target (pos = %lld)", op,
                                   (long long)i, (long long)pos[i]),
                   NULL;
        n += pos[i] != 0;
    }
    if (n == 0)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: no target in the batch (every pos is 0, the padding id)", op),
               NULL;
    bce_saved *s = heed_graph_alloc(g, sizeof *s);
    heed_tensor *out = heed_empty(g, h->dtype, HEED_SCALAR);
    if (!s || !out) return NULL;
    *s = (bce_saved){.n = n, .d = d};
    s->row = heed_graph_alloc(g, (size_t)n * sizeof *s->row);
    s->pos = heed_graph_alloc(g, (size_t)n * sizeof *s->pos);
    s->neg = heed_graph_alloc(g, (size_t)n * sizeof *s->neg);
    s->sp = heed_graph_alloc(g, (size_t)n * sizeof *s->sp);
    s->sn = heed_graph_alloc(g, (size_t)n * sizeof *s->sn);
    double *term = heed_graph_alloc(g, (size_t)n * sizeof *term); /* summed in order: no team-size dependence */
    if (!s->row || !s->pos || !s->neg || !s->sp || !s->sn || !term) return NULL;
    for (int64_t i = 0, j = 0; i < B * N; i++)
        if (pos[i]) s->row[j] = i, s->pos[j] = pos[i], s->neg[j] = neg[i], j++;
    if (h->dtype == HEED_F32) sasrec_loss_kernel_f32(h, m, n, d, g, s, term, out);
    else sasrec_loss_kernel_f64(h, m, n, d, g, s, term, out);
    heed_tensor *in[2] = {h, m->item_emb};
    heed_node *nd = heed_record(g, &op_loss, 2, in, 1, &out);
    heed_node_set_saved(nd, s);
    return heed_graph_ok(g) ? out : NULL;
}

heed_tensor *heed_sasrec_last(heed_graph *g, const heed_sasrec *m, heed_tensor *h) {
    const char *op = MODEL "_last";
    if (!check_h(g, op, m, h, 3)) return NULL;
    int64_t B = h->shape[0], N = h->shape[1];
    return heed_reshape(g, heed_slice(g, h, 1, N - 1, N), HEED_SHAPE(B, m->cfg.hidden));
}

heed_tensor *heed_sasrec_score(heed_graph *g, const heed_sasrec *m, heed_tensor *h_last, const int64_t *items,
                               int64_t n_cands) {
    const char *op = MODEL "_score";
    if (!check_h(g, op, m, h_last, 2)) return NULL;
    int64_t B = h_last->shape[0], d = m->cfg.hidden;
    if (!items) return heed_linear(g, h_last, m->item_emb, NULL); /* [B, n_items + 1] */
    if (n_cands < 1)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: n_cands %lld (must be >= 1)", op, (long long)n_cands), NULL;
    if (!check_ids(g, op, m, items, B * n_cands, "items")) return NULL;
    heed_tensor *e = heed_embedding(g, m->item_emb, items, HEED_SHAPE(B, n_cands), -1); /* [B, C, d] */
    heed_tensor *s = heed_matmul(g, e, heed_reshape(g, h_last, HEED_SHAPE(B, d, 1)));   /* [B, C, 1] */
    return heed_reshape(g, s, HEED_SHAPE(B, n_cands));
}

heed_status heed_sasrec_width(heed_ctx *ctx, const int64_t *seq, int64_t batch, int64_t maxlen, int64_t *width) {
    static const char *fn = "heed_sasrec_width";
    if (!seq || !width) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: %s is NULL", fn, !seq ? "seq" : "width");
    if (batch < 1 || maxlen < 1)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: seq is [%lld, %lld] (batch and maxlen must be >= 1)", fn,
                             (long long)batch, (long long)maxlen);
    int64_t first = maxlen - 1; /* the leftmost column with an item in any row */
    for (int64_t b = 0; b < batch; b++)
        for (int64_t t = 0; t < first; t++)
            if (seq[b * maxlen + t]) {
                first = t;
                break;
            }
    *width = maxlen - first;
    return HEED_OK;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

static void FN(sasrec_declare_kernel)(heed_sasrec *m, int64_t d) {
    T *e = m->item_emb->data, *p = m->pos_emb->data;
    for (int64_t j = 0; j < d; j++) e[j] = p[j] = 0;
}

static void FN(sasrec_forward_kernel)(heed_tensor *bias, int64_t B, int64_t N, int64_t *pid, const int64_t *seq,
                                      const heed_sasrec_config *c) {
    T *bs = bias->data;
    for (int64_t i = 0; i < B * N; i++) {
        pid[i] = seq[i] != 0 ? c->maxlen - N + i % N + 1 : 0;
        bs[i] = seq[i] != 0 ? 0 : -INFINITY;
    }
}

static void FN(loss_backward_kernel)(heed_tensor *h, heed_tensor *E, heed_tensor *y, int64_t n, void *gh_, int64_t d,
                                     heed_graph *g, const bce_saved *s, void *gE_) {
    const T *H = h->data, *W = E->data;
    double go = (double)((const T *)y->grad)[0] / (double)n;
    if (gh_) {
        T *gh = gh_;
#pragma omp parallel for if (n * d > 65536) num_threads(heed_ctx_threads_now(heed_graph_ctx(g)))
        for (int64_t i = 0; i < n; i++) {
            T a = (T)(go * (s->sp[i] - 1)), b = (T)(go * s->sn[i]);
            T *dst = gh + s->row[i] * d;
            const T *ep = W + s->pos[i] * d, *en = W + s->neg[i] * d;
            for (int64_t k = 0; k < d; k++) dst[k] += a * ep[k] + b * en[k];
        }
    }
    if (gE_) { /* a scatter: items repeat, so one thread */
        T *gE = gE_;
        for (int64_t i = 0; i < n; i++) {
            T a = (T)(go * (s->sp[i] - 1)), b = (T)(go * s->sn[i]);
            const T *hi = H + s->row[i] * d;
            T *dp = gE + s->pos[i] * d, *dn = gE + s->neg[i] * d;
            for (int64_t k = 0; k < d; k++) dp[k] += a * hi[k];
            for (int64_t k = 0; k < d; k++) dn[k] += b * hi[k];
        }
    }
}

static void FN(sasrec_loss_kernel)(heed_tensor *h, const heed_sasrec *m, int64_t n, int64_t d, heed_graph *g,
                                   bce_saved *s, double *term, heed_tensor *out) {
    const T *H = h->data, *W = m->item_emb->data;
#pragma omp parallel for if (n * d > 65536) num_threads(heed_ctx_threads_now(heed_graph_ctx(g)))
    for (int64_t i = 0; i < n; i++) {
        const T *hi = H + s->row[i] * d, *ep = W + s->pos[i] * d, *en = W + s->neg[i] * d;
        double a = 0, b = 0;
        for (int64_t k = 0; k < d; k++) a += (double)hi[k] * ep[k], b += (double)hi[k] * en[k];
        term[i] = heed_scalar_softplus(-a) + heed_scalar_softplus(b);
        s->sp[i] = heed_scalar_sigmoid(a);
        s->sn[i] = heed_scalar_sigmoid(b);
    }
    double total = 0;
    for (int64_t i = 0; i < n; i++) total += term[i];
    ((T *)out->data)[0] = (T)(total / (double)n);
}
#endif
