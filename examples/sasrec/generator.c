/* Synthetic sequential data with a known best ranking (see sasrec_data.h).
 *
 * The successor chain (interests = 0):
 *   P(x_1 = j)              = pop(j)
 *   P(x_{t+1} = j | x_<=t)  = noise pop(j) + (1 - noise) [(1 - order2) T(x_t, j) + order2 T(x_{t-1}, j)]
 * (with one item of history the order-2 share goes to the last item).
 *
 * Interleaved interests (interests = m): user u has groups G_u = (g_1 .. g_m), drawn
 * uniformly without replacement from the `clusters` groups; pop_g(j) = pop(j) / pop(g) is
 * the popularity within j's group g(j), and last_g(x_<=t) the most recent item of group g.
 *   P(x_{i+1} = j)          = pop_{g_{i+1}}(j) [g(j) = g_{i+1}]                     for i < m
 *   P(x_{t+1} = j | x_<=t)  = noise pop(j) + repeat #{s <= t : x_s = j} / t
 *                             + (1 - noise - repeat) / m  sum_{g in G_u} T(last_g(x_<=t), j)   for t >= m
 * where successors stay in their item's group, so only g = g(j) contributes to the sum.
 *
 * Both: T(a, j) = sum_k p_k [succ(a, k) = j], p_k proportional to 1/(k+1); pop(j)
 * proportional to 1/rank(j)^zipf, ranks a random permutation. */
#include "sasrec_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sr_gen_config sr_gen_amazon_games(void) {
    return (sr_gen_config){.n_users = 31000,
                           .n_items = 24000,
                           .mean_len = 7.3,
                           .min_len = 5,
                           .max_len = 500,
                           .successors = 3,
                           .noise = 0.2,
                           .order2 = 0.25,
                           .zipf = 1.0,
                           .seed = 1};
}

bool sr_gen_preset(const char *name, sr_gen_config *out) {
    if (!name) return false;
    if (!strcmp(name, "small"))
        *out = (sr_gen_config){.n_users = 6000,
                               .n_items = 500,
                               .mean_len = 12,
                               .min_len = 5,
                               .max_len = 200,
                               .successors = 3,
                               .noise = 0.2,
                               .order2 = 0.25,
                               .zipf = 1.0,
                               .seed = 1};
    else if (!strcmp(name, "amazon-games")) *out = sr_gen_amazon_games();
    else if (!strcmp(name, "interests"))
        *out = (sr_gen_config){.n_users = 10000,
                               .n_items = 500,
                               .mean_len = 15,
                               .min_len = 5,
                               .max_len = 50,
                               .successors = 3,
                               .noise = 0.05,
                               .zipf = 1.0,
                               .seed = 1,
                               .interests = 3,
                               .clusters = 20,
                               .repeat = 0.2};
    else return false;
    return true;
}

void sr_generator_free(sr_generator *gen) {
    if (!gen) return;
    free(gen->succ);
    free(gen->succ_p);
    free(gen->pop);
    free(gen->cluster);
    free(gen->mass);
    free(gen->interests);
    *gen = (sr_generator){0};
}

/* T(a, item) */
static double successor_share(const sr_generator *gen, int64_t a, int32_t item) {
    int K = gen->cfg.successors;
    double t = 0;
    for (int k = 0; k < K; k++) t += gen->succ[a * K + k] == item ? gen->succ_p[k] : 0;
    return t;
}

static double chain_prob(const sr_generator *gen, const int64_t *hist, int64_t n, int32_t item) {
    const sr_gen_config *c = &gen->cfg;
    double p = gen->pop[item];
    if (n <= 0) return p;
    double t1 = successor_share(gen, hist[n - 1], item), t2 = n >= 2 ? successor_share(gen, hist[n - 2], item) : t1;
    return c->noise * p + (1 - c->noise) * ((1 - c->order2) * t1 + c->order2 * t2);
}

static double interests_prob(const sr_generator *gen, int64_t user, const int64_t *hist, int64_t n, int32_t item) {
    const sr_gen_config *c = &gen->cfg;
    int m = c->interests;
    if (user < 1 || user > c->n_users) return 0;
    const int32_t *mine = gen->interests + user * m;
    int32_t g = gen->cluster[item];
    double in_group = gen->pop[item] / gen->mass[g];
    if (n < m) return g == mine[n] ? in_group : 0;
    bool mine_g = false;
    for (int i = 0; i < m; i++) mine_g |= mine[i] == g;
    double follow = 0, seen = 0;
    if (mine_g) { /* only item's own group can lead to it */
        int64_t s = n - 1;
        while (s >= 0 && !(hist[s] >= 1 && hist[s] <= c->n_items && gen->cluster[hist[s]] == g)) s--;
        follow = s >= 0 ? successor_share(gen, hist[s], item) : in_group;
    }
    for (int64_t s = 0; s < n; s++) seen += hist[s] == item;
    return c->noise * gen->pop[item] + c->repeat * seen / (double)n + (1 - c->noise - c->repeat) / m * follow;
}

double sr_gen_prob(const sr_generator *gen, int64_t user, const int64_t *hist, int64_t n, int32_t item) {
    if (item < 1 || item > gen->cfg.n_items) return 0;
    return gen->cfg.interests ? interests_prob(gen, user, hist, n, item) : chain_prob(gen, hist, n, item);
}

/* Walker's alias table for O(1) popularity draws. */
typedef struct {
    double *prob;
    int32_t *alias;
    int64_t n;
} alias_table;

static bool alias_build(alias_table *a, const double *p, int64_t n) {
    a->n = n;
    a->prob = malloc((size_t)n * sizeof *a->prob);
    a->alias = malloc((size_t)n * sizeof *a->alias);
    int32_t *small = malloc((size_t)n * sizeof *small), *large = malloc((size_t)n * sizeof *large);
    if (!a->prob || !a->alias || !small || !large) {
        free(small), free(large);
        return false;
    }
    int64_t ns = 0, nl = 0;
    for (int64_t i = 0; i < n; i++) {
        a->prob[i] = p[i] * (double)n;
        a->alias[i] = (int32_t)i;
        if (a->prob[i] < 1) small[ns++] = (int32_t)i;
        else large[nl++] = (int32_t)i;
    }
    while (ns && nl) {
        int32_t s = small[--ns], l = large[nl - 1];
        a->alias[s] = l;
        a->prob[l] -= 1 - a->prob[s];
        if (a->prob[l] < 1) {
            nl--;
            small[ns++] = l;
        }
    }
    while (nl) a->prob[large[--nl]] = 1;
    while (ns) a->prob[small[--ns]] = 1;
    free(small), free(large);
    return true;
}

static int64_t alias_draw(const alias_table *a, heed_rng *r) {
    int64_t i = (int64_t)heed_rng_below(r, (uint64_t)a->n);
    return heed_rng_uniform(r) < a->prob[i] ? i : a->alias[i];
}

static const char *check_config(const sr_gen_config *c) {
    if (c->n_users < 1 || c->n_users > 100000000) return "n_users must be in 1..1e8";
    if (c->n_items < 2 || c->n_items > 100000000) return "n_items must be in 2..1e8";
    if (c->min_len < 1 || c->max_len < c->min_len || c->max_len > 100000) return "need 1 <= min_len <= max_len <= 1e5";
    if (!(c->mean_len >= (double)c->min_len && c->mean_len <= (double)c->max_len))
        return "mean_len must lie in [min_len, max_len]";
    if (c->successors < 1 || c->successors > 64 || c->successors >= c->n_items)
        return "successors must be in 1..64 and below n_items";
    if (!(c->noise >= 0 && c->noise <= 1)) return "noise must be in [0, 1]";
    if (!(c->order2 >= 0 && c->order2 <= 1)) return "order2 must be in [0, 1]";
    if (!(c->zipf >= 0 && c->zipf <= 5)) return "zipf must be in [0, 5]";
    if ((double)c->n_users * c->mean_len > 2e9) return "too many interactions (n_users * mean_len > 2e9)";
    if (c->interests < 0 || c->interests > 64) return "interests must be in 0..64";
    if (c->interests) {
        if (c->clusters < c->interests || c->clusters > c->n_items) return "clusters must be in interests..n_items";
        if (c->n_items / c->clusters <= c->successors)
            return "every group needs more items than successors (n_items / clusters > successors)";
        if (!(c->repeat >= 0 && c->repeat <= 1 - c->noise)) return "repeat must be in [0, 1 - noise]";
    }
    return NULL;
}

/* What the walks share: the truth so far and the draws. */
typedef struct {
    const sr_generator *G;
    const alias_table *pop;
    const int32_t *members; /* items by group: group g is members[start[g] .. start[g + 1]) */
    const int64_t *start;
    const double *cum; /* cum[i]: popularity of members[start[g] .. i] within their group */
    heed_rng *r;
} walk_ctx;

static int32_t successor_draw(const walk_ctx *w, int64_t a) {
    int64_t K = w->G->cfg.successors, k = 0;
    double y = heed_rng_uniform(w->r), acc = 0;
    while (k < K - 1 && y >= (acc += w->G->succ_p[k])) k++;
    return w->G->succ[a * K + k];
}

/* A popularity draw within group g: the inverse of its cumulative popularity. */
static int32_t group_draw(const walk_ctx *w, int64_t g) {
    int64_t lo = w->start[g], hi = w->start[g + 1] - 1;
    double y = heed_rng_uniform(w->r) * w->G->mass[g];
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (w->cum[mid] > y) hi = mid;
        else lo = mid + 1;
    }
    return w->members[lo];
}

/* One user of the successor chain: h is that user's part of the item array. */
static void walk_chain(const walk_ctx *w, int32_t *h, int64_t len) {
    const sr_gen_config *c = &w->G->cfg;
    double follow1 = (1 - c->noise) * (1 - c->order2);
    for (int64_t t = 0; t < len; t++) {
        double x = heed_rng_uniform(w->r);
        if (t == 0 || x < c->noise) h[t] = (int32_t)(1 + alias_draw(w->pop, w->r));
        else h[t] = successor_draw(w, (t == 1 || x < c->noise + follow1) ? h[t - 1] : h[t - 2]);
    }
}

/* One user of the interests generator; last[g] is the most recent item of group g. */
static void walk_interests(const walk_ctx *w, const int32_t *mine, int32_t *last, int32_t *h, int64_t len) {
    const sr_gen_config *c = &w->G->cfg;
    int64_t m = c->interests;
    for (int64_t t = 0; t < len; t++) {
        double x = heed_rng_uniform(w->r);
        if (t < m) h[t] = group_draw(w, mine[t]);
        else if (x < c->noise) h[t] = (int32_t)(1 + alias_draw(w->pop, w->r));
        else if (x < c->noise + c->repeat) h[t] = h[heed_rng_below(w->r, (uint64_t)t)];
        else h[t] = successor_draw(w, last[mine[heed_rng_below(w->r, (uint64_t)m)]]);
        last[w->G->cluster[h[t]]] = h[t];
    }
}

int sr_generate(const sr_gen_config *cfg, sr_data *d, sr_generator *gen, char *err, size_t errlen) {
    const char *why = check_config(cfg);
    if (why) {
        snprintf(err, errlen, "generator: %s", why);
        return -1;
    }
    sr_gen_config c = *cfg;
    int64_t I = c.n_items, K = c.successors, m = c.interests, C = m ? c.clusters : 1, U = c.n_users;
    sr_generator G = {.cfg = c};
    G.succ = calloc((size_t)(I + 1) * (size_t)K, sizeof *G.succ);
    G.succ_p = malloc((size_t)K * sizeof *G.succ_p);
    G.pop = calloc((size_t)I + 1, sizeof *G.pop);
    G.cluster = calloc((size_t)I + 1, sizeof *G.cluster);
    G.mass = calloc((size_t)C, sizeof *G.mass);
    G.interests = calloc((size_t)(U + 1) * (size_t)(m ? m : 1), sizeof *G.interests);
    int32_t *perm = malloc((size_t)I * sizeof *perm), *members = malloc((size_t)I * sizeof *members);
    int32_t *order = malloc((size_t)C * sizeof *order), *last = calloc((size_t)C, sizeof *last);
    int64_t *start = calloc((size_t)C + 1, sizeof *start), *len = malloc((size_t)U * sizeof *len);
    double *cum = malloc((size_t)I * sizeof *cum);
    alias_table pop_table = {0};
    int32_t *us = NULL, *its = NULL;
    int rc = -1;
    if (!G.succ || !G.succ_p || !G.pop || !G.cluster || !G.mass || !G.interests || !perm || !members || !order ||
        !last || !start || !len || !cum)
        goto oom;

    heed_rng r = heed_rng_make(c.seed, 0x5a5ec);
    /* Popularity: Zipf over a random permutation of the items. */
    for (int64_t i = 0; i < I; i++) perm[i] = (int32_t)(i + 1);
    for (int64_t i = I - 1; i > 0; i--) {
        int64_t j = (int64_t)heed_rng_below(&r, (uint64_t)i + 1);
        int32_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    double z = 0;
    for (int64_t i = 0; i < I; i++) z += pow((double)(i + 1), -c.zipf);
    for (int64_t i = 0; i < I; i++) G.pop[perm[i]] = pow((double)(i + 1), -c.zipf) / z;
    if (!alias_build(&pop_table, G.pop + 1, I)) goto oom;
    /* Groups: with interests, blocks of another random permutation (sizes differ by at
     * most one); otherwise one group of every item in id order. */
    for (int64_t i = 0; i < I; i++) members[i] = (int32_t)(i + 1);
    for (int64_t i = I - 1; m && i > 0; i--) {
        int64_t j = (int64_t)heed_rng_below(&r, (uint64_t)i + 1);
        int32_t t = members[i];
        members[i] = members[j], members[j] = t;
    }
    for (int64_t i = 0; i < I; i++) {
        int64_t g = i * C / I;
        G.cluster[members[i]] = (int32_t)g;
        start[g + 1] = i + 1;
        G.mass[g] += G.pop[members[i]];
        cum[i] = G.mass[g];
    }
    /* Successors: K distinct items of the item's group other than the item itself. */
    double ps = 0;
    for (int64_t k = 0; k < K; k++) ps += 1.0 / (double)(k + 1);
    for (int64_t k = 0; k < K; k++) G.succ_p[k] = 1.0 / (double)(k + 1) / ps;
    for (int64_t a = 1; a <= I; a++) {
        int64_t g = G.cluster[a], size = start[g + 1] - start[g];
        for (int64_t k = 0; k < K; k++) {
            int32_t s;
            bool dup;
            do {
                s = members[start[g] + (int64_t)heed_rng_below(&r, (uint64_t)size)];
                dup = s == a;
                for (int64_t q = 0; q < k; q++) dup |= G.succ[a * K + q] == s;
            } while (dup);
            G.succ[a * K + k] = s;
        }
    }
    /* Lengths: min_len + geometric with mean (mean_len - min_len), capped. */
    int64_t total = 0;
    double extra = c.mean_len - (double)c.min_len, q = extra / (1 + extra); /* P(one more) */
    for (int64_t u = 0; u < U; u++) {
        int64_t n = c.min_len;
        while (n < c.max_len && heed_rng_uniform(&r) < q) n++;
        len[u] = n;
        total += n;
    }
    us = malloc((size_t)total * sizeof *us);
    its = malloc((size_t)total * sizeof *its);
    if (!us || !its) goto oom;
    /* Each user's groups: the first m of a partial Fisher-Yates shuffle (uniform whatever
     * order the array was left in). */
    for (int64_t g = 0; g < C; g++) order[g] = (int32_t)g;
    walk_ctx w = {.G = &G, .pop = &pop_table, .members = members, .start = start, .cum = cum, .r = &r};
    for (int64_t u = 0, at = 0; u < U; at += len[u], u++) {
        for (int64_t i = 0; i < len[u]; i++) us[at + i] = (int32_t)(u + 1);
        if (!m) {
            walk_chain(&w, its + at, len[u]);
            continue;
        }
        int32_t *mine = G.interests + (u + 1) * m;
        for (int64_t i = 0; i < m; i++) {
            int64_t j = i + (int64_t)heed_rng_below(&r, (uint64_t)(C - i));
            int32_t t = order[i];
            order[i] = order[j], order[j] = t;
            mine[i] = order[i];
        }
        walk_interests(&w, mine, last, its + at, len[u]);
    }
    sr_data D;
    if (sr_data_from_pairs(&D, us, its, total, err, errlen) != 0) goto out;
    /* Items never drawn still exist: the model and the protocol use all n_items ids. */
    D.n_items = I;
    *d = D;
    *gen = G;
    G = (sr_generator){0};
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "generator: out of memory (%lld users, %lld items)", (long long)U, (long long)I);
out:
    free(pop_table.prob);
    free(pop_table.alias);
    free(perm);
    free(members);
    free(order);
    free(last);
    free(start);
    free(len);
    free(cum);
    free(us);
    free(its);
    sr_generator_free(&G);
    return rc;
}
