/* The scalar softmax row kernels for one element type, included by softmax.c once with
 * T = float and once with T = double (FN(name) names the instance: name_f32, name_f64).
 * f64 always runs these; f32 runs them on CPUs without AVX2. Math: softmax.c. */

/* A row with no finite max: all -inf (masked) gives 0; a NaN anywhere gives NaN. */
static void FN(masked_row)(const T *x, T *y, int64_t n) {
    bool has_nan = false;
    for (int64_t j = 0; j < n; j++) has_nan |= x[j] != -INFINITY;
    for (int64_t j = 0; j < n; j++) y[j] = has_nan ? (T)NAN : 0;
}

static bool FN(row_fully_masked)(const T *x, int64_t n) {
    if (n == 0 || x[0] != -INFINITY) return n == 0;
    for (int64_t j = 1; j < n; j++)
        if (x[j] != -INFINITY) return false;
    return true;
}

static void FN(fwd_row)(const T *x, T *y, int64_t n, bool log_out) {
    T m = -INFINITY;
    for (int64_t j = 0; j < n; j++)
        if (x[j] > m) m = x[j];
    if (m == -INFINITY) {
        FN(masked_row)(x, y, n);
        return;
    }
    double s = 0;
    for (int64_t j = 0; j < n; j++) {
        T e = exp(x[j] - m);
        if (!log_out) y[j] = e;
        s += e;
    }
    if (log_out) {
        T ls = (T)log(s);
        for (int64_t j = 0; j < n; j++) y[j] = (x[j] - m) - ls;
    } else {
        T inv = (T)(1 / s);
        for (int64_t j = 0; j < n; j++) y[j] *= inv;
    }
}

/* softmax: dx = y * (dy - sum(dy * y)) */
static void FN(bwd_softmax_row)(const T *y, const T *dy, T *dx, int64_t n) {
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += (double)dy[j] * y[j];
    T st = (T)s;
    for (int64_t j = 0; j < n; j++) dx[j] += y[j] * (dy[j] - st);
}

/* log_softmax: dx = dy - softmax * sum(dy), softmax = exp(y) */
static void FN(bwd_log_softmax_row)(const T *x, const T *y, const T *dy, T *dx, int64_t n) {
    if (FN(row_fully_masked)(x, n)) return;
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += dy[j];
    T st = (T)s;
    for (int64_t j = 0; j < n; j++) dx[j] += dy[j] - exp(y[j]) * st;
}

static heed_row_lse FN(row_lse)(const T *x, int64_t n, double *sum_x) {
    T m = -INFINITY;
    double sx = 0;
    for (int64_t j = 0; j < n; j++) {
        if (x[j] > m) m = x[j];
        sx += x[j];
    }
    if (sum_x) *sum_x = sx;
    if (m == -INFINITY) /* NaN never passes x > m */
        return (heed_row_lse){sx != sx ? NAN : -INFINITY, 0};
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += exp(x[j] - m);
    return (heed_row_lse){m, log(s)};
}
