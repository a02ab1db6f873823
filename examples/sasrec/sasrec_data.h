/* SASRec example: datasets (load, save, split), the synthetic generator, batch making
 * and the evaluation protocol. Not part of the library: the model itself is in
 * models/sasrec.c and declared in heed.h.
 *
 * Data format (the one of the paper's code): one "user item" pair per line, ids from 1,
 * each user's lines in time order (users may be interleaved). Leave-one-out split: a
 * user with n >= 3 items trains on the first n-2, validates on item n-1 and is tested on
 * item n; a user with fewer items only trains. */
#ifndef SASREC_DATA_H
#define SASREC_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <heed/core.h>

/* ---------------------------------------------------------------- dataset */

typedef struct {
    int64_t n_users, n_items; /* ids 1..n_users and 1..n_items; 0 is never an id */
    int64_t n_interactions;
    int64_t *start;  /* [n_users + 2]: user u's items are items[start[u] .. start[u+1]) */
    int32_t *items;  /* [n_interactions], each user's items in time order */
    int32_t *sorted; /* same layout: each user's training items sorted (for "has seen") */
} sr_data;

void sr_data_free(sr_data *d);

/* Bounds on what a file may ask for: a line is at most SR_LINE_MAX bytes, and the largest
 * id at most SR_IDS_PER_LINE x lines + SR_IDS_SLACK (every id up to the largest gets
 * memory, so ids far beyond the number of lines are refused before any is allocated). */
#define SR_LINE_MAX 4096
#define SR_IDS_PER_LINE 16
#define SR_IDS_SLACK 65536

/* Reads the format above. Returns 0, or -1 with a message in err (file, line number and
 * the line's content for malformed lines, too long lines and ids beyond the bound above).
 * Never aborts; d is untouched on failure. */
int sr_load(const char *path, sr_data *d, char *err, size_t errlen);
/* The same from an open stream; name is the file's name in messages. */
int sr_read(FILE *f, const char *name, sr_data *d, char *err, size_t errlen);
/* Writes the format above (users in id order). 0 or -1 with a message. */
int sr_save(const char *path, const sr_data *d, char *err, size_t errlen);
/* Builds d from a user id array and an item id array of n pairs in file order (the
 * loader's back end; also used by the generator and tests). 0 or -1 with a message. */
int sr_data_from_pairs(sr_data *d, const int32_t *users, const int32_t *items, int64_t n, char *err, size_t errlen);

static inline int64_t sr_len(const sr_data *d, int64_t u) { return d->start[u + 1] - d->start[u]; }
static inline int64_t sr_train_len(const sr_data *d, int64_t u) {
    int64_t n = sr_len(d, u);
    return n >= 3 ? n - 2 : n;
}
static inline const int32_t *sr_seq(const sr_data *d, int64_t u) { return d->items + d->start[u]; }
static inline int32_t sr_valid_item(const sr_data *d, int64_t u) {
    int64_t n = sr_len(d, u);
    return n >= 3 ? d->items[d->start[u] + n - 2] : 0;
}
static inline int32_t sr_test_item(const sr_data *d, int64_t u) {
    int64_t n = sr_len(d, u);
    return n >= 3 ? d->items[d->start[u] + n - 1] : 0;
}
/* Whether user u interacted with item in the training part (binary search). */
bool sr_seen_in_train(const sr_data *d, int64_t u, int32_t item);
/* Training part, validation or test item: every interaction of user u. */
bool sr_seen(const sr_data *d, int64_t u, int32_t item);
/* Distinct items user u has not trained on, and has not interacted with at all. */
int64_t sr_unseen_in_train(const sr_data *d, int64_t u);
int64_t sr_unseen(const sr_data *d, int64_t u);
/* The item of index k (0-based, k < sr_unseen / sr_unseen_in_train) among those, in id
 * order: the exact draw when rejection sampling keeps hitting seen items. */
int32_t sr_nth_unseen(const sr_data *d, int64_t u, bool train_only, int64_t k);

typedef struct {
    int64_t users_with_train; /* users with at least 2 training items (trainable) */
    int64_t users_with_test;  /* users with a validation and test item */
    double mean_len;          /* items per user with any */
    int64_t max_len;
    int64_t active_users; /* users with at least one item */
    int64_t active_items; /* distinct items that occur */
} sr_stats;
sr_stats sr_data_stats(const sr_data *d);

/* ---------------------------------------------------------------- batches */

/* One training row as the reference sampler makes it, left padded with 0 to maxlen:
 * seq = the training items but the last, pos = the item after each, neg = a random item
 * the user has not trained on, drawn from r (0 where pos is 0). */
void sr_train_row(const sr_data *d, int64_t u, int64_t maxlen, heed_rng *r, int64_t *seq, int64_t *pos, int64_t *neg);
/* One evaluation input: the last maxlen items of the training part (plus the validation
 * item when test is true), left padded with 0. */
void sr_eval_row(const sr_data *d, int64_t u, int64_t maxlen, bool test, int64_t *seq);

/* ---------------------------------------------------------------- generator */

/* Synthetic data with planted sequential structure and a known best ranking. Item
 * popularity is a Zipf law over a random order of the items; every item has `successors`
 * successor items with probabilities proportional to 1/(k+1). Lengths are min_len +
 * geometric, mean mean_len, capped at max_len. Two generators:
 *
 * interests = 0, the successor chain: a user's first item is a popularity draw; every next
 *   item is, with probability `noise`, a popularity draw, otherwise a successor of the last
 *   item (probability 1 - order2) or of the item before it (order2). Successors are any
 *   items.
 * interests = m >= 1, interleaved interests: the items fall into `clusters` groups (sizes
 *   within one of each other) and successors stay in their item's group. A user has m distinct groups (uniformly
 *   drawn); the first m items are a popularity draw within each of them, in turn. Every
 *   next item is, with probability `noise`, a popularity draw; with probability `repeat`,
 *   an earlier item of the user (uniform over the history); otherwise one of the m
 *   interests is picked uniformly and the item is a successor of the most recent item of
 *   that group. order2 is not used.
 * Either way P(next | history) is known exactly (sr_gen_prob), and ranking by it is the
 * best any model can do: the ceiling. */
typedef struct {
    int64_t n_users, n_items;
    double mean_len;
    int64_t min_len, max_len;
    int successors;
    double noise, order2, zipf;
    uint64_t seed;
    int interests;    /* per user; 0: the successor chain */
    int64_t clusters; /* item groups (interests >= 1) */
    double repeat;    /* share of repeats of an earlier item (interests >= 1) */
} sr_gen_config;

/* Shaped like Amazon Games in the paper (31k users, 24k items, 7.3 items per user). */
sr_gen_config sr_gen_amazon_games(void);
/* The presets by name: "small" (the successor chain on 6,000 users and 500 items),
 * "amazon-games" and "interests" (the demo's: 10,000 users, 3 interleaved interests
 * among 20 groups of 25 items, repeats). false for an unknown name. */
bool sr_gen_preset(const char *name, sr_gen_config *out);

typedef struct {
    sr_gen_config cfg;
    int32_t *succ;      /* [n_items + 1][successors] */
    double *succ_p;     /* [successors] */
    double *pop;        /* [n_items + 1], pop[0] = 0 */
    int32_t *cluster;   /* [n_items + 1]: each item's group (interests >= 1) */
    double *mass;       /* [clusters]: the popularity of each group */
    int32_t *interests; /* [n_users + 1][interests]: each user's groups, in the order started */
} sr_generator;

void sr_generator_free(sr_generator *gen);
/* Makes the dataset and keeps the truth in gen. 0 or -1 with a message. */
int sr_generate(const sr_gen_config *cfg, sr_data *d, sr_generator *gen, char *err, size_t errlen);
/* P(next item = item | user's history hist[0..n)), n >= 0. The successor chain reads the
 * last two items only; the interests generator reads the user's groups (for n < m: the
 * group started next), the counts of items in hist for repeats, and for each group its
 * most recent item in hist (a group without one, possible only when hist is a window
 * shorter than the history, falls back to the group's popularity). */
double sr_gen_prob(const sr_generator *gen, int64_t user, const int64_t *hist, int64_t n, int32_t item);

/* ---------------------------------------------------------------- evaluation */

/* Scores candidates for a batch of users. seqs is [n][maxlen] (sr_eval_row). With
 * cands non-NULL it is [n][n_cands] and scores [n][n_cands]; with cands NULL (full
 * ranking) scores is [n][n_items + 1], indexed by item id. Higher is better. Returns 0,
 * or -1 to stop the evaluation (an error). */
typedef int (*sr_scorer)(void *user, int64_t n, const int64_t *users, const int64_t *seqs, int64_t maxlen,
                         const int32_t *cands, int64_t n_cands, float *scores);

typedef struct {
    int64_t maxlen;
    bool test;         /* test item (history: train + valid) or validation item */
    int negatives;     /* sampled negatives per user (100 in the paper) */
    int64_t max_users; /* evaluate at most this many users, sampled (10000 in the paper) */
    int k;             /* cut-off for HR@k and NDCG@k (10) */
    bool full;         /* rank against every item the user has not interacted with */
    int64_t batch;     /* users per scorer call */
    uint64_t seed;     /* users and negatives: the same seed gives the same candidates */
} sr_eval_opts;

sr_eval_opts sr_eval_defaults(int64_t maxlen, bool test);

typedef struct {
    double hr, ndcg; /* mean HR@k and NDCG@k */
    int64_t users;   /* users evaluated */
} sr_metrics;

/* Expected HR@k and NDCG@k of an item with `greater` candidates scored above it and
 * `equal` scored the same (ties broken uniformly at random): rank r = greater + U,
 * U uniform on 0..equal; HR = P(r < k), NDCG = E[1/log2(r + 2); r < k]. */
void sr_rank_metrics(int64_t greater, int64_t equal, int k, double *hr, double *ndcg);

/* Runs the protocol with scorer f. 0, or -1 with a message in err. */
int sr_evaluate(const sr_data *d, const sr_eval_opts *o, sr_scorer f, void *user, sr_metrics *out, char *err,
                size_t errlen);

/* Popularity baseline: the score of an item is its count in the training parts. */
typedef struct {
    const sr_data *d;
    float *count; /* [n_items + 1] */
} sr_popularity;
int sr_popularity_init(sr_popularity *p, const sr_data *d);
void sr_popularity_free(sr_popularity *p);
int sr_popularity_scorer(void *user, int64_t n, const int64_t *users, const int64_t *seqs, int64_t maxlen,
                         const int32_t *cands, int64_t n_cands, float *scores);
/* Counted chain: a chain whose parts are counted in the training parts,
 *   score(j | ..., a', a) = w_pop pop^(j) + (1 - w_pop) [(1 - w_lag2) T^(a, j) + w_lag2 T^(a', j)]
 * pop^(j) = n(j) / n, T^(a, j) = n(a then j) / n(a then anything), over consecutive training
 * items. With the successor chain's noise and order2 as weights it scores as the ceiling
 * would if the generator's transitions were only known from the data the model trains on;
 * with w_lag2 = 0 it is a first-order Markov chain with a popularity fallback. */
typedef struct {
    const sr_data *d;
    double w_pop, w_lag2;
    int64_t *row;                  /* [n_items + 2]: the transitions out of a at next[row[a] .. row[a + 1]) */
    int32_t *next;                 /* successors seen, ascending within a row */
    double *share;                 /* T^(a, next) */
    double *pop;                   /* [n_items + 1] */
    const char *name, *short_name; /* what it is, for reports (set by sr_chain_init_for) */
} sr_chain;
int sr_chain_init(sr_chain *c, const sr_data *d, double w_pop, double w_lag2);
/* The chain baseline of a dataset: gen is the generator's configuration, NULL for real
 * data. On the successor chain (interests 0) the generator's formula with its noise and
 * order2 as weights; otherwise a first-order Markov chain with popularity only breaking
 * ties (w_pop 1e-3, w_lag2 0): on the interests generator the formula would know the
 * hidden structure (the groups, the repeats), which is what the model has to find. */
int sr_chain_init_for(sr_chain *c, const sr_data *d, const sr_gen_config *gen);
void sr_chain_free(sr_chain *c);
int sr_chain_scorer(void *user, int64_t n, const int64_t *users, const int64_t *seqs, int64_t maxlen,
                    const int32_t *cands, int64_t n_cands, float *scores);
/* The ceiling: scores are the generator's true P(next | history); user = sr_generator. */
int sr_oracle_scorer(void *user, int64_t n, const int64_t *users, const int64_t *seqs, int64_t maxlen,
                     const int32_t *cands, int64_t n_cands, float *scores);

#endif
