/* Builds one optimizer's update kernel four times from its template header, then the
 * kernel itself. The includer defines OPT_UPDATE_FILE, a header that defines
 *   OPT_TARGET static void FN(update)(OPT_KERNEL_PARAMS)
 * for element type T. Builds: f64, f32, f32 compiled for AVX2 + FMA (twice the vector
 * width) and for AVX-512F (four times), picked by `update` at run time. The OpenMP loops
 * inside inherit the target of the function they are written in. */
#include "../graph/simd.h"

#define OPT_TARGET
#define T double
#define FN(name) name##_f64
#include OPT_UPDATE_FILE
#undef T
#undef FN
#define T float
#define FN(name) name##_f32
#include OPT_UPDATE_FILE
#undef T
#undef FN
#undef OPT_TARGET

#define OPT_TARGET HEED_AVX2
#define T float
#define FN(name) name##_f32_avx2
#include OPT_UPDATE_FILE
#undef T
#undef FN
#undef OPT_TARGET

#define OPT_TARGET HEED_AVX512
#define T float
#define FN(name) name##_f32_avx512
#include OPT_UPDATE_FILE
#undef T
#undef FN
#undef OPT_TARGET

static void update(OPT_KERNEL_PARAMS) {
    if (o->dtype == HEED_F64) update_f64(o, t, gs, chunks, n);
    else if (heed__have_avx512()) update_f32_avx512(o, t, gs, chunks, n);
    else if (heed__have_avx2()) update_f32_avx2(o, t, gs, chunks, n);
    else update_f32(o, t, gs, chunks, n);
}
