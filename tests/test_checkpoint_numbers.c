/* Checkpoints: every number a file holds is range-checked before it is used, and the header
 * parser's memory is bounded by the file, not by what the file claims. */
#define _GNU_SOURCE
#include "checkpoint_util.h"
#include "heed/checkpoint.h"

/* ---------------------------------------------------------------- numbers range-checked */

/* The header of the file at path (its length in *len) and where its data starts. */
static char *file_header(unsigned char *b, uint64_t *len) {
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    *len = hl;
    return (char *)b + 8;
}

/* Rewrites the file at `from` into `to` with the first `old` of its header replaced by
 * `new` (the header re-padded to a multiple of 8, its length updated). */
static void edit_header(const char *from, const char *to, const char *old, const char *new) {
    size_t n;
    unsigned char *b = read_all(from, &n);
    uint64_t hl;
    char *hb = file_header(b, &hl), *h = strndup(hb, hl), *at = strstr(h, old);
    CHECK(at != NULL, "'%s' is not in the header", old);
    size_t keep = strlen(h);
    while (keep && h[keep - 1] == ' ') keep--; /* the old padding */
    size_t pre = at ? (size_t)(at - h) : 0, post = at ? keep - pre - strlen(old) : 0;
    size_t body = pre + strlen(new) + post, padded = (body + 7) / 8 * 8;
    unsigned char *out = malloc(8 + padded + (n - 8 - hl));
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    char *p = (char *)out + 8;
    memcpy(p, h, pre);
    memcpy(p + pre, new, strlen(new));
    memcpy(p + pre + strlen(new), h + pre + strlen(old), post);
    memset(p + body, ' ', padded - body);
    memcpy(out + 8 + padded, b + 8 + hl, n - 8 - hl);
    write_all(to, out, 8 + padded + (n - 8 - hl));
    free(out);
    free(h);
    free(b);
}

/* Copies the file at `from` to `to` with element k of the F32 tensor `name` set to v. */
static void poke_f32(const char *from, const char *to, const char *name, int64_t k, float v) {
    size_t n;
    unsigned char *b = read_all(from, &n);
    uint64_t hl;
    char *hb = file_header(b, &hl), *h = strndup(hb, hl), key[128];
    snprintf(key, sizeof key, "\"%s\":{", name);
    char *at = strstr(h, key), *offs = at ? strstr(at, "\"data_offsets\":[") : NULL;
    CHECK(offs != NULL, "tensor '%s' is not in the header", name);
    if (offs) memcpy(b + 8 + hl + strtoull(offs + 16, NULL, 10) + 4 * (uint64_t)k, &v, 4);
    write_all(to, b, n);
    free(h);
    free(b);
}

/* Every number read is checked before it is used: counts in [0, 2^53], parameters
 * finite, optimizer state finite (second moments and sums of squares >= 0). A file
 * breaking a rule fails to load with a message naming the field and the rule, and the
 * model, optimizer and ctx keep their state. These files all loaded before. */
static void numbers_range_checked(void) {
    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 4});
    heed_params *P = tiny(ctx);
    heed_optimizer *o = heed_adam(P, NULL);
    float *g = heed_params_grads(P);
    for (int64_t i = 0; i < heed_params_padded_numel(P); i++) g[i] = 0.5f - (float)(i % 3);
    CHECK(heed_optimizer_step(o) == HEED_OK, "%s", heed_ctx_error(ctx));
    const char *good = tmp_path("range.safetensors"), *bad = tmp_path("range-bad.safetensors");
    heed_checkpoint_info info = {.step = 7, .epoch = 2};
    CHECK(heed_checkpoint_save(P, good, o, &info) == HEED_OK, "%s", heed_ctx_error(ctx));

    heed_params *Q = tiny(ctx);
    heed_optimizer *oq = heed_adam(Q, NULL);
    CHECK(heed_optimizer_set_steps(oq, 3) == HEED_OK, "%s", heed_ctx_error(ctx));
    void *snap = snapshot(Q);
    float *m0 = state_buf(oq, 0);
    CHECK(heed_checkpoint_load(Q, good, oq, NULL) == HEED_OK && m0[0] != 0, "the good file loads: %s",
          heed_ctx_error(ctx));
    memcpy(heed_params_values(Q), snap, (size_t)heed_params_padded_numel(Q) * sizeof(float));
    CHECK(heed_optimizer_set_steps(oq, 3) == HEED_OK, "%s", heed_ctx_error(ctx));
    float m_before = m0[0];
    struct {
        const char *old, *new, *needle;
    } meta[] = {
        {"\"step\":\"7\"", "\"step\":\"-3\"", "metadata 'step' is -3 (must be in [0, 2^53])"},
        {"\"epoch\":\"2\"", "\"epoch\":\"-1\"", "metadata 'epoch' is -1 (must be in [0, 2^53])"},
        {"\"step\":\"7\"", "\"step\":\"9007199254740993\"", "metadata 'step' is 9007199254740993"},
        {"\"optim.steps\":\"1\"", "\"optim.steps\":\"9223372036854775807\"",
         "optim.steps is '9223372036854775807' (a count in [0, 2^53"},
        {"\"optim.steps\":\"1\"", "\"optim.steps\":\"9007199254740993\"", "optim.steps is '9007199254740993'"},
    };
    struct {
        const char *tensor;
        int64_t k;
        float v;
        const char *needle; /* NULL: the file loads */
    } values[] = {
        {"optim.adam.exp_avg_sq/w", 4, -1.0f,
         "tensor 'optim.adam.exp_avg_sq/w' element 4 is -1 (optimizer state must be finite and >= 0"},
        {"optim.adam.exp_avg_sq/b", 0, NAN,
         "tensor 'optim.adam.exp_avg_sq/b' element 0 is nan (optimizer state must be finite and >= 0"},
        {"optim.adam.exp_avg/w", 2, INFINITY,
         "tensor 'optim.adam.exp_avg/w' element 2 is inf (optimizer state must be finite)"},
        {"w", 5, NAN, "tensor 'w' element 5 is nan (parameters must be finite)"},
        {"b", 2, -INFINITY, "tensor 'b' element 2 is -inf"},
        {"optim.adam.exp_avg/b", 1, -2.0f, NULL}, /* a first moment may be negative */
    };
    int nm = (int)(sizeof meta / sizeof *meta), nv = (int)(sizeof values / sizeof *values);
    for (int c = 0; c < nm + nv; c++) {
        if (c < nm) edit_header(good, bad, meta[c].old, meta[c].new);
        else poke_f32(good, bad, values[c - nm].tensor, values[c - nm].k, values[c - nm].v);
        const char *needle = c < nm ? meta[c].needle : values[c - nm].needle;
        uint64_t s0, n0, s1, n1;
        heed_ctx_rng_state(ctx, &s0, &n0);
        heed_checkpoint_info got = {.step = -7};
        heed_status st = heed_checkpoint_load(Q, bad, oq, &got);
        heed_ctx_rng_state(ctx, &s1, &n1);
        if (!needle) {
            CHECK(st == HEED_OK, "case %d: %s", c, heed_ctx_error(ctx));
            memcpy(heed_params_values(Q), snap, (size_t)heed_params_padded_numel(Q) * sizeof(float));
            CHECK(heed_optimizer_set_steps(oq, 3) == HEED_OK, "%s", heed_ctx_error(ctx));
            m0[0] = m_before;
            continue;
        }
        CHECK(st == HEED_ERR_FORMAT && strstr(heed_ctx_error(ctx), needle) && strstr(heed_ctx_error(ctx), bad),
              "case %d: want '%s', got %s: '%s'", c, needle, heed_status_name(st), heed_ctx_error(ctx));
        CHECK(same_values(Q, snap) && heed_optimizer_steps(oq) == 3 && m0[0] == m_before && got.step == -7 &&
                  s0 == s1 && n0 == n1,
              "case %d: a refused load changed state", c);
    }
    /* weights files too */
    const char *weights = tmp_path("range-weights.safetensors");
    CHECK(heed_safetensors_export(P, weights) == HEED_OK, "%s", heed_ctx_error(ctx));
    poke_f32(weights, bad, "w", 1, NAN);
    CHECK(heed_safetensors_import(Q, bad, true) == HEED_ERR_FORMAT &&
              strstr(heed_ctx_error(ctx), "tensor 'w' element 1 is nan (parameters must be finite)"),
          "%s", heed_ctx_error(ctx));
    CHECK(same_values(Q, snap), "a refused import changes nothing");
    /* saving refuses what loading would refuse, and leaves no file */
    ((float *)heed_params_find(P, "b")->data)[1] = NAN;
    const char *never = tmp_path("never.safetensors");
    CHECK(heed_checkpoint_save(P, never, o, &info) == HEED_ERR_NUMERIC &&
              strstr(heed_ctx_error(ctx), "tensor 'b' element 1 is nan (parameters must be finite)"),
          "%s", heed_ctx_error(ctx));
    CHECK(heed_safetensors_export(P, never) == HEED_ERR_NUMERIC && access(never, F_OK) != 0, "%s", heed_ctx_error(ctx));
    ((float *)heed_params_find(P, "b")->data)[1] = 0;
    CHECK(heed_checkpoint_save(P, never, o, &(heed_checkpoint_info){.step = -1}) == HEED_ERR_ARG &&
              strstr(heed_ctx_error(ctx), "info->step = -1"),
          "%s", heed_ctx_error(ctx));
    CHECK(heed_checkpoint_save(P, never, o, &(heed_checkpoint_info){.epoch = (int64_t)1 << 60}) == HEED_ERR_ARG &&
              strstr(heed_ctx_error(ctx), "must be in [0, 2^53]"),
          "%s", heed_ctx_error(ctx));
    CHECK(access(never, F_OK) != 0, "no file written");
    free(snap);
    heed_optimizer_free(o);
    heed_optimizer_free(oq);
    heed_params_free(P);
    heed_params_free(Q);
    heed_ctx_free(ctx);
}

/* ---------------------------------------------------------------- header parsing memory */

/* The growth of the peak RSS, in multiples of the header, while loading a 24 MiB header
 * {"a":[0<sep>0<sep>...]} (ru_maxrss is a high-water mark: the growth over the peak so far).
 * The load must fail with a message containing want. */
static double header_peak(const char *sep, const char *want) {
    size_t hl = (size_t)24 << 20, ns = strlen(sep), at = 6;
    unsigned char *b = malloc(8 + hl);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    char *h = (char *)b + 8;
    memset(h, ' ', hl);
    memcpy(h, "{\"a\":[", 6);
    for (; at + 1 + ns < hl; at += 1 + ns) h[at] = '0', memcpy(h + at + 1, sep, ns);
    memcpy(h + at - ns, "]}", 2); /* over the last separator: ...0,0]} */
    heed_ctx *ctx = heed_ctx_new(NULL);
    heed_params *P = tiny(ctx);
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    heed_status st = heed_checkpoint_load_memory(P, b, 8 + hl, NULL, NULL);
    getrusage(RUSAGE_SELF, &after);
    double grew = (double)(after.ru_maxrss - before.ru_maxrss) * 1024 / (double)hl; /* ru_maxrss is in KiB */
    CHECK(st == HEED_ERR_FORMAT && strstr(heed_ctx_error(ctx), want), "%s", heed_ctx_error(ctx));
    heed_params_free(P);
    heed_ctx_free(ctx);
    free(b);
    return grew;
}

/* Parsing a header takes memory within a small multiple of its size. A header of "0,"
 * values used to take about 41 times its size (a cJSON node per value, ~1 GB for 24 MiB)
 * before its clear error; now a header denser than one JSON token per 3 bytes is refused
 * once jsmn has counted its tokens, holding only the header's copy (1x). One at that
 * density ("0, ") gets its tokens, 20 bytes per 3 bytes of header: 6.7x over the first
 * load's peak, which held a header and its copy (8.6x under ASan, which keeps the first
 * load's memory in quarantine and adds 1/8 of shadow). Run first, so the process's peak
 * RSS is this test's. */
static void header_memory_bounded(void) {
    double dense =
        header_peak(",", "header holds 12582911 JSON tokens in 25165824 bytes, more than the one per 3 bytes");
    CHECK(dense < 2, "the peak grew by %.2f times the header", dense);
    double at_bound = header_peak(", ", "tensor 'a': entry is not a JSON object");
    CHECK(at_bound < 10, "the peak grew by %.2f times the header", at_bound);
    printf("     peak RSS grew by %.2f x the header refused, by %.2f x at one token per 3 bytes\n", dense, at_bound);
}

int main(void) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/heed_ckpt_XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(header_memory_bounded);
    RUN(numbers_range_checked);
    remove_dir();
    return check_summary();
}
