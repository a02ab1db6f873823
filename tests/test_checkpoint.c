/* Checkpoints: round trips, weights export/import, every kind of corrupt file (a clear
 * error and the model untouched), atomic saving under kill -9, bitwise resume. The range
 * checks of the numbers a file holds are in test_checkpoint_numbers.c. */
#define _GNU_SOURCE
#include "checkpoint_util.h"
#include "heed/checkpoint.h"
#include "heed/dropout.h"
#include "heed/elementwise.h"
#include "heed/matmul.h"
#include "heed/reduce.h"

/* ---------------------------------------------------------------- round trips */

static void round_trip(heed_dtype dt) {
    heed_ctx *c1 = heed_ctx_new(&(heed_ctx_opts){.seed = 1}), *c2 = heed_ctx_new(&(heed_ctx_opts){.seed = 2});
    heed_params *P1 = mlp(c1, dt), *P2 = mlp(c2, dt);
    /* odd shapes too: a scalar, an empty tensor */
    heed_param(P1, "scale", HEED_SCALAR, heed_init_constant(0.75));
    heed_param(P2, "scale", HEED_SCALAR, heed_init_constant(2));
    heed_param(P1, "empty", HEED_SHAPE(0, 4), heed_init_zeros());
    heed_param(P2, "empty", HEED_SHAPE(0, 4), heed_init_zeros());
    heed_ctx_set_rng_state(c1, 77, 999);
    heed_checkpoint_info info = {.step = 123,
                                 .epoch = 4,
                                 .n_schedule = 5,
                                 .schedule = {0.1, 1e-300, -0.0, 1.0 / 3, 4.9e-324}};
    CHECK(heed_checkpoint_info_set(c1, &info, "config", "d_model=16 \"quoted\" \\ tab\t ü") == HEED_OK, "set");
    CHECK(heed_checkpoint_info_set(c1, &info, "data.pos", "12345") == HEED_OK, "set");
    const char *path = tmp_path(dt == HEED_F32 ? "rt32.safetensors" : "rt64.safetensors");
    CHECK(heed_checkpoint_save(P1, path, NULL, &info) == HEED_OK, "%s", heed_ctx_error(c1));
    CHECK(!same_values(P2, heed_params_values(P1)), "the two models start different");
    heed_checkpoint_info got;
    CHECK(heed_checkpoint_load(P2, path, NULL, &got) == HEED_OK, "%s", heed_ctx_error(c2));
    CHECK(same_values(P2, heed_params_values(P1)), "parameters bitwise equal");
    CHECK(got.step == 123 && got.epoch == 4 && got.n_schedule == 5, "step %lld epoch %lld", (long long)got.step,
          (long long)got.epoch);
    CHECK(memcmp(got.schedule, info.schedule, sizeof info.schedule) == 0, "schedule bitwise (-0, subnormal, 1/3)");
    CHECK(got.n_user == 2 && heed_checkpoint_info_get(&got, "config") &&
              strcmp(heed_checkpoint_info_get(&got, "config"), info.user[0].value) == 0 &&
              strcmp(heed_checkpoint_info_get(&got, "data.pos"), "12345") == 0,
          "user keys");
    uint64_t seed, counter;
    heed_ctx_rng_state(c2, &seed, &counter);
    CHECK(seed == 77 && counter == 999 && got.rng_seed == 77 && got.rng_counter == 999, "rng %llu %llu",
          (unsigned long long)seed, (unsigned long long)counter);
    /* the layout: 8-byte length, header padded to 8, data starting aligned */
    size_t n;
    unsigned char *b = read_all(path, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    CHECK(hl % 8 == 0 && 8 + hl + (size_t)heed_params_padded_numel(P1) * heed_dtype_size(dt) >= n,
          "header %llu, file %zu", (unsigned long long)hl, n);
    CHECK(memmem(b + 8, hl, "\"enc.w\":{\"dtype\":\"", 18) && memmem(b + 8, hl, "\"role.enc.w\":\"param\"", 20),
          "names");
    /* the in-memory loader agrees */
    heed_params_free(P2);
    P2 = mlp(c2, dt);
    heed_param(P2, "scale", HEED_SCALAR, heed_init_constant(2));
    heed_param(P2, "empty", HEED_SHAPE(0, 4), heed_init_zeros());
    CHECK(heed_checkpoint_load_memory(P2, b, n, NULL, NULL) == HEED_OK, "%s", heed_ctx_error(c2));
    CHECK(same_values(P2, heed_params_values(P1)), "memory load");
    free(b);
    heed_params_free(P1);
    heed_params_free(P2);
    heed_ctx_free(c1);
    heed_ctx_free(c2);
}

static void round_trip_f32(void) { round_trip(HEED_F32); }
static void round_trip_f64(void) { round_trip(HEED_F64); }

static void info_helpers(void) {
    heed_ctx *ctx = heed_ctx_new(NULL);
    heed_checkpoint_info info = {0};
    CHECK(heed_checkpoint_info_get(&info, "a") == NULL, "empty");
    CHECK(heed_checkpoint_info_set(ctx, &info, "a", "1") == HEED_OK &&
              heed_checkpoint_info_set(ctx, &info, "a", "2") == HEED_OK,
          "set: %s", heed_ctx_error(ctx));
    CHECK(info.n_user == 1 && strcmp(heed_checkpoint_info_get(&info, "a"), "2") == 0, "replace");
    CHECK_CTX_FAIL(ctx, heed_checkpoint_info_set(ctx, &info, "", "x"), HEED_ERR_ARG,
                   "heed_checkpoint_info_set: key '' has 0 bytes (must be 1 to 63)");
    CHECK_CTX_FAIL(ctx, heed_checkpoint_info_set(ctx, &info, "b", NULL), HEED_ERR_ARG,
                   "heed_checkpoint_info_set: value is NULL");
    CHECK_CTX_FAIL(ctx, heed_checkpoint_info_set(ctx, &info, NULL, "x"), HEED_ERR_ARG,
                   "heed_checkpoint_info_set: key is NULL");
    CHECK_CTX_FAIL(ctx, heed_checkpoint_info_set(ctx, NULL, "b", "x"), HEED_ERR_ARG,
                   "heed_checkpoint_info_set: info is NULL");
    CHECK_CTX_FAIL(ctx, heed_checkpoint_info_set(ctx, &info, "b", "\xff\xfe"), HEED_ERR_ARG,
                   "heed_checkpoint_info_set: the value of 'b' is not valid UTF-8");
    CHECK_CTX_FAIL(ctx, heed_checkpoint_info_set(ctx, &info, "\xc3", "x"), HEED_ERR_ARG,
                   "heed_checkpoint_info_set: the key is not valid UTF-8");
    char big[HEED_CKPT_VALUE_LEN + 1];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = 0;
    CHECK_CTX_FAIL(ctx, heed_checkpoint_info_set(ctx, &info, "b", big), HEED_ERR_ARG,
                   "heed_checkpoint_info_set: the value of 'b' has 512 bytes (at most 511)");
    big[HEED_CKPT_KEY_LEN] = 0;
    CHECK_CTX_FAIL(ctx, heed_checkpoint_info_set(ctx, &info, big, "x"), HEED_ERR_ARG, "has 64 bytes (must be 1 to 63)");
    heed_checkpoint_info broken = {.n_user = -1};
    CHECK_CTX_FAIL(ctx, heed_checkpoint_info_set(ctx, &broken, "b", "x"), HEED_ERR_ARG,
                   "heed_checkpoint_info_set: info->n_user = -1 (must be in [0, 16])");
    for (int i = 1; i < HEED_CKPT_MAX_USER; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        CHECK(heed_checkpoint_info_set(ctx, &info, k, "v") == HEED_OK, "slot %d: %s", i, heed_ctx_error(ctx));
    }
    CHECK_CTX_FAIL(ctx, heed_checkpoint_info_set(ctx, &info, "full", "v"), HEED_ERR_ARG,
                   "heed_checkpoint_info_set: no slot for 'full': all 16 user keys are taken");
    CHECK(info.n_user == HEED_CKPT_MAX_USER && !heed_checkpoint_info_get(&info, "b"), "refused sets change nothing");
    CHECK(heed_checkpoint_info_set(ctx, &info, "a", "3") == HEED_OK, "replacing needs no free slot");
    CHECK(heed_checkpoint_info_set(NULL, &info, "", "x") == HEED_ERR_ARG, "NULL ctx: the code only");
    heed_ctx_free(ctx);
}

/* Optimizer state is saved per parameter ("optim.<state>/<param>") and comes back. */
static void optimizer_state(void) {
    heed_ctx *c1 = heed_ctx_new(&(heed_ctx_opts){.seed = 1}), *c2 = heed_ctx_new(&(heed_ctx_opts){.seed = 2});
    heed_params *P1 = mlp(c1, HEED_F32), *P2 = mlp(c2, HEED_F32);
    heed_sgd_opts so = {.momentum = 0.9};
    heed_optimizer *o1 = heed_sgd(P1, &so), *o2 = heed_sgd(P2, &so);
    CHECK(heed_optimizer_state_count(o1) == 1, "sgd with momentum keeps one buffer");
    float *buf1 = state_buf(o1, 0), *buf2 = state_buf(o2, 0);
    for (int i = 0; i < heed_params_count(P1); i++) { /* values in the slices, zero in the padding between them */
        int64_t at = heed_params_offset(P1, i);
        for (int64_t k = 0; k < heed_params_at(P1, i)->numel; k++) buf1[at + k] = (float)(at + k) * 0.5f;
    }
    CHECK(heed_optimizer_set_steps(o1, 41) == HEED_OK, "%s", heed_ctx_error(c1));
    const char *path = tmp_path("opt.safetensors"), *plain = tmp_path("noopt.safetensors");
    CHECK(heed_checkpoint_save(P1, path, o1, NULL) == HEED_OK, "%s", heed_ctx_error(c1));
    CHECK(heed_checkpoint_save(P1, plain, NULL, NULL) == HEED_OK, "%s", heed_ctx_error(c1));
    size_t n;
    unsigned char *b = read_all(path, &n);
    const char *want = "\"optim.sgd.momentum_buffer/enc.w\":{\"dtype\":\"F32\",\"shape\":[12,5]";
    CHECK(memmem(b, n, want, strlen(want)) != NULL, "per-parameter slices");
    free(b);
    CHECK(heed_params_offset(P2, 1) == 64, "padding after enc.w");
    buf2[62] = 9; /* padding: a load zeroes it */
    CHECK(heed_checkpoint_load(P2, path, o2, NULL) == HEED_OK, "%s", heed_ctx_error(c2));
    CHECK(same_state(o1, o2), "state bitwise");
    CHECK(heed_optimizer_steps(o2) == 41 && same_values(P2, heed_params_values(P1)), "steps %lld",
          (long long)heed_optimizer_steps(o2));
    /* weights only: the optimizer tensors of the file are skipped */
    heed_params *P3 = mlp(c2, HEED_F32);
    CHECK(heed_checkpoint_load(P3, path, NULL, NULL) == HEED_OK, "%s", heed_ctx_error(c2));
    CHECK(same_values(P3, heed_params_values(P1)), "weights only");
    /* a file without optimizer state, or with another optimizer's */
    heed_params_free(P3);
    P3 = mlp(c2, HEED_F32);
    void *snap = snapshot(P3);
    heed_optimizer *o3 = heed_sgd(P3, &so), *o4 = heed_adam(P3, NULL);
    CHECK(heed_optimizer_set_steps(o3, 5) == HEED_OK, "%s", heed_ctx_error(c2));
    CHECK(heed_checkpoint_load(P3, plain, o3, NULL) == HEED_ERR_FORMAT &&
              strstr(heed_ctx_error(c2), "holds no optimizer state"),
          "%s", heed_ctx_error(c2));
    CHECK(
        heed_checkpoint_load(P3, path, o4, NULL) == HEED_ERR_FORMAT &&
            strstr(
                heed_ctx_error(c2),
                "optimizer state in the file is 'sgd.momentum_buffer', the optimizer has 'adam.exp_avg,adam.exp_avg_sq'"),
        "%s", heed_ctx_error(c2));
    CHECK(heed_optimizer_steps(o3) == 5 && heed_optimizer_steps(o4) == 0 && same_values(P3, snap), "untouched");
    /* plain SGD keeps no state: its checkpoints say so, and load into plain SGD only */
    heed_optimizer *o5 = heed_sgd(P3, NULL);
    CHECK(heed_optimizer_state_count(o5) == 0, "plain sgd");
    CHECK(heed_checkpoint_save(P3, plain, o5, NULL) == HEED_OK, "%s", heed_ctx_error(c2));
    CHECK(heed_checkpoint_load(P2, plain, o2, NULL) == HEED_ERR_FORMAT &&
              strstr(heed_ctx_error(c2), "in the file is '', the optimizer has 'sgd.momentum_buffer'"),
          "%s", heed_ctx_error(c2));
    CHECK(heed_checkpoint_load(P3, plain, o5, NULL) == HEED_OK, "%s", heed_ctx_error(c2));
    free(snap);
    heed_optimizer_free(o1), heed_optimizer_free(o2), heed_optimizer_free(o3), heed_optimizer_free(o4),
        heed_optimizer_free(o5);
    heed_params_free(P1), heed_params_free(P2), heed_params_free(P3);
    heed_ctx_free(c1);
    heed_ctx_free(c2);
}

/* ---------------------------------------------------------------- weights */

static void weights_export_import(void) {
    heed_ctx *c1 = heed_ctx_new(&(heed_ctx_opts){.seed = 1}), *c2 = heed_ctx_new(&(heed_ctx_opts){.seed = 2});
    heed_params *A = mlp(c1, HEED_F32), *B = mlp(c2, HEED_F32), *D = mlp(c2, HEED_F64);
    const char *path = tmp_path("weights.safetensors");
    CHECK(heed_safetensors_export(A, path) == HEED_OK, "%s", heed_ctx_error(c1));
    CHECK(heed_safetensors_import(B, path, true) == HEED_OK, "%s", heed_ctx_error(c2));
    CHECK(same_values(B, heed_params_values(A)), "f32 -> f32 bitwise");
    CHECK(heed_safetensors_import(D, path, true) == HEED_OK, "%s", heed_ctx_error(c2));
    for (int i = 0; i < heed_params_count(A); i++)
        for (int64_t k = 0; k < heed_params_at(A, i)->numel; k++)
            CHECK(heed_get(heed_params_at(D, i), k) == heed_get(heed_params_at(A, i), k), "f32 -> f64 exact");
    /* a weights file is not a checkpoint */
    CHECK(heed_checkpoint_load(B, path, NULL, NULL) == HEED_ERR_FORMAT &&
              strstr(heed_ctx_error(c2), "heed.format is 'weights'"),
          "%s", heed_ctx_error(c2));
    /* strict: missing and extra tensors; lenient: the ones that match */
    heed_params *E = mlp(c2, HEED_F32);
    heed_param(E, "extra", HEED_SHAPE(2), heed_init_zeros());
    void *snap = snapshot(E);
    CHECK(heed_safetensors_import(E, path, true) == HEED_ERR_FORMAT &&
              strstr(heed_ctx_error(c2), "parameter 'extra' is missing"),
          "%s", heed_ctx_error(c2));
    CHECK(same_values(E, snap), "untouched");
    CHECK(heed_safetensors_import(E, path, false) == HEED_OK, "%s", heed_ctx_error(c2));
    CHECK(memcmp(heed_params_values(E), heed_params_values(A), (size_t)heed_params_offset(A, 3) * 4) == 0,
          "lenient loads");
    heed_params *F = heed_params_new(c2, HEED_F32);
    heed_param(F, "enc.w", HEED_SHAPE(12, 5), heed_init_zeros());
    CHECK(heed_safetensors_import(F, path, true) == HEED_ERR_FORMAT &&
              strstr(heed_ctx_error(c2), "tensor 'enc.b' in the file is not a parameter of the model"),
          "%s", heed_ctx_error(c2));
    CHECK(heed_safetensors_import(F, path, false) == HEED_OK, "%s", heed_ctx_error(c2));
    heed_params *G = heed_params_new(c2, HEED_F32);
    heed_param(G, "nothing.matches", HEED_SHAPE(2), heed_init_zeros());
    CHECK(heed_safetensors_import(G, path, false) == HEED_ERR_FORMAT &&
              strstr(heed_ctx_error(c2), "no tensor in the file"),
          "%s", heed_ctx_error(c2));
    free(snap);
    heed_params_free(A), heed_params_free(B), heed_params_free(D), heed_params_free(E), heed_params_free(F),
        heed_params_free(G);
    heed_ctx_free(c1);
    heed_ctx_free(c2);
}

/* ---------------------------------------------------------------- corrupt files */

#define META_OK                                                                                                        \
    "\"heed.format\":\"checkpoint\",\"step\":\"3\",\"epoch\":\"0\",\"rng.seed\":\"5\",\"rng.counter\":\"6\","          \
    "\"schedule.count\":\"0\",\"role.w\":\"param\",\"role.b\":\"param\""
#define WT_OK "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"
#define BT_OK "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24,36]}"

/* A file: the 8-byte length (len_override if >= 0, else the padded header's), the header
 * padded with spaces to a multiple of 8, then datalen bytes of data. */
static void put_file(const char *path, const char *header, size_t datalen, int64_t len_override) {
    size_t hl = strlen(header), padded = (hl + 7) / 8 * 8;
    size_t n = 8 + padded + datalen;
    unsigned char *b = calloc(n, 1);
    uint64_t len = len_override >= 0 ? (uint64_t)len_override : padded;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(len >> (8 * i));
    memcpy(b + 8, header, hl);
    memset(b + 8 + hl, ' ', padded - hl);
    for (size_t i = 0; i < datalen / 4; i++) {
        float v = 0.25f * (float)(i + 1);
        memcpy(b + 8 + padded + 4 * i, &v, 4);
    }
    write_all(path, b, n);
    free(b);
}

typedef struct {
    heed_ctx *ctx;
    heed_params *P;
    void *snap;
} corrupt_env;

/* Loading path must fail with code and a message containing needle, changing nothing. */
static void expect_fail(corrupt_env *env, const char *path, heed_status code, const char *needle, int line) {
    uint64_t s0, c0, s1, c1;
    heed_ctx_rng_state(env->ctx, &s0, &c0);
    heed_checkpoint_info info = {.step = -7};
    heed_status st = heed_checkpoint_load(env->P, path, NULL, &info);
    const char *msg = heed_ctx_error(env->ctx);
    if (!(st == code && strstr(msg, needle))) {
        fprintf(stderr, "line %d: want %s containing '%s', got %s: '%s'\n", line, heed_status_name(code), needle,
                heed_status_name(st), msg);
        check_failures++;
    }
    heed_ctx_rng_state(env->ctx, &s1, &c1);
    CHECK(same_values(env->P, env->snap) && s0 == s1 && c0 == c1 && info.step == -7,
          "line %d: a failed load changed state", line);
    /* the same bytes from memory fail the same way */
    size_t n = 0;
    unsigned char *b = read_all(path, &n);
    if (b) {
        st = heed_checkpoint_load_memory(env->P, b, n, NULL, NULL);
        CHECK(st == code && strstr(heed_ctx_error(env->ctx), needle), "line %d (memory): %s", line,
              heed_ctx_error(env->ctx));
        CHECK(same_values(env->P, env->snap), "line %d (memory): changed", line);
        free(b);
    }
}

#define FAILS(header, datalen, code, needle)                                                                           \
    do {                                                                                                               \
        put_file(path, (header), (datalen), -1);                                                                       \
        expect_fail(&env, path, (code), (needle), __LINE__);                                                           \
    } while (0)

static void corrupt_files(void) {
    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 3});
    corrupt_env env = {ctx, tiny(ctx), NULL};
    env.snap = snapshot(env.P);
    const char *path = tmp_path("bad.safetensors");

    /* the hand-made good file loads: the builder is right */
    put_file(path, "{\"__metadata__\":{" META_OK "}," WT_OK "," BT_OK "}", 36, -1);
    heed_params *Q = tiny(ctx);
    CHECK(heed_checkpoint_load(Q, path, NULL, NULL) == HEED_OK, "good hand-made file: %s", heed_ctx_error(ctx));
    CHECK(((float *)heed_params_at(Q, 1)->data)[2] == 0.25f * 9, "b[2]");
    heed_params_free(Q);
    heed_ctx_set_rng_state(ctx, 3, 0);

    /* truncated at several points of a real checkpoint */
    const char *good = tmp_path("good.safetensors");
    heed_checkpoint_save(env.P, good, NULL, NULL);
    size_t n;
    unsigned char *b = read_all(good, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    size_t cuts[] = {0, 5, 8, 9, 8 + hl / 2, 8 + hl, 8 + hl + 10, n - 1};
    const char *why[] = {"too short for the 8-byte",
                         "too short for the 8-byte",
                         "runs past the end",
                         "runs past the end",
                         "runs past the end",
                         "run past the end of the data",
                         "run past the end of the data",
                         "run past the end of the data"};
    for (int i = 0; i < 8; i++) {
        write_all(path, b, cuts[i]);
        expect_fail(&env, path, HEED_ERR_FORMAT, why[i], __LINE__);
    }
    /* header length: beyond the file, over the limit, too small */
    memcpy(b, (uint64_t[]){n}, 8);
    write_all(path, b, n);
    expect_fail(&env, path, HEED_ERR_FORMAT, "runs past the end of the", __LINE__);
    memcpy(b, (uint64_t[]){(uint64_t)1 << 40}, 8);
    write_all(path, b, n);
    expect_fail(&env, path, HEED_ERR_FORMAT, "over the 104857600-byte limit", __LINE__);
    memcpy(b, (uint64_t[]){1}, 8);
    write_all(path, b, n);
    expect_fail(&env, path, HEED_ERR_FORMAT, "too short for a JSON object", __LINE__);
    free(b);
    /* a bigger data section than the header says: trailing bytes */
    put_file(path, "{\"__metadata__\":{" META_OK "}," WT_OK "," BT_OK "}", 40, -1);
    expect_fail(&env, path, HEED_ERR_FORMAT, "the data section has 40 bytes but the tensors cover only 36", __LINE__);

    /* JSON */
    FAILS("{\"__metadata__\":{" META_OK "}," WT_OK "," BT_OK, 36, HEED_ERR_FORMAT, "not valid JSON");
    FAILS("{\"w\": [1, 2,, 3]}", 36, HEED_ERR_FORMAT, "not valid JSON");
    FAILS("[1, 2, 3]", 0, HEED_ERR_FORMAT, "does not start with '{'");
    FAILS("{}xyz", 0, HEED_ERR_FORMAT, "bytes after the JSON object");
    FAILS("{\"w\xff\":1}", 0, HEED_ERR_FORMAT, "not valid UTF-8");
    FAILS("{\"w\\u0000x\":{}}", 0, HEED_ERR_FORMAT, "\\u0000");
    FAILS("{\"__metadata__\":{" META_OK "}," WT_OK "," WT_OK "," BT_OK "}", 36, HEED_ERR_FORMAT, "appears twice");
    FAILS("{\"__metadata__\":{" META_OK "},\"__metadata__\":{}," WT_OK "," BT_OK "}", 36, HEED_ERR_FORMAT,
          "__metadata__ appears twice");
    FAILS("{\"__metadata__\":[]," WT_OK "," BT_OK "}", 36, HEED_ERR_FORMAT, "__metadata__ is not a JSON object");
    FAILS("{\"__metadata__\":{" META_OK ",\"step\":\"4\"}," WT_OK "," BT_OK "}", 36, HEED_ERR_FORMAT,
          "key 'step' appears twice");
    /* metadata: not strings, missing, malformed numbers */
    FAILS("{\"__metadata__\":{" META_OK ",\"lr\":0.5}," WT_OK "," BT_OK "}", 36, HEED_ERR_FORMAT,
          "value of 'lr' is not a string");
    FAILS("{" WT_OK "," BT_OK "}", 36, HEED_ERR_FORMAT, "not a heed checkpoint (metadata heed.format is missing");
    FAILS("{\"__metadata__\":{\"heed.format\":\"checkpoint\"}," WT_OK "," BT_OK "}", 36, HEED_ERR_FORMAT,
          "metadata 'step' is missing");
    FAILS("{\"__metadata__\":{\"heed.format\":\"checkpoint\",\"step\":\"12x\"}," WT_OK "," BT_OK "}", 36,
          HEED_ERR_FORMAT, "metadata 'step' is '12x'");
    FAILS("{\"__metadata__\":{" META_OK ",\"rng.seed\":\"-1\"}," WT_OK "," BT_OK "}", 36, HEED_ERR_FORMAT,
          "appears twice");
    FAILS("{\"__metadata__\":{\"heed.format\":\"checkpoint\",\"step\":\"1\",\"epoch\":\"0\",\"rng.seed\":\"-1\"}}", 0,
          HEED_ERR_FORMAT, "metadata 'rng.seed' is '-1'");
    FAILS("{\"__metadata__\":{\"heed.format\":\"checkpoint\",\"step\":\"99999999999999999999\"}}", 0, HEED_ERR_FORMAT,
          "metadata 'step' is '99999999999999999999'");
    FAILS("{\"__metadata__\":{\"heed.format\":\"checkpoint\",\"step\":\"3\",\"epoch\":\"0\",\"rng.seed\":\"5\","
          "\"rng.counter\":\"6\",\"schedule.count\":\"2\",\"schedule.0\":\"0.5\"}}",
          0, HEED_ERR_FORMAT, "metadata 'schedule.1' is missing");
    FAILS("{\"__metadata__\":{\"heed.format\":\"checkpoint\",\"step\":\"3\",\"epoch\":\"0\",\"rng.seed\":\"5\","
          "\"rng.counter\":\"6\",\"schedule.count\":\"1\",\"schedule.0\":\"0.5kg\"}}",
          0, HEED_ERR_FORMAT, "metadata 'schedule.0' is '0.5kg'");
    FAILS("{\"__metadata__\":{\"heed.format\":\"checkpoint\",\"step\":\"3\",\"epoch\":\"0\",\"rng.seed\":\"5\","
          "\"rng.counter\":\"6\",\"schedule.count\":\"9\"}}",
          0, HEED_ERR_FORMAT, "schedule.count is 9");
    /* tensors: missing, extra, dtype, shape */
    FAILS("{\"__metadata__\":{\"heed.format\":\"checkpoint\",\"step\":\"3\",\"epoch\":\"0\",\"rng.seed\":\"5\","
          "\"rng.counter\":\"6\",\"schedule.count\":\"0\",\"role.w\":\"param\"}," WT_OK "}",
          24, HEED_ERR_FORMAT, "parameter 'b' is missing from the file");
    FAILS("{\"__metadata__\":{" META_OK "}," WT_OK "," BT_OK
          ",\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[36,40]}}",
          40, HEED_ERR_FORMAT, "tensor 'c' in the file is not in the model");
    FAILS("{\"__metadata__\":{" META_OK "},\"w\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,48]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[48,60]}}",
          60, HEED_ERR_FORMAT, "tensor 'w': dtype F64 in the file, F32 expected");
    FAILS("{\"__metadata__\":{" META_OK "},\"w\":{\"dtype\":\"I32\",\"shape\":[2,3],\"data_offsets\":[0,24]}," BT_OK
          "}",
          36, HEED_ERR_FORMAT, "tensor 'w': dtype I32 in the file, F32 expected");
    FAILS("{\"__metadata__\":{" META_OK "},\"w\":{\"dtype\":\"F33\",\"shape\":[2,3],\"data_offsets\":[0,24]}," BT_OK
          "}",
          36, HEED_ERR_FORMAT, "tensor 'w': unknown dtype 'F33'");
    FAILS("{\"__metadata__\":{" META_OK "},\"w\":{\"dtype\":32,\"shape\":[2,3],\"data_offsets\":[0,24]}," BT_OK "}", 36,
          HEED_ERR_FORMAT, "tensor 'w': dtype is not a string");
    FAILS("{\"__metadata__\":{" META_OK "},\"w\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]}," BT_OK
          "}",
          36, HEED_ERR_FORMAT, "tensor 'w': shape [3,2] in the file, [2,3] expected");
    FAILS("{\"__metadata__\":{" META_OK "},\"w\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]}," BT_OK "}",
          36, HEED_ERR_FORMAT, "tensor 'w': shape [6] in the file, [2,3] expected");
    FAILS("{\"__metadata__\":{" META_OK "},\"w\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,24]}," BT_OK
          "}",
          36, HEED_ERR_FORMAT, "needs 32 bytes but data_offsets [0, 24] hold 24");
    FAILS("{\"__metadata__\":{" META_OK "},\"w\":{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,24]}," BT_OK
          "}",
          36, HEED_ERR_FORMAT, "shape dim 1 is not an integer");
    FAILS("{\"__metadata__\":{" META_OK "},\"w\":{\"dtype\":\"F32\",\"shape\":[2,1.5],\"data_offsets\":[0,24]}," BT_OK
          "}",
          36, HEED_ERR_FORMAT, "shape dim 1 is not an integer");
    FAILS("{\"__metadata__\":{" META_OK "},\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
          "\"data_offsets\":[0,24]}," BT_OK "}",
          36, HEED_ERR_FORMAT, "needs more than");
    FAILS("{\"__metadata__\":{" META_OK
          "},\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
          4, HEED_ERR_FORMAT, "9 dims");
    FAILS("{\"__metadata__\":{" META_OK "},\"w\":{\"dtype\":\"F32\",\"shape\":\"2,3\",\"data_offsets\":[0,24]}," BT_OK
          "}",
          36, HEED_ERR_FORMAT, "shape is not an array");
    FAILS("{\"__metadata__\":{" META_OK "},\"w\":{\"dtype\":\"F32\",\"shape\":[2,3]}," BT_OK "}", 36, HEED_ERR_FORMAT,
          "tensor 'w': missing field 'data_offsets'");
    FAILS("{\"__metadata__\":{" META_OK
          "},\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24],\"x\":1}," BT_OK "}",
          36, HEED_ERR_FORMAT, "unexpected field 'x'");
    FAILS("{\"__metadata__\":{" META_OK
          "},\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}," BT_OK "}",
          36, HEED_ERR_FORMAT, "field 'dtype' appears twice");
    FAILS("{\"__metadata__\":{" META_OK "},\"w\":[1,2]," BT_OK "}", 36, HEED_ERR_FORMAT,
          "tensor 'w': entry is not a JSON object");
    FAILS("{\"__metadata__\":{" META_OK "},\"\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}," BT_OK "}",
          36, HEED_ERR_FORMAT, "empty name");
    /* data offsets: out of range, reversed, overlapping, holes, not integers */
    FAILS("{\"__metadata__\":{" META_OK "}," WT_OK ",\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24,48]}}",
          36, HEED_ERR_FORMAT, "tensor 'b': data_offsets [24, 48] run past the end of the data (36 bytes)");
    FAILS("{\"__metadata__\":{" META_OK "}," WT_OK ",\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[36,24]}}",
          36, HEED_ERR_FORMAT, "data_offsets [36, 24] are reversed");
    FAILS("{\"__metadata__\":{" META_OK "}," WT_OK ",\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[12,24]}}",
          36, HEED_ERR_FORMAT, "tensors 'w' [0, 24) and 'b' [12, 24) overlap");
    FAILS("{\"__metadata__\":{" META_OK "}," WT_OK ",\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[28,40]}}",
          40, HEED_ERR_FORMAT, "data bytes [24, 28) belong to no tensor");
    FAILS("{\"__metadata__\":{" META_OK "},\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[4,28]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[28,40]}}",
          40, HEED_ERR_FORMAT, "data bytes [0, 4) belong to no tensor");
    FAILS("{\"__metadata__\":{" META_OK "}," WT_OK ",\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24]}}",
          36, HEED_ERR_FORMAT, "data_offsets is not a pair");
    FAILS("{\"__metadata__\":{" META_OK "}," WT_OK
          ",\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24,1e300]}}",
          36, HEED_ERR_FORMAT, "data_offsets is not a pair of integers in [0, 2^53]");
    FAILS("{\"__metadata__\":{" META_OK "}," WT_OK
          ",\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[\"24\",36]}}",
          36, HEED_ERR_FORMAT, "data_offsets is not a pair");
    /* roles */
    FAILS("{\"__metadata__\":{" META_OK ",\"role.q\":\"param\"}," WT_OK "," BT_OK "}", 36, HEED_ERR_FORMAT,
          "metadata 'role.q' names a tensor the file does not hold");
    FAILS(
        "{\"__metadata__\":{\"heed.format\":\"checkpoint\",\"step\":\"3\",\"epoch\":\"0\",\"rng.seed\":\"5\",\"rng.counter\":\"6\","
        "\"schedule.count\":\"0\",\"role.w\":\"optim.x\",\"role.b\":\"param\"}," WT_OK "," BT_OK "}",
        36, HEED_ERR_FORMAT, "tensor 'w': role 'optim.x' in the file, 'param' expected");
    /* the JSON reader: escapes decode (names match after decoding), bad ones are refused */
    put_file(path,
             "{\"__metadata__\":{" META_OK ",\"user.\\ud83d\\ude00\":\"tab\\there \\u00e9\"},"
             "\"\\u0077\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}," BT_OK "}",
             36, -1);
    Q = tiny(ctx);
    heed_checkpoint_info got;
    CHECK(heed_checkpoint_load(Q, path, NULL, &got) == HEED_OK, "escaped names: %s", heed_ctx_error(ctx));
    const char *v = heed_checkpoint_info_get(&got, "\xF0\x9F\x98\x80");
    CHECK(v && strcmp(v, "tab\there \xC3\xA9") == 0, "a surrogate pair and escapes decode: '%s'", v ? v : "(missing)");
    CHECK(((float *)heed_params_at(Q, 0)->data)[5] == 0.25f * 6, "w read by its escaped name");
    heed_params_free(Q);
    heed_ctx_set_rng_state(ctx, 3, 0);
    FAILS("{\"w\\ud83d\":{}}", 0, HEED_ERR_FORMAT, "lone UTF-16 surrogate escape at byte 3");
    FAILS("{\"w\\udc00\\ud83d\":{}}", 0, HEED_ERR_FORMAT, "lone UTF-16 surrogate");
    FAILS("{\"w\\x\":{}}", 0, HEED_ERR_FORMAT, "not valid JSON (error near byte 1"); /* jsmn: the string */
    FAILS("{\"w\tx\":{}}", 0, HEED_ERR_FORMAT, "not valid JSON");                    /* a raw control character */
    FAILS("{\"w\":01}", 0, HEED_ERR_FORMAT, "not valid JSON");
    FAILS("{\"w\":[1.]}", 0, HEED_ERR_FORMAT, "not valid JSON");
    FAILS("{\"w\":tru}", 0, HEED_ERR_FORMAT, "not valid JSON");
    FAILS("{\"w\":{},}", 0, HEED_ERR_FORMAT, "not valid JSON");
    FAILS("{\"w\" {}}", 0, HEED_ERR_FORMAT, "not valid JSON");
    char deep[200] = "{\"w\":";
    for (int i = 0; i < 70; i++) strcat(deep, "[");
    FAILS(deep, 0, HEED_ERR_FORMAT, "nests JSON more than 64 levels deep");
    /* closed and sparse enough for the token bound: refused for its depth before jsmn runs */
    char spaced[400] = "{\"w\":";
    for (int i = 0; i < 140; i++) strcat(spaced, i < 70 ? "[ " : "] ");
    FAILS(strcat(spaced, "}"), 0, HEED_ERR_FORMAT, "nests JSON more than 64 levels deep (at byte 131)");
    char hidden[400] = "{\"w\":"; /* a closing bracket must not hide the bracket after it */
    for (int i = 0; i < 70; i++) strcat(hidden, "{}[");
    FAILS(hidden, 0, HEED_ERR_FORMAT, "nests JSON more than 64 levels deep");
    FAILS("{\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\":{}}", 0, HEED_ERR_FORMAT,
          "missing field 'dtype'"); /* brackets inside a string do not nest */
    /* what jsmn lets through and the reader refuses: separators, keys without values */
    const char *lax[] = {"{\"w\":[1 2]}",
                         "{\"w\":{\"a\" \"b\"}}",
                         "{\"w\":{\"a\":1 \"b\":2}}",
                         "{\"w\":1,}",
                         "{\"w\"}",
                         "{\"w\":{\"a\":}}",
                         "{\"w\":[,1]}",
                         "{\"w\":[1,,2]}",
                         "{\"w\"::1}",
                         "{\"w\":1:2}",
                         "{,\"w\":1}",
                         "{\"w\",1}"};
    for (size_t i = 0; i < sizeof lax / sizeof *lax; i++) FAILS(lax[i], 0, HEED_ERR_FORMAT, "not valid JSON");
    FAILS("{} {}", 0, HEED_ERR_FORMAT, "bytes after the JSON object (at byte 3");
    FAILS("{},", 0, HEED_ERR_FORMAT, "bytes after the JSON object (at byte 2");
    /* the densest header of tensors (3.7 bytes per JSON token) passes the bound of 3 */
    char dense[2048] = "{\"__metadata__\":{\"\":\"\"}";
    for (char c = 'a'; c <= 'z'; c++)
        sprintf(dense + strlen(dense), ",\"%c\":{\"dtype\":\"U8\",\"shape\":[0,0,0,0,0,0,0,0],\"data_offsets\":[0,0]}",
                c);
    FAILS(strcat(dense, "}"), 0, HEED_ERR_FORMAT, "not a heed checkpoint (metadata heed.format is missing");
    FAILS("{\"__metadata__\":{" META_OK "},\"w\":{\"dtype\":\"F32\",\"shape\":[2.0,3],\"data_offsets\":[0,24]}," BT_OK
          "}",
          36, HEED_ERR_FORMAT, "shape dim 0 is not an integer"); /* as the reference reader (serde), integers only */
    FAILS("{\"__metadata__\":{" META_OK "},\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,2.4e1]}," BT_OK
          "}",
          36, HEED_ERR_FORMAT, "data_offsets is not a pair of integers");
    FAILS("{\"__metadata__\":{" META_OK
          "},\"w\":{\"dtype\":\"F32\",\"shape\":[9007199254740993],\"data_offsets\":[0,24]}," BT_OK "}",
          36, HEED_ERR_FORMAT, "shape dim 0 is not an integer in [0, 2^53]");
    /* not a file */
    expect_fail(&env, tmp_path("does-not-exist"), HEED_ERR_IO, "cannot open", __LINE__);
    mkdir(tmp_path("a-directory"), 0700);
    expect_fail(&env, tmp_path("a-directory"), HEED_ERR_IO, "not a regular file", __LINE__);
    /* arguments */
    CHECK(heed_checkpoint_load(env.P, NULL, NULL, NULL) == HEED_ERR_ARG, "NULL path");
    CHECK(heed_checkpoint_load(NULL, path, NULL, NULL) == HEED_ERR_ARG, "NULL P");
    CHECK(heed_checkpoint_load_memory(env.P, NULL, 0, NULL, NULL) == HEED_ERR_FORMAT, "empty memory");
    CHECK(heed_checkpoint_load_memory(env.P, NULL, 10, NULL, NULL) == HEED_ERR_ARG, "NULL data");
    CHECK(same_values(env.P, env.snap), "unchanged at the end");
    free(env.snap);
    heed_params_free(env.P);
    heed_ctx_free(ctx);
}

static void save_errors(void) {
    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 3});
    heed_params *P = tiny(ctx);
    CHECK(heed_checkpoint_save(P, tmp_path("no-such-dir/x.safetensors"), NULL, NULL) == HEED_ERR_IO &&
              strstr(heed_ctx_error(ctx), "heed_checkpoint_save: cannot create a file next to"),
          "%s", heed_ctx_error(ctx));
    /* a directory is never replaced (the atomic writer refuses what is not a regular file) */
    mkdir(tmp_path("dir-target"), 0700);
    int before = count_temp_files();
    CHECK(heed_checkpoint_save(P, tmp_path("dir-target"), NULL, NULL) == HEED_ERR_IO &&
              strstr(heed_ctx_error(ctx), "is not a regular file"),
          "%s", heed_ctx_error(ctx));
    CHECK(count_temp_files() == before, "temporary removed");
    heed_checkpoint_info info = {.n_schedule = 99};
    CHECK(heed_checkpoint_save(P, tmp_path("x"), NULL, &info) == HEED_ERR_ARG &&
              strstr(heed_ctx_error(ctx), "n_schedule is 99"),
          "%s", heed_ctx_error(ctx));
    info = (heed_checkpoint_info){.n_user = 1};
    CHECK(heed_checkpoint_save(P, tmp_path("x"), NULL, &info) == HEED_ERR_ARG &&
              strstr(heed_ctx_error(ctx), "user key 0"),
          "%s", heed_ctx_error(ctx));
    CHECK(heed_checkpoint_save(P, NULL, NULL, NULL) == HEED_ERR_ARG, "NULL path");
    CHECK(heed_checkpoint_save(NULL, "x", NULL, NULL) == HEED_ERR_ARG, "NULL P");
    /* a name that is not UTF-8 cannot be written */
    heed_param(P, "bad\xff", HEED_SHAPE(1), heed_init_zeros());
    CHECK(heed_checkpoint_save(P, tmp_path("x"), NULL, NULL) == HEED_ERR_ARG &&
              strstr(heed_ctx_error(ctx), "not valid UTF-8"),
          "%s", heed_ctx_error(ctx));
    CHECK(access(tmp_path("x"), F_OK) != 0 && count_temp_files() == before, "nothing written");
    heed_params_free(P);
    heed_ctx_free(ctx);
}

/* ---------------------------------------------------------------- kill -9 while saving */

static void crash_while_saving(void) {
    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 4});
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_tensor *w = heed_param(P, "big", HEED_SHAPE(1 << 21), heed_init_zeros()); /* 8 MiB */
    float *v = w->data;
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("crash.safetensors"));
    for (int64_t i = 0; i < w->numel; i++) v[i] = 1.0f;
    CHECK(heed_checkpoint_save(P, path, NULL, NULL) == HEED_OK, "%s", heed_ctx_error(ctx));
    srand((unsigned)time(NULL));
    int saw_new = 0, mid_save = 0, kills = 8;
    float old = 1.0f; /* what the file holds before the round */
    for (int round = 0; round < kills; round++) {
        int pipefd[2];
        CHECK(pipe(pipefd) == 0, "pipe");
        pid_t pid = fork();
        if (pid == 0) { /* the writer: saves 1000 r + 1, + 2, ... over and over, saying when a save starts */
            close(pipefd[0]);
            for (float x = 1000.0f * (float)(round + 1) + 1;; x += 1.0f) {
                for (int64_t i = 0; i < w->numel; i++) v[i] = x;
                if (write(pipefd[1], "s", 1) != 1) _exit(1);
                heed_checkpoint_save(P, path, NULL, NULL);
            }
        }
        close(pipefd[1]);
        char c;
        for (int k = rand() % 3; k >= 0; k--) /* let 0 to 2 saves complete, then kill within the next */
            if (read(pipefd[0], &c, 1) != 1) break;
        struct timespec ts = {0, (long)(rand() % 2000) * 1000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(pipefd[0]);
        /* a stale temporary file means the kill hit a save before its rename */
        DIR *d = opendir(dir);
        bool stale = false;
        for (struct dirent *e; d && (e = readdir(d));)
            if (strncmp(e->d_name, "crash.safetensors.tmp-", 22) == 0) {
                stale = true;
                char p[600];
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                unlink(p);
            }
        if (d) closedir(d);
        mid_save += stale;
        heed_params *Q = heed_params_new(ctx, HEED_F32);
        heed_tensor *q = heed_param(Q, "big", HEED_SHAPE(1 << 21), heed_init_constant(-1));
        heed_status st = heed_checkpoint_load(Q, path, NULL, NULL);
        CHECK(st == HEED_OK, "round %d: the file at path must always load: %s", round, heed_ctx_error(ctx));
        float *qv = q->data, first = qv[0];
        bool uniform = true;
        for (int64_t i = 0; i < q->numel; i++) uniform &= qv[i] == first;
        CHECK(st != HEED_OK ||
                  (uniform && (first == old || (first > 1000.0f * (float)(round + 1) && first == floorf(first)))),
              "round %d: mixed values, or neither the old file (%g) nor a new one (%g)", round, old, first);
        saw_new += first != old;
        old = first;
        heed_params_free(Q);
    }
    CHECK(mid_save > 0, "no kill landed inside a save: the test proved nothing");
    printf(
        "     kill -9: %d of %d kills landed inside a save; %d rounds found a newer complete file; none a broken one\n",
        mid_save, kills, saw_new);
    heed_params_free(P);
    heed_ctx_free(ctx);
}

/* ---------------------------------------------------------------- resume, bitwise */

/* One training step of a dropout MLP on the batch of step s (data depends only on s),
 * with Adam and a reduce-on-plateau schedule fed the loss of every step (state that the
 * checkpoint must carry: best loss, bad steps, cooldown, current rate). */
static void train_step(heed_graph *g, heed_params *P, heed_optimizer *opt, heed_schedule *sched, int64_t s) {
    enum { B = 8 };
    heed_rng r = heed_rng_make(1234, (uint64_t)s);
    float x[B * 5], y[B * 3];
    for (int i = 0; i < B * 5; i++) x[i] = (float)(2 * heed_rng_uniform(&r) - 1);
    for (int i = 0; i < B * 3; i++) y[i] = (float)heed_rng_uniform(&r);
    heed_graph_reset(g);
    heed_tensor *h = heed_linear(g, heed_input(g, HEED_F32, HEED_SHAPE(B, 5), x), heed_params_find(P, "enc.w"),
                                 heed_params_find(P, "enc.b"));
    h = heed_dropout(g, heed_tanh(g, h), 0.3);
    heed_tensor *out = heed_linear(g, h, heed_params_find(P, "out.w"), heed_params_find(P, "out.b"));
    heed_tensor *d = heed_sub(g, out, heed_input(g, HEED_F32, HEED_SHAPE(B, 3), y));
    heed_tensor *loss = heed_mean_all(g, heed_mul(g, d, d));
    heed_params_zero_grad(P);
    CHECK(heed_backward(g, loss) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(heed_schedule_apply(opt, sched) == HEED_OK && heed_optimizer_step(opt) == HEED_OK, "step");
    CHECK(heed_schedule_observe(heed_graph_ctx(g), sched, heed_get(loss, 0), NULL) == HEED_OK, "%s",
          heed_ctx_error(heed_graph_ctx(g)));
}

static void train(heed_ctx *ctx, heed_params *P, heed_optimizer *opt, heed_schedule *sched, int64_t from, int64_t to) {
    heed_graph *g = heed_graph_new(ctx);
    for (int64_t s = from; s < to; s++) train_step(g, P, opt, sched, s);
    heed_graph_free(g);
}

static heed_schedule plateau(void) {
    heed_schedule s = heed_schedule_plateau(0.05);
    s.patience = 1;
    s.gamma = 0.5;
    return s;
}

static void resume_bitwise(void) {
    enum { N = 7, M = 9 };
    heed_adam_opts ao = {0}; /* AdamW's defaults */
    /* the reference: N + M steps without a stop */
    heed_ctx *ca = heed_ctx_new(&(heed_ctx_opts){.seed = 11});
    heed_params *PA = mlp(ca, HEED_F32);
    heed_optimizer *oa = heed_adamw(PA, &ao);
    heed_schedule sa = plateau();
    train(ca, PA, oa, &sa, 0, N + M);
    CHECK(sa.current_lr < 0.05, "the plateau schedule moved (lr %g), so its state matters", sa.current_lr);
    /* N steps, save, free everything */
    heed_ctx *cb = heed_ctx_new(&(heed_ctx_opts){.seed = 11});
    heed_params *PB = mlp(cb, HEED_F32);
    heed_optimizer *ob = heed_adamw(PB, &ao);
    heed_schedule sb = plateau();
    train(cb, PB, ob, &sb, 0, N);
    heed_checkpoint_info info = {.step = N, .epoch = 1, .n_schedule = HEED_SCHEDULE_STATE};
    heed_schedule_get_state(&sb, info.schedule);
    const char *path = tmp_path("resume.safetensors");
    CHECK(heed_checkpoint_save(PB, path, ob, &info) == HEED_OK, "%s", heed_ctx_error(cb));
    heed_optimizer_free(ob);
    heed_params_free(PB);
    heed_ctx_free(cb);
    /* a new process would start from another seed and init: the checkpoint sets all of it.
     * Controls, which must differ: the RNG counter not restored; the schedule not restored. */
    for (int variant = 0; variant < 3; variant++) {
        heed_ctx *cc = heed_ctx_new(&(heed_ctx_opts){.seed = 999});
        heed_params *PC = mlp(cc, HEED_F32);
        heed_optimizer *oc = heed_adamw(PC, &ao);
        heed_schedule sc = plateau();
        heed_checkpoint_info got;
        CHECK(heed_checkpoint_load(PC, path, oc, &got) == HEED_OK, "%s", heed_ctx_error(cc));
        CHECK(got.n_schedule == HEED_SCHEDULE_STATE, "schedule state");
        if (variant != 2) CHECK(heed_schedule_set_state(cc, &sc, got.schedule) == HEED_OK, "%s", heed_ctx_error(cc));
        if (variant == 1) heed_ctx_set_rng_state(cc, got.rng_seed, 0); /* dropout masks replayed from 0 */
        train(cc, PC, oc, &sc, got.step, N + M);
        bool same = same_values(PC, heed_params_values(PA)) && same_state(oc, oa) &&
                    heed_optimizer_steps(oc) == heed_optimizer_steps(oa);
        double st_a[HEED_SCHEDULE_STATE], st_c[HEED_SCHEDULE_STATE];
        heed_schedule_get_state(&sa, st_a);
        heed_schedule_get_state(&sc, st_c);
        if (variant == 0) {
            uint64_t s1, n1, s2, n2;
            heed_ctx_rng_state(ca, &s1, &n1);
            heed_ctx_rng_state(cc, &s2, &n2);
            CHECK(same && s1 == s2 && n1 == n2 && memcmp(st_a, st_c, sizeof st_a) == 0,
                  "resumed run differs from the uninterrupted one");
        } else {
            CHECK(!same, "control %d (%s not restored) must differ, or the test could not fail", variant,
                  variant == 1 ? "RNG" : "schedule");
        }
        heed_optimizer_free(oc);
        heed_params_free(PC);
        heed_ctx_free(cc);
    }
    heed_optimizer_free(oa);
    heed_params_free(PA);
    heed_ctx_free(ca);
}

int main(void) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/heed_ckpt_XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(round_trip_f32);
    RUN(round_trip_f64);
    RUN(info_helpers);
    RUN(optimizer_state);
    RUN(weights_export_import);
    RUN(corrupt_files);
    RUN(save_errors);
    RUN(crash_while_saving);
    RUN(resume_bitwise);
    remove_dir();
    return check_summary();
}
