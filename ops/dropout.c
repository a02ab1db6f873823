/* Inverted dropout. The keep mask is never stored: element i of random op number s keeps
 * when uniform(seed, s, i) >= p, and backward draws the same numbers again.
 *   y = x * m / (1 - p),   dx = dy * m / (1 - p). */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "../graph/internal.h"
#include "heed/dropout.h"

#include "../graph/simd.h"

#include <math.h>

/* 8 Philox blocks at once (AVX2): counters (b0 + j, stream) for j = 0..7; out[w][j] is word
 * w of block j -- the same numbers as heed_philox4x32. */
HEED_AVX2 static void philox8(uint64_t seed, uint64_t b0, uint64_t stream, uint32_t out[4][8]) {
    __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32((int)(uint32_t)b0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i c1 = _mm256_set1_epi32((int)(uint32_t)(b0 >> 32));
    __m256i c2 = _mm256_set1_epi32((int)(uint32_t)stream), c3 = _mm256_set1_epi32((int)(uint32_t)(stream >> 32));
    __m256i m0 = _mm256_set1_epi32((int)0xD2511F53u), m1 = _mm256_set1_epi32((int)0xCD9E8D57u);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        __m256i e0 = _mm256_mul_epu32(c0, m0), o0 = _mm256_mul_epu32(_mm256_srli_epi64(c0, 32), m0);
        __m256i e2 = _mm256_mul_epu32(c2, m1), o2 = _mm256_mul_epu32(_mm256_srli_epi64(c2, 32), m1);
        __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(e0, 32), o0, 0xAA);
        __m256i hi2 = _mm256_blend_epi32(_mm256_srli_epi64(e2, 32), o2, 0xAA);
        __m256i lo0 = _mm256_mullo_epi32(c0, m0), lo2 = _mm256_mullo_epi32(c2, m1);
        __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(hi2, c1), _mm256_set1_epi32((int)k0));
        __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32((int)k1));
        c1 = lo2, c3 = lo0, c0 = n0, c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    _mm256_storeu_si256((__m256i *)out[0], c0);
    _mm256_storeu_si256((__m256i *)out[1], c1);
    _mm256_storeu_si256((__m256i *)out[2], c2);
    _mm256_storeu_si256((__m256i *)out[3], c3);
}

/* f32: 32 elements from 8 blocks; the words are put in element order (element 4j + w is
 * word w of block j) by a 4x8 transpose, then compared and blended 8 at a time. */
HEED_AVX2 static void mask32_f32(const float *x, float *y, int64_t m, bool accumulate, uint32_t out[4][8],
                                 uint32_t threshold, float scale) {
    __m256i w0 = _mm256_loadu_si256((const __m256i *)out[0]), w1 = _mm256_loadu_si256((const __m256i *)out[1]);
    __m256i w2 = _mm256_loadu_si256((const __m256i *)out[2]), w3 = _mm256_loadu_si256((const __m256i *)out[3]);
    __m256i t0 = _mm256_unpacklo_epi32(w0, w1), t1 = _mm256_unpackhi_epi32(w0, w1); /* b0w0 b0w1 b1w0 b1w1 | b4.. */
    __m256i t2 = _mm256_unpacklo_epi32(w2, w3), t3 = _mm256_unpackhi_epi32(w2, w3);
    __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2); /* b0 all | b4 all ; b1 | b5 */
    __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3); /* b2 | b6 ; b3 | b7 */
    __m256i r[4] = {_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u2, u3, 0x20),
                    _mm256_permute2x128_si256(u0, u1, 0x31), _mm256_permute2x128_si256(u2, u3, 0x31)};
    __m256i thr = _mm256_set1_epi32((int)threshold - 1);
    __m256 sc = _mm256_set1_ps(scale);
    for (int q = 0; q < 4; q++) {
        __m256i hi = _mm256_srli_epi32(r[q], 8); /* 24 bits: signed compare is safe */
        __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(hi, thr));
        if ((q + 1) * 8 <= m) {
            __m256 v = _mm256_and_ps(keep, _mm256_mul_ps(_mm256_loadu_ps(x + q * 8), sc));
            if (accumulate) v = _mm256_add_ps(v, _mm256_loadu_ps(y + q * 8));
            _mm256_storeu_ps(y + q * 8, v);
        } else {
            uint32_t u[8];
            _mm256_storeu_si256((__m256i *)u, r[q]);
            for (int t = 0; t < 8 && q * 8 + t < m; t++) {
                float v = (u[t] >> 8) >= threshold ? x[q * 8 + t] * scale : 0;
                y[q * 8 + t] = accumulate ? y[q * 8 + t] + v : v;
            }
        }
    }
}

#define T float
#define FN(name) name##_f32
#include "dropout.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "dropout.c"
#undef T
#undef FN

static void apply_mask(heed_dtype dt, const void *src, void *dst, int64_t n, bool accumulate, uint64_t seed,
                       uint64_t stream, double p, int threads) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t threshold = (uint32_t)ceil(p * 16777216.0); /* uniform >= p  <=>  (u >> 8) >= ceil(p 2^24) */
    int64_t ngrp = (n + 31) / 32;
    bool avx2 = heed__have_avx2();
    if (dt == HEED_F32)
        apply_mask_kernel_f32(src, dst, p, n, threads, ngrp, avx2, seed, stream, key, dt, accumulate, threshold);
    else apply_mask_kernel_f64(src, dst, p, n, threads, ngrp, avx2, seed, stream, key, dt, accumulate, threshold);
}

static void dropout_backward(heed_graph *g, heed_node *n) {
    heed_tensor *x = n->in[0], *y = n->out[0];
    void *gx = heed_grad_buffer(g, x);
    if (gx)
        apply_mask(x->dtype, y->grad, gx, x->numel, true, (uint64_t)n->iarg[0], (uint64_t)n->iarg[1], n->farg[0],
                   heed_ctx_threads_now(g->ctx));
}

static const heed_op op_dropout = {"heed_dropout", dropout_backward};

heed_tensor *heed_dropout(heed_graph *g, heed_tensor *x, double p) {
    const char *op = "heed_dropout";
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    if (!(p >= 0 && p < 1)) return heed_graph_fail(g, HEED_ERR_ARG, "%s: p = %g (must be in [0, 1))", op, p), NULL;
    if (!g->training || p == 0) return x;
    heed_tensor *y = heed__new(g, op, x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    uint64_t seed = g->ctx->seed, stream = heed__next_stream(g->ctx);
    apply_mask(x->dtype, x->data, y->data, x->numel, false, seed, stream, p, heed_ctx_threads_now(g->ctx));
    heed_node *n = heed_record(g, &op_dropout, 1, &x, 1, &y);
    if (n) {
        n->iarg[0] = (int64_t)seed;
        n->iarg[1] = (int64_t)stream;
        n->farg[0] = p;
    }
    return heed_graph_ok(g) ? y : NULL;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

static void FN(apply_mask_kernel)(const void *src, void *dst, double p, int64_t n, int threads, int64_t ngrp, bool avx2,
                                  uint64_t seed, uint64_t stream, const uint32_t *key, heed_dtype dt, bool accumulate,
                                  uint32_t threshold) {
    const T *x = src;
    T *y = dst;
    T scale = (T)(1.0 / (1.0 - p));
#pragma omp parallel for if (n > 32768) num_threads(threads)
    for (int64_t gi = 0; gi < ngrp; gi++) {
        uint32_t out[4][8];
        uint64_t b0 = (uint64_t)gi * 8;
        if (avx2 && (uint32_t)b0 <= UINT32_MAX - 7) philox8(seed, b0, stream, out);
        else
            for (int j = 0; j < 8; j++) {
                uint32_t o[4];
                uint64_t bb = b0 + (uint64_t)j;
                const uint32_t ctr[4] = {(uint32_t)bb, (uint32_t)(bb >> 32), (uint32_t)stream,
                                         (uint32_t)(stream >> 32)};
                heed_philox4x32(key, ctr, o);
                for (int w = 0; w < 4; w++) out[w][j] = o[w];
            }
        int64_t i0 = gi * 32, m = n - i0 < 32 ? n - i0 : 32;
        if (avx2 && dt == HEED_F32) {
            mask32_f32((const float *)x + i0, (float *)y + i0, m, accumulate, out, threshold, (float)scale);
            continue;
        }
        for (int64_t t = 0; t < m; t++) {
            T v = (out[t & 3][t >> 2] >> 8) >= threshold ? x[i0 + t] * scale : 0;
            y[i0 + t] = accumulate ? y[i0 + t] + v : v;
        }
    }
}
#endif
