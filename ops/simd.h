/* Moved to graph/simd.h. ops/attention/flash_kernels.c still includes this name (it is
 * being changed on another branch); delete this file once it includes graph/simd.h. */
#include "../graph/simd.h"
