/* heed_checkpoint_read_info (io/checkpoint.c): a checkpoint's metadata without loading it.
 * A saved file gives back what was saved (user keys, step, epoch, schedule, RNG state)
 * and the ctx is untouched; a missing user key is NULL; every cut of the file, plain
 * weights, other files, a user value one byte too long and NULL arguments are refused
 * with the file and the rule named, *info unchanged. */
#include "check.h"
#include "info_equal.h"

#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static heed_ctx *ctx;

static const char *tmp_path(const char *name) {
    static char buf[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *b = malloc(1 << 16);
    *n = b ? fread(b, 1, 1 << 16, f) : 0;
    fclose(f);
    return b;
}

static void write_all(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) fwrite(b, 1, n, f), fclose(f);
}

static heed_params *small_model(void) {
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_param(P, "w", HEED_SHAPE(2, 3), heed_init_uniform(-1, 1));
    heed_param(P, "b", HEED_SHAPE(3), heed_init_zeros());
    return P;
}

/* The call must fail with code and a message holding needle (and the path, when given),
 * leaving *info as it was. */
static void expect_fail(const char *path, heed_status code, const char *needle, int line) {
    heed_checkpoint_info info, before;
    memset(&info, 0x5a, sizeof info);
    memcpy(&before, &info, sizeof info);
    heed_status st = heed_checkpoint_read_info(ctx, path, &info);
    const char *msg = heed_ctx_error(ctx);
    CHECK(st == code && strstr(msg, needle) && (!path || strstr(msg, path)), "line %d: want %s with '%s', got %s: '%s'",
          line, heed_status_name(code), needle, heed_status_name(st), msg);
    CHECK(!memcmp(&info, &before, sizeof info), "line %d: info changed on error", line);
}

static void good_file(void) {
    heed_params *P = small_model();
    heed_optimizer *opt = heed_adam(P, NULL);
    heed_ctx_set_rng_state(ctx, 77, 5);
    heed_checkpoint_info saved = {.step = 12, .epoch = 3, .n_schedule = 2, .schedule = {1e-3, 0.1 + 0.2}};
    heed_checkpoint_info_set(ctx, &saved, "las.model", "stack=3 bands=40 listener_hidden=64");
    heed_checkpoint_info_set(ctx, &saved, "note", "ünïcode ok");
    const char *path = tmp_path("good.safetensors");
    CHECK(heed_checkpoint_save(P, path, opt, &saved) == HEED_OK, "save: %s", heed_ctx_error(ctx));
    heed_ctx_set_rng_state(ctx, 1, 2); /* reading must not restore the file's RNG state */
    heed_checkpoint_info info;
    CHECK(heed_checkpoint_read_info(ctx, path, &info) == HEED_OK, "read: %s", heed_ctx_error(ctx));
    uint64_t seed, counter;
    heed_ctx_rng_state(ctx, &seed, &counter);
    CHECK(seed == 1 && counter == 2, "ctx RNG changed to %llu %llu", (unsigned long long)seed,
          (unsigned long long)counter);
    CHECK(info.step == 12 && info.epoch == 3 && info.rng_seed == 77 && info.rng_counter == 5, "numbers");
    CHECK(info.n_schedule == 2 && info.schedule[0] == 1e-3 && info.schedule[1] == 0.1 + 0.2, "schedule bitwise");
    const char *model = heed_checkpoint_info_get(&info, "las.model"), *note = heed_checkpoint_info_get(&info, "note");
    CHECK(model && !strcmp(model, "stack=3 bands=40 listener_hidden=64"), "las.model: %s", model ? model : "(missing)");
    CHECK(note && !strcmp(note, "ünïcode ok"), "note");
    CHECK(info.n_user == 2, "%d user keys", info.n_user);
    /* a missing key */
    CHECK(heed_checkpoint_info_get(&info, "las.train") == NULL && heed_checkpoint_info_get(&info, "las.mode") == NULL,
          "missing keys are NULL");
    /* the same from memory, and the same as a full load reports */
    size_t n = 0;
    unsigned char *bytes = read_all(path, &n);
    heed_checkpoint_info mem, loaded;
    memset(&mem, 0, sizeof mem), memset(&loaded, 0, sizeof loaded);
    CHECK(heed_checkpoint_read_info_memory(ctx, bytes, n, &mem) == HEED_OK, "memory: %s", heed_ctx_error(ctx));
    CHECK(heed_checkpoint_load(P, path, opt, &loaded) == HEED_OK, "load: %s", heed_ctx_error(ctx));
    CHECK(same_info(&mem, &info) && same_info(&loaded, &info), "memory and load agree");
    free(bytes);
    heed_optimizer_free(opt);
    heed_params_free(P);
}

static void bad_files(void) {
    heed_params *P = small_model();
    const char *good = tmp_path("cut-from.safetensors"), *bad = tmp_path("bad.safetensors");
    heed_checkpoint_info saved = {.step = 1};
    heed_checkpoint_info_set(ctx, &saved, "las.model", "stack=3");
    CHECK(heed_checkpoint_save(P, good, NULL, &saved) == HEED_OK, "save");
    size_t n = 0;
    unsigned char *bytes = read_all(good, &n);
    CHECK(bytes && n > 100, "read back %zu bytes", n);
    /* Every cut: inside the length, inside the header, inside the tensor data. */
    int failures = 0;
    for (size_t cut = 0; bytes && cut < n; cut++) {
        write_all(bad, bytes, cut);
        int before = check_failures;
        expect_fail(bad, HEED_ERR_FORMAT, "", __LINE__);
        if (check_failures != before && failures++ == 0) fprintf(stderr, "  (cut at %zu of %zu)\n", cut, n);
    }
    CHECK(failures == 0, "%d cuts accepted", failures);
    write_all(bad, bytes, 4);
    expect_fail(bad, HEED_ERR_FORMAT, "too short for the 8-byte header length", __LINE__);
    free(bytes);

    /* Not checkpoints: plain weights, a text file, a directory, nothing. */
    const char *weights = tmp_path("weights.safetensors");
    CHECK(heed_safetensors_export(P, weights) == HEED_OK, "export");
    expect_fail(weights, HEED_ERR_FORMAT, "not a heed checkpoint (metadata heed.format is 'weights'", __LINE__);
    write_all(bad, "step=12\n", 8);
    expect_fail(bad, HEED_ERR_FORMAT, "header length", __LINE__);
    expect_fail(dir, HEED_ERR_IO, "not a regular file", __LINE__);
    expect_fail(tmp_path("missing.safetensors"), HEED_ERR_IO, "cannot open", __LINE__);
    heed_params_free(P);
}

/* A checkpoint header with no tensors and one user value of `len` bytes. */
static void write_with_value(const char *path, size_t len) {
    char value[1024], header[2048];
    memset(value, 'v', len), value[len] = 0;
    int h =
        snprintf(header, sizeof header,
                 "{\"__metadata__\":{\"heed.format\":\"checkpoint\",\"step\":\"0\",\"epoch\":\"0\",\"rng.seed\":\"0\","
                 "\"rng.counter\":\"0\",\"schedule.count\":\"0\",\"user.long\":\"%s\"}}",
                 value);
    unsigned char buf[2100];
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, (size_t)h);
    write_all(path, buf, 8 + (size_t)h);
}

static void long_values(void) {
    const char *path = tmp_path("long.safetensors");
    heed_checkpoint_info info;
    write_with_value(path, HEED_CKPT_VALUE_LEN - 1); /* the longest that fits, with its NUL */
    CHECK(heed_checkpoint_read_info(ctx, path, &info) == HEED_OK, "%d bytes: %s", HEED_CKPT_VALUE_LEN - 1,
          heed_ctx_error(ctx));
    const char *v = heed_checkpoint_info_get(&info, "long");
    CHECK(v && strlen(v) == HEED_CKPT_VALUE_LEN - 1, "value read back whole");
    write_with_value(path, HEED_CKPT_VALUE_LEN);
    expect_fail(path, HEED_ERR_FORMAT, "metadata 'user.long': key empty or over 63 bytes, or value over 511", __LINE__);
}

static void bad_arguments(void) {
    heed_checkpoint_info info;
    CHECK(heed_checkpoint_read_info(NULL, "x", &info) == HEED_ERR_ARG, "NULL ctx");
    expect_fail(NULL, HEED_ERR_ARG, "heed_checkpoint_read_info: path is NULL", __LINE__);
    CHECK(heed_checkpoint_read_info(ctx, "x", NULL) == HEED_ERR_ARG && strstr(heed_ctx_error(ctx), "info is NULL"),
          "NULL info: %s", heed_ctx_error(ctx));
    CHECK(heed_checkpoint_read_info_memory(ctx, NULL, 5, &info) == HEED_ERR_ARG &&
              strstr(heed_ctx_error(ctx), "data is NULL"),
          "NULL data: %s", heed_ctx_error(ctx));
    CHECK(heed_checkpoint_read_info_memory(ctx, "", 0, &info) == HEED_ERR_FORMAT &&
              strstr(heed_ctx_error(ctx), "heed_checkpoint_read_info_memory: (memory): "),
          "empty memory: %s", heed_ctx_error(ctx));
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/heed-ckinfo-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 3});
    RUN(good_file);
    RUN(bad_files);
    RUN(long_values);
    RUN(bad_arguments);
    heed_ctx_free(ctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
