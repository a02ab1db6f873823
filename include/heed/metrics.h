/* heed: Metrics for sequence outputs: edit distance, CER, WER, sentence error rate
 * (models/metrics.c). Part of the public API; include <heed.h>, not this file. */
#ifndef HEED_API_METRICS_H
#define HEED_API_METRICS_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ metrics (models/metrics.c) */

/* The Levenshtein distance between token sequences a[na] and b[nb]: the fewest
 * substitutions, insertions and deletions (each cost 1) that turn a into b. O(na nb) time,
 * O(min(na, nb)) memory. -1 on a bad argument (negative length, NULL with length > 0) or
 * no memory. */
int64_t heed_edit_distance(const int64_t *a, int64_t na, const int64_t *b, int64_t nb);

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

/* Adds one pair to c. HEED_ERR_ARG (NULL) or HEED_ERR_NOMEM; c is unchanged on error. */
heed_status heed_error_counts_add(heed_error_counts *c, const char *reference, const char *hypothesis);
/* The rates of the counts: errors / total; NaN when the total is 0. */
double heed_cer(const heed_error_counts *c);
double heed_wer(const heed_error_counts *c);
double heed_ser(const heed_error_counts *c);

#ifdef __cplusplus
}
#endif
#endif
