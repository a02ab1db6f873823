/* LSTM and GRU cells: one time step as one fused op (torch.nn.LSTMCell / GRUCell), for
 * step-by-step decoders. Forward: x W_ih^T (and for the LSTM h W_hh^T) accumulated by
 * GEMM into one gate buffer (the GRU keeps h W_hh^T apart: r multiplies its n block), then
 * one kernel adds the biases and computes all gates (ops/rnn/gates.c).
 * Backward: the kernel's analytic gate gradients dA, then GEMMs:
 *   dx += dA_i W_ih,  dh += dA_h W_hh (+ dh z for the GRU),  dc += dc' f,
 *   dW_ih += dA_i^T x,  dW_hh += dA_h^T h,  db_ih += sum_rows dA_i,  db_hh += sum_rows dA_h
 * where dA_i = dA_h = dA for the LSTM and the GRU's differ in the n block (rnn.h). */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "rnn.h"
#include "../gemm.h"

#include <math.h>
#include <stdio.h>

typedef struct {
    heed_rnn_kind kind;
    heed_tensor *x, *h, *c, *w_ih, *w_hh, *b_ih, *b_hh; /* h, c, biases may be NULL */
    void *gates;                                        /* activations [B, 4H] */
} cell_saved;

static const char *cell_name(heed_rnn_kind k) { return k == HEED_RNN_LSTM ? "heed_lstm_cell" : "heed_gru_cell"; }

#define T float
#define FN(name) name##_f32
#include "cell.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "cell.c"
#undef T
#undef FN

static void cell_backward(heed_graph *g, heed_node *n) {
    const cell_saved *sv = n->saved;
    heed_rnn_kind kind = sv->kind;
    heed_tensor *x = sv->x, *h = sv->h, *w_ih = sv->w_ih, *w_hh = sv->w_hh, *h1 = n->out[0];
    heed_dtype dt = x->dtype;
    size_t es = heed_dtype_size(dt);
    int G = heed__rnn_gates(kind);
    int64_t B = x->shape[0], I = x->shape[1], H = w_hh->shape[1], GH = G * H;
    bool lstm = kind == HEED_RNN_LSTM;
    void *dh = heed_graph_alloc(g, (size_t)(B * H) * es), *dc = lstm ? heed_graph_alloc(g, (size_t)(B * H) * es) : NULL;
    void *dgi = heed_graph_alloc(g, (size_t)(B * GH) * es),
         *dgh = lstm ? dgi : heed_graph_alloc(g, (size_t)(B * GH) * es);
    if (!heed_graph_ok(g)) return;
    memcpy(dh, h1->grad, (size_t)(B * H) * es);
    if (lstm) memcpy(dc, n->out[1]->grad, (size_t)(B * H) * es);
    rnn_bwd_step s = {.dtype = dt,
                      .kind = kind,
                      .B = B,
                      .H = H,
                      .gates = sv->gates,
                      .c_t = lstm ? n->out[1]->data : NULL,
                      .h_prev = h ? h->data : NULL,
                      .c_prev = sv->c ? sv->c->data : NULL,
                      .dh = dh,
                      .dc = dc,
                      .dgi = dgi,
                      .dgh = dgh};
    heed__rnn_bwd_all(&s, heed_ctx_threads_now(g->ctx));

    void *gx = heed_grad_buffer(g, x), *gh = heed_grad_buffer(g, h), *gc = heed_grad_buffer(g, sv->c);
    void *gw_ih = heed_grad_buffer(g, w_ih), *gw_hh = heed_grad_buffer(g, w_hh);
    void *gb_ih = heed_grad_buffer(g, sv->b_ih), *gb_hh = heed_grad_buffer(g, sv->b_hh);
    if (gx) heed_gemm(dt, false, false, B, I, GH, 1, dgi, GH, w_ih->data, I, 1, gx, I);
    if (gh) {
        heed_gemm(dt, false, false, B, H, GH, 1, dgh, GH, w_hh->data, H, 1, gh, H);
        /* the direct path h' = ... + z h: the kernel left dh' z in dh */
        if (!lstm && dt == HEED_F32) add_into_f32(gh, dh, B * H);
        else if (!lstm) add_into_f64(gh, dh, B * H);
    }
    if (gc && dt == HEED_F32) add_into_f32(gc, dc, B * H);
    else if (gc) add_into_f64(gc, dc, B * H);
    if (gw_ih) heed_gemm(dt, true, false, GH, I, B, 1, dgi, GH, x->data, I, 1, gw_ih, I);
    if (gw_hh && h) heed_gemm(dt, true, false, GH, H, B, 1, dgh, GH, h->data, H, 1, gw_hh, H);
    if (gb_ih) heed__rnn_colsum_add(dt, dgi, B, GH, GH, gb_ih, heed_ctx_threads_now(g->ctx));
    if (gb_hh) heed__rnn_colsum_add(dt, dgh, B, GH, GH, gb_hh, heed_ctx_threads_now(g->ctx));
}

static const heed_op op_lstm_cell = {"heed_lstm_cell", cell_backward};
static const heed_op op_gru_cell = {"heed_gru_cell", cell_backward};

static bool check_vec(heed_graph *g, const char *op, const heed_tensor *t, const char *name, const heed_tensor *x,
                      int64_t n) {
    if (!t) return true;
    if (!heed__check_like(g, op, t, name, x)) return false;
    if (t->ndim != 1 || t->shape[0] != n) {
        heed_graph_fail(g, HEED_ERR_SHAPE, "%s: %s%s must be [%lld] (gates x hidden size)", op, name, HEED_S(t),
                        (long long)n);
        return false;
    }
    return true;
}

static heed_tensor *cell(heed_graph *g, heed_rnn_kind kind, heed_tensor *x, heed_tensor *h, heed_tensor *c,
                         heed_tensor *w_ih, heed_tensor *w_hh, heed_tensor *b_ih, heed_tensor *b_hh,
                         heed_tensor **c_out) {
    const char *op = cell_name(kind);
    bool lstm = kind == HEED_RNN_LSTM;
    int G = heed__rnn_gates(kind);
    if (lstm && c_out) *c_out = NULL;
    if (!heed_check_tensor(g, op, x, "x") || !heed__check_like(g, op, w_ih, "w_ih", x) ||
        !heed__check_like(g, op, w_hh, "w_hh", x))
        return NULL;
    if (lstm && !c_out)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: c_out is NULL (it receives the new cell state)", op), NULL;
    if (x->ndim != 2) return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: x%s must be [batch, input]", op, HEED_S(x)), NULL;
    if (w_hh->ndim != 2 || w_hh->shape[1] < 1 || w_hh->shape[0] != G * w_hh->shape[1])
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: w_hh%s must be [%d*H, H]", op, HEED_S(w_hh), G), NULL;
    int64_t B = x->shape[0], I = x->shape[1], H = w_hh->shape[1], GH = G * H;
    if (w_ih->ndim != 2 || w_ih->shape[0] != GH)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: w_ih%s must be [%lld, input] ([%d*H, input] for w_hh%s)", op,
                               HEED_S(w_ih), (long long)GH, G, HEED_S(w_hh)),
               NULL;
    if (w_ih->shape[1] != I) /* the weights fit each other: x is the odd one out */
        return heed_graph_fail(g, HEED_ERR_SHAPE,
                               "%s: x%s has %lld input features but w_ih%s takes %lld (x must be [batch, %lld])", op,
                               HEED_S(x), (long long)I, HEED_S(w_ih), (long long)w_ih->shape[1],
                               (long long)w_ih->shape[1]),
               NULL;
    if (B < 1 || I < 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: x%s: batch and input size must be at least 1", op, HEED_S(x)),
               NULL;
    heed_tensor *states[2] = {h, c};
    const char *snames[2] = {"h", "c"};
    for (int k = 0; k < (lstm ? 2 : 1); k++) {
        heed_tensor *s = states[k];
        if (!s) continue;
        if (!heed__check_like(g, op, s, snames[k], x)) return NULL;
        if (s->ndim != 2 || s->shape[0] != B || s->shape[1] != H)
            return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: %s%s must be [%lld, %lld] (batch of x%s, hidden of w_hh%s)",
                                   op, snames[k], HEED_S(s), (long long)B, (long long)H, HEED_S(x), HEED_S(w_hh)),
                   NULL;
    }
    if (!check_vec(g, op, b_ih, "b_ih", x, GH) || !check_vec(g, op, b_hh, "b_hh", x, GH)) return NULL;

    heed_dtype dt = x->dtype;
    size_t es = heed_dtype_size(dt);
    int64_t shape[2] = {B, H};
    heed_tensor *h1 = heed__new(g, op, dt, 2, shape), *c1 = lstm ? heed__new(g, op, dt, 2, shape) : NULL;
    void *gates = heed_graph_alloc(g, (size_t)(B * 4 * H) * es);
    void *rec = !lstm && h ? heed_graph_alloc(g, (size_t)(B * GH) * es) : NULL;
    if (!heed_graph_ok(g)) return NULL;
    /* gates = x W_ih^T (+ h W_hh^T for the LSTM: its gates just add); the kernel adds the bias */
    void *bias = b_ih || b_hh ? heed_graph_alloc(g, (size_t)GH * es) : NULL;
    if (!heed_graph_ok(g)) return NULL;
    if (bias) heed__rnn_fold_bias(dt, kind, H, b_ih ? b_ih->data : NULL, b_hh ? b_hh->data : NULL, bias);
    heed_gemm(dt, false, true, B, GH, I, 1, x->data, I, w_ih->data, I, 0, gates, 4 * H);
    if (h && lstm) heed_gemm(dt, false, true, B, GH, H, 1, h->data, H, w_hh->data, H, 1, gates, 4 * H);
    if (rec) heed_gemm(dt, false, true, B, GH, H, 1, h->data, H, w_hh->data, H, 0, rec, GH);
    rnn_fwd_step s = {.dtype = dt,
                      .kind = kind,
                      .B = B,
                      .H = H,
                      .gates = gates,
                      .rec = rec,
                      .rec_ld = GH,
                      .rec_gs = H,
                      .bias = bias,
                      .b_hn = !lstm && b_hh ? (const char *)b_hh->data + (size_t)(2 * H) * es : NULL,
                      .h_prev = h ? h->data : NULL,
                      .c_prev = c ? c->data : NULL,
                      .h_out = h1->data,
                      .c_out = lstm ? c1->data : NULL};
    heed__rnn_fwd_all(&s, heed_ctx_threads_now(g->ctx));

    heed_tensor *in[7];
    int n_in = 0;
    heed_tensor *all[7] = {x, h, lstm ? c : NULL, w_ih, w_hh, b_ih, b_hh};
    for (int k = 0; k < 7; k++)
        if (all[k]) in[n_in++] = all[k];
    heed_tensor *out[2] = {h1, c1};
    heed_node *n = heed_record(g, lstm ? &op_lstm_cell : &op_gru_cell, n_in, in, lstm ? 2 : 1, out);
    if (n) {
        cell_saved *sv = heed_graph_alloc(g, sizeof *sv);
        if (sv)
            *sv = (cell_saved){.kind = kind,
                               .x = x,
                               .h = h,
                               .c = lstm ? c : NULL,
                               .w_ih = w_ih,
                               .w_hh = w_hh,
                               .b_ih = b_ih,
                               .b_hh = b_hh,
                               .gates = gates};
        n->saved = sv;
    }
    if (!heed_graph_ok(g)) return NULL;
    if (lstm) *c_out = c1;
    return h1;
}

heed_tensor *heed_lstm_cell(heed_graph *g, heed_tensor *x, heed_tensor *h, heed_tensor *c, heed_tensor *w_ih,
                            heed_tensor *w_hh, heed_tensor *b_ih, heed_tensor *b_hh, heed_tensor **c_out) {
    return cell(g, HEED_RNN_LSTM, x, h, c, w_ih, w_hh, b_ih, b_hh, c_out);
}

heed_tensor *heed_gru_cell(heed_graph *g, heed_tensor *x, heed_tensor *h, heed_tensor *w_ih, heed_tensor *w_hh,
                           heed_tensor *b_ih, heed_tensor *b_hh) {
    return cell(g, HEED_RNN_GRU, x, h, NULL, w_ih, w_hh, b_ih, b_hh, NULL);
}

/* The cell steps on a declared cell: its kind checked, its weights unpacked. */
static bool check_cell(heed_graph *g, const char *op, const heed_rnn_cell *cell, heed_rnn_kind kind) {
    if (!heed_graph_ok(g)) return false;
    if (!cell) return heed_graph_fail(g, HEED_ERR_ARG, "%s: cell is NULL", op), false;
    if (cell->kind != kind) {
        const char *other = kind == HEED_RNN_LSTM ? "heed_gru_cell_step" : "heed_lstm_cell_step";
        if (cell->kind == HEED_RNN_LSTM || cell->kind == HEED_RNN_GRU)
            heed_graph_fail(g, HEED_ERR_ARG, "%s: cell was declared as %s (use %s)", op,
                            cell->kind == HEED_RNN_LSTM ? "an LSTM" : "a GRU", other);
        else
            heed_graph_fail(g, HEED_ERR_ARG,
                            "%s: cell kind %d is neither HEED_RNN_LSTM nor HEED_RNN_GRU (not declared?)", op,
                            (int)cell->kind);
        return false;
    }
    return true;
}

heed_tensor *heed_lstm_cell_step(heed_graph *g, const heed_rnn_cell *cell, heed_tensor *x, heed_tensor *h,
                                 heed_tensor *c, heed_tensor **c_out) {
    if (c_out) *c_out = NULL;
    if (!check_cell(g, "heed_lstm_cell_step", cell, HEED_RNN_LSTM)) return NULL;
    return heed_lstm_cell(g, x, h, c, cell->w_ih, cell->w_hh, cell->b_ih, cell->b_hh, c_out);
}

heed_tensor *heed_gru_cell_step(heed_graph *g, const heed_rnn_cell *cell, heed_tensor *x, heed_tensor *h) {
    if (!check_cell(g, "heed_gru_cell_step", cell, HEED_RNN_GRU)) return NULL;
    return heed_gru_cell(g, x, h, cell->w_ih, cell->w_hh, cell->b_ih, cell->b_hh);
}

/* ---------------------------------------------------------------- declaring weights */

/* heed_param's limit (under 2^34 values), for the largest weight with `in` inputs: checked
 * before any weight is added, so a refused declaration adds nothing. */
static heed_status check_weight_size(heed_ctx *ctx, const char *fn, const heed_rnn_opts *o, int64_t in) {
    int64_t G = heed__rnn_gates(o->kind), H = o->hidden_size;
    if ((double)G * (double)H * (double)(in > H ? in : H) >= (double)((int64_t)1 << 34))
        return heed_ctx_fail(ctx, HEED_ERR_ARG,
                             "%s: %lld gates x hidden %lld x input %lld: a weight of 2^34 or more values", fn,
                             (long long)G, (long long)H, (long long)in);
    return HEED_OK;
}

heed_status heed__rnn_declare_set(heed_params *P, const char *fn, const char *prefix, const char *suffix,
                                  const heed_rnn_opts *o, int64_t in, heed_tensor *w[4]) {
    heed_ctx *ctx = heed_params_ctx(P);
    int G = heed__rnn_gates(o->kind);
    int64_t H = o->hidden_size;
    static const char *const base[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
    char names[4][256];
    int n_sets = o->no_bias ? 2 : 4;
    if (prefix && strlen(prefix) > 200)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: prefix is %zu characters (at most 200)", fn, strlen(prefix));
    for (int k = 0; k < n_sets; k++) {
        int len = snprintf(names[k], sizeof names[k], "%s%s%s%s", prefix ? prefix : "", prefix && *prefix ? "." : "",
                           base[k], suffix);
        if (len >= (int)sizeof names[k])
            return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: prefix '%s' is too long", fn, prefix);
        if (heed_params_find(P, names[k]))
            return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: a parameter named '%s' exists already", fn, names[k]);
    }
    if (check_weight_size(ctx, fn, o, in) != HEED_OK) return ctx->err.code;
    double bound = 1.0 / sqrt((double)H);
    heed_shape shapes[4] = {HEED_SHAPE(G * H, in), HEED_SHAPE(G * H, H), HEED_SHAPE(G * H), HEED_SHAPE(G * H)};
    w[2] = w[3] = NULL;
    for (int k = 0; k < n_sets; k++)
        if (!(w[k] = heed_param(P, names[k], shapes[k], heed_init_uniform(-bound, bound)))) return ctx->err.code;
    if (o->kind == HEED_RNN_LSTM && o->forget_bias != 0 && !o->no_bias) {
        if (heed_params_dtype(P) == HEED_F32) set_forget_bias_f32(w, H, o);
        else set_forget_bias_f64(w, H, o);
    }
    return HEED_OK;
}

/* Checks the options common to cells and layers. */
static heed_status check_opts(heed_ctx *ctx, const char *fn, const heed_rnn_opts *o) {
    if (o->kind != HEED_RNN_LSTM && o->kind != HEED_RNN_GRU)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: unknown kind %d (HEED_RNN_LSTM or HEED_RNN_GRU)", fn,
                             (int)o->kind);
    if (o->input_size < 1 || o->hidden_size < 1 || o->input_size > (1 << 24) || o->hidden_size > (1 << 24))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: input_size %lld, hidden_size %lld (each must be in 1..2^24)", fn,
                             (long long)o->input_size, (long long)o->hidden_size);
    if (!(o->dropout >= 0 && o->dropout < 1))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: dropout %g (must be in [0, 1))", fn, o->dropout);
    if (!isfinite(o->forget_bias))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: forget_bias %g is not finite", fn, o->forget_bias);
    return HEED_OK;
}

heed_status heed_rnn_cell_declare(heed_rnn_cell *cell, heed_params *P, const char *prefix, const heed_rnn_opts *opts) {
    const char *fn = "heed_rnn_cell_declare";
    heed_ctx *ctx = heed_params_ctx(P);
    if (!P) return HEED_ERR_ARG;
    if (!cell || !opts) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: cell or opts is NULL", fn);
    heed_status st = check_opts(ctx, fn, opts);
    if (st != HEED_OK) return st;
    heed_tensor *w[4];
    if ((st = heed__rnn_declare_set(P, fn, prefix, "", opts, opts->input_size, w)) != HEED_OK) return st;
    *cell = (heed_rnn_cell){.kind = opts->kind,
                            .input_size = opts->input_size,
                            .hidden_size = opts->hidden_size,
                            .w_ih = w[0],
                            .w_hh = w[1],
                            .b_ih = w[2],
                            .b_hh = w[3]};
    return HEED_OK;
}

heed_status heed_rnn_declare(heed_rnn *rnn, heed_params *P, const char *prefix, const heed_rnn_opts *opts) {
    const char *fn = "heed_rnn_declare";
    heed_ctx *ctx = heed_params_ctx(P);
    if (!P) return HEED_ERR_ARG;
    if (!rnn || !opts) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: rnn or opts is NULL", fn);
    heed_status st = check_opts(ctx, fn, opts);
    if (st != HEED_OK) return st;
    heed_rnn_opts o = *opts;
    if (o.layers == 0) o.layers = 1;
    if (o.layers < 0 || o.layers > HEED_RNN_MAX_LAYERS)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: layers = %d (must be 1..%d)", fn, o.layers, HEED_RNN_MAX_LAYERS);
    int D = o.bidirectional ? 2 : 1;
    if (prefix && strlen(prefix) > 200)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: prefix is %zu characters (at most 200)", fn, strlen(prefix));
    /* all names are checked before anything is added */
    for (int l = 0; l < o.layers; l++)
        for (int d = 0; d < D; d++)
            for (int k = 0; k < (o.no_bias ? 2 : 4); k++) {
                static const char *const base[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
                char name[300];
                snprintf(name, sizeof name, "%s%s%s_l%d%s", prefix ? prefix : "", prefix && *prefix ? "." : "", base[k],
                         l, d ? "_reverse" : "");
                if (heed_params_find(P, name))
                    return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: a parameter named '%s' exists already", fn, name);
            }
    if (check_weight_size(ctx, fn, &o,
                          o.layers > 1 && D * o.hidden_size > o.input_size ? D * o.hidden_size : o.input_size) !=
        HEED_OK)
        return ctx->err.code;
    heed_rnn r = {.opts = o};
    for (int l = 0; l < o.layers; l++)
        for (int d = 0; d < D; d++) {
            char suffix[32];
            snprintf(suffix, sizeof suffix, "_l%d%s", l, d ? "_reverse" : "");
            heed_tensor *w[4];
            st = heed__rnn_declare_set(P, fn, prefix, suffix, &o, l == 0 ? o.input_size : D * o.hidden_size, w);
            if (st != HEED_OK) return st;
            r.w_ih[l][d] = w[0], r.w_hh[l][d] = w[1], r.b_ih[l][d] = w[2], r.b_hh[l][d] = w[3];
        }
    *rnn = r;
    return HEED_OK;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

/* d[n] += s[n] */
static void FN(add_into)(void *d_, const void *s_, int64_t n) {
    T *d = d_;
    const T *s = s_;
    for (int64_t i = 0; i < n; i++) d[i] += s[i];
}

static void FN(set_forget_bias)(heed_tensor **w, int64_t H, const heed_rnn_opts *o) {
    T *bi = w[2]->data, *bh = w[3]->data;
    for (int64_t j = H; j < 2 * H; j++) bi[j] = (T)o->forget_bias, bh[j] = 0;
}
#endif
