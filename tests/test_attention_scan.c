/* Attention as a recurrence: the streaming cell, the recorded recurrent op and the
 * parallel prefix scan, each against plain softmax attention. */
#include "check_grad32.h"
#include "heed/attention.h"

static heed_ctx *ctx;

static double *randn(heed_rng *r, int64_t n, double amp) {
    double *d = malloc((size_t)(n ? n : 1) * sizeof *d);
    for (int64_t i = 0; i < n; i++) d[i] = amp * (2 * heed_rng_uniform(r) - 1);
    return d;
}

/* softmax(scale q.k_j over j < L) v, naive two-pass, in double. */
static void ref_softmax_attention(const double *q, const double *K, const double *V, int64_t L, int64_t d, int64_t dv,
                                  double scale, double *out) {
    double m = -INFINITY, sum = 0, s[2048];
    for (int64_t e = 0; e < dv; e++) out[e] = 0;
    for (int64_t j = 0; j < L; j++) {
        s[j] = 0;
        for (int64_t i = 0; i < d; i++) s[j] += q[i] * K[j * d + i];
        s[j] *= scale;
        m = fmax(m, s[j]);
    }
    for (int64_t j = 0; j < L; j++) sum += exp(s[j] - m);
    for (int64_t j = 0; j < L; j++)
        for (int64_t e = 0; e < dv; e++) out[e] += exp(s[j] - m) / sum * V[j * dv + e];
}

/* ---------------------------------------------------------------- the streaming cell */

static void streaming_cell(void) {
    heed_rng r = heed_rng_make(11, 0);
    int64_t N = 37, d = 6, dv = 5;
    double *q = randn(&r, d, 3), *K = randn(&r, N * d, 3), *V = randn(&r, N * dv, 1), ref[5], out[5];
    double buf[5], buf2[5];
    heed_attn_state s, t;
    CHECK(heed_attn_state_init(ctx, &s, dv, buf) == HEED_OK, "init");
    CHECK(heed_attn_state_output(ctx, &s, out) == HEED_OK && out[0] == 0 && out[4] == 0, "empty state gives zeros");
    CHECK(heed_attn_state_logsumexp(&s) == -INFINITY, "empty lse");
    for (int64_t j = 0; j < N; j++) {
        CHECK(heed_attn_state_push_key(ctx, &s, q, K + j * d, d, 0.9, V + j * dv) == HEED_OK, "push");
        heed_attn_state_output(ctx, &s, out);
        ref_softmax_attention(q, K, V, j + 1, d, dv, 0.9, ref);
        for (int64_t e = 0; e < dv; e++)
            CHECK(fabs(out[e] - ref[e]) < 1e-12, "prefix %lld: %g vs %g", (long long)j, out[e], ref[e]);
    }
    CHECK(s.count == N, "count");
    /* merge: keys split in two halves, pushed in reverse order, combined */
    heed_attn_state_init(ctx, &s, dv, buf);
    heed_attn_state_init(ctx, &t, dv, buf2);
    for (int64_t j = N - 1; j >= 0; j--) {
        double sc = 0;
        for (int64_t i = 0; i < d; i++) sc += 0.9 * q[i] * K[j * d + i];
        float vf[5];
        for (int64_t e = 0; e < dv; e++) vf[e] = (float)V[j * dv + e];
        if (j < 20) heed_attn_state_push(ctx, &s, sc, V + j * dv);
        else heed_attn_state_push_f32(ctx, &t, sc, vf);
    }
    CHECK(heed_attn_state_merge(ctx, &s, &t) == HEED_OK && s.count == N, "merge");
    heed_attn_state_output(ctx, &s, out);
    ref_softmax_attention(q, K, V, N, d, dv, 0.9, ref);
    for (int64_t e = 0; e < dv; e++)
        CHECK(fabs(out[e] - ref[e]) < 1e-6, "merged (f32 values): %g vs %g", out[e], ref[e]);
    /* masked keys, bad scores, bad arguments */
    heed_attn_state_init(ctx, &s, dv, buf);
    CHECK(heed_attn_state_push(ctx, &s, -INFINITY, V) == HEED_OK, "masked key");
    heed_attn_state_output(ctx, &s, out);
    CHECK(out[0] == 0 && s.count == 1, "only masked keys: zeros");
    CHECK(heed_attn_state_push(ctx, &s, 2.0, V) == HEED_OK, "push");
    CHECK_CTX_FAIL(ctx, heed_attn_state_push(ctx, &s, NAN, V), HEED_ERR_NUMERIC,
                   "heed_attn_state_push: score = nan (must be finite, or -inf for a masked key)");
    CHECK_CTX_FAIL(ctx, heed_attn_state_push_f32(ctx, &s, INFINITY, (float[5]){0}), HEED_ERR_NUMERIC,
                   "heed_attn_state_push_f32: score = inf");
    CHECK_CTX_FAIL(ctx, heed_attn_state_push_key(ctx, &s, q, K, d, NAN, V), HEED_ERR_NUMERIC,
                   "heed_attn_state_push_key: score = "); /* NaN, of either sign */
    CHECK(s.count == 2, "rejected keys are not counted");
    heed_attn_state_output(ctx, &s, out);
    for (int64_t e = 0; e < dv; e++) CHECK(out[e] == V[e], "state unchanged by rejected keys");
    /* huge scores stay finite (the max is subtracted) */
    CHECK(heed_attn_state_push(ctx, &s, 1e4, V + dv) == HEED_OK, "huge score");
    heed_attn_state_output(ctx, &s, out);
    CHECK(fabs(out[0] - V[dv]) < 1e-12, "huge score dominates");
    /* bad arguments: the code and the message */
    CHECK_CTX_FAIL(ctx, heed_attn_state_init(ctx, &s, 0, buf), HEED_ERR_ARG,
                   "heed_attn_state_init: dv = 0 (must be >= 1)");
    CHECK_CTX_FAIL(ctx, heed_attn_state_init(ctx, NULL, 3, buf), HEED_ERR_ARG,
                   "heed_attn_state_init: the state is NULL");
    CHECK_CTX_FAIL(ctx, heed_attn_state_init(ctx, &s, 3, NULL), HEED_ERR_ARG,
                   "heed_attn_state_init: the buffer a is NULL");
    CHECK_CTX_FAIL(ctx, heed_attn_state_push(ctx, NULL, 1, V), HEED_ERR_ARG, "heed_attn_state_push: the state is NULL");
    heed_attn_state zeroed = {0};
    CHECK_CTX_FAIL(ctx, heed_attn_state_push(ctx, &zeroed, 1, V), HEED_ERR_ARG,
                   "heed_attn_state_push: the state is not initialised (heed_attn_state_init)");
    heed_attn_state_init(ctx, &s, dv, buf);
    CHECK_CTX_FAIL(ctx, heed_attn_state_push(ctx, &s, 1, NULL), HEED_ERR_ARG,
                   "heed_attn_state_push: the value v is NULL");
    CHECK_CTX_FAIL(ctx, heed_attn_state_push_f32(ctx, &s, 1, NULL), HEED_ERR_ARG,
                   "heed_attn_state_push_f32: the value v is NULL");
    CHECK_CTX_FAIL(ctx, heed_attn_state_push_key(ctx, &s, NULL, K, d, 1, V), HEED_ERR_ARG,
                   "heed_attn_state_push_key: q is NULL");
    CHECK_CTX_FAIL(ctx, heed_attn_state_push_key(ctx, &s, q, NULL, d, 1, V), HEED_ERR_ARG,
                   "heed_attn_state_push_key: k is NULL");
    CHECK_CTX_FAIL(ctx, heed_attn_state_push_key(ctx, &s, q, K, 0, 1, V), HEED_ERR_ARG,
                   "heed_attn_state_push_key: d = 0 (must be >= 1)");
    CHECK_CTX_FAIL(ctx, heed_attn_state_output(ctx, &s, NULL), HEED_ERR_ARG, "heed_attn_state_output: out is NULL");
    CHECK_CTX_FAIL(ctx, heed_attn_state_output(ctx, &zeroed, out), HEED_ERR_ARG,
                   "heed_attn_state_output: the state is not initialised");
    CHECK(s.count == 0, "refused pushes leave the state alone");
    heed_attn_state_init(ctx, &t, 3, buf2);
    CHECK_CTX_FAIL(ctx, heed_attn_state_merge(ctx, &s, &t), HEED_ERR_ARG,
                   "heed_attn_state_merge: s has dv = 5, other dv = 3 (must be equal)");
    CHECK_CTX_FAIL(ctx, heed_attn_state_merge(ctx, &s, NULL), HEED_ERR_ARG, "heed_attn_state_merge: other is NULL");
    CHECK_CTX_FAIL(ctx, heed_attn_state_merge(ctx, &zeroed, &s), HEED_ERR_ARG,
                   "heed_attn_state_merge: s is not initialised");
    CHECK(heed_attn_state_push(NULL, &s, NAN, V) == HEED_ERR_NUMERIC, "NULL ctx: the code only");
    free(q), free(K), free(V);
}

/* ---------------------------------------------------------------- recorded ops */

static const int64_t lens5[5] = {13, 1, 0, 7, 13};

typedef struct {
    int scan; /* 0 recurrent, 1 scan */
    bool shared_q;
    const int64_t *lens;
    double scale;
} op_case;

static heed_tensor *fn_op(heed_graph *g, heed_tensor **x, void *u) {
    const op_case *c = u;
    return c->scan ? heed_attention_scan(g, x[0], x[1], x[2], c->scale, c->lens)
                   : heed_attention_recurrent(g, x[0], x[1], x[2], c->scale, c->lens);
}

/* Both ops against naive softmax attention (1e-12 in f64, far inside the 1e-6 asked),
 * with N = 13 (not a power of two), lengths 0, 1, partial and full, scores up to ~+-40. */
static void ops_equal_softmax(void) {
    heed_rng r = heed_rng_make(12, 0);
    int64_t B = 5, N = 13, d = 4, dv = 3;
    double *q = randn(&r, B * d, 4), *K = randn(&r, B * N * d, 4), *V = randn(&r, B * N * dv, 1);
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *tq = heed_input_f64(g, HEED_F64, HEED_SHAPE(B, d), q),
                *tk = heed_input_f64(g, HEED_F64, HEED_SHAPE(B, N, d), K),
                *tv = heed_input_f64(g, HEED_F64, HEED_SHAPE(B, N, dv), V);
    heed_tensor *rec = heed_attention_recurrent(g, tq, tk, tv, 1.5, lens5);
    heed_tensor *scan = heed_attention_scan(g, tq, tk, tv, 1.5, lens5);
    CHECK(rec && scan, "%s", heed_graph_error(g));
    double worst_rec = 0, worst_scan = 0, ref[3];
    for (int64_t b = 0; b < B && scan; b++) {
        ref_softmax_attention(q + b * d, K + b * N * d, V + b * N * dv, lens5[b], d, dv, 1.5, ref);
        for (int64_t e = 0; e < dv; e++) worst_rec = fmax(worst_rec, check_err(heed_get(rec, b * dv + e), ref[e]));
        for (int64_t i = 0; i < N; i++) {
            if (i < lens5[b]) ref_softmax_attention(q + b * d, K + b * N * d, V + b * N * dv, i + 1, d, dv, 1.5, ref);
            else ref[0] = ref[1] = ref[2] = 0; /* padding positions are zero */
            for (int64_t e = 0; e < dv; e++)
                worst_scan = fmax(worst_scan, check_err(heed_get(scan, (b * N + i) * dv + e), ref[e]));
        }
    }
    CHECK(worst_rec < 1e-12, "recurrent vs softmax: %g", worst_rec);
    CHECK(worst_scan < 1e-12, "scan vs softmax: %g", worst_scan);
    /* heed_attention gives the same: the scan is causal attention with the query repeated
     * at every position, the recurrent op attention with one query */
    double *qrep = malloc((size_t)(B * N * d) * sizeof *qrep);
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < N; i++)
            for (int64_t c = 0; c < d; c++) qrep[(b * N + i) * d + c] = q[b * d + c];
    heed_tensor *k4 = heed_input_f64(g, HEED_F64, HEED_SHAPE(B, 1, N, d), K),
                *v4 = heed_input_f64(g, HEED_F64, HEED_SHAPE(B, 1, N, dv), V);
    heed_tensor *causal = heed_attention(g, heed_input_f64(g, HEED_F64, HEED_SHAPE(B, 1, N, d), qrep), k4, v4,
                                         &(heed_attention_opts){.scale = 1.5, .causal = true}, NULL);
    heed_tensor *single = heed_attention(g, heed_input_f64(g, HEED_F64, HEED_SHAPE(B, 1, 1, d), q), k4, v4,
                                         &(heed_attention_opts){.scale = 1.5, .key_lengths = lens5}, NULL);
    CHECK(causal && single, "%s", heed_graph_error(g));
    double worst_attn = 0;
    for (int64_t b = 0; b < B && causal && single; b++) {
        for (int64_t i = 0; i < lens5[b]; i++) /* scan outputs past the length are zero by definition */
            for (int64_t e = 0; e < dv; e++)
                worst_attn = fmax(worst_attn, check_err(heed_get(scan, (b * N + i) * dv + e),
                                                        heed_get(causal, (b * N + i) * dv + e)));
        for (int64_t e = 0; e < dv; e++)
            worst_attn = fmax(worst_attn, check_err(heed_get(rec, b * dv + e), heed_get(single, b * dv + e)));
    }
    CHECK(worst_attn < 1e-12, "scan and recurrent vs heed_attention: %g", worst_attn);
    free(qrep);
    /* the streaming cell gives the same prefixes */
    double buf[3], out[3];
    heed_attn_state s;
    heed_attn_state_init(ctx, &s, dv, buf);
    for (int64_t i = 0; i < N; i++) {
        heed_attn_state_push_key(ctx, &s, q + 3 * d, K + (3 * N + i) * d, d, 1.5, V + (3 * N + i) * dv);
        heed_attn_state_output(ctx, &s, out);
        if (i < lens5[3])
            for (int64_t e = 0; e < dv; e++)
                CHECK(fabs(out[e] - heed_get(scan, ((3 * N) + i) * dv + e)) < 1e-12, "cell = scan");
    }
    /* one long row (the scan's levels run in parallel) and a power-of-two length */
    for (int64_t n = 1000; n <= 1024; n += 24) {
        heed_graph_reset(g);
        double *q1 = randn(&r, d, 2), *K1 = randn(&r, n * d, 2), *V1 = randn(&r, n * 16, 1);
        heed_tensor *o = heed_attention_scan(g, heed_input_f64(g, HEED_F64, HEED_SHAPE(1, d), q1),
                                             heed_input_f64(g, HEED_F64, HEED_SHAPE(1, n, d), K1),
                                             heed_input_f64(g, HEED_F64, HEED_SHAPE(1, n, 16), V1), 0, NULL);
        CHECK(o != NULL, "%s", heed_graph_error(g));
        double worst = 0, r16[16];
        for (int64_t i = 0; i < n && o; i += 37) {
            ref_softmax_attention(q1, K1, V1, i + 1, d, 16, 0.5, r16);
            for (int64_t e = 0; e < 16; e++) worst = fmax(worst, check_err(heed_get(o, i * 16 + e), r16[e]));
        }
        CHECK(worst < 1e-12, "long scan (n = %lld): %g", (long long)n, worst);
        free(q1), free(K1), free(V1);
    }
    heed_graph_free(g);
    free(q), free(K), free(V);
}

static void gradients(void) {
    for (int scan = 0; scan < 2; scan++)
        for (int shared = 0; shared < 2; shared++) {
            op_case c = {scan, shared, lens5, 0};
            heed_gradcheck_input in[3] = {{shared ? HEED_SHAPE(4) : HEED_SHAPE(5, 4)},
                                          {HEED_SHAPE(5, 13, 4)},
                                          {HEED_SHAPE(5, 13, 3)}};
            CHECK_GRAD(ctx, fn_op, &c, 3, in, NULL);
            check_f32_vs_f64(ctx, fn_op, &c, 3, in, 1e-5, scan ? "scan" : "recurrent");
        }
    /* large scores: the reverse recurrence must stay stable */
    static double big[2 * 9 * 2];
    for (int i = 0; i < 36; i++) big[i] = 6 * sin(1.7 * i + 0.3);
    op_case c = {1, false, NULL, 1.0};
    heed_gradcheck_input in[3] = {{HEED_SHAPE(2, 2), big}, {HEED_SHAPE(2, 9, 2), big}, {HEED_SHAPE(2, 9, 2)}};
    CHECK_GRAD(ctx, fn_op, &c, 3, in, NULL);
    c.scan = 0;
    CHECK_GRAD(ctx, fn_op, &c, 3, in, NULL);
}

/* Scores offset by 0, 1e3, 1e4 and exact in f32: q = (offset, u), k = (1, w) with u, w
 * multiples of 1/16, scale 1. Softmax does not change, and the f32 outputs and gradients
 * stay within 1e-6 of f64 (issue #10; scores, max and log-sum-exp are kept in double). */
static void large_scores(void) {
    static const double offsets[3] = {0, 1e3, 1e4};
    heed_rng r = heed_rng_make(6, 3);
    double q[5 * 4], k[5 * 13 * 4];
    for (int o = 0; o < 3; o++) {
        for (int i = 0; i < 5 * 4; i++) q[i] = i % 4 ? round(16 * (2 * heed_rng_uniform(&r) - 1)) / 16 : offsets[o];
        for (int i = 0; i < 5 * 13 * 4; i++) k[i] = i % 4 ? round(16 * (2 * heed_rng_uniform(&r) - 1)) / 16 : 1;
        heed_gradcheck_input in[3] = {{HEED_SHAPE(5, 4), q}, {HEED_SHAPE(5, 13, 4), k}, {HEED_SHAPE(5, 13, 3)}};
        for (int scan = 0; scan < 2; scan++) {
            char what[48];
            op_case c = {scan, false, lens5, 1.0};
            snprintf(what, sizeof what, "%s offset %g", scan ? "scan" : "recurrent", offsets[o]);
            check_f32_vs_f64_grad(ctx, fn_op, &c, 3, in, 1e-6, what);
        }
    }
}

static void bad_inputs(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *q = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 4)), *k = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5, 4)),
                *v = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5, 3));
    CHECK(heed_attention_scan(g, q, k, v, 0, (int64_t[]){5, 6}) == NULL, "length");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_attention_scan: key_lengths[1] = 6 is out of range [0, 5]");
    q = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3)), k = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5, 4)),
    v = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5, 3));
    CHECK(heed_attention_recurrent(g, q, k, v, 0, NULL) == NULL, "q dims");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_attention_recurrent: q[2,3] must be [B,d] = [2,4]");
    q = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 4)), k = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5, 4)),
    v = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 4, 3));
    CHECK(heed_attention_recurrent(g, q, k, v, 0, NULL) == NULL, "v dims");
    CHECK_ERR(g, HEED_ERR_SHAPE, "v[2,4,3] must be [B,N,dv] = [2,5,?]");
    q = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 4)), k = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5, 4)),
    v = heed_zeros(g, HEED_F64, HEED_SHAPE(2, 5, 3));
    CHECK(heed_attention_scan(g, q, k, v, 0, NULL) == NULL, "dtype");
    CHECK_ERR(g, HEED_ERR_DTYPE, "dtypes must match");
    q = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 4)), k = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5, 4)),
    v = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5, 3));
    CHECK(heed_attention_scan(g, q, k, v, -1, NULL) == NULL, "scale");
    CHECK_ERR(g, HEED_ERR_ARG, "scale = -1");
    CHECK(heed_attention_scan(g, NULL, NULL, NULL, 0, NULL) == NULL, "NULL");
    CHECK_ERR(g, HEED_ERR_ARG, "q is NULL");
    k = heed_zeros(g, HEED_F32, HEED_SHAPE(10, 4));
    CHECK(heed_attention_scan(g, heed_zeros(g, HEED_F32, HEED_SHAPE(4)), k, k, 0, NULL) == NULL, "k 2-D");
    CHECK_ERR(g, HEED_ERR_SHAPE, "k[10,4] must be [B,N,d]");
    /* empty sequences are fine */
    q = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 4)), k = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 0, 4)),
    v = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 0, 3));
    heed_tensor *o = heed_attention_recurrent(g, q, k, v, 0, NULL), *os = heed_attention_scan(g, q, k, v, 0, NULL);
    CHECK(o && os && heed_get(o, 0) == 0 && os->numel == 0, "N = 0: %s", heed_graph_error(g));
    heed_graph_free(g);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 3});
    RUN(streaming_cell);
    RUN(ops_equal_softmax);
    RUN(gradients);
    RUN(large_scores);
    RUN(bad_inputs);
    heed_ctx_free(ctx);
    return check_summary();
}
