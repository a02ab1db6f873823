/* A small test harness: CHECK macros, a runner, and helpers for gradient checks, f32 vs
 * f64 agreement and expected errors. Each test program returns non-zero on failure. */
#ifndef HEED_CHECK_H
#define HEED_CHECK_H

#include "heed/core.h"
#include "heed/gradcheck.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);                                   \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
            check_failures++;                                                                                          \
        }                                                                                                              \
    } while (0)

/* ---------------------------------------------------------------- comparing values
 * Tests compare values through check_err. fmax(err, fabs(a - ref)) cannot see a NaN (fmax
 * returns its other argument), so an all-NaN result would count as error 0; check_err
 * makes a NaN or an infinity on one side only an infinite error. */

/* The error of a against its reference: |a - ref| when both are finite, 0 when both are
 * the same non-finite value (NaN and NaN, or equal infinities), +inf otherwise. Never NaN.
 * check_err(x, 0) is |x| with NaN as +inf (for bounds). */
static inline double check_err(double a, double ref) {
    if (isfinite(a) && isfinite(ref)) return fabs(a - ref);
    if ((isnan(a) && isnan(ref)) || a == ref) return 0;
    return INFINITY;
}

/* check_err divided by a scale: a mismatch stays +inf, a match stays 0. */
static inline double check_rel_err(double a, double ref, double scale) {
    double e = check_err(a, ref);
    return e == 0 || isinf(e) ? e : e / scale;
}

/* |a - ref| <= tol (1 + |ref|), by check_err (an infinite ref does not widen the bound). */
static inline bool check_close(double a, double ref, double tol) {
    return check_err(a, ref) <= tol * (1 + (isfinite(ref) ? fabs(ref) : 0));
}

#define CHECK_CLOSE(a, b, tol)                                                                                         \
    do {                                                                                                               \
        double a_ = (a), b_ = (b);                                                                                     \
        CHECK(check_close(a_, b_, (tol)), "%s = %.12g, %s = %.12g", #a, a_, #b, b_);                                   \
    } while (0)

/* A normwise comparison: the largest check_err and the largest finite |ref| (at least a
 * floor). It passes when err <= tol * scale. */
typedef struct {
    double err, scale;
} check_norm;

static inline check_norm check_norm_start(double floor) { return (check_norm){0, floor}; }

static inline void check_norm_add(check_norm *n, double a, double ref) {
    n->err = fmax(n->err, check_err(a, ref));
    if (isfinite(ref)) n->scale = fmax(n->scale, fabs(ref));
}

static inline bool check_norm_ok(check_norm n, double tol) { return n.err <= tol * n.scale; }

/* Two tensors element by element (a may be f32, ref f64); different sizes are +inf. */
static inline check_norm check_norm_tensors(const heed_tensor *a, const heed_tensor *ref, double floor) {
    check_norm n = check_norm_start(floor);
    if (a->numel != ref->numel) n.err = INFINITY;
    else
        for (int64_t i = 0; i < ref->numel; i++) check_norm_add(&n, heed_get(a, i), heed_get(ref, i));
    return n;
}

/* The largest check_err over two arrays. */
static inline double check_max_err(const double *a, const double *ref, int64_t n) {
    double err = 0;
    for (int64_t i = 0; i < n; i++) err = fmax(err, check_err(a[i], ref[i]));
    return err;
}

#define RUN(test)                                                                                                      \
    do {                                                                                                               \
        int before_ = check_failures;                                                                                  \
        test();                                                                                                        \
        printf("%s %s\n", before_ == check_failures ? "ok  " : "FAIL", #test);                                         \
        fflush(stdout);                                                                                                \
    } while (0)

/* Gives an f64 and an f32 store of the same parameters the same values: the f64 ones
 * rounded to f32 (for f32-vs-f64 checks of a whole model). */
static inline void check_round_params(heed_params *P64, heed_params *P32) {
    for (int i = 0; i < heed_params_count(P64); i++) {
        heed_tensor *a = heed_params_at(P64, i), *b = heed_params_at(P32, i);
        for (int64_t k = 0; k < a->numel; k++) ((float *)b->data)[k] = (float)((double *)a->data)[k];
        for (int64_t k = 0; k < a->numel; k++) ((double *)a->data)[k] = ((float *)b->data)[k];
    }
}

static inline int check_summary(void) {
    if (check_failures) printf("%d check(s) failed\n", check_failures);
    return check_failures ? 1 : 0;
}

/* The graph must hold an error of this code whose message contains `needle`; the graph
 * is reset afterwards so the next case starts clean. */
#define CHECK_ERR(g, code, needle)                                                                                     \
    do {                                                                                                               \
        heed_status st_ = heed_graph_status(g);                                                                        \
        const char *msg_ = heed_graph_error(g);                                                                        \
        CHECK(st_ == (code) && strstr(msg_, (needle)), "want %s containing '%s', got %s: '%s'",                        \
              heed_status_name(code), (needle), heed_status_name(st_), msg_);                                          \
        heed_graph_reset(g);                                                                                           \
    } while (0)

/* The call (outside graphs) must return code with a message in heed_ctx_error(ctx)
 * containing `needle`. */
#define CHECK_CTX_FAIL(ctx, call, code, needle)                                                                        \
    do {                                                                                                               \
        heed_status st_ = (call);                                                                                      \
        const char *msg_ = heed_ctx_error(ctx);                                                                        \
        CHECK(st_ == (code) && strstr(msg_, (needle)), "%s: want %s containing '%s', got %s: '%s'", #call,             \
              heed_status_name(code), (needle), heed_status_name(st_), msg_);                                          \
    } while (0)

/* f64 gradient check with the default (PyTorch) tolerances; prints the report on failure. */
#define CHECK_GRAD(ctx, fn, user, n, inputs, opts)                                                                     \
    do {                                                                                                               \
        heed_gradcheck_result r_;                                                                                      \
        heed_status s_ = heed_gradcheck((ctx), (fn), (user), (n), (inputs), (opts), &r_);                              \
        CHECK(s_ == HEED_OK, "gradcheck %s: %s", #fn, heed_ctx_error(ctx));                                            \
    } while (0)

/* Runs fn on f32 and on f64 copies of the same inputs (any number) and compares the
 * outputs: max |y32 - y64| <= tol * max(1e-3, max |y64|) (normwise relative, by
 * check_norm). The f32 run must give an f32 result. Returns whether it passed. */
static inline bool check_f32_vs_f64(heed_ctx *ctx, heed_gradcheck_fn fn, void *user, int n,
                                    const heed_gradcheck_input *inputs, double tol, const char *what) {
    heed_graph *g32 = heed_graph_new(ctx), *g64 = heed_graph_new(ctx);
    int before = check_failures;
    heed_tensor **in32 = calloc((size_t)(n > 0 ? n : 1), sizeof *in32);
    heed_tensor **in64 = calloc((size_t)(n > 0 ? n : 1), sizeof *in64);
    heed_rng r = heed_rng_make(1234, 99);
    uint64_t seed, counter;
    heed_ctx_rng_state(ctx, &seed, &counter);
    for (int i = 0; i < n; i++) {
        int64_t numel = 1;
        for (int k = 0; k < inputs[i].shape.ndim; k++) numel *= inputs[i].shape.d[k];
        double *d = malloc((size_t)(numel ? numel : 1) * sizeof *d);
        for (int64_t k = 0; k < numel; k++) d[k] = inputs[i].data ? inputs[i].data[k] : 2 * heed_rng_uniform(&r) - 1;
        in32[i] = heed_input_f64(g32, HEED_F32, inputs[i].shape, d);
        in64[i] = heed_input_f64(g64, HEED_F64, inputs[i].shape, d);
        free(d);
    }
    heed_tensor *y32 = fn(g32, in32, user);
    heed_ctx_set_rng_state(ctx, seed, counter);
    heed_tensor *y64 = fn(g64, in64, user);
    CHECK(y32 && y64, "%s: %s %s", what, heed_graph_error(g32), heed_graph_error(g64));
    if (y32 && y64) {
        CHECK(y32->dtype == HEED_F32 && y64->dtype == HEED_F64, "%s: the f32 run gave dtype %d, the f64 run %d", what,
              (int)y32->dtype, (int)y64->dtype);
        CHECK(y32->numel == y64->numel, "%s: sizes differ", what);
        check_norm cmp = check_norm_tensors(y32, y64, 1e-3);
        CHECK(check_norm_ok(cmp, tol), "%s: f32 vs f64 max error %.3g, scale %.3g", what, cmp.err, cmp.scale);
    }
    heed_graph_free(g32);
    heed_graph_free(g64);
    free(in32), free(in64);
    return check_failures == before;
}

#endif
