/* libFuzzer target for the las command line (las_parse_args, examples/las/args.c): the
 * input is split at NUL bytes into arguments after argv[0]. Any arguments give options,
 * --help, or an error with a message; never a crash, undefined behaviour, output or an
 * exit. Accepted options keep the rules the program relies on. Built by tests/fuzz/run.sh;
 * examples/meson.build replays the seeds in the test suite. */
#include "args.h"
#include "fuzz_seeds.h"
#include "../example_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    FUZZ_SEED("train", "--epochs\0"
                       "15\0--batch-size\0"
                       "32\0--lr\0"
                       "0.002\0--checkpoint\0x.ckpt\0--resume\0--beam\0"
                       "8");
    FUZZ_SEED("transcribe", "--transcribe\0a.wav\0--checkpoint\0x\0--alignment\0a.png");
    FUZZ_SEED("loc", "--loc-channels\0"
                     "0\0--loc-kernel\0"
                     "0\0--bands\0"
                     "80\0--schedule\0constant");
    FUZZ_SEED("even-kernel", "--loc-kernel\0"
                             "4");
    FUZZ_SEED("local", "--attention\0local-p\0--local-window\0"
                       "5\0--vtlp\0"
                       "0.1\0--tempo\0"
                       "0.1");
    FUZZ_SEED("missing-value", "--sampling");
    FUZZ_SEED("help", "--stack\0"
                      "3\0-h");
    return 0;
}

enum { MAX_ARGS = 64 };

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    char *buf, *argv[MAX_ARGS + 1];
    int argc = ex_fuzz_argv(data, size, "las", &buf, argv, MAX_ARGS);
    if (!buf) return 0;
    las_options o;
    char err[256];
    int rc = las_parse_args(argc, argv, &o, err, sizeof err);
    if (rc == LAS_ARGS_ERROR && !err[0]) abort();
    if (rc != LAS_ARGS_ERROR && rc != LAS_ARGS_OK && rc != LAS_ARGS_HELP) abort();
    if (rc == LAS_ARGS_OK) {
        const las_train_config *t = &o.train;
        if ((o.resume && !o.checkpoint) || (o.transcribe && !o.checkpoint) ||
            (o.data.bands != 40 && o.data.bands != 80) || t->batch < 1 || t->stack < 1 || t->beam < 1 ||
            (t->model.loc_kernel && t->model.loc_kernel % 2 == 0) ||
            (t->model.loc_channels == 0) != (t->model.loc_kernel == 0) ||
            !(t->model.dropout >= 0 && t->model.dropout < 1) || o.epochs < 0 || t->model.pyramid_layers < 1 ||
            t->model.pyramid_layers > HEED_LAS_MAX_PYRAMID || (unsigned)t->model.attention > HEED_LAS_LOCAL_P ||
            t->model.local_window < 0 || !(t->vtlp >= 0 && t->vtlp <= 0.5) || !(t->tempo >= 0 && t->tempo <= 0.5))
            abort();
    }
    free(buf);
    return 0;
}
