/* For the example's libFuzzer targets (fuzz_*.c): with HEED_FUZZ_SEEDS=<dir> set, a
 * target writes its seed inputs into dir when it starts (tests/fuzz/run.sh fuzzes from
 * them; the meson test replays them through fuzz_replay.c). */
#ifndef SASREC_FUZZ_SEEDS_H
#define SASREC_FUZZ_SEEDS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void fuzz_seed(const char *name, const void *data, size_t len) {
    const char *dir = getenv("HEED_FUZZ_SEEDS");
    if (!dir) return;
    mkdir(dir, 0777);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) fprintf(stderr, "seed %s: cannot write\n", path);
    if (f) fclose(f);
}

#define FUZZ_SEED(name, literal) fuzz_seed(name, literal, sizeof literal - 1)

#endif
