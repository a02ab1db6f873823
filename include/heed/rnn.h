/* heed: Recurrent cells and layers (ops/rnn*.c). Part of the public API: <heed.h>
 * includes every part; a file may include just the parts it uses. */
#ifndef HEED_API_RNN_H
#define HEED_API_RNN_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ recurrent (ops/rnn*.c) */

/* LSTM and GRU cells and layers with PyTorch's equations, gate order and weight names,
 * so torch.nn.LSTM / GRU / LSTMCell / GRUCell state_dicts load one to one (docs/rnn.md).
 * Weights stack the gates' rows: w_ih[G*H, I], w_hh[G*H, H], b_ih[G*H], b_hh[G*H] with
 * blocks of H rows in the order LSTM i, f, g, o (G = 4) and GRU r, z, n (G = 3).
 *   LSTM: i = sig(W_ii x + b_ii + W_hi h + b_hi), f, o alike, g = tanh(...),
 *         c' = f*c + i*g,  h' = o*tanh(c')
 *   GRU:  r = sig(W_ir x + b_ir + W_hr h + b_hr), z alike,
 *         n = tanh(W_in x + b_in + r*(W_hn h + b_hn)),  h' = (1-z)*n + z*h
 * Every op here is fused: the gate pre-activations come from GEMMs into one buffer, one
 * kernel (SLEEF vector sigmoid/tanh on f32) computes all gates, and backward is analytic. */
typedef enum { HEED_RNN_LSTM = 0, HEED_RNN_GRU = 1 } heed_rnn_kind;

#define HEED_RNN_MAX_LAYERS 8

/* One LSTM step (torch.nn.LSTMCell): x[B,I], h[B,H], c[B,H], w_ih[4H,I], w_hh[4H,H],
 * b_ih[4H], b_hh[4H]. h and c may be NULL (zero state); b_ih and b_hh may be NULL (no
 * bias). Returns h'[B,H] and stores c'[B,H] in *c_out (c_out must not be NULL). */
heed_tensor *heed_lstm_cell(heed_graph *g, heed_tensor *x, heed_tensor *h, heed_tensor *c, heed_tensor *w_ih,
                            heed_tensor *w_hh, heed_tensor *b_ih, heed_tensor *b_hh, heed_tensor **c_out);
/* One GRU step (torch.nn.GRUCell): x[B,I], h[B,H] (NULL: zeros), w_ih[3H,I], w_hh[3H,H],
 * b_ih[3H], b_hh[3H] (NULL: none). Returns h'[B,H]. */
heed_tensor *heed_gru_cell(heed_graph *g, heed_tensor *x, heed_tensor *h, heed_tensor *w_ih, heed_tensor *w_hh,
                           heed_tensor *b_ih, heed_tensor *b_hh);

typedef struct {
    heed_rnn_kind kind;
    int64_t input_size, hidden_size;
    int layers; /* 0 means 1; at most HEED_RNN_MAX_LAYERS */
    bool bidirectional;
    bool batch_first;   /* layers: x [B,T,I] and output [B,T,dirs*H] (PyTorch's meaning);
                           states stay [layers*dirs, B, H]. Cells ignore it. */
    bool no_bias;       /* PyTorch's bias=False */
    double dropout;     /* on the output of every layer but the last, when training; [0, 1) */
    double forget_bias; /* LSTM: if != 0, the forget block of bias_ih starts at this value
                           and that of bias_hh at 0 (so the forget bias is exactly it) */
} heed_rnn_opts;

/* The weights of a cell, named as in torch.nn.LSTMCell / GRUCell. */
typedef struct {
    heed_rnn_kind kind;
    int64_t input_size, hidden_size;
    heed_tensor *w_ih, *w_hh, *b_ih, *b_hh; /* biases NULL without bias */
} heed_rnn_cell;

/* The weights of a layer stack, [layer][direction] (direction 1 = reverse), named as in
 * torch.nn.LSTM / GRU. May also be filled by hand with any tensors of the right shapes
 * (opts.layers must then be set, and the biases left NULL when opts.no_bias). */
typedef struct {
    heed_rnn_opts opts;
    heed_tensor *w_ih[HEED_RNN_MAX_LAYERS][2], *w_hh[HEED_RNN_MAX_LAYERS][2];
    heed_tensor *b_ih[HEED_RNN_MAX_LAYERS][2], *b_hh[HEED_RNN_MAX_LAYERS][2];
} heed_rnn;

/* Declares prefix.weight_ih, prefix.weight_hh, prefix.bias_ih, prefix.bias_hh (prefix ""
 * or NULL: no prefix and no dot) in P with PyTorch's init U(-1/sqrt(H), 1/sqrt(H)) and
 * fills *cell. Uses opts' kind, input_size, hidden_size, no_bias, forget_bias. On error
 * (message in heed_ctx_error) nothing is added to P. */
heed_status heed_rnn_cell_declare(heed_rnn_cell *cell, heed_params *P, const char *prefix, const heed_rnn_opts *opts);
/* One step of a declared cell: heed_lstm_cell / heed_gru_cell with the cell's weights.
 * A cell of the other kind is an error (HEED_ERR_ARG). */
heed_tensor *heed_lstm_cell_step(heed_graph *g, const heed_rnn_cell *cell, heed_tensor *x, heed_tensor *h,
                                 heed_tensor *c, heed_tensor **c_out);
heed_tensor *heed_gru_cell_step(heed_graph *g, const heed_rnn_cell *cell, heed_tensor *x, heed_tensor *h);
/* Declares a stack of layers with PyTorch's names: prefix.weight_ih_l0 [G*H, input_size],
 * prefix.weight_hh_l0 [G*H, H], prefix.bias_ih_l0, prefix.bias_hh_l0 [G*H], the same with
 * _reverse for the backward direction, layer k > 0 taking dirs*H inputs; init as above. */
heed_status heed_rnn_declare(heed_rnn *rnn, heed_params *P, const char *prefix, const heed_rnn_opts *opts);

/* A whole LSTM stack over x[T,B,I] (time-major, as PyTorch's default), one recorded op;
 * with rnn->opts.batch_first, x[B,T,I] and the outputs [B,T,dirs*H] (read and written in
 * place: no transposed copy). h0, c0: [layers*dirs, B, H] (index layer*dirs + direction) or NULL for zeros.
 * lengths: [B] in 1..T, or NULL for all T: outputs past a sequence's end are zero, its
 * state stops there, and the reverse direction starts at the sequence's own end (as a
 * packed sequence in PyTorch). Returns the last layer's outputs [T,B,dirs*H] (forward
 * direction in the first H columns); h_n, c_n (may be NULL) receive the final states
 * [layers*dirs, B, H]. Per layer: one GEMM for the input projection of all steps, then per
 * step one GEMM and one fused gate kernel; backward mirrors it with the weight gradients
 * as one GEMM over all steps. Threads split the directions, then the batch rows (or the
 * hidden units when the batch is small). */
heed_tensor *heed_lstm(heed_graph *g, const heed_rnn *rnn, heed_tensor *x, heed_tensor *h0, heed_tensor *c0,
                       const int64_t *lengths, heed_tensor **h_n, heed_tensor **c_n);
/* The same for a GRU stack (no cell state). */
heed_tensor *heed_gru(heed_graph *g, const heed_rnn *rnn, heed_tensor *x, heed_tensor *h0, const int64_t *lengths,
                      heed_tensor **h_n);
/* A decoder's initial state from an encoder's final state: h_n or c_n [layers*dirs, B, H]
 * of rnn -> [B, dirs*H], the directions of one layer side by side (forward in the first
 * H columns, as in the outputs). layer may be negative (-1: the last). A decoder of hidden
 * size 2H takes it as is; for one of size H, map it (heed_linear) or add the halves. */
heed_tensor *heed_rnn_final_state(heed_graph *g, const heed_rnn *rnn, heed_tensor *state, int layer);

/* The time reduction of a pyramidal layer (LAS): x[T,B,F] -> y[ceil(T/2),B,2F] with
 * y[t,b] = [x[2t,b], x[2t+1,b]]. A frame at or past a sequence's end (t >= lengths[b],
 * including frame T of an odd T) enters as zeros. out_lengths (may be NULL) receives
 * ceil(lengths[b]/2) (it may be lengths itself: halved in place); lengths NULL means all T. */
heed_tensor *heed_pyramid_concat(heed_graph *g, heed_tensor *x, const int64_t *lengths, int64_t *out_lengths);
/* A pyramidal LSTM layer: heed_pyramid_concat then heed_lstm with the halved lengths
 * (rnn->opts.input_size must be 2F; LAS uses a bidirectional rnn). out_lengths [B] must
 * not be NULL: it receives the lengths of the result [ceil(T/2), B, dirs*H]. With
 * rnn->opts.batch_first, x is [B,T,F] and the result [B, ceil(T/2), dirs*H] (the frames
 * of a time step are still paired). */
heed_tensor *heed_pyramid_lstm(heed_graph *g, const heed_rnn *rnn, heed_tensor *x, const int64_t *lengths,
                               int64_t *out_lengths, heed_tensor **h_n, heed_tensor **c_n);

#ifdef __cplusplus
}
#endif
#endif
