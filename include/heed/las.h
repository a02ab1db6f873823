/* heed: The LAS speech recogniser (models/las.c). Part of the public API: <heed.h>
 * includes every part; a file may include just the parts it uses. */
#ifndef HEED_API_LAS_H
#define HEED_API_LAS_H

#include "core.h"
#include "decode.h"
#include "layers.h"
#include "rnn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ models: LAS (models/las.c) */

/* Listen, Attend and Spell (Chan et al. 2016), see docs/las.md:
 *   listener  a BLSTM over the frames x[B,T,F], then pyramid_layers pyramidal BLSTMs, each
 *             halving time: h = enc[B, N = ceil(T / 2^pyramid_layers), 2H];
 *   speller   per output step i, from the previous token y_{i-1} and context c_{i-1}:
 *               s_i = LSTM2(LSTM1([embed(y_{i-1}); c_{i-1}]))
 *               a_i = attend(s_i, h, a_{i-1})    additive, location-aware (Chorowski 2015),
 *                                                or Luong's local attention (local-m / local-p)
 *               c_i = sum_j a_ij h_j
 *               logits_i = W [s_i; c_i] + b.
 * Tokens are 0..vocab-1 with the start and end tokens chosen by the caller (bos, eos). */
#define HEED_LAS_MAX_PYRAMID 4

/* The speller's attention. HEED_LAS_LOCATION (0, the default): heed_additive_attention with
 * location features when loc_channels > 0. The local kinds are Luong et al. 2015's local
 * attention with the "general" score s_j = s_i^T W h_j over a window of 2 local_window + 1
 * encoder frames: HEED_LAS_LOCAL_M centres it on the output step i (monotonic; no Gaussian),
 * HEED_LAS_LOCAL_P predicts the centre p_i = (N_b - 1) sigmoid(v_p . tanh(W_p s_i)) and
 * weights the window by a Gaussian (sigma = local_window / 2); loc_channels is unused. */
typedef enum { HEED_LAS_LOCATION = 0, HEED_LAS_LOCAL_M, HEED_LAS_LOCAL_P } heed_las_attention;

typedef struct {
    int64_t input_dim;       /* F: features per input frame */
    int64_t listener_hidden; /* H per direction; the listener's outputs have 2H */
    int pyramid_layers;      /* 1..HEED_LAS_MAX_PYRAMID pyramidal layers after the first BLSTM */
    int64_t speller_hidden;  /* each of the speller's two LSTM layers */
    int64_t embed_dim;       /* token embedding */
    int64_t attn_dim;        /* additive attention's hidden size */
    int64_t loc_channels;    /* location features: channels and odd kernel; 0, 0 = none */
    int64_t loc_kernel;
    int64_t vocab;  /* output tokens (the start token included) */
    double dropout; /* on [s_i; c_i] before the output layer, in training; [0, 1) */
    heed_las_attention attention;
    int64_t local_window; /* the local kinds' half-width D (0 = 10) */
} heed_las_config;

typedef struct {
    heed_las_config cfg;
    heed_rnn listener[1 + HEED_LAS_MAX_PYRAMID]; /* "las.listener.<i>" */
    heed_tensor *embed;                          /* "las.embed" [vocab, embed_dim] */
    heed_rnn_cell cell[2];                       /* "las.speller.<i>" */
    heed_additive_layer attn;                    /* "las.attention" (HEED_LAS_LOCATION) */
    heed_tensor *local_w;                        /* "las.local.weight" [S, 2H] (local kinds) */
    heed_tensor *local_wp, *local_vp; /* "las.local.position.weight" [attn_dim, S], ".v" [attn_dim] (local-p) */
    heed_tensor *out_w, *out_b;       /* "las.out.weight" [vocab, S + 2H], "las.out.bias" */
} heed_las;

/* Declares the parameters in P and fills m (PyTorch's default inits; the LSTM forget
 * biases start at 1). Errors leave a message in heed_ctx_error. */
heed_status heed_las_declare(heed_las *m, heed_params *P, const heed_las_config *cfg);

/* The listener's result for a batch: enc [B, N, 2H], the additive attention's keys projected
 * once [B, N, attn_dim] (NULL for the local kinds), the encoder lengths [B] (in graph memory,
 * valid until a reset). */
typedef struct {
    heed_tensor *enc, *keys;
    int64_t *lengths;
    int64_t batch, frames;
} heed_las_encoding;

/* x [B, T, input_dim] (batch-first), lengths [B] in 1..T (NULL: all T). */
heed_status heed_las_listen(heed_graph *g, const heed_las *m, heed_tensor *x, const int64_t *lengths,
                            heed_las_encoding *e);

/* The speller's state: both layers' h and c [B, S], the context [B, 2H], the last
 * attention weights [B, N] and the output step (local-m's centre). */
typedef struct {
    heed_tensor *h[2], *c[2], *context, *weights;
    int64_t step;
} heed_las_state;

/* The state before the first step: zeros, and the weights all on frame 0. */
heed_status heed_las_start(heed_graph *g, const heed_las *m, const heed_las_encoding *e, heed_las_state *s);
/* One speller step: prev[B] tokens in, logits [B, vocab] out; s advances (s->weights are
 * this step's attention weights). */
heed_tensor *heed_las_step(heed_graph *g, const heed_las *m, const heed_las_encoding *e, heed_las_state *s,
                           const int64_t *prev);

typedef struct {
    int64_t bos;            /* the start token fed at step 0 */
    double label_smoothing; /* in [0, 1) */
    double sampling;        /* probability of feeding back a token sampled from the model's
                               previous output instead of the true one (Chan et al.'s trick) */
    uint64_t seed, stream;  /* the sampling's random stream */
} heed_las_loss_opts;

/* The teacher-forced training loss: targets [B, L] are each utterance's tokens followed by
 * its end token, padded with -100 (ignored); mean cross-entropy over the real targets.
 * weights (may be NULL) receives the attention of every step [B, L, N]. */
heed_tensor *heed_las_loss(heed_graph *g, const heed_las *m, heed_tensor *x, const int64_t *lengths,
                           const int64_t *targets, int64_t L, const heed_las_loss_opts *opts, heed_tensor **weights);

/* Greedy or beam search (heed_decode) over the batch x [B,T,F] with lengths [B]: every
 * hypothesis's tokens, score and attention rows [steps, N]. opts->max_len 0 with
 * max_lens NULL ties each utterance's maximum length to its encoder length: 2 N_b + 10.
 * Runs under no-grad in eval mode; the graph is not reset. */
heed_status heed_las_decode(heed_graph *g, const heed_las *m, heed_tensor *x, const int64_t *lengths,
                            const heed_decode_opts *opts, heed_decode_result *out);

#ifdef __cplusplus
}
#endif
#endif
