/* The kernels of cell.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: cell.c. */

/* d[n] += s[n] */
static void FN(add_into)(void *d_, const void *s_, int64_t n) {
    T *d = d_;
    const T *s = s_;
    for (int64_t i = 0; i < n; i++) d[i] += s[i];
}

static void FN(set_forget_bias)(heed_tensor **w, int64_t H, const heed_rnn_opts *o) {
    T *bi = w[2]->data, *bh = w[3]->data;
    for (int64_t j = H; j < 2 * H; j++) bi[j] = (T)o->forget_bias, bh[j] = 0;
}
