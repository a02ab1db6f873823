/* Timing helpers shared by the benches: a monotonic clock, best-of-N timing, and a number
 * read from a reference script's output. */
#ifndef HEED_BENCH_UTIL_H
#define HEED_BENCH_UTIL_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best time of `reps` runs of the statement, after one warm-up run. */
/* Runs a shell command (a PyTorch reference script) and returns the number after the
 * last "key": in its output (JSON lines), or NaN if it cannot run, fails or never prints it. */
static inline double bench_command_number(const char *cmd, const char *key) {
    FILE *p = popen(cmd, "r");
    if (!p) return NAN;
    char line[1024], pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    double v = NAN;
    while (fgets(line, sizeof line, p)) {
        const char *k = strstr(line, pat);
        if (k) v = strtod(k + strlen(pat), NULL);
    }
    return pclose(p) == 0 ? v : NAN;
}

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
