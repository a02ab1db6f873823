/* Edit distance, CER, WER and sentence error rate (include/heed/metrics.h).
 *
 * Levenshtein by the row recurrence over the shorter sequence b:
 *   D[i][j] = min(D[i-1][j] + 1, D[i][j-1] + 1, D[i-1][j-1] + (a_i != b_j)),
 *   D[0][j] = j, D[i][0] = i, distance D[na][nb]; one row of nb + 1 values is kept. */
#include <heed.h>

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int64_t heed_edit_distance(const int64_t *a, int64_t na, const int64_t *b, int64_t nb) {
    if (na < 0 || nb < 0 || (na > 0 && !a) || (nb > 0 && !b)) return -1;
    if (nb > na) { /* keep the row the shorter one */
        const int64_t *t = a;
        a = b, b = t;
        int64_t n = na;
        na = nb, nb = n;
    }
    int64_t *row = malloc((size_t)(nb + 1) * sizeof *row);
    if (!row) return -1;
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
    int64_t d = row[nb];
    free(row);
    return d;
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
static int64_t word_ids(const int64_t *c, int64_t n, int64_t *ids, const int64_t **starts, int64_t *lens, int64_t *n_table,
                        int64_t table_cap) {
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

heed_status heed_error_counts_add(heed_error_counts *c, const char *reference, const char *hypothesis) {
    if (!c || !reference || !hypothesis) return HEED_ERR_ARG;
    size_t lr = strlen(reference), lh = strlen(hypothesis);
    int64_t *rc = malloc((lr + 1) * sizeof *rc), *hc = malloc((lh + 1) * sizeof *hc);
    int64_t *rw = malloc((lr + 1) * sizeof *rw), *hw = malloc((lh + 1) * sizeof *hw);
    int64_t *lens = malloc((lr + lh + 2) * sizeof *lens);
    const int64_t **starts = malloc((lr + lh + 2) * sizeof *starts);
    heed_status st = HEED_ERR_NOMEM;
    if (!rc || !hc || !rw || !hw || !lens || !starts) goto out;
    int64_t nrw, nhw, table = 0;
    int64_t nr = normalise(reference, rc, &nrw), nh = normalise(hypothesis, hc, &nhw);
    word_ids(rc, nr, rw, starts, lens, &table, (int64_t)(lr + lh + 2));
    word_ids(hc, nh, hw, starts, lens, &table, (int64_t)(lr + lh + 2));
    int64_t ce = heed_edit_distance(rc, nr, hc, nh), we = heed_edit_distance(rw, nrw, hw, nhw);
    if (ce < 0 || we < 0) goto out;
    c->char_errors += ce, c->chars += nr;
    c->word_errors += we, c->words += nrw;
    c->sentence_errors += nr != nh || memcmp(rc, hc, (size_t)nr * sizeof *rc) != 0;
    c->sentences++;
    st = HEED_OK;
out:
    free(rc), free(hc), free(rw), free(hw), free(lens), free(starts);
    return st;
}

static double rate(int64_t e, int64_t n) { return n > 0 ? (double)e / (double)n : NAN; }
double heed_cer(const heed_error_counts *c) { return c ? rate(c->char_errors, c->chars) : NAN; }
double heed_wer(const heed_error_counts *c) { return c ? rate(c->word_errors, c->words) : NAN; }
double heed_ser(const heed_error_counts *c) { return c ? rate(c->sentence_errors, c->sentences) : NAN; }
