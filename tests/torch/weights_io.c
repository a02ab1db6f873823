/* The heed side of the PyTorch round trip (tests/torch/roundtrip.py; needs no torch).
 *   weights_io <in.safetensors> <out.safetensors>
 * Imports the weights of torch.nn.Sequential(Linear(5,16), Square(), Linear(16,3)) by
 * their state_dict names (strict), prints the model's output on a fixed batch (one
 * value per line, %.9g), then adds 0.5 to every weight and exports the result. */
#include "heed/checkpoint.h"
#include "heed/core.h"
#include "heed/elementwise.h"
#include "heed/matmul.h"

#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s in.safetensors out.safetensors\n", argv[0]);
        return 2;
    }
    heed_ctx *ctx = heed_ctx_new(NULL);
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_tensor *w0 = heed_param(P, "0.weight", HEED_SHAPE(16, 5), heed_init_zeros());
    heed_tensor *b0 = heed_param(P, "0.bias", HEED_SHAPE(16), heed_init_zeros());
    heed_tensor *w1 = heed_param(P, "2.weight", HEED_SHAPE(3, 16), heed_init_zeros());
    heed_tensor *b1 = heed_param(P, "2.bias", HEED_SHAPE(3), heed_init_zeros());
    if (heed_safetensors_import(P, argv[1], true) != HEED_OK) {
        fprintf(stderr, "%s\n", heed_ctx_error(ctx));
        return 1;
    }
    float x[4 * 5];
    for (int i = 0; i < 4 * 5; i++) x[i] = (float)(i % 7 - 3) / 4.0f; /* the same batch in roundtrip.py */
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *h = heed_linear(g, heed_input(g, HEED_F32, HEED_SHAPE(4, 5), x), w0, b0);
    heed_tensor *y = heed_linear(g, heed_mul(g, h, h), w1, b1);
    if (!y) {
        fprintf(stderr, "%s\n", heed_graph_error(g));
        return 1;
    }
    for (int64_t i = 0; i < y->numel; i++) printf("%.9g\n", heed_get(y, i));
    float *v = heed_params_values(P);
    for (int64_t i = 0; i < heed_params_padded_numel(P); i++) v[i] += 0.5f; /* padding too: it is not exported */
    if (heed_safetensors_export(P, argv[2]) != HEED_OK) {
        fprintf(stderr, "%s\n", heed_ctx_error(ctx));
        return 1;
    }
    heed_graph_free(g);
    heed_params_free(P);
    heed_ctx_free(ctx);
    return 0;
}
