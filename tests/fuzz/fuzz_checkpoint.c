/* libFuzzer target for the checkpoint and weights loaders and the metadata reader
 * (heed_checkpoint_read_info_memory): any bytes must give HEED_OK or a clean error, never a
 * crash, a leak or undefined behaviour (built with ASan and UBSan by tests/fuzz/run.sh;
 * tests/meson.build replays the seeds). The metadata reader must accept every file a load
 * accepts, reporting the same info. The model is fixed and small: w[2,3], b[3] (f32), with Adam.
 * After a load with the optimizer succeeds, one training step runs on what was loaded
 * (any values: NaN, huge moments, a huge step count) and must stay defined too.
 *
 * With HEED_FUZZ_SEEDS=<dir> set, the target first writes a seed corpus into dir: real
 * checkpoints (with and without optimizer state) and a weights file of that model. */
#include "heed/elementwise.h"
#include "heed/reduce.h"
#include "../info_equal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static heed_ctx *ctx;
static heed_params *P;
static heed_optimizer *opt;
static heed_graph *g;

/* One step of Adam from the loaded state: loss = sum(w) + sum(b * b), backward, step. */
static void train_one_step(void) {
    heed_graph_reset(g);
    heed_params_zero_grad(P);
    heed_tensor *w = heed_params_at(P, 0), *b = heed_params_at(P, 1);
    heed_tensor *loss = heed_add(g, heed_sum_all(g, w), heed_sum_all(g, heed_mul(g, b, b)));
    if (heed_backward(g, loss) != HEED_OK) abort(); /* the loaded values cannot break the graph */
    heed_status st = heed_optimizer_step(opt);
    if (st != HEED_OK && !*heed_ctx_error(ctx)) abort();
}

static heed_params *model(void) {
    heed_params *p = heed_params_new(ctx, HEED_F32);
    heed_param(p, "w", HEED_SHAPE(2, 3), heed_init_uniform(-1, 1));
    heed_param(p, "b", HEED_SHAPE(3), heed_init_uniform(-1, 1));
    return p;
}

static void write_seeds(const char *dir) {
    char path[4096];
    mkdir(dir, 0777);
    heed_checkpoint_info info = {.step = 12, .epoch = 1, .n_schedule = 2, .schedule = {1e-3, 0.5}};
    heed_checkpoint_info_set(ctx, &info, "note", "seed");
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    if (heed_checkpoint_save(P, path, NULL, &info) != HEED_OK) fprintf(stderr, "seed: %s\n", heed_ctx_error(ctx));
    snprintf(path, sizeof path, "%s/adam.safetensors", dir);
    if (heed_checkpoint_save(P, path, opt, &info) != HEED_OK) fprintf(stderr, "seed: %s\n", heed_ctx_error(ctx));
    snprintf(path, sizeof path, "%s/plain.safetensors", dir);
    if (heed_checkpoint_save(P, path, NULL, NULL) != HEED_OK) fprintf(stderr, "seed: %s\n", heed_ctx_error(ctx));
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    if (heed_safetensors_export(P, path) != HEED_OK) fprintf(stderr, "seed: %s\n", heed_ctx_error(ctx));
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 1, .threads = 1});
    P = model();
    opt = heed_adam(P, NULL);
    g = heed_graph_new(ctx);
    const char *seeds = getenv("HEED_FUZZ_SEEDS");
    if (seeds) write_seeds(seeds);
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    heed_checkpoint_info info, meta;
    heed_status meta_st = heed_checkpoint_read_info_memory(ctx, data, size, &meta);
    if (meta_st != HEED_OK && !*heed_ctx_error(ctx)) abort();
    if (meta_st == HEED_OK && (meta.n_schedule < 0 || meta.n_schedule > HEED_CKPT_MAX_SCHEDULE || meta.n_user < 0 ||
                               meta.n_user > HEED_CKPT_MAX_USER))
        abort();
    heed_status st = heed_checkpoint_load_memory(P, data, size, NULL, &info);
    if (st != HEED_OK && !*heed_ctx_error(ctx)) abort(); /* an error must come with a message */
    if (st == HEED_OK && (info.n_schedule < 0 || info.n_schedule > HEED_CKPT_MAX_SCHEDULE)) abort();
    if (st == HEED_OK && (meta_st != HEED_OK || !same_info(&info, &meta)))
        abort(); /* loadable: its metadata reads alike */
    st = heed_checkpoint_load_memory(P, data, size, opt, &info);
    if (st != HEED_OK && !*heed_ctx_error(ctx)) abort();
    if (st == HEED_OK) train_one_step();
    heed_safetensors_import_memory(P, data, size, false);
    heed_safetensors_import_memory(P, data, size, true);
    return 0;
}
