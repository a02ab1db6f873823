/* Sparse attention (heed_attn_pattern) against dense flash measured in the same run:
 * time against N at a fixed number of keys per row k, for each pattern, B=1 H=4 d=64
 * f32, flash forward+backward (and forward alone).
 *
 * Patterns (k about 512 keys per row, docs/attention.md "Sparse patterns"):
 *   window     window 256 (local band, 511 keys)
 *   longformer window 128 with dilation 2 + 16 global tokens
 *   bigbird    window 96 + 128 global tokens + 3 random blocks of 64 (BigBird-ITC shape)
 *   strided    strided l = 256, causal (Child et al.: k = 256 + N / 256 grows with N)
 *   fixed      fixed l = 256, c = 16, causal (k = the block + 16 N / 256)
 *
 * Each JSON line names its reference: "dense flash" (the same B, H, d, N, causal or not,
 * timed in this run), with ref_seconds and speedup = ref_seconds / seconds; above
 * max_dense_n the dense run is skipped (it is O(N^2): at N = 65536 one forward+backward is
 * about 4e13 FLOPs) and the reference fields are null. GFLOP/s count the visible pairs
 * only (heed_attention_cost): forward 4 pairs d, forward+backward 3.5x that. extra_mib:
 * the graph arena's peak for one step minus the output and its gradient (the tile map,
 * row statistics and per-thread tiles; q, k, v live in a parameter store).
 *
 * Usage: bench_attention_sparse [max_n [max_dense_n [min_n [reps]]]]
 *        (defaults 65536, 16384, 1024, 3) */
#include "heed/attention.h"
#include "heed/core.h"
#include "heed/reduce.h"
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 1, H = 4, D = 64 };

typedef struct {
    const char *name;
    heed_attention_opts o;
} pattern;

static int64_t globals[128];

static pattern pattern_of(int which) {
    heed_attention_opts o = {.impl = HEED_ATTN_FLASH};
    switch (which) {
    case 0: o.window = 256; return (pattern){"window", o};
    case 1:
        o.window = 128, o.pattern = (heed_attn_pattern){.dilation = 2, .global = globals, .n_global = 16};
        return (pattern){"longformer", o};
    case 2:
        o.window = 96,
        o.pattern = (heed_attn_pattern){.global = globals, .n_global = 128, .random_blocks = 3, .seed = 1};
        return (pattern){"bigbird", o};
    case 3: o.causal = true, o.pattern = (heed_attn_pattern){.strided = 256}; return (pattern){"strided", o};
    default:
        o.causal = true, o.pattern = (heed_attn_pattern){.fixed = 256, .summary = 16};
        return (pattern){"fixed", o};
    }
}
#define N_PATTERNS 5

typedef struct {
    double fwd, step, extra_mib;
} timing;

/* Best of reps forward and forward+backward runs, and the arena peak of one step. */
static timing measure(heed_ctx *ctx, int64_t n, const heed_attention_opts *o, int reps) {
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_tensor *q = heed_param(P, "q", HEED_SHAPE(B, H, n, D), heed_init_uniform(-1, 1));
    heed_tensor *k = heed_param(P, "k", HEED_SHAPE(B, H, n, D), heed_init_uniform(-1, 1));
    heed_tensor *v = heed_param(P, "v", HEED_SHAPE(B, H, n, D), heed_init_uniform(-1, 1));
    heed_graph *g = heed_graph_new(ctx);
    timing t = {0};
    BENCH_BEST(reps, t.fwd, {
        heed_graph_reset(g);
        heed_attention(g, q, k, v, o, NULL);
    });
    BENCH_BEST(reps, t.step, {
        heed_graph_reset(g);
        heed_params_zero_grad(P);
        heed_backward(g, heed_sum_all(g, heed_attention(g, q, k, v, o, NULL)));
    });
    if (heed_graph_status(g) != HEED_OK) fprintf(stderr, "error: %s\n", heed_graph_error(g));
    heed_graph_free(g);
    g = heed_graph_new(ctx);
    heed_backward(g, heed_sum_all(g, heed_attention(g, q, k, v, o, NULL)));
    t.extra_mib = ((double)heed_graph_peak_bytes(g) - 2.0 * B * H * n * D * sizeof(float)) / (1 << 20);
    heed_graph_free(g);
    heed_params_free(P);
    return t;
}

/* One JSON line; the dense lines are the references (reference null), the pattern lines
 * name theirs. */
static void print_line(const char *name, const char *pass, int64_t n, double seconds, double flops, int64_t pairs,
                       int64_t tiles, double extra_mib, bool is_reference, double ref_seconds) {
    printf("{\"bench\":\"attention_sparse\",\"case\":\"%s %s\",\"n\":%lld,\"seconds\":%.4f,\"gflops\":%.1f,"
           "\"keys_per_row\":%.1f,\"pairs\":%lld,\"tiles\":%lld,\"extra_mib\":%.1f,",
           name, pass, (long long)n, seconds, flops / seconds * 1e-9, (double)pairs / (double)(H * n), (long long)pairs,
           (long long)tiles, extra_mib);
    if (is_reference) printf("\"reference\":null}\n");
    else if (ref_seconds > 0)
        printf("\"reference\":\"dense flash, same run\",\"ref_seconds\":%.4f,\"speedup\":%.2f}\n", ref_seconds,
               ref_seconds / seconds);
    else printf("\"reference\":\"dense flash (not run above max_dense_n)\",\"ref_seconds\":null,\"speedup\":null}\n");
    fflush(stdout);
}

int main(int argc, char **argv) {
    /* the kernels' instruction set: HEED_ISA=avx512|avx2|scalar picks one for a per-ISA table */
    printf("{\"bench\":\"attention_sparse\",\"case\":\"isa\",\"isa\":\"%s\"}\n", heed_isa());
    int64_t max_n = argc > 1 ? atoll(argv[1]) : 65536, max_dense = argc > 2 ? atoll(argv[2]) : 16384;
    int64_t min_n = argc > 3 ? atoll(argv[3]) : 1024;
    int reps = argc > 4 ? atoi(argv[4]) : 3;
    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 1});
    for (int i = 0; i < 128; i++) globals[i] = i;
    for (int64_t n = min_n; n <= max_n; n *= 2) {
        /* dense flash, causal and not, as the references of this N */
        timing dense[2] = {{0}};
        for (int causal = 0; causal < 2 && n <= max_dense; causal++) {
            heed_attention_opts o = {.impl = HEED_ATTN_FLASH, .causal = causal};
            dense[causal] = measure(ctx, n, &o, reps);
            int64_t pairs = 0, tiles = 0;
            heed_attention_cost(ctx, &o, HEED_F32, H, n, n, &pairs, &tiles);
            double fwd_flops = 4.0 * B * (double)pairs * D;
            const char *name = causal ? "dense causal" : "dense";
            print_line(name, "fwd", n, dense[causal].fwd, fwd_flops, pairs, tiles, 0, true, 0);
            print_line(name, "fwd+bwd", n, dense[causal].step, 3.5 * fwd_flops, pairs, tiles, dense[causal].extra_mib,
                       true, 0);
        }
        for (int p = 0; p < N_PATTERNS; p++) {
            pattern pt = pattern_of(p);
            int64_t pairs = 0, tiles = 0;
            if (heed_attention_cost(ctx, &pt.o, HEED_F32, H, n, n, &pairs, &tiles) != HEED_OK) {
                fprintf(stderr, "%s: %s\n", pt.name, heed_ctx_error(ctx));
                continue;
            }
            timing t = measure(ctx, n, &pt.o, reps);
            const timing *ref = &dense[pt.o.causal];
            double fwd_flops = 4.0 * B * (double)pairs * D;
            print_line(pt.name, "fwd", n, t.fwd, fwd_flops, pairs, tiles, 0, false, ref->fwd);
            print_line(pt.name, "fwd+bwd", n, t.step, 3.5 * fwd_flops, pairs, tiles, t.extra_mib, false, ref->step);
        }
    }
    printf("{\"bench\":\"attention_sparse\",\"case\":\"config\",\"B\":%d,\"H\":%d,\"d\":%d,\"threads\":%d}\n", B, H, D,
           heed_ctx_threads(ctx));
    heed_ctx_free(ctx);
    return 0;
}
