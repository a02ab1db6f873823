/* Recurrent cells and layers: PyTorch known answers, gradient checks (cells; layers with
 * several layers, both directions, mixed lengths including 1, dropout; pyramid with odd
 * T), f32 against f64 (forward and backward, covering the AVX2 kernels and the split of
 * units over threads), the cell-by-cell loop against the fused layer, lengths against
 * separate runs, and bad input. */
#include "check.h"
#include "heed/elementwise.h"
#include "heed/reduce.h"
#include "heed/rnn.h"
#include "rnn_torch_ref.h"

static heed_ctx *ctx;

/* The reference inputs of tests/torch_rnn_reference.py: element k is 0.6 sin(1.3 k + salt). */
static double v(int64_t k, double salt) { return 0.6 * sin(1.3 * (double)k + salt); }

static void fill(heed_tensor *t, double salt) {
    for (int64_t k = 0; k < t->numel; k++) {
        if (t->dtype == HEED_F32) ((float *)t->data)[k] = (float)v(k, salt);
        else ((double *)t->data)[k] = v(k, salt);
    }
}

static heed_tensor *vin(heed_graph *g, heed_dtype dt, heed_shape s, double salt, bool grad) {
    heed_tensor *t = heed_zeros(g, dt, s);
    if (!t) return NULL;
    fill(t, salt);
    return grad ? heed_requires_grad(t) : t;
}

/* max |a - ref| <= tol * max(1, max |ref|) over n values (normwise relative). Every value
 * here must be finite, so a NaN fails even against a NaN reference (the cell loop and the
 * layer share their kernels). */
static void close_to(const char *what, const void *data, heed_dtype dt, const double *ref, int64_t n, double tol) {
    CHECK(data != NULL, "%s: no data", what);
    if (!data) return;
    check_norm c = check_norm_start(1);
    for (int64_t i = 0; i < n; i++) {
        double a = dt == HEED_F32 ? ((const float *)data)[i] : ((const double *)data)[i];
        check_norm_add(&c, a, ref[i]);
        if (!isfinite(a)) c.err = INFINITY;
    }
    CHECK(check_norm_ok(c, tol), "%s: max error %.3g (scale %.3g, tol %.1g)", what, c.err, c.scale, tol);
}

static void to_double(const heed_tensor *t, const void *buf, double *out) {
    for (int64_t i = 0; i < t->numel; i++)
        out[i] = t->dtype == HEED_F32 ? ((const float *)buf)[i] : ((const double *)buf)[i];
}

/* the store's flat gradient buffer as doubles */
static void store_grads(heed_params *P, double *out) {
    void *gr = heed_params_grads(P);
    for (int64_t k = 0; k < heed_params_padded_numel(P); k++)
        out[k] = heed_params_dtype(P) == HEED_F32 ? ((float *)gr)[k] : ((double *)gr)[k];
}

/* sum(y * wy) + sum(hn * wh) + sum(cn * wc), the weights from the reference formula */
static heed_tensor *weighted_loss(heed_graph *g, heed_tensor *y, heed_tensor *hn, heed_tensor *cn) {
    heed_dtype dt = y ? y->dtype : HEED_F64;
    heed_tensor *loss = heed_sum_all(g, heed_mul(g, y, vin(g, dt, heed_tensor_shape(y), 7, false)));
    if (hn) loss = heed_add(g, loss, heed_sum_all(g, heed_mul(g, hn, vin(g, dt, heed_tensor_shape(hn), 8, false))));
    if (cn) loss = heed_add(g, loss, heed_sum_all(g, heed_mul(g, cn, vin(g, dt, heed_tensor_shape(cn), 9, false))));
    return loss;
}

/* ---------------------------------------------------------------- declaration */

static void declare_names_and_init(void) {
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_rnn rnn;
    heed_rnn_opts o = {.kind = HEED_RNN_LSTM,
                       .input_size = 6,
                       .hidden_size = 5,
                       .layers = 2,
                       .bidirectional = true,
                       .forget_bias = 1.0};
    CHECK(heed_rnn_declare(&rnn, P, "enc", &o) == HEED_OK, "%s", heed_ctx_error(ctx));
    const char *want[] = {"enc.weight_ih_l0",         "enc.weight_hh_l0",         "enc.bias_ih_l0",
                          "enc.bias_hh_l0",           "enc.weight_ih_l0_reverse", "enc.weight_hh_l0_reverse",
                          "enc.bias_ih_l0_reverse",   "enc.bias_hh_l0_reverse",   "enc.weight_ih_l1",
                          "enc.weight_hh_l1",         "enc.bias_ih_l1",           "enc.bias_hh_l1",
                          "enc.weight_ih_l1_reverse", "enc.weight_hh_l1_reverse", "enc.bias_ih_l1_reverse",
                          "enc.bias_hh_l1_reverse"};
    CHECK(heed_params_count(P) == 16, "count %d", heed_params_count(P));
    for (int i = 0; i < 16 && i < heed_params_count(P); i++)
        CHECK(strcmp(heed_params_at(P, i)->name, want[i]) == 0, "param %d is %s, want %s", i,
              heed_params_at(P, i)->name, want[i]);
    CHECK(rnn.w_ih[1][1] == heed_params_find(P, "enc.weight_ih_l1_reverse"), "struct points at the store");
    CHECK(rnn.w_ih[0][0]->shape[0] == 20 && rnn.w_ih[0][0]->shape[1] == 6, "w_ih_l0 [4H, I]");
    CHECK(rnn.w_ih[1][0]->shape[1] == 10 && rnn.w_hh[1][1]->shape[1] == 5, "layer 1 takes 2H inputs");
    double bound = 1 / sqrt(5.0), mx = 0;
    for (int64_t k = 0; k < rnn.w_hh[0][0]->numel; k++) mx = fmax(mx, check_err(heed_get(rnn.w_hh[0][0], k), 0));
    CHECK(mx <= bound && mx > 0.8 * bound, "U(-1/sqrt(H), 1/sqrt(H)): max %g, bound %g", mx, bound);
    for (int64_t j = 0; j < 20; j++) { /* forget block: bias_ih = 1, bias_hh = 0 */
        bool forget = j >= 5 && j < 10;
        if (forget) {
            CHECK(heed_get(rnn.b_ih[1][1], j) == 1.0 && heed_get(rnn.b_hh[1][1], j) == 0.0, "forget bias at %lld",
                  (long long)j);
        } else {
            CHECK(fabs(heed_get(rnn.b_ih[1][1], j)) <= bound, "other gates keep the uniform init");
        }
    }
    /* a cell, no prefix, no bias */
    heed_rnn_cell cell;
    heed_rnn_opts co = {.kind = HEED_RNN_GRU, .input_size = 3, .hidden_size = 2, .no_bias = true};
    CHECK(heed_rnn_cell_declare(&cell, P, NULL, &co) == HEED_OK, "%s", heed_ctx_error(ctx));
    CHECK(heed_params_find(P, "weight_ih") == cell.w_ih && cell.w_ih->shape[0] == 6 && !cell.b_ih && !cell.b_hh,
          "GRU cell weights");
    /* errors leave the store unchanged */
    int before = heed_params_count(P);
    CHECK(heed_rnn_declare(&rnn, P, "enc", &o) == HEED_ERR_ARG && strstr(heed_ctx_error(ctx), "exists"), "%s",
          heed_ctx_error(ctx));
    heed_rnn_opts bad = o;
    bad.layers = 9;
    CHECK(heed_rnn_declare(&rnn, P, "x", &bad) == HEED_ERR_ARG && strstr(heed_ctx_error(ctx), "layers"), "%s",
          heed_ctx_error(ctx));
    bad = o, bad.dropout = 1.0;
    CHECK(heed_rnn_declare(&rnn, P, "x", &bad) == HEED_ERR_ARG && strstr(heed_ctx_error(ctx), "dropout"), "%s",
          heed_ctx_error(ctx));
    bad = o, bad.hidden_size = 0;
    CHECK(heed_rnn_declare(&rnn, P, "x", &bad) == HEED_ERR_ARG && strstr(heed_ctx_error(ctx), "hidden_size"), "%s",
          heed_ctx_error(ctx));
    bad = o, bad.kind = (heed_rnn_kind)7;
    CHECK(heed_rnn_cell_declare(&cell, P, "x", &bad) == HEED_ERR_ARG && strstr(heed_ctx_error(ctx), "kind"), "%s",
          heed_ctx_error(ctx));
    CHECK(heed_rnn_declare(NULL, P, "x", &o) == HEED_ERR_ARG, "NULL rnn");
    CHECK(heed_rnn_declare(&rnn, NULL, "x", &o) == HEED_ERR_ARG, "NULL store");
    CHECK(heed_params_count(P) == before, "nothing added on error");
    heed_params_free(P);
}

/* ---------------------------------------------------------------- PyTorch known answers */

static void torch_cells(void) {
    for (int kind = 0; kind < 2; kind++) {
        bool lstm = kind == HEED_RNN_LSTM;
        heed_params *P = heed_params_new(ctx, HEED_F64);
        heed_rnn_cell cell;
        heed_rnn_opts o = {.kind = (heed_rnn_kind)kind, .input_size = 5, .hidden_size = 4};
        heed_rnn_cell_declare(&cell, P, "", &o);
        for (int i = 0; i < heed_params_count(P); i++) fill(heed_params_at(P, i), 10 + i);
        heed_graph *g = heed_graph_new(ctx);
        heed_tensor *x = vin(g, HEED_F64, HEED_SHAPE(3, 5), 1, true), *h = vin(g, HEED_F64, HEED_SHAPE(3, 4), 2, true);
        heed_tensor *c = vin(g, HEED_F64, HEED_SHAPE(3, 4), 3, true), *c1 = NULL;
        heed_tensor *h1 = lstm ? heed_lstm_cell(g, x, h, c, cell.w_ih, cell.w_hh, cell.b_ih, cell.b_hh, &c1)
                               : heed_gru_cell(g, x, h, cell.w_ih, cell.w_hh, cell.b_ih, cell.b_hh);
        heed_tensor *loss = heed_sum_all(g, heed_mul(g, h1, vin(g, HEED_F64, HEED_SHAPE(3, 4), 7, false)));
        if (lstm)
            loss = heed_add(g, loss, heed_sum_all(g, heed_mul(g, c1, vin(g, HEED_F64, HEED_SHAPE(3, 4), 9, false))));
        heed_params_zero_grad(P);
        CHECK(heed_backward(g, loss) == HEED_OK, "%s", heed_graph_error(g));
        double tol = 1e-10;
        if (lstm) {
            close_to("lstmcell h'", h1->data, HEED_F64, lstmcell_h1, 12, tol);
            close_to("lstmcell c'", c1->data, HEED_F64, lstmcell_c1, 12, tol);
            close_to("lstmcell dx", x->grad, HEED_F64, lstmcell_dx, 15, tol);
            close_to("lstmcell dh", h->grad, HEED_F64, lstmcell_dh, 12, tol);
            close_to("lstmcell dc", c->grad, HEED_F64, lstmcell_dc, 12, tol);
            close_to("lstmcell dW_ih", cell.w_ih->grad, HEED_F64, lstmcell_dweight_ih, 80, tol);
            close_to("lstmcell dW_hh", cell.w_hh->grad, HEED_F64, lstmcell_dweight_hh, 64, tol);
            close_to("lstmcell db_ih", cell.b_ih->grad, HEED_F64, lstmcell_dbias_ih, 16, tol);
            close_to("lstmcell db_hh", cell.b_hh->grad, HEED_F64, lstmcell_dbias_hh, 16, tol);
        } else {
            close_to("grucell h'", h1->data, HEED_F64, grucell_h1, 12, tol);
            close_to("grucell dx", x->grad, HEED_F64, grucell_dx, 15, tol);
            close_to("grucell dh", h->grad, HEED_F64, grucell_dh, 12, tol);
            close_to("grucell dW_ih", cell.w_ih->grad, HEED_F64, grucell_dweight_ih, 60, tol);
            close_to("grucell dW_hh", cell.w_hh->grad, HEED_F64, grucell_dweight_hh, 48, tol);
            close_to("grucell db_ih", cell.b_ih->grad, HEED_F64, grucell_dbias_ih, 12, tol);
            close_to("grucell db_hh", cell.b_hh->grad, HEED_F64, grucell_dbias_hh, 12, tol);
        }
        heed_graph_free(g);
        heed_params_free(P);
    }
}

typedef struct {
    const char *tag;
    heed_rnn_kind kind;
    int64_t T, B, I, H;
    int layers;
    bool bidir;
    int64_t lengths[4];
    const double *y, *hn, *cn, *dx, *dh0, *dc0;
    const double *dw[32]; /* parameter gradients in declaration (state_dict) order */
} torch_layer_case;

static void torch_layer(const torch_layer_case *tc, heed_dtype dt, double tol) {
    heed_params *P = heed_params_new(ctx, dt);
    heed_rnn rnn;
    heed_rnn_opts o = {.kind = tc->kind,
                       .input_size = tc->I,
                       .hidden_size = tc->H,
                       .layers = tc->layers,
                       .bidirectional = tc->bidir};
    CHECK(heed_rnn_declare(&rnn, P, NULL, &o) == HEED_OK, "%s", heed_ctx_error(ctx));
    for (int i = 0; i < heed_params_count(P); i++) fill(heed_params_at(P, i), 10 + i);
    int D = tc->bidir ? 2 : 1;
    bool lstm = tc->kind == HEED_RNN_LSTM;
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = vin(g, dt, HEED_SHAPE(tc->T, tc->B, tc->I), 1, true);
    heed_tensor *h0 = vin(g, dt, HEED_SHAPE(tc->layers * D, tc->B, tc->H), 2, true);
    heed_tensor *c0 = vin(g, dt, HEED_SHAPE(tc->layers * D, tc->B, tc->H), 3, true);
    heed_tensor *hn = NULL, *cn = NULL;
    heed_tensor *y =
        lstm ? heed_lstm(g, &rnn, x, h0, c0, tc->lengths, &hn, &cn) : heed_gru(g, &rnn, x, h0, tc->lengths, &hn);
    heed_params_zero_grad(P);
    CHECK(heed_backward(g, weighted_loss(g, y, hn, cn)) == HEED_OK, "%s", heed_graph_error(g));
    if (y) {
        char what[64];
        int64_t nh = tc->layers * D * tc->B * tc->H;
        snprintf(what, sizeof what, "%s y", tc->tag);
        close_to(what, y->data, dt, tc->y, y->numel, tol);
        snprintf(what, sizeof what, "%s h_n", tc->tag);
        close_to(what, hn->data, dt, tc->hn, nh, tol);
        snprintf(what, sizeof what, "%s dx", tc->tag);
        close_to(what, x->grad, dt, tc->dx, x->numel, tol);
        snprintf(what, sizeof what, "%s dh0", tc->tag);
        close_to(what, h0->grad, dt, tc->dh0, nh, tol);
        if (lstm) {
            snprintf(what, sizeof what, "%s c_n", tc->tag);
            close_to(what, cn->data, dt, tc->cn, nh, tol);
            snprintf(what, sizeof what, "%s dc0", tc->tag);
            close_to(what, c0->grad, dt, tc->dc0, nh, tol);
        }
        for (int i = 0; i < heed_params_count(P); i++) {
            heed_tensor *p = heed_params_at(P, i);
            snprintf(what, sizeof what, "%s d%s", tc->tag, p->name);
            close_to(what, p->grad, dt, tc->dw[i], p->numel, tol);
        }
    }
    heed_graph_free(g);
    heed_params_free(P);
}

static void torch_layers(void) {
    torch_layer_case lstm2bi = {"lstm2bi",
                                HEED_RNN_LSTM,
                                5,
                                3,
                                3,
                                4,
                                2,
                                true,
                                {5, 1, 3},
                                lstm2bi_y,
                                lstm2bi_hn,
                                lstm2bi_cn,
                                lstm2bi_dx,
                                lstm2bi_dh0,
                                lstm2bi_dc0,
                                {lstm2bi_dweight_ih_l0, lstm2bi_dweight_hh_l0, lstm2bi_dbias_ih_l0, lstm2bi_dbias_hh_l0,
                                 lstm2bi_dweight_ih_l0_reverse, lstm2bi_dweight_hh_l0_reverse,
                                 lstm2bi_dbias_ih_l0_reverse, lstm2bi_dbias_hh_l0_reverse, lstm2bi_dweight_ih_l1,
                                 lstm2bi_dweight_hh_l1, lstm2bi_dbias_ih_l1, lstm2bi_dbias_hh_l1,
                                 lstm2bi_dweight_ih_l1_reverse, lstm2bi_dweight_hh_l1_reverse,
                                 lstm2bi_dbias_ih_l1_reverse, lstm2bi_dbias_hh_l1_reverse}};
    torch_layer_case gru2bi = {"gru2bi",
                               HEED_RNN_GRU,
                               5,
                               3,
                               3,
                               4,
                               2,
                               true,
                               {2, 5, 1},
                               gru2bi_y,
                               gru2bi_hn,
                               NULL,
                               gru2bi_dx,
                               gru2bi_dh0,
                               NULL,
                               {gru2bi_dweight_ih_l0, gru2bi_dweight_hh_l0, gru2bi_dbias_ih_l0, gru2bi_dbias_hh_l0,
                                gru2bi_dweight_ih_l0_reverse, gru2bi_dweight_hh_l0_reverse, gru2bi_dbias_ih_l0_reverse,
                                gru2bi_dbias_hh_l0_reverse, gru2bi_dweight_ih_l1, gru2bi_dweight_hh_l1,
                                gru2bi_dbias_ih_l1, gru2bi_dbias_hh_l1, gru2bi_dweight_ih_l1_reverse,
                                gru2bi_dweight_hh_l1_reverse, gru2bi_dbias_ih_l1_reverse, gru2bi_dbias_hh_l1_reverse}};
    torch_layer_case lstm1 =
        {"lstm1",   HEED_RNN_LSTM,
         4,         2,
         3,         5,
         1,         false,
         {4, 3},    lstm1_y,
         lstm1_hn,  lstm1_cn,
         lstm1_dx,  lstm1_dh0,
         lstm1_dc0, {lstm1_dweight_ih_l0, lstm1_dweight_hh_l0, lstm1_dbias_ih_l0, lstm1_dbias_hh_l0}};
    const torch_layer_case *cases[] = {&lstm2bi, &gru2bi, &lstm1};
    for (int i = 0; i < 3; i++) {
        torch_layer(cases[i], HEED_F64, 1e-10);
        torch_layer(cases[i], HEED_F32, 2e-5); /* f32 against PyTorch's f64 */
    }
}

/* ---------------------------------------------------------------- gradient checks */

typedef struct {
    heed_rnn_kind kind;
    bool use_h, use_c, bias;
} cell_case;

/* inputs: x, h, c, w_ih, w_hh, b_ih, b_hh; out = h' + c'^2 (so both outputs matter) */
static heed_tensor *fn_cell(heed_graph *g, heed_tensor **in, void *u) {
    const cell_case *c = u;
    heed_tensor *h = c->use_h ? in[1] : NULL, *cs = c->use_c ? in[2] : NULL;
    heed_tensor *bi = c->bias ? in[5] : NULL, *bh = c->bias ? in[6] : NULL;
    if (c->kind == HEED_RNN_GRU) return heed_gru_cell(g, in[0], h, in[3], in[4], bi, bh);
    heed_tensor *c1 = NULL, *h1 = heed_lstm_cell(g, in[0], h, cs, in[3], in[4], bi, bh, &c1);
    return heed_add(g, h1, heed_mul(g, c1, c1));
}

static void gradcheck_cells(void) {
    for (int kind = 0; kind < 2; kind++)
        for (int variant = 0; variant < 3; variant++) {
            int G = kind == HEED_RNN_LSTM ? 4 : 3;
            int64_t B = 3, I = 5, H = 4;
            cell_case c = {(heed_rnn_kind)kind, variant != 1, variant != 1, variant != 2};
            heed_gradcheck_input in[7] = {{.shape = HEED_SHAPE(B, I)},
                                          {.shape = HEED_SHAPE(B, H), .no_grad = !c.use_h},
                                          {.shape = HEED_SHAPE(B, H), .no_grad = !c.use_c || kind == HEED_RNN_GRU},
                                          {.shape = HEED_SHAPE(G * H, I)},
                                          {.shape = HEED_SHAPE(G * H, H)},
                                          {.shape = HEED_SHAPE(G * H), .no_grad = !c.bias},
                                          {.shape = HEED_SHAPE(G * H), .no_grad = !c.bias}};
            CHECK_GRAD(ctx, fn_cell, &c, 7, in, NULL);
            check_f32_vs_f64(ctx, fn_cell, &c, 7, in, 1e-5, "cell");
        }
    /* f32 against f64 on a size that runs the AVX2 kernel with a tail and several threads */
    for (int kind = 0; kind < 2; kind++) {
        int G = kind == HEED_RNN_LSTM ? 4 : 3;
        cell_case c = {(heed_rnn_kind)kind, true, true, true};
        heed_gradcheck_input in[7] = {{.shape = HEED_SHAPE(70, 9)},        {.shape = HEED_SHAPE(70, 253)},
                                      {.shape = HEED_SHAPE(70, 253)},      {.shape = HEED_SHAPE(G * 253, 9)},
                                      {.shape = HEED_SHAPE(G * 253, 253)}, {.shape = HEED_SHAPE(G * 253)},
                                      {.shape = HEED_SHAPE(G * 253)}};
        check_f32_vs_f64(ctx, fn_cell, &c, 7, in, 1e-5, "big cell");
    }
}

typedef struct {
    heed_rnn *rnn;
    const int64_t *lengths;
    bool use_h0, pyramid;
    int64_t *out_lengths;
} layer_case;

/* inputs: x, h0, c0, wy, wh, wc (the last three: loss weights, not checked) */
static heed_tensor *fn_layer(heed_graph *g, heed_tensor **in, void *u) {
    const layer_case *c = u;
    heed_tensor *hn = NULL, *cn = NULL, *y;
    if (c->pyramid) y = heed_pyramid_lstm(g, c->rnn, in[0], c->lengths, c->out_lengths, &hn, &cn);
    else if (c->rnn->opts.kind == HEED_RNN_LSTM)
        y = heed_lstm(g, c->rnn, in[0], c->use_h0 ? in[1] : NULL, c->use_h0 ? in[2] : NULL, c->lengths, &hn, &cn);
    else y = heed_gru(g, c->rnn, in[0], c->use_h0 ? in[1] : NULL, c->lengths, &hn);
    heed_tensor *loss = heed_sum_all(g, heed_mul(g, y, in[3]));
    loss = heed_add(g, loss, heed_sum_all(g, heed_mul(g, hn, in[4])));
    if (cn) loss = heed_add(g, loss, heed_sum_all(g, heed_mul(g, cn, in[5])));
    return loss;
}

static void check_layer(heed_rnn_opts o, int64_t T, int64_t B, const int64_t *lengths, bool use_h0, bool pyramid,
                        int64_t max_per_tensor, const char *what) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_rnn rnn;
    CHECK(heed_rnn_declare(&rnn, P, "rnn", &o) == HEED_OK, "%s", heed_ctx_error(ctx));
    int D = o.bidirectional ? 2 : 1, L = o.layers ? o.layers : 1;
    int64_t xin = pyramid ? o.input_size / 2 : o.input_size, Ty = pyramid ? (T + 1) / 2 : T;
    int64_t out_lengths[16];
    layer_case c = {&rnn, lengths, use_h0, pyramid, out_lengths};
    heed_gradcheck_input in[6] = {{.shape = HEED_SHAPE(T, B, xin)},
                                  {.shape = HEED_SHAPE(L * D, B, o.hidden_size), .no_grad = !use_h0},
                                  {.shape = HEED_SHAPE(L * D, B, o.hidden_size),
                                   .no_grad = !use_h0 || o.kind == HEED_RNN_GRU},
                                  {.shape = HEED_SHAPE(Ty, B, D * o.hidden_size), .no_grad = true},
                                  {.shape = HEED_SHAPE(L * D, B, o.hidden_size), .no_grad = true},
                                  {.shape = HEED_SHAPE(L * D, B, o.hidden_size), .no_grad = true}};
    heed_gradcheck_opts go = {.params = P, .max_per_tensor = max_per_tensor, .seed = 3};
    heed_gradcheck_result r;
    heed_status st = heed_gradcheck(ctx, fn_layer, &c, 6, in, &go, &r);
    CHECK(st == HEED_OK, "gradcheck %s: %s", what, heed_ctx_error(ctx));
    heed_params_free(P);
}

static void gradcheck_layers(void) {
    int64_t len4[4] = {5, 1, 3, 5};
    heed_rnn_opts o =
        {.kind = HEED_RNN_LSTM, .input_size = 3, .hidden_size = 4, .layers = 2, .bidirectional = true, .dropout = 0.3};
    check_layer(o, 5, 4, len4, true, false, 0, "LSTM 2 layers bi, lengths 5 1 3 5, h0 c0, dropout");
    o.kind = HEED_RNN_GRU;
    o.layers = 3;
    check_layer(o, 5, 4, len4, true, false, 0, "GRU 3 layers bi, lengths, h0, dropout");
    heed_rnn_opts u = {.kind = HEED_RNN_LSTM, .input_size = 3, .hidden_size = 5, .no_bias = true};
    check_layer(u, 4, 2, NULL, false, false, 0, "LSTM 1 layer, no bias, no h0, no lengths");
    u.kind = HEED_RNN_GRU;
    check_layer(u, 4, 2, NULL, false, false, 0, "GRU 1 layer, no bias");
    int64_t len1[3] = {1, 1, 1}; /* T = 1 */
    o = (heed_rnn_opts){.kind = HEED_RNN_LSTM, .input_size = 2, .hidden_size = 3, .bidirectional = true};
    check_layer(o, 1, 3, len1, true, false, 0, "LSTM T = 1");
    /* units split over threads (H = 124: 16 blocks of 8, the last 4 short) on sampled elements */
    o = (heed_rnn_opts){.kind = HEED_RNN_LSTM, .input_size = 3, .hidden_size = 124};
    int64_t len3[3] = {4, 2, 3};
    check_layer(o, 4, 3, len3, true, false, 12, "LSTM H = 124 (threads split the units)");
    o.kind = HEED_RNN_GRU;
    o.bidirectional = true;
    check_layer(o, 4, 5, (int64_t[]){4, 2, 3, 1, 4}, true, false, 12, "GRU bi H = 124");
    /* batch rows split over threads (B = 17: blocks of 8 and 9 rows) */
    int64_t len17[17] = {4, 1, 3, 4, 2, 4, 4, 1, 3, 2, 4, 4, 3, 1, 2, 4, 3};
    for (int kind = 0; kind < 2; kind++) {
        heed_rnn_opts r = {.kind = (heed_rnn_kind)kind, .input_size = 3, .hidden_size = 72};
        check_layer(r, 4, 17, len17, true, false, 8,
                    kind ? "GRU B = 17 (threads split the rows)" : "LSTM B = 17 (threads split the rows)");
    }
}

static heed_tensor *fn_pyramid_concat(heed_graph *g, heed_tensor **in, void *u) {
    return heed_pyramid_concat(g, in[0], u, NULL);
}

static void gradcheck_pyramid(void) {
    int64_t len[3] = {7, 2, 5};
    heed_gradcheck_input in[1] = {{.shape = HEED_SHAPE(7, 3, 2)}};
    CHECK_GRAD(ctx, fn_pyramid_concat, len, 1, in, NULL);
    CHECK_GRAD(ctx, fn_pyramid_concat, NULL, 1, in, NULL);
    check_f32_vs_f64(ctx, fn_pyramid_concat, len, 1, in, 1e-6, "pyramid");
    heed_rnn_opts o = {.kind = HEED_RNN_LSTM, .input_size = 4, .hidden_size = 3, .bidirectional = true};
    check_layer(o, 7, 3, len, false, true, 0, "pyramid BLSTM, odd T = 7, lengths 7 2 5");

    /* values: frames paired, padding and frame T of odd T zero, lengths halved (ceil) */
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = vin(g, HEED_F64, HEED_SHAPE(5, 2, 1), 1, false);
    int64_t lens[2] = {5, 2}, out[2];
    heed_tensor *y = heed_pyramid_concat(g, x, lens, out);
    CHECK(y && y->shape[0] == 3 && y->shape[2] == 2 && out[0] == 3 && out[1] == 1, "shape/lengths");
    if (y) {
        const double *X = x->data, *Y = y->data;
        CHECK(Y[(1 * 2 + 0) * 2 + 0] == X[2 * 2 + 0] && Y[(1 * 2 + 0) * 2 + 1] == X[3 * 2 + 0],
              "t=1 pairs frames 2, 3");
        CHECK(Y[(2 * 2 + 0) * 2 + 0] == X[4 * 2 + 0] && Y[(2 * 2 + 0) * 2 + 1] == 0, "odd T: frame 5 is zero");
        CHECK(Y[(0 * 2 + 1) * 2 + 1] == X[1 * 2 + 1] && Y[(1 * 2 + 1) * 2 + 0] == 0, "length 2: frames >= 2 zero");
    }
    heed_graph_free(g);
}

/* ---------------------------------------------------------------- f32 against f64 */

/* Runs the same layer on f32 and f64 copies of the same weights and inputs, forward and
 * backward; outputs and every gradient must agree to tol (normwise relative). */
static void f32_vs_f64_layer(heed_rnn_opts o, int64_t T, int64_t B, const int64_t *lengths, double tol,
                             const char *what) {
    heed_params *P[2];
    heed_rnn rnn[2];
    heed_graph *g[2];
    heed_tensor *x[2], *h0[2], *c0[2], *y[2], *hn[2], *cn[2];
    int D = o.bidirectional ? 2 : 1, L = o.layers ? o.layers : 1;
    bool lstm = o.kind == HEED_RNN_LSTM;
    uint64_t seed, counter;
    heed_ctx_rng_state(ctx, &seed, &counter);
    for (int k = 0; k < 2; k++) {
        heed_dtype dt = k ? HEED_F64 : HEED_F32;
        P[k] = heed_params_new(ctx, dt);
        heed_rnn_declare(&rnn[k], P[k], "r", &o);
        for (int i = 0; i < heed_params_count(P[k]); i++) /* f64 gets the f32-rounded values */
            for (int64_t j = 0; j < heed_params_at(P[k], i)->numel; j++) {
                float w = ((float *)heed_params_at(P[0], i)->data)[j];
                if (k) ((double *)heed_params_at(P[1], i)->data)[j] = w;
            }
        g[k] = heed_graph_new(ctx);
        x[k] = vin(g[k], dt, HEED_SHAPE(T, B, o.input_size), 1, true);
        h0[k] = vin(g[k], dt, HEED_SHAPE(L * D, B, o.hidden_size), 2, true);
        c0[k] = vin(g[k], dt, HEED_SHAPE(L * D, B, o.hidden_size), 3, true);
        heed_ctx_set_rng_state(ctx, seed, counter); /* same dropout masks */
        y[k] = lstm ? heed_lstm(g[k], &rnn[k], x[k], h0[k], c0[k], lengths, &hn[k], &cn[k])
                    : heed_gru(g[k], &rnn[k], x[k], h0[k], lengths, &hn[k]);
        if (!lstm) cn[k] = NULL;
        CHECK(heed_backward(g[k], weighted_loss(g[k], y[k], hn[k], cn[k])) == HEED_OK, "%s: %s", what,
              heed_graph_error(g[k]));
    }
    if (y[0] && y[1]) {
        const heed_tensor *pairs[][2] = {{y[0], y[1]}, {hn[0], hn[1]}, {cn[0], cn[1]}};
        for (int p = 0; p < 3; p++) {
            if (!pairs[p][0]) continue;
            double *ref = malloc((size_t)pairs[p][1]->numel * sizeof *ref);
            to_double(pairs[p][1], pairs[p][1]->data, ref);
            char name[128];
            snprintf(name, sizeof name, "%s: output %d", what, p);
            close_to(name, pairs[p][0]->data, HEED_F32, ref, pairs[p][1]->numel, tol);
            free(ref);
        }
        heed_tensor *gr[][2] = {{x[0], x[1]}, {h0[0], h0[1]}, {c0[0], c0[1]}};
        for (int p = 0; p < (lstm ? 3 : 2); p++) {
            double *ref = malloc((size_t)gr[p][1]->numel * sizeof *ref);
            to_double(gr[p][1], gr[p][1]->grad, ref);
            char name[128];
            snprintf(name, sizeof name, "%s: input grad %d", what, p);
            close_to(name, gr[p][0]->grad, HEED_F32, ref, gr[p][1]->numel, tol);
            free(ref);
        }
        for (int i = 0; i < heed_params_count(P[0]); i++) {
            heed_tensor *a = heed_params_at(P[0], i), *b = heed_params_at(P[1], i);
            double *ref = malloc((size_t)b->numel * sizeof *ref);
            to_double(b, b->grad, ref);
            char name[128];
            snprintf(name, sizeof name, "%s: d%s", what, a->name);
            close_to(name, a->grad, HEED_F32, ref, b->numel, tol);
            free(ref);
        }
    }
    for (int k = 0; k < 2; k++) {
        heed_graph_free(g[k]);
        heed_params_free(P[k]);
    }
}

static void f32_matches_f64(void) {
    int64_t len[5] = {6, 1, 4, 6, 2};
    for (int kind = 0; kind < 2; kind++) {
        /* H = 21: two AVX2 blocks and a tail of 5; one thread per direction */
        heed_rnn_opts o = {.kind = (heed_rnn_kind)kind,
                           .input_size = 11,
                           .hidden_size = 21,
                           .layers = 2,
                           .bidirectional = true,
                           .dropout = 0.2};
        f32_vs_f64_layer(o, 6, 5, len, 2e-5, kind ? "GRU H=21 bi" : "LSTM H=21 bi");
        /* H = 124, one direction: the units split over threads, a short last block */
        heed_rnn_opts u = {.kind = (heed_rnn_kind)kind, .input_size = 7, .hidden_size = 124};
        f32_vs_f64_layer(u, 6, 5, len, 2e-5, kind ? "GRU H=124" : "LSTM H=124");
        u.bidirectional = true;
        u.layers = 2;
        f32_vs_f64_layer(u, 5, 5, NULL, 2e-5, kind ? "GRU H=124 bi 2 layers" : "LSTM H=124 bi 2 layers");
        /* B = 19, one direction: the rows split over threads */
        int64_t len19[19] = {6, 1, 4, 6, 2, 5, 6, 3, 6, 1, 2, 6, 6, 4, 5, 6, 2, 3, 6};
        heed_rnn_opts r = {.kind = (heed_rnn_kind)kind, .input_size = 7, .hidden_size = 75, .layers = 2};
        f32_vs_f64_layer(r, 6, 19, len19, 2e-5, kind ? "GRU B=19" : "LSTM B=19");
    }
}

/* ---------------------------------------------------------------- cell loop against the layer */

/* One layer stack as a loop of cell ops (the reference semantics), for no lengths:
 * uni-directional stacks of any depth, or one bidirectional layer. Returns the loss
 * sum(y * wy) + sum(h_n * wh) + sum(c_n * wc); x_t, h0, c0 slices are inputs that take
 * gradients (returned through xs, hs0, cs0). */
static heed_tensor *cell_loop(heed_graph *g, const heed_rnn *rnn, const double *xd, const double *h0d,
                              const double *c0d, int64_t T, int64_t B, heed_dtype dt, heed_tensor **xs,
                              heed_tensor **hs0, heed_tensor **cs0, heed_tensor **outs) {
    const heed_rnn_opts *o = &rnn->opts;
    int64_t I = o->input_size, H = o->hidden_size;
    int L = o->layers, D = o->bidirectional ? 2 : 1;
    bool lstm = o->kind == HEED_RNN_LSTM;
    heed_tensor *loss = heed_zeros(g, dt, HEED_SCALAR);
    heed_tensor *below[64];
    double *wy = malloc((size_t)(T * B * D * H) * sizeof *wy), *buf = malloc((size_t)(B * H) * sizeof *buf);
    for (int64_t k = 0; k < T * B * D * H; k++) wy[k] = v(k, 7);
    for (int64_t t = 0; t < T; t++) xs[t] = heed_requires_grad(heed_input_f64(g, dt, HEED_SHAPE(B, I), xd + t * B * I));
    for (int l = 0; l < L; l++)
        for (int d = 0; d < D; d++) {
            int idx = l * D + d;
            heed_tensor *h = hs0[idx] = heed_requires_grad(heed_input_f64(g, dt, HEED_SHAPE(B, H), h0d + idx * B * H));
            heed_tensor *c = cs0[idx] = heed_requires_grad(heed_input_f64(g, dt, HEED_SHAPE(B, H), c0d + idx * B * H));
            for (int64_t s = 0; s < T; s++) {
                int64_t t = d ? T - 1 - s : s;
                heed_tensor *in = l == 0 ? xs[t] : below[t], *c1 = NULL;
                if (lstm) {
                    h = heed_lstm_cell(g, in, h, c, rnn->w_ih[l][d], rnn->w_hh[l][d], rnn->b_ih[l][d], rnn->b_hh[l][d],
                                       &c1);
                    c = c1;
                } else {
                    h = heed_gru_cell(g, in, h, rnn->w_ih[l][d], rnn->w_hh[l][d], rnn->b_ih[l][d], rnn->b_hh[l][d]);
                }
                if (l == L - 1) { /* y[t, :, d*H : (d+1)*H] weighted by wy's slice */
                    for (int64_t b = 0; b < B; b++)
                        for (int64_t j = 0; j < H; j++) buf[b * H + j] = wy[(t * B + b) * D * H + d * H + j];
                    loss = heed_add(g, loss,
                                    heed_sum_all(g, heed_mul(g, h, heed_input_f64(g, dt, HEED_SHAPE(B, H), buf))));
                    outs[t * D + d] = h;
                } else {
                    below[t] = h;
                }
            }
            for (int64_t k = 0; k < B * H; k++) buf[k] = v(idx * B * H + k, 8);
            loss = heed_add(g, loss, heed_sum_all(g, heed_mul(g, h, heed_input_f64(g, dt, HEED_SHAPE(B, H), buf))));
            if (lstm) {
                for (int64_t k = 0; k < B * H; k++) buf[k] = v(idx * B * H + k, 9);
                loss = heed_add(g, loss, heed_sum_all(g, heed_mul(g, c, heed_input_f64(g, dt, HEED_SHAPE(B, H), buf))));
            }
        }
    free(wy);
    free(buf);
    return loss;
}

static void cell_loop_vs_layer(heed_rnn_opts o, int64_t T, int64_t B, heed_dtype dt, double tol, const char *what) {
    heed_params *P = heed_params_new(ctx, dt);
    heed_rnn rnn;
    heed_rnn_declare(&rnn, P, "r", &o);
    rnn.opts.layers = o.layers ? o.layers : 1;
    int L = rnn.opts.layers, D = o.bidirectional ? 2 : 1;
    int64_t I = o.input_size, H = o.hidden_size, nP = heed_params_padded_numel(P);
    bool lstm = o.kind == HEED_RNN_LSTM;
    double *xd = malloc((size_t)(T * B * I) * sizeof *xd), *h0d = malloc((size_t)(L * D * B * H) * sizeof *h0d);
    double *c0d = malloc((size_t)(L * D * B * H) * sizeof *c0d), *grads = malloc((size_t)nP * sizeof *grads);
    for (int64_t k = 0; k < T * B * I; k++) xd[k] = v(k, 1);
    for (int64_t k = 0; k < L * D * B * H; k++) h0d[k] = v(k, 2), c0d[k] = v(k, 3);

    /* the fused layer */
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = heed_requires_grad(heed_input_f64(g, dt, HEED_SHAPE(T, B, I), xd));
    heed_tensor *h0 = heed_requires_grad(heed_input_f64(g, dt, HEED_SHAPE(L * D, B, H), h0d));
    heed_tensor *c0 = heed_requires_grad(heed_input_f64(g, dt, HEED_SHAPE(L * D, B, H), c0d));
    heed_tensor *hn, *cn = NULL;
    heed_tensor *y = lstm ? heed_lstm(g, &rnn, x, h0, c0, NULL, &hn, &cn) : heed_gru(g, &rnn, x, h0, NULL, &hn);
    heed_params_zero_grad(P);
    CHECK(heed_backward(g, weighted_loss(g, y, hn, cn)) == HEED_OK, "%s: %s", what, heed_graph_error(g));
    store_grads(P, grads);

    /* the cell loop */
    heed_graph *g2 = heed_graph_new(ctx);
    heed_tensor *xs[64], *hs0[16], *cs0[16], *outs[128];
    heed_tensor *loss = cell_loop(g2, &rnn, xd, h0d, c0d, T, B, dt, xs, hs0, cs0, outs);
    heed_params_zero_grad(P);
    CHECK(heed_backward(g2, loss) == HEED_OK, "%s: %s", what, heed_graph_error(g2));
    if (y && heed_graph_status(g2) == HEED_OK) {
        double *ref = malloc((size_t)(T * B * D * H + nP + T * B * I) * sizeof *ref);
        /* outputs: y[t, b, d*H + j] against the cell's h */
        check_norm c = check_norm_start(1);
        for (int64_t t = 0; t < T; t++)
            for (int d = 0; d < D; d++)
                for (int64_t b = 0; b < B; b++)
                    for (int64_t j = 0; j < H; j++) {
                        double a = heed_get(y, (t * B + b) * D * H + d * H + j),
                               r = heed_get(outs[t * D + d], b * H + j);
                        check_norm_add(&c, a, r);
                    }
        CHECK(check_norm_ok(c, tol), "%s: outputs differ by %.3g", what, c.err);
        /* parameter gradients: the layer's (saved) against the loop's (in the store) */
        store_grads(P, ref);
        char name[128];
        snprintf(name, sizeof name, "%s: parameter gradients", what);
        close_to(name, grads, HEED_F64, ref, nP, tol);
        /* input gradients */
        c = check_norm_start(1);
        for (int64_t t = 0; t < T; t++)
            for (int64_t k = 0; k < B * I; k++) {
                double a = dt == HEED_F32 ? ((float *)x->grad)[t * B * I + k] : ((double *)x->grad)[t * B * I + k];
                double r = dt == HEED_F32 ? ((float *)xs[t]->grad)[k] : ((double *)xs[t]->grad)[k];
                check_norm_add(&c, a, r);
            }
        for (int idx = 0; idx < L * D; idx++)
            for (int64_t k = 0; k < B * H; k++) {
                heed_tensor *pair[2][2] = {{h0, hs0[idx]}, {c0, cs0[idx]}};
                for (int p = 0; p < (lstm ? 2 : 1); p++) {
                    double a = dt == HEED_F32 ? ((float *)pair[p][0]->grad)[idx * B * H + k]
                                              : ((double *)pair[p][0]->grad)[idx * B * H + k];
                    double r = dt == HEED_F32 ? ((float *)pair[p][1]->grad)[k] : ((double *)pair[p][1]->grad)[k];
                    check_norm_add(&c, a, r);
                }
            }
        CHECK(check_norm_ok(c, tol), "%s: input gradients differ by %.3g (scale %.3g)", what, c.err, c.scale);
        free(ref);
    }
    heed_graph_free(g);
    heed_graph_free(g2);
    free(xd), free(h0d), free(c0d), free(grads);
    heed_params_free(P);
}

static void cell_loop_matches_layer(void) {
    for (int kind = 0; kind < 2; kind++)
        for (int dti = 0; dti < 2; dti++) {
            heed_dtype dt = dti ? HEED_F64 : HEED_F32;
            double tol = dti ? 1e-11 : 1e-5;
            heed_rnn_opts uni = {.kind = (heed_rnn_kind)kind, .input_size = 7, .hidden_size = 13, .layers = 3};
            cell_loop_vs_layer(uni, 6, 4, dt, tol, "3 layers");
            heed_rnn_opts bi = {.kind = (heed_rnn_kind)kind, .input_size = 5, .hidden_size = 10, .bidirectional = true};
            cell_loop_vs_layer(bi, 5, 3, dt, tol, "bidirectional");
            /* units, then rows, split over threads inside the layer */
            heed_rnn_opts big = {.kind = (heed_rnn_kind)kind, .input_size = 9, .hidden_size = 132};
            cell_loop_vs_layer(big, 5, 6, dt, tol, "H = 132");
            cell_loop_vs_layer(big, 4, 18, dt, tol, "H = 132, B = 18");
        }
}

/* ---------------------------------------------------------------- lengths */

/* The batched layer with lengths against each sequence run alone (B = 1, T = its length):
 * same outputs up to the length and zeros after, same final states, same gradients. */
static void lengths_match_separate_runs(void) {
    for (int kind = 0; kind < 2; kind++) {
        heed_rnn_opts o = {.kind = (heed_rnn_kind)kind,
                           .input_size = 3,
                           .hidden_size = 20,
                           .layers = 2,
                           .bidirectional = true};
        heed_params *P = heed_params_new(ctx, HEED_F64);
        heed_rnn rnn;
        heed_rnn_declare(&rnn, P, "r", &o);
        enum { T = 6, B = 4, I = 3, H = 20, LD = 4 };
        int64_t len[B] = {6, 1, 4, 3};
        bool lstm = kind == HEED_RNN_LSTM;
        int64_t nP = heed_params_padded_numel(P);
        double *pg = malloc((size_t)nP * sizeof *pg);
        heed_graph *g = heed_graph_new(ctx);
        heed_tensor *x = vin(g, HEED_F64, HEED_SHAPE(T, B, I), 1, true),
                    *h0 = vin(g, HEED_F64, HEED_SHAPE(LD, B, H), 2, true);
        heed_tensor *c0 = vin(g, HEED_F64, HEED_SHAPE(LD, B, H), 3, true), *hn, *cn = NULL;
        heed_tensor *y = lstm ? heed_lstm(g, &rnn, x, h0, c0, len, &hn, &cn) : heed_gru(g, &rnn, x, h0, len, &hn);
        heed_params_zero_grad(P);
        CHECK(heed_backward(g, weighted_loss(g, y, hn, cn)) == HEED_OK, "%s", heed_graph_error(g));
        memcpy(pg, heed_params_grads(P), (size_t)nP * sizeof *pg);
        heed_params_zero_grad(P);
        heed_graph *g1 = heed_graph_new(ctx);
        double err = 0;
        for (int64_t b = 0; b < B && y; b++) {
            heed_graph_reset(g1);
            int64_t Tb = len[b];
            double xb[T * I], hb[LD * H], cb[LD * H], wy[T * 2 * H], wh[LD * H], wc[LD * H];
            for (int64_t t = 0; t < Tb; t++)
                for (int64_t i = 0; i < I; i++) xb[t * I + i] = ((double *)x->data)[(t * B + b) * I + i];
            for (int64_t k = 0; k < LD; k++)
                for (int64_t j = 0; j < H; j++) {
                    hb[k * H + j] = ((double *)h0->data)[(k * B + b) * H + j];
                    cb[k * H + j] = ((double *)c0->data)[(k * B + b) * H + j];
                    wh[k * H + j] = v((k * B + b) * H + j, 8);
                    wc[k * H + j] = v((k * B + b) * H + j, 9);
                }
            for (int64_t t = 0; t < Tb; t++)
                for (int64_t j = 0; j < 2 * H; j++) wy[t * 2 * H + j] = v((t * B + b) * 2 * H + j, 7);
            heed_tensor *xs = heed_requires_grad(heed_input_f64(g1, HEED_F64, HEED_SHAPE(Tb, 1, I), xb));
            heed_tensor *hs = heed_requires_grad(heed_input_f64(g1, HEED_F64, HEED_SHAPE(LD, 1, H), hb));
            heed_tensor *cs = heed_requires_grad(heed_input_f64(g1, HEED_F64, HEED_SHAPE(LD, 1, H), cb));
            heed_tensor *hns, *cns = NULL;
            heed_tensor *ys =
                lstm ? heed_lstm(g1, &rnn, xs, hs, cs, NULL, &hns, &cns) : heed_gru(g1, &rnn, xs, hs, NULL, &hns);
            heed_tensor *loss =
                heed_sum_all(g1, heed_mul(g1, ys, heed_input_f64(g1, HEED_F64, HEED_SHAPE(Tb, 1, 2 * H), wy)));
            loss =
                heed_add(g1, loss,
                         heed_sum_all(g1, heed_mul(g1, hns, heed_input_f64(g1, HEED_F64, HEED_SHAPE(LD, 1, H), wh))));
            if (lstm)
                loss = heed_add(g1, loss,
                                heed_sum_all(g1, heed_mul(g1, cns,
                                                          heed_input_f64(g1, HEED_F64, HEED_SHAPE(LD, 1, H), wc))));
            CHECK(heed_backward(g1, loss) == HEED_OK, "%s", heed_graph_error(g1)); /* parameter grads add up over b */
            if (!ys) break;
            for (int64_t t = 0; t < T; t++)
                for (int64_t j = 0; j < 2 * H; j++) {
                    double a = ((double *)y->data)[(t * B + b) * 2 * H + j];
                    double r = t < Tb ? ((double *)ys->data)[t * 2 * H + j] : 0;
                    err = fmax(err, check_err(a, r));
                    if (t >= Tb) CHECK(a == 0, "output past the end must be exactly 0");
                }
            for (int64_t k = 0; k < LD; k++)
                for (int64_t j = 0; j < H; j++) {
                    err = fmax(err,
                               check_err(((double *)hn->data)[(k * B + b) * H + j], ((double *)hns->data)[k * H + j]));
                    err = fmax(err,
                               check_err(((double *)h0->grad)[(k * B + b) * H + j], ((double *)hs->grad)[k * H + j]));
                    if (lstm) {
                        err = fmax(err, check_err(((double *)cn->data)[(k * B + b) * H + j],
                                                  ((double *)cns->data)[k * H + j]));
                        err = fmax(err, check_err(((double *)c0->grad)[(k * B + b) * H + j],
                                                  ((double *)cs->grad)[k * H + j]));
                    }
                }
            for (int64_t t = 0; t < T; t++)
                for (int64_t i = 0; i < I; i++) {
                    double a = ((double *)x->grad)[(t * B + b) * I + i],
                           r = t < Tb ? ((double *)xs->grad)[t * I + i] : 0;
                    err = fmax(err, check_err(a, r));
                }
        }
        CHECK(err < 1e-12, "%s: batched with lengths vs separate runs: max difference %.3g", lstm ? "LSTM" : "GRU",
              err);
        close_to("parameter gradients, batched vs separate", pg, HEED_F64, heed_params_grads(P), nP, 1e-12);
        heed_graph_free(g1);
        heed_graph_free(g);
        free(pg);
        heed_params_free(P);
    }
}

/* ---------------------------------------------------------------- dropout, no-grad */

static void dropout_and_modes(void) {
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_rnn rnn;
    heed_rnn_opts o = {.kind = HEED_RNN_LSTM, .input_size = 4, .hidden_size = 16, .layers = 2, .dropout = 0.5};
    heed_rnn_declare(&rnn, P, "r", &o);
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = vin(g, HEED_F32, HEED_SHAPE(5, 3, 4), 1, false);
    heed_tensor *train = heed_lstm(g, &rnn, x, NULL, NULL, NULL, NULL, NULL);
    heed_graph_set_training(g, false);
    heed_tensor *eval = heed_lstm(g, &rnn, x, NULL, NULL, NULL, NULL, NULL);
    rnn.opts.dropout = 0;
    heed_graph_set_training(g, true);
    heed_tensor *nodrop = heed_lstm(g, &rnn, x, NULL, NULL, NULL, NULL, NULL);
    CHECK(train && eval && nodrop, "%s", heed_graph_error(g));
    if (train && eval && nodrop) {
        CHECK(memcmp(eval->data, nodrop->data, (size_t)eval->numel * 4) == 0, "eval mode = no dropout");
        CHECK(memcmp(train->data, eval->data, (size_t)eval->numel * 4) != 0, "training applies dropout");
    }
    /* no-grad: nothing recorded, same values */
    heed_graph_reset(g);
    x = heed_requires_grad(vin(g, HEED_F32, HEED_SHAPE(5, 3, 4), 1, false));
    heed_no_grad_begin(g);
    heed_tensor *y = heed_lstm(g, &rnn, x, NULL, NULL, NULL, NULL, NULL);
    heed_no_grad_end(g);
    CHECK(y && heed_graph_nodes(g) == 0 && !(y->flags & HEED_REQUIRES_GRAD), "no-grad records nothing");
    if (y && nodrop) CHECK(memcmp(y->data, nodrop->data, (size_t)y->numel * 4) == 0, "no-grad gives the same values");
    heed_graph_free(g);
    heed_params_free(P);
}

/* ---------------------------------------------------------------- bad input */

static void bad_inputs(void) {
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_rnn lstm, gru;
    heed_rnn_opts o = {.kind = HEED_RNN_LSTM, .input_size = 3, .hidden_size = 4, .bidirectional = true};
    heed_rnn_declare(&lstm, P, "l", &o);
    o.kind = HEED_RNN_GRU;
    heed_rnn_declare(&gru, P, "g", &o);
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x, *h, *c1;
#define X3(T, B, I) heed_zeros(g, HEED_F32, HEED_SHAPE(T, B, I))
    /* cells */
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    h = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 4));
    CHECK(!heed_lstm_cell(g, X3(1, 2, 3), h, h, lstm.w_ih[0][0], lstm.w_hh[0][0], NULL, NULL, &c1), "3-D x");
    CHECK_ERR(g, HEED_ERR_SHAPE, "must be [batch, input]");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5));
    CHECK(!heed_lstm_cell(g, x, NULL, NULL, lstm.w_ih[0][0], lstm.w_hh[0][0], NULL, NULL, &c1), "I mismatch");
    CHECK_ERR(g, HEED_ERR_SHAPE, "x[2,5] has 5 input features but w_ih[16,3] takes 3 (x must be [batch, 3])");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    CHECK(!heed_lstm_cell(g, x, NULL, NULL, gru.w_ih[0][0], lstm.w_hh[0][0], NULL, NULL, &c1), "w_ih rows");
    CHECK_ERR(g, HEED_ERR_SHAPE, "w_ih[12,3] must be [16, input]");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    CHECK(!heed_lstm_cell(g, x, heed_zeros(g, HEED_F32, HEED_SHAPE(3, 4)), NULL, lstm.w_ih[0][0], lstm.w_hh[0][0], NULL,
                          NULL, &c1),
          "h");
    CHECK_ERR(g, HEED_ERR_SHAPE, "h[3,4] must be [2, 4]");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    CHECK(!heed_lstm_cell(g, x, NULL, NULL, lstm.w_ih[0][0], lstm.w_hh[0][0], NULL, NULL, NULL), "c_out");
    CHECK_ERR(g, HEED_ERR_ARG, "c_out is NULL");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    CHECK(!heed_gru_cell(g, x, NULL, lstm.w_ih[0][0], lstm.w_hh[0][0], NULL, NULL), "LSTM weights in a GRU cell");
    CHECK_ERR(g, HEED_ERR_SHAPE, "w_hh[16,4] must be [3*H, H]");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    CHECK(!heed_gru_cell(g, x, NULL, gru.w_ih[0][0], gru.w_hh[0][0], gru.b_ih[0][0], lstm.b_hh[0][0]), "bias");
    CHECK_ERR(g, HEED_ERR_SHAPE, "b_hh[16] must be [12]");
    x = heed_zeros(g, HEED_F64, HEED_SHAPE(2, 3));
    CHECK(!heed_gru_cell(g, x, NULL, gru.w_ih[0][0], gru.w_hh[0][0], NULL, NULL), "dtype");
    CHECK_ERR(g, HEED_ERR_DTYPE, "dtypes must match");
    CHECK(!heed_gru_cell(g, NULL, NULL, gru.w_ih[0][0], gru.w_hh[0][0], NULL, NULL), "NULL x");
    CHECK_ERR(g, HEED_ERR_ARG, "x is NULL");
    /* layers */
    int64_t bad0[2] = {3, 0}, bad_big[2] = {3, 4};
    CHECK(!heed_lstm(g, &lstm, heed_zeros(g, HEED_F32, HEED_SHAPE(3, 3)), NULL, NULL, NULL, NULL, NULL), "2-D x");
    CHECK_ERR(g, HEED_ERR_SHAPE, "x[3,3] must be [T, batch, 3]");
    CHECK(!heed_lstm(g, &lstm, X3(3, 2, 5), NULL, NULL, NULL, NULL, NULL), "I");
    CHECK_ERR(g, HEED_ERR_SHAPE, "x[3,2,5] must be [T, batch, 3]");
    CHECK(!heed_lstm(g, &lstm, X3(3, 2, 3), NULL, NULL, bad0, NULL, NULL), "length 0");
    CHECK_ERR(g, HEED_ERR_ARG, "lengths[1] = 0");
    CHECK(!heed_lstm(g, &lstm, X3(3, 2, 3), NULL, NULL, bad_big, NULL, NULL), "length > T");
    CHECK_ERR(g, HEED_ERR_ARG, "lengths[1] = 4 for x[3,2,3] (each must be in 1..T = 3)");
    CHECK(!heed_lstm(g, NULL, X3(3, 2, 3), NULL, NULL, NULL, NULL, NULL), "NULL rnn");
    CHECK_ERR(g, HEED_ERR_ARG, "rnn is NULL");
    CHECK(!heed_lstm(g, &gru, X3(3, 2, 3), NULL, NULL, NULL, NULL, NULL), "GRU weights to heed_lstm");
    CHECK_ERR(g, HEED_ERR_ARG, "declared as a GRU");
    CHECK(!heed_gru(g, &gru, X3(3, 2, 3), heed_zeros(g, HEED_F32, HEED_SHAPE(1, 2, 4)), NULL, NULL), "h0 shape");
    CHECK_ERR(g, HEED_ERR_SHAPE, "h0[1,2,4] must be [layers*dirs, batch, hidden] = [2, 2, 4]");
    CHECK(!heed_lstm(g, &lstm, X3(0, 2, 3), NULL, NULL, NULL, NULL, NULL), "T = 0");
    CHECK_ERR(g, HEED_ERR_SHAPE, "T, batch >= 1");
    heed_rnn hand = lstm; /* filled by hand, wrongly */
    hand.w_hh[0][1] = lstm.w_ih[0][1];
    CHECK(!heed_lstm(g, &hand, X3(3, 2, 3), NULL, NULL, NULL, NULL, NULL), "bad weight");
    CHECK_ERR(g, HEED_ERR_SHAPE, "weight_hh_l0_reverse is [16,3], must be [16, 4]");
    hand = lstm;
    hand.b_ih[0][0] = NULL;
    CHECK(!heed_lstm(g, &hand, X3(3, 2, 3), NULL, NULL, NULL, NULL, NULL), "missing bias");
    CHECK_ERR(g, HEED_ERR_ARG, "bias_ih_l0 is NULL");
    hand = lstm;
    hand.opts.layers = 2; /* layer 1 weights missing */
    CHECK(!heed_lstm(g, &hand, X3(3, 2, 3), NULL, NULL, NULL, NULL, NULL), "missing layer");
    CHECK_ERR(g, HEED_ERR_ARG, "weight_ih_l1 is NULL");
    hand = lstm;
    hand.opts.dropout = -1;
    CHECK(!heed_lstm(g, &hand, X3(3, 2, 3), NULL, NULL, NULL, NULL, NULL), "dropout");
    CHECK_ERR(g, HEED_ERR_ARG, "dropout -1");
    CHECK(!heed_lstm(g, &lstm, heed_zeros(g, HEED_F64, HEED_SHAPE(3, 2, 3)), NULL, NULL, NULL, NULL, NULL), "dtype");
    CHECK_ERR(g, HEED_ERR_DTYPE, "dtypes must match");
    /* pyramid */
    int64_t out[2];
    CHECK(!heed_pyramid_concat(g, heed_zeros(g, HEED_F32, HEED_SHAPE(3, 3)), NULL, out), "2-D");
    CHECK_ERR(g, HEED_ERR_SHAPE, "must be [T, batch, features]");
    CHECK(!heed_pyramid_concat(g, X3(3, 2, 3), bad_big, out), "lengths");
    CHECK_ERR(g, HEED_ERR_ARG, "lengths[1] = 4");
    CHECK(!heed_pyramid_lstm(g, &lstm, X3(3, 2, 3), NULL, NULL, NULL, NULL), "out_lengths");
    CHECK_ERR(g, HEED_ERR_ARG, "out_lengths is NULL");
    CHECK(!heed_pyramid_lstm(g, &lstm, X3(3, 2, 3), NULL, out, NULL, NULL), "2F != input_size");
    CHECK_ERR(g, HEED_ERR_SHAPE, "x[2,2,6] must be [T, batch, 3]");
    /* a sticky error: later calls return NULL at once */
    heed_graph_fail(g, HEED_ERR_STATE, "earlier");
    CHECK(!heed_lstm(g, &lstm, X3(3, 2, 3), NULL, NULL, NULL, NULL, NULL), "sticky");
    CHECK_ERR(g, HEED_ERR_STATE, "earlier");
#undef X3
    heed_graph_free(g);
    heed_params_free(P);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 5, .threads = 2}); /* 2: the unit split runs even on 1 core */
    RUN(declare_names_and_init);
    RUN(torch_cells);
    RUN(torch_layers);
    RUN(gradcheck_cells);
    RUN(gradcheck_layers);
    RUN(gradcheck_pyramid);
    RUN(f32_matches_f64);
    RUN(cell_loop_matches_layer);
    RUN(lengths_match_separate_runs);
    RUN(dropout_and_modes);
    RUN(bad_inputs);
    heed_ctx_free(ctx);
    return check_summary();
}
