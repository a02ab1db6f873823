/* Edit distance, CER, WER, sentence error rate and corpus BLEU (include/heed/metrics.h).
 *
 * Levenshtein by the row recurrence over the shorter sequence b:
 *   D[i][j] = min(D[i-1][j] + 1, D[i][j-1] + 1, D[i-1][j-1] + (a_i != b_j)),
 *   D[0][j] = j, D[i][0] = i, distance D[na][nb]; one row of nb + 1 values is kept.
 *
 * BLEU keeps the sums NLTK's corpus_bleu keeps (heed_bleu_stats); the clipped count of an
 * n-gram is found by counting its occurrences directly, with no table: quadratic in the
 * sentence length, which is short for the captions and transcripts it scores. */
#include <heed/core.h>
#include <heed/extend.h>
#include <heed/metrics.h>

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

heed_status heed_edit_distance(heed_ctx *ctx, const int64_t *a, int64_t na, const int64_t *b, int64_t nb,
                               int64_t *distance) {
    const char *fn = "heed_edit_distance";
    if (!ctx) return HEED_ERR_ARG;
    if (!distance) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: distance is NULL", fn);
    if (na < 0 || nb < 0)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: na = %lld, nb = %lld (lengths must be >= 0)", fn, (long long)na,
                             (long long)nb);
    if ((na > 0 && !a) || (nb > 0 && !b))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: %s is NULL with length %lld (NULL only for an empty sequence)", fn,
                             na > 0 && !a ? "a" : "b", (long long)(na > 0 && !a ? na : nb));
    if (nb > na) { /* keep the row the shorter one */
        const int64_t *t = a;
        a = b, b = t;
        int64_t n = na;
        na = nb, nb = n;
    }
    int64_t *row = malloc((size_t)(nb + 1) * sizeof *row);
    if (!row)
        return heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory for a row of %lld values", fn, (long long)nb + 1);
    for (int64_t j = 0; j <= nb; j++) row[j] = j;
    for (int64_t i = 1; i <= na; i++) {
        int64_t diag = row[0]; /* D[i-1][j-1] */
        row[0] = i;
        for (int64_t j = 1; j <= nb; j++) {
            int64_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    *distance = row[nb];
    free(row);
    return HEED_OK;
}

/* The normalised text as bytes (whitespace runs -> one space, trimmed) into out[]; returns
 * the count of bytes, the count of words in *n_words. */
static int64_t normalise(const char *s, int64_t *out, int64_t *n_words) {
    int64_t n = 0, w = 0;
    bool in_space = true;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isspace(*p)) {
            in_space = true;
            continue;
        }
        if (in_space && n > 0) out[n++] = ' ';
        if (in_space) w++;
        in_space = false;
        out[n++] = *p;
    }
    *n_words = w;
    return n;
}

/* Word ids: every distinct word (across both texts, compared byte for byte) gets its index
 * in a table, so the word sequences compare as token sequences. */
static int64_t word_ids(const int64_t *c, int64_t n, int64_t *ids, const int64_t **starts, int64_t *lens,
                        int64_t *n_table, int64_t table_cap) {
    int64_t w = 0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j < n && c[j] != ' ') j++;
        int64_t id = -1;
        for (int64_t t = 0; t < *n_table && id < 0; t++)
            if (lens[t] == j - i && !memcmp(starts[t], c + i, (size_t)(j - i) * sizeof *c)) id = t;
        if (id < 0 && *n_table < table_cap) {
            id = *n_table;
            starts[id] = c + i, lens[id] = j - i;
            (*n_table)++;
        }
        ids[w++] = id;
        i = j + 1;
    }
    return w;
}

heed_status heed_error_counts_add(heed_ctx *ctx, heed_error_counts *c, const char *reference, const char *hypothesis) {
    const char *fn = "heed_error_counts_add";
    if (!ctx) return HEED_ERR_ARG;
    if (!c || !reference || !hypothesis)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: %s is NULL (an empty text is \"\")", fn,
                             !c           ? "counts"
                             : !reference ? "reference"
                                          : "hypothesis");
    size_t lr = strlen(reference), lh = strlen(hypothesis);
    int64_t *rc = malloc((lr + 1) * sizeof *rc), *hc = malloc((lh + 1) * sizeof *hc);
    int64_t *rw = malloc((lr + 1) * sizeof *rw), *hw = malloc((lh + 1) * sizeof *hw);
    int64_t *lens = malloc((lr + lh + 2) * sizeof *lens);
    const int64_t **starts = malloc((lr + lh + 2) * sizeof *starts);
    heed_status st = HEED_OK;
    if (!rc || !hc || !rw || !hw || !lens || !starts) {
        st = heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory for texts of %zu and %zu bytes", fn, lr, lh);
        goto out;
    }
    int64_t nrw, nhw, table = 0;
    int64_t nr = normalise(reference, rc, &nrw), nh = normalise(hypothesis, hc, &nhw);
    word_ids(rc, nr, rw, starts, lens, &table, (int64_t)(lr + lh + 2));
    word_ids(hc, nh, hw, starts, lens, &table, (int64_t)(lr + lh + 2));
    int64_t ce, we;
    if ((st = heed_edit_distance(ctx, rc, nr, hc, nh, &ce)) != HEED_OK ||
        (st = heed_edit_distance(ctx, rw, nrw, hw, nhw, &we)) != HEED_OK)
        goto out;
    c->char_errors += ce, c->chars += nr;
    c->word_errors += we, c->words += nrw;
    c->sentence_errors += nr != nh || memcmp(rc, hc, (size_t)nr * sizeof *rc) != 0;
    c->sentences++;
out:
    free(rc), free(hc), free(rw), free(hw), free(lens), free(starts);
    return st;
}

static double rate(int64_t e, int64_t n) { return n > 0 ? (double)e / (double)n : NAN; }
double heed_cer(const heed_error_counts *c) { return c ? rate(c->char_errors, c->chars) : NAN; }
double heed_wer(const heed_error_counts *c) { return c ? rate(c->word_errors, c->words) : NAN; }
double heed_ser(const heed_error_counts *c) { return c ? rate(c->sentence_errors, c->sentences) : NAN; }

/* How often the k-gram g occurs in x[n]. */
static int64_t ngram_count(const int64_t *g, int64_t k, const int64_t *x, int64_t n) {
    int64_t c = 0;
    for (int64_t j = 0; j + k <= n; j++) c += !memcmp(x + j, g, (size_t)k * sizeof *g);
    return c;
}

heed_status heed_bleu_add(heed_ctx *ctx, heed_bleu_stats *s, const int64_t *hyp, int64_t hyp_len,
                          const int64_t *const *refs, const int64_t *ref_lens, int64_t n_refs) {
    const char *fn = "heed_bleu_add";
    if (!ctx) return HEED_ERR_ARG;
    if (!s || !refs || !ref_lens)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: %s is NULL", fn, !s ? "stats" : !refs ? "refs" : "ref_lens");
    if (hyp_len < 0 || (hyp_len > 0 && !hyp))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: hyp %s with hyp_len = %lld (need hyp_len >= 0, NULL only when 0)",
                             fn, hyp ? "given" : "NULL", (long long)hyp_len);
    if (n_refs < 1)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: n_refs = %lld (at least one reference)", fn, (long long)n_refs);
    for (int64_t r = 0; r < n_refs; r++)
        if (ref_lens[r] < 0 || (ref_lens[r] > 0 && !refs[r]))
            return heed_ctx_fail(ctx, HEED_ERR_ARG,
                                 "%s: refs[%lld] %s with ref_lens[%lld] = %lld (need a length >= 0, NULL only when 0)",
                                 fn, (long long)r, refs[r] ? "given" : "NULL", (long long)r, (long long)ref_lens[r]);
    for (int64_t k = 1; k <= 4; k++) {
        int64_t matches = 0;
        for (int64_t i = 0; i + k <= hyp_len; i++) {
            const int64_t *g = hyp + i;
            if (ngram_count(g, k, hyp, i + k - 1) > 0) continue; /* counted at its first occurrence */
            int64_t ref_max = 0;
            for (int64_t r = 0; r < n_refs; r++) {
                int64_t c = ngram_count(g, k, refs[r], ref_lens[r]);
                if (c > ref_max) ref_max = c;
            }
            int64_t in_hyp = ngram_count(g, k, hyp, hyp_len);
            matches += in_hyp < ref_max ? in_hyp : ref_max;
        }
        s->matches[k - 1] += matches;
        s->totals[k - 1] += hyp_len >= k ? hyp_len - k + 1 : 1; /* NLTK: max(1, count) */
    }
    int64_t closest = ref_lens[0];
    for (int64_t r = 1; r < n_refs; r++) {
        int64_t d = llabs(ref_lens[r] - hyp_len), best = llabs(closest - hyp_len);
        if (d < best || (d == best && ref_lens[r] < closest)) closest = ref_lens[r];
    }
    s->hyp_len += hyp_len;
    s->ref_len += closest;
    return HEED_OK;
}

heed_status heed_bleu(heed_ctx *ctx, const heed_bleu_stats *s, int n, double *bleu) {
    if (!ctx) return HEED_ERR_ARG;
    if (!s || !bleu) return heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_bleu: %s is NULL", !s ? "stats" : "bleu");
    if (n < 1 || n > 4) return heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_bleu: n = %d (BLEU-n for n in 1..4)", n);
    double log_sum = 0;
    for (int k = 0; k < n; k++) {
        if (s->matches[k] == 0) return *bleu = 0, HEED_OK;
        log_sum += log((double)s->matches[k] / (double)s->totals[k]);
    }
    double c = (double)s->hyp_len, r = (double)s->ref_len;
    double bp = c > r ? 1 : exp(1 - r / c); /* c > 0 here: a match needs a hypothesis token */
    *bleu = bp * exp(log_sum / n);
    return HEED_OK;
}
