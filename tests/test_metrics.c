/* Edit distance, CER, WER and SER (models/metrics.c) on cases worked out by hand. */
#include "check.h"
#include "heed/metrics.h"

static heed_ctx *ctx;

/* The distance, or INT64_MIN (failing every comparison) with the error shown. */
static int64_t dist(const char *a, const char *b) {
    int64_t x[64], y[64], na = 0, nb = 0, d = INT64_MIN;
    for (; a[na]; na++) x[na] = a[na];
    for (; b[nb]; nb++) y[nb] = b[nb];
    heed_status st = heed_edit_distance(ctx, x, na, y, nb, &d);
    CHECK(st == HEED_OK, "'%s' vs '%s': %s", a, b, heed_ctx_error(ctx));
    return st == HEED_OK ? d : INT64_MIN;
}

static void edit_distance(void) {
    CHECK(dist("", "") == 0, "empty");
    CHECK(dist("abc", "") == 3 && dist("", "abcd") == 4, "against empty");
    CHECK(dist("kitten", "sitting") == 3, "kitten -> sitting: k/s, e/i, +g");
    CHECK(dist("sitting", "kitten") == 3, "symmetric");
    CHECK(dist("flaw", "lawn") == 2, "flaw -> lawn: -f, +n");
    CHECK(dist("abc", "abc") == 0, "equal");
    CHECK(dist("abcdef", "azced") == 3, "b/z, -d... = 3");
}

static void bad_input(void) {
    int64_t x[] = {1, 2}, d = 7;
    CHECK_CTX_FAIL(ctx, heed_edit_distance(ctx, NULL, 2, x, 0, &d), HEED_ERR_ARG,
                   "heed_edit_distance: a is NULL with length 2 (NULL only for an empty sequence)");
    CHECK_CTX_FAIL(ctx, heed_edit_distance(ctx, x, 2, NULL, 1, &d), HEED_ERR_ARG, "b is NULL with length 1");
    CHECK_CTX_FAIL(ctx, heed_edit_distance(ctx, x, -1, x, 0, &d), HEED_ERR_ARG,
                   "heed_edit_distance: na = -1, nb = 0 (lengths must be >= 0)");
    CHECK_CTX_FAIL(ctx, heed_edit_distance(ctx, x, 2, x, -3, &d), HEED_ERR_ARG, "na = 2, nb = -3");
    CHECK_CTX_FAIL(ctx, heed_edit_distance(ctx, x, 2, x, 2, NULL), HEED_ERR_ARG,
                   "heed_edit_distance: distance is NULL");
    CHECK(d == 7, "*distance untouched on error");
    CHECK(heed_edit_distance(NULL, x, 2, x, 2, &d) == HEED_ERR_ARG && d == 7, "NULL ctx");
    CHECK(heed_edit_distance(ctx, NULL, 0, x, 2, &d) == HEED_OK && d == 2, "NULL is an empty sequence");

    heed_error_counts z = {0};
    CHECK_CTX_FAIL(ctx, heed_error_counts_add(ctx, &z, NULL, "x"), HEED_ERR_ARG,
                   "heed_error_counts_add: reference is NULL (an empty text is \"\")");
    CHECK_CTX_FAIL(ctx, heed_error_counts_add(ctx, &z, "x", NULL), HEED_ERR_ARG, "hypothesis is NULL");
    CHECK_CTX_FAIL(ctx, heed_error_counts_add(ctx, NULL, "x", "x"), HEED_ERR_ARG,
                   "heed_error_counts_add: counts is NULL");
    CHECK(heed_error_counts_add(NULL, &z, "x", "x") == HEED_ERR_ARG, "NULL ctx");
    CHECK(z.sentences == 0 && z.chars == 0 && z.words == 0, "nothing counted on error");
}

static void rates(void) {
    heed_error_counts c = {0};
    /* ref "three seven" (11 chars, 2 words) vs hyp "tree seven": one deletion; 1 word wrong */
    CHECK(heed_error_counts_add(ctx, &c, "three seven", "tree seven") == HEED_OK, "add");
    CHECK(c.char_errors == 1 && c.chars == 11 && c.word_errors == 1 && c.words == 2 && c.sentence_errors == 1 &&
              c.sentences == 1,
          "counts %lld/%lld %lld/%lld", (long long)c.char_errors, (long long)c.chars, (long long)c.word_errors,
          (long long)c.words);
    /* whitespace is normalised: equal after it */
    CHECK(heed_error_counts_add(ctx, &c, "one  two", " one two ") == HEED_OK, "add");
    CHECK(c.char_errors == 1 && c.chars == 18 && c.word_errors == 1 && c.words == 4 && c.sentence_errors == 1 &&
              c.sentences == 2,
          "normalised");
    /* a dropped word and an inserted one: "one two three" -> "two three four": 2 word errors;
     * characters: delete "one " (4), insert " four" (5) = 9 */
    CHECK(heed_error_counts_add(ctx, &c, "one two three", "two three four") == HEED_OK, "add");
    CHECK(c.word_errors == 3 && c.words == 7 && c.char_errors == 10 && c.chars == 31, "shifted: %lld words, %lld chars",
          (long long)c.word_errors, (long long)c.char_errors);
    CHECK_CLOSE(heed_wer(&c), 3.0 / 7, 1e-15);
    CHECK_CLOSE(heed_cer(&c), 10.0 / 31, 1e-15);
    CHECK_CLOSE(heed_ser(&c), 2.0 / 3, 1e-15);
    /* an empty hypothesis: every word deleted */
    heed_error_counts d = {0};
    heed_error_counts_add(ctx, &d, "nine nine", "");
    CHECK(d.word_errors == 2 && d.char_errors == 9 && d.sentence_errors == 1, "empty hypothesis");
    /* insertions push WER above 1 */
    heed_error_counts e = {0};
    heed_error_counts_add(ctx, &e, "one", "one one one");
    CHECK_CLOSE(heed_wer(&e), 2.0, 1e-15);
    /* nothing counted: NaN, not 0 */
    heed_error_counts z = {0};
    CHECK(isnan(heed_wer(&z)) && isnan(heed_cer(&z)) && isnan(heed_ser(&z)), "empty corpus is NaN");
    /* only empty references: errors over no reference are NaN too, not inf */
    heed_error_counts_add(ctx, &z, "", "extra words");
    CHECK(z.word_errors == 2 && z.words == 0 && isnan(heed_wer(&z)) && isnan(heed_cer(&z)), "errors over 0: %g %g",
          heed_wer(&z), heed_cer(&z));
    CHECK(heed_ser(&z) == 1, "the pair still counts for SER: %g", heed_ser(&z));
    CHECK(isnan(heed_wer(NULL)) && isnan(heed_cer(NULL)) && isnan(heed_ser(NULL)), "NULL counts are NaN");
}

int main(void) {
    ctx = heed_ctx_new(NULL);
    RUN(edit_distance);
    RUN(rates);
    RUN(bad_input);
    heed_ctx_free(ctx);
    return check_summary();
}
