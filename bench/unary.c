/* f32 unary ops, forward and forward + backward on 4M elements: heed's AVX2 + SLEEF path
 * against two references measured in the same run: a plain C loop over libm's float
 * functions (expf, tanhf, ...) on one thread, and memcpy of the same bytes (the memory
 * bound). Prints one JSON line per op. */
#include "heed/core.h"
#include "heed/elementwise.h"
#include "bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N (1 << 22)

typedef heed_tensor *(*unary_fn)(heed_graph *, heed_tensor *);

static float ref_exp(float x) { return expf(x); }
static float ref_tanh(float x) { return tanhf(x); }
static float ref_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
static float ref_softplus(float x) { return fmaxf(x, 0) + log1pf(expf(-fabsf(x))); }
static float ref_gelu(float x) { return 0.5f * x * erfcf(-x * 0.70710678f); }
static float ref_gelu_tanh(float x) { return 0.5f * x * (1 + tanhf(0.7978845608f * (x + 0.044715f * x * x * x))); }

int main(void) {
    /* the kernels' instruction set: HEED_ISA=avx512|avx2|scalar picks one for a per-ISA table */
    printf("{\"bench\":\"unary\",\"case\":\"isa\",\"isa\":\"%s\"}\n", heed_isa());
    struct {
        const char *name;
        unary_fn f;
        float (*ref)(float);
    } ops[] = {{"exp", heed_exp, ref_exp},
               {"tanh", heed_tanh, ref_tanh},
               {"sigmoid", heed_sigmoid, ref_sigmoid},
               {"softplus", heed_softplus, ref_softplus},
               {"gelu", heed_gelu, ref_gelu},
               {"gelu_tanh", heed_gelu_tanh, ref_gelu_tanh}};
    heed_ctx *ctx = heed_ctx_new(NULL);
    heed_graph *g = heed_graph_new(ctx);
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    heed_rng r = heed_rng_make(1, 0);
    for (int i = 0; i < N; i++) x[i] = (float)(8 * heed_rng_uniform(&r) - 4);
    double t_copy;
    BENCH_BEST(5, t_copy, memcpy(y, x, N * sizeof *x));
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        double t_fwd, t_both, t_libm;
        BENCH_BEST(5, t_fwd, {
            heed_graph_reset(g);
            heed_tensor *xt = heed_input(g, HEED_F32, HEED_SHAPE(N), x);
            ops[k].f(g, xt);
        });
        BENCH_BEST(5, t_both, {
            heed_graph_reset(g);
            heed_tensor *xt = heed_requires_grad(heed_input(g, HEED_F32, HEED_SHAPE(N), x));
            heed_tensor *yt = ops[k].f(g, xt);
            heed_backward_with(g, yt, xt); /* any seed of the right shape */
        });
        /* heed_input's copy is in both timings; take it out with the memcpy reference */
        t_fwd -= t_copy, t_both -= t_copy;
        BENCH_BEST(5, t_libm, for (int i = 0; i < N; i++) y[i] = ops[k].ref(x[i]));
        if (heed_graph_status(g) != HEED_OK) fprintf(stderr, "error: %s\n", heed_graph_error(g));
        printf("{\"bench\":\"unary\",\"case\":\"%s f32 n=%d threads=%d\",\"fwd_gelem_s\":%.3f,\"fwd_bwd_ms\":%.2f,"
               "\"libm_loop_gelem_s\":%.3f,\"ratio_vs_libm_loop\":%.1f,\"ratio_vs_memcpy\":%.2f}\n",
               ops[k].name, N, heed_ctx_threads(ctx), N / t_fwd * 1e-9, t_both * 1e3, N / t_libm * 1e-9, t_libm / t_fwd,
               t_fwd / t_copy);
    }
    free(x), free(y);
    heed_graph_free(g);
    heed_ctx_free(ctx);
    return 0;
}
