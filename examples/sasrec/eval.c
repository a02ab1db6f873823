/* The evaluation protocol of the SASRec paper: for each (sampled) user, the held-out item
 * is ranked among `negatives` random items the user never interacted with; HR@k is the
 * share of users whose item lands in the top k, NDCG@k adds 1/log2(rank + 2) for them.
 * Full ranking (every item the user has not interacted with) is an option. The users and
 * the negatives depend only on the seed, so the model, the popularity baseline and the
 * generator's ceiling are scored on the very same candidates. */
#include "sasrec_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sr_eval_opts sr_eval_defaults(int64_t maxlen, bool test) {
    return (sr_eval_opts){.maxlen = maxlen,
                          .test = test,
                          .negatives = 100,
                          .max_users = 10000,
                          .k = 10,
                          .full = false,
                          .batch = 256,
                          .seed = 12345};
}

void sr_rank_metrics(int64_t greater, int64_t equal, int k, double *hr, double *ndcg) {
    double h = 0, n = 0;
    for (int64_t u = 0; u <= equal && greater + u < k; u++) {
        h += 1;
        n += 1 / log2((double)(greater + u) + 2);
    }
    *hr = h / (double)(equal + 1);
    *ndcg = n / (double)(equal + 1);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Users with a validation and a test item; a random max_users of them when there are more
 * (partial Fisher-Yates), in increasing id order. */
static int64_t *pick_users(const sr_data *d, const sr_eval_opts *o, int64_t *count) {
    int64_t n = 0;
    for (int64_t u = 1; u <= d->n_users; u++) n += sr_len(d, u) >= 3;
    int64_t *all = malloc((size_t)(n ? n : 1) * sizeof *all);
    if (!all) return NULL;
    n = 0;
    for (int64_t u = 1; u <= d->n_users; u++)
        if (sr_len(d, u) >= 3) all[n++] = u;
    if (o->max_users > 0 && n > o->max_users) {
        heed_rng r = heed_rng_make(o->seed, 0xe7a1);
        for (int64_t i = 0; i < o->max_users; i++) {
            int64_t j = i + (int64_t)heed_rng_below(&r, (uint64_t)(n - i));
            int64_t t = all[i];
            all[i] = all[j], all[j] = t;
        }
        n = o->max_users;
        /* back to id order (ids are distinct, so any sort gives the same order; an
         * insertion sort of 10,000 users was a third of the evaluation) */
        qsort(all, (size_t)n, sizeof *all, cmp_i64);
    }
    *count = n;
    return all;
}

int sr_evaluate(const sr_data *d, const sr_eval_opts *o, sr_scorer f, void *user, sr_metrics *out, char *err,
                size_t errlen) {
    *out = (sr_metrics){0};
    if (o->maxlen < 1 || o->k < 1 || o->batch < 1 || (!o->full && o->negatives < 1)) {
        snprintf(err, errlen, "evaluate: need maxlen, k, batch and negatives >= 1");
        return -1;
    }
    int64_t n_users = 0;
    int64_t *users = pick_users(d, o, &n_users);
    int64_t B = o->batch, C = o->full ? d->n_items + 1 : 1 + (int64_t)o->negatives;
    int64_t *seqs = malloc((size_t)(B * o->maxlen) * sizeof *seqs);
    int32_t *cands = o->full ? NULL : malloc((size_t)(B * C) * sizeof *cands);
    float *scores = malloc((size_t)(B * C) * sizeof *scores);
    int rc = -1;
    if (!users || !seqs || (!o->full && !cands) || !scores) {
        snprintf(err, errlen, "evaluate: out of memory");
        goto out;
    }
    /* Negatives are drawn among the items a user never interacted with: refuse a user with
     * too few of them rather than draw seen items (which would rank the held-out item low). */
    for (int64_t i = 0; !o->full && i < n_users; i++) {
        int64_t u = users[i], unseen = sr_unseen(d, u);
        if (unseen < o->negatives) {
            snprintf(
                err, errlen,
                "evaluate: user %lld interacted with %lld of the %lld items, leaving %lld unseen: fewer than the %d "
                "negatives to sample (lower --negatives, or rank all items with --full-rank)",
                (long long)u, (long long)(d->n_items - unseen), (long long)d->n_items, (long long)unseen, o->negatives);
            goto out;
        }
    }
    double hr_sum = 0, ndcg_sum = 0;
    for (int64_t b0 = 0; b0 < n_users; b0 += B) {
        int64_t nb = n_users - b0 < B ? n_users - b0 : B;
        for (int64_t i = 0; i < nb; i++) {
            int64_t u = users[b0 + i];
            sr_eval_row(d, u, o->maxlen, o->test, seqs + i * o->maxlen);
            if (o->full) continue;
            int32_t *c = cands + i * C;
            c[0] = o->test ? sr_test_item(d, u) : sr_valid_item(d, u);
            heed_rng r = heed_rng_make(o->seed, (uint64_t)u);
            for (int64_t j = 1; j < C; j++) {
                int32_t it;
                int tries = 0;
                do it = (int32_t)(1 + heed_rng_below(&r, (uint64_t)d->n_items));
                while (sr_seen(d, u, it) && ++tries < 10000);
                if (tries == 10000) /* nearly every item seen: an exact draw among the rest */
                    it = sr_nth_unseen(d, u, false, (int64_t)heed_rng_below(&r, (uint64_t)sr_unseen(d, u)));
                c[j] = it;
            }
        }
        if (f(user, nb, users + b0, seqs, o->maxlen, cands, o->full ? 0 : C, scores) != 0) {
            snprintf(err, errlen, "evaluate: the scorer failed");
            goto out;
        }
        for (int64_t i = 0; i < nb; i++) {
            int64_t u = users[b0 + i], greater = 0, equal = 0;
            const float *s = scores + i * C;
            if (o->full) {
                int32_t target = o->test ? sr_test_item(d, u) : sr_valid_item(d, u);
                float t = s[target];
                for (int64_t j = 1; j <= d->n_items; j++) {
                    if (j == target || (s[j] < t) || sr_seen(d, u, (int32_t)j)) continue;
                    greater += s[j] > t || isnan(t);
                    equal += s[j] == t;
                }
            } else {
                float t = s[0];
                for (int64_t j = 1; j < C; j++) {
                    greater += s[j] > t || isnan(t);
                    equal += s[j] == t;
                }
            }
            double hr, ndcg;
            sr_rank_metrics(greater, equal, o->k, &hr, &ndcg);
            hr_sum += hr;
            ndcg_sum += ndcg;
        }
    }
    out->users = n_users;
    out->hr = n_users ? hr_sum / (double)n_users : 0;
    out->ndcg = n_users ? ndcg_sum / (double)n_users : 0;
    rc = 0;
out:
    free(users);
    free(seqs);
    free(cands);
    free(scores);
    return rc;
}

/* ---------------------------------------------------------------- baselines */

int sr_popularity_init(sr_popularity *p, const sr_data *d) {
    p->d = d;
    p->count = calloc((size_t)d->n_items + 1, sizeof *p->count);
    if (!p->count) return -1;
    for (int64_t u = 1; u <= d->n_users; u++) {
        const int32_t *s = sr_seq(d, u);
        for (int64_t i = 0; i < sr_train_len(d, u); i++) p->count[s[i]] += 1;
    }
    return 0;
}

void sr_popularity_free(sr_popularity *p) {
    free(p->count);
    p->count = NULL;
}

int sr_popularity_scorer(void *user, int64_t n, const int64_t *users, const int64_t *seqs, int64_t maxlen,
                         const int32_t *cands, int64_t n_cands, float *scores) {
    const sr_popularity *p = user;
    int64_t I = p->d->n_items;
    for (int64_t i = 0; i < n; i++) {
        if (cands)
            for (int64_t j = 0; j < n_cands; j++) scores[i * n_cands + j] = p->count[cands[i * n_cands + j]];
        else memcpy(scores + i * (I + 1), p->count, (size_t)(I + 1) * sizeof *scores);
    }
    return 0;
}

int sr_chain_init(sr_chain *c, const sr_data *d, double w_pop, double w_lag2) {
    int64_t I = d->n_items, n = 0, total = 0;
    *c = (sr_chain){.d = d, .w_pop = w_pop, .w_lag2 = w_lag2};
    for (int64_t u = 1; u <= d->n_users; u++) n += sr_train_len(d, u) > 1 ? sr_train_len(d, u) - 1 : 0;
    int64_t *pairs = malloc((size_t)(n ? n : 1) * sizeof *pairs); /* a (I + 1) + j, sorted */
    c->row = calloc((size_t)I + 2, sizeof *c->row);
    c->next = malloc((size_t)(n ? n : 1) * sizeof *c->next);
    c->share = malloc((size_t)(n ? n : 1) * sizeof *c->share);
    c->pop = calloc((size_t)I + 1, sizeof *c->pop);
    if (!pairs || !c->row || !c->next || !c->share || !c->pop) {
        free(pairs);
        sr_chain_free(c);
        return -1;
    }
    int64_t at = 0;
    for (int64_t u = 1; u <= d->n_users; u++) {
        const int32_t *s = sr_seq(d, u);
        for (int64_t i = 0; i < sr_train_len(d, u); i++) {
            c->pop[s[i]] += 1, total++;
            if (i) pairs[at++] = (int64_t)s[i - 1] * (I + 1) + s[i];
        }
    }
    for (int64_t j = 0; j <= I; j++) c->pop[j] /= total ? (double)total : 1;
    qsort(pairs, (size_t)n, sizeof *pairs, cmp_i64);
    /* Runs of equal pairs become (successor, count); rows are counted, then turned into
     * offsets and the counts into shares of the row. */
    int64_t m = 0;
    for (int64_t i = 0; i < n; m++) {
        int64_t k = i;
        while (k < n && pairs[k] == pairs[i]) k++;
        c->next[m] = (int32_t)(pairs[i] % (I + 1));
        c->share[m] = (double)(k - i);
        c->row[pairs[i] / (I + 1) + 1]++;
        i = k;
    }
    free(pairs);
    for (int64_t a = 0; a <= I; a++) c->row[a + 1] += c->row[a];
    for (int64_t a = 0; a <= I; a++) {
        double out = 0;
        for (int64_t i = c->row[a]; i < c->row[a + 1]; i++) out += c->share[i];
        for (int64_t i = c->row[a]; i < c->row[a + 1]; i++) c->share[i] /= out;
    }
    return 0;
}

int sr_chain_init_for(sr_chain *c, const sr_data *d, const sr_gen_config *gen) {
    bool formula = gen && !gen->interests;
    if (sr_chain_init(c, d, formula ? gen->noise : 1e-3, formula ? gen->order2 : 0)) return -1;
    c->name = formula ? "counted chain (the generator's formula, transitions counted in the training parts)"
              : gen   ? "counted first-order chain (transitions from the last item counted in the training parts, "
                        "popularity for ties)"
                      : "Markov chain (counted transitions from the last item, popularity for ties)";
    c->short_name = formula ? "counted chain" : gen ? "counted first-order chain" : "Markov chain";
    return 0;
}

void sr_chain_free(sr_chain *c) {
    free(c->row);
    free(c->next);
    free(c->share);
    free(c->pop);
    *c = (sr_chain){0};
}

/* T^(a, j): binary search in a's row. */
static double chain_share(const sr_chain *c, int64_t a, int32_t j) {
    int64_t lo = c->row[a], hi = c->row[a + 1];
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (c->next[mid] < j) lo = mid + 1;
        else hi = mid;
    }
    return lo < c->row[a + 1] && c->next[lo] == j ? c->share[lo] : 0;
}

int sr_chain_scorer(void *user, int64_t n, const int64_t *users, const int64_t *seqs, int64_t maxlen,
                    const int32_t *cands, int64_t n_cands, float *scores) {
    const sr_chain *c = user;
    int64_t I = c->d->n_items, width = cands ? n_cands : I + 1;
    for (int64_t i = 0; i < n; i++) {
        const int64_t *row = seqs + i * maxlen;
        int64_t a = maxlen >= 1 ? row[maxlen - 1] : 0, a2 = maxlen >= 2 ? row[maxlen - 2] : 0;
        if (!a2) a2 = a; /* one item of history: its share goes to the last item */
        for (int64_t j = 0; j < width; j++) {
            int32_t it = cands ? cands[i * n_cands + j] : (int32_t)j;
            double t = a ? (1 - c->w_lag2) * chain_share(c, a, it) + c->w_lag2 * chain_share(c, a2, it) : 0;
            scores[i * width + j] = (float)(it ? c->w_pop * c->pop[it] + (1 - c->w_pop) * t : 0);
        }
    }
    return 0;
}

int sr_oracle_scorer(void *user, int64_t n, const int64_t *users, const int64_t *seqs, int64_t maxlen,
                     const int32_t *cands, int64_t n_cands, float *scores) {
    const sr_generator *gen = user;
    int64_t I = gen->cfg.n_items, width = cands ? n_cands : I + 1;
    for (int64_t i = 0; i < n; i++) {
        const int64_t *row = seqs + i * maxlen;
        int64_t first = 0; /* the history is the non-zero suffix of the left-padded row */
        while (first < maxlen && row[first] == 0) first++;
        const int64_t *h = row + first;
        int64_t hn = maxlen - first;
        for (int64_t j = 0; j < width; j++) {
            int32_t it = cands ? cands[i * n_cands + j] : (int32_t)j;
            scores[i * width + j] = (float)sr_gen_prob(gen, users[i], h, hn, it);
        }
    }
    return 0;
}
