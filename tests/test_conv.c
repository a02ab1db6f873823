/* Convolution, pooling and batch normalisation: PyTorch known answers (tests/torch/
 * conv_reference.py), f64 gradient checks over stride, padding, dilation, groups and bias,
 * f32 against f64, images split over threads against one at a time, batch norm's running
 * statistics over three steps, evaluation mode, the cumulative average, a checkpoint round
 * trip and an optimizer that leaves the statistics alone, and bad input. */
#include "check_grad32.h"
#include "heed/batchnorm.h"
#include "heed/checkpoint.h"
#include "heed/conv.h"
#include "heed/elementwise.h"
#include "heed/optim.h"
#include "heed/pool.h"
#include "heed/reduce.h"
#include "conv_torch_ref.h"

#include <unistd.h>

static heed_ctx *ctx;

/* The reference inputs: element k is offset + scale 0.6 sin(1.3 k + salt). */
static double v(int64_t k, double salt) { return 0.6 * sin(1.3 * (double)k + salt); }

static heed_tensor *vin(heed_graph *g, heed_dtype dt, heed_shape s, double salt, double scale, double offset) {
    heed_tensor *t = heed_zeros(g, dt, s);
    for (int64_t k = 0; t && k < t->numel; k++) {
        double x = offset + scale * v(k, salt);
        if (dt == HEED_F32) ((float *)t->data)[k] = (float)x;
        else ((double *)t->data)[k] = x;
    }
    return t;
}

/* t (or its gradient buffer) against n reference values: max error <= tol max(1, max |ref|). */
static void close_to(const char *what, const heed_tensor *t, bool grad, const double *ref, int64_t n, double tol) {
    const void *data = t ? (grad ? t->grad : t->data) : NULL;
    CHECK(data && t->numel == n, "%s: no data or %lld values for %lld", what, t ? (long long)t->numel : -1LL,
          (long long)n);
    if (!data || t->numel != n) return;
    check_norm c = check_norm_start(1);
    for (int64_t i = 0; i < n; i++)
        check_norm_add(&c, t->dtype == HEED_F32 ? ((const float *)data)[i] : ((const double *)data)[i], ref[i]);
    CHECK(check_norm_ok(c, tol), "%s: max error %.3g (scale %.3g, tol %.1g)", what, c.err, c.scale, tol);
}

/* sum(y * v(., 7)): the references' loss. */
static heed_status backward_ref(heed_graph *g, heed_tensor *y) {
    if (!y) return heed_graph_status(g);
    heed_tensor *loss = heed_sum_all(g, heed_mul(g, y, vin(g, y->dtype, heed_tensor_shape(y), 7, 1, 0)));
    return heed_backward(g, loss);
}

/* ---------------------------------------------------------------- conv2d */

typedef struct {
    const char *name;
    heed_shape x, w;
    bool bias;
    heed_conv2d_opts o;
    const double *y, *dx, *dw, *db;
} conv_ref;

static const conv_ref conv_refs[] = {
    {"conv_pad",
     {4, {2, 3, 7, 6}},
     {4, {4, 3, 3, 3}},
     true,
     {.padding = {1, 1}},
     conv_pad_y,
     conv_pad_dx,
     conv_pad_dw,
     conv_pad_db},
    {"conv_groups",
     {4, {2, 4, 9, 8}},
     {4, {6, 2, 3, 2}},
     true,
     {.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}, .groups = 2},
     conv_groups_y,
     conv_groups_dx,
     conv_groups_dw,
     conv_groups_db},
    {"conv_1x1",
     {4, {1, 6, 5, 7}},
     {4, {3, 2, 1, 1}},
     false,
     {.groups = 3},
     conv_1x1_y,
     conv_1x1_dx,
     conv_1x1_dw,
     NULL},
    {"conv_strided",
     {4, {3, 2, 10, 11}},
     {4, {4, 2, 5, 3}},
     false,
     {.stride = {3, 2}, .padding = {2, 1}, .dilation = {2, 1}},
     conv_strided_y,
     conv_strided_dx,
     conv_strided_dw,
     NULL},
};

static void conv_known_answers(void) {
    heed_graph *g = heed_graph_new(ctx);
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < sizeof conv_refs / sizeof *conv_refs; i++) {
            const conv_ref *c = &conv_refs[i];
            heed_dtype dt = d ? HEED_F64 : HEED_F32;
            double tol = d ? 1e-12 : 2e-6;
            heed_graph_reset(g);
            heed_tensor *x = heed_requires_grad(vin(g, dt, c->x, 1, 1, 0)),
                        *w = heed_requires_grad(vin(g, dt, c->w, 2, 1, 0));
            heed_tensor *b = c->bias ? heed_requires_grad(vin(g, dt, HEED_SHAPE(c->w.d[0]), 3, 1, 0)) : NULL;
            heed_tensor *y = heed_conv2d(g, x, w, b, &c->o);
            CHECK(backward_ref(g, y) == HEED_OK, "%s: %s", c->name, heed_graph_error(g));
            if (!y) continue;
            close_to(c->name, y, false, c->y, y->numel, tol);
            close_to(c->name, x, true, c->dx, x->numel, tol);
            close_to(c->name, w, true, c->dw, w->numel, tol);
            if (b) close_to(c->name, b, true, c->db, b->numel, tol);
        }
    heed_graph_free(g);
}

typedef struct {
    heed_conv2d_opts o;
    bool bias;
} conv_case;

static heed_tensor *fn_conv(heed_graph *g, heed_tensor **in, void *u) {
    const conv_case *c = u;
    return heed_conv2d(g, in[0], in[1], c->bias ? in[2] : NULL, &c->o);
}

/* Every combination of stride, padding, dilation, groups and bias on odd sizes. */
static void conv_gradients(void) {
    int count = 0;
    for (int s = 1; s <= 2; s++)
        for (int p = 0; p <= 2; p++)
            for (int d = 1; d <= 2; d++)
                for (int G = 1; G <= 2; G++)
                    for (int b = 0; b <= 1; b++) {
                        conv_case c = {.o = {.stride = {s, s == 2 ? 1 : 2},
                                             .padding = {p, p ? p - 1 : 1},
                                             .dilation = {d, 1},
                                             .groups = G},
                                       .bias = b};
                        int64_t O = 2 * G, Cg = G == 1 ? 3 : 1;
                        heed_gradcheck_input in[3] = {{.shape = HEED_SHAPE(2, Cg * G, 7, 5)},
                                                      {.shape = HEED_SHAPE(O, Cg, 3, 2)},
                                                      {.shape = HEED_SHAPE(O)}};
                        heed_gradcheck_result r;
                        heed_status st = heed_gradcheck(ctx, fn_conv, &c, b ? 3 : 2, in, NULL, &r);
                        CHECK(st == HEED_OK, "conv s=%d p=%d d=%d G=%d bias=%d: %s", s, p, d, G, b,
                              heed_ctx_error(ctx));
                        count++;
                    }
    CHECK(count == 48, "%d cases", count);
    /* 1x1 (no im2col), a kernel as large as the padded input, a 1-pixel image, no bias */
    conv_case one = {.o = {.groups = 2}}, full = {.o = {.padding = {1, 0}}},
              tiny = {.o = {.padding = {1, 1}}, .bias = true};
    heed_gradcheck_input a[2] = {{.shape = HEED_SHAPE(3, 4, 3, 5)}, {.shape = HEED_SHAPE(6, 2, 1, 1)}};
    CHECK_GRAD(ctx, fn_conv, &one, 2, a, NULL);
    heed_gradcheck_input f[2] = {{.shape = HEED_SHAPE(2, 2, 3, 4)}, {.shape = HEED_SHAPE(3, 2, 5, 4)}};
    CHECK_GRAD(ctx, fn_conv, &full, 2, f, NULL);
    heed_gradcheck_input t[3] = {{.shape = HEED_SHAPE(1, 1, 1, 1)},
                                 {.shape = HEED_SHAPE(2, 1, 3, 3)},
                                 {.shape = HEED_SHAPE(2)}};
    CHECK_GRAD(ctx, fn_conv, &tiny, 3, t, NULL);
    /* images split over threads (N >= threads, enough work), gradient of w checked on a sample */
    conv_case big = {.o = {.padding = {1, 1}, .stride = {1, 2}}, .bias = true};
    heed_gradcheck_input bi[3] = {{.shape = HEED_SHAPE(4, 3, 17, 15)},
                                  {.shape = HEED_SHAPE(8, 3, 3, 3)},
                                  {.shape = HEED_SHAPE(8)}};
    heed_gradcheck_opts sample = {.max_per_tensor = 60};
    CHECK_GRAD(ctx, fn_conv, &big, 3, bi, &sample);
}

/* x, the bias and the 3x3 kernel each used twice: gradients add up, on the direct path (1x1,
 * recorded first so that its backward runs last) and the im2col path, with images one at a
 * time and over threads. */
static heed_tensor *fn_conv_twice(heed_graph *g, heed_tensor **in, void *u) {
    int64_t G = (int64_t)(intptr_t)u;
    heed_tensor *a = heed_conv2d(g, in[0], in[1], in[3], NULL);
    heed_tensor *b = heed_conv2d(g, in[0], in[2], in[3], &(heed_conv2d_opts){.padding = {1, 1}, .groups = G});
    heed_tensor *c =
        heed_conv2d(g, in[0], in[2], NULL, &(heed_conv2d_opts){.padding = {2, 2}, .dilation = {2, 2}, .groups = G});
    return heed_add(g, heed_add(g, a, b), c);
}

static void conv_gradients_add_up(void) {
    heed_gradcheck_input small[4] = {{.shape = HEED_SHAPE(2, 4, 5, 6)},
                                     {.shape = HEED_SHAPE(6, 4, 1, 1)},
                                     {.shape = HEED_SHAPE(6, 2, 3, 3)},
                                     {.shape = HEED_SHAPE(6)}};
    CHECK_GRAD(ctx, fn_conv_twice, (void *)2, 4, small, NULL);
    heed_gradcheck_input big[4] = {{.shape = HEED_SHAPE(4, 4, 15, 16)},
                                   {.shape = HEED_SHAPE(8, 4, 1, 1)},
                                   {.shape = HEED_SHAPE(8, 4, 3, 3)},
                                   {.shape = HEED_SHAPE(8)}};
    heed_gradcheck_opts sample = {.max_per_tensor = 50};
    CHECK_GRAD(ctx, fn_conv_twice, (void *)1, 4, big, &sample);
}

static void conv_f32_vs_f64(void) {
    const conv_case cases[] = {
        {.o = {.padding = {1, 1}}, .bias = true},
        {.o = {.stride = {2, 2}, .padding = {2, 1}, .dilation = {2, 1}, .groups = 2}, .bias = true},
        {.o = {.groups = 4}},
    };
    const heed_shape ws[] = {{4, {16, 4, 3, 3}}, {4, {8, 2, 5, 3}}, {4, {8, 1, 1, 1}}};
    for (int i = 0; i < 3; i++)
        for (int64_t n = 1; n <= 4; n += 3) { /* one image (threaded GEMMs), four (images over threads) */
            heed_gradcheck_input in[3] = {{.shape = HEED_SHAPE(n, 4, 23, 19)},
                                          {.shape = ws[i]},
                                          {.shape = HEED_SHAPE(ws[i].d[0])}};
            check_f32_vs_f64_grad(ctx, fn_conv, (void *)&cases[i], cases[i].bias ? 3 : 2, in, 1e-5, "conv2d");
        }
}

/* A batch split over threads gives what the images give one at a time (serial path). */
static void conv_batch_matches_single_images(void) {
    heed_graph *g = heed_graph_new(ctx), *g1 = heed_graph_new(ctx);
    heed_conv2d_opts o = {.padding = {1, 1}, .dilation = {1, 2}};
    enum { N = 5, C = 3, H = 20, W = 18, O = 7 };
    heed_tensor *x = heed_requires_grad(vin(g, HEED_F64, HEED_SHAPE(N, C, H, W), 1, 1, 0));
    heed_tensor *w = heed_requires_grad(vin(g, HEED_F64, HEED_SHAPE(O, C, 3, 3), 2, 1, 0));
    heed_tensor *b = heed_requires_grad(vin(g, HEED_F64, HEED_SHAPE(O), 3, 1, 0));
    heed_tensor *y = heed_conv2d(g, x, w, b, &o);
    CHECK(backward_ref(g, y) == HEED_OK, "%s", heed_graph_error(g));
    double *dw = calloc((size_t)heed_grad(g, w)->numel, sizeof *dw), *db = calloc(O, sizeof *db);
    for (int64_t n = 0; y && n < N; n++) {
        heed_graph_reset(g1);
        heed_tensor *xn =
            heed_requires_grad(heed_input(g1, HEED_F64, HEED_SHAPE(1, C, H, W), (double *)x->data + n * C * H * W));
        heed_tensor *wn = heed_requires_grad(heed_input(g1, HEED_F64, HEED_SHAPE(O, C, 3, 3), w->data));
        heed_tensor *bn = heed_requires_grad(heed_input(g1, HEED_F64, HEED_SHAPE(O), b->data));
        heed_tensor *yn = heed_conv2d(g1, xn, wn, bn, &o);
        heed_tensor *seed = heed_zeros(g1, HEED_F64, heed_tensor_shape(yn));
        int64_t m = yn ? yn->numel : 0;
        for (int64_t k = 0; seed && k < m; k++) ((double *)seed->data)[k] = v(n * m + k, 7);
        CHECK(heed_backward_with(g1, yn, seed) == HEED_OK, "%s", heed_graph_error(g1));
        if (heed_graph_status(g1) != HEED_OK) break;
        double ey = 0, ex = 0;
        for (int64_t k = 0; k < m; k++) ey = fmax(ey, check_err(heed_get(yn, k), heed_get(y, n * m + k)));
        for (int64_t k = 0; k < xn->numel; k++)
            ex = fmax(ex, check_err(((double *)xn->grad)[k], ((double *)x->grad)[n * xn->numel + k]));
        CHECK(ey <= 1e-13 && ex <= 1e-13, "image %lld: y error %g, dx error %g", (long long)n, ey, ex);
        for (int64_t k = 0; k < wn->numel; k++) dw[k] += ((double *)wn->grad)[k];
        for (int k = 0; k < O; k++) db[k] += ((double *)bn->grad)[k];
    }
    close_to("dw summed over images", w, true, dw, w->numel, 1e-13);
    close_to("dbias summed over images", b, true, db, O, 1e-13);
    free(dw), free(db);
    heed_graph_free(g), heed_graph_free(g1);
}

static void conv_bad_input(void) {
    heed_graph *g = heed_graph_new(ctx);
#define X(...) heed_zeros(g, HEED_F32, HEED_SHAPE(__VA_ARGS__))
    CHECK(!heed_conv2d(g, X(1, 4, 5, 5), X(8, 3, 3, 3), NULL, NULL), "wrong channels");
    CHECK_ERR(g, HEED_ERR_SHAPE,
              "heed_conv2d: w[8,3,3,3] has 3 input channels per group; x[1,4,5,5] with groups = 1 needs 4");
    CHECK(!heed_conv2d(g, X(1, 4, 5, 5), X(6, 2, 3, 3), NULL, &(heed_conv2d_opts){.groups = 3}), "groups vs C");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_conv2d: groups = 3 does not divide the 4 input channels of x[1,4,5,5]");
    CHECK(!heed_conv2d(g, X(1, 4, 5, 5), X(6, 2, 3, 3), NULL, &(heed_conv2d_opts){.groups = 4}), "groups vs O");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_conv2d: groups = 4 does not divide the 6 output channels of w[6,2,3,3]");
    CHECK(!heed_conv2d(g, X(1, 1, 3, 3), X(1, 1, 5, 5), NULL, NULL), "kernel too large");
    CHECK_ERR(
        g, HEED_ERR_SHAPE,
        "heed_conv2d: the kernel 5x5 (dilated to 5x5) is larger than the padded input 3x3 (x[1,1,3,3], padding (0, 0))");
    CHECK(!heed_conv2d(g, X(1, 1, 5, 5), X(1, 1, 3, 3), NULL, &(heed_conv2d_opts){.dilation = {3, 1}}),
          "dilated too large");
    CHECK_ERR(g, HEED_ERR_SHAPE, "the kernel 3x3 (dilated to 7x3) is larger than the padded input 5x5");
    /* zero means the default (stride 1); a negative stride is the error */
    heed_tensor *y = heed_conv2d(g, X(1, 1, 3, 3), X(1, 1, 2, 2), NULL, &(heed_conv2d_opts){.stride = {0, 0}});
    CHECK(y && y->shape[2] == 2 && y->shape[3] == 2, "stride 0 means 1: %s", heed_graph_error(g));
    CHECK(!heed_conv2d(g, X(1, 1, 3, 3), X(1, 1, 2, 2), NULL, &(heed_conv2d_opts){.stride = {1, -2}}),
          "negative stride");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_conv2d: stride = (1, -2) (each must be in 0..2^31-1; 0 means 1)");
    CHECK(!heed_conv2d(g, X(1, 1, 3, 3), X(1, 1, 2, 2), NULL, &(heed_conv2d_opts){.padding = {-1, 0}}),
          "negative padding");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_conv2d: padding = (-1, 0) (each must be in 0..2^31-1)");
    CHECK(!heed_conv2d(g, X(1, 1, 3, 3), X(1, 1, 2, 2), NULL, &(heed_conv2d_opts){.dilation = {1LL << 31, 1}}),
          "huge dilation");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_conv2d: dilation = (2147483648, 1)");
    CHECK(!heed_conv2d(g, X(1, 1, 3, 3), X(1, 1, 2, 2), NULL, &(heed_conv2d_opts){.groups = -1}), "negative groups");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_conv2d: groups = -1 (must be >= 1; 0 means 1)");
    CHECK(!heed_conv2d(g, X(3, 3, 3), X(1, 3, 2, 2), NULL, NULL), "3-D x");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_conv2d: x[3,3,3] must be [N, C, H, W] (4 dims)");
    CHECK(!heed_conv2d(g, X(1, 3, 3, 3), X(3, 2, 2), NULL, NULL), "3-D w");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_conv2d: w[3,2,2] must be [out_channels, in_channels/groups, kh, kw]");
    CHECK(!heed_conv2d(g, X(1, 3, 3, 3), X(2, 3, 2, 2), X(3), NULL), "bias size");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_conv2d: bias[3] must be [2] (the output channels of w[2,3,2,2])");
    CHECK(!heed_conv2d(g, X(1, 3, 3, 3), heed_zeros(g, HEED_F64, HEED_SHAPE(2, 3, 2, 2)), NULL, NULL), "dtype");
    CHECK_ERR(g, HEED_ERR_DTYPE, "heed_conv2d: w is f64 but the other operand is f32");
    CHECK(!heed_conv2d(g, X(1, 3, 3, 3), NULL, NULL, NULL), "NULL w");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_conv2d: w is NULL");
    CHECK(!heed_conv2d(g, X(1, 3, 3, 3), X(2, 3, 0, 2), NULL, NULL), "empty kernel");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_conv2d: w[2,3,0,2]: the kernel must be at least 1x1");
    /* empty batch and no input channels are not errors: y is empty, or the bias */
    y = heed_conv2d(g, X(0, 3, 4, 4), X(2, 3, 3, 3), NULL, NULL);
    CHECK(y && y->numel == 0 && y->shape[1] == 2, "empty batch: %s", heed_graph_error(g));
    heed_tensor *b = heed_full(g, HEED_F32, HEED_SHAPE(2), 1.5);
    y = heed_conv2d(g, X(2, 0, 4, 4), X(2, 0, 3, 3), b, NULL);
    CHECK(y && y->numel == 16 && heed_get(y, 15) == 1.5, "no input channels: %s", heed_graph_error(g));
#undef X
    heed_graph_free(g);
}

/* ---------------------------------------------------------------- pooling */

typedef struct {
    int kind; /* 0 max, 1 avg, 2 adaptive */
    heed_pool2d_opts o;
    int64_t oh, ow;
} pool_case;

static heed_tensor *fn_pool(heed_graph *g, heed_tensor **in, void *u) {
    const pool_case *c = u;
    if (c->kind == 0) return heed_max_pool2d(g, in[0], &c->o);
    if (c->kind == 1) return heed_avg_pool2d(g, in[0], &c->o);
    return heed_adaptive_avg_pool2d(g, in[0], c->oh, c->ow);
}

static void pool_known_answers(void) {
    const struct {
        const char *name;
        pool_case c;
        heed_shape x;
        const double *y, *dx;
    } refs[] = {
        {"max_pool",
         {0, {.kernel = {3, 2}, .stride = {2, 2}, .padding = {1, 1}}},
         {4, {2, 3, 7, 6}},
         max_pool_y,
         max_pool_dx},
        {"avg_pool",
         {1, {.kernel = {3, 3}, .stride = {2, 1}, .padding = {1, 1}}},
         {4, {2, 3, 7, 6}},
         avg_pool_y,
         avg_pool_dx},
        {"avg_pool_exclude",
         {1, {.kernel = {3, 3}, .stride = {2, 1}, .padding = {1, 1}, .exclude_padding = true}},
         {4, {2, 3, 7, 6}},
         avg_pool_exclude_y,
         avg_pool_exclude_dx},
        {"adaptive_down", {2, .oh = 3, .ow = 2}, {4, {2, 2, 7, 5}}, adaptive_down_y, adaptive_down_dx},
        {"adaptive_up", {2, .oh = 5, .ow = 6}, {4, {1, 2, 3, 4}}, adaptive_up_y, adaptive_up_dx},
    };
    heed_graph *g = heed_graph_new(ctx);
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < sizeof refs / sizeof *refs; i++) {
            heed_dtype dt = d ? HEED_F64 : HEED_F32;
            double tol = d ? 1e-13 : 1e-6;
            heed_graph_reset(g);
            heed_tensor *x = heed_requires_grad(vin(g, dt, refs[i].x, 1, 1, 0));
            heed_tensor *y = fn_pool(g, &x, (void *)&refs[i].c);
            CHECK(backward_ref(g, y) == HEED_OK, "%s: %s", refs[i].name, heed_graph_error(g));
            if (!y) continue;
            close_to(refs[i].name, y, false, refs[i].y, y->numel, tol);
            close_to(refs[i].name, x, true, refs[i].dx, x->numel, tol);
        }
    heed_graph_free(g);
}

static void pool_gradients(void) {
    const pool_case cases[] = {
        {0, {.kernel = {2, 2}}},
        {0, {.kernel = {3, 3}, .stride = {1, 2}, .padding = {1, 1}}},
        {0, {.kernel = {3, 1}, .stride = {2, 1}, .padding = {1, 0}}},
        {1, {.kernel = {2, 2}}},
        {1, {.kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 1}}},
        {1, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .exclude_padding = true}},
        {2, .oh = 3, .ow = 2},
        {2, .oh = 1, .ow = 1},
        {2, .oh = 9, .ow = 4}, /* more rows out than in */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        heed_gradcheck_input in4 = {.shape = HEED_SHAPE(2, 3, 7, 5)}, in3 = {.shape = HEED_SHAPE(2, 6, 5)};
        CHECK_GRAD(ctx, fn_pool, (void *)&cases[i], 1, &in4, NULL);
        CHECK_GRAD(ctx, fn_pool, (void *)&cases[i], 1, &in3, NULL);
        heed_gradcheck_input big = {.shape = HEED_SHAPE(4, 16, 33, 31)}; /* planes over threads */
        check_f32_vs_f64_grad(ctx, fn_pool, (void *)&cases[i], 1, &big, 1e-5, "pool");
    }
}

static void pool_max_nan_and_ties(void) {
    heed_graph *g = heed_graph_new(ctx);
    double xv[8] = {1, NAN, 3, 0, 2, 2, -INFINITY, -INFINITY};
    heed_tensor *x = heed_requires_grad(heed_input_f64(g, HEED_F64, HEED_SHAPE(1, 1, 2, 4), xv));
    heed_tensor *y = heed_max_pool2d(g, x, &(heed_pool2d_opts){.kernel = {1, 2}});
    CHECK(y && isnan(heed_get(y, 0)) && heed_get(y, 1) == 3 && heed_get(y, 2) == 2 && heed_get(y, 3) == -INFINITY,
          "max with NaN, ties, -inf: %s", heed_graph_error(g));
    CHECK(heed_backward_with(g, y, heed_full(g, HEED_F64, HEED_SHAPE(1, 1, 2, 2), 1)) == HEED_OK, "%s",
          heed_graph_error(g));
    const double want[8] = {0, 1, 1, 0, 1, 0, 1, 0}; /* the NaN; the first of tied maxima */
    close_to("max pool gradient", x, true, want, 8, 0);
    heed_graph_free(g);
}

static void pool_bad_input(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = heed_zeros(g, HEED_F32, HEED_SHAPE(1, 2, 4, 4));
    CHECK(!heed_max_pool2d(g, x, &(heed_pool2d_opts){.kernel = {3, 3}, .padding = {2, 0}}), "padding > k/2");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_max_pool2d: padding = (2, 0) with kernel (3, 3) (each must be in 0..kernel/2)");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(1, 2, 2, 2));
    CHECK(!heed_avg_pool2d(g, x, &(heed_pool2d_opts){.kernel = {3, 3}}), "kernel too large");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_avg_pool2d: the kernel 3x3 is larger than the padded input 2x2 (x[1,2,2,2])");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(1, 2, 2, 2));
    CHECK(!heed_max_pool2d(g, x, &(heed_pool2d_opts){.kernel = {0, 2}}), "zero kernel");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_max_pool2d: kernel = (0, 2) (each must be in 1..2^31-1)");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(1, 2, 2, 2));
    CHECK(!heed_max_pool2d(g, x, &(heed_pool2d_opts){.kernel = {2, 2}, .stride = {-1, 1}}), "negative stride");
    CHECK_ERR(g, HEED_ERR_ARG,
              "heed_max_pool2d: stride = (-1, 1) (each must be in 0..2^31-1; 0 means the kernel size)");
    x = heed_zeros(g, HEED_F32, HEED_SHAPE(1, 2, 2, 2));
    CHECK(!heed_avg_pool2d(g, x, NULL), "NULL opts");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_avg_pool2d: opts is NULL (the kernel size has no default)");
    CHECK(!heed_max_pool2d(g, heed_zeros(g, HEED_F32, HEED_SHAPE(4, 4)), &(heed_pool2d_opts){.kernel = {2, 2}}), "2-D");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_max_pool2d: x[4,4] must be [N, C, H, W] or [C, H, W]");
    CHECK(!heed_adaptive_avg_pool2d(g, heed_zeros(g, HEED_F32, HEED_SHAPE(1, 2, 0, 3)), 2, 2), "empty plane");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_adaptive_avg_pool2d: x[1,2,0,3] has an empty plane (H and W must be >= 1)");
    CHECK(!heed_adaptive_avg_pool2d(g, heed_zeros(g, HEED_F32, HEED_SHAPE(1, 2, 3, 3)), 0, 2), "zero output");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_adaptive_avg_pool2d: output size 0x2 (each must be in 1..2^31-1)");
    /* the default stride is the kernel */
    heed_tensor *y =
        heed_max_pool2d(g, heed_zeros(g, HEED_F32, HEED_SHAPE(3, 7, 9)), &(heed_pool2d_opts){.kernel = {2, 3}});
    CHECK(y && y->ndim == 3 && y->shape[0] == 3 && y->shape[1] == 3 && y->shape[2] == 3, "default stride: %s",
          heed_graph_error(g));
    heed_graph_free(g);
}

/* ---------------------------------------------------------------- batch norm */

/* which: bit 0 weight, bit 1 bias, bit 2 evaluation mode with running statistics. */
static heed_tensor *fn_bn(heed_graph *g, heed_tensor **in, void *u) {
    int which = (int)(intptr_t)u, k = 1;
    heed_tensor *w = which & 1 ? in[k++] : NULL, *b = which & 2 ? in[k++] : NULL;
    heed_batchnorm_opts o = {0};
    int64_t C = in[0]->shape[1];
    o.running_mean = vin(g, in[0]->dtype, HEED_SHAPE(C), 4, 0.5, 0);
    o.running_var = vin(g, in[0]->dtype, HEED_SHAPE(C), 5, 0.5, 1);
    heed_graph_set_training(g, !(which & 4));
    heed_tensor *y = heed_batch_norm2d(g, in[0], w, b, &o);
    heed_graph_set_training(g, true);
    return y;
}

static void bn_gradients(void) {
    for (int which = 0; which < 8; which++) {
        heed_gradcheck_input in[3] = {{.shape = HEED_SHAPE(3, 4, 3, 5)},
                                      {.shape = HEED_SHAPE(4)},
                                      {.shape = HEED_SHAPE(4)}};
        CHECK_GRAD(ctx, fn_bn, (void *)(intptr_t)which, 1 + (which & 1) + (which >> 1 & 1), in, NULL);
        heed_gradcheck_input big[3] = {{.shape = HEED_SHAPE(8, 6, 37, 41)},
                                       {.shape = HEED_SHAPE(6)},
                                       {.shape = HEED_SHAPE(6)}};
        check_f32_vs_f64_grad(ctx, fn_bn, (void *)(intptr_t)which, 1 + (which & 1) + (which >> 1 & 1), big, 1e-5,
                              "batchnorm");
    }
    /* two values per channel (the least training accepts), a channel far from zero */
    double two[2 * 3] = {1, 2, 1000, 1000.5, -3, 7};
    heed_gradcheck_input in[3] = {{.shape = HEED_SHAPE(2, 3, 1, 1), .data = two},
                                  {.shape = HEED_SHAPE(3)},
                                  {.shape = HEED_SHAPE(3)}};
    CHECK_GRAD(ctx, fn_bn, (void *)3, 3, in, NULL);
}

/* The layer in f64 through PyTorch's three training steps and an evaluation step. */
static void bn_against_pytorch(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_batchnorm bn, cum;
    CHECK(heed_batchnorm_declare(&bn, P, "bn", &(heed_batchnorm_config){.num_features = 3}) == HEED_OK, "%s",
          heed_ctx_error(ctx));
    CHECK(heed_batchnorm_declare(&cum, P, "cum", &(heed_batchnorm_config){.num_features = 3, .cumulative = true}) ==
              HEED_OK,
          "%s", heed_ctx_error(ctx));
    for (int c = 0; c < 3; c++) ((double *)bn.weight->data)[c] = 1 + v(c, 2), ((double *)bn.bias->data)[c] = v(c, 3);
    const double *ref[4][4] = {{bn_step0_y, bn_step0_dx, bn_step0_dweight, bn_step0_dbias},
                               {bn_step1_y, bn_step1_dx, bn_step1_dweight, bn_step1_dbias},
                               {bn_step2_y, bn_step2_dx, bn_step2_dweight, bn_step2_dbias},
                               {bn_eval_y, bn_eval_dx, bn_eval_dweight, bn_eval_dbias}};
    const double *running[3][4] =
        {{bn_step0_running_mean, bn_step0_running_var, bn_cumulative0_running_mean, bn_cumulative0_running_var},
         {bn_step1_running_mean, bn_step1_running_var, bn_cumulative1_running_mean, bn_cumulative1_running_var},
         {bn_step2_running_mean, bn_step2_running_var, bn_cumulative2_running_mean, bn_cumulative2_running_var}};
    heed_graph *g = heed_graph_new(ctx);
    double kept[6] = {0};
    for (int s = 0; s < 4; s++) {
        heed_graph_reset(g);
        heed_params_zero_grad(P);
        heed_graph_set_training(g, s < 3);
        heed_tensor *x = heed_requires_grad(vin(g, HEED_F64, HEED_SHAPE(4, 3, 5, 2), 10 + s, 2, 0.5 * s));
        heed_tensor *y = heed_batchnorm_forward(g, &bn, x);
        CHECK(backward_ref(g, y) == HEED_OK, "step %d: %s", s, heed_graph_error(g));
        if (s < 3) CHECK(heed_batchnorm_forward(g, &cum, x) != NULL, "%s", heed_graph_error(g));
        close_to("bn y", y, false, ref[s][0], 120, 1e-12);
        close_to("bn dx", x, true, ref[s][1], 120, 1e-12);
        close_to("bn dweight", bn.weight, true, ref[s][2], 3, 1e-12);
        close_to("bn dbias", bn.bias, true, ref[s][3], 3, 1e-12);
        if (s == 3) break;
        for (int c = 0; c < 3; c++)
            kept[c] = heed_get(bn.opts.running_mean, c), kept[3 + c] = heed_get(bn.opts.running_var, c);
        close_to("running_mean", bn.opts.running_mean, false, running[s][0], 3, 1e-14);
        close_to("running_var", bn.opts.running_var, false, running[s][1], 3, 1e-14);
        close_to("cumulative running_mean", cum.opts.running_mean, false, running[s][2], 3, 1e-14);
        close_to("cumulative running_var", cum.opts.running_var, false, running[s][3], 3, 1e-14);
        CHECK(heed_get(bn.opts.num_batches_tracked, 0) == s + 1, "num_batches_tracked %g",
              heed_get(bn.opts.num_batches_tracked, 0));
    }
    /* evaluation changes nothing; the buffers never take gradients */
    CHECK(heed_get(bn.opts.num_batches_tracked, 0) == 3, "eval moved the counter");
    for (int c = 0; c < 3; c++)
        CHECK(heed_get(bn.opts.running_mean, c) == kept[c] && heed_get(bn.opts.running_var, c) == kept[3 + c],
              "eval moved the statistics of channel %d", c);
    CHECK(!(bn.opts.running_mean->flags & HEED_REQUIRES_GRAD), "running_mean is not frozen");
    heed_graph_free(g);
    heed_params_free(P);
}

/* Optimizers skip the buffers (even with weight decay); checkpoints keep them. */
static void bn_store_and_checkpoint(void) {
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_batchnorm bn;
    CHECK(heed_batchnorm_declare(&bn, P, "enc.bn1", &(heed_batchnorm_config){.num_features = 5, .momentum = 0.3}) ==
              HEED_OK,
          "%s", heed_ctx_error(ctx));
    const char *names[] = {"enc.bn1.weight", "enc.bn1.bias", "enc.bn1.running_mean", "enc.bn1.running_var",
                           "enc.bn1.num_batches_tracked"};
    CHECK(heed_params_count(P) == 5, "%d parameters", heed_params_count(P));
    for (int i = 0; i < 5; i++) CHECK(heed_params_find(P, names[i]) != NULL, "no %s", names[i]);
    CHECK(bn.opts.num_batches_tracked && bn.opts.num_batches_tracked->ndim == 0, "the counter is a scalar");
    heed_optimizer *opt = heed_sgd(P, &(heed_sgd_opts){.lr = 0.5, .weight_decay = 0.1});
    heed_graph *g = heed_graph_new(ctx);
    for (int s = 0; s < 3; s++) {
        heed_graph_reset(g);
        heed_params_zero_grad(P);
        heed_tensor *y = heed_batchnorm_forward(g, &bn, vin(g, HEED_F32, HEED_SHAPE(2, 5, 3, 3), 20 + s, 3, s));
        CHECK(backward_ref(g, y) == HEED_OK, "%s", heed_graph_error(g));
        double before[5];
        for (int c = 0; c < 5; c++) before[c] = heed_get(bn.opts.running_var, c);
        CHECK(heed_optimizer_step(opt) == HEED_OK, "%s", heed_ctx_error(ctx));
        for (int c = 0; c < 5; c++)
            CHECK(heed_get(bn.opts.running_var, c) == before[c], "the optimizer moved running_var");
    }
    CHECK(heed_get(bn.opts.num_batches_tracked, 0) == 3, "counter %g", heed_get(bn.opts.num_batches_tracked, 0));
    char path[] = "/tmp/heed-test-bn-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd >= 0) close(fd);
    CHECK(heed_checkpoint_save(P, path, NULL, NULL) == HEED_OK, "%s", heed_ctx_error(ctx));
    heed_params *Q = heed_params_new(ctx, HEED_F32);
    heed_batchnorm bq;
    CHECK(heed_batchnorm_declare(&bq, Q, "enc.bn1", &(heed_batchnorm_config){.num_features = 5, .momentum = 0.3}) ==
              HEED_OK,
          "%s", heed_ctx_error(ctx));
    CHECK(heed_get(bq.opts.running_var, 0) == 1 && heed_get(bq.opts.running_mean, 0) == 0, "fresh buffers");
    CHECK(heed_checkpoint_load(Q, path, NULL, NULL) == HEED_OK, "%s", heed_ctx_error(ctx));
    unlink(path);
    for (int i = 0; i < 5; i++) {
        heed_tensor *a = heed_params_find(P, names[i]), *b = heed_params_find(Q, names[i]);
        for (int64_t k = 0; a && b && k < a->numel; k++)
            CHECK(heed_get(a, k) == heed_get(b, k), "%s[%lld] %g vs %g", names[i], (long long)k, heed_get(a, k),
                  heed_get(b, k));
    }
    CHECK(!(bq.opts.running_mean->flags & HEED_REQUIRES_GRAD), "frozen after load");
    heed_graph_free(g);
    heed_optimizer_free(opt);
    heed_params_free(P), heed_params_free(Q);
}

/* Without running statistics, batch statistics in both modes; updates in no-grad regions. */
static void bn_modes(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = vin(g, HEED_F64, HEED_SHAPE(2, 2, 3, 3), 1, 2, 1);
    heed_tensor *y_train = heed_batch_norm2d(g, x, NULL, NULL, NULL);
    heed_graph_set_training(g, false);
    heed_tensor *y_eval = heed_batch_norm2d(g, x, NULL, NULL, NULL);
    for (int64_t k = 0; y_train && y_eval && k < x->numel; k++)
        CHECK(heed_get(y_train, k) == heed_get(y_eval, k), "no running stats: eval differs at %lld", (long long)k);
    heed_graph_set_training(g, true);
    heed_tensor *rm = heed_zeros(g, HEED_F64, HEED_SHAPE(2)), *rv = heed_full(g, HEED_F64, HEED_SHAPE(2), 1);
    heed_no_grad_begin(g);
    heed_batch_norm2d(g, x, NULL, NULL, &(heed_batchnorm_opts){.running_mean = rm, .running_var = rv, .momentum = 1});
    heed_no_grad_end(g);
    /* momentum 1: the batch's statistics exactly (var unbiased) */
    for (int c = 0; c < 2; c++) {
        double s = 0, s2 = 0;
        for (int n = 0; n < 2; n++)
            for (int k = 0; k < 9; k++) s += heed_get(x, (n * 2 + c) * 9 + k);
        for (int n = 0; n < 2; n++)
            for (int k = 0; k < 9; k++) s2 += pow(heed_get(x, (n * 2 + c) * 9 + k) - s / 18, 2);
        CHECK_CLOSE(heed_get(rm, c), s / 18, 1e-14);
        CHECK_CLOSE(heed_get(rv, c), s2 / 17, 1e-14);
    }
    /* an empty batch: the counter moves, the statistics do not (as PyTorch) */
    heed_tensor *cnt = heed_zeros(g, HEED_F64, HEED_SHAPE(1));
    double m0 = heed_get(rm, 0);
    heed_tensor *e =
        heed_batch_norm2d(g, heed_zeros(g, HEED_F64, HEED_SHAPE(0, 2, 3, 3)), NULL, NULL,
                          &(heed_batchnorm_opts){.running_mean = rm, .running_var = rv, .num_batches_tracked = cnt});
    CHECK(e && e->numel == 0 && heed_get(cnt, 0) == 1 && heed_get(rm, 0) == m0, "empty batch: %s", heed_graph_error(g));
    heed_graph_free(g);
}

static void bn_bad_input(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_params *P = heed_params_new(ctx, HEED_F32);
#define X(...) heed_zeros(g, HEED_F32, HEED_SHAPE(__VA_ARGS__))
    CHECK(!heed_batch_norm2d(g, X(2, 3, 4, 4), X(4), NULL, NULL), "wrong channels");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_batch_norm2d: weight[4] must be [3] (the channels of x[2,3,4,4])");
    CHECK(!heed_batch_norm2d(g, X(2, 3, 4, 4), NULL, NULL, &(heed_batchnorm_opts){.running_mean = X(3)}), "one buffer");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_batch_norm2d: running_mean and running_var come together (one of them is NULL)");
    CHECK(!heed_batch_norm2d(g, X(2, 3, 4, 4), NULL, NULL,
                             &(heed_batchnorm_opts){.running_mean = X(3), .running_var = X(2)}),
          "running_var size");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_batch_norm2d: running_var[2] must be [3]");
    CHECK(!heed_batch_norm2d(g, X(1, 3, 1, 1), NULL, NULL, NULL), "one value per channel");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_batch_norm2d: x[1,3,1,1] has 1 value per channel; training needs more than 1");
    CHECK(!heed_batch_norm2d(g, X(2, 3, 4), NULL, NULL, NULL), "3-D");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_batch_norm2d: x[2,3,4] must be [N, C, H, W] (4 dims)");
    CHECK(!heed_batch_norm2d(g, X(2, 3, 2, 2), NULL, NULL, &(heed_batchnorm_opts){.eps = -1}), "eps");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_batch_norm2d: eps = -1 (must be finite and >= 0; 0 means 1e-5)");
    CHECK(!heed_batch_norm2d(g, X(2, 3, 2, 2), NULL, NULL, &(heed_batchnorm_opts){.momentum = 1.5}), "momentum");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_batch_norm2d: momentum = 1.5 (must be in 0..1; 0 means 0.1)");
    CHECK(!heed_batch_norm2d(g, X(2, 3, 2, 2), NULL, NULL, &(heed_batchnorm_opts){.momentum = NAN}), "momentum NaN");
    CHECK_ERR(g, HEED_ERR_ARG, "momentum = nan");
    CHECK(!heed_batch_norm2d(g, X(2, 3, 2, 2), NULL, NULL, &(heed_batchnorm_opts){.cumulative = true}), "cumulative");
    CHECK_ERR(g, HEED_ERR_ARG,
              "heed_batch_norm2d: the cumulative average needs running statistics and num_batches_tracked");
    CHECK(!heed_batch_norm2d(g, X(2, 3, 2, 2), heed_zeros(g, HEED_F64, HEED_SHAPE(3)), NULL, NULL), "dtype");
    CHECK_ERR(g, HEED_ERR_DTYPE, "heed_batch_norm2d: weight is f64");
    CHECK(!heed_batch_norm2d(g, X(2, 3, 2, 2), NULL, NULL,
                             &(heed_batchnorm_opts){.running_mean = X(3),
                                                    .running_var = X(3),
                                                    .num_batches_tracked = X(2)}),
          "counter");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_batch_norm2d: num_batches_tracked[2] must hold one element");
    CHECK(!heed_batchnorm_forward(g, NULL, X(2, 3, 2, 2)), "NULL layer");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_batchnorm_forward: bn is NULL");
#undef X
    heed_batchnorm bn;
    CHECK(heed_batchnorm_declare(&bn, P, "bn", &(heed_batchnorm_config){.num_features = 0}) == HEED_ERR_ARG,
          "0 features");
    CHECK(strstr(heed_ctx_error(ctx), "heed_batchnorm_declare: num_features = 0 (must be >= 1)"), "%s",
          heed_ctx_error(ctx));
    CHECK(heed_batchnorm_declare(&bn, P, "bn", &(heed_batchnorm_config){.num_features = 2, .momentum = -0.1}) ==
              HEED_ERR_ARG,
          "m");
    CHECK(strstr(heed_ctx_error(ctx), "heed_batchnorm_declare: momentum = -0.1"), "%s", heed_ctx_error(ctx));
    CHECK(heed_batchnorm_declare(&bn, P, "bn", &(heed_batchnorm_config){.num_features = 2}) == HEED_OK, "%s",
          heed_ctx_error(ctx));
    CHECK(heed_batchnorm_declare(&bn, P, "bn", &(heed_batchnorm_config){.num_features = 2}) == HEED_ERR_ARG,
          "duplicate");
    CHECK(strstr(heed_ctx_error(ctx), "a parameter named 'bn.weight' exists already"), "%s", heed_ctx_error(ctx));
    heed_batchnorm plain;
    CHECK(heed_batchnorm_declare(&plain, P, "plain",
                                 &(heed_batchnorm_config){.num_features = 2,
                                                          .no_affine = true,
                                                          .no_running_stats = true}) == HEED_OK &&
              !plain.weight && !plain.opts.running_mean && heed_params_count(P) == 5,
          "no affine, no stats: %s", heed_ctx_error(ctx));
    heed_params_free(P);
    heed_graph_free(g);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 14, .threads = 2});
    RUN(conv_known_answers);
    RUN(conv_gradients);
    RUN(conv_gradients_add_up);
    RUN(conv_f32_vs_f64);
    RUN(conv_batch_matches_single_images);
    RUN(conv_bad_input);
    RUN(pool_known_answers);
    RUN(pool_gradients);
    RUN(pool_max_nan_and_ties);
    RUN(pool_bad_input);
    RUN(bn_gradients);
    RUN(bn_against_pytorch);
    RUN(bn_store_and_checkpoint);
    RUN(bn_modes);
    RUN(bn_bad_input);
    heed_ctx_free(ctx);
    return check_summary();
}
