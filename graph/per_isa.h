/* Builds a vector kernel template once per ISA (graph/simd.h, "kernels written once per
 * ISA"): the includer defines PER_ISA_FILE, the template's path from graph/, and gets its
 * avx2 and avx512 builds; HEED_WIDEST then picks one at run time. */
#define ISA avx2
#include PER_ISA_FILE
#undef ISA
#define ISA avx512
#include PER_ISA_FILE
#undef ISA
#undef PER_ISA_FILE
