/* Fused LSTM/GRU gate kernels for one time step: all gates of a unit in one pass, reading
 * the input-side pre-activations and the recurrent GEMM's product, writing the state and
 * the activations backward needs. f32 runs 8 units at a time with SLEEF's AVX2 exp/tanh
 * when the CPU has AVX2; f64 (and f32 elsewhere, and the tails) use the scalar kernels
 * of gates_generic.h. Equations: rnn.h. */
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

#if defined(__x86_64__) || defined(__i386__)
#include "../../graph/simd.h"
#define HAVE_AVX2_KERNELS 1

/* sigmoid: the shared stable one (graph/simd.h) */
HEED_AVX2 static inline __m256 sig8(__m256 x) { return heed__sigmoid8(x); }
/* 3.5-ulp tanh: half the cost of the 1-ulp one, far inside the f32-vs-f64 tolerance */
HEED_AVX2 static inline __m256 tanh8(__m256 x) { return Sleef_tanhf8_u35avx2(x); }
HEED_AVX2 static inline __m256 ld8(const float *p) { return _mm256_loadu_ps(p); }
HEED_AVX2 static inline __m256 ld8z(const float *p) { return p ? _mm256_loadu_ps(p) : _mm256_setzero_ps(); }
HEED_AVX2 static inline void st8(float *p, __m256 v) { _mm256_storeu_ps(p, v); }

HEED_AVX2 static void lstm_fwd_avx2(const rnn_fwd_step *s, int64_t j0, int64_t j1) {
    int64_t H = s->H, gs = s->rec_gs, j0r = s->rec_j0, jv = j0 + (j1 - j0) / 8 * 8;
    const float *cp = s->c_prev, *bb = s->bias;
    float *ho = s->h_out, *co = s->c_out, *y = s->y;
    for (int64_t b = 0; b < s->B; b++) {
        if (s->len && s->t >= s->len[b]) {
            carry_f32(s, b, j0, j1);
            continue;
        }
        float *a = (float *)s->gates + b * 4 * H;
        const float *r = s->rec ? (const float *)s->rec + b * s->rec_ld : NULL;
        for (int64_t j = j0; j < jv; j += 8) {
            __m256 ai = ld8(a + j), af = ld8(a + H + j), ag = ld8(a + 2 * H + j), ao = ld8(a + 3 * H + j);
            if (bb) {
                ai = _mm256_add_ps(ai, ld8(bb + j));
                af = _mm256_add_ps(af, ld8(bb + H + j));
                ag = _mm256_add_ps(ag, ld8(bb + 2 * H + j));
                ao = _mm256_add_ps(ao, ld8(bb + 3 * H + j));
            }
            if (r) {
                ai = _mm256_add_ps(ai, ld8(r + (j - j0r)));
                af = _mm256_add_ps(af, ld8(r + gs + (j - j0r)));
                ag = _mm256_add_ps(ag, ld8(r + 2 * gs + (j - j0r)));
                ao = _mm256_add_ps(ao, ld8(r + 3 * gs + (j - j0r)));
            }
            __m256 i = sig8(ai), f = sig8(af), gg = tanh8(ag), o = sig8(ao);
            __m256 c = _mm256_fmadd_ps(f, ld8z(cp ? cp + b * H + j : NULL), _mm256_mul_ps(i, gg));
            __m256 h = _mm256_mul_ps(o, tanh8(c));
            st8(a + j, i), st8(a + H + j, f), st8(a + 2 * H + j, gg), st8(a + 3 * H + j, o);
            st8(co + b * H + j, c);
            st8(ho + b * H + j, h);
            if (y) st8(y + b * s->y_ld + j, h);
        }
        if (jv < j1) lstm_fwd_f32(s, b, b + 1, jv, j1);
    }
}

HEED_AVX2 static void gru_fwd_avx2(const rnn_fwd_step *s, int64_t j0, int64_t j1) {
    int64_t H = s->H, gs = s->rec_gs, j0r = s->rec_j0, jv = j0 + (j1 - j0) / 8 * 8;
    const float *hp = s->h_prev, *bhn = s->b_hn, *bb = s->bias;
    float *ho = s->h_out, *y = s->y;
    for (int64_t b = 0; b < s->B; b++) {
        if (s->len && s->t >= s->len[b]) {
            carry_f32(s, b, j0, j1);
            continue;
        }
        float *a = (float *)s->gates + b * 4 * H;
        const float *r = s->rec ? (const float *)s->rec + b * s->rec_ld : NULL;
        for (int64_t j = j0; j < jv; j += 8) {
            __m256 ar = ld8(a + j), az = ld8(a + H + j), an = ld8(a + 2 * H + j), ghn = ld8z(bhn ? bhn + j : NULL);
            if (bb) {
                ar = _mm256_add_ps(ar, ld8(bb + j));
                az = _mm256_add_ps(az, ld8(bb + H + j));
                an = _mm256_add_ps(an, ld8(bb + 2 * H + j));
            }
            if (r) {
                ar = _mm256_add_ps(ar, ld8(r + (j - j0r)));
                az = _mm256_add_ps(az, ld8(r + gs + (j - j0r)));
                ghn = _mm256_add_ps(ghn, ld8(r + 2 * gs + (j - j0r)));
            }
            __m256 rr = sig8(ar), z = sig8(az);
            __m256 n = tanh8(_mm256_fmadd_ps(rr, ghn, an));
            __m256 hprev = ld8z(hp ? hp + b * H + j : NULL);
            /* (1-z) n + z h = n + z (h - n) */
            __m256 h = _mm256_fmadd_ps(z, _mm256_sub_ps(hprev, n), n);
            st8(a + j, rr), st8(a + H + j, z), st8(a + 2 * H + j, n), st8(a + 3 * H + j, ghn);
            st8(ho + b * H + j, h);
            if (y) st8(y + b * s->y_ld + j, h);
        }
        if (jv < j1) gru_fwd_f32(s, b, b + 1, jv, j1);
    }
}

HEED_AVX2 static void lstm_bwd_avx2(const rnn_bwd_step *s, int64_t j0, int64_t j1) {
    int64_t H = s->H, jv = j0 + (j1 - j0) / 8 * 8;
    const float *ct = s->c_t, *cp = s->c_prev, *dy = s->dy;
    float *dh = s->dh, *dc = s->dc;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int64_t b = 0; b < s->B; b++) {
        if (s->len && s->t >= s->len[b]) {
            zero_grads_f32(s, b, j0, j1);
            continue;
        }
        const float *a = (const float *)s->gates + b * 4 * H;
        float *da = (float *)s->dgi + b * 4 * H;
        for (int64_t j = j0; j < jv; j += 8) {
            __m256 i = ld8(a + j), f = ld8(a + H + j), gg = ld8(a + 2 * H + j), o = ld8(a + 3 * H + j);
            __m256 dht = ld8(dh + b * H + j);
            if (dy) dht = _mm256_add_ps(dht, ld8(dy + b * s->dy_ld + j));
            __m256 tc = tanh8(ld8(ct + b * H + j));
            __m256 dct = _mm256_fmadd_ps(_mm256_mul_ps(dht, o), _mm256_fnmadd_ps(tc, tc, one), ld8(dc + b * H + j));
            __m256 cprev = ld8z(cp ? cp + b * H + j : NULL);
            st8(da + j, _mm256_mul_ps(_mm256_mul_ps(dct, gg), _mm256_mul_ps(i, _mm256_sub_ps(one, i))));
            st8(da + H + j, _mm256_mul_ps(_mm256_mul_ps(dct, cprev), _mm256_mul_ps(f, _mm256_sub_ps(one, f))));
            st8(da + 2 * H + j, _mm256_mul_ps(_mm256_mul_ps(dct, i), _mm256_fnmadd_ps(gg, gg, one)));
            st8(da + 3 * H + j, _mm256_mul_ps(_mm256_mul_ps(dht, tc), _mm256_mul_ps(o, _mm256_sub_ps(one, o))));
            st8(dc + b * H + j, _mm256_mul_ps(dct, f));
            st8(dh + b * H + j, _mm256_setzero_ps());
        }
        if (jv < j1) lstm_bwd_f32(s, b, b + 1, jv, j1);
    }
}

HEED_AVX2 static void gru_bwd_avx2(const rnn_bwd_step *s, int64_t j0, int64_t j1) {
    int64_t H = s->H, jv = j0 + (j1 - j0) / 8 * 8;
    const float *hp = s->h_prev, *dy = s->dy;
    float *dh = s->dh;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int64_t b = 0; b < s->B; b++) {
        if (s->len && s->t >= s->len[b]) {
            zero_grads_f32(s, b, j0, j1);
            continue;
        }
        const float *a = (const float *)s->gates + b * 4 * H;
        float *di = (float *)s->dgi + b * 3 * H, *dg = (float *)s->dgh + b * 3 * H;
        for (int64_t j = j0; j < jv; j += 8) {
            __m256 r = ld8(a + j), z = ld8(a + H + j), n = ld8(a + 2 * H + j), ghn = ld8(a + 3 * H + j);
            __m256 dht = ld8(dh + b * H + j);
            if (dy) dht = _mm256_add_ps(dht, ld8(dy + b * s->dy_ld + j));
            __m256 dan = _mm256_mul_ps(_mm256_mul_ps(dht, _mm256_sub_ps(one, z)), _mm256_fnmadd_ps(n, n, one));
            __m256 dar = _mm256_mul_ps(_mm256_mul_ps(dan, ghn), _mm256_mul_ps(r, _mm256_sub_ps(one, r)));
            __m256 hprev = ld8z(hp ? hp + b * H + j : NULL);
            __m256 daz = _mm256_mul_ps(_mm256_mul_ps(dht, _mm256_sub_ps(hprev, n)), _mm256_mul_ps(z, _mm256_sub_ps(one, z)));
            st8(di + j, dar), st8(di + H + j, daz), st8(di + 2 * H + j, dan);
            st8(dg + j, dar), st8(dg + H + j, daz), st8(dg + 2 * H + j, _mm256_mul_ps(dan, r));
            st8(dh + b * H + j, _mm256_mul_ps(dht, z));
        }
        if (jv < j1) gru_bwd_f32(s, b, b + 1, jv, j1);
    }
}

static bool use_avx2(void) { return heed__have_avx2(); }
#endif

void heed__rnn_fwd_step(const rnn_fwd_step *s, int64_t j0, int64_t j1) {
    bool lstm = s->kind == HEED_RNN_LSTM;
    if (s->dtype == HEED_F64) {
        if (lstm) lstm_fwd_f64(s, 0, s->B, j0, j1);
        else gru_fwd_f64(s, 0, s->B, j0, j1);
        return;
    }
#ifdef HAVE_AVX2_KERNELS
    if (use_avx2()) {
        if (lstm) lstm_fwd_avx2(s, j0, j1);
        else gru_fwd_avx2(s, j0, j1);
        return;
    }
#endif
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
#ifdef HAVE_AVX2_KERNELS
    if (use_avx2()) {
        if (lstm) lstm_bwd_avx2(s, j0, j1);
        else gru_bwd_avx2(s, j0, j1);
        return;
    }
#endif
    if (lstm) lstm_bwd_f32(s, 0, s->B, j0, j1);
    else gru_bwd_f32(s, 0, s->B, j0, j1);
}

/* Every unit of a step, threads splitting the units in blocks of 8 when it pays. */
static int64_t unit_blocks(int64_t B, int64_t H) { return B * H < 16384 ? 1 : (H + 7) / 8; }

void heed__rnn_fwd_all(const rnn_fwd_step *s, int threads) {
    int64_t nb = unit_blocks(s->B, s->H);
    if (nb == 1) {
        heed__rnn_fwd_step(s, 0, s->H);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t k = 0; k < nb; k++) heed__rnn_fwd_step(s, 8 * k, 8 * k + 8 < s->H ? 8 * k + 8 : s->H);
}

void heed__rnn_bwd_all(const rnn_bwd_step *s, int threads) {
    int64_t nb = unit_blocks(s->B, s->H);
    if (nb == 1) {
        heed__rnn_bwd_step(s, 0, s->H);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t k = 0; k < nb; k++) heed__rnn_bwd_step(s, 8 * k, 8 * k + 8 < s->H ? 8 * k + 8 : s->H);
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
    if (dt == HEED_F32)
        fold_bias_kernel_f32(b_ih, b_hh, out, G, H, kind);
    else
        fold_bias_kernel_f64(b_ih, b_hh, out, G, H, kind);
}

void heed__rnn_colsum_add(heed_dtype dt, const void *m, int64_t rows, int64_t cols, int64_t ld, void *out, int threads) {
    if (dt == HEED_F32)
        colsum_add_kernel_f32(m, out, cols, rows, threads, ld);
    else
        colsum_add_kernel_f64(m, out, cols, rows, threads, ld);
}
