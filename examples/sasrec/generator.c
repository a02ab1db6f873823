/* Synthetic sequential data with a known best ranking (see sasrec_data.h).
 *
 *   P(x_1 = j)              = pop(j)
 *   P(x_{t+1} = j | x_<=t)  = noise pop(j) + (1 - noise) [(1 - order2) T(x_t, j) + order2 T(x_{t-1}, j)]
 *   T(a, j)                 = sum_k p_k [succ(a, k) = j],  p_k proportional to 1/(k+1)
 *   pop(j)                  proportional to 1/rank(j)^zipf, ranks a random permutation
 * (with one item of history the order-2 share goes to the last item). */
#include "sasrec_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sr_gen_config sr_gen_amazon_games(void) {
    return (sr_gen_config){.n_users = 31000, .n_items = 24000, .mean_len = 7.3, .min_len = 5, .max_len = 500,
                           .successors = 3, .noise = 0.2, .order2 = 0.25, .zipf = 1.0, .seed = 1};
}

void sr_generator_free(sr_generator *gen) {
    if (!gen) return;
    free(gen->succ);
    free(gen->succ_p);
    free(gen->pop);
    *gen = (sr_generator){0};
}

double sr_gen_prob(const sr_generator *gen, const int64_t *hist, int64_t n, int32_t item) {
    const sr_gen_config *c = &gen->cfg;
    if (item < 1 || item > c->n_items) return 0;
    double p = gen->pop[item];
    if (n <= 0) return p;
    int K = c->successors;
    double t1 = 0, t2 = 0;
    const int32_t *s1 = gen->succ + hist[n - 1] * K;
    for (int k = 0; k < K; k++) t1 += s1[k] == item ? gen->succ_p[k] : 0;
    if (n >= 2) {
        const int32_t *s2 = gen->succ + hist[n - 2] * K;
        for (int k = 0; k < K; k++) t2 += s2[k] == item ? gen->succ_p[k] : 0;
    } else {
        t2 = t1;
    }
    return c->noise * p + (1 - c->noise) * ((1 - c->order2) * t1 + c->order2 * t2);
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
    if (!(c->mean_len >= (double)c->min_len && c->mean_len <= (double)c->max_len)) return "mean_len must lie in [min_len, max_len]";
    if (c->successors < 1 || c->successors > 64 || c->successors >= c->n_items) return "successors must be in 1..64 and below n_items";
    if (!(c->noise >= 0 && c->noise <= 1)) return "noise must be in [0, 1]";
    if (!(c->order2 >= 0 && c->order2 <= 1)) return "order2 must be in [0, 1]";
    if (!(c->zipf >= 0 && c->zipf <= 5)) return "zipf must be in [0, 5]";
    if ((double)c->n_users * c->mean_len > 2e9) return "too many interactions (n_users * mean_len > 2e9)";
    return NULL;
}

int sr_generate(const sr_gen_config *cfg, sr_data *d, sr_generator *gen, char *err, size_t errlen) {
    const char *why = check_config(cfg);
    if (why) {
        snprintf(err, errlen, "generator: %s", why);
        return -1;
    }
    sr_gen_config c = *cfg;
    int64_t I = c.n_items, K = c.successors;
    sr_generator G = {.cfg = c};
    G.succ = calloc((size_t)(I + 1) * (size_t)K, sizeof *G.succ);
    G.succ_p = malloc((size_t)K * sizeof *G.succ_p);
    G.pop = calloc((size_t)I + 1, sizeof *G.pop);
    int32_t *perm = malloc((size_t)I * sizeof *perm);
    alias_table pop_table = {0};
    int32_t *us = NULL, *its = NULL;
    int rc = -1;
    if (!G.succ || !G.succ_p || !G.pop || !perm) goto oom;

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
    /* Successors: K distinct items other than the item itself. */
    double ps = 0;
    for (int64_t k = 0; k < K; k++) ps += 1.0 / (double)(k + 1);
    for (int64_t k = 0; k < K; k++) G.succ_p[k] = 1.0 / (double)(k + 1) / ps;
    for (int64_t a = 1; a <= I; a++)
        for (int64_t k = 0; k < K; k++) {
            int32_t s;
            bool dup;
            do {
                s = (int32_t)(1 + heed_rng_below(&r, (uint64_t)I));
                dup = s == a;
                for (int64_t q = 0; q < k; q++) dup |= G.succ[a * K + q] == s;
            } while (dup);
            G.succ[a * K + k] = s;
        }
    /* Lengths: min_len + geometric with mean (mean_len - min_len), capped. */
    int64_t *len = malloc((size_t)c.n_users * sizeof *len), total = 0;
    if (!len) goto oom;
    double extra = c.mean_len - (double)c.min_len, q = extra / (1 + extra); /* P(one more) */
    for (int64_t u = 0; u < c.n_users; u++) {
        int64_t n = c.min_len;
        while (n < c.max_len && heed_rng_uniform(&r) < q) n++;
        len[u] = n;
        total += n;
    }
    us = malloc((size_t)total * sizeof *us);
    its = malloc((size_t)total * sizeof *its);
    if (!us || !its) {
        free(len);
        goto oom;
    }
    int64_t at = 0;
    double follow1 = (1 - c.noise) * (1 - c.order2);
    for (int64_t u = 0; u < c.n_users; u++) {
        int64_t h[2] = {0, 0}; /* the last two items, h[1] the latest */
        for (int64_t t = 0; t < len[u]; t++) {
            int64_t it;
            double x = heed_rng_uniform(&r);
            if (t == 0 || x < c.noise) {
                it = 1 + alias_draw(&pop_table, &r);
            } else {
                int64_t from = (t == 1 || x < c.noise + follow1) ? h[1] : h[0];
                double y = heed_rng_uniform(&r), acc = 0;
                int64_t k = 0;
                while (k < K - 1 && y >= (acc += G.succ_p[k])) k++;
                it = G.succ[from * K + k];
            }
            h[0] = h[1], h[1] = it;
            us[at] = (int32_t)(u + 1);
            its[at] = (int32_t)it;
            at++;
        }
    }
    free(len);
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
    snprintf(err, errlen, "generator: out of memory (%lld users, %lld items)", (long long)c.n_users, (long long)I);
out:
    free(pop_table.prob);
    free(pop_table.alias);
    free(perm);
    free(us);
    free(its);
    sr_generator_free(&G);
    return rc;
}
