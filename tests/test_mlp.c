/* End to end: a 2 -> 32 -> 32 -> 2 tanh MLP learns the two-spirals problem with plain
 * full-batch SGD written here over the parameter store's flat buffers. The loss must fall
 * by more than 10x and the training accuracy pass 95%. */
#include "check.h"
#include "heed/elementwise.h"
#include "heed/loss.h"
#include "heed/matmul.h"

enum { PER_CLASS = 100, N = 2 * PER_CLASS, STEPS = 3000 };
#define TURNS 1.25
#define LR 0.5f

/* Two interleaved spirals (class c turned by c*pi), radius 0.1 .. 1, TURNS turns. */
static void spirals(float *x, int64_t *y) {
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < PER_CLASS; i++) {
            double t = (double)i / PER_CLASS, r = 0.1 + 0.9 * t, a = TURNS * 2 * M_PI * t + c * M_PI;
            int k = c * PER_CLASS + i;
            x[2 * k] = (float)(r * cos(a));
            x[2 * k + 1] = (float)(r * sin(a));
            y[k] = c;
        }
}

static void two_spirals(void) {
    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 2024});
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_tensor *w1 = heed_param(P, "l1.w", HEED_SHAPE(32, 2), heed_init_xavier_uniform(1));
    heed_tensor *b1 = heed_param(P, "l1.b", HEED_SHAPE(32), heed_init_zeros());
    heed_tensor *w2 = heed_param(P, "l2.w", HEED_SHAPE(32, 32), heed_init_xavier_uniform(1));
    heed_tensor *b2 = heed_param(P, "l2.b", HEED_SHAPE(32), heed_init_zeros());
    heed_tensor *w3 = heed_param(P, "l3.w", HEED_SHAPE(2, 32), heed_init_xavier_uniform(1));
    heed_tensor *b3 = heed_param(P, "l3.b", HEED_SHAPE(2), heed_init_zeros());
    CHECK(w1 && b1 && w2 && b2 && w3 && b3, "%s", heed_ctx_error(ctx));
    static float xs[2 * N];
    static int64_t ys[N];
    spirals(xs, ys);

    heed_graph *g = heed_graph_new(ctx);
    float *values = heed_params_values(P);
    const float *grads = heed_params_grads(P);
    int64_t numel = heed_params_padded_numel(P);
    double first = NAN, last = NAN;
    int correct = 0;
    for (int step = 0; step < STEPS; step++) {
        heed_graph_reset(g);
        heed_params_zero_grad(P);
        heed_tensor *x = heed_input(g, HEED_F32, HEED_SHAPE(N, 2), xs);
        heed_tensor *h = heed_tanh(g, heed_linear(g, x, w1, b1));
        h = heed_tanh(g, heed_linear(g, h, w2, b2));
        heed_tensor *logits = heed_linear(g, h, w3, b3);
        heed_tensor *loss = heed_cross_entropy(g, logits, ys, NULL);
        if (heed_backward(g, loss) != HEED_OK) {
            CHECK(false, "step %d: %s", step, heed_graph_error(g));
            break;
        }
        for (int64_t i = 0; i < numel; i++) values[i] -= LR * grads[i];
        last = heed_get(loss, 0);
        if (step == 0) first = last;
        if (step == STEPS - 1) { /* accuracy of the logits this step was computed from */
            correct = 0;
            for (int k = 0; k < N; k++)
                correct += (heed_get(logits, 2 * k + 1) > heed_get(logits, 2 * k)) == (ys[k] == 1);
        }
    }
    printf("two spirals: loss %.4f -> %.5f (%.0fx), accuracy %.1f%%\n", first, last, first / last, 100.0 * correct / N);
    CHECK(first > 0.5 && first < 1.0, "initial loss %g should be near log 2", first);
    CHECK(first / last > 10, "loss fell only from %g to %g", first, last);
    CHECK(correct > 0.95 * N, "accuracy %d/%d", correct, N);
    heed_graph_free(g);
    heed_params_free(P);
    heed_ctx_free(ctx);
}

int main(void) {
    RUN(two_spirals);
    return check_summary();
}
