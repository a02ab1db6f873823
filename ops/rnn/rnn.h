/* Shared by the recurrent ops (gates.c, cell.c, layer.c): the fused gate
 * kernels of one time step. Not installed.
 *
 * Buffer layouts (G = 4 gates for the LSTM, 3 for the GRU; all rows of B):
 *   gates [B, 4H]  in: input-side pre-activations x W_ih^T in PyTorch gate order;
 *                  out: the activations backward needs, LSTM [i f g o], GRU [r z n ghn]
 *                  with ghn = W_hn h + b_hn (the GRU needs 4H columns for this).
 *   rec            the recurrent product h W_hh^T for a block of units starting at rec_j0:
 *                  gate k of unit j is rec[b * rec_ld + k * rec_gs + (j - rec_j0)]; NULL
 *                  when h is zero.
 *   bias [G H]     added to the gates (LSTM: b_ih + b_hh; GRU: b_ih + [b_hr, b_hz, 0]),
 *                  NULL for none
 *   h, c [B, H]    states, rows of H. */
#ifndef HEED_RNN_H
#define HEED_RNN_H
#include "../../graph/internal.h"
#include "heed/rnn.h"

typedef struct {
    heed_dtype dtype;
    heed_rnn_kind kind;
    int64_t B, H;
    void *gates;
    const void *rec;
    int64_t rec_ld, rec_gs, rec_j0;
    const void *bias;            /* [G H], NULL = none */
    const void *b_hn;            /* GRU: [H], NULL = none */
    const void *h_prev, *c_prev; /* [B, H], NULL = zeros */
    void *h_out, *c_out;         /* [B, H] (c_out LSTM only) */
    void *y;                     /* NULL or rows of y_ld: h where active, 0 past the end */
    int64_t y_ld;
    const int64_t *len; /* row b is active when len == NULL or t < len[b]; an */
    int64_t t;          /* inactive row carries h_prev, c_prev unchanged */
} rnn_fwd_step;

/* LSTM, per unit (a = pre-activations, i f o sigmoid, g tanh):
 *   c = f c_prev + i g,  h = o tanh(c).
 * Backward, dh = dL/dh (running + dy), dc = dL/dc (running):
 *   dc += dh o (1 - tanh^2 c);  da_i = dc g i(1-i),  da_f = dc c_prev f(1-f),
 *   da_g = dc i (1-g^2),  da_o = dh tanh(c) o(1-o);  dc_prev = dc f,  dh_prev = da W_hh.
 * GRU (r z sigmoid, n tanh, ghn = W_hn h_prev + b_hn):
 *   n = tanh(a_n + r ghn),  h = (1-z) n + z h_prev.
 * Backward: da_n = dh (1-z)(1-n^2),  da_r = da_n ghn r(1-r),  da_z = dh (h_prev-n) z(1-z);
 *   input side [da_r da_z da_n], hidden side [da_r da_z da_n r];  dh_prev = dh z + dgh W_hh. */
typedef struct {
    heed_dtype dtype;
    heed_rnn_kind kind;
    int64_t B, H;
    const void *gates;           /* activations saved by the forward step */
    const void *c_t;             /* LSTM: c after the step */
    const void *h_prev, *c_prev; /* NULL = zeros (GRU uses h_prev, LSTM c_prev) */
    const void *dy;              /* NULL or rows of dy_ld: gradient of y */
    int64_t dy_ld;
    void *dh;        /* [B, H] in: dL/dh_t from later steps; out: the part of dL/dh_prev that */
                     /* does not go through W_hh (GRU: dh z; LSTM: 0; inactive rows: unchanged) */
    void *dc;        /* LSTM [B, H] in: dL/dc_t; out: dL/dc_prev */
    void *dgi, *dgh; /* [B, G H] out: gradients of the input-side and hidden-side */
                     /* pre-activations (the same buffer for the LSTM); 0 on inactive rows */
    const int64_t *len;
    int64_t t;
} rnn_bwd_step;

/* Units [j0, j1) of every row: threads split the units, each calls this for its own. */
void heed__rnn_fwd_step(const rnn_fwd_step *s, int64_t j0, int64_t j1);
void heed__rnn_bwd_step(const rnn_bwd_step *s, int64_t j0, int64_t j1);
/* All units, split over threads when large enough (the cell ops). */
void heed__rnn_fwd_all(const rnn_fwd_step *s, int threads);
void heed__rnn_bwd_all(const rnn_bwd_step *s, int threads);

static inline int heed__rnn_gates(heed_rnn_kind k) { return k == HEED_RNN_LSTM ? 4 : 3; }

/* The combined bias of the gates (see above) for G H columns; b_ih, b_hh may be NULL. */
void heed__rnn_fold_bias(heed_dtype dt, heed_rnn_kind kind, int64_t H, const void *b_ih, const void *b_hh, void *out);
/* Declares one weight set: prefix.weight_ih<suffix> [G H, in], weight_hh [G H, H],
 * bias_ih, bias_hh [G H] (unless no_bias), PyTorch's init, the forget bias if asked.
 * Checks every name is free first. w receives {w_ih, w_hh, b_ih, b_hh}. */
heed_status heed__rnn_declare_set(heed_params *P, const char *fn, const char *prefix, const char *suffix,
                                  const heed_rnn_opts *o, int64_t in, heed_tensor *w[4]);
/* out[j] += sum over rows of m[rows, cols] (ld), accumulated in double. */
void heed__rnn_colsum_add(heed_dtype dt, const void *m, int64_t rows, int64_t cols, int64_t ld, void *out, int threads);
/* Sequence lengths (NULL = all T) of the B rows of x: each in 1..T, or an error on g. */
bool heed__rnn_check_lengths(heed_graph *g, const char *op, const int64_t *lengths, const heed_tensor *x, int64_t B,
                             int64_t T);
#endif
