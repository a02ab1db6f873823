/* Sparse attention patterns (heed_attn_pattern): every pattern and their unions against
 * dense materialised attention under the same mask given as a -inf bias, built here
 * element by element from the definitions (forward and the gradients of q, k, v; flash
 * on ragged tiles, f64 and f32, causal, Nq != Nk, key lengths, a negative scale, a bias
 * with its gradient, dropout), f64 gradient checks, f32 against f64, the tiles flash
 * visits against a brute-force count of the tiles holding a visible pair (forward and
 * backward), their linear growth in N, and bad input. */
#include "check.h"
#include "heed/elementwise.h"
#include "heed/reduce.h"
#include "check_grad32.h"
#include "graph/internal.h"
#include "graph/simd.h"
#include "ops/attention/internal.h"

static heed_ctx *ctx;

/* ---------------------------------------------------------------- cases */

typedef struct {
    int64_t B, H, Nq, Nk, d, dv;
    bool causal;
    int64_t window;
    heed_attn_pattern pat;
    const int64_t *lengths;
    double scale, dropout;
    bool bias; /* a random [H,Nq,Nk] bias with its gradient, on top of the mask */
    heed_attn_impl impl;
    int bq, bk;
    bool weights_out;
} scase;

/* ---------------------------------------------------------------- the mask from the definitions */

/* The random key blocks of query block u, head h, as docs/attention.md states the draw:
 * Floyd's sampling of r of n blocks, draw x (j = n - r + x) uniform on [0, j] as the top
 * of (64 bits of Philox(key = seed, counter = (x, u lo, u hi, h)) words 0, 1) * (j + 1),
 * taking j when the draw repeats an earlier pick. in[kb] = 1 for the r blocks. */
static void ref_random_blocks(uint64_t seed, int64_t h, int64_t u, int64_t n, int64_t r, unsigned char *in) {
    memset(in, 0, (size_t)n);
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (int64_t x = 0; x < r; x++) {
        int64_t j = n - r + x;
        uint32_t w[4], ctr[4] = {(uint32_t)x, (uint32_t)(uint64_t)u, (uint32_t)((uint64_t)u >> 32), (uint32_t)h};
        heed_philox4x32(key, ctr, w);
        unsigned __int128 prod = (unsigned __int128)((uint64_t)w[0] | (uint64_t)w[1] << 32) * (uint64_t)(j + 1);
        int64_t t = (int64_t)(prod >> 64);
        in[in[t] ? j : t] = 1;
    }
}

/* floor(a / b) for b > 0. */
static int64_t fdiv(int64_t a, int64_t b) { return a / b - (a % b < 0); }

/* mask[((b*H + h)*Nq + i)*Nk + j] = 1 where query i of batch b, head h sees key j. */
static unsigned char *ref_mask(const scase *c) {
    int64_t B = c->B, H = c->H, Nq = c->Nq, Nk = c->Nk, off = Nk - Nq;
    const heed_attn_pattern *P = &c->pat;
    int64_t dil = P->dilation > 1 ? P->dilation : 1, s = P->block ? P->block : 64, nkb = (Nk + s - 1) / s;
    int64_t l_fix = P->fixed, c_fix = P->summary ? P->summary : 1;
    bool parts = dil > 1 || P->n_global || P->random_blocks || P->strided || P->fixed;
    unsigned char *m = calloc((size_t)(B * H * Nq * Nk + 1), 1), *rnd = calloc((size_t)nkb + 1, 1);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Nq; i++) {
                int64_t p = i + off;
                if (P->random_blocks) ref_random_blocks(P->seed, h, fdiv(p, s), nkb, P->random_blocks, rnd);
                bool p_global = false;
                for (int64_t x = 0; x < P->n_global; x++) p_global |= P->global[x] == p;
                for (int64_t j = 0; j < Nk; j++) {
                    bool see;
                    if (!parts) see = !c->window || llabs(p - j) < c->window;
                    else {
                        bool j_global = false;
                        for (int64_t x = 0; x < P->n_global; x++) j_global |= P->global[x] == j;
                        see = (c->window && (j - p) % dil == 0 && llabs(j - p) / dil < c->window) || p_global ||
                              j_global || (P->random_blocks && rnd[j / s]) ||
                              (P->strided && (llabs(p - j) < P->strided || (p - j) % P->strided == 0)) ||
                              (l_fix && (fdiv(j, l_fix) == fdiv(p, l_fix) || j % l_fix >= l_fix - c_fix));
                    }
                    if (c->causal && j > p) see = false;
                    if (c->lengths && j >= c->lengths[b]) see = false;
                    m[((b * H + h) * Nq + i) * Nk + j] = see;
                }
            }
    free(rnd);
    return m;
}

/* ---------------------------------------------------------------- running a case */

static heed_attention_opts opts_of(const scase *c, bool dense, heed_tensor *bias) {
    heed_attention_opts o = {.scale = c->scale,
                             .key_lengths = c->lengths,
                             .bias = bias,
                             .dropout = c->dropout,
                             .impl = c->impl,
                             .block_q = c->bq,
                             .block_k = c->bk};
    if (!dense) o.causal = c->causal, o.window = c->window, o.pattern = c->pat;
    return o;
}

/* The pattern call, inputs q, k, v (and the bias). */
static heed_tensor *fn_sparse(heed_graph *g, heed_tensor **x, void *u) {
    const scase *c = u;
    heed_tensor *w = NULL;
    heed_attention_opts o = opts_of(c, false, c->bias ? x[3] : NULL);
    heed_tensor *y = heed_attention(g, x[0], x[1], x[2], &o, c->weights_out ? &w : NULL);
    return c->weights_out ? w : y;
}

/* Dense materialised attention, the mask as a -inf bias [B,H,Nq,Nk] (plus the case's
 * bias). x[3] is the mask bias, x[4] the case's bias. */
static heed_tensor *fn_dense(heed_graph *g, heed_tensor **x, void *u) {
    const scase *c = u;
    heed_tensor *w = NULL, *bias = c->bias ? heed_add(g, x[3], x[4]) : x[3];
    heed_attention_opts o = opts_of(c, true, bias);
    o.impl = HEED_ATTN_MATERIALISED, o.block_q = o.block_k = 0, o.key_lengths = NULL;
    heed_tensor *y = heed_attention(g, x[0], x[1], x[2], &o, c->weights_out ? &w : NULL);
    return c->weights_out ? w : y;
}

static double *random_data(int64_t n, uint64_t stream) {
    heed_rng r = heed_rng_make(99, stream);
    double *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = 2 * heed_rng_uniform(&r) - 1;
    return p;
}

typedef struct {
    double *y, *grad[4];
    int64_t ny, n[4];
} result;

static void free_result(result *R) {
    free(R->y);
    for (int i = 0; i < 4; i++) free(R->grad[i]);
}

/* A copy of t's values as doubles (n of them), or NULL for no tensor. */
static double *values_of(const heed_tensor *t, int64_t *n) {
    if (!t) return NULL;
    double *v = malloc((size_t)(t->numel + 1) * sizeof *v);
    for (int64_t e = 0; e < t->numel; e++) v[e] = heed_get(t, e);
    *n = t->numel;
    return v;
}

/* Runs fn (sparse or dense) in dtype dt on the case's data (q, k, v, bias) with the mask
 * bias for the dense one; backward from the cotangent cot into the gradients of q, k, v,
 * bias. The op RNG starts from (seed, counter) so dropout draws the same in each run. */
static result run(const scase *c, bool dense, heed_dtype dt, double *const *data, const double *mask_bias,
                  const double *cot, uint64_t seed, uint64_t counter) {
    result R = {0};
    heed_graph *g = heed_graph_new(ctx);
    heed_shape shapes[4] = {HEED_SHAPE(c->B, c->H, c->Nq, c->d), HEED_SHAPE(c->B, c->H, c->Nk, c->d),
                            HEED_SHAPE(c->B, c->H, c->Nk, c->dv), HEED_SHAPE(c->H, c->Nq, c->Nk)};
    heed_tensor *x[5];
    int n = c->bias ? 4 : 3;
    for (int i = 0; i < n; i++) x[i] = heed_requires_grad(heed_input_f64(g, dt, shapes[i], data[i]));
    if (dense) {
        if (c->bias) x[4] = x[3];
        x[3] = heed_input_f64(g, dt, HEED_SHAPE(c->B, c->H, c->Nq, c->Nk), mask_bias);
    }
    heed_ctx_set_rng_state(ctx, seed, counter);
    heed_tensor *y = dense ? fn_dense(g, x, (void *)c) : fn_sparse(g, x, (void *)c);
    CHECK(y != NULL, "run (%s): %s", dense ? "dense" : "sparse", heed_graph_error(g));
    if (y) {
        R.y = values_of(y, &R.ny);
        CHECK(heed_backward_with(g, y, heed_input_f64(g, dt, heed_tensor_shape(y), cot)) == HEED_OK, "backward: %s",
              heed_graph_error(g));
        for (int i = 0; i < n; i++) R.grad[i] = values_of(heed_grad(g, dense && i == 3 ? x[4] : x[i]), &R.n[i]);
    }
    heed_graph_free(g);
    return R;
}

/* Normwise relative error of a against ref (check_norm: a NaN is an infinite error). */
static double rel_err(const double *a, const double *ref, int64_t n) {
    check_norm c = check_norm_start(1e-3);
    for (int64_t i = 0; i < n; i++) check_norm_add(&c, a[i], ref[i]);
    return c.err / c.scale;
}

static int64_t count_visible(const unsigned char *m, int64_t n) {
    int64_t v = 0;
    for (int64_t e = 0; e < n; e++) v += m[e];
    return v;
}

/* The sparse call (impl and tiles of c) against the dense masked one in dtype dt: output
 * and every gradient within tol (normwise). */
static void compare_with_dense(const scase *c, heed_dtype dt, double tol, const char *what) {
    int64_t nm = c->B * c->H * c->Nq * c->Nk;
    unsigned char *mask = ref_mask(c);
    double *mb = malloc((size_t)(nm + 1) * sizeof *mb);
    for (int64_t e = 0; e < nm; e++) mb[e] = mask[e] ? 0 : -INFINITY;
    int64_t sizes[4] = {c->B * c->H * c->Nq * c->d, c->B * c->H * c->Nk * c->d, c->B * c->H * c->Nk * c->dv,
                        c->H * c->Nq * c->Nk};
    double *data[4];
    for (int i = 0; i < 4; i++) data[i] = random_data(sizes[i], 10 + (uint64_t)i);
    double *cot = random_data(c->weights_out ? nm : c->B * c->H * c->Nq * c->dv, 20);
    result S = run(c, false, dt, data, mb, cot, 5, 1), D = run(c, true, dt, data, mb, cot, 5, 1);
    if (S.y && D.y) {
        double e = S.ny == D.ny ? rel_err(S.y, D.y, D.ny) : INFINITY;
        CHECK(e <= tol, "%s %s: output error %.3g", what, dt == HEED_F32 ? "f32" : "f64", e);
        for (int i = 0; i < (c->bias ? 4 : 3); i++) {
            CHECK(S.grad[i] && D.grad[i] && S.n[i] == D.n[i], "%s: gradient %d missing", what, i);
            if (!S.grad[i] || !D.grad[i] || S.n[i] != D.n[i]) continue;
            e = rel_err(S.grad[i], D.grad[i], D.n[i]);
            CHECK(e <= tol, "%s %s: gradient of input %d error %.3g", what, dt == HEED_F32 ? "f32" : "f64", i, e);
        }
    }
    /* The test must see a sparse mask: some pairs hidden, some seen. */
    int64_t seen = count_visible(mask, nm);
    CHECK(seen > 0 && seen < nm, "%s: the mask shows %lld of %lld pairs", what, (long long)seen, (long long)nm);
    free_result(&S), free_result(&D);
    for (int i = 0; i < 4; i++) free(data[i]);
    free(cot), free(mask), free(mb);
}

/* ---------------------------------------------------------------- the patterns */

static const int64_t glob3[3] = {0, 17, 36}, glob2[2] = {20, 0}, glob1[1] = {5}, glob_rep[4] = {9, 2, 9, 30};
static const int64_t lens2[2] = {30, 11};

/* Each pattern alone and in unions, B = 2, H = 2, N = 37 (odd, several tiles). */
static scase pattern_case(int which) {
    scase c = {.B = 2, .H = 2, .Nq = 37, .Nk = 37, .d = 5, .dv = 3};
    switch (which) {
    case 0: c.window = 3, c.pat.dilation = 2; break;                          /* dilated window */
    case 1: c.pat.global = glob3, c.pat.n_global = 3; break;                  /* global alone */
    case 2: c.pat.random_blocks = 2, c.pat.block = 5, c.pat.seed = 11; break; /* random alone */
    case 3: c.pat.strided = 6; break;                                         /* strided */
    case 4: c.pat.fixed = 7, c.pat.summary = 2; break;                        /* fixed */
    case 5:
        c.window = 3, c.pat.global = glob2, c.pat.n_global = 2, c.pat.random_blocks = 1, c.pat.block = 4,
        c.pat.seed = 3;
        break;                                                                                 /* BigBird */
    case 6: c.window = 4, c.pat.dilation = 3, c.pat.global = glob1, c.pat.n_global = 1; break; /* Longformer */
    case 7: c.window = 2, c.pat.strided = 5, c.pat.fixed = 8; break;             /* strided + fixed + window */
    case 8: c.pat.fixed = 6, c.pat.global = glob_rep, c.pat.n_global = 4; break; /* repeated global positions */
    default: c.window = 2, c.pat.dilation = 9, c.pat.random_blocks = 3, c.pat.block = 3, c.pat.seed = 8; break;
    }
    return c;
}
#define N_PATTERNS 10

/* Shape and mask variants on top of a pattern. */
static scase shape_variant(scase c, int which) {
    switch (which) {
    case 0: break;
    case 1: c.causal = true; break;
    case 2: c.Nq = 13, c.Nk = 41, c.causal = true; break; /* decoding against longer keys */
    case 3: c.Nq = 41, c.Nk = 29; break;                  /* more queries than keys */
    case 4: c.Nq = 41, c.Nk = 29, c.causal = true; break; /* leading rows see nothing */
    default: c.lengths = lens2, c.causal = true; break;
    }
    /* global positions must be keys */
    static int64_t clipped[4];
    int64_t n = 0;
    for (int64_t x = 0; x < c.pat.n_global; x++)
        if (c.pat.global[x] < c.Nk) clipped[n++] = c.pat.global[x];
    if (c.pat.n_global) c.pat.global = clipped, c.pat.n_global = n;
    return c;
}
#define N_SHAPES 6

static const int tiles_list[][2] = {{0, 0}, {4, 8}, {8, 4}, {5, 7}, {16, 16}, {64, 3}};

static void matches_dense(void) {
    for (int p = 0; p < N_PATTERNS; p++)
        for (int s = 0; s < N_SHAPES; s++) {
            scase c = shape_variant(pattern_case(p), s);
            char what[96];
            c.impl = HEED_ATTN_MATERIALISED;
            snprintf(what, sizeof what, "pattern %d shape %d materialised", p, s);
            compare_with_dense(&c, HEED_F64, 1e-12, what);
            for (int t = 0; t < 6; t++) {
                c.impl = HEED_ATTN_FLASH, c.bq = tiles_list[t][0], c.bk = tiles_list[t][1];
                snprintf(what, sizeof what, "pattern %d shape %d flash %dx%d", p, s, c.bq, c.bk);
                compare_with_dense(&c, HEED_F64, 1e-12, what);
                if (t == 0 || t == 3) compare_with_dense(&c, HEED_F32, 1e-5, what);
            }
        }
}

/* A negative scale (the hidden keys' placeholder score must still scale to -inf), a
 * bias with its gradient, dropout (flash and materialised draw the same mask), the
 * returned weights. */
static void matches_dense_extras(void) {
    for (int impl = 0; impl < 2; impl++) {
        scase c = pattern_case(5);
        c.impl = impl ? HEED_ATTN_FLASH : HEED_ATTN_MATERIALISED, c.bq = 8, c.bk = 4;
        c.scale = -0.7;
        compare_with_dense(&c, HEED_F64, 1e-12, "negative scale");
        compare_with_dense(&c, HEED_F32, 1e-5, "negative scale");
        c.scale = 0, c.bias = true, c.causal = true;
        compare_with_dense(&c, HEED_F64, 1e-12, "bias with gradient");
        c.bias = false, c.dropout = 0.3;
        compare_with_dense(&c, HEED_F64, 1e-12, "dropout");
    }
    scase c = shape_variant(pattern_case(7), 2);
    c.impl = HEED_ATTN_MATERIALISED, c.weights_out = true;
    compare_with_dense(&c, HEED_F64, 1e-12, "weights");
    /* Lengths past every distance: the same pattern as the longest useful ones, and no
     * overflow (the sanitizer build checks that). */
    const struct {
        int64_t window;
        heed_attn_pattern pat;
        int shape;
    } huge[] = {
        {INT64_MAX / 2, {.dilation = INT64_MAX / 3}, 3},        /* only p itself */
        {INT64_MAX, {.dilation = 2}, 0},                        /* every other key */
        {0, {.strided = INT64_MAX}, 1},                         /* every key (causal) */
        {0, {.fixed = INT64_MAX, .summary = INT64_MAX - 3}, 3}, /* p >= 0: all; p < 0: keys j >= 3 */
        {0, {.fixed = INT64_MAX, .summary = 2}, 4},
    };
    for (size_t x = 0; x < sizeof huge / sizeof huge[0]; x++)
        for (int impl = 0; impl < 2; impl++) {
            c = shape_variant((scase){.B = 1, .H = 2, .Nq = 37, .Nk = 37, .d = 4, .dv = 3}, huge[x].shape);
            c.window = huge[x].window, c.pat = huge[x].pat;
            c.impl = impl ? HEED_ATTN_FLASH : HEED_ATTN_MATERIALISED, c.bq = 8, c.bk = 5;
            char what[64];
            snprintf(what, sizeof what, "huge lengths %zu impl %d", x, impl);
            compare_with_dense(&c, HEED_F64, 1e-12, what);
        }
}

/* Flash in f32 with threads (B H = 8 heads, and one head shared by the threads), AVX2
 * and portable kernels, larger N, default tiles, against the dense mask. */
static void matches_dense_f32_larger(void) {
    static const int64_t glob[3] = {0, 200, 411};
    for (int v = 0; v < 4; v++) {
        scase c = {.B = 2, .H = 4, .Nq = 413, .Nk = 413, .d = 32, .dv = 24, .window = 20, .impl = HEED_ATTN_FLASH};
        c.pat = (heed_attn_pattern){.global = glob, .n_global = 3, .random_blocks = 2, .block = 32, .seed = 5};
        if (v == 1) c.B = 1, c.H = 1, c.causal = true, c.pat.strided = 40;
        if (v == 2) c.pat = (heed_attn_pattern){.fixed = 64, .summary = 8}, c.causal = true, c.bq = 48, c.bk = 80;
        if (v == 3) c.pat = (heed_attn_pattern){.dilation = 7}, c.window = 9;
        heed__force_scalar(v == 3);
        char what[64];
        snprintf(what, sizeof what, "f32 larger %d", v);
        compare_with_dense(&c, HEED_F32, 1e-5, what);
    }
    heed__force_scalar(false);
}

/* ---------------------------------------------------------------- gradients */

static heed_tensor *fn_grad(heed_graph *g, heed_tensor **x, void *u) { return fn_sparse(g, x, u); }

static void gradcheck_patterns(void) {
    for (int p = 0; p < N_PATTERNS; p++)
        for (int s = 0; s < N_SHAPES; s += (p % 2 ? 1 : 2))
            for (int impl = 0; impl < 2; impl++) {
                scase c = shape_variant(pattern_case(p), s);
                c.B = 1, c.impl = impl ? HEED_ATTN_FLASH : HEED_ATTN_MATERIALISED, c.bq = 5, c.bk = 7;
                heed_gradcheck_input in[3] = {{HEED_SHAPE(c.B, c.H, c.Nq, c.d)},
                                              {HEED_SHAPE(c.B, c.H, c.Nk, c.d)},
                                              {HEED_SHAPE(c.B, c.H, c.Nk, c.dv)}};
                heed_gradcheck_opts o = {.seed = (uint64_t)(p * 10 + s), .max_per_tensor = 40};
                heed_gradcheck_result r;
                heed_status st = heed_gradcheck(ctx, fn_grad, &c, 3, in, &o, &r);
                CHECK(st == HEED_OK, "gradcheck pattern %d shape %d impl %d: %s", p, s, impl, heed_ctx_error(ctx));
            }
}

static void f32_vs_f64(void) {
    for (int p = 0; p < N_PATTERNS; p++)
        for (int impl = 0; impl < 2; impl++) {
            scase c = shape_variant(pattern_case(p), p % N_SHAPES);
            c.impl = impl ? HEED_ATTN_FLASH : HEED_ATTN_MATERIALISED;
            heed_gradcheck_input in[3] = {{HEED_SHAPE(c.B, c.H, c.Nq, c.d)},
                                          {HEED_SHAPE(c.B, c.H, c.Nk, c.d)},
                                          {HEED_SHAPE(c.B, c.H, c.Nk, c.dv)}};
            char what[64];
            snprintf(what, sizeof what, "f32 vs f64 pattern %d impl %d", p, impl);
            check_f32_vs_f64_grad(ctx, fn_grad, &c, 3, in, 1e-5, what);
        }
}

/* ---------------------------------------------------------------- the tiles flash visits */

/* The (query tile, key tile) pairs of one batch row holding a visible pair, over the heads. */
static int64_t ref_tiles(const scase *c, const unsigned char *mask, int64_t bq, int64_t bk) {
    int64_t n = 0;
    for (int64_t h = 0; h < c->H; h++)
        for (int64_t i0 = 0; i0 < c->Nq; i0 += bq)
            for (int64_t j0 = 0; j0 < c->Nk; j0 += bk) {
                bool any = false;
                for (int64_t i = i0; i < i0 + bq && i < c->Nq && !any; i++)
                    for (int64_t j = j0; j < j0 + bk && j < c->Nk && !any; j++) any = mask[(h * c->Nq + i) * c->Nk + j];
                n += any;
            }
    return n;
}

/* heed_attention_cost's pairs and tiles against the brute-force mask, and the kernels'
 * own count of the tiles they entered: exactly the tiles holding a visible pair, once in
 * the forward and once in the backward. */
static void tiles_visited(void) {
    static const int64_t glob[2] = {3, 250};
    scase cs[] = {
        {.B = 2,
         .H = 3,
         .Nq = 301,
         .Nk = 301,
         .d = 8,
         .dv = 8,
         .window = 16,
         .pat = {.global = glob, .n_global = 2, .random_blocks = 2, .block = 24, .seed = 9}},
        {.B = 2,
         .H = 3,
         .Nq = 301,
         .Nk = 301,
         .d = 8,
         .dv = 8,
         .window = 16,
         .causal = true,
         .pat = {.global = glob, .n_global = 2, .random_blocks = 2, .block = 24, .seed = 9}},
        {.B = 1, .H = 2, .Nq = 257, .Nk = 300, .d = 8, .dv = 8, .window = 5, .causal = true, .pat = {.dilation = 40}},
        {.B = 1, .H = 1, .Nq = 300, .Nk = 300, .d = 8, .dv = 8, .pat = {.strided = 70}},
        {.B = 1, .H = 1, .Nq = 300, .Nk = 300, .d = 8, .dv = 8, .causal = true, .pat = {.strided = 70}},
        {.B = 1, .H = 1, .Nq = 300, .Nk = 300, .d = 8, .dv = 8, .causal = true, .pat = {.fixed = 100, .summary = 3}},
        {.B = 1, .H = 1, .Nq = 290, .Nk = 300, .d = 8, .dv = 8, .pat = {.fixed = 100, .summary = 3}},
        {.B = 1,
         .H = 2,
         .Nq = 300,
         .Nk = 300,
         .d = 8,
         .dv = 8,
         .causal = true,
         .pat = {.random_blocks = 3, .block = 16, .seed = 4}},
    };
    const int tl[][2] = {{16, 16}, {32, 48}, {0, 0}};
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++)
        for (int t = 0; t < 3; t++)
            for (int dt = 0; dt < 2; dt++) {
                scase c = cs[ci];
                c.impl = HEED_ATTN_FLASH, c.bq = tl[t][0], c.bk = tl[t][1];
                heed_dtype dtype = dt ? HEED_F64 : HEED_F32;
                int64_t bq = c.bq ? c.bq : dt ? 64 : 128, bk = c.bk ? c.bk : dt ? 64 : 128;
                unsigned char *mask = ref_mask(&c);
                int64_t want_tiles = ref_tiles(&c, mask, bq, bk), want_pairs = count_visible(mask, c.H * c.Nq * c.Nk);
                int64_t total = c.H * ((c.Nq + bq - 1) / bq) * ((c.Nk + bk - 1) / bk), pairs = -1, tiles = -1;
                heed_attention_opts o = opts_of(&c, false, NULL);
                CHECK(heed_attention_cost(ctx, &o, dtype, c.H, c.Nq, c.Nk, &pairs, &tiles) == HEED_OK, "%s",
                      heed_ctx_error(ctx));
                CHECK(pairs == want_pairs && tiles == want_tiles,
                      "case %zu tiles %lldx%lld: cost gives %lld pairs, %lld tiles; the mask has %lld, %lld", ci,
                      (long long)bq, (long long)bk, (long long)pairs, (long long)tiles, (long long)want_pairs,
                      (long long)want_tiles);
                if (t == 0)
                    CHECK(want_tiles < total, "case %zu: the pattern leaves every tile (%lld)", ci, (long long)total);
                /* The kernels: forward, then backward. */
                heed_graph *g = heed_graph_new(ctx);
                heed_tensor *q = heed_requires_grad(heed_full(g, dtype, HEED_SHAPE(c.B, c.H, c.Nq, c.d), 0.1));
                heed_tensor *k = heed_requires_grad(heed_full(g, dtype, HEED_SHAPE(c.B, c.H, c.Nk, c.d), 0.2));
                heed_tensor *v = heed_requires_grad(heed_full(g, dtype, HEED_SHAPE(c.B, c.H, c.Nk, c.dv), 0.3));
                flash_take_tile_visits();
                heed_tensor *y = heed_attention(g, q, k, v, &o, NULL);
                int64_t fwd = flash_take_tile_visits();
                CHECK(y && heed_backward(g, heed_sum_all(g, y)) == HEED_OK, "%s", heed_graph_error(g));
                int64_t bwd = flash_take_tile_visits();
                CHECK(fwd == c.B * want_tiles && bwd == c.B * want_tiles,
                      "case %zu tiles %lldx%lld %s: flash entered %lld tiles forward, %lld backward; %lld hold a "
                      "visible pair",
                      ci, (long long)bq, (long long)bk, dt ? "f64" : "f32", (long long)fwd, (long long)bwd,
                      (long long)(c.B * want_tiles));
                heed_graph_free(g);
                free(mask);
            }
}

/* Without a pattern heed_attention_cost counts what the dense kernels do: the visible
 * pairs, and the key tiles the forward steps through from each query block's first key. */
static void dense_cost(void) {
    scase cs[] = {
        {.B = 2, .H = 2, .Nq = 301, .Nk = 301, .d = 8, .dv = 8, .window = 16},
        {.B = 1, .H = 3, .Nq = 200, .Nk = 301, .d = 8, .dv = 8, .window = 40, .causal = true},
        {.B = 1, .H = 1, .Nq = 301, .Nk = 250, .d = 8, .dv = 8, .causal = true},
        {.B = 1, .H = 1, .Nq = 77, .Nk = 99, .d = 8, .dv = 8},
    };
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
        scase c = cs[ci];
        c.impl = HEED_ATTN_FLASH, c.bq = 32, c.bk = 48;
        unsigned char *mask = ref_mask(&c);
        int64_t pairs = -1, tiles = -1, want_pairs = count_visible(mask, c.H * c.Nq * c.Nk);
        heed_attention_opts o = opts_of(&c, false, NULL);
        CHECK(heed_attention_cost(ctx, &o, HEED_F32, c.H, c.Nq, c.Nk, &pairs, &tiles) == HEED_OK, "%s",
              heed_ctx_error(ctx));
        heed_graph *g = heed_graph_new(ctx);
        heed_tensor *q = heed_full(g, HEED_F32, HEED_SHAPE(c.B, c.H, c.Nq, c.d), 0.1);
        heed_tensor *k = heed_full(g, HEED_F32, HEED_SHAPE(c.B, c.H, c.Nk, c.d), 0.2);
        flash_take_tile_visits();
        CHECK(heed_attention(g, q, k, k, &o, NULL) != NULL, "%s", heed_graph_error(g));
        int64_t fwd = flash_take_tile_visits();
        CHECK(pairs == want_pairs && fwd == c.B * tiles && tiles > 0,
              "case %zu: cost %lld pairs, %lld tiles; mask %lld pairs, forward entered %lld tiles", ci,
              (long long)pairs, (long long)tiles, (long long)want_pairs, (long long)fwd);
        heed_graph_free(g);
        free(mask);
    }
}

/* At a fixed number of keys per row (BigBird: window 128, 2 global, 2 random blocks of
 * 64), from N = 1024 to 65536: at most 9 tiles per query tile of 128 (3 of the window,
 * the global column, 2 x 2 random, and the global row's N / 128 once) and at most
 * 255 + 2 + 128 keys per row plus the two global rows -- O(N k) -- while the dense grid
 * has (N / 128)^2 tiles. */
static void linear_growth(void) {
    static const int64_t glob[2] = {0, 1};
    heed_attention_opts o = {.window = 128, .pattern = {.global = glob, .n_global = 2, .random_blocks = 2, .seed = 1}};
    for (int64_t n = 1024; n <= 65536; n *= 2) {
        int64_t pairs = 0, tiles = 0, nt = n / 128;
        CHECK(heed_attention_cost(ctx, &o, HEED_F32, 1, n, n, &pairs, &tiles) == HEED_OK, "%s", heed_ctx_error(ctx));
        CHECK(tiles >= 3 * nt - 2 && tiles <= 9 * nt, "N = %lld: %lld tiles", (long long)n, (long long)tiles);
        CHECK(pairs >= 128 * n && pairs <= n * (255 + 2 + 128) + 2 * n, "N = %lld: %lld pairs", (long long)n,
              (long long)pairs);
        if (n == 65536)
            CHECK(tiles * 50 < nt * nt, "N = %lld: %lld of %lld tiles", (long long)n, (long long)tiles,
                  (long long)(nt * nt));
    }
}

/* The random blocks: r distinct blocks per query block and head, fixed by the seed. */
static void random_blocks_draw(void) {
    scase c = pattern_case(2);
    c.impl = HEED_ATTN_FLASH;
    unsigned char *m1 = ref_mask(&c);
    c.pat.seed = 12;
    unsigned char *m2 = ref_mask(&c);
    int64_t nm = c.B * c.H * c.Nq * c.Nk, diff = 0;
    for (int64_t e = 0; e < nm; e++) diff += m1[e] != m2[e];
    CHECK(diff > 0, "seeds 11 and 12 draw the same blocks");
    /* every row sees exactly r = 2 blocks of 5 keys (the last block has 2 keys) */
    for (int64_t row = 0; row < c.B * c.H * c.Nq; row++) {
        int64_t seen = count_visible(m2 + row * c.Nk, c.Nk);
        CHECK(seen == 10 || seen == 7, "row %lld sees %lld keys", (long long)row, (long long)seen);
    }
    /* heads draw differently */
    CHECK(memcmp(m2, m2 + c.Nq * c.Nk, (size_t)(c.Nq * c.Nk)) != 0, "heads 0 and 1 draw the same blocks");
    free(m1), free(m2);
    /* the same seed, the same output; another seed, another */
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *q = heed_full(g, HEED_F64, HEED_SHAPE(1, 1, 37, 2), 0.3);
    double *kd = random_data(37 * 2, 3), *vd = random_data(37 * 2, 4);
    heed_tensor *k = heed_input_f64(g, HEED_F64, HEED_SHAPE(1, 1, 37, 2), kd),
                *v = heed_input_f64(g, HEED_F64, HEED_SHAPE(1, 1, 37, 2), vd);
    heed_attention_opts o = {.pattern = c.pat};
    heed_tensor *y1 = heed_attention(g, q, k, v, &o, NULL), *y2 = heed_attention(g, q, k, v, &o, NULL);
    o.pattern.seed = 13;
    heed_tensor *y3 = heed_attention(g, q, k, v, &o, NULL);
    CHECK(y1 && y2 && y3, "%s", heed_graph_error(g));
    bool same12 = true, same13 = true;
    for (int64_t e = 0; y1 && y2 && y3 && e < y1->numel; e++) {
        same12 &= heed_get(y1, e) == heed_get(y2, e);
        same13 &= heed_get(y1, e) == heed_get(y3, e);
    }
    CHECK(same12 && !same13, "seed: same %d, other %d", same12, same13);
    free(kd), free(vd);
    heed_graph_free(g);
}

/* ---------------------------------------------------------------- bad input */

static void bad_inputs(void) {
    heed_graph *g = heed_graph_new(ctx);
    static const int64_t out_of_range[2] = {2, 7}, negative[1] = {-1};
    struct {
        heed_attention_opts o;
        const char *msg;
    } bad[] = {
        {{.window = 2, .pattern = {.dilation = -1}}, "heed_attention: pattern.dilation = -1 (must be >= 1; 0 means 1)"},
        {{.pattern = {.dilation = 3}}, "pattern.dilation = 3 with window = 0 (a dilated window needs a window > 0)"},
        {{.pattern = {.n_global = 2}}, "pattern.n_global = 2 with pattern.global NULL"},
        {{.pattern = {.global = negative, .n_global = -1}}, "pattern.n_global = -1"},
        {{.pattern = {.global = out_of_range, .n_global = 2}},
         "pattern.global[1] = 7 (must be a key position in [0, Nk = 7))"},
        {{.pattern = {.global = negative, .n_global = 1}}, "pattern.global[0] = -1"},
        {{.pattern = {.random_blocks = -1}}, "pattern.random_blocks = -1, pattern.block = 0 (must be >= 0)"},
        {{.pattern = {.random_blocks = 1, .block = -2}}, "pattern.block = -2 (must be >= 0)"},
        {{.pattern = {.random_blocks = 3, .block = 4}},
         "pattern.random_blocks = 3, but Nk = 7 keys make only 2 blocks of 4"},
        {{.pattern = {.random_blocks = 2}}, "only 1 blocks of 64"},
        {{.pattern = {.strided = -1}}, "pattern.strided = -1, pattern.fixed = 0 (must be >= 0; 0 means off)"},
        {{.pattern = {.fixed = -3}}, "pattern.fixed = -3"},
        {{.pattern = {.fixed = 4, .summary = 5}}, "pattern.summary = 5 (must be in [1, pattern.fixed = 4]; 0 means 1)"},
        {{.pattern = {.summary = 1}}, "pattern.summary = 1 (must be in [1, pattern.fixed = 0]"},
        {{.pattern = {.fixed = 4, .summary = -1}}, "pattern.summary = -1"},
        {{.window = -2, .pattern = {.strided = 3}}, "window = -2 (must be >= 0; 0 means none)"},
    };
    for (size_t x = 0; x < sizeof bad / sizeof bad[0]; x++)
        for (int impl = 0; impl < 2; impl++) {
            heed_tensor *q = heed_zeros(g, HEED_F32, HEED_SHAPE(1, 2, 5, 4)),
                        *k = heed_zeros(g, HEED_F32, HEED_SHAPE(1, 2, 7, 4));
            bad[x].o.impl = impl ? HEED_ATTN_FLASH : HEED_ATTN_MATERIALISED;
            CHECK(!heed_attention(g, q, k, k, &bad[x].o, NULL), "case %zu accepted", x);
            CHECK_ERR(g, HEED_ERR_ARG, bad[x].msg);
            /* heed_attention_cost reports the same through the context */
            int64_t pairs = -5, tiles = -5;
            CHECK(heed_attention_cost(ctx, &bad[x].o, HEED_F32, 2, 5, 7, &pairs, &tiles) == HEED_ERR_ARG, "cost %zu",
                  x);
            CHECK(strstr(heed_ctx_error(ctx), bad[x].msg + (strncmp(bad[x].msg, "heed_attention: ", 16) ? 0 : 16)),
                  "cost case %zu: '%s'", x, heed_ctx_error(ctx));
            CHECK(strncmp(heed_ctx_error(ctx), "heed_attention_cost: ", 21) == 0, "cost names itself: '%s'",
                  heed_ctx_error(ctx));
            CHECK(pairs == -5 && tiles == -5, "outputs untouched on error");
        }
    heed_graph_free(g);
    int64_t pairs;
    CHECK(heed_attention_cost(ctx, NULL, HEED_F32, 0, 5, 7, &pairs, NULL) == HEED_ERR_SHAPE, "H = 0");
    CHECK(strstr(heed_ctx_error(ctx), "heed_attention_cost: H = 0, Nq = 5, Nk = 7 (need H >= 1, Nq, Nk >= 0)"), "%s",
          heed_ctx_error(ctx));
    CHECK(heed_attention_cost(ctx, NULL, HEED_F32, 1, -1, 7, &pairs, NULL) == HEED_ERR_SHAPE, "Nq < 0");
    CHECK(heed_attention_cost(ctx, NULL, (heed_dtype)9, 1, 5, 7, &pairs, NULL) == HEED_ERR_DTYPE, "dtype");
    CHECK(strstr(heed_ctx_error(ctx), "dtype 9 (attention runs in f32 or f64)"), "%s", heed_ctx_error(ctx));
    CHECK(heed_attention_cost(ctx, &(heed_attention_opts){.block_k = 2000}, HEED_F32, 1, 5, 7, &pairs, NULL) ==
              HEED_ERR_ARG,
          "tiles");
    CHECK(strstr(heed_ctx_error(ctx), "block_k = 2000"), "%s", heed_ctx_error(ctx));
    CHECK(heed_attention_cost(NULL, NULL, HEED_F32, 1, 5, 7, &pairs, NULL) == HEED_ERR_ARG, "NULL ctx");
    /* Edge cases that are fine: no keys, no queries, every pattern part at its limit. */
    int64_t tiles = -1;
    CHECK(heed_attention_cost(ctx, &(heed_attention_opts){.pattern = {.strided = 3}}, HEED_F64, 2, 5, 0, &pairs,
                              &tiles) == HEED_OK &&
              pairs == 0 && tiles == 0,
          "Nk = 0: %s", heed_ctx_error(ctx));
    heed_attention_opts full = {.window = 1, .pattern = {.random_blocks = 2, .block = 4, .fixed = 4, .summary = 4}};
    CHECK(heed_attention_cost(ctx, &full, HEED_F64, 1, 5, 7, &pairs, &tiles) == HEED_OK && pairs == 35,
          "all blocks: %lld", (long long)pairs);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 42});
    RUN(matches_dense);
    RUN(matches_dense_extras);
    RUN(matches_dense_f32_larger);
    RUN(gradcheck_patterns);
    RUN(f32_vs_f64);
    RUN(tiles_visited);
    RUN(dense_cost);
    RUN(linear_growth);
    RUN(random_blocks_draw);
    RUN(bad_inputs);
    heed_ctx_free(ctx);
    return check_summary();
}
