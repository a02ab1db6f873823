/* Edit distance, CER, WER and SER (models/metrics.c) on cases worked out by hand. */
#include "check.h"
#include "heed/metrics.h"

static int64_t dist(const char *a, const char *b) {
    int64_t x[64], y[64], na = 0, nb = 0;
    for (; a[na]; na++) x[na] = a[na];
    for (; b[nb]; nb++) y[nb] = b[nb];
    return heed_edit_distance(x, na, y, nb);
}

static void edit_distance(void) {
    CHECK(dist("", "") == 0, "empty");
    CHECK(dist("abc", "") == 3 && dist("", "abcd") == 4, "against empty");
    CHECK(dist("kitten", "sitting") == 3, "kitten -> sitting: k/s, e/i, +g");
    CHECK(dist("sitting", "kitten") == 3, "symmetric");
    CHECK(dist("flaw", "lawn") == 2, "flaw -> lawn: -f, +n");
    CHECK(dist("abc", "abc") == 0, "equal");
    CHECK(dist("abcdef", "azced") == 3, "b/z, -d... = 3");
    CHECK(heed_edit_distance(NULL, 2, NULL, 0) == -1 && heed_edit_distance(NULL, -1, NULL, 0) == -1, "bad args");
}

static void rates(void) {
    heed_error_counts c = {0};
    /* ref "three seven" (11 chars, 2 words) vs hyp "tree seven": one deletion; 1 word wrong */
    CHECK(heed_error_counts_add(&c, "three seven", "tree seven") == HEED_OK, "add");
    CHECK(c.char_errors == 1 && c.chars == 11 && c.word_errors == 1 && c.words == 2 && c.sentence_errors == 1 &&
              c.sentences == 1,
          "counts %lld/%lld %lld/%lld", (long long)c.char_errors, (long long)c.chars, (long long)c.word_errors,
          (long long)c.words);
    /* whitespace is normalised: equal after it */
    CHECK(heed_error_counts_add(&c, "one  two", " one two ") == HEED_OK, "add");
    CHECK(c.char_errors == 1 && c.chars == 18 && c.word_errors == 1 && c.words == 4 && c.sentence_errors == 1 &&
              c.sentences == 2,
          "normalised");
    /* a dropped word and an inserted one: "one two three" -> "two three four": 2 word errors;
     * characters: delete "one " (4), insert " four" (5) = 9 */
    CHECK(heed_error_counts_add(&c, "one two three", "two three four") == HEED_OK, "add");
    CHECK(c.word_errors == 3 && c.words == 7 && c.char_errors == 10 && c.chars == 31, "shifted: %lld words, %lld chars",
          (long long)c.word_errors, (long long)c.char_errors);
    CHECK_CLOSE(heed_wer(&c), 3.0 / 7, 1e-15);
    CHECK_CLOSE(heed_cer(&c), 10.0 / 31, 1e-15);
    CHECK_CLOSE(heed_ser(&c), 2.0 / 3, 1e-15);
    /* an empty hypothesis: every word deleted */
    heed_error_counts d = {0};
    heed_error_counts_add(&d, "nine nine", "");
    CHECK(d.word_errors == 2 && d.char_errors == 9 && d.sentence_errors == 1, "empty hypothesis");
    /* insertions push WER above 1 */
    heed_error_counts e = {0};
    heed_error_counts_add(&e, "one", "one one one");
    CHECK_CLOSE(heed_wer(&e), 2.0, 1e-15);
    /* nothing counted: NaN, not 0 */
    heed_error_counts z = {0};
    CHECK(isnan(heed_wer(&z)) && isnan(heed_cer(&z)) && isnan(heed_ser(&z)), "empty corpus is NaN");
    CHECK(heed_error_counts_add(&z, NULL, "x") == HEED_ERR_ARG && z.sentences == 0, "NULL refused, nothing counted");
}

int main(void) {
    RUN(edit_distance);
    RUN(rates);
    return check_summary();
}
