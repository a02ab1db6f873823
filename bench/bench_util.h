/* Timing helpers shared by the benches: a monotonic clock and best-of-N timing. */
#ifndef HEED_BENCH_UTIL_H
#define HEED_BENCH_UTIL_H
#include <time.h>

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best time of `reps` runs of the statement, after one warm-up run. */
#define BENCH_BEST(reps, out_seconds, ...)                        \
    do {                                                          \
        { __VA_ARGS__; }                                          \
        double best_ = 1e30;                                      \
        for (int r_ = 0; r_ < (reps); r_++) {                     \
            double t0_ = bench_now();                             \
            { __VA_ARGS__; }                                      \
            double t_ = bench_now() - t0_;                        \
            if (t_ < best_) best_ = t_;                           \
        }                                                         \
        (out_seconds) = best_;                                    \
    } while (0)
#endif
