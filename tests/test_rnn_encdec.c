/* What an encoder-decoder needs from the recurrent API: batch_first layers (against the
 * time-major path with transposes around it, gradient checks, f32 against f64), the
 * batch-first pyramid, heed_rnn_final_state and the cell steps on a declared cell. */
#include "check.h"
#include "heed/elementwise.h"
#include "heed/reduce.h"
#include "heed/rnn.h"
#include "heed/shape.h"
#include "sin_fill.h"
#include "check_grad32.h"

static heed_ctx *ctx;

/* sum(t * w) with w filled from salt */
static heed_tensor *weighted(heed_graph *g, heed_tensor *t, double salt) {
    return heed_sum_all(g, heed_mul(g, t, filled(g, t ? t->dtype : HEED_F64, heed_tensor_shape(t), salt, false)));
}

/* max |a - b| over n values of dtype dt; NaN counts as infinite */
static double max_diff(heed_dtype dt, const void *a, const void *b, int64_t n) {
    double err = a && b ? 0 : INFINITY;
    for (int64_t i = 0; a && b && i < n; i++) {
        double x = dt == HEED_F32 ? ((const float *)a)[i] : ((const double *)a)[i];
        double y = dt == HEED_F32 ? ((const float *)b)[i] : ((const double *)b)[i];
        double e = fabs(x - y);
        err = e == e ? fmax(err, e) : INFINITY;
    }
    return err;
}

/* ---------------------------------------------------------------- batch_first = time-major transposed */

typedef struct {
    heed_tensor *x, *h0, *c0, *y, *hn, *cn; /* x and y time-major in both runs */
    double *pgrad;                          /* the parameter gradients (malloc'd) */
} run_out;

/* The layer (or pyramid) on x [T,B,F] time-major; with bf the same through batch_first,
 * x and y transposed around it. Backward from sum(y wy) + sum(h_n wh) + sum(c_n wc). */
static run_out run_layer(heed_graph *g, heed_params *P, heed_rnn rnn, bool bf, bool pyramid, int64_t T, int64_t B,
                         const int64_t *lengths, int64_t *out_lengths, uint64_t seed, uint64_t counter) {
    heed_dtype dt = heed_params_dtype(P);
    const heed_rnn_opts *o = &rnn.opts;
    int LD = (o->layers ? o->layers : 1) * (o->bidirectional ? 2 : 1);
    int64_t F = pyramid ? o->input_size / 2 : o->input_size, Ty = pyramid ? (T + 1) / 2 : T;
    bool lstm = o->kind == HEED_RNN_LSTM;
    run_out r = {0};
    r.x = filled(g, dt, HEED_SHAPE(T, B, F), 1, true);
    r.h0 = pyramid ? NULL : filled(g, dt, HEED_SHAPE(LD, B, o->hidden_size), 2, true);
    r.c0 = pyramid || !lstm ? NULL : filled(g, dt, HEED_SHAPE(LD, B, o->hidden_size), 3, true);
    rnn.opts.batch_first = bf;
    heed_tensor *x = bf ? heed_transpose(g, r.x, 0, 1) : r.x, *y;
    heed_ctx_set_rng_state(ctx, seed, counter); /* the same dropout masks in both runs */
    if (pyramid) y = heed_pyramid_lstm(g, &rnn, x, lengths, out_lengths, &r.hn, &r.cn);
    else if (lstm) y = heed_lstm(g, &rnn, x, r.h0, r.c0, lengths, &r.hn, &r.cn);
    else y = heed_gru(g, &rnn, x, r.h0, lengths, &r.hn);
    if (y && bf)
        CHECK(y->shape[0] == B && y->shape[1] == Ty && y->shape[2] == (o->bidirectional ? 2 : 1) * o->hidden_size,
              "batch_first output [B, T, dirs*H]");
    r.y = bf ? heed_transpose(g, y, 0, 1) : y;
    heed_tensor *loss = heed_add(g, weighted(g, r.y, 7), weighted(g, r.hn, 8));
    if (lstm) loss = heed_add(g, loss, weighted(g, r.cn, 9));
    heed_params_zero_grad(P);
    CHECK(heed_backward(g, loss) == HEED_OK, "%s", heed_graph_error(g));
    size_t es = heed_dtype_size(dt);
    r.pgrad = malloc((size_t)heed_params_padded_numel(P) * es);
    memcpy(r.pgrad, heed_params_grads(P), (size_t)heed_params_padded_numel(P) * es);
    return r;
}

static void compare_layouts(heed_rnn_opts o, heed_dtype dt, int64_t T, int64_t B, const int64_t *lengths, bool pyramid,
                            double tol, const char *what) {
    heed_params *P = heed_params_new(ctx, dt);
    heed_rnn rnn;
    CHECK(heed_rnn_declare(&rnn, P, "enc", &o) == HEED_OK, "%s", heed_ctx_error(ctx));
    uint64_t seed, counter;
    heed_ctx_rng_state(ctx, &seed, &counter);
    heed_graph *g[2] = {heed_graph_new(ctx), heed_graph_new(ctx)};
    int64_t outl[2][32];
    run_out r[2];
    for (int k = 0; k < 2; k++) r[k] = run_layer(g[k], P, rnn, k == 1, pyramid, T, B, lengths, outl[k], seed, counter);
    if (r[0].y && r[1].y) {
        /* values and gradients of the two runs: same layouts here, so flat comparisons */
        heed_tensor *vals[3][2] = {{r[0].y, r[1].y}, {r[0].hn, r[1].hn}, {r[0].cn, r[1].cn}};
        heed_tensor *ins[3][2] = {{r[0].x, r[1].x}, {r[0].h0, r[1].h0}, {r[0].c0, r[1].c0}};
        double err = 0, scale = 1;
        for (int p = 0; p < 3; p++) {
            if (vals[p][0]) err = fmax(err, max_diff(dt, vals[p][0]->data, vals[p][1]->data, vals[p][0]->numel));
            if (ins[p][0]) err = fmax(err, max_diff(dt, ins[p][0]->grad, ins[p][1]->grad, ins[p][0]->numel));
        }
        err = fmax(err, max_diff(dt, r[0].pgrad, r[1].pgrad, heed_params_padded_numel(P)));
        for (int64_t i = 0; i < heed_params_padded_numel(P); i++)
            scale = fmax(scale, fabs(dt == HEED_F32 ? ((float *)r[0].pgrad)[i] : ((double *)r[0].pgrad)[i]));
        CHECK(err <= tol * scale, "%s: batch_first vs time-major differ by %.3g (scale %.3g)", what, err, scale);
        if (pyramid)
            for (int64_t b = 0; b < B; b++) CHECK(outl[0][b] == outl[1][b], "%s: out_lengths", what);
    } else {
        CHECK(false, "%s: %s | %s", what, heed_graph_error(g[0]), heed_graph_error(g[1]));
    }
    for (int k = 0; k < 2; k++) {
        free(r[k].pgrad);
        heed_graph_free(g[k]);
    }
    heed_params_free(P);
}

static void batch_first_matches_time_major(void) {
    int64_t len3[3] = {5, 2, 4}, len6[6] = {2, 1, 2, 2, 1, 2};
    int64_t len17[17] = {4, 1, 3, 4, 2, 4, 4, 1, 3, 2, 4, 4, 3, 1, 2, 4, 3};
    for (int kind = 0; kind < 2; kind++)
        for (int dti = 0; dti < 2; dti++) {
            heed_dtype dt = dti ? HEED_F64 : HEED_F32;
            double tol = dti ? 1e-12 : 1e-5;
            heed_rnn_opts o = {.kind = (heed_rnn_kind)kind,
                               .input_size = 3,
                               .hidden_size = 5,
                               .layers = 2,
                               .bidirectional = true,
                               .dropout = 0.3};
            compare_layouts(o, dt, 5, 3, len3, false, tol, "2 layers bi, T > B, lengths, dropout");
            compare_layouts(o, dt, 2, 6, len6, false, tol, "2 layers bi, T < B");
            o.layers = 1;
            compare_layouts(o, dt, 1, 4, NULL, false, tol, "T = 1");
            compare_layouts(o, dt, 4, 1, NULL, false, tol, "B = 1");
            /* threads split the units (H = 124), then the rows (B = 17) */
            heed_rnn_opts u = {.kind = (heed_rnn_kind)kind, .input_size = 6, .hidden_size = 124};
            compare_layouts(u, dt, 4, 3, (int64_t[]){4, 2, 3}, false, tol, "H = 124");
            heed_rnn_opts rows = {.kind = (heed_rnn_kind)kind,
                                  .input_size = 4,
                                  .hidden_size = 72,
                                  .bidirectional = true};
            compare_layouts(rows, dt, 4, 17, len17, false, tol, "B = 17");
        }
    heed_rnn_opts p = {.kind = HEED_RNN_LSTM, .input_size = 6, .hidden_size = 4, .bidirectional = true};
    int64_t lenp[3] = {5, 1, 4};
    compare_layouts(p, HEED_F64, 5, 3, lenp, true, 1e-12, "pyramid, odd T, lengths");
    compare_layouts(p, HEED_F64, 4, 2, NULL, true, 1e-12, "pyramid, even T");
}

/* ---------------------------------------------------------------- gradient checks, f32 vs f64 */

typedef struct {
    heed_rnn_opts o;
    const int64_t *lengths;
    bool pyramid;
    heed_rnn *declared; /* gradcheck: weights in a store; NULL: inputs 6.. are the weights */
} bf_case;

/* inputs: x [B,T,F], h0, c0, wy, wh, wc (loss weights), then w_ih, w_hh, b_ih, b_hh for
 * each (layer, direction) when the rnn is filled by hand */
static heed_tensor *fn_bf(heed_graph *g, heed_tensor **in, void *u) {
    const bf_case *c = u;
    heed_rnn rnn = {.opts = c->o};
    if (c->declared) {
        rnn = *c->declared;
    } else {
        int D = c->o.bidirectional ? 2 : 1, k = 6;
        for (int l = 0; l < (c->o.layers ? c->o.layers : 1); l++)
            for (int d = 0; d < D; d++) {
                rnn.w_ih[l][d] = in[k++], rnn.w_hh[l][d] = in[k++];
                rnn.b_ih[l][d] = in[k++], rnn.b_hh[l][d] = in[k++];
            }
    }
    rnn.opts.batch_first = true;
    int64_t outl[32];
    heed_tensor *hn = NULL, *cn = NULL, *y;
    if (c->pyramid) y = heed_pyramid_lstm(g, &rnn, in[0], c->lengths, outl, &hn, &cn);
    else if (c->o.kind == HEED_RNN_LSTM) y = heed_lstm(g, &rnn, in[0], in[1], in[2], c->lengths, &hn, &cn);
    else y = heed_gru(g, &rnn, in[0], in[1], c->lengths, &hn);
    heed_tensor *loss = heed_add(g, heed_sum_all(g, heed_mul(g, y, in[3])), heed_sum_all(g, heed_mul(g, hn, in[4])));
    return cn ? heed_add(g, loss, heed_sum_all(g, heed_mul(g, cn, in[5]))) : loss;
}

static void check_bf(heed_rnn_opts o, int64_t T, int64_t B, const int64_t *lengths, bool pyramid, const char *what) {
    int D = o.bidirectional ? 2 : 1, L = o.layers ? o.layers : 1, G = o.kind == HEED_RNN_LSTM ? 4 : 3;
    int64_t H = o.hidden_size, F = pyramid ? o.input_size / 2 : o.input_size, Ty = pyramid ? (T + 1) / 2 : T;
    bool lstm = o.kind == HEED_RNN_LSTM;
    heed_gradcheck_input in[16] = {{.shape = HEED_SHAPE(B, T, F)},
                                   {.shape = HEED_SHAPE(L * D, B, H), .no_grad = pyramid},
                                   {.shape = HEED_SHAPE(L * D, B, H), .no_grad = pyramid || !lstm},
                                   {.shape = HEED_SHAPE(B, Ty, D * H), .no_grad = true},
                                   {.shape = HEED_SHAPE(L * D, B, H), .no_grad = true},
                                   {.shape = HEED_SHAPE(L * D, B, H), .no_grad = true}};
    /* f64 gradient check with the weights in a store */
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_rnn rnn;
    CHECK(heed_rnn_declare(&rnn, P, "enc", &o) == HEED_OK, "%s", heed_ctx_error(ctx));
    bf_case c = {o, lengths, pyramid, &rnn};
    heed_gradcheck_opts go = {.params = P, .seed = 5};
    heed_gradcheck_result r;
    CHECK(heed_gradcheck(ctx, fn_bf, &c, 6, in, &go, &r) == HEED_OK, "gradcheck %s: %s", what, heed_ctx_error(ctx));
    heed_params_free(P);
    /* f32 against f64, forward and backward, the weights as inputs */
    int n = 6;
    for (int l = 0; l < L; l++)
        for (int d = 0; d < D && n + 4 <= 16; d++) {
            int64_t inw = l == 0 ? o.input_size : D * H;
            in[n++] = (heed_gradcheck_input){.shape = HEED_SHAPE(G * H, inw)};
            in[n++] = (heed_gradcheck_input){.shape = HEED_SHAPE(G * H, H)};
            in[n++] = (heed_gradcheck_input){.shape = HEED_SHAPE(G * H)};
            in[n++] = (heed_gradcheck_input){.shape = HEED_SHAPE(G * H)};
        }
    CHECK(n == 6 + 4 * L * D, "%s: too many weights for the f32 check", what);
    c.declared = NULL;
    if (n == 6 + 4 * L * D) check_f32_vs_f64_grad(ctx, fn_bf, &c, n, in, 2e-5, what);
}

static void gradcheck_batch_first(void) {
    int64_t len3[3] = {4, 1, 3}, len5[5] = {2, 1, 2, 2, 1};
    heed_rnn_opts o = {.kind = HEED_RNN_LSTM, .input_size = 3, .hidden_size = 4, .bidirectional = true};
    check_bf(o, 4, 3, len3, false, "LSTM bi batch_first, T > B, lengths");
    check_bf(o, 2, 5, len5, false, "LSTM bi batch_first, T < B");
    o.kind = HEED_RNN_GRU;
    check_bf(o, 4, 3, len3, false, "GRU bi batch_first");
    heed_rnn_opts deep = {.kind = HEED_RNN_LSTM, .input_size = 3, .hidden_size = 4, .layers = 2};
    check_bf(deep, 3, 2, NULL, false, "LSTM 2 layers batch_first");
    deep.kind = HEED_RNN_GRU;
    check_bf(deep, 3, 2, (int64_t[]){3, 2}, false, "GRU 2 layers batch_first");
    heed_rnn_opts p = {.kind = HEED_RNN_LSTM, .input_size = 4, .hidden_size = 3, .bidirectional = true};
    check_bf(p, 5, 2, (int64_t[]){5, 2}, true, "pyramid batch_first, odd T");
}

/* ---------------------------------------------------------------- final state */

static heed_rnn final_rnn(int layers, bool bi) {
    heed_rnn r = {
        .opts = {.kind = HEED_RNN_LSTM, .input_size = 3, .hidden_size = 4, .layers = layers, .bidirectional = bi}};
    return r; /* the helper reads only the options */
}

typedef struct {
    heed_rnn rnn;
    int layer;
} final_case;

static heed_tensor *fn_final(heed_graph *g, heed_tensor **in, void *u) {
    const final_case *c = u;
    return heed_rnn_final_state(g, &c->rnn, in[0], c->layer);
}

static void final_state(void) {
    heed_graph *g = heed_graph_new(ctx);
    /* 2 layers, bidirectional: [4, B=3, H=4] -> layer 1 is rows 2 (forward), 3 (reverse) */
    heed_rnn rnn = final_rnn(2, true);
    heed_tensor *s = filled(g, HEED_F64, HEED_SHAPE(4, 3, 4), 1, false);
    for (int layer = -2; layer < 2; layer++) {
        heed_tensor *f = heed_rnn_final_state(g, &rnn, s, layer);
        int l = layer < 0 ? layer + 2 : layer, bad = 0;
        CHECK(f && f->ndim == 2 && f->shape[0] == 3 && f->shape[1] == 8, "layer %d: [B, 2H]", layer);
        for (int64_t b = 0; f && b < 3; b++)
            for (int d = 0; d < 2; d++)
                for (int64_t j = 0; j < 4; j++)
                    if (heed_get(f, b * 8 + d * 4 + j) != heed_get(s, ((l * 2 + d) * 3 + b) * 4 + j)) bad++;
        CHECK(bad == 0, "layer %d: %d misplaced values", layer, bad);
    }
    /* one direction: [B, H], the layer's row */
    heed_rnn uni = final_rnn(3, false);
    s = filled(g, HEED_F64, HEED_SHAPE(3, 2, 4), 2, false);
    heed_tensor *f = heed_rnn_final_state(g, &uni, s, -1);
    CHECK(f && f->shape[0] == 2 && f->shape[1] == 4 && heed_get(f, 5) == heed_get(s, 2 * 8 + 5), "unidirectional");
    /* from a real encoder: the last layer's reverse direction at t = 0 is y[0, b, H:] */
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_rnn enc;
    heed_rnn_opts eo = {.kind = HEED_RNN_GRU,
                        .input_size = 3,
                        .hidden_size = 4,
                        .bidirectional = true,
                        .batch_first = true};
    heed_rnn_declare(&enc, P, "enc", &eo);
    heed_tensor *hn, *y = heed_gru(g, &enc, filled(g, HEED_F64, HEED_SHAPE(2, 5, 3), 3, false), NULL, NULL, &hn);
    f = heed_rnn_final_state(g, &enc, hn, -1);
    CHECK(f && y && heed_get(f, 8 + 4 + 1) == heed_get(y, (1 * 5 + 0) * 8 + 4 + 1) &&
              heed_get(f, 8 + 2) == heed_get(y, (1 * 5 + 4) * 8 + 2),
          "final state = the outputs at each direction's end");
    heed_params_free(P);
    CHECK(heed_graph_status(g) == HEED_OK, "%s", heed_graph_error(g));
    /* gradients */
    final_case cases[3] = {{final_rnn(2, true), -1}, {final_rnn(2, true), 0}, {final_rnn(2, false), 1}};
    for (int k = 0; k < 3; k++) {
        heed_gradcheck_input in[1] = {{.shape = HEED_SHAPE(cases[k].rnn.opts.bidirectional ? 4 : 2, 3, 4)}};
        CHECK_GRAD(ctx, fn_final, &cases[k], 1, in, NULL);
        check_f32_vs_f64_grad(ctx, fn_final, &cases[k], 1, in, 1e-6, "final state");
    }
    /* bad input */
    s = heed_zeros(g, HEED_F32, HEED_SHAPE(4, 3, 4));
    CHECK(!heed_rnn_final_state(g, &rnn, s, 2), "layer 2 of 2");
    CHECK_ERR(g, HEED_ERR_ARG,
              "heed_rnn_final_state: layer 2 out of range for an rnn of 2 layers (need -2 <= layer < 2)");
    s = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 4));
    CHECK(!heed_rnn_final_state(g, &rnn, s, -1), "shape");
    CHECK_ERR(g, HEED_ERR_SHAPE,
              "heed_rnn_final_state: state[2,3,4] must be [layers*dirs, batch, hidden] = [4, batch, 4]");
    s = heed_zeros(g, HEED_F32, HEED_SHAPE(4, 3, 4));
    CHECK(!heed_rnn_final_state(g, NULL, s, -1), "NULL rnn");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_rnn_final_state: rnn is NULL");
    CHECK(!heed_rnn_final_state(g, &rnn, NULL, -1), "NULL state");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_rnn_final_state: state is NULL");
    heed_graph_free(g);
}

/* ---------------------------------------------------------------- cell steps */

typedef struct {
    heed_rnn_cell *cell;
} step_case;

/* inputs x, h, c; out = h' + c'^2 for the LSTM */
static heed_tensor *fn_step(heed_graph *g, heed_tensor **in, void *u) {
    const step_case *c = u;
    if (c->cell->kind == HEED_RNN_GRU) return heed_gru_cell_step(g, c->cell, in[0], in[1]);
    heed_tensor *c1 = NULL, *h1 = heed_lstm_cell_step(g, c->cell, in[0], in[1], in[2], &c1);
    return heed_add(g, h1, heed_mul(g, c1, c1));
}

static void cell_steps(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_rnn_cell lstm, gru;
    heed_rnn_opts o = {.kind = HEED_RNN_LSTM, .input_size = 3, .hidden_size = 4};
    CHECK(heed_rnn_cell_declare(&lstm, P, "dec", &o) == HEED_OK, "%s", heed_ctx_error(ctx));
    o.kind = HEED_RNN_GRU, o.no_bias = true;
    CHECK(heed_rnn_cell_declare(&gru, P, "gru", &o) == HEED_OK, "%s", heed_ctx_error(ctx));
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = filled(g, HEED_F64, HEED_SHAPE(2, 3), 1, false),
                *h = filled(g, HEED_F64, HEED_SHAPE(2, 4), 2, false);
    heed_tensor *c = filled(g, HEED_F64, HEED_SHAPE(2, 4), 3, false), *c1, *c2;
    heed_tensor *a = heed_lstm_cell_step(g, &lstm, x, h, c, &c1);
    heed_tensor *b = heed_lstm_cell(g, x, h, c, lstm.w_ih, lstm.w_hh, lstm.b_ih, lstm.b_hh, &c2);
    CHECK(a && b && max_diff(HEED_F64, a->data, b->data, 8) == 0 && max_diff(HEED_F64, c1->data, c2->data, 8) == 0,
          "the LSTM step is heed_lstm_cell on the cell's weights");
    a = heed_gru_cell_step(g, &gru, x, h);
    b = heed_gru_cell(g, x, h, gru.w_ih, gru.w_hh, NULL, NULL);
    CHECK(a && b && max_diff(HEED_F64, a->data, b->data, 8) == 0, "the GRU step");
    /* gradients reach the cell's weights */
    heed_rnn_cell *cells[2] = {&lstm, &gru};
    for (int k = 0; k < 2; k++) {
        step_case sc = {cells[k]};
        heed_gradcheck_input in[3] = {{.shape = HEED_SHAPE(2, 3)},
                                      {.shape = HEED_SHAPE(2, 4)},
                                      {.shape = HEED_SHAPE(2, 4), .no_grad = k == 1}};
        heed_gradcheck_opts go = {.params = P};
        heed_gradcheck_result r;
        CHECK(heed_gradcheck(ctx, fn_step, &sc, 3, in, &go, &r) == HEED_OK, "gradcheck step %d: %s", k,
              heed_ctx_error(ctx));
    }
    /* bad input */
    CHECK(!heed_lstm_cell_step(g, &gru, x, h, c, &c1) && c1 == NULL, "GRU cell to the LSTM step");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_lstm_cell_step: cell was declared as a GRU (use heed_gru_cell_step)");
    x = filled(g, HEED_F64, HEED_SHAPE(2, 3), 1, false), h = filled(g, HEED_F64, HEED_SHAPE(2, 4), 2, false);
    CHECK(!heed_gru_cell_step(g, &lstm, x, h), "LSTM cell to the GRU step");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_gru_cell_step: cell was declared as an LSTM (use heed_lstm_cell_step)");
    x = filled(g, HEED_F64, HEED_SHAPE(2, 3), 1, false);
    CHECK(!heed_gru_cell_step(g, NULL, x, NULL), "NULL cell");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_gru_cell_step: cell is NULL");
    heed_rnn_cell junk = gru;
    junk.kind = (heed_rnn_kind)9;
    x = filled(g, HEED_F64, HEED_SHAPE(2, 3), 1, false);
    CHECK(!heed_gru_cell_step(g, &junk, x, NULL), "bad kind");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_gru_cell_step: cell kind 9 is neither");
    x = filled(g, HEED_F64, HEED_SHAPE(2, 5), 1, false);
    CHECK(!heed_lstm_cell_step(g, &lstm, x, NULL, NULL, &c1), "input size");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_lstm_cell: x[2,5] has 5 input features but w_ih[16,3] takes 3");
    x = filled(g, HEED_F64, HEED_SHAPE(2, 3), 1, false);
    CHECK(!heed_lstm_cell_step(g, &lstm, x, NULL, NULL, NULL), "c_out");
    CHECK_ERR(g, HEED_ERR_ARG, "c_out is NULL");
    heed_graph_free(g);
    heed_params_free(P);
}

/* ---------------------------------------------------------------- bad input */

static void bad_batch_first(void) {
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_rnn rnn;
    heed_rnn_opts o = {.kind = HEED_RNN_LSTM, .input_size = 6, .hidden_size = 4, .batch_first = true};
    heed_rnn_declare(&rnn, P, "l", &o);
    heed_graph *g = heed_graph_new(ctx);
    int64_t len[2] = {3, 4}, out[2];
    CHECK(!heed_lstm(g, &rnn, heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 5)), NULL, NULL, NULL, NULL, NULL), "I");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_lstm: x[2,3,5] must be [batch, T, 6] (batch_first) with T, batch >= 1");
    /* T is dim 1: lengths up to 3 */
    CHECK(!heed_lstm(g, &rnn, heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 6)), NULL, NULL, len, NULL, NULL), "length > T");
    CHECK_ERR(g, HEED_ERR_ARG, "lengths[1] = 4 for x[2,3,6] (each must be in 1..T = 3)");
    /* h0 stays [layers*dirs, B, H] */
    CHECK(!heed_lstm(g, &rnn, heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 6)),
                     heed_zeros(g, HEED_F32, HEED_SHAPE(1, 3, 4)), NULL, NULL, NULL, NULL),
          "h0 batch");
    CHECK_ERR(g, HEED_ERR_SHAPE, "h0[1,3,4] must be [layers*dirs, batch, hidden] = [1, 2, 4]");
    CHECK(!heed_pyramid_lstm(g, &rnn, heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3)), NULL, out, NULL, NULL), "pyramid 2-D");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_pyramid_lstm: x[2,3] must be [batch, T, features] (batch_first), each >= 1");
    CHECK(!heed_pyramid_lstm(g, &rnn, heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 3)), len, out, NULL, NULL),
          "pyramid lengths");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_pyramid_lstm: lengths[1] = 4 for x[2,3,3]");
    heed_graph_free(g);
    heed_params_free(P);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 7, .threads = 2}); /* 2: the unit and row splits run even on 1 core */
    RUN(batch_first_matches_time_major);
    RUN(gradcheck_batch_first);
    RUN(final_state);
    RUN(cell_steps);
    RUN(bad_batch_first);
    heed_ctx_free(ctx);
    return check_summary();
}
