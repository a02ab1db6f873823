/* libFuzzer target for the sasrec command line (sr_parse_args, examples/sasrec/args.c):
 * the input is split at NUL bytes into arguments after argv[0]. Any arguments give
 * options, --help, or an error with a message; never a crash, undefined behaviour, output
 * or an exit. Accepted options must keep the rules the program relies on. Built by
 * tests/fuzz/run.sh; examples/meson.build replays the seeds in the test suite. */
#include "args.h"
#include "fuzz_seeds.h"
#include "../example_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    FUZZ_SEED("generated", "--gen-users\0"
                           "1200\0--gen-items\0"
                           "150\0--maxlen\0"
                           "20\0--hidden-units\0"
                           "32\0--num-heads\0"
                           "4\0--checkpoint\0x.ckpt\0--resume\0--no-progress\0--target-hr\0"
                           "0.6");
    FUZZ_SEED("data", "--data\0games.txt\0--num-epochs\0"
                      "200\0--eval-every\0"
                      "20\0--lr\0"
                      "1e-3\0--anomaly");
    FUZZ_SEED("preset", "--gen\0amazon-games\0--gen-noise\0"
                        "0.5\0--bench");
    FUZZ_SEED("data-and-gen", "--data\0x\0--gen-seed\0"
                              "3");
    FUZZ_SEED("missing-value", "--length-groups");
    FUZZ_SEED("help", "--k\0"
                      "5\0-h");
    return 0;
}

enum { MAX_ARGS = 64 };

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    char *buf, *argv[MAX_ARGS + 1];
    int argc = ex_fuzz_argv(data, size, "sasrec", &buf, argv, MAX_ARGS);
    if (!buf) return 0;
    sr_options o;
    char err[256];
    int rc = sr_parse_args(argc, argv, &o, err, sizeof err);
    if (rc == SR_ARGS_ERROR && !err[0]) abort();
    if (rc != SR_ARGS_ERROR && rc != SR_ARGS_OK && rc != SR_ARGS_HELP) abort();
    if (rc == SR_ARGS_OK) {
        const sr_train_config *t = &o.train;
        if ((o.resume && !o.checkpoint) || (o.data && o.gen_flag) || t->model.heads < 1 ||
            t->model.hidden % t->model.heads || t->batch < 1 || t->max_groups < 1 || t->max_groups > SR_MAX_GROUPS ||
            o.negatives < 1 || o.k < 1 || !(t->lr >= 0) || !(t->model.dropout >= 0 && t->model.dropout < 1) ||
            o.epochs < 0)
            abort();
    }
    free(buf);
    return 0;
}
