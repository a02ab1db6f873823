/* Fused LSTM/GRU gate kernels for one time step: all gates of a unit in one pass, reading
 * the input-side pre-activations and the recurrent GEMM's product, writing the state and
 * the activations backward needs. f32 runs the vector kernels of gates_vec.h (16 units at
 * a time with AVX-512, 8 with AVX2, as heed_isa() allows); f64 (and f32 without AVX2, and
 * the tails) use the scalar kernels at the end of this file. Equations: rnn.h. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "rnn.h"

#include <tgmath.h>

#define T float
#define FN(name) name##_f32
#include "gates.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "gates.c"
#undef T
#undef FN

#include "../../graph/simd.h"

/* One ISA's f32 step kernels over the units [j0, j1) of every row. */
typedef struct {
    void (*lstm_fwd)(const rnn_fwd_step *s, int64_t j0, int64_t j1);
    void (*gru_fwd)(const rnn_fwd_step *s, int64_t j0, int64_t j1);
    void (*lstm_bwd)(const rnn_bwd_step *s, int64_t j0, int64_t j1);
    void (*gru_bwd)(const rnn_bwd_step *s, int64_t j0, int64_t j1);
} gate_kernels;

#define PER_ISA_FILE "../ops/rnn/gates_vec.h"
#include "../../graph/per_isa.h"

void heed__rnn_fwd_step(const rnn_fwd_step *s, int64_t j0, int64_t j1) {
    bool lstm = s->kind == HEED_RNN_LSTM;
    if (s->dtype == HEED_F64) {
        if (lstm) lstm_fwd_f64(s, 0, s->B, j0, j1);
        else gru_fwd_f64(s, 0, s->B, j0, j1);
        return;
    }
    const gate_kernels *K = HEED_WIDEST(gates, NULL);
    if (K) {
        if (lstm) K->lstm_fwd(s, j0, j1);
        else K->gru_fwd(s, j0, j1);
        return;
    }
    if (lstm) lstm_fwd_f32(s, 0, s->B, j0, j1);
    else gru_fwd_f32(s, 0, s->B, j0, j1);
}

void heed__rnn_bwd_step(const rnn_bwd_step *s, int64_t j0, int64_t j1) {
    bool lstm = s->kind == HEED_RNN_LSTM;
    if (s->dtype == HEED_F64) {
        if (lstm) lstm_bwd_f64(s, 0, s->B, j0, j1);
        else gru_bwd_f64(s, 0, s->B, j0, j1);
        return;
    }
    const gate_kernels *K = HEED_WIDEST(gates, NULL);
    if (K) {
        if (lstm) K->lstm_bwd(s, j0, j1);
        else K->gru_bwd(s, j0, j1);
        return;
    }
    if (lstm) lstm_bwd_f32(s, 0, s->B, j0, j1);
    else gru_bwd_f32(s, 0, s->B, j0, j1);
}

/* Every unit of a step, threads splitting the units in blocks of UNIT_BLOCK when it pays:
 * one AVX-512 vector, two AVX2 ones. */
#define UNIT_BLOCK 16
static int64_t unit_blocks(int64_t B, int64_t H) { return B * H < 16384 ? 1 : (H + UNIT_BLOCK - 1) / UNIT_BLOCK; }

void heed__rnn_fwd_all(const rnn_fwd_step *s, int threads) {
    int64_t nb = unit_blocks(s->B, s->H);
    if (nb == 1) {
        heed__rnn_fwd_step(s, 0, s->H);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t k = 0; k < nb; k++)
        heed__rnn_fwd_step(s, UNIT_BLOCK * k, UNIT_BLOCK * (k + 1) < s->H ? UNIT_BLOCK * (k + 1) : s->H);
}

void heed__rnn_bwd_all(const rnn_bwd_step *s, int threads) {
    int64_t nb = unit_blocks(s->B, s->H);
    if (nb == 1) {
        heed__rnn_bwd_step(s, 0, s->H);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t k = 0; k < nb; k++)
        heed__rnn_bwd_step(s, UNIT_BLOCK * k, UNIT_BLOCK * (k + 1) < s->H ? UNIT_BLOCK * (k + 1) : s->H);
}

/* ---------------------------------------------------------------- helpers */

void heed__rnn_fold_bias(heed_dtype dt, heed_rnn_kind kind, int64_t H, const void *b_ih, const void *b_hh, void *out) {
    int G = heed__rnn_gates(kind);
    if (dt == HEED_F32) fold_bias_kernel_f32(b_ih, b_hh, out, G, H, kind);
    else fold_bias_kernel_f64(b_ih, b_hh, out, G, H, kind);
}

void heed__rnn_colsum_add(heed_dtype dt, const void *m, int64_t rows, int64_t cols, int64_t ld, void *out,
                          int threads) {
    if (dt == HEED_F32) colsum_add_kernel_f32(m, out, cols, rows, threads, ld);
    else colsum_add_kernel_f64(m, out, cols, rows, threads, ld);
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

/* The scalar gate kernels: rows [b0, b1), units [j0, j1). Equations and layouts: rnn.h. */

static inline T FN(sigm)(T x) { return 1 / (1 + exp(-x)); }

/* An inactive row (t past its length) carries its state and outputs zero. */
static void FN(carry)(const rnn_fwd_step *s, int64_t b, int64_t j0, int64_t j1) {
    int64_t H = s->H;
    const T *hp = s->h_prev, *cp = s->c_prev;
    T *ho = s->h_out, *co = s->c_out, *y = s->y;
    for (int64_t j = j0; j < j1; j++) {
        ho[b * H + j] = hp ? hp[b * H + j] : 0;
        if (co) co[b * H + j] = cp ? cp[b * H + j] : 0;
        if (y) y[b * s->y_ld + j] = 0;
    }
}

static void FN(lstm_fwd)(const rnn_fwd_step *s, int64_t b0, int64_t b1, int64_t j0, int64_t j1) {
    int64_t H = s->H, gs = s->rec_gs, j0r = s->rec_j0;
    const T *hp = s->h_prev, *cp = s->c_prev, *bb = s->bias;
    T *ho = s->h_out, *co = s->c_out, *y = s->y;
    for (int64_t b = b0; b < b1; b++) {
        if (s->len && s->t >= s->len[b]) {
            FN(carry)(s, b, j0, j1);
            continue;
        }
        T *a = (T *)s->gates + b * 4 * H;
        const T *r = s->rec ? (const T *)s->rec + b * s->rec_ld : NULL; /* r[j - j0r]: unit j */
        for (int64_t j = j0; j < j1; j++) {
            T ai = a[j], af = a[H + j], ag = a[2 * H + j], ao = a[3 * H + j];
            if (bb) ai += bb[j], af += bb[H + j], ag += bb[2 * H + j], ao += bb[3 * H + j];
            if (r) ai += r[j - j0r], af += r[gs + j - j0r], ag += r[2 * gs + j - j0r], ao += r[3 * gs + j - j0r];
            T i = FN(sigm)(ai), f = FN(sigm)(af), gg = tanh(ag), o = FN(sigm)(ao);
            T c = f * (cp ? cp[b * H + j] : 0) + i * gg;
            T h = o * tanh(c);
            a[j] = i, a[H + j] = f, a[2 * H + j] = gg, a[3 * H + j] = o;
            co[b * H + j] = c;
            ho[b * H + j] = h;
            if (y) y[b * s->y_ld + j] = h;
        }
    }
    (void)hp;
}

static void FN(gru_fwd)(const rnn_fwd_step *s, int64_t b0, int64_t b1, int64_t j0, int64_t j1) {
    int64_t H = s->H, gs = s->rec_gs, j0r = s->rec_j0;
    const T *hp = s->h_prev, *bhn = s->b_hn, *bb = s->bias;
    T *ho = s->h_out, *y = s->y;
    for (int64_t b = b0; b < b1; b++) {
        if (s->len && s->t >= s->len[b]) {
            FN(carry)(s, b, j0, j1);
            continue;
        }
        T *a = (T *)s->gates + b * 4 * H;
        const T *r = s->rec ? (const T *)s->rec + b * s->rec_ld : NULL;
        for (int64_t j = j0; j < j1; j++) {
            T ar = a[j], az = a[H + j], an = a[2 * H + j], ghn = bhn ? bhn[j] : 0;
            if (bb) ar += bb[j], az += bb[H + j], an += bb[2 * H + j];
            if (r) ar += r[j - j0r], az += r[gs + j - j0r], ghn += r[2 * gs + j - j0r];
            T rr = FN(sigm)(ar), z = FN(sigm)(az);
            T n = tanh(an + rr * ghn);
            T h = (1 - z) * n + z * (hp ? hp[b * H + j] : 0);
            a[j] = rr, a[H + j] = z, a[2 * H + j] = n, a[3 * H + j] = ghn;
            ho[b * H + j] = h;
            if (y) y[b * s->y_ld + j] = h;
        }
    }
}

/* Inactive rows: no gradient into the gates; dh and dc pass through unchanged. */
static void FN(zero_grads)(const rnn_bwd_step *s, int64_t b, int64_t j0, int64_t j1) {
    int G = heed__rnn_gates(s->kind);
    int64_t H = s->H;
    for (int k = 0; k < G; k++)
        for (int64_t j = j0; j < j1; j++) {
            ((T *)s->dgi)[b * G * H + k * H + j] = 0;
            if (s->dgh != s->dgi) ((T *)s->dgh)[b * G * H + k * H + j] = 0;
        }
}

static void FN(lstm_bwd)(const rnn_bwd_step *s, int64_t b0, int64_t b1, int64_t j0, int64_t j1) {
    int64_t H = s->H;
    const T *ct = s->c_t, *cp = s->c_prev, *dy = s->dy;
    T *dh = s->dh, *dc = s->dc;
    for (int64_t b = b0; b < b1; b++) {
        if (s->len && s->t >= s->len[b]) {
            FN(zero_grads)(s, b, j0, j1);
            continue;
        }
        const T *a = (const T *)s->gates + b * 4 * H;
        T *da = (T *)s->dgi + b * 4 * H;
        for (int64_t j = j0; j < j1; j++) {
            T i = a[j], f = a[H + j], gg = a[2 * H + j], o = a[3 * H + j];
            T dht = dh[b * H + j] + (dy ? dy[b * s->dy_ld + j] : 0);
            T tc = tanh(ct[b * H + j]);
            T dct = dc[b * H + j] + dht * o * (1 - tc * tc);
            da[j] = dct * gg * i * (1 - i);
            da[H + j] = dct * (cp ? cp[b * H + j] : 0) * f * (1 - f);
            da[2 * H + j] = dct * i * (1 - gg * gg);
            da[3 * H + j] = dht * tc * o * (1 - o);
            dc[b * H + j] = dct * f;
            dh[b * H + j] = 0;
        }
    }
}

static void FN(gru_bwd)(const rnn_bwd_step *s, int64_t b0, int64_t b1, int64_t j0, int64_t j1) {
    int64_t H = s->H;
    const T *hp = s->h_prev, *dy = s->dy;
    T *dh = s->dh;
    for (int64_t b = b0; b < b1; b++) {
        if (s->len && s->t >= s->len[b]) {
            FN(zero_grads)(s, b, j0, j1);
            continue;
        }
        const T *a = (const T *)s->gates + b * 4 * H;
        T *di = (T *)s->dgi + b * 3 * H, *dgh = (T *)s->dgh + b * 3 * H;
        for (int64_t j = j0; j < j1; j++) {
            T r = a[j], z = a[H + j], n = a[2 * H + j], ghn = a[3 * H + j];
            T dht = dh[b * H + j] + (dy ? dy[b * s->dy_ld + j] : 0);
            T dan = dht * (1 - z) * (1 - n * n);
            T dar = dan * ghn * r * (1 - r);
            T daz = dht * ((hp ? hp[b * H + j] : 0) - n) * z * (1 - z);
            di[j] = dar, di[H + j] = daz, di[2 * H + j] = dan;
            dgh[j] = dar, dgh[H + j] = daz, dgh[2 * H + j] = dan * r;
            dh[b * H + j] = dht * z;
        }
    }
}

/* The helpers' kernels (heed__rnn_fold_bias, heed__rnn_colsum_add). */
static void FN(fold_bias_kernel)(const void *b_ih, const void *b_hh, void *out, int G, int64_t H, heed_rnn_kind kind) {
    const T *bi = b_ih, *bh = b_hh;
    T *o = out;
    for (int64_t k = 0; k < G * H; k++) {
        /* the GRU's b_hn sits inside r * (W_hn h + b_hn): it cannot be folded */
        bool hidden_ok = kind == HEED_RNN_LSTM || k < 2 * H;
        o[k] = (bi ? bi[k] : 0) + (bh && hidden_ok ? bh[k] : 0);
    }
}

static void FN(colsum_add_kernel)(const void *m, void *out, int64_t cols, int64_t rows, int threads, int64_t ld) {
    const T *M = m;
    T *o = out;
    /* columns in blocks so each thread owns its sums; rows inner for cache reuse */
    int64_t nblk = (cols + 63) / 64;
#pragma omp parallel for if (rows * cols > 65536) schedule(static) num_threads(threads)
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t c0 = blk * 64, c1 = c0 + 64 < cols ? c0 + 64 : cols;
        double acc[64] = {0};
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = c0; c < c1; c++) acc[c - c0] += M[r * ld + c];
        for (int64_t c = c0; c < c1; c++) o[c] += (T)acc[c - c0];
    }
}
#endif
