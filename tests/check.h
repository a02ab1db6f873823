/* A small test harness: CHECK macros, a runner, and helpers for gradient checks, f32 vs
 * f64 agreement and expected errors. Each test program returns non-zero on failure. */
#ifndef HEED_CHECK_H
#define HEED_CHECK_H

#include "heed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;

#define CHECK(cond, ...)                                                                         \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);             \
            fprintf(stderr, __VA_ARGS__);                                                        \
            fputc('\n', stderr);                                                                 \
            check_failures++;                                                                    \
        }                                                                                        \
    } while (0)

#define CHECK_CLOSE(a, b, tol)                                                                   \
    do {                                                                                         \
        double a_ = (a), b_ = (b);                                                               \
        CHECK(fabs(a_ - b_) <= (tol) * (1 + fabs(b_)), "%s = %.12g, %s = %.12g", #a, a_, #b, b_); \
    } while (0)

#define RUN(test)                                                                                \
    do {                                                                                         \
        int before_ = check_failures;                                                            \
        test();                                                                                  \
        printf("%s %s\n", before_ == check_failures ? "ok  " : "FAIL", #test);                   \
        fflush(stdout);                                                                          \
    } while (0)

static inline int check_summary(void) {
    if (check_failures) printf("%d check(s) failed\n", check_failures);
    return check_failures ? 1 : 0;
}

/* The graph must hold an error of this code whose message contains `needle`; the graph
 * is reset afterwards so the next case starts clean. */
#define CHECK_ERR(g, code, needle)                                                               \
    do {                                                                                         \
        heed_status st_ = heed_graph_status(g);                                                  \
        const char *msg_ = heed_graph_error(g);                                                  \
        CHECK(st_ == (code) && strstr(msg_, (needle)), "want %s containing '%s', got %s: '%s'",   \
              heed_status_name(code), (needle), heed_status_name(st_), msg_);                     \
        heed_graph_reset(g);                                                                     \
    } while (0)

/* f64 gradient check with the default (PyTorch) tolerances; prints the report on failure. */
#define CHECK_GRAD(ctx, fn, user, n, inputs, opts)                                               \
    do {                                                                                         \
        heed_gradcheck_result r_;                                                                \
        heed_status s_ = heed_gradcheck((ctx), (fn), (user), (n), (inputs), (opts), &r_);       \
        CHECK(s_ == HEED_OK, "gradcheck %s: %s", #fn, heed_ctx_error(ctx));                      \
    } while (0)

/* Runs fn on f32 and on f64 copies of the same inputs and compares the outputs:
 * max |y32 - y64| <= tol * max(1e-3, max |y64|) (normwise relative). */
static inline void check_f32_vs_f64(heed_ctx *ctx, heed_gradcheck_fn fn, void *user, int n,
                                    const heed_gradcheck_input *inputs, double tol, const char *what) {
    heed_graph *g32 = heed_graph_new(ctx), *g64 = heed_graph_new(ctx);
    heed_tensor *in32[16], *in64[16];
    heed_rng r = heed_rng_make(1234, 99);
    uint64_t seed, counter;
    heed_ctx_rng_state(ctx, &seed, &counter);
    for (int i = 0; i < n && i < 16; i++) {
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
        CHECK(y32->numel == y64->numel, "%s: sizes differ", what);
        double err = 0, scale = 1e-3;
        for (int64_t i = 0; i < y64->numel; i++) {
            double a = heed_get(y32, i), b = heed_get(y64, i);
            if (isfinite(b) || isfinite(a)) err = fmax(err, fabs(a - b));
            if (isfinite(b)) scale = fmax(scale, fabs(b));
        }
        CHECK(err <= tol * scale, "%s: f32 vs f64 max error %.3g, scale %.3g", what, err, scale);
    }
    heed_graph_free(g32);
    heed_graph_free(g64);
}

#endif
