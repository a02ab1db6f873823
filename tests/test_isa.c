/* The instruction-set switch (graph/simd.c): heed_isa() under each value of HEED_ISA, the
 * one stderr note for a value heed cannot run, the test hook, and that the choice reaches
 * the kernels. HEED_ISA is read once per process, so every case runs in a child process
 * (the parent never runs a kernel, so no OpenMP threads exist when it forks). */
#include "check.h"
#include "heed/elementwise.h"

#include <sys/wait.h>
#include <unistd.h>

void heed__force_scalar(bool on); /* test hook, graph/simd.c */

/* What a child saw: heed_isa() and its whole stderr; how f32 heed_exp compared with exp
 * rounded to float (the scalar path computes exactly that). */
typedef struct {
    char isa[32], err[1024];
    int64_t n, mismatches;
    bool ok; /* the child ran to the end */
} report;

enum { NX = 4096 };

/* f32 exp of NX points in [-10, 10]: how many differ from (float)exp((double)x). */
static int64_t exp_mismatches(void) {
    heed_ctx *ctx = heed_ctx_new(NULL);
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = heed_zeros(g, HEED_F32, HEED_SHAPE(NX));
    float *xv = x->data;
    for (int i = 0; i < NX; i++) xv[i] = (float)(-10 + 20.0 * i / NX) + 1e-3f;
    heed_tensor *y = heed_exp(g, x);
    int64_t bad = y ? 0 : -1;
    for (int i = 0; y && i < NX; i++) bad += ((float *)y->data)[i] != (float)exp((double)xv[i]);
    heed_graph_free(g);
    heed_ctx_free(ctx);
    return bad;
}

/* Runs in a child with HEED_ISA = value (unset when NULL): heed_isa() twice, the exp
 * kernel once, and with force_scalar the test hook on before all of it. */
static report run_child(const char *value, bool force_scalar) {
    report r = {0};
    int out[2], err[2];
    if (pipe(out) || pipe(err)) return r;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(out[0]), close(err[0]);
        dup2(err[1], 2);
        if (value) setenv("HEED_ISA", value, 1);
        else unsetenv("HEED_ISA");
        if (force_scalar) heed__force_scalar(true);
        const char *isa = heed_isa();
        int64_t bad = exp_mismatches();
        isa = heed_isa();
        dprintf(out[1], "%s %lld\n", isa, (long long)bad);
        _exit(0);
    }
    close(out[1]), close(err[1]);
    char buf[128] = {0};
    FILE *fo = fdopen(out[0], "r"), *fe = fdopen(err[0], "r");
    bool got = fgets(buf, sizeof buf, fo) != NULL;
    size_t ne = fread(r.err, 1, sizeof r.err - 1, fe);
    r.err[ne] = 0;
    fclose(fo), fclose(fe);
    int status = 0;
    waitpid(pid, &status, 0);
    long long bad = -1;
    r.ok = got && WIFEXITED(status) && WEXITSTATUS(status) == 0 && sscanf(buf, "%31s %lld", r.isa, &bad) == 2;
    r.mismatches = bad;
    return r;
}

static const char *best(void) {
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return "scalar";
    return __builtin_cpu_supports("avx512f") ? "avx512" : "avx2";
}

static bool runs(const char *isa) {
    return !strcmp(isa, "scalar") || !strcmp(best(), "avx512") || !strcmp(best(), isa);
}

/* The scalar path ran: every exp is exp rounded to float. */
static void ran_scalar(const report *r, const char *what) {
    CHECK(r->mismatches == 0, "%s: %lld of %d f32 exps differ from the scalar formula", what, (long long)r->mismatches,
          NX);
}

/* A vector path (AVX2 or AVX-512) ran: SLEEF's expf (1 ulp) is not correctly rounded, so
 * some of the NX results differ from exp rounded to float (about 1 in 10 here). */
static void ran_vector(const report *r, const char *what) {
    CHECK(r->mismatches > 0, "%s: all %d f32 exps equal the scalar formula: no vector kernel ran", what, NX);
}

static void ran(const report *r, const char *isa, const char *what) {
    if (!strcmp(isa, "scalar")) ran_scalar(r, what);
    else ran_vector(r, what);
}

static void default_and_scalar(void) {
    report r = run_child(NULL, false);
    CHECK(r.ok && !strcmp(r.isa, best()) && !r.err[0], "unset: isa %s (want %s), stderr '%s'", r.isa, best(), r.err);
    ran(&r, best(), "unset");
    r = run_child("", false);
    CHECK(r.ok && !strcmp(r.isa, best()) && !r.err[0], "empty: isa %s (want %s), stderr '%s'", r.isa, best(), r.err);
    r = run_child("scalar", false);
    CHECK(r.ok && !strcmp(r.isa, "scalar") && !r.err[0], "scalar: isa %s, stderr '%s'", r.isa, r.err);
    ran_scalar(&r, "HEED_ISA=scalar");
}

/* HEED_ISA=isa: that ISA when the CPU has it, else the note naming what is missing, and
 * the default. */
static void vector_isa(const char *isa, const char *lacks) {
    report r = run_child(isa, false);
    char what[64], want[256];
    snprintf(what, sizeof what, "HEED_ISA=%s", isa);
    if (runs(isa)) {
        CHECK(r.ok && !strcmp(r.isa, isa) && !r.err[0], "%s: isa %s, stderr '%s'", what, r.isa, r.err);
        ran(&r, isa, what);
    } else {
        snprintf(want, sizeof want, "heed: HEED_ISA=%s: this CPU lacks %s; running %s\n", isa, lacks, best());
        CHECK(r.ok && !strcmp(r.isa, best()) && !strcmp(r.err, want),
              "%s on a CPU without it: isa %s, stderr '%s' (want '%s')", what, r.isa, r.err, want);
        ran(&r, best(), what);
    }
}

static void avx2(void) { vector_isa("avx2", "AVX2 or FMA"); }
static void avx512(void) { vector_isa("avx512", "AVX-512F"); }

/* A name heed does not know: one line on stderr (heed_isa ran twice and a kernel once),
 * and the default path. */
static void refused(void) {
    char want[256];
    report r = run_child("AVX2", false);
    snprintf(want, sizeof want, "heed: HEED_ISA=AVX2 is not one of avx512, avx2, scalar; running %s\n", best());
    CHECK(r.ok && !strcmp(r.isa, best()) && !strcmp(r.err, want), "AVX2: isa %s, stderr '%s' (want '%s')", r.isa, r.err,
          want);
    ran(&r, best(), "HEED_ISA=AVX2 (unknown: the default)");
}

/* The hook: scalar whatever HEED_ISA says, and heed_isa() tells. */
static void hook(void) {
    report r = run_child(NULL, true);
    CHECK(r.ok && !strcmp(r.isa, "scalar") && !r.err[0], "hook: isa %s, stderr '%s'", r.isa, r.err);
    ran_scalar(&r, "heed__force_scalar");
    r = run_child("avx2", true);
    CHECK(r.ok && !strcmp(r.isa, "scalar"), "hook under HEED_ISA=avx2: isa %s", r.isa);
    ran_scalar(&r, "heed__force_scalar under HEED_ISA=avx2");
    r = run_child("avx512", true);
    CHECK(r.ok && !strcmp(r.isa, "scalar"), "hook under HEED_ISA=avx512: isa %s", r.isa);
    ran_scalar(&r, "heed__force_scalar under HEED_ISA=avx512");
}

int main(void) {
    RUN(default_and_scalar);
    RUN(avx2);
    RUN(avx512);
    RUN(refused);
    RUN(hook);
    return check_summary();
}
