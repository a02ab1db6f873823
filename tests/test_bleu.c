/* Corpus BLEU (models/metrics.c): cases worked out by hand, the classic multiple-reference
 * examples, and sentences scored by NLTK 3.8 (python3-nltk, not needed to run this test):
 *   from nltk.translate.bleu_score import corpus_bleu
 *   corpus_bleu(list_of_references, hypotheses, weights=(1/n,) * n)
 * with the words split at spaces. */
#include "check.h"
#include "heed/metrics.h"

/* Words to ids: each distinct word (case-sensitive) gets the next id. */
enum { MAX_WORDS = 64, VOCAB = 256 };
static heed_ctx *ctx;
static char vocab[VOCAB][32];
static int64_t n_vocab;

static int64_t tokens(const char *text, int64_t *ids) {
    int64_t n = 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ') p++;
        if (!*p) break;
        size_t len = strcspn(p, " ");
        int64_t id = -1;
        for (int64_t v = 0; v < n_vocab && id < 0; v++)
            if (strlen(vocab[v]) == len && !strncmp(vocab[v], p, len)) id = v;
        if (id < 0 && n_vocab < VOCAB && len < sizeof vocab[0]) {
            memcpy(vocab[n_vocab], p, len);
            vocab[n_vocab][len] = 0;
            id = n_vocab++;
        }
        if (n < MAX_WORDS) ids[n++] = id;
        p += len;
    }
    return n;
}

/* Adds a hypothesis and up to 4 references given as text. */
static void add_text(heed_bleu_stats *s, const char *hyp, int n_refs, const char *const *refs) {
    int64_t h[MAX_WORDS], r[4][MAX_WORDS], lens[4];
    const int64_t *rp[4];
    int64_t nh = tokens(hyp, h);
    for (int i = 0; i < n_refs; i++) lens[i] = tokens(refs[i], r[i]), rp[i] = r[i];
    CHECK(heed_bleu_add(ctx, s, h, nh, rp, lens, n_refs) == HEED_OK, "add '%s': %s", hyp, heed_ctx_error(ctx));
}

static void add_ids(heed_bleu_stats *s, const int64_t *hyp, int64_t nh, const int64_t *ref, int64_t nr) {
    const int64_t *refs[1] = {ref};
    CHECK(heed_bleu_add(ctx, s, hyp, nh, refs, &nr, 1) == HEED_OK, "add: %s", heed_ctx_error(ctx));
}

/* BLEU-n of s, or NaN (failing every comparison) with the error shown. */
static double bleu(const heed_bleu_stats *s, int n) {
    double b = NAN;
    CHECK(heed_bleu(ctx, s, n, &b) == HEED_OK, "BLEU-%d: %s", n, heed_ctx_error(ctx));
    return b;
}

#define CHECK_BLEU(s, n, want) CHECK_CLOSE(bleu(s, n), (want), 1e-13)

static void by_hand(void) {
    /* hyp 1 2 3 4 5, ref 1 2 3 4 6 7:
     *   p1 = 4/5 (1 2 3 4), p2 = 3/4 (12 23 34), p3 = 2/3 (123 234), p4 = 1/2 (1234);
     *   c = 5 < r = 6: BP = exp(1 - 6/5) = exp(-0.2);
     *   BLEU-1 = exp(-0.2) 0.8 = 0.6549846...;
     *   BLEU-4 = exp(-0.2) (4/5 3/4 2/3 1/2)^(1/4) = exp(-0.2) (1/5)^(1/4) = 0.5475182...
     *   (NLTK: 0.6549846024623855 and 0.5475182535069453). */
    heed_bleu_stats s = {0};
    add_ids(&s, (int64_t[]){1, 2, 3, 4, 5}, 5, (int64_t[]){1, 2, 3, 4, 6, 7}, 6);
    CHECK(s.matches[0] == 4 && s.matches[1] == 3 && s.matches[2] == 2 && s.matches[3] == 1, "matches");
    CHECK(s.totals[0] == 5 && s.totals[1] == 4 && s.totals[2] == 3 && s.totals[3] == 2, "totals");
    CHECK(s.hyp_len == 5 && s.ref_len == 6, "lengths");
    CHECK_BLEU(&s, 1, exp(-0.2) * 0.8);
    CHECK_BLEU(&s, 2, exp(-0.2) * sqrt(0.8 * 0.75));
    CHECK_BLEU(&s, 3, exp(-0.2) * cbrt(0.8 * 0.75 * 2.0 / 3));
    CHECK_BLEU(&s, 4, exp(-0.2) * pow(0.2, 0.25));
    CHECK_BLEU(&s, 1, 0.6549846024623855);
    CHECK_BLEU(&s, 4, 0.5475182535069453);

    /* An empty hypothesis adds its closest reference length to r and 1 to every total (NLTK
     * divides by max(1, count)), no matches. Corpus: (1 2 3 4 | 1 2 3 4), (empty | 5 6 7 8):
     *   matches 4 3 2 1, totals 4+1 3+1 2+1 1+1; c = 4, r = 8: BP = exp(1 - 2) = 1/e;
     *   BLEU-1 = 4/5 / e = 0.2943035..., BLEU-4 = (4/5 3/4 2/3 1/2)^(1/4) / e = 0.2460158...
     *   (NLTK: 0.2943035529371539 and 0.24601580968354606). */
    heed_bleu_stats e = {0};
    add_ids(&e, (int64_t[]){1, 2, 3, 4}, 4, (int64_t[]){1, 2, 3, 4}, 4);
    add_ids(&e, NULL, 0, (int64_t[]){5, 6, 7, 8}, 4);
    CHECK(e.totals[0] == 5 && e.totals[3] == 2 && e.hyp_len == 4 && e.ref_len == 8, "empty hypothesis counted");
    CHECK_BLEU(&e, 1, 0.8 / M_E);
    CHECK_BLEU(&e, 4, pow(0.2, 0.25) / M_E);
    CHECK_BLEU(&e, 4, 0.24601580968354606);

    /* A perfect match scores 1 at every order. */
    heed_bleu_stats p = {0};
    add_ids(&p, (int64_t[]){9, 8, 7, 6, 5}, 5, (int64_t[]){9, 8, 7, 6, 5}, 5);
    for (int n = 1; n <= 4; n++) CHECK_BLEU(&p, n, 1.0);

    /* Nothing counted, or no unigram match: 0 (NLTK returns 0 when p1 = 0). */
    heed_bleu_stats z = {0};
    for (int n = 1; n <= 4; n++) CHECK(bleu(&z, n) == 0, "empty corpus BLEU-%d = %g", n, bleu(&z, n));
    add_ids(&z, (int64_t[]){1, 2}, 2, (int64_t[]){3, 4}, 2);
    CHECK(bleu(&z, 1) == 0, "no match: %g", bleu(&z, 1));
}

static void clipping_and_ties(void) {
    /* Papineni et al.'s example: 'the' x7 against 'the cat is on the mat' and 'there is a cat
     * on the mat': 'the' occurs at most twice in one reference, p1 = 2/7; c = 7, closest r = 7,
     * BP = 1: BLEU-1 = 2/7 (NLTK: 0.2857142857142857). No bigram 'the the' in either: BLEU-2
     * = 0 (NLTK: 7.97e-155 with a warning, its stand-in for 0). */
    heed_bleu_stats s = {0};
    add_text(&s, "the the the the the the the", 2,
             (const char *[]){"the cat is on the mat", "there is a cat on the mat"});
    CHECK(s.matches[0] == 2 && s.totals[0] == 7 && s.ref_len == 7, "clipped to 2 of 7");
    CHECK_BLEU(&s, 1, 2.0 / 7);
    CHECK(bleu(&s, 2) == 0, "BLEU-2 %g", bleu(&s, 2));

    /* hyp 7 7 against refs (7) and (7 7 7): both lengths 1 from c = 2, the shorter (1) is
     * taken, so c > r and BP = 1 (the longer one would give exp(1 - 3/2)). The clip uses the
     * largest count in one reference: '7' 2 times in the hyp, 3 in ref 2: p1 = 2/2; '7 7'
     * once, twice in ref 2: p2 = 1/1. No trigram: p3 = 0/1 (NLTK: 1.0, 1.0, 2.8e-103). */
    heed_bleu_stats t = {0};
    int64_t a[] = {7}, b[] = {7, 7, 7}, lens[] = {1, 3};
    const int64_t *refs[] = {a, b};
    CHECK(heed_bleu_add(ctx, &t, (int64_t[]){7, 7}, 2, refs, lens, 2) == HEED_OK, "add");
    CHECK(t.ref_len == 1, "tie takes the shorter: r = %lld", (long long)t.ref_len);
    CHECK_BLEU(&t, 1, 1.0);
    CHECK_BLEU(&t, 2, 1.0);
    CHECK(bleu(&t, 3) == 0, "BLEU-3 %g", bleu(&t, 3));
    /* The clip is per reference, not the sum over references: hyp 5 5 5 against (5) and
     * (5 6): '5' occurs once in each, so 1 match of 3, not 2 (c = 3 > r = 2, BP 1). */
    heed_bleu_stats u = {0};
    int64_t c[] = {5}, d[] = {5, 6}, lens2[] = {1, 2};
    CHECK(heed_bleu_add(ctx, &u, (int64_t[]){5, 5, 5}, 3, (const int64_t *const[]){c, d}, lens2, 2) == HEED_OK, "add");
    CHECK_BLEU(&u, 1, 1.0 / 3);
}

static const char *ref1[] =
    {"It is a guide to action that ensures that the military will forever heed Party commands",
     "It is the guiding principle which guarantees the military forces always being under the command of the Party",
     "It is the practical guide for the army always to heed the directions of the party"};
static const char *hyp1 =
    "It is a guide to action which ensures that the military always obeys the commands of the party";

static void classic(void) {
    /* NLTK's corpus_bleu and sentence_bleu docstring examples (from Papineni et al.). */
    heed_bleu_stats one = {0};
    add_text(&one, hyp1, 3, ref1);
    /* NLTK: 0.9444444444444444 0.7453559924999299 0.6240726989348756 0.5045666840058485 */
    CHECK_BLEU(&one, 1, 17.0 / 18); /* every word but 'obeys' is in a reference */
    CHECK_BLEU(&one, 2, 0.7453559924999299);
    CHECK_BLEU(&one, 3, 0.6240726989348756);
    CHECK_BLEU(&one, 4, 0.5045666840058485);
    heed_bleu_stats corpus = one;
    add_text(&corpus, "he read the book because he was interested in world history", 1,
             (const char *[]){"he was interested in world history because he read the book"});
    /* NLTK: 0.9655172413793104 0.8242803277698696 0.7069430098960677 0.5920778868801042 */
    CHECK_BLEU(&corpus, 1, 28.0 / 29); /* 17 + 11 matches of 18 + 11 words, c = 29 = r */
    CHECK_BLEU(&corpus, 2, 0.8242803277698696);
    CHECK_BLEU(&corpus, 3, 0.7069430098960677);
    CHECK_BLEU(&corpus, 4, 0.5920778868801042);
    /* The docstring's poor candidate: no trigram matches (NLTK: 0.4953587998572467,
     * 0.18174699151949172, then 8.6e-104 and 5.9e-155 with a warning). */
    heed_bleu_stats poor = {0};
    add_text(&poor, "It is to insure the troops forever hearing the activity guidebook that party direct", 3, ref1);
    CHECK_BLEU(&poor, 1, 0.4953587998572467);
    CHECK_BLEU(&poor, 2, 0.18174699151949172);
    CHECK(bleu(&poor, 3) == 0 && bleu(&poor, 4) == 0, "no trigram match: %g %g", bleu(&poor, 3), bleu(&poor, 4));
}

static void captions(void) {
    /* Caption-like sentences with several references each. NLTK: 0.799454962396691,
     * 0.7044602742980393, 0.5192818167836861, 0.40285949576790814. */
    heed_bleu_stats s = {0};
    add_text(&s, "a man riding a horse on a beach", 3,
             (const char *[]){"a man rides a horse along the beach", "a person on a horse at the beach",
                              "man riding horse by the sea"});
    add_text(&s, "two dogs are playing in snow", 2,
             (const char *[]){"two dogs are playing in the snow", "dogs running through snow"});
    add_text(&s, "a plate of food", 2, (const char *[]){"a plate with food on it", "a white plate of food on a table"});
    CHECK_BLEU(&s, 1, 0.799454962396691);
    CHECK_BLEU(&s, 2, 0.7044602742980393);
    CHECK_BLEU(&s, 3, 0.5192818167836861);
    CHECK_BLEU(&s, 4, 0.40285949576790814);
}

static void bad_input(void) {
    heed_bleu_stats s = {0}, before;
    add_ids(&s, (int64_t[]){1, 2}, 2, (int64_t[]){1, 2}, 2);
    before = s;
    int64_t h[] = {1, 2}, r[] = {1, 2}, len = 2, neg = -1, zero = 0;
    const int64_t *refs[] = {r}, *null_ref[] = {NULL};
    CHECK_CTX_FAIL(ctx, heed_bleu_add(ctx, NULL, h, 2, refs, &len, 1), HEED_ERR_ARG, "heed_bleu_add: stats is NULL");
    CHECK_CTX_FAIL(ctx, heed_bleu_add(ctx, &s, NULL, 2, refs, &len, 1), HEED_ERR_ARG,
                   "heed_bleu_add: hyp NULL with hyp_len = 2 (need hyp_len >= 0, NULL only when 0)");
    CHECK_CTX_FAIL(ctx, heed_bleu_add(ctx, &s, h, -1, refs, &len, 1), HEED_ERR_ARG, "hyp given with hyp_len = -1");
    CHECK_CTX_FAIL(ctx, heed_bleu_add(ctx, &s, h, 2, NULL, &len, 1), HEED_ERR_ARG, "heed_bleu_add: refs is NULL");
    CHECK_CTX_FAIL(ctx, heed_bleu_add(ctx, &s, h, 2, refs, NULL, 1), HEED_ERR_ARG, "heed_bleu_add: ref_lens is NULL");
    CHECK_CTX_FAIL(ctx, heed_bleu_add(ctx, &s, h, 2, refs, &len, 0), HEED_ERR_ARG,
                   "heed_bleu_add: n_refs = 0 (at least one reference)");
    CHECK_CTX_FAIL(ctx, heed_bleu_add(ctx, &s, h, 2, refs, &len, -3), HEED_ERR_ARG, "n_refs = -3");
    CHECK_CTX_FAIL(ctx, heed_bleu_add(ctx, &s, h, 2, refs, &neg, 1), HEED_ERR_ARG,
                   "heed_bleu_add: refs[0] given with ref_lens[0] = -1 (need a length >= 0, NULL only when 0)");
    CHECK_CTX_FAIL(ctx, heed_bleu_add(ctx, &s, h, 2, null_ref, &len, 1), HEED_ERR_ARG,
                   "refs[0] NULL with ref_lens[0] = 2");
    CHECK(heed_bleu_add(NULL, &s, h, 2, refs, &len, 1) == HEED_ERR_ARG, "NULL ctx");
    CHECK(!memcmp(&s, &before, sizeof s), "stats unchanged by refused calls");
    /* NULL with length 0 is an empty sequence, not an error. */
    CHECK(heed_bleu_add(ctx, &s, h, 2, null_ref, &zero, 1) == HEED_OK, "empty reference");
    double b = 7;
    CHECK_CTX_FAIL(ctx, heed_bleu(ctx, NULL, 1, &b), HEED_ERR_ARG, "heed_bleu: stats is NULL");
    CHECK_CTX_FAIL(ctx, heed_bleu(ctx, &s, 1, NULL), HEED_ERR_ARG, "heed_bleu: bleu is NULL");
    CHECK_CTX_FAIL(ctx, heed_bleu(ctx, &s, 0, &b), HEED_ERR_ARG, "heed_bleu: n = 0 (BLEU-n for n in 1..4)");
    CHECK_CTX_FAIL(ctx, heed_bleu(ctx, &s, 5, &b), HEED_ERR_ARG, "heed_bleu: n = 5");
    CHECK(heed_bleu(NULL, &s, 1, &b) == HEED_ERR_ARG && b == 7, "NULL ctx; *bleu untouched on error");
}

int main(void) {
    ctx = heed_ctx_new(NULL);
    RUN(by_hand);
    RUN(clipping_and_ties);
    RUN(classic);
    RUN(captions);
    RUN(bad_input);
    heed_ctx_free(ctx);
    return check_summary();
}
