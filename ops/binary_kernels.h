/* The kernels of binary.c for one element type, included by it once with T = float and once
 * with T = double (FN(name) names the instance: name_f32, name_f64; docs/design.md,
 * "Kernels"). Math: binary.c. Off the flat
 * path, the loops visit every output element o with its a and b offsets ia, ib. */

static void FN(backward_kernel)(heed_tensor *a, heed_tensor *b, heed_tensor *y, void *ga_, void *gb_, const bcast *p,
                                heed_graph *g, binop op) {
    const T *A = a->data, *B = b->data, *dY = y->grad;
    T *gA = ga_, *gB = gb_;
    if (p->same) {
#pragma omp parallel for if (y->numel > 32768) num_threads(heed_ctx_threads(g->ctx))
        for (int64_t i = 0; i < y->numel; i++) {
            double da, db;
            partials(op, A[i], B[i], dY[i], &da, &db);
            if (gA) gA[i] += (T)da;
            if (gB) gB[i] += (T)db;
        }
    } else {
        int64_t o = 0;
        for (int64_t i0 = 0; i0 < p->n[0]; i0++)
            for (int64_t i1 = 0; i1 < p->n[1]; i1++)
                for (int64_t i2 = 0; i2 < p->n[2]; i2++)
                    for (int64_t i3 = 0; i3 < p->n[3]; i3++, o++) {
                        int64_t ia = i0 * p->sa[0] + i1 * p->sa[1] + i2 * p->sa[2] + i3 * p->sa[3];
                        int64_t ib = i0 * p->sb[0] + i1 * p->sb[1] + i2 * p->sb[2] + i3 * p->sb[3];
                        double da, db;
                        partials(op, A[ia], B[ib], dY[o], &da, &db);
                        if (gA) gA[ia] += (T)da;
                        if (gB) gB[ib] += (T)db;
                    }
    }
}

static void FN(forward_kernel)(heed_tensor *a, heed_tensor *b, heed_tensor *y, const bcast *p, heed_graph *g,
                               binop op) {
    const T *A = a->data, *B = b->data;
    T *Y = y->data;
    if (p->same) {
#pragma omp parallel for if (y->numel > 32768) num_threads(heed_ctx_threads(g->ctx))
        for (int64_t i = 0; i < y->numel; i++) Y[i] = (T)apply(op, A[i], B[i]);
    } else {
        int64_t o = 0;
        for (int64_t i0 = 0; i0 < p->n[0]; i0++)
            for (int64_t i1 = 0; i1 < p->n[1]; i1++)
                for (int64_t i2 = 0; i2 < p->n[2]; i2++)
                    for (int64_t i3 = 0; i3 < p->n[3]; i3++, o++) {
                        int64_t ia = i0 * p->sa[0] + i1 * p->sa[1] + i2 * p->sa[2] + i3 * p->sa[3];
                        int64_t ib = i0 * p->sb[0] + i1 * p->sb[1] + i2 * p->sb[2] + i3 * p->sb[3];
                        Y[o] = (T)apply(op, A[ia], B[ib]);
                    }
    }
}
