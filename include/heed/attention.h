/* heed: Attention: scaled dot-product and flash, one decoder step, positions, recurrence.
 * Part of the public API; include <heed.h>, not this file. */
#ifndef HEED_API_ATTENTION_H
#define HEED_API_ATTENTION_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ attention (ops/attention*.c) */

typedef enum {
    HEED_ATTN_AUTO = 0,     /* flash unless the weights are requested */
    HEED_ATTN_MATERIALISED, /* builds the [B,H,Nq,Nk] score matrix */
    HEED_ATTN_FLASH,        /* tiled, O(N d) memory, recomputing backward */
} heed_attn_impl;

/* A sparse attention pattern (Longformer, BigBird, the Sparse Transformer), as
 * heed_attention_opts.pattern. Query i sits at position p = i + (Nk - Nq), key j at j.
 * When any field below is set, query p sees the union of the parts that are on:
 *   window w (opts.window), dilation t:  j = p + n t for an integer |n| < w
 *   global positions G:                  every key when p is in G; key j from every query when j is in G
 *   random blocks (r, size s, seed):     all keys of r distinct key blocks [u s, u s + s), drawn
 *                                        for each query block floor(p / s) and head (Philox)
 *   strided l:                           |p - j| < l, or (p - j) mod l == 0
 *   fixed l, summary c:                  floor(j / l) == floor(p / l), or j mod l >= l - c
 * and then causal, key_lengths and -inf bias entries mask as usual. All zero means no
 * pattern: dense, or the band |p - j| < w alone when opts.window is set. BigBird is
 * window + global + random; Longformer window (dilated or not) + global. The draw of the
 * random blocks depends only on (seed, head, query block, Nk), so forward and backward,
 * flash and materialised see the same blocks. Flash visits only the tiles holding a
 * visible pair (heed_attention_cost counts them): cost O(N k d) for k keys per row, plus
 * the hidden keys that share a tile with seen ones. See docs/attention.md. */
typedef struct {
    int64_t dilation;      /* of the window (needs opts.window > 0); 0 = 1 (contiguous) */
    const int64_t *global; /* n_global key positions in [0, Nk) (copied; repeats are fine) */
    int64_t n_global;
    int64_t random_blocks; /* r: at most the ceil(Nk / block) key blocks there are */
    int64_t block;         /* s: size of the random blocks; 0 = 64 */
    uint64_t seed;         /* of the random blocks */
    int64_t strided;       /* l of Child et al.'s strided pattern; 0 = off */
    int64_t fixed;         /* l of Child et al.'s fixed pattern; 0 = off */
    int64_t summary;       /* c: the fixed pattern's summary keys per block, in [1, fixed]; 0 = 1 */
} heed_attn_pattern;

typedef struct {
    double scale;                /* 0: 1/sqrt(d) */
    bool causal;                 /* query i sees keys j <= i + (Nk - Nq) (bottom-right aligned) */
    const int64_t *key_lengths;  /* [B]: keys j >= key_lengths[b] are masked; NULL = none */
    heed_tensor *bias;           /* additive, broadcastable to [B,H,Nq,Nk]; NULL = none */
    int64_t window;              /* > 0: also mask |i + (Nk - Nq) - j| >= window (local attention);
                                    with a pattern, the window is one part of its union */
    heed_attn_pattern pattern;   /* sparse pattern; all zero = none */
    double dropout;              /* on the attention weights, when the graph is training */
    heed_tensor **weights;       /* if non-NULL, receives the weights [B,H,Nq,Nk] (materialised) */
    heed_attn_impl impl;
    int block_q, block_k;        /* flash tile sizes; 0 = default */
} heed_attention_opts;

/* softmax(q k^T * scale + bias + mask) v for q[B,H,Nq,d], k[B,H,Nk,d], v[B,H,Nk,dv]
 * -> [B,H,Nq,dv]. The masks (key_lengths, causal, window or pattern, and -inf entries of
 * bias) combine; a fully masked query row gives a zero output row and zero gradients, never NaN.
 * Gradients flow to q, k, v and bias (summed over the dims it broadcasts). Dropout is
 * active only when the graph is training; flash and materialised draw the same mask for
 * the same random stream. The weights (materialised only) are the softmax before dropout
 * and take gradients like any output. AUTO runs flash unless weights are requested. The
 * options are read during the call (key_lengths is copied). opts may be NULL (all off).
 * Equations, cost and memory: docs/attention.md. */
heed_tensor *heed_attention(heed_graph *g, heed_tensor *q, heed_tensor *k, heed_tensor *v, const heed_attention_opts *opts);

/* The work of heed_attention with these options on H heads of Nq queries and Nk keys
 * (opts->key_lengths, bias and dropout are ignored): *pairs receives the visible (query,
 * key) pairs summed over the heads, *tiles the query x key tiles the flash forward visits
 * (the dtype's default tiles, or opts->block_q, block_k; with a pattern, the backward
 * visits the same tiles). Either may be NULL. Errors (bad options, as heed_attention
 * reports them) go to heed_ctx_error. */
heed_status heed_attention_cost(heed_ctx *ctx, const heed_attention_opts *opts, heed_dtype dtype, int64_t H, int64_t Nq,
                                int64_t Nk, int64_t *pairs, int64_t *tiles);

/* ---------------------------------------------------------------- one decoder step (ops/attention/scores.c) */

/* See docs/attention-layers.md. A query [B,dq] attends over N keys [B,N,dk] with values
 * [B,N,dv]. A score op gives scores [B,N]; heed_attend turns them into weights (masked softmax) and a context. The
 * *_attention functions do both. key_lengths[b] in [0, N] marks keys j >= key_lengths[b]
 * as padding: their weight is exactly 0; a row with length 0 gets zero weights and a zero
 * context (and zero gradients), never NaN. key_lengths NULL means every key is valid.
 * Score ops compute every key's score (padding included; keep padding finite). */

/* weights[B,N] = softmax of scores over the valid keys of each row; returns the context
 * [B,dv] = sum_j weights_j values[b,j]. *weights (may be NULL) receives the weights; they
 * are an output of the same node, so a loss on them (coverage) back-propagates too. */
heed_tensor *heed_attend(heed_graph *g, heed_tensor *scores, heed_tensor *values, const int64_t *key_lengths,
                         heed_tensor **weights);

/* Additive (Bahdanau) attention, optionally location-aware (Chorowski et al. 2015) and with
 * coverage (See et al. 2017):
 *   s_j = v . tanh(W_q q + b + K'_j + U f_j + w_c cov_j)
 *   K'_j = W_k k_j: the key projection, computed once per sequence (heed_additive_keys);
 *   f_j[c] = sum_t F[c,t] prev[j + t - (K-1)/2]: a centred 1-D convolution of the previous
 *            step's weights (zero padded), projected by U;
 *   cov_j  = the sum of all earlier steps' weights (heed_add the weights each step). */
typedef struct {
    heed_tensor *w_q;         /* [da,dq] query projection (nn.Linear(dq, da).weight) */
    heed_tensor *bias;        /* [da] or NULL */
    heed_tensor *v;           /* [da] */
    heed_tensor *loc_filters; /* [C,K], K odd >= 1: location-aware features (NULL = off) */
    heed_tensor *loc_proj;    /* [da,C] (with loc_filters) */
    heed_tensor *cov_weight;  /* [da]: coverage features (NULL = off) */
} heed_additive_params;

/* keys[B,N,dk] @ w_k[da,dk]^T + bias[da] (bias may be NULL) -> keys_proj[B,N,da]: call once
 * per sequence and reuse for every decoder step (this is heed_linear). */
heed_tensor *heed_additive_keys(heed_graph *g, heed_tensor *keys, heed_tensor *w_k, heed_tensor *bias);
/* scores[B,N] for query[B,dq] and keys_proj[B,N,da]. prev_weights[B,N] is required exactly
 * when p->loc_filters is set; coverage[B,N] exactly when p->cov_weight is set (else NULL).
 * One fused node: cost O(B N da (1 + C)) + O(B N C K), memory B N (da + C). */
heed_tensor *heed_additive_score(heed_graph *g, heed_tensor *query, heed_tensor *keys_proj, const heed_additive_params *p,
                                 heed_tensor *prev_weights, heed_tensor *coverage);
/* heed_additive_score then heed_attend: context [B,dv], *weights [B,N]. */
heed_tensor *heed_additive_attention(heed_graph *g, heed_tensor *query, heed_tensor *keys_proj, heed_tensor *values,
                                     const heed_additive_params *p, heed_tensor *prev_weights, heed_tensor *coverage,
                                     const int64_t *key_lengths, heed_tensor **weights);

/* Luong et al. 2015 scores:
 *   HEED_LUONG_DOT      s_j = q . k_j                 (dq == dk; w, v NULL)
 *   HEED_LUONG_GENERAL  s_j = q^T W k_j               (w [dq,dk]; v NULL)
 *   HEED_LUONG_CONCAT   s_j = v . tanh(W [q; k_j])    (w [da,dq+dk], v [da]) */
typedef enum { HEED_LUONG_DOT = 0, HEED_LUONG_GENERAL, HEED_LUONG_CONCAT } heed_luong_kind;
heed_tensor *heed_luong_score(heed_graph *g, heed_luong_kind kind, heed_tensor *query, heed_tensor *keys, heed_tensor *w,
                              heed_tensor *v);
/* heed_luong_score then heed_attend. */
heed_tensor *heed_luong_attention(heed_graph *g, heed_luong_kind kind, heed_tensor *query, heed_tensor *keys,
                                  heed_tensor *values, heed_tensor *w, heed_tensor *v, const int64_t *key_lengths,
                                  heed_tensor **weights);
/* See et al.'s coverage loss per row: loss[b] = sum_j min(weights[b,j], coverage[b,j]),
 * both [B,N] (coverage before adding this step's weights). Returns [B]; ties split the
 * gradient in halves. */
heed_tensor *heed_coverage_loss(heed_graph *g, heed_tensor *weights, heed_tensor *coverage);

/* ---------------------------------------------------------------- positions (ops/attention/positions.c) */

/* The sinusoidal table of "Attention is all you need" for positions start .. start+n-1:
 * PE[p,2i] = sin(p / 10000^(2i/d)), PE[p,2i+1] = cos(p / 10000^(2i/d)); an odd d ends
 * with a sine column. A constant [n,d] (no gradient); heed_add it to [B,n,d] inputs. */
heed_tensor *heed_sinusoidal_positions(heed_graph *g, heed_dtype dtype, int64_t start, int64_t n, int64_t d);
/* Learned absolute positions: rows start .. start+n-1 of a parameter table[maxlen,d] as
 * [n,d], with backward into those rows. (heed_embedding with ids 0..n-1 does the same for
 * arbitrary position ids.) Positions past maxlen are an error. */
heed_tensor *heed_learned_positions(heed_graph *g, heed_tensor *table, int64_t start, int64_t n);

typedef enum {
    HEED_RELPOS_CLIPPED = 0, /* bucket = clamp(j - i, -M, M) + M; table has 2M+1 rows */
    HEED_RELPOS_T5,          /* T5's log-spaced buckets; table has num_buckets rows */
} heed_relpos_kind;

typedef struct {
    heed_relpos_kind kind;
    int64_t max_distance; /* clipped: M (0 = from the table: rows = 2M+1); T5: where the log
                             buckets end (0 = 128) */
    bool bidirectional;   /* T5: true for encoders; false for causal decoders (all future keys
                             share bucket 0) */
    int64_t query_start;  /* query i sits at position query_start + i, key j at j (set it to
                             Nk - Nq when decoding with cached keys) */
} heed_relpos_opts;

/* The bucket of a relative position rel = key - query for a table of num_buckets rows, or
 * -1 if the options do not fit that table. */
int64_t heed_relpos_bucket(const heed_relpos_opts *opts, int64_t num_buckets, int64_t rel);
/* Learned relative-position bias: bias[0,h,i,j] = table[bucket(j - (query_start + i)), h]
 * for table[buckets,H] (a parameter), as [1,H,nq,nk], to pass as heed_attention_opts.bias
 * (it broadcasts over the batch). Gradients add up into the table rows. opts may be NULL
 * (clipped, from the table size). */
heed_tensor *heed_relative_position_bias(heed_graph *g, heed_tensor *table, int64_t nq, int64_t nk,
                                         const heed_relpos_opts *opts);

/* ---------------------------------------------------------------- attention as a recurrence (ops/attention/scan.c) */

/* For one query q and keys k_1..k_N with scores s_i = scale q.k_i, the state after i keys
 *   m_i = max_{j<=i} s_j,  c_i = sum_{j<=i} e^{s_j - m_i},  a_i = sum_{j<=i} e^{s_j - m_i} v_j
 * gives the softmax attention over those keys as o_i = a_i / c_i (the online softmax).
 * States over disjoint key sets combine associatively, which gives both a streaming cell
 * with O(dv) memory and a parallel prefix scan. */

/* The streaming cell, for inference (no graph, no gradient). a is the caller's buffer of
 * dv doubles; the state never allocates. */
typedef struct {
    int64_t dv;    /* value size */
    int64_t count; /* keys pushed (masked ones included) */
    double m;      /* running max score; -inf before the first key */
    double c;      /* denominator sum_j exp(s_j - m) */
    double *a;     /* numerator [dv]: sum_j exp(s_j - m) v_j */
} heed_attn_state;

/* Empty state (m = -inf, c = 0, a = 0). HEED_ERR_ARG on NULL or dv < 1. */
heed_status heed_attn_state_init(heed_attn_state *s, int64_t dv, double *a);
/* Adds one key with its score and value v[dv]. A score of -inf is a masked key (weight 0);
 * NaN or +inf gives HEED_ERR_NUMERIC and leaves the state unchanged. */
heed_status heed_attn_state_push(heed_attn_state *s, double score, const double *v);
heed_status heed_attn_state_push_f32(heed_attn_state *s, double score, const float *v);
/* Same with the score computed as scale * q[d] . k[d]. */
heed_status heed_attn_state_push_key(heed_attn_state *s, const double *q, const double *k, int64_t d, double scale,
                                     const double *v);
/* s <- s combined with other (keys seen by either; order does not matter). Same dv. */
heed_status heed_attn_state_merge(heed_attn_state *s, const heed_attn_state *other);
/* out[dv] = a / c: the attention output over the keys pushed; zeros if none (or all masked). */
heed_status heed_attn_state_output(const heed_attn_state *s, double *out);
/* log sum_j exp(s_j) = m + log c (-inf when empty). */
double heed_attn_state_logsumexp(const heed_attn_state *s);

/* The cell run over whole sequences as a recorded op: q[B,d] (or [d], shared by every
 * row), k[B,N,d], v[B,N,dv] -> softmax(scale q.k) v as [B,dv], one key at a time with O(dv)
 * state per row. Backward recomputes the scores from the saved log-sum-exp (memory O(B)).
 * scale 0 means 1/sqrt(d). key_lengths [B] masks keys j >= key_lengths[b] (length 0 ->
 * zero output and gradients). */
heed_tensor *heed_attention_recurrent(heed_graph *g, heed_tensor *q, heed_tensor *k, heed_tensor *v, double scale,
                                      const int64_t *key_lengths);
/* Every prefix at once: out[b,i] = softmax over keys 0..i of row b, times their values, as
 * [B,N,dv] (a causal attention with one query per row: Aaren's form). Forward is a
 * work-efficient parallel prefix scan over the (m, c, a) triples (Blelloch: 2 log2 N
 * levels, O(N dv) work, O(N dv) work space per row); backward is a reverse linear
 * recurrence per row, O(N (d + dv)). Outputs at i >= key_lengths[b] are zero. */
heed_tensor *heed_attention_scan(heed_graph *g, heed_tensor *q, heed_tensor *k, heed_tensor *v, double scale,
                                 const int64_t *key_lengths);

#ifdef __cplusplus
}
#endif
#endif
