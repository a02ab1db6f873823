/* heed: Metrics for sequence outputs: edit distance, CER, WER, sentence error rate,
 * corpus BLEU (models/metrics.c). Part of the public API: <heed.h> includes every part;
 * a file may include just the parts it uses. */
#ifndef HEED_API_METRICS_H
#define HEED_API_METRICS_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ metrics (models/metrics.c) */

/* Errors here follow the rest of heed outside graphs: a heed_status, with the message
 * (the function, the bad values, the rule) in heed_ctx_error(ctx); HEED_ERR_ARG with no
 * message for a NULL ctx. */

/* The Levenshtein distance between token sequences a[na] and b[nb] into *distance: the
 * fewest substitutions, insertions and deletions (each cost 1) that turn a into b.
 * O(na nb) time, O(min(na, nb)) memory. HEED_ERR_ARG for a NULL distance, a negative
 * length or NULL with a length > 0 (NULL is an empty sequence only), HEED_ERR_NOMEM;
 * *distance is set only on success. */
heed_status heed_edit_distance(heed_ctx *ctx, const int64_t *a, int64_t na, const int64_t *b, int64_t nb,
                               int64_t *distance);

/* Error counts of a corpus of (reference, hypothesis) text pairs, UTF-8 or ASCII bytes.
 * Both texts are first normalised: runs of whitespace become one space, none at either
 * end. Then
 *   characters: the edit distance between the normalised byte strings (spaces count),
 *               over the reference's length -> CER;
 *   words:      the edit distance between the word sequences (split at spaces), over the
 *               reference's word count -> WER;
 *   sentences:  pairs whose normalised texts differ, over the pairs -> SER.
 * Rates can exceed 1 (insertions). An empty reference adds its hypothesis's length as
 * errors and nothing to the denominators. */
typedef struct {
    int64_t char_errors, chars;
    int64_t word_errors, words;
    int64_t sentence_errors, sentences;
} heed_error_counts;

/* Adds one pair to c. HEED_ERR_ARG for a NULL c, reference or hypothesis (an empty text
 * is ""), HEED_ERR_NOMEM; c is unchanged on error. */
heed_status heed_error_counts_add(heed_ctx *ctx, heed_error_counts *c, const char *reference, const char *hypothesis);
/* The rates of the counts: errors / total. NaN when the total is 0 (no reference
 * characters, words or pairs: the rate is undefined, also with errors) and for a NULL c;
 * plain accessors, since nothing else can fail. */
double heed_cer(const heed_error_counts *c);
double heed_wer(const heed_error_counts *c);
double heed_ser(const heed_error_counts *c);

/* Corpus BLEU (Papineni et al. 2002) over token ids, computed as NLTK 3.8's corpus_bleu
 * with uniform weights 1/n and no smoothing. For each order k = 1..4 and each hypothesis,
 * an n-gram's count is clipped to its largest count in any one reference; the clipped
 * counts and the hypothesis's k-gram count (at least 1, as NLTK) are summed over the corpus:
 *   p_k = matches[k] / totals[k],
 *   BP  = 1 if c > r, else exp(1 - r / c)  (c = the hypotheses' total length, r = the sum of
 *         each one's closest reference length, the shorter on a tie; BP = 0 when c = 0),
 *   BLEU-n = BP exp(sum_{k<=n} log(p_k) / n).
 * Zero-initialised stats are an empty corpus. */
typedef struct heed_bleu_stats {
    int64_t matches[4]; /* matches[k-1]: clipped k-gram matches */
    int64_t totals[4];  /* totals[k-1]: hypothesis k-grams, at least 1 per hypothesis */
    int64_t hyp_len;    /* c: the hypotheses' total length */
    int64_t ref_len;    /* r: the sum of the closest reference lengths */
} heed_bleu_stats;

/* Adds one hypothesis hyp[hyp_len] with its references refs[i][ref_lens[i]], i < n_refs.
 * O(hyp_len (hyp_len + sum ref_lens)) time, no allocation. HEED_ERR_ARG, with s unchanged,
 * for a NULL s, refs or ref_lens, a NULL hyp with hyp_len > 0, a NULL refs[i] with
 * ref_lens[i] > 0, a negative length or n_refs < 1. */
heed_status heed_bleu_add(heed_ctx *ctx, heed_bleu_stats *s, const int64_t *hyp, int64_t hyp_len,
                          const int64_t *const *refs, const int64_t *ref_lens, int64_t n_refs);
/* Corpus BLEU-n of the stats into *bleu, n in 1..4, in [0, 1]. 0 when a precision p_k
 * (k <= n) is 0, also for an empty corpus (NLTK returns 0 when p_1 = 0, and a value below
 * 1e-70 with a warning when only a higher order is 0). HEED_ERR_ARG for a NULL s or bleu
 * or n outside 1..4. */
heed_status heed_bleu(heed_ctx *ctx, const heed_bleu_stats *s, int n, double *bleu);

#ifdef __cplusplus
}
#endif
#endif
