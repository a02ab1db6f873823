/* The kernels of where.c for one element type T and one mask type M, included by it four
 * times (FN(name) names the instance: name_f32_m32, name_f32_m64, name_f64_m32,
 * name_f64_m64; docs/design.md, "Kernels"). Math: where.c. Each visits every output
 * element in order, o its flat index, parallel over the two outer dims when `par` (only
 * where writes are disjoint). */

static void FN(where_backward_kernel)(const bplan *p, bool par, int threads, const M *m, const T *dy, T *ga, T *gb) {
#pragma omp parallel for collapse(2) schedule(static) if (par) num_threads(threads)
    for (int64_t i0 = 0; i0 < p->n[0]; i0++)
        for (int64_t i1 = 0; i1 < p->n[1]; i1++)
            for (int64_t i2 = 0; i2 < p->n[2]; i2++)
                for (int64_t i3 = 0; i3 < p->n[3]; i3++) {
                    int64_t o = ((i0 * p->n[1] + i1) * p->n[2] + i2) * p->n[3] + i3;
                    if (m[off(p, 0, i0, i1, i2, i3)] != 0) {
                        if (ga) ga[off(p, 1, i0, i1, i2, i3)] += dy[o];
                    } else if (gb) {
                        gb[off(p, 2, i0, i1, i2, i3)] += dy[o];
                    }
                }
}

static void FN(where_kernel)(const bplan *p, bool par, int threads, const M *m, const T *A, const T *B, T *Y) {
#pragma omp parallel for collapse(2) schedule(static) if (par) num_threads(threads)
    for (int64_t i0 = 0; i0 < p->n[0]; i0++)
        for (int64_t i1 = 0; i1 < p->n[1]; i1++)
            for (int64_t i2 = 0; i2 < p->n[2]; i2++)
                for (int64_t i3 = 0; i3 < p->n[3]; i3++) {
                    int64_t o = ((i0 * p->n[1] + i1) * p->n[2] + i2) * p->n[3] + i3;
                    Y[o] =
                        m[off(p, 0, i0, i1, i2, i3)] != 0 ? A[off(p, 1, i0, i1, i2, i3)] : B[off(p, 2, i0, i1, i2, i3)];
                }
}

static void FN(masked_fill_backward_kernel)(const bplan *p, bool par, int threads, const M *m, const T *dy, T *gx) {
#pragma omp parallel for collapse(2) schedule(static) if (par) num_threads(threads)
    for (int64_t i0 = 0; i0 < p->n[0]; i0++)
        for (int64_t i1 = 0; i1 < p->n[1]; i1++)
            for (int64_t i2 = 0; i2 < p->n[2]; i2++)
                for (int64_t i3 = 0; i3 < p->n[3]; i3++) {
                    int64_t o = ((i0 * p->n[1] + i1) * p->n[2] + i2) * p->n[3] + i3;
                    if (m[off(p, 1, i0, i1, i2, i3)] == 0) gx[o] += dy[o];
                }
}

static void FN(masked_fill_kernel)(const bplan *p, bool par, int threads, const M *m, const T *X, T v, T *Y) {
#pragma omp parallel for collapse(2) schedule(static) if (par) num_threads(threads)
    for (int64_t i0 = 0; i0 < p->n[0]; i0++)
        for (int64_t i1 = 0; i1 < p->n[1]; i1++)
            for (int64_t i2 = 0; i2 < p->n[2]; i2++)
                for (int64_t i3 = 0; i3 < p->n[3]; i3++) {
                    int64_t o = ((i0 * p->n[1] + i1) * p->n[2] + i2) * p->n[3] + i3;
                    Y[o] = m[off(p, 1, i0, i1, i2, i3)] != 0 ? v : X[o];
                }
}
