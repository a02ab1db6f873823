/* heed: The Show, Attend and Tell image captioner (models/caption.c). Part of the public
 * API: <heed.h> includes every part; a file may include just the parts it uses. */
#ifndef HEED_API_CAPTION_H
#define HEED_API_CAPTION_H

#include "attention.h"
#include "batchnorm.h"
#include "core.h"
#include "decode.h"
#include "layers.h"
#include "rnn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ models: image captioning (models/caption.c) */

/* Show, Attend and Tell (Xu et al. 2015), see docs/caption.md:
 *   encoder   HEED_CAPTION_CONVS blocks conv -> batch norm -> relu -> 2x2 max pool (the first
 *             conv 5x5 with stride 2, the others 3x3), fully convolutional: an image
 *             [B, C, H, W] gives the grid [B, D, H/16, W/16] read as N = (H/16)(W/16)
 *             annotation vectors a_i [B, N, D], D = channels[last]. A linear classifier
 *             on the grid's mean pretrains it on single objects.
 *   positions with cells > 0: a_i <- a_i + p_i, p [N, D] learned (convolutions alone do not
 *             say where a cell is; spatial relations need it)
 *   decoder   h_0 = tanh(W_h mean_i a_i + b_h), c_0 = tanh(W_c mean_i a_i + b_c) (init MEAN), or
 *             h_0 = tanh(b_h), c_0 = tanh(b_c) (init CONSTANT: learned, the same for every
 *             image, so the decoder knows the image only through what it attends to); per step t
 *               alpha_t = softmax_i(v . tanh(W_q h_{t-1} + b + W_k a_i))   additive
 *               z_t = sigmoid(w_beta . h_{t-1} + b_beta) sum_i alpha_ti a_i  the gate beta
 *               h_t, c_t = LSTM([E y_{t-1}; z_t], h_{t-1}, c_{t-1})
 *               logits_t = L_o dropout(E y_{t-1} + L_h h_t + L_z z_t)     deep output
 *             and hard attention samples one cell from alpha_t instead (z_t = beta a_s). */
#define HEED_CAPTION_CONVS 3

/* The decoder's initial state: from the mean annotation (Xu et al.), or a learned constant. */
typedef enum { HEED_CAPTION_INIT_MEAN = 0, HEED_CAPTION_INIT_CONSTANT } heed_caption_init;

typedef struct {
    int64_t in_channels;                  /* image channels (1 for grey) */
    int64_t channels[HEED_CAPTION_CONVS]; /* each conv block's output; D = the last */
    int64_t classes;                      /* the pretraining classifier's outputs (>= 2) */
    int64_t embed_dim, hidden, attn_dim;  /* word embedding, LSTM, attention sizes */
    int64_t vocab;                        /* tokens, the start and end tokens included */
    int64_t cells;                        /* > 0: a learned position embedding per annotation
                                              vector, added to it (the grid's N cells; the
                                              decoder then knows where it looks); 0 = none */
    double dropout;                       /* on the deep output, in training; [0, 1) */
    heed_caption_init init;               /* h_0, c_0 (MEAN by default); with CONSTANT the
                                              init_h and init_c weights are unused (zero
                                              gradient), their biases are the state */
} heed_caption_config;

typedef struct {
    heed_caption_config cfg;
    heed_tensor *conv_w[HEED_CAPTION_CONVS], *conv_b[HEED_CAPTION_CONVS]; /* "caption.encoder.<i>.{weight,bias}" */
    heed_batchnorm bn[HEED_CAPTION_CONVS];                                /* "caption.encoder.<i>.bn" */
    heed_tensor *cls_w, *cls_b;       /* "caption.classifier.{weight,bias}" [classes, D] */
    heed_tensor *position;            /* "caption.position" [cells, D], or NULL */
    heed_tensor *init_h_w, *init_h_b; /* "caption.init_h" [hidden, D] */
    heed_tensor *init_c_w, *init_c_b; /* "caption.init_c" */
    heed_tensor *embed;               /* "caption.embed" [vocab, embed_dim] */
    heed_additive_layer attn;         /* "caption.attention" */
    heed_tensor *beta_w, *beta_b;     /* "caption.beta" [1, hidden], [1] */
    heed_rnn_cell cell;               /* "caption.lstm": input embed_dim + D */
    heed_tensor *out_h, *out_z;       /* "caption.out_h" [embed_dim, hidden], "caption.out_z" [embed_dim, D] */
    heed_tensor *out_w, *out_b;       /* "caption.out" [vocab, embed_dim], [vocab] */
} heed_caption;

/* Declares the parameters in P and fills m (PyTorch's default inits; the LSTM forget bias
 * starts at 1). Errors leave a message in heed_ctx_error. */
heed_status heed_caption_declare(heed_caption *m, heed_params *P, const heed_caption_config *cfg);
/* Freezes (or unfreezes) the encoder's weights (heed_param_freeze): optimizers skip them. */
void heed_caption_freeze_encoder(heed_caption *m, bool frozen);

/* images [B, in_channels, H, W], H and W multiples of 16 -> annotations [B, N, D]. The
 * batch norms use the batch in training mode (updating their running statistics) and the
 * running statistics otherwise. */
heed_tensor *heed_caption_encode(heed_graph *g, const heed_caption *m, heed_tensor *images);
/* The pretraining classifier: logits [B, classes] from the mean annotation. */
heed_tensor *heed_caption_classify(heed_graph *g, const heed_caption *m, heed_tensor *images);

typedef enum { HEED_CAPTION_SOFT = 0, HEED_CAPTION_HARD } heed_caption_attention;

/* State for hard attention's score-function estimator, kept across training steps. */
typedef struct {
    heed_reward_baseline baseline; /* moving average of the rewards log p(y | s, a) */
} heed_caption_hard_state;

typedef struct {
    int64_t bos;   /* the start token fed at step 0 */
    double lambda; /* the doubly stochastic regulariser's weight, >= 0 */
    heed_caption_attention attention;
    /* hard attention: */
    double entropy;                /* the entropy bonus's weight lambda_e >= 0 */
    double soft_mix;               /* per step, the probability of the soft context
                                        instead of a sample (Xu et al. use 0.5); [0, 1] */
    heed_caption_hard_state *hard; /* required with HEED_CAPTION_HARD in training */
    uint64_t seed, stream;         /* the soft_mix draws */
} heed_caption_loss_opts;

/* The training loss for annotations [B, N, D] and targets [B, L] (each caption's tokens
 * then the end token, padded with -100):
 *   mean cross-entropy over the real targets + lambda / B sum_b sum_i (1 - sum_t alpha_bti)^2
 * (the sum over t runs over the real targets' steps). Hard attention adds the REINFORCE
 * surrogate -mean_b (r_b - baseline) sum_t log alpha_t[s_bt] over the sampled steps, with
 * r_b = mean_t log p(y_bt), the caption's log-likelihood per word (per word, so that the
 * estimator's scale does not grow with the caption and swamp the other gradients under
 * clipping), the baseline opts->hard's moving average (after the first batch, whose mean
 * it starts from), minus entropy * the mean entropy of the sampled steps. weights (may be NULL)
 * receives alpha [B, L, N]; stats (may be NULL) receives {cross-entropy, regulariser}. */
heed_tensor *heed_caption_loss(heed_graph *g, const heed_caption *m, heed_tensor *annotations, const int64_t *targets,
                               int64_t L, const heed_caption_loss_opts *opts, heed_tensor **weights, double stats[2]);

/* Greedy or beam search (heed_decode) from annotations [B, N, D]: every hypothesis's tokens,
 * score and attention rows [steps, N] (hard attention decodes with its expected context,
 * the soft one, as Xu et al.). Runs under no-grad in eval mode; the graph is not reset. */
heed_status heed_caption_decode(heed_graph *g, const heed_caption *m, heed_tensor *annotations,
                                const heed_decode_opts *opts, heed_decode_result *out);

/* Pointing: whether cell (the argmax of an attention row over a grid_h x grid_w grid on an
 * image of height x width pixels) has its centre inside the box [x0, x1) x [y0, y1), and
 * the attention mass of the cells whose centres are inside. weights has grid_h * grid_w
 * entries; hit and mass may be NULL. HEED_ERR_ARG, message in heed_ctx_error(ctx), for NULL
 * weights, a grid not in 1..height x 1..width or an empty box. */
heed_status heed_caption_pointing(heed_ctx *ctx, const float *weights, int64_t grid_h, int64_t grid_w, int64_t height,
                                  int64_t width, int64_t x0, int64_t y0, int64_t x1, int64_t y1, bool *hit,
                                  double *mass);

#ifdef __cplusplus
}
#endif
#endif
