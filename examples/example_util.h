/* Small helpers the example programs share (examples/sasrec, examples/las): strict number
 * parsing for flags, exact decimals and "key=value ..." strings for the settings a
 * checkpoint records, and the argument split of the command-line fuzz targets. */
#ifndef HEED_EXAMPLE_UTIL_H
#define HEED_EXAMPLE_UTIL_H

#include <heed/checkpoint.h>
#include <heed/core.h>

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A whole decimal integer (no trailing characters, no overflow). */
static inline bool ex_parse_i64(const char *s, int64_t *v) {
    if (!s) return false;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end) return false;
    *v = x;
    return true;
}

/* A whole finite number. */
static inline bool ex_parse_f64(const char *s, double *v) {
    if (!s) return false;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(x)) return false;
    *v = x;
    return true;
}

/* The shortest decimal that reads back as exactly x (equal strings mean equal values, and
 * 0.3 shows as 0.3). */
static inline const char *ex_exact(double x, char *buf, size_t len) {
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, len, "%.*g", digits, x);
        if (strtod(buf, NULL) == x) break;
    }
    return buf;
}

/* The value of key in a saved "key=value ..." string, copied to out; false if absent. */
static inline bool ex_saved_value(const char *saved, const char *key, char *out, size_t len) {
    size_t kl = strlen(key);
    for (const char *p = saved; *p;) {
        while (*p == ' ') p++;
        const char *end = strchr(p, ' ');
        if (!end) end = p + strlen(p);
        if ((size_t)(end - p) > kl && !strncmp(p, key, kl) && p[kl] == '=') {
            snprintf(out, len, "%.*s", (int)(end - p - kl - 1), p + kl + 1);
            return true;
        }
        p = end;
    }
    return false;
}

/* The value of user key `key` in the metadata of the checkpoint at path (read with
 * heed_checkpoint_read_info: the header alone) into out: 0, or -1 with the reason (not a
 * heed checkpoint, or not one of `program`, which records no such key). */
static inline int ex_checkpoint_setting(const char *path, const char *key, const char *program, char *out, size_t len,
                                        char *err, size_t errlen) {
    heed_ctx *ctx = heed_ctx_new(NULL);
    heed_checkpoint_info info;
    int rc = -1;
    if (!ctx) snprintf(err, errlen, "%s: out of memory", path);
    else if (heed_checkpoint_read_info(ctx, path, &info) != HEED_OK)
        snprintf(err, errlen, "%s: not a heed checkpoint (%s)", path, heed_ctx_error(ctx));
    else if (!heed_checkpoint_info_get(&info, key))
        snprintf(err, errlen, "%s: not a checkpoint of the %s program (it records no %s)", path, program, key);
    else rc = 0, snprintf(out, len, "%s", heed_checkpoint_info_get(&info, key));
    heed_ctx_free(ctx);
    return rc;
}

/* A fuzz input as a command line: a NUL-terminated copy of data (*buf, to free) split at
 * NUL bytes into argv[1 ..] after argv[0] = name; at most max arguments. Returns argc. */
static inline int ex_fuzz_argv(const unsigned char *data, size_t size, const char *name, char **buf, char **argv,
                               int max) {
    *buf = malloc(size + 1);
    if (!*buf) return 0;
    memcpy(*buf, data, size);
    (*buf)[size] = 0;
    argv[0] = (char *)name;
    int argc = 1;
    for (size_t at = 0; at <= size && argc < max; at += strlen(*buf + at) + 1) argv[argc++] = *buf + at;
    argv[argc] = NULL;
    return argc;
}

#endif
