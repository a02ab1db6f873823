/* Greedy and beam search over a user's step function (include/heed/decode.h).
 *
 * Each live hypothesis h of input b is a row of the step's batch. The step gives log p(v |
 * h) for every token v; a continuation's log-probability is logp(h) + log p(v | h). Beam
 * search ranks all continuations of input b's rows (ties: earlier row, then lower token),
 * walks the best 2k, sends an eos ranked among the first k to the finished list and keeps
 * the first k others live. It stops when the best continuation is the end and n_best have
 * finished (not when k have: with a confident model the end of every near-miss prefix
 * ranks among the first k at each step, and k of those finish long before the best
 * hypothesis ends). With k = 1 all of this is greedy's argmax (first maximum) until the
 * end, exactly. Finished hypotheses are ranked by
 *   score = logp / steps^alpha      (steps = tokens + 1 for the eos; alpha = length_penalty).
 * Scores and sums are doubles whatever the model's dtype. */
#include <heed/core.h>
#include <heed/decode.h>
#include <heed/extend.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OP "heed_decode"

typedef struct {
    int64_t *tok; /* [max_len] */
    float *attn;  /* [max_len * keys] or NULL */
    int64_t len;
    double logp;
    int64_t row; /* its row in the last step's batch */
} hyp;

typedef struct {
    hyp *live, *next; /* [k] each */
    int64_t n_live;
    heed_hypothesis *fin; /* [3k]: finished (or stopped at max_len) */
    int64_t n_fin, max_len;
    bool done;
} input_state;

typedef struct {
    double logp;
    int64_t row, tok, live; /* live: index of the row's hypothesis in input's live list */
} cand;

static void hyp_free(hyp *h) {
    free(h->tok);
    free(h->attn);
    *h = (hyp){0};
}

void heed_decode_result_free(heed_decode_result *r) {
    if (!r) return;
    for (int64_t i = 0; r->hyp && i < r->batch * r->n_best; i++) {
        free(r->hyp[i].tokens);
        free(r->hyp[i].attention);
    }
    free(r->hyp);
    *r = (heed_decode_result){0};
}

static double score_of(double logp, int64_t steps, double alpha) {
    return alpha > 0 && steps > 0 ? logp / pow((double)steps, alpha) : logp;
}

/* Adds a copy of h to s's finished list: its tokens, and its attention rows plus the eos
 * step's row when it ended with eos (h->attn then holds that row after its len rows). */
static bool finish(input_state *s, const hyp *h, double logp, int64_t keys, double alpha, bool ended) {
    heed_hypothesis *f = &s->fin[s->n_fin];
    int64_t steps = h->len; /* h already holds every step's token except an eos */
    *f = (heed_hypothesis){.len = h->len, .finished = ended, .logp = logp, .keys = keys};
    f->score = score_of(logp, steps + (ended ? 1 : 0), alpha);
    f->tokens = malloc((size_t)(h->len > 0 ? h->len : 1) * sizeof *f->tokens);
    if (!f->tokens) return false;
    memcpy(f->tokens, h->tok, (size_t)h->len * sizeof *f->tokens);
    int64_t rows = steps + (ended ? 1 : 0);
    if (h->attn && keys > 0) {
        f->attention = malloc((size_t)(rows * keys) * sizeof *f->attention);
        if (!f->attention) return free(f->tokens), f->tokens = NULL, false;
        memcpy(f->attention, h->attn, (size_t)(rows * keys) * sizeof *f->attention);
    }
    s->n_fin++;
    return true;
}

/* Sorts hypotheses by score, best first; stable (insertion sort over at most 3k). */
static void rank_finished(heed_hypothesis *f, int64_t n) {
    for (int64_t i = 1; i < n; i++) {
        heed_hypothesis x = f[i];
        int64_t j = i;
        while (j > 0 && f[j - 1].score < x.score) f[j] = f[j - 1], j--;
        f[j] = x;
    }
}

/* The log-probability at [i, v] of a [n, V] tensor of either dtype. */
static double at(const heed_tensor *t, int64_t i) {
    return t->dtype == HEED_F32 ? (double)((const float *)t->data)[i] : ((const double *)t->data)[i];
}

/* Is candidate a ranked before b: higher log-probability, then earlier row, then lower token. */
static bool before(const cand *a, const cand *b) {
    if (a->logp != b->logp) return a->logp > b->logp;
    if (a->row != b->row) return a->row < b->row;
    return a->tok < b->tok;
}

/* Copies parent (its len tokens and attention rows) into h, then appends tok, the step's
 * attention row (attn_row may be NULL) and the new log-probability. */
static void extend(hyp *h, const hyp *parent, int64_t tok, const float *attn_row, int64_t keys, double logp) {
    memcpy(h->tok, parent->tok, (size_t)parent->len * sizeof *h->tok);
    if (h->attn && parent->attn) memcpy(h->attn, parent->attn, (size_t)(parent->len * keys) * sizeof *h->attn);
    h->tok[parent->len] = tok;
    if (h->attn && attn_row) memcpy(h->attn + parent->len * keys, attn_row, (size_t)keys * sizeof *h->attn);
    h->len = parent->len + 1;
    h->logp = logp;
}

static bool hyp_alloc(hyp *h, int64_t max_len, int64_t keys) {
    h->tok = malloc((size_t)max_len * sizeof *h->tok);
    h->attn = keys > 0 ? malloc((size_t)(max_len * keys) * sizeof *h->attn) : NULL;
    return h->tok && (keys == 0 || h->attn);
}

heed_status heed_decode(heed_graph *g, int64_t batch, heed_decode_step step, void *user, const heed_decode_opts *opts,
                        heed_decode_result *out) {
    if (out) *out = (heed_decode_result){0};
    if (!heed_graph_ok(g)) return g ? heed_graph_status(g) : HEED_ERR_ARG;
    if (!step || !opts || !out) return heed_graph_fail(g, HEED_ERR_ARG, OP ": step, opts and out must not be NULL");
    heed_decode_opts o = *opts;
    int64_t k = o.beam > 1 ? o.beam : 1, nb = o.n_best > 0 ? o.n_best : 1;
    if (batch < 1 || o.beam < 0 || o.beam > 4096 || nb > k || !(o.length_penalty >= 0 && o.length_penalty <= 100) ||
        o.max_len < 0)
        return heed_graph_fail(
            g, HEED_ERR_ARG,
            OP ": batch %lld, beam %lld, n_best %lld, max_len %lld, length_penalty %g: need batch >= 1, "
               "beam in 0..4096, n_best in 1..max(beam, 1), max_len >= 0, length_penalty in [0, 100]",
            (long long)batch, (long long)o.beam, (long long)nb, (long long)o.max_len, o.length_penalty);
    for (int64_t b = 0; o.max_lens && b < batch; b++)
        if (o.max_lens[b] < 1 || o.max_lens[b] > 1000000)
            return heed_graph_fail(g, HEED_ERR_ARG, OP ": max_lens[%lld] = %lld (must be in 1..1000000)", (long long)b,
                                   (long long)o.max_lens[b]);
    input_state *s = calloc((size_t)batch, sizeof *s);
    int64_t *prev = malloc((size_t)(batch * k) * sizeof *prev), *parent = malloc((size_t)(batch * k) * sizeof *parent);
    int64_t *row_input = malloc((size_t)(batch * k) * sizeof *row_input);
    cand *cands = malloc((size_t)(2 * k + 1) * sizeof *cands);
    heed_status st = HEED_OK;
    int64_t keys = -1, V = -1;
    if (!s || !prev || !parent || !row_input || !cands) goto oom;
    for (int64_t b = 0; b < batch; b++) {
        s[b].max_len = o.max_lens ? o.max_lens[b] : o.max_len ? o.max_len : 100;
        s[b].live = calloc((size_t)k, sizeof *s[b].live);
        s[b].next = calloc((size_t)k, sizeof *s[b].next);
        s[b].fin = calloc((size_t)(3 * k), sizeof *s[b].fin); /* <= k kept, + k eos, + k at max_len per step */
        if (!s[b].live || !s[b].next || !s[b].fin) goto oom;
        s[b].n_live = 1; /* the empty hypothesis; its buffers come once the attention size is known */
        s[b].live[0].row = b;
    }
    for (int64_t t = 0;; t++) {
        int64_t n = 0; /* the rows of this step: every live hypothesis of every unfinished input */
        for (int64_t b = 0; b < batch; b++)
            for (int64_t i = 0; !s[b].done && i < s[b].n_live; i++) {
                hyp *h = &s[b].live[i];
                prev[n] = h->len ? h->tok[h->len - 1] : o.bos;
                parent[n] = h->row;
                row_input[n] = b;
                h->row = n++;
            }
        if (n == 0) break;
        heed_tensor *attn = NULL;
        heed_tensor *lp = step(g, user, n, prev, parent, &attn);
        if (!lp || !heed_graph_ok(g)) {
            if (heed_graph_ok(g))
                heed_graph_fail(g, HEED_ERR_ARG, OP ": the step function returned NULL at step %lld", (long long)t);
            goto fail;
        }
        if (lp->ndim != 2 || lp->shape[0] != n || lp->shape[1] < 1 || (V >= 0 && lp->shape[1] != V) || o.eos < 0 ||
            o.eos >= lp->shape[1]) {
            heed_graph_fail(
                g, HEED_ERR_SHAPE,
                OP ": step %lld returned log-probabilities [%lld%s%lld] for %lld rows: need [%lld, V] with the "
                   "same V every step and eos %lld in [0, V)",
                (long long)t, (long long)lp->shape[0], lp->ndim > 1 ? ", " : "",
                (long long)(lp->ndim > 1 ? lp->shape[1] : 0), (long long)n, (long long)n, (long long)o.eos);
            goto fail;
        }
        V = lp->shape[1];
        if (attn && (attn->ndim != 2 || attn->shape[0] != n || (keys > 0 && attn->shape[1] != keys))) {
            heed_graph_fail(g, HEED_ERR_SHAPE,
                            OP ": step %lld returned attention of %d dims for %lld rows: need [%lld, N], "
                               "the same N every step (and every step or none)",
                            (long long)t, attn->ndim, (long long)n, (long long)n);
            goto fail;
        }
        if (t == 0) { /* now the attention size is known: the hypotheses' buffers */
            keys = attn ? attn->shape[1] : 0;
            for (int64_t b = 0; b < batch; b++)
                for (int64_t i = 0; i < k; i++) {
                    int64_t row = s[b].live[i].row;
                    if (!hyp_alloc(&s[b].live[i], s[b].max_len, keys) || !hyp_alloc(&s[b].next[i], s[b].max_len, keys))
                        goto oom;
                    s[b].live[i].row = row;
                }
        } else if (!attn != (keys == 0)) {
            heed_graph_fail(g, HEED_ERR_ARG, OP ": step %lld %s attention but step 0 %s", (long long)t,
                            attn ? "returned" : "did not return", attn ? "did not" : "did");
            goto fail;
        }
        float *arow = keys > 0 ? malloc((size_t)keys * sizeof *arow) : NULL;
        if (keys > 0 && !arow) goto oom;
        for (int64_t r = 0; r < n * V; r++)
            if (isnan(at(lp, r))) {
                free(arow);
                heed_graph_fail(g, HEED_ERR_NUMERIC, OP ": step %lld row %lld token %lld: the log-probability is NaN",
                                (long long)t, (long long)(r / V), (long long)(r % V));
                goto fail;
            }
        for (int64_t r0 = 0; r0 < n;) { /* input b owns rows r0 .. r1 */
            int64_t b = row_input[r0], r1 = r0;
            while (r1 < n && row_input[r1] == b) r1++;
            input_state *in = &s[b];
            /* the best 2k continuations of b's rows, in rank order (insertion into a short list) */
            int64_t nc = 0, keep = 2 * k;
            for (int64_t r = r0; r < r1; r++) {
                const hyp *h = &in->live[r - r0];
                for (int64_t v = 0; v < V; v++) {
                    cand c = {h->logp + at(lp, r * V + v), r, v, r - r0};
                    if (nc == keep && !before(&c, &cands[nc - 1])) continue;
                    int64_t j = nc < keep ? nc++ : nc - 1;
                    while (j > 0 && before(&c, &cands[j - 1])) cands[j] = cands[j - 1], j--;
                    cands[j] = c;
                }
            }
            int64_t n_next = 0;
            for (int64_t j = 0; j < nc && n_next < k; j++) {
                const cand *c = &cands[j];
                const hyp *h = &in->live[c->live];
                if (keys > 0)
                    for (int64_t q = 0; q < keys; q++) arow[q] = (float)at(attn, c->row * keys + q);
                if (c->tok == o.eos) {
                    if (j >= k) continue;
                    /* the finished one holds its parent's tokens and this step's attention row */
                    hyp tmp = in->next[n_next]; /* scratch: parent + eos row, len stays parent's */
                    extend(&tmp, h, c->tok, keys > 0 ? arow : NULL, keys, c->logp);
                    tmp.len--;
                    if (!finish(in, &tmp, c->logp, keys, o.length_penalty, true)) {
                        free(arow);
                        goto oom;
                    }
                    continue;
                }
                extend(&in->next[n_next], h, c->tok, keys > 0 ? arow : NULL, keys, c->logp);
                in->next[n_next].row = c->row;
                n_next++;
            }
            hyp *sw = in->live;
            in->live = in->next, in->next = sw;
            in->n_live = n_next;
            /* hypotheses at their maximum length end here, unfinished */
            int64_t still = 0;
            for (int64_t i = 0; i < in->n_live; i++) {
                hyp *h = &in->live[i];
                if (h->len < in->max_len) {
                    if (still != i) {
                        hyp x = in->live[still];
                        in->live[still] = *h;
                        *h = x;
                    }
                    still++;
                    continue;
                }
                if (!finish(in, h, h->logp, keys, o.length_penalty, false)) {
                    free(arow);
                    goto oom;
                }
            }
            in->n_live = still;
            /* keep the k best finished by score (stable: the earlier finished first on ties) */
            rank_finished(in->fin, in->n_fin);
            for (; in->n_fin > k; in->n_fin--) {
                heed_hypothesis *f = &in->fin[in->n_fin - 1];
                free(f->tokens), free(f->attention);
                *f = (heed_hypothesis){0};
            }
            /* done when the best continuation was the end (the top hypothesis ended, as greedy
             * stops) and n_best have finished, or when none is live */
            if ((nc > 0 && cands[0].tok == o.eos && in->n_fin >= nb) || in->n_live == 0) in->done = true;
            r0 = r1;
        }
        free(arow);
    }
    /* the finished hypotheses are ranked by score already */
    out->batch = batch, out->n_best = nb;
    out->hyp = calloc((size_t)(batch * nb), sizeof *out->hyp);
    if (!out->hyp) goto oom;
    for (int64_t b = 0; b < batch; b++) {
        input_state *in = &s[b];
        for (int64_t i = 0; i < nb; i++) {
            if (i < in->n_fin) {
                out->hyp[b * nb + i] = in->fin[i];
                in->fin[i] = (heed_hypothesis){0};
            } else {
                out->hyp[b * nb + i] = (heed_hypothesis){.score = -INFINITY, .logp = -INFINITY};
            }
        }
    }
    goto cleanup;
oom:
    heed_graph_fail(g, HEED_ERR_NOMEM, OP ": out of memory for %lld inputs, beam %lld", (long long)batch, (long long)k);
fail:
    st = heed_graph_status(g);
    heed_decode_result_free(out);
cleanup:
    for (int64_t b = 0; s && b < batch; b++) {
        for (int64_t i = 0; i < k; i++) {
            if (s[b].live) hyp_free(&s[b].live[i]);
            if (s[b].next) hyp_free(&s[b].next[i]);
        }
        for (int64_t i = 0; s[b].fin && i < 3 * k; i++) free(s[b].fin[i].tokens), free(s[b].fin[i].attention);
        free(s[b].live), free(s[b].next), free(s[b].fin);
    }
    free(s), free(prev), free(parent), free(row_input), free(cands);
    return st == HEED_OK ? heed_graph_status(g) : st;
}
