/* Shared by the attention implementations (ops/attention/attention.c, ops/attention/flash.c): the
 * plan of one heed_attention call, the mask as a key interval per query row, the dropout
 * keep test, and the tile primitives of the flash kernels (ops/attention/flash_kernels.c). */
#ifndef HEED_ATTENTION_INTERNAL_H
#define HEED_ATTENTION_INTERNAL_H

#include "../../graph/internal.h"
#include "heed/attention.h"

#include <math.h>

/* Tiles are padded to this many columns so the f32 micro-kernels never need a ragged edge. */
#define ATTN_NR 16
static inline int64_t attn_pad(int64_t n) { return (n + ATTN_NR - 1) / ATTN_NR * ATTN_NR; }

/* A sparse pattern resolved for one call (ops/attention/pattern.c; heed_attn_pattern). */
typedef struct {
    bool on;               /* any part beyond a plain window: the union replaces the window band */
    int64_t dilation;      /* of the window, >= 1 */
    const int64_t *global; /* sorted, distinct key positions */
    int64_t n_global;
    int64_t rblocks, rsize; /* random: rblocks key blocks of rsize keys per query block */
    const int64_t *rtable;  /* [H][rnq][rblocks] sorted key blocks; query block u at row u - rq0 */
    int64_t rq0, rnq;
    int64_t strided, fixed, summary;
} attn_pattern;

/* The tiles a sparse pattern leaves a visible pair in (ops/attention/pattern.c), for tiles
 * of block_q x block_k aligned at 0, per head when the pattern differs by head (random
 * blocks; heads = H) or once (heads = 1). Query tile t of head h sees the key tiles
 * k_tiles[q_start[h (nqt + 1) + t] .. q_start[h (nqt + 1) + t + 1]) (ascending), and key
 * tile u is seen by the query tiles q_tiles[k_start[h (nkt + 1) + u] ..] (ascending). */
typedef struct {
    int64_t nqt, nkt, heads;
    const int64_t *q_start, *k_start;
    const int32_t *k_tiles, *q_tiles;
} attn_tile_map;

typedef struct {
    int64_t B, H, Nq, Nk, d, dv;
    double scale;
    bool causal;
    int64_t window;         /* 0 = none */
    const int64_t *lengths; /* [B] copy in the graph arena, or NULL */
    const void *bias;       /* bias data (dtype of q) or NULL */
    int64_t bstride[4];     /* bias element strides over (b, h, i, j); 0 where broadcast */
    bool dropout;           /* active: training and p > 0 */
    double p;
    uint64_t seed, stream;
    int64_t block_q, block_k; /* flash tiles */
    attn_pattern pat;
    const attn_tile_map *map; /* flash with a pattern: the tiles to visit */
} attn_plan;

/* Query row i of batch b sees the keys j in [lo, hi): j < key_lengths[b]; causal:
 * j <= i + (Nk - Nq); window w (without a pattern): |i + (Nk - Nq) - j| < w. Both ends are
 * non-decreasing in i, which is what lets flash skip whole tiles and find a key block's
 * queries by bisection. An empty row has lo == hi. A pattern then picks keys inside. */
static inline void attn_row_keys(const attn_plan *P, int64_t b, int64_t i, int64_t *lo, int64_t *hi) {
    int64_t diag = i + P->Nk - P->Nq, l = 0, h = P->lengths ? P->lengths[b] : P->Nk;
    if (P->causal && diag + 1 < h) h = diag + 1;
    if (P->window > 0 && !P->pat.on) {
        if (diag + P->window < h) h = diag + P->window;
        if (diag - P->window + 1 > l) l = diag - P->window + 1;
    }
    *lo = l;
    *hi = h > l ? h : l;
}

/* Worth a parallel region: about 2^17 multiply-adds or more (smaller calls run on the
 * calling thread; a fork-join costs more than they do, and far more on a busy machine). */
static inline bool attn_parallel(const attn_plan *P) {
    return (double)(P->B * P->H) * (double)P->Nq * (double)P->Nk * (double)(P->d + P->dv) >= 131072.0;
}

/* Offset of bias element (b, h, i, j). */
static inline int64_t attn_bias_at(const attn_plan *P, int64_t b, int64_t h, int64_t i, int64_t j) {
    return b * P->bstride[0] + h * P->bstride[1] + i * P->bstride[2] + j * P->bstride[3];
}

/* Dropout on the attention weights: element (b, h, i, j) is number ((b*H + h)*Nq + i)*Nk + j
 * of the op's random stream and is kept when uniform(seed, stream, e) >= p -- the numbers
 * heed__uniform_at gives (Philox block e/4, word e%4, top 24 bits), so the materialised and
 * flash paths, forward and backward, all draw the same mask. attn_keep fills keep[0..n)
 * for elements e0 .. e0+n-1, one Philox block per 4 elements. */
static inline uint32_t attn_keep_threshold(double p) { return (uint32_t)ceil(p * 16777216.0); }

static inline void attn_keep(uint64_t seed, uint64_t stream, uint64_t e0, int64_t n, uint32_t threshold,
                             unsigned char *keep) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t out[4];
    uint64_t blk = UINT64_MAX;
    for (int64_t t = 0; t < n; t++) {
        uint64_t e = e0 + (uint64_t)t;
        if (e >> 2 != blk) {
            blk = e >> 2;
            const uint32_t ctr[4] = {(uint32_t)blk, (uint32_t)(blk >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
            heed_philox4x32(key, ctr, out);
        }
        keep[t] = (out[e & 3] >> 8) >= threshold;
    }
}

/* ---------------------------------------------------------------- flash tile primitives
 *
 * gemm:    C[M, N] = (accumulate ? C : 0) + alpha * A B, where A's element (r, k) is
 *          A[r*rsa + k*csa] (row-major or transposed), B is row-major [K][ldb], and N is a
 *          multiple of ATTN_NR (B and C are padded buffers).
 * row_fwd: one online-softmax step on a score row s[0..n) holding q.k_j. With
 *          t_j = s_j*c + bias[j*bstride]*bmul on [c0, c1) and -inf elsewhere (base-2 units):
 *          m' = max(m, max_j t_j), s_j <- exp2(t_j - m') (0 outside), l <- l*exp2(m - m') +
 *          sum_j s_j, m <- m'. Returns exp2(m - m'), the factor for the running output row
 *          (1 when nothing changed). bias may be NULL.
 * row_bwd: recomputes p_j = exp2((t_j - m) - ls) on [c0, c1) (0 elsewhere), with m and
 *          ls = log2(l) the row's final max and log-sum of the forward, and writes
 *          s_j <- p_j z_j (the weights after dropout) and da_j <- p_j (da_j z_j - D) (dS);
 *          z is the dropout multiplier row or NULL.
 * transpose: dst[c*ldd + j] = src[j*lds + c] for j < rows, c < cols (K tile -> K^T panel). */
typedef struct {
    void (*gemm)(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t rsa, int64_t csa, const float *B,
                 int64_t ldb, bool accumulate, float *C, int64_t ldc);
    float (*row_fwd)(float *s, int64_t n, int64_t c0, int64_t c1, float c, const float *bias, int64_t bstride,
                     float bmul, float *m, float *l);
    void (*row_bwd)(float *s, float *da, int64_t n, int64_t c0, int64_t c1, float c, const float *bias, int64_t bstride,
                    float bmul, float m, float ls, float D, const float *z);
    void (*transpose)(const float *src, int64_t lds, int64_t rows, int64_t cols, float *dst, int64_t ldd);
} flash_kernels_f32;

typedef struct {
    void (*gemm)(int64_t M, int64_t N, int64_t K, double alpha, const double *A, int64_t rsa, int64_t csa,
                 const double *B, int64_t ldb, bool accumulate, double *C, int64_t ldc);
    double (*row_fwd)(double *s, int64_t n, int64_t c0, int64_t c1, double c, const double *bias, int64_t bstride,
                      double bmul, double *m, double *l);
    void (*row_bwd)(double *s, double *da, int64_t n, int64_t c0, int64_t c1, double c, const double *bias,
                    int64_t bstride, double bmul, double m, double ls, double D, const double *z);
    void (*transpose)(const double *src, int64_t lds, int64_t rows, int64_t cols, double *dst, int64_t ldd);
} flash_kernels_f64;

/* The vector kernels of the widest ISA heed_isa() allows (AVX-512F, AVX2 + FMA), else the
 * portable loops; tests pick the portable ones with heed__force_scalar (graph/simd.h). */
const flash_kernels_f32 *flash_kernels_f32_get(void);
const flash_kernels_f64 *flash_kernels_f64_get(void);

/* ---------------------------------------------------------------- sparse patterns (pattern.c) */

/* Checks opts->window and opts->pattern against P's H, Nq, Nk and fills P->window and
 * P->pat (tables in the graph's arena). false after heed_graph_fail. */
bool attn_pattern_setup(heed_graph *g, const char *op, const heed_attention_opts *opts, attn_plan *P);

/* What a pattern shows the rows of one tile (attn_pattern_tile): vis[r*ld + t] = 1 when
 * row r sees key j0 + t; [lo[r], hi[r]) the span of the keys it sees (lo == hi when none);
 * holes[r] whether the span holds keys it does not see. Buffers of the caller. */
typedef struct {
    unsigned char *vis, *holes;
    int64_t *lo, *hi, ld;
} attn_tile_rows;

/* Fills T for the rows i0 .. i0+mq-1 (head h) against the keys [j0, j0+nk) under P's
 * pattern, each row clipped to its [lo[r], hi[r]) (causal, key_lengths, bias range). */
void attn_pattern_tile(const attn_plan *P, int64_t h, int64_t i0, int64_t mq, int64_t j0, int64_t nk, const int64_t *lo,
                       const int64_t *hi, const attn_tile_rows *T);

/* The tile map of P's pattern for P's block_q x block_k tiles (in the arena; NULL after
 * heed_graph_fail). */
const attn_tile_map *attn_tile_map_build(heed_graph *g, const attn_plan *P);

/* The default flash tiles where P leaves them 0. */
void attn_flash_blocks(attn_plan *P, heed_dtype dtype);

/* Tests: the (query tile, key tile) pairs the flash kernels entered, forward and backward
 * together, since the last call (then reset). */
int64_t flash_take_tile_visits(void);

/* ---------------------------------------------------------------- implementations */

/* Both return the output [B,H,Nq,dv] recorded on the tape (NULL on error). The
 * materialised one also returns the weights [B,H,Nq,Nk] in *weights when asked. */
heed_tensor *attn_materialised(heed_graph *g, heed_tensor *q, heed_tensor *k, heed_tensor *v, heed_tensor *bias,
                               const attn_plan *plan, heed_tensor **weights);
heed_tensor *attn_flash(heed_graph *g, heed_tensor *q, heed_tensor *k, heed_tensor *v, heed_tensor *bias,
                        const attn_plan *plan);

#endif
