/* Comparing two heed_checkpoint_info values field by field, for test_checkpoint_info.c and
 * fuzz/fuzz_checkpoint.c (memcmp would compare padding too). */
#ifndef HEED_TEST_INFO_EQUAL_H
#define HEED_TEST_INFO_EQUAL_H

#include "heed/checkpoint.h"

#include <stdbool.h>
#include <string.h>

/* Whether two infos hold the same values (doubles bitwise; padding ignored). */
static bool same_info(const heed_checkpoint_info *a, const heed_checkpoint_info *b) {
    if (a->step != b->step || a->epoch != b->epoch || a->rng_seed != b->rng_seed || a->rng_counter != b->rng_counter ||
        a->n_schedule != b->n_schedule || a->n_user != b->n_user ||
        memcmp(a->schedule, b->schedule, (size_t)a->n_schedule * sizeof a->schedule[0]))
        return false;
    for (int i = 0; i < a->n_user; i++)
        if (strcmp(a->user[i].key, b->user[i].key) || strcmp(a->user[i].value, b->user[i].value)) return false;
    return true;
}

#endif
