/* The time reduction of a pyramidal BLSTM (Listen, Attend and Spell): neighbouring frames
 * concatenated, T -> ceil(T/2), then a (bidirectional) LSTM on the halved lengths.
 *   y[t, b] = [x[2t, b] m(2t, b), x[2t+1, b] m(2t+1, b)],  m(s, b) = 1 if s < len_b else 0
 * so padding frames and the missing frame T of an odd T enter as zeros.
 * Backward: dx[s, b] = dy[s/2, b, half s%2] m(s, b). */
#include "rnn.h"

typedef struct {
    const int64_t *len; /* arena copy or NULL */
} pyr_saved;

static void pyramid_backward(heed_graph *g, heed_node *n) {
    heed_tensor *x = n->in[0], *y = n->out[0];
    const pyr_saved *sv = n->saved;
    void *gx = heed__grad(g, x);
    if (!gx) return;
    int64_t T = x->shape[0], B = x->shape[1], F = x->shape[2];
    HEED_FOR_DTYPE(x->dtype, T_, {
        const T_ *dy = y->grad;
        T_ *dx = gx;
_Pragma("omp parallel for if (x->numel > 65536) schedule(static)")
        for (int64_t s = 0; s < T; s++)
            for (int64_t b = 0; b < B; b++) {
                if (sv->len && s >= sv->len[b]) continue;
                const T_ *src = dy + ((s / 2) * B + b) * 2 * F + (s % 2) * F;
                T_ *dst = dx + (s * B + b) * F;
                for (int64_t f = 0; f < F; f++) dst[f] += src[f];
            }
    });
}

static const heed_op op_pyramid = {"heed_pyramid_concat", pyramid_backward};

heed_tensor *heed_pyramid_concat(heed_graph *g, heed_tensor *x, const int64_t *lengths, int64_t *out_lengths) {
    const char *op = "heed_pyramid_concat";
    if (!heed__check(g, op, x, "x")) return NULL;
    if (x->ndim != 3 || x->shape[0] < 1 || x->shape[1] < 1 || x->shape[2] < 1)
        return heed__fail(g, HEED_ERR_SHAPE, "%s: x%s must be [T, batch, features], each >= 1", op, HEED_S(x)), NULL;
    int64_t T = x->shape[0], B = x->shape[1], F = x->shape[2], T2 = (T + 1) / 2;
    if (!heed__rnn_check_lengths(g, op, lengths, x, B, T)) return NULL;
    heed_tensor *y = heed__new(g, op, x->dtype, 3, (int64_t[]){T2, B, 2 * F});
    if (!y) return NULL;
    HEED_FOR_DTYPE(x->dtype, T_, {
        const T_ *X = x->data;
        T_ *Y = y->data;
_Pragma("omp parallel for if (y->numel > 65536) schedule(static)")
        for (int64_t s = 0; s < 2 * T2; s++)
            for (int64_t b = 0; b < B; b++) {
                T_ *dst = Y + ((s / 2) * B + b) * 2 * F + (s % 2) * F;
                if (s >= T || (lengths && s >= lengths[b])) memset(dst, 0, (size_t)F * sizeof(T_));
                else memcpy(dst, X + (s * B + b) * F, (size_t)F * sizeof(T_));
            }
    });
    if (out_lengths)
        for (int64_t b = 0; b < B; b++) out_lengths[b] = ((lengths ? lengths[b] : T) + 1) / 2;
    heed_node *n = heed__record1(g, &op_pyramid, 1, &x, y);
    if (n) {
        pyr_saved *sv = heed__zalloc(g, sizeof *sv);
        int64_t *len = lengths ? heed__alloc(g, (size_t)B * sizeof *len) : NULL;
        if (len) memcpy(len, lengths, (size_t)B * sizeof *len);
        if (sv) sv->len = len;
        n->saved = sv;
    }
    return heed__live(g) ? y : NULL;
}

heed_tensor *heed_pyramid_lstm(heed_graph *g, const heed_rnn *rnn, heed_tensor *x, const int64_t *lengths,
                               int64_t *out_lengths, heed_tensor **h_n, heed_tensor **c_n) {
    if (h_n) *h_n = NULL;
    if (c_n) *c_n = NULL;
    if (!heed__live(g)) return NULL;
    if (!out_lengths)
        return heed__fail(g, HEED_ERR_ARG, "heed_pyramid_lstm: out_lengths is NULL (it receives the halved lengths)"),
               NULL;
    heed_tensor *y = heed_pyramid_concat(g, x, lengths, out_lengths);
    if (!y) return NULL;
    return heed_lstm(g, rnn, y, NULL, NULL, out_lengths, h_n, c_n);
}
