/* The parts of data-parallel training that do not depend on MPI. */
#include "dist_internal.h"
#include "heed/dist.h"

void heed_dist_shard(int64_t n, int rank, int size, int64_t *begin, int64_t *end) {
    if (n < 0 || size < 1 || rank < 0 || rank >= size) { /* nothing for a rank that does not exist */
        if (begin) *begin = 0;
        if (end) *end = 0;
        return;
    }
    /* n r / s without overflow for any n < 2^63 and s < 2^31: (n / s) r + (n % s) r / s */
    int64_t q = n / size, m = n % size;
    if (begin) *begin = q * rank + m * rank / size;
    if (end) *end = q * (rank + 1) + m * (rank + 1) / size;
}

int64_t heed__dist_flat_end(const heed_params *P) {
    int n = heed_params_count(P);
    return n ? heed_params_offset(P, n - 1) + heed_params_at(P, n - 1)->numel : 0;
}
