/* Sparse attention patterns (heed_attn_pattern; docs/attention.md, "Sparse patterns"):
 * checking the options, the random-block table, which keys a row sees inside a tile, and
 * which tiles hold a visible pair at all. Flash forward, flash backward and the
 * materialised path all ask attn_pattern_tile, so they mask exactly the same pairs.
 *
 * Query i sits at position p = i + (Nk - Nq). The pattern is a union of parts, each a set
 * of keys per position (before causal and key_lengths cut it):
 *   window w, dilation t:  { p + n t : |n| < w }
 *   global G:              all keys if p in G, else G
 *   random (r, s):         the r key blocks R(h, floor(p / s)), each [u s, u s + s)
 *   strided l:             { j : |p - j| < l } u { j : (p - j) mod l = 0 }
 *   fixed (l, c):          [floor(p / l) l, floor(p / l) l + l) u { j : j mod l >= l - c }
 *
 * The tile map: for a query tile the positions are one interval [dmin, dmax], and each
 * part's keys over that interval are a few key intervals that can be written down
 * exactly, causal included (a key range derived from rows [pa, pb] is cut at pb). So the
 * map lists exactly the tiles that hold a visible pair (tests/test_attention_sparse.c
 * checks it against the brute-force mask), and building it costs O(tiles listed + parts)
 * per query tile: flash's work is O(visible pairs d), never O(N^2). */
#include "internal.h"

#include <stdlib.h>

static int64_t floordiv(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }
static int64_t ceildiv(int64_t a, int64_t b) { return -floordiv(-a, b); }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* First index of the sorted list at or above x. */
static int64_t lower_bound(const int64_t *list, int64_t n, int64_t x) {
    int64_t a = 0, z = n;
    while (a < z) {
        int64_t mid = a + (z - a) / 2;
        if (list[mid] < x) a = mid + 1;
        else z = mid;
    }
    return a;
}

/* ---------------------------------------------------------------- setup */

/* The r random key blocks of query block u, head h: Floyd's sampling of r distinct
 * numbers out of n (each draw uniform on [0, j] for j = n - r .. n - 1; when it repeats an
 * earlier pick, j itself is taken), one Philox block per draw keyed by the seed with the
 * counter (draw, u, h), then sorted. */
static void draw_blocks(uint64_t seed, int64_t h, int64_t u, int64_t n, int64_t r, int64_t *out) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (int64_t x = 0; x < r; x++) {
        int64_t j = n - r + x;
        uint32_t w[4];
        const uint32_t ctr[4] = {(uint32_t)x, (uint32_t)(uint64_t)u, (uint32_t)((uint64_t)u >> 32), (uint32_t)h};
        heed_philox4x32(key, ctr, w);
        uint64_t bits = (uint64_t)w[0] | (uint64_t)w[1] << 32;
        int64_t t = (int64_t)(((unsigned __int128)bits * (uint64_t)(j + 1)) >> 64);
        bool seen = false;
        for (int64_t y = 0; y < x && !seen; y++) seen = out[y] == t;
        out[x] = seen ? j : t;
    }
    qsort(out, (size_t)r, sizeof *out, cmp_i64);
}

bool attn_pattern_setup(heed_graph *g, const char *op, const heed_attention_opts *opts, attn_plan *P) {
    const heed_attn_pattern *s = &opts->pattern;
    int64_t Nk = P->Nk;
    if (opts->window < 0)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: window = %lld (must be >= 0; 0 means none)", op,
                               (long long)opts->window),
               false;
    if (s->dilation < 0)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: pattern.dilation = %lld (must be >= 1; 0 means 1)", op,
                               (long long)s->dilation),
               false;
    if (s->dilation > 1 && opts->window == 0)
        return heed_graph_fail(g, HEED_ERR_ARG,
                               "%s: pattern.dilation = %lld with window = 0 (a dilated window needs a window > 0)", op,
                               (long long)s->dilation),
               false;
    if (s->n_global < 0 || (s->n_global > 0 && !s->global))
        return heed_graph_fail(g, HEED_ERR_ARG,
                               "%s: pattern.n_global = %lld with pattern.global %s (need n_global >= 0 positions)", op,
                               (long long)s->n_global, s->global ? "set" : "NULL"),
               false;
    for (int64_t x = 0; x < s->n_global; x++)
        if (s->global[x] < 0 || s->global[x] >= Nk)
            return heed_graph_fail(g, HEED_ERR_ARG,
                                   "%s: pattern.global[%lld] = %lld (must be a key position in [0, Nk = %lld))", op,
                                   (long long)x, (long long)s->global[x], (long long)Nk),
                   false;
    if (s->random_blocks < 0 || s->block < 0)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: pattern.random_blocks = %lld, pattern.block = %lld (must be >= 0)",
                               op, (long long)s->random_blocks, (long long)s->block),
               false;
    int64_t rsize = s->block ? s->block : 64, nkb = (Nk + rsize - 1) / rsize;
    if (s->random_blocks > nkb)
        return heed_graph_fail(g, HEED_ERR_ARG,
                               "%s: pattern.random_blocks = %lld, but Nk = %lld keys make only %lld blocks of %lld", op,
                               (long long)s->random_blocks, (long long)Nk, (long long)nkb, (long long)rsize),
               false;
    if (s->strided < 0 || s->fixed < 0)
        return heed_graph_fail(g, HEED_ERR_ARG,
                               "%s: pattern.strided = %lld, pattern.fixed = %lld (must be >= 0; 0 means off)", op,
                               (long long)s->strided, (long long)s->fixed),
               false;
    if (s->summary < 0 || s->summary > s->fixed)
        return heed_graph_fail(g, HEED_ERR_ARG,
                               "%s: pattern.summary = %lld (must be in [1, pattern.fixed = %lld]; 0 means 1)", op,
                               (long long)s->summary, (long long)s->fixed),
               false;

    /* Lengths beyond every distance are cut to L = Nq + Nk + 1 (|p - j| < L for every query
     * position p in [Nk - Nq, Nk) and key j in [0, Nk)) without changing the pattern, so no
     * sum below can overflow: a window of w steps of t sees |n| t < L at most; a stride of
     * L or more already shows every key; a fixed block of l >= L holds every key for p >= 0
     * and none for p < 0, as a block of L does, and its summary keys j >= l - c are those
     * j >= L - (c - (l - L)) (none when c <= l - L: summary 0). */
    attn_pattern *A = &P->pat;
    int64_t L = P->Nq + Nk + 1, t = s->dilation > 1 ? min64(s->dilation, L) : 1;
    P->window = min64(opts->window, L / t + 1);
    *A = (attn_pattern){.dilation = t,
                        .strided = min64(s->strided, L),
                        .fixed = s->fixed,
                        .summary = s->fixed ? (s->summary ? s->summary : 1) : 0};
    if (A->fixed > L) A->summary = max64(A->summary - (A->fixed - L), 0), A->fixed = L;
    A->on = s->dilation > 1 || s->n_global > 0 || s->random_blocks > 0 || s->strided > 0 || s->fixed > 0;
    if (s->n_global > 0) {
        int64_t *gl = heed_graph_alloc(g, (size_t)s->n_global * sizeof *gl);
        if (!gl) return false;
        memcpy(gl, s->global, (size_t)s->n_global * sizeof *gl);
        qsort(gl, (size_t)s->n_global, sizeof *gl, cmp_i64);
        int64_t n = 0;
        for (int64_t x = 0; x < s->n_global; x++)
            if (n == 0 || gl[x] != gl[n - 1]) gl[n++] = gl[x];
        A->global = gl, A->n_global = n;
    }
    if (s->random_blocks > 0 && P->Nq > 0) {
        /* Query blocks of the positions Nk - Nq .. Nk - 1. */
        A->rblocks = s->random_blocks, A->rsize = rsize;
        A->rq0 = floordiv(Nk - P->Nq, rsize);
        A->rnq = floordiv(Nk - 1, rsize) - A->rq0 + 1;
        int64_t per = A->rnq * A->rblocks;
        int64_t *tab = heed_graph_alloc(g, (size_t)(P->H * per) * sizeof *tab);
        if (!tab) return false;
        for (int64_t h = 0; h < P->H; h++)
            for (int64_t u = 0; u < A->rnq; u++)
                draw_blocks(s->seed, h, A->rq0 + u, nkb, A->rblocks, tab + h * per + u * A->rblocks);
        A->rtable = tab;
    }
    return true;
}

/* ---------------------------------------------------------------- one row */

static bool is_global(const attn_pattern *A, int64_t p) {
    int64_t x = lower_bound(A->global, A->n_global, p);
    return x < A->n_global && A->global[x] == p;
}

/* Sets vis[j - j0] = 1 for each key j in [j0, j1) that the pattern's union shows the query
 * at position p (head h); leaves the rest. */
static void mark_row(const attn_plan *P, int64_t h, int64_t p, int64_t j0, int64_t j1, unsigned char *vis) {
    const attn_pattern *A = &P->pat;
#define MARK_RANGE(a, z)                                                                                               \
    do {                                                                                                               \
        int64_t a_ = max64((a), j0), z_ = min64((z), j1);                                                              \
        if (a_ < z_) memset(vis + (a_ - j0), 1, (size_t)(z_ - a_));                                                    \
    } while (0)
    if (A->n_global && is_global(A, p)) {
        MARK_RANGE(j0, j1);
        return;
    }
    if (P->window > 0) {
        int64_t t = A->dilation, w = P->window;
        int64_t na = max64(ceildiv(j0 - p, t), 1 - w), nz = min64(floordiv(j1 - 1 - p, t), w - 1);
        for (int64_t n = na; n <= nz; n++) vis[p + n * t - j0] = 1;
    }
    for (int64_t x = lower_bound(A->global, A->n_global, j0); x < A->n_global && A->global[x] < j1; x++)
        vis[A->global[x] - j0] = 1;
    if (A->rblocks) {
        const int64_t *R = A->rtable + (h * A->rnq + floordiv(p, A->rsize) - A->rq0) * A->rblocks;
        for (int64_t x = 0; x < A->rblocks; x++) MARK_RANGE(R[x] * A->rsize, (R[x] + 1) * A->rsize);
    }
    if (A->strided) {
        int64_t l = A->strided;
        MARK_RANGE(p - l + 1, p + l);
        for (int64_t j = j0 + (p - j0 - floordiv(p - j0, l) * l); j < j1; j += l) vis[j - j0] = 1;
    }
    if (A->fixed) {
        int64_t l = A->fixed, c = A->summary, base = floordiv(p, l) * l;
        MARK_RANGE(base, base + l);
        for (int64_t m = floordiv(j0, l); m * l + l - c < j1; m++) MARK_RANGE(m * l + l - c, m * l + l);
    }
#undef MARK_RANGE
}

void attn_pattern_tile(const attn_plan *P, int64_t h, int64_t i0, int64_t mq, int64_t j0, int64_t nk, const int64_t *lo,
                       const int64_t *hi, const attn_tile_rows *T) {
    for (int64_t r = 0; r < mq; r++) {
        unsigned char *v = T->vis + r * T->ld;
        int64_t a = max64(lo[r], j0), z = min64(hi[r], j0 + nk), first = j0, end = j0, count = 0;
        memset(v, 0, (size_t)nk);
        if (a < z) {
            mark_row(P, h, i0 + r + P->Nk - P->Nq, a, z, v + (a - j0));
            for (int64_t j = a; j < z; j++)
                if (v[j - j0]) {
                    if (count++ == 0) first = j;
                    end = j + 1;
                }
        }
        T->lo[r] = first, T->hi[r] = end, T->holes[r] = count < end - first;
    }
}

/* ---------------------------------------------------------------- the tile map */

typedef struct {
    int64_t Nk, bk, n;
    unsigned char *mark; /* [nkt] */
    int32_t *list;       /* [nkt]: the tiles marked, in marking order */
} tile_set;

/* Marks the tiles holding keys [ja, jb] (inclusive; clipped to [0, Nk)). */
static void add_keys(tile_set *T, int64_t ja, int64_t jb) {
    ja = max64(ja, 0), jb = min64(jb, T->Nk - 1);
    for (int64_t u = ja / T->bk; ja <= jb && u <= jb / T->bk; u++)
        if (!T->mark[u]) T->mark[u] = 1, T->list[T->n++] = (int32_t)u;
}

/* The tiles with a pair visible to some query at positions [dmin, dmax] (head h), before
 * key_lengths; each part exact under causal (see the file comment). */
static void query_tile_keys(const attn_plan *P, int64_t h, int64_t dmin, int64_t dmax, tile_set *T) {
    const attn_pattern *A = &P->pat;
    bool causal = P->causal;
    int64_t Nk = P->Nk, top = causal ? dmax : Nk - 1, span = dmax - dmin + 1; /* no key above top is seen */
    if (P->window > 0) { /* keys p + n t, n in [1 - w, nmax]: one interval per n, merged when t <= span */
        int64_t t = A->dilation, w = P->window, nmax = causal ? 0 : w - 1;
        if (t <= span) add_keys(T, dmin + (1 - w) * t, dmax + nmax * t);
        else
            for (int64_t n = 1 - w; n <= nmax; n++) add_keys(T, dmin + n * t, dmax + n * t);
    }
    if (A->n_global) {
        int64_t x = lower_bound(A->global, A->n_global, dmax + 1) - 1; /* the last global position <= dmax */
        if (x >= 0 && A->global[x] >= dmin) add_keys(T, 0, causal ? A->global[x] : Nk - 1);
        for (x = 0; x < A->n_global && A->global[x] <= top; x++) add_keys(T, A->global[x], A->global[x]);
    }
    if (A->rblocks) {
        int64_t s = A->rsize;
        for (int64_t u = floordiv(dmin, s); u <= floordiv(dmax, s); u++) {
            int64_t pb = min64(dmax, u * s + s - 1); /* the last position of this query block in the tile */
            const int64_t *R = A->rtable + (h * A->rnq + u - A->rq0) * A->rblocks;
            for (int64_t x = 0; x < A->rblocks; x++)
                add_keys(T, R[x] * s, causal ? min64(R[x] * s + s - 1, pb) : R[x] * s + s - 1);
        }
    }
    if (A->strided) {
        int64_t l = A->strided;
        add_keys(T, dmin - l + 1, causal ? dmax : dmax + l - 1);
        if (l <= span) add_keys(T, 0, top); /* consecutive residue intervals touch */
        else {
            for (int64_t n = 1; dmax - n * l >= 0; n++) add_keys(T, dmin - n * l, dmax - n * l);
            for (int64_t n = 1; !causal && dmin + n * l < Nk; n++) add_keys(T, dmin + n * l, dmax + n * l);
        }
    }
    if (A->fixed) {
        int64_t l = A->fixed, c = A->summary;
        add_keys(T, floordiv(dmin, l) * l, causal ? dmax : floordiv(dmax, l) * l + l - 1);
        for (int64_t m = 0; m * l + l - c <= top; m++) add_keys(T, m * l + l - c, min64(m * l + l - 1, top));
    }
}

const attn_tile_map *attn_tile_map_build(heed_graph *g, const attn_plan *P) {
    int64_t bq = P->block_q, bk = P->block_k, Nq = P->Nq, Nk = P->Nk, off = Nk - Nq;
    int64_t nqt = (Nq + bq - 1) / bq, nkt = (Nk + bk - 1) / bk, heads = P->pat.rblocks ? P->H : 1;
    attn_tile_map *M = heed_graph_alloc(g, sizeof *M);
    int64_t *q_start = heed_graph_alloc(g, (size_t)(heads * (nqt + 1)) * sizeof *q_start);
    int64_t *k_start = heed_graph_alloc(g, (size_t)(heads * (nkt + 1)) * sizeof *k_start);
    int64_t *fill = heed_graph_alloc(g, (size_t)(nkt + 1) * sizeof *fill);
    tile_set T = {.Nk = Nk,
                  .bk = bk,
                  .mark = heed_graph_alloc(g, (size_t)nkt + 1),
                  .list = heed_graph_alloc(g, (size_t)(nkt + 1) * sizeof(int32_t))};
    if (!M || !q_start || !k_start || !fill || !T.mark || !T.list) return NULL;
    memset(T.mark, 0, (size_t)nkt);
    /* Two passes over the query tiles: count, then fill (the lists are cheap to redo). */
    int32_t *k_tiles = NULL, *q_tiles = NULL;
    for (int pass = 0; pass < 2; pass++) {
        int64_t total = 0;
        for (int64_t h = 0; h < heads; h++) {
            for (int64_t t = 0; t < nqt; t++) {
                q_start[h * (nqt + 1) + t] = total;
                T.n = 0;
                query_tile_keys(P, h, t * bq + off, min64(t * bq + bq, Nq) - 1 + off, &T);
                if (pass) {
                    qsort(T.list, (size_t)T.n, sizeof *T.list, cmp_i32);
                    memcpy(k_tiles + total, T.list, (size_t)T.n * sizeof *T.list);
                }
                for (int64_t x = 0; x < T.n; x++) T.mark[T.list[x]] = 0;
                total += T.n;
            }
            q_start[h * (nqt + 1) + nqt] = total;
        }
        if (!pass) {
            k_tiles = heed_graph_alloc(g, (size_t)(total + 1) * sizeof *k_tiles);
            q_tiles = heed_graph_alloc(g, (size_t)(total + 1) * sizeof *q_tiles);
            if (!k_tiles || !q_tiles) return NULL;
        }
    }
    /* The transpose (counting sort by key tile; query tiles stay ascending). */
    for (int64_t h = 0; h < heads; h++) {
        int64_t *ks = k_start + h * (nkt + 1);
        const int64_t *qs = q_start + h * (nqt + 1);
        memset(ks, 0, (size_t)(nkt + 1) * sizeof *ks);
        for (int64_t x = qs[0]; x < qs[nqt]; x++) ks[k_tiles[x] + 1]++;
        ks[0] = qs[0];
        for (int64_t u = 0; u < nkt; u++) ks[u + 1] += ks[u];
        memcpy(fill, ks, (size_t)nkt * sizeof *fill);
        for (int64_t t = 0; t < nqt; t++)
            for (int64_t x = qs[t]; x < qs[t + 1]; x++) q_tiles[fill[k_tiles[x]]++] = (int32_t)t;
    }
    *M = (attn_tile_map){.nqt = nqt,
                         .nkt = nkt,
                         .heads = heads,
                         .q_start = q_start,
                         .k_start = k_start,
                         .k_tiles = k_tiles,
                         .q_tiles = q_tiles};
    return M;
}

/* ---------------------------------------------------------------- the cost of a call */

heed_status heed_attention_cost(heed_ctx *ctx, const heed_attention_opts *opts, heed_dtype dtype, int64_t H, int64_t Nq,
                                int64_t Nk, int64_t *pairs, int64_t *tiles) {
    const char *op = "heed_attention_cost";
    if (!ctx) return HEED_ERR_ARG;
    heed_attention_opts o = opts ? *opts : (heed_attention_opts){0};
    if (dtype != HEED_F32 && dtype != HEED_F64)
        return heed_ctx_fail(ctx, HEED_ERR_DTYPE, "%s: dtype %d (attention runs in f32 or f64)", op, (int)dtype);
    if (H < 1 || Nq < 0 || Nk < 0)
        return heed_ctx_fail(ctx, HEED_ERR_SHAPE, "%s: H = %lld, Nq = %lld, Nk = %lld (need H >= 1, Nq, Nk >= 0)", op,
                             (long long)H, (long long)Nq, (long long)Nk);
    if (o.block_q < 0 || o.block_q > 1024 || o.block_k < 0 || o.block_k > 1024)
        return heed_ctx_fail(ctx, HEED_ERR_ARG,
                             "%s: block_q = %d, block_k = %d (tiles must be in [1, 1024]; 0 = default)", op, o.block_q,
                             o.block_k);
    heed_graph *g = heed_graph_new(ctx);
    if (!g) return heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory", op);
    attn_plan P = {.B = 1, .H = H, .Nq = Nq, .Nk = Nk, .causal = o.causal, .block_q = o.block_q, .block_k = o.block_k};
    attn_flash_blocks(&P, dtype);
    int64_t bq = P.block_q, bk = P.block_k, n_pairs = 0, n_tiles = 0;
    const attn_tile_map *M = NULL;
    int64_t *lo = NULL, *hi = NULL;
    attn_tile_rows T = {.ld = bk};
    if (attn_pattern_setup(g, op, &o, &P)) {
        M = P.pat.on ? attn_tile_map_build(g, &P) : NULL;
        T.vis = heed_graph_alloc(g, (size_t)(bq * bk) + 1), T.holes = heed_graph_alloc(g, (size_t)bq);
        lo = heed_graph_alloc(g, (size_t)bq * sizeof *lo), hi = heed_graph_alloc(g, (size_t)bq * sizeof *hi);
        T.lo = heed_graph_alloc(g, (size_t)bq * sizeof *T.lo), T.hi = heed_graph_alloc(g, (size_t)bq * sizeof *T.hi);
    }
    if (!heed_graph_ok(g)) {
        heed_status st = heed_ctx_fail(ctx, heed_graph_status(g), "%s", heed_graph_error(g));
        heed_graph_free(g);
        return st;
    }
    for (int64_t h = 0; h < H; h++)
        for (int64_t i0 = 0; i0 < Nq; i0 += bq) {
            int64_t mq = min64(bq, Nq - i0), jlo = Nk, jhi = 0;
            for (int64_t r = 0; r < mq; r++) {
                attn_row_keys(&P, 0, i0 + r, &lo[r], &hi[r]);
                if (lo[r] < hi[r]) jlo = min64(jlo, lo[r]), jhi = max64(jhi, hi[r]);
                if (!M) n_pairs += hi[r] - lo[r];
            }
            if (!M) { /* flash steps through [jlo, jhi) from jlo */
                n_tiles += jlo < jhi ? (jhi - jlo + bk - 1) / bk : 0;
                continue;
            }
            const int64_t *qs = M->q_start + (M->heads > 1 ? h : 0) * (M->nqt + 1) + i0 / bq;
            n_tiles += qs[1] - qs[0];
            for (int64_t x = qs[0]; x < qs[1]; x++) {
                int64_t j0 = M->k_tiles[x] * bk;
                attn_pattern_tile(&P, h, i0, mq, j0, min64(bk, Nk - j0), lo, hi, &T);
                for (int64_t r = 0; r < mq; r++)
                    for (int64_t j = T.lo[r]; j < T.hi[r]; j++) n_pairs += T.vis[r * bk + j - j0];
            }
        }
    heed_graph_free(g);
    if (pairs) *pairs = n_pairs;
    if (tiles) *tiles = n_tiles;
    return HEED_OK;
}
