/* Timing helpers shared by the benches: a monotonic clock, best-of-N timing, a number
 * read from a reference script's output, and the contention mode (--busy N). */
#ifndef HEED_BENCH_UTIL_H
#define HEED_BENCH_UTIL_H
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/* ---- contention mode: --busy N
 * N child processes spin on the CPU while a figure is measured a second time, so a bench
 * prints its quiet time, its busy time and their ratio. The children die with the bench on
 * every path: bench_busy_stop at exit, a handler for the fatal signals (kills them, then
 * re-raises), and PR_SET_PDEATHSIG in each child for what no handler sees (SIGKILL). */
enum { BENCH_BUSY_MAX = 64 };
static pid_t bench_busy_pids[BENCH_BUSY_MAX];
static volatile sig_atomic_t bench_busy_count;

static inline void bench_busy_stop(void) {
    int n = bench_busy_count;
    bench_busy_count = 0;
    for (int i = 0; i < n; i++) kill(bench_busy_pids[i], SIGKILL);
    for (int i = 0; i < n; i++) waitpid(bench_busy_pids[i], NULL, 0);
}

static void bench_busy_on_signal(int sig) { /* async-signal-safe: kill, waitpid, signal, raise */
    for (int i = 0; i < bench_busy_count; i++) kill(bench_busy_pids[i], SIGKILL);
    for (int i = 0; i < bench_busy_count; i++) waitpid(bench_busy_pids[i], NULL, 0);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Starts n spinning children (n <= BENCH_BUSY_MAX); 0 on success. */
static inline int bench_busy_start(int n) {
    static bool hooked;
    if (!hooked) {
        const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], bench_busy_on_signal);
        atexit(bench_busy_stop);
        hooked = true;
    }
    if (n < 0 || n > BENCH_BUSY_MAX) return -1;
    pid_t parent = getpid();
    fflush(NULL);
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p < 0) return bench_busy_stop(), -1;
        if (p == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(0); /* the bench died before prctl */
            setsid();                          /* its own session, so its own autogroup: it competes with the bench as
                         another program would, not for the bench's share of the CPU */
            for (volatile unsigned long spin = 0;; spin++) {}
        }
        bench_busy_pids[bench_busy_count++] = p;
    }
    return 0;
}

/* The 1-minute load average and the runnable tasks right now (/proc/loadavg), printed
 * beside contention figures so a reader knows how shared the machine was. */
static inline void bench_load(double *load1, int *running) {
    *load1 = NAN, *running = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return;
    if (fscanf(f, "%lf %*f %*f %d", load1, running) != 2) *load1 = NAN, *running = -1;
    fclose(f);
}

/* Calls measure(arg) (seconds of some work) quiet, then again with `busy` spinning
 * children; prints the JSON fields of both and their ratio (no braces: the caller's line
 * holds them). Returns false when the children could not be started. */
static inline bool bench_contention(int busy, double (*measure)(void *), void *arg) {
    double load1;
    int running;
    bench_load(&load1, &running);
    double quiet = measure(arg);
    if (bench_busy_start(busy)) return fprintf(stderr, "--busy %d: cannot start the busy processes\n", busy), false;
    double busy_s = measure(arg);
    bench_busy_stop();
    printf("\"busy_processes\":%d,\"quiet_seconds\":%.4f,\"busy_seconds\":%.4f,\"busy_over_quiet\":%.2f,"
           "\"loadavg_1min_before\":%.2f,\"runnable_before\":%d",
           busy, quiet, busy_s, busy_s / quiet, load1, running);
    return true;
}

/* "--busy N" at argv[i]: N, and i moved past it; -1 if argv[i] is something else. Exits
 * with status 2 on an N outside 1..BENCH_BUSY_MAX. */
static inline int bench_busy_arg(int argc, char **argv, int *i) {
    if (strcmp(argv[*i], "--busy") || *i + 1 >= argc) return -1;
    int n = atoi(argv[++*i]);
    if (n < 1 || n > BENCH_BUSY_MAX) {
        fprintf(stderr, "--busy: 1..%d processes\n", BENCH_BUSY_MAX);
        exit(2);
    }
    return n;
}

#define BENCH_BEST(reps, out_seconds, ...)                                                                             \
    do {                                                                                                               \
        { __VA_ARGS__; }                                                                                               \
        double best_ = 1e30;                                                                                           \
        for (int r_ = 0; r_ < (reps); r_++) {                                                                          \
            double t0_ = bench_now();                                                                                  \
            { __VA_ARGS__; }                                                                                           \
            double t_ = bench_now() - t0_;                                                                             \
            if (t_ < best_) best_ = t_;                                                                                \
        }                                                                                                              \
        (out_seconds) = best_;                                                                                         \
    } while (0)
#endif
