/* LSTM and GRU stacks over whole sequences (torch.nn.LSTM / GRU): multi-layer, uni- or
 * bidirectional, per-sequence lengths, dropout between layers. The whole stack is ONE
 * recorded op that saves, per layer and direction, the gate activations [T,B,4H] and the
 * state histories h, c [T,B,H]. When nothing is recorded (no-grad, or no input needs a
 * gradient) nothing is kept: every layer reuses one gate buffer and a two-step ring of
 * states per direction.
 *
 * Forward, per layer: gates = X W_ih^T for all T*B rows in one GEMM; then per step one
 * GEMM rec = h_prev W_hh^T and one fused gate kernel that adds the biases (ops/rnn/gates.c).
 * Backward, per layer from the top, per step in reverse: the gate kernel gives dA_t from
 * dh (running + dy_t) and dc; then dh_prev = direct + dA_t W_hh (one GEMM). After the loop,
 * over all steps at once:  dW_ih += dA^T X,  dW_hh += dA[shifted]^T H_hist,  dX = dA W_ih,
 * db = column sums of dA.
 *
 * Lengths: a row past its sequence's end (t >= len[b]) carries its state unchanged and
 * outputs 0. The state histories keep the carried values, so the h_prev of any step is the
 * history at the previous time index (or h0 at the direction's first index), including for
 * the reverse direction, which starts from h0 at its own end. Inactive rows get zero gate
 * gradients, so the all-steps weight GEMMs need no masking.
 *
 * batch_first: only the user's x, y and their gradients are batch-major ([B,T,.]); the
 * saved buffers stay time-major. The GEMMs over all steps that read x or write dx run
 * as one strided GEMM per index of the shorter of T and B (rows_gemm), the step kernels
 * write y and read dy with the batch-major row stride: no copy of x or y is made.
 *
 * Threads: each direction runs on its own threads. Within a direction the threads split
 * the batch rows when each gets at least 8 (sequences are independent: no thread ever
 * waits for another until the layer ends); otherwise they split the hidden units: a
 * thread computes the recurrent GEMM for the gate rows of its units (W_hh repacked so they
 * are contiguous) and their gate kernel, and a barrier per step publishes the new h; in
 * backward it computes dA for its units and, after a barrier, the columns of dh_prev for
 * its units. The GEMMs inside the step loops are single-threaded BLAS calls; those over
 * all steps use the BLAS's own threads. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "rnn.h"
#include "heed/shape.h"
#include "../gemm.h"

#include <omp.h>

#define MAXL HEED_RNN_MAX_LAYERS
#define MAX_PARTS 16

typedef struct {
    heed_rnn_kind kind;
    int L, D, G;
    int64_t T, B, I, H;
    bool lstm;
    bool bf;            /* batch_first: x and y are [B,T,.] */
    const int64_t *len; /* arena copy; NULL = all T */
    bool drop;          /* dropout between layers applied */
    bool ring;          /* not recorded: Hs, Cs hold 2 steps, buffers shared by the layers */
    double p;
    uint64_t seed, stream; /* stream + l masks the output of layer l */
    heed_tensor *x, *h0, *c0;
    heed_rnn w;
    void *X[MAXL]; /* layer inputs [T,B,In]; X[0] is x's data */
    void *gates[MAXL][2], *Hs[MAXL][2], *Cs[MAXL][2];
} layer_saved;

/* One layer's recurrence, forward or backward: what every work item needs. A work item is
 * (direction, block of batch rows, block of hidden units); only one of the two splits is
 * used at a time. */
typedef struct {
    const layer_saved *sv;
    int threads; /* heed_ctx_threads: the most any region of the layer uses */
    int l, rparts, uparts;
    int64_t r0[MAX_PARTS + 1]; /* rows of row block k: [r0[k], r0[k+1]) */
    int64_t u0[MAX_PARTS + 1]; /* units of unit block k: [u0[k], u0[k+1]) */
    const void *wp[2];         /* forward: W_hh with each unit block's gate rows together */
    void *rec[2];              /* forward: [B, G*H]; item (rows b0.., units j0..) at b0*G*H + B*G*j0 */
    void *bias[2];             /* forward: the folded bias [G*H] or NULL */
    void *y;                   /* forward: the layer's output [T,B,D*H] ([B,T,D*H] if y_bm) */
    const void *dy;            /* backward: gradient of the layer's output (laid out as y) */
    bool y_bm;                 /* the layer's output is the user's batch-major y */
    void *dh[2], *dc[2], *dgi[2], *dgh[2];
} recur;

typedef struct {
    int d;
    int64_t b0, nb, j0, nk;
} item;

static size_t esz(const layer_saved *sv) { return heed_dtype_size(sv->x->dtype); }
#define AT(p, elems) ((void *)((char *)(p) + (size_t)(elems)*es))

static item item_of(const recur *rc, int i) {
    int per_dir = rc->rparts * rc->uparts, rk = i % per_dir / rc->uparts, uk = i % rc->uparts;
    return (item){.d = i / per_dir,
                  .b0 = rc->r0[rk],
                  .nb = rc->r0[rk + 1] - rc->r0[rk],
                  .j0 = rc->u0[uk],
                  .nk = rc->u0[uk + 1] - rc->u0[uk]};
}

/* Rows b0.. of state slot idx (layer*D + dir) of h0 / c0, or NULL. */
static const void *state0(const heed_tensor *t, int64_t idx, int64_t B, int64_t H, int64_t b0, size_t es) {
    return t ? (const char *)t->data + (size_t)((idx * B + b0) * H) * es : NULL;
}

/* Row (t, b) of a [T,B,.] (time-major) or [B,T,.] (batch-major) buffer is row
 * t * ts + b * bs. */
typedef struct {
    int64_t ts, bs;
} rows_of;

static rows_of rows_layout(bool batch_major, int64_t T, int64_t B) {
    return batch_major ? (rows_of){1, T} : (rows_of){B, 1};
}

/* The T*B rows (t, b) of two buffers walked as runs of evenly spaced rows: all rows at
 * once when both have the same layout, else one run per index of the shorter of T and B
 * (over the longer). Run i starts at row start(r, i) of a buffer laid out by r, its rows
 * stride(r) apart. */
typedef struct {
    bool same, by_t;
    int64_t runs, len;
} row_runs;

static row_runs plan_runs(rows_of a, rows_of b, int64_t T, int64_t B) {
    bool same = a.ts == b.ts && a.bs == b.bs, by_t = T <= B;
    return (row_runs){same, by_t, same ? 1 : by_t ? T : B, same ? T * B : by_t ? B : T};
}
static int64_t run_start(row_runs p, rows_of r, int64_t i) { return p.same ? 0 : i * (p.by_t ? r.ts : r.bs); }
static int64_t run_stride(row_runs p, rows_of r) { return p.same ? 1 : p.by_t ? r.bs : r.ts; }

/* C[rows, N] = A[rows, K] op(W) + beta C, A's rows laid out by ra and C's by rc. */
static void gemm_rows_m(heed_dtype dt, int64_t T, int64_t B, int64_t N, int64_t K, const void *A, rows_of ra,
                        int64_t lda, const void *W, bool tw, int64_t ldw, double beta, void *C, rows_of rc,
                        int64_t ldc) {
    size_t es = heed_dtype_size(dt);
    row_runs p = plan_runs(ra, rc, T, B);
    for (int64_t i = 0; i < p.runs; i++)
        heed_gemm(dt, false, tw, p.len, N, K, 1, AT(A, run_start(p, ra, i) * lda), run_stride(p, ra) * lda, W, ldw,
                  beta, AT(C, run_start(p, rc, i) * ldc), run_stride(p, rc) * ldc);
}

/* C[M, N] += A[rows, M]^T Bm[rows, N], A's rows laid out by ra and Bm's by rb. */
static void gemm_rows_k(heed_dtype dt, int64_t T, int64_t B, int64_t M, int64_t N, const void *A, rows_of ra,
                        int64_t lda, const void *Bm, rows_of rb, int64_t ldb, void *C, int64_t ldc) {
    size_t es = heed_dtype_size(dt);
    row_runs p = plan_runs(ra, rb, T, B);
    for (int64_t i = 0; i < p.runs; i++)
        heed_gemm(dt, true, false, M, N, p.len, 1, AT(A, run_start(p, ra, i) * lda), run_stride(p, ra) * lda,
                  AT(Bm, run_start(p, rb, i) * ldb), run_stride(p, rb) * ldb, 1, C, ldc);
}

/* Time index of step s of direction d, and the index whose state is its h_prev (-1: h0). */
static int64_t time_of(const layer_saved *sv, int d, int64_t s) { return d == 0 ? s : sv->T - 1 - s; }
static int64_t prev_of(const layer_saved *sv, int d, int64_t t) {
    int64_t p = d == 0 ? t - 1 : t + 1;
    return p < 0 || p >= sv->T ? -1 : p;
}

/* The slot of time t in the state histories: t, or t mod 2 in a ring (not recorded). */
static int64_t hist(const layer_saved *sv, int64_t t) { return sv->ring ? t & 1 : t; }

/* h_prev and c_prev of time t for rows b0.. of direction d */
static void prev_states(const layer_saved *sv, int l, int d, int64_t t, int64_t b0, const void **hp, const void **cp) {
    size_t es = esz(sv);
    int64_t B = sv->B, H = sv->H, tp = prev_of(sv, d, t);
    if (tp >= 0) {
        *hp = AT(sv->Hs[l][d], (hist(sv, tp) * B + b0) * H);
        *cp = sv->lstm ? AT(sv->Cs[l][d], (hist(sv, tp) * B + b0) * H) : NULL;
    } else {
        *hp = state0(sv->h0, l * sv->D + d, B, H, b0, es);
        *cp = state0(sv->c0, l * sv->D + d, B, H, b0, es);
    }
}

/* Row (t, b) of the layer's output (and its gradient), and the distance between rows b
 * and b + 1 of one step, in elements. */
static int64_t y_row(const recur *rc, int64_t t, int64_t b) {
    rows_of r = rows_layout(rc->y_bm, rc->sv->T, rc->sv->B);
    return t * r.ts + b * r.bs;
}
static int64_t y_ld(const recur *rc) { return rows_layout(rc->y_bm, rc->sv->T, rc->sv->B).bs * rc->sv->D * rc->sv->H; }

static void fwd_item(const recur *rc, item it, int64_t s) {
    const layer_saved *sv = rc->sv;
    size_t es = esz(sv);
    int l = rc->l, G = sv->G, d = it.d;
    int64_t B = sv->B, H = sv->H, t = time_of(sv, d, s), b0 = it.b0, j0 = it.j0, nk = it.nk;
    const void *hp, *cp;
    prev_states(sv, l, d, t, b0, &hp, &cp);
    void *rec = NULL;
    if (hp) { /* rec[nb, G*nk] = h_prev[rows] @ (this block's gate rows of W_hh)^T */
        rec = AT(rc->rec[d], b0 * G * H + B * G * j0);
        heed_gemm(sv->x->dtype, false, true, it.nb, G * nk, H, 1, hp, H, AT(rc->wp[d], G * j0 * H), H, 0, rec, G * nk);
    }
    const void *b_hh = sv->w.b_hh[l][d] ? sv->w.b_hh[l][d]->data : NULL;
    rnn_fwd_step st = {.dtype = sv->x->dtype,
                       .kind = sv->kind,
                       .B = it.nb,
                       .H = H,
                       .gates = AT(sv->gates[l][d], (t * B + b0) * 4 * H),
                       .rec = rec,
                       .rec_ld = G * nk,
                       .rec_gs = nk,
                       .rec_j0 = j0,
                       .bias = rc->bias[d],
                       .b_hn = !sv->lstm && b_hh ? AT(b_hh, 2 * H) : NULL,
                       .h_prev = hp,
                       .c_prev = cp,
                       .h_out = AT(sv->Hs[l][d], (hist(sv, t) * B + b0) * H),
                       .c_out = sv->lstm ? AT(sv->Cs[l][d], (hist(sv, t) * B + b0) * H) : NULL,
                       .y = AT(rc->y, (y_row(rc, t, b0) * sv->D + d) * H),
                       .y_ld = y_ld(rc),
                       .len = sv->len ? sv->len + b0 : NULL,
                       .t = t};
    heed__rnn_fwd_step(&st, j0, j0 + nk);
}

static void bwd_kernel_item(const recur *rc, item it, int64_t s) {
    const layer_saved *sv = rc->sv;
    size_t es = esz(sv);
    int l = rc->l, G = sv->G, d = it.d;
    int64_t B = sv->B, H = sv->H, t = time_of(sv, d, sv->T - 1 - s), b0 = it.b0;
    const void *hp, *cp;
    prev_states(sv, l, d, t, b0, &hp, &cp);
    rnn_bwd_step st = {.dtype = sv->x->dtype,
                       .kind = sv->kind,
                       .B = it.nb,
                       .H = H,
                       .gates = AT(sv->gates[l][d], (t * B + b0) * 4 * H),
                       .c_t = sv->lstm ? AT(sv->Cs[l][d], (t * B + b0) * H) : NULL,
                       .h_prev = hp,
                       .c_prev = cp,
                       .dy = rc->dy ? AT(rc->dy, (y_row(rc, t, b0) * sv->D + d) * H) : NULL,
                       .dy_ld = y_ld(rc),
                       .dh = AT(rc->dh[d], b0 * H),
                       .dc = sv->lstm ? AT(rc->dc[d], b0 * H) : NULL,
                       .dgi = AT(rc->dgi[d], (t * B + b0) * G * H),
                       .dgh = AT(rc->dgh[d], (t * B + b0) * G * H),
                       .len = sv->len ? sv->len + b0 : NULL,
                       .t = t};
    heed__rnn_bwd_step(&st, it.j0, it.j0 + it.nk);
}

/* dh[rows, units] += dgh_t[rows, GH] @ W_hh[GH, units] */
static void bwd_gemm_item(const recur *rc, item it, int64_t s) {
    const layer_saved *sv = rc->sv;
    size_t es = esz(sv);
    int64_t B = sv->B, H = sv->H, GH = sv->G * H, t = time_of(sv, it.d, sv->T - 1 - s);
    heed_gemm(sv->x->dtype, false, false, it.nb, it.nk, GH, 1, AT(rc->dgh[it.d], (t * B + it.b0) * GH), GH,
              AT(sv->w.w_hh[rc->l][it.d]->data, it.j0), H, 1, AT(rc->dh[it.d], it.b0 * H + it.j0), H);
}

/* Runs every step of every item. Items of one step are independent; when the units are
 * split, a barrier separates steps (and, in backward, the kernel from the GEMM, which
 * needs all of dA_t); row blocks never wait for each other. */
static void run_steps(const recur *rc, bool backward) {
    const layer_saved *sv = rc->sv;
    /* the items were planned for rc->threads (plan_parts); any team runs them alike, so a
     * busy machine gets fewer threads (heed__cpus_free) without changing a result */
    int n_items = sv->D * rc->rparts * rc->uparts, nt = rc->threads, free_cpus = heed__cpus_free();
    if (nt > free_cpus) nt = free_cpus;
    if (nt > n_items) nt = n_items;
    /* tiny steps: waking threads would cost more than the work */
    if (2.0 * (double)(sv->D * sv->B * sv->G) * (double)sv->H * (double)(sv->H + 8) < 2e5) nt = 1;
    bool sync = rc->uparts > 1;
    int64_t T = sv->T;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        if (!sync) { /* every item runs its steps on its own */
            for (int i = tid; i < n_items; i += nth)
                for (int64_t s = 0; s < T; s++) {
                    if (backward) {
                        bwd_kernel_item(rc, item_of(rc, i), s);
                        bwd_gemm_item(rc, item_of(rc, i), s);
                    } else {
                        fwd_item(rc, item_of(rc, i), s);
                    }
                }
        } else {
            for (int64_t s = 0; s < T; s++) {
                for (int i = tid; i < n_items; i += nth) {
                    if (backward) bwd_kernel_item(rc, item_of(rc, i), s);
                    else fwd_item(rc, item_of(rc, i), s);
                }
#pragma omp barrier
                if (backward)
                    for (int i = tid; i < n_items; i += nth) bwd_gemm_item(rc, item_of(rc, i), s);
            }
        }
    }
}

/* Splits the work of a direction over the threads left after one per direction: by
 * batch rows when every block keeps at least 8 rows (the blocks never wait for each
 * other, which also keeps a shared, busy machine from stalling every step), else by
 * hidden units in whole 8-lane blocks (a barrier per step). */
static void plan_parts(recur *rc) {
    const layer_saved *sv = rc->sv;
    int parts = rc->threads / sv->D;
    double step_flops = 2.0 * (double)sv->B * (double)sv->G * (double)sv->H * (double)sv->H;
    if (parts < 1 || step_flops < 4e5) parts = 1;
    if (parts > MAX_PARTS) parts = MAX_PARTS;
    int64_t blocks = (sv->H + 7) / 8;
    bool rows = sv->B >= 8 * parts;
    if (!rows && parts > blocks) parts = (int)blocks;
    rc->rparts = rows ? parts : 1;
    rc->uparts = rows ? 1 : parts;
    for (int k = 0; k <= rc->rparts; k++) rc->r0[k] = sv->B * k / rc->rparts;
    for (int k = 0; k <= rc->uparts; k++) {
        int64_t u = blocks * k / rc->uparts * 8;
        rc->u0[k] = u < sv->H ? u : sv->H;
    }
}

/* ---------------------------------------------------------------- dropout between layers */

#define T float
#define FN(name) name##_f32
#include "layer.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "layer.c"
#undef T
#undef FN

/* out = in * keep / (1 - p), keep = uniform(seed, stream, i) >= p (regenerated in backward) */
static void drop_mask(heed_dtype dt, const void *in, void *out, int64_t n, uint64_t seed, uint64_t stream, double p,
                      int threads) {
    if (dt == HEED_F32) drop_mask_kernel_f32(in, out, p, n, threads, seed, stream);
    else drop_mask_kernel_f64(in, out, p, n, threads, seed, stream);
}

/* ---------------------------------------------------------------- backward */

static void add_into(heed_dtype dt, void *dst, const void *src, int64_t n) {
    if (dt == HEED_F32) add_into_kernel_f32(dst, src, n);
    else add_into_kernel_f64(dst, src, n);
}

static void layer_backward(heed_graph *g, heed_node *n) {
    const layer_saved *sv = n->saved;
    heed_dtype dt = sv->x->dtype;
    size_t es = esz(sv);
    int L = sv->L, D = sv->D, G = sv->G;
    int64_t T = sv->T, B = sv->B, H = sv->H, GH = G * H, TB = T * B;
    heed_tensor *y = n->out[0], *hn = n->out[1], *cn = sv->lstm ? n->out[2] : NULL;
    void *gx = heed_grad_buffer(g, sv->x), *gh0 = heed_grad_buffer(g, sv->h0), *gc0 = heed_grad_buffer(g, sv->c0);
    const void *dY = y->grad; /* gradient of layer l's output */
    for (int l = L - 1; l >= 0 && heed_graph_ok(g); l--) {
        int64_t In = l == 0 ? sv->I : D * H;
        recur rc = {.sv = sv, .threads = heed_ctx_threads(g->ctx), .l = l, .dy = dY, .y_bm = sv->bf && l == L - 1};
        rows_of x_rows = rows_layout(sv->bf && l == 0, T, B), tm = rows_layout(false, T, B);
        plan_parts(&rc);
        for (int d = 0; d < D; d++) {
            rc.dh[d] = heed_graph_alloc(g, (size_t)(B * H) * es);
            rc.dc[d] = sv->lstm ? heed_graph_alloc(g, (size_t)(B * H) * es) : NULL;
            rc.dgi[d] = heed_graph_alloc(g, (size_t)(TB * GH) * es);
            rc.dgh[d] = sv->lstm ? rc.dgi[d] : heed_graph_alloc(g, (size_t)(TB * GH) * es);
            if (!heed_graph_ok(g)) return;
            int64_t idx = l * D + d;
            memcpy(rc.dh[d], AT(hn->grad, idx * B * H), (size_t)(B * H) * es);
            if (cn) memcpy(rc.dc[d], AT(cn->grad, idx * B * H), (size_t)(B * H) * es);
        }
        run_steps(&rc, true);
        /* the input of layer l (for l > 0, the dropped output of layer l - 1) gets dX */
        void *dX = l > 0 ? heed_graph_alloc(g, (size_t)(TB * In) * es) : gx;
        if (!heed_graph_ok(g)) return;
        for (int d = 0; d < D; d++) {
            int64_t idx = l * D + d;
            const void *h0 = state0(sv->h0, idx, B, H, 0, es);
            if (gh0) add_into(dt, AT(gh0, idx * B * H), rc.dh[d], B * H);
            if (gc0) add_into(dt, AT(gc0, idx * B * H), rc.dc[d], B * H);
            heed_tensor *w_ih = sv->w.w_ih[l][d], *w_hh = sv->w.w_hh[l][d];
            void *gw_ih = heed_grad_buffer(g, w_ih), *gw_hh = heed_grad_buffer(g, w_hh);
            void *gb_ih = heed_grad_buffer(g, sv->w.b_ih[l][d]), *gb_hh = heed_grad_buffer(g, sv->w.b_hh[l][d]);
            if (gw_ih) gemm_rows_k(dt, T, B, GH, In, rc.dgi[d], tm, GH, sv->X[l], x_rows, In, gw_ih, In);
            if (gw_hh) {
                /* h_prev of time t is the history at t -+ 1: one GEMM over the shifted
                 * histories, plus h0 for the direction's first time index */
                int64_t first = d == 0 ? 0 : T - 1;
                const void *dg_rest = d == 0 ? AT(rc.dgh[d], B * GH) : rc.dgh[d];
                const void *h_rest = d == 0 ? sv->Hs[l][d] : AT(sv->Hs[l][d], B * H);
                if (T > 1) heed_gemm(dt, true, false, GH, H, (T - 1) * B, 1, dg_rest, GH, h_rest, H, 1, gw_hh, H);
                if (h0) heed_gemm(dt, true, false, GH, H, B, 1, AT(rc.dgh[d], first * B * GH), GH, h0, H, 1, gw_hh, H);
            }
            if (gb_ih) heed__rnn_colsum_add(dt, rc.dgi[d], TB, GH, GH, gb_ih, heed_ctx_threads_now(g->ctx));
            if (gb_hh) heed__rnn_colsum_add(dt, rc.dgh[d], TB, GH, GH, gb_hh, heed_ctx_threads_now(g->ctx));
            if (dX)
                gemm_rows_m(dt, T, B, In, GH, rc.dgi[d], tm, GH, w_ih->data, false, In, l > 0 && d == 0 ? 0 : 1, dX,
                            x_rows, In);
        }
        if (l > 0 && sv->drop)
            drop_mask(dt, dX, dX, TB * In, sv->seed, sv->stream + (uint64_t)(l - 1), sv->p,
                      heed_ctx_threads_now(g->ctx));
        dY = dX;
    }
}

static const heed_op op_lstm = {"heed_lstm", layer_backward};
static const heed_op op_gru = {"heed_gru", layer_backward};

/* ---------------------------------------------------------------- forward */

static bool check_weight(heed_graph *g, const char *op, const heed_tensor *t, const char *what, int l, int d,
                         const heed_tensor *x, int ndim, int64_t d0, int64_t d1) {
    char name[64];
    snprintf(name, sizeof name, "%s_l%d%s", what, l, d ? "_reverse" : "");
    if (!heed__check_like(g, op, t, name, x)) return false;
    if (t->ndim != ndim || t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1)) {
        if (ndim == 2)
            heed_graph_fail(g, HEED_ERR_SHAPE, "%s: rnn %s is %s, must be [%lld, %lld]", op, name, HEED_S(t),
                            (long long)d0, (long long)d1);
        else heed_graph_fail(g, HEED_ERR_SHAPE, "%s: rnn %s is %s, must be [%lld]", op, name, HEED_S(t), (long long)d0);
        return false;
    }
    return true;
}

static bool check_state(heed_graph *g, const char *op, const heed_tensor *s, const char *name, const heed_tensor *x,
                        int64_t n, int64_t B, int64_t H) {
    if (!s) return true;
    if (!heed__check_like(g, op, s, name, x)) return false;
    if (s->ndim != 3 || s->shape[0] != n || s->shape[1] != B || s->shape[2] != H) {
        heed_graph_fail(g, HEED_ERR_SHAPE, "%s: %s%s must be [layers*dirs, batch, hidden] = [%lld, %lld, %lld]", op,
                        name, HEED_S(s), (long long)n, (long long)B, (long long)H);
        return false;
    }
    return true;
}

bool heed__rnn_check_lengths(heed_graph *g, const char *op, const int64_t *lengths, const heed_tensor *x, int64_t B,
                             int64_t T) {
    for (int64_t b = 0; lengths && b < B; b++)
        if (lengths[b] < 1 || lengths[b] > T) {
            heed_graph_fail(g, HEED_ERR_ARG, "%s: lengths[%lld] = %lld for x%s (each must be in 1..T = %lld)", op,
                            (long long)b, (long long)lengths[b], HEED_S(x), (long long)T);
            return false;
        }
    return true;
}

static heed_tensor *stack(heed_graph *g, heed_rnn_kind kind, const heed_rnn *rnn, heed_tensor *x, heed_tensor *h0,
                          heed_tensor *c0, const int64_t *lengths, heed_tensor **h_n, heed_tensor **c_n) {
    const char *op = kind == HEED_RNN_LSTM ? "heed_lstm" : "heed_gru";
    bool lstm = kind == HEED_RNN_LSTM;
    if (h_n) *h_n = NULL;
    if (c_n) *c_n = NULL;
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    if (!rnn) return heed_graph_fail(g, HEED_ERR_ARG, "%s: rnn is NULL", op), NULL;
    const heed_rnn_opts *o = &rnn->opts;
    if (o->kind != kind)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: rnn was declared as %s", op,
                               o->kind == HEED_RNN_LSTM ? "an LSTM" : "a GRU"),
               NULL;
    int L = o->layers ? o->layers : 1, D = o->bidirectional ? 2 : 1, G = heed__rnn_gates(kind);
    if (L < 1 || L > MAXL) return heed_graph_fail(g, HEED_ERR_ARG, "%s: rnn has %d layers (1..%d)", op, L, MAXL), NULL;
    if (!(o->dropout >= 0 && o->dropout < 1))
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: rnn dropout %g (must be in [0, 1))", op, o->dropout), NULL;
    int64_t H = o->hidden_size, I = o->input_size;
    if (H < 1 || I < 1)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: rnn input_size %lld, hidden_size %lld (must be >= 1)", op,
                               (long long)I, (long long)H),
               NULL;
    bool bf = o->batch_first;
    if (x->ndim != 3 || x->shape[2] != I || x->shape[0] < 1 || x->shape[1] < 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: x%s must be [%s, %lld]%s with T, batch >= 1", op, HEED_S(x),
                               bf ? "batch, T" : "T, batch", (long long)I, bf ? " (batch_first)" : ""),
               NULL;
    int64_t T = x->shape[bf ? 1 : 0], B = x->shape[bf ? 0 : 1];
    for (int l = 0; l < L; l++)
        for (int d = 0; d < D; d++) {
            int64_t in = l == 0 ? I : D * H;
            if (!check_weight(g, op, rnn->w_ih[l][d], "weight_ih", l, d, x, 2, G * H, in) ||
                !check_weight(g, op, rnn->w_hh[l][d], "weight_hh", l, d, x, 2, G * H, H))
                return NULL;
            if (o->no_bias) continue;
            if (!check_weight(g, op, rnn->b_ih[l][d], "bias_ih", l, d, x, 1, G * H, 0) ||
                !check_weight(g, op, rnn->b_hh[l][d], "bias_hh", l, d, x, 1, G * H, 0))
                return NULL;
        }
    if (!check_state(g, op, h0, "h0", x, L * D, B, H) || !check_state(g, op, c0, "c0", x, L * D, B, H)) return NULL;
    if (!heed__rnn_check_lengths(g, op, lengths, x, B, T)) return NULL;

    heed_dtype dt = x->dtype;
    size_t es = heed_dtype_size(dt);
    int64_t TB = T * B, GH = G * H;
    heed_tensor *y = heed__new(g, op, dt, 3, bf ? (int64_t[]){B, T, D * H} : (int64_t[]){T, B, D * H});
    heed_tensor *hn = heed__new(g, op, dt, 3, (int64_t[]){L * D, B, H});
    heed_tensor *cn = lstm ? heed__new(g, op, dt, 3, (int64_t[]){L * D, B, H}) : NULL;
    layer_saved *sv = heed__zalloc(g, sizeof *sv);
    int64_t *len = lengths ? heed_graph_alloc(g, (size_t)B * sizeof *len) : NULL;
    if (!heed_graph_ok(g)) return NULL;
    if (len) memcpy(len, lengths, (size_t)B * sizeof *len);
    *sv = (layer_saved){.kind = kind,
                        .L = L,
                        .D = D,
                        .G = G,
                        .T = T,
                        .B = B,
                        .I = I,
                        .H = H,
                        .lstm = lstm,
                        .bf = bf,
                        .len = len,
                        .x = x,
                        .h0 = h0,
                        .c0 = lstm ? c0 : NULL,
                        .w = *rnn,
                        .p = o->dropout,
                        .seed = g->ctx->seed};
    sv->w.opts.layers = L;
    if (o->no_bias)
        for (int l = 0; l < L; l++) sv->w.b_ih[l][0] = sv->w.b_ih[l][1] = sv->w.b_hh[l][0] = sv->w.b_hh[l][1] = NULL;
    sv->drop = g->training && o->dropout > 0 && L > 1;
    if (sv->drop) {
        sv->stream = heed__next_stream(g->ctx);
        for (int l = 1; l < L - 1; l++) heed__next_stream(g->ctx); /* one stream per layer boundary */
    }
    int n_in = 0;
    heed_tensor **in = heed_graph_alloc(g, (size_t)(3 + 4 * L * D) * sizeof *in);
    if (!in) return NULL;
    in[n_in++] = x;
    if (h0) in[n_in++] = h0;
    if (lstm && c0) in[n_in++] = c0;
    for (int l = 0; l < L; l++)
        for (int d = 0; d < D; d++) {
            heed_tensor *ws[4] = {rnn->w_ih[l][d], rnn->w_hh[l][d], o->no_bias ? NULL : rnn->b_ih[l][d],
                                  o->no_bias ? NULL : rnn->b_hh[l][d]};
            for (int k = 0; k < 4; k++)
                if (ws[k]) in[n_in++] = ws[k];
        }
    /* Not recorded: the gates and a two-step ring of states are scratch shared by all
     * layers, and the outputs of the layers below the last alternate between two buffers. */
    sv->ring = !heed_graph_records(g, n_in, in);
    void *ybuf[2] = {NULL, NULL};
    sv->X[0] = x->data;
    for (int l = 0; l < L && heed_graph_ok(g); l++) {
        int64_t In = l == 0 ? I : D * H, steps = sv->ring ? 2 : T;
        void *yl = l == L - 1                ? y->data
                   : sv->ring && ybuf[l & 1] ? ybuf[l & 1]
                                             : heed_graph_alloc(g, (size_t)(TB * D * H) * es);
        ybuf[l & 1] = yl;
        recur rc = {.sv = sv, .threads = heed_ctx_threads(g->ctx), .l = l, .y = yl, .y_bm = sv->bf && l == L - 1};
        plan_parts(&rc);
        for (int d = 0; d < D; d++) {
            bool fresh = !sv->ring || l == 0;
            sv->gates[l][d] = fresh ? heed_graph_alloc(g, (size_t)(TB * 4 * H) * es) : sv->gates[0][d];
            sv->Hs[l][d] = fresh ? heed_graph_alloc(g, (size_t)(steps * B * H) * es) : sv->Hs[0][d];
            sv->Cs[l][d] = !lstm ? NULL : fresh ? heed_graph_alloc(g, (size_t)(steps * B * H) * es) : sv->Cs[0][d];
            rc.rec[d] = heed_graph_alloc(g, (size_t)(B * GH) * es);
            rc.wp[d] = rc.uparts > 1 ? heed_graph_alloc(g, (size_t)(GH * H) * es) : sv->w.w_hh[l][d]->data;
            if (!heed_graph_ok(g)) return NULL;
            /* input projection of every step: gates = X W_ih^T, one GEMM (the kernel adds the bias) */
            const heed_tensor *bi = sv->w.b_ih[l][d], *bh = sv->w.b_hh[l][d];
            rc.bias[d] = bi || bh ? heed_graph_alloc(g, (size_t)GH * es) : NULL;
            if (!heed_graph_ok(g)) return NULL;
            if (rc.bias[d]) heed__rnn_fold_bias(dt, kind, H, bi ? bi->data : NULL, bh ? bh->data : NULL, rc.bias[d]);
            gemm_rows_m(dt, T, B, GH, In, sv->X[l], rows_layout(sv->bf && l == 0, T, B), In, sv->w.w_ih[l][d]->data,
                        true, In, 0, sv->gates[l][d], rows_layout(false, T, B), 4 * H);
            if (rc.uparts > 1) /* block k's gate rows g*H + [u0, u1) stacked at rows G*u0 .. G*u1 */
                for (int k = 0; k < rc.uparts; k++) {
                    int64_t j0 = rc.u0[k], nk = rc.u0[k + 1] - j0;
                    for (int gi = 0; gi < G; gi++)
                        memcpy(AT(rc.wp[d], (G * j0 + gi * nk) * H), AT(sv->w.w_hh[l][d]->data, (gi * H + j0) * H),
                               (size_t)(nk * H) * es);
                }
        }
        run_steps(&rc, false);
        for (int d = 0; d < D; d++) { /* final states: the history at the direction's last index */
            int64_t last = d == 0 ? T - 1 : 0, idx = l * D + d;
            memcpy(AT(hn->data, idx * B * H), AT(sv->Hs[l][d], hist(sv, last) * B * H), (size_t)(B * H) * es);
            if (lstm) memcpy(AT(cn->data, idx * B * H), AT(sv->Cs[l][d], hist(sv, last) * B * H), (size_t)(B * H) * es);
        }
        if (l < L - 1) {
            if (sv->drop)
                drop_mask(dt, rc.y, rc.y, TB * D * H, sv->seed, sv->stream + (uint64_t)l, sv->p,
                          heed_ctx_threads_now(g->ctx));
            sv->X[l + 1] = rc.y;
        }
    }
    if (!heed_graph_ok(g)) return NULL;

    heed_tensor *out[3] = {y, hn, cn};
    heed_node *n = heed_record(g, lstm ? &op_lstm : &op_gru, n_in, in, lstm ? 3 : 2, out);
    if (n) n->saved = sv;
    if (!heed_graph_ok(g)) return NULL;
    if (h_n) *h_n = hn;
    if (c_n) *c_n = cn;
    return y;
}

heed_tensor *heed_lstm(heed_graph *g, const heed_rnn *rnn, heed_tensor *x, heed_tensor *h0, heed_tensor *c0,
                       const int64_t *lengths, heed_tensor **h_n, heed_tensor **c_n) {
    return stack(g, HEED_RNN_LSTM, rnn, x, h0, c0, lengths, h_n, c_n);
}

heed_tensor *heed_gru(heed_graph *g, const heed_rnn *rnn, heed_tensor *x, heed_tensor *h0, const int64_t *lengths,
                      heed_tensor **h_n) {
    return stack(g, HEED_RNN_GRU, rnn, x, h0, NULL, lengths, h_n, NULL);
}

/* ---------------------------------------------------------------- final state for a decoder */

/* state[layers*dirs, B, H] -> [B, dirs*H]: rows layer*D .. layer*D + D - 1 (a slice),
 * directions side by side (a permute and a view), as composed ops. */
heed_tensor *heed_rnn_final_state(heed_graph *g, const heed_rnn *rnn, heed_tensor *state, int layer) {
    const char *op = "heed_rnn_final_state";
    if (!heed_check_tensor(g, op, state, "state")) return NULL;
    if (!rnn) return heed_graph_fail(g, HEED_ERR_ARG, "%s: rnn is NULL", op), NULL;
    int L = rnn->opts.layers ? rnn->opts.layers : 1, D = rnn->opts.bidirectional ? 2 : 1;
    int64_t H = rnn->opts.hidden_size;
    if (L < 1 || L > MAXL) return heed_graph_fail(g, HEED_ERR_ARG, "%s: rnn has %d layers (1..%d)", op, L, MAXL), NULL;
    if (state->ndim != 3 || state->shape[0] != L * D || state->shape[2] != H)
        return heed_graph_fail(g, HEED_ERR_SHAPE,
                               "%s: state%s must be [layers*dirs, batch, hidden] = [%d, batch, %lld]", op,
                               HEED_S(state), L * D, (long long)H),
               NULL;
    int l = layer < 0 ? layer + L : layer;
    if (l < 0 || l >= L)
        return heed_graph_fail(g, HEED_ERR_ARG,
                               "%s: layer %d out of range for an rnn of %d layers (need %d <= layer < %d)", op, layer,
                               L, -L, L),
               NULL;
    int64_t B = state->shape[1];
    heed_tensor *s = heed_slice(g, state, 0, (int64_t)l * D, (int64_t)(l + 1) * D); /* [D, B, H] */
    if (D == 2) s = heed_transpose(g, s, 0, 1);                                     /* [B, 2, H] */
    return heed_reshape(g, s, HEED_SHAPE(B, D * H));
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

static void FN(drop_mask_kernel)(const void *in, void *out, double p, int64_t n, int threads, uint64_t seed,
                                 uint64_t stream) {
    const T *a = in;
    T *b = out, scale = (T)(1.0 / (1.0 - p));
#pragma omp parallel for if (n > 32768) schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; i++) b[i] = heed__uniform_at(seed, stream, (uint64_t)i) >= p ? a[i] * scale : 0;
}

static void FN(add_into_kernel)(void *dst, const void *src, int64_t n) {
    T *a = dst;
    const T *b = src;
    for (int64_t i = 0; i < n; i++) a[i] += b[i];
}
#endif
