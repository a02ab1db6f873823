/* Shape ops and embedding: gradient checks (negative dims, -1 reshape, odd sizes, three
 * inputs along a middle dim, repeated indices), values against direct loops and (flip)
 * PyTorch 1.13, the threaded backward paths, bad input. */
#include "check.h"
#include "heed/elementwise.h"
#include "heed/reduce.h"
#include "heed/shape.h"

static heed_ctx *ctx;

/* Element (i0, i1, i2, i3) of a row-major tensor of up to 4 dims. */
static double at4(const heed_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    int64_t idx[4] = {i0, i1, i2, i3}, o = 0;
    for (int k = 0; k < t->ndim; k++) o = o * t->shape[k] + idx[k];
    return heed_get(t, o);
}

/* ---------------------------------------------------------------- gradient checks */

static heed_tensor *fn_reshape(heed_graph *g, heed_tensor **x, void *u) {
    (void)u;
    /* [2,3,5] -> [5,-1] -> [-1] -> [3,2,5]; then a nonlinear op so the view's data is used */
    heed_tensor *y = heed_reshape(g, x[0], HEED_SHAPE(5, -1));
    y = heed_mul(g, y, y);
    y = heed_reshape(g, y, HEED_SHAPE(-1));
    return heed_reshape(g, y, HEED_SHAPE(3, 2, 5));
}

static heed_tensor *fn_transpose(heed_graph *g, heed_tensor **x, void *u) {
    (void)u;
    return heed_transpose(g, heed_transpose(g, x[0], -1, 0), 1, -2); /* [2,3,5] -> [5,3,2] -> [5,3,2] */
}

static heed_tensor *fn_permute(heed_graph *g, heed_tensor **x, void *u) {
    const int *perm = u;
    return heed_permute(g, x[0], perm);
}

typedef struct {
    const int *dims;
    int n;
} flip_args;

static heed_tensor *fn_flip(heed_graph *g, heed_tensor **x, void *u) {
    const flip_args *a = u;
    return heed_flip(g, x[0], a->dims, a->n);
}

typedef struct {
    int dim;
    int64_t start, end;
} slice_args;

static heed_tensor *fn_slice(heed_graph *g, heed_tensor **x, void *u) {
    const slice_args *s = u;
    return heed_slice(g, x[0], s->dim, s->start, s->end);
}

static heed_tensor *fn_concat(heed_graph *g, heed_tensor **x, void *u) {
    int dim = *(int *)u;
    return heed_concat(g, x, 3, dim);
}

static heed_tensor *fn_concat_self(heed_graph *g, heed_tensor **x, void *u) {
    (void)u;
    heed_tensor *xs[3] = {x[0], x[1], x[0]}; /* the same tensor twice */
    return heed_concat(g, xs, 3, 0);
}

static heed_tensor *fn_stack(heed_graph *g, heed_tensor **x, void *u) {
    int dim = *(int *)u;
    return heed_stack(g, x, 3, dim);
}

typedef struct {
    int dim;
    const int64_t *idx;
    int64_t n;
} isel_args;

static heed_tensor *fn_index_select(heed_graph *g, heed_tensor **x, void *u) {
    const isel_args *a = u;
    return heed_index_select(g, x[0], a->dim, a->idx, a->n);
}

static const int64_t emb_ids[6] = {2, 3, 0, 2, 6, 2}; /* shape [2,3]; 2 repeats, 3 is padding */

static heed_tensor *fn_embedding(heed_graph *g, heed_tensor **x, void *u) {
    int64_t pad = *(int64_t *)u;
    return heed_embedding(g, x[0], emb_ids, HEED_SHAPE(2, 3), pad);
}

static void gradchecks(void) {
    heed_gradcheck_input x235[1] = {{HEED_SHAPE(2, 3, 5), NULL, false}};
    CHECK_GRAD(ctx, fn_reshape, NULL, 1, x235, NULL);
    check_f32_vs_f64(ctx, fn_reshape, NULL, 1, x235, 1e-5, "reshape");
    CHECK_GRAD(ctx, fn_transpose, NULL, 1, x235, NULL);
    check_f32_vs_f64(ctx, fn_transpose, NULL, 1, x235, 1e-5, "transpose");

    static const int perms[3][4] = {{2, 0, 3, 1}, {-1, 0, -2, 1}, {0, 1, 2, 3}};
    heed_gradcheck_input x2345[1] = {{HEED_SHAPE(2, 3, 4, 5), NULL, false}};
    for (int p = 0; p < 3; p++) {
        CHECK_GRAD(ctx, fn_permute, (void *)perms[p], 1, x2345, NULL);
        check_f32_vs_f64(ctx, fn_permute, (void *)perms[p], 1, x2345, 1e-5, "permute");
    }
    static const int perm3[3] = {1, 2, 0};
    CHECK_GRAD(ctx, fn_permute, (void *)perm3, 1, x235, NULL);

    /* flip: each dim alone (both signs), pairs, all, none; then 4-D, 1-D and 0-d */
    static const int fd[][3] = {{0}, {1}, {2}, {-3}, {-2}, {-1}, {0, 2}, {-1, 1}, {2, 0, 1}, {0}};
    static const int fn_n[] = {1, 1, 1, 1, 1, 1, 2, 2, 3, 0};
    for (int i = 0; i < 10; i++) {
        flip_args fa = {fd[i], fn_n[i]};
        CHECK_GRAD(ctx, fn_flip, &fa, 1, x235, NULL);
        check_f32_vs_f64(ctx, fn_flip, &fa, 1, x235, 1e-5, "flip");
    }
    static const int fd4[][4] = {{1, 3}, {-4, -2}, {3, 2, 1, 0}};
    for (int i = 0; i < 3; i++) {
        flip_args fa = {fd4[i], i < 2 ? 2 : 4};
        CHECK_GRAD(ctx, fn_flip, &fa, 1, x2345, NULL);
        check_f32_vs_f64(ctx, fn_flip, &fa, 1, x2345, 1e-5, "flip 4-D");
    }
    static const int d0 = 0, dm1 = -1;
    flip_args first = {&d0, 1}, last = {&dm1, 1};
    heed_gradcheck_input x7[1] = {{HEED_SHAPE(7), NULL, false}}, x0d[1] = {{HEED_SCALAR, NULL, false}};
    CHECK_GRAD(ctx, fn_flip, &last, 1, x7, NULL);
    CHECK_GRAD(ctx, fn_flip, &first, 1, x0d, NULL);
    CHECK_GRAD(ctx, fn_flip, &last, 1, x0d, NULL);

    heed_gradcheck_input x375[1] = {{HEED_SHAPE(3, 7, 5), NULL, false}};
    slice_args sl[4] = {{1, -5, -1}, {-1, 1, 4}, {0, 0, 3}, {1, 6, 6}};
    for (int i = 0; i < 4; i++) {
        if (i < 3) CHECK_GRAD(ctx, fn_slice, &sl[i], 1, x375, NULL);
        check_f32_vs_f64(ctx, fn_slice, &sl[i], 1, x375, 1e-5, "slice");
    }

    /* three inputs along the middle dim, with positive and negative dim */
    heed_gradcheck_input cat3[3] = {{HEED_SHAPE(2, 3, 4), NULL, false},
                                    {HEED_SHAPE(2, 1, 4), NULL, false},
                                    {HEED_SHAPE(2, 5, 4), NULL, false}};
    int ax1 = 1, axm2 = -2;
    CHECK_GRAD(ctx, fn_concat, &ax1, 3, cat3, NULL);
    CHECK_GRAD(ctx, fn_concat, &axm2, 3, cat3, NULL);
    check_f32_vs_f64(ctx, fn_concat, &ax1, 3, cat3, 1e-5, "concat");
    heed_gradcheck_input cat_last[3] = {{HEED_SHAPE(3, 2), NULL, false},
                                        {HEED_SHAPE(3, 5), NULL, false},
                                        {HEED_SHAPE(3, 1), NULL, false}};
    int axm1 = -1, ax0 = 0;
    CHECK_GRAD(ctx, fn_concat, &axm1, 3, cat_last, NULL);
    heed_gradcheck_input self[2] = {{HEED_SHAPE(2, 3), NULL, false}, {HEED_SHAPE(1, 3), NULL, false}};
    CHECK_GRAD(ctx, fn_concat_self, NULL, 2, self, NULL);

    heed_gradcheck_input st3[3] = {{HEED_SHAPE(3, 5), NULL, false},
                                   {HEED_SHAPE(3, 5), NULL, false},
                                   {HEED_SHAPE(3, 5), NULL, false}};
    int ax2 = 2;
    CHECK_GRAD(ctx, fn_stack, &ax1, 3, st3, NULL);
    CHECK_GRAD(ctx, fn_stack, &axm1, 3, st3, NULL);
    CHECK_GRAD(ctx, fn_stack, &ax0, 3, st3, NULL);
    CHECK_GRAD(ctx, fn_stack, &ax2, 3, st3, NULL);
    check_f32_vs_f64(ctx, fn_stack, &ax1, 3, st3, 1e-5, "stack");

    static const int64_t idx[6] = {4, 0, 4, 2, 4, 1};
    heed_gradcheck_input x453[1] = {{HEED_SHAPE(4, 5, 3), NULL, false}};
    static const int64_t idx_last[4] = {2, 0, 2, 2};
    isel_args is[3] = {{1, idx, 6}, {-2, idx, 6}, {-1, idx_last, 4}};
    for (int i = 0; i < 3; i++) {
        CHECK_GRAD(ctx, fn_index_select, &is[i], 1, x453, NULL);
        check_f32_vs_f64(ctx, fn_index_select, &is[i], 1, x453, 1e-5, "index_select");
    }
    isel_args is0 = {0, idx + 1, 4}; /* {0,4,2,4} along dim 0 of [5, 3] */
    heed_gradcheck_input x53[1] = {{HEED_SHAPE(5, 3), NULL, false}};
    CHECK_GRAD(ctx, fn_index_select, &is0, 1, x53, NULL);

    int64_t pads[2] = {3, -1};
    heed_gradcheck_input w75[1] = {{HEED_SHAPE(7, 5), NULL, false}};
    for (int i = 0; i < 2; i++) {
        CHECK_GRAD(ctx, fn_embedding, &pads[i], 1, w75, NULL);
        check_f32_vs_f64(ctx, fn_embedding, &pads[i], 1, w75, 1e-5, "embedding");
    }
}

/* ---------------------------------------------------------------- values */

static void values(void) {
    heed_graph *g = heed_graph_new(ctx);
    double d[120];
    for (int i = 0; i < 120; i++) d[i] = i;
    heed_tensor *x = heed_requires_grad(heed_input_f64(g, HEED_F64, HEED_SHAPE(2, 3, 4, 5), d));

    heed_tensor *r = heed_reshape(g, x, HEED_SHAPE(6, -1));
    CHECK(r && r->data == x->data && r->ndim == 2 && r->shape[1] == 20, "reshape is a view");
    heed_tensor *s0 = heed_reshape(g, heed_slice(g, x, 0, 0, 1), HEED_SHAPE(60));
    CHECK(s0 && s0->numel == 60, "reshape to 1-D");

    int perm[4] = {2, 0, 3, 1};
    heed_tensor *p = heed_permute(g, x, perm);
    CHECK(p && p->shape[0] == 4 && p->shape[1] == 2 && p->shape[2] == 5 && p->shape[3] == 3, "permute shape");
    int bad = 0;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 4; c++)
                for (int e = 0; e < 5; e++) bad += at4(p, c, a, e, b) != at4(x, a, b, c, e);
    CHECK(bad == 0, "permute values");

    heed_tensor *t = heed_transpose(g, x, -1, 1); /* [2,5,4,3] */
    bad = 0;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 4; c++)
                for (int e = 0; e < 5; e++) bad += at4(t, a, e, c, b) != at4(x, a, b, c, e);
    CHECK(bad == 0 && t->shape[1] == 5 && t->shape[3] == 3, "transpose values");

    heed_tensor *sl = heed_slice(g, x, 2, -3, 4); /* [2,3,3,5], third dim from 1 */
    bad = 0;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 3; c++)
                for (int e = 0; e < 5; e++) bad += at4(sl, a, b, c, e) != at4(x, a, b, c + 1, e);
    CHECK(bad == 0 && sl->shape[2] == 3, "slice values");
    heed_tensor *empty = heed_slice(g, x, 1, 2, 2);
    CHECK(empty && empty->shape[1] == 0 && empty->numel == 0, "empty slice");

    heed_tensor *parts[3] = {heed_slice(g, x, 1, 0, 1), heed_slice(g, x, 1, 1, 3), heed_slice(g, x, 1, -3, -2)};
    heed_tensor *cat = heed_concat(g, parts, 3, 1); /* rows 0, 1, 2, 0 */
    bad = 0;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 4; c++)
                for (int e = 0; e < 5; e++) bad += at4(cat, a, b, c, e) != at4(x, a, b % 3, c, e);
    CHECK(bad == 0 && cat->shape[1] == 4, "concat values");

    heed_tensor *three[3] = {heed_slice(g, x, 0, 0, 1), heed_slice(g, x, 0, 1, 2), heed_slice(g, x, 0, 0, 1)};
    heed_tensor *st = heed_stack(g, three, 3, 2); /* 4-D inputs would give a 5-D result */
    CHECK(st == NULL, "5-D stack refused");
    CHECK_ERR(g, HEED_ERR_SHAPE, "more than 4");
    x = heed_input_f64(g, HEED_F64, HEED_SHAPE(2, 3, 4), d);
    heed_tensor *xs[2] = {x, heed_scale(g, x, 2)};
    st = heed_stack(g, xs, 2, -2); /* [2,3,2,4] */
    bad = 0;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 3; b++)
            for (int k = 0; k < 2; k++)
                for (int c = 0; c < 4; c++) bad += at4(st, a, b, k, c) != (k + 1) * at4(x, a, b, c, 0);
    CHECK(bad == 0 && st->shape[2] == 2, "stack values");
    heed_tensor *sc[2] = {heed_scalar(g, HEED_F64, 1), heed_scalar(g, HEED_F64, 2)};
    heed_tensor *v = heed_stack(g, sc, 2, 0);
    CHECK(v && v->ndim == 1 && heed_get(v, 1) == 2, "stack of scalars");

    int64_t idx[5] = {3, 3, 0, 1, 3};
    heed_tensor *xg = heed_requires_grad(heed_input_f64(g, HEED_F64, HEED_SHAPE(2, 4, 3), d));
    heed_tensor *sel = heed_index_select(g, xg, 1, idx, 5);
    bad = 0;
    for (int a = 0; a < 2; a++)
        for (int j = 0; j < 5; j++)
            for (int c = 0; c < 3; c++) bad += at4(sel, a, j, c, 0) != at4(xg, a, idx[j], c, 0);
    CHECK(bad == 0, "index_select values");
    idx[0] = 2; /* the op copied idx: changing it now changes nothing */
    CHECK(heed_backward(g, heed_sum_all(g, sel)) == HEED_OK, "%s", heed_graph_error(g));
    heed_tensor *gx = heed_grad(g, xg);
    CHECK(at4(gx, 1, 3, 2, 0) == 3 && at4(gx, 0, 0, 0, 0) == 1 && at4(gx, 0, 2, 1, 0) == 0, "repeats add up");
    heed_tensor *none = heed_index_select(g, xg, 0, NULL, 0);
    CHECK(none && none->shape[0] == 0, "empty selection");
    heed_graph_free(g);
}

/* Values from PyTorch 1.13 on x = torch.arange(12.).reshape(2, 3, 2):
 *   torch.flip(x, (-1, 0)).flatten().tolist(), torch.flip(x, (1,)).flatten().tolist(), and
 *   the gradient of (torch.flip(x, (1,)) * w).sum() with w = torch.arange(1., 13.).reshape(2, 3, 2);
 * a 0-d x: torch.flip(torch.tensor(3.5), (0,)) and (-1,) give 3.5. */
static void flip_values(void) {
    heed_graph *g = heed_graph_new(ctx);
    double v[12], w[12];
    for (int i = 0; i < 12; i++) v[i] = i, w[i] = i + 1;
    const double last_first[12] = {7, 6, 9, 8, 11, 10, 1, 0, 3, 2, 5, 4};
    const double middle[12] = {4, 5, 2, 3, 0, 1, 10, 11, 8, 9, 6, 7};
    const double grad[12] = {5, 6, 3, 4, 1, 2, 11, 12, 9, 10, 7, 8};
    heed_tensor *x = heed_requires_grad(heed_input(g, HEED_F64, HEED_SHAPE(2, 3, 2), v));
    heed_tensor *a = heed_flip(g, x, (int[]){-1, 0}, 2), *b = heed_flip(g, x, (int[]){1}, 1);
    CHECK(a && b && a->ndim == 3 && a->shape[1] == 3 && a->data != x->data, "%s", heed_graph_error(g));
    for (int i = 0; a && b && i < 12; i++) {
        CHECK(heed_get(a, i) == last_first[i], "flip (-1, 0) [%d] = %g", i, heed_get(a, i));
        CHECK(heed_get(b, i) == middle[i], "flip (1,) [%d] = %g", i, heed_get(b, i));
    }
    heed_tensor *loss = heed_sum_all(g, heed_mul(g, b, heed_input(g, HEED_F64, HEED_SHAPE(2, 3, 2), w)));
    CHECK(heed_backward(g, loss) == HEED_OK, "%s", heed_graph_error(g));
    heed_tensor *gx = heed_grad(g, x);
    for (int i = 0; i < 12; i++)
        CHECK(gx && heed_get(gx, i) == grad[i], "grad [%d] = %g", i, gx ? heed_get(gx, i) : NAN);
    heed_tensor *none = heed_flip(g, x, NULL, 0);
    CHECK(none && none->data != x->data && heed_get(none, 5) == 5, "no dims: a copy");
    heed_tensor *s = heed_scalar(g, HEED_F64, 3.5);
    heed_tensor *s0 = heed_flip(g, s, (int[]){0}, 1), *s1 = heed_flip(g, s, (int[]){-1}, 1);
    CHECK(s0 && s1 && s0->ndim == 0 && heed_get(s0, 0) == 3.5 && heed_get(s1, 0) == 3.5, "0-d flip");
    heed_tensor *e = heed_flip(g, heed_zeros(g, HEED_F32, HEED_SHAPE(3, 0, 2)), (int[]){1, 2}, 2);
    CHECK(e && e->numel == 0 && e->shape[0] == 3, "empty flip");
    heed_graph_free(g);
}

/* A flip large enough for the threaded path, against direct loops: y and dx = flip(dy). */
static void large_flip(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = heed_requires_grad(heed_zeros(g, HEED_F32, HEED_SHAPE(3, 67, 5, 71)));
    for (int64_t i = 0; i < x->numel; i++) ((float *)x->data)[i] = (float)i;
    heed_tensor *y = heed_flip(g, x, (int[]){0, -1, 2}, 3);
    CHECK(y != NULL, "%s", heed_graph_error(g));
    heed_tensor *dy = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 67, 5, 71));
    for (int64_t i = 0; i < dy->numel; i++) ((float *)dy->data)[i] = (float)(7 * i % 1009);
    CHECK(heed_backward_with(g, y, dy) == HEED_OK, "%s", heed_graph_error(g));
    int bad_y = 0, bad_dx = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 67; b++)
            for (int c = 0; c < 5; c++)
                for (int e = 0; e < 71; e++) {
                    bad_y += at4(y, a, b, c, e) != at4(x, 2 - a, b, 4 - c, 70 - e);
                    bad_dx += at4(heed_grad(g, x), a, b, c, e) != at4(dy, 2 - a, b, 4 - c, 70 - e);
                }
    CHECK(bad_y == 0 && bad_dx == 0, "%d wrong in y, %d in dx", bad_y, bad_dx);
    heed_graph_free(g);
}

/* Embedding: padding rows zero, repeated ids add, against direct loops on a size that
 * takes the threaded paths. */
static void embedding_values(void) {
    enum { V = 50, D = 67, B = 13, T = 41 };
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_tensor *w = heed_param(P, "emb", HEED_SHAPE(V, D), heed_init_normal(0, 1));
    heed_graph *g = heed_graph_new(ctx);
    int64_t *ids = malloc(B * T * sizeof *ids);
    heed_rng r = heed_rng_make(9, 0);
    for (int i = 0; i < B * T; i++)
        ids[i] = (int64_t)heed_rng_below(&r, 12) * 4 % V; /* few distinct rows, many repeats */
    const int64_t pad = 8;
    heed_params_zero_grad(P);
    heed_tensor *y = heed_embedding(g, w, ids, HEED_SHAPE(B, T), pad);
    CHECK(y && y->ndim == 3 && y->shape[2] == D, "shape");
    double *dy = malloc(B * T * D * sizeof *dy);
    for (int i = 0; i < B * T * D; i++) dy[i] = heed_rng_uniform(&r) - 0.5;
    CHECK(heed_backward_with(g, y, heed_input_f64(g, HEED_F32, HEED_SHAPE(B, T, D), dy)) == HEED_OK, "%s",
          heed_graph_error(g));
    int bad = 0;
    for (int i = 0; i < B * T; i++)
        for (int k = 0; k < D; k++) bad += heed_get(y, i * D + k) != (ids[i] == pad ? 0 : heed_get(w, ids[i] * D + k));
    CHECK(bad == 0, "forward: %d wrong", bad);
    for (int v = 0; v < V; v++)
        for (int k = 0; k < D; k++) {
            double want = 0;
            for (int i = 0; i < B * T; i++)
                if (ids[i] == v && v != pad) want += (float)dy[i * D + k];
            double got = ((float *)w->grad)[v * D + k];
            if (!check_close(got, want, 1e-5)) bad++;
        }
    CHECK(bad == 0, "backward: %d wrong", bad);
    for (int k = 0; k < D; k++) CHECK(((float *)w->grad)[pad * D + k] == 0, "padding row got a gradient");
    free(ids), free(dy);
    heed_graph_free(g);
    heed_params_free(P);
}

/* Large shape ops (threaded paths) against their f64 definitions. */
static void large_shape_ops(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = heed_requires_grad(heed_zeros(g, HEED_F32, HEED_SHAPE(3, 67, 5, 71)));
    for (int64_t i = 0; i < x->numel; i++) ((float *)x->data)[i] = (float)i;
    int perm[4] = {3, 1, 0, 2};
    heed_tensor *p = heed_permute(g, x, perm);
    heed_tensor *s = heed_slice(g, p, 1, 3, 60);
    enum { NI = 40 };
    int64_t idx[NI];
    for (int j = 0; j < NI; j++) idx[j] = (int64_t)j * j % 71; /* squares mod 71: many repeats */
    heed_tensor *sel = heed_index_select(g, s, 0, idx, NI);
    heed_tensor *parts[3] = {sel, sel, heed_scale(g, sel, 3)};
    heed_tensor *cat = heed_concat(g, parts, 3, 2); /* [NI,57,9,5] */
    CHECK(cat && cat->shape[2] == 9, "%s", heed_graph_error(g));
    CHECK(heed_backward(g, heed_sum_all(g, cat)) == HEED_OK, "%s", heed_graph_error(g));
    int bad = 0;
    for (int j = 0; j < NI; j++)
        for (int b = 0; b < 57; b++)
            for (int c = 0; c < 9; c++)
                for (int e = 0; e < 5; e++) {
                    double want = ((c / 3) == 2 ? 3 : 1) * at4(x, c % 3, b + 3, e, idx[j]);
                    bad += at4(cat, j, b, c, e) != want;
                }
    CHECK(bad == 0, "forward: %d wrong", bad);
    /* d sum / dx = (1 + 1 + 3) * (times its last index is selected), inside the slice */
    bad = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 67; b++)
            for (int c = 0; c < 5; c++)
                for (int e = 0; e < 71; e++) {
                    int times = 0;
                    for (int j = 0; j < NI; j++) times += idx[j] == e;
                    double want = b >= 3 && b < 60 ? 5.0 * times : 0;
                    bad += at4(heed_grad(g, x), a, b, c, e) != want;
                }
    CHECK(bad == 0, "backward: %d wrong", bad);
    heed_graph_free(g);
}

/* ---------------------------------------------------------------- bad input */

static void bad_input(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 4));
    int bad_perm[3] = {0, 2, 0}, far_perm[3] = {0, 1, 3};
    CHECK(heed_permute(g, x, bad_perm) == NULL, "repeated perm");
    CHECK_ERR(g, HEED_ERR_ARG,
              "heed_permute: perm (0,2,0) is not a permutation of the 3 dims of x[2,3,4] (entry 2 is repeated)");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 4));
    CHECK(heed_permute(g, x, far_perm) == NULL, "perm out of range");
    CHECK_ERR(g, HEED_ERR_ARG, "entry 2 is out of range");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 4));
    CHECK(heed_permute(g, x, NULL) == NULL, "NULL perm");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_permute: perm is NULL");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 4));
    CHECK(heed_transpose(g, x, 0, 3) == NULL, "transpose dim");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_transpose: dims (0, 3) out of range for x[2,3,4]");

    /* flip: the duplicate message is PyTorch's ("dim 0 appears multiple times in the list of dims") */
    const int dup[2] = {0, -3}, far[2] = {1, 3}, minus4 = -4, one = 1, both[2] = {0, -1}, three[3] = {0, 1, 0};
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 4));
    CHECK(heed_flip(g, x, dup, 2) == NULL, "flip duplicate");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_flip: dim 0 appears multiple times in the list of dims (dims[1] = -3)");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 4));
    CHECK(heed_flip(g, x, far, 2) == NULL, "flip dim 3");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_flip: dims[1] = 3 is out of range for x[2,3,4] (need -3 <= dim < 3)");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 4));
    CHECK(heed_flip(g, x, &minus4, 1) == NULL, "flip dim -4");
    CHECK_ERR(g, HEED_ERR_ARG, "dims[0] = -4 is out of range");
    x = heed_zeros(g, HEED_F32, HEED_SCALAR);
    CHECK(heed_flip(g, x, &one, 1) == NULL, "flip dim 1 of 0-d");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_flip: dims[0] = 1 is out of range for x[] (need -1 <= dim < 1)");
    x = heed_zeros(g, HEED_F32, HEED_SCALAR);
    CHECK(heed_flip(g, x, both, 2) == NULL, "flip too many for 0-d");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_flip: n_dims is 2 for x[] (need 0 <= n_dims <= 1: each dim at most once)");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    CHECK(heed_flip(g, x, three, 3) == NULL, "flip too many");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_flip: n_dims is 3 for x[2,3] (need 0 <= n_dims <= 2");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    CHECK(heed_flip(g, x, dup, -1) == NULL, "flip n_dims < 0");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_flip: n_dims is -1 for x[2,3]");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    CHECK(heed_flip(g, x, NULL, 1) == NULL, "flip NULL dims");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_flip: dims is NULL but n_dims is 1");
    CHECK(heed_flip(g, NULL, dup, 1) == NULL, "flip NULL x");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_flip: x is NULL");

    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5));
    CHECK(heed_slice(g, x, 1, 2, 6) == NULL, "slice end");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_slice: [2, 6) is out of range for dim 1 of x[2,5] (size 5");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5));
    CHECK(heed_slice(g, x, -1, -6, 2) == NULL, "slice start");
    CHECK_ERR(g, HEED_ERR_ARG, "[-6, 2) is out of range");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5));
    CHECK(heed_slice(g, x, 1, 3, 1) == NULL, "slice start > end");
    CHECK_ERR(g, HEED_ERR_ARG, "[3, 1) is out of range");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 5));
    CHECK(heed_slice(g, x, 2, 0, 1) == NULL, "slice dim");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_slice: dim 2 out of range for x[2,5]");

    heed_tensor *a = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 4)), *b = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 5));
    heed_tensor *ab[2] = {a, b};
    CHECK(heed_concat(g, ab, 2, 1) == NULL, "concat mismatch");
    CHECK_ERR(g, HEED_ERR_SHAPE,
              "heed_concat: xs[1][2,3,5] and xs[0][2,3,4] differ in dim 2 (only the concat dim 1 may differ)");
    a = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3)), b = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3, 1));
    ab[0] = a, ab[1] = b;
    CHECK(heed_concat(g, ab, 2, 0) == NULL, "concat ndim");
    CHECK_ERR(g, HEED_ERR_SHAPE, "different numbers of dims");
    a = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3)), b = heed_zeros(g, HEED_F64, HEED_SHAPE(2, 3));
    ab[0] = a, ab[1] = b;
    CHECK(heed_concat(g, ab, 2, 0) == NULL, "concat dtype");
    CHECK_ERR(g, HEED_ERR_DTYPE, "heed_concat: xs[1] is f64");
    a = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    ab[0] = a, ab[1] = NULL;
    CHECK(heed_concat(g, ab, 2, 0) == NULL, "concat NULL");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_concat: xs[1] is NULL");
    CHECK(heed_concat(g, ab, 0, 0) == NULL, "concat none");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_concat: n < 1");
    a = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    ab[0] = a, ab[1] = a;
    CHECK(heed_concat(g, ab, 2, 2) == NULL, "concat dim");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_concat: dim 2 out of range");
    a = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3)), b = heed_zeros(g, HEED_F32, HEED_SHAPE(3, 2));
    ab[0] = a, ab[1] = b;
    CHECK(heed_stack(g, ab, 2, 0) == NULL, "stack mismatch");
    CHECK_ERR(g, HEED_ERR_SHAPE,
              "heed_stack: xs[1][3,2] and xs[0][2,3] differ (stacked tensors must have equal shapes)");
    a = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    ab[0] = a, ab[1] = a;
    CHECK(heed_stack(g, ab, 2, 3) == NULL, "stack dim");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_stack: dim 3 out of range for a 3-dim result");

    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    CHECK(heed_reshape(g, x, HEED_SHAPE(4, 2)) == NULL, "reshape numel");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_reshape: x[2,3] (6 elements) cannot be viewed as [4,2] (8 elements)");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    CHECK(heed_reshape(g, x, HEED_SHAPE(-1, 2, -1)) == NULL, "two -1");
    CHECK_ERR(g, HEED_ERR_SHAPE, "only one dim may be -1");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    CHECK(heed_reshape(g, x, HEED_SHAPE(4, -1)) == NULL, "-1 does not fit");
    CHECK_ERR(g, HEED_ERR_SHAPE, "no size fits the -1");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3));
    CHECK(heed_reshape(g, x, HEED_SHAPE(INT64_MAX, INT64_MAX, 2)) == NULL, "huge");
    CHECK_ERR(g, HEED_ERR_SHAPE, "cannot be viewed");

    x = heed_zeros(g, HEED_F32, HEED_SHAPE(4, 3));
    int64_t idx[3] = {1, 4, 0};
    CHECK(heed_index_select(g, x, 0, idx, 3) == NULL, "idx range");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_index_select: idx[1] = 4 is out of range [0, 4) for dim 0 of x[4,3]");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(4, 3));
    idx[1] = -1;
    CHECK(heed_index_select(g, x, -1, idx, 3) == NULL, "negative idx");
    CHECK_ERR(g, HEED_ERR_ARG, "idx[1] = -1 is out of range [0, 3)");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(4, 3));
    CHECK(heed_index_select(g, x, 0, NULL, 2) == NULL, "NULL idx");
    CHECK_ERR(g, HEED_ERR_ARG, "idx is NULL");

    heed_tensor *w = heed_zeros(g, HEED_F32, HEED_SHAPE(10, 4));
    int64_t ids[6] = {1, 2, 3, 4, 12, 5};
    CHECK(heed_embedding(g, w, ids, HEED_SHAPE(2, 3), -1) == NULL, "id range");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_embedding: ids[1,1] (flat position 4) = 12 is out of range [0, 10) for w[10,4]");
    w = heed_zeros(g, HEED_F32, HEED_SHAPE(10, 4));
    ids[4] = -3;
    CHECK(heed_embedding(g, w, ids, HEED_SHAPE(6), -1) == NULL, "negative id");
    CHECK_ERR(g, HEED_ERR_ARG, "ids[4] (flat position 4) = -3");
    w = heed_zeros(g, HEED_F32, HEED_SHAPE(10, 4));
    ids[4] = 0;
    CHECK(heed_embedding(g, w, ids, HEED_SHAPE(6), 10) == NULL, "padding_idx range");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_embedding: padding_idx 10 is out of range for w[10,4]");
    w = heed_zeros(g, HEED_F32, HEED_SHAPE(10, 4, 1));
    CHECK(heed_embedding(g, w, ids, HEED_SHAPE(6), -1) == NULL, "3-D w");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_embedding: w[10,4,1] must be 2-D");
    w = heed_zeros(g, HEED_F32, HEED_SHAPE(10, 4));
    CHECK(heed_embedding(g, w, ids, HEED_SHAPE(1, 1, 2, 3), -1) == NULL, "too many dims");
    CHECK_ERR(g, HEED_ERR_SHAPE, "ids have 4 dims");
    w = heed_zeros(g, HEED_F32, HEED_SHAPE(10, 4));
    CHECK(heed_embedding(g, w, NULL, HEED_SHAPE(6), -1) == NULL, "NULL ids");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_embedding: ids is NULL");
    CHECK(heed_embedding(g, NULL, ids, HEED_SHAPE(6), -1) == NULL, "NULL w");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_embedding: w is NULL");
    heed_graph_free(g);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 5});
    RUN(gradchecks);
    RUN(values);
    RUN(flip_values);
    RUN(large_flip);
    RUN(embedding_values);
    RUN(large_shape_ops);
    RUN(bad_input);
    heed_ctx_free(ctx);
    return check_summary();
}
