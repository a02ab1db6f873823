/* Fused ops keep nothing for backward when nothing is recorded: under no-grad, the
 * additive / location / coverage / Luong-concat scores, LSTM and GRU stacks, max and the
 * attention scan give the same values as when recorded, and the graph memory they use
 * stays within their outputs plus bounded scratch (the recorded run keeps far more). */
#include "check.h"
#include "heed/attention.h"
#include "heed/reduce.h"
#include "heed/rnn.h"
#include "sin_fill.h"

static heed_ctx *ctx;

/* max |a - b| / max(1, max |b|) over two tensors of one shape; NaN counts as infinite */
static double rel_diff(const heed_tensor *a, const heed_tensor *b) {
    if (!a || !b || a->numel != b->numel) return INFINITY;
    double err = 0, scale = 1;
    for (int64_t i = 0; i < a->numel; i++) {
        double e = fabs(heed_get(a, i) - heed_get(b, i));
        err = e == e ? fmax(err, e) : INFINITY;
        scale = fmax(scale, fabs(heed_get(b, i)));
    }
    return err / scale;
}

static size_t bytes_of(const heed_tensor *t) { return t ? (size_t)t->numel * heed_dtype_size(t->dtype) : 0; }

/* ---------------------------------------------------------------- one-step attention scores */

typedef struct {
    int kind; /* 0 additive, 1 + coverage, 2 + location, 3 Luong concat */
    int64_t B, N, dq, da;
    heed_dtype dt;
} score_case;

/* scores on a fresh graph (recorded or under no-grad); *used: arena bytes the op took */
static heed_tensor *score(heed_graph *g, const score_case *c, bool nograd, size_t *used) {
    heed_dtype dt = c->dt;
    int64_t B = c->B, N = c->N, da = c->da, dq = c->dq;
    heed_tensor *q = filled(g, dt, HEED_SHAPE(B, dq), 1, false), *kp = filled(g, dt, HEED_SHAPE(B, N, da), 2, false);
    heed_tensor *wq = filled(g, dt, HEED_SHAPE(da, c->kind == 3 ? dq + da : dq), 3, true);
    heed_tensor *v = filled(g, dt, HEED_SHAPE(da), 4, true), *bias = filled(g, dt, HEED_SHAPE(da), 5, true);
    heed_tensor *cov = filled(g, dt, HEED_SHAPE(B, N), 6, false), *covw = filled(g, dt, HEED_SHAPE(da), 7, true);
    heed_tensor *filt = filled(g, dt, HEED_SHAPE(4, 5), 8, true), *proj = filled(g, dt, HEED_SHAPE(da, 4), 9, true);
    heed_additive_params ap = {.w_q = wq, .bias = bias, .v = v};
    if (c->kind == 1) ap.cov_weight = covw;
    if (c->kind == 2) ap.loc_filters = filt, ap.loc_proj = proj;
    size_t before = heed_graph_peak_bytes(g);
    if (nograd) heed_no_grad_begin(g);
    heed_tensor *s = c->kind == 3
                         ? heed_luong_score(g, HEED_LUONG_CONCAT, q, kp, wq, v)
                         : heed_additive_score(g, q, kp, &ap, c->kind == 2 ? cov : NULL, c->kind == 1 ? cov : NULL);
    if (nograd) heed_no_grad_end(g);
    *used = heed_graph_peak_bytes(g) - before;
    CHECK(s != NULL, "%s", heed_graph_error(g));
    return s;
}

static void attention_scores(void) {
    static const char *names[4] = {"additive", "coverage", "location", "Luong concat"};
    for (int kind = 0; kind < 4; kind++)
        for (int dti = 0; dti < 2; dti++) {
            /* B*N = 1600 rows of da = 32: several row blocks, the last one short, threads inside */
            score_case c = {kind, 16, 100, 12, 32, dti ? HEED_F64 : HEED_F32};
            heed_graph *g0 = heed_graph_new(ctx), *g1 = heed_graph_new(ctx);
            size_t rec_used, used;
            heed_tensor *a = score(g0, &c, false, &rec_used), *b = score(g1, &c, true, &used);
            CHECK(b && !(b->flags & HEED_REQUIRES_GRAD) && heed_graph_nodes(g1) == 0, "%s: nothing recorded",
                  names[kind]);
            double err = rel_diff(b, a);
            CHECK(err <= (dti ? 1e-14 : 1e-6), "%s: no-grad scores differ from the recorded ones by %.3g", names[kind],
                  err);
            /* the scores, the query projection [B,da], one block of 8192 values of tanh(pre)
             * and of location features, and alignment */
            size_t es = heed_dtype_size(c.dt), bound = bytes_of(b) + (size_t)(c.B * c.da) * es + 2 * 8192 * es + 1024;
            CHECK(used <= bound, "%s: no-grad used %zu bytes (bound %zu)", names[kind], used, bound);
            CHECK(rec_used >= (size_t)(c.B * c.N * c.da) * es, "%s: recorded keeps tanh(pre) (%zu bytes)", names[kind],
                  rec_used);
            heed_graph_free(g0);
            heed_graph_free(g1);
        }
    /* the attention on top: weights and context equal, memory near the outputs */
    heed_graph *g = heed_graph_new(ctx);
    int64_t B = 64, N = 32, dq = 128, da = 128, dv = 128;
    heed_tensor *q = filled(g, HEED_F32, HEED_SHAPE(B, dq), 1, false),
                *kp = filled(g, HEED_F32, HEED_SHAPE(B, N, da), 2, false);
    heed_tensor *vals = filled(g, HEED_F32, HEED_SHAPE(B, N, dv), 3, false);
    heed_additive_params ap = {.w_q = filled(g, HEED_F32, HEED_SHAPE(da, dq), 4, true),
                               .v = filled(g, HEED_F32, HEED_SHAPE(da), 5, true)};
    size_t before = heed_graph_peak_bytes(g);
    heed_no_grad_begin(g);
    heed_tensor *w, *ctxv = heed_additive_attention(g, q, kp, vals, &ap, NULL, NULL, NULL, &w);
    heed_no_grad_end(g);
    size_t used = heed_graph_peak_bytes(g) - before, out = bytes_of(ctxv) + bytes_of(w);
    CHECK(ctxv && used <= out + (size_t)(B * N + B * da) * 4 + 8192 * 4 + 2048,
          "additive attention B=64 N=32 da=128: %zu bytes for %zu of outputs", used, out);
    /* anomaly mode still checks the output of an op that records nothing */
    heed_graph_reset(g);
    heed_graph_set_anomaly(g, true);
    q = filled(g, HEED_F32, HEED_SHAPE(B, dq), 1, false);
    ((float *)q->data)[5] = NAN;
    kp = filled(g, HEED_F32, HEED_SHAPE(B, N, da), 2, false);
    ap.w_q = filled(g, HEED_F32, HEED_SHAPE(da, dq), 4, true), ap.v = filled(g, HEED_F32, HEED_SHAPE(da), 5, true);
    heed_no_grad_begin(g);
    CHECK(!heed_additive_score(g, q, kp, &ap, NULL, NULL), "NaN query in anomaly mode");
    heed_no_grad_end(g);
    CHECK_ERR(g, HEED_ERR_NUMERIC, "heed_additive_score: output 0");
    heed_graph_free(g);
}

/* ---------------------------------------------------------------- recurrent stacks */

static void rnn_stacks(void) {
    enum { T = 9, B = 5, I = 6, H = 16, L = 3, D = 2 };
    int64_t len[B] = {9, 1, 4, 9, 6};
    for (int kind = 0; kind < 2; kind++)
        for (int training = 0; training < 2; training++) {
            bool lstm = kind == HEED_RNN_LSTM;
            heed_params *P = heed_params_new(ctx, HEED_F32);
            heed_rnn rnn;
            heed_rnn_opts o = {.kind = (heed_rnn_kind)kind,
                               .input_size = I,
                               .hidden_size = H,
                               .layers = L,
                               .bidirectional = true,
                               .dropout = 0.25};
            heed_rnn_declare(&rnn, P, "enc", &o);
            heed_tensor *y[2], *hn[2], *cn[2] = {NULL, NULL};
            size_t used[2];
            heed_graph *g[2];
            uint64_t seed, counter;
            heed_ctx_rng_state(ctx, &seed, &counter);
            for (int k = 0; k < 2; k++) {
                g[k] = heed_graph_new(ctx);
                heed_graph_set_training(g[k], training);
                heed_tensor *x = filled(g[k], HEED_F32, HEED_SHAPE(T, B, I), 1, false);
                heed_tensor *h0 = filled(g[k], HEED_F32, HEED_SHAPE(L * D, B, H), 2, false);
                heed_tensor *c0 = filled(g[k], HEED_F32, HEED_SHAPE(L * D, B, H), 3, false);
                heed_ctx_set_rng_state(ctx, seed, counter); /* the same dropout masks */
                size_t before = heed_graph_peak_bytes(g[k]);
                if (k) heed_no_grad_begin(g[k]);
                y[k] = lstm ? heed_lstm(g[k], &rnn, x, h0, c0, len, &hn[k], &cn[k])
                            : heed_gru(g[k], &rnn, x, h0, len, &hn[k]);
                if (k) heed_no_grad_end(g[k]);
                used[k] = heed_graph_peak_bytes(g[k]) - before;
                CHECK(y[k] != NULL, "%s", heed_graph_error(g[k]));
            }
            if (y[0] && y[1]) {
                /* the same kernels on the same values: bitwise equal */
                CHECK(memcmp(y[0]->data, y[1]->data, bytes_of(y[0])) == 0, "outputs");
                CHECK(memcmp(hn[0]->data, hn[1]->data, bytes_of(hn[0])) == 0, "h_n");
                if (lstm) CHECK(memcmp(cn[0]->data, cn[1]->data, bytes_of(cn[0])) == 0, "c_n");
                CHECK(heed_graph_nodes(g[1]) == 0, "nothing recorded");
                /* outputs, one gate buffer [T,B,4H] and a two-step state ring per direction,
                 * two buffers for the outputs of the layers below, the per-step scratch */
                size_t es = 4, outs = bytes_of(y[1]) + bytes_of(hn[1]) + bytes_of(cn[1]);
                size_t scratch = (size_t)D * (T * B * 4 * H + 2 * 2 * B * H + B * 4 * H + 4 * H + 4 * H * H) * es +
                                 2 * (size_t)(T * B * D * H) * es + 4096;
                CHECK(used[1] <= outs + scratch, "%s: no-grad used %zu bytes (bound %zu)", lstm ? "LSTM" : "GRU",
                      used[1], outs + scratch);
                CHECK(used[0] >= (size_t)(L * D * T * B * (lstm ? 6 : 5) * H) * es, "recorded keeps the histories");
            }
            for (int k = 0; k < 2; k++) heed_graph_free(g[k]);
            heed_params_free(P);
        }
}

/* ---------------------------------------------------------------- max, attention scan */

static void max_and_scan(void) {
    for (int k = 0; k < 2; k++) {
        heed_graph *g = heed_graph_new(ctx);
        heed_tensor *x = filled(g, HEED_F32, HEED_SHAPE(64, 100), 1, true);
        size_t before = heed_graph_peak_bytes(g);
        if (k) heed_no_grad_begin(g);
        heed_tensor *m = heed_max(g, x, 0, false);
        if (k) heed_no_grad_end(g);
        size_t used = heed_graph_peak_bytes(g) - before;
        double want = -INFINITY;
        for (int64_t i = 0; i < 64; i++) want = fmax(want, heed_get(x, i * 100 + 3));
        CHECK(m && heed_get(m, 3) == want, "max of column 3");
        if (k)
            CHECK(used <= bytes_of(m) + 128, "max under no-grad: %zu bytes for a %zu-byte output", used, bytes_of(m));
        else CHECK(used >= bytes_of(m) + 100 * 8, "recorded max keeps its argmax (%zu bytes)", used);
        heed_graph_free(g);
    }
    heed_tensor *o[2];
    heed_graph *g[2];
    for (int k = 0; k < 2; k++) {
        g[k] = heed_graph_new(ctx);
        heed_tensor *q = filled(g[k], HEED_F64, HEED_SHAPE(4, 8), 1, true),
                    *kk = filled(g[k], HEED_F64, HEED_SHAPE(4, 50, 8), 2, true);
        heed_tensor *v = filled(g[k], HEED_F64, HEED_SHAPE(4, 50, 3), 3, true);
        size_t before = heed_graph_peak_bytes(g[k]);
        if (k) heed_no_grad_begin(g[k]);
        o[k] = heed_attention_scan(g[k], q, kk, v, 0, NULL);
        if (k) heed_no_grad_end(g[k]);
        size_t used = heed_graph_peak_bytes(g[k]) - before;
        if (k) CHECK(used <= bytes_of(o[k]) + 128, "scan under no-grad: %zu bytes for %zu", used, bytes_of(o[k]));
        else CHECK(used >= bytes_of(o[k]) + 4 * 50 * 8, "recorded scan keeps its log-sum-exps (%zu bytes)", used);
    }
    CHECK(o[0] && o[1] && memcmp(o[0]->data, o[1]->data, bytes_of(o[0])) == 0, "scan values");
    for (int k = 0; k < 2; k++) heed_graph_free(g[k]);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 13, .threads = 2});
    RUN(attention_scores);
    RUN(rnn_stacks);
    RUN(max_and_scan);
    heed_ctx_free(ctx);
    return check_summary();
}
