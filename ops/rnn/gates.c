/* Fused LSTM/GRU gate kernels for one time step: all gates of a unit in one pass, reading
 * the input-side pre-activations and the recurrent GEMM's product, writing the state and
 * the activations backward needs. f32 runs the vector kernels of gates_vec.h (16 units at
 * a time with AVX-512, 8 with AVX2, as heed_isa() allows); f64 (and f32 without AVX2, and
 * the tails) use the scalar kernels of gates_generic.h. Equations: rnn.h. */
#include "rnn.h"

#include <tgmath.h>

#define T float
#define FN(name) name##_f32
#include "gates_generic.h"
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "gates_generic.h"
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

#define T float
#define FN(name) name##_f32
#include "gates_kernels.h"
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "gates_kernels.h"
#undef T
#undef FN

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
