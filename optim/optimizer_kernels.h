/* The kernels of optimizer.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: optimizer.c. */

/* Index of the first non-finite element of g[n], or -1. */
static int64_t FN(first_nonfinite)(const T *g, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(g[i])) return i;
    return -1;
}
