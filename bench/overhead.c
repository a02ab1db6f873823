/* Cost of recording one tiny op and running its backward: a chain of N elementwise
 * ops on 4-element tensors, forward + backward, time per op. The reference in the same
 * run is the same chain computed by plain C loops (what the arithmetic alone costs).
 * Target: at most 1 microsecond per op (forward + backward). */
#include "heed/core.h"
#include "heed/elementwise.h"
#include "heed/reduce.h"
#include "bench_util.h"

#include <stdio.h>

#define CHAIN 2000

int main(void) {
    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 1});
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_tensor *w = heed_param(P, "w", HEED_SHAPE(4), heed_init_uniform(0.9, 1.1));
    heed_graph *g = heed_graph_new(ctx);
    double t_heed, t_plain;
    BENCH_BEST(20, t_heed, {
        heed_graph_reset(g);
        heed_tensor *x = heed_full(g, HEED_F32, HEED_SHAPE(4), 1.0);
        for (int i = 0; i < CHAIN / 2; i++) x = heed_add(g, heed_mul(g, x, w), w);
        heed_backward(g, heed_sum_all(g, x));
    });
    if (heed_graph_status(g) != HEED_OK) fprintf(stderr, "error: %s\n", heed_graph_error(g));
    volatile float sink;
    BENCH_BEST(20, t_plain, {
        float x[4] = {1, 1, 1, 1}, gx[4] = {1, 1, 1, 1};
        const float *wv = w->data;
        for (int i = 0; i < CHAIN / 2; i++)
            for (int j = 0; j < 4; j++) x[j] = x[j] * wv[j] + wv[j];
        for (int i = 0; i < CHAIN / 2; i++)
            for (int j = 0; j < 4; j++) gx[j] *= wv[j];
        sink = x[0] + gx[0];
    });
    (void)sink;
    double per_op = t_heed / (CHAIN + 1) * 1e6;
    printf("{\"bench\":\"overhead\",\"case\":\"chain of %d ops on [4], fwd+bwd\",\"us_per_op\":%.3f,\"target_us\":1.0,"
           "\"plain_c_us_per_op\":%.4f,\"ratio_vs_plain_c\":%.1f}\n",
           CHAIN, per_op, t_plain / CHAIN * 1e6, t_heed / t_plain);
    heed_graph_free(g);
    heed_params_free(P);
    heed_ctx_free(ctx);
    return 0;
}
