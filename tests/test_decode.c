/* Greedy and beam search (models/decode.c) over toy step functions whose answers are
 * worked out by hand, beam width 1 against greedy on random models, and bad input. */
#include "check.h"
#include "heed/decode.h"
#include "heed/shape.h"

static heed_ctx *ctx;

/* A toy model: log p(v | prev) from a table per input (tables[b][prev][v]), V tokens. Each
 * row carries its input's index in a [n, 1] state tensor that is reordered by parent, so
 * a wrong parent shows up as the wrong table. The attention [n, 3] is a fixed function of
 * (input, prev). */
typedef struct {
    int64_t V, calls;
    const double *tables; /* [batch][V][V] */
    heed_tensor *state;   /* [n, 1]: the input index of each row */
    bool attention, bad_shape, nan;
} toy;

static heed_tensor *toy_step(heed_graph *g, void *user, int64_t n, const int64_t *prev, const int64_t *parent,
                             heed_tensor **attention) {
    toy *t = user;
    if (t->calls++ > 0) t->state = heed_index_select(g, t->state, 0, parent, n);
    double *lp = malloc((size_t)(n * t->V) * sizeof *lp), *a = malloc((size_t)(n * 3) * sizeof *a);
    for (int64_t i = 0; i < n; i++) {
        int64_t b = (int64_t)heed_get(t->state, i);
        for (int64_t v = 0; v < t->V; v++) lp[i * t->V + v] = t->tables[(b * t->V + prev[i]) * t->V + v];
        for (int k = 0; k < 3; k++) a[i * 3 + k] = (double)(b + 1) / (double)(prev[i] + k + 2);
    }
    if (t->nan) lp[0] = NAN;
    heed_tensor *y = heed_input_f64(g, HEED_F64, t->bad_shape ? HEED_SHAPE(n, t->V, 1) : HEED_SHAPE(n, t->V), lp);
    if (t->attention) *attention = heed_input_f64(g, HEED_F32, HEED_SHAPE(n, 3), a);
    free(lp), free(a);
    return y;
}

static toy toy_new(heed_graph *g, int64_t batch, int64_t V, const double *tables) {
    double *ids = malloc((size_t)batch * sizeof *ids);
    for (int64_t b = 0; b < batch; b++) ids[b] = (double)b;
    toy t = {.V = V,
             .tables = tables,
             .state = heed_input_f64(g, HEED_F64, HEED_SHAPE(batch, 1), ids),
             .attention = true};
    free(ids);
    return t;
}

/* bos 0, eos 1, a 2, b 3. From bos: a .55, b .45. After a: eos .4, a .3, b .3. After b:
 * eos .9, a .05, b .05. Greedy says "a" (.55 * .4 = .22); the best sequence is "b" (.405). */
#define NI (-INFINITY)
static const double p_bos[4] = {0, 0, 0.55, 0.45}, p_a[4] = {0, 0.4, 0.3, 0.3}, p_b[4] = {0, 0.9, 0.05, 0.05};
static double trap[16];

static void make_trap(void) {
    for (int v = 0; v < 4; v++) {
        trap[0 * 4 + v] = p_bos[v] > 0 ? log(p_bos[v]) : NI;
        trap[1 * 4 + v] = v == 1 ? 0 : NI; /* after eos (never asked) */
        trap[2 * 4 + v] = p_a[v] > 0 ? log(p_a[v]) : NI;
        trap[3 * 4 + v] = p_b[v] > 0 ? log(p_b[v]) : NI;
    }
}

static void greedy_takes_the_local_best(void) {
    heed_graph *g = heed_graph_new(ctx);
    toy t = toy_new(g, 1, 4, trap);
    heed_decode_result r;
    CHECK(heed_decode(g, 1, toy_step, &t, &(heed_decode_opts){.bos = 0, .eos = 1, .max_len = 10}, &r) == HEED_OK, "%s",
          heed_graph_error(g));
    CHECK(r.batch == 1 && r.n_best == 1 && r.hyp[0].len == 1 && r.hyp[0].tokens[0] == 2 && r.hyp[0].finished,
          "greedy: len %lld", (long long)r.hyp[0].len);
    CHECK_CLOSE(r.hyp[0].logp, log(0.55) + log(0.4), 1e-12);
    CHECK_CLOSE(r.hyp[0].score, r.hyp[0].logp, 1e-15);
    /* attention: one row per step (the eos step included), rows as the toy made them */
    CHECK(r.hyp[0].keys == 3 && r.hyp[0].attention, "attention kept");
    if (r.hyp[0].attention) {
        CHECK_CLOSE(r.hyp[0].attention[0], 1.0 / 2, 1e-7);     /* step 0: prev bos (0), k 0 */
        CHECK_CLOSE(r.hyp[0].attention[3 + 2], 1.0 / 6, 1e-7); /* step 1: prev a (2), k 2 */
    }
    heed_decode_result_free(&r);
    heed_graph_free(g);
}

static void beam_finds_the_better_sequence(void) {
    heed_graph *g = heed_graph_new(ctx);
    toy t = toy_new(g, 1, 4, trap);
    heed_decode_result r;
    CHECK(heed_decode(g, 1, toy_step, &t,
                      &(heed_decode_opts){.beam = 2, .n_best = 2, .bos = 0, .eos = 1, .max_len = 10}, &r) == HEED_OK,
          "%s", heed_graph_error(g));
    CHECK(r.hyp[0].len == 1 && r.hyp[0].tokens[0] == 3 && r.hyp[0].finished, "best is 'b'");
    CHECK_CLOSE(r.hyp[0].logp, log(0.45) + log(0.9), 1e-12);
    CHECK(r.hyp[1].len == 1 && r.hyp[1].tokens[0] == 2, "second is 'a'");
    CHECK_CLOSE(r.hyp[1].logp, log(0.55) + log(0.4), 1e-12);
    CHECK(t.calls == 2, "two steps (both finished at step 1), got %lld", (long long)t.calls);
    heed_decode_result_free(&r);
    heed_graph_free(g);
}

/* A model that never ends: every hypothesis stops at max_len, unfinished; the length
 * penalty divides by the steps. */
static void max_length_and_length_penalty(void) {
    double never[9];
    for (int p = 0; p < 3; p++) never[p * 3 + 0] = NI, never[p * 3 + 1] = log(0.1), never[p * 3 + 2] = log(0.9);
    for (int beam = 1; beam <= 3; beam += 2) {
        heed_graph *g = heed_graph_new(ctx);
        toy t = toy_new(g, 1, 3, never);
        heed_decode_result r;
        CHECK(heed_decode(g, 1, toy_step, &t,
                          &(heed_decode_opts){.beam = beam, .bos = 0, .eos = 1, .max_len = 4, .length_penalty = 1},
                          &r) == HEED_OK,
              "%s", heed_graph_error(g));
        const heed_hypothesis *h = &r.hyp[0];
        /* greedy never takes eos (.1 < .9): 4 tokens, unfinished, score = mean log .9. Beam 3
         * also finishes "", "a", "aa", "aaa" with eos on the way (scores log .1 / 1, log .09 /
         * 2, log .081 / 3, log .0729 / 4), all below it, and ends at the same place: the best
         * continuation is never eos, so it runs until nothing is live. */
        CHECK(h->len == 4 && !h->finished, "beam %d: len %lld finished %d", beam, (long long)h->len, h->finished);
        CHECK_CLOSE(h->logp, 4 * log(0.9), 1e-12);
        CHECK_CLOSE(h->score, log(0.9), 1e-12);
        if (beam == 3) {
            CHECK(r.n_best == 1, "n_best");
            CHECK(t.calls == 4, "4 steps, got %lld", (long long)t.calls);
        }
        heed_decode_result_free(&r);
        heed_graph_free(g);
    }
}

/* A confident model: bos -> 2 -> 3 -> 4 -> 5 -> eos, each with p .9, eos .05 at every step,
 * the rest .05 spread. The end of each prefix ranks second at every step, so 4 of them
 * finish by step 3; the search must go on until the best continuation is eos (a search
 * that stopped at 4 finished returned a truncated "2 3 4"). */
static void beam_waits_for_the_best_to_end(void) {
    enum { V = 6 };
    double tables[V * V];
    for (int p = 0; p < V; p++)
        for (int v = 0; v < V; v++) {
            int next = p == 0 ? 2 : p >= 2 && p < 5 ? p + 1 : 1;
            double q = v == next ? 0.9 : v == 1 ? 0.05 : 0.05 / 4;
            if (next == 1) q = v == 1 ? 0.9 : 0.1 / 5;
            tables[p * V + v] = v == 0 ? -INFINITY : log(q);
        }
    heed_graph *g = heed_graph_new(ctx);
    toy t = toy_new(g, 1, V, tables);
    heed_decode_result r;
    CHECK(heed_decode(g, 1, toy_step, &t,
                      &(heed_decode_opts){.beam = 4, .bos = 0, .eos = 1, .max_len = 20, .length_penalty = 1},
                      &r) == HEED_OK,
          "%s", heed_graph_error(g));
    const heed_hypothesis *h = &r.hyp[0];
    CHECK(h->len == 4 && h->finished && h->tokens[0] == 2 && h->tokens[3] == 5, "best: len %lld finished %d",
          (long long)h->len, h->finished);
    CHECK_CLOSE(h->logp, 5 * log(0.9), 1e-12);
    heed_decode_result_free(&r);
    heed_graph_free(g);
}

/* Greedy by hand on a toy table: the argmax (first maximum) each step until eos or max_len;
 * tokens, log-probability, and the attention rows the toy gives. */
static void greedy_by_hand(const double *tables, int64_t V, int64_t b, int64_t max_len, double alpha,
                           heed_hypothesis *h, int64_t *tok, float *attn) {
    int64_t prev = 0, len = 0;
    double logp = 0;
    bool ended = false;
    while (!ended && len < max_len) {
        const double *row = tables + (b * V + prev) * V;
        int64_t best = 0;
        for (int64_t v = 1; v < V; v++)
            if (row[v] > row[best]) best = v;
        for (int k = 0; k < 3; k++) attn[len * 3 + k] = (float)((double)(b + 1) / (double)(prev + k + 2));
        logp += row[best];
        if (best == 1) ended = true;
        else tok[len++] = best, prev = best;
    }
    *h = (heed_hypothesis){.tokens = tok, .len = len, .finished = ended, .logp = logp, .keys = 3, .attention = attn};
    int64_t steps = len + ended;
    h->score = alpha > 0 ? logp / pow((double)steps, alpha) : logp;
}

/* Width 1 (and width 0, the documented greedy) gives exactly the tokens, scores and
 * attention of greedy decoding done by hand, on random models with inputs finishing at
 * different steps (rows leave the batch). */
static void beam_one_is_greedy(void) {
    enum { B = 5, V = 7 };
    double tables[B * V * V];
    heed_rng rng = heed_rng_make(7, 1);
    int64_t max_lens[B] = {3, 9, 1, 12, 6};
    for (int seed = 0; seed < 20; seed++) {
        for (int i = 0; i < B * V; i++) {
            double z[V], m = -INFINITY, s = 0;
            for (int v = 0; v < V; v++) z[v] = 3 * heed_rng_normal(&rng), m = fmax(m, z[v]);
            for (int v = 0; v < V; v++) s += exp(z[v] - m);
            for (int v = 0; v < V; v++) tables[i * V + v] = z[v] - m - log(s);
        }
        for (int k = 0; k < 2; k++) {
            heed_decode_result r;
            heed_graph *g = heed_graph_new(ctx);
            toy t = toy_new(g, B, V, tables);
            CHECK(heed_decode(g, B, toy_step, &t,
                              &(heed_decode_opts){.beam = k,
                                                  .bos = 0,
                                                  .eos = 1,
                                                  .max_lens = max_lens,
                                                  .length_penalty = 0.7},
                              &r) == HEED_OK,
                  "%s", heed_graph_error(g));
            heed_graph_free(g);
            for (int b = 0; b < B && r.hyp; b++) {
                int64_t tok[16];
                float attn[16 * 3];
                heed_hypothesis want;
                greedy_by_hand(tables, V, b, max_lens[b], 0.7, &want, tok, attn);
                const heed_hypothesis *x = &r.hyp[b];
                bool same = x->len == want.len && x->finished == want.finished && x->logp == want.logp &&
                            x->score == want.score && !memcmp(x->tokens, tok, (size_t)x->len * sizeof *tok) &&
                            !memcmp(x->attention, attn, (size_t)((x->len + x->finished) * 3) * sizeof(float));
                CHECK(same, "seed %d beam %d input %d: by hand len %lld logp %.17g, decoded len %lld logp %.17g", seed,
                      k, b, (long long)want.len, want.logp, (long long)x->len, x->logp);
            }
            heed_decode_result_free(&r);
        }
    }
}

/* Beam search against exhaustive search on a model where a wide beam must find the best
 * sequence: every sequence up to length 3, best by score. */
static void wide_beam_is_exhaustive(void) {
    enum { V = 4 };
    double tables[V * V];
    heed_rng rng = heed_rng_make(11, 2);
    for (int trial = 0; trial < 10; trial++) {
        for (int i = 0; i < V; i++) {
            double z[V], m = -INFINITY, s = 0;
            for (int v = 0; v < V; v++) z[v] = 2 * heed_rng_normal(&rng), m = fmax(m, z[v]);
            for (int v = 0; v < V; v++) s += exp(z[v] - m);
            for (int v = 0; v < V; v++) tables[i * V + v] = z[v] - m - log(s);
        }
        /* exhaustive: sequences of tokens in {0, 2, 3} of length 0..2 then eos, or length 3 unfinished */
        double best = -INFINITY;
        for (int len = 0; len <= 3; len++)
            for (int code = 0; code < (int)pow(3, len); code++) {
                int prev = 0, c = code;
                double lp = 0;
                for (int i = 0; i < len; i++) {
                    int tok = (int[]){0, 2, 3}[c % 3];
                    c /= 3;
                    lp += tables[prev * V + tok], prev = tok;
                }
                if (len < 3) lp += tables[prev * V + 1];
                best = fmax(best, lp);
            }
        heed_graph *g = heed_graph_new(ctx);
        toy t = toy_new(g, 1, V, tables);
        heed_decode_result r;
        CHECK(heed_decode(g, 1, toy_step, &t, &(heed_decode_opts){.beam = 64, .bos = 0, .eos = 1, .max_len = 3}, &r) ==
                  HEED_OK,
              "%s", heed_graph_error(g));
        CHECK_CLOSE(r.hyp[0].score, best, 1e-12);
        heed_decode_result_free(&r);
        heed_graph_free(g);
    }
}

static void bad_input(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_decode_result r;
    toy t = toy_new(g, 1, 4, trap);
    CHECK(heed_decode(g, 1, toy_step, &t, &(heed_decode_opts){.beam = 2, .n_best = 3, .eos = 1}, &r) == HEED_ERR_ARG,
          "n_best");
    CHECK_ERR(g, HEED_ERR_ARG, "n_best 3");
    t = toy_new(g, 1, 4, trap);
    CHECK(heed_decode(g, 0, toy_step, &t, &(heed_decode_opts){.eos = 1}, &r) == HEED_ERR_ARG, "batch 0");
    CHECK_ERR(g, HEED_ERR_ARG, "batch 0");
    t = toy_new(g, 1, 4, trap);
    CHECK(heed_decode(g, 1, toy_step, &t, &(heed_decode_opts){.eos = 1, .max_lens = (int64_t[]){0}}, &r) ==
              HEED_ERR_ARG,
          "max_lens 0");
    CHECK_ERR(g, HEED_ERR_ARG, "max_lens[0] = 0");
    t = toy_new(g, 1, 4, trap);
    CHECK(heed_decode(g, 1, toy_step, &t, &(heed_decode_opts){.eos = 9}, &r) == HEED_ERR_SHAPE, "eos out of range");
    CHECK_ERR(g, HEED_ERR_SHAPE, "eos 9");
    t = toy_new(g, 1, 4, trap);
    t.bad_shape = true;
    CHECK(heed_decode(g, 1, toy_step, &t, &(heed_decode_opts){.eos = 1}, &r) == HEED_ERR_SHAPE,
          "3-D log-probabilities");
    CHECK_ERR(g, HEED_ERR_SHAPE, "need [1, V]");
    t = toy_new(g, 1, 4, trap);
    t.nan = true;
    CHECK(heed_decode(g, 1, toy_step, &t, &(heed_decode_opts){.beam = 3, .eos = 1}, &r) == HEED_ERR_NUMERIC, "NaN");
    CHECK_ERR(g, HEED_ERR_NUMERIC, "is NaN");
    CHECK(r.hyp == NULL && r.batch == 0, "nothing returned on error");
    heed_graph_free(g);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 1, .threads = 1});
    make_trap();
    RUN(greedy_takes_the_local_best);
    RUN(beam_finds_the_better_sequence);
    RUN(max_length_and_length_penalty);
    RUN(beam_one_is_greedy);
    RUN(beam_waits_for_the_best_to_end);
    RUN(wide_beam_is_exhaustive);
    RUN(bad_input);
    heed_ctx_free(ctx);
    return check_summary();
}
