/* Builds a vector kernel template once per ISA (graph/simd.h, "kernels written once per
 * ISA"): the includer defines PER_ISA_FILE, the template's path from graph/, and gets its
 * avx2 and avx512 builds; HEED_WIDEST then picks one at run time. Without SLEEF's
 * AVX-512 declarations (clang, which ignores the target pragma: tests/fuzz/run.sh) there
 * is no avx512 build and HEED_WIDEST runs the avx2 one. */
#define ISA avx2
#include PER_ISA_FILE
#undef ISA
#ifdef HEED_SLEEF_AVX512
#define ISA avx512
#include PER_ISA_FILE
#undef ISA
#endif
#undef PER_ISA_FILE
