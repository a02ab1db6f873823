/* Attention as a recurrence (the online softmax, as in "Attention as an RNN", Feng et al.
 * 2024). For one query q and keys k_1..k_N with scores s_i = scale * q . k_i, the state
 * after i keys is the triple
 *   m_i = max_{j<=i} s_j,   c_i = sum_{j<=i} exp(s_j - m_i),   a_i = sum_{j<=i} exp(s_j - m_i) v_j
 * and the attention output over the first i keys is o_i = a_i / c_i. Adding a key is
 *   m' = max(m, s),  c' = c e^{m-m'} + e^{s-m'},  a' = a e^{m-m'} + v e^{s-m'}
 * and two states (over disjoint key sets) combine associatively the same way:
 *   (m1,c1,a1) + (m2,c2,a2) = (m, c1 e^{m1-m} + c2 e^{m2-m}, a1 e^{m1-m} + a2 e^{m2-m}),
 *   m = max(m1, m2),  identity (-inf, 0, 0).
 * Here:
 *   heed_attn_state_*       the O(dv) cell for streaming inference (no graph, no gradient);
 *   heed_attention_recurrent  the same cell run over a whole sequence as a recorded op
 *                           (output over all keys, backward by recomputation);
 *   heed_attention_scan     every prefix output o_1..o_N at once by a work-efficient
 *                           (Blelloch) parallel prefix scan over the triples: log-depth,
 *                           O(N dv) work; backward by a reverse linear recurrence. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "layers.h"
#include "heed/attention.h"

#include <math.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- the cell */

/* (m, c, a) += (ms, cs, as): the associative combine, in place on the left operand. */
static inline void combine(double *m, double *c, double *a, double ms, double cs, const double *as, int64_t dv) {
    if (ms == -INFINITY) return;
    if (*m == -INFINITY) {
        *m = ms, *c = cs;
        for (int64_t e = 0; e < dv; e++) a[e] = as[e];
        return;
    }
    double mn = *m > ms ? *m : ms, f = exp(*m - mn), fs = exp(ms - mn);
    *c = *c * f + cs * fs;
    for (int64_t e = 0; e < dv; e++) a[e] = a[e] * f + as[e] * fs;
    *m = mn;
}

heed_status heed_attn_state_init(heed_ctx *ctx, heed_attn_state *s, int64_t dv, double *a) {
    static const char *fn = "heed_attn_state_init";
    if (!s || !a) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: %s is NULL", fn, !s ? "the state" : "the buffer a");
    if (dv < 1) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: dv = %lld (must be >= 1)", fn, (long long)dv);
    *s = (heed_attn_state){.dv = dv, .count = 0, .m = -INFINITY, .c = 0, .a = a};
    for (int64_t e = 0; e < dv; e++) a[e] = 0;
    return HEED_OK;
}

/* HEED_OK when s is an initialised state; else the error, in fn's name. */
static heed_status check_state(heed_ctx *ctx, const char *fn, const char *name, const heed_attn_state *s) {
    if (!s) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: %s is NULL", fn, name);
    if (!s->a || s->dv < 1)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: %s is not initialised (heed_attn_state_init)", fn, name);
    return HEED_OK;
}

static heed_status push(heed_ctx *ctx, const char *fn, heed_attn_state *s, double score, const double *vd,
                        const float *vf) {
    heed_status st = check_state(ctx, fn, "the state", s);
    if (st != HEED_OK) return st;
    if (!vd && !vf) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: the value v is NULL", fn);
    if (isnan(score) || score == INFINITY)
        return heed_ctx_fail(ctx, HEED_ERR_NUMERIC, "%s: score = %g (must be finite, or -inf for a masked key)", fn,
                             score);
    s->count++;
    if (score == -INFINITY) return HEED_OK; /* a masked key: weight 0 */
    double mn = s->m > score ? s->m : score, f = s->m == -INFINITY ? 0 : exp(s->m - mn), fs = exp(score - mn);
    s->c = s->c * f + fs;
    for (int64_t e = 0; e < s->dv; e++) s->a[e] = s->a[e] * f + (vd ? vd[e] : (double)vf[e]) * fs;
    s->m = mn;
    return HEED_OK;
}

heed_status heed_attn_state_push(heed_ctx *ctx, heed_attn_state *s, double score, const double *v) {
    return push(ctx, "heed_attn_state_push", s, score, v, NULL);
}
heed_status heed_attn_state_push_f32(heed_ctx *ctx, heed_attn_state *s, double score, const float *v) {
    return push(ctx, "heed_attn_state_push_f32", s, score, NULL, v);
}

heed_status heed_attn_state_push_key(heed_ctx *ctx, heed_attn_state *s, const double *q, const double *k, int64_t d,
                                     double scale, const double *v) {
    static const char *fn = "heed_attn_state_push_key";
    if (!q || !k) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: %s is NULL", fn, !q ? "q" : "k");
    if (d < 1) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: d = %lld (must be >= 1)", fn, (long long)d);
    double dot = 0;
    for (int64_t i = 0; i < d; i++) dot += q[i] * k[i];
    return push(ctx, fn, s, scale * dot, v, NULL);
}

heed_status heed_attn_state_merge(heed_ctx *ctx, heed_attn_state *s, const heed_attn_state *other) {
    static const char *fn = "heed_attn_state_merge";
    heed_status st = check_state(ctx, fn, "s", s);
    if (st == HEED_OK) st = check_state(ctx, fn, "other", other);
    if (st != HEED_OK) return st;
    if (s->dv != other->dv)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: s has dv = %lld, other dv = %lld (must be equal)", fn,
                             (long long)s->dv, (long long)other->dv);
    combine(&s->m, &s->c, s->a, other->m, other->c, other->a, s->dv);
    s->count += other->count;
    return HEED_OK;
}

heed_status heed_attn_state_output(heed_ctx *ctx, const heed_attn_state *s, double *out) {
    static const char *fn = "heed_attn_state_output";
    heed_status st = check_state(ctx, fn, "the state", s);
    if (st != HEED_OK) return st;
    if (!out) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: out is NULL", fn);
    for (int64_t e = 0; e < s->dv; e++) out[e] = s->c > 0 ? s->a[e] / s->c : 0;
    return HEED_OK;
}

double heed_attn_state_logsumexp(const heed_attn_state *s) { return !s || s->c <= 0 ? -INFINITY : s->m + log(s->c); }

/* ---------------------------------------------------------------- shared validation */

typedef struct {
    int64_t B, N, d, dv;
    double scale;
    bool shared_q; /* q is [d], used by every row */
    int64_t *len;  /* [B] */
    double *lse;   /* recurrent: [B]; scan: [B*N] log-sum-exp of each prefix */
} scan_plan;

static bool validate(heed_graph *g, const char *op, heed_tensor *q, heed_tensor *k, heed_tensor *v, double scale,
                     const int64_t *key_lengths, scan_plan *p) {
    if (!heed_check_tensor(g, op, q, "q") || !heed__check_like(g, op, k, "k", q) || !heed__check_like(g, op, v, "v", q))
        return false;
    if (k->ndim != 3 || k->shape[2] < 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: k%s must be [B,N,d] with d >= 1", op, HEED_S(k)), false;
    p->B = k->shape[0], p->N = k->shape[1], p->d = k->shape[2];
    p->shared_q = q->ndim == 1;
    if (p->shared_q ? q->shape[0] != p->d : !(q->ndim == 2 && q->shape[0] == p->B && q->shape[1] == p->d))
        return heed_graph_fail(g, HEED_ERR_SHAPE,
                               "%s: q%s must be [B,d] = [%lld,%lld] (or [d] shared by every row) for k%s", op,
                               HEED_S(q), (long long)p->B, (long long)p->d, HEED_S(k)),
               false;
    if (!HEED__EXPECT(g, op, v, "v", q, "[B,N,dv]", p->B, p->N, -1)) return false;
    p->dv = v->shape[2];
    if (p->dv < 1) return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: v%s must have dv >= 1", op, HEED_S(v)), false;
    if (!(scale >= 0) || isinf(scale))
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: scale = %g (must be finite; 0 means 1/sqrt(d))", op, scale), false;
    p->scale = scale > 0 ? scale : 1 / sqrt((double)p->d);
    p->len = heed__key_lengths(g, op, key_lengths, p->B, p->N);
    return p->len != NULL;
}

/* Inclusive prefix scan of one row's triples by Blelloch's up-sweep / down-sweep on n2 (a
 * power of two >= L) slots: after it, slot i holds the state over keys 0..i. Each level's
 * combines are independent (parallel when `inner`): 2 log2(n2) levels, O(n2) combines. */
static void scan_row(int64_t L, int64_t n2, int64_t dv, double *M, double *C, double *A, const double *s, bool inner,
                     int threads) {
    for (int64_t i = 0; i < n2; i++) {
        M[i] = i < L ? s[i] : -INFINITY; /* leaves: (s_i, 1, v_i), A already holds v_i */
        C[i] = i < L ? 1 : 0;
    }
    for (int64_t d = 1; d < n2; d *= 2) /* up-sweep: slot i becomes the state of its whole subtree */
        _Pragma("omp parallel for if (inner && n2 / (2 * d) * dv > 2048) num_threads(threads)")
    for (int64_t i = 2 * d - 1; i < n2; i += 2 * d)
        combine(&M[i], &C[i], A + i * dv, M[i - d], C[i - d], A + (i - d) * dv, dv);
    /* down-sweep: each slot ends with the state of all keys before its subtree (exclusive
     * prefix); the root starts with the identity. The combine is symmetric, so which
     * operand is written into does not change the result. */
    M[n2 - 1] = -INFINITY, C[n2 - 1] = 0;
    for (int64_t e = 0; e < dv; e++) A[(n2 - 1) * dv + e] = 0;
    for (int64_t d = n2 / 2; d >= 1; d /= 2)
        _Pragma("omp parallel for if (inner && n2 / (2 * d) * dv > 2048) num_threads(threads)")
    for (int64_t i = 2 * d - 1; i < n2; i += 2 * d) {
        /* left child <- parent's prefix; right child <- parent's prefix + left subtree.
             * Swap the slots, then combine the prefix (now left) into the subtree (now right). */
        double ml = M[i - d], cl = C[i - d], *al = A + (i - d) * dv, *ar = A + i * dv;
        M[i - d] = M[i], C[i - d] = C[i];
        M[i] = ml, C[i] = cl;
        for (int64_t e = 0; e < dv; e++) {
            double t = al[e];
            al[e] = ar[e];
            ar[e] = t;
        }
        combine(&M[i], &C[i], ar, M[i - d], C[i - d], al, dv);
    }
}

#define T float
#define FN(name) name##_f32
#include "scan.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "scan.c"
#undef T
#undef FN

/* Adds the per-row dq scratch [B,d] into q's gradient (summed over rows if q is shared). */
static void add_dq(const scan_plan *p, heed_dtype dt, const double *dqs, void *gq_) {
    if (dt == HEED_F32) add_dq_kernel_f32(gq_, p, dqs);
    else add_dq_kernel_f64(gq_, p, dqs);
}

/* ---------------------------------------------------------------- recurrent op */

/* o = a_N / c_N = sum_j p_j v_j with p_j = exp(s_j - L), L = m_N + log c_N. Backward:
 *   dv_j += p_j do,   ds_j = p_j (do . v_j - do . o)   (scores recomputed; only L saved). */
static void recurrent_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *q = nd->in[0], *k = nd->in[1], *v = nd->in[2], *o = nd->out[0];
    const scan_plan *p = nd->saved;
    void *gq_ = heed_grad_buffer(g, q), *gk_ = heed_grad_buffer(g, k), *gv_ = heed_grad_buffer(g, v);
    double *dqs = heed__zalloc(g, (size_t)(p->B * p->d > 0 ? p->B * p->d : 1) * sizeof(double));
    if (!dqs) return;
    if (q->dtype == HEED_F32) recurrent_backward_kernel_f32(q, k, v, o, gk_, gv_, p, g, dqs);
    else recurrent_backward_kernel_f64(q, k, v, o, gk_, gv_, p, g, dqs);
    if (gq_) add_dq(p, q->dtype, dqs, gq_);
}

static const heed_op op_recurrent = {"heed_attention_recurrent", recurrent_backward};

heed_tensor *heed_attention_recurrent(heed_graph *g, heed_tensor *q, heed_tensor *k, heed_tensor *v, double scale,
                                      const int64_t *key_lengths) {
    const char *op = "heed_attention_recurrent";
    scan_plan p;
    if (!validate(g, op, q, k, v, scale, key_lengths, &p)) return NULL;
    heed_tensor *o = heed__new(g, op, q->dtype, 2, (int64_t[]){p.B, p.dv});
    p.lse = heed_graph_alloc(g, (size_t)(p.B > 0 ? p.B : 1) * sizeof(double));
    double *acc = heed_graph_alloc(g, (size_t)(p.B * p.dv > 0 ? p.B * p.dv : 1) * sizeof(double));
    if (!o || !p.lse || !acc) return NULL;
    if (q->dtype == HEED_F32) attention_recurrent_kernel_f32(q, k, v, o, p, g, acc);
    else attention_recurrent_kernel_f64(q, k, v, o, p, g, acc);
    heed_tensor *in[3] = {q, k, v};
    heed_node *nd = heed_record(g, &op_recurrent, 3, in, 1, &o);
    if (nd && (nd->saved = heed_graph_alloc(g, sizeof p))) *(scan_plan *)nd->saved = p;
    return heed_graph_ok(g) ? o : NULL;
}

/* ---------------------------------------------------------------- prefix scan op */

/* o_k = sum_{i<=k} exp(s_i - L_k) v_i with L_k = log-sum-exp of s_0..s_k (nondecreasing in k).
 * Backward, for the gradients do_k of every prefix output:
 *   dv_i = sum_{k>=i} exp(s_i - L_k) do_k = p_i u_i,   p_i = exp(s_i - L_i),
 *   ds_i = sum_{k>=i} exp(s_i - L_k) (do_k . v_i - do_k . o_k) = p_i (v_i . u_i - w_i),
 * with the reverse recurrences (exponents <= 0 since L is nondecreasing)
 *   u_i = do_i + exp(L_i - L_{i+1}) u_{i+1},   w_i = do_i . o_i + exp(L_i - L_{i+1}) w_{i+1}. */
static void scan_backward(heed_graph *g, heed_node *nd) {
    heed_tensor *q = nd->in[0], *k = nd->in[1], *v = nd->in[2], *o = nd->out[0];
    const scan_plan *p = nd->saved;
    void *gq_ = heed_grad_buffer(g, q), *gk_ = heed_grad_buffer(g, k), *gv_ = heed_grad_buffer(g, v);
    double *dqs = heed__zalloc(g, (size_t)(p->B * p->d > 0 ? p->B * p->d : 1) * sizeof(double));
    double *u_all = heed_graph_alloc(g, (size_t)(p->B * p->dv > 0 ? p->B * p->dv : 1) * sizeof(double));
    if (!dqs || !u_all) return;
    if (q->dtype == HEED_F32) scan_backward_kernel_f32(q, k, v, o, gk_, gv_, p, g, u_all, dqs);
    else scan_backward_kernel_f64(q, k, v, o, gk_, gv_, p, g, u_all, dqs);
    if (gq_) add_dq(p, q->dtype, dqs, gq_);
}

static const heed_op op_scan = {"heed_attention_scan", scan_backward};

heed_tensor *heed_attention_scan(heed_graph *g, heed_tensor *q, heed_tensor *k, heed_tensor *v, double scale,
                                 const int64_t *key_lengths) {
    const char *op = "heed_attention_scan";
    scan_plan p;
    if (!validate(g, op, q, k, v, scale, key_lengths, &p)) return NULL;
    int64_t n2 = 1;
    while (n2 < p.N) n2 *= 2;
    heed_tensor *o = heed__zeros(g, op, q->dtype, 3, (int64_t[]){p.B, p.N, p.dv});
    heed_tensor *in[3] = {q, k, v};
    bool record = heed_graph_records(g, 3, in); /* the log-sum-exps are kept only for backward */
    p.lse = record ? heed_graph_alloc(g, (size_t)(p.B * p.N > 0 ? p.B * p.N : 1) * sizeof(double)) : NULL;
    if (!o || (record && !p.lse)) return NULL;
    /* Work space per row: n2 * (dv + 3) doubles; rows run in parallel when there are enough
     * of them, otherwise each level of one row's scan does. */
    int threads = heed_ctx_threads(g->ctx);
    bool rows_parallel = p.B >= threads && p.B > 1;
    int64_t slots = rows_parallel ? p.B : 1;
    size_t per_row = (size_t)n2 * (size_t)(p.dv + 3);
    double *work = malloc(per_row * (size_t)slots * sizeof(double));
    if (!work) return heed_graph_fail(g, HEED_ERR_NOMEM, "%s: out of memory for the scan work space", op), NULL;
    if (q->dtype == HEED_F32) attention_scan_kernel_f32(q, k, v, o, rows_parallel, threads, p, work, per_row, n2);
    else attention_scan_kernel_f64(q, k, v, o, rows_parallel, threads, p, work, per_row, n2);
    free(work);
    heed_node *nd = heed_record(g, &op_scan, 3, in, 1, &o);
    if (nd && (nd->saved = heed_graph_alloc(g, sizeof p))) *(scan_plan *)nd->saved = p;
    return heed_graph_ok(g) ? o : NULL;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

/* Score of key j in row b, in double. */
static inline double FN(score)(const scan_plan *p, const T *Q, const T *K, int64_t b, int64_t j) {
    const T *q = Q + (p->shared_q ? 0 : b * p->d), *k = K + (b * p->N + j) * p->d;
    double s = 0;
    for (int64_t i = 0; i < p->d; i++) s += (double)q[i] * k[i];
    return s * p->scale;
}

/* dq, dk from ds_j (the gradient of score j), shared by both ops:
 *   s_j = scale q . k_j:  dq += scale ds_j k_j,  dk_j += scale ds_j q.
 * dq goes to a per-row scratch (q may be shared by every row). */
static inline void FN(score_backward)(const scan_plan *p, const T *Q, const T *K, T *gk, double *dqrow, int64_t b,
                                      int64_t j, double ds) {
    const T *q = Q + (p->shared_q ? 0 : b * p->d), *k = K + (b * p->N + j) * p->d;
    double f = p->scale * ds;
    for (int64_t i = 0; i < p->d; i++) dqrow[i] += f * k[i];
    if (gk)
        for (int64_t i = 0; i < p->d; i++) gk[(b * p->N + j) * p->d + i] += (T)(f * q[i]);
}

static void FN(add_dq_kernel)(void *gq_, const scan_plan *p, const double *dqs) {
    T *gq = gq_;
    for (int64_t b = 0; b < p->B; b++)
        for (int64_t i = 0; i < p->d; i++) gq[(p->shared_q ? 0 : b * p->d) + i] += (T)dqs[b * p->d + i];
}

static void FN(recurrent_backward_kernel)(heed_tensor *q, heed_tensor *k, heed_tensor *v, heed_tensor *o, void *gk_,
                                          void *gv_, const scan_plan *p, heed_graph *g, double *dqs) {
    const T *Q = q->data, *K = k->data, *V = v->data, *O = o->data, *dO = o->grad;
    T *gk = gk_, *gv = gv_;
#pragma omp parallel for if (p->B * p->N * (p->d + p->dv) > 32768) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t b = 0; b < p->B; b++) {
        const T *dob = dO + b * p->dv, *ob = O + b * p->dv;
        double D = 0;
        for (int64_t e = 0; e < p->dv; e++) D += (double)dob[e] * ob[e];
        for (int64_t j = 0; j < p->len[b]; j++) {
            double pj = exp(FN(score)(p, Q, K, b, j) - p->lse[b]), dp = 0;
            const T *vj = V + (b * p->N + j) * p->dv;
            for (int64_t e = 0; e < p->dv; e++) dp += (double)dob[e] * vj[e];
            if (gv)
                for (int64_t e = 0; e < p->dv; e++) gv[(b * p->N + j) * p->dv + e] += (T)(pj * dob[e]);
            FN(score_backward)(p, Q, K, gk, dqs + b * p->d, b, j, pj * (dp - D));
        }
    }
}

static void FN(attention_recurrent_kernel)(heed_tensor *q, heed_tensor *k, heed_tensor *v, heed_tensor *o, scan_plan p,
                                           heed_graph *g, double *acc) {
    const T *Q = q->data, *K = k->data, *V = v->data;
    T *O = o->data;
#pragma omp parallel for if (p.B * p.N * (p.d + p.dv) > 32768) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t b = 0; b < p.B; b++) {
        /* the O(dv) state: one key at a time */
        double m = -INFINITY, c = 0, *a = acc + b * p.dv;
        for (int64_t e = 0; e < p.dv; e++) a[e] = 0;
        for (int64_t j = 0; j < p.len[b]; j++) {
            double s = FN(score)(&p, Q, K, b, j);
            const T *vj = V + (b * p.N + j) * p.dv;
            double mn = m > s ? m : s, f = m == -INFINITY ? 0 : exp(m - mn), fs = exp(s - mn);
            c = c * f + fs;
            for (int64_t e = 0; e < p.dv; e++) a[e] = a[e] * f + (double)vj[e] * fs;
            m = mn;
        }
        p.lse[b] = c > 0 ? m + log(c) : -INFINITY;
        for (int64_t e = 0; e < p.dv; e++) O[b * p.dv + e] = (T)(c > 0 ? a[e] / c : 0);
    }
}

static void FN(scan_backward_kernel)(heed_tensor *q, heed_tensor *k, heed_tensor *v, heed_tensor *o, void *gk_,
                                     void *gv_, const scan_plan *p, heed_graph *g, double *u_all, double *dqs) {
    const T *Q = q->data, *K = k->data, *V = v->data, *O = o->data, *dO = o->grad;
    T *gk = gk_, *gv = gv_;
#pragma omp parallel for if (p->B * p->N * (p->d + p->dv) > 32768) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t b = 0; b < p->B; b++) {
        double *u = u_all + b * p->dv, w = 0;
        const double *L = p->lse + b * p->N;
        for (int64_t e = 0; e < p->dv; e++) u[e] = 0;
        for (int64_t i = p->len[b] - 1; i >= 0; i--) {
            const T *doi = dO + (b * p->N + i) * p->dv, *oi = O + (b * p->N + i) * p->dv,
                    *vi = V + (b * p->N + i) * p->dv;
            double decay = i + 1 < p->len[b] ? exp(L[i] - L[i + 1]) : 0, dot_o = 0, vu = 0;
            for (int64_t e = 0; e < p->dv; e++) {
                u[e] = doi[e] + decay * u[e];
                dot_o += (double)doi[e] * oi[e];
                vu += (double)vi[e] * u[e];
            }
            w = dot_o + decay * w;
            double pi = exp(FN(score)(p, Q, K, b, i) - L[i]);
            if (gv)
                for (int64_t e = 0; e < p->dv; e++) gv[(b * p->N + i) * p->dv + e] += (T)(pi * u[e]);
            FN(score_backward)(p, Q, K, gk, dqs + b * p->d, b, i, pi * (vu - w));
        }
    }
}

static void FN(attention_scan_kernel)(heed_tensor *q, heed_tensor *k, heed_tensor *v, heed_tensor *o,
                                      bool rows_parallel, int threads, scan_plan p, double *work, size_t per_row,
                                      int64_t n2) {
    const T *Q = q->data, *K = k->data, *V = v->data;
    T *O = o->data;
#pragma omp parallel for if (rows_parallel) num_threads(threads)
    for (int64_t b = 0; b < p.B; b++) {
        double *M = work + (rows_parallel ? b : 0) * per_row, *C = M + n2, *s = C + n2, *A = s + n2;
        int64_t L = p.len[b];
        for (int64_t i = 0; i < L; i++) {
            s[i] = FN(score)(&p, Q, K, b, i);
            for (int64_t e = 0; e < p.dv; e++) A[i * p.dv + e] = V[(b * p.N + i) * p.dv + e];
        }
        for (int64_t i = L * p.dv; i < n2 * p.dv; i++) A[i] = 0;
        if (L > 0) scan_row(L, n2, p.dv, M, C, A, s, !rows_parallel, threads);
        /* slots hold exclusive prefixes; inclusive = exclusive + leaf i */
        for (int64_t i = 0; i < L; i++) {
            const T *vi = V + (b * p.N + i) * p.dv;
            double m = M[i], c = C[i], *a = A + i * p.dv;
            double mn = m > s[i] ? m : s[i], f = m == -INFINITY ? 0 : exp(m - mn), fs = exp(s[i] - mn);
            c = c * f + fs;
            for (int64_t e = 0; e < p.dv; e++) O[(b * p.N + i) * p.dv + e] = (T)((a[e] * f + (double)vi[e] * fs) / c);
            if (p.lse) p.lse[b * p.N + i] = mn + log(c);
        }
    }
}
#endif
