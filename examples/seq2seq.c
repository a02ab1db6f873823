/* An encoder-decoder with attention that learns to reverse a sequence (docs/guide.md, "An
 * encoder-decoder: reverse a sequence"; bench/seq2seq_torch.py is the same program in
 * PyTorch). Sequences of 3..12 symbols from a vocabulary of 10 (plus PAD, BOS, EOS) are
 * embedded and read by a bidirectional LSTM over their true lengths; a linear bridge maps
 * its final state to the decoder's, an LSTM cell that attends (additive attention) to the
 * encoder's outputs and is fed the previous context with the previous token. The loss skips
 * padding; evaluation decodes greedily, token by token in bounded memory, on sequences
 * never trained on (a tenth of all sequences, chosen by a checksum) and counts exact
 * reversals. Trains until 99% of them are right or --steps; draws the attention of one.
 *
 *   seq2seq [--steps N] [--batch B] [--lr LR] [--seed S] [--eval-every N] [--threads N]
 *           [--heatmap PATH]
 */
#include <heed/attention.h>
#include <heed/core.h>
#include <heed/elementwise.h>
#include <heed/extend.h>
#include <heed/index.h>
#include <heed/layers.h>
#include <heed/loss.h>
#include <heed/matmul.h>
#include <heed/optim.h>
#include <heed/rnn.h>
#include <heed/shape.h>
#include <heed/viz.h>

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { PAD, BOS, EOS, V = 13, MAXLEN = 12, E = 32, H = 64, D = 128, A = 64, TEST = 1000 };

typedef struct { /* n sequences, padded to MAXLEN; the decoder reads BOS + the reversal, predicts it + EOS */
    int n;
    int64_t src[TEST][MAXLEN], lengths[TEST], dec_in[TEST][MAXLEN + 1], tgt[TEST][MAXLEN + 1];
} batch;

static bool held_out(const int64_t *s, int64_t n) { /* a tenth of all sequences, never trained on */
    int64_t sum = 0;
    for (int i = 0; i < n; i++) sum += (i + 1) * s[i];
    return sum % 10 == 0;
}

static void sample(heed_rng *r, batch *b, int n, bool want_held_out) {
    memset(b, 0, sizeof *b); /* PAD is 0 */
    b->n = n;
    for (int i = 0; i < n; i++) {
        int64_t len, *s = b->src[i];
        do {
            len = b->lengths[i] = 3 + (int64_t)heed_rng_below(r, MAXLEN - 2);
            for (int t = 0; t < MAXLEN; t++) s[t] = t < len ? 3 + (int64_t)heed_rng_below(r, V - 3) : PAD;
        } while (held_out(s, len) != want_held_out);
        b->dec_in[i][0] = BOS;
        for (int t = 0; t < len; t++) b->tgt[i][t] = b->dec_in[i][t + 1] = s[len - 1 - t];
        b->tgt[i][len] = EOS;
    }
}

typedef struct { /* nn.Linear */
    heed_tensor *weight, *bias;
} linear;

typedef struct {
    heed_tensor *emb;
    heed_rnn enc;
    linear bridge_h, bridge_c, out;
    heed_rnn_cell cell;
    heed_additive_layer att;
} model;

typedef struct { /* what the decoder steps share: the encoder's outputs and the state */
    heed_tensor *keys, *keys_proj, *h, *c, *context, *weights;
    const int64_t *lengths;
} decoder;

static linear declare_linear(heed_params *P, const char *name, int64_t out, int64_t in) {
    double r = 1 / sqrt((double)in); /* nn.Linear's initialisation */
    linear l = {heed_param_prefixed(P, name, "weight", HEED_SHAPE(out, in), heed_init_uniform(-r, r))};
    l.bias = heed_param_prefixed(P, name, "bias", HEED_SHAPE(out), heed_init_uniform(-r, r));
    return l;
}

/* Names as PyTorch's state_dict. A parameter that failed is NULL, and the first step then
 * fails naming it; the layers' declarations must succeed before their structs are used. */
static bool declare(model *m, heed_params *P) {
    m->emb = heed_param(P, "emb.weight", HEED_SHAPE(V, E), heed_init_normal(0, 1));
    m->bridge_h = declare_linear(P, "bridge_h", D, 2 * H);
    m->bridge_c = declare_linear(P, "bridge_c", D, 2 * H);
    m->out = declare_linear(P, "out", V, D + 2 * H);
    heed_rnn_opts enc = {.input_size = E, .hidden_size = H, .bidirectional = true, .batch_first = true};
    heed_rnn_opts cell = {.input_size = E + 2 * H, .hidden_size = D};
    heed_additive_config att = {.query_dim = D, .key_dim = 2 * H, .attn_dim = A, .bias = true};
    return !heed_rnn_declare(&m->enc, P, "enc", &enc) && !heed_rnn_cell_declare(&m->cell, P, "cell", &cell) &&
           !heed_additive_declare(&m->att, P, "att", &att);
}

static decoder encode(heed_graph *g, const model *m, const batch *b) {
    heed_tensor *x = heed_embedding(g, m->emb, b->src[0], HEED_SHAPE(b->n, MAXLEN), PAD), *h, *c;
    decoder d = {.lengths = b->lengths};
    d.keys = heed_lstm(g, &m->enc, x, NULL, NULL, b->lengths, &h, &c); /* [n, MAXLEN, 2H] */
    d.keys_proj = heed_additive_keys(g, d.keys, m->att.w_k, NULL);
    d.h = heed_tanh(g, heed_linear(g, heed_rnn_final_state(g, &m->enc, h, -1), m->bridge_h.weight, m->bridge_h.bias));
    d.c = heed_linear(g, heed_rnn_final_state(g, &m->enc, c, -1), m->bridge_c.weight, m->bridge_c.bias);
    d.context = heed_zeros(g, HEED_F32, HEED_SHAPE(b->n, 2 * H));
    return d;
}

/* One decoder step from the embedded previous token y [n, E]: the logits [n, V]. */
static heed_tensor *step(heed_graph *g, const model *m, decoder *d, heed_tensor *y) {
    heed_tensor *in = heed_concat(g, (heed_tensor *[]){y, d->context}, 2, 1);
    d->h = heed_lstm_cell_step(g, &m->cell, in, d->h, d->c, &d->c);
    d->context =
        heed_additive_attention(g, d->h, d->keys_proj, d->keys, &m->att.params, NULL, NULL, d->lengths, &d->weights);
    return heed_linear(g, heed_concat(g, (heed_tensor *[]){d->h, d->context}, 2, 1), m->out.weight, m->out.bias);
}

static heed_tensor *train_loss(heed_graph *g, const model *m, const batch *b) {
    decoder d = encode(g, m, b);
    heed_tensor *y = heed_embedding(g, m->emb, b->dec_in[0], HEED_SHAPE(b->n, MAXLEN + 1), PAD), *logits[MAXLEN + 1];
    for (int t = 0; t <= MAXLEN; t++) logits[t] = step(g, m, &d, heed_select(g, y, 1, t));
    heed_tensor *all = heed_reshape(g, heed_stack(g, logits, MAXLEN + 1, 1), HEED_SHAPE(-1, V));
    return heed_cross_entropy(g, all, b->tgt[0], &(heed_ce_opts){.ignore_index = PAD, .has_ignore_index = true});
}

/* Greedy decoding under no-grad, rewinding the graph before each token to a mark after the
 * encoder; the state the next token needs is kept over the rewind. Returns the share of
 * exact reversals (-1 on an error); heat receives the attention weights of sequence 0,
 * [its length + 1, its length]. */
static double held_out_accuracy(heed_graph *g, const model *m, const batch *b, float *heat) {
    int64_t y[TEST], n = b->n, len0 = b->lengths[0];
    bool right[TEST];
    heed_graph_reset(g);
    heed_no_grad_begin(g);
    decoder d = encode(g, m, b);
    heed_graph_mark mark = heed_graph_mark_now(g);
    for (int i = 0; i < n; i++) y[i] = BOS, right[i] = true;
    heed_tensor **state[] = {&d.h, &d.c, &d.context};
    for (int t = 0; t <= MAXLEN && heed_graph_rewind_keeping(g, mark, state, 3) == HEED_OK; t++) {
        if (heed_argmax(g, step(g, m, &d, heed_embedding(g, m->emb, y, HEED_SHAPE(n), PAD)), -1, y) != HEED_OK) break;
        if (t <= len0) memcpy(heat + t * len0, d.weights->data, sizeof(float) * len0);
        for (int i = 0; i < n; i++) right[i] &= t > b->lengths[i] || y[i] == b->tgt[i][t];
    }
    heed_no_grad_end(g);
    int correct = 0;
    for (int i = 0; i < n; i++) correct += right[i];
    return heed_graph_status(g) == HEED_OK ? (double)correct / n : -1;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int usage(const char *prog) {
    fprintf(stderr,
            "usage: %s [--steps N] [--batch B] [--lr LR] [--seed S] [--eval-every N] [--threads N] [--heatmap PATH]\n",
            prog);
    return 2;
}

int main(int argc, char **argv) {
    long steps = 5000, batch_size = 64, seed = 1, eval_every = 50, threads = 0;
    double lr = 3e-3;
    const char *heatmap = "seq2seq-attention.png";
    for (int i = 1; i < argc; i += 2) {
        const char *flag = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        char *end = "";
        if (!strcmp(flag, "--steps")) steps = strtol(v, &end, 10);
        else if (!strcmp(flag, "--batch")) batch_size = strtol(v, &end, 10);
        else if (!strcmp(flag, "--lr")) lr = strtod(v, &end);
        else if (!strcmp(flag, "--seed")) seed = strtol(v, &end, 10);
        else if (!strcmp(flag, "--eval-every")) eval_every = strtol(v, &end, 10);
        else if (!strcmp(flag, "--threads")) threads = strtol(v, &end, 10);
        else if (!strcmp(flag, "--heatmap")) heatmap = v;
        else return usage(argv[0]);
        if (!*v || *end || steps < 1 || batch_size < 1 || batch_size > TEST || !(lr > 0) || eval_every < 0 ||
            threads < 0)
            return usage(argv[0]);
    }
    if (threads > 0) omp_set_num_threads((int)threads); /* the program's count: the BLAS follows it too */
    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = (uint64_t)seed, .threads = (int)threads});
    heed_params *P = heed_params_new(ctx, HEED_F32);
    model m;
    heed_optimizer *opt = declare(&m, P) ? heed_adam(P, &(heed_adam_opts){.lr = lr}) : NULL;
    heed_graph *g = opt ? heed_graph_new(ctx) : NULL;
    static batch train, test;
    static float heat[(MAXLEN + 1) * MAXLEN];
    heed_rng rng = heed_rng_make((uint64_t)seed, 1);
    sample(&rng, &test, TEST, true);
    double accuracy = 0, seconds = 0, first_loss = NAN, loss = NAN;
    long step = 0;
    bool failed = !g;
    while (!failed && step < steps && accuracy < 0.99) {
        double t0 = now();
        step++;
        sample(&rng, &train, (int)batch_size, false);
        heed_graph_reset(g);
        heed_params_zero_grad(P);
        heed_tensor *l = train_loss(g, &m, &train);
        failed = heed_backward(g, l) != HEED_OK || heed_optimizer_step(opt) != HEED_OK;
        seconds += now() - t0;
        loss = heed_get(l, 0);
        first_loss = step == 1 ? loss : first_loss;
        if (!failed && eval_every && (step % eval_every == 0 || step == steps)) {
            accuracy = held_out_accuracy(g, &m, &test, heat);
            failed = accuracy < 0;
            printf("step %ld loss %.4f held-out accuracy %.1f%% (%.1f s)\n", step, loss, 100 * accuracy, seconds);
        }
    }
    if (!failed && eval_every) {
        heed_tensor *w = heed_input(g, HEED_F32, HEED_SHAPE(test.lengths[0] + 1, test.lengths[0]), heat);
        failed = heed_heatmap_png(ctx, heatmap, w, &(heed_heatmap_opts){.cmap = HEED_CMAP_VIRIDIS}) != HEED_OK;
    }
    if (failed) fprintf(stderr, "seq2seq: %s%s\n", g ? heed_graph_error(g) : "", heed_ctx_error(ctx));
    printf(
        "{\"steps\": %ld, \"first_loss\": %.4f, \"loss\": %.4f, \"held_out_accuracy\": %.4f, \"train_seconds\": %.3f, "
        "\"steps_per_second\": %.3f}\n",
        step, first_loss, loss, accuracy, seconds, step / seconds);
    heed_graph_free(g);
    heed_optimizer_free(opt);
    heed_params_free(P);
    heed_ctx_free(ctx);
    return failed;
}
