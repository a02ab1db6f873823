/* heed: Attention: scaled dot-product and flash, one decoder step, positions,
 * recurrence. Part of the public API: <heed.h> includes every part; a file may include
 * just the parts it uses. */
#ifndef HEED_API_ATTENTION_H
#define HEED_API_ATTENTION_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ attention (ops/attention*.c) */

typedef enum {
    HEED_ATTN_AUTO = 0,     /* flash unless the weights are asked for */
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
    double scale;               /* 0: 1/sqrt(d) */
    bool causal;                /* query i sees keys j <= i + (Nk - Nq) (bottom-right aligned) */
    const int64_t *key_lengths; /* [B]: keys j >= key_lengths[b] are masked; NULL = none */
    heed_tensor *bias;          /* additive, broadcastable to [B,H,Nq,Nk]; NULL = none */
    int64_t window;             /* > 0: also mask |i + (Nk - Nq) - j| >= window (local attention);
                                    with a pattern, the window is one part of its union */
    heed_attn_pattern pattern;  /* sparse pattern; all zero = none */
    double dropout;             /* on the attention weights, when the graph is training */
    heed_attn_impl impl;
    int block_q, block_k; /* flash tile sizes; 0 = default */
} heed_attention_opts;

/* softmax(q k^T * scale + bias + mask) v for q[B,H,Nq,d], k[B,H,Nk,d], v[B,H,Nk,dv]
 * -> [B,H,Nq,dv]. The masks (key_lengths, causal, window or pattern, and -inf entries of
 * bias) combine; a fully masked query row gives a zero output row and zero gradients,
 * never NaN. Gradients flow to q, k, v and bias (summed over the dims it broadcasts).
 * Dropout is active only when the graph is training; flash and materialised draw the same
 * mask for the same random stream. weights, if not NULL, receives the attention weights
 * [B,H,Nq,Nk] (NULL on error): the softmax before dropout, an output that takes
 * gradients like any other. Only the materialised kernel forms them: AUTO runs flash
 * unless weights is given, and asking for them with HEED_ATTN_FLASH is an error. The
 * options are read during the call (key_lengths is copied). opts may be NULL (all off).
 * Equations, cost and memory: docs/attention.md. */
heed_tensor *heed_attention(heed_graph *g, heed_tensor *q, heed_tensor *k, heed_tensor *v,
                            const heed_attention_opts *opts, heed_tensor **weights);

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
heed_tensor *heed_additive_score(heed_graph *g, heed_tensor *query, heed_tensor *keys_proj,
                                 const heed_additive_params *p, heed_tensor *prev_weights, heed_tensor *coverage);
/* heed_additive_score then heed_attend: context [B,dv], *weights [B,N]. */
heed_tensor *heed_additive_attention(heed_graph *g, heed_tensor *query, heed_tensor *keys_proj, heed_tensor *values,
                                     const heed_additive_params *p, heed_tensor *prev_weights, heed_tensor *coverage,
                                     const int64_t *key_lengths, heed_tensor **weights);

/* Luong et al. 2015 scores:
 *   HEED_LUONG_DOT      s_j = q . k_j                 (dq == dk; w, v NULL)
 *   HEED_LUONG_GENERAL  s_j = q^T W k_j               (w [dq,dk]; v NULL)
 *   HEED_LUONG_CONCAT   s_j = v . tanh(W [q; k_j])    (w [da,dq+dk], v [da]) */
typedef enum { HEED_LUONG_DOT = 0, HEED_LUONG_GENERAL, HEED_LUONG_CONCAT } heed_luong_kind;
heed_tensor *heed_luong_score(heed_graph *g, heed_luong_kind kind, heed_tensor *query, heed_tensor *keys,
                              heed_tensor *w, heed_tensor *v);
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

/* The bucket of a relative position rel = key - query for a table of num_buckets rows,
 * into *bucket (opts may be NULL: clipped, from the table size). HEED_ERR_ARG for a NULL
 * bucket, T5 options whose max_exact is 0 or not below max_distance, or an unknown kind;
 * HEED_ERR_SHAPE when clipped distances do not fit the table (it needs 2M+1 rows); the
 * message, naming the rule, is in heed_ctx_error(ctx) (none for a NULL ctx, HEED_ERR_ARG).
 * *bucket is set only on success. */
heed_status heed_relpos_bucket(heed_ctx *ctx, const heed_relpos_opts *opts, int64_t num_buckets, int64_t rel,
                               int64_t *bucket);
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

/* Errors of the cell are a heed_status with the message (the function, the bad value, the
 * rule) in heed_ctx_error(ctx); the state is unchanged on error. HEED_ERR_ARG for a NULL
 * state or buffer, or a state never initialised. */
/* Empty state (m = -inf, c = 0, a = 0). HEED_ERR_ARG for dv < 1. */
heed_status heed_attn_state_init(heed_ctx *ctx, heed_attn_state *s, int64_t dv, double *a);
/* Adds one key with its score and value v[dv]. A score of -inf is a masked key (weight 0);
 * NaN or +inf gives HEED_ERR_NUMERIC. */
heed_status heed_attn_state_push(heed_ctx *ctx, heed_attn_state *s, double score, const double *v);
heed_status heed_attn_state_push_f32(heed_ctx *ctx, heed_attn_state *s, double score, const float *v);
/* Same with the score computed as scale * q[d] . k[d]; HEED_ERR_ARG for d < 1. */
heed_status heed_attn_state_push_key(heed_ctx *ctx, heed_attn_state *s, const double *q, const double *k, int64_t d,
                                     double scale, const double *v);
/* s <- s combined with other (keys seen by either; order does not matter). HEED_ERR_ARG
 * unless both have the same dv. */
heed_status heed_attn_state_merge(heed_ctx *ctx, heed_attn_state *s, const heed_attn_state *other);
/* out[dv] = a / c: the attention output over the keys pushed; zeros if none (or all masked). */
heed_status heed_attn_state_output(heed_ctx *ctx, const heed_attn_state *s, double *out);
/* log sum_j exp(s_j) = m + log c (-inf when empty, and for a NULL s: a plain accessor). */
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

/* ---------------------------------------------------------------- linear attention (ops/attention/linear.c) */

/* Kernelised attention (Katharopoulos et al. 2020): with positive features phi(q), phi(k),
 *   out_i = sum_j (phi(q_i).phi(k_j)) v_j / sum_j phi(q_i).phi(k_j)
 *         = phi(q_i)^T (phi(K)^T V) / phi(q_i)^T (phi(K)^T 1),
 * O(N m dv) instead of O(N^2). Make the features with heed_elu_features or, to
 * approximate softmax attention, heed_favor_features. docs/attention.md, "Linear attention". */

/* phi(x) = elu(x) + 1 elementwise (x + 1 for x > 0, e^x otherwise): any shape. */
heed_tensor *heed_elu_features(heed_graph *g, heed_tensor *x);

/* Performer's (FAVOR+) random projection for m features of d-dim queries and keys:
 * orthogonal blocks of d rows, each row rescaled to a Gaussian row's length. Fills w[m,d]
 * (a frozen parameter, so checkpoints keep it, or any tensor with data) with draw number
 * `draw` of the ctx seed: the same (seed, draw) always gives the same matrix; redraw by
 * calling again with another draw (Performer redraws every so many steps). Errors in
 * heed_ctx_error. */
heed_status heed_favor_draw(heed_ctx *ctx, heed_tensor *w, uint64_t draw);

typedef enum {
    HEED_FAVOR_QUERIES = 0, /* stabiliser per row */
    HEED_FAVOR_KEYS,        /* stabiliser per [N,m] block (over all keys of a head) */
} heed_favor_kind;

/* Positive random features of x[...,N,d] (2 to 4 dims) for w[m,d] -> [...,N,m]:
 *   x' = x d^(-1/4),  phi(x)_r = exp(w_r . x' - |x'|^2/2 - M) / sqrt(m),
 * so that E[phi(q).phi(k)] = exp(q.k / sqrt(d)) e^(-M_q - M_k): softmax attention with the
 * usual scale. M is the max of the exponent over the row (queries) or over all keys of the
 * block (keys); it cancels in heed_linear_attention's ratio and keeps exp from overflowing.
 * Gradients flow to x and to w (and through M, exactly). */
heed_tensor *heed_favor_features(heed_graph *g, heed_tensor *x, heed_tensor *w, heed_favor_kind kind);

typedef struct {
    bool causal;                /* query i sees keys j <= i + (Nk - Nq) (bottom-right aligned) */
    const int64_t *key_lengths; /* [B]: keys j >= key_lengths[b] are left out; NULL = none */
} heed_linear_attention_opts;

/* phi_q[B,H,Nq,m], phi_k[B,H,Nk,m], v[B,H,Nk,dv] -> [B,H,Nq,dv]; opts may be NULL
 * (non-causal, every key). Non-causal: two GEMMs per head, O(B H (Nq + Nk) m dv) time,
 * O(B H m dv) saved. Causal: the prefix-sum recurrence S_i = S_{i-1} + phi(k_i) v_i^T with
 * an [m,dv] state per head; backward recomputes the states forward and runs a reverse
 * scan for dphi_k and dv, never storing the N states (saved: B H Nq denominators). A row
 * that sees no key (or whose denominator is 0) gives zeros and zero gradients. The
 * features must be positive (or at least give non-zero denominators). */
heed_tensor *heed_linear_attention(heed_graph *g, heed_tensor *phi_q, heed_tensor *phi_k, heed_tensor *v,
                                   const heed_linear_attention_opts *opts);

/* Decoding with the causal form as an RNN: the state of B*H heads in the caller's
 * buffers (constant memory, whatever the number of steps). */
typedef struct {
    int64_t B, H, m, dv;
    int64_t steps; /* keys added so far */
    double *S;     /* [B,H,m,dv]: sum_t phi(k_t) v_t^T */
    double *z;     /* [B,H,m]: sum_t phi(k_t) */
} heed_linear_attn_state;

/* Empty state over the caller's S (B*H*m*dv doubles) and z (B*H*m doubles). HEED_ERR_ARG,
 * message in heed_ctx_error(ctx), for a NULL s, S or z, a size < 1 or a B*H*m*dv that
 * overflows. */
heed_status heed_linear_attn_state_init(heed_ctx *ctx, heed_linear_attn_state *s, int64_t B, int64_t H, int64_t m,
                                        int64_t dv, double *S, double *z);
/* One step: phi_q, phi_k [B,H,1,m], v [B,H,1,dv]; adds the key and value to the state,
 * then returns the output [B,H,1,dv] -- row t of the causal heed_linear_attention at the
 * t-th call. Inference only: recording (an input that needs a gradient outside a no-grad
 * region) is an error. O(B H m dv) per step. */
heed_tensor *heed_linear_attention_step(heed_graph *g, heed_linear_attn_state *s, heed_tensor *phi_q,
                                        heed_tensor *phi_k, heed_tensor *v);

/* ---------------------------------------------------------------- Luong local attention (ops/attention/local.c) */

/* Luong et al. 2015's local attention for one decoder step: only the keys in a window
 * [p - D, p + D] around a centre p are attended, their softmax weights multiplied by a
 * Gaussian centred at p. docs/attention-layers.md, "Local attention". */

/* scores[B,N] (from a score op), values[B,N,dv], centre[B] (real positions, differentiable)
 * -> context [B,dv]; *weights (may be NULL) receives a [B,N]:
 *   window_b = keys j with centre_b - D <= j <= centre_b + D and j < key_lengths[b];
 *   a_j = softmax over the window of the scores * exp(-(j - centre_b)^2 / (2 sigma^2)),
 *   0 outside; sigma = 0 leaves out the Gaussian (a plain softmax over the window).
 * An empty window (a centre past the keys) gives zeros and zero gradients. Gradients flow
 * to the scores, the values and (through the Gaussian) the centre. D >= 1; a centre that
 * is not finite is an error (HEED_ERR_NUMERIC). Cost O(B (2D+1) dv), no extra memory. */
heed_tensor *heed_local_attend(heed_graph *g, heed_tensor *scores, heed_tensor *values, heed_tensor *centre, int64_t D,
                               double sigma, const int64_t *key_lengths, heed_tensor **weights);

/* local-p's predicted centre p_b = (S_b - 1) sigmoid(v_p . tanh(W_p q_b)) for query[B,dq],
 * w_p[dp,dq], v_p[dp], with S_b = key_lengths[b] (or N): a position in [0, S_b - 1]
 * (Luong et al. write S sigmoid(...) with positions from 1). Returns [B], differentiable. */
heed_tensor *heed_local_position(heed_graph *g, heed_tensor *query, heed_tensor *w_p, heed_tensor *v_p, int64_t N,
                                 const int64_t *key_lengths);

typedef enum {
    HEED_LOCAL_M = 0, /* monotonic: the centre is the decoder step */
    HEED_LOCAL_P,     /* predictive: the centre is heed_local_position's */
} heed_local_kind;

typedef struct {
    heed_local_kind kind;
    int64_t D;        /* window half-width; 0 = 10 (Luong et al.'s); sigma = D/2 */
    int64_t step;     /* local-m: the decoder step t (0-based), the centre */
    heed_tensor *w_p; /* local-p: [dp,dq] */
    heed_tensor *v_p; /* local-p: [dp] */
    bool gaussian_m;  /* local-m: weight by the Gaussian too (the paper does only for local-p) */
} heed_local_opts;

/* heed_luong_score (kind, w, v as there), the centre of opts (NULL: local-m at step 0,
 * D = 10), then heed_local_attend: context [B,dv], *weights [B,N]. */
heed_tensor *heed_luong_local_attention(heed_graph *g, heed_luong_kind kind, heed_tensor *query, heed_tensor *keys,
                                        heed_tensor *values, heed_tensor *w, heed_tensor *v,
                                        const heed_local_opts *opts, const int64_t *key_lengths, heed_tensor **weights);

/* ---------------------------------------------------------------- hard attention (ops/attention/hard.c) */

/* Stochastic hard attention (Xu et al. 2015): one key is sampled from the weights and its
 * value is the context; the scores learn by the score-function (REINFORCE) estimator.
 * docs/attention-layers.md, "Hard attention". */

typedef struct {
    heed_tensor *weights;   /* [B,N] softmax over the valid keys: the distribution sampled */
    heed_tensor *log_prob;  /* [B] log weights[b, samples[b]] */
    heed_tensor *entropy;   /* [B] -sum_j w_j log w_j (add -lambda * its mean to the loss) */
    const int64_t *samples; /* [B] the key taken per row, -1 for a row without keys */
} heed_hard_outputs;

/* scores[B,N], values[B,N,dv] -> context [B,dv] = values[b, samples[b]]. While the graph is
 * training, row b samples from the weights with uniform number b of a fresh Philox stream
 * of the ctx (reproducible from heed_ctx_rng_state); otherwise it takes the most probable
 * key. The context's gradient goes to that value only; log_prob, entropy and weights are
 * differentiable in the scores (d log w_i / ds_j = [i = j] - w_j). A row without keys
 * (length 0, or every score -inf) samples -1 and gives zeros. out may be NULL. */
heed_tensor *heed_hard_attend(heed_graph *g, heed_tensor *scores, heed_tensor *values, const int64_t *key_lengths,
                              heed_hard_outputs *out);
/* The REINFORCE surrogate -mean_b (rewards[b] - baseline) log_prob[b] (scalar): its
 * gradient is the estimator of -d E[reward] / d scores. Read the rewards (higher is better;
 * Show, Attend and Tell use log p(y | sample)) from the forward values, then add this to
 * the loss before heed_backward. Rewards and baseline must be finite. */
heed_tensor *heed_reinforce_loss(heed_graph *g, heed_tensor *log_prob, const double *rewards, double baseline);

/* A moving-average reward baseline. */
typedef struct {
    double decay;    /* value <- decay value + (1 - decay) mean(rewards); 0 = 0.9 */
    double value;    /* starts at 0 */
    int64_t updates; /* calls so far */
} heed_reward_baseline;

/* *baseline (may be NULL) = the value before these rewards (use it for them: a baseline
 * that does not depend on the sample keeps the estimator unbiased), then the update.
 * HEED_ERR_ARG, with b unchanged and the message in heed_ctx_error(ctx), for a NULL b or
 * rewards, n < 1, a decay outside (0, 1), a running value or a reward that is not finite
 * (a NULL ctx: HEED_ERR_ARG, no message). */
heed_status heed_baseline_update(heed_ctx *ctx, heed_reward_baseline *b, const double *rewards, int64_t n,
                                 double *baseline);

#ifdef __cplusplus
}
#endif
#endif
