/* The scalar layer-norm row kernels for one element type, included by norm.c once with
 * T = float and once with T = double (FN(name) names the instance: name_f32, name_f64).
 * f64 always runs these; f32 runs them on CPUs without AVX2. Math: norm.c.
 * stats[0] = mean, stats[1] = rstd. gamma, beta may be NULL. */

static void FN(fwd_row)(const T *x, T *y, int64_t n, const T *gamma, const T *beta, double eps, double *stats) {
    double s = 0, v = 0;
    for (int64_t j = 0; j < n; j++) s += x[j];
    double mean = s / (double)n;
    for (int64_t j = 0; j < n; j++) v += ((double)x[j] - mean) * ((double)x[j] - mean);
    double rstd = 1 / sqrt(v / (double)n + eps);
    for (int64_t j = 0; j < n; j++) {
        T xh = (T)(((double)x[j] - mean) * rstd);
        y[j] = (gamma ? xh * gamma[j] : xh) + (beta ? beta[j] : 0);
    }
    stats[0] = mean, stats[1] = rstd;
}

static void FN(bwd_row)(const T *x, const T *dy, T *dx, int64_t n, const T *gamma, const double *stats, double *pgamma,
                        double *pbeta) {
    double mean = stats[0], rstd = stats[1], a = 0, b = 0;
    for (int64_t j = 0; j < n; j++) {
        double xh = ((double)x[j] - mean) * rstd, h = gamma ? (double)dy[j] * gamma[j] : dy[j];
        a += h, b += h * xh;
        if (pgamma) pgamma[j] += (double)dy[j] * xh;
        if (pbeta) pbeta[j] += dy[j];
    }
    if (!dx) return;
    a /= (double)n, b /= (double)n;
    for (int64_t j = 0; j < n; j++) {
        double xh = ((double)x[j] - mean) * rstd, h = gamma ? (double)dy[j] * gamma[j] : dy[j];
        dx[j] += (T)(rstd * (h - a - xh * b));
    }
}
