/* Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
 * A keyed bijection of a 128-bit counter: value = f(key, counter), so any element of any
 * random stream can be regenerated on its own (dropout masks in backward, any thread). */
#include "internal.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void heed_philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]) {
    uint32_t k0 = key[0], k1 = key[1];
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

static void block(uint64_t key, uint64_t stream, uint64_t counter, uint32_t out[4]) {
    uint32_t k[2] = {(uint32_t)key, (uint32_t)(key >> 32)};
    uint32_t c[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
    heed_philox4x32(k, c, out);
}

/* 24 random bits -> [0, 1): exact in float and double. */
static double to_unit(uint32_t u) { return (u >> 8) * (1.0 / 16777216.0); }

double heed__uniform_at(uint64_t seed, uint64_t stream, uint64_t i) {
    uint32_t out[4];
    block(seed, stream, i >> 2, out);
    return to_unit(out[i & 3]);
}

heed_rng heed_rng_make(uint64_t seed, uint64_t stream) {
    return (heed_rng){.key = seed, .stream = stream, .counter = 0, .pos = 4};
}

uint32_t heed_rng_u32(heed_rng *r) {
    if (r->pos >= 4) {
        block(r->key, r->stream, r->counter++, r->buf);
        r->pos = 0;
    }
    return r->buf[r->pos++];
}

uint64_t heed_rng_below(heed_rng *r, uint64_t n) {
    if (n <= 1) return 0;
    /* rejection sampling removes modulo bias */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint64_t x = ((uint64_t)heed_rng_u32(r) << 32) | heed_rng_u32(r);
        if (x < limit) return x % n;
    }
}

double heed_rng_uniform(heed_rng *r) {
    uint64_t hi = heed_rng_u32(r) >> 5, lo = heed_rng_u32(r) >> 6; /* 53 bits */
    return (hi * 67108864.0 + lo) * (1.0 / 9007199254740992.0);
}

double heed_rng_normal(heed_rng *r) {
    /* Box-Muller; 1 - u keeps log away from 0 */
    double u1 = 1.0 - heed_rng_uniform(r), u2 = heed_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
