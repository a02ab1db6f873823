/* Helpers shared by the attention-layer ops (scores.c, positions.c,
 * scan.c) and models/mha.c: shape expectations with clear messages, key-length
 * validation. Not installed. */
#ifndef HEED_ATTN_LAYERS_H
#define HEED_ATTN_LAYERS_H

#include "../../graph/internal.h"

#include <stdio.h>

/* True when t is a live tensor (dtype like ref, if ref) of exactly ndim dims matching
 * want[] (entries < 0 match anything). Otherwise records, for example,
 *   "heed_additive_score: keys_proj[2,5,3] must be [B,N,da] = [2,5,4]". */
static inline bool heed__expect(heed_graph *g, const char *op, const heed_tensor *t, const char *name,
                                const heed_tensor *ref, const char *dim_names, int ndim, const int64_t *want) {
    if (ref ? !heed__check_like(g, op, t, name, ref) : !heed_check_tensor(g, op, t, name)) return false;
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = want[i] < 0 || t->shape[i] == want[i];
    if (ok) return true;
    char buf[96];
    int n = snprintf(buf, sizeof buf, "[");
    for (int i = 0; i < ndim && n < 80; i++)
        n += want[i] < 0 ? snprintf(buf + n, sizeof buf - (size_t)n, i ? ",?" : "?")
                         : snprintf(buf + n, sizeof buf - (size_t)n, i ? ",%lld" : "%lld", (long long)want[i]);
    if (n < 94) snprintf(buf + n, sizeof buf - (size_t)n, "]");
    heed_graph_fail(g, HEED_ERR_SHAPE, "%s: %s%s must be %s = %s", op, name, HEED_S(t), dim_names, buf);
    return false;
}

#define HEED__DIMS(...) ((const int64_t[]){__VA_ARGS__})
/* heed__expect with the dims written inline: EXPECT(g, op, t, "t", ref, "[B,N]", B, N). */
#define HEED__EXPECT(g, op, t, name, ref, dim_names, ...)                                                              \
    heed__expect((g), (op), (t), (name), (ref), (dim_names), (int)(sizeof HEED__DIMS(__VA_ARGS__) / sizeof(int64_t)),  \
                 HEED__DIMS(__VA_ARGS__))

/* Validates key_lengths[0..B) (each in [0, N]) and copies them into the graph arena, so
 * backward does not depend on the caller's buffer. NULL in -> every key valid (a copy of
 * N). Returns NULL on error (recorded on g). */
static inline int64_t *heed__key_lengths(heed_graph *g, const char *op, const int64_t *key_lengths, int64_t B,
                                         int64_t N) {
    int64_t *len = heed_graph_alloc(g, (size_t)(B > 0 ? B : 1) * sizeof *len);
    if (!len) return NULL;
    for (int64_t b = 0; b < B; b++) {
        int64_t L = key_lengths ? key_lengths[b] : N;
        if (L < 0 || L > N) {
            heed_graph_fail(g, HEED_ERR_ARG, "%s: key_lengths[%lld] = %lld is out of range [0, %lld] (N = %lld keys)",
                            op, (long long)b, (long long)L, (long long)N, (long long)N);
            return NULL;
        }
        len[b] = L;
    }
    return len;
}

#endif
