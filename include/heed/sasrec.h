/* heed: The SASRec model (models/sasrec.c). Part of the public API: <heed.h> includes
 * every part; a file may include just the parts it uses. */
#ifndef HEED_API_SASREC_H
#define HEED_API_SASREC_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ models: SASRec (models/sasrec.c) */

/* SASRec (Kang and McAuley, ICDM 2018): next-item prediction with causal self-attention,
 * as the paper's reference code builds it. Items are 1..n_items, 0 is padding; sequences
 * are left padded (the last column is the latest item). See docs/sasrec.md. */
typedef struct {
    int64_t n_items; /* item ids 1..n_items */
    int64_t maxlen;  /* longest sequence: positions 1..maxlen */
    int64_t hidden;  /* d: embedding and model width */
    int blocks;      /* self-attention blocks, 0..HEED_SASREC_MAX_BLOCKS */
    int heads;       /* attention heads; must divide hidden */
    double dropout;  /* on embeddings, attention weights and the feed-forward net */
    double ln_eps;   /* layernorm epsilon; 0 -> 1e-8 as the reference code */
} heed_sasrec_config;

#define HEED_SASREC_MAX_BLOCKS 16

/* One block's parameters ("sasrec.block<i>.<name>" in the store). Linear weights are
 * [out, in] (heed_linear's layout). */
typedef struct {
    heed_tensor *attn_ln_g, *attn_ln_b;       /* layernorm before the queries */
    heed_tensor *wq, *bq, *wk, *bk, *wv, *bv; /* [d, d] and [d] */
    heed_tensor *ff_ln_g, *ff_ln_b;           /* layernorm after the attention residual */
    heed_tensor *w1, *b1, *w2, *b2;           /* point-wise feed-forward, [d, d] and [d] */
} heed_sasrec_block;

typedef struct {
    heed_sasrec_config cfg;
    heed_params *params;
    heed_tensor *item_emb; /* "sasrec.item_emb" [n_items + 1, d]; row 0 (padding) stays zero in training with
                               heed_sasrec_loss (a loss over heed_sasrec_score of every item would train it) */
    heed_tensor *pos_emb;  /* "sasrec.pos_emb" [maxlen + 1, d]; row 0 (padding) stays zero */
    heed_tensor *out_ln_g, *out_ln_b;
    heed_sasrec_block block[HEED_SASREC_MAX_BLOCKS];
} heed_sasrec;

/* Declares the model's parameters in P (Xavier-uniform weights and embeddings, zero
 * biases, unit layernorm gains) and fills m. The model holds no memory of its own. Errors
 * (bad config, a name already in P) leave a message in heed_ctx_error. */
heed_status heed_sasrec_declare(heed_sasrec *m, heed_params *P, const heed_sasrec_config *cfg);
/* Sequence outputs h [batch, len, d] for seq [batch, len] item ids, left padded with 0.
 * len <= maxlen: the columns are the last len positions, so a batch may drop leading
 * columns that are padding in every row (same outputs, less work). Rows of h at padded
 * positions are unspecified. Dropout is active when the graph is training. weights, if not
 * NULL, is an array of cfg.blocks pointers that receive each block's attention weights
 * [batch, heads, len, len] (this selects the materialised attention; NULL uses flash). */
heed_tensor *heed_sasrec_forward(heed_graph *g, const heed_sasrec *m, const int64_t *seq, int64_t batch, int64_t len,
                                 heed_tensor **weights);
/* The training loss: binary cross-entropy of the positive item pos[b,t] (the next item,
 * label 1) and the sampled negative neg[b,t] (label 0) at every position with pos != 0,
 * summed and divided by the number of such positions. pos and neg are [B, len] like h.
 * One fused op (only the target rows are touched). */
heed_tensor *heed_sasrec_loss(heed_graph *g, const heed_sasrec *m, heed_tensor *h, const int64_t *pos,
                              const int64_t *neg);
/* The output at the last position, [B, d]: the state that predicts the next item. */
heed_tensor *heed_sasrec_last(heed_graph *g, const heed_sasrec *m, heed_tensor *h);
/* Scores h_last[b] . E[i]: for items [B, n_cands] the result is [B, n_cands]; with items
 * NULL every item is scored, [B, n_items + 1] (column 0 is the padding id). */
heed_tensor *heed_sasrec_score(heed_graph *g, const heed_sasrec *m, heed_tensor *h_last, const int64_t *items,
                               int64_t n_cands);
/* *width = the number of trailing columns of seq [batch, maxlen] that hold an item in
 * some row (at least 1): the len to pass after dropping the all-padding leading columns.
 * HEED_ERR_ARG, message in heed_ctx_error(ctx), for a NULL seq or width, batch < 1 or
 * maxlen < 1. */
heed_status heed_sasrec_width(heed_ctx *ctx, const int64_t *seq, int64_t batch, int64_t maxlen, int64_t *width);

#ifdef __cplusplus
}
#endif
#endif
