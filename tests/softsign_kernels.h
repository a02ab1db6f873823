/* softsign's kernels for one element type, the idiom of docs/guide.md section 6: the
 * includer defines T (float or double) and FN(name) (name_f32 or name_f64), includes this
 * file and undefines both. Math in double:
 *   y = x / (1 + |x|),  dx += dy / (1 + |x|)^2 */

static void FN(softsign_forward)(const T *x, T *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = (T)((double)x[i] / (1 + fabs((double)x[i])));
}

static void FN(softsign_backward)(const T *x, const T *dy, T *dx, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double d = 1 + fabs((double)x[i]);
        dx[i] += (T)(dy[i] / (d * d));
    }
}
