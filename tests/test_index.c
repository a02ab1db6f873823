/* Indexing ops: select, squeeze / unsqueeze, argmax, topk, gather. Known answers checked
 * by hand against PyTorch 1.13, f64 gradient checks over every dim, f32 against f64
 * (forward and backward), both topk paths against a brute-force ranking, and bad input. */
#include "check.h"
#include "heed/elementwise.h"
#include "heed/index.h"
#include "heed/reduce.h"
#include "check_grad32.h"

static heed_ctx *ctx;

/* ---------------------------------------------------------------- known answers */

static void known_values(void) {
    heed_graph *g = heed_graph_new(ctx);
    double a[6] = {0, 1, 2, 3, 4, 5}; /* torch.arange(6.).view(2, 3) */
    heed_tensor *x = heed_input(g, HEED_F64, HEED_SHAPE(2, 3), a);
    /* torch.select(x, 1, -1) = [2, 5] */
    heed_tensor *s = heed_select(g, x, 1, -1);
    CHECK(s && s->ndim == 1 && s->shape[0] == 2 && heed_get(s, 0) == 2 && heed_get(s, 1) == 5, "select");
    s = heed_select(g, x, 0, 1);
    CHECK(s && s->ndim == 1 && s->shape[0] == 3 && heed_get(s, 0) == 3 && heed_get(s, 2) == 5, "select dim 0");
    /* torch.gather(x, 1, [[2, 0], [1, 1]]) = [[2, 0], [4, 4]] */
    int64_t i1[4] = {2, 0, 1, 1};
    heed_tensor *y = heed_gather(g, x, 1, i1, HEED_SHAPE(2, 2));
    CHECK(y && y->shape[0] == 2 && y->shape[1] == 2 && heed_get(y, 0) == 2 && heed_get(y, 1) == 0 &&
              heed_get(y, 2) == 4 && heed_get(y, 3) == 4,
          "gather dim 1");
    /* torch.gather(arange(12.).view(3, 4), 0, [[2, 0], [1, 1]]) = [[8, 1], [4, 5]] */
    double b[12];
    for (int k = 0; k < 12; k++) b[k] = k;
    heed_tensor *x2 = heed_input(g, HEED_F64, HEED_SHAPE(3, 4), b);
    y = heed_gather(g, x2, 0, i1, HEED_SHAPE(2, 2));
    CHECK(y && heed_get(y, 0) == 8 && heed_get(y, 1) == 1 && heed_get(y, 2) == 4 && heed_get(y, 3) == 5,
          "gather dim 0");
    /* squeeze of a size-3 dim keeps the shape; of a 0-d tensor too; unsqueeze of 0-d is [1] */
    heed_tensor *q = heed_squeeze(g, x, 1);
    CHECK(q && q->ndim == 2 && q->shape[1] == 3, "squeeze of a dim of size 3 is a no-op");
    heed_tensor *u = heed_unsqueeze(g, x, -1);
    CHECK(u && u->ndim == 3 && u->shape[2] == 1 && u->data == x->data, "unsqueeze(-1) is a view [2,3,1]");
    q = heed_squeeze(g, u, 2);
    CHECK(q && q->ndim == 2 && q->shape[0] == 2 && q->shape[1] == 3, "squeeze(2) of [2,3,1]");
    u = heed_unsqueeze(g, x, 0);
    CHECK(u && u->ndim == 3 && u->shape[0] == 1 && u->shape[1] == 2, "unsqueeze(0)");
    heed_tensor *sc = heed_scalar(g, HEED_F64, 5);
    CHECK(heed_squeeze(g, sc, -1) && heed_squeeze(g, sc, 0)->ndim == 0, "squeeze of 0-d");
    u = heed_unsqueeze(g, sc, -1);
    CHECK(u && u->ndim == 1 && u->shape[0] == 1, "unsqueeze of 0-d");
    /* 0-d: gather(x, 0, 0-d index 0) = x; topk(x, 1) = x */
    int64_t zero = 0;
    y = heed_gather(g, sc, 0, &zero, HEED_SCALAR);
    CHECK(y && y->ndim == 0 && heed_get(y, 0) == 5, "gather of 0-d");
    y = heed_topk(g, sc, 1, -1, 0, NULL);
    CHECK(y && y->ndim == 0 && heed_get(y, 0) == 5, "topk of 0-d");
    CHECK(heed_graph_status(g) == HEED_OK, "%s", heed_graph_error(g));
    heed_graph_free(g);
}

static void argmax_and_topk_order(void) {
    heed_graph *g = heed_graph_new(ctx);
    for (int dti = 0; dti < 2; dti++) {
        heed_dtype dt = dti ? HEED_F64 : HEED_F32;
        /* torch.argmax([1, 3, 3, nan, 2, nan]) = 3;
         * torch.topk(.., 3) = values [nan, nan, 3], indices [3, 5, 1];
         * torch.topk(.., 6, largest=False).values = [1, 2, 3, 3, nan, nan] */
        double v[6] = {1, 3, 3, NAN, 2, NAN};
        heed_tensor *x = heed_input_f64(g, dt, HEED_SHAPE(6), v);
        int64_t am = -1, idx[6] = {-1, -1, -1, -1, -1, -1};
        CHECK(heed_argmax(g, x, 0, &am) == HEED_OK && am == 3, "argmax with NaN: %lld", (long long)am);
        heed_tensor *t = heed_topk(g, x, 3, 0, 0, idx);
        CHECK(t && isnan(heed_get(t, 0)) && isnan(heed_get(t, 1)) && heed_get(t, 2) == 3, "topk values with NaN");
        CHECK(idx[0] == 3 && idx[1] == 5 && idx[2] == 1, "topk indices %lld %lld %lld", (long long)idx[0],
              (long long)idx[1], (long long)idx[2]);
        t = heed_topk(g, x, 6, 0, HEED_TOPK_SMALLEST, idx);
        double want[4] = {1, 2, 3, 3};
        for (int k = 0; k < 4; k++) CHECK(t && heed_get(t, k) == want[k], "smallest %d", k);
        CHECK(t && isnan(heed_get(t, 4)) && isnan(heed_get(t, 5)), "NaN ranks last among the smallest");
        CHECK(idx[0] == 0 && idx[1] == 4 && idx[4] == 3 && idx[5] == 5, "smallest indices");
        /* ties: the first maximum (argmax) and rank by position (topk; PyTorch's order of
         * equal values is unspecified); unsorted keeps ascending position */
        double w[6] = {1, 3, 3, 0, 2, 3};
        x = heed_input_f64(g, dt, HEED_SHAPE(6), w);
        CHECK(heed_argmax(g, x, -1, &am) == HEED_OK && am == 1, "first max");
        t = heed_topk(g, x, 4, 0, 0, idx);
        CHECK(t && idx[0] == 1 && idx[1] == 2 && idx[2] == 5 && idx[3] == 4 && heed_get(t, 3) == 2, "tie order");
        t = heed_topk(g, x, 3, 0, HEED_TOPK_SMALLEST | HEED_TOPK_UNSORTED, idx);
        CHECK(t && idx[0] == 0 && idx[1] == 3 && idx[2] == 4 && heed_get(t, 1) == 0, "unsorted: by position");
        /* along dim 0 of [3, 2]: columns [5, 1, 5] and [-inf, -inf, -2] */
        double m[6] = {5, -INFINITY, 1, -INFINITY, 5, -2};
        x = heed_input_f64(g, dt, HEED_SHAPE(3, 2), m);
        int64_t a2[2];
        CHECK(heed_argmax(g, x, 0, a2) == HEED_OK && a2[0] == 0 && a2[1] == 2, "argmax dim 0: %lld %lld",
              (long long)a2[0], (long long)a2[1]);
        double inf2[2] = {-INFINITY, -INFINITY};
        CHECK(heed_argmax(g, heed_input_f64(g, dt, HEED_SHAPE(2), inf2), 0, &am) == HEED_OK && am == 0, "all -inf");
        heed_tensor *sc = heed_scalar(g, dt, 7);
        CHECK(heed_argmax(g, sc, -1, &am) == HEED_OK && am == 0, "0-d");
        t = heed_topk(g, x, 0, 1, 0, NULL);
        CHECK(t && t->shape[0] == 3 && t->shape[1] == 0 && t->numel == 0, "k = 0: empty");
    }
    CHECK(heed_graph_status(g) == HEED_OK, "%s", heed_graph_error(g));
    heed_graph_free(g);
}

/* Both topk paths (a sorted list for k <= 64, a full sort above) against a plain
 * selection: repeatedly take the best remaining position. Values repeat, so ties matter. */
static void topk_against_brute_force(void) {
    heed_graph *g = heed_graph_new(ctx);
    enum { R = 3, N = 100 };
    double v[R * N];
    for (int k = 0; k < R * N; k++) v[k] = (double)((k * 37) % 23) - (k % 7 == 0 ? 0.5 : 0);
    v[17] = NAN, v[150] = NAN, v[151] = NAN;
    heed_tensor *x = heed_input_f64(g, HEED_F64, HEED_SHAPE(R, N), v);
    int64_t ks[3] = {5, 64, 70};
    for (int kk = 0; kk < 3; kk++)
        for (int flags = 0; flags <= (HEED_TOPK_SMALLEST | HEED_TOPK_UNSORTED); flags++) {
            bool largest = !(flags & HEED_TOPK_SMALLEST), sorted = !(flags & HEED_TOPK_UNSORTED);
            int64_t k = ks[kk], idx[R * 70];
            heed_tensor *t = heed_topk(g, x, k, 1, flags, idx);
            CHECK(t != NULL, "%s", heed_graph_error(g));
            if (!t) continue;
            for (int r = 0; r < R; r++) {
                bool taken[N] = {false}, picked[N] = {false};
                int64_t order[70];
                for (int64_t j = 0; j < k; j++) { /* the brute-force ranking */
                    int64_t best = -1;
                    for (int64_t c = 0; c < N; c++) {
                        if (taken[c]) continue;
                        double a = v[r * N + c], bv = best < 0 ? 0 : v[r * N + best];
                        bool better = best < 0;
                        if (!better && (a != a || bv != bv))
                            better = largest ? (a != a && bv == bv) : (a == a && bv != bv);
                        else if (!better) better = largest ? a > bv : a < bv;
                        if (better) best = c;
                    }
                    taken[best] = true, order[j] = best;
                }
                int bad = 0;
                for (int64_t j = 0; j < k; j++) {
                    int64_t got = idx[(int64_t)r * k + j];
                    if (sorted && got != order[j]) bad++;
                    if (got < 0 || got >= N || !taken[got] || picked[got]) bad++;
                    else picked[got] = true;
                    if (!sorted && j > 0 && got <= idx[(int64_t)r * k + j - 1]) bad++;
                    double tv = heed_get(t, (int64_t)r * k + j), xv = v[r * N + (got >= 0 && got < N ? got : 0)];
                    if (!(tv == xv || (tv != tv && xv != xv))) bad++;
                }
                CHECK(bad == 0, "k %lld largest %d sorted %d row %d: %d mismatches", (long long)k, largest, sorted, r,
                      bad);
            }
        }
    heed_graph_free(g);
}

/* ---------------------------------------------------------------- gradients */

typedef struct {
    int op; /* 0 select, 1 squeeze, 2 unsqueeze, 3 gather, 4 topk */
    int dim;
    int64_t index, k;
    int flags; /* topk */
    const int64_t *idx;
    heed_shape idx_shape;
} idx_case;

static heed_tensor *fn_index(heed_graph *g, heed_tensor **in, void *u) {
    const idx_case *c = u;
    switch (c->op) {
    case 0: return heed_select(g, in[0], c->dim, c->index);
    case 1: return heed_squeeze(g, in[0], c->dim);
    case 2: return heed_unsqueeze(g, in[0], c->dim);
    case 3: return heed_gather(g, in[0], c->dim, c->idx, c->idx_shape);
    default: return heed_topk(g, in[0], c->k, c->dim, c->flags, NULL);
    }
}

static void check_case(idx_case c, heed_shape shape, const char *what) {
    heed_gradcheck_input in[1] = {{shape, NULL, false}};
    heed_gradcheck_result r;
    heed_status st = heed_gradcheck(ctx, fn_index, &c, 1, in, NULL, &r);
    CHECK(st == HEED_OK, "%s: gradcheck: %s", what, heed_ctx_error(ctx));
    check_f32_vs_f64_grad(ctx, fn_index, &c, 1, in, 1e-6, what);
}

static void gradients(void) {
    char what[96];
    heed_shape s3 = HEED_SHAPE(3, 4, 5);
    for (int dim = -3; dim < 3; dim++) {
        snprintf(what, sizeof what, "select dim %d", dim);
        check_case((idx_case){.op = 0, .dim = dim, .index = dim < 0 ? -2 : 1}, s3, what);
        snprintf(what, sizeof what, "unsqueeze dim %d", dim);
        check_case((idx_case){.op = 2, .dim = dim}, s3, what);
        for (int largest = 0; largest < 2; largest++) {
            snprintf(what, sizeof what, "topk dim %d largest %d", dim, largest);
            int flags = (largest ? 0 : HEED_TOPK_SMALLEST) | (dim % 2 == 0 ? 0 : HEED_TOPK_UNSORTED);
            check_case((idx_case){.op = 4, .dim = dim, .k = 2, .flags = flags}, s3, what);
        }
    }
    check_case((idx_case){.op = 1, .dim = 1}, HEED_SHAPE(3, 1, 2), "squeeze");
    check_case((idx_case){.op = 4, .dim = 1, .k = 70}, HEED_SHAPE(2, 90), "topk k = 70");
    /* gather with an index smaller than x in the other dims and repeated positions (their
     * gradients add up) */
    int64_t idx[18];
    for (int k = 0; k < 18; k++) idx[k] = (k * 7) % 3;
    for (int dim = 0; dim < 3; dim++) {
        heed_shape is = HEED_SHAPE(2, 3, 2);
        heed_shape xs = HEED_SHAPE(3, 4, 5);
        xs.d[dim] = 3; /* indices are in [0, 3) */
        is.d[dim] = 3;
        snprintf(what, sizeof what, "gather dim %d", dim);
        check_case((idx_case){.op = 3, .dim = dim - 3 * (dim == 2), .idx = idx, .idx_shape = is}, xs, what);
    }
}

static void known_gradients(void) {
    heed_graph *g = heed_graph_new(ctx);
    double v[3] = {1, 2, 3};
    heed_tensor *x = heed_requires_grad(heed_input(g, HEED_F64, HEED_SHAPE(3), v));
    int64_t idx[4] = {2, 2, 0, 2};
    heed_tensor *y = heed_gather(g, x, 0, idx, HEED_SHAPE(4));
    CHECK(heed_backward(g, heed_sum_all(g, y)) == HEED_OK, "%s", heed_graph_error(g));
    heed_tensor *gx = heed_grad(g, x);
    CHECK(gx && heed_get(gx, 0) == 1 && heed_get(gx, 1) == 0 && heed_get(gx, 2) == 3, "dx = [1, 0, 3]");
    /* torch: v, i = topk(x, 2, dim=1); (v * [[1, 2], [3, 4]]).sum().backward() gives
     * v = [[2, 0.5], [4, 1.5]], i = [[2, 3], [0, 2]], x.grad = [[0, 0, 1, 2], [3, 0, 4, 0]] */
    heed_graph_reset(g);
    double t[8] = {0.3, -1, 2, 0.5, 4, 1, 1.5, -2}, wv[4] = {1, 2, 3, 4}, want[8] = {0, 0, 1, 2, 3, 0, 4, 0};
    x = heed_requires_grad(heed_input(g, HEED_F64, HEED_SHAPE(2, 4), t));
    int64_t ti[4];
    y = heed_topk(g, x, 2, 1, 0, ti);
    CHECK(y && heed_get(y, 1) == 0.5 && heed_get(y, 3) == 1.5 && ti[0] == 2 && ti[1] == 3 && ti[2] == 0 && ti[3] == 2,
          "topk");
    CHECK(heed_backward(g, heed_sum_all(g, heed_mul(g, y, heed_input(g, HEED_F64, HEED_SHAPE(2, 2), wv)))) == HEED_OK,
          "%s", heed_graph_error(g));
    gx = heed_grad(g, x);
    for (int k = 0; k < 8; k++) CHECK(gx && heed_get(gx, k) == want[k], "topk dx[%d]", k);
    /* torch: select(arange(24.).view(2, 3, 4), 1, -2) weighted by arange(8.).view(2, 4):
     * x.grad is 0 except x.grad[:, 1, :] = [[0, 1, 2, 3], [4, 5, 6, 7]] */
    heed_graph_reset(g);
    x = heed_requires_grad(heed_zeros(g, HEED_F64, HEED_SHAPE(2, 3, 4)));
    double w8[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    y = heed_select(g, x, 1, -2);
    CHECK(heed_backward(g, heed_sum_all(g, heed_mul(g, y, heed_input(g, HEED_F64, HEED_SHAPE(2, 4), w8)))) == HEED_OK,
          "%s", heed_graph_error(g));
    gx = heed_grad(g, x);
    int bad = 0;
    for (int k = 0; k < 24; k++) {
        int b = k / 12, r = k / 4 % 3, c = k % 4;
        if (!gx || heed_get(gx, k) != (r == 1 ? 4 * b + c : 0)) bad++;
    }
    CHECK(bad == 0, "select dx: %d wrong", bad);
    /* no-grad: nothing on the tape */
    heed_graph_reset(g);
    x = heed_requires_grad(heed_input(g, HEED_F64, HEED_SHAPE(3), v));
    heed_no_grad_begin(g);
    y = heed_topk(g, heed_gather(g, heed_select(g, heed_unsqueeze(g, x, 0), 0, 0), 0, idx, HEED_SHAPE(4)), 2, 0, 0,
                  NULL);
    heed_no_grad_end(g);
    CHECK(y && heed_graph_nodes(g) == 0 && !(y->flags & HEED_REQUIRES_GRAD), "no-grad records nothing");
    heed_graph_free(g);
}

/* ---------------------------------------------------------------- bad input */

static void bad_input(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x;
    int64_t out[8], idx[4] = {0, 1, 2, 3};
#define X2 (x = heed_zeros(g, HEED_F32, HEED_SHAPE(2, 3)))
    CHECK(!heed_select(g, X2, 2, 0), "select dim");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_select: dim 2 out of range for x[2,3] (2 dims)");
    CHECK(!heed_select(g, X2, 1, 3), "select index");
    CHECK_ERR(g, HEED_ERR_ARG,
              "heed_select: index 3 is out of range for dim 1 of x[2,3] (size 3; need -3 <= index < 3)");
    CHECK(!heed_select(g, X2, -1, -4), "select negative index");
    CHECK_ERR(g, HEED_ERR_ARG, "index -4 is out of range");
    CHECK(!heed_select(g, heed_scalar(g, HEED_F32, 1), 0, 0), "select of 0-d");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_select: x is 0-d");
    CHECK(!heed_squeeze(g, X2, -3), "squeeze dim");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_squeeze: dim -3 out of range for x[2,3]");
    CHECK(!heed_unsqueeze(g, X2, 3), "unsqueeze dim");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_unsqueeze: dim 3 out of range for x[2,3] (need -3 <= dim <= 2)");
    CHECK(!heed_unsqueeze(g, heed_zeros(g, HEED_F32, HEED_SHAPE(1, 2, 3, 4)), 0), "5 dims");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_unsqueeze: x[1,2,3,4] has 4 dims already");
    CHECK(heed_argmax(g, X2, 2, out) == HEED_ERR_ARG, "argmax dim");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_argmax: dim 2 out of range for x[2,3]");
    CHECK(heed_argmax(g, X2, 0, NULL) == HEED_ERR_ARG, "argmax out");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_argmax: out is NULL");
    CHECK(heed_argmax(g, heed_zeros(g, HEED_F32, HEED_SHAPE(2, 0)), 1, out) == HEED_ERR_SHAPE, "argmax empty");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_argmax: dim 1 of x[2,0] is empty");
    CHECK(heed_argmax(g, NULL, 0, out) == HEED_ERR_ARG, "argmax NULL");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_argmax: x is NULL");
    CHECK(!heed_topk(g, X2, 4, 1, 0, out), "k > n");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_topk: k = 4 is out of range for dim 1 of x[2,3] (need 0 <= k <= 3)");
    CHECK(!heed_topk(g, X2, -1, 1, 0, out), "k < 0");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_topk: k = -1 is out of range");
    CHECK(!heed_topk(g, X2, 1, -3, 0, out), "topk dim");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_topk: dim -3 out of range for x[2,3]");
    CHECK(!heed_topk(g, X2, 1, 1, -1, out), "topk flags");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_topk: flags = -1 (0 or HEED_TOPK_SMALLEST | HEED_TOPK_UNSORTED)");
    CHECK(!heed_gather(g, X2, 2, idx, HEED_SHAPE(2, 2)), "gather dim");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_gather: dim 2 out of range for x[2,3]");
    CHECK(!heed_gather(g, X2, 1, idx, HEED_SHAPE(2, 2)), "gather index value");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_gather: index[3] = 3 is out of range [0, 3) for dim 1 of x[2,3]");
    CHECK(!heed_gather(g, X2, 1, idx, HEED_SHAPE(4)), "gather ndim");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_gather: index_shape has 1 dims, x[2,3] has 2 (they must be equal)");
    CHECK(!heed_gather(g, X2, 1, idx, HEED_SHAPE(3, 1)), "gather shape");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_gather: index[3,1] does not fit x[2,3] at dim 0");
    CHECK(!heed_gather(g, X2, 0, NULL, HEED_SHAPE(1, 1)), "gather NULL index");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_gather: index is NULL for index_shape [1,1]");
    /* a sticky error: later calls fail at once, argmax returns the earlier code */
    heed_graph_fail(g, HEED_ERR_STATE, "earlier");
    CHECK(heed_argmax(g, X2, 0, out) == HEED_ERR_STATE, "sticky argmax");
    CHECK(!heed_gather(g, x, 0, idx, HEED_SHAPE(1, 1)), "sticky gather");
    CHECK_ERR(g, HEED_ERR_STATE, "earlier");
#undef X2
    heed_graph_free(g);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 11});
    RUN(known_values);
    RUN(argmax_and_topk_order);
    RUN(topk_against_brute_force);
    RUN(gradients);
    RUN(known_gradients);
    RUN(bad_input);
    heed_ctx_free(ctx);
    return check_summary();
}
