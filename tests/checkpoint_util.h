/* What the checkpoint tests share: a fresh temporary directory per run, reading and
 * writing whole files, snapshots of a store's values and an optimizer's state, and the
 * small models they save. */
#ifndef HEED_TESTS_CHECKPOINT_UTIL_H
#define HEED_TESTS_CHECKPOINT_UTIL_H

#include "check.h"
#include "heed/optim.h"

#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[256]; /* a fresh temporary directory for this run */

static inline const char *tmp_path(const char *name) {
    static char buf[16][512]; /* a ring: a returned path stays valid for 15 more calls */
    static int k;
    k = (k + 1) % 16;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static inline int count_temp_files(void) {
    int n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp-") != NULL;
    if (d) closedir(d);
    return n;
}

static inline void remove_dir(void) {
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (rmdir(p) != 0) unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static inline unsigned char *read_all(const char *path, size_t *n) {
    *n = 0;
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

static inline void write_all(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

/* A copy of every value of P, to check that a failed load changed nothing. */
static inline void *snapshot(heed_params *P) {
    size_t n = (size_t)heed_params_padded_numel(P) * heed_dtype_size(heed_params_dtype(P));
    void *s = malloc(n ? n : 1);
    memcpy(s, heed_params_values(P), n);
    return s;
}

static inline bool same_values(heed_params *P, const void *snap) {
    size_t n = (size_t)heed_params_padded_numel(P) * heed_dtype_size(heed_params_dtype(P));
    return memcmp(heed_params_values(P), snap, n) == 0;
}

/* The flat state buffer i of an optimizer. */
static inline float *state_buf(heed_optimizer *o, int i) {
    const char *name;
    void *data = NULL;
    int64_t numel;
    heed_dtype dt;
    heed_optimizer_state(o, i, &name, &data, &numel, &dt);
    return data;
}

/* All state buffers of two optimizers (same kind, same store) bitwise equal. */
static inline bool same_state(heed_optimizer *a, heed_optimizer *b) {
    if (heed_optimizer_state_count(a) != heed_optimizer_state_count(b)) return false;
    for (int i = 0; i < heed_optimizer_state_count(a); i++) {
        const char *na, *nb;
        void *da, *db;
        int64_t ka, kb;
        heed_dtype ta, tb;
        heed_optimizer_state(a, i, &na, &da, &ka, &ta);
        heed_optimizer_state(b, i, &nb, &db, &kb, &tb);
        if (strcmp(na, nb) != 0 || ka != kb || ta != tb || memcmp(da, db, (size_t)ka * heed_dtype_size(ta)) != 0)
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------- models */

static inline heed_params *mlp(heed_ctx *ctx, heed_dtype dt) {
    heed_params *P = heed_params_new(ctx, dt);
    /* 12 hidden units: the store pads between parameters (offsets 0, 64, 80, 128) */
    heed_param(P, "enc.w", HEED_SHAPE(12, 5), heed_init_xavier_uniform(1.0));
    heed_param(P, "enc.b", HEED_SHAPE(12), heed_init_uniform(-0.1, 0.1));
    heed_param(P, "out.w", HEED_SHAPE(3, 12), heed_init_xavier_uniform(1.0));
    heed_param(P, "out.b", HEED_SHAPE(3), heed_init_zeros());
    return P;
}

/* The small model of the hand-made files: w[2,3] and b[3], f32. */
static inline heed_params *tiny(heed_ctx *ctx) {
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_param(P, "w", HEED_SHAPE(2, 3), heed_init_uniform(-1, 1));
    heed_param(P, "b", HEED_SHAPE(3), heed_init_uniform(-1, 1));
    return P;
}

#endif
