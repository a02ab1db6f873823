/* A user key of a heed checkpoint's header (heed_checkpoint_info_set), read without loading
 * the checkpoint into a model: the example programs check that a file is one of theirs, and
 * rebuild the network it holds, before heed_checkpoint_load. Needs cJSON. */
#ifndef HEED_EXAMPLE_CHECKPOINT_META_H
#define HEED_EXAMPLE_CHECKPOINT_META_H

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value of user key `key` in the checkpoint at path into out: 0, or -1 with the reason
 * (cannot open, not a heed checkpoint, not a checkpoint of `program`: no such key). */
static inline int ex_checkpoint_user(const char *path, const char *key, const char *program, char *out, size_t len,
                                     char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno)), -1;
    unsigned char len8[8];
    uint64_t n = 0;
    bool ok = fread(len8, 1, 8, f) == 8;
    for (int i = 7; ok && i >= 0; i--) n = n << 8 | len8[i];
    char *head = ok && n >= 2 && n <= 100000000 ? malloc(n) : NULL;
    ok = head && fread(head, 1, n, f) == n;
    fclose(f);
    cJSON *j = ok ? cJSON_ParseWithLength(head, n) : NULL;
    free(head);
    char name[96];
    snprintf(name, sizeof name, "user.%s", key);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "__metadata__"), name);
    int rc = 0;
    if (!j) rc = -1, snprintf(err, errlen, "%s: not a heed checkpoint (no safetensors header)", path);
    else if (!cJSON_IsString(v))
        rc = -1, snprintf(err, errlen, "%s: not a checkpoint of the %s program (it records no %s)", path, program, key);
    else snprintf(out, len, "%s", v->valuestring);
    cJSON_Delete(j);
    return rc;
}

#endif
