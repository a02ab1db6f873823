/* heed: Decoding for sequence models: greedy and beam search (models/decode.c). Part of
 * the public API: <heed.h> includes every part; a file may include just the parts it
 * uses. */
#ifndef HEED_API_DECODE_H
#define HEED_API_DECODE_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ decoding (models/decode.c) */

/* Greedy and batched beam search over a step function of the user's model. The search
 * calls step once per output position with the live rows: row i continues row parent[i]
 * of the previous call (at the first call parent is 0..batch-1, one row per input, and
 * every prev token is bos), so the user carries its decoder state as tensors with one row
 * per live row and reorders them with heed_index_select(g, state, 0, parent, n). A row of
 * an input that has finished disappears. step returns log-probabilities [n, V] (f32 or
 * f64, e.g. heed_log_softmax of the logits) and may set *attention to weights [n, N] (the
 * same N every call); NULL on error, with the error on g. Run it under heed_no_grad_begin;
 * the graph is not reset during a search (its tensors are the state). */
typedef heed_tensor *(*heed_decode_step)(heed_graph *g, void *user, int64_t n, const int64_t *prev,
                                         const int64_t *parent, heed_tensor **attention);

typedef struct {
    int64_t beam;            /* 0 or 1: greedy (argmax each step); k > 1: beam search of width k */
    int64_t bos, eos;        /* the first input token; the token that ends a hypothesis */
    int64_t max_len;         /* tokens per hypothesis (eos included) when max_lens is NULL; 0 = 100 */
    const int64_t *max_lens; /* [batch], each >= 1, or NULL: per input (LAS ties it to the input length) */
    double length_penalty;   /* alpha >= 0: score = logp / steps^alpha; 0 = the plain sum */
    int64_t n_best;          /* hypotheses returned per input, 1..beam; 0 = 1 */
} heed_decode_opts;

typedef struct {
    int64_t *tokens; /* [len], eos not included */
    int64_t len;
    bool finished;    /* ended with eos (false: stopped at the maximum length) */
    double logp;      /* sum of the log-probabilities of the tokens, and of eos if finished */
    double score;     /* logp / steps^alpha with steps = len + finished */
    float *attention; /* [steps, keys] the attention weights of each step; NULL if step gave none */
    int64_t keys;
} heed_hypothesis;

typedef struct {
    int64_t batch, n_best;
    heed_hypothesis *hyp; /* [batch * n_best]: input b's hypotheses at b*n_best.., best score first;
                             an input with fewer has empty ones (len 0, score -inf) after them */
} heed_decode_result;

/* Beam search keeps, per input, the beam best live hypotheses by log-probability. Each step
 * it ranks the continuations of all of them (ties: earlier row, then lower token) and walks
 * the best 2*beam: an eos among the first beam ends that hypothesis (into the finished
 * list, which keeps the beam best by score), other tokens continue until beam are live. A
 * hypothesis that reaches its maximum length ends unfinished. An input is done when its
 * best continuation is eos (its top hypothesis has ended) and n_best have finished, or
 * when none is live. Width 1 is exactly greedy decoding (same tokens, scores and attention). On error (bad options, a step that fails
 * or returns a wrong shape or NaN) the error is on g, out is empty, and the graph's
 * status is returned. Free out with heed_decode_result_free. */
heed_status heed_decode(heed_graph *g, int64_t batch, heed_decode_step step, void *user, const heed_decode_opts *opts,
                        heed_decode_result *out);
void heed_decode_result_free(heed_decode_result *r);

#ifdef __cplusplus
}
#endif
#endif
