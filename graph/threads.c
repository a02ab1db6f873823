/* Threads on a shared machine: how many CPUs other processes leave free.
 *
 * libgomp's default wait policy spins a thread that reaches a barrier (or the end of a
 * region) for about 300,000 iterations before it sleeps. When another process keeps one
 * of two cores busy, the thread heed waits for is often descheduled: its partner spins
 * away a whole scheduler slice (milliseconds) at every region end, and a SASRec step
 * starts about 76 regions of more than one thread. An epoch went from 1.9 s to 89 s that
 * way (issue 15).
 * A library cannot change the wait policy (libgomp reads OMP_WAIT_POLICY in its own
 * constructor, before heed's code runs), so heed asks for fewer threads instead while
 * other processes want the CPUs: with one thread nobody waits.
 *
 * Measure: runnable tasks of the whole machine (/proc/loadavg, field 4) minus this
 * process's runnable threads (/proc/self/task/<tid>/stat, state R) = other runnable
 * tasks; free = online CPUs - others. Sampled at most every 100 ms (0.13 ms a sample, a
 * cached answer 60 ns, both on a loaded machine), by whichever thread asks first. Down
 * at once, up again only after three samples in a row have more CPUs free: a wrong
 * "quiet" costs a collapse, a wrong "busy" at most the other threads. Without /proc every
 * CPU counts as free. */
#include "internal.h"

#include <dirent.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { SAMPLE_NS = 100000000, RISE_SAMPLES = 3 };

static _Atomic int64_t next_sample_ns;  /* monotonic time of the next sample */
static _Atomic int free_cpus = 1 << 20; /* what heed_ctx_threads_now allows */
static int rise_streak;                 /* samples in a row above free_cpus (sampler only) */
static atomic_flag sampling = ATOMIC_FLAG_INIT;
static _Atomic int forced; /* heed__force_cpus_free: > 0 pins the answer */

/* Test hook: pretend n CPUs are free (n > 0), or measure again (0). */
void heed__force_cpus_free(int n) { atomic_store(&forced, n > 0 ? n : 0); }

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* This process's threads in state R (running or waiting for a CPU); -1 without /proc. */
static int own_runnable(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    char path[64], buf[256];
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/self/task/%.20s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t got = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[got] = 0;
        const char *close = strrchr(buf, ')'); /* "tid (comm) S ...": comm may hold spaces */
        n += close && close[1] == ' ' && close[2] == 'R';
    }
    closedir(d);
    return n;
}

/* Runnable tasks of the whole machine, this sampler included; -1 if unknown. */
static int machine_runnable(void) {
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return -1;
    int running = -1;
    if (fscanf(f, "%*f %*f %*f %d", &running) != 1) running = -1;
    fclose(f);
    return running;
}

/* CPUs the other processes leave free right now, at least 1. */
static int sample_free_cpus(void) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) cpus = 1;
    int mine = own_runnable(), all = machine_runnable(), mine_after = own_runnable();
    if (mine < 0 || all < 0) return (int)cpus;
    /* a thread of ours may have gone to sleep between the reads: count the larger */
    int others = all - (mine_after > mine ? mine_after : mine);
    if (others < 0) others = 0;
    return others >= cpus ? 1 : (int)cpus - others;
}

int heed__cpus_free(void) {
    int pinned = atomic_load_explicit(&forced, memory_order_relaxed);
    if (pinned > 0) return pinned;
    int64_t t = now_ns();
    if (t >= atomic_load_explicit(&next_sample_ns, memory_order_relaxed) && !atomic_flag_test_and_set(&sampling)) {
        if (t >= atomic_load(&next_sample_ns)) {
            int now = sample_free_cpus(), cur = atomic_load(&free_cpus);
            if (now < cur) rise_streak = 0, atomic_store(&free_cpus, now);
            else if (now > cur && ++rise_streak >= RISE_SAMPLES) rise_streak = 0, atomic_store(&free_cpus, now);
            else if (now == cur) rise_streak = 0;
            atomic_store(&next_sample_ns, t + SAMPLE_NS);
        }
        atomic_flag_clear(&sampling);
    }
    return atomic_load_explicit(&free_cpus, memory_order_relaxed);
}

int heed_ctx_threads_now(const heed_ctx *ctx) {
    int want = heed_ctx_threads(ctx);
    if (want <= 1) return want;
    int cpus = heed__cpus_free();
    return cpus < want ? cpus : want;
}
