/* Which instruction set the kernels run (heed_isa), chosen once per process: the best the
 * CPU runs and heed has kernels for, or the one the environment variable HEED_ISA names.
 *   HEED_ISA=scalar   the portable kernels (what a CPU without AVX2 runs)
 *   HEED_ISA=avx2     the AVX2 + FMA kernels (the default when the CPU has both, not AVX-512F)
 *   HEED_ISA=avx512   the AVX-512F kernels (the default when the CPU has AVX-512F, AVX2, FMA)
 * Anything else, or an ISA the CPU lacks, is reported once on stderr and the default runs;
 * the tests run each path through tests/isa_run.c, which checks heed_isa() first. */
#include "internal.h"
#include "simd.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

typedef enum { ISA_SCALAR, ISA_AVX2, ISA_AVX512, ISA_COUNT } isa_id; /* in order: each runs on the CPUs of the next */

static const char *const isa_names[] = {[ISA_SCALAR] = "scalar", [ISA_AVX2] = "avx2", [ISA_AVX512] = "avx512"};
_Static_assert(sizeof isa_names / sizeof *isa_names == ISA_COUNT, "one name per ISA");

static pthread_once_t chosen = PTHREAD_ONCE_INIT;
static isa_id active;
static bool force_scalar;

/* __builtin_cpu_supports also checks that the OS saves the vector registers (XCR0). */
static isa_id best_available(void) {
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return ISA_SCALAR;
    return __builtin_cpu_supports("avx512f") ? ISA_AVX512 : ISA_AVX2;
}

static void choose(void) {
    isa_id best = best_available(), want = ISA_COUNT;
    const char *env = getenv("HEED_ISA");
    active = best;
    if (!env || !*env) return;
    for (int i = 0; i < ISA_COUNT; i++)
        if (!strcmp(env, isa_names[i])) want = (isa_id)i;
    if (want == ISA_COUNT)
        fprintf(stderr, "heed: HEED_ISA=%s is not one of avx512, avx2, scalar; running %s\n", env, isa_names[best]);
    else if (want > best)
        fprintf(stderr, "heed: HEED_ISA=%s: this CPU lacks %s; running %s\n", env,
                want == ISA_AVX512 ? "AVX-512F" : "AVX2 or FMA", isa_names[best]);
    else active = want;
}

static isa_id current(void) {
    pthread_once(&chosen, choose);
    return force_scalar ? ISA_SCALAR : active;
}

const char *heed_isa(void) { return isa_names[current()]; }
bool heed__have_avx2(void) { return current() >= ISA_AVX2; }
bool heed__have_avx512(void) { return current() >= ISA_AVX512; }
void heed__force_scalar(bool on) { force_scalar = on; }

double heed_scalar_sigmoid(double x) { return heed__sigmoid1(x); }
double heed_scalar_softplus(double x) { return heed__softplus1(x); }
