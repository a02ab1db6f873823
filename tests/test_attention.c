/* Scaled dot-product attention, materialised and flash: forward against a naive
 * reference written from the definitions, f64 gradient checks of both implementations
 * (flash over small tiles so the tiling, skipping and ragged edges are exercised), flash
 * against materialised in f32 (outputs and every gradient, dropout included), fully
 * masked rows, and bad input. */
#include "check.h"
#include "heed/reduce.h"
#include "graph/internal.h"
#include "graph/simd.h"
#include "ops/attention/internal.h"

#include <omp.h>

static heed_ctx *ctx;

/* ---------------------------------------------------------------- cases */

typedef struct {
    int64_t B, H, Nq, Nk, d, dv;
    bool causal;
    int64_t window;
    const int64_t *lengths;
    int bias_ndim; /* 0: no bias */
    int64_t bias_shape[4];
    const double *bias; /* NULL: random (then it gets a gradient) */
    double dropout, scale;
    heed_attn_impl impl;
    int bq, bk;
    bool weights_out; /* the function returns the weights instead of the output */
} acase;

static heed_attention_opts opts_of(const acase *c, heed_tensor *bias) {
    return (heed_attention_opts){.scale = c->scale,
                                 .causal = c->causal,
                                 .key_lengths = c->lengths,
                                 .bias = bias,
                                 .window = c->window,
                                 .dropout = c->dropout,
                                 .impl = c->impl,
                                 .block_q = c->bq,
                                 .block_k = c->bk};
}

static heed_tensor *fn_attention(heed_graph *g, heed_tensor **x, void *u) {
    const acase *c = u;
    heed_tensor *w = NULL;
    heed_attention_opts o = opts_of(c, c->bias_ndim ? x[3] : NULL);
    heed_tensor *y = heed_attention(g, x[0], x[1], x[2], &o, c->weights_out ? &w : NULL);
    return c->weights_out ? w : y;
}

static heed_shape bias_shape(const acase *c) {
    heed_shape s = {.ndim = c->bias_ndim};
    for (int i = 0; i < c->bias_ndim; i++) s.d[i] = c->bias_shape[i];
    return s;
}

static int64_t numel_of(heed_shape s) {
    int64_t n = 1;
    for (int i = 0; i < s.ndim; i++) n *= s.d[i];
    return n;
}

static int fill_inputs(const acase *c, heed_gradcheck_input *in) {
    in[0] = (heed_gradcheck_input){HEED_SHAPE(c->B, c->H, c->Nq, c->d), NULL, false};
    in[1] = (heed_gradcheck_input){HEED_SHAPE(c->B, c->H, c->Nk, c->d), NULL, false};
    in[2] = (heed_gradcheck_input){HEED_SHAPE(c->B, c->H, c->Nk, c->dv), NULL, false};
    if (!c->bias_ndim) return 3;
    in[3] = (heed_gradcheck_input){bias_shape(c), c->bias, c->bias != NULL};
    return 4;
}

/* ---------------------------------------------------------------- naive reference */

/* O (or the weights) straight from the definitions, in double. Dropout draws
 * heed__uniform_at(seed, stream, ((b*H + h)*Nq + i)*Nk + j). */
static void reference(const acase *c, const double *q, const double *k, const double *v, const double *bias,
                      uint64_t seed, uint64_t stream, bool dropout, double *out) {
    int64_t B = c->B, H = c->H, Nq = c->Nq, Nk = c->Nk, d = c->d, dv = c->dv;
    double scale = c->scale ? c->scale : 1 / sqrt((double)d);
    int64_t bs[4] = {1, 1, 1, 1}; /* bias shape aligned right */
    for (int a = 0; a < c->bias_ndim; a++) bs[4 - c->bias_ndim + a] = c->bias_shape[a];
    double *s = malloc((size_t)(Nk + 1) * sizeof *s);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Nq; i++) {
                const double *qi = q + ((b * H + h) * Nq + i) * d;
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < Nk; j++) {
                    int64_t diag = i + Nk - Nq;
                    bool vis = (!c->lengths || j < c->lengths[b]) && (!c->causal || j <= diag) &&
                               (!c->window || llabs(diag - j) < c->window);
                    double dot = 0;
                    for (int64_t x = 0; x < d; x++) dot += qi[x] * k[((b * H + h) * Nk + j) * d + x];
                    double bv = 0;
                    if (bias) {
                        int64_t idx[4] = {b, h, i, j}, off = 0;
                        for (int a = 0; a < 4; a++) off = off * bs[a] + (bs[a] == 1 ? 0 : idx[a]);
                        bv = bias[off];
                    }
                    s[j] = vis ? scale * dot + bv : -INFINITY;
                    if (s[j] > mx) mx = s[j];
                }
                for (int64_t j = 0; j < Nk; j++) sum += s[j] = mx == -INFINITY ? 0 : exp(s[j] - mx);
                for (int64_t j = 0; j < Nk; j++) s[j] = sum > 0 ? s[j] / sum : 0;
                if (c->weights_out) {
                    memcpy(out + ((b * H + h) * Nq + i) * Nk, s, (size_t)Nk * sizeof *s);
                    continue;
                }
                double *oi = out + ((b * H + h) * Nq + i) * dv;
                for (int64_t x = 0; x < dv; x++) oi[x] = 0;
                for (int64_t j = 0; j < Nk; j++) {
                    double a = s[j];
                    if (dropout)
                        a = heed__uniform_at(seed, stream, (uint64_t)(((b * H + h) * Nq + i) * Nk + j)) >= c->dropout
                                ? a / (1 - c->dropout)
                                : 0;
                    for (int64_t x = 0; x < dv; x++) oi[x] += a * v[((b * H + h) * Nk + j) * dv + x];
                }
            }
    free(s);
}

static double *random_data(int64_t n, uint64_t stream) {
    heed_rng r = heed_rng_make(77, stream);
    double *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = 2 * heed_rng_uniform(&r) - 1;
    return p;
}

/* max |a - b| / max(max |b|, 1e-3): the normwise relative error (check_norm). */
static double rel_err(const double *a, const double *b, int64_t n) {
    check_norm c = check_norm_start(1e-3);
    for (int64_t i = 0; i < n; i++) check_norm_add(&c, a[i], b[i]);
    return c.err / c.scale;
}

/* Runs case c in dtype dt on the given data; returns the output (or weights) and, with
 * seed != NULL, backward from that cotangent into grads[0..3] (q, k, v, bias). */
typedef struct {
    double *y, *grad[4];
    int64_t ny, n[4];
} run_result;

static run_result run(const acase *c, heed_dtype dt, double *const *data, const double *seed, bool bias_grad) {
    run_result R = {0};
    heed_graph *g = heed_graph_new(ctx);
    heed_gradcheck_input in[4];
    int n = fill_inputs(c, in);
    heed_tensor *x[4];
    for (int i = 0; i < n; i++) {
        x[i] = heed_input_f64(g, dt, in[i].shape, data[i]);
        if (i < 3 || bias_grad) heed_requires_grad(x[i]);
    }
    heed_tensor *y = fn_attention(g, x, (void *)c);
    CHECK(y != NULL, "run: %s", heed_graph_error(g));
    if (!y) {
        heed_graph_free(g);
        return R;
    }
    R.ny = y->numel;
    R.y = malloc((size_t)(R.ny + 1) * sizeof(double));
    for (int64_t i = 0; i < R.ny; i++) R.y[i] = heed_get(y, i);
    if (seed) {
        heed_tensor *s = heed_input_f64(g, dt, heed_tensor_shape(y), seed);
        CHECK(heed_backward_with(g, y, s) == HEED_OK, "backward: %s", heed_graph_error(g));
        for (int i = 0; i < n; i++) {
            heed_tensor *gr = heed_grad(g, x[i]);
            if (!gr) continue;
            R.n[i] = gr->numel;
            R.grad[i] = malloc((size_t)(gr->numel + 1) * sizeof(double));
            for (int64_t e = 0; e < gr->numel; e++) R.grad[i][e] = heed_get(gr, e);
        }
    }
    heed_graph_free(g);
    return R;
}

static void free_result(run_result *R) {
    free(R->y);
    for (int i = 0; i < 4; i++) free(R->grad[i]);
}

/* ---------------------------------------------------------------- tests */

static const int64_t lens2[2] = {5, 2}, lens_zero[2] = {0, 6};

/* A [B,1,1,Nk] key-padding bias (the SASRec form) with -inf on padded keys: batch 0 pads
 * the first 3 keys (left padding), batch 1 the last 2 and one in the middle. */
static double pad_bias[2 * 7];
static void init_holes_bias(void);
static void init_pad_bias(void) {
    init_holes_bias();
    for (int j = 0; j < 7; j++) {
        pad_bias[j] = j < 3 ? -INFINITY : 0.1 * j;
        pad_bias[7 + j] = (j >= 5 || j == 2) ? -INFINITY : -0.2 * j;
    }
}

/* A [2,1,9,40] bias with scattered -inf, a row of batch 0 all -inf (fully masked inside
 * its key range) and a row with one finite entry: long enough rows for the vector paths. */
static double holes_bias[2 * 9 * 40];
static void init_holes_bias(void) {
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 9; i++)
            for (int j = 0; j < 40; j++) {
                double x = 0.05 * ((i * 7 + j * 3 + b) % 11) - 0.2;
                if ((i + j + b) % 5 == 0 || (b == 0 && i == 3) || (b == 1 && i == 5 && j != 17)) x = -INFINITY;
                holes_bias[(b * 9 + i) * 40 + j] = x;
            }
}

/* The mask and shape variants every implementation must get right (B=2, H=2 unless said). */
static acase variant(int which) {
    acase c = {.B = 2, .H = 2, .Nq = 5, .Nk = 7, .d = 3, .dv = 4};
    switch (which) {
    case 0: break;                                         /* plain, Nq < Nk */
    case 1: c.causal = true; break;                        /* bottom-right causal */
    case 2: c.Nq = 7, c.Nk = 4, c.causal = true; break;    /* Nq > Nk: leading rows fully masked */
    case 3: c.window = 2; break;                           /* local attention */
    case 4: c.window = 3, c.causal = true; break;          /* causal local */
    case 5: c.lengths = lens2; break;                      /* padding */
    case 6: c.lengths = lens_zero, c.causal = true; break; /* batch 0 has no keys at all */
    case 7:
        c.bias_ndim = 4, c.bias_shape[0] = 2, c.bias_shape[1] = 1, c.bias_shape[2] = 1, c.bias_shape[3] = 7;
        c.bias = pad_bias;
        break; /* key padding bias with -inf */
    case 8: c.bias_ndim = 3, c.bias_shape[0] = 2, c.bias_shape[1] = 5, c.bias_shape[2] = 7; break; /* [H,Nq,Nk] */
    case 9: c.bias_ndim = 2, c.bias_shape[0] = 5, c.bias_shape[1] = 1; break; /* [Nq,1]: per-row constant */
    case 10: c.d = 1, c.dv = 1, c.scale = 0.7; break;                         /* d = 1, explicit scale */
    case 11: c.dropout = 0.3; break;
    case 12: c.dropout = 0.4, c.causal = true, c.lengths = lens2; break;
    case 13:
        c.H = 1, c.Nq = 9, c.Nk = 40, c.d = 4, c.dv = 3, c.causal = true, c.bias_ndim = 4;
        c.bias_shape[0] = 2, c.bias_shape[1] = 1, c.bias_shape[2] = 9, c.bias_shape[3] = 40;
        c.bias = holes_bias;
        break;                                            /* -inf holes, masked rows */
    default: c.B = 1, c.H = 1, c.Nq = 1, c.Nk = 1; break; /* one query, one key */
    }
    return c;
}
#define N_VARIANTS 15

static void forward_matches_reference(void) {
    init_pad_bias();
    for (int w = 0; w < N_VARIANTS; w++) {
        acase c = variant(w);
        heed_gradcheck_input in[4];
        int n = fill_inputs(&c, in);
        double *data[4] = {0};
        for (int i = 0; i < n; i++)
            data[i] = in[i].data ? (double *)in[i].data : random_data(numel_of(in[i].shape), 10 + (uint64_t)i);
        for (int impl = 0; impl < 4; impl++) {
            acase ci = c;
            ci.impl = impl == 0 ? HEED_ATTN_MATERIALISED : HEED_ATTN_FLASH;
            if (impl == 2) ci.bq = 2, ci.bk = 3; /* ragged tiles */
            if (impl == 3) ci.bq = 4, ci.bk = 4, ci.weights_out = false;
            for (int dt = 0; dt < 2; dt++) {
                uint64_t seed, counter;
                heed_ctx_rng_state(ctx, &seed, &counter);
                run_result R = run(&ci, dt ? HEED_F64 : HEED_F32, data, NULL, false);
                double *ref = malloc((size_t)(R.ny + 1) * sizeof(double));
                reference(&ci, data[0], data[1], data[2], n > 3 ? data[3] : NULL, seed, counter, ci.dropout > 0, ref);
                double e = R.y ? rel_err(R.y, ref, R.ny) : INFINITY;
                CHECK(e <= (dt ? 1e-12 : 1e-5), "variant %d impl %d %s: error %.3g vs reference", w, impl,
                      dt ? "f64" : "f32", e);
                free(ref);
                free_result(&R);
            }
        }
        /* The returned weights, too. */
        acase cw = c;
        cw.impl = HEED_ATTN_AUTO, cw.weights_out = true;
        run_result R = run(&cw, HEED_F64, data, NULL, false);
        double *ref = malloc((size_t)(R.ny + 1) * sizeof(double));
        reference(&cw, data[0], data[1], data[2], n > 3 ? data[3] : NULL, 0, 0, false, ref);
        CHECK(R.y && rel_err(R.y, ref, R.ny) <= 1e-12, "variant %d: weights differ from the reference", w);
        free(ref);
        free_result(&R);
        for (int i = 0; i < n; i++)
            if (!in[i].data) free(data[i]);
    }
}

static void gradcheck_materialised(void) {
    init_pad_bias();
    for (int w = 0; w < N_VARIANTS; w++) {
        acase c = variant(w);
        c.impl = HEED_ATTN_MATERIALISED;
        heed_gradcheck_input in[4];
        int n = fill_inputs(&c, in);
        heed_gradcheck_opts o = {.seed = (uint64_t)w};
        heed_gradcheck_result r;
        heed_status s = heed_gradcheck(ctx, fn_attention, &c, n, in, &o, &r);
        CHECK(s == HEED_OK, "materialised variant %d: %s", w, heed_ctx_error(ctx));
    }
    /* Gradients through the returned weights (coverage-style use). */
    acase c = variant(1);
    c.weights_out = true;
    heed_gradcheck_input in[4];
    int n = fill_inputs(&c, in);
    CHECK_GRAD(ctx, fn_attention, &c, n, in, NULL);
    c = variant(8), c.weights_out = true, n = fill_inputs(&c, in);
    CHECK_GRAD(ctx, fn_attention, &c, n, in, NULL);
}

static void gradcheck_flash(void) {
    init_pad_bias();
    const int tiles[][2] = {{3, 3}, {4, 8}, {8, 4}, {2, 5}, {0, 0}};
    for (int w = 0; w < N_VARIANTS; w++)
        for (int t = 0; t < 5; t++) {
            acase c = variant(w);
            c.impl = HEED_ATTN_FLASH, c.bq = tiles[t][0], c.bk = tiles[t][1];
            heed_gradcheck_input in[4];
            int n = fill_inputs(&c, in);
            heed_gradcheck_opts o = {.seed = (uint64_t)(w * 7 + t)};
            heed_gradcheck_result r;
            heed_status s = heed_gradcheck(ctx, fn_attention, &c, n, in, &o, &r);
            CHECK(s == HEED_OK, "flash variant %d tiles %dx%d: %s", w, c.bq, c.bk, heed_ctx_error(ctx));
        }
}

/* Larger f64 gradchecks: N not a multiple of the tile, several tiles per row, causal and
 * window skipping whole tiles, a full bias with its gradient (sampled elements). */
static void gradcheck_flash_larger(void) {
    acase cs[] = {
        {.B = 1,
         .H = 2,
         .Nq = 19,
         .Nk = 23,
         .d = 5,
         .dv = 3,
         .causal = true,
         .impl = HEED_ATTN_FLASH,
         .bq = 4,
         .bk = 3},
        {.B = 2, .H = 1, .Nq = 17, .Nk = 17, .d = 4, .dv = 6, .window = 3, .impl = HEED_ATTN_FLASH, .bq = 3, .bk = 4},
        {.B = 1,
         .H = 3,
         .Nq = 11,
         .Nk = 13,
         .d = 17,
         .dv = 18,
         .bias_ndim = 4,
         .bias_shape = {1, 3, 11, 13},
         .impl = HEED_ATTN_FLASH,
         .bq = 8,
         .bk = 8},
        {.B = 2,
         .H = 2,
         .Nq = 9,
         .Nk = 14,
         .d = 3,
         .dv = 2,
         .bias_ndim = 1,
         .bias_shape = {14},
         .dropout = 0.25,
         .causal = true,
         .impl = HEED_ATTN_FLASH,
         .bq = 4,
         .bk = 3},
        /* tiles taller than a row group: diagonal and band tiles split into groups */
        {.B = 1,
         .H = 1,
         .Nq = 61,
         .Nk = 70,
         .d = 3,
         .dv = 2,
         .causal = true,
         .window = 30,
         .dropout = 0.2,
         .bias_ndim = 2,
         .bias_shape = {61, 70},
         .impl = HEED_ATTN_FLASH,
         .bq = 61,
         .bk = 40},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        heed_gradcheck_input in[4];
        int n = fill_inputs(&cs[i], in);
        heed_gradcheck_opts o = {.seed = 100 + i, .max_per_tensor = 60};
        heed_gradcheck_result r;
        heed_status s = heed_gradcheck(ctx, fn_attention, &cs[i], n, in, &o, &r);
        CHECK(s == HEED_OK, "flash larger case %zu: %s", i, heed_ctx_error(ctx));
        cs[i].impl = HEED_ATTN_MATERIALISED;
        s = heed_gradcheck(ctx, fn_attention, &cs[i], n, in, &o, &r);
        CHECK(s == HEED_OK, "materialised larger case %zu: %s", i, heed_ctx_error(ctx));
    }
}

static heed_tensor *fn_self_attention(heed_graph *g, heed_tensor **x, void *u) {
    const acase *c = u;
    heed_attention_opts o = opts_of(c, NULL);
    return heed_attention(g, x[0], x[0], x[0], &o, NULL);
}

/* q = k = v: the three gradients land in one buffer (threads must not race on it). */
static void gradcheck_self_attention(void) {
    for (int impl = 0; impl < 2; impl++) {
        acase c = {.causal = true, .impl = impl ? HEED_ATTN_FLASH : HEED_ATTN_MATERIALISED, .bq = 3, .bk = 4};
        heed_gradcheck_input in[1] = {{HEED_SHAPE(2, 2, 7, 5)}};
        CHECK_GRAD(ctx, fn_self_attention, &c, 1, in, NULL);
    }
}

/* Flash against materialised in f32: the output and every gradient within 1e-5
 * (normwise relative), dropout on (both draw the same mask), on AVX2 and portable
 * kernels, for thread layouts that own whole heads (BH = 4) and that share one (BH = 1, 3). */
static void flash_matches_materialised_f32(void) {
    static const int64_t lens3[3] = {61, 0, 17};
    acase cs[] = {
        {.B = 1, .H = 4, .Nq = 150, .Nk = 150, .d = 64, .dv = 64, .causal = true},
        {.B = 1, .H = 1, .Nq = 130, .Nk = 200, .d = 40, .dv = 24, .dropout = 0.2},
        {.B = 3, .H = 1, .Nq = 70, .Nk = 90, .d = 33, .dv = 16, .lengths = lens3, .causal = true},
        {.B = 2, .H = 2, .Nq = 100, .Nk = 77, .d = 16, .dv = 20, .window = 9, .dropout = 0.1},
        {.B = 2, .H = 3, .Nq = 45, .Nk = 80, .d = 8, .dv = 8, .bias_ndim = 4, .bias_shape = {2, 1, 45, 80}},
        {.B = 3, .H = 1, .Nq = 64, .Nk = 96, .d = 32, .dv = 32, .bias_ndim = 4, .bias_shape = {3, 1, 1, 96}},
        {.B = 1, .H = 2, .Nq = 33, .Nk = 260, .d = 256, .dv = 100, .bias_ndim = 2, .bias_shape = {33, 260}},
    };
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++)
        for (int variant_ = 0; variant_ < 3; variant_++) {
            acase c = cs[ci];
            if (variant_ == 1) c.bq = 16, c.bk = 48;
            if (variant_ == 2) c.bq = 5, c.bk = 7;
            heed__force_scalar(variant_ == 2);
            heed_gradcheck_input in[4];
            int n = fill_inputs(&c, in);
            double *data[4];
            for (int i = 0; i < n; i++) data[i] = random_data(numel_of(in[i].shape), 20 + (uint64_t)i);
            if (ci == 5) /* key padding with -inf, SASRec style */
                for (int64_t b = 0; b < 3; b++)
                    for (int64_t j = 0; j < 96; j++)
                        if (j < 10 * b || j == 50) data[3][b * 96 + j] = -INFINITY;
            double *seed = random_data(c.B * c.H * c.Nq * c.dv, 30);
            uint64_t s0, c0;
            heed_ctx_rng_state(ctx, &s0, &c0);
            c.impl = HEED_ATTN_MATERIALISED;
            run_result M = run(&c, HEED_F32, data, seed, n > 3);
            heed_ctx_set_rng_state(ctx, s0, c0);
            c.impl = HEED_ATTN_FLASH;
            run_result F = run(&c, HEED_F32, data, seed, n > 3);
            if (M.y && F.y) {
                double e = rel_err(F.y, M.y, M.ny);
                CHECK(e <= 1e-5, "case %zu/%d: output error %.3g", ci, variant_, e);
                for (int i = 0; i < n; i++) {
                    CHECK(F.grad[i] && M.grad[i] && F.n[i] == M.n[i], "case %zu/%d: gradient %d missing", ci, variant_,
                          i);
                    if (!F.grad[i] || !M.grad[i]) continue;
                    e = rel_err(F.grad[i], M.grad[i], M.n[i]);
                    CHECK(e <= 1e-5, "case %zu/%d: gradient of input %d error %.3g", ci, variant_, i, e);
                }
            }
            free_result(&M);
            free_result(&F);
            for (int i = 0; i < n; i++) free(data[i]);
            free(seed);
        }
    heed__force_scalar(false);
}

/* Large scores in f32 (issue #10): softmax does not change when a constant is added to a
 * row of scores, and f32 must keep that. The scores are offset + O(1) and exact in f32:
 * q = (offset, u), k = (1, w) with u, w multiples of 1/16 in [-1, 1] (so q.k is a sum of
 * multiples of 2^-8 below 2^14), and scale = ln 2 makes the flash kernels' base-2
 * multiplier scale log2(e) exactly 1. (With any other scale, or the offset in a bias, the
 * f32 scores themselves round at the offset's magnitude, in any implementation.) Then f32
 * differs from f64 only by the softmax's own rounding, and the output and the gradients of
 * q, k, v must agree to 1e-6 (normwise; the noise is below 6e-7) at offsets 0, 1e3, 1e4,
 * materialised and flash (default and small tiles, AVX2 and portable kernels). Flash's
 * backward recomputes the weights from saved row statistics; with L = m + log2(l) saved
 * as one f32 number, its rounding (2^-11 at 1e4) scaled every weight of a row by up to
 * 3e-4 (errors 1e-5 and 3e-4 at 1e3 and 1e4 here). */
static void large_scores_f32(void) {
    static const double offsets[3] = {0, 1e3, 1e4};
    acase c = {.B = 1, .H = 2, .Nq = 19, .Nk = 37, .d = 8, .dv = 8, .scale = M_LN2};
    heed_gradcheck_input in[4];
    int n = fill_inputs(&c, in);
    for (int o = 0; o < 3; o++) {
        double *data[3], *seed = random_data(c.B * c.H * c.Nq * c.dv, 31);
        for (int i = 0; i < 3; i++) {
            data[i] = random_data(numel_of(in[i].shape), 40 + (uint64_t)i);
            for (int64_t e = 0; e < numel_of(in[i].shape); e++) {
                double *x = &data[i][e];
                if (i == 2) *x = (float)*x; /* v: any f32 value */
                else if (e % c.d) *x = round(*x * 16) / 16;
                else *x = i == 0 ? offsets[o] : 1;
            }
        }
        for (int64_t e = 0; e < c.B * c.H * c.Nq * c.dv; e++) seed[e] = (float)seed[e];
        c.impl = HEED_ATTN_MATERIALISED;
        run_result R = run(&c, HEED_F64, data, seed, false);
        for (int variant_ = 0; variant_ < 4; variant_++) {
            acase cv = c;
            cv.impl = variant_ ? HEED_ATTN_FLASH : HEED_ATTN_MATERIALISED;
            if (variant_ == 2) cv.bq = 8, cv.bk = 16;
            heed__force_scalar(variant_ == 3);
            run_result F = run(&cv, HEED_F32, data, seed, false);
            if (R.y && F.y) {
                double e = rel_err(F.y, R.y, R.ny);
                CHECK(e <= 1e-6, "offset %g variant %d: output error %.3g", offsets[o], variant_, e);
                for (int i = 0; i < n; i++) {
                    CHECK(F.grad[i] && R.grad[i], "offset %g variant %d: gradient %d missing", offsets[o], variant_, i);
                    if (!F.grad[i] || !R.grad[i]) continue;
                    e = rel_err(F.grad[i], R.grad[i], R.n[i]);
                    CHECK(e <= 1e-6, "offset %g variant %d: gradient of input %d error %.3g", offsets[o], variant_, i,
                          e);
                }
            }
            free_result(&F);
        }
        heed__force_scalar(false);
        free_result(&R);
        for (int i = 0; i < 3; i++) free(data[i]);
        free(seed);
    }
}

/* Fully masked rows give zero output and zero gradients (never NaN), in both dtypes. */
static void fully_masked_rows(void) {
    static const int64_t lens[2] = {0, 3};
    for (int impl = 0; impl < 2; impl++)
        for (int dt = 0; dt < 2; dt++) {
            heed_graph *g = heed_graph_new(ctx);
            heed_dtype t = dt ? HEED_F64 : HEED_F32;
            heed_tensor *q = heed_requires_grad(heed_full(g, t, HEED_SHAPE(2, 1, 4, 3), 0.5));
            heed_tensor *k = heed_requires_grad(heed_full(g, t, HEED_SHAPE(2, 1, 6, 3), 0.25));
            heed_tensor *v = heed_requires_grad(heed_full(g, t, HEED_SHAPE(2, 1, 6, 2), 1.0));
            double bd[6] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
            heed_tensor *bias = heed_input_f64(g, t, HEED_SHAPE(1, 1, 1, 6), bd);
            heed_attention_opts o = {.key_lengths = lens, .impl = impl ? HEED_ATTN_FLASH : HEED_ATTN_MATERIALISED};
            heed_tensor *y = heed_attention(g, q, k, v, &o, NULL);
            CHECK(y != NULL, "%s", heed_graph_error(g));
            CHECK(heed_backward(g, heed_sum_all(g, y)) == HEED_OK, "%s", heed_graph_error(g));
            /* batch 0 has no keys: output and dq of its rows are 0; its k, v get no gradient */
            for (int64_t i = 0; i < 4 * 2; i++)
                CHECK(heed_get(y, i) == 0, "impl %d dt %d: y[%lld]", impl, dt, (long long)i);
            for (int64_t i = 0; i < 4 * 3; i++) CHECK(heed_get(heed_grad(g, q), i) == 0, "dq");
            for (int64_t i = 0; i < 6 * 3; i++) CHECK(heed_get(heed_grad(g, k), i) == 0, "dk");
            for (int64_t i = 0; i < 6 * 2; i++) CHECK(heed_get(heed_grad(g, v), i) == 0, "dv");
            /* batch 1 sees 3 keys: each output is 1 (v = 1), dv of those keys = 4/3 each */
            for (int64_t i = 8; i < 16; i++) CHECK_CLOSE(heed_get(y, i), 1.0, 1e-6);
            CHECK_CLOSE(heed_get(heed_grad(g, v), 12), 4.0 / 3, 1e-6);
            CHECK(heed_get(heed_grad(g, v), 12 + 3 * 2) == 0, "masked key gets no gradient");
            /* a bias that masks everything: all zeros, no NaN */
            heed_graph_reset(g);
            q = heed_requires_grad(heed_full(g, t, HEED_SHAPE(1, 2, 3, 3), 0.5));
            k = heed_requires_grad(heed_full(g, t, HEED_SHAPE(1, 2, 6, 3), 0.25));
            v = heed_requires_grad(heed_full(g, t, HEED_SHAPE(1, 2, 6, 2), 1.0));
            bias = heed_requires_grad(heed_input_f64(g, t, HEED_SHAPE(1, 1, 1, 6), bd));
            o = (heed_attention_opts){.bias = bias, .impl = impl ? HEED_ATTN_FLASH : HEED_ATTN_MATERIALISED};
            y = heed_attention(g, q, k, v, &o, NULL);
            CHECK(y && heed_backward(g, heed_sum_all(g, y)) == HEED_OK, "%s", heed_graph_error(g));
            for (int64_t i = 0; y && i < y->numel; i++) CHECK(heed_get(y, i) == 0, "all masked y");
            heed_tensor *gq = heed_grad(g, q), *gb = heed_grad(g, bias);
            for (int64_t i = 0; gq && i < gq->numel; i++) CHECK(heed_get(gq, i) == 0, "all masked dq");
            for (int64_t i = 0; gb && i < gb->numel; i++) CHECK(heed_get(gb, i) == 0, "all masked dbias");
            heed_graph_free(g);
        }
}

/* The dropout mask is the op RNG's: attn_keep agrees with heed__uniform_at everywhere. */
static void dropout_mask_is_the_rng(void) {
    unsigned char keep[103];
    double p = 0.37;
    attn_keep(12345, 9, 1001, 103, attn_keep_threshold(p), keep);
    int kept = 0;
    for (int t = 0; t < 103; t++) {
        CHECK(keep[t] == (heed__uniform_at(12345, 9, 1001 + (uint64_t)t) >= p), "element %d", t);
        kept += keep[t];
    }
    CHECK(kept > 40 && kept < 90, "kept %d of 103 at p = 0.37", kept);
    /* Dropout is off outside training: the output equals the p = 0 output. */
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *q = heed_full(g, HEED_F32, HEED_SHAPE(1, 1, 3, 2), 0.3),
                *k = heed_full(g, HEED_F32, HEED_SHAPE(1, 1, 4, 2), 0.1);
    heed_tensor *v = heed_input_f64(g, HEED_F32, HEED_SHAPE(1, 1, 4, 1), (double[]){1, 2, 3, 4});
    heed_graph_set_training(g, false);
    heed_tensor *y = heed_attention(g, q, k, v, &(heed_attention_opts){.dropout = 0.9}, NULL);
    CHECK(y && fabs(heed_get(y, 0) - 2.5) < 1e-6, "eval mode: %g", y ? heed_get(y, 0) : NAN);
    heed_graph_free(g);
}

/* AUTO picks flash unless the weights are asked for; weights come back [B,H,Nq,Nk]. */
static void auto_choice_and_weights(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *q = heed_requires_grad(heed_full(g, HEED_F32, HEED_SHAPE(2, 3, 5, 4), 0.3));
    heed_tensor *k = heed_full(g, HEED_F32, HEED_SHAPE(2, 3, 6, 4), 0.1),
                *v = heed_full(g, HEED_F32, HEED_SHAPE(2, 3, 6, 7), 1);
    heed_tensor *w = NULL;
    heed_tensor *y = heed_attention(g, q, k, v, NULL, NULL);
    CHECK(y && y->node && strstr(y->node->op->name, "flash"), "AUTO without weights is flash");
    CHECK(y && y->shape[3] == 7, "output [B,H,Nq,dv]");
    y = heed_attention(g, q, k, v, NULL, &w);
    CHECK(y && y->node && strstr(y->node->op->name, "materialised"), "AUTO with weights is materialised");
    CHECK(w && w->ndim == 4 && w->shape[2] == 5 && w->shape[3] == 6, "weights shape");
    CHECK(w && fabs(heed_get(w, 0) - 1.0 / 6) < 1e-6, "uniform weights %g", w ? heed_get(w, 0) : NAN);
    heed_graph_free(g);
}

static void bad_inputs(void) {
    heed_graph *g = heed_graph_new(ctx);
#define QKV(qs, ks, vs)                                                                                                \
    heed_tensor *q = heed_zeros(g, HEED_F32, qs), *k = heed_zeros(g, HEED_F32, ks), *v = heed_zeros(g, HEED_F32, vs)
    {
        QKV(HEED_SHAPE(2, 3, 5, 4), HEED_SHAPE(2, 2, 6, 4), HEED_SHAPE(2, 2, 6, 4));
        CHECK(!heed_attention(g, q, k, v, NULL, NULL), "heads");
        CHECK_ERR(g, HEED_ERR_SHAPE, "heed_attention: q[2,3,5,4], k[2,2,6,4], v[2,2,6,4]: batch and head dims");
    }
    {
        QKV(HEED_SHAPE(2, 3, 5, 4), HEED_SHAPE(2, 3, 6, 5), HEED_SHAPE(2, 3, 6, 4));
        CHECK(!heed_attention(g, q, k, v, NULL, NULL), "dims");
        CHECK_ERR(g, HEED_ERR_SHAPE, "same head dim d");
    }
    {
        QKV(HEED_SHAPE(2, 3, 5, 4), HEED_SHAPE(2, 3, 6, 4), HEED_SHAPE(2, 3, 7, 4));
        CHECK(!heed_attention(g, q, k, v, NULL, NULL), "keys");
        CHECK_ERR(g, HEED_ERR_SHAPE, "same number of keys");
    }
    {
        QKV(HEED_SHAPE(3, 5, 4), HEED_SHAPE(3, 6, 4), HEED_SHAPE(3, 6, 4));
        CHECK(!heed_attention(g, q, k, v, NULL, NULL), "3-D");
        CHECK_ERR(g, HEED_ERR_SHAPE, "must be 4-D");
    }
    {
        QKV(HEED_SHAPE(1, 1, 5, 0), HEED_SHAPE(1, 1, 6, 0), HEED_SHAPE(1, 1, 6, 4));
        CHECK(!heed_attention(g, q, k, v, NULL, NULL), "d = 0");
        CHECK_ERR(g, HEED_ERR_SHAPE, "head dims must be >= 1");
    }
    {
        QKV(HEED_SHAPE(2, 1, 5, 4), HEED_SHAPE(2, 1, 6, 4), HEED_SHAPE(2, 1, 6, 4));
        const int64_t bad_len[2] = {3, 7};
        CHECK(!heed_attention(g, q, k, v, &(heed_attention_opts){.key_lengths = bad_len}, NULL), "length > Nk");
        CHECK_ERR(g, HEED_ERR_ARG, "key_lengths[1] = 7 (must be in [0, Nk = 6])");
    }
    {
        QKV(HEED_SHAPE(2, 1, 5, 4), HEED_SHAPE(2, 1, 6, 4), HEED_SHAPE(2, 1, 6, 4));
        const int64_t neg_len[2] = {-1, 2};
        CHECK(!heed_attention(g, q, k, v, &(heed_attention_opts){.key_lengths = neg_len}, NULL), "negative length");
        CHECK_ERR(g, HEED_ERR_ARG, "key_lengths[0] = -1");
    }
    {
        QKV(HEED_SHAPE(2, 1, 5, 4), HEED_SHAPE(2, 1, 6, 4), HEED_SHAPE(2, 1, 6, 4));
        CHECK(!heed_attention(g, q, k, v, &(heed_attention_opts){.window = -2}, NULL), "window");
        CHECK_ERR(g, HEED_ERR_ARG, "window = -2");
    }
    {
        QKV(HEED_SHAPE(2, 3, 5, 4), HEED_SHAPE(2, 3, 6, 4), HEED_SHAPE(2, 3, 6, 4));
        heed_tensor *bias = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 6, 6));
        CHECK(!heed_attention(g, q, k, v, &(heed_attention_opts){.bias = bias}, NULL), "bias shape");
        CHECK_ERR(g, HEED_ERR_SHAPE, "bias[2,3,6,6] does not broadcast to [B,H,Nq,Nk] = [2,3,5,6]");
    }
    {
        QKV(HEED_SHAPE(2, 3, 5, 4), HEED_SHAPE(2, 3, 6, 4), HEED_SHAPE(2, 3, 6, 4));
        heed_tensor *bias = heed_zeros(g, HEED_F64, HEED_SHAPE(6));
        CHECK(!heed_attention(g, q, k, v, &(heed_attention_opts){.bias = bias}, NULL), "bias dtype");
        CHECK_ERR(g, HEED_ERR_DTYPE, "bias is f64");
    }
    {
        QKV(HEED_SHAPE(2, 3, 5, 4), HEED_SHAPE(2, 3, 6, 4), HEED_SHAPE(2, 3, 6, 4));
        heed_tensor *k64 = heed_zeros(g, HEED_F64, HEED_SHAPE(2, 3, 6, 4));
        CHECK(!heed_attention(g, q, k64, v, NULL, NULL), "k dtype");
        CHECK_ERR(g, HEED_ERR_DTYPE, "dtypes must match");
        (void)k;
    }
    {
        QKV(HEED_SHAPE(2, 3, 5, 4), HEED_SHAPE(2, 3, 6, 4), HEED_SHAPE(2, 3, 6, 4));
        CHECK(!heed_attention(g, q, k, v, &(heed_attention_opts){.dropout = 1.0}, NULL), "dropout");
        CHECK_ERR(g, HEED_ERR_ARG, "dropout = 1");
        q = heed_zeros(g, HEED_F32, HEED_SHAPE(1, 1, 2, 2)), k = q, v = q;
        CHECK(!heed_attention(g, q, k, v, &(heed_attention_opts){.scale = NAN}, NULL), "scale");
        CHECK_ERR(g, HEED_ERR_ARG, "scale = nan");
        q = heed_zeros(g, HEED_F32, HEED_SHAPE(1, 1, 2, 2)), k = q, v = q;
        CHECK(!heed_attention(g, q, k, v, &(heed_attention_opts){.block_q = -1}, NULL), "tile");
        CHECK_ERR(g, HEED_ERR_ARG, "block_q = -1");
        q = heed_zeros(g, HEED_F32, HEED_SHAPE(1, 1, 2, 2)), k = q, v = q;
        CHECK(!heed_attention(g, q, k, v, &(heed_attention_opts){.impl = (heed_attn_impl)7}, NULL), "impl");
        CHECK_ERR(g, HEED_ERR_ARG, "impl = 7");
        q = heed_zeros(g, HEED_F32, HEED_SHAPE(1, 1, 2, 2)), k = q, v = q;
        heed_tensor *w;
        CHECK(!heed_attention(g, q, k, v, &(heed_attention_opts){.impl = HEED_ATTN_FLASH}, &w), "weights");
        CHECK_ERR(g, HEED_ERR_ARG, "weights were requested with impl = HEED_ATTN_FLASH");
        q = heed_zeros(g, HEED_F32, HEED_SHAPE(1, 1, 2, 2)), k = q, v = q;
        CHECK(!heed_attention(g, NULL, k, v, NULL, NULL), "NULL q");
        CHECK_ERR(g, HEED_ERR_ARG, "heed_attention: q is NULL");
        q = heed_zeros(g, HEED_F32, HEED_SHAPE(1, 1, 2, 2)), k = q, v = q;
        CHECK(!heed_attention(g, q, k, NULL, NULL, NULL), "NULL v");
        CHECK_ERR(g, HEED_ERR_ARG, "heed_attention: v is NULL");
    }
#undef QKV
    CHECK(!heed_attention(NULL, NULL, NULL, NULL, NULL, NULL), "NULL graph");
    /* Empty inputs are fine: no keys gives zeros, no queries an empty output. */
    heed_tensor *q = heed_full(g, HEED_F32, HEED_SHAPE(1, 2, 3, 4), 1),
                *k = heed_zeros(g, HEED_F32, HEED_SHAPE(1, 2, 0, 4));
    heed_tensor *v = heed_zeros(g, HEED_F32, HEED_SHAPE(1, 2, 0, 5));
    for (int impl = 1; impl <= 2; impl++) {
        heed_tensor *y = heed_attention(g, q, k, v, &(heed_attention_opts){.impl = (heed_attn_impl)impl}, NULL);
        CHECK(y && y->numel == 30 && heed_get(y, 29) == 0, "Nk = 0: %s", heed_graph_error(g));
    }
    heed_graph_free(g);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 42});
    RUN(dropout_mask_is_the_rng);
    RUN(forward_matches_reference);
    RUN(auto_choice_and_weights);
    RUN(fully_masked_rows);
    RUN(gradcheck_materialised);
    RUN(gradcheck_flash);
    RUN(gradcheck_flash_larger);
    RUN(gradcheck_self_attention);
    RUN(flash_matches_materialised_f32);
    RUN(large_scores_f32);
    RUN(bad_inputs);
    heed_ctx_free(ctx);
    return check_summary();
}
