#include "simd.h"

#include <stdlib.h>

bool heed__have_avx2(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && !getenv("HEED_NO_AVX2");
    return cached;
}
