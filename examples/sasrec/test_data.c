/* SASRec example's data side: the loader and its errors, the split, the training and
 * evaluation rows, the metrics on hand-made rankings, the protocol, the generator and its
 * ceiling against popularity. */
#include "tests/check.h"
#include "sasrec_data.h"

#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static const char *write_file(const char *name, const char *text, size_t len) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    fwrite(text, 1, len, f);
    fclose(f);
    return path;
}

static void loader_reads_and_splits(void) {
    /* users interleaved, CRLF, tabs, blank lines, trailing spaces */
    const char *text = "1 10\n2 20\r\n1 11\n\n1\t12 \n2 21\n1 13\n3 5\n2 22\n";
    char err[512] = "";
    sr_data d;
    int rc = sr_load(write_file("ok.txt", text, strlen(text)), &d, err, sizeof err);
    CHECK(rc == 0, "%s", err);
    if (rc) return;
    CHECK(d.n_users == 3 && d.n_items == 22 && d.n_interactions == 8, "sizes %lld %lld %lld", (long long)d.n_users,
          (long long)d.n_items, (long long)d.n_interactions);
    CHECK(sr_len(&d, 1) == 4 && sr_seq(&d, 1)[0] == 10 && sr_seq(&d, 1)[3] == 13, "user 1 in time order");
    CHECK(sr_train_len(&d, 1) == 2 && sr_valid_item(&d, 1) == 12 && sr_test_item(&d, 1) == 13, "user 1 split");
    CHECK(sr_train_len(&d, 2) == 1 && sr_valid_item(&d, 2) == 21 && sr_test_item(&d, 2) == 22, "user 2 split");
    CHECK(sr_train_len(&d, 3) == 1 && sr_valid_item(&d, 3) == 0 && sr_test_item(&d, 3) == 0, "short user trains only");
    CHECK(sr_seen_in_train(&d, 1, 11) && !sr_seen_in_train(&d, 1, 12) && sr_seen(&d, 1, 12) && !sr_seen(&d, 1, 20),
          "seen sets");
    sr_stats s = sr_data_stats(&d);
    CHECK(s.users_with_test == 2 && s.users_with_train == 1 && s.max_len == 4 && s.active_items == 8 &&
              s.active_users == 3,
          "stats");

    /* rows: user 1 trains on 10 11; eval rows see 10 11 (valid) and 10 11 12 (test) */
    int64_t seq[4], pos[4], neg[4];
    heed_rng r = heed_rng_make(1, 1);
    sr_train_row(&d, 1, 4, &r, seq, pos, neg);
    CHECK(seq[0] == 0 && seq[1] == 0 && seq[2] == 0 && seq[3] == 10 && pos[3] == 11 && pos[2] == 0 && neg[2] == 0,
          "train row %lld %lld %lld %lld / pos %lld", (long long)seq[0], (long long)seq[1], (long long)seq[2],
          (long long)seq[3], (long long)pos[3]);
    CHECK(neg[3] >= 1 && neg[3] <= 22 && neg[3] != 10 && neg[3] != 11, "negative %lld", (long long)neg[3]);
    sr_eval_row(&d, 1, 4, false, seq);
    CHECK(seq[0] == 0 && seq[1] == 0 && seq[2] == 10 && seq[3] == 11, "valid row");
    sr_eval_row(&d, 1, 2, true, seq);
    CHECK(seq[0] == 11 && seq[1] == 12, "test row keeps the last maxlen items");

    /* save and load again: same sequences */
    char path[512];
    snprintf(path, sizeof path, "%s/saved.txt", tmpdir);
    CHECK(sr_save(path, &d, err, sizeof err) == 0, "%s", err);
    sr_data e;
    CHECK(sr_load(path, &e, err, sizeof err) == 0, "%s", err);
    CHECK(e.n_interactions == d.n_interactions && memcmp(e.items, d.items, sizeof(int32_t) * 8) == 0, "round trip");
    sr_data_free(&e);
    /* a save that cannot happen says why and leaves nothing behind */
    snprintf(path, sizeof path, "%s/no-such-dir/saved.txt", tmpdir);
    CHECK(sr_save(path, &d, err, sizeof err) == -1 && strstr(err, "cannot create a file next to") &&
              strstr(err, "no-such-dir/saved.txt"),
          "%s", err);
    sr_data_free(&d);
}

static void expect_load_error(const char *text, size_t len, const char *needle1, const char *needle2) {
    char err[512] = "";
    sr_data d = {0};
    int rc = sr_load(write_file("bad.txt", text, len), &d, err, sizeof err);
    CHECK(rc == -1, "'%s' must fail", text);
    CHECK(strstr(err, needle1) && (!needle2 || strstr(err, needle2)), "'%s' -> '%s' (want '%s' and '%s')", text, err,
          needle1, needle2 ? needle2 : "");
    CHECK(d.items == NULL, "nothing filled on failure");
}

static void loader_errors(void) {
    expect_load_error("1 2\n1 x\n", 8, ":2: expected a positive integer id", "'1 x'");
    expect_load_error("1 2\n3\n", 6, ":2: missing item id", "'3'");
    expect_load_error("1 2 3\n", 6, ":1: unexpected text after the item id", "'1 2 3'");
    expect_load_error("1 2\n\n0 5\n", 9, ":3: ids start from 1, got 0", "'0 5'");
    expect_load_error("-1 2\n", 5, ":1: expected a positive integer id", "'-1 2'");
    expect_load_error("1 99999999999\n", 14, ":1: id larger than 2147483647", NULL);
    expect_load_error("1,2\n", 4, ":1: expected whitespace after the user id", "'1,2'");
    expect_load_error("1 2\n4 5x\n", 9, ":2: unexpected text", "'4 5x'");
    expect_load_error("1 2\n2 \x01\x02\n", 9, ":2:", "\\x01\\x02");
    expect_load_error("1 2\n2 3\0 4\n", 10, ":2: NUL byte", NULL);
    expect_load_error("", 0, "empty file", NULL);
    expect_load_error("\n  \n", 4, "empty file", NULL);
    char err[512] = "";
    sr_data d;
    CHECK(sr_load("/nonexistent/dir/x.txt", &d, err, sizeof err) == -1 && strstr(err, "cannot open"), "%s", err);
    CHECK(sr_load(NULL, &d, err, sizeof err) == -1, "NULL path");
    char path[512];
    snprintf(path, sizeof path, "%s/a_directory", tmpdir);
    CHECK(mkdir(path, 0700) == 0, "mkdir");
    CHECK(sr_load(path, &d, err, sizeof err) == -1 && strstr(err, "a_directory"), "a directory: %s", err);
    /* a long malformed line is quoted with an ellipsis, not copied whole */
    char longline[5000];
    memset(longline, '7', 200);
    memcpy(longline + 190, " x\n", 3);
    expect_load_error(longline, 193, "id larger than", "...");
}

/* What a file may ask for is bounded by its size: a line longer than SR_LINE_MAX is an
 * error naming it (a file without line ends is not read whole), and ids far beyond the
 * number of lines are refused before the per-id arrays are allocated. */
static void loader_bounds(void) {
    static char text[3 * SR_LINE_MAX];
    memcpy(text, "1 2\n", 4);
    memset(text + 4, ' ', SR_LINE_MAX); /* line 2: 4096 blanks and "3 4" */
    memcpy(text + 4 + SR_LINE_MAX, "3 4\n", 4);
    expect_load_error(text, 8 + SR_LINE_MAX, ":2: line longer than 4096 bytes", NULL);
    /* exactly SR_LINE_MAX bytes before the line end is allowed (CR included) */
    memset(text + 4, ' ', SR_LINE_MAX - 4);
    memcpy(text + SR_LINE_MAX, "3 4\r\n", 5);
    char err[512] = "";
    sr_data d;
    CHECK(sr_load(write_file("long.txt", text, SR_LINE_MAX + 5), &d, err, sizeof err) == 0 && d.n_users == 3, "%s",
          err);
    sr_data_free(&d);
    /* ids: 2 lines allow up to 16 x 2 + 65536 */
    expect_load_error("2147483647 3\n", 13, ":1: user id 2147483647 is far beyond the file's 1 line", "65552");
    expect_load_error("1 2\n1 65569\n", 12, ":2: item id 65569 is far beyond the file's 2 lines", "65568");
    CHECK(sr_load(write_file("edge.txt", "1 2\n65568 65568\n", 16), &d, err, sizeof err) == 0 && d.n_items == 65568,
          "the largest id allowed: %s", err);
    sr_data_free(&d);
    /* a stream, as the fuzz target reads it */
    FILE *f = fmemopen((void *)"4 1\n4 2\n", 8, "rb");
    CHECK(sr_read(f, "mem", &d, err, sizeof err) == 0 && d.n_users == 4 && sr_len(&d, 4) == 2, "%s", err);
    fclose(f);
    sr_data_free(&d);
    f = fmemopen((void *)"4 1\n4 0\n", 8, "rb");
    CHECK(sr_read(f, "mem", &d, err, sizeof err) == -1 && strstr(err, "mem:2: ids start from 1"), "%s", err);
    fclose(f);
}

/* Fails the evaluation if a negative candidate is an item the user interacted with. */
static int unseen_negatives_scorer(void *user, int64_t n, const int64_t *users, const int64_t *seqs, int64_t maxlen,
                                   const int32_t *cands, int64_t n_cands, float *scores) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n_cands; j++) {
            if (j > 0 && sr_seen(user, users[i], cands[i * n_cands + j])) return -1;
            scores[i * n_cands + j] = (float)j;
        }
    return 0;
}

/* Unseen items: counted exactly, drawn exactly when rejection sampling cannot find them,
 * and an evaluation that needs more negatives than a user has unseen items is refused. */
static void unseen_items_and_negatives(void) {
    /* 8 items; user 1: 1 2 1 3 | 4 5 (trains on 1 2 1 3, valid 4, test 5); user 2: 8 8 */
    int32_t us[] = {1, 1, 1, 1, 1, 1, 2, 2}, is[] = {1, 2, 1, 3, 4, 5, 8, 8};
    sr_data d;
    char err[512] = "";
    CHECK(sr_data_from_pairs(&d, us, is, 8, err, sizeof err) == 0, "%s", err);
    CHECK(sr_unseen_in_train(&d, 1) == 5 && sr_unseen(&d, 1) == 3, "user 1: %lld and %lld unseen",
          (long long)sr_unseen_in_train(&d, 1), (long long)sr_unseen(&d, 1));
    CHECK(sr_nth_unseen(&d, 1, false, 0) == 6 && sr_nth_unseen(&d, 1, false, 2) == 8 &&
              sr_nth_unseen(&d, 1, true, 0) == 4,
          "nth unseen");
    /* A user who trained on all but one of 100,001 items: rejection sampling nearly always
     * fails (1000 tries), the exact draw finds the one item left; the evaluation's
     * negatives (3 unseen of 100,003) likewise. */
    enum { LONG = 100000 };
    int32_t *lu = malloc(sizeof(int32_t) * LONG), *li = malloc(sizeof(int32_t) * LONG);
    for (int i = 0; i < LONG; i++) lu[i] = 1, li[i] = i + 1;
    sr_data e;
    CHECK(sr_data_from_pairs(&e, lu, li, LONG, err, sizeof err) == 0, "%s", err);
    free(lu);
    free(li);
    e.n_items = LONG - 2 + 1; /* trains on 1..99998: 99999 is the only negative left */
    heed_rng r = heed_rng_make(3, 3);
    int64_t seq[8], pos[8], neg[8];
    sr_train_row(&e, 1, 8, &r, seq, pos, neg);
    for (int i = 0; i < 8; i++) CHECK(neg[i] == LONG - 1, "the only unseen item is 99999, got %lld", (long long)neg[i]);
    e.n_items = LONG + 3; /* 100001..100003 never seen */
    sr_eval_opts o = sr_eval_defaults(4, true);
    o.negatives = 3;
    sr_metrics m;
    CHECK(sr_evaluate(&e, &o, unseen_negatives_scorer, &e, &m, err, sizeof err) == 0 && m.users == 1, "%s", err);
    o.negatives = 4;
    CHECK(sr_evaluate(&e, &o, unseen_negatives_scorer, &e, &m, err, sizeof err) == -1 &&
              strstr(err, "leaving 3 unseen"),
          "%s", err);
    sr_data_free(&e);
    /* evaluation: user 1 has 3 unseen items */
    o.negatives = 3;
    sr_popularity p;
    CHECK(sr_popularity_init(&p, &d) == 0, "popularity");
    CHECK(sr_evaluate(&d, &o, sr_popularity_scorer, &p, &m, err, sizeof err) == 0 && m.users == 1, "%s", err);
    o.negatives = 4;
    CHECK(sr_evaluate(&d, &o, sr_popularity_scorer, &p, &m, err, sizeof err) == -1 &&
              strstr(err, "user 1 interacted with 5 of the 8 items, leaving 3 unseen: fewer than the 4 negatives"),
          "%s", err);
    o.full = true; /* full ranking needs no negatives */
    CHECK(sr_evaluate(&d, &o, sr_popularity_scorer, &p, &m, err, sizeof err) == 0, "%s", err);
    sr_popularity_free(&p);
    sr_data_free(&d);
}

static void metrics_on_hand_made_ranks(void) {
    double hr, nd;
    sr_rank_metrics(0, 0, 10, &hr, &nd);
    CHECK(hr == 1 && nd == 1, "first place");
    sr_rank_metrics(9, 0, 10, &hr, &nd);
    CHECK_CLOSE(hr, 1, 1e-15);
    CHECK_CLOSE(nd, 1 / log2(11.0), 1e-15);
    sr_rank_metrics(10, 0, 10, &hr, &nd);
    CHECK(hr == 0 && nd == 0, "eleventh place misses");
    sr_rank_metrics(2, 0, 10, &hr, &nd);
    CHECK_CLOSE(nd, 0.5, 1e-15); /* 1/log2(4) */
    /* ties: ranks 8, 9, 10, 11 equally likely */
    sr_rank_metrics(8, 3, 10, &hr, &nd);
    CHECK_CLOSE(hr, 0.5, 1e-15);
    CHECK_CLOSE(nd, (1 / log2(10.0) + 1 / log2(11.0)) / 4, 1e-15);
    /* everything tied among 101: HR@10 = 10/101 */
    sr_rank_metrics(0, 100, 10, &hr, &nd);
    CHECK_CLOSE(hr, 10.0 / 101, 1e-15);
}

/* Places the true item (column 0) at rank user % 12 by construction. */
static int fixed_rank_scorer(void *user, int64_t n, const int64_t *users, const int64_t *seqs, int64_t maxlen,
                             const int32_t *cands, int64_t n_cands, float *scores) {
    for (int64_t i = 0; i < n; i++) {
        int64_t r = users[i] % 12;
        scores[i * n_cands] = 0;
        for (int64_t j = 1; j < n_cands; j++) scores[i * n_cands + j] = j <= r ? 1.0f : -1.0f;
        for (int64_t j = 0; j < n_cands; j++) /* negatives are unseen and ids are valid */
            if (j > 0 && (sr_seen(user, users[i], cands[i * n_cands + j]) || cands[i * n_cands + j] < 1)) return -1;
    }
    return 0;
}

static int failing_scorer(void *user, int64_t n, const int64_t *users, const int64_t *seqs, int64_t maxlen,
                          const int32_t *cands, int64_t n_cands, float *scores) {
    return -1;
}

static void protocol_with_known_ranks(void) {
    /* 240 users with 4 items each out of 300 */
    int64_t U = 240, L = 4;
    int32_t *us = malloc(sizeof(int32_t) * U * L), *is = malloc(sizeof(int32_t) * U * L);
    for (int64_t u = 0; u < U; u++)
        for (int64_t t = 0; t < L; t++)
            us[u * L + t] = (int32_t)(u + 1), is[u * L + t] = (int32_t)(1 + (u * 7 + t * 13) % 300);
    sr_data d;
    char err[256];
    CHECK(sr_data_from_pairs(&d, us, is, U * L, err, sizeof err) == 0, "%s", err);
    sr_eval_opts o = sr_eval_defaults(5, true);
    o.batch = 64;
    sr_metrics m;
    CHECK(sr_evaluate(&d, &o, fixed_rank_scorer, &d, &m, err, sizeof err) == 0, "%s", err);
    double hr = 0, nd = 0; /* ranks 0..11 for 20 users each */
    for (int r = 0; r < 12; r++) {
        double h, n;
        sr_rank_metrics(r, 0, 10, &h, &n);
        hr += h / 12, nd += n / 12;
    }
    CHECK(m.users == 240, "users %lld", (long long)m.users);
    CHECK_CLOSE(m.hr, hr, 1e-12);
    CHECK_CLOSE(m.ndcg, nd, 1e-12);
    /* user sampling */
    o.max_users = 100;
    CHECK(sr_evaluate(&d, &o, fixed_rank_scorer, &d, &m, err, sizeof err) == 0 && m.users == 100, "sampled users");
    CHECK(sr_evaluate(&d, &o, failing_scorer, &d, &m, err, sizeof err) == -1 && strstr(err, "scorer"), "scorer error");
    o.k = 0;
    CHECK(sr_evaluate(&d, &o, fixed_rank_scorer, &d, &m, err, sizeof err) == -1, "k = 0");
    sr_data_free(&d);
    free(us);
    free(is);
}

/* The counted chain on a hand-made dataset: transitions in the training parts are
 * 1->2 twice, 2->3 and 2->4; items 1, 2 twice, 3 and 4 once (the last two items of
 * each user are held out and never counted). */
static void counted_chain(void) {
    int32_t us[] = {1, 1, 1, 1, 1, 2, 2, 2, 2, 2}, is[] = {1, 2, 3, 6, 6, 1, 2, 4, 5, 5};
    sr_data d;
    char err[256];
    CHECK(sr_data_from_pairs(&d, us, is, 10, err, sizeof err) == 0, "%s", err);
    sr_chain c;
    CHECK(sr_chain_init(&c, &d, 0.2, 0.25) == 0, "init");
    int64_t seq[3] = {0, 1, 2};
    int32_t cands[4] = {3, 2, 5, 1};
    float s[4], full[7];
    CHECK(sr_chain_scorer(&c, 1, (int64_t[]){1}, seq, 3, cands, 4, s) == 0, "score");
    /* w_pop pop(j) + (1 - w_pop) [(1 - w_lag2) T(2, j) + w_lag2 T(1, j)] */
    CHECK_CLOSE(s[0], 0.2 / 6 + 0.8 * 0.75 * 0.5, 1e-6);
    CHECK_CLOSE(s[1], 0.2 * 2 / 6 + 0.8 * 0.25 * 1, 1e-6);
    CHECK_CLOSE(s[2], 0, 1e-12); /* 5 is only held out */
    CHECK_CLOSE(s[3], 0.2 * 2 / 6, 1e-6);
    CHECK(sr_chain_scorer(&c, 1, (int64_t[]){1}, seq, 3, NULL, 0, full) == 0, "full");
    CHECK(full[0] == 0 && full[3] == s[0] && full[2] == s[1] && full[5] == 0 && full[1] == s[3], "full ranking row");
    /* One item of history: the lag-2 share goes to the last item. */
    int64_t one[3] = {0, 0, 2};
    CHECK(sr_chain_scorer(&c, 1, (int64_t[]){1}, one, 3, cands, 4, s) == 0, "score");
    CHECK_CLOSE(s[0], 0.2 / 6 + 0.8 * 0.5, 1e-6);
    sr_chain_free(&c);
    sr_data_free(&d);
}

static void generator_structure_and_ceiling(void) {
    sr_gen_config c = {.n_users = 3000,
                       .n_items = 400,
                       .mean_len = 9,
                       .min_len = 5,
                       .max_len = 60,
                       .successors = 3,
                       .noise = 0.2,
                       .order2 = 0.25,
                       .zipf = 1.0,
                       .seed = 7};
    sr_data d;
    sr_generator gen;
    char err[256];
    CHECK(sr_generate(&c, &d, &gen, err, sizeof err) == 0, "%s", err);
    sr_stats s = sr_data_stats(&d);
    CHECK(fabs(s.mean_len - 9) < 0.3, "mean length %g", s.mean_len);
    CHECK(d.n_users == 3000 && d.n_items == 400, "sizes");
    /* Empirical P(next = first successor of the last item) against the formula. */
    double want = 0, hits = 0, steps = 0;
    for (int64_t u = 1; u <= d.n_users; u++) {
        const int32_t *q = sr_seq(&d, u);
        for (int64_t t = 2; t < sr_len(&d, u); t++) {
            int64_t h[2] = {q[t - 2], q[t - 1]};
            int32_t first = gen.succ[q[t - 1] * 3];
            want += sr_gen_prob(&gen, u, h, 2, first);
            hits += q[t] == first;
            steps++;
        }
    }
    CHECK(fabs(hits / steps - want / steps) < 0.01, "successor frequency %g vs %g", hits / steps, want / steps);
    /* Probabilities sum to one. */
    int64_t h[2] = {5, 9};
    double total = 0;
    for (int32_t j = 1; j <= 400; j++) total += sr_gen_prob(&gen, 1, h, 2, j);
    CHECK_CLOSE(total, 1, 1e-12);
    /* Same seed, same data; another seed, other data. */
    sr_data d2;
    sr_generator g2;
    CHECK(sr_generate(&c, &d2, &g2, err, sizeof err) == 0 && d2.n_interactions == d.n_interactions &&
              memcmp(d2.items, d.items, sizeof(int32_t) * (size_t)d.n_interactions) == 0,
          "deterministic");
    sr_data_free(&d2);
    sr_generator_free(&g2);
    /* The ceiling is far above popularity; both are above chance (10/101). */
    sr_eval_opts o = sr_eval_defaults(50, true);
    sr_metrics ceiling, popm;
    sr_popularity pop;
    CHECK(sr_popularity_init(&pop, &d) == 0, "pop");
    CHECK(sr_evaluate(&d, &o, sr_oracle_scorer, &gen, &ceiling, err, sizeof err) == 0, "%s", err);
    CHECK(sr_evaluate(&d, &o, sr_popularity_scorer, &pop, &popm, err, sizeof err) == 0, "%s", err);
    printf("  generated: ceiling HR@10 %.4f NDCG@10 %.4f, popularity HR@10 %.4f NDCG@10 %.4f\n", ceiling.hr,
           ceiling.ndcg, popm.hr, popm.ndcg);
    /* The chain part alone puts the true item at the top for 80% of the steps. */
    CHECK(ceiling.hr > 0.8 && ceiling.ndcg > 0.6, "ceiling %g %g", ceiling.hr, ceiling.ndcg);
    CHECK(popm.hr > 0.15 && popm.hr < ceiling.hr - 0.3, "popularity %g", popm.hr);
    /* The counted chain knows the formula but counts the transitions: between the two. */
    sr_chain chain;
    sr_metrics chm;
    CHECK(sr_chain_init(&chain, &d, c.noise, c.order2) == 0, "chain");
    CHECK(sr_evaluate(&d, &o, sr_chain_scorer, &chain, &chm, err, sizeof err) == 0, "%s", err);
    printf("  generated: counted chain HR@10 %.4f NDCG@10 %.4f\n", chm.hr, chm.ndcg);
    CHECK(chm.hr > popm.hr + 0.3 && chm.hr < ceiling.hr, "counted chain %g", chm.hr);
    sr_chain_free(&chain);
    /* full ranking is harder than the sampled protocol */
    o.full = true;
    sr_metrics full;
    CHECK(sr_evaluate(&d, &o, sr_oracle_scorer, &gen, &full, err, sizeof err) == 0, "%s", err);
    CHECK(full.hr < ceiling.hr && full.hr > 0.5, "full ranking %g", full.hr);
    sr_popularity_free(&pop);
    sr_generator_free(&gen);
    sr_data_free(&d);

    /* Bad configs are refused with a reason. */
    c.successors = 0;
    CHECK(sr_generate(&c, &d, &gen, err, sizeof err) == -1 && strstr(err, "successors"), "%s", err);
    c.successors = 3, c.mean_len = 2;
    CHECK(sr_generate(&c, &d, &gen, err, sizeof err) == -1 && strstr(err, "mean_len"), "%s", err);
}

/* The interests generator, drawn twice from one seed and once from another: the same data
 * and the same hidden groups, then other data; its structure (each user's first items
 * start its groups in turn, successors stay in their group) and its draws against its
 * formula: the share of repeats and of the first successor of a group's last item. */
static void interests_generator_draws_its_formula(void) {
    sr_gen_config c;
    CHECK(sr_gen_preset("interests", &c) && c.interests == 3 && c.clusters == 20, "the interests preset");
    c.n_users = 2000, c.max_len = 40, c.seed = 11; /* h below holds a whole history */
    sr_data d, d2, d3;
    sr_generator gen, g2, g3;
    char err[256];
    CHECK(sr_generate(&c, &d, &gen, err, sizeof err) == 0, "%s", err);
    CHECK(sr_generate(&c, &d2, &g2, err, sizeof err) == 0, "%s", err);
    int64_t m = c.interests, N = d.n_interactions;
    CHECK(d2.n_interactions == N && memcmp(d2.items, d.items, sizeof(int32_t) * (size_t)N) == 0 &&
              memcmp(g2.interests, gen.interests, sizeof(int32_t) * (size_t)((c.n_users + 1) * m)) == 0 &&
              memcmp(g2.succ, gen.succ, sizeof(int32_t) * (size_t)((c.n_items + 1) * c.successors)) == 0,
          "the same seed gives the same data and truth");
    c.seed = 12;
    CHECK(sr_generate(&c, &d3, &g3, err, sizeof err) == 0, "%s", err);
    CHECK(d3.n_interactions != N || memcmp(d3.items, d.items, sizeof(int32_t) * (size_t)N) != 0,
          "another seed, other data");
    sr_data_free(&d2), sr_data_free(&d3);
    sr_generator_free(&g2), sr_generator_free(&g3);

    int64_t bad_start = 0, bad_succ = 0, bad_group = 0;
    for (int64_t a = 1; a <= c.n_items; a++)
        for (int k = 0; k < c.successors; k++)
            bad_succ += gen.cluster[gen.succ[a * c.successors + k]] != gen.cluster[a];
    double rep_hits = 0, rep_want = 0, succ_hits = 0, succ_want = 0, steps = 0, total_err = 0;
    int64_t h[64];
    for (int64_t u = 1; u <= d.n_users; u++) {
        const int32_t *q = sr_seq(&d, u), *mine = gen.interests + u * m;
        for (int64_t i = 0; i < m; i++) {
            bad_start += gen.cluster[q[i]] != mine[i];
            for (int64_t j = 0; j < i; j++) bad_group += mine[i] == mine[j];
        }
        for (int64_t t = 0; t < sr_len(&d, u); t++) {
            if (t >= m) {
                /* the first successor of the first group's most recent item */
                int64_t s = t - 1;
                while (gen.cluster[h[s]] != mine[0]) s--;
                int32_t first = gen.succ[h[s] * c.successors];
                succ_want += sr_gen_prob(&gen, u, h, t, first);
                succ_hits += q[t] == first;
                bool seen = false;
                for (int64_t r = 0; r < t; r++) {
                    seen |= h[r] == q[t];
                    bool again = false; /* P(next is an item seen before), each item once */
                    for (int64_t e = 0; e < r; e++) again |= h[e] == h[r];
                    rep_want += again ? 0 : sr_gen_prob(&gen, u, h, t, (int32_t)h[r]);
                }
                rep_hits += seen;
                steps++;
            }
            h[t] = q[t];
        }
        if (u == 1) { /* the probabilities sum to one, before and after the groups have started */
            for (int64_t n = 0; n <= sr_len(&d, u); n++) {
                double total = 0;
                for (int32_t j = 1; j <= c.n_items; j++) total += sr_gen_prob(&gen, u, h, n, j);
                total_err = fmax(total_err, check_err(total, 1)); /* NaN counts as infinite */
            }
        }
    }
    CHECK(bad_start == 0 && bad_group == 0, "users start their %lld distinct groups in turn (%lld, %lld off)",
          (long long)m, (long long)bad_start, (long long)bad_group);
    CHECK(bad_succ == 0, "%lld successors outside their item's group", (long long)bad_succ);
    CHECK(total_err < 1e-12, "probabilities sum to one (off by %g)", total_err);
    CHECK(fabs(succ_hits / steps - succ_want / steps) < 0.01, "successor frequency %g vs %g", succ_hits / steps,
          succ_want / steps);
    CHECK(fabs(rep_hits / steps - rep_want / steps) < 0.01, "repeat frequency %g vs %g", rep_hits / steps,
          rep_want / steps);
    sr_generator_free(&gen);
    sr_data_free(&d);

    /* Bad configs are refused with a reason. */
    sr_gen_preset("interests", &c);
    c.clusters = 2;
    CHECK(sr_generate(&c, &d, &gen, err, sizeof err) == -1 && strstr(err, "clusters"), "%s", err);
    c.clusters = 200;
    CHECK(sr_generate(&c, &d, &gen, err, sizeof err) == -1 && strstr(err, "more items than successors"), "%s", err);
    c.clusters = 20, c.repeat = 0.96;
    CHECK(sr_generate(&c, &d, &gen, err, sizeof err) == -1 && strstr(err, "repeat"), "%s", err);
    CHECK(!sr_gen_preset("no-such-preset", &c), "unknown preset");
}

/* The ceiling of the interests generator on a hand-made truth: groups {1,2,3,4} and
 * {5,6,7,8}, one successor each (1->2->3->4->1, 5->6->7->8->5), uniform popularity 1/8,
 * noise 0.2, repeat 0.2, two interests per user, so
 *   P(j | h) = 0.025 + 0.2 #(j in h) / |h| + 0.3 [j follows the last item of its group in h].
 * Full ranking against the items the user never had (ties count half each way). */
static void interests_ceiling_by_hand(void) {
    int32_t succ[9] = {0, 2, 3, 4, 1, 6, 7, 8, 5}, cluster[9] = {0, 0, 0, 0, 0, 1, 1, 1, 1},
            mine[6] = {0, 0, 0, 1, 1, 0};
    double succ_p[1] = {1}, pop[9] = {0, .125, .125, .125, .125, .125, .125, .125, .125}, mass[2] = {0.5, 0.5};
    sr_generator gen = {.cfg = {.n_users = 2,
                                .n_items = 8,
                                .successors = 1,
                                .noise = 0.2,
                                .repeat = 0.2,
                                .interests = 2,
                                .clusters = 2},
                        .succ = succ,
                        .succ_p = succ_p,
                        .pop = pop,
                        .cluster = cluster,
                        .mass = mass,
                        .interests = mine};
    int64_t h[4] = {1, 5, 2, 7};
    CHECK_CLOSE(sr_gen_prob(&gen, 1, h, 4, 3), 0.325, 1e-15);        /* follows 2, the last of group 0 */
    CHECK_CLOSE(sr_gen_prob(&gen, 1, h, 4, 8), 0.325, 1e-15);        /* follows 7 */
    CHECK_CLOSE(sr_gen_prob(&gen, 1, h, 4, 6), 0.025, 1e-15);        /* follows 5, not the last of its group */
    CHECK_CLOSE(sr_gen_prob(&gen, 1, h, 4, 2), 0.025 + 0.05, 1e-15); /* a repeat */
    CHECK_CLOSE(sr_gen_prob(&gen, 1, h, 1, 5), 0.25, 1e-15);         /* the second group starts: 1/8 / (1/2) */
    CHECK(sr_gen_prob(&gen, 1, h, 1, 2) == 0 && sr_gen_prob(&gen, 1, h, 4, 9) == 0, "out of the group, out of range");
    /* user 1: 1 5 2 | 7 (valid) | 6 (test); user 2: 6 3 7 | 4 | 6 */
    int32_t us[10] = {1, 1, 1, 1, 1, 2, 2, 2, 2, 2}, is[10] = {1, 5, 2, 7, 6, 6, 3, 7, 4, 6};
    sr_data d;
    char err[256];
    CHECK(sr_data_from_pairs(&d, us, is, 10, err, sizeof err) == 0, "%s", err);
    d.n_items = 8; /* item 8 never occurs, but is a candidate */
    sr_eval_opts o = sr_eval_defaults(50, false);
    o.full = true;
    sr_metrics m;
    /* valid: user 1 has 3 (0.325) ahead of 7 and ties with 4 and 8 (0.025): ranks 1..3;
     * user 2's 4 (0.325) ties with 8: ranks 0..1. */
    CHECK(sr_evaluate(&d, &o, sr_oracle_scorer, &gen, &m, err, sizeof err) == 0, "%s", err);
    double want = ((1 / log2(3.0) + 1 / log2(4.0) + 1 / log2(5.0)) / 3 + (1 + 1 / log2(3.0)) / 2) / 2;
    CHECK(m.users == 2 && m.hr == 1, "valid HR@10 %g over %lld users", m.hr, (long long)m.users);
    CHECK_CLOSE(m.ndcg, want, 1e-12);
    o.k = 1;
    CHECK(sr_evaluate(&d, &o, sr_oracle_scorer, &gen, &m, err, sizeof err) == 0, "%s", err);
    CHECK_CLOSE(m.hr, 0.25, 1e-12); /* user 2 first half the time */
    /* test: user 1's 6 (0.025) behind 3 and 8, tied with 4: ranks 2..3; user 2's repeat 6
     * (0.075) behind 1 and 8 (0.325), ahead of 2 and 5: rank 2. */
    o = sr_eval_defaults(50, true);
    o.full = true;
    CHECK(sr_evaluate(&d, &o, sr_oracle_scorer, &gen, &m, err, sizeof err) == 0, "%s", err);
    CHECK_CLOSE(m.ndcg, ((1 / log2(4.0) + 1 / log2(5.0)) / 2 + 1 / log2(4.0)) / 2, 1e-12);
    o.k = 3;
    CHECK(sr_evaluate(&d, &o, sr_oracle_scorer, &gen, &m, err, sizeof err) == 0, "%s", err);
    CHECK_CLOSE(m.hr, (0.5 + 1) / 2, 1e-12);
    sr_data_free(&d);
}

/* The chain baseline by kind of data: on the interests generator a first-order chain
 * (the lag-2 weight 0 even when order2 is set, popularity only for ties), on the successor
 * chain the generator's formula, on real data the Markov chain. Hand-made training parts:
 * 1->2 twice, 2->3, 2->4, 2->7 twice, 5->2, 6->2. */
static void chain_on_interests_is_first_order(void) {
    int32_t us[] = {1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4},
            is[] = {1, 2, 3, 6, 6, 1, 2, 4, 5, 5, 5, 2, 7, 1, 1, 6, 2, 7, 1, 1};
    sr_data d;
    char err[256];
    CHECK(sr_data_from_pairs(&d, us, is, 20, err, sizeof err) == 0, "%s", err);
    sr_gen_config g;
    sr_gen_preset("interests", &g);
    g.order2 = 0.25;
    sr_chain c;
    CHECK(sr_chain_init_for(&c, &d, &g) == 0, "init");
    CHECK(c.w_lag2 == 0 && c.w_pop == 1e-3 && strstr(c.name, "first-order") &&
              !strcmp(c.short_name, "counted first-order chain"),
          "%s: w_pop %g, w_lag2 %g", c.name, c.w_pop, c.w_lag2);
    /* histories ending in 2 after 1, after 2 and alone: the same scores, n(2 then j) / 4 */
    int64_t seqs[9] = {0, 1, 2, 0, 2, 2, 0, 0, 2};
    int32_t cands[12] = {3, 4, 2, 7, 3, 4, 2, 7, 3, 4, 2, 7};
    float s[12];
    CHECK(sr_chain_scorer(&c, 3, (int64_t[]){1, 2, 3}, seqs, 3, cands, 4, s) == 0, "score");
    double pop[8] = {0, 2 / 12.0, 4 / 12.0, 1 / 12.0, 1 / 12.0, 1 / 12.0, 1 / 12.0, 2 / 12.0}; /* 12 training items */
    for (int r = 0; r < 3; r++) {
        CHECK_CLOSE(s[r * 4 + 0], 1e-3 * pop[3] + (1 - 1e-3) * 0.25, 1e-6);
        CHECK_CLOSE(s[r * 4 + 1], 1e-3 * pop[4] + (1 - 1e-3) * 0.25, 1e-6);
        CHECK_CLOSE(s[r * 4 + 2], 1e-3 * pop[2], 1e-6);
        CHECK_CLOSE(s[r * 4 + 3], 1e-3 * pop[7] + (1 - 1e-3) * 0.5, 1e-6);
        for (int j = 0; j < 4; j++) CHECK(s[r * 4 + j] == s[j], "row %d differs from row 0 at %d", r, j);
    }
    sr_chain_free(&c);
    g.interests = 0; /* the successor chain: its formula */
    CHECK(sr_chain_init_for(&c, &d, &g) == 0 && c.w_pop == g.noise && c.w_lag2 == 0.25 &&
              !strcmp(c.short_name, "counted chain"),
          "successor chain: %g %g", c.w_pop, c.w_lag2);
    sr_chain_free(&c);
    CHECK(sr_chain_init_for(&c, &d, NULL) == 0 && c.w_lag2 == 0 && !strcmp(c.short_name, "Markov chain"), "real data");
    sr_chain_free(&c);
    sr_data_free(&d);
}

static void generator_amazon_games_shape(void) {
    sr_gen_config c = sr_gen_amazon_games();
    sr_data d;
    sr_generator gen;
    char err[256];
    CHECK(sr_generate(&c, &d, &gen, err, sizeof err) == 0, "%s", err);
    sr_stats s = sr_data_stats(&d);
    CHECK(d.n_users == 31000 && d.n_items == 24000 && fabs(s.mean_len - 7.3) < 0.1, "users %lld items %lld mean %g",
          (long long)d.n_users, (long long)d.n_items, s.mean_len);
    sr_generator_free(&gen);
    sr_data_free(&d);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/heed_test_sasrec_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    RUN(loader_reads_and_splits);
    RUN(loader_errors);
    RUN(loader_bounds);
    RUN(unseen_items_and_negatives);
    RUN(metrics_on_hand_made_ranks);
    RUN(protocol_with_known_ranks);
    RUN(counted_chain);
    RUN(generator_structure_and_ceiling);
    RUN(generator_amazon_games_shape);
    RUN(interests_generator_draws_its_formula);
    RUN(interests_ceiling_by_hand);
    RUN(chain_on_interests_is_first_order);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary();
}
