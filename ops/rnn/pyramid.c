/* The time reduction of a pyramidal BLSTM (Listen, Attend and Spell): neighbouring frames
 * concatenated, T -> ceil(T/2), then a (bidirectional) LSTM on the halved lengths.
 *   y[t, b] = [x[2t, b] m(2t, b), x[2t+1, b] m(2t+1, b)],  m(s, b) = 1 if s < len_b else 0
 * so padding frames and the missing frame T of an odd T enter as zeros.
 * Backward: dx[s, b] = dy[s/2, b, half s%2] m(s, b).
 * heed_pyramid_lstm of a batch_first rnn does the same on batch-major x[B,T,F] and
 * y[B,ceil(T/2),2F] (frame (s, b) is then row b*T + s): the pyramid works on time. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "rnn.h"

typedef struct {
    const int64_t *len; /* arena copy or NULL */
    bool bm;            /* batch-major x and y */
} pyr_saved;

/* Element offsets of frame s of row b in x, and of the half of y it fills. */
static int64_t x_at(bool bm, int64_t T, int64_t B, int64_t F, int64_t s, int64_t b) {
    return (bm ? b * T + s : s * B + b) * F;
}
static int64_t y_at(bool bm, int64_t T, int64_t B, int64_t F, int64_t s, int64_t b) {
    int64_t T2 = (T + 1) / 2;
    return (bm ? b * T2 + s / 2 : s / 2 * B + b) * 2 * F + s % 2 * F;
}

#define T float
#define FN(name) name##_f32
#include "pyramid.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "pyramid.c"
#undef T
#undef FN

static void pyramid_backward(heed_graph *g, heed_node *n) {
    heed_tensor *x = n->in[0], *y = n->out[0];
    const pyr_saved *sv = n->saved;
    void *gx = heed_grad_buffer(g, x);
    if (!gx) return;
    bool bm = sv->bm;
    int64_t T = x->shape[bm ? 1 : 0], B = x->shape[bm ? 0 : 1], F = x->shape[2];
    if (x->dtype == HEED_F32) pyramid_backward_kernel_f32(y, gx, x, g, T, B, sv, bm, F);
    else pyramid_backward_kernel_f64(y, gx, x, g, T, B, sv, bm, F);
}

static const heed_op op_pyramid = {"heed_pyramid_concat", pyramid_backward};

static heed_tensor *pyramid(heed_graph *g, const char *op, heed_tensor *x, const int64_t *lengths, int64_t *out_lengths,
                            bool bm) {
    if (!heed_check_tensor(g, op, x, "x")) return NULL;
    if (x->ndim != 3 || x->shape[0] < 1 || x->shape[1] < 1 || x->shape[2] < 1)
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: x%s must be %s, each >= 1", op, HEED_S(x),
                               bm ? "[batch, T, features] (batch_first)" : "[T, batch, features]"),
               NULL;
    int64_t T = x->shape[bm ? 1 : 0], B = x->shape[bm ? 0 : 1], F = x->shape[2], T2 = (T + 1) / 2;
    if (!heed__rnn_check_lengths(g, op, lengths, x, B, T)) return NULL;
    heed_tensor *y = heed__new(g, op, x->dtype, 3, bm ? (int64_t[]){B, T2, 2 * F} : (int64_t[]){T2, B, 2 * F});
    if (!y) return NULL;
    if (x->dtype == HEED_F32) pyramid_kernel_f32(x, y, g, T, T2, B, bm, F, lengths);
    else pyramid_kernel_f64(x, y, g, T, T2, B, bm, F, lengths);
    heed_node *n = heed_record(g, &op_pyramid, 1, &x, 1, &y);
    if (n) {
        pyr_saved *sv = heed__zalloc(g, sizeof *sv);
        int64_t *len = lengths ? heed_graph_alloc(g, (size_t)B * sizeof *len) : NULL;
        if (len) memcpy(len, lengths, (size_t)B * sizeof *len);
        if (sv) sv->len = len, sv->bm = bm;
        n->saved = sv;
    }
    /* after the lengths are saved: out_lengths may be the lengths array itself (halved in place) */
    if (out_lengths)
        for (int64_t b = 0; b < B; b++) out_lengths[b] = ((lengths ? lengths[b] : T) + 1) / 2;
    return heed_graph_ok(g) ? y : NULL;
}

heed_tensor *heed_pyramid_concat(heed_graph *g, heed_tensor *x, const int64_t *lengths, int64_t *out_lengths) {
    return pyramid(g, "heed_pyramid_concat", x, lengths, out_lengths, false);
}

heed_tensor *heed_pyramid_lstm(heed_graph *g, const heed_rnn *rnn, heed_tensor *x, const int64_t *lengths,
                               int64_t *out_lengths, heed_tensor **h_n, heed_tensor **c_n) {
    if (h_n) *h_n = NULL;
    if (c_n) *c_n = NULL;
    if (!heed_graph_ok(g)) return NULL;
    if (!out_lengths)
        return heed_graph_fail(g, HEED_ERR_ARG,
                               "heed_pyramid_lstm: out_lengths is NULL (it receives the halved lengths)"),
               NULL;
    heed_tensor *y = pyramid(g, "heed_pyramid_lstm", x, lengths, out_lengths, rnn && rnn->opts.batch_first);
    if (!y) return NULL;
    return heed_lstm(g, rnn, y, NULL, NULL, out_lengths, h_n, c_n);
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

/* steps is the input's time length (T in the math at the top). */

static void FN(pyramid_backward_kernel)(heed_tensor *y, void *gx, heed_tensor *x, heed_graph *g, int64_t steps,
                                        int64_t B, const pyr_saved *sv, bool bm, int64_t F) {
    const T *dy = y->grad;
    T *dx = gx;
#pragma omp parallel for if (x->numel > 65536) schedule(static) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t s = 0; s < steps; s++)
        for (int64_t b = 0; b < B; b++) {
            if (sv->len && s >= sv->len[b]) continue;
            const T *src = dy + y_at(bm, steps, B, F, s, b);
            T *dst = dx + x_at(bm, steps, B, F, s, b);
            for (int64_t f = 0; f < F; f++) dst[f] += src[f];
        }
}

static void FN(pyramid_kernel)(heed_tensor *x, heed_tensor *y, heed_graph *g, int64_t steps, int64_t T2, int64_t B,
                               bool bm, int64_t F, const int64_t *lengths) {
    const T *X = x->data;
    T *Y = y->data;
#pragma omp parallel for if (y->numel > 65536) schedule(static) num_threads(heed_ctx_threads_now(g->ctx))
    for (int64_t s = 0; s < 2 * T2; s++)
        for (int64_t b = 0; b < B; b++) {
            T *dst = Y + y_at(bm, steps, B, F, s, b);
            if (s >= steps || (lengths && s >= lengths[b])) memset(dst, 0, (size_t)F * sizeof(T));
            else memcpy(dst, X + x_at(bm, steps, B, F, s, b), (size_t)F * sizeof(T));
        }
}
#endif
