/* libFuzzer target for the 'user item' loader (sr_read, examples/sasrec/data.c): any bytes
 * give a dataset or a clean error with a message, never a crash, a leak, undefined
 * behaviour or an allocation the input cannot justify (the ids are bounded by the number
 * of lines). A loaded dataset is checked for consistency, then every user's training and
 * evaluation rows are made and the evaluation protocol runs on it with the popularity
 * scorer: they index arrays by the loaded ids. Built by tests/fuzz/run.sh (clang,
 * libFuzzer, ASan, UBSan); examples/meson.build replays the seeds in the test suite. */
#include "fuzz_seeds.h"
#include "sasrec_data.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    FUZZ_SEED("mixed", "1 10\n2 20\r\n1 11\n\n1\t12 \n2 21\n1 13\n3 5\n2 22\n");
    FUZZ_SEED("one-user-all-items", "1 1\n1 2\n1 3\n1 1\n1 2\n");
    FUZZ_SEED("few-items", "1 1\n1 2\n1 1\n1 2\n2 2\n2 1\n2 2\n");
    FUZZ_SEED("huge-id", "2147483647 3\n");
    FUZZ_SEED("sparse-ids", "1 65552\n65552 1\n");
    FUZZ_SEED("bad-line", "1 2\n3 x9\n");
    FUZZ_SEED("nul", "1 2\n2 3\0 4\n");
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    FILE *f = fmemopen((void *)data, size, "rb");
    if (!f) return 0;
    char err[512] = "";
    sr_data d = {0};
    int rc = sr_read(f, "fuzz", &d, err, sizeof err);
    fclose(f);
    if (rc != 0) {
        if (!err[0] || d.items) abort(); /* an error says why and fills nothing */
        return 0;
    }
    /* the layout: offsets ascending to n_interactions, ids within 1..n */
    if (d.n_users < 1 || d.n_items < 1 || d.start[1] != 0 || d.start[d.n_users + 1] != d.n_interactions) abort();
    if (d.n_items > SR_IDS_PER_LINE * d.n_interactions + SR_IDS_SLACK) abort();
    for (int64_t u = 1; u <= d.n_users; u++)
        if (d.start[u + 1] < d.start[u]) abort();
    for (int64_t i = 0; i < d.n_interactions; i++)
        if (d.items[i] < 1 || d.items[i] > d.n_items) abort();
    sr_data_stats(&d);
    enum { N = 6 };
    int64_t seq[N], pos[N], neg[N];
    heed_rng r = heed_rng_make(1, 2);
    for (int64_t u = 1; u <= d.n_users; u++) {
        if (sr_len(&d, u) == 0) continue;
        sr_train_row(&d, u, N, &r, seq, pos, neg);
        for (int i = 0; i < N; i++)
            if (neg[i] < 0 || neg[i] > d.n_items || (pos[i] && !neg[i])) abort();
        sr_eval_row(&d, u, N, true, seq);
        if (sr_unseen(&d, u) < 0 || sr_unseen(&d, u) > sr_unseen_in_train(&d, u)) abort();
    }
    sr_popularity pop;
    if (sr_popularity_init(&pop, &d) == 0) {
        sr_eval_opts o = sr_eval_defaults(N, true);
        o.negatives = 3;
        o.max_users = 20;
        sr_metrics m;
        if (sr_evaluate(&d, &o, sr_popularity_scorer, &pop, &m, err, sizeof err) == 0 &&
            (m.users > 20 || !(m.hr >= 0 && m.hr <= 1)))
            abort();
        sr_popularity_free(&pop);
    }
    sr_data_free(&d);
    return 0;
}
