/* The kernels of dist_mpi.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: dist_mpi.c. */

static void FN(dist_average_kernel)(heed_params *P, int64_t begin, int64_t end, int size) {
    T *gr = heed_params_grads(P);
    for (int64_t i = begin; i < end; i++) gr[i] /= (T)size;
}
